//! The catalogue of named conformance checks: one table, versioned. Every check names the
//! requirement it rests on (a section of the protocol reference, `docs/protocol.md`, or the
//! product page), and `gap` marks the ones where that behaviour is our inference rather than
//! documented. `docs/conformance.md` lists the same table (a test keeps them in step).

use serde::{Deserialize, Serialize};

/// The catalogue's version: bumped when a check is added, removed or changes its meaning.
pub const CATALOGUE_VERSION: &str = "1.0.0";

/// The revision of the protocol reference the checks are written against.
pub const PROTOCOL_REVISION: &str = "2026-11";

/// Which side of the channel a check grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The platform side: a channel, gateway or re-implementation answering clients.
    Channel,
    /// The client side: a connector, widget or middleware talking to the channel.
    Client,
}

impl Side {
    /// As written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Channel => "channel",
            Side::Client => "client",
        }
    }
}

/// A named set of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// V1, sync.
    #[serde(rename = "v1-sync")]
    V1Sync,
    /// V2, sync, polling on.
    #[serde(rename = "v2-poll")]
    V2Poll,
    /// V2, sync, polling off.
    #[serde(rename = "v2-nopoll")]
    V2NoPoll,
    /// V2, async (POST_URL).
    #[serde(rename = "v2-async")]
    V2Async,
    /// The file upload API.
    #[serde(rename = "upload")]
    Upload,
    /// Tokens and the error envelope.
    #[serde(rename = "auth")]
    Auth,
    /// Every check of the side.
    #[serde(rename = "full")]
    Full,
}

impl Profile {
    /// Every profile, in the order documents list them.
    pub const ALL: [Profile; 7] = [
        Profile::V1Sync,
        Profile::V2Poll,
        Profile::V2NoPoll,
        Profile::V2Async,
        Profile::Upload,
        Profile::Auth,
        Profile::Full,
    ];

    /// As written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::V1Sync => "v1-sync",
            Profile::V2Poll => "v2-poll",
            Profile::V2NoPoll => "v2-nopoll",
            Profile::V2Async => "v2-async",
            Profile::Upload => "upload",
            Profile::Auth => "auth",
            Profile::Full => "full",
        }
    }

    /// From the command line.
    pub fn parse(text: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// Whether a failure fails the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A failure fails the certificate.
    Required,
    /// A failure is a warning.
    Recommended,
    /// What the platform side cannot observe (did the client show a duplicate twice?): a
    /// person judges it from the attached evidence; it neither passes nor fails the
    /// certificate.
    Review,
}

/// One check of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id: side, area, number (`CH-V2-POLL-03`).
    pub id: &'static str,
    /// A line.
    pub title: &'static str,
    /// What passing it proves.
    pub proves: &'static str,
    /// The requirement: a section of the protocol reference or a quote of the product page.
    pub requirement: &'static str,
    /// True when the behaviour is our inference, not documented.
    pub gap: bool,
    /// Which side it grades.
    pub side: Side,
    /// The profiles it belongs to (besides `full`).
    pub profiles: &'static [Profile],
    /// Required or recommended.
    pub level: Level,
}

impl Check {
    /// True when the check belongs to `profile` (every check of a side is in `full`).
    pub fn in_profile(&self, profile: Profile) -> bool {
        profile == Profile::Full || self.profiles.contains(&profile)
    }
}

use Level::{Recommended, Required, Review};
use Profile::{Auth, Upload, V1Sync, V2Async, V2NoPoll, V2Poll};
use Side::{Channel, Client};

const V2_SYNC: &[Profile] = &[V2Poll, V2NoPoll];
/// Every client profile with a plan.
const ANY_CLIENT: &[Profile] = &[V1Sync, V2Poll, V2NoPoll, V2Async, Auth, Upload];
/// Client profiles that speak V2.
const V2_CLIENT: &[Profile] = &[V2Poll, V2NoPoll, V2Async, Auth, Upload];

