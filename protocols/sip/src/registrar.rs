//! REGISTER processing and bindings (RFC 3261 §10.3).
//!
//! Pure functions over plain values: [`RegisterRequest::from_request`] reads
//! what matters out of an `rsip::Request`, [`apply`] computes the new set of
//! bindings for the address of record (steps 6–8 of §10.3), and
//! [`contact_header_values`] renders them for the 200 OK. Storage (SQL,
//! memory) and authentication (steps 1–5: Request-URI, `Require`, digest,
//! To/From authorization) belong to the caller.
//!
//! Invariants of [`apply`]:
//! - It is atomic (§10.3 step 7: "the binding updates MUST be committed ...
//!   if and only if all binding updates and additions succeed"): on error
//!   the caller keeps the old bindings, on success it replaces them with the
//!   returned list.
//! - Expired bindings (`expires_at <= now`) never appear in its output.
//! - Bindings are matched by `+sip.instance` when both the stored binding
//!   and the new Contact carry one (RFC 5626 §6, without `reg-id` flows),
//!   else by URI equality (RFC 3261 §19.1.4). Matching by instance means a
//!   phone that comes back on a new port after a reboot or NAT rebinding
//!   replaces its binding instead of piling up new ones.

use std::net::SocketAddr;

use rsip::headers::UntypedHeader;
use rsip::Header;

/// Most Contact entries read from one REGISTER; more is refused (400) before
/// any work.
pub const MAX_CONTACTS_PER_REQUEST: usize = 32;

/// Longest `User-Agent` kept in a binding (bytes, cut at a character
/// boundary) so that it fits a database column.
pub const MAX_USER_AGENT_LEN: usize = 255;

/// The expiration interval used for a malformed `expires` value (RFC 3261
/// §20.10: "Malformed values SHOULD be treated as equivalent to 3600").
pub const MALFORMED_EXPIRES: u32 = 3600;

/// The registrar's limits (RFC 3261 §10.3 step 7, §20.23 Min-Expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// Shortest accepted interval in seconds; shorter non-zero requests are
    /// answered 423 with `Min-Expires: min` (RFC 3261 §10.3 step 7).
    pub min: u32,
    /// Longest interval granted; longer requests are shortened to it
    /// (§10.3 step 7: the registrar "MAY shorten the interval").
    pub max: u32,
    /// Interval used when neither the Contact nor the request has an
    /// `expires` (§10.3 step 7: "the locally-configured default value").
    pub default: u32,
    /// Most bindings one address of record may hold after a REGISTER; more
    /// is refused with [`RegisterError::TooManyBindings`] (403). RFC 3261
    /// sets no limit; this one bounds storage per account.
    pub max_bindings: usize,
}

impl Default for ExpiryPolicy {
    /// 60 s / 3600 s / 3600 s, 10 bindings per address of record.
    fn default() -> Self {
        ExpiryPolicy {
            min: 60,
            max: 3600,
            default: 3600,
            max_bindings: 10,
        }
    }
}

impl ExpiryPolicy {
    /// The interval granted for a requested one (`None`: none was given),
    /// RFC 3261 §10.3 step 7: 0 stays 0 (remove); "if and only if the
    /// requested expiration interval is greater than zero AND smaller than
    /// one hour AND less than a registrar-configured minimum", 423; longer
    /// than `max` is shortened to `max`. The default is never refused.
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, RegisterError> {
        let upper = self.max.max(1);
        match requested {
            None => Ok(self.default.max(self.min).min(upper).max(1)),
            Some(0) => Ok(0),
            Some(e) if e < self.min && e < 3600 => Err(RegisterError::IntervalTooBrief { min: self.min }),
            Some(e) => Ok(e.max(self.min).min(upper)),
        }
    }
}

/// One binding of an address of record to a contact address (RFC 3261
/// §10.3). All fields are plain values so that a row in a SQL table holds
/// one binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact URI as the phone sent it, without `<>`, display name or
    /// header parameters.
    pub contact: String,
    /// When the binding expires, unix seconds.
    pub expires_at: u64,
    /// The Call-ID of the REGISTER that last refreshed it (§10.3 step 7).
    pub call_id: String,
    /// The CSeq number of that REGISTER.
    pub cseq: u32,
    /// The Contact's `q` preference, 0.0 to 1.0 (§20.10).
    pub q: Option<f32>,
    /// Where that REGISTER came from: behind NAT the phone is reachable
    /// there, not at the Contact address.
    pub source: Option<SocketAddr>,
    /// The transport it came over (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub transport: String,
    /// The `User-Agent` of that REGISTER.
    pub user_agent: Option<String>,
    /// The Contact's `+sip.instance` (RFC 5626 §4.1), without quotes and
    /// angle brackets, e.g. `urn:uuid:…`.
    pub instance: Option<String>,
}

/// One Contact of a REGISTER (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq)]
pub struct ContactEntry {
    /// The URI, without `<>`.
    pub uri: String,
    /// The `expires` parameter; a malformed value reads as
    /// [`MALFORMED_EXPIRES`], a value above 2³²−1 as `u32::MAX`.
    pub expires: Option<u32>,
    /// The `q` parameter.
    pub q: Option<f32>,
    /// `+sip.instance`, without quotes and angle brackets.
    pub instance: Option<String>,
}

