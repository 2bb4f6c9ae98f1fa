//! The judging function of every client check, on what the recorder saw.

use super::recorder::*;
use super::*;

/// Everything a client check judges.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The plan.
    pub plan: Plan,
    /// Every request, in arrival order.
    pub recs: Vec<Rec>,
    /// Every delivery to POST_URL.
    pub deliveries: Vec<Delivered>,
    /// For each step, the request that performed it.
    pub performed: Vec<Option<u64>>,
    /// pollIds that never complete (the plan's give-up step).
    pub held: Vec<String>,
}

/// The app's client id, for CL-AUTH-02.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The client id.
    pub client_id: String,
}

impl Recording {
    pub(super) fn channel(&self) -> impl Iterator<Item = &Rec> {
        self.recs.iter().filter(|r| r.kind != Kind::Other)
    }

    pub(super) fn messages(&self) -> impl Iterator<Item = &Rec> {
        self.recs
            .iter()
            .filter(|r| matches!(r.kind, Kind::V1 | Kind::V2))
    }

    /// The plan's user: the `from.id` of the first performed step.
    pub(super) fn user(&self) -> Option<&str> {
        self.performed
            .iter()
            .flatten()
            .find_map(|&n| self.recs[n as usize].from.as_deref())
    }

    /// The polls of the plan's user, by the token's user or (polls have no body) by order.
    pub(super) fn polls(&self) -> Vec<&Rec> {
        let user = self.user();
        self.recs
            .iter()
            .filter(|r| matches!(r.kind, Kind::Poll(_)))
            .filter(|r| {
                let sub = r.auth.as_ref().and_then(|t| {
                    t.claims
                        .get("userIdentity")
                        .or_else(|| t.claims.get("sub"))
                        .and_then(Value::as_str)
                });
                sub.is_none() || user.is_none() || sub == user
            })
            .collect()
    }

    /// The pollIds the channel issued, with the instant of the answer that issued each.
    pub(super) fn issued(&self) -> Vec<(String, Instant)> {
        self.recs
            .iter()
            .filter(|r| r.status == Some(200) && r.injected.is_none())
            .filter_map(|r| {
                let id = r.response.as_ref()?.get("pollId")?.as_str()?;
                let in_progress = r.response.as_ref()?.get("status").and_then(Value::as_str)
                    == Some("Inprogress");
                (!in_progress).then(|| (id.to_string(), r.end.unwrap_or(r.at)))
            })
            .collect()
    }

    /// Evidence: every delivery to the client's POST_URL, with the receiver's answer.
    pub fn delivery_evidence(&self) -> Vec<Exchange> {
        self.deliveries
            .iter()
            .map(|d| Exchange {
                method: "POST (delivered to your POST_URL)".into(),
                url: String::new(),
                request_headers: Vec::new(),
                request_body: Some(cut(&d.body.to_string())),
                status: d.status,
                response_headers: Vec::new(),
                response_body: None,
                elapsed_ms: d.elapsed.as_secs_f64() * 1e3,
                error: d
                    .status
                    .is_none()
                    .then(|| "the receiver could not be reached".into()),
            })
            .collect()
    }

    /// Evidence: these requests as exchanges (tokens described, never copied).
    pub fn evidence(&self, ns: &[u64]) -> Vec<Exchange> {
        ns.iter()
            .filter_map(|&n| self.recs.get(n as usize))
            .map(|r| Exchange {
                method: r.method.clone(),
                url: r.path.clone(),
                request_headers: r
                    .auth
                    .iter()
                    .map(|t| {
                        let names: Vec<&str> = t.claims.keys().map(String::as_str).collect();
                        (
                            "authorization".to_string(),
                            format!(
                                "{} <token {} redacted: alg {}, claims {}>",
                                if t.bearer { "bearer" } else { "(not bearer)" },
                                t.fingerprint,
                                t.alg.as_deref().unwrap_or("?"),
                                names.join(", ")
                            ),
                        )
                    })
                    .chain(
                        r.content_type
                            .iter()
                            .map(|c| ("content-type".to_string(), c.clone())),
                    )
                    .collect(),
                request_body: r.body.as_ref().map(|b| cut(&b.to_string())).or_else(|| {
                    (!r.form.is_empty()).then(|| {
                        let fields: Vec<String> =
                            r.form.iter().map(|(n, v)| format!("{n}={v}")).collect();
                        format!("multipart: {}", fields.join(", "))
                    })
                }),
                status: r.status,
                response_headers: Vec::new(),
                response_body: r.response.as_ref().map(|b| cut(&b.to_string())),
                elapsed_ms: r
                    .end
                    .map_or(0.0, |e| e.duration_since(r.at).as_secs_f64() * 1e3),
                error: r
                    .injected
                    .map(|s| format!("injected {s} (the plan's condition)"))
                    .or_else(|| {
                        r.unexpected
                            .clone()
                            .map(|c| format!("not a step of the plan; {c}"))
                    }),
            })
            .collect()
    }
}

