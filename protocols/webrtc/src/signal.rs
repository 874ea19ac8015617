//! The web client's signaling messages: JSON text frames over the
//! WebSocket at `/ws`, protocol version 1.
//!
//! # Framing
//!
//! Every frame is one JSON object with a version and a type:
//!
//! ```json
//! {"v":1,"type":"join","conference":"standup","display_name":"Ann","mic":true,"cam":false}
//! ```
//!
//! - `v` must be `1`. Another value is [`SignalError::Version`]: the
//!   server closes with 1008 and the client reloads.
//! - `type` picks the message; every other member belongs to it. Unknown
//!   members are refused (`deny_unknown_fields`), so a typo is an error
//!   that names the member, not a silently ignored option.
//! - A frame is at most [`MAX_MESSAGE_LEN`] bytes; each text member has
//!   its own limit (below). A refused frame closes the session with
//!   [`SignalError::close_code`] and touches nothing else.
//! - Participants are numbers (the conference's `ParticipantId`).
//!
//! # Client → server ([`ClientMessage`])
//!
//! | type | members | meaning |
//! |---|---|---|
//! | `hello` | `client`? (≤128) | first frame; answered by `welcome` |
//! | `login` | `user` (≤320), `password` (≤256) | log in with an account; `welcome` with `user`, or `error` `auth_failed` |
//! | `join` | `conference` (conference id), `display_name` (1–64), `pin`? (digits, ≤16), `mic`, `cam` | enter a conference; answered by `pin_required`, `lobby`, `joined` or `ended` |
//! | `pin` | `pin` (digits, 1–16) | answer to `pin_required` |
//! | `answer` | `sdp` (≤60 000) | the browser's answer to our `offer` |
//! | `offer` | `sdp` (≤60 000) | the browser offers (renegotiation); we `answer` |
//! | `ice_restart` | — | the browser lost its media path: a new `offer` with new ICE credentials follows (same DTLS, same relay endpoint) |
//! | `mute` | `media` (`audio`\|`video`), `muted` | own microphone or camera |
//! | `screen` | `sharing` | own screen share started or stopped (its track is in m-section `2`) |
//! | `moderate` | `target` (participant), `action` (`admit`\|`reject`\|`mute_audio`\|`mute_video`\|`remove`) | moderator action |
//! | `lock` | `locked` | moderator: lock or unlock the conference |
//! | `end` | — | moderator: end the conference for everyone |
//! | `chat` | `text` (1–2000) | a chat line to everyone; `error` `chat_disabled` when the conference has chat off |
//! | `leave` | — | leave the conference |
//!
//! # Server → client ([`ServerMessage`])
//!
//! | type | members | meaning |
//! |---|---|---|
//! | `welcome` | `server`, `user`? | session ready; `user` when authenticated (cookie or `login`) |
//! | `pin_required` | `attempts_left`, `wrong` | ask for the PIN; `wrong` after a bad one |
//! | `lobby` | `timeout` (s) | waiting for a moderator to admit |
//! | `joined` | `role` (`participant`\|`moderator`), `participant`, `chat` | in the conference; an `offer` follows; `chat`: the conference allows chat |
//! | `offer` | `sdp` | our offer (ICE-lite, DTLS passive side: see [`crate::sdp`]) |
//! | `answer` | `sdp` | our answer to the browser's `offer` |
//! | `participants` | `participants`: [{`id`, `display_name`, `role`, `audio_muted`, `video_muted`, `stream`?}] | the full list, after every change |
//! | `speaking` | `participant`? | active speaker (absent: nobody) |
//! | `lobby_queue` | `waiting`: [{`id`, `display_name`}] | moderators: who waits in the waiting room now, after every change |
//! | `notice` | `code`, `text` | something to show (muted by a moderator, locked, reconnecting, ...) |
//! | `chat` | `from`, `display_name`, `text` | a chat line |
//! | `error` | `code`, `message` | a request failed; the session goes on |
//! | `ended` | `reason` | the call is over (an `EndReason` code: `conference_ended`, `kicked`, ...) |
//!
//! # A join, on the wire
//!
//! ```text
//! C: {"v":1,"type":"hello","client":"confgate-web/1"}
//! S: {"v":1,"type":"welcome","server":"confgate/0.1.0"}
//! C: {"v":1,"type":"join","conference":"standup","display_name":"Guest","mic":true,"cam":true}
//! S: {"v":1,"type":"pin_required","attempts_left":3,"wrong":false}
//! C: {"v":1,"type":"pin","pin":"1234"}
//! S: {"v":1,"type":"joined","role":"participant","participant":7}
//! S: {"v":1,"type":"offer","sdp":"v=0\r\n..."}
//! C: {"v":1,"type":"answer","sdp":"v=0\r\n..."}
//! S: {"v":1,"type":"participants","participants":[...]}
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this crate speaks (`"v": 1`).
pub const VERSION: u64 = 1;
/// Largest frame accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Largest SDP, in bytes.
pub const MAX_SDP_LEN: usize = 60_000;
/// Longest chat line, in characters.
pub const MAX_CHAT_LEN: usize = 2000;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;
/// Longest PIN, in digits.
pub const MAX_PIN_LEN: usize = 16;
/// Longest login user (`user` or `user@server`), in bytes.
pub const MAX_LOGIN_USER_LEN: usize = 320;
/// Longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Longest `hello.client`, in bytes.
pub const MAX_CLIENT_LEN: usize = 128;
/// Longest code (`error.code`, `notice.code`, `ended.reason`), in bytes.
pub const MAX_CODE_LEN: usize = 64;
/// Longest human-readable text of `error` and `notice`, in characters.
pub const MAX_TEXT_LEN: usize = 500;
/// Most participants in one `participants` frame.
pub const MAX_PARTICIPANTS: usize = 1000;

