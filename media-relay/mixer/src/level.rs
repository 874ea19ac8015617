//! Signal level: RMS in dBFS.

use crate::{Frame, FRAME_SAMPLES};

/// The level [`frame_dbfs`] reports for an all-zero frame: negative infinity.
///
/// No floor is applied: the quietest non-silent frame (a single sample of ±1)
/// measures about −120.1 dBFS, so any finite floor such as −96 would hide real
/// (if inaudible) signal. Negative infinity compares below every threshold.
pub const SILENCE_DBFS: f32 = f32::NEG_INFINITY;

/// Full scale: the magnitude of `i16::MIN`.
const FULL_SCALE: f64 = 32_768.0;

/// RMS level of `frame` in dBFS: `20·log10(rms / 32768)`.
///
/// 0 dBFS is a full-scale square wave (every sample at ±32768; a frame of
/// `i16::MIN` measures exactly 0.0); a full-scale sine measures about
/// −3.01 dBFS. An all-zero frame returns [`SILENCE_DBFS`] (negative
/// infinity). The result is never NaN and never above 0.0.
pub fn frame_dbfs(frame: &Frame) -> f32 {
    dbfs_from_energy(frame_energy(frame))
}

/// Sum of the squares of the samples: the exact energy of the frame.
///
/// At most 960 · 2³⁰ ≈ 1.03 · 10¹², far inside `u64`. The squares of two
/// neighbouring samples are added in 32 bits first (a multiply-add the
/// compiler vectorises, where 64-bit products are slow): each square is at
/// most 2³⁰, so a pair is at most 2³¹ and, read as `u32`, exact.
pub(crate) fn frame_energy(frame: &Frame) -> u64 {
    frame
        .chunks_exact(2)
        .map(|pair| {
            let (a, b) = (i32::from(pair[0]), i32::from(pair[1]));
            // Only (−32768)² + (−32768)² = 2³¹ wraps in i32; as u32 it is exact.
            u64::from((a * a).wrapping_add(b * b).cast_unsigned())
        })
        .sum()
}

/// dBFS of a frame whose [`frame_energy`] is `energy`.
pub(crate) fn dbfs_from_energy(energy: u64) -> f32 {
    if energy == 0 {
        return SILENCE_DBFS;
    }
    // u64 -> f64 is exact up to 2^53, and energy < 2^41.
    #[allow(clippy::cast_precision_loss)]
    let mean_square = energy as f64 / FRAME_SAMPLES as f64;
    // 20·log10(rms/FS) = 10·log10(mean_square/FS²)
    let db = 10.0 * (mean_square / (FULL_SCALE * FULL_SCALE)).log10();
    #[allow(clippy::cast_possible_truncation)]
    let db = db as f32;
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 0.01
    }

    #[test]
    fn silence_is_negative_infinity() {
        assert_eq!(frame_dbfs(&[0; FRAME_SAMPLES]), f32::NEG_INFINITY);
        assert!(frame_dbfs(&[0; FRAME_SAMPLES]) < -1.0e30);
    }

    #[test]
    fn full_scale_square_is_zero_dbfs() {
        assert_eq!(frame_dbfs(&[i16::MIN; FRAME_SAMPLES]), 0.0);
        let mut square = [i16::MIN; FRAME_SAMPLES];
        for s in square.iter_mut().step_by(2) {
            *s = i16::MAX;
        }
        assert!(close(frame_dbfs(&square), 0.0));
        assert!(frame_dbfs(&square) <= 0.0);
    }

    #[test]
    fn full_scale_sine_is_minus_three_dbfs() {
        // 1 kHz at 48 kHz: exactly 20 periods per frame.
        let mut sine = [0i16; FRAME_SAMPLES];
        for (n, s) in sine.iter_mut().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 48_000.0;
            *s = (32_767.0 * phase.sin()).round() as i16;
        }
        assert!(close(frame_dbfs(&sine), -3.01), "{}", frame_dbfs(&sine));
    }

    #[test]
    fn halving_amplitude_is_minus_six_db() {
        let a = frame_dbfs(&[16_384; FRAME_SAMPLES]);
        let b = frame_dbfs(&[8_192; FRAME_SAMPLES]);
        assert!(close(a, -6.02), "{a}");
        assert!(close(a - b, 6.02), "{a} {b}");
    }

    #[test]
    fn energy_is_the_exact_sum_of_squares() {
        let exact = |f: &Frame| f.iter().map(|&s| (i64::from(s) * i64::from(s)) as u64).sum::<u64>();
        // Extremes side by side (the pair sums that overflow i32), then
        // pseudo-random frames with extremes sprinkled in.
        let mut f = [i16::MIN; FRAME_SAMPLES];
        assert_eq!(frame_energy(&f), 960 << 30);
        for (n, s) in f.iter_mut().enumerate() {
            *s = [i16::MIN, i16::MAX, -1, 0][n % 4];
        }
        assert_eq!(frame_energy(&f), exact(&f));
        let mut x = 0x1234_5678u32;
        for round in 0..200 {
            for (n, s) in f.iter_mut().enumerate() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *s = if n % (round + 2) == 0 { i16::MIN } else { x as i16 };
            }
            assert_eq!(frame_energy(&f), exact(&f), "round {round}");
        }
    }

    #[test]
    fn quietest_frame_is_about_minus_120() {
        let mut f = [0i16; FRAME_SAMPLES];
        f[17] = -1;
        assert!(close(frame_dbfs(&f), -120.14), "{}", frame_dbfs(&f));
    }
}
