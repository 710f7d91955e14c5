//! `khabar get ID` and `khabar retract ID --reason TEXT`: print one article as proto3 JSON (or,
//! `get --ninjs`, as ninjs 2.1).

use std::process::ExitCode;

use super::{Output, Stop, connect_error, print_pretty, refused, usage_error};
use crate::{
    config::{GetArgs, RetractArgs},
    pb::khabar::v1 as pb,
};

/// Runs `khabar get`.
pub async fn get(args: GetArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let answer = connection
        .articles()
        .get_article(pb::GetArticleRequest {
            id: args.id,
            include_embargoed: args.include_embargoed,
        })
        .await;
    match answer {
        Ok(response) if args.ninjs => print_ninjs(response.into_inner()),
        Ok(response) => print_pretty(&response.into_inner()),
        Err(status) => refused(&status),
    }
}

/// Prints an article as one indented ninjs 2.1 object.
fn print_ninjs(article: pb::Article) -> ExitCode {
    let rendered = crate::wire::article_from_pb(article)
        .map(|article| crate::ninjs::to_ninjs(&article))
        .and_then(|item| serde_json::to_string_pretty(&item).map_err(|e| e.to_string()));
    match rendered.map(|text| Output::new().line(&text)) {
        Ok(Ok(()) | Err(Stop::Closed)) => ExitCode::SUCCESS,
        Ok(Err(Stop::Failed(e))) => usage_error(e),
        Err(e) => usage_error(format!("the server's article cannot be read: {e}")),
    }
}

/// Runs `khabar retract`: prints the article as it is after the retraction.
pub async fn retract(args: RetractArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let answer = connection
        .articles()
        .retract_article(pb::RetractArticleRequest {
            id: args.id,
            reason: args.reason,
        })
        .await;
    match answer {
        Ok(response) => print_pretty(&response.into_inner()),
        Err(status) => refused(&status),
    }
}
