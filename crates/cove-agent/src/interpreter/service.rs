//! Interpreter contexts: one long-lived `python3` driver process per context, run serialized.
//!
//! ```text
//!   run:  lock(context) ── (re)start driver if needed ── write {"type":"exec"} ──
//!         forward stdout/stderr/error events ── {"type":"done"} → Completed
//!   timeout / client gone: {"type":"interrupt"} (SIGINT → KeyboardInterrupt in the cell);
//!         no "done" within INTERRUPT_GRACE → kill the process group, restart on next use
//! ```
//! The lock is a FIFO `tokio::sync::Mutex`, so executions in one context are serialized in
//! arrival order. Dropping a [`Worker`] kills its process group; the reaper collects it.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use cove_sys::process::{Creds, SpawnOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use super::types::{ContextInfo, CreateContextRequest, DriverCommand, DriverEvent, WireMessage};
use crate::error::ApiError;
use crate::process::reaper::Reaper;
use crate::state::SharedState;

/// The driver script, run with `python3 -u -c`.
pub const DRIVER: &str = include_str!("driver.py");
/// Id of the lazily created shared context (never listed, cannot be deleted).
pub const DEFAULT_ID: &str = "default";
/// Timeout when the request has none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an interrupted cell may take to unwind before the context is killed.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// Errors of the interpreter.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("context not found: {0}")]
    NotFound(String),
    #[error("the default context cannot be deleted")]
    DefaultUndeletable,
    #[error("unsupported language: {0} (only python is supported)")]
    Language(String),
    #[error("working directory {0} does not exist or is not a directory")]
    BadCwd(String),
    #[error("python3 is not installed in the sandbox (not found in PATH)")]
    NoPython,
    #[error("failed to start python3: {0}")]
    Spawn(std::io::Error),
    #[error("context {0} was deleted")]
    Deleted(String),
    #[error("interpreter process exited unexpectedly; the context restarts on next use")]
    Died,
}

impl From<InterpError> for ApiError {
    fn from(e: InterpError) -> Self {
        let (status, code) = match &e {
            InterpError::NotFound(_) | InterpError::Deleted(_) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            InterpError::DefaultUndeletable
            | InterpError::Language(_)
            | InterpError::BadCwd(_)
            | InterpError::NoPython => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            InterpError::Spawn(_) | InterpError::Died => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// What the run task reports to the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Msg(WireMessage),
    Completed,
    Timeout,
    Failed(String),
}

/// How a context's driver is started.
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    env: Vec<(String, String)>,
    creds: Option<Creds>,
}

/// A running driver process.
struct Worker {
    pid: i32,
    cmd: pipe::Sender,
    events: Lines<BufReader<pipe::Receiver>>,
    exited: watch::Receiver<bool>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = cove_sys::process::kill_process_group(self.pid, cove_sys::process::SIGKILL);
    }
}

