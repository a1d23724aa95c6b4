//! Archive and restore: a stopped sandbox's files (its upper dir) go to object storage and
//! its local copy is freed; `start` brings them back. See the drawing in [`super`].
//!
//! Local files are never removed before the object holding them is complete and durable:
//! the store's `archive_key` is written only after the upload finishes, and
//! [`Runtime::release_files`](cove_runtime::Runtime::release_files) runs only after that. A
//! restore unpacks into the (emptied) dir [`Runtime::prepare_files`](cove_runtime::Runtime::prepare_files)
//! returns and keeps the object until the restored files are synced to disk; then it is deleted
//! in the background (or by the sweep at the next server start).

use std::path::PathBuf;
use std::sync::Arc;

use cove_runtime::archive::{self as packer, LEVEL};
use cove_types::api::state;
use object_store::path::Path as Key;

use super::Manager;
use crate::error::ApiError;
use crate::failpoint;
use crate::objects::Objects;
use crate::store::archives;
use crate::store::sandboxes::SandboxRow;

/// `errorReason` of a sandbox whose archive object is gone.
pub const ARCHIVE_MISSING: &str = "its archive is missing from object storage";

impl Manager {
    /// Archives a stopped sandbox (an archived one is returned as it is): 400 if it is
    /// started or in error, 409 in a transitional state.
    pub async fn archive(self: &Arc<Self>, id: String) -> Result<SandboxRow, ApiError> {
        self.locked(id, "archive", |me, mut row| async move {
            let id = row.id.clone();
            match row.state.as_str() {
                state::ARCHIVED => return Ok(row),
                state::STOPPED => {}
                state::STARTED => {
                    return Err(ApiError::bad_request(format!(
                        "Sandbox {id} is started; stop it before archiving"
                    )))
                }
                state::ERROR => {
                    return Err(ApiError::bad_request(format!(
                        "Sandbox {id} is in error state; stop it before archiving"
                    )))
                }
                s => {
                    return Err(ApiError::conflict(format!(
                        "Sandbox {id} cannot be archived in state {s}"
                    )))
                }
            }
            // An older object (a restore whose cleanup has not run) is not this archive.
            archives::set_key(&me.pool, &id, None).await?;
            me.transition(&mut row, state::ARCHIVING, state::ARCHIVED, None)
                .await?;
            failpoint::hit("after:archiving");
            let key = Objects::archive_key(&id);
            if let Err(reason) = me.upload_files(&row, &key).await {
                tracing::warn!("archive of {id} failed: {reason}");
                me.transition(&mut row, state::STOPPED, state::STOPPED, None)
                    .await?;
                return Err(ApiError::internal(format!(
                    "archive of sandbox {id} failed (its files are kept): {reason}"
                )));
            }
            archives::set_key(&me.pool, &id, Some(key.as_ref())).await?;
            failpoint::hit("after:archive-uploaded");
            let t0 = std::time::Instant::now();
            if let Err(e) = me.runtime.release_files(&id).await {
                // The archive is complete; what is left locally is wiped by the restore.
                tracing::warn!("archive of {id}: freeing its local files failed: {e}");
            }
            tracing::debug!("archive of {id}: local files freed in {:?}", t0.elapsed());
            me.transition(&mut row, state::ARCHIVED, state::ARCHIVED, None)
                .await?;
            Ok(row)
        })
        .await
    }

