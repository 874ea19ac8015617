//! STUN messages (RFC 8489), as far as ICE connectivity checks need them.
//!
//! [`StunMessage::parse`] validates the header and every attribute length
//! before it reads a value, and keeps borrowed slices of the datagram: the
//! integrity and fingerprint checks ([`StunMessage::verify_integrity`],
//! [`StunMessage::verify_fingerprint`]) run over the original bytes.
//! [`MessageBuilder`] writes a message and appends MESSAGE-INTEGRITY
//! (HMAC-SHA1, RFC 8489 §14.5) and FINGERPRINT (CRC-32, §14.7) last.
//!
//! Attribute rules followed (RFC 8489 §14): only the first occurrence of
//! an attribute counts; after MESSAGE-INTEGRITY only
//! MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are processed, other attributes
//! are ignored; FINGERPRINT must be the last attribute. Unknown attributes
//! in the comprehension-required range (0x0000–0x7FFF) are collected so a
//! server can answer 420 (§6.3.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aws_lc_rs::hmac;

/// The magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the fixed header (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;
/// The largest message this module parses: a connectivity check is a few
/// hundred bytes; anything near the UDP MTU is not one.
pub const MAX_MESSAGE_LEN: usize = 1500;
/// XOR'ed into the CRC-32 of FINGERPRINT (RFC 8489 §14.7).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The Binding method (RFC 8489 §18.2).
pub const METHOD_BINDING: u16 = 0x001;

/// Attribute types this crate knows (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (RFC 8445 §7.1.1).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (RFC 8445 §7.1.2).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED (RFC 8445 §7.1.3).
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING (RFC 8445 §7.1.3).
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// The 96-bit transaction id (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

/// The class of a message (RFC 8489 §5: bits C1 C0 of the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request (0b00).
    Request,
    /// An indication (0b01).
    Indication,
    /// A success response (0b10).
    SuccessResponse,
    /// An error response (0b11).
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::SuccessResponse => 0x100,
            Class::ErrorResponse => 0x110,
        }
    }
}

/// Encodes method and class into the 14-bit message type (RFC 8489 §5, figure 3).
pub fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0fff;
    (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | class.bits()
}

fn split_type(t: u16) -> (Class, u16) {
    let class = match t & 0x0110 {
        0x000 => Class::Request,
        0x010 => Class::Indication,
        0x100 => Class::SuccessResponse,
        _ => Class::ErrorResponse,
    };
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    (class, method)
}

/// Why a datagram is not an acceptable STUN message. The peer is at fault
/// in every case; a driver drops the datagram and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Fewer than 20 bytes, or more than [`MAX_MESSAGE_LEN`].
    #[error("STUN message of {0} bytes: outside 20..=1500")]
    BadSize(usize),
    /// The two most significant bits are not zero.
    #[error("not a STUN message: first two bits set")]
    NotStun,
    /// The magic cookie is wrong (RFC 3489 messages are not accepted).
    #[error("wrong STUN magic cookie")]
    BadCookie,
    /// The header's length field disagrees with the datagram or is not a multiple of 4.
    #[error("STUN length field {field} does not match the datagram's {actual} bytes of body")]
    BadLength {
        /// The length in the header.
        field: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// An attribute's length runs past the end of the message.
    #[error("STUN attribute 0x{typ:04x} of length {len} runs past the end of the message")]
    AttributeOverrun {
        /// Attribute type.
        typ: u16,
        /// Its declared length.
        len: usize,
    },
    /// An attribute has a length or value its definition does not allow.
    #[error("STUN attribute 0x{typ:04x}: {reason}")]
    BadAttribute {
        /// Attribute type.
        typ: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// An attribute follows FINGERPRINT (RFC 8489 §14.7: it must be last).
    #[error("STUN attribute after FINGERPRINT")]
    AfterFingerprint,
}

/// An ERROR-CODE value (RFC 8489 §14.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// 300–699.
    pub code: u16,
    /// The reason phrase (UTF-8).
    pub reason: &'a str,
}

