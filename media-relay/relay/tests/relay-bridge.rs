//! The relay forwards between two endpoints on loopback: latching,
//! hijack protection, fan-out, SRTP re-keying, and freeing ports.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confgate_relay::{LatchMode, PeerConfig, SrtpContext, SrtpParams, SrtpProfile};

mod common;
use common::{at, client, configure_peer, drops, protect, recv, relay, rtp, unprotect};

#[test]
fn bridge_latches_and_refuses_hijackers() {
    let r = relay(42000, 42099, 2, 16);
    let (a, b) = (client(), client());
    let ea = r.create_endpoint(7, false).unwrap();
    let eb = r.create_endpoint(7, false).unwrap();
    // B's address is signalled; A's is learned from its first packet.
    configure_peer(&r, eb.id, &b);
    r.configure(ea.id, &PeerConfig::default()).unwrap();
    r.subscribe(ea.id, eb.id).unwrap();
    r.subscribe(eb.id, ea.id).unwrap();

    a.send_to(&rtp(1, 0xa, b"hello"), at(ea.rtp_port)).unwrap();
    let (got, from) = recv(&b).unwrap();
    assert_eq!(got, rtp(1, 0xa, b"hello"), "forwarded unchanged");
    assert_eq!(from, at(eb.rtp_port), "sent from B's endpoint (symmetric RTP)");
    b.send_to(&rtp(1, 0xb, b"back"), at(eb.rtp_port)).unwrap();
    let (got, from) = recv(&a).unwrap();
    assert_eq!(got, rtp(1, 0xb, b"back"), "A was latched from its first packet");
    assert_eq!(from, at(ea.rtp_port));

    // A hijacker sending to A's endpoint is dropped; so is garbage.
    let evil = client();
    evil.send_to(&rtp(2, 0xe, b"evil"), at(ea.rtp_port)).unwrap();
    a.send_to(b"not rtp at all", at(ea.rtp_port)).unwrap();
    a.send_to(&rtp(3, 0xa, b"ok"), at(ea.rtp_port)).unwrap();
    let (got, _) = recv(&b).unwrap();
    assert_eq!(got, rtp(3, 0xa, b"ok"));
    assert!(recv(&b).is_none(), "nothing else arrives");
    let drops = drops(&r);
    assert_eq!(drops["wrong_source"], 1);
    assert_eq!(drops["malformed"], 1);

    // RTCP on the next port goes to the peer's RTCP port (RTP + 1 by default).
    let b_rtcp = UdpSocket::bind(SocketAddr::new(
        b.local_addr().unwrap().ip(),
        b.local_addr().unwrap().port() + 1,
    ));
    if let Ok(b_rtcp) = b_rtcp {
        b_rtcp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 0xa];
        a.send_to(&rr, at(ea.rtcp_port.unwrap())).unwrap();
        let (got, from) = recv(&b_rtcp).unwrap();
        assert_eq!(got, rr);
        assert_eq!(from, at(eb.rtcp_port.unwrap()));
    }

    let st = r.stats(ea.id).unwrap();
    assert!(st.rtp_in >= 2, "{st:?}");
    assert_eq!(st.latched, Some(a.local_addr().unwrap()));
    r.shutdown();
}

#[test]
fn signalled_only_mode_ignores_other_sources() {
    let r = relay(42100, 42199, 2, 16);
    let (a, b, other) = (client(), client(), client());
    let ea = r.create_endpoint(1, true).unwrap();
    let eb = r.create_endpoint(1, true).unwrap();
    r.configure(
        ea.id,
        &PeerConfig {
            peer: Some(a.local_addr().unwrap()),
            latch: LatchMode::Signaled,
            ..Default::default()
        },
    )
    .unwrap();
    configure_peer(&r, eb.id, &b);
    r.subscribe(ea.id, eb.id).unwrap();
    other.send_to(&rtp(1, 1, b"x"), at(ea.rtp_port)).unwrap();
    assert!(recv(&b).is_none(), "not from the signalled address");
    a.send_to(&rtp(2, 1, b"y"), at(ea.rtp_port)).unwrap();
    assert_eq!(recv(&b).unwrap().0, rtp(2, 1, b"y"));
    r.shutdown();
}

