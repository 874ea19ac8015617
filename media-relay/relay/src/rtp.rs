//! RTP and RTCP headers (RFC 3550), validated before use, read and rewritten
//! in place.
//!
//! Nothing here allocates: parsing returns offsets into the caller's buffer.

/// Why a datagram is not a valid RTP or RTCP packet; each is a drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than a fixed header.
    #[error("shorter than the fixed header")]
    Truncated,
    /// Version is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// CSRC list or header extension runs past the end.
    #[error("header longer than the packet")]
    BadHeaderLength,
    /// Padding count is zero or larger than the payload.
    #[error("bad padding")]
    BadPadding,
    /// An RTCP length field runs past the end of the datagram.
    #[error("RTCP length runs past the datagram")]
    BadRtcpLength,
    /// A packet type outside the RTCP range 200–211.
    #[error("not an RTCP packet type")]
    BadRtcpFirst,
}

/// A validated RTP packet's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload (after CSRCs and extension).
    pub payload_offset: usize,
    /// Payload length, padding excluded.
    pub payload_len: usize,
}

/// Length of the RTP header in `pkt` (fixed part, CSRCs, extension), validated.
pub fn rtp_header_len(pkt: &[u8]) -> Result<usize, RtpError> {
    if pkt.len() < 12 {
        return Err(RtpError::Truncated);
    }
    if pkt[0] >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let cc = usize::from(pkt[0] & 0x0f);
    let mut len = 12 + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words.
        let ext = pkt.get(len..len + 4).ok_or(RtpError::BadHeaderLength)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > pkt.len() {
        return Err(RtpError::BadHeaderLength);
    }
    Ok(len)
}

/// Parses and validates an RTP packet.
pub fn parse_rtp(pkt: &[u8]) -> Result<RtpHeader, RtpError> {
    let hlen = rtp_header_len(pkt)?;
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        // RFC 3550 §5.1: the last octet counts the padding, itself included.
        let pad = usize::from(pkt[end - 1]);
        if pad == 0 || hlen + pad > end {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpHeader {
        marker: pkt[1] & 0x80 != 0,
        payload_type: pkt[1] & 0x7f,
        sequence: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        payload_offset: hlen,
        payload_len: end - hlen,
    })
}

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
pub mod rtcp_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Transport-layer feedback (NACK, TWCC).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (PLI, FIR, REMB).
    pub const PSFB: u8 = 206;
    /// Extended report.
    pub const XR: u8 = 207;
}

/// What a compound RTCP packet holds, as counts (for statistics and for
/// routing feedback to a publisher).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpSummary {
    /// Sender reports.
    pub sr: u8,
    /// Receiver reports.
    pub rr: u8,
    /// Generic NACKs (RTPFB fmt 1).
    pub nack: u8,
    /// Picture loss indications (PSFB fmt 1).
    pub pli: u8,
    /// Full intra requests (PSFB fmt 4).
    pub fir: u8,
    /// REMB (PSFB fmt 15, "REMB" application).
    pub remb: u8,
    /// Packets in the compound.
    pub packets: u8,
}

/// Validates a (possibly compound) RTCP packet: every packet's version and
/// length must fit the datagram exactly.
pub fn parse_rtcp(pkt: &[u8]) -> Result<RtcpSummary, RtpError> {
    let mut s = RtcpSummary::default();
    let mut off = 0;
    if pkt.len() < 8 {
        return Err(RtpError::Truncated);
    }
    while off < pkt.len() {
        let h = pkt.get(off..off + 4).ok_or(RtpError::BadRtcpLength)?;
        if h[0] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let pt = h[1];
        let fmt = h[0] & 0x1f;
        let len = 4 * (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1);
        if off + len > pkt.len() {
            return Err(RtpError::BadRtcpLength);
        }
        // RFC 3550 §6.1 wants SR or RR first; RFC 5506 (reduced-size RTCP,
        // a=rtcp-rsize, which the relay passes through) allows any RTCP
        // packet alone. Refuse only what is not an RTCP packet type at all.
        if !(rtcp_type::SR..=211).contains(&pt) {
            return Err(RtpError::BadRtcpFirst);
        }
        match (pt, fmt) {
            (rtcp_type::SR, _) => s.sr = s.sr.saturating_add(1),
            (rtcp_type::RR, _) => s.rr = s.rr.saturating_add(1),
            (rtcp_type::RTPFB, 1) => s.nack = s.nack.saturating_add(1),
            (rtcp_type::PSFB, 1) => s.pli = s.pli.saturating_add(1),
            (rtcp_type::PSFB, 4) => s.fir = s.fir.saturating_add(1),
            (rtcp_type::PSFB, 15) if pkt.get(off + 12..off + 16) == Some(b"REMB") => s.remb = s.remb.saturating_add(1),
            _ => {}
        }
        s.packets = s.packets.saturating_add(1);
        off += len;
    }
    Ok(s)
}

