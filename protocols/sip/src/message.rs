//! SIP messages on the wire: parsing with validation, accessors, and builders (RFC 3261 §7, §18, §20).
//!
//! [`parse`] is the only way network bytes become an [`rsip::SipMessage`] in confgate. It does its own
//! framing and header-level work before anything reaches `rsip`, because `rsip` 0.4 alone does not:
//!
//! - unfold continuation lines (RFC 3261 §7.3.1), accept whitespace before the colon, expand the compact
//!   header names (`v`, `f`, `t`, `i`, `m`, `l`, `c`, `k`, `s`, … RFC 3261 §7.3.3);
//! - split comma-separated `Via`, `Contact`, `Route` and `Record-Route` values into one header each
//!   (RFC 3261 §7.3.1 says both forms are equivalent);
//! - check and rewrite into a canonical form the headers that transactions and dialogs depend on (`Via`,
//!   `From`, `To`, `Call-ID`, `CSeq`, `Max-Forwards`, `Content-Length`, `Contact`, `Route`,
//!   `Record-Route`): the LWS that RFC 3261 allows around `/`, `;`, `=` is removed, so `rsip`'s typed
//!   headers and the accessors here read them the same way;
//! - validate the untrusted lengths: the whole datagram against a size limit, the body against
//!   `Content-Length` (RFC 3261 §18.3: a shorter body is an error, a longer datagram is cut to
//!   `Content-Length`), the number of header fields.
//!
//! A [`ParseError`] names the header or part at fault. Parsing never panics: the module uses no
//! indexing on input, and the `sip_message` fuzz target runs it (and the accessors) on arbitrary bytes.
//!
//! Known limits, all from `rsip` 0.4's types: `rsip::Method` is a closed set, so a request with an
//! extension method is [`ParseError::UnsupportedMethod`] (RFC 3261 §8.2.1 would answer 405, but there is
//! no message to answer from); `rsip::Uri` cannot hold an IPv6 host, so such a Request-URI is
//! [`ParseError::BadRequestUri`] (IPv6 in `Via`, `Contact` and the other canonicalized headers is fine,
//! they stay text); header values that are not UTF-8 are converted lossily.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::{Header, Method, Request, Response, SipMessage, StatusCode, Uri, Version};

/// Largest message [`parse`] accepts: the largest UDP payload (RFC 3261 §18.1.1 puts messages near the
/// MTU on UDP; anything above this cannot be a datagram).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Most header fields (after splitting comma-separated values) a message may carry.
pub const MAX_HEADERS: usize = 256;

/// Why bytes are not a SIP message we accept. Each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Only CRLFs (or nothing): a keep-alive (RFC 5626 §4.4.1), not an error the peer should hear of.
    #[error("empty message (keep-alive)")]
    Empty,
    /// Over the size limit ([`MAX_MESSAGE_SIZE`] by default).
    #[error("message of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// No empty line (CRLF CRLF) ends the header section (RFC 3261 §7).
    #[error("no empty line ends the header section")]
    Unterminated,
    /// The Request-Line or Status-Line is malformed (RFC 3261 §7.1, §7.2).
    #[error("bad start line: {0}")]
    BadStartLine(&'static str),
    /// A SIP version other than 2.0 (RFC 3261 §8.2.2 would answer 505).
    #[error("unsupported SIP version {0:?}")]
    UnsupportedVersion(String),
    /// A method `rsip` cannot represent, or not written in upper case as registered (methods are
    /// case-sensitive, RFC 3261 §7.1).
    #[error("unsupported method {0:?}")]
    UnsupportedMethod(String),
    /// The Request-URI is not a SIP URI we can use (RFC 3261 §19.1).
    #[error("bad Request-URI: {0}")]
    BadRequestUri(String),
    /// A header line has no colon or its name is not a token (RFC 3261 §7.3).
    #[error("malformed header line {line}")]
    BadHeaderLine {
        /// 1-based line number in the header section (the start line is line 0).
        line: usize,
    },
    /// More header fields than [`MAX_HEADERS`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// A header transactions or dialogs depend on is malformed.
    #[error("bad {header} header: {reason}")]
    BadHeader {
        /// Canonical header name, e.g. `"CSeq"`.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A mandatory header is absent (RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Via).
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17).
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch {
        /// Method of the Request-Line.
        method: String,
        /// Method in CSeq.
        cseq: String,
    },
    /// The body is shorter than `Content-Length` says (RFC 3261 §18.3).
    #[error("body has {actual} bytes but Content-Length is {declared}")]
    BodyTooShort {
        /// Value of Content-Length.
        declared: usize,
        /// Bytes after the header section.
        actual: usize,
    },
}

/// Parses one datagram into a message, with the default size limit ([`MAX_MESSAGE_SIZE`]).
///
/// Datagram rules apply (RFC 3261 §18.3): a body longer than `Content-Length` is truncated to it (RFC
/// 4475 §3.1.1.8), a missing `Content-Length` means the body runs to the end of the datagram. Leading
/// CRLFs are skipped (RFC 3261 §7.5). For stream transports, cut the message with
/// [`stream_frame_len`] first.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    parse_with_limit(bytes, MAX_MESSAGE_SIZE)
}

/// [`parse`] with an explicit size limit in bytes.
pub fn parse_with_limit(bytes: &[u8], limit: usize) -> Result<SipMessage, ParseError> {
    if bytes.len() > limit {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let mut input = bytes;
    while let Some(rest) = input.strip_prefix(b"\r\n") {
        input = rest;
    }
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let head_end = find(input, b"\r\n\r\n").ok_or(ParseError::Unterminated)?;
    let head = input.get(..head_end).ok_or(ParseError::Unterminated)?;
    let after = input.get(head_end + 4..).unwrap_or_default();

    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next().ok_or(ParseError::BadStartLine("empty"))?;
    let start = std::str::from_utf8(start).map_err(|_| ParseError::BadStartLine("not UTF-8"))?;

    let raw = unfold(lines)?;
    let mut headers = Vec::with_capacity(raw.len());
    let mut seen = Seen::default();
    for (name, value) in raw {
        add_header(&mut headers, &mut seen, name, value)?;
        if headers.len() > MAX_HEADERS {
            return Err(ParseError::TooManyHeaders(MAX_HEADERS));
        }
    }

    let body = match seen.content_length {
        Some(declared) if declared > after.len() => {
            return Err(ParseError::BodyTooShort {
                declared,
                actual: after.len(),
            })
        }
        Some(declared) => after.get(..declared).unwrap_or_default(),
        None => after,
    };

    let message = if let Some(status) = start.strip_prefix_ci("SIP/") {
        let (version, rest) = status
            .split_once(' ')
            .ok_or(ParseError::BadStartLine("no status code"))?;
        if version != "2.0" {
            return Err(ParseError::UnsupportedVersion(format!("SIP/{version}")));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStartLine("status code is not three digits"));
        }
        let code: u16 = code
            .parse()
            .map_err(|_| ParseError::BadStartLine("status code is not three digits"))?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStartLine("status code out of range 100-699"));
        }
        let status_code = match StatusCode::from(code) {
            StatusCode::Other(code, _) => StatusCode::Other(code, reason.to_owned()),
            known => known,
        };
        SipMessage::Response(Response {
            status_code,
            version: Version::V2,
            headers: headers.into(),
            body: body.to_vec(),
        })
    } else {
        let mut parts = start.split(' ');
        let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::BadStartLine(
                "Request-Line is not three parts separated by single spaces",
            ));
        };
        if method.is_empty() || uri.is_empty() || version.is_empty() {
            return Err(ParseError::BadStartLine(
                "Request-Line is not three parts separated by single spaces",
            ));
        }
        if !method.chars().all(is_token_char) {
            return Err(ParseError::BadStartLine("method is not a token"));
        }
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseError::UnsupportedVersion(version.to_owned()));
        }
        let method = parse_method(method).ok_or_else(|| ParseError::UnsupportedMethod(method.to_owned()))?;
        let uri = parse_request_uri(uri)?;
        if seen.vias == 0 {
            return Err(ParseError::Missing("Via"));
        }
        let cseq_method = seen.cseq_method.as_deref().ok_or(ParseError::Missing("CSeq"))?;
        if cseq_method != method.to_string() {
            return Err(ParseError::CSeqMismatch {
                method: method.to_string(),
                cseq: cseq_method.to_owned(),
            });
        }
        SipMessage::Request(Request {
            method,
            uri,
            version: Version::V2,
            headers: headers.into(),
            body: body.to_vec(),
        })
    };

    // RFC 3261 §8.1.1: To, From, CSeq, Call-ID and Via are mandatory (Max-Forwards is tolerated absent).
    if seen.vias == 0 {
        return Err(ParseError::Missing("Via"));
    }
    if !seen.from {
        return Err(ParseError::Missing("From"));
    }
    if !seen.to {
        return Err(ParseError::Missing("To"));
    }
    if !seen.call_id {
        return Err(ParseError::Missing("Call-ID"));
    }
    match &seen.cseq_method {
        None => return Err(ParseError::Missing("CSeq")),
        Some(m) if parse_method(m).is_none() => {
            return Err(ParseError::BadHeader {
                header: "CSeq",
                reason: format!("unsupported method {m:?}"),
            })
        }
        Some(_) => {}
    }
    Ok(message)
}

