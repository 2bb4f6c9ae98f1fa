//! Endpoint URLs (PROTOCOL.md section 1): building them from a base, a bot and an instance, and
//! reading a webhook URL as the channel page shows it.

use serde::{Deserialize, Serialize};

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// `/chatbot/hooks/…`
    V1,
    /// `/chatbot/v2/webhook/…`
    V2,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// Builds every URL for one bot on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Scheme and host, no trailing slash: `https://platform.example.com`.
    pub base: String,
    /// `st-…`.
    pub bot_id: String,
}

impl Endpoints {
    /// `base` may end with a slash.
    pub fn new(base: &str, bot_id: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            bot_id: bot_id.to_string(),
        }
    }

    /// The message URL; `instance` is `None` for the first webhook instance.
    pub fn message(&self, version: Version, instance: Option<&str>) -> String {
        let prefix = match version {
            Version::V1 => "chatbot/hooks",
            Version::V2 => "chatbot/v2/webhook",
        };
        match instance {
            None => format!("{}/{prefix}/{}", self.base, self.bot_id),
            Some(i) => format!("{}/{prefix}/{}/hookInstance/{i}", self.base, self.bot_id),
        }
    }

    /// `GET …/chatbot/v2/webhook/{botId}/poll/{pollId}` (no instance segment).
    pub fn poll(&self, poll_id: &str) -> String {
        format!(
            "{}/chatbot/v2/webhook/{}/poll/{poll_id}",
            self.base, self.bot_id
        )
    }

    /// `channelType` for uploads: `ivr` for the first instance, else the instance id.
    pub fn channel_type(instance: Option<&str>) -> &str {
        instance.unwrap_or("ivr")
    }

    /// `POST …/api/attachments/{botId}/{channelType}/token`.
    pub fn upload_token(&self, instance: Option<&str>) -> String {
        format!(
            "{}/api/attachments/{}/{}/token",
            self.base,
            self.bot_id,
            Self::channel_type(instance)
        )
    }

    /// `POST …/token/{fileToken}/chunk`.
    pub fn upload_chunk(&self, instance: Option<&str>, file_token: &str) -> String {
        format!("{}/{file_token}/chunk", self.upload_token(instance))
    }

    /// `PUT …/token/{fileToken}` (the SDKs' form; the docs add `/chunk`).
    pub fn upload_merge(&self, instance: Option<&str>, file_token: &str) -> String {
        format!("{}/{file_token}", self.upload_token(instance))
    }

    /// `POST …/api/attachments/file/{botId}/{channelType}` (one shot).
    pub fn upload_file(&self, instance: Option<&str>) -> String {
        format!(
            "{}/api/attachments/file/{}/{}",
            self.base,
            self.bot_id,
            Self::channel_type(instance)
        )
    }
}

/// A webhook URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Base and bot.
    pub endpoints: Endpoints,
    /// From the path.
    pub version: Version,
    /// `None` for the first instance.
    pub instance: Option<String>,
}

/// Why a URL is not a webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` is not a webhook URL: {reason} (expected …/chatbot/hooks/{{botId}} or …/chatbot/v2/webhook/{{botId}}, optionally with /hookInstance/{{id}})")]
pub struct UrlError {
    url: String,
    reason: &'static str,
}

