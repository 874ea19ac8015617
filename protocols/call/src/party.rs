//! Who is on a leg: the protocol, the identity and the remote address.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::ids::TrueConfId;

/// The protocol a leg speaks. Displayed lowercase (`sip`, `h323`, `webrtc`,
/// `loopback`, `federation`), the same token [`Protocol::as_str`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// SIP phones and trunks (RFC 3261).
    Sip,
    /// H.323 room systems (ITU-T H.323, H.225.0, H.245).
    H323,
    /// The web client in a browser.
    WebRtc,
    /// Local endpoints (bots, recorders, test clients) over a unix socket.
    Loopback,
    /// Another confgate server.
    Federation,
}

impl Protocol {
    /// Every protocol, in declaration order.
    pub const ALL: [Protocol; 5] = [
        Protocol::Sip,
        Protocol::H323,
        Protocol::WebRtc,
        Protocol::Loopback,
        Protocol::Federation,
    ];

    /// The lowercase token: `sip`, `h323`, `webrtc`, `loopback`,
    /// `federation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sip => "sip",
            Protocol::H323 => "h323",
            Protocol::WebRtc => "webrtc",
            Protocol::Loopback => "loopback",
            Protocol::Federation => "federation",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is none of [`Protocol::as_str`]'s tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownProtocol;

impl fmt::Display for UnknownProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("protocol must be one of sip, h323, webrtc, loopback, federation")
    }
}

impl std::error::Error for UnknownProtocol {}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    /// Parses a token of [`Protocol::as_str`], case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownProtocol)
    }
}

/// Who a party is: an authenticated account, or an anonymous caller known
/// only by the name it gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An authenticated account (local or, over federation, remote).
    Account(TrueConfId),
    /// An unauthenticated caller.
    Anonymous {
        /// The name the caller gave (may be empty). Personal data: log it
        /// through [`crate::Pii`].
        display_name: String,
    },
}

/// One endpoint of a leg: who it is, how it speaks and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Party {
    /// Authenticated account or anonymous caller.
    pub identity: Identity,
    /// The display name the endpoint sent, if any (SIP `From` display name,
    /// H.225 `display`, the web client's name field). Personal data.
    pub display_name: Option<String>,
    /// The protocol of the leg.
    pub protocol: Protocol,
    /// The remote signaling address, when there is one (not for loopback).
    pub remote: Option<SocketAddr>,
}

impl Party {
    /// A party authenticated as `account`, without display name or address.
    pub fn authenticated(account: TrueConfId, protocol: Protocol) -> Party {
        Party {
            identity: Identity::Account(account),
            display_name: None,
            protocol,
            remote: None,
        }
    }

    /// An anonymous party called `display_name`, without address.
    pub fn anonymous(display_name: impl Into<String>, protocol: Protocol) -> Party {
        Party {
            identity: Identity::Anonymous {
                display_name: display_name.into(),
            },
            display_name: None,
            protocol,
            remote: None,
        }
    }

    /// The name to show: the display name if one was sent and is not blank,
    /// else the account's user part, else the anonymous caller's name.
    pub fn display_name(&self) -> &str {
        match &self.display_name {
            Some(name) if !name.trim().is_empty() => name,
            _ => match &self.identity {
                Identity::Account(id) => id.user(),
                Identity::Anonymous { display_name } => display_name,
            },
        }
    }

    /// The authenticated account, if any.
    pub fn account(&self) -> Option<&TrueConfId> {
        match &self.identity {
            Identity::Account(id) => Some(id),
            Identity::Anonymous { .. } => None,
        }
    }

    /// Whether the party did not authenticate.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.identity, Identity::Anonymous { .. })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn protocol_tokens() {
        let names: Vec<String> = Protocol::ALL.iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["sip", "h323", "webrtc", "loopback", "federation"]);
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse::<Protocol>(), Ok(p));
            assert_eq!(p.as_str().to_uppercase().parse::<Protocol>(), Ok(p));
        }
        assert_eq!("xmpp".parse::<Protocol>(), Err(UnknownProtocol));
    }

    #[test]
    fn party_names() {
        let id = TrueConfId::new("alice", "example.com").unwrap();
        let mut p = Party::authenticated(id.clone(), Protocol::Sip);
        assert_eq!(p.display_name(), "alice");
        assert_eq!(p.account(), Some(&id));
        assert!(!p.is_anonymous());
        p.display_name = Some("Alice A.".into());
        assert_eq!(p.display_name(), "Alice A.");
        p.display_name = Some("  ".into());
        assert_eq!(p.display_name(), "alice");

        let mut anon = Party::anonymous("Guest", Protocol::WebRtc);
        assert_eq!(anon.display_name(), "Guest");
        assert!(anon.is_anonymous());
        assert_eq!(anon.account(), None);
        anon.display_name = Some("Visitor".into());
        assert_eq!(anon.display_name(), "Visitor");
        anon.remote = Some("192.0.2.1:5060".parse().unwrap());
        assert_eq!(anon.clone(), anon);
    }
}
