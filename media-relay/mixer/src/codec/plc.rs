//! Packet loss concealment by waveform repetition, for the sample-based
//! codecs (G.711, G.722), in the spirit of G.711 Appendix I.
//!
//! The concealer sees every decoded sample at the codec's own rate and keeps
//! the last [`HISTORY_MS`] ms. When a packet is lost:
//!
//! 1. It estimates the pitch period of the last good audio: the lag between
//!    2.5 and 15 ms whose normalised autocorrelation over the last 10 ms is
//!    highest. If no lag correlates well (noise, silence, music without a
//!    clear period), it uses 10 ms instead.
//! 2. It repeats the last period of good audio for as long as the loss
//!    lasts. For a voiced sound the repetition continues the waveform
//!    without a click; for anything else it is the last 10 ms on a loop.
//! 3. It fades: full level for the first 10 ms of a loss, then linearly down
//!    to silence at 60 ms, after which it outputs silence ([`FADE_END_MS`]).
//!    Consecutive losses count as one loss; a good packet ends it.
//! 4. When audio resumes, the first [`MERGE_MS`] ms of the good packet are
//!    cross-faded from the concealment's continuation into the new audio,
//!    so there is no step at the seam.
//!
//! The codec's own state (the G.722 ADPCM predictors) is not touched during
//! the loss; the decoder goes on from where it was, which the adaptive
//! quantisers recover from within a few milliseconds.
//!
//! All buffers are allocated by [`Concealer::new`].

/// Milliseconds of good audio kept for concealment.
pub(crate) const HISTORY_MS: usize = 30;
/// Concealment at full level for this long.
const FADE_START_MS: usize = 10;
/// Concealment is silent from this point of a loss on.
pub(crate) const FADE_END_MS: usize = 60;
/// Cross-fade into the first good packet after a loss.
const MERGE_MS: f32 = 2.5;
/// Shortest and longest pitch period searched, in ms.
const MIN_PERIOD_MS: f32 = 2.5;
const MAX_PERIOD_MS: usize = 15;
/// Correlation window, in ms.
const WINDOW_MS: usize = 10;
/// Normalised correlation below which no pitch is assumed.
const MIN_CORRELATION: f64 = 0.5;
/// How much better a longer lag's correlation must be to be preferred.
const PREFER_SHORTER: f64 = 0.01;

/// Waveform-repetition concealment for one stream at one sample rate.
#[derive(Debug, Clone)]
pub(crate) struct Concealer {
    /// Samples per millisecond.
    per_ms: usize,
    /// The last [`HISTORY_MS`] ms of good audio, oldest first.
    history: Vec<i16>,
    /// The repeated period, in samples (valid while `lost > 0`).
    period: usize,
    /// Position in the repeated period of the next concealed sample.
    pos: usize,
    /// Samples concealed since the last good packet.
    lost: usize,
}

impl Concealer {
    /// A concealer for `rate` Hz (a multiple of 1000) that has heard silence.
    pub(crate) fn new(rate: u32) -> Self {
        let per_ms = rate as usize / 1000;
        Self {
            per_ms,
            history: vec![0; HISTORY_MS * per_ms],
            period: WINDOW_MS * per_ms,
            pos: 0,
            lost: 0,
        }
    }

    /// Takes good decoded audio: merges it with the concealment if a loss
    /// just ended (changing the first samples of `pcm`), then remembers it.
    pub(crate) fn good(&mut self, pcm: &mut [i16]) {
        if self.lost > 0 {
            let merge = ((MERGE_MS * self.per_ms as f32) as usize).min(pcm.len());
            for (i, s) in pcm[..merge].iter_mut().enumerate() {
                let w = (i + 1) as f32 / (merge + 1) as f32;
                let c = f32::from(self.next());
                *s = (w * f32::from(*s) + (1.0 - w) * c).round() as i16;
            }
            self.lost = 0;
        }
        let h = self.history.len();
        if pcm.len() >= h {
            self.history.copy_from_slice(&pcm[pcm.len() - h..]);
        } else {
            self.history.copy_within(pcm.len().., 0);
            self.history[h - pcm.len()..].copy_from_slice(pcm);
        }
    }

    /// Fills `out` with concealment for lost audio.
    pub(crate) fn conceal(&mut self, out: &mut [i16]) {
        if self.lost == 0 {
            self.period = self.pitch_period();
            self.pos = 0;
        }
        if self.is_silent() {
            out.fill(0);
            self.lost = self.lost.saturating_add(out.len());
            return;
        }
        for s in out.iter_mut() {
            *s = self.next();
        }
    }

    /// Whether concealment has faded out completely.
    pub(crate) fn is_silent(&self) -> bool {
        self.lost >= FADE_END_MS * self.per_ms
    }

    /// The next concealment sample (advances the loss clock).
    fn next(&mut self) -> i16 {
        let fade_start = FADE_START_MS * self.per_ms;
        let fade_end = FADE_END_MS * self.per_ms;
        let t = self.lost;
        self.lost = self.lost.saturating_add(1);
        if t >= fade_end {
            return 0;
        }
        let h = self.history.len();
        let v = f32::from(self.history[h - self.period + self.pos]);
        self.pos = (self.pos + 1) % self.period;
        let gain = if t < fade_start {
            1.0
        } else {
            (fade_end - t) as f32 / (fade_end - fade_start) as f32
        };
        (v * gain).round() as i16
    }