impl Worker {
    fn start(ctx: &Context) -> Result<Worker, InterpError> {
        let io = InterpError::Spawn;
        let (ev_r, ev_w) = std::io::pipe().map_err(io)?;
        let ev_w2 = ev_w.try_clone().map_err(io)?;
        let (cmd_r, cmd_w) = std::io::pipe().map_err(io)?;
        let mut cmd = Command::new(&ctx.launch.program);
        cmd.args(["-u", "-c", DRIVER])
            .current_dir(&ctx.cwd)
            .env_clear()
            .envs(ctx.launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(cmd_r)
            .stdout(ev_w)
            .stderr(ev_w2);
        let opts = SpawnOptions {
            creds: ctx.launch.creds.clone(),
            new_session: true,
            oom_score_adj: Some(crate::process::child_oom_score_adj()),
        };
        let spawned = Reaper::global().spawn(cmd, &opts).map_err(io)?;
        let pid = spawned.pid;
        ctx.pid.store(pid, Ordering::SeqCst);
        let (tx, exited) = watch::channel(false);
        let exit = spawned.exit;
        tokio::spawn(async move {
            let _ = exit.await;
            let _ = tx.send(true);
        });
        let cmd = pipe::Sender::from_owned_fd(OwnedFd::from(cmd_w)).map_err(io)?;
        let events = pipe::Receiver::from_owned_fd(OwnedFd::from(ev_r)).map_err(io)?;
        Ok(Worker {
            pid,
            cmd,
            events: BufReader::new(events).lines(),
            exited,
        })
    }

    fn alive(&self) -> bool {
        !*self.exited.borrow()
    }

    async fn send(&mut self, c: &DriverCommand<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(c).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.cmd.write_all(&line).await
    }

    /// The next event; `None` when the driver is gone. Non-JSON lines are logged and skipped.
    async fn next_event(&mut self) -> Option<DriverEvent> {
        loop {
            match self.events.next_line().await {
                Ok(Some(l)) => match serde_json::from_str(&l) {
                    Ok(ev) => return Some(ev),
                    Err(_) => tracing::debug!("interpreter driver: {l}"),
                },
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Interrupts cell `id` and waits for it to finish; false if it did not within the grace.
    async fn interrupt(&mut self, id: u64) -> bool {
        if self.send(&DriverCommand::Interrupt { id }).await.is_err() {
            return false;
        }
        let wait = async {
            while let Some(ev) = self.next_event().await {
                if ev == (DriverEvent::Done { id }) {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(INTERRUPT_GRACE, wait)
            .await
            .unwrap_or(false)
    }
}

/// One interpreter context.
pub struct Context {
    pub id: String,
    pub cwd: PathBuf,
    pub created_at: String,
    launch: Launch,
    worker: tokio::sync::Mutex<Option<Worker>>,
    next_id: std::sync::atomic::AtomicU64,
    pid: AtomicI32,
    deleted: AtomicBool,
}

impl Context {
    pub fn info(&self) -> ContextInfo {
        let active = !self.deleted.load(Ordering::SeqCst)
            && self
                .worker
                .try_lock()
                .map(|w| w.as_ref().is_some_and(Worker::alive))
                .unwrap_or(true);
        ContextInfo {
            id: self.id.clone(),
            cwd: self.cwd.display().to_string(),
            created_at: self.created_at.clone(),
            active,
            language: "python".into(),
        }
    }

    /// Starts the driver now (used on create, so errors surface in the response).
    async fn ensure_started(&self) -> Result<(), InterpError> {
        let mut slot = self.worker.lock().await;
        if !slot.as_ref().is_some_and(Worker::alive) {
            *slot = None;
            *slot = Some(Worker::start(self)?);
        }
        Ok(())
    }

    /// Runs `code`, reporting output and the outcome on `tx`. Meant to be spawned: it keeps
    /// the context locked until the cell has finished (or the driver was killed), even after
    /// the client went away or timed out.
    pub async fn run(
        self: Arc<Self>,
        code: String,
        envs: BTreeMap<String, String>,
        timeout: Option<Duration>,
        tx: mpsc::UnboundedSender<Outcome>,
    ) {
        let mut slot = self.worker.lock().await;
        let fail = |e: InterpError| {
            let _ = tx.send(Outcome::Failed(e.to_string()));
        };
        if self.deleted.load(Ordering::SeqCst) {
            return fail(InterpError::Deleted(self.id.clone()));
        }
        if !slot.as_ref().is_some_and(Worker::alive) {
            *slot = None;
            match Worker::start(&self) {
                Ok(w) => *slot = Some(w),
                Err(e) => return fail(e),
            }
        }
        let Some(w) = slot.as_mut() else { return };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let exec = DriverCommand::Exec {
            id,
            code: &code,
            envs: &envs,
        };
        if w.send(&exec).await.is_err() {
            *slot = None;
            return fail(self.died());
        }
        let far = Duration::from_secs(100 * 365 * 86400);
        let deadline = tokio::time::sleep(timeout.unwrap_or(far));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = w.next_event() => match ev {
                    Some(DriverEvent::Done { id: d }) if d == id => {
                        let _ = tx.send(Outcome::Completed);
                        return;
                    }
                    Some(ev) => {
                        if let Some(m) = ev.to_wire() {
                            if tx.send(Outcome::Msg(m)).is_err() {
                                break;
                            }
                        }
                    }
                    None => {
                        *slot = None;
                        return fail(self.died());
                    }
                },
                _ = &mut deadline => {
                    let _ = tx.send(Outcome::Timeout);
                    break;
                }
                _ = tx.closed() => break,
            }
        }
        if !w.interrupt(id).await {
            tracing::info!(
                "interpreter context {}: cell did not stop after interrupt; restarting",
                self.id
            );
            *slot = None;
        }
    }

    fn died(&self) -> InterpError {
        if self.deleted.load(Ordering::SeqCst) {
            InterpError::Deleted(self.id.clone())
        } else {
            InterpError::Died
        }
    }

    /// Marks the context deleted and kills its driver (even while a cell runs).
    fn kill(&self) {
        self.deleted.store(true, Ordering::SeqCst);
        match self.worker.try_lock() {
            Ok(mut slot) => *slot = None,
            Err(_) => {
                let pid = self.pid.load(Ordering::SeqCst);
                if pid > 1 {
                    let _ = cove_sys::process::kill_process_group(pid, cove_sys::process::SIGKILL);
                }
            }
        }
    }
}

/// All contexts of this agent (the default one included, under [`DEFAULT_ID`]).
#[derive(Default)]
pub struct Registry {
    contexts: Mutex<HashMap<String, Arc<Context>>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let map = self.contexts.get_mut().unwrap_or_else(|e| e.into_inner());
        for ctx in map.values() {
            ctx.kill();
        }
    }
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Context>>> {
        self.contexts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_context(st: &SharedState, id: String, cwd: PathBuf) -> Result<Context, InterpError> {
        if !cwd.is_dir() {
            return Err(InterpError::BadCwd(cwd.display().to_string()));
        }
        let ident = st
            .identity(None)
            .map_err(|e| InterpError::Spawn(std::io::Error::other(e.message)))?;
        let env = crate::process::build_env(st, &ident, None);
        let program =
            crate::process::service::which("python3", &env).ok_or(InterpError::NoPython)?;
        Ok(Context {
            id,
            cwd,
            created_at: crate::error::now_rfc3339(),
            launch: Launch {
                program,
                env,
                creds: ident.creds,
            },
            worker: tokio::sync::Mutex::new(None),
            next_id: Default::default(),
            pid: AtomicI32::new(0),
            deleted: AtomicBool::new(false),
        })
    }

    /// Creates a context and starts its interpreter.
    pub async fn create(
        &self,
        st: &SharedState,
        req: CreateContextRequest,
    ) -> Result<ContextInfo, InterpError> {
        if let Some(lang) = req.language.as_deref().filter(|l| !l.is_empty()) {
            if !matches!(lang.to_ascii_lowercase().as_str(), "python" | "python3") {
                return Err(InterpError::Language(lang.to_string()));
            }
        }
        let cwd = match req.cwd.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => st.resolve(c),
            None => st.work_dir.clone(),
        };
        let ctx = Arc::new(Self::new_context(st, crate::fs::random_token(), cwd)?);
        ctx.ensure_started().await?;
        self.map().insert(ctx.id.clone(), ctx.clone());
        Ok(ctx.info())
    }

    /// The context `id`, or the shared default context (created lazily) for `None`/`default`.
    pub fn get(&self, st: &SharedState, id: Option<&str>) -> Result<Arc<Context>, InterpError> {
        let id = id.filter(|i| !i.is_empty()).unwrap_or(DEFAULT_ID);
        let mut map = self.map();
        if let Some(c) = map.get(id) {
            return Ok(c.clone());
        }
        if id != DEFAULT_ID {
            return Err(InterpError::NotFound(id.to_string()));
        }
        let ctx = Arc::new(Self::new_context(
            st,
            DEFAULT_ID.to_string(),
            st.work_dir.clone(),
        )?);
        map.insert(DEFAULT_ID.to_string(), ctx.clone());
        Ok(ctx)
    }

    /// User-created contexts, oldest first.
    pub fn list(&self) -> Vec<ContextInfo> {
        let mut v: Vec<ContextInfo> = self
            .map()
            .values()
            .filter(|c| c.id != DEFAULT_ID)
            .map(|c| c.info())
            .collect();
        v.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        v
    }

    /// Deletes a user-created context, killing its interpreter.
    pub fn delete(&self, id: &str) -> Result<(), InterpError> {
        if id == DEFAULT_ID {
            return Err(InterpError::DefaultUndeletable);
        }
        let ctx = self
            .map()
            .remove(id)
            .ok_or_else(|| InterpError::NotFound(id.to_string()))?;
        ctx.kill();
        Ok(())
    }
}
