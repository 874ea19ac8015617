//! Helpers shared by the relay's loopback tests: a relay and clients on
//! loopback, RTP packets, SRTP protection with a test's own context, and the
//! drop counters.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confgate_relay::{EndpointId, PeerConfig, Relay, RelayConfig, SrtpContext};

/// A relay bound to 127.0.0.1 with media ports `port_min..=port_max`.
pub(crate) fn relay(port_min: u16, port_max: u16, workers: usize, batch: usize) -> Relay {
    Relay::start(RelayConfig {
        bind: "127.0.0.1".parse().unwrap(),
        port_min,
        port_max,
        workers,
        batch,
        raw_send: true,
    })
    .unwrap()
}

/// A UDP socket on loopback whose reads give up after 500 ms.
pub(crate) fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    s
}

/// An RTP packet (version 2, payload type 0) with sequence number `seq`,
/// timestamp `seq` · 160 and SSRC `ssrc`.
pub(crate) fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// `port` on 127.0.0.1.
pub(crate) fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The next datagram on `s` and its source; `None` when none comes in time.
pub(crate) fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf).ok().map(|(n, a)| (buf[..n].to_vec(), a))
}

/// Points endpoint `id` at `peer`'s address, everything else by default.
pub(crate) fn configure_peer(r: &Relay, id: EndpointId, peer: &UdpSocket) {
    r.configure(
        id,
        &PeerConfig {
            peer: Some(peer.local_addr().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
}

/// The SRTP packet `ctx` makes of the RTP packet `plain`.
pub(crate) fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    buf[..plain.len()].copy_from_slice(plain);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf[..n].to_vec()
}

/// The RTP packet `ctx` recovers from the SRTP packet `srtp`.
pub(crate) fn unprotect(ctx: &mut SrtpContext, srtp: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    buf[..srtp.len()].copy_from_slice(srtp);
    let n = ctx.unprotect_rtp(&mut buf, srtp.len()).unwrap();
    buf[..n].to_vec()
}

/// The relay's drop counters by reason, read after 300 ms so that the
/// workers have counted what was just sent.
pub(crate) fn drops(r: &Relay) -> HashMap<&'static str, u64> {
    std::thread::sleep(Duration::from_millis(300));
    r.drops().into_iter().collect()
}
