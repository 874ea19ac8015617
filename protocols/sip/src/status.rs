//! Mapping call-model end reasons ([`call::EndReason`]) onto SIP responses,
//! `Reason` headers (RFC 3326) and Q.850 causes, and back.
//!
//! | end reason | response | Q.850 cause | notes |
//! |---|---|---|---|
//! | `Normal` | 480 Temporarily Unavailable | 16 normal call clearing | refused before answer |
//! | `Cancelled` | 487 Request Terminated | 16 | RFC 3261 §9.2 |
//! | `Busy` | 486 Busy Here | 17 user busy | |
//! | `NotFound` | 404 Not Found | 1 unallocated number | |
//! | `Unreachable` | 480 Temporarily Unavailable | 20 subscriber absent | |
//! | `AnonymousNotAllowed` | 403 Forbidden | 24 rejected due to feature at destination | see below |
//! | `Forbidden` | 403 Forbidden | 21 call rejected | |
//! | `WrongPin`, `PinAttemptsExhausted` | 403 Forbidden | 21 | Warning says why |
//! | `LockedOut` | 403 Forbidden + Retry-After | 21 | |
//! | `ConferenceFull` | 486 Busy Here | 17 | no Retry-After: nobody knows when a seat frees up |
//! | `ConferenceNotRunning` | 480 Temporarily Unavailable | 20 | |
//! | `ConferenceEnded` | 480 Temporarily Unavailable | 16 | |
//! | `ConferenceLocked`, `LobbyRejected` | 403 Forbidden | 21 | |
//! | `LobbyTimeout` | 480 Temporarily Unavailable | 19 no answer | not a refusal by anyone |
//! | `Kicked` | 403 Forbidden | 16 | usually a BYE with a Reason header |
//! | `DialStringTooLong` | 414 Request-URI Too Long | 28 invalid number format | §21.4.12 |
//! | `BadDialString` | 484 Address Incomplete | 28 | RFC 3398 §7.2.4.1 pairs 28 with 484 |
//! | `MediaIncompatible` | 488 Not Acceptable Here + Warning 305 | 88 incompatible destination | §21.4.26, §20.43 |
//! | `Timeout` | 408 Request Timeout | 102 recovery on timer expiry | |
//! | `ServerShutdown` | 503 Service Unavailable | 38 network out of order | no Retry-After: the client treats it as 500 and tries another server (§21.5.4) |
//! | `ServerError` | 500 Server Internal Error | 41 temporary failure | |
//!
//! `AnonymousNotAllowed` is a 403, not a 401: the router refuses after the
//! SIP layer has decided not to challenge. A deployment that wants phones
//! to authenticate has the SIP driver challenge INVITEs (401 / 407 from
//! [`crate::digest`]) before the router sees the call. 433 Anonymity
//! Disallowed (RFC 5079) is about privacy-withheld identities, not
//! unauthenticated ones, so it is not used.
//!
//! Every refusal carries `Reason: Q.850;cause=N;text="…"` (RFC 3326), and
//! those where the status alone does not say why (PIN, lobby, locked,
//! full, …) a `Warning` (RFC 3261 §20.43) with the reason's sentence.
//!
//! [`q850_cause`] is the one table of Q.850 cause numbers. H.323's
//! ReleaseComplete needs the same numbers, but a protocol crate may not
//! depend on another: the table belongs in `protocols/call` next to
//! `EndReason` (e.g. `EndReason::q850_cause`) and should move there.

use call::EndReason;

