//! The dial-string grammar, after TrueConf's call strings.

use std::fmt;
use std::str::FromStr;

use crate::ids::{validate_conference_id, validate_server, validate_user, IdError, TrueConfId};
use crate::reason::EndReason;

/// Most digits in a bare number or a `#tel:` number.
pub const MAX_DIGITS: usize = 32;
/// Most characters in a `#h323:` alias.
pub const MAX_H323_ALIAS_LEN: usize = 64;
/// Most characters of an unknown scheme quoted back in an error.
const MAX_QUOTED_SCHEME: usize = 32;

/// What a caller dialed, parsed into one of the forms of the grammar.
///
/// | text                                   | value                     |
/// |----------------------------------------|---------------------------|
/// | empty or only whitespace               | [`CallString::Empty`]      |
/// | `\c\<conference-id>`                   | [`CallString::Conference`] |
/// | `<user>`, `<user>@<server>`            | [`CallString::Account`]    |
/// | `#sip:<user>@<host>`, `#sip:<host>`    | [`CallString::Sip`]        |
/// | `#h323:<alias>@<host>`, `#h323:<host>` | [`CallString::H323`]       |
/// | `#tel:<number>`                        | [`CallString::Tel`]        |
/// | 1 to 32 ASCII digits                   | [`CallString::Digits`]     |
///
/// Parsing ([`CallString::parse`]) never panics. Every value it returns is in
/// canonical form: conference ids, account users, servers and hosts
/// lowercase, ports without leading zeros, schemes lowercase. `Display`
/// writes that canonical text, so `CallString::parse(&x.to_string()) ==
/// Ok(x)` for every parsed `x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallString {
    /// Nothing dialed (empty or only whitespace): the caller dialed only the
    /// server's address.
    Empty,
    /// `\c\<conference-id>`: a conference, id lowercase.
    Conference(String),
    /// `<user>` or `<user>@<server>`: an account, both parts lowercase. A
    /// parsed `Account` without a server never has an all-digit user (that
    /// text is [`CallString::Digits`]).
    Account {
        /// User part ([`validate_user`] rules), lowercase.
        user: String,
        /// Server ([`validate_server`] rules), lowercase; `None` when not
        /// given.
        server: Option<String>,
    },
    /// `#sip:<user>@<host>` or `#sip:<host>`; host may carry `:port`.
    Sip {
        /// RFC 3261 §25.1 `user`: letters, digits, `-_.!~*'()&=+$,;?/` and
        /// `%HH` escapes. Kept as written: SIP user parts are case-sensitive
        /// (RFC 3261 §19.1.4).
        user: Option<String>,
        /// Server name ([`validate_server`] rules), lowercase, optionally
        /// followed by `:port` (1-65535, no leading zeros).
        host: String,
    },
    /// `#h323:<alias>@<host>` or `#h323:<host>`; host may carry `:port`.
    H323 {
        /// H.323 alias: 1-64 printable characters other than whitespace and
        /// `@` (control characters and invisible zero-width or bidirectional
        /// formatting characters are not printable), kept as written.
        alias: Option<String>,
        /// Server name ([`validate_server`] rules), lowercase, optionally
        /// followed by `:port` (1-65535, no leading zeros).
        host: String,
    },
    /// `#tel:<number>`: an optional leading `+`, then 1-32 of `0-9`, `*`,
    /// `#`. The value holds the number without the scheme.
    Tel(String),
    /// 1-32 bare ASCII digits: a conference id, an account number or a
    /// gateway route; the router decides.
    Digits(String),
}

