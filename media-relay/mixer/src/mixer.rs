//! The N−1 mixer: inputs, queues, speaker selection and the mix.

use crate::level::{dbfs_from_energy, frame_energy};
use crate::queue::FrameQueue;
use crate::{Frame, InputId, MixerConfig, FRAME_SAMPLES, MAX_SPEAKERS};

/// What [`Mixer::push_frame`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushResult {
    /// The frame was queued; nothing was dropped.
    Queued,
    /// The queue was full: its oldest frame was dropped (and counted in
    /// [`InputStats::frames_dropped`]) and the new frame queued.
    DroppedOldest,
    /// No input has this id; the frame was ignored.
    UnknownInput,
}

/// Counters of one input since [`Mixer::add_input`].
///
/// `frames_pushed = frames_dropped + frames mixed by ticks + frames still
/// queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InputStats {
    /// Frames given to [`Mixer::push_frame`], including those later dropped.
    pub frames_pushed: u64,
    /// Frames dropped because the queue was full (queue overflow).
    pub frames_dropped: u64,
    /// Ticks at which this input had no frame queued (underrun): it
    /// contributed silence.
    pub underruns: u64,
}

/// One participant's state.
struct Input {
    id: InputId,
    muted: bool,
    queue: FrameQueue,
    /// Whether this input was a speaker at the last tick, i.e. whether
    /// `output` (rather than the shared mix) is what it hears.
    is_speaker: bool,
    /// This input's N−1 mix, meaningful only while `is_speaker`.
    output: Box<Frame>,
    stats: InputStats,
}

/// A speaker candidate during a tick.
#[derive(Clone, Copy)]
struct Candidate {
    /// Exact energy (sum of squares) of the frame.
    energy: u64,
    /// Index into `Mixer::inputs`.
    index: usize,
    /// Queue slot of the frame.
    slot: usize,
}

/// An N−1 audio mixer for one conference. See the [crate docs](crate) for the
/// model and its invariants.
///
/// Drive it every 20 ms: [`Mixer::push_frame`] what arrived for each input,
/// then [`Mixer::tick`], then read [`Mixer::output`] for each input (and
/// [`Mixer::hears_shared_mix`] to encode the shared mix only once).
pub struct Mixer {
    /// Effective configuration (limits applied).
    config: MixerConfig,
    /// Inputs sorted by id: lookups by binary search, and iteration order is
    /// the tie-break order.
    inputs: Vec<Input>,
    /// Top speakers of the tick in progress, loudest first. Capacity reserved
    /// by `add_input`.
    candidates: Vec<Candidate>,
    /// Speakers of the last tick, loudest first. Capacity reserved by
    /// `add_input`.
    speakers: Vec<InputId>,
    /// Exact sum of the speakers' frames.
    accumulator: Box<[i32; FRAME_SAMPLES]>,
    /// The full mix, saturated: what every non-speaker hears.
    shared: Box<Frame>,
    /// Loudest speaker of the last tick that had one.
    active_speaker: Option<InputId>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("config", &self.config)
            .field("inputs", &self.inputs.len())
            .field("speakers", &self.speakers)
            .field("active_speaker", &self.active_speaker)
            .finish_non_exhaustive()
    }
}

impl Mixer {
    /// A mixer with no inputs.
    ///
    /// `max_speakers` above [`MAX_SPEAKERS`] is lowered to it, and a
    /// `max_queued_frames` of 0 is raised to 1; [`Mixer::config`] shows the
    /// values in effect.
    pub fn new(config: MixerConfig) -> Self {
        let config = MixerConfig {
            max_speakers: config.max_speakers.min(MAX_SPEAKERS),
            max_queued_frames: config.max_queued_frames.max(1),
            speech_threshold_dbfs: config.speech_threshold_dbfs,
        };
        Self {
            config,
            inputs: Vec::new(),
            candidates: Vec::new(),
            speakers: Vec::new(),
            accumulator: Box::new([0; FRAME_SAMPLES]),
            shared: Box::new([0; FRAME_SAMPLES]),
            active_speaker: None,
        }
    }

