//! Sockets are polled edge-triggered: a burst larger than the receive batch
//! must still be read to the end (a full batch is read again), with nothing
//! left behind until the next datagram arrives.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confgate_relay::PeerConfig;

mod common;

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

#[test]
fn bursts_larger_than_the_batch_are_forwarded_whole() {
    let r = common::relay(43300, 43399, 1, 4);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ea = r.create_endpoint(1, true).unwrap();
    let eb = r.create_endpoint(1, true).unwrap();
    r.configure(ea.id, &PeerConfig::default()).unwrap();
    r.configure(
        eb.id,
        &PeerConfig {
            peer: Some(b.local_addr().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    r.subscribe(ea.id, eb.id).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{}", ea.rtp_port).parse().unwrap();
    let mut buf = [0u8; 2048];
    let mut seq = 0u16;
    for round in 0..5 {
        // 50 datagrams, 4 per read: most rounds find the socket full.
        for _ in 0..50 {
            a.send_to(&rtp(seq), to).unwrap();
            seq += 1;
        }
        for n in 0..50 {
            let got = b.recv(&mut buf);
            assert!(got.is_ok(), "round {round}: datagram {n} of 50 arrived");
        }
        // Idle, then more: the socket is reported again.
        std::thread::sleep(Duration::from_millis(50));
    }
    let drops: u64 = r.drops().iter().map(|(_, n)| n).sum();
    assert_eq!(drops, 0);
    r.shutdown();
}
