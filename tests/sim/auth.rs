//! JWT acceptance and every refusal the platform documents, each answered 401 in the envelope.

use base64::Engine;
use hookbench::protocol::jwt::{Alg, Claims, NumericDate, Signer};
use hookbench::protocol::Version;
use serde_json::{json, Map};

use crate::common::{fixtures, Harness, Reply};

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn rsa_signer(alg: Alg, file: &str) -> Signer {
    Signer::rsa_pem(alg, &std::fs::read(fixtures().join(file)).unwrap()).unwrap()
}

async fn send(h: &Harness, token: &str, user: &str) -> Reply {
    let body =
        json!({"message": {"type": "text", "val": "balance"}, "from": {"id": user}}).to_string();
    h.post_with(
        &h.url(Version::V2, "default"),
        Some(&format!("bearer {token}")),
        body,
    )
    .await
}

fn assert_refused(r: &Reply, reason: &str) {
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(r.error_msg(), "Invalid Access token");
    assert_eq!(r.body["errors"][0]["code"], 401);
    assert_eq!(r.body["_v"], "v2");
    assert!(r.body["_t"].as_str().unwrap().starts_with("RTM-TRACE-"));
    assert_eq!(r.headers["x-hookbench-auth-error"], reason, "{}", r.raw);
}

fn claims(app: &str, user: &str) -> Claims {
    Claims {
        app_id: Some(app.into()),
        user_identity: Some(user.into()),
        sub: Some(user.into()),
        iat: Some(NumericDate(now().floor())),
        ..Default::default()
    }
}

#[tokio::test]
async fn third_party_token_styles_are_accepted() {
    let h = Harness::test_bot().await;
    // `iss` without `appId`, fractional times, an audience, and `Bearer`.
    let c = Claims {
        iss: Some("cs-hs".into()),
        sub: Some("tp".into()),
        iat: Some(NumericDate(now() - 0.5)),
        exp: Some(NumericDate(now() + 600.25)),
        aud: Some(json!("https://idproxy.kore.ai/authorize")),
        ..Default::default()
    };
    let token = h.sign(&c);
    let body = json!({"message": {"type": "text", "val": "quick"}, "from": {"id": "tp"}, "to": {"id": "st-test-0001", "groupInfo": {"id": "g"}}});
    let r = h
        .post_with(
            &h.url(Version::V2, "default"),
            Some(&format!("Bearer {token}")),
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // `{"appId": …}` alone.
    let bare = Claims {
        app_id: Some("cs-hs".into()),
        ..Default::default()
    };
    assert_eq!(send(&h, &h.sign(&bare), "anyone").await.status, 200);
    // HS512.
    let hs512 = Signer::hmac(Alg::HS512, b"test-secret")
        .unwrap()
        .sign(&claims("cs-hs", "u"))
        .unwrap();
    assert_eq!(send(&h, &hs512, "u").await.status, 200);
}

/// The SDK security page's claim aliases: `kore_iss` names the app, `kore_sub` the user and
/// `kore_jti` the token id (so replay is refused on it).
#[tokio::test]
async fn kore_claim_aliases_are_read_as_iss_sub_and_jti() {
    let h = Harness::test_bot().await;
    let mut extra = Map::new();
    extra.insert("kore_iss".into(), json!("cs-hs"));
    extra.insert("kore_sub".into(), json!("ka"));
    extra.insert("kore_jti".into(), json!("jti-kore-1"));
    let c = Claims {
        iat: Some(NumericDate(now().floor())),
        extra,
        ..Default::default()
    };
    let token = h.sign(&c);
    assert!(!token.is_empty());
    let r = send(&h, &token, "ka").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // The signer writes them when a scenario asks for `app: kore_iss`.
    let template = hookbench::protocol::jwt::ClaimsTemplate {
        client_id: "cs-hs".into(),
        app_claim: hookbench::protocol::jwt::AppClaim::KoreIss,
        user_identity: false,
        expires_in: Some(std::time::Duration::from_secs(60)),
        jti: true,
        extra: Map::new(),
    };
    let signed = Signer::hmac(Alg::HS256, b"test-secret")
        .unwrap()
        .sign_for(&template, "kb")
        .unwrap();
    let payload = signed.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["kore_iss"], "cs-hs");
    assert_eq!(claims["kore_sub"], "kb");
    assert!(claims["kore_jti"].is_string());
    assert!(
        claims.get("iss").is_none() && claims.get("sub").is_none() && claims.get("jti").is_none()
    );
    assert_eq!(send(&h, &signed, "kb").await.status, 200);
}