/// For stream transports (TCP, TLS, WebSocket-less): the length of the first complete message in `buf`,
/// `Ok(None)` if more bytes are needed. Leading CRLFs (keep-alives) count into the length.
///
/// RFC 3261 §18.3: on a stream, `Content-Length` is mandatory and frames the message; its absence is an
/// error here. The value is checked against [`MAX_MESSAGE_SIZE`] before it is used.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut skip = 0;
    while buf.get(skip..skip + 2) == Some(b"\r\n") {
        skip += 2;
    }
    let Some(rest) = buf.get(skip..) else { return Ok(None) };
    let Some(head_end) = find(rest, b"\r\n\r\n") else {
        if rest.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge {
                size: rest.len(),
                limit: MAX_MESSAGE_SIZE,
            });
        }
        return Ok(None);
    };
    let head = rest.get(..head_end).unwrap_or_default();
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(line.get(..colon).unwrap_or_default());
        let name = name.trim();
        if name.eq_ignore_ascii_case("Content-Length") || name == "l" || name == "L" {
            let value = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or_default());
            let n: usize = parse_digits(value.trim()).ok_or_else(|| ParseError::BadHeader {
                header: "Content-Length",
                reason: "not a decimal number".into(),
            })?;
            length = Some(n);
        }
    }
    let length = length.ok_or(ParseError::Missing("Content-Length"))?;
    let total = skip + head_end + 4 + length;
    if total > MAX_MESSAGE_SIZE + skip {
        return Err(ParseError::TooLarge {
            size: total,
            limit: MAX_MESSAGE_SIZE,
        });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Serializes a message. The body is appended as raw bytes (`rsip`'s `Display` would lossily convert it
/// to UTF-8); headers are written as they are, so keep `Content-Length` right with [`with_body`].
pub fn to_bytes(msg: &SipMessage) -> Vec<u8> {
    match msg {
        SipMessage::Request(r) => request_bytes(r),
        SipMessage::Response(r) => response_bytes(r),
    }
}

/// [`to_bytes`] for a request, without wrapping it in a [`SipMessage`].
pub fn request_bytes(r: &Request) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let _ = write!(out, "{} {} {}", r.method, r.uri, r.version);
    finish_bytes(out, &r.headers, &r.body)
}

/// [`to_bytes`] for a response, without wrapping it in a [`SipMessage`].
pub fn response_bytes(r: &Response) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let _ = write!(out, "{} ", r.version);
    match &r.status_code {
        StatusCode::Other(code, reason) => {
            let _ = write!(out, "{code} {reason}");
        }
        known => {
            let _ = write!(out, "{} {}", known.code(), reason_phrase(known.code()));
        }
    }
    finish_bytes(out, &r.headers, &r.body)
}