/// Error codes used by ICE (RFC 8489 §14.8, RFC 8445 §7.3.1.1).
pub mod code {
    /// The request was malformed (missing USERNAME or MESSAGE-INTEGRITY).
    pub const BAD_REQUEST: u16 = 400;
    /// Credentials were wrong.
    pub const UNAUTHENTICATED: u16 = 401;
    /// A comprehension-required attribute was not understood.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// Both agents claim the same ICE role.
    pub const ROLE_CONFLICT: u16 = 487;
}

/// A parsed, length-validated STUN message borrowing the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunMessage<'a> {
    raw: &'a [u8],
    /// Message class.
    pub class: Class,
    /// Method (12 bits).
    pub method: u16,
    /// Transaction id.
    pub transaction_id: TransactionId,
    /// USERNAME (for ICE: `<receiver ufrag>:<sender ufrag>`).
    pub username: Option<&'a str>,
    /// PRIORITY.
    pub priority: Option<u32>,
    /// USE-CANDIDATE was present.
    pub use_candidate: bool,
    /// ICE-CONTROLLING tie-breaker.
    pub ice_controlling: Option<u64>,
    /// ICE-CONTROLLED tie-breaker.
    pub ice_controlled: Option<u64>,
    /// XOR-MAPPED-ADDRESS, decoded.
    pub xor_mapped_address: Option<SocketAddr>,
    /// MAPPED-ADDRESS.
    pub mapped_address: Option<SocketAddr>,
    /// ERROR-CODE.
    pub error_code: Option<ErrorCode<'a>>,
    /// SOFTWARE.
    pub software: Option<&'a str>,
    /// Comprehension-required attribute types this module does not know.
    pub unknown_required: Vec<u16>,
    /// Offset of the MESSAGE-INTEGRITY attribute header and its HMAC.
    integrity: Option<(usize, [u8; 20])>,
    /// Offset of the FINGERPRINT attribute header and its value.
    fingerprint: Option<(usize, u32)>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

