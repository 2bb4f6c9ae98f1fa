//! The baseline of `benches/sim_throughput.sh`: the smallest axum handler that answers a V2
//! message with a fixed body, with no auth, parsing or state. The simulator's throughput is
//! reported as a ratio of this one's, measured in the same run on the same machine.

use axum::routing::post;
use axum::Router;

const BODY: &str = r#"{"data":[{"type":"text","val":"ok"}],"_v":"v2"}"#;

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new().route(
        "/chatbot/v2/webhook/{bot}",
        post(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                BODY,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    println!("http://{}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