macro_rules! check {
    ($id:literal, $side:expr, $profiles:expr, $level:expr, $gap:literal, $title:literal, $proves:literal, $req:literal) => {
        Check {
            id: $id,
            title: $title,
            proves: $proves,
            requirement: $req,
            gap: $gap,
            side: $side,
            profiles: $profiles,
            level: $level,
        }
    };
}

/// Every check, channel side first, each side in id order.
pub const CHECKS: &[Check] = &[
    // V1
    check!("CH-V1-01", Channel, &[V1Sync], Required, false,
        "V1 text turn is answered with `text`",
        "A V1 message gets 200 and a `text` that is a string, an object or an array of them.",
        "§3 V1: sync response, `text` is a string, an object, or an array of strings or objects"),
    check!("CH-V1-02", Channel, &[V1Sync], Required, false,
        "V1 task fields at a task end",
        "A turn that ends a task carries endOfTask, endReason (Fulfilled, Interrupted, Cancelled), completedTaskId (dg-…) and completedTaskName.",
        "§3 V1: task fields come with the answer when a task ended"),
    check!("CH-V1-03", Channel, &[V1Sync], Required, false,
        "V1 minimal body accepted",
        "`{\"message\":{\"text\":…},\"from\":{\"id\":…}}` with nothing else is a valid request.",
        "§3 V1: required fields are message.text and from.id"),
    check!("CH-V1-04", Channel, &[V1Sync], Required, true,
        "V1 missing text is 400 in the error envelope",
        "A V1 body without message.text gets 400 with errors[0].msg `Invalid Request Payload`.",
        "§5 Errors: 400 Invalid Request Payload; the V1 envelope has no _v/_t (§2, gap)"),
    check!("CH-V1-05", Channel, &[V1Sync], Required, false,
        "V1 `session.new` starts a new conversation",
        "A message with session.new true is not taken as the answer to a question of the previous conversation.",
        "§3 V1: `session.new` (true starts a new conversation)"),
    // V2, sync (both polling settings)
    check!("CH-V2-01", Channel, V2_SYNC, Required, false,
        "V2 answer shape",
        "200 with `_v: v2`, `to`, `from` and `data[]` items of type/val/createdOn (ISO-8601 UTC with milliseconds)/messageId (ms-…).",
        "§4 V2: sync response"),
    check!("CH-V2-02", Channel, V2_SYNC, Required, false,
        "V2 task fields at a task end",
        "A turn that ends a task carries endOfTask true, endReason, completedTaskId (dg-…) and completedTaskName.",
        "§4 V2: sync response with task fields"),
    check!("CH-V2-03", Channel, V2_SYNC, Required, false,
        "ON_CONNECT with `session.new` answers the welcome",
        "An ON_CONNECT event starting a session is answered with at least one message and no error.",
        "§4 V2: `event` ON_CONNECT (sent with session.new: true, returns the welcome)"),
    check!("CH-V2-04", Channel, V2_SYNC, Required, false,
        "SESSION_CLOSURE of a live session",
        "Closing a session that exists answers an event item SESSION_CLOSURE_SUCCESS.",
        "§4 V2: SESSION_CLOSURE answers with an event item"),
    check!("CH-V2-05", Channel, V2_SYNC, Required, false,
        "SESSION_CLOSURE without a session",
        "Closing a session that does not exist answers SESSION_CLOSURE_IGNORED, not an error.",
        "§4 V2: SESSION_CLOSURE_IGNORED / \"Active session doesn't exist\""),
    check!("CH-V2-06", Channel, V2_SYNC, Required, false,
        "Template messages",
        "A rich message arrives as a data item whose val is a template object (or its JSON text).",
        "§4 V2: data[].val is a string or an object (templates)"),
    check!("CH-V2-07", Channel, V2_SYNC, Required, false,
        "Forms and formData",
        "A form step is answered with the form; a formData submission with its formId continues the dialog.",
        "§4 V2: `formData` message type; §3 digital forms"),
    check!("CH-V2-08", Channel, V2_SYNC, Required, false,
        "Invalid V2 payload is 400 in the V2 envelope",
        "A body with a bad event value gets 400 `Invalid Request Payload` with `_v: v2` and an RTM-TRACE id in `_t`.",
        "§5 Errors: 400 Invalid Request Payload; V2 envelope"),
    check!("CH-V2-09", Channel, V2_SYNC, Required, false,
        "Attachments need a text",
        "A text message with attachments and an empty val gets 400.",
        "§4 V2: `val` required non-empty when `attachments` is set"),
    check!("CH-V2-10", Channel, V2_SYNC, Recommended, true,
        "Messages of a turn in order",
        "The createdOn stamps of one answer's messages never go back in time.",
        "§4 V2: createdOn per message; order is inferred"),
    // V2 polling
    check!("CH-V2-POLL-01", Channel, &[V2Poll], Required, false,
        "A slow answer carries a pollId",
        "When a service node runs, the answer carries the messages so far and a pollId of 32 lowercase hex.",
        "§4.1 Polling: the response carries the messages produced so far and a pollId"),
    check!("CH-V2-POLL-02", Channel, &[V2Poll], Required, false,
        "Inprogress while the node runs",
        "Polling before the node finishes answers exactly {\"status\":\"Inprogress\",\"pollId\":<same>,\"_v\":\"v2\"}.",
        "§4.1 Polling: `{\"status\":\"Inprogress\",\"pollId\":\"<same>\",\"_v\":\"v2\"}` (that exact casing)"),
    check!("CH-V2-POLL-03", Channel, &[V2Poll], Required, false,
        "The final poll answer",
        "When done, the poll answers a regular body: data present, no status, the task fields at the task end.",
        "§4.1 Polling: done means `data` present, `status` absent"),
    check!("CH-V2-POLL-04", Channel, &[V2Poll], Required, false,
        "Single delivery",
        "Polling a pollId whose messages were delivered answers 400 `No data found`.",
        "§4.1 Polling: each batch is delivered once"),
    check!("CH-V2-POLL-05", Channel, &[V2Poll], Required, false,
        "Unknown pollId",
        "Polling a pollId never issued answers 400 `No data found`.",
        "§5 Errors: 400 No data found: poll of a delivered or unknown pollId"),
    check!("CH-V2-POLL-06", Channel, &[V2Poll], Required, false,
        "Chained pollIds",
        "A flow with two service nodes answers its first poll with messages and a new pollId, and the second poll finishes it.",
        "§4.1 Polling: a regular response carries a new pollId if more service nodes follow"),
    check!("CH-V2-POLL-07", Channel, &[V2Poll], Required, true,
        "Poll ownership",
        "Another user's token polling a pollId gets an error and never the messages.",
        "§9 Poll ownership [gap, by reason]"),
    // V2 polling off
    check!("CH-V2-NOPOLL-01", Channel, &[V2NoPoll], Required, false,
        "Polling off: one answer",
        "With polling off, a flow with a service node is answered whole in one response, without a pollId.",
        "§4.1 Polling: polling off, the whole flow is answered in one response"),
    check!("CH-V2-NOPOLL-02", Channel, &[V2NoPoll], Required, false,
        "The 15-second budget",
        "A sync flow that outlasts 15 s is answered 504 `The request has been timed-out` in the V2 envelope, at about 15 s.",
        "§7 The 15-second rule; §5 Errors: 504"),
    // V2 async
    check!("CH-V2-ASYNC-01", Channel, &[V2Async], Required, false,
        "The async acknowledgement",
        "An async request is answered 200 `{\"status\":\"ok\",\"_v\":\"v2\",\"traceId\":\"RTM-TRACE-…\"}`.",
        "§4.2 Async: the request is answered 200 with status ok"),
    check!("CH-V2-ASYNC-02", Channel, &[V2Async], Recommended, true,
        "The acknowledgement comes at once",
        "The acknowledgement arrives within 1 s, before the bot's work is done.",
        "§4.2 Async: answered at once (no bound is published)"),
    check!("CH-V2-ASYNC-03", Channel, &[V2Async], Required, false,
        "Deliveries to POST_URL",
        "Every bot message is POSTed to POST_URL on its own in the V2 shape (data[] of one item, _v v2), in order.",
        "§4.2 Async: each bot message is POSTed on its own to POST_URL"),
    check!("CH-V2-ASYNC-04", Channel, &[V2Async], Required, false,
        "Task fields delivered on their own",
        "The task fields arrive as a separate POST after the turn's messages.",
        "§4.2 Async: the task fields as a separate POST"),
    check!("CH-V2-ASYNC-05", Channel, &[V2Async], Recommended, false,
        "endOfMessage marks the last message",
        "The last message of a turn carries endOfMessage.",
        "§9 Async markers: `endOfMessage` on the last message of a turn"),
    // Tokens and errors
    check!("CH-AUTH-01", Channel, &[Auth], Required, false,
        "No token is 401",
        "A request without Authorization gets 401 `Invalid Access token` in the V2 envelope.",
        "§2 Authentication: failure body, HTTP 401"),
    check!("CH-AUTH-02", Channel, &[Auth], Required, false,
        "A wrongly signed token is 401",
        "A token signed with another secret gets 401.",
        "§2 Authentication: wrong signature"),
    check!("CH-AUTH-03", Channel, &[Auth], Required, false,
        "`alg: none` is 401",
        "An unsigned token (`alg: none`) gets 401.",
        "§2 Authentication: anything else, `none` included, is rejected"),
    check!("CH-AUTH-04", Channel, &[Auth], Required, false,
        "An expired token is 401",
        "A token whose exp has passed gets 401.",
        "§5 Errors: 401 when expired"),
    check!("CH-AUTH-05", Channel, &[Auth], Required, false,
        "Identity mismatch is 401",
        "A token whose userIdentity differs from from.id gets 401.",
        "§2 Authentication: identity rule (V2)"),
    check!("CH-AUTH-06", Channel, &[Auth], Required, false,
        "`iss` may carry the client id",
        "A token with the client id in `iss` instead of `appId` is accepted.",
        "§2 Authentication: `iss` carrying the client id instead of `appId` [sdk, 3p]"),
    check!("CH-AUTH-07", Channel, &[Auth], Required, false,
        "HS512 tokens",
        "A token signed with HS512 is accepted.",
        "§2 Authentication: HS256, HS512"),
    check!("CH-AUTH-08", Channel, &[Auth], Required, false,
        "The scheme is case-insensitive",
        "Both `bearer` and `Bearer` are accepted.",
        "§2 Authentication: clients send both `bearer` and `Bearer`"),
    check!("CH-AUTH-09", Channel, &[Auth], Recommended, false,
        "RS256 tokens of a key-pair app",
        "A token signed with an app's RSA private key (RS256) is accepted (needs a key-pair app).",
        "§2 Authentication: RS256, RS512 (the customer's private key, checked with the registered public key)"),
    check!("CH-ERR-01", Channel, &[Auth], Required, true,
        "Unknown bot is 404 in the envelope",
        "A message to a bot id that does not exist gets 404 in the V2 envelope.",
        "§5 Errors: unknown bot [gap]: 404 in the same envelope"),
    check!("CH-ERR-02", Channel, &[Auth], Required, true,
        "An oversized body is 413 in the envelope",
        "A body over the limit gets 413 in the V2 envelope, not a bare status.",
        "§5/§6: no limit published [gap]; the envelope is the channel's"),
    check!("CH-ERR-03", Channel, &[Auth], Recommended, false,
        "Rate limiting is 429 in the envelope",
        "Requests beyond an instance's rate limit get 429 `Too Many requests` in the V2 envelope (needs a rate-limited instance).",
        "§5 Errors: 429 Too Many requests (rate limit; no public numbers)"),
    check!("CH-CORS-01", Channel, &[Auth, V2Poll], Recommended, false,
        "CORS pre-flight for browser clients",
        "An OPTIONS pre-flight for POST with authorization and content-type is allowed, listing the headers (a `*` does not cover Authorization).",
        "§8 What the browser SDK really does: the allowed headers must be listed"),
    // Upload
    check!("CH-UP-01", Channel, &[Upload], Required, false,
        "Upload token",
        "POST …/token with an empty body answers a fileToken and expiresOn.",
        "§6 File upload: 1. Token"),
    check!("CH-UP-02", Channel, &[Upload], Required, false,
        "Chunks and merge",
        "Chunks numbered from 0 are each acknowledged with their chunkNo, and the merge answers a fileId of 24 hex.",
        "§6 File upload: 2. Chunks, 3. Merge"),
    check!("CH-UP-03", Channel, &[Upload], Required, false,
        "A message with the uploaded file",
        "A V2 text message whose attachments name the fileId is answered normally.",
        "§6 File upload: 4. the file is referenced from a V2 text message"),
    check!("CH-UP-04", Channel, &[Upload], Required, true,
        "An oversized chunk is refused",
        "A chunk over the per-chunk limit gets 413 in the envelope.",
        "§6 File upload: no server limit is published [gap]"),
    // ---- client side: judged from what the client sends to the simulator ----
    check!("CL-PLAN-01", Client, ANY_CLIENT, Required, false,
        "The plan is followed",
        "Every required step of the printed plan arrives, in order, from one user; optional steps (ON_CONNECT) may be skipped.",
        "§4 V2 / §3 V1: an ordinary conversation (the plan's steps are user messages and events)"),
    check!("CL-AUTH-01", Client, ANY_CLIENT, Required, false,
        "Allowed algorithms only",
        "Every token is signed with HS256, HS512, RS256 or RS512; never `alg: none`.",
        "§2 Authentication: HS256, HS512, RS256, RS512; anything else, `none` included, is rejected"),
    check!("CL-AUTH-02", Client, ANY_CLIENT, Required, false,
        "The app is named",
        "Every token carries the client id in `appId` (or `iss`).",
        "§2 Authentication: `{\"appId\": \"<client id>\", …}`; `iss` in use by real clients"),
    check!("CL-AUTH-03", Client, V2_CLIENT, Required, false,
        "The token names the user who speaks",
        "`sub` and `userIdentity`, when present, equal the message's `from.id`.",
        "§2 Authentication: identity rule (V2)"),
    check!("CL-AUTH-04", Client, ANY_CLIENT, Recommended, true,
        "A sane token lifetime",
        "Tokens carry `exp`, at most 24 hours after `iat`.",
        "§2 Authentication: `exp` in use by real clients; no lifetime is published"),
    check!("CL-AUTH-05", Client, ANY_CLIENT, Required, false,
        "No token after its expiry",
        "No request carries a token whose `exp` has passed (5 s leeway).",
        "§5 Errors: 401 when expired"),
    check!("CL-AUTH-06", Client, ANY_CLIENT, Required, false,
        "The bearer scheme",
        "Every channel request carries `Authorization: bearer <token>` (the scheme in any case).",
        "§2 Authentication: header `Authorization: bearer <JWT>`"),
    check!("CL-AUTH-07", Client, &[Auth], Required, false,
        "A refused token is replaced once",
        "After a 401 for an expired token, the client sends the step again with a new token, and does not loop (at most three tries).",
        "§5 Errors: 401 Invalid Access token when expired"),
    check!("CL-BODY-01", Client, &[V1Sync], Required, false,
        "Valid V1 bodies",
        "Every V1 message has a string `message.text` and a `from.id`.",
        "§3 V1: required fields are message.text and from.id"),
    check!("CL-BODY-02", Client, V2_CLIENT, Required, false,
        "Valid V2 bodies",
        "Every V2 message decodes: `message.type` text, template, event or formData with a fitting `val`, and `from.id`.",
        "§4 V2: the request"),
    check!("CL-BODY-03", Client, ANY_CLIENT, Required, false,
        "One user per conversation",
        "Every step of the plan comes from the same `from.id`.",
        "§4 V2: `from.id` identifies the user; sessions are per user"),
    check!("CL-BODY-04", Client, ANY_CLIENT, Required, false,
        "JSON content type",
        "Message POSTs say `Content-Type: application/json`.",
        "§3, §4: JSON request bodies"),
    check!("CL-POLL-01", Client, &[V2Poll], Required, false,
        "One poll in flight",
        "A conversation never has two polls outstanding at once.",
        "§8: one request at a time per chat (the SDKs)"),
    check!("CL-POLL-02", Client, &[V2Poll], Required, true,
        "No hammering",
        "At most 20 polls in any one-second window per conversation (the SDKs poll 1 s apart, every 2 or 5 s, or right after each answer).",
        "§4.1 Polling: client poll intervals in the wild; no bound is published"),
    check!("CL-POLL-03", Client, &[V2Poll], Required, false,
        "A consumed pollId is not polled again",
        "No poll of a pollId whose batch was delivered or that answered `No data found`.",
        "§4.1 Polling: each batch is delivered once"),
    check!("CL-POLL-04", Client, &[V2Poll], Required, false,
        "Chained pollIds are followed",
        "When a poll answer carries a new pollId, the client polls that one.",
        "§4.1 Polling: a regular response carries a new pollId if more service nodes follow"),
    check!("CL-POLL-05", Client, &[V2Poll], Required, false,
        "Inprogress is waited out",
        "After `Inprogress`, the client polls again until the batch is delivered.",
        "§4.1 Polling: `{\"status\":\"Inprogress\",…}` while the nodes run"),
    check!("CL-POLL-06", Client, &[V2Poll], Required, false,
        "Only issued pollIds",
        "Every polled pollId was issued by the channel.",
        "§4.1 Polling: the client polls `GET …/poll/{pollId}`"),
    check!("CL-POLL-07", Client, &[V2Poll], Recommended, true,
        "Prompt polling",
        "The first poll of every pollId comes within 5 s of the answer that issued it.",
        "§4.1 Polling: SDK intervals of 1 to 5 s"),
    check!("CL-POLL-08", Client, &[V2Poll], Recommended, true,
        "A pollId that never completes is given up",
        "The client stops polling a pollId that keeps answering `Inprogress` within 20 s of it.",
        "§7 The 15-second rule; §4.1 Polling: no give-up window is published"),
    check!("CL-ERR-01", Client, &[Auth], Recommended, true,
        "429 is retried with a pause",
        "After a 429, the step is sent again no sooner than 200 ms later, at most three tries in all.",
        "§5 Errors: 429 Too Many requests; no retry policy is published"),
    check!("CL-ERR-02", Client, &[Auth], Recommended, true,
        "5xx is retried with a pause",
        "After a 503, the step is sent again no sooner than 200 ms later, at most three tries in all.",
        "§5 Errors; no retry policy is published"),
    check!("CL-ERR-03", Client, &[Auth], Recommended, true,
        "504 is retried with a pause",
        "After a 504, the step is sent again no sooner than 200 ms later, at most three tries in all.",
        "§5 Errors: 504 The request has been timed-out; §7 the 15-second rule"),
    check!("CL-UP-01", Client, &[Upload], Required, true,
        "Chunks within the limit",
        "Every chunk is at most 2 MiB (the SDKs send 256 KiB to 1 MiB).",
        "§6 File upload: chunk sizes are the client's choice; no server limit is published"),
    check!("CL-UP-02", Client, &[Upload], Required, false,
        "Chunks numbered in order",
        "A file's chunks carry chunkNo 0, 1, 2, … in order, each with the file token of its URL.",
        "§6 File upload: 2. Chunks, chunkNo (0-based), fileToken"),
    check!("CL-UP-03", Client, &[Upload], Required, false,
        "Merge after the last chunk",
        "The merge comes after the file's last chunk and states totalChunks equal to the chunks sent.",
        "§6 File upload: 3. Merge, totalChunks"),
    check!("CL-UP-04", Client, &[Upload], Required, false,
        "The message names the uploaded file",
        "The message after the upload has a non-empty text and attachments naming the fileId the merge answered.",
        "§6 File upload: 4. the file is referenced from a V2 text message with a non-empty val"),
    check!("CL-ASYNC-01", Client, &[V2Async], Required, true,
        "The receiver answers fast",
        "POST_URL answers every delivery 2xx within 2 s.",
        "§4.2 Async: how the platform treats a slow or failing POST_URL is a gap"),
    check!("CL-ASYNC-02", Client, &[V2Async], Required, false,
        "Duplicates are accepted",
        "A message delivered twice is answered 2xx both times.",
        "§4.2 Async: receivers must tolerate duplicates and reordering"),
    check!("CL-ASYNC-03", Client, &[V2Async], Recommended, false,
        "The conversation goes on",
        "After duplicated and reordered deliveries, the client sends the plan's next steps.",
        "§4.2 Async: receivers must tolerate duplicates and reordering"),
    check!("CL-ASYNC-04", Client, &[V2Async], Review, false,
        "A duplicated message is shown once",
        "The user sees each message once although it was delivered twice (REVIEW: the deliveries are attached; only the client's user interface can show it).",
        "§4.2 Async: receivers must tolerate duplicates and reordering"),
];

