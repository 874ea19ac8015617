//! SRTP key derivation (RFC 3711 §4.3) with key derivation rate 0.

use super::backend::Backend;
use super::SrtpError;

/// Key derivation labels (RFC 3711 §4.3.1 and §4.3.2).
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(super) enum Label {
    RtpEncryption = 0x00,
    RtpAuthentication = 0x01,
    RtpSalt = 0x02,
    RtcpEncryption = 0x03,
    RtcpAuthentication = 0x04,
    RtcpSalt = 0x05,
}

/// Fills `out` with the session key for `label` (RFC 3711 §4.3.1):
///
/// ```text
/// key_id = label || r        (r = index DIV kdr = 0: 48 zero bits)
/// x      = key_id XOR master_salt
/// out    = AES-CM PRF(master_key, x * 2^16), first |out| bytes
/// ```
///
/// `key_id` is 56 bits, right-aligned in the 112-bit salt field, so the
/// label lands in byte 7 of the counter block. A 96-bit (AEAD) master salt
/// fills bytes 0..12 of that field and bytes 12..14 stay zero (see the
/// module docs).
pub(super) fn derive<B: Backend>(
    master_key: &[u8],
    master_salt: &[u8],
    label: Label,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    if master_salt.len() > 14 {
        return Err(SrtpError::BadSaltLength);
    }
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label as u8;
    out.fill(0);
    B::aes_cm_prf(master_key, &iv, out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::backend::{AwsLc, Backend, RustCrypto};
    use super::super::tests::unhex;
    use super::*;

    /// RFC 3711 Appendix B.3: key derivation test vectors.
    fn rfc3711_b3<B: Backend>() {
        let master_key = unhex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let master_salt = unhex("0EC675AD498AFEEBB6960B3AABE6");

        let mut key = [0u8; 16];
        derive::<B>(&master_key, &master_salt, Label::RtpEncryption, &mut key).unwrap();
        assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));

        let mut salt = [0u8; 14];
        derive::<B>(&master_key, &master_salt, Label::RtpSalt, &mut salt).unwrap();
        assert_eq!(salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));

        let mut auth = [0u8; 20];
        derive::<B>(&master_key, &master_salt, Label::RtpAuthentication, &mut auth).unwrap();
        assert_eq!(auth.to_vec(), unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    #[test]
    fn rfc3711_b3_key_derivation_rustcrypto() {
        rfc3711_b3::<RustCrypto>();
    }

    #[test]
    fn rfc3711_b3_key_derivation_aws_lc() {
        rfc3711_b3::<AwsLc>();
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key
    /// 2B7E...4F3C, salt F0F1...FCFD, SSRC 0 and index 0.
    fn rfc3711_b2<B: Backend>() {
        let key = B::ctr_new(&unhex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut stream = vec![0u8; 0xff02 * 16];
        B::ctr_apply(&key, &iv, &mut stream).unwrap();
        let block = |i: usize| stream[i * 16..i * 16 + 16].to_vec();
        assert_eq!(block(0x0000), unhex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(0x0001), unhex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(0x0002), unhex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xfeff), unhex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xff00), unhex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xff01), unhex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }

    #[test]
    fn rfc3711_b2_aes_cm_keystream_rustcrypto() {
        rfc3711_b2::<RustCrypto>();
    }

    #[test]
    fn rfc3711_b2_aes_cm_keystream_aws_lc() {
        rfc3711_b2::<AwsLc>();
    }
}
