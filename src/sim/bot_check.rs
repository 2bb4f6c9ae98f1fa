//! The shape of a bot file, checked on its positioned YAML tree before it is read into the raw
//! structs: every unknown key (with a "did you mean"), missing key, wrong kind of value and
//! out-of-range value in the whole file is reported at once, each with its line, column and
//! YAML path. What passes here is then read by serde, which rarely has anything left to say.

use std::path::Path;

use crate::common::diag::{did_you_mean, Diag};
use crate::common::node::{At, Node};
use crate::common::Delay;

/// What a value must be.
#[derive(Debug)]
enum Shape {
    /// Anything (read and checked later).
    Any,
    /// A string (numbers and booleans read as text are fine too).
    Text,
    /// `true` or `false`.
    Bool,
    /// A whole number of at least 0.
    Count,
    /// A probability, 0 to 1.
    Rate,
    /// A duration with a unit (`250ms`).
    Duration,
    /// A duration or a delay distribution (`300ms..2s`, `exp(50ms)`).
    Delay,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A list of this.
    List(&'static Shape),
    /// A mapping with these keys (name, shape, required).
    Map(&'static [(&'static str, Shape, bool)]),
    /// A mapping with exactly one of these keys.
    OneKey(&'static [(&'static str, Shape)]),
}

use Shape::*;

const ALGORITHMS: &[&str] = &["HS256", "HS512", "RS256", "RS512"];

const APP: Shape = Map(&[
    ("client_id", Text, true),
    ("client_secret", Text, false),
    ("public_key", Text, false),
    ("public_key_file", Text, false),
    ("algorithms", List(&OneOf(ALGORITHMS)), false),
    ("require", List(&OneOf(&["exp", "iat", "jti"])), false),
    ("allow_anonymous", Bool, false),
    ("leeway", Duration, false),
    ("jwe", OneOf(&["off", "optional", "required"]), false),
]);

const FAULTS: Shape = Map(&[
    ("latency", Delay, false),
    (
        "errors",
        List(&Map(&[("status", Count, true), ("rate", Rate, true)])),
        false,
    ),
    ("drop_rate", Rate, false),
    ("malformed_rate", Rate, false),
    ("async_duplicate_rate", Rate, false),
    ("async_reorder_rate", Rate, false),
    ("async_delay", Delay, false),
    ("async_ack_delay", Delay, false),
    ("poll_redeliver", Bool, false),
    ("bare_errors", Bool, false),
    ("poll_one_batch", Bool, false),
]);

const INSTANCE: Shape = Map(&[
    ("id", Text, true),
    ("mode", OneOf(&["sync", "async"]), false),
    ("polling", Bool, false),
    ("post_url", Any, false),
    ("sync_timeout", Duration, false),
    (
        "rate_limit",
        Map(&[
            ("requests", Count, true),
            ("per", Duration, true),
            ("burst", Count, false),
        ]),
        false,
    ),
    ("enabled", Bool, false),
    (
        "delivery",
        Map(&[
            ("attempts", Count, false),
            ("backoff", Duration, false),
            ("max_backoff", Duration, false),
            ("timeout", Duration, false),
        ]),
        false,
    ),
    ("faults", FAULTS, false),
    ("proactive_notifications", Bool, false),
]);

const TEMPLATES: &[&str] = &["object", "string", "escaped"];

const SETTINGS: Shape = Map(&[
    ("session_idle", Duration, false),
    ("poll_ttl", Duration, false),
    ("connection_idle", Duration, false),
    ("max_file_bytes", Count, false),
    ("max_chunk_bytes", Count, false),
    ("v1_templates", OneOf(TEMPLATES), false),
    ("v2_templates", OneOf(TEMPLATES), false),
]);

const STEP: Shape = OneKey(&[
    ("say", Any),
    ("ask", Map(&[("prompt", Text, true), ("slot", Text, true)])),
    (
        "form",
        Map(&[
            ("name", Text, true),
            ("prompt", Text, true),
            (
                "fields",
                List(&Map(&[
                    ("key", Text, true),
                    ("label", Text, false),
                    ("type", Text, false),
                ])),
                true,
            ),
        ]),
    ),
    ("service", Any),
    ("end", OneOf(&["Fulfilled", "Interrupted", "Cancelled"])),
]);

