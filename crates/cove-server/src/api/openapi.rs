//! The OpenAPI document of `/api`, checked in as `docs/openapi.json` and diffed in CI.

use utoipa::OpenApi;

use super::{list, meta, resize, sandbox, snapshots};

#[derive(OpenApi)]
#[openapi(
    info(title = "cove API", description = "Daytona-compatible sandbox API served under /api"),
    servers((url = "/api")),
    paths(
        meta::health,
        meta::config,
        sandbox::create,
        list::list,
        sandbox::get,
        sandbox::delete,
        sandbox::start,
        sandbox::recover,
        sandbox::autostop,
        sandbox::autoarchive,
        sandbox::autodelete,
        sandbox::ttl,
        sandbox::stop,
        sandbox::archive,
        resize::resize,
        sandbox::labels,
        sandbox::toolbox_proxy_url,
        snapshots::from_sandbox,
        snapshots::create,
        snapshots::list,
        snapshots::get,
        snapshots::delete,
        snapshots::activate,
        snapshots::deactivate,
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline.
pub fn json() -> String {
    let mut s = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    /// Fails when the API changed without `cove openapi > docs/openapi.json`.
    #[test]
    fn checked_in_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        if std::env::var_os("COVE_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, super::json()).unwrap();
            return;
        }
        assert!(
            checked_in == super::json(),
            "docs/openapi.json is stale: run COVE_UPDATE_OPENAPI=1 cargo test -p cove-server openapi"
        );
    }
}
