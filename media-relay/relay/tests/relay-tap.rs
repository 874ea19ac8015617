//! A tapped endpoint hands its peer's media, decrypted, to the control
//! plane (the mixer's legs), and sends what the control plane makes back
//! to the peer, encrypted.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use confgate_relay::{PeerConfig, Relay, RelayConfig, SrtpContext, SrtpParams, SrtpProfile, TapSink};

struct Sink(mpsc::Sender<(bool, Vec<u8>)>);

impl TapSink for Sink {
    fn rtp(&mut self, packet: &[u8]) {
        let _ = self.0.send((false, packet.to_vec()));
    }
    fn rtcp(&mut self, packet: &[u8]) {
        let _ = self.0.send((true, packet.to_vec()));
    }
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn tap_receives_decrypted_media_and_send_rtp_encrypts_towards_the_peer() {
    let r = Relay::start(RelayConfig {
        bind: "127.0.0.1".parse().unwrap(),
        port_min: 42800,
        port_max: 42899,
        workers: 1,
        batch: 16,
    })
    .unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
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
    let mut buf = [0u8; 2048];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = phone_tx.protect_rtp(&mut buf, plain.len()).unwrap();
    phone.send_to(&buf[..n], at(ep.rtp_port)).unwrap();
    let (is_rtcp, got) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(!is_rtcp);
    assert_eq!(got, plain);

    // A forged packet never reaches the tap.
    buf[20] ^= 0xff;
    phone.send_to(&buf[..n], at(ep.rtp_port)).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());

    // What we make goes to the phone, encrypted with our key.
    let ours = rtp(100, 0xfeed, &[0x44; 160]);
    r.send_rtp(ep.id, ours.clone()).unwrap();
    let mut rbuf = [0u8; 2048];
    let (m, _) = phone.recv_from(&mut rbuf).unwrap();
    assert_eq!(m, ours.len() + 10, "HMAC-SHA1-80 tag added");
    let mut phone_rx = SrtpContext::new(profile, &our_key.key, &our_key.salt).unwrap();
    let k = phone_rx.unprotect_rtp(&mut rbuf, m).unwrap();
    assert_eq!(&rbuf[..k], &ours[..]);

    // Not RTP: refused, nothing sent.
    r.send_rtp(ep.id, vec![1, 2, 3]).unwrap();
    assert!(phone.recv_from(&mut rbuf).is_err());

    // Untapped: media is no longer delivered.
    r.tap(ep.id, None).unwrap();
    let plain2 = rtp(8, 0x1234, &[0x33; 160]);
    buf[..plain2.len()].copy_from_slice(&plain2);
    let n = phone_tx.protect_rtp(&mut buf, plain2.len()).unwrap();
    phone.send_to(&buf[..n], at(ep.rtp_port)).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    r.shutdown();
}
