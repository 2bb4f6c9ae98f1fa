//! Evaluates checks against a turn's reply. Each outcome is a value with what was expected and
//! what was seen.

use serde_json::Value;

use super::reply::Reply;
use super::results::AssertionResult;
use crate::common::duration::format_duration;
use crate::protocol::template;
use crate::scenario::{Check, CheckKind, PathTest, TextTest, Which};

/// Variable lookup for templated expectations.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

fn render(t: &crate::scenario::template::Template, vars: Vars<'_>) -> String {
    let mut out = String::new();
    // Templates are small; render by collecting owned values.
    let parts: Vec<(String, Option<String>)> = t.vars().map(|v| (v.to_string(), vars(v))).collect();
    let rendered = t.render(|name| {
        parts
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    });
    out.push_str(&rendered);
    out
}

/// Renders `{{var}}` in every string of a JSON value.
pub fn render_json(v: &Value, vars: Vars<'_>) -> Value {
    match v {
        Value::String(s) if s.contains("{{") => match crate::scenario::template::Template::parse(s)
        {
            Ok(t) => Value::String(render(&t, vars)),
            Err(_) => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_json(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Equal as JSON, or equal as text (`250` matches `"250"`, as YAML authors expect).
fn loose_eq(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    a == b || text(a) == text(b)
}

fn quote_list(texts: &[String]) -> String {
    if texts.is_empty() {
        "no messages".into()
    } else {
        format!("{texts:?}")
    }
}

/// Evaluates one check.
pub fn evaluate(check: &Check, reply: &Reply, vars: Vars<'_>) -> AssertionResult {
    let (held, expected, actual) = test(&check.kind, reply, vars);
    let passed = held != check.negate;
    let expected = if check.negate {
        format!("not {expected}")
    } else {
        expected
    };
    AssertionResult {
        check: check.label.clone(),
        line: check.pos.line,
        passed,
        expected,
        actual,
    }
}

/// Whether a check holds, without writing what was expected and found: the load engine's
/// path, which explains only failures (see [`evaluate_brief`]). The common checks are decided
/// here directly; the rest by the same test [`evaluate`] runs.
pub fn holds(check: &Check, reply: &Reply, vars: Vars<'_>) -> bool {
    let held = match &check.kind {
        CheckKind::Status(codes) => status_holds(codes, reply),
        CheckKind::Messages(c) => c.holds(reply.message_count),
        CheckKind::EndOfTask {
            ended,
            reason,
            task,
        } => task_holds(*ended, reason.as_deref(), task.as_deref(), reply),
        CheckKind::Latency(limit) => reply.latency < *limit,
        other => test(other, reply, vars).0,
    };
    held != check.negate
}

/// [`evaluate`] for a check that held is only its name and verdict; a failed one is
/// explained in full.
pub fn evaluate_brief(check: &Check, reply: &Reply, vars: Vars<'_>) -> AssertionResult {
    if !holds(check, reply, vars) {
        return evaluate(check, reply, vars);
    }
    AssertionResult {
        check: check.label.clone(),
        line: check.pos.line,
        passed: true,
        expected: String::new(),
        actual: String::new(),
    }
}

fn status_holds(codes: &[u16], reply: &Reply) -> bool {
    reply.status.is_some_and(|s| codes.contains(&s))
}

fn task_holds(ended: bool, reason: Option<&str>, task: Option<&str>, reply: &Reply) -> bool {
    match &reply.task_end {
        Some(t) => {
            ended
                && reason.is_none_or(|r| r.eq_ignore_ascii_case(&t.reason))
                && task.is_none_or(|n| n == t.task_name)
        }
        None => !ended,
    }
}

fn test(kind: &CheckKind, reply: &Reply, vars: Vars<'_>) -> (bool, String, String) {
    match kind {
        CheckKind::Status(codes) => {
            let expected = codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            match reply.status {
                Some(s) => (status_holds(codes, reply), expected, s.to_string()),
                None => (false, expected, "no response".into()),
            }
        }
        CheckKind::Schema(schema) => {
            for (i, body) in reply.bodies.iter().enumerate() {
                if let Some(err) = schema.validator.iter_errors(body).next() {
                    // The instance path is empty for the body itself: name it.
                    let path = err.instance_path().to_string();
                    let at = if path.is_empty() {
                        "the top level"
                    } else {
                        &path
                    };
                    return (
                        false,
                        format!("every body valid against {}", schema.name),
                        format!("body {i}: {err} at {at}"),
                    );
                }
            }
            (
                true,
                format!("every body valid against {}", schema.name),
                format!("{} valid bodies", reply.bodies.len()),
            )
        }
        CheckKind::Text(which, t) => {
            let matches = |s: &str| match t {
                TextTest::Contains(x) => s.contains(&render(x, vars)),
                TextTest::Equals(x) => s == render(x, vars),
                TextTest::Matches(r) => r.is_match(s),
                TextTest::AnyOf(list) => list.iter().any(|x| s == render(x, vars)),
            };
            let expected = match t {
                TextTest::Contains(x) => format!("a message containing {:?}", render(x, vars)),
                TextTest::Equals(x) => format!("a message equal to {:?}", render(x, vars)),
                TextTest::Matches(r) => format!("a message matching /{r}/"),
                TextTest::AnyOf(list) => format!(
                    "a message equal to one of {:?}",
                    list.iter().map(|x| render(x, vars)).collect::<Vec<_>>()
                ),
            };
            match which {
                Which::Any => (
                    reply.texts.iter().any(|s| matches(s)),
                    expected,
                    quote_list(&reply.texts),
                ),
                Which::All => (
                    !reply.texts.is_empty() && reply.texts.iter().all(|s| matches(s)),
                    format!("every message: {expected}"),
                    quote_list(&reply.texts),
                ),
                Which::Nth(n) => {
                    let len = reply.texts.len() as i64;
                    let idx = if *n < 0 { len + n } else { *n };
                    let got = (0..len)
                        .contains(&idx)
                        .then(|| reply.texts[idx as usize].clone());
                    match got {
                        Some(s) => (
                            matches(&s),
                            format!("message {n}: {expected}"),
                            format!("{s:?}"),
                        ),
                        None => (
                            false,
                            format!("message {n}: {expected}"),
                            format!("only {len} message(s)"),
                        ),
                    }
                }
            }
        }
        CheckKind::JsonPath { source, path, test } => {
            let nodes = path.query(&reply.merged).all();
            let first = nodes.first().copied();
            let shown = first
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into());
            match test {
                PathTest::Exists(want) => (
                    nodes.is_empty() != *want,
                    format!(
                        "{source} {}",
                        if *want { "to exist" } else { "to be absent" }
                    ),
                    shown,
                ),
                PathTest::Equals(x) => {
                    let want = render_json(x, vars);
                    let held = first.is_some_and(|v| loose_eq(v, &want));
                    (held, format!("{source} == {want}"), shown)
                }
                PathTest::Matches(r) => {
                    let text = first.map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    });
                    (
                        text.as_deref().is_some_and(|t| r.is_match(t)),
                        format!("{source} matching /{r}/"),
                        shown,
                    )
                }
                PathTest::Count(n) => (
                    nodes.len() == *n,
                    format!("{source} to match {n} node(s)"),
                    format!("{} node(s)", nodes.len()),
                ),
            }
        }
        CheckKind::Messages(c) => (
            c.holds(reply.message_count),
            format!("{c} message(s)"),
            reply.message_count.to_string(),
        ),
        CheckKind::Template {
            template_type,
            buttons,
        } => {
            let templates: Vec<Value> =
                reply.messages.iter().filter_map(template::decode).collect();
            let expected = format!(
                "a {} template{}",
                template_type.as_deref().unwrap_or("any"),
                buttons
                    .map(|b| format!(" with {b} button(s)"))
                    .unwrap_or_default()
            );
            let fits = |t: &Value| {
                let payload = t.get("payload").unwrap_or(t);
                let ty_ok = template_type.as_deref().is_none_or(|want| {
                    payload.get("template_type").and_then(Value::as_str) == Some(want)
                });
                let n = payload
                    .get("buttons")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .unwrap_or(0);
                ty_ok && buttons.is_none_or(|b| b.holds(n))
            };
            let actual = if templates.is_empty() {
                "no template messages".to_string()
            } else {
                templates
                    .iter()
                    .map(|t| {
                        let p = t.get("payload").unwrap_or(t);
                        format!(
                            "{} template with {} button(s)",
                            p.get("template_type")
                                .and_then(Value::as_str)
                                .unwrap_or("untyped"),
                            p.get("buttons")
                                .and_then(Value::as_array)
                                .map(Vec::len)
                                .unwrap_or(0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (templates.iter().any(fits), expected, actual)
        }
        CheckKind::EndOfTask {
            ended,
            reason,
            task,
        } => {
            let expected = if *ended {
                let mut s = "the task to end".to_string();
                if let Some(r) = reason {
                    s.push_str(&format!(" with reason {r:?}"));
                }
                if let Some(t) = task {
                    s.push_str(&format!(" as {t:?}"));
                }
                s
            } else {
                "no task end".to_string()
            };
            let actual = match &reply.task_end {
                Some(t) => format!("task {:?} ended {:?}", t.task_name, t.reason),
                None => "no task end".into(),
            };
            let held = task_holds(*ended, reason.as_deref(), task.as_deref(), reply);
            (held, expected, actual)
        }
        CheckKind::Latency(limit) => (
            reply.latency < *limit,
            format!("under {}", format_duration(*limit)),
            format!("{:.1} ms", reply.latency.as_secs_f64() * 1000.0),
        ),
        CheckKind::Poll {
            converged,
            max_polls,
            within,
        } => {
            let mut held = true;
            let mut want = Vec::new();
            if let Some(c) = converged {
                held &= reply.converged == *c;
                want.push(if *c {
                    "converged".to_string()
                } else {
                    "not converged".to_string()
                });
            }
            if let Some(m) = max_polls {
                held &= reply.polls <= *m;
                want.push(format!(
                    "at most {}",
                    crate::common::count(*m, "poll", "polls")
                ));
            }
            if let Some(w) = within {
                held &= reply.converged && reply.latency <= *w;
                want.push(format!("final message within {}", format_duration(*w)));
            }
            let actual = format!(
                "{}, {}, final after {:.1} ms",
                if reply.converged {
                    "converged"
                } else {
                    "not converged"
                },
                crate::common::count(reply.polls, "poll", "polls"),
                reply.latency.as_secs_f64() * 1000.0
            );
            (held, want.join(", "), actual)
        }
    }
}