/// What the Contact header fields of a REGISTER ask for (§10.3 steps 6–7).
#[derive(Debug, Clone, PartialEq)]
pub enum ContactSpec {
    /// No Contact: a query for the current bindings (§10.2.3).
    Query,
    /// `Contact: *`: remove all bindings (§10.2.2).
    Wildcard,
    /// Add, refresh or remove these bindings.
    Contacts(Vec<ContactEntry>),
}

/// The parts of a REGISTER that the registrar acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterRequest {
    /// The user part of the `To` URI: the address of record's user (§10.3
    /// step 5 leaves the AOR → account mapping to the caller).
    pub aor_user: String,
    /// The host part of the `To` URI (lowercased).
    pub aor_host: String,
    /// The Contact header fields.
    pub contacts: ContactSpec,
    /// The `Expires` header (a malformed value reads as
    /// [`MALFORMED_EXPIRES`]).
    pub expires_header: Option<u32>,
    /// `Call-ID`.
    pub call_id: String,
    /// The `CSeq` number.
    pub cseq: u32,
    /// Where the request came from.
    pub source: SocketAddr,
    /// The transport it came over (lowercased).
    pub transport: String,
    /// `User-Agent`, at most [`MAX_USER_AGENT_LEN`] bytes.
    pub user_agent: Option<String>,
}

/// Why a REGISTER was refused; [`RegisterError::status`] is the response
/// code. The `Display` names the header at fault.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The request is not a REGISTER.
    #[error("method: not a REGISTER request")]
    NotRegister,
    /// A required header is missing (RFC 3261 §8.1.1: To, Call-ID, CSeq).
    #[error("{header}: missing")]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// A header does not parse.
    #[error("{header}: {problem}")]
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// `Contact: *` together with other contacts (§10.3 step 6: 400).
    #[error("Contact: `*` must be the only contact")]
    WildcardNotAlone,
    /// `Contact: *` without `Expires: 0` (§10.3 step 6: 400).
    #[error("Expires: must be 0 with `Contact: *`")]
    WildcardNeedsExpiresZero,
    /// A non-zero interval below the minimum (§10.3 step 7): answer 423
    /// Interval Too Brief with `Min-Expires: min` (§21.4.17).
    #[error("Expires: interval too brief, the minimum is {min} s")]
    IntervalTooBrief {
        /// The value for the `Min-Expires` header.
        min: u32,
    },
    /// A binding was last refreshed by a request with the same Call-ID and
    /// a CSeq at least as high (§10.3 steps 6–7: "the update MUST be aborted
    /// and the request fails"): 500.
    #[error("CSeq: {cseq} is not higher than {stored}, stored for this Call-ID")]
    OutOfOrder {
        /// The request's CSeq.
        cseq: u32,
        /// The CSeq stored with the binding.
        stored: u32,
    },
    /// The address of record would hold more than
    /// [`ExpiryPolicy::max_bindings`] bindings. Answered 403 rather than 503:
    /// it is a policy limit that retrying does not lift, and 503 would make
    /// phones and proxies fail over or retry in a loop.
    #[error("Contact: too many bindings for this address of record (limit {max})")]
    TooManyBindings {
        /// The limit.
        max: usize,
    },
}

impl RegisterError {
    /// The SIP response code for this error: 400, 405, 423, 500 or 403.
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::NotRegister => 405,
            RegisterError::MissingHeader { .. }
            | RegisterError::InvalidHeader { .. }
            | RegisterError::WildcardNotAlone
            | RegisterError::WildcardNeedsExpiresZero => 400,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::OutOfOrder { .. } => 500,
            RegisterError::TooManyBindings { .. } => 403,
        }
    }

    /// The standard reason phrase for [`RegisterError::status`] (RFC 3261
    /// §21).
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            403 => "Forbidden",
            405 => "Method Not Allowed",
            423 => "Interval Too Brief",
            _ => "Server Internal Error",
        }
    }

    fn invalid(header: &'static str, problem: &str) -> RegisterError {
        RegisterError::InvalidHeader {
            header,
            problem: problem.to_owned(),
        }
    }
}

