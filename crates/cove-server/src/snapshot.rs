//! Snapshots on the lifecycle side: which layers a sandbox boots from, taking a snapshot of
//! a sandbox, and settling snapshots a crash interrupted.
//!
//! ```text
//!   POST /sandbox/{id}/snapshot {name}
//!   sandbox:  started | stopped ──► snapshotting ──(copy finished or failed)──► previous state
//!   snapshot:       (new row) ──► snapshotting ──► active | error (its layer dir removed)
//! ```
//! Under the sandbox's lock: the snapshot row is inserted (`snapshotting`; a taken name is a
//! 409 and changes nothing), the sandbox is moved to `snapshotting`, and the answer goes
//! out. A task keeps the lock (stop, start and delete wait for it), freezes a started
//! sandbox with the cgroup freezer (the copy is consistent and the sandbox cannot swap files
//! under the copier; the `docker commit` default), copies the sandbox's upper dir into
//! `<data>/layers/<snapshot id>` (written as `.tmp-<id>` and renamed), thaws it, records
//! the snapshot `active` (or removes the partial layer and records `error` with the reason)
//! and moves the sandbox back to its previous state.
//!
//! A snapshot's layers are its base's layers plus its own, lowest first; sandboxes created
//! from it use those directories as overlay lowerdirs, shared, never copied or written.
//! After a crash [`Manager::reconcile_snapshots`] marks unfinished snapshots `error` and
//! removes layer dirs no snapshot lists; `lifecycle.rs` settles the `snapshotting` sandbox.

use std::path::PathBuf;
use std::sync::Arc;

use cove_runtime::ImageRef;
use cove_types::api::state;
use cove_types::snapshot::snapshot_state;

use crate::error::ApiError;
use crate::failpoint;
use crate::lifecycle::Manager;
use crate::store::layers;
use crate::store::sandboxes::{self, SandboxRow};
use crate::store::snapshots::{self, SnapshotRow};

/// Snapshot names that mean "the default image" (the SDKs' and Daytona's defaults).
pub const DEFAULT_SNAPSHOTS: &[&str] = &[
    cove_runtime::image::DEFAULT_IMAGE,
    "daytona-small",
    "daytona-medium",
    "daytona-large",
];

/// `errorReason` of a snapshot whose copy a server crash interrupted.
pub const INTERRUPTED: &str = "server stopped before the snapshot was finished";

/// Whether `name` means the default image rather than a stored snapshot.
pub fn is_default(name: &str) -> bool {
    DEFAULT_SNAPSHOTS.contains(&name)
}

impl Manager {
    /// The layers sandbox `row` boots from: the default image, or its snapshot's layers.
    pub(crate) async fn image_for(&self, row: &SandboxRow) -> Result<ImageRef, String> {
        let (name, entries, entrypoint) = self.stored_image_for(row).await?;
        Ok(ImageRef {
            name,
            layers: self.resolve_layers(&entries).await?,
            entrypoint,
        })
    }

    /// Sandbox `row`'s image as stored: its name, layer entries (see `store/layers.rs`) and
    /// entrypoint.
    async fn stored_image_for(
        &self,
        row: &SandboxRow,
    ) -> Result<(String, Vec<String>, Vec<String>), String> {
        if is_default(&row.snapshot) {
            return Ok((
                row.snapshot.clone(),
                vec![layers::DEFAULT.into()],
                Vec::new(),
            ));
        }
        let snap = snapshots::by_name(&self.pool, &row.org_id, &row.snapshot)
            .await
            .map_err(|e| format!("store error: {e}"))?
            .ok_or_else(|| format!("snapshot {} no longer exists", row.snapshot))?;
        match snap.state.as_str() {
            snapshot_state::ACTIVE | snapshot_state::INACTIVE => Ok((
                snap.name.clone(),
                snap.layer_entries(),
                snap.entrypoint_argv(),
            )),
            s => Err(format!("snapshot {} is {s}", snap.name)),
        }
    }

