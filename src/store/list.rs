//! Listing articles newest first through the time index, with filters and page tokens.

use sha2::{Digest, Sha256};

use super::{
    Result, StoreError,
    codec::{ArticleHead, PendingRecord},
    index, keys,
    log::Log,
    writer::{read_article, read_pending_article},
};
use crate::domain::{
    Article, ArticleFilter, ArticleId, ArticleStatus, Timestamp, editorial::Urgency,
};

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
        // Hashed only when set, so that a token issued before these filters existed still
        // belongs to the same listing; each carries its own tag byte.
        if let Some(max) = filter.max_urgency {
            h.update([b'u', max.get()]);
        }
        if !filter.genres.is_empty() {
            h.update([b'g']);
            h.update((filter.genres.len() as u64).to_le_bytes());
            for code in &filter.genres {
                h.update((code.len() as u64).to_le_bytes());
                h.update(code.as_bytes());
            }
        }
        if self.include_expired {
            h.update([b'e']);
        }
        if self.order == ListOrder::Urgency {
            h.update([b'o', 1]);
        }
        let digest = h.finalize();
        let mut out = [0; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }

    /// Where the page token says the previous page stopped, once it is checked to belong to
    /// this query's filters and order (`fingerprint`).
    pub(super) fn token_position(&self, fingerprint: [u8; 8]) -> Result<Option<Position>> {
        match &self.page_token {
            None => Ok(None),
            Some(token) if token.fingerprint != fingerprint => Err(StoreError::InvalidPageToken(
                "the token belongs to a listing with other filters or another order; send the \
                 same filters and order, or no token",
            )),
            Some(token) if token.rank.is_some() != (self.order == ListOrder::Urgency) => Err(
                StoreError::InvalidPageToken("the token belongs to a listing in another order"),
            ),
            Some(token) => Ok(Some(Position {
                rank: token.rank.unwrap_or(0),
                published_at: token.published_at,
                id: token.id,
            })),
        }
    }

    /// Whether the head passes every filter of the query (but the publication-time bounds),
    /// `now` deciding what has expired.
    pub(super) fn matches(&self, head: &ArticleHead, now: Timestamp) -> bool {
        (self.include_retracted || head.status != ArticleStatus::Canceled)
            && (self.include_expired || head.expires.is_none_or(|expires| expires > now))
            && (self.story_ids.is_empty() || self.story_ids.contains(&head.story_id()))
            && self
                .filter
                .matches_fields(&head.source_id, &head.language, &head.tags)
            && self.filter.matches_urgency_and_genres(
                head.urgency,
                head.genre_codes.iter().map(String::as_str),
            )
    }

    /// Where `head` sorts in this query's order; listings run from the greatest position down.
    pub(super) fn position(&self, head: &ArticleHead) -> Position {
        Position {
            rank: match self.order {
                ListOrder::Newest => 0,
                ListOrder::Urgency => urgency_rank(head.urgency),
            },
            published_at: head.published_at,
            id: head.id,
        }
    }

    /// The page token that continues after `position`.
    pub(super) fn token_after(&self, position: Position, fingerprint: [u8; 8]) -> PageToken {
        PageToken {
            rank: (self.order == ListOrder::Urgency).then_some(position.rank),
            published_at: position.published_at,
            id: position.id,
            fingerprint,
        }
    }
}

/// The rank of an urgency in the urgency order: 9 for urgency 1 down to 1 for urgency 9, and 0
/// for none, so that the greatest rank lists first.
pub fn urgency_rank(urgency: Option<Urgency>) -> u8 {
    urgency.map_or(0, |u| 10 - u.get())
}

/// A place in a listing's order, which runs from the greatest position down: the urgency rank
/// (0 in the newest-first order), then publication time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// See [`urgency_rank`].
    pub rank: u8,
    /// Publication time.
    pub published_at: Timestamp,
    /// Article id.
    pub id: ArticleId,
}

