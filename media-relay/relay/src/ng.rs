//! The message layer of rtpengine's *ng* control protocol: parse a request
//! datagram into a [`Request`], encode a [`Response`] into a reply datagram.
//! No sockets here; the caller owns the UDP socket and the session state.
//!
//! # Wire format
//!
//! (Sources: rtpengine `docs/ng_control_protocol.md`; Kamailio 5.6.3
//! `src/modules/rtpengine/rtpengine.c`, functions `gencookie`,
//! `send_rtpp_command`, `parse_flags`, `rtpp_function_call`, `rtpp_test`.)
//!
//! One request per UDP datagram:
//!
//! ```text
//! <cookie> SP <bencoded dictionary>
//! ```
//!
//! The cookie is an opaque token without spaces that the proxy uses to match
//! the reply (and that a relay uses to recognise retransmissions). Kamailio
//! builds it as `<server_id>_<pid>_<sequence>`, e.g. `0_2745_17`. The reply is
//! the same cookie, one space, and a bencoded dictionary:
//!
//! ```text
//! 0_2745_17 d7:command4:pinge          request  { "command": "ping" }
//! 0_2745_17 d6:result4:ponge           reply    { "result": "pong" }
//! ```
//!
//! Every request has a `command` string. Every reply has a `result` string:
//! `pong` (only for `ping`), `ok` (with the rewritten `sdp` for offer and
//! answer, plus optional `warning` or statistics), `error` together with a
//! human-readable `error-reason` and no other key, or — only when the request
//! listed `load limit` under `supports` — `load limit` with an optional
//! `message`, which makes Kamailio try its next relay instead of failing.
//! Dictionary keys are *not* sorted on the wire (the ng documentation says the
//! bencode ordering rule is not honoured) and keys and values are
//! case-sensitive. rtpengine treats a space and a hyphen in key names and flag
//! words as the same character (`received from` = `received-from`); so does
//! this module, since Kamailio writes `delete delay` and OpenSIPS
//! `delete-delay`.
//!
//! # What Kamailio's `rtpengine` module sends
//!
//! Kamailio 5.6 parses the flag string of `rtpengine_offer("…")` etc. itself
//! and sends the result as dictionary keys, in this order:
//!
//! 1. `supports`: the list `["load limit"]` — always, for every command but ping.
//! 2. `sdp`: the SIP body — offer and answer only.
//! 3. `key=value` flags it does not know itself, as string entries in flag
//!    order: `ICE=remove` → `"ICE": "remove"`, `DTLS=off` → `"DTLS": "off"`,
//!    `media-address=…`, `address-family=IP6`; `TOS=n` → integer `TOS`;
//!    `delete-delay=n` → integer `delete delay`.
//! 4. `direction`: list, from `direction=…`, `internal`, `external`.
//! 5. `flags`: list of the bare words it does not know itself, verbatim:
//!    `trust-address`, `symmetric`, `asymmetric`, `strict-source`,
//!    `media-handover`, `SIP-source-address`, …
//! 6. `replace`: list; `replace-origin` → `origin`,
//!    `replace-session-connection` → `session-connection`.
//! 7. `codec`: dictionary of lists (`codec-strip=…` etc.).
//! 8. `transport-protocol`: from the words `RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`,
//!    `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, or combined from
//!    `RTP`/`SRTP`/`AVP`/`AVPF`/`DTLS`.
//! 9. `rtcp-mux`: list; `rtcp-mux-demux` → `demux` (also `offer`, `accept`,
//!    `reject`, `require`).
//! 10. `SDES`: list; `SDES-off` → `off`. `T.38`: list.
//! 11. `call-id`: the Call-ID (or the `call-id=` flag).
//! 12. `via-branch`: only with the `via-branch=1|2|auto|…` flag; the *value* of
//!     the selected Via branch parameter, e.g. `z9hG4bK776asdhds`.
//! 13. `received-from`: `["IP4", "<source address of the SIP message>"]` — always.
//! 14. `from-tag`, then `to-tag` if there is one. For an offer in a request, an
//!     answer in a reply, and delete/query, these are the From and To tags. For
//!     an answer in a request (ACK) or an offer in a reply they are swapped,
//!     so `from-tag` always names the side that sent the SDP. `delete` omits
//!     `to-tag` unless the `to-tag` flag is given.
//! 15. `command`: `offer`, `answer`, `delete`, `query` (also `ping`).
//!
//! The keep-alive ping is just `{ "command": "ping" }`. With no flags at all,
//! an INVITE's offer is therefore:
//!
//! ```text
//! { "supports": ["load limit"], "sdp": "v=0…", "call-id": "…",
//!   "received-from": ["IP4", "192.0.2.10"], "from-tag": "…", "command": "offer" }
//! ```
//!
//! OpenSIPS's `rtpengine` module sends the same keys without `supports`; it
//! leaves `SDES-off` as a word in `flags`, writes `delete-delay` and
//! `address family`, and converts `rtcp-mux-*` and `replace-*` like Kamailio.
//!
//! # What this module accepts
//!
//! Keys (spaces and hyphens interchangeable):
//!
//! | key | value | becomes |
//! |---|---|---|
//! | `command` | `ping` `offer` `answer` `delete` `query` | [`Request::command`] |
//! | `call-id`, `from-tag`, `to-tag`, `via-branch` | string | same-named fields |
//! | `sdp` | string (offer and answer only) | [`Request::sdp`] |
//! | `transport-protocol` | one of the six profiles above | [`Request::transport_protocol`] |
//! | `ICE` | `remove` (string or list) | [`Request::ice_remove`] |
//! | `DTLS` | `off`, `no`, `disable` | [`Request::dtls_off`] |
//! | `SDES` | list of `off`, `no`, `disable` | [`Request::sdes_off`] |
//! | `replace` | list of `origin`, `session-connection` | `replace_*` |
//! | `rtcp-mux` | list of `offer` `demux` `accept` `reject` `require` | [`Request::rtcp_mux`] |
//! | `flags` | list of flag words, below | various |
//! | `received-from` | `[IP4\|IP6, address]` | [`Request::received_from`] |
//! | `supports` | list of strings (recorded, any value) | [`Request::supports`] |
//! | `direction` | list of at most two interface names | [`Request::direction`] |
//! | `address-family` | `IP4`, `IP6` | [`Request::address_family`] |
//! | `media-address` | IP address | [`Request::media_address`] |
//! | `TOS` | integer −1…255 | [`Request::tos`] |
//! | `delete-delay` | integer ≥ 0 (or decimal string) | [`Request::delete_delay`] |
//!
//! Flag words: `trust-address`, `SIP-source-address`, `symmetric`,
//! `asymmetric`, `strict-source`, `media-handover`, `fatal`, `fast`, `to-tag`,
//! the six transport profile names, and the prefixed forms `SDES-…`,
//! `rtcp-mux-…` and `replace-…` with the values from the table.
//!
//! Anything else — another key (`codec`, `T.38`, `record call`, `label`,
//! `rtpp_flags`, …), another flag word (`fragment`, `unidirectional`, …) or
//! another value (`ICE=force`, `DTLS=passive`, `transport-protocol=accept`) —
//! is refused with [`NgError::UnsupportedOption`] naming it, so that an
//! operator sees at once that the relay would not do what the script asked
//! for. Nothing is ignored silently. Contradictory flags (`symmetric` with
//! `asymmetric`, `trust-address` with `SIP-source-address`, `strict-source`
//! with `media-handover`, more than one of `demux`/`accept`/`reject`, two
//! different transports) give [`NgError::ConflictingOptions`].
//!
//! JSON dictionaries (which rtpengine also accepts) are not supported.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::bencode::{self, BencodeError, OwnedValue, Value};

