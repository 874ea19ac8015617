//! SDP (RFC 4566) parsing and the rewriting a media relay does to an offer or
//! answer: put its own address and ports into `o=`, `c=`, `m=` and
//! `a=rtcp`, change the RTP profile, swap SDES keys (RFC 4568), strip ICE
//! (RFC 8839) and DTLS (RFC 8842) attributes, toggle rtcp-mux (RFC 5761).
//!
//! # Model
//!
//! A [`SessionDescription`] is the list of `<type>=<value>` lines of the
//! session part followed by one list per media section (each starting with
//! its `m=` line). Every line is kept verbatim and in order; the rewriting
//! methods change, insert or delete only the lines they are about, so
//! attributes this module does not know (`a=rtpmap`, `a=ssrc`, `a=extmap`, …)
//! pass through untouched. Output always uses CRLF line ends
//! (RFC 4566 §5: "the sequence CRLF (0x0d0a) is used to end a line, although
//! parsers SHOULD be tolerant and also accept lines terminated with a single
//! newline character"); input may use either.
//!
//! # Validation
//!
//! [`parse`] checks what a relay relies on and names the 1-based line of any
//! problem ([`SdpError`]): the first line is `v=0`; every line is
//! `<letter>=<text>` without stray CR or NUL; the session part has exactly one
//! `o=` (six fields, `IN`, `IP4`/`IP6`) and one `s=`; `c=` lines are
//! `IN IP4|IP6 <literal address>[/…]` (at most one per level); `m=` lines are
//! `<media> <port>[/<count>] <proto> <fmt>…` with token syntax; every
//! media section with a non-zero port has a connection address; `a=rtcp`
//! (RFC 3605) and `a=crypto` (RFC 4568 §9.1: tag, suite, `inline:` key
//! parameters with base64 key‖salt, optional lifetime and MKI) are
//! well-formed. Limits: [`MAX_SDP_LEN`] bytes and [`MAX_MEDIA`] media
//! sections. Once parsed, rewriting cannot make the description invalid:
//! the printed ([`Display`](fmt::Display)) text parses again.

use std::fmt;
use std::net::IpAddr;

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Most media sections accepted.
pub const MAX_MEDIA: usize = 32;

/// Why a text is not an SDP body this relay can handle.
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
    /// More than [`MAX_MEDIA`] `m=` lines.
    #[error("line {line}: more than {MAX_MEDIA} media sections")]
    TooManyMedia {
        /// The first `m=` line too many.
        line: usize,
    },
    /// A line that breaks the syntax.
    #[error("line {line}: {what}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A mandatory line is absent.
    #[error("no {what} line in the session description")]
    Missing {
        /// The line type, e.g. `o=`.
        what: &'static str,
    },
}

/// One `<type>=<value>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    kind: u8,
    value: String,
}

impl Line {
    fn new(kind: u8, value: String) -> Self {
        Line { kind, value }
    }

    /// `(name, value)` of an `a=` line.
    fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (self.value.as_str(), None),
        })
    }

    fn is_attribute(&self, name: &str) -> bool {
        self.attribute().is_some_and(|(n, _)| n == name)
    }
}

/// The media direction attribute (RFC 4566 §6, RFC 3264 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

/// One key parameter of an `a=crypto` line (RFC 4568 §6.1, §9.2):
/// `inline:<key‖salt>[|<lifetime>][|<MKI>:<length>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoKey {
    /// Master key followed by master salt, base64-decoded.
    pub key_salt: Vec<u8>,
    /// Lifetime as written, e.g. `2^20`.
    pub lifetime: Option<String>,
    /// MKI value and length as written, e.g. `1:4`.
    pub mki: Option<String>,
}

/// An `a=crypto:<tag> <suite> <key-params> [<session-params>]` line
/// (RFC 4568 §9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The tag that the answer echoes.
    pub tag: u32,
    /// Crypto suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// Key parameters (at least one; several only with MKIs).
    pub keys: Vec<CryptoKey>,
    /// Session parameters as written, e.g. `UNENCRYPTED_SRTCP`.
    pub session_params: Vec<String>,
}

impl Crypto {
    /// Key‖salt of the first key parameter.
    pub fn key_salt(&self) -> &[u8] {
        self.keys.first().map_or(&[], |k| &k.key_salt)
    }
}

/// What a relay needs to know about one media section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// `audio`, `video`, `application`, …
    pub kind: String,
    /// The `m=` port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<number of ports>` of the `m=` line, if given.
    pub port_count: Option<u16>,
    /// The transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// The formats (RTP payload type numbers for RTP profiles), in order.
    pub formats: Vec<String>,
    /// The media-level `c=` address, else the session-level one.
    pub connection: Option<IpAddr>,
    /// `a=rtcp` port (RFC 3605), if present.
    pub rtcp_port: Option<u16>,
    /// `a=rtcp` address, if the attribute carries one.
    pub rtcp_address: Option<IpAddr>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// The `a=crypto` lines, in order.
    pub crypto: Vec<Crypto>,
    /// The media-level direction attribute, else the session-level one.
    pub direction: Option<Direction>,
    /// Any ICE attribute at media or session level.
    pub ice: bool,
    /// An `a=fingerprint` at media or session level (DTLS-SRTP).
    pub dtls_fingerprint: bool,
    /// `a=mid` (RFC 8843), if present.
    pub mid: Option<String>,
}

impl MediaInfo {
    /// The formats that are RTP payload type numbers (0…127).
    pub fn payload_types(&self) -> Vec<u8> {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt < 128)
            .collect()
    }
}

/// A parsed SDP body that keeps every line, for rewriting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// Session-level lines, `v=` first.
    session: Vec<Line>,
    /// One entry per media section; each starts with its `m=` line.
    media: Vec<Vec<Line>>,
}

