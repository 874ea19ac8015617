//! Audio codecs behind one interface: every decoder turns RTP payloads into
//! 48 kHz mono PCM, every encoder turns 20 ms frames of 48 kHz mono PCM into
//! one RTP payload. Resampling to and from the codec's own rate happens
//! inside, with a real (band-limited) resampler.
//!
//! The mixer works at 48 kHz mono internally ([`crate::SAMPLE_RATE`],
//! [`crate::FRAME_SAMPLES`]).

use std::fmt;

/// The codecs the mixer speaks (RTP payload formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law, 8 kHz (RFC 3551 PCMU).
    Pcmu,
    /// G.711 A-law, 8 kHz (RFC 3551 PCMA).
    Pcma,
    /// G.722 64 kbit/s, 16 kHz audio (RTP clock 8000, RFC 3551 §4.5.2).
    G722,
    /// Opus (RFC 7587), RTP clock 48000; `channels` is what the encoder
    /// sends (1 or 2); the decoder takes either.
    Opus {
        /// Channels sent.
        channels: u8,
    },
}

impl CodecKind {
    /// The RTP clock rate (RFC 3551, RFC 7587).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8000,
            Self::Opus { .. } => 48_000,
        }
    }

    /// RTP timestamp units in 20 ms.
    pub fn timestamp_step_20ms(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// The SDP encoding name (`a=rtpmap`).
    pub fn sdp_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus { .. } => "opus",
        }
    }

    /// The static payload type, if it has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::Opus { .. } => None,
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdp_name())
    }
}

/// Why a payload could not be decoded or a frame encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload is not valid for the codec (e.g. a corrupt Opus TOC).
    #[error("invalid {codec} payload: {reason}")]
    InvalidPayload {
        /// The codec.
        codec: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The payload holds more audio than the output buffer.
    #[error("payload longer than {max_ms} ms")]
    TooLong {
        /// The most this decoder takes per call.
        max_ms: u32,
    },
    /// The output buffer is too small.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// The codec library failed.
    #[error("codec library: {0}")]
    Library(String),
}

/// Most audio one payload may carry (120 ms, Opus's maximum), in 48 kHz samples.
pub const MAX_PAYLOAD_SAMPLES_48K: usize = 48 * 120;

/// Decodes one stream's payloads to 48 kHz mono.
pub trait AudioDecoder: Send {
    /// The codec.
    fn kind(&self) -> CodecKind;
    /// Decodes one RTP payload into `out` (48 kHz mono) and returns the
    /// number of samples written (a multiple of 480: 10 ms). `out` must hold
    /// [`MAX_PAYLOAD_SAMPLES_48K`] samples.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
    /// Produces `samples` of concealment for a lost packet (Opus PLC,
    /// waveform repetition with fade for G.711/G.722) and returns how many
    /// were written.
    fn conceal(&mut self, samples: usize, out: &mut [i16]) -> usize;
    /// How many 48 kHz samples a payload holds, without decoding it
    /// (`None` if it cannot be told).
    fn samples_in(&self, payload: &[u8]) -> Option<usize>;
}

/// Encodes 20 ms frames of 48 kHz mono into RTP payloads.
pub trait AudioEncoder: Send {
    /// The codec.
    fn kind(&self) -> CodecKind;
    /// Encodes one frame and returns the payload length written to `out`.
    fn encode(&mut self, frame: &crate::Frame, out: &mut [u8]) -> Result<usize, CodecError>;
}

mod g711;
mod g722;
mod opus;
mod plc;
pub(crate) mod resample;
mod waveform;

use g711::Law;
use waveform::{WaveformDecoder, WaveformEncoder, G711, G722};