/// Longest accepted cookie. Kamailio's are at most 33 bytes.
pub const MAX_COOKIE_LEN: usize = 64;

/// The `command` of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Keep-alive; the reply is `pong`.
    Ping,
    /// An SDP offer to be rewritten; creates or updates the call.
    Offer,
    /// The SDP answer to be rewritten; requires `to-tag`.
    Answer,
    /// Tear down the call (or one branch or dialogue of it).
    Delete,
    /// Statistics of a running call.
    Query,
}

impl Command {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer => "offer",
            Command::Answer => "answer",
            Command::Delete => "delete",
            Command::Query => "query",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "ping" => Command::Ping,
            "offer" => Command::Offer,
            "answer" => Command::Answer,
            "delete" => Command::Delete,
            "query" => Command::Query,
            _ => return None,
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RTP profile, the `<proto>` of an SDP `m=` line (RFC 4566 §5.14,
/// RFC 3711 §12, RFC 4585 §9, RFC 5124 §6, RFC 5764 §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `RTP/AVP`: plain RTP, RFC 3551.
    RtpAvp,
    /// `RTP/SAVP`: SRTP keyed by SDES, RFC 3711.
    RtpSavp,
    /// `RTP/AVPF`: RTP with RTCP feedback, RFC 4585.
    RtpAvpf,
    /// `RTP/SAVPF`: SRTP with RTCP feedback, RFC 5124.
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP`: DTLS-SRTP, RFC 5764.
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF`: DTLS-SRTP with feedback (WebRTC), RFC 5764.
    UdpTlsRtpSavpf,
}

impl Transport {
    /// All profiles, in the order above.
    pub const ALL: [Transport; 6] = [
        Transport::RtpAvp,
        Transport::RtpSavp,
        Transport::RtpAvpf,
        Transport::RtpSavpf,
        Transport::UdpTlsRtpSavp,
        Transport::UdpTlsRtpSavpf,
    ];

    /// The SDP spelling, e.g. `RTP/SAVP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::RtpAvp => "RTP/AVP",
            Transport::RtpSavp => "RTP/SAVP",
            Transport::RtpAvpf => "RTP/AVPF",
            Transport::RtpSavpf => "RTP/SAVPF",
            Transport::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            Transport::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
        }
    }

    /// Whether media is SRTP (SDES or DTLS keyed).
    pub fn is_secure(self) -> bool {
        !matches!(self, Transport::RtpAvp | Transport::RtpAvpf)
    }

    /// Whether keys come from DTLS.
    pub fn is_dtls(self) -> bool {
        matches!(self, Transport::UdpTlsRtpSavp | Transport::UdpTlsRtpSavpf)
    }

    /// Whether the profile is a feedback (`…F`) profile.
    pub fn is_feedback(self) -> bool {
        matches!(
            self,
            Transport::RtpAvpf | Transport::RtpSavpf | Transport::UdpTlsRtpSavpf
        )
    }
}

/// The string is not one of the six RTP profile names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport protocol")]
pub struct UnknownTransport;

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// Parses the exact SDP spelling, e.g. `"RTP/SAVP"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(UnknownTransport)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `rtcp-mux` instruction (RFC 5761 multiplexing), as rtpengine defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtcpMux {
    /// Offer rtcp-mux to the recipient even if the sender did not.
    Offer,
    /// Accept rtcp-mux from the sender but do not offer it onwards.
    Demux,
    /// Accept rtcp-mux and offer it onwards if it was offered.
    Accept,
    /// Reject rtcp-mux from the sender.
    Reject,
    /// Like `Offer`, and behave as if the recipient had already accepted
    /// (no separate RTCP port advertised; for WebRTC).
    Require,
}

impl RtcpMux {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RtcpMux::Offer => "offer",
            RtcpMux::Demux => "demux",
            RtcpMux::Accept => "accept",
            RtcpMux::Reject => "reject",
            RtcpMux::Require => "require",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "offer" => RtcpMux::Offer,
            "demux" => RtcpMux::Demux,
            "accept" => RtcpMux::Accept,
            "reject" => RtcpMux::Reject,
            "require" => RtcpMux::Require,
            _ => return None,
        })
    }
}

/// An SDP address type: `IP4` or `IP6` (RFC 4566 §5.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl AddressFamily {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressFamily::Ip4 => "IP4",
            AddressFamily::Ip6 => "IP6",
        }
    }

    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Ip4,
            IpAddr::V6(_) => AddressFamily::Ip6,
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        match s {
            "IP4" => Some(AddressFamily::Ip4),
            "IP6" => Some(AddressFamily::Ip6),
            _ => None,
        }
    }
}

