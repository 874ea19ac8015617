//! Entry points for the fuzz targets: each target is a one-liner calling one
//! of these. Not a stable API.
//!
//! Every function must return normally for every input: a panic is a bug.

use std::time::{Duration, Instant};

use crate::codec::{AudioDecoder, CodecError, CodecKind};
use crate::dtmf::DtmfDetector;
use crate::inbound::{InboundAudio, InboundConfig};
use crate::jitter::{JitterBuffer, JitterConfig, Popped};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Audio payload type used by the drivers.
const PT: u8 = 96;
/// Telephone-event payload type used by the drivers.
const TE: u8 = 101;

/// Drives an [`InboundAudio`] (jitter buffer, decoder, DTMF) with packets
/// carved from `data`, pulling a frame every 20 ms of simulated time.
///
/// Layout: byte 0 picks the clock (even: 48 kHz, odd: 8 kHz) and the jitter
/// buffer size; then records of `flags, seq (2), timestamp (4), advance ms,
/// length` followed by `length` payload bytes. `flags` bit 7 is the marker;
/// bits 0–1 pick the payload type (audio, audio, telephone event, other).
pub fn rtp_to_pcm(data: &[u8]) {
    let Some((&config_byte, mut rest)) = data.split_first() else {
        return;
    };
    let decoder = if config_byte & 1 == 0 {
        LinearPcm::new_48k()
    } else {
        LinearPcm::new_8k()
    };
    let mut config = InboundConfig::new(PT);
    config.telephone_event_payload_type = Some(TE);
    config.jitter.max_packets = usize::from(config_byte >> 1).max(2);
    let mut inbound = InboundAudio::new(config, Box::new(decoder));
    let t0 = Instant::now();
    let mut now = t0;
    let mut next_pull = t0;
    let mut frame = [0i16; FRAME_SAMPLES];
    while let Some((header, tail)) = rest.split_first_chunk::<9>() {
        let [flags, s0, s1, t0b, t1, t2, t3, advance, len] = *header;
        let len = usize::from(len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(advance));
        while next_pull <= now {
            inbound.pull(next_pull, &mut frame);
            next_pull += Duration::from_millis(20);
        }
        let payload_type = match flags & 3 {
            0 | 1 => PT,
            2 => TE,
            _ => flags >> 2,
        };
        inbound.push_rtp(
            u16::from_be_bytes([s0, s1]),
            u32::from_be_bytes([t0b, t1, t2, t3]),
            flags & 0x80 != 0,
            payload_type,
            payload,
            now,
        );
        while inbound.poll_dtmf().is_some() {}
    }
    for _ in 0..50 {
        inbound.pull(next_pull, &mut frame);
        next_pull += Duration::from_millis(20);
    }
    while inbound.poll_dtmf().is_some() {}
}