    /// Host directories of stored layer entries (waiting for the default image if they
    /// name it).
    async fn resolve_layers(&self, entries: &[String]) -> Result<Vec<PathBuf>, String> {
        let default = if entries.iter().any(|e| e == layers::DEFAULT) {
            self.image().await?.layers
        } else {
            Vec::new()
        };
        Ok(layers::resolve(
            entries,
            |id| self.runtime.layer_dir(id),
            &default,
        ))
    }

    /// Starts a snapshot named `name` of sandbox `id` (started or stopped); returns the
    /// sandbox in `snapshotting`. The copy finishes in the background (see module docs).
    pub async fn snapshot(
        self: &Arc<Self>,
        id: String,
        name: String,
    ) -> Result<SandboxRow, ApiError> {
        let me = self.clone();
        // A task of its own: a client going away cannot stop it halfway.
        tokio::spawn(async move {
            let guard = me.lock_for(&id).lock_owned().await;
            let mut row = me.reload(&id).await?;
            let prev = row.state.clone();
            if prev != state::STARTED && prev != state::STOPPED {
                return Err(ApiError::conflict(format!(
                    "Sandbox {id} cannot be snapshotted in state {prev}; it must be started or stopped"
                )));
            }
            let (_, mut entries, base_entrypoint) = me
                .stored_image_for(&row)
                .await
                .map_err(|e| ApiError::internal(format!("cannot resolve the sandbox's image: {e}")))?;
            let snap_id = uuid::Uuid::new_v4().to_string();
            // Like an image built on another, the snapshot keeps its base's entrypoint.
            let entrypoint = (!base_entrypoint.is_empty())
                .then(|| serde_json::to_string(&base_entrypoint).unwrap_or_else(|_| "[]".into()));
            entries.push(layers::own(&snap_id));
            let now = crate::now();
            let snap = SnapshotRow {
                seq: 0,
                id: snap_id,
                org_id: row.org_id.clone(),
                name,
                image_name: Some(row.snapshot.clone()),
                state: snapshot_state::SNAPSHOTTING.into(),
                cpu: row.cpu,
                gpu: row.gpu,
                mem: row.memory,
                disk: row.disk,
                size: None,
                entrypoint,
                source_sandbox_id: Some(row.id.clone()),
                layers: serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into()),
                error_reason: None,
                created_at: now.clone(),
                updated_at: now,
                last_used_at: None,
            };
            // Auto-archive and auto-delete count from when the sandbox stopped, snapshot or not.
            let since = sandboxes::state_changed_at(&me.pool, &row.id).await?;
            insert_snapshot(&me.pool, &snap).await?;
            if let Err(e) = me
                .transition(&mut row, state::SNAPSHOTTING, &prev, None)
                .await
            {
                let _ = snapshots::delete_unused(&me.pool, &snap).await;
                return Err(e);
            }
            failpoint::hit("after:snapshotting");
            let answer = row.clone();
            tokio::spawn(async move {
                let _guard = guard;
                me.finish_snapshot(row, snap, prev, since).await;
            });
            Ok(answer)
        })
        .await
        .map_err(|e| ApiError::internal(format!("snapshot task failed: {e}")))?
    }

    /// Copies the sandbox's files into the snapshot's layer, records the outcome, and moves
    /// the sandbox back to `prev`, entered at `since` as before (the caller holds the
    /// sandbox's lock).
    async fn finish_snapshot(
        &self,
        mut row: SandboxRow,
        snap: SnapshotRow,
        prev: String,
        since: String,
    ) {
        let (copied, thaw_error) = self.copy_files(&row, &snap.id, &prev).await;
        let recorded = match &copied {
            Ok(bytes) => {
                tracing::info!("snapshot {} of {}: {bytes} bytes", snap.name, row.id);
                let size = i64::try_from(*bytes).ok();
                snapshots::finish(&self.pool, &snap.id, snapshot_state::ACTIVE, size, None).await
            }
            Err(reason) => {
                tracing::warn!("snapshot {} of {} failed: {reason}", snap.name, row.id);
                if let Err(e) = self.runtime.remove_layer(&snap.id).await {
                    tracing::warn!("snapshot {}: removing its layer: {e}", snap.id);
                }
                snapshots::finish(
                    &self.pool,
                    &snap.id,
                    snapshot_state::ERROR,
                    None,
                    Some(reason),
                )
                .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!("snapshot {}: cannot record its outcome: {e}", snap.id);
        }
        let back = match thaw_error {
            None => match self.transition(&mut row, &prev, &prev, None).await {
                Ok(()) => sandboxes::set_state_changed_at(&self.pool, &row.id, &since)
                    .await
                    .map_err(ApiError::from),
                e => e,
            },
            Some(e) => {
                let reason = format!("cannot thaw the sandbox after a snapshot: {e}");
                self.transition(&mut row, state::ERROR, &prev, Some(&reason))
                    .await
            }
        };
        if let Err(e) = back {
            tracing::error!("sandbox {}: cannot leave snapshotting: {e}", row.id);
        }
    }

    /// Freezes a started sandbox, copies its upper dir into layer `snap_id`, thaws it.
    /// Returns the bytes copied (or why not) and a thaw failure, if any.
    async fn copy_files(
        &self,
        row: &SandboxRow,
        snap_id: &str,
        prev: &str,
    ) -> (Result<u64, String>, Option<String>) {
        let running = prev == state::STARTED;
        let upper = if running {
            if let Err(e) = self.runtime.freeze(&row.id).await {
                return (Err(e.to_string()), None);
            }
            failpoint::hit("after:frozen");
            Ok(self.runtime.upper_dir(&row.id))
        } else {
            self.runtime
                .prepare_files(&row.id, row.disk as u32)
                .await
                .map_err(|e| e.to_string())
        };
        let copied = match upper {
            Ok(upper) => self
                .runtime
                .copy_layer(upper, snap_id)
                .await
                .map(|(_, stats)| stats.bytes)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let thawed = if running {
            self.runtime
                .thaw(&row.id)
                .await
                .err()
                .map(|e| e.to_string())
        } else {
            None
        };
        (copied, thawed)
    }

    /// After a restart: snapshots still `snapshotting` become `error` (their layer dir
    /// removed), and layer dirs that no snapshot lists (leftovers of a crash) are removed.
    pub async fn reconcile_snapshots(&self) -> Result<(), sqlx::Error> {
        for snap in snapshots::in_state(&self.pool, snapshot_state::SNAPSHOTTING).await? {
            if let Err(e) = self.runtime.remove_layer(&snap.id).await {
                tracing::warn!("reconcile: removing layer of snapshot {}: {e}", snap.id);
            }
            tracing::info!("reconcile: snapshot {} snapshotting → error", snap.id);
            snapshots::finish(
                &self.pool,
                &snap.id,
                snapshot_state::ERROR,
                None,
                Some(INTERRUPTED),
            )
            .await?;
        }
        let dir = self.runtime.cfg.data_dir.join("layers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // `.tmp-<id>` is an unfinished copy of <id> (which then does not exist yet).
            let bare = name.strip_prefix(".tmp-").unwrap_or(&name);
            if snapshots::layer_in_use(&self.pool, &layers::own(bare)).await? {
                continue;
            }
            tracing::info!("reconcile: removing unused layer {}", e.path().display());
            if let Err(err) = self.runtime.remove_layer(bare).await {
                tracing::warn!("reconcile: removing {}: {err}", e.path().display());
            }
        }
        Ok(())
    }
}

/// Inserts a snapshot row; a taken name is a 409 naming it.
pub async fn insert_snapshot(pool: &sqlx::SqlitePool, snap: &SnapshotRow) -> Result<(), ApiError> {
    snapshots::insert(pool, snap).await.map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError::conflict(format!("Snapshot with name {} already exists", snap.name))
        }
        _ => e.into(),
    })
}
