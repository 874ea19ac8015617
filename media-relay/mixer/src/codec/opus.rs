//! Opus (RFC 6716, RTP payload format RFC 7587) through libopus, by way of
//! the `opus` crate (which owns the FFI and its `unsafe`).
//!
//! * The **encoder** runs at 48 kHz, mono or stereo as
//!   [`CodecKind::Opus`]`{ channels }` says (a stereo encoder gets the mono
//!   frame on both channels), with `OPUS_APPLICATION_VOIP`, the configured
//!   complexity (default 5) and bitrate (default: libopus's choice), and
//!   in-band FEC (LBRR) on by default. libopus only spends bits on FEC when
//!   it expects loss, so with FEC on the encoder is told to expect
//!   [`FEC_EXPECTED_LOSS_PERCENT`] % loss.
//! * The **decoder** runs a mono libopus decoder at 48 kHz, whatever
//!   [`CodecKind::Opus`]`{ channels }` says: the mixer works in mono, and a
//!   mono libopus decoder takes stereo packets too and folds them to mono
//!   itself (the mean of the two channels: CELT averages them, SILK outputs
//!   its mid channel), without synthesising a second channel. It takes
//!   every packet duration Opus has, 2.5 to 120 ms
//!   ([`AudioDecoder::samples_in`] reads the TOC byte and frame count:
//!   `opus_packet_get_nb_samples`).
//! * **DTX**: during discontinuous transmission a sender emits 1–2 byte
//!   packets (a TOC byte, maybe a frame count, no frame data). libopus
//!   decodes a frame of at most 1 byte as a lost frame, so these decode to
//!   comfort noise fading to silence, not to an error.
//! * **Concealment** is libopus's PLC: decoding with no packet
//!   (`opus_decode(NULL)`), in steps of 2.5 ms.
//!
//! The buffers are allocated by the constructors. libopus itself allocates
//! only when an encoder or decoder is created (its per-call scratch memory
//! lives on the stack); `tests/codec-no-alloc.rs` measures both the Rust
//! allocator and libc `malloc`.

use ::opus as libopus;

use super::{AudioDecoder, AudioEncoder, CodecError, CodecKind, EncoderOptions, MAX_PAYLOAD_SAMPLES_48K};
use crate::{Frame, FRAME_SAMPLES};

/// Opus's RTP clock and our decoding rate (RFC 7587 §4.1).
const RATE: u32 = 48_000;

/// Packet loss libopus is told to expect when in-band FEC is on, in percent.
pub(crate) const FEC_EXPECTED_LOSS_PERCENT: i32 = 10;

/// The smallest unit of Opus audio, 2.5 ms at 48 kHz.
const MIN_FRAME: usize = 120;

fn library_error(e: &libopus::Error) -> CodecError {
    match e.code() {
        libopus::ErrorCode::BufferTooSmall => CodecError::BufferTooSmall,
        _ => CodecError::Library(e.to_string()),
    }
}

fn invalid(reason: &str) -> CodecError {
    CodecError::InvalidPayload {
        codec: "opus",
        reason: reason.to_owned(),
    }
}

/// Opus decoder to 48 kHz mono.
pub(crate) struct OpusDecoder {
    kind: CodecKind,
    /// A mono libopus decoder: it writes straight into the caller's buffer.
    decoder: libopus::Decoder,
}

impl OpusDecoder {
    /// A decoder; `kind` is reported by [`AudioDecoder::kind`] (the decoder
    /// takes mono and stereo payloads whatever it says).
    pub(crate) fn new(kind: CodecKind) -> Result<Self, CodecError> {
        let decoder = libopus::Decoder::new(RATE, libopus::Channels::Mono).map_err(|e| library_error(&e))?;
        Ok(Self { kind, decoder })
    }
}

