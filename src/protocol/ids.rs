//! Id shapes the platform uses (PROTOCOL.md section 1), generated and recognised.

use std::fmt::Write;

use rand::Rng;
use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};
use time::OffsetDateTime;
use uuid::Uuid;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_string(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// A new pollId: 32 lowercase hex characters.
pub fn poll_id() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// True when `s` has the shape of a pollId.
pub fn is_poll_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new trace id: `RTM-TRACE-` and nine upper-case letters or digits.
pub fn trace_id() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(19);
    s.push_str("RTM-TRACE-");
    for _ in 0..9 {
        s.push(ALNUM[rng.random_range(0..ALNUM.len())] as char);
    }
    s
}

/// A random (v4) uuid from the thread-local generator: `Uuid::new_v4` asks the OS for entropy
/// on every call, a system call per message id on the simulator's hot path.
pub fn uuid_v4() -> Uuid {
    uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid()
}

/// A new message id: `ms-<uuid>`.
pub fn message_id() -> String {
    let mut s = String::with_capacity(39);
    s.push_str("ms-");
    write!(s, "{}", uuid_v4()).ok();
    s
}

/// A stable id derived from a name, with a prefix: the same name always gives the same id, so
/// a bot definition without explicit ids still has stable task, form and field ids.
pub fn stable_id(prefix: &str, name: &str) -> String {
    format!(
        "{prefix}-{}",
        Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
    )
}

/// A new file id: 24 lowercase hex characters.
pub fn file_id() -> String {
    hex_string(&mut rand::rng(), 24)
}

/// A new upload token (a uuid).
pub fn file_token() -> String {
    uuid_v4().to_string()
}

const ISO_MS: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: std::num::NonZeroU8::new(3),
    })
    .encode();

/// `createdOn` as the platform writes it: ISO-8601 UTC with milliseconds,
/// `2022-05-11T06:27:06.764Z`.
pub fn created_on(t: OffsetDateTime) -> String {
    t.format(&Iso8601::<ISO_MS>)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// `createdOn` for now.
pub fn created_on_now() -> String {
    created_on(OffsetDateTime::now_utc())
}

/// A run's id: the UTC time and 8 random hex digits (`20261201-101500-3f9a0c21`), readable
/// and unique enough to tell runs apart.
pub fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:08x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rand::rng().random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let p = poll_id();
        assert!(is_poll_id(&p), "{p}");
        assert_ne!(poll_id(), p);
        let t = trace_id();
        assert_eq!(t.len(), 19);
        assert!(t[10..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert!(message_id().starts_with("ms-"));
        assert_eq!(message_id().len(), 39);
        assert_eq!(file_id().len(), 24);
        assert_eq!(
            stable_id("dg", "Show Balance"),
            stable_id("dg", "Show Balance")
        );
    }

    #[test]
    fn created_on_has_milliseconds_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_652_250_426_764_000_000).unwrap();
        assert_eq!(created_on(t), "2022-05-11T06:27:06.764Z");
    }
}
