//! Browser SDP, server side: our offer or answer as an ICE-lite, DTLS
//! passive endpoint, and parsing what Chrome (and Firefox) send back.
//!
//! What we produce (JSEP, RFC 8829; one transport for everything):
//!
//! - `a=group:BUNDLE` over every accepted m-section (RFC 8843) and
//!   `a=rtcp-mux` in each (RFC 5761): one relay endpoint, one port.
//! - `a=ice-lite` at session level (RFC 8839 §5.3), `a=ice-ufrag`,
//!   `a=ice-pwd`, and one host candidate on the relay endpoint's address,
//!   `a=candidate:1 1 udp 2130706431 <ip> <port> typ host` (priority of
//!   a host candidate, RFC 8445 §5.1.2.1), then `a=end-of-candidates`.
//! - `a=fingerprint:sha-256 ...` of our DTLS certificate (RFC 8122) and
//!   `a=setup:actpass` in an offer, `a=setup:passive` in an answer: we are
//!   always the DTLS server (RFC 5763 §5).
//! - Audio: Opus 48000/2 ([`OPUS_PT`]) and telephone-event
//!   ([`TELEPHONE_EVENT_PT`]). Video: VP8 ([`VP8_PT`]) and H.264
//!   constrained baseline, packetization-mode 1, profile-level-id 42e01f
//!   ([`H264_PT`]), each with `nack`, `nack pli`, `ccm fir`, `goog-remb`.
//!   Screen-share m-sections carry the same codecs under payload types of
//!   their own ([`SCREEN_VP8_PT`], [`SCREEN_H264_PT`]: [`screen_codecs`]).
//!   No RTX, no header extensions: the relay forwards, it does not
//!   retransmit or estimate bandwidth.
//! - Streams we send carry `a=msid` and `a=ssrc` (`cname`, `msid`) so the
//!   page can tell whose a track is.
//!
//! Parsing ([`SessionDescription::parse`]) keeps what the driver needs:
//! the remote ICE credentials, fingerprint and setup role (per m-section,
//! falling back to session level, as Firefox puts them there), and per
//! m-section the mid, direction, codecs (`rtpmap`, `fmtp`, `rtcp-fb`),
//! SSRCs with their `cname`/`msid`, SSRC groups and header extensions.
//! Every number is range-checked; an error names the line.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::dtls::{DtlsRole, Fingerprint};
use crate::ice::{is_ice_chars, IceCredentials};

/// Our Opus payload type (Chrome's own choice, so answers keep it).
pub const OPUS_PT: u8 = 111;
/// Our telephone-event (RFC 4733) payload type, at 8000 Hz.
pub const TELEPHONE_EVENT_PT: u8 = 126;
/// Our VP8 payload type.
pub const VP8_PT: u8 = 96;
/// Our H.264 payload type.
pub const H264_PT: u8 = 102;
/// VP8 in a screen-share m-section: a payload type of its own, so that on
/// the one bundled transport the relay tells a participant's screen from
/// its camera by payload type alone.
pub const SCREEN_VP8_PT: u8 = 97;
/// H.264 in a screen-share m-section (see [`SCREEN_VP8_PT`]).
pub const SCREEN_H264_PT: u8 = 103;
/// The fmtp of our H.264: constrained baseline level 3.1, non-interleaved mode.
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// The RTCP feedback we offer for video.
pub const VIDEO_RTCP_FB: [&str; 4] = ["goog-remb", "ccm fir", "nack", "nack pli"];

/// Largest SDP accepted, in bytes.
pub const MAX_SDP_LEN: usize = 60_000;
/// Most lines accepted.
pub const MAX_LINES: usize = 4000;
/// Most m-sections accepted.
pub const MAX_MEDIA: usize = 64;
/// Most codecs, SSRCs or extensions in one m-section.
pub const MAX_PER_MEDIA: usize = 64;

/// Why an SDP is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Over [`MAX_SDP_LEN`] or [`MAX_LINES`] or a per-section limit.
    #[error("SDP too large: {0}")]
    TooLarge(&'static str),
    /// A line does not parse.
    #[error("SDP line {line} (`{text}`): {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The start of the line.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Something required is missing.
    #[error("SDP: missing {0}")]
    Missing(&'static str),
    /// Present but not usable by us.
    #[error("SDP: {0}")]
    Unsupported(&'static str),
}

/// `a=setup` (RFC 4145 §4, RFC 5763 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `active`: will initiate (DTLS client).
    Active,
    /// `passive`: will accept (DTLS server).
    Passive,
    /// `actpass`: either (offers only).
    ActPass,
    /// `holdconn`.
    HoldConn,
}

impl Setup {
    /// The SDP word.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }
}

/// Media direction (RFC 8866 §6.7), from the point of view of the SDP's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (the default).
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// The SDP word.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The same stream seen from the other side.
    pub fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the author sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the author receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The kind of an m-section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `application` (data channels: not supported, rejected in answers).
    Application,
    /// Anything else, as written.
    Other(String),
}

impl MediaKind {
    fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
            MediaKind::Other(s) => s,
        }
    }
}

/// One payload type of an m-section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// The payload type.
    pub payload_type: u8,
    /// Encoding name as written (`opus`, `VP8`, `H264`, `rtx`, ...).
    pub name: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels (audio).
    pub channels: Option<u8>,
    /// `a=fmtp` parameters, as written.
    pub fmtp: Option<String>,
    /// `a=rtcp-fb` values (`nack`, `nack pli`, `transport-cc`, ...).
    pub rtcp_fb: Vec<String>,
}

impl Codec {
    /// The value of one fmtp parameter (`profile-level-id`, `apt`, ...).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .as_deref()?
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    }

    fn is(&self, name: &str, clock: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.clock_rate == clock
    }
}

/// An `a=ssrc` source with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssrc {
    /// The SSRC.
    pub ssrc: u32,
    /// `cname:`.
    pub cname: Option<String>,
    /// `msid:` (`<stream> <track>`).
    pub msid: Option<String>,
}

/// An `a=ssrc-group` (`FID`: media and its RTX, `SIM`: simulcast layers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// The semantics.
    pub semantics: String,
    /// The SSRCs, in order.
    pub ssrcs: Vec<u32>,
}

/// One m-section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// The kind.
    pub kind: MediaKind,
    /// The port (0: rejected or bundle-only).
    pub port: u16,
    /// The transport protocol (`UDP/TLS/RTP/SAVPF`).
    pub protocol: String,
    /// Payload types of the m-line, in preference order.
    pub formats: Vec<u8>,
    /// `a=mid`.
    pub mid: Option<String>,
    /// The direction attribute.
    pub direction: Direction,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=ice-ufrag` here.
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd` here.
    pub ice_pwd: Option<String>,
    /// `a=fingerprint` here.
    pub fingerprint: Option<Fingerprint>,
    /// `a=setup` here.
    pub setup: Option<Setup>,
    /// `a=msid` (`<stream> <track>`).
    pub msid: Option<String>,
    /// Codecs with their `rtpmap`, `fmtp` and `rtcp-fb`.
    pub codecs: Vec<Codec>,
    /// Sources.
    pub ssrcs: Vec<Ssrc>,
    /// Source groups.
    pub ssrc_groups: Vec<SsrcGroup>,
    /// `a=extmap` (id, URI).
    pub extmaps: Vec<(u16, String)>,
}