impl AudioDecoder for OpusDecoder {
    fn kind(&self) -> CodecKind {
        self.kind
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(invalid("empty payload"));
        }
        let n = libopus::packet::get_nb_samples(payload, RATE).map_err(|e| match e.code() {
            libopus::ErrorCode::InvalidPacket => invalid("malformed TOC or frame count"),
            _ => library_error(&e),
        })?;
        if n == 0 {
            return Err(invalid("no frames"));
        }
        if n > MAX_PAYLOAD_SAMPLES_48K {
            // libopus already refuses packets over 120 ms; defensive.
            return Err(CodecError::TooLong { max_ms: 120 });
        }
        if out.len() < n {
            return Err(CodecError::BufferTooSmall);
        }
        let got = self
            .decoder
            .decode(payload, &mut out[..n], false)
            .map_err(|e| match e.code() {
                libopus::ErrorCode::InvalidPacket => invalid("corrupt frame data"),
                _ => library_error(&e),
            })?;
        Ok(got.min(n))
    }

    /// libopus PLC for `samples` rounded down to 2.5 ms (at most `out.len()`
    /// and 120 ms).
    fn conceal(&mut self, samples: usize, out: &mut [i16]) -> usize {
        let n = samples.min(out.len()).min(MAX_PAYLOAD_SAMPLES_48K) / MIN_FRAME * MIN_FRAME;
        if n == 0 {
            return 0;
        }
        match self.decoder.decode(&[], &mut out[..n], false) {
            Ok(got) => out[got.min(n)..n].fill(0),
            Err(_) => out[..n].fill(0),
        }
        n
    }

    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        if payload.is_empty() {
            return None;
        }
        libopus::packet::get_nb_samples(payload, RATE).ok()
    }
}

/// Opus encoder of 20 ms 48 kHz frames.
pub(crate) struct OpusEncoder {
    kind: CodecKind,
    encoder: libopus::Encoder,
    /// The frame duplicated to interleaved stereo, for a stereo encoder.
    stereo: Vec<i16>,
}

impl OpusEncoder {
    /// An encoder for `channels` (1 or 2) channels.
    pub(crate) fn new(channels: u8, opts: EncoderOptions) -> Result<Self, CodecError> {
        let ch = match channels {
            1 => libopus::Channels::Mono,
            2 => libopus::Channels::Stereo,
            n => return Err(CodecError::Library(format!("Opus sends 1 or 2 channels, not {n}"))),
        };
        let err = |e: libopus::Error| library_error(&e);
        let mut encoder = libopus::Encoder::new(RATE, ch, libopus::Application::Voip).map_err(err)?;
        encoder
            .set_complexity(i32::from(opts.opus_complexity.min(10)))
            .map_err(err)?;
        if let Some(bps) = opts.opus_bitrate {
            // libopus clamps to 500…512 000 (per channel pair) itself.
            let bps = i32::try_from(bps).unwrap_or(i32::MAX);
            encoder.set_bitrate(libopus::Bitrate::Bits(bps)).map_err(err)?;
        }
        encoder.set_inband_fec(opts.opus_fec).map_err(err)?;
        if opts.opus_fec {
            encoder.set_packet_loss_perc(FEC_EXPECTED_LOSS_PERCENT).map_err(err)?;
        }
        Ok(Self {
            kind: CodecKind::Opus { channels },
            encoder,
            stereo: if channels == 2 {
                vec![0; 2 * FRAME_SAMPLES]
            } else {
                Vec::new()
            },
        })
    }
}

impl AudioEncoder for OpusEncoder {
    fn kind(&self) -> CodecKind {
        self.kind
    }

