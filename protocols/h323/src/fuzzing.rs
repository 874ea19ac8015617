//! Entry points for the fuzz targets in `fuzz/` (one function per target).

use crate::asn1::{self, h225, h245};
use crate::{q931, tpkt};
use std::fmt::Debug;

/// Feeds `data` to a TPKT decoder in chunks whose sizes come from the data
/// itself. Checks: no panic; each PDU is within the limit and re-frames to
/// the octets it came from.
pub fn tpkt_stream(data: &[u8]) {
    let Some((&seed, data)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(seed) * 8;
    let mut decoder = tpkt::TpktDecoder::new(max);
    let chunk = usize::from(seed % 17) + 1;
    let mut offset = 0;
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_pdu() {
                Ok(Some(pdu)) => {
                    let len = pdu.len() + tpkt::HEADER_LEN;
                    assert!(len <= max);
                    assert_eq!(data.get(offset + tpkt::HEADER_LEN..offset + len), Some(pdu));
                    let mut framed = Vec::new();
                    assert!(tpkt::encode(pdu, &mut framed).is_ok());
                    assert_eq!(framed.len(), len);
                    offset += len;
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Decodes `data` as a Q.931 message. Checks: no panic; a decoded message
/// encodes and decodes again to the same value.
pub fn q931(data: &[u8]) {
    let Ok(msg) = q931::Message::decode(data) else { return };
    let bytes = match msg.to_bytes() {
        Ok(bytes) => bytes,
        Err(e) => panic!("decoded message does not encode: {e}\n{msg:?}"),
    };
    assert_eq!(q931::Message::decode(&bytes).as_ref(), Ok(&msg));
}

fn per_round_trip<T: rasn::Decode + rasn::Encode + PartialEq + Debug>(data: &[u8]) {
    let Ok(value) = asn1::decode::<T>(data) else { return };
    // What we decode we can encode; whether it re-decodes identically is
    // the corpus test's business (rasn's canonical choices may differ).
    let _ = asn1::encode(&value);
}

/// Decodes `data` as a RAS message (ALIGNED PER). Checks: no panic.
pub fn ras(data: &[u8]) {
    per_round_trip::<h225::RasMessage>(data);
}

/// Decodes `data` as an H323-UserInformation (ALIGNED PER). Checks: no panic.
pub fn uuie(data: &[u8]) {
    per_round_trip::<h225::H323UserInformation>(data);
}

/// Decodes `data` as an H.245 MultimediaSystemControlMessage (ALIGNED PER).
/// Checks: no panic.
pub fn h245(data: &[u8]) {
    per_round_trip::<h245::MultimediaSystemControlMessage>(data);
}

/// Drives a [`crate::ras::Gatekeeper`] with `data` split into datagrams at
/// 0xff bytes, accepting every registration and advancing the clock.
/// Checks: no panic; every reply it sends decodes as a RAS message.
pub fn ras_gatekeeper(data: &[u8]) {
    use crate::ras::{Config, Event, Gatekeeper, Output, Verdict};
    use std::time::{Duration, Instant};
    let mut gk = Gatekeeper::new(Config::default());
    let source = std::net::SocketAddr::from(([127, 0, 0, 1], 40002));
    let start = Instant::now();
    for (i, datagram) in data.split(|&b| b == 0xff).enumerate() {
        let now = start + Duration::from_secs(u64::try_from(i).unwrap_or(0) * 7);
        let _ = gk.handle_input(now, source, datagram);
        while let Some(o) = gk.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => assert!(asn1::decode_ras(&bytes).is_ok()),
                Output::Event(Event::Authorize { ticket, .. }) => {
                    gk.authorize(now, ticket, Verdict::Accept { account: None });
                }
                Output::Event(_) => {}
            }
        }
        let _ = gk.poll_timeout();
    }
}
