//! The judging function of every channel check. A judge talks to the target through
//! [`Ctx`] (which records every exchange) and returns `Ok` or the first mismatch. The bot
//! behind the target must answer the certification utterances (`docs/conformance.md`: the
//! demo bot does).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{json, Value};

use crate::certify::probe::{
    is_created_on, is_hex, is_prefixed_uuid, Auth, Body, Evidence, Judged, Miss, Prober, Req, Resp,
};
use crate::client::Receiver;
use crate::protocol::jwt::{Alg, AppClaim, Claims, ClaimsTemplate, NumericDate, Signer};
use crate::protocol::urls::Endpoints;

mod polling;
mod sync;
mod tokens;

use polling::*;
use sync::*;
use tokens::*;

/// Where the checks send their requests.
#[derive(Debug, Clone)]
pub struct ChannelTarget {
    /// Base URL and bot id (polls, uploads, the unknown-bot check).
    pub endpoints: Endpoints,
    /// V1 message URL.
    pub v1: Option<String>,
    /// V2 message URL of a sync instance with polling on.
    pub v2_poll: Option<String>,
    /// V2 message URL of a sync instance with polling off.
    pub v2_nopoll: Option<String>,
    /// V2 message URL of an async instance whose POST_URL reaches `receiver`.
    pub v2_async: Option<String>,
    /// V2 message URL of a rate-limited sync instance (CH-ERR-03).
    pub v2_limited: Option<String>,
    /// The upload API's channel type (`ivr` for the first instance).
    pub upload_channel: Option<String>,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (HS256/HS512).
    pub client_secret: String,
    /// A key-pair app: its client id and RSA private key (PEM), for CH-AUTH-09.
    pub rsa_app: Option<(String, Vec<u8>)>,
}

/// What a judge works with.
#[derive(Debug)]
pub struct Ctx {
    /// The target.
    pub target: ChannelTarget,
    /// Requests.
    pub prober: Prober,
    /// The POST_URL receiver for async checks.
    pub receiver: Option<Receiver>,
    /// Makes user ids unique to this run.
    pub run: String,
}

/// A judging function.
pub type Judge =
    for<'a> fn(&'a Ctx, &'a mut Evidence) -> Pin<Box<dyn Future<Output = Judged> + Send + 'a>>;

impl Ctx {
    /// A user id unique to this run and check.
    fn user(&self, check: &str) -> String {
        format!("cert-{}-{}", self.run, check.to_lowercase())
    }

    fn template(&self, app_claim: AppClaim) -> ClaimsTemplate {
        ClaimsTemplate {
            client_id: self.target.client_id.clone(),
            app_claim,
            user_identity: true,
            expires_in: Some(Duration::from_secs(3600)),
            jti: false,
            extra: serde_json::Map::new(),
        }
    }

    fn signed(
        &self,
        alg: Alg,
        secret: &str,
        app_claim: AppClaim,
        user: &str,
    ) -> Result<Auth, Miss> {
        let signer = Signer::hmac(alg, secret.as_bytes())
            .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
        let token = signer
            .sign_for(&self.template(app_claim), user)
            .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
        Ok(Auth::Header(format!("bearer {token}")))
    }

    /// A valid HS256 token for `user`.
    fn auth(&self, user: &str) -> Result<Auth, Miss> {
        self.signed(
            Alg::HS256,
            &self.target.client_secret,
            AppClaim::AppId,
            user,
        )
    }