/// Drives a [`JitterBuffer`] alone: records of `op, seq (2), timestamp (4),
/// length` with `length` payload bytes; `op` bit 7 is the marker, bit 6 a
/// placeholder instead of a packet, bits 0–5 the milliseconds to advance,
/// after which the buffer is popped until `Nothing`.
pub fn jitter(data: &[u8]) {
    let mut jb = JitterBuffer::new(JitterConfig {
        max_packets: 16,
        max_payload: 64,
        ..JitterConfig::new(8000)
    });
    let start = Instant::now();
    let mut now = start;
    let mut rest = data;
    while let Some((header, tail)) = rest.split_first_chunk::<8>() {
        let [op, s0, s1, a, b, c, d, len] = *header;
        let len = usize::from(len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let seq = u16::from_be_bytes([s0, s1]);
        if op & 0x40 != 0 {
            jb.push_placeholder(seq);
        } else {
            jb.push(seq, u32::from_be_bytes([a, b, c, d]), op & 0x80 != 0, payload, now);
        }
        now += Duration::from_millis(u64::from(op & 0x3F));
        for _ in 0..1000 {
            match jb.pop(now) {
                Popped::Packet(p) => {
                    let duration = u32::try_from(p.payload.len()).unwrap_or(0) * 10;
                    jb.set_packet_duration(duration);
                }
                Popped::Lost { .. } => {}
                Popped::Nothing => break,
            }
        }
        debug_assert!(jb.len() <= jb.config().max_packets);
    }
}

/// Feeds RFC 4733 payloads carved from `data` to a [`DtmfDetector`]:
/// records of `timestamp (4), advance ms, length` and `length` bytes.
pub fn dtmf(data: &[u8]) {
    let mut detector = DtmfDetector::new(8000);
    let mut now = Instant::now();
    let mut rest = data;
    while let Some((header, tail)) = rest.split_first_chunk::<6>() {
        let [a, b, c, d, advance, len] = *header;
        let len = usize::from(len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(u64::from(advance) * 10);
        detector.push(u32::from_be_bytes([a, b, c, d]), payload, now);
        while detector.poll(now).is_some() {}
    }
}

/// A stand-in decoder for tests and fuzzing: 16-bit big-endian linear PCM
/// (RFC 3551 §4.5.11 L16, mono), repeated `factor` times per sample to reach
/// 48 kHz. At 48 kHz it claims Opus's RTP clock, at 8 kHz PCMU's: the kind
/// only tells the jitter buffer the clock rate. Concealment repeats the last
/// sample, halving it at each call.
#[derive(Debug, Clone)]
pub(crate) struct LinearPcm {
    kind: CodecKind,
    factor: usize,
    last: i16,
}

impl LinearPcm {
    /// 48 kHz samples on a 48 kHz RTP clock.
    pub(crate) fn new_48k() -> Self {
        Self {
            kind: CodecKind::Opus { channels: 1 },
            factor: 1,
            last: 0,
        }
    }

    /// 8 kHz samples on an 8 kHz RTP clock, each repeated six times.
    pub(crate) fn new_8k() -> Self {
        Self {
            kind: CodecKind::Pcmu,
            factor: (SAMPLE_RATE / 8000) as usize,
            last: 0,
        }
    }
}

impl AudioDecoder for LinearPcm {
    fn kind(&self) -> CodecKind {
        self.kind
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let Some(n) = self.samples_in(payload) else {
            return Err(CodecError::InvalidPayload {
                codec: "L16",
                reason: String::from("odd length"),
            });
        };
        if n > out.len() {
            return Err(CodecError::TooLong { max_ms: 120 });
        }
        for (pair, chunk) in payload.chunks_exact(2).zip(out.chunks_exact_mut(self.factor)) {
            let sample = i16::from_be_bytes([pair[0], pair[1]]);
            chunk.fill(sample);
            self.last = sample;
        }
        Ok(n)
    }

    fn conceal(&mut self, samples: usize, out: &mut [i16]) -> usize {
        let n = samples.min(out.len());
        self.last /= 2;
        out[..n].fill(self.last);
        n
    }

    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        payload.len().is_multiple_of(2).then(|| payload.len() / 2 * self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes.
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn drivers_survive_random_input() {
        for seed in 0..200 {
            let data = bytes(seed, 2000);
            rtp_to_pcm(&data);
            jitter(&data);
            dtmf(&data);
        }
        rtp_to_pcm(&[]);
        jitter(&[]);
        dtmf(&[]);
    }

    #[test]
    fn drivers_survive_plausible_streams() {
        // A well-formed stream with random perturbations, so the drivers
        // reach deep states (playout, loss, resync), not just parse errors.
        for seed in 0..50u64 {
            let noise = bytes(seed, 4000);
            let mut data = vec![(seed % 256) as u8 & 0xFE];
            let (mut seq, mut ts) = (1000u16, 5000u32);
            for k in 0..300 {
                let r = noise[k];
                let payload_type = if r < 10 {
                    2
                } else if r < 15 {
                    3
                } else {
                    0
                };
                let flags = payload_type | if r.is_multiple_of(50) { 0x80 } else { 0 };
                let s = if r > 250 { seq.wrapping_add(u16::from(r)) } else { seq };
                data.push(flags);
                data.extend_from_slice(&s.to_be_bytes());
                data.extend_from_slice(&ts.to_be_bytes());
                data.push(if r > 240 { r } else { 20 });
                data.push(if r == 7 { 3 } else { 40 });
                data.extend((0..40).map(|i| noise[(k + i) % 4000]));
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(960);
            }
            rtp_to_pcm(&data);
        }
    }
}
