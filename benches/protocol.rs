//! Hot paths of the protocol layer: decoding requests, encoding responses, and JWT.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hookbench::protocol::jwt::{
    self, Alg, AppClaim, ClaimsTemplate, Signer, VerifyKey, VerifyPolicy,
};
use hookbench::protocol::{ids, v1, v2};

const V2_REQUEST: &str = r#"{"session":{"new":false},"message":{"type":"text","val":"what is my balance"},"from":{"id":"user-42","userInfo":{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com"}},"to":{"id":"st-5d6e7f80-9a1b-4c2d-8e3f-a4b5c6d7e8f9"},"customData":{"tier":"gold"}}"#;
const V1_REQUEST: &str = r#"{"message":{"text":"what is my balance"},"from":{"id":"user-42"}}"#;
const V2_RESPONSE: &str = r#"{"to":"user-42","from":"st-5d6e7f80-9a1b-4c2d-8e3f-a4b5c6d7e8f9","data":[{"type":"text","val":"The balance in your Salary account ending with 3984 is $54,883.","createdOn":"2026-11-25T12:30:39.852Z","messageId":"ms-9c3d0987-846a-4376-ba21-0d10a0009f0d"},{"type":"text","val":"Let me know if you need any other assistance.","createdOn":"2026-11-25T12:30:39.852Z","messageId":"ms-61125b35-ca9e-4187-805f-ed8f0f43f0fd"}],"_v":"v2","endOfTask":true,"endReason":"Fulfilled","completedTaskId":"dg-76701268-a2aa-5602-9796-345744d79994","completedTaskName":"Show Balance"}"#;

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("v2_request", |b| {
        b.iter(|| {
            let r: v2::Request = serde_json::from_str(black_box(V2_REQUEST)).unwrap();
            black_box(r.input().is_ok())
        })
    });
    g.bench_function("v1_request", |b| {
        b.iter(|| serde_json::from_str::<v1::Request>(black_box(V1_REQUEST)).unwrap())
    });
    g.bench_function("v2_response", |b| {
        b.iter(|| serde_json::from_str::<v2::Response>(black_box(V2_RESPONSE)).unwrap())
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let resp: v2::Response = serde_json::from_str(V2_RESPONSE).unwrap();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("v2_response", |b| {
        b.iter(|| serde_json::to_vec(black_box(&resp)).unwrap())
    });
    g.bench_function("ids_message_and_created_on", |b| {
        b.iter(|| (ids::message_id(), ids::created_on_now()))
    });
    g.bench_function("poll_id", |b| b.iter(ids::poll_id));
    g.finish();
}

fn jwt_bench(c: &mut Criterion) {
    let signer = Signer::hmac(Alg::HS256, b"demo-secret-hookbench-0123456789abcdef").unwrap();
    let template = ClaimsTemplate {
        client_id: "cs-0a1b2c3d".into(),
        app_claim: AppClaim::AppId,
        user_identity: true,
        expires_in: Some(std::time::Duration::from_secs(3600)),
        jti: false,
        extra: Default::default(),
    };
    let token = signer.sign(&template.for_user("user-42")).unwrap();
    let key = VerifyKey::secret(b"demo-secret-hookbench-0123456789abcdef");
    let policy = VerifyPolicy::default();
    let mut g = c.benchmark_group("jwt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign_hs256", |b| {
        b.iter(|| {
            signer
                .sign(&template.for_user(black_box("user-42")))
                .unwrap()
        })
    });
    g.bench_function("verify_hs256", |b| {
        b.iter(|| jwt::verify(black_box(&token), &key, &policy).unwrap())
    });
    g.finish();
}

/// JWE: what a user pays once per token (encrypting its signed token to the bot's key) and
/// what the simulator pays once per new token (decrypting it with the bot's private key).
fn jwe_bench(c: &mut Criterion) {
    use hookbench::protocol::jwt::jwe::{self, ContentEnc, KeyAlg};
    let private =
        jwe::private_key_from_pem(include_str!("../scenarios/bots/demo-jwe.key.pem")).unwrap();
    let public = jwe::public_key_from_pem(&jwe::public_pem(&private)).unwrap();
    let signer = Signer::hmac(Alg::HS256, b"demo-jwe-secret").unwrap();
    let template = ClaimsTemplate {
        client_id: "cs-3e4f5a6b".into(),
        app_claim: AppClaim::AppId,
        user_identity: true,
        expires_in: Some(std::time::Duration::from_secs(3600)),
        jti: false,
        extra: Default::default(),
    };
    let jwt = signer.sign_for(&template, "user-42").unwrap();
    let mut g = c.benchmark_group("jwe");
    g.throughput(Throughput::Elements(1));
    for (name, alg, enc) in [
        (
            "rsa_oaep_256_a256gcm",
            KeyAlg::RsaOaep256,
            ContentEnc::A256Gcm,
        ),
        (
            "rsa_oaep_a128cbc_hs256",
            KeyAlg::RsaOaep,
            ContentEnc::A128CbcHs256,
        ),
    ] {
        g.bench_function(format!("encrypt_{name}"), |b| {
            b.iter(|| jwe::encrypt(black_box(&jwt), &public, alg, enc).unwrap())
        });
        let sealed = jwe::encrypt(&jwt, &public, alg, enc).unwrap();
        g.bench_function(format!("decrypt_{name}"), |b| {
            b.iter(|| jwe::decrypt(black_box(&sealed), &private).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode, jwt_bench, jwe_bench);
criterion_main!(benches);
