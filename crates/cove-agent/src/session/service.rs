//! Sessions: one long-lived shell per session, fed commands on its stdin.
//!
//! ```text
//!   agent ──stdin pipe──▶ shell (own process group, sandbox user, cwd/env persist)
//!   per command dir D:  cmd (text), in/out/err (FIFOs the agent holds open)
//!   line fed:  { . D/cmd <D/in; } >D/out 2>D/err; r=$?;
//!              printf SENTINEL >>D/out; printf SENTINEL >>D/err; printf 'ID r\n'   (→ control pipe)
//! ```
//! A command is finished once its exit code came over the control pipe (shell stdout) and the
//! sentinel was read on both output FIFOs (so all its foreground output is in the log).
//! Background children keep the FIFOs open; their later output is still appended.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cove_sys::process::SpawnOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::log::{CmdLog, SentinelScan, Stream};
use super::types::{CommandInfo, SessionInfo};
use super::SessionError;
use crate::process::reaper::Reaper;
use crate::state::SharedState;

/// After the shell died, how long to wait for output FIFOs to reach EOF.
const EOF_GRACE: Duration = Duration::from_millis(200);
/// Fed to every session shell first.
const PRELUDE: &str = "__cove_restore_rc() { return \"$1\"; }\n";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All sessions of one agent.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    base: PathBuf,
}

/// One session: its shell and its commands.
pub struct Session {
    pub id: String,
    pgid: i32,
    dir: PathBuf,
    stdin: tokio::sync::Mutex<pipe::Sender>,
    inner: Mutex<SessionInner>,
}

#[derive(Default)]
struct SessionInner {
    commands: Vec<Arc<Cmd>>,
    /// Exit code of the shell once it ended.
    ended: Option<i32>,
}

/// One command of a session.
pub struct Cmd {
    pub id: String,
    pub command: String,
    dir: PathBuf,
    suppress_echo: bool,
    state: Mutex<CmdState>,
    changed: watch::Sender<u64>,
    input: tokio::sync::Mutex<Option<pipe::Sender>>,
}

#[derive(Default)]
struct CmdState {
    log: CmdLog,
    exit_code: Option<i32>,
    synced: [bool; 2],
    /// Our own write ends of out/err, held until the sentinel so readers never see early EOF.
    dummies: [Option<pipe::Sender>; 2],
    finished: bool,
}

/// A snapshot for followers.
pub struct LogView {
    pub bytes: Vec<u8>,
    pub finished: bool,
}