    /// The lag (2.5–15 ms) with the highest normalised autocorrelation over
    /// the last 10 ms, or 10 ms if none correlates well.
    fn pitch_period(&self) -> usize {
        let h = &self.history;
        let n = h.len();
        let w = WINDOW_MS * self.per_ms;
        let fallback = WINDOW_MS * self.per_ms;
        let min_lag = (MIN_PERIOD_MS * self.per_ms as f32) as usize;
        let max_lag = MAX_PERIOD_MS * self.per_ms;
        let recent = &h[n - w..];
        let e0: f64 = recent.iter().map(|&x| f64::from(x).powi(2)).sum();
        if e0 < w as f64 {
            // Below about 1 LSB RMS: nothing to repeat.
            return fallback;
        }
        let mut best = (MIN_CORRELATION, fallback);
        for lag in min_lag..=max_lag {
            let past = &h[n - w - lag..n - lag];
            let (mut xy, mut yy) = (0.0f64, 0.0f64);
            for (&x, &y) in recent.iter().zip(past) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            if yy > 0.0 {
                let c = xy / (e0 * yy).sqrt();
                // A longer lag must be clearly better: multiples of the
                // period correlate as well as the period itself.
                if c > best.0 + PREFER_SHORTER {
                    best = (c, lag);
                }
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn tone(rate: f64, freq: f64, n: usize, phase0: usize) -> Vec<i16> {
        (phase0..phase0 + n)
            .map(|i| (8000.0 * (2.0 * PI * freq * i as f64 / rate).sin()).round() as i16)
            .collect()
    }

    #[test]
    fn voiced_audio_is_continued_at_its_pitch() {
        let mut plc = Concealer::new(8000);
        // 200 Hz: a 5 ms period.
        let mut good = tone(8000.0, 200.0, 240, 0);
        plc.good(&mut good);
        let mut out = vec![0i16; 80];
        plc.conceal(&mut out);
        assert_eq!(plc.period, 40);
        // The first 10 ms continue the tone almost exactly.
        let expected = tone(8000.0, 200.0, 80, 240);
        for (a, b) in out.iter().zip(&expected) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= 2, "{a} vs {b}");
        }
    }

    #[test]
    fn concealment_fades_to_silence_after_60_ms() {
        let mut plc = Concealer::new(16_000);
        let mut good = tone(16_000.0, 310.0, 320, 0);
        plc.good(&mut good);
        let mut out = vec![0i16; 160];
        let peaks: Vec<i32> = (0..8)
            .map(|_| {
                plc.conceal(&mut out);
                out.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0)
            })
            .collect();
        // 0–10 ms full, then decreasing, silent from 60 ms.
        assert!(peaks[0] > 7000);
        for k in 1..6 {
            assert!(peaks[k] <= peaks[k - 1], "{peaks:?}");
        }
        assert!(peaks[5] < 2000);
        assert_eq!(peaks[6], 0);
        assert_eq!(peaks[7], 0);
        assert!(plc.is_silent());
    }

    #[test]
    fn noise_falls_back_to_ten_ms_and_silence_stays_silent() {
        let mut plc = Concealer::new(8000);
        let mut out = vec![1i16; 160];
        plc.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
        // Pseudo-random noise.
        let mut state = 12_345u32;
        let mut noise: Vec<i16> = (0..240)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((state >> 16) as i16) / 4
            })
            .collect();
        plc.good(&mut noise);
        plc.conceal(&mut out);
        assert_eq!(plc.period, 80);
        assert_eq!(&out[..80], &noise[160..]);
    }

    #[test]
    fn recovery_cross_fades_into_the_new_audio() {
        let mut plc = Concealer::new(8000);
        let mut good = tone(8000.0, 250.0, 240, 0);
        plc.good(&mut good);
        let mut out = vec![0i16; 160];
        plc.conceal(&mut out);
        // The next packet is the true continuation (the tone went on).
        let mut next = tone(8000.0, 250.0, 160, 400);
        let original = next.clone();
        plc.good(&mut next);
        // The concealment had faded to 80 % by 20 ms; the first 2.5 ms move
        // from it to the new audio, the rest is untouched.
        for (i, (a, b)) in next.iter().zip(&original).enumerate().take(20) {
            let err = (i32::from(*a) - i32::from(*b)).abs();
            let w = (i + 1) as f64 / 21.0;
            // The concealment's gain goes on falling: (480 − 160 − i) / 400.
            let missing = 1.0 - (320 - i) as f64 / 400.0;
            assert!(
                f64::from(err) <= missing * (1.0 - w) * f64::from(*b).abs() + 3.0,
                "{i}: {a} vs {b}"
            );
        }
        assert_eq!(&next[20..], &original[20..]);
        // And a loss ends with a good packet.
        assert!(!plc.is_silent());
        assert_eq!(plc.lost, 0);
    }
}
