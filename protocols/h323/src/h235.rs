//! H.235 password authentication of RAS messages: pure functions that make
//! and check the password tokens endpoints put in `cryptoTokens`.
//!
//! Two procedures are served, both keyed by a password the endpoint and the
//! gatekeeper share:
//! - **the endpoint's password hash** (H.225.0 `CryptoH323Token.cryptoEPPwdHash`,
//!   H.235.0 §10.3.3 "password with hashing"): the token carries the
//!   endpoint's alias, a timestamp, and `HASHED { EncodedPwdCertToken }`
//!   with algorithm MD5 (`1.2.840.113549.2.5`). The hash is MD5 over the
//!   ALIGNED PER encoding of a PwdCertToken: a ClearToken with `tokenOID`
//!   `{0 0}` (no OID: the token is hashed, not sent), `timeStamp` (the one
//!   in the token), `password` and `generalID` (the alias). As deployed
//!   endpoints and gatekeepers compute it, the `password` and `generalID`
//!   BMPStrings each end with one NUL character. The hash proves the
//!   password and the second it was made in, not the message it rides in.
//! - **H.235.1 procedure I** (baseline security profile, formerly H.235
//!   Annex D): a `nestedcryptoToken` `cryptoHashedToken` with tokenOID
//!   `0.0.8.235.0.x.1` ("A": all fields of the message are covered), whose
//!   ClearToken (tokenOID `…x.5`, "T") carries `timeStamp`, `random`
//!   (a sequence number), `sendersID` (the endpoint) and `generalID` (the
//!   gatekeeper), and whose HASHED value (algorithm `…x.6`, "U") is
//!   HMAC-SHA1-96: the first 96 bits of HMAC-SHA1 keyed with SHA-1 of the
//!   password, over the whole encoded message with the 12 hash octets set to
//!   zero. `x` is the H.235 version (2 to 4), not compared.
//!
//! Freshness (the timestamp within a window of the gatekeeper's clock, and
//! no token older than one already taken) is the gatekeeper's business:
//! [`crate::ras`].

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rasn::types::{BitString, BmpString, Integer, ObjectIdentifier};
use sha1::Sha1;

use crate::asn1::{self, h225, h235};
use crate::ras::Alias;

/// MD5 (RFC 1321): the algorithm of the endpoint's password hash.
pub const OID_MD5: &[u32] = &[1, 2, 840, 113549, 2, 5];
/// H.235.1 "A": the hashed token covers all fields of the message.
const ARCS_A: [u32; 7] = [0, 0, 8, 235, 0, 2, 1];
/// H.235.1 "T": the ClearToken of a hashed token.
const ARCS_T: [u32; 7] = [0, 0, 8, 235, 0, 2, 5];
/// H.235.1 "U": HMAC-SHA1-96.
const ARCS_U: [u32; 7] = [0, 0, 8, 235, 0, 2, 6];
/// Where the H.235 version sits in the H.235.1 object identifiers.
const VERSION_ARC: usize = 5;
/// Length of an HMAC-SHA1-96 value.
pub const HMAC_SHA1_96_LEN: usize = 12;
/// What [`procedure1_token`] puts where the hash goes, for
/// [`procedure1_sign`] to find in the encoded message.
const PLACEHOLDER: [u8; HMAC_SHA1_96_LEN] = *b"cg-h2351-hsh";
/// Longest alias or password in a PwdCertToken (128 BMP characters, one of
/// them the closing NUL).
const MAX_TEXT: usize = 127;

/// A password authentication procedure of H.235.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Procedure {
    /// `cryptoEPPwdHash`, MD5 over the PwdCertToken.
    PasswordHash,
    /// H.235.1 procedure I, HMAC-SHA1-96 over the whole message.
    Procedure1,
}

/// What proves the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The 128-bit MD5 of the PwdCertToken.
    Md5([u8; 16]),
    /// The 96-bit HMAC-SHA1 of the message.
    HmacSha1([u8; HMAC_SHA1_96_LEN]),
}

/// A password token found in a RAS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordToken {
    /// Who made it: the alias of `cryptoEPPwdHash`, the `sendersID` of a
    /// procedure I token (absent: its `generalID`).
    pub sender: String,
    /// Its timestamp, seconds since 1970-01-01 00:00 UTC.
    pub timestamp: u32,
    /// Procedure I: the sender's sequence number.
    pub random: Option<Integer>,
    /// Procedure I: whom the token is for (its `generalID` when it also
    /// names a `sendersID`).
    pub recipient: Option<String>,
    /// The hash.
    pub proof: Proof,
}