#[tokio::test]
async fn rs256_and_rs512_with_the_registered_public_key() {
    let h = Harness::test_bot().await;
    for alg in [Alg::RS256, Alg::RS512] {
        let token = rsa_signer(alg, "rsa_private.pem")
            .sign(&claims("cs-rs", "r"))
            .unwrap();
        assert_eq!(send(&h, &token, "r").await.status, 200, "{alg}");
    }
    let other = rsa_signer(Alg::RS256, "rsa_other_private.pem")
        .sign(&claims("cs-rs", "r"))
        .unwrap();
    assert_refused(&send(&h, &other, "r").await, "bad_signature");
}

#[tokio::test]
async fn missing_malformed_and_wrong_scheme() {
    let h = Harness::test_bot().await;
    let url = h.url(Version::V2, "default");
    let body = json!({"message": {"type": "text", "val": "x"}, "from": {"id": "u"}}).to_string();
    assert_refused(&h.post_with(&url, None, body.clone()).await, "missing");
    assert_refused(
        &h.post_with(&url, Some("bearer not.a.jwt"), body.clone())
            .await,
        "malformed",
    );
    let token = h.token("u");
    assert_refused(
        &h.post_with(&url, Some(&format!("Basic {token}")), body)
            .await,
        "malformed",
    );
}

#[tokio::test]
async fn bad_signature_and_unknown_app() {
    let h = Harness::test_bot().await;
    let forged = Signer::hmac(Alg::HS256, b"guess")
        .unwrap()
        .sign(&claims("cs-hs", "u"))
        .unwrap();
    assert_refused(&send(&h, &forged, "u").await, "bad_signature");
    let unknown = Signer::hmac(Alg::HS256, b"test-secret")
        .unwrap()
        .sign(&claims("cs-nobody", "u"))
        .unwrap();
    assert_refused(&send(&h, &unknown, "u").await, "unknown_app");
    let no_app = Claims {
        sub: Some("u".into()),
        ..Default::default()
    };
    assert_refused(&send(&h, &h.sign(&no_app), "u").await, "unknown_app");
}

#[tokio::test]
async fn expired_token() {
    let h = Harness::test_bot().await;
    let mut c = claims("cs-hs", "u");
    c.exp = Some(NumericDate(now() - 3600.0));
    assert_refused(&send(&h, &h.sign(&c), "u").await, "expired");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let h = Harness::test_bot().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::to_vec(&claims("cs-hs", "u")).unwrap();
    let token = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(payload)
    );
    assert_refused(&send(&h, &token, "u").await, "unsupported_algorithm");
}

#[tokio::test]
async fn hs_token_signed_with_the_public_key_is_refused() {
    // Algorithm confusion: an attacker signs HS256 using the app's *public* key as the secret.
    let h = Harness::test_bot().await;
    let public = std::fs::read(fixtures().join("rsa_public.pem")).unwrap();
    let token = Signer::hmac(Alg::HS256, &public)
        .unwrap()
        .sign(&claims("cs-rs", "u"))
        .unwrap();
    assert_refused(&send(&h, &token, "u").await, "algorithm_not_allowed");
    // And an RS token for an HS-only app.
    let rs = rsa_signer(Alg::RS256, "rsa_private.pem")
        .sign(&claims("cs-hs", "u"))
        .unwrap();
    assert_refused(&send(&h, &rs, "u").await, "algorithm_not_allowed");
}

#[tokio::test]
async fn identity_mismatch() {
    let h = Harness::test_bot().await;
    let token = h.sign(&claims("cs-hs", "alice"));
    assert_refused(&send(&h, &token, "mallory").await, "identity_mismatch");
    // Without userIdentity, from.id identifies the user.
    let mut c = claims("cs-hs", "alice");
    c.user_identity = None;
    assert_eq!(send(&h, &h.sign(&c), "mallory").await.status, 200);
}