/// One parsed *ng* request. Fields not given in the request keep their
/// defaults (`None`, `false`, empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `command`.
    pub command: Command,
    /// `call-id`: the SIP Call-ID.
    pub call_id: Option<String>,
    /// `from-tag`: the tag of the side that sent this SDP.
    pub from_tag: Option<String>,
    /// `to-tag`: the tag of the other side.
    pub to_tag: Option<String>,
    /// `via-branch`: the Via branch value, to keep forked branches apart.
    pub via_branch: Option<String>,
    /// `sdp`: the SDP body (offer and answer).
    pub sdp: Option<String>,
    /// `transport-protocol`, or a bare profile word in `flags`: the profile
    /// to use towards the recipient. `None`: keep the one in the SDP.
    pub transport_protocol: Option<Transport>,
    /// `ICE=remove`: strip all ICE attributes and add none.
    pub ice_remove: bool,
    /// `DTLS=off|no|disable`: neither offer nor accept DTLS-SRTP.
    pub dtls_off: bool,
    /// `replace: [origin]`: rewrite the address in `o=`.
    pub replace_origin: bool,
    /// `replace: [session-connection]`: rewrite the session-level `c=`.
    pub replace_session_connection: bool,
    /// `rtcp-mux` instructions, in request order, without repeats.
    pub rtcp_mux: Vec<RtcpMux>,
    /// `symmetric` → `Some(true)`, `asymmetric` → `Some(false)`.
    pub symmetric: Option<bool>,
    /// `trust-address`: use the addresses in the SDP (the default anyway).
    pub trust_address: bool,
    /// `SIP-source-address`: ignore SDP addresses, use `received-from`.
    pub sip_source_address: bool,
    /// `strict-source`: drop media from unexpected source addresses.
    pub strict_source: bool,
    /// `media-handover`: follow media that arrives from a new source.
    pub media_handover: bool,
    /// `received-from`: `(address family, address)` of the SIP message's
    /// source, e.g. `("IP4", "192.0.2.10")`; validated on parse.
    pub received_from: Option<(String, String)>,
    /// `SDES=off|no|disable` (or flag `SDES-off`): do not offer SDES.
    pub sdes_off: bool,
    /// `supports`: extensions the proxy understands; Kamailio sends
    /// `["load limit"]`, permitting [`Response::LoadLimit`].
    pub supports: Vec<String>,
    /// `direction`: logical interface names, sender's side first.
    pub direction: Vec<String>,
    /// `address family`: the family the recipient expects.
    pub address_family: Option<AddressFamily>,
    /// `media address`: the address to put into the SDP for this side.
    pub media_address: Option<IpAddr>,
    /// `TOS`: IP TOS for the call's outgoing media; −1 keeps the current one.
    pub tos: Option<i16>,
    /// `delete delay`: seconds before a deleted call is forgotten.
    pub delete_delay: Option<u32>,
    /// Flag `fatal` (delete): unknown call is an error, not a warning.
    pub fatal: bool,
    /// Flag `fast` (delete): no statistics in the reply.
    pub fast: bool,
    /// Flag `to-tag` (delete): honour `to-tag`, deleting one dialogue only.
    pub to_tag_flag: bool,
}

impl Request {
    /// An empty request for `command`.
    pub fn new(command: Command) -> Self {
        Request {
            command,
            call_id: None,
            from_tag: None,
            to_tag: None,
            via_branch: None,
            sdp: None,
            transport_protocol: None,
            ice_remove: false,
            dtls_off: false,
            replace_origin: false,
            replace_session_connection: false,
            rtcp_mux: Vec::new(),
            symmetric: None,
            trust_address: false,
            sip_source_address: false,
            strict_source: false,
            media_handover: false,
            received_from: None,
            sdes_off: false,
            supports: Vec::new(),
            direction: Vec::new(),
            address_family: None,
            media_address: None,
            tos: None,
            delete_delay: None,
            fatal: false,
            fast: false,
            to_tag_flag: false,
        }
    }

    /// `received-from` as an address (it was validated on parse).
    pub fn received_from_addr(&self) -> Option<IpAddr> {
        self.received_from.as_ref().and_then(|(_, a)| a.parse().ok())
    }

    /// Whether the proxy accepts a `load limit` result.
    pub fn supports_load_limit(&self) -> bool {
        self.supports.iter().any(|s| s == "load limit")
    }

