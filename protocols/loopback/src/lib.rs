//! The confgate loopback protocol: local programs (bots, recorders, test
//! clients) join a conference over a unix stream socket.
//!
//! This crate is sans-IO: it turns bytes into [`Frame`]s and messages into
//! bytes, and checks that a session's messages come in an allowed order
//! ([`ServerSession`]). The daemon's driver owns the socket; `confgate bot`
//! is a client of the same codec.
//!
//! # Wire format (version 1)
//!
//! A connection is a sequence of frames in both directions:
//!
//! ```text
//! +----------------+--------+----------------------+
//! | length: u32 BE | kind:u8| payload (length - 1) |
//! +----------------+--------+----------------------+
//! ```
//!
//! `length` counts the kind byte and the payload and is at most
//! [`MAX_FRAME_LEN`]; a larger or zero length is a protocol error and ends
//! the connection. Kinds:
//!
//! - `0x01` control: one UTF-8 JSON object with a `"type"` member, at most
//!   [`MAX_CONTROL_LEN`] bytes: a [`ClientMessage`] from the client, a
//!   [`ServerMessage`] from the server.
//! - `0x02` audio: exactly one 20 ms frame of 48 kHz mono signed 16-bit
//!   little-endian PCM ([`AUDIO_FRAME_SAMPLES`] samples, 1920 bytes). The
//!   client sends what it says, the server sends what the client hears.
//!   Audio before the participant is admitted is discarded.
//!
//! Any other kind is a protocol error.
//!
//! # Session
//!
//! 1. The client sends `hello` with the protocol version it speaks; the
//!    server answers `welcome` (or `error` with code `unsupported_version`
//!    and closes).
//! 2. The client sends one `join` naming the conference and who it is: an
//!    account (`user` + `password`) or a display name alone (anonymous), and
//!    a `pin` if it has one.
//! 3. The server answers with `joined`, or `pin_required` (send `pin`), or
//!    `lobby` (wait; later `admitted` or `refused`), or `refused` with a
//!    reason code, after which it closes the connection.
//! 4. While joined, the server sends `participants` whenever the list
//!    changes (and `participant_joined`, `participant_left`, `muted`,
//!    `video_stopped`, `role_changed`, `locked`; moderators also get
//!    `lobby_queue`), `speaking` when the active speaker changes, and `kicked`
//!    or `ended` when the participant is removed or the conference stops. The
//!    client sends `leave` (or closes the socket) to hang up.
//! 5. A moderator may send `admit`, `reject`, `mute`, `stop_video`,
//!    `remove`, `make_moderator` (each with a `participant` id), `lock`
//!    (`locked`: true/false) and `end_conference`; anyone may `mute`
//!    themselves. A refused request gets `denied` and the session goes on.
//!
//! Reason codes are the call model's `EndReason::code()` tokens
//! (`wrong_pin`, `conference_full`, `not_found`, ...). New message types may
//! be added in later versions; a client ignores `type`s it does not know.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Samples in one audio frame: 20 ms at 48 kHz, mono.
pub const AUDIO_FRAME_SAMPLES: usize = 960;
/// Bytes of one audio frame's payload.
pub const AUDIO_FRAME_BYTES: usize = AUDIO_FRAME_SAMPLES * 2;
/// Largest control message payload, in bytes.
pub const MAX_CONTROL_LEN: usize = 16 * 1024;
/// Largest value of the length field: a kind byte and the largest payload.
pub const MAX_FRAME_LEN: usize = 1 + MAX_CONTROL_LEN;

const KIND_CONTROL: u8 = 0x01;
const KIND_AUDIO: u8 = 0x02;

/// One 20 ms frame of 48 kHz mono PCM.
pub type AudioFrame = [i16; AUDIO_FRAME_SAMPLES];

