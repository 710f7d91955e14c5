use super::editorial::{Editorial, Urgency};

/// Which articles a listing or a feed wants: AND across fields, OR within one; an empty field
/// matches everything. Values are compared after the same normalization as article fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleFilter {
    /// Source ids.
    pub source_ids: Vec<String>,
    /// BCP-47 language ranges, matched as in RFC 4647 basic filtering: "ar" matches "ar" and
    /// "ar-SY", case-insensitively.
    pub languages: Vec<String>,
    /// Tags; an article matches if it carries any of them.
    pub tags: Vec<String>,
    /// Only articles with an urgency from 1 to this; `None` matches any urgency, set or not.
    pub max_urgency: Option<Urgency>,
    /// Genre codes; an article matches if it has any of them.
    pub genres: Vec<String>,
}

impl ArticleFilter {
    /// Whether the article content passes the filter.
    pub fn matches(&self, content: &super::ArticleContent) -> bool {
        self.matches_fields(&content.source.id, &content.language, &content.tags)
            && self.matches_editorial(&content.editorial)
    }

    /// Whether the article's editorial metadata passes the urgency and genre filters.
    pub fn matches_editorial(&self, editorial: &Editorial) -> bool {
        self.matches_urgency_and_genres(
            editorial.urgency,
            editorial.genres.iter().map(|g| g.code.as_str()),
        )
    }

    /// Whether an article with this urgency and these genre codes passes the filter.
    pub fn matches_urgency_and_genres<'a>(
        &self,
        urgency: Option<Urgency>,
        mut genre_codes: impl Iterator<Item = &'a str>,
    ) -> bool {
        self.max_urgency
            .is_none_or(|max| urgency.is_some_and(|u| u <= max))
            && (self.genres.is_empty()
                || genre_codes.any(|code| self.genres.iter().any(|g| g == code)))
    }

    /// Whether the filter looks at editorial metadata, which a log event's header lacks.
    pub fn needs_editorial(&self) -> bool {
        self.max_urgency.is_some() || !self.genres.is_empty()
    }

    /// Whether an article with these fields passes the filter; for callers that hold only an
    /// article's header.
    pub fn matches_fields(&self, source_id: &str, language: &str, tags: &[String]) -> bool {
        (self.source_ids.is_empty() || self.source_ids.iter().any(|s| s == source_id))
            && (self.languages.is_empty()
                || self
                    .languages
                    .iter()
                    .any(|range| language_matches(range, language)))
            && (self.tags.is_empty() || tags.iter().any(|t| self.tags.contains(t)))
    }
}

/// RFC 4647 basic filtering: the range equals the tag or is a prefix of it ending at a subtag.
fn language_matches(range: &str, tag: &str) -> bool {
    match tag.get(..range.len()) {
        Some(head) if head.eq_ignore_ascii_case(range) => {
            tag.len() == range.len() || tag.as_bytes()[range.len()] == b'-'
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_ranges_match_by_prefix_at_subtag_boundaries() {
        assert!(language_matches("ar", "ar"));
        assert!(language_matches("ar", "ar-SY"));
        assert!(language_matches("AR", "ar-sy"));
        assert!(language_matches("ar-SY", "ar-SY"));
        assert!(!language_matches("ar", "arz"));
        assert!(!language_matches("ar-SY", "ar"));
        assert!(!language_matches("en", "ar"));
    }
}