#[tokio::test]
async fn strict_app_requires_claims_refuses_replay_and_long_jti_tokens() {
    let h = Harness::test_bot().await;
    let signer = Signer::hmac(Alg::HS256, b"strict-secret").unwrap();
    let mut c = claims("cs-strict", "s");
    assert_refused(
        &send(&h, &signer.sign(&c).unwrap(), "s").await,
        "missing_claim",
    );
    c.exp = Some(NumericDate(now() + 600.0));
    c.jti = Some("jti-1".into());
    let token = signer.sign(&c).unwrap();
    assert_eq!(send(&h, &token, "s").await.status, 200);
    assert_refused(&send(&h, &token, "s").await, "replay");
    c.jti = Some("jti-2".into());
    c.exp = Some(NumericDate(now() + 2.0 * 3600.0));
    assert_refused(
        &send(&h, &signer.sign(&c).unwrap(), "s").await,
        "jti_lifetime",
    );
    c.exp = Some(NumericDate(now() + 600.0));
    c.extra = Map::new();
    c.is_anonymous = Some(true);
    c.jti = Some("jti-3".into());
    assert_refused(&send(&h, &signer.sign(&c).unwrap(), "s").await, "anonymous");
}

#[tokio::test]
async fn v1_refusals_use_the_v1_envelope() {
    let h = Harness::test_bot().await;
    let r = h
        .post_with(
            &h.url(Version::V1, "default"),
            None,
            r#"{"message":{"text":"x"},"from":{"id":"u"}}"#.into(),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"errors": [{"msg": "Invalid Access token", "code": 401}]})
    );
}

/// "Enforce JWE Encryption": the demo bot's JWE app refuses a plain token and accepts the same
/// token encrypted to the bot's public key (every profile); a JWE to another key does not
/// decrypt; an app without JWE refuses one; the public key is served and printed.
#[tokio::test]
async fn a_jwe_required_app_takes_encrypted_tokens_only() {
    use hookbench::protocol::jwt::jwe::{self, ContentEnc, KeyAlg};
    let h = Harness::demo().await;
    let info = h.sim.info();
    let app = info
        .apps
        .iter()
        .find(|a| a.jwe == hookbench::sim::bot::JweMode::Required)
        .expect("the demo bot has a JWE app");
    let pem = app.public_key_pem.clone().unwrap();
    let served = h
        .http
        .get(format!(
            "{}/api/public/bot/{}/jwe/publickey",
            h.sim.base_url(),
            info.bot_id
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served, pem);
    let key = jwe::public_key_from_pem(&pem).unwrap();
    let signed = Signer::hmac(Alg::HS256, app.client_secret.as_deref().unwrap().as_bytes())
        .unwrap()
        .sign(&claims(&app.client_id, "jw"))
        .unwrap();
    assert_refused(&send(&h, &signed, "jw").await, "jwe_required");
    for alg in [KeyAlg::RsaOaep256, KeyAlg::RsaOaep] {
        for enc in [ContentEnc::A256Gcm, ContentEnc::A128CbcHs256] {
            let sealed = jwe::encrypt(&signed, &key, alg, enc).unwrap();
            let r = send(&h, &sealed, "jw").await;
            assert_eq!(r.status, 200, "{alg:?} {enc:?}: {}", r.raw);
        }
    }
    // Encrypted to another key.
    let other = rsa::RsaPrivateKey::new(&mut rand_core06::OsRng, 1024).unwrap();
    let wrong = jwe::encrypt(
        &signed,
        &rsa::RsaPublicKey::from(&other),
        KeyAlg::RsaOaep256,
        ContentEnc::A256Gcm,
    )
    .unwrap();
    assert_refused(&send(&h, &wrong, "jw").await, "jwe_undecryptable");
    // The first demo app does not take JWE.
    let plain_app = &info.apps[0];
    assert_eq!(plain_app.jwe, hookbench::sim::bot::JweMode::Off);
    let first = Signer::hmac(
        Alg::HS256,
        plain_app.client_secret.as_deref().unwrap().as_bytes(),
    )
    .unwrap()
    .sign(&claims(&plain_app.client_id, "jw"))
    .unwrap();
    let sealed = jwe::encrypt(&first, &key, KeyAlg::RsaOaep256, ContentEnc::A256Gcm).unwrap();
    assert_refused(&send(&h, &sealed, "jw").await, "jwe_not_enabled");
}
