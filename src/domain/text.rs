//! Text normalization applied before storing and hashing. Apart from what is listed here the
//! text is kept exactly as sent: Arabic punctuation, diacritics, tatweel, Arabic-Indic digits
//! and directional marks (RLM, LRM, ALM) are content and are never touched.

use std::sync::LazyLock;

use unicode_normalization::{
    IsNormalized, UnicodeNormalization, char::canonical_combining_class, is_nfc_quick,
};

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
/// Text that needs neither is returned as it came, without a copy.
pub fn normalize_block(raw: String) -> String {
    let trimmed = raw.trim();
    if trimmed.len() == raw.len() && is_nfc_fast(&raw) == IsNormalized::Yes {
        raw
    } else {
        nfc_trimmed(&raw)
    }
}

/// Characters the fast paths of text checks answer from a table: those below U+0800 (Latin,
/// Greek, Cyrillic, Hebrew and Arabic letters, digits and punctuation), then the General
/// Punctuation block (U+2000..U+2080: the quotes, dashes and ellipsis news text uses among
/// them). [`fast_slot`] gives a character's place in such a table.
pub(crate) const FAST_SLOTS: usize = 0x800 + 0x80;

/// The place of the character `code` in a table of [`FAST_SLOTS`], if it has one.
#[inline(always)]
pub(crate) fn fast_slot(code: u32) -> Option<usize> {
    match code {
        0..0x800 => Some(code as usize),
        0x2000..0x2080 => Some((code - 0x2000) as usize + 0x800),
        _ => None,
    }
}

/// The character at place `slot` of a table of [`FAST_SLOTS`].
pub(crate) fn slot_char(slot: usize) -> Option<char> {
    let code = if slot < 0x800 {
        slot
    } else {
        slot - 0x800 + 0x2000
    };
    u32::try_from(code).ok().and_then(char::from_u32)
}

/// The [`fast_slot`] of the character that starts `bytes`, a `str`'s bytes from a character
/// boundary, and its length in bytes; `None` for a character with no slot (or no bytes).
#[inline(always)]
pub(crate) fn fast_slot_utf8(bytes: &[u8]) -> Option<(usize, usize)> {
    // The bytes after a lead byte of a `str` are continuation bytes.
    match *bytes {
        [lead, ..] if lead < 0x80 => Some((usize::from(lead), 1)),
        [lead, next, ..] if lead & 0xE0 == 0xC0 => {
            Some((usize::from(lead & 0x1F) << 6 | usize::from(next & 0x3F), 2))
        }
        // U+2000..U+207F: E2 80 80..E2 81 BF.
        [0xE2, second @ 0x80..=0x81, third, ..] => Some((
            0x800 + (usize::from(second & 0x01) << 6 | usize::from(third & 0x3F)),
            3,
        )),
        _ => None,
    }
}

/// A UAX #15 quick check (NFC or NFKC) that answers from a bitset for the characters most text
/// is made of: the same answers as the check it wraps, without two table lookups for each
/// Arabic letter.
pub(crate) struct FastQuickCheck {
    /// The characters of [`FAST_SLOTS`] that are starters (canonical combining class 0) and
    /// quick check Yes, one bit each. Built from the normalization tables themselves.
    simple_starters: [u64; FAST_SLOTS / 64],
    check: fn(std::iter::Once<char>) -> IsNormalized,
}

impl FastQuickCheck {
    /// Wraps `check` (`is_nfc_quick` or `is_nfkc_quick`).
    pub(crate) fn new(check: fn(std::iter::Once<char>) -> IsNormalized) -> Self {
        let mut simple_starters = [0; FAST_SLOTS / 64];
        for slot in 0..FAST_SLOTS {
            if let Some(c) = slot_char(slot)
                && canonical_combining_class(c) == 0
                && check(std::iter::once(c)) == IsNormalized::Yes
            {
                simple_starters[slot / 64] |= 1 << (slot % 64);
            }
        }
        Self {
            simple_starters,
            check,
        }
    }