    /// Parses the dictionary of a request (without the cookie).
    ///
    /// # Errors
    ///
    /// See [`NgError`]; never ignores a key it does not understand.
    pub fn from_value(v: &Value<'_>) -> Result<Self, NgError> {
        let pairs = v.as_dict().ok_or(NgError::NotADictionary)?;
        let command = pairs
            .iter()
            .find(|(k, _)| normalize_bytes(k) == "command")
            .ok_or(NgError::MissingCommand)?;
        let command = string_value("command", &command.1)?;
        let command = Command::from_wire(command).ok_or_else(|| NgError::UnknownCommand {
            command: printable(command),
        })?;
        let mut req = Request::new(command);
        let mut seen: Vec<String> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let key = normalize_bytes(key);
            if seen.contains(&key) {
                return Err(NgError::DuplicateKey { key: printable(&key) });
            }
            req.apply(&key, value)?;
            seen.push(key);
        }
        req.check_conflicts()?;
        req.check_required()?;
        Ok(req)
    }

    fn apply(&mut self, key: &str, v: &Value<'_>) -> Result<(), NgError> {
        match key {
            "command" => {}
            "call-id" => self.call_id = Some(non_empty_string(key, v)?),
            "from-tag" => self.from_tag = Some(non_empty_string(key, v)?),
            "to-tag" => self.to_tag = Some(non_empty_string(key, v)?),
            "via-branch" => self.via_branch = Some(non_empty_string(key, v)?),
            "sdp" => {
                if !matches!(self.command, Command::Offer | Command::Answer) {
                    return Err(NgError::UnsupportedOption {
                        option: format!("sdp in {}", self.command),
                    });
                }
                self.sdp = Some(string_value(key, v)?.to_owned());
            }
            "transport-protocol" => {
                let s = string_value(key, v)?;
                let t = Transport::from_str(s).map_err(|_| unsupported(key, Some(s)))?;
                self.set_transport(t)?;
            }
            "ICE" => {
                for s in string_or_list(key, v)? {
                    match s {
                        "remove" => self.ice_remove = true,
                        other => return Err(unsupported("ICE", Some(other))),
                    }
                }
            }
            "DTLS" => match string_value(key, v)? {
                "off" | "no" | "disable" => self.dtls_off = true,
                other => return Err(unsupported("DTLS", Some(other))),
            },
            "SDES" => {
                for s in string_or_list(key, v)? {
                    self.sdes_option(s)?;
                }
            }
            "replace" => {
                for s in string_list(key, v)? {
                    self.replace_option(s)?;
                }
            }
            "rtcp-mux" => {
                for s in string_list(key, v)? {
                    self.rtcp_mux_option(s)?;
                }
            }
            "flags" => {
                for s in string_list(key, v)? {
                    self.flag(s)?;
                }
            }
            "received-from" => self.received_from = Some(received_from(key, v)?),
            "supports" => self.supports = string_list(key, v)?.into_iter().map(str::to_owned).collect(),
            "direction" => {
                let list = string_list(key, v)?;
                if list.len() > 2 {
                    return Err(invalid(key, "more than two interfaces"));
                }
                self.direction = list.into_iter().map(str::to_owned).collect();
            }
            "address-family" => {
                let s = string_value(key, v)?;
                self.address_family = Some(AddressFamily::from_wire(s).ok_or_else(|| invalid(key, "not IP4 or IP6"))?);
            }
            "media-address" => {
                let s = string_value(key, v)?;
                self.media_address = Some(s.parse().map_err(|_| invalid(key, "not an IP address"))?);
            }
            "TOS" => {
                let n = int_value(key, v)?;
                self.tos = Some(
                    i16::try_from(n)
                        .ok()
                        .filter(|n| (-1..=255).contains(n))
                        .ok_or_else(|| invalid(key, "not in -1..255"))?,
                );
            }
            "delete-delay" => {
                let n = int_value(key, v)?;
                self.delete_delay = Some(u32::try_from(n).map_err(|_| invalid(key, "not a number of seconds"))?);
            }
            other => return Err(unsupported(other, None)),
        }
        Ok(())
    }

    fn set_transport(&mut self, t: Transport) -> Result<(), NgError> {
        match self.transport_protocol {
            Some(old) if old != t => Err(NgError::ConflictingOptions {
                first: old.as_str().to_owned(),
                second: t.as_str().to_owned(),
            }),
            _ => {
                self.transport_protocol = Some(t);
                Ok(())
            }
        }
    }

    fn sdes_option(&mut self, s: &str) -> Result<(), NgError> {
        match s {
            "off" | "no" | "disable" => {
                self.sdes_off = true;
                Ok(())
            }
            other => Err(NgError::UnsupportedOption {
                option: printable(&format!("SDES-{other}")),
            }),
        }
    }

    fn replace_option(&mut self, s: &str) -> Result<(), NgError> {
        match normalize(s).as_str() {
            "origin" => self.replace_origin = true,
            "session-connection" => self.replace_session_connection = true,
            _ => {
                return Err(NgError::UnsupportedOption {
                    option: printable(&format!("replace-{s}")),
                })
            }
        }
        Ok(())
    }

    fn rtcp_mux_option(&mut self, s: &str) -> Result<(), NgError> {
        let m = RtcpMux::from_wire(s).ok_or_else(|| NgError::UnsupportedOption {
            option: printable(&format!("rtcp-mux-{s}")),
        })?;
        if !self.rtcp_mux.contains(&m) {
            self.rtcp_mux.push(m);
        }
        Ok(())
    }

    fn flag(&mut self, word: &str) -> Result<(), NgError> {
        let norm = normalize(word);
        match norm.as_str() {
            "trust-address" => self.trust_address = true,
            "SIP-source-address" => self.sip_source_address = true,
            "symmetric" => self.set_symmetric(true)?,
            "asymmetric" => self.set_symmetric(false)?,
            "strict-source" => self.strict_source = true,
            "media-handover" => self.media_handover = true,
            "fatal" => self.fatal = true,
            "fast" => self.fast = true,
            "to-tag" => self.to_tag_flag = true,
            _ => {
                if let Ok(t) = Transport::from_str(word) {
                    self.set_transport(t)?;
                } else if let Some(rest) = norm.strip_prefix("SDES-") {
                    self.sdes_option(rest)?;
                } else if let Some(rest) = norm.strip_prefix("rtcp-mux-") {
                    self.rtcp_mux_option(rest)?;
                } else if let Some(rest) = norm.strip_prefix("replace-") {
                    self.replace_option(rest)?;
                } else {
                    return Err(NgError::UnsupportedOption {
                        option: printable(word),
                    });
                }
            }
        }
        Ok(())
    }

    fn set_symmetric(&mut self, on: bool) -> Result<(), NgError> {
        if self.symmetric == Some(!on) {
            return Err(NgError::ConflictingOptions {
                first: "symmetric".into(),
                second: "asymmetric".into(),
            });
        }
        self.symmetric = Some(on);
        Ok(())
    }

    fn check_conflicts(&self) -> Result<(), NgError> {
        let conflict = |first: &str, second: &str| {
            Err(NgError::ConflictingOptions {
                first: first.to_owned(),
                second: second.to_owned(),
            })
        };
        if self.trust_address && self.sip_source_address {
            return conflict("trust-address", "SIP-source-address");
        }
        if self.strict_source && self.media_handover {
            return conflict("strict-source", "media-handover");
        }
        let exclusive: Vec<&RtcpMux> = self
            .rtcp_mux
            .iter()
            .filter(|m| matches!(m, RtcpMux::Demux | RtcpMux::Accept | RtcpMux::Reject))
            .collect();
        if let [a, b, ..] = exclusive[..] {
            return conflict(&format!("rtcp-mux-{}", a.as_str()), &format!("rtcp-mux-{}", b.as_str()));
        }
        Ok(())
    }

    fn check_required(&self) -> Result<(), NgError> {
        let need = |present: bool, key: &'static str| {
            if present {
                Ok(())
            } else {
                Err(NgError::MissingKey { key })
            }
        };
        match self.command {
            Command::Ping => Ok(()),
            Command::Offer | Command::Answer => {
                need(self.call_id.is_some(), "call-id")?;
                need(self.from_tag.is_some(), "from-tag")?;
                if self.command == Command::Answer {
                    need(self.to_tag.is_some(), "to-tag")?;
                }
                need(self.sdp.is_some(), "sdp")
            }
            Command::Delete => {
                need(self.call_id.is_some(), "call-id")?;
                need(self.from_tag.is_some(), "from-tag")
            }
            Command::Query => need(self.call_id.is_some(), "call-id"),
        }
    }
}

