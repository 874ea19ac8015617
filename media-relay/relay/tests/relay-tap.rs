//! A tapped endpoint hands its peer's media, decrypted, to the control
//! plane (the mixer's legs), and sends what the control plane makes back
//! to the peer, encrypted.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use confgate_relay::{PeerConfig, SrtpContext, SrtpParams, SrtpProfile, TapSink};

mod common;
use common::{at, client, drops, protect, recv, relay, rtp, unprotect};

struct Sink(mpsc::Sender<(bool, Vec<u8>)>);

impl TapSink for Sink {
    fn rtp(&mut self, packet: &[u8]) {
        let _ = self.0.send((false, packet.to_vec()));
    }
    fn rtcp(&mut self, packet: &[u8]) {
        let _ = self.0.send((true, packet.to_vec()));
    }
}

/// Takes STUN and DTLS, with their sources.
struct Handshake(mpsc::Sender<(&'static str, SocketAddr, Vec<u8>)>);

impl TapSink for Handshake {
    fn rtp(&mut self, _packet: &[u8]) {}
    fn stun(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        self.0.send(("stun", src, packet.to_vec())).is_ok()
    }
    fn dtls(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        self.0.send(("dtls", src, packet.to_vec())).is_ok()
    }
}

#[test]
fn stun_and_dtls_reach_the_tap_from_any_source_and_raw_packets_go_out_unchanged() {
    let r = relay(42900, 42999, 1, 16);
    let browser = client();
    let ep = r.create_endpoint(1, true).unwrap();
    let (tx, rx) = mpsc::channel();
    r.tap(ep.id, Some(Box::new(Handshake(tx)))).unwrap();
    // A STUN binding request header (type 0x0001, magic cookie) and a DTLS ClientHello record start.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    browser.send_to(&stun, at(ep.rtp_port)).unwrap();
    let dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa];
    browser.send_to(&dtls, at(ep.rtp_port)).unwrap();
    let (k1, src1, p1) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let (k2, src2, p2) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!((k1, p1), ("stun", stun));
    assert_eq!((k2, p2), ("dtls", dtls));
    assert_eq!(src1, browser.local_addr().unwrap());
    assert_eq!(src2, browser.local_addr().unwrap());
    // Not counted as drops when taken.
    let drops = drops(&r);
    assert_eq!((drops["stun"], drops["dtls"]), (0, 0));
    // Raw packets go out of the endpoint's socket as they are.
    r.send_raw(ep.id, browser.local_addr().unwrap(), vec![1, 2, 3, 4])
        .unwrap();
    let (got, from) = recv(&browser).unwrap();
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(from.port(), ep.rtp_port);
    r.shutdown();
}

#[test]
fn tap_receives_decrypted_media_and_send_rtp_encrypts_towards_the_peer() {
    let r = relay(42800, 42899, 1, 16);
    let phone = client();
    let profile = SrtpProfile::AesCm128HmacSha1_80;
    let phone_key = SrtpParams::random(profile).unwrap();
    let our_key = SrtpParams::random(profile).unwrap();
    let ep = r.create_endpoint(1, true).unwrap();
    r.configure(
        ep.id,
        &PeerConfig {
            peer: Some(phone.local_addr().unwrap()),
            srtp_in: Some(phone_key.clone()),
            srtp_out: Some(our_key.clone()),
            rtcp_mux: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    r.tap(ep.id, Some(Box::new(Sink(tx)))).unwrap();

    // The phone sends SRTP; the tap sees plain RTP.
    let mut phone_tx = SrtpContext::new(profile, &phone_key.key, &phone_key.salt).unwrap();
    let plain = rtp(7, 0x1234, &[0x33; 160]);
    let mut srtp = protect(&mut phone_tx, &plain);
    phone.send_to(&srtp, at(ep.rtp_port)).unwrap();
    let (is_rtcp, got) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(!is_rtcp);
    assert_eq!(got, plain);

    // A forged packet never reaches the tap.
    srtp[20] ^= 0xff;
    phone.send_to(&srtp, at(ep.rtp_port)).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());

    // What we make goes to the phone, encrypted with our key.
    let ours = rtp(100, 0xfeed, &[0x44; 160]);
    r.send_rtp(ep.id, ours.clone()).unwrap();
    let (srtp, _) = recv(&phone).unwrap();
    assert_eq!(srtp.len(), ours.len() + 10, "HMAC-SHA1-80 tag added");
    let mut phone_rx = SrtpContext::new(profile, &our_key.key, &our_key.salt).unwrap();
    assert_eq!(unprotect(&mut phone_rx, &srtp), ours);

    // Not RTP: refused, nothing sent.
    r.send_rtp(ep.id, vec![1, 2, 3]).unwrap();
    assert!(recv(&phone).is_none());

    // Untapped: media is no longer delivered.
    r.tap(ep.id, None).unwrap();
    let plain2 = rtp(8, 0x1234, &[0x33; 160]);
    phone
        .send_to(&protect(&mut phone_tx, &plain2), at(ep.rtp_port))
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    r.shutdown();
}

/// A browser's ICE restart re-points its endpoint with the same DTLS keys:
/// the SRTP contexts go on (a replayed packet is still refused, new ones
/// pass, the peer's new address gets our packets); new keys start afresh.
#[test]
fn configuring_again_with_the_same_keys_keeps_the_srtp_state() {
    let r = relay(42700, 42799, 1, 16);
    let (old, new) = (client(), client());
    let profile = SrtpProfile::AesCm128HmacSha1_80;
    let peer_key = SrtpParams::random(profile).unwrap();
    let our_key = SrtpParams::random(profile).unwrap();
    let ep = r.create_endpoint(1, true).unwrap();
    let cfg = |peer: &UdpSocket, key: &SrtpParams| PeerConfig {
        peer: Some(peer.local_addr().unwrap()),
        latch: confgate_relay::LatchMode::Signaled,
        srtp_in: Some(key.clone()),
        srtp_out: Some(our_key.clone()),
        rtcp_mux: true,
        ..Default::default()
    };
    r.configure(ep.id, &cfg(&old, &peer_key)).unwrap();
    let (tx, rx) = mpsc::channel();
    r.tap(ep.id, Some(Box::new(Sink(tx)))).unwrap();
    let mut peer_tx = SrtpContext::new(profile, &peer_key.key, &peer_key.salt).unwrap();
    let mut sent = Vec::new();
    for seq in 1..=3u16 {
        let srtp = protect(&mut peer_tx, &rtp(seq, 0x77, &[0x11; 80]));
        old.send_to(&srtp, at(ep.rtp_port)).unwrap();
        sent.push(srtp);
        assert!(rx.recv_timeout(Duration::from_secs(2)).is_ok());
    }
    // The peer moved: same keys, new address.
    r.configure(ep.id, &cfg(&new, &peer_key)).unwrap();
    new.send_to(&sent[1], at(ep.rtp_port)).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a replayed packet got through: the replay window was reset"
    );
    let plain = rtp(4, 0x77, &[0x11; 80]);
    new.send_to(&protect(&mut peer_tx, &plain), at(ep.rtp_port)).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap().1, plain);
    r.send_rtp(ep.id, rtp(100, 0xfeed, &[0x44; 40])).unwrap();
    assert!(recv(&new).is_some(), "our packets go to the new address");
    // New keys: a fresh context, which takes the old sequence numbers again.
    let key2 = SrtpParams::random(profile).unwrap();
    r.configure(ep.id, &cfg(&new, &key2)).unwrap();
    let mut tx2 = SrtpContext::new(profile, &key2.key, &key2.salt).unwrap();
    let plain = rtp(2, 0x77, &[0x11; 80]);
    new.send_to(&protect(&mut tx2, &plain), at(ep.rtp_port)).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap().1, plain);
    r.shutdown();
}