/// How to refuse an INVITE for an end reason: the final response and its
/// extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub code: u16,
    /// The standard reason phrase for `code` (RFC 3261 §21).
    pub reason_phrase: &'static str,
    /// The text for a `Warning` header, if one should be sent; the driver
    /// renders it with its host through [`Refusal::warning_header`].
    pub warning: Option<String>,
    /// The `Reason` header value (RFC 3326), `Q.850;cause=…;text="…"`.
    pub reason_header: Option<String>,
    /// The `Retry-After` value in seconds (RFC 3261 §20.33).
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// The `Warning` header value (RFC 3261 §20.43): `warn-code warn-agent
    /// "text"`, with code 305 "incompatible media format" for a 488 and 399
    /// "miscellaneous warning" otherwise; `host` is the warn-agent (this
    /// server's host name or address).
    pub fn warning_header(&self, host: &str) -> Option<String> {
        let text = self.warning.as_deref()?;
        let code = if self.code == 488 { 305 } else { 399 };
        Some(format!("{code} {host} {}", quoted(text)))
    }
}

/// The response refusing a call for `reason` (see the module table).
pub fn response_for_reason(reason: EndReason) -> Refusal {
    let (code, warn, retry_after) = match reason {
        EndReason::Normal => (480, false, None),
        EndReason::Cancelled => (487, false, None),
        EndReason::Busy => (486, false, None),
        EndReason::NotFound => (404, false, None),
        EndReason::Unreachable => (480, false, None),
        EndReason::AnonymousNotAllowed => (403, true, None),
        EndReason::Forbidden => (403, true, None),
        EndReason::WrongPin => (403, true, None),
        EndReason::PinAttemptsExhausted => (403, true, None),
        EndReason::LockedOut { retry_after_secs } => (403, true, Some(retry_after_secs)),
        EndReason::ConferenceFull => (486, true, None),
        EndReason::ConferenceNotRunning => (480, true, None),
        EndReason::ConferenceEnded => (480, true, None),
        EndReason::ConferenceLocked => (403, true, None),
        EndReason::LobbyRejected => (403, true, None),
        EndReason::LobbyTimeout => (480, true, None),
        EndReason::Kicked => (403, true, None),
        EndReason::DialStringTooLong => (414, true, None),
        EndReason::BadDialString => (484, true, None),
        EndReason::MediaIncompatible => (488, true, None),
        EndReason::Timeout => (408, false, None),
        EndReason::ServerShutdown => (503, true, None),
        EndReason::ServerError => (500, false, None),
        // `EndReason` is non-exhaustive: a reason added later is a server
        // error until it is mapped here.
        _ => (500, false, None),
    };
    Refusal {
        code,
        reason_phrase: reason_phrase(code),
        warning: warn.then(|| reason.to_string()),
        reason_header: Some(reason_header(reason)),
        retry_after,
    }
}

/// The `Reason` header value for `reason` (RFC 3326 §2):
/// `Q.850;cause=<q850_cause>;text="<sentence>"`, for a BYE, a CANCEL or a
/// refusal.
pub fn reason_header(reason: EndReason) -> String {
    format!(
        "Q.850;cause={};text={}",
        q850_cause(reason),
        quoted(&reason.to_string())
    )
}

/// The ITU-T Q.850 cause number for `reason` (see the module table; also
/// the numbers H.323 ReleaseComplete should use).
pub fn q850_cause(reason: EndReason) -> u8 {
    match reason {
        EndReason::Normal | EndReason::Cancelled | EndReason::ConferenceEnded | EndReason::Kicked => 16,
        EndReason::Busy | EndReason::ConferenceFull => 17,
        EndReason::NotFound => 1,
        EndReason::Unreachable | EndReason::ConferenceNotRunning => 20,
        EndReason::AnonymousNotAllowed => 24,
        EndReason::Forbidden
        | EndReason::WrongPin
        | EndReason::PinAttemptsExhausted
        | EndReason::LockedOut { .. }
        | EndReason::ConferenceLocked
        | EndReason::LobbyRejected => 21,
        EndReason::LobbyTimeout => 19,
        EndReason::DialStringTooLong | EndReason::BadDialString => 28,
        EndReason::MediaIncompatible => 88,
        EndReason::Timeout => 102,
        EndReason::ServerShutdown => 38,
        EndReason::ServerError => 41,
        _ => 41,
    }
}