/// What went wrong with the bytes or messages a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length field is zero or larger than [`MAX_FRAME_LEN`].
    #[error("frame length {0} is outside 1..={MAX_FRAME_LEN}")]
    BadLength(usize),
    /// The kind byte is not one this version knows.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// An audio frame whose payload is not exactly one 20 ms frame.
    #[error("audio frame of {0} bytes; expected {AUDIO_FRAME_BYTES}")]
    BadAudioLength(usize),
    /// A control frame that is not a JSON message of a known shape.
    #[error("bad control message: {0}")]
    BadMessage(String),
    /// A message that is not allowed in the session's current state.
    #[error("'{message}' is not allowed {state}")]
    UnexpectedMessage {
        /// The message type received.
        message: &'static str,
        /// The state the session was in, as words.
        state: &'static str,
    },
    /// The client speaks a version this server does not.
    #[error("protocol version {0} is not supported; this server speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u32),
}

impl ProtocolError {
    /// A stable token for the `code` field of an `error` message.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadLength(_) | Self::UnknownKind(_) | Self::BadAudioLength(_) => "bad_frame",
            Self::BadMessage(_) => "bad_message",
            Self::UnexpectedMessage { .. } => "unexpected_message",
            Self::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: the version the client speaks.
    Hello {
        /// Protocol version.
        version: u32,
        /// Free-form client name, for logs.
        #[serde(default)]
        client: String,
    },
    /// Join a conference.
    Join {
        /// The conference id.
        conference: String,
        /// Display name (required when anonymous).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        /// Account: bare user or full `user@server`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// The account's password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// The conference PIN, if the client has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
    },
    /// A PIN, after `pin_required`.
    Pin {
        /// The digits.
        pin: String,
    },
    /// Hang up.
    Leave,
    /// Moderator: let a lobby participant in.
    Admit {
        /// Participant id.
        participant: u64,
    },
    /// Moderator: turn a lobby participant away.
    Reject {
        /// Participant id.
        participant: u64,
    },
    /// Mute or unmute a participant (anyone may mute themselves; others need a moderator).
    Mute {
        /// Participant id.
        participant: u64,
        /// Muted or not.
        muted: bool,
    },
    /// Moderator: stop or allow a participant's video.
    StopVideo {
        /// Participant id.
        participant: u64,
        /// Stopped or not.
        stopped: bool,
    },
    /// Moderator: remove a participant.
    Remove {
        /// Participant id.
        participant: u64,
    },
    /// Moderator: make a participant a moderator.
    MakeModerator {
        /// Participant id.
        participant: u64,
    },
    /// Moderator: lock or unlock the conference.
    Lock {
        /// Locked or not.
        locked: bool,
    },
    /// Moderator: end the conference for everyone.
    EndConference,
}

impl ClientMessage {
    /// The message's `type` token.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Join { .. } => "join",
            Self::Pin { .. } => "pin",
            Self::Leave => "leave",
            Self::Admit { .. } => "admit",
            Self::Reject { .. } => "reject",
            Self::Mute { .. } => "mute",
            Self::StopVideo { .. } => "stop_video",
            Self::Remove { .. } => "remove",
            Self::MakeModerator { .. } => "make_moderator",
            Self::Lock { .. } => "lock",
            Self::EndConference => "end_conference",
        }
    }
}

