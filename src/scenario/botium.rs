//! Botium conversation files to scenarios: `*.convo.txt` (`#me` / `#bot` sections, text
//! asserters, `BUTTON`/`BUTTONS`, `INCLUDE` of partial convos), `*.utterances.txt` (expanded
//! into data rows) and the Kore.ai webhook connector's capabilities from `botium.json` (target
//! and credentials). Pure: files come in as text, scenarios go out as YAML text, with one note
//! per construct that could not be converted.
//!
//! Mapping. A `#me` section becomes a `send` step (its text, a `BUTTON` payload, or
//! `{{UTTERANCE_LIST}}` when the text names an utterance list); the `#bot` sections after it
//! check that turn's messages in order: the k-th `#bot` section reads message k. A `#bot`
//! text is matched as Botium's default matching mode does (wildcards `*`, case ignored,
//! anywhere in the message): `text: {nth: k, matches: "(?i)…"}`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// One converted scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// File name (`<convo>.yaml`).
    pub file: String,
    /// The scenario, YAML.
    pub yaml: String,
}

/// What could not be converted (or was converted with a loss), by file and line.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The source file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What happened.
    pub message: String,
    /// True when the construct was dropped (the import then fails); false for a conversion
    /// with a stated loss.
    pub skipped: bool,
}

/// The result of an import.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// Scenarios.
    pub scenarios: Vec<Converted>,
    /// Notes.
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone)]
struct Section {
    me: bool,
    line: usize,
    lines: Vec<(usize, String)>,
}

/// Parses a convo into its name and sections.
fn sections(text: &str) -> (String, Vec<Section>) {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    let name = lines
        .by_ref()
        .map(|(_, l)| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("convo")
        .to_string();
    let mut out: Vec<Section> = Vec::new();
    let mut current: Option<Section> = None;
    for (n, l) in lines {
        let t = l.trim();
        if let Some(tag) = t.strip_prefix('#') {
            if let Some(s) = current.take() {
                out.push(s);
            }
            let tag = tag.trim();
            let lower = tag.to_ascii_lowercase();
            // `#include NAME` (or `#NAME`) stands for a partial convo; `#begin` and `#end`
            // are kept as sections the caller reports.
            let tag = match tag.split_once(' ') {
                Some((word, name)) if word.eq_ignore_ascii_case("include") => name.trim(),
                _ => tag,
            };
            current = Some(Section {
                me: lower == "me",
                line: n,
                lines: if lower == "me" || lower == "bot" {
                    Vec::new()
                } else {
                    vec![(n, format!("#{tag}"))]
                },
            });
            continue;
        }
        if let Some(s) = current.as_mut() {
            if !t.is_empty() {
                s.lines.push((n, t.to_string()));
            }
        }
    }
    out.extend(current);
    (name, out)
}

/// Is this line a logic hook or asserter (`NAME args|…`)?
fn keyword(line: &str) -> Option<(&str, Vec<String>)> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let is_kw = word.len() > 2
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_uppercase());
    is_kw.then(|| {
        let args = if rest.trim().is_empty() {
            Vec::new()
        } else {
            rest.split('|').map(|a| a.trim().to_string()).collect()
        };
        (word, args)
    })
}

/// Botium's wildcard text as a case-insensitive regex found anywhere in a message.
fn wildcard(text: &str) -> String {
    let parts: Vec<String> = text.split('*').map(regex::escape).collect();
    format!("(?i){}", parts.join(".*"))
}

/// A variable name for an utterance list.
fn var(name: &str) -> String {
    let v: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        format!("u_{v}")
    } else {
        v
    }
}

/// The connector's capabilities (`botium.json` `botium.Capabilities`) as target, auth and user.
fn from_caps(caps: &Map<String, Value>, file: &str, notes: &mut Vec<Note>) -> Map<String, Value> {
    let mut out = Map::new();
    let s = |k: &str| caps.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(mode) = s("CONTAINERMODE") {
        if !mode.contains("koreai") {
            notes.push(Note {
                file: file.into(),
                line: 1,
                message: format!(
                    "CONTAINERMODE `{mode}` is not the Kore.ai webhook connector: target and credentials not taken"
                ),
                skipped: true,
            });
            return out;
        }
    }
    if let Some(url) = s("KOREAI_WEBHOOK_URL") {
        out.insert("target".into(), json!({ "url": url }));
    }
    if let Some(id) = s("KOREAI_WEBHOOK_CLIENTID") {
        // The secret stays out of the scenario: it is read from the environment.
        out.insert(
            "auth".into(),
            json!({ "client_id": id, "client_secret": "${HOOKBENCH_CLIENT_SECRET}" }),
        );
        if s("KOREAI_WEBHOOK_CLIENTSECRET").is_some() {
            notes.push(Note {
                file: file.into(),
                line: 1,
                message: "KOREAI_WEBHOOK_CLIENTSECRET is not copied into the scenarios: set HOOKBENCH_CLIENT_SECRET".into(),
                skipped: false,
            });
        }
    }
    if let Some(from) = s("KOREAI_WEBHOOK_FROMID") {
        out.insert("user".into(), json!({ "id": from }));
    }
    out
}

