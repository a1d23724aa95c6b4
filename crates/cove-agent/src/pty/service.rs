//! PTY sessions: spawn a shell on a pseudo-terminal, fan its output out to every attached
//! client, take input from any of them, resize, kill, report the exit code.
//!
//! ```text
//!   driver task:  read(master) ──► hub { history ring, exit } ──► broadcast ──► each client
//!                 reaper exit status (+200 ms to drain output) ──► Event::Exit
//!   attach():     under the hub lock: copy history + exit, subscribe  (nothing lost/duplicated)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cove_sys::process::{Creds, SpawnOptions, WaitStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, oneshot};

use super::types::PtySessionInfo;
use super::PtyError;
use crate::process::reaper::Reaper;

/// Output kept for clients that attach later.
const HISTORY_CAP: usize = 64 << 10;
/// Events buffered per client before it lags (and loses the oldest output).
const CHANNEL_CAP: usize = 1024;
/// How long to keep draining output once the shell itself has exited (background children
/// may keep the terminal open forever).
const EOF_GRACE: Duration = Duration::from_millis(200);

/// What attached clients receive.
#[derive(Debug, Clone)]
pub enum Event {
    Output(Bytes),
    Exit(i32),
}

/// How to start the terminal's program.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
    pub creds: Option<Creds>,
    /// Owner given to the terminal device (the sandbox user), when the agent is root.
    pub owner: Option<(u32, u32)>,
}

/// A new session's settings.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub id: String,
    pub cols: u16,
    pub rows: u16,
    pub cwd: PathBuf,
    pub envs: BTreeMap<String, String>,
    pub lazy_start: bool,
    pub spawn: SpawnSpec,
}

#[derive(Default)]
struct Hub {
    history: Vec<u8>,
    exit: Option<i32>,
}

/// A client's view at attach time: past output, the exit code if already known, live events.
pub struct Attach {
    pub history: Vec<u8>,
    pub exit: Option<i32>,
    pub rx: broadcast::Receiver<Event>,
}

/// The agent's side of a running terminal: a descriptor for ioctls and the input writer.
struct Master {
    ctl: OwnedFd,
    input: tokio::sync::Mutex<pipe::Sender>,
}

