//! SRTP and SRTCP (RFC 3711, RFC 7714), in place.
//!
//! # Model
//!
//! An [`SrtpContext`] is one direction of one SRTP session: the master key
//! and master salt that signaling (SDES, RFC 4568) or DTLS-SRTP (RFC 5764)
//! handed over, the session keys derived from them once (RFC 3711 §4.3,
//! key derivation rate 0), and the per-SSRC state the protocol needs:
//!
//! - for SRTP, the rollover counter (ROC) and the highest sequence number
//!   (`s_l`), kept together as the highest 48-bit packet index
//!   `i = 2^16 * ROC + SEQ` (RFC 3711 §3.3.1), and a replay window of
//!   [`REPLAY_WINDOW`] packets behind it (§3.3.2);
//! - for SRTCP, the next SRTCP index to send, or the highest received index
//!   and its replay window (§3.4).
//!
//! A relay uses one context per direction per leg: `unprotect_*` with the
//! receiving context of the leg a packet came from, then `protect_*` with the
//! sending context of each leg it goes to. Both work in the caller's buffer;
//! protecting appends at most [`MAX_SRTP_OVERHEAD`] bytes.
//!
//! # Invariants
//!
//! - State moves only for packets that authenticated: a forged or corrupted
//!   packet changes neither the ROC, the highest index nor the replay window,
//!   and a new SSRC is remembered only once one of its packets authenticated.
//! - At most [`MAX_SSRCS`] SSRCs per context; the table grows (allocates) only
//!   when a new SSRC appears. Nothing else allocates per packet.
//! - Every length in a packet (CSRC count, header extension length) is checked
//!   against the bytes actually there before it is used: a short or lying
//!   packet is [`SrtpError::TooShort`], never a panic.
//! - On an error the buffer's contents are unspecified: drop the packet.
//!
//! # Choices
//!
//! - `AES_CM_128_HMAC_SHA1_32` uses a 32-bit tag for SRTP only; SRTCP keeps
//!   the 80-bit tag, as RFC 4568 §6.2.1 and RFC 5764 §4.1.2 list for that
//!   suite (`SRTCP_auth_tag_length: 80`) and RFC 3711 §5.2 requires. Its RTCP
//!   trailer is therefore 4 + 10 = 14 bytes, as for `_80`.
//! - The AEAD suites (RFC 7714) derive their keys with the AES-CM PRF of
//!   RFC 3711 §4.3.3 keyed with the whole master key (AES-128 or AES-256).
//!   Their 96-bit master salt takes the high 96 bits of the PRF's 112-bit
//!   salt field, the low 16 bits being zero; this is how libsrtp and the other
//!   deployed stacks read RFC 7714 §11, so keys agree with theirs.
//! - The first SRTCP index sent is 0 (RFC 3711 §3.4: "set to zero before the
//!   first SRTCP packet is sent"). Receivers accept any first index.
//! - Received SRTCP packets with the E flag clear (authenticated, not
//!   encrypted) are accepted; SRTCP sent by this module is always encrypted.
//! - MKI is not supported (signaled MKI length 0).
//!
//! # Crypto backend
//!
//! The primitives come from [`backend::Mixed`], chosen by measurement
//! (`cargo bench -p confgate-relay --bench srtp`): RustCrypto's AES-CTR and
//! SHA-NI HMAC-SHA1 for the AES-CM profiles (10-25 % faster per packet than
//! AWS-LC's, whose per-call FFI and HMAC context copy cost more than they
//! save), AWS-LC's assembly AES-GCM for the AEAD profiles (2x faster than
//! RustCrypto's `aes-gcm` on 172-byte packets, 5x on 1200-byte ones). The
//! pure RustCrypto and AWS-LC backends stay, so that the benchmark can
//! measure again and the tests can check two implementations against each
//! other.

use thiserror::Error;

#[doc(hidden)]
pub mod backend;
mod kdf;
mod replay;
mod session;

use backend::Chosen;
use session::Session;

/// Largest number of bytes `protect_rtp` or `protect_rtcp` appends to a
/// packet, over all profiles (an AEAD SRTCP trailer: 16-byte tag + 4-byte
/// E flag and SRTCP index).
pub const MAX_SRTP_OVERHEAD: usize = 20;

/// Most SSRCs one [`SrtpContext`] keeps state for.
pub const MAX_SSRCS: usize = 64;

/// Size of the SRTP and SRTCP replay windows, in packets (RFC 3711 §3.3.2
/// requires at least 64).
pub const REPLAY_WINDOW: u64 = 128;

