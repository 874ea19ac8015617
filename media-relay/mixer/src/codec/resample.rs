//! Band-limited integer-ratio resampling between 48 kHz and a codec's rate
//! (8 kHz for G.711, 16 kHz for G.722).
//!
//! Both directions use one linear-phase low-pass FIR, a Kaiser-windowed sinc
//! designed at 48 kHz:
//!
//! * passband up to 0.45 × the low rate (3.6 kHz for 8 kHz, 7.2 kHz for
//!   16 kHz), stopband from 0.5 × the low rate (its Nyquist frequency), so
//!   nothing above the low rate's Nyquist frequency aliases when decimating
//!   and every image of the zero-stuffed signal is removed when
//!   interpolating;
//! * at least [`STOPBAND_DB`] of stopband attenuation (Kaiser's formulas for
//!   the window's β and length).
//!
//! *Interpolation* by `L` is the polyphase form of "insert `L − 1` zeros
//! between samples, then filter": output phase `p` of input sample `n` is
//! `L · Σₖ h[kL + p] · x[n − k]`. *Decimation* by `M` computes the filter
//! only at every `M`-th output: `y[m] = Σₖ h[k] · x[mM − k]`. Each keeps the
//! filter's history between calls, so a stream resamples without seams.
//!
//! Buffers are allocated by the constructors; [`Upsampler::process`] and
//! [`Downsampler::process`] allocate nothing.

use std::f64::consts::PI;

/// The 48 kHz side of every resampler.
pub(crate) const HIGH_RATE: u32 = 48_000;

/// Stopband attenuation the filters are designed for, in dB.
pub(crate) const STOPBAND_DB: f64 = 75.0;

/// Input samples processed per inner block (bounds the work buffers).
const BLOCK: usize = 480;

/// Designs the prototype low-pass filter at 48 kHz for a low rate of
/// `low_rate`, with a length that is a multiple of `factor`.
fn design(low_rate: u32, factor: usize) -> Vec<f64> {
    let fs = f64::from(HIGH_RATE);
    let pass = 0.45 * f64::from(low_rate);
    let stop = 0.5 * f64::from(low_rate);
    let transition = (stop - pass) / fs; // cycles per sample
                                         // Kaiser: N − 1 = (A − 7.95) / (14.36 · Δf), β = 0.1102 (A − 8.7).
    let order = ((STOPBAND_DB - 7.95) / (14.36 * transition)).ceil() as usize;
    let len = (order + 1).div_ceil(factor) * factor;
    let beta = 0.1102 * (STOPBAND_DB - 8.7);
    let cutoff = 0.5 * (pass + stop) / fs; // cycles per sample
    let centre = (len - 1) as f64 / 2.0;
    let i0_beta = bessel_i0(beta);
    let mut h: Vec<f64> = (0..len)
        .map(|k| {
            let t = k as f64 - centre;
            let sinc = if t == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * PI * cutoff * t).sin() / (PI * t)
            };
            let r = t / (centre + 0.5);
            let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            sinc * w
        })
        .collect();
    // Unity gain at DC.
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|c| *c /= sum);
    h
}

/// The zeroth-order modified Bessel function of the first kind (power
/// series; converges quickly for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Dot product of two equally long slices, with eight partial sums so the
/// compiler can vectorise it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let mut s: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    s += acc.iter().sum::<f32>();
    s
}

