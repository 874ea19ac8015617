//! The AWS-LC backend (`aws-lc-rs`): assembly AES-CTR, HMAC-SHA1 and
//! stitched AES-GCM.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::Backend;
use crate::srtp::SrtpError;

/// AWS-LC's primitives through `aws-lc-rs`.
#[derive(Debug)]
pub enum AwsLc {}

impl Backend for AwsLc {
    type Ctr = EncryptingKey;
    type Hmac = hmac::Key;
    type Gcm = LessSafeKey;

    fn aes_cm_prf(key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        let alg = match key.len() {
            16 => &AES_128,
            32 => &AES_256,
            _ => return Err(SrtpError::BadKeyLength),
        };
        let key = UnboundCipherKey::new(alg, key).map_err(|_| SrtpError::BadKeyLength)?;
        let key = EncryptingKey::ctr(key).map_err(|_| SrtpError::BadKeyLength)?;
        Self::ctr_apply(&key, iv, data)
    }

    fn ctr_new(key: &[u8]) -> Result<Self::Ctr, SrtpError> {
        if key.len() != 16 {
            return Err(SrtpError::BadKeyLength);
        }
        let key = UnboundCipherKey::new(&AES_128, key).map_err(|_| SrtpError::BadKeyLength)?;
        EncryptingKey::ctr(key).map_err(|_| SrtpError::BadKeyLength)
    }

    fn ctr_apply(key: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        if data.is_empty() {
            return Ok(());
        }
        key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(*iv)))
            .map(|_| ())
            .map_err(|_| SrtpError::Crypto)
    }

    fn hmac_new(key: &[u8]) -> Result<Self::Hmac, SrtpError> {
        Ok(hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key))
    }

    fn hmac_sha1(key: &Self::Hmac, data: &[u8], suffix: &[u8]) -> [u8; 20] {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(data);
        ctx.update(suffix);
        let tag = ctx.sign();
        let mut out = [0u8; 20];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn gcm_new(key: &[u8]) -> Result<Self::Gcm, SrtpError> {
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(SrtpError::BadKeyLength),
        };
        Ok(LessSafeKey::new(
            UnboundKey::new(alg, key).map_err(|_| SrtpError::BadKeyLength)?,
        ))
    }

    fn gcm_seal(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Result<[u8; 16], SrtpError> {
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data)
            .map_err(|_| SrtpError::Crypto)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn gcm_open(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data_and_tag: &mut [u8]) -> Result<(), SrtpError> {
        key.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data_and_tag)
            .map(|_| ())
            .map_err(|_| SrtpError::AuthFailed)
    }
}
