//! The RustCrypto backend: `aes` + `ctr`, `sha1` (under HMAC, RFC 2104),
//! `aes-gcm`.

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher, StreamCipherCoreWrapper};
use aes::{Aes128, Aes128Enc, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use sha1::digest::core_api::{CoreWrapper, UpdateCore};
use sha1::{Digest, Sha1, Sha1Core};

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

/// An HMAC-SHA1 key (RFC 2104) as the two SHA-1 states after the padded key
/// blocks: 64 bytes, where `hmac::Hmac<Sha1>` keeps 136 (a block buffer
/// besides), all of them cloned for every packet. Every SRTP packet reads
/// it, so its size is cache footprint per call.
#[derive(Clone)]
pub struct HmacSha1 {
    /// After `K XOR ipad`.
    inner: Sha1Core,
    /// After `K XOR opad`.
    outer: Sha1Core,
}

impl HmacSha1 {
    /// RFC 2104 §2: a key longer than the block is hashed first; a shorter
    /// one is padded with zeros.
    fn new(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > block.len() {
            block[..20].copy_from_slice(&Sha1::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let keyed = |pad: u8| {
            let mut core = Sha1Core::default();
            core.update_blocks(&[block.map(|b| b ^ pad).into()]);
            core
        };
        let mac = Self {
            inner: keyed(0x36),
            outer: keyed(0x5c),
        };
        block.fill(0);
        mac
    }

    /// HMAC-SHA1 of `data` followed by `suffix`. Whole blocks of `data` go
    /// to the SHA-1 compression in one call (SHA-NI when the CPU has it).
    fn sign(&self, data: &[u8], suffix: &[u8]) -> [u8; 20] {
        let mut inner = CoreWrapper::from_core(self.inner.clone());
        Digest::update(&mut inner, data);
        Digest::update(&mut inner, suffix);
        let inner_hash = inner.finalize();
        let mut outer = CoreWrapper::from_core(self.outer.clone());
        Digest::update(&mut outer, inner_hash);
        outer.finalize().into()
    }
}

impl Backend for RustCrypto {
    type Ctr = Aes128Enc;
    type Hmac = HmacSha1;
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
        Ok(HmacSha1::new(key))
    }

    fn hmac_sha1(key: &Self::Hmac, data: &[u8], suffix: &[u8]) -> [u8; 20] {
        key.sign(data, suffix)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha1::Sha1;

    use super::HmacSha1;
    use crate::srtp::tests::unhex as hex;

    /// RFC 2202 §3, the seven HMAC-SHA-1 test cases (6 and 7 with a key
    /// longer than the block, hashed first).
    #[test]
    fn rfc2202_vectors() {
        let key4: Vec<u8> = (1..=25).collect();
        let cases: [(&[u8], &[u8], &str); 7] = [
            (&[0x0b; 20], b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (&[0xaa; 20], &[0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            (&key4, &[0xcd; 50], "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            (
                &[0x0c; 20],
                b"Test With Truncation",
                "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
                "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
            ),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            let mac = HmacSha1::new(key);
            assert_eq!(mac.sign(data, &[]).to_vec(), hex(want), "case {}", i + 1);
            // The same message split between data and suffix.
            let cut = data.len() / 3;
            assert_eq!(
                mac.sign(&data[..cut], &data[cut..]).to_vec(),
                hex(want),
                "case {}, split",
                i + 1
            );
        }
    }

    proptest! {
        /// Agrees with the `hmac` crate for any key length (shorter than,
        /// equal to and longer than the block) and any message split.
        #[test]
        fn matches_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 0..100),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            suffix in proptest::collection::vec(any::<u8>(), 0..70),
        ) {
            let mut reference = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
            reference.update(&data);
            reference.update(&suffix);
            let want: [u8; 20] = reference.finalize().into_bytes().into();
            prop_assert_eq!(HmacSha1::new(&key).sign(&data, &suffix), want);
        }
    }
}
