//! Voice activity, for active-speaker events and video switching.
//!
//! The [`Mixer`](crate::Mixer) ranks speakers by level for the mix itself;
//! this module answers two slower questions: *is this participant talking*
//! ([`Vad`], one per input) and *whom should the room see* ([`SpeakerSwitcher`],
//! one per conference).
//!
//! # Voice activity ([`Vad`])
//!
//! Per 20 ms frame, the level is the frame's RMS in dBFS ([`frame_dbfs`]).
//! The *noise floor* is tracked by minimum statistics: the minimum level over
//! a sliding window (default 2 s, kept as 8 sub-window minima, so nothing is
//! allocated). Speech pauses between words reach down to the noise, so the
//! window minimum follows the noise even while someone talks, and a steady
//! noise (a fan, a hum) becomes the floor within one window.
//!
//! A frame *starts* speech if its level exceeds the floor by
//! [`VadConfig::onset_db`] (12 dB) and is above [`VadConfig::min_level_dbfs`]
//! (−50 dBFS). Once speaking, a lower threshold, [`VadConfig::release_db`]
//! (6 dB above the floor), keeps it on (hysteresis); after the level drops
//! below that, speech continues for [`VadConfig::hangover`] (300 ms) so
//! that the gaps between words do not toggle it.
//!
//! Until the first window has been filled the floor is at most
//! [`VadConfig::initial_floor_dbfs`] (−60 dBFS): a participant who joins
//! with a noisy line may be taken for a speaker for up to one window.
//!
//! # Speaker switching ([`SpeakerSwitcher`])
//!
//! The *leader* of an update is the loudest input that is speaking (equal
//! levels: the lower [`InputId`]). With no active speaker, the first leader
//! becomes active at once. Otherwise a different leader must stay the leader
//! at every update for [`SpeakerSwitcher::min_hold`] (default 1 s) before it
//! takes over; if the active speaker (or anyone else) leads in between, the
//! challenge starts again. Updates where nobody speaks keep the active
//! speaker (the video stays on the last person who talked) and end any
//! challenge.

use std::time::{Duration, Instant};

use crate::level::frame_dbfs;
use crate::{Frame, InputId};

/// Frame length, in milliseconds.
const FRAME_MS: u128 = 20;
/// Sub-windows of the noise-floor minimum.
const SUBWINDOWS: usize = 8;
/// Levels are clamped up to this, so that digital silence (−∞) stays
/// arithmetic.
const LEVEL_FLOOR_DBFS: f32 = -120.0;

/// Configuration of a [`Vad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Speech starts this far above the noise floor, in dB (default 12).
    pub onset_db: f32,
    /// Speech continues while this far above the noise floor, in dB (default
    /// 6); at most `onset_db`.
    pub release_db: f32,
    /// Speech needs at least this level, in dBFS (default −50).
    pub min_level_dbfs: f32,
    /// How long speech lasts after the level falls (default 300 ms).
    pub hangover: Duration,
    /// Window of the noise-floor minimum (default 2 s, at least 8 frames).
    pub noise_window: Duration,
    /// Highest noise floor assumed before the first window is complete
    /// (default −60 dBFS).
    pub initial_floor_dbfs: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            onset_db: 12.0,
            release_db: 6.0,
            min_level_dbfs: -50.0,
            hangover: Duration::from_millis(300),
            noise_window: Duration::from_secs(2),
            initial_floor_dbfs: -60.0,
        }
    }
}

/// Voice activity detector for one input, one 20 ms frame at a time. See
/// the [module docs](self).
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    /// Hangover, in frames.
    hangover_frames: u32,
    /// Frames per sub-window.
    sub_frames: u32,
    /// Minimum of each completed sub-window (initially the initial floor).
    minima: [f32; SUBWINDOWS],
    /// Next sub-window slot to overwrite.
    next_sub: usize,
    /// Minimum and frame count of the sub-window in progress.
    current_min: f32,
    current_frames: u32,
    speaking: bool,
    /// Hangover frames left.
    remaining: u32,
    level: f32,
}

impl Vad {
    /// A detector that has heard nothing yet.
    pub fn new(config: VadConfig) -> Self {
        let config = VadConfig {
            release_db: config.release_db.min(config.onset_db),
            ..config
        };
        let window_frames = (config.noise_window.as_millis() / FRAME_MS).max(SUBWINDOWS as u128);
        let sub_frames = u32::try_from(window_frames / SUBWINDOWS as u128).unwrap_or(u32::MAX);
        let hangover_frames = u32::try_from(config.hangover.as_millis().div_ceil(FRAME_MS)).unwrap_or(u32::MAX);
        let initial = if config.initial_floor_dbfs.is_nan() {
            LEVEL_FLOOR_DBFS
        } else {
            config.initial_floor_dbfs.max(LEVEL_FLOOR_DBFS)
        };
        Self {
            config,
            hangover_frames,
            sub_frames,
            minima: [initial; SUBWINDOWS],
            next_sub: 0,
            current_min: f32::INFINITY,
            current_frames: 0,
            speaking: false,
            remaining: 0,
            level: LEVEL_FLOOR_DBFS,
        }
    }

