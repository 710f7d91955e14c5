//! The schema, embedded in the binary, and its migrations. Every server applies them at start
//! under an advisory lock, so that several servers starting at once apply each migration once;
//! a database whose schema is newer than this binary knows is refused.

use tokio_postgres::Client;
use tracing::info;

use super::errors::store_error;
use crate::{
    domain::canonical_uri,
    store::{Result, StoreError},
};

/// The migrations, in order; the schema version is the number applied.
const MIGRATIONS: [&str; 4] = [
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_stories.sql"),
    include_str!("migrations/0003_held.sql"),
    include_str!("migrations/0004_editorial_listing.sql"),
];

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

/// Fills in the canonical address of every article stored before schema 2, oldest first, and
/// makes (source, canonical address) the natural key. Of two old articles of one source that
/// share a canonical address, the older keeps it and the newer keeps NULL: it stays readable
/// by id, and ingesting that address updates the older one.
async fn backfill_canonical_uris(transaction: &tokio_postgres::Transaction<'_>) -> Result<()> {
    let e = |e: tokio_postgres::Error| store_error(&e);
    let rows = transaction
        .query(
            "SELECT id, source_id, uri FROM khabar.articles ORDER BY id",
            &[],
        )
        .await
        .map_err(e)?;
    let mut seen = std::collections::HashSet::new();
    let mut ids: Vec<Vec<u8>> = Vec::new();
    let mut canonical: Vec<String> = Vec::new();
    let mut shared = 0usize;
    for row in &rows {
        let id: Vec<u8> = row.try_get(0).map_err(e)?;
        let source_id: String = row.try_get(1).map_err(e)?;
        let uri: String = row.try_get(2).map_err(e)?;
        let key = (source_id, canonical_uri(&uri));
        if seen.insert(key.clone()) {
            ids.push(id);
            canonical.push(key.1);
        } else {
            shared += 1;
        }
    }
    for (ids, canonical) in ids.chunks(10_000).zip(canonical.chunks(10_000)) {
        transaction
            .execute(
                "UPDATE khabar.articles a SET canonical_uri = c.canonical_uri \
                 FROM unnest($1::bytea[], $2::text[]) AS c(id, canonical_uri) WHERE a.id = c.id",
                &[&ids, &canonical],
            )
            .await
            .map_err(e)?;
    }
    transaction
        .batch_execute(
            "CREATE UNIQUE INDEX articles_natural_key ON khabar.articles (source_id, canonical_uri)",
        )
        .await
        .map_err(e)?;
    info!(
        articles = rows.len(),
        sharing_an_older_key = shared,
        "canonical addresses filled in"
    );
    Ok(())
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
        if next == 2 {
            backfill_canonical_uris(&transaction).await?;
        }
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
