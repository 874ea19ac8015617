//! The backend [`SrtpContext`](crate::srtp::SrtpContext) uses: each
//! primitive from the library that measured fastest for it.

use super::{AwsLc, Backend, RustCrypto};
use crate::srtp::SrtpError;

/// RustCrypto's AES-CTR and HMAC-SHA1 (AES-CM profiles) with AWS-LC's AES-GCM
/// (AEAD profiles).
///
/// `benches/srtp.rs` on the development machine (AMD EPYC with AES-NI,
/// VAES, PCLMULQDQ and SHA-NI): for AES-CM + HMAC-SHA1, RustCrypto took
/// 10-25 % less time per packet than AWS-LC (its SHA-NI SHA-1, under
/// `rustcrypto::HmacSha1`, has no per-call FFI and
/// context-copy cost; *ring*'s HMAC-SHA1 has no SHA-NI and was 3-4 times
/// slower); for AES-GCM, AWS-LC's stitched assembly was 2x
/// (172-byte packets) to 5x (1200-byte packets) faster than RustCrypto's
/// `aes-gcm`, and faster than *ring*'s.
#[derive(Debug)]
pub enum Mixed {}

impl Backend for Mixed {
    type Ctr = <RustCrypto as Backend>::Ctr;
    type Hmac = <RustCrypto as Backend>::Hmac;
    type Gcm = <AwsLc as Backend>::Gcm;

    fn aes_cm_prf(key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        RustCrypto::aes_cm_prf(key, iv, data)
    }

    fn ctr_new(key: &[u8]) -> Result<Self::Ctr, SrtpError> {
        RustCrypto::ctr_new(key)
    }

    fn ctr_apply(key: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        RustCrypto::ctr_apply(key, iv, data)
    }

    fn hmac_new(key: &[u8]) -> Result<Self::Hmac, SrtpError> {
        RustCrypto::hmac_new(key)
    }

    fn hmac_sha1(key: &Self::Hmac, data: &[u8], suffix: &[u8]) -> [u8; 20] {
        RustCrypto::hmac_sha1(key, data, suffix)
    }

    fn gcm_new(key: &[u8]) -> Result<Self::Gcm, SrtpError> {
        AwsLc::gcm_new(key)
    }

    fn gcm_seal(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Result<[u8; 16], SrtpError> {
        AwsLc::gcm_seal(key, nonce, aad, data)
    }

    fn gcm_open(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data_and_tag: &mut [u8]) -> Result<(), SrtpError> {
        AwsLc::gcm_open(key, nonce, aad, data_and_tag)
    }
}
