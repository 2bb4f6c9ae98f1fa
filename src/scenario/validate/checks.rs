//! The checks of a step's `expect:`.

use super::*;

impl Validator<'_> {
    pub(super) fn jsonpath(
        &mut self,
        node: &At<Node>,
        path: &str,
    ) -> Option<serde_json_path::JsonPath> {
        let s = self.text(node, path)?;
        serde_json_path::JsonPath::parse(&s)
            .map_err(|e| self.err(node.pos, path, format!("invalid JSONPath `{s}`: {e}")))
            .ok()
    }

    pub(super) fn checks(&mut self, node: &At<Node>, path: &str) -> Vec<Check> {
        let Node::Seq(items) = &node.value else {
            self.err(node.pos, path, "`expect` is a list of checks".into());
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| self.check(it, &format!("{path}[{i}]"), false))
            .collect()
    }

    pub(super) fn check(&mut self, node: &At<Node>, path: &str, negate: bool) -> Option<Check> {
        let e = self.map(node, path)?;
        if e.len() != 1 {
            self.err(
                node.pos,
                path,
                format!("a check has exactly one kind, found {}", e.len()),
            );
            return None;
        }
        let (k, v) = &e[0];
        let p = join(path, &k.value);
        let pos = k.pos;
        let kind_name = k.value.as_str();
        let (kind, label) = match kind_name {
            "not" => {
                let inner = self.check(v, &p, !negate)?;
                return Some(Check {
                    label: format!("not {}", inner.label).into(),
                    ..inner
                });
            }
            "status" => {
                // HTTP statuses are 100 to 599.
                let codes: Vec<u16> = match &v.value {
                    Node::Seq(items) => items
                        .iter()
                        .filter_map(|c| self.bounded(c, &p, 100, 599))
                        .map(|c| c as u16)
                        .collect(),
                    _ => self
                        .bounded(v, &p, 100, 599)
                        .map(|c| vec![c as u16])
                        .unwrap_or_default(),
                };
                if codes.is_empty() {
                    return None;
                }
                let label = format!(
                    "status {}",
                    codes
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join("|")
                );
                (CheckKind::Status(codes), label)
            }
            "schema" => {
                let name = self.text(v, &p)?;
                let schema = match schemas::builtin(&name) {
                    Some(s) => Some(s),
                    None => {
                        let file = self.base_dir().join(&name);
                        match self
                            .files
                            .text(&file, crate::common::MAX_SOURCE_BYTES)
                            .map_err(|e| e.to_string())
                            .and_then(|t| {
                                serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())
                            }) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                let hint = did_you_mean(&name, schemas::NAMES)
                                    .map(|s| format!("did you mean `{s}`?"))
                                    .or_else(|| {
                                        Some(format!(
                                            "built-in schemas: {}",
                                            schemas::NAMES.join(", ")
                                        ))
                                    });
                                self.err_hint(v.pos, &p, format!("`{name}` is not a built-in schema, and reading it as a file failed: {e}"), hint);
                                None
                            }
                        }
                    }
                }?;
                match jsonschema::validator_for(&schema) {
                    Ok(val) => (
                        CheckKind::Schema(SchemaRef {
                            name: name.clone(),
                            validator: Arc::new(val),
                        }),
                        format!("schema {name}"),
                    ),
                    Err(e) => {
                        self.err(v.pos, &p, format!("invalid JSON Schema: {e}"));
                        return None;
                    }
                }
            }
            "text" => self.text_check(v, &p)?,
            "jsonpath" => {
                let (src, jp_node, test) = match &v.value {
                    Node::Str(s) => (s.clone(), v, PathTest::Exists(true)),
                    Node::Map(je) => {
                        self.keys(je, &["path", "exists", "equals", "matches", "count"], &p);
                        let Some(pn) = v.value.get("path") else {
                            self.err(v.pos, &p, "jsonpath needs `path`".into());
                            return None;
                        };
                        let tests: Vec<_> = je.iter().filter(|(k, _)| k.value != "path").collect();
                        let test = match tests.as_slice() {
                            [] => PathTest::Exists(true),
                            [(tk, tv)] => match tk.value.as_str() {
                                "exists" => {
                                    PathTest::Exists(self.boolean(tv, &join(&p, "exists"))?)
                                }
                                "equals" => {
                                    PathTest::Equals(self.json_templated(tv, &join(&p, "equals")))
                                }
                                "matches" => {
                                    PathTest::Matches(self.regex(tv, &join(&p, "matches"))?)
                                }
                                "count" => {
                                    PathTest::Count(self.uint(tv, &join(&p, "count"))? as usize)
                                }
                                _ => return None,
                            },
                            _ => {
                                self.err(
                                    v.pos,
                                    &p,
                                    "give one of exists, equals, matches, count".into(),
                                );
                                return None;
                            }
                        };
                        (pn.value.as_text().unwrap_or_default(), pn, test)
                    }
                    other => {
                        let kind = other.kind();
                        self.err(
                            v.pos,
                            &p,
                            format!("jsonpath is a path or a mapping, found {kind}"),
                        );
                        return None;
                    }
                };
                let path_c = self.jsonpath(jp_node, &join(&p, "path"))?;
                let label = match &test {
                    PathTest::Exists(true) => format!("jsonpath {src} exists"),
                    PathTest::Exists(false) => format!("jsonpath {src} does not exist"),
                    PathTest::Equals(x) => format!("jsonpath {src} == {x}"),
                    PathTest::Matches(r) => format!("jsonpath {src} ~ /{r}/"),
                    PathTest::Count(n) => format!("jsonpath {src} count {n}"),
                };
                (
                    CheckKind::JsonPath {
                        source: src,
                        path: path_c,
                        test,
                    },
                    label,
                )
            }
            "messages" => {
                let c = self.count(v, &p)?;
                (CheckKind::Messages(c), format!("messages {c}"))
            }
            "template" => {
                let te = self.map(v, &p)?;
                self.keys(te, &["type", "buttons"], &p);
                let template_type = v
                    .value
                    .get("type")
                    .and_then(|t| self.text(t, &join(&p, "type")));
                let buttons = v
                    .value
                    .get("buttons")
                    .and_then(|b| self.count(b, &join(&p, "buttons")));
                let label = format!(
                    "template {}{}",
                    template_type.clone().unwrap_or_else(|| "any".into()),
                    buttons
                        .map(|b| format!(" with {b} button(s)"))
                        .unwrap_or_default()
                );
                (
                    CheckKind::Template {
                        template_type,
                        buttons,
                    },
                    label,
                )
            }
            "end_of_task" => match &v.value {
                Node::Bool(b) => (
                    CheckKind::EndOfTask {
                        ended: *b,
                        reason: None,
                        task: None,
                    },
                    format!("end_of_task {b}"),
                ),
                Node::Map(ee) => {
                    self.keys(ee, &["reason", "task"], &p);
                    let reason = v
                        .value
                        .get("reason")
                        .and_then(|r| self.text(r, &join(&p, "reason")));
                    let task = v
                        .value
                        .get("task")
                        .and_then(|t| self.text(t, &join(&p, "task")));
                    let label = format!(
                        "end_of_task {} {}",
                        reason.clone().unwrap_or_default(),
                        task.clone().unwrap_or_default()
                    )
                    .trim()
                    .to_string();
                    (
                        CheckKind::EndOfTask {
                            ended: true,
                            reason,
                            task,
                        },
                        label,
                    )
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        v.pos,
                        &p,
                        format!("end_of_task is true, false or {{reason, task}}, found {kind}"),
                    );
                    return None;
                }
            },
            "latency" => {
                let d = match &v.value {
                    Node::Map(le) => {
                        self.keys(le, &["under"], &p);
                        let Some(u) = v.value.get("under") else {
                            self.err(v.pos, &p, "latency needs `under`".into());
                            return None;
                        };
                        self.duration(u, &join(&p, "under"))?
                    }
                    _ => self.duration(v, &p)?,
                };
                (
                    CheckKind::Latency(d),
                    format!(
                        "latency under {}",
                        crate::common::duration::format_duration(d)
                    ),
                )
            }
            "poll" => {
                let pe = self.map(v, &p)?;
                self.keys(pe, &["converged", "max_polls", "within"], &p);
                let converged = v
                    .value
                    .get("converged")
                    .and_then(|c| self.boolean(c, &join(&p, "converged")));
                let max_polls = v
                    .value
                    .get("max_polls")
                    .and_then(|c| self.uint(c, &join(&p, "max_polls")))
                    .map(|n| n as u32);
                let within = v
                    .value
                    .get("within")
                    .and_then(|c| self.duration(c, &join(&p, "within")));
                (
                    CheckKind::Poll {
                        converged,
                        max_polls,
                        within,
                    },
                    "poll".to_string(),
                )
            }
            other => {
                let hint = did_you_mean(
                    other,
                    CHECK_KINDS.iter().copied().filter(|k| *k != "equals"),
                )
                .map(|s| format!("did you mean `{s}`?"));
                let hint =
                    hint.or_else(|| Some(format!("checks: {}", CHECK_KINDS[..10].join(", "))));
                self.err_hint(pos, &p, format!("unknown check `{other}`"), hint);
                return None;
            }
        };
        Some(Check {
            label: label.into(),
            pos,
            negate,
            kind,
        })
    }

    pub(super) fn count(&mut self, node: &At<Node>, path: &str) -> Option<Count> {
        match &node.value {
            Node::Int(_) | Node::Float(_) => self.uint(node, path).map(|n| Count::Eq(n as usize)),
            Node::Map(e) => {
                self.keys(e, &["count", "min", "max"], path);
                if e.len() != 1 {
                    self.err(node.pos, path, "give one of count, min, max".into());
                    return None;
                }
                let (k, v) = &e[0];
                let n = self.uint(v, &join(path, &k.value))? as usize;
                Some(match k.value.as_str() {
                    "min" => Count::AtLeast(n),
                    "max" => Count::AtMost(n),
                    _ => Count::Eq(n),
                })
            }
            other => {
                let kind = other.kind();
                self.err(
                    node.pos,
                    path,
                    format!("expected a number or {{count|min|max: N}}, found {kind}"),
                );
                None
            }
        }
    }

    pub(super) fn text_check(&mut self, v: &At<Node>, p: &str) -> Option<(CheckKind, String)> {
        if let Node::Str(_) = v.value {
            let t = self.template(v, p)?;
            let label = format!("text contains {:?}", t.to_string());
            return Some((CheckKind::Text(Which::Any, TextTest::Contains(t)), label));
        }
        let e = self.map(v, p)?;
        self.keys(
            e,
            &["contains", "equals", "matches", "any_of", "nth", "all"],
            p,
        );
        let mut which = Which::Any;
        let mut test = None;
        for (k, tv) in e {
            let tp = join(p, &k.value);
            match k.value.as_str() {
                "nth" => match tv.value {
                    Node::Int(i) => which = Which::Nth(i),
                    _ => self.err(
                        tv.pos,
                        &tp,
                        "nth is a message index (negative counts from the end)".into(),
                    ),
                },
                "all" if self.boolean(tv, &tp) == Some(true) => which = Which::All,
                "contains" => {
                    test = self.template(tv, &tp).map(|t| {
                        (
                            TextTest::Contains(t.clone()),
                            format!("contains {:?}", t.to_string()),
                        )
                    })
                }
                "equals" => {
                    test = self.template(tv, &tp).map(|t| {
                        (
                            TextTest::Equals(t.clone()),
                            format!("equals {:?}", t.to_string()),
                        )
                    })
                }
                "matches" => {
                    test = self
                        .regex(tv, &tp)
                        .map(|r| (TextTest::Matches(r.clone()), format!("matches /{r}/")))
                }
                "any_of" => {
                    if let Node::Seq(items) = &tv.value {
                        let list: Vec<Template> = items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, it)| self.template(it, &format!("{tp}[{i}]")))
                            .collect();
                        let label = format!(
                            "any of {:?}",
                            list.iter().map(Template::to_string).collect::<Vec<_>>()
                        );
                        test = Some((TextTest::AnyOf(list), label));
                    } else {
                        self.err(tv.pos, &tp, "any_of is a list of texts".into());
                    }
                }
                _ => {}
            }
        }
        let Some((test, desc)) = test else {
            if self.diags.is_empty() {
                self.err(
                    v.pos,
                    p,
                    "text needs one of contains, equals, matches, any_of".into(),
                );
            }
            return None;
        };
        let scope = match which {
            Which::Any => String::new(),
            Which::All => " (all messages)".into(),
            Which::Nth(i) => format!(" (message {i})"),
        };
        Some((CheckKind::Text(which, test), format!("text {desc}{scope}")))
    }
}