    /// The configuration in effect (after the limits of [`Mixer::new`]).
    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// Adds an input with an empty queue, unmuted, hearing the shared mix.
    ///
    /// Idempotent: adding an id that is already present changes nothing (its
    /// queue, mute state and counters are kept). This is where the input's
    /// queue and output buffer are allocated.
    pub fn add_input(&mut self, id: InputId) {
        let Err(at) = self.find(id) else {
            return;
        };
        self.inputs.insert(
            at,
            Input {
                id,
                muted: false,
                queue: FrameQueue::new(self.config.max_queued_frames),
                is_speaker: false,
                output: Box::new([0; FRAME_SAMPLES]),
                stats: InputStats::default(),
            },
        );
        // Reserve now what a tick may need, so that tick never allocates.
        let most = self.config.max_speakers.min(self.inputs.len());
        self.candidates
            .reserve_exact(most.saturating_sub(self.candidates.len()));
        self.speakers.reserve_exact(most.saturating_sub(self.speakers.len()));
    }

    /// Removes an input, its queued frames and its counters. Unknown ids are
    /// ignored.
    ///
    /// It leaves [`Mixer::speakers`] at once, and stops being the
    /// [`Mixer::active_speaker`]. The other inputs' outputs keep the last
    /// tick's mix (which may include its frame) until the next tick.
    pub fn remove_input(&mut self, id: InputId) {
        let Ok(at) = self.find(id) else {
            return;
        };
        self.inputs.remove(at);
        self.speakers.retain(|&s| s != id);
        if self.active_speaker == Some(id) {
            self.active_speaker = None;
        }
    }

    /// Mutes or unmutes an input, from the next tick on. Unknown ids are
    /// ignored.
    ///
    /// A muted input still consumes its queue (so it neither overflows nor
    /// plays stale audio when unmuted) and still receives the shared mix, but
    /// contributes nothing and is never a speaker.
    pub fn set_muted(&mut self, id: InputId, muted: bool) {
        if let Some(input) = self.input_mut(id) {
            input.muted = muted;
        }
    }

    /// Whether an input is muted; `None` for an unknown id.
    pub fn is_muted(&self, id: InputId) -> Option<bool> {
        self.input(id).map(|i| i.muted)
    }

    /// Queues a copy of `frame` for an input.
    ///
    /// The queue holds at most [`MixerConfig::max_queued_frames`]; when it is
    /// full the **oldest** frame is dropped, counted, and
    /// [`PushResult::DroppedOldest`] returned. An unknown id returns
    /// [`PushResult::UnknownInput`]. Never allocates.
    pub fn push_frame(&mut self, id: InputId, frame: &Frame) -> PushResult {
        let Some(input) = self.input_mut(id) else {
            return PushResult::UnknownInput;
        };
        input.stats.frames_pushed += 1;
        if input.queue.push(frame) {
            input.stats.frames_dropped += 1;
            PushResult::DroppedOldest
        } else {
            PushResult::Queued
        }
    }

    /// Frames queued for an input, waiting for ticks; `None` for an unknown id.
    pub fn queued_frames(&self, id: InputId) -> Option<usize> {
        self.input(id).map(|i| i.queue.len())
    }