/// A frame that is refused. The session is closed with [`SignalError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The frame is over [`MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JSON (with serde_json's line and column).
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// `v` missing or not 1.
    #[error("member `v`: protocol version {0} is not supported (expected 1)")]
    Version(String),
    /// `type` missing or not a string.
    #[error("member `type` is missing or not a string")]
    MissingType,
    /// `type` names no message of this direction.
    #[error("member `type`: unknown message type `{0}`")]
    UnknownType(String),
    /// A member is missing, unknown, of the wrong type or breaks its rule.
    #[error("member `{field}` of `{message}`: {reason}")]
    Field {
        /// The message type.
        message: &'static str,
        /// The member (a path like `participants[2].id` when nested).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl SignalError {
    /// The WebSocket close code for a session that sent this frame
    /// (RFC 6455 §7.4.1): 1009 for a frame too big, 1008 (policy
    /// violation) for the rest.
    pub fn close_code(&self) -> u16 {
        match self {
            SignalError::TooLarge { .. } => 1009,
            _ => 1008,
        }
    }

    fn field(message: &'static str, field: &str, reason: impl Into<String>) -> Self {
        SignalError::Field {
            message,
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A password: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

// ---------------------------------------------------------------- client → server

/// `hello`: the first frame of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The client's name and version, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// `login`: authenticate with an account (`user` or `user@server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The account's user or full id.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// `join`: enter a conference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The conference id.
    pub conference: String,
    /// The name shown to others.
    pub display_name: String,
    /// The PIN, when known up front (from the link's `pin=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Start with the microphone on.
    pub mic: bool,
    /// Start with the camera on.
    pub cam: bool,
}

/// `pin`: the PIN asked for by `pin_required`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    /// Digits only.
    pub pin: String,
}

/// `offer` or `answer`: a session description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sdp {
    /// The SDP text.
    pub sdp: String,
}

/// A message with no members (`ice_restart`, `end`, `leave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    /// The microphone.
    Audio,
    /// The camera.
    Video,
}

/// `mute`: own microphone or camera on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// Which.
    pub media: Media,
    /// Muted (`true`) or not.
    pub muted: bool,
}