    /// Packs the sandbox's files into the object at `key` (durable once this returns).
    async fn upload_files(&self, row: &SandboxRow, key: &Key) -> Result<(), String> {
        let dir = self
            .runtime
            .prepare_files(&row.id, row.disk as u32)
            .await
            .map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        let (stats, stored) = self
            .objects
            .upload(key, move |w| {
                packer::pack(&dir, w, LEVEL)
                    .map(|(_, s)| s)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            "archived {}: {} entries, {} file bytes → {stored} bytes at {key} in {:?}",
            row.id,
            stats.entries,
            stats.file_bytes,
            t0.elapsed()
        );
        Ok(())
    }

    /// Restores an archived sandbox's files and boots it (`row` is `archived`, under its
    /// lock). A failed restore leaves it `archived` with the reason, its object untouched.
    pub(super) async fn restore_and_boot(
        self: &Arc<Self>,
        row: &mut SandboxRow,
    ) -> Result<(), ApiError> {
        let id = row.id.clone();
        let Some(key) = archives::key(&self.pool, &id).await? else {
            self.transition(row, state::ERROR, state::STARTED, Some(ARCHIVE_MISSING))
                .await?;
            return Ok(());
        };
        self.transition(row, state::RESTORING, state::STARTED, None)
            .await?;
        failpoint::hit("after:restoring");
        let dir = match self.download_files(row, &key).await {
            Ok(dir) => dir,
            Err(reason) => {
                let reason = format!("restore failed: {reason}");
                tracing::warn!("sandbox {id}: {reason}");
                if let Err(e) = self.runtime.release_files(&id).await {
                    tracing::warn!("sandbox {id}: dropping a partial restore failed: {e}");
                }
                self.transition(row, state::ARCHIVED, state::ARCHIVED, Some(&reason))
                    .await?;
                return Err(ApiError::internal(format!("Sandbox {id}: {reason}")));
            }
        };
        self.transition(row, state::STARTING, state::STARTED, None)
            .await?;
        self.boot(row).await?;
        self.spawn_drop_archive(id, key, dir);
        Ok(())
    }

    /// Empties the sandbox's upper dir and unpacks the object at `key` into it.
    async fn download_files(&self, row: &SandboxRow, key: &str) -> Result<PathBuf, String> {
        let dir = self
            .runtime
            .prepare_files(&row.id, row.disk as u32)
            .await
            .map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        let target = dir.clone();
        let stats = self
            .objects
            .download(&Key::from(key), move |r| {
                packer::clear_dir(&target).map_err(|e| e.to_string())?;
                packer::unpack(r, &target).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            "restored {}: {} entries, {} file bytes from {key} in {:?}",
            row.id,
            stats.entries,
            stats.file_bytes,
            t0.elapsed()
        );
        Ok(dir)
    }

    /// Once the restored files in `dir` are on disk, deletes the archive they came from
    /// (unless the sandbox was archived again meanwhile).
    fn spawn_drop_archive(self: &Arc<Self>, id: String, key: String, dir: PathBuf) {
        let me = self.clone();
        tokio::spawn(async move {
            let synced = tokio::task::spawn_blocking(move || packer::sync_fs(&dir)).await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::warn!("sandbox {id}: syncing restored files failed; archive {key} kept");
                return;
            }
            me.drop_archive_if_restored(&id, &key).await;
        });
    }

    /// Deletes sandbox `id`'s archive object `key` if the store still names it and the
    /// sandbox is no longer archived (under the sandbox's lock).
    async fn drop_archive_if_restored(&self, id: &str, key: &str) {
        let lock = self.lock_for(id);
        let _g = lock.lock().await;
        let Ok(row) = self.reload(id).await else {
            return; // deleted: the delete took the object along
        };
        if matches!(
            row.state.as_str(),
            state::ARCHIVING | state::ARCHIVED | state::RESTORING
        ) || archives::key(&self.pool, id)
            .await
            .ok()
            .flatten()
            .as_deref()
            != Some(key)
        {
            return;
        }
        match self.objects.delete(&Key::from(key)).await {
            Ok(()) => {
                if let Err(e) = archives::set_key(&self.pool, id, None).await {
                    tracing::warn!("sandbox {id}: forgetting archive {key} failed: {e}");
                }
            }
            Err(e) => tracing::warn!("sandbox {id}: deleting restored archive failed: {e}"),
        }
    }

    /// Deletes the archive of a sandbox being destroyed (`destroying`), if it has one.
    pub(super) async fn delete_archive(&self, id: &str) -> Result<(), String> {
        let Some(key) = archives::key(&self.pool, id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        self.objects
            .delete(&Key::from(key.as_str()))
            .await
            .map_err(|e| e.to_string())
    }

    /// After a restart: settles a sandbox caught `archiving` or `restoring` (see the table in
    /// [`super`]). Never removes local files unless the archive is complete.
    pub(super) async fn reconcile_archive(&self, row: &SandboxRow) -> Result<(), sqlx::Error> {
        let id = &row.id;
        let key = archives::key(&self.pool, id).await?;
        let (new, reason) = match (row.state.as_str(), &key) {
            (state::ARCHIVING, Some(_)) | (state::RESTORING, Some(_)) => {
                // The archive is complete: local files (all, or a partial restore) can go.
                if let Err(e) = self.runtime.release_files(id).await {
                    tracing::warn!("reconcile: freeing the files of {id} failed: {e}");
                }
                (state::ARCHIVED, None)
            }
            (state::ARCHIVING, None) => {
                // The upload never completed: the local files are the only copy.
                if let Err(e) = self.objects.delete(&Objects::archive_key(id)).await {
                    tracing::warn!("reconcile: dropping a partial archive of {id} failed: {e}");
                }
                (state::STOPPED, None)
            }
            _ => (state::ERROR, Some(ARCHIVE_MISSING)),
        };
        let desired = if new == state::ERROR {
            state::STARTED
        } else {
            new
        };
        tracing::info!("reconcile: {id} {} → {new}", row.state);
        crate::store::sandboxes::set_state(&self.pool, id, new, desired, reason).await
    }

    /// Runs [`Manager::sweep_archives`] in the background (object storage may be slow or
    /// down; the server does not wait for it).
    pub fn spawn_sweep_archives(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.sweep_archives().await {
                tracing::warn!("sweeping archives failed: {e}");
            }
        });
    }

    /// Deletes archive objects nothing needs any more: those of deleted sandboxes, those the
    /// store does not name (an interrupted re-archive), and those of restored sandboxes whose
    /// cleanup a restart interrupted. Returns how many were deleted.
    pub async fn sweep_archives(&self) -> Result<usize, String> {
        let keys = self
            .objects
            .list(&Key::from("sandboxes"))
            .await
            .map_err(|e| e.to_string())?;
        let mut dropped = 0;
        for key in keys {
            let Some(id) = key.parts().nth(1).map(|p| p.as_ref().to_string()) else {
                continue;
            };
            let lock = self.lock_for(&id);
            let _g = lock.lock().await;
            let row = self.reload(&id).await.ok();
            let named = archives::key(&self.pool, &id)
                .await
                .map_err(|e| e.to_string())?;
            let keep = match &row {
                None => false,
                Some(_) if named.as_deref() != Some(key.as_ref()) => false,
                Some(r) if r.state == state::ARCHIVED => true,
                // Restored: make its files durable before their other copy goes.
                Some(_) => {
                    let dir = self.runtime.upper_dir(&id);
                    !matches!(
                        tokio::task::spawn_blocking(move || packer::sync_fs(&dir)).await,
                        Ok(Ok(()))
                    )
                }
            };
            if keep {
                continue;
            }
            self.objects.delete(&key).await.map_err(|e| e.to_string())?;
            if row.is_some() && named.is_some() {
                archives::set_key(&self.pool, &id, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if row.is_none() {
                self.forget_lock(&id);
            }
            tracing::info!("swept archive {key}");
            dropped += 1;
        }
        Ok(dropped)
    }
}
