//! Entry points for the fuzz targets in `fuzz/` (one function per target).

/// Parses `data` (lossily decoded as UTF-8) as an SDP offer and answers it
/// with SDES keys and video enabled. Checks: no panic; an answer parses
/// again, has as many `m=` lines as the offer, and an accepted stream's
/// payload type is one of the offer's formats (RFC 3264 §6.1).
pub fn sdp(data: &[u8]) {
    use crate::sdp::{answer, parse, AnswerParams};
    use call::{SrtpKeys, SrtpSuite};
    use std::net::{IpAddr, Ipv4Addr};

    let text = String::from_utf8_lossy(data);
    let Ok(offer) = parse(&text) else { return };
    let mut params = AnswerParams::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40_000, 1, 1);
    params.video_port = Some(40_002);
    params.srtp_keys = [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes256Gcm]
        .into_iter()
        .map(|suite| SrtpKeys {
            suite,
            master_key: vec![7; suite.key_len()],
            master_salt: vec![9; suite.salt_len()],
        })
        .collect();
    let Ok(ans) = answer(&offer, &params) else { return };
    let back = match parse(&ans.sdp) {
        Ok(back) => back,
        Err(e) => panic!("our answer does not parse: {e}\n{}", ans.sdp),
    };
    assert_eq!(back.media.len(), offer.media.len(), "{}", ans.sdp);
    for stream in ans.audio.iter().chain(&ans.video) {
        let offered = offer.media.get(stream.index).map(|m| &m.formats);
        let from_offer = offered.is_some_and(|formats| {
            formats.iter().any(|f| {
                f.parse::<u8>()
                    .ok()
                    .is_some_and(|pt| Some(pt) == stream.codec.payload_type)
            })
        });
        assert!(from_offer, "payload type not from the offer");
    }
}

/// Digest, REGISTER and INFO parsers on `data` (lossily decoded as UTF-8).
/// Checks: no panic; the `Authorization` built by `digest::respond` parses
/// again and, for a challenge we issued, verifies for any user name and
/// password; `apply` never returns more bindings than the policy allows nor
/// expired ones; a DTMF body we build parses back to the same digit.
pub fn auth(data: &[u8]) {
    use crate::{digest, info, registrar, status};
    use rsip::headers::UntypedHeader;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    let text = String::from_utf8_lossy(data);
    const REALM: &str = "fuzz.example.org";

    // Digest, both sides.
    let _ = digest::parse_params(&text);
    let _ = digest::parse_challenge(&text);
    if let Ok(v) = digest::respond(&text, "REGISTER", "sip:fuzz.example.org", "u", "p", "cn", 1) {
        assert!(
            digest::parse_params(&v).is_ok(),
            "our Authorization does not parse: {v}"
        );
    }
    let mut issuer = digest::NonceIssuer::new([3; 32], Duration::from_secs(300)).with_max_tracked_nonces(4);
    let _ = issuer.verify(&text, "REGISTER", REALM, 1_000, |alg, user| {
        Some(digest::ha1(alg, user, REALM, "p"))
    });
    let (user, password) = text.split_once('\n').unwrap_or((&text, ""));
    if !user.is_empty() && !user.contains(['\r', '\n']) {
        for challenge in issuer.challenge(REALM, 1_000, false) {
            let Ok(auth) = digest::respond(&challenge, "REGISTER", "sip:x", user, password, "cn", 1) else {
                panic!("cannot answer our own challenge: {challenge}");
            };
            let verified = issuer.verify(&auth, "REGISTER", REALM, 1_001, |alg, u| {
                (u == user).then(|| digest::ha1(alg, user, REALM, password))
            });
            assert!(verified.is_ok_and(|v| v.username == user), "round trip failed: {auth}");
        }
    }

    // REGISTER: line 1 Contact, line 2 Expires, line 3 To, further lines more Contacts.
    let mut lines = text.split('\n');
    let contact = lines.next().unwrap_or("");
    let expires = lines.next();
    let to = lines.next().unwrap_or("<sip:alice@fuzz.example.org>");
    let mut headers = rsip::Headers::default();
    headers.push(rsip::Header::To(rsip::headers::To::new(to)));
    headers.push(rsip::Header::CallId(rsip::headers::CallId::new("fuzz-call-id")));
    headers.push(rsip::Header::CSeq(rsip::headers::CSeq::new("7 REGISTER")));
    headers.push(rsip::Header::Contact(rsip::headers::Contact::new(contact)));
    if let Some(e) = expires {
        headers.push(rsip::Header::Expires(rsip::headers::Expires::new(e)));
    }
    for more in lines {
        headers.push(rsip::Header::Contact(rsip::headers::Contact::new(more)));
    }
    let req = rsip::Request {
        method: rsip::Method::Register,
        uri: rsip::Uri::default(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    let source = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 9), 5060));
    if let Ok(reg) = registrar::RegisterRequest::from_request(&req, source, "udp") {
        let policy = registrar::ExpiryPolicy {
            max_bindings: 3,
            ..registrar::ExpiryPolicy::default()
        };
        let existing = vec![registrar::Binding {
            contact: "sip:alice@192.0.2.9".into(),
            expires_at: 2_000,
            call_id: "fuzz-call-id".into(),
            cseq: 5,
            q: None,
            source: None,
            transport: "udp".into(),
            user_agent: None,
            instance: Some("urn:uuid:1".into()),
        }];
        if let Ok(bindings) = registrar::apply(&existing, &reg, &policy, 1_000) {
            assert!(bindings.len() <= policy.max_bindings);
            assert!(bindings.iter().all(|b| b.expires_at > 1_000));
            let values = registrar::contact_header_values(&bindings, 1_000);
            assert_eq!(values.len(), bindings.len());
        }
    }

    // INFO bodies and Reason headers.
    for d in [info::parse_dtmf_relay(data), info::parse_dtmf(data)]
        .into_iter()
        .flatten()
    {
        let body = info::dtmf_relay_body(d.digit, d.duration_ms);
        assert_eq!(info::parse_dtmf_relay(body.as_bytes()), Ok(d));
    }
    let _ = info::parse_info_body(&text, data);
    let _ = status::reason_from_header(&text);
}