/// Opaque position in a listing, bound to the filters and order that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The urgency rank in the urgency order; `None` in the newest-first order.
    pub(super) rank: Option<u8>,
    pub(super) published_at: Timestamp,
    pub(super) id: ArticleId,
    pub(super) fingerprint: [u8; 8],
}

/// Newest-first tokens keep the layout they had before the urgency order.
const TOKEN_VERSION: u8 = 1;
/// Urgency-order tokens: the newest-first layout with the rank after the version.
const URGENCY_TOKEN_VERSION: u8 = 2;
const TOKEN_BYTES: usize = 1 + Timestamp::SORTABLE_LEN + ArticleId::LEN + 8;

impl PageToken {
    /// The token as a URL-safe string.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_BYTES + 1);
        match self.rank {
            None => bytes.push(TOKEN_VERSION),
            Some(rank) => bytes.extend_from_slice(&[URGENCY_TOKEN_VERSION, rank]),
        }
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
        if !token.is_ascii() || !token.len().is_multiple_of(2) {
            return Err(MALFORMED);
        }
        let bytes = (0..token.len() / 2)
            .map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| MALFORMED)?;
        let (rank, rest) = match bytes.as_slice() {
            [TOKEN_VERSION, rest @ ..] => (None, rest),
            [URGENCY_TOKEN_VERSION, rank @ 0..=9, rest @ ..] => (Some(*rank), rest),
            _ => return Err(MALFORMED),
        };
        if rest.len() != TOKEN_BYTES - 1 {
            return Err(MALFORMED);
        }
        let published_at = Timestamp::from_sortable_bytes(&rest[..12]).ok_or(MALFORMED)?;
        let id = ArticleId::from_bytes(rest[12..28].try_into().map_err(|_| MALFORMED)?);
        let fingerprint = rest[28..].try_into().map_err(|_| MALFORMED)?;
        Ok(Self {
            rank,
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
/// `now` decides which articles have expired.
pub fn list(tree: &sled::Tree, log: &Log, query: &ListQuery, now: Timestamp) -> Result<ListedPage> {
    if !query.story_ids.is_empty() {
        return list_stories(tree, log, query, now);
    }
    let fingerprint = query.fingerprint();
    let mut below = query.token_position(fingerprint)?;
    let mut page = Page::new(tree, log, query, now);
    let in_bounds = |published_at: Timestamp| {
        query
            .published_after
            .is_none_or(|after| published_at >= after)
            && query
                .published_before
                .is_none_or(|before| published_at < before)
    };

    // The urgency order lists the articles with an urgency through their own index first, then
    // the others through the time index, skipping there the ones already listed.
    if query.order == ListOrder::Urgency && below.is_none_or(|p| p.rank > 0) {
        let upper = match below {
            Some(p) => keys::urgency_index(p.rank, p.published_at, p.id).to_vec(),
            None => keys::urgency_index_from(10),
        };
        let mut entries = tree.range(keys::urgency_index_from(1)..upper).rev();
        for entry in entries.by_ref() {
            let (key, _) = entry?;
            let (rank, published_at, id) =
                keys::parse_urgency_index(&key).ok_or_else(|| malformed(&key))?;
            let position = Position {
                rank,
                published_at,
                id,
            };
            if page.examine(position, in_bounds(published_at))? {
                let more = entries.next().is_some()
                    || time_range_in(tree, query, None).next_back().is_some();
                return Ok(page.finish(more.then_some(position), fingerprint));
            }
        }
        below = None;
    }

    let mut entries = time_range_in(tree, query, below).rev();
    for entry in entries.by_ref() {
        let (key, _) = entry?;
        let (published_at, id) = keys::parse_time_index(&key).ok_or_else(|| malformed(&key))?;
        let position = Position {
            rank: 0,
            published_at,
            id,
        };
        if page.examine(position, true)? {
            let more = entries.next().is_some();
            return Ok(page.finish(more.then_some(position), fingerprint));
        }
    }
    Ok(page.finish(None, fingerprint))
}

fn malformed(key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        key: keys::printable(key),
        reason: "malformed listing index key".into(),
    }
}

/// The time-index entries within the query's publication bounds and below `below`.
fn time_range_in(tree: &sled::Tree, query: &ListQuery, below: Option<Position>) -> sled::Iter {
    let lower = keys::time_index(
        query.published_after.unwrap_or(Timestamp::MIN),
        ArticleId::from_bytes([0; 16]),
    );
    let mut upper = match query.published_before {
        Some(before) => keys::time_index(before, ArticleId::from_bytes([0; 16])).to_vec(),
        None => keys::time_index_end(),
    };
    if let Some(p) = below {
        upper = upper.min(keys::time_index(p.published_at, p.id).to_vec());
    }
    tree.range(lower.to_vec()..upper.max(lower.to_vec()))
}

/// One page being filled from index entries, in listing order.
struct Page<'a> {
    tree: &'a sled::Tree,
    log: &'a Log,
    query: &'a ListQuery,
    now: Timestamp,
    articles: Vec<Article>,
    bytes: usize,
    scanned: usize,
}

