//! Preview URLs, public flag and the file-URL signing key (spec §7.1 rows 17, 21–23, 29–30).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use cove_types::api::Sandbox;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{dto, AppState};
use crate::auth::Org;
use crate::error::ApiError;
use crate::store::{access, sandboxes};

/// Default lifetime of a signed preview URL (seconds), as the SDK documents.
const SIGNED_DEFAULT_SECS: i64 = 60;
/// Longest signed preview URL lifetime (24 hours).
const SIGNED_MAX_SECS: i64 = 24 * 3600;

pub fn parse_port(s: &str) -> Result<u16, ApiError> {
    s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid port {s:?}: expected an integer from 1 to 65535"
        ))
    })
}

async fn find(st: &AppState, org: &str, id: &str) -> Result<sandboxes::SandboxRow, ApiError> {
    sandboxes::get(&st.pool, org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Sandbox {id} not found")))
}

/// `GET /sandbox/{id}/ports/{port}/preview-url` → `{sandboxId, url, token}`.
pub async fn preview_url(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, port)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let port = parse_port(&port)?;
    let row = find(&st, &org, &id).await?;
    let token = access::preview_token(&st.pool, &row.id).await?;
    let url = format!("{}/preview/{}/{port}", st.base_url(&headers), row.id);
    Ok(Json(
        json!({"sandboxId": row.id, "url": url, "token": token}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedQuery {
    expires_in_seconds: Option<String>,
}

/// The unix second from which a token made at `now_ms` for `secs` seconds is refused: rounded
/// up, so the token works for at least `secs` seconds (checks compare whole seconds; rounding
/// down would leave a 1-second token made late in a second a few milliseconds).
fn expiry(now_ms: i64, secs: i64) -> i64 {
    (now_ms + secs * 1000 + 999).div_euclid(1000)
}

/// `GET /sandbox/{id}/ports/{port}/signed-preview-url?expiresInSeconds=` →
/// `{sandboxId, port, token, url}`; the URL works without any header until it expires.
pub async fn signed_preview_url(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, port)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let port = parse_port(&port)?;
    let secs = match q.expires_in_seconds.as_deref() {
        None => SIGNED_DEFAULT_SECS,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|v| (1..=SIGNED_MAX_SECS).contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "expiresInSeconds must be an integer from 1 to {SIGNED_MAX_SECS}, got {s:?}"
                ))
            })?,
    };
    let row = find(&st, &org, &id).await?;
    let expires_at = expiry(chrono::Utc::now().timestamp_millis(), secs);
    let token = access::add_signed_preview(&st.pool, &row.id, port, expires_at).await?;
    let url = format!("{}/preview/s/{token}", st.base_url(&headers));
    Ok(Json(
        json!({"sandboxId": row.id, "port": port, "token": token, "url": url}),
    ))
}

/// `POST /sandbox/{id}/ports/{port}/signed-preview-url/{token}/expire`.
pub async fn expire_signed_preview_url(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, port, token)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let port = parse_port(&port)?;
    let row = find(&st, &org, &id).await?;
    if !access::expire_signed_preview(&st.pool, &row.id, port, &token).await? {
        return Err(ApiError::not_found(format!(
            "signed preview token not found for port {port}"
        )));
    }
    Ok(StatusCode::OK)
}

/// `POST /sandbox/{id}/public/{true|false}`.
pub async fn set_public(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path((id, flag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Sandbox>, ApiError> {
    let public = match flag.as_str() {
        "true" => true,
        "false" => false,
        v => {
            return Err(ApiError::bad_request(format!(
                "public must be true or false, got {v:?}"
            )))
        }
    };
    let row = find(&st, &org, &id).await?;
    access::set_public(&st.pool, &row.id, public).await?;
    let row = find(&st, &org, &row.id).await?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

/// `GET /sandbox/{id}/signing-key` → the key as a JSON string.
pub async fn signing_key(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<Json<String>, ApiError> {
    let row = find(&st, &org, &id).await?;
    Ok(Json(access::signing_key(&st.pool, &row.id).await?))
}

/// `POST /sandbox/{id}/signing-key/rotate` → the new key; URLs signed with the old one fail.
pub async fn rotate_signing_key(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
) -> Result<Json<String>, ApiError> {
    let row = find(&st, &org, &id).await?;
    Ok(Json(access::rotate_signing_key(&st.pool, &row.id).await?))
}

#[cfg(test)]
mod tests {
    use super::expiry;

    #[test]
    fn a_token_lives_at_least_its_seconds() {
        // The check refuses a token once the current whole second reaches its expiry.
        let valid_until = |made_ms: i64, secs| expiry(made_ms, secs) * 1000;
        for made in [10_000, 10_001, 10_500, 10_999] {
            let lives = valid_until(made, 1) - made;
            assert!(
                (1000..2000).contains(&lives),
                "made at {made} ms: {lives} ms"
            );
        }
        assert_eq!(expiry(10_000, 60), 70);
        assert_eq!(expiry(10_999, 60), 71);
    }
}
