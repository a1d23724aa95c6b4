//! The `sandboxes` table: one row per sandbox that is not yet destroyed.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

/// A sandbox as stored. JSON columns hold maps/arrays serialised with serde_json.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq)]
pub struct SandboxRow {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub os_user: String,
    pub env: String,
    pub labels: String,
    pub public: bool,
    pub network_block_all: bool,
    pub network_allow_list: Option<String>,
    pub target: String,
    pub cpu: i64,
    pub gpu: i64,
    pub memory: i64,
    pub disk: i64,
    pub snapshot: String,
    pub state: String,
    pub desired_state: String,
    pub error_reason: Option<String>,
    pub auto_stop_interval: i64,
    pub auto_archive_interval: i64,
    pub auto_delete_interval: i64,
    pub volumes: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    /// When a TTL destroys the sandbox whatever its state (RFC 3339); `None` = no TTL.
    #[sqlx(default)]
    pub auto_destroy_at: Option<String>,
}

impl SandboxRow {
    pub fn labels_map(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }
    pub fn env_map(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.env).unwrap_or_default()
    }
}

/// Inserts a new row; a duplicate name in the organization is a unique-constraint error.
pub async fn insert(pool: &SqlitePool, r: &SandboxRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandboxes (id, org_id, name, os_user, env, labels, public, network_block_all,
         network_allow_list, target, cpu, gpu, memory, disk, snapshot, state, desired_state,
         error_reason, auto_stop_interval, auto_archive_interval, auto_delete_interval, volumes,
         created_at, updated_at, last_activity_at, auto_destroy_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(&r.id)
    .bind(&r.org_id)
    .bind(&r.name)
    .bind(&r.os_user)
    .bind(&r.env)
    .bind(&r.labels)
    .bind(r.public)
    .bind(r.network_block_all)
    .bind(&r.network_allow_list)
    .bind(&r.target)
    .bind(r.cpu)
    .bind(r.gpu)
    .bind(r.memory)
    .bind(r.disk)
    .bind(&r.snapshot)
    .bind(&r.state)
    .bind(&r.desired_state)
    .bind(&r.error_reason)
    .bind(r.auto_stop_interval)
    .bind(r.auto_archive_interval)
    .bind(r.auto_delete_interval)
    .bind(&r.volumes)
    .bind(&r.created_at)
    .bind(&r.updated_at)
    .bind(&r.last_activity_at)
    .bind(&r.auto_destroy_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Finds a sandbox of `org` by id, else by name.
pub async fn get(
    pool: &SqlitePool,
    org: &str,
    id_or_name: &str,
) -> Result<Option<SandboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM sandboxes WHERE org_id = ? AND (id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1",
    )
    .bind(org)
    .bind(id_or_name)
    .bind(id_or_name)
    .bind(id_or_name)
    .fetch_optional(pool)
    .await
}

/// Finds a sandbox by id in any organization (for preview traffic, which carries no API key).
pub async fn get_by_id(pool: &SqlitePool, id: &str) -> Result<Option<SandboxRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM sandboxes WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Every row in one of `states` (any organization), for reconciliation at start-up.
pub async fn in_states(pool: &SqlitePool, states: &[&str]) -> Result<Vec<SandboxRow>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM sandboxes WHERE state IN (");
    let mut sep = q.separated(", ");
    for s in states {
        sep.push_bind(*s);
    }
    q.push(") ORDER BY seq");
    q.build_query_as().fetch_all(pool).await
}

/// Records a state transition (and its error reason) before it is acted on.
pub async fn set_state(
    pool: &SqlitePool,
    id: &str,
    state: &str,
    desired: &str,
    error_reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = crate::now();
    sqlx::query(
        "UPDATE sandboxes SET state = ?, desired_state = ?, error_reason = ?, updated_at = ?,
         state_changed_at = ? WHERE id = ?",
    )
    .bind(state)
    .bind(desired)
    .bind(error_reason)
    .bind(&now)
    .bind(&now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// When sandbox `id` entered its current state (the clock of auto-archive and auto-delete).
pub async fn state_changed_at(pool: &SqlitePool, id: &str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT state_changed_at FROM sandboxes WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// Sets when sandbox `id` entered its current state: a sandbox back from a snapshot keeps
/// the clock of the state it was in before.
pub async fn set_state_changed_at(
    pool: &SqlitePool,
    id: &str,
    at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET state_changed_at = ? WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Replaces the labels map.
pub async fn set_labels(
    pool: &SqlitePool,
    id: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET labels = ?, updated_at = ? WHERE id = ?")
        .bind(serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()))
        .bind(crate::now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records activity on a sandbox at `at` (RFC 3339), never moving it backwards.
pub async fn touch(pool: &SqlitePool, id: &str, at: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET last_activity_at = ? WHERE id = ? AND last_activity_at < ?")
        .bind(at)
        .bind(id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// The timer columns a client may set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Interval {
    AutoStop,
    AutoArchive,
    AutoDelete,
}

/// Sets one timer interval (minutes).
pub async fn set_interval(
    pool: &SqlitePool,
    id: &str,
    which: Interval,
    minutes: i64,
) -> Result<(), sqlx::Error> {
    let column = match which {
        Interval::AutoStop => "auto_stop_interval",
        Interval::AutoArchive => "auto_archive_interval",
        Interval::AutoDelete => "auto_delete_interval",
    };
    // `column` comes from the enum above, never from the request.
    sqlx::query(&format!(
        "UPDATE sandboxes SET {column} = ?, updated_at = ? WHERE id = ?"
    ))
    .bind(minutes)
    .bind(crate::now())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets (or with `None` clears) the time a TTL destroys the sandbox.
pub async fn set_auto_destroy(
    pool: &SqlitePool,
    id: &str,
    at: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET auto_destroy_at = ?, updated_at = ? WHERE id = ?")
        .bind(at)
        .bind(crate::now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// `(id, auto_destroy_at)` of every sandbox with a TTL.
pub async fn ttl_candidates(pool: &SqlitePool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, auto_destroy_at FROM sandboxes WHERE auto_destroy_at IS NOT NULL ORDER BY seq",
    )
    .fetch_all(pool)
    .await
}

/// A sandbox's timer inputs: `(id, state, auto_stop, auto_delete, last_activity_at, state_changed_at)`.
pub type TimerRow = (String, String, i64, i64, String, String);

/// Sandboxes a timer may act on: started with auto-stop on, or stopped with auto-delete on.
pub async fn timer_candidates(pool: &SqlitePool) -> Result<Vec<TimerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, state, auto_stop_interval, auto_delete_interval, last_activity_at, state_changed_at
         FROM sandboxes
         WHERE (state = 'started' AND auto_stop_interval > 0)
            OR (state IN ('stopped', 'archived') AND auto_delete_interval >= 0)",
    )
    .fetch_all(pool)
    .await
}

/// Removes a destroyed sandbox's row.
pub async fn delete(pool: &SqlitePool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM signed_previews WHERE sandbox_id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM sandboxes WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Sort fields of `GET /sandbox` (spec §6.3), each a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    CreatedAt,
    Name,
    Cpu,
    MemoryGib,
    DiskGib,
    LastActivityAt,
}

impl SortField {
    /// Parses the wire name (`createdAt`, `name`, `cpu`, `memoryGib`, `diskGib`, `lastActivityAt`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "createdAt" => Self::CreatedAt,
            "name" => Self::Name,
            "cpu" => Self::Cpu,
            "memoryGib" => Self::MemoryGib,
            "diskGib" => Self::DiskGib,
            "lastActivityAt" => Self::LastActivityAt,
            _ => return None,
        })
    }
    pub fn wire(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::Name => "name",
            Self::Cpu => "cpu",
            Self::MemoryGib => "memoryGib",
            Self::DiskGib => "diskGib",
            Self::LastActivityAt => "lastActivityAt",
        }
    }
    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Name => "name",
            Self::Cpu => "cpu",
            Self::MemoryGib => "memory",
            Self::DiskGib => "disk",
            Self::LastActivityAt => "last_activity_at",
        }
    }
    /// Whether the column is an integer (else text).
    pub fn is_int(self) -> bool {
        matches!(self, Self::Cpu | Self::MemoryGib | Self::DiskGib)
    }
    /// The row's value of this field, as carried in a cursor.
    pub fn key(self, r: &SandboxRow) -> SortKey {
        match self {
            Self::CreatedAt => SortKey::Text(r.created_at.clone()),
            Self::Name => SortKey::Text(r.name.clone()),
            Self::Cpu => SortKey::Int(r.cpu),
            Self::MemoryGib => SortKey::Int(r.memory),
            Self::DiskGib => SortKey::Int(r.disk),
            Self::LastActivityAt => SortKey::Text(r.last_activity_at.clone()),
        }
    }
}

/// A sort column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// Where the previous page ended: its last row's sort key and `seq` (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub key: SortKey,
    pub seq: i64,
}

/// Filters, order and position of `GET /sandbox`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub labels: BTreeMap<String, String>,
    pub states: Vec<String>,
    pub id_prefix: Option<String>,
    pub name_prefix: Option<String>,
    pub min_cpu: Option<i64>,
    pub max_cpu: Option<i64>,
    pub min_memory: Option<i64>,
    pub max_memory: Option<i64>,
    pub min_disk: Option<i64>,
    pub max_disk: Option<i64>,
    pub public: Option<bool>,
    /// Exclusive bounds on `created_at` (RFC 3339 UTC with millis, like the column).
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub sort: SortField,
    pub desc: bool,
    /// Exclusive start (the decoded cursor); must have been made under the same sort/order.
    pub after: Option<After>,
    pub limit: i64,
}