/// What a moderator does to a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerateAction {
    /// Let in from the waiting room.
    Admit,
    /// Refuse from the waiting room.
    Reject,
    /// Mute the microphone.
    MuteAudio,
    /// Turn the camera off.
    MuteVideo,
    /// Remove from the conference.
    Remove,
}

/// `moderate`: a moderator action on another participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderate {
    /// The participant.
    pub target: u64,
    /// The action.
    pub action: ModerateAction,
}

/// `lock`: lock or unlock the conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Locked (`true`) or not.
    pub locked: bool,
}

/// `screen`: the browser started or stopped sharing its screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Screen {
    /// Sharing now (`true`) or not.
    pub sharing: bool,
}

/// `chat` from the client: a line to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSend {
    /// The text (1–2000 characters).
    pub text: String,
}

// ---------------------------------------------------------------- server → client

/// `welcome`: the session is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// The server's name and version.
    pub server: String,
    /// The authenticated account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `pin_required`: ask for the PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRequired {
    /// Tries left before the attempt ends.
    pub attempts_left: u32,
    /// The last PIN was wrong.
    pub wrong: bool,
}

/// `lobby`: waiting for a moderator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lobby {
    /// Seconds before the wait gives up.
    pub timeout: u32,
}

/// A participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary participant.
    Participant,
    /// A moderator (admit, mute, remove, lock, end).
    Moderator,
}

/// `joined`: in the conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joined {
    /// Our role.
    pub role: Role,
    /// Our participant id.
    pub participant: u64,
    /// The conference allows chat (absent: it does).
    #[serde(default = "yes")]
    pub chat: bool,
}

fn yes() -> bool {
    true
}

/// One participant waiting in the waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiting {
    /// The participant id (the `target` of `moderate` `admit` or `reject`).
    pub id: u64,
    /// The name it gave.
    pub display_name: String,
}

/// `lobby_queue`: who waits for a moderator (sent to moderators only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LobbyQueue {
    /// Everyone waiting, in order of arrival.
    pub waiting: Vec<Waiting>,
}

/// One entry of `participants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The participant id.
    pub id: u64,
    /// The name shown.
    pub display_name: String,
    /// The role.
    pub role: Role,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// The `msid` stream id of this participant's media in our SDP, so the
    /// page can put a name on a video tile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// `participants`: the whole list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participants {
    /// Everyone in the conference, including the receiver.
    pub participants: Vec<Participant>,
}

/// `speaking`: the active speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speaking {
    /// The participant, or nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<u64>,
}

/// `notice`: something to show, or `error`: a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// A stable snake_case code the page translates.
    pub code: String,
    /// English text for when it has no translation.
    pub text: String,
}

/// `error`: a request failed; the session goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorMessage {
    /// A stable snake_case code: `bad_message`, `auth_failed`,
    /// `forbidden`, `not_found`, `rate_limited`, `internal`, ...
    pub code: String,
    /// English text.
    pub message: String,
}

/// `chat` from the server: a line from someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatLine {
    /// Who wrote it.
    pub from: u64,
    /// Their name at the time.
    pub display_name: String,
    /// The text.
    pub text: String,
}

/// `ended`: the call is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    /// An `EndReason` code (`confgate_call::EndReason::code`).
    pub reason: String,
}

impl Ended {
    /// From the call model's reason.
    pub fn from_reason(reason: &call::EndReason) -> Self {
        Self {
            reason: reason.code().to_string(),
        }
    }
}

// ---------------------------------------------------------------- the two enums

