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

pub mod jwe;
mod verify;

pub use verify::{
    bearer_token, check_claims, check_lifetime, peek, peek_header, verify, verify_peeked, Lifetime,
    SecretKey, VerifyKey, VerifyPolicy,
};

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
    /// The client id, as some clients send it instead of `appId` (also read from `kore_iss`).
    #[serde(default, alias = "kore_iss", skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The user (also read from `kore_sub`).
    #[serde(default, alias = "kore_sub", skip_serializing_if = "Option::is_none")]
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
    /// Token id, for replay protection (also read from `kore_jti`).
    #[serde(default, alias = "kore_jti", skip_serializing_if = "Option::is_none")]
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
    /// `kore_iss`, with the user in `kore_sub` and the token id in `kore_jti`: the aliases the
    /// SDK security page lists for `iss`, `sub` and `jti`.
    KoreIss,
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
    #[serde(rename = "kore_iss", skip_serializing_if = "Option::is_none")]
    kore_iss: Option<&'a str>,
    #[serde(rename = "kore_sub", skip_serializing_if = "Option::is_none")]
    kore_sub: Option<&'a str>,
    #[serde(rename = "kore_jti", skip_serializing_if = "Option::is_none")]
    kore_jti: Option<String>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

impl ClaimsTemplate {
    fn borrowed<'a>(&'a self, user: &'a str) -> ClaimsFor<'a> {
        let now = unix_now().floor();
        let (app_id, iss) = match self.app_claim {
            AppClaim::AppId => (Some(self.client_id.as_str()), None),
            AppClaim::Iss => (None, Some(self.client_id.as_str())),
            AppClaim::KoreIss => (None, None),
        };
        let kore = self.app_claim == AppClaim::KoreIss;
        let jti = self.jti.then(|| super::ids::uuid_v4().to_string());
        let (jti, kore_jti) = if kore { (None, jti) } else { (jti, None) };
        ClaimsFor {
            app_id,
            iss,
            sub: (!kore).then_some(user),
            user_identity: self.user_identity.then_some(user),
            iat: NumericDate(now),
            exp: self
                .expires_in
                .map(|d| NumericDate(now + d.as_secs_f64().ceil())),
            jti,
            kore_iss: kore.then_some(self.client_id.as_str()),
            kore_sub: kore.then_some(user),
            kore_jti,
            extra: &self.extra,
        }
    }

    /// The claims for one user, issued now.
    pub fn for_user(&self, user: &str) -> Claims {
        let b = self.borrowed(user);
        Claims {
            app_id: b.app_id.map(str::to_string),
            iss: b.iss.or(b.kore_iss).map(str::to_string),
            sub: b.sub.or(b.kore_sub).map(str::to_string),
            user_identity: b.user_identity.map(str::to_string),
            iat: Some(b.iat),
            exp: b.exp,
            jti: b.jti.or(b.kore_jti),
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
    /// A plain JWT where the app enforces JWE encryption.
    #[error("the app requires a JWE-encrypted token")]
    JweRequired,
    /// A JWE for an app that does not take them.
    #[error("the app does not take JWE-encrypted tokens")]
    JweNotEnabled,
    /// A JWE that does not decrypt with the bot's key (or fails its authentication tag).
    #[error("the JWE does not decrypt with the bot's key")]
    JweUndecryptable,
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
            JwtError::JweRequired => "jwe_required",
            JwtError::JweNotEnabled => "jwe_not_enabled",
            JwtError::JweUndecryptable => "jwe_undecryptable",
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
        thread_local! {
            /// The claims' JSON of the token being signed: one buffer per thread, reused.
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let invalid = |e: &dyn std::fmt::Display| JwtError::InvalidKey(e.to_string());
        PAYLOAD.with_borrow_mut(|payload| {
            payload.clear();
            serde_json::to_writer(&mut *payload, claims).map_err(|e| invalid(&e))?;
            // Base64 straight into the token's bytes, sized once (the string encoder goes
            // through a chunked writer).
            let mut token = std::mem::take(&mut out).into_bytes();
            let start = token.len();
            let payload_len = base64::encoded_len(payload.len(), false).unwrap_or(0);
            token.reserve(header.len() + payload_len + 2 + 86);
            token.extend_from_slice(header.as_bytes());
            token.push(b'.');
            let at = token.len();
            token.resize(at + payload_len, 0);
            b64.encode_slice(&payload[..], &mut token[at..])
                .map_err(|e| invalid(&e))?;
            let tag = mac.tag(&token[start..]);
            let tag: &[u8] = tag.as_ref();
            token.push(b'.');
            let at = token.len();
            token.resize(at + base64::encoded_len(tag.len(), false).unwrap_or(0), 0);
            b64.encode_slice(tag, &mut token[at..])
                .map_err(|e| invalid(&e))?;
            String::from_utf8(token).map_err(|e| invalid(&e))
        })
    }
}

#[cfg(test)]
mod tests;