fn push_where<'a>(q: &mut QueryBuilder<'a, Sqlite>, org: &'a str, f: &'a ListFilter) {
    q.push(" WHERE org_id = ").push_bind(org);
    for (k, v) in &f.labels {
        q.push(" AND EXISTS (SELECT 1 FROM json_each(labels) WHERE json_each.key = ")
            .push_bind(k)
            .push(" AND json_each.value = ")
            .push_bind(v)
            .push(")");
    }
    if !f.states.is_empty() {
        q.push(" AND state IN (");
        let mut sep = q.separated(", ");
        for s in &f.states {
            sep.push_bind(s);
        }
        q.push(")");
    } else {
        q.push(" AND state != 'destroyed'");
    }
    if let Some(p) = &f.id_prefix {
        q.push(" AND lower(id) LIKE ")
            .push_bind(format!("{}%", like_escape(&p.to_lowercase())))
            .push(" ESCAPE '\\'");
    }
    if let Some(p) = &f.name_prefix {
        q.push(" AND lower(name) LIKE ")
            .push_bind(format!("{}%", like_escape(&p.to_lowercase())))
            .push(" ESCAPE '\\'");
    }
    // Column names below are literals, never from the request.
    for (col, op, v) in [
        ("cpu", ">=", f.min_cpu),
        ("cpu", "<=", f.max_cpu),
        ("memory", ">=", f.min_memory),
        ("memory", "<=", f.max_memory),
        ("disk", ">=", f.min_disk),
        ("disk", "<=", f.max_disk),
    ] {
        if let Some(v) = v {
            q.push(format!(" AND {col} {op} ")).push_bind(v);
        }
    }
    if let Some(p) = f.public {
        q.push(" AND public = ").push_bind(p);
    }
    if let Some(t) = &f.created_after {
        q.push(" AND created_at > ").push_bind(t);
    }
    if let Some(t) = &f.created_before {
        q.push(" AND created_at < ").push_bind(t);
    }
}

