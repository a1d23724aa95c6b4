//! Control-plane wire types: sandboxes, lists, labels (spec §6, §7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A volume mount in a create request or a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub volume_id: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// `POST /sandbox` body. Unknown fields are accepted and ignored (spec §1 rule 9).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSandbox {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_archive_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_delete_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_pause_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_block_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_allow_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<VolumeMount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<bool>,
}

/// The full sandbox DTO (spec §6.1). Every REQUIRED field is always present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub user: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub public: bool,
    pub network_block_all: bool,
    #[serde(default)]
    pub kvm: bool,
    pub target: String,
    pub cpu: i64,
    pub gpu: i64,
    pub memory: i64,
    pub disk: i64,
    pub toolbox_proxy_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_allow_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_archive_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_delete_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_pause_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<VolumeMount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<String>,
    /// When a TTL destroys the sandbox, whatever its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_destroy_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_id: Option<String>,
}

/// `GET /sandbox` response: `{items, nextCursor}` (spec §6.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSandboxesResponse {
    pub items: Vec<Sandbox>,
    pub next_cursor: Option<String>,
}

/// `PUT /sandbox/{id}/labels` body and response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SandboxLabels {
    pub labels: BTreeMap<String, String>,
}

/// `{ "url": ... }` (toolbox proxy URL and friends).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Url {
    pub url: String,
}

/// Sandbox states as exact wire strings (spec §6.3).
pub mod state {
    pub const CREATING: &str = "creating";
    pub const STARTING: &str = "starting";
    pub const STARTED: &str = "started";
    pub const STOPPING: &str = "stopping";
    pub const STOPPED: &str = "stopped";
    pub const DESTROYING: &str = "destroying";
    pub const DESTROYED: &str = "destroyed";
    pub const ERROR: &str = "error";
    pub const SNAPSHOTTING: &str = "snapshotting";
    pub const PENDING_BUILD: &str = "pending_build";
    pub const ARCHIVING: &str = "archiving";
    pub const ARCHIVED: &str = "archived";
    pub const RESTORING: &str = "restoring";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_default_create_body_parses() {
        let b: CreateSandbox = serde_json::from_str(
            r#"{"env": {}, "labels": {"code-toolbox-language": "python"}, "volumes": [], "unknownField": 1}"#,
        )
        .unwrap();
        assert_eq!(b.labels["code-toolbox-language"], "python");
        assert_eq!(b.volumes, Some(vec![]));
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert!(serde_json::from_str::<CreateSandbox>(r#"{"labels": {"a": 1}}"#).is_err());
        assert!(serde_json::from_str::<CreateSandbox>(r#"{"cpu": "1"}"#).is_err());
    }
}
