//! SDP offer/answer for SIP calls (RFC 8866 syntax, RFC 3264 offer/answer,
//! RFC 4568 SDES keys).
//!
//! # Model
//!
//! confgate's media always terminates on its own relay ports, so this module
//! does not rewrite a peer's SDP (that is the relay's `ng` job); it reads an
//! offer or answer into a [`SessionDescription`] and writes confgate's own
//! descriptions from scratch:
//!
//! - [`parse`] reads any SDP body into a [`SessionDescription`]: one
//!   [`MediaSection`] per `m=` line with its *effective* values already
//!   resolved (media-level `c=` over session-level `c=`, media-level
//!   direction over session-level direction, static payload types of
//!   RFC 3551 §6 known without `a=rtpmap`). Unknown attributes are kept
//!   verbatim in [`MediaSection::attributes`] and
//!   [`SessionDescription::attributes`].
//! - [`answer`] answers a parsed offer (confgate as UAS, or any re-INVITE)
//!   and reports what was negotiated per stream ([`NegotiatedStream`]).
//! - [`offer`] writes confgate's own offer (confgate as UAC, or a late offer
//!   in a 200 to an INVITE without SDP) and [`parse_answer`] reads the
//!   peer's answer to it.
//!
//! Nothing here draws random numbers or reads a clock: session ids,
//! versions and SRTP keys come from the caller in [`AnswerParams`] and
//! [`OfferParams`].
//!
//! # Negotiation rules
//!
//! - **Codec choice**: the first codec *in the offer's order* that confgate
//!   supports (RFC 3264 §6.1: the offerer lists formats in its preference
//!   order; this is what SIP servers commonly do). The answer lists only
//!   that codec (plus `telephone-event`), so the peer never switches codec
//!   mid-stream, and it uses the offer's payload type numbers (RFC 3264
//!   §6.1).
//! - **H.264** (RFC 6184 §8.2.2): matched on `packetization-mode` (equal)
//!   and on the `profile_idc` of `profile-level-id`; the answer keeps the
//!   offered profile and answers the lower of the offered level and ours.
//! - **SDES** (RFC 4568 §7.1.1, §7.1.2): for `RTP/SAVP` and `RTP/SAVPF`
//!   the answer carries exactly one `a=crypto` line with the tag and suite
//!   of the first offered line confgate can use, and confgate's own key.
//!   `a=crypto` lines with an MKI, with a key lifetime below
//!   [`MIN_KEY_LIFETIME`], with session parameters other than `WSH`, or
//!   with an unknown suite are skipped when parsing (they stay in
//!   [`MediaSection::attributes`]). `RTP/AVP` offers are answered with plain
//!   RTP, even if they carry `a=crypto` lines (no best-effort SRTP).
//! - **DTLS-SRTP** (`UDP/TLS/RTP/SAVP[F]`, or an SAVP m-line with
//!   `a=fingerprint` and no usable `a=crypto`) is refused for now:
//!   [`SdpError::Unsupported`], which the driver answers with 488.
//! - One audio and one video stream at most: the first acceptable `m=audio`
//!   and (when [`AnswerParams::video_port`] is set) the first acceptable
//!   `m=video`. Every other `m=` line is answered with port 0 and its
//!   offered format list (RFC 3264 §6). If neither audio nor video can be
//!   accepted the result is an error ([`SdpError::sip_status`] gives 488).
//! - **Direction** (RFC 3264 §6.1): ours is the offer's reversed
//!   (`sendonly` ↔ `recvonly`), further limited by
//!   [`AnswerParams::direction`]. A `c=` of `0.0.0.0` (RFC 3264 §8.4, the
//!   RFC 2543 way of holding) counts as "the offerer does not receive".
//!   [`NegotiatedStream::held`] tells the driver the peer put the stream on
//!   hold.
//! - **rtcp-mux** (RFC 5761 §5.1.1): answered only if offered and
//!   allowed by the caller.
//!
//! A re-INVITE's offer goes through [`answer`] too; compare the new
//! [`NegotiatedStream`] with the previous one (`PartialEq`) to learn whether
//! the remote address, codec, keys or direction changed.
//!
//! # Limits
//!
//! [`MAX_SDP_LEN`] bytes, [`MAX_MEDIA`] `m=` lines, [`MAX_FORMATS`] formats
//! per `m=` line. Errors name the 1-based line and the field at fault.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};
use call::{Codec, Direction, MediaDescription, MediaKind, MediaStream, SrtpKeys, SrtpSuite, Transport};

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Most `m=` lines accepted in one description.
pub const MAX_MEDIA: usize = 16;
/// Most formats accepted on one `m=` line.
pub const MAX_FORMATS: usize = 64;
/// Shortest SDES master key lifetime (in packets) accepted (RFC 4568 §6.1,
/// `|2^31`). confgate does not re-key within a session, so a key with a
/// shorter lifetime could expire in the middle of a call; `a=crypto` lines
/// asking for less are skipped.
pub const MIN_KEY_LIFETIME: u64 = 1 << 31;
/// The audio packetization time confgate asks for in its own descriptions
/// (`a=ptime:20`, RFC 8866 §6.4).
pub const AUDIO_PTIME_MS: u32 = 20;
/// The payload type confgate offers `telephone-event/8000` with (RFC 4733
/// §2.1, a dynamic payload type of RFC 3551 §3).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// The `o=` username and `s=` name confgate writes (RFC 8866 §5.2, §5.3).
const OUR_NAME: &str = "confgate";
/// The events confgate offers and answers for `telephone-event` (RFC 4733
/// §2.4.1: DTMF digits 0–9, `*`, `#`, A–D and flash).
const TELEPHONE_EVENTS: &str = "0-16";
/// The `profile-level-id` that applies when an H.264 offer has none
/// (RFC 6184 §8.1: Baseline, level 1.0).
const H264_DEFAULT_PROFILE_LEVEL_ID: &str = "42000a";

/// Base64 of RFC 4648 §4, accepting key parameters with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an SDP body cannot be used.
///
/// Split by who is at fault: the peer sent garbage ([`Syntax`](Self::Syntax)
/// and the limits), the peer is incompatible
/// ([`Unsupported`](Self::Unsupported), [`NoCommonCodec`](Self::NoCommonCodec),
/// [`BadAnswer`](Self::BadAnswer)), or the caller's parameters are wrong
/// ([`InvalidParams`](Self::InvalidParams)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Longer than [`MAX_SDP_LEN`].
    #[error("SDP of {size} bytes exceeds the limit of {MAX_SDP_LEN}")]
    TooLarge {
        /// Size of the input.
        size: usize,
    },
    /// No lines at all.
    #[error("SDP is empty")]
    Empty,
    /// A line that breaks the syntax of RFC 8866 §9.
    #[error("line {line}: bad {field} line: {detail}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The field at fault, e.g. `m=` or `a=rtpmap`.
        field: &'static str,
        /// What is wrong, quoting the offending token.
        detail: String,
    },
    /// More than [`MAX_MEDIA`] `m=` lines.
    #[error("line {line}: more than {MAX_MEDIA} m= lines")]
    TooManyMedia {
        /// The first `m=` line too many.
        line: usize,
    },
    /// More than [`MAX_FORMATS`] formats on one `m=` line.
    #[error("line {line}: bad m= line: more than {MAX_FORMATS} formats")]
    TooManyFormats {
        /// The `m=` line.
        line: usize,
    },
    /// A mandatory line is absent (RFC 8866 §5: `v=` and `o=`).
    #[error("no {field} line in the session description")]
    Missing {
        /// The line type, e.g. `o=`.
        field: &'static str,
    },
    /// The offer needs something confgate does not do (e.g. DTLS-SRTP).
    #[error("offer not supported: {what}")]
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
    /// No offered audio or video stream has a codec confgate supports
    /// (RFC 3264 §6: the answerer rejects every stream).
    #[error("no codec in common with the offer")]
    NoCommonCodec,
    /// An answer that does not answer confgate's offer (RFC 3264 §6).
    #[error("bad answer: {what}")]
    BadAnswer {
        /// What is wrong.
        what: &'static str,
    },
    /// The caller's [`AnswerParams`] or [`OfferParams`] cannot be used.
    #[error("invalid SDP parameters: {what}")]
    InvalidParams {
        /// What is wrong.
        what: &'static str,
    },
}

impl SdpError {
    /// The SIP status code to refuse an offer with: 488 Not Acceptable Here
    /// for an offer confgate cannot accept (RFC 3261 §21.4.26, RFC 3264
    /// §6), 400 Bad Request for a malformed body (RFC 3261 §21.4.1), 500
    /// for a local fault.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Unsupported { .. } | SdpError::NoCommonCodec | SdpError::BadAnswer { .. } => 488,
            SdpError::InvalidParams { .. } => 500,
            _ => 400,
        }
    }
}

/// The transport protocol of an `m=` line (RFC 8866 §5.14; RTP profiles of
/// RFC 3551, RFC 3711, RFC 4585, RFC 5124, RFC 5764).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// `RTP/AVP` (RFC 3551).
    RtpAvp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVP` (RFC 3711).
    RtpSavp,
    /// `RTP/SAVPF` (RFC 5124).
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP` (RFC 5764 §8).
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF` (RFC 5764 §8, WebRTC).
    UdpTlsRtpSavpf,
    /// Anything else (`udptl`, `UDP/BFCP`, `TCP/MSRP`, …), as written.
    Other(String),
}

impl Proto {
    fn parse(s: &str) -> Proto {
        const KNOWN: [(&str, Proto); 6] = [
            ("RTP/AVP", Proto::RtpAvp),
            ("RTP/AVPF", Proto::RtpAvpf),
            ("RTP/SAVP", Proto::RtpSavp),
            ("RTP/SAVPF", Proto::RtpSavpf),
            ("UDP/TLS/RTP/SAVP", Proto::UdpTlsRtpSavp),
            ("UDP/TLS/RTP/SAVPF", Proto::UdpTlsRtpSavpf),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map_or_else(|| Proto::Other(s.to_owned()), |(_, p)| p)
    }

    /// The token as written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            Proto::RtpAvp => "RTP/AVP",
            Proto::RtpAvpf => "RTP/AVPF",
            Proto::RtpSavp => "RTP/SAVP",
            Proto::RtpSavpf => "RTP/SAVPF",
            Proto::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            Proto::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            Proto::Other(s) => s,
        }
    }

    /// Whether the formats are RTP payload types (RFC 8866 §5.14: "for RTP
    /// … the format list contains RTP payload type numbers").
    pub fn is_rtp(&self) -> bool {
        !matches!(self, Proto::Other(_))
    }

    /// `RTP/SAVP` or `RTP/SAVPF`: SRTP keyed in the SDP by `a=crypto`
    /// (RFC 4568 §3.1.4).
    pub fn is_sdes(&self) -> bool {
        matches!(self, Proto::RtpSavp | Proto::RtpSavpf)
    }

    /// `UDP/TLS/RTP/SAVP[F]`: SRTP keyed by DTLS (RFC 5764 §8).
    pub fn is_dtls(&self) -> bool {
        matches!(self, Proto::UdpTlsRtpSavp | Proto::UdpTlsRtpSavpf)
    }

    /// An AVPF profile: RTCP feedback (`a=rtcp-fb`) applies (RFC 4585 §4).
    pub fn has_feedback(&self) -> bool {
        matches!(self, Proto::RtpAvpf | Proto::RtpSavpf | Proto::UdpTlsRtpSavpf)
    }

    /// The profile for an offer: plain or SDES-protected, with or without
    /// feedback.
    fn rtp(srtp: bool, feedback: bool) -> Proto {
        match (srtp, feedback) {
            (false, false) => Proto::RtpAvp,
            (false, true) => Proto::RtpAvpf,
            (true, false) => Proto::RtpSavp,
            (true, true) => Proto::RtpSavpf,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `a=<name>[:<value>]` line, kept verbatim (RFC 8866 §5.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name.
    pub name: String,
    /// The value after the first `:`, if any (`None` for a property
    /// attribute such as `a=rtcp-mux`).
    pub value: Option<String>,
}

impl Attribute {
    fn parse(text: &str) -> Attribute {
        match text.split_once(':') {
            Some((name, value)) => Attribute {
                name: name.trim().to_owned(),
                value: Some(value.to_owned()),
            },
            None => Attribute {
                name: text.trim().to_owned(),
                value: None,
            },
        }
    }
}

/// The `o=` line (RFC 8866 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `<username>` (`-` when the host has no user ids).
    pub username: String,
    /// `<sess-id>`, a numeric string.
    pub session_id: String,
    /// `<sess-version>`, a numeric string; RFC 3264 §8: a re-offer that
    /// changes nothing keeps it.
    pub session_version: String,
    /// `<unicast-address>` as written (an address or a host name).
    pub address: String,
}

/// An `a=rtcp` attribute (RFC 3605 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when the attribute carries one; otherwise the
    /// stream's connection address.
    pub address: Option<IpAddr>,
}

/// A usable `a=crypto` line (RFC 4568 §9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The tag that the answer echoes (RFC 4568 §4.1).
    pub tag: u32,
    /// The suite and the master key and salt of the `inline:` key
    /// parameter: the key the describing side *sends* with (RFC 4568 §6.1).
    pub keys: SrtpKeys,
}

/// An `a=rtcp-fb` line (RFC 4585 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtcpFb {
    /// The payload type it applies to; `None` for `*` (all formats).
    pub payload_type: Option<u8>,
    /// The feedback type and parameters, e.g. `nack pli`, `ccm fir`.
    pub value: String,
}

/// One media description: an `m=` line and what follows it up to the next
/// (RFC 8866 §5.14), with effective values resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSection {
    /// 1-based line number of the `m=` line.
    pub line: usize,
    /// The media type as written (`audio`, `video`, `application`, `image`,
    /// `text`, …).
    pub media: String,
    /// The media type, when it is one the call model knows.
    pub kind: Option<MediaKind>,
    /// The port; 0 means the stream is rejected or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The `/<number of ports>` of the `m=` line, if written.
    pub port_count: Option<u16>,
    /// The transport protocol.
    pub proto: Proto,
    /// The formats as written, in order (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// The connection address: the media-level `c=`, else the session-level
    /// one (RFC 8866 §5.7). Always present when `port` is not 0.
    pub connection: Option<IpAddr>,
    /// The RTP formats as codecs, in the `m=` line's order: from
    /// `a=rtpmap`, else the static payload types of RFC 3551 §6, with their
    /// `a=fmtp` (RFC 8866 §6.6, §6.15). Dynamic payload types without
    /// `a=rtpmap` are left out. Empty for non-RTP protocols.
    pub codecs: Vec<Codec>,
    /// The direction attribute at media level, else at session level, else
    /// `sendrecv` (RFC 8866 §6.7, RFC 3264 §5.1).
    pub direction: Direction,
    /// `a=rtcp` (RFC 3605), if present.
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` present (RFC 5761 §5.1.1).
    pub rtcp_mux: bool,
    /// `a=ptime` in milliseconds (RFC 8866 §6.4).
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds (RFC 8866 §6.5).
    pub maxptime: Option<u32>,
    /// The usable `a=crypto` lines, in order (see the module docs for what
    /// is skipped).
    pub crypto: Vec<Crypto>,
    /// The `a=rtcp-fb` lines (RFC 4585 §4.2).
    pub rtcp_fb: Vec<RtcpFb>,
    /// `a=fingerprint` at media or session level (RFC 8122 §5): DTLS.
    pub fingerprint: Option<String>,
    /// `a=setup` at media or session level (RFC 4145 §4).
    pub setup: Option<String>,
    /// `a=ice-ufrag` at media or session level (RFC 8839 §5.4).
    pub ice_ufrag: Option<String>,
    /// Every media-level attribute, verbatim and in order.
    pub attributes: Vec<Attribute>,
}