/// Why a dial string was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallStringError {
    /// The input is longer than [`CallString::MAX_LEN`] bytes.
    TooLong,
    /// A `#scheme:` other than `#sip:`, `#h323:` or `#tel:`; holds the
    /// scheme as written (at most 32 characters of it).
    UnknownScheme(String),
    /// An account user, server or conference id broke its rule.
    BadId(IdError),
    /// The user part of a `#sip:` address is empty or has a character RFC
    /// 3261 does not allow there.
    BadSipUser,
    /// The alias of a `#h323:` address is empty, too long or has a
    /// whitespace, control, invisible formatting or `@` character.
    BadH323Alias,
    /// The host of a `#sip:` or `#h323:` address is not a server name.
    BadHost,
    /// The `:port` of a host is not a number from 1 to 65535.
    BadPort,
    /// The number of a `#tel:` address is not `+`? then 1-32 of `0-9*#`.
    BadTelNumber,
    /// Bare digits longer than 32.
    TooManyDigits,
}

impl CallStringError {
    /// The [`EndReason`] to refuse a call with for this error:
    /// [`EndReason::DialStringTooLong`] or [`EndReason::BadDialString`].
    pub fn end_reason(&self) -> EndReason {
        match self {
            CallStringError::TooLong => EndReason::DialStringTooLong,
            _ => EndReason::BadDialString,
        }
    }
}

impl fmt::Display for CallStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallStringError::TooLong => write!(f, "dial string is longer than {} bytes", CallString::MAX_LEN),
            CallStringError::UnknownScheme(scheme) => write!(
                f,
                "unknown scheme '{}' (expected #sip:, #h323: or #tel:)",
                scheme.escape_debug()
            ),
            CallStringError::BadId(e) => fmt::Display::fmt(e, f),
            CallStringError::BadSipUser => f.write_str(
                "bad user part in #sip: address: must be 1 or more of Latin letters, \
                 digits, -_.!~*'()&=+$,;?/ or %HH escapes",
            ),
            CallStringError::BadH323Alias => f.write_str(
                "bad alias in #h323: address: must be 1-64 printable characters \
                 other than space and '@'",
            ),
            CallStringError::BadHost => f.write_str(
                "bad host: must be a domain name, IPv4 address or bracketed IPv6 \
                 address, optionally followed by ':port'",
            ),
            CallStringError::BadPort => f.write_str("bad port: must be a number from 1 to 65535"),
            CallStringError::BadTelNumber => {
                f.write_str("bad #tel: number: must be an optional '+' then 1-32 of 0-9, '*' or '#'")
            }
            CallStringError::TooManyDigits => f.write_str("dialed number is longer than 32 digits"),
        }
    }
}

impl std::error::Error for CallStringError {}

impl From<IdError> for CallStringError {
    fn from(e: IdError) -> Self {
        CallStringError::BadId(e)
    }
}

impl CallString {
    /// Longest accepted input, in bytes, counted before trimming. Longer
    /// input is [`CallStringError::TooLong`] whatever it holds.
    pub const MAX_LEN: usize = 512;

    /// Parses a dial string. Never panics, on any input.
    ///
    /// Surrounding whitespace is ignored; schemes (`#sip:`, `#h323:`,
    /// `#tel:`) and the `\c\` prefix are case-insensitive.
    pub fn parse(s: &str) -> Result<CallString, CallStringError> {
        if s.len() > Self::MAX_LEN {
            return Err(CallStringError::TooLong);
        }
        let s = s.trim();
        if s.is_empty() {
            return Ok(CallString::Empty);
        }
        if let Some(id) = strip_prefix_ignore_case(s, "\\c\\") {
            validate_conference_id(id)?;
            return Ok(CallString::Conference(id.to_ascii_lowercase()));
        }
        if s.starts_with('#') {
            return parse_scheme(s);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            if s.len() > MAX_DIGITS {
                return Err(CallStringError::TooManyDigits);
            }
            return Ok(CallString::Digits(s.to_owned()));
        }
        match s.split_once('@') {
            Some((user, server)) => {
                validate_user(user)?;
                if server.is_empty() {
                    return Err(IdError::MissingServer.into());
                }
                validate_server(server)?;
                Ok(CallString::Account {
                    user: user.to_ascii_lowercase(),
                    server: Some(server.to_ascii_lowercase()),
                })
            }
            None => {
                validate_user(s)?;
                Ok(CallString::Account {
                    user: s.to_ascii_lowercase(),
                    server: None,
                })
            }
        }
    }

