//! `/sandbox` handlers: create, get, delete, start, stop, labels (spec §7); list is in `list.rs`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use cove_types::api::{state, CreateSandbox, Sandbox, SandboxLabels, Url};
use cove_types::error::ErrorEnvelope;
use serde::Deserialize;

use super::{dto, AppState};
use crate::auth::Org;
use crate::error::{parse_json, ApiError};
use crate::store::sandboxes::{self, SandboxRow};

const LANGUAGES: &[&str] = &["python", "typescript", "javascript"];
const LANGUAGE_LABEL: &str = "code-toolbox-language";
/// Disk size (GiB) of a sandbox created without one; the runtime keeps images of this size
/// formatted ahead of time.
pub const DEFAULT_DISK_GIB: i64 = 3;

pub(crate) fn check_range(
    field: &str,
    v: Option<i64>,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, ApiError> {
    match v {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::bad_request(format!(
            "{field} must be between {min} and {max}, got {v}"
        ))),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

/// Validates a create request into a new row (state `creating`), or a 4xx naming the field.
pub fn validate(org: &str, req: CreateSandbox) -> Result<SandboxRow, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let name = match req.name {
        Some(n) if !valid_name(&n) => {
            return Err(ApiError::bad_request(format!(
                "invalid sandbox name {n:?}: use 1-63 letters, digits, '-', '_' or '.'"
            )))
        }
        Some(n) => n,
        None => id.clone(),
    };
    let user = req.user.unwrap_or_else(|| "daytona".into());
    if !valid_user(&user) {
        return Err(ApiError::bad_request(format!("invalid user {user:?}")));
    }
    // Resolved against the store before (`snapshots::for_new_sandbox`).
    let snapshot = req
        .snapshot
        .unwrap_or_else(|| cove_runtime::image::DEFAULT_IMAGE.into());
    if let Some(lang) = req.labels.get(LANGUAGE_LABEL) {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(ApiError::bad_request(format!(
                "label {LANGUAGE_LABEL} must be one of python, typescript, javascript; got {lang:?}"
            )));
        }
    }
    if let Some(k) = req
        .env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(ApiError::bad_request(format!(
            "invalid environment variable name {k:?}"
        )));
    }
    if let Some(k) = req.labels.keys().find(|k| k.is_empty()) {
        return Err(ApiError::bad_request(format!("invalid label key {k:?}")));
    }
    let cpu = check_range("cpu", req.cpu, 1, 64, 1)?;
    let memory = check_range("memory", req.memory, 1, 256, 1)?;
    let disk = check_range("disk", req.disk, 1, 1024, DEFAULT_DISK_GIB)?;
    let gpu = check_range("gpu", req.gpu, 0, 0, 0)?;
    let auto_stop = check_range(
        "autoStopInterval",
        req.auto_stop_interval,
        0,
        i64::from(i32::MAX),
        15,
    )?;
    let auto_archive = check_range(
        "autoArchiveInterval",
        req.auto_archive_interval,
        0,
        i64::from(i32::MAX),
        10080,
    )?;
    let auto_delete = check_range(
        "autoDeleteInterval",
        req.auto_delete_interval,
        -1,
        i64::from(i32::MAX),
        -1,
    )?;
    let volumes = super::volumes::check_mounts(req.volumes.unwrap_or_default())?;
    let now = crate::now();
    Ok(SandboxRow {
        seq: 0,
        id,
        org_id: org.to_string(),
        name,
        os_user: user,
        env: serde_json::to_string(&req.env).unwrap_or_else(|_| "{}".into()),
        labels: serde_json::to_string(&req.labels).unwrap_or_else(|_| "{}".into()),
        public: req.public.unwrap_or(false),
        network_block_all: req.network_block_all.unwrap_or(false),
        network_allow_list: req.network_allow_list,
        target: req.target.unwrap_or_else(|| "us".into()),
        cpu,
        gpu,
        memory,
        disk,
        snapshot,
        state: state::CREATING.into(),
        desired_state: state::STARTED.into(),
        error_reason: None,
        auto_stop_interval: auto_stop,
        auto_archive_interval: auto_archive,
        auto_delete_interval: auto_delete,
        volumes: serde_json::to_string(&volumes).unwrap_or_else(|_| "[]".into()),
        created_at: now.clone(),
        updated_at: now.clone(),
        last_activity_at: now,
        auto_destroy_at: None,
    })
}