/// Parses an SDP body (CRLF or LF line ends).
///
/// # Errors
///
/// [`SdpError`] naming the line and the problem; see the module docs for
/// what is checked.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { size: text.len() });
    }
    let mut lines: Vec<(usize, &str)> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(n, l)| (n + 1, l))
        .collect();
    while lines.last().is_some_and(|(_, l)| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(SdpError::Empty);
    }

    let mut sd = SessionDescription {
        session: Vec::new(),
        media: Vec::new(),
    };
    let mut origin_seen = false;
    let mut name_seen = false;
    let mut session_c = false;
    let mut media_c = false;
    let mut media_starts: Vec<usize> = Vec::new();
    let mut media_has_c: Vec<bool> = Vec::new();
    let mut media_ports: Vec<u16> = Vec::new();

    for (index, (n, text)) in lines.iter().copied().enumerate() {
        let bad = |what| SdpError::Invalid { line: n, what };
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(bad("empty line"));
        }
        if bytes.len() < 2 || !bytes[0].is_ascii_lowercase() || bytes[1] != b'=' {
            return Err(bad("not a <type>=<value> line"));
        }
        let kind = bytes[0];
        // bytes[0..2] are ASCII, so 2 is a char boundary.
        let value = &text[2..];
        if value.bytes().any(|b| b == b'\r' || b == 0) {
            return Err(bad("CR or NUL inside the line"));
        }
        if index == 0 {
            if kind != b'v' || value != "0" {
                return Err(bad("first line must be v=0"));
            }
        } else if kind == b'v' {
            return Err(bad("v= after the first line"));
        }
        let in_media = !sd.media.is_empty();
        match kind {
            b'o' => {
                if in_media {
                    return Err(bad("o= inside a media section"));
                }
                if origin_seen {
                    return Err(bad("second o= line"));
                }
                origin_seen = true;
                check_origin(value).map_err(bad)?;
            }
            b's' => {
                if in_media {
                    return Err(bad("s= inside a media section"));
                }
                if name_seen {
                    return Err(bad("second s= line"));
                }
                name_seen = true;
            }
            b'c' => {
                parse_connection(value).map_err(bad)?;
                let seen = if in_media { &mut media_c } else { &mut session_c };
                if *seen {
                    return Err(bad("second c= line at this level"));
                }
                *seen = true;
                if let Some(has) = media_has_c.last_mut() {
                    *has = true;
                }
            }
            b'm' => {
                if sd.media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia { line: n });
                }
                let m = parse_media_line(value).map_err(bad)?;
                sd.media.push(Vec::new());
                media_starts.push(n);
                media_has_c.push(false);
                media_ports.push(m.port);
                media_c = false;
            }
            b'a' => check_attribute(value).map_err(bad)?,
            _ => {}
        }
        let line = Line::new(kind, value.to_owned());
        match sd.media.last_mut() {
            Some(section) => section.push(line),
            None => sd.session.push(line),
        }
    }
    if !origin_seen {
        return Err(SdpError::Missing { what: "o=" });
    }
    if !name_seen {
        return Err(SdpError::Missing { what: "s=" });
    }
    if !session_c {
        for ((start, has_c), port) in media_starts.iter().zip(&media_has_c).zip(&media_ports) {
            if !has_c && *port != 0 {
                return Err(SdpError::Invalid {
                    line: *start,
                    what: "no c= line for this media section",
                });
            }
        }
    }
    Ok(sd)
}

impl SessionDescription {
    /// Number of media sections (`m=` lines).
    pub fn media_count(&self) -> usize {
        self.media.len()
    }

    /// The session-level `c=` address.
    pub fn session_connection(&self) -> Option<IpAddr> {
        self.session
            .iter()
            .find(|l| l.kind == b'c')
            .and_then(|l| parse_connection(&l.value).ok())
    }

    /// The `o=` address as written (may be a host name).
    pub fn origin_address(&self) -> Option<&str> {
        self.session
            .iter()
            .find(|l| l.kind == b'o')
            .and_then(|l| l.value.split(' ').nth(5))
    }

    /// The value of the first session-level `a=<name>[:value]`; `Some("")`
    /// for a property attribute.
    pub fn session_attribute(&self, name: &str) -> Option<&str> {
        find_attribute(&self.session, name)
    }

    /// The value of the first `a=<name>[:value]` of media section `i`;
    /// `Some("")` for a property attribute.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`.
    pub fn media_attribute(&self, i: usize, name: &str) -> Option<&str> {
        find_attribute(&self.media[i], name)
    }

