//! Lines that name where a text came from or who wrote it, or that every article of a site
//! carries, rather than telling the story: source lines ("المصدر: موقع روسيا اليوم",
//! "Source: Reuters"), bylines ("بقلم: ...", "By ..."), wire trailers ("Reporting by ...;
//! Editing by ..."), agency tags ("(رويترز)"), and the read-also, follow-us and rights lines
//! sites add. Copies of a story differ in exactly these lines, so they are left out of its
//! fingerprint when they open or close the body.

use unicode_normalization::char::is_combining_mark;

use crate::domain::match_key;

/// Longest line, in words, that is taken for one of these lines.
const MAX_WORDS: usize = 16;
/// Longest line, in bytes, that can be one of these lines (16 long Arabic words and some
/// punctuation): longer ones are paragraphs, known without folding them.
const MAX_BYTES: usize = 400;
/// Most lines dropped at each end: a body is never emptied by a run of look-alike paragraphs.
const MAX_LINES_PER_END: usize = 4;

/// Labels that, followed by a colon or a dash, start a source line or a byline (match keys).
const LABELS: &[&str] = &[
    // Sources.
    "المصدر",
    "مصدر",
    "المصادر",
    "مصدر الخبر",
    "المصدر الاصلي",
    "نقلا عن",
    "عن",
    "source",
    "sources",
    "via",
    // Bylines and credits.
    "بقلم",
    "كتب",
    "كتبت",
    "كتبه",
    "اعداد",
    "اعدته",
    "اعده",
    "تحرير",
    "ترجمه",
    "تقرير",
    "متابعه",
    "مراسل",
    "مراسلنا",
    "تصوير",
    "الصوره",
    "صوره",
    "by",
    "author",
    "written by",
    "reporting by",
    "writing by",
    "editing by",
    "edited by",
    "translated by",
    "additional reporting by",
    "photo",
    "image",
    "credit",
    // Links to other articles and to the site's channels.
    "اقرا ايضا",
    "اقرا المزيد",
    "اقرا",
    "شاهد ايضا",
    "شاهد",
    "للمزيد",
    "تابعونا",
    "read more",
    "read also",
    "see also",
    "related",
    "follow us",
];

/// Openings that mark such a line without a colon (match keys, followed by a space).
const OPENINGS: &[&str] = &[
    "نقلا عن",
    "بقلم",
    "reporting by",
    "writing by",
    "editing by",
    "اقرا ايضا",
    "تابعونا علي",
    "follow us on",
    "جميع الحقوق محفوظه",
    "حقوق النشر محفوظه",
    "all rights reserved",
    "copyright",
];

/// Whether `line` (as written) is a source line, a byline or site furniture.
pub fn is_furniture(line: &str) -> bool {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_BYTES || surely_longer(trimmed) {
        return false;
    }
    let key = match_key(trimmed);
    let words = key.split(' ').filter(|w| !w.is_empty()).count();
    if words > MAX_WORDS {
        return false;
    }
    // An agency tag on its own: "(رويترز)", "[AFP]", "(أ ف ب)".
    let bracketed = (trimmed.starts_with('(') && trimmed.ends_with(')'))
        || (trimmed.starts_with('[') && trimmed.ends_with(']'));
    if bracketed && words <= 4 {
        return true;
    }
    if trimmed.starts_with('©') {
        return true;
    }
    // "Label: rest" or "Label - rest", the label within the first few words.
    let unwrapped = trimmed.trim_start_matches(['(', '[', '*', '-', '–', '—', '•', '|', ' ']);
    if let Some(at) = unwrapped.find([':', '：', '-', '–', '—', '|']) {
        let label = match_key(&unwrapped[..at]);
        if LABELS.contains(&label.as_str()) {
            return true;
        }
    }
    // "By Jane Doe", but not "By the end of the week ...".
    if words <= 4 && key.starts_with("by ") {
        return true;
    }
    OPENINGS.iter().any(|opening| {
        key.strip_prefix(opening)
            .is_some_and(|rest| rest.starts_with(' ') || rest.is_empty())
    })
}