pub(super) fn cut(s: &str) -> String {
    if s.len() <= 4096 {
        return s.to_string();
    }
    let mut end = 4096;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A client check's judgement: the result and the requests it rests on.
pub type Judgement = (Judged, Vec<u64>);

/// The judge of a client check.
pub fn judge(id: &str, rec: &Recording, expect: &Expect) -> Option<Judgement> {
    let j = match id {
        "CL-PLAN-01" => plan_followed(rec),
        "CL-AUTH-01" => each(rec.channel(), |r| {
            let alg = r.auth.as_ref().and_then(|t| t.alg.as_deref());
            match alg {
                Some("HS256" | "HS512" | "RS256" | "RS512") => Ok(()),
                other => Err(miss(
                    r,
                    "token alg",
                    "HS256, HS512, RS256 or RS512",
                    other.unwrap_or("no token"),
                )),
            }
        }),
        "CL-AUTH-02" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let c = &r.auth.as_ref().expect("filtered").claims;
            let app = c
                .get("appId")
                .or_else(|| c.get("iss"))
                .and_then(Value::as_str);
            if app == Some(expect.client_id.as_str()) {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "token appId/iss",
                    expect.client_id.clone(),
                    app.unwrap_or("absent"),
                ))
            }
        }),
        "CL-AUTH-03" => each(rec.messages().filter(|r| r.kind == Kind::V2), |r| {
            let c = r.auth.as_ref().map(|t| &t.claims);
            for claim in ["sub", "userIdentity"] {
                let v = c.and_then(|c| c.get(claim)).and_then(Value::as_str);
                if v.is_some() && v != r.from.as_deref() {
                    return Err(miss(
                        r,
                        &format!("token {claim}"),
                        format!("from.id {:?}", r.from.as_deref().unwrap_or("")),
                        v.unwrap_or_default(),
                    ));
                }
            }
            Ok(())
        }),
        "CL-AUTH-04" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let c = &r.auth.as_ref().expect("filtered").claims;
            let iat = c.get("iat").and_then(Value::as_f64);
            match (c.get("exp").and_then(Value::as_f64), iat) {
                (Some(exp), Some(iat)) if exp - iat <= 86_400.0 => Ok(()),
                (Some(exp), None) if exp - r.unix <= 86_400.0 => Ok(()),
                (exp, iat) => Err(miss(
                    r,
                    "token exp",
                    "present, at most 24 h after iat",
                    format!("exp {exp:?}, iat {iat:?}"),
                )),
            }
        }),
        "CL-AUTH-05" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let exp = r
                .auth
                .as_ref()
                .and_then(|t| t.claims.get("exp"))
                .and_then(Value::as_f64);
            match exp {
                Some(e) if e + 5.0 < r.unix => Err(miss(
                    r,
                    "token exp",
                    format!("after the request ({:.0})", r.unix),
                    format!("{e:.0}"),
                )),
                _ => Ok(()),
            }
        }),
        "CL-AUTH-06" => each(rec.channel(), |r| match &r.auth {
            Some(t) if t.bearer => Ok(()),
            Some(_) => Err(miss(r, "authorization", "bearer <token>", "another scheme")),
            None => Err(miss(r, "authorization", "bearer <token>", "absent")),
        }),
        "CL-AUTH-07" => retried(rec, Inject::ExpiredToken, |first, again| {
            let (a, b) = (first.auth.as_ref(), again.auth.as_ref());
            if a.map(|t| &t.fingerprint) == b.map(|t| &t.fingerprint) {
                return Err(miss(
                    again,
                    "authorization",
                    "a new token after the 401",
                    "the refused token again",
                ));
            }
            Ok(())
        }),
        "CL-BODY-01" => each(rec.messages().filter(|r| r.kind == Kind::V1), |r| {
            let b = r.body.as_ref();
            let text = b
                .and_then(|b| b.pointer("/message/text"))
                .is_some_and(Value::is_string);
            let from = b
                .and_then(|b| b.pointer("/from/id"))
                .is_some_and(Value::is_string);
            if text && from {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "body",
                    "message.text and from.id strings",
                    r.body
                        .as_ref()
                        .map_or("not JSON".into(), |b| cut(&b.to_string())),
                ))
            }
        }),
        "CL-BODY-02" => each(rec.messages().filter(|r| r.kind == Kind::V2), |r| {
            let decoded = r.body.as_ref().and_then(|b| {
                serde_json::from_value::<crate::protocol::v2::Request>(b.clone()).ok()
            });
            match decoded.map(|d| d.input().map(|_| ())) {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(miss(r, "message", "a valid V2 message", e.to_string())),
                None => Err(miss(
                    r,
                    "body",
                    "a V2 request (message, from.id)",
                    r.body
                        .as_ref()
                        .map_or("not JSON".into(), |b| cut(&b.to_string())),
                )),
            }
        }),
        "CL-BODY-03" => {
            let user = rec.user().map(str::to_string);
            let performed: Vec<&Rec> = rec
                .performed
                .iter()
                .flatten()
                .map(|&n| &rec.recs[n as usize])
                .filter(|r| matches!(r.kind, Kind::V1 | Kind::V2))
                .collect();
            each(performed.into_iter(), |r| {
                if r.from == user {
                    Ok(())
                } else {
                    Err(miss(
                        r,
                        "from.id",
                        format!(
                            "{:?} (the plan's first step)",
                            user.as_deref().unwrap_or("")
                        ),
                        r.from.clone().unwrap_or_default(),
                    ))
                }
            })
        }
        "CL-BODY-04" => each(rec.messages(), |r| {
            let ct = r
                .content_type
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if ct.starts_with("application/json") {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "content-type",
                    "application/json",
                    r.content_type.clone().unwrap_or_else(|| "absent".into()),
                ))
            }
        }),
        "CL-POLL-01" => one_in_flight(rec),
        "CL-POLL-02" => poll_rate(rec),
        "CL-POLL-03" => no_reuse(rec),
        "CL-POLL-04" => chained(rec),
        "CL-POLL-05" => waited_out(rec),
        "CL-POLL-06" => {
            let issued: Vec<String> = rec.issued().into_iter().map(|(id, _)| id).collect();
            each(rec.polls().into_iter(), |r| match &r.kind {
                Kind::Poll(id) if issued.contains(id) => Ok(()),
                Kind::Poll(id) => Err(miss(r, "pollId", "one the channel issued", id.clone())),
                _ => Ok(()),
            })
        }
        "CL-POLL-07" => prompt(rec),
        "CL-POLL-08" => gave_up(rec),
        "CL-ERR-01" => retried(rec, Inject::TooManyRequests, paused),
        "CL-ERR-02" => retried(rec, Inject::Unavailable, paused),
        "CL-ERR-03" => retried(rec, Inject::TimedOut, paused),
        "CL-ASYNC-01" => deliveries(rec, |d| {
            let ok = d.status.is_some_and(|s| (200..300).contains(&s))
                && d.elapsed <= Duration::from_secs(2);
            ok.then_some(())
                .ok_or_else(|| format!("status {:?} after {} ms", d.status, d.elapsed.as_millis()))
        }),
        "CL-UP-01" => each(
            rec.recs.iter().filter(|r| matches!(r.kind, Kind::Chunk(_))),
            |r| match r.part_len {
                Some(n) if n <= 2 * 1024 * 1024 => Ok(()),
                other => Err(miss(
                    r,
                    "chunk",
                    "at most 2 MiB",
                    other.map_or("no chunk part".into(), |n| format!("{n} bytes")),
                )),
            },
        ),
        "CL-UP-02" | "CL-UP-03" | "CL-UP-04" => super::judges_poll::upload(id, rec),
        "CL-ASYNC-02" => duplicates(rec),
        "CL-ASYNC-04" => duplicates(rec),
        "CL-ASYNC-03" => {
            let steps = rec.plan.steps.len();
            let done = rec.performed.iter().filter(|p| p.is_some()).count();
            let j = if steps > 1 && done == steps {
                Ok(())
            } else {
                Err(general(
                    "steps",
                    format!("all {steps} steps after the duplicated deliveries"),
                    format!("{done} performed"),
                ))
            };
            (j, rec.performed.iter().flatten().copied().collect())
        }
        _ => return None,
    };
    Some(j)
}