/// Appends the header lines, the blank line and the body to a start line.
fn finish_bytes(mut out: String, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    out.push_str("\r\n");
    for h in headers.iter() {
        let _ = write!(out, "{h}\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// ---------------------------------------------------------------------------------------------------------
// Accessors

/// The Call-ID (RFC 3261 §8.1.1.4).
pub fn call_id<M: HasHeaders>(msg: &M) -> Option<&str> {
    msg.headers().iter().find_map(|h| match h {
        Header::CallId(c) => Some(c.value()),
        _ => None,
    })
}

/// CSeq number and method (RFC 3261 §8.1.1.5).
pub fn cseq<M: HasHeaders>(msg: &M) -> Option<(u32, Method)> {
    cseq_of(msg.headers())
}

pub(crate) fn cseq_of(headers: &rsip::Headers) -> Option<(u32, Method)> {
    headers.iter().find_map(|h| match h {
        Header::CSeq(c) => {
            let (n, m) = parse_cseq(c.value()).ok()?;
            Some((n, parse_method(&m)?))
        }
        _ => None,
    })
}

/// The From header as a name-addr.
pub fn from_header<M: HasHeaders>(msg: &M) -> Option<NameAddr> {
    msg.headers().iter().find_map(|h| match h {
        Header::From(v) => NameAddr::parse(v.value()).ok(),
        _ => None,
    })
}

/// The To header as a name-addr.
pub fn to_header<M: HasHeaders>(msg: &M) -> Option<NameAddr> {
    msg.headers().iter().find_map(|h| match h {
        Header::To(v) => NameAddr::parse(v.value()).ok(),
        _ => None,
    })
}

/// The `tag` parameter of From (RFC 3261 §8.1.1.3).
pub fn from_tag<M: HasHeaders>(msg: &M) -> Option<String> {
    from_header(msg)?.param("tag").map(str::to_owned)
}

/// The `tag` parameter of To; `None` outside a dialog (RFC 3261 §8.1.1.2).
pub fn to_tag<M: HasHeaders>(msg: &M) -> Option<String> {
    to_header(msg)?.param("tag").map(str::to_owned)
}

/// The topmost Via (RFC 3261 §8.1.1.7).
pub fn top_via<M: HasHeaders>(msg: &M) -> Option<ViaHeader> {
    msg.headers().iter().find_map(|h| match h {
        Header::Via(v) => ViaHeader::parse(v.value()).ok(),
        _ => None,
    })
}

/// The `branch` of the topmost Via: the transaction id (RFC 3261 §8.1.1.7, §17.2.3).
pub fn top_via_branch<M: HasHeaders>(msg: &M) -> Option<String> {
    top_via(msg)?.param("branch").map(str::to_owned)
}

/// User and host of the From URI.
pub fn from_uri<M: HasHeaders>(msg: &M) -> Option<UriParts> {
    UriParts::parse(&from_header(msg)?.uri)
}

/// User and host of the To URI.
pub fn to_uri<M: HasHeaders>(msg: &M) -> Option<UriParts> {
    UriParts::parse(&to_header(msg)?.uri)
}

/// The user part of the Request-URI (what was dialed), if it has one.
pub fn request_uri_user(req: &Request) -> Option<String> {
    req.uri.user().map(str::to_owned)
}

/// Every Contact header (RFC 3261 §20.10), in order, including a `*` wildcard (see
/// [`NameAddr::is_wildcard`]).
pub fn contacts<M: HasHeaders>(msg: &M) -> Vec<NameAddr> {
    msg.headers()
        .iter()
        .filter_map(|h| match h {
            Header::Contact(v) => NameAddr::parse(v.value()).ok(),
            _ => None,
        })
        .collect()
}

/// The URIs of the Contact headers that `rsip` can represent (a wildcard and non-SIP URIs are left out).
pub fn contact_uris<M: HasHeaders>(msg: &M) -> Vec<Uri> {
    contacts(msg)
        .iter()
        .filter(|c| !c.is_wildcard())
        .filter_map(|c| c.rsip_uri())
        .collect()
}

/// The Expires header in seconds (RFC 3261 §20.19); `None` if absent or not a number.
pub fn expires<M: HasHeaders>(msg: &M) -> Option<u32> {
    msg.headers().iter().find_map(|h| match h {
        Header::Expires(v) => parse_digits(v.value().trim()),
        _ => None,
    })
}

/// The value of the first header called `name` (case-insensitive; compact forms such as `v`, `f`, `t`,
/// `i`, `m`, `l`, `c`, `k`, `s` are accepted, RFC 3261 §7.3.3).
pub fn header_value<M: HasHeaders>(msg: &M, name: &str) -> Option<String> {
    header_values(msg, name).into_iter().next()
}

/// The values of every header called `name`, in order (see [`header_value`]).
pub fn header_values<M: HasHeaders>(msg: &M, name: &str) -> Vec<String> {
    let name = expand_compact(name);
    msg.headers()
        .iter()
        .filter_map(|h| {
            let (n, v) = header_parts(h);
            n.eq_ignore_ascii_case(name).then_some(v)
        })
        .collect()
}

/// The option tags of every `header` (`Require`, `Supported`, `Proxy-Require`, `Unsupported`; RFC 3261
/// §19.2, §20.32, §20.37), lower-cased, in order, from comma-separated values; empty elements are skipped.
pub fn option_tags<M: HasHeaders>(msg: &M, header: &str) -> Vec<String> {
    header_values(msg, header)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim_matches(|c: char| c.is_ascii_whitespace()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Name and value of an `rsip` header.
pub fn header_parts(h: &Header) -> (String, String) {
    if let Header::Other(n, v) = h {
        return (n.clone(), v.clone());
    }
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.to_owned(), v.trim_start().to_owned()),
        None => (s, String::new()),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Builders

/// Builds a response to `req` (RFC 3261 §8.2.6.2): copies every Via, From, To (adding `to_tag` when To has
/// no tag yet), Call-ID and CSeq; for a dialog-creating 101–299 response also copies Record-Route (RFC
/// 3261 §12.1.1); ends with `Content-Length: 0`.
///
/// The status is written with its standard reason phrase, held in `StatusCode::Other(code, phrase)`
/// (`rsip`'s named variants would write e.g. `BusyHere`): compare status codes with `.code()`.
pub fn response_for(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers: Vec<Header> = Vec::with_capacity(8);
    let dialog_creating = (101..300).contains(&code);
    let had_to_tag = req.headers.iter().any(|h| match h {
        Header::To(t) => NameAddr::parse(t.value())
            .ok()
            .and_then(|n| n.param("tag").map(|_| ()))
            .is_some(),
        _ => false,
    });
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(h.clone()),
            Header::RecordRoute(_) if dialog_creating && !had_to_tag => headers.push(h.clone()),
            Header::To(t) => match (to_tag, NameAddr::parse(t.value())) {
                (Some(tag), Ok(mut na)) if na.param("tag").is_none() => {
                    na.params.push(("tag".into(), Some(tag.to_owned())));
                    headers.push(Header::To(rsip::headers::To::new(na.to_string())));
                }
                _ => headers.push(h.clone()),
            },
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Response {
        status_code: StatusCode::Other(code, reason_phrase(code).to_owned()),
        version: Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Adds a header (any name; known names become `rsip`'s typed variants) and returns the message.
pub fn with_header<M: HasHeaders>(mut msg: M, name: &str, value: &str) -> M {
    msg.headers_mut()
        .push(make_header(expand_compact(name), value.to_owned()));
    msg
}

/// Access to the body of the `rsip` message types, for [`with_body`].
pub trait HasBody: HasHeaders {
    /// The body bytes.
    fn body_bytes(&mut self) -> &mut Vec<u8>;
}

impl HasBody for Request {
    fn body_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}

impl HasBody for Response {
    fn body_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}

impl HasBody for SipMessage {
    fn body_bytes(&mut self) -> &mut Vec<u8> {
        self.body_mut()
    }
}

/// Sets the body and its Content-Type, and makes Content-Length match (RFC 3261 §20.14, §20.15).
pub fn with_body<M: HasBody>(mut msg: M, content_type: &str, body: Vec<u8>) -> M {
    let headers = msg.headers_mut();
    headers.retain(|h| !matches!(h, Header::ContentType(_) | Header::ContentLength(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(content_type)));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        body.len().to_string(),
    )));
    *msg.body_bytes() = body;
    msg
}

/// A fresh tag for From or To (RFC 3261 §19.3: at least 32 bits of randomness; this has 64).
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh Via branch: the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7) and 96 random bits.
pub fn new_branch() -> String {
    format!(
        "{BRANCH_COOKIE}{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// A fresh Call-ID, `random@host` (RFC 3261 §8.1.1.4).
pub fn new_call_id(host: &str) -> String {
    format!("{:016x}{:016x}@{host}", rand::random::<u64>(), rand::random::<u64>())
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: on a received request, adds `received=<source ip>` to the top Via
/// when its sent-by host is not that address, and fills an empty `rport` with the source port (which also
/// forces `received`). A top Via that does not parse is left alone.
pub fn stamp_received(req: &mut Request, source: SocketAddr) {
    let _ = stamp_received_top_via(req, source);
}

/// [`stamp_received`], returning the top Via as stamped, parsed; `None` (and nothing changed) when the
/// request has no Via or its first Via does not parse.
pub fn stamp_received_top_via(req: &mut Request, source: SocketAddr) -> Option<ViaHeader> {
    let Some(Header::Via(via)) = req.headers.iter_mut().find(|h| matches!(h, Header::Via(_))) else {
        return None;
    };
    let mut parsed = ViaHeader::parse(via.value()).ok()?;
    let rport_requested = parsed
        .params
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("rport") && v.is_none());
    let host_matches = parsed.host_ip() == Some(source.ip());
    if !host_matches || rport_requested {
        parsed.set_param("received", Some(source.ip().to_string()));
    }
    if rport_requested {
        parsed.set_param("rport", Some(source.port().to_string()));
    }
    *via = rsip::headers::Via::new(display_sized(&parsed, via.value().len() + 32));
    Some(parsed)
}

/// Where to send a response over an unreliable transport (RFC 3261 §18.2.2, RFC 3581 §4): the
/// `received` address of the top Via (with the `rport` port if filled), otherwise the sent-by address
/// when it is an IP literal, otherwise `fallback` (the request's source; no DNS lookups here). `maddr` is
/// not honoured. Over a reliable transport, reuse the connection instead.
pub fn response_destination(resp: &Response, fallback: SocketAddr) -> SocketAddr {
    let Some(via) = resp.headers.iter().find_map(|h| match h {
        Header::Via(v) => ViaHeader::parse(v.value()).ok(),
        _ => None,
    }) else {
        return fallback;
    };
    let rport = via.param("rport").and_then(|p| p.parse::<u16>().ok());
    let default_port = if via.transport.eq_ignore_ascii_case("TLS") {
        5061
    } else {
        5060
    };
    let port = rport.or(via.port).unwrap_or(default_port);
    if let Some(ip) = via.param("received").and_then(parse_ip) {
        return SocketAddr::new(ip, port);
    }
    match via.host_ip() {
        Some(ip) => SocketAddr::new(ip, port),
        None => fallback,
    }
}

/// The standard reason phrase of a status code (RFC 3261 §21 and later RFCs), `""` when unknown.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Header value grammar (RFC 3261 §25.1), tolerant of the LWS the grammar allows

/// A parsed Via value (RFC 3261 §20.42): `SIP/2.0/transport sent-by;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaHeader {
    /// Transport, upper case (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, … or an unknown token).
    pub transport: String,
    /// sent-by host as written (an IPv6 reference keeps its brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// Parameters in order, names as written.
    pub params: Vec<(String, Option<String>)>,
}

impl ViaHeader {
    /// Parses one Via value (one element of a comma-separated list).
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s.trim_matches(is_lws);
        let (name, rest) = take_token(rest).ok_or("no protocol name")?;
        let rest = rest
            .trim_start_matches(is_lws)
            .strip_prefix('/')
            .ok_or("no / after protocol name")?;
        let (version, rest) = take_token(rest.trim_start_matches(is_lws)).ok_or("no protocol version")?;
        let rest = rest
            .trim_start_matches(is_lws)
            .strip_prefix('/')
            .ok_or("no / after protocol version")?;
        let (transport, rest) = take_token(rest.trim_start_matches(is_lws)).ok_or("no transport")?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(format!("unsupported protocol {name}/{version}"));
        }
        if !rest.starts_with(is_lws) {
            return Err("no space before sent-by".into());
        }
        let rest = rest.trim_start_matches(is_lws);
        let (sent_by, params) = match rest.find(';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = parse_host_port(sent_by.trim_matches(is_lws))?;
        let params = parse_params(params)?;
        for (n, v) in &params {
            if n.eq_ignore_ascii_case("received") && v.as_deref().and_then(parse_ip).is_none() {
                return Err("received is not an IP address".into());
            }
            if n.eq_ignore_ascii_case("branch") && v.is_none() {
                return Err("branch without a value".into());
            }
            if n.eq_ignore_ascii_case("rport") && v.as_deref().is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err("rport is not a port".into());
            }
        }
        Ok(Self {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// A parameter's value; `Some("")` for a parameter without value.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    /// The sent-by host when it is an IP literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        parse_ip(&self.host)
    }

    /// `host[:port]` as written in sent-by.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    fn set_param(&mut self, name: &str, value: Option<String>) {
        match self.params.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

impl std::fmt::Display for ViaHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

/// A parsed name-addr or addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39): From, To,
/// Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written (a quoted string keeps its quotes and escapes).
    pub display: Option<String>,
    /// The URI, or `*` for a wildcard Contact.
    pub uri: String,
    /// Header parameters (after the URI), in order.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one value (one element of a comma-separated list).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim_matches(is_lws);
        if s == "*" {
            return Ok(Self {
                display: None,
                uri: "*".into(),
                params: Vec::new(),
            });
        }
        match find_unquoted(s, '<')? {
            Some(lt) => {
                let (display, rest) = s.split_at(lt);
                let display = display.trim_matches(is_lws);
                let rest = rest.strip_prefix('<').unwrap_or(rest);
                let (uri, params) = rest.split_once('>').ok_or("no > after <")?;
                if uri.is_empty() || uri.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<') {
                    // RFC 4475 §3.1.2.14: no LWS inside the angle brackets.
                    return Err("whitespace or nothing inside <>".into());
                }
                check_uri(uri)?;
                let display = if display.is_empty() {
                    None
                } else if display.starts_with('"') {
                    if !quoted_string_ends_at_end(display) {
                        return Err("display name is not one quoted string".into());
                    }
                    Some(display.to_owned())
                } else {
                    // RFC 4475 §3.1.2.15: an unquoted display name is tokens and LWS only.
                    if !display.chars().all(|c| is_token_char(c) || is_lws(c)) {
                        return Err("unquoted display name has characters outside a token".into());
                    }
                    Some(display.to_owned())
                };
                Ok(Self {
                    display,
                    uri: uri.to_owned(),
                    params: parse_params(params)?,
                })
            }
            None => {
                // addr-spec: the URI ends at the first ';' (RFC 3261 §20.10), and may not contain ',', '?'
                // or ';' of its own (RFC 4475 §3.1.2.13).
                let (uri, params) = match s.find(';') {
                    Some(i) => s.split_at(i),
                    None => (s, ""),
                };
                let uri = uri.trim_matches(is_lws);
                let bad = |c: char| c.is_whitespace() || c.is_control() || ",?\"<>".contains(c);
                if uri.is_empty() || uri.contains(bad) {
                    return Err("URI outside <> has a space, comma, '?' or quote".into());
                }
                check_uri(uri)?;
                Ok(Self {
                    display: None,
                    uri: uri.to_owned(),
                    params: parse_params(params)?,
                })
            }
        }
    }

    /// A header parameter's value; `Some("")` for a parameter without value.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    /// `Contact: *` (RFC 3261 §10.2.2).
    pub fn is_wildcard(&self) -> bool {
        self.uri == "*"
    }

    /// The URI as `rsip` parses it, for SIP and SIPS URIs; `None` otherwise.
    pub fn rsip_uri(&self) -> Option<Uri> {
        sip_uri(&self.uri)
    }

    /// User, host and port of the URI.
    pub fn uri_parts(&self) -> Option<UriParts> {
        UriParts::parse(&self.uri)
    }
}

impl std::fmt::Display for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_wildcard() {
            return f.write_str("*");
        }
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// The parts of a URI that calls are routed on: scheme, user, host, port (RFC 3261 §19.1.1; for `tel:`,
/// RFC 3966, the number is the user and the host is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParts {
    /// Scheme in lower case (`sip`, `sips`, `tel`, …).
    pub scheme: String,
    /// User part, still %-escaped as written.
    pub user: Option<String>,
    /// Host as written (IPv6 with brackets).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
}

impl UriParts {
    /// Splits a URI; `None` if it has no scheme.
    pub fn parse(uri: &str) -> Option<Self> {
        let (scheme, rest) = uri.split_once(':')?;
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            let user = rest.split(';').next().unwrap_or_default();
            return Some(Self {
                scheme,
                user: Some(user.to_owned()),
                host: String::new(),
                port: None,
            });
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (
                Some(userinfo.split(':').next().unwrap_or_default().to_owned()),
                hostport,
            ),
            None => (None, rest),
        };
        let hostport = hostport.split([';', '?']).next().unwrap_or_default();
        let (host, port) = parse_host_port(hostport).ok()?;
        Some(Self {
            scheme,
            user,
            host,
            port,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Internals

#[derive(Default)]
struct Seen {
    vias: usize,
    from: bool,
    to: bool,
    call_id: bool,
    cseq_method: Option<String>,
    content_length: Option<usize>,
}

trait StripPrefixCi {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str>;
}

impl StripPrefixCi for str {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str> {
        let head = self.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| self.get(prefix.len()..))
            .flatten()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse_digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

/// Methods are case-sensitive (RFC 3261 §7.1); `rsip`'s parser is not, so compare its output.
fn parse_method(s: &str) -> Option<Method> {
    let m = Method::from_str(s).ok()?;
    displays_as(&m, s).then_some(m)
}

/// `value.to_string()` in a string allocated once with room for `capacity` bytes.
fn display_sized(value: &impl std::fmt::Display, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let _ = write!(out, "{value}");
    out
}

/// Whether `value` displays exactly as `s`, without building the string.
fn displays_as(value: &impl std::fmt::Display, s: &str) -> bool {
    struct Compare<'a> {
        rest: &'a str,
        same: bool,
    }
    impl std::fmt::Write for Compare<'_> {
        fn write_str(&mut self, part: &str) -> std::fmt::Result {
            match self.rest.strip_prefix(part) {
                Some(rest) if self.same => self.rest = rest,
                _ => self.same = false,
            }
            Ok(())
        }
    }
    let mut c = Compare { rest: s, same: true };
    let _ = write!(c, "{value}");
    c.same && c.rest.is_empty()
}

/// Header names up to this long are lowercased on the stack.
const LOWER_BUF: usize = 32;

/// `name` in ASCII lowercase, in `buf` when it fits (header names nearly always do).
fn ascii_lowercase<'a>(name: &'a str, buf: &'a mut [u8; LOWER_BUF]) -> std::borrow::Cow<'a, str> {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return std::borrow::Cow::Borrowed(name);
    }
    match buf.get_mut(..name.len()) {
        Some(slot) => {
            slot.copy_from_slice(name.as_bytes());
            slot.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid.
            match std::str::from_utf8(slot) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
            }
        }
        None => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
    }
}

fn take_token(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some(s.split_at(end))
}

fn parse_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        let (v6, rest) = s.split_once(']').ok_or("unterminated IPv6 reference")?;
        let inner = v6.strip_prefix('[').unwrap_or(v6);
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 reference".into());
        }
        match rest {
            "" => (format!("{v6}]"), None),
            r => (
                format!("{v6}]"),
                Some(r.strip_prefix(':').ok_or("junk after IPv6 reference")?),
            ),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err("host has characters outside a hostname".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_digits::<u16>(p).ok_or("port is not a number up to 65535")?),
    };
    Ok((host, port))
}

/// Follows quoted strings (with `\` escapes, RFC 3261 §25.1) through a string, one character at a
/// time.
#[derive(Default)]
struct Quotes {
    inside: bool,
    escaped: bool,
}

impl Quotes {
    /// Takes the next character; says whether it belongs to a quoted string (its quotes included).
    fn feed(&mut self, c: char) -> bool {
        if self.inside {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.inside = false;
            }
            true
        } else {
            self.inside = c == '"';
            self.inside
        }
    }
}

