//! SRTP protect/unprotect cost per packet, per profile and crypto backend.
//!
//! Run with `cargo bench -p confgate-relay --bench srtp`. For each profile,
//! packet shape (172-byte G.711 packet: 12-byte header + 160 bytes; 1200-byte
//! video packet) and backend, it times `protect_rtp` alone and `protect_rtp`
//! followed by `unprotect_rtp` in a plain `Instant` loop, and prints ns per
//! packet. The anchor, in the same run, is copying the packet into the buffer
//! (which every iteration also does). Each figure is the best of several
//! rounds, so that other load on a shared machine shows less.

use std::hint::black_box;
use std::time::Instant;

use confgate_relay::srtp::backend::{AwsLc, Backend, Mixed, RustCrypto, Session};
use confgate_relay::srtp::{SrtpProfile, MAX_SRTP_OVERHEAD};

const ROUNDS: usize = 7;

fn packet(payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

fn iterations(len: usize) -> u32 {
    if len > 500 {
        100_000
    } else {
        300_000
    }
}

/// Best-of-`ROUNDS` ns per iteration of `body`.
fn time(iters: u32, mut body: impl FnMut(u32)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..iters {
            body(i);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
        best = best.min(ns);
    }
    best
}

fn new_session<B: Backend>(profile: SrtpProfile) -> Session<B> {
    let key = [0x42u8; 32];
    let salt = [0x17u8; 14];
    match Session::new(profile, &key[..profile.key_len()], &salt[..profile.salt_len()]) {
        Ok(s) => s,
        Err(e) => panic!("session for {profile:?}: {e}"),
    }
}

/// (protect ns, protect + unprotect ns) per packet.
fn measure<B: Backend>(profile: SrtpProfile, template: &[u8]) -> (f64, f64) {
    let len = template.len();
    let iters = iterations(len);
    let mut buf = vec![0u8; len + MAX_SRTP_OVERHEAD];

    let mut tx = new_session::<B>(profile);
    let mut failures = 0u32;
    let protect = time(iters, |i| {
        buf[..len].copy_from_slice(template);
        buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        if tx.protect_rtp(black_box(&mut buf), len).is_err() {
            failures += 1;
        }
    });
    assert_eq!(failures, 0, "{profile:?}: protect failed");

    let mut tx = new_session::<B>(profile);
    let mut rx = new_session::<B>(profile);
    let mut ssrc = 0u8;
    let both = time(iters, |i| {
        buf[..len].copy_from_slice(template);
        buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        // Each round starts the sequence numbers over; move the SSRC on so
        // the receiver sees a fresh stream rather than replays.
        if i == 0 {
            ssrc += 1;
        }
        buf[8] = ssrc;
        let ok = tx
            .protect_rtp(black_box(&mut buf), len)
            .and_then(|n| rx.unprotect_rtp(black_box(&mut buf), n));
        if ok.is_err() {
            failures += 1;
        }
    });
    assert_eq!(failures, 0, "{profile:?}: round trips failed");
    (protect, both)
}

/// ns per call of each primitive on `len` bytes: (AES-CTR, HMAC-SHA1, GCM-128 seal).
fn primitives<B: Backend>(len: usize) -> (f64, f64, f64) {
    let iters = iterations(len + 12);
    let mut data = vec![0u8; len];
    let ctr = B::ctr_new(&[7; 16]).unwrap_or_else(|_| panic!("ctr"));
    let iv = [3u8; 16];
    let c = time(iters, |_| {
        let _ = B::ctr_apply(&ctr, &iv, black_box(&mut data));
    });
    let mac = B::hmac_new(&[9; 20]).unwrap_or_else(|_| panic!("hmac"));
    let h = time(iters, |_| {
        black_box(B::hmac_sha1(&mac, black_box(&data), &[0, 0, 0, 1]));
    });
    let gcm = B::gcm_new(&[5; 16]).unwrap_or_else(|_| panic!("gcm"));
    let g = time(iters, |i| {
        let mut nonce = [1u8; 12];
        nonce[..4].copy_from_slice(&i.to_be_bytes());
        let _ = black_box(B::gcm_seal(&gcm, &nonce, &[0u8; 12], black_box(&mut data)));
    });
    (c, h, g)
}

type Measure = fn(SrtpProfile, &[u8]) -> (f64, f64);

/// Every backend, the one `SrtpContext` uses (`mixed`) last.
const BACKENDS: [(&str, Measure); 3] = [
    ("rustcrypto", measure::<RustCrypto>),
    ("aws-lc-rs", measure::<AwsLc>),
    ("mixed", measure::<Mixed>),
];

fn main() {
    println!("Primitives, ns/call on the payload (best of {ROUNDS})");
    println!(
        "{:<8} {:<12} {:>9} {:>11} {:>12}",
        "bytes", "backend", "AES-CTR", "HMAC-SHA1", "AES128-GCM"
    );
    for len in [160usize, 1188] {
        let (a, b, c) = primitives::<RustCrypto>(len);
        println!("{len:<8} {:<12} {a:>9.1} {b:>11.1} {c:>12.1}", "rustcrypto");
        let (a, b, c) = primitives::<AwsLc>(len);
        println!("{len:<8} {:<12} {a:>9.1} {b:>11.1} {c:>12.1}", "aws-lc-rs");
    }
    println!();
    let shapes = [("172 B (G.711)", packet(160)), ("1200 B (video)", packet(1188))];

    println!("SRTP ns/packet, best of {ROUNDS} rounds (lower is better)");
    println!(
        "{:<26} {:<15} {:<12} {:>10} {:>20}",
        "profile", "packet", "backend", "protect", "protect+unprotect"
    );
    for (shape, template) in &shapes {
        let len = template.len();
        let mut buf = vec![0u8; len + MAX_SRTP_OVERHEAD];
        let copy = time(iterations(len), |i| {
            buf[..len].copy_from_slice(black_box(template));
            buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            black_box(&mut buf);
        });
        println!(
            "{:<26} {:<15} {:<12} {:>10.1} {:>20}",
            "(anchor: copy only)", shape, "-", copy, "-"
        );
        for profile in SrtpProfile::ALL {
            let mut rows = Vec::new();
            for (name, run) in BACKENDS {
                let (p, b) = run(profile, template);
                rows.push((name, p, b));
                println!(
                    "{:<26} {:<15} {:<12} {:>10.1} {:>20.1}",
                    profile.sdes_name(),
                    shape,
                    name,
                    p,
                    b
                );
            }
            let best = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
            let fastest = rows.iter().filter(|r| r.2 == best).map(|r| r.0).next().unwrap_or("-");
            println!("{:<26} {:<15} fastest: {fastest}", "", "");
        }
    }
}
