//! DTMF in SIP INFO bodies (RFC 6086 carries them; the formats are vendor
//! conventions).
//!
//! - `application/dtmf-relay` (Cisco's format, the most common):
//!   `Signal=5\r\nDuration=160\r\n`. Parsing is tolerant: keys in any case,
//!   spaces around `=`, LF or CRLF line ends, unknown lines ignored, a missing
//!   `Duration` reads as [`DEFAULT_DURATION_MS`].
//! - `application/dtmf`: the body is just the digit (`5`).
//!
//! Digits are `0`–`9`, `*`, `#` and `A`–`D` (lowercase accepted). Some
//! devices send RFC 4733 event codes instead (§3.2, table 1): `10` is `*`,
//! `11` is `#` and `12`–`15` are `A`–`D`; these are accepted and mapped.
//! Digits are returned as uppercase characters.

/// The `Content-Type` of Cisco-style DTMF relay bodies.
pub const CONTENT_TYPE_DTMF_RELAY: &str = "application/dtmf-relay";

/// The `Content-Type` of single-digit DTMF bodies.
pub const CONTENT_TYPE_DTMF: &str = "application/dtmf";

/// Duration assumed when a body gives none, in milliseconds.
pub const DEFAULT_DURATION_MS: u32 = 250;

/// Longest INFO body parsed (bytes); DTMF bodies are a few dozen bytes.
pub const MAX_BODY_LEN: usize = 1024;

/// Longest duration accepted, in milliseconds; longer values are clamped
/// to it (a key held for a minute is not a digit the IVR can use).
pub const MAX_DURATION_MS: u32 = 60_000;

/// One DTMF digit received in an INFO request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfInfo {
    /// `0`–`9`, `*`, `#` or `A`–`D`.
    pub digit: char,
    /// How long the key was pressed, in milliseconds (at most
    /// [`MAX_DURATION_MS`]).
    pub duration_ms: u32,
}

/// Why an INFO body was not understood. The driver answers 415 for
/// [`InfoError::UnsupportedContentType`] (RFC 6086 §4.2.2, with `Accept`)
/// and 400 otherwise.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// The body is longer than [`MAX_BODY_LEN`].
    #[error("body too long ({0} bytes)")]
    TooLong(usize),
    /// The body is not UTF-8 text.
    #[error("body is not text")]
    NotText,
    /// No `Signal` line (dtmf-relay) or an empty body (dtmf).
    #[error("no Signal in the body")]
    MissingSignal,
    /// The signal is not a DTMF digit or event code.
    #[error("Signal `{0}` is not a DTMF digit")]
    BadSignal(String),
    /// `Duration` is not a number of milliseconds.
    #[error("Duration `{0}` is not a number of milliseconds")]
    BadDuration(String),
    /// A `Content-Type` other than the two DTMF ones.
    #[error("unsupported INFO content type `{0}`")]
    UnsupportedContentType(String),
}

impl InfoError {
    /// The SIP status to answer the INFO with: 415 or 400.
    pub fn status(&self) -> u16 {
        match self {
            InfoError::UnsupportedContentType(_) => 415,
            _ => 400,
        }
    }
}

fn text(body: &[u8]) -> Result<&str, InfoError> {
    if body.len() > MAX_BODY_LEN {
        return Err(InfoError::TooLong(body.len()));
    }
    std::str::from_utf8(body).map_err(|_| InfoError::NotText)
}

/// The digit a signal names: one of `0-9 * # A-D` (case-insensitive), or an
/// RFC 4733 event code `0`–`15`.
pub fn digit_from_signal(signal: &str) -> Option<char> {
    let s = signal.trim();
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
        (Some(c), None) if matches!(c.to_ascii_uppercase(), 'A'..='D') => Some(c.to_ascii_uppercase()),
        _ => match s {
            "10" => Some('*'),
            "11" => Some('#'),
            "12" => Some('A'),
            "13" => Some('B'),
            "14" => Some('C'),
            "15" => Some('D'),
            _ => None,
        },
    }
}

/// Parses an `application/dtmf-relay` body: `Signal=<digit>` and optional
/// `Duration=<ms>` lines (see the module docs for the tolerances). The
/// first `Signal` and `Duration` lines count.
pub fn parse_dtmf_relay(body: &[u8]) -> Result<DtmfInfo, InfoError> {
    let text = text(body)?;
    let mut digit = None;
    let mut duration = None;
    for line in text.split('\n') {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key.eq_ignore_ascii_case("Signal") && digit.is_none() {
            digit = Some(digit_from_signal(value).ok_or_else(|| InfoError::BadSignal(value.to_owned()))?);
        } else if key.eq_ignore_ascii_case("Duration") && duration.is_none() {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InfoError::BadDuration(value.to_owned()));
            }
            duration = Some(value.parse::<u32>().unwrap_or(MAX_DURATION_MS).min(MAX_DURATION_MS));
        }
    }
    Ok(DtmfInfo {
        digit: digit.ok_or(InfoError::MissingSignal)?,
        duration_ms: duration.unwrap_or(DEFAULT_DURATION_MS),
    })
}

/// Parses an `application/dtmf` body: the digit alone (surrounding
/// whitespace ignored); the duration is [`DEFAULT_DURATION_MS`].
pub fn parse_dtmf(body: &[u8]) -> Result<DtmfInfo, InfoError> {
    let text = text(body)?.trim();
    if text.is_empty() {
        return Err(InfoError::MissingSignal);
    }
    let digit = digit_from_signal(text).ok_or_else(|| InfoError::BadSignal(text.to_owned()))?;
    Ok(DtmfInfo {
        digit,
        duration_ms: DEFAULT_DURATION_MS,
    })
}