    /// One 20 ms tick: takes at most one queued frame per input (an input
    /// with nothing queued contributes silence this tick and counts an
    /// underrun), measures each frame's energy (dBFS RMS), picks up to
    /// `max_speakers` loudest unmuted inputs strictly above the threshold as
    /// speakers (equal energy: lower [`InputId`] first), and computes the mix:
    /// the sum of the speakers' frames, saturating to `i16` (no wrap-around).
    ///
    /// Each speaker's output is the mix WITHOUT its own frame (N−1), summed
    /// exactly and then saturated; every non-speaker gets the shared full mix.
    ///
    /// Returns true if any input (muted or not) had a frame; false means
    /// nothing to do: every output is silence and callers can stop ticking an
    /// idle room. Never allocates.
    pub fn tick(&mut self) -> bool {
        let Self {
            config,
            inputs,
            candidates,
            speakers,
            accumulator,
            shared,
            active_speaker,
        } = self;
        let max_speakers = config.max_speakers;
        let threshold = config.speech_threshold_dbfs;

        // 1. Take one frame per input and rank the speaker candidates.
        candidates.clear();
        let mut any_frame = false;
        for (index, input) in inputs.iter_mut().enumerate() {
            input.is_speaker = false;
            // The slot stays valid until the next push to this input, i.e.
            // for the rest of this tick.
            let Some(slot) = input.queue.pop() else {
                input.stats.underruns += 1;
                continue;
            };
            any_frame = true;
            if input.muted || max_speakers == 0 {
                continue;
            }
            let energy = frame_energy(input.queue.slot(slot));
            // Strictly above; a NaN threshold compares as None: no speaker.
            let above = dbfs_from_energy(energy).partial_cmp(&threshold) == Some(std::cmp::Ordering::Greater);
            if !above {
                continue;
            }
            // Candidates are sorted by energy, descending. Inputs are visited
            // in id order, so an equal energy goes after the ones already
            // there: the lower id wins ties.
            let at = candidates.partition_point(|c| c.energy >= energy);
            if at >= max_speakers {
                continue;
            }
            if candidates.len() == max_speakers {
                candidates.pop();
            }
            // Within the capacity reserved by add_input: no allocation.
            candidates.insert(at, Candidate { energy, index, slot });
        }

        // 2. The exact sum of the speakers' frames, then the shared mix.
        accumulator.fill(0);
        for c in candidates.iter() {
            let frame = inputs[c.index].queue.slot(c.slot);
            for (acc, &s) in accumulator.iter_mut().zip(frame.iter()) {
                *acc += i32::from(s);
            }
        }
        for (out, &acc) in shared.iter_mut().zip(accumulator.iter()) {
            *out = saturate(acc);
        }

        // 3. N−1 for each speaker.
        speakers.clear();
        for c in candidates.iter() {
            let input = &mut inputs[c.index];
            let own = input.queue.slot(c.slot);
            for ((out, &acc), &s) in input.output.iter_mut().zip(accumulator.iter()).zip(own.iter()) {
                *out = saturate(acc - i32::from(s));
            }
            input.is_speaker = true;
            speakers.push(input.id);
        }
        if let Some(&loudest) = speakers.first() {
            *active_speaker = Some(loudest);
        }
        any_frame
    }

    /// After [`Mixer::tick`]: the frame this input should hear; `None` for an
    /// unknown id.
    ///
    /// For every non-speaker this is the SAME shared buffer (so an encoder can
    /// encode it once); a speaker gets its own N−1 buffer. Before the first
    /// tick it is silence.
    pub fn output(&self, id: InputId) -> Option<&Frame> {
        let input = self.input(id)?;
        Some(if input.is_speaker { &input.output } else { &self.shared })
    }

    /// The shared full mix of the last tick: what every non-speaker hears.
    pub fn shared_mix(&self) -> &Frame {
        &self.shared
    }

    /// After [`Mixer::tick`]: true if the input's output is the shared (full)
    /// mix, i.e. it is not a speaker. False for an unknown id.
    pub fn hears_shared_mix(&self, id: InputId) -> bool {
        self.input(id).is_some_and(|i| !i.is_speaker)
    }

    /// After [`Mixer::tick`]: the speakers of this tick, loudest first.
    pub fn speakers(&self) -> &[InputId] {
        &self.speakers
    }

    /// The loudest speaker of the last tick that had any (for active-speaker
    /// events), or `None` if no tick had a speaker yet or that input was
    /// removed since. Ticks without speakers (silence, idle) keep it.
    pub fn active_speaker(&self) -> Option<InputId> {
        self.active_speaker
    }

    /// Number of inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Per-input counters: frames pushed, frames dropped (queue overflow),
    /// ticks with no frame (underrun). `None` for an unknown id.
    pub fn stats(&self, id: InputId) -> Option<InputStats> {
        self.input(id).map(|i| i.stats)
    }

    fn find(&self, id: InputId) -> Result<usize, usize> {
        self.inputs.binary_search_by_key(&id, |i| i.id)
    }

    fn input(&self, id: InputId) -> Option<&Input> {
        self.find(id).ok().map(|at| &self.inputs[at])
    }

    fn input_mut(&mut self, id: InputId) -> Option<&mut Input> {
        self.find(id).ok().map(|at| &mut self.inputs[at])
    }
}

