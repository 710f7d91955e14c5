//! Reading, listing and retracting articles.

use super::{FilterDraft, article_filter, time};
use crate::{
    domain::{Article, ArticleId, TimestampDraft, normalize_line},
    error::{Error, Result},
    store::{ArticleStore, ListOrder, ListQuery, ListedPage, PageToken, View},
};

/// Page size when the request leaves it out.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page served; larger requests are served at this size, as is usual for list calls.
pub const MAX_PAGE_SIZE: usize = 1_000;
const MAX_REASON_CHARS: usize = 1_000;

/// A listing request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Source ids (OR).
    pub source_ids: Vec<String>,
    /// BCP-47 language ranges (OR).
    pub languages: Vec<String>,
    /// Tags (OR).
    pub tags: Vec<String>,
    /// Inclusive lower bound on publication time.
    pub published_after: Option<TimestampDraft>,
    /// Exclusive upper bound on publication time.
    pub published_before: Option<TimestampDraft>,
    /// Articles asked for; 0 for the default.
    pub page_size: i32,
    /// The previous page's token, or empty for the first page.
    pub page_token: String,
    /// Also list retracted articles.
    pub include_retracted: bool,
    /// Story ids (OR): only articles of these stories.
    pub story_ids: Vec<String>,
    /// Also list held versions; only for callers with the admin role.
    pub include_embargoed: bool,
    /// Also list articles past their `expires` time.
    pub include_expired: bool,
    /// 0 for any urgency, else only articles of urgency 1 to this.
    pub max_urgency: u32,
    /// Genre codes (OR).
    pub genres: Vec<String>,
    /// Order of the listing.
    pub order: ListOrder,
}

/// Reads, listings and retractions on a store.
#[derive(Clone)]
pub struct Articles<S> {
    store: S,
    max_page_bytes: usize,
}

impl<S: ArticleStore> Articles<S> {
    /// Serves `store`; listing pages stay below `max_message_bytes`.
    pub fn new(store: S, max_message_bytes: usize) -> Self {
        // Headroom for protobuf framing and the server-set fields the estimate leaves out.
        Self {
            store,
            max_page_bytes: max_message_bytes / 4 * 3,
        }
    }

    /// One article, retracted ones included; held versions only in [`View::IncludingHeld`].
    pub async fn get(&self, id: ArticleId, view: View) -> Result<Article> {
        Ok(self.store.get(id, view).await?)
    }

    /// One page of a listing, newest first.
    pub async fn list(&self, request: ListRequest) -> Result<ListedPage> {
        let query = list_query(request, self.max_page_bytes)?;
        Ok(self.store.list(query).await?)
    }

    /// The live articles of a story, oldest first; NOT_FOUND when it has none.
    pub async fn story(&self, story_id: ArticleId) -> Result<Vec<Article>> {
        let articles = self.store.story(story_id).await?;
        if articles.is_empty() {
            return Err(Error::StoryNotFound(story_id));
        }
        Ok(articles)
    }

    /// Retracts an article for `reason` (one line, not blank); retracting again changes nothing.
    pub async fn retract(&self, id: ArticleId, reason: &str) -> Result<Article> {
        let reason = retraction_reason(reason)?;
        Ok(self.store.retract(id, reason).await?)
    }
}

/// A retraction's reason, normalized like an article's single-line fields.
pub(crate) fn retraction_reason(raw: &str) -> Result<String> {
    let reason = normalize_line(raw);
    if reason.is_empty() {
        return Err(Error::invalid_field(
            "reason",
            "is required: say why the article is retracted",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            "reason",
            format!("must be one line of at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason)
}

/// The listing a request asks for, pages bounded by `max_page_bytes`.
pub(crate) fn list_query(request: ListRequest, max_page_bytes: usize) -> Result<ListQuery> {
    let ListRequest {
        source_ids,
        languages,
        tags,
        published_after,
        published_before,
        page_size,
        page_token,
        include_retracted,
        story_ids,
        include_embargoed,
        include_expired,
        max_urgency,
        genres,
        order,
    } = request;
    let story_ids = story_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            id.parse::<ArticleId>()
                .map_err(|e| Error::invalid_field(format!("story_ids[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let page_size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => return Err(Error::invalid_field("page_size", "must not be negative")),
        n => usize::try_from(n)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE),
    };
    let published_after = time("published_after", published_after)?;
    let published_before = time("published_before", published_before)?;
    if let (Some(after), Some(before)) = (published_after, published_before)
        && after >= before
    {
        return Err(Error::invalid_field(
            "published_after",
            "must be earlier than published_before (the range includes published_after and excludes published_before)",
        ));
    }
    let page_token = match page_token.trim() {
        "" => None,
        token => Some(PageToken::decode(token)?),
    };
    Ok(ListQuery {
        filter: article_filter(
            "",
            FilterDraft {
                source_ids,
                languages,
                tags,
                max_urgency,
                genres,
            },
        )?,
        published_after,
        published_before,
        include_retracted,
        view: if include_embargoed {
            View::IncludingHeld
        } else {
            View::Released
        },
        include_expired,
        order,
        story_ids,
        page_size,
        page_token,
        max_page_bytes,
    })
}