/// Checks that a message's members keep their limits.
trait Validate {
    fn validate(&self, msg: &'static str) -> Result<(), SignalError>;
}

fn check_len(msg: &'static str, field: &str, s: &str, max_bytes: usize) -> Result<(), SignalError> {
    if s.len() > max_bytes {
        return Err(SignalError::field(msg, field, format!("longer than {max_bytes} bytes")));
    }
    Ok(())
}

/// 1..=max characters, no control characters (a newline allowed if `multiline`).
fn check_text(msg: &'static str, field: &str, s: &str, max_chars: usize, multiline: bool) -> Result<(), SignalError> {
    // Bytes first: no counting characters of a huge string.
    check_len(msg, field, s, max_chars * 4)?;
    if s.trim().is_empty() {
        return Err(SignalError::field(msg, field, "empty"));
    }
    if s.chars().count() > max_chars {
        return Err(SignalError::field(
            msg,
            field,
            format!("longer than {max_chars} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() && !(multiline && c == '\n')) {
        return Err(SignalError::field(msg, field, "control characters"));
    }
    Ok(())
}

fn check_code(msg: &'static str, field: &str, s: &str) -> Result<(), SignalError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_CODE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SignalError::field(
            msg,
            field,
            "not a snake_case code of at most 64 bytes",
        ))
    }
}

fn check_pin(msg: &'static str, field: &str, s: &str) -> Result<(), SignalError> {
    if s.is_empty() || s.len() > MAX_PIN_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignalError::field(msg, field, "not 1 to 16 digits"));
    }
    Ok(())
}

impl Validate for Hello {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        match &self.client {
            Some(c) => check_text(m, "client", c, MAX_CLIENT_LEN, false),
            None => Ok(()),
        }
    }
}

impl Validate for Login {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_len(m, "user", &self.user, MAX_LOGIN_USER_LEN)?;
        check_text(m, "user", &self.user, MAX_LOGIN_USER_LEN, false)?;
        check_len(m, "password", &self.password.0, MAX_PASSWORD_LEN)?;
        if self.password.0.is_empty() {
            return Err(SignalError::field(m, "password", "empty"));
        }
        Ok(())
    }
}

impl Validate for Join {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        call::validate_conference_id(&self.conference)
            .map_err(|e| SignalError::field(m, "conference", e.to_string()))?;
        check_text(m, "display_name", &self.display_name, MAX_DISPLAY_NAME_LEN, false)?;
        if let Some(p) = &self.pin {
            check_pin(m, "pin", p)?;
        }
        Ok(())
    }
}

impl Validate for PinEntry {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_pin(m, "pin", &self.pin)
    }
}

impl Validate for Sdp {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_len(m, "sdp", &self.sdp, MAX_SDP_LEN)?;
        if !self.sdp.starts_with("v=0") {
            return Err(SignalError::field(m, "sdp", "does not start with v=0"));
        }
        Ok(())
    }
}

impl Validate for ChatSend {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_text(m, "text", &self.text, MAX_CHAT_LEN, true)
    }
}

impl Validate for Welcome {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_text(m, "server", &self.server, MAX_CLIENT_LEN, false)?;
        match &self.user {
            Some(u) => check_text(m, "user", u, MAX_LOGIN_USER_LEN, false),
            None => Ok(()),
        }
    }
}

impl Validate for Participants {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        if self.participants.len() > MAX_PARTICIPANTS {
            return Err(SignalError::field(m, "participants", "more than 1000 entries"));
        }
        for (i, p) in self.participants.iter().enumerate() {
            check_text(
                m,
                &format!("participants[{i}].display_name"),
                &p.display_name,
                MAX_DISPLAY_NAME_LEN,
                false,
            )?;
            if let Some(s) = &p.stream {
                check_len(m, &format!("participants[{i}].stream"), s, 64)?;
            }
        }
        Ok(())
    }
}

impl Validate for LobbyQueue {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        if self.waiting.len() > MAX_PARTICIPANTS {
            return Err(SignalError::field(m, "waiting", "more than 1000 entries"));
        }
        for (i, w) in self.waiting.iter().enumerate() {
            check_text(
                m,
                &format!("waiting[{i}].display_name"),
                &w.display_name,
                MAX_DISPLAY_NAME_LEN,
                false,
            )?;
        }
        Ok(())
    }
}

