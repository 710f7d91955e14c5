//! PostgreSQL failures as [`StoreError`]s: lost connections, a server shutting down or failing
//! over, a read-only server and contention are `Unavailable` (nothing was written; retry), and
//! anything else is a `Database` error with its SQLSTATE.

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// What a failed statement means for the caller.
pub fn store_error(error: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        let retryable = matches!(class, "08" | "53" | "57")
            || [
                SqlState::READ_ONLY_SQL_TRANSACTION,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
            ]
            .contains(code);
        if retryable {
            return StoreError::Unavailable(format!(
                "PostgreSQL refused the statement ({}: {}); nothing was written, retry",
                code.code(),
                db.message()
            ));
        }
        return StoreError::Database(format!(
            "PostgreSQL error {}: {}",
            code.code(),
            db.message()
        ));
    }
    if is_connection_error(error) {
        return StoreError::Unavailable(format!(
            "cannot reach PostgreSQL ({error}); nothing was written, retry"
        ));
    }
    StoreError::Database(format!("PostgreSQL client error: {error}"))
}

/// Whether the connection, not the statement, failed: the server is gone, unreachable or
/// closed the connection.
pub fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let class = &code.code()[..2];
        return matches!(class, "08" | "57");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    let text = error.to_string();
    text.starts_with("error connecting") || text.starts_with("timeout")
}

/// A failed COMMIT: when the connection broke, the transaction may have committed or not.
pub fn commit_error(error: &tokio_postgres::Error) -> StoreError {
    if is_connection_error(error) {
        StoreError::OutcomeUnknown(format!(
            "the connection to PostgreSQL was lost during COMMIT ({error})"
        ))
    } else {
        store_error(error)
    }
}

/// A pool that could not hand out a connection.
pub fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(e) => store_error(&e),
        other => StoreError::Unavailable(format!(
            "no PostgreSQL connection available ({other}); retry"
        )),
    }
}
