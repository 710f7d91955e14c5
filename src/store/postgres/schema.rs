//! The schema, embedded in the binary, and its migrations. Every server applies them at start
//! under an advisory lock, so that several servers starting at once apply each migration once;
//! a database whose schema is newer than this binary knows is refused.

use tokio_postgres::Client;
use tracing::info;

use super::errors::store_error;
use crate::store::{Result, StoreError};

/// The migrations, in order; the schema version is the number applied.
const MIGRATIONS: [&str; 1] = [include_str!("migrations/0001_init.sql")];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock held while migrating ("khabar" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b68_6162_6172;

/// Brings the schema up to [`SCHEMA_VERSION`], or refuses a newer one. `client` must be a
/// connection of its own: the advisory lock is held by its session.
pub async fn migrate(client: &mut Client) -> Result<()> {
    let e = |e: tokio_postgres::Error| store_error(&e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(e)?;
    let migrated = apply(client).await;
    // Unlocking can only fail with the connection, which releases the lock anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated
}

async fn apply(client: &mut Client) -> Result<()> {
    let e = |e: tokio_postgres::Error| store_error(&e);
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS khabar")
        .await
        .map_err(e)?;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('khabar.schema_version') IS NOT NULL",
            &[],
        )
        .await
        .map_err(e)?
        .try_get(0)
        .map_err(e)?;
    let mut version: i32 = if exists {
        client
            .query_one("SELECT version FROM khabar.schema_version", &[])
            .await
            .map_err(e)?
            .try_get(0)
            .map_err(e)?
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Incompatible(format!(
            "the database holds khabar schema version {version}, but this khabar knows versions \
             up to {SCHEMA_VERSION}: a newer khabar has written it; run that release (or a later \
             one) against this database"
        )));
    }
    while version < SCHEMA_VERSION {
        let next = version + 1;
        let transaction = client.transaction().await.map_err(e)?;
        transaction
            .batch_execute(MIGRATIONS[version as usize])
            .await
            .map_err(e)?;
        transaction
            .execute("UPDATE khabar.schema_version SET version = $1", &[&next])
            .await
            .map_err(e)?;
        transaction.commit().await.map_err(e)?;
        info!(version = next, "PostgreSQL schema migrated");
        version = next;
    }
    Ok(())
}