/// Most lost packets one translated NACK carries (RFC 4585 §6.2.1: each
/// FCI names one packet and a bitmask of the 16 after it).
pub const MAX_NACK_FCI: usize = 64;

/// Rewrites the generic NACKs (RFC 4585 §6.2.1) of a validated compound
/// RTCP packet `pkt`, sent by a receiver of `rw`'s rewritten stream, into
/// one NACK to the current source: its SSRC, its sequence numbers. Lost
/// packets that came from an earlier source are left out. The NACK is
/// written to `out` (at least 12 + 4 × [`MAX_NACK_FCI`] bytes) with
/// `sender` as packet sender; returns its length, or `None` when nothing
/// is left to ask for.
pub fn translate_nacks(pkt: &[u8], rw: &StreamRewriter, sender: u32, out: &mut [u8]) -> Option<usize> {
    let source = rw.source_ssrc()?;
    if out.len() < 12 + 4 * MAX_NACK_FCI {
        return None;
    }
    let mut n = 0;
    let mut off = 0;
    while off + 4 <= pkt.len() {
        let len = 4 * (usize::from(u16::from_be_bytes([pkt[off + 2], pkt[off + 3]])) + 1);
        let Some(p) = pkt.get(off..off + len) else { break };
        let is_nack = p[1] == rtcp_type::RTPFB && p[0] & 0x1f == 1 && p.len() >= 12;
        if is_nack && u32::from_be_bytes([p[8], p[9], p[10], p[11]]) == rw.ssrc() {
            for fci in p[12..].chunks_exact(4) {
                let pid = u16::from_be_bytes([fci[0], fci[1]]);
                let blp = u16::from_be_bytes([fci[2], fci[3]]);
                // Each lost packet on its own: the first one of a bitmask
                // may predate the switch while the later ones do not.
                for k in 0..17u16 {
                    if k > 0 && blp & (1 << (k - 1)) == 0 {
                        continue;
                    }
                    let Some(src_seq) = rw.source_sequence(pid.wrapping_add(k)) else {
                        continue;
                    };
                    // Fold into the previous FCI's bitmask when it fits.
                    let prev = (n > 0).then(|| 12 + 4 * (n - 1));
                    let folded = prev.is_some_and(|at| {
                        let base = u16::from_be_bytes([out[at], out[at + 1]]);
                        let d = src_seq.wrapping_sub(base);
                        if (1..=16).contains(&d) {
                            let mut m = u16::from_be_bytes([out[at + 2], out[at + 3]]);
                            m |= 1 << (d - 1);
                            out[at + 2..at + 4].copy_from_slice(&m.to_be_bytes());
                            true
                        } else {
                            d == 0
                        }
                    });
                    if !folded {
                        if n == MAX_NACK_FCI {
                            break;
                        }
                        let at = 12 + 4 * n;
                        out[at..at + 2].copy_from_slice(&src_seq.to_be_bytes());
                        out[at + 2..at + 4].copy_from_slice(&[0, 0]);
                        n += 1;
                    }
                }
            }
        }
        off += len;
    }
    if n == 0 {
        return None;
    }
    let len = 12 + 4 * n;
    out[0] = 0x81;
    out[1] = rtcp_type::RTPFB;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    out[4..8].copy_from_slice(&sender.to_be_bytes());
    out[8..12].copy_from_slice(&source.to_be_bytes());
    Some(len)
}

