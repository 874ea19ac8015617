//! Protocol-neutral media descriptions: streams, codecs, directions,
//! transports and SRTP keys.

use std::fmt;
use std::net::SocketAddr;

/// The kind of a media stream (the SDP `m=` media type, RFC 8866 §5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Application data (e.g. BFCP, data channels, content sharing control).
    Application,
}

impl MediaKind {
    /// The SDP media token: `audio`, `video` or `application`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction of a stream, from the point of view of the side that
/// describes it (SDP `a=sendrecv` etc., RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Direction {
    /// Sends and receives.
    #[default]
    SendRecv,
    /// Only sends.
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither sends nor receives (on hold both ways).
    Inactive,
}

impl Direction {
    /// The direction the answering side takes for an offer in this direction
    /// (RFC 3264 §6.1): `sendonly` ↔ `recvonly`, the others unchanged.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The SDP attribute name: `sendrecv`, `sendonly`, `recvonly`,
    /// `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A codec offered or chosen for a stream (after SDP `a=rtpmap` and
/// `a=fmtp`, RFC 8866 §6.6 and §6.15).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Codec {
    /// Encoding name as in the RTP payload format registry (`PCMU`, `opus`,
    /// `H264`, `telephone-event`, `L16`); compared case-insensitively by
    /// [`Codec::same_format`].
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels (1 for video).
    pub channels: u8,
    /// RTP payload type, when the protocol carries one.
    pub payload_type: Option<u8>,
    /// Format parameters (`a=fmtp` value), if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// Raw 16-bit PCM, 48 kHz, mono: the format of loopback endpoints and of
    /// the mixer's internal frames (`L16/48000/1`, no payload type, no
    /// fmtp).
    pub fn pcm_48k_mono() -> Codec {
        Codec {
            name: "L16".to_owned(),
            clock_rate: 48_000,
            channels: 1,
            payload_type: None,
            fmtp: None,
        }
    }

    /// Whether `other` is the same format: same name (case-insensitive),
    /// clock rate and channel count. Payload type and fmtp are ignored.
    pub fn same_format(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }
}

/// An SRTP protection profile (crypto suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568 §6.2.1, RFC 3711).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2.2, RFC 3711).
    AesCm128HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714).
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714).
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// The suite name as written in SDES `a=crypto` lines (RFC 4568, RFC
    /// 7714 §14.2).
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 | SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 §8.2),
    /// 96 bits for AES-GCM (RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 14,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 12,
        }
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SRTP master key and salt for one direction of a stream.
///
/// `Debug` never prints the key or salt bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The protection profile.
    pub suite: SrtpSuite,
    /// Master key ([`SrtpSuite::key_len`] bytes).
    pub master_key: Vec<u8>,
    /// Master salt ([`SrtpSuite::salt_len`] bytes).
    pub master_salt: Vec<u8>,
}

impl SrtpKeys {
    /// Whether key and salt have the lengths the suite requires.
    pub fn lengths_match_suite(&self) -> bool {
        self.master_key.len() == self.suite.key_len() && self.master_salt.len() == self.suite.salt_len()
    }
}

/// Prints `<redacted>` in place of secret bytes.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .field("master_key", &Redacted)
            .field("master_salt", &Redacted)
            .finish()
    }
}

/// How a stream's media travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// RTP over UDP (plain or SRTP)
    Rtp {
        /// Where the endpoint receives RTP, once known.
        addr: Option<SocketAddr>,
        /// RTP and RTCP share one port (RFC 5761).
        rtcp_mux: bool,
        /// SRTP keys, or `None` for plain RTP (or DTLS-SRTP keyed later).
        srtp: Option<SrtpKeys>,
    },
    /// raw PCM frames over a local stream (loopback endpoints)
    Pcm,
}

/// One media stream of a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaStream {
    /// Audio, video or application.
    pub kind: MediaKind,
    /// Codecs in order of preference.
    pub codecs: Vec<Codec>,
    /// Direction from the describing side's point of view.
    pub direction: Direction,
    /// How the media travels.
    pub transport: Transport,
}

/// A protocol-neutral media offer or answer: the streams of a leg.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaDescription {
    /// The streams, in order (SDP `m=` line order where there is SDP).
    pub streams: Vec<MediaStream>,
}

impl MediaDescription {
    /// One `sendrecv` audio stream of [`Codec::pcm_48k_mono`] over
    /// [`Transport::Pcm`]: what loopback endpoints speak.
    pub fn pcm_audio() -> Self {
        MediaDescription {
            streams: vec![MediaStream {
                kind: MediaKind::Audio,
                codecs: vec![Codec::pcm_48k_mono()],
                direction: Direction::SendRecv,
                transport: Transport::Pcm,
            }],
        }
    }

    /// The first stream of `kind`, if any.
    pub fn first(&self, kind: MediaKind) -> Option<&MediaStream> {
        self.streams.iter().find(|s| s.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_reverse() {
        assert_eq!(Direction::SendRecv.reverse(), Direction::SendRecv);
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reverse(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.reverse(), Direction::Inactive);
        assert!(Direction::SendOnly.sends() && !Direction::SendOnly.receives());
        assert_eq!(Direction::RecvOnly.to_string(), "recvonly");
    }

    #[test]
    fn pcm_defaults() {
        let c = Codec::pcm_48k_mono();
        assert_eq!(
            c,
            Codec {
                name: "L16".into(),
                clock_rate: 48000,
                channels: 1,
                payload_type: None,
                fmtp: None
            }
        );
        let d = MediaDescription::pcm_audio();
        assert_eq!(d.streams.len(), 1);
        let s = &d.streams[0];
        assert_eq!(s.kind, MediaKind::Audio);
        assert_eq!(s.direction, Direction::SendRecv);
        assert_eq!(s.transport, Transport::Pcm);
        assert_eq!(s.codecs, vec![c]);
        assert!(d.first(MediaKind::Audio).is_some());
        assert!(d.first(MediaKind::Video).is_none());
        let l16 = Codec {
            name: "l16".into(),
            payload_type: Some(96),
            ..Codec::pcm_48k_mono()
        };
        assert!(l16.same_format(&Codec::pcm_48k_mono()));
    }

    #[test]
    fn srtp_keys_debug_is_redacted() {
        let keys = SrtpKeys {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            master_key: vec![0xAB; 16],
            master_salt: vec![0xCD; 14],
        };
        assert!(keys.lengths_match_suite());
        let text = format!("{keys:?}");
        assert_eq!(
            text,
            "SrtpKeys { suite: AesCm128HmacSha1_80, master_key: <redacted>, master_salt: <redacted> }"
        );
        let pretty = format!(
            "{:#?}",
            Transport::Rtp {
                addr: None,
                rtcp_mux: true,
                srtp: Some(keys)
            }
        );
        assert!(!pretty.contains("171") && !pretty.contains("205"), "{pretty}");
        assert!(!pretty.to_lowercase().contains("ab, "), "{pretty}");
        assert_eq!(SrtpSuite::AeadAes256Gcm.key_len(), 32);
        assert_eq!(SrtpSuite::AeadAes128Gcm.salt_len(), 12);
        assert_eq!(SrtpSuite::AesCm128HmacSha1_32.to_string(), "AES_CM_128_HMAC_SHA1_32");
    }
}
