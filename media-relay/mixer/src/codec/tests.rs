//! The codecs through the public interface, at 48 kHz.

use super::*;
use crate::test_signal::{goertzel48 as goertzel, power};
use crate::{Frame, FRAME_SAMPLES};
use std::f64::consts::PI;

fn tone(freq: f64, dbfs: f64, frames: usize) -> Vec<Frame> {
    let amp = 32_767.0 * 10f64.powf(dbfs / 20.0);
    (0..frames)
        .map(|k| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (i, s) in f.iter_mut().enumerate() {
                let t = (k * FRAME_SAMPLES + i) as f64 / 48_000.0;
                *s = (amp * (2.0 * PI * freq * t).sin()).round() as i16;
            }
            f
        })
        .collect()
}

/// Encodes and decodes every frame; returns the payload sizes and the
/// decoded audio.
fn round_trip(kind: CodecKind, input: &[Frame]) -> (Vec<usize>, Vec<i16>) {
    let mut enc = encoder(kind, EncoderOptions::default()).expect("encoder");
    let mut dec = decoder(kind).expect("decoder");
    assert_eq!(enc.kind(), kind);
    assert_eq!(dec.kind(), kind);
    let mut payload = [0u8; 1500];
    let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
    let mut sizes = Vec::new();
    let mut pcm = Vec::new();
    for f in input {
        let len = enc.encode(f, &mut payload).expect("encode");
        sizes.push(len);
        assert_eq!(dec.samples_in(&payload[..len]), Some(FRAME_SAMPLES));
        let n = dec.decode(&payload[..len], &mut out).expect("decode");
        assert_eq!(n, FRAME_SAMPLES);
        pcm.extend_from_slice(&out[..n]);
    }
    (sizes, pcm)
}

/// The best delay (0…`max_delay`) and the SNR there, over the second half.
fn snr(input: &[i16], output: &[i16], max_delay: usize) -> (usize, f64) {
    let n = input.len().min(output.len());
    (0..=max_delay)
        .map(|d| {
            let (mut s, mut e) = (0.0, 0.0);
            for i in n / 2..n {
                let x = f64::from(input[i - d]);
                s += x * x;
                e += (f64::from(output[i]) - x).powi(2);
            }
            (d, 10.0 * (s / e.max(1e-9)).log10())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NEG_INFINITY))
}

fn flat(frames: &[Frame]) -> Vec<i16> {
    frames.iter().flat_map(|f| f.iter().copied()).collect()
}

#[test]
fn waveform_codecs_keep_a_1_khz_tone() {
    let input = tone(1000.0, -10.0, 25);
    for (kind, min_snr) in [
        (CodecKind::Pcmu, 30.0),
        (CodecKind::Pcma, 30.0),
        (CodecKind::G722, 25.0),
    ] {
        let (sizes, pcm) = round_trip(kind, &input);
        assert!(sizes.iter().all(|&s| s == 160), "{kind}: {sizes:?}");
        let tail = &pcm[FRAME_SAMPLES * 5..];
        let share = goertzel(tail, 1000.0) / power(tail);
        assert!(share > 0.99, "{kind}: 1 kHz holds {share:.4}");
        let (delay, snr) = snr(&flat(&input), &pcm, 1200);
        assert!(snr > min_snr, "{kind}: SNR {snr:.1} dB at delay {delay}");
    }
}

#[test]
fn g722_keeps_5_khz_and_g711_band_limits_it() {
    let input = tone(5000.0, -10.0, 25);
    let (_, pcm) = round_trip(CodecKind::G722, &input);
    let tail = &pcm[FRAME_SAMPLES * 5..];
    let level = 10.0 * (power(tail) / power(&flat(&input)[FRAME_SAMPLES * 5..])).log10();
    assert!(level.abs() < 1.5, "G.722 5 kHz level {level:.2} dB");
    assert!(goertzel(tail, 5000.0) / power(tail) > 0.9);

    // 5 kHz is above G.711's 4 kHz band: the encoder's decimator removes it
    // instead of folding it to 3 kHz.
    let (_, pcm) = round_trip(CodecKind::Pcmu, &input);
    let tail = &pcm[FRAME_SAMPLES * 5..];
    let rel = 10.0 * (power(tail) / power(&flat(&input))).log10();
    assert!(rel < -40.0, "PCMU passes 5 kHz at {rel:.1} dB");
}

#[test]
fn opus_keeps_a_1_khz_tone() {
    for channels in [1, 2] {
        let kind = CodecKind::Opus { channels };
        let (_, pcm) = round_trip(kind, &tone(1000.0, -10.0, 25));
        let tail = &pcm[FRAME_SAMPLES * 5..];
        assert!(goertzel(tail, 1000.0) / power(tail) > 0.95, "{kind:?}");
    }
}

