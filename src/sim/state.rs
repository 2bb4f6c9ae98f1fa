//! Everything the simulator keeps between requests.

use crate::common::short::ShortStr;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bot::{Bot, RateLimit};
use super::conversation::{Segment, Sessions};
use super::metrics::Metrics;
use crate::protocol::jwt::Lifetime;

/// Who may read or continue something the simulator keeps (a poll batch, an upload): the app
/// of the token that started it and the user identity that token carried. Another user's
/// valid token gets the documented error, never the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Index of the app in `bot.apps`.
    pub app: usize,
    /// The token's `userIdentity`, or the message's `from.id` for a poll batch.
    pub identity: Option<String>,
}

impl Owner {
    /// The owner a verified token stands for.
    pub fn of(token: &VerifiedToken) -> Owner {
        Owner {
            app: token.app,
            identity: token.identity.as_deref().map(str::to_string),
        }
    }

    /// True when `token` may act for this owner: same app, and the same user when either
    /// side names one.
    pub fn admits(&self, token: &VerifiedToken) -> bool {
        self.app == token.app && self.identity.as_deref() == token.identity.as_deref()
    }
}

/// A batch of messages waiting to be polled.
#[derive(Debug)]
pub struct PollEntry {
    /// Whose message started it.
    pub owner: Owner,
    /// Which instance answered (for its latency faults).
    pub instance: u16,
    /// `from.id`.
    pub user: String,
    /// Segments still to deliver, each with the instant its service node finishes.
    pub segments: VecDeque<(Instant, Segment)>,
    /// When the entry was made (for expiry).
    pub created: Instant,
}

/// An upload in progress.
#[derive(Debug)]
pub struct Upload {
    /// Who asked for the file token.
    pub owner: Owner,
    /// The instance's channel type.
    pub channel: String,
    /// Token expiry.
    pub expires: Instant,
    /// Sizes of the chunks received, by chunk number.
    pub chunks: HashMap<u32, u64>,
}

impl Upload {
    /// Bytes received so far.
    pub fn total(&self) -> u64 {
        self.chunks.values().sum()
    }
}

/// A merged file.
#[derive(Debug, Clone)]
pub struct FileMeta {
    /// Name given at merge.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was merged (files are dropped `session_idle` after).
    pub created: Instant,
}

/// A token whose signature was already verified: its app (index into `bot.apps`) and the
/// claims the simulator reads after that. Kept compact (one shared string at most): every new
/// user's token is cached until its shard fills.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// Index of the app in `bot.apps`.
    pub app: usize,
    /// `userIdentity` (inline when short: no heap block per cached token).
    pub identity: Option<ShortStr>,
    /// Re-checked on every use.
    pub lifetime: Lifetime,
}

const TOKEN_SHARDS: usize = 16;
const TOKEN_SHARD_CAP: usize = 8192;
/// The doorkeeper's bits: 2^20 (128 KiB, small enough to stay in a core's cache).
const DOOR_BITS: usize = 1 << 20;
/// Marks after which the doorkeeper starts over (1/8 of its bits: at most that share of
/// never-seen tokens pass it as seen).
const DOOR_RESET: usize = DOOR_BITS / 8;

/// The tokens seen once lately, as bits of their digests (the "doorkeeper" of TinyLFU): a
/// token enters the verified-token cache on its second use. A capacity test that gives every
/// conversation a new user sends most tokens once; caching those meant a miss and an insert in
/// a table of megabytes on every request, and a table of tokens never seen again.
#[derive(Debug)]
struct Doorkeeper {
    bits: Vec<AtomicU64>,
    marked: AtomicUsize,
}

impl Doorkeeper {
    fn new() -> Self {
        Self {
            bits: (0..DOOR_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            marked: AtomicUsize::new(0),
        }
    }

    /// Marks `key`; true when it was marked already (seen before since the last reset, or
    /// another token's mark: then it is cached on its first use, as before the doorkeeper).
    fn pass(&self, key: &TokenKey) -> bool {
        // Bits 32..52 of the digest: the shard uses the lowest, the map the highest 64.
        let bit = ((key.digest as u64) >> 32) as usize % DOOR_BITS;
        let (word, mask) = (&self.bits[bit / 64], 1u64 << (bit % 64));
        if word.load(Relaxed) & mask != 0 {
            return true;
        }
        word.fetch_or(mask, Relaxed);
        if self.marked.fetch_add(1, Relaxed) + 1 >= DOOR_RESET {
            // Racing markers may lose a mark: that token is verified once more, no worse.
            self.marked.store(0, Relaxed);
            for w in &self.bits {
                w.store(0, Relaxed);
            }
        }
        false
    }
}

/// Where a token's verification is kept: its keyed digest and the cache shard it falls in.
#[derive(Debug, Clone, Copy)]
pub struct TokenKey {
    digest: u128,
    shard: usize,
}

/// Verified tokens by digest. The digest is already uniformly random under a secret key, so
/// the map uses its high bits as the hash instead of hashing it again.
type TokenMap = hashbrown::HashMap<u128, VerifiedToken, std::hash::BuildHasherDefault<DigestHash>>;

/// A hasher for keys that are already keyed digests: it keeps 64 of their bits.
#[derive(Default)]
struct DigestHash(u64);

impl std::hash::Hasher for DigestHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v >> 64) as u64;
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

