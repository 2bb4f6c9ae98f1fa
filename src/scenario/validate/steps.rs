//! `steps:`: each step's action and options, includes, attachments, tags, captures.

use super::*;

impl Validator<'_> {
    pub(super) fn steps(&mut self, node: &At<Node>, path: &str) {
        let Node::Seq(items) = &node.value else {
            let kind = node.value.kind();
            self.err(
                node.pos,
                path,
                format!("expected a list of steps, found {kind}"),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            self.step(item, &format!("{path}[{i}]"));
        }
    }

    pub(super) fn step(&mut self, node: &At<Node>, path: &str) {
        let Some(entries) = self.map(node, path) else {
            return;
        };
        let mut allowed: Vec<&str> = STEP_ACTIONS.to_vec();
        allowed.extend(STEP_OPTIONS);
        self.keys(entries, &allowed, path);
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.value == k)
                .map(|(_, v)| v)
        };
        let actions: Vec<&str> = entries
            .iter()
            .map(|(k, _)| k.value.as_str())
            .filter(|k| STEP_ACTIONS.contains(k) && *k != "think")
            .collect();
        if actions.len() > 1 {
            self.err(
                node.pos,
                path,
                format!("a step does one thing; found {}", actions.join(" and ")),
            );
            return;
        }
        if let Some(inc) = get("include") {
            if entries.len() > 1 {
                self.err(node.pos, path, "`include` stands alone in its step".into());
            }
            self.include(inc, &join(path, "include"));
            return;
        }
        let think = get("think").and_then(|t| self.delay(t, &join(path, "think")));
        let (action, label) = match actions.first().copied() {
            None => match think {
                Some(d) => (Action::Think(d), format!("think {d}")),
                None => {
                    if get("think").is_none() {
                        self.err_hint(
                            node.pos,
                            path,
                            "a step needs an action".into(),
                            Some(format!("one of: {}", STEP_ACTIONS.join(", "))),
                        );
                    }
                    return;
                }
            },
            Some("send") => {
                let p = join(path, "send");
                let Some(t) = self.template(get("send").expect("present"), &p) else {
                    return;
                };
                let label = format!("send {t}");
                (Action::Send(t), label)
            }
            Some("event") => {
                let p = join(path, "event");
                let n = get("event").expect("present");
                match self.text(n, &p).as_deref() {
                    Some("ON_CONNECT") => (
                        Action::Event(Event::OnConnect),
                        "event ON_CONNECT".to_string(),
                    ),
                    Some("SESSION_CLOSURE") => (
                        Action::Event(Event::SessionClosure),
                        "event SESSION_CLOSURE".to_string(),
                    ),
                    Some(other) => {
                        let hint = did_you_mean(other, ["ON_CONNECT", "SESSION_CLOSURE"])
                            .map(|s| format!("did you mean `{s}`?"));
                        self.err_hint(
                            n.pos,
                            &p,
                            format!("unknown event `{other}` (ON_CONNECT or SESSION_CLOSURE)"),
                            hint,
                        );
                        return;
                    }
                    None => return,
                }
            }
            Some("template") => {
                let p = join(path, "template");
                let n = get("template").expect("present");
                if !matches!(n.value, Node::Map(_)) {
                    self.err(n.pos, &p, "a template step sends an object".into());
                    return;
                }
                (
                    Action::Template(self.json_templated(n, &p)),
                    "template".to_string(),
                )
            }
            Some("form") => {
                let p = join(path, "form");
                let Some(fe) = self.map(get("form").expect("present"), &p) else {
                    return;
                };
                let mut fields = Vec::new();
                for (k, v) in fe {
                    if let Some(t) = self.template(v, &join(&p, &k.value)) {
                        fields.push((k.value.clone(), t));
                    }
                }
                let label = format!(
                    "form {}",
                    fields
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (Action::Form(fields), label)
            }
            Some("notify") => {
                let p = join(path, "notify");
                let n = get("notify").expect("present");
                let (message, kind, parameters, instance) = match &n.value {
                    Node::Map(ne) => {
                        self.keys(ne, &["message", "type", "parameters", "instance"], &p);
                        let nget = |k: &str| n.value.get(k);
                        let Some(m) = nget("message") else {
                            self.err(n.pos, &join(&p, "message"), "notify needs `message`".into());
                            return;
                        };
                        let Some(message) = self.template(m, &join(&p, "message")) else {
                            return;
                        };
                        let kind = match nget("type") {
                            None => "text".to_string(),
                            Some(t) => match self.text(t, &join(&p, "type")) {
                                Some(k) if ["text", "template", "script"].contains(&k.as_str()) => {
                                    k
                                }
                                Some(k) => {
                                    self.err(
                                        t.pos,
                                        &join(&p, "type"),
                                        format!("type is text, template or script, not `{k}`"),
                                    );
                                    return;
                                }
                                None => return,
                            },
                        };
                        let mut parameters = Vec::new();
                        if let Some(pn) = nget("parameters") {
                            if let Some(pe) = self.map(pn, &join(&p, "parameters")) {
                                if pe.len() > 20 {
                                    self.err(
                                        pn.pos,
                                        &join(&p, "parameters"),
                                        format!(
                                            "{} parameters: the platform takes at most 20",
                                            pe.len()
                                        ),
                                    );
                                }
                                for (k, v) in pe {
                                    if let Some(t) =
                                        self.template(v, &format!("{p}.parameters.{}", k.value))
                                    {
                                        parameters.push((k.value.clone(), t));
                                    }
                                }
                            }
                        }
                        let instance =
                            nget("instance").and_then(|i| self.text(i, &join(&p, "instance")));
                        (message, kind, parameters, instance)
                    }
                    _ => {
                        let Some(message) = self.template(n, &p) else {
                            return;
                        };
                        (message, "text".to_string(), Vec::new(), None)
                    }
                };
                let label = format!("notify {message}");
                (
                    Action::Notify {
                        message,
                        kind,
                        parameters,
                        instance,
                    },
                    label,
                )
            }
            Some("upload") => {
                let p = join(path, "upload");
                let Some(ue) = self.map(get("upload").expect("present"), &p) else {
                    return;
                };
                self.keys(
                    ue,
                    &["file", "text", "file_type", "chunk_size", "method"],
                    &p,
                );
                let uget = |k: &str| ue.iter().find(|(key, _)| key.value == k).map(|(_, v)| v);
                let file = match uget("file") {
                    Some(f) => self
                        .text(f, &join(&p, "file"))
                        .map(|rel| (self.base_dir().join(rel), f.pos)),
                    None => {
                        self.err(
                            get("upload").expect("present").pos,
                            &join(&p, "file"),
                            "upload needs `file`".into(),
                        );
                        None
                    }
                };
                if let Some((fp, pos)) = &file {
                    if !self.files.is_file(fp) {
                        self.err(
                            *pos,
                            &join(&p, "file"),
                            format!("no such file: {}", fp.display()),
                        );
                    }
                }
                let text = uget("text")
                    .and_then(|t| self.template(t, &join(&p, "text")))
                    .unwrap_or_else(|| Template::literal("Please see the attached file."));
                let file_type = uget("file_type")
                    .and_then(|t| self.text(t, &join(&p, "file_type")))
                    .unwrap_or_else(|| "attachment".into());
                let chunk_size = uget("chunk_size")
                    .and_then(|c| self.uint(c, &join(&p, "chunk_size")))
                    .unwrap_or(1024 * 1024)
                    .max(1) as usize;
                let method = match uget("method") {
                    None => UploadMethod::Chunked(chunk_size),
                    Some(m) => match self.text(m, &join(&p, "method")).as_deref() {
                        Some("chunked") => UploadMethod::Chunked(chunk_size),
                        Some("one_shot") => {
                            if let Some(c) = uget("chunk_size") {
                                self.err(
                                    c.pos,
                                    &join(&p, "chunk_size"),
                                    "chunk_size applies to `method: chunked` only".into(),
                                );
                            }
                            UploadMethod::OneShot
                        }
                        Some(word) => {
                            self.err(
                                m.pos,
                                &join(&p, "method"),
                                format!("method is `chunked` (token, chunks, merge) or `one_shot`, not `{word}`"),
                            );
                            return;
                        }
                        None => return,
                    },
                };
                let Some((path_buf, _)) = file else { return };
                let label = format!(
                    "upload {}",
                    path_buf
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
                (
                    Action::Upload {
                        path: path_buf,
                        text,
                        file_type,
                        method,
                    },
                    label,
                )
            }
            Some(_) => return,
        };
        let label = match get("name") {
            Some(n) => self.text(n, &join(path, "name")).unwrap_or(label),
            None => short_label(label),
        };
        let expect = match get("expect") {
            Some(e) => self.checks(e, &join(path, "expect")),
            None => Vec::new(),
        };
        let mut step = Step {
            index: self.steps.len(),
            file: self.file.clone(),
            shown_file: self.file.display().to_string().into(),
            pos: node.pos,
            label: label.into(),
            action,
            expect,
            capture: Vec::new(),
            think: if actions.is_empty() { None } else { think },
            new_session: false,
            attachments: None,
            tags: None,
            custom_data: None,
            language: None,
        };
        for (k, v) in entries {
            let p = join(path, &k.value);
            match k.value.as_str() {
                "new_session" => step.new_session = self.boolean(v, &p).unwrap_or(false),
                "attachments" => step.attachments = self.attachments(v, &p),
                "tags" => step.tags = self.tags(v, &p),
                "custom_data" => step.custom_data = Some(self.json_templated(v, &p)),
                "language" => step.language = self.text(v, &p),
                _ => {}
            }
        }
        if let Some(c) = get("capture") {
            step.capture = self.captures(c, &join(path, "capture"));
        }
        self.steps.push(step);
    }

    pub(super) fn include(&mut self, node: &At<Node>, path: &str) {
        let Some(rel) = self.text(node, path) else {
            return;
        };
        if self.depth >= 8 {
            self.err(
                node.pos,
                path,
                "includes nested more than 8 deep (a cycle?)".into(),
            );
            return;
        }
        let file = self.base_dir().join(&rel);
        let text = match self.files.text(&file, crate::common::MAX_SOURCE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    node.pos,
                    path,
                    format!("cannot read `{}`: {e}", file.display()),
                );
                return;
            }
        };
        let saved = (
            std::mem::replace(&mut self.file, file),
            std::mem::replace(&mut self.text, text),
        );
        self.depth += 1;
        match parse(&self.text.clone()) {
            Ok(root) => match &root.value {
                Node::Seq(_) => self.steps(&root, "steps"),
                Node::Map(e) if e.iter().any(|(k, _)| k.value == "steps") => {
                    self.keys(e, &["steps", "name", "description"], "");
                    let steps = root.value.get("steps").expect("checked").clone();
                    self.steps(&steps, "steps");
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        root.pos,
                        "",
                        format!("an included file holds a list of steps, found {kind}"),
                    );
                }
            },
            Err(e) => self.err(e.pos, "", e.message),
        }
        self.depth -= 1;
        self.file = saved.0;
        self.text = saved.1;
    }

    pub(super) fn attachments(&mut self, node: &At<Node>, path: &str) -> Option<Value> {
        let Node::Seq(items) = &node.value else {
            self.err(node.pos, path, "expected a list of attachments".into());
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(e) = self.map(it, &p) else { continue };
            self.keys(e, &["url", "file_id", "file_type", "file_name"], &p);
            let mut m = Map::new();
            for (k, v) in e {
                let wire = match k.value.as_str() {
                    "url" => "url",
                    "file_id" => "fileId",
                    "file_type" => "fileType",
                    "file_name" => "fileName",
                    _ => continue,
                };
                if let Some(t) = self.template(v, &join(&p, &k.value)) {
                    m.insert(wire.into(), Value::String(t.to_string()));
                }
            }
            out.push(Value::Object(m));
        }
        Some(Value::Array(out))
    }

    pub(super) fn tags(&mut self, node: &At<Node>, path: &str) -> Option<Value> {
        let e = self.map(node, path)?;
        self.keys(e, &["user", "session", "message"], path);
        let mut out = Map::new();
        for (k, v) in e {
            let wire = match k.value.as_str() {
                "user" => "userLevelTags",
                "session" => "sessionLevelTags",
                "message" => "messageLevelTags",
                _ => continue,
            };
            let p = join(path, &k.value);
            let Some(te) = self.map(v, &p) else { continue };
            let list: Vec<Value> = te
                .iter()
                .map(|(tk, tv)| json!({"name": tk.value, "value": tv.value.to_json()}))
                .collect();
            for (tk, tv) in te {
                if let Node::Str(s) = &tv.value {
                    if let Ok(t) = Template::parse(s) {
                        self.check_vars(&t, tv.pos, &join(&p, &tk.value));
                    }
                }
            }
            out.insert(wire.into(), Value::Array(list));
        }
        Some(Value::Object(out))
    }

    pub(super) fn captures(&mut self, node: &At<Node>, path: &str) -> Vec<Capture> {
        let Some(e) = self.map(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in e {
            let p = join(path, &k.value);
            let source = match &v.value {
                Node::Str(_) => self.jsonpath(v, &p).map(CaptureSource::JsonPath),
                Node::Map(ce) => {
                    self.keys(ce, &["jsonpath", "regex"], &p);
                    match ce.first() {
                        Some((ck, cv)) if ck.value == "jsonpath" => self
                            .jsonpath(cv, &join(&p, "jsonpath"))
                            .map(CaptureSource::JsonPath),
                        Some((ck, cv)) if ck.value == "regex" => {
                            self.regex(cv, &join(&p, "regex")).map(CaptureSource::Regex)
                        }
                        _ => None,
                    }
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        v.pos,
                        &p,
                        format!("a capture is a JSONPath or {{jsonpath|regex: …}}, found {kind}"),
                    );
                    None
                }
            };
            if let Some(source) = source {
                self.vars.insert(k.value.clone());
                out.push(Capture {
                    name: k.value.clone(),
                    source,
                });
            }
        }
        out
    }
}
