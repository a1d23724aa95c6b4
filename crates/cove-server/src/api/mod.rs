//! The HTTP surface: `/api/*` (Daytona API), `/toolbox/{id}/*` (proxied to the agent).

pub mod dto;
pub mod list;
pub mod meta;
pub mod openapi;
pub mod preview;
pub mod resize;
pub mod sandbox;
pub mod snapshots;
pub mod volumes;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{any, get, post, put};
use axum::Router;
use sqlx::SqlitePool;

use crate::error::ApiError;
use crate::lifecycle::Manager;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub manager: Arc<Manager>,
    pub public_url: Option<String>,
    /// Verified API keys: SHA-256 hash → organization (keys are never revoked yet, so a hit
    /// stays valid; saves a store query on every request).
    pub keys: Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>,
    /// Held for reading from resolving a snapshot to inserting what uses it (a sandbox, a
    /// snapshot based on it) and for writing by a snapshot delete, so a snapshot is never
    /// deleted between the check that nothing uses it and a new use.
    pub snapshot_gate: Arc<tokio::sync::RwLock<()>>,
}

impl AppState {
    /// The base URL the client reached us at (`--public-url`, else `http://<Host>`).
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:3000");
        format!("http://{host}")
    }
}

/// The whole application router.
pub fn router(st: AppState) -> Router {
    let api = Router::new()
        .route("/config", get(meta::config))
        .route("/sandbox", post(sandbox::create).get(list::list))
        .route("/sandbox/paginated", get(list::paginated))
        .route("/sandbox/{id}/resize", post(resize::resize))
        .route("/sandbox/{id}", get(sandbox::get).delete(sandbox::delete))
        .route("/sandbox/{id}/start", post(sandbox::start))
        .route("/sandbox/{id}/stop", post(sandbox::stop))
        .route("/sandbox/{id}/recover", post(sandbox::recover))
        .route("/sandbox/{id}/archive", post(sandbox::archive))
        .route("/sandbox/{id}/labels", put(sandbox::labels))
        .route("/sandbox/{id}/autostop/{minutes}", post(sandbox::autostop))
        .route(
            "/sandbox/{id}/autoarchive/{minutes}",
            post(sandbox::autoarchive),
        )
        .route(
            "/sandbox/{id}/autodelete/{minutes}",
            post(sandbox::autodelete),
        )
        .route("/sandbox/{id}/ttl/{minutes}", post(sandbox::ttl))
        .route(
            "/sandbox/{id}/toolbox-proxy-url",
            get(sandbox::toolbox_proxy_url),
        )
        .route(
            "/sandbox/{id}/ports/{port}/preview-url",
            get(preview::preview_url),
        )
        .route(
            "/sandbox/{id}/ports/{port}/signed-preview-url",
            get(preview::signed_preview_url),
        )
        .route(
            "/sandbox/{id}/ports/{port}/signed-preview-url/{token}/expire",
            post(preview::expire_signed_preview_url),
        )
        .route("/sandbox/{id}/public/{flag}", post(preview::set_public))
        .route("/sandbox/{id}/signing-key", get(preview::signing_key))
        .route(
            "/sandbox/{id}/signing-key/rotate",
            post(preview::rotate_signing_key),
        )
        .route("/sandbox/{id}/snapshot", post(snapshots::from_sandbox))
        .route("/snapshots", post(snapshots::create).get(snapshots::list))
        .route(
            "/snapshots/{id}",
            get(snapshots::get).delete(snapshots::delete),
        )
        .route("/snapshots/{id}/activate", post(snapshots::activate))
        .route("/snapshots/{id}/deactivate", post(snapshots::deactivate))
        .route("/volumes", post(volumes::create).get(volumes::list))
        .route("/volumes/{id}", get(volumes::get).delete(volumes::delete))
        .route("/volumes/by-name/{name}", get(volumes::by_name))
        .fallback(not_found);
    let toolbox = Router::new()
        .route("/toolbox/{id}", any(crate::proxy::toolbox))
        .route("/toolbox/{id}/", any(crate::proxy::toolbox))
        .route("/toolbox/{id}/{*rest}", any(crate::proxy::toolbox));
    let authed = Router::new()
        .nest("/api", api)
        .merge(toolbox)
        .layer(from_fn_with_state(st.clone(), crate::auth::require_key));
    Router::new()
        .route("/api/health", get(meta::health))
        .route("/api/socket.io", get(crate::events::socket_io))
        .route("/api/socket.io/", get(crate::events::socket_io))
        .route("/preview/{*rest}", any(crate::preview::by_path))
        .merge(authed)
        .fallback(not_found)
        .layer(from_fn_with_state(st.clone(), crate::preview::by_host))
        .layer(from_fn(crate::error::stamp))
        .with_state(st)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("Cannot find route {}", uri.path()))
}