    /// The configuration in effect (`release_db` at most `onset_db`).
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Takes the next 20 ms frame; returns whether the input is speaking.
    pub fn update(&mut self, frame: &Frame) -> bool {
        let level = frame_dbfs(frame).max(LEVEL_FLOOR_DBFS);
        self.level = level;
        let floor = self.noise_floor_dbfs();
        let above = level > self.config.min_level_dbfs;
        let onset = above && level > floor + self.config.onset_db;
        let sustain = above && level > floor + self.config.release_db;
        if onset || (self.speaking && sustain) {
            self.speaking = true;
            self.remaining = self.hangover_frames;
        } else if self.remaining > 0 {
            self.remaining -= 1;
        } else {
            self.speaking = false;
        }
        self.track_floor(level);
        self.speaking
    }

    /// Whether the input was speaking at the last update.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Level of the last frame, in dBFS (digital silence reads −120).
    pub fn level_dbfs(&self) -> f32 {
        self.level
    }

    /// The current noise floor estimate, in dBFS.
    pub fn noise_floor_dbfs(&self) -> f32 {
        self.minima.iter().copied().fold(self.current_min, f32::min)
    }

    /// Minimum statistics: the window minimum over sub-windows.
    fn track_floor(&mut self, level: f32) {
        self.current_min = self.current_min.min(level);
        self.current_frames += 1;
        if self.current_frames >= self.sub_frames {
            self.minima[self.next_sub] = self.current_min;
            self.next_sub = (self.next_sub + 1) % SUBWINDOWS;
            self.current_min = f32::INFINITY;
            self.current_frames = 0;
        }
    }
}

impl Default for Vad {
    fn default() -> Self {
        Self::new(VadConfig::default())
    }
}

/// Picks the active speaker, with hysteresis. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SpeakerSwitcher {
    /// How long a new speaker must lead before it takes over.
    pub min_hold: Duration,
    active: Option<InputId>,
    /// The input currently leading against the active speaker, and since
    /// when.
    challenger: Option<(InputId, Instant)>,
}

impl Default for SpeakerSwitcher {
    /// A switcher with `min_hold` = 1 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl SpeakerSwitcher {
    /// A switcher with no active speaker.
    pub fn new(min_hold: Duration) -> Self {
        Self {
            min_hold,
            active: None,
            challenger: None,
        }
    }

    /// The active speaker, if any.
    pub fn active(&self) -> Option<InputId> {
        self.active
    }

    /// Forgets an input that left: if it was the active speaker, nobody is
    /// until the next update with a speaker.
    pub fn remove(&mut self, id: InputId) {
        if self.active == Some(id) {
            self.active = None;
        }
        if self.challenger.is_some_and(|(c, _)| c == id) {
            self.challenger = None;
        }
    }

    /// One update (typically per 20 ms tick) with every input's
    /// `(id, speaking, level_dbfs)`. Returns the new active speaker when it
    /// changes. An active speaker missing from `inputs` is treated as gone.
    pub fn update(&mut self, now: Instant, inputs: &[(InputId, bool, f32)]) -> Option<InputId> {
        if let Some(active) = self.active {
            if !inputs.iter().any(|&(id, _, _)| id == active) {
                self.active = None;
            }
        }
        let mut leader: Option<(InputId, f32)> = None;
        for &(id, speaking, level) in inputs {
            if !speaking || level.is_nan() {
                continue;
            }
            let better = match leader {
                None => true,
                Some((lid, llevel)) => level > llevel || (level == llevel && id < lid),
            };
            if better {
                leader = Some((id, level));
            }
        }
        let Some((leader, _)) = leader else {
            self.challenger = None;
            return None;
        };
        if self.active == Some(leader) {
            self.challenger = None;
            return None;
        }
        if self.active.is_none() {
            return self.switch_to(leader);
        }
        match self.challenger {
            Some((c, since)) if c == leader => {
                if now.saturating_duration_since(since) >= self.min_hold {
                    return self.switch_to(leader);
                }
                None
            }
            _ => {
                if self.min_hold.is_zero() {
                    return self.switch_to(leader);
                }
                self.challenger = Some((leader, now));
                None
            }
        }
    }

