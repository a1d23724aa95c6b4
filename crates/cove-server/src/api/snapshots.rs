//! `/snapshots` handlers (spec §8.1), `POST /sandbox/{idOrName}/snapshot` (§7.1 row 33), and
//! the snapshot part of sandbox creation (name or id → the snapshot's name, active only).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use cove_types::api::{CreateSandbox, Sandbox};
use cove_types::error::ErrorEnvelope;
use cove_types::snapshot::{
    snapshot_state, CreateSandboxSnapshot, CreateSnapshot, PaginatedSnapshots, SnapshotDto,
};
use sqlx::SqlitePool;

use super::sandbox::{check_range, DEFAULT_DISK_GIB};
use super::{dto, AppState};
use crate::auth::Org;
use crate::error::{parse_json, ApiError};
use crate::lifecycle::ImageState;
use crate::snapshot::{insert_snapshot, is_default, DEFAULT_SNAPSHOTS};
use crate::store::layers;
use crate::store::snapshots::{self, ListQuery, SnapshotRow, SORT_FIELDS};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 200;

/// The wire DTO of a stored snapshot.
pub fn snapshot_dto(s: &SnapshotRow) -> SnapshotDto {
    SnapshotDto {
        id: s.id.clone(),
        organization_id: Some(s.org_id.clone()),
        general: false,
        name: s.name.clone(),
        image_name: s.image_name.clone(),
        state: s.state.clone(),
        size: s.size.map(|b| b as f64 / (1u64 << 30) as f64),
        entrypoint: s
            .entrypoint
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok()),
        cpu: s.cpu,
        gpu: s.gpu,
        mem: s.mem,
        disk: s.disk,
        error_reason: s.error_reason.clone(),
        created_at: s.created_at.clone(),
        updated_at: s.updated_at.clone(),
        last_used_at: s.last_used_at.clone(),
        source_sandbox_id: s.source_sandbox_id.clone(),
    }
}

/// The default image as a general snapshot, under `name` (`default` or one of its aliases):
/// shared by every organization, listed first, never stored, deleted or deactivated.
fn general_dto(st: &AppState, name: &str) -> SnapshotDto {
    let (state, error_reason, built) = match st.manager.image_state() {
        ImageState::Ready(img) => {
            let built = img
                .layers
                .first()
                .and_then(|l| std::fs::metadata(l).and_then(|m| m.modified()).ok())
                .map(|t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                });
            (snapshot_state::ACTIVE, None, built)
        }
        ImageState::Building => (snapshot_state::BUILDING, None, None),
        ImageState::Failed(e) => (snapshot_state::BUILD_FAILED, Some(e), None),
        ImageState::Idle => (snapshot_state::PENDING, None, None),
    };
    let at = built.unwrap_or_else(crate::now);
    SnapshotDto {
        id: name.to_string(),
        organization_id: None,
        general: true,
        name: name.to_string(),
        image_name: Some(DEFAULT_SNAPSHOTS[0].to_string()),
        state: state.to_string(),
        size: None,
        entrypoint: None,
        cpu: 1,
        gpu: 0,
        mem: 1,
        disk: DEFAULT_DISK_GIB,
        error_reason,
        created_at: at.clone(),
        updated_at: at,
        last_used_at: None,
        source_sandbox_id: None,
    }
}

/// A snapshot's `entrypoint`: `None` or `[]` for none; else a program (non-empty) and its
/// arguments, none holding a NUL byte (they become one shell command line).
fn check_entrypoint(e: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(argv) = e.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    if argv[0].trim().is_empty() || argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(format!(
            "entrypoint must name a program and hold no NUL bytes, got {argv:?}"
        )));
    }
    Ok(Some(argv))
}

