//! Rich messages (templates and forms) arrive as objects, as JSON strings, or as HTML-escaped
//! JSON strings inside `text`/`val`. [`decode`] turns any of those into the object.

use serde_json::Value;

/// The object behind a message value, whichever of the three encodings it came in; `None` for
/// plain text.
pub fn decode(val: &Value) -> Option<Value> {
    match val {
        Value::Object(_) => Some(val.clone()),
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with('{') {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(t) {
                    return Some(v);
                }
            }
            if t.starts_with('{') && t.contains("&quot;") {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&unescape_html(t)) {
                    return Some(v);
                }
            }
            None
        }
        _ => None,
    }
}

/// Replaces the HTML entities the platform uses when it escapes JSON inside text.
pub fn unescape_html(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Escapes a JSON string the way V1 puts templates in `text`.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The plain text of a message value: the string itself, or a template's `payload.text`.
pub fn text_of(val: &Value) -> Option<String> {
    match decode(val) {
        Some(obj) => obj
            .pointer("/payload/text")
            .or_else(|| obj.get("text"))
            .and_then(Value::as_str)
            .map(str::to_string),
        None => val.as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_encodings_one_object() {
        let obj =
            json!({"type": "template", "payload": {"template_type": "button", "text": "Pick"}});
        let as_string = Value::String(obj.to_string());
        let escaped = Value::String(escape_html(&obj.to_string()));
        assert_eq!(decode(&obj), Some(obj.clone()));
        assert_eq!(decode(&as_string), Some(obj.clone()));
        assert_eq!(decode(&escaped), Some(obj.clone()));
        assert_eq!(text_of(&escaped).as_deref(), Some("Pick"));
        assert_eq!(decode(&json!("hello {not json")), None);
        assert_eq!(text_of(&json!("hello")).as_deref(), Some("hello"));
    }
}