/// An SRTP protection profile: cipher, authentication and their lengths.
///
/// Names follow the SDES crypto suites (RFC 4568 §6.2, RFC 7714 §14.1);
/// DTLS-SRTP's `SRTP_AES128_CM_HMAC_SHA1_80` etc. (RFC 5764 §4.1.2,
/// RFC 7714 §14.2) are the same transforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES-128 in counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711 §4.1.1, §4.2.1).
    AesCm128HmacSha1_80,
    /// As `_80` but with a 32-bit SRTP tag; SRTCP still uses 80 bits (RFC 4568 §6.2.1).
    AesCm128HmacSha1_32,
    /// AES-128-GCM with a 16-byte tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256-GCM with a 16-byte tag (RFC 7714).
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// All profiles, in order of preference for an offer.
    pub const ALL: [SrtpProfile; 4] = [
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm,
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ];

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 §8.2),
    /// 96 bits for AEAD (RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => 14,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
        }
    }

    /// Bytes appended to an RTP packet by `protect_rtp`: the authentication tag.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// SRTCP authentication tag length in bytes: 80 bits for both AES-CM
    /// suites (RFC 4568 §6.2.1), 16 bytes for AEAD.
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => 10,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// Bytes appended to an RTCP packet by `protect_rtcp`: the E flag and
    /// 31-bit SRTCP index (4 bytes) plus the SRTCP tag.
    pub fn rtcp_trailer_len(self) -> usize {
        4 + self.rtcp_tag_len()
    }

    /// Whether this is an AEAD (RFC 7714) profile.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm | Self::AeadAes256Gcm)
    }

    /// The profile for an SDES crypto-suite name (RFC 4568 §6.2, RFC 7714 §14.1).
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.sdes_name() == name)
    }

    /// The SDES crypto-suite name (RFC 4568 §6.2, RFC 7714 §14.1).
    pub fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }
}

/// Why a packet could not be protected or unprotected, or a context not built.
///
/// On the packet path, count these (a metric per variant) and drop the
/// packet; do not log per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Configuration: the master key is not `profile.key_len()` bytes.
    #[error("SRTP master key has the wrong length for the profile")]
    BadKeyLength,
    /// Configuration: the master salt is not `profile.salt_len()` bytes.
    #[error("SRTP master salt has the wrong length for the profile")]
    BadSaltLength,
    /// Peer: the packet is shorter than its headers, its header claims more
    /// bytes than there are, or it is too short to carry the SRTP trailer.
    #[error("packet too short for its RTP/RTCP header or SRTP trailer")]
    TooShort,
    /// Peer or attacker: the authentication tag did not verify.
    #[error("SRTP/SRTCP authentication failed")]
    AuthFailed,
    /// Peer or attacker: this packet index was already received (RFC 3711 §3.3.2).
    #[error("SRTP/SRTCP packet replayed")]
    Replayed,
    /// Peer: the packet index is behind the replay window (RFC 3711 §3.3.2),
    /// or before the first packet of its stream.
    #[error("SRTP/SRTCP packet too old for the replay window")]
    TooOld,
    /// Limit: the context already keeps state for [`MAX_SSRCS`] SSRCs.
    #[error("too many SSRCs in one SRTP context")]
    TooManySsrcs,
    /// Caller: `len` exceeds the buffer, or the buffer has no room for the
    /// SRTP trailer after the packet.
    #[error("buffer has no room for the SRTP trailer")]
    NoRoom,
    /// The crypto backend reported a failure it should never report.
    #[error("SRTP crypto backend failure")]
    Crypto,
}

/// One direction (send or receive) of one SRTP session: a master key and
/// salt, the session keys derived from them, and per-SSRC state (ROC, highest
/// sequence number, replay windows, SRTCP index), created on an SSRC's first
/// authenticated packet, for at most [`MAX_SSRCS`] SSRCs.
pub struct SrtpContext {
    inner: Session<Chosen>,
}

impl SrtpContext {
    /// Derives the session keys (RFC 3711 §4.3, key derivation rate 0) from a
    /// master key and master salt.
    pub fn new(profile: SrtpProfile, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        Ok(Self {
            inner: Session::new(profile, master_key, master_salt)?,
        })
    }

    /// Starts loading what [`protect_rtp`](Self::protect_rtp) or
    /// [`unprotect_rtp`](Self::unprotect_rtp) will read into the caches,
    /// without waiting for it.
    pub fn prefetch_rtp(&self) {
        self.inner.prefetch_rtp();
    }

    /// The protection profile.
    pub fn profile(&self) -> SrtpProfile {
        self.inner.profile()
    }

    /// Number of SSRCs this context keeps state for.
    pub fn ssrc_count(&self) -> usize {
        self.inner.ssrc_count()
    }

    /// The rollover counter of an SSRC's SRTP stream (sent or received, as
    /// this context is used), if it has one.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        self.inner.roc(ssrc)
    }

    /// Encrypts and authenticates the RTP packet in `buf[..len]` in place
    /// (RFC 3711 §3.3, RFC 7714 §8); the tag goes after it. `buf` must have
    /// room for `profile().rtp_tag_len()` more bytes, else
    /// [`SrtpError::NoRoom`]. Returns the new length.
    ///
    /// The packet index comes from the sequence number with the ROC estimated
    /// as a receiver would (RFC 3711 Appendix A), so forwarding a stream with
    /// some reordering keeps the ROC right across a sequence-number wrap.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.inner.protect_rtp(buf, len)
    }

    /// Verifies and decrypts the SRTP packet in `buf[..len]` in place. Checks
    /// the replay window (RFC 3711 §3.3.2) and updates ROC, highest sequence
    /// number and window only after authentication succeeded. Returns the
    /// plaintext length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.inner.unprotect_rtp(buf, len)
    }

    /// Encrypts and authenticates the RTCP compound packet in `buf[..len]` in
    /// place (RFC 3711 §3.4, RFC 7714 §9), appending the E flag (set), the
    /// SRTCP index of the sender SSRC and the tag. `buf` must have room for
    /// `profile().rtcp_trailer_len()` more bytes. Returns the new length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.inner.protect_rtcp(buf, len)
    }

    /// Verifies and decrypts the SRTCP packet in `buf[..len]` in place, with
    /// the SRTCP replay window of its sender SSRC. Returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.inner.unprotect_rtcp(buf, len)
    }
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile())
            .field("ssrcs", &self.ssrc_count())
            .finish_non_exhaustive()
    }
}

