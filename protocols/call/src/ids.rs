//! Handles (`LegId`, `ParticipantId`), the identifier rules (user part,
//! conference id, server name) and the TrueConf-style account id.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Handle of one leg: one endpoint's part in a call, whatever its protocol.
///
/// Legs are referred to by handle, never by reference; the owner of the leg
/// table hands them out. Displayed as `leg-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// Handle of one participant of a conference. Displayed as `p-<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p-{}", self.0)
    }
}

/// Longest user part, in characters (all allowed characters are ASCII).
pub const MAX_USER_LEN: usize = 64;
/// Longest conference id, in characters (all allowed characters are ASCII).
pub const MAX_CONFERENCE_ID_LEN: usize = 128;
/// Longest server name, in characters (RFC 1035 §2.3.4 limits a name to 255
/// octets on the wire, which is 253 characters of text).
pub const MAX_SERVER_LEN: usize = 253;
/// Longest label of a domain name (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// An identifier broke its rule. Each message names the field and the rule.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdError {
    /// The user part is empty, longer than 64 characters or has a character
    /// other than `[A-Za-z0-9._-]`.
    BadUser,
    /// The conference id is empty, longer than 128 characters or has a
    /// character other than `[A-Za-z0-9_]`.
    BadConferenceId,
    /// The server is neither a domain name / IPv4 address nor a bracketed
    /// IPv6 address (a `:port` suffix is not part of a server name).
    BadServer,
    /// `user@` with nothing after the `@`, or an account id without the
    /// `@server` part where one is required.
    MissingServer,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::BadUser => "user part must be 1-64 characters of Latin letters, digits, '.', '_' or '-'",
            IdError::BadConferenceId => "conference id must be 1-128 characters of Latin letters, digits or '_'",
            IdError::BadServer => {
                "server must be a domain name or IPv4 address of at most 253 characters \
                 (dot-separated labels of 1-63 Latin letters, digits or '-', not starting \
                 or ending with '-') or a bracketed IPv6 address, without a port"
            }
            IdError::MissingServer => "server part is missing: an account id must be written user@server",
        })
    }
}

impl std::error::Error for IdError {}

/// Checks a user part: 1..=64 characters of `[A-Za-z0-9._-]`.
///
/// User parts compare case-insensitively; the types of this crate store them
/// lowercase.
pub fn validate_user(user: &str) -> Result<(), IdError> {
    let ok = (1..=MAX_USER_LEN).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadUser)
    }
}

/// Checks a conference id: 1..=128 characters of `[A-Za-z0-9_]`.
///
/// Conference ids compare case-insensitively; the types of this crate store
/// them lowercase.
pub fn validate_conference_id(id: &str) -> Result<(), IdError> {
    let ok =
        (1..=MAX_CONFERENCE_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::BadConferenceId)
    }
}

/// Checks a server name: a domain name or IPv4 address, or a bracketed IPv6
/// literal (`[2001:db8::1]`).
///
/// A domain name is 1..=253 characters of labels separated by `.`; each label
/// is 1..=63 characters of `[A-Za-z0-9-]` and neither starts nor ends with
/// `-` (RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1). A dotted IPv4 address
/// is a domain name by these rules. An optional `:port` is *not* part of a
/// server name and is refused here.
pub fn validate_server(server: &str) -> Result<(), IdError> {
    if server.is_empty() || server.len() > MAX_SERVER_LEN {
        return Err(IdError::BadServer);
    }
    if let Some(inner) = server.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(IdError::BadServer)?;
        return inner.parse::<Ipv6Addr>().map(|_| ()).map_err(|_| IdError::BadServer);
    }
    let label_ok = |label: &str| {
        (1..=MAX_LABEL_LEN).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if server.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(IdError::BadServer)
    }
}

/// A TrueConf-style account id, `user@server`.
///
/// Both parts are validated ([`validate_user`], [`validate_server`]) and
/// stored lowercase, so equality and hashing are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrueConfId {
    user: String,
    server: String,
}

impl TrueConfId {
    /// Builds an account id from its two parts, lowercasing both.
    pub fn new(user: &str, server: &str) -> Result<Self, IdError> {
        validate_user(user)?;
        validate_server(server)?;
        Ok(TrueConfId {
            user: user.to_ascii_lowercase(),
            server: server.to_ascii_lowercase(),
        })
    }

    /// Parses `user@server`, or a bare `user` which then belongs to
    /// `home_server`. Surrounding whitespace is ignored.
    ///
    /// `user@` (nothing after the `@`) is [`IdError::MissingServer`].
    pub fn parse(s: &str, home_server: &str) -> Result<Self, IdError> {
        let s = s.trim();
        match s.split_once('@') {
            Some((user, server)) => {
                validate_user(user)?;
                if server.is_empty() {
                    return Err(IdError::MissingServer);
                }
                TrueConfId::new(user, server)
            }
            None => TrueConfId::new(s, home_server),
        }
    }

    /// The user part, lowercase.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server part, lowercase.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether this account belongs to `home_server` (compared
    /// case-insensitively).
    pub fn is_local(&self, home_server: &str) -> bool {
        self.server.eq_ignore_ascii_case(home_server)
    }
}

impl fmt::Display for TrueConfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.server)
    }
}

impl FromStr for TrueConfId {
    type Err = IdError;

