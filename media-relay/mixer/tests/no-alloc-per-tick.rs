//! Steady-state mixing allocates nothing: 1000 push + tick cycles after a
//! warm-up, counted by a global allocator that wraps the system one.
//!
//! Through `common`, this file replaces the global allocator, so it is its
//! own test binary and holds this one test.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use confgate_mixer::{frame_dbfs, Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};

mod common;
use common::count;

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