impl Validate for Notice {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_code(m, "code", &self.code)?;
        check_text(m, "text", &self.text, MAX_TEXT_LEN, false)
    }
}

impl Validate for ErrorMessage {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_code(m, "code", &self.code)?;
        check_text(m, "message", &self.message, MAX_TEXT_LEN, false)
    }
}

impl Validate for ChatLine {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_text(m, "display_name", &self.display_name, MAX_DISPLAY_NAME_LEN, false)?;
        check_text(m, "text", &self.text, MAX_CHAT_LEN, true)
    }
}

impl Validate for Ended {
    fn validate(&self, m: &'static str) -> Result<(), SignalError> {
        check_code(m, "reason", &self.reason)
    }
}

macro_rules! no_rules {
    ($($t:ty),*) => {$(
        impl Validate for $t {
            fn validate(&self, _: &'static str) -> Result<(), SignalError> { Ok(()) }
        }
    )*};
}
no_rules!(
    Empty,
    Mute,
    Screen,
    Moderate,
    Lock,
    PinRequired,
    Lobby,
    Joined,
    Speaking
);

/// Splits a frame into its `type` and remaining members, checking size and `v`.
fn envelope(text: &str) -> Result<(String, Map<String, Value>), SignalError> {
    if text.len() > MAX_MESSAGE_LEN {
        return Err(SignalError::TooLarge {
            len: text.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| SignalError::Json(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(SignalError::NotAnObject);
    };
    match obj.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(other) => {
            let mut s = other.to_string();
            s.truncate(32);
            return Err(SignalError::Version(s));
        }
        None => return Err(SignalError::Version("(missing)".into())),
    }
    let Some(Value::String(typ)) = obj.remove("type") else {
        return Err(SignalError::MissingType);
    };
    Ok((typ, obj))
}

fn members<T: DeserializeOwned + Validate>(message: &'static str, obj: Map<String, Value>) -> Result<T, SignalError> {
    let v: T = serde_path_to_error::deserialize(Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names the member itself for missing and unknown members.
        let field = if path == "." {
            inner.split('`').nth(1).unwrap_or("?").to_string()
        } else {
            path
        };
        SignalError::Field {
            message,
            field,
            reason: inner,
        }
    })?;
    v.validate(message)?;
    Ok(v)
}

fn frame<T: Serialize>(typ: &str, body: &T) -> String {
    let body = serde_json::to_string(body).unwrap_or_default();
    match body.strip_prefix('{') {
        Some("}") | None => format!("{{\"v\":{VERSION},\"type\":\"{typ}\"}}"),
        Some(rest) => format!("{{\"v\":{VERSION},\"type\":\"{typ}\",{rest}"),
    }
}

macro_rules! messages {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $tag:literal => $variant:ident($ty:ty), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
        }

        impl $name {
            /// The wire `type` of this message.
            pub fn message_type(&self) -> &'static str {
                match self {
                    $( $name::$variant(_) => $tag, )*
                }
            }

            /// Parses and validates one text frame.
            pub fn parse(text: &str) -> Result<Self, SignalError> {
                let (typ, obj) = envelope(text)?;
                match typ.as_str() {
                    $( $tag => Ok($name::$variant(members($tag, obj)?)), )*
                    _ => {
                        let mut t = typ;
                        t.truncate(32);
                        Err(SignalError::UnknownType(t))
                    }
                }
            }

            /// The text frame for this message (`v` and `type` first).
            pub fn to_json(&self) -> String {
                match self {
                    $( $name::$variant(m) => frame($tag, m), )*
                }
            }
        }
    };
}

