//! Tables for people on a terminal. Columns are aligned by display width (Arabic letters take
//! one column, their diacritics none, lam-alef one), a column that may hold right-to-left text is
//! wrapped in a directional isolate so that it cannot reorder the rest of the row, and the last
//! column is cut to the terminal's width at a grapheme-cluster boundary.

use std::borrow::Cow;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// FIRST STRONG ISOLATE: the text up to [`PDI`] takes the direction of its first strong letter
/// and is laid out as one unit within the row.
const FSI: char = '\u{2068}';
/// POP DIRECTIONAL ISOLATE.
const PDI: char = '\u{2069}';
const ELLIPSIS: &str = "…";
const GAP: &str = "  ";
/// The last column keeps at least this many columns, however narrow the terminal.
const MIN_LAST: usize = 10;

/// Display width of `text` in a terminal.
pub fn width(text: &str) -> usize {
    text.width()
}

/// `text` without what could move the cursor, recolour the terminal or leak a direction into the
/// rest of the row: control characters become spaces, directional embeddings, overrides and
/// isolates are dropped (the cell gets its own isolate).
pub fn clean(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    text.chars()
        .filter_map(|c| match c {
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => None,
            c if c.is_control() => Some(' '),
            c => Some(c),
        })
        .collect::<String>()
        .into()
}

/// `text` cut to at most `max` columns, ending with "…" when cut. Cuts fall between grapheme
/// clusters, so a letter keeps its diacritics.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    let Some(budget) = max.checked_sub(width(ELLIPSIS)) else {
        return Cow::Borrowed("");
    };
    let mut end = 0;
    for (start, cluster) in text.grapheme_indices(true) {
        let next = start + cluster.len();
        // The whole prefix is measured: a width can depend on the neighbours (lam-alef).
        if width(&text[..next]) > budget {
            break;
        }
        end = next;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", text[..end].trim_end()))
}

/// `text` in a first-strong isolate.
pub fn isolate(text: &str) -> String {
    format!("{FSI}{text}{PDI}")
}

/// A column of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// The values may be right-to-left text: wrap them in an isolate.
    pub bidi: bool,
}

/// A table printed row by row: widths grow as wider values are seen, the last column is not
/// padded and is cut to the line width when one is known.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    widths: Vec<usize>,
    line_width: Option<usize>,
}

impl Table {
    /// A table of `columns` for lines of at most `line_width` columns, if known.
    pub fn new(columns: Vec<Column>, line_width: Option<usize>) -> Self {
        let widths = columns.iter().map(|c| width(c.header)).collect();
        Self {
            columns,
            widths,
            line_width,
        }
    }

    /// Widens the columns (all but the last) to hold every cell of `rows`.
    pub fn fit(&mut self, rows: &[Vec<String>]) {
        let padded = self.widths.len().saturating_sub(1);
        for row in rows {
            for (column, cell) in row.iter().enumerate().take(padded) {
                self.widths[column] = self.widths[column].max(width(&clean(cell)));
            }
        }
    }

    /// The header line.
    pub fn header(&self) -> String {
        let headers: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        self.line(&headers, false)
    }

    /// One row.
    pub fn row(&self, cells: &[String]) -> String {
        self.line(cells, true)
    }

    fn line(&self, cells: &[String], isolate_cells: bool) -> String {
        let mut line = String::new();
        let mut used = 0;
        let last = cells.len().saturating_sub(1);
        for (column, cell) in cells.iter().enumerate() {
            let mut text = clean(cell);
            if column == last
                && let Some(line_width) = self.line_width
            {
                let room = line_width.saturating_sub(used).max(MIN_LAST);
                text = Cow::Owned(truncate(&text, room).into_owned());
            }
            let shown = width(&text);
            let bidi = isolate_cells && self.columns.get(column).is_some_and(|c| c.bidi);
            if bidi {
                line.push_str(&isolate(&text));
            } else {
                line.push_str(&text);
            }
            if column < last {
                // Padding goes outside the isolate, so it stays at the end of the cell in the
                // left-to-right row.
                let target = self.widths.get(column).copied().unwrap_or(shown);
                let pad = target.saturating_sub(shown);
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(GAP);
                used += shown + pad + GAP.len();
            }
        }
        line
    }
}