/// Whether `line` has more than [`MAX_WORDS`] words in its match key, known without folding
/// it: every run of non-space characters holding a letter or a digit (other than a tatweel or
/// a combining mark such as tashkeel, which the key may drop) keeps at least one word of its
/// own in the key.
fn surely_longer(line: &str) -> bool {
    line.split_whitespace()
        .filter(|run| run.chars().any(keeps_a_letter))
        .nth(MAX_WORDS)
        .is_some()
}

/// Whether `c` leaves a letter or a digit in the match key (the Arabic letters, most of what
/// is read, are answered without a table lookup).
fn keeps_a_letter(c: char) -> bool {
    matches!(c, '\u{0621}'..='\u{063A}' | '\u{0641}'..='\u{064A}')
        || (c != '\u{0640}' && c.is_alphanumeric() && !is_combining_mark(c))
}

/// `body` without the furniture lines that open or close it (see [`is_furniture`]).
pub fn strip_furniture(body: &str) -> &str {
    Opened::of(body).without_closing_furniture()
}

/// A body without the furniture lines that open it; its closing ones are looked at only when
/// asked for, since a reader of a long body's opening need not look at them. Neither end reads
/// more of the body than its few lines that can be furniture.
pub(crate) struct Opened<'a> {
    /// The body from its first line that is not opening furniture.
    text: &'a str,
}

impl<'a> Opened<'a> {
    /// Leaves out the furniture lines that open `body`.
    pub(crate) fn of(body: &'a str) -> Self {
        let start = first_kept(body, text_lines(body)).map_or(body.len(), |(start, _)| start);
        Self {
            text: &body[start..],
        }
    }

    /// The body from its first line that is not opening furniture.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// The offset in [`Opened::text`] before which it agrees with [`strip_furniture`] whatever
    /// the closing lines are: only the last few lines can be closing furniture.
    pub(crate) fn closing_from(&self) -> usize {
        text_lines_from_end(self.text)
            .take(MAX_LINES_PER_END)
            .last()
            .map_or(0, |(start, _)| start)
    }

    /// The body without the furniture lines that open or close it.
    pub(crate) fn without_closing_furniture(&self) -> &'a str {
        let text = self.text;
        first_kept(text, text_lines_from_end(text)).map_or("", |(_, end)| &text[..end])
    }
}

/// The first of `lines` (of `text`, from one end) that is kept: past at most
/// [`MAX_LINES_PER_END`] furniture lines.
fn first_kept(
    text: &str,
    mut lines: impl Iterator<Item = (usize, usize)>,
) -> Option<(usize, usize)> {
    let mut dropped = 0;
    lines.find(|&(start, end)| {
        let furniture = dropped < MAX_LINES_PER_END && is_furniture(&text[start..end]);
        dropped += usize::from(furniture);
        !furniture
    })
}

/// The lines of `body` that hold more than white space, as (start, end), first to last.
fn text_lines(body: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    body.split_inclusive('\n').filter_map(move |line| {
        let span = (start, start + line.len());
        start = span.1;
        (!line.trim().is_empty()).then_some(span)
    })
}