/// Position of `target` outside quoted strings; an unterminated quoted string is an error
/// (RFC 4475 §3.1.2.6).
fn find_unquoted(s: &str, target: char) -> Result<Option<usize>, String> {
    let mut quotes = Quotes::default();
    for (i, c) in s.char_indices() {
        if !quotes.feed(c) && c == target {
            return Ok(Some(i));
        }
    }
    if quotes.inside {
        return Err("unterminated quoted string".into());
    }
    Ok(None)
}

fn quoted_string_ends_at_end(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"') else { return false };
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return i + 1 == inner.len();
        }
    }
    false
}

/// Splits on `sep` outside quoted strings and angle brackets.
fn split_top_level(s: &str, sep: char) -> Result<Vec<&str>, String> {
    match split_top_level_lenient(s, sep) {
        (_, true) => Err("unterminated quoted string".into()),
        (parts, false) => Ok(parts),
    }
}

/// Splits on `sep` outside quoted strings and angle brackets (RFC 3261 §7.3.1), and says whether a
/// quoted string was left unterminated (the last part then runs to the end).
pub(crate) fn split_top_level_lenient(s: &str, sep: char) -> (Vec<&str>, bool) {
    let mut parts = Vec::with_capacity(4);
    let (mut quotes, mut in_angle, mut start) = (Quotes::default(), false, 0);
    for (i, c) in s.char_indices() {
        if quotes.feed(c) {
            continue;
        }
        match c {
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                parts.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    (parts, quotes.inside)
}

/// Parses `;name[=value]` parameters, LWS allowed around `;` and `=` (RFC 3261 §25.1 SEMI, EQUAL).
fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let s = s.trim_matches(is_lws);
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let s = s.strip_prefix(';').ok_or("junk before parameters")?;
    let mut params = Vec::with_capacity(4);
    for part in split_top_level(s, ';')? {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim_matches(is_lws), Some(v.trim_matches(is_lws))),
            None => (part.trim_matches(is_lws), None),
        };
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err("empty or non-token parameter name".into());
        }
        if let Some(v) = value {
            let quoted = v.starts_with('"') && quoted_string_ends_at_end(v);
            let bad = |c: char| c.is_whitespace() || c.is_control() || ",\"<>".contains(c);
            if v.is_empty() || (!quoted && v.contains(bad)) {
                return Err(format!("bad value for parameter {name}"));
            }
        }
        params.push((name.to_owned(), value.map(str::to_owned)));
    }
    Ok(params)
}

fn find_param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

fn write_params(f: &mut std::fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> std::fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<(), String> {
    match uri.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty() =>
        {
            Ok(())
        }
        _ => Err("not an absolute URI".into()),
    }
}

fn parse_cseq(value: &str) -> Result<(u32, String), String> {
    let value = value.trim_matches(is_lws);
    let (n, m) = value.split_once(is_lws).ok_or("no method")?;
    let n: u32 = parse_digits(n).ok_or("sequence number is not a 32-bit number")?;
    if n >= 1 << 31 {
        // RFC 3261 §8.1.1.5: less than 2**31.
        return Err("sequence number is not below 2^31".into());
    }
    let m = m.trim_matches(is_lws);
    if m.is_empty() || !m.chars().all(is_token_char) {
        return Err("method is not a token".into());
    }
    Ok((n, m.to_owned()))
}

fn parse_request_uri(uri: &str) -> Result<Uri, ParseError> {
    let bad = |r: &str| ParseError::BadRequestUri(r.to_owned());
    let (scheme, _) = uri.split_once(':').ok_or_else(|| bad("no scheme"))?;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return Err(bad("not a sip: or sips: URI"));
    }
    if uri.contains('?') {
        // RFC 3261 §19.1.5 / RFC 4475 §3.1.2.11: no headers in a Request-URI.
        return Err(bad("headers are not allowed in a Request-URI"));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) || uri.contains(['<', '>', '"']) {
        return Err(bad("characters not allowed in a URI"));
    }
    sip_uri(uri).ok_or_else(|| bad("not a SIP URI rsip can hold (IPv6 hosts are not supported)"))
}

/// A `sip:`/`sips:` URI as an `rsip::Uri`. The userinfo and host are split here (`rsip` 0.4 misreads a
/// user part holding `%` escapes or `;`, RFC 4475 §3.1.1.3 and §3.1.1.9); only the parameters go through
/// `rsip`. `None` for other schemes, for an IPv6 host (which `rsip` would print without brackets), and
/// for anything malformed. URI headers (`?…`) are dropped, as `rsip::Uri` cannot hold them.
pub fn sip_uri(uri: &str) -> Option<Uri> {
    let parts = UriParts::parse(uri)?;
    let scheme = match parts.scheme.as_str() {
        "sip" => rsip::Scheme::Sip,
        "sips" => rsip::Scheme::Sips,
        _ => return None,
    };
    if parts.host.starts_with('[') {
        return None;
    }
    let (_, rest) = uri.split_once(':')?;
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostpart = hostpart.split('?').next().unwrap_or_default();
    let params = match hostpart.find(';') {
        Some(i) => {
            let (_, p) = hostpart.split_at(i);
            Uri::try_from(format!("sip:x{p}").as_str()).ok()?.params
        }
        None => Vec::new(),
    };
    let auth = userinfo.map(|u| match u.split_once(':') {
        Some((user, password)) => rsip::Auth {
            user: user.to_owned(),
            password: Some(password.to_owned()),
        },
        None => rsip::Auth {
            user: u.to_owned(),
            password: None,
        },
    });
    let host = rsip::Host::from_str(&parts.host).ok()?;
    Some(Uri {
        scheme: Some(scheme),
        auth,
        host_with_port: rsip::HostWithPort {
            host,
            port: parts.port.map(rsip::Port::from),
        },
        params,
        headers: Vec::new(),
    })
}

/// Splits the header lines into (name, value), unfolding continuation lines (RFC 3261 §7.3.1).
fn unfold<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<Vec<(&'a str, String)>, ParseError> {
    let mut out: Vec<(&'a str, String)> = Vec::with_capacity(16);
    for (i, line) in lines.enumerate() {
        let lineno = i + 1;
        if out.len() > MAX_HEADERS {
            return Err(ParseError::TooManyHeaders(MAX_HEADERS));
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            let (_, value) = out.last_mut().ok_or(ParseError::BadHeaderLine { line: lineno })?;
            let more = String::from_utf8_lossy(line);
            let more = more.trim_matches(is_lws);
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::BadHeaderLine { line: lineno })?;
        let name = std::str::from_utf8(line.get(..colon).unwrap_or_default())
            .map_err(|_| ParseError::BadHeaderLine { line: lineno })?
            .trim_end_matches(is_lws);
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(ParseError::BadHeaderLine { line: lineno });
        }
        let value = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or_default());
        out.push((expand_compact(name), value.trim_matches(is_lws).to_owned()));
    }
    Ok(out)
}

