//! The `snapshots` table: one row per snapshot; sandboxes refer to a snapshot by name in
//! their `snapshot` column (names are unique per organization).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

/// A snapshot as stored.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct SnapshotRow {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub image_name: Option<String>,
    pub state: String,
    pub cpu: i64,
    pub gpu: i64,
    pub mem: i64,
    pub disk: i64,
    /// Bytes of the snapshot's own layer (None when it has none).
    pub size: Option<i64>,
    /// JSON array of strings, or None.
    pub entrypoint: Option<String>,
    pub source_sandbox_id: Option<String>,
    /// JSON array of layer references, lowest first (see `layers.rs`).
    pub layers: String,
    pub error_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
}

impl SnapshotRow {
    /// Its layers as stored (`@default`, `layers/<id>`; see `layers.rs`), lowest first.
    pub fn layer_entries(&self) -> Vec<String> {
        serde_json::from_str(&self.layers).unwrap_or_default()
    }

    /// The command sandboxes of this snapshot run at boot; empty for none.
    pub fn entrypoint_argv(&self) -> Vec<String> {
        self.entrypoint
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_default()
    }
}

/// Sort fields of `GET /snapshots?sort=` and their columns.
pub const SORT_FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("state", "state"),
    ("createdAt", "created_at"),
    ("updatedAt", "updated_at"),
    ("lastUsedAt", "last_used_at"),
];

/// A checked list query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Entries the caller lists ahead of the stored ones (the default image): page 1 holds
    /// that many fewer stored rows, and later pages start that many rows earlier.
    pub lead: i64,
    /// Substring of the name.
    pub name: Option<String>,
    pub source_sandbox_id: Option<String>,
    /// A column from [`SORT_FIELDS`].
    pub sort_column: &'static str,
    pub descending: bool,
    /// 1-based.
    pub page: i64,
    pub limit: i64,
}

/// Inserts a new row; a duplicate name in the organization is a unique-constraint error.
pub async fn insert(pool: &SqlitePool, s: &SnapshotRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO snapshots (id, org_id, name, image_name, state, cpu, gpu, mem, disk, size,
         entrypoint, source_sandbox_id, layers, error_reason, created_at, updated_at,
         last_used_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(&s.id)
    .bind(&s.org_id)
    .bind(&s.name)
    .bind(&s.image_name)
    .bind(&s.state)
    .bind(s.cpu)
    .bind(s.gpu)
    .bind(s.mem)
    .bind(s.disk)
    .bind(s.size)
    .bind(&s.entrypoint)
    .bind(&s.source_sandbox_id)
    .bind(&s.layers)
    .bind(&s.error_reason)
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .bind(&s.last_used_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// A snapshot of `org` by id, else by name.
pub async fn find(
    pool: &SqlitePool,
    org: &str,
    id_or_name: &str,
) -> Result<Option<SnapshotRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM snapshots WHERE org_id = ? AND (id = ? OR name = ?)
         ORDER BY id = ? DESC LIMIT 1",
    )
    .bind(org)
    .bind(id_or_name)
    .bind(id_or_name)
    .bind(id_or_name)
    .fetch_optional(pool)
    .await
}

/// A snapshot of `org` by name (how a sandbox row refers to it).
pub async fn by_name(
    pool: &SqlitePool,
    org: &str,
    name: &str,
) -> Result<Option<SnapshotRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM snapshots WHERE org_id = ? AND name = ?")
        .bind(org)
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Every row in `state` (any organization), for reconciliation at start-up.
pub async fn in_state(pool: &SqlitePool, state: &str) -> Result<Vec<SnapshotRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM snapshots WHERE state = ? ORDER BY seq")
        .bind(state)
        .fetch_all(pool)
        .await
}

fn push_filters<'a>(q: &mut QueryBuilder<'a, Sqlite>, org: &'a str, lq: &'a ListQuery) {
    q.push(" WHERE org_id = ").push_bind(org);
    if let Some(n) = &lq.name {
        q.push(" AND name LIKE ")
            .push_bind(format!("%{}%", super::sandboxes::like_escape(n)))
            .push(" ESCAPE '\\'");
    }
    if let Some(s) = &lq.source_sandbox_id {
        q.push(" AND source_sandbox_id = ").push_bind(s);
    }
}

/// One page of `org`'s snapshots and the total matching the filters.
pub async fn list(
    pool: &SqlitePool,
    org: &str,
    lq: &ListQuery,
) -> Result<(Vec<SnapshotRow>, i64), sqlx::Error> {
    let mut count: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM snapshots");
    push_filters(&mut count, org, lq);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM snapshots");
    push_filters(&mut q, org, lq);
    let dir = if lq.descending { "DESC" } else { "ASC" };
    // The column comes from SORT_FIELDS, never from the request text.
    q.push(format!(
        " ORDER BY {} {dir}, seq {dir} LIMIT ",
        lq.sort_column
    ))
    .push_bind(if lq.page == 1 {
        lq.limit - lq.lead
    } else {
        lq.limit
    })
    .push(" OFFSET ")
    .push_bind(((lq.page - 1).saturating_mul(lq.limit) - lq.lead).max(0));
    let rows = q.build_query_as().fetch_all(pool).await?;
    Ok((rows, total))
}

/// Sets the state (and error reason), keeping the rest.
pub async fn set_state(
    pool: &SqlitePool,
    id: &str,
    state: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE snapshots SET state = ?, error_reason = ?, updated_at = ? WHERE id = ?")
        .bind(state)
        .bind(reason)
        .bind(crate::now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a finished copy: the state and the size of the snapshot's own layer.
pub async fn finish(
    pool: &SqlitePool,
    id: &str,
    state: &str,
    size: Option<i64>,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE snapshots SET state = ?, size = ?, error_reason = ?, updated_at = ? WHERE id = ?",
    )
    .bind(state)
    .bind(size)
    .bind(reason)
    .bind(crate::now())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that a sandbox was created from the snapshot.
pub async fn touch(pool: &SqlitePool, id: &str, at: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE snapshots SET last_used_at = ? WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ids of the sandboxes (any state) created from snapshot `name` of `org`.
pub async fn users(pool: &SqlitePool, org: &str, name: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM sandboxes WHERE org_id = ? AND snapshot = ? ORDER BY seq")
        .bind(org)
        .bind(name)
        .fetch_all(pool)
        .await
}

/// Removes the row unless a sandbox was created from it, in one statement (so a concurrent
/// create cannot slip between a check and the delete); returns whether it was removed.
pub async fn delete_unused(pool: &SqlitePool, row: &SnapshotRow) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM snapshots WHERE id = ? AND NOT EXISTS
         (SELECT 1 FROM sandboxes WHERE org_id = ? AND snapshot = ?)",
    )
    .bind(&row.id)
    .bind(&row.org_id)
    .bind(&row.name)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether any snapshot (any organization) still lists layer `entry` (as stored).
pub async fn layer_in_use(pool: &SqlitePool, entry: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM snapshots, json_each(snapshots.layers)
         WHERE json_each.value = ?)",
    )
    .bind(entry)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
pub(crate) mod tests;
