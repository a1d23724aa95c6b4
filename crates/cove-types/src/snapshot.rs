//! Snapshot wire types (spec §6.5, §8.1, §7.1 row 33).

use serde::{Deserialize, Serialize};

/// Snapshot states as exact wire strings (spec §6.3 `SnapshotState`).
pub mod snapshot_state {
    /// Being copied from a sandbox.
    pub const SNAPSHOTTING: &str = "snapshotting";
    /// The default image, not built yet (it is built on first use).
    pub const PENDING: &str = "pending";
    /// The default image, being built.
    pub const BUILDING: &str = "building";
    pub const BUILD_FAILED: &str = "build_failed";
    pub const ACTIVE: &str = "active";
    pub const INACTIVE: &str = "inactive";
    pub const ERROR: &str = "error";
}

/// `SnapshotDto` (spec §6.5). Nullable REQUIRED fields are always present, maybe null.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDto {
    pub id: String,
    pub organization_id: Option<String>,
    /// True only for the default image: shared by every organization, never stored.
    pub general: bool,
    pub name: String,
    /// What the snapshot was made from: an image or snapshot name.
    pub image_name: Option<String>,
    pub state: String,
    /// GiB of the snapshot's own layer (null when it has none: it shares an image's layers).
    pub size: Option<f64>,
    pub entrypoint: Option<Vec<String>>,
    pub cpu: i64,
    pub gpu: i64,
    pub mem: i64,
    pub disk: i64,
    pub error_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    pub source_sandbox_id: Option<String>,
}

/// `GET /snapshots` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaginatedSnapshots {
    pub items: Vec<SnapshotDto>,
    pub total: i64,
    pub page: i64,
    pub total_pages: i64,
}

/// `POST /snapshots` body (only non-null keys are sent by the SDKs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSnapshot {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<i64>,
    /// A declarative image (Dockerfile); cove does not build images, so it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub build_info: Option<serde_json::Value>,
}

/// `POST /sandbox/{idOrName}/snapshot` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSandboxSnapshot {
    pub name: String,
    /// Memory snapshots are not supported; `true` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_memory: Option<bool>,
}
