//! Client checks on polling, retries, uploads and the async receiver.

use super::recorder::{general, miss};
use super::*;

pub(super) fn one_in_flight(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    for w in polls.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.end.is_none_or(|end| b.at < end) {
            return (
                Err(miss(
                    b,
                    "poll",
                    "sent after the previous poll's answer",
                    "sent while another poll was outstanding",
                )),
                vec![a.n, b.n],
            );
        }
    }
    held_for(&polls)
}

pub(super) fn poll_rate(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    for (i, p) in polls.iter().enumerate() {
        let within: Vec<&&Rec> = polls[i..]
            .iter()
            .take_while(|q| q.at.duration_since(p.at) < Duration::from_secs(1))
            .collect();
        if within.len() > 20 {
            return (
                Err(miss(
                    within[20],
                    "polls in one second",
                    "at most 20",
                    format!("{} or more", within.len()),
                )),
                within.iter().take(21).map(|r| r.n).collect(),
            );
        }
    }
    held_for(&polls)
}

/// The end of a poll check that found nothing wrong: it passes on the plan's polls, and
/// fails when there were none to judge.
fn held_for(polls: &[&Rec]) -> Judgement {
    if polls.is_empty() {
        return (
            Err(general(
                "polls",
                "the polls of the plan's polled steps",
                "none",
            )),
            Vec::new(),
        );
    }
    (Ok(()), polls.iter().map(|r| r.n).take(20).collect())
}

/// Answers that consume a pollId: its batch (no `Inprogress`) or `No data found`.
pub(super) fn consumed(r: &Rec) -> bool {
    match r.status {
        Some(200) => {
            r.response
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                != Some("Inprogress")
        }
        Some(400) => true,
        _ => false,
    }
}

pub(super) fn no_reuse(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let mut done: Vec<(&str, u64)> = Vec::new();
    for r in &polls {
        let Kind::Poll(id) = &r.kind else { continue };
        if let Some((_, by)) = done.iter().find(|(d, _)| *d == id.as_str()) {
            return (
                Err(miss(
                    r,
                    "pollId",
                    "not one already consumed",
                    format!("{id}, consumed by request #{}", by + 1),
                )),
                vec![*by, r.n],
            );
        }
        if consumed(r) {
            done.push((id.as_str(), r.n));
        }
    }
    held_for(&polls)
}

pub(super) fn chained(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    // pollIds issued by a poll answer (the chain), each must be polled later.
    let mut chain = Vec::new();
    for r in &polls {
        if let Some(next) = r
            .response
            .as_ref()
            .and_then(|b| b.get("pollId"))
            .and_then(Value::as_str)
        {
            if consumed(r) {
                chain.push((next.to_string(), *r));
            }
        }
    }
    if chain.is_empty() {
        return (
            Err(general(
                "pollId",
                "a chained pollId (the plan's `statement` step)",
                "no poll answer carried one",
            )),
            polls.iter().map(|r| r.n).take(20).collect(),
        );
    }
    for (id, by) in &chain {
        let followed = polls
            .iter()
            .any(|r| r.n > by.n && r.kind == Kind::Poll(id.clone()));
        if !followed {
            return (
                Err(miss(
                    by,
                    "pollId",
                    format!("{id} polled next"),
                    "never polled",
                )),
                vec![by.n],
            );
        }
    }
    (Ok(()), chain.iter().map(|(_, r)| r.n).collect())
}

pub(super) fn waited_out(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let in_progress: Vec<&&Rec> = polls
        .iter()
        .filter(|r| {
            r.response
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                == Some("Inprogress")
        })
        .collect();
    if in_progress.is_empty() {
        return (
            Err(general(
                "polls",
                "at least one `Inprogress` answer (the plan's `savings` step)",
                "none: the client polled only after the node finished",
            )),
            polls.iter().map(|r| r.n).take(20).collect(),
        );
    }
    for r in &in_progress {
        let Kind::Poll(id) = &r.kind else { continue };
        if rec.held.contains(id) {
            // The give-up step's pollId never completes (CL-POLL-08 judges it).
            continue;
        }
        let delivered = polls.iter().any(|q| {
            q.n > r.n && q.kind == Kind::Poll(id.clone()) && q.status == Some(200) && consumed(q)
        });
        if !delivered {
            return (
                Err(miss(
                    r,
                    "pollId",
                    format!("{id} polled until its batch came"),
                    "given up after Inprogress",
                )),
                vec![r.n],
            );
        }
    }
    (Ok(()), in_progress.iter().map(|r| r.n).take(20).collect())
}

