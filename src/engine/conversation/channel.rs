//! The parts of a step that speak for a particular kind of client: a browser's CORS
//! pre-flight before its first request to a URL, and the `notifyV2` request of a `notify` step.

use super::*;

impl Conversation<'_> {
    /// As a browser: before the first request to `url` (per user, as a browser caches it), a
    /// CORS pre-flight from the target's page origin asking for `Authorization` and
    /// `Content-Type`. A pre-flight that does not allow them fails the step, as the browser
    /// would block the request. Nothing without `target.browser`.
    pub(super) async fn preflight(
        &self,
        url: &Url,
        method: &str,
        done: &mut std::collections::HashSet<String>,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let origin = self.target.browser.as_deref()?;
        if done.contains(url.as_str()) {
            return None;
        }
        let t = self.target;
        let req = t
            .http
            .raw()
            .request(http::Method::OPTIONS, url.as_str())
            .header(http::header::ORIGIN, origin)
            .header(http::header::ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(
                http::header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .timeout(t.timeout);
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Some(Failure::Transport {
                    kind: TransportKind::Other,
                    message: format!("CORS pre-flight: {e}"),
                })
            }
        };
        result.timings.push(Timing {
            event: "preflight",
            at_us: us(started.elapsed()),
        });
        let h = |n: http::header::HeaderName| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let origin_ok = {
            let o = h(http::header::ACCESS_CONTROL_ALLOW_ORIGIN);
            o == "*" || o == origin.to_ascii_lowercase()
        };
        let headers = h(http::header::ACCESS_CONTROL_ALLOW_HEADERS);
        let names: Vec<&str> = headers.split(',').map(str::trim).collect();
        // `*` does not cover Authorization (Fetch standard).
        let auth_ok = names.contains(&"authorization");
        if !resp.status().is_success() || !origin_ok || !auth_ok {
            return Some(Failure::Protocol {
                status: resp.status().as_u16(),
                code: None,
                message: format!(
                    "the CORS pre-flight for {} does not allow a request from {origin} with Authorization (allow-origin `{}`, allow-headers `{headers}`): a browser would block it",
                    url.as_str(),
                    h(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
                ),
            });
        }
        if done.len() >= 4096 {
            done.clear();
        }
        done.insert(url.as_str().to_string());
        None
    }

    /// The `notifyV2` request of a `notify` step, to this conversation's user, and its URL.
    pub(super) fn notify_request(
        &self,
        state: &State<'_>,
        message: &crate::scenario::template::Template,
        kind: &str,
        parameters: &[(String, crate::scenario::template::Template)],
        instance: Option<&str>,
    ) -> Result<(Bytes, Url), Failure> {
        let t = self.target;
        if t.mode != Mode::Async {
            return Err(usage(
                "a notify step needs an async target (notifications arrive at POST_URL)".into(),
            ));
        }
        let vars = &*state.vars;
        let params: Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(render(v, vars))))
            .collect();
        let mut identity = json!({ "email": state.user });
        if !params.is_empty() {
            identity["parameters"] = Value::Object(params);
        }
        let instance = instance
            .map(str::to_string)
            .or_else(|| t.instance.clone())
            .unwrap_or_else(|| "default".into());
        let body = json!({
            "channel": "ivr", "webhookInstanceName": instance, "userIdentityType": "resolve",
            "content": { "type": kind, "value": render(message, vars) },
            "identities": [identity],
        });
        let url = Url::parse(&format!(
            "{}/api/public/bot/{}/notifyV2",
            t.endpoints.base, t.endpoints.bot_id
        ))
        .map_err(transport)?;
        Ok((Bytes::from(body.to_string()), url))
    }
}