/// Clamps an exact sum into `i16`: a loud mix clips instead of wrapping.
fn saturate(sum: i32) -> i16 {
    // In range after the clamp, so the cast is exact.
    sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::frame_dbfs;
    use proptest::prelude::*;

    const A: InputId = InputId(1);
    const B: InputId = InputId(2);
    const C: InputId = InputId(3);
    const D: InputId = InputId(4);
    const E: InputId = InputId(5);

    fn constant(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    /// A sine of `freq` Hz (an integer number of periods per frame for
    /// multiples of 50 Hz) and peak `amplitude`.
    fn sine(freq: f64, amplitude: f64) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (n, s) in f.iter_mut().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * freq * n as f64 / 48_000.0;
            *s = (amplitude * phase.sin()).round() as i16;
        }
        f
    }

    fn mixer_with(config: MixerConfig, ids: &[InputId]) -> Mixer {
        let mut m = Mixer::new(config);
        for &id in ids {
            m.add_input(id);
        }
        m
    }

    fn sum(frames: &[&Frame]) -> Frame {
        let mut out = [0i16; FRAME_SAMPLES];
        for (n, o) in out.iter_mut().enumerate() {
            let s: i32 = frames.iter().map(|f| i32::from(f[n])).sum();
            *o = s.clamp(-32768, 32767) as i16;
        }
        out
    }

    #[test]
    fn default_config() {
        let c = MixerConfig::default();
        assert_eq!(c.max_speakers, 3);
        assert_eq!(c.max_queued_frames, 10);
        assert_eq!(c.speech_threshold_dbfs, -50.0);
        assert_eq!(crate::SAMPLE_RATE as usize / 50, FRAME_SAMPLES);
    }

    #[test]
    fn n_minus_one_each_speaker_hears_exactly_the_others() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C, D]);
        let fa = constant(1000); // RMS 1000
        let fb = sine(440.0, 2000.0); // RMS ~1414
        let fc = sine(1000.0, 3000.0); // RMS ~2121
        m.push_frame(A, &fa);
        m.push_frame(B, &fb);
        m.push_frame(C, &fc);
        assert!(m.tick());

        assert_eq!(m.speakers(), &[C, B, A]);
        assert_eq!(m.active_speaker(), Some(C));
        assert_eq!(m.output(A).unwrap(), &sum(&[&fb, &fc]));
        assert_eq!(m.output(B).unwrap(), &sum(&[&fa, &fc]));
        assert_eq!(m.output(C).unwrap(), &sum(&[&fa, &fb]));
        // Sample by sample, without the helper.
        for n in 0..FRAME_SAMPLES {
            assert_eq!(m.output(A).unwrap()[n], fb[n] + fc[n]);
        }
        // D sent nothing: a listener hearing everyone.
        assert_eq!(m.output(D).unwrap(), &sum(&[&fa, &fb, &fc]));
        for id in [A, B, C] {
            assert!(!m.hears_shared_mix(id));
        }
        assert!(m.hears_shared_mix(D));
    }

    #[test]
    fn two_full_scale_frames_saturate_instead_of_wrapping() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C]);
        m.push_frame(A, &constant(i16::MAX));
        m.push_frame(B, &constant(i16::MAX));
        assert!(m.tick());
        assert_eq!(m.output(C).unwrap(), &constant(i16::MAX));
        // N−1 is exact: each speaker hears the other unclipped.
        assert_eq!(m.output(A).unwrap(), &constant(i16::MAX));

        m.push_frame(A, &constant(i16::MIN));
        m.push_frame(B, &constant(i16::MIN));
        m.tick();
        assert_eq!(m.output(C).unwrap(), &constant(i16::MIN));

        // Three near-full-scale speakers: the N−1 of each is itself clipped,
        // computed from the exact sum of the other two.
        m.push_frame(A, &constant(30_000));
        m.push_frame(B, &constant(20_000));
        m.push_frame(C, &constant(-25_000));
        m.tick();
        assert_eq!(m.output(A).unwrap(), &constant(-5_000));
        assert_eq!(m.output(B).unwrap(), &constant(5_000));
        assert_eq!(m.output(C).unwrap(), &constant(i16::MAX));
        assert_eq!(m.shared_mix(), &constant(25_000));
    }

    #[test]
    fn alternating_full_scale_square_does_not_wrap() {
        let mut square = constant(i16::MAX);
        for s in square.iter_mut().step_by(2) {
            *s = i16::MIN;
        }
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C]);
        m.push_frame(A, &square);
        m.push_frame(B, &square);
        m.tick();
        let out = m.output(C).unwrap();
        for (n, &s) in out.iter().enumerate() {
            assert_eq!(s, if n % 2 == 0 { i16::MIN } else { i16::MAX });
        }
    }

    #[test]
    fn muted_input_contributes_nothing_but_hears_the_mix() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B]);
        m.set_muted(A, true);
        assert_eq!(m.is_muted(A), Some(true));
        let loud = sine(300.0, 20_000.0);
        let quiet = sine(700.0, 1_000.0);
        m.push_frame(A, &loud);
        m.push_frame(B, &quiet);
        assert!(m.tick());
        assert_eq!(m.speakers(), &[B]);
        assert!(m.hears_shared_mix(A));
        assert_eq!(m.output(A).unwrap(), &quiet);
        // The only speaker hears nobody.
        assert_eq!(m.output(B).unwrap(), &constant(0));
        // Its frame was consumed, not kept for later.
        assert_eq!(m.queued_frames(A), Some(0));
        assert_eq!(m.stats(A).unwrap().underruns, 0);

        m.set_muted(A, false);
        m.push_frame(A, &loud);
        m.push_frame(B, &quiet);
        m.tick();
        assert_eq!(m.speakers(), &[A, B]);
        assert_eq!(m.output(B).unwrap(), &loud);
    }

    #[test]
    fn muted_only_room_still_ticks() {
        let mut m = mixer_with(MixerConfig::default(), &[A]);
        m.set_muted(A, true);
        m.push_frame(A, &constant(5000));
        assert!(m.tick());
        assert!(m.speakers().is_empty());
        assert_eq!(m.output(A).unwrap(), &constant(0));
    }

    #[test]
    fn max_speakers_limits_the_mix_to_the_loudest() {
        let config = MixerConfig {
            max_speakers: 2,
            ..MixerConfig::default()
        };
        let mut m = mixer_with(config, &[A, B, C, D, E]);
        let frames = [
            (A, constant(100)),
            (B, constant(-500)),
            (C, constant(300)),
            (D, constant(400)),
            (E, constant(-200)),
        ];
        for (id, f) in &frames {
            m.push_frame(*id, f);
        }
        m.tick();
        assert_eq!(m.speakers(), &[B, D]);
        assert_eq!(m.shared_mix(), &constant(-100));
        for id in [A, C, E] {
            assert!(m.hears_shared_mix(id));
            assert_eq!(m.output(id).unwrap(), &constant(-100));
        }
        assert_eq!(m.output(B).unwrap(), &constant(400));
        assert_eq!(m.output(D).unwrap(), &constant(-500));
    }

    #[test]
    fn zero_max_speakers_mixes_nobody() {
        let config = MixerConfig {
            max_speakers: 0,
            ..MixerConfig::default()
        };
        let mut m = mixer_with(config, &[A, B]);
        m.push_frame(A, &constant(1000));
        assert!(m.tick());
        assert!(m.speakers().is_empty());
        assert_eq!(m.output(B).unwrap(), &constant(0));
    }

    #[test]
    fn equal_energy_ties_go_to_the_lower_id() {
        let config = MixerConfig {
            max_speakers: 2,
            ..MixerConfig::default()
        };
        // Added out of order on purpose.
        let mut m = mixer_with(config, &[E, C, A, D]);
        m.push_frame(E, &constant(700));
        m.push_frame(C, &constant(-700));
        m.push_frame(D, &constant(700));
        m.push_frame(A, &constant(10));
        m.tick();
        assert_eq!(m.speakers(), &[C, D]);
        assert!(m.hears_shared_mix(E));
        assert_eq!(m.active_speaker(), Some(C));
    }

    #[test]
    fn frames_at_or_below_threshold_are_not_speakers() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C]);
        let whisper = constant(50); // about −56.3 dBFS
        let voice = constant(200); // about −44.3 dBFS
        assert!(frame_dbfs(&whisper) < -50.0);
        assert!(frame_dbfs(&voice) > -50.0);
        m.push_frame(A, &whisper);
        m.push_frame(B, &voice);
        m.tick();
        assert_eq!(m.speakers(), &[B]);
        assert_eq!(m.output(A).unwrap(), &voice);
        assert_eq!(m.output(C).unwrap(), &voice);

        // A threshold equal to the level excludes it (strictly above).
        let config = MixerConfig {
            speech_threshold_dbfs: frame_dbfs(&voice),
            ..MixerConfig::default()
        };
        let mut m = mixer_with(config, &[A]);
        m.push_frame(A, &voice);
        m.tick();
        assert!(m.speakers().is_empty());

        let config = MixerConfig {
            speech_threshold_dbfs: f32::NAN,
            ..MixerConfig::default()
        };
        let mut m = mixer_with(config, &[A]);
        m.push_frame(A, &voice);
        m.tick();
        assert!(m.speakers().is_empty());
    }

    #[test]
    fn queue_overflow_drops_the_oldest_and_counts() {
        let config = MixerConfig {
            max_queued_frames: 3,
            ..MixerConfig::default()
        };
        let mut m = mixer_with(config, &[A, B]);
        let results: Vec<_> = (1..=5).map(|v| m.push_frame(A, &constant(v * 1000))).collect();
        assert_eq!(
            results,
            [
                PushResult::Queued,
                PushResult::Queued,
                PushResult::Queued,
                PushResult::DroppedOldest,
                PushResult::DroppedOldest,
            ]
        );
        assert_eq!(m.queued_frames(A), Some(3));
        assert_eq!(
            m.stats(A),
            Some(InputStats {
                frames_pushed: 5,
                frames_dropped: 2,
                underruns: 0
            })
        );
        // Frames 1 and 2 are gone; 3, 4, 5 play in order.
        for v in 3..=5 {
            assert!(m.tick());
            assert_eq!(m.output(B).unwrap(), &constant(v * 1000));
        }
        assert!(!m.tick());
        assert_eq!(m.stats(A).unwrap().underruns, 1);
        assert_eq!(m.stats(A).unwrap().frames_dropped, 2);
    }

    #[test]
    fn underruns_are_counted_and_an_idle_tick_returns_false() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B]);
        assert!(!m.tick());
        assert_eq!(m.stats(A).unwrap().underruns, 1);
        assert_eq!(m.stats(B).unwrap().underruns, 1);

        m.push_frame(A, &constant(1000));
        assert!(m.tick());
        assert_eq!(m.stats(A).unwrap().underruns, 1);
        assert_eq!(m.stats(B).unwrap().underruns, 2);
        // B missed a frame: it contributed silence, and hears A.
        assert_eq!(m.output(B).unwrap(), &constant(1000));

        assert!(!m.tick());
        // Idle: everyone hears silence, nobody speaks, the last active
        // speaker is remembered.
        assert!(m.speakers().is_empty());
        assert_eq!(m.output(B).unwrap(), &constant(0));
        assert_eq!(m.active_speaker(), Some(A));
        assert!(!Mixer::new(MixerConfig::default()).tick());
    }

    #[test]
    fn non_speakers_share_one_buffer() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C, D, E]);
        m.push_frame(A, &constant(1000));
        m.push_frame(B, &constant(2000));
        m.push_frame(C, &constant(10)); // below threshold
        m.tick();
        let c = m.output(C).unwrap();
        let d = m.output(D).unwrap();
        let e = m.output(E).unwrap();
        assert!(std::ptr::eq(c, d));
        assert!(std::ptr::eq(d, e));
        assert!(std::ptr::eq(e, m.shared_mix()));
        let a = m.output(A).unwrap();
        let b = m.output(B).unwrap();
        assert!(!std::ptr::eq(a, c));
        assert!(!std::ptr::eq(a, b));
        assert!(m.hears_shared_mix(C) && m.hears_shared_mix(D) && m.hears_shared_mix(E));
        assert!(!m.hears_shared_mix(A) && !m.hears_shared_mix(B));
    }

    #[test]
    fn remove_input() {
        let mut m = mixer_with(MixerConfig::default(), &[A, B, C]);
        m.push_frame(A, &constant(3000));
        m.push_frame(B, &constant(1000));
        m.tick();
        assert_eq!(m.active_speaker(), Some(A));

        m.push_frame(A, &constant(3000)); // left queued
        m.remove_input(A);
        assert_eq!(m.input_count(), 2);
        assert_eq!(m.speakers(), &[B]);
        assert_eq!(m.active_speaker(), None);
        assert_eq!(m.output(A), None);
        assert_eq!(m.stats(A), None);
        assert_eq!(m.queued_frames(A), None);
        assert!(!m.hears_shared_mix(A));
        assert_eq!(m.push_frame(A, &constant(1)), PushResult::UnknownInput);
        m.remove_input(A); // no-op

        m.push_frame(B, &constant(1000));
        m.tick();
        assert_eq!(m.speakers(), &[B]);
        assert_eq!(m.output(C).unwrap(), &constant(1000));

        // Re-adding starts afresh.
        m.add_input(A);
        assert_eq!(m.stats(A), Some(InputStats::default()));
        assert_eq!(m.queued_frames(A), Some(0));
        assert!(m.hears_shared_mix(A));
    }

    #[test]
    fn add_input_is_idempotent() {
        let mut m = mixer_with(MixerConfig::default(), &[A]);
        m.set_muted(A, true);
        m.push_frame(A, &constant(1));
        m.add_input(A);
        assert_eq!(m.input_count(), 1);
        assert_eq!(m.queued_frames(A), Some(1));
        assert_eq!(m.is_muted(A), Some(true));
        assert_eq!(m.stats(A).unwrap().frames_pushed, 1);
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let mut m = mixer_with(MixerConfig::default(), &[A]);
        assert_eq!(m.push_frame(B, &constant(1)), PushResult::UnknownInput);
        m.set_muted(B, true);
        assert_eq!(m.is_muted(B), None);
        assert_eq!(m.output(B), None);
        assert!(!m.hears_shared_mix(B));
        assert_eq!(m.stats(B), None);
        assert_eq!(m.input_count(), 1);
    }

    #[test]
    fn output_before_any_tick_is_silence() {
        let m = mixer_with(MixerConfig::default(), &[A]);
        assert_eq!(m.output(A).unwrap(), &constant(0));
        assert!(m.speakers().is_empty());
        assert_eq!(m.active_speaker(), None);
    }

    #[test]
    fn config_limits_are_applied() {
        let m = Mixer::new(MixerConfig {
            max_speakers: usize::MAX,
            max_queued_frames: 0,
            speech_threshold_dbfs: -50.0,
        });
        assert_eq!(m.config().max_speakers, MAX_SPEAKERS);
        assert_eq!(m.config().max_queued_frames, 1);
        let mut m = m;
        m.add_input(A);
        assert_eq!(m.push_frame(A, &constant(1)), PushResult::Queued);
        assert_eq!(m.push_frame(A, &constant(2)), PushResult::DroppedOldest);
        assert!(format!("{m:?}").starts_with("Mixer"));
    }

    // ---- property tests ----

    /// One input's part in a tick: its frame (if it sent one) and mute state.
    #[derive(Debug, Clone)]
    struct Part {
        frame: Option<Vec<i16>>,
        muted: bool,
    }

    fn part(sample: impl Strategy<Value = i16> + Clone) -> impl Strategy<Value = Part> {
        (
            proptest::option::weighted(0.85, prop::collection::vec(sample, FRAME_SAMPLES)),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(frame, muted)| Part { frame, muted })
    }

    fn to_frame(v: &[i16]) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        f.copy_from_slice(v);
        f
    }

    /// Runs one tick and checks it against a straightforward model.
    fn check_against_model(parts: &[Part], max_speakers: usize, threshold: f32) -> Result<(), TestCaseError> {
        let config = MixerConfig {
            max_speakers,
            speech_threshold_dbfs: threshold,
            ..MixerConfig::default()
        };
        let ids: Vec<InputId> = (0..parts.len() as u64).map(|i| InputId(100 - i)).collect();
        let mut m = mixer_with(config, &ids);
        let mut any = false;
        for (id, p) in ids.iter().zip(parts) {
            m.set_muted(*id, p.muted);
            if let Some(f) = &p.frame {
                prop_assert_eq!(m.push_frame(*id, &to_frame(f)), PushResult::Queued);
                any = true;
            }
        }
        prop_assert_eq!(m.tick(), any);

        // Model: eligible inputs, loudest first, lower id first on ties.
        let mut eligible: Vec<(u64, InputId, &Vec<i16>)> = ids
            .iter()
            .zip(parts)
            .filter(|(_, p)| !p.muted)
            .filter_map(|(id, p)| p.frame.as_ref().map(|f| (*id, f)))
            .filter(|(_, f)| frame_dbfs(&to_frame(f)) > threshold)
            .map(|(id, f)| {
                let e: i64 = f.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
                (e as u64, id, f)
            })
            .collect();
        eligible.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        eligible.truncate(max_speakers);
        let model_speakers: Vec<InputId> = eligible.iter().map(|e| e.1).collect();
        prop_assert_eq!(m.speakers(), &model_speakers[..]);
        prop_assert_eq!(m.active_speaker(), model_speakers.first().copied());

        for id in &ids {
            let out = m.output(*id).unwrap();
            let is_speaker = model_speakers.contains(id);
            prop_assert_eq!(m.hears_shared_mix(*id), !is_speaker);
            for (n, &sample) in out.iter().enumerate() {
                let exact: i32 = eligible.iter().filter(|e| e.1 != *id).map(|e| i32::from(e.2[n])).sum();
                prop_assert_eq!(i32::from(sample), exact.clamp(-32768, 32767));
            }
        }
        Ok(())
    }

    fn threshold() -> impl Strategy<Value = f32> {
        prop_oneof![Just(f32::NEG_INFINITY), Just(-50.0f32), -130.0f32..0.0,]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn mix_matches_saturated_sum_for_arbitrary_frames(
            parts in prop::collection::vec(part(any::<i16>()), 1..6),
            max_speakers in 0usize..7,
            threshold in threshold(),
        ) {
            check_against_model(&parts, max_speakers, threshold)?;
        }

        #[test]
        fn small_frames_mix_without_clipping(
            parts in prop::collection::vec(part(-1000i16..=1000), 1..6),
            max_speakers in 0usize..7,
        ) {
            // Sums of at most 5 samples of magnitude 1000 never clip, so the
            // saturated sum is the plain sum.
            check_against_model(&parts, max_speakers, f32::NEG_INFINITY)?;
        }

        #[test]
        fn random_operations_keep_counters_consistent(
            ops in prop::collection::vec((0u8..6, 0u64..4, any::<i16>()), 0..200),
            max_queued in 0usize..4,
        ) {
            let config = MixerConfig {
                max_queued_frames: max_queued,
                ..MixerConfig::default()
            };
            let mut m = Mixer::new(config);
            // Frames consumed by ticks, per id, since its last add.
            let mut consumed = [0u64; 4];
            for (op, id, v) in ops {
                let input = InputId(id);
                let slot = usize::try_from(id).unwrap();
                match op {
                    0 => {
                        if m.stats(input).is_none() {
                            consumed[slot] = 0;
                        }
                        m.add_input(input);
                    }
                    1 => m.remove_input(input),
                    2 => m.set_muted(input, v % 2 == 0),
                    3 | 4 => {
                        let r = m.push_frame(input, &constant(v));
                        prop_assert_eq!(r == PushResult::UnknownInput, m.stats(input).is_none());
                    }
                    _ => {
                        let before: Vec<(u64, usize)> = (0..4)
                            .map(|i| (i, m.queued_frames(InputId(i)).unwrap_or(0)))
                            .collect();
                        let any = m.tick();
                        prop_assert_eq!(any, before.iter().any(|&(_, q)| q > 0));
                        for (i, q) in before {
                            if q > 0 {
                                consumed[usize::try_from(i).unwrap()] += 1;
                            }
                        }
                        prop_assert!(m.speakers().len() <= 3);
                    }
                }
                for i in 0..4u64 {
                    if let Some(s) = m.stats(InputId(i)) {
                        let queued = m.queued_frames(InputId(i)).unwrap() as u64;
                        prop_assert!(queued <= m.config().max_queued_frames as u64);
                        prop_assert_eq!(
                            s.frames_pushed,
                            s.frames_dropped + consumed[usize::try_from(i).unwrap()] + queued
                        );
                    }
                }
                prop_assert_eq!(m.input_count(), (0..4).filter(|&i| m.stats(InputId(i)).is_some()).count());
            }
        }
    }
}
