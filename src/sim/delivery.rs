//! Async mode: every bot message is POSTed on its own to the instance's POST_URL, then the task
//! fields as a separate POST; failed POSTs are retried with exponential backoff, and the fault
//! settings can duplicate, reorder and delay them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use super::bodies::{v1_body, v2_body_at};
use super::conversation::{Segment, Turn};
use super::state::SimState;
use crate::protocol::{ids, v2, Version};
use time::OffsetDateTime;

/// Starts delivering a turn in the background.
pub fn spawn(state: Arc<SimState>, instance: u16, version: Version, user: String, turn: Turn) {
    tokio::spawn(async move { deliver(&state, instance, version, &user, turn).await });
}

/// Creation times for a turn's messages: the clock's time, but always after the previous
/// message's, so `createdOn` orders the messages as the bot sent them even within one
/// millisecond (receivers judge reordering by it).
struct Stamps {
    last: Option<OffsetDateTime>,
}

impl Stamps {
    fn next(&mut self) -> String {
        let now = OffsetDateTime::now_utc();
        let t = match self.last {
            Some(prev) if now <= prev => prev + time::Duration::milliseconds(1),
            _ => now,
        };
        self.last = Some(t);
        ids::created_on(t)
    }
}

/// The bodies of one segment: one per message, then the task end on its own. The last message
/// of the turn (`last_segment`) carries V2's `endOfMessage` marker, the others
/// `partialMessage`.
fn bodies(
    state: &SimState,
    version: Version,
    user: &str,
    seg: &Segment,
    stamps: &mut Stamps,
    last_segment: bool,
) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(seg.messages.len() + 1);
    for (i, m) in seg.messages.iter().enumerate() {
        let single = Segment {
            delay: Duration::ZERO,
            messages: vec![m.clone()],
            task_end: None,
        };
        let bytes = match version {
            Version::V1 => {
                serde_json::to_vec(&v1_body(state, std::slice::from_ref(&single), Some(user)))
            }
            Version::V2 => {
                let mut b = v2_body_at(state, std::slice::from_ref(&single), user, &stamps.next());
                // The turn's last message says so; the ones before it were sent mid-flow.
                let last = last_segment && i + 1 == seg.messages.len();
                for item in b.data.iter_mut().flatten() {
                    if last {
                        item.end_of_message = Some(true);
                    } else {
                        item.partial_message = Some(true);
                    }
                }
                serde_json::to_vec(&b)
            }
        };
        out.extend(bytes.ok().map(Bytes::from));
    }
    if let Some(end) = &seg.task_end {
        let bytes = match version {
            Version::V1 => {
                let mut b = v1_body(state, &[], Some(user));
                b.set_task_end(end);
                serde_json::to_vec(&b)
            }
            Version::V2 => {
                let mut b = v2::Response::messages(Vec::new());
                b.to = Some(user.to_string());
                b.from = Some(state.bot.id.clone());
                b.set_task_end(end);
                serde_json::to_vec(&b)
            }
        };
        out.extend(bytes.ok().map(Bytes::from));
    }
    out
}

async fn deliver(state: &SimState, instance: u16, version: Version, user: &str, turn: Turn) {
    let inst = &state.bot.instances[instance as usize];
    let Some(url) = inst.post_url.as_deref() else {
        let n: usize = turn
            .segments
            .iter()
            .map(|s| s.messages.len() + usize::from(s.task_end.is_some()))
            .sum();
        state
            .metrics
            .async_undeliverable
            .fetch_add(n as u64, Relaxed);
        tracing::warn!(instance = %inst.id, "async instance has no POST_URL; {n} message(s) dropped");
        return;
    };
    let faults = &inst.faults;
    let mut stamps = Stamps { last: None };
    // The last segment that has messages holds the turn's last message.
    let last_with_messages = turn.segments.iter().rposition(|s| !s.messages.is_empty());
    for (k, seg) in turn.segments.iter().enumerate() {
        crate::common::pause(seg.delay).await;
        let mut posts = bodies(
            state,
            version,
            user,
            seg,
            &mut stamps,
            Some(k) == last_with_messages,
        );
        if faults.async_reorder_rate > 0.0 {
            let mut rng = rand::rng();
            for i in 0..posts.len().saturating_sub(1) {
                if rng.random_bool(faults.async_reorder_rate) {
                    posts.swap(i, i + 1);
                }
            }
        }
        for body in posts {
            let (extra, dup) = {
                let mut rng = rand::rng();
                (
                    faults.async_delay.sample(&mut rng),
                    faults.async_duplicate_rate > 0.0
                        && rng.random_bool(faults.async_duplicate_rate),
                )
            };
            crate::common::pause(extra).await;
            post_with_retries(state, url, body.clone(), inst.delivery).await;
            if dup {
                let _ = post_with_retries(state, url, body, inst.delivery).await;
            }
        }
    }
}

/// POSTs `body` to `url`, retrying with backoff; true once the receiver took it.
pub(super) async fn post_with_retries(
    state: &SimState,
    url: &str,
    body: Bytes,
    policy: super::bot::DeliveryPolicy,
) -> bool {
    let mut backoff = policy.backoff;
    for attempt in 1..=policy.attempts {
        let sent = std::time::Instant::now();
        let result = state
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(policy.timeout)
            .body(body.clone())
            .send()
            .await;
        if let Some(o) = &state.observer {
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            o.delivered(&body, status, sent.elapsed());
        }
        match result {
            Ok(r) if r.status().is_success() => {
                state.metrics.async_deliveries.fetch_add(1, Relaxed);
                return true;
            }
            Ok(r) => tracing::debug!(status = %r.status(), attempt, "POST_URL refused a delivery"),
            Err(e) => tracing::debug!(error = %e, attempt, "POST_URL delivery failed"),
        }
        if attempt < policy.attempts {
            state.metrics.async_retries.fetch_add(1, Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(policy.max_backoff);
        }
    }
    state.metrics.async_failures.fetch_add(1, Relaxed);
    tracing::warn!(%url, attempts = policy.attempts, "async delivery given up");
    false
}
