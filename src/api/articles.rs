//! `khabar.v1.ArticleService`.

use tonic::{Request, Response, Status};

use super::{convert, filters::article_filter};
use crate::{
    domain::{ArticleId, Timestamp, normalize_line},
    error::{Error, Result},
    pb::khabar::v1::{self as pb, article_service_server::ArticleService},
    store::{ArticleStore, ListQuery, PageToken},
};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1_000;
const MAX_REASON_CHARS: usize = 1_000;

/// Implements `khabar.v1.ArticleService` on a store.
#[derive(Clone)]
pub struct ArticleApi<S> {
    store: S,
    max_page_bytes: usize,
}

impl<S: ArticleStore> ArticleApi<S> {
    /// Serves reads of `store`; listing pages stay below `max_message_bytes`.
    pub fn new(store: S, max_message_bytes: usize) -> Self {
        // Headroom for protobuf framing and the server-set fields the estimate leaves out.
        Self {
            store,
            max_page_bytes: max_message_bytes / 4 * 3,
        }
    }
}

/// A retraction's reason, normalized like an article's single-line fields.
pub(super) fn retraction_reason(raw: &str) -> Result<String> {
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

pub(super) fn parse_id(field: &str, raw: &str) -> Result<ArticleId> {
    raw.parse()
        .map_err(|e: crate::domain::ParseIdError| Error::invalid_field(field, e.to_string()))
}

fn bound(field: &str, raw: Option<pbjson_types::Timestamp>) -> Result<Option<Timestamp>> {
    raw.map(|t| {
        Timestamp::new(t.seconds, t.nanos).ok_or_else(|| {
            Error::invalid_field(field, "must be a valid time between years 0001 and 9999")
        })
    })
    .transpose()
}

impl<S: ArticleStore> ArticleApi<S> {
    fn list_query(&self, request: pb::ListArticlesRequest) -> Result<ListQuery> {
        list_query(request, self.max_page_bytes)
    }
}

/// The listing a request asks for, pages bounded by `max_page_bytes`.
pub(super) fn list_query(
    request: pb::ListArticlesRequest,
    max_page_bytes: usize,
) -> Result<ListQuery> {
    let pb::ListArticlesRequest {
        source_ids,
        languages,
        tags,
        published_after,
        published_before,
        page_size,
        page_token,
        include_retracted,
    } = request;
    let page_size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => return Err(Error::invalid_field("page_size", "must not be negative")),
        // Larger requests are served at the maximum, as is usual for gRPC list calls.
        n => usize::try_from(n)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE),
    };
    let published_after = bound("published_after", published_after)?;
    let published_before = bound("published_before", published_before)?;
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
        filter: article_filter("", source_ids, languages, tags)?,
        published_after,
        published_before,
        include_retracted,
        page_size,
        page_token,
        max_page_bytes,
    })
}

#[tonic::async_trait]
impl<S: ArticleStore> ArticleService for ArticleApi<S> {
    async fn get_article(
        &self,
        request: Request<pb::GetArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        let pb::GetArticleRequest { id } = request.into_inner();
        let id = parse_id("id", &id)?;
        let article = self.store.get(id).await.map_err(Error::from)?;
        Ok(Response::new(convert::article_pb(article)))
    }

    async fn list_articles(
        &self,
        request: Request<pb::ListArticlesRequest>,
    ) -> Result<Response<pb::ListArticlesResponse>, Status> {
        let query = self.list_query(request.into_inner())?;
        let page = self.store.list(query).await.map_err(Error::from)?;
        Ok(Response::new(pb::ListArticlesResponse {
            articles: page.articles.into_iter().map(convert::article_pb).collect(),
            next_page_token: page.next_page_token.map(|t| t.encode()).unwrap_or_default(),
        }))
    }

    async fn retract_article(
        &self,
        request: Request<pb::RetractArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        let pb::RetractArticleRequest { id, reason } = request.into_inner();
        let id = parse_id("id", &id)?;
        let reason = retraction_reason(&reason)?;
        let article = self.store.retract(id, reason).await.map_err(Error::from)?;
        Ok(Response::new(convert::article_pb(article)))
    }
}