/// [`text_lines`] from the last to the first.
fn text_lines_from_end(body: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut end = body.len();
    body.split_inclusive('\n').rev().filter_map(move |line| {
        let span = (end - line.len(), end);
        end = span.0;
        (!line.trim().is_empty()).then_some(span)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_source_lines_and_bylines() {
        for line in [
            "المصدر: موقع روسيا اليوم",
            "المصدر : وكالات",
            "المصدر - الجزيرة نت",
            "(المصدر: رويترز)",
            "مصدر الخبر: سبوتنيك",
            "نقلاً عن وكالة الأنباء الفرنسية",
            "Source: Reuters",
            "SOURCES: AP, AFP",
            "بقلم: أحمد محمود",
            "بقلم أحمد محمود",
            "كتب: سامي عبد الله",
            "إعداد: قسم الأخبار",
            "By Jane Doe",
            "Reporting by Ali Hassan; Editing by Mark Smith",
            "(رويترز)",
            "[AFP]",
            "(أ ف ب)",
            "اقرأ أيضاً: الجيش يعلن السيطرة على البلدة",
            "تابعونا على تلغرام",
            "Read more: How the offensive unfolded",
            "جميع الحقوق محفوظة لموقع الخبر © 2016",
            "© 2016 Alkhabar",
        ] {
            assert!(is_furniture(line), "{line}");
        }
    }

    #[test]
    fn a_line_surely_longer_than_a_byline_has_that_many_key_words() {
        let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
        let mut lines: Vec<String> = seed.lines().map(str::to_owned).collect();
        lines.extend([
            "\u{064B} \u{064E} \u{0650} \u{0651} \u{0652} \u{0670} \u{064B} \u{064E} \u{0650} \
             \u{0651} \u{0652} \u{0670} \u{064B} \u{064E} \u{0650} \u{0651} \u{0652} بقلم"
                .to_owned(),
            "ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ ـــ بقلم"
                .to_owned(),
            "أ ب ت ث ج ح خ د ذ ر ز س ش ص ض ط ظ".to_owned(),
            "a-b c.d ١٢ ② ﷺ x y z w v u t s r q p o".to_owned(),
            "« » — ، ؛ ؟ ! . , ( ) [ ] - – | * • ٪ & @ # ~".to_owned(),
        ]);
        for line in &lines {
            let words = match_key(line).split(' ').filter(|w| !w.is_empty()).count();
            if surely_longer(line) {
                assert!(words > MAX_WORDS, "{line}: {words} words");
            }
        }
        assert!(surely_longer(&lines[lines.len() - 3]));
        assert!(
            !surely_longer(&lines[lines.len() - 4]),
            "tatweels are no words"
        );
        assert!(
            !surely_longer(&lines[lines.len() - 5]),
            "tashkeel alone is no word"
        );
    }

    #[test]
    fn labels_are_written_as_match_keys() {
        for label in LABELS.iter().chain(OPENINGS) {
            assert_eq!(match_key(label), *label);
        }
    }

    #[test]
    fn keeps_story_paragraphs() {
        let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
        let paragraphs: Vec<&str> = seed.lines().filter(|l| !l.trim().is_empty()).collect();
        // The masthead, the headline, the view count and every paragraph but the source line.
        for paragraph in &paragraphs[..paragraphs.len() - 1] {
            assert!(!is_furniture(paragraph), "{paragraph}");
        }
        for line in [
            "كتب الرئيس في تغريدة على حسابه أن المفاوضات ستستأنف الأسبوع المقبل بعد توقف دام شهرين كاملين",
            "By the end of the week the army had taken the town.",
            "Sources close to the talks said no agreement was near.",
            "(ملاحظة: تم تحديث هذا الخبر بعد نشره بساعة لإضافة تصريحات المتحدث باسم وزارة الدفاع الذي قال إن العملية مستمرة)",
        ] {
            assert!(!is_furniture(line), "{line}");
        }
    }

    #[test]
    fn strips_only_the_ends() {
        let body = "بقلم: أحمد\n\nالفقرة الأولى من الخبر.\n\nالمصدر: وكالات\n\nالفقرة الأخيرة.\n\nالمصدر: موقع روسيا اليوم\n(رويترز)\n";
        assert_eq!(
            strip_furniture(body),
            "الفقرة الأولى من الخبر.\n\nالمصدر: وكالات\n\nالفقرة الأخيرة.\n"
        );
        assert_eq!(strip_furniture("المصدر: وكالات"), "");
        assert_eq!(strip_furniture(""), "");
        let seed = include_str!("../../tests/fixtures/seed-article-ar.txt");
        assert!(!strip_furniture(seed).contains("روسيا اليوم"));
        assert!(strip_furniture(seed).starts_with("الخبر وما وراء الخبر"));
    }
}
