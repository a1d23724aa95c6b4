//! Lifecycle timers: auto-stop after idle minutes, auto-delete after minutes stopped or
//! archived (0 = on stop, negative = never), and TTL deadlines (`ttl.rs`). Activity (any API
//! or toolbox call on a sandbox, not preview traffic) is noted in memory and flushed to the
//! store on each tick, so timers survive restarts without a write on every exec. Each tick
//! also marks `started` sandboxes whose PID 1 died as `error` ([`Manager::reap_exited`]) and
//! archives sandboxes stopped for their auto-archive interval ([`Manager::auto_archive`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cove_types::api::state;

use crate::lifecycle::Manager;
use crate::store::sandboxes;

/// What a timer wants done to a sandbox.
#[derive(Debug, PartialEq)]
pub enum Due {
    Stop(String),
    Delete(String),
}

fn parse(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The timers that have fired at `now` for `rows`, with `minute` as the unit.
pub fn due(rows: &[sandboxes::TimerRow], now: DateTime<Utc>, minute: Duration) -> Vec<Due> {
    let after = |since: &str, minutes: i64| {
        let Some(since) = parse(since) else {
            return false;
        };
        let span = minute.saturating_mul(u32::try_from(minutes).unwrap_or(u32::MAX));
        chrono::Duration::from_std(span).is_ok_and(|span| now - since >= span)
    };
    rows.iter()
        .filter_map(
            |(id, st, auto_stop, auto_delete, activity, changed)| match st.as_str() {
                state::STARTED if *auto_stop > 0 && after(activity, *auto_stop) => {
                    Some(Due::Stop(id.clone()))
                }
                state::STOPPED | state::ARCHIVED
                    if *auto_delete >= 0 && after(changed, *auto_delete) =>
                {
                    Some(Due::Delete(id.clone()))
                }
                _ => None,
            },
        )
        .collect()
}

impl Manager {
    /// Notes activity on sandbox `id` now.
    pub fn note_activity(&self, id: &str) {
        let mut m = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(id.to_string(), crate::now());
    }

    async fn flush_activity(&self) {
        let pending: Vec<(String, String)> = {
            let mut m = self.activity.lock().unwrap_or_else(|p| p.into_inner());
            m.drain().collect()
        };
        for (id, at) in pending {
            if let Err(e) = sandboxes::touch(&self.pool, &id, &at).await {
                tracing::warn!("recording activity of {id} failed: {e}");
            }
        }
    }

    /// One pass: flush activity, then act on every timer that has fired.
    pub async fn tick(self: &Arc<Self>) {
        self.flush_activity().await;
        if let Err(e) = self.reap_exited().await {
            tracing::warn!("timers: checking sandbox processes failed: {e}");
        }
        self.expire_ttls().await;
        self.retry_failed(self.tick_period()).await;
        let rows = match sandboxes::timer_candidates(&self.pool).await {
            Ok(r) => r,
            Err(e) => return tracing::warn!("timers: reading sandboxes failed: {e}"),
        };
        for d in due(&rows, Utc::now(), self.minute) {
            let result = match &d {
                Due::Stop(id) => self.stop(id.clone(), false).await.map(drop),
                Due::Delete(id) => self.delete(id.clone()).await.map(drop),
            };
            match result {
                Ok(()) => tracing::info!("timer: {d:?}"),
                Err(e) => tracing::warn!("timer: {d:?} failed: {e}"),
            }
        }
        self.auto_archive().await;
    }

    /// How often the timers tick: several times per timer minute, at most every 10 s.
    pub fn tick_period(&self) -> Duration {
        (self.minute / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// Runs [`Manager::tick`] forever, several times per timer minute (at most every 10 s).
    pub fn spawn_timers(self: &Arc<Self>) {
        let me = self.clone();
        let period = self.tick_period();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                me.tick().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: &str,
        st: &str,
        stop: i64,
        del: i64,
        activity: &str,
        changed: &str,
    ) -> sandboxes::TimerRow {
        (
            id.into(),
            st.into(),
            stop,
            del,
            activity.into(),
            changed.into(),
        )
    }

    #[test]
    fn timers_fire_after_their_minutes() {
        let now = parse("2026-01-01T00:10:00.000Z").unwrap();
        let min = Duration::from_secs(60);
        let rows = vec![
            row("idle", "started", 5, -1, "2026-01-01T00:04:00.000Z", ""),
            row("busy", "started", 15, -1, "2026-01-01T00:04:00.000Z", ""),
            row("old-stop", "stopped", 0, 3, "", "2026-01-01T00:06:00.000Z"),
            row("new-stop", "stopped", 0, 5, "", "2026-01-01T00:06:00.000Z"),
            row("on-stop", "stopped", 0, 0, "", "2026-01-01T00:09:59.000Z"),
            row("never", "stopped", 0, -1, "", "2026-01-01T00:00:00.000Z"),
            row("off", "started", 0, -1, "2026-01-01T00:00:00.000Z", ""),
            row("archived", "archived", 0, 3, "", "2026-01-01T00:06:00.000Z"),
        ];
        assert_eq!(
            due(&rows, now, min),
            vec![
                Due::Stop("idle".into()),
                Due::Delete("old-stop".into()),
                Due::Delete("on-stop".into()),
                Due::Delete("archived".into())
            ]
        );
        // A shortened minute (tests) scales every interval.
        assert_eq!(
            due(&rows[1..2], now, Duration::from_secs(1)),
            vec![Due::Stop("busy".into())]
        );
    }
}