#[test]
fn fan_out_with_stream_rewriting() {
    let r = relay(42200, 42299, 2, 16);
    let src = client();
    let subs: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
    let e_src = r.create_endpoint(3, true).unwrap();
    r.configure(e_src.id, &PeerConfig::default()).unwrap();
    let mut ends = Vec::new();
    for s in &subs {
        let e = r.create_endpoint(3, true).unwrap();
        configure_peer(&r, e.id, s);
        r.subscribe(e_src.id, e.id).unwrap();
        ends.push(e);
    }
    r.set_rewrite(ends[0].id, Some(0x5555), 160).unwrap();
    src.send_to(&rtp(10, 0xabc, b"to all"), at(e_src.rtp_port)).unwrap();
    let (first, _) = recv(&subs[0]).unwrap();
    assert_eq!(
        &first[8..12],
        &0x5555u32.to_be_bytes(),
        "rewritten SSRC for the first subscriber"
    );
    for s in &subs[1..] {
        assert_eq!(recv(s).unwrap().0, rtp(10, 0xabc, b"to all"));
    }
    // a second publisher's stream continues the rewritten sequence
    let other = client();
    let e2 = r.create_endpoint(3, true).unwrap();
    r.configure(e2.id, &PeerConfig::default()).unwrap();
    r.unsubscribe(e_src.id, ends[0].id).unwrap();
    r.subscribe(e2.id, ends[0].id).unwrap();
    other.send_to(&rtp(900, 0xdef, b"switch"), at(e2.rtp_port)).unwrap();
    let (p, _) = recv(&subs[0]).unwrap();
    assert_eq!(
        u16::from_be_bytes([p[2], p[3]]),
        11,
        "sequence continues after the switch"
    );
    assert_eq!(&p[8..12], &0x5555u32.to_be_bytes());
    r.shutdown();
}

