//! Steady-state mixing allocates nothing: 1000 push + tick cycles after a
//! warm-up, counted by a global allocator that wraps the system one.
//!
//! This file replaces the global allocator, so it is its own test binary and
//! holds this one test.

// The counting allocator needs `unsafe impl GlobalAlloc`; nothing else here
// is unsafe. (The mixer library itself forbids unsafe code.)
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use confgate_mixer::{frame_dbfs, Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};

/// Allocations (alloc, alloc_zeroed, realloc) made by a counting thread.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Deallocations made by a counting thread.
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations are counted. Only the test thread
    /// counts, so the test harness's own threads cannot disturb the result.
    /// A const-initialised `Cell<bool>` needs no lazy initialisation and no
    /// destructor, so reading it from inside the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

struct CountingAllocator;

// SAFETY: every method forwards to `System` with exactly the arguments it was
// given, so `System` upholds the `GlobalAlloc` contract (layouts, alignment,
// pointer provenance) for us; the only addition is incrementing atomic
// counters, which neither allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s
        // contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this
        // allocator and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this
        // allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with this thread's allocations counted; returns
/// (allocations, deallocations) made during it.
fn count<R>(f: impl FnOnce() -> R) -> (u64, u64, R) {
    let a0 = ALLOCATIONS.load(Ordering::Relaxed);
    let d0 = DEALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (
        ALLOCATIONS.load(Ordering::Relaxed) - a0,
        DEALLOCATIONS.load(Ordering::Relaxed) - d0,
        r,
    )
}

const INPUTS: u64 = 6;

/// One cycle of a busy room: most inputs push (input 5 pushes two frames, so
/// its queue overflows; input 4 pushes every third cycle, so it underruns),
/// every eighth cycle nobody pushes (an idle tick), mutes toggle now and
/// then, then a tick and every read a media loop would make.
fn cycle(mixer: &mut Mixer, frames: &[Frame], n: usize) -> i64 {
    let mut checksum = 0i64;
    if n % 8 != 7 {
        for i in 0..INPUTS {
            let id = InputId(i);
            let frame = &frames[(n + i as usize) % frames.len()];
            match i {
                4 if !n.is_multiple_of(3) => {}
                5 => {
                    mixer.push_frame(id, frame);
                    mixer.push_frame(id, frame);
                }
                _ => {
                    mixer.push_frame(id, frame);
                }
            }
        }
    }
    if n.is_multiple_of(50) {
        mixer.set_muted(InputId(2), n.is_multiple_of(100));
    }
    checksum += i64::from(mixer.tick());
    for i in 0..INPUTS {
        let id = InputId(i);
        let out = mixer.output(id).unwrap();
        checksum += i64::from(out[n % FRAME_SAMPLES]);
        checksum += i64::from(mixer.hears_shared_mix(id));
        let stats = mixer.stats(id).unwrap();
        checksum += (stats.frames_pushed + stats.frames_dropped + stats.underruns) as i64;
        checksum += frame_dbfs(out).max(-200.0) as i64;
    }
    checksum += mixer.speakers().len() as i64;
    checksum += mixer.active_speaker().map_or(0, |s| s.0 as i64);
    checksum
}

#[test]
fn a_thousand_push_and_tick_cycles_allocate_nothing() {
    // Distinct loud and quiet frames, generated up front.
    let frames: Vec<Frame> = (0..7)
        .map(|k| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let phase = 2.0 * std::f64::consts::PI * 200.0 * (k + 1) as f64 * n as f64 / 48e3;
                *s = (phase.sin() * 4000.0 * (k + 1) as f64) as i16;
            }
            f
        })
        .collect();

    let mut mixer = Mixer::new(MixerConfig {
        max_queued_frames: 4,
        ..MixerConfig::default()
    });
    for i in 0..INPUTS {
        mixer.add_input(InputId(i));
    }

    // The counter works: a deliberate allocation is seen.
    let (allocs, deallocs, ()) = count(|| drop(black_box(vec![0u8; 64])));
    assert!(allocs >= 1 && deallocs >= 1, "the counting allocator is not active");

    // Warm-up.
    let mut checksum = 0;
    for n in 0..100 {
        checksum += cycle(&mut mixer, &frames, n);
    }

    let (allocs, deallocs, sum) = count(|| {
        let mut sum = 0i64;
        for n in 100..1100 {
            sum += cycle(&mut mixer, &frames, black_box(n));
        }
        sum
    });
    checksum += black_box(sum);

    assert_eq!(allocs, 0, "allocations during 1000 push+tick cycles");
    assert_eq!(deallocs, 0, "deallocations during 1000 push+tick cycles");

    // The loop did real work: overflow, underrun and speakers all happened.
    let s5 = mixer.stats(InputId(5)).unwrap();
    assert!(s5.frames_dropped > 0);
    let s4 = mixer.stats(InputId(4)).unwrap();
    assert!(s4.underruns > 0);
    assert!(mixer.active_speaker().is_some());
    assert_ne!(checksum, 0);
}
