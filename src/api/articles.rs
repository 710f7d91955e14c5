//! `khabar.v1.ArticleService`.

use tonic::{Request, Response, Status};
use tracing::Span;

use super::convert::{self, parse_id, timestamp_draft};
use crate::{
    auth::Caller,
    error::Error,
    pb::khabar::v1::{self as pb, article_service_server::ArticleService},
    service::{Articles, ListRequest},
    store::{ArticleStore, ListOrder, View},
};

/// Implements `khabar.v1.ArticleService` on a store.
#[derive(Clone)]
pub struct ArticleApi<S> {
    articles: Articles<S>,
}

impl<S: ArticleStore> ArticleApi<S> {
    /// Serves reads of `store`; listing pages stay below `max_message_bytes`.
    pub fn new(store: S, max_message_bytes: usize) -> Self {
        Self {
            articles: Articles::new(store, max_message_bytes),
        }
    }
}

/// The listing a request asks for, as the service layer takes it.
pub(super) fn list_request(request: pb::ListArticlesRequest) -> ListRequest {
    let pb::ListArticlesRequest {
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
        order_by,
    } = request;
    ListRequest {
        source_ids,
        languages,
        tags,
        published_after: published_after.map(timestamp_draft),
        published_before: published_before.map(timestamp_draft),
        page_size,
        page_token,
        include_retracted,
        story_ids,
        include_embargoed,
        include_expired,
        max_urgency,
        genres,
        order: match pb::ListOrder::try_from(order_by) {
            Ok(pb::ListOrder::Urgency) => ListOrder::Urgency,
            // An order this server does not know lists in the default order, as protobuf
            // reads an unknown enum value.
            Ok(pb::ListOrder::Unspecified) | Err(_) => ListOrder::Newest,
        },
    }
}

/// The view a read asks for; held versions only for the admin role.
fn view(caller: Caller, include_embargoed: bool) -> Result<View, Status> {
    match (include_embargoed, caller.admin) {
        (false, _) => Ok(View::Released),
        (true, true) => Ok(View::IncludingHeld),
        (true, false) => Err(Error::PermissionDenied(
            "include_embargoed needs the admin role: embargoed and withheld articles are shown \
             only to editors; leave it unset to read what is released"
                .into(),
        )
        .into()),
    }
}

#[tonic::async_trait]
impl<S: ArticleStore> ArticleService for ArticleApi<S> {
    async fn get_article(
        &self,
        request: Request<pb::GetArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        let caller = Caller::of(&request);
        let pb::GetArticleRequest {
            id,
            include_embargoed,
        } = request.into_inner();
        Span::current().record("article.id", id.as_str());
        let view = view(caller, include_embargoed)?;
        let article = self.articles.get(parse_id("id", &id)?, view).await?;
        Ok(Response::new(convert::article_pb(article)))
    }

    async fn list_articles(
        &self,
        request: Request<pb::ListArticlesRequest>,
    ) -> Result<Response<pb::ListArticlesResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        view(caller, request.include_embargoed)?;
        let page = self.articles.list(list_request(request)).await?;
        Ok(Response::new(pb::ListArticlesResponse {
            articles: page.articles.into_iter().map(convert::article_pb).collect(),
            next_page_token: page.next_page_token.map(|t| t.encode()).unwrap_or_default(),
        }))
    }

    async fn get_story(
        &self,
        request: Request<pb::GetStoryRequest>,
    ) -> Result<Response<pb::GetStoryResponse>, Status> {
        let pb::GetStoryRequest { story_id } = request.into_inner();
        Span::current().record("article.id", story_id.as_str());
        let articles = self
            .articles
            .story(parse_id("story_id", &story_id)?)
            .await?;
        Ok(Response::new(pb::GetStoryResponse {
            articles: articles
                .into_iter()
                .map(convert::story_article_pb)
                .collect(),
        }))
    }

    async fn retract_article(
        &self,
        request: Request<pb::RetractArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        let pb::RetractArticleRequest { id, reason } = request.into_inner();
        Span::current().record("article.id", id.as_str());
        let article = self.articles.retract(parse_id("id", &id)?, &reason).await?;
        Ok(Response::new(convert::article_pb(article)))
    }
}
