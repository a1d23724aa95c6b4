//! Stored rows → wire DTOs (spec §6.1): every REQUIRED field, exact JSON types.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use cove_types::api::{state, Sandbox, VolumeMount};

use crate::store::sandboxes::SandboxRow;

/// The server's data dir, for `recoverable` (an errored sandbox whose files still exist).
static DATA_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Tells the DTOs where sandboxes keep their files (set by [`crate::app`]).
pub fn set_data_dir(dir: &Path) {
    *DATA_DIR.write().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_path_buf());
}

/// Whether `row` is in `error` with its writable layer still on disk (`POST .../recover`).
fn recoverable(row: &SandboxRow) -> bool {
    row.state == state::ERROR
        && DATA_DIR
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|d| cove_runtime::has_files(d, &row.id))
}

/// The Sandbox DTO of `row` as seen by a client reaching the server at `base`.
pub fn sandbox(row: &SandboxRow, base: &str) -> Sandbox {
    let volumes: Vec<VolumeMount> = serde_json::from_str(&row.volumes).unwrap_or_default();
    Sandbox {
        id: row.id.clone(),
        organization_id: row.org_id.clone(),
        name: row.name.clone(),
        user: row.os_user.clone(),
        env: row.env_map(),
        labels: row.labels_map(),
        public: row.public,
        network_block_all: row.network_block_all,
        kvm: false,
        target: row.target.clone(),
        cpu: row.cpu,
        gpu: row.gpu,
        memory: row.memory,
        disk: row.disk,
        toolbox_proxy_url: format!("{base}/toolbox"),
        state: Some(row.state.clone()),
        desired_state: Some(row.desired_state.clone()),
        snapshot: Some(row.snapshot.clone()),
        error_reason: row.error_reason.clone(),
        recoverable: Some(recoverable(row)),
        network_allow_list: row.network_allow_list.clone(),
        auto_stop_interval: Some(row.auto_stop_interval),
        auto_archive_interval: Some(row.auto_archive_interval),
        auto_delete_interval: Some(row.auto_delete_interval),
        auto_pause_interval: None,
        volumes: Some(volumes),
        created_at: Some(row.created_at.clone()),
        updated_at: Some(row.updated_at.clone()),
        last_activity_at: Some(row.last_activity_at.clone()),
        auto_destroy_at: row.auto_destroy_at.clone(),
        sandbox_class: Some("container".into()),
        daemon_version: Some(env!("CARGO_PKG_VERSION").into()),
        runner_id: Some("local".into()),
    }
}
