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