/// `POST /sandbox`: answers once the sandbox is started (or in `error`).
#[utoipa::path(post, path = "/sandbox", request_body = CreateSandbox, responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Sandbox>, ApiError> {
    let mut req: CreateSandbox = parse_json(&body)?;
    let ttl = match req.ttl_minutes {
        None => 0,
        Some(m) => parse_interval("ttlMinutes", &m.to_string(), 0)?,
    };
    // A snapshot cannot be deleted between being resolved here and the row's insert.
    let _gate = st.snapshot_gate.read().await;
    let snap = super::snapshots::for_new_sandbox(&st.pool, &org, &mut req).await?;
    let mut row = validate(&org, req)?;
    row.auto_destroy_at = st.manager.ttl_deadline(ttl);
    super::volumes::resolve(&st.pool, &org, &mut row).await?;
    if let Some(s) = snap {
        crate::store::snapshots::touch(&st.pool, &s.id, &crate::now()).await?;
    }
    let row = st.manager.create(row).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// Finds a sandbox of `org` by id or name; the call counts as activity on it.
pub(crate) async fn find(st: &AppState, org: &str, id: &str) -> Result<SandboxRow, ApiError> {
    let row = sandboxes::get(&st.pool, org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Sandbox {id} not found")))?;
    st.manager.note_activity(&row.id);
    Ok(row)
}

/// Parses a timer interval from the path: an integer of at least `min` minutes.
fn parse_interval(field: &str, raw: &str, min: i64) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v >= min && *v <= i64::from(i32::MAX))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{field} must be an integer number of minutes >= {min}, got {raw:?}"
            ))
        })
}

async fn set_interval(
    st: &AppState,
    org: &str,
    id: &str,
    which: sandboxes::Interval,
    minutes: i64,
    headers: &HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(st, org, id).await?;
    sandboxes::set_interval(&st.pool, &row.id, which, minutes).await?;
    let row = find(st, org, &row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(headers))))
}

/// `POST /sandbox/{idOrName}/autostop/{minutes}` (0 = never).
#[utoipa::path(post, path = "/sandbox/{idOrName}/autostop/{minutes}", params(("idOrName" = String, Path), ("minutes" = i64, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn autostop(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let m = parse_interval("autoStopInterval", &raw, 0)?;
    set_interval(&st, &org, &id, sandboxes::Interval::AutoStop, m, &headers).await
}

/// `POST /sandbox/{idOrName}/autoarchive/{minutes}` (0 = the maximum, 30 days).
#[utoipa::path(post, path = "/sandbox/{idOrName}/autoarchive/{minutes}", params(("idOrName" = String, Path), ("minutes" = i64, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn autoarchive(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let m = match parse_interval("autoArchiveInterval", &raw, 0)? {
        0 => crate::lifecycle::auto_archive::MAX_AUTO_ARCHIVE,
        m => m,
    };
    set_interval(
        &st,
        &org,
        &id,
        sandboxes::Interval::AutoArchive,
        m,
        &headers,
    )
    .await
}

/// `POST /sandbox/{idOrName}/autodelete/{minutes}` (0 = on stop, -1 = never).
#[utoipa::path(post, path = "/sandbox/{idOrName}/autodelete/{minutes}", params(("idOrName" = String, Path), ("minutes" = i64, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn autodelete(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let m = parse_interval("autoDeleteInterval", &raw, -1)?;
    set_interval(&st, &org, &id, sandboxes::Interval::AutoDelete, m, &headers).await
}