#[inline]
fn to_i16(v: f32) -> i16 {
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// Interpolates from a low rate to 48 kHz by an integer factor.
#[derive(Debug, Clone)]
pub(crate) struct Upsampler {
    factor: usize,
    /// Taps per polyphase branch.
    taps: usize,
    /// `factor` branches of `taps` coefficients each, time-reversed so a
    /// branch is a plain dot product with the input window.
    branches: Vec<f32>,
    /// `taps − 1` samples of history followed by one block of input.
    window: Vec<f32>,
}

impl Upsampler {
    /// An interpolator from `low_rate` (which must divide 48 000) to 48 kHz.
    pub(crate) fn new(low_rate: u32) -> Self {
        let factor = (HIGH_RATE / low_rate) as usize;
        let h = design(low_rate, factor);
        let taps = h.len() / factor;
        let mut branches = vec![0f32; factor * taps];
        for p in 0..factor {
            for k in 0..taps {
                // Reversed: window index j pairs with x[n − (taps − 1 − j)].
                branches[p * taps + (taps - 1 - k)] = (h[k * factor + p] * factor as f64) as f32;
            }
        }
        Self {
            factor,
            taps,
            branches,
            window: vec![0f32; taps - 1 + BLOCK],
        }
    }

    /// Interpolates `input` into `output`, which must hold exactly
    /// `input.len() × factor` samples.
    pub(crate) fn process(&mut self, input: &[i16], output: &mut [i16]) {
        debug_assert_eq!(output.len(), input.len() * self.factor);
        let hist = self.taps - 1;
        for (inp, out) in input.chunks(BLOCK).zip(output.chunks_mut(BLOCK * self.factor)) {
            for (w, &x) in self.window[hist..].iter_mut().zip(inp) {
                *w = f32::from(x);
            }
            for (n, o) in out.chunks_exact_mut(self.factor).enumerate() {
                let win = &self.window[n..n + self.taps];
                for (p, y) in o.iter_mut().enumerate() {
                    *y = to_i16(dot(&self.branches[p * self.taps..(p + 1) * self.taps], win));
                }
            }
            self.window.copy_within(inp.len()..inp.len() + hist, 0);
        }
    }
}

/// Decimates from 48 kHz to a low rate by an integer factor.
#[derive(Debug, Clone)]
pub(crate) struct Downsampler {
    factor: usize,
    /// The filter, time-reversed.
    coeffs: Vec<f32>,
    /// `len − 1` samples of history followed by one block of input.
    window: Vec<f32>,
}

impl Downsampler {
    /// A decimator from 48 kHz to `low_rate` (which must divide 48 000).
    pub(crate) fn new(low_rate: u32) -> Self {
        let factor = (HIGH_RATE / low_rate) as usize;
        let h = design(low_rate, factor);
        let coeffs: Vec<f32> = h.iter().rev().map(|&c| c as f32).collect();
        let len = coeffs.len();
        Self {
            factor,
            coeffs,
            window: vec![0f32; len - 1 + BLOCK],
        }
    }

    /// Decimates `input` (a multiple of the factor long) into `output`,
    /// which must hold exactly `input.len() / factor` samples.
    pub(crate) fn process(&mut self, input: &[i16], output: &mut [i16]) {
        debug_assert_eq!(input.len() % self.factor, 0);
        debug_assert_eq!(output.len(), input.len() / self.factor);
        let len = self.coeffs.len();
        let hist = len - 1;
        // BLOCK is a multiple of every factor (2, 3, 6).
        for (inp, out) in input.chunks(BLOCK).zip(output.chunks_mut(BLOCK / self.factor)) {
            for (w, &x) in self.window[hist..].iter_mut().zip(inp) {
                *w = f32::from(x);
            }
            for (m, y) in out.iter_mut().enumerate() {
                // Newest input of this output is window[hist + (m+1)·M − 1].
                let start = (m + 1) * self.factor - 1;
                *y = to_i16(dot(&self.coeffs, &self.window[start..start + len]));
            }
            self.window.copy_within(inp.len()..inp.len() + hist, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::goertzel;

    fn sine(rate: f64, freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate).sin()).round() as i16)
            .collect()
    }

    fn db(ratio: f64) -> f64 {
        10.0 * ratio.log10()
    }

    #[test]
    fn filter_has_unity_dc_gain_and_deep_stopband() {
        for (rate, factor) in [(8000, 6), (16_000, 3)] {
            let h = design(rate, factor);
            assert_eq!(h.len() % factor, 0);
            let sum: f64 = h.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9);
            // Frequency response at a few stopband frequencies.
            for f in [0.5, 0.6, 1.0, 2.0] {
                let w = 2.0 * PI * f * f64::from(rate) / 48_000.0;
                let (re, im) = h.iter().enumerate().fold((0.0, 0.0), |(re, im), (k, &c)| {
                    (re + c * (w * k as f64).cos(), im - c * (w * k as f64).sin())
                });
                let mag_db = 20.0 * (re * re + im * im).sqrt().log10();
                assert!(mag_db < -70.0, "{rate} Hz: {f} × rate gives {mag_db} dB");
            }
        }
    }

    #[test]
    fn upsampling_8k_keeps_1k_and_removes_images() {
        let input = sine(8000.0, 1000.0, 10_000.0, 8000);
        let mut up = Upsampler::new(8000);
        let mut out = vec![0i16; input.len() * 6];
        // In 20 ms pieces, as a decoder would.
        for (i, o) in input.chunks(160).zip(out.chunks_mut(960)) {
            up.process(i, o);
        }
        let steady = &out[4800..];
        let tone = goertzel(steady, 48_000.0, 1000.0);
        // Amplitude kept (within 0.1 dB).
        assert!(db(tone / (10_000.0f64.powi(2) / 2.0)).abs() < 0.1, "{}", db(tone));
        for image in [7000.0, 9000.0, 15_000.0, 17_000.0] {
            let p = goertzel(steady, 48_000.0, image);
            assert!(db(p / tone) < -60.0, "image at {image}: {} dB", db(p / tone));
        }
    }

    #[test]
    fn upsampling_16k_keeps_5k_and_removes_images() {
        let input = sine(16_000.0, 5000.0, 10_000.0, 16_000);
        let mut up = Upsampler::new(16_000);
        let mut out = vec![0i16; input.len() * 3];
        up.process(&input, &mut out);
        let steady = &out[4800..];
        let tone = goertzel(steady, 48_000.0, 5000.0);
        assert!(db(tone / (10_000.0f64.powi(2) / 2.0)).abs() < 0.1);
        for image in [11_000.0, 21_000.0] {
            let p = goertzel(steady, 48_000.0, image);
            assert!(db(p / tone) < -60.0, "image at {image}: {} dB", db(p / tone));
        }
    }

    #[test]
    fn downsampling_to_8k_rejects_6k() {
        let mut down = Downsampler::new(8000);
        let high = sine(48_000.0, 6000.0, 10_000.0, 48_000);
        let mut low = vec![0i16; 8000];
        for (i, o) in high.chunks(960).zip(low.chunks_mut(160)) {
            down.process(i, o);
        }
        // 6 kHz would alias to 2 kHz.
        let alias = goertzel(&low[800..], 8000.0, 2000.0);
        let input = 10_000.0f64.powi(2) / 2.0;
        assert!(db(alias / input) < -40.0, "alias at {} dB", db(alias / input));
        // And a passband tone goes through.
        let mut down = Downsampler::new(8000);
        let high = sine(48_000.0, 1000.0, 10_000.0, 48_000);
        down.process(&high, &mut low);
        let tone = goertzel(&low[800..], 8000.0, 1000.0);
        assert!(db(tone / input).abs() < 0.1);
    }

    #[test]
    fn downsampling_to_16k_rejects_10k_and_keeps_7k() {
        let input = 10_000.0f64.powi(2) / 2.0;
        let mut down = Downsampler::new(16_000);
        let high = sine(48_000.0, 10_000.0, 10_000.0, 48_000);
        let mut low = vec![0i16; 16_000];
        down.process(&high, &mut low);
        let alias = goertzel(&low[1600..], 16_000.0, 6000.0);
        assert!(db(alias / input) < -40.0);
        let mut down = Downsampler::new(16_000);
        let high = sine(48_000.0, 7000.0, 10_000.0, 48_000);
        down.process(&high, &mut low);
        let tone = goertzel(&low[1600..], 16_000.0, 7000.0);
        assert!(db(tone / input).abs() < 0.2, "{}", db(tone / input));
    }

    #[test]
    fn down_then_up_is_a_delayed_copy_in_the_passband() {
        let x = sine(48_000.0, 700.0, 8000.0, 9600);
        let mut down = Downsampler::new(8000);
        let mut up = Upsampler::new(8000);
        let mut low = vec![0i16; 1600];
        let mut y = vec![0i16; 9600];
        down.process(&x, &mut low);
        up.process(&low, &mut y);
        // Find the delay, then the residual is small.
        let best = (0..1200)
            .map(|d| {
                let e: f64 = (2400..9600)
                    .map(|i| (f64::from(y[i]) - f64::from(x[i - d])).powi(2))
                    .sum();
                (e, d)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(e, _)| e)
            .unwrap_or(f64::MAX);
        let s: f64 = (2400..9600).map(|i| f64::from(x[i]).powi(2)).sum();
        assert!(db(s / best) > 40.0, "SNR {}", db(s / best));
    }

    #[test]
    fn silence_stays_silent_and_extremes_saturate() {
        let mut up = Upsampler::new(16_000);
        let mut out = vec![1i16; 960];
        up.process(&[0; 320], &mut out);
        assert!(out.iter().all(|&s| s == 0));
        let mut down = Downsampler::new(8000);
        let loud: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN }).collect();
        let mut low = vec![0i16; 160];
        down.process(&loud, &mut low);
        let mut up = Upsampler::new(16_000);
        let square: Vec<i16> = (0..320)
            .map(|i| if (i / 8) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        up.process(&square, &mut out);
        assert!(out.contains(&i16::MAX) || out.iter().any(|&s| s > 30_000));
    }
}
