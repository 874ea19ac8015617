//! Why legs end, and the prompts played to callers.

use std::fmt;

/// Why a leg ended or was refused; protocols map these onto their own wire
/// terms (SIP status codes, Q.850 causes, WebSocket close codes, QUIC stream
/// resets).
///
/// [`EndReason::code`] is a stable snake_case token for logs, metrics, the
/// admin API and federation; [`EndReason::from_code`] reads it back.
/// `Display` is a short human sentence.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Someone hung up.
    Normal,
    /// The caller gave up before the call was answered.
    Cancelled,
    /// The callee is busy.
    Busy,
    /// No such conference, user or route.
    NotFound,
    /// The callee exists but none of its endpoints can be reached.
    Unreachable,
    /// The caller did not authenticate and anonymous calls are not allowed.
    AnonymousNotAllowed,
    /// The caller may not make this call.
    Forbidden,
    /// The PIN entered is wrong.
    WrongPin,
    /// Too many wrong PINs on this call.
    PinAttemptsExhausted,
    /// Too many failed attempts from this caller; it is locked out.
    LockedOut {
        /// Seconds until the caller may try again.
        retry_after_secs: u64,
    },
    /// The conference has reached its maximum number of participants.
    ConferenceFull,
    /// The conference exists but is not running.
    ConferenceNotRunning,
    /// The conference ended.
    ConferenceEnded,
    /// The conference is locked: nobody else may join.
    ConferenceLocked,
    /// A moderator refused entry from the waiting room.
    LobbyRejected,
    /// Nobody let the caller in from the waiting room in time.
    LobbyTimeout,
    /// A moderator removed the participant.
    Kicked,
    /// The dialed string is longer than the limit.
    DialStringTooLong,
    /// The dialed string does not parse.
    BadDialString,
    /// No media format in common.
    MediaIncompatible,
    /// A timer ran out (no answer, no media, no digits).
    Timeout,
    /// The server is shutting down.
    ServerShutdown,
    /// Something went wrong in the server.
    ServerError,
}