    /// Whether nothing was dialed.
    pub fn is_empty(&self) -> bool {
        matches!(self, CallString::Empty)
    }
}

impl From<&TrueConfId> for CallString {
    fn from(id: &TrueConfId) -> Self {
        CallString::Account {
            user: id.user().to_owned(),
            server: Some(id.server().to_owned()),
        }
    }
}

impl From<TrueConfId> for CallString {
    fn from(id: TrueConfId) -> Self {
        CallString::from(&id)
    }
}

impl FromStr for CallString {
    type Err = CallStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallString::parse(s)
    }
}

impl fmt::Display for CallString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallString::Empty => Ok(()),
            CallString::Conference(id) => write!(f, "\\c\\{id}"),
            CallString::Account { user, server } => match server {
                Some(server) => write!(f, "{user}@{server}"),
                None => f.write_str(user),
            },
            CallString::Sip { user, host } => match user {
                Some(user) => write!(f, "#sip:{user}@{host}"),
                None => write!(f, "#sip:{host}"),
            },
            CallString::H323 { alias, host } => match alias {
                Some(alias) => write!(f, "#h323:{alias}@{host}"),
                None => write!(f, "#h323:{host}"),
            },
            CallString::Tel(number) => write!(f, "#tel:{number}"),
            CallString::Digits(digits) => f.write_str(digits),
        }
    }
}

/// `s` without `prefix`, compared ASCII-case-insensitively.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Parses a `#scheme:rest` string.
fn parse_scheme(s: &str) -> Result<CallString, CallStringError> {
    if let Some(rest) = strip_prefix_ignore_case(s, "#sip:") {
        return match rest.split_once('@') {
            Some((user, host)) => {
                validate_sip_user(user)?;
                Ok(CallString::Sip {
                    user: Some(user.to_owned()),
                    host: parse_host_port(host)?,
                })
            }
            None => Ok(CallString::Sip {
                user: None,
                host: parse_host_port(rest)?,
            }),
        };
    }
    if let Some(rest) = strip_prefix_ignore_case(s, "#h323:") {
        return match rest.split_once('@') {
            Some((alias, host)) => {
                validate_h323_alias(alias)?;
                Ok(CallString::H323 {
                    alias: Some(alias.to_owned()),
                    host: parse_host_port(host)?,
                })
            }
            None => Ok(CallString::H323 {
                alias: None,
                host: parse_host_port(rest)?,
            }),
        };
    }
    if let Some(rest) = strip_prefix_ignore_case(s, "#tel:") {
        validate_tel_number(rest)?;
        return Ok(CallString::Tel(rest.to_owned()));
    }
    let scheme = match s.find(':') {
        Some(colon) => &s[..=colon],
        None => s,
    };
    Err(CallStringError::UnknownScheme(
        scheme.chars().take(MAX_QUOTED_SCHEME).collect(),
    ))
}

/// RFC 3261 §25.1: `user = 1*( unreserved / escaped / user-unreserved )`.
fn validate_sip_user(user: &str) -> Result<(), CallStringError> {
    let bytes = user.as_bytes();
    if bytes.is_empty() {
        return Err(CallStringError::BadSipUser);
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escaped = bytes
                .get(i + 1..i + 3)
                .is_some_and(|hh| hh.iter().all(u8::is_ascii_hexdigit));
            if !escaped {
                return Err(CallStringError::BadSipUser);
            }
            i += 3;
            continue;
        }
        // unreserved = alphanum / mark; mark = "-" / "_" / "." / "!" / "~" /
        // "*" / "'" / "(" / ")"; user-unreserved = "&" / "=" / "+" / "$" /
        // "," / ";" / "?" / "/"
        let allowed = b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
        if !allowed {
            return Err(CallStringError::BadSipUser);
        }
        i += 1;
    }
    Ok(())
}