impl RegisterRequest {
    /// Reads a REGISTER: `To` (the AOR), `Contact` (several headers and
    /// comma-separated lists, `*`, per-contact `expires`, `q`,
    /// `+sip.instance`), `Expires`, `Call-ID`, `CSeq` and `User-Agent`, in
    /// full or compact form (RFC 3261 §7.3.3: `t`, `m`, `i`). `source` and
    /// `transport` are where and how it arrived.
    ///
    /// Header values are parsed here, not by rsip's typed parsers. Errors
    /// name the header: a missing To/Call-ID/CSeq, a To without a user part,
    /// a Contact that does not parse, a bad `q`, `*` mixed with other
    /// contacts, a CSeq whose method is not REGISTER.
    pub fn from_request(
        req: &rsip::Request,
        source: SocketAddr,
        transport: &str,
    ) -> Result<RegisterRequest, RegisterError> {
        if req.method != rsip::Method::Register {
            return Err(RegisterError::NotRegister);
        }
        let mut to: Option<&str> = None;
        let mut contacts: Vec<&str> = Vec::new();
        let mut expires: Option<&str> = None;
        let mut call_id: Option<&str> = None;
        let mut cseq: Option<&str> = None;
        let mut user_agent: Option<&str> = None;
        for h in req.headers.iter() {
            match h {
                Header::To(v) => to = to.or(Some(v.value())),
                Header::Contact(v) => contacts.push(v.value()),
                Header::Expires(v) => expires = expires.or(Some(v.value())),
                Header::CallId(v) => call_id = call_id.or(Some(v.value())),
                Header::CSeq(v) => cseq = cseq.or(Some(v.value())),
                Header::UserAgent(v) => user_agent = user_agent.or(Some(v.value())),
                Header::Other(name, v) => match name.as_str() {
                    "t" | "T" => to = to.or(Some(v.as_str())),
                    "m" | "M" => contacts.push(v.as_str()),
                    "i" | "I" => call_id = call_id.or(Some(v.as_str())),
                    _ => {}
                },
                _ => {}
            }
        }

        let to = to.ok_or(RegisterError::MissingHeader { header: "To" })?;
        let (to_uri, _) = parse_name_addr(to.trim()).map_err(|p| RegisterError::invalid("To", p))?;
        let (aor_user, aor_host) = uri_user_host(to_uri).map_err(|p| RegisterError::invalid("To", p))?;

        let call_id = call_id
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(RegisterError::MissingHeader { header: "Call-ID" })?;
        let cseq_text = cseq.ok_or(RegisterError::MissingHeader { header: "CSeq" })?;
        let cseq = parse_cseq(cseq_text)?;

        let expires_header = expires.map(parse_delta_seconds);

        let mut entries: Vec<ContactEntry> = Vec::new();
        let mut wildcard = false;
        for value in contacts {
            // Commas outside quoted strings and `<…>` separate the elements (RFC 3261 §7.3.1); an
            // unterminated quoted string runs to the end of the last one.
            let (elements, _) = crate::message::split_top_level_lenient(value, ',');
            for element in elements {
                let element = element.trim_matches(is_ws);
                if element.is_empty() {
                    continue;
                }
                if element == "*" {
                    wildcard = true;
                    continue;
                }
                if entries.len() >= MAX_CONTACTS_PER_REQUEST {
                    return Err(RegisterError::invalid("Contact", "too many contacts in one request"));
                }
                entries.push(parse_contact(element)?);
            }
        }
        let contacts = match (wildcard, entries.is_empty()) {
            (true, true) => ContactSpec::Wildcard,
            (true, false) => return Err(RegisterError::WildcardNotAlone),
            (false, true) => ContactSpec::Query,
            (false, false) => ContactSpec::Contacts(entries),
        };

        Ok(RegisterRequest {
            aor_user,
            aor_host,
            contacts,
            expires_header,
            call_id: call_id.to_owned(),
            cseq,
            source,
            transport: transport.to_ascii_lowercase(),
            user_agent: user_agent
                .map(|ua| truncate(ua.trim(), MAX_USER_AGENT_LEN))
                .filter(|ua| !ua.is_empty()),
        })
    }
}

/// Computes the bindings of the address of record after `req`, from the
/// `existing` ones (RFC 3261 §10.3 steps 6–8). Returns the complete new list
/// (for a query, the current one); on error nothing changes.
///
/// - `Contact: *` only with `Expires: 0` and alone (400); it removes every
///   binding, unless one has the same Call-ID and a CSeq at least as high
///   (500).
/// - Per contact, the interval is its `expires`, else the `Expires` header,
///   else the policy default ([`ExpiryPolicy::grant`]: 423 below the
///   minimum, shortened to the maximum); 0 removes the binding.
/// - An existing binding with the same Call-ID and a CSeq at least as high
///   as the request's fails the request (500); a different Call-ID
///   replaces it (step 7).
/// - More than [`ExpiryPolicy::max_bindings`] afterwards: 403.
pub fn apply(
    existing: &[Binding],
    req: &RegisterRequest,
    policy: &ExpiryPolicy,
    now_unix: u64,
) -> Result<Vec<Binding>, RegisterError> {
    let live = existing.iter().filter(|b| b.expires_at > now_unix);
    let list = match &req.contacts {
        ContactSpec::Query => return Ok(live.cloned().collect()),
        ContactSpec::Contacts(list) if list.is_empty() => return Ok(live.cloned().collect()),
        ContactSpec::Wildcard => {
            if req.expires_header != Some(0) {
                return Err(RegisterError::WildcardNeedsExpiresZero);
            }
            for b in live {
                check_order(b, req)?;
            }
            return Ok(Vec::new());
        }
        ContactSpec::Contacts(list) => list,
    };
    if list.iter().any(|c| c.uri.trim() == "*") {
        return Err(RegisterError::WildcardNotAlone);
    }
    // (binding, touched by this request)
    let mut out: Vec<(Binding, bool)> = live.cloned().map(|b| (b, false)).collect();
    for c in list {
        let granted = policy.grant(c.expires.or(req.expires_header))?;
        let found = out.iter().position(|(b, _)| same_binding(b, c));
        match found {
            Some(i) => {
                let Some((b, touched)) = out.get_mut(i) else { continue };
                if !*touched {
                    check_order(b, req)?;
                }
                if granted == 0 {
                    out.remove(i);
                } else {
                    *b = new_binding(c, req, granted, now_unix);
                    *touched = true;
                }
            }
            None if granted > 0 => out.push((new_binding(c, req, granted, now_unix), true)),
            None => {}
        }
    }
    if out.len() > policy.max_bindings {
        return Err(RegisterError::TooManyBindings {
            max: policy.max_bindings,
        });
    }
    Ok(out.into_iter().map(|(b, _)| b).collect())
}

