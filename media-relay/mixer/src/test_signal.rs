//! Signal measurements shared by the crate's tests.

/// Power of `freq` in `x` sampled at `rate` (Goertzel), normalised so a
/// full-scale sine reads about its mean square.
pub(crate) fn goertzel(x: &[i16], rate: f64, freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
}

/// [`goertzel`] at 48 kHz.
pub(crate) fn goertzel48(x: &[i16], freq: f64) -> f64 {
    goertzel(x, 48_000.0, freq)
}

/// Mean square of the samples.
pub(crate) fn power(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64
}