/// The end reason for a Q.850 cause received (in a `Reason` header, or from
/// H.323): the specific causes first, then by cause class (Q.850 §2.2.5:
/// 1–31 normal event, 32–47 resource unavailable, 48–63 service not
/// available, 64–127 not implemented / invalid / protocol / interworking).
/// `None` for 0 and above 127.
pub fn reason_for_q850(cause: u8) -> Option<EndReason> {
    Some(match cause {
        1..=3 | 22 => EndReason::NotFound,
        16 | 31 => EndReason::Normal,
        17 => EndReason::Busy,
        18 | 19 | 102 => EndReason::Timeout,
        20 | 27 => EndReason::Unreachable,
        21 => EndReason::Forbidden,
        24 => EndReason::AnonymousNotAllowed,
        28 => EndReason::BadDialString,
        58 | 65 | 70 | 88 => EndReason::MediaIncompatible,
        4..=31 => EndReason::Normal,
        48..=63 => EndReason::Forbidden,
        32..=47 | 64..=127 => EndReason::ServerError,
        _ => return None,
    })
}

/// The end reason for a final response to an outgoing INVITE (RFC 3261
/// §21; RFC 3398 §8.2.6.1 guided the choices). An unknown code counts as
/// the `x00` of its class (RFC 3261 §8.1.3.2). Redirects are not followed,
/// so 3xx is [`EndReason::Unreachable`]; a provisional or invalid code is
/// [`EndReason::ServerError`].
pub fn reason_for_status(code: u16) -> EndReason {
    match code {
        200..=299 => EndReason::Normal,
        300..=399 => EndReason::Unreachable,
        401 | 402 | 403 | 407 | 603 => EndReason::Forbidden,
        404 | 410 | 604 => EndReason::NotFound,
        408 | 504 => EndReason::Timeout,
        414 => EndReason::DialStringTooLong,
        415 | 488 | 606 => EndReason::MediaIncompatible,
        433 => EndReason::AnonymousNotAllowed,
        480 | 503 => EndReason::Unreachable,
        484 | 485 => EndReason::BadDialString,
        486 | 600..=699 => EndReason::Busy,
        487 => EndReason::Cancelled,
        _ => EndReason::ServerError,
    }
}

/// The end reason a `Reason` header value gives (RFC 3326 §2), e.g. on a
/// BYE or CANCEL: the first `Q.850` cause if any, else the first `SIP`
/// cause through [`reason_for_status`]. Several comma-separated values are
/// allowed; protocol and parameter names are case-insensitive. `None`
/// when neither protocol has a usable cause.
pub fn reason_from_header(value: &str) -> Option<EndReason> {
    let mut sip = None;
    for element in split_commas(value) {
        let mut parts = element.split(';');
        let protocol = parts.next().unwrap_or("").trim();
        let cause = parts.find_map(|p| {
            let (name, v) = p.split_once('=')?;
            name.trim().eq_ignore_ascii_case("cause").then(|| v.trim())
        });
        let Some(cause) = cause else { continue };
        if protocol.eq_ignore_ascii_case("Q.850") {
            if let Some(r) = cause.parse::<u8>().ok().and_then(reason_for_q850) {
                return Some(r);
            }
        } else if protocol.eq_ignore_ascii_case("SIP") && sip.is_none() {
            sip = cause
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=699).contains(c))
                .map(reason_for_status);
        }
    }
    sip
}