/// One terminal and its program.
pub struct PtySession {
    pub id: String,
    pub created_at: String,
    pub cwd: PathBuf,
    pub envs: BTreeMap<String, String>,
    pub lazy_start: bool,
    size: Mutex<(u16, u16)>,
    pending: Mutex<Option<SpawnSpec>>,
    master: Mutex<Option<Arc<Master>>>,
    pid: Mutex<Option<i32>>,
    hub: Mutex<Hub>,
    tx: broadcast::Sender<Event>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PtySession {
    fn new(spec: CreateSpec) -> Self {
        PtySession {
            id: spec.id,
            created_at: crate::error::now_rfc3339(),
            cwd: spec.cwd,
            envs: spec.envs,
            lazy_start: spec.lazy_start,
            size: Mutex::new((spec.cols, spec.rows)),
            pending: Mutex::new(Some(spec.spawn)),
            master: Mutex::new(None),
            pid: Mutex::new(None),
            hub: Mutex::new(Hub::default()),
            tx: broadcast::channel(CHANNEL_CAP).0,
        }
    }

    /// The wire view.
    pub fn info(&self) -> PtySessionInfo {
        let (cols, rows) = *lock(&self.size);
        PtySessionInfo {
            id: self.id.clone(),
            active: self.is_active(),
            cols,
            rows,
            created_at: self.created_at.clone(),
            cwd: self.cwd.display().to_string(),
            envs: self.envs.clone(),
            lazy_start: self.lazy_start,
        }
    }

    /// Started and not yet exited.
    pub fn is_active(&self) -> bool {
        lock(&self.pid).is_some() && lock(&self.hub).exit.is_none()
    }

    /// The exit code once the program has ended.
    pub fn exit_code(&self) -> Option<i32> {
        lock(&self.hub).exit
    }

    /// Subscribes a client (history and subscription taken atomically).
    pub fn attach(&self) -> Attach {
        let hub = lock(&self.hub);
        Attach {
            history: hub.history.clone(),
            exit: hub.exit,
            rx: self.tx.subscribe(),
        }
    }

    /// Starts the program unless it already runs (lazy sessions start on first attach).
    pub fn ensure_started(self: &Arc<Self>) -> Result<(), PtyError> {
        let Some(spec) = lock(&self.pending).take() else {
            return Ok(());
        };
        let (cols, rows) = *lock(&self.size);
        let pty = cove_sys::pty::open(cols, rows).map_err(PtyError::Io)?;
        if let Some((uid, gid)) = spec.owner {
            let _ = std::os::unix::fs::fchown(&pty.slave, Some(uid), Some(gid));
        }
        let mut cmd = Command::new(&spec.program);
        cmd.current_dir(&self.cwd)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(pty.slave.try_clone().map_err(PtyError::Io)?))
            .stdout(Stdio::from(pty.slave.try_clone().map_err(PtyError::Io)?))
            .stderr(Stdio::from(pty.slave));
        // setsid + TIOCSCTTY first; the reaper's spawn then applies oom_score_adj and creds.
        cove_sys::pty::controlling_terminal_on_exec(&mut cmd);
        let opts = SpawnOptions {
            creds: spec.creds.clone(),
            new_session: false,
            oom_score_adj: Some(crate::process::child_oom_score_adj()),
        };
        let spawned = Reaper::global()
            .spawn(cmd, &opts)
            .map_err(|source| PtyError::Spawn {
                program: spec.program.display().to_string(),
                source,
            })?;
        *lock(&self.pid) = Some(spawned.pid);
        // The tty is no FIFO, but tokio's pipe types only need a non-blocking pollable fd.
        cove_sys::pty::set_nonblocking(pty.master.as_fd()).map_err(PtyError::Io)?;
        let io = |e| PtyError::Io(e);
        let rx = pipe::Receiver::from_owned_fd_unchecked(pty.master.try_clone().map_err(io)?)
            .map_err(io)?;
        let tx = pipe::Sender::from_owned_fd_unchecked(pty.master.try_clone().map_err(io)?)
            .map_err(io)?;
        *lock(&self.master) = Some(Arc::new(Master {
            ctl: pty.master,
            input: tokio::sync::Mutex::new(tx),
        }));
        tokio::spawn(self.clone().drive(rx, spawned.exit));
        Ok(())
    }

    /// Pumps output until the program has exited and the terminal is drained.
    async fn drive(
        self: Arc<Self>,
        mut rx: pipe::Receiver,
        mut exit: oneshot::Receiver<WaitStatus>,
    ) {
        let mut buf = vec![0u8; 32 << 10];
        let (mut eof, mut status) = (false, None::<i32>);
        let grace = tokio::time::sleep(Duration::from_secs(86400 * 365));
        tokio::pin!(grace);
        while !(eof && status.is_some()) {
            tokio::select! {
                r = rx.read(&mut buf), if !eof => match r {
                    Ok(n) if n > 0 => self.publish(&buf[..n]),
                    // EIO: every slave descriptor is closed.
                    _ => eof = true,
                },
                s = &mut exit, if status.is_none() => {
                    status = Some(s.map(WaitStatus::code).unwrap_or(-1));
                    grace.as_mut().reset(tokio::time::Instant::now() + EOF_GRACE);
                },
                _ = &mut grace, if status.is_some() => break,
            }
        }
        let code = status.unwrap_or(-1);
        *lock(&self.master) = None;
        let mut hub = lock(&self.hub);
        hub.exit = Some(code);
        let _ = self.tx.send(Event::Exit(code));
    }

