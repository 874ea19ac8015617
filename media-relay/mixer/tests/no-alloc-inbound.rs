//! The inbound path allocates nothing per packet in steady state: 2000
//! packets through `InboundAudio` (jitter buffer, decoder, PCM FIFO, DTMF),
//! with reordering, duplicates, losses and telephone events, a frame pulled
//! every 20 ms, plus the VAD and the speaker switcher, all counted by a global
//! allocator that wraps the system one.
//!
//! Through `common`, this file replaces the global allocator, so it is its
//! own test binary and holds this one test.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use confgate_mixer::codec::{AudioDecoder, CodecError, CodecKind, MAX_PAYLOAD_SAMPLES_48K};
use confgate_mixer::inbound::{FrameState, InboundAudio, InboundConfig};
use confgate_mixer::vad::{SpeakerSwitcher, Vad};
use confgate_mixer::{InputId, FRAME_SAMPLES};

mod common;
use common::count;

/// 16-bit big-endian PCM at 48 kHz (the real codecs are another crate
/// module's business); concealment repeats the last sample, fading.
struct L16 {
    last: i16,
}

impl AudioDecoder for L16 {
    fn kind(&self) -> CodecKind {
        // Any codec on a 48 kHz RTP clock.
        CodecKind::Opus { channels: 1 }
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = payload.len() / 2;
        if n > out.len() {
            return Err(CodecError::BufferTooSmall);
        }
        for (pair, o) in payload.chunks_exact(2).zip(out.iter_mut()) {
            *o = i16::from_be_bytes([pair[0], pair[1]]);
            self.last = *o;
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
        Some(payload.len() / 2)
    }
}

const AUDIO: u8 = 111;
const EVENT: u8 = 101;
const MS: Duration = Duration::from_millis(1);

/// The packets of one cycle (20 ms): normally one audio packet; some arrive
/// swapped with the next, some twice, some never; every 100th cycle a
/// telephone event replaces the audio.
fn cycle(
    inbound: &mut InboundAudio,
    payloads: &[Vec<u8>],
    t0: Instant,
    n: u32,
    frame: &mut [i16; FRAME_SAMPLES],
) -> u64 {
    let now = t0 + n * 20 * MS;
    let mut checksum = 0u64;
    let send = |inbound: &mut InboundAudio, k: u32| {
        let payload = &payloads[k as usize % payloads.len()];
        if k % 100 == 50 {
            let ends = [5u8, 0x8A, 0x03, 0x20];
            inbound.push_rtp(k as u16, k * 960, true, EVENT, &ends, now);
        } else {
            inbound.push_rtp(k as u16, k * 960, false, AUDIO, payload, now);
        }
    };
    match n % 10 {
        // Lost.
        3 => {}
        // Swapped: 5 arrives with 6 (6 first).
        5 => {}
        6 => {
            send(inbound, n);
            send(inbound, n - 1);
        }
        // Duplicated.
        8 => {
            send(inbound, n);
            send(inbound, n);
        }
        _ => send(inbound, n),
    }
    let state = inbound.pull(now + MS, frame);
    checksum += match state {
        FrameState::Audio => 1,
        FrameState::Concealed => 2,
        FrameState::Silence => 3,
    };
    while let Some(event) = inbound.poll_dtmf() {
        checksum += u64::from(event.duration_ms);
    }
    checksum + u64::from(frame[n as usize % FRAME_SAMPLES].unsigned_abs())
}

#[test]
fn two_thousand_packets_through_the_inbound_path_allocate_nothing() {
    let payloads: Vec<Vec<u8>> = (0..7)
        .map(|k| {
            (0..FRAME_SAMPLES)
                .flat_map(|n| {
                    let phase = 2.0 * std::f64::consts::PI * 300.0 * (k + 1) as f64 * n as f64 / 48e3;
                    ((phase.sin() * 3000.0) as i16).to_be_bytes()
                })
                .collect()
        })
        .collect();
    let mut config = InboundConfig::new(AUDIO);
    config.telephone_event_payload_type = Some(EVENT);
    config.jitter.max_payload = 2 * MAX_PAYLOAD_SAMPLES_48K;
    let mut inbound = InboundAudio::new(config, Box::new(L16 { last: 0 }));
    let mut vad = Vad::default();
    let mut switcher = SpeakerSwitcher::default();
    let mut frame = [0i16; FRAME_SAMPLES];
    let t0 = Instant::now();

    // The counter works: a deliberate allocation is seen.
    let (allocs, _, ()) = count(|| drop(black_box(vec![0u8; 64])));
    assert!(allocs >= 1, "the counting allocator is not active");

    // Warm-up.
    let mut checksum = 0;
    for n in 0..100 {
        checksum += cycle(&mut inbound, &payloads, t0, n, &mut frame);
    }

    let (allocs, _, sum) = count(|| {
        let mut sum = 0u64;
        for n in 100..2100 {
            sum += cycle(&mut inbound, &payloads, t0, black_box(n), &mut frame);
            let speaking = vad.update(&frame);
            let inputs = [
                (InputId(1), speaking, vad.level_dbfs()),
                (InputId(2), n % 7 == 0, -30.0),
            ];
            if let Some(id) = switcher.update(t0 + n * 20 * MS, &inputs) {
                sum += id.0;
            }
        }
        sum
    });
    checksum += black_box(sum);
    assert_eq!(allocs, 0, "allocations on the inbound path");

    // The loop did real work.
    let stats = inbound.stats();
    assert!(stats.lost > 100, "{stats:?}");
    assert!(stats.duplicates > 100, "{stats:?}");
    assert!(stats.concealed_frames > 100, "{stats:?}");
    assert!(stats.dtmf_digits >= 20, "{stats:?}");
    assert!(stats.decoded > 1500, "{stats:?}");
    assert_ne!(checksum, 0);
}