/// Encoder settings (only Opus has any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Opus complexity, 0 (fastest) to 10 (best); larger values count as
    /// 10. Default 5.
    pub opus_complexity: u8,
    /// Opus target bitrate in bit/s; `None` lets libopus choose
    /// (`OPUS_AUTO`: 48 000 × channels + 60 × 50 bit/s for 20 ms frames,
    /// 51 kbit/s mono). Default `None`.
    pub opus_bitrate: Option<u32>,
    /// Opus in-band forward error correction (LBRR, RFC 6716 §2.1.7): each
    /// packet also carries a low-bitrate copy of the previous frame. With it
    /// on, the encoder is told to expect 10 % loss, which is what makes
    /// libopus actually spend bits on it. Default `true`.
    pub opus_fec: bool,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            opus_complexity: 5,
            opus_bitrate: None,
            opus_fec: true,
        }
    }
}

/// A decoder for `kind`, in its initial state.
///
/// * PCMU, PCMA: G.711 (ITU-T G.711), 8 kHz, interpolated to 48 kHz.
/// * G722: ITU-T G.722 mode 1 (64 kbit/s), 16 kHz, interpolated to 48 kHz.
/// * Opus: libopus at 48 kHz; mono and stereo payloads both decode to mono
///   (the channels are averaged), whatever `channels` says.
///
/// All buffers are allocated here: decoding and concealing allocate nothing
/// (Opus: nothing on the Rust side, and libopus uses the stack).
///
/// # Errors
///
/// [`CodecError::Library`] if libopus cannot create a decoder.
pub fn decoder(kind: CodecKind) -> Result<Box<dyn AudioDecoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(WaveformDecoder::new(G711(Law::Mu))),
        CodecKind::Pcma => Box::new(WaveformDecoder::new(G711(Law::A))),
        CodecKind::G722 => Box::new(WaveformDecoder::new(G722::Decoder(Box::new(g722::Decoder::new())))),
        CodecKind::Opus { .. } => Box::new(opus::OpusDecoder::new(kind)?),
    })
}

/// An encoder for `kind`, in its initial state. G.711 and G.722 write 160
/// octets per 20 ms frame; Opus one packet of at most `out.len()` bytes
/// (1275 at most).
///
/// # Errors
///
/// [`CodecError::Library`] if `kind` is Opus with other than 1 or 2
/// channels, or libopus refuses the settings.
pub fn encoder(kind: CodecKind, opts: EncoderOptions) -> Result<Box<dyn AudioEncoder>, CodecError> {
    Ok(match kind {
        CodecKind::Pcmu => Box::new(WaveformEncoder::new(G711(Law::Mu))),
        CodecKind::Pcma => Box::new(WaveformEncoder::new(G711(Law::A))),
        CodecKind::G722 => Box::new(WaveformEncoder::new(G722::Encoder(Box::new(g722::Encoder::new())))),
        CodecKind::Opus { channels } => Box::new(opus::OpusEncoder::new(channels, opts)?),
    })
}

/// Entry points for the fuzz targets (`fuzz/`): not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{decoder, CodecKind, MAX_PAYLOAD_SAMPLES_48K};

    /// The first byte picks the codec (and how much to conceal), the rest is
    /// the payload. Decoding, sizing and concealing must never panic,
    /// whatever the bytes and the output buffer's size.
    pub fn decode(data: &[u8]) {
        let Some((&selector, payload)) = data.split_first() else {
            return;
        };
        let kind = match selector % 5 {
            0 => CodecKind::Pcmu,
            1 => CodecKind::Pcma,
            2 => CodecKind::G722,
            3 => CodecKind::Opus { channels: 1 },
            _ => CodecKind::Opus { channels: 2 },
        };
        let Ok(mut dec) = decoder(kind) else {
            return;
        };
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];
        let _ = dec.samples_in(payload);
        let _ = dec.decode(payload, &mut out);
        let conceal = usize::from(selector) * 37;
        let _ = dec.conceal(conceal, &mut out);
        let _ = dec.decode(payload, &mut out);
        // Short output buffers are errors, not panics.
        let short = usize::from(selector) * 3 % 961;
        let _ = dec.decode(payload, &mut out[..short]);
        let _ = dec.conceal(960, &mut out[..short]);
    }
}

#[cfg(test)]
mod tests;
