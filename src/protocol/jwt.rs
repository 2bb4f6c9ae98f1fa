//! JWT for the Webhook channel (PROTOCOL.md section 2): signing for the harness, verification
//! for the simulator.
//!
//! Only HS256, HS512, RS256 and RS512 exist here; `alg: none` and every other algorithm are
//! refused before any key is touched, and the key kind must match the algorithm's family, so an
//! HS token cannot be checked against an RSA public key (algorithm confusion).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The algorithms the platform accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// HMAC with SHA-256, keyed by the client secret.
    HS256,
    /// HMAC with SHA-512, keyed by the client secret.
    HS512,
    /// RSA PKCS#1 v1.5 with SHA-256, the customer's key pair.
    RS256,
    /// RSA PKCS#1 v1.5 with SHA-512, the customer's key pair.
    RS512,
}

impl Alg {
    /// All four.
    pub const ALL: [Alg; 4] = [Alg::HS256, Alg::HS512, Alg::RS256, Alg::RS512];

    /// Parses the header spelling; anything else (including `none`) is `None`.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::HS256),
            "HS512" => Some(Alg::HS512),
            "RS256" => Some(Alg::RS256),
            "RS512" => Some(Alg::RS512),
            _ => None,
        }
    }

    /// True for the HMAC family.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS512)
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::HS256 => jsonwebtoken::Algorithm::HS256,
            Alg::HS512 => jsonwebtoken::Algorithm::HS512,
            Alg::RS256 => jsonwebtoken::Algorithm::RS256,
            Alg::RS512 => jsonwebtoken::Algorithm::RS512,
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A NumericDate: seconds since the epoch. Real clients send fractions; whole values are written
/// as integers.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Deserialize)]
#[serde(transparent)]
pub struct NumericDate(pub f64);

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl NumericDate {
    /// Now.
    pub fn now() -> Self {
        Self(unix_now())
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The claims of a Webhook channel token. `extra` holds further claims to sign; reading a
/// token ([`peek`]) keeps only the claims the channel checks, so `extra` is then empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The client id, as documented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The client id, as some clients send it instead of `appId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The user; when present it must equal `from.id` (V2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<String>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// Expires at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Token id, for replay protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// An anonymous user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_anonymous: Option<bool>,
    /// Audience, e.g. `https://idproxy.kore.ai/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The app (client id): `appId`, else `iss`.
    pub fn app(&self) -> Option<&str> {
        self.app_id.as_deref().or(self.iss.as_deref())
    }
}

/// Which claim carries the client id when the harness signs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppClaim {
    /// `appId` (documented).
    #[default]
    AppId,
    /// `iss` (third-party style).
    Iss,
}

/// What the harness puts in a user's token.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimsTemplate {
    /// The client id.
    pub client_id: String,
    /// Where the client id goes.
    pub app_claim: AppClaim,
    /// Add `userIdentity` (and `sub`) naming the user.
    pub user_identity: bool,
    /// Add `exp` this long after `iat`.
    pub expires_in: Option<Duration>,
    /// Add a fresh `jti`.
    pub jti: bool,
    /// Extra claims.
    pub extra: Map<String, Value>,
}

/// The claims a template gives one user, borrowed: what [`Signer::sign_for`] serialises
/// without copying the user or the client id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClaimsFor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_identity: Option<&'a str>,
    iat: NumericDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<NumericDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

impl ClaimsTemplate {
    fn borrowed<'a>(&'a self, user: &'a str) -> ClaimsFor<'a> {
        let now = unix_now().floor();
        let (app_id, iss) = match self.app_claim {
            AppClaim::AppId => (Some(self.client_id.as_str()), None),
            AppClaim::Iss => (None, Some(self.client_id.as_str())),
        };
        ClaimsFor {
            app_id,
            iss,
            sub: Some(user),
            user_identity: self.user_identity.then_some(user),
            iat: NumericDate(now),
            exp: self
                .expires_in
                .map(|d| NumericDate(now + d.as_secs_f64().ceil())),
            jti: self.jti.then(|| super::ids::uuid_v4().to_string()),
            extra: &self.extra,
        }
    }

