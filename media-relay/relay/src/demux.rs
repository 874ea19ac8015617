//! Demultiplexing one UDP port (RFC 7983 §7): STUN, DTLS, RTP and RTCP
//! share a port (with rtcp-mux, RFC 5761 §4, and WebRTC's BUNDLE).
//!
//! The first byte decides: 0–3 STUN, 20–63 DTLS, 64–79 TURN channel,
//! 128–191 RTP or RTCP (RTCP when the second byte, the packet type, is
//! 192–223: RFC 5761 §4 keeps RTP payload types out of 64–95).

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// A STUN message with the RFC 5389 magic cookie and a consistent length.
    Stun,
    /// A DTLS record.
    Dtls,
    /// A TURN ChannelData message.
    TurnChannel,
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
    /// Anything else (dropped and counted).
    Unknown,
}

/// The STUN magic cookie (RFC 5389 §6).
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;

/// Classifies a datagram by its first bytes.
pub fn classify(pkt: &[u8]) -> PacketKind {
    let Some(&first) = pkt.first() else {
        return PacketKind::Unknown;
    };
    match first {
        0..=3 => {
            if is_stun(pkt) {
                PacketKind::Stun
            } else {
                PacketKind::Unknown
            }
        }
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::TurnChannel,
        128..=191 => match pkt.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

/// Whether `pkt` is a well-formed STUN message (RFC 5389 §6): two zero top
/// bits, a length that is a multiple of 4 and matches the datagram, the
/// magic cookie, and attributes that tile the body exactly.
pub fn is_stun(pkt: &[u8]) -> bool {
    if pkt.len() < 20 || pkt[0] & 0xc0 != 0 {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if len % 4 != 0 || 20 + len != pkt.len() {
        return false;
    }
    if u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]) != STUN_MAGIC_COOKIE {
        return false;
    }
    let mut off = 20;
    while off < pkt.len() {
        let Some(h) = pkt.get(off..off + 4) else { return false };
        let alen = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let padded = (alen + 3) & !3;
        off += 4 + padded;
    }
    off == pkt.len()
}

/// Entry point for the fuzz target: classification must never panic.
#[doc(hidden)]
pub mod fuzzing {
    /// Classifies and, for RTP/RTCP, parses arbitrary bytes; valid RTCP
    /// also goes through the NACK translation of switched streams.
    pub fn demux(data: &[u8]) {
        match super::classify(data) {
            super::PacketKind::Rtp => {
                let _ = crate::rtp::parse_rtp(data);
            }
            // Only validated RTCP reaches the NACK translation, as in the relay.
            super::PacketKind::Rtcp if crate::rtp::parse_rtcp(data).is_ok() => {
                let mut rw = crate::rtp::StreamRewriter::new(0xabc);
                let mut pkt = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
                if let Ok(h) = crate::rtp::parse_rtp(&pkt) {
                    rw.rewrite(&mut pkt, &h, 3000);
                }
                let mut out = [0u8; 12 + 4 * crate::rtp::MAX_NACK_FCI];
                let _ = crate::rtp::translate_nacks(data, &rw, 1, &mut out);
                let mut copy = [0u8; 2048];
                let n = data.len().min(copy.len());
                copy[..n].copy_from_slice(&data[..n]);
                crate::rtp::rename_feedback_ssrc(&mut copy[..n], 1, 2);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1: sample request (with USERNAME, PRIORITY, ICE-CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT).
    const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74\
002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5\
b2d3f249c1b571a280280004e57a3bcf";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    #[test]
    fn rfc5769_request_is_stun() {
        let p = hex(RFC5769_REQUEST);
        assert_eq!(p.len(), 108);
        assert_eq!(classify(&p), PacketKind::Stun);
        let mut bad = p.clone();
        bad[4] ^= 1; // cookie
        assert_eq!(classify(&bad), PacketKind::Unknown);
        let mut bad = p.clone();
        bad[3] += 4; // length does not match
        assert_eq!(classify(&bad), PacketKind::Unknown);
        assert_eq!(classify(&p[..60]), PacketKind::Unknown);
    }

    #[test]
    fn ranges() {
        assert_eq!(classify(&[22, 254, 253]), PacketKind::Dtls);
        assert_eq!(classify(&[0x40, 0, 0, 0]), PacketKind::TurnChannel);
        assert_eq!(classify(&[0x80, 0, 0, 0]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 111]), PacketKind::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x81, 206]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), PacketKind::Rtp, "marker bit set, PT 96");
        assert_eq!(classify(&[0xff, 0]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            fuzzing::demux(&data);
        }
    }
}