/// 400 for a request that would change the default image.
fn not_the_default(id: &str, what: &str) -> Result<(), ApiError> {
    if is_default(id) {
        return Err(ApiError::bad_request(format!(
            "Snapshot {id} is the built-in default image and cannot be {what}"
        )));
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// A name a new snapshot may take: 400 if malformed, 409 if it names the default image.
fn check_new_name(name: &str) -> Result<(), ApiError> {
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "invalid snapshot name {name:?}: use 1-255 letters, digits, '-', '_', '.' or ':'"
        )));
    }
    if is_default(name) {
        return Err(ApiError::conflict(format!(
            "Snapshot with name {name} already exists (it is the default image)"
        )));
    }
    Ok(())
}

async fn find(pool: &SqlitePool, org: &str, id: &str) -> Result<SnapshotRow, ApiError> {
    snapshots::find(pool, org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Snapshot {id} not found")))
}

/// `POST /snapshots`: a snapshot of an image already in the store (the default image, or
/// an existing snapshot), sharing its layers; `active` at once. Nothing is pulled or built.
#[utoipa::path(post, path = "/snapshots", request_body = CreateSnapshot, responses((status = 200, body = SnapshotDto), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    body: Bytes,
) -> Result<Json<SnapshotDto>, ApiError> {
    let req: CreateSnapshot = parse_json(&body)?;
    check_new_name(&req.name)?;
    if req.build_info.is_some() {
        return Err(ApiError::bad_request(
            "buildInfo is not supported: cove does not build images from a Dockerfile; \
             create the snapshot from an image in the store (imageName) or from a sandbox \
             (POST /sandbox/{id}/snapshot)",
        ));
    }
    let image = req
        .image_name
        .ok_or_else(|| ApiError::bad_request("imageName is required"))?;
    let cpu = check_range("cpu", req.cpu, 1, 64, 1)?;
    let mem = check_range("memory", req.memory, 1, 256, 1)?;
    let disk = check_range("disk", req.disk, 1, 1024, 3)?;
    let gpu = check_range("gpu", req.gpu, 0, 0, 0)?;
    let entrypoint = check_entrypoint(req.entrypoint)?;
    // The base cannot be deleted between being read here and the insert below.
    let _gate = st.snapshot_gate.read().await;
    let (entries, base_entrypoint) = if is_default(&image) {
        // Built (or found) now, so that the snapshot is usable once it is `active`.
        st.manager
            .image()
            .await
            .map_err(|e| ApiError::internal(format!("default image: {e}")))?;
        (vec![layers::DEFAULT.to_string()], Vec::new())
    } else {
        match snapshots::by_name(&st.pool, &org, &image).await? {
            Some(s)
                if s.state == snapshot_state::ACTIVE || s.state == snapshot_state::INACTIVE =>
            {
                (s.layer_entries(), s.entrypoint_argv())
            }
            Some(s) => {
                return Err(ApiError::bad_request(format!(
                    "snapshot {image} is {}; only an active or inactive snapshot can be used as an image",
                    s.state
                )))
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "image {image} is not in the image store; cove does not pull from registries \
                     (use {:?} or the name of an existing snapshot)",
                    DEFAULT_SNAPSHOTS[0]
                )))
            }
        }
    };
    let now = crate::now();
    let row = SnapshotRow {
        seq: 0,
        id: uuid::Uuid::new_v4().to_string(),
        org_id: org,
        name: req.name,
        image_name: Some(image),
        state: snapshot_state::ACTIVE.into(),
        cpu,
        gpu,
        mem,
        disk,
        size: None,
        // Without one of its own, the snapshot keeps its base's entrypoint.
        entrypoint: entrypoint
            .or((!base_entrypoint.is_empty()).then_some(base_entrypoint))
            .map(|e| serde_json::to_string(&e).unwrap_or_else(|_| "[]".into())),
        source_sandbox_id: None,
        layers: serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into()),
        error_reason: None,
        created_at: now.clone(),
        updated_at: now,
        last_used_at: None,
    };
    insert_snapshot(&st.pool, &row).await?;
    Ok(Json(snapshot_dto(&row)))
}