impl MediaSection {
    fn new(kind: MediaKind, port: u16, protocol: String, formats: Vec<u8>) -> Self {
        Self {
            kind,
            port,
            protocol,
            formats,
            mid: None,
            direction: Direction::SendRecv,
            rtcp_mux: false,
            ice_ufrag: None,
            ice_pwd: None,
            fingerprint: None,
            setup: None,
            msid: None,
            codecs: Vec::new(),
            ssrcs: Vec::new(),
            ssrc_groups: Vec::new(),
            extmaps: Vec::new(),
        }
    }

    /// The codec with payload type `pt`.
    pub fn codec(&self, pt: u8) -> Option<&Codec> {
        self.codecs.iter().find(|c| c.payload_type == pt)
    }

    /// The media SSRCs the author will send: every `a=ssrc`, less the
    /// second member of each `FID` group (RTX repair streams).
    pub fn media_ssrcs(&self) -> Vec<u32> {
        let rtx: Vec<u32> = self
            .ssrc_groups
            .iter()
            .filter(|g| g.semantics == "FID")
            .filter_map(|g| g.ssrcs.get(1).copied())
            .collect();
        self.ssrcs.iter().map(|s| s.ssrc).filter(|s| !rtx.contains(s)).collect()
    }

    fn codec_mut(&mut self, pt: u8) -> Option<&mut Codec> {
        self.codecs.iter_mut().find(|c| c.payload_type == pt)
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `a=ice-lite` at session level.
    pub ice_lite: bool,
    /// The mids of `a=group:BUNDLE`, in order.
    pub bundle: Vec<String>,
    /// Session-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Session-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// Session-level `a=fingerprint`.
    pub fingerprint: Option<Fingerprint>,
    /// Session-level `a=setup`.
    pub setup: Option<Setup>,
    /// The m-sections, in order.
    pub media: Vec<MediaSection>,
}

/// The peer's transport parameters, resolved from its SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTransport {
    /// Its ICE ufrag and pwd.
    pub ice: IceCredentials,
    /// The fingerprint its DTLS certificate must match.
    pub fingerprint: Fingerprint,
    /// Its `a=setup`.
    pub setup: Setup,
}

impl RemoteTransport {
    /// The DTLS role we take against this peer (RFC 5763 §5): server when
    /// it is `active` or leaves the choice (`actpass`, we answer `passive`).
    pub fn our_dtls_role(&self) -> Result<DtlsRole, SdpError> {
        match self.setup {
            Setup::Active | Setup::ActPass => Ok(DtlsRole::Server),
            Setup::Passive => Ok(DtlsRole::Client),
            Setup::HoldConn => Err(SdpError::Unsupported("a=setup:holdconn")),
        }
    }
}

fn line_err(line: usize, text: &str, reason: &'static str) -> SdpError {
    SdpError::Line {
        line,
        text: text.chars().take(60).collect(),
        reason,
    }
}

fn parse_pt(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

impl SessionDescription {
    /// Parses an SDP (CRLF or LF line ends).
    pub fn parse(sdp: &str) -> Result<Self, SdpError> {
        if sdp.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge("over 60000 bytes"));
        }
        let mut s = SessionDescription {
            ice_lite: false,
            bundle: Vec::new(),
            ice_ufrag: None,
            ice_pwd: None,
            fingerprint: None,
            setup: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        let mut deferred: Vec<(usize, bool, String)> = Vec::new();
        for (i, raw) in sdp.lines().enumerate() {
            let n = i + 1;
            if n > MAX_LINES {
                return Err(SdpError::TooLarge("too many lines"));
            }
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let err = |reason| line_err(n, line, reason);
            let (typ, value) = match line.split_once('=') {
                Some((t, v)) if t.len() == 1 => (t, v),
                _ => return Err(err("not <type>=<value>")),
            };
            if !saw_version {
                if line != "v=0" {
                    return Err(err("the first line must be v=0"));
                }
                saw_version = true;
                continue;
            }
            match typ {
                "m" => {
                    if s.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooLarge("too many m-sections"));
                    }
                    s.finish_section(sdp, &mut deferred)?;
                    s.media.push(parse_m_line(value).ok_or_else(|| err("bad m-line"))?);
                }
                "a" => {
                    let (name, val) = value.split_once(':').unwrap_or((value, ""));
                    s.attribute(n, name, val, &mut deferred).map_err(err)?;
                }
                _ => {} // v o s i u e p c b t r z k: nothing we need
            }
        }
        if !saw_version {
            return Err(SdpError::Missing("v=0"));
        }
        s.finish_section(sdp, &mut deferred)?;
        Ok(s)
    }

    /// Applies the deferred `fmtp`/`rtcp-fb` lines of the last m-section.
    fn finish_section(&mut self, sdp: &str, deferred: &mut Vec<(usize, bool, String)>) -> Result<(), SdpError> {
        if let Some(m) = self.media.last_mut() {
            for (n, is_fmtp, val) in deferred.iter() {
                apply_deferred(m, *is_fmtp, val).map_err(|reason| {
                    let text = sdp.lines().nth(n - 1).unwrap_or("");
                    line_err(*n, text, reason)
                })?;
            }
        }
        deferred.clear();
        Ok(())
    }

    fn attribute(
        &mut self,
        line: usize,
        name: &str,
        val: &str,
        deferred: &mut Vec<(usize, bool, String)>,
    ) -> Result<(), &'static str> {
        let in_media = !self.media.is_empty();
        match name {
            "group" if !in_media => {
                let mut it = val.split_whitespace();
                if it.next() == Some("BUNDLE") && self.bundle.is_empty() {
                    self.bundle = it.take(MAX_MEDIA).map(str::to_string).collect();
                }
            }
            "ice-lite" if !in_media => self.ice_lite = true,
            "ice-ufrag" | "ice-pwd" => {
                if !is_ice_chars(val) {
                    return Err("not 1 to 256 ice-chars");
                }
                let slot = match (name, self.media.last_mut()) {
                    ("ice-ufrag", Some(m)) => &mut m.ice_ufrag,
                    ("ice-ufrag", None) => &mut self.ice_ufrag,
                    (_, Some(m)) => &mut m.ice_pwd,
                    (_, None) => &mut self.ice_pwd,
                };
                slot.get_or_insert_with(|| val.to_string());
            }
            "fingerprint" => {
                let f = Fingerprint::parse(val).ok_or("bad fingerprint")?;
                match self.media.last_mut() {
                    Some(m) => m.fingerprint = m.fingerprint.take().or(Some(f)),
                    None => self.fingerprint = self.fingerprint.take().or(Some(f)),
                }
            }
            "setup" => {
                let v = Setup::parse(val).ok_or("bad setup")?;
                match self.media.last_mut() {
                    Some(m) => m.setup = m.setup.or(Some(v)),
                    None => self.setup = self.setup.or(Some(v)),
                }
            }
            _ => {
                if let Some(m) = self.media.last_mut() {
                    media_attribute(m, line, deferred, name, val)?;
                }
            }
        }
        Ok(())
    }

    /// The peer's ICE credentials, fingerprint and setup: from the first
    /// bundled m-section (RFC 8843 §7.1.2: the tagged one carries the
    /// transport), else the first m-section, else session level.
    pub fn remote_transport(&self) -> Result<RemoteTransport, SdpError> {
        let first = self
            .bundle
            .first()
            .and_then(|mid| self.media.iter().find(|m| m.mid.as_deref() == Some(mid.as_str())))
            .or_else(|| self.media.first());
        let ufrag = first
            .and_then(|m| m.ice_ufrag.clone())
            .or_else(|| self.ice_ufrag.clone())
            .ok_or(SdpError::Missing("a=ice-ufrag"))?;
        let pwd = first
            .and_then(|m| m.ice_pwd.clone())
            .or_else(|| self.ice_pwd.clone())
            .ok_or(SdpError::Missing("a=ice-pwd"))?;
        // RFC 8839 §5.4: ufrag 4+ and pwd 22+ characters.
        if ufrag.len() < 4 || pwd.len() < 22 {
            return Err(SdpError::Unsupported("ICE ufrag or pwd too short"));
        }
        let fingerprint = first
            .and_then(|m| m.fingerprint.clone())
            .or_else(|| self.fingerprint.clone())
            .ok_or(SdpError::Missing("a=fingerprint"))?;
        let setup = first
            .and_then(|m| m.setup)
            .or(self.setup)
            .ok_or(SdpError::Missing("a=setup"))?;
        Ok(RemoteTransport {
            ice: IceCredentials { ufrag, pwd },
            fingerprint,
            setup,
        })
    }

    /// The m-section with this mid.
    pub fn media_by_mid(&self, mid: &str) -> Option<&MediaSection> {
        self.media.iter().find(|m| m.mid.as_deref() == Some(mid))
    }
}

