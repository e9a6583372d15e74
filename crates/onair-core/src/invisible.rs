//! Invisible formatting characters (Unicode general category Cf): bidi overrides and
//! isolates, zero-width spaces, the byte-order mark, soft hyphens, tag characters. They
//! let a name look like another one or reorder what other viewers read, so user text
//! refuses them — except inside emoji, which need the zero-width joiner (👩‍💻) and tags
//! (the flags of England, Scotland and Wales).

/// Category Cf as of Unicode 16.0: 21 ranges, 170 code points. A hand list rather than a
/// Unicode-tables crate: Cf changes rarely (one range grew in 15.0, none since), and
/// this is all we need of those tables.
const FORMAT_RANGES: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

const ZWJ: char = '\u{200D}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';
/// The reason given for a refused field.
pub(crate) const REASON: &str = "must not contain invisible formatting characters";

fn is_format(c: char) -> bool {
    FORMAT_RANGES
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Pictographs an emoji ZWJ sequence joins (an approximation of Extended_Pictographic:
/// the symbol blocks, the emoji planes, and the variation selector and skin tones that
/// may end an element).
fn is_emoji_part(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2190}'..='\u{2BFF}' | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{FE0F}' | '\u{1F000}'..='\u{1FAFF}')
}

/// An emoji tag sequence's tags after 🏴: a subdivision code of lower-case letters and
/// digits (gbsct), then the cancel tag.
fn tag_sequence_len(rest: &[char]) -> Option<usize> {
    let code = rest
        .iter()
        .take_while(|&&c| matches!(c, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
        .count();
    ((1..=6).contains(&code) && rest.get(code) == Some(&CANCEL_TAG)).then_some(code + 1)
}

/// Whether `text` holds a format character outside an emoji sequence.
pub(crate) fn contains_invisible(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == BLACK_FLAG {
            i += 1 + tag_sequence_len(&chars[i + 1..]).unwrap_or(0);
            continue;
        }
        let joins_emoji = c == ZWJ
            && i > 0
            && is_emoji_part(chars[i - 1])
            && chars.get(i + 1).is_some_and(|&next| is_emoji_part(next));
        if is_format(c) && !joins_emoji {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_format_characters() {
        for bad in [
            "a\u{202E}b",
            "\u{2066}x\u{2069}",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "soft\u{00AD}hyphen",
            "a\u{200D}b",
            "\u{200D}👩",
            "👩\u{200D}",
            "tag\u{E0041}",
            "🏴\u{E0067}\u{E0062}",
        ] {
            assert!(contains_invisible(bad), "{bad:?}");
        }
    }

    #[test]
    fn allows_emoji_sequences() {
        for good in [
            "plain text, ünïcode, 日本語",
            "👩\u{200D}💻",
            "👩🏽\u{200D}💻",
            "🏳\u{FE0F}\u{200D}🌈",
            "👩\u{200D}❤\u{FE0F}\u{200D}💋\u{200D}👨",
            "🐻\u{200D}❄\u{FE0F}",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
            "🏴 plain black flag",
        ] {
            assert!(!contains_invisible(good), "{good:?}");
        }
    }

    #[test]
    fn the_table_is_sorted_and_counts_170_code_points() {
        let total: u32 = FORMAT_RANGES
            .iter()
            .map(|&(first, last)| last as u32 - first as u32 + 1)
            .sum();
        assert_eq!(total, 170);
        assert!(FORMAT_RANGES.windows(2).all(|w| w[0].1 < w[1].0));
    }
}