/// The checks of one side and profile, in catalogue order.
pub fn select(side: Side, profile: Profile) -> impl Iterator<Item = &'static Check> {
    CHECKS
        .iter()
        .filter(move |c| c.side == side && c.in_profile(profile))
}

/// A check by id.
pub fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The catalogue as the Markdown tables of `docs/conformance.md` (one per side):
/// `hookbench certify list --markdown` prints it, and a test keeps the document equal to it.
pub fn markdown() -> String {
    let mut out = String::new();
    for side in [Side::Channel, Side::Client] {
        let checks: Vec<&Check> = CHECKS.iter().filter(|c| c.side == side).collect();
        if checks.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "### {} checks ({})\n\n",
            side.as_str(),
            checks.len()
        ));
        out.push_str("| id | level | profiles | check | what it proves | requirement |\n|---|---|---|---|---|---|\n");
        for c in checks {
            let profiles: Vec<&str> = c.profiles.iter().map(|p| p.as_str()).collect();
            let level = match c.level {
                Level::Required => "required",
                Level::Recommended => "recommended",
                Level::Review => "review",
            };
            let cell = |t: &str| t.replace('|', "\\|");
            out.push_str(&format!(
                "| {} | {level} | {} | {} | {} | {}{} |\n",
                c.id,
                profiles.join(", "),
                cell(c.title),
                cell(c.proves),
                cell(c.requirement),
                if c.gap { " **[gap]**" } else { "" }
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.id), "{} twice", c.id);
            let prefix = match c.side {
                Side::Channel => "CH-",
                Side::Client => "CL-",
            };
            assert!(c.id.starts_with(prefix), "{}", c.id);
            let number = c.id.rsplit('-').next().unwrap();
            assert!(
                number.len() == 2 && number.chars().all(|d| d.is_ascii_digit()),
                "{}",
                c.id
            );
            assert!(!c.profiles.is_empty(), "{} has no profile", c.id);
            assert!(
                !c.profiles.contains(&Profile::Full),
                "{}: full is implied",
                c.id
            );
        }
    }

    #[test]
    fn docs_conformance_md_lists_the_catalogue() {
        let doc = include_str!("../../docs/conformance.md");
        let begin = doc
            .find("<!-- catalogue:begin -->\n")
            .expect("begin marker");
        let end = doc.find("<!-- catalogue:end -->").expect("end marker");
        let listed = &doc[begin + "<!-- catalogue:begin -->\n".len()..end];
        assert!(
            listed == markdown(),
            "docs/conformance.md is out of date: run `hookbench certify list --markdown` and paste it between the markers"
        );
    }

    #[test]
    fn profiles_round_trip() {
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
        assert_eq!(Profile::parse("v3"), None);
    }
}
