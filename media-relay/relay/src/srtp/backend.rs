//! Crypto primitives behind SRTP: AES-CTR (the AES-CM keystream of
//! RFC 3711 §4.1.1), HMAC-SHA1 (§4.2.1) and AES-GCM (RFC 7714).
//!
//! Each backend implements [`Backend`]; [`Chosen`] is the one
//! [`SrtpContext`](super::SrtpContext) uses, picked by `benches/srtp.rs`
//! (see [`Mixed`]). [`Session`] is exported here, generic over the backend,
//! only so that the benchmark can time every backend through the same packet
//! code; this module is not a stable API.

mod awslc;
mod mixed;
mod rustcrypto;

pub use self::awslc::AwsLc;
pub use self::mixed::Mixed;
pub use self::rustcrypto::RustCrypto;
pub use super::session::Session;
use super::SrtpError;

/// The backend [`SrtpContext`](super::SrtpContext) uses.
pub type Chosen = Mixed;

/// A provider of the keyed primitives SRTP needs. Every method works in
/// place or on the stack: none may allocate.
pub trait Backend {
    /// An AES key schedule for counter mode (AES-128 for AES-CM).
    type Ctr;
    /// An HMAC-SHA1 key with its padded key blocks precomputed.
    type Hmac;
    /// An AES-GCM key (128 or 256 bits) with its GHASH key precomputed.
    type Gcm;

    /// XORs `data` with the AES counter-mode keystream of `key` (16 or 32
    /// bytes) from the initial counter block `iv`: the PRF of RFC 3711
    /// §4.3.3, used once per session key.
    fn aes_cm_prf(key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError>;

    /// Expands an AES-128 key for AES-CM.
    fn ctr_new(key: &[u8]) -> Result<Self::Ctr, SrtpError>;
    /// XORs `data` with the keystream from the initial counter block `iv`
    /// (the counter is the low bits of the block, incremented big-endian).
    fn ctr_apply(key: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError>;

    /// Prepares an HMAC-SHA1 key.
    fn hmac_new(key: &[u8]) -> Result<Self::Hmac, SrtpError>;
    /// HMAC-SHA1 of `data` followed by `suffix` (the ROC for SRTP).
    fn hmac_sha1(key: &Self::Hmac, data: &[u8], suffix: &[u8]) -> [u8; 20];

    /// Prepares an AES-GCM key of 16 or 32 bytes.
    fn gcm_new(key: &[u8]) -> Result<Self::Gcm, SrtpError>;
    /// Encrypts `data` in place and returns the 16-byte tag.
    fn gcm_seal(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Result<[u8; 16], SrtpError>;
    /// Verifies `data_and_tag` (ciphertext, then the 16-byte tag) and
    /// decrypts the ciphertext in place; [`SrtpError::AuthFailed`] if the tag
    /// is wrong.
    fn gcm_open(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data_and_tag: &mut [u8]) -> Result<(), SrtpError>;
}
