//! Follows the head of the log written by every server on the database: `LISTEN khabar_log`
//! wakes feeds as soon as another server commits, and a poll of `log_head` (every interval,
//! and right after each reconnection) makes sure a notification lost while the connection was
//! down, or during a failover, only delays a feed.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::AsyncMessage;
use tracing::{debug, info, warn};

use super::Connector;

/// Longest pause between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs until `stop` resolves (or its sender is dropped).
pub async fn run(
    connector: Connector,
    head: Arc<watch::Sender<u64>>,
    poll_interval: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let outcome = tokio::select! {
            _ = &mut stop => break,
            outcome = follow(&connector, &head, poll_interval) => outcome,
        };
        match outcome {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                warn!(error = %e, "following the log head: connection to PostgreSQL lost; reconnecting");
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    debug!("log head follower stopped");
}

fn advance(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|current| {
        let advanced = to > *current;
        *current = (*current).max(to);
        advanced
    });
}

/// Listens and polls on one connection until it fails.
async fn follow(
    connector: &Connector,
    head: &watch::Sender<u64>,
    poll_interval: Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = connector.connect("listener").await?;
    let (notified_tx, mut notified) = mpsc::channel::<u64>(1024);
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if let Ok(cursor) = note.payload().parse::<u64>()
                        && notified_tx.send(cursor).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(error = %e, "the listening connection failed");
                    break;
                }
                None => break,
            }
        }
    });
    let result = async {
        client.batch_execute("LISTEN khabar_log").await?;
        let poll = client.prepare("SELECT head FROM khabar.log_head").await?;
        info!("following the log head (LISTEN khabar_log)");
        let mut ticks = tokio::time::interval(poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cursor = notified.recv() => match cursor {
                    Some(cursor) => advance(head, cursor),
                    // The connection ended: the next statement tells why.
                    None => {
                        client.query_one(&poll, &[]).await?;
                        return Ok(());
                    }
                },
                // The first tick is immediate: a poll right after (re)connecting.
                _ = ticks.tick() => {
                    let row = client.query_one(&poll, &[]).await?;
                    let polled: i64 = row.try_get(0)?;
                    advance(head, polled as u64);
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