/// Parses an integer query parameter of at least 1 (and at most `max`).
fn query_int(
    q: &HashMap<String, String>,
    key: &str,
    max: i64,
    default: i64,
) -> Result<i64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{key} must be an integer between 1 and {max}, got {raw:?}"
                ))
            }),
    }
}

/// Checks `GET /snapshots` query parameters.
pub fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let page = query_int(q, "page", i64::from(i32::MAX), 1)?;
    let limit = query_int(q, "limit", MAX_LIMIT, DEFAULT_LIMIT)?;
    let sort = q.get("sort").map_or("createdAt", String::as_str);
    let sort_column = SORT_FIELDS
        .iter()
        .find(|(wire, _)| *wire == sort)
        .map(|(_, col)| *col)
        .ok_or_else(|| {
            let names: Vec<&str> = SORT_FIELDS.iter().map(|(w, _)| *w).collect();
            ApiError::bad_request(format!(
                "sort must be one of {}, got {sort:?}",
                names.join(", ")
            ))
        })?;
    let descending = match q.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "order must be asc or desc, got {o:?}"
            )))
        }
    };
    Ok(ListQuery {
        lead: 0,
        name: q.get("name").filter(|n| !n.is_empty()).cloned(),
        source_sandbox_id: q.get("sourceSandboxId").filter(|n| !n.is_empty()).cloned(),
        sort_column,
        descending,
        page,
        limit,
    })
}

/// `GET /snapshots?page=&limit=&name=&sourceSandboxId=&sort=&order=` (newest first by default).
#[utoipa::path(get, path = "/snapshots", params(("page" = Option<i64>, Query), ("limit" = Option<i64>, Query), ("name" = Option<String>, Query), ("sourceSandboxId" = Option<String>, Query), ("sort" = Option<String>, Query), ("order" = Option<String>, Query)), responses((status = 200, body = PaginatedSnapshots), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<PaginatedSnapshots>, ApiError> {
    let mut lq = list_query(&q)?;
    // The default image leads the list when no filter excludes it.
    let general = lq.source_sandbox_id.is_none()
        && lq
            .name
            .as_deref()
            .is_none_or(|n| DEFAULT_SNAPSHOTS[0].contains(&n.to_ascii_lowercase()));
    lq.lead = i64::from(general);
    let (rows, total) = snapshots::list(&st.pool, &org, &lq).await?;
    let total = total + lq.lead;
    let lead = (general && lq.page == 1).then(|| general_dto(&st, DEFAULT_SNAPSHOTS[0]));
    Ok(Json(PaginatedSnapshots {
        items: lead
            .into_iter()
            .chain(rows.iter().map(snapshot_dto))
            .collect(),
        total,
        page: lq.page,
        total_pages: (total + lq.limit - 1) / lq.limit,
    }))
}

/// `GET /snapshots/{idOrName}`.
#[utoipa::path(get, path = "/snapshots/{idOrName}", params(("idOrName" = String, Path)), responses((status = 200, body = SnapshotDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<Json<SnapshotDto>, ApiError> {
    if is_default(&id) {
        return Ok(Json(general_dto(&st, &id)));
    }
    Ok(Json(snapshot_dto(&find(&st.pool, &org, &id).await?)))
}