/// Why a datagram is not a request this relay will carry out. The
/// [`reason`](NgError::reason) goes back to the proxy as `error-reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// No `<cookie> SP` prefix (empty, too long, or with control characters).
    /// Without a cookie no reply can be sent.
    #[error("no message cookie")]
    NoCookie,
    /// The part after the cookie is not bencode.
    #[error("{0}")]
    Bencode(#[from] BencodeError),
    /// The bencoded value is not a dictionary.
    #[error("message is not a dictionary")]
    NotADictionary,
    /// No `command` key.
    #[error("no command in message")]
    MissingCommand,
    /// A command this relay does not implement.
    #[error("unknown command '{command}'")]
    UnknownCommand {
        /// The command, made printable.
        command: String,
    },
    /// A key that the command requires is absent.
    #[error("no {key} in message")]
    MissingKey {
        /// The key, e.g. `call-id`.
        key: &'static str,
    },
    /// The same key twice (after treating spaces as hyphens).
    #[error("duplicate key '{key}'")]
    DuplicateKey {
        /// The key, made printable.
        key: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("invalid value for '{key}': {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key, flag word or value this relay does not implement.
    #[error("unsupported option '{option}'")]
    UnsupportedOption {
        /// The key, flag word or `key=value`, made printable.
        option: String,
    },
    /// Two options that contradict each other.
    #[error("conflicting options '{first}' and '{second}'")]
    ConflictingOptions {
        /// The first option.
        first: String,
        /// The second option.
        second: String,
    },
}

impl NgError {
    /// The text for the reply's `error-reason`.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Splits `<cookie> SP <rest>`; `None` without a valid cookie.
fn split_cookie(d: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = d.iter().take(MAX_COOKIE_LEN + 1).position(|&b| b == b' ')?;
    let (cookie, rest) = (&d[..space], &d[space + 1..]);
    if cookie.is_empty() || !cookie.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some((cookie, rest))
}

/// The cookie of a datagram, to address an error reply when
/// [`parse_datagram`] fails. `None` if there is no valid cookie (then no
/// reply can be matched by the proxy and the datagram is best dropped).
pub fn cookie(d: &[u8]) -> Option<&[u8]> {
    split_cookie(d).map(|(c, _)| c)
}

/// Parses one request datagram: `<cookie> SP <bencoded dictionary>`.
///
/// # Errors
///
/// [`NgError`]: no cookie, bad bencode, not a dictionary, missing or
/// unknown command, missing required keys, or any unsupported option.
/// Use [`cookie`] to reply to a failed datagram.
pub fn parse_datagram(d: &[u8]) -> Result<(&[u8], Request), NgError> {
    let (cookie, body) = split_cookie(d).ok_or(NgError::NoCookie)?;
    let value = bencode::decode(body)?;
    let request = Request::from_value(&value)?;
    Ok((cookie, request))
}

/// A reply to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `{ "result": "pong" }`, the answer to `ping`.
    Pong,
    /// `{ "result": "ok", "sdp": …, <extra>… }`. `extra` is encoded in order
    /// after `sdp`; it must not contain `result` or `sdp` (e.g. `warning`,
    /// or the statistics of a delete or query).
    Ok {
        /// The rewritten SDP (offer, answer).
        sdp: Option<String>,
        /// Further keys.
        extra: Vec<(String, OwnedValue)>,
    },
    /// `{ "result": "error", "error-reason": … }`.
    Error {
        /// Human-readable reason.
        reason: String,
    },
    /// `{ "result": "load limit", "message": … }`: only for requests whose
    /// `supports` lists `load limit` ([`Request::supports_load_limit`]);
    /// Kamailio then tries its next relay.
    LoadLimit {
        /// Optional explanation.
        message: Option<String>,
    },
}

impl Response {
    /// The error reply for `e`.
    pub fn error(e: &NgError) -> Self {
        Response::Error { reason: e.reason() }
    }
}

/// Appends the reply datagram `<cookie> SP <bencoded dictionary>` to `out`.
pub fn encode_reply(cookie: &[u8], r: &Response, out: &mut Vec<u8>) {
    out.extend_from_slice(cookie);
    out.push(b' ');
    out.push(b'd');
    let pair = |key: &str, value: &[u8], out: &mut Vec<u8>| {
        bencode::encode_bytes(key.as_bytes(), out);
        bencode::encode_bytes(value, out);
    };
    match r {
        Response::Pong => pair("result", b"pong", out),
        Response::Ok { sdp, extra } => {
            pair("result", b"ok", out);
            if let Some(sdp) = sdp {
                pair("sdp", sdp.as_bytes(), out);
            }
            for (key, value) in extra {
                bencode::encode_bytes(key.as_bytes(), out);
                bencode::encode_owned(value, out);
            }
        }
        Response::Error { reason } => {
            pair("result", b"error", out);
            pair("error-reason", reason.as_bytes(), out);
        }
        Response::LoadLimit { message } => {
            pair("result", b"load limit", out);
            if let Some(m) = message {
                pair("message", m.as_bytes(), out);
            }
        }
    }
    out.push(b'e');
}

/// Spaces and hyphens are the same character in ng keys and flag words.
fn normalize(s: &str) -> String {
    s.replace(' ', "-")
}

fn normalize_bytes(b: &[u8]) -> String {
    normalize(&String::from_utf8_lossy(b))
}

/// Peer-supplied text for an error reason: printable ASCII, at most 64 chars.
fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut escaped = s.chars().flat_map(char::escape_default);
    let mut out: String = escaped.by_ref().take(MAX).collect();
    if escaped.next().is_some() {
        out.push('…');
    }
    out
}

fn unsupported(key: &str, value: Option<&str>) -> NgError {
    let option = match value {
        Some(v) => format!("{key}={v}"),
        None => key.to_owned(),
    };
    NgError::UnsupportedOption {
        option: printable(&option),
    }
}

fn invalid(key: &str, reason: &'static str) -> NgError {
    NgError::InvalidValue {
        key: printable(key),
        reason,
    }
}

fn string_value<'a>(key: &str, v: &Value<'a>) -> Result<&'a str, NgError> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| invalid(key, "not UTF-8")),
        _ => Err(invalid(key, "expected a string")),
    }
}

fn non_empty_string(key: &str, v: &Value<'_>) -> Result<String, NgError> {
    let s = string_value(key, v)?;
    if s.is_empty() {
        return Err(invalid(key, "empty"));
    }
    Ok(s.to_owned())
}

fn string_list<'a>(key: &str, v: &Value<'a>) -> Result<Vec<&'a str>, NgError> {
    match v {
        Value::List(items) => items.iter().map(|item| string_value(key, item)).collect(),
        _ => Err(invalid(key, "expected a list of strings")),
    }
}

fn string_or_list<'a>(key: &str, v: &Value<'a>) -> Result<Vec<&'a str>, NgError> {
    match v {
        Value::Bytes(_) => Ok(vec![string_value(key, v)?]),
        _ => string_list(key, v),
    }
}

/// An integer, or a decimal string (as some control agents send).
fn int_value(key: &str, v: &Value<'_>) -> Result<i64, NgError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Bytes(_) => string_value(key, v)?
            .parse()
            .map_err(|_| invalid(key, "not an integer")),
        _ => Err(invalid(key, "expected an integer")),
    }
}

fn received_from(key: &str, v: &Value<'_>) -> Result<(String, String), NgError> {
    let list = string_list(key, v)?;
    let [family, address] = list[..] else {
        return Err(invalid(key, "expected [family, address]"));
    };
    let family_parsed = AddressFamily::from_wire(family).ok_or_else(|| invalid(key, "family not IP4 or IP6"))?;
    let addr: IpAddr = address.parse().map_err(|_| invalid(key, "not an IP address"))?;
    if AddressFamily::of(addr) != family_parsed {
        return Err(invalid(key, "address does not match family"));
    }
    Ok((family.to_owned(), address.to_owned()))
}