/// An H.323 alias: 1-64 printable characters other than whitespace and `@`.
fn validate_h323_alias(alias: &str) -> Result<(), CallStringError> {
    let mut count = 0usize;
    for c in alias.chars() {
        count += 1;
        if count > MAX_H323_ALIAS_LEN || c.is_control() || c.is_whitespace() || is_invisible_format(c) || c == '@' {
            return Err(CallStringError::BadH323Alias);
        }
    }
    if count == 0 {
        return Err(CallStringError::BadH323Alias);
    }
    Ok(())
}

/// Invisible formatting characters that would let an alias hide or reorder
/// text in logs and user interfaces: zero-width characters, bidirectional
/// embeddings, overrides and isolates, word joiners and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// `#tel:` number: `+`? then 1-32 of `0-9*#`.
fn validate_tel_number(number: &str) -> Result<(), CallStringError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = (1..=MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if ok {
        Ok(())
    } else {
        Err(CallStringError::BadTelNumber)
    }
}

/// `server [":" port]`, returned in canonical form (lowercase host, port
/// without leading zeros).
fn parse_host_port(s: &str) -> Result<String, CallStringError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(close) => {
                let (host, after) = s.split_at(close + 1);
                if after.is_empty() {
                    (host, None)
                } else {
                    (host, Some(after.strip_prefix(':').ok_or(CallStringError::BadHost)?))
                }
            }
            None => return Err(CallStringError::BadHost),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    validate_server(host).map_err(|_| CallStringError::BadHost)?;
    let mut out = host.to_ascii_lowercase();
    if let Some(port) = port {
        out.push(':');
        out.push_str(&parse_port(port)?.to_string());
    }
    Ok(out)
}

