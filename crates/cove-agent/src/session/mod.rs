//! Process sessions (spec §10.3) and their log streaming over WebSocket (§10.4).

pub mod log;
pub mod service;
pub mod types;
mod ws;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::error::{json_response, ApiError, JsonBody, QueryParams};
use crate::state::SharedState;
use service::Sessions;
use types::{
    CommandLogs, CreateSessionRequest, LogsQuery, SendInputRequest, SessionExecuteRequest,
    SessionExecuteResponse, SessionInfo,
};

/// The id of the entrypoint session: the image's entrypoint command, started at boot (empty
/// when the image has none).
pub const ENTRYPOINT: &str = "entrypoint";

/// Errors of session operations.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {0} not found")]
    NotFound(String),
    #[error("command {0} not found")]
    CommandNotFound(String),
    #[error("session {0} already exists")]
    Exists(String),
    #[error("session {0} has ended")]
    Ended(String),
    #[error("command {0} has already completed")]
    Completed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("session I/O failed: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Api(ApiError),
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let (status, code) = match &e {
            SessionError::NotFound(_) | SessionError::CommandNotFound(_) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            SessionError::Exists(_) => (StatusCode::CONFLICT, "CONFLICT"),
            SessionError::Ended(_) => (StatusCode::GONE, "SESSION_ENDED"),
            SessionError::Completed(_) => (StatusCode::GONE, "COMMAND_ALREADY_COMPLETED"),
            SessionError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            SessionError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR"),
            SessionError::Api(a) => return a.clone(),
        };
        ApiError::new(status, code, e.to_string())
    }
}

type Shared = Extension<Arc<Sessions>>;

pub fn routes(sessions: Arc<Sessions>) -> Router<SharedState> {
    Router::new()
        .route("/process/session", post(create).get(list))
        .route("/process/session/entrypoint", get(entrypoint))
        .route("/process/session/entrypoint/logs", get(entrypoint_logs))
        .route("/process/session/{sid}", get(get_session).delete(remove))
        .route("/process/session/{sid}/exec", post(exec))
        .route("/process/session/{sid}/command/{cid}", get(get_command))
        .route("/process/session/{sid}/command/{cid}/logs", get(logs))
        .route("/process/session/{sid}/command/{cid}/input", post(input))
        .layer(Extension(sessions))
}

async fn create(
    State(st): State<SharedState>,
    Extension(s): Shared,
    JsonBody(req): JsonBody<CreateSessionRequest>,
) -> Result<Response, ApiError> {
    if req.session_id.trim().is_empty() || req.session_id.contains('/') {
        return Err(SessionError::BadRequest(
            "sessionId must be a non-empty name without '/'".into(),
        )
        .into());
    }
    s.create(&st, &req.session_id)?;
    Ok(StatusCode::CREATED.into_response())
}

async fn list(Extension(s): Shared) -> Response {
    json_response(StatusCode::OK, &s.list())
}

async fn get_session(Extension(s): Shared, Path(sid): Path<String>) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &s.get(&sid)?.info()))
}

async fn remove(Extension(s): Shared, Path(sid): Path<String>) -> Result<Response, ApiError> {
    s.delete(&sid)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn exec(
    State(st): State<SharedState>,
    Extension(s): Shared,
    Path(sid): Path<String>,
    JsonBody(req): JsonBody<SessionExecuteRequest>,
) -> Result<Response, ApiError> {
    let sess = s.get(&sid)?;
    if req.command.trim().is_empty() {
        return Err(SessionError::BadRequest("command must not be empty".into()).into());
    }
    let run_async = req.run_async.or(req.var_async).unwrap_or(false);
    let cmd = sess
        .exec(&st, req.command, req.suppress_input_echo.unwrap_or(false))
        .await?;
    if run_async {
        let resp = SessionExecuteResponse {
            cmd_id: cmd.id.clone(),
            output: None,
            stdout: None,
            stderr: None,
            exit_code: None,
        };
        return Ok(json_response(StatusCode::ACCEPTED, &resp));
    }
    cmd.wait().await;
    let logs = cmd.logs();
    let resp = SessionExecuteResponse {
        cmd_id: cmd.id.clone(),
        output: Some(logs.output),
        stdout: Some(logs.stdout),
        stderr: Some(logs.stderr),
        exit_code: cmd.exit_code(),
    };
    Ok(json_response(StatusCode::OK, &resp))
}

fn command(s: &Sessions, sid: &str, cid: &str) -> Result<Arc<service::Cmd>, SessionError> {
    s.get(sid)?
        .command(cid)
        .ok_or_else(|| SessionError::CommandNotFound(cid.to_string()))
}

async fn get_command(
    Extension(s): Shared,
    Path((sid, cid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &command(&s, &sid, &cid)?.info(),
    ))
}

async fn logs(
    Extension(s): Shared,
    Path((sid, cid)): Path<(String, String)>,
    QueryParams(q): QueryParams<LogsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let cmd = command(&s, &sid, &cid)?;
    match upgrade {
        Ok(up) => Ok(ws::follow(up, Some(cmd), q.follow())),
        Err(_) => Ok(json_response(StatusCode::OK, &cmd.logs())),
    }
}

async fn input(
    Extension(s): Shared,
    Path((sid, cid)): Path<(String, String)>,
    JsonBody(req): JsonBody<SendInputRequest>,
) -> Result<Response, ApiError> {
    let cmd = command(&s, &sid, &cid)?;
    cmd.send_input(req.data.as_bytes()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn entrypoint(Extension(s): Shared) -> Response {
    let info = s.get(ENTRYPOINT).map_or_else(
        |_| SessionInfo {
            session_id: ENTRYPOINT.to_string(),
            commands: vec![],
        },
        |sess| sess.info(),
    );
    json_response(StatusCode::OK, &info)
}

/// The entrypoint command's logs (empty when the image has none).
async fn entrypoint_logs(
    Extension(s): Shared,
    QueryParams(q): QueryParams<LogsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let cmd = s.get(ENTRYPOINT).ok().and_then(|sess| sess.first_command());
    match (upgrade, cmd) {
        (Ok(up), cmd) => ws::follow(up, cmd, q.follow()),
        (Err(_), Some(cmd)) => json_response(StatusCode::OK, &cmd.logs()),
        (Err(_), None) => json_response(StatusCode::OK, &CommandLogs::default()),
    }
}