impl Cmd {
    pub fn info(&self) -> CommandInfo {
        let st = lock(&self.state);
        CommandInfo {
            id: self.id.clone(),
            command: self.command.clone(),
            exit_code: st.finished.then_some(st.exit_code).flatten(),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Framed log bytes from `offset` and whether the command has finished.
    pub fn view(&self, offset: usize) -> LogView {
        let st = lock(&self.state);
        LogView {
            bytes: st.log.framed_from(offset).to_vec(),
            finished: st.finished,
        }
    }

    pub fn logs(&self) -> super::types::CommandLogs {
        lock(&self.state).log.logs()
    }

    pub fn exit_code(&self) -> Option<i32> {
        let st = lock(&self.state);
        st.finished.then_some(st.exit_code).flatten()
    }

    /// Waits until the command has finished.
    pub async fn wait(&self) {
        let mut rx = self.subscribe();
        loop {
            if lock(&self.state).finished {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn append(&self, s: Stream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        lock(&self.state).log.push(s, data);
        self.bump();
    }

    /// Updates state under the lock, then finishes the command if everything is in.
    fn update(&self, f: impl FnOnce(&mut CmdState)) {
        let done_now = {
            let mut st = lock(&self.state);
            f(&mut st);
            if !st.finished && st.exit_code.is_some() && st.synced.iter().all(|s| *s) {
                st.finished = true;
                st.dummies = [None, None];
                true
            } else {
                false
            }
        };
        if done_now {
            // If an input write is in flight, `send_input` drops the sender when it is done.
            if let Ok(mut input) = self.input.try_lock() {
                *input = None;
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        self.bump();
    }

    /// Writes `data` to the command's stdin (and echoes it to the log unless suppressed).
    pub async fn send_input(&self, data: &[u8]) -> Result<(), SessionError> {
        if lock(&self.state).finished {
            return Err(SessionError::Completed(self.id.clone()));
        }
        let mut input = self.input.lock().await;
        let tx = input
            .as_mut()
            .ok_or_else(|| SessionError::Completed(self.id.clone()))?;
        // Echo before writing: the command may answer before this task runs again, and its
        // output must follow the input it answers in the log.
        if !self.suppress_echo {
            self.append(Stream::Stdout, data);
        }
        tx.write_all(data).await.map_err(SessionError::Io)?;
        drop(input);
        if lock(&self.state).finished {
            *self.input.lock().await = None;
        }
        Ok(())
    }
}

fn shell_quote(p: &Path) -> String {
    quote(&p.display().to_string())
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Session {
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            commands: lock(&self.inner)
                .commands
                .iter()
                .map(|c| c.info())
                .collect(),
        }
    }

    /// The session's first command (in the entrypoint session, the entrypoint).
    pub fn first_command(&self) -> Option<Arc<Cmd>> {
        lock(&self.inner).commands.first().cloned()
    }

    pub fn command(&self, id: &str) -> Option<Arc<Cmd>> {
        lock(&self.inner)
            .commands
            .iter()
            .find(|c| c.id == id)
            .cloned()
    }

    /// Queues `command` in the shell; returns at once.
    pub async fn exec(
        self: &Arc<Self>,
        st: &SharedState,
        command: String,
        suppress_echo: bool,
    ) -> Result<Arc<Cmd>, SessionError> {
        if lock(&self.inner).ended.is_some() {
            return Err(SessionError::Ended(self.id.clone()));
        }
        let cmd_id = crate::fs::random_token();
        let dir = self.dir.join(&cmd_id);
        let io = SessionError::Io;
        std::fs::create_dir(&dir).map_err(io)?;
        st.chown_default(&dir);
        let (cmd_file, fin, fout, ferr) = (
            dir.join("cmd"),
            dir.join("in"),
            dir.join("out"),
            dir.join("err"),
        );
        std::fs::write(&cmd_file, command.as_bytes()).map_err(io)?;
        st.chown_default(&cmd_file);
        for f in [&fin, &fout, &ferr] {
            cove_sys::fifo::mkfifo(f, 0o600).map_err(io)?;
            st.chown_default(f);
        }
        let rx_out = pipe::OpenOptions::new().open_receiver(&fout).map_err(io)?;
        let rx_err = pipe::OpenOptions::new().open_receiver(&ferr).map_err(io)?;
        let d_out = pipe::OpenOptions::new().open_sender(&fout).map_err(io)?;
        let d_err = pipe::OpenOptions::new().open_sender(&ferr).map_err(io)?;
        let input = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&fin)
            .map_err(io)?;
        let sentinel = format!("__COVE_END_{}__", crate::fs::random_token());
        let cmd = Arc::new(Cmd {
            id: cmd_id.clone(),
            command,
            dir: dir.clone(),
            suppress_echo,
            state: Mutex::new(CmdState {
                dummies: [Some(d_out), Some(d_err)],
                ..CmdState::default()
            }),
            changed: watch::channel(0).0,
            input: tokio::sync::Mutex::new(Some(input)),
        });
        tokio::spawn(read_stream(
            cmd.clone(),
            rx_out,
            Stream::Stdout,
            sentinel.clone(),
        ));
        tokio::spawn(read_stream(
            cmd.clone(),
            rx_err,
            Stream::Stderr,
            sentinel.clone(),
        ));
        let line = format!(
            "{{ . {c} <{i}; }} >{o} 2>{e}; __cove_rc=$?; printf '%s' '{s}' >>{o}; printf '%s' '{s}' >>{e}; printf '%s %s\\n' '{id}' \"$__cove_rc\"; __cove_restore_rc \"$__cove_rc\"\n",
            c = shell_quote(&cmd_file),
            i = shell_quote(&fin),
            o = shell_quote(&fout),
            e = shell_quote(&ferr),
            s = sentinel,
            id = cmd_id,
        );
        {
            let mut inner = lock(&self.inner);
            if inner.ended.is_some() {
                return Err(SessionError::Ended(self.id.clone()));
            }
            inner.commands.push(cmd.clone());
        }
        let mut stdin = self.stdin.lock().await;
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            drop(stdin);
            cmd.update(|s| {
                s.exit_code.get_or_insert(-1);
                s.synced = [true, true];
            });
            return Err(SessionError::Io(e));
        }
        Ok(cmd)
    }

    /// Kills the shell's process group (its background children included).
    pub fn kill(&self) {
        let _ = cove_sys::process::kill_process_group(self.pgid, cove_sys::process::SIGKILL);
    }

    fn shell_exited(&self, code: i32) {
        let cmds = {
            let mut inner = lock(&self.inner);
            inner.ended = Some(code);
            inner.commands.clone()
        };
        for c in cmds {
            c.update(|s| {
                s.exit_code.get_or_insert(code);
                s.dummies = [None, None];
            });
            let c2 = c.clone();
            tokio::spawn(async move {
                tokio::time::sleep(EOF_GRACE).await;
                c2.update(|s| s.synced = [true, true]);
            });
        }
        let dir = self.dir.clone();
        tokio::spawn(async move {
            tokio::time::sleep(EOF_GRACE * 2).await;
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}

/// Reads one output FIFO of a command until EOF, splitting at the end sentinel.
async fn read_stream(cmd: Arc<Cmd>, mut rx: pipe::Receiver, s: Stream, sentinel: String) {
    let idx = s as usize;
    let mut scan = SentinelScan::new(sentinel);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let fed = scan.feed(&buf[..n]);
                cmd.append(s, &fed.before);
                if fed.found {
                    cmd.update(|st| {
                        st.synced[idx] = true;
                        st.dummies[idx] = None;
                    });
                    cmd.append(s, &fed.after);
                }
            }
        }
    }
    cmd.append(s, &scan.finish());
    cmd.update(|st| st.synced[idx] = true);
}

/// Reads `<cmdId> <exit code>` lines from the shell's stdout.
async fn read_control(sess: Arc<Session>, rx: pipe::Receiver) {
    let mut lines = BufReader::new(rx).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(code)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(code) = code.parse::<i32>() else {
            continue;
        };
        if let Some(c) = sess.command(id) {
            c.update(|s| s.exit_code = Some(code));
        }
    }
}

impl Sessions {
    pub fn new() -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            base: std::env::temp_dir()
                .join(format!(".cove-sessions-{}", crate::fs::random_token())),
        }
    }

    pub fn get(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        lock(&self.map)
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.to_string()))
    }

    /// The sessions users made (not the entrypoint's).
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = lock(&self.map)
            .values()
            .filter(|s| s.id != super::ENTRYPOINT)
            .map(|s| s.info())
            .collect();
        v.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        v
    }

    /// Starts the shell of a new session `id` (not `entrypoint`: the agent's own).
    pub fn create(&self, st: &SharedState, id: &str) -> Result<(), SessionError> {
        if id == super::ENTRYPOINT {
            return Err(SessionError::Exists(id.to_string()));
        }
        self.create_any(st, id)
    }

    /// Starts the `entrypoint` session and runs `argv` (an image's entrypoint) in it, as the
    /// sandbox's default user; its output is the entrypoint's logs.
    pub async fn start_entrypoint(
        &self,
        st: &SharedState,
        argv: &[String],
    ) -> Result<Arc<Cmd>, SessionError> {
        self.create_any(st, super::ENTRYPOINT)?;
        let line = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        self.get(super::ENTRYPOINT)?.exec(st, line, false).await
    }

    fn create_any(&self, st: &SharedState, id: &str) -> Result<(), SessionError> {
        let mut map = lock(&self.map);
        if map.contains_key(id) {
            return Err(SessionError::Exists(id.to_string()));
        }
        let io = SessionError::Io;
        if !self.base.exists() {
            std::fs::create_dir_all(&self.base).map_err(io)?;
        }
        let dir = self.base.join(crate::fs::random_token());
        std::fs::create_dir(&dir).map_err(io)?;
        st.chown_default(&dir);
        let ident = st.identity(None).map_err(SessionError::Api)?;
        let env = crate::process::build_env(st, &ident, None);
        let (in_r, in_w) = std::io::pipe().map_err(io)?;
        let (out_r, out_w) = std::io::pipe().map_err(io)?;
        let mut cmd = Command::new(crate::process::shell());
        cmd.current_dir(&st.work_dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(in_r)
            .stdout(out_w)
            .stderr(Stdio::null());
        let opts = SpawnOptions {
            creds: ident.creds.clone(),
            new_session: true,
            oom_score_adj: Some(crate::process::child_oom_score_adj()),
        };
        let spawned = Reaper::global().spawn(cmd, &opts).map_err(io)?;
        // Lets `$?` in a command see the exit code of the previous one.
        let mut in_w = in_w;
        std::io::Write::write_all(&mut in_w, PRELUDE.as_bytes()).map_err(io)?;
        let stdin = pipe::Sender::from_owned_fd(in_w.into()).map_err(io)?;
        let control = pipe::Receiver::from_owned_fd(out_r.into()).map_err(io)?;
        let sess = Arc::new(Session {
            id: id.to_string(),
            pgid: spawned.pid,
            dir,
            stdin: tokio::sync::Mutex::new(stdin),
            inner: Mutex::new(SessionInner::default()),
        });
        map.insert(id.to_string(), sess.clone());
        drop(map);
        tokio::spawn(read_control(sess.clone(), control));
        let exit = spawned.exit;
        tokio::spawn(async move {
            let code = exit.await.map(|s| s.code()).unwrap_or(-1);
            sess.shell_exited(code);
        });
        Ok(())
    }

    /// Removes session `id` and kills its processes.
    pub fn delete(&self, id: &str) -> Result<(), SessionError> {
        let sess = lock(&self.map)
            .remove(id)
            .ok_or_else(|| SessionError::NotFound(id.to_string()))?;
        sess.kill();
        Ok(())
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        for s in lock(&self.map).values() {
            s.kill();
        }
    }
}
