//! Tokens, the error envelope, CORS, and the upload API.

use super::*;

// ---- tokens and errors ----

pub(super) async fn auth_refused(
    c: &Ctx,
    ev: &mut Evidence,
    check: &str,
    auth: Auth,
    user: Option<&str>,
) -> Judged {
    let me = c.user(check);
    let from = user.unwrap_or(&me);
    let body = json!({"message": {"type": "text", "val": "balance"}, "from": {"id": from}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c
        .prober
        .send(ev, Req::post(c.v2_sync()?, auth, body))
        .await?;
    r.envelope(401, "Invalid Access token", true)
}

pub(super) async fn auth_accepted(c: &Ctx, ev: &mut Evidence, check: &str, auth: Auth) -> Judged {
    let user = c.user(check);
    let body = c.body(&user, json!({"type": "text", "val": "balance"}));
    let r = c
        .prober
        .send(ev, Req::post(c.v2_sync()?, auth, body))
        .await?;
    r.status_is(200)
}

pub(super) async fn auth_missing(c: &Ctx, ev: &mut Evidence) -> Judged {
    auth_refused(c, ev, "CH-AUTH-01", Auth::None, None).await
}

pub(super) async fn auth_bad_signature(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-02");
    let wrong = format!("{}-not-the-secret", c.target.client_secret);
    let auth = c.signed(Alg::HS256, &wrong, AppClaim::AppId, &user)?;
    auth_refused(c, ev, "CH-AUTH-02", auth, None).await
}

pub(super) async fn auth_none(c: &Ctx, ev: &mut Evidence) -> Judged {
    use base64::Engine as _;
    let user = c.user("CH-AUTH-03");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = unix_now();
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({"appId": c.target.client_id, "sub": user, "userIdentity": user, "iat": now, "exp": now + 3600});
    let token = format!("{header}.{}.", b64.encode(claims.to_string()));
    auth_refused(
        c,
        ev,
        "CH-AUTH-03",
        Auth::Header(format!("bearer {token}")),
        None,
    )
    .await
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) async fn auth_expired(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-04");
    let now = unix_now() as f64;
    let claims = Claims {
        app_id: Some(c.target.client_id.clone()),
        sub: Some(user.clone()),
        user_identity: Some(user.clone()),
        iat: Some(NumericDate(now - 7200.0)),
        exp: Some(NumericDate(now - 3600.0)),
        ..Default::default()
    };
    let token = Signer::hmac(Alg::HS256, c.target.client_secret.as_bytes())
        .and_then(|s| s.sign(&claims))
        .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
    auth_refused(
        c,
        ev,
        "CH-AUTH-04",
        Auth::Header(format!("bearer {token}")),
        None,
    )
    .await
}

pub(super) async fn auth_identity(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-05");
    let auth = c.auth(&user)?;
    let someone = format!("{user}-someone-else");
    auth_refused(c, ev, "CH-AUTH-05", auth, Some(&someone)).await
}

pub(super) async fn auth_iss(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-06");
    let auth = c.signed(Alg::HS256, &c.target.client_secret, AppClaim::Iss, &user)?;
    auth_accepted(c, ev, "CH-AUTH-06", auth).await
}

pub(super) async fn auth_hs512(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-07");
    let auth = c.signed(Alg::HS512, &c.target.client_secret, AppClaim::AppId, &user)?;
    auth_accepted(c, ev, "CH-AUTH-07", auth).await
}

pub(super) async fn auth_scheme(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-08");
    for scheme in ["bearer", "Bearer"] {
        let Auth::Header(v) = c.auth(&user)? else {
            unreachable!("auth() always gives a header")
        };
        let token = v.split_once(' ').map_or("", |(_, t)| t);
        auth_accepted(
            c,
            ev,
            "CH-AUTH-08",
            Auth::Header(format!("{scheme} {token}")),
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn auth_rs256(c: &Ctx, ev: &mut Evidence) -> Judged {
    let (client_id, pem) = c.target.rsa_app.as_ref().ok_or_else(|| {
        Miss::Skipped("no key-pair app (--rsa-client-id, --private-key-file) was given".into())
    })?;
    let user = c.user("CH-AUTH-09");
    let template = ClaimsTemplate {
        client_id: client_id.clone(),
        ..c.template(AppClaim::AppId)
    };
    let token = Signer::rsa_pem(Alg::RS256, pem)
        .and_then(|s| s.sign_for(&template, &user))
        .map_err(|e| Miss::Skipped(format!("cannot sign with the private key: {e}")))?;
    auth_accepted(c, ev, "CH-AUTH-09", Auth::Header(format!("bearer {token}"))).await
}

pub(super) async fn err_unknown_bot(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-ERR-01");
    let other = Endpoints::new(
        &c.target.endpoints.base,
        "st-00000000-0000-4000-8000-000000000000",
    );
    let url = other.message(crate::protocol::Version::V2, None);
    let r = c
        .prober
        .send(
            ev,
            Req::post(
                url,
                c.auth(&user)?,
                c.body(&user, json!({"type": "text", "val": "hi"})),
            ),
        )
        .await?;
    r.envelope(404, "Bot not found", true).or_else(|miss| {
        // The message of a 404 is not documented: status, code and envelope are what count.
        if r.status == 404
            && r.at("/errors/0/code").and_then(Value::as_u64) == Some(404)
            && r.str_at("/_v") == Some("v2")
        {
            Ok(())
        } else {
            Err(miss)
        }
    })
}

pub(super) async fn err_too_large(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-ERR-02");
    let big = "x".repeat(3 * 1024 * 1024);
    let body = c.body(&user, json!({"type": "text", "val": big}));
    let mut req = Req::post(c.v2_sync()?, c.auth(&user)?, Value::Null);
    req.body = Body::Raw("application/json", body.to_string().into_bytes());
    let r = c.prober.send(ev, req).await?;
    r.status_is(413)?;
    if r.at("/errors/0/msg").and_then(Value::as_str).is_none() {
        return Err(r.miss("/errors/0/msg", "the error envelope", r.status_text()));
    }
    Ok(())
}

pub(super) async fn err_rate_limited(c: &Ctx, ev: &mut Evidence) -> Judged {
    let url = Ctx::need(&c.target.v2_limited, "rate-limited V2 URL")?;
    let user = c.user("CH-ERR-03");
    // Until the limit answers, at most 60 requests; only the 429 and the last answer before
    // it are kept as evidence.
    for _ in 0..60 {
        let mut scratch = Evidence::default();
        let r = c.say(&mut scratch, url, &user, "balance").await?;
        if r.status == 429 {
            let index = ev.exchanges.len();
            ev.exchanges.append(&mut scratch.exchanges);
            let r = Resp { index, ..r };
            return r.envelope(429, "Too Many requests", true);
        }
        if r.status != 200 {
            ev.exchanges.append(&mut scratch.exchanges);
            return Err(r.miss("status", "200 until the limit, then 429", r.status_text()));
        }
        ev.exchanges.clear();
        ev.exchanges.append(&mut scratch.exchanges);
    }
    Err(Miss::Failed(crate::certify::probe::Mismatch {
        exchange: None,
        field: "status".into(),
        expected: "429 once the rate limit is passed".into(),
        actual: "60 requests in a row answered 200".into(),
    }))
}

pub(super) async fn cors(c: &Ctx, ev: &mut Evidence) -> Judged {
    let mut req = Req::get(c.v2_sync()?, Auth::None);
    req.method = http::Method::OPTIONS;
    req.headers = vec![
        ("origin", "https://widget.example.com".into()),
        ("access-control-request-method", "POST".into()),
        (
            "access-control-request-headers",
            "authorization,content-type".into(),
        ),
    ];
    let r = c.prober.send(ev, req).await?;
    if !(200..300).contains(&r.status) {
        return Err(r.miss("status", "2xx", r.status_text()));
    }
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let origin = header("access-control-allow-origin");
    if origin != "*" && origin != "https://widget.example.com" {
        return Err(r.miss("access-control-allow-origin", "* or the origin", origin));
    }
    if !header("access-control-allow-methods").contains("post")
        && header("access-control-allow-methods") != "*"
    {
        return Err(r.miss(
            "access-control-allow-methods",
            "POST",
            header("access-control-allow-methods"),
        ));
    }
    let allowed = header("access-control-allow-headers");
    let listed: Vec<&str> = allowed.split(',').map(str::trim).collect();
    for h in ["authorization", "content-type"] {
        if !listed.contains(&h) {
            return Err(r.miss(
                "access-control-allow-headers",
                "authorization and content-type named (`*` does not cover authorization)",
                allowed,
            ));
        }
    }
    Ok(())
}

// ---- upload ----

pub(super) struct Upload {
    auth: Auth,
    token_url: String,
    channel: String,
}

pub(super) fn upload(c: &Ctx, user: &str) -> Result<Upload, Miss> {
    let channel = Ctx::need(&c.target.upload_channel, "upload channel")?.to_string();
    let instance = (channel != "ivr").then_some(channel.as_str());
    Ok(Upload {
        auth: c.auth(user)?,
        token_url: c.target.endpoints.upload_token(instance),
        channel,
    })
}

pub(super) async fn file_token(
    c: &Ctx,
    ev: &mut Evidence,
    u: &Upload,
) -> Result<(Resp, String), Miss> {
    let mut req = Req::get(&u.token_url, u.auth.clone());
    req.method = http::Method::POST;
    let r = c.prober.send(ev, req).await?;
    r.status_is(200)?;
    r.str_matches("/fileToken", "a file token", |s| !s.is_empty())?;
    let token = r.str_at("/fileToken").unwrap_or_default().to_string();
    Ok((r, token))
}

/// Uploads `data` in chunks of `size`; returns the merge answer.
pub(super) async fn upload_file(
    c: &Ctx,
    ev: &mut Evidence,
    u: &Upload,
    data: &[u8],
    size: usize,
) -> Result<Resp, Miss> {
    let (_, token) = file_token(c, ev, u).await?;
    let instance = (u.channel != "ivr").then_some(u.channel.as_str());
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let form = reqwest::multipart::Form::new()
            .text("chunkNo", i.to_string())
            .text("fileToken", token.clone())
            .part(
                "chunk",
                reqwest::multipart::Part::bytes(chunk.to_vec()).file_name("scan.png"),
            );
        let mut req = Req::get(
            c.target.endpoints.upload_chunk(instance, &token),
            u.auth.clone(),
        );
        req.method = http::Method::POST;
        req.body = Body::Form(
            form,
            format!(
                "chunkNo={i}, fileToken=<file token>, chunk=<{} bytes>",
                chunk.len()
            ),
        );
        let r = c.prober.send(ev, req).await?;
        r.status_is(200)?;
        let no = r
            .at("/chunkNo")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        if no.as_deref() != Some(i.to_string().as_str()) {
            return Err(r.miss(
                "/chunkNo",
                i.to_string(),
                no.unwrap_or_else(|| "absent".into()),
            ));
        }
    }
    let form = reqwest::multipart::Form::new()
        .text("totalChunks", chunks.len().to_string())
        .text("fileExtension", "png")
        .text("filename", "scan")
        .text("fileContext", "workflows")
        .text("thumbnailUpload", "false");
    let mut req = Req::get(
        c.target.endpoints.upload_merge(instance, &token),
        u.auth.clone(),
    );
    req.method = http::Method::PUT;
    req.body = Body::Form(form, format!("totalChunks={}, fileExtension=png, filename=scan, fileContext=workflows, thumbnailUpload=false", chunks.len()));
    c.prober.send(ev, req).await
}

/// A small PNG-like payload: what is in it does not matter to the API.
pub(super) fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub(super) async fn upload_token(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-01");
    let u = upload(c, &user)?;
    let (r, _) = file_token(c, ev, &u).await?;
    match r.at("/expiresOn") {
        Some(v) if v.is_number() || v.is_string() => Ok(()),
        other => Err(r.miss(
            "/expiresOn",
            "an expiry (epoch ms)",
            other.map_or("absent".into(), |v| v.to_string()),
        )),
    }
}

pub(super) async fn upload_chunks(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-02");
    let u = upload(c, &user)?;
    let r = upload_file(c, ev, &u, &payload(300 * 1024), 128 * 1024).await?;
    r.status_is(200)?;
    r.str_matches("/fileId", "24 hex digits", |s| is_hex(s, 24))
}

pub(super) async fn upload_message(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-03");
    let u = upload(c, &user)?;
    let merged = upload_file(c, ev, &u, &payload(4096), 4096).await?;
    merged.status_is(200)?;
    let file_id = merged.str_at("/fileId").unwrap_or_default().to_string();
    let body = json!({"message": {"type": "text", "val": "here is the document", "attachments": [{"fileId": file_id, "fileName": "scan.png", "fileType": "image"}]}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.status_is(200)?;
    if r.texts().is_empty() {
        return Err(r.miss(
            "/data",
            "an answer to the message with the file",
            r.status_text(),
        ));
    }
    Ok(())
}

pub(super) async fn upload_too_large(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-04");
    let u = upload(c, &user)?;
    // One chunk of 3 MiB: over the simulator's 2 MiB per chunk, and over what any client sends.
    let r = upload_file(c, ev, &u, &payload(3 * 1024 * 1024), 3 * 1024 * 1024).await;
    let r = match r {
        Ok(r) => r,
        Err(Miss::Failed(m)) if m.field == "status" && m.actual.starts_with("413") => return Ok(()),
        Err(other) => return Err(other),
    };
    Err(r.miss("status", "413 for the oversized chunk", r.status_text()))
}