const DIALOG: Shape = Map(&[
    ("name", Text, true),
    (
        "match",
        Map(&[
            ("keywords", List(&Text), false),
            ("regex", Text, false),
            ("attachment", Bool, false),
        ]),
        true,
    ),
    ("steps", List(&STEP), true),
]);

const BOT: Shape = Map(&[
    (
        "bot",
        Map(&[
            ("id", Text, true),
            ("name", Text, false),
            ("jwe_private_key", Text, false),
            ("jwe_private_key_file", Text, false),
        ]),
        true,
    ),
    ("apps", List(&APP), true),
    ("instances", List(&INSTANCE), true),
    ("settings", SETTINGS, false),
    ("welcome", Any, true),
    ("fallback", Any, false),
    ("dialogs", List(&DIALOG), false),
]);

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diag>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Checker<'_> {
    fn err(&mut self, node: &At<Node>, path: &str, message: String, hint: Option<String>) {
        self.diags.push(Diag::at(
            self.file, self.text, node.pos, path, message, hint,
        ));
    }

    fn check(&mut self, node: &At<Node>, shape: &Shape, path: &str) {
        match shape {
            Any => {}
            Text => {
                if node.value.as_text().is_none() {
                    self.err(
                        node,
                        path,
                        format!("expected text, found {}", node.value.kind()),
                        None,
                    );
                }
            }
            Bool => {
                if !matches!(node.value, Node::Bool(_)) {
                    self.err(
                        node,
                        path,
                        format!("expected true or false, found {}", node.value.kind()),
                        None,
                    );
                }
            }
            Count => {
                if !matches!(node.value, Node::Int(i) if i >= 0) {
                    self.err(
                        node,
                        path,
                        "expected a whole number of at least 0".into(),
                        None,
                    );
                }
            }
            Rate => {
                let v = match node.value {
                    Node::Int(i) => Some(i as f64),
                    Node::Float(f) => Some(f),
                    _ => None,
                };
                if !v.is_some_and(|v| (0.0..=1.0).contains(&v)) {
                    self.err(
                        node,
                        path,
                        "expected a probability from 0 to 1".into(),
                        None,
                    );
                }
            }
            Duration | Delay => {
                let text = node.value.as_text().unwrap_or_default();
                let parsed = match shape {
                    Duration => crate::common::duration::parse_duration(&text)
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    _ => text.parse::<Delay>().map(|_| ()).map_err(|e| e.to_string()),
                };
                if let Err(e) = parsed {
                    self.err(node, path, e, None);
                }
            }
            OneOf(words) => {
                let text = node.value.as_text().unwrap_or_default();
                if !words.contains(&text.as_str()) {
                    let hint = did_you_mean(&text, words.iter().copied())
                        .map(|w| format!("did you mean `{w}`?"));
                    self.err(
                        node,
                        path,
                        format!("`{text}` is not one of {}", words.join(", ")),
                        hint,
                    );
                }
            }
            List(item) => match &node.value {
                Node::Seq(items) => {
                    for (i, it) in items.iter().enumerate() {
                        self.check(it, item, &format!("{path}[{i}]"));
                    }
                }
                other => self.err(
                    node,
                    path,
                    format!("expected a list, found {}", other.kind()),
                    None,
                ),
            },
            Map(keys) => {
                let Node::Map(entries) = &node.value else {
                    self.err(
                        node,
                        path,
                        format!("expected a mapping, found {}", node.value.kind()),
                        None,
                    );
                    return;
                };
                for (k, v) in entries {
                    match keys.iter().find(|(name, ..)| *name == k.value) {
                        Some((_, shape, _)) => self.check(v, shape, &join(path, &k.value)),
                        None => self.unknown(k, path, keys.iter().map(|(n, ..)| *n)),
                    }
                }
                for (name, ..) in keys.iter().filter(|(.., required)| *required) {
                    if !entries.iter().any(|(k, _)| k.value == *name) {
                        self.err(
                            node,
                            &join(path, name),
                            format!("`{name}` is required"),
                            None,
                        );
                    }
                }
            }
            OneKey(keys) => {
                let names = || keys.iter().map(|(n, _)| *n);
                let Node::Map(entries) = &node.value else {
                    self.err(
                        node,
                        path,
                        format!(
                            "expected one of {} as a key, found {}",
                            names().collect::<Vec<_>>().join(", "),
                            node.value.kind()
                        ),
                        None,
                    );
                    return;
                };
                if entries.len() != 1 {
                    self.err(
                        node,
                        path,
                        format!(
                            "a step is one of {}; found {} keys",
                            names().collect::<Vec<_>>().join(", "),
                            entries.len()
                        ),
                        None,
                    );
                }
                for (k, v) in entries {
                    match keys.iter().find(|(name, _)| *name == k.value) {
                        Some((_, shape)) => self.check(v, shape, &join(path, &k.value)),
                        None => self.unknown(k, path, names()),
                    }
                }
            }
        }
    }

    fn unknown<'k>(
        &mut self,
        key: &At<String>,
        path: &str,
        known: impl Iterator<Item = &'k str> + Clone,
    ) {
        let hint = did_you_mean(&key.value, known.clone())
            .map(|k| format!("did you mean `{k}`?"))
            .or_else(|| {
                Some(format!(
                    "keys here: {}",
                    known.collect::<Vec<_>>().join(", ")
                ))
            });
        let at = At {
            value: Node::Null,
            pos: key.pos,
        };
        self.err(
            &at,
            &join(path, &key.value),
            format!("unknown key `{}`", key.value),
            hint,
        );
    }
}

