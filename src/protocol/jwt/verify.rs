//! Reading and verifying tokens: what the simulator does with every request's token.

use super::*;

/// The key an app verifies with.
#[derive(Clone)]
pub enum VerifyKey {
    /// The client secret (HS family), keyed once for each HS algorithm.
    Secret(Box<SecretKey>),
    /// The registered public key (RS family).
    RsaPublic(DecodingKey),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyKey::Secret(_) => f.write_str("Secret(<redacted>)"),
            VerifyKey::RsaPublic(_) => f.write_str("RsaPublic"),
        }
    }
}

/// A client secret keyed for HS256 and HS512 once, so checking a token costs the MAC of
/// the token only (keying HMAC hashes two blocks of its own).
#[derive(Clone)]
pub struct SecretKey {
    s256: Mac,
    s512: Mac,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    fn mac(&self, alg: Alg) -> Option<&Mac> {
        match alg {
            Alg::HS256 => Some(&self.s256),
            Alg::HS512 => Some(&self.s512),
            _ => None,
        }
    }
}

impl VerifyKey {
    /// From a client secret.
    pub fn secret(secret: &[u8]) -> Self {
        // HMAC takes keys of any length, the empty one too (bot files refuse that earlier).
        let s256 = Mac::new(Alg::HS256, secret).expect("HMAC accepts any key length");
        let s512 = Mac::new(Alg::HS512, secret).expect("HMAC accepts any key length");
        VerifyKey::Secret(Box::new(SecretKey { s256, s512 }))
    }

    /// From a PEM public key.
    pub fn rsa_pem(pem: &[u8]) -> Result<Self, JwtError> {
        DecodingKey::from_rsa_pem(pem)
            .map(VerifyKey::RsaPublic)
            .map_err(|e| JwtError::InvalidKey(e.to_string()))
    }

    fn accepts(&self, alg: Alg) -> bool {
        match self {
            VerifyKey::Secret(_) => alg.is_hmac(),
            VerifyKey::RsaPublic(_) => !alg.is_hmac(),
        }
    }
}

/// The checks an app applies beyond the signature.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyPolicy {
    /// Allowed algorithms (also limited by the key kinds the app has).
    pub algorithms: Vec<Alg>,
    /// `exp` must be present.
    pub require_exp: bool,
    /// `iat` must be present.
    pub require_iat: bool,
    /// `jti` must be present (and then must expire within an hour).
    pub require_jti: bool,
    /// `isAnonymous: true` tokens are accepted.
    pub allow_anonymous: bool,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            algorithms: Alg::ALL.to_vec(),
            require_exp: false,
            require_iat: false,
            require_jti: false,
            allow_anonymous: true,
            leeway: Duration::from_secs(60),
        }
    }
}

/// Extracts the token from an `Authorization` value; the scheme is case-insensitive.
pub fn bearer_token(header: &str) -> Result<&str, JwtError> {
    let header = header.trim();
    let (scheme, token) = header
        .split_once(' ')
        .ok_or_else(|| JwtError::Malformed("expected `bearer <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtError::Malformed(format!(
            "unsupported scheme `{scheme}`"
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(JwtError::Malformed("empty token".into()));
    }
    Ok(token)
}

/// A token's algorithm and the claims the channel checks, read without checking anything:
/// used to find the app whose key will then verify it.
pub fn peek(token: &str) -> Result<(Alg, Claims), JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |part: &str, what: &str| -> Result<Vec<u8>, JwtError> {
        b64.decode(part.trim_end_matches('='))
            .map_err(|_| JwtError::Malformed(format!("{what} is not base64url")))
    };
    #[derive(Deserialize)]
    struct RawHeader<'a> {
        #[serde(borrow)]
        alg: std::borrow::Cow<'a, str>,
    }
    // Headers are short: decoded on the stack, their `alg` borrowed.
    let mut buf = [0u8; 256];
    let long;
    let header_bytes = match b64.decode_slice(h.trim_end_matches('='), &mut buf) {
        Ok(n) => &buf[..n],
        Err(_) => {
            long = decode(h, "header")?;
            &long[..]
        }
    };
    let header: RawHeader<'_> = serde_json::from_slice(header_bytes)
        .map_err(|_| JwtError::Malformed("header is not JSON with `alg`".into()))?;
    let alg = Alg::parse(&header.alg)
        .ok_or_else(|| JwtError::UnsupportedAlgorithm(header.alg.into_owned()))?;
    // The claims the channel reads, borrowed where the JSON has no escapes; others are
    // skipped rather than buffered (a flattened map would copy every key and value).
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ClaimsIn<'a> {
        #[serde(default, borrow)]
        app_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow, alias = "kore_iss")]
        iss: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow, alias = "kore_sub")]
        sub: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow)]
        user_identity: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        iat: Option<NumericDate>,
        #[serde(default)]
        exp: Option<NumericDate>,
        #[serde(default, borrow, alias = "kore_jti")]
        jti: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        is_anonymous: Option<bool>,
        #[serde(default)]
        aud: Option<Value>,
    }
    let mut stack = [0u8; 1024];
    let long;
    let payload = match b64.decode_slice(p.trim_end_matches('='), &mut stack) {
        Ok(n) => &stack[..n],
        Err(_) => {
            long = decode(p, "payload")?;
            &long[..]
        }
    };
    let c: ClaimsIn<'_> =
        serde_json::from_slice(payload).map_err(|e| JwtError::Malformed(format!("claims: {e}")))?;
    let owned = |v: Option<std::borrow::Cow<'_, str>>| v.map(std::borrow::Cow::into_owned);
    let claims = Claims {
        app_id: owned(c.app_id),
        iss: owned(c.iss),
        sub: owned(c.sub),
        user_identity: owned(c.user_identity),
        iat: c.iat,
        exp: c.exp,
        jti: owned(c.jti),
        is_anonymous: c.is_anonymous,
        aud: c.aud,
        extra: Map::new(),
    };
    Ok((alg, claims))
}