/// Judges every request of `rs`; fails on the first that breaks the rule.
pub(super) fn each<'a>(
    rs: impl Iterator<Item = &'a Rec>,
    rule: impl Fn(&Rec) -> Judged,
) -> Judgement {
    let mut seen = Vec::new();
    for r in rs {
        seen.push(r.n);
        if let Err(m) = rule(r) {
            return (Err(m), vec![r.n]);
        }
    }
    if seen.is_empty() {
        return (
            Err(general("requests", "at least one request to judge", "none")),
            seen,
        );
    }
    seen.truncate(20);
    (Ok(()), seen)
}

pub(super) fn plan_followed(rec: &Recording) -> Judgement {
    let unexpected: Vec<u64> = rec
        .recs
        .iter()
        .filter(|r| r.unexpected.is_some())
        .map(|r| r.n)
        .collect();
    for (i, step) in rec.plan.steps.iter().enumerate() {
        if rec.performed[i].is_none() && !step.optional {
            let near = unexpected.first().map(|&n| &rec.recs[n as usize]);
            let actual = match near {
                Some(r) => format!(
                    "never performed; the client sent {:?} to {} instead ({})",
                    r.said.as_deref().unwrap_or(""),
                    r.path,
                    r.unexpected.as_deref().unwrap_or("")
                ),
                None => "never performed".to_string(),
            };
            return (
                Err(general(
                    &format!("step {}", step.n),
                    step.describe(),
                    actual,
                )),
                unexpected.into_iter().take(5).collect(),
            );
        }
    }
    (Ok(()), rec.performed.iter().flatten().copied().collect())
}

