//! The SQL store (SQLite by default): opening, migrations, and one module per table.

pub mod access;
pub mod archives;
pub mod keys;
pub mod layers;
pub mod sandboxes;
pub mod snapshots;
pub mod volumes;

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate database {path}")]
    Migrate {
        path: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// Opens (creating if needed) `<data_dir>/cove.db` and applies migrations.
pub async fn open(data_dir: &Path) -> Result<SqlitePool, StoreError> {
    let path = data_dir.join("cove.db");
    let display = path.display().to_string();
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{display}"))
        .map_err(|source| StoreError::Open {
            path: display.clone(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL: a committed transaction survives a process crash (not a power cut).
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .map_err(|source| StoreError::Open {
            path: display.clone(),
            source,
        })?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate {
            path: display,
            source,
        })?;
    Ok(pool)
}