impl<'a> StunMessage<'a> {
    /// Parses `datagram` as one STUN message, validating every length.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, StunError> {
        let len = datagram.len();
        if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(StunError::BadSize(len));
        }
        if datagram[0] & 0xc0 != 0 {
            return Err(StunError::NotStun);
        }
        let field = usize::from(be16(datagram, 2));
        if !field.is_multiple_of(4) || field != len - HEADER_LEN {
            return Err(StunError::BadLength {
                field,
                actual: len - HEADER_LEN,
            });
        }
        if be32(datagram, 4) != MAGIC_COOKIE {
            return Err(StunError::BadCookie);
        }
        let (class, method) = split_type(be16(datagram, 0));
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&datagram[8..20]);
        let transaction_id = TransactionId(tid);
        let mut msg = StunMessage {
            raw: datagram,
            class,
            method,
            transaction_id,
            username: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            xor_mapped_address: None,
            mapped_address: None,
            error_code: None,
            software: None,
            unknown_required: Vec::new(),
            integrity: None,
            fingerprint: None,
        };
        let mut seen: Vec<u16> = Vec::new();
        let mut off = HEADER_LEN;
        while off < len {
            if msg.fingerprint.is_some() {
                return Err(StunError::AfterFingerprint);
            }
            let typ = be16(datagram, off);
            let alen = usize::from(be16(datagram, off + 2));
            let start = off + 4;
            let padded = (alen + 3) & !3;
            let Some(value) = datagram.get(start..start + alen) else {
                return Err(StunError::AttributeOverrun { typ, len: alen });
            };
            if start + padded > len {
                return Err(StunError::AttributeOverrun { typ, len: alen });
            }
            let here = off;
            off = start + padded;
            if msg.integrity.is_some() && typ != attr::FINGERPRINT && typ != attr::MESSAGE_INTEGRITY_SHA256 {
                // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are ignored.
                continue;
            }
            if seen.contains(&typ) {
                // RFC 8489 §14: only the first occurrence is processed.
                continue;
            }
            seen.push(typ);
            msg.attribute(typ, value, here, &transaction_id)?;
        }
        Ok(msg)
    }

    fn attribute(&mut self, typ: u16, v: &'a [u8], at: usize, tid: &TransactionId) -> Result<(), StunError> {
        let bad = |reason| StunError::BadAttribute { typ, reason };
        let exact = |n: usize| if v.len() == n { Ok(()) } else { Err(bad("wrong length")) };
        match typ {
            attr::USERNAME => {
                // RFC 8489 §14.3: fewer than 509 bytes (513 in RFC 5389, whose peers we accept).
                if v.len() > 513 {
                    return Err(bad("longer than 513 bytes"));
                }
                self.username = Some(std::str::from_utf8(v).map_err(|_| bad("not UTF-8"))?);
            }
            attr::MESSAGE_INTEGRITY => {
                exact(20)?;
                let mut mac = [0u8; 20];
                mac.copy_from_slice(v);
                self.integrity = Some((at, mac));
            }
            // Recognised (so not "unknown"), not used by ICE: 16..=32 bytes, multiple of 4.
            attr::MESSAGE_INTEGRITY_SHA256 if !(16..=32).contains(&v.len()) || !v.len().is_multiple_of(4) => {
                return Err(bad("wrong length"));
            }
            attr::MESSAGE_INTEGRITY_SHA256 => {}
            attr::FINGERPRINT => {
                exact(4)?;
                self.fingerprint = Some((at, be32(v, 0)));
            }
            attr::PRIORITY => {
                exact(4)?;
                self.priority = Some(be32(v, 0));
            }
            attr::USE_CANDIDATE => {
                exact(0)?;
                self.use_candidate = true;
            }
            attr::ICE_CONTROLLING => {
                exact(8)?;
                self.ice_controlling = Some(be64(v, 0));
            }
            attr::ICE_CONTROLLED => {
                exact(8)?;
                self.ice_controlled = Some(be64(v, 0));
            }
            attr::XOR_MAPPED_ADDRESS => {
                self.xor_mapped_address = Some(decode_address(v, Some(tid)).ok_or_else(|| bad("bad address"))?);
            }
            attr::MAPPED_ADDRESS => {
                self.mapped_address = Some(decode_address(v, None).ok_or_else(|| bad("bad address"))?);
            }
            attr::ERROR_CODE => {
                // RFC 8489 §14.8: 21 zero bits, class (3 bits, 3..=6), number (0..=99), reason < 128 chars.
                if v.len() < 4 || v.len() > 4 + 763 {
                    return Err(bad("wrong length"));
                }
                let class = u16::from(v[2] & 0x07);
                let number = u16::from(v[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(bad("code outside 300..=699"));
                }
                let reason = std::str::from_utf8(&v[4..]).map_err(|_| bad("reason not UTF-8"))?;
                self.error_code = Some(ErrorCode {
                    code: class * 100 + number,
                    reason,
                });
            }
            attr::SOFTWARE => {
                if v.len() > 763 {
                    return Err(bad("longer than 763 bytes"));
                }
                self.software = Some(std::str::from_utf8(v).map_err(|_| bad("not UTF-8"))?);
            }
            attr::UNKNOWN_ATTRIBUTES if !v.len().is_multiple_of(2) => return Err(bad("odd length")),
            attr::UNKNOWN_ATTRIBUTES => {}
            t if t < 0x8000 => self.unknown_required.push(t),
            _ => {} // comprehension-optional: ignored
        }
        Ok(())
    }

    /// The datagram this message was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// Checks MESSAGE-INTEGRITY with `key` (for short-term credentials, the
    /// password: RFC 8489 §9.1.1). The HMAC covers the message up to the
    /// attribute, with the header's length counting up to its end
    /// (§14.5). `false` when absent or wrong; compared in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some((at, mac)) = self.integrity else {
            return false;
        };
        let Some(covered) = self.raw.get(..at) else {
            return false;
        };
        let adjusted = (at + 24 - HEADER_LEN) as u16;
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&covered[..2]);
        ctx.update(&adjusted.to_be_bytes());
        ctx.update(&covered[4..]);
        let tag = ctx.sign();
        constant_time_eq(tag.as_ref(), &mac)
    }

    /// Checks FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message up to
    /// the attribute, XOR 0x5354554e. `false` when absent or wrong.
    pub fn verify_fingerprint(&self) -> bool {
        let Some((at, value)) = self.fingerprint else {
            return false;
        };
        let Some(covered) = self.raw.get(..at) else {
            return false;
        };
        let adjusted = (at + 8 - HEADER_LEN) as u16;
        let mut crc = Crc32::new();
        crc.update(&covered[..2]);
        crc.update(&adjusted.to_be_bytes());
        crc.update(&covered[4..]);
        crc.finish() ^ FINGERPRINT_XOR == value
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes a (XOR-)MAPPED-ADDRESS value (RFC 8489 §14.1, §14.2).
fn decode_address(v: &[u8], xor: Option<&TransactionId>) -> Option<SocketAddr> {
    if v.len() < 4 || v[0] != 0 {
        return None;
    }
    let mut port = be16(v, 2);
    let cookie = MAGIC_COOKIE.to_be_bytes();
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match v[1] {
        0x01 if v.len() == 8 => {
            let mut a = [v[4], v[5], v[6], v[7]];
            if xor.is_some() {
                for (b, k) in a.iter_mut().zip(cookie) {
                    *b ^= k;
                }
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        0x02 if v.len() == 20 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[4..20]);
            if let Some(tid) = xor {
                let key = cookie.iter().chain(tid.0.iter());
                for (b, k) in a.iter_mut().zip(key) {
                    *b ^= k;
                }
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

/// Encodes XOR-MAPPED-ADDRESS's value for `addr` (RFC 8489 §14.2).
pub fn encode_xor_address(addr: SocketAddr, tid: &TransactionId) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut v = Vec::with_capacity(20);
    v.push(0);
    match addr.ip() {
        IpAddr::V4(ip) => {
            v.push(0x01);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend(ip.octets().iter().zip(cookie).map(|(b, k)| b ^ k));
        }
        IpAddr::V6(ip) => {
            v.push(0x02);
            v.extend_from_slice(&port.to_be_bytes());
            let key = cookie.iter().chain(tid.0.iter());
            v.extend(ip.octets().iter().zip(key).map(|(b, k)| b ^ k));
        }
    }
    v
}

/// Writes a STUN message. Attributes are appended in call order and
/// padded with zeros; [`MessageBuilder::finish`] appends MESSAGE-INTEGRITY
/// and FINGERPRINT last, as RFC 8489 §14.5 and §14.7 require.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    tid: TransactionId,
}

impl MessageBuilder {
    /// Starts a message of `class` and `method` with transaction id `tid`.
    pub fn new(class: Class, method: u16, tid: TransactionId) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(class, method).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&tid.0);
        Self { buf, tid }
    }

    /// Appends a raw attribute (padded to 4 bytes with zeros). Values over
    /// 65 535 bytes are truncated to keep the length field honest.
    pub fn attribute(&mut self, typ: u16, value: &[u8]) -> &mut Self {
        let value = value.get(..usize::from(u16::MAX)).unwrap_or(value);
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        let pad = (4 - value.len() % 4) % 4;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// USERNAME.
    pub fn username(&mut self, username: &str) -> &mut Self {
        self.attribute(attr::USERNAME, username.as_bytes())
    }

    /// SOFTWARE.
    pub fn software(&mut self, software: &str) -> &mut Self {
        self.attribute(attr::SOFTWARE, software.as_bytes())
    }

    /// PRIORITY.
    pub fn priority(&mut self, priority: u32) -> &mut Self {
        self.attribute(attr::PRIORITY, &priority.to_be_bytes())
    }

    /// USE-CANDIDATE.
    pub fn use_candidate(&mut self) -> &mut Self {
        self.attribute(attr::USE_CANDIDATE, &[])
    }

    /// ICE-CONTROLLING with its tie-breaker.
    pub fn ice_controlling(&mut self, tie_breaker: u64) -> &mut Self {
        self.attribute(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())
    }

    /// ICE-CONTROLLED with its tie-breaker.
    pub fn ice_controlled(&mut self, tie_breaker: u64) -> &mut Self {
        self.attribute(attr::ICE_CONTROLLED, &tie_breaker.to_be_bytes())
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> &mut Self {
        let v = encode_xor_address(addr, &self.tid);
        self.attribute(attr::XOR_MAPPED_ADDRESS, &v)
    }

    /// ERROR-CODE (`code` 300–699; the reason is cut to 127 characters).
    pub fn error_code(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = vec![0, 0, ((code / 100) & 0x07) as u8, (code % 100) as u8];
        v.extend(reason.chars().take(127).collect::<String>().as_bytes());
        self.attribute(attr::ERROR_CODE, &v)
    }

    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub fn unknown_attributes(&mut self, types: &[u16]) -> &mut Self {
        let v: Vec<u8> = types.iter().flat_map(|t| t.to_be_bytes()).collect();
        self.attribute(attr::UNKNOWN_ATTRIBUTES, &v)
    }

    fn set_length(&mut self, body: usize) {
        let l = (body as u16).to_be_bytes();
        self.buf[2] = l[0];
        self.buf[3] = l[1];
    }

    /// Appends MESSAGE-INTEGRITY keyed with `integrity_key` (if any) and
    /// FINGERPRINT (if asked), and returns the message.
    pub fn finish(mut self, integrity_key: Option<&[u8]>, fingerprint: bool) -> Vec<u8> {
        if let Some(k) = integrity_key {
            let body = self.buf.len() - HEADER_LEN + 24;
            self.set_length(body);
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, k);
            let tag = hmac::sign(&key, &self.buf);
            self.attribute(attr::MESSAGE_INTEGRITY, tag.as_ref());
        }
        if fingerprint {
            let body = self.buf.len() - HEADER_LEN + 8;
            self.set_length(body);
            let mut crc = Crc32::new();
            crc.update(&self.buf);
            let v = crc.finish() ^ FINGERPRINT_XOR;
            self.attribute(attr::FINGERPRINT, &v.to_be_bytes());
        }
        let body = self.buf.len() - HEADER_LEN;
        self.set_length(body);
        self.buf
    }
}

/// CRC-32 as in ISO 3309 / ITU-T V.42 (the one FINGERPRINT uses): reflected
/// polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32 {
    /// A fresh checksum.
    pub fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The checksum of everything fed.
    pub fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    const TID: TransactionId = TransactionId([0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae]);

    /// RFC 5769 §2.1: sample request (short-term credentials).
    fn rfc5769_request() -> Vec<u8> {
        hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
             00 24 00 04 6e 00 01 ff
             80 29 00 08 93 2f f9 b1 51 26 3b 36
             00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
             00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
             80 28 00 04 e5 7a 3b cf")
    }

    const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    #[test]
    fn rfc5769_sample_request() {
        let pkt = rfc5769_request();
        let m = StunMessage::parse(&pkt).expect("parses");
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.method, METHOD_BINDING);
        assert_eq!(m.transaction_id, TID);
        assert_eq!(m.software, Some("STUN test client"));
        assert_eq!(m.priority, Some(0x6e0001ff));
        assert_eq!(m.ice_controlled, Some(0x932ff9b151263b36));
        assert_eq!(m.username, Some("evtj:h6vY"));
        assert!(m.verify_integrity(RFC5769_PASSWORD));
        assert!(!m.verify_integrity(b"wrong"));
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn rfc5769_sample_ipv4_response() {
        let pkt = hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
             00 20 00 08 00 01 a1 47 e1 12 a6 43
             00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
             80 28 00 04 c0 7d 4c 96");
        let m = StunMessage::parse(&pkt).expect("parses");
        assert_eq!(m.class, Class::SuccessResponse);
        assert_eq!(m.software, Some("test vector"));
        let want: SocketAddr = "192.0.2.1:32853".parse().expect("addr");
        assert_eq!(m.xor_mapped_address, Some(want));
        assert!(m.verify_integrity(RFC5769_PASSWORD));
        assert!(m.verify_fingerprint());
        assert_eq!(encode_xor_address(want, &TID), hex("00 01 a1 47 e1 12 a6 43"));
    }

    #[test]
    fn rfc5769_sample_ipv6_response() {
        let pkt = hex("01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
             00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
             00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
             80 28 00 04 c8 fb 0b 4c");
        let m = StunMessage::parse(&pkt).expect("parses");
        let want: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().expect("addr");
        assert_eq!(m.xor_mapped_address, Some(want));
        assert!(m.verify_integrity(RFC5769_PASSWORD));
        assert!(m.verify_fingerprint());
        assert_eq!(
            encode_xor_address(want, &TID),
            hex("00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9")
        );
    }

    #[test]
    fn tampering_breaks_integrity_and_fingerprint() {
        let mut pkt = rfc5769_request();
        pkt[30] ^= 1; // inside SOFTWARE
        let m = StunMessage::parse(&pkt).expect("still parses");
        assert!(!m.verify_integrity(RFC5769_PASSWORD));
        assert!(!m.verify_fingerprint());
    }

    #[test]
    fn builder_round_trip() {
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TID);
        b.username("abcd:efgh")
            .priority(1_845_501_695)
            .ice_controlling(7)
            .use_candidate();
        let pkt = b.finish(Some(b"secretpassword"), true);
        let m = StunMessage::parse(&pkt).expect("parses");
        assert_eq!(m.username, Some("abcd:efgh"));
        assert_eq!(m.priority, Some(1_845_501_695));
        assert_eq!(m.ice_controlling, Some(7));
        assert!(m.use_candidate);
        assert!(m.verify_integrity(b"secretpassword"));
        assert!(m.verify_fingerprint());

        let mut b = MessageBuilder::new(Class::ErrorResponse, METHOD_BINDING, TID);
        b.error_code(401, "Unauthenticated");
        let pkt = b.finish(None, true);
        let m = StunMessage::parse(&pkt).expect("parses");
        assert_eq!(m.class, Class::ErrorResponse);
        assert_eq!(
            m.error_code,
            Some(ErrorCode {
                code: 401,
                reason: "Unauthenticated"
            })
        );
        assert!(!m.has_integrity());
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn message_type_encoding() {
        assert_eq!(message_type(Class::Request, METHOD_BINDING), 0x0001);
        assert_eq!(message_type(Class::Indication, METHOD_BINDING), 0x0011);
        assert_eq!(message_type(Class::SuccessResponse, METHOD_BINDING), 0x0101);
        assert_eq!(message_type(Class::ErrorResponse, METHOD_BINDING), 0x0111);
        for t in [0x0001u16, 0x0011, 0x0101, 0x0111, 0x3eef] {
            let (c, m) = split_type(t);
            assert_eq!(message_type(c, m), t);
        }
    }

    #[test]
    fn lengths_are_validated() {
        let pkt = rfc5769_request();
        assert_eq!(StunMessage::parse(&pkt[..19]), Err(StunError::BadSize(19)));
        // Header length disagrees with the datagram.
        assert!(matches!(
            StunMessage::parse(&pkt[..pkt.len() - 4]),
            Err(StunError::BadLength { .. })
        ));
        // An attribute that claims more than the message holds.
        let mut p = pkt.clone();
        p[22] = 0x01; // SOFTWARE length 0x0110
        assert!(matches!(
            StunMessage::parse(&p),
            Err(StunError::AttributeOverrun { typ: 0x8022, .. })
        ));
        // PRIORITY of the wrong size.
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TID);
        b.attribute(attr::PRIORITY, &[1, 2, 3]);
        let p = b.finish(None, false);
        assert!(matches!(
            StunMessage::parse(&p),
            Err(StunError::BadAttribute { typ: 0x0024, .. })
        ));
        // Something after FINGERPRINT.
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TID);
        b.attribute(attr::FINGERPRINT, &[0; 4]).attribute(attr::SOFTWARE, b"x");
        assert_eq!(
            StunMessage::parse(&b.finish(None, false)),
            Err(StunError::AfterFingerprint)
        );
        // Wrong cookie.
        let mut p = pkt;
        p[4] = 0;
        assert_eq!(StunMessage::parse(&p), Err(StunError::BadCookie));
    }

    #[test]
    fn unknown_required_attributes_are_collected() {
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TID);
        b.attribute(0x7777, b"zz").attribute(0xC057, &[0, 1, 0, 0]);
        let p = b.finish(None, true);
        let m = StunMessage::parse(&p).expect("parses");
        assert_eq!(m.unknown_required, vec![0x7777]);
    }

    #[test]
    fn crc32_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(m) = StunMessage::parse(&data) {
                let _ = m.verify_integrity(b"k");
                let _ = m.verify_fingerprint();
            }
        }
    }
}
