//! Steady-state encoding, decoding and concealment allocate nothing, for
//! PCMU, G.722 and Opus.
//!
//! Two counters watch it:
//!
//! * a global allocator wrapping the system one (the shared counting
//!   allocator in `common`) sees every Rust allocation;
//! * on glibc, `malloc`, `calloc` and `realloc` are interposed (defined in
//!   this executable, forwarding to glibc's `__libc_*` entry points), so the
//!   C allocations libopus makes are seen too. A self-check proves the
//!   interposition works: creating a libopus decoder is seen to `malloc`.
//!
//! This file replaces the global allocator (through `common`) and the C
//! allocator's entry points, so it is its own test binary and holds this one
//! test.

// The interposed C functions need `#[no_mangle]` and calls into glibc;
// nothing else here is unsafe. (The mixer library itself forbids unsafe
// code.)
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use confgate_mixer::codec::{decoder, encoder, CodecKind, EncoderOptions, MAX_PAYLOAD_SAMPLES_48K};
use confgate_mixer::{Frame, FRAME_SAMPLES};

mod common;

/// C allocations (malloc, calloc, realloc) made by a counting thread; these
/// include the Rust ones, which go through `malloc` too.
static C_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// glibc's C allocator, interposed so libopus's allocations are counted.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod c_alloc {
    use super::common::counting;
    use super::C_ALLOCATIONS;
    use std::ffi::c_void;
    use std::sync::atomic::Ordering;

    extern "C" {
        // glibc's own entry points behind `malloc` and friends; exported by
        // every glibc since 2.2.5 precisely so interposers can forward.
        fn __libc_malloc(size: usize) -> *mut c_void;
        fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
        fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    }

    fn note() {
        if counting() {
            C_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    // SAFETY (the three functions below): each has exactly the C signature
    // and contract of the function it replaces and forwards its arguments
    // unchanged to glibc's implementation of that same function, so callers
    // (Rust's `System` allocator, libopus, libc itself) get glibc's memory
    // with glibc's guarantees; `free` is not replaced and receives memory
    // from the same allocator. The counter is an atomic increment that
    // neither allocates nor re-enters the allocator.
    #[no_mangle]
    extern "C" fn malloc(size: usize) -> *mut c_void {
        note();
        // SAFETY: see above.
        unsafe { __libc_malloc(size) }
    }

    #[no_mangle]
    extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
        note();
        // SAFETY: see above.
        unsafe { __libc_calloc(count, size) }
    }

    #[no_mangle]
    extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        note();
        // SAFETY: see above; `ptr` is null or came from this allocator, as
        // `realloc`'s contract requires of the caller.
        unsafe { __libc_realloc(ptr, size) }
    }
}

/// Runs `f` with this thread's allocations counted; returns (Rust
/// allocations, C allocations) made during it.
fn count<R>(f: impl FnOnce() -> R) -> (u64, u64, R) {
    let c0 = C_ALLOCATIONS.load(Ordering::Relaxed);
    let (rust, _, r) = common::count(f);
    (rust, C_ALLOCATIONS.load(Ordering::Relaxed) - c0, r)
}

/// One 20 ms step of a call leg: encode a frame, decode the payload, and
/// every seventh step lose a packet and conceal it instead.
fn step(
    enc: &mut dyn confgate_mixer::codec::AudioEncoder,
    dec: &mut dyn confgate_mixer::codec::AudioDecoder,
    frame: &Frame,
    payload: &mut [u8],
    out: &mut [i16],
    n: usize,
) -> i64 {
    let len = enc.encode(frame, payload).unwrap();
    let samples = if n % 7 == 6 {
        dec.conceal(FRAME_SAMPLES, out)
    } else {
        assert_eq!(dec.samples_in(&payload[..len]), Some(FRAME_SAMPLES));
        dec.decode(&payload[..len], out).unwrap()
    };
    assert_eq!(samples, FRAME_SAMPLES);
    len as i64 + i64::from(out[n % FRAME_SAMPLES])
}

#[test]
fn steady_state_codecs_allocate_nothing() {
    let frames: Vec<Frame> = (0..9)
        .map(|k| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let t = (k * FRAME_SAMPLES + n) as f64 / 48e3;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + 3000.0 * (2.0 * std::f64::consts::PI * 2900.0 * t).sin()) as i16;
            }
            f
        })
        .collect();

    // The counters work: a deliberate allocation is seen by both, and a
    // libopus decoder's creation (libopus's own `malloc`) by the C one.
    let (rust, c, ()) = count(|| drop(black_box(vec![0u8; 64])));
    assert!(rust >= 1, "the counting allocator is not active");
    let interposed = cfg!(all(target_os = "linux", target_env = "gnu"));
    if interposed {
        assert!(c >= 1, "malloc is not interposed");
        let (rust, c, dec) = count(|| decoder(CodecKind::Opus { channels: 1 }).unwrap());
        drop(dec);
        assert!(
            c > rust,
            "libopus's malloc is not seen ({c} C vs {rust} Rust allocations)"
        );
    }

    let opus_opts = EncoderOptions {
        opus_bitrate: Some(32_000),
        ..EncoderOptions::default()
    };
    for kind in [
        CodecKind::Pcmu,
        CodecKind::G722,
        CodecKind::Opus { channels: 1 },
        CodecKind::Opus { channels: 2 },
    ] {
        let mut enc = encoder(kind, opus_opts).unwrap();
        let mut dec = decoder(kind).unwrap();
        let mut payload = vec![0u8; 1500];
        let mut out = vec![0i16; MAX_PAYLOAD_SAMPLES_48K];

        let mut step_n = |n: usize| {
            step(
                &mut *enc,
                &mut *dec,
                &frames[n % frames.len()],
                &mut payload,
                &mut out,
                n,
            )
        };

        let mut checksum = 0i64;
        for n in 0..50 {
            checksum += step_n(n);
        }
        let (rust, c, sum) = count(|| {
            let mut sum = 0i64;
            for n in 50..550 {
                sum += step_n(black_box(n));
            }
            sum
        });
        checksum += black_box(sum);
        println!("{kind:?}: 500 steps, {rust} Rust allocations, {c} C allocations");
        assert_eq!(rust, 0, "{kind:?}: Rust allocations in 500 encode+decode/conceal steps");
        if interposed {
            assert_eq!(c, 0, "{kind:?}: C allocations in 500 encode+decode/conceal steps");
        }
        assert_ne!(checksum, 0);
    }
}