impl MediaSection {
    /// Whether the connection address is unspecified (`0.0.0.0` or `::`):
    /// the RFC 2543 way of holding (RFC 3264 §8.4).
    pub fn is_hold_address(&self) -> bool {
        self.connection.is_some_and(|a| a.is_unspecified())
    }

    /// The direction with an unspecified connection address folded in: a
    /// stream sent to `0.0.0.0` cannot be received (RFC 3264 §8.4).
    pub fn effective_direction(&self) -> Direction {
        if self.is_hold_address() {
            direction_from(self.direction.sends(), false)
        } else {
            self.direction
        }
    }

    /// Whether the stream is keyed by DTLS-SRTP: a `UDP/TLS/RTP/SAVP[F]`
    /// profile (RFC 5764 §8), or an SAVP profile with `a=fingerprint` and no
    /// usable `a=crypto`.
    pub fn is_dtls(&self) -> bool {
        self.proto.is_dtls() || (self.proto.is_sdes() && self.crypto.is_empty() && self.fingerprint.is_some())
    }

    /// The first attribute named `name` (case-insensitive): `Some(None)` for
    /// a property attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// The RTP and RTCP destinations of this stream: the connection address
    /// with the `m=` port, and RTCP per RFC 3605 (`a=rtcp`), RFC 5761
    /// (`None` when multiplexed) or RFC 3550 §11 (the next port up).
    fn destinations(&self, rtcp_mux: bool) -> Option<(SocketAddr, Option<SocketAddr>)> {
        let address = self.connection?;
        let rtp = SocketAddr::new(address, self.port);
        let rtcp = if rtcp_mux {
            None
        } else if let Some(r) = self.rtcp {
            Some(SocketAddr::new(r.address.unwrap_or(address), r.port))
        } else {
            self.port.checked_add(1).map(|p| SocketAddr::new(address, p))
        };
        Some((rtp, rtcp))
    }
}

/// A parsed SDP body (RFC 8866 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line, if present (tolerated when absent).
    pub session_name: Option<String>,
    /// The session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// The session-level direction attribute (RFC 8866 §6.7), if any.
    pub direction: Option<Direction>,
    /// Every session-level attribute, verbatim and in order.
    pub attributes: Vec<Attribute>,
    /// The media descriptions in `m=` line order.
    pub media: Vec<MediaSection>,
}

impl SessionDescription {
    /// The first session-level attribute named `name` (case-insensitive):
    /// `Some(None)` for a property attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// The offered streams in the call model's terms (audio, video and
    /// application `m=` lines with a non-zero port; others left out): the
    /// codecs in offer order, the effective direction and the RTP
    /// transport with the first usable SDES key.
    pub fn media_description(&self) -> MediaDescription {
        let streams = self
            .media
            .iter()
            .filter(|m| m.port != 0)
            .filter_map(|m| {
                let kind = m.kind?;
                Some(MediaStream {
                    kind,
                    codecs: m.codecs.clone(),
                    direction: m.effective_direction(),
                    transport: Transport::Rtp {
                        addr: m.connection.map(|a| SocketAddr::new(a, m.port)),
                        rtcp_mux: m.rtcp_mux,
                        srtp: m.crypto.first().map(|c| c.keys.clone()),
                    },
                })
            })
            .collect();
        MediaDescription { streams }
    }
}

/// Parses an SDP body (RFC 8866).
///
/// Strict on structure: the first line is `v=0`; every line is
/// `<letter>=<value>` without NUL or a stray CR; one `o=` with six fields
/// in the session part; `c=` is `IN IP4|IP6 <literal address>`; `m=` is
/// `<media> <port>[/<count>] <proto> <fmt>…` (payload type numbers 0–127
/// for RTP); `a=rtpmap`, `a=fmtp` and `a=rtcp` are well-formed; every
/// `m=` line with a non-zero port has a connection address.
/// Lenient on what phones send: CRLF or LF line ends, blank lines, missing
/// `s=` and `t=`, unknown line types and attributes, unparsable `a=ptime`,
/// `a=crypto` or `a=rtcp-fb` (skipped, kept in the attributes).
///
/// # Errors
///
/// [`SdpError`] naming the line and the field.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { size: text.len() });
    }
    let mut seen_version = false;
    let mut origin: Option<Origin> = None;
    let mut session_name = None;
    let mut connection = None;
    let mut direction = None;
    let mut attributes = Vec::new();
    let mut media: Vec<PendingMedia> = Vec::new();

    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.contains(['\r', '\0']) {
            return Err(syntax(n, "type=value", "CR or NUL inside the line"));
        }
        let Some((kind, value)) = split_line(line) else {
            return Err(syntax(
                n,
                "type=value",
                format!("{} is not a <type>=<value> line", quote(line)),
            ));
        };
        if !seen_version {
            if kind != 'v' || value.trim() != "0" {
                return Err(syntax(n, "v=", "the description must start with v=0"));
            }
            seen_version = true;
            continue;
        }
        match kind {
            'v' => return Err(syntax(n, "v=", "v= after the first line")),
            'o' => {
                if !media.is_empty() {
                    return Err(syntax(n, "o=", "o= inside a media description"));
                }
                if origin.is_some() {
                    return Err(syntax(n, "o=", "second o= line"));
                }
                origin = Some(parse_origin(value).map_err(|d| syntax(n, "o=", d))?);
            }
            's' if media.is_empty() && session_name.is_none() => session_name = Some(value.to_owned()),
            'c' => {
                let address = parse_connection(value).map_err(|d| syntax(n, "c=", d))?;
                // Several c= lines at media level are allowed for layered
                // multicast (RFC 8866 §5.7); the first one is used.
                let slot = match media.last_mut() {
                    Some(m) => &mut m.section.connection,
                    None => &mut connection,
                };
                slot.get_or_insert(address);
            }
            'm' => {
                if media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia { line: n });
                }
                media.push(parse_media_line(value, n)?);
            }
            'a' => {
                let attribute = Attribute::parse(value);
                match media.last_mut() {
                    Some(m) => m.add_attribute(n, &attribute)?,
                    None => {
                        if let Some(d) = direction_attribute(&attribute.name) {
                            direction = Some(d);
                        }
                    }
                }
                match media.last_mut() {
                    Some(m) => m.section.attributes.push(attribute),
                    None => attributes.push(attribute),
                }
            }
            // b=, t=, r=, z=, k=, i=, u=, e=, p= and unknown types play no
            // part in offer/answer for confgate.
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Empty);
    }
    let origin = origin.ok_or(SdpError::Missing { field: "o=" })?;
    let mut sd = SessionDescription {
        origin,
        session_name,
        connection,
        direction,
        attributes,
        media: Vec::with_capacity(media.len()),
    };
    for pending in media {
        let section = pending.finish(&sd)?;
        sd.media.push(section);
    }
    Ok(sd)
}

/// A media section being parsed: the section plus what `a=rtpmap`,
/// `a=fmtp` and the direction attributes said.
struct PendingMedia {
    section: MediaSection,
    rtpmaps: Vec<(u8, Codec)>,
    fmtps: Vec<(u8, String)>,
    direction: Option<Direction>,
}

impl PendingMedia {
    /// Interprets one media-level attribute (line `n`).
    fn add_attribute(&mut self, n: usize, a: &Attribute) -> Result<(), SdpError> {
        let value = a.value.as_deref();
        let rtp = self.section.proto.is_rtp();
        let s = &mut self.section;
        match (a.name.to_ascii_lowercase().as_str(), value) {
            ("rtpmap", Some(v)) if rtp => {
                let (pt, codec) = parse_rtpmap(v).map_err(|d| syntax(n, "a=rtpmap", d))?;
                if !self.rtpmaps.iter().any(|(p, _)| *p == pt) {
                    self.rtpmaps.push((pt, codec));
                }
            }
            ("fmtp", Some(v)) if rtp => {
                let (fmt, params) = v.trim_start().split_once(' ').unwrap_or((v.trim(), ""));
                let pt = parse_payload_type(fmt).map_err(|d| syntax(n, "a=fmtp", d))?;
                if !self.fmtps.iter().any(|(p, _)| *p == pt) {
                    self.fmtps.push((pt, params.trim().to_owned()));
                }
            }
            ("ptime", Some(v)) => s.ptime = s.ptime.or_else(|| parse_millis(v)),
            ("maxptime", Some(v)) => s.maxptime = s.maxptime.or_else(|| parse_millis(v)),
            ("rtcp", Some(v)) => {
                let rtcp = parse_rtcp(v).map_err(|d| syntax(n, "a=rtcp", d))?;
                s.rtcp.get_or_insert(rtcp);
            }
            ("rtcp-mux", _) => s.rtcp_mux = true,
            ("crypto", Some(v)) => s.crypto.extend(parse_crypto(v)),
            ("rtcp-fb", Some(v)) => s.rtcp_fb.extend(parse_rtcp_fb(v)),
            ("fingerprint", Some(v)) => s.fingerprint = Some(v.trim().to_owned()),
            ("setup", Some(v)) => s.setup = Some(v.trim().to_owned()),
            ("ice-ufrag", Some(v)) => s.ice_ufrag = Some(v.trim().to_owned()),
            (name, _) => {
                if let Some(d) = direction_attribute(name) {
                    self.direction = Some(d);
                }
            }
        }
        Ok(())
    }

    /// Resolves the effective values against the session level.
    fn finish(self, sd: &SessionDescription) -> Result<MediaSection, SdpError> {
        let PendingMedia {
            mut section,
            rtpmaps,
            fmtps,
            direction,
        } = self;
        section.connection = section.connection.or(sd.connection);
        if section.port != 0 && section.connection.is_none() {
            return Err(syntax(
                section.line,
                "m=",
                "no connection address (c=) at media or session level",
            ));
        }
        section.direction = direction.or(sd.direction).unwrap_or_default();
        let session_value = |name| {
            find_attribute(&sd.attributes, name)
                .flatten()
                .map(|v| v.trim().to_owned())
        };
        if section.fingerprint.is_none() {
            section.fingerprint = session_value("fingerprint");
        }
        if section.setup.is_none() {
            section.setup = session_value("setup");
        }
        if section.ice_ufrag.is_none() {
            section.ice_ufrag = session_value("ice-ufrag");
        }
        if section.proto.is_rtp() {
            section.codecs = section
                .formats
                .iter()
                .filter_map(|f| f.parse::<u8>().ok())
                .filter_map(|pt| {
                    let mut codec = rtpmaps
                        .iter()
                        .find(|(p, _)| *p == pt)
                        .map(|(_, c)| c.clone())
                        .or_else(|| static_codec(pt))?;
                    codec.payload_type = Some(pt);
                    codec.fmtp = fmtps.iter().find(|(p, _)| *p == pt).map(|(_, f)| f.clone());
                    Some(codec)
                })
                .collect();
        }
        Ok(section)
    }
}

/// Splits `x=value` where `x` is one lowercase letter (RFC 8866 §5).
fn split_line(line: &str) -> Option<(char, &str)> {
    let (kind, value) = line.split_once('=')?;
    let mut chars = kind.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_ascii_lowercase()).then_some((c, value))
}

fn syntax(line: usize, field: &'static str, detail: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        field,
        detail: detail.into(),
    }
}

/// The token in single quotes, cut to 40 characters, for error messages.
fn quote(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("'{}…'", s.get(..i).unwrap_or_default()),
        None => format!("'{s}'"),
    }
}

/// `token-char` of RFC 8866 §9.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<Option<&'a str>> {
    attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref())
}

fn direction_attribute(name: &str) -> Option<Direction> {
    const ALL: [Direction; 4] = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];
    ALL.into_iter().find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
}

fn direction_from(sends: bool, receives: bool) -> Direction {
    match (sends, receives) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype>
/// <unicast-address>` (RFC 8866 §5.2).
fn parse_origin(value: &str) -> Result<Origin, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().take(7).collect();
    let [username, id, version, nettype, addrtype, address] = fields.as_slice() else {
        return Err(format!("{} fields where 6 are required", fields.len()));
    };
    if !is_digits(id) {
        return Err(format!("session id {} is not a number", quote(id)));
    }
    if !is_digits(version) {
        return Err(format!("session version {} is not a number", quote(version)));
    }
    if !is_token(nettype) || !is_token(addrtype) {
        return Err(format!(
            "network type {} {} is not a token pair",
            quote(nettype),
            quote(addrtype)
        ));
    }
    Ok(Origin {
        username: (*username).to_owned(),
        session_id: (*id).to_owned(),
        session_version: (*version).to_owned(),
        address: (*address).to_owned(),
    })
}