/// Entry points for the fuzz targets: parse, and never panic.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Parses `data` as an ng datagram and encodes a reply for it.
    pub fn ng_datagram(data: &[u8]) {
        let mut out = Vec::new();
        match parse_datagram(data) {
            Ok((cookie, req)) => {
                let r = match req.command {
                    Command::Ping => Response::Pong,
                    _ => Response::Ok {
                        sdp: req.sdp.clone(),
                        extra: Vec::new(),
                    },
                };
                encode_reply(cookie, &r, &mut out);
                assert!(
                    bencode::decode(&out[cookie.len() + 1..]).is_ok(),
                    "reply must be valid bencode"
                );
            }
            Err(e) => {
                if let Some(c) = super::cookie(data) {
                    encode_reply(c, &Response::error(&e), &mut out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    // Datagrams as Kamailio 5.6's rtpengine module builds them (key order of
    // rtpp_function_call(): supports, sdp, key=value flags, flags, replace,
    // transport-protocol, rtcp-mux, SDES, call-id, via-branch, received-from,
    // from-tag, to-tag, command), cookie in its "<id>_<pid>_<seq>" form.

    /// `rtpengine_offer()` on an INVITE, no flags.
    const OFFER_DEFAULT: &[u8] = b"1_2745_17 d8:supportsl10:load limite3:sdp165:v=0\r\no=- 3912451872 3912451872 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017747:command5:offere";
    /// `rtpengine_offer("replace-origin replace-session-connection ICE=remove RTP/AVP")`.
    const OFFER_REPLACE_ICE_AVP: &[u8] = b"1_2745_17 d8:supportsl10:load limite3:sdp165:v=0\r\no=- 3912451872 3912451872 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n3:ICE6:remove7:replacel6:origin18:session-connectione18:transport-protocol7:RTP/AVP7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017747:command5:offere";
    /// `rtpengine_offer("RTP/SAVP DTLS=off rtcp-mux-demux trust-address symmetric via-branch=1 SDES-off")`.
    const OFFER_SAVP_DTLS_MUX_TRUST_SYM_VIA: &[u8] = b"1_2745_17 d8:supportsl10:load limite3:sdp165:v=0\r\no=- 3912451872 3912451872 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n4:DTLS3:off5:flagsl13:trust-address9:symmetrice18:transport-protocol8:RTP/SAVP8:rtcp-muxl5:demuxe4:SDESl3:offe7:call-id31:a84b4c76e66710@pc33.example.com10:via-branch16:z9hG4bK776asdhds13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017747:command5:offere";
    /// `rtpengine_answer("replace-origin replace-session-connection")` on the 200 OK.
    const ANSWER_200OK: &[u8] = b"1_2745_17 d8:supportsl10:load limite3:sdp151:v=0\r\no=- 8000 8001 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n7:replacel6:origin18:session-connectione7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP412:198.51.100.7e8:from-tag10:19283017746:to-tag6:3141597:command6:answere";
    /// `rtpengine_delete()` on a BYE: no to-tag.
    const DELETE_BYE: &[u8] = b"1_2745_17 d8:supportsl10:load limite7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017747:command6:deletee";
    /// `rtpengine_query()` inside the dialog.
    const QUERY: &[u8] = b"1_2745_17 d8:supportsl10:load limite7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017746:to-tag6:3141597:command5:querye";
    /// The module's keep-alive.
    const PING: &[u8] = b"1_2745_17 d7:command4:pinge";
    /// OpenSIPS style: no `supports`, `SDES-off` left in `flags`, `address family`, IPv6 source.
    const OPENSIPS_OFFER: &[u8] = b"1_2745_17 d3:sdp165:v=0\r\no=- 3912451872 3912451872 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n3:ICE6:remove5:flagsl13:trust-address8:SDES-off13:strict-sourcee7:replacel6:origin18:session-connectione18:transport-protocol7:RTP/AVP8:rtcp-muxl5:offer7:requiree14:address family3:IP47:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP612:2001:db8::10e8:from-tag10:19283017747:command5:offere";
    /// OpenSIPS `rtpengine_delete("delete-delay=0 fatal fast")`.
    const OPENSIPS_DELETE: &[u8] = b"1_2745_17 d12:delete-delayi0e5:flagsl5:fatal4:faste7:call-id31:a84b4c76e66710@pc33.example.com13:received-froml3:IP410:192.0.2.10e8:from-tag10:19283017747:command6:deletee";

    const CALL_ID: &str = "a84b4c76e66710@pc33.example.com";

    fn parse(d: &[u8]) -> Request {
        let (cookie, req) = parse_datagram(d).unwrap();
        assert_eq!(cookie, b"1_2745_17");
        req
    }

    fn err(d: &[u8]) -> NgError {
        parse_datagram(d).unwrap_err()
    }

    /// A request datagram from a dictionary body.
    fn dgram(body: &str) -> Vec<u8> {
        format!("c1 {body}").into_bytes()
    }

    #[test]
    fn ng_ping() {
        let (cookie, req) = parse_datagram(PING).unwrap();
        assert_eq!(cookie, b"1_2745_17");
        assert_eq!(req, Request::new(Command::Ping));
    }

    #[test]
    fn ng_offer_default() {
        let req = parse(OFFER_DEFAULT);
        assert_eq!(req.command, Command::Offer);
        assert_eq!(req.call_id.as_deref(), Some(CALL_ID));
        assert_eq!(req.from_tag.as_deref(), Some("1928301774"));
        assert_eq!(req.to_tag, None);
        assert!(req.sdp.as_deref().unwrap().starts_with("v=0\r\no=- 3912451872"));
        assert_eq!(req.received_from, Some(("IP4".into(), "192.0.2.10".into())));
        assert_eq!(req.received_from_addr(), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(req.supports, ["load limit"]);
        assert!(req.supports_load_limit());
        assert_eq!(req.transport_protocol, None);
        assert!(!req.ice_remove && !req.replace_origin && !req.trust_address);
    }

    #[test]
    fn ng_offer_replace_ice_remove_rtp_avp() {
        let req = parse(OFFER_REPLACE_ICE_AVP);
        assert!(req.ice_remove);
        assert!(req.replace_origin);
        assert!(req.replace_session_connection);
        assert_eq!(req.transport_protocol, Some(Transport::RtpAvp));
    }

    #[test]
    fn ng_offer_savp_dtls_off_demux_trust_symmetric_via() {
        let req = parse(OFFER_SAVP_DTLS_MUX_TRUST_SYM_VIA);
        assert_eq!(req.transport_protocol, Some(Transport::RtpSavp));
        assert!(req.dtls_off);
        assert!(req.sdes_off);
        assert_eq!(req.rtcp_mux, [RtcpMux::Demux]);
        assert!(req.trust_address);
        assert_eq!(req.symmetric, Some(true));
        assert_eq!(req.via_branch.as_deref(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn ng_answer_delete_query() {
        let a = parse(ANSWER_200OK);
        assert_eq!(a.command, Command::Answer);
        assert_eq!(a.to_tag.as_deref(), Some("314159"));
        assert_eq!(a.received_from_addr(), Some("198.51.100.7".parse().unwrap()));
        assert!(a.replace_origin && a.replace_session_connection);

        let d = parse(DELETE_BYE);
        assert_eq!(d.command, Command::Delete);
        assert_eq!(
            (d.call_id.as_deref(), d.from_tag.as_deref(), d.to_tag.as_deref()),
            (Some(CALL_ID), Some("1928301774"), None)
        );
        assert_eq!(d.sdp, None);

        let q = parse(QUERY);
        assert_eq!(q.command, Command::Query);
        assert_eq!(q.to_tag.as_deref(), Some("314159"));
    }

    #[test]
    fn ng_opensips_style() {
        let o = parse(OPENSIPS_OFFER);
        assert!(o.sdes_off && o.trust_address && o.strict_source && o.ice_remove);
        assert_eq!(o.rtcp_mux, [RtcpMux::Offer, RtcpMux::Require]);
        assert_eq!(o.address_family, Some(AddressFamily::Ip4));
        assert_eq!(o.received_from_addr(), Some("2001:db8::10".parse().unwrap()));
        assert!(o.supports.is_empty());
        assert!(!o.supports_load_limit());

        let d = parse(OPENSIPS_DELETE);
        assert_eq!(d.delete_delay, Some(0));
        assert!(d.fatal && d.fast);
    }

    #[test]
    fn ng_flag_words_and_prefixes() {
        let req = parse_datagram(&dgram(
            "d5:flagsl8:RTP/AVPF18:SIP source address10:asymmetric14:media-handover6:to-tag14:replace-origin14:rtcp-mux-offer7:SDES-noe7:command6:delete7:call-id1:c8:from-tag1:f3:TOSi184e12:delete delayi30e9:directionl4:priv3:pube13:media-address11:203.0.113.9e",
        ))
        .unwrap()
        .1;
        assert_eq!(req.transport_protocol, Some(Transport::RtpAvpf));
        assert!(req.sip_source_address && req.media_handover && req.to_tag_flag && req.replace_origin && req.sdes_off);
        assert_eq!(req.symmetric, Some(false));
        assert_eq!(req.rtcp_mux, [RtcpMux::Offer]);
        assert_eq!(req.tos, Some(184));
        assert_eq!(req.delete_delay, Some(30));
        assert_eq!(req.direction, ["priv", "pub"]);
        assert_eq!(req.media_address, Some("203.0.113.9".parse().unwrap()));
        // ICE as a list, DTLS=no, delete delay as a string.
        let req = parse_datagram(&dgram("d7:command4:ping3:ICEl6:removee4:DTLS2:no12:delete-delay1:5e"))
            .unwrap()
            .1;
        assert!(req.ice_remove && req.dtls_off);
        assert_eq!(req.delete_delay, Some(5));
    }

    #[test]
    fn ng_unsupported_options_are_named() {
        let cases: &[(&str, &str)] = &[
            ("d7:command4:ping5:flagsl8:fragmentee", "fragment"),
            ("d7:command4:ping5:flagsl14:unidirectionalee", "unidirectional"),
            ("d7:command4:ping3:ICE5:forcee", "ICE=force"),
            ("d7:command4:ping3:ICEl6:remove11:force-relayee", "ICE=force-relay"),
            ("d7:command4:ping4:DTLS7:passivee", "DTLS=passive"),
            ("d7:command4:ping4:SDESl16:unencrypted_srtpee", "SDES-unencrypted_srtp"),
            ("d7:command4:ping7:replacel8:usernameee", "replace-username"),
            ("d7:command4:ping8:rtcp-muxl5:bogusee", "rtcp-mux-bogus"),
            (
                "d7:command4:ping18:transport-protocol6:accepte",
                "transport-protocol=accept",
            ),
            ("d7:command4:ping5:codecd5:stripl4:PCMUeee", "codec"),
            ("d7:command4:ping4:T.38l6:decodeee", "T.38"),
            ("d7:command4:ping10:rtpp_flags9:symmetrice", "rtpp_flags"),
            ("d7:command4:ping11:record call2:one", "record-call"),
            ("d7:command5:query7:call-id1:c3:sdp3:v=0e", "sdp in query"),
        ];
        for (body, option) in cases {
            assert_eq!(
                err(&dgram(body)),
                NgError::UnsupportedOption {
                    option: (*option).to_owned()
                },
                "body {body}"
            );
        }
        let e = err(&dgram("d7:command4:ping5:flagsl8:fragmentee"));
        assert_eq!(e.reason(), "unsupported option 'fragment'");
        // Hostile names come back escaped and bounded.
        let e = err(&dgram(&format!("d7:command4:ping5:flagsl100:\n{}ee", "x".repeat(99))));
        let NgError::UnsupportedOption { option } = &e else {
            panic!("{e:?}")
        };
        assert!(option.starts_with("\\nxxx") && option.chars().count() == 65, "{option}");
    }

    #[test]
    fn ng_missing_and_invalid_fields() {
        use NgError::*;
        let cases: &[(&[u8], NgError)] = &[
            (b"d7:command4:pinge", NoCookie),
            (b" d7:command4:pinge", NoCookie),
            (b"c\x01 d7:command4:pinge", NoCookie),
            (
                &[&[b'c'; MAX_COOKIE_LEN + 1][..], b" d7:command4:pinge"].concat(),
                NoCookie,
            ),
            (
                b"c1 d7:command4:ping",
                Bencode(BencodeError::UnexpectedEnd { offset: 16 }),
            ),
            (
                b"c1 {\"command\":\"ping\"}",
                Bencode(BencodeError::UnexpectedByte { offset: 0, byte: b'{' }),
            ),
            (b"c1 l7:commande", NotADictionary),
            (b"c1 d4:call1:xe", MissingCommand),
            (b"c1 d7:command4:liste", UnknownCommand { command: "list".into() }),
            (
                b"c1 d7:commandi1ee",
                InvalidValue {
                    key: "command".into(),
                    reason: "expected a string",
                },
            ),
            (
                b"c1 d7:command5:offer8:from-tag1:f3:sdp3:v=0e",
                MissingKey { key: "call-id" },
            ),
            (
                b"c1 d7:command5:offer7:call-id1:c3:sdp3:v=0e",
                MissingKey { key: "from-tag" },
            ),
            (
                b"c1 d7:command5:offer7:call-id1:c8:from-tag1:fe",
                MissingKey { key: "sdp" },
            ),
            (
                b"c1 d7:command6:answer7:call-id1:c8:from-tag1:f3:sdp3:v=0e",
                MissingKey { key: "to-tag" },
            ),
            (b"c1 d7:command6:delete7:call-id1:ce", MissingKey { key: "from-tag" }),
            (b"c1 d7:command6:delete8:from-tag1:fe", MissingKey { key: "call-id" }),
            (b"c1 d7:command5:querye", MissingKey { key: "call-id" }),
            (
                b"c1 d7:command4:ping7:call-id0:e",
                InvalidValue {
                    key: "call-id".into(),
                    reason: "empty",
                },
            ),
            (
                b"c1 d7:command4:ping7:call-id2:\xff\xfee",
                InvalidValue {
                    key: "call-id".into(),
                    reason: "not UTF-8",
                },
            ),
            (
                b"c1 d7:command4:ping5:flags1:xe",
                InvalidValue {
                    key: "flags".into(),
                    reason: "expected a list of strings",
                },
            ),
            (
                b"c1 d7:command4:ping13:received-froml3:IP4ee",
                InvalidValue {
                    key: "received-from".into(),
                    reason: "expected [family, address]",
                },
            ),
            (
                b"c1 d7:command4:ping13:received-froml3:IP51:xee",
                InvalidValue {
                    key: "received-from".into(),
                    reason: "family not IP4 or IP6",
                },
            ),
            (
                b"c1 d7:command4:ping13:received-froml3:IP43:a.bee",
                InvalidValue {
                    key: "received-from".into(),
                    reason: "not an IP address",
                },
            ),
            (
                b"c1 d7:command4:ping13:received-froml3:IP43:::1ee",
                InvalidValue {
                    key: "received-from".into(),
                    reason: "address does not match family",
                },
            ),
            (
                b"c1 d7:command4:ping3:TOSi256ee",
                InvalidValue {
                    key: "TOS".into(),
                    reason: "not in -1..255",
                },
            ),
            (
                b"c1 d7:command4:ping12:delete delayi-1ee",
                InvalidValue {
                    key: "delete-delay".into(),
                    reason: "not a number of seconds",
                },
            ),
            (
                b"c1 d7:command4:ping9:directionl1:a1:b1:cee",
                InvalidValue {
                    key: "direction".into(),
                    reason: "more than two interfaces",
                },
            ),
            (
                b"c1 d7:command4:ping14:address family3:IP5e",
                InvalidValue {
                    key: "address-family".into(),
                    reason: "not IP4 or IP6",
                },
            ),
            (
                b"c1 d7:command4:ping13:received-froml3:IP48:10.0.0.1e13:received froml3:IP48:10.0.0.1ee",
                DuplicateKey {
                    key: "received-from".into(),
                },
            ),
            (
                b"c1 d7:command4:ping5:flagsl9:symmetric10:asymmetricee",
                ConflictingOptions {
                    first: "symmetric".into(),
                    second: "asymmetric".into(),
                },
            ),
            (
                b"c1 d7:command4:ping5:flagsl13:trust-address18:SIP-source-addressee",
                ConflictingOptions {
                    first: "trust-address".into(),
                    second: "SIP-source-address".into(),
                },
            ),
            (
                b"c1 d7:command4:ping5:flagsl13:strict-source14:media-handoveree",
                ConflictingOptions {
                    first: "strict-source".into(),
                    second: "media-handover".into(),
                },
            ),
            (
                b"c1 d7:command4:ping8:rtcp-muxl5:demux6:acceptee",
                ConflictingOptions {
                    first: "rtcp-mux-demux".into(),
                    second: "rtcp-mux-accept".into(),
                },
            ),
            (
                b"c1 d7:command4:ping18:transport-protocol7:RTP/AVP5:flagsl8:RTP/SAVPee",
                ConflictingOptions {
                    first: "RTP/AVP".into(),
                    second: "RTP/SAVP".into(),
                },
            ),
        ];
        for (d, expected) in cases {
            assert_eq!(&err(d), expected, "datagram {}", d.escape_ascii());
        }
        assert_eq!(err(b"c1 d7:command5:offere").reason(), "no call-id in message");
        assert_eq!(err(b"c1 d7:command4:liste").reason(), "unknown command 'list'");
        assert_eq!(
            err(b"c1 d7:command4:pinge extra").reason(),
            "bencode: trailing data at byte 17"
        );
        assert_eq!(cookie(b"c1 garbage"), Some(&b"c1"[..]));
        assert_eq!(cookie(b"nocookie"), None);
    }

    #[test]
    fn ng_reply_encoding_is_byte_exact() {
        let mut out = Vec::new();
        encode_reply(b"1_2745_17", &Response::Pong, &mut out);
        assert_eq!(out, b"1_2745_17 d6:result4:ponge");

        out.clear();
        encode_reply(
            b"5323_1",
            &Response::Ok {
                sdp: Some("v=0\r\n".into()),
                extra: vec![],
            },
            &mut out,
        );
        assert_eq!(out, b"5323_1 d6:result2:ok3:sdp5:v=0\r\ne");

        out.clear();
        let extra = vec![
            ("warning".to_owned(), OwnedValue::from("no such call")),
            ("created".to_owned(), OwnedValue::Int(1_700_000_000)),
        ];
        encode_reply(b"c", &Response::Ok { sdp: None, extra }, &mut out);
        assert_eq!(out, b"c d6:result2:ok7:warning12:no such call7:createdi1700000000ee");

        out.clear();
        let e = err(b"c1 d7:command4:liste");
        encode_reply(b"c1", &Response::error(&e), &mut out);
        assert_eq!(out, b"c1 d6:result5:error12:error-reason22:unknown command 'list'e");

        out.clear();
        encode_reply(
            b"c",
            &Response::LoadLimit {
                message: Some("full".into()),
            },
            &mut out,
        );
        assert_eq!(out, b"c d6:result10:load limit7:message4:fulle");
        out.clear();
        encode_reply(b"c", &Response::LoadLimit { message: None }, &mut out);
        assert_eq!(out, b"c d6:result10:load limite");
    }

    #[test]
    fn ng_enums_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(Transport::from_str("RTP/SAVP"), Ok(Transport::RtpSavp));
        assert_eq!("rtp/avp".parse::<Transport>(), Err(UnknownTransport));
        assert!(Transport::UdpTlsRtpSavpf.is_dtls() && Transport::UdpTlsRtpSavpf.is_feedback());
        assert!(Transport::RtpSavp.is_secure() && !Transport::RtpAvpf.is_secure());
        for c in [
            Command::Ping,
            Command::Offer,
            Command::Answer,
            Command::Delete,
            Command::Query,
        ] {
            assert_eq!(Command::from_wire(c.as_str()), Some(c));
        }
        for m in [
            RtcpMux::Offer,
            RtcpMux::Demux,
            RtcpMux::Accept,
            RtcpMux::Reject,
            RtcpMux::Require,
        ] {
            assert_eq!(RtcpMux::from_wire(m.as_str()), Some(m));
        }
        assert_eq!(AddressFamily::of("::1".parse().unwrap()).as_str(), "IP6");
    }

    #[test]
    fn ng_fuzzing_entry_point_on_vectors() {
        for d in [
            OFFER_DEFAULT,
            OFFER_REPLACE_ICE_AVP,
            OFFER_SAVP_DTLS_MUX_TRUST_SYM_VIA,
            ANSWER_200OK,
            DELETE_BYE,
            QUERY,
            PING,
            OPENSIPS_OFFER,
            OPENSIPS_DELETE,
        ] {
            fuzzing::ng_datagram(d);
            for cut in 0..d.len() {
                fuzzing::ng_datagram(&d[..cut]);
            }
        }
    }

    proptest! {
        #[test]
        fn ng_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzzing::ng_datagram(&data);
        }

        #[test]
        fn ng_parse_never_panics_on_mutated_vectors(which in 0usize..9, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let vectors = [OFFER_DEFAULT, OFFER_REPLACE_ICE_AVP, OFFER_SAVP_DTLS_MUX_TRUST_SYM_VIA, ANSWER_200OK, DELETE_BYE, QUERY, PING, OPENSIPS_OFFER, OPENSIPS_DELETE];
            let mut d = vectors[which].to_vec();
            let i = at.index(d.len());
            d[i] = byte;
            fuzzing::ng_datagram(&d);
        }
    }
}