fn add_header(headers: &mut Vec<Header>, seen: &mut Seen, name: &str, value: String) -> Result<(), ParseError> {
    use rsip::headers as h;
    let mut buf = [0u8; LOWER_BUF];
    let lower = ascii_lowercase(name, &mut buf);
    let lower = lower.as_ref();
    match lower {
        "via" => {
            for part in split_top_level(&value, ',').map_err(|r| bad("Via", r))? {
                if part.trim_matches(is_lws).is_empty() {
                    continue;
                }
                let via = ViaHeader::parse(part).map_err(|r| bad("Via", r))?;
                headers.push(Header::Via(h::Via::new(display_sized(&via, part.len() + 32))));
                seen.vias += 1;
            }
        }
        "contact" | "route" | "record-route" => {
            let canonical = match lower {
                "contact" => "Contact",
                "route" => "Route",
                _ => "Record-Route",
            };
            for part in split_top_level(&value, ',').map_err(|r| bad(canonical, r))? {
                if part.trim_matches(is_lws).is_empty() {
                    continue;
                }
                let na = NameAddr::parse(part).map_err(|r| bad(canonical, r))?;
                if na.is_wildcard() && canonical != "Contact" {
                    return Err(bad(canonical, "wildcard".into()));
                }
                let v = display_sized(&na, part.len() + 8);
                headers.push(match canonical {
                    "Contact" => Header::Contact(h::Contact::new(v)),
                    "Route" => Header::Route(h::Route::new(v)),
                    _ => Header::RecordRoute(h::RecordRoute::new(v)),
                });
            }
        }
        "from" | "to" => {
            let canonical = if lower == "from" { "From" } else { "To" };
            let flag = if lower == "from" { &mut seen.from } else { &mut seen.to };
            if *flag {
                return Err(bad(canonical, "appears more than once".into()));
            }
            *flag = true;
            let na = NameAddr::parse(&value).map_err(|r| bad(canonical, r))?;
            if na.is_wildcard() {
                return Err(bad(canonical, "wildcard".into()));
            }
            let na = display_sized(&na, value.len() + 8);
            headers.push(if lower == "from" {
                Header::From(h::From::new(na))
            } else {
                Header::To(h::To::new(na))
            });
        }
        "call-id" => {
            if seen.call_id {
                return Err(bad("Call-ID", "appears more than once".into()));
            }
            if value.is_empty() || value.contains(char::is_whitespace) {
                return Err(bad("Call-ID", "empty or contains whitespace".into()));
            }
            seen.call_id = true;
            headers.push(Header::CallId(h::CallId::new(value)));
        }
        "cseq" => {
            if seen.cseq_method.is_some() {
                return Err(bad("CSeq", "appears more than once".into()));
            }
            let (n, m) = parse_cseq(&value).map_err(|r| bad("CSeq", r))?;
            headers.push(Header::CSeq(h::CSeq::new(format!("{n} {m}"))));
            seen.cseq_method = Some(m);
        }
        "max-forwards" => {
            let n: u32 = parse_digits(&value).ok_or_else(|| bad("Max-Forwards", "not a decimal number".into()))?;
            headers.push(Header::MaxForwards(h::MaxForwards::new(n.to_string())));
        }
        "content-length" => {
            let n: usize = parse_digits(&value).ok_or_else(|| bad("Content-Length", "not a decimal number".into()))?;
            if seen.content_length.is_some_and(|old| old != n) {
                return Err(bad("Content-Length", "conflicting values".into()));
            }
            if seen.content_length.is_none() {
                headers.push(Header::ContentLength(h::ContentLength::new(n.to_string())));
            }
            seen.content_length = Some(n);
        }
        _ => headers.push(make_header(name, value)),
    }
    Ok(())
}

fn bad(header: &'static str, reason: String) -> ParseError {
    ParseError::BadHeader { header, reason }
}

/// The full name of a compact header name (RFC 3261 §7.3.3 and the extensions' registrations).
fn expand_compact(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "e" | "E" => "Content-Encoding",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "f" | "F" => "From",
        "s" | "S" => "Subject",
        "k" | "K" => "Supported",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "o" | "O" => "Event",
        "u" | "U" => "Allow-Events",
        "r" | "R" => "Refer-To",
        "b" | "B" => "Referred-By",
        "x" | "X" => "Session-Expires",
        "a" | "A" => "Accept-Contact",
        "j" | "J" => "Reject-Contact",
        "d" | "D" => "Request-Disposition",
        "y" | "Y" => "Identity",
        "n" | "N" => "Identity-Info",
        other => other,
    }
}

