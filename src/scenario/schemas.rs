//! JSON Schemas shipped with hookbench for every body of the protocol (`schema: v2.response`).

use serde_json::Value;

/// The names `schema:` accepts.
pub const NAMES: [&str; 5] = [
    "v1.response",
    "v2.response",
    "v2.ack",
    "error",
    "v2.request",
];

/// A built-in schema by name.
pub fn builtin(name: &str) -> Option<Value> {
    let text = match name {
        "v1.response" => include_str!("../../schemas/v1.response.json"),
        "v2.response" => include_str!("../../schemas/v2.response.json"),
        "v2.ack" => include_str!("../../schemas/v2.ack.json"),
        "error" => include_str!("../../schemas/error.json"),
        "v2.request" => include_str!("../../schemas/v2.request.json"),
        _ => return None,
    };
    serde_json::from_str(text).ok()
}