/// Converts convo files (`(file name, text)`: `*.convo.txt`, `*.pconvo.txt` partials and
/// `*.utterances.txt`) with an optional `botium.json`.
pub fn convert(files: &[(String, String)], botium_json: Option<(&str, &str)>) -> Import {
    let mut notes = Vec::new();
    let mut head = Map::new();
    if let Some((file, text)) = botium_json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                let caps = v
                    .pointer("/botium/Capabilities")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                head = from_caps(&caps, file, &mut notes);
            }
            Err(e) => notes.push(Note {
                file: file.into(),
                line: e.line(),
                message: format!("not JSON: {e}"),
                skipped: true,
            }),
        }
    }
    let mut utterances: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partials: BTreeMap<String, (String, Vec<Section>)> = BTreeMap::new();
    let mut convos = Vec::new();
    for (file, text) in files {
        if file.ends_with(".utterances.txt") {
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            if let Some(name) = lines.next() {
                utterances.insert(name.to_string(), lines.map(str::to_string).collect());
            }
        } else if file.ends_with(".pconvo.txt") {
            let (name, secs) = sections(text);
            partials.insert(name, (file.clone(), secs));
        } else if file.ends_with(".convo.txt") {
            convos.push((file.clone(), text.clone()));
        } else {
            notes.push(Note {
                file: file.clone(),
                line: 1,
                message: "not a convo, partial convo or utterances file: ignored".into(),
                skipped: true,
            });
        }
    }
    let mut scenarios = Vec::new();
    for (file, text) in &convos {
        let (name, secs) = sections(text);
        let mut steps: Vec<Value> = Vec::new();
        let mut used_lists: Vec<String> = Vec::new();
        let mut note = |line: usize, message: String, skipped: bool, f: &str| {
            notes.push(Note {
                file: f.to_string(),
                line,
                message,
                skipped,
            })
        };
        // Inline partial convos (`INCLUDE name` in a section, or a `#name` section).
        let mut flat: Vec<(String, Section)> = Vec::new();
        for s in secs {
            let include = s.lines.iter().find_map(|(n, l)| match keyword(l) {
                Some(("INCLUDE", args)) => Some((*n, args)),
                _ => None,
            });
            let tagged = s
                .lines
                .first()
                .and_then(|(n, l)| l.strip_prefix('#').map(|t| (*n, vec![t.to_string()])));
            match include.or(tagged) {
                Some((n, names)) => {
                    for p in names {
                        match partials.get(&p) {
                            Some((pf, psecs)) => {
                                flat.extend(psecs.iter().map(|ps| (pf.clone(), ps.clone())))
                            }
                            None if p == "begin" || p == "end" => note(
                                n,
                                format!("#{p} section (logic hooks before/after the conversation): not converted"),
                                true,
                                file,
                            ),
                            None => note(n, format!("no partial convo `{p}` among the files"), true, file),
                        }
                    }
                }
                None => flat.push((file.clone(), s)),
            }
        }
        let mut nth = 0usize;
        for (f, s) in flat {
            if s.me {
                let mut text_lines = Vec::new();
                let mut send: Option<String> = None;
                for (n, l) in &s.lines {
                    // An utterance list's name (often upper case) is text, not a hook.
                    if utterances.contains_key(l) {
                        text_lines.push(l.clone());
                        continue;
                    }
                    match keyword(l) {
                        Some(("BUTTON", args)) => send = args.first().cloned(),
                        Some((kw, _)) => {
                            note(*n, format!("`{kw}` in #me: not converted"), true, &f)
                        }
                        None => text_lines.push(l.clone()),
                    }
                }
                let text = send.unwrap_or_else(|| text_lines.join("\n"));
                let text = match utterances.get(&text) {
                    Some(_) => {
                        if !used_lists.contains(&text) {
                            used_lists.push(text.clone());
                        }
                        format!("{{{{{}}}}}", var(&text))
                    }
                    None => text,
                };
                if text.is_empty() {
                    note(s.line, "#me with nothing to send: skipped".into(), true, &f);
                    continue;
                }
                steps.push(json!({ "send": text, "expect": [] }));
                nth = 0;
                continue;
            }
            // A #bot section: checks on message `nth` of the last turn.
            let Some(step) = steps.last_mut() else {
                note(
                    s.line,
                    "#bot before any #me (a greeting the bot sends unasked): not converted; add an `event: ON_CONNECT` step".into(),
                    true,
                    &f,
                );
                continue;
            };
            let expect = step["expect"].as_array_mut().expect("built with a list");
            let mut text_lines = Vec::new();
            for (n, l) in &s.lines {
                let Some((kw, args)) = keyword(l) else {
                    text_lines.push(l.clone());
                    continue;
                };
                // Botium's text asserters find their arguments anywhere, case ignored.
                let any = |args: &[String]| {
                    let alts: Vec<String> = args.iter().map(|a| regex::escape(a)).collect();
                    format!("(?i)({})", alts.join("|"))
                };
                let check = match kw {
                    "TEXT_CONTAINS_ANY" => json!({"text": {"nth": nth, "matches": any(&args)}}),
                    "TEXT_CONTAINS_ALL" => {
                        for a in &args {
                            let one = any(std::slice::from_ref(a));
                            expect.push(json!({"text": {"nth": nth, "matches": one}}));
                        }
                        continue;
                    }
                    "TEXT_EQUALS" | "TEXT" => {
                        json!({"text": {"nth": nth, "equals": args.join("|")}})
                    }
                    "TEXT_REGEX_ANY" | "TEXT_REGEX" => {
                        json!({"text": {"nth": nth, "matches": args.join("|")}})
                    }
                    "TEXT_WILDCARD_ANY" | "TEXT_WILDCARD" => json!({"text": {"nth": nth,
                        "matches": args.iter().map(|a| wildcard(a)).collect::<Vec<_>>().join("|")}}),
                    "NOT_TEXT_CONTAINS_ANY" => {
                        json!({"not": {"text": {"nth": nth, "matches": any(&args)}}})
                    }
                    "BUTTONS" => {
                        note(
                            *n,
                            format!("BUTTONS {}: converted to a button-template check of {} buttons; their titles are not compared", args.join("|"), args.len()),
                            false,
                            &f,
                        );
                        json!({"template": {"type": "button", "buttons": args.len()}})
                    }
                    other => {
                        note(*n, format!("`{other}` asserter: not converted"), true, &f);
                        continue;
                    }
                };
                expect.push(check);
            }
            if !text_lines.is_empty() {
                let text = text_lines.join("\n");
                expect.push(json!({"text": {"nth": nth, "matches": wildcard(&text)}}));
            }
            nth += 1;
        }
        if steps.is_empty() {
            note(1, "no #me section: nothing to convert".into(), true, file);
            continue;
        }
        for step in &mut steps {
            if step["expect"].as_array().is_some_and(Vec::is_empty) {
                step.as_object_mut().map(|o| o.remove("expect"));
            }
        }
        let mut doc = Map::new();
        doc.insert("name".into(), Value::String(name.clone()));
        for (k, v) in &head {
            doc.insert(k.clone(), v.clone());
        }
        if !used_lists.is_empty() {
            // One row per utterance; several lists are zipped, the shorter ones repeating.
            let longest = used_lists
                .iter()
                .map(|l| utterances[l].len())
                .max()
                .unwrap_or(0);
            let rows: Vec<Value> = (0..longest)
                .map(|i| {
                    let mut row = Map::new();
                    for l in &used_lists {
                        let list = &utterances[l];
                        if !list.is_empty() {
                            row.insert(var(l), Value::String(list[i % list.len()].clone()));
                        }
                    }
                    Value::Object(row)
                })
                .collect();
            doc.insert("data".into(), Value::Array(rows));
        }
        doc.insert("steps".into(), Value::Array(steps));
        let stem = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".convo.txt")
            .to_string();
        let yaml = format!(
            "# Imported from Botium convo {file} by `hookbench import botium`.\n{}",
            serde_saphyr::to_string(&Value::Object(doc)).unwrap_or_default()
        );
        scenarios.push(Converted {
            file: format!("{stem}.yaml"),
            yaml,
        });
    }
    Import { scenarios, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_asserters_convert() {
        let convo = "Balance check\n\n#me\nbalance\n\n#bot\nThe balance in your * account*\n\n#bot\nTEXT_CONTAINS_ANY Expenses|Spent\nINTENT balance\n";
        let r = convert(&[("a.convo.txt".into(), convo.into())], None);
        assert_eq!(r.scenarios.len(), 1);
        let yaml = &r.scenarios[0].yaml;
        assert!(yaml.contains("name: Balance check"), "{yaml}");
        assert!(yaml.contains("send: balance"), "{yaml}");
        assert!(yaml.contains("(?i)(Expenses|Spent)"), "{yaml}");
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].skipped && r.notes[0].message.contains("INTENT"));
        assert_eq!(r.notes[0].line, 11);
    }

    #[test]
    fn wildcards_are_case_insensitive_regexes() {
        assert_eq!(wildcard("Hi *!"), "(?i)Hi .*!");
        assert!(regex::Regex::new(&wildcard("a.b*c"))
            .unwrap()
            .is_match("A.B and C"));
    }
}
