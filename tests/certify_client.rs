//! Certifying clients: hookbench's own client following a printed plan passes `v1-sync`,
//! `v2-poll` and `v2-async`; deliberately misbehaving clients fail the matching checks by name.

use std::path::Path;
use std::time::Duration;

use hookbench::certify::catalogue::Profile;
use hookbench::certify::client::{ClientRun, ClientSession};
use hookbench::certify::{Certification, CheckStatus, Grade, Product};
use hookbench::engine::suite::{self, TestOptions};
use hookbench::protocol::jwt::{Alg, AppClaim, ClaimsTemplate, Signer};
use hookbench::scenario::{parse_str, Secret};
use hookbench::sim::Bot;
use serde_json::{json, Value};

fn run(profile: Profile, post_url: Option<String>) -> ClientRun {
    ClientRun {
        profile,
        product: Product {
            name: "client".into(),
            version: "1".into(),
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        post_url,
        timeout: Duration::from_secs(60),
        quiet: Duration::from_millis(1500),
    }
}

fn status(c: &Certification, id: &str) -> CheckStatus {
    c.checks
        .iter()
        .find(|k| k.id == id)
        .unwrap_or_else(|| panic!("{id} not graded"))
        .result
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// hookbench's own client (the scenario runner) following the plan: a scenario written from it.
async fn own_client(profile: Profile) -> Certification {
    let port = free_port();
    let post_url =
        (profile == Profile::V2Async).then(|| format!("http://127.0.0.1:{port}/hookbench/async"));
    let r = run(profile, post_url);
    let session = ClientSession::start(&r, Bot::demo()).await.unwrap();
    let plan = &session.announcement["plan"];
    let mut yaml = String::from("name: plan\nuser: { id: client-1 }\n");
    if profile == Profile::V2Poll {
        // The plan's last pollId never completes: give up on it well within the 20 s asked.
        yaml.push_str("target:\n  poll: { max_wait: 4s }\n");
    }
    if profile == Profile::V2Async {
        yaml.push_str(&format!(
            "target:\n  mode: async\n  async: {{ listen: \"127.0.0.1:{port}\", quiet: 2500ms, max_wait: 10s }}\n"
        ));
    }
    yaml.push_str("steps:\n");
    let steps = plan["steps"].as_array().unwrap();
    let mut i = 0;
    while i < steps.len() {
        let s = &steps[i];
        if s["upload"] == true {
            // The runner's upload step is the upload and the message that names the file.
            let text = steps[i + 1]["say"].as_str().unwrap();
            yaml.push_str(&format!(
                "  - upload: {{ file: {}/scenarios/files/scan.png, text: \"{text}\", file_type: image, chunk_size: 32 }}\n",
                env!("CARGO_MANIFEST_DIR")
            ));
            i += 2;
            continue;
        }
        match (s["say"].as_str(), s["event"].as_str()) {
            (Some(t), _) => yaml.push_str(&format!("  - send: \"{t}\"\n")),
            (_, Some(e)) => yaml.push_str(&format!("  - event: {e}\n")),
            _ => unreachable!(),
        }
        i += 1;
    }
    let scenario = parse_str(
        &yaml,
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plan.yaml")),
        &|_| None,
    )
    .unwrap();
    let opts = TestOptions {
        target: Some(
            steps.iter().find(|s| s["upload"] != true).unwrap()["url"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        client_id: Some(session.announcement["client_id"].as_str().unwrap().into()),
        client_secret: Some(Secret(
            session.announcement["client_secret"]
                .as_str()
                .unwrap()
                .into(),
        )),
    };
    let report = suite::run(&[scenario], &opts, |_| {}).await;
    // Every step passes but the one whose pollId never completes, which the runner gives up
    // as a budget failure (what the plan asks).
    for step in &report.scenarios[0].steps {
        let ok = step.status == hookbench::engine::results::StepStatus::Passed
            || (step.label.contains("slow")
                && step.failure.as_ref().is_some_and(|f| f.class() == "budget"));
        assert!(ok, "{:#?}", report.scenarios[0]);
    }
    session.finish(&r, std::future::pending()).await
}

#[tokio::test]
async fn hookbench_itself_passes_v1_sync() {
    let c = own_client(Profile::V1Sync).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
}

#[tokio::test]
async fn hookbench_itself_passes_v2_poll() {
    let c = own_client(Profile::V2Poll).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
    assert_eq!(c.checks.len(), 18);
    assert_eq!(status(&c, "CL-POLL-08"), CheckStatus::Passed);
}

#[tokio::test]
async fn hookbench_itself_passes_v2_async() {
    let c = own_client(Profile::V2Async).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
    // What only the client's screen shows is left for review, with the deliveries attached.
    assert_eq!(status(&c, "CL-ASYNC-04"), CheckStatus::Review);
    let k = c.checks.iter().find(|k| k.id == "CL-ASYNC-04").unwrap();
    assert!(
        k.evidence.iter().any(|e| e.method.contains("POST_URL")),
        "{k:?}"
    );
    assert_eq!(c.summary.review, 1);
}

#[tokio::test]
async fn hookbench_itself_passes_upload() {
    let c = own_client(Profile::Upload).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
    // scan.png (80 bytes) in 32-byte chunks: three, numbered and merged.
    let k = c.checks.iter().find(|k| k.id == "CL-UP-02").unwrap();
    assert!(k.evidence.len() > 2, "{k:?}");
    assert!(k.evidence[0]
        .request_body
        .as_deref()
        .unwrap_or_default()
        .contains("chunkNo=0"));
}

#[tokio::test]
async fn chunks_numbered_from_one_fail_the_order_check() {
    let r = run(Profile::Upload, None);
    let session = ClientSession::start(&r, Bot::demo()).await.unwrap();
    let a = session.announcement.clone();
    let client = RawClient {
        http: reqwest::Client::new(),
        client_id: a["client_id"].as_str().unwrap().into(),
        secret: a["client_secret"].as_str().unwrap().into(),
        user: "up-1".into(),
        how: Misbehaviour::None,
    };
    let auth = format!("bearer {}", client.token());
    let token_url = a["plan"]["steps"][0]["url"].as_str().unwrap();
    let ft: Value = client
        .http
        .post(token_url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ft = ft["fileToken"].as_str().unwrap();
    for no in [1, 2] {
        let form = reqwest::multipart::Form::new()
            .text("chunkNo", no.to_string())
            .text("fileToken", ft.to_string())
            .part(
                "chunk",
                reqwest::multipart::Part::bytes(vec![7u8; 100]).file_name("a.png"),
            );
        client
            .http
            .post(format!("{token_url}/{ft}/chunk"))
            .header("authorization", &auth)
            .multipart(form)
            .send()
            .await
            .unwrap();
    }
    let form = reqwest::multipart::Form::new()
        .text("totalChunks", "2")
        .text("fileExtension", "png")
        .text("filename", "a")
        .text("fileContext", "workflows")
        .text("thumbnailUpload", "false");
    let merged: Value = client
        .http
        .put(format!("{token_url}/{ft}"))
        .header("authorization", &auth)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    let body = json!({"message": {"type": "text", "val": "here is the document", "attachments": [{"fileId": merged["fileId"], "fileName": "a.png", "fileType": "image"}]}, "from": {"id": "up-1"}});
    client
        .send(a["plan"]["steps"][1]["url"].as_str().unwrap(), &body)
        .await;
    let c = session.finish(&r, std::future::pending()).await;
    assert_eq!(status(&c, "CL-UP-02"), CheckStatus::Failed, "{c:#?}");
    let k = c.checks.iter().find(|k| k.id == "CL-UP-02").unwrap();
    assert_eq!(k.mismatches[0].field, "chunkNo");
    assert_eq!(k.mismatches[0].expected, "0");
    assert_eq!(status(&c, "CL-UP-01"), CheckStatus::Passed);
}

/// How a hand-written test client misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Misbehaviour {
    None,
    PollWithoutWaiting,
    ReusePollId,
    AlgNone,
    RetryAtOnce,
}

struct RawClient {
    http: reqwest::Client,
    client_id: String,
    secret: String,
    user: String,
    how: Misbehaviour,
}

impl RawClient {
    fn token(&self) -> String {
        if self.how == Misbehaviour::AlgNone {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let claims =
                json!({"appId": self.client_id, "sub": self.user, "userIdentity": self.user});
            return format!(
                "{}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(claims.to_string())
            );
        }
        let t = ClaimsTemplate {
            client_id: self.client_id.clone(),
            app_claim: AppClaim::AppId,
            user_identity: true,
            expires_in: Some(Duration::from_secs(600)),
            // A fresh token each time (a refresh differs from the refused token).
            jti: true,
            extra: serde_json::Map::new(),
        };
        Signer::hmac(Alg::HS256, self.secret.as_bytes())
            .unwrap()
            .sign_for(&t, &self.user)
            .unwrap()
    }

    async fn send(&self, url: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(url)
            .header("authorization", format!("bearer {}", self.token()))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn poll(&self, base: &str, bot: &str, id: &str) -> Value {
        let url = format!("{base}/chatbot/v2/webhook/{bot}/poll/{id}");
        self.http
            .get(url)
            .header("authorization", format!("bearer {}", self.token()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn follow(&self, announcement: &Value) {
        let base = announcement["base_url"].as_str().unwrap();
        let bot = announcement["bot_id"].as_str().unwrap();
        for step in announcement["plan"]["steps"].as_array().unwrap() {
            if step["optional"] == true {
                continue;
            }
            let url = step["url"].as_str().unwrap();
            let body = if step["version"] == "v1" {
                json!({"message": {"text": step["say"]}, "from": {"id": self.user}})
            } else {
                json!({"message": {"type": "text", "val": step["say"]}, "from": {"id": self.user}})
            };
            let mut answer = self.send(url, &body).await;
            for _ in 0..3 {
                if answer.0 == 200 {
                    break;
                }
                if self.how != Misbehaviour::RetryAtOnce {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                answer = self.send(url, &body).await;
            }
            let mut poll_id = answer.1["pollId"].as_str().map(str::to_string);
            let mut last = None;
            let since = std::time::Instant::now();
            while let Some(id) = poll_id.take() {
                // A pollId that never completes is given up after 3 s.
                if since.elapsed() > Duration::from_secs(3) {
                    break;
                }
                let wait = if self.how == Misbehaviour::PollWithoutWaiting {
                    0
                } else {
                    250
                };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let r = self.poll(base, bot, &id).await;
                if r["status"] == "Inprogress" {
                    poll_id = Some(id);
                    continue;
                }
                last = Some(id);
                poll_id = r["pollId"].as_str().map(str::to_string);
            }
            if let (Some(id), Misbehaviour::ReusePollId) = (last, self.how) {
                self.poll(base, bot, &id).await;
            }
        }
    }
}

async fn raw_client(profile: Profile, how: Misbehaviour) -> Certification {
    let r = run(profile, None);
    let session = ClientSession::start(&r, Bot::demo()).await.unwrap();
    let a = &session.announcement;
    let client = RawClient {
        http: reqwest::Client::new(),
        client_id: a["client_id"].as_str().unwrap().into(),
        secret: a["client_secret"].as_str().unwrap().into(),
        user: "raw-1".into(),
        how,
    };
    client.follow(a).await;
    session.finish(&r, std::future::pending()).await
}

#[tokio::test]
async fn a_well_behaved_hand_written_client_passes_v2_poll_and_auth() {
    let c = raw_client(Profile::V2Poll, Misbehaviour::None).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
    let c = raw_client(Profile::Auth, Misbehaviour::None).await;
    assert_eq!(c.result, Grade::Passed, "{c:#?}");
}

#[tokio::test]
async fn polling_without_waiting_fails_the_hammering_check() {
    let c = raw_client(Profile::V2Poll, Misbehaviour::PollWithoutWaiting).await;
    assert_eq!(status(&c, "CL-POLL-02"), CheckStatus::Failed, "{c:#?}");
    assert_eq!(status(&c, "CL-POLL-01"), CheckStatus::Passed);
    assert_eq!(c.result, Grade::Failed);
}

#[tokio::test]
async fn polling_a_consumed_poll_id_fails_the_reuse_check() {
    let c = raw_client(Profile::V2Poll, Misbehaviour::ReusePollId).await;
    assert_eq!(status(&c, "CL-POLL-03"), CheckStatus::Failed, "{c:#?}");
    assert_eq!(status(&c, "CL-POLL-02"), CheckStatus::Passed);
    let k = c.checks.iter().find(|k| k.id == "CL-POLL-03").unwrap();
    // The mismatch names the request in the check's evidence.
    let m = &k.mismatches[0];
    let ex = &k.evidence[m.exchange.unwrap()];
    assert!(ex.url.contains("/poll/"), "{ex:?}");
}

#[tokio::test]
async fn unsigned_tokens_fail_the_algorithm_check() {
    let c = raw_client(Profile::V2Poll, Misbehaviour::AlgNone).await;
    assert_eq!(status(&c, "CL-AUTH-01"), CheckStatus::Failed, "{c:#?}");
    assert_eq!(c.result, Grade::Failed);
    // Evidence names the algorithm, never the token.
    let k = c.checks.iter().find(|k| k.id == "CL-AUTH-01").unwrap();
    let shown = serde_json::to_string(&k.evidence).unwrap();
    assert!(shown.contains("alg none"), "{shown}");
    assert!(!shown.contains("eyJhbGciOiJub25l"), "{shown}");
}

#[tokio::test]
async fn retrying_at_once_is_warned_not_failed() {
    let c = raw_client(Profile::Auth, Misbehaviour::RetryAtOnce).await;
    assert_eq!(status(&c, "CL-ERR-01"), CheckStatus::Warning, "{c:#?}");
    assert_eq!(status(&c, "CL-ERR-02"), CheckStatus::Warning, "{c:#?}");
    assert_eq!(status(&c, "CL-ERR-03"), CheckStatus::Warning, "{c:#?}");
    assert_eq!(status(&c, "CL-AUTH-07"), CheckStatus::Passed, "{c:#?}");
    assert_eq!(c.result, Grade::Warned);
}

#[tokio::test]
async fn a_client_that_never_comes_fails_as_missing() {
    let mut r = run(Profile::V2Poll, None);
    r.timeout = Duration::from_millis(300);
    let session = ClientSession::start(&r, Bot::demo()).await.unwrap();
    let c = session.finish(&r, std::future::pending()).await;
    assert_eq!(status(&c, "CL-PLAN-01"), CheckStatus::Failed);
    assert!(
        c.checks.iter().all(|k| k.result != CheckStatus::Passed),
        "{c:#?}"
    );
    assert_eq!(c.result, Grade::Failed);
}

#[test]
fn certify_client_prints_its_plan_first_and_names_failed_checks() {
    use std::io::BufRead as _;
    let out = std::env::temp_dir().join(format!("hookbench-cc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookbench"))
        .args([
            "certify",
            "client",
            "--profile",
            "v2-poll",
            "--product",
            "hammer",
        ])
        .args(["--product-version", "0.1", "--timeout", "60s", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let announcement: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(announcement["plan"]["profile"], "v2-poll");
    assert!(announcement["plan"]["steps"].as_array().unwrap().len() >= 5);
    assert!(announcement["v2_url"].is_null() && announcement["instances"].is_array());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        RawClient {
            http: reqwest::Client::new(),
            client_id: announcement["client_id"].as_str().unwrap().into(),
            secret: announcement["client_secret"].as_str().unwrap().into(),
            user: "hammer-1".into(),
            how: Misbehaviour::PollWithoutWaiting,
        }
        .follow(&announcement)
        .await;
    });
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(1), "{rest}");
    assert!(rest.contains("FAILED  CL-POLL-02"), "{rest}");
    assert!(out.join("certificate.json").is_file());
    // No secret and no whole token in the client's bundle either.
    let jwt = regex::Regex::new(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.").unwrap();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains("demo-secret-hookbench"),
            "{}",
            path.display()
        );
        assert!(
            !jwt.is_match(&text),
            "{} holds a whole token",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
