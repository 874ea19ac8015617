//! Forwarding allocates nothing per packet in steady state (plain RTP and
//! SRTP re-keying), counted by a global allocator.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use confgate_relay::{PeerConfig, SrtpContext, SrtpParams, SrtpProfile};

mod common;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn zero_allocations_per_forwarded_packet() {
    let r = common::relay(43000, 43099, 1, 16);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let p = SrtpProfile::AesCm128HmacSha1_80;
    let (ka, kb) = (SrtpParams::random(p).unwrap(), SrtpParams::random(p).unwrap());
    let ea = r.create_endpoint(1, true).unwrap();
    let eb = r.create_endpoint(1, true).unwrap();
    r.configure(
        ea.id,
        &PeerConfig {
            srtp_in: Some(ka.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    r.configure(
        eb.id,
        &PeerConfig {
            peer: Some(b.local_addr().unwrap()),
            srtp_out: Some(kb),
            ..Default::default()
        },
    )
    .unwrap();
    r.subscribe(ea.id, eb.id).unwrap();
    let mut tx = SrtpContext::new(p, &ka.key, &ka.salt).unwrap();
    let dest = SocketAddr::from(([127, 0, 0, 1], ea.rtp_port));
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 2048];
    let send = |seq: u16, tx: &mut SrtpContext, buf: &mut [u8; 2048]| {
        buf[..12].copy_from_slice(&[0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0, 0, 0, 0, 1]);
        buf[12..172].fill(0x33);
        let n = tx.protect_rtp(buf, 172).unwrap();
        a.send_to(&buf[..n], dest).unwrap();
    };
    // warm up: latching, per-SSRC state, batch buffers, stats publication
    for seq in 0..200u16 {
        send(seq, &mut tx, &mut buf);
        b.recv_from(&mut rbuf).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = ALLOCS.load(Ordering::Relaxed);
    for seq in 200..2200u16 {
        send(seq, &mut tx, &mut buf);
        b.recv_from(&mut rbuf).unwrap();
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    // The worker publishes stats every 200 ms without allocating; anything
    // counted here would be per-packet work.
    assert_eq!(after - before, 0, "allocations while forwarding 2000 SRTP packets");
    r.shutdown();
}
