//! Filters sent by clients (listings, feeds), checked and normalized like article
//! fields so that they compare equal to stored values.

use crate::{
    domain::{
        ArticleFilter, MAX_LIST_ITEM_CHARS, MAX_LIST_ITEMS, editorial::Urgency, normalize_line,
    },
    error::{Error, Result},
};

/// The fields of a listing's or a feed's filter as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct FilterDraft {
    /// Source ids (OR).
    pub source_ids: Vec<String>,
    /// BCP-47 language ranges (OR).
    pub languages: Vec<String>,
    /// Tags (OR).
    pub tags: Vec<String>,
    /// 0 for any urgency, else 1 to 9.
    pub max_urgency: u32,
    /// Genre codes (OR).
    pub genres: Vec<String>,
}

/// Builds a filter; `prefix` is prepended to field paths in errors (e.g. "filter.").
pub fn article_filter(prefix: &str, draft: FilterDraft) -> Result<ArticleFilter> {
    let FilterDraft {
        source_ids,
        languages,
        tags,
        max_urgency,
        genres,
    } = draft;
    let max_urgency = match max_urgency {
        0 => None,
        n => Some(Urgency::new(n).ok_or_else(|| {
            Error::invalid_field(
                format!("{prefix}max_urgency"),
                format!("is {n}; use 1 (most urgent only) to 9, or 0 for any urgency"),
            )
        })?),
    };
    Ok(ArticleFilter {
        source_ids: filter_values(&format!("{prefix}source_ids"), source_ids)?,
        languages: filter_values(&format!("{prefix}languages"), languages)?,
        tags: filter_values(&format!("{prefix}tags"), tags)?,
        max_urgency,
        genres: filter_values(&format!("{prefix}genres"), genres)?,
    })
}

fn filter_values(field: &str, raw: Vec<String>) -> Result<Vec<String>> {
    if raw.len() > MAX_LIST_ITEMS {
        return Err(Error::invalid_field(
            field,
            format!(
                "has {} values; at most {MAX_LIST_ITEMS} are allowed",
                raw.len()
            ),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, value)| {
            let value = normalize_line(value);
            if value.is_empty() || value.chars().count() > MAX_LIST_ITEM_CHARS {
                Err(Error::invalid_field(
                    format!("{field}[{i}]"),
                    format!("must be 1 to {MAX_LIST_ITEM_CHARS} characters and not blank"),
                ))
            } else {
                Ok(value)
            }
        })
        .collect()
}
