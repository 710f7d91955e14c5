//! The match key of a text: a folded form for comparing texts, never stored in place of them.
//! Two texts that differ only in how they are written (Arabic diacritics or letter variants,
//! digits, invisible marks, punctuation, letter case, spacing) have the same key.
//!
//! [`match_key`] applies NFKC, then:
//!
//! - removes tashkeel (U+064B..=U+065F, U+0670), the other Arabic combining marks (Quranic
//!   annotation signs U+0610..=U+061A, U+06D6..=U+06ED) and tatweel (U+0640);
//! - folds أ إ آ ٱ to ا, ى to ي, ة to ه, and the Persian ک ی to ك ي;
//! - writes Arabic-Indic (U+0660..) and Persian (U+06F0..) digits as ASCII digits;
//! - removes ZWNJ, ZWJ, zero-width spaces and joiners, the byte order mark, soft hyphens, the
//!   Arabic number signs (U+0600..=U+0605), variation selectors, and directional marks and
//!   controls (LRM, RLM, ALM, embeddings, overrides, isolates);
//! - turns punctuation and symbols into spaces: ASCII, Latin-1, general and supplemental
//!   punctuation, Arabic ، ؛ ؟ ٪ ٫ ٬ ٭ ۔ and the ornate parentheses, « », quotes and dashes,
//!   currency signs, arrows, mathematical and technical symbols, and pictographs;
//! - lowercases every other letter and collapses white space to single spaces, trimmed.
//!
//! NFKC comes first so that decomposed letters (alef + combining hamza) and Arabic
//! presentation forms (ﻷ, ﺑ) are the letters they stand for before they are folded. A hamza
//! combined with its carrier is a letter of its own: ؤ and ئ are kept.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// The match key of `text` (see the module documentation). `match_key(&match_key(t))` equals
/// `match_key(t)`.
pub fn match_key(text: &str) -> String {
    let mut key = fold_once(text);
    // Removing a character can leave two that NFKC composes (a Latin letter, a tatweel, then a
    // combining accent), so the key is folded again until it is stable; in practice the first
    // round is almost always the last.
    for _ in 0..4 {
        if is_stable(&key) {
            break;
        }
        key = fold_once(&key);
    }
    key
}