/// `message::parse` on `data` as one datagram, then every accessor and builder on what it accepts.
/// Checks: no panic; what we serialize parses again with the same Call-ID and CSeq.
pub fn message(data: &[u8]) {
    use crate::message as m;
    let Ok(msg) = m::parse(data) else { return };
    let _ = (
        m::from_tag(&msg),
        m::to_tag(&msg),
        m::top_via_branch(&msg),
        m::from_uri(&msg),
        m::to_uri(&msg),
    );
    let _ = (m::contact_uris(&msg), m::expires(&msg), m::header_value(&msg, "v"));
    let source = std::net::SocketAddr::from(([192, 0, 2, 1], 5060));
    let mut check = vec![msg.clone()];
    if let rsip::SipMessage::Request(req) = &msg {
        let _ = m::request_uri_user(req);
        let mut stamped = req.clone();
        m::stamp_received(&mut stamped, source);
        let resp = m::response_for(&stamped, 486, Some("fuzz"));
        let _ = m::response_destination(&resp, source);
        let _ = crate::transaction::cancel_request(req);
        let _ = crate::dialog::Dialog::uas(req, "fuzz", rsip::Uri::default());
        let _ = crate::dialog::SessionTimer::negotiate(req, 90);
        check.push(rsip::SipMessage::Request(stamped));
        check.push(rsip::SipMessage::Response(resp));
    }
    for msg in check {
        let again = match m::parse(&m::to_bytes(&msg)) {
            Ok(again) => again,
            Err(e) => panic!("our own serialization does not parse: {e}\n{msg}"),
        };
        assert_eq!(m::call_id(&again), m::call_id(&msg));
        assert_eq!(m::cseq(&again), m::cseq(&msg));
    }
}