/// `c=IN IP4|IP6 <address>[/<ttl>][/<number of addresses>]` (RFC 8866
/// §5.7); only IP literals are accepted, as media cannot go to a name.
fn parse_connection(value: &str) -> Result<IpAddr, String> {
    let fields: Vec<&str> = value.split_ascii_whitespace().take(4).collect();
    let [nettype, addrtype, address] = fields.as_slice() else {
        return Err(format!("{} fields where 3 are required", fields.len()));
    };
    if !nettype.eq_ignore_ascii_case("IN") {
        return Err(format!("network type {} is not IN", quote(nettype)));
    }
    let literal = address.split('/').next().unwrap_or_default();
    let ip: IpAddr = literal
        .parse()
        .map_err(|_| format!("address {} is not an IP literal", quote(literal)))?;
    let matches = match addrtype.to_ascii_uppercase().as_str() {
        "IP4" => ip.is_ipv4(),
        "IP6" => ip.is_ipv6(),
        _ => return Err(format!("address type {} is not IP4 or IP6", quote(addrtype))),
    };
    if !matches {
        return Err(format!("address {} is not of type {addrtype}", quote(literal)));
    }
    Ok(ip)
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> …` (RFC 8866 §5.14).
fn parse_media_line(value: &str, n: usize) -> Result<PendingMedia, SdpError> {
    let bad = |d: String| syntax(n, "m=", d);
    let mut fields = value.split_ascii_whitespace();
    let media = fields.next().unwrap_or_default();
    if !is_token(media) {
        return Err(bad(format!("media type {} is not a token", quote(media))));
    }
    let port_field = fields.next().ok_or_else(|| bad("no port".to_owned()))?;
    let (port, count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("port {} is not a number", quote(port))))?;
    let port_count = match count {
        Some(c) => Some(
            c.parse::<u16>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad(format!("port count {} is not a number", quote(c))))?,
        ),
        None => None,
    };
    let proto = fields.next().ok_or_else(|| bad("no transport protocol".to_owned()))?;
    if !proto.split('/').all(is_token) {
        return Err(bad(format!("protocol {} is not a token", quote(proto))));
    }
    let proto = Proto::parse(proto);
    let mut formats = Vec::new();
    for f in fields {
        if formats.len() == MAX_FORMATS {
            return Err(SdpError::TooManyFormats { line: n });
        }
        if proto.is_rtp() {
            parse_payload_type(f).map_err(bad)?;
        } else if !is_token(f) {
            return Err(bad(format!("format {} is not a token", quote(f))));
        }
        formats.push(f.to_owned());
    }
    if formats.is_empty() {
        return Err(bad("no formats".to_owned()));
    }
    let kind = match media.to_ascii_lowercase().as_str() {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        "application" => Some(MediaKind::Application),
        _ => None,
    };
    Ok(PendingMedia {
        section: MediaSection {
            line: n,
            media: media.to_owned(),
            kind,
            port,
            port_count,
            proto,
            formats,
            connection: None,
            codecs: Vec::new(),
            direction: Direction::SendRecv,
            rtcp: None,
            rtcp_mux: false,
            ptime: None,
            maxptime: None,
            crypto: Vec::new(),
            rtcp_fb: Vec::new(),
            fingerprint: None,
            setup: None,
            ice_ufrag: None,
            attributes: Vec::new(),
        },
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
    })
}

/// An RTP payload type number, 0–127 (RFC 3550 §5.1: seven bits).
fn parse_payload_type(s: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .ok()
        .filter(|pt| *pt < 128)
        .ok_or_else(|| format!("format {} is not an RTP payload type (0-127)", quote(s)))
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding
/// parameters>]` (RFC 8866 §6.6).
fn parse_rtpmap(v: &str) -> Result<(u8, Codec), String> {
    let mut fields = v.split_ascii_whitespace();
    let pt = parse_payload_type(fields.next().unwrap_or_default())?;
    let encoding = fields.next().ok_or("no encoding")?;
    let mut parts = encoding.split('/');
    let name = parts.next().unwrap_or_default();
    if !is_token(name) {
        return Err(format!("encoding name {} is not a token", quote(name)));
    }
    let clock = parts.next().unwrap_or_default();
    let clock_rate = clock
        .parse::<u32>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("clock rate {} is not a number", quote(clock)))?;
    let channels = match parts.next() {
        Some(c) => c
            .parse::<u8>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("channel count {} is not a number 1-255", quote(c)))?,
        None => 1,
    };
    Ok((
        pt,
        Codec {
            name: name.to_owned(),
            clock_rate,
            channels,
            payload_type: Some(pt),
            fmtp: None,
        },
    ))
}