    /// What a relay needs to know about media section `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`.
    pub fn media(&self, i: usize) -> MediaInfo {
        let lines = &self.media[i];
        let mut info = MediaInfo {
            kind: String::new(),
            port: 0,
            port_count: None,
            proto: String::new(),
            formats: Vec::new(),
            connection: None,
            rtcp_port: None,
            rtcp_address: None,
            rtcp_mux: false,
            crypto: Vec::new(),
            direction: None,
            ice: self.session.iter().any(is_ice_line),
            dtls_fingerprint: self.session.iter().any(|l| l.is_attribute("fingerprint")),
            mid: None,
        };
        let mut session_direction = None;
        for l in &self.session {
            if let Some(d) = l.attribute().and_then(|(name, _)| Direction::from_attribute(name)) {
                session_direction = Some(d);
            }
        }
        for l in lines {
            match l.kind {
                b'm' => {
                    if let Ok(m) = parse_media_line(&l.value) {
                        info.kind = m.kind.to_owned();
                        info.port = m.port;
                        info.port_count = m.port_count;
                        info.proto = m.proto.to_owned();
                        info.formats = m.formats.iter().map(|f| (*f).to_owned()).collect();
                    }
                }
                b'c' => info.connection = parse_connection(&l.value).ok(),
                b'a' => {
                    let Some((name, value)) = l.attribute() else { continue };
                    match (name, value) {
                        ("rtcp", Some(v)) if info.rtcp_port.is_none() => {
                            if let Ok((port, addr)) = parse_rtcp(v) {
                                info.rtcp_port = Some(port);
                                info.rtcp_address = addr;
                            }
                        }
                        ("rtcp-mux", _) => info.rtcp_mux = true,
                        ("crypto", Some(v)) => info.crypto.extend(parse_crypto(v).ok()),
                        ("fingerprint", _) => info.dtls_fingerprint = true,
                        ("mid", Some(v)) => info.mid = Some(v.to_owned()),
                        _ => {
                            if is_ice_line(l) {
                                info.ice = true;
                            } else if let Some(d) = Direction::from_attribute(name) {
                                info.direction = Some(d);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if info.connection.is_none() {
            info.connection = self.session_connection();
        }
        if info.direction.is_none() {
            info.direction = session_direction;
        }
        info
    }

    /// Rewrites the address of the `o=` line, and its address type to match.
    pub fn set_origin_address(&mut self, addr: IpAddr) {
        if let Some(line) = self.session.iter_mut().find(|l| l.kind == b'o') {
            let fields: Vec<&str> = line.value.split(' ').collect();
            if let [user, id, version, net, _, _] = fields[..] {
                line.value = format!("{user} {id} {version} {net} {} {addr}", addr_type(addr));
            }
        }
    }

    /// Rewrites the session-level `c=` line, or adds one where RFC 4566 §5
    /// puts it (after `v= o= s= i= u= e= p=`) if there is none.
    pub fn set_session_connection(&mut self, addr: IpAddr) {
        let value = connection_value(addr);
        if let Some(line) = self.session.iter_mut().find(|l| l.kind == b'c') {
            line.value = value;
        } else {
            let at = self
                .session
                .iter()
                .rposition(|l| b"vosiuep".contains(&l.kind))
                .map_or(0, |p| p + 1);
            self.session.insert(at, Line::new(b'c', value));
        }
    }

    /// Makes media section `i` point at `addr`: the `m=` port becomes
    /// `rtp_port` (a `/<count>` is dropped), the media-level `c=` is
    /// rewritten — or added after `m=`/`i=` when there is none and the
    /// session-level `c=` holds another address — and `a=rtcp` carries
    /// `rtcp_port`, or `rtp_port` when `None` (RTCP multiplexed, RFC 5761
    /// §5.1.3). An existing `a=rtcp` that names an address gets `addr`.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`.
    pub fn set_media_endpoint(&mut self, i: usize, addr: IpAddr, rtp_port: u16, rtcp_port: Option<u16>) {
        let session_c = self.session_connection();
        let lines = &mut self.media[i];
        rewrite_media_field(lines, 1, &rtp_port.to_string());
        if let Some(line) = lines.iter_mut().find(|l| l.kind == b'c') {
            line.value = connection_value(addr);
        } else if session_c != Some(addr) {
            let at = 1 + lines[1..].iter().take_while(|l| l.kind == b'i').count();
            lines.insert(at, Line::new(b'c', connection_value(addr)));
        }
        let port = rtcp_port.unwrap_or(rtp_port);
        if let Some(line) = lines.iter_mut().find(|l| l.is_attribute("rtcp")) {
            let with_address = line.attribute().and_then(|(_, v)| v).is_some_and(|v| v.contains(' '));
            line.value = if with_address {
                format!("rtcp:{port} {}", connection_value(addr))
            } else {
                format!("rtcp:{port}")
            };
        } else {
            let at = first_attribute_index(lines);
            lines.insert(at, Line::new(b'a', format!("rtcp:{port}")));
        }
    }

    /// Replaces the transport protocol of media section `i`'s `m=` line.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`, or if `proto` is not an SDP token
    /// (e.g. contains a space or a line break).
    pub fn set_media_proto(&mut self, i: usize, proto: &str) {
        assert!(is_proto(proto), "SDP proto must be a token: {proto:?}");
        rewrite_media_field(&mut self.media[i], 2, proto);
    }

    /// Removes all `a=crypto` lines of media section `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`.
    pub fn remove_crypto(&mut self, i: usize) {
        self.media[i].retain(|l| !l.is_attribute("crypto"));
    }

    /// Adds `a=crypto:<tag> <suite> inline:<base64(key‖salt)>` to media
    /// section `i`, after its existing `a=crypto` lines if any, else at the
    /// end of the section.
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`, or if `suite` is not an SDP token.
    pub fn add_crypto(&mut self, i: usize, tag: u32, suite: &str, key: &[u8], salt: &[u8]) {
        assert!(
            !suite.is_empty() && suite.bytes().all(is_token_char),
            "crypto suite must be a token: {suite:?}"
        );
        let key_salt = [key, salt].concat();
        let value = format!("crypto:{tag} {suite} inline:{}", base64::encode(&key_salt));
        let lines = &mut self.media[i];
        let at = lines
            .iter()
            .rposition(|l| l.is_attribute("crypto"))
            .map_or(lines.len(), |p| p + 1);
        lines.insert(at, Line::new(b'a', value));
    }

    /// Removes ICE attributes (RFC 8839 §5: `ice-ufrag`, `ice-pwd`,
    /// `ice-options`, `ice-lite`, `ice-mismatch`, `ice-pacing`, `candidate`,
    /// `remote-candidates`; RFC 8840 `end-of-candidates`) at session and
    /// media level.
    pub fn remove_ice(&mut self) {
        self.session.retain(|l| !is_ice_line(l));
        for lines in &mut self.media {
            lines.retain(|l| !is_ice_line(l));
        }
    }

    /// Removes DTLS-SRTP attributes (`fingerprint` RFC 8122, `setup`
    /// RFC 4145, `tls-id` RFC 8842) at session and media level.
    pub fn remove_dtls(&mut self) {
        let dtls = |l: &Line| {
            l.attribute()
                .is_some_and(|(n, _)| matches!(n, "fingerprint" | "setup" | "tls-id"))
        };
        self.session.retain(|l| !dtls(l));
        for lines in &mut self.media {
            lines.retain(|l| !dtls(l));
        }
    }

    /// Adds `a=rtcp-mux` to media section `i` (after `a=rtcp` if present,
    /// else before the first attribute) or removes it (and `a=rtcp-mux-only`,
    /// RFC 8858).
    ///
    /// # Panics
    ///
    /// If `i >= self.media_count()`.
    pub fn set_rtcp_mux(&mut self, i: usize, on: bool) {
        let lines = &mut self.media[i];
        if on {
            if !lines.iter().any(|l| l.is_attribute("rtcp-mux")) {
                let at = lines
                    .iter()
                    .position(|l| l.is_attribute("rtcp"))
                    .map_or_else(|| first_attribute_index(lines), |p| p + 1);
                lines.insert(at, Line::new(b'a', "rtcp-mux".to_owned()));
            }
        } else {
            lines.retain(|l| !l.is_attribute("rtcp-mux") && !l.is_attribute("rtcp-mux-only"));
        }
    }
}

/// The SDP text, CRLF line ends.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.session.iter().chain(self.media.iter().flatten()) {
            write!(f, "{}={}\r\n", char::from(line.kind), line.value)?;
        }
        Ok(())
    }
}

fn find_attribute<'a>(lines: &'a [Line], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .filter_map(Line::attribute)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.unwrap_or(""))
}

fn is_ice_line(l: &Line) -> bool {
    l.attribute().is_some_and(|(n, _)| {
        n.starts_with("ice-") || matches!(n, "candidate" | "remote-candidates" | "end-of-candidates")
    })
}

/// Where a new attribute goes: before the first `a=` line, else at the end.
fn first_attribute_index(lines: &[Line]) -> usize {
    lines.iter().position(|l| l.kind == b'a').unwrap_or(lines.len())
}

fn addr_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn connection_value(addr: IpAddr) -> String {
    format!("IN {} {addr}", addr_type(addr))
}

/// Replaces field `n` (0 media, 1 port, 2 proto) of the `m=` line at `lines[0]`.
fn rewrite_media_field(lines: &mut [Line], n: usize, new: &str) {
    if let Some(line) = lines.first_mut().filter(|l| l.kind == b'm') {
        let mut fields: Vec<&str> = line.value.split(' ').collect();
        if let Some(field) = fields.get_mut(n) {
            *field = new;
            line.value = fields.join(" ");
        }
    }
}

/// RFC 4566 §9 `token-char`.
fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2a..=0x2b | 0x2d..=0x2e | 0x30..=0x39 | 0x41..=0x5a | 0x5e..=0x7e)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `proto = token *("/" token)`.
fn is_proto(s: &str) -> bool {
    s.split('/').all(is_token)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>` (§5.2).
fn check_origin(value: &str) -> Result<(), &'static str> {
    let fields: Vec<&str> = value.split(' ').collect();
    let [user, id, version, net, family, addr] = fields[..] else {
        return Err("o= needs six space-separated fields");
    };
    if user.is_empty() || user.bytes().any(|b| b.is_ascii_control()) {
        return Err("o= username is empty");
    }
    if !is_digits(id) || !is_digits(version) {
        return Err("o= session id and version must be numeric");
    }
    if net != "IN" {
        return Err("o= network type is not IN");
    }
    check_address(
        family,
        addr,
        "o= address type is not IP4 or IP6",
        "o= address does not match its type",
        true,
    )
}

/// `c=IN <IP4|IP6> <address>[/<ttl>][/<number>]` (§5.7), literal addresses only.
fn parse_connection(value: &str) -> Result<IpAddr, &'static str> {
    let fields: Vec<&str> = value.split(' ').collect();
    let [net, family, addr] = fields[..] else {
        return Err("c= needs three space-separated fields");
    };
    if net != "IN" {
        return Err("c= network type is not IN");
    }
    let (addr, suffix) = addr.split_once('/').unwrap_or((addr, ""));
    if !suffix.is_empty() && !suffix.split('/').all(is_digits) {
        return Err("c= address has a malformed /ttl or /number");
    }
    let ip: IpAddr = addr.parse().map_err(|_| "c= address is not an IP address literal")?;
    check_address(
        family,
        addr,
        "c= address type is not IP4 or IP6",
        "c= address does not match its type",
        false,
    )?;
    Ok(ip)
}

/// Checks an `<addrtype> <address>` pair. With `allow_name`, a non-literal
/// (host name) address is accepted as a token.
fn check_address(
    family: &str,
    addr: &str,
    bad_family: &'static str,
    mismatch: &'static str,
    allow_name: bool,
) -> Result<(), &'static str> {
    let ip: Option<IpAddr> = addr.parse().ok();
    let matches = match (family, ip) {
        ("IP4", Some(IpAddr::V4(_))) | ("IP6", Some(IpAddr::V6(_))) => true,
        ("IP4" | "IP6", Some(_)) => false,
        ("IP4" | "IP6", None) => allow_name && is_token(addr),
        _ => return Err(bad_family),
    };
    if matches {
        Ok(())
    } else {
        Err(mismatch)
    }
}

struct MediaLine<'a> {
    kind: &'a str,
    port: u16,
    port_count: Option<u16>,
    proto: &'a str,
    formats: Vec<&'a str>,
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...` (§5.14).
fn parse_media_line(value: &str) -> Result<MediaLine<'_>, &'static str> {
    let fields: Vec<&str> = value.split(' ').collect();
    let [kind, port, proto, formats @ ..] = &fields[..] else {
        return Err("m= needs media, port, proto and formats");
    };
    if formats.is_empty() {
        return Err("m= has no formats");
    }
    if !is_token(kind) {
        return Err("m= media type is not a token");
    }
    let (port, count) = port.split_once('/').map_or((*port, None), |(p, c)| (p, Some(c)));
    if !is_digits(port) {
        return Err("m= port is not a number");
    }
    let port: u16 = port.parse().map_err(|_| "m= port is out of range")?;
    let port_count = match count {
        None => None,
        Some(c) if is_digits(c) => Some(
            c.parse::<u16>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or("m= number of ports is out of range")?,
        ),
        Some(_) => return Err("m= number of ports is not a number"),
    };
    if !is_proto(proto) {
        return Err("m= proto is not a token");
    }
    if !formats.iter().all(|f| is_token(f)) {
        return Err("m= format is not a token");
    }
    Ok(MediaLine {
        kind,
        port,
        port_count,
        proto,
        formats: formats.to_vec(),
    })
}

/// Attributes whose syntax the relay relies on.
fn check_attribute(value: &str) -> Result<(), &'static str> {
    match value.split_once(':') {
        Some(("rtcp", v)) => parse_rtcp(v).map(|_| ()),
        Some(("crypto", v)) => parse_crypto(v).map(|_| ()),
        None if value == "rtcp" => Err("a=rtcp without a port"),
        None if value == "crypto" => Err("a=crypto without parameters"),
        _ => Ok(()),
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605 §2.1).
fn parse_rtcp(v: &str) -> Result<(u16, Option<IpAddr>), &'static str> {
    let fields: Vec<&str> = v.split(' ').collect();
    let (port, addr) = match fields[..] {
        [port] => (port, None),
        [port, net, family, addr] => {
            if net != "IN" {
                return Err("a=rtcp network type is not IN");
            }
            check_address(
                family,
                addr,
                "a=rtcp address type is not IP4 or IP6",
                "a=rtcp address does not match its type",
                false,
            )?;
            (port, addr.parse::<IpAddr>().ok())
        }
        _ => return Err("a=rtcp needs a port and optionally IN, type and address"),
    };
    if !is_digits(port) {
        return Err("a=rtcp port is not a number");
    }
    let port = port.parse().map_err(|_| "a=rtcp port is out of range")?;
    Ok((port, addr))
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]` (RFC 4568 §9.1).
fn parse_crypto(v: &str) -> Result<Crypto, &'static str> {
    let mut fields = v.split(' ');
    let tag = fields.next().unwrap_or("");
    if !is_digits(tag) || tag.len() > 9 {
        return Err("a=crypto tag is not a 1-9 digit number");
    }
    let tag: u32 = tag.parse().map_err(|_| "a=crypto tag is not a number")?;
    let suite = fields.next().filter(|s| is_token(s)).ok_or("a=crypto suite missing")?;
    let key_params = fields.next().ok_or("a=crypto key parameters missing")?;
    let keys = key_params
        .split(';')
        .map(parse_crypto_key)
        .collect::<Result<Vec<_>, _>>()?;
    let session_params: Vec<String> = fields.map(str::to_owned).collect();
    if session_params
        .iter()
        .any(|p| p.is_empty() || p.bytes().any(|b| !b.is_ascii_graphic()))
    {
        return Err("a=crypto session parameter is malformed");
    }
    Ok(Crypto {
        tag,
        suite: suite.to_owned(),
        keys,
        session_params,
    })
}

/// `inline:<key||salt>["|" lifetime]["|" MKI ":" length]` (RFC 4568 §9.2, §6.1).
fn parse_crypto_key(param: &str) -> Result<CryptoKey, &'static str> {
    let info = param
        .strip_prefix("inline:")
        .ok_or("a=crypto key method is not inline")?;
    let mut parts = info.split('|');
    let key_salt = parts
        .next()
        .and_then(base64::decode)
        .filter(|k| !k.is_empty())
        .ok_or("a=crypto key is not base64")?;
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        if let Some((value, length)) = part.split_once(':') {
            if mki.is_some() || !is_digits(value) || !is_digits(length) {
                return Err("a=crypto MKI is malformed");
            }
            mki = Some(part.to_owned());
        } else {
            let digits = part.strip_prefix("2^").unwrap_or(part);
            if lifetime.is_some() || mki.is_some() || !is_digits(digits) {
                return Err("a=crypto lifetime is malformed");
            }
            lifetime = Some(part.to_owned());
        }
    }
    Ok(CryptoKey {
        key_salt,
        lifetime,
        mki,
    })
}

/// Base64 (RFC 4648 §4), as `a=crypto` needs it.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes with `=` padding.
    pub(super) fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }

    /// Decodes padded or unpadded base64; `None` for anything else
    /// (bad characters, impossible length, misplaced padding, non-zero
    /// trailing bits).
    pub(super) fn decode(s: &str) -> Option<Vec<u8>> {
        let bytes = s.as_bytes();
        let data = bytes
            .strip_suffix(b"==")
            .or_else(|| bytes.strip_suffix(b"="))
            .unwrap_or(bytes);
        if data.len() != bytes.len() && !bytes.len().is_multiple_of(4) {
            return None;
        }
        if data.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(data.len() * 3 / 4);
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &c in data {
            acc = (acc << 6) | sextet(c)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        if acc != 0 {
            return None;
        }
        Some(out)
    }
}

