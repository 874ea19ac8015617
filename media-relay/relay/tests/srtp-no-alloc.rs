//! SRTP and SRTCP allocate nothing per packet in steady state: after a
//! warm-up that creates each SSRC's state, 10,000 rounds of protect and
//! unprotect of RTP and RTCP, for every profile and across a sequence-number
//! wrap, make zero heap allocations.

// The counting allocator below needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use confgate_relay::srtp::{SrtpContext, SrtpProfile, MAX_SRTP_OVERHEAD};

/// Counts allocations made by threads that set `COUNTING`, then defers to
/// the system allocator.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly; counting touches only an atomic and a
// const-initialised thread-local `Cell` (which never allocates), so the
// contract callers rely on is `System`'s.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller passes a block from this allocator (hence from
        // `System`) with its layout, as `realloc` requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block from this allocator (hence from
        // `System`) with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u16 = 10_000;
const SSRCS: [u32; 2] = [0x1111_1111, 0x2222_2222];

fn write_rtp(buf: &mut [u8], seq: u16, ssrc: u32, payload: usize) -> usize {
    buf[0] = 0x80;
    buf[1] = 0x00;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in buf[12..12 + payload].iter_mut().enumerate() {
        *b = i as u8;
    }
    12 + payload
}

fn write_rtcp(buf: &mut [u8], ssrc: u32) -> usize {
    buf[..4].copy_from_slice(&[0x81, 201, 0x00, 0x07]);
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8..32].fill(0x5a);
    32
}

/// One protect + unprotect of an RTP and an RTCP packet per SSRC; panics
/// (after counting stops mattering) if any of them fails.
fn round(tx: &mut SrtpContext, rx: &mut SrtpContext, buf: &mut [u8; 1500], seq: u16) -> bool {
    let mut ok = true;
    for ssrc in SSRCS {
        let len = write_rtp(buf, seq, ssrc, 160);
        ok &= tx
            .protect_rtp(buf, len)
            .and_then(|n| rx.unprotect_rtp(buf, n))
            .is_ok_and(|n| n == len);
        let len = write_rtcp(buf, ssrc);
        ok &= tx
            .protect_rtcp(buf, len)
            .and_then(|n| rx.unprotect_rtcp(buf, n))
            .is_ok_and(|n| n == len);
    }
    ok
}

#[test]
fn srtp_protect_unprotect_allocates_nothing_in_steady_state() {
    const _: () = assert!(12 + 160 + MAX_SRTP_OVERHEAD <= 1500);
    for profile in SrtpProfile::ALL {
        let key = [0x33u8; 32];
        let salt = [0x44u8; 14];
        let key = &key[..profile.key_len()];
        let salt = &salt[..profile.salt_len()];
        let (Ok(mut tx), Ok(mut rx)) = (
            SrtpContext::new(profile, key, salt),
            SrtpContext::new(profile, key, salt),
        ) else {
            panic!("{profile:?}: context");
        };
        let mut buf = [0u8; 1500];

        // Warm-up: the first packet of each SSRC creates its state.
        let start = 60_000u16;
        let mut all_ok = true;
        for seq in start - 100..start {
            all_ok &= round(&mut tx, &mut rx, &mut buf, seq);
        }
        assert!(all_ok, "{profile:?}: warm-up failed");

        // The counter works: one allocation is seen.
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
        COUNTING.with(|c| c.set(false));
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1, "counting allocator");

        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        for i in 0..ROUNDS {
            // Wraps 65535 -> 0 part way through.
            all_ok &= round(&mut tx, &mut rx, &mut buf, start.wrapping_add(i));
        }
        COUNTING.with(|c| c.set(false));
        let allocations = ALLOCATIONS.load(Ordering::Relaxed);

        assert!(all_ok, "{profile:?}: a packet failed");
        assert_eq!(rx.roc(SSRCS[0]), Some(1), "{profile:?}: sequence wrapped");
        assert_eq!(allocations, 0, "{profile:?}: allocations in steady state");
    }
}
