//! The file upload API (PROTOCOL.md section 6): token, chunks, merge (on both documented URLs)
//! and the one-shot upload, with the simulator's size limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{post, put};
use axum::Router;
use base64::Engine;
use serde_json::json;

use super::answer::{auth_error, authenticate, error, json};
use super::state::{FileMeta, Owner, SimState, Upload, VerifiedToken};
use crate::protocol::{ids, ErrorKind, Version};

type Shared = Arc<SimState>;

/// How long an upload token lives.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The upload routes, with a body limit that fits the largest allowed file.
pub fn routes(limit: usize) -> Router<Shared> {
    Router::new()
        .route("/api/attachments/{bot}/{channel}/token", post(token))
        .route(
            "/api/attachments/{bot}/{channel}/token/{ft}/chunk",
            post(chunk).put(merge),
        )
        .route("/api/attachments/{bot}/{channel}/token/{ft}", put(merge))
        .route("/api/attachments/file/{bot}/{channel}", post(one_shot))
        .route("/api/public/uploadfile", post(public_upload))
        .layer(DefaultBodyLimit::max(limit))
}

/// The caller's verified token, or the refusal for an unknown bot or channel or a bad token.
fn admit(
    state: &SimState,
    bot: &str,
    channel: &str,
    req: &Request,
) -> Result<VerifiedToken, Box<Response>> {
    let known = state
        .bot
        .instance_by_channel(channel)
        .is_some_and(|(_, i)| i.enabled);
    if bot != state.bot.id || !known {
        return Err(Box::new(error(Version::V2, ErrorKind::NotFound)));
    }
    authenticate(state, req.headers()).map_err(|e| Box::new(auth_error(Version::V2, &e)))
}

async fn token(
    State(state): State<Shared>,
    Path((bot, channel)): Path<(String, String)>,
    req: Request,
) -> Response {
    let caller = match admit(&state, &bot, &channel, &req) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let ft = ids::file_token();
    let expires_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + TOKEN_TTL;
    state
        .uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            ft.clone(),
            Upload {
                owner: Owner::of(&caller),
                channel,
                expires: Instant::now() + TOKEN_TTL,
                chunks: HashMap::new(),
            },
        );
    json(
        StatusCode::OK,
        &json!({ "fileToken": ft, "expiresOn": expires_ms.as_millis() as u64 }),
    )
}

/// The fields of a form body (multipart, urlencoded or JSON), with file contents decoded.
#[derive(Default)]
struct Fields {
    text: HashMap<String, String>,
    file: Option<(Option<String>, Vec<u8>)>,
}

async fn read_fields(req: Request, file_field: &[&str]) -> Result<Fields, ErrorKind> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut fields = Fields::default();
    if ctype.starts_with("multipart/") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|_| ErrorKind::InvalidPayload)?;
        while let Some(field) = mp.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorKind::TooLarge
            } else {
                ErrorKind::InvalidPayload
            }
        })? {
            let name = field.name().unwrap_or_default().to_string();
            let base64 = field
                .headers()
                .get("content-transfer-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("base64"));
            let filename = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorKind::TooLarge
                } else {
                    ErrorKind::InvalidPayload
                }
            })?;
            if file_field.contains(&name.as_str()) {
                let data = if base64 {
                    let compact: Vec<u8> = data
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect();
                    base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .map_err(|_| ErrorKind::InvalidPayload)?
                } else {
                    data.to_vec()
                };
                fields.file = Some((filename, data));
            } else {
                fields
                    .text
                    .insert(name, String::from_utf8_lossy(&data).into_owned());
            }
        }
    } else {
        let body = axum::body::to_bytes(req.into_body(), 1024 * 1024)
            .await
            .map_err(|_| ErrorKind::InvalidPayload)?;
        if ctype.starts_with("application/json") {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).map_err(|_| ErrorKind::InvalidPayload)?;
            for (k, v) in v {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.text.insert(k, s);
            }
        } else {
            for (k, v) in form_urlencoded::parse(&body) {
                fields.text.insert(k.into_owned(), v.into_owned());
            }
        }
    }
    Ok(fields)
}