/// The `Contact` header values for the 200 OK to a REGISTER (RFC 3261 §10.3
/// step 8: every current binding, each with its remaining `expires`, plus
/// `q` and `+sip.instance` when set). Expired bindings are left out.
pub fn contact_header_values(bindings: &[Binding], now_unix: u64) -> Vec<String> {
    bindings
        .iter()
        .filter(|b| b.expires_at > now_unix)
        .map(|b| {
            let mut v = format!("<{}>;expires={}", b.contact, b.expires_at.saturating_sub(now_unix));
            if let Some(q) = b.q {
                v.push_str(";q=");
                v.push_str(&format_q(q));
            }
            if let Some(inst) = &b.instance {
                v.push_str(";+sip.instance=\"<");
                v.push_str(inst);
                v.push_str(">\"");
            }
            v
        })
        .collect()
}

fn check_order(b: &Binding, req: &RegisterRequest) -> Result<(), RegisterError> {
    if b.call_id == req.call_id && req.cseq <= b.cseq {
        return Err(RegisterError::OutOfOrder {
            cseq: req.cseq,
            stored: b.cseq,
        });
    }
    Ok(())
}

fn new_binding(c: &ContactEntry, req: &RegisterRequest, granted: u32, now_unix: u64) -> Binding {
    Binding {
        contact: c.uri.clone(),
        expires_at: now_unix.saturating_add(u64::from(granted)),
        call_id: req.call_id.clone(),
        cseq: req.cseq,
        q: c.q,
        source: Some(req.source),
        transport: req.transport.clone(),
        user_agent: req.user_agent.clone(),
        instance: c.instance.clone(),
    }
}

fn same_binding(b: &Binding, c: &ContactEntry) -> bool {
    match (&b.instance, &c.instance) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => uri_equal(&b.contact, &c.uri),
    }
}

fn format_q(q: f32) -> String {
    let s = format!("{:.3}", q.clamp(0.0, 1.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_owned()
}

/// `delta-seconds` (RFC 3261 §25.1): a value above 2³²−1 reads as 2³²−1;
/// a malformed one as [`MALFORMED_EXPIRES`] (§20.10).
fn parse_delta_seconds(s: &str) -> u32 {
    let s = s.trim_matches(is_ws);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return MALFORMED_EXPIRES;
    }
    s.parse::<u32>().unwrap_or(u32::MAX)
}

/// `CSeq = 1*DIGIT LWS Method` (RFC 3261 §20.16), method REGISTER.
fn parse_cseq(s: &str) -> Result<u32, RegisterError> {
    let mut parts = s.split_whitespace();
    let num = parts.next().unwrap_or("");
    let method = parts.next().unwrap_or("");
    if parts.next().is_some() || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegisterError::invalid("CSeq", "expected `<number> REGISTER`"));
    }
    let n = num
        .parse::<u32>()
        .map_err(|_| RegisterError::invalid("CSeq", "sequence number too large"))?;
    if method != "REGISTER" {
        return Err(RegisterError::invalid("CSeq", "method is not REGISTER"));
    }
    Ok(n)
}

/// Splits `name-addr / addr-spec` followed by `;params` (RFC 3261 §20.10,
/// §25.1) into the URI and the header-parameter text after it. In the
/// `addr-spec` form (no `<>`) every `;` parameter is a header parameter.
fn parse_name_addr(s: &str) -> Result<(&str, &str), &'static str> {
    let mut rest = s;
    if rest.starts_with('"') {
        // quoted display name
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        let end = end.ok_or("unterminated display name")?;
        rest = rest.get(end + 1..).unwrap_or("").trim_start_matches(is_ws);
        if !rest.starts_with('<') {
            return Err("display name without <URI>");
        }
    }
    let (uri, params) = match rest.find('<') {
        Some(open) => {
            let after = rest.get(open + 1..).unwrap_or("");
            let close = after.find('>').ok_or("missing `>`")?;
            (after.get(..close).unwrap_or(""), after.get(close + 1..).unwrap_or(""))
        }
        None => match rest.find(';') {
            Some(semi) => (rest.get(..semi).unwrap_or(""), rest.get(semi..).unwrap_or("")),
            None => (rest, ""),
        },
    };
    let uri = uri.trim_matches(is_ws);
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !scheme_ok || uri.contains(is_ws) {
        return Err("not a URI");
    }
    let params = params.trim_matches(is_ws);
    if !params.is_empty() && !params.starts_with(';') {
        return Err("unexpected text after the URI");
    }
    Ok((uri, params))
}

/// `;name[=value]` parameters, names lowercased, quoted values unquoted.
fn header_params(params: &str) -> Vec<(String, Option<String>)> {
    params
        .split(';')
        .map(|p| p.trim_matches(is_ws))
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => {
                let v = v.trim_matches(is_ws);
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                (n.trim_matches(is_ws).to_ascii_lowercase(), Some(v.to_owned()))
            }
            None => (p.to_ascii_lowercase(), None),
        })
        .collect()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// (RFC 3261 §25.1).
fn parse_qvalue(s: &str) -> Option<f32> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "0" => format!("0.{frac}0").parse::<f32>().ok(),
        "1" if frac.bytes().all(|b| b == b'0') => Some(1.0),
        _ => None,
    }
}

