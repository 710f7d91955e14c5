//! Filters sent by clients (listings, feeds), checked and normalized like article
//! fields so that they compare equal to stored values.

use crate::{
    domain::{ArticleFilter, MAX_LIST_ITEM_CHARS, MAX_LIST_ITEMS, normalize_line},
    error::{Error, Result},
};

/// Builds a filter; `prefix` is prepended to field paths in errors (e.g. "filter.").
pub fn article_filter(
    prefix: &str,
    source_ids: Vec<String>,
    languages: Vec<String>,
    tags: Vec<String>,
) -> Result<ArticleFilter> {
    Ok(ArticleFilter {
        source_ids: filter_values(&format!("{prefix}source_ids"), source_ids)?,
        languages: filter_values(&format!("{prefix}languages"), languages)?,
        tags: filter_values(&format!("{prefix}tags"), tags)?,
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
