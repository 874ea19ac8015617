//! confgate's conference audio mixer: N−1 mixing of 48 kHz mono 16-bit PCM.
//!
//! This crate is the media plane's *multipoint processor* for audio. It never
//! names a protocol: its inputs are decoded PCM frames, its outputs are PCM
//! frames for an encoder. Codecs and jitter buffers sit in front of it and
//! behind it; this first piece is the pure mixing core.
//!
//! # Model
//!
//! * Audio is 48 kHz ([`SAMPLE_RATE`]), mono, signed 16-bit, in frames of
//!   20 ms ([`FRAME_SAMPLES`] = 960 samples, the [`Frame`] type).
//! * A [`Mixer`] has *inputs*, one per participant, named by an [`InputId`]
//!   handle chosen by the caller. Each input owns a bounded queue of frames
//!   ([`MixerConfig::max_queued_frames`], 200 ms by default). Pushing to a
//!   full queue drops the **oldest** frame, so latency stays bounded.
//! * The caller calls [`Mixer::tick`] every 20 ms. A tick takes at most one
//!   frame from each queue (an empty queue contributes silence and counts an
//!   underrun), measures each frame's RMS level with [`frame_dbfs`], and picks
//!   up to [`MixerConfig::max_speakers`] *speakers*: the loudest unmuted
//!   inputs strictly above [`MixerConfig::speech_threshold_dbfs`], loudest
//!   first, equal energies ordered by the lower [`InputId`] first.
//! * The *mix* is the sum of the speakers' frames. Every speaker hears the mix
//!   without its own frame (N−1); every other input (listeners, muted inputs,
//!   inputs that sent nothing) hears one shared full mix, so an encoder can
//!   encode it once per codec for all of them.
//!
//! # Invariants
//!
//! * Sums are accumulated exactly in `i32` and saturated to `i16` once, at the
//!   end: a loud mix clips, it never wraps around. A speaker's N−1 output is
//!   the saturated exact sum of the *other* speakers, not "saturated mix minus
//!   own frame". The number of speakers is capped at [`MAX_SPEAKERS`] so the
//!   `i32` accumulator cannot overflow.
//! * No allocation in steady state: queues, output buffers and the speaker
//!   list are allocated by [`Mixer::new`] and [`Mixer::add_input`];
//!   [`Mixer::push_frame`], [`Mixer::tick`] and every accessor allocate
//!   nothing (proved by `tests/no-alloc-per-tick.rs` with a counting global
//!   allocator).
//! * Deterministic: the same pushes and ticks produce the same outputs and the
//!   same speaker order. No clock is read; the caller drives time by ticking.
//! * A muted input still consumes its queue and still receives the mix; it is
//!   never a speaker.
//!
//! # Example
//!
//! ```
//! use confgate_mixer::{Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};
//!
//! let mut mixer = Mixer::new(MixerConfig::default());
//! let (alice, bob, carol) = (InputId(1), InputId(2), InputId(3));
//! for id in [alice, bob, carol] {
//!     mixer.add_input(id);
//! }
//! mixer.push_frame(alice, &[1000; FRAME_SAMPLES]);
//! mixer.push_frame(bob, &[-300; FRAME_SAMPLES]);
//! assert!(mixer.tick());
//!
//! assert_eq!(mixer.speakers(), &[alice, bob]);
//! // Alice hears Bob, Bob hears Alice, Carol hears both.
//! assert_eq!(mixer.output(alice).map(|f| f[0]), Some(-300));
//! assert_eq!(mixer.output(bob).map(|f| f[0]), Some(1000));
//! assert_eq!(mixer.output(carol).map(|f| f[0]), Some(700));
//! assert!(mixer.hears_shared_mix(carol));
//! // Nothing queued any more: the room is idle.
//! assert!(!mixer.tick());
//! # let _: Frame = [0; FRAME_SAMPLES];
//! ```

#![forbid(unsafe_code)]

pub mod codec;
pub mod dtmf;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbound;
pub mod jitter;
mod level;
mod mixer;
pub mod prompts;
mod queue;
#[cfg(test)]
mod test_signal;
pub mod vad;

pub use level::{frame_dbfs, SILENCE_DBFS};
pub use mixer::{InputStats, Mixer, PushResult};

/// Sampling rate of every frame, in Hz.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one frame: 20 ms at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;

/// One 20 ms frame of mono signed 16-bit PCM at [`SAMPLE_RATE`].
pub type Frame = [i16; FRAME_SAMPLES];

/// The most speakers a [`Mixer`] mixes at once, whatever
/// [`MixerConfig::max_speakers`] says.
///
/// 65 536 samples of magnitude at most 32 768 sum to at most 2³¹ in magnitude,
/// which keeps the exact `i32` accumulator from overflowing.
pub const MAX_SPEAKERS: usize = 65_536;

/// Configuration of a [`Mixer`], fixed at [`Mixer::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerConfig {
    /// How many speakers are mixed at once, loudest first (default 3).
    ///
    /// 0 mixes nobody (everyone hears silence); values above
    /// [`MAX_SPEAKERS`] are treated as [`MAX_SPEAKERS`].
    pub max_speakers: usize,
    /// Capacity of each input's frame queue (default 10 frames = 200 ms).
    ///
    /// When a queue is full the oldest frame is dropped. 0 is treated as 1.
    pub max_queued_frames: usize,
    /// An input is a speaker candidate only if its frame's level
    /// ([`frame_dbfs`]) is strictly above this many dBFS (default −50.0).
    ///
    /// A NaN threshold makes nobody a speaker.
    pub speech_threshold_dbfs: f32,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self {
            max_speakers: 3,
            max_queued_frames: 10,
            speech_threshold_dbfs: -50.0,
        }
    }
}

/// Handle of one mixer input (one participant), chosen by the caller.
///
/// Ordered by its number; the order breaks ties between equally loud inputs
/// (the lower id is the louder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(pub u64);

impl std::fmt::Display for InputId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input-{}", self.0)
    }
}
