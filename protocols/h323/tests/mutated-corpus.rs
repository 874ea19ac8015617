//! Mutated corpus PDUs (bit flips, truncations, insertions, deletions, from
//! a fixed seed) through every decoder path: none may panic. The fuzz
//! targets in `fuzz/` do the same without end; this keeps a deterministic
//! slice of it in `cargo test`.
#![allow(clippy::unwrap_used)]

use confgate_h323::fuzzing;
use std::path::PathBuf;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/data/corpus.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(kind, hex)| {
            let hex = hex.trim();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (kind.to_owned(), bytes)
        })
        .collect()
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.splice(i..i, [0xff; 4]);
            }
        }
    }
    v
}

fn iterations() -> usize {
    std::env::var("H323_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40)
}

#[test]
fn per_decoders_never_panic_on_mutated_pdus() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (kind, pdu) in corpus() {
        for _ in 0..iterations() {
            let m = mutate(&mut rng, &pdu);
            match kind.as_str() {
                "ras" => fuzzing::ras(&m),
                "h225" => fuzzing::uuie(&m),
                _ => fuzzing::h245(&m),
            }
            // Every PDU is also tried as the other two types.
            fuzzing::ras(&m);
            fuzzing::uuie(&m);
            fuzzing::h245(&m);
        }
    }
}

#[test]
fn framing_decoders_never_panic_on_mutated_messages() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (kind, pdu) in corpus().into_iter().filter(|(k, _)| k == "h225") {
        // Wrap the UUIE into a Q.931 Setup and a TPKT, then mutate those.
        let mut q931 = vec![0x08, 0x02, 0x00, 0x01, 0x05, 0x7e];
        q931.extend_from_slice(&u16::try_from(pdu.len() + 1).unwrap().to_be_bytes());
        q931.push(0x05);
        q931.extend_from_slice(&pdu);
        let mut stream = vec![0x07];
        confgate_h323::tpkt::encode(&q931, &mut stream).unwrap();
        confgate_h323::tpkt::encode(&q931, &mut stream).unwrap();
        for _ in 0..iterations() {
            fuzzing::q931(&mutate(&mut rng, &q931));
            fuzzing::tpkt_stream(&mutate(&mut rng, &stream));
        }
        assert_eq!(kind, "h225");
    }
}

#[test]
fn h245_sessions_never_panic_on_mutated_pdus() {
    let mut rng = Rng(0x0bad_5eed_1234_5678);
    // The H.245 PDUs of the corpus: on their own connection and tunnelled.
    let mut pdus: Vec<Vec<u8>> = corpus()
        .into_iter()
        .filter(|(k, _)| k == "h245")
        .map(|(_, p)| p)
        .collect();
    for (_, uuie) in corpus().into_iter().filter(|(k, _)| k == "h225") {
        let u = confgate_h323::asn1::decode_user_information(&uuie).unwrap();
        pdus.extend(u.h323_uu_pdu.h245_control.into_iter().flatten().map(|b| b.to_vec()));
    }
    assert!(pdus.len() > 5, "{}", pdus.len());
    // H.264 video as confgate's peers send it: capabilities, a channel,
    // key frame and flow control commands.
    {
        use confgate_h323::asn1::{encode, h245};
        use confgate_h323::control;
        use confgate_h323::media::{self, AudioCodec, H264};
        let rtcp = "127.0.0.1:5003".parse().unwrap();
        let h264 = H264::CONSTRAINED_BASELINE;
        for m in [
            media::terminal_capability_set_with_video(1, &[AudioCodec::Pcmu], Some(&h264)),
            h245::MultimediaSystemControlMessage::request(h245::RequestMessage::openLogicalChannel(
                control::video_open_logical_channel(12, &h264, 100, rtcp),
            )),
            control::video_fast_update(12),
            control::flow_control_command(12, Some(256_000)),
        ] {
            pdus.push(encode(&m).unwrap());
        }
    }
    for mode in 0..16u8 {
        // Unmutated, in corpus order: what real endpoints send.
        let mut input = vec![mode];
        for p in &pdus {
            input.extend_from_slice(p);
            input.push(0xff);
        }
        fuzzing::h245_session(&input);
        for _ in 0..iterations() {
            let mut input = vec![mode];
            for _ in 0..1 + rng.below(6) {
                let pick = rng.below(pdus.len());
                input.extend(mutate(&mut rng, &pdus[pick]));
                input.push(0xff);
            }
            fuzzing::h245_session(&input);
        }
    }
}