/// The static audio payload types of RFC 3551 §6 (Table 4) that may appear
/// without `a=rtpmap`. G.722 says 8000 Hz although it samples at 16 kHz
/// (RFC 3551 §4.5.2).
fn static_codec(pt: u8) -> Option<Codec> {
    let (name, clock_rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(Codec {
        name: name.to_owned(),
        clock_rate,
        channels: 1,
        payload_type: Some(pt),
        fmtp: None,
    })
}

/// The static payload type of a codec, if RFC 3551 §6 assigns one.
fn static_payload_type(codec: &Codec) -> Option<u8> {
    [0, 3, 4, 8, 9, 13, 18]
        .into_iter()
        .find(|pt| static_codec(*pt).is_some_and(|s| s.same_format(codec)))
}

/// A millisecond count; phones sometimes write `20.0`, read as 20.
fn parse_millis(v: &str) -> Option<u32> {
    let v = v.trim();
    let whole = v.split_once('.').map_or(v, |(w, _)| w);
    whole.parse::<u32>().ok().filter(|ms| *ms > 0)
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605 §2.1).
fn parse_rtcp(v: &str) -> Result<Rtcp, String> {
    let v = v.trim();
    let (port, rest) = v.split_once(' ').unwrap_or((v, ""));
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {} is not a number", quote(port)))?;
    let address = if rest.trim().is_empty() {
        None
    } else {
        Some(parse_connection(rest)?)
    };
    Ok(Rtcp { port, address })
}

/// `a=rtcp-fb:<payload type>|* <type> [<parameters>]` (RFC 4585 §4.2);
/// `None` when malformed.
fn parse_rtcp_fb(v: &str) -> Option<RtcpFb> {
    let (pt, value) = v.trim().split_once(' ')?;
    let payload_type = if pt == "*" {
        None
    } else {
        Some(parse_payload_type(pt).ok()?)
    };
    let value = value.trim();
    (!value.is_empty()).then(|| RtcpFb {
        payload_type,
        value: value.to_owned(),
    })
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`
/// (RFC 4568 §9.1), `None` when malformed or not usable by confgate: an
/// unknown suite, more than one key (only possible with MKIs, §6.1), an
/// MKI, a lifetime below [`MIN_KEY_LIFETIME`], a key of the wrong length,
/// or a session parameter other than `WSH` (§6.3: confgate does not do
/// unencrypted or unauthenticated SRTP, KDR or FEC ordering).
fn parse_crypto(v: &str) -> Option<Crypto> {
    let mut fields = v.split_ascii_whitespace();
    let tag = fields.next()?;
    if tag.len() > 9 || !is_digits(tag) {
        return None;
    }
    let tag: u32 = tag.parse().ok()?;
    let suite_name = fields.next()?;
    let suite = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm,
    ]
    .into_iter()
    .find(|s| s.name().eq_ignore_ascii_case(suite_name))?;
    let key_params = fields.next()?;
    if key_params.contains(';') {
        return None;
    }
    let (method, info) = key_params.split_once(':')?;
    if !method.eq_ignore_ascii_case("inline") {
        return None;
    }
    let mut parts = info.split('|');
    let key_salt = BASE64.decode(parts.next()?).ok()?;
    for part in parts {
        if part.contains(':') {
            return None; // MKI
        }
        if parse_lifetime(part)? < MIN_KEY_LIFETIME {
            return None;
        }
    }
    if fields.any(|p| !p.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("WSH="))) {
        return None;
    }
    if key_salt.len() != suite.key_len() + suite.salt_len() {
        return None;
    }
    let (key, salt) = key_salt.split_at(suite.key_len());
    Some(Crypto {
        tag,
        keys: SrtpKeys {
            suite,
            master_key: key.to_vec(),
            master_salt: salt.to_vec(),
        },
    })
}

/// A key lifetime: `2^<n>` or a decimal count (RFC 4568 §9.2).
fn parse_lifetime(s: &str) -> Option<u64> {
    match s.strip_prefix("2^") {
        Some(exp) => exp
            .parse::<u32>()
            .ok()
            .and_then(|e| 1u64.checked_shl(e))
            .filter(|_| is_digits(exp)),
        None => is_digits(s).then(|| s.parse::<u64>().ok()).flatten(),
    }
}

/// The value of `name` in an `a=fmtp` parameter list `k=v;k=v`
/// (case-insensitive name).
fn fmtp_param<'a>(fmtp: Option<&'a str>, name: &str) -> Option<&'a str> {
    fmtp?.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The three bytes of an H.264 `profile-level-id` (RFC 6184 §8.1:
/// `profile_idc`, `profile-iop`, `level_idc`).
fn parse_profile_level_id(s: &str) -> Option<[u8; 3]> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok());
    Some([byte(0)?, byte(2)?, byte(4)?])
}

fn is_h264(codec: &Codec) -> bool {
    codec.name.eq_ignore_ascii_case("H264")
}

fn is_telephone_event(codec: &Codec) -> bool {
    codec.name.eq_ignore_ascii_case("telephone-event")
}

/// The `a=fmtp` to answer an offered H.264 format with, if `ours` can take
/// it (RFC 6184 §8.2.2): the same `packetization-mode` (0 when absent), the
/// same `profile_idc`; the answer keeps the offered profile and takes the
/// lower level.
fn h264_answer_fmtp(ours: &Codec, offered: &Codec) -> Option<String> {
    let our_mode = fmtp_param(ours.fmtp.as_deref(), "packetization-mode").unwrap_or("0");
    let their_mode = fmtp_param(offered.fmtp.as_deref(), "packetization-mode").unwrap_or("0");
    if our_mode != their_mode {
        return None;
    }
    let profile = |c: &Codec| {
        parse_profile_level_id(
            fmtp_param(c.fmtp.as_deref(), "profile-level-id").unwrap_or(H264_DEFAULT_PROFILE_LEVEL_ID),
        )
    };
    let [our_idc, _, our_level] = profile(ours)?;
    let [idc, iop, level] = profile(offered)?;
    if idc != our_idc {
        return None;
    }
    Some(format!(
        "profile-level-id={idc:02x}{iop:02x}{:02x};packetization-mode={their_mode}",
        level.min(our_level)
    ))
}

/// The first offered codec (offer order) that one of `ours` supports: the
/// offered codec (offer's payload type and fmtp) and the fmtp to answer
/// with.
fn choose_codec(offered: &[Codec], ours: &[Codec]) -> Option<(Codec, Option<String>)> {
    offered.iter().filter(|c| !is_telephone_event(c)).find_map(|off| {
        ours.iter()
            .filter(|o| !is_telephone_event(o) && o.same_format(off))
            .find_map(|o| {
                if is_h264(off) {
                    h264_answer_fmtp(o, off).map(|f| (off.clone(), Some(f)))
                } else {
                    Some((off.clone(), o.fmtp.clone()))
                }
            })
    })
}

/// The offered `telephone-event` to use with `audio`: the one with the same
/// clock rate (RFC 4733 §2.1), else the first.
fn choose_telephone_event<'a>(offered: &'a [Codec], audio: &Codec) -> Option<&'a Codec> {
    let events = || offered.iter().filter(|c| is_telephone_event(c));
    events()
        .find(|c| c.clock_rate == audio.clock_rate)
        .or_else(|| events().next())
}

/// The `a=rtcp-fb` values that apply to payload type `pt` and that
/// confgate's video forwarding honours (RFC 4585 §4.2 `nack`, `nack pli`;
/// RFC 5104 §7.1 `ccm fir`); none unless `kind` is video and the `m=` line
/// has an AVPF profile.
fn supported_feedback(kind: MediaKind, m: &MediaSection, pt: u8) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if kind != MediaKind::Video || !m.proto.has_feedback() {
        return out;
    }
    for fb in &m.rtcp_fb {
        if fb.payload_type.is_some_and(|p| p != pt) {
            continue;
        }
        let value = fb.value.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
        let known = ["nack", "nack pli", "ccm fir"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&value));
        if known && !out.iter().any(|v| v.eq_ignore_ascii_case(&value)) {
            out.push(value);
        }
    }
    out
}

/// The default audio codecs in confgate's preference order: `opus/48000/2`
/// (RFC 7587 §7), `G722/8000` (RFC 3551 §4.5.2), `PCMU/8000`, `PCMA/8000`
/// (RFC 3551 §4.5.14).
pub fn default_audio_codecs() -> Vec<Codec> {
    vec![
        codec("opus", 48_000, 2, None, Some("useinbandfec=1")),
        codec("G722", 8000, 1, Some(9), None),
        codec("PCMU", 8000, 1, Some(0), None),
        codec("PCMA", 8000, 1, Some(8), None),
    ]
}

/// The default video codecs in confgate's preference order: H.264
/// Constrained Baseline level 3.1, non-interleaved mode (RFC 6184 §8.1:
/// `profile-level-id=42e01f;packetization-mode=1`), then VP8 (RFC 7741
/// §6.1).
pub fn default_video_codecs() -> Vec<Codec> {
    vec![
        codec(
            "H264",
            90_000,
            1,
            None,
            Some("profile-level-id=42e01f;packetization-mode=1"),
        ),
        codec("VP8", 90_000, 1, None, None),
    ]
}

fn codec(name: &str, clock_rate: u32, channels: u8, payload_type: Option<u8>, fmtp: Option<&str>) -> Codec {
    Codec {
        name: name.to_owned(),
        clock_rate,
        channels,
        payload_type,
        fmtp: fmtp.map(str::to_owned),
    }
}

/// The audio codecs confgate offers the callee of a call between two
/// phones: the caller's own, in its order and with its payload types (a
/// callee that takes one of them is forwarded packet by packet), then each
/// of `transcodable` the caller did not offer, when the caller offered at
/// least one of `transcodable` itself (a callee that takes one of those is
/// reached through the mixer, which decodes one side and encodes the
/// other). `telephone-event` is left out: the offer adds its own.
pub fn bridge_codecs(caller: &[Codec], transcodable: &[Codec]) -> Vec<Codec> {
    let mut out: Vec<Codec> = caller.iter().filter(|c| !is_telephone_event(c)).cloned().collect();
    let decodable = out.iter().any(|c| transcodable.iter().any(|t| t.same_format(c)));
    if decodable {
        for t in transcodable {
            if !out.iter().any(|c| c.same_format(t)) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// What confgate answers an offer with (RFC 3264 §6): its relay address and
/// ports, the codecs and keys it can use, and the `o=` values.
pub struct AnswerParams {
    /// Our media address, written in `c=` and `o=` (RFC 8866 §5.7).
    pub address: IpAddr,
    /// Our relay's RTP port for audio (RTCP on the next port up unless
    /// multiplexed, RFC 3550 §11).
    pub audio_port: u16,
    /// Our relay's RTP port for video; `None` rejects video.
    pub video_port: Option<u16>,
    /// Audio codecs we accept; the offer's order decides (module docs).
    pub audio_codecs: Vec<Codec>,
    /// Video codecs we accept (H.264 matched per RFC 6184 §8.2.2).
    pub video_codecs: Vec<Codec>,
    /// Accept `telephone-event` (RFC 4733).
    pub telephone_event: bool,
    /// Our SRTP key material, one per suite we accept (RFC 4568 §7.1.2:
    /// the answer carries our own key for the chosen suite). Empty: SDES
    /// offers are refused.
    pub srtp_keys: Vec<SrtpKeys>,
    /// Refuse plain `RTP/AVP[F]` offers.
    pub require_srtp: bool,
    /// `<sess-id>` of our `o=` line; the same for every answer in a
    /// dialog (RFC 3264 §8).
    pub session_id: u64,
    /// `<sess-version>` of our `o=` line; the caller increments it for
    /// each new description in the dialog (RFC 3264 §8).
    pub session_version: u64,
    /// Accept RTP/RTCP multiplexing when offered (RFC 5761 §5.1.1).
    pub rtcp_mux: bool,
    /// The most we want: `sendrecv` normally, `sendonly` to play music on
    /// hold, `inactive` to hold. Combined with the offer's direction.
    pub direction: Direction,
}

impl AnswerParams {
    /// Answer parameters with the default codecs, `telephone-event`, no
    /// video, no SRTP, rtcp-mux allowed and `sendrecv`.
    pub fn new(address: IpAddr, audio_port: u16, session_id: u64, session_version: u64) -> Self {
        AnswerParams {
            address,
            audio_port,
            video_port: None,
            audio_codecs: default_audio_codecs(),
            video_codecs: default_video_codecs(),
            telephone_event: true,
            srtp_keys: Vec::new(),
            require_srtp: false,
            session_id,
            session_version,
            rtcp_mux: true,
            direction: Direction::SendRecv,
        }
    }
}

/// What was agreed for one stream, from confgate's point of view.
///
/// Compare the value of a re-INVITE's answer with the previous one to learn
/// whether anything the relay uses changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiatedStream {
    /// Index of the `m=` line in the description.
    pub index: usize,
    /// Audio or video.
    pub kind: MediaKind,
    /// The RTP profile of the `m=` line.
    pub proto: Proto,
    /// Where the peer receives RTP (its `c=` and `m=` port); the
    /// unspecified address when it holds the old way (RFC 3264 §8.4).
    pub remote_rtp: SocketAddr,
    /// Where the peer receives RTCP: `a=rtcp` (RFC 3605), else the next
    /// port up (RFC 3550 §11); `None` when multiplexed.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port both ways (RFC 5761).
    pub rtcp_mux: bool,
    /// The codec, with the payload type of the offer (RFC 3264 §6.1) and
    /// the fmtp the peer wrote for it (what it can receive).
    pub codec: Codec,
    /// The fmtp confgate wrote for the codec (for H.264: the negotiated
    /// `profile-level-id` and `packetization-mode`, RFC 6184 §8.2.2).
    pub local_fmtp: Option<String>,
    /// The `telephone-event` payload type (RFC 4733 §2.1), if agreed.
    pub telephone_event_pt: Option<u8>,
    /// The `telephone-event` clock rate, if agreed.
    pub telephone_event_rate: Option<u32>,
    /// Our direction (RFC 3264 §6.1).
    pub direction: Direction,
    /// The peer does not want to receive: it put the stream on hold
    /// (`a=sendonly`, `a=inactive` or `c=0.0.0.0`, RFC 3264 §8.4).
    pub held: bool,
    /// The peer's `a=ptime`: the packet duration it wants to receive
    /// (RFC 8866 §6.4).
    pub ptime: Option<u32>,
    /// The peer's SDES key: decrypts what it sends (RFC 4568 §6.1).
    pub remote_srtp: Option<SrtpKeys>,
    /// Our SDES key, same suite: encrypts what we send.
    pub local_srtp: Option<SrtpKeys>,
    /// The RTCP feedback both sides use (`nack`, `nack pli`, `ccm fir`).
    pub rtcp_fb: Vec<String>,
}

impl NegotiatedStream {
    /// The peer's side of the stream in the call model's terms: the agreed
    /// codec, the peer's direction, and where and how it receives.
    pub fn remote_media_stream(&self) -> MediaStream {
        MediaStream {
            kind: self.kind,
            codecs: vec![self.codec.clone()],
            direction: self.direction.reverse(),
            transport: Transport::Rtp {
                addr: Some(self.remote_rtp),
                rtcp_mux: self.rtcp_mux,
                srtp: self.remote_srtp.clone(),
            },
        }
    }
}

/// confgate's answer to an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The answer body (CRLF line ends).
    pub sdp: String,
    /// The audio stream, if one was accepted.
    pub audio: Option<NegotiatedStream>,
    /// The video stream, if one was accepted.
    pub video: Option<NegotiatedStream>,
}

/// What the peer's answer to confgate's offer settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio stream, unless rejected.
    pub audio: Option<NegotiatedStream>,
    /// The video stream, if offered and not rejected.
    pub video: Option<NegotiatedStream>,
}

/// Why one offered `m=` line was not accepted.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    NoCodec,
    SrtpRequired,
    NoCrypto,
    Dtls,
}

/// Answers an offer (RFC 3264 §6) with confgate's relay address and ports.
/// See the module docs for the rules.
///
/// # Errors
///
/// - [`SdpError::Unsupported`]: the streams that could be accepted need
///   DTLS-SRTP or SDES keys confgate cannot use, or are plain RTP while
///   [`AnswerParams::require_srtp`] is set;
/// - [`SdpError::NoCommonCodec`]: no audio or video stream can be accepted;
/// - [`SdpError::InvalidParams`]: a zero audio port or an SRTP key of the
///   wrong length.
pub fn answer(offer: &SessionDescription, params: &AnswerParams) -> Result<Answer, SdpError> {
    if params.audio_port == 0 || params.video_port == Some(0) {
        return Err(SdpError::InvalidParams {
            what: "a media port is 0",
        });
    }
    if params.srtp_keys.iter().any(|k| !k.lengths_match_suite()) {
        return Err(SdpError::InvalidParams {
            what: "an SRTP key or salt has the wrong length for its suite",
        });
    }
    let mut out = session_header(params.address, params.session_id, params.session_version);
    let mut audio = None;
    let mut video = None;
    let mut worst: Option<Refusal> = None;
    for (index, m) in offer.media.iter().enumerate() {
        let slot = match m.kind {
            Some(MediaKind::Audio) if audio.is_none() => Some((&mut audio, params.audio_port, &params.audio_codecs)),
            Some(MediaKind::Video) if video.is_none() => {
                params.video_port.map(|port| (&mut video, port, &params.video_codecs))
            }
            _ => None,
        };
        let Some((slot, port, ours)) = slot.filter(|_| m.port != 0) else {
            write_rejected(&mut out, m);
            continue;
        };
        match accept(index, m, ours, params) {
            Ok((negotiated, ours)) => {
                write_media(&mut out, m.media.as_str(), port, &m.proto, &ours);
                *slot = Some(negotiated);
            }
            Err(refusal) => {
                worst = worst.max(Some(refusal));
                write_rejected(&mut out, m);
            }
        }
    }
    if audio.is_none() && video.is_none() {
        return Err(match worst {
            Some(Refusal::Dtls) => SdpError::Unsupported {
                what: "DTLS-SRTP (UDP/TLS/RTP/SAVP[F] or a=fingerprint without a=crypto)",
            },
            Some(Refusal::NoCrypto) => SdpError::Unsupported {
                what: "no a=crypto line with a suite and key parameters confgate can use",
            },
            Some(Refusal::SrtpRequired) => SdpError::Unsupported {
                what: "plain RTP offered where SRTP is required",
            },
            _ => SdpError::NoCommonCodec,
        });
    }
    Ok(Answer { sdp: out, audio, video })
}

/// What confgate writes for one accepted stream.
struct LocalMedia {
    /// Codecs with the payload type and fmtp to write, in order.
    codecs: Vec<Codec>,
    ptime: Option<u32>,
    rtcp_mux: bool,
    /// `(tag, key)` per `a=crypto` line.
    crypto: Vec<(u32, SrtpKeys)>,
    rtcp_fb: Vec<(Option<u8>, String)>,
    direction: Direction,
}

/// Accepts offered m-line `m` with `ours` codecs, or says why not.
fn accept(
    index: usize,
    m: &MediaSection,
    ours: &[Codec],
    params: &AnswerParams,
) -> Result<(NegotiatedStream, LocalMedia), Refusal> {
    let kind = m.kind.ok_or(Refusal::NoCodec)?;
    if m.is_dtls() {
        return Err(Refusal::Dtls);
    }
    if !m.proto.is_rtp() {
        return Err(Refusal::NoCodec);
    }
    if !m.proto.is_sdes() && params.require_srtp {
        return Err(Refusal::SrtpRequired);
    }
    let (codec, local_fmtp) = choose_codec(&m.codecs, ours).ok_or(Refusal::NoCodec)?;
    let pt = codec.payload_type.ok_or(Refusal::NoCodec)?;
    let (remote_srtp, local_srtp, crypto) = if m.proto.is_sdes() {
        let (offered, local) = m
            .crypto
            .iter()
            .find_map(|c| {
                let local = params.srtp_keys.iter().find(|k| k.suite == c.keys.suite)?;
                Some((c, local))
            })
            .ok_or(Refusal::NoCrypto)?;
        (
            Some(offered.keys.clone()),
            Some(local.clone()),
            vec![(offered.tag, local.clone())],
        )
    } else {
        (None, None, Vec::new())
    };
    let telephone_event = if kind == MediaKind::Audio && params.telephone_event {
        choose_telephone_event(&m.codecs, &codec)
    } else {
        None
    };
    let rtcp_mux = m.rtcp_mux && params.rtcp_mux;
    let (remote_rtp, remote_rtcp) = m.destinations(rtcp_mux).ok_or(Refusal::NoCodec)?;
    let theirs = m.effective_direction();
    let reversed = theirs.reverse();
    let direction = direction_from(
        reversed.sends() && params.direction.sends(),
        reversed.receives() && params.direction.receives(),
    );
    let rtcp_fb = supported_feedback(kind, m, pt);
    let mut codecs = vec![Codec {
        fmtp: local_fmtp.clone(),
        ..codec.clone()
    }];
    if let Some(te) = telephone_event {
        codecs.push(Codec {
            fmtp: Some(te.fmtp.clone().unwrap_or_else(|| TELEPHONE_EVENTS.to_owned())),
            ..te.clone()
        });
    }
    let local = LocalMedia {
        codecs,
        ptime: (kind == MediaKind::Audio).then_some(AUDIO_PTIME_MS),
        rtcp_mux,
        crypto,
        rtcp_fb: rtcp_fb.iter().map(|v| (Some(pt), v.clone())).collect(),
        direction,
    };
    let negotiated = NegotiatedStream {
        index,
        kind,
        proto: m.proto.clone(),
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        codec,
        local_fmtp,
        telephone_event_pt: telephone_event.and_then(|c| c.payload_type),
        telephone_event_rate: telephone_event.map(|c| c.clock_rate),
        direction,
        held: !theirs.receives(),
        ptime: m.ptime,
        remote_srtp,
        local_srtp,
        rtcp_fb,
    };
    Ok((negotiated, local))
}

fn addr_type(address: IpAddr) -> &'static str {
    if address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

/// `v=`, `o=`, `s=`, `c=`, `t=` of confgate's descriptions (RFC 8866 §5).
fn session_header(address: IpAddr, session_id: u64, session_version: u64) -> String {
    let at = addr_type(address);
    format!(
        "v=0\r\no={OUR_NAME} {session_id} {session_version} IN {at} {address}\r\ns={OUR_NAME}\r\nc=IN {at} {address}\r\nt=0 0\r\n"
    )
}

/// A rejected stream: port 0, the offered protocol and formats (RFC 3264
/// §6).
fn write_rejected(out: &mut String, m: &MediaSection) {
    let _ = write!(out, "m={} 0 {}", m.media, m.proto);
    for f in &m.formats {
        out.push(' ');
        out.push_str(f);
    }
    out.push_str("\r\n");
}

/// An accepted or offered stream (RFC 8866 §5.14, §6).
fn write_media(out: &mut String, media: &str, port: u16, proto: &Proto, local: &LocalMedia) {
    let _ = write!(out, "m={media} {port} {proto}");
    for c in &local.codecs {
        if let Some(pt) = c.payload_type {
            let _ = write!(out, " {pt}");
        }
    }
    out.push_str("\r\n");
    for c in &local.codecs {
        let Some(pt) = c.payload_type else { continue };
        let _ = write!(out, "a=rtpmap:{pt} {}/{}", c.name, c.clock_rate);
        if c.channels > 1 {
            let _ = write!(out, "/{}", c.channels);
        }
        out.push_str("\r\n");
        if let Some(fmtp) = c.fmtp.as_deref().filter(|f| !f.is_empty()) {
            let _ = write!(out, "a=fmtp:{pt} {fmtp}\r\n");
        }
    }
    for (pt, value) in &local.rtcp_fb {
        match pt {
            Some(pt) => {
                let _ = write!(out, "a=rtcp-fb:{pt} {value}\r\n");
            }
            None => {
                let _ = write!(out, "a=rtcp-fb:* {value}\r\n");
            }
        }
    }
    if let Some(ptime) = local.ptime {
        let _ = write!(out, "a=ptime:{ptime}\r\n");
    }
    if local.rtcp_mux {
        out.push_str("a=rtcp-mux\r\n");
    }
    for (tag, keys) in &local.crypto {
        let mut key_salt = keys.master_key.clone();
        key_salt.extend_from_slice(&keys.master_salt);
        let _ = write!(
            out,
            "a=crypto:{tag} {} inline:{}\r\n",
            keys.suite.name(),
            BASE64.encode(&key_salt)
        );
    }
    let _ = write!(out, "a={}\r\n", local.direction);
}

/// What confgate offers (RFC 3264 §5) when it places a call or sends a late
/// offer.
pub struct OfferParams {
    /// Our media address, written in `c=` and `o=`.
    pub address: IpAddr,
    /// Our relay's RTP port for audio.
    pub audio_port: u16,
    /// Our relay's RTP port for video; `None` offers no video.
    pub video_port: Option<u16>,
    /// Audio codecs in our preference order. Static payload types of
    /// RFC 3551 §6 are used where they exist; other codecs keep their
    /// `payload_type` if it is free and dynamic (96–127), else get the next
    /// free one from 96 ([`OfferParams::offered_codecs`]).
    pub audio_codecs: Vec<Codec>,
    /// Video codecs in our preference order (dynamic payload types).
    pub video_codecs: Vec<Codec>,
    /// Offer `telephone-event/8000` as payload type
    /// [`TELEPHONE_EVENT_PT`] with events `0-16` (RFC 4733 §2.4.1).
    pub telephone_event: bool,
    /// Our SDES keys, one `a=crypto` line each with tags 1, 2, … in this
    /// order (RFC 4568 §5.1); non-empty makes the profile `RTP/SAVP`. Keys
    /// of the wrong length are left out (with none left the offer has no
    /// `a=crypto` and will be refused: it fails closed).
    pub srtp_keys: Vec<SrtpKeys>,
    /// `<sess-id>` of our `o=` line.
    pub session_id: u64,
    /// `<sess-version>` of our `o=` line (RFC 3264 §8).
    pub session_version: u64,
    /// Offer RTP/RTCP multiplexing (RFC 5761 §5.1.1; we still listen for
    /// RTCP on the next port up in case the answer declines).
    pub rtcp_mux: bool,
    /// Offer video with the AVPF profile and `nack`, `nack pli`, `ccm fir`
    /// feedback (RFC 4585, RFC 5104).
    pub video_feedback: bool,
    /// Our direction (`sendrecv`, or `sendonly`/`inactive` to hold,
    /// RFC 3264 §8.4).
    pub direction: Direction,
}

impl OfferParams {
    /// Offer parameters with the default codecs, `telephone-event`, no
    /// video, no SRTP, rtcp-mux and `sendrecv`.
    pub fn new(address: IpAddr, audio_port: u16, session_id: u64, session_version: u64) -> Self {
        OfferParams {
            address,
            audio_port,
            video_port: None,
            audio_codecs: default_audio_codecs(),
            video_codecs: default_video_codecs(),
            telephone_event: true,
            srtp_keys: Vec::new(),
            session_id,
            session_version,
            rtcp_mux: true,
            video_feedback: false,
            direction: Direction::SendRecv,
        }
    }

    fn offers_video(&self) -> bool {
        self.video_port.is_some() && !self.video_codecs.is_empty()
    }

    /// The codecs of the `m=` line of `kind` as offered: payload types
    /// assigned (static where RFC 3551 §6 has one, else dynamic 96–127
    /// avoiding [`TELEPHONE_EVENT_PT`]; codecs beyond the dynamic range are
    /// left out) and, for audio, `telephone-event` last.
    pub fn offered_codecs(&self, kind: MediaKind) -> Vec<Codec> {
        let list = match kind {
            MediaKind::Audio => &self.audio_codecs,
            MediaKind::Video => &self.video_codecs,
            MediaKind::Application => return Vec::new(),
        };
        let telephone_event = kind == MediaKind::Audio && self.telephone_event;
        let mut used: Vec<u8> = Vec::new();
        if telephone_event {
            used.push(TELEPHONE_EVENT_PT);
        }
        let mut out = Vec::new();
        for c in list.iter().filter(|c| !is_telephone_event(c)) {
            let pt = static_payload_type(c)
                .filter(|pt| !used.contains(pt))
                .or_else(|| c.payload_type.filter(|pt| (96..128).contains(pt) && !used.contains(pt)))
                .or_else(|| (96..128).find(|pt| !used.contains(pt)));
            let Some(pt) = pt else { continue };
            used.push(pt);
            out.push(Codec {
                payload_type: Some(pt),
                ..c.clone()
            });
        }
        if telephone_event {
            out.push(codec(
                "telephone-event",
                8000,
                1,
                Some(TELEPHONE_EVENT_PT),
                Some(TELEPHONE_EVENTS),
            ));
        }
        out
    }

    /// The usable keys with their `a=crypto` tags.
    fn crypto(&self) -> Vec<(u32, SrtpKeys)> {
        (1u32..)
            .zip(&self.srtp_keys)
            .filter(|(_, k)| k.lengths_match_suite())
            .map(|(tag, k)| (tag, k.clone()))
            .collect()
    }

    fn proto(&self, kind: MediaKind) -> Proto {
        Proto::rtp(
            !self.srtp_keys.is_empty(),
            kind == MediaKind::Video && self.video_feedback,
        )
    }
}

/// Writes confgate's offer (RFC 3264 §5): an audio `m=` line with the audio
/// codecs, `telephone-event` and `a=ptime:20`, then a video `m=` line if a
/// video port and codecs are given; `RTP/SAVP` with one `a=crypto` per key
/// when keys are given (RFC 4568 §5.1); `a=rtcp-mux` if asked.
pub fn offer(params: &OfferParams) -> String {
    let mut out = session_header(params.address, params.session_id, params.session_version);
    let audio = LocalMedia {
        codecs: params.offered_codecs(MediaKind::Audio),
        ptime: Some(AUDIO_PTIME_MS),
        rtcp_mux: params.rtcp_mux,
        crypto: params.crypto(),
        rtcp_fb: Vec::new(),
        direction: params.direction,
    };
    write_media(
        &mut out,
        "audio",
        params.audio_port,
        &params.proto(MediaKind::Audio),
        &audio,
    );
    if let (Some(port), true) = (params.video_port, params.offers_video()) {
        let video = LocalMedia {
            codecs: params.offered_codecs(MediaKind::Video),
            ptime: None,
            rtcp_mux: params.rtcp_mux,
            crypto: params.crypto(),
            rtcp_fb: if params.video_feedback {
                ["nack", "nack pli", "ccm fir"]
                    .into_iter()
                    .map(|v| (None, v.to_owned()))
                    .collect()
            } else {
                Vec::new()
            },
            direction: params.direction,
        };
        write_media(&mut out, "video", port, &params.proto(MediaKind::Video), &video);
    }
    out
}

/// Reads the peer's answer to the offer confgate wrote from `our_offer`
/// (RFC 3264 §6, §7): the remote address, the codec the peer picked (with
/// the answer's payload type), its SDES key matched to ours by tag and
/// suite (RFC 4568 §7.1.2), and the resulting directions.
///
/// # Errors
///
/// - [`SdpError::BadAnswer`]: the answer does not answer the offer (other
///   number or kinds of `m=` lines, another profile, no offered codec, no
///   `a=crypto` answering ours);
/// - [`SdpError::NoCommonCodec`]: the peer rejected every stream.
pub fn parse_answer(answer: &SessionDescription, our_offer: &OfferParams) -> Result<Negotiated, SdpError> {
    let mut kinds = vec![MediaKind::Audio];
    if our_offer.offers_video() {
        kinds.push(MediaKind::Video);
    }
    if answer.media.len() != kinds.len() {
        return Err(SdpError::BadAnswer {
            what: "the number of m= lines differs from the offer",
        });
    }
    let mut negotiated = Negotiated {
        audio: None,
        video: None,
    };
    for (index, (kind, m)) in kinds.into_iter().zip(&answer.media).enumerate() {
        if m.kind != Some(kind) {
            return Err(SdpError::BadAnswer {
                what: "an m= line has another media type than the offer's",
            });
        }
        if m.port == 0 {
            continue;
        }
        let stream = answered_stream(index, kind, m, our_offer)?;
        match kind {
            MediaKind::Video => negotiated.video = Some(stream),
            _ => negotiated.audio = Some(stream),
        }
    }
    if negotiated.audio.is_none() && negotiated.video.is_none() {
        return Err(SdpError::NoCommonCodec);
    }
    Ok(negotiated)
}

/// One accepted stream of an answer to our offer.
fn answered_stream(
    index: usize,
    kind: MediaKind,
    m: &MediaSection,
    our_offer: &OfferParams,
) -> Result<NegotiatedStream, SdpError> {
    if m.proto != our_offer.proto(kind) {
        return Err(SdpError::BadAnswer {
            what: "an m= line has another transport protocol than the offer's",
        });
    }
    let offered = our_offer.offered_codecs(kind);
    // The answer should use our payload type numbers (RFC 3264 §6.1); match
    // on them first, then on the format alone for answerers that renumber.
    let pick = |by_pt: bool| {
        m.codecs.iter().filter(|c| !is_telephone_event(c)).find_map(|theirs| {
            offered
                .iter()
                .filter(|o| o.same_format(theirs) && (!by_pt || o.payload_type == theirs.payload_type))
                .find(|o| {
                    !is_h264(o)
                        || fmtp_param(o.fmtp.as_deref(), "packetization-mode").unwrap_or("0")
                            == fmtp_param(theirs.fmtp.as_deref(), "packetization-mode").unwrap_or("0")
                })
                .map(|o| (theirs, o))
        })
    };
    let (theirs, ours) = pick(true).or_else(|| pick(false)).ok_or(SdpError::BadAnswer {
        what: "no codec of the offer in the answer",
    })?;
    let codec = Codec {
        name: ours.name.clone(),
        clock_rate: ours.clock_rate,
        channels: ours.channels,
        payload_type: theirs.payload_type,
        fmtp: theirs.fmtp.clone(),
    };
    let telephone_event = (kind == MediaKind::Audio && our_offer.telephone_event)
        .then(|| choose_telephone_event(&m.codecs, &codec))
        .flatten();
    let (remote_srtp, local_srtp) = if m.proto.is_sdes() {
        let ours = our_offer.crypto();
        let (theirs, mine) = m
            .crypto
            .iter()
            .find_map(|c| {
                let (_, mine) = ours.iter().find(|(tag, k)| *tag == c.tag && k.suite == c.keys.suite)?;
                Some((c.keys.clone(), mine.clone()))
            })
            .ok_or(SdpError::BadAnswer {
                what: "no a=crypto line answering one of ours (tag and suite)",
            })?;
        (Some(theirs), Some(mine))
    } else {
        (None, None)
    };
    let rtcp_mux = m.rtcp_mux && our_offer.rtcp_mux;
    let (remote_rtp, remote_rtcp) = m.destinations(rtcp_mux).ok_or(SdpError::BadAnswer {
        what: "no connection address",
    })?;
    let theirs_direction = m.effective_direction();
    let direction = direction_from(
        our_offer.direction.sends() && theirs_direction.receives(),
        our_offer.direction.receives() && theirs_direction.sends(),
    );
    let pt = codec.payload_type.unwrap_or_default();
    let rtcp_fb = supported_feedback(kind, m, pt);
    Ok(NegotiatedStream {
        index,
        kind,
        proto: m.proto.clone(),
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        local_fmtp: ours.fmtp.clone(),
        codec,
        telephone_event_pt: telephone_event.and_then(|c| c.payload_type),
        telephone_event_rate: telephone_event.map(|c| c.clock_rate),
        direction,
        held: !theirs_direction.receives(),
        ptime: m.ptime,
        remote_srtp,
        local_srtp,
        rtcp_fb,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bridge_offers_the_callers_codecs_then_the_transcodable_ones() {
        let pcmu = codec("PCMU", 8000, 1, Some(0), None);
        let g729 = codec("G729", 8000, 1, Some(18), None);
        let te = codec("telephone-event", 8000, 1, Some(101), Some("0-16"));
        let opus = codec("opus", 48_000, 2, Some(111), None);
        let g722 = codec("G722", 8000, 1, Some(9), None);
        let ours = [opus.clone(), g722.clone(), pcmu.clone()];
        let caller = [g729.clone(), codec("pcmu", 8000, 1, Some(0), None), te];
        let offered = bridge_codecs(&caller, &ours);
        let names: Vec<&str> = offered.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["G729", "pcmu", "opus", "G722"],
            "caller's first, no duplicate, no events"
        );
        assert_eq!(offered[0].payload_type, Some(18), "the caller's payload types are kept");
        // Nothing the mixer can decode on the caller's side: passthrough only.
        assert_eq!(bridge_codecs(std::slice::from_ref(&g729), &ours), [g729]);
        assert!(bridge_codecs(&[], &ours).is_empty());
    }
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OUR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));

    /// Linphone 5 style: opus, speex, G.711, three telephone-event rates.
    const LINPHONE: &str = "v=0\r\n\
        o=alice 2107 1432 IN IP4 10.0.0.5\r\n\
        s=Talk\r\n\
        c=IN IP4 10.0.0.5\r\n\
        t=0 0\r\n\
        a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
        m=audio 7078 RTP/AVP 96 97 98 0 8 101 99 100\r\n\
        a=rtpmap:96 opus/48000/2\r\n\
        a=fmtp:96 useinbandfec=1\r\n\
        a=rtpmap:97 speex/16000\r\n\
        a=fmtp:97 vbr=on\r\n\
        a=rtpmap:98 speex/8000\r\n\
        a=fmtp:98 vbr=on\r\n\
        a=rtpmap:101 telephone-event/48000\r\n\
        a=rtpmap:99 telephone-event/16000\r\n\
        a=rtpmap:100 telephone-event/8000\r\n\
        a=rtcp-fb:* trr-int 1000\r\n\
        a=rtcp-fb:* ccm tmmbr\r\n";

    /// baresip style, LF line ends, rtcp-mux and a=rtcp.
    const BARESIP: &str = "v=0\n\
        o=- 1906046298 1318355614 IN IP4 192.168.1.23\n\
        s=-\n\
        c=IN IP4 192.168.1.23\n\
        t=0 0\n\
        m=audio 10424 RTP/AVP 0 111 101\n\
        b=AS:64\n\
        a=rtpmap:0 PCMU/8000\n\
        a=rtpmap:111 opus/48000/2\n\
        a=fmtp:111 stereo=1;sprop-stereo=1\n\
        a=rtpmap:101 telephone-event/8000\n\
        a=fmtp:101 0-15\n\
        a=rtcp:10425 IN IP4 192.168.1.24\n\
        a=rtcp-mux\n\
        a=ptime:30\n\
        a=sendrecv\n\
        a=label:1\n\
        a=ssrc:1234 cname:baresip@host\n";

    /// Polycom VVX style: G.722 first, a session-level direction, and
    /// G.711/G.729 static payload types without a=rtpmap.
    const POLYCOM: &str = "v=0\r\n\
        o=- 1671446437 1671446437 IN IP4 172.16.5.40\r\n\
        s=Polycom IP Phone\r\n\
        c=IN IP4 172.16.5.40\r\n\
        t=0 0\r\n\
        a=sendrecv\r\n\
        m=audio 2222 RTP/AVP 9 102 0 8 18 127\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:102 G7221/16000\r\n\
        a=fmtp:102 bitrate=32000\r\n\
        a=fmtp:18 annexb=no\r\n\
        a=rtpmap:127 telephone-event/8000\r\n";

    /// Snom/Yealink style SDES offer: two usable suites, one with a
    /// lifetime, plus lines confgate must skip (MKI, short lifetime,
    /// UNENCRYPTED_SRTP, unknown suite).
    const SDES: &str = "v=0\r\n\
        o=root 1286556924 1286556924 IN IP4 203.0.113.7\r\n\
        s=call\r\n\
        c=IN IP4 203.0.113.7\r\n\
        t=0 0\r\n\
        m=audio 50012 RTP/SAVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^31\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+\r\n\
        a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^20|1:4\r\n\
        a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^20\r\n\
        a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e UNENCRYPTED_SRTP\r\n\
        a=crypto:6 F8_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\r\n\
        a=sendrecv\r\n";

    /// Video room system style: audio plus H.264 (mode 0 then mode 1,
    /// level 4.0), VP8 and H.263 on AVPF with feedback.
    const VIDEO: &str = "v=0\r\n\
        o=GroupSeries 1999 2000 IN IP4 10.1.2.3\r\n\
        s=-\r\n\
        c=IN IP4 10.1.2.3\r\n\
        b=AS:2048\r\n\
        t=0 0\r\n\
        m=audio 49170 RTP/AVP 9 0 101\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        m=video 49172 RTP/AVPF 109 110 111 34\r\n\
        b=TIAS:1920000\r\n\
        a=rtpmap:109 H264/90000\r\n\
        a=fmtp:109 profile-level-id=42e028;packetization-mode=0\r\n\
        a=rtpmap:110 H264/90000\r\n\
        a=fmtp:110 profile-level-id=42e028;packetization-mode=1;max-mbps=245000\r\n\
        a=rtpmap:111 VP8/90000\r\n\
        a=rtpmap:34 H263/90000\r\n\
        a=rtcp-fb:* ccm fir\r\n\
        a=rtcp-fb:* nack pli\r\n\
        a=rtcp-fb:* ccm tmmbr\r\n\
        a=content:main\r\n";

    /// Chrome's WebRTC offer (DTLS-SRTP, ICE, BUNDLE).
    const WEBRTC: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0\r\n\
        a=extmap-allow-mixed\r\n\
        a=msid-semantic: WMS\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:EsAw\r\n\
        a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
        a=ice-options:trickle\r\n\
        a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
        a=setup:actpass\r\n\
        a=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=sendrecv\r\n\
        a=rtcp-mux\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=rtcp-fb:111 transport-cc\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:63 red/48000/2\r\n\
        a=fmtp:63 111/111\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:13 CN/8000\r\n\
        a=rtpmap:110 telephone-event/48000\r\n\
        a=rtpmap:126 telephone-event/8000\r\n\
        a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r\n";

    fn keys(suite: SrtpSuite, first: u8) -> SrtpKeys {
        let bytes: Vec<u8> = (first..).take(suite.key_len() + suite.salt_len()).collect();
        let (k, s) = bytes.split_at(suite.key_len());
        SrtpKeys {
            suite,
            master_key: k.to_vec(),
            master_salt: s.to_vec(),
        }
    }

    fn params() -> AnswerParams {
        AnswerParams::new(OUR_IP, 40000, 7, 1)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Lines of an SDP body, either line end.
    fn lines(sdp: &str) -> Vec<&str> {
        sdp.lines().collect()
    }

    #[test]
    fn parse_linphone_offer() {
        let sd = parse(LINPHONE).unwrap();
        assert_eq!(sd.origin.username, "alice");
        assert_eq!(sd.origin.session_id, "2107");
        assert_eq!(sd.origin.session_version, "1432");
        assert_eq!(sd.session_name.as_deref(), Some("Talk"));
        assert!(sd.attribute("rtcp-xr").is_some(), "unknown session attribute kept");
        let m = &sd.media[0];
        assert_eq!(m.kind, Some(MediaKind::Audio));
        assert_eq!((m.port, m.port_count, &m.proto), (7078, None, &Proto::RtpAvp));
        assert_eq!(m.formats, ["96", "97", "98", "0", "8", "101", "99", "100"]);
        let names: Vec<String> = m
            .codecs
            .iter()
            .map(|c| format!("{}/{}/{}:{}", c.name, c.clock_rate, c.channels, c.payload_type.unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "opus/48000/2:96",
                "speex/16000/1:97",
                "speex/8000/1:98",
                "PCMU/8000/1:0",
                "PCMA/8000/1:8",
                "telephone-event/48000/1:101",
                "telephone-event/16000/1:99",
                "telephone-event/8000/1:100"
            ]
        );
        assert_eq!(m.codecs[0].fmtp.as_deref(), Some("useinbandfec=1"));
        assert_eq!(m.connection, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))));
        assert_eq!(m.direction, Direction::SendRecv);
        assert_eq!(m.rtcp_fb.len(), 2);
        assert_eq!(m.rtcp_fb[1].payload_type, None);
        assert_eq!(m.rtcp_fb[1].value, "ccm tmmbr");
        assert!(!m.rtcp_mux && m.rtcp.is_none() && m.crypto.is_empty());
    }

    #[test]
    fn answer_linphone_picks_opus_with_matching_telephone_event() {
        let offer = parse(LINPHONE).unwrap();
        let a = answer(&offer, &params()).unwrap();
        let audio = a.audio.clone().unwrap();
        assert_eq!(audio.codec.name, "opus");
        assert_eq!(audio.codec.payload_type, Some(96));
        assert_eq!(audio.codec.fmtp.as_deref(), Some("useinbandfec=1"));
        // RFC 4733 §2.1: the telephone-event of the audio codec's rate.
        assert_eq!(audio.telephone_event_pt, Some(101));
        assert_eq!(audio.telephone_event_rate, Some(48_000));
        assert_eq!(audio.remote_rtp, sa("10.0.0.5:7078"));
        assert_eq!(audio.remote_rtcp, Some(sa("10.0.0.5:7079")));
        assert!(!audio.rtcp_mux, "not offered, so not answered");
        assert_eq!(audio.ptime, None);
        assert!(!audio.held);
        assert!(a.video.is_none());
        assert_eq!(
            lines(&a.sdp),
            [
                "v=0",
                "o=confgate 7 1 IN IP4 198.51.100.10",
                "s=confgate",
                "c=IN IP4 198.51.100.10",
                "t=0 0",
                "m=audio 40000 RTP/AVP 96 101",
                "a=rtpmap:96 opus/48000/2",
                "a=fmtp:96 useinbandfec=1",
                "a=rtpmap:101 telephone-event/48000",
                "a=fmtp:101 0-16",
                "a=ptime:20",
                "a=sendrecv",
            ]
        );
        assert!(a.sdp.ends_with("\r\n") && !a.sdp.contains("\n\n"));
    }

    #[test]
    fn answer_baresip_follows_offer_order_and_rtcp_mux() {
        let offer = parse(BARESIP).unwrap();
        let m = &offer.media[0];
        assert_eq!(
            m.rtcp,
            Some(Rtcp {
                port: 10425,
                address: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 24)))
            })
        );
        assert_eq!(m.ptime, Some(30));
        assert!(m.attribute("label").is_some() && m.attribute("ssrc").is_some());
        let a = answer(&offer, &params()).unwrap();
        let audio = a.audio.unwrap();
        // PCMU is first in the offer; the offerer's order wins over ours.
        assert_eq!(audio.codec.name, "PCMU");
        assert_eq!(audio.codec.payload_type, Some(0));
        assert_eq!(audio.telephone_event_pt, Some(101));
        assert_eq!(audio.telephone_event_rate, Some(8000));
        assert!(audio.rtcp_mux);
        assert_eq!(audio.remote_rtcp, None);
        assert_eq!(audio.ptime, Some(30));
        assert!(a.sdp.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{}", a.sdp);
        assert!(a.sdp.contains("a=rtcp-mux\r\n"));
        assert!(a.sdp.contains("a=fmtp:101 0-15\r\n"), "offered events echoed");

        // Not multiplexed when the caller does not allow it: a=rtcp is used.
        let mut p = params();
        p.rtcp_mux = false;
        let a = answer(&offer, &p).unwrap();
        let audio = a.audio.unwrap();
        assert!(!audio.rtcp_mux);
        assert_eq!(audio.remote_rtcp, Some(sa("192.168.1.24:10425")));
        assert!(!a.sdp.contains("rtcp-mux"));
    }

    #[test]
    fn answer_polycom_g722_and_static_payload_types() {
        let offer = parse(POLYCOM).unwrap();
        let m = &offer.media[0];
        // 0, 8 and 18 have no a=rtpmap: known from RFC 3551.
        let pcma = m.codecs.iter().find(|c| c.payload_type == Some(8)).unwrap();
        assert_eq!((pcma.name.as_str(), pcma.clock_rate), ("PCMA", 8000));
        let g729 = m.codecs.iter().find(|c| c.payload_type == Some(18)).unwrap();
        assert_eq!((g729.name.as_str(), g729.fmtp.as_deref()), ("G729", Some("annexb=no")));
        assert_eq!(m.direction, Direction::SendRecv);
        let a = answer(&offer, &params()).unwrap();
        let audio = a.audio.unwrap();
        assert_eq!(audio.codec.name, "G722");
        assert_eq!(audio.codec.clock_rate, 8000);
        assert_eq!(audio.codec.payload_type, Some(9));
        assert_eq!(audio.telephone_event_pt, Some(127));
        assert!(a
            .sdp
            .contains("m=audio 40000 RTP/AVP 9 127\r\na=rtpmap:9 G722/8000\r\n"));

        // Without G.722 on our side, the next offered codec we have: PCMU.
        let mut p = params();
        p.audio_codecs.retain(|c| c.name != "G722");
        p.telephone_event = false;
        let a = answer(&offer, &p).unwrap();
        let audio = a.audio.unwrap();
        assert_eq!(audio.codec.payload_type, Some(0));
        assert_eq!(audio.telephone_event_pt, None);
        assert!(a.sdp.contains("m=audio 40000 RTP/AVP 0\r\n"));
    }

    #[test]
    fn sdes_offer_keeps_usable_crypto_lines_only() {
        let offer = parse(SDES).unwrap();
        let m = &offer.media[0];
        assert_eq!(m.proto, Proto::RtpSavp);
        let tags: Vec<u32> = m.crypto.iter().map(|c| c.tag).collect();
        assert_eq!(tags, [1, 2], "MKI, 2^20 lifetime, UNENCRYPTED_SRTP and F8 skipped");
        assert_eq!(m.crypto[0].keys, keys(SrtpSuite::AesCm128HmacSha1_80, 1));
        assert_eq!(m.crypto[1].keys, keys(SrtpSuite::AesCm128HmacSha1_32, 0x21));
        assert_eq!(
            m.attributes.iter().filter(|a| a.name == "crypto").count(),
            6,
            "skipped lines stay in the attributes"
        );
    }

    #[test]
    fn sdes_answer_echoes_tag_and_suite_with_our_key() {
        let offer = parse(SDES).unwrap();
        let ours80 = keys(SrtpSuite::AesCm128HmacSha1_80, 100);
        let ours32 = keys(SrtpSuite::AesCm128HmacSha1_32, 150);

        // Both suites possible: the offerer's first line wins.
        let mut p = params();
        p.srtp_keys = vec![ours32.clone(), ours80.clone()];
        let a = answer(&offer, &p).unwrap();
        let audio = a.audio.unwrap();
        assert_eq!(audio.remote_srtp, Some(keys(SrtpSuite::AesCm128HmacSha1_80, 1)));
        assert_eq!(audio.local_srtp, Some(ours80.clone()));
        let crypto: Vec<&str> = lines(&a.sdp)
            .into_iter()
            .filter(|l| l.starts_with("a=crypto"))
            .collect();
        let mut key_salt = ours80.master_key.clone();
        key_salt.extend_from_slice(&ours80.master_salt);
        assert_eq!(
            crypto,
            [format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}",
                BASE64.encode(&key_salt)
            )]
        );
        assert!(a.sdp.contains("m=audio 40000 RTP/SAVP 8 101\r\n"));

        // Only the 32-bit tag suite on our side: tag 2 echoed.
        p.srtp_keys = vec![ours32.clone()];
        let a = answer(&offer, &p).unwrap();
        let audio = a.audio.unwrap();
        assert_eq!(audio.remote_srtp, Some(keys(SrtpSuite::AesCm128HmacSha1_32, 0x21)));
        assert_eq!(audio.local_srtp, Some(ours32));
        assert!(a.sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
        assert_eq!(a.sdp.matches("a=crypto").count(), 1);

        // No keys of ours: the SAVP offer cannot be accepted.
        let err = answer(&offer, &params()).unwrap_err();
        assert!(matches!(err, SdpError::Unsupported { .. }), "{err}");
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn sdes_offer_with_only_unusable_crypto_is_unsupported() {
        let only_mki = SDES
            .lines()
            .filter(|l| !l.starts_with("a=crypto:1 ") && !l.starts_with("a=crypto:2 "))
            .collect::<Vec<_>>()
            .join("\r\n");
        let offer = parse(&only_mki).unwrap();
        assert!(offer.media[0].crypto.is_empty());
        let mut p = params();
        p.srtp_keys = vec![keys(SrtpSuite::AesCm128HmacSha1_80, 9)];
        let err = answer(&offer, &p).unwrap_err();
        assert_eq!(
            err,
            SdpError::Unsupported {
                what: "no a=crypto line with a suite and key parameters confgate can use"
            }
        );
    }

    #[test]
    fn crypto_line_variants() {
        let line = "1 AEAD_AES_128_GCM inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXA";
        let c = parse_crypto(line).unwrap();
        assert_eq!(c.keys, keys(SrtpSuite::AeadAes128Gcm, 0x41), "unpadded base64");
        let padded = parse_crypto(&format!("{line}==")).unwrap();
        assert_eq!(padded.keys, c.keys);
        assert!(parse_crypto(&format!("{line} WSH=64")).is_some());
        assert!(parse_crypto(&format!("{line} KDR=1")).is_none());
        assert!(parse_crypto(&format!("{line}|1048576")).is_none(), "2^20 as a number");
        assert!(
            parse_crypto(&format!("{line}|2147483648")).is_some(),
            "2^31 as a number"
        );
        assert!(parse_crypto(&format!("{line}|2^99")).is_none());
        // Wrong key length for the suite.
        assert!(parse_crypto("1 AEAD_AES_256_GCM inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXA").is_none());
        assert!(parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:not base64!!").is_none());
        assert!(parse_crypto("x AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e").is_none());
        assert!(parse_crypto(
            "1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e;inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
        )
        .is_none());
    }

    #[test]
    fn answer_video_h264_mode_and_level() {
        let offer = parse(VIDEO).unwrap();
        let mut p = params();
        p.video_port = Some(40002);
        let a = answer(&offer, &p).unwrap();
        let audio = a.audio.unwrap();
        assert_eq!(audio.codec.name, "G722");
        let video = a.video.unwrap();
        assert_eq!(video.index, 1);
        assert_eq!(video.kind, MediaKind::Video);
        // PT 109 is packetization-mode 0: skipped for 110, mode 1.
        assert_eq!(video.codec.payload_type, Some(110));
        assert_eq!(
            video.codec.fmtp.as_deref(),
            Some("profile-level-id=42e028;packetization-mode=1;max-mbps=245000")
        );
        // RFC 6184 §8.2.2: same profile, our lower level (3.1).
        assert_eq!(
            video.local_fmtp.as_deref(),
            Some("profile-level-id=42e01f;packetization-mode=1")
        );
        assert_eq!(video.rtcp_fb, ["ccm fir", "nack pli"], "tmmbr not supported");
        assert_eq!(video.ptime, None);
        assert_eq!(video.remote_rtp, sa("10.1.2.3:49172"));
        let sdp = lines(&a.sdp);
        let at = sdp.iter().position(|l| l.starts_with("m=video")).unwrap();
        assert_eq!(
            sdp[at..],
            [
                "m=video 40002 RTP/AVPF 110",
                "a=rtpmap:110 H264/90000",
                "a=fmtp:110 profile-level-id=42e01f;packetization-mode=1",
                "a=rtcp-fb:110 ccm fir",
                "a=rtcp-fb:110 nack pli",
                "a=sendrecv"
            ]
        );

        // Without H.264 on our side VP8 is chosen.
        p.video_codecs.retain(|c| c.name != "H264");
        let video = answer(&offer, &p).unwrap().video.unwrap();
        assert_eq!(
            (video.codec.name.as_str(), video.codec.payload_type),
            ("VP8", Some(111))
        );

        // No video port: video rejected with port 0 and the offered formats.
        let a = answer(&offer, &params()).unwrap();
        assert!(a.video.is_none());
        assert!(a.sdp.contains("m=video 0 RTP/AVPF 109 110 111 34\r\n"), "{}", a.sdp);
    }

    #[test]
    fn h264_profile_must_match() {
        let high = VIDEO
            .replace("42e028;packetization-mode=1", "640c1f;packetization-mode=1")
            .replace("a=rtpmap:111 VP8/90000\r\n", "a=rtpmap:111 VP9/90000\r\n");
        let offer = parse(&high).unwrap();
        let mut p = params();
        p.video_port = Some(40002);
        let a = answer(&offer, &p).unwrap();
        assert!(a.video.is_none(), "High profile and VP9 are not ours");
        assert!(a.audio.is_some());
        // A missing profile-level-id means Baseline 1.0 (RFC 6184 §8.1).
        let bare = codec("H264", 90_000, 1, Some(99), Some("packetization-mode=1"));
        let ours = &default_video_codecs()[0];
        assert_eq!(
            h264_answer_fmtp(ours, &bare).as_deref(),
            Some("profile-level-id=42000a;packetization-mode=1")
        );
    }

    #[test]
    fn hold_reinvite_with_sendonly() {
        let offer = parse(BARESIP).unwrap();
        let before = answer(&offer, &params()).unwrap().audio.unwrap();
        let held = parse(
            &BARESIP
                .replace("o=- 1906046298 1318355614", "o=- 1906046298 1318355615")
                .replace("a=sendrecv", "a=sendonly"),
        )
        .unwrap();
        let mut p = params();
        p.session_version = 2;
        let a = answer(&held, &p).unwrap();
        let after = a.audio.clone().unwrap();
        assert!(after.held);
        assert_eq!(after.direction, Direction::RecvOnly);
        assert!(a.sdp.contains("a=recvonly\r\n"));
        assert!(a.sdp.contains("o=confgate 7 2 IN IP4"), "same id, new version");
        assert_ne!(before, after);
        assert_eq!(
            NegotiatedStream {
                direction: Direction::SendRecv,
                held: false,
                ..after.clone()
            },
            before,
            "only the direction changed"
        );

        // inactive stays inactive.
        let inactive = parse(&BARESIP.replace("a=sendrecv", "a=inactive")).unwrap();
        let a = answer(&inactive, &params()).unwrap();
        assert_eq!(a.audio.unwrap().direction, Direction::Inactive);
        assert!(a.sdp.contains("a=inactive\r\n"));

        // Resume with the identical SDP: nothing changed.
        let again = answer(&offer, &params()).unwrap().audio.unwrap();
        assert_eq!(again, before);
    }

    #[test]
    fn old_style_hold_with_zero_address() {
        let text = POLYCOM.replace("c=IN IP4 172.16.5.40", "c=IN IP4 0.0.0.0");
        let offer = parse(&text).unwrap();
        assert!(offer.media[0].is_hold_address());
        assert_eq!(offer.media[0].direction, Direction::SendRecv);
        assert_eq!(offer.media[0].effective_direction(), Direction::SendOnly);
        let audio = answer(&offer, &params()).unwrap().audio.unwrap();
        assert!(audio.held);
        assert_eq!(audio.direction, Direction::RecvOnly);
        assert!(audio.remote_rtp.ip().is_unspecified());
    }

    #[test]
    fn direction_session_default_and_media_override() {
        let text = POLYCOM.replace("a=sendrecv\r\n", "a=recvonly\r\n");
        let offer = parse(&text).unwrap();
        assert_eq!(offer.direction, Some(Direction::RecvOnly));
        assert_eq!(offer.media[0].direction, Direction::RecvOnly);
        let audio = answer(&offer, &params()).unwrap().audio.unwrap();
        assert_eq!(audio.direction, Direction::SendOnly);
        assert!(!audio.held);

        let text = format!("{text}a=inactive\r\n");
        let offer = parse(&text).unwrap();
        assert_eq!(offer.media[0].direction, Direction::Inactive, "media level wins");

        // Our own limit: we play music on hold (sendonly) to a sendrecv offer.
        let mut p = params();
        p.direction = Direction::SendOnly;
        let audio = answer(&parse(POLYCOM).unwrap(), &p).unwrap().audio.unwrap();
        assert_eq!(audio.direction, Direction::SendOnly);
        assert!(!audio.held);
    }

    #[test]
    fn webrtc_dtls_offer_is_unsupported() {
        let offer = parse(WEBRTC).unwrap();
        let m = &offer.media[0];
        assert_eq!(m.proto, Proto::UdpTlsRtpSavpf);
        assert!(m.is_dtls());
        assert_eq!(m.setup.as_deref(), Some("actpass"));
        assert_eq!(m.ice_ufrag.as_deref(), Some("EsAw"));
        assert!(m.fingerprint.as_deref().unwrap().starts_with("sha-256 D2:FA"));
        assert!(offer.connection.is_none() && m.connection.is_some());
        let mut p = params();
        p.srtp_keys = vec![keys(SrtpSuite::AesCm128HmacSha1_80, 3)];
        let err = answer(&offer, &p).unwrap_err();
        assert!(
            matches!(err, SdpError::Unsupported { what } if what.starts_with("DTLS")),
            "{err}"
        );
        assert_eq!(err.sip_status(), 488);

        // An SAVPF line with a fingerprint but no crypto is DTLS too.
        let savpf = parse(&WEBRTC.replace("UDP/TLS/RTP/SAVPF", "RTP/SAVPF")).unwrap();
        assert!(savpf.media[0].is_dtls());
        assert!(matches!(answer(&savpf, &p), Err(SdpError::Unsupported { .. })));
    }

    #[test]
    fn unsupported_and_extra_m_lines_get_port_zero() {
        let text = format!(
            "{BARESIP}m=audio 10430 RTP/AVP 8\n\
             m=application 5070 UDP/BFCP *\n\
             a=floorctrl:c-s\n\
             m=image 10432 udptl t38\n\
             m=text 0 RTP/AVP 98\n\
             a=rtpmap:98 t140/1000\n"
        );
        let offer = parse(&text).unwrap();
        assert_eq!(offer.media.len(), 5);
        assert_eq!(offer.media[2].kind, Some(MediaKind::Application));
        assert_eq!(offer.media[3].kind, None);
        assert_eq!(offer.media[3].proto, Proto::Other("udptl".into()));
        assert!(offer.media[3].codecs.is_empty());
        let a = answer(&offer, &params()).unwrap();
        let m_lines: Vec<&str> = lines(&a.sdp).into_iter().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=audio 40000 RTP/AVP 0 101",
                "m=audio 0 RTP/AVP 8",
                "m=application 0 UDP/BFCP *",
                "m=image 0 udptl t38",
                "m=text 0 RTP/AVP 98"
            ]
        );
        // The answer parses and keeps the order and number of m= lines.
        assert_eq!(parse(&a.sdp).unwrap().media.len(), 5);
    }

    #[test]
    fn no_common_codec() {
        let text = POLYCOM.replace(
            "m=audio 2222 RTP/AVP 9 102 0 8 18 127",
            "m=audio 2222 RTP/AVP 102 18 127",
        );
        let err = answer(&parse(&text).unwrap(), &params()).unwrap_err();
        assert_eq!(err, SdpError::NoCommonCodec);
        assert_eq!(err.sip_status(), 488);
        // Only telephone-event in common is not enough.
        let text = POLYCOM.replace("m=audio 2222 RTP/AVP 9 102 0 8 18 127", "m=audio 2222 RTP/AVP 127");
        assert_eq!(answer(&parse(&text).unwrap(), &params()), Err(SdpError::NoCommonCodec));
        // A plain offer when SRTP is required.
        let mut p = params();
        p.require_srtp = true;
        assert!(matches!(
            answer(&parse(POLYCOM).unwrap(), &p),
            Err(SdpError::Unsupported { .. })
        ));
    }

    #[test]
    fn invalid_params() {
        let offer = parse(POLYCOM).unwrap();
        let mut p = params();
        p.srtp_keys = vec![SrtpKeys {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            master_key: vec![1; 16],
            master_salt: vec![2; 12],
        }];
        let err = answer(&offer, &p).unwrap_err();
        assert!(matches!(err, SdpError::InvalidParams { .. }));
        assert_eq!(err.sip_status(), 500);
        let p = AnswerParams::new(OUR_IP, 0, 1, 1);
        assert!(matches!(answer(&offer, &p), Err(SdpError::InvalidParams { .. })));
    }

    #[test]
    fn ipv6_offer_and_answer() {
        let text =
            "v=0\r\no=- 1 1 IN IP6 2001:db8::5\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\nm=audio 5004 RTP/AVP 8\r\n";
        let offer = parse(text).unwrap();
        let p = AnswerParams::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 4000, 3, 4);
        let a = answer(&offer, &p).unwrap();
        assert_eq!(a.audio.unwrap().remote_rtp, sa("[2001:db8::5]:5004"));
        assert!(a.sdp.contains("c=IN IP6 2001:db8::1\r\n"));
        assert!(a.sdp.contains("o=confgate 3 4 IN IP6 2001:db8::1\r\n"));
        assert_eq!(parse(&a.sdp).unwrap().connection, Some(p.address));
    }

    #[test]
    fn lenient_parsing() {
        // No s=, no t=, LF only, a blank line, unknown line types, trailing
        // spaces, a decimal ptime.
        let text = "v=0\no=- 5 5 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\nx=whatever\n\nm=audio 6000 RTP/AVP 0 \na=ptime:20.0\na=X-nortel-stuff\n";
        let sd = parse(text).unwrap();
        assert_eq!(sd.session_name, None);
        assert_eq!(sd.media[0].formats, ["0"]);
        assert_eq!(sd.media[0].ptime, Some(20));
        assert_eq!(sd.media[0].attribute("X-nortel-stuff"), Some(None));
        // Port 0 m= line without any c= is fine (rejected stream).
        let text = "v=0\no=- 5 5 IN IP4 192.0.2.1\nm=audio 0 RTP/AVP 0\n";
        assert_eq!(parse(text).unwrap().media[0].port, 0);
        // Port count.
        let text = "v=0\no=- 5 5 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\nm=audio 6000/2 RTP/AVP 0\n";
        assert_eq!(parse(text).unwrap().media[0].port_count, Some(2));
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn garbage_is_rejected_naming_the_line() {
        let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n";
        assert_eq!(
            error_of(&format!("{head}m=audio x RTP/AVP 0\r\n")),
            "line 5: bad m= line: port 'x' is not a number"
        );
        assert_eq!(
            error_of(&format!("{head}m=audio 70000 RTP/AVP 0\r\n")),
            "line 5: bad m= line: port '70000' is not a number"
        );
        assert_eq!(
            error_of(&format!("{head}t=0 0\r\nm=audio 5000 RTP/AVP 0 200\r\n")),
            "line 6: bad m= line: format '200' is not an RTP payload type (0-127)"
        );
        assert_eq!(
            error_of(&format!("{head}m=audio 5000 RTP/AVP\r\n")),
            "line 5: bad m= line: no formats"
        );
        assert_eq!(
            error_of("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 example.com\r\n"),
            "line 3: bad c= line: address 'example.com' is not an IP literal"
        );
        assert_eq!(
            error_of("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 2001:db8::1\r\n"),
            "line 3: bad c= line: address '2001:db8::1' is not of type IP4"
        );
        assert_eq!(
            error_of(&format!("{head}m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus/fast\r\n")),
            "line 6: bad a=rtpmap line: clock rate 'fast' is not a number"
        );
        assert_eq!(
            error_of(&format!("{head}m=audio 5000 RTP/AVP 96\r\na=rtcp:abc\r\n")),
            "line 6: bad a=rtcp line: port 'abc' is not a number"
        );
        assert_eq!(
            error_of("v=0\r\no=- one 1 IN IP4 192.0.2.1\r\n"),
            "line 2: bad o= line: session id 'one' is not a number"
        );
        assert_eq!(
            error_of("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 5000 RTP/AVP 0\r\n"),
            "line 3: bad m= line: no connection address (c=) at media or session level"
        );
        assert_eq!(
            error_of("INVITE sip:bob@example.com SIP/2.0\r\n"),
            "line 1: bad type=value line: 'INVITE sip:bob@example.com SIP/2.0' is not a <type>=<value> line"
        );
        assert_eq!(
            error_of("o=- 1 1 IN IP4 192.0.2.1\r\n"),
            "line 1: bad v= line: the description must start with v=0"
        );
        assert_eq!(error_of("v=0\r\ns=-\r\n"), "no o= line in the session description");
        assert_eq!(parse("\r\n\r\n"), Err(SdpError::Empty));
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert!(error_of("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=a\rb\r\n").starts_with("line 3: "));
        assert_eq!(
            error_of("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\no=- 1 1 IN IP4 192.0.2.1\r\n"),
            "line 3: bad o= line: second o= line"
        );
        // A long token is cut in the message.
        let long = "9".repeat(100);
        let msg = error_of(&format!("{head}m=audio {long} RTP/AVP 0\r\n"));
        assert!(msg.len() < 100 && msg.contains('…'), "{msg}");
    }

    #[test]
    fn limits() {
        let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n";
        let mut text = head.to_owned();
        for _ in 0..MAX_MEDIA {
            text.push_str("m=audio 5000 RTP/AVP 0\r\n");
        }
        assert_eq!(parse(&text).unwrap().media.len(), MAX_MEDIA);
        text.push_str("m=audio 5000 RTP/AVP 0\r\n");
        assert_eq!(parse(&text), Err(SdpError::TooManyMedia { line: 4 + MAX_MEDIA }));

        let formats: Vec<String> = (0..=MAX_FORMATS).map(|i| (i % 128).to_string()).collect();
        let text = format!("{head}m=audio 5000 RTP/AVP {}\r\n", formats.join(" "));
        assert_eq!(parse(&text), Err(SdpError::TooManyFormats { line: 4 }));
        let text = format!("{head}m=audio 5000 RTP/AVP {}\r\n", formats[1..].join(" "));
        assert_eq!(parse(&text).unwrap().media[0].formats.len(), MAX_FORMATS);

        let big = format!("{head}{}", "a=x\r\n".repeat(MAX_SDP_LEN / 5));
        assert_eq!(parse(&big), Err(SdpError::TooLarge { size: big.len() }));
    }

    #[test]
    fn offer_layout() {
        let mut p = OfferParams::new(OUR_IP, 30000, 42, 1);
        p.srtp_keys = vec![
            keys(SrtpSuite::AesCm128HmacSha1_80, 1),
            keys(SrtpSuite::AesCm128HmacSha1_32, 0x21),
        ];
        let sdp = offer(&p);
        assert_eq!(
            lines(&sdp),
            [
                "v=0",
                "o=confgate 42 1 IN IP4 198.51.100.10",
                "s=confgate",
                "c=IN IP4 198.51.100.10",
                "t=0 0",
                "m=audio 30000 RTP/SAVP 96 9 0 8 101",
                "a=rtpmap:96 opus/48000/2",
                "a=fmtp:96 useinbandfec=1",
                "a=rtpmap:9 G722/8000",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-16",
                "a=ptime:20",
                "a=rtcp-mux",
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e",
                "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+",
                "a=sendrecv",
            ]
        );
        // Payload types: a requested free dynamic one is kept, 101 avoided.
        p.audio_codecs = vec![
            codec("opus", 48_000, 2, Some(111), None),
            codec("L16", 16_000, 1, Some(101), None),
            codec("speex", 8000, 1, None, None),
        ];
        let pts: Vec<Option<u8>> = p
            .offered_codecs(MediaKind::Audio)
            .iter()
            .map(|c| c.payload_type)
            .collect();
        assert_eq!(pts, [Some(111), Some(96), Some(97), Some(101)]);
    }

    #[test]
    fn round_trip_offer_answer_parse_answer() {
        // confgate calls another confgate: SDES, audio and video with
        // feedback.
        let ours_a = keys(SrtpSuite::AesCm128HmacSha1_80, 1);
        let ours_b = keys(SrtpSuite::AeadAes128Gcm, 0x41);
        let mut op = OfferParams::new(OUR_IP, 30000, 42, 1);
        op.video_port = Some(30002);
        op.video_feedback = true;
        op.srtp_keys = vec![ours_b.clone(), ours_a.clone()];
        let offer_text = offer(&op);
        let offer_sd = parse(&offer_text).unwrap();
        assert_eq!(offer_sd.media.len(), 2);
        assert_eq!(offer_sd.media[1].proto, Proto::RtpSavpf);

        let theirs = keys(SrtpSuite::AesCm128HmacSha1_80, 200);
        let mut ap = AnswerParams::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 50)), 50000, 9, 1);
        ap.video_port = Some(50002);
        ap.srtp_keys = vec![theirs.clone()];
        ap.audio_codecs.retain(|c| c.name != "opus");
        let ans = answer(&offer_sd, &ap).unwrap();
        let ans_audio = ans.audio.clone().unwrap();
        // Tag 2 is the AES-CM line (the GCM one comes first, tag 1).
        assert!(ans.sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 "), "{}", ans.sdp);
        assert_eq!(ans_audio.remote_srtp, Some(ours_a.clone()));
        assert_eq!(ans_audio.codec.name, "G722");
        assert_eq!(ans_audio.codec.payload_type, Some(9));

        let got = parse_answer(&parse(&ans.sdp).unwrap(), &op).unwrap();
        let audio = got.audio.unwrap();
        assert_eq!(audio.remote_rtp, sa("203.0.113.50:50000"));
        assert_eq!(audio.codec.name, "G722");
        assert_eq!(audio.codec.payload_type, Some(9));
        assert_eq!(audio.telephone_event_pt, Some(101));
        assert_eq!(audio.remote_srtp, Some(theirs.clone()));
        assert_eq!(audio.local_srtp, Some(ours_a));
        assert!(audio.rtcp_mux);
        assert_eq!(audio.direction, Direction::SendRecv);
        assert_eq!(audio.ptime, Some(AUDIO_PTIME_MS));
        let video = got.video.unwrap();
        assert_eq!(video.codec.name, "H264");
        assert_eq!(video.codec.payload_type, Some(96), "dynamic numbering per m= line");
        assert_eq!(
            video.codec.fmtp.as_deref(),
            Some("profile-level-id=42e01f;packetization-mode=1")
        );
        assert_eq!(video.rtcp_fb, ["nack", "nack pli", "ccm fir"]);
        assert_eq!(video.remote_rtp, sa("203.0.113.50:50002"));
        // Both sides agree on the keys, crosswise.
        let ans_video = ans.video.unwrap();
        assert_eq!(ans_video.local_srtp, video.remote_srtp);
        assert_eq!(ans_video.remote_srtp, video.local_srtp);
    }

    #[test]
    fn parse_answer_checks() {
        let mut op = OfferParams::new(OUR_IP, 30000, 42, 1);
        op.srtp_keys = vec![keys(SrtpSuite::AesCm128HmacSha1_80, 1)];
        let answer_with = |media: &str| {
            let text = format!("v=0\r\no=- 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n{media}");
            parse_answer(&parse(&text).unwrap(), &op)
        };
        let key = "inline:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+";
        // A renumbering answerer with sendonly (it holds us).
        let got = answer_with(&format!(
            "m=audio 7000 RTP/SAVP 8\r\na=rtpmap:8 PCMA/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {key}\r\na=sendonly\r\n"
        ))
        .unwrap()
        .audio
        .unwrap();
        assert_eq!(got.codec.name, "PCMA");
        assert_eq!(got.direction, Direction::RecvOnly);
        assert!(got.held);
        assert!(!got.rtcp_mux);
        assert_eq!(got.remote_rtcp, Some(sa("192.0.2.9:7001")));
        assert_eq!(got.remote_srtp, Some(keys(SrtpSuite::AesCm128HmacSha1_80, 0x21)));
        // Wrong tag.
        assert_eq!(
            answer_with(&format!(
                "m=audio 7000 RTP/SAVP 8\r\na=crypto:7 AES_CM_128_HMAC_SHA1_80 {key}\r\n"
            )),
            Err(SdpError::BadAnswer {
                what: "no a=crypto line answering one of ours (tag and suite)"
            })
        );
        // Wrong profile.
        assert!(matches!(
            answer_with("m=audio 7000 RTP/AVP 8\r\n"),
            Err(SdpError::BadAnswer { .. })
        ));
        // A codec we did not offer.
        assert!(matches!(
            answer_with(&format!(
                "m=audio 7000 RTP/SAVP 18\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 {key}\r\n"
            )),
            Err(SdpError::BadAnswer { .. })
        ));
        // Rejected.
        assert_eq!(answer_with("m=audio 0 RTP/SAVP 8\r\n"), Err(SdpError::NoCommonCodec));
        // Too many m= lines.
        assert!(matches!(
            answer_with("m=audio 0 RTP/SAVP 8\r\nm=video 0 RTP/SAVP 96\r\n"),
            Err(SdpError::BadAnswer { .. })
        ));
    }

    #[test]
    fn media_description_for_the_call_model() {
        let mut offer = parse(SDES).unwrap();
        let d = offer.media_description();
        assert_eq!(d.streams.len(), 1);
        let s = &d.streams[0];
        assert_eq!(s.kind, MediaKind::Audio);
        assert_eq!(s.codecs.len(), 3);
        assert_eq!(
            s.transport,
            Transport::Rtp {
                addr: Some(sa("203.0.113.7:50012")),
                rtcp_mux: false,
                srtp: Some(keys(SrtpSuite::AesCm128HmacSha1_80, 1)),
            }
        );
        offer.media[0].port = 0;
        assert!(offer.media_description().streams.is_empty());

        let mut p = params();
        p.srtp_keys = vec![keys(SrtpSuite::AesCm128HmacSha1_80, 50)];
        let neg = answer(&parse(SDES).unwrap(), &p).unwrap().audio.unwrap();
        let remote = neg.remote_media_stream();
        assert_eq!(remote.codecs[0].payload_type, Some(8));
        assert!(matches!(remote.transport, Transport::Rtp { srtp: Some(ref k), .. } if k.master_key[0] == 1));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(text in "(?s).{0,400}") {
                let _ = parse(&text);
            }

            #[test]
            fn mutated_offers_answer_into_valid_sdp(
                cut in 0usize..2000,
                junk in "[a-z0-9=:/ .\r\n-]{0,40}",
            ) {
                for base in [LINPHONE, BARESIP, POLYCOM, SDES, VIDEO, WEBRTC] {
                    let at = cut.min(base.len());
                    let Some((a, b)) = base.get(..at).zip(base.get(at..)) else { continue };
                    let text = format!("{a}{junk}{b}");
                    let Ok(offer) = parse(&text) else { continue };
                    let mut p = params();
                    p.video_port = Some(40002);
                    p.srtp_keys = vec![keys(SrtpSuite::AesCm128HmacSha1_80, 1)];
                    if let Ok(ans) = answer(&offer, &p) {
                        let back = parse(&ans.sdp).unwrap();
                        prop_assert_eq!(back.media.len(), offer.media.len());
                    }
                }
            }
        }
    }
}