pub(super) fn prompt(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let issued = rec.issued();
    if issued.is_empty() {
        return (
            Err(general(
                "pollId",
                "pollIds issued by the plan's polled steps",
                "none",
            )),
            Vec::new(),
        );
    }
    for (id, at) in &issued {
        let first = polls
            .iter()
            .find(|r| r.kind == Kind::Poll(id.clone()) && r.at >= *at);
        match first {
            Some(r) if r.at.duration_since(*at) <= Duration::from_secs(5) => {}
            Some(r) => {
                return (
                    Err(miss(
                        r,
                        "first poll",
                        format!("within 5 s of {id}'s issue"),
                        format!("{} ms", r.at.duration_since(*at).as_millis()),
                    )),
                    vec![r.n],
                )
            }
            None => {
                return (
                    Err(general("pollId", format!("{id} polled"), "never polled")),
                    Vec::new(),
                )
            }
        }
    }
    (Ok(()), polls.iter().map(|r| r.n).take(20).collect())
}

pub(super) fn deliveries(
    rec: &Recording,
    rule: impl Fn(&Delivered) -> Result<(), String>,
) -> Judgement {
    if rec.deliveries.is_empty() {
        return (
            Err(general(
                "deliveries",
                "deliveries to POST_URL (the plan's async steps)",
                "none",
            )),
            Vec::new(),
        );
    }
    for (i, d) in rec.deliveries.iter().enumerate() {
        if let Err(actual) = rule(d) {
            return (
                Err(general(
                    &format!("delivery {}", i + 1),
                    "2xx within 2 s",
                    actual,
                )),
                Vec::new(),
            );
        }
    }
    (Ok(()), Vec::new())
}

pub(super) fn duplicates(rec: &Recording) -> Judgement {
    let mut seen: Vec<(&Value, Option<u16>)> = Vec::new();
    let mut twice = 0;
    for d in &rec.deliveries {
        if let Some((_, first)) = seen.iter().find(|(b, _)| **b == d.body) {
            twice += 1;
            let ok = |s: Option<u16>| s.is_some_and(|s| (200..300).contains(&s));
            if !ok(*first) || !ok(d.status) {
                return (
                    Err(general(
                        "duplicate delivery",
                        "2xx both times",
                        format!("{first:?} then {:?}", d.status),
                    )),
                    Vec::new(),
                );
            }
        } else {
            seen.push((&d.body, d.status));
        }
    }
    if twice == 0 {
        return (
            Err(general(
                "deliveries",
                "a duplicated delivery",
                "none was made (no async step performed?)",
            )),
            Vec::new(),
        );
    }
    (Ok(()), Vec::new())
}

