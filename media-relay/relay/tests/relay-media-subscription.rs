//! Media subscriptions: one stream of a bundled leg (a browser's camera)
//! reaches other legs, renumbered for each, while the leg's audio goes only
//! to the tap (the mixer); the receivers' feedback goes back to the
//! publisher.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use confgate_relay::{PayloadMap, PeerConfig, TapSink};

mod common;

const OPUS: u8 = 111;
const VP8: u8 = 96;

struct Sink(mpsc::Sender<Vec<u8>>);

impl TapSink for Sink {
    fn rtp(&mut self, packet: &[u8]) {
        let _ = self.0.send(packet.to_vec());
    }
}

fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x55; 100]);
    p
}

/// An RTCP PLI (RFC 4585 §6.3.1) from `sender` about `media`.
fn pli(sender: u32, media: u32) -> Vec<u8> {
    let mut p = vec![0x81, 206, 0, 2];
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&media.to_be_bytes());
    p
}

/// An RTCP generic NACK (RFC 4585 §6.2.1) for one sequence number.
fn nack(sender: u32, media: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x81, 205, 0, 3];
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&media.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn recv(s: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

#[test]
fn video_goes_to_media_subscribers_audio_to_the_tap_feedback_to_the_publisher() {
    let r = common::relay(43100, 43199, 1, 16);
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let browser = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&publisher, &browser, &phone] {
        s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    }
    let cfg = |peer: &UdpSocket| PeerConfig {
        peer: Some(peer.local_addr().unwrap()),
        rtcp_mux: true,
        ..Default::default()
    };
    let p = r.create_endpoint(1, true).unwrap();
    let b = r.create_endpoint(1, true).unwrap();
    let v = r.create_endpoint(1, true).unwrap();
    r.configure(p.id, &cfg(&publisher)).unwrap();
    r.configure(b.id, &cfg(&browser)).unwrap();
    r.configure(v.id, &cfg(&phone)).unwrap();
    let (tx, tapped) = mpsc::channel();
    r.tap(p.id, Some(Box::new(Sink(tx)))).unwrap();
    r.set_untapped(p.id, PayloadMap::identity(&[VP8])).unwrap();
    // The browser takes VP8 as 96, the phone as 100 and rewritten to one SSRC.
    r.subscribe_media(p.id, b.id, PayloadMap::identity(&[VP8])).unwrap();
    let mut to_phone = PayloadMap::new();
    to_phone.insert(VP8, 100);
    r.subscribe_media(p.id, v.id, to_phone).unwrap();
    r.set_rewrite(v.id, Some(0xabcd), 3000).unwrap();

    publisher.send_to(&rtp(OPUS, 1, 0xa0d10), at(p.rtp_port)).unwrap();
    publisher.send_to(&rtp(VP8, 1, 0x71de0), at(p.rtp_port)).unwrap();

    // Audio: the tap only; video: not the tap.
    let t = tapped.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(t[1] & 0x7f, OPUS);
    assert!(
        tapped.recv_timeout(Duration::from_millis(300)).is_err(),
        "video reached the tap"
    );

    // Video: to both subscribers, renumbered for the phone, nothing else.
    let got = recv(&browser).unwrap();
    assert_eq!(got, rtp(VP8, 1, 0x71de0));
    assert!(recv(&browser).is_none(), "audio was forwarded to a media subscriber");
    let got = recv(&phone).unwrap();
    assert_eq!(got[1] & 0x7f, 100);
    assert_eq!(u32::from_be_bytes([got[8], got[9], got[10], got[11]]), 0xabcd);
    assert!(recv(&phone).is_none());

    // The browser's NACK and PLI reach the publisher as they were sent.
    let n = nack(0xb0b, 0x71de0, 1);
    browser.send_to(&n, at(b.rtp_port)).unwrap();
    assert_eq!(recv(&publisher).unwrap(), n);
    let k = pli(0xb0b, 0x71de0);
    browser.send_to(&k, at(b.rtp_port)).unwrap();
    assert_eq!(recv(&publisher).unwrap(), k);

    // The switched phone's PLI becomes the relay's own PLI naming the
    // publisher's video SSRC (not its audio SSRC).
    phone.send_to(&pli(0x9, 0xabcd), at(v.rtp_port)).unwrap();
    let got = recv(&publisher).unwrap();
    assert_eq!(got[1], 206);
    assert_eq!(u32::from_be_bytes([got[8], got[9], got[10], got[11]]), 0x71de0);

    // Unsubscribed: nothing more to the browser.
    r.unsubscribe(p.id, b.id).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    publisher.send_to(&rtp(VP8, 2, 0x71de0), at(p.rtp_port)).unwrap();
    assert!(recv(&browser).is_none());
    assert_eq!(recv(&phone).unwrap()[1] & 0x7f, 100);

    // The switched phone's NACK (its SSRC, its numbers) reaches the
    // publisher in the publisher's SSRC and numbers.
    phone.send_to(&nack(0x9, 0xabcd, 2), at(v.rtp_port)).unwrap();
    let got = recv(&publisher).unwrap();
    assert_eq!(&got[..4], &[0x81, 205, 0, 3], "one generic NACK");
    assert_eq!(u32::from_be_bytes([got[8], got[9], got[10], got[11]]), 0x71de0);
    assert_eq!(u16::from_be_bytes([got[12], got[13]]), 2);
    // One for a packet never sent is not passed on.
    phone.send_to(&nack(0x9, 0xabcd, 900), at(v.rtp_port)).unwrap();
    assert!(recv(&publisher).is_none());
    r.shutdown();
}

#[test]
fn a_stream_given_an_ssrc_keeps_it_and_feedback_names_the_publishers_own() {
    let r = common::relay(43200, 43299, 1, 16);
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let browser = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&phone, &browser] {
        s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    }
    let cfg = |peer: &UdpSocket| PeerConfig {
        peer: Some(peer.local_addr().unwrap()),
        rtcp_mux: true,
        ..Default::default()
    };
    let p = r.create_endpoint(1, true).unwrap();
    let b = r.create_endpoint(1, true).unwrap();
    r.configure(p.id, &cfg(&phone)).unwrap();
    r.configure(b.id, &cfg(&browser)).unwrap();
    // The phone's H.264 (PT 99) reaches the browser as 102, as SSRC 0x5151.
    let mut map = PayloadMap::new();
    map.insert(99, 102);
    r.subscribe_media_as(p.id, b.id, map, Some(0x5151)).unwrap();

    phone.send_to(&rtp(99, 40, 0x9999), at(p.rtp_port)).unwrap();
    let got = recv(&browser).unwrap();
    assert_eq!(got[1] & 0x7f, 102);
    assert_eq!(u32::from_be_bytes([got[8], got[9], got[10], got[11]]), 0x5151);
    assert_eq!(
        u16::from_be_bytes([got[2], got[3]]),
        40,
        "sequence numbers pass unchanged"
    );

    // The browser's PLI and NACK about 0x5151 name 0x9999 on the way back.
    browser.send_to(&pli(0xb, 0x5151), at(b.rtp_port)).unwrap();
    let fb = recv(&phone).unwrap();
    assert_eq!(fb[1], 206);
    assert_eq!(u32::from_be_bytes([fb[8], fb[9], fb[10], fb[11]]), 0x9999);
    browser.send_to(&nack(0xb, 0x5151, 40), at(b.rtp_port)).unwrap();
    let fb = recv(&phone).unwrap();
    assert_eq!(fb[1], 205);
    assert_eq!(u32::from_be_bytes([fb[8], fb[9], fb[10], fb[11]]), 0x9999);
    r.shutdown();
}