    /// Whether the character at place `slot` of [`FAST_SLOTS`] is a starter the quick check
    /// answers Yes for whatever comes before it.
    #[inline(always)]
    pub(crate) fn is_simple_starter_slot(&self, slot: usize) -> bool {
        self.simple_starters[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Whether the character `code` is a starter the quick check answers Yes for whatever
    /// comes before it (answered from the table; false for characters outside it).
    pub(crate) fn is_simple_starter(&self, code: u32) -> bool {
        fast_slot(code).is_some_and(|slot| self.is_simple_starter_slot(slot))
    }

    /// The quick check of `text`.
    pub(crate) fn run(&self, text: &str) -> IsNormalized {
        let mut state = QuickCheckState::default();
        for c in text.chars() {
            match self.step(c, &mut state) {
                IsNormalized::No => return IsNormalized::No,
                IsNormalized::Maybe => state.maybe = true,
                IsNormalized::Yes => {}
            }
        }
        if state.maybe {
            IsNormalized::Maybe
        } else {
            IsNormalized::Yes
        }
    }

    /// The quick check's answer for the next character `c` of a text, given what came before
    /// it: [`FastQuickCheck::run`] one character at a time, for a caller that reads the text
    /// anyway.
    #[inline]
    pub(crate) fn step(&self, c: char, state: &mut QuickCheckState) -> IsNormalized {
        if self.is_simple_starter(c as u32) {
            state.after_simple_starter();
            return IsNormalized::Yes;
        }
        self.step_slow(c, state)
    }

    fn step_slow(&self, c: char, state: &mut QuickCheckState) -> IsNormalized {
        let class = canonical_combining_class(c);
        if state.last_class > class && class != 0 {
            return IsNormalized::No;
        }
        state.last_class = class;
        (self.check)(std::iter::once(c))
    }
}

/// What [`FastQuickCheck::step`] remembers of the characters before.
#[derive(Debug, Default)]
pub(crate) struct QuickCheckState {
    last_class: u8,
    /// Whether some character was answered Maybe (kept by callers of `step`).
    maybe: bool,
}

impl QuickCheckState {
    /// Records a character [`FastQuickCheck::is_simple_starter`] accepts, for a caller that
    /// checks those itself: what [`FastQuickCheck::step`] would do with it.
    #[inline(always)]
    pub(crate) fn after_simple_starter(&mut self) {
        self.last_class = 0;
    }

    /// Records a combining mark of canonical combining `class` (not 0) that the quick check
    /// answers Yes for, for a caller that checks those itself; false when it is out of
    /// canonical order, where [`FastQuickCheck::step`] would answer No.
    #[inline(always)]
    pub(crate) fn after_mark(&mut self, class: u8) -> bool {
        let ordered = self.last_class <= class;
        self.last_class = class;
        ordered
    }
}

static NFC_QUICK_CHECK: LazyLock<FastQuickCheck> =
    LazyLock::new(|| FastQuickCheck::new(is_nfc_quick));

/// The NFC quick check of UAX #15 (see [`FastQuickCheck`]).
fn is_nfc_fast(text: &str) -> IsNormalized {
    NFC_QUICK_CHECK.run(text)
}

fn nfc_trimmed(raw: &str) -> String {
    let trimmed = raw.trim();
    // Almost all input is already NFC; the quick check avoids re-composing it.
    if is_nfc_fast(trimmed) == IsNormalized::Yes {
        trimmed.to_owned()
    } else {
        // NFC can turn leading or trailing combining marks into something trimmable only in
        // theory; trimming again keeps the guarantee simple.
        trimmed.nfc().collect::<String>().trim().to_owned()
    }
}

/// The first control character not in `allowed`, with its position in characters.
pub fn find_control(text: &str, allowed: &[char]) -> Option<(usize, char)> {
    // Control characters (U+0000..=U+001F, U+007F..=U+009F) are encoded with bytes below 0x20,
    // 0x7F, or 0xC2 followed by 0x80..=0x9F; a byte scan rules most text out without decoding
    // it, and the characters are decoded and counted only when such a byte is found.
    // Written as a fold without early exit so that the compiler vectorizes it.
    let candidate = text.as_bytes().iter().fold(false, |seen, b| {
        seen | (*b < 0x20) | (*b == 0x7f) | (*b == 0xc2)
    });
    if !candidate {
        return None;
    }
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_has_the_same_fast_slot_from_its_code_and_from_its_bytes() {
        for slot in 0..FAST_SLOTS {
            let Some(c) = slot_char(slot) else {
                continue;
            };
            assert_eq!(fast_slot(c as u32), Some(slot), "{c:?}");
            let mut utf8 = [0; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            assert_eq!(fast_slot_utf8(bytes), Some((slot, bytes.len())), "{c:?}");
        }
        for c in ['\u{0800}', '\u{1FFF}', '\u{2080}', '\u{20AC}', 'ﻷ', '😀'] {
            assert_eq!(fast_slot(c as u32), None, "{c:?}");
            let mut utf8 = [0; 4];
            assert_eq!(
                fast_slot_utf8(c.encode_utf8(&mut utf8).as_bytes()),
                None,
                "{c:?}"
            );
        }
        assert_eq!(fast_slot_utf8(&[]), None);
    }

    #[test]
    fn the_fast_quick_check_answers_as_the_full_one() {
        let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
        // Starters, Arabic marks in and out of canonical order, composable hamza and maddah,
        // Latin with combining accents, Hangul, and characters outside the table.
        let pieces = [
            "ا", "ب", "ّ", "َ", "ُ", "ٰ", "ٓ", "ٔ", "ٕ", "ـ", "،", "٣", "۱", "e", "\u{301}", "\u{327}",
            "é", "Å", "\u{212B}", "가", "\u{1100}", "\u{1161}", "ǅ", "ﷲ", "ﻻ", "\u{200F}", " ",
            "\n",
        ];
        let mut texts: Vec<String> = vec![seed.to_owned(), String::new()];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    texts.push(format!("{a}{b}{c}"));
                }
            }
        }
        for text in &texts {
            assert_eq!(
                is_nfc_fast(text),
                is_nfc_quick(text.chars()),
                "{:?}",
                text.chars().map(|c| c as u32).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn blocks_already_normal_are_not_copied() {
        let body = "نص الخبر\nفقرة ثانية".to_owned();
        let before = body.as_ptr();
        let normalized = normalize_block(body);
        assert_eq!(normalized.as_ptr(), before);
        assert_eq!(normalize_block("  نص  ".into()), "نص");
        assert_eq!(normalize_block("e\u{301}".into()), "é");
    }

    #[test]
    fn keeps_arabic_text_byte_for_byte() {
        // Tatweel, shadda over a letter, Arabic comma and question mark, Arabic-Indic digits and
        // an RLM: all of it is content.
        let headline = "أمريكا تتخلّى عن حلفائها، في ذروة المعارك؟ ١٢٣٤ ــ \u{200F}داعش";
        assert_eq!(normalize_line(headline), headline);
        assert_eq!(normalize_block(headline.to_owned()), headline);
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
        assert_eq!(normalize_block(body.to_owned()), body);
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
        assert_eq!(normalize_block("\n\nفقرة\n\nفقرة\n".into()), "فقرة\n\nفقرة");
    }

    #[test]
    fn finds_control_characters_with_position() {
        assert_eq!(find_control("a\tb\nc", &['\n', '\t']), None);
        assert_eq!(find_control("ab\rc", &['\n', '\t']), Some((2, '\r')));
        assert_eq!(find_control("خبر\u{0007}", &[]), Some((3, '\u{0007}')));
        assert_eq!(find_control("a\nb", &[]), Some((1, '\n')));
        // C1 controls are two bytes in UTF-8; no-break space (U+00A0) shares their first byte.
        assert_eq!(find_control("خبر\u{0085}", &[]), Some((3, '\u{0085}')));
        assert_eq!(find_control("\u{009F}", &[]), Some((0, '\u{009F}')));
        assert_eq!(
            find_control("خبر\u{00A0}عاجل\u{007F}", &[]),
            Some((8, '\u{007F}'))
        );
        assert_eq!(find_control("خبر\u{00A0}\u{00C2}", &[]), None);
    }
}