impl PasswordToken {
    /// The procedure the token follows.
    pub fn procedure(&self) -> Procedure {
        match self.proof {
            Proof::Md5(_) => Procedure::PasswordHash,
            Proof::HmacSha1(_) => Procedure::Procedure1,
        }
    }

    /// Whether the token was made with `password`. `message` is the whole
    /// encoded RAS message the token came in, as received (procedure I
    /// hashes it; the password hash ignores it).
    pub fn verify(&self, password: &str, message: &[u8]) -> bool {
        match &self.proof {
            Proof::Md5(hash) => {
                password_hash(&self.sender, password, self.timestamp).is_some_and(|ours| constant_time_eq(&ours, hash))
            }
            Proof::HmacSha1(hash) => verify_procedure1(password, message, hash),
        }
    }
}

/// The first password token of a known procedure in `tokens` (the
/// `cryptoTokens` of a RAS message), if any.
pub fn find_token(tokens: Option<&[h225::CryptoH323Token]>) -> Option<PasswordToken> {
    tokens?.iter().find_map(token_of)
}

fn token_of(t: &h225::CryptoH323Token) -> Option<PasswordToken> {
    match t {
        h225::CryptoH323Token::cryptoEPPwdHash(h) => {
            if h.token.algorithm_oid.as_ref() != OID_MD5 {
                return None;
            }
            let hash: [u8; 16] = h.token.hash.as_raw_slice().try_into().ok()?;
            if h.token.hash.len() != 128 {
                return None;
            }
            Some(PasswordToken {
                sender: Alias::from_asn1(&h.alias)?.as_str().to_string(),
                timestamp: h.time_stamp.0,
                random: None,
                recipient: None,
                proof: Proof::Md5(hash),
            })
        }
        h225::CryptoH323Token::nestedcryptoToken(h235::CryptoToken::cryptoHashedToken(h)) => {
            if !h235_oid(&h.token_oid, &ARCS_A)
                || !h235_oid(&h.hashed_vals.token_oid, &ARCS_T)
                || !h235_oid(&h.token.algorithm_oid, &ARCS_U)
                || h.token.hash.len() != HMAC_SHA1_96_LEN * 8
            {
                return None;
            }
            let hash: [u8; HMAC_SHA1_96_LEN] = h.token.hash.as_raw_slice().try_into().ok()?;
            let clear = &h.hashed_vals;
            let sender = clear
                .senders_id
                .as_ref()
                .or(clear.general_id.as_ref())
                .and_then(|i| bmp_text(&i.0))?;
            let recipient = clear
                .senders_id
                .as_ref()
                .and(clear.general_id.as_ref())
                .and_then(|i| bmp_text(&i.0));
            Some(PasswordToken {
                sender,
                timestamp: clear.time_stamp.as_ref()?.0,
                random: clear.random.as_ref().map(|r| r.0.clone()),
                recipient,
                proof: Proof::HmacSha1(hash),
            })
        }
        _ => None,
    }
}

/// Whether `oid` is the H.235.1 identifier `arcs`, whatever H.235 version
/// it names.
fn h235_oid(oid: &ObjectIdentifier, arcs: &[u32; 7]) -> bool {
    let o: &[u32] = oid.as_ref();
    o.len() == arcs.len()
        && o.iter()
            .zip(arcs)
            .enumerate()
            .all(|(i, (a, b))| i == VERSION_ARC || a == b)
}

/// The MD5 of the PwdCertToken of `alias`, `password` and `timestamp` (see
/// the module docs); `None` when either text is empty, too long or not in
/// the BMP.
pub fn password_hash(alias: &str, password: &str, timestamp: u32) -> Option<[u8; 16]> {
    let token = h235::ClearToken::new(
        oid(&[0, 0]),
        Some(h235::TimeStamp(timestamp.max(1))),
        Some(h235::H235Password(bmp_with_nul(password)?)),
        None,
        None,
        None,
        None,
        Some(h235::Identifier(bmp_with_nul(alias)?)),
        None,
        None,
        None,
        None,
        None,
        None,
    );
    let encoded = asn1::encode(&token).ok()?;
    Some(Md5::digest(&encoded).into())
}

/// A `cryptoEPPwdHash` token for `alias` made with `password` at
/// `timestamp` (an endpoint's side of the procedure).
pub fn password_hash_token(alias: &Alias, password: &str, timestamp: u32) -> Option<h225::CryptoH323Token> {
    let hash = password_hash(alias.as_str(), password, timestamp)?;
    Some(h225::CryptoH323Token::cryptoEPPwdHash(
        h225::CryptoH323TokenCryptoEPPwdHash::new(
            alias.to_asn1()?,
            h235::TimeStamp(timestamp.max(1)),
            h225::CryptoH323TokenCryptoEPPwdHashToken::new(
                oid(OID_MD5),
                h225::CryptoH323TokenCryptoEPPwdHashTokenParamS::new(None, None, None, None, None),
                BitString::from_slice(&hash),
            ),
        ),
    ))
}