    /// One 20 ms Opus packet. `out` should hold 1275 bytes (the most one
    /// frame takes, RFC 6716 §3.2.1): libopus fits the packet into a
    /// shorter buffer by coding fewer bits, down to a TOC-only packet.
    fn encode(&mut self, frame: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        let pcm: &[i16] = if self.stereo.is_empty() {
            frame
        } else {
            for (lr, &s) in self.stereo.chunks_exact_mut(2).zip(frame.iter()) {
                lr[0] = s;
                lr[1] = s;
            }
            &self.stereo
        };
        self.encoder.encode(pcm, out).map_err(|e| library_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{goertzel48 as goertzel, power};
    use std::f64::consts::PI;

    fn frames(freq: f64, amp: f64, count: usize) -> Vec<Frame> {
        (0..count)
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

    fn round_trip(channels: u8, opts: EncoderOptions, input: &[Frame]) -> (Vec<usize>, Vec<i16>) {
        let mut enc = OpusEncoder::new(channels, opts).expect("encoder");
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        let mut payload = [0u8; 1500];
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        let mut pcm = Vec::new();
        let mut sizes = Vec::new();
        for f in input {
            let len = enc.encode(f, &mut payload).expect("encode");
            sizes.push(len);
            assert_eq!(dec.samples_in(&payload[..len]), Some(FRAME_SAMPLES));
            assert_eq!(
                libopus::packet::get_nb_channels(&payload[..len]).ok(),
                Some(if channels == 2 {
                    libopus::Channels::Stereo
                } else {
                    libopus::Channels::Mono
                })
            );
            let n = dec.decode(&payload[..len], &mut out).expect("decode");
            assert_eq!(n, FRAME_SAMPLES);
            pcm.extend_from_slice(&out[..n]);
        }
        (sizes, pcm)
    }

    #[test]
    fn mono_round_trip_keeps_the_frequency() {
        let input = frames(1000.0, 10_000.0, 50);
        let opts = EncoderOptions {
            opus_bitrate: Some(32_000),
            ..EncoderOptions::default()
        };
        let (sizes, pcm) = round_trip(1, opts, &input);
        // About 32 kbit/s: 80 bytes per 20 ms.
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        assert!((40.0..=120.0).contains(&mean), "mean payload {mean}");
        let tail = &pcm[24_000..];
        let tone = goertzel(tail, 1000.0);
        assert!(tone / power(tail) > 0.95, "1 kHz holds {:.3}", tone / power(tail));
        let level = 10.0 * (power(tail) / (10_000.0f64.powi(2) / 2.0)).log10();
        assert!(level.abs() < 1.0, "level {level:.2} dB");
    }

    #[test]
    fn stereo_payloads_decode_to_mono() {
        let input = frames(440.0, 8000.0, 25);
        let (_, pcm) = round_trip(2, EncoderOptions::default(), &input);
        let tail = &pcm[12_000..];
        let tone = goertzel(tail, 440.0);
        assert!(tone / power(tail) > 0.95);
        let level = 10.0 * (power(tail) / (8000.0f64.powi(2) / 2.0)).log10();
        assert!(level.abs() < 1.0, "level {level:.2} dB");
    }

    /// The Opus mode a packet's TOC byte names (RFC 6716 §3.1).
    fn mode(packet: &[u8]) -> &'static str {
        match packet[0] >> 3 {
            0..=11 => "SILK",
            12..=15 => "Hybrid",
            _ => "CELT",
        }
    }

    #[test]
    fn stereo_packets_decode_to_the_mean_of_their_channels() {
        use libopus::{Application, Bandwidth, Signal};
        // A different tone on each channel, as a stereo sender (a browser)
        // may send: the mono output holds both, each at half its amplitude
        // (−6 dB). Both coding modes: SILK (told the signal is speech, 40
        // kbit/s, wideband) and CELT (the low-delay application, CELT only).
        let (left, right) = (frames(440.0, 8000.0, 50), frames(1000.0, 8000.0, 50));
        let half = 10.0 * (0.5f64).powi(2).log10();
        let cases = [
            ("SILK", Application::Voip, Signal::Voice, 40_000, Bandwidth::Wideband),
            ("CELT", Application::LowDelay, Signal::Auto, 96_000, Bandwidth::Fullband),
        ];
        for (want_mode, application, signal, bps, bandwidth) in cases {
            let mut enc = libopus::Encoder::new(RATE, libopus::Channels::Stereo, application).expect("encoder");
            enc.set_bitrate(libopus::Bitrate::Bits(bps)).expect("bitrate");
            enc.set_bandwidth(bandwidth).expect("bandwidth");
            enc.set_signal(signal).expect("signal");
            let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 2 }).expect("decoder");
            let mut interleaved = vec![0i16; 2 * FRAME_SAMPLES];
            let mut payload = [0u8; 1500];
            let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
            let mut pcm = Vec::new();
            for (l, r) in left.iter().zip(&right) {
                for ((lr, &a), &b) in interleaved.chunks_exact_mut(2).zip(l.iter()).zip(r.iter()) {
                    lr[0] = a;
                    lr[1] = b;
                }
                let len = enc.encode(&interleaved, &mut payload).expect("encode");
                let packet = &payload[..len];
                assert_eq!(mode(packet), want_mode);
                assert_eq!(
                    libopus::packet::get_nb_channels(packet).ok(),
                    Some(libopus::Channels::Stereo)
                );
                assert_eq!(dec.decode(packet, &mut out), Ok(FRAME_SAMPLES));
                pcm.extend_from_slice(&out[..FRAME_SAMPLES]);
            }
            let tail = &pcm[24_000..];
            let total = power(tail);
            let full = 8000.0f64.powi(2) / 2.0;
            for freq in [440.0, 1000.0] {
                let tone = goertzel(tail, freq);
                let share = tone / total;
                let level = 10.0 * (tone / full).log10();
                assert!((0.4..=0.6).contains(&share), "{want_mode}: {freq} Hz holds {share:.3}");
                assert!((level - half).abs() < 1.0, "{want_mode}: {freq} Hz at {level:.2} dB");
            }
            assert!(
                (goertzel(tail, 440.0) + goertzel(tail, 1000.0)) / total > 0.95,
                "{want_mode}: more than the two tones"
            );
        }
    }

