//! The packet transforms of RFC 3711 and RFC 7714 over a crypto [`Backend`],
//! and the per-SSRC state behind them.

use super::backend::Backend;
use super::kdf::{self, Label};
use super::replay::{estimate_index, ReplayWindow};
use super::{SrtpError, SrtpProfile, MAX_SSRCS};

/// Bytes at the start of a [`Session`] that protecting or unprotecting an
/// RTP packet reads, for every profile (`repr(C)` keeps them there; a test
/// checks it): six cache lines.
const RTP_HOT_BYTES: usize = 384;

/// Fixed part of an RTP header (RFC 3550 §5.1).
const RTP_HEADER: usize = 12;
/// RTCP header up to and including the sender SSRC (RFC 3711 §3.4: the
/// first 8 bytes stay in the clear).
const RTCP_HEADER: usize = 8;
/// The E flag of the SRTCP trailer word.
const E_FLAG: u32 = 0x8000_0000;
/// SRTCP indices are 31 bits (RFC 3711 §3.4).
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
/// AES-GCM tag length (RFC 7714 §4).
const GCM_TAG: usize = 16;

/// Length of the RTP header at the start of `packet`: 12 bytes, 4 per CSRC,
/// and the header extension (4-byte header + 4 * its length field) when the
/// X bit is set (RFC 3550 §5.1, §5.3.1). [`SrtpError::TooShort`] when the
/// header claims more bytes than `packet` holds.
pub(super) fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::TooShort)?;
    let mut len = RTP_HEADER + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = packet.get(len..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > packet.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Constant-time comparison of two tags of equal length.
fn tags_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AES-CM initial counter block (RFC 3711 §4.1.1):
/// `IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)`.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..16].iter_mut().zip((index << 16).to_be_bytes()) {
        *d ^= s;
    }
    iv
}

/// AEAD IV (RFC 7714 §8.1 for SRTP, §9.1 for SRTCP): the salt XOR
/// `00 00 || SSRC || high || low`, with `high || low` = `ROC || SEQ` (SRTP)
/// or `00 00 || 0 || SRTCP index` (SRTCP).
fn gcm_iv(salt: &[u8; 12], ssrc: u32, high: u32, low: u16) -> [u8; 12] {
    let mut iv = *salt;
    let mut word = [0u8; 12];
    word[2..6].copy_from_slice(&ssrc.to_be_bytes());
    word[6..10].copy_from_slice(&high.to_be_bytes());
    word[10..12].copy_from_slice(&low.to_be_bytes());
    for (d, s) in iv.iter_mut().zip(word) {
        *d ^= s;
    }
    iv
}

/// AES-CM session keys of one of SRTP or SRTCP, the small hot fields
/// before the AES key schedule.
#[repr(C)]
struct CmKeys<B: Backend> {
    mac: B::Hmac,
    salt: [u8; 14],
    cipher: B::Ctr,
}

/// AEAD session keys of one of SRTP or SRTCP.
#[repr(C)]
struct GcmKeys<B: Backend> {
    aead: B::Gcm,
    salt: [u8; 12],
}

/// The SRTP keys first (`repr(C)`: in field order, after the tag).
#[repr(C, u8)]
enum Transform<B: Backend> {
    AesCm { rtp: CmKeys<B>, rtcp: CmKeys<B> },
    Gcm { rtp: GcmKeys<B>, rtcp: GcmKeys<B> },
}

/// Session keys given directly, without derivation (the RFC 7714 test
/// vectors are stated this way).
#[cfg(test)]
pub(super) struct SessionKeys<'a> {
    pub(super) rtp_key: &'a [u8],
    pub(super) rtp_salt: &'a [u8],
    pub(super) rtp_auth: &'a [u8],
    pub(super) rtcp_key: &'a [u8],
    pub(super) rtcp_salt: &'a [u8],
    pub(super) rtcp_auth: &'a [u8],
}

/// Per-SSRC state. A context is used for one direction, so only the `send_*`
/// or only the `recv_*` fields move; keeping both costs a few bytes and keeps
/// a context used both ways (tests, loopback) correct.
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    /// Highest SRTP index sent.
    send_rtp: Option<u64>,
    /// Next SRTCP index to send.
    send_rtcp: u32,
    /// Highest SRTP index received and the replay window below it.
    recv_rtp: Option<ReplayWindow>,
    /// Highest SRTCP index received and the replay window below it.
    recv_rtcp: Option<ReplayWindow>,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            send_rtp: None,
            send_rtcp: 0,
            recv_rtp: None,
            recv_rtcp: None,
        }
    }
}