/// Entry points for the fuzz crate (`fuzz/`), not a public API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{SrtpContext, SrtpProfile};

    /// Unprotects `data` as SRTP and as SRTCP under every profile with a fixed
    /// key; then protects it and checks that unprotecting gives it back.
    /// Must never panic except on a real bug.
    pub fn srtp_unprotect(data: &[u8]) {
        let mut buf = vec![0u8; data.len() + super::MAX_SRTP_OVERHEAD];
        for profile in SrtpProfile::ALL {
            let key = [0x2b; 32];
            let salt = [0x5a; 14];
            let (key, salt) = (&key[..profile.key_len()], &salt[..profile.salt_len()]);
            let Ok(mut rx) = SrtpContext::new(profile, key, salt) else {
                return;
            };
            let Ok(mut tx) = SrtpContext::new(profile, key, salt) else {
                return;
            };

            buf[..data.len()].copy_from_slice(data);
            let _ = rx.unprotect_rtp(&mut buf, data.len());
            buf[..data.len()].copy_from_slice(data);
            let _ = rx.unprotect_rtcp(&mut buf, data.len());
            // A length beyond the buffer is an error, not a panic.
            let beyond = buf.len() + 1;
            let _ = rx.unprotect_rtp(&mut buf, beyond);

            let Ok(mut rx) = SrtpContext::new(profile, key, salt) else {
                return;
            };
            buf[..data.len()].copy_from_slice(data);
            if let Ok(n) = tx.protect_rtp(&mut buf, data.len()) {
                let m = rx.unprotect_rtp(&mut buf, n);
                assert_eq!(m, Ok(data.len()), "SRTP round trip failed");
                assert_eq!(&buf[..data.len()], data, "SRTP round trip changed the packet");
            }
            buf[..data.len()].copy_from_slice(data);
            if let Ok(n) = tx.protect_rtcp(&mut buf, data.len()) {
                let m = rx.unprotect_rtcp(&mut buf, n);
                assert_eq!(m, Ok(data.len()), "SRTCP round trip failed");
                assert_eq!(&buf[..data.len()], data, "SRTCP round trip changed the packet");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::backend::{AwsLc, Backend, RustCrypto, Session};
    use super::session::SessionKeys;
    use super::*;
    use proptest::prelude::*;

    /// Hex to bytes; spaces ignored.
    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    const KEY: [u8; 32] = [
        0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39, 0x0e, 0xc6,
        0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6, 0x11, 0x22,
    ];
    const SALT: [u8; 14] = [
        0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];

    fn context(profile: SrtpProfile) -> SrtpContext {
        SrtpContext::new(profile, &KEY[..profile.key_len()], &SALT[..profile.salt_len()]).unwrap()
    }

    fn session<B: Backend>(profile: SrtpProfile) -> Session<B> {
        Session::new(profile, &KEY[..profile.key_len()], &SALT[..profile.salt_len()]).unwrap()
    }

    /// An RTP packet: V=2, PT 0, `seq`, timestamp, `ssrc`, then `payload`
    /// bytes counting up.
    fn rtp(seq: u16, ssrc: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..payload).map(|i| i as u8));
        p
    }

    /// An RTCP receiver report with one report block from `ssrc`.
    fn rtcp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x81, 201, 0x00, 0x07];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..24).map(|i| 0xa0 ^ i as u8));
        p
    }

    /// Protects `packet` into a buffer with room, returning it trimmed.
    fn protect(ctx: &mut SrtpContext, packet: &[u8], rtcp: bool) -> Vec<u8> {
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + MAX_SRTP_OVERHEAD, 0);
        let n = if rtcp {
            ctx.protect_rtcp(&mut buf, packet.len())
        } else {
            ctx.protect_rtp(&mut buf, packet.len())
        }
        .unwrap();
        buf.truncate(n);
        buf
    }

    fn unprotect(ctx: &mut SrtpContext, packet: &[u8], rtcp: bool) -> Result<Vec<u8>, SrtpError> {
        let mut buf = packet.to_vec();
        let n = if rtcp {
            ctx.unprotect_rtcp(&mut buf, packet.len())
        } else {
            ctx.unprotect_rtp(&mut buf, packet.len())
        }?;
        buf.truncate(n);
        Ok(buf)
    }

    // ---- profiles ----

    #[test]
    fn profile_lengths_and_names() {
        use SrtpProfile::*;
        let table = [
            (AesCm128HmacSha1_80, 16, 14, 10, 14, "AES_CM_128_HMAC_SHA1_80"),
            (AesCm128HmacSha1_32, 16, 14, 4, 14, "AES_CM_128_HMAC_SHA1_32"),
            (AeadAes128Gcm, 16, 12, 16, 20, "AEAD_AES_128_GCM"),
            (AeadAes256Gcm, 32, 12, 16, 20, "AEAD_AES_256_GCM"),
        ];
        for (p, key, salt, tag, trailer, name) in table {
            assert_eq!(p.key_len(), key);
            assert_eq!(p.salt_len(), salt);
            assert_eq!(p.rtp_tag_len(), tag);
            assert_eq!(p.rtcp_trailer_len(), trailer);
            assert_eq!(p.sdes_name(), name);
            assert_eq!(SrtpProfile::from_sdes_name(name), Some(p));
            assert!(p.rtp_tag_len() <= MAX_SRTP_OVERHEAD);
            assert!(p.rtcp_trailer_len() <= MAX_SRTP_OVERHEAD);
        }
        assert_eq!(SrtpProfile::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
        assert_eq!(SrtpProfile::from_sdes_name("aes_cm_128_hmac_sha1_80"), None);
    }

    #[test]
    fn bad_key_and_salt_lengths() {
        for p in SrtpProfile::ALL {
            let e = SrtpContext::new(p, &KEY[..p.key_len() - 1], &SALT[..p.salt_len()]);
            assert_eq!(e.err(), Some(SrtpError::BadKeyLength));
            let e = SrtpContext::new(p, &KEY[..p.key_len()], &SALT[..p.salt_len() - 1]);
            assert_eq!(e.err(), Some(SrtpError::BadSaltLength));
            let e = SrtpContext::new(p, &[], &[]);
            assert_eq!(e.err(), Some(SrtpError::BadKeyLength));
        }
    }

    // ---- RFC 7714 §16 and §17 vectors (session keys given directly) ----

    const GCM_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
    const GCM_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    /// "Quid pro quo"
    const GCM_SALT: &str = "517569642070726f2071756f";
    /// §16: header 8040f17b 8041f8d3 5501a0b2, payload "Gallia est omnis
    /// divisa in partes tres".
    const GCM_RTP: &str = "8040f17b8041f8d35501a0b2
        47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
    /// §16.1.1
    const GCM_SRTP_128: &str = "8040f17b8041f8d35501a0b2
        f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
        899d7f27beb16a9152cf765ee4390cce";
    /// §16.2.1
    const GCM_SRTP_256: &str = "8040f17b8041f8d35501a0b2
        32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
        7aa3db36dfffd6b0f9bb7878d7a76c13";
    /// §17: the RTCP packet of §17.1-§17.4, sender SSRC 4d617273 ("Mars").
    const GCM_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61
        deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
    /// §17.1, SRTCP index 0x5d4, E set.
    const GCM_SRTCP_128: &str = "81c8000d4d617273
        63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded
        0bb9275bc84aa45896cf4d2fc5abf87245d9eade 800005d4";
    /// §17.2
    const GCM_SRTCP_256: &str = "81c8000d4d617273
        d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de047
        6f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be 800005d4";
    /// §17.3: E clear, authenticated only.
    const GCM_SRTCP_128_UNENCRYPTED: &str = "81c8000d4d6172734e5450314e545032525450200000042a
        0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
        841dd9683dd78ec92ae58790125f62b3 000005d4";

    fn gcm_session<B: Backend>(profile: SrtpProfile, key: &str) -> Session<B> {
        let (key, salt) = (unhex(key), unhex(GCM_SALT));
        let keys = SessionKeys {
            rtp_key: &key,
            rtp_salt: &salt,
            rtp_auth: &[],
            rtcp_key: &key,
            rtcp_salt: &salt,
            rtcp_auth: &[],
        };
        Session::from_session_keys(profile, &keys).unwrap()
    }

    fn rfc7714_srtp<B: Backend>(profile: SrtpProfile, key: &str, expected: &str) {
        let (plain, expected) = (unhex(GCM_RTP), unhex(expected));
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        let n = gcm_session::<B>(profile, key)
            .protect_rtp(&mut buf, plain.len())
            .unwrap();
        assert_eq!(&buf[..n], &expected[..], "{profile:?} protect");

        let mut buf = expected.clone();
        let n = gcm_session::<B>(profile, key)
            .unprotect_rtp(&mut buf, expected.len())
            .unwrap();
        assert_eq!(&buf[..n], &plain[..], "{profile:?} unprotect");
    }

    fn rfc7714_srtcp<B: Backend>(profile: SrtpProfile, key: &str, expected: &str) {
        let (plain, expected) = (unhex(GCM_RTCP), unhex(expected));
        let mut tx = gcm_session::<B>(profile, key);
        tx.set_next_srtcp_index(0x4d61_7273, 0x5d4).unwrap();
        let mut buf = plain.clone();
        buf.resize(plain.len() + 20, 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(&buf[..n], &expected[..], "{profile:?} protect");

        let mut buf = expected.clone();
        let n = gcm_session::<B>(profile, key)
            .unprotect_rtcp(&mut buf, expected.len())
            .unwrap();
        assert_eq!(&buf[..n], &plain[..], "{profile:?} unprotect");
    }

    fn rfc7714_all<B: Backend>() {
        rfc7714_srtp::<B>(SrtpProfile::AeadAes128Gcm, GCM_KEY_128, GCM_SRTP_128);
        rfc7714_srtp::<B>(SrtpProfile::AeadAes256Gcm, GCM_KEY_256, GCM_SRTP_256);
        rfc7714_srtcp::<B>(SrtpProfile::AeadAes128Gcm, GCM_KEY_128, GCM_SRTCP_128);
        rfc7714_srtcp::<B>(SrtpProfile::AeadAes256Gcm, GCM_KEY_256, GCM_SRTCP_256);

        // §17.3: unprotecting an authenticated-only SRTCP packet.
        let (plain, tagged) = (unhex(GCM_RTCP), unhex(GCM_SRTCP_128_UNENCRYPTED));
        let mut rx = gcm_session::<B>(SrtpProfile::AeadAes128Gcm, GCM_KEY_128);
        let mut buf = tagged.clone();
        let n = rx.unprotect_rtcp(&mut buf, tagged.len()).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
        // ... and one bit off in it fails.
        let mut rx = gcm_session::<B>(SrtpProfile::AeadAes128Gcm, GCM_KEY_128);
        let mut buf = tagged.clone();
        buf[20] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut buf, tagged.len()), Err(SrtpError::AuthFailed));
    }

    #[test]
    fn rfc7714_vectors_rustcrypto() {
        rfc7714_all::<RustCrypto>();
    }

    #[test]
    fn rfc7714_vectors_aws_lc() {
        rfc7714_all::<AwsLc>();
    }

    // ---- whole-path vectors from master keys (key derivation included) ----
    //
    // Packets protected by libsrtp with an all-zero master key and salt, as
    // published with pylibsrtp-independent SRTP implementations' tests: the
    // RTP packet is RFC 7714's, the RTCP packet an empty-bodied SR from
    // deadbeef sent as SRTCP index 1 (libsrtp's first index).

    const ZERO_RTCP: &str = "81c80005deadbeef0000000000000000000000000000000000000000";
    const CM80_SRTP: &str = "8040f17b8041f8d35501a0b2f82900a99893e1a918a9ba8cc1241874cb648b7b
        edb594fb7635a15d100320ea03d40e1b17747f4549bc572272c55413";
    const CM80_SRTCP: &str = "81c80005deadbeefbcddb2a1807f8ee7a890d503ef23d91b0bdeae8a80000001
        329c05e0a130307f0b1e";
    const GCM128_SRTP: &str = "8040f17b8041f8d35501a0b211743945e80b2e35a6e26008c248951f36eafc8d
        89a929fc54c9bab4f895957c4123e94a658ce832d76d50975fd2c9935d13ebb3ec4f";

    fn master_vectors<B: Backend>() {
        let zero = [0u8; 16];
        for (profile, cut) in [
            (SrtpProfile::AesCm128HmacSha1_80, 0),
            (SrtpProfile::AesCm128HmacSha1_32, 6),
        ] {
            let mut tx = Session::<B>::new(profile, &zero, &zero[..14]).unwrap();
            let plain = unhex(GCM_RTP);
            let expected = unhex(CM80_SRTP);
            let expected = &expected[..expected.len() - cut];
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
            assert_eq!(&buf[..n], expected, "{profile:?} SRTP");

            // SRTCP: the 80-bit tag for both suites (RFC 4568 §6.2.1).
            let plain = unhex(ZERO_RTCP);
            let expected = unhex(CM80_SRTCP);
            let mut buf = plain.clone();
            buf.resize(plain.len() + 20, 0);
            tx.set_next_srtcp_index(0xdead_beef, 1).unwrap();
            let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{profile:?} SRTCP");
            let mut rx = Session::<B>::new(profile, &zero, &zero[..14]).unwrap();
            let n = rx.unprotect_rtcp(&mut buf, expected.len()).unwrap();
            assert_eq!(&buf[..n], &plain[..]);
        }

        let mut tx = Session::<B>::new(SrtpProfile::AeadAes128Gcm, &zero, &zero[..12]).unwrap();
        let plain = unhex(GCM_RTP);
        let expected = unhex(GCM128_SRTP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 20, 0);
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_eq!(&buf[..n], &expected[..], "AEAD_AES_128_GCM SRTP");
    }

    #[test]
    fn master_key_vectors_rustcrypto() {
        master_vectors::<RustCrypto>();
    }

    #[test]
    fn master_key_vectors_aws_lc() {
        master_vectors::<AwsLc>();
    }

    /// Both backends produce the same bytes and accept each other's.
    #[test]
    fn backends_agree() {
        for profile in SrtpProfile::ALL {
            let mut a = session::<RustCrypto>(profile);
            let mut b = session::<AwsLc>(profile);
            let mut rx_a = session::<RustCrypto>(profile);
            let mut rx_b = session::<AwsLc>(profile);
            for (i, size) in [0usize, 1, 15, 16, 17, 160, 1188].into_iter().enumerate() {
                let packet = rtp(i as u16, 7, size);
                let (mut x, mut y) = (packet.clone(), packet.clone());
                x.resize(packet.len() + 20, 0);
                y.resize(packet.len() + 20, 0);
                let n = a.protect_rtp(&mut x, packet.len()).unwrap();
                let m = b.protect_rtp(&mut y, packet.len()).unwrap();
                assert_eq!(x[..n], y[..m], "{profile:?} {size}");
                assert_eq!(rx_b.unprotect_rtp(&mut x, n), Ok(packet.len()));
                assert_eq!(rx_a.unprotect_rtp(&mut y, m), Ok(packet.len()));

                let packet = rtcp(7);
                let (mut x, mut y) = (packet.clone(), packet.clone());
                x.resize(packet.len() + 20, 0);
                y.resize(packet.len() + 20, 0);
                let n = a.protect_rtcp(&mut x, packet.len()).unwrap();
                let m = b.protect_rtcp(&mut y, packet.len()).unwrap();
                assert_eq!(x[..n], y[..m], "{profile:?} RTCP");
                assert_eq!(rx_b.unprotect_rtcp(&mut x, n), Ok(packet.len()));
                assert_eq!(rx_a.unprotect_rtcp(&mut y, m), Ok(packet.len()));
            }
        }
    }

    // ---- behaviour ----

    #[test]
    fn round_trip_every_profile() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let mut rx = context(profile);
            assert_eq!(tx.profile(), profile);
            for (seq, size) in [0usize, 1, 16, 160, 1188].into_iter().enumerate() {
                let packet = rtp(seq as u16 + 1000, 0x1234_5678, size);
                let protected = protect(&mut tx, &packet, false);
                assert_eq!(protected.len(), packet.len() + profile.rtp_tag_len());
                assert_eq!(protected[..12], packet[..12], "header stays in the clear");
                if size >= 4 {
                    assert_ne!(protected[12..packet.len()], packet[12..], "payload encrypted");
                }
                assert_eq!(unprotect(&mut rx, &protected, false).unwrap(), packet);
            }
            // CSRCs and a header extension: all header, none encrypted.
            let mut packet = rtp(2000, 0x1234_5678, 40);
            packet[0] = 0x92;
            packet.splice(12..12, [1, 2, 3, 4, 5, 6, 7, 8, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]);
            let protected = protect(&mut tx, &packet, false);
            assert_eq!(protected[..28], packet[..28]);
            assert_eq!(unprotect(&mut rx, &protected, false).unwrap(), packet);

            for _ in 0..3 {
                let packet = rtcp(0x1234_5678);
                let protected = protect(&mut tx, &packet, true);
                assert_eq!(protected.len(), packet.len() + profile.rtcp_trailer_len());
                assert_eq!(protected[..8], packet[..8]);
                assert_ne!(protected[8..packet.len()], packet[8..]);
                assert_eq!(unprotect(&mut rx, &protected, true).unwrap(), packet);
            }
            assert_eq!(tx.ssrc_count(), 1);
            assert_eq!(rx.ssrc_count(), 1);
        }
    }

    #[test]
    fn srtcp_trailer_has_e_flag_and_counts_per_ssrc() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let word_at = |p: &[u8]| {
                let at = if profile.is_aead() {
                    p.len() - 4
                } else {
                    p.len() - 4 - 10
                };
                u32::from_be_bytes(p[at..at + 4].try_into().unwrap())
            };
            let a0 = protect(&mut tx, &rtcp(1), true);
            let a1 = protect(&mut tx, &rtcp(1), true);
            let b0 = protect(&mut tx, &rtcp(2), true);
            assert_eq!(word_at(&a0), 0x8000_0000);
            assert_eq!(word_at(&a1), 0x8000_0001);
            assert_eq!(word_at(&b0), 0x8000_0000);
        }
    }

    #[test]
    fn flipped_bit_anywhere_fails_authentication() {
        for profile in SrtpProfile::ALL {
            for rtcp_mode in [false, true] {
                let mut tx = context(profile);
                let mut rx = context(profile);
                let packet = if rtcp_mode { rtcp(99) } else { rtp(500, 99, 160) };
                let protected = protect(&mut tx, &packet, rtcp_mode);
                for bit in 0..protected.len() * 8 {
                    let mut forged = protected.clone();
                    forged[bit / 8] ^= 1 << (bit % 8);
                    let err = unprotect(&mut rx, &forged, rtcp_mode).unwrap_err();
                    // The X and CC bits change the header length: a header
                    // that no longer fits is TooShort; otherwise AuthFailed.
                    let header_bits = !rtcp_mode && bit / 8 == 0 && bit % 8 < 5;
                    assert!(
                        err == SrtpError::AuthFailed || (header_bits && err == SrtpError::TooShort),
                        "{profile:?} rtcp={rtcp_mode} bit {bit}: {err:?}"
                    );
                }
                // None of it moved any state: the real packet still passes,
                // as the first one of its SSRC.
                assert_eq!(rx.ssrc_count(), 0);
                assert_eq!(unprotect(&mut rx, &protected, rtcp_mode).unwrap(), packet);
            }
        }
    }

    #[test]
    fn replay_rejected_reordering_accepted() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let mut rx = context(profile);
            let packets: Vec<Vec<u8>> = (0..300u16).map(|s| protect(&mut tx, &rtp(s, 5, 20), false)).collect();
            // In order, then replayed.
            assert!(unprotect(&mut rx, &packets[10], false).is_ok());
            assert_eq!(unprotect(&mut rx, &packets[10], false), Err(SrtpError::Replayed));
            // Reordered within the window.
            assert!(unprotect(&mut rx, &packets[12], false).is_ok());
            assert!(unprotect(&mut rx, &packets[11], false).is_ok());
            assert_eq!(unprotect(&mut rx, &packets[11], false), Err(SrtpError::Replayed));
            assert!(unprotect(&mut rx, &packets[200], false).is_ok());
            assert!(unprotect(&mut rx, &packets[200 - 127], false).is_ok());
            assert_eq!(unprotect(&mut rx, &packets[200 - 127], false), Err(SrtpError::Replayed));
            // Behind the window.
            assert_eq!(unprotect(&mut rx, &packets[200 - 128], false), Err(SrtpError::TooOld));
            assert_eq!(unprotect(&mut rx, &packets[13], false), Err(SrtpError::TooOld));

            // SRTCP has its own window.
            let reports: Vec<Vec<u8>> = (0..200).map(|_| protect(&mut tx, &rtcp(5), true)).collect();
            assert!(unprotect(&mut rx, &reports[5], true).is_ok());
            assert_eq!(unprotect(&mut rx, &reports[5], true), Err(SrtpError::Replayed));
            assert!(unprotect(&mut rx, &reports[7], true).is_ok());
            assert!(unprotect(&mut rx, &reports[6], true).is_ok());
            assert_eq!(unprotect(&mut rx, &reports[6], true), Err(SrtpError::Replayed));
            assert!(unprotect(&mut rx, &reports[199], true).is_ok());
            assert_eq!(unprotect(&mut rx, &reports[8], true), Err(SrtpError::TooOld));
        }
    }

    #[test]
    fn sequence_wrap_increments_roc() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let mut rx = context(profile);
            let seqs = [65533u16, 65534, 65535, 0, 1, 2];
            let mut packets = Vec::new();
            for seq in seqs {
                let p = protect(&mut tx, &rtp(seq, 9, 32), false);
                packets.push((seq, p));
            }
            assert_eq!(tx.roc(9), Some(1));
            // Delivered out of order across the wrap.
            for i in [0, 1, 3, 2, 5, 4] {
                let (seq, p) = &packets[i];
                assert_eq!(unprotect(&mut rx, p, false).unwrap(), rtp(*seq, 9, 32), "seq {seq}");
            }
            assert_eq!(rx.roc(9), Some(1));
            // A packet of ROC 1 encrypted as ROC 0 fails: the ROC is in the tag/IV.
            let mut other_tx = context(profile);
            let p = protect(&mut other_tx, &rtp(3, 9, 32), false);
            assert_eq!(unprotect(&mut rx, &p, false), Err(SrtpError::AuthFailed));
            assert_eq!(rx.roc(9), Some(1));
        }
    }

    #[test]
    fn unauthenticated_packet_moves_no_state() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let mut rx = context(profile);
            let good_65535 = protect(&mut tx, &rtp(65535, 3, 10), false);
            assert!(unprotect(&mut rx, &good_65535, false).is_ok());
            assert_eq!(rx.roc(3), Some(0));

            // A forged packet with seq 0 (would be ROC 1) and far ahead.
            for seq in [0u16, 300, 32000] {
                let mut forged = protect(&mut context(profile), &rtp(seq, 3, 10), false);
                let last = forged.len() - 1;
                forged[last] ^= 0x80;
                assert_eq!(unprotect(&mut rx, &forged, false), Err(SrtpError::AuthFailed));
                assert_eq!(rx.roc(3), Some(0));
            }
            // The window did not slide: a late packet of ROC 0 is still fine.
            let _ = protect(&mut tx, &rtp(65500, 3, 10), false);
            let late = protect(&mut context(profile), &rtp(65500, 3, 10), false);
            assert!(unprotect(&mut rx, &late, false).is_ok());

            // An SSRC whose packets never authenticate is never remembered.
            let mut forged = protect(&mut context(profile), &rtp(1, 77, 10), false);
            forged[14] ^= 1;
            assert_eq!(unprotect(&mut rx, &forged, false), Err(SrtpError::AuthFailed));
            assert_eq!(rx.ssrc_count(), 1);
            let mut forged = protect(&mut context(profile), &rtcp(78), true);
            forged[9] ^= 1;
            assert_eq!(unprotect(&mut rx, &forged, true), Err(SrtpError::AuthFailed));
            assert_eq!(rx.ssrc_count(), 1);
        }
    }

    #[test]
    fn truncated_inputs_are_too_short() {
        for profile in SrtpProfile::ALL {
            for rtcp_mode in [false, true] {
                let mut tx = context(profile);
                let mut rx = context(profile);
                let packet = if rtcp_mode { rtcp(4) } else { rtp(8, 4, 30) };
                let protected = protect(&mut tx, &packet, rtcp_mode);
                let minimum = if rtcp_mode {
                    8 + profile.rtcp_trailer_len()
                } else {
                    12 + profile.rtp_tag_len()
                };
                for len in 0..protected.len() {
                    let err = unprotect(&mut rx, &protected[..len], rtcp_mode).unwrap_err();
                    if len < minimum {
                        assert_eq!(err, SrtpError::TooShort, "{profile:?} len {len}");
                    } else {
                        assert_eq!(err, SrtpError::AuthFailed, "{profile:?} len {len}");
                    }
                }
                // Too short to protect.
                let mut buf = [0u8; 64];
                let short = if rtcp_mode { 7 } else { 11 };
                let r = if rtcp_mode {
                    tx.protect_rtcp(&mut buf, short)
                } else {
                    tx.protect_rtp(&mut buf, short)
                };
                assert_eq!(r, Err(SrtpError::TooShort));
            }
            // A header whose CSRC count or extension runs past the packet.
            let mut tx = context(profile);
            let mut lying = rtp(1, 4, 8);
            lying[0] = 0x8f; // 15 CSRCs
            let mut buf = lying.clone();
            buf.resize(64, 0);
            assert_eq!(tx.protect_rtp(&mut buf, lying.len()), Err(SrtpError::TooShort));
            let mut lying = rtp(1, 4, 8);
            lying[0] = 0x90;
            lying[14] = 0xff; // extension length 0xff.. words
            let mut buf = lying.clone();
            buf.resize(64, 0);
            assert_eq!(tx.protect_rtp(&mut buf, lying.len()), Err(SrtpError::TooShort));
        }
    }

    #[test]
    fn no_room_and_bad_len() {
        for profile in SrtpProfile::ALL {
            let mut ctx = context(profile);
            let packet = rtp(1, 1, 20);
            let mut buf = packet.clone();
            buf.resize(packet.len() + profile.rtp_tag_len() - 1, 0);
            assert_eq!(ctx.protect_rtp(&mut buf, packet.len()), Err(SrtpError::NoRoom));
            let packet = rtcp(1);
            let mut buf = packet.clone();
            buf.resize(packet.len() + profile.rtcp_trailer_len() - 1, 0);
            assert_eq!(ctx.protect_rtcp(&mut buf, packet.len()), Err(SrtpError::NoRoom));
            let mut buf = [0u8; 40];
            assert_eq!(ctx.protect_rtp(&mut buf, 41), Err(SrtpError::NoRoom));
            assert_eq!(ctx.unprotect_rtp(&mut buf, 41), Err(SrtpError::NoRoom));
            assert_eq!(ctx.protect_rtcp(&mut buf, 41), Err(SrtpError::NoRoom));
            assert_eq!(ctx.unprotect_rtcp(&mut buf, 41), Err(SrtpError::NoRoom));
        }
    }

    #[test]
    fn at_most_64_ssrcs() {
        for profile in SrtpProfile::ALL {
            let mut tx = context(profile);
            let mut rx = context(profile);
            for ssrc in 0..MAX_SSRCS as u32 {
                let p = protect(&mut tx, &rtp(1, ssrc, 4), false);
                assert!(unprotect(&mut rx, &p, false).is_ok());
            }
            let mut buf = rtp(1, 1000, 4);
            buf.resize(40, 0);
            assert_eq!(tx.protect_rtp(&mut buf, 16), Err(SrtpError::TooManySsrcs));
            let p = protect(&mut context(profile), &rtp(1, 1000, 4), false);
            assert_eq!(unprotect(&mut rx, &p, false), Err(SrtpError::TooManySsrcs));
            // Known SSRCs keep working.
            let p = protect(&mut tx, &rtp(2, 5, 4), false);
            assert!(unprotect(&mut rx, &p, false).is_ok());
            assert_eq!(rx.ssrc_count(), MAX_SSRCS);
        }
    }

    #[test]
    fn debug_shows_no_keys() {
        let ctx = context(SrtpProfile::AeadAes128Gcm);
        let s = format!("{ctx:?}");
        assert!(s.contains("AeadAes128Gcm"), "{s}");
        assert!(!s.contains("e1"), "{s}");
    }

    #[test]
    fn fuzzing_entry_point_round_trips() {
        fuzzing::srtp_unprotect(&rtp(1, 2, 50));
        fuzzing::srtp_unprotect(&rtcp(2));
        fuzzing::srtp_unprotect(&[]);
        fuzzing::srtp_unprotect(&[0x90; 13]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Unprotecting arbitrary bytes, with any claimed length, returns an
        /// error or a length, never panics; and a fresh context stays empty
        /// unless the bytes authenticated (they never do by chance).
        #[test]
        fn unprotect_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            extra in 0usize..40,
            profile_index in 0usize..4,
        ) {
            let profile = SrtpProfile::ALL[profile_index];
            let mut rx = context(profile);
            let mut buf = data.clone();
            let _ = rx.unprotect_rtp(&mut buf, data.len());
            let mut buf = data.clone();
            let _ = rx.unprotect_rtcp(&mut buf, data.len());
            let mut buf = data.clone();
            let _ = rx.unprotect_rtp(&mut buf, data.len() + extra);
            let _ = rx.unprotect_rtcp(&mut buf, data.len() + extra);
            prop_assert_eq!(rx.ssrc_count(), 0);
        }

        /// Protect then unprotect gives the packet back, for any RTP header
        /// shape the packet happens to have.
        #[test]
        fn round_trip_arbitrary_packets(
            data in proptest::collection::vec(any::<u8>(), 12..400),
            profile_index in 0usize..4,
        ) {
            let profile = SrtpProfile::ALL[profile_index];
            fuzzing::srtp_unprotect(&data);
            let mut tx = context(profile);
            let mut rx = context(profile);
            let mut buf = data.clone();
            buf.resize(data.len() + MAX_SRTP_OVERHEAD, 0);
            if let Ok(n) = tx.protect_rtp(&mut buf, data.len()) {
                prop_assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(data.len()));
                prop_assert_eq!(&buf[..data.len()], &data[..]);
            }
        }
    }
}
