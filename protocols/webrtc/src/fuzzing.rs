//! Entry points for the fuzz targets in `fuzz/` (one function per target).

/// Parses `data` (lossily decoded as UTF-8) as a client frame and as a
/// server frame. Checks: no panic; whatever parses serializes to a frame
/// that parses back to the same message.
pub fn signal(data: &[u8]) {
    use crate::signal::{ClientMessage, ServerMessage};

    let text = String::from_utf8_lossy(data);
    if let Ok(m) = ClientMessage::parse(&text) {
        let again = ClientMessage::parse(&m.to_json());
        assert_eq!(again.as_ref(), Ok(&m), "client frame does not round-trip");
    }
    if let Ok(m) = ServerMessage::parse(&text) {
        let again = ServerMessage::parse(&m.to_json());
        assert_eq!(again.as_ref(), Ok(&m), "server frame does not round-trip");
    }
}

/// Feeds `data` to a STUN parser and an ICE-lite agent. Checks: no panic;
/// nothing is nominated by a datagram that cannot carry our credentials.
pub fn stun(data: &[u8]) {
    use crate::ice::{IceCredentials, IceLiteAgent};
    use crate::stun::StunMessage;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Instant;

    if let Ok(m) = StunMessage::parse(data) {
        let _ = m.verify_integrity(b"key");
        let _ = m.verify_fingerprint();
    }
    let mut agent = IceLiteAgent::new(IceCredentials {
        ufrag: "fuzz".into(),
        pwd: "fuzzfuzzfuzzfuzzfuzzfuzz".into(),
    });
    agent.handle_input(Instant::now(), SocketAddr::from((Ipv4Addr::LOCALHOST, 9)), data);
    while agent.poll_output().is_some() {}
    assert_eq!(agent.nominated(), None);
}

/// Parses `data` (lossily decoded as UTF-8) as a browser SDP and answers
/// it. Checks: no panic; an answer we build parses again with one
/// m-section per offered one.
pub fn sdp(data: &[u8]) {
    use crate::dtls::{Fingerprint, HashAlgorithm};
    use crate::ice::IceCredentials;
    use crate::sdp::{build_answer, LocalTransport, SessionDescription};
    use std::net::{Ipv4Addr, SocketAddr};

    let text = String::from_utf8_lossy(data);
    let Ok(offer) = SessionDescription::parse(&text) else {
        return;
    };
    let _ = offer.remote_transport();
    let transport = LocalTransport {
        ice: IceCredentials {
            ufrag: "fuzz".into(),
            pwd: "fuzzfuzzfuzzfuzzfuzzfuzz".into(),
        },
        fingerprint: Fingerprint::of_der(HashAlgorithm::Sha256, b"fuzz"),
        candidate: SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 20_000)),
    };
    let Ok((answer, _)) = build_answer(&offer, 1, 1, &transport, &|_| None) else {
        return;
    };
    match SessionDescription::parse(&answer) {
        Ok(back) => assert_eq!(back.media.len(), offer.media.len(), "{answer}"),
        Err(e) => panic!("our answer does not parse: {e}\n{answer}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_do_not_panic() {
        for s in [
            &br#"{"v":1,"type":"join","conference":"c","display_name":"x","mic":true,"cam":false}"#[..],
            br#"{"v":1,"type":"ended","reason":"kicked"}"#,
            b"\xff\xfe",
            b"",
        ] {
            super::signal(s);
            super::stun(s);
            super::sdp(s);
        }
        super::sdp(include_bytes!("../testdata/chrome-offer.sdp"));
        super::sdp(include_bytes!("../testdata/firefox-offer.sdp"));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_entry_points(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            super::signal(&data);
            super::stun(&data);
            super::sdp(&data);
        }
    }
}