#[test]
fn silence_is_silence() {
    let input = vec![[0i16; FRAME_SAMPLES]; 10];
    for kind in [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::G722,
        CodecKind::Opus { channels: 1 },
    ] {
        let (_, pcm) = round_trip(kind, &input);
        let peak = pcm.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0);
        // A-law has no zero level (±8); G.722's idle noise is a few LSBs.
        assert!(peak <= 16, "{kind}: peak {peak}");
    }
}

#[test]
fn waveform_conceal_repeats_then_fades_to_silence() {
    for kind in [CodecKind::Pcmu, CodecKind::G722] {
        let mut enc = encoder(kind, EncoderOptions::default()).expect("encoder");
        let mut dec = decoder(kind).expect("decoder");
        let mut payload = [0u8; 160];
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        for f in tone(250.0, -10.0, 5) {
            let len = enc.encode(&f, &mut payload).expect("encode");
            dec.decode(&payload[..len], &mut out).expect("decode");
        }
        let before = power(&out[..FRAME_SAMPLES]);
        let levels: Vec<f64> = (0..5)
            .map(|_| {
                assert_eq!(dec.conceal(FRAME_SAMPLES, &mut out), FRAME_SAMPLES);
                power(&out[..FRAME_SAMPLES])
            })
            .collect();
        // 0–20 ms: about the same level; then fading; 60 ms on: silent
        // except the interpolator's tail at the start of the fourth frame.
        assert!(levels[0] > 0.8 * before, "{kind}: {levels:?} vs {before}");
        assert!(levels[1] < levels[0] && levels[2] < levels[1], "{kind}: {levels:?}");
        assert!(
            out[..FRAME_SAMPLES].iter().all(|&s| s == 0),
            "{kind}: not silent at 80 ms"
        );
        // Concealment rounds down to whole codec samples.
        assert_eq!(
            dec.conceal(100, &mut out),
            if kind == CodecKind::G722 { 99 } else { 96 }
        );
        assert_eq!(dec.conceal(960, &mut out[..50]), 48);
        // A good packet ends the loss.
        let len = enc.encode(&tone(250.0, -10.0, 1)[0], &mut payload).expect("encode");
        assert_eq!(dec.decode(&payload[..len], &mut out), Ok(FRAME_SAMPLES));
    }
}

#[test]
fn payload_lengths_are_checked() {
    let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
    for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722] {
        let mut dec = decoder(kind).expect("decoder");
        // 120 ms is the most.
        assert_eq!(dec.decode(&[0xD5; 960], &mut out), Ok(MAX_PAYLOAD_SAMPLES_48K));
        assert_eq!(
            dec.decode(&[0xD5; 961], &mut out),
            Err(CodecError::TooLong { max_ms: 120 })
        );
        assert_eq!(
            dec.decode(&[0xD5; 160], &mut out[..959]),
            Err(CodecError::BufferTooSmall)
        );
        assert_eq!(dec.decode(&[], &mut out), Ok(0));
        assert_eq!(dec.decode(&[0x55; 7], &mut out), Ok(42));
        assert_eq!(dec.samples_in(&[0; 80]), Some(480));

        let mut enc = encoder(kind, EncoderOptions::default()).expect("encoder");
        let mut small = [0u8; 159];
        assert_eq!(
            enc.encode(&[0; FRAME_SAMPLES], &mut small),
            Err(CodecError::BufferTooSmall)
        );
    }
    let mut dec = decoder(CodecKind::Opus { channels: 2 }).expect("decoder");
    assert!(matches!(
        dec.decode(&[0x03, 0x00], &mut out),
        Err(CodecError::InvalidPayload { .. })
    ));
}

#[test]
fn encoder_options_default_and_opus_channel_check() {
    let opts = EncoderOptions::default();
    assert_eq!(opts.opus_complexity, 5);
    assert_eq!(opts.opus_bitrate, None);
    assert!(opts.opus_fec);
    assert!(encoder(CodecKind::Opus { channels: 3 }, opts).is_err());
    // The decoder takes any channel count: it decodes what the packet says.
    assert!(decoder(CodecKind::Opus { channels: 2 }).is_ok());
}

#[test]
fn fuzzing_entry_point_survives_edge_cases() {
    fuzzing::decode(&[]);
    for selector in 0..=255u8 {
        fuzzing::decode(&[selector]);
        fuzzing::decode(&[selector, 0xFF, 0x00, 0x03]);
    }
    let mut big = vec![4u8; 2000];
    fuzzing::decode(&big);
    big[0] = 2;
    fuzzing::decode(&big);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn fuzzing_decode_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400)) {
        fuzzing::decode(&data);
    }
}
