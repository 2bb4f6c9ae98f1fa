//! `GET /api/botmeta/{botId}`: the bot's name and icon, which the platform's SDKs fetch with
//! their bearer token in webhook mode before the first message (the web SDK shows a broken
//! avatar without it), and the icon itself, served by the simulator.
//!
//! The answer's fields are not documented ([gap]): the Android SDK reads `icon`, the web SDK
//! the name and the icon; the simulator answers those, with the bot's id.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::answer::{auth_error, authenticate, error, json};
use super::state::SimState;
use crate::protocol::{ErrorKind, Version};

type Shared = Arc<SimState>;

/// The icon: a plain SVG badge (the bot's initial is drawn by the client's own text).
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><circle cx="32" cy="32" r="32" fill="#2f6fde"/><rect x="16" y="20" width="32" height="22" rx="6" fill="#fff"/><circle cx="25" cy="31" r="3" fill="#2f6fde"/><circle cx="39" cy="31" r="3" fill="#2f6fde"/><rect x="29" y="44" width="6" height="6" fill="#fff"/></svg>"##;

/// The routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/botmeta/{bot}", get(meta))
        .route("/api/botmeta/{bot}/icon.svg", get(icon))
        .route("/api/public/bot/{bot}/jwe/publickey", get(jwe_public_key))
}

/// The bot's JWE public key (SPKI PEM), for clients that encrypt their tokens; 404 when the
/// bot has no key pair.
async fn jwe_public_key(State(state): State<Shared>, Path(bot): Path<String>) -> Response {
    match state.bot.jwe_public_pem().filter(|_| bot == state.bot.id) {
        Some(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response(),
        None => error(Version::V2, ErrorKind::NotFound),
    }
}

async fn meta(
    State(state): State<Shared>,
    Path(bot): Path<String>,
    headers: HeaderMap,
) -> Response {
    if bot != state.bot.id {
        return error(Version::V2, ErrorKind::NotFound);
    }
    if let Err(e) = authenticate(&state, &headers) {
        return auth_error(Version::V2, &e);
    }
    // The icon's URL as the caller reached the simulator.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let icon = format!("http://{host}/api/botmeta/{bot}/icon.svg");
    json(
        StatusCode::OK,
        &json!({ "_id": bot, "botId": bot, "name": state.bot.name, "icon": icon }),
    )
}

async fn icon(State(state): State<Shared>, Path(bot): Path<String>) -> Response {
    if bot != state.bot.id {
        return error(Version::V2, ErrorKind::NotFound);
    }
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}