    #[test]
    fn complexity_extremes_and_no_fec_work() {
        for complexity in [0, 10, 200] {
            let opts = EncoderOptions {
                opus_complexity: complexity,
                opus_bitrate: Some(16_000),
                opus_fec: false,
            };
            let (_, pcm) = round_trip(1, opts, &frames(700.0, 9000.0, 20));
            let tail = &pcm[9600..];
            assert!(goertzel(tail, 700.0) / power(tail) > 0.9);
        }
    }

    #[test]
    fn bad_channel_count_is_an_error() {
        assert!(OpusEncoder::new(3, EncoderOptions::default()).is_err());
        assert!(OpusEncoder::new(0, EncoderOptions::default()).is_err());
    }

    #[test]
    fn corrupt_payloads_are_errors_not_panics() {
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 2 }).expect("decoder");
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        // Empty; code 1 (two equal frames) with an odd length; code 2 whose
        // first frame length overruns; code 3 with no frames; code 3 with 49
        // frames of 2.5 ms (over 120 ms).
        let cases: [&[u8]; 5] = [
            &[],
            &[0x01, 0xAA],
            &[0x02, 0xFB, 0x10],
            &[0x03, 0x00],
            &[0x83, 0x31, 0, 0],
        ];
        for payload in cases {
            match dec.decode(payload, &mut out) {
                Err(CodecError::InvalidPayload { codec: "opus", .. }) => {}
                other => panic!("{payload:02x?}: {other:?}"),
            }
        }
        // Random-looking data either decodes or is an error; never a panic.
        let mut state = 7u32;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8
                })
                .collect();
            let _ = dec.decode(&data, &mut out);
            let _ = dec.samples_in(&data);
        }
        // A buffer too small for the packet.
        let mut enc = OpusEncoder::new(1, EncoderOptions::default()).expect("encoder");
        let mut payload = [0u8; 1500];
        let len = enc.encode(&[0; FRAME_SAMPLES], &mut payload).expect("encode");
        assert_eq!(
            dec.decode(&payload[..len], &mut out[..480]),
            Err(CodecError::BufferTooSmall)
        );
        // No room for a packet at all. (A short but non-empty buffer only
        // makes libopus code fewer bits.)
        assert!(enc.encode(&[1000; FRAME_SAMPLES], &mut []).is_err());
        assert!(enc.encode(&[1000; FRAME_SAMPLES], &mut payload[..3]).is_ok());
    }

    #[test]
    fn dtx_payloads_decode_to_comfort_noise_or_silence() {
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        // Talk first, so there is something to fade from.
        let mut enc = OpusEncoder::new(1, EncoderOptions::default()).expect("encoder");
        let mut payload = [0u8; 1500];
        for f in frames(300.0, 6000.0, 10) {
            let len = enc.encode(&f, &mut payload).expect("encode");
            dec.decode(&payload[..len], &mut out).expect("decode");
        }
        // A 1-byte DTX packet: TOC only (SILK WB 20 ms, code 0), and a 2-byte
        // one (code 3, one frame, no data): 20 ms each.
        let toc = (9 << 3) as u8;
        for payload in [&[toc][..], &[toc | 3, 0x01][..]] {
            assert_eq!(dec.samples_in(payload), Some(FRAME_SAMPLES));
            for _ in 0..20 {
                let n = dec.decode(payload, &mut out).expect("DTX decodes");
                assert_eq!(n, FRAME_SAMPLES);
            }
            // After 400 ms of DTX the output is quiet.
            let rms = power(&out[..FRAME_SAMPLES]).sqrt();
            assert!(rms < 300.0, "rms {rms}");
        }
    }

    #[test]
    fn packet_durations_from_2_5_to_120_ms() {
        let dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        // CELT FB 2.5 ms (config 28), code 0.
        assert_eq!(dec.samples_in(&[28 << 3]), Some(120));
        // CELT FB 5 ms.
        assert_eq!(dec.samples_in(&[29 << 3]), Some(240));
        // SILK WB 60 ms (config 11), code 3 with 2 frames: 120 ms.
        assert_eq!(dec.samples_in(&[(11 << 3) | 3, 2]), Some(5760));
        assert_eq!(dec.samples_in(&[]), None);

        // Frames without data (as in DTX) of 2.5 ms and 2 × 60 ms decode.
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        assert_eq!(dec.decode(&[28 << 3], &mut out), Ok(120));
        assert_eq!(dec.decode(&[(11 << 3) | 3, 2], &mut out), Ok(5760));
    }

    #[test]
    fn multi_frame_packets_decode() {
        // Two 20 ms packets combined into one 40 ms packet, six into 120 ms.
        let mut enc = OpusEncoder::new(1, EncoderOptions::default()).expect("encoder");
        let input = frames(500.0, 8000.0, 6);
        let mut packets = Vec::new();
        for f in &input {
            let mut p = vec![0u8; 1500];
            let len = enc.encode(f, &mut p).expect("encode");
            p.truncate(len);
            packets.push(p);
        }
        let mut rp = libopus::Repacketizer::new().expect("repacketizer");
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        for count in [2, 6] {
            let parts: Vec<&[u8]> = packets[..count].iter().map(Vec::as_slice).collect();
            let mut combined = vec![0u8; 8000];
            let len = rp.combine(&parts, &mut combined).expect("combine");
            assert_eq!(dec.samples_in(&combined[..len]), Some(count * FRAME_SAMPLES));
            assert_eq!(dec.decode(&combined[..len], &mut out), Ok(count * FRAME_SAMPLES));
        }
    }

    #[test]
    fn conceal_uses_plc_in_whole_2_5_ms() {
        let mut enc = OpusEncoder::new(1, EncoderOptions::default()).expect("encoder");
        let mut dec = OpusDecoder::new(CodecKind::Opus { channels: 1 }).expect("decoder");
        let mut payload = [0u8; 1500];
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        for f in frames(400.0, 8000.0, 10) {
            let len = enc.encode(&f, &mut payload).expect("encode");
            dec.decode(&payload[..len], &mut out).expect("decode");
        }
        assert_eq!(dec.conceal(960, &mut out), 960);
        // PLC continues the tone at first.
        assert!(power(&out[..480]).sqrt() > 1000.0);
        assert_eq!(dec.conceal(1000, &mut out), 960);
        assert_eq!(dec.conceal(100, &mut out), 0);
        assert_eq!(dec.conceal(100_000, &mut out), MAX_PAYLOAD_SAMPLES_48K);
        assert_eq!(dec.conceal(960, &mut out[..240]), 240);
    }
}
