//! Chat message text: what a viewer typed, made safe to show.

use crate::ValidationError;
use crate::invisible::{self, contains_invisible};

/// A chat message's text: control characters stripped (a pasted terminal escape cannot
/// reach other viewers), invisible formatting refused (a zero-width or bidi trick is
/// deliberate, not pasted noise), trimmed, 1–500 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
        let text = cleaned.trim();
        if text.is_empty() {
            return Err(ValidationError::new("text", "must not be empty"));
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "text",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if contains_invisible(text) {
            return Err(ValidationError::new("text", invisible::REASON));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_bounds() {
        assert_eq!(
            ChatText::parse("  hi\u{1b}[31m there\u{0} ")
                .unwrap()
                .as_str(),
            "hi[31m there"
        );
        assert!(ChatText::parse(" \t\n ").is_err());
        assert!(ChatText::parse("\u{7}\u{8}").is_err());
        assert!(ChatText::parse(&"x".repeat(501)).is_err());
        assert!(ChatText::parse(&"é".repeat(500)).is_ok());
    }

    #[test]
    fn refuses_invisible_formatting_but_keeps_emoji() {
        assert!(ChatText::parse("hi\u{200B}there").is_err());
        assert!(ChatText::parse("\u{202E}olleh").is_err());
        assert!(ChatText::parse("👩\u{200D}💻 coding").is_ok());
    }
}
