//! Listing articles newest first through the time index, with filters and page tokens.

use sha2::{Digest, Sha256};

use super::{
    Result, StoreError,
    codec::{ArticleHead, PendingRecord},
    index, keys,
    log::Log,
    writer::{read_article, read_pending_article},
};
use crate::domain::{Article, ArticleFilter, ArticleId, ArticleStatus, Timestamp};

/// Index entries examined for one page at most. A very selective filter returns a short (even
/// empty) page with a token to go on, instead of scanning the whole store in one call.
const MAX_SCANNED_PER_PAGE: usize = 10_000;

/// Which articles to list, and which page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Which articles.
    pub filter: ArticleFilter,
    /// Inclusive lower bound on publication time.
    pub published_after: Option<Timestamp>,
    /// Exclusive upper bound on publication time.
    pub published_before: Option<Timestamp>,
    /// Also list retracted articles.
    pub include_retracted: bool,
    /// Whether held versions are listed (see [`super::View`]).
    pub view: super::View,
    /// Also list articles past their `expires` time.
    pub include_expired: bool,
    /// Order of the listing.
    pub order: ListOrder,
    /// Only articles of these stories; empty means any.
    pub story_ids: Vec<ArticleId>,
    /// Most articles in the page.
    pub page_size: usize,
    /// Where the previous page stopped.
    pub page_token: Option<PageToken>,
    /// Stop adding articles once their text adds up to this many bytes (at least one is
    /// always returned), so that a page fits in one gRPC message.
    pub max_page_bytes: usize,
}

/// Order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Newest `published_at` first, then by id.
    #[default]
    Newest,
    /// Most urgent first (1 before 9, unset last), then newest `published_at`, then by id.
    Urgency,
}

impl ListQuery {
    /// Identifies the filters, so a token is only accepted with the query that issued it.
    pub(super) fn fingerprint(&self) -> [u8; 8] {
        let mut h = Sha256::new();
        let filter = &self.filter;
        for list in [&filter.source_ids, &filter.languages, &filter.tags] {
            h.update((list.len() as u64).to_le_bytes());
            for item in list {
                h.update((item.len() as u64).to_le_bytes());
                h.update(item.as_bytes());
            }
        }
        for bound in [self.published_after, self.published_before] {
            h.update(bound.map_or([0; 12], Timestamp::to_sortable_bytes));
            h.update([u8::from(bound.is_some())]);
        }
        h.update([u8::from(self.include_retracted)]);
        h.update((self.story_ids.len() as u64).to_le_bytes());
        for id in &self.story_ids {
            h.update(id.to_bytes());
        }
        let digest = h.finalize();
        let mut out = [0; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }

    /// Where the page token says the previous page stopped, once it is checked to belong to
    /// this query's filters (`fingerprint`).
    pub(super) fn token_position(
        &self,
        fingerprint: [u8; 8],
    ) -> Result<Option<(Timestamp, ArticleId)>> {
        match &self.page_token {
            None => Ok(None),
            Some(token) if token.fingerprint != fingerprint => Err(StoreError::InvalidPageToken(
                "the token belongs to a listing with other filters; send the same filters or no token",
            )),
            Some(token) => Ok(Some((token.published_at, token.id))),
        }
    }

    fn matches(&self, head: &ArticleHead) -> bool {
        (self.include_retracted || head.status != ArticleStatus::Canceled)
            && (self.story_ids.is_empty() || self.story_ids.contains(&head.story_id()))
            && self
                .filter
                .matches_fields(&head.source_id, &head.language, &head.tags)
    }
}

/// Opaque position in a listing, bound to the filters that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub(super) published_at: Timestamp,
    pub(super) id: ArticleId,
    pub(super) fingerprint: [u8; 8],
}

const TOKEN_VERSION: u8 = 1;
const TOKEN_BYTES: usize = 1 + Timestamp::SORTABLE_LEN + ArticleId::LEN + 8;