    /// The claims for one user, issued now.
    pub fn for_user(&self, user: &str) -> Claims {
        let b = self.borrowed(user);
        Claims {
            app_id: b.app_id.map(str::to_string),
            iss: b.iss.map(str::to_string),
            sub: b.sub.map(str::to_string),
            user_identity: b.user_identity.map(str::to_string),
            iat: Some(b.iat),
            exp: b.exp,
            jti: b.jti,
            extra: b.extra.clone(),
            ..Default::default()
        }
    }
}

/// Everything that can go wrong with a token. The platform answers all of them with the same
/// 401; the simulator also names the reason in a response header for debugging.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    Missing,
    /// Not `bearer <token>` or not three base64url parts.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `none` or an algorithm outside HS256/HS512/RS256/RS512.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// Neither `appId` nor `iss`, or not a registered app.
    #[error("unknown app")]
    UnknownApp,
    /// The app does not allow this algorithm, or its key is of the other family.
    #[error("algorithm {0} not allowed for this app")]
    AlgorithmNotAllowed(Alg),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `iat` is in the future beyond the leeway.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A claim the app requires is missing.
    #[error("missing required claim `{0}`")]
    MissingClaim(&'static str),
    /// A token with a `jti` must expire within one hour.
    #[error("a token with a jti must expire within one hour")]
    JtiLifetime,
    /// The `jti` was seen before.
    #[error("jti already used: possibly a replay")]
    Replay,
    /// Anonymous users are not allowed for this app.
    #[error("anonymous users not allowed")]
    AnonymousNotAllowed,
    /// `userIdentity` differs from `from.id`.
    #[error("userIdentity does not match from.id")]
    IdentityMismatch,
    /// A key that cannot be used (bad PEM).
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

impl JwtError {
    /// A short stable name for logs and the simulator's debug header.
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::Missing => "missing",
            JwtError::Malformed(_) => "malformed",
            JwtError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            JwtError::UnknownApp => "unknown_app",
            JwtError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::JtiLifetime => "jti_lifetime",
            JwtError::Replay => "replay",
            JwtError::AnonymousNotAllowed => "anonymous",
            JwtError::IdentityMismatch => "identity_mismatch",
            JwtError::InvalidKey(_) => "invalid_key",
        }
    }
}

/// An HMAC tag (32 or 64 bytes) on the stack.
struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl AsRef<[u8]> for Tag {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// An HMAC keyed once: signing and checking a token then cost no key setup and no copy.
#[derive(Clone)]
enum Mac {
    S256(hmac::Hmac<sha2::Sha256>),
    S512(hmac::Hmac<sha2::Sha512>),
}

impl Mac {
    fn new(alg: Alg, secret: &[u8]) -> Option<Mac> {
        use hmac::Mac as _;
        match alg {
            Alg::HS256 => hmac::Hmac::new_from_slice(secret).ok().map(Mac::S256),
            Alg::HS512 => hmac::Hmac::new_from_slice(secret).ok().map(Mac::S512),
            _ => None,
        }
    }

    /// The tag of `data`, in a buffer of the largest tag's size.
    fn tag(&self, data: &[u8]) -> Tag {
        use hmac::Mac as _;
        let mut t = Tag {
            bytes: [0; 64],
            len: 0,
        };
        let mut put = |b: &[u8]| {
            t.bytes[..b.len()].copy_from_slice(b);
            t.len = b.len();
        };
        match self.clone() {
            Mac::S256(mut m) => {
                m.update(data);
                put(&m.finalize().into_bytes());
            }
            Mac::S512(mut m) => {
                m.update(data);
                put(&m.finalize().into_bytes());
            }
        }
        t
    }

    /// True when `tag` is the tag of `data` (compared in constant time).
    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        match self.clone() {
            Mac::S256(mut m) => {
                m.update(data);
                m.verify_slice(tag).is_ok()
            }
            Mac::S512(mut m) => {
                m.update(data);
                m.verify_slice(tag).is_ok()
            }
        }
    }
}

