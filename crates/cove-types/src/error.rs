//! The error envelope both Daytona SDKs parse (spec §4.1, §4.3).

use serde::{Deserialize, Serialize};

/// Who produced an error: the control plane or the in-sandbox agent.
pub const SOURCE_API: &str = "DAYTONA_API";
/// Errors produced by the agent carry this source so domain codes map to SDK subclasses.
pub const SOURCE_DAEMON: &str = "DAYTONA_DAEMON";

/// `{statusCode, message, error, code, source, path, timestamp, method}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    pub status_code: u16,
    pub message: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub method: String,
}

/// The generic code for an HTTP status (`NOT_FOUND`, `BAD_REQUEST`, ...).
pub fn code_for_status(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        410 => "GONE",
        413 => "PAYLOAD_TOO_LARGE",
        422 => "UNPROCESSABLE_ENTITY",
        503 => "SERVICE_UNAVAILABLE",
        507 => "INSUFFICIENT_STORAGE",
        _ if status >= 500 => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    }
}

/// The reason phrase for a status (`Not Found`), used as the envelope's `error`.
pub fn reason_for_status(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ if status >= 500 => "Internal Server Error",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_camel_case() {
        let e = ErrorEnvelope {
            status_code: 404,
            message: "Sandbox x not found".into(),
            error: reason_for_status(404).into(),
            code: code_for_status(404).into(),
            source: SOURCE_API.into(),
            path: "/api/sandbox/x".into(),
            timestamp: "t".into(),
            method: "GET".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["statusCode"], 404);
        assert_eq!(v["code"], "NOT_FOUND");
        assert_eq!(v["error"], "Not Found");
    }
}