/// The width of the terminal on standard output: `COLUMNS` when set to a number, else what the
/// terminal says; `None` when neither is known.
pub fn terminal_width() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
        .or_else(|| {
            console::Term::stdout()
                .size_checked()
                .map(|(_, columns)| usize::from(columns))
                .filter(|c| *c > 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADLINE: &str = "أمريكا تتخلى عن حلفائها في سوريا في ذروة المعارك مع “داعش”";

    #[test]
    fn arabic_letters_are_one_column_diacritics_none_lam_alef_one() {
        assert_eq!(width("خبر"), 3);
        // Kha with fatha, ba with shadda and damma.
        assert_eq!(width("خَبُّر"), 3);
        assert_eq!(width("لا"), 1);
        assert_eq!(width("سلام"), 3);
        assert_eq!(width("\u{2068}خبر\u{2069}"), 3);
        assert_eq!(width("١٢٣"), 3);
    }

    #[test]
    fn truncation_respects_width_and_grapheme_clusters() {
        assert_eq!(truncate(HEADLINE, 200), HEADLINE);
        let cut = truncate(HEADLINE, 20);
        assert!(width(&cut) <= 20, "{cut}");
        assert!(cut.ends_with(ELLIPSIS));
        assert!(HEADLINE.starts_with(cut.trim_end_matches(ELLIPSIS)));
        // A letter is never separated from its diacritics: the cut keeps both or neither.
        let voweled = "خَبَرٌ عَاجِلٌ";
        for max in 1..width(voweled) {
            let cut = truncate(voweled, max);
            let kept = cut.trim_end_matches(ELLIPSIS);
            assert!(width(&cut) <= max, "{max}: {cut}");
            assert!(
                voweled
                    .grapheme_indices(true)
                    .any(|(i, g)| i + g.len() == kept.len())
                    || kept.is_empty(),
                "{max}: {cut:?}"
            );
        }
        // Wide characters count two columns.
        assert_eq!(truncate("新闻新闻", 5), "新闻…");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn cells_cannot_carry_controls_or_their_own_direction() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(
            clean("a\u{1b}[31mred\u{202E}evil\u{2066}x\u{2069}\tb"),
            "a [31mredevilx b"
        );
    }

    #[test]
    fn rows_are_aligned_and_right_to_left_cells_isolated() {
        let columns = vec![
            Column {
                header: "SOURCE",
                bidi: false,
            },
            Column {
                header: "NAME",
                bidi: true,
            },
            Column {
                header: "HEADLINE",
                bidi: true,
            },
        ];
        let mut table = Table::new(columns, Some(40));
        let rows = vec![
            vec!["alkhabar".to_owned(), "خبر".to_owned(), HEADLINE.to_owned()],
            vec!["x".to_owned(), "الخبر وما".to_owned(), "short".to_owned()],
        ];
        table.fit(&rows);
        assert_eq!(table.header(), "SOURCE    NAME       HEADLINE");
        let first = table.row(&rows[0]);
        let second = table.row(&rows[1]);
        assert!(
            first.starts_with("alkhabar  \u{2068}خبر\u{2069}        \u{2068}أمريكا"),
            "{first:?}"
        );
        assert_eq!(
            second,
            "x         \u{2068}الخبر وما\u{2069}  \u{2068}short\u{2069}"
        );
        // Every row is within the line width, and the headline column starts at the same column.
        assert!(width(&first) <= 40, "{first}");
        let headline_at = |row: &str| width(&row[..row.rfind('\u{2068}').unwrap()]);
        assert_eq!(headline_at(&first), headline_at(&second));
        assert_eq!(headline_at(&first), width("SOURCE    NAME       "));
    }
}