impl WebhookUrl {
    /// Parses `http(s)://host[:port][/prefix]/chatbot/(hooks|v2/webhook)/{botId}[/hookInstance/{id}]`.
    ///
    /// Credentials in the authority (`user:password@host`) are refused: the channel
    /// authenticates with a JWT, and a URL is printed in reports. The error shows the URL with
    /// its userinfo masked.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: redact_userinfo(url),
            reason,
        };
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"))
            .ok_or_else(|| err("scheme must be http or https"))?;
        let host_end = rest.find('/').unwrap_or(rest.len());
        if rest[..host_end].contains('@') {
            return Err(err("credentials in a URL (user:password@) are not accepted; the channel authenticates with a JWT (--client-id/--client-secret or the scenario's auth:)"));
        }
        if host_end == rest.len() {
            return Err(err("no path"));
        }
        let path = &rest[host_end..];
        let base_len = trimmed.len() - path.len();
        let (version, at) = if let Some(i) = path.find("/chatbot/v2/webhook/") {
            (Version::V2, (i, "/chatbot/v2/webhook/".len()))
        } else if let Some(i) = path.find("/chatbot/hooks/") {
            (Version::V1, (i, "/chatbot/hooks/".len()))
        } else {
            return Err(err("no /chatbot/hooks/ or /chatbot/v2/webhook/ segment"));
        };
        let base = &trimmed[..base_len + at.0];
        let segs: Vec<&str> = path[at.0 + at.1..].split('/').collect();
        let (bot, instance) = match segs.as_slice() {
            [bot] if !bot.is_empty() => (*bot, None),
            [bot, "hookInstance", inst] if !bot.is_empty() && !inst.is_empty() => {
                (*bot, Some(inst.to_string()))
            }
            _ => return Err(err("unexpected path after the bot id")),
        };
        Ok(Self {
            endpoints: Endpoints::new(base, bot),
            version,
            instance,
        })
    }

    /// The message URL again (for this version and instance).
    pub fn message_url(&self) -> String {
        self.endpoints
            .message(self.version, self.instance.as_deref())
    }
}

/// `url` with any `user:password@` of its authority replaced by `***@`.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let sep = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{sep}***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_endpoint() {
        let e = Endpoints::new("http://h:1/", "st-1");
        assert_eq!(
            e.message(Version::V1, None),
            "http://h:1/chatbot/hooks/st-1"
        );
        assert_eq!(
            e.message(Version::V2, Some("ivrInst-2")),
            "http://h:1/chatbot/v2/webhook/st-1/hookInstance/ivrInst-2"
        );
        assert_eq!(e.poll("ab"), "http://h:1/chatbot/v2/webhook/st-1/poll/ab");
        assert_eq!(
            e.upload_token(None),
            "http://h:1/api/attachments/st-1/ivr/token"
        );
        assert_eq!(
            e.upload_chunk(Some("i"), "t"),
            "http://h:1/api/attachments/st-1/i/token/t/chunk"
        );
        assert_eq!(
            e.upload_merge(None, "t"),
            "http://h:1/api/attachments/st-1/ivr/token/t"
        );
        assert_eq!(
            e.upload_file(None),
            "http://h:1/api/attachments/file/st-1/ivr"
        );
    }

    #[test]
    fn parses_webhook_urls() {
        let u = WebhookUrl::parse(
            "https://bots.example.com/chatbot/v2/webhook/st-9/hookInstance/ivrInst-3",
        )
        .unwrap();
        assert_eq!(u.version, Version::V2);
        assert_eq!(u.endpoints.base, "https://bots.example.com");
        assert_eq!(u.endpoints.bot_id, "st-9");
        assert_eq!(u.instance.as_deref(), Some("ivrInst-3"));
        let u = WebhookUrl::parse("http://127.0.0.1:8080/prefix/chatbot/hooks/st-9/").unwrap();
        assert_eq!(u.version, Version::V1);
        assert_eq!(u.endpoints.base, "http://127.0.0.1:8080/prefix");
        assert_eq!(
            u.message_url(),
            "http://127.0.0.1:8080/prefix/chatbot/hooks/st-9"
        );
        assert!(WebhookUrl::parse("ftp://x/chatbot/hooks/a").is_err());
        assert!(WebhookUrl::parse("http://x/other/a").is_err());
        assert!(WebhookUrl::parse("http://x/chatbot/hooks/a/b").is_err());
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_never_echoed() {
        let e = WebhookUrl::parse("http://ada:hunter2@127.0.0.1:7700/chatbot/v2/webhook/st-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials in a URL"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("ada"), "{e}");
        assert!(e.contains("http://***@127.0.0.1:7700/"), "{e}");
        let e = WebhookUrl::parse("ftp://u:pw@h/x").unwrap_err().to_string();
        assert!(!e.contains("pw"), "{e}");
        assert_eq!(redact_userinfo("http://h/p@x"), "http://h/p@x");
    }
}