    fn switch_to(&mut self, id: InputId) -> Option<InputId> {
        self.active = Some(id);
        self.challenger = None;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::FRAME_SAMPLES;

    /// A 1 kHz sine frame at roughly `dbfs` (RMS).
    fn tone(dbfs: f32) -> Frame {
        let amplitude = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * std::f64::consts::SQRT_2;
        let mut f = [0i16; FRAME_SAMPLES];
        for (n, s) in f.iter_mut().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 48_000.0;
            *s = (amplitude * phase.sin()).round().clamp(-32768.0, 32767.0) as i16;
        }
        f
    }

    /// Pseudo-random noise at roughly `dbfs`.
    fn noise(dbfs: f32, seed: &mut u64) -> Frame {
        let amplitude = 32768.0 * 10f64.powf(f64::from(dbfs) / 20.0) * 3f64.sqrt();
        let mut f = [0i16; FRAME_SAMPLES];
        for s in f.iter_mut() {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            *s = (amplitude * u).round() as i16;
        }
        f
    }

    #[test]
    fn silence_is_not_speech() {
        let mut vad = Vad::default();
        for _ in 0..200 {
            assert!(!vad.update(&[0; FRAME_SAMPLES]));
        }
        assert_eq!(vad.level_dbfs(), -120.0);
    }

    #[test]
    fn speech_over_quiet_noise_with_hangover() {
        let mut vad = Vad::default();
        let mut seed = 1;
        for _ in 0..150 {
            assert!(!vad.update(&noise(-65.0, &mut seed)));
        }
        let floor = vad.noise_floor_dbfs();
        assert!((-70.0..-62.0).contains(&floor), "{floor}");
        // Talk for 1 s.
        assert!(vad.update(&tone(-20.0)));
        for _ in 0..49 {
            assert!(vad.update(&tone(-20.0)));
        }
        // Stop: 300 ms hangover = 15 frames still speech, then off.
        for k in 0..15 {
            assert!(vad.update(&noise(-65.0, &mut seed)), "hangover frame {k}");
        }
        assert!(!vad.update(&noise(-65.0, &mut seed)));
        assert!(!vad.is_speaking());
    }

    #[test]
    fn a_short_pause_within_the_hangover_keeps_speech_on() {
        let mut vad = Vad::default();
        let mut seed = 2;
        for _ in 0..100 {
            vad.update(&noise(-70.0, &mut seed));
        }
        for _ in 0..20 {
            vad.update(&tone(-25.0));
        }
        for _ in 0..10 {
            assert!(vad.update(&noise(-70.0, &mut seed)));
        }
        assert!(vad.update(&tone(-25.0)));
        // The hangover restarts from the last speech frame.
        for _ in 0..15 {
            assert!(vad.update(&noise(-70.0, &mut seed)));
        }
        assert!(!vad.update(&noise(-70.0, &mut seed)));
    }

    #[test]
    fn hysteresis_keeps_speech_on_between_the_thresholds() {
        let mut vad = Vad::default();
        let mut seed = 3;
        for _ in 0..150 {
            vad.update(&noise(-50.0, &mut seed));
        }
        let floor = vad.noise_floor_dbfs();
        // 9 dB above the floor does not start speech...
        assert!(!vad.update(&tone(floor + 9.0)));
        // ...13 dB does, and then 9 dB keeps it going, past the hangover.
        assert!(vad.update(&tone(floor + 13.0)));
        for _ in 0..40 {
            assert!(vad.update(&tone(floor + 9.0)));
        }
        // 3 dB above the floor is below the release threshold.
        for _ in 0..15 {
            assert!(vad.update(&tone(floor + 3.0)));
        }
        assert!(!vad.update(&tone(floor + 3.0)));
    }

    #[test]
    fn steady_noise_becomes_the_floor() {
        let mut vad = Vad::default();
        let mut seed = 4;
        // A loud fan starts: it may count as speech at first (initial floor
        // −60), but within one window (2 s) plus the hangover it does not.
        let mut speaking_late = 0;
        for k in 0..300 {
            let s = vad.update(&noise(-40.0, &mut seed));
            if k >= 2 * 50 + 15 {
                speaking_late += usize::from(s);
            }
        }
        assert_eq!(speaking_late, 0);
        assert!((-46.0..-38.0).contains(&vad.noise_floor_dbfs()));
        // Speech over the fan is still detected.
        assert!(vad.update(&tone(-20.0)));
    }

    #[test]
    fn quiet_speech_below_the_absolute_threshold_is_not_speech() {
        let mut vad = Vad::default();
        for _ in 0..100 {
            vad.update(&[0; FRAME_SAMPLES]);
        }
        assert!(!vad.update(&tone(-55.0)));
        assert!(vad.update(&tone(-45.0)));
    }

