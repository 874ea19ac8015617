//! The 90 PDUs captured from real endpoints (`tests/data/corpus.txt`)
//! decode, re-encode and decode again to the same value. Values, not bytes:
//! the capturing endpoints trim extension bitmaps that X.691 writes in full.
#![allow(clippy::unwrap_used)]

use confgate_h323::asn1::{decode, encode, h225, h245};
use std::fmt::Debug;
use std::path::PathBuf;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/data/corpus.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (kind, hex) = l.split_once(' ').unwrap();
            (kind.to_owned(), from_hex(hex.trim()))
        })
        .collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn round_trip<T: rasn::Decode + rasn::Encode + PartialEq + Debug>(bytes: &[u8]) -> Result<T, String> {
    let first: T = decode(bytes).map_err(|e| format!("decode: {e}"))?;
    let again = encode(&first).map_err(|e| format!("encode: {e}"))?;
    let second: T = decode(&again).map_err(|e| format!("decode of our encoding: {e}"))?;
    if first != second {
        return Err(format!("value changed:\n{first:?}\n{second:?}"));
    }
    Ok(first)
}

#[test]
fn every_corpus_pdu_round_trips() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 90);
    let mut failures = Vec::new();
    for (i, (kind, bytes)) in corpus.iter().enumerate() {
        let result = match kind.as_str() {
            "h225" => round_trip::<h225::H323UserInformation>(bytes).map(drop),
            "ras" => round_trip::<h225::RasMessage>(bytes).map(drop),
            "h245" => round_trip::<h245::MultimediaSystemControlMessage>(bytes).map(drop),
            other => Err(format!("unknown kind {other}")),
        };
        if let Err(e) = result {
            failures.push(format!("line {} ({kind}): {e}", i + 1));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 90 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn time_to_live_keeps_its_range_as_an_extension_addition() {
    // ITU-T X.691 §13.2.6: 60 in 1..4294967295 is a 2-bit length and one
    // octet 60 - 1 = 0x3b, in an open type of 2 octets: 02 00 3b. rasn 0.30
    // without the regeneration's constraint pass wrote 02 01 3c.
    let rrq = corpus()
        .into_iter()
        .filter(|(kind, _)| kind == "ras")
        .map(|(_, bytes)| decode::<h225::RasMessage>(&bytes).unwrap())
        .find_map(|m| match m {
            h225::RasMessage::registrationRequest(rrq) => Some(rrq),
            _ => None,
        })
        .unwrap();
    let mut rrq = rrq;
    rrq.time_to_live = Some(h225::TimeToLive(60));
    let bytes = encode(&h225::RasMessage::registrationRequest(rrq)).unwrap();
    assert!(bytes.windows(3).any(|w| w == [0x02, 0x00, 0x3b]), "{bytes:02x?}");
    match decode::<h225::RasMessage>(&bytes).unwrap() {
        h225::RasMessage::registrationRequest(back) => assert_eq!(back.time_to_live, Some(h225::TimeToLive(60))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pdus_without_v8_mandatory_additions_decode() {
    // An older endpoint's Setup has no callIdentifier or h245Tunnelling
    // (mandatory extension additions since v3/v4): ours encodes without
    // them, and they decode as None.
    let mut setup = corpus()
        .into_iter()
        .filter(|(kind, _)| kind == "h225")
        .map(|(_, bytes)| decode::<h225::H323UserInformation>(&bytes).unwrap())
        .find(|u| {
            matches!(
                u.h323_uu_pdu.h323_message_body,
                h225::H323UUPDUH323MessageBody::setup(_)
            )
        })
        .unwrap();
    setup.h323_uu_pdu.h245_tunneling = None;
    if let h225::H323UUPDUH323MessageBody::setup(s) = &mut setup.h323_uu_pdu.h323_message_body {
        s.call_identifier = None;
        s.media_wait_for_connect = None;
        s.can_overlap_send = None;
    }
    let bytes = encode(&setup).unwrap();
    assert_eq!(decode::<h225::H323UserInformation>(&bytes).unwrap(), setup);
}
