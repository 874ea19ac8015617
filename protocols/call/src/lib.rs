//! The protocol-neutral call model every confgate crate speaks.
//!
//! SIP, H.323, the web client, loopback endpoints and federation each map
//! their own wire terms onto the types here; the router, the conferences and
//! the media relay only ever see these types. This crate is `std` only and
//! does no I/O.
//!
//! # Legs, events and commands
//!
//! A *leg* is one endpoint's part in a call, whatever its protocol, named by
//! a [`LegId`] handle (never by reference). A protocol core reports what
//! happens on its legs as [`CallEvent`]s:
//!
//! - [`CallEvent::Incoming`] opens a leg with what was dialed
//!   ([`CallString`]), who is calling ([`Party`]: an authenticated
//!   [`TrueConfId`] or an anonymous display name, the [`Protocol`], the
//!   remote address) and the media offer ([`MediaDescription`]);
//! - `Ringing`, `Answered`, `Digits` and `MediaChanged` follow;
//! - [`CallEvent::Ended`] closes it, with an [`EndReason`]; no event follows
//!   `Ended` for that leg.
//!
//! The router answers with [`CallCommand`]s: ring, answer with media, reject
//! with an [`EndReason`], play a [`Prompt`], collect digits, hang up, bridge
//! two legs, or attach a leg to a conference. Each protocol maps
//! [`EndReason`] onto its own terms (SIP status codes, Q.850 causes,
//! WebSocket close codes, QUIC stream resets); [`EndReason::code`] is the
//! stable token for logs, metrics and APIs.
//!
//! # Identifiers
//!
//! | what          | rule                                                        | function                   |
//! |---------------|-------------------------------------------------------------|----------------------------|
//! | user part     | 1-64 of `[A-Za-z0-9._-]`                                    | [`validate_user`]          |
//! | conference id | 1-128 of `[A-Za-z0-9_]`                                     | [`validate_conference_id`] |
//! | server        | domain name / IPv4 (≤ 253 chars, RFC 1123 labels) or `[IPv6]`, no port | [`validate_server`] |
//!
//! All three compare case-insensitively. Invariant: every value this crate
//! builds ([`TrueConfId`], a parsed [`CallString`]) stores them lowercase, so
//! derived `Eq` and `Hash` are the case-insensitive comparison.
//!
//! # Dial strings
//!
//! [`CallString`] is the one dial-string grammar, after TrueConf's call
//! strings: `\c\<conference-id>`, `<user>`, `<user>@<server>`,
//! `#sip:<user>@<host>`, `#h323:<alias>@<host>`, `#tel:<number>`, bare digits,
//! or nothing at all. Parsing never panics and refuses input longer than
//! [`CallString::MAX_LEN`] bytes before looking at it. Parsed values are
//! canonical, and `Display` writes them back so that
//! `CallString::parse(&x.to_string()) == Ok(x)`:
//!
//! ```
//! use confgate_call::CallString;
//!
//! let x = CallString::parse("  Alice@Example.COM ").unwrap();
//! assert_eq!(
//!     x,
//!     CallString::Account { user: "alice".into(), server: Some("example.com".into()) }
//! );
//! assert_eq!(x.to_string(), "alice@example.com");
//! assert_eq!(CallString::parse("\\c\\Room_1").unwrap().to_string(), "\\c\\room_1");
//! assert_eq!(CallString::parse("2024"), Ok(CallString::Digits("2024".into())));
//! assert!(CallString::parse("#foo:bar").is_err());
//! ```
//!
//! # Media
//!
//! A [`MediaDescription`] is a list of [`MediaStream`]s (kind, codecs in
//! preference order, [`Direction`], [`Transport`] with SRTP keys). It says
//! what a leg can send and receive without SDP or H.245 syntax. SRTP key
//! bytes never appear in `Debug` output.
//!
//! # Personal data
//!
//! Phone numbers, URIs and display names are logged through [`Pii`], which
//! prints `<redacted>` unless [`set_pii_visible`] turned redaction off for the
//! whole process.

#![forbid(unsafe_code)]

mod dial;
mod event;
mod ids;
mod media;
mod party;
mod pii;
mod reason;

pub use dial::{CallString, CallStringError, MAX_DIGITS, MAX_H323_ALIAS_LEN};
pub use event::{CallCommand, CallEvent};
pub use ids::{
    validate_conference_id, validate_server, validate_user, IdError, LegId, ParticipantId, TrueConfId,
    MAX_CONFERENCE_ID_LEN, MAX_LABEL_LEN, MAX_SERVER_LEN, MAX_USER_LEN,
};
pub use media::{Codec, Direction, MediaDescription, MediaKind, MediaStream, SrtpKeys, SrtpSuite, Transport};
pub use party::{Identity, Party, Protocol, UnknownProtocol};
pub use pii::{set_pii_visible, Pii};
pub use reason::{EndReason, Prompt};

/// Entry points for fuzz targets (the fuzz crate lives outside the
/// workspace). Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{CallString, TrueConfId};

    /// Parses `data` (lossily decoded as UTF-8) as a dial string and checks
    /// the invariants: no panic; every parsed value's text is no longer than
    /// the input and parses back to the same value.
    pub fn call_string(data: &[u8]) {
        let input = String::from_utf8_lossy(data);
        if let Ok(parsed) = CallString::parse(&input) {
            let text = parsed.to_string();
            assert!(text.len() <= input.len(), "canonical text grew: {text:?}");
            assert_eq!(CallString::parse(&text), Ok(parsed), "round trip of {text:?}");
        }
        if let Ok(id) = TrueConfId::parse(&input, "home.example") {
            assert_eq!(id.to_string().parse::<TrueConfId>(), Ok(id));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzzing_entry_point_on_samples() {
        let samples: &[&[u8]] = &[
            b"",
            b"alice@example.com",
            b"\\c\\room",
            b"#sip:bob@[::1]:5060",
            b"#h323:\xff\xfe@gk",
            b"#tel:+1*2#",
            b"\xc3\x28",
            &[b'9'; 600],
        ];
        for s in samples {
            super::fuzzing::call_string(s);
        }
    }
}