/// `DELETE /snapshots/{id}` (a name works too): 409 while a sandbox (any state) was created
/// from it or it is still being made; removes the row, then every layer dir of it that no
/// other snapshot lists (its own, normally).
#[utoipa::path(delete, path = "/snapshots/{idOrName}", params(("idOrName" = String, Path)), responses((status = 200), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn delete(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<(), ApiError> {
    not_the_default(&id, "deleted")?;
    let _gate = st.snapshot_gate.write().await;
    let snap = find(&st.pool, &org, &id).await?;
    if snap.state == snapshot_state::SNAPSHOTTING {
        return Err(ApiError::conflict(format!(
            "Snapshot {} is still being created; delete it once it is active or in error",
            snap.name
        )));
    }
    if !snapshots::delete_unused(&st.pool, &snap).await? {
        let users = snapshots::users(&st.pool, &org, &snap.name).await?;
        return Err(ApiError::conflict(format!(
            "Snapshot {} is in use by sandbox(es) {}",
            snap.name,
            users.join(", ")
        )));
    }
    let runtime = &st.manager.runtime;
    for entry in snap.layer_entries() {
        let Some(id) = layers::own_id(&entry) else {
            continue; // the default image's layers, not a snapshot's
        };
        if snapshots::layer_in_use(&st.pool, &entry).await? {
            continue;
        }
        if let Err(e) = runtime.remove_layer(id).await {
            tracing::warn!("snapshot {}: cannot remove layer {entry}: {e}", snap.id);
        }
    }
    Ok(())
}

/// `POST /snapshots/{id}/activate` → the snapshot, `active`.
#[utoipa::path(post, path = "/snapshots/{idOrName}/activate", params(("idOrName" = String, Path)), responses((status = 200, body = SnapshotDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn activate(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<Json<SnapshotDto>, ApiError> {
    if is_default(&id) {
        return Ok(Json(general_dto(&st, &id))); // always active
    }
    let snap = set_active(&st.pool, &org, &id, true).await?;
    Ok(Json(snapshot_dto(&snap)))
}