/// The tries of the step where `inject` was injected: the refused one and those after it.
pub(super) fn retried(
    rec: &Recording,
    inject: Inject,
    rule: impl Fn(&Rec, &Rec) -> Judged,
) -> Judgement {
    let Some(i) = rec.plan.steps.iter().position(|s| s.inject == Some(inject)) else {
        return (
            Err(Miss::Skipped("the plan has no such step".into())),
            Vec::new(),
        );
    };
    let tries: Vec<&Rec> = rec.recs.iter().filter(|r| r.step == Some(i)).collect();
    let ns: Vec<u64> = tries.iter().map(|r| r.n).collect();
    let Some(first) = tries.iter().find(|r| r.injected.is_some()) else {
        return (
            Err(general(
                &format!("step {}", i + 1),
                "the step, refused once as planned",
                "never sent",
            )),
            ns,
        );
    };
    let Some(again) = tries.iter().find(|r| r.n > first.n) else {
        return (
            Err(miss(
                first,
                "retry",
                format!("the step sent again after the {}", inject.status()),
                "no retry",
            )),
            ns,
        );
    };
    if tries.len() > 3 {
        return (
            Err(miss(
                tries[3],
                "tries",
                "at most 3",
                tries.len().to_string(),
            )),
            ns,
        );
    }
    (rule(first, again), ns)
}

pub(super) fn paused(first: &Rec, again: &Rec) -> Judged {
    let gap = again.at.duration_since(first.end.unwrap_or(first.at));
    if gap >= Duration::from_millis(200) {
        return Ok(());
    }
    Err(miss(
        again,
        "pause before the retry",
        "at least 200 ms",
        format!("{} ms", gap.as_millis()),
    ))
}
