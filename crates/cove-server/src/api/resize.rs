//! `POST /sandbox/{idOrName}/resize` (spec §7.1 row 10): new cpu / memory / disk.
//!
//! Daytona's rules, as the SDK documents them: on a started sandbox only cpu and memory may
//! change, and only grow (applied live to its cgroups); a stopped sandbox may change anything,
//! but disk only grows: its image is grown (file, loop device, ext4 online) before the new size
//! is stored, so a failed grow changes nothing (and a start grows the disk to the stored size,
//! should a crash come between the two). The answer is the Sandbox in its previous state
//! (`started`/`stopped`, never `resizing`), so the SDK's wait ends at once. A rejected request
//! changes nothing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use cove_types::api::{state, Sandbox};
use cove_types::error::ErrorEnvelope;

use super::{dto, AppState};
use crate::auth::Org;
use crate::error::ApiError;
use crate::store::sandboxes::{self, SandboxRow};

/// The requested resources; `None` = unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resize {
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
}

/// Parses the body: a JSON object with at least one of `cpu`, `memory` (GiB), `disk` (GiB),
/// each an integer within the bounds of create (`null` = absent).
pub fn parse(body: &[u8]) -> Result<Resize, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad_request("request body must be a JSON object {cpu?, memory?, disk?}")
    })?;
    let field = |name: &str, max: i64| -> Result<Option<i64>, ApiError> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(x) => x
                .as_i64()
                .filter(|n| (1..=max).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be an integer from 1 to {max}, got {x}"
                    ))
                }),
        }
    };
    let r = Resize {
        cpu: field("cpu", 64)?,
        memory: field("memory", 256)?,
        disk: field("disk", 1024)?,
    };
    if r == Resize::default() {
        return Err(ApiError::bad_request(
            "resize needs at least one of cpu, memory, disk",
        ));
    }
    Ok(r)
}

/// The resulting `(cpu, memory, disk)` of applying `r` to `row`, or the 4xx that refuses it.
pub fn plan(row: &SandboxRow, r: Resize) -> Result<(i64, i64, i64), ApiError> {
    let cpu = r.cpu.unwrap_or(row.cpu);
    let memory = r.memory.unwrap_or(row.memory);
    let disk = r.disk.unwrap_or(row.disk);
    if disk < row.disk {
        return Err(ApiError::bad_request(format!(
            "disk can only grow: {disk} GiB < current {} GiB",
            row.disk
        )));
    }
    match row.state.as_str() {
        state::STARTED => {
            if disk != row.disk {
                return Err(ApiError::bad_request(
                    "disk can only be resized while the sandbox is stopped",
                ));
            }
            if cpu < row.cpu || memory < row.memory {
                return Err(ApiError::bad_request(format!(
                    "a started sandbox can only grow: cpu {cpu} (now {}), memory {memory} GiB \
                     (now {}); stop it to shrink",
                    row.cpu, row.memory
                )));
            }
        }
        state::STOPPED => {}
        other => {
            return Err(ApiError::conflict(format!(
                "Sandbox {} is {other}; resize needs it started or stopped",
                row.id
            )))
        }
    }
    Ok((cpu, memory, disk))
}

/// `POST /sandbox/{idOrName}/resize`.
#[utoipa::path(post, path = "/sandbox/{idOrName}/resize", params(("idOrName" = String, Path)), request_body(content = String, description = "{cpu?, memory?, disk?}: integers >= 1 (memory and disk in GiB)", content_type = "application/json"), responses((status = 200, body = Sandbox), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn resize(
    State(st): State<AppState>,
    Extension(Org(org)): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Sandbox>, ApiError> {
    let req = parse(&body)?;
    let row = sandboxes::get(&st.pool, &org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Sandbox {id} not found")))?;
    st.manager.note_activity(&row.id);
    let (cpu, memory, disk) = plan(&row, req)?;
    if row.state == state::STARTED && (cpu, memory) != (row.cpu, row.memory) {
        let res = st
            .manager
            .runtime
            .resize(&row.id, cpu as u32, memory as u64 * 1024)
            .await;
        // Stopped meanwhile: the new limits apply at the next start.
        if let Err(e) = res {
            if st.manager.runtime.running(&row.id).is_some() {
                return Err(e.into());
            }
        }
    }
    if disk > row.disk {
        st.manager.grow_disk(row.id.clone(), disk as u32).await?;
    }
    sandboxes::set_resources(&st.pool, &row.id, cpu, memory, disk).await?;
    let row = sandboxes::get(&st.pool, &org, &row.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Sandbox {id} not found")))?;
    Ok(Json(dto::sandbox(&row, &st.base_url(&headers))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_checked_and_names_the_field() {
        assert_eq!(
            parse(br#"{"cpu":2,"memory":2}"#).unwrap(),
            Resize {
                cpu: Some(2),
                memory: Some(2),
                disk: None
            }
        );
        assert_eq!(parse(br#"{"disk":5,"cpu":null}"#).unwrap().disk, Some(5));
        for (b, word) in [
            (&br#"{}"#[..], "at least one"),
            (br#"{"cpu":null}"#, "at least one"),
            (br#"{"cpu":0}"#, "cpu"),
            (br#"{"memory":-1}"#, "memory"),
            (br#"{"disk":1.5}"#, "disk"),
            (br#"{"cpu":"2"}"#, "cpu"),
            (br#"{"cpu":65}"#, "cpu"),
            (br#"[1]"#, "object"),
            (br#"nope"#, "invalid request body"),
        ] {
            let e = parse(b).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(word), "{}: {}", word, e.message);
        }
    }

    #[test]
    fn plan_follows_daytonas_rules() {
        let mut row = crate::store::sandboxes::tests_row("s");
        row.disk = 3;
        let r = |cpu, memory, disk| Resize { cpu, memory, disk };
        assert_eq!(plan(&row, r(Some(2), Some(4), None)).unwrap(), (2, 4, 3));
        assert!(plan(&row, r(None, None, Some(5))).is_err());
        row.cpu = 2;
        assert!(plan(&row, r(Some(1), None, None)).is_err());
        row.state = "stopped".into();
        assert_eq!(plan(&row, r(Some(1), None, Some(5))).unwrap(), (1, 1, 5));
        assert!(plan(&row, r(None, None, Some(2))).is_err());
        row.state = "starting".into();
        let e = plan(&row, r(Some(4), None, None)).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::CONFLICT);
    }
}