/// The standard reason phrase of a status code (RFC 3261 §21), or a
/// generic one for its class.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Quotes `s` as a `quoted-string`, escaping `"` and `\` and dropping
/// control characters.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits at commas outside quoted strings.
fn split_commas(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            parts.push(value.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    parts.push(value.get(start..).unwrap_or(""));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [EndReason; 23] = [
        EndReason::Normal,
        EndReason::Cancelled,
        EndReason::Busy,
        EndReason::NotFound,
        EndReason::Unreachable,
        EndReason::AnonymousNotAllowed,
        EndReason::Forbidden,
        EndReason::WrongPin,
        EndReason::PinAttemptsExhausted,
        EndReason::LockedOut { retry_after_secs: 300 },
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

    #[test]
    fn issue_requirements() {
        let code = |r| response_for_reason(r).code;
        assert_eq!(code(EndReason::NotFound), 404);
        assert_eq!(code(EndReason::Busy), 486);
        assert_eq!(code(EndReason::ConferenceFull), 486);
        assert_eq!(code(EndReason::MediaIncompatible), 488);
        assert_eq!(code(EndReason::AnonymousNotAllowed), 403);
        assert_eq!(code(EndReason::Timeout), 408);
        assert_eq!(code(EndReason::ServerShutdown), 503);
        assert_eq!(code(EndReason::ServerError), 500);
        assert_eq!(code(EndReason::Cancelled), 487);
        assert_eq!(code(EndReason::Unreachable), 480);
        assert_eq!(code(EndReason::BadDialString), 484);
        assert_eq!(code(EndReason::DialStringTooLong), 414);
        for r in [
            EndReason::WrongPin,
            EndReason::PinAttemptsExhausted,
            EndReason::LobbyRejected,
            EndReason::ConferenceLocked,
        ] {
            let f = response_for_reason(r);
            assert_eq!((f.code, f.reason_phrase), (403, "Forbidden"), "{r:?}");
            assert_eq!(f.warning.as_deref(), Some(r.to_string().as_str()));
            assert_eq!(f.retry_after, None);
        }
        let locked = response_for_reason(EndReason::LockedOut { retry_after_secs: 120 });
        assert_eq!((locked.code, locked.retry_after), (403, Some(120)));
        assert_eq!(
            locked.warning_header("gw.example.org").as_deref(),
            Some("399 gw.example.org \"too many failed attempts; try again in 120 s\"")
        );
    }

    #[test]
    fn headers_are_well_formed() {
        let pin = response_for_reason(EndReason::WrongPin);
        assert_eq!(pin.reason_header.as_deref(), Some("Q.850;cause=21;text=\"wrong PIN\""));
        assert_eq!(
            pin.warning_header("10.0.0.1").as_deref(),
            Some("399 10.0.0.1 \"wrong PIN\"")
        );
        let media = response_for_reason(EndReason::MediaIncompatible);
        assert!(media.warning_header("h").is_some_and(|w| w.starts_with("305 h \"")));
        assert_eq!(response_for_reason(EndReason::Busy).warning_header("h"), None);
        assert_eq!(quoted("a\"b\\c\r\n"), "\"a\\\"b\\\\c\"");
        for r in ALL {
            let f = response_for_reason(r);
            assert!((400..700).contains(&f.code), "{r:?}");
            assert_eq!(f.reason_phrase, reason_phrase(f.code));
            assert!(
                !["Client Error", "Server Error", "Global Failure"].contains(&f.reason_phrase),
                "{r:?}: {} needs its specific phrase",
                f.code
            );
            // Our own Reason header parses back as its Q.850 cause reads.
            let header = f.reason_header.expect("reason header");
            assert!(
                header.starts_with(&format!("Q.850;cause={};text=\"", q850_cause(r))),
                "{header}"
            );
            assert_eq!(
                reason_from_header(&header),
                reason_for_q850(q850_cause(r)),
                "{r:?} -> {header}"
            );
        }
    }

    #[test]
    fn q850_round_trips_where_unambiguous() {
        for r in [
            EndReason::Normal,
            EndReason::Busy,
            EndReason::NotFound,
            EndReason::Unreachable,
            EndReason::AnonymousNotAllowed,
            EndReason::Forbidden,
            EndReason::BadDialString,
            EndReason::MediaIncompatible,
            EndReason::Timeout,
            EndReason::ServerError,
        ] {
            assert_eq!(reason_for_q850(q850_cause(r)), Some(r), "{r:?}");
        }
        assert_eq!(q850_cause(EndReason::WrongPin), 21);
        assert_eq!(q850_cause(EndReason::LockedOut { retry_after_secs: 1 }), 21);
    }

    #[test]
    fn reverse_mappings() {
        assert_eq!(reason_for_q850(16), Some(EndReason::Normal));
        assert_eq!(reason_for_q850(17), Some(EndReason::Busy));
        assert_eq!(reason_for_q850(1), Some(EndReason::NotFound));
        assert_eq!(reason_for_q850(18), Some(EndReason::Timeout));
        assert_eq!(reason_for_q850(19), Some(EndReason::Timeout));
        assert_eq!(reason_for_q850(21), Some(EndReason::Forbidden));
        assert_eq!(reason_for_q850(31), Some(EndReason::Normal));
        for c in [34, 38, 41, 42, 47, 111, 127] {
            assert_eq!(reason_for_q850(c), Some(EndReason::ServerError), "{c}");
        }
        assert_eq!(reason_for_q850(26), Some(EndReason::Normal));
        assert_eq!(reason_for_q850(57), Some(EndReason::Forbidden));
        assert_eq!(reason_for_q850(0), None);
        assert_eq!(reason_for_q850(128), None);

        assert_eq!(reason_for_status(200), EndReason::Normal);
        assert_eq!(reason_for_status(302), EndReason::Unreachable);
        assert_eq!(reason_for_status(403), EndReason::Forbidden);
        assert_eq!(reason_for_status(407), EndReason::Forbidden);
        assert_eq!(reason_for_status(404), EndReason::NotFound);
        assert_eq!(reason_for_status(604), EndReason::NotFound);
        assert_eq!(reason_for_status(408), EndReason::Timeout);
        assert_eq!(reason_for_status(480), EndReason::Unreachable);
        assert_eq!(reason_for_status(484), EndReason::BadDialString);
        assert_eq!(reason_for_status(486), EndReason::Busy);
        assert_eq!(reason_for_status(600), EndReason::Busy);
        assert_eq!(reason_for_status(487), EndReason::Cancelled);
        assert_eq!(reason_for_status(488), EndReason::MediaIncompatible);
        assert_eq!(reason_for_status(606), EndReason::MediaIncompatible);
        assert_eq!(reason_for_status(603), EndReason::Forbidden);
        assert_eq!(reason_for_status(500), EndReason::ServerError);
        assert_eq!(reason_for_status(499), EndReason::ServerError);
        assert_eq!(reason_for_status(699), EndReason::Busy);
        assert_eq!(reason_for_status(180), EndReason::ServerError);
        assert_eq!(reason_for_status(0), EndReason::ServerError);
    }

    #[test]
    fn reason_header_parsing() {
        assert_eq!(
            reason_from_header("Q.850;cause=16;text=\"Terminated\""),
            Some(EndReason::Normal)
        );
        assert_eq!(reason_from_header("q.850 ; CAUSE = 17"), Some(EndReason::Busy));
        // Q.850 wins over SIP whatever the order; commas inside text are not separators.
        assert_eq!(
            reason_from_header("SIP;cause=486;text=\"busy, really\", Q.850;cause=1;text=\"a, b\""),
            Some(EndReason::NotFound)
        );
        assert_eq!(
            reason_from_header("SIP;cause=487;text=\"x\""),
            Some(EndReason::Cancelled)
        );
        assert_eq!(
            reason_from_header("SIP;cause=200;text=\"Call completed elsewhere\""),
            Some(EndReason::Normal)
        );
        assert_eq!(
            reason_from_header("Q.850;cause=999, SIP;cause=404"),
            Some(EndReason::NotFound)
        );
        assert_eq!(reason_from_header("Q.850;text=\"no cause\""), None);
        assert_eq!(reason_from_header("SIP;cause=42"), None);
        assert_eq!(reason_from_header("preemption;cause=1"), None);
        assert_eq!(reason_from_header(""), None);
    }
}