/// One participant, as the server lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// The participant's id within the conference.
    pub id: u64,
    /// The name to show.
    pub display_name: String,
    /// The account id (`user@server`), absent for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `owner`, `moderator`, `participant` or `guest`.
    pub role: String,
    /// How the participant is connected (`loopback`, `sip`, ...).
    pub protocol: String,
    /// Whether the participant's audio is muted.
    pub muted: bool,
    /// Waiting in the lobby (only moderators are shown these).
    #[serde(default)]
    pub in_lobby: bool,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `hello`.
    Welcome {
        /// Protocol version the server speaks.
        version: u32,
        /// The server's name (the `@server` part of ids).
        server: String,
    },
    /// Admitted into the conference.
    Joined {
        /// The conference id.
        conference: String,
        /// Our participant id.
        participant: u64,
        /// Our role.
        role: String,
    },
    /// The conference needs a PIN.
    PinRequired {
        /// Attempts left before the attempt ends.
        attempts_left: u32,
        /// Whether this follows a wrong PIN.
        wrong: bool,
    },
    /// Waiting in the lobby for a moderator.
    Lobby {
        /// Seconds until the wait ends by itself.
        timeout_secs: u64,
    },
    /// A moderator admitted us from the lobby (a `joined` follows).
    Admitted,
    /// Refused; the server closes the connection after this.
    Refused {
        /// `EndReason` code.
        reason: String,
        /// Human-readable reason.
        message: String,
    },
    /// The participant list changed.
    Participants {
        /// Everyone in the conference now.
        participants: Vec<ParticipantInfo>,
    },
    /// The active speaker changed.
    Speaking {
        /// The participant now speaking, if anyone.
        participant: Option<u64>,
    },
    /// Removed from the conference.
    Kicked {
        /// `EndReason` code.
        reason: String,
    },
    /// The conference ended.
    Ended {
        /// `EndReason` code.
        reason: String,
    },
    /// Someone was admitted into the conference.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left or was removed.
    ParticipantLeft {
        /// Participant id.
        participant: u64,
    },
    /// Someone's audio was muted or unmuted.
    Muted {
        /// Participant id.
        participant: u64,
        /// Muted now.
        muted: bool,
    },
    /// Someone's video was stopped or allowed.
    VideoStopped {
        /// Participant id.
        participant: u64,
        /// Stopped now.
        stopped: bool,
    },
    /// Someone's role changed.
    RoleChanged {
        /// Participant id.
        participant: u64,
        /// The new role.
        role: String,
    },
    /// Who waits in the lobby now (moderators only).
    LobbyQueue {
        /// The waiting participants.
        waiting: Vec<ParticipantInfo>,
    },
    /// The conference was locked or unlocked.
    Locked {
        /// Locked now.
        locked: bool,
    },
    /// A request (a moderator action) was refused; the session goes on.
    Denied {
        /// The request's `type`.
        action: String,
        /// Why.
        reason: String,
    },
    /// A protocol error; the server closes the connection after this.
    Error {
        /// [`ProtocolError::code`].
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A control message's JSON text.
    Control(String),
    /// An audio frame; its samples were written to the caller's buffer.
    Audio,
}

/// Reassembles frames from a byte stream.
///
/// Feed it what the socket returns with [`FrameDecoder::extend`], then call
/// [`FrameDecoder::next_frame`] until it returns `Ok(None)`. After an error
/// the stream is out of sync: close the connection.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_FRAME_LEN {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet consumed.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the next whole frame. Audio samples go to `audio`.
    pub fn next_frame(&mut self, audio: &mut AudioFrame) -> Result<Option<Frame>, ProtocolError> {
        let avail = &self.buf[self.start..];
        let Some(header) = avail.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        // Validate the untrusted length before waiting for (or buffering) that many bytes.
        if len == 0 || len > MAX_FRAME_LEN {
            return Err(ProtocolError::BadLength(len));
        }
        let Some(body) = avail.get(4..4 + len) else {
            return Ok(None);
        };
        let kind = body[0];
        let payload = &body[1..];
        let frame = match kind {
            KIND_CONTROL => match std::str::from_utf8(payload) {
                Ok(text) => Frame::Control(text.to_owned()),
                Err(_) => return Err(ProtocolError::BadMessage("control frame is not UTF-8".into())),
            },
            KIND_AUDIO => {
                if payload.len() != AUDIO_FRAME_BYTES {
                    return Err(ProtocolError::BadAudioLength(payload.len()));
                }
                for (sample, bytes) in audio.iter_mut().zip(payload.chunks_exact(2)) {
                    *sample = i16::from_le_bytes([bytes[0], bytes[1]]);
                }
                Frame::Audio
            }
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        self.start += 4 + len;
        Ok(Some(frame))
    }
}