/// A procedure I token from `sender` to the gatekeeper `gatekeeper` made at
/// `timestamp` with sequence number `random`, its hash still to be filled
/// in by [`procedure1_sign`] once the message that carries it is encoded.
pub fn procedure1_token(
    sender: &str,
    gatekeeper: Option<&str>,
    timestamp: u32,
    random: i64,
) -> Option<h225::CryptoH323Token> {
    let id = |s: &str| -> Option<h235::Identifier> {
        (1..=128)
            .contains(&s.encode_utf16().count())
            .then(|| bmp(s).map(h235::Identifier))
            .flatten()
    };
    let clear = h235::ClearToken::new(
        oid(&ARCS_T),
        Some(h235::TimeStamp(timestamp.max(1))),
        None,
        None,
        None,
        Some(h235::RandomVal(Integer::from(random))),
        None,
        match gatekeeper {
            Some(g) => Some(id(g)?),
            None => None,
        },
        None,
        None,
        Some(id(sender)?),
        None,
        None,
        None,
    );
    Some(h225::CryptoH323Token::nestedcryptoToken(
        h235::CryptoToken::cryptoHashedToken(h235::CryptoTokenCryptoHashedToken::new(
            oid(&ARCS_A),
            clear,
            h235::CryptoTokenCryptoHashedTokenToken::new(
                oid(&ARCS_U),
                h235::CryptoTokenCryptoHashedTokenTokenParamS::new(None, None, None, None, None),
                BitString::from_slice(&PLACEHOLDER),
            ),
        )),
    ))
}

/// Fills in the hash of the [`procedure1_token`] in `message` (a whole
/// encoded RAS message) with `password`. `false`: no token placeholder
/// found.
pub fn procedure1_sign(message: &mut [u8], password: &str) -> bool {
    let Some(at) = message.windows(PLACEHOLDER.len()).position(|w| w == PLACEHOLDER) else {
        return false;
    };
    let Some(slot) = message.get_mut(at..at + HMAC_SHA1_96_LEN) else {
        return false;
    };
    slot.fill(0);
    let Some(mac) = hmac_sha1(password, message) else {
        return false;
    };
    let tag = mac.finalize().into_bytes();
    match (message.get_mut(at..at + HMAC_SHA1_96_LEN), tag.get(..HMAC_SHA1_96_LEN)) {
        (Some(slot), Some(t)) => {
            slot.copy_from_slice(t);
            true
        }
        _ => false,
    }
}

/// HMAC-SHA1 keyed with SHA-1 of `password`, fed `message`.
fn hmac_sha1(password: &str, message: &[u8]) -> Option<Hmac<Sha1>> {
    let key = Sha1::digest(password.as_bytes());
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).ok()?;
    mac.update(message);
    Some(mac)
}

/// Procedure I: the hash is one of the places in `message` holding `hash`;
/// with those 12 octets zeroed, HMAC-SHA1-96 of the message must equal it.
fn verify_procedure1(password: &str, message: &[u8], hash: &[u8; HMAC_SHA1_96_LEN]) -> bool {
    let mut copy = message.to_vec();
    let mut from = 0;
    // The same 12 octets elsewhere in the message are possible, if unlikely:
    // try each place (a bounded number: the message is one datagram).
    while let Some(at) = copy
        .get(from..)
        .and_then(|rest| rest.windows(HMAC_SHA1_96_LEN).position(|w| w == hash))
        .map(|p| p + from)
    {
        if let Some(slot) = copy.get_mut(at..at + HMAC_SHA1_96_LEN) {
            slot.fill(0);
        }
        let ok = hmac_sha1(password, &copy).is_some_and(|mac| mac.verify_truncated_left(hash).is_ok());
        if ok {
            return true;
        }
        if let Some(slot) = copy.get_mut(at..at + HMAC_SHA1_96_LEN) {
            slot.copy_from_slice(hash);
        }
        from = at + 1;
    }
    false
}