    fn need<'a>(url: &'a Option<String>, what: &str) -> Result<&'a str, Miss> {
        url.as_deref()
            .ok_or_else(|| Miss::Skipped(format!("no {what} was given")))
    }

    /// The V2 sync URL: polling on if given, else polling off.
    fn v2_sync(&self) -> Result<&str, Miss> {
        self.target
            .v2_poll
            .as_deref()
            .or(self.target.v2_nopoll.as_deref())
            .ok_or_else(|| Miss::Skipped("no V2 sync URL was given".into()))
    }

    fn body(&self, user: &str, message: Value) -> Value {
        json!({"message": message, "from": {"id": user}, "to": {"id": self.target.endpoints.bot_id}})
    }

    /// A V2 text turn.
    async fn say(
        &self,
        ev: &mut Evidence,
        url: &str,
        user: &str,
        text: &str,
    ) -> Result<Resp, Miss> {
        let body = self.body(user, json!({"type": "text", "val": text}));
        self.prober
            .send(ev, Req::post(url, self.auth(user)?, body))
            .await
    }

    /// A V2 turn with any message and session flag.
    async fn send(
        &self,
        ev: &mut Evidence,
        url: &str,
        user: &str,
        mut body: Value,
    ) -> Result<Resp, Miss> {
        body["from"] = json!({"id": user});
        self.prober
            .send(ev, Req::post(url, self.auth(user)?, body))
            .await
    }

    async fn poll(&self, ev: &mut Evidence, user: &str, poll_id: &str) -> Result<Resp, Miss> {
        let url = self.target.endpoints.poll(poll_id);
        self.prober.send(ev, Req::get(url, self.auth(user)?)).await
    }

    /// Polls until the answer is not `Inprogress` (at most 15 s, every 100 ms).
    async fn poll_done(&self, ev: &mut Evidence, user: &str, poll_id: &str) -> Result<Resp, Miss> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.poll(ev, user, poll_id).await?;
            if r.str_at("/status") != Some("Inprogress") {
                return Ok(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(r.miss("/status", "a final answer within 15 s", "still Inprogress"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `transfer` up to the service node: the answer that should carry a pollId (or, with
    /// polling off, the whole flow).
    async fn slow_turn(&self, ev: &mut Evidence, url: &str, user: &str) -> Result<Resp, Miss> {
        let r = self.say(ev, url, user, "transfer").await?;
        r.status_is(200)?;
        let r = self.say(ev, url, user, "100").await?;
        r.status_is(200)?;
        let r = self.say(ev, url, user, "savings").await?;
        r.status_is(200)?;
        Ok(r)
    }
}

fn boxed<'a>(
    f: impl Future<Output = Judged> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Judged> + Send + 'a>> {
    Box::pin(f)
}

macro_rules! judges {
    ($($id:literal => $f:ident),* $(,)?) => {
        /// The ids that have a judge.
        pub const JUDGED: &[&str] = &[$($id),*];

        /// The judge of a channel check.
        pub fn judge(id: &str) -> Option<Judge> {
            match id {
                $($id => Some(|c, e| boxed($f(c, e))),)*
                _ => None,
            }
        }
    };
}

judges! {
    "CH-V1-01" => v1_text,
    "CH-V1-02" => v1_task,
    "CH-V1-03" => v1_minimal,
    "CH-V1-04" => v1_missing_text,
    "CH-V1-05" => v1_session_new,
    "CH-V2-01" => v2_shape,
    "CH-V2-02" => v2_task,
    "CH-V2-03" => v2_on_connect,
    "CH-V2-04" => v2_closure,
    "CH-V2-05" => v2_closure_ignored,
    "CH-V2-06" => v2_template,
    "CH-V2-07" => v2_form,
    "CH-V2-08" => v2_invalid,
    "CH-V2-09" => v2_attachments_need_text,
    "CH-V2-10" => v2_order,
    "CH-V2-POLL-01" => poll_issued,
    "CH-V2-POLL-02" => poll_in_progress,
    "CH-V2-POLL-03" => poll_final,
    "CH-V2-POLL-04" => poll_once,
    "CH-V2-POLL-05" => poll_unknown,
    "CH-V2-POLL-06" => poll_chained,
    "CH-V2-POLL-07" => poll_owner,
    "CH-V2-NOPOLL-01" => nopoll_whole,
    "CH-V2-NOPOLL-02" => nopoll_budget,
    "CH-V2-ASYNC-01" => async_ack,
    "CH-V2-ASYNC-02" => async_ack_fast,
    "CH-V2-ASYNC-03" => async_deliveries,
    "CH-V2-ASYNC-04" => async_task,
    "CH-V2-ASYNC-05" => async_end_of_message,
    "CH-AUTH-01" => auth_missing,
    "CH-AUTH-02" => auth_bad_signature,
    "CH-AUTH-03" => auth_none,
    "CH-AUTH-04" => auth_expired,
    "CH-AUTH-05" => auth_identity,
    "CH-AUTH-06" => auth_iss,
    "CH-AUTH-07" => auth_hs512,
    "CH-AUTH-08" => auth_scheme,
    "CH-AUTH-09" => auth_rs256,
    "CH-ERR-01" => err_unknown_bot,
    "CH-ERR-02" => err_too_large,
    "CH-ERR-03" => err_rate_limited,
    "CH-CORS-01" => cors,
    "CH-UP-01" => upload_token,
    "CH-UP-02" => upload_chunks,
    "CH-UP-03" => upload_message,
    "CH-UP-04" => upload_too_large,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::catalogue::{Side, CHECKS};

    #[test]
    fn every_channel_check_has_a_judge_and_every_judge_a_check() {
        for c in CHECKS.iter().filter(|c| c.side == Side::Channel) {
            assert!(judge(c.id).is_some(), "{} has no judge", c.id);
        }
        for id in JUDGED {
            assert!(
                crate::certify::catalogue::find(id).is_some(),
                "{id} is judged but not catalogued"
            );
        }
        assert!(judge("CH-NOPE-01").is_none());
    }
}
