//! The dialog engine: sessions per (bot, instance, user) and what the bot answers to each user
//! input, as a [`Turn`] of timed segments. No I/O and no clock waits here: the server decides
//! how a turn is delivered (one response, a poll chain, or async POSTs).

use crate::common::short::ShortStr;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use super::bot::{Bot, Dialog, EndReason, Form, Say, Step};
use crate::protocol::v2::{Event, Input};
use crate::protocol::TaskEnd;

/// One bot output.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Text.
    Text(String),
    /// A template object.
    Template(Value),
    /// A digital form (sent with its prompt as a separate text).
    Form(Arc<Form>),
    /// A SESSION_CLOSURE answer.
    Event {
        /// `SESSION_CLOSURE_SUCCESS` or `SESSION_CLOSURE_IGNORED`.
        event_type: &'static str,
        /// The sentence that goes with it.
        description: &'static str,
    },
}

/// Messages released together, after a service node of `delay` (zero for the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    /// How long the service node before this segment runs.
    pub delay: Duration,
    /// What the bot says.
    pub messages: Vec<Out>,
    /// Set on the segment where a task ends.
    pub task_end: Option<TaskEnd>,
}

/// The bot's whole answer to one user input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    /// At least one; only the first has a zero delay.
    pub segments: Vec<Segment>,
}

impl Turn {
    /// Sum of the service delays.
    pub fn total_delay(&self) -> Duration {
        self.segments.iter().map(|s| s.delay).sum()
    }

    fn current(&mut self) -> &mut Segment {
        if self.segments.is_empty() {
            self.segments.push(Segment::default());
        }
        self.segments.last_mut().expect("just ensured")
    }

    fn say(&mut self, out: Out) {
        self.current().messages.push(out);
    }
}

#[derive(Debug, Clone, Default)]
enum Pending {
    #[default]
    None,
    Ask {
        dialog: usize,
        next: usize,
        slot: String,
    },
    Form {
        dialog: usize,
        next: usize,
        form: Arc<Form>,
    },
}

/// A session: when it was last used and, once the bot has something to remember, its memory.
/// Kept small (24 bytes, 56 with its key): a new user's session is one entry written to a
/// growing table, and each cache line it spans is a miss.
#[derive(Debug)]
struct SessionState {
    last_seen: Instant,
    memory: Option<Box<Memory>>,
}

/// What a session remembers: slots filled and a question or form waiting for its answer.
#[derive(Debug, Default)]
struct Memory {
    slots: HashMap<String, String>,
    pending: Pending,
}

/// The slots of a session that has none.
static NO_SLOTS: std::sync::LazyLock<HashMap<String, String>> =
    std::sync::LazyLock::new(HashMap::new);

impl SessionState {
    fn new(now: Instant) -> Self {
        Self {
            last_seen: now,
            memory: None,
        }
    }

    fn slots(&self) -> &HashMap<String, String> {
        self.memory.as_ref().map_or(&NO_SLOTS, |m| &m.slots)
    }

    fn memory(&mut self) -> &mut Memory {
        self.memory.get_or_insert_with(Box::default)
    }

    fn take_pending(&mut self) -> Pending {
        self.memory
            .as_mut()
            .map(|m| std::mem::take(&mut m.pending))
            .unwrap_or(Pending::None)
    }
}

/// What the engine needs to know about the user besides the input.
#[derive(Debug, Clone, Default)]
pub struct UserContext<'a> {
    /// `from.id`.
    pub user_id: &'a str,
    /// `from.userInfo.firstName`.
    pub first_name: Option<&'a str>,
    /// `session.new`.
    pub new_session: bool,
    /// Names of attached files, for `{file_name}`.
    pub attachment_names: Vec<String>,
}

const SHARDS: usize = 64;

/// Sessions are keyed by `from.id` with foldhash, seeded per process: a new user's session
/// is hashed twice (shard, then map), and SipHash made that a visible share of a new user's
/// cost. The ids come from the channel's own clients; the simulator is a test target.
type Hasher = foldhash::fast::RandomState;