/// One direction of one SRTP session over backend `B`; see
/// [`SrtpContext`](super::SrtpContext), which wraps the chosen backend's.
///
/// Laid out (`repr(C)`, on a cache line of its own) so that what every RTP
/// packet reads comes first and together: the first SSRC's state (inline: a
/// call has one SSRC per direction, so forwarding it follows no pointer), the
/// profile, then the SRTP keys (for AES-CM: HMAC state, salt, then the AES
/// round keys); the SRTCP keys and any further SSRCs last.
#[repr(C, align(64))]
pub struct Session<B: Backend> {
    first: Option<Stream>,
    profile: SrtpProfile,
    transform: Transform<B>,
    more: Vec<Stream>,
}

impl<B: Backend> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("profile", &self.profile)
            .field("ssrcs", &self.ssrc_count())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Session<B> {
    /// Derives the session keys from a master key and salt (RFC 3711 §4.3).
    pub fn new(profile: SrtpProfile, master_key: &[u8], master_salt: &[u8]) -> Result<Self, SrtpError> {
        if master_key.len() != profile.key_len() {
            return Err(SrtpError::BadKeyLength);
        }
        if master_salt.len() != profile.salt_len() {
            return Err(SrtpError::BadSaltLength);
        }
        let (mk, ms) = (master_key, master_salt);
        let transform = if profile.is_aead() {
            let gcm = |key_label, salt_label| -> Result<GcmKeys<B>, SrtpError> {
                let mut key = [0u8; 32];
                let key = &mut key[..profile.key_len()];
                kdf::derive::<B>(mk, ms, key_label, key)?;
                let mut salt = [0u8; 12];
                kdf::derive::<B>(mk, ms, salt_label, &mut salt)?;
                let aead = B::gcm_new(key)?;
                key.fill(0);
                Ok(GcmKeys { aead, salt })
            };
            Transform::Gcm {
                rtp: gcm(Label::RtpEncryption, Label::RtpSalt)?,
                rtcp: gcm(Label::RtcpEncryption, Label::RtcpSalt)?,
            }
        } else {
            let cm = |key_label, auth_label, salt_label| -> Result<CmKeys<B>, SrtpError> {
                let mut key = [0u8; 16];
                kdf::derive::<B>(mk, ms, key_label, &mut key)?;
                // RFC 3711 §8.2: n_a = 160 bits for HMAC-SHA1.
                let mut auth = [0u8; 20];
                kdf::derive::<B>(mk, ms, auth_label, &mut auth)?;
                let mut salt = [0u8; 14];
                kdf::derive::<B>(mk, ms, salt_label, &mut salt)?;
                let keys = CmKeys {
                    cipher: B::ctr_new(&key)?,
                    mac: B::hmac_new(&auth)?,
                    salt,
                };
                key.fill(0);
                auth.fill(0);
                Ok(keys)
            };
            Transform::AesCm {
                rtp: cm(Label::RtpEncryption, Label::RtpAuthentication, Label::RtpSalt)?,
                rtcp: cm(Label::RtcpEncryption, Label::RtcpAuthentication, Label::RtcpSalt)?,
            }
        };
        Ok(Self {
            profile,
            transform,
            first: None,
            more: Vec::new(),
        })
    }

    /// A session from session keys given directly (no key derivation).
    #[cfg(test)]
    pub(super) fn from_session_keys(profile: SrtpProfile, keys: &SessionKeys<'_>) -> Result<Self, SrtpError> {
        let transform = if profile.is_aead() {
            let gcm = |key: &[u8], salt: &[u8]| -> Result<GcmKeys<B>, SrtpError> {
                Ok(GcmKeys {
                    aead: B::gcm_new(key)?,
                    salt: salt.try_into().map_err(|_| SrtpError::BadSaltLength)?,
                })
            };
            Transform::Gcm {
                rtp: gcm(keys.rtp_key, keys.rtp_salt)?,
                rtcp: gcm(keys.rtcp_key, keys.rtcp_salt)?,
            }
        } else {
            let cm = |key: &[u8], salt: &[u8], auth: &[u8]| -> Result<CmKeys<B>, SrtpError> {
                Ok(CmKeys {
                    cipher: B::ctr_new(key)?,
                    mac: B::hmac_new(auth)?,
                    salt: salt.try_into().map_err(|_| SrtpError::BadSaltLength)?,
                })
            };
            Transform::AesCm {
                rtp: cm(keys.rtp_key, keys.rtp_salt, keys.rtp_auth)?,
                rtcp: cm(keys.rtcp_key, keys.rtcp_salt, keys.rtcp_auth)?,
            }
        };
        Ok(Self {
            profile,
            transform,
            first: None,
            more: Vec::new(),
        })
    }

    /// Sets the next SRTCP index to send for `ssrc` (test vectors start
    /// mid-stream).
    #[cfg(test)]
    pub(super) fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) -> Result<(), SrtpError> {
        let slot = self.slot(ssrc)?;
        self.stream_mut(slot).send_rtcp = index & SRTCP_INDEX_MASK;
        Ok(())
    }

    /// Starts loading into the caches what protecting or unprotecting an
    /// RTP packet reads: the first [`RTP_HOT_BYTES`] of the session (the
    /// first SSRC's state, the profile and the SRTP keys; for AES-CM up to
    /// the end of the AES-128 round keys, the part of the key schedule AES-NI
    /// uses). A fixed length, so that nothing of the session is read (and
    /// waited for) to issue it. See [`crate::sys::prefetch`].
    pub fn prefetch_rtp(&self) {
        crate::sys::prefetch(self, RTP_HOT_BYTES);
    }

    /// Where what an RTP packet reads ends, from the start of the session.
    #[cfg(test)]
    fn rtp_hot_end(&self) -> usize {
        /// AES-128 round keys: 11 blocks of 16 bytes.
        const AES128_ROUND_KEYS: usize = 176;
        let base = self as *const Self as usize;
        match &self.transform {
            Transform::AesCm { rtp, .. } => &rtp.cipher as *const B::Ctr as usize + AES128_ROUND_KEYS - base,
            Transform::Gcm { rtp, .. } => rtp as *const GcmKeys<B> as usize + std::mem::size_of::<GcmKeys<B>>() - base,
        }
    }

    /// The protection profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Number of SSRCs with state.
    pub fn ssrc_count(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn streams(&self) -> impl Iterator<Item = &Stream> {
        self.first.iter().chain(&self.more)
    }

    /// The state in `slot` (an index of [`Self::streams`]).
    fn stream(&self, slot: usize) -> &Stream {
        match (slot, &self.first) {
            (0, Some(s)) => s,
            _ => &self.more[slot - 1],
        }
    }

    /// The state in `slot`, to change.
    fn stream_mut(&mut self, slot: usize) -> &mut Stream {
        match (slot, &mut self.first) {
            (0, Some(s)) => s,
            _ => &mut self.more[slot - 1],
        }
    }

    fn push_stream(&mut self, stream: Stream) {
        match self.first {
            None => self.first = Some(stream),
            Some(_) => self.more.push(stream),
        }
    }

    /// The ROC of an SSRC's SRTP stream: the received one if this context
    /// received SRTP for it, else the sent one.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        let s = self.streams().find(|s| s.ssrc == ssrc)?;
        let highest = s.recv_rtp.map(|w| w.top()).or(s.send_rtp)?;
        Some((highest >> 16) as u32)
    }

    /// The slot of `ssrc`. The inline first stream is tried on its own:
    /// looking at `more` (its pointer and length sit at the session's cold
    /// end) costs a cache miss per packet, in `perf` a fifth of the SRTP
    /// code's time.
    fn find(&self, ssrc: u32) -> Option<usize> {
        match &self.first {
            Some(s) if s.ssrc == ssrc => Some(0),
            Some(_) => self.more.iter().position(|s| s.ssrc == ssrc).map(|i| i + 1),
            None => None,
        }
    }

    /// The slot of `ssrc`, created if new and there is room.
    fn slot(&mut self, ssrc: u32) -> Result<usize, SrtpError> {
        match self.find(ssrc) {
            Some(i) => Ok(i),
            None if self.ssrc_count() < MAX_SSRCS => {
                self.push_stream(Stream::new(ssrc));
                Ok(self.ssrc_count() - 1)
            }
            None => Err(SrtpError::TooManySsrcs),
        }
    }

    /// The state of `ssrc` if known, a fresh one if there is room for it
    /// (not stored until the packet authenticated), else `TooManySsrcs`.
    fn peek(&self, ssrc: u32) -> Result<(Option<usize>, Stream), SrtpError> {
        match self.find(ssrc) {
            Some(i) => Ok((Some(i), *self.stream(i))),
            None if self.ssrc_count() < MAX_SSRCS => Ok((None, Stream::new(ssrc))),
            None => Err(SrtpError::TooManySsrcs),
        }
    }

    /// Stores the state of a packet that authenticated.
    fn commit(&mut self, slot: Option<usize>, stream: Stream) -> Result<(), SrtpError> {
        match slot {
            Some(i) => *self.stream_mut(i) = stream,
            None if self.ssrc_count() < MAX_SSRCS => self.push_stream(stream),
            None => return Err(SrtpError::TooManySsrcs),
        }
        Ok(())
    }

    /// RFC 3711 §3.3 (AES-CM) and RFC 7714 §8 (AEAD): see
    /// [`SrtpContext::protect_rtp`](super::SrtpContext::protect_rtp).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::NoRoom)?;
        let header_len = rtp_header_len(packet)?;
        let end = len + self.profile.rtp_tag_len();
        if buf.len() < end {
            return Err(SrtpError::NoRoom);
        }
        let seq = be16(buf, 2);
        let ssrc = be32(buf, 8);

        let slot = self.slot(ssrc)?;
        let sent = self.stream(slot).send_rtp;
        let index = match sent {
            None => u64::from(seq),
            Some(highest) => estimate_index(highest, seq).ok_or(SrtpError::TooOld)?,
        };
        let roc = (index >> 16) as u32;

        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let iv = cm_iv(&rtp.salt, ssrc, index);
                B::ctr_apply(&rtp.cipher, &iv, &mut buf[header_len..len])?;
                // RFC 3711 §4.2: the tag covers the packet and then the ROC.
                let tag = B::hmac_sha1(&rtp.mac, &buf[..len], &roc.to_be_bytes());
                buf[len..end].copy_from_slice(&tag[..end - len]);
            }
            Transform::Gcm { rtp, .. } => {
                let iv = gcm_iv(&rtp.salt, ssrc, roc, seq);
                // RFC 7714 §8.2: the AAD is the whole RTP header.
                let (header, rest) = buf.split_at_mut(header_len);
                let tag = B::gcm_seal(&rtp.aead, &iv, header, &mut rest[..len - header_len])?;
                buf[len..end].copy_from_slice(&tag);
            }
        }

        if sent.is_none_or(|h| index > h) {
            self.stream_mut(slot).send_rtp = Some(index);
        }
        Ok(end)
    }

    /// RFC 3711 §3.3 (AES-CM) and RFC 7714 §8 (AEAD): see
    /// [`SrtpContext::unprotect_rtp`](super::SrtpContext::unprotect_rtp).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::NoRoom)?;
        let tag_len = self.profile.rtp_tag_len();
        let body = len
            .checked_sub(tag_len)
            .filter(|&b| b >= RTP_HEADER)
            .ok_or(SrtpError::TooShort)?;
        let header_len = rtp_header_len(&packet[..body])?;
        let seq = be16(buf, 2);
        let ssrc = be32(buf, 8);

        // RFC 3711 §3.3: estimate the index, check the replay list, then
        // authenticate; only then update ROC, s_l and the list.
        let (slot, mut stream) = self.peek(ssrc)?;
        let index = match stream.recv_rtp {
            None => u64::from(seq),
            Some(w) => {
                let index = estimate_index(w.top(), seq).ok_or(SrtpError::TooOld)?;
                w.check(index)?;
                index
            }
        };
        let roc = (index >> 16) as u32;

        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let tag = B::hmac_sha1(&rtp.mac, &buf[..body], &roc.to_be_bytes());
                if !tags_equal(&tag[..tag_len], &buf[body..len]) {
                    return Err(SrtpError::AuthFailed);
                }
                let iv = cm_iv(&rtp.salt, ssrc, index);
                B::ctr_apply(&rtp.cipher, &iv, &mut buf[header_len..body])?;
            }
            Transform::Gcm { rtp, .. } => {
                let iv = gcm_iv(&rtp.salt, ssrc, roc, seq);
                let (header, rest) = buf.split_at_mut(header_len);
                B::gcm_open(&rtp.aead, &iv, header, &mut rest[..len - header_len])?;
            }
        }

        match &mut stream.recv_rtp {
            Some(w) => w.accept(index),
            None => stream.recv_rtp = Some(ReplayWindow::new(index)),
        }
        self.commit(slot, stream)?;
        Ok(body)
    }

    /// RFC 3711 §3.4 (AES-CM) and RFC 7714 §9 (AEAD): see
    /// [`SrtpContext::protect_rtcp`](super::SrtpContext::protect_rtcp).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len > buf.len() {
            return Err(SrtpError::NoRoom);
        }
        if len < RTCP_HEADER {
            return Err(SrtpError::TooShort);
        }
        let end = len + self.profile.rtcp_trailer_len();
        if buf.len() < end {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = be32(buf, 4);
        let slot = self.slot(ssrc)?;
        let index = self.stream(slot).send_rtcp;
        let e_index = (E_FLAG | index).to_be_bytes();

        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                // Packet || E || SRTCP index || tag; the tag covers all before it.
                let iv = cm_iv(&rtcp.salt, ssrc, u64::from(index));
                B::ctr_apply(&rtcp.cipher, &iv, &mut buf[RTCP_HEADER..len])?;
                buf[len..len + 4].copy_from_slice(&e_index);
                let tag = B::hmac_sha1(&rtcp.mac, &buf[..len + 4], &[]);
                buf[len + 4..end].copy_from_slice(&tag[..end - len - 4]);
            }
            Transform::Gcm { rtcp, .. } => {
                // RFC 7714 §9.1: header || ciphertext || tag || E || SRTCP
                // index, the AAD being the header and the E/index word.
                let iv = gcm_iv(&rtcp.salt, ssrc, 0, 0);
                let iv = xor_index(iv, index);
                let mut aad = [0u8; RTCP_HEADER + 4];
                aad[..RTCP_HEADER].copy_from_slice(&buf[..RTCP_HEADER]);
                aad[RTCP_HEADER..].copy_from_slice(&e_index);
                let tag = B::gcm_seal(&rtcp.aead, &iv, &aad, &mut buf[RTCP_HEADER..len])?;
                buf[len..len + GCM_TAG].copy_from_slice(&tag);
                buf[len + GCM_TAG..end].copy_from_slice(&e_index);
            }
        }

        // RFC 3711 §3.4: incremented by one, modulo 2^31, after each packet.
        self.stream_mut(slot).send_rtcp = index.wrapping_add(1) & SRTCP_INDEX_MASK;
        Ok(end)
    }

    /// RFC 3711 §3.4 (AES-CM) and RFC 7714 §9 (AEAD): see
    /// [`SrtpContext::unprotect_rtcp`](super::SrtpContext::unprotect_rtcp).
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len > buf.len() {
            return Err(SrtpError::NoRoom);
        }
        let tag_len = self.profile.rtcp_tag_len();
        let body = len
            .checked_sub(self.profile.rtcp_trailer_len())
            .filter(|&b| b >= RTCP_HEADER)
            .ok_or(SrtpError::TooShort)?;
        let e_index_at = if self.profile.is_aead() { body + tag_len } else { body };
        let e_index = be32(buf, e_index_at);
        let encrypted = e_index & E_FLAG != 0;
        let index = e_index & SRTCP_INDEX_MASK;
        let ssrc = be32(buf, 4);

        let (slot, mut stream) = self.peek(ssrc)?;
        if let Some(w) = stream.recv_rtcp {
            w.check(u64::from(index))?;
        }

        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                let tag = B::hmac_sha1(&rtcp.mac, &buf[..body + 4], &[]);
                if !tags_equal(&tag[..tag_len], &buf[body + 4..len]) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    let iv = cm_iv(&rtcp.salt, ssrc, u64::from(index));
                    B::ctr_apply(&rtcp.cipher, &iv, &mut buf[RTCP_HEADER..body])?;
                }
            }
            Transform::Gcm { rtcp, .. } => {
                let iv = xor_index(gcm_iv(&rtcp.salt, ssrc, 0, 0), index);
                if encrypted {
                    let mut aad = [0u8; RTCP_HEADER + 4];
                    aad[..RTCP_HEADER].copy_from_slice(&buf[..RTCP_HEADER]);
                    aad[RTCP_HEADER..].copy_from_slice(&e_index.to_be_bytes());
                    B::gcm_open(&rtcp.aead, &iv, &aad, &mut buf[RTCP_HEADER..body + GCM_TAG])?;
                } else {
                    // RFC 7714 §9.2: not encrypted, so the whole packet and
                    // the E/index word are the AAD and the tag is a GMAC.
                    // Move the word next to the packet to make the AAD one
                    // slice; the tag goes to the stack.
                    let mut tag = [0u8; GCM_TAG];
                    tag.copy_from_slice(&buf[body..body + GCM_TAG]);
                    buf[body..body + 4].copy_from_slice(&e_index.to_be_bytes());
                    B::gcm_open(&rtcp.aead, &iv, &buf[..body + 4], &mut tag)?;
                }
            }
        }

        match &mut stream.recv_rtcp {
            Some(w) => w.accept(u64::from(index)),
            None => stream.recv_rtcp = Some(ReplayWindow::new(u64::from(index))),
        }
        self.commit(slot, stream)?;
        Ok(body)
    }
}