    fn publish(&self, data: &[u8]) {
        let mut hub = lock(&self.hub);
        hub.history.extend_from_slice(data);
        if hub.history.len() > 2 * HISTORY_CAP {
            let cut = hub.history.len() - HISTORY_CAP;
            hub.history.drain(..cut);
        }
        let _ = self.tx.send(Event::Output(Bytes::copy_from_slice(data)));
    }

    /// Types `data` into the terminal (ignored once the program has exited).
    pub async fn write_input(&self, data: &[u8]) -> io::Result<()> {
        let Some(master) = lock(&self.master).clone() else {
            return Ok(());
        };
        let mut tx = master.input.lock().await;
        tx.write_all(data).await
    }

    /// Sets the terminal size; the program gets SIGWINCH.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), PtyError> {
        if self.exit_code().is_some() {
            return Err(PtyError::Ended(self.id.clone()));
        }
        if let Some(master) = lock(&self.master).clone() {
            cove_sys::pty::set_winsize(master.ctl.as_fd(), cols, rows).map_err(PtyError::Io)?;
        }
        *lock(&self.size) = (cols, rows);
        Ok(())
    }

    /// SIGKILLs every process of the terminal's session (the shell and its jobs).
    pub fn kill(&self) {
        lock(&self.pending).take();
        let Some(pid) = *lock(&self.pid) else { return };
        if self.exit_code().is_some() {
            return;
        }
        for pgid in session_groups(pid) {
            let _ = cove_sys::process::kill_process_group(pgid, cove_sys::process::SIGKILL);
        }
    }
}

/// Process groups with a member in session `sid` (always including `sid` itself).
fn session_groups(sid: i32) -> Vec<i32> {
    let mut groups = vec![sid];
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(pgrp), Some(sess)) = (f.get(2), f.get(3)) else {
            continue;
        };
        if sess.parse::<i32>().ok() == Some(sid) {
            if let Ok(g) = pgrp.parse::<i32>() {
                if g > 1 && !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }
    groups
}

/// All PTY sessions of the agent.
#[derive(Default)]
pub struct PtyManager {
    sessions: Mutex<HashMap<String, Arc<PtySession>>>,
}

impl PtyManager {
    /// Registers a session (an exited one with the same id is replaced). Starts it unless
    /// `defer_start` or lazy; the caller then calls [`PtySession::ensure_started`].
    pub fn create(&self, spec: CreateSpec, defer_start: bool) -> Result<Arc<PtySession>, PtyError> {
        let lazy = spec.lazy_start;
        let sess = Arc::new(PtySession::new(spec));
        {
            let mut map = lock(&self.sessions);
            if let Some(old) = map.get(&sess.id) {
                if old.exit_code().is_none() {
                    return Err(PtyError::Exists(sess.id.clone()));
                }
            }
            map.insert(sess.id.clone(), sess.clone());
        }
        if !defer_start && !lazy {
            self.start(&sess)?;
        }
        Ok(sess)
    }

    /// Starts `sess`, unregistering it if that fails.
    pub fn start(&self, sess: &Arc<PtySession>) -> Result<(), PtyError> {
        sess.ensure_started().inspect_err(|_| {
            let mut map = lock(&self.sessions);
            if map.get(&sess.id).is_some_and(|s| Arc::ptr_eq(s, sess)) {
                map.remove(&sess.id);
            }
        })
    }

    pub fn get(&self, id: &str) -> Result<Arc<PtySession>, PtyError> {
        lock(&self.sessions)
            .get(id)
            .cloned()
            .ok_or_else(|| PtyError::NotFound(id.to_string()))
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<PtySessionInfo> {
        let mut v: Vec<PtySessionInfo> = lock(&self.sessions).values().map(|s| s.info()).collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Unregisters and kills a session; attached clients get its exit (137).
    pub fn remove(&self, id: &str) -> Result<(), PtyError> {
        let sess = lock(&self.sessions)
            .remove(id)
            .ok_or_else(|| PtyError::NotFound(id.to_string()))?;
        sess.kill();
        Ok(())
    }
}
