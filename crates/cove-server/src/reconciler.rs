//! The reconciler: drives sandboxes whose last action failed toward their desired state.
//!
//! A failed stop or destroy leaves a sandbox in `error` with its desired state (`stopped`,
//! `destroyed`) still stored; a failed boot (of a create, start or recover, or a create that a
//! server crash interrupted) leaves `error` wanting `started`. Each timer tick retries those
//! actions, backing off exponentially per sandbox (one tick, doubling, at most
//! [`MAX_BACKOFF`]), so a sandbox that cannot boot costs one attempt per five minutes, not a
//! loop. A sandbox whose PID 1 died while it ran ([`EXITED`]) is not booted again unasked: its
//! own code may have ended it, and the user decides (`start`, `recover` or delete). Nor is a
//! sandbox whose PID 1 still runs (one a failed thaw left frozen): booting would kill it.
//! Transitions caught half-way by a crash are settled at start-up
//! ([`Manager::reconcile_at_start`]); the first tick runs right after, so a create that a crash
//! interrupted is finished then.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cove_types::api::state;

use crate::error::ApiError;
use crate::lifecycle::{Manager, EXITED};
use crate::store::sandboxes;

/// The longest wait between two retries of one sandbox's action.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Per-sandbox retry bookkeeping: attempts so far and when the next one may run.
#[derive(Debug, Default)]
pub struct Retries {
    next: HashMap<String, (u32, Instant)>,
}

impl Retries {
    /// Whether sandbox `id` may be retried at `now`.
    pub fn due(&self, id: &str, now: Instant) -> bool {
        self.next.get(id).is_none_or(|(_, at)| now >= *at)
    }

    /// Records a failed attempt at `now`; the next one waits `base` × 2^(attempts-1), capped.
    pub fn failed(&mut self, id: &str, now: Instant, base: Duration) {
        let n = self.next.get(id).map_or(0, |(n, _)| *n) + 1;
        let wait = base
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(MAX_BACKOFF);
        self.next.insert(id.to_string(), (n, now + wait));
    }

    /// Forgets sandbox `id` (its action succeeded, or it is gone).
    pub fn clear(&mut self, id: &str) {
        self.next.remove(id);
    }
}

impl Manager {
    /// Retries the failed stop, destroy or boot of every `error` sandbox that is due; returns
    /// how many reached their desired state.
    pub async fn retry_failed(self: &Arc<Self>, base: Duration) -> usize {
        let rows = match sandboxes::in_states(&self.pool, &[state::ERROR]).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("reconciler: reading sandboxes failed: {e}");
                return 0;
            }
        };
        let mut done = 0;
        for row in rows {
            let desired = row.desired_state.as_str();
            // Re-boot only what has no process left: booting kills whatever still runs.
            let boot = desired == state::STARTED
                && row.error_reason.as_deref() != Some(EXITED)
                && self.runtime.running(&row.id).is_none();
            if !boot && ![state::STOPPED, state::DESTROYED].contains(&desired) {
                continue;
            }
            let due = self
                .retries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .due(&row.id, Instant::now());
            if !due {
                continue;
            }
            tracing::info!("reconciler: retrying {} toward {desired}", row.id);
            let result = match desired {
                state::DESTROYED => self.delete(row.id.clone()).await.map(drop),
                state::STARTED => match self.start(row.id.clone()).await {
                    // A boot that fails again is recorded as `error` with its reason.
                    Ok(sb) if sb.state != state::STARTED => Err(ApiError::internal(
                        sb.error_reason
                            .unwrap_or_else(|| format!("state is {}", sb.state)),
                    )),
                    r => r.map(drop),
                },
                _ => self.stop(row.id.clone(), true).await.map(drop),
            };
            let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => {
                    retries.clear(&row.id);
                    done += 1;
                }
                Err(e) => {
                    tracing::warn!("reconciler: {} toward {desired} failed again: {e}", row.id);
                    retries.failed(&row.id, Instant::now(), base);
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_clears() {
        let t0 = Instant::now();
        let base = Duration::from_secs(1);
        let mut r = Retries::default();
        assert!(r.due("a", t0));
        r.failed("a", t0, base);
        assert!(!r.due("a", t0));
        assert!(r.due("a", t0 + Duration::from_secs(1)));
        r.failed("a", t0, base);
        assert!(!r.due("a", t0 + Duration::from_secs(1)));
        assert!(r.due("a", t0 + Duration::from_secs(2)));
        for _ in 0..40 {
            r.failed("a", t0, base);
        }
        assert!(!r.due("a", t0 + MAX_BACKOFF - Duration::from_secs(1)));
        assert!(r.due("a", t0 + MAX_BACKOFF));
        assert!(r.due("b", t0), "other sandboxes are independent");
        r.clear("a");
        assert!(r.due("a", t0));
    }
}