// Proactive notifications (`notify.rs` serves them): the jobs and the calls counted against
// the published limits, kept here with the rest of the simulator's state.

/// Calls a bot may make in a rolling minute.
pub const PER_MINUTE: usize = 600;
/// Calls a bot may make in a rolling hour.
pub const PER_HOUR: usize = 18_000;
/// Jobs kept for their status (the oldest go first).
pub const MAX_JOBS: usize = 10_000;

/// One identity's outcome.
#[derive(Debug, Clone)]
pub struct Log {
    pub email: String,
    pub status: &'static str,
    pub comments: &'static str,
}

/// A notification job.
#[derive(Debug)]
pub struct Job {
    pub owner: Owner,
    pub created: String,
    pub logs: Vec<Log>,
}

/// The notification API's state: jobs and the calls in the last hour.
#[derive(Debug, Default)]
pub struct Notifications {
    pub jobs: Mutex<(HashMap<String, Job>, VecDeque<String>)>,
    calls: Mutex<VecDeque<Instant>>,
}

impl Notifications {
    /// Counts a call; false when a rolling window is full (429).
    pub fn admit(&self, now: Instant) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
        {
            calls.pop_front();
        }
        let minute = calls
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < Duration::from_secs(60))
            .count();
        if minute >= PER_MINUTE || calls.len() >= PER_HOUR {
            return false;
        }
        calls.push_back(now);
        true
    }
}

/// Shared state of a running simulator.
#[derive(Debug)]
pub struct SimState {
    /// The bot served.
    pub bot: Bot,
    /// Conversations.
    pub sessions: Sessions,
    /// Poll batches by pollId.
    pub polls: Mutex<HashMap<String, PollEntry>>,
    /// Uploads by fileToken.
    pub uploads: Mutex<HashMap<String, Upload>>,
    /// Merged files by fileId.
    pub files: Mutex<HashMap<String, FileMeta>>,
    /// Seen `jti`s (per app) with their expiry (unix seconds).
    jtis: Mutex<HashMap<(String, String), f64>>,
    buckets: Mutex<HashMap<(u16, String), Bucket>>,
    /// Verified tokens by a 128-bit keyed digest of the token: a new user's token costs no
    /// copy of its text.
    tokens: Vec<Mutex<TokenMap>>,
    /// The digest's secret key, drawn at start from a cryptographic generator.
    token_secret: (u64, u64),
    /// Which tokens were seen once lately: only a second use enters the cache.
    doorkeeper: Doorkeeper,
    /// Counters.
    pub metrics: Metrics,
    /// Client for async deliveries.
    pub http: reqwest::Client,
    /// Sees every async delivery (certification mode).
    pub observer: Option<Arc<dyn super::observe::Observer>>,
    /// Proactive notification jobs and the calls that count against their limits.
    pub notifications: Notifications,
}