/// Drives a `TransactionLayer` with `data` cut into chunks at NUL bytes: each chunk's first byte picks an
/// input (receive over UDP or TCP, let time pass, answer the last request, send a request) and the rest
/// is its datagram or argument. Checks: no panic; timers never point to the past after
/// `handle_timeout`; the transaction count stays within the limit plus our own client transactions.
pub fn transaction(data: &[u8]) {
    use crate::message as m;
    use crate::transaction::{Received, Timers, TransactionLayer};
    use std::time::{Duration, Instant};

    let mut layer = TransactionLayer::with_limit(Timers::default(), 8);
    let t0 = Instant::now();
    let mut now = t0;
    let from = std::net::SocketAddr::from(([192, 0, 2, 1], 5060));
    let mut last = None;
    let mut sent = 0usize;
    for chunk in data.split(|&b| b == 0).filter(|c| !c.is_empty()) {
        let (op, rest) = chunk.split_first().unwrap_or((&0, &[]));
        match op % 5 {
            0 | 1 => {
                if let Ok(msg) = m::parse(rest) {
                    if let Some(Received::Request { key, request } | Received::Cancel { key, request, .. }) =
                        layer.receive(msg, from, op % 5 == 1, now)
                    {
                        last = Some((key, request));
                    }
                }
            }
            2 => now += Duration::from_millis(u64::from(rest.first().copied().unwrap_or(1)) * 250),
            3 => {
                if let Some((key, req)) = &last {
                    let code = 100 + u16::from(rest.first().copied().unwrap_or(0)) * 2 % 600;
                    layer.respond(key, m::response_for(req, code, Some("fz")), now);
                }
            }
            _ => {
                if let Ok(rsip::SipMessage::Request(req)) = m::parse(rest) {
                    layer.send_request(req, from, false, now);
                    sent += 1;
                }
            }
        }
        layer.handle_timeout(now);
        assert!(
            layer.poll_timeout().is_none_or(|t| t > now),
            "a due timer survived handle_timeout"
        );
        assert!(layer.len() <= 8 + sent);
        while layer.poll_transmit().is_some() {}
        while layer.poll_event().is_some() {}
    }
    // Everything ends within the longest timer (Timer D: 32 s, 64·T1 = 32 s) once nothing new arrives,
    // except server transactions still waiting for the TU's answer.
    layer.handle_timeout(now + Duration::from_secs(40));
    while layer.poll_event().is_some() {}
}

/// The RFC 3262 parsers and machines on `data`: the whole input as an `RAck` value; then `data` cut at
/// NUL bytes into SIP messages fed to a [`crate::reliable::ReliableProvisionals`] (requests as PRACKs,
/// with time passing between them) and to a [`crate::reliable::PrackClient`] (responses as provisional
/// responses to our INVITE). Checks: no panic; an `RAck` that parses prints back to itself; a PRACK
/// that is accepted names the RSeq that was outstanding; the machine's timer never points to the past
/// after `handle_timeout`; the client acknowledges only reliable 101–199 responses.
pub fn prack(data: &[u8]) {
    use crate::message as m;
    use crate::reliable::{self, PrackClient, Provisional, RAck, ReliableProvisionals, UasOutput};
    use std::time::{Duration, Instant};

    let text = String::from_utf8_lossy(data);
    if let Ok(r) = RAck::parse(&text) {
        assert_eq!(RAck::parse(&r.to_string()).as_ref(), Ok(&r), "RAck round trip");
    }
    let invite_text = "INVITE sip:bob@fuzz.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfz\r\n\
                       From: <sip:alice@fuzz.example.org>;tag=a\r\nTo: <sip:bob@fuzz.example.org>\r\n\
                       Call-ID: fz\r\nCSeq: 5 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\n\
                       Supported: 100rel\r\nContent-Length: 0\r\n\r\n";
    let Ok(rsip::SipMessage::Request(invite)) = m::parse(invite_text.as_bytes()) else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut uas = ReliableProvisionals::new(&invite, Duration::from_millis(500), 1000);
    let mut outstanding: Option<u32> = None;
    let mut uac = PrackClient::new();
    let drain = |uas: &mut ReliableProvisionals, outstanding: &mut Option<u32>| {
        while let Some(o) = uas.poll_output() {
            if let UasOutput::Send(r) = o {
                *outstanding = reliable::rseq(&r);
            }
        }
    };
    for (i, chunk) in data.split(|&b| b == 0).filter(|c| !c.is_empty()).enumerate() {
        if i % 3 == 0 {
            uas.send(m::response_for(&invite, 180, Some("b")), now);
            drain(&mut uas, &mut outstanding);
        }
        match m::parse(chunk) {
            Ok(rsip::SipMessage::Request(req)) => {
                if let Ok(rack) = uas.on_prack(&req, now) {
                    assert_eq!(Some(rack.rseq), outstanding, "accepted a PRACK for another response");
                    outstanding = None;
                }
            }
            Ok(rsip::SipMessage::Response(resp)) => {
                let _ = reliable::rseq(&resp);
                if let Provisional::Acknowledge(rack) = uac.on_provisional(&invite, &resp) {
                    assert!(reliable::is_reliable(&resp));
                    assert_eq!(rack.cseq, 5);
                }
            }
            Err(_) => now += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(1)) * 40),
        }
        drain(&mut uas, &mut outstanding);
        uas.handle_timeout(now);
        assert!(
            uas.poll_timeout().is_none_or(|t| t > now),
            "a due timer survived handle_timeout"
        );
        drain(&mut uas, &mut outstanding);
    }
}