/// In a validated compound RTCP packet, renames the media source `given`
/// to `real` in the feedback messages (RFC 4585 §6.1 media source field;
/// RFC 5104 FIR entries carry it in their FCI).
pub fn rename_feedback_ssrc(pkt: &mut [u8], given: u32, real: u32) {
    let mut off = 0;
    while off + 12 <= pkt.len() {
        let len = 4 * (usize::from(u16::from_be_bytes([pkt[off + 2], pkt[off + 3]])) + 1);
        let end = (off + len).min(pkt.len());
        let (pt, fmt) = (pkt[off + 1], pkt[off] & 0x1f);
        if pt == rtcp_type::RTPFB || pt == rtcp_type::PSFB {
            if pkt[off + 8..off + 12] == given.to_be_bytes() {
                pkt[off + 8..off + 12].copy_from_slice(&real.to_be_bytes());
            }
            if pt == rtcp_type::PSFB && fmt == 4 {
                let mut at = off + 12;
                while at + 8 <= end {
                    if pkt[at..at + 4] == given.to_be_bytes() {
                        pkt[at..at + 4].copy_from_slice(&real.to_be_bytes());
                    }
                    at += 8;
                }
            }
        }
        off += len;
    }
}

/// Writes a new SSRC into an RTP header.
pub fn set_ssrc(pkt: &mut [u8], ssrc: u32) {
    if let Some(b) = pkt.get_mut(8..12) {
        b.copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Writes a new sequence number into an RTP header.
pub fn set_sequence(pkt: &mut [u8], seq: u16) {
    if let Some(b) = pkt.get_mut(2..4) {
        b.copy_from_slice(&seq.to_be_bytes());
    }
}

/// Writes a new timestamp into an RTP header.
pub fn set_timestamp(pkt: &mut [u8], ts: u32) {
    if let Some(b) = pkt.get_mut(4..8) {
        b.copy_from_slice(&ts.to_be_bytes());
    }
}

/// Keeps one outgoing RTP stream continuous (one SSRC, sequence numbers and
/// timestamps without jumps) while its source changes — needed when a
/// subscriber's media switches from one publisher to another (active
/// speaker) or a publisher restarts with a new SSRC.
#[derive(Debug, Clone, Copy)]
pub struct StreamRewriter {
    out_ssrc: u32,
    src_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_out_seq: u16,
    last_out_ts: u32,
    started: bool,
    /// The first sequence number sent from the current source: what came
    /// before it is another source's and cannot be asked of this one.
    first_out_seq: u16,
}

impl StreamRewriter {
    /// A rewriter that sends as `out_ssrc`.
    pub fn new(out_ssrc: u32) -> Self {
        Self {
            out_ssrc,
            src_ssrc: None,
            seq_offset: 0,
            ts_offset: 0,
            last_out_seq: 0,
            last_out_ts: 0,
            started: false,
            first_out_seq: 0,
        }
    }

    /// The SSRC of the source now being rewritten, once one has sent.
    pub fn source_ssrc(&self) -> Option<u32> {
        self.src_ssrc
    }

    /// The current source's sequence number of the packet sent as `seq`,
    /// if that packet came from the current source.
    pub fn source_sequence(&self, seq: u16) -> Option<u16> {
        if !self.started {
            return None;
        }
        let since_switch = seq.wrapping_sub(self.first_out_seq);
        let until_last = self.last_out_seq.wrapping_sub(seq);
        (since_switch < 0x8000 && until_last < 0x8000).then(|| seq.wrapping_sub(self.seq_offset))
    }

    /// The SSRC it sends as.
    pub fn ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// Rewrites the header of a validated RTP packet in place. When the
    /// source SSRC changes, sequence numbers continue from the last one sent
    /// and the timestamp moves on by `ts_step` (one packet's duration).
    pub fn rewrite(&mut self, pkt: &mut [u8], h: &RtpHeader, ts_step: u32) {
        if self.src_ssrc != Some(h.ssrc) {
            if self.started {
                self.seq_offset = self.last_out_seq.wrapping_add(1).wrapping_sub(h.sequence);
                self.ts_offset = self.last_out_ts.wrapping_add(ts_step).wrapping_sub(h.timestamp);
            } else {
                self.seq_offset = 0;
                self.ts_offset = 0;
            }
            self.src_ssrc = Some(h.ssrc);
            self.first_out_seq = h.sequence.wrapping_add(self.seq_offset);
        }
        let seq = h.sequence.wrapping_add(self.seq_offset);
        let ts = h.timestamp.wrapping_add(self.ts_offset);
        set_ssrc(pkt, self.out_ssrc);
        set_sequence(pkt, seq);
        set_timestamp(pkt, ts);
        // Only move forward: a late (reordered) packet must not pull the base back.
        if !self.started || seq.wrapping_sub(self.last_out_seq) < 0x8000 {
            self.last_out_seq = seq;
            self.last_out_ts = ts;
        }
        self.started = true;
    }
}

/// Per-stream reception statistics (RFC 3550 §6.4.1, Appendix A.1, A.8).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceptionStats {
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    started: bool,
    transit: i64,
    jitter: f64,
}

impl ReceptionStats {
    /// Records a packet: its sequence number, RTP timestamp and arrival
    /// time in the stream's clock units.
    pub fn record(&mut self, seq: u16, ts: u32, arrival: u32) {
        self.received += 1;
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles += 1;
                }
                self.max_seq = seq;
            }
        }
        let transit = i64::from(arrival) - i64::from(ts);
        if self.received > 1 {
            let d = (transit - self.transit).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = transit;
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let ext_max = u64::from(self.cycles) * 65536 + u64::from(self.max_seq);
        ext_max + 1 - u64::from(self.base_seq)
    }

    /// Packets lost (expected − received, never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in clock units.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_plain_csrc_extension_and_padding() {
        let p = rtp(7, 160, 0xdead_beef, &[1, 2, 3]);
        let h = parse_rtp(&p).unwrap();
        assert_eq!(
            (h.sequence, h.timestamp, h.ssrc, h.payload_offset, h.payload_len),
            (7, 160, 0xdead_beef, 12, 3)
        );

        // two CSRCs, one-word extension, 2 bytes of padding
        let mut p = vec![0xb2, 0x80 | 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0; 8]); // CSRCs
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // extension, length 1 word
        p.extend_from_slice(&[9, 9, 9, 0, 2]); // payload 9 9 9, padding 0 2
        let h = parse_rtp(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 96);
        assert_eq!((h.payload_offset, h.payload_len), (28, 3));
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(parse_rtp(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(parse_rtp(&[0x40; 12]), Err(RtpError::BadVersion));
        // CC=15 claims 60 bytes of CSRC
        assert_eq!(
            parse_rtp(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
            Err(RtpError::BadHeaderLength)
        );
        // extension header length 0xffff words
        let mut p = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0xff, 0xff];
        assert_eq!(parse_rtp(&p), Err(RtpError::BadHeaderLength));
        p.truncate(13);
        assert_eq!(parse_rtp(&p), Err(RtpError::BadHeaderLength));
        // padding larger than the payload, and zero padding
        let mut p = rtp(1, 1, 1, &[0, 0, 9]);
        p[0] |= 0x20;
        assert_eq!(parse_rtp(&p), Err(RtpError::BadPadding));
        let last = p.len() - 1;
        p[last] = 0;
        assert_eq!(parse_rtp(&p), Err(RtpError::BadPadding));
    }

    #[test]
    fn rtcp_compound_validation() {
        // RR with no report blocks (8 bytes) + PSFB PLI (12 bytes)
        let mut c = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
        c.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        let s = parse_rtcp(&c).unwrap();
        assert_eq!((s.rr, s.pli, s.packets), (1, 1, 2));
        // REMB
        let remb = [
            0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, 0, 0, 0, 0, 0, 0, 9,
        ];
        assert_eq!(parse_rtcp(&remb).unwrap().remb, 1);
        // a length that lies
        let mut bad = c.clone();
        bad[3] = 200;
        assert_eq!(parse_rtcp(&bad), Err(RtpError::BadRtcpLength));
        // trailing garbage that is not a whole packet
        let mut bad = c.clone();
        bad.extend_from_slice(&[0x80, 200]);
        assert_eq!(parse_rtcp(&bad), Err(RtpError::BadRtcpLength));
        // a lone BYE or APP (reduced-size RTCP, RFC 5506) is accepted
        assert!(parse_rtcp(&[0x81, 203, 0, 1, 0, 0, 0, 1]).is_ok());
        // an unknown packet type is not
        assert_eq!(parse_rtcp(&[0x80, 220, 0, 1, 0, 0, 0, 1]), Err(RtpError::BadRtcpFirst));
        let mut bad = c.clone();
        bad[9] = 199;
        assert_eq!(
            parse_rtcp(&bad),
            Err(RtpError::BadRtcpFirst),
            "every packet of the compound is checked"
        );
    }

    #[test]
    fn rewriter_keeps_the_stream_continuous_across_sources() {
        let mut rw = StreamRewriter::new(0x1111);
        let mut out = Vec::new();
        for (seq, ts, ssrc) in [
            (100u16, 1000u32, 0xa),
            (101, 1160, 0xa),
            (5000, 90000, 0xb),
            (5001, 90160, 0xb),
        ] {
            let mut p = rtp(seq, ts, ssrc, &[0]);
            let h = parse_rtp(&p).unwrap();
            rw.rewrite(&mut p, &h, 160);
            let h = parse_rtp(&p).unwrap();
            out.push((h.sequence, h.timestamp, h.ssrc));
        }
        assert_eq!(
            out,
            vec![
                (100, 1000, 0x1111),
                (101, 1160, 0x1111),
                (102, 1320, 0x1111),
                (103, 1480, 0x1111)
            ]
        );
    }

    #[test]
    fn reception_stats_count_loss_and_wrap() {
        let mut s = ReceptionStats::default();
        for seq in [65530u16, 65531, 65533, 65534, 65535, 0, 1, 3] {
            s.record(seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        assert_eq!(s.received(), 8);
        assert_eq!(s.expected(), 10);
        assert_eq!(s.lost(), 2);
        assert!(s.jitter() < 1.0);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_rtp(&data);
            let _ = parse_rtcp(&data);
        }
    }

    #[test]
    fn nacks_of_a_switched_stream_go_to_the_current_source_in_its_numbers() {
        let mut rw = StreamRewriter::new(0xabc);
        let mut out = [0u8; 12 + 4 * MAX_NACK_FCI];
        let nack = |fcis: &[(u16, u16)]| {
            let mut p = vec![0x81, 205, 0, (2 + fcis.len()) as u8];
            p.extend_from_slice(&9u32.to_be_bytes());
            p.extend_from_slice(&0xabcu32.to_be_bytes());
            for (pid, blp) in fcis {
                p.extend_from_slice(&pid.to_be_bytes());
                p.extend_from_slice(&blp.to_be_bytes());
            }
            p
        };
        assert_eq!(
            translate_nacks(&nack(&[(1, 0)]), &rw, 7, &mut out),
            None,
            "nothing sent yet"
        );
        // Source A: its 100..=109 go out as 100..=109.
        for seq in 100..110 {
            let mut p = rtp(seq, 0, 0xa, &[0; 4]);
            let h = parse_rtp(&p).unwrap();
            rw.rewrite(&mut p, &h, 3000);
        }
        // Switch to B: its 5000.. go out as 110..
        for seq in 5000..5010 {
            let mut p = rtp(seq, 0, 0xb, &[0; 4]);
            let h = parse_rtp(&p).unwrap();
            rw.rewrite(&mut p, &h, 3000);
        }
        // Lost: 108 (A's), 111 and 113 (B's 5001, 5003), and 200 (never sent).
        let n = translate_nacks(&nack(&[(108, 0b10100)]), &rw, 7, &mut out).unwrap();
        assert_eq!(n, 16);
        assert_eq!(&out[..4], &[0x81, 205, 0, 3]);
        assert_eq!(u32::from_be_bytes(out[4..8].try_into().unwrap()), 7);
        assert_eq!(
            u32::from_be_bytes(out[8..12].try_into().unwrap()),
            0xb,
            "the current source"
        );
        assert_eq!(u16::from_be_bytes([out[12], out[13]]), 5001);
        assert_eq!(
            u16::from_be_bytes([out[14], out[15]]),
            0b10,
            "5003 folded into 5001's mask"
        );
        assert_eq!(translate_nacks(&nack(&[(200, 0)]), &rw, 7, &mut out), None);
        assert_eq!(
            translate_nacks(&nack(&[(105, 0)]), &rw, 7, &mut out),
            None,
            "A's packet"
        );
        // A NACK about another SSRC is not ours to translate.
        let mut other = nack(&[(111, 0)]);
        other[8..12].copy_from_slice(&0x1234u32.to_be_bytes());
        assert_eq!(translate_nacks(&other, &rw, 7, &mut out), None);
    }

    #[test]
    fn feedback_media_ssrc_is_renamed_in_pli_nack_and_fir() {
        let mut pkt = Vec::new();
        // RR (untouched), PLI and NACK about 5, FIR with an entry for 5 and one for 6.
        pkt.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 5]);
        pkt.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 5]);
        pkt.extend_from_slice(&[0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 7, 0, 0]);
        pkt.extend_from_slice(&[0x84, 206, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0]);
        pkt.extend_from_slice(&[0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 6, 2, 0, 0, 0]);
        assert!(parse_rtcp(&pkt).is_ok());
        rename_feedback_ssrc(&mut pkt, 5, 9);
        assert_eq!(&pkt[4..8], &[0, 0, 0, 5], "the RR's sender is not a media source");
        assert_eq!(&pkt[16..20], &[0, 0, 0, 9]);
        assert_eq!(&pkt[28..32], &[0, 0, 0, 9]);
        assert_eq!(&pkt[48..52], &[0, 0, 0, 9]);
        assert_eq!(&pkt[56..60], &[0, 0, 0, 6]);
    }

    #[test]
    fn payload_map_filters_and_renumbers() {
        let mut m = PayloadMap::new();
        assert!(m.is_empty());
        assert!(m.insert(96, 97));
        assert!(m.insert(102, 102));
        assert_eq!(m.get(96), Some(97));
        assert_eq!(m.get(102), Some(102));
        assert_eq!(m.get(111), None);
        // Re-mapping replaces, does not grow.
        assert!(m.insert(96, 100));
        assert_eq!(m.get(96), Some(100));
        assert!(!m.insert(200, 1), "not a 7-bit payload type");
        let mut full = PayloadMap::identity(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(!full.insert(9, 9), "a full map refuses more");
        assert_eq!(full.get(9), None);
        assert_eq!(full.get(8), Some(8));
    }
}