impl<'a> Page<'a> {
    fn new(tree: &'a sled::Tree, log: &'a Log, query: &'a ListQuery, now: Timestamp) -> Self {
        Self {
            tree,
            log,
            query,
            now,
            articles: Vec::new(),
            bytes: 0,
            scanned: 0,
        }
    }

    /// Lists the article of the index entry at `position` if it passes the query; true once the
    /// page is full or has scanned its share of entries.
    fn examine(&mut self, position: Position, in_bounds: bool) -> Result<bool> {
        self.scanned += 1;
        if in_bounds && let Some(listed) = Listed::of(self.tree, position.id, self.query.view)? {
            let head = listed.head();
            // An entry is the article's only while the article is at that place: a concurrent
            // update may have moved it, and in the urgency order the time index also holds the
            // articles already listed through the urgency index.
            if self.query.position(head) == position && self.query.matches(head, self.now) {
                let article = listed.read(self.log)?;
                self.bytes += article.approximate_size();
                self.articles.push(article);
            }
        }
        Ok(self.articles.len() >= self.query.page_size
            || self.bytes >= self.query.max_page_bytes
            || self.scanned >= MAX_SCANNED_PER_PAGE)
    }

    /// The page, with a token to continue after `last` when there is more.
    fn finish(self, last: Option<Position>, fingerprint: [u8; 8]) -> ListedPage {
        ListedPage {
            articles: self.articles,
            next_page_token: last.map(|p| self.query.token_after(p, fingerprint)),
        }
    }
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
fn list_stories(
    tree: &sled::Tree,
    log: &Log,
    query: &ListQuery,
    now: Timestamp,
) -> Result<ListedPage> {
    let fingerprint = query.fingerprint();
    let below = query.token_position(fingerprint)?;
    let mut heads = Vec::new();
    for story_id in &query.story_ids {
        heads.extend(story_heads(tree, *story_id)?.into_iter().filter(|head| {
            query.matches(head, now)
                && query
                    .published_after
                    .is_none_or(|after| head.published_at >= after)
                && query
                    .published_before
                    .is_none_or(|limit| head.published_at < limit)
                && below.is_none_or(|position| query.position(head) < position)
        }));
    }
    heads.sort_by_key(|head| std::cmp::Reverse(query.position(head)));
    heads.dedup_by_key(|head| head.id);
    let mut articles = Vec::new();
    let mut page_bytes = 0;
    let mut last = None;
    let total = heads.len();
    for head in heads {
        let article = read_article(log, &head)?;
        page_bytes += article.approximate_size();
        articles.push(article);
        last = Some(query.position(&head));
        if articles.len() >= query.page_size || page_bytes >= query.max_page_bytes {
            break;
        }
    }
    let more = articles.len() < total;
    Ok(ListedPage {
        articles,
        next_page_token: last
            .filter(|_| more)
            .map(|p| query.token_after(p, fingerprint)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let token = PageToken {
            rank: None,
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
