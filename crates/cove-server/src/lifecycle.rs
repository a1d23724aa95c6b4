//! Sandbox lifecycle: every transition is written to the store before the runtime acts on it.
//!
//! ```text
//!   POST /sandbox            start                stop                 delete
//!  ───────────────► creating ─────► started ──► stopping ──► stopped ──► destroying ──► (row removed)
//!                      │     ▲         │                        │  ▲          ▲
//!                      │     └─starting◄────────────────────────┘  │          │
//!                      ▼                                           │          │
//!                    error ───── start (user or reconciler) ───────┘──────────┘ delete
//!
//!   started | stopped ──snapshot──► snapshotting ──(copy done or failed)──► the state before
//!
//!   stopped ──archive──► archiving ──(object durable, then local files freed)──► archived
//!      ▲                     │                                                   │    │
//!      └─(upload failed: ────┘                                        delete ◄───┘    │ start
//!          files kept)                                                                │
//!   started ◄── starting ◄──(files unpacked)── restoring ◄───────────────────────────┘
//!                                                  └──(restore failed)──► archived
//! ```
//! A crash between "written" and "done" leaves a transitional state (`creating`, `starting`,
//! `stopping`, `destroying`, `snapshotting`, `archiving`, `restoring`);
//! [`Manager::reconcile_at_start`] finishes or rolls it back:
//!
//! | stored state | PID 1 alive | after a restart                                          |
//! |--------------|-------------|----------------------------------------------------------|
//! | `started`, `creating`, `starting` | yes | `started` (adopted: processes and files untouched) |
//! | `started`    | no          | `error` "sandbox process exited" (start or recover it)   |
//! | `creating`   | no          | `error` "server stopped before the sandbox booted"; the reconciler boots it |
//! | `starting`   | no          | `stopped` (the start is rolled back; start it again)      |
//! | `stopping`   | any         | `stopped` (every process killed, files kept)              |
//! | `snapshotting` | yes       | `started` (thawed if the crash left it frozen); the unfinished snapshot becomes `error` (`snapshot.rs`) |
//! | `snapshotting` | no        | `stopped`; the snapshot likewise becomes `error`         |
//! | `archiving`, upload incomplete | no | `stopped` (local files are the only copy: kept; partial object dropped) |
//! | `archiving`, upload complete   | no | `archived` (local files freed)                  |
//! | `restoring`  | no          | `archived` (the partial restore is wiped; start restores again) |
//! | `destroying` | any         | gone (files and archive removed, row deleted)             |
//!
//! "Upload complete" is the store's `archive_key`, written only once the object is durable:
//! local files are never removed before that (see `lifecycle/archive.rs`). Archive objects
//! nothing refers to any more are deleted by [`Manager::sweep_archives`] after a restart.
//!
//! Whatever ends in `stopped` or `error` has no process left. While the server runs, the
//! timers' tick ([`Manager::reap_exited`]) turns a `started` sandbox whose PID 1 died into
//! `error` "sandbox process exited"; `POST /sandbox/{id}/recover` boots an errored sandbox
//! whose files still exist ([`Manager::recover`]). A stop, destroy or boot that fails leaves
//! `error` with the desired state kept; the reconciler (`reconciler.rs`) retries it on later
//! ticks with backoff (not a sandbox whose PID 1 exited: that one waits for the user).
//!
//! `COVE_FAILPOINT=after:<state>` (see [`crate::failpoint`]) aborts the server right after
//! `creating`, `starting`, `stopping`, `destroying`, `snapshotting`, `archiving` or
//! `restoring` is written (and `after:frozen` once a snapshot froze a started sandbox,
//! `after:archive-uploaded` once an archive is complete), to test the table above.

mod archive;
pub mod auto_archive;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cove_runtime::{ImageRef, Runtime, SandboxSpec};
use cove_types::api::state;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch};

use crate::error::ApiError;
use crate::events::Event;
use crate::failpoint;
use crate::objects::Objects;
use crate::store::sandboxes::{self, SandboxRow};

/// `errorReason` of a sandbox whose PID 1 died while it was `started`.
pub const EXITED: &str = "sandbox process exited";
/// `errorReason` of a sandbox the server stopped (crashed) in the middle of creating.
pub const NOT_BOOTED: &str = "server stopped before the sandbox booted; start it to boot it";

