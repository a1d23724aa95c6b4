//! The `sandboxes.archive_key` column: which object holds a sandbox's archived files.

use sqlx::SqlitePool;

/// The key of sandbox `id`'s complete archive, if it has one.
pub async fn key(pool: &SqlitePool, id: &str) -> Result<Option<String>, sqlx::Error> {
    let k: Option<(Option<String>,)> =
        sqlx::query_as("SELECT archive_key FROM sandboxes WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(k.and_then(|(k,)| k))
}

/// Records (or, with `None`, forgets) the complete archive of sandbox `id`.
pub async fn set_key(pool: &SqlitePool, id: &str, key: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET archive_key = ? WHERE id = ?")
        .bind(key)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Stopped sandboxes with auto-archive set: `(id, auto_archive_interval, state_changed_at)`.
pub async fn auto_archive_candidates(
    pool: &SqlitePool,
) -> Result<Vec<(String, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, auto_archive_interval, state_changed_at FROM sandboxes WHERE state = 'stopped'",
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let pool = crate::store::open(t.path()).await.unwrap();
        let mut row = crate::api::sandbox::validate("o", Default::default()).unwrap();
        row.state = "stopped".into();
        crate::store::sandboxes::insert(&pool, &row).await.unwrap();
        assert_eq!(key(&pool, &row.id).await.unwrap(), None);
        set_key(&pool, &row.id, Some("sandboxes/x/upper.tar.zst"))
            .await
            .unwrap();
        assert_eq!(
            key(&pool, &row.id).await.unwrap().as_deref(),
            Some("sandboxes/x/upper.tar.zst")
        );
        let c = auto_archive_candidates(&pool).await.unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0.as_str(), c[0].1), (row.id.as_str(), 10080));
        set_key(&pool, &row.id, None).await.unwrap();
        assert_eq!(key(&pool, &row.id).await.unwrap(), None);
        assert_eq!(key(&pool, "missing").await.unwrap(), None);
    }
}
