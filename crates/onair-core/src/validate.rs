//! Validated newtypes: parsing is the only way to build one, so holding a `Username`
//! proves it is well formed.

use std::fmt;

use crate::invisible::{self, contains_invisible};

/// Input that breaks a domain rule: which field, and why (shown to the client as is).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Trims, then checks length in characters and that no control characters remain
/// (newlines are allowed where `multiline`), nor invisible formatting characters.
fn clean_text(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, ValidationError> {
    let value = raw.trim();
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(ValidationError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    if contains_invisible(value) {
        return Err(ValidationError::new(field, invisible::REASON));
    }
    Ok(value.to_owned())
}

/// A validated text field: normalised, trimmed, bounded, no control characters, and
/// whatever extra `rule` the field has.
macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:literal..=$max:literal,
     multiline: $multi:literal, normalise: $normalise:expr, rule: $rule:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                let normalise: fn(&str) -> String = $normalise;
                let rule: fn(&str) -> Result<(), &'static str> = $rule;
                let value = clean_text($field, &normalise(raw), $min, $max, $multi)?;
                rule(&value).map_err(|reason| ValidationError::new($field, reason))?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:literal..=$max:literal, multiline: $multi:literal) => {
        text_field!($(#[$doc])* $name, $field, $min..=$max, multiline: $multi,
            normalise: str::to_owned, rule: |_| Ok(()));
    };
}

text_field!(
    /// Public login name: 3–25 of `a-z 0-9 _`, stored lower-case so it is unique regardless of case.
    Username, "username", 3..=25, multiline: false,
    normalise: str::to_ascii_lowercase,
    rule: |name| {
        if name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            Ok(())
        } else {
            Err("may contain only letters, digits and underscores")
        }
    }
);
text_field!(
    /// An email address, lower-cased; only its shape is checked.
    Email, "email", 3..=254, multiline: false,
    normalise: str::to_lowercase,
    rule: |email| {
        let valid = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && !email.contains(char::is_whitespace);
        if valid { Ok(()) } else { Err("is not an email address") }
    }
);
text_field!(
    /// An http(s) URL of a profile picture.
    AvatarUrl, "avatar_url", 0..=2048, multiline: false,
    normalise: str::to_owned,
    rule: |url| {
        let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        match host {
            Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => Ok(()),
            _ => Err("must be an http(s) URL"),
        }
    }
);

impl AvatarUrl {
    /// The same-origin path of a picture this server stores and serves itself. Built by
    /// the server, never from input: profile edits take http(s) URLs only.
    pub fn stored(path: String) -> Self {
        Self(path)
    }
}

text_field!(DisplayName, "display_name", 1..=50, multiline: false);
text_field!(Bio, "bio", 0..=300, multiline: true);
text_field!(StreamTitle, "title", 1..=140, multiline: false);
text_field!(Category, "category", 1..=50, multiline: false);

/// A password as typed: 8–128 characters, never trimmed, never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if !(8..=128).contains(&chars) {
            return Err(ValidationError::new(
                "password",
                "must be 8 to 128 characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_restricted() {
        assert_eq!(Username::parse(" Alice_1 ").unwrap().as_str(), "alice_1");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("ålice").is_err());
        assert!(Username::parse(&"a".repeat(26)).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("A@Example.com").unwrap().as_str(),
            "a@example.com"
        );
        for bad in ["a", "@x.io", "a@b", "a@@b.io", "a b@c.io", "a@.io", "a@io."] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_fields_reject_control_characters_and_bound_length() {
        assert!(StreamTitle::parse("hi\u{7}").is_err());
        assert!(StreamTitle::parse("   ").is_err());
        assert_eq!(
            StreamTitle::parse("  Speedrun ").unwrap().as_str(),
            "Speedrun"
        );
        assert!(Bio::parse("line one\nline two").is_ok());
        assert!(DisplayName::parse("a\nb").is_err());
        assert!(Bio::parse(&"x".repeat(301)).is_err());
    }

    #[test]
    fn text_fields_refuse_invisible_formatting() {
        let refused = Username::parse("adm\u{202E}nimda").unwrap_err();
        assert_eq!(refused, ValidationError::new("username", invisible::REASON));
        assert!(DisplayName::parse("Alice\u{200B}").is_err());
        assert!(StreamTitle::parse("\u{2066}title\u{2069}").is_err());
        assert!(Category::parse("Just\u{00AD}Chatting").is_err());
        assert_eq!(
            DisplayName::parse("dev 👩\u{200D}💻").unwrap().as_str(),
            "dev 👩\u{200D}💻"
        );
    }

    #[test]
    fn avatar_urls_must_be_http() {
        assert!(AvatarUrl::parse("https://cdn.example/a.png").is_ok());
        assert!(AvatarUrl::parse("javascript:alert(1)").is_err());
        assert!(AvatarUrl::parse("https://").is_err());
    }

    #[test]
    fn passwords_are_bounded_and_redacted() {
        assert!(Password::parse("short").is_err());
        let password = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
}
