//! TTL: a sandbox destroyed at a wall-clock deadline whatever its state
//! (`POST /sandbox/{id}/ttl/{minutes}`, `CreateSandbox.ttlMinutes`). The deadline is stored, so
//! it survives restarts; the timers' tick destroys what is past it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::lifecycle::Manager;
use crate::store::sandboxes;

/// Ids whose deadline is at or before `now` (unparseable deadlines are left alone).
pub fn expired(rows: &[(String, String)], now: DateTime<Utc>) -> Vec<String> {
    rows.iter()
        .filter(|(_, at)| {
            DateTime::parse_from_rfc3339(at).is_ok_and(|at| at.with_timezone(&Utc) <= now)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

impl Manager {
    /// The deadline `minutes` timer minutes from now (RFC 3339), or `None` for 0 (no TTL).
    pub fn ttl_deadline(&self, minutes: i64) -> Option<String> {
        let minutes = u32::try_from(minutes).ok().filter(|m| *m > 0)?;
        let span = chrono::Duration::from_std(self.minute.saturating_mul(minutes)).ok()?;
        let at = Utc::now().checked_add_signed(span)?;
        Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    /// Destroys every sandbox whose TTL has run out.
    pub async fn expire_ttls(self: &Arc<Self>) {
        let rows = match sandboxes::ttl_candidates(&self.pool).await {
            Ok(r) => r,
            Err(e) => return tracing::warn!("ttl: reading sandboxes failed: {e}"),
        };
        for id in expired(&rows, Utc::now()) {
            match self.delete(id.clone()).await {
                Ok(_) => tracing::info!("ttl: destroyed {id}"),
                Err(e) => tracing::warn!("ttl: destroying {id} failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_at_or_before_now_expire() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let rows = vec![
            ("past".to_string(), "2026-01-01T00:09:59.999Z".to_string()),
            ("now".into(), "2026-01-01T00:10:00.000Z".into()),
            ("future".into(), "2026-01-01T00:10:00.001Z".into()),
            ("garbage".into(), "soon".into()),
        ];
        assert_eq!(expired(&rows, now), vec!["past", "now"]);
    }
}
