//! `GET /health` and `GET /config` (spec §5.1, §6.8).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

#[utoipa::path(get, path = "/health", responses((status = 200, description = "always {\"status\":\"ok\"}")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// A complete `DaytonaConfiguration`; `analyticsApiUrl` stays null (the only field SDKs read).
#[utoipa::path(get, path = "/config", responses((status = 200, description = "DaytonaConfiguration")))]
pub async fn config(State(st): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = st.base_url(&headers);
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
        "linkedAccountsEnabled": false,
        "announcements": {},
        "proxyTemplateUrl": format!("{base}/preview/{{{{PORT}}}}/{{{{sandboxId}}}}"),
        "proxyToolboxUrl": format!("{base}/toolbox"),
        "defaultSnapshot": "default",
        "dashboardUrl": base,
        "environment": "self-hosted",
        "maxAutoArchiveInterval": crate::lifecycle::auto_archive::MAX_AUTO_ARCHIVE,
        "maintananceMode": false,
        "analyticsApiUrl": null,
    }))
}
