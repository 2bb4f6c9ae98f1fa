//! From the raw file to a [`Bot`]: each app, instance and dialog validated on its own, every
//! error collected.

use super::*;

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// The value, or `None` with its errors added to `errors`.
fn keep<T>(errors: &mut Vec<Diag>, r: Result<T, BotError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(BotError(d)) => {
            errors.extend(d);
            None
        }
    }
}

/// The reader's message without its own `error: line L column C:` prefix (the diagnostic
/// says where).
pub(super) fn serde_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let rest = first.strip_prefix("error:").unwrap_or(first).trim_start();
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, msg)) => msg.to_string(),
        None => rest.to_string(),
    }
}

pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) base_dir: Option<&'a Path>,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        at: &serde_saphyr::Location,
        path: String,
        message: String,
    ) -> Result<T, BotError> {
        let pos = Pos {
            line: at.line(),
            column: at.column(),
        };
        Err(BotError(vec![Diag::at(
            self.file, self.text, pos, &path, message, None,
        )]))
    }

    pub(super) fn bot(&self, raw: RawBot) -> Result<Bot, BotError> {
        let nowhere = serde_saphyr::Location::UNKNOWN;
        if raw.apps.is_empty() {
            return self.err(
                &nowhere,
                "apps".into(),
                "a bot needs at least one app".into(),
            );
        }
        if raw.instances.is_empty() {
            return self.err(
                &nowhere,
                "instances".into(),
                "a bot needs at least one channel instance".into(),
            );
        }
        // Each app, instance and dialog is validated on its own, so every error is found.
        let mut errors = Vec::new();
        let apps: Vec<App> = raw
            .apps
            .into_iter()
            .enumerate()
            .filter_map(|(i, a)| keep(&mut errors, self.app(i, a)))
            .collect();
        let mut seen = HashSet::new();
        let mut instances = Vec::new();
        for (i, inst) in raw.instances.into_iter().enumerate() {
            let at = inst.referenced;
            if !seen.insert(inst.value.id.clone()) {
                keep(
                    &mut errors,
                    self.err::<()>(
                        &at,
                        format!("instances[{i}].id"),
                        format!("duplicate instance id `{}`", inst.value.id),
                    ),
                );
                continue;
            }
            if let Some(instance) = keep(&mut errors, self.instance(i, inst)) {
                instances.push(instance);
            }
        }
        let s = raw.settings;
        let settings = Settings {
            session_idle: s
                .session_idle
                .map(DurationSpec::get)
                .unwrap_or(Duration::from_secs(15 * 60)),
            poll_ttl: s
                .poll_ttl
                .map(DurationSpec::get)
                .unwrap_or(Duration::from_secs(5 * 60)),
            connection_idle: s
                .connection_idle
                .map(DurationSpec::get)
                .unwrap_or(Duration::from_secs(60)),
            max_file_bytes: s.max_file_bytes.unwrap_or(25 * 1024 * 1024),
            max_chunk_bytes: s.max_chunk_bytes.unwrap_or(2 * 1024 * 1024),
            v1_templates: s.v1_templates.unwrap_or(TemplateEncoding::Escaped),
            v2_templates: s.v2_templates.unwrap_or(TemplateEncoding::Object),
        };
        let mut names = HashSet::new();
        let mut dialogs = Vec::new();
        for (i, d) in raw.dialogs.into_iter().enumerate() {
            let at = d.referenced;
            if !names.insert(d.value.name.clone()) {
                keep(
                    &mut errors,
                    self.err::<()>(
                        &at,
                        format!("dialogs[{i}].name"),
                        format!("duplicate dialog `{}`", d.value.name),
                    ),
                );
                continue;
            }
            if let Some(dialog) = keep(&mut errors, self.dialog(i, at, d.value)) {
                dialogs.push(dialog);
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|d| (d.pos.line, d.pos.column));
            return Err(BotError(errors));
        }
        let says = |r: RawSays| match r {
            RawSays::One(s) => vec![say(s)],
            RawSays::Many(v) => v.into_iter().map(say).collect(),
        };
        let jwe_key = self.jwe_key(&raw.bot)?;
        if jwe_key.is_none() {
            if let Some(i) = apps.iter().position(|a| a.jwe != JweMode::Off) {
                return self.err(
                    &nowhere,
                    format!("apps[{i}].jwe"),
                    "an app that takes JWE needs the bot's key pair (bot.jwe_private_key or bot.jwe_private_key_file)".into(),
                );
            }
        }
        Ok(Bot {
            jwe_key,
            id: raw.bot.id.clone(),
            name: raw.bot.name.unwrap_or(raw.bot.id),
            apps,
            instances,
            settings,
            welcome: says(raw.welcome),
            fallback: raw
                .fallback
                .map(says)
                .unwrap_or_else(|| vec![Say::Text("Sorry, I didn't understand that.".into())]),
            dialogs,
        })
    }

    /// The bot's JWE key pair, inline or from a file beside the bot file.
    fn jwe_key(&self, raw: &RawBotInfo) -> Result<Option<std::sync::Arc<JweKey>>, BotError> {
        let nowhere = serde_saphyr::Location::UNKNOWN;
        let pem = match (&raw.jwe_private_key, &raw.jwe_private_key_file) {
            (Some(_), Some(_)) => {
                return self.err(
                    &nowhere,
                    "bot.jwe_private_key".into(),
                    "give jwe_private_key or jwe_private_key_file, not both".into(),
                )
            }
            (Some(p), None) => p.clone(),
            (None, Some(f)) => {
                let full: PathBuf = self
                    .base_dir
                    .map(|d| d.join(f))
                    .unwrap_or_else(|| PathBuf::from(f));
                crate::common::read_limited(&full, crate::common::MAX_KEY_BYTES).or_else(|e| {
                    self.err(
                        &nowhere,
                        "bot.jwe_private_key_file".into(),
                        format!("cannot read {}: {e}", full.display()),
                    )
                })?
            }
            (None, None) => return Ok(None),
        };
        crate::protocol::jwt::jwe::private_key_from_pem(&pem)
            .map(|k| Some(std::sync::Arc::new(JweKey(k))))
            .or_else(|e| self.err(&nowhere, "bot.jwe_private_key".into(), e.to_string()))
    }

    fn instance(&self, i: usize, spanned: Spanned<RawInstance>) -> Result<Instance, BotError> {
        let at = spanned.referenced;
        let r = spanned.value;
        let faults = Faults::from_raw(r.faults)
            .or_else(|m| self.err(&at, format!("instances[{i}].faults"), m.0))?;
        let rate_limit = match r.rate_limit {
            None => None,
            Some(rl) if rl.requests == 0 || rl.per.get().is_zero() => {
                return self.err(
                    &at,
                    format!("instances[{i}].rate_limit"),
                    "requests and per must be above zero".into(),
                )
            }
            Some(rl) => Some(RateLimit {
                per_second: f64::from(rl.requests) / rl.per.get().as_secs_f64(),
                burst: f64::from(rl.burst.unwrap_or(rl.requests).max(1)),
            }),
        };
        if let Some(url) = &r.post_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return self.err(
                    &at,
                    format!("instances[{i}].post_url"),
                    format!("`{url}` is not an http(s) URL"),
                );
            }
        }
        if r.proactive_notifications && r.mode != Mode::Async {
            return self.err(
                &at,
                format!("instances[{i}].proactive_notifications"),
                "proactive notifications are delivered to POST_URL: only an async instance has them".into(),
            );
        }
        Ok(Instance {
            proactive_notifications: r.proactive_notifications,
            first: i == 0,
            id: r.id,
            mode: r.mode,
            polling: r.polling,
            post_url: r.post_url,
            sync_timeout: r.sync_timeout.map(DurationSpec::get).unwrap_or(SYNC_BUDGET),
            rate_limit,
            enabled: r.enabled,
            faults,
            delivery: DeliveryPolicy {
                attempts: r.delivery.attempts.unwrap_or(5).max(1),
                backoff: r
                    .delivery
                    .backoff
                    .map(DurationSpec::get)
                    .unwrap_or(Duration::from_millis(200)),
                max_backoff: r
                    .delivery
                    .max_backoff
                    .map(DurationSpec::get)
                    .unwrap_or(Duration::from_secs(5)),
                timeout: r
                    .delivery
                    .timeout
                    .map(DurationSpec::get)
                    .unwrap_or(Duration::from_secs(5)),
            },
        })
    }

    fn app(&self, i: usize, spanned: Spanned<RawApp>) -> Result<App, BotError> {
        let at = spanned.referenced;
        let r = spanned.value;
        let path = |k: &str| format!("apps[{i}].{k}");
        let algorithms = match r.algorithms {
            None => Alg::ALL.to_vec(),
            Some(list) => list
                .iter()
                .map(|a| {
                    Alg::parse(a).ok_or(()).or_else(|_| {
                        self.err(
                            &at,
                            path("algorithms"),
                            format!(
                                "unknown algorithm `{a}` (expected HS256, HS512, RS256 or RS512)"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut policy = VerifyPolicy {
            algorithms,
            allow_anonymous: r.allow_anonymous,
            ..Default::default()
        };
        if let Some(l) = r.leeway {
            policy.leeway = l.get();
        }
        for claim in &r.require {
            match claim.as_str() {
                "exp" => policy.require_exp = true,
                "iat" => policy.require_iat = true,
                "jti" => policy.require_jti = true,
                other => {
                    return self.err(
                        &at,
                        path("require"),
                        format!("cannot require `{other}` (expected exp, iat or jti)"),
                    )
                }
            }
        }
        let pem = match (&r.public_key, &r.public_key_file) {
            (Some(_), Some(_)) => {
                return self.err(
                    &at,
                    path("public_key"),
                    "give public_key or public_key_file, not both".into(),
                )
            }
            (Some(p), None) => Some(p.clone().into_bytes()),
            (None, Some(f)) => {
                let full: PathBuf = self
                    .base_dir
                    .map(|d| d.join(f))
                    .unwrap_or_else(|| PathBuf::from(f));
                Some(
                    crate::common::read_bytes_limited(&full, crate::common::MAX_KEY_BYTES)
                        .or_else(|e| {
                            self.err(
                                &at,
                                path("public_key_file"),
                                format!("cannot read {}: {e}", full.display()),
                            )
                        })?,
                )
            }
            (None, None) => None,
        };
        let public_key = pem
            .map(|p| {
                VerifyKey::rsa_pem(&p).or_else(|e| self.err(&at, path("public_key"), e.to_string()))
            })
            .transpose()?;
        if r.client_secret.is_none() && public_key.is_none() {
            return self.err(
                &at,
                format!("apps[{i}]"),
                "an app needs a client_secret or a public key".into(),
            );
        }
        Ok(App {
            client_id: r.client_id,
            secret: r
                .client_secret
                .as_ref()
                .map(|s| VerifyKey::secret(s.as_bytes())),
            public_key,
            policy,
            client_secret: r.client_secret,
            jwe: r.jwe,
        })
    }

    fn dialog(
        &self,
        i: usize,
        at: serde_saphyr::Location,
        r: RawDialog,
    ) -> Result<Dialog, BotError> {
        let regex = match r.matcher.regex {
            None => None,
            Some(re) => Some(Regex::new(&format!("(?i){}", re.value)).or_else(|e| {
                self.err(
                    &re.referenced,
                    format!("dialogs[{i}].match.regex"),
                    format!("invalid regex: {}", first_line(&e.to_string())),
                )
            })?),
        };
        let matcher = Matcher {
            keywords: r
                .matcher
                .keywords
                .iter()
                .map(|k| k.to_lowercase())
                .collect(),
            regex,
            attachment: r.matcher.attachment,
        };
        if matcher.keywords.is_empty() && matcher.regex.is_none() && !matcher.attachment {
            return self.err(
                &at,
                format!("dialogs[{i}].match"),
                "a dialog needs keywords, a regex or `attachment: true`".into(),
            );
        }
        let mut steps = Vec::new();
        for (j, s) in r.steps.into_iter().enumerate() {
            let sat = s.referenced;
            steps.push(match s.value {
                RawStep::Say(s) => Step::Say(say(s)),
                RawStep::Ask(a) => Step::Ask {
                    prompt: a.prompt,
                    slot: a.slot,
                },
                RawStep::End(reason) => Step::End(reason),
                RawStep::Form(f) => {
                    let form_id = ids::stable_id("frm", &format!("{}/{}", r.name, f.name));
                    Step::Form(Arc::new(Form {
                        fields: f
                            .fields
                            .into_iter()
                            .map(|fl| FormField {
                                id: ids::stable_id("fct", &format!("{form_id}/{}", fl.key)),
                                label: fl.label.unwrap_or_else(|| fl.key.clone()),
                                kind: fl.r#type.unwrap_or_else(|| "textField".into()),
                                key: fl.key,
                            })
                            .collect(),
                        id: form_id,
                        name: f.name,
                        prompt: f.prompt,
                    }))
                }
                RawStep::Service(svc) => {
                    let (delay, fail_rate, on_failure) = match svc {
                        RawService::Delay(d) => (d, None, None),
                        RawService::Full {
                            delay,
                            fail_rate,
                            on_failure,
                        } => (delay, fail_rate, on_failure),
                    };
                    let fail_rate = fail_rate.unwrap_or(0.0);
                    if !(0.0..=1.0).contains(&fail_rate) {
                        return self.err(
                            &sat,
                            format!("dialogs[{i}].steps[{j}].service.fail_rate"),
                            "must be between 0 and 1".into(),
                        );
                    }
                    Step::Service {
                        delay,
                        fail_rate,
                        on_failure: on_failure.unwrap_or_else(|| {
                            "Sorry, the service is not available right now.".into()
                        }),
                    }
                }
            });
        }
        Ok(Dialog {
            task_id: ids::stable_id("dg", &r.name),
            name: r.name,
            matcher,
            steps,
        })
    }
}

fn say(r: RawSay) -> Say {
    match r {
        RawSay::Text(t) => Say::Text(t),
        RawSay::Template { template } => Say::Template(template),
    }
}
