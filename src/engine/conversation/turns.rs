//! One turn on the wire: a sync request with its V2 poll loop, or an async request and the
//! deliveries that answer it, judged for order against what the bot sent.

use super::*;

impl Conversation<'_> {
    pub(super) async fn sync_turn(
        &self,
        out: Outgoing<'_>,
        preflighted: &mut std::collections::HashSet<String>,
        reply: &mut Reply,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let t = self.target;
        let v = t.version;
        // The turn's one clock: every latency and budget figure of the turn is read from it.
        let started = Instant::now();
        let ex = match t
            .http
            .post_json(
                out.url,
                out.auth,
                out.body,
                t.timeout + Duration::from_secs(1),
            )
            .await
        {
            Ok(ex) => ex,
            Err(e) if e.kind == TransportKind::TimedOut => {
                return Some(budget(
                    reply,
                    started,
                    Some(t.timeout),
                    "no answer within the sync budget",
                ));
            }
            Err(e) => {
                reply.latency = started.elapsed();
                return Some(transport(e));
            }
        };
        let sent = ex.sent;
        result.timings.push(Timing {
            event: "first_byte",
            at_us: us(ex.first_byte),
        });
        result.timings.push(Timing {
            event: "body",
            at_us: us(ex.total),
        });
        result.first_byte_ms = Some(ms(ex.first_byte));
        reply.status = Some(ex.status);
        reply.latency = ex.total;
        let body = match decode_answer(&ex, v, reply.trees) {
            Ok(b) => b,
            Err((body, f)) => {
                if let Some(b) = body {
                    reply.push(Body::Tree(b), v);
                }
                if ex.status == 504 {
                    // The platform's own budget, not this run's: say only what it took.
                    return Some(budget(
                        reply,
                        sent,
                        None,
                        "the platform timed the request out (504)",
                    ));
                }
                return Some(f);
            }
        };
        if ex.total > t.timeout {
            reply.push(body, v);
            return Some(Failure::Budget {
                limit_ms: Some(ms(t.timeout)),
                elapsed_ms: ms(ex.total),
                message: "sync request over its budget",
            });
        }
        let mut poll_id = (v == Version::V2).then(|| body.poll_id()).flatten();
        reply.push(body, v);
        if poll_id.is_some() {
            reply.converged = false;
        }
        while let Some(id) = poll_id.take() {
            if sent.elapsed() > t.poll.max_wait {
                return Some(budget(
                    reply,
                    sent,
                    Some(t.poll.max_wait),
                    "polling did not converge",
                ));
            }
            pause(t.poll.interval.wait(reply.polls)).await;
            let poll_url = match Url::parse(&t.endpoints.poll(&id)) {
                Ok(u) => u,
                Err(e) => return Some(transport(e)),
            };
            // Every pollId is a new URL: a browser pre-flights each.
            if let Some(f) = self.preflight(&poll_url, "GET", preflighted, result).await {
                reply.latency = sent.elapsed();
                return Some(f);
            }
            let ex = match t.http.get(&poll_url, out.auth, t.timeout).await {
                Ok(ex) => ex,
                Err(e) => {
                    reply.latency = sent.elapsed();
                    return Some(transport(e));
                }
            };
            reply.polls += 1;
            result.timings.push(Timing {
                event: "poll",
                at_us: us(sent.elapsed()),
            });
            let body = match decode_answer(&ex, v, reply.trees) {
                Ok(b) => b,
                Err((_, f)) => {
                    reply.latency = sent.elapsed();
                    return Some(f);
                }
            };
            if body.in_progress() {
                reply.in_progress += 1;
                poll_id = body.poll_id().or(Some(id));
                continue;
            }
            poll_id = body.poll_id();
            reply.push(body, v);
            reply.latency = sent.elapsed();
        }
        reply.converged = true;
        None
    }

    pub(super) async fn async_turn(
        &self,
        out: Outgoing<'_>,
        step: &Step,
        state: &mut State<'_>,
        reply: &mut Reply,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let t = self.target;
        let Some(sub) = state.subscription.as_mut() else {
            return Some(usage("async mode needs the POST_URL receiver".into()));
        };
        // Deliveries of an earlier turn that came after it ended: out of order with this one.
        let late = sub.drain().len();
        if late > 0 {
            tracing::debug!(late, "deliveries from an earlier turn arrived late");
            result.reordered += late as u32;
        }
        let notify = out.notify;
        let sent = if notify {
            // The notification API takes the bare token in an `auth` header.
            let token = out.auth.token();
            let req = t
                .http
                .raw()
                .post(out.url.as_str())
                .header("auth", token)
                .header(http::header::CONTENT_TYPE, "application/json")
                .timeout(t.timeout)
                .body(out.body);
            t.http.exchange(req).await
        } else {
            t.http
                .post_json(out.url, out.auth, out.body, t.timeout)
                .await
        };
        let ex = match sent {
            Ok(ex) => ex,
            Err(e) => return Some(transport(e)),
        };
        reply.status = Some(ex.status);
        result.first_byte_ms = Some(ms(ex.first_byte));
        result.timings.push(Timing {
            event: "ack",
            at_us: us(ex.total),
        });
        if let Err((body, f)) = decode_answer(&ex, t.version, reply.trees) {
            if let Some(b) = body {
                reply.push(Body::Tree(b), t.version);
            }
            return Some(f);
        }
        let expected = step.expect.iter().find_map(|c| match (&c.kind, c.negate) {
            (CheckKind::Messages(Count::Eq(n) | Count::AtLeast(n)), false) => Some(*n),
            _ => None,
        });
        let deadline = tokio::time::Instant::from_std(ex.sent + t.max_wait);
        let mut order = DeliveryOrder::default();
        // Once the turn looks complete, wait only briefly for stragglers: 250 ms once the task
        // end, the last-message marker or the expected count is in, 100 ms once the marker and
        // the task end both are (a message they overtook is still counted, as reordered).
        let brief = t.quiet.min(Duration::from_millis(250));
        let settle = t.quiet.min(Duration::from_millis(100));
        let mut quiet = t.quiet;
        loop {
            let until = match reply.received {
                0 => deadline,
                _ => deadline.min(tokio::time::Instant::now() + quiet),
            };
            let Some(d) = sub.next_until(until).await else {
                break;
            };
            result.deliveries += 1;
            result.timings.push(Timing {
                event: "delivery",
                at_us: us(d.at.duration_since(ex.sent)),
            });
            match order.see(&d.body) {
                Seen::Duplicate => {
                    result.duplicates += 1;
                    continue;
                }
                Seen::OutOfOrder => result.reordered += 1,
                Seen::InOrder => {}
            }
            reply.latency = d.at.duration_since(ex.sent);
            reply.push(Body::Tree(d.body), t.version);
            if notify {
                // A notification to one identity is one message: nothing more to wait for.
                break;
            }
            if order.complete() {
                quiet = settle;
            } else if order.task_ended
                || order.end_of_message
                || expected.is_some_and(|n| order.messages >= n)
            {
                quiet = brief;
            }
        }
        if reply.received == 0 {
            return Some(budget(
                reply,
                ex.sent,
                Some(t.max_wait),
                "no async delivery arrived",
            ));
        }
        if notify {
            return self
                .notify_status(&ex, out.url, out.auth, deadline, result)
                .await;
        }
        None
    }

    /// After a notification's delivery: polls the job's status until it leaves IN_PROGRESS
    /// (or the turn's deadline), recording the polls and the time to convergence (`status`).
    async fn notify_status(
        &self,
        ack: &Exchange,
        url: &crate::client::Url,
        auth: &crate::client::http::Bearer,
        deadline: tokio::time::Instant,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let t = self.target;
        let job: Value = serde_json::from_slice(&ack.body).unwrap_or(Value::Null);
        let Some(id) = job.get("_id").and_then(Value::as_str) else {
            return Some(Failure::Decode {
                message: "the notification's answer has no job `_id`".into(),
            });
        };
        let status_url = format!("{}/status/{id}", url.as_str());
        loop {
            let req = t
                .http
                .raw()
                .get(&status_url)
                .header("auth", auth.token())
                .timeout(t.timeout);
            let ex = match t.http.exchange(req).await {
                Ok(ex) => ex,
                Err(e) => return Some(transport(e)),
            };
            result.polls += 1;
            if ex.status != 200 {
                return Some(protocol_failure(&ex));
            }
            let v: Value = serde_json::from_slice(&ex.body).unwrap_or(Value::Null);
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            if status != "IN_PROGRESS" {
                result.timings.push(Timing {
                    event: "status",
                    at_us: us(ack.sent.elapsed()),
                });
                if status != "SUCCESS" {
                    return Some(Failure::Protocol {
                        status: 200,
                        code: None,
                        message: format!("the notification job ended {status}"),
                    });
                }
                return None;
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) > deadline {
                return Some(Failure::Budget {
                    limit_ms: Some(ms(t.max_wait)),
                    elapsed_ms: ms(ack.sent.elapsed()),
                    message: "the notification job's status did not converge",
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A broken budget, measured once: the turn's latency and the failure's elapsed time are the
/// same reading of the turn's clock.
pub(super) fn budget(
    reply: &mut Reply,
    since: Instant,
    limit: Option<Duration>,
    message: &'static str,
) -> Failure {
    let took = since.elapsed();
    reply.latency = took;
    Failure::Budget {
        limit_ms: limit.map(ms),
        elapsed_ms: ms(took),
        message,
    }
}

/// What one async delivery was, against the turn so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A copy of one already received.
    Duplicate,
    /// Arrived after a message the bot sent later (by `createdOn`), or after the task end.
    OutOfOrder,
    /// As the bot sent it.
    InOrder,
}

/// The order of one async turn's deliveries, judged against what the bot sent: messages by
/// their `createdOn` (a message created before one already received arrived out of order),
/// and the task end, which the bot sends last (a message after it arrived out of order).
#[derive(Debug, Default)]
struct DeliveryOrder {
    seen: HashSet<String>,
    newest: Option<String>,
    messages: usize,
    task_ended: bool,
    end_of_message: bool,
}

impl DeliveryOrder {
    fn see(&mut self, body: &Value) -> Seen {
        let first = body.pointer("/data/0");
        let key = first
            .and_then(|m| m.get("messageId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        if !self.seen.insert(key) {
            return Seen::Duplicate;
        }
        let count = body
            .get("data")
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or_else(|| usize::from(body.get("text").is_some()));
        let mut out_of_order = count > 0 && self.task_ended;
        if let Some(c) = first
            .and_then(|m| m.get("createdOn"))
            .and_then(Value::as_str)
        {
            // ISO-8601 UTC with milliseconds orders as text.
            match &self.newest {
                Some(n) if n.as_str() > c => out_of_order = true,
                _ => self.newest = Some(c.to_string()),
            }
        }
        self.messages += count;
        self.end_of_message |= body.get("data").and_then(Value::as_array).is_some_and(|d| {
            d.iter()
                .any(|m| m.get("endOfMessage") == Some(&Value::Bool(true)))
        });
        self.task_ended |= body.get("endOfTask").and_then(Value::as_bool) == Some(true);
        if out_of_order {
            Seen::OutOfOrder
        } else {
            Seen::InOrder
        }
    }

    /// The turn's last message (marked `endOfMessage`) and its task end have both arrived.
    /// Without the marker a turn ends by quiet time or deadline, never at the task end alone:
    /// a message the task end overtook may still be on its way.
    fn complete(&self) -> bool {
        self.task_ended && self.end_of_message
    }
}

/// Reads a 200 JSON answer as far as the step needs; anything else becomes a classified
/// failure (with the envelope, when there is one, kept for checks).
pub(super) fn decode_answer(
    ex: &Exchange,
    version: Version,
    trees: bool,
) -> Result<Body, (Option<Value>, Failure)> {
    if ex.status != 200 {
        return Err((serde_json::from_slice(&ex.body).ok(), protocol_failure(ex)));
    }
    Body::parse(&ex.body, version, trees).map_err(|e| (None, Failure::Decode { message: e.0 }))
}

pub(super) fn protocol_failure(ex: &Exchange) -> Failure {
    match serde_json::from_slice::<ErrorEnvelope>(&ex.body) {
        Ok(env) => Failure::Protocol {
            status: ex.status,
            code: env.errors.first().map(|e| e.code),
            message: env.first_msg().unwrap_or("").to_string(),
        },
        Err(_) => Failure::Protocol {
            status: ex.status,
            code: None,
            message: format!(
                "unexpected answer: {}",
                short(&String::from_utf8_lossy(&ex.body))
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32, last: bool) -> Value {
        serde_json::json!({"data": [{"type": "text", "val": format!("m{n}"),
            "createdOn": format!("2026-12-01T00:00:00.{n:03}Z"), "messageId": format!("ms-{n}"),
            "endOfMessage": last.then_some(true)}], "_v": "v2"})
    }

    #[test]
    fn reordering_is_judged_by_what_the_bot_sent_not_by_arrival() {
        let mut order = DeliveryOrder::default();
        let arrived: Vec<Seen> = [2, 1, 4, 3, 5]
            .into_iter()
            .map(|n| order.see(&message(n, n == 5)))
            .collect();
        use Seen::{InOrder as I, OutOfOrder as O};
        assert_eq!(arrived, [I, O, I, O, I]);
        assert_eq!(order.see(&message(4, false)), Seen::Duplicate);
        assert_eq!(order.messages, 5);
        assert!(!order.complete(), "no task end yet");
    }

    #[test]
    fn a_task_end_that_overtakes_the_last_message_does_not_complete_the_turn() {
        let end = serde_json::json!({"data": [], "endOfTask": true, "endReason": "Fulfilled"});
        let mut order = DeliveryOrder::default();
        assert_eq!(order.see(&message(1, false)), Seen::InOrder);
        assert_eq!(order.see(&end), Seen::InOrder);
        assert!(!order.complete(), "the last message is still on its way");
        assert_eq!(order.see(&message(2, true)), Seen::OutOfOrder);
        assert!(order.complete());
        assert_eq!(order.see(&end), Seen::Duplicate);
    }
}