fn fold_once(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Start as if after a space, so that leading spaces are dropped.
    let mut after_space = true;
    let mut push = |c: char, out: &mut String| {
        if c == ' ' {
            if !after_space {
                out.push(' ');
                after_space = true;
            }
        } else {
            out.push(c);
            after_space = false;
        }
    };
    let mut fold_char = |c: char, out: &mut String| match fold(c) {
        Folded::Drop => {}
        Folded::Space => push(' ', out),
        Folded::Char(c) => push(c, out),
        Folded::Lower => c.to_lowercase().for_each(|lower| push(lower, out)),
    };
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.chars().for_each(|c| fold_char(c, &mut out));
    } else {
        text.nfkc().for_each(|c| fold_char(c, &mut out));
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Whether folding `key` again would change nothing.
fn is_stable(key: &str) -> bool {
    if is_nfkc_quick(key.chars()) != IsNormalized::Yes {
        return false;
    }
    let mut after_space = true;
    for c in key.chars() {
        let same = match fold(c) {
            Folded::Char(' ') => !after_space,
            Folded::Char(folded) => folded == c,
            Folded::Lower => {
                let mut lower = c.to_lowercase();
                lower.next() == Some(c) && lower.next().is_none()
            }
            Folded::Drop | Folded::Space => false,
        };
        if !same {
            return false;
        }
        after_space = c == ' ';
    }
    !key.ends_with(' ')
}

enum Folded {
    /// Removed.
    Drop,
    /// Becomes a word separator.
    Space,
    /// Becomes this character.
    Char(char),
    /// Becomes its lowercase.
    Lower,
}

fn fold(c: char) -> Folded {
    match c {
        ' ' => Folded::Char(' '),
        'a'..='z' | '0'..='9' => Folded::Char(c),
        'A'..='Z' => Folded::Char(c.to_ascii_lowercase()),
        // ASCII punctuation, symbols, white space and controls.
        _ if c.is_ascii() => Folded::Space,
        // Tashkeel, superscript alef, Quranic annotation marks, tatweel.
        '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{0610}'..='\u{061A}'
        | '\u{06D6}'..='\u{06DC}'
        | '\u{06DF}'..='\u{06E4}'
        | '\u{06E7}'..='\u{06E8}'
        | '\u{06EA}'..='\u{06ED}'
        | '\u{0640}' => Folded::Drop,
        'أ' | 'إ' | 'آ' | 'ٱ' => Folded::Char('ا'),
        'ى' | 'ی' => Folded::Char('ي'),
        'ة' => Folded::Char('ه'),
        'ک' => Folded::Char('ك'),
        '\u{0660}'..='\u{0669}' => Folded::Char(digit(c as u32 - 0x0660)),
        '\u{06F0}'..='\u{06F9}' => Folded::Char(digit(c as u32 - 0x06F0)),
        // Invisible: joiners, zero-width spaces, marks and controls of direction, BOM, soft
        // hyphen, Arabic number signs.
        '\u{00AD}'
        | '\u{061C}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{0600}'..='\u{0605}' => Folded::Drop,
        // Variation selectors and tags only decorate the character before them.
        '\u{FE00}'..='\u{FE0F}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}' => {
            Folded::Drop
        }
        _ if c.is_whitespace() || c.is_control() => Folded::Space,
        _ if is_punctuation_or_symbol(c) => Folded::Space,
        _ => Folded::Lower,
    }
}

fn digit(value: u32) -> char {
    char::from_digit(value, 10).unwrap_or('0')
}

/// Punctuation and symbols outside ASCII, as news text uses them.
fn is_punctuation_or_symbol(c: char) -> bool {
    matches!(c,
        // Latin-1 punctuation and symbols (what NFKC leaves of them), × and ÷.
        '\u{00A1}'..='\u{00BF}' | '\u{00D7}' | '\u{00F7}'
        // Spacing modifier symbols that are not letters.
        | '\u{02C2}'..='\u{02C5}' | '\u{02D2}'..='\u{02DF}'
        // Greek, Armenian and Hebrew punctuation.
        | '\u{037E}' | '\u{0387}' | '\u{055A}'..='\u{055F}' | '\u{0589}'..='\u{058A}'
        | '\u{05BE}' | '\u{05C0}' | '\u{05C3}' | '\u{05C6}' | '\u{05F3}'..='\u{05F4}'
        // Arabic: math signs, per mille, comma, date separator, poetic verse sign, semicolon,
        // triple dot, question mark, percent, decimal and thousands separators, star, full
        // stop, end of ayah, rub el hizb, sajdah, ornate parentheses.
        | '\u{0606}'..='\u{060F}' | '\u{061B}' | '\u{061D}'..='\u{061F}' | '\u{066A}'..='\u{066D}'
        | '\u{06D4}' | '\u{06DD}'..='\u{06DE}' | '\u{06E9}' | '\u{FD3E}'..='\u{FD3F}'
        // Devanagari danda.
        | '\u{0964}'..='\u{0965}'
        // General punctuation (dashes, quotes, bullets, ellipsis, primes), superscript and
        // subscript signs, currency signs.
        | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{207A}'..='\u{207E}'
        | '\u{208A}'..='\u{208E}' | '\u{20A0}'..='\u{20CF}'
        // Letterlike symbols that are not letters, arrows, mathematical operators, technical
        // symbols, box drawing, shapes, miscellaneous symbols, dingbats, supplemental
        // punctuation.
        | '\u{2100}'..='\u{2101}' | '\u{2103}'..='\u{2106}' | '\u{2108}'..='\u{2109}'
        | '\u{2116}'..='\u{2118}' | '\u{211E}'..='\u{2123}' | '\u{2125}' | '\u{2127}'
        | '\u{2129}' | '\u{212E}' | '\u{213A}'..='\u{213B}' | '\u{2140}'..='\u{2144}'
        | '\u{214A}'..='\u{214D}' | '\u{214F}' | '\u{2190}'..='\u{245F}'
        | '\u{2500}'..='\u{2775}' | '\u{2794}'..='\u{2BFF}' | '\u{2E00}'..='\u{2E7F}'
        // CJK symbols and punctuation, small and fullwidth forms NFKC leaves alone.
        | '\u{3001}'..='\u{3004}' | '\u{3008}'..='\u{3020}' | '\u{3030}' | '\u{303D}'
        | '\u{FE10}'..='\u{FE19}' | '\u{FE30}'..='\u{FE4F}' | '\u{FE50}'..='\u{FE6B}'
        | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}'
        | '\u{FF5B}'..='\u{FF65}' | '\u{FFE0}'..='\u{FFEE}' | '\u{FFFC}'..='\u{FFFD}'
        // Pictographs, emoji and their modifiers, playing cards, mahjong, domino tiles.
        | '\u{1F000}'..='\u{1FAFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_what_the_issue_lists() {
        let cases = [
            ("أمريكا تتخلّى عن حلفائها", "امريكا تتخلي عن حلفائها"),
            ("إسرائيل آخر ٱلكتاب", "اسرائيل اخر الكتاب"),
            ("مدينةُ البوكمال الكبرى", "مدينه البوكمال الكبري"),
            ("الأخـــبار", "الاخبار"),
            ("کتاب یک", "كتاب يك"),
            ("عام ٢٠١٤ و۱۳۹۵", "عام 2014 و1395"),
            ("ضربةً قويةً", "ضربه قويه"),
            ("يروِّج", "يروج"),
            ("می\u{200C}خواهم", "ميخواهم"),
            ("سوريا\u{200F} \u{200E}2016\u{061C}", "سوريا 2016"),
            ("«داعش»، ما؟ نعم؛ لا.", "داعش ما نعم لا"),
            (
                "“واشنطن بوست” – Washington Post!",
                "واشنطن بوست washington post",
            ),
            ("  كلمة\t\n\u{00A0}كلمة  ", "كلمه كلمه"),
            ("ﻻ ﺑﻴﺖ", "لا بيت"),
            ("\u{0627}\u{0654}مريكا", "امريكا"),
            ("٢٫٥ مليون، ١٬٠٠٠ دولار", "2 5 مليون 1 000 دولار"),
            ("ÉCOLE Straße ΣΟΦΙΑ", "école straße σοφια"),
            ("", ""),
            ("،؛؟ ...", ""),
        ];
        for (text, key) in cases {
            assert_eq!(match_key(text), key, "{text}");
        }
    }

    #[test]
    fn keeps_hamza_on_its_carriers() {
        assert_eq!(match_key("مسؤول سُئل"), "مسؤول سئل");
        assert_eq!(match_key("\u{0648}\u{0654}"), "ؤ");
    }

    #[test]
    fn reaches_a_fixed_point_after_removals() {
        // Tatweel between a letter and a combining accent: once the tatweel goes, NFKC composes
        // the two.
        let text = "e\u{0640}\u{0301}";
        assert_eq!(match_key(text), "é");
        assert_eq!(match_key(&match_key(text)), match_key(text));
    }

    #[test]
    fn the_seed_article_folds_to_a_stable_key() {
        let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
        let key = match_key(seed);
        assert_eq!(match_key(&key), key);
        assert!(key.contains("امريكا تتخلي عن حلفائها في سوريا في ذروه المعارك مع داعش"));
        assert!(!key.contains(['ّ', 'ً', '“', '،', '\n']));
    }
}
