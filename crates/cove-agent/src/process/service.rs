//! Runs one command to completion: credentials, environment, combined output, timeout.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cove_sys::process::{Creds, SpawnOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use super::reaper::Reaper;
use super::ProcessError;

/// Output beyond this is drained and dropped.
const OUTPUT_CAP: usize = 64 << 20;
/// How long to wait for the output pipe to close once the command itself has exited
/// (background children may keep it open forever).
const EOF_GRACE: Duration = Duration::from_millis(200);

/// The PATH every command starts with (before the sandbox env and the request's envs).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub creds: Option<Creds>,
}

/// A finished command.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit_code: i32,
    pub output: Vec<u8>,
}

/// Kills the command's process group if the request is dropped (client went away).
struct KillGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = cove_sys::process::kill_process_group(self.pgid, cove_sys::process::SIGKILL);
        }
    }
}

/// Finds `program` in the `PATH` of `env` (absolute or slash-containing names are kept).
pub fn which(program: &str, env: &[(String, String)]) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| program.into());
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Runs `spec` as a new session, returning its exit code and combined stdout+stderr.
pub async fn run(spec: RunSpec) -> Result<RunOutput, ProcessError> {
    if !spec.cwd.is_dir() {
        return Err(ProcessError::BadCwd(spec.cwd.display().to_string()));
    }
    let (reader, writer) = std::io::pipe().map_err(ProcessError::Io)?;
    let writer2 = writer.try_clone().map_err(ProcessError::Io)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.stdout(writer).stderr(writer2);
    let stdin_writer = match &spec.stdin {
        Some(_) => {
            let (r, w) = std::io::pipe().map_err(ProcessError::Io)?;
            cmd.stdin(r);
            Some(w)
        }
        None => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    let opts = SpawnOptions {
        creds: spec.creds.clone(),
        new_session: true,
        oom_score_adj: Some(crate::process::child_oom_score_adj()),
    };
    let spawned = Reaper::global()
        .spawn(cmd, &opts)
        .map_err(|source| ProcessError::Spawn {
            program: spec.program.display().to_string(),
            source,
        })?;
    let mut guard = KillGuard {
        pgid: spawned.pid,
        armed: true,
    };
    if let (Some(w), Some(data)) = (stdin_writer, spec.stdin) {
        let mut tx = pipe::Sender::from_owned_fd(OwnedFd::from(w)).map_err(ProcessError::Io)?;
        tokio::spawn(async move {
            let _ = tx.write_all(&data).await;
        });
    }
    let mut rx = pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(ProcessError::Io)?;
    let mut exit = spawned.exit;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut eof, mut status) = (false, None);
    let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86400);
    let deadline = tokio::time::sleep_until(
        spec.timeout
            .map(|t| tokio::time::Instant::now() + t)
            .unwrap_or(far),
    );
    let grace = tokio::time::sleep_until(far);
    tokio::pin!(deadline, grace);
    while !(eof && status.is_some()) {
        tokio::select! {
            r = rx.read(&mut buf), if !eof => match r {
                Ok(0) => eof = true,
                Ok(n) => {
                    let room = OUTPUT_CAP.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) => return Err(ProcessError::Io(e)),
            },
            s = &mut exit, if status.is_none() => {
                status = Some(s.map_err(|_| ProcessError::Io(std::io::Error::other("reaper dropped the exit status")))?);
                grace.as_mut().reset(tokio::time::Instant::now() + EOF_GRACE);
            },
            _ = &mut grace, if status.is_some() => break,
            _ = &mut deadline, if status.is_none() => {
                let _ = cove_sys::process::kill_process_group(spawned.pid, cove_sys::process::SIGKILL);
                guard.armed = false;
                let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
                return Err(ProcessError::Timeout(spec.timeout.map(|t| t.as_secs()).unwrap_or(0)));
            },
        }
    }
    guard.armed = false;
    let exit_code = status.map(|s| s.code()).unwrap_or(-1);
    Ok(RunOutput {
        exit_code,
        output: out,
    })
}
