//! The release timer: every server on the database runs one. It reads the earliest embargo
//! time of any held version from the database (so it sees those other servers stored), sleeps
//! on the store's clock until then (looking again at least every second, and at once when this
//! server stores a new embargo), and asks its writer to release what is due. The writer
//! releases under the head lock, so of two servers racing for the same version the second finds
//! it gone: each version is released once.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::Pool;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use super::{errors::pool_error, errors::store_error, rows, writer::ReleaseRequest};
use crate::{
    domain::{Timestamp, embargo::Clock},
    store::Result,
};

/// The longest the timer goes without reading the next release time from the database.
const LOOK_AGAIN_SECONDS: i64 = 1;

const NEXT_DUE: &str = "SELECT release_s, release_ns FROM khabar.held \
     WHERE release_s IS NOT NULL ORDER BY release_s, release_ns LIMIT 1";

/// The earliest embargo time of a held version, if any.
async fn next_due(pool: &Pool) -> Result<Option<Timestamp>> {
    let client = pool.get().await.map_err(pool_error)?;
    let statement = client
        .prepare_cached(NEXT_DUE)
        .await
        .map_err(|e| store_error(&e))?;
    let rows = client
        .query(&statement, &[])
        .await
        .map_err(|e| store_error(&e))?;
    rows.first()
        .map(|row| rows::time_at(row, 0, "held version"))
        .transpose()
}

/// Asks the writer for one release round; `None` once the writer has stopped.
pub async fn release_now(releases: &mpsc::Sender<ReleaseRequest>) -> Option<Result<usize>> {
    let (reply, answer) = oneshot::channel();
    releases.send(reply).await.ok()?;
    answer.await.ok()
}

/// Runs until `stop` fires or the writer stops.
pub async fn run(
    pool: Pool,
    clock: Arc<dyn Clock>,
    releases: mpsc::Sender<ReleaseRequest>,
    stored: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let now = clock.now();
        let look_again = now.saturating_add_seconds(LOOK_AGAIN_SECONDS);
        let deadline = match next_due(&pool).await {
            Ok(Some(due)) if due <= now => match release_now(&releases).await {
                // More may be due (a round releases a bounded number): look again at once.
                Some(Ok(released)) if released > 0 => continue,
                Some(Ok(_)) => look_again,
                Some(Err(e)) => {
                    warn!(error = %e, "releasing held versions failed; retrying");
                    look_again
                }
                None => break,
            },
            Ok(Some(due)) => due.min(look_again),
            Ok(None) => look_again,
            Err(e) => {
                warn!(error = %e, "cannot read the next embargo time; retrying");
                // A failing database is retried on the wall clock, whatever the store's clock.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stop => break,
                }
                continue;
            }
        };
        // A system clock's sleep ends early now and then (so that a step of the wall clock is
        // noticed); only the deadline or a new embargo sends the timer back to the database.
        loop {
            tokio::select! {
                _ = clock.sleep_until(deadline) => {
                    if clock.now() >= deadline {
                        break;
                    }
                }
                _ = stored.notified() => break,
                _ = &mut stop => {
                    debug!("release timer stopped");
                    return;
                }
            }
        }
    }
    debug!("release timer stopped");
}