/// A port: 1-5 ASCII digits with a value from 1 to 65535.
fn parse_port(s: &str) -> Result<u16, CallStringError> {
    if !(1..=5).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CallStringError::BadPort);
    }
    match s.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(CallStringError::BadPort),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn account(user: &str, server: Option<&str>) -> CallString {
        CallString::Account {
            user: user.into(),
            server: server.map(Into::into),
        }
    }

    fn sip(user: Option<&str>, host: &str) -> CallString {
        CallString::Sip {
            user: user.map(Into::into),
            host: host.into(),
        }
    }

    fn h323(alias: Option<&str>, host: &str) -> CallString {
        CallString::H323 {
            alias: alias.map(Into::into),
            host: host.into(),
        }
    }

    #[test]
    fn valid_forms() {
        let conf128 = "C".repeat(128);
        let conf128_lower = "c".repeat(128);
        let conf128_text = format!("\\c\\{conf128}");
        let conf128_canon = format!("\\c\\{conf128_lower}");
        let digits32 = "9".repeat(32);
        let user64 = "U".repeat(64);
        let user64_lower = "u".repeat(64);
        let alias64 = "a".repeat(64);
        let alias64_text = format!("#h323:{alias64}@gk");
        let tel32 = format!("#tel:+{}", "1".repeat(32));
        let max_len = format!("x@b{}", " ".repeat(CallString::MAX_LEN - 3));
        let table: Vec<(&str, CallString, &str)> = vec![
            // (input, value, canonical text)
            ("", CallString::Empty, ""),
            ("   \t\r\n ", CallString::Empty, ""),
            ("\\c\\room_1", CallString::Conference("room_1".into()), "\\c\\room_1"),
            ("\\C\\Room_1", CallString::Conference("room_1".into()), "\\c\\room_1"),
            ("  \\c\\ROOM  ", CallString::Conference("room".into()), "\\c\\room"),
            ("\\c\\0042", CallString::Conference("0042".into()), "\\c\\0042"),
            (
                &conf128_text,
                CallString::Conference(conf128_lower.clone()),
                &conf128_canon,
            ),
            ("alice", account("alice", None), "alice"),
            ("Alice.Smith", account("alice.smith", None), "alice.smith"),
            ("alice@example.com", account("alice", Some("example.com")), ""),
            (
                "ALICE@Example.COM",
                account("alice", Some("example.com")),
                "alice@example.com",
            ),
            ("bob@10.0.0.1", account("bob", Some("10.0.0.1")), ""),
            (
                "bob@[2001:DB8::1]",
                account("bob", Some("[2001:db8::1]")),
                "bob@[2001:db8::1]",
            ),
            ("123@server", account("123", Some("server")), "123@server"),
            ("a1", account("a1", None), "a1"),
            ("1.5", account("1.5", None), "1.5"),
            (&user64, account(&user64_lower, None), &user64_lower),
            ("#sip:alice@pbx.example", sip(Some("alice"), "pbx.example"), ""),
            (
                "#SIP:Alice@PBX.Example",
                sip(Some("Alice"), "pbx.example"),
                "#sip:Alice@pbx.example",
            ),
            ("#Sip:pbx.example", sip(None, "pbx.example"), "#sip:pbx.example"),
            ("#sip:+7495;x=1@trunk:5060", sip(Some("+7495;x=1"), "trunk:5060"), ""),
            ("#sip:a%20b@h", sip(Some("a%20b"), "h"), ""),
            ("#sip:-_.!~*'()&=+$,;?/@h", sip(Some("-_.!~*'()&=+$,;?/"), "h"), ""),
            ("#sip:bob@[::1]:5061", sip(Some("bob"), "[::1]:5061"), ""),
            ("#sip:[::1]", sip(None, "[::1]"), ""),
            ("#sip:host:05060", sip(None, "host:5060"), "#sip:host:5060"),
            ("#sip:host:65535", sip(None, "host:65535"), ""),
            ("#h323:room@gk.example", h323(Some("room"), "gk.example"), ""),
            (
                "#H323:Room@GK.Example:1720",
                h323(Some("Room"), "gk.example:1720"),
                "#h323:Room@gk.example:1720",
            ),
            ("#h323:10.0.0.5", h323(None, "10.0.0.5"), ""),
            ("#h323:Zała#1:x@gk", h323(Some("Zała#1:x"), "gk"), ""),
            (&alias64_text, h323(Some(&alias64), "gk"), ""),
            ("#tel:+74951234567", CallString::Tel("+74951234567".into()), ""),
            ("#TEL:*21#", CallString::Tel("*21#".into()), "#tel:*21#"),
            ("#tel:5", CallString::Tel("5".into()), ""),
            (&tel32, CallString::Tel(tel32[5..].into()), ""),
            ("5", CallString::Digits("5".into()), ""),
            ("0042", CallString::Digits("0042".into()), ""),
            ("  12345 ", CallString::Digits("12345".into()), "12345"),
            (&digits32, CallString::Digits(digits32.clone()), ""),
            (&max_len, account("x", Some("b")), "x@b"),
        ];
        for (input, want, canonical) in table {
            let got = CallString::parse(input);
            assert_eq!(got.as_ref(), Ok(&want), "parse({input:?})");
            let text = want.to_string();
            let canonical = if canonical.is_empty() && want != CallString::Empty {
                input
            } else {
                canonical
            };
            assert_eq!(text, canonical, "display of parse({input:?})");
            assert_eq!(CallString::parse(&text), Ok(want.clone()), "{text:?}");
            assert_eq!(text.parse::<CallString>(), Ok(want), "FromStr {text:?}");
        }
    }

    #[test]
    fn invalid_forms() {
        use CallStringError as E;
        let too_long = "a".repeat(CallString::MAX_LEN + 1);
        let too_long_ws = format!("alice{}", " ".repeat(CallString::MAX_LEN));
        let digits33 = "1".repeat(33);
        let tel33 = format!("#tel:{}", "1".repeat(33));
        let user65 = "u".repeat(65);
        let conf129 = format!("\\c\\{}", "c".repeat(129));
        let alias65 = format!("#h323:{}@gk", "a".repeat(65));
        let long_scheme = format!("#{}:x", "s".repeat(100));
        let table: Vec<(&str, CallStringError)> = vec![
            (&too_long, E::TooLong),
            (&too_long_ws, E::TooLong),
            (&digits33, E::TooManyDigits),
            (&user65, E::BadId(IdError::BadUser)),
            ("al ice", E::BadId(IdError::BadUser)),
            ("alice!", E::BadId(IdError::BadUser)),
            ("ålice", E::BadId(IdError::BadUser)),
            ("+74951234567", E::BadId(IdError::BadUser)),
            ("12#", E::BadId(IdError::BadUser)),
            ("@server", E::BadId(IdError::BadUser)),
            ("@", E::BadId(IdError::BadUser)),
            ("alice@", E::BadId(IdError::MissingServer)),
            ("alice@bad_server", E::BadId(IdError::BadServer)),
            ("alice@server:5060", E::BadId(IdError::BadServer)),
            ("alice@a..b", E::BadId(IdError::BadServer)),
            ("alice@b@c", E::BadId(IdError::BadServer)),
            ("alice@[::1", E::BadId(IdError::BadServer)),
            ("\\c\\", E::BadId(IdError::BadConferenceId)),
            ("\\c\\room-1", E::BadId(IdError::BadConferenceId)),
            ("\\c\\room 1", E::BadId(IdError::BadConferenceId)),
            ("\\c\\röom", E::BadId(IdError::BadConferenceId)),
            (&conf129, E::BadId(IdError::BadConferenceId)),
            ("\\x\\room", E::BadId(IdError::BadUser)),
            ("#foo:bar", E::UnknownScheme("#foo:".into())),
            ("#", E::UnknownScheme("#".into())),
            ("#sipx:a@b", E::UnknownScheme("#sipx:".into())),
            ("#123", E::UnknownScheme("#123".into())),
            (&long_scheme, E::UnknownScheme(long_scheme[..32].into())),
            ("#sip:", E::BadHost),
            ("#sip:@host", E::BadSipUser),
            ("#sip:a b@host", E::BadSipUser),
            ("#sip:a%2@host", E::BadSipUser),
            ("#sip:a%zz@host", E::BadSipUser),
            ("#sip:a<b@host", E::BadSipUser),
            ("#sip:alice@", E::BadHost),
            ("#sip:alice@ho_st", E::BadHost),
            ("#sip:alice@::1", E::BadHost),
            ("#sip:alice@[::1", E::BadHost),
            ("#sip:alice@[::1]x", E::BadHost),
            ("#sip:alice@[zz]", E::BadHost),
            ("#sip:alice@b@c", E::BadHost),
            ("#sip:host:", E::BadPort),
            ("#sip:host:0", E::BadPort),
            ("#sip:host:65536", E::BadPort),
            ("#sip:host:123456", E::BadPort),
            ("#sip:host:50a", E::BadPort),
            ("#sip:host:5060:1", E::BadPort),
            ("#sip:[::1]:", E::BadPort),
            ("#h323:", E::BadHost),
            ("#h323:@gk", E::BadH323Alias),
            ("#h323:a b@gk", E::BadH323Alias),
            ("#h323:a\u{7}@gk", E::BadH323Alias),
            ("#h323:a\u{202E}b@gk", E::BadH323Alias),
            ("#h323:\u{200B}@gk", E::BadH323Alias),
            (&alias65, E::BadH323Alias),
            ("#h323:room@", E::BadHost),
            ("#h323:room@gk:99999", E::BadPort),
            ("#tel:", E::BadTelNumber),
            ("#tel:+", E::BadTelNumber),
            ("#tel:+12a", E::BadTelNumber),
            ("#tel:++12", E::BadTelNumber),
            ("#tel:12-34", E::BadTelNumber),
            ("#tel:1 2", E::BadTelNumber),
            (&tel33, E::BadTelNumber),
        ];
        for (input, want) in table {
            assert_eq!(CallString::parse(input), Err(want), "parse({input:?})");
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            CallStringError::TooLong.to_string(),
            "dial string is longer than 512 bytes"
        );
        let e = CallString::parse("#foo:x").unwrap_err();
        assert!(e.to_string().starts_with("unknown scheme '#foo:'"), "{e}");
        let e = CallString::parse("al ice").unwrap_err();
        assert!(e.to_string().starts_with("user part must be"), "{e}");
        let e = CallString::parse("#sip:@h").unwrap_err();
        assert!(e.to_string().starts_with("bad user part"), "{e}");
        let e = CallString::parse("#x\n:").unwrap_err();
        assert!(e.to_string().contains("#x\\n:"), "control chars escaped: {e}");
        assert_eq!(CallStringError::TooLong.end_reason(), EndReason::DialStringTooLong);
        assert_eq!(CallStringError::BadHost.end_reason(), EndReason::BadDialString);
    }

    #[test]
    fn from_trueconf_id() {
        let id = TrueConfId::new("Alice", "Example.com").unwrap();
        let cs = CallString::from(&id);
        assert_eq!(cs, account("alice", Some("example.com")));
        assert_eq!(CallString::parse(&id.to_string()), Ok(cs));
        assert!(CallString::Empty.is_empty());
    }

    /// Strings that look like dial strings, to reach the valid forms often.
    fn dialish() -> impl Strategy<Value = String> {
        let prefix = prop_oneof![
            Just(""),
            Just("\\c\\"),
            Just("\\C\\"),
            Just("#sip:"),
            Just("#SIP:"),
            Just("#h323:"),
            Just("#H323:"),
            Just("#tel:"),
            Just("#tel:+"),
            Just("#foo:"),
            Just("#"),
        ];
        let body = "[ \t]{0,2}[A-Za-z0-9_.%+*#-]{0,12}(@[A-Za-z0-9.\\[\\]:-]{0,20})?[ ]{0,2}";
        (prefix, body).prop_map(|(p, b)| format!("{p}{b}"))
    }

    /// Valid call strings built from their parts.
    fn valid_call_string() -> impl Strategy<Value = CallString> {
        let host = prop_oneof![
            "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,3}",
            Just("[::1]".to_owned()),
            Just("10.0.0.1".to_owned()),
        ];
        let host_port = (host.clone(), proptest::option::of(1u16..)).prop_map(|(h, p)| match p {
            Some(p) => format!("{h}:{p}"),
            None => h,
        });
        prop_oneof![
            Just(CallString::Empty),
            "[a-z0-9_]{1,128}".prop_map(CallString::Conference),
            ("[a-z0-9._-]{0,63}[a-z._-]", proptest::option::of(host.clone()))
                .prop_map(|(user, server)| CallString::Account { user, server }),
            (
                proptest::option::of("([A-Za-z0-9!~*'()&=+$,;?/._-]|%[0-9a-fA-F]{2}){1,20}"),
                host_port.clone()
            )
                .prop_map(|(user, host)| CallString::Sip { user, host }),
            (proptest::option::of("[^\\s@\\p{Cc}\\p{Cf}]{1,64}"), host_port)
                .prop_map(|(alias, host)| CallString::H323 { alias, host }),
            "\\+?[0-9*#]{1,32}".prop_map(CallString::Tel),
            "[0-9]{1,32}".prop_map(CallString::Digits),
        ]
    }

    fn check_round_trip(input: &str) -> Result<(), TestCaseError> {
        if let Ok(x) = CallString::parse(input) {
            let text = x.to_string();
            prop_assert!(text.len() <= input.len());
            prop_assert_eq!(CallString::parse(&text), Ok(x));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_strings(s in any::<String>()) {
            check_round_trip(&s)?;
        }

        #[test]
        fn parse_never_panics_on_lossy_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..700)
        ) {
            check_round_trip(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn round_trip_on_dial_like_strings(s in dialish()) {
            check_round_trip(&s)?;
        }

        #[test]
        fn valid_values_round_trip(x in valid_call_string()) {
            let text = x.to_string();
            prop_assert_eq!(CallString::parse(&text), Ok(x));
        }
    }
}
