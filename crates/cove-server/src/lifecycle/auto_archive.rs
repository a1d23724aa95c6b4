//! The auto-archive timer: a sandbox stopped for its `autoArchiveInterval` minutes is
//! archived (spec §7.7: 0 means the maximum, 30 days). Called from the timers' tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Manager;
use crate::store::archives;

/// The longest auto-archive interval in minutes (30 days), also what 0 stands for.
pub const MAX_AUTO_ARCHIVE: i64 = 30 * 24 * 60;

/// Ids of the stopped sandboxes `(id, interval, stopped since)` due for archiving at `now`.
pub fn archive_due(
    rows: &[(String, i64, String)],
    now: DateTime<Utc>,
    minute: Duration,
) -> Vec<String> {
    rows.iter()
        .filter(|(_, interval, since)| {
            let minutes = match *interval {
                m if m <= 0 || m > MAX_AUTO_ARCHIVE => MAX_AUTO_ARCHIVE,
                m => m,
            };
            let Ok(since) = DateTime::parse_from_rfc3339(since) else {
                return false;
            };
            let span = minute.saturating_mul(u32::try_from(minutes).unwrap_or(u32::MAX));
            chrono::Duration::from_std(span)
                .is_ok_and(|span| now - since.with_timezone(&Utc) >= span)
        })
        .map(|(id, _, _)| id.clone())
        .collect()
}

impl Manager {
    /// Archives every stopped sandbox whose auto-archive interval has passed.
    pub async fn auto_archive(self: &Arc<Self>) {
        let rows = match archives::auto_archive_candidates(&self.pool).await {
            Ok(r) => r,
            Err(e) => return tracing::warn!("auto-archive: reading sandboxes failed: {e}"),
        };
        for id in archive_due(&rows, Utc::now(), self.minute) {
            // `archive` re-checks the state under the sandbox's lock.
            match self.archive(id.clone()).await {
                Ok(_) => tracing::info!("timer: auto-archived {id}"),
                Err(e) => tracing::warn!("timer: auto-archive of {id} failed: {}", e.message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_the_interval_and_zero_is_the_maximum() {
        let now = DateTime::parse_from_rfc3339("2026-02-01T00:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let min = Duration::from_secs(60);
        let row = |id: &str, m: i64, since: &str| (id.to_string(), m, since.to_string());
        let rows = vec![
            row("due", 60, "2026-01-31T22:59:00.000Z"),
            row("early", 60, "2026-01-31T23:30:00.000Z"),
            row("max-not-yet", 0, "2026-01-10T00:00:00.000Z"),
            row("max-due", 0, "2026-01-01T00:00:00.000Z"),
            row("never-stamped", 1, ""),
        ];
        assert_eq!(archive_due(&rows, now, min), vec!["due", "max-due"]);
        // A shortened minute (tests) scales the interval.
        assert_eq!(
            archive_due(&rows[1..2], now, Duration::from_secs(1)),
            vec!["early"]
        );
    }
}