impl EndReason {
    /// The stable snake_case token of this reason: `normal`, `wrong_pin`,
    /// `conference_full`, `locked_out`, … (`LockedOut` carries no number in
    /// its token).
    pub fn code(&self) -> &'static str {
        match self {
            EndReason::Normal => "normal",
            EndReason::Cancelled => "cancelled",
            EndReason::Busy => "busy",
            EndReason::NotFound => "not_found",
            EndReason::Unreachable => "unreachable",
            EndReason::AnonymousNotAllowed => "anonymous_not_allowed",
            EndReason::Forbidden => "forbidden",
            EndReason::WrongPin => "wrong_pin",
            EndReason::PinAttemptsExhausted => "pin_attempts_exhausted",
            EndReason::LockedOut { .. } => "locked_out",
            EndReason::ConferenceFull => "conference_full",
            EndReason::ConferenceNotRunning => "conference_not_running",
            EndReason::ConferenceEnded => "conference_ended",
            EndReason::ConferenceLocked => "conference_locked",
            EndReason::LobbyRejected => "lobby_rejected",
            EndReason::LobbyTimeout => "lobby_timeout",
            EndReason::Kicked => "kicked",
            EndReason::DialStringTooLong => "dial_string_too_long",
            EndReason::BadDialString => "bad_dial_string",
            EndReason::MediaIncompatible => "media_incompatible",
            EndReason::Timeout => "timeout",
            EndReason::ServerShutdown => "server_shutdown",
            EndReason::ServerError => "server_error",
        }
    }

    /// The reason whose [`EndReason::code`] is `s` (exact match), or `None`.
    /// `retry_after_secs` fills [`EndReason::LockedOut`] and is ignored for
    /// every other code.
    pub fn from_code(s: &str, retry_after_secs: u64) -> Option<EndReason> {
        Some(match s {
            "normal" => EndReason::Normal,
            "cancelled" => EndReason::Cancelled,
            "busy" => EndReason::Busy,
            "not_found" => EndReason::NotFound,
            "unreachable" => EndReason::Unreachable,
            "anonymous_not_allowed" => EndReason::AnonymousNotAllowed,
            "forbidden" => EndReason::Forbidden,
            "wrong_pin" => EndReason::WrongPin,
            "pin_attempts_exhausted" => EndReason::PinAttemptsExhausted,
            "locked_out" => EndReason::LockedOut { retry_after_secs },
            "conference_full" => EndReason::ConferenceFull,
            "conference_not_running" => EndReason::ConferenceNotRunning,
            "conference_ended" => EndReason::ConferenceEnded,
            "conference_locked" => EndReason::ConferenceLocked,
            "lobby_rejected" => EndReason::LobbyRejected,
            "lobby_timeout" => EndReason::LobbyTimeout,
            "kicked" => EndReason::Kicked,
            "dial_string_too_long" => EndReason::DialStringTooLong,
            "bad_dial_string" => EndReason::BadDialString,
            "media_incompatible" => EndReason::MediaIncompatible,
            "timeout" => EndReason::Timeout,
            "server_shutdown" => EndReason::ServerShutdown,
            "server_error" => EndReason::ServerError,
            _ => return None,
        })
    }

    /// Whether the leg ended without a fault: [`EndReason::Normal`] or
    /// [`EndReason::Cancelled`].
    pub fn is_normal(&self) -> bool {
        matches!(self, EndReason::Normal | EndReason::Cancelled)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            EndReason::Normal => "the call ended normally",
            EndReason::Cancelled => "the call was cancelled",
            EndReason::Busy => "busy",
            EndReason::NotFound => "no such conference, user or route",
            EndReason::Unreachable => "the callee cannot be reached",
            EndReason::AnonymousNotAllowed => "anonymous calls are not allowed",
            EndReason::Forbidden => "the call is not allowed",
            EndReason::WrongPin => "wrong PIN",
            EndReason::PinAttemptsExhausted => "too many wrong PINs",
            EndReason::LockedOut { retry_after_secs } => {
                return write!(f, "too many failed attempts; try again in {retry_after_secs} s")
            }
            EndReason::ConferenceFull => "the conference is full",
            EndReason::ConferenceNotRunning => "the conference is not running",
            EndReason::ConferenceEnded => "the conference has ended",
            EndReason::ConferenceLocked => "the conference is locked",
            EndReason::LobbyRejected => "entry from the waiting room was refused",
            EndReason::LobbyTimeout => "nobody admitted the call from the waiting room in time",
            EndReason::Kicked => "removed from the conference by a moderator",
            EndReason::DialStringTooLong => "the dialed string is too long",
            EndReason::BadDialString => "the dialed string is not valid",
            EndReason::MediaIncompatible => "no media format in common",
            EndReason::Timeout => "the call timed out",
            EndReason::ServerShutdown => "the server is shutting down",
            EndReason::ServerError => "internal server error",
        };
        f.write_str(text)
    }
}

/// A recorded prompt the router asks a leg to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prompt {
    /// "Please enter the conference id, then press #."
    EnterConferenceId,
    /// "Please enter the PIN, then press #."
    EnterPin,
    /// "The PIN is wrong."
    WrongPin,
    /// "Please wait; a moderator will let you in."
    WaitingRoom,
    /// "The conference has ended."
    ConferenceEnded,
    /// "The conference is full."
    ConferenceFull,
    /// "Goodbye."
    Goodbye,
}

impl Prompt {
    /// Every prompt, in declaration order.
    pub const ALL: [Prompt; 7] = [
        Prompt::EnterConferenceId,
        Prompt::EnterPin,
        Prompt::WrongPin,
        Prompt::WaitingRoom,
        Prompt::ConferenceEnded,
        Prompt::ConferenceFull,
        Prompt::Goodbye,
    ];