fn parse_contact(element: &str) -> Result<ContactEntry, RegisterError> {
    let (uri, params) = parse_name_addr(element).map_err(|p| RegisterError::invalid("Contact", p))?;
    let mut entry = ContactEntry {
        uri: uri.to_owned(),
        expires: None,
        q: None,
        instance: None,
    };
    for (name, value) in header_params(params) {
        match name.as_str() {
            "expires" => entry.expires = Some(value.as_deref().map_or(MALFORMED_EXPIRES, parse_delta_seconds)),
            "q" => {
                entry.q = Some(
                    value
                        .as_deref()
                        .and_then(parse_qvalue)
                        .ok_or_else(|| RegisterError::invalid("Contact", "bad q value"))?,
                );
            }
            "+sip.instance" => {
                let v = value.unwrap_or_default();
                let v = v.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(&v);
                if !v.is_empty() {
                    entry.instance = Some(v.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(entry)
}

/// The user and host (lowercased) of a SIP URI (RFC 3261 §19.1.1).
fn uri_user_host(uri: &str) -> Result<(String, String), &'static str> {
    let (_, rest) = uri.split_once(':').ok_or("not a URI")?;
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let rest = rest.get(..end).unwrap_or("");
    let (userinfo, hostport) = rest.rsplit_once('@').ok_or("no user part in the URI")?;
    let user = userinfo.split(':').next().unwrap_or("");
    if user.is_empty() {
        return Err("no user part in the URI");
    }
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']').ok_or("bad IPv6 host")?;
        hostport.get(..close + 2).unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("no host in the URI");
    }
    Ok((user.to_owned(), host.to_ascii_lowercase()))
}

/// URI equality after RFC 3261 §19.1.4, simplified: scheme and host
/// case-insensitive, user and password case-sensitive, ports equal (a
/// missing port differs from an explicit 5060); `user`, `ttl`, `method`,
/// `maddr` and `transport` must match when present in either, other
/// parameters when present in both (compared case-insensitively); URI
/// headers are ignored.
fn uri_equal(a: &str, b: &str) -> bool {
    struct Parts<'a> {
        scheme: String,
        userinfo: &'a str,
        hostport: String,
        params: Vec<(String, String)>,
    }
    fn split(u: &str) -> Option<Parts<'_>> {
        let (scheme, rest) = u.split_once(':')?;
        let rest = rest.split('?').next().unwrap_or("");
        let mut parts = rest.split(';');
        let addr = parts.next().unwrap_or("");
        let (userinfo, hostport) = match addr.rsplit_once('@') {
            Some((ui, hp)) => (ui, hp),
            None => ("", addr),
        };
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.to_ascii_lowercase(), v.to_ascii_lowercase())
            })
            .collect();
        Some(Parts {
            scheme: scheme.to_ascii_lowercase(),
            userinfo,
            hostport: hostport.to_ascii_lowercase(),
            params,
        })
    }
    let (Some(x), Some(y)) = (split(a), split(b)) else {
        return a == b;
    };
    if x.scheme != y.scheme || x.userinfo != y.userinfo || x.hostport != y.hostport {
        return false;
    }
    let (pa, pb) = (x.params, y.params);
    let get = |p: &[(String, String)], n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    for strict in ["user", "ttl", "method", "maddr", "transport"] {
        if get(&pa, strict) != get(&pb, strict) {
            return false;
        }
    }
    pa.iter().all(|(n, v)| get(&pb, n).is_none_or(|w| w == *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn src() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 4], 5062))
    }

    /// A REGISTER after RFC 3261 §10.2 (Bob registering at biloxi.com),
    /// with `extra` headers appended.
    fn register(extra: &str) -> rsip::Request {
        let text = format!(
            "REGISTER sip:registrar.biloxi.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n\
             Max-Forwards: 70\r\n\
             To: Bob <sip:bob@Biloxi.com>\r\n\
             From: Bob <sip:bob@biloxi.com>;tag=456248\r\n\
             Call-ID: 843817637684230@998sdasdh09\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_str()).expect("test REGISTER parses")
    }

    fn parse(extra: &str) -> Result<RegisterRequest, RegisterError> {
        RegisterRequest::from_request(&register(extra), src(), "UDP")
    }

    fn req(extra: &str) -> RegisterRequest {
        parse(extra).expect("valid REGISTER")
    }

    fn policy() -> ExpiryPolicy {
        ExpiryPolicy::default()
    }

    #[test]
    fn parses_rfc3261_register() {
        let r =
            req("CSeq: 1826 REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\nExpires: 7200\r\nUser-Agent: Phone/1.0\r\n");
        assert_eq!(r.aor_user, "bob");
        assert_eq!(r.aor_host, "biloxi.com");
        assert_eq!(r.call_id, "843817637684230@998sdasdh09");
        assert_eq!(r.cseq, 1826);
        assert_eq!(r.expires_header, Some(7200));
        assert_eq!(r.transport, "udp");
        assert_eq!(r.user_agent.as_deref(), Some("Phone/1.0"));
        assert_eq!(
            r.contacts,
            ContactSpec::Contacts(vec![ContactEntry {
                uri: "sip:bob@192.0.2.4".into(),
                expires: None,
                q: None,
                instance: None
            }])
        );
    }

    #[test]
    fn parses_contact_lists_params_and_compact_form() {
        let r = req("CSeq: 1 REGISTER\r\n\
             Contact: \"Bob, at home\" <sip:bob@192.0.2.4;transport=tcp>;expires=60;q=0.7, sip:bob@198.51.100.1:5070;Expires=120\r\n\
             m: <sip:bob@[2001:db8::1]>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";q=1.0;expires=abc\r\n");
        let ContactSpec::Contacts(list) = r.contacts else {
            panic!("contacts")
        };
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].uri, "sip:bob@192.0.2.4;transport=tcp");
        assert_eq!(list[0].expires, Some(60));
        assert_eq!(list[0].q, Some(0.7));
        assert_eq!(list[1].uri, "sip:bob@198.51.100.1:5070");
        assert_eq!(list[1].expires, Some(120));
        assert_eq!(list[2].uri, "sip:bob@[2001:db8::1]");
        assert_eq!(
            list[2].instance.as_deref(),
            Some("urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF")
        );
        assert_eq!(list[2].q, Some(1.0));
        // Malformed expires reads as 3600 (RFC 3261 §20.10).
        assert_eq!(list[2].expires, Some(MALFORMED_EXPIRES));
        let big = req("CSeq: 1 REGISTER\r\nContact: <sip:a@b>\r\nExpires: 99999999999\r\n");
        assert_eq!(big.expires_header, Some(u32::MAX));
    }

    #[test]
    fn parse_errors_name_the_header() {
        let e = |extra: &str| parse(extra).expect_err(extra);
        assert_eq!(
            e("Contact: <sip:a@b>\r\n"),
            RegisterError::MissingHeader { header: "CSeq" }
        );
        assert!(e("CSeq: 1 INVITE\r\n").to_string().starts_with("CSeq:"));
        assert!(e("CSeq: x REGISTER\r\n").to_string().starts_with("CSeq:"));
        assert!(e("CSeq: 99999999999 REGISTER\r\n").to_string().starts_with("CSeq:"));
        let bad_q = e("CSeq: 1 REGISTER\r\nContact: <sip:a@b>;q=1.5\r\n");
        assert_eq!(bad_q.to_string(), "Contact: bad q value");
        assert_eq!(bad_q.status(), 400);
        for bad in [
            "<sip:a@b",
            "\"Bob <sip:a@b>",
            "nonsense",
            "<sip:a@b> junk",
            "\"Bob\" sip:a@b",
        ] {
            let err = e(&format!("CSeq: 1 REGISTER\r\nContact: {bad}\r\n"));
            assert!(err.to_string().starts_with("Contact:"), "{bad}: {err}");
        }
        assert_eq!(
            e("CSeq: 1 REGISTER\r\nContact: *, <sip:a@b>\r\nExpires: 0\r\n"),
            RegisterError::WildcardNotAlone
        );
        let many: Vec<String> = (0..40).map(|i| format!("<sip:a{i}@b>")).collect();
        let err = e(&format!("CSeq: 1 REGISTER\r\nContact: {}\r\n", many.join(",")));
        assert!(err.to_string().starts_with("Contact:"));

        let mut no_call_id = register("CSeq: 1 REGISTER\r\n");
        no_call_id.headers.retain(|h| !matches!(h, Header::CallId(_)));
        assert_eq!(
            RegisterRequest::from_request(&no_call_id, src(), "udp"),
            Err(RegisterError::MissingHeader { header: "Call-ID" })
        );
        let mut no_to = register("CSeq: 1 REGISTER\r\n");
        no_to.headers.retain(|h| !matches!(h, Header::To(_)));
        assert_eq!(
            RegisterRequest::from_request(&no_to, src(), "udp"),
            Err(RegisterError::MissingHeader { header: "To" })
        );
        let mut no_user = register("CSeq: 1 REGISTER\r\n");
        no_user.headers.retain(|h| !matches!(h, Header::To(_)));
        no_user
            .headers
            .push(Header::To(rsip::headers::To::new("<sip:biloxi.com>")));
        let err = RegisterRequest::from_request(&no_user, src(), "udp").expect_err("no user");
        assert!(err.to_string().starts_with("To:"), "{err}");
        let mut invite = register("CSeq: 1 REGISTER\r\n");
        invite.method = rsip::Method::Invite;
        assert_eq!(
            RegisterRequest::from_request(&invite, src(), "udp"),
            Err(RegisterError::NotRegister)
        );
    }

    fn bound(contact: &str, call_id: &str, cseq: u32, expires_at: u64) -> Binding {
        Binding {
            contact: contact.into(),
            expires_at,
            call_id: call_id.into(),
            cseq,
            q: None,
            source: None,
            transport: "udp".into(),
            user_agent: None,
            instance: None,
        }
    }

    #[test]
    fn add_refresh_and_query() {
        let r = req("CSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\nExpires: 600\r\nUser-Agent: P\r\n");
        let b = apply(&[], &r, &policy(), NOW).expect("add");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact, "sip:bob@192.0.2.4");
        assert_eq!(b[0].expires_at, NOW + 600);
        assert_eq!(b[0].source, Some(src()));
        assert_eq!(b[0].cseq, 1);
        assert_eq!(b[0].user_agent.as_deref(), Some("P"));
        // Refresh with a higher CSeq, same Call-ID, default interval.
        let r2 = req("CSeq: 2 REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\n");
        let b2 = apply(&b, &r2, &policy(), NOW + 100).expect("refresh");
        assert_eq!(b2.len(), 1);
        assert_eq!(b2[0].expires_at, NOW + 100 + 3600);
        assert_eq!(b2[0].cseq, 2);
        // Query: no Contact returns the bindings unchanged, minus expired ones.
        let q = req("CSeq: 3 REGISTER\r\n");
        assert_eq!(q.contacts, ContactSpec::Query);
        assert_eq!(apply(&b2, &q, &policy(), NOW + 200).expect("query"), b2);
        assert!(apply(&b2, &q, &policy(), NOW + 100 + 3600).expect("query").is_empty());
        assert_eq!(
            contact_header_values(&b2, NOW + 200),
            vec!["<sip:bob@192.0.2.4>;expires=3500".to_owned()]
        );
    }

    #[test]
    fn expires_zero_removes_and_per_contact_expires_wins() {
        let existing = vec![
            bound("sip:bob@192.0.2.4", "other", 9, NOW + 50),
            bound("sip:bob@192.0.2.5", "x", 1, NOW + 50),
        ];
        let r =
            req("CSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.4>;expires=0, <sip:bob@192.0.2.6>\r\nExpires: 120\r\n");
        let b = apply(&existing, &r, &policy(), NOW).expect("apply");
        let contacts: Vec<&str> = b.iter().map(|b| b.contact.as_str()).collect();
        assert_eq!(contacts, ["sip:bob@192.0.2.5", "sip:bob@192.0.2.6"]);
        assert_eq!(b[1].expires_at, NOW + 120);
        // Expires: 0 header with no per-contact value removes too; removing an
        // unknown contact is a no-op.
        let r = req("CSeq: 2 REGISTER\r\nContact: <sip:bob@192.0.2.6>, <sip:bob@203.0.113.9>\r\nExpires: 0\r\n");
        let b = apply(&b, &r, &policy(), NOW).expect("remove");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact, "sip:bob@192.0.2.5");
    }

    #[test]
    fn wildcard_rules() {
        let existing = vec![
            bound("sip:bob@192.0.2.4", "a", 5, NOW + 50),
            bound("sip:bob@192.0.2.5", "b", 5, NOW + 50),
        ];
        let ok = req("CSeq: 6 REGISTER\r\nContact: *\r\nExpires: 0\r\n");
        assert_eq!(ok.contacts, ContactSpec::Wildcard);
        assert!(apply(&existing, &ok, &policy(), NOW).expect("wildcard").is_empty());
        let no_expires = req("CSeq: 6 REGISTER\r\nContact: *\r\n");
        let e = apply(&existing, &no_expires, &policy(), NOW).expect_err("needs Expires: 0");
        assert_eq!(e, RegisterError::WildcardNeedsExpiresZero);
        assert_eq!(e.status(), 400);
        let e = apply(
            &existing,
            &req("CSeq: 6 REGISTER\r\nContact: *\r\nExpires: 30\r\n"),
            &policy(),
            NOW,
        )
        .expect_err("non-zero");
        assert_eq!(e, RegisterError::WildcardNeedsExpiresZero);
        // Same Call-ID as a binding with a CSeq at least as high: 500.
        let mut stale = req("CSeq: 5 REGISTER\r\nContact: *\r\nExpires: 0\r\n");
        stale.call_id = "b".into();
        let e = apply(&existing, &stale, &policy(), NOW).expect_err("out of order");
        assert_eq!(e, RegisterError::OutOfOrder { cseq: 5, stored: 5 });
        assert_eq!(e.status(), 500);
        // A hand-built request with `*` among contacts is refused too.
        let mut mixed = req("CSeq: 6 REGISTER\r\nContact: <sip:a@b>\r\n");
        if let ContactSpec::Contacts(list) = &mut mixed.contacts {
            list.push(ContactEntry {
                uri: "*".into(),
                expires: None,
                q: None,
                instance: None,
            });
        }
        assert_eq!(apply(&[], &mixed, &policy(), NOW), Err(RegisterError::WildcardNotAlone));
    }

    #[test]
    fn call_id_and_cseq_ordering() {
        let existing = vec![bound("sip:bob@192.0.2.4", "843817637684230@998sdasdh09", 10, NOW + 50)];
        for cseq in [9, 10] {
            let r = req(&format!("CSeq: {cseq} REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\n"));
            let e = apply(&existing, &r, &policy(), NOW).expect_err("not higher");
            assert_eq!(e, RegisterError::OutOfOrder { cseq, stored: 10 });
            assert!(e.to_string().starts_with("CSeq:"));
        }
        let r = req("CSeq: 11 REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\n");
        assert_eq!(apply(&existing, &r, &policy(), NOW).expect("higher")[0].cseq, 11);
        // A different Call-ID replaces the binding whatever its CSeq.
        let mut r = req("CSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.4>\r\n");
        r.call_id = "new-call-id".into();
        let b = apply(&existing, &r, &policy(), NOW).expect("new call-id");
        assert_eq!((b.len(), b[0].call_id.as_str(), b[0].cseq), (1, "new-call-id", 1));
        // The same contact twice in one request is not an ordering error.
        let r =
            req("CSeq: 11 REGISTER\r\nContact: <sip:bob@192.0.2.4>;expires=100, <sip:bob@192.0.2.4>;expires=200\r\n");
        let b = apply(&existing, &r, &policy(), NOW).expect("duplicate");
        assert_eq!((b.len(), b[0].expires_at), (1, NOW + 200));
    }

    #[test]
    fn interval_limits() {
        let p = policy();
        let e = apply(
            &[],
            &req("CSeq: 1 REGISTER\r\nContact: <sip:a@b>\r\nExpires: 30\r\n"),
            &p,
            NOW,
        )
        .expect_err("too brief");
        assert_eq!(e, RegisterError::IntervalTooBrief { min: 60 });
        assert_eq!((e.status(), e.reason_phrase()), (423, "Interval Too Brief"));
        // Per-contact too brief fails the whole request, atomically.
        let existing = vec![bound("sip:x@y", "c", 1, NOW + 500)];
        let r = req("CSeq: 1 REGISTER\r\nContact: <sip:a@b>, <sip:x@y>;expires=1\r\n");
        assert_eq!(
            apply(&existing, &r, &p, NOW),
            Err(RegisterError::IntervalTooBrief { min: 60 })
        );
        // Exactly min is fine; above max is shortened.
        let b = apply(
            &[],
            &req("CSeq: 1 REGISTER\r\nContact: <sip:a@b>;expires=60, <sip:c@d>;expires=86400\r\n"),
            &p,
            NOW,
        )
        .expect("limits");
        assert_eq!(b[0].expires_at, NOW + 60);
        assert_eq!(b[1].expires_at, NOW + 3600);
        // The 423 rule only applies below one hour (RFC 3261 §10.3 step 7).
        let high = ExpiryPolicy {
            min: 7200,
            max: 10_000,
            default: 8000,
            max_bindings: 10,
        };
        assert_eq!(high.grant(Some(3600)), Ok(7200));
        assert_eq!(
            high.grant(Some(3599)),
            Err(RegisterError::IntervalTooBrief { min: 7200 })
        );
        assert_eq!(high.grant(None), Ok(8000));
        assert_eq!(p.grant(Some(0)), Ok(0));
    }

    #[test]
    fn binding_limit() {
        let p = ExpiryPolicy {
            max_bindings: 2,
            ..ExpiryPolicy::default()
        };
        let r = req("CSeq: 1 REGISTER\r\nContact: <sip:a@h1>, <sip:a@h2>\r\n");
        let b = apply(&[], &r, &p, NOW).expect("two");
        let r3 = req("CSeq: 2 REGISTER\r\nContact: <sip:a@h3>\r\n");
        let e = apply(&b, &r3, &p, NOW).expect_err("third");
        assert_eq!(e, RegisterError::TooManyBindings { max: 2 });
        assert_eq!(e.status(), 403);
        // Removing one in the same request makes room.
        let swap = req("CSeq: 2 REGISTER\r\nContact: <sip:a@h1>;expires=0, <sip:a@h3>\r\n");
        assert_eq!(apply(&b, &swap, &p, NOW).expect("swap").len(), 2);
        // Expired bindings do not count.
        assert_eq!(apply(&b, &r3, &p, NOW + 3600).expect("expired freed").len(), 1);
    }

    #[test]
    fn instance_id_matches_across_contact_changes() {
        let r1 = req("CSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.4:5060>;+sip.instance=\"<urn:uuid:abc>\"\r\n");
        let b = apply(&[], &r1, &policy(), NOW).expect("first");
        let mut r2 =
            req("CSeq: 1 REGISTER\r\nContact: <sip:bob@192.0.2.4:6000>;+sip.instance=\"<URN:UUID:ABC>\";q=0.5\r\n");
        r2.call_id = "after-reboot".into();
        let b2 = apply(&b, &r2, &policy(), NOW).expect("second");
        assert_eq!(b2.len(), 1);
        assert_eq!(b2[0].contact, "sip:bob@192.0.2.4:6000");
        assert_eq!(
            contact_header_values(&b2, NOW),
            vec!["<sip:bob@192.0.2.4:6000>;expires=3600;q=0.5;+sip.instance=\"<URN:UUID:ABC>\"".to_owned()]
        );
    }

    #[test]
    fn uri_equality_rules() {
        assert!(uri_equal("sip:bob@BILOXI.com", "SIP:bob@biloxi.com"));
        assert!(!uri_equal("sip:BOB@biloxi.com", "sip:bob@biloxi.com"));
        assert!(!uri_equal("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(uri_equal("sip:bob@h;transport=TCP", "sip:bob@h;transport=tcp"));
        assert!(!uri_equal("sip:bob@h;transport=tcp", "sip:bob@h"));
        assert!(uri_equal("sip:bob@h;ob", "sip:bob@h"));
        assert!(!uri_equal("sip:bob@h;x=1", "sip:bob@h;x=2"));
        // Matching drives refresh vs. add.
        let existing = vec![bound("sip:bob@h;transport=TCP", "c", 1, NOW + 500)];
        let r = req("CSeq: 1 REGISTER\r\nContact: <SIP:bob@H;transport=tcp>\r\n");
        assert_eq!(apply(&existing, &r, &policy(), NOW).expect("match").len(), 1);
    }

    #[test]
    fn contact_values_skip_expired_and_format_q() {
        let mut a = bound("sip:a@b", "c", 1, NOW + 10);
        a.q = Some(1.0);
        let mut b = bound("sip:c@d", "c", 1, NOW);
        b.q = Some(0.25);
        assert_eq!(
            contact_header_values(&[a, b], NOW),
            vec!["<sip:a@b>;expires=10;q=1".to_owned()]
        );
        assert_eq!(format_q(0.0), "0");
        assert_eq!(format_q(0.125), "0.125");
        assert_eq!(parse_qvalue("0.125"), Some(0.125));
        assert_eq!(parse_qvalue("0"), Some(0.0));
        assert_eq!(parse_qvalue("1.000"), Some(1.0));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0"), None);
    }

    #[test]
    fn user_agent_is_bounded() {
        let r = req(&format!(
            "CSeq: 1 REGISTER\r\nUser-Agent: {}é\r\n",
            "x".repeat(MAX_USER_AGENT_LEN - 1)
        ));
        let ua = r.user_agent.expect("ua");
        assert!(ua.len() <= MAX_USER_AGENT_LEN);
        assert!(ua.starts_with("xxx"));
    }
}