/// Entry points for the fuzz targets: parse, rewrite, re-parse; never panic
/// unless an invariant is broken.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Parses `data` as SDP; if it is valid, checks that it prints and
    /// re-parses identically, applies every rewrite, and checks that the
    /// result parses again and reflects the rewrites.
    pub fn sdp(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let Ok(mut sd) = parse(text) else { return };
        let printed = sd.to_string();
        if printed.len() <= MAX_SDP_LEN {
            assert_eq!(parse(&printed).as_ref(), Ok(&sd), "print/parse round trip");
        }
        for i in 0..sd.media_count() {
            let _ = sd.media(i);
        }
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        sd.set_origin_address(v4);
        sd.set_session_connection(v4);
        sd.remove_ice();
        sd.remove_dtls();
        for i in 0..sd.media_count() {
            let addr = if i % 2 == 0 { v4 } else { v6 };
            let port = 30_000 + 2 * i as u16;
            let rtcp = if i % 3 == 0 { None } else { Some(port + 1) };
            sd.set_media_endpoint(i, addr, port, rtcp);
            sd.set_media_proto(i, "RTP/SAVP");
            sd.remove_crypto(i);
            sd.add_crypto(i, 1, "AES_CM_128_HMAC_SHA1_80", &[0x5a; 16], &[0xa5; 14]);
            sd.set_rtcp_mux(i, i % 2 == 0);
        }
        let out = sd.to_string();
        if out.len() > MAX_SDP_LEN {
            return;
        }
        let again = match parse(&out) {
            Ok(again) => again,
            Err(e) => panic!("rewritten SDP does not parse: {e}\n{out}"),
        };
        for i in 0..again.media_count() {
            let m = again.media(i);
            let addr = if i % 2 == 0 { v4 } else { v6 };
            let port = 30_000 + 2 * i as u16;
            assert_eq!((m.port, m.connection, m.proto.as_str()), (port, Some(addr), "RTP/SAVP"));
            assert_eq!(m.rtcp_port, Some(if i % 3 == 0 { port } else { port + 1 }));
            assert_eq!(m.crypto.len(), 1);
            assert_eq!(m.rtcp_mux, i % 2 == 0);
            assert!(!m.ice && !m.dtls_fingerprint);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    /// Lines joined with CRLF, plus the final CRLF.
    fn crlf(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\r\n")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A baresip offer: session c=, two media, a=rtcp, unknown attributes.
    const BARESIP: &[&str] = &[
        "v=0",
        "o=- 1617633029 2932150296 IN IP4 10.0.0.5",
        "s=-",
        "c=IN IP4 10.0.0.5",
        "t=0 0",
        "a=tool:baresip 3.10.1",
        "m=audio 10004 RTP/AVP 96 0 8 101",
        "b=AS:64",
        "a=rtpmap:96 opus/48000/2",
        "a=fmtp:96 stereo=1;sprop-stereo=1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=rtcp:10005",
        "a=sendrecv",
        "a=label:1",
        "a=ssrc:1276380931 cname:5d0c6a4e@baresip",
        "m=video 10006 RTP/AVP 97",
        "a=rtpmap:97 H264/90000",
        "a=fmtp:97 packetization-mode=1",
        "a=rtcp-fb:97 nack pli",
        "a=sendonly",
    ];

    /// A Chrome (WebRTC) offer: ICE, DTLS, rtcp-mux, BUNDLE, media-level c=.
    const CHROME: &[&str] = &[
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1",
        "a=candidate:435653019 1 tcp 1845501695 192.168.0.196 9 typ host tcptype active generation 0",
        "a=ice-ufrag:Oyef",
        "a=ice-pwd:7NcWWoMNhz2oQfy0AkyvCwZS",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 5D:14:FA:2B:AE:BC:1E:E1:24:7C:FC:E3:3C:2C:F4:6E:30:74:D8:11:9C:17:0B:30:92:44:7B:2E:9B:A0:12:10",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=sendrecv",
        "a=msid:stream track",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6",
        "a=end-of-candidates",
    ];

    /// An SDES offer with the RFC 4568 §4 example keys (lifetime, MKI, session parameter).
    const SDES: &[&str] = &[
        "v=0",
        "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
        "s=SRTP Discussion",
        "i=A discussion about Secure RTP",
        "t=2873397496 2873404696",
        "m=audio 49170 RTP/SAVP 0",
        "c=IN IP4 168.2.17.12",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4",
        "a=crypto:3 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
    ];

    #[test]
    fn sdp_parse_baresip_offer() {
        let sd = parse(&crlf(BARESIP)).unwrap();
        assert_eq!(sd.media_count(), 2);
        assert_eq!(sd.session_connection(), Some(ip("10.0.0.5")));
        assert_eq!(sd.origin_address(), Some("10.0.0.5"));
        assert_eq!(sd.session_attribute("tool"), Some("baresip 3.10.1"));
        let a = sd.media(0);
        assert_eq!(a.kind, "audio");
        assert_eq!((a.port, a.port_count), (10004, None));
        assert_eq!(a.proto, "RTP/AVP");
        assert_eq!(a.formats, ["96", "0", "8", "101"]);
        assert_eq!(a.payload_types(), [96, 0, 8, 101]);
        assert_eq!(a.connection, Some(ip("10.0.0.5")));
        assert_eq!((a.rtcp_port, a.rtcp_address, a.rtcp_mux), (Some(10005), None, false));
        assert_eq!(a.direction, Some(Direction::SendRecv));
        assert!(a.crypto.is_empty() && !a.ice && !a.dtls_fingerprint);
        let v = sd.media(1);
        assert_eq!((v.kind.as_str(), v.port, v.rtcp_port), ("video", 10006, None));
        assert_eq!(v.direction, Some(Direction::SendOnly));
        assert_eq!(sd.media_attribute(1, "rtcp-fb"), Some("97 nack pli"));
        // Printing gives the input back.
        assert_eq!(sd.to_string(), crlf(BARESIP));
    }

    #[test]
    fn sdp_rewrite_baresip_offer() {
        let mut sd = parse(&crlf(BARESIP)).unwrap();
        let relay = ip("203.0.113.1");
        sd.set_origin_address(relay);
        sd.set_session_connection(relay);
        sd.set_media_endpoint(0, relay, 40000, Some(40001));
        sd.set_media_endpoint(1, relay, 40002, None);
        sd.set_media_proto(0, "RTP/SAVP");
        sd.add_crypto(0, 1, "AES_CM_128_HMAC_SHA1_80", b"0123456789abcdef", b"ABCDEFGHIJKLMN");
        sd.set_rtcp_mux(1, true);
        let mut expected: Vec<&str> = BARESIP.to_vec();
        expected[1] = "o=- 1617633029 2932150296 IN IP4 203.0.113.1";
        expected[3] = "c=IN IP4 203.0.113.1";
        expected[6] = "m=audio 40000 RTP/SAVP 96 0 8 101";
        expected[14] = "a=rtcp:40001";
        expected[18] = "m=video 40002 RTP/AVP 97";
        expected.insert(
            18,
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:MDEyMzQ1Njc4OWFiY2RlZkFCQ0RFRkdISUpLTE1O",
        );
        expected.insert(20, "a=rtcp:40002");
        expected.insert(21, "a=rtcp-mux");
        assert_eq!(sd.to_string(), crlf(&expected));
        let again = parse(&sd.to_string()).unwrap();
        assert_eq!(again.media(0).crypto[0].key_salt(), b"0123456789abcdefABCDEFGHIJKLMN");
        assert_eq!(again.media(1).rtcp_port, Some(40002));
        assert!(again.media(1).rtcp_mux);
    }

    #[test]
    fn sdp_media_c_added_only_when_session_c_differs() {
        let mut sd = parse(&crlf(BARESIP)).unwrap();
        // Same address as the session c=: no media c= needed.
        sd.set_media_endpoint(0, ip("10.0.0.5"), 5000, None);
        assert_eq!(sd.to_string().matches("c=").count(), 1);
        // Another address (and family): media c= right after m=.
        sd.set_media_endpoint(1, ip("2001:db8::7"), 5002, None);
        let text = sd.to_string();
        assert!(
            text.contains("m=video 5002 RTP/AVP 97\r\nc=IN IP6 2001:db8::7\r\na=rtcp:5002\r\na=rtpmap:97"),
            "{text}"
        );
        assert_eq!(sd.media(1).connection, Some(ip("2001:db8::7")));
        assert_eq!(sd.media(0).connection, Some(ip("10.0.0.5")));
        // Media c= after i= (RFC 4566 order m, i, c).
        let mut sd = parse("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000/2 RTP/AVP 0\ni=main\na=recvonly\n").unwrap();
        assert_eq!(sd.media(0).port_count, Some(2));
        sd.set_media_endpoint(0, ip("192.0.2.9"), 6000, Some(6001));
        assert_eq!(
            sd.to_string(),
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\ni=main\r\nc=IN IP4 192.0.2.9\r\na=rtcp:6001\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn sdp_session_connection_inserted_in_rfc_order() {
        let mut sd = parse(&crlf(CHROME)).unwrap();
        assert_eq!(sd.session_connection(), None);
        sd.set_session_connection(ip("198.51.100.2"));
        assert!(sd.to_string().starts_with(
            "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 198.51.100.2\r\nt=0 0\r\n"
        ));
        sd.set_origin_address(ip("2001:db8::1"));
        assert_eq!(sd.origin_address(), Some("2001:db8::1"));
        assert!(sd
            .to_string()
            .contains("o=- 4611731400430051336 2 IN IP6 2001:db8::1\r\n"));
    }

    #[test]
    fn sdp_parse_chrome_offer() {
        let sd = parse(&crlf(CHROME)).unwrap();
        assert_eq!(sd.media_count(), 1);
        let a = sd.media(0);
        assert_eq!(
            (a.kind.as_str(), a.port, a.proto.as_str()),
            ("audio", 9, "UDP/TLS/RTP/SAVPF")
        );
        assert_eq!(a.payload_types(), [111, 63, 9, 0, 8, 110, 126]);
        assert_eq!(a.connection, Some(ip("0.0.0.0")));
        assert_eq!((a.rtcp_port, a.rtcp_address), (Some(9), Some(ip("0.0.0.0"))));
        assert!(a.rtcp_mux && a.ice && a.dtls_fingerprint);
        assert_eq!(a.mid.as_deref(), Some("0"));
        assert_eq!(a.direction, Some(Direction::SendRecv));
        assert_eq!(sd.media_attribute(0, "setup"), Some("actpass"));
        assert_eq!(sd.media_attribute(0, "rtcp-mux"), Some(""));
        assert_eq!(sd.media_attribute(0, "nope"), None);
    }

    #[test]
    fn sdp_rewrite_chrome_offer_for_a_sip_phone() {
        // WebRTC → SIP: strip ICE and DTLS, RTP/AVP, demux RTCP, relay address.
        let mut sd = parse(&crlf(CHROME)).unwrap();
        let relay = ip("203.0.113.1");
        sd.remove_ice();
        sd.remove_dtls();
        sd.set_origin_address(relay);
        sd.set_media_endpoint(0, relay, 30000, Some(30001));
        sd.set_media_proto(0, "RTP/AVP");
        sd.set_rtcp_mux(0, false);
        let expected = crlf(&[
            "v=0",
            "o=- 4611731400430051336 2 IN IP4 203.0.113.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "a=extmap-allow-mixed",
            "a=msid-semantic: WMS stream",
            "m=audio 30000 RTP/AVP 111 63 9 0 8 110 126",
            "c=IN IP4 203.0.113.1",
            "a=rtcp:30001 IN IP4 203.0.113.1",
            "a=mid:0",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=sendrecv",
            "a=msid:stream track",
            "a=rtpmap:111 opus/48000/2",
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtpmap:63 red/48000/2",
            "a=fmtp:63 111/111",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:110 telephone-event/48000",
            "a=rtpmap:126 telephone-event/8000",
            "a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6",
        ]);
        assert_eq!(sd.to_string(), expected);
        let m = parse(&expected).unwrap().media(0);
        assert!(!m.ice && !m.dtls_fingerprint && !m.rtcp_mux);
        // Session-level ICE and DTLS go too.
        let mut sd = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=ice-lite\r\na=ice-ufrag:x\r\na=fingerprint:sha-1 00\r\na=tool:x\r\nm=audio 1 RTP/AVP 0\r\n").unwrap();
        assert!(sd.media(0).ice && sd.media(0).dtls_fingerprint);
        sd.remove_ice();
        sd.remove_dtls();
        assert_eq!(
            sd.to_string(),
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=tool:x\r\nm=audio 1 RTP/AVP 0\r\n"
        );
    }

    #[test]
    fn sdp_parse_and_replace_sdes_crypto() {
        let mut sd = parse(&crlf(SDES)).unwrap();
        let m = sd.media(0);
        assert_eq!(m.crypto.len(), 3);
        let c = &m.crypto[0];
        assert_eq!((c.tag, c.suite.as_str()), (1, "AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(c.key_salt(), b"YS___semctl () {\t220;}\n}\nunles");
        assert_eq!(c.keys[0].lifetime.as_deref(), Some("2^20"));
        assert_eq!(c.keys[0].mki.as_deref(), Some("1:4"));
        assert_eq!(c.session_params, ["FEC_ORDER=FEC_SRTP"]);
        assert_eq!(m.crypto[1].key_salt().len(), 30);
        assert_eq!(m.crypto[2].keys.len(), 2);
        assert_eq!(m.crypto[2].keys[1].mki.as_deref(), Some("2:4"));
        assert_eq!(m.connection, Some(ip("168.2.17.12")));

        sd.remove_crypto(0);
        sd.add_crypto(0, 1, "AES_256_CM_HMAC_SHA1_80", &[0xff; 32], &[0; 14]);
        let text = sd.to_string();
        assert!(text.ends_with(
            "c=IN IP4 168.2.17.12\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline://////////////////////////////////////////8AAAAAAAAAAAAAAAAAAA==\r\n"
        ), "{text}");
        let c = &parse(&text).unwrap().media(0).crypto[0];
        assert_eq!(c.key_salt(), [&[0xff; 32][..], &[0; 14]].concat());
        // A second key goes after the first.
        sd.add_crypto(0, 2, "AES_CM_128_HMAC_SHA1_32", &[1; 16], &[2; 14]);
        assert_eq!(sd.media(0).crypto.iter().map(|c| c.tag).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn sdp_accepts_lf_and_crlf_and_keeps_unknown_lines() {
        let lf = BARESIP.join("\n") + "\n";
        let crlf_text = crlf(BARESIP);
        let no_final_newline = BARESIP.join("\r\n");
        let mixed = BARESIP.join("\n") + "\r\n\r\n";
        for text in [&lf, &crlf_text, &no_final_newline, &mixed] {
            let sd = parse(text).unwrap();
            assert_eq!(sd.to_string(), crlf_text);
        }
        // Unknown line types and attributes survive in place.
        let text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nu=http://example.com/\r\nc=IN IP4 1.2.3.4\r\nb=AS:100\r\nt=0 0\r\nz=0 0\r\nk=prompt\r\na=x-custom:1\r\nm=application 5000 UDP/BFCP *\r\nx=experimental\r\na=floorctrl:c-s\r\n";
        let mut sd = parse(text).unwrap();
        assert_eq!(sd.to_string(), text);
        sd.set_media_endpoint(0, ip("1.2.3.4"), 6000, None);
        assert_eq!(
            sd.to_string(),
            text.replace("5000", "6000")
                .replace("x=experimental\r\n", "x=experimental\r\na=rtcp:6000\r\n")
        );
    }

    #[test]
    fn sdp_errors_name_the_line() {
        let ok = [
            "v=0",
            "o=- 1 1 IN IP4 1.2.3.4",
            "s=-",
            "c=IN IP4 1.2.3.4",
            "t=0 0",
            "m=audio 1000 RTP/AVP 0",
        ];
        assert!(parse(&crlf(&ok)).is_ok());
        let with = |n: usize, line: &str| {
            let mut v = ok.to_vec();
            v[n] = line;
            parse(&crlf(&v)).unwrap_err()
        };
        let inv = |line: usize, what: &'static str| SdpError::Invalid { line, what };
        let cases: Vec<(SdpError, SdpError)> = vec![
            (with(0, "v=1"), inv(1, "first line must be v=0")),
            (with(0, "o=- 1 1 IN IP4 1.2.3.4"), inv(1, "first line must be v=0")),
            (with(2, "v=0"), inv(3, "v= after the first line")),
            (with(1, "o=- 1 1 IN IP4"), inv(2, "o= needs six space-separated fields")),
            (
                with(1, "o=- x 1 IN IP4 1.2.3.4"),
                inv(2, "o= session id and version must be numeric"),
            ),
            (with(1, "o=- 1 1 ATM IP4 1.2.3.4"), inv(2, "o= network type is not IN")),
            (
                with(1, "o=- 1 1 IN IP5 1.2.3.4"),
                inv(2, "o= address type is not IP4 or IP6"),
            ),
            (
                with(1, "o=- 1 1 IN IP6 1.2.3.4"),
                inv(2, "o= address does not match its type"),
            ),
            (with(3, "c=IN IP4"), inv(4, "c= needs three space-separated fields")),
            (
                with(3, "c=IN IP4 host.example.com"),
                inv(4, "c= address is not an IP address literal"),
            ),
            (with(3, "c=IN IP4 ::1"), inv(4, "c= address does not match its type")),
            (
                with(3, "c=IN IP4 224.2.1.1/x"),
                inv(4, "c= address has a malformed /ttl or /number"),
            ),
            (with(3, "c=TN IP4 1.2.3.4"), inv(4, "c= network type is not IN")),
            (with(3, "c=IN IP9 1.2.3.4"), inv(4, "c= address type is not IP4 or IP6")),
            (with(5, "m=audio 1000 RTP/AVP"), inv(6, "m= has no formats")),
            (
                with(5, "m=audio 1000"),
                inv(6, "m= needs media, port, proto and formats"),
            ),
            (with(5, "m=audio RTP/AVP 0"), inv(6, "m= has no formats")),
            (with(5, "m=audio 70000 RTP/AVP 0"), inv(6, "m= port is out of range")),
            (with(5, "m=audio -1 RTP/AVP 0"), inv(6, "m= port is not a number")),
            (
                with(5, "m=audio 1000/0 RTP/AVP 0"),
                inv(6, "m= number of ports is out of range"),
            ),
            (
                with(5, "m=audio 1000/x RTP/AVP 0"),
                inv(6, "m= number of ports is not a number"),
            ),
            (with(5, "m=audio 1000 RTP//AVP 0"), inv(6, "m= proto is not a token")),
            (
                with(5, "m=audio 1000 RTP/AVP 0 \"8\""),
                inv(6, "m= format is not a token"),
            ),
            (with(5, "m=audio  1000 RTP/AVP 0"), inv(6, "m= port is not a number")),
            (
                with(5, "m=au:dio 1000 RTP/AVP 0"),
                inv(6, "m= media type is not a token"),
            ),
            (with(4, "t=0 0\r"), inv(5, "CR or NUL inside the line")),
            (with(4, "T=0 0"), inv(5, "not a <type>=<value> line")),
            (with(4, "t"), inv(5, "not a <type>=<value> line")),
            (with(4, ""), inv(5, "empty line")),
            (with(4, "o=- 1 1 IN IP4 1.2.3.4"), inv(5, "second o= line")),
            (with(4, "s=again"), inv(5, "second s= line")),
            (with(4, "c=IN IP4 1.2.3.4"), inv(5, "second c= line at this level")),
            (with(4, "a=rtcp:x"), inv(5, "a=rtcp port is not a number")),
            (with(4, "a=rtcp:99999"), inv(5, "a=rtcp port is out of range")),
            (
                with(4, "a=rtcp:9 IN IP4"),
                inv(5, "a=rtcp needs a port and optionally IN, type and address"),
            ),
            (
                with(4, "a=rtcp:9 IN IP6 1.2.3.4"),
                inv(5, "a=rtcp address does not match its type"),
            ),
            (with(4, "a=rtcp"), inv(5, "a=rtcp without a port")),
            (with(4, "a=crypto"), inv(5, "a=crypto without parameters")),
            (
                with(4, "a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:AAAA"),
                inv(5, "a=crypto tag is not a 1-9 digit number"),
            ),
            (with(4, "a=crypto:1"), inv(5, "a=crypto suite missing")),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80"),
                inv(5, "a=crypto key parameters missing"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:x"),
                inv(5, "a=crypto key method is not inline"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:A*AA"),
                inv(5, "a=crypto key is not base64"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
                inv(5, "a=crypto key is not base64"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x"),
                inv(5, "a=crypto lifetime is malformed"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:x"),
                inv(5, "a=crypto MKI is malformed"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^20"),
                inv(5, "a=crypto lifetime is malformed"),
            ),
            (
                with(4, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA "),
                inv(5, "a=crypto session parameter is malformed"),
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
        // Missing lines and sections.
        assert_eq!(parse(""), Err(SdpError::Empty));
        assert_eq!(parse("\r\n\r\n"), Err(SdpError::Empty));
        assert_eq!(parse("v=0\r\ns=-\r\n"), Err(SdpError::Missing { what: "o=" }));
        assert_eq!(
            parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"),
            Err(SdpError::Missing { what: "s=" })
        );
        assert_eq!(
            parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0\nm=audio 5 RTP/AVP 0\n"),
            Err(inv(6, "no c= line for this media section"))
        );
        assert_eq!(
            parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\nc=IN IP4 1.2.3.4\no=- 1 1 IN IP4 1.2.3.4\n"),
            Err(inv(7, "o= inside a media section"))
        );
        assert_eq!(
            parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\ns=x\n"),
            Err(inv(6, "s= inside a media section"))
        );
        let e =
            parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\nc=IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\n")
                .unwrap_err();
        assert_eq!(e.to_string(), "line 7: second c= line at this level");
        // Limits.
        let many = format!(
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n{}",
            "m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA + 1)
        );
        assert_eq!(parse(&many), Err(SdpError::TooManyMedia { line: 6 + MAX_MEDIA }));
        let big = format!("v=0\no=- 1 1 IN IP4 1.2.3.4\ns={}\n", "x".repeat(MAX_SDP_LEN));
        assert_eq!(parse(&big), Err(SdpError::TooLarge { size: big.len() }));
        assert_eq!(
            SdpError::TooLarge { size: 70000 }.to_string(),
            "SDP of 70000 bytes exceeds the limit of 65536"
        );
    }

    #[test]
    fn sdp_o_line_may_name_a_host() {
        let sd = parse("v=0\no=alice 1 1 IN IP4 pc33.atlanta.example.com\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n").unwrap();
        assert_eq!(sd.origin_address(), Some("pc33.atlanta.example.com"));
        assert_eq!(sd.media_count(), 0);
    }

    #[test]
    #[should_panic(expected = "SDP proto must be a token")]
    fn sdp_set_proto_refuses_line_injection() {
        let mut sd = parse(&crlf(BARESIP)).unwrap();
        sd.set_media_proto(0, "RTP/AVP\r\na=evil");
    }

    #[test]
    fn sdp_base64_rfc4648_vectors() {
        let vectors: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (raw, text) in vectors {
            assert_eq!(base64::encode(raw), *text);
            assert_eq!(base64::decode(text).as_deref(), Some(*raw));
            assert_eq!(
                base64::decode(text.trim_end_matches('=')).as_deref(),
                Some(*raw),
                "unpadded {text}"
            );
        }
        for bad in ["Z", "Zg=", "Zh==", "Zm9v=", "Z===", "Zm 9", "Zm9v\n", "=Zm9"] {
            assert_eq!(base64::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn sdp_fuzzing_entry_point_on_samples() {
        for sample in [crlf(BARESIP), crlf(CHROME), crlf(SDES)] {
            fuzzing::sdp(sample.as_bytes());
            for cut in 0..sample.len() {
                if sample.is_char_boundary(cut) {
                    fuzzing::sdp(&sample.as_bytes()[..cut]);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn sdp_base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = base64::encode(&data);
            prop_assert_eq!(base64::decode(&text), Some(data));
        }

        #[test]
        fn sdp_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzzing::sdp(&data);
        }

        #[test]
        fn sdp_rewrite_never_panics_on_mutated_samples(
            which in 0usize..3,
            line in any::<prop::sample::Index>(),
            replacement in "[a-z]=[ -~]{0,40}",
        ) {
            let samples = [BARESIP, CHROME, SDES];
            let mut lines: Vec<String> = samples[which].iter().map(|l| (*l).to_owned()).collect();
            let at = line.index(lines.len());
            lines[at] = replacement;
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            fuzzing::sdp(text.as_bytes());
        }
    }
}