/// hashbrown for `entry_ref`: finding or making a session is one probe of the table, and the
/// key is copied only when the session is new, into the table itself when it is short.
type Shard = Mutex<hashbrown::HashMap<ShortStr, SessionState, Hasher>>;

/// All sessions of one bot: per channel instance, maps keyed by `from.id`, sharded so
/// concurrent users rarely share a lock (and looked up by `&str`, without allocating).
#[derive(Debug)]
pub struct Sessions {
    shards: Vec<Shard>,
    hasher: Hasher,
}

impl Sessions {
    /// Room for `instances` channel instances.
    pub fn new(instances: usize) -> Self {
        Self {
            shards: (0..SHARDS * instances.max(1))
                .map(|_| Mutex::new(hashbrown::HashMap::default()))
                .collect(),
            hasher: Hasher::default(),
        }
    }

    fn shard(&self, instance: u16, user: &str) -> &Shard {
        // The high bits pick the shard; the map inside uses its own seed.
        let h = self.hasher.hash_one(user) >> 32;
        let i = usize::from(instance) * SHARDS + (h as usize) % SHARDS;
        &self.shards[i % self.shards.len()]
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops sessions idle longer than `idle`; returns how many.
    pub fn expire(&self, idle: Duration, now: Instant) -> usize {
        let mut n = 0;
        for shard in &self.shards {
            if let Ok(mut m) = shard.lock() {
                let before = m.len();
                m.retain(|_, s| now.duration_since(s.last_seen) < idle);
                n += before - m.len();
            }
        }
        n
    }

    /// Runs one user input through the bot and returns its answer.
    pub fn converse(
        &self,
        bot: &Bot,
        instance: u16,
        ctx: &UserContext<'_>,
        input: &Input<'_>,
    ) -> Turn {
        let now = Instant::now();
        let mut shard = self
            .shard(instance, ctx.user_id)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut turn = Turn::default();
        if let Input::Event(Event::SessionClosure) = input {
            let existed = shard
                .remove(ctx.user_id)
                .is_some_and(|s| now.duration_since(s.last_seen) < bot.settings.session_idle);
            turn.say(if existed {
                Out::Event {
                    event_type: "SESSION_CLOSURE_SUCCESS",
                    description: "session closed successfully",
                }
            } else {
                Out::Event {
                    event_type: "SESSION_CLOSURE_IGNORED",
                    description: "Active session doesn't exist",
                }
            });
            return turn;
        }
        let session = match shard.entry_ref(ctx.user_id) {
            hashbrown::hash_map::EntryRef::Occupied(o) => o.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(v) => {
                v.insert_with_key(ShortStr::from(ctx.user_id), SessionState::new(now))
            }
        };
        if ctx.new_session
            || matches!(input, Input::Event(Event::OnConnect))
            || now.duration_since(session.last_seen) >= bot.settings.session_idle
        {
            *session = SessionState::new(now);
        }
        session.last_seen = now;
        if let Some(f) = ctx
            .first_name
            .filter(|f| session.slots().get("first_name").map(String::as_str) != Some(*f))
        {
            session
                .memory()
                .slots
                .insert("first_name".into(), f.to_string());
        }
        if let Some(first) = ctx.attachment_names.first() {
            let slots = &mut session.memory().slots;
            slots.insert("file_name".into(), first.clone());
            slots.insert("file_names".into(), ctx.attachment_names.join(", "));
        }
        let mut rng = rand::rng();
        let pending = session.take_pending();
        match (input, pending) {
            (Input::Event(Event::OnConnect), _) => {
                for s in &bot.welcome {
                    turn.say(render_say(s, &Slots::of(session.slots(), ctx.user_id)));
                }
            }
            (Input::Text { text, .. }, Pending::Ask { dialog, next, slot }) => {
                session.memory().slots.insert(slot, text.to_string());
                run(bot, dialog, next, ctx.user_id, session, &mut turn, &mut rng);
            }
            (Input::FormData(fd), Pending::Form { dialog, next, form })
                if fd.form_id == form.id =>
            {
                for entry in &fd.data {
                    if let Some(field) = form
                        .fields
                        .iter()
                        .find(|f| f.id == entry.component_id || f.key == entry.component_id)
                    {
                        let v = match &entry.input {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        session.memory().slots.insert(field.key.clone(), v);
                    }
                }
                run(bot, dialog, next, ctx.user_id, session, &mut turn, &mut rng);
            }
            (input, _) => {
                let (text, has_attachments) = match input {
                    Input::Text { text, attachments } => {
                        (text.to_string(), !attachments.is_empty())
                    }
                    Input::Template(v) => (postback_text(v), false),
                    _ => (String::new(), false),
                };
                let lower = text.to_lowercase();
                match bot
                    .dialogs
                    .iter()
                    .position(|d| d.matcher.matches(&lower, has_attachments))
                {
                    Some(d) => run(bot, d, 0, ctx.user_id, session, &mut turn, &mut rng),
                    None => {
                        for s in &bot.fallback {
                            turn.say(render_say(s, &Slots::of(session.slots(), ctx.user_id)));
                        }
                    }
                }
            }
        }
        if turn.segments.is_empty() {
            turn.segments.push(Segment::default());
        }
        turn
    }
}

/// The text a template postback stands for: its `payload` or `title`/`text`.
fn postback_text(v: &Value) -> String {
    ["payload", "text", "title", "value"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

fn run(
    bot: &Bot,
    dialog: usize,
    from: usize,
    user: &str,
    session: &mut SessionState,
    turn: &mut Turn,
    rng: &mut impl Rng,
) {
    let d: &Dialog = &bot.dialogs[dialog];
    for (i, step) in d.steps.iter().enumerate().skip(from) {
        match step {
            Step::Say(s) => turn.say(render_say(s, &Slots::of(session.slots(), user))),
            Step::Ask { prompt, slot } => {
                turn.say(Out::Text(render(prompt, &Slots::of(session.slots(), user))));
                session.memory().pending = Pending::Ask {
                    dialog,
                    next: i + 1,
                    slot: slot.clone(),
                };
                return;
            }
            Step::Form(form) => {
                turn.say(Out::Text(render(
                    &form.prompt,
                    &Slots::of(session.slots(), user),
                )));
                turn.say(Out::Form(form.clone()));
                session.memory().pending = Pending::Form {
                    dialog,
                    next: i + 1,
                    form: form.clone(),
                };
                return;
            }
            Step::Service {
                delay,
                fail_rate,
                on_failure,
            } => {
                turn.segments.push(Segment {
                    delay: delay.sample(rng),
                    ..Default::default()
                });
                if *fail_rate > 0.0 && rng.random_bool(*fail_rate) {
                    turn.say(Out::Text(render(
                        on_failure,
                        &Slots::of(session.slots(), user),
                    )));
                    turn.current().task_end = Some(d.task_end(EndReason::Interrupted));
                    return;
                }
            }
            Step::End(reason) => {
                turn.current().task_end = Some(d.task_end(*reason));
                return;
            }
        }
    }
}

fn render_say(s: &Say, slots: &Slots<'_>) -> Out {
    match s {
        Say::Text(t) => Out::Text(render(t, slots)),
        Say::Template(v) => Out::Template(render_value(v, slots)),
    }
}

fn render_value(v: &Value, slots: &Slots<'_>) -> Value {
    match v {
        Value::String(s) => Value::String(render(s, slots)),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, slots)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_value(x, slots)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A session's slots as the bot's texts read them: `{user_id}` is the user's id unless a
/// question filled a slot of that name (the id is not copied into every session).
#[derive(Debug, Clone, Copy)]
pub struct Slots<'a> {
    map: &'a HashMap<String, String>,
    user_id: &'a str,
}

impl<'a> Slots<'a> {
    /// The slots of a session of `user_id`.
    pub fn of(map: &'a HashMap<String, String>, user_id: &'a str) -> Self {
        Self { map, user_id }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        match self.map.get(name) {
            Some(v) => Some(v),
            None if name == "user_id" => Some(self.user_id),
            None => None,
        }
    }
}

/// Fills `{slot}` placeholders; unknown names stay as written.
pub fn render(text: &str, slots: &Slots<'_>) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_')
                    && close > 0 =>
            {
                let name = &after[..close];
                match slots.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::{FormData, FormInput};

    fn text(t: &str) -> Input<'_> {
        Input::Text {
            text: t,
            attachments: &[],
        }
    }

    fn texts(turn: &Turn) -> Vec<String> {
        turn.segments
            .iter()
            .flat_map(|s| s.messages.iter())
            .filter_map(|m| match m {
                Out::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn ctx(user: &str) -> UserContext<'_> {
        UserContext {
            user_id: user,
            ..Default::default()
        }
    }

    #[test]
    fn transfer_flow_captures_slots_and_has_a_service_node() {
        let bot = Bot::demo();
        let s = Sessions::new(3);
        let t = s.converse(&bot, 0, &ctx("u"), &text("I want to transfer"));
        assert_eq!(texts(&t), ["How much would you like to transfer?"]);
        s.converse(&bot, 0, &ctx("u"), &text("250"));
        let t = s.converse(&bot, 0, &ctx("u"), &text("savings"));
        assert_eq!(t.segments.len(), 2);
        assert_eq!(
            texts(&t),
            ["Processing your transfer…", "Transferred 250 to savings."]
        );
        let d = t.segments[1].delay;
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        let end = t.segments[1].task_end.as_ref().unwrap();
        assert_eq!(
            (end.reason.as_str(), end.task_name.as_str()),
            ("Fulfilled", "Transfer Funds")
        );
    }

    #[test]
    fn sessions_are_per_instance_and_user() {
        let bot = Bot::demo();
        let s = Sessions::new(3);
        s.converse(&bot, 0, &ctx("u"), &text("transfer"));
        let other = s.converse(&bot, 1, &ctx("u"), &text("100"));
        assert_eq!(texts(&other), ["Sorry, I didn't understand that."]);
        let again = s.converse(&bot, 0, &ctx("v"), &text("100"));
        assert_eq!(texts(&again), ["Sorry, I didn't understand that."]);
    }

    #[test]
    fn closure_success_then_ignored() {
        let bot = Bot::demo();
        let s = Sessions::new(3);
        s.converse(&bot, 0, &ctx("u"), &Input::Event(Event::OnConnect));
        let close = Input::Event(Event::SessionClosure);
        let first = s.converse(&bot, 0, &ctx("u"), &close);
        assert!(matches!(
            first.segments[0].messages[0],
            Out::Event {
                event_type: "SESSION_CLOSURE_SUCCESS",
                ..
            }
        ));
        let second = s.converse(&bot, 0, &ctx("u"), &close);
        assert!(matches!(
            second.segments[0].messages[0],
            Out::Event {
                event_type: "SESSION_CLOSURE_IGNORED",
                ..
            }
        ));
    }

    #[test]
    fn form_submission_by_component_id() {
        let bot = Bot::demo();
        let s = Sessions::new(3);
        let t = s.converse(&bot, 0, &ctx("u"), &text("form"));
        let form = t.segments[0]
            .messages
            .iter()
            .find_map(|m| match m {
                Out::Form(f) => Some(f.clone()),
                _ => None,
            })
            .unwrap();
        let fd = FormData {
            form_id: form.id.clone(),
            data: vec![FormInput {
                component_id: form.fields[0].id.clone(),
                input: "Ada".into(),
            }],
            meta: None,
        };
        let t = s.converse(&bot, 0, &ctx("u"), &Input::FormData(fd));
        assert_eq!(texts(&t), ["Thanks, Ada"]);
    }

    #[test]
    fn render_fills_known_slots_only() {
        let map = HashMap::from([("a".to_string(), "1".to_string())]);
        let slots = Slots::of(&map, "u-7");
        assert_eq!(render("x {a} {b} {", &slots), "x 1 {b} {");
        assert_eq!(render("{a}{a}", &slots), "11");
        assert_eq!(render("hi {user_id}", &slots), "hi u-7");
        // A question that filled a slot named user_id wins over the id.
        let asked = HashMap::from([("user_id".to_string(), "typed".to_string())]);
        assert_eq!(render("{user_id}", &Slots::of(&asked, "u-7")), "typed");
    }
}