/// The procedure a gatekeeper picks among those a GRQ offers
/// (`authenticationCapability` and `algorithmOIDs`, H.225.0 §7.2.1):
/// procedure I when offered, else the password hash.
pub fn choose(
    mechanisms: Option<&[h235::AuthenticationMechanism]>,
    algorithms: Option<&[ObjectIdentifier]>,
) -> Option<Procedure> {
    let hashing = mechanisms?
        .iter()
        .any(|m| matches!(m, h235::AuthenticationMechanism::pwdHash(())));
    if !hashing {
        return None;
    }
    let algorithms = algorithms?;
    if algorithms.iter().any(|o| h235_oid(o, &ARCS_U)) {
        Some(Procedure::Procedure1)
    } else if algorithms.iter().any(|o| o.as_ref() == OID_MD5) {
        Some(Procedure::PasswordHash)
    } else {
        None
    }
}

/// The `authenticationMode` and `algorithmOID` a GCF names for `procedure`.
pub fn mode(procedure: Procedure) -> (h235::AuthenticationMechanism, ObjectIdentifier) {
    let algorithm = match procedure {
        Procedure::PasswordHash => oid(OID_MD5),
        Procedure::Procedure1 => oid(&ARCS_U),
    };
    (h235::AuthenticationMechanism::pwdHash(()), algorithm)
}

/// What a GRQ offers for `procedure` (an endpoint's side).
pub fn capability(procedure: Procedure) -> (h235::AuthenticationMechanism, ObjectIdentifier) {
    mode(procedure)
}

fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(std::borrow::Cow::Owned(arcs.to_vec()))
}

fn bmp(s: &str) -> Option<BmpString> {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    BmpString::try_from(bytes).ok()
}

/// `s` and one NUL as a BMPString of 2 to 128 characters.
fn bmp_with_nul(s: &str) -> Option<BmpString> {
    let n = s.encode_utf16().count();
    if s.is_empty() || n > MAX_TEXT || s.contains('\0') {
        return None;
    }
    let mut units: Vec<u16> = s.encode_utf16().collect();
    units.push(0);
    BmpString::try_from(units.iter().flat_map(|u| u.to_be_bytes()).collect::<Vec<u8>>()).ok()
}

fn bmp_text(b: &BmpString) -> Option<String> {
    let s: String = char::decode_utf16(b.clone().into_vec())
        .collect::<Result<_, _>>()
        .ok()?;
    let s = s.trim_end_matches('\0').to_string();
    (!s.is_empty()).then_some(s)
}