/// An `rsip` header for a name, in the variant `rsip`'s own parser would choose.
fn make_header(name: &str, value: String) -> Header {
    use rsip::headers as h;
    let mut buf = [0u8; LOWER_BUF];
    match ascii_lowercase(name, &mut buf).as_ref() {
        "accept" => Header::Accept(h::Accept::new(value)),
        "accept-encoding" => Header::AcceptEncoding(h::AcceptEncoding::new(value)),
        "accept-language" => Header::AcceptLanguage(h::AcceptLanguage::new(value)),
        "alert-info" => Header::AlertInfo(h::AlertInfo::new(value)),
        "allow" => Header::Allow(h::Allow::new(value)),
        "authentication-info" => Header::AuthenticationInfo(h::AuthenticationInfo::new(value)),
        "authorization" => Header::Authorization(h::Authorization::new(value)),
        "cseq" => Header::CSeq(h::CSeq::new(value)),
        "call-id" => Header::CallId(h::CallId::new(value)),
        "call-info" => Header::CallInfo(h::CallInfo::new(value)),
        "contact" => Header::Contact(h::Contact::new(value)),
        "content-disposition" => Header::ContentDisposition(h::ContentDisposition::new(value)),
        "content-encoding" => Header::ContentEncoding(h::ContentEncoding::new(value)),
        "content-language" => Header::ContentLanguage(h::ContentLanguage::new(value)),
        "content-length" => Header::ContentLength(h::ContentLength::new(value)),
        "content-type" => Header::ContentType(h::ContentType::new(value)),
        "date" => Header::Date(h::Date::new(value)),
        "error-info" => Header::ErrorInfo(h::ErrorInfo::new(value)),
        "event" => Header::Event(h::Event::new(value)),
        "expires" => Header::Expires(h::Expires::new(value)),
        "from" => Header::From(h::From::new(value)),
        "in-reply-to" => Header::InReplyTo(h::InReplyTo::new(value)),
        "max-forwards" => Header::MaxForwards(h::MaxForwards::new(value)),
        "mime-version" => Header::MimeVersion(h::MimeVersion::new(value)),
        "min-expires" => Header::MinExpires(h::MinExpires::new(value)),
        "organization" => Header::Organization(h::Organization::new(value)),
        "priority" => Header::Priority(h::Priority::new(value)),
        "proxy-authenticate" => Header::ProxyAuthenticate(h::ProxyAuthenticate::new(value)),
        "proxy-authorization" => Header::ProxyAuthorization(h::ProxyAuthorization::new(value)),
        "proxy-require" => Header::ProxyRequire(h::ProxyRequire::new(value)),
        "record-route" => Header::RecordRoute(h::RecordRoute::new(value)),
        "reply-to" => Header::ReplyTo(h::ReplyTo::new(value)),
        "require" => Header::Require(h::Require::new(value)),
        "retry-after" => Header::RetryAfter(h::RetryAfter::new(value)),
        "route" => Header::Route(h::Route::new(value)),
        "server" => Header::Server(h::Server::new(value)),
        "subject" => Header::Subject(h::Subject::new(value)),
        "subscription-state" => Header::SubscriptionState(h::SubscriptionState::new(value)),
        "supported" => Header::Supported(h::Supported::new(value)),
        "timestamp" => Header::Timestamp(h::Timestamp::new(value)),
        "to" => Header::To(h::To::new(value)),
        "unsupported" => Header::Unsupported(h::Unsupported::new(value)),
        "user-agent" => Header::UserAgent(h::UserAgent::new(value)),
        "via" => Header::Via(h::Via::new(value)),
        "warning" => Header::Warning(h::Warning::new(value)),
        "www-authenticate" => Header::WwwAuthenticate(h::WwwAuthenticate::new(value)),
        _ => Header::Other(name.to_owned(), value),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(bytes: &[u8]) -> Request {
        match parse(bytes).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("expected a request"),
        }
    }

    const SDP_150: &str = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n\
m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";

    // RFC 4475 §3.1.1.1 "wsinv": a short tortuous INVITE.
    fn wsinv() -> Vec<u8> {
        let head = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : 150\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n \
SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
\r\n";
        let mut v = head.as_bytes().to_vec();
        v.extend_from_slice(SDP_150.as_bytes());
        v
    }

    #[test]
    fn rfc4475_wsinv_tortuous_invite_parses() {
        assert_eq!(SDP_150.len(), 150);
        let bytes = wsinv();
        let msg = parse(&bytes).unwrap();
        assert_eq!(call_id(&msg), Some("wsinv.ndaksdj@192.0.2.1"));
        assert_eq!(cseq(&msg), Some((9, Method::Invite)));
        assert_eq!(from_tag(&msg).as_deref(), Some("98asjd8"));
        assert_eq!(to_tag(&msg).as_deref(), Some("1918181833n"));
        assert_eq!(top_via_branch(&msg).as_deref(), Some("390skdjuw"));
        assert_eq!(header_value(&msg, "Max-Forwards").as_deref(), Some("68"));
        assert_eq!(header_values(&msg, "v").len(), 3, "comma-separated Vias are split");
        let vias = header_values(&msg, "Via");
        assert_eq!(vias[1], "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8");
        assert_eq!(vias[2], "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239");
        assert_eq!(
            header_value(&msg, "newfangledheader").as_deref(),
            Some("newfangled value continued newfangled value")
        );
        assert_eq!(header_value(&msg, "Subject").as_deref(), Some(""));
        assert_eq!(
            header_value(&msg, "UnknownHeaderWithUnusualValue").as_deref(),
            Some(";;,,;;,;")
        );
        let to = to_uri(&msg).unwrap();
        assert_eq!(
            (to.user.as_deref(), to.host.as_str()),
            (Some("vivekg"), "chair-dnrc.example.com")
        );
        let from = from_header(&msg).unwrap();
        assert_eq!(from.display.as_deref(), Some("\"J Rosenberg \\\\\\\"\""));
        let c = contacts(&msg);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("q"), Some("0.33"));
        assert_eq!(c[0].param("secondparam"), Some(""));
        assert_eq!(c[0].param("newparam"), Some("newvalue"));
        assert_eq!(contact_uris(&msg)[0].user(), Some("jdrosen"));
        assert_eq!(msg.body().len(), 150);
        let SipMessage::Request(r) = msg else { panic!() };
        assert_eq!(request_uri_user(&r).as_deref(), Some("vivekg"));
        // The canonical To is one rsip can read as a typed header too.
        use rsip::prelude::HeadersExt;
        assert_eq!(
            r.to_header().unwrap().tag().unwrap().unwrap().to_string(),
            "1918181833n"
        );
    }

    #[test]
    fn rfc4475_esc01_escaped_uris_and_compact_content_type() {
        // RFC 4475 §3.1.1.3.
        let mut m = b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n\
To: sip:%75se%72@example.com\r\n\
From: <sip:I%20have%20spaces@example.net>;tag=938\r\n\
Max-Forwards: 87\r\n\
i: esc01.239409asdfakjkn23onasd0-3234\r\n\
CSeq: 234234 INVITE\r\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n\
C: application/sdp\r\n\
Contact:\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n\
Content-Length: 150\r\n\r\n"
            .to_vec();
        m.extend_from_slice(SDP_150.as_bytes());
        let msg = parse(&m).unwrap();
        assert_eq!(call_id(&msg), Some("esc01.239409asdfakjkn23onasd0-3234"));
        assert_eq!(header_value(&msg, "content-type").as_deref(), Some("application/sdp"));
        assert_eq!(from_uri(&msg).unwrap().user.as_deref(), Some("I%20have%20spaces"));
        assert_eq!(to_uri(&msg).unwrap().user.as_deref(), Some("%75se%72"));
        assert_eq!(contacts(&msg)[0].uri_parts().unwrap().user.as_deref(), Some("cal%6Cer"));
        let SipMessage::Request(r) = msg else { panic!() };
        assert_eq!(request_uri_user(&r).as_deref(), Some("sips%3Auser%40example.com"));
    }

    #[test]
    fn rfc4475_escnull_two_contacts_and_compact_length() {
        // RFC 4475 §3.1.1.4.
        let m = b"REGISTER sip:example.com SIP/2.0\r\n\
To: sip:null-%00-null@example.com\r\n\
From: sip:null-%00-null@example.com;tag=839923423\r\n\
Max-Forwards: 70\r\n\
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n\
CSeq: 14398234 REGISTER\r\n\
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n\
Contact: <sip:%00@host5.example.com>\r\n\
Contact: <sip:%00%00@host5.example.com>\r\n\
L:0\r\n\r\n";
        let msg = parse(m).unwrap();
        assert_eq!(cseq(&msg), Some((14398234, Method::Register)));
        let users: Vec<_> = contacts(&msg)
            .iter()
            .map(|c| c.uri_parts().unwrap().user.unwrap())
            .collect();
        assert_eq!(users, ["%00", "%00%00"]);
        assert_eq!(from_tag(&msg).as_deref(), Some("839923423"));
        assert!(msg.body().is_empty());
    }

    #[test]
    fn rfc4475_lwsdisp_display_name_without_space() {
        // RFC 4475 §3.1.1.6.
        let m = b"OPTIONS sip:user@example.com SIP/2.0\r\nTo: sip:user@example.com\r\n\
From: caller<sip:caller@example.com>;tag=323\r\nMax-Forwards: 70\r\n\
Call-ID: lwsdisp.1234abcd@funky.example.com\r\nCSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\nl: 0\r\n\r\n";
        let msg = parse(m).unwrap();
        let from = from_header(&msg).unwrap();
        assert_eq!(from.display.as_deref(), Some("caller"));
        assert_eq!(from_uri(&msg).unwrap().user.as_deref(), Some("caller"));
        assert_eq!(from_tag(&msg).as_deref(), Some("323"));
    }

    #[test]
    fn rfc4475_longreq_many_vias_in_all_spellings() {
        // RFC 4475 §3.1.1.7, abridged: the Via spellings, the compact From, a long branch.
        let mut m = String::from(
            "INVITE sip:user@example.com SIP/2.0\r\nTo: \"I have a user name of extreme proportion\" \
<sip:user@example.com:6000;unknownparam1=verylonglonglongvalue;ParameterNameWithNoValue>\r\n\
F: sip:amazinglylongcallername@example.net;tag=1298298298298242;unknownValuelessparamname\r\n\
Call-ID: longreq.onereallyreallyreallyreallylongcallid\r\nCSeq: 3882340 INVITE\r\n",
        );
        for (i, spelling) in ["Via: ", "v: ", "V: ", "ViA: ", "VIA: ", "via: ", "V :  ", "v  : "]
            .iter()
            .enumerate()
        {
            m.push_str(&format!("{spelling}SIP/2.0/TCP sip{}.example.com\r\n", 33 - i));
        }
        m.push_str(
            "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=verylonglonglongbranchvalue\r\n\
Max-Forwards: 70\r\nContact: <sip:amazinglylongcallername@host5.example.net>\r\nContent-Type: application/sdp\r\n\
l: 150\r\n\r\n",
        );
        m.push_str(SDP_150);
        let msg = parse(m.as_bytes()).unwrap();
        assert_eq!(header_values(&msg, "via").len(), 9);
        assert_eq!(top_via(&msg).unwrap().host, "sip33.example.com");
        assert_eq!(
            top_via_branch(&msg),
            None,
            "the top Via has no branch (an RFC 2543 peer)"
        );
        assert_eq!(to_uri(&msg).unwrap().port, Some(6000));
        assert_eq!(from_tag(&msg).as_deref(), Some("1298298298298242"));
        assert_eq!(cseq(&msg), Some((3882340, Method::Invite)));
    }

    #[test]
    fn rfc4475_dblreq_datagram_is_cut_at_content_length() {
        // RFC 4475 §3.1.1.8: the INVITE after the REGISTER must be ignored.
        let mut m = b"REGISTER sip:example.com SIP/2.0\r\nTo: sip:j.user@example.com\r\n\
From: sip:j.user@example.com;tag=43251j3j324\r\nMax-Forwards: 8\r\nI: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n\
Contact: sip:j.user@host.example.com\r\nCSeq: 8 REGISTER\r\nVia: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n\
Content-Length: 0\r\n\r\n"
            .to_vec();
        m.extend_from_slice(
            b"INVITE sip:joe@example.com SIP/2.0\r\nt: sip:joe@example.com\r\nContent-Length: 150\r\n\r\n",
        );
        let msg = parse(&m).unwrap();
        assert_eq!(cseq(&msg), Some((8, Method::Register)));
        assert!(msg.body().is_empty());
        assert_eq!(call_id(&msg), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    }

    #[test]
    fn rfc4475_semiuri_user_with_semicolon() {
        // RFC 4475 §3.1.1.9: `sip:user;par=u%40example.net@example.com`. rsip alone reads the user as a
        // host with a parameter; our URI split gets it right.
        let m = b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\nTo: sip:j_user@example.com\r\n\
From: sip:caller@example.org;tag=33242\r\nMax-Forwards: 3\r\nCall-ID: semiuri.0ha0isndaksdj\r\nCSeq: 8 OPTIONS\r\n\
Accept: application/sdp, application/pkcs7-mime,\r\n  multipart/mixed, multipart/signed,\r\n  message/sip, message/sipfrag\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\nl: 0\r\n\r\n";
        let msg = parse(m).unwrap();
        assert_eq!(
            header_value(&msg, "Accept").as_deref(),
            Some("application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag")
        );
        let SipMessage::Request(r) = msg else { panic!() };
        assert_eq!(request_uri_user(&r).as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(r.uri.host().to_string(), "example.com");
        assert_eq!(r.uri.to_string(), "sip:user;par=u%40example.net@example.com");
    }

    #[test]
    fn rfc4475_transports_unknown_transport_token() {
        // RFC 4475 §3.1.1.10.
        let m = b"OPTIONS sip:user@example.com SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: <sip:caller@example.com>;tag=323\r\n\
Max-Forwards: 70\r\nCall-ID:  transports.kijh4akdnaqjkwendsasfdj\r\nAccept: application/sdp\r\nCSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\nVia: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n\
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\nVia: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n\
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\r\nl: 0\r\n\r\n";
        let msg = parse(m).unwrap();
        let transports: Vec<_> = header_values(&msg, "Via")
            .iter()
            .map(|v| ViaHeader::parse(v).unwrap().transport)
            .collect();
        assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        assert_eq!(call_id(&msg), Some("transports.kijh4akdnaqjkwendsasfdj"));
    }

    #[test]
    fn rfc4475_unreason_and_noreason_responses() {
        // RFC 4475 §3.1.1.12 (UTF-8 reason phrase) and §3.1.1.13 (empty reason phrase).
        let m = "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\r\n\
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\nCall-ID: unreason.1234ksdfak3j2erwedfsASdf\r\nCSeq: 35 INVITE\r\n\
From: sip:user@example.com;tag=11141343\r\nTo: sip:user@example.edu;tag=2229\r\nContent-Length: 0\r\n\r\n";
        let SipMessage::Response(r) = parse(m.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.status_code.code(), 200);
        let m = b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\nCall-ID: noreason.asndj203insdf99223ndf\r\n\
CSeq: 35 INVITE\r\nFrom: <sip:user@example.com>;tag=39ansfi3\r\nTo: <sip:user@example.edu>;tag=902jndnke3\r\n\
Content-Length: 0\r\nContact: <sip:user@host105.example.com>\r\n\r\n";
        let msg = parse(m).unwrap();
        assert!(matches!(&msg, SipMessage::Response(r) if r.status_code.code() == 100));
        assert_eq!(to_tag(&msg).as_deref(), Some("902jndnke3"));
    }

    #[test]
    fn rfc4475_extension_methods_are_unsupported_by_rsip() {
        // RFC 4475 §3.1.1.2 "intmeth" and §3.1.1.5 "esc02" are valid, but their methods
        // (`!interesting-Method…`, `RE%47IST%45R`) cannot be represented by rsip::Method: we reject them
        // as UnsupportedMethod rather than misread them (esc02 is *not* a REGISTER).
        let m = b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\nTo: \"%Z%45\" <sip:resource@example.com>\r\n\
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23\r\nCall-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n\
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234\r\nCSeq: 29344 RE%47IST%45R\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";
        assert_eq!(parse(m), Err(ParseError::UnsupportedMethod("RE%47IST%45R".into())));
        let m = "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\nCall-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n\
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(parse(m.as_bytes()), Err(ParseError::UnsupportedMethod(_))));
        // A lower-case spelling of a known method is a different (extension) method.
        let m = b"invite sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 invite\r\n\r\n";
        assert_eq!(parse(m), Err(ParseError::UnsupportedMethod("invite".into())));
    }

    fn minimal(extra: &str, start: &str) -> Vec<u8> {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nTo: <sip:u@example.com>\r\n\
From: <sip:c@example.com>;tag=1\r\nCall-ID: t1@h\r\nCSeq: 8 OPTIONS\r\nMax-Forwards: 70\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn minimal_request_parses_and_round_trips() {
        let bytes = minimal("Content-Length: 0\r\n", "OPTIONS sip:u@example.com SIP/2.0");
        let msg = parse(&bytes).unwrap();
        let again = parse(&to_bytes(&msg)).unwrap();
        assert_eq!(msg, again);
    }

    #[test]
    fn rfc4475_invalid_messages_are_rejected() {
        let o = "OPTIONS sip:u@example.com SIP/2.0";
        type Case = (&'static str, Vec<u8>, fn(&ParseError) -> bool);
        let cases: Vec<Case> = vec![
            // §3.1.2.1 badinv01: extraneous separators in Via.
            ("badinv01", b"INVITE sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\nTo: sip:u@example.com\r\nFrom: sip:c@example.com;tag=1\r\nCall-ID: a@b\r\nCSeq: 1 INVITE\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadHeader { header: "Via", .. })),
            // §3.1.2.2 clerr: Content-Length larger than the body.
            ("clerr", minimal("Content-Length: 9999\r\n", o), |e| matches!(e, ParseError::BodyTooShort { declared: 9999, .. })),
            // §3.1.2.3 ncl: negative Content-Length.
            ("ncl", minimal("Content-Length: -999\r\n", o), |e| matches!(e, ParseError::BadHeader { header: "Content-Length", .. })),
            // §3.1.2.4 scalar02: overlarge CSeq (and Via received 300.255.255.255).
            ("scalar02", b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\r\nTo: <sip:r@example.com>\r\nFrom: <sip:r@example.com>;tag=1\r\nCall-ID: scalar02@h\r\nCSeq: 36893488147419103232 REGISTER\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadHeader { header: "CSeq", .. })),
            ("scalar02-received", minimal("Via: SIP/2.0/TCP h;branch=z9hG4bKa;received=300.255.255.255\r\n", o),
             |e| matches!(e, ParseError::BadHeader { header: "Via", .. })),
            // §3.1.2.5 scalarlg: response with overlarge CSeq.
            ("scalarlg", b"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw\r\nTo: <sip:u@example.com>;tag=2\r\nFrom: <sip:c@example.com>;tag=1\r\nCall-ID: scalarlg@h\r\nCSeq: 36893488147419103232 OPTIONS\r\nRetry-After: 18446744073709551617\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadHeader { header: "CSeq", .. })),
            // §3.1.2.6 quotbal: unterminated quoted display name.
            ("quotbal", b"INVITE sip:u@example.com SIP/2.0\r\nTo: \"Mr. J. User <sip:j.user@example.com>\r\nFrom: sip:c@example.com;tag=1\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: a@b\r\nCSeq: 1 INVITE\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadHeader { header: "To", .. })),
            // §3.1.2.7 ltgtruri: <> around the Request-URI.
            ("ltgtruri", minimal("", "INVITE <sip:user@example.com> SIP/2.0"), |e| matches!(e, ParseError::BadRequestUri(_))),
            // §3.1.2.8 lwsruri: LWS inside the Request-URI.
            ("lwsruri", minimal("", "INVITE sip:user@example.com; lr SIP/2.0"), |e| matches!(e, ParseError::BadStartLine(_))),
            // §3.1.2.9 lwsstart: several SPs between the Request-Line elements.
            ("lwsstart", minimal("", "INVITE  sip:user@example.com  SIP/2.0"), |e| matches!(e, ParseError::BadStartLine(_))),
            // §3.1.2.10 trws: trailing SPs after the version (RFC 4475 allows accepting it; we do not).
            ("trws", minimal("", "OPTIONS sip:remote-target@example.com SIP/2.0  "), |e| matches!(e, ParseError::BadStartLine(_))),
            // §3.1.2.11 escruri: headers in the Request-URI.
            ("escruri", minimal("", "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0"), |e| matches!(e, ParseError::BadRequestUri(_))),
            // §3.1.2.13 regbadct: addr-spec with '?' outside <>.
            ("regbadct", minimal("Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\n", o), |e| matches!(e, ParseError::BadHeader { header: "Contact", .. })),
            // §3.1.2.14 badaspec: spaces inside <>.
            ("badaspec", minimal("Contact: \"Watson, Thomas\" < sip:t.watson@example.org >\r\n", o), |e| matches!(e, ParseError::BadHeader { header: "Contact", .. })),
            // §3.1.2.15 baddn: unquoted display name with a comma.
            ("baddn", b"OPTIONS sip:t.watson@example.org SIP/2.0\r\nVia: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\nTo: sip:t.watson@example.org\r\nFrom: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\nCall-ID: baddn@h\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadHeader { header: "From", .. })),
            // §3.1.2.16 badvers: SIP/7.0.
            ("badvers", minimal("", "OPTIONS sip:t.watson@example.org SIP/7.0"), |e| matches!(e, ParseError::UnsupportedVersion(_))),
            // §3.1.2.17 mismatch01: CSeq method differs from the Request-Line.
            ("mismatch01", minimal("", "INVITE sip:u@example.com SIP/2.0"), |e| matches!(e, ParseError::CSeqMismatch { .. })),
            // §3.1.2.18 mismatch02: unknown method and CSeq mismatch.
            ("mismatch02", minimal("", "NEWMETHOD sip:u@example.com SIP/2.0"), |e| matches!(e, ParseError::UnsupportedMethod(_))),
            // §3.1.2.19 bigcode: overlarge status code.
            ("bigcode", b"SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\nCall-ID: bigcode@h\r\nCSeq: 353494 INVITE\r\nFrom: <sip:u@example.com>;tag=39ansfi3\r\nTo: <sip:u@example.edu>;tag=902jndnke3\r\n\r\n".to_vec(),
             |e| matches!(e, ParseError::BadStartLine(_))),
        ];
        for (name, bytes, expected) in cases {
            let got = parse(&bytes);
            assert!(matches!(&got, Err(e) if expected(e)), "{name}: got {got:?}");
        }
    }

    #[test]
    fn control_characters_in_uris_are_rejected() {
        // Found by the sip_message fuzz target: a NUL inside an addr-spec, and in the Request-URI.
        let e = parse(&minimal("Contact: sip:a@b.ex>\0ple.com\r\n", "OPTIONS sip:u@h SIP/2.0")).unwrap_err();
        assert!(matches!(e, ParseError::BadHeader { header: "Contact", .. }));
        let e = parse(&minimal("", "OPTIONS sip:u@h;un\0\x01sam SIP/2.0")).unwrap_err();
        assert!(matches!(e, ParseError::BadRequestUri(_)));
        let e = parse(&minimal("Contact: <sip:a@b>;p=x\x07\r\n", "OPTIONS sip:u@h SIP/2.0")).unwrap_err();
        assert!(matches!(e, ParseError::BadHeader { header: "Contact", .. }));
    }

    #[test]
    fn rfc4475_baddate_is_accepted_leniently() {
        // §3.1.2.12: an invalid Date is not checked (Date plays no part in what we do).
        let bytes = minimal(
            "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n",
            "OPTIONS sip:u@example.com SIP/2.0",
        );
        assert!(parse(&bytes).is_ok());
    }

    #[test]
    fn missing_headers_are_named() {
        let m = b"OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:u@h>\r\nFrom: <sip:c@h>;tag=1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let e = parse(m).unwrap_err();
        assert_eq!(e, ParseError::Missing("Call-ID"));
        assert_eq!(e.to_string(), "missing Call-ID header");
        let m = b"OPTIONS sip:u@h SIP/2.0\r\nTo: <sip:u@h>\r\nFrom: <sip:c@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(parse(m), Err(ParseError::Missing("Via")));
        // Max-Forwards may be absent.
        let m = b"OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:u@h>\r\nFrom: <sip:c@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert!(parse(m).is_ok());
        let e = parse(&minimal("CSeq: 9 OPTIONS\r\n", "OPTIONS sip:u@h SIP/2.0")).unwrap_err();
        assert_eq!(e.to_string(), "bad CSeq header: appears more than once");
    }

    #[test]
    fn framing_errors() {
        assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(
            parse(b"OPTIONS sip:u@h SIP/2.0\r\nVia: x\r\n"),
            Err(ParseError::Unterminated)
        );
        let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
        assert!(matches!(parse(&big), Err(ParseError::TooLarge { .. })));
        assert!(matches!(
            parse_with_limit(&minimal("", "OPTIONS sip:u@h SIP/2.0"), 50),
            Err(ParseError::TooLarge { .. })
        ));
        // Leading CRLFs are skipped (RFC 3261 §7.5).
        let mut m = b"\r\n\r\n".to_vec();
        m.extend(minimal("", "OPTIONS sip:u@h SIP/2.0"));
        assert!(parse(&m).is_ok());
        // A header line without a colon.
        assert_eq!(
            parse(&minimal("NoColonHere\r\n", "OPTIONS sip:u@h SIP/2.0")),
            Err(ParseError::BadHeaderLine { line: 7 })
        );
        // Too many headers.
        let many = "X-A: 1\r\n".repeat(MAX_HEADERS + 1);
        assert_eq!(
            parse(&minimal(&many, "OPTIONS sip:u@h SIP/2.0")),
            Err(ParseError::TooManyHeaders(MAX_HEADERS))
        );
        // Conflicting Content-Length values.
        let e = parse(&minimal("Content-Length: 0\r\nl: 3\r\n", "OPTIONS sip:u@h SIP/2.0")).unwrap_err();
        assert!(matches!(
            e,
            ParseError::BadHeader {
                header: "Content-Length",
                ..
            }
        ));
    }

    #[test]
    fn body_is_binary_safe_and_truncated_on_datagrams() {
        let mut m = minimal(
            "Content-Type: application/octet-stream\r\nContent-Length: 4\r\n",
            "OPTIONS sip:u@h SIP/2.0",
        );
        m.extend_from_slice(&[0xff, 0x00, 0x80, 0xfe, 0x01, 0x02]);
        let msg = parse(&m).unwrap();
        assert_eq!(msg.body(), &[0xff, 0x00, 0x80, 0xfe]);
        assert!(to_bytes(&msg).ends_with(&[b'\n', 0xff, 0x00, 0x80, 0xfe]));
        // Without Content-Length the datagram's rest is the body.
        let mut m = minimal("", "OPTIONS sip:u@h SIP/2.0");
        m.extend_from_slice(b"abc");
        assert_eq!(parse(&m).unwrap().body(), b"abc");
    }

    #[test]
    fn stream_framing() {
        let m = minimal("Content-Length: 3\r\n", "OPTIONS sip:u@h SIP/2.0");
        let mut buf = m.clone();
        buf.extend_from_slice(b"abcNEXT");
        assert_eq!(stream_frame_len(&buf), Ok(Some(m.len() + 3)));
        assert_eq!(stream_frame_len(&buf[..m.len() + 2]), Ok(None));
        assert_eq!(stream_frame_len(&buf[..10]), Ok(None));
        assert_eq!(
            stream_frame_len(&minimal("", "OPTIONS sip:u@h SIP/2.0")),
            Err(ParseError::Missing("Content-Length"))
        );
        let m = minimal("l: 99999999999\r\n", "OPTIONS sip:u@h SIP/2.0");
        assert!(matches!(stream_frame_len(&m), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn response_for_copies_headers_and_adds_tag() {
        let bytes = minimal(
            "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKy\r\n",
            "OPTIONS sip:u@h SIP/2.0",
        );
        let r = req(&bytes);
        let resp = response_for(&r, 486, Some("abc"));
        assert_eq!(resp.status_code.code(), 486);
        let wire = String::from_utf8(to_bytes(&SipMessage::Response(resp.clone()))).unwrap();
        assert!(wire.starts_with("SIP/2.0 486 Busy Here\r\n"), "{wire}");
        let msg = SipMessage::Response(resp);
        assert_eq!(to_tag(&msg).as_deref(), Some("abc"));
        assert_eq!(from_tag(&msg).as_deref(), Some("1"));
        assert_eq!(call_id(&msg), Some("t1@h"));
        assert_eq!(cseq(&msg), Some((8, Method::Options)));
        assert_eq!(header_values(&msg, "Via").len(), 2);
        assert!(
            header_values(&msg, "Record-Route").is_empty(),
            "not copied into a failure response"
        );
        assert_eq!(header_value(&msg, "Content-Length").as_deref(), Some("0"));
        let ok = SipMessage::Response(response_for(&r, 200, Some("abc")));
        assert_eq!(
            header_values(&ok, "Record-Route").len(),
            2,
            "copied into a dialog-creating 2xx"
        );
        // An existing To tag is kept.
        let bytes = minimal("", "OPTIONS sip:u@h SIP/2.0");
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("To: <sip:u@example.com>", "To: <sip:u@example.com>;tag=old");
        let resp = SipMessage::Response(response_for(&req(text.as_bytes()), 200, Some("new")));
        assert_eq!(to_tag(&resp).as_deref(), Some("old"));
    }

    #[test]
    fn builders_fix_content_length() {
        let r = req(&minimal("Content-Length: 0\r\n", "OPTIONS sip:u@h SIP/2.0"));
        let resp = with_header(response_for(&r, 200, Some("t")), "k", "timer");
        let resp = with_body(resp, "application/sdp", b"v=0\r\n".to_vec());
        let msg = SipMessage::Response(resp);
        assert_eq!(header_value(&msg, "Supported").as_deref(), Some("timer"));
        assert_eq!(header_values(&msg, "Content-Length"), ["5"]);
        assert_eq!(header_value(&msg, "c").as_deref(), Some("application/sdp"));
        let again = parse(&to_bytes(&msg)).unwrap();
        assert_eq!(again.body(), b"v=0\r\n");
    }

    #[test]
    fn fresh_identifiers() {
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() > 7 + 16);
        assert_ne!(new_branch(), new_branch());
        assert_ne!(new_tag(), new_tag());
        assert!(new_call_id("gw.example.com").ends_with("@gw.example.com"));
    }

    #[test]
    fn received_and_rport_stamping_and_destination() {
        let src: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        // sent-by is a name: received is added, no rport asked for.
        let mut r = req(&minimal("", "OPTIONS sip:u@h SIP/2.0"));
        let text = String::from_utf8(minimal("", "OPTIONS sip:u@h SIP/2.0"))
            .unwrap()
            .replace(
                "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx",
                "Via: SIP/2.0/UDP phone.example.com:5070;branch=z9hG4bKx;rport",
            );
        let mut r2 = req(text.as_bytes());
        stamp_received(&mut r, src);
        stamp_received(&mut r2, src);
        let v1 = top_via(&SipMessage::Request(r.clone())).unwrap();
        assert_eq!(v1.param("received"), Some("198.51.100.7"));
        assert_eq!(v1.param("rport"), None);
        let v2 = top_via(&SipMessage::Request(r2.clone())).unwrap();
        assert_eq!(v2.param("received"), Some("198.51.100.7"));
        assert_eq!(v2.param("rport"), Some("40000"));
        assert_eq!(v2.param("branch"), Some("z9hG4bKx"));
        // §18.2.2: received + sent-by port without rport; received + rport with it.
        let fallback: SocketAddr = "203.0.113.1:1".parse().unwrap();
        assert_eq!(
            response_destination(&response_for(&r, 200, None), fallback),
            "198.51.100.7:5060".parse().unwrap()
        );
        assert_eq!(response_destination(&response_for(&r2, 200, None), fallback), src);
        // sent-by equal to the source: nothing added, the sent-by address is used.
        let text = String::from_utf8(minimal("", "OPTIONS sip:u@h SIP/2.0"))
            .unwrap()
            .replace("192.0.2.1;", "198.51.100.7:40000;");
        let mut r3 = req(text.as_bytes());
        stamp_received(&mut r3, src);
        assert_eq!(
            top_via(&SipMessage::Request(r3.clone())).unwrap().param("received"),
            None
        );
        assert_eq!(response_destination(&response_for(&r3, 200, None), fallback), src);
        // A sent-by name without received (we never stamped it): fallback.
        let text = String::from_utf8(minimal("", "OPTIONS sip:u@h SIP/2.0"))
            .unwrap()
            .replace("192.0.2.1", "ua.example.com");
        assert_eq!(
            response_destination(&response_for(&req(text.as_bytes()), 200, None), fallback),
            fallback
        );
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let text = String::from_utf8(minimal("", "OPTIONS sip:u@h SIP/2.0"))
            .unwrap()
            .replace("192.0.2.1;", "[2001:db8::1]:5062;");
        let mut r = req(text.as_bytes());
        let via = top_via(&SipMessage::Request(r.clone())).unwrap();
        assert_eq!((via.host.as_str(), via.port), ("[2001:db8::1]", Some(5062)));
        let src: SocketAddr = "[2001:db8::2]:5062".parse().unwrap();
        stamp_received(&mut r, src);
        let resp = response_for(&r, 200, None);
        assert_eq!(response_destination(&resp, "127.0.0.1:1".parse().unwrap()), src);
    }

    #[test]
    fn header_value_handles_case_and_compact_forms() {
        let m = parse(&minimal(
            "Subject: hi\r\nx-custom: 1\r\nX-Custom: 2\r\n",
            "OPTIONS sip:u@h SIP/2.0",
        ))
        .unwrap();
        assert_eq!(header_value(&m, "s").as_deref(), Some("hi"));
        assert_eq!(header_value(&m, "SUBJECT").as_deref(), Some("hi"));
        assert_eq!(header_values(&m, "X-CUSTOM"), ["1", "2"]);
        assert_eq!(header_value(&m, "i").as_deref(), Some("t1@h"));
        assert_eq!(header_value(&m, "Absent"), None);
        assert_eq!(expires(&m), None);
        let m = parse(&minimal("Expires: 3600\r\n", "OPTIONS sip:u@h SIP/2.0")).unwrap();
        assert_eq!(expires(&m), Some(3600));
    }

    #[test]
    fn tel_uri_in_from_is_kept() {
        let text = String::from_utf8(minimal("", "OPTIONS sip:u@h SIP/2.0"))
            .unwrap()
            .replace(
                "From: <sip:c@example.com>;tag=1",
                "From: <tel:+15551234567;phone-context=x>;tag=1",
            );
        let m = parse(text.as_bytes()).unwrap();
        let u = from_uri(&m).unwrap();
        assert_eq!((u.scheme.as_str(), u.user.as_deref()), ("tel", Some("+15551234567")));
    }
}
