//! `khabar get ID`: prints one article as proto3 JSON.

use std::process::ExitCode;

use super::{EXIT_REFUSED, connect_error, describe, usage_error};
use crate::{config::GetArgs, pb::khabar::v1 as pb};

/// Runs `khabar get`.
pub async fn get(args: GetArgs) -> ExitCode {
    let connection = match args.client.connect().await {
        Ok(connection) => connection,
        Err(e) => return connect_error(e),
    };
    let answer = connection
        .articles()
        .get_article(pb::GetArticleRequest {
            id: args.id.clone(),
        })
        .await;
    let article = match answer {
        Ok(response) => response.into_inner(),
        Err(status) => {
            eprintln!("error: {}", describe(&status));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match serde_json::to_string_pretty(&article) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(format!("cannot print the article as JSON: {e}")),
    }
}