    /// A stable snake_case name (e.g. for the prompt's sound file):
    /// `enter_conference_id`, `enter_pin`, …
    pub fn name(self) -> &'static str {
        match self {
            Prompt::EnterConferenceId => "enter_conference_id",
            Prompt::EnterPin => "enter_pin",
            Prompt::WrongPin => "wrong_pin",
            Prompt::WaitingRoom => "waiting_room",
            Prompt::ConferenceEnded => "conference_ended",
            Prompt::ConferenceFull => "conference_full",
            Prompt::Goodbye => "goodbye",
        }
    }
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every variant. The match below fails to compile when a variant is
    /// added and not listed here.
    fn all(retry_after_secs: u64) -> Vec<EndReason> {
        let list = vec![
            EndReason::Normal,
            EndReason::Cancelled,
            EndReason::Busy,
            EndReason::NotFound,
            EndReason::Unreachable,
            EndReason::AnonymousNotAllowed,
            EndReason::Forbidden,
            EndReason::WrongPin,
            EndReason::PinAttemptsExhausted,
            EndReason::LockedOut { retry_after_secs },
            EndReason::ConferenceFull,
            EndReason::ConferenceNotRunning,
            EndReason::ConferenceEnded,
            EndReason::ConferenceLocked,
            EndReason::LobbyRejected,
            EndReason::LobbyTimeout,
            EndReason::Kicked,
            EndReason::DialStringTooLong,
            EndReason::BadDialString,
            EndReason::MediaIncompatible,
            EndReason::Timeout,
            EndReason::ServerShutdown,
            EndReason::ServerError,
        ];
        for r in &list {
            match r {
                EndReason::Normal
                | EndReason::Cancelled
                | EndReason::Busy
                | EndReason::NotFound
                | EndReason::Unreachable
                | EndReason::AnonymousNotAllowed
                | EndReason::Forbidden
                | EndReason::WrongPin
                | EndReason::PinAttemptsExhausted
                | EndReason::LockedOut { .. }
                | EndReason::ConferenceFull
                | EndReason::ConferenceNotRunning
                | EndReason::ConferenceEnded
                | EndReason::ConferenceLocked
                | EndReason::LobbyRejected
                | EndReason::LobbyTimeout
                | EndReason::Kicked
                | EndReason::DialStringTooLong
                | EndReason::BadDialString
                | EndReason::MediaIncompatible
                | EndReason::Timeout
                | EndReason::ServerShutdown
                | EndReason::ServerError => {}
            }
        }
        list
    }

    #[test]
    fn code_round_trip_every_variant() {
        let reasons = all(30);
        let mut codes = HashSet::new();
        for r in &reasons {
            let code = r.code();
            assert!(codes.insert(code), "duplicate code {code}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert_eq!(EndReason::from_code(code, 30), Some(*r), "{code}");
            assert!(!r.to_string().is_empty());
        }
        assert_eq!(codes.len(), 23);
        assert_eq!(EndReason::from_code("nope", 0), None);
        assert_eq!(EndReason::from_code("WRONG_PIN", 0), None);
        assert_eq!(EndReason::from_code("", 0), None);
        assert_eq!(EndReason::from_code("wrong_pin", 99), Some(EndReason::WrongPin));
    }

    #[test]
    fn codes_and_sentences() {
        assert_eq!(EndReason::WrongPin.code(), "wrong_pin");
        assert_eq!(EndReason::ConferenceFull.code(), "conference_full");
        assert_eq!(EndReason::LockedOut { retry_after_secs: 5 }.code(), "locked_out");
        assert_eq!(EndReason::WrongPin.to_string(), "wrong PIN");
        assert_eq!(EndReason::ConferenceFull.to_string(), "the conference is full");
        assert_eq!(
            EndReason::LockedOut { retry_after_secs: 60 }.to_string(),
            "too many failed attempts; try again in 60 s"
        );
        assert!(EndReason::Normal.is_normal() && !EndReason::Busy.is_normal());
    }

    #[test]
    fn prompt_names_unique() {
        let names: HashSet<_> = Prompt::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Prompt::ALL.len());
        assert_eq!(Prompt::EnterPin.to_string(), "enter_pin");
    }
}