#[test]
fn srtp_rekeying_in_both_directions_and_to_plain_rtp() {
    let r = relay(42300, 42399, 2, 16);
    let (a, b) = (client(), client());
    let profile = SrtpProfile::AesCm128HmacSha1_80;
    let a_key = SrtpParams::random(profile).unwrap(); // A → relay
    let relay_to_a = SrtpParams::random(profile).unwrap(); // relay → A
    let ea = r.create_endpoint(9, true).unwrap();
    let eb = r.create_endpoint(9, true).unwrap();
    r.configure(
        ea.id,
        &PeerConfig {
            srtp_in: Some(a_key.clone()),
            srtp_out: Some(relay_to_a.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    // B speaks plain RTP.
    configure_peer(&r, eb.id, &b);
    r.subscribe(ea.id, eb.id).unwrap();
    r.subscribe(eb.id, ea.id).unwrap();

    let mut a_tx = SrtpContext::new(profile, &a_key.key, &a_key.salt).unwrap();
    let mut a_rx = SrtpContext::new(profile, &relay_to_a.key, &relay_to_a.salt).unwrap();
    let plain = rtp(5, 0xa, &[0x55; 160]);
    let first = protect(&mut a_tx, &plain);
    a.send_to(&first, at(ea.rtp_port)).unwrap();
    assert_eq!(recv(&b).unwrap().0, plain, "decrypted for the plain side");

    // A tampered packet is refused (and does not latch anyone).
    let mut bad = protect(&mut a_tx, &rtp(6, 0xa, &[0x55; 160]));
    bad[20] ^= 1;
    a.send_to(&bad, at(ea.rtp_port)).unwrap();
    // A replay of the first packet is refused too.
    a.send_to(&first, at(ea.rtp_port)).unwrap();
    assert!(recv(&b).is_none());

    b.send_to(&rtp(1, 0xb, &[7; 160]), at(eb.rtp_port)).unwrap();
    let (enc, _) = recv(&a).unwrap();
    assert_eq!(enc.len(), 12 + 160 + 10, "HMAC-SHA1-80 tag added");
    assert_eq!(
        unprotect(&mut a_rx, &enc),
        rtp(1, 0xb, &[7; 160]),
        "encrypted with the relay's key towards A"
    );
    let drops = drops(&r);
    assert_eq!(drops["srtp_auth"], 1);
    assert_eq!(drops["srtp_replay"], 1);
    r.shutdown();
}

#[test]
fn removing_endpoints_frees_their_ports() {
    let r = relay(42400, 42499, 2, 16);
    let e = r.create_endpoint(1, false).unwrap();
    assert_eq!(r.ports_in_use(), 2);
    r.remove_endpoint(e.id).unwrap();
    assert_eq!(r.ports_in_use(), 0);
    assert_eq!(r.endpoint_count(), 0);
    // the port can be bound again at once
    UdpSocket::bind(at(e.rtp_port)).unwrap();
    assert!(r.remove_endpoint(e.id).is_err());
    assert!(r.subscribe(e.id, e.id).is_err());
    // endpoints of different groups may land on different workers and cannot be bridged
    let x = r.create_endpoint(0, true).unwrap();
    let y = r.create_endpoint(1, true).unwrap();
    assert!(r.subscribe(x.id, y.id).is_err());
    r.shutdown();
}

#[test]
fn keyframe_requests_reach_the_publisher() {
    let r = relay(42500, 42599, 2, 16);
    let (publisher, viewer) = (client(), client());
    let ep = r.create_endpoint(4, true).unwrap();
    let ev = r.create_endpoint(4, true).unwrap();
    r.configure(
        ep.id,
        &PeerConfig {
            rtcp_mux: true,
            ..Default::default()
        },
    )
    .unwrap();
    r.configure(
        ev.id,
        &PeerConfig {
            peer: Some(viewer.local_addr().unwrap()),
            rtcp_mux: true,
            ..Default::default()
        },
    )
    .unwrap();
    r.subscribe(ep.id, ev.id).unwrap();
    // The viewer takes one switched stream: its headers are rewritten.
    r.set_rewrite(ev.id, Some(0x7777), 3000).unwrap();
    publisher.send_to(&rtp(1, 0xcafe, b"frame"), at(ep.rtp_port)).unwrap();
    assert!(recv(&viewer).is_some());

    // Asked by the control plane (a speaker switch) ...
    r.request_keyframe(ep.id).unwrap();
    let (pli, from) = recv(&publisher).unwrap();
    assert_eq!(from, at(ep.rtp_port), "rtcp-mux: from the RTP port");
    assert_eq!(&pli[..4], &[0x81, 206, 0, 2], "PSFB, FMT 1 (PLI), length 2");
    assert_eq!(&pli[8..12], &0xcafeu32.to_be_bytes(), "media SSRC is the publisher's");

    // ... or by the viewer: its PLI names the rewritten SSRC, so the relay
    // asks the current source itself instead of forwarding it.
    let viewer_pli = [0x81u8, 206, 0, 2, 0, 0, 0, 9, 0, 0, 0x77, 0x77];
    viewer.send_to(&viewer_pli, at(ev.rtp_port)).unwrap();
    let (pli, _) = recv(&publisher).unwrap();
    assert_eq!(&pli[8..12], &0xcafeu32.to_be_bytes());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r.keyframe_requests(), 2);
    r.shutdown();
}

#[test]
fn a_fan_out_larger_than_a_send_batch_drops_nothing() {
    // batch 4 → the send batch holds 16 datagrams; 40 subscribers need three flushes per packet.
    let r = relay(42600, 42799, 1, 4);
    let sink = client();
    let src = client();
    let publisher = r.create_endpoint(1, true).unwrap();
    r.configure(publisher.id, &PeerConfig::default()).unwrap();
    for _ in 0..40 {
        let e = r.create_endpoint(1, true).unwrap();
        configure_peer(&r, e.id, &sink);
        r.subscribe(publisher.id, e.id).unwrap();
    }
    src.send_to(&rtp(1, 0x1, b"all"), at(publisher.rtp_port)).unwrap();
    for n in 0..40 {
        assert!(recv(&sink).is_some(), "copy {n} of 40 arrived");
    }
    let drops = drops(&r);
    assert_eq!(drops["send_failed"], 0);
    r.shutdown();
}
