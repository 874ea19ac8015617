//! Micro-benchmark of the mixer's codecs: wall-clock µs per 20 ms frame (960
//! samples at 48 kHz, mono) for encoding and decoding, resampling included,
//! on one core. The anchor is PCMU (the cheapest codec, table look-ups plus
//! the resamplers): every row also prints its cost relative to it, so runs on
//! different machines compare by ratio.
//!
//! Run: `cargo bench -p confgate-mixer --bench codecs`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use confgate_mixer::codec::{decoder, encoder, CodecKind, EncoderOptions, MAX_PAYLOAD_SAMPLES_48K};
use confgate_mixer::{Frame, FRAME_SAMPLES};

/// Distinct frames of the test signal (10 s).
const FRAMES: usize = 500;
/// Each measurement runs for at least this long.
const MIN_TIME: Duration = Duration::from_millis(1500);

/// A speech-like test signal: a 140 Hz glottal-ish harmonic series with two
/// moving formant-like peaks, syllable-rate amplitude modulation and a little
/// noise (a pure tone would flatter the adaptive codecs).
fn signal() -> Vec<Frame> {
    let mut seed = 0x2545_f491_u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        f64::from(seed as i32) / f64::from(i32::MAX)
    };
    (0..FRAMES)
        .map(|k| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let t = (k * FRAME_SAMPLES + n) as f64 / 48_000.0;
                let f0 = 140.0 + 20.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
                let f1 = 700.0 + 300.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
                let f2 = 2200.0 + 600.0 * (2.0 * std::f64::consts::PI * 0.9 * t).sin();
                let mut v = 0.0;
                for h in 1..=30 {
                    let fh = f0 * f64::from(h);
                    let g = 1.0 / (1.0 + ((fh - f1) / 150.0).powi(2)) + 0.5 / (1.0 + ((fh - f2) / 250.0).powi(2));
                    v += g / f64::from(h).sqrt() * (2.0 * std::f64::consts::PI * fh * t).sin();
                }
                let envelope = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                *s = (6000.0 * envelope * v + 200.0 * noise()).clamp(-32_768.0, 32_767.0) as i16;
            }
            f
        })
        .collect()
}

/// µs per call of `f`, run over the frames until [`MIN_TIME`] has passed.
fn per_frame(mut f: impl FnMut(usize)) -> f64 {
    // Warm-up: one pass.
    for i in 0..FRAMES {
        f(i);
    }
    let start = Instant::now();
    let mut calls = 0usize;
    while start.elapsed() < MIN_TIME {
        for i in 0..FRAMES {
            f(i);
        }
        calls += FRAMES;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

struct Row {
    name: &'static str,
    bytes: f64,
    encode_us: f64,
    decode_us: f64,
}

fn measure(name: &'static str, kind: CodecKind, opts: EncoderOptions, frames: &[Frame]) -> Row {
    // Encode.
    let mut enc = encoder(kind, opts).expect("encoder");
    let mut payload = [0u8; 1500];
    let encode_us = per_frame(|i| {
        let len = enc.encode(black_box(&frames[i]), &mut payload).expect("encode");
        black_box(&payload[..len]);
    });

    // Decode the payloads of one fresh encoding pass (the decoder then sees
    // a consistent stream, as in a call).
    let mut enc = encoder(kind, opts).expect("encoder");
    let payloads: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let len = enc.encode(f, &mut payload).expect("encode");
            payload[..len].to_vec()
        })
        .collect();
    let bytes = payloads.iter().map(Vec::len).sum::<usize>() as f64 / payloads.len() as f64;
    let mut dec = decoder(kind).expect("decoder");
    let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
    let decode_us = per_frame(|i| {
        let n = dec.decode(black_box(&payloads[i]), &mut out).expect("decode");
        black_box(&out[..n]);
    });
    Row {
        name,
        bytes,
        encode_us,
        decode_us,
    }
}

fn main() {
    let frames = signal();
    let opus = |complexity: u8| EncoderOptions {
        opus_complexity: complexity,
        opus_bitrate: Some(32_000),
        opus_fec: true,
    };
    let defaults = EncoderOptions::default();
    let rows = [
        measure("PCMU (anchor)", CodecKind::Pcmu, defaults, &frames),
        measure("PCMA", CodecKind::Pcma, defaults, &frames),
        measure("G.722", CodecKind::G722, defaults, &frames),
        measure("Opus mono 32k c5", CodecKind::Opus { channels: 1 }, opus(5), &frames),
        measure("Opus mono 32k c0", CodecKind::Opus { channels: 1 }, opus(0), &frames),
        measure("Opus mono 32k c10", CodecKind::Opus { channels: 1 }, opus(10), &frames),
    ];
    let anchor_enc = rows[0].encode_us;
    let anchor_dec = rows[0].decode_us;
    println!(
        "codec                  bytes/frame  encode µs/frame (×PCMU)  decode µs/frame (×PCMU)  legs/core (enc+dec)"
    );
    for r in &rows {
        println!(
            "{:<22} {:>11.1}  {:>15.2} ({:>5.1}×)  {:>15.2} ({:>5.1}×)  {:>19.0}",
            r.name,
            r.bytes,
            r.encode_us,
            r.encode_us / anchor_enc,
            r.decode_us,
            r.decode_us / anchor_dec,
            20_000.0 / (r.encode_us + r.decode_us),
        );
    }
}
