//! The one place where errors become HTTP responses in Daytona's error envelope (spec §4).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cove_types::error::{code_for_status, reason_for_status, ErrorEnvelope, SOURCE_API};

/// An error answered to an API client: a status and a message naming the bad input.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid or missing API key")
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// SQLite's result code for a full disk (or a full database).
const SQLITE_FULL: &str = "13";

impl ApiError {
    /// 507: the server's own disk is full; nothing the request asked for was done.
    fn out_of_space(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("the cove server is out of disk space; free space on its data dir ({detail})"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!("store error: {e}");
        match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(SQLITE_FULL) => {
                Self::out_of_space(format!("store: {e}"))
            }
            _ => Self::internal(format!("store error: {e}")),
        }
    }
}

impl From<cove_runtime::RuntimeError> for ApiError {
    fn from(e: cove_runtime::RuntimeError) -> Self {
        match &e {
            cove_runtime::RuntimeError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                Self::out_of_space(e)
            }
            _ => Self::internal(format!("runtime error: {e}")),
        }
    }
}

/// Builds the envelope body for `status`; `path` and `method` are filled in by [`stamp`].
pub fn envelope(status: StatusCode, message: &str, code: Option<&str>) -> ErrorEnvelope {
    let s = status.as_u16();
    ErrorEnvelope {
        status_code: s,
        message: message.to_string(),
        error: reason_for_status(s).to_string(),
        code: code.unwrap_or(code_for_status(s)).to_string(),
        source: SOURCE_API.to_string(),
        path: String::new(),
        timestamp: crate::now(),
        method: String::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = envelope(self.status, &self.message, self.code);
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorMarker);
        resp
    }
}

/// Marks responses whose envelope still lacks `path` and `method`.
#[derive(Clone, Copy)]
pub struct ErrorMarker;

/// Middleware: fills `path` and `method` into error envelopes produced by [`ApiError`].
pub async fn stamp(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let resp = next.run(req).await;
    if resp.extensions().get::<ErrorMarker>().is_none() {
        return resp;
    }
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return status.into_response();
    };
    let Ok(mut env) = serde_json::from_slice::<ErrorEnvelope>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    env.path = path;
    env.method = method;
    let mut resp = (status, axum::Json(env)).into_response();
    *resp.headers_mut() = parts.headers;
    resp.headers_mut()
        .remove(axum::http::header::CONTENT_LENGTH);
    resp
}

/// Parses a JSON body strictly, answering 400 with serde's message on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_store_is_507_and_other_errors_500() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        // The database may not grow past its current size: the next big row is SQLITE_FULL.
        sqlx::query("PRAGMA max_page_count = 2")
            .execute(&pool)
            .await
            .unwrap();
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(1000000))")
            .execute(&pool)
            .await
            .unwrap_err();
        let e = ApiError::from(full);
        assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE, "{e}");
        assert!(e.message.contains("out of disk space"), "{e}");
        let other = sqlx::query("SELECT * FROM missing")
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(
            ApiError::from(other).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn enospc_from_the_runtime_is_507() {
        let io = |errno| cove_runtime::RuntimeError::Io {
            op: "write",
            path: "/data/x".into(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert_eq!(
            ApiError::from(io(28)).status, // ENOSPC
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            ApiError::from(io(13)).status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "EACCES stays a 500"
        );
    }
}