    #[test]
    fn config_is_sanitised() {
        let vad = Vad::new(VadConfig {
            onset_db: 10.0,
            release_db: 20.0,
            initial_floor_dbfs: f32::NAN,
            noise_window: Duration::ZERO,
            ..VadConfig::default()
        });
        assert_eq!(vad.config().release_db, 10.0);
        assert_eq!(vad.noise_floor_dbfs(), -120.0);
    }

    const A: InputId = InputId(1);
    const B: InputId = InputId(2);
    const C: InputId = InputId(3);

    #[test]
    fn first_speaker_is_active_at_once() {
        let mut sw = SpeakerSwitcher::default();
        let t0 = Instant::now();
        assert_eq!(sw.update(t0, &[(A, false, -60.0), (B, false, -70.0)]), None);
        assert_eq!(sw.update(t0, &[(A, false, -60.0), (B, true, -30.0)]), Some(B));
        assert_eq!(sw.active(), Some(B));
        assert_eq!(sw.update(t0, &[(A, false, -60.0), (B, true, -30.0)]), None);
    }

    #[test]
    fn a_new_speaker_must_lead_for_one_second() {
        let mut sw = SpeakerSwitcher::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        sw.update(t0, &[(A, true, -20.0), (B, false, -60.0)]);
        assert_eq!(sw.active(), Some(A));
        // B gets louder than A: not yet.
        for k in 1..50u64 {
            assert_eq!(sw.update(t0 + ms(20 * k), &[(A, true, -25.0), (B, true, -15.0)]), None);
        }
        // One second after B started leading, B takes over.
        assert_eq!(sw.update(t0 + ms(1020), &[(A, true, -25.0), (B, true, -15.0)]), Some(B));
        assert_eq!(sw.active(), Some(B));
    }

    #[test]
    fn interjections_do_not_switch() {
        let mut sw = SpeakerSwitcher::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        sw.update(t0, &[(A, true, -20.0), (B, false, -60.0)]);
        // B interjects for 0.6 s, A is back in the lead, B again for 0.6 s:
        // never a full second in a row.
        let mut t = 0;
        for round in 0..3 {
            for _ in 0..30 {
                t += 20;
                assert_eq!(
                    sw.update(t0 + ms(t), &[(A, true, -30.0), (B, true, -10.0)]),
                    None,
                    "{round}"
                );
            }
            t += 20;
            assert_eq!(sw.update(t0 + ms(t), &[(A, true, -10.0), (B, true, -30.0)]), None);
        }
        assert_eq!(sw.active(), Some(A));
        // Silence keeps the last speaker.
        assert_eq!(
            sw.update(t0 + ms(t + 5000), &[(A, false, -90.0), (B, false, -90.0)]),
            None
        );
        assert_eq!(sw.active(), Some(A));
    }

    #[test]
    fn the_challenger_must_stay_the_same() {
        let mut sw = SpeakerSwitcher::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        sw.update(t0, &[(A, true, -20.0)]);
        // B leads 0.6 s, then C leads 0.6 s: neither held it for 1 s.
        for k in 1..=30u64 {
            assert_eq!(
                sw.update(
                    t0 + ms(20 * k),
                    &[(A, true, -30.0), (B, true, -10.0), (C, false, -90.0)]
                ),
                None
            );
        }
        for k in 31..=60u64 {
            assert_eq!(
                sw.update(t0 + ms(20 * k), &[(A, true, -30.0), (B, true, -10.0), (C, true, -5.0)]),
                None
            );
        }
        assert_eq!(sw.active(), Some(A));
        // C has led since k = 31: it takes over one second later, at k = 81.
        for k in 61..=82u64 {
            let r = sw.update(t0 + ms(20 * k), &[(A, true, -30.0), (B, true, -10.0), (C, true, -5.0)]);
            assert_eq!(r, if k == 81 { Some(C) } else { None }, "{k}");
        }
    }

    #[test]
    fn ties_go_to_the_lower_id_and_nan_never_leads() {
        let mut sw = SpeakerSwitcher::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(
            sw.update(t0, &[(C, true, f32::NAN), (B, true, -20.0), (A, true, -20.0)]),
            Some(A)
        );
        assert_eq!(sw.update(t0, &[(A, true, -20.0), (B, true, -19.0)]), Some(B));
    }

    #[test]
    fn a_departed_active_speaker_is_replaced_at_once() {
        let mut sw = SpeakerSwitcher::default();
        let t0 = Instant::now();
        sw.update(t0, &[(A, true, -20.0), (B, false, -60.0)]);
        assert_eq!(sw.update(t0, &[(B, true, -20.0)]), Some(B));
        sw.remove(B);
        assert_eq!(sw.active(), None);
        assert_eq!(sw.update(t0, &[(A, true, -20.0)]), Some(A));
    }
}
