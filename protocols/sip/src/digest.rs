//! HTTP digest authentication for SIP, server and client side.
//!
//! SIP reuses HTTP digest (RFC 3261 §22). This module follows RFC 7616 (the
//! current HTTP digest) and RFC 8760 (SHA-256 for SIP digest), with these
//! choices:
//!
//! - Algorithms `SHA-256` and `MD5` only; the `-sess` variants, `SHA-512-256`,
//!   `userhash` and `username*` are refused.
//! - The server **requires `qop=auth`** (RFC 7616 §3.4; RFC 8760 §2.2). A
//!   digest without `qop` (the RFC 2069 form) carries no `nc`/`cnonce`, so
//!   replays of it cannot be detected; it is answered with
//!   [`DigestError::MissingQop`]. The *client* side ([`respond`]) still
//!   answers RFC 2069 challenges, because some trunks only offer that.
//!   `auth-int` is not offered and is refused.
//! - The server never sees passwords: it asks the caller for `HA1` =
//!   `H(username ":" realm ":" password)` ([`ha1`], RFC 7616 §3.4.2), stored
//!   once per algorithm.
//!
//! # Nonces ([`NonceIssuer`])
//!
//! A nonce is the lowercase hex of 32 bytes:
//! `issue time (u64, big-endian unix seconds) ‖ 8 random bytes ‖
//! HMAC-SHA256(secret, label ‖ time ‖ random ‖ realm)[..16]`. The server keeps
//! no table of issued nonces: any nonce whose MAC verifies was issued by a
//! server holding the same secret, so a restarted server (or a second one
//! with the same secret) accepts it. A nonce older than the lifetime (default
//! 300 s) with an otherwise correct response gives
//! [`DigestError::StaleNonce`]: the driver re-challenges with `stale=true`
//! (RFC 7616 §3.3) and the phone retries without asking its user.
//!
//! Replay protection: for each nonce in use the issuer remembers the highest
//! nonce count (`nc`) accepted and refuses an `nc` not above it
//! ([`DigestError::ReplayedNonceCount`], RFC 7616 §3.4: "the server ... can
//! detect replays by checking the nc"). The table is bounded
//! ([`NonceIssuer::with_max_tracked_nonces`], default 8192); when it is full
//! the entry used first is dropped and every nonce issued at or before the
//! dropped one's issue time is from then on treated as stale, so an evicted
//! nonce can never be replayed — it only costs its owner one extra
//! round-trip. What remains: after a restart the table is empty, so a request
//! captured in the last lifetime (5 minutes) before the restart can be
//! replayed once after it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::Md5;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// Longest `Authorization` / `WWW-Authenticate` value parsed; longer values
/// are refused as malformed before any work (the parser is linear anyway).
pub const MAX_HEADER_LEN: usize = 8192;

/// Most parameters accepted in one digest header value.
pub const MAX_PARAMS: usize = 32;

/// Default lifetime of a nonce (RFC 7616 §5.4 leaves it to the server).
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Default number of nonces whose highest `nc` is remembered.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 8192;

/// Domain-separation label mixed into the nonce MAC.
const NONCE_LABEL: &[u8] = b"confgate-sip-digest-nonce-v1";

/// Bytes in a nonce before hex: time (8), random (8), truncated MAC (16).
const NONCE_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A digest hash algorithm (RFC 7616 §3.3 `algorithm`, RFC 8760 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the RFC 2617 algorithm every SIP phone supports; the default
    /// when a header has no `algorithm` parameter (RFC 7616 §3.3).
    Md5,
    /// `SHA-256` (RFC 7616 §3.3, RFC 8760 §2.1), preferred when offered.
    Sha256,
}

