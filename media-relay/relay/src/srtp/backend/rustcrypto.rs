//! The RustCrypto backend: `aes` + `ctr`, `hmac` + `sha1`, `aes-gcm`.

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher, StreamCipherCoreWrapper};
use aes::{Aes128, Aes128Enc, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::Backend;
use crate::srtp::SrtpError;

/// RustCrypto's pure-Rust primitives (AES-NI, PCLMULQDQ and SHA-NI picked at
/// run time).
#[derive(Debug)]
pub enum RustCrypto {}

/// An AES-GCM key of either size.
pub enum RustCryptoGcm {
    /// AES-128-GCM.
    A128(Box<Aes128Gcm>),
    /// AES-256-GCM.
    A256(Box<Aes256Gcm>),
}

type Ctr128<C> = StreamCipherCoreWrapper<ctr::CtrCore<C, ctr::flavors::Ctr128BE>>;

impl Backend for RustCrypto {
    type Ctr = Aes128Enc;
    type Hmac = Hmac<Sha1>;
    type Gcm = RustCryptoGcm;

    fn aes_cm_prf(key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        match key.len() {
            16 => ctr::Ctr128BE::<Aes128>::new_from_slices(key, iv)
                .map_err(|_| SrtpError::BadKeyLength)?
                .apply_keystream(data),
            32 => ctr::Ctr128BE::<Aes256>::new_from_slices(key, iv)
                .map_err(|_| SrtpError::BadKeyLength)?
                .apply_keystream(data),
            _ => return Err(SrtpError::BadKeyLength),
        }
        Ok(())
    }

    fn ctr_new(key: &[u8]) -> Result<Self::Ctr, SrtpError> {
        Aes128Enc::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)
    }

    fn ctr_apply(key: &Self::Ctr, iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        // Borrow the expanded key: no key schedule per packet.
        let core = ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(key, iv.into());
        Ctr128::from_core(core).apply_keystream(data);
        Ok(())
    }

    fn hmac_new(key: &[u8]) -> Result<Self::Hmac, SrtpError> {
        <Hmac<Sha1> as KeyInit>::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)
    }

    fn hmac_sha1(key: &Self::Hmac, data: &[u8], suffix: &[u8]) -> [u8; 20] {
        let mut mac = key.clone();
        mac.update(data);
        mac.update(suffix);
        mac.finalize().into_bytes().into()
    }

    fn gcm_new(key: &[u8]) -> Result<Self::Gcm, SrtpError> {
        match key.len() {
            16 => Ok(RustCryptoGcm::A128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)?,
            ))),
            32 => Ok(RustCryptoGcm::A256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)?,
            ))),
            _ => Err(SrtpError::BadKeyLength),
        }
    }

    fn gcm_seal(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Result<[u8; 16], SrtpError> {
        let tag = match key {
            RustCryptoGcm::A128(k) => k.encrypt_in_place_detached(nonce.into(), aad, data),
            RustCryptoGcm::A256(k) => k.encrypt_in_place_detached(nonce.into(), aad, data),
        }
        .map_err(|_| SrtpError::Crypto)?;
        Ok(tag.into())
    }

    fn gcm_open(key: &Self::Gcm, nonce: &[u8; 12], aad: &[u8], data_and_tag: &mut [u8]) -> Result<(), SrtpError> {
        let split = data_and_tag.len().checked_sub(16).ok_or(SrtpError::TooShort)?;
        let (data, tag) = data_and_tag.split_at_mut(split);
        let tag = aes_gcm::Tag::from_slice(tag);
        match key {
            RustCryptoGcm::A128(k) => k.decrypt_in_place_detached(nonce.into(), aad, data, tag),
            RustCryptoGcm::A256(k) => k.decrypt_in_place_detached(nonce.into(), aad, data, tag),
        }
        .map_err(|_| SrtpError::AuthFailed)
    }
}
