//! The waveform codecs (G.711, G.722) behind [`AudioDecoder`] and
//! [`AudioEncoder`]: resampling between 48 kHz and the codec's rate,
//! concealment, and payload length checks.
//!
//! Every buffer is allocated by the constructors: decoding, concealing and
//! encoding allocate nothing.

use super::g711::Law;
use super::plc::Concealer;
use super::resample::{Downsampler, Upsampler, HIGH_RATE};
use super::{g722, AudioDecoder, AudioEncoder, CodecError, CodecKind, MAX_PAYLOAD_SAMPLES_48K};
use crate::{Frame, FRAME_SAMPLES};

/// A sample-by-sample codec at its own rate.
pub(crate) trait WaveformCodec: Send {
    /// The codec's sample rate.
    const RATE: u32;
    /// Samples per payload octet.
    const SAMPLES_PER_OCTET: usize;
    /// The codec.
    fn kind(&self) -> CodecKind;
    /// Decodes `octets` into `pcm` (`octets.len() × SAMPLES_PER_OCTET`).
    fn decode(&mut self, octets: &[u8], pcm: &mut [i16]);
    /// Encodes `pcm` into `octets` (`pcm.len() / SAMPLES_PER_OCTET`).
    fn encode(&mut self, pcm: &[i16], octets: &mut [u8]);
}

/// G.711 with one law (stateless).
#[derive(Debug, Clone, Copy)]
pub(crate) struct G711(pub(crate) Law);

impl WaveformCodec for G711 {
    const RATE: u32 = 8000;
    const SAMPLES_PER_OCTET: usize = 1;

    fn kind(&self) -> CodecKind {
        match self.0 {
            Law::Mu => CodecKind::Pcmu,
            Law::A => CodecKind::Pcma,
        }
    }

    fn decode(&mut self, octets: &[u8], pcm: &mut [i16]) {
        self.0.decode(octets, pcm);
    }

    fn encode(&mut self, pcm: &[i16], octets: &mut [u8]) {
        self.0.encode(pcm, octets);
    }
}

/// G.722: its decoder or its encoder state (a stream uses one direction).
#[derive(Debug, Clone)]
pub(crate) enum G722 {
    /// Decoding state.
    Decoder(Box<g722::Decoder>),
    /// Encoding state.
    Encoder(Box<g722::Encoder>),
}

impl WaveformCodec for G722 {
    const RATE: u32 = 16_000;
    const SAMPLES_PER_OCTET: usize = 2;

    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn decode(&mut self, octets: &[u8], pcm: &mut [i16]) {
        if let Self::Decoder(d) = self {
            d.decode(octets, pcm);
        }
    }

    fn encode(&mut self, pcm: &[i16], octets: &mut [u8]) {
        if let Self::Encoder(e) = self {
            e.encode(pcm, octets);
        }
    }
}

/// The factor between 48 kHz and `C`'s rate.
const fn factor<C: WaveformCodec>() -> usize {
    (HIGH_RATE / C::RATE) as usize
}

/// Decoder of a waveform codec to 48 kHz, with concealment.
///
/// Concealment ([`super::plc`]) runs at the codec's rate and goes through the
/// same interpolator as decoded audio, so the filter's history stays
/// continuous across a loss.
#[derive(Debug)]
pub(crate) struct WaveformDecoder<C> {
    codec: C,
    up: Upsampler,
    plc: Concealer,
    /// Decoded audio at the codec's rate, for the largest payload.
    native: Vec<i16>,
}

impl<C: WaveformCodec> WaveformDecoder<C> {
    pub(crate) fn new(codec: C) -> Self {
        Self {
            codec,
            up: Upsampler::new(C::RATE),
            plc: Concealer::new(C::RATE),
            native: vec![0; MAX_PAYLOAD_SAMPLES_48K / factor::<C>()],
        }
    }
}

impl<C: WaveformCodec> AudioDecoder for WaveformDecoder<C> {
    fn kind(&self) -> CodecKind {
        self.codec.kind()
    }

    /// Decodes any number of octets (every octet is valid) up to 120 ms.
    /// G.711 and G.722 payloads need not be whole 10 ms: the sample count is
    /// 6 per octet for both (8 kHz × 1, 16 kHz × 2, interpolated to 48 kHz).
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let native_len = payload.len().saturating_mul(C::SAMPLES_PER_OCTET);
        let len = native_len.saturating_mul(factor::<C>());
        if len > MAX_PAYLOAD_SAMPLES_48K {
            return Err(CodecError::TooLong { max_ms: 120 });
        }
        if out.len() < len {
            return Err(CodecError::BufferTooSmall);
        }
        let native = &mut self.native[..native_len];
        self.codec.decode(payload, native);
        self.plc.good(native);
        self.up.process(native, &mut out[..len]);
        Ok(len)
    }

    /// Waveform repetition with fade-out (see [`super::plc`]); writes
    /// `samples` rounded down to whole samples of the codec's rate, at most
    /// `out.len()` and 120 ms.
    fn conceal(&mut self, samples: usize, out: &mut [i16]) -> usize {
        let f = factor::<C>();
        let native_len = samples.min(out.len()).min(MAX_PAYLOAD_SAMPLES_48K) / f;
        let native = &mut self.native[..native_len];
        self.plc.conceal(native);
        self.up.process(native, &mut out[..native_len * f]);
        native_len * f
    }

    fn samples_in(&self, payload: &[u8]) -> Option<usize> {
        Some(payload.len() * C::SAMPLES_PER_OCTET * factor::<C>())
    }
}

/// Encoder of a waveform codec from 48 kHz.
#[derive(Debug)]
pub(crate) struct WaveformEncoder<C> {
    codec: C,
    down: Downsampler,
    /// One frame at the codec's rate.
    native: Vec<i16>,
}

impl<C: WaveformCodec> WaveformEncoder<C> {
    pub(crate) fn new(codec: C) -> Self {
        Self {
            codec,
            down: Downsampler::new(C::RATE),
            native: vec![0; FRAME_SAMPLES / factor::<C>()],
        }
    }
}

impl<C: WaveformCodec> AudioEncoder for WaveformEncoder<C> {
    fn kind(&self) -> CodecKind {
        self.codec.kind()
    }

    /// Writes 160 octets (20 ms) for both G.711 and G.722.
    fn encode(&mut self, frame: &Frame, out: &mut [u8]) -> Result<usize, CodecError> {
        let octets = self.native.len() / C::SAMPLES_PER_OCTET;
        if out.len() < octets {
            return Err(CodecError::BufferTooSmall);
        }
        self.down.process(frame, &mut self.native);
        self.codec.encode(&self.native, &mut out[..octets]);
        Ok(octets)
    }
}
