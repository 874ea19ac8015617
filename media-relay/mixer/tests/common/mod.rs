//! The counting global allocator shared by the mixer's no-allocation tests.
//!
//! Each test file that declares `mod common;` gets this module's global
//! allocator, which wraps the system one and counts the allocations and
//! deallocations made by a thread while it is counting (see [`count`]).
//! Replacing the global allocator makes each such file its own test binary.

// The counting allocator needs `unsafe impl GlobalAlloc`; nothing else here
// is unsafe. (The mixer library itself forbids unsafe code.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations (alloc, alloc_zeroed, realloc) made by a counting thread.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Deallocations made by a counting thread.
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations are counted. Only the test thread
    /// counts, so the test harness's own threads cannot disturb the result.
    /// A const-initialised `Cell<bool>` needs no lazy initialisation and no
    /// destructor, so reading it from inside an allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread's allocations are being counted; safe to call from
/// inside an allocator.
pub(crate) fn counting() -> bool {
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

/// Runs `f` with this thread's allocations counted; returns (allocations,
/// deallocations, `f`'s result), the counts being those made during it.
pub(crate) fn count<R>(f: impl FnOnce() -> R) -> (u64, u64, R) {
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