impl Algorithm {
    /// The token on the wire: `MD5` or `SHA-256`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm named by `token`, compared case-insensitively
    /// (RFC 7616 §3.3); `None` for anything else, including the `-sess`
    /// variants.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Length of this algorithm's hash in lowercase hex.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// `H(p1 ":" p2 ":" …)` as lowercase hex (RFC 7616 §3.4.1 `H` and `KD`).
    fn hash_joined(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut h = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update(b":");
                }
                h.update(p);
            }
            to_hex(&h.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// `HA1 = H(username ":" realm ":" password)` in lowercase hex
/// (RFC 7616 §3.4.2, for the non-`-sess` algorithms). This is what the
/// directory stores per account and algorithm instead of the password.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash_joined(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `response` value (RFC 7616 §3.4.1): with `qop`,
/// `KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" HA2)`; without it (RFC 2069,
/// client side only), `KD(HA1, nonce ":" HA2)`; `HA2 = H(method ":" uri)`
/// (§3.4.3, `qop=auth`).
fn response_hex(
    alg: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash_joined(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce)) => alg.hash_joined(&[
            ha1_hex.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]),
        None => alg.hash_joined(&[ha1_hex.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Why a digest header was refused. The driver answers (see
/// [`DigestError::status`]): 400 for a malformed header, 401 with a fresh
/// challenge (or `stale=true` for [`DigestError::StaleNonce`]), 403 when the
/// credentials are wrong or can never work.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header does not parse, or a required parameter is missing or
    /// malformed; `param` names it (`scheme`, `syntax`, `username`, `nc`, …).
    #[error("malformed digest header: bad or missing `{param}`")]
    Malformed {
        /// The parameter (or `scheme` / `syntax` / `length`) at fault.
        param: String,
    },
    /// An `algorithm` other than `MD5` / `SHA-256`, or one this server does
    /// not offer.
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// A `qop` other than `auth` (e.g. `auth-int`), or, client side, a
    /// challenge offering only such.
    #[error("unsupported qop `{0}`: only `auth` is supported")]
    UnsupportedQop(String),
    /// The credentials carry no `qop` (RFC 2069 style); this server requires
    /// `qop=auth` so that `nc` replay detection works.
    #[error("digest without qop is not accepted: qop=auth is required")]
    MissingQop,
    /// A parameter this implementation does not support (`userhash=true`,
    /// `username*`, RFC 7616 §3.4.4–3.4.5).
    #[error("unsupported digest parameter `{0}`")]
    UnsupportedParameter(&'static str),
    /// The `realm` in the credentials is not the one challenged with.
    #[error("realm `{got}` is not this server's realm")]
    WrongRealm {
        /// The realm the client sent.
        got: String,
    },
    /// No HA1 is stored for this username and algorithm. The driver should
    /// answer exactly as for [`DigestError::WrongResponse`], so that account
    /// names cannot be probed.
    #[error("unknown user")]
    UnknownUser {
        /// The username the client sent (PII: log through `Pii`).
        username: String,
    },
    /// The `response` does not match: wrong password (or wrong method/URI).
    #[error("wrong digest response (wrong password)")]
    WrongResponse {
        /// The username the client sent (PII: log through `Pii`).
        username: String,
    },
    /// The nonce was issued by this server but has expired (or its replay
    /// record was evicted) and the response is otherwise correct: challenge
    /// again with `stale=true` (RFC 7616 §3.3).
    #[error("the nonce is stale")]
    StaleNonce,
    /// The nonce was not issued by this server (bad MAC, wrong realm, or not
    /// a nonce of ours at all).
    #[error("the nonce was not issued by this server")]
    BadNonce,
    /// The nonce count was already used with this nonce: a replay (or a
    /// reordered request).
    #[error("nonce count {nc} already used with this nonce (highest seen {seen})")]
    ReplayedNonceCount {
        /// The `nc` received.
        nc: u32,
        /// The highest `nc` accepted before with this nonce.
        seen: u32,
    },
}

impl DigestError {
    fn malformed(param: &str) -> DigestError {
        DigestError::Malformed {
            param: param.to_owned(),
        }
    }

    /// The SIP status the server side answers with (RFC 3261 §22.2, §22.3):
    /// 400 for [`DigestError::Malformed`]; 401 with a new challenge for an
    /// unsupported algorithm (the client may pick another one, RFC 8760
    /// §2.4), a wrong realm, a bad, stale or replayed nonce; 403 for an
    /// unknown user, a wrong password, a missing or unsupported `qop` and
    /// unsupported parameters (a new challenge would not help, and 403 stops
    /// the client from looping).
    pub fn status(&self) -> u16 {
        match self {
            DigestError::Malformed { .. } => 400,
            DigestError::UnsupportedAlgorithm(_)
            | DigestError::WrongRealm { .. }
            | DigestError::StaleNonce
            | DigestError::BadNonce
            | DigestError::ReplayedNonceCount { .. } => 401,
            DigestError::UnsupportedQop(_)
            | DigestError::MissingQop
            | DigestError::UnsupportedParameter(_)
            | DigestError::UnknownUser { .. }
            | DigestError::WrongResponse { .. } => 403,
        }
    }

    /// Whether the 401 challenge should carry `stale=true` (RFC 7616 §3.3).
    pub fn stale(&self) -> bool {
        matches!(self, DigestError::StaleNonce)
    }
}

/// Parses a `Digest` credentials or challenge value (RFC 7616 §3.3–3.4,
/// RFC 7235 §2.1 `auth-param`) into `(name, value)` pairs: names lowercased,
/// values unquoted with `\`-escapes removed (RFC 7230 §3.2.6
/// `quoted-pair`). The scheme is compared case-insensitively; empty list
/// elements and any amount of whitespace (including tabs and line folding
/// remnants) are tolerated; a repeated parameter is an error (RFC 7616 §3.4:
/// "each parameter MUST NOT occur more than once").
pub fn parse_params(header_value: &str) -> Result<Vec<(String, String)>, DigestError> {
    if header_value.len() > MAX_HEADER_LEN {
        return Err(DigestError::malformed("length"));
    }
    let s = header_value.trim_start_matches(is_ws);
    let scheme_end = s.find(is_ws).unwrap_or(s.len());
    let (scheme, rest) = s.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::malformed("scheme"));
    }
    let b = rest.as_bytes();
    let mut pos = 0;
    let mut out: Vec<(String, String)> = Vec::with_capacity(12);
    loop {
        while b.get(pos).is_some_and(|&c| c == b',' || is_ws_byte(c)) {
            pos += 1;
        }
        if pos >= b.len() {
            break;
        }
        let name_start = pos;
        while b.get(pos).copied().is_some_and(is_tchar) {
            pos += 1;
        }
        let name = rest.get(name_start..pos).unwrap_or("").to_ascii_lowercase();
        if name.is_empty() {
            return Err(DigestError::malformed("syntax"));
        }
        skip_ws(b, &mut pos);
        if b.get(pos) != Some(&b'=') {
            return Err(DigestError::Malformed { param: name });
        }
        pos += 1;
        skip_ws(b, &mut pos);
        let value = if b.get(pos) == Some(&b'"') {
            pos += 1;
            // Sized for the rest of the value, up to the first quote (escapes only shorten it).
            let guess = b
                .get(pos..)
                .and_then(|r| r.iter().position(|&c| c == b'"'))
                .unwrap_or(0);
            let mut v = Vec::with_capacity(guess);
            loop {
                match b.get(pos) {
                    None => return Err(DigestError::Malformed { param: name }),
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match b.get(pos + 1) {
                            Some(&c) => v.push(c),
                            None => return Err(DigestError::Malformed { param: name }),
                        }
                        pos += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        pos += 1;
                    }
                }
            }
            match String::from_utf8(v) {
                Ok(v) => v,
                Err(_) => return Err(DigestError::Malformed { param: name }),
            }
        } else {
            // Tolerant token: anything up to whitespace or a comma (some
            // clients send unquoted URIs).
            let start = pos;
            while b.get(pos).is_some_and(|&c| c != b',' && !is_ws_byte(c) && c != b'"') {
                pos += 1;
            }
            let v = rest.get(start..pos).unwrap_or("");
            if v.is_empty() {
                return Err(DigestError::Malformed { param: name });
            }
            v.to_owned()
        };
        skip_ws(b, &mut pos);
        if pos < b.len() && b.get(pos) != Some(&b',') {
            return Err(DigestError::Malformed { param: name });
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Malformed { param: name });
        }
        if out.len() >= MAX_PARAMS {
            return Err(DigestError::malformed("too many parameters"));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ws_byte(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], pos: &mut usize) {
    while b.get(*pos).copied().is_some_and(is_ws_byte) {
        *pos += 1;
    }
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, DigestError> {
    match param(params, name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(DigestError::malformed(name)),
    }
}

/// Quotes `s` as an RFC 7230 `quoted-string`, escaping `"` and `\`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        // CR/LF cannot appear in a header value; drop them rather than
        // let a value split the header.
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn from_hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Constant-time equality of two byte strings of public length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `nc` (RFC 7616 §3.4: 8 hex digits; 1 to 8 accepted), which must
/// be at least 1.
fn parse_nc(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok().filter(|&n| n > 0)
}

/// Credentials that passed [`NonceIssuer::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated username (RFC 7616 §3.4 `username`).
    pub username: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
    /// The `uri` the client signed (RFC 7616 §3.4 `uri`). RFC 3261 §22.4
    /// lets a server check it against the Request-URI; proxies rewrite
    /// URIs, so the check is left to the driver.
    pub uri: String,
}

/// Issues and verifies nonces, and checks `Authorization` /
/// `Proxy-Authorization` values against stored HA1s. See the module docs for
/// the nonce format, the lifetime and the replay table.
pub struct NonceIssuer {
    /// HMAC-SHA256 keyed with the secret, cloned for every nonce (the key
    /// schedule is done once).
    mac: HmacSha256,
    lifetime_secs: u64,
    algorithms: Vec<Algorithm>,
    rng: StdRng,
    /// Highest `nc` accepted per nonce, keyed by the nonce's time ‖ random.
    seen: HashMap<[u8; 16], u32>,
    /// Keys of `seen` in first-use order, with their issue times.
    order: VecDeque<([u8; 16], u64)>,
    max_tracked: usize,
    /// Issue time of the newest nonce evicted from `seen` while still
    /// fresh: nonces issued at or before it are treated as stale.
    evicted_floor: Option<u64>,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("algorithms", &self.algorithms)
            .field("tracked", &self.seen.len())
            .field("max_tracked", &self.max_tracked)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// An issuer with `secret` (keep it across restarts, and share it
    /// between servers answering for the same realm) and nonce `lifetime`
    /// (whole seconds; [`DEFAULT_NONCE_LIFETIME`] is a good value).
    /// Offers SHA-256 and MD5.
    pub fn new(secret: [u8; 32], lifetime: Duration) -> Self {
        // A 32-byte key is shorter than SHA-256's block: HMAC zero-pads it,
        // so padding here gives the same MAC without a fallible constructor.
        let mut key = [0u8; 64];
        for (k, s) in key.iter_mut().zip(secret.iter()) {
            *k = *s;
        }
        NonceIssuer {
            mac: <HmacSha256 as hmac::digest::KeyInit>::new(&key.into()),
            lifetime_secs: lifetime.as_secs(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            rng: StdRng::from_entropy(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            max_tracked: DEFAULT_MAX_TRACKED_NONCES,
            evicted_floor: None,
        }
    }

    /// Restricts the offered and accepted algorithms, in order of
    /// preference (RFC 8760 §2.4: the server lists its preferred one
    /// first). Some old phones only look at the first challenge; offering
    /// `[Md5]` alone serves them. An empty list leaves the setting as is.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            let mut list = Vec::new();
            for &a in algorithms {
                if !list.contains(&a) {
                    list.push(a);
                }
            }
            self.algorithms = list;
        }
        self
    }

    /// Bounds the replay table (at least 1). See the module docs for what
    /// happens to evicted nonces.
    pub fn with_max_tracked_nonces(mut self, max: usize) -> Self {
        self.max_tracked = max.max(1);
        self
    }

    /// Number of nonces whose highest `nc` is currently remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    fn tag(&self, realm: &str, time: u64, random: &[u8; 8]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(NONCE_LABEL);
        mac.update(&time.to_be_bytes());
        mac.update(random);
        mac.update(realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        for (o, b) in out.iter_mut().zip(full.iter()) {
            *o = *b;
        }
        out
    }

    fn issue(&mut self, realm: &str, now_unix: u64) -> String {
        let mut random = [0u8; 8];
        self.rng.fill_bytes(&mut random);
        let tag = self.tag(realm, now_unix, &random);
        let mut raw = [0u8; NONCE_LEN];
        for (dst, src) in raw
            .iter_mut()
            .zip(now_unix.to_be_bytes().iter().chain(random.iter()).chain(tag.iter()))
        {
            *dst = *src;
        }
        to_hex(&raw)
    }

    /// Checks a nonce's MAC; returns its issue time and replay key.
    fn open(&self, nonce: &str, realm: &str) -> Option<(u64, [u8; 16])> {
        let raw: [u8; NONCE_LEN] = from_hex_exact(nonce)?;
        let (head, tag) = raw.split_at(16);
        let (time_bytes, random_bytes) = head.split_at(8);
        let time = u64::from_be_bytes(time_bytes.try_into().ok()?);
        let random: [u8; 8] = random_bytes.try_into().ok()?;
        if !ct_eq(&self.tag(realm, time, &random), tag) {
            return None;
        }
        let key: [u8; 16] = head.try_into().ok()?;
        Some((time, key))
    }

    fn expired(&self, issued: u64, now_unix: u64) -> bool {
        now_unix > issued.saturating_add(self.lifetime_secs)
    }

    /// The `WWW-Authenticate` (or `Proxy-Authenticate`) header values for a
    /// 401 (407), one per offered algorithm, SHA-256 first then MD5
    /// (RFC 8760 §2.4), each with its own fresh nonce, `qop="auth"` and
    /// `algorithm=`; `stale=true` when answering [`DigestError::StaleNonce`]
    /// (RFC 7616 §3.3). No `opaque` is sent: the nonce already carries all
    /// state.
    pub fn challenge(&mut self, realm: &str, now_unix: u64, stale: bool) -> Vec<String> {
        let algorithms = self.algorithms.clone();
        algorithms
            .into_iter()
            .map(|alg| {
                let nonce = self.issue(realm, now_unix);
                let mut v = format!(
                    "Digest realm={}, nonce=\"{nonce}\", qop=\"auth\", algorithm={}",
                    quoted(realm),
                    alg.token()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Verifies an `Authorization` (or `Proxy-Authorization`) value for a
    /// request with `method` in `realm` (RFC 7616 §3.4, RFC 3261 §22.4).
    ///
    /// `ha1_for(algorithm, username)` returns the stored HA1 (hex, any case)
    /// or `None` for an unknown user. Checks, in order: syntax, algorithm and
    /// `qop=auth`, realm, the nonce's MAC, the user, the response, the
    /// nonce's age, and the nonce count; a nonce count is recorded only when
    /// everything passed. The response is compared in constant time.
    pub fn verify(
        &mut self,
        authorization: &str,
        method: &str,
        realm: &str,
        now_unix: u64,
        ha1_for: impl FnMut(Algorithm, &str) -> Option<String>,
    ) -> Result<Verified, DigestError> {
        let params = parse_params(authorization)?;
        self.verify_params(&params, method, realm, now_unix, ha1_for)
    }

    /// [`verify`](Self::verify) on an `Authorization` value already split by
    /// [`parse_params`] (a driver that needed the `username` before
    /// verifying parses it once).
    pub fn verify_params(
        &mut self,
        params: &[(String, String)],
        method: &str,
        realm: &str,
        now_unix: u64,
        mut ha1_for: impl FnMut(Algorithm, &str) -> Option<String>,
    ) -> Result<Verified, DigestError> {
        if param(params, "username*").is_some() {
            return Err(DigestError::UnsupportedParameter("username*"));
        }
        if param(params, "userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(DigestError::UnsupportedParameter("userhash"));
        }
        let username = required(params, "username")?;
        let got_realm = param(params, "realm").ok_or_else(|| DigestError::malformed("realm"))?;
        let nonce = required(params, "nonce")?;
        let uri = required(params, "uri")?;
        let response = required(params, "response")?;
        let algorithm = match param(params, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::from_token(a) {
                Some(alg) if self.algorithms.contains(&alg) => alg,
                _ => return Err(DigestError::UnsupportedAlgorithm(a.to_owned())),
            },
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(DigestError::UnsupportedAlgorithm(algorithm.token().to_owned()));
        }
        match param(params, "qop") {
            None => return Err(DigestError::MissingQop),
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            Some(q) => return Err(DigestError::UnsupportedQop(q.to_owned())),
        }
        let nc_text = required(params, "nc")?;
        let nc = parse_nc(nc_text).ok_or_else(|| DigestError::malformed("nc"))?;
        let cnonce = required(params, "cnonce")?;
        if got_realm != realm {
            return Err(DigestError::WrongRealm {
                got: got_realm.to_owned(),
            });
        }
        let (issued, key) = self.open(nonce, realm).ok_or(DigestError::BadNonce)?;
        let stored = ha1_for(algorithm, username).ok_or_else(|| DigestError::UnknownUser {
            username: username.to_owned(),
        })?;
        let expected = response_hex(
            algorithm,
            &stored.to_ascii_lowercase(),
            nonce,
            Some((nc_text, cnonce)),
            method,
            uri,
        );
        if !ct_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
            return Err(DigestError::WrongResponse {
                username: username.to_owned(),
            });
        }
        if self.expired(issued, now_unix) {
            return Err(DigestError::StaleNonce);
        }
        self.record(key, issued, nc, now_unix)?;
        Ok(Verified {
            username: username.to_owned(),
            algorithm,
            uri: uri.to_owned(),
        })
    }

    /// Records `nc` for the nonce `key`, refusing replays; prunes expired
    /// entries and bounds the table.
    fn record(&mut self, key: [u8; 16], issued: u64, nc: u32, now_unix: u64) -> Result<(), DigestError> {
        while let Some(&(old, t)) = self.order.front() {
            if !self.expired(t, now_unix) {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if let Some(seen) = self.seen.get_mut(&key) {
            if nc <= *seen {
                return Err(DigestError::ReplayedNonceCount { nc, seen: *seen });
            }
            *seen = nc;
            return Ok(());
        }
        if self.evicted_floor.is_some_and(|floor| issued <= floor) {
            return Err(DigestError::StaleNonce);
        }
        self.seen.insert(key, nc);
        self.order.push_back((key, issued));
        while self.seen.len() > self.max_tracked {
            let Some((old, t)) = self.order.pop_front() else { break };
            if self.seen.remove(&old).is_some() && !self.expired(t, now_unix) {
                self.evicted_floor = Some(self.evicted_floor.map_or(t, |f| f.max(t)));
            }
        }
        Ok(())
    }
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge
/// (RFC 7616 §3.3), for the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// Whether `qop` was present and offered `auth`; `false` means an
    /// RFC 2069 challenge without `qop`.
    pub qop_auth: bool,
    /// `stale=true`: the previous credentials were right but the nonce was
    /// old; retry with the new nonce without asking the user.
    pub stale: bool,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
}

/// Parses a digest challenge. Errors: [`DigestError::Malformed`] (missing
/// `realm`/`nonce`), [`DigestError::UnsupportedAlgorithm`], and
/// [`DigestError::UnsupportedQop`] when `qop` is present but lacks `auth`.
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let params = parse_params(value)?;
    let realm = param(&params, "realm").ok_or_else(|| DigestError::malformed("realm"))?;
    let nonce = required(&params, "nonce")?;
    let algorithm = match param(&params, "algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(a).ok_or_else(|| DigestError::UnsupportedAlgorithm(a.to_owned()))?,
    };
    let qop_auth = match param(&params, "qop") {
        None => false,
        Some(q) => {
            if q.split(',').any(|o| o.trim_matches(is_ws).eq_ignore_ascii_case("auth")) {
                true
            } else {
                return Err(DigestError::UnsupportedQop(q.to_owned()));
            }
        }
    };
    Ok(Challenge {
        realm: realm.to_owned(),
        nonce: nonce.to_owned(),
        algorithm,
        qop_auth,
        stale: param(&params, "stale").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        opaque: param(&params, "opaque").map(str::to_owned),
    })
}

/// Of several challenge values (one per `WWW-Authenticate` header), the one
/// to answer: the first usable SHA-256 one, else the first usable MD5 one
/// (RFC 8760 §2.4: the client uses the first challenge it supports, and
/// this client prefers the stronger algorithm). `None` when none is usable.
pub fn preferred_challenge<'a>(values: &[&'a str]) -> Option<&'a str> {
    let parsed: Vec<(&'a str, Algorithm)> = values
        .iter()
        .filter_map(|v| parse_challenge(v).ok().map(|c| (*v, c.algorithm)))
        .collect();
    parsed
        .iter()
        .find(|(_, a)| *a == Algorithm::Sha256)
        .or_else(|| parsed.first())
        .map(|(v, _)| *v)
}

/// The `Authorization` (or `Proxy-Authorization`) value answering
/// `challenge` for a request `method` to `uri` (RFC 7616 §3.4, RFC 3261
/// §22.2), used when registering to or calling through SIP trunks. Uses the
/// challenge's algorithm; `qop=auth` with `cnonce` and `nc` (8 hex digits)
/// when offered, else the RFC 2069 form; echoes `opaque`.
pub fn respond(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let c = parse_challenge(challenge)?;
    let ha1_hex = ha1(c.algorithm, user, &c.realm, password);
    let nc_text = format!("{nc:08x}");
    let qop = c.qop_auth.then_some((nc_text.as_str(), cnonce));
    let response = response_hex(c.algorithm, &ha1_hex, &c.nonce, qop, method, uri);
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
        quoted(user),
        quoted(&c.realm),
        quoted(&c.nonce),
        quoted(uri),
        c.algorithm.token()
    );
    if c.qop_auth {
        let _ = write!(v, ", cnonce={}, qop=auth, nc={nc_text}", quoted(cnonce));
    }
    if let Some(opaque) = &c.opaque {
        let _ = write!(v, ", opaque={}", quoted(opaque));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const REALM: &str = "sip.example.org";

    // RFC 7616 §3.9.1.
    const RFC_REALM: &str = "http-auth@example.org";
    const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC_MD5_RESPONSE: &str = "8ca523f5e9506fed4657c9700eebdbec";
    const RFC_SHA256_RESPONSE: &str = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

    fn rfc_challenge(alg: &str) -> String {
        format!(
            "Digest\r\n    realm=\"{RFC_REALM}\",\r\n    qop=\"auth, auth-int\",\r\n    algorithm={alg},\r\n    \
             nonce=\"{RFC_NONCE}\",\r\n    opaque=\"{RFC_OPAQUE}\""
        )
    }

    fn get(params: &[(String, String)], name: &str) -> String {
        param(params, name).unwrap_or("<missing>").to_owned()
    }

    #[test]
    fn rfc7616_md5_vector() {
        let h = ha1(Algorithm::Md5, "Mufasa", RFC_REALM, "Circle of Life");
        let r = response_hex(
            Algorithm::Md5,
            &h,
            RFC_NONCE,
            Some(("00000001", RFC_CNONCE)),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, RFC_MD5_RESPONSE);
        let auth = respond(
            &rfc_challenge("MD5"),
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            RFC_CNONCE,
            1,
        )
        .expect("respond");
        let p = parse_params(&auth).expect("parse own output");
        assert_eq!(get(&p, "response"), RFC_MD5_RESPONSE);
        assert_eq!(get(&p, "algorithm"), "MD5");
        assert_eq!(get(&p, "nc"), "00000001");
        assert_eq!(get(&p, "qop"), "auth");
        assert_eq!(get(&p, "opaque"), RFC_OPAQUE);
        assert_eq!(get(&p, "cnonce"), RFC_CNONCE);
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let auth = respond(
            &rfc_challenge("SHA-256"),
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            RFC_CNONCE,
            1,
        )
        .expect("respond");
        let p = parse_params(&auth).expect("parse own output");
        assert_eq!(get(&p, "response"), RFC_SHA256_RESPONSE);
        assert_eq!(get(&p, "algorithm"), "SHA-256");
        assert_eq!(get(&p, "username"), "Mufasa");
        assert_eq!(get(&p, "realm"), RFC_REALM);
        assert_eq!(get(&p, "uri"), "/dir/index.html");
    }

    #[test]
    fn parse_params_quoting_escapes_case_whitespace() {
        let p = parse_params(
            "  dIgEsT  Username=\"a\\\"b\\\\c\" ,, REALM = \"x, y\",\tnc=00000001 , qop=auth,uri=sip:a@b;x=y",
        )
        .expect("parse");
        assert_eq!(get(&p, "username"), "a\"b\\c");
        assert_eq!(get(&p, "realm"), "x, y");
        assert_eq!(get(&p, "nc"), "00000001");
        assert_eq!(get(&p, "qop"), "auth");
        assert_eq!(get(&p, "uri"), "sip:a@b;x=y");
        assert_eq!(p.len(), 5);
        assert_eq!(parse_params("Digest").expect("empty"), Vec::new());
    }

    #[test]
    fn parse_params_errors_name_the_parameter() {
        let m = |s: &str| match parse_params(s) {
            Err(DigestError::Malformed { param }) => param,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(m("Basic dXNlcjpwYXNz"), "scheme");
        assert_eq!(m("Digestive realm=\"a\""), "scheme");
        assert_eq!(m("Digest realm=\"unterminated"), "realm");
        assert_eq!(m("Digest realm"), "realm");
        assert_eq!(m("Digest realm="), "realm");
        assert_eq!(m("Digest realm=\"a\" nonce=\"b\""), "realm");
        assert_eq!(m("Digest realm=a, REALM=b"), "realm");
        assert_eq!(m("Digest =x"), "syntax");
        assert_eq!(m("Digest nonce=\"ab\\"), "nonce");
        let many: String = (0..40).map(|i| format!("p{i}=1,")).collect();
        assert_eq!(m(&format!("Digest {many}")), "too many parameters");
        assert_eq!(m(&format!("Digest realm=\"{}\"", "a".repeat(MAX_HEADER_LEN))), "length");
    }

    fn server() -> NonceIssuer {
        NonceIssuer::new(SECRET, DEFAULT_NONCE_LIFETIME)
    }

    fn store(alg: Algorithm, user: &str) -> Option<String> {
        (user == "alice").then(|| ha1(alg, "alice", REALM, "s3cret"))
    }

    fn answer(ch: &str, password: &str, nc: u32) -> String {
        respond(ch, "REGISTER", "sip:sip.example.org", "alice", password, "0a4f113b", nc).expect("respond")
    }

    #[test]
    fn challenge_offers_sha256_then_md5_with_qop_auth() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        assert_eq!(ch.len(), 2);
        let c0 = parse_challenge(&ch[0]).expect("sha");
        let c1 = parse_challenge(&ch[1]).expect("md5");
        assert_eq!(c0.algorithm, Algorithm::Sha256);
        assert_eq!(c1.algorithm, Algorithm::Md5);
        assert!(c0.qop_auth && c1.qop_auth && !c0.stale);
        assert_eq!(c0.realm, REALM);
        assert_ne!(c0.nonce, c1.nonce);
        assert_eq!(c0.nonce.len(), 64);
        assert!(ch[0].contains("qop=\"auth\""));
        let stale = s.challenge(REALM, 1_000, true);
        assert!(parse_challenge(&stale[0]).expect("stale").stale);
        assert_eq!(
            preferred_challenge(&[ch[1].as_str(), ch[0].as_str()]),
            Some(ch[0].as_str())
        );
        assert_eq!(
            preferred_challenge(&[ch[1].as_str(), "Basic realm=x"]),
            Some(ch[1].as_str())
        );
        assert_eq!(preferred_challenge(&["Basic realm=x"]), None);
        let md5_only = NonceIssuer::new(SECRET, DEFAULT_NONCE_LIFETIME)
            .with_algorithms(&[Algorithm::Md5])
            .challenge(REALM, 1_000, false);
        assert_eq!(md5_only.len(), 1);
        assert!(md5_only[0].contains("algorithm=MD5"));
    }

    #[test]
    fn round_trip_both_algorithms() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        for (i, c) in ch.iter().enumerate() {
            let auth = answer(c, "s3cret", 1);
            let v = s.verify(&auth, "REGISTER", REALM, 1_010, store).expect("verify");
            assert_eq!(v.username, "alice");
            assert_eq!(v.uri, "sip:sip.example.org");
            assert_eq!(v.algorithm, if i == 0 { Algorithm::Sha256 } else { Algorithm::Md5 });
            // Next request on the same nonce with nc=2 is fine.
            let auth2 = answer(c, "s3cret", 2);
            assert!(s.verify(&auth2, "REGISTER", REALM, 1_020, store).is_ok());
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_wrong_method() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        let auth = answer(&ch[0], "guess", 1);
        let e = s
            .verify(&auth, "REGISTER", REALM, 1_001, store)
            .expect_err("wrong password");
        assert_eq!(
            e,
            DigestError::WrongResponse {
                username: "alice".into()
            }
        );
        assert_eq!(e.status(), 403);
        let good = answer(&ch[0], "s3cret", 1);
        let e = s
            .verify(&good, "INVITE", REALM, 1_001, store)
            .expect_err("signed for REGISTER");
        assert!(matches!(e, DigestError::WrongResponse { .. }));
        let e = s
            .verify(&good, "REGISTER", REALM, 1_001, |_, _| None)
            .expect_err("unknown");
        assert_eq!(
            e,
            DigestError::UnknownUser {
                username: "alice".into()
            }
        );
        assert_eq!(e.status(), 403);
        // A failed attempt does not burn the nonce count.
        assert!(s.verify(&good, "REGISTER", REALM, 1_001, store).is_ok());
    }

    #[test]
    fn stale_versus_forged_nonce() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        let good = answer(&ch[0], "s3cret", 1);
        // Exactly at the end of the lifetime it is still fresh; one second later stale.
        let e = s.verify(&good, "REGISTER", REALM, 1_301, store).expect_err("stale");
        assert_eq!(e, DigestError::StaleNonce);
        assert!(e.stale() && e.status() == 401);
        // Stale only with a correct response: a wrong password stays wrong.
        let bad = answer(&ch[0], "guess", 1);
        assert!(matches!(
            s.verify(&bad, "REGISTER", REALM, 1_301, store),
            Err(DigestError::WrongResponse { .. })
        ));
        assert!(s.verify(&good, "REGISTER", REALM, 1_300, store).is_ok());

        // Flip one hex digit of the nonce (in the time field) and re-sign.
        let c = parse_challenge(&ch[0]).expect("parse");
        let mut forged = c.nonce.clone().into_bytes();
        forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("ascii");
        let forged_ch = ch[0].replace(&c.nonce, &forged);
        let auth = answer(&forged_ch, "s3cret", 1);
        let e = s.verify(&auth, "REGISTER", REALM, 1_001, store).expect_err("forged");
        assert_eq!(e, DigestError::BadNonce);
        assert!(!e.stale() && e.status() == 401);
        // Not hex / wrong length.
        let auth = answer(&ch[0].replace(&c.nonce, "abc"), "s3cret", 1);
        assert_eq!(
            s.verify(&auth, "REGISTER", REALM, 1_001, store),
            Err(DigestError::BadNonce)
        );
        // A different secret did not issue it.
        let mut other = NonceIssuer::new([8; 32], DEFAULT_NONCE_LIFETIME);
        assert_eq!(
            other.verify(&good, "REGISTER", REALM, 1_001, store),
            Err(DigestError::BadNonce)
        );
    }

    #[test]
    fn nonce_count_replay() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        let a1 = answer(&ch[0], "s3cret", 1);
        let a5 = answer(&ch[0], "s3cret", 5);
        assert!(s.verify(&a1, "REGISTER", REALM, 1_001, store).is_ok());
        let e = s.verify(&a1, "REGISTER", REALM, 1_002, store).expect_err("replay");
        assert_eq!(e, DigestError::ReplayedNonceCount { nc: 1, seen: 1 });
        assert_eq!(e.status(), 401);
        assert!(s.verify(&a5, "REGISTER", REALM, 1_003, store).is_ok());
        assert_eq!(
            s.verify(&a5, "REGISTER", REALM, 1_004, store),
            Err(DigestError::ReplayedNonceCount { nc: 5, seen: 5 })
        );
        assert_eq!(s.tracked_nonces(), 1);
        // Expired entries are pruned when later requests come in.
        let ch2 = s.challenge(REALM, 2_000, false);
        assert!(s
            .verify(&answer(&ch2[0], "s3cret", 1), "REGISTER", REALM, 2_001, store)
            .is_ok());
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn evicted_nonce_becomes_stale_not_replayable() {
        let mut s = server().with_max_tracked_nonces(2);
        let first = s.challenge(REALM, 1_000, false);
        let second = s.challenge(REALM, 1_001, false);
        let third = s.challenge(REALM, 1_002, false);
        let a = answer(&first[0], "s3cret", 1);
        assert!(s.verify(&a, "REGISTER", REALM, 1_005, store).is_ok());
        assert!(s
            .verify(&answer(&second[0], "s3cret", 1), "REGISTER", REALM, 1_005, store)
            .is_ok());
        assert!(s
            .verify(&answer(&third[0], "s3cret", 1), "REGISTER", REALM, 1_005, store)
            .is_ok());
        assert_eq!(s.tracked_nonces(), 2);
        // `first` was evicted: replaying it is refused as stale.
        assert_eq!(
            s.verify(&a, "REGISTER", REALM, 1_006, store),
            Err(DigestError::StaleNonce)
        );
        // A nonce issued after the evicted one still works.
        let fresh = s.challenge(REALM, 1_010, false);
        assert!(s
            .verify(&answer(&fresh[0], "s3cret", 1), "REGISTER", REALM, 1_011, store)
            .is_ok());
    }

    #[test]
    fn restart_with_same_secret_verifies() {
        let ch = server().challenge(REALM, 1_000, false);
        let auth = answer(&ch[1], "s3cret", 1);
        let mut restarted = server();
        assert!(restarted.verify(&auth, "REGISTER", REALM, 1_100, store).is_ok());
        // The nonce is bound to its realm.
        assert_eq!(
            restarted.verify(
                &auth.replace(REALM, "other.example.org"),
                "REGISTER",
                "other.example.org",
                1_100,
                |a, _| { Some(ha1(a, "alice", "other.example.org", "s3cret")) }
            ),
            Err(DigestError::BadNonce)
        );
    }

    #[test]
    fn refusals_before_the_password_check() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        let good = answer(&ch[0], "s3cret", 1);
        assert_eq!(
            s.verify(&good, "REGISTER", "elsewhere.org", 1_001, store),
            Err(DigestError::WrongRealm { got: REALM.into() })
        );
        let no_qop = good.replace(", qop=auth", "");
        let e = s.verify(&no_qop, "REGISTER", REALM, 1_001, store).expect_err("no qop");
        assert_eq!(e, DigestError::MissingQop);
        assert_eq!(e.status(), 403);
        assert_eq!(
            s.verify(
                &good.replace("qop=auth", "qop=auth-int"),
                "REGISTER",
                REALM,
                1_001,
                store
            ),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        let e = s
            .verify(
                &good.replace("algorithm=SHA-256", "algorithm=SHA-256-sess"),
                "REGISTER",
                REALM,
                1_001,
                store,
            )
            .expect_err("sess");
        assert_eq!(e, DigestError::UnsupportedAlgorithm("SHA-256-sess".into()));
        assert_eq!(e.status(), 401);
        let mut md5_only = server().with_algorithms(&[Algorithm::Md5]);
        assert_eq!(
            md5_only.verify(&good, "REGISTER", REALM, 1_001, store),
            Err(DigestError::UnsupportedAlgorithm("SHA-256".into()))
        );
        assert_eq!(
            s.verify(&format!("{good}, userhash=true"), "REGISTER", REALM, 1_001, store),
            Err(DigestError::UnsupportedParameter("userhash"))
        );
        for (from, to, name) in [
            ("nc=00000001", "nc=xyz", "nc"),
            ("nc=00000001", "nc=00000000", "nc"),
            ("nc=00000001", "nc=000000001", "nc"),
            ("username=", "user=", "username"),
            ("cnonce=", "cn=", "cnonce"),
            ("response=", "resp=", "response"),
            ("uri=", "url=", "uri"),
            ("nonce=", "n=", "nonce"),
        ] {
            let e = s
                .verify(&good.replacen(from, to, 1), "REGISTER", REALM, 1_001, store)
                .expect_err(name);
            assert_eq!(e, DigestError::Malformed { param: name.into() }, "{from} -> {to}");
            assert_eq!(e.status(), 400);
        }
        // After all those refusals the good one still passes.
        assert!(s.verify(&good, "REGISTER", REALM, 1_001, store).is_ok());
    }

    #[test]
    fn uppercase_response_and_missing_algorithm_means_md5() {
        let mut s = server();
        let ch = s.challenge(REALM, 1_000, false);
        let md5 = answer(&ch[1], "s3cret", 1);
        let p = parse_params(&md5).expect("parse");
        let resp = get(&p, "response");
        let upper = md5
            .replace(&resp, &resp.to_ascii_uppercase())
            .replace(", algorithm=MD5", "");
        assert!(!upper.contains("algorithm"));
        assert_eq!(
            s.verify(&upper, "REGISTER", REALM, 1_001, store).map(|v| v.algorithm),
            Ok(Algorithm::Md5)
        );
    }

    #[test]
    fn client_rfc2069_and_bad_challenges() {
        let ch = "Digest realm=\"trunk\", nonce=\"abc\"";
        let auth = respond(ch, "REGISTER", "sip:trunk", "u", "p", "cn", 1).expect("2069");
        let p = parse_params(&auth).expect("parse");
        assert_eq!(param(&p, "qop"), None);
        assert_eq!(param(&p, "nc"), None);
        let h = ha1(Algorithm::Md5, "u", "trunk", "p");
        let ha2 = Algorithm::Md5.hash_joined(&[b"REGISTER", b"sip:trunk"]);
        assert_eq!(
            get(&p, "response"),
            Algorithm::Md5.hash_joined(&[h.as_bytes(), b"abc", ha2.as_bytes()])
        );
        assert_eq!(
            respond(
                "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
                "A",
                "u",
                "u",
                "p",
                "c",
                1
            ),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            respond(
                "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256",
                "A",
                "u",
                "u",
                "p",
                "c",
                1
            ),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            respond("Digest realm=\"r\"", "A", "u", "u", "p", "c", 1),
            Err(DigestError::Malformed { param: "nonce".into() })
        );
        // Quotes in user names are escaped and survive a round trip.
        let auth = respond(
            "Digest realm=\"r\", nonce=\"n\", qop=auth",
            "A",
            "u",
            "a\"b",
            "p",
            "c",
            0x1a,
        )
        .expect("q");
        let p = parse_params(&auth).expect("parse");
        assert_eq!(get(&p, "username"), "a\"b");
        assert_eq!(get(&p, "nc"), "0000001a");
    }
}