/// Equal slices, compared in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_pwd_cert_token_is_encoded_as_x691_says() {
        // ClearToken {tokenOID {0 0}, timeStamp 1000000000, password "pw",
        // generalID "ab"}, each text closed by NUL, worked out by hand from
        // X.691 (ALIGNED): extension bit 0 and the optional-field bitmap
        // 11000010, padding; OID length 1, contents 00; timeStamp: 2 bits of
        // length (4 octets), padding, 999999999; password: 7 bits of
        // length - 1, padding, 3 UCS-2 characters; generalID the same.
        let token = h235::ClearToken::new(
            oid(&[0, 0]),
            Some(h235::TimeStamp(1_000_000_000)),
            Some(h235::H235Password(bmp_with_nul("pw").unwrap())),
            None,
            None,
            None,
            None,
            Some(h235::Identifier(bmp_with_nul("ab").unwrap())),
            None,
            None,
            None,
            None,
            None,
            None,
        );
        let expected = [
            0x61, 0x00, 0x01, 0x00, 0xc0, 0x3b, 0x9a, 0xc9, 0xff, 0x04, 0x00, 0x70, 0x00, 0x77, 0x00, 0x00, 0x04, 0x00,
            0x61, 0x00, 0x62, 0x00, 0x00,
        ];
        assert_eq!(asn1::encode(&token).unwrap(), expected);
        assert_eq!(
            password_hash("ab", "pw", 1_000_000_000).unwrap(),
            <[u8; 16]>::from(Md5::digest(expected))
        );
    }

    #[test]
    fn password_hash_token_round_trips_and_checks_the_password() {
        let alias = Alias::H323Id("room1".into());
        let t = password_hash_token(&alias, "s3cret", 1_700_000_000).unwrap();
        // Through PER and back, inside an RRQ's cryptoTokens.
        let t: h225::CryptoH323Token = asn1::decode(&asn1::encode(&t).unwrap()).unwrap();
        let found = find_token(Some(&[t])).unwrap();
        assert_eq!(found.sender, "room1");
        assert_eq!(found.timestamp, 1_700_000_000);
        assert_eq!(found.procedure(), Procedure::PasswordHash);
        assert!(found.verify("s3cret", &[]));
        assert!(!found.verify("s3cret ", &[]));
        assert!(!found.verify("S3cret", &[]));
        // Another second, another hash.
        let mut later = found.clone();
        later.timestamp += 1;
        assert!(!later.verify("s3cret", &[]));
        // Another alias, another hash.
        let mut other = found;
        other.sender = "room2".into();
        assert!(!other.verify("s3cret", &[]));
    }

    #[test]
    fn empty_and_oversized_texts_make_no_hash() {
        assert!(password_hash("", "pw", 1).is_none());
        assert!(password_hash("a", "", 1).is_none());
        assert!(password_hash(&"a".repeat(128), "pw", 1).is_none());
        assert!(password_hash(&"a".repeat(127), "pw", 1).is_some());
    }

    fn signed_rrq(password: &str, random: i64) -> Vec<u8> {
        let token = procedure1_token("room1", Some("gk.example"), 1_700_000_000, random).unwrap();
        let rrq = h225::RasMessage::unregistrationRequest(h225::UnregistrationRequest::new(
            h225::RequestSeqNum(7),
            vec![crate::ras::transport("192.0.2.10:1720".parse().unwrap())],
            None,
            None,
            None,
            None,
            None,
            None,
            Some(vec![token]),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ));
        let mut bytes = asn1::encode(&rrq).unwrap();
        assert!(procedure1_sign(&mut bytes, password));
        bytes
    }

    #[test]
    fn procedure1_hashes_the_whole_message() {
        let bytes = signed_rrq("s3cret", 5);
        let h225::RasMessage::unregistrationRequest(urq) = asn1::decode_ras(&bytes).unwrap() else {
            panic!()
        };
        let t = find_token(urq.crypto_tokens.as_deref()).unwrap();
        assert_eq!(t.procedure(), Procedure::Procedure1);
        assert_eq!(t.sender, "room1");
        assert_eq!(t.recipient.as_deref(), Some("gk.example"));
        assert_eq!(t.random, Some(Integer::from(5)));
        assert!(t.verify("s3cret", &bytes));
        assert!(!t.verify("s3cre", &bytes));
        // Any octet changed elsewhere breaks it.
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            if let Ok(h225::RasMessage::unregistrationRequest(u)) = asn1::decode_ras(&tampered) {
                if let Some(t) = find_token(u.crypto_tokens.as_deref()) {
                    assert!(!t.verify("s3cret", &tampered), "octet {i}");
                }
            }
        }
    }

    /// Tokens made by a real endpoint (h323plus) verify with its password
    /// and not with another, and each message changed breaks procedure I.
    #[test]
    fn tokens_of_a_real_endpoint_verify() {
        let mut seen = (0, 0);
        for line in include_str!("../tests/data/h235.txt").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [kind, procedure, password, hex] = fields[..] else {
                panic!("{line}")
            };
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let msg = asn1::decode_ras(&bytes).unwrap();
            let tokens = match &msg {
                h225::RasMessage::registrationRequest(r) => r.crypto_tokens.clone(),
                h225::RasMessage::admissionRequest(r) => r.crypto_tokens.clone(),
                h225::RasMessage::disengageRequest(r) => r.crypto_tokens.clone(),
                h225::RasMessage::unregistrationRequest(r) => r.crypto_tokens.clone(),
                other => panic!("{other:?}"),
            };
            let t = find_token(tokens.as_deref()).unwrap_or_else(|| panic!("no token in {kind}"));
            match procedure {
                "md5" => {
                    seen.0 += 1;
                    assert_eq!(t.procedure(), Procedure::PasswordHash);
                    assert_eq!(t.sender, "room1");
                }
                _ => {
                    seen.1 += 1;
                    assert_eq!(t.procedure(), Procedure::Procedure1);
                    let mut tampered = bytes.clone();
                    let last = tampered.len() - 1;
                    tampered[last] ^= 0x80;
                    assert!(!t.verify(password, &tampered), "{kind}");
                }
            }
            assert!(t.verify(password, &bytes), "{kind} {procedure}");
            assert!(!t.verify("secret2", &bytes), "{kind} {procedure}");
        }
        assert_eq!(seen, (2, 4));
    }

    #[test]
    fn a_gcf_picks_procedure1_over_the_password_hash() {
        let hashing = [h235::AuthenticationMechanism::pwdHash(())];
        let md5 = oid(OID_MD5);
        let u_v4 = oid(&[0, 0, 8, 235, 0, 4, 6]);
        assert_eq!(
            choose(Some(&hashing), Some(std::slice::from_ref(&md5))),
            Some(Procedure::PasswordHash)
        );
        assert_eq!(
            choose(Some(&hashing), Some(&[md5.clone(), u_v4])),
            Some(Procedure::Procedure1)
        );
        assert_eq!(
            choose(Some(&[h235::AuthenticationMechanism::dhExch(())]), Some(&[md5])),
            None
        );
        assert_eq!(choose(None, None), None);
    }
}