/// Every shape error of a bot file's tree, in file order.
pub fn check(root: &At<Node>, file: &Path, text: &str) -> Vec<Diag> {
    let mut c = Checker {
        file,
        text,
        diags: Vec::new(),
    };
    c.check(root, &BOT, "");
    c.diags.sort_by_key(|d| (d.pos.line, d.pos.column));
    c.diags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::node::parse;

    fn errors(text: &str) -> Vec<String> {
        let root = parse(text).unwrap();
        check(&root, Path::new("b.bot.yaml"), text)
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {}: {}{}",
                    d.pos.line,
                    d.pos.column,
                    d.path,
                    d.message,
                    d.hint
                        .as_ref()
                        .map(|h| format!(" [{h}]"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn every_error_of_a_file_at_once_with_its_path_and_a_suggestion() {
        let text = "bot: { id: st-1 }\napps:\n  - client_id: cs-1\n    client_secrt: x\ninstances:\n  - id: default\n    mode: sinc\n    poling: true\n    faults: { drop_rate: 2 }\nwelcome: hi\ndialogs:\n  - name: A\n    match: { keywords: [a] }\n    steps: [{ say: hi }, { end: Fulfiled }, { sey: x }]\n";
        assert_eq!(
            errors(text),
            [
                "4:5 apps[0].client_secrt: unknown key `client_secrt` [did you mean `client_secret`?]",
                "7:11 instances[0].mode: `sinc` is not one of sync, async [did you mean `sync`?]",
                "8:5 instances[0].poling: unknown key `poling` [did you mean `polling`?]",
                "9:26 instances[0].faults.drop_rate: expected a probability from 0 to 1",
                "14:33 dialogs[0].steps[1].end: `Fulfiled` is not one of Fulfilled, Interrupted, Cancelled [did you mean `Fulfilled`?]",
                "14:47 dialogs[0].steps[2].sey: unknown key `sey` [did you mean `say`?]",
            ]
        );
    }

    #[test]
    fn the_demo_bot_has_the_right_shape() {
        let text = super::super::bot::DEMO_BOT;
        assert_eq!(errors(text), Vec::<String>::new());
    }

    #[test]
    fn missing_keys_are_named() {
        assert_eq!(
            errors("apps: []\ninstances: []\n"),
            [
                "1:1 bot: `bot` is required",
                "1:1 welcome: `welcome` is required"
            ]
        );
    }
}
