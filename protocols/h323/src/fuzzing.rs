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
/// 0xff bytes, accepting every registration (with an H.235 password, so
/// that password tokens are checked) and advancing the clock. Checks: no
/// panic; every reply it sends decodes as a RAS message.
pub fn ras_gatekeeper(data: &[u8]) {
    use crate::ras::{Config, Event, Gatekeeper, Output, Verdict};
    use std::time::{Duration, Instant};
    let mut gk = Gatekeeper::new(Config::default());
    let source = std::net::SocketAddr::from(([127, 0, 0, 1], 40002));
    let start = Instant::now();
    gk.set_wall_clock(start, 1_700_000_000);
    for (i, datagram) in data.split(|&b| b == 0xff).enumerate() {
        let now = start + Duration::from_secs(u64::try_from(i).unwrap_or(0) * 7);
        let _ = gk.handle_input(now, source, datagram);
        while let Some(o) = gk.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => assert!(asn1::decode_ras(&bytes).is_ok()),
                Output::Event(Event::Authorize { ticket, .. }) => {
                    gk.authorize(
                        now,
                        ticket,
                        Verdict::Accept {
                            account: None,
                            password: Some("fuzz".into()),
                        },
                    );
                }
                Output::Event(_) => {}
            }
        }
        let _ = gk.poll_timeout();
    }
}

/// Drives one call through the call-signalling machine and its H.245
/// control protocol. The first byte picks the H.245 transport (its value
/// modulo 3: tunnelled, a separate connection to the caller, a separate
/// connection to us), with bit 2, Fast Connect, and with bit 3, H.264 video
/// taken (proposed too with Fast Connect; a key frame asked after every
/// piece); the rest is cut at 0xff
/// bytes into H.245 PDUs, delivered in the h245Control of Facility
/// messages (tunnelled) or on the separate connection (each piece framed
/// in TPKT, or as raw stream bytes when it starts with the TPKT version
/// 3), the clock advancing 300 ms between them. Checks: no panic; what the
/// machine sends decodes (signalling as Q.931 with its UUIE, H.245 as
/// H.245).
pub fn h245_session(data: &[u8]) {
    use crate::media::{self, G711};
    use crate::q931::CallReference;
    use crate::signalling::{self, Answer, CallSignalling, Config, Output, SetupParams};
    use rasn::types::OctetString;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    fn check(m: &mut CallSignalling) {
        while let Some(o) = m.poll_output() {
            match o {
                Output::Transmit(bytes) => {
                    let mut d = tpkt::TpktDecoder::new(65_535);
                    d.push(&bytes);
                    while let Ok(Some(p)) = d.next_pdu() {
                        assert!(signalling::decode_signalling(p).is_ok());
                    }
                }
                Output::H245(bytes) => {
                    let mut d = tpkt::TpktDecoder::new(65_535);
                    d.push(&bytes);
                    while let Ok(Some(p)) = d.next_pdu() {
                        assert!(asn1::decode_h245(p).is_ok());
                    }
                }
                _ => {}
            }
        }
    }

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let transport = mode % 3;
    let fast = mode & 4 != 0;
    // The call takes H.264 video (and proposes it by Fast Connect).
    let video = mode & 8 != 0;
    let rtp = SocketAddr::from(([127, 0, 0, 1], 5000));
    let rtcp = SocketAddr::from(([127, 0, 0, 1], 5001));
    let mut fast_start = if fast {
        media::propose(G711::Ulaw, 1, rtp, rtcp).unwrap_or_default()
    } else {
        Vec::new()
    };
    if fast && video {
        let (vrtp, vrtcp) = (
            SocketAddr::from(([127, 0, 0, 1], 5002)),
            SocketAddr::from(([127, 0, 0, 1], 5003)),
        );
        fast_start
            .extend(media::propose_video(&media::H264::CONSTRAINED_BASELINE, 109, 3, vrtp, vrtcp).unwrap_or_default());
    }
    let Ok(setup) = signalling::setup(&SetupParams {
        call_reference: 1,
        call_id: [1; 16],
        dialed: "7001".into(),
        display: "fuzz".into(),
        calling: None,
        fast_start,
        tunnelling: transport == 0,
        h245_address: (transport == 1).then(|| SocketAddr::from(([127, 0, 0, 1], 1721))),
    }) else {
        return;
    };
    let now = Instant::now();
    let mut m = CallSignalling::new(Config::default(), now, u32::from(mode).wrapping_mul(7919));
    m.handle_input(now, &setup);
    check(&mut m);
    if video {
        m.set_video(
            now,
            crate::control::LocalMedia {
                rtp: SocketAddr::from(([127, 0, 0, 1], 20002)),
                rtcp: SocketAddr::from(([127, 0, 0, 1], 20003)),
            },
        );
    }
    let answer = Answer {
        rtp: SocketAddr::from(([127, 0, 0, 1], 20000)),
        rtcp: SocketAddr::from(([127, 0, 0, 1], 20001)),
        fast_connect: fast.then_some(G711::Ulaw),
        h245_listen: (transport == 2).then(|| SocketAddr::from(([127, 0, 0, 1], 40000))),
    };
    if m.answer(now, &answer).is_err() {
        return;
    }
    check(&mut m);
    if transport != 0 {
        m.h245_connected(now);
        check(&mut m);
    }
    for (i, piece) in rest.split(|&b| b == 0xff).enumerate() {
        let t = now + Duration::from_millis(u64::try_from(i).unwrap_or(u64::MAX / 1000).saturating_mul(300));
        if transport == 0 {
            let pdus = vec![OctetString::from(piece.to_vec())];
            if let Ok(fac) = signalling::facility_h245_raw(CallReference::new(1, false), None, pdus) {
                m.handle_input(t, &fac);
            }
        } else if piece.first() == Some(&tpkt::VERSION) {
            m.handle_h245_input(t, piece);
        } else {
            let mut framed = Vec::new();
            if tpkt::encode(piece, &mut framed).is_ok() {
                m.handle_h245_input(t, &framed);
            }
        }
        m.handle_timeout(t);
        if video {
            let _ = m.video_fast_update();
        }
        check(&mut m);
        if m.is_released() {
            break;
        }
    }
}