/// Most payload types one [`PayloadMap`] holds.
pub const PAYLOAD_MAP_LEN: usize = 8;

/// Which RTP payload types a media subscription carries, and what each
/// becomes on the way out (the receiver may have negotiated another number
/// for the same codec). Fixed size, so the forwarding path never allocates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadMap {
    pairs: [(u8, u8); PAYLOAD_MAP_LEN],
    len: u8,
}

impl PayloadMap {
    /// An empty map: nothing passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `from → to` (7-bit payload types). A map that is full, or a
    /// number above 127, leaves the map as it was and returns `false`.
    pub fn insert(&mut self, from: u8, to: u8) -> bool {
        if from > 127 || to > 127 {
            return false;
        }
        if let Some(p) = self.pairs[..usize::from(self.len)].iter_mut().find(|p| p.0 == from) {
            p.1 = to;
            return true;
        }
        if usize::from(self.len) == PAYLOAD_MAP_LEN {
            return false;
        }
        self.pairs[usize::from(self.len)] = (from, to);
        self.len += 1;
        true
    }

    /// The same payload types passed through unchanged.
    pub fn identity(pts: &[u8]) -> Self {
        let mut m = Self::new();
        for &pt in pts {
            m.insert(pt, pt);
        }
        m
    }

    /// What `pt` becomes, if it passes.
    pub fn get(&self, pt: u8) -> Option<u8> {
        self.pairs[..usize::from(self.len)]
            .iter()
            .find(|p| p.0 == pt)
            .map(|p| p.1)
    }

    /// No payload type passes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