/// XORs a 31-bit SRTCP index into the last four bytes of an AEAD IV
/// (RFC 7714 §9.1).
fn xor_index(mut iv: [u8; 12], index: u32) -> [u8; 12] {
    for (d, s) in iv[8..12].iter_mut().zip(index.to_be_bytes()) {
        *d ^= s;
    }
    iv
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_len_counts_csrcs_and_extension() {
        let mut p = [0u8; 40];
        p[0] = 0x80;
        assert_eq!(rtp_header_len(&p[..12]), Ok(12));
        assert_eq!(rtp_header_len(&p[..11]), Err(SrtpError::TooShort));
        p[0] = 0x82; // two CSRCs
        assert_eq!(rtp_header_len(&p[..20]), Ok(20));
        assert_eq!(rtp_header_len(&p[..19]), Err(SrtpError::TooShort));
        p[0] = 0x91; // one CSRC and an extension of 2 words
        p[16..20].copy_from_slice(&[0xbe, 0xde, 0x00, 0x02]);
        assert_eq!(rtp_header_len(&p[..28]), Ok(28));
        assert_eq!(rtp_header_len(&p[..27]), Err(SrtpError::TooShort));
        assert_eq!(rtp_header_len(&p[..18]), Err(SrtpError::TooShort));
        p[18..20].copy_from_slice(&[0xff, 0xff]); // lies about its length
        assert_eq!(rtp_header_len(&p), Err(SrtpError::TooShort));
        assert_eq!(rtp_header_len(&[]), Err(SrtpError::TooShort));
    }

    #[test]
    fn aead_ivs_match_rfc_7714() {
        let salt: [u8; 12] = *b"Quid pro quo";
        // §16.1: SSRC 5501a0b2, ROC 0, SEQ f17b.
        let iv = gcm_iv(&salt, 0x5501_a0b2, 0, 0xf17b);
        assert_eq!(
            iv,
            [0x51, 0x75, 0x3c, 0x65, 0x80, 0xc2, 0x72, 0x6f, 0x20, 0x71, 0x84, 0x14]
        );
        // §17.1: SSRC 4d617273 ("Mars"), SRTCP index 5d4.
        let iv = xor_index(gcm_iv(&salt, 0x4d61_7273, 0, 0), 0x5d4);
        assert_eq!(
            iv,
            [0x51, 0x75, 0x24, 0x05, 0x52, 0x03, 0x72, 0x6f, 0x20, 0x71, 0x70, 0xbb]
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod layout_tests {
    use super::*;
    use crate::srtp::backend::Chosen;

    #[test]
    fn rtp_hot_bytes_cover_every_profile() {
        for profile in SrtpProfile::ALL {
            let s = Session::<Chosen>::new(
                profile,
                &[7u8; 32][..profile.key_len()],
                &[9u8; 14][..profile.salt_len()],
            )
            .unwrap();
            let end = s.rtp_hot_end();
            assert!(end <= RTP_HOT_BYTES, "{profile:?}: {end} > {RTP_HOT_BYTES}");
            // And not much more than needed: at most one line of slack.
            if profile == SrtpProfile::AesCm128HmacSha1_80 {
                assert!(RTP_HOT_BYTES - end < 64, "{profile:?}: {end}");
            }
        }
    }
}