impl PageToken {
    /// The token as a URL-safe string.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.published_at.to_sortable_bytes());
        bytes.extend_from_slice(&self.id.to_bytes());
        bytes.extend_from_slice(&self.fingerprint);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a token made by [`PageToken::encode`].
    pub fn decode(token: &str) -> Result<Self> {
        const MALFORMED: StoreError = StoreError::InvalidPageToken(
            "not a token this server issued; pass next_page_token unchanged",
        );
        if token.len() != TOKEN_BYTES * 2 || !token.is_ascii() {
            return Err(MALFORMED);
        }
        let bytes = (0..TOKEN_BYTES)
            .map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| MALFORMED)?;
        if bytes[0] != TOKEN_VERSION {
            return Err(MALFORMED);
        }
        let published_at = Timestamp::from_sortable_bytes(&bytes[1..13]).ok_or(MALFORMED)?;
        let id = ArticleId::from_bytes(bytes[13..29].try_into().map_err(|_| MALFORMED)?);
        let fingerprint = bytes[29..].try_into().map_err(|_| MALFORMED)?;
        Ok(Self {
            published_at,
            id,
            fingerprint,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListedPage {
    /// Matching articles, newest first.
    pub articles: Vec<Article>,
    /// Where to continue; `None` when the listing is complete.
    pub next_page_token: Option<PageToken>,
}

/// Runs a listing query against the index, reading the listed articles from the log (blocking).
pub fn list(tree: &sled::Tree, log: &Log, query: &ListQuery) -> Result<ListedPage> {
    if !query.story_ids.is_empty() {
        return list_stories(tree, log, query);
    }
    let fingerprint = query.fingerprint();
    let lower = keys::time_index(
        query.published_after.unwrap_or(Timestamp::MIN),
        ArticleId::from_bytes([0; 16]),
    );
    let mut upper = match query.published_before {
        Some(before) => keys::time_index(before, ArticleId::from_bytes([0; 16])).to_vec(),
        None => keys::time_index_end(),
    };
    if let Some((published_at, id)) = query.token_position(fingerprint)? {
        upper = upper.min(keys::time_index(published_at, id).to_vec());
    }

    let mut articles = Vec::new();
    let mut page_bytes = 0;
    let mut scanned = 0;
    let mut last_examined = None;
    let mut entries = tree.range(lower.to_vec()..upper).rev();
    for entry in entries.by_ref() {
        let (key, _) = entry?;
        let (published_at, id) =
            keys::parse_time_index(&key).ok_or_else(|| StoreError::Corrupt {
                key: keys::printable(&key),
                reason: "malformed time index key".into(),
            })?;
        last_examined = Some((published_at, id));
        scanned += 1;
        if let Some(listed) = Listed::of(tree, id, query.view)? {
            let head = listed.head();
            // A concurrent update may have moved the article; it is listed at its new place.
            if head.published_at == published_at && query.matches(head) {
                let article = listed.read(log)?;
                page_bytes += article.approximate_size();
                articles.push(article);
            }
        }
        let page_full = articles.len() >= query.page_size || page_bytes >= query.max_page_bytes;
        if page_full || scanned >= MAX_SCANNED_PER_PAGE {
            break;
        }
    }
    let more = last_examined.is_some() && entries.next().is_some();
    Ok(ListedPage {
        articles,
        next_page_token: last_examined
            .filter(|_| more)
            .map(|(published_at, id)| PageToken {
                published_at,
                id,
                fingerprint,
            }),
    })
}

/// The version of an article a listing shows.
enum Listed {
    /// The last released version.
    Released(ArticleHead),
    /// A held version (listed with held versions only).
    Held(PendingRecord),
}

impl Listed {
    /// What `view` shows of `id`: with held versions, the held one when there is one.
    fn of(tree: &sled::Tree, id: ArticleId, view: super::View) -> Result<Option<Self>> {
        if view == super::View::IncludingHeld
            && let Some(held) = index::pending(tree, id)?.filter(PendingRecord::is_held)
        {
            return Ok(Some(Self::Held(held)));
        }
        Ok(index::head(tree, id)?.map(Self::Released))
    }

    fn head(&self) -> &ArticleHead {
        match self {
            Self::Released(head) => head,
            Self::Held(held) => &held.head,
        }
    }

    fn read(&self, log: &Log) -> Result<Article> {
        match self {
            Self::Released(head) => read_article(log, head),
            Self::Held(held) => read_pending_article(log, held),
        }
    }
}

/// The heads of the articles of `story_id` (retracted ones included), through the story index.
pub fn story_heads(tree: &sled::Tree, story_id: ArticleId) -> Result<Vec<ArticleHead>> {
    let mut heads = Vec::new();
    for id in index::story_members(tree, story_id)? {
        // An entry outlives its article's move to another story only until the move is applied.
        if let Some(head) = index::head(tree, id)?
            && head.story_id() == story_id
        {
            heads.push(head);
        }
    }
    Ok(heads)
}

/// A listing restricted to stories: their members come from the story index rather than from
/// a scan of the time index, then are filtered and ordered like any listing.
fn list_stories(tree: &sled::Tree, log: &Log, query: &ListQuery) -> Result<ListedPage> {
    let fingerprint = query.fingerprint();
    let before = query.token_position(fingerprint)?;
    let mut heads = Vec::new();
    for story_id in &query.story_ids {
        heads.extend(story_heads(tree, *story_id)?.into_iter().filter(|head| {
            let at = (head.published_at, head.id);
            query.matches(head)
                && query
                    .published_after
                    .is_none_or(|after| head.published_at >= after)
                && query
                    .published_before
                    .is_none_or(|limit| head.published_at < limit)
                && before.is_none_or(|position| at < position)
        }));
    }
    heads.sort_by_key(|head| std::cmp::Reverse((head.published_at, head.id)));
    heads.dedup_by_key(|head| head.id);
    let mut articles = Vec::new();
    let mut page_bytes = 0;
    let mut last = None;
    let total = heads.len();
    for head in heads {
        let article = read_article(log, &head)?;
        page_bytes += article.approximate_size();
        articles.push(article);
        last = Some((head.published_at, head.id));
        if articles.len() >= query.page_size || page_bytes >= query.max_page_bytes {
            break;
        }
    }
    let more = articles.len() < total;
    Ok(ListedPage {
        articles,
        next_page_token: last.filter(|_| more).map(|(published_at, id)| PageToken {
            published_at,
            id,
            fingerprint,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let token = PageToken {
            published_at: Timestamp::new(1_467_363_600, 0).unwrap(),
            id: ArticleId::from_bytes([5; 16]),
            fingerprint: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        let text = token.encode();
        assert_eq!(PageToken::decode(&text).unwrap(), token);
        for bad in [
            "",
            "zz",
            &text[..text.len() - 2],
            &format!("02{}", &text[2..]),
            &"g".repeat(text.len()),
        ] {
            assert!(
                matches!(PageToken::decode(bad), Err(StoreError::InvalidPageToken(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprint_depends_on_every_filter() {
        let base = ListQuery::default();
        let variants = [
            ListQuery {
                filter: ArticleFilter {
                    source_ids: vec!["a".into()],
                    ..ArticleFilter::default()
                },
                ..ListQuery::default()
            },
            ListQuery {
                filter: ArticleFilter {
                    languages: vec!["a".into()],
                    ..ArticleFilter::default()
                },
                ..ListQuery::default()
            },
            ListQuery {
                filter: ArticleFilter {
                    tags: vec!["a".into()],
                    ..ArticleFilter::default()
                },
                ..ListQuery::default()
            },
            ListQuery {
                published_after: Some(Timestamp::MIN),
                ..ListQuery::default()
            },
            ListQuery {
                published_before: Some(Timestamp::MIN),
                ..ListQuery::default()
            },
            ListQuery {
                include_retracted: true,
                ..ListQuery::default()
            },
            ListQuery {
                story_ids: vec![ArticleId::from_bytes([1; 16])],
                ..ListQuery::default()
            },
        ];
        for v in &variants {
            assert_ne!(v.fingerprint(), base.fingerprint(), "{v:?}");
        }
        let page_only = ListQuery {
            page_size: 7,
            max_page_bytes: 9,
            ..ListQuery::default()
        };
        assert_eq!(page_only.fingerprint(), base.fingerprint());
    }
}