impl SimState {
    /// Fresh state for a bot.
    pub fn new(bot: Bot) -> Self {
        Self {
            sessions: Sessions::new(bot.instances.len()),
            bot,
            polls: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            jtis: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            tokens: (0..TOKEN_SHARDS)
                .map(|_| Mutex::new(TokenMap::default()))
                .collect(),
            token_secret: rand::random(),
            doorkeeper: Doorkeeper::new(),
            metrics: Metrics::default(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default(),
            observer: None,
            notifications: Default::default(),
        }
    }

    /// The token's cache key: a SipHash-1-3 digest of 128 bits under a key drawn at start, so
    /// forging a token that collides with a verified one means finding a 128-bit collision
    /// under a secret key. One pass over the token serves the lookup and the insert.
    pub fn token_key(&self, token: &str) -> TokenKey {
        use siphasher::sip128::{Hasher128, SipHasher13};
        use std::hash::Hasher;
        let mut h = SipHasher13::new_with_keys(self.token_secret.0, self.token_secret.1);
        h.write(token.as_bytes());
        let digest = h.finish128().as_u128();
        TokenKey {
            digest,
            shard: (digest as usize) % TOKEN_SHARDS,
        }
    }

    /// Marks a token as seen; true when it was seen lately, so it may be in the cache and
    /// belongs there once verified.
    pub fn token_seen(&self, key: &TokenKey) -> bool {
        self.doorkeeper.pass(key)
    }

    /// A token verified before. Signature checks dominate the cost of a request, and a user
    /// sends the same token many times; time-based claims are still checked on every use.
    pub fn cached_token(&self, key: &TokenKey) -> Option<VerifiedToken> {
        self.tokens[key.shard]
            .lock()
            .ok()?
            .get(&key.digest)
            .cloned()
    }

    /// Remembers a verified token (bounded: a full shard is emptied).
    pub fn cache_token(&self, key: &TokenKey, verified: VerifiedToken) {
        if let Ok(mut m) = self.tokens[key.shard].lock() {
            if m.len() >= TOKEN_SHARD_CAP {
                m.clear();
            }
            m.insert(key.digest, verified);
        }
    }

    /// Records a `jti`; false when it was already used (a replay).
    pub fn use_jti(&self, app: &str, jti: &str, expires: f64) -> bool {
        let mut m = self.jtis.lock().unwrap_or_else(|p| p.into_inner());
        m.insert((app.to_string(), jti.to_string()), expires)
            .is_none()
    }

    /// Takes one token from the app's bucket on the instance; false when empty (429).
    pub fn take_token(&self, instance: u16, app: &str, limit: RateLimit) -> bool {
        let now = Instant::now();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = m.entry((instance, app.to_string())).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * limit.per_second)
            .min(limit.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Number of poll batches waiting.
    pub fn pending_polls(&self) -> usize {
        self.polls.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Drops what has outlived its settings: idle sessions, unpolled batches, expired upload
    /// tokens and `jti`s. Run periodically so memory stays flat over long runs.
    pub fn sweep(&self, now: Instant, unix_now: f64) {
        let s = &self.bot.settings;
        self.sessions.expire(s.session_idle, now);
        if let Ok(mut p) = self.polls.lock() {
            p.retain(|_, e| {
                now.duration_since(e.created)
                    < s.poll_ttl
                        + e.segments
                            .back()
                            .map(|(t, _)| t.saturating_duration_since(e.created))
                            .unwrap_or_default()
            });
        }
        if let Ok(mut u) = self.uploads.lock() {
            u.retain(|_, up| up.expires > now);
        }
        if let Ok(mut f) = self.files.lock() {
            f.retain(|_, file| now.duration_since(file.created) < s.session_idle);
        }
        if let Ok(mut j) = self.jtis.lock() {
            j.retain(|_, exp| *exp + 120.0 > unix_now);
        }
        if let Ok(mut b) = self.buckets.lock() {
            b.retain(|_, bucket| now.duration_since(bucket.last) < Duration::from_secs(600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_files_are_swept_after_the_session_idle_time() {
        let state = SimState::new(Bot::demo());
        let now = Instant::now();
        state.files.lock().unwrap().insert(
            "f-1".into(),
            FileMeta {
                name: "scan.png".into(),
                size: 10,
                created: now,
            },
        );
        state.sweep(now + Duration::from_secs(60), 0.0);
        assert_eq!(state.files.lock().unwrap().len(), 1);
        state.sweep(now + state.bot.settings.session_idle, 0.0);
        assert!(state.files.lock().unwrap().is_empty());
    }

    fn verified() -> VerifiedToken {
        VerifiedToken {
            app: 0,
            identity: Some(ShortStr::from("u-1")),
            lifetime: Lifetime::default(),
        }
    }

    #[test]
    fn a_token_is_cached_from_its_second_use() {
        let state = SimState::new(Bot::demo());
        let key = state.token_key("a.b.c");
        assert!(!state.token_seen(&key), "first use: not seen");
        assert!(state.token_seen(&key), "second use: seen");
        assert!(state.token_seen(&key));
        let other = state.token_key("a.b.d");
        assert!(!state.token_seen(&other), "another token is not marked");
        state.cache_token(&key, verified());
        let hit = state.cached_token(&key).expect("cached");
        assert_eq!(hit.identity.as_deref(), Some("u-1"));
        assert!(state.cached_token(&other).is_none());
    }

    #[test]
    fn the_doorkeeper_starts_over_after_an_eighth_of_its_bits() {
        let door = Doorkeeper::new();
        let key = |i: u64| TokenKey {
            digest: u128::from(i) << 32,
            shard: 0,
        };
        assert!(!door.pass(&key(0)));
        for i in 1..DOOR_RESET as u64 - 1 {
            assert!(!door.pass(&key(i)), "distinct bits are not seen");
        }
        assert!(door.pass(&key(0)), "marks stay until the reset");
        // The last mark before the reset empties every bit.
        assert!(!door.pass(&key(DOOR_RESET as u64)));
        assert!(!door.pass(&key(0)), "marks are gone after the reset");
        assert!(
            door.bits
                .iter()
                .map(|w| w.load(Relaxed).count_ones())
                .sum::<u32>()
                == 1
        );
    }

    #[test]
    fn the_published_limits_apply_over_rolling_windows() {
        let n = Notifications::default();
        let t0 = Instant::now();
        for i in 0..PER_MINUTE {
            assert!(n.admit(t0 + Duration::from_millis(i as u64)), "call {i}");
        }
        assert!(
            !n.admit(t0 + Duration::from_secs(1)),
            "601st call in a minute"
        );
        // A minute later the window has moved on.
        assert!(n.admit(t0 + Duration::from_secs(61)));
        // 18,000 in an hour: thirty full minutes of 600.
        let n = Notifications::default();
        for m in 0..30u64 {
            for i in 0..PER_MINUTE as u64 {
                assert!(n.admit(t0 + Duration::from_secs(m * 61) + Duration::from_millis(i)));
            }
        }
        assert!(
            !n.admit(t0 + Duration::from_secs(30 * 61)),
            "over 18,000 in an hour"
        );
        assert!(n.admit(t0 + Duration::from_secs(3600 + 61)));
    }
}