    /// Parses `user@server`; unlike [`TrueConfId::parse`] the server part is
    /// required ([`IdError::MissingServer`] without it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once('@') {
            Some(_) => TrueConfId::parse(s, ""),
            None => {
                validate_user(s)?;
                Err(IdError::MissingServer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn handles_display() {
        assert_eq!(LegId(7).to_string(), "leg-7");
        assert_eq!(ParticipantId(0).to_string(), "p-0");
        assert!(LegId(1) < LegId(2));
    }

    #[test]
    fn user_rule() {
        let long64 = "a".repeat(64);
        let long65 = "a".repeat(65);
        let table: &[(&str, bool)] = &[
            ("alice", true),
            ("Alice.Smith_2-x", true),
            ("0", true),
            (&long64, true),
            (&long65, false),
            ("", false),
            ("al ice", false),
            ("al@ice", false),
            ("alïce", false),
            ("alice+1", false),
            ("\\c\\x", false),
        ];
        for (input, ok) in table {
            assert_eq!(validate_user(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn conference_id_rule() {
        let long128 = "c".repeat(128);
        let long129 = "c".repeat(129);
        let table: &[(&str, bool)] = &[
            ("room_1", true),
            ("ROOM", true),
            (&long128, true),
            (&long129, false),
            ("", false),
            ("room-1", false),
            ("room.1", false),
            ("room 1", false),
        ];
        for (input, ok) in table {
            assert_eq!(validate_conference_id(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn server_rule() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        let name254 = format!("{name253}b");
        assert_eq!(name253.len(), 253);
        let table: &[(&str, bool)] = &[
            ("example.com", true),
            ("Example.COM", true),
            ("localhost", true),
            ("10.0.0.1", true),
            ("my-server.example", true),
            ("[::1]", true),
            ("[2001:DB8::1]", true),
            ("[::ffff:10.0.0.1]", true),
            (&label63, true),
            (&label64, false),
            (&name253, true),
            (&name254, false),
            ("", false),
            ("example.com:5060", false),
            ("[::1]:5060", false),
            ("::1", false),
            ("[::1", false),
            ("[not-v6]", false),
            ("[]", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("-a.b", false),
            ("a-.b", false),
            ("a_b.c", false),
            ("a b", false),
            ("exämple.com", false),
        ];
        for (input, ok) in table {
            assert_eq!(validate_server(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn trueconf_id_parse_table() {
        let long64 = "u".repeat(64);
        let long65 = "u".repeat(65);
        let full64 = format!("{long64}@srv");
        let full65 = format!("{long65}@srv");
        type Want<'a> = Result<(&'a str, &'a str), IdError>;
        let table: &[(&str, Want<'_>)] = &[
            ("alice", Ok(("alice", "home.example"))),
            ("  alice  ", Ok(("alice", "home.example"))),
            ("ALICE", Ok(("alice", "home.example"))),
            ("alice@other.example", Ok(("alice", "other.example"))),
            ("Alice@Other.EXAMPLE", Ok(("alice", "other.example"))),
            ("bob@[::1]", Ok(("bob", "[::1]"))),
            ("bob@10.1.2.3", Ok(("bob", "10.1.2.3"))),
            (&long64, Ok((&long64, "home.example"))),
            (&full64, Ok((&long64, "srv"))),
            (&long65, Err(IdError::BadUser)),
            (&full65, Err(IdError::BadUser)),
            ("", Err(IdError::BadUser)),
            ("@server", Err(IdError::BadUser)),
            ("al ice", Err(IdError::BadUser)),
            ("al!ce@server", Err(IdError::BadUser)),
            ("alice@", Err(IdError::MissingServer)),
            ("alice@bad_server", Err(IdError::BadServer)),
            ("alice@server:5060", Err(IdError::BadServer)),
            ("alice@b@c", Err(IdError::BadServer)),
        ];
        for (input, want) in table {
            let got = TrueConfId::parse(input, "Home.Example");
            let got = got.as_ref().map(|id| (id.user(), id.server())).map_err(|e| *e);
            assert_eq!(got, want.clone(), "{input:?}");
        }
    }

    #[test]
    fn trueconf_id_bad_home_server() {
        assert_eq!(TrueConfId::parse("alice", "bad server"), Err(IdError::BadServer));
        assert_eq!(TrueConfId::parse("alice", ""), Err(IdError::BadServer));
        // An explicit server does not look at the home server.
        assert!(TrueConfId::parse("alice@srv", "").is_ok());
    }

    #[test]
    fn trueconf_id_case_insensitive() {
        let a = TrueConfId::new("Alice", "Example.COM").unwrap();
        let b: TrueConfId = "alice@example.com".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "alice@example.com");
        assert!(a.is_local("EXAMPLE.com"));
        assert!(!a.is_local("example.org"));
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
    }

    #[test]
    fn trueconf_id_from_str_requires_server() {
        assert_eq!("alice".parse::<TrueConfId>(), Err(IdError::MissingServer));
        assert_eq!("alice@".parse::<TrueConfId>(), Err(IdError::MissingServer));
        assert_eq!("a lice".parse::<TrueConfId>(), Err(IdError::BadUser));
        assert_eq!("alice@srv".parse::<TrueConfId>().unwrap().to_string(), "alice@srv");
        let id: TrueConfId = "x@y".parse().unwrap();
        assert_eq!(id.to_string().parse::<TrueConfId>(), Ok(id));
    }

    #[test]
    fn id_error_messages_name_field_and_rule() {
        assert_eq!(
            IdError::BadUser.to_string(),
            "user part must be 1-64 characters of Latin letters, digits, '.', '_' or '-'"
        );
        assert_eq!(
            IdError::BadConferenceId.to_string(),
            "conference id must be 1-128 characters of Latin letters, digits or '_'"
        );
        assert!(IdError::BadServer.to_string().starts_with("server must be"));
        assert!(IdError::MissingServer.to_string().contains("user@server"));
    }
}