/// Appends a control frame carrying `message` to `out`.
pub fn encode_message<M: Serialize>(message: &M, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, KIND_CONTROL]);
    // Serialising these message types cannot fail: they hold only strings, numbers and lists.
    if serde_json::to_writer(&mut *out, message).is_err() {
        out.truncate(start);
        return;
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends an audio frame to `out`.
pub fn encode_audio(frame: &AudioFrame, out: &mut Vec<u8>) {
    out.extend_from_slice(&((1 + AUDIO_FRAME_BYTES) as u32).to_be_bytes());
    out.push(KIND_AUDIO);
    for sample in frame {
        out.extend_from_slice(&sample.to_le_bytes());
    }
}

/// Parses a client's control message.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    serde_json::from_str(text).map_err(|e| ProtocolError::BadMessage(e.to_string()))
}

/// Parses a server's control message. Returns `Ok(None)` for a message
/// type this version does not know (clients ignore those).
pub fn parse_server_message(text: &str) -> Result<Option<ServerMessage>, ProtocolError> {
    match serde_json::from_str::<ServerMessage>(text) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|_| ProtocolError::BadMessage(e.to_string()))?;
            match value.get("type").and_then(|t| t.as_str()) {
                Some(t) if !KNOWN_SERVER_TYPES.contains(&t) => Ok(None),
                _ => Err(ProtocolError::BadMessage(e.to_string())),
            }
        }
    }
}

const KNOWN_SERVER_TYPES: &[&str] = &[
    "welcome",
    "joined",
    "pin_required",
    "lobby",
    "admitted",
    "refused",
    "participants",
    "speaking",
    "kicked",
    "ended",
    "participant_joined",
    "participant_left",
    "muted",
    "video_stopped",
    "role_changed",
    "lobby_queue",
    "locked",
    "denied",
    "error",
];

/// Where a server-side session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for `hello`.
    AwaitHello,
    /// Waiting for `join`.
    AwaitJoin,
    /// `join` received; the conference has not answered yet.
    Joining,
    /// Waiting for a `pin` message.
    AwaitPin,
    /// Waiting in the lobby.
    InLobby,
    /// In the conference.
    Joined,
    /// Ended; nothing more is accepted.
    Closed,
}

impl SessionState {
    fn words(self) -> &'static str {
        match self {
            Self::AwaitHello => "before hello",
            Self::AwaitJoin => "before join",
            Self::Joining => "while the join is being decided",
            Self::AwaitPin => "while a PIN is expected",
            Self::InLobby => "in the lobby",
            Self::Joined => "after joining",
            Self::Closed => "after the session ended",
        }
    }
}

/// The server's view of one loopback session: checks that the client's
/// messages come in order and tracks where the session is.
///
/// The driver passes each decoded control frame to
/// [`ServerSession::handle_control`] and acts on the returned message; it
/// reports the conference's answers with the `on_*` methods.
#[derive(Debug)]
pub struct ServerSession {
    state: SessionState,
}