/// Parses an INFO body by its `Content-Type` value (media type compared
/// case-insensitively, parameters ignored, RFC 3261 §20.15).
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Result<DtmfInfo, InfoError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(CONTENT_TYPE_DTMF_RELAY) {
        parse_dtmf_relay(body)
    } else if media.eq_ignore_ascii_case(CONTENT_TYPE_DTMF) {
        parse_dtmf(body)
    } else {
        Err(InfoError::UnsupportedContentType(media.to_owned()))
    }
}

/// An `application/dtmf-relay` body for `digit`: `Signal=<digit>\r\n
/// Duration=<ms>\r\n`. Lowercase `a`–`d` are sent uppercase. The caller
/// passes a digit from `0-9 * # A-D`; anything else is sent as given.
pub fn dtmf_relay_body(digit: char, duration_ms: u32) -> String {
    format!("Signal={}\r\nDuration={duration_ms}\r\n", digit.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(digit: char, duration_ms: u32) -> DtmfInfo {
        DtmfInfo { digit, duration_ms }
    }

    #[test]
    fn cisco_format_and_tolerances() {
        assert_eq!(parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n"), Ok(info('5', 160)));
        assert_eq!(parse_dtmf_relay(b"Signal=5\r\nDuration=160"), Ok(info('5', 160)));
        assert_eq!(parse_dtmf_relay(b"signal = #\nDURATION= 100\n"), Ok(info('#', 100)));
        assert_eq!(
            parse_dtmf_relay(b"  Signal=\t*  \r\n"),
            Ok(info('*', DEFAULT_DURATION_MS))
        );
        assert_eq!(
            parse_dtmf_relay(b"Foo=bar\r\nSignal=b\r\nDuration=90\r\n"),
            Ok(info('B', 90))
        );
        assert_eq!(parse_dtmf_relay(b"Signal=10\r\nDuration=90"), Ok(info('*', 90)));
        assert_eq!(parse_dtmf_relay(b"Signal=11\r\nDuration=90"), Ok(info('#', 90)));
        assert_eq!(parse_dtmf_relay(b"Signal=15"), Ok(info('D', DEFAULT_DURATION_MS)));
        assert_eq!(
            parse_dtmf_relay(b"Signal=1\nDuration=99999999999"),
            Ok(info('1', MAX_DURATION_MS))
        );
    }

    #[test]
    fn relay_errors() {
        assert_eq!(parse_dtmf_relay(b"Duration=100"), Err(InfoError::MissingSignal));
        assert_eq!(parse_dtmf_relay(b""), Err(InfoError::MissingSignal));
        assert_eq!(parse_dtmf_relay(b"Signal=E"), Err(InfoError::BadSignal("E".into())));
        assert_eq!(parse_dtmf_relay(b"Signal=16"), Err(InfoError::BadSignal("16".into())));
        assert_eq!(parse_dtmf_relay(b"Signal=55"), Err(InfoError::BadSignal("55".into())));
        assert_eq!(parse_dtmf_relay(b"Signal="), Err(InfoError::BadSignal(String::new())));
        assert_eq!(
            parse_dtmf_relay(b"Signal=1\r\nDuration=-5"),
            Err(InfoError::BadDuration("-5".into()))
        );
        assert_eq!(parse_dtmf_relay(b"Signal=\xff"), Err(InfoError::NotText));
        let long = vec![b' '; MAX_BODY_LEN + 1];
        assert_eq!(parse_dtmf_relay(&long), Err(InfoError::TooLong(MAX_BODY_LEN + 1)));
        assert_eq!(InfoError::MissingSignal.status(), 400);
    }

    #[test]
    fn single_digit_bodies_and_dispatch() {
        assert_eq!(parse_dtmf(b"7"), Ok(info('7', DEFAULT_DURATION_MS)));
        assert_eq!(parse_dtmf(b" c\r\n"), Ok(info('C', DEFAULT_DURATION_MS)));
        assert_eq!(parse_dtmf(b""), Err(InfoError::MissingSignal));
        assert_eq!(parse_dtmf(b"77"), Err(InfoError::BadSignal("77".into())));
        assert_eq!(
            parse_info_body("Application/DTMF-Relay; charset=utf-8", b"Signal=3\r\nDuration=200"),
            Ok(info('3', 200))
        );
        assert_eq!(
            parse_info_body("application/dtmf", b"#"),
            Ok(info('#', DEFAULT_DURATION_MS))
        );
        let e = parse_info_body("application/media_control+xml", b"<x/>").expect_err("415");
        assert_eq!(
            e,
            InfoError::UnsupportedContentType("application/media_control+xml".into())
        );
        assert_eq!(e.status(), 415);
    }

    #[test]
    fn builder_round_trips() {
        assert_eq!(dtmf_relay_body('5', 160), "Signal=5\r\nDuration=160\r\n");
        for d in ['0', '9', '*', '#', 'A', 'D'] {
            assert_eq!(parse_dtmf_relay(dtmf_relay_body(d, 120).as_bytes()), Ok(info(d, 120)));
        }
        assert_eq!(dtmf_relay_body('a', 1), "Signal=A\r\nDuration=1\r\n");
    }
}
