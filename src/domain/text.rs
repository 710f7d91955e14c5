//! Text normalization applied before storing and hashing. Apart from what is listed here the
//! text is kept exactly as sent: Arabic punctuation, diacritics, tatweel, Arabic-Indic digits
//! and directional marks (RLM, LRM, ALM) are content and are never touched.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Bidi embedding, override and isolate controls (U+202A..=U+202E, U+2066..=U+2069). In a
/// single-line field they can only reorder how the text displays (for example to disguise a
/// headline or a URL), so they are stripped there.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Normalizes a single-line field: drops bidi controls, applies NFC and trims white space.
pub fn normalize_line(raw: &str) -> String {
    if raw.chars().any(is_bidi_control) {
        let stripped: String = raw.chars().filter(|c| !is_bidi_control(*c)).collect();
        nfc_trimmed(&stripped)
    } else {
        nfc_trimmed(raw)
    }
}

/// Normalizes a multi-line field (summary, body): applies NFC and trims white space at both ends.
pub fn normalize_block(raw: &str) -> String {
    nfc_trimmed(raw)
}

fn nfc_trimmed(raw: &str) -> String {
    let trimmed = raw.trim();
    // Almost all input is already NFC; the quick check avoids re-composing it.
    if is_nfc_quick(trimmed.chars()) == IsNormalized::Yes {
        trimmed.to_owned()
    } else {
        // NFC can turn leading or trailing combining marks into something trimmable only in
        // theory; trimming again keeps the guarantee simple.
        trimmed.nfc().collect::<String>().trim().to_owned()
    }
}

/// The first control character not in `allowed`, with its position in characters.
pub fn find_control(text: &str, allowed: &[char]) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_arabic_text_byte_for_byte() {
        // Tatweel, shadda over a letter, Arabic comma and question mark, Arabic-Indic digits and
        // an RLM: all of it is content.
        let headline = "أمريكا تتخلّى عن حلفائها، في ذروة المعارك؟ ١٢٣٤ ــ \u{200F}داعش";
        assert_eq!(normalize_line(headline), headline);
        assert_eq!(normalize_block(headline), headline);
    }

    #[test]
    fn keeps_tatweel_and_eastern_arabic_digits() {
        assert_eq!(normalize_line("الأخـــبار ۱۲۳ ٤٥٦"), "الأخـــبار ۱۲۳ ٤٥٦");
    }

    #[test]
    fn strips_bidi_overrides_and_isolates_from_lines() {
        let spoofed = "\u{202E}alkhabar\u{202C} \u{2067}الخبر\u{2069}";
        assert_eq!(normalize_line(spoofed), "alkhabar الخبر");
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}'] {
            assert!(is_bidi_control(c));
        }
        for c in ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert!(is_bidi_control(c));
        }
    }

    #[test]
    fn keeps_directional_marks_which_are_not_controls() {
        for mark in ['\u{200E}', '\u{200F}', '\u{061C}'] {
            assert!(!is_bidi_control(mark));
            let text = format!("سوريا{mark}2016");
            assert_eq!(normalize_line(&text), text);
        }
    }

    #[test]
    fn keeps_bidi_controls_in_blocks() {
        let body = "قال \u{2067}Reuters\u{2069} إن";
        assert_eq!(normalize_block(body), body);
    }

    #[test]
    fn composes_to_nfc() {
        // "e" + combining acute becomes U+00E9; alef + combining hamza above becomes U+0623.
        assert_eq!(normalize_line("Caf\u{0065}\u{0301}"), "Caf\u{00E9}");
        assert_eq!(normalize_line("\u{0627}\u{0654}مريكا"), "أمريكا");
    }

    #[test]
    fn orders_arabic_diacritics_canonically() {
        // NFC puts marks in canonical order: fatha (ccc 30) before shadda (ccc 33). Text that is
        // already in that order is unchanged.
        assert_eq!(normalize_line("ت\u{0651}\u{064E}"), "ت\u{064E}\u{0651}");
        assert_eq!(normalize_line("ت\u{064E}\u{0651}"), "ت\u{064E}\u{0651}");
    }

    #[test]
    fn trims_unicode_white_space() {
        assert_eq!(normalize_line("\u{00A0} خبر \u{3000}\n"), "خبر");
        assert_eq!(normalize_block("\n\nفقرة\n\nفقرة\n"), "فقرة\n\nفقرة");
    }

    #[test]
    fn finds_control_characters_with_position() {
        assert_eq!(find_control("a\tb\nc", &['\n', '\t']), None);
        assert_eq!(find_control("ab\rc", &['\n', '\t']), Some((2, '\r')));
        assert_eq!(find_control("خبر\u{0007}", &[]), Some((3, '\u{0007}')));
        assert_eq!(find_control("a\nb", &[]), Some((1, '\n')));
    }
}
