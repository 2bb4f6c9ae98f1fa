//! Files through the platform's upload API (chunked or one shot), for `upload:` steps.

use super::turns::protocol_failure;
use super::*;

impl Conversation<'_> {
    pub(super) async fn upload(
        &self,
        path: &std::path::Path,
        method: UploadMethod,
        auth: &Bearer,
    ) -> Result<String, Failure> {
        let data = crate::common::read_bytes_limited(path, crate::common::MAX_UPLOAD_BYTES)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let ep = &self.target.endpoints;
        let inst = self.target.instance.as_deref();
        let http = self.target.http.raw();
        let auth = auth.header();
        let call = |req: reqwest::RequestBuilder| async move {
            let ex = self
                .target
                .http
                .exchange(req.timeout(self.target.timeout))
                .await
                .map_err(transport)?;
            if ex.status != 200 {
                return Err(protocol_failure(&ex));
            }
            serde_json::from_slice::<Value>(&ex.body).map_err(|e| Failure::Decode {
                message: format!("upload answer: {e}"),
            })
        };
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let ext = path
            .extension()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_id = |answer: Value, what: &str| {
            answer
                .get("fileId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Failure::Decode {
                    message: format!("no fileId in the {what} answer"),
                })
        };
        let chunk_size = match method {
            UploadMethod::Chunked(size) => size,
            UploadMethod::OneShot => {
                let form = reqwest::multipart::Form::new()
                    .text("fileExtension", ext.clone())
                    .text("filename", name.clone())
                    .text("fileContext", "workflows")
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(data).file_name(format!("{name}.{ext}")),
                    );
                let answer = call(
                    http.post(ep.upload_file(inst))
                        .header("authorization", &auth)
                        .multipart(form),
                )
                .await?;
                return file_id(answer, "one-shot upload");
            }
        };
        let tok = call(
            http.post(ep.upload_token(inst))
                .header("authorization", &auth),
        )
        .await?;
        let ft = tok
            .get("fileToken")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::Decode {
                message: "no fileToken in the token answer".into(),
            })?
            .to_string();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(chunk_size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let form = reqwest::multipart::Form::new()
                .text("chunkNo", i.to_string())
                .text("fileToken", ft.clone())
                .part(
                    "chunk",
                    reqwest::multipart::Part::bytes(chunk.to_vec())
                        .file_name(format!("{name}.{ext}")),
                );
            call(
                http.post(ep.upload_chunk(inst, &ft))
                    .header("authorization", &auth)
                    .multipart(form),
            )
            .await?;
        }
        let form = reqwest::multipart::Form::new()
            .text("totalChunks", chunks.len().to_string())
            .text("fileExtension", ext)
            .text("filename", name)
            .text("fileContext", "workflows")
            .text("thumbnailUpload", "false");
        let merged = call(
            http.put(ep.upload_merge(inst, &ft))
                .header("authorization", &auth)
                .multipart(form),
        )
        .await?;
        file_id(merged, "merge")
    }
}