/// One page of an organization's sandboxes in `f.sort`/`f.desc` order (ties broken by `seq`
/// in the same direction); the bool tells whether another page exists (`limit + 1` rows are
/// fetched).
pub async fn list(
    pool: &SqlitePool,
    org: &str,
    f: &ListFilter,
) -> Result<(Vec<SandboxRow>, bool), sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM sandboxes");
    push_where(&mut q, org, f);
    let col = f.sort.column();
    let (cmp, dir) = if f.desc { ("<", "DESC") } else { (">", "ASC") };
    if let Some(a) = &f.after {
        q.push(format!(" AND ({col} {cmp} "));
        push_key(&mut q, &a.key);
        q.push(format!(" OR ({col} = "));
        push_key(&mut q, &a.key);
        q.push(format!(" AND seq {cmp} "))
            .push_bind(a.seq)
            .push("))");
    }
    q.push(format!(" ORDER BY {col} {dir}, seq {dir} LIMIT "))
        .push_bind(f.limit + 1);
    let mut rows: Vec<SandboxRow> = q.build_query_as().fetch_all(pool).await?;
    let more = rows.len() as i64 > f.limit;
    rows.truncate(f.limit as usize);
    Ok((rows, more))
}

fn push_key(q: &mut QueryBuilder<'_, Sqlite>, k: &SortKey) {
    match k {
        SortKey::Int(v) => q.push_bind(*v),
        SortKey::Text(s) => q.push_bind(s.clone()),
    };
}