/// `POST /sandbox/{idOrName}/ttl/{minutes}`: destroys the sandbox that many minutes from now,
/// whatever its state then; 0 clears the TTL.
#[utoipa::path(post, path = "/sandbox/{idOrName}/ttl/{minutes}", params(("idOrName" = String, Path), ("minutes" = i64, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn ttl(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, raw)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let m = parse_interval("ttlMinutes", &raw, 0)?;
    let row = find(&st, &org, &id).await?;
    let at = st.manager.ttl_deadline(m);
    sandboxes::set_auto_destroy(&st.pool, &row.id, at.as_deref()).await?;
    let row = find(&st, &org, &row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `GET /sandbox/{idOrName}`.
#[utoipa::path(get, path = "/sandbox/{idOrName}", params(("idOrName" = String, Path)), responses((status = 200, body = Sandbox), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(&st, &org, &id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `DELETE /sandbox/{idOrName}`: destroys it and answers the last DTO (`destroyed`).
#[utoipa::path(delete, path = "/sandbox/{idOrName}", params(("idOrName" = String, Path)), responses((status = 200, body = Sandbox), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(&st, &org, &id).await?;
    let row = st.manager.delete(row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `POST /sandbox/{idOrName}/start` (an archived sandbox is restored first).
#[utoipa::path(post, path = "/sandbox/{idOrName}/start", params(("idOrName" = String, Path)), responses((status = 200, body = Sandbox), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn start(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(&st, &org, &id).await?;
    let row = st.manager.start(row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `POST /sandbox/{idOrName}/recover`: boots an errored sandbox whose files still exist.
#[utoipa::path(post, path = "/sandbox/{idOrName}/recover", params(("idOrName" = String, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn recover(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(&st, &org, &id).await?;
    let row = st.manager.recover(row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `POST /sandbox/{idOrName}/archive`: moves a stopped sandbox's files to object storage and
/// answers once they are there (`archived`); `start` brings them back.
#[utoipa::path(post, path = "/sandbox/{idOrName}/archive", params(("idOrName" = String, Path)), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn archive(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let row = find(&st, &org, &id).await?;
    let row = st.manager.archive(row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

#[derive(Deserialize)]
pub struct StopQuery {
    #[serde(default)]
    force: Option<String>,
}

/// `POST /sandbox/{idOrName}/stop?force=`.
#[utoipa::path(post, path = "/sandbox/{idOrName}/stop", params(("idOrName" = String, Path), ("force" = Option<bool>, Query)), responses((status = 200, body = Sandbox), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn stop(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let force = match q.force.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "force must be true or false, got {v:?}"
            )))
        }
    };
    let row = find(&st, &org, &id).await?;
    let row = st.manager.stop(row.id, force).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `PUT /sandbox/{idOrName}/labels`: replaces the whole map.
#[utoipa::path(put, path = "/sandbox/{idOrName}/labels", params(("idOrName" = String, Path)), request_body = SandboxLabels, responses((status = 200, body = SandboxLabels), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn labels(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SandboxLabels>, ApiError> {
    let req: SandboxLabels = parse_json(&body)?;
    if let Some(lang) = req.labels.get(LANGUAGE_LABEL) {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(ApiError::bad_request(format!(
                "label {LANGUAGE_LABEL} cannot be {lang:?}"
            )));
        }
    }
    let row = find(&st, &org, &id).await?;
    sandboxes::set_labels(&st.pool, &row.id, &req.labels).await?;
    Ok(Json(req))
}

/// `GET /sandbox/{id}/toolbox-proxy-url`.
#[utoipa::path(get, path = "/sandbox/{idOrName}/toolbox-proxy-url", params(("idOrName" = String, Path)), responses((status = 200, body = Url), (status = 404, body = ErrorEnvelope)))]
pub async fn toolbox_proxy_url(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Url>, ApiError> {
    find(&st, &org, &id).await?;
    Ok(Json(Url {
        url: format!("{}/toolbox", st.base_url(&headers)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_validation_names_the_field() {
        let e = validate(
            "o",
            CreateSandbox {
                cpu: Some(0),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.message.contains("cpu"), "{}", e.message);
        let mut req = CreateSandbox::default();
        req.labels.insert(LANGUAGE_LABEL.into(), "ruby".into());
        assert!(validate("o", req).is_err());
        let row = validate("o", CreateSandbox::default()).unwrap();
        assert_eq!(
            (row.cpu, row.memory, row.disk, row.os_user.as_str()),
            (1, 1, 3, "daytona")
        );
        assert_eq!(row.name, row.id);
    }
}