/// Signs tokens for one app with one algorithm.
#[derive(Clone)]
pub struct Signer {
    alg: Alg,
    key: EncodingKey,
    /// HS algorithms: the keyed MAC and the encoded header, so a token is one JSON
    /// serialisation, two base64 encodings and a MAC.
    hs: Option<(Mac, String)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// HS256/HS512 with a client secret.
    pub fn hmac(alg: Alg, secret: &[u8]) -> Result<Self, JwtError> {
        if !alg.is_hmac() {
            return Err(JwtError::InvalidKey(format!(
                "{alg} needs an RSA private key"
            )));
        }
        // An empty key signs tokens anyone can forge; no platform accepts one.
        if secret.is_empty() {
            return Err(JwtError::InvalidKey("the client secret is empty".into()));
        }
        let header = serde_json::to_vec(&Header::new(alg.to_jwt()))
            .map_err(|e| JwtError::InvalidKey(e.to_string()))?;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
        Ok(Self {
            alg,
            key: EncodingKey::from_secret(secret),
            hs: Mac::new(alg, secret).map(|m| (m, header)),
        })
    }

    /// RS256/RS512 with a PEM private key.
    pub fn rsa_pem(alg: Alg, pem: &[u8]) -> Result<Self, JwtError> {
        if alg.is_hmac() {
            return Err(JwtError::InvalidKey(format!("{alg} needs a client secret")));
        }
        let text = String::from_utf8_lossy(pem);
        if text.contains("PUBLIC KEY-----") {
            return Err(JwtError::InvalidKey(
                "this is a public key; signing needs the RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----), and the public key goes to the bot's app".into(),
            ));
        }
        if !text.contains("-----BEGIN") {
            return Err(JwtError::InvalidKey(
                "not a PEM file: expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----".into(),
            ));
        }
        let key =
            EncodingKey::from_rsa_pem(pem).map_err(|e| JwtError::InvalidKey(e.to_string()))?;
        Ok(Self { alg, key, hs: None })
    }

    /// The algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// A signed compact token.
    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        self.sign_any(claims, String::new())
    }

    /// A token for `user` from `template`, issued now: the same claims as
    /// `sign(&template.for_user(user))`, without building them.
    pub fn sign_for(&self, template: &ClaimsTemplate, user: &str) -> Result<String, JwtError> {
        self.sign_any(&template.borrowed(user), String::new())
    }

    /// The `Authorization` value (`bearer <token>`) of [`Signer::sign_for`], written in one
    /// buffer: a load test signs one for every new user.
    pub fn bearer_for(&self, template: &ClaimsTemplate, user: &str) -> Result<String, JwtError> {
        self.sign_any(&template.borrowed(user), String::from("bearer "))
    }

    /// Appends the signed token to `out`.
    fn sign_any(&self, claims: &impl Serialize, mut out: String) -> Result<String, JwtError> {
        let Some((mac, header)) = &self.hs else {
            let token = jsonwebtoken::encode(&Header::new(self.alg.to_jwt()), claims, &self.key)
                .map_err(|e| JwtError::InvalidKey(e.to_string()))?;
            out.push_str(&token);
            return Ok(out);
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload =
            serde_json::to_vec(claims).map_err(|e| JwtError::InvalidKey(e.to_string()))?;
        out.reserve(header.len() + payload.len() * 4 / 3 + 96);
        let start = out.len();
        out.push_str(header);
        out.push('.');
        b64.encode_string(&payload, &mut out);
        let tag = mac.tag(&out.as_bytes()[start..]);
        out.push('.');
        b64.encode_string(tag, &mut out);
        Ok(out)
    }
}

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
        #[serde(default, borrow)]
        iss: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow)]
        sub: Option<std::borrow::Cow<'a, str>>,
        #[serde(default, borrow)]
        user_identity: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        iat: Option<NumericDate>,
        #[serde(default)]
        exp: Option<NumericDate>,
        #[serde(default, borrow)]
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
#[derive(Debug, Clone, Copy, PartialEq)]
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

#[cfg(test)]
mod tests {
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
            let read = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(b"k3y"), &v)
                .unwrap();
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
        let public = include_bytes!("../../tests/fixtures/rsa_public.pem");
        let e = Signer::rsa_pem(Alg::RS256, public).unwrap_err().to_string();
        assert!(e.contains("this is a public key"), "{e}");
        let e = Signer::rsa_pem(Alg::RS256, b"hello")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a PEM file"), "{e}");
        let private = include_bytes!("../../tests/fixtures/rsa_private.pem");
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
            serde_json::from_str(r#"{"iss":"cs-9","iat":1700000000.25,"exp":1700000600.5}"#)
                .unwrap();
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
}