/// Page `page` (from 1) of `f.limit` rows, in `f`'s order (`f.after` ignored), and the total
/// number of matching rows (the deprecated page pagination).
pub async fn list_page(
    pool: &SqlitePool,
    org: &str,
    f: &ListFilter,
    page: i64,
) -> Result<(Vec<SandboxRow>, i64), sqlx::Error> {
    let mut c: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM sandboxes");
    push_where(&mut c, org, f);
    let (total,): (i64,) = c.build_query_as().fetch_one(pool).await?;
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM sandboxes");
    push_where(&mut q, org, f);
    let dir = if f.desc { "DESC" } else { "ASC" };
    q.push(format!(
        " ORDER BY {} {dir}, seq {dir} LIMIT ",
        f.sort.column()
    ))
    .push_bind(f.limit)
    .push(" OFFSET ")
    .push_bind((page - 1).saturating_mul(f.limit));
    let rows = q.build_query_as().fetch_all(pool).await?;
    Ok((rows, total))
}

/// Sets a sandbox's resources (cpu cores, memory GiB, disk GiB).
pub async fn set_resources(
    pool: &SqlitePool,
    id: &str,
    cpu: i64,
    memory: i64,
    disk: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sandboxes SET cpu = ?, memory = ?, disk = ?, updated_at = ? WHERE id = ?")
        .bind(cpu)
        .bind(memory)
        .bind(disk)
        .bind(crate::now())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Escapes `\`, `%` and `_` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A plain started row for tests elsewhere in the crate.
#[cfg(test)]
pub fn tests_row(id: &str) -> SandboxRow {
    tests::row(id, "{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn row(id: &str, labels: &str) -> SandboxRow {
        SandboxRow {
            seq: 0,
            id: id.into(),
            org_id: "o".into(),
            name: id.into(),
            os_user: "daytona".into(),
            env: "{}".into(),
            labels: labels.into(),
            public: false,
            network_block_all: false,
            network_allow_list: None,
            target: "us".into(),
            cpu: 1,
            gpu: 0,
            memory: 1,
            disk: 3,
            snapshot: "default".into(),
            state: "started".into(),
            desired_state: "started".into(),
            error_reason: None,
            auto_stop_interval: 15,
            auto_archive_interval: 10080,
            auto_delete_interval: -1,
            auto_destroy_at: None,
            volumes: "[]".into(),
            created_at: "t".into(),
            updated_at: "t".into(),
            last_activity_at: "t".into(),
        }
    }

    #[tokio::test]
    async fn list_filters_by_labels_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        for i in 0..5 {
            let l = if i % 2 == 0 {
                r#"{"team":"a","we\"ird":"x"}"#
            } else {
                r#"{"team":"b"}"#
            };
            insert(&pool, &row(&format!("s{i}"), l)).await.unwrap();
        }
        let mut f = ListFilter {
            limit: 2,
            ..Default::default()
        };
        f.labels.insert("team".into(), "a".into());
        let (page, more) = list(&pool, "o", &f).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["s0", "s2"]
        );
        assert!(more);
        let last = page.last().unwrap();
        f.after = Some(After {
            key: f.sort.key(last),
            seq: last.seq,
        });
        let (page, more) = list(&pool, "o", &f).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["s4"]
        );
        assert!(!more);
        let mut f = ListFilter {
            limit: 10,
            ..Default::default()
        };
        f.labels.insert("we\"ird".into(), "x".into());
        assert_eq!(list(&pool, "o", &f).await.unwrap().0.len(), 3);
        assert_eq!(list(&pool, "other", &f).await.unwrap().0.len(), 0);
    }

    #[tokio::test]
    async fn duplicate_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        insert(&pool, &row("a", "{}")).await.unwrap();
        let mut r = row("b", "{}");
        r.name = "a".into();
        assert!(insert(&pool, &r).await.is_err());
    }
    /// Walks every page of `f` and returns the ids in order.
    async fn walk(pool: &SqlitePool, mut f: ListFilter) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let (page, more) = list(pool, "o", &f).await.unwrap();
            assert!(page.len() as i64 <= f.limit);
            out.extend(page.iter().map(|r| r.id.clone()));
            if !more {
                return out;
            }
            let last = page.last().unwrap();
            f.after = Some(After {
                key: f.sort.key(last),
                seq: last.seq,
            });
        }
    }

    #[tokio::test]
    async fn pages_cover_every_row_once_in_every_sort_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        let n = 300;
        for i in 0..n {
            let mut r = row(
                &format!("id{i:03}"),
                if i % 3 == 0 { r#"{"k":"v"}"# } else { "{}" },
            );
            // Many ties in every column, names out of creation order.
            r.name = format!("n{:03}", (i * 7) % n);
            r.cpu = i % 4 + 1;
            r.memory = i % 5 + 1;
            r.disk = i % 3 + 1;
            r.public = i % 2 == 0;
            r.created_at = format!("2024-01-01T00:00:{:02}.000Z", i / 10);
            r.last_activity_at = format!("2024-02-01T00:00:{:02}.000Z", (i * 13) % 37);
            insert(&pool, &r).await.unwrap();
        }
        insert(
            &pool,
            &SandboxRow {
                org_id: "other".into(),
                name: "elsewhere".into(),
                ..row("x", "{}")
            },
        )
        .await
        .unwrap();
        let all: Vec<SandboxRow> = sqlx::query_as("SELECT * FROM sandboxes WHERE org_id = 'o'")
            .fetch_all(&pool)
            .await
            .unwrap();
        for sort in [
            SortField::CreatedAt,
            SortField::Name,
            SortField::Cpu,
            SortField::MemoryGib,
            SortField::DiskGib,
            SortField::LastActivityAt,
        ] {
            for desc in [false, true] {
                for limit in [1, 7, 50, 1000] {
                    let f = ListFilter {
                        sort,
                        desc,
                        limit,
                        ..Default::default()
                    };
                    let got = walk(&pool, f).await;
                    let mut want = all.clone();
                    want.sort_by(|a, b| {
                        let o = match (sort.key(a), sort.key(b)) {
                            (SortKey::Int(x), SortKey::Int(y)) => x.cmp(&y),
                            (SortKey::Text(x), SortKey::Text(y)) => x.cmp(&y),
                            _ => unreachable!(),
                        }
                        .then(a.seq.cmp(&b.seq));
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                    let want: Vec<String> = want.into_iter().map(|r| r.id).collect();
                    assert_eq!(got, want, "sort {sort:?} desc {desc} limit {limit}");
                }
            }
        }
        // Label filter with pagination, and the cheap filters.
        let mut f = ListFilter {
            limit: 9,
            sort: SortField::Name,
            ..Default::default()
        };
        f.labels.insert("k".into(), "v".into());
        let got = walk(&pool, f.clone()).await;
        assert_eq!(got.len(), 100);
        let mut uniq = got.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 100);
        assert!(got
            .iter()
            .all(|id| id[2..].parse::<i64>().unwrap() % 3 == 0));
        f.min_cpu = Some(2);
        f.max_cpu = Some(3);
        f.public = Some(true);
        f.min_memory = Some(2);
        f.max_disk = Some(2);
        f.created_after = Some("2024-01-01T00:00:05.000Z".into());
        f.created_before = Some("2024-01-01T00:00:20.000Z".into());
        let got = walk(&pool, f).await;
        let want: Vec<i64> = (0..n)
            .filter(|i| {
                i % 3 == 0
                    && (2..=3).contains(&(i % 4 + 1))
                    && i % 2 == 0
                    && i % 5 + 1 >= 2
                    && i % 3 < 2
                    && (60..200).contains(i)
            })
            .collect();
        assert!(!want.is_empty());
        let mut got: Vec<i64> = got.iter().map(|id| id[2..].parse().unwrap()).collect();
        got.sort();
        assert_eq!(got, want);
        // Page pagination: same order, total over all pages.
        let f = ListFilter {
            limit: 40,
            sort: SortField::Cpu,
            desc: true,
            ..Default::default()
        };
        let mut paged = Vec::new();
        for page in 1..=8 {
            let (rows, total) = list_page(&pool, "o", &f, page).await.unwrap();
            assert_eq!(total, n);
            paged.extend(rows.into_iter().map(|r| r.id));
        }
        assert_eq!(paged, walk(&pool, f).await);
    }

    #[tokio::test]
    async fn set_resources_updates_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        insert(&pool, &row("a", "{}")).await.unwrap();
        set_resources(&pool, "a", 2, 4, 10).await.unwrap();
        let r = get(&pool, "o", "a").await.unwrap().unwrap();
        assert_eq!((r.cpu, r.memory, r.disk), (2, 4, 10));
    }
}
