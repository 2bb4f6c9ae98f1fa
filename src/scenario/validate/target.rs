//! `target:`, its `poll:` and `async:`, `auth:` and `user:`.

use super::*;

/// The page origin a `browser: true` target sends from.
const DEFAULT_ORIGIN: &str = "https://webchat.example";

impl Validator<'_> {
    pub(super) fn target(&mut self, node: Option<&At<Node>>) -> Option<Target> {
        let mut t = Target {
            url: None,
            version: None,
            mode: None,
            instance: None,
            timeout: SYNC_BUDGET,
            poll: Poll {
                interval: PollInterval::Fixed(Duration::from_secs(1)),
                max_wait: Duration::from_secs(60),
            },
            asynch: AsyncCfg {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                public_url: None,
                quiet: Duration::from_millis(1500),
                max_wait: Duration::from_secs(30),
            },
            browser: None,
        };
        let Some(node) = node else { return Some(t) };
        let entries = self.map(node, "target")?;
        self.keys(
            entries,
            &[
                "url", "version", "mode", "instance", "timeout", "poll", "async", "browser",
            ],
            "target",
        );
        let mut explicit_version = None;
        for (k, v) in entries {
            let path = format!("target.{}", k.value);
            match k.value.as_str() {
                "url" => {
                    if let Some(url) = self.text(v, &path) {
                        match WebhookUrl::parse(&url) {
                            Ok(u) => {
                                t.version = Some(u.version);
                                t.url = Some(url);
                            }
                            Err(e) => self.err(v.pos, &path, e.to_string()),
                        }
                    }
                }
                "version" => match self.text(v, &path).as_deref() {
                    Some("v1") => explicit_version = Some((Version::V1, v.pos)),
                    Some("v2") => explicit_version = Some((Version::V2, v.pos)),
                    Some(other) => self.err(
                        v.pos,
                        &path,
                        format!("version must be v1 or v2, not `{other}`"),
                    ),
                    None => {}
                },
                "mode" => match self.text(v, &path).as_deref() {
                    Some("sync") => t.mode = Some(Mode::Sync),
                    Some("async") => t.mode = Some(Mode::Async),
                    Some(other) => self.err(
                        v.pos,
                        &path,
                        format!("mode must be sync or async, not `{other}`"),
                    ),
                    None => {}
                },
                "instance" => t.instance = self.text(v, &path),
                "timeout" => {
                    if let Some(d) = self.duration(v, &path) {
                        t.timeout = d;
                    }
                }
                "browser" => match &v.value {
                    Node::Bool(true) => t.browser = Some(DEFAULT_ORIGIN.into()),
                    Node::Bool(false) => t.browser = None,
                    _ => {
                        if let Some(be) = self.map(v, &path) {
                            self.keys(be, &["origin"], &path);
                            let origin = v
                                .value
                                .get("origin")
                                .and_then(|o| self.text(o, &format!("{path}.origin")))
                                .unwrap_or_else(|| DEFAULT_ORIGIN.into());
                            if origin.starts_with("http://") || origin.starts_with("https://") {
                                t.browser = Some(origin.trim_end_matches('/').to_string());
                            } else {
                                self.err(
                                    v.pos,
                                    &format!("{path}.origin"),
                                    format!("`{origin}` is not an origin (https://host[:port])"),
                                );
                            }
                        }
                    }
                },
                "poll" => {
                    if let Some(pe) = self.map(v, &path) {
                        self.keys(pe, &["interval", "max_wait"], &path);
                        for (pk, pv) in pe {
                            let pp = format!("{path}.{}", pk.value);
                            match pk.value.as_str() {
                                "interval" => {
                                    if let Some(i) = self.poll_interval(pv, &pp) {
                                        t.poll.interval = i;
                                    }
                                }
                                "max_wait" => {
                                    if let Some(d) = self.duration(pv, &pp) {
                                        t.poll.max_wait = d;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                "async" => {
                    if let Some(ae) = self.map(v, &path) {
                        self.keys(ae, &["listen", "public_url", "quiet", "max_wait"], &path);
                        for (ak, av) in ae {
                            let ap = format!("{path}.{}", ak.value);
                            match ak.value.as_str() {
                                "listen" => {
                                    match self.text(av, &ap).map(|s| s.parse::<SocketAddr>()) {
                                        Some(Ok(a)) => t.asynch.listen = a,
                                        Some(Err(_)) => self.err(
                                            av.pos,
                                            &ap,
                                            "expected an address like 127.0.0.1:0 or 0.0.0.0:8080"
                                                .into(),
                                        ),
                                        None => {}
                                    }
                                }
                                "public_url" if !matches!(av.value, Node::Null) => {
                                    t.asynch.public_url = self.text(av, &ap)
                                }
                                "quiet" => {
                                    t.asynch.quiet =
                                        self.duration(av, &ap).unwrap_or(t.asynch.quiet)
                                }
                                "max_wait" => {
                                    t.asynch.max_wait =
                                        self.duration(av, &ap).unwrap_or(t.asynch.max_wait)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some((version, pos)) = explicit_version {
            if let Some(url_version) = t.version.filter(|v| *v != version) {
                self.err(
                    pos,
                    "target.version",
                    format!("the URL is a {url_version} URL but version says {version}"),
                );
            }
            t.version = Some(version);
        }
        let url_names_instance = t
            .url
            .as_deref()
            .and_then(|u| WebhookUrl::parse(u).ok())
            .is_some_and(|u| u.instance.is_some());
        if url_names_instance {
            if let Some(pos) = entries
                .iter()
                .find(|(k, _)| k.value == "instance")
                .map(|(k, _)| k.pos)
            {
                self.err(
                    pos,
                    "target.instance",
                    "the URL already names a channel instance (`/hookInstance/…`)".into(),
                );
            }
        }
        Some(t)
    }

    pub(super) fn poll_interval(&mut self, node: &At<Node>, path: &str) -> Option<PollInterval> {
        if let Node::Map(e) = &node.value {
            self.keys(e, &["exponential", "max"], path);
            let initial = e
                .iter()
                .find(|(k, _)| k.value == "exponential")
                .and_then(|(_, v)| self.duration(v, &join(path, "exponential")));
            let max = e
                .iter()
                .find(|(k, _)| k.value == "max")
                .and_then(|(_, v)| self.duration(v, &join(path, "max")));
            return match initial {
                Some(initial) => Some(PollInterval::Exponential {
                    initial,
                    max: max.unwrap_or(Duration::from_secs(5)),
                }),
                None => {
                    self.err(
                        node.pos,
                        path,
                        "an exponential interval needs `exponential: FIRST_WAIT`".into(),
                    );
                    None
                }
            };
        }
        match self.text(node, path)?.as_str() {
            "immediate" => Some(PollInterval::Immediate),
            other => parse_duration(other)
                .map(PollInterval::Fixed)
                .map_err(|e| {
                    self.err(
                        node.pos,
                        path,
                        format!("{e}; or `immediate`, or `{{exponential: 250ms, max: 4s}}`"),
                    )
                })
                .ok(),
        }
    }

    /// `auth.jwe: {public_key_file | public_key_url, alg, enc}` (`{}` or `true`: the target's
    /// own key, RSA-OAEP-256 and A256GCM).
    fn jwe(&mut self, node: &At<Node>, path: &str) -> Option<crate::scenario::JwePlan> {
        use crate::protocol::jwt::jwe::{ContentEnc, KeyAlg};
        use crate::scenario::{JweKeySource, JwePlan};
        let mut plan = JwePlan {
            key: JweKeySource::Target,
            alg: KeyAlg::default(),
            enc: ContentEnc::default(),
        };
        match &node.value {
            Node::Bool(true) => return Some(plan),
            Node::Bool(false) => return None,
            _ => {}
        }
        let e = self.map(node, path)?;
        self.keys(
            e,
            &["public_key_file", "public_key_url", "alg", "enc"],
            path,
        );
        let g = |k: &str| node.value.get(k);
        match (g("public_key_file"), g("public_key_url")) {
            (Some(_), Some(u)) => self.err(
                u.pos,
                &format!("{path}.public_key_url"),
                "give public_key_file or public_key_url, not both".into(),
            ),
            (Some(f), None) => {
                if let Some(t) = self.text(f, &format!("{path}.public_key_file")) {
                    let full = self.base_dir().join(t);
                    if !self.files.is_file(&full) {
                        self.err(
                            f.pos,
                            &format!("{path}.public_key_file"),
                            format!("no such file: {}", full.display()),
                        );
                    }
                    plan.key = JweKeySource::File(full);
                }
            }
            (None, Some(u)) => {
                if let Some(t) = self.text(u, &format!("{path}.public_key_url")) {
                    if t.starts_with("http://") || t.starts_with("https://") {
                        plan.key = JweKeySource::Url(t);
                    } else {
                        self.err(
                            u.pos,
                            &format!("{path}.public_key_url"),
                            format!("`{t}` is not an http(s) URL"),
                        );
                    }
                }
            }
            (None, None) => {}
        }
        if let Some(a) = g("alg") {
            if let Some(t) = self.text(a, &format!("{path}.alg")) {
                match KeyAlg::parse(&t) {
                    Some(k) => plan.alg = k,
                    None => self.err(
                        a.pos,
                        &format!("{path}.alg"),
                        format!("`{t}` is not RSA-OAEP-256 or RSA-OAEP"),
                    ),
                }
            }
        }
        if let Some(c) = g("enc") {
            if let Some(t) = self.text(c, &format!("{path}.enc")) {
                match ContentEnc::parse(&t) {
                    Some(k) => plan.enc = k,
                    None => self.err(
                        c.pos,
                        &format!("{path}.enc"),
                        format!("`{t}` is not A256GCM or A128CBC-HS256"),
                    ),
                }
            }
        }
        Some(plan)
    }

    pub(super) fn auth(&mut self, node: &At<Node>) -> Option<Auth> {
        let entries = self.map(node, "auth")?;
        self.keys(
            entries,
            &[
                "client_id",
                "client_secret",
                "private_key_file",
                "algorithm",
                "claims",
                "jwe",
            ],
            "auth",
        );
        let mut a = Auth {
            client_id: String::new(),
            client_secret: None,
            private_key_file: None,
            algorithm: Alg::HS256,
            app_claim: AppClaim::AppId,
            user_identity: true,
            expires_in: Some(Duration::from_secs(3600)),
            jti: false,
            jwe: None,
        };
        let mut has_id = false;
        for (k, v) in entries {
            let path = format!("auth.{}", k.value);
            match k.value.as_str() {
                "client_id" => {
                    if let Some(id) = self.text(v, &path) {
                        a.client_id = id;
                        has_id = true;
                    }
                }
                "client_secret" => a.client_secret = self.text(v, &path).map(Secret),
                "jwe" => a.jwe = self.jwe(v, &path),
                "private_key_file" => {
                    a.private_key_file = self.text(v, &path).map(|p| self.base_dir().join(p));
                    let missing = a
                        .private_key_file
                        .as_ref()
                        .filter(|f| !self.files.is_file(f));
                    if let Some(f) = missing {
                        let message = format!("no such file: {}", f.display());
                        self.err(v.pos, &path, message);
                    }
                }
                "algorithm" => {
                    if let Some(s) = self.text(v, &path) {
                        match Alg::parse(&s.to_ascii_uppercase()) {
                            Some(alg) => a.algorithm = alg,
                            None => self.err(
                                v.pos,
                                &path,
                                format!("`{s}` is not one of HS256, HS512, RS256, RS512"),
                            ),
                        }
                    }
                }
                "claims" => {
                    if let Some(ce) = self.map(v, &path) {
                        self.keys(ce, &["app", "user_identity", "expires_in", "jti"], &path);
                        for (ck, cv) in ce {
                            let cp = format!("{path}.{}", ck.value);
                            match ck.value.as_str() {
                                "app" => match self.text(cv, &cp).as_deref() {
                                    Some("appId") => a.app_claim = AppClaim::AppId,
                                    Some("iss") => a.app_claim = AppClaim::Iss,
                                    Some("kore_iss") => a.app_claim = AppClaim::KoreIss,
                                    Some(other) => self.err(
                                        cv.pos,
                                        &cp,
                                        format!(
                                            "app must be appId, iss or kore_iss, not `{other}`"
                                        ),
                                    ),
                                    None => {}
                                },
                                "user_identity" => {
                                    a.user_identity = self.boolean(cv, &cp).unwrap_or(true)
                                }
                                "expires_in" => {
                                    a.expires_in = if matches!(cv.value, Node::Null) {
                                        None
                                    } else {
                                        self.duration(cv, &cp)
                                    }
                                }
                                "jti" => a.jti = self.boolean(cv, &cp).unwrap_or(false),
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !has_id && !entries.iter().any(|(k, _)| k.value == "client_id") {
            self.err(node.pos, "auth.client_id", "auth needs `client_id`".into());
        }
        if a.algorithm.is_hmac()
            && a.client_secret.is_none()
            && !entries.iter().any(|(k, _)| k.value == "client_secret")
        {
            self.err(
                node.pos,
                "auth.client_secret",
                format!("{} needs `client_secret`", a.algorithm),
            );
        }
        if !a.algorithm.is_hmac()
            && a.private_key_file.is_none()
            && !entries.iter().any(|(k, _)| k.value == "private_key_file")
        {
            self.err(
                node.pos,
                "auth.private_key_file",
                format!("{} needs `private_key_file`", a.algorithm),
            );
        }
        Some(a)
    }

    pub(super) fn user(&mut self, node: Option<&At<Node>>) -> Option<User> {
        let mut u = User {
            id: Template::parse("hookbench-{{run}}-{{vu}}").expect("valid"),
            first_name: None,
            last_name: None,
            email: None,
        };
        let Some(node) = node else { return Some(u) };
        let entries = self.map(node, "user")?;
        self.keys(entries, &["id", "first_name", "last_name", "email"], "user");
        for (k, v) in entries {
            let path = format!("user.{}", k.value);
            let t = self.template(v, &path);
            match k.value.as_str() {
                "id" => u.id = t.unwrap_or(u.id),
                "first_name" => u.first_name = t,
                "last_name" => u.last_name = t,
                "email" => u.email = t,
                _ => {}
            }
        }
        Some(u)
    }
}
