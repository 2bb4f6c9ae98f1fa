//! The file upload API: token, chunks (binary and base64), merge on both URLs, one shot, limits.

use base64::Engine;
use hookbench::protocol::Version;
use hookbench::sim::SimConfig;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::common::{test_bot, Harness, Reply};

async fn new_token(h: &Harness) -> String {
    let r = Reply::from(
        h.http
            .post(h.sim.endpoints().upload_token(None))
            .header("authorization", format!("bearer {}", h.token("u")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.body["expiresOn"].as_u64().unwrap() > 1_600_000_000_000);
    r.body["fileToken"].as_str().unwrap().to_string()
}

async fn send_chunk(h: &Harness, ft: &str, n: u32, data: Vec<u8>, base64: bool) -> Reply {
    send_chunk_as(h, "u", ft, n, data, base64).await
}

async fn send_chunk_as(
    h: &Harness,
    user: &str,
    ft: &str,
    n: u32,
    data: Vec<u8>,
    base64: bool,
) -> Reply {
    let part = if base64 {
        let enc = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-transfer-encoding", "base64".parse().unwrap());
        Part::text(enc).headers(headers)
    } else {
        Part::bytes(data).file_name("blob")
    };
    let form = Form::new()
        .text("chunkNo", n.to_string())
        .text("messageToken", ft.to_string())
        .part("chunk", part);
    let url = h.sim.endpoints().upload_chunk(None, ft);
    Reply::from(
        h.http
            .post(url)
            .header("authorization", format!("bearer {}", h.token(user)))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn merge(h: &Harness, url: String, total: u32) -> Reply {
    let form = Form::new()
        .text("totalChunks", total.to_string())
        .text("fileExtension", "png")
        .text("filename", "scan")
        .text("fileContext", "workflows")
        .text("thumbnailUpload", "false");
    Reply::from(
        h.http
            .put(url)
            .header("authorization", format!("bearer {}", h.token("u")))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn chunked_upload_then_message_with_attachment() {
    let h = Harness::demo().await;
    let ft = new_token(&h).await;
    let r = send_chunk(&h, &ft, 0, vec![1u8; 1000], false).await;
    assert_eq!(r.body, json!({"chunkNo": "0"}), "{}", r.raw);
    let r = send_chunk(&h, &ft, 1, vec![2u8; 500], true).await;
    assert_eq!(r.body, json!({"chunkNo": "1"}), "{}", r.raw);
    let r = merge(&h, h.sim.endpoints().upload_merge(None, &ft), 2).await;
    let file_id = r.body["fileId"].as_str().unwrap().to_string();
    assert_eq!(file_id.len(), 24);
    assert!(file_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h.sim.state.files.lock().unwrap()[&file_id].size, 1500);
    // The token is one-shot.
    assert_eq!(
        merge(&h, h.sim.endpoints().upload_merge(None, &ft), 2)
            .await
            .status,
        400
    );

    let r = h
        .post(Version::V2, "default", "u", json!({
            "message": {"type": "text", "val": "here is my scan", "attachments": [{"fileId": file_id, "fileType": "image"}]},
            "from": {"id": "u"}
        }))
        .await;
    assert_eq!(r.texts(), ["Received scan.png."], "{}", r.raw);
}

#[tokio::test]
async fn merge_is_accepted_on_the_documented_chunk_url_too() {
    let h = Harness::demo().await;
    let ft = new_token(&h).await;
    send_chunk(&h, &ft, 0, vec![0u8; 10], false).await;
    let r = merge(&h, h.sim.endpoints().upload_chunk(None, &ft), 1).await;
    assert!(r.body["fileId"].is_string(), "{}", r.raw);
}

#[tokio::test]
async fn incomplete_merge_is_invalid() {
    let h = Harness::demo().await;
    let ft = new_token(&h).await;
    send_chunk(&h, &ft, 0, vec![0u8; 10], false).await;
    let r = merge(&h, h.sim.endpoints().upload_merge(None, &ft), 2).await;
    assert_eq!((r.status, r.error_msg()), (400, "Invalid Request Payload"));
}

#[tokio::test]
async fn limits_answer_413() {
    let mut bot = test_bot();
    bot.settings.max_chunk_bytes = 100;
    bot.settings.max_file_bytes = 150;
    let h = Harness::with(SimConfig::new(bot)).await;
    let ft = new_token(&h).await;
    let big = send_chunk(&h, &ft, 0, vec![0u8; 101], false).await;
    assert_eq!(
        (big.status, big.error_msg()),
        (413, "File size exceeds the limit")
    );
    assert_eq!(
        send_chunk(&h, &ft, 0, vec![0u8; 100], false).await.status,
        200
    );
    assert_eq!(
        send_chunk(&h, &ft, 1, vec![0u8; 60], false).await.status,
        413
    );
}

#[tokio::test]
async fn one_shot_upload() {
    let h = Harness::demo().await;
    let form = Form::new()
        .part("file", Part::bytes(vec![7u8; 2048]).file_name("doc.txt"))
        .text("fileExtension", "txt");
    let r = Reply::from(
        h.http
            .post(h.sim.endpoints().upload_file(None))
            .header("authorization", format!("bearer {}", h.token("u")))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = r.body["fileId"].as_str().unwrap();
    assert_eq!(h.sim.state.files.lock().unwrap()[id].name, "doc.txt");
}

/// The public Upload File API: the bot from the token, `{fileId, hash}` back.
#[tokio::test]
async fn the_public_upload_file_api_answers_an_id_and_a_hash() {
    let h = Harness::demo().await;
    let url = format!("{}/api/public/uploadfile", h.sim.base_url());
    let send = |auth: bool| {
        let form = Form::new()
            .part("file", Part::bytes(b"hello".to_vec()).file_name("hi.txt"))
            .text("fileContext", "bulkImport")
            .text("fileExtension", "txt");
        let mut req = h.http.post(&url).multipart(form);
        if auth {
            req = req.header("authorization", format!("bearer {}", h.token("u")));
        }
        req.send()
    };
    assert_eq!(send(false).await.unwrap().status(), 401);
    let r = Reply::from(send(true).await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["fileId"].as_str().unwrap();
    assert_eq!(h.sim.state.files.lock().unwrap()[id].name, "hi.txt");
    // SHA-256 of "hello".
    assert_eq!(
        r.body["hash"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
}

/// Asks for an upload token on `channel`, with or without a bearer token.
async fn token_request(h: &Harness, channel: Option<&str>, authorized: bool) -> Reply {
    let mut req = h.http.post(h.sim.endpoints().upload_token(channel));
    if authorized {
        req = req.header("authorization", format!("bearer {}", h.token("u")));
    }
    Reply::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn uploads_need_a_token_and_a_known_channel() {
    let h = Harness::demo().await;
    assert_eq!(token_request(&h, None, false).await.status, 401);
    assert_eq!(
        token_request(&h, Some("ivrInst-nope"), true).await.status,
        404
    );
    // The second instance uses its id as channelType.
    assert_eq!(
        token_request(&h, Some("ivrInst-nopoll"), true).await.status,
        200
    );
}

#[tokio::test]
async fn an_upload_token_belongs_to_the_user_who_asked_for_it() {
    let h = Harness::demo().await;
    let ft = new_token(&h).await;
    let other = send_chunk_as(&h, "mallory", &ft, 0, vec![1u8; 10], false).await;
    assert_eq!(other.status, 400, "{}", other.raw);
    let own = send_chunk(&h, &ft, 0, vec![1u8; 10], false).await;
    assert_eq!(own.body, json!({"chunkNo": "0"}), "{}", own.raw);
}