/// `POST /snapshots/{id}/deactivate` → 204; new sandboxes cannot use it until activated.
#[utoipa::path(post, path = "/snapshots/{idOrName}/deactivate", params(("idOrName" = String, Path)), responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn deactivate(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    not_the_default(&id, "deactivated")?;
    set_active(&st.pool, &org, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a snapshot between `active` and `inactive` (either way idempotent); 400 from any
/// other state.
async fn set_active(
    pool: &SqlitePool,
    org: &str,
    id: &str,
    active: bool,
) -> Result<SnapshotRow, ApiError> {
    let mut snap = find(pool, org, id).await?;
    let (to, verb) = if active {
        (snapshot_state::ACTIVE, "activated")
    } else {
        (snapshot_state::INACTIVE, "deactivated")
    };
    if snap.state == to {
        return Ok(snap);
    }
    if snap.state != snapshot_state::ACTIVE && snap.state != snapshot_state::INACTIVE {
        return Err(ApiError::bad_request(format!(
            "Snapshot {} is {} and cannot be {verb}",
            snap.name, snap.state
        )));
    }
    snapshots::set_state(pool, &snap.id, to, None).await?;
    snap = find(pool, org, &snap.id).await?;
    Ok(snap)
}

/// `POST /sandbox/{idOrName}/snapshot` `{name, includeMemory}` → the sandbox, `snapshotting`
/// (the SDK waits until the state changes).
#[utoipa::path(post, path = "/sandbox/{idOrName}/snapshot", params(("idOrName" = String, Path)), request_body = CreateSandboxSnapshot, responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn from_sandbox(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Sandbox>, ApiError> {
    let req: CreateSandboxSnapshot = parse_json(&body)?;
    if req.include_memory == Some(true) {
        return Err(ApiError::bad_request(
            "includeMemory is not supported: cove snapshots a sandbox's files, not its memory",
        ));
    }
    check_new_name(&req.name)?;
    let row = super::sandbox::find(&st, &org, &id).await?;
    let row = st.manager.snapshot(row.id, req.name).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// Resolves `req.snapshot` (name or id; absent = the default image) for a new sandbox: 404
/// if unknown, 400 unless `active`. Rewrites it to the snapshot's name and fills the
/// resources the request left out from the snapshot's. Returns the snapshot, if any.
pub async fn for_new_sandbox(
    pool: &SqlitePool,
    org: &str,
    req: &mut CreateSandbox,
) -> Result<Option<SnapshotRow>, ApiError> {
    let Some(wanted) = req.snapshot.clone().filter(|s| !is_default(s)) else {
        return Ok(None);
    };
    let snap = snapshots::find(pool, org, &wanted)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Snapshot {wanted} not found")))?;
    if snap.state != snapshot_state::ACTIVE {
        return Err(ApiError::bad_request(format!(
            "Snapshot {} is {}; a sandbox can only be created from an active snapshot",
            snap.name, snap.state
        )));
    }
    req.snapshot = Some(snap.name.clone());
    req.cpu = req.cpu.or(Some(snap.cpu));
    req.memory = req.memory.or(Some(snap.mem));
    req.disk = req.disk.or(Some(snap.disk));
    Ok(Some(snap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_query_is_checked() {
        let lq = list_query(&q(&[])).unwrap();
        assert_eq!(
            (lq.page, lq.limit, lq.sort_column, lq.descending),
            (1, DEFAULT_LIMIT, "created_at", true)
        );
        let lq = list_query(&q(&[
            ("page", "3"),
            ("limit", "2"),
            ("sort", "name"),
            ("order", "asc"),
            ("name", "ab"),
        ]))
        .unwrap();
        assert_eq!(
            (lq.page, lq.limit, lq.sort_column, lq.descending),
            (3, 2, "name", false)
        );
        assert_eq!(lq.name.as_deref(), Some("ab"));
        for (k, v) in [
            ("page", "0"),
            ("page", "x"),
            ("limit", "201"),
            ("limit", "-1"),
            ("sort", "name; DROP TABLE snapshots"),
            ("order", "up"),
        ] {
            let e = list_query(&q(&[(k, v)])).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(k), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn new_sandboxes_resolve_active_snapshots_only() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::store::open(dir.path()).await.unwrap();
        let mut s = crate::store::snapshots::tests::snap("1", "s1", &["/l"]);
        (s.cpu, s.mem, s.disk) = (2, 4, 8);
        snapshots::insert(&pool, &s).await.unwrap();
        let mut req = CreateSandbox {
            snapshot: Some("1".into()),
            memory: Some(2),
            ..Default::default()
        };
        let got = for_new_sandbox(&pool, "o", &mut req)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.id, "1");
        assert_eq!(req.snapshot.as_deref(), Some("s1"), "stored by name");
        assert_eq!((req.cpu, req.memory, req.disk), (Some(2), Some(2), Some(8)));

        let mut req = CreateSandbox::default();
        assert!(for_new_sandbox(&pool, "o", &mut req)
            .await
            .unwrap()
            .is_none());
        let mut req = CreateSandbox {
            snapshot: Some("daytona-small".into()),
            ..Default::default()
        };
        assert!(for_new_sandbox(&pool, "o", &mut req)
            .await
            .unwrap()
            .is_none());

        let mut req = CreateSandbox {
            snapshot: Some("nope".into()),
            ..Default::default()
        };
        let e = for_new_sandbox(&pool, "o", &mut req).await.unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(e.message.contains("nope"), "{}", e.message);
        let mut req = CreateSandbox {
            snapshot: Some("s1".into()),
            ..Default::default()
        };
        assert!(
            for_new_sandbox(&pool, "p", &mut req).await.is_err(),
            "other org"
        );

        snapshots::set_state(&pool, "1", snapshot_state::INACTIVE, None)
            .await
            .unwrap();
        let e = for_new_sandbox(&pool, "o", &mut req).await.unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("inactive"), "{}", e.message);
    }

    #[test]
    fn new_names_are_checked() {
        check_new_name("my-snap_1.0:latest").unwrap();
        for bad in ["", "a/b", "a b", &"x".repeat(256)] {
            assert_eq!(
                check_new_name(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(
            check_new_name("default").unwrap_err().status,
            StatusCode::CONFLICT
        );
    }
}