/// Processes per sandbox (a fork flood stops here).
pub const PIDS_MAX: u32 = 4096;

/// Where the default image is.
#[derive(Debug, Clone)]
pub enum ImageState {
    Idle,
    Building,
    Ready(ImageRef),
    Failed(String),
}

/// Drives sandboxes through their lifecycle.
pub struct Manager {
    pub pool: SqlitePool,
    pub runtime: Arc<Runtime>,
    image: watch::Sender<ImageState>,
    pub events: broadcast::Sender<Event>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Boot sandboxes with `no_new_privs` (breaks `sudo`; see docs/threat-model.md).
    pub no_new_privs: bool,
    /// How long a "minute" of the timers lasts (shortened in tests).
    pub minute: std::time::Duration,
    /// Activity seen since the last flush: sandbox id → RFC 3339 time (see `timers.rs`).
    pub(crate) activity: Mutex<HashMap<String, String>>,
    /// Failed actions the reconciler retries (see `reconciler.rs`).
    pub(crate) retries: Mutex<crate::reconciler::Retries>,
    /// Where archived sandboxes' files go.
    pub objects: Arc<Objects>,
}

impl Manager {
    pub fn new(pool: SqlitePool, runtime: Arc<Runtime>, objects: Arc<Objects>) -> Self {
        let (image, _) = watch::channel(ImageState::Idle);
        let (events, _) = broadcast::channel(1024);
        Self {
            pool,
            runtime,
            image,
            events,
            locks: Mutex::new(HashMap::new()),
            no_new_privs: false,
            minute: std::time::Duration::from_secs(60),
            activity: Mutex::new(HashMap::new()),
            retries: Mutex::new(Default::default()),
            objects,
        }
    }

    /// Starts building the default image in the background unless it is built or building.
    pub fn kick_image_build(&self) {
        let mut start = false;
        self.image.send_if_modified(|s| {
            if matches!(s, ImageState::Idle | ImageState::Failed(_)) {
                *s = ImageState::Building;
                start = true;
            }
            start
        });
        if !start {
            return;
        }
        let runtime = self.runtime.clone();
        let tx = self.image.clone();
        tokio::spawn(async move {
            let progress = |line: &str| tracing::info!(target: "cove::image", "{line}");
            let next = match runtime.ensure_default_image(&progress).await {
                Ok(img) => {
                    tracing::info!("default image ready: {:?}", img.layers);
                    ImageState::Ready(img)
                }
                Err(e) => {
                    tracing::error!("default image build failed: {e}");
                    ImageState::Failed(e.to_string())
                }
            };
            tx.send_replace(next);
        });
    }

    /// Where the default image is now (no waiting).
    pub fn image_state(&self) -> ImageState {
        self.image.borrow().clone()
    }

    /// The default image, waiting for a build in progress (and retrying a failed one once).
    pub async fn image(&self) -> Result<ImageRef, String> {
        if let ImageState::Ready(img) = &*self.image.borrow() {
            return Ok(img.clone());
        }
        self.kick_image_build();
        let mut rx = self.image.subscribe();
        let s = rx
            .wait_for(|s| matches!(s, ImageState::Ready(_) | ImageState::Failed(_)))
            .await
            .map_err(|_| "image builder stopped".to_string())?;
        match &*s {
            ImageState::Ready(img) => Ok(img.clone()),
            ImageState::Failed(e) => Err(format!("default image build failed: {e}")),
            _ => Err("default image not ready".into()),
        }
    }