/// Applies a section's `a=fmtp` (`is_fmtp`) and `a=rtcp-fb` lines.
fn apply_deferred(m: &mut MediaSection, is_fmtp: bool, val: &str) -> Result<(), &'static str> {
    if is_fmtp {
        let (pt, params) = val.split_once(' ').ok_or("bad fmtp")?;
        let pt = parse_pt(pt).ok_or("bad payload type in fmtp")?;
        if let Some(c) = m.codec_mut(pt) {
            c.fmtp = Some(params.trim().to_string());
        }
    } else {
        let (pt, fb) = val.split_once(' ').ok_or("bad rtcp-fb")?;
        let fb = fb.trim();
        if fb.len() > 64 {
            return Err("rtcp-fb over 64 bytes");
        }
        let targets: Vec<u8> = if pt == "*" {
            m.codecs.iter().map(|c| c.payload_type).collect()
        } else {
            vec![parse_pt(pt).ok_or("bad payload type in rtcp-fb")?]
        };
        for pt in targets {
            if let Some(c) = m.codec_mut(pt) {
                if c.rtcp_fb.len() < 16 && !c.rtcp_fb.iter().any(|f| f == fb) {
                    c.rtcp_fb.push(fb.to_string());
                }
            }
        }
    }
    Ok(())
}

fn parse_m_line(v: &str) -> Option<MediaSection> {
    let mut it = v.split_whitespace();
    let kind = match it.next()? {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        "application" => MediaKind::Application,
        other => MediaKind::Other(other.chars().take(32).collect()),
    };
    let port = it.next()?.split('/').next()?.parse::<u16>().ok()?;
    let protocol = it.next()?.to_string();
    let rtp = protocol.contains("RTP");
    let mut formats = Vec::new();
    for f in it {
        if rtp {
            formats.push(parse_pt(f)?);
            if formats.len() > MAX_PER_MEDIA {
                return None;
            }
        }
    }
    Some(MediaSection::new(kind, port, protocol, formats))
}

fn media_attribute(
    m: &mut MediaSection,
    line: usize,
    deferred: &mut Vec<(usize, bool, String)>,
    name: &str,
    val: &str,
) -> Result<(), &'static str> {
    match name {
        "mid" => {
            if val.is_empty() || val.len() > 32 {
                return Err("mid empty or over 32 bytes");
            }
            m.mid.get_or_insert_with(|| val.to_string());
        }
        "sendrecv" => m.direction = Direction::SendRecv,
        "sendonly" => m.direction = Direction::SendOnly,
        "recvonly" => m.direction = Direction::RecvOnly,
        "inactive" => m.direction = Direction::Inactive,
        "rtcp-mux" => m.rtcp_mux = true,
        "msid" => m.msid = Some(val.chars().take(200).collect()),
        "rtpmap" => {
            let (pt, enc) = val.split_once(' ').ok_or("bad rtpmap")?;
            let pt = parse_pt(pt).ok_or("bad payload type")?;
            let mut parts = enc.trim().split('/');
            let name = parts
                .next()
                .filter(|n| !n.is_empty() && n.len() <= 32)
                .ok_or("bad encoding name")?;
            let clock_rate = parts
                .next()
                .and_then(|c| c.parse::<u32>().ok())
                .filter(|c| *c > 0)
                .ok_or("bad clock rate")?;
            let channels = match parts.next() {
                Some(c) => Some(c.parse::<u8>().ok().filter(|c| *c > 0).ok_or("bad channels")?),
                None => None,
            };
            if m.codec(pt).is_none() {
                if m.codecs.len() >= MAX_PER_MEDIA {
                    return Err("too many codecs");
                }
                m.codecs.push(Codec {
                    payload_type: pt,
                    name: name.to_string(),
                    clock_rate,
                    channels,
                    fmtp: None,
                    rtcp_fb: Vec::new(),
                });
            }
        }
        "fmtp" | "rtcp-fb" => {
            // Applied once the section is complete: Firefox writes these before the rtpmaps.
            if val.len() > 1000 {
                return Err("attribute over 1000 bytes");
            }
            if deferred.len() >= MAX_LINES {
                return Err("too many attributes");
            }
            deferred.push((line, name == "fmtp", val.to_string()));
        }
        "ssrc" => {
            let (id, rest) = val.split_once(' ').unwrap_or((val, ""));
            let ssrc = id.parse::<u32>().map_err(|_| "bad ssrc")?;
            let idx = match m.ssrcs.iter().position(|s| s.ssrc == ssrc) {
                Some(i) => i,
                None => {
                    if m.ssrcs.len() >= MAX_PER_MEDIA {
                        return Err("too many ssrcs");
                    }
                    m.ssrcs.push(Ssrc {
                        ssrc,
                        cname: None,
                        msid: None,
                    });
                    m.ssrcs.len() - 1
                }
            };
            let (attr, value) = rest.split_once(':').unwrap_or((rest, ""));
            let value: String = value.chars().take(200).collect();
            if let Some(s) = m.ssrcs.get_mut(idx) {
                match attr {
                    "cname" => s.cname = Some(value),
                    "msid" => s.msid = Some(value),
                    _ => {}
                }
            }
        }
        "ssrc-group" => {
            let mut it = val.split_whitespace();
            let semantics = it.next().ok_or("bad ssrc-group")?.chars().take(16).collect();
            let ssrcs: Result<Vec<u32>, _> = it.take(MAX_PER_MEDIA).map(str::parse::<u32>).collect();
            if m.ssrc_groups.len() < MAX_PER_MEDIA {
                m.ssrc_groups.push(SsrcGroup {
                    semantics,
                    ssrcs: ssrcs.map_err(|_| "bad ssrc in group")?,
                });
            }
        }
        "extmap" => {
            let (id, uri) = val.split_once(' ').ok_or("bad extmap")?;
            let id = id
                .split('/')
                .next()
                .and_then(|i| i.parse::<u16>().ok())
                .ok_or("bad extmap id")?;
            let uri = uri.split_whitespace().next().ok_or("bad extmap")?;
            if m.extmaps.len() < MAX_PER_MEDIA && uri.len() <= 256 {
                m.extmaps.push((id, uri.to_string()));
            }
        }
        _ => {}
    }
    Ok(())
}