messages! {
    /// A frame from the browser.
    ClientMessage {
        /// `hello`.
        "hello" => Hello(Hello),
        /// `login`.
        "login" => Login(Login),
        /// `join`.
        "join" => Join(Join),
        /// `pin`.
        "pin" => Pin(PinEntry),
        /// `answer`: the browser's answer to our offer.
        "answer" => Answer(Sdp),
        /// `offer`: the browser's offer.
        "offer" => Offer(Sdp),
        /// `ice_restart`.
        "ice_restart" => IceRestart(Empty),
        /// `mute`.
        "mute" => Mute(Mute),
        /// `screen`.
        "screen" => Screen(Screen),
        /// `moderate`.
        "moderate" => Moderate(Moderate),
        /// `lock`.
        "lock" => Lock(Lock),
        /// `end`.
        "end" => End(Empty),
        /// `chat`.
        "chat" => Chat(ChatSend),
        /// `leave`.
        "leave" => Leave(Empty),
    }
}

messages! {
    /// A frame to the browser.
    ServerMessage {
        /// `welcome`.
        "welcome" => Welcome(Welcome),
        /// `pin_required`.
        "pin_required" => PinRequired(PinRequired),
        /// `lobby`.
        "lobby" => Lobby(Lobby),
        /// `joined`.
        "joined" => Joined(Joined),
        /// `offer`: ours.
        "offer" => Offer(Sdp),
        /// `answer`: ours, to the browser's offer.
        "answer" => Answer(Sdp),
        /// `participants`.
        "participants" => Participants(Participants),
        /// `speaking`.
        "speaking" => Speaking(Speaking),
        /// `lobby_queue`.
        "lobby_queue" => LobbyQueue(LobbyQueue),
        /// `notice`.
        "notice" => Notice(Notice),
        /// `chat`.
        "chat" => Chat(ChatLine),
        /// `error`.
        "error" => Error(ErrorMessage),
        /// `ended`.
        "ended" => Ended(Ended),
    }
}