/// A token's `alg` (whatever it says, `none` too) and the names of its claims, for showing a
/// token without its content; `None` when it is not a JWT.
pub fn peek_header(token: &str) -> Option<(String, Vec<String>)> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (h, p) = (parts.next()?, parts.next()?);
    let header: Value = serde_json::from_slice(&b64.decode(h.trim_end_matches('=')).ok()?).ok()?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64.decode(p.trim_end_matches('=')).ok()?).ok()?;
    let alg = header.get("alg")?.as_str()?.to_string();
    Some((alg, claims.keys().cloned().collect()))
}

/// Verifies a token for an app: algorithm allowed and matching the key's family, signature,
/// `exp`/`iat`, required claims, the `jti` lifetime rule and the anonymous rule. Replay of a
/// `jti` and the identity rule need state and the request, so the caller checks them.
pub fn verify(
    token: &str,
    key: &VerifyKey,
    policy: &VerifyPolicy,
) -> Result<(Alg, Claims), JwtError> {
    let (alg, claims) = peek(token)?;
    verify_peeked(token, alg, claims, key, policy)
}

/// [`verify`] for a token already read by [`peek`] (to pick the app's key), so it is not
/// decoded twice.
pub fn verify_peeked(
    token: &str,
    alg: Alg,
    claims: Claims,
    key: &VerifyKey,
    policy: &VerifyPolicy,
) -> Result<(Alg, Claims), JwtError> {
    if !policy.algorithms.contains(&alg) || !key.accepts(alg) {
        return Err(JwtError::AlgorithmNotAllowed(alg));
    }
    if let VerifyKey::Secret(secret) = key {
        // The signature over `header.payload`, checked with the keyed MAC directly: peek has
        // already read the header and claims.
        let (signed, sig) = token
            .rsplit_once('.')
            .ok_or_else(|| JwtError::Malformed("expected three dot-separated parts".into()))?;
        // HS512 tags are 64 bytes; anything longer cannot be one.
        let mut buf = [0u8; 96];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(sig.trim_end_matches('='), &mut buf)
            .map_err(|_| JwtError::Malformed("signature is not base64url".into()))?;
        let tag = &buf[..n];
        let mac = secret.mac(alg).ok_or(JwtError::AlgorithmNotAllowed(alg))?;
        if !mac.verify(signed.as_bytes(), tag) {
            return Err(JwtError::BadSignature);
        }
        check_claims(&claims, policy, unix_now())?;
        return Ok((alg, claims));
    }
    let mut validation = Validation::new(alg.to_jwt());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let VerifyKey::RsaPublic(decoding) = key else {
        return Err(JwtError::AlgorithmNotAllowed(alg));
    };
    jsonwebtoken::decode::<serde::de::IgnoredAny>(token, decoding, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidAlgorithm | K::InvalidKeyFormat => JwtError::AlgorithmNotAllowed(alg),
            K::InvalidSignature => JwtError::BadSignature,
            _ => JwtError::Malformed(e.to_string()),
        }
    })?;
    check_claims(&claims, policy, unix_now())?;
    Ok((alg, claims))
}

/// The time-based and presence checks on verified claims, at time `now` (seconds).
pub fn check_claims(claims: &Claims, policy: &VerifyPolicy, now: f64) -> Result<(), JwtError> {
    check_lifetime(&claims.lifetime(), policy, now)
}

/// The claims re-checked on every use of a token whose signature was verified before: its
/// times, whether it has a `jti`, and the anonymous flag.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Lifetime {
    /// Issued at.
    pub iat: Option<NumericDate>,
    /// Expires at.
    pub exp: Option<NumericDate>,
    /// A `jti` is present.
    pub jti: bool,
    /// `isAnonymous: true`.
    pub anonymous: bool,
}

impl Claims {
    /// What [`check_lifetime`] reads.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            iat: self.iat,
            exp: self.exp,
            jti: self.jti.is_some(),
            anonymous: self.is_anonymous == Some(true),
        }
    }
}

/// [`check_claims`] on the claims it reads.
pub fn check_lifetime(claims: &Lifetime, policy: &VerifyPolicy, now: f64) -> Result<(), JwtError> {
    let leeway = policy.leeway.as_secs_f64();
    if policy.require_exp && claims.exp.is_none() {
        return Err(JwtError::MissingClaim("exp"));
    }
    if policy.require_iat && claims.iat.is_none() {
        return Err(JwtError::MissingClaim("iat"));
    }
    if let Some(exp) = claims.exp {
        if exp.0 + leeway < now {
            return Err(JwtError::Expired);
        }
    }
    if let Some(iat) = claims.iat {
        if iat.0 > now + leeway {
            return Err(JwtError::IssuedInFuture);
        }
    }
    if policy.require_jti {
        if !claims.jti {
            return Err(JwtError::MissingClaim("jti"));
        }
        match claims.exp {
            Some(exp) if exp.0 <= now + 3600.0 + leeway => {}
            _ => return Err(JwtError::JtiLifetime),
        }
    }
    if claims.anonymous && !policy.allow_anonymous {
        return Err(JwtError::AnonymousNotAllowed);
    }
    Ok(())
}
