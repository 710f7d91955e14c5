//! `khabar get ID` and `khabar retract ID --reason TEXT`: print one article as proto3 JSON.

use std::process::ExitCode;

use super::{connect_error, print_pretty, refused};
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
            include_embargoed: false,
        })
        .await;
    match answer {
        Ok(response) => print_pretty(&response.into_inner()),
        Err(status) => refused(&status),
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