// ------------------------------------------------------------------ building

/// Our side of the transport: one relay endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTransport {
    /// Our ICE credentials (the [`crate::ice::IceLiteAgent`]'s).
    pub ice: IceCredentials,
    /// Our certificate's fingerprint ([`crate::dtls::DtlsCert::fingerprint`]).
    pub fingerprint: Fingerprint,
    /// The relay endpoint's advertised address and port (`media.advertise`).
    pub candidate: SocketAddr,
}

/// A stream we send, named so the page can attribute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// Its SSRC (what the relay rewrites to, or the publisher's).
    pub ssrc: u32,
    /// The RTCP CNAME.
    pub cname: String,
    /// The `msid` stream id (one per participant: [`crate::signal::Participant::stream`]).
    pub stream: String,
    /// The `msid` track id.
    pub track: String,
}

/// One m-section of our offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Our direction: `sendrecv` for the browser's own mic/cam plus what
    /// we send back, `sendonly` for another participant's stream,
    /// `recvonly` for a browser stream we only receive (screen share).
    pub direction: Direction,
    /// What we send in it, if we send.
    pub source: Option<LocalSource>,
    /// Its codecs; `None`: [`our_codecs`] for the kind.
    pub codecs: Option<Vec<Codec>>,
}

/// Session-level lines shared by offers and answers.
fn session_header(out: &mut String, session_id: u64, version: u64, bundle: &[&str]) {
    let _ = write!(
        out,
        "v=0\r\no=- {session_id} {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    );
    if !bundle.is_empty() {
        let _ = write!(out, "a=group:BUNDLE {}\r\n", bundle.join(" "));
    }
    out.push_str("a=ice-lite\r\na=msid-semantic: WMS *\r\n");
}

fn ip_words(addr: &SocketAddr) -> (&'static str, IpAddr) {
    match addr.ip() {
        IpAddr::V4(_) => ("IP4", addr.ip()),
        IpAddr::V6(_) => ("IP6", addr.ip()),
    }
}

/// Transport lines of one accepted m-section.
fn transport_lines(out: &mut String, t: &LocalTransport, setup: Setup, mid: &str) {
    let (fam, ip) = ip_words(&t.candidate);
    let port = t.candidate.port();
    let _ = write!(
        out,
        "c=IN {fam} {ip}\r\n\
         a=rtcp:{port} IN {fam} {ip}\r\n\
         a=ice-ufrag:{}\r\n\
         a=ice-pwd:{}\r\n\
         a=fingerprint:{}\r\n\
         a=setup:{}\r\n\
         a=mid:{mid}\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\n\
         a=end-of-candidates\r\n",
        t.ice.ufrag,
        t.ice.pwd,
        t.fingerprint,
        setup.as_str(),
    );
}

fn source_lines(out: &mut String, s: &LocalSource) {
    let _ = write!(
        out,
        "a=msid:{stream} {track}\r\n\
         a=ssrc:{ssrc} cname:{cname}\r\n\
         a=ssrc:{ssrc} msid:{stream} {track}\r\n",
        stream = s.stream,
        track = s.track,
        ssrc = s.ssrc,
        cname = s.cname,
    );
}

fn codec_lines(out: &mut String, c: &Codec) {
    let _ = write!(out, "a=rtpmap:{} {}/{}", c.payload_type, c.name, c.clock_rate);
    if let Some(ch) = c.channels {
        let _ = write!(out, "/{ch}");
    }
    out.push_str("\r\n");
    for fb in &c.rtcp_fb {
        let _ = write!(out, "a=rtcp-fb:{} {fb}\r\n", c.payload_type);
    }
    if let Some(f) = &c.fmtp {
        let _ = write!(out, "a=fmtp:{} {f}\r\n", c.payload_type);
    }
}

/// Our codecs for a kind, in preference order.
pub fn our_codecs(kind: &MediaKind) -> Vec<Codec> {
    let fb = || VIDEO_RTCP_FB.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match kind {
        MediaKind::Audio => vec![
            Codec {
                payload_type: OPUS_PT,
                name: "opus".into(),
                clock_rate: 48_000,
                channels: Some(2),
                fmtp: Some("minptime=10;useinbandfec=1".into()),
                rtcp_fb: Vec::new(),
            },
            Codec {
                payload_type: TELEPHONE_EVENT_PT,
                name: "telephone-event".into(),
                clock_rate: 8000,
                channels: None,
                fmtp: None,
                rtcp_fb: Vec::new(),
            },
        ],
        MediaKind::Video => vec![
            Codec {
                payload_type: VP8_PT,
                name: "VP8".into(),
                clock_rate: 90_000,
                channels: None,
                fmtp: None,
                rtcp_fb: fb(),
            },
            Codec {
                payload_type: H264_PT,
                name: "H264".into(),
                clock_rate: 90_000,
                channels: None,
                fmtp: Some(H264_FMTP.into()),
                rtcp_fb: fb(),
            },
        ],
        _ => Vec::new(),
    }
}

/// Our video codecs under the screen-share payload types
/// ([`SCREEN_VP8_PT`], [`SCREEN_H264_PT`]).
pub fn screen_codecs() -> Vec<Codec> {
    our_codecs(&MediaKind::Video)
        .into_iter()
        .map(|mut c| {
            c.payload_type = if c.payload_type == VP8_PT {
                SCREEN_VP8_PT
            } else {
                SCREEN_H264_PT
            };
            c
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn media_section(
    out: &mut String,
    t: &LocalTransport,
    setup: Setup,
    mid: &str,
    kind: &MediaKind,
    direction: Direction,
    codecs: &[Codec],
    source: Option<&LocalSource>,
) {
    let pts: Vec<String> = codecs.iter().map(|c| c.payload_type.to_string()).collect();
    let _ = write!(
        out,
        "m={} {} UDP/TLS/RTP/SAVPF {}\r\n",
        kind.as_str(),
        t.candidate.port(),
        pts.join(" ")
    );
    transport_lines(out, t, setup, mid);
    let _ = write!(out, "a={}\r\n", direction.as_str());
    if let (true, Some(s)) = (direction.sends(), source) {
        source_lines(out, s);
    }
    out.push_str("a=rtcp-mux\r\n");
    if *kind == MediaKind::Video {
        out.push_str("a=rtcp-rsize\r\n");
    }
    for c in codecs {
        codec_lines(out, c);
    }
}

/// Builds our offer (`a=setup:actpass`). `session_id` stays fixed for the
/// session; `version` goes up by one with every new offer (RFC 3264 §8).
/// Only audio and video m-sections are written.
pub fn build_offer(session_id: u64, version: u64, transport: &LocalTransport, media: &[LocalMedia]) -> String {
    let media: Vec<&LocalMedia> = media
        .iter()
        .filter(|m| matches!(m.kind, MediaKind::Audio | MediaKind::Video))
        .collect();
    let mids: Vec<&str> = media.iter().map(|m| m.mid.as_str()).collect();
    let mut out = String::with_capacity(1024 * (1 + media.len()));
    session_header(&mut out, session_id, version, &mids);
    for m in media {
        let codecs = m.codecs.clone().unwrap_or_else(|| our_codecs(&m.kind));
        media_section(
            &mut out,
            transport,
            Setup::ActPass,
            &m.mid,
            &m.kind,
            m.direction,
            &codecs,
            m.source.as_ref(),
        );
    }
    out
}

/// What was agreed for one m-section of an answer we built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// The mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Our direction (inactive when rejected).
    pub direction: Direction,
    /// The codecs, with the browser's payload types. Empty when rejected.
    pub codecs: Vec<Codec>,
    /// The SSRCs the browser will send here.
    pub remote_ssrcs: Vec<u32>,
    /// The m-section was refused (port 0).
    pub rejected: bool,
}

/// Picks, from an offered m-section, the codecs we take (with the
/// offerer's payload types) and the feedback both sides support.
fn select_codecs(m: &MediaSection) -> Vec<Codec> {
    let in_order = m.formats.iter().filter_map(|pt| m.codec(*pt));
    let mut picked: Vec<Codec> = Vec::new();
    let take = |c: &Codec, picked: &mut Vec<Codec>| {
        let mut c = c.clone();
        c.rtcp_fb.retain(|f| VIDEO_RTCP_FB.contains(&f.as_str()));
        picked.push(c);
    };
    match m.kind {
        MediaKind::Audio => {
            if let Some(opus) = m.codecs.iter().find(|c| c.is("opus", 48_000) && c.channels == Some(2)) {
                take(opus, &mut picked);
                // telephone-event at Opus's clock first (RFC 4733 §2.1), else 8000.
                let te = m
                    .codecs
                    .iter()
                    .find(|c| c.is("telephone-event", 48_000))
                    .or_else(|| m.codecs.iter().find(|c| c.is("telephone-event", 8000)));
                if let Some(te) = te {
                    take(te, &mut picked);
                }
            }
        }
        MediaKind::Video => {
            for c in in_order {
                let want = if c.is("VP8", 90_000) {
                    !picked.iter().any(|p| p.is("VP8", 90_000))
                } else if c.is("H264", 90_000) {
                    let pm1 = c.fmtp_param("packetization-mode") == Some("1");
                    let plid = c.fmtp_param("profile-level-id").unwrap_or("").to_ascii_lowercase();
                    pm1 && plid == "42e01f" && !picked.iter().any(|p| p.is("H264", 90_000))
                } else {
                    false
                };
                if want {
                    take(c, &mut picked);
                }
            }
        }
        _ => {}
    }
    picked
}

/// Builds our answer to a browser's offer (`a=setup:passive`), accepting
/// audio and video m-sections with a codec in common and rejecting the
/// rest (port 0). `source_for(mid)` says what we send in an m-section.
///
/// Refused: an offer without BUNDLE, or an accepted m-section without
/// `a=rtcp-mux` (we have one port per session).
pub fn build_answer(
    offer: &SessionDescription,
    session_id: u64,
    version: u64,
    transport: &LocalTransport,
    source_for: &dyn Fn(&str) -> Option<LocalSource>,
) -> Result<(String, Vec<NegotiatedMedia>), SdpError> {
    build_answer_with(
        offer,
        session_id,
        version,
        transport,
        &AnswerOptions::default(),
        source_for,
    )
}

/// How [`build_answer_with`] answers, beyond [`build_answer`]'s defaults:
/// for answering a re-offer in a session already set up (RFC 8829 §5.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerOptions {
    /// Our `a=setup`: `passive` when `None`. A re-offer that keeps the DTLS
    /// association (RFC 8842 §5) is answered with the role we have in it:
    /// `active` when we are its client.
    pub setup: Option<Setup>,
    /// The audio codecs agreed before: when set, an audio m-section takes
    /// only those of the offer with the same name, clock rate and payload
    /// type (the codec in use stays), and is refused without one.
    pub audio_codecs: Option<Vec<Codec>>,
    /// We send in accepted m-sections even where `source_for` gives no
    /// source (media forwarded under the sender's own SSRC: no `a=ssrc`).
    pub sends_without_source: bool,
}

/// [`build_answer`] with [`AnswerOptions`].
///
/// # Errors
///
/// As [`build_answer`].
pub fn build_answer_with(
    offer: &SessionDescription,
    session_id: u64,
    version: u64,
    transport: &LocalTransport,
    options: &AnswerOptions,
    source_for: &dyn Fn(&str) -> Option<LocalSource>,
) -> Result<(String, Vec<NegotiatedMedia>), SdpError> {
    if offer.bundle.is_empty() {
        return Err(SdpError::Missing("a=group:BUNDLE"));
    }
    let mut negotiated = Vec::with_capacity(offer.media.len());
    for m in &offer.media {
        let mid = m.mid.clone().ok_or(SdpError::Missing("a=mid"))?;
        let codecs = match (&options.audio_codecs, &m.kind) {
            _ if m.port == 0 => Vec::new(),
            (Some(keep), MediaKind::Audio) => m
                .formats
                .iter()
                .filter_map(|pt| m.codec(*pt))
                .filter(|c| {
                    keep.iter()
                        .any(|k| k.payload_type == c.payload_type && c.is(&k.name, k.clock_rate))
                })
                .cloned()
                .collect(),
            _ => select_codecs(m),
        };
        let rejected = codecs.is_empty();
        if !rejected && !m.rtcp_mux {
            return Err(SdpError::Unsupported("an m-section without a=rtcp-mux"));
        }
        let source = if rejected { None } else { source_for(&mid) };
        let we_send = source.is_some() || (options.sends_without_source && !rejected);
        let direction = match (rejected, m.direction, we_send) {
            (true, _, _) => Direction::Inactive,
            (_, Direction::SendRecv, true) => Direction::SendRecv,
            (_, Direction::SendRecv, false) | (_, Direction::SendOnly, _) => Direction::RecvOnly,
            (_, Direction::RecvOnly, true) => Direction::SendOnly,
            (_, Direction::RecvOnly, false) | (_, Direction::Inactive, _) => Direction::Inactive,
        };
        negotiated.push((
            NegotiatedMedia {
                mid,
                kind: m.kind.clone(),
                direction,
                codecs,
                remote_ssrcs: if m.direction.sends() {
                    m.media_ssrcs()
                } else {
                    Vec::new()
                },
                rejected,
            },
            source,
            m,
        ));
    }
    let bundle: Vec<&str> = negotiated
        .iter()
        .filter(|(n, _, _)| !n.rejected)
        .map(|(n, _, _)| n.mid.as_str())
        .collect();
    let mut out = String::with_capacity(1024 * (1 + negotiated.len()));
    session_header(&mut out, session_id, version, &bundle);
    for (n, source, offered) in &negotiated {
        if n.rejected {
            // RFC 8829 §5.3.1: a rejected m-section keeps its kind and protocol, port 0.
            let fmt = match offered.formats.first() {
                Some(pt) => pt.to_string(),
                None => "webrtc-datachannel".to_string(),
            };
            let _ = write!(
                out,
                "m={} 0 {} {fmt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\na=inactive\r\n",
                offered.kind.as_str(),
                offered.protocol,
                n.mid
            );
            continue;
        }
        media_section(
            &mut out,
            transport,
            options.setup.unwrap_or(Setup::Passive),
            &n.mid,
            &n.kind,
            n.direction,
            &n.codecs,
            source.as_ref(),
        );
    }
    let negotiated = negotiated.into_iter().map(|(n, _, _)| n).collect();
    Ok((out, negotiated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtls::HashAlgorithm;

    /// Hand-written in the shape of Chrome ~120 (which still put `msid`
    /// in `a=ssrc` lines; Chromium 156 no longer does in answers).
    const CHROME_OFFER: &str = include_str!("../testdata/chrome-offer.sdp");
    const CHROME_ANSWER: &str = include_str!("../testdata/chrome-answer.sdp");
    const FIREFOX_OFFER: &str = include_str!("../testdata/firefox-offer.sdp");
    /// Produced by Chromium 156 (Debian) answering [`build_offer`]'s output
    /// for the three m-sections of `offer_and_chrome_answer`.
    const CHROMIUM_156_ANSWER: &str = include_str!("../testdata/chromium-156-answer.sdp");
    /// Produced by Chromium 156 with one audio and one video track added.
    const CHROMIUM_156_OFFER: &str = include_str!("../testdata/chromium-156-offer.sdp");

    fn transport() -> LocalTransport {
        LocalTransport {
            ice: IceCredentials {
                ufrag: "Srv4Uf8x".into(),
                pwd: "p4ssw0rdP4SSW0RDp4ssw0rd".into(),
            },
            fingerprint: Fingerprint::of_der(HashAlgorithm::Sha256, b"cert"),
            candidate: "203.0.113.5:20002".parse().expect("addr"),
        }
    }

    #[test]
    fn a_re_offer_is_answered_keeping_role_codec_and_mirroring_direction() {
        // Chrome's offer put on hold: the audio a=sendonly.
        let held = CHROME_OFFER.replacen("a=sendrecv", "a=sendonly", 1);
        let offer = SessionDescription::parse(&held).expect("parses");
        assert_eq!(offer.media[0].direction, Direction::SendOnly);
        let pcmu = offer.media[0].codec(0).expect("pcmu").clone();
        let options = AnswerOptions {
            setup: Some(Setup::Active),
            audio_codecs: Some(vec![pcmu]),
            sends_without_source: true,
        };
        let (sdp, negotiated) = build_answer_with(&offer, 7, 3, &transport(), &options, &|_| None).expect("answers");
        assert!(sdp.contains("a=setup:active\r\n"), "{sdp}");
        assert!(sdp.contains("o=- 7 3 IN IP4"), "{sdp}");
        let audio = &negotiated[0];
        assert!(!audio.rejected);
        assert_eq!(audio.direction, Direction::RecvOnly, "sendonly is answered recvonly");
        let pts: Vec<u8> = audio.codecs.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, [0], "only the codec in use, with its payload type");
        assert!(sdp.contains("m=audio 20002 UDP/TLS/RTP/SAVPF 0\r\n"), "{sdp}");
        assert!(!sdp.contains("a=ssrc:"), "no source of ours is named: {sdp}");
        // Resumed: sendrecv, and we send without a source of our own.
        let offer = SessionDescription::parse(CHROME_OFFER).expect("parses");
        let (_, negotiated) = build_answer_with(&offer, 7, 4, &transport(), &options, &|_| None).expect("answers");
        assert_eq!(negotiated[0].direction, Direction::SendRecv);
        // The codec in use gone from the offer (another payload type): refused.
        let options = AnswerOptions {
            audio_codecs: Some(vec![Codec {
                payload_type: 96,
                name: "PCMU".into(),
                clock_rate: 8000,
                channels: None,
                fmtp: None,
                rtcp_fb: Vec::new(),
            }]),
            ..options
        };
        let (_, negotiated) = build_answer_with(&offer, 7, 5, &transport(), &options, &|_| None).expect("answers");
        assert!(negotiated[0].rejected, "no codec in use: the audio is refused");
        // The defaults are build_answer's.
        let (a, _) = build_answer(&offer, 1, 1, &transport(), &|_| None).expect("answers");
        let (b, _) =
            build_answer_with(&offer, 1, 1, &transport(), &AnswerOptions::default(), &|_| None).expect("answers");
        assert_eq!(a, b);
        assert!(a.contains("a=setup:passive\r\n"));
    }

    #[test]
    fn parses_chrome_offer() {
        let s = SessionDescription::parse(CHROME_OFFER).expect("parses");
        assert_eq!(s.bundle, ["0", "1"]);
        assert!(!s.ice_lite);
        let t = s.remote_transport().expect("transport");
        assert_eq!(t.ice.ufrag, "qR7x");
        assert_eq!(t.ice.pwd, "J2bXf1uYd9v8Kk3mN0pQ5rS7");
        assert_eq!(t.setup, Setup::ActPass);
        assert_eq!(t.our_dtls_role(), Ok(DtlsRole::Server));
        assert_eq!(t.fingerprint.algorithm, HashAlgorithm::Sha256);
        assert_eq!(t.fingerprint.value[0], 0x4F);
        assert_eq!(s.media.len(), 2);
        let a = &s.media[0];
        assert_eq!(a.kind, MediaKind::Audio);
        assert_eq!(a.mid.as_deref(), Some("0"));
        assert!(a.rtcp_mux);
        assert_eq!(a.formats, [111, 63, 9, 0, 8, 13, 110, 126]);
        let opus = a.codec(111).expect("opus");
        assert_eq!(
            (opus.name.as_str(), opus.clock_rate, opus.channels),
            ("opus", 48_000, Some(2))
        );
        assert_eq!(opus.fmtp_param("useinbandfec"), Some("1"));
        assert_eq!(opus.rtcp_fb, ["transport-cc"]);
        assert_eq!(a.media_ssrcs(), [2_843_154_930]);
        assert_eq!(a.ssrcs[0].cname.as_deref(), Some("Yq3dbnPl7Xg8n0Bq"));
        assert_eq!(a.extmaps.len(), 4);
        let v = &s.media[1];
        assert_eq!(v.kind, MediaKind::Video);
        assert_eq!(v.ssrc_groups[0].semantics, "FID");
        assert_eq!(v.media_ssrcs(), [1_527_694_390]);
        let h264 = v.codec(106).expect("h264");
        assert_eq!(h264.fmtp_param("profile-level-id"), Some("42e01f"));
        assert!(h264.rtcp_fb.iter().any(|f| f == "nack pli"));
    }

    #[test]
    fn answers_chrome_offer() {
        let offer = SessionDescription::parse(CHROME_OFFER).expect("parses");
        let src = LocalSource {
            ssrc: 4242,
            cname: "confgate".into(),
            stream: "p9".into(),
            track: "p9-audio".into(),
        };
        let (sdp, neg) =
            build_answer(&offer, 1, 2, &transport(), &|mid| (mid == "0").then(|| src.clone())).expect("answer");
        assert_eq!(neg.len(), 2);
        assert_eq!(neg[0].direction, Direction::SendRecv);
        assert_eq!(
            neg[0].codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(),
            [111, 110]
        );
        assert_eq!(neg[0].remote_ssrcs, [2_843_154_930]);
        assert_eq!(neg[1].direction, Direction::RecvOnly);
        assert_eq!(
            neg[1].codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(),
            [96, 106]
        );
        assert_eq!(neg[1].codecs[0].rtcp_fb, ["goog-remb", "ccm fir", "nack", "nack pli"]);
        assert_eq!(neg[1].remote_ssrcs, [1_527_694_390]);

        assert!(sdp.contains("a=ice-lite\r\n"));
        assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"));
        assert!(sdp.contains("a=setup:passive\r\n"));
        assert!(!sdp.contains("actpass"));
        assert!(sdp.contains("a=candidate:1 1 udp 2130706431 203.0.113.5 20002 typ host\r\n"));
        assert!(sdp.contains("a=ssrc:4242 msid:p9 p9-audio\r\n"));
        assert!(!sdp.contains("transport-cc"));
        // Our answer parses back to what we meant.
        let back = SessionDescription::parse(&sdp).expect("our answer parses");
        assert!(back.ice_lite);
        let t = back.remote_transport().expect("transport");
        assert_eq!(t.setup, Setup::Passive);
        assert_eq!(t.fingerprint, transport().fingerprint);
        assert_eq!(back.media[1].direction, Direction::RecvOnly);
    }

    #[test]
    fn offer_and_chrome_answer() {
        let media = [
            LocalMedia {
                mid: "0".into(),
                kind: MediaKind::Audio,
                direction: Direction::SendRecv,
                source: Some(LocalSource {
                    ssrc: 1111,
                    cname: "confgate".into(),
                    stream: "mix".into(),
                    track: "mix-audio".into(),
                }),
                codecs: None,
            },
            LocalMedia {
                mid: "1".into(),
                kind: MediaKind::Video,
                direction: Direction::RecvOnly,
                source: None,
                codecs: None,
            },
            LocalMedia {
                mid: "2".into(),
                kind: MediaKind::Video,
                direction: Direction::SendOnly,
                source: Some(LocalSource {
                    ssrc: 2222,
                    cname: "confgate".into(),
                    stream: "p7".into(),
                    track: "p7-video".into(),
                }),
                codecs: None,
            },
        ];
        let sdp = build_offer(77, 1, &transport(), &media);
        let expected_video = "m=video 20002 UDP/TLS/RTP/SAVPF 96 102\r\n";
        assert!(sdp
            .starts_with("v=0\r\no=- 77 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=ice-lite\r\n"));
        assert!(sdp.contains("m=audio 20002 UDP/TLS/RTP/SAVPF 111 126\r\n"));
        assert!(sdp.contains(expected_video));
        assert!(sdp.contains("a=setup:actpass\r\n"));
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(sdp.contains("a=rtpmap:126 telephone-event/8000\r\n"));
        assert!(sdp.contains("a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"));
        for fb in ["goog-remb", "ccm fir", "nack", "nack pli"] {
            assert!(sdp.contains(&format!("a=rtcp-fb:96 {fb}\r\n")), "{fb}");
            assert!(sdp.contains(&format!("a=rtcp-fb:102 {fb}\r\n")), "{fb}");
        }
        assert!(sdp.contains("a=msid:p7 p7-video\r\na=ssrc:2222 cname:confgate\r\n"));
        assert_eq!(sdp.matches("a=candidate:").count(), 3);
        assert!(sdp.lines().all(|l| !l.is_empty()) && sdp.ends_with("\r\n"));
        let ours = SessionDescription::parse(&sdp).expect("our offer parses");
        assert_eq!(ours.media.len(), 3);
        assert_eq!(ours.media[2].media_ssrcs(), [2222]);

        // What Chrome answered to an offer like this one.
        let ans = SessionDescription::parse(CHROME_ANSWER).expect("parses");
        let t = ans.remote_transport().expect("transport");
        assert_eq!(t.setup, Setup::Active);
        assert_eq!(t.our_dtls_role(), Ok(DtlsRole::Server));
        assert_eq!(t.ice.ufrag, "Hh2Y");
        assert_eq!(ans.bundle, ["0", "1", "2"]);
        assert_eq!(ans.media_by_mid("0").expect("audio").media_ssrcs(), [3_409_171_524]);
        let cam = ans.media_by_mid("1").expect("video");
        assert_eq!(cam.direction, Direction::SendOnly);
        assert_eq!(cam.media_ssrcs(), [1_993_802_561]);
        assert_eq!(cam.formats, [96, 102]);
        let other = ans.media_by_mid("2").expect("video");
        assert_eq!(other.direction, Direction::RecvOnly);
        assert!(other.media_ssrcs().is_empty());
    }

    #[test]
    fn screen_section_has_payload_types_of_its_own() {
        let media = [
            LocalMedia {
                mid: "1".into(),
                kind: MediaKind::Video,
                direction: Direction::RecvOnly,
                source: None,
                codecs: None,
            },
            LocalMedia {
                mid: "2".into(),
                kind: MediaKind::Video,
                direction: Direction::RecvOnly,
                source: None,
                codecs: Some(screen_codecs()),
            },
        ];
        let sdp = build_offer(5, 1, &transport(), &media);
        let ours = SessionDescription::parse(&sdp).expect("our offer parses");
        let cam = ours.media_by_mid("1").expect("camera");
        let screen = ours.media_by_mid("2").expect("screen");
        assert_eq!(cam.formats, [VP8_PT, H264_PT]);
        assert_eq!(screen.formats, [SCREEN_VP8_PT, SCREEN_H264_PT]);
        assert!(cam.formats.iter().all(|pt| !screen.formats.contains(pt)));
        let vp8 = screen.codec(SCREEN_VP8_PT).expect("vp8");
        assert_eq!((vp8.name.as_str(), vp8.clock_rate), ("VP8", 90_000));
        assert_eq!(vp8.rtcp_fb, VIDEO_RTCP_FB);
        let h264 = screen.codec(SCREEN_H264_PT).expect("h264");
        assert_eq!(h264.fmtp.as_deref(), Some(H264_FMTP));
        // An answer that keeps them is understood as such.
        let answer = sdp.replace("a=recvonly", "a=sendonly");
        let back = SessionDescription::parse(&answer).expect("parses");
        assert_eq!(back.media_by_mid("2").expect("screen").formats, [97, 103]);
    }

    #[test]
    fn chromium_156_captured() {
        let ans = SessionDescription::parse(CHROMIUM_156_ANSWER).expect("answer parses");
        let t = ans.remote_transport().expect("transport");
        assert_eq!((t.ice.ufrag.as_str(), t.setup), ("Pf7R", Setup::Active));
        assert_eq!(t.our_dtls_role(), Ok(DtlsRole::Server));
        assert_eq!(ans.bundle, ["0", "1", "2"]);
        let dirs: Vec<Direction> = ans.media.iter().map(|m| m.direction).collect();
        assert_eq!(dirs, [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly]);
        assert_eq!(ans.media[0].media_ssrcs(), [1_786_127_196]);
        assert_eq!(ans.media[1].media_ssrcs(), [2_262_105_423]);
        assert!(ans.media[2].media_ssrcs().is_empty());
        assert_eq!(ans.media[1].formats, [VP8_PT, H264_PT]);

        let offer = SessionDescription::parse(CHROMIUM_156_OFFER).expect("offer parses");
        let (sdp, neg) = build_answer(&offer, 5, 1, &transport(), &|_| None).expect("answer");
        assert_eq!(
            neg[0].codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(),
            [111, 110]
        );
        // 108 is H.264 42e01f with packetization-mode=1; 102 is 42001f, 114 mode 0.
        assert_eq!(
            neg[1].codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(),
            [96, 108]
        );
        assert_eq!(neg[1].remote_ssrcs, [3_405_932_599], "RTX SSRC left out");
        assert!(sdp.contains("m=video 20002 UDP/TLS/RTP/SAVPF 96 108\r\n"));
    }

    #[test]
    fn firefox_puts_transport_at_session_level() {
        let s = SessionDescription::parse(FIREFOX_OFFER).expect("parses");
        let t = s.remote_transport().expect("transport");
        assert_eq!(t.ice.ufrag, "6c1f8b2e");
        assert_eq!(t.setup, Setup::ActPass);
        let (_, neg) = build_answer(&s, 1, 1, &transport(), &|_| None).expect("answer");
        assert_eq!(neg.len(), 3);
        assert!(!neg[0].rejected && !neg[1].rejected);
        assert!(neg[2].rejected, "data channel refused");
        assert_eq!(
            neg[1].codecs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["VP8", "H264"]
        );
    }

    #[test]
    fn rejects_bad_sdp() {
        assert!(matches!(SessionDescription::parse(""), Err(SdpError::Missing(_))));
        assert!(matches!(
            SessionDescription::parse("x=0\r\n"),
            Err(SdpError::Line { line: 1, .. })
        ));
        let bad_pt = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 300\r\n";
        assert!(matches!(
            SessionDescription::parse(bad_pt),
            Err(SdpError::Line { line: 2, .. })
        ));
        let bad_fp = "v=0\r\na=fingerprint:sha-256 00:11\r\n";
        assert!(matches!(
            SessionDescription::parse(bad_fp),
            Err(SdpError::Line { line: 2, .. })
        ));
        let bad_ufrag = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:has space\r\n";
        assert!(SessionDescription::parse(bad_ufrag).is_err());
        let big = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_LEN / 5));
        assert!(matches!(SessionDescription::parse(&big), Err(SdpError::TooLarge(_))));
        let no_transport = SessionDescription::parse("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n").expect("parses");
        assert_eq!(no_transport.remote_transport(), Err(SdpError::Missing("a=ice-ufrag")));
        let mut no_mux = CHROME_OFFER.replace("a=rtcp-mux\r\n", "");
        no_mux = no_mux.replace("a=rtcp-mux\n", "");
        let s = SessionDescription::parse(&no_mux).expect("parses");
        assert!(build_answer(&s, 1, 1, &transport(), &|_| None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(lines in proptest::collection::vec("[avmoc]=[ -~]{0,40}", 0..40)) {
            let sdp = format!("v=0\r\n{}", lines.join("\r\n"));
            if let Ok(s) = SessionDescription::parse(&sdp) {
                let _ = s.remote_transport();
                let _ = build_answer(&s, 1, 1, &transport(), &|_| None);
            }
        }
    }
}
