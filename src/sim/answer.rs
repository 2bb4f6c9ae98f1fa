//! How the simulator answers: JSON bodies, the documented error envelopes, and the token
//! check every route starts with. Shared by the message, poll and upload routes.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::bot::JweMode;
use super::state::{SimState, VerifiedToken};
use crate::common::short::ShortStr;
use crate::protocol::jwt::{self, JwtError};
use crate::protocol::{ErrorEnvelope, ErrorKind, Version};

/// Header naming why a token was refused (the body always says `Invalid Access token`).
pub const AUTH_ERROR_HEADER: &str = "x-hookbench-auth-error";

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Room for a typical answer at once: `to_vec` starts at 128 bytes and grew a message
    // answer two or three times (a realloc and a copy each).
    let mut bytes = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes = b"{}".to_vec();
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// The error envelope for the version's routes.
pub fn error(version: Version, kind: ErrorKind) -> Response {
    let env = match version {
        Version::V1 => ErrorEnvelope::v1(kind),
        Version::V2 => ErrorEnvelope::v2(kind),
    };
    json(
        StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &env,
    )
}

/// 401 in the version's envelope, with the reason in [`AUTH_ERROR_HEADER`].
pub fn auth_error(version: Version, e: &JwtError) -> Response {
    tracing::debug!(reason = %e, "token refused");
    let mut r = error(version, ErrorKind::InvalidToken);
    r.headers_mut()
        .insert(AUTH_ERROR_HEADER, HeaderValue::from_static(e.code()));
    r
}

/// Checks the bearer token against the bot's apps; returns the app and the verified claims.
pub fn authenticate(state: &SimState, headers: &HeaderMap) -> Result<VerifiedToken, JwtError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(JwtError::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| JwtError::Malformed("non-ASCII header".into()))?;
    let token = jwt::bearer_token(value)?;
    verify_token(state, token)
}

/// Verifies a bare token (the `auth` header of the notification API carries one without a
/// scheme) as [`authenticate`] does.
pub fn verify_token(state: &SimState, token: &str) -> Result<VerifiedToken, JwtError> {
    let cache_key = state.token_key(token);
    let seen = state.token_seen(&cache_key);
    if let Some(hit) = seen.then(|| state.cached_token(&cache_key)).flatten() {
        let policy = &state.bot.apps[hit.app].policy;
        jwt::check_lifetime(&hit.lifetime, policy, unix_now())?;
        return Ok(hit);
    }
    // A JWE carries the signed JWT encrypted to the bot's key: decrypted, it is verified
    // like any token, then the app's JWE setting decides whether it may come that way.
    let encrypted = jwt::jwe::is_jwe(token);
    let inner;
    let token = if encrypted {
        let key = state.bot.jwe_key.as_ref().ok_or(JwtError::JweNotEnabled)?;
        inner = jwt::jwe::decrypt(token, &key.0)?;
        inner.as_str()
    } else {
        token
    };
    let (alg, claims) = jwt::peek(token)?;
    let app_index = claims
        .app()
        .and_then(|id| state.bot.apps.iter().position(|a| a.client_id == id))
        .ok_or(JwtError::UnknownApp)?;
    let app = &state.bot.apps[app_index];
    match (app.jwe, encrypted) {
        (JweMode::Required, false) => return Err(JwtError::JweRequired),
        (JweMode::Off, true) => return Err(JwtError::JweNotEnabled),
        _ => {}
    }
    let key = if alg.is_hmac() {
        app.secret.as_ref()
    } else {
        app.public_key.as_ref()
    };
    let key = key.ok_or(JwtError::AlgorithmNotAllowed(alg))?;
    let (_, claims) = jwt::verify_peeked(token, alg, claims, key, &app.policy)?;
    let verified = VerifiedToken {
        app: app_index,
        identity: claims.user_identity.as_deref().map(ShortStr::from),
        lifetime: claims.lifetime(),
    };
    if app.policy.require_jti {
        // Every use must be checked for replay, so these tokens are never cached.
        let jti = claims.jti.as_deref().unwrap_or_default();
        let exp = claims.exp.map(|e| e.0).unwrap_or(f64::MAX);
        if !state.use_jti(&app.client_id, jti, exp) {
            return Err(JwtError::Replay);
        }
    } else if seen {
        state.cache_token(&cache_key, verified.clone());
    }
    Ok(verified)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