impl ServerMessage {
    /// An `error` frame for a refused client frame (the session is then closed).
    pub fn from_error(e: &SignalError) -> Self {
        let mut message = e.to_string();
        if message.chars().count() > MAX_TEXT_LEN {
            message = message.chars().take(MAX_TEXT_LEN).collect();
        }
        ServerMessage::Error(ErrorMessage {
            code: "bad_message".into(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_round_trip() {
        let text =
            r#"{"v":1,"type":"join","conference":"standup","display_name":"Анна","pin":"4711","mic":true,"cam":false}"#;
        let m = ClientMessage::parse(text).expect("parses");
        let ClientMessage::Join(j) = &m else { panic!("{m:?}") };
        assert_eq!(j.conference, "standup");
        assert_eq!(j.display_name, "Анна");
        assert_eq!(j.pin.as_deref(), Some("4711"));
        assert!(j.mic && !j.cam);
        assert_eq!(m.to_json(), text);
        assert_eq!(ClientMessage::parse(&m.to_json()), Ok(m));
    }

    #[test]
    fn every_client_message_parses() {
        let frames = [
            r#"{"v":1,"type":"hello"}"#,
            r#"{"v":1,"type":"hello","client":"confgate-web/1"}"#,
            r#"{"v":1,"type":"login","user":"ann@example.org","password":"p"}"#,
            r#"{"type":"join","v":1,"conference":"c1","display_name":"Guest","mic":false,"cam":true}"#,
            r#"{"v":1,"type":"pin","pin":"123456"}"#,
            r#"{"v":1,"type":"answer","sdp":"v=0\r\n"}"#,
            r#"{"v":1,"type":"offer","sdp":"v=0\r\n"}"#,
            r#"{"v":1,"type":"ice_restart"}"#,
            r#"{"v":1,"type":"mute","media":"video","muted":true}"#,
            r#"{"v":1,"type":"screen","sharing":true}"#,
            r#"{"v":1,"type":"moderate","target":7,"action":"mute_audio"}"#,
            r#"{"v":1,"type":"lock","locked":true}"#,
            r#"{"v":1,"type":"end"}"#,
            r#"{"v":1,"type":"chat","text":"hi\nthere"}"#,
            r#"{"v":1,"type":"leave"}"#,
        ];
        for f in frames {
            let m = ClientMessage::parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(ClientMessage::parse(&m.to_json()).as_ref(), Ok(&m), "{f}");
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let msgs = [
            ServerMessage::Welcome(Welcome {
                server: "confgate/0.1.0".into(),
                user: Some("ann".into()),
            }),
            ServerMessage::PinRequired(PinRequired {
                attempts_left: 2,
                wrong: true,
            }),
            ServerMessage::Lobby(Lobby { timeout: 300 }),
            ServerMessage::Joined(Joined {
                role: Role::Moderator,
                participant: 3,
                chat: false,
            }),
            ServerMessage::LobbyQueue(LobbyQueue {
                waiting: vec![Waiting {
                    id: 9,
                    display_name: "Guest".into(),
                }],
            }),
            ServerMessage::LobbyQueue(LobbyQueue { waiting: Vec::new() }),
            ServerMessage::Offer(Sdp { sdp: "v=0\r\n".into() }),
            ServerMessage::Participants(Participants {
                participants: vec![Participant {
                    id: 3,
                    display_name: "Ann".into(),
                    role: Role::Participant,
                    audio_muted: false,
                    video_muted: true,
                    stream: Some("p3".into()),
                }],
            }),
            ServerMessage::Speaking(Speaking { participant: None }),
            ServerMessage::Speaking(Speaking { participant: Some(3) }),
            ServerMessage::Notice(Notice {
                code: "muted_by_moderator".into(),
                text: "A moderator muted your microphone.".into(),
            }),
            ServerMessage::Chat(ChatLine {
                from: 3,
                display_name: "Ann".into(),
                text: "hello".into(),
            }),
            ServerMessage::Error(ErrorMessage {
                code: "auth_failed".into(),
                message: "Wrong user or password.".into(),
            }),
            ServerMessage::Ended(Ended::from_reason(&call::EndReason::Kicked)),
        ];
        for m in msgs {
            let j = m.to_json();
            assert!(
                j.starts_with(&format!("{{\"v\":1,\"type\":\"{}\"", m.message_type())),
                "{j}"
            );
            assert_eq!(ServerMessage::parse(&j), Ok(m));
        }
        assert_eq!(
            ServerMessage::Speaking(Speaking { participant: None }).to_json(),
            r#"{"v":1,"type":"speaking"}"#
        );
    }

    fn field_error(text: &str) -> (String, String) {
        match ClientMessage::parse(text) {
            Err(SignalError::Field { field, reason, .. }) => (field, reason),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_member() {
        let (f, r) = field_error(r#"{"v":1,"type":"join","conference":"c","display_name":"x","mic":true}"#);
        assert_eq!(f, "cam");
        assert!(r.contains("missing"), "{r}");
        let (f, r) = field_error(r#"{"v":1,"type":"join","conference":"c","display_name":"x","mic":true,"cam":1}"#);
        assert_eq!(f, "cam");
        assert!(r.contains("invalid type"), "{r}");
        let (f, _) = field_error(r#"{"v":1,"type":"answer","sdp":"v=0","sdpp":"v=0"}"#);
        assert_eq!(f, "sdpp");
        let (f, _) = field_error(r#"{"v":1,"type":"leave","now":true}"#);
        assert_eq!(f, "now");
        let (f, _) = field_error(r#"{"v":1,"type":"mute","media":"screen","muted":true}"#);
        assert_eq!(f, "media");
        let (f, _) =
            field_error(r#"{"v":1,"type":"join","conference":"no spaces","display_name":"x","mic":true,"cam":true}"#);
        assert_eq!(f, "conference");
        let (f, _) = field_error(r#"{"v":1,"type":"join","conference":"c","display_name":"  ","mic":true,"cam":true}"#);
        assert_eq!(f, "display_name");
        let (f, _) =
            field_error(r#"{"v":1,"type":"join","conference":"c","display_name":"a\u0007","mic":true,"cam":true}"#);
        assert_eq!(f, "display_name");
        let (f, _) = field_error(r#"{"v":1,"type":"pin","pin":"12a4"}"#);
        assert_eq!(f, "pin");
        let (f, _) = field_error(r#"{"v":1,"type":"answer","sdp":"hello"}"#);
        assert_eq!(f, "sdp");
        let long = "x".repeat(MAX_CHAT_LEN + 1);
        let (f, _) = field_error(&format!(r#"{{"v":1,"type":"chat","text":"{long}"}}"#));
        assert_eq!(f, "text");
        let (f, _) = field_error(r#"{"v":1,"type":"moderate","target":-1,"action":"remove"}"#);
        assert_eq!(f, "target");
    }

    #[test]
    fn envelope_errors() {
        assert!(matches!(ClientMessage::parse("{"), Err(SignalError::Json(_))));
        assert_eq!(ClientMessage::parse("[1]"), Err(SignalError::NotAnObject));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"leave"}"#),
            Err(SignalError::Version(_))
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"v":2,"type":"leave"}"#),
            Err(SignalError::Version(v)) if v == "2"
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"v":"1","type":"leave"}"#),
            Err(SignalError::Version(_))
        ));
        assert_eq!(ClientMessage::parse(r#"{"v":1}"#), Err(SignalError::MissingType));
        assert_eq!(
            ClientMessage::parse(r#"{"v":1,"type":"welcome","server":"x"}"#),
            Err(SignalError::UnknownType("welcome".into()))
        );
        let big = format!(r#"{{"v":1,"type":"chat","text":"{}"}}"#, "a".repeat(MAX_MESSAGE_LEN));
        let e = ClientMessage::parse(&big).expect_err("too large");
        assert_eq!(e.close_code(), 1009);
        assert_eq!(ClientMessage::parse("{").expect_err("bad").close_code(), 1008);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(ClientMessage::parse(&deep), Err(SignalError::Json(_))));
    }

    #[test]
    fn joined_chat_defaults_on_and_lobby_queue_names_are_checked() {
        let m =
            ServerMessage::parse(r#"{"v":1,"type":"joined","role":"participant","participant":4}"#).expect("parses");
        assert_eq!(
            m,
            ServerMessage::Joined(Joined {
                role: Role::Participant,
                participant: 4,
                chat: true
            })
        );
        let off = ServerMessage::Joined(Joined {
            role: Role::Participant,
            participant: 4,
            chat: false,
        });
        assert!(off.to_json().contains(r#""chat":false"#), "{}", off.to_json());
        let bad = r#"{"v":1,"type":"lobby_queue","waiting":[{"id":1,"display_name":" "}]}"#;
        assert!(matches!(
            ServerMessage::parse(bad),
            Err(SignalError::Field { field, .. }) if field == "waiting[0].display_name"
        ));
        let (f, _) = field_error(r#"{"v":1,"type":"screen","sharing":"yes"}"#);
        assert_eq!(f, "sharing");
        let (f, _) = field_error(r#"{"v":1,"type":"screen"}"#);
        assert_eq!(f, "sharing");
    }

    #[test]
    fn password_is_not_printed() {
        let m = ClientMessage::parse(r#"{"v":1,"type":"login","user":"ann","password":"hunter2"}"#).expect("parses");
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn error_frame_for_a_refused_frame() {
        let e = ClientMessage::parse(r#"{"v":1,"type":"nope"}"#).expect_err("unknown");
        let j = ServerMessage::from_error(&e).to_json();
        assert!(j.contains("bad_message") && j.contains("nope"), "{j}");
        assert!(ServerMessage::parse(&j).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = ClientMessage::parse(&s);
            let _ = ServerMessage::parse(&s);
        }

        #[test]
        fn chat_text_round_trips(s in "[a-zA-Z0-9 äöü\n]{1,100}") {
            proptest::prop_assume!(!s.trim().is_empty());
            let m = ClientMessage::Chat(ChatSend { text: s });
            proptest::prop_assert_eq!(ClientMessage::parse(&m.to_json()), Ok(m));
        }
    }
}
