//! TPKT framing (RFC 1006 §6), as H.225.0 §7.1 uses it on the call
//! signalling and separate H.245 TCP connections.
//!
//! ```text
//! +---------+----------+----------------+-----------------------+
//! | vrsn 3  | reserved | packet length  | payload (length - 4)  |
//! | 1 octet | 1 octet  | 2 octets, BE   |                       |
//! +---------+----------+----------------+-----------------------+
//! ```
//!
//! The length counts the 4-octet header. A TPKT of length 4 (no payload) is
//! a keep-alive some endpoints send (H.225.0 §7.1.1 allows empty TPKTs); the
//! decoder yields it as an empty PDU.

/// The TPKT version number (RFC 1006 §6: "vrsn 8 bits: this field is always 3").
pub const VERSION: u8 = 3;
/// Length of the TPKT header.
pub const HEADER_LEN: usize = 4;
/// Largest packet length the 16-bit field can carry.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// Why a TPKT stream cannot be decoded (the connection should be closed) or
/// a payload cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TpktError {
    /// The first octet of a packet is not version 3: the peer does not speak
    /// TPKT, or the stream lost synchronisation.
    #[error("not a TPKT packet: version octet {0:#04x}, expected 3")]
    BadVersion(u8),
    /// The packet length is shorter than the header itself.
    #[error("TPKT packet length {0} is shorter than its 4-octet header")]
    LengthTooShort(usize),
    /// The packet is longer than this decoder accepts.
    #[error("TPKT packet length {len} exceeds the limit of {max}")]
    TooLong {
        /// The packet length (header included).
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Reassembles TPKT packets from a byte stream that arrives in arbitrary
/// chunks (sans-IO: the caller reads the socket).
///
/// Feed every chunk with [`push`](Self::push), then call
/// [`next_pdu`](Self::next_pdu) until it returns `Ok(None)`. Errors are
/// sticky: after one, the stream is out of step and every later call
/// returns the same error.
#[derive(Debug)]
pub struct TpktDecoder {
    buf: Vec<u8>,
    /// Octets at the front of `buf` already handed out.
    consumed: usize,
    max_packet_len: usize,
    error: Option<TpktError>,
}

impl TpktDecoder {
    /// A decoder that refuses packets longer than `max_packet_len` octets
    /// (header included; at most [`MAX_PACKET_LEN`] is meaningful).
    pub fn new(max_packet_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            consumed: 0,
            max_packet_len: max_packet_len.max(HEADER_LEN),
            error: None,
        }
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Octets received and not yet returned as part of a packet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next whole packet's payload, `Ok(None)` when more bytes are
    /// needed. The header is checked as soon as its 4 octets are here, so
    /// garbage is reported without waiting for the claimed length.
    pub fn next_pdu(&mut self) -> Result<Option<&[u8]>, TpktError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let rest = &self.buf[self.consumed..];
        let Some(header) = rest.first_chunk::<HEADER_LEN>() else {
            // A wrong first octet is visible before the whole header.
            if let Some(&v) = rest.first() {
                if v != VERSION {
                    return Err(self.fail(TpktError::BadVersion(v)));
                }
            }
            return Ok(None);
        };
        let len = match check_header(header, self.max_packet_len) {
            Ok(len) => len,
            Err(e) => return Err(self.fail(e)),
        };
        if rest.len() < len {
            return Ok(None);
        }
        let start = self.consumed + HEADER_LEN;
        self.consumed += len;
        Ok(self.buf.get(start..self.consumed))
    }

    fn fail(&mut self, e: TpktError) -> TpktError {
        self.error = Some(e.clone());
        self.buf = Vec::new();
        self.consumed = 0;
        e
    }
}

/// Validates a TPKT header, returning the packet length (header included).
fn check_header(header: &[u8; HEADER_LEN], max: usize) -> Result<usize, TpktError> {
    if header[0] != VERSION {
        return Err(TpktError::BadVersion(header[0]));
    }
    // header[1] is reserved; RFC 1006 says 0 but does not require a check.
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if len < HEADER_LEN {
        return Err(TpktError::LengthTooShort(len));
    }
    if len > max {
        return Err(TpktError::TooLong { len, max });
    }
    Ok(len)
}

/// Appends one TPKT packet carrying `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), TpktError> {
    let len = payload.len() + HEADER_LEN;
    let wire_len = u16::try_from(len).map_err(|_| TpktError::TooLong {
        len,
        max: MAX_PACKET_LEN,
    })?;
    out.reserve(len);
    out.extend_from_slice(&[VERSION, 0]);
    out.extend_from_slice(&wire_len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn all(d: &mut TpktDecoder) -> Result<Vec<Vec<u8>>, TpktError> {
        let mut out = Vec::new();
        while let Some(pdu) = d.next_pdu()? {
            out.push(pdu.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn encode_then_decode_byte_by_byte() {
        let mut wire = Vec::new();
        encode(b"hello", &mut wire).unwrap();
        encode(b"", &mut wire).unwrap();
        encode(&[7; 300], &mut wire).unwrap();
        assert_eq!(&wire[..9], b"\x03\x00\x00\x09hello");
        let mut d = TpktDecoder::new(MAX_PACKET_LEN);
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            got.extend(all(&mut d).unwrap());
        }
        assert_eq!(got, vec![b"hello".to_vec(), Vec::new(), vec![7; 300]]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn several_packets_in_one_chunk_and_a_partial_tail() {
        let mut wire = Vec::new();
        encode(b"a", &mut wire).unwrap();
        encode(b"bc", &mut wire).unwrap();
        wire.extend_from_slice(&[3, 0, 0, 8, 1]);
        let mut d = TpktDecoder::new(100);
        d.push(&wire);
        assert_eq!(all(&mut d).unwrap(), vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(d.buffered(), 5);
        d.push(&[2, 3, 4]);
        assert_eq!(all(&mut d).unwrap(), vec![vec![1, 2, 3, 4]]);
    }

    #[test]
    fn garbage_is_a_clear_sticky_error() {
        let mut d = TpktDecoder::new(100);
        d.push(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.next_pdu(), Err(TpktError::BadVersion(b'G')));
        d.push(&[3, 0, 0, 5, 1]);
        assert_eq!(d.next_pdu(), Err(TpktError::BadVersion(b'G')));
    }

    #[test]
    fn bad_version_seen_on_the_first_octet() {
        let mut d = TpktDecoder::new(100);
        d.push(&[0x16]);
        assert_eq!(d.next_pdu(), Err(TpktError::BadVersion(0x16)));
    }

    #[test]
    fn lengths_are_validated_before_waiting() {
        let mut d = TpktDecoder::new(100);
        d.push(&[3, 0, 0, 3]);
        assert_eq!(d.next_pdu(), Err(TpktError::LengthTooShort(3)));
        let mut d = TpktDecoder::new(100);
        d.push(&[3, 0, 0xff, 0xff]);
        assert_eq!(d.next_pdu(), Err(TpktError::TooLong { len: 65535, max: 100 }));
    }

    #[test]
    fn encode_refuses_oversized_payloads() {
        let mut out = Vec::new();
        assert!(encode(&vec![0; MAX_PACKET_LEN - 4], &mut out).is_ok());
        assert_eq!(
            encode(&vec![0; MAX_PACKET_LEN - 3], &mut Vec::new()),
            Err(TpktError::TooLong {
                len: MAX_PACKET_LEN + 1,
                max: MAX_PACKET_LEN
            })
        );
    }
}