    pub(crate) fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.to_string()).or_default().clone()
    }

    fn forget_lock(&self, id: &str) {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(id);
    }

    /// Writes `new` (and the desired state) to the store and tells Socket.IO subscribers.
    pub(crate) async fn transition(
        &self,
        row: &mut SandboxRow,
        new: &str,
        desired: &str,
        reason: Option<&str>,
    ) -> Result<(), ApiError> {
        sandboxes::set_state(&self.pool, &row.id, new, desired, reason).await?;
        let old = std::mem::replace(&mut row.state, new.to_string());
        row.desired_state = desired.to_string();
        row.error_reason = reason.map(str::to_string);
        row.updated_at = crate::now();
        let _ = self.events.send(Event::state_updated(row, &old));
        Ok(())
    }

    fn spec(row: &SandboxRow, image: ImageRef, no_new_privs: bool, data: &Path) -> SandboxSpec {
        SandboxSpec {
            id: row.id.clone(),
            image,
            env: row.env_map(),
            user: row.os_user.clone(),
            cpu: row.cpu as u32,
            memory_mib: row.memory as u64 * 1024,
            disk_gib: row.disk as u32,
            pids_max: PIDS_MAX,
            no_new_privs,
            mounts: crate::api::volumes::bind_mounts(row, data),
        }
    }

    /// Boots `row` (state already `creating` or `starting`) and records the outcome.
    async fn boot(&self, row: &mut SandboxRow) -> Result<(), ApiError> {
        let image = if failpoint::fail_once("fail:boot") {
            Err("injected by failpoint".to_string())
        } else {
            self.image_for(row).await
        };
        let result = match image {
            Ok(image) => self
                .runtime
                .start(&Self::spec(
                    row,
                    image,
                    self.no_new_privs,
                    &self.runtime.cfg.data_dir,
                ))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => {
                self.transition(row, state::STARTED, state::STARTED, None)
                    .await
            }
            Err(reason) => {
                tracing::warn!("sandbox {} failed to start: {reason}", row.id);
                // Leave nothing half-running behind an error state.
                let _ = self.runtime.stop(&row.id, true).await;
                self.transition(row, state::ERROR, state::STARTED, Some(&reason))
                    .await
            }
        }
    }

    /// Inserts a new sandbox and boots it; the returned row is `started` or `error`.
    pub async fn create(self: &Arc<Self>, mut row: SandboxRow) -> Result<SandboxRow, ApiError> {
        sandboxes::insert(&self.pool, &row)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    ApiError::conflict(format!("Sandbox with name {} already exists", row.name))
                }
                _ => e.into(),
            })?;
        let _ = self.events.send(Event::created(&row));
        failpoint::hit("after:creating");
        let me = self.clone();
        // Runs to the end even if the client goes away mid-request.
        tokio::spawn(async move {
            let lock = me.lock_for(&row.id);
            let _g = lock.lock().await;
            me.boot(&mut row).await?;
            Ok(row)
        })
        .await
        .map_err(|e| ApiError::internal(format!("create task failed: {e}")))?
    }

    /// Runs `op` on sandbox `id` under its lock with the freshly reloaded row, in a task of its
    /// own so that it finishes even if the client goes away mid-request.
    async fn locked<F, Fut>(
        self: &Arc<Self>,
        id: String,
        what: &'static str,
        op: F,
    ) -> Result<SandboxRow, ApiError>
    where
        F: FnOnce(Arc<Self>, SandboxRow) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<SandboxRow, ApiError>> + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let lock = me.lock_for(&id);
            let _g = lock.lock().await;
            let row = me.reload(&id).await?;
            op(me.clone(), row).await
        })
        .await
        .map_err(|e| ApiError::internal(format!("{what} task failed: {e}")))?
    }

    /// Grows a stopped sandbox's disk to `gib` GiB, under its lock: a start (or an archive)
    /// cannot run while the disk is unmounted for the grow. 409 unless it is stopped.
    pub async fn grow_disk(self: &Arc<Self>, id: String, gib: u32) -> Result<SandboxRow, ApiError> {
        self.locked(id, "resize disk", move |me, row| async move {
            if row.state != state::STOPPED {
                return Err(ApiError::conflict(format!(
                    "Sandbox {} is {}; its disk can only be resized while it is stopped",
                    row.id, row.state
                )));
            }
            me.runtime.resize_disk(&row.id, gib).await?;
            Ok(row)
        })
        .await
    }

    /// Starts a stopped (or errored) sandbox, restoring an archived one first; a started one
    /// is returned as it is.
    pub async fn start(self: &Arc<Self>, id: String) -> Result<SandboxRow, ApiError> {
        self.locked(id, "start", |me, mut row| async move {
            let id = row.id.clone();
            match row.state.as_str() {
                state::STARTED => return Ok(row),
                state::ARCHIVED => {
                    me.restore_and_boot(&mut row).await?;
                    return Ok(row);
                }
                state::STOPPED => {}
                state::ERROR => {
                    // Whatever an error left running (a sandbox a failed thaw left frozen,
                    // say) goes first: a sandbox has one PID 1.
                    if let Err(e) = me.runtime.stop(&id, true).await {
                        tracing::warn!("start: clearing {id} failed: {e}");
                    }
                }
                s => {
                    return Err(ApiError::conflict(format!(
                        "Sandbox {id} cannot be started in state {s}"
                    )))
                }
            }
            me.transition(&mut row, state::STARTING, state::STARTED, None)
                .await?;
            failpoint::hit("after:starting");
            me.boot(&mut row).await?;
            Ok(row)
        })
        .await
    }

    /// Stops a started sandbox, keeping its files; an ephemeral one (auto-delete 0) is then
    /// destroyed.
    pub async fn stop(self: &Arc<Self>, id: String, force: bool) -> Result<SandboxRow, ApiError> {
        let row = self.stop_only(id, force).await?;
        if row.state == state::STOPPED && row.auto_delete_interval == 0 {
            return self.delete(row.id).await;
        }
        Ok(row)
    }

    async fn stop_only(self: &Arc<Self>, id: String, force: bool) -> Result<SandboxRow, ApiError> {
        self.locked(id, "stop", move |me, mut row| async move {
            let id = row.id.clone();
            match row.state.as_str() {
                state::STOPPED => return Ok(row),
                state::STARTED | state::ERROR => {}
                s => {
                    return Err(ApiError::conflict(format!(
                        "Sandbox {id} cannot be stopped in state {s}"
                    )))
                }
            }
            me.transition(&mut row, state::STOPPING, state::STOPPED, None)
                .await?;
            failpoint::hit("after:stopping");
            let result = if failpoint::fail_once("fail:stop") {
                Err(cove_runtime::RuntimeError::Other(
                    "injected by failpoint".into(),
                ))
            } else {
                me.runtime.stop(&id, force).await
            };
            if let Err(e) = result {
                let reason = format!("stop failed: {e}");
                me.transition(&mut row, state::ERROR, state::STOPPED, Some(&reason))
                    .await?;
                return Err(ApiError::internal(reason));
            }
            me.transition(&mut row, state::STOPPED, state::STOPPED, None)
                .await?;
            Ok(row)
        })
        .await
    }

    /// Destroys a sandbox and removes its row; returns the last row, state `destroyed`.
    pub async fn delete(self: &Arc<Self>, id: String) -> Result<SandboxRow, ApiError> {
        self.locked(id, "delete", |me, mut row| async move {
            let id = row.id.clone();
            me.transition(&mut row, state::DESTROYING, state::DESTROYED, None)
                .await?;
            failpoint::hit("after:destroying");
            let result = if failpoint::fail_once("fail:destroy") {
                Err("injected by failpoint".to_string())
            } else {
                match me.runtime.destroy(&id).await {
                    Ok(()) => me.delete_archive(&id).await,
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(e) = result {
                let reason = format!("destroy failed: {e}");
                me.transition(&mut row, state::ERROR, state::DESTROYED, Some(&reason))
                    .await?;
                return Err(ApiError::internal(reason));
            }
            sandboxes::delete(&me.pool, &id).await?;
            let old = std::mem::replace(&mut row.state, state::DESTROYED.to_string());
            let _ = me.events.send(Event::state_updated(&row, &old));
            me.forget_lock(&id);
            Ok(row)
        })
        .await
    }

    /// The sandbox's writable layer (its files); absent when it never booted.
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.runtime.upper_dir(id)
    }

    /// Boots an errored sandbox again, keeping its files; 400 unless it is in `error` with
    /// its files still there.
    pub async fn recover(self: &Arc<Self>, id: String) -> Result<SandboxRow, ApiError> {
        self.locked(id, "recover", |me, mut row| async move {
            let id = row.id.clone();
            if row.state != state::ERROR {
                return Err(ApiError::bad_request(format!(
                    "Sandbox {id} is not in error state (state is {}); only errored sandboxes can be recovered",
                    row.state
                )));
            }
            if !me.runtime.has_files(&id) {
                return Err(ApiError::bad_request(format!(
                    "Sandbox {id} cannot be recovered: its files are gone (start it to boot it afresh, or delete it)"
                )));
            }
            // Whatever is left of the previous boot goes first.
            if let Err(e) = me.runtime.stop(&id, true).await {
                tracing::warn!("recover: clearing {id} failed: {e}");
            }
            me.transition(&mut row, state::STARTING, state::STARTED, None)
                .await?;
            me.boot(&mut row).await?;
            Ok(row)
        })
        .await
    }

    /// Marks `started` sandboxes whose PID 1 died as `error` "sandbox process exited"
    /// (leftover processes killed, files kept); returns how many.
    pub async fn reap_exited(&self) -> Result<usize, sqlx::Error> {
        let mut reaped = 0;
        for row in sandboxes::in_states(&self.pool, &[state::STARTED]).await? {
            if self.runtime.running(&row.id).is_some() {
                continue;
            }
            let lock = self.lock_for(&row.id);
            let _g = lock.lock().await;
            // Re-read under the lock: a stop or delete may have moved it on meanwhile.
            let Ok(mut row) = self.reload(&row.id).await else {
                continue;
            };
            if row.state != state::STARTED || self.runtime.running(&row.id).is_some() {
                continue;
            }
            tracing::warn!("sandbox {}: process exited", row.id);
            if let Err(e) = self.runtime.stop(&row.id, true).await {
                tracing::warn!("reap: stopping {} failed: {e}", row.id);
            }
            if let Err(e) = self
                .transition(&mut row, state::ERROR, state::STARTED, Some(EXITED))
                .await
            {
                tracing::warn!("reap: marking {} as error failed: {e}", row.id);
                continue;
            }
            reaped += 1;
        }
        Ok(reaped)
    }

    pub(crate) async fn reload(&self, id: &str) -> Result<SandboxRow, ApiError> {
        let row: Option<SandboxRow> = sqlx::query_as("SELECT * FROM sandboxes WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| ApiError::not_found(format!("Sandbox {id} not found")))
    }

    /// After a restart: adopts sandboxes still running and settles those caught mid-transition.
    pub async fn reconcile_at_start(&self) -> Result<(), sqlx::Error> {
        let rows = sandboxes::in_states(
            &self.pool,
            &[
                state::STARTED,
                state::CREATING,
                state::STARTING,
                state::STOPPING,
                state::DESTROYING,
                state::SNAPSHOTTING,
                state::ARCHIVING,
                state::RESTORING,
            ],
        )
        .await?;
        for row in rows {
            if row.state == state::SNAPSHOTTING {
                // A crash may have left it frozen mid-copy.
                if let Err(e) = self.runtime.thaw(&row.id).await {
                    tracing::warn!("reconcile: thawing {} failed: {e}", row.id);
                }
            }
            let running = self.runtime.running(&row.id).is_some();
            let settle = |s: &'static str| sandboxes::set_state(&self.pool, &row.id, s, s, None);
            match row.state.as_str() {
                state::STARTED | state::CREATING | state::STARTING | state::SNAPSHOTTING
                    if running =>
                {
                    settle(state::STARTED).await?
                }
                state::STARTED
                | state::CREATING
                | state::STARTING
                | state::STOPPING
                | state::SNAPSHOTTING => {
                    if let Err(e) = self.runtime.stop(&row.id, true).await {
                        tracing::warn!("reconcile: stopping {} failed: {e}", row.id);
                    }
                    let (new, reason) = match row.state.as_str() {
                        state::STARTED => (state::ERROR, Some(EXITED)),
                        state::CREATING => (state::ERROR, Some(NOT_BOOTED)),
                        _ => (state::STOPPED, None),
                    };
                    let desired = if new == state::ERROR {
                        state::STARTED
                    } else {
                        state::STOPPED
                    };
                    tracing::info!("reconcile: {} {} → {new}", row.id, row.state);
                    sandboxes::set_state(&self.pool, &row.id, new, desired, reason).await?
                }
                state::DESTROYING => {
                    let destroyed = match self.runtime.destroy(&row.id).await {
                        Ok(()) => self.delete_archive(&row.id).await,
                        Err(e) => Err(e.to_string()),
                    };
                    match destroyed {
                        Ok(()) => sandboxes::delete(&self.pool, &row.id).await?,
                        Err(e) => tracing::warn!("reconcile: destroying {} failed: {e}", row.id),
                    }
                }
                state::ARCHIVING | state::RESTORING => self.reconcile_archive(&row).await?,
                _ => {}
            }
        }
        self.reconcile_snapshots().await
    }
}