impl Default for ServerSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSession {
    /// A session waiting for `hello`.
    pub fn new() -> Self {
        Self {
            state: SessionState::AwaitHello,
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Parses and checks one control message. On error the driver sends an
    /// `error` message with [`ProtocolError::code`] and closes.
    pub fn handle_control(&mut self, text: &str) -> Result<ClientMessage, ProtocolError> {
        if text.len() > MAX_CONTROL_LEN {
            return Err(ProtocolError::BadMessage("control message too long".into()));
        }
        let msg = parse_client_message(text)?;
        let next = match (&msg, self.state) {
            (ClientMessage::Hello { version, .. }, SessionState::AwaitHello) => {
                if *version != PROTOCOL_VERSION {
                    self.state = SessionState::Closed;
                    return Err(ProtocolError::UnsupportedVersion(*version));
                }
                SessionState::AwaitJoin
            }
            (ClientMessage::Join { .. }, SessionState::AwaitJoin) => SessionState::Joining,
            (ClientMessage::Pin { .. }, SessionState::AwaitPin) => SessionState::Joining,
            (ClientMessage::Leave, s) if s != SessionState::AwaitHello && s != SessionState::Closed => {
                SessionState::Closed
            }
            (
                ClientMessage::Admit { .. }
                | ClientMessage::Reject { .. }
                | ClientMessage::Mute { .. }
                | ClientMessage::StopVideo { .. }
                | ClientMessage::Remove { .. }
                | ClientMessage::MakeModerator { .. }
                | ClientMessage::Lock { .. }
                | ClientMessage::EndConference,
                SessionState::Joined,
            ) => SessionState::Joined,
            (m, s) => {
                let err = ProtocolError::UnexpectedMessage {
                    message: m.kind(),
                    state: s.words(),
                };
                self.state = SessionState::Closed;
                return Err(err);
            }
        };
        self.state = next;
        Ok(msg)
    }

    /// Whether audio from the client is to be used now.
    pub fn accepts_audio(&self) -> bool {
        self.state == SessionState::Joined
    }

    /// The conference admitted the participant.
    pub fn on_joined(&mut self) {
        self.state = SessionState::Joined;
    }

    /// The conference asks for a PIN.
    pub fn on_pin_required(&mut self) {
        self.state = SessionState::AwaitPin;
    }

    /// The participant waits in the lobby.
    pub fn on_lobby(&mut self) {
        self.state = SessionState::InLobby;
    }

    /// The session ended (refused, kicked, conference ended, left).
    pub fn on_closed(&mut self) {
        self.state = SessionState::Closed;
    }
}

/// Entry points for fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Feeds arbitrary bytes to a decoder and a session, in chunks split at
    /// the first byte's value; must never panic.
    pub fn server_stream(data: &[u8]) {
        let split = data.first().map_or(0, |b| *b as usize).min(data.len());
        let mut decoder = FrameDecoder::new();
        let mut session = ServerSession::new();
        let mut audio = [0i16; AUDIO_FRAME_SAMPLES];
        for chunk in [&data[..split], &data[split..]] {
            decoder.extend(chunk);
            loop {
                match decoder.next_frame(&mut audio) {
                    Ok(Some(Frame::Control(text))) => {
                        if session.handle_control(&text).is_err() {
                            return;
                        }
                    }
                    Ok(Some(Frame::Audio)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Frame, ProtocolError>> {
        let mut d = FrameDecoder::new();
        let mut audio = [0i16; AUDIO_FRAME_SAMPLES];
        let mut out = Vec::new();
        for b in bytes {
            d.extend(std::slice::from_ref(b));
            loop {
                match d.next_frame(&mut audio) {
                    Ok(Some(f)) => out.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn control_frame_round_trip_byte_by_byte() {
        let mut bytes = Vec::new();
        let msg = ClientMessage::Join {
            conference: "c1".into(),
            display_name: Some("Bot".into()),
            user: None,
            password: None,
            pin: Some("1234".into()),
        };
        encode_message(&msg, &mut bytes);
        encode_message(&ClientMessage::Leave, &mut bytes);
        let frames = decode_all(&bytes);
        assert_eq!(frames.len(), 2);
        let Ok(Frame::Control(text)) = &frames[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(parse_client_message(text).unwrap(), msg);
        let Ok(Frame::Control(text)) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert_eq!(parse_client_message(text).unwrap(), ClientMessage::Leave);
    }

    #[test]
    fn wire_layout_is_length_kind_payload() {
        let mut bytes = Vec::new();
        encode_message(&ClientMessage::Leave, &mut bytes);
        let body = br#"{"type":"leave"}"#;
        assert_eq!(&bytes[..4], &((body.len() + 1) as u32).to_be_bytes());
        assert_eq!(bytes[4], 0x01);
        assert_eq!(&bytes[5..], body);
    }

    #[test]
    fn audio_round_trip() {
        let mut frame = [0i16; AUDIO_FRAME_SAMPLES];
        for (i, s) in frame.iter_mut().enumerate() {
            *s = (i as i16).wrapping_mul(37).wrapping_sub(12000);
        }
        let mut bytes = Vec::new();
        encode_audio(&frame, &mut bytes);
        assert_eq!(bytes.len(), 4 + 1 + AUDIO_FRAME_BYTES);
        let mut d = FrameDecoder::new();
        d.extend(&bytes);
        let mut out = [0i16; AUDIO_FRAME_SAMPLES];
        assert_eq!(d.next_frame(&mut out).unwrap(), Some(Frame::Audio));
        assert_eq!(out, frame);
        assert_eq!(d.next_frame(&mut out).unwrap(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn bad_frames_are_errors() {
        // zero length
        assert_eq!(decode_all(&[0, 0, 0, 0]), vec![Err(ProtocolError::BadLength(0))]);
        // huge length is refused from the header alone, before any payload arrives
        assert_eq!(
            decode_all(&[0xff, 0xff, 0xff, 0xff]),
            vec![Err(ProtocolError::BadLength(0xffff_ffff))]
        );
        // unknown kind
        assert_eq!(decode_all(&[0, 0, 0, 1, 7]), vec![Err(ProtocolError::UnknownKind(7))]);
        // short audio
        assert_eq!(
            decode_all(&[0, 0, 0, 3, 2, 0, 0]),
            vec![Err(ProtocolError::BadAudioLength(2))]
        );
        // control not UTF-8
        assert!(matches!(
            decode_all(&[0, 0, 0, 2, 1, 0xff])[0],
            Err(ProtocolError::BadMessage(_))
        ));
    }

    #[test]
    fn session_order_is_enforced() {
        let mut s = ServerSession::new();
        let err = s.handle_control(r#"{"type":"join","conference":"c"}"#).unwrap_err();
        assert_eq!(err.code(), "unexpected_message");
        assert_eq!(s.state(), SessionState::Closed);

        let mut s = ServerSession::new();
        assert_eq!(
            s.handle_control(r#"{"type":"hello","version":2}"#).unwrap_err(),
            ProtocolError::UnsupportedVersion(2)
        );

        let mut s = ServerSession::new();
        s.handle_control(r#"{"type":"hello","version":1,"client":"t"}"#)
            .unwrap();
        assert_eq!(s.state(), SessionState::AwaitJoin);
        assert!(!s.accepts_audio());
        s.handle_control(r#"{"type":"join","conference":"c","display_name":"X"}"#)
            .unwrap();
        assert_eq!(s.state(), SessionState::Joining);
        // a second join while the first is pending is refused
        assert!(s.handle_control(r#"{"type":"join","conference":"c"}"#).is_err());

        let mut s = ServerSession::new();
        s.handle_control(r#"{"type":"hello","version":1}"#).unwrap();
        s.handle_control(r#"{"type":"join","conference":"c"}"#).unwrap();
        s.on_pin_required();
        s.handle_control(r#"{"type":"pin","pin":"12"}"#).unwrap();
        s.on_joined();
        assert!(s.accepts_audio());
        assert_eq!(s.handle_control(r#"{"type":"leave"}"#).unwrap(), ClientMessage::Leave);
        assert_eq!(s.state(), SessionState::Closed);
    }

    #[test]
    fn unknown_fields_and_types_are_rejected_from_clients() {
        let mut s = ServerSession::new();
        assert!(matches!(
            s.handle_control(r#"{"type":"hello","version":1,"x":1}"#),
            Err(ProtocolError::BadMessage(_))
        ));
        let mut s = ServerSession::new();
        assert!(matches!(
            s.handle_control(r#"{"type":"dance"}"#),
            Err(ProtocolError::BadMessage(_))
        ));
        let mut s = ServerSession::new();
        assert!(matches!(
            s.handle_control("not json"),
            Err(ProtocolError::BadMessage(_))
        ));
    }

    #[test]
    fn clients_skip_unknown_server_types() {
        assert_eq!(parse_server_message(r#"{"type":"future_thing","a":1}"#).unwrap(), None);
        assert!(parse_server_message(r#"{"type":"joined"}"#).is_err());
        assert_eq!(
            parse_server_message(r#"{"type":"lobby","timeout_secs":5}"#).unwrap(),
            Some(ServerMessage::Lobby { timeout_secs: 5 })
        );
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            fuzzing::server_stream(&data);
        }
    }
}