async fn chunk(
    State(state): State<Shared>,
    Path((bot, channel, ft)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let caller = match admit(&state, &bot, &channel, &req) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let fields = match read_fields(req, &["chunk"]).await {
        Ok(f) => f,
        Err(k) => return error(Version::V2, k),
    };
    let Some(chunk_no) = fields
        .text
        .get("chunkNo")
        .and_then(|n| n.trim().parse::<u32>().ok())
    else {
        return error(Version::V2, ErrorKind::InvalidPayload);
    };
    let named = fields
        .text
        .get("fileToken")
        .or_else(|| fields.text.get("messageToken"));
    if named.is_some_and(|t| *t != ft) {
        return error(Version::V2, ErrorKind::InvalidPayload);
    }
    let Some((_, data)) = fields.file else {
        return error(Version::V2, ErrorKind::InvalidPayload);
    };
    let limits = &state.bot.settings;
    if data.len() as u64 > limits.max_chunk_bytes {
        return error(Version::V2, ErrorKind::TooLarge);
    }
    let mut uploads = state.uploads.lock().unwrap_or_else(|p| p.into_inner());
    let Some(up) = uploads
        .get_mut(&ft)
        .filter(|u| u.channel == channel && u.expires > Instant::now())
        .filter(|u| u.owner.admits(&caller))
    else {
        return error(Version::V2, ErrorKind::InvalidPayload);
    };
    let previous = up.chunks.insert(chunk_no, data.len() as u64).unwrap_or(0);
    if up.total() > limits.max_file_bytes {
        up.chunks.insert(chunk_no, previous);
        return error(Version::V2, ErrorKind::TooLarge);
    }
    json(StatusCode::OK, &json!({ "chunkNo": chunk_no.to_string() }))
}

async fn merge(
    State(state): State<Shared>,
    Path((bot, channel, ft)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let caller = match admit(&state, &bot, &channel, &req) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let fields = match read_fields(req, &[]).await {
        Ok(f) => f,
        Err(k) => return error(Version::V2, k),
    };
    let Some(total) = fields
        .text
        .get("totalChunks")
        .and_then(|n| n.trim().parse::<u32>().ok())
    else {
        return error(Version::V2, ErrorKind::InvalidPayload);
    };
    let mut uploads = state.uploads.lock().unwrap_or_else(|p| p.into_inner());
    let complete = uploads
        .get(&ft)
        .filter(|u| u.channel == channel && u.expires > Instant::now())
        .filter(|u| u.owner.admits(&caller))
        .is_some_and(|u| {
            total > 0
                && u.chunks.len() == total as usize
                && (0..total).all(|n| u.chunks.contains_key(&n))
        });
    if !complete {
        return error(Version::V2, ErrorKind::InvalidPayload);
    }
    let up = uploads.remove(&ft).expect("checked above");
    drop(uploads);
    let name = file_name(&fields, None);
    json(
        StatusCode::OK,
        &json!({ "fileId": register(&state, name, up.total()) }),
    )
}

async fn one_shot(
    State(state): State<Shared>,
    Path((bot, channel)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Err(r) = admit(&state, &bot, &channel, &req) {
        return *r;
    }
    match one_file(&state, req, false).await {
        Ok((id, _)) => json(StatusCode::OK, &json!({ "fileId": id })),
        Err(r) => *r,
    }
}

/// The platform's public Upload File API: one multipart request (`file`, with optional
/// `fileContext` and `fileExtension`), the bot named by the token's app, answered
/// `{fileId, hash}`. What `hash` is computed from is not documented ([gap]): here the
/// SHA-256 of the content, in hex. The one-shot attachment route above answers the same
/// upload without the hash.
async fn public_upload(State(state): State<Shared>, req: Request) -> Response {
    if let Err(e) = authenticate(&state, req.headers()) {
        return auth_error(Version::V2, &e);
    }
    match one_file(&state, req, true).await {
        Ok((id, hash)) => json(StatusCode::OK, &json!({ "fileId": id, "hash": hash })),
        Err(r) => *r,
    }
}

/// A whole file in one multipart request, within the size limit, registered: its fileId and,
/// when asked, the SHA-256 of its content (hex).
async fn one_file(
    state: &SimState,
    req: Request,
    hashed: bool,
) -> Result<(String, Option<String>), Box<Response>> {
    let fields = read_fields(req, &["file"])
        .await
        .map_err(|k| Box::new(error(Version::V2, k)))?;
    let Some((part_name, data)) = &fields.file else {
        return Err(Box::new(error(Version::V2, ErrorKind::InvalidPayload)));
    };
    if data.len() as u64 > state.bot.settings.max_file_bytes {
        return Err(Box::new(error(Version::V2, ErrorKind::TooLarge)));
    }
    let hash = hashed.then(|| {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(data))
    });
    let name = file_name(&fields, part_name.clone());
    Ok((register(state, name, data.len() as u64), hash))
}

fn file_name(fields: &Fields, part_name: Option<String>) -> String {
    let base = fields
        .text
        .get("filename")
        .or_else(|| fields.text.get("fileName"))
        .cloned()
        .or(part_name)
        .unwrap_or_else(|| "file".into());
    match fields.text.get("fileExtension") {
        Some(ext) if !ext.is_empty() && !base.ends_with(&format!(".{ext}")) => {
            format!("{base}.{ext}")
        }
        _ => base,
    }
}

fn register(state: &SimState, name: String, size: u64) -> String {
    let id = ids::file_id();
    state
        .files
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            FileMeta {
                name,
                size,
                created: Instant::now(),
            },
        );
    id
}