fn field<'a>(r: &'a Rec, name: &str) -> Option<&'a str> {
    r.form
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// CL-UP-02..04 on the uploaded file (the last one merged, whether the merge was accepted):
/// its chunks, its merge, and the message naming it.
pub(super) fn upload(id: &str, rec: &Recording) -> Judgement {
    let Some(merge) = rec.recs.iter().rfind(|r| matches!(r.kind, Kind::Merge(_))) else {
        return (
            Err(general(
                "merge",
                "a merged upload (the plan's upload step)",
                "none",
            )),
            Vec::new(),
        );
    };
    let Kind::Merge(ft) = &merge.kind else {
        unreachable!("found a merge")
    };
    let chunks: Vec<&Rec> = rec
        .recs
        .iter()
        .filter(|r| r.kind == Kind::Chunk(ft.clone()))
        .collect();
    let mut ns: Vec<u64> = chunks.iter().map(|r| r.n).take(20).collect();
    ns.push(merge.n);
    let judged = match id {
        "CL-UP-02" => {
            if chunks.is_empty() {
                return (
                    Err(miss(
                        merge,
                        "chunks",
                        "the file's chunks before its merge",
                        "none",
                    )),
                    ns,
                );
            }
            chunks.iter().enumerate().try_for_each(|(i, r)| {
                let no = field(r, "chunkNo");
                if no != Some(i.to_string().as_str()) {
                    return Err(miss(r, "chunkNo", i.to_string(), no.unwrap_or("absent")));
                }
                let token = field(r, "fileToken").or_else(|| field(r, "messageToken"));
                if token != Some(ft.as_str()) {
                    return Err(miss(
                        r,
                        "fileToken",
                        format!("{ft} (the URL's)"),
                        token.unwrap_or("absent"),
                    ));
                }
                Ok(())
            })
        }
        "CL-UP-03" => {
            let total = field(merge, "totalChunks");
            if let Some(late) = chunks.iter().find(|r| r.n > merge.n) {
                Err(miss(late, "chunk", "before the merge", "after it"))
            } else if total != Some(chunks.len().to_string().as_str()) {
                Err(miss(
                    merge,
                    "totalChunks",
                    chunks.len().to_string(),
                    total.unwrap_or("absent"),
                ))
            } else {
                Ok(())
            }
        }
        _ => {
            let file_id = merge
                .response
                .as_ref()
                .and_then(|b| b.get("fileId"))
                .and_then(Value::as_str);
            let Some(message) = rec
                .recs
                .iter()
                .find(|r| r.n > merge.n && r.kind == Kind::V2)
            else {
                return (
                    Err(general(
                        "message",
                        "a message naming the uploaded file",
                        "none after the merge",
                    )),
                    ns,
                );
            };
            ns.push(message.n);
            let body = message.body.as_ref();
            let attachments = body
                .and_then(|b| {
                    b.pointer("/message/attachments")
                        .or_else(|| b.get("attachments"))
                })
                .and_then(Value::as_array);
            let named = attachments.is_some_and(|a| {
                a.iter()
                    .any(|x| x.get("fileId").and_then(Value::as_str) == file_id)
            });
            let text = body
                .and_then(|b| b.pointer("/message/val"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !named {
                Err(miss(
                    message,
                    "attachments[].fileId",
                    file_id.unwrap_or("the merged fileId"),
                    attachments.map_or("absent".into(), |a| Value::Array(a.clone()).to_string()),
                ))
            } else if text.trim().is_empty() {
                Err(miss(message, "message.val", "a non-empty text", "empty"))
            } else {
                Ok(())
            }
        }
    };
    (judged, ns)
}

/// How long a client may keep polling a pollId that never completes (CL-POLL-08).
pub const GIVE_UP_WITHIN: Duration = Duration::from_secs(20);

pub(super) fn gave_up(rec: &Recording) -> Judgement {
    let Some(id) = rec.held.first() else {
        return (
            Err(general(
                "pollId",
                "the give-up step's pollId (the plan's last step)",
                "never issued: the step was not performed",
            )),
            Vec::new(),
        );
    };
    let issued = rec.recs.iter().find(|r| {
        r.kind == Kind::V2
            && r.response
                .as_ref()
                .and_then(|b| b.get("pollId"))
                .and_then(Value::as_str)
                == Some(id.as_str())
    });
    let Some(issued) = issued else {
        return (
            Err(general(
                "pollId",
                "the answer that issued it",
                "not recorded",
            )),
            Vec::new(),
        );
    };
    let since = issued.end.unwrap_or(issued.at);
    let polls: Vec<&Rec> = rec
        .recs
        .iter()
        .filter(|r| r.kind == Kind::Poll(id.clone()))
        .collect();
    let mut ns = vec![issued.n];
    ns.extend(polls.iter().rev().take(5).map(|r| r.n));
    match polls.last() {
        Some(last) if last.at.duration_since(since) > GIVE_UP_WITHIN => (
            Err(miss(
                last,
                "last poll",
                format!("within {} s of the pollId", GIVE_UP_WITHIN.as_secs()),
                format!(
                    "{:.1} s after it",
                    last.at.duration_since(since).as_secs_f64()
                ),
            )),
            ns,
        ),
        _ => (Ok(()), ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u64, at: Instant, kind: Kind, response: Option<Value>) -> Rec {
        Rec {
            n,
            at,
            unix: 0.0,
            end: Some(at),
            method: "GET".into(),
            path: String::new(),
            kind,
            auth: None,
            content_type: None,
            body: None,
            form: Vec::new(),
            part_len: None,
            from: None,
            said: None,
            step: None,
            injected: None,
            status: Some(200),
            response,
            unexpected: None,
        }
    }

    fn recording(last_poll_after: Duration) -> Recording {
        let t0 = Instant::now();
        let held = "ab".repeat(16);
        let recs = vec![
            rec(
                0,
                t0,
                Kind::V2,
                Some(serde_json::json!({"pollId": held, "data": []})),
            ),
            rec(
                1,
                t0 + Duration::from_secs(1),
                Kind::Poll(held.clone()),
                None,
            ),
            rec(2, t0 + last_poll_after, Kind::Poll(held.clone()), None),
        ];
        Recording {
            plan: Plan {
                profile: Profile::V2Poll,
                how: String::new(),
                steps: Vec::new(),
            },
            recs,
            deliveries: Vec::new(),
            performed: Vec::new(),
            held: vec![held],
        }
    }

    #[test]
    fn polling_a_never_completing_poll_id_past_the_window_is_judged() {
        assert!(gave_up(&recording(Duration::from_secs(12))).0.is_ok());
        let (j, ns) = gave_up(&recording(Duration::from_secs(25)));
        match j {
            Err(Miss::Failed(m)) => {
                assert_eq!(m.field, "last poll");
                assert!(m.actual.starts_with("25.0 s"), "{m:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(ns.contains(&2));
    }
}
