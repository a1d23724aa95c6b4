//! Tests of the snapshots table: names per organization, lookups, pages, in-use checks.

use super::*;

pub(crate) fn snap(id: &str, name: &str, layers: &[&str]) -> SnapshotRow {
    SnapshotRow {
        seq: 0,
        id: id.into(),
        org_id: "o".into(),
        name: name.into(),
        image_name: Some("default".into()),
        state: "active".into(),
        cpu: 1,
        gpu: 0,
        mem: 1,
        disk: 3,
        size: None,
        entrypoint: None,
        source_sandbox_id: None,
        layers: serde_json::to_string(layers).unwrap(),
        error_reason: None,
        created_at: format!("2026-01-01T00:00:0{id}.000Z"),
        updated_at: "t".into(),
        last_used_at: None,
    }
}

async fn pool() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(dir.path()).await.unwrap();
    (dir, pool)
}

fn lq(page: i64, limit: i64) -> ListQuery {
    ListQuery {
        lead: 0,
        name: None,
        source_sandbox_id: None,
        sort_column: "created_at",
        descending: false,
        page,
        limit,
    }
}

fn names(rows: &[SnapshotRow]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn names_are_unique_per_org_and_found_by_id_or_name() {
    let (_d, pool) = pool().await;
    insert(&pool, &snap("1", "a", &["/l"])).await.unwrap();
    assert!(insert(&pool, &snap("2", "a", &["/l"])).await.is_err());
    let mut other = snap("3", "a", &["/l"]);
    other.org_id = "p".into();
    insert(&pool, &other).await.unwrap();
    assert_eq!(find(&pool, "o", "a").await.unwrap().unwrap().id, "1");
    assert_eq!(find(&pool, "o", "1").await.unwrap().unwrap().name, "a");
    assert_eq!(find(&pool, "p", "a").await.unwrap().unwrap().id, "3");
    assert!(find(&pool, "o", "3").await.unwrap().is_none(), "other org");
    assert!(by_name(&pool, "o", "zz").await.unwrap().is_none());
    assert_eq!(
        find(&pool, "o", "1")
            .await
            .unwrap()
            .unwrap()
            .layer_entries(),
        ["/l"]
    );
}

#[tokio::test]
async fn pages_filters_and_sorting() {
    let (_d, pool) = pool().await;
    for (i, n) in ["b", "a", "ca", "d", "e_x"].iter().enumerate() {
        let mut s = snap(&(i + 1).to_string(), n, &["/l"]);
        if *n == "d" {
            s.source_sandbox_id = Some("sb1".into());
        }
        insert(&pool, &s).await.unwrap();
    }
    let (rows, total) = list(&pool, "o", &lq(1, 2)).await.unwrap();
    assert_eq!((names(&rows), total), (vec!["b", "a"], 5));
    let (rows, _) = list(&pool, "o", &lq(3, 2)).await.unwrap();
    assert_eq!(names(&rows), ["e_x"]);
    let (rows, _) = list(&pool, "o", &lq(4, 2)).await.unwrap();
    assert!(rows.is_empty());
    let by_name_desc = ListQuery {
        sort_column: "name",
        descending: true,
        ..lq(1, 10)
    };
    let (rows, _) = list(&pool, "o", &by_name_desc).await.unwrap();
    assert_eq!(names(&rows), ["e_x", "d", "ca", "b", "a"]);
    let filtered = ListQuery {
        name: Some("a".into()),
        ..lq(1, 10)
    };
    let (rows, total) = list(&pool, "o", &filtered).await.unwrap();
    assert_eq!((names(&rows), total), (vec!["a", "ca"], 2));
    let like_chars = ListQuery {
        name: Some("_".into()),
        ..lq(1, 10)
    };
    let (rows, _) = list(&pool, "o", &like_chars).await.unwrap();
    assert_eq!(names(&rows), ["e_x"], "_ matched literally");
    let by_source = ListQuery {
        source_sandbox_id: Some("sb1".into()),
        ..lq(1, 10)
    };
    assert_eq!(names(&list(&pool, "o", &by_source).await.unwrap().0), ["d"]);
    assert_eq!(list(&pool, "p", &lq(1, 10)).await.unwrap().1, 0);
    // One entry listed ahead (the default image): page 1 has one row fewer, and the pages
    // after it pick up where it stopped, so no row is skipped or repeated.
    let led = |page| ListQuery {
        lead: 1,
        ..lq(page, 2)
    };
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (rows, total) = list(&pool, "o", &led(page)).await.unwrap();
        assert_eq!(total, 5, "the count is of stored rows");
        seen.extend(names(&rows).into_iter().map(str::to_string));
    }
    assert_eq!(seen, ["b", "a", "ca", "d", "e_x"]);
    assert_eq!(list(&pool, "o", &led(1)).await.unwrap().0.len(), 1);
}

async fn sandbox_from(pool: &SqlitePool, sid: &str, org: &str, snapshot: &str) {
    let mut row = crate::store::sandboxes::tests_row(sid);
    row.org_id = org.into();
    row.snapshot = snapshot.into();
    crate::store::sandboxes::insert(pool, &row).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_in_use_is_not_deleted_and_layers_are_tracked() {
    let (_d, pool) = pool().await;
    let a = snap("1", "a", &["/img", "/data/layers/1"]);
    let b = snap("2", "b", &["/img", "/data/layers/1", "/data/layers/2"]);
    insert(&pool, &a).await.unwrap();
    insert(&pool, &b).await.unwrap();
    sandbox_from(&pool, "s1", "o", "b").await;
    sandbox_from(&pool, "s2", "p", "a").await; // another org's "a"
    assert_eq!(users(&pool, "o", "b").await.unwrap(), ["s1"]);
    assert!(users(&pool, "o", "a").await.unwrap().is_empty());
    assert!(!delete_unused(&pool, &b).await.unwrap());
    assert!(find(&pool, "o", "b").await.unwrap().is_some());
    assert!(delete_unused(&pool, &a).await.unwrap());
    assert!(find(&pool, "o", "a").await.unwrap().is_none());
    assert!(
        layer_in_use(&pool, "/data/layers/1").await.unwrap(),
        "b still lists it"
    );
    assert!(!layer_in_use(&pool, "/data/layers/9").await.unwrap());
}

#[tokio::test]
async fn state_changes_and_use_are_recorded() {
    let (_d, pool) = pool().await;
    let mut s = snap("1", "a", &["/l"]);
    s.state = "snapshotting".into();
    insert(&pool, &s).await.unwrap();
    assert_eq!(in_state(&pool, "snapshotting").await.unwrap().len(), 1);
    finish(&pool, "1", "error", None, Some("boom"))
        .await
        .unwrap();
    let got = find(&pool, "o", "1").await.unwrap().unwrap();
    assert_eq!(
        (got.state.as_str(), got.error_reason.as_deref()),
        ("error", Some("boom"))
    );
    finish(&pool, "1", "active", Some(42), None).await.unwrap();
    set_state(&pool, "1", "inactive", None).await.unwrap();
    touch(&pool, "1", "when").await.unwrap();
    let got = find(&pool, "o", "1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.state.as_str(),
            got.size,
            got.error_reason,
            got.last_used_at.as_deref()
        ),
        ("inactive", Some(42), None, Some("when"))
    );
    assert!(in_state(&pool, "snapshotting").await.unwrap().is_empty());
}
