//! Tests of signing and verification.

use super::*;

fn template() -> ClaimsTemplate {
    ClaimsTemplate {
        client_id: "cs-1".into(),
        app_claim: AppClaim::AppId,
        user_identity: true,
        expires_in: Some(Duration::from_secs(600)),
        jti: true,
        extra: Map::new(),
    }
}

#[test]
fn hs_tokens_are_standard_jwts_both_ways() {
    for alg in [Alg::HS256, Alg::HS512] {
        let signer = Signer::hmac(alg, b"k3y").unwrap();
        let token = signer.sign(&template().for_user("u1")).unwrap();
        // Another implementation reads what the fast path signs...
        let mut v = Validation::new(alg.to_jwt());
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let read =
            jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(b"k3y"), &v).unwrap();
        assert_eq!(read.claims["userIdentity"], "u1");
        // ...and the fast check refuses a payload changed after signing.
        let (alg2, claims) = peek(&token).unwrap();
        let key = VerifyKey::secret(b"k3y");
        let policy = VerifyPolicy::default();
        assert!(verify_peeked(&token, alg2, claims.clone(), &key, &policy).is_ok());
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = signer.sign(&template().for_user("u2")).unwrap();
        let other_payload = other.split('.').nth(1).unwrap().to_string();
        parts[1] = &other_payload;
        let forged = parts.join(".");
        assert_eq!(
            verify_peeked(&forged, alg2, claims, &key, &policy).unwrap_err(),
            JwtError::BadSignature
        );
    }
}

#[test]
fn signing_for_a_user_gives_the_claims_for_that_user() {
    let signer = Signer::hmac(Alg::HS256, b"k").unwrap();
    for t in [
        template(),
        ClaimsTemplate {
            user_identity: false,
            app_claim: AppClaim::Iss,
            jti: false,
            ..template()
        },
    ] {
        let (_, a) = peek(&signer.sign_for(&t, "u9").unwrap()).unwrap();
        let mut b = t.for_user("u9");
        // jti and the issue time differ from token to token.
        b.jti = a.jti.clone();
        b.iat = a.iat;
        b.exp = a.exp;
        assert_eq!(a, b);
    }
}

#[test]
fn peek_reads_escaped_claims_and_skips_unknown_ones() {
    let signer = Signer::hmac(Alg::HS256, b"k").unwrap();
    let mut extra = Map::new();
    extra.insert("tenant".into(), Value::from("t-1"));
    extra.insert("roles".into(), serde_json::json!(["a", {"b": 1}]));
    let t = ClaimsTemplate {
        extra,
        ..template()
    };
    // An escaped quote and a non-ASCII letter cannot be borrowed: read as owned text.
    let user = "u\"\u{e9}";
    let token = signer.sign_for(&t, user).unwrap();
    let (alg, claims) = peek(&token).unwrap();
    assert_eq!(claims.sub.as_deref(), Some(user));
    assert_eq!(claims.user_identity.as_deref(), Some(user));
    assert_eq!(claims.app(), Some("cs-1"));
    assert!(claims.extra.is_empty());
    let key = VerifyKey::secret(b"k");
    assert!(verify_peeked(&token, alg, claims, &key, &VerifyPolicy::default()).is_ok());
    // The header value is `bearer ` and the same kind of token.
    let header = signer.bearer_for(&t, user).unwrap();
    let inner = bearer_token(&header).unwrap();
    assert_eq!(peek(inner).unwrap().1.sub.as_deref(), Some(user));
}

#[test]
fn an_empty_secret_signs_nothing() {
    let e = Signer::hmac(Alg::HS256, b"").unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn a_public_key_given_for_signing_is_named_as_such() {
    let public = include_bytes!("../../../tests/fixtures/rsa_public.pem");
    let e = Signer::rsa_pem(Alg::RS256, public).unwrap_err().to_string();
    assert!(e.contains("this is a public key"), "{e}");
    let e = Signer::rsa_pem(Alg::RS256, b"hello")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PEM file"), "{e}");
    let private = include_bytes!("../../../tests/fixtures/rsa_private.pem");
    assert!(Signer::rsa_pem(Alg::RS256, private).is_ok());
}

#[test]
fn hs_round_trip_and_bad_signature() {
    let signer = Signer::hmac(Alg::HS256, b"secret").unwrap();
    let token = signer.sign(&template().for_user("u1")).unwrap();
    let key = VerifyKey::secret(b"secret");
    let (alg, claims) = verify(&token, &key, &VerifyPolicy::default()).unwrap();
    assert_eq!(alg, Alg::HS256);
    assert_eq!(claims.app(), Some("cs-1"));
    assert_eq!(claims.user_identity.as_deref(), Some("u1"));
    let wrong = VerifyKey::secret(b"other");
    assert_eq!(
        verify(&token, &wrong, &VerifyPolicy::default()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn none_is_refused() {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(br#"{"appId":"cs-1"}"#)
    );
    let key = VerifyKey::secret(b"secret");
    assert_eq!(
        verify(&token, &key, &VerifyPolicy::default()),
        Err(JwtError::UnsupportedAlgorithm("none".into()))
    );
}

#[test]
fn claim_rules() {
    let p = VerifyPolicy {
        leeway: Duration::ZERO,
        ..Default::default()
    };
    let now = 1_000_000.0;
    let mut c = Claims {
        exp: Some(NumericDate(now - 1.0)),
        ..Default::default()
    };
    assert_eq!(check_claims(&c, &p, now), Err(JwtError::Expired));
    c.exp = Some(NumericDate(now + 0.5));
    assert_eq!(check_claims(&c, &p, now), Ok(()));
    let strict = VerifyPolicy {
        require_jti: true,
        ..p.clone()
    };
    assert_eq!(
        check_claims(&c, &strict, now),
        Err(JwtError::MissingClaim("jti"))
    );
    c.jti = Some("j".into());
    c.exp = Some(NumericDate(now + 7200.0));
    assert_eq!(check_claims(&c, &strict, now), Err(JwtError::JtiLifetime));
    c.is_anonymous = Some(true);
    c.exp = Some(NumericDate(now + 60.0));
    let no_anon = VerifyPolicy {
        allow_anonymous: false,
        ..p
    };
    assert_eq!(
        check_claims(&c, &no_anon, now),
        Err(JwtError::AnonymousNotAllowed)
    );
}

#[test]
fn fractional_times_and_iss() {
    let c: Claims =
        serde_json::from_str(r#"{"iss":"cs-9","iat":1700000000.25,"exp":1700000600.5}"#).unwrap();
    assert_eq!(c.app(), Some("cs-9"));
    assert_eq!(c.exp, Some(NumericDate(1_700_000_600.5)));
    let c = Claims {
        iat: Some(NumericDate(5.0)),
        ..Default::default()
    };
    assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"iat":5}"#);
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    assert_eq!(bearer_token("bearer abc").unwrap(), "abc");
    assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
    assert!(bearer_token("Basic abc").is_err());
    assert!(bearer_token("abc").is_err());
}
