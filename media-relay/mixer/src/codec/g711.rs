//! ITU-T G.711 pulse code modulation: µ-law (PCMU) and A-law (PCMA), 8 kHz.
//!
//! G.711 maps a uniform PCM sample to an 8-bit code with a piecewise-linear
//! approximation of a logarithm: a sign bit, a 3-bit *segment* (chord) and a
//! 4-bit *step* inside the segment (G.711 Tables 1a/1b and 2a/2b).
//!
//! * µ-law (Table 2) works on 14-bit uniform PCM. The magnitude is biased by
//!   33, the segment is the position of the biased value's highest set bit
//!   (minus 5), and the step is the 4 bits below it. Segment `s`, step `m`
//!   decodes to `((2m + 33) << s) - 33`. The whole code is transmitted
//!   inverted, so `0xFF` is +0 and `0x7F` is −0 (both decode to 0).
//! * A-law (Table 1) works on 13-bit uniform PCM. Segment 0 and 1 both have
//!   a step of 2 (the straight part of the 13-segment curve); segment `s >= 1`
//!   covers magnitudes `[2^(s+4), 2^(s+5))` in 16-step units. Decoded values
//!   sit in the middle of their interval. The even bits of the code are
//!   inverted on the line (`^ 0x55`), and a set sign bit means positive.
//!
//! Our samples are 16-bit. As in the ITU-T G.191 software tools, the G.711
//! uniform PCM is the top 14 (µ-law) or 13 (A-law) bits of the 16-bit sample,
//! a negative sample's magnitude is its one's complement (`-x - 1`, so the
//! decision thresholds are symmetric around −½), and decoded values are
//! returned shifted back to 16 bits: µ-law spans ±32 124, A-law ±32 256.

/// Bias added to the 14-bit µ-law magnitude (G.711 §3, Table 2a).
const ULAW_BIAS: i32 = 33;
/// Largest biased 14-bit µ-law magnitude that still fits segment 7.
const ULAW_CLIP: i32 = 0x1FFF;

/// µ-law decoding table, built at compile time from [`ulaw_expand`].
static ULAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
};

/// A-law decoding table, built at compile time from [`alaw_expand`].
static ALAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
};

/// Encodes one 16-bit sample to a µ-law code (G.711 Table 2).
pub(crate) fn ulaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    // 14-bit magnitude; negative values by one's complement (G.191).
    // Before the final inversion the sign bit is set for negative values.
    let (sign, mag) = if x < 0 { (0x80, (!x) >> 2) } else { (0x00, x >> 2) };
    let biased = (mag + ULAW_BIAS).min(ULAW_CLIP);
    // The highest set bit of `biased` is at position 5..=12: segment 0..=7.
    let segment = (31 - biased.leading_zeros() as i32) - 5;
    let step = (biased >> (segment + 1)) & 0x0F;
    !(sign | (segment << 4) as u8 | step as u8)
}

/// Decodes one µ-law code to a 16-bit sample (G.711 Table 2).
const fn ulaw_expand(code: u8) -> i16 {
    let c = !code;
    let segment = ((c >> 4) & 0x07) as i32;
    let step = (c & 0x0F) as i32;
    let mag14 = ((2 * step + ULAW_BIAS) << segment) - ULAW_BIAS;
    let v = (mag14 << 2) as i16;
    if c & 0x80 != 0 {
        -v
    } else {
        v
    }
}

/// Encodes one 16-bit sample to an A-law code (G.711 Table 1).
pub(crate) fn alaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    // 12-bit magnitude of the 13-bit uniform PCM, in units of the step of
    // segments 0 and 1; negative values by one's complement (G.191).
    let (sign, mag) = if x < 0 { (0x00u8, (!x) >> 4) } else { (0x80u8, x >> 4) };
    let code7 = if mag < 16 {
        mag
    } else {
        // mag (at most 2047) lies in [2^(s+3), 2^(s+4)) for segment s = 1..=7.
        let top = 31 - mag.leading_zeros() as i32;
        let segment = top - 3;
        let step = (mag >> (segment - 1)) & 0x0F;
        (segment << 4) | step
    };
    (sign | code7 as u8) ^ 0x55
}

/// Decodes one A-law code to a 16-bit sample (G.711 Table 1).
const fn alaw_expand(code: u8) -> i16 {
    let c = code ^ 0x55;
    let segment = ((c >> 4) & 0x07) as i32;
    let step = (c & 0x0F) as i32;
    // Interval middle, in 16-bit units: segment 0 starts at 0, segment s >= 1
    // at 16 << (s - 1) steps, each step (16 << (s - 1)) wide.
    let mag = if segment == 0 {
        (step << 4) + 8
    } else {
        (((step + 16) << 4) + 8) << (segment - 1)
    };
    if c & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

/// Decodes one µ-law code (table look-up).
#[inline]
pub(crate) fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decodes one A-law code (table look-up).
#[inline]
pub(crate) fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Law {
    /// µ-law (PCMU).
    Mu,
    /// A-law (PCMA).
    A,
}

impl Law {
    /// Encodes `pcm` into `codes` (same length).
    pub(crate) fn encode(self, pcm: &[i16], codes: &mut [u8]) {
        match self {
            Self::Mu => codes.iter_mut().zip(pcm).for_each(|(c, &x)| *c = ulaw_compress(x)),
            Self::A => codes.iter_mut().zip(pcm).for_each(|(c, &x)| *c = alaw_compress(x)),
        }
    }

    /// Decodes `codes` into `pcm` (same length).
    pub(crate) fn decode(self, codes: &[u8], pcm: &mut [i16]) {
        match self {
            Self::Mu => pcm.iter_mut().zip(codes).for_each(|(x, &c)| *x = ulaw_decode(c)),
            Self::A => pcm.iter_mut().zip(codes).for_each(|(x, &c)| *x = alaw_decode(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_table_values_at_segment_edges() {
        // Positive codes 0xFF (+0) .. 0x80 (max): segment s, step m decodes to
        // 4 * (((2m + 33) << s) - 33).
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFE), 8); // segment 0, step 1: 14-bit value 2
        assert_eq!(ulaw_decode(0xF0), 120); // segment 0, step 15: 30
        assert_eq!(ulaw_decode(0xEF), 132); // segment 1, step 0: 33
        assert_eq!(ulaw_decode(0xE0), 372); // segment 1, step 15: 93
        assert_eq!(ulaw_decode(0xDF), 396); // segment 2, step 0: 99
        assert_eq!(ulaw_decode(0x8F), 16_764); // segment 7, step 0: 4191
        assert_eq!(ulaw_decode(0x80), 32_124); // segment 7, step 15: 8031
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0x7E), -8);

        // Encoder decision thresholds (14-bit magnitudes 0 | 1..2 | 3..4 ...,
        // segment 1 from 31, segment 7 from 4063, clipping above 8158).
        assert_eq!(ulaw_compress(0), 0xFF);
        assert_eq!(ulaw_compress(3), 0xFF);
        assert_eq!(ulaw_compress(4), 0xFE);
        assert_eq!(ulaw_compress(30 * 4 + 3), 0xF0);
        assert_eq!(ulaw_compress(31 * 4), 0xEF);
        assert_eq!(ulaw_compress(4062 * 4 + 3), 0x90);
        assert_eq!(ulaw_compress(4063 * 4), 0x8F);
        assert_eq!(ulaw_compress(8158 * 4 + 3), 0x80);
        assert_eq!(ulaw_compress(i16::MAX), 0x80);
        assert_eq!(ulaw_compress(i16::MIN), 0x00);
        assert_eq!(ulaw_compress(-1), 0x7F);
        assert_eq!(ulaw_compress(-4), 0x7F);
        assert_eq!(ulaw_compress(-5), 0x7E);
    }

    #[test]
    fn alaw_table_values_at_segment_edges() {
        // Code bits on the line are the 7-bit value with the even bits
        // inverted; a set sign bit is positive.
        assert_eq!(alaw_decode(0xD5), 8); // segment 0, step 0
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0x80 ^ 0x55 ^ 0x0F), 248); // segment 0, step 15
        assert_eq!(alaw_decode(0x80 ^ 0x55 ^ 0x10), 264); // segment 1, step 0
        assert_eq!(alaw_decode(0x80 ^ 0x55 ^ 0x1F), 504); // segment 1, step 15
        assert_eq!(alaw_decode(0x80 ^ 0x55 ^ 0x20), 528); // segment 2, step 0
        assert_eq!(alaw_decode(0x80 ^ 0x55 ^ 0x70), 16_896); // segment 7, step 0
        assert_eq!(alaw_decode(0xAA), 32_256); // segment 7, step 15
        assert_eq!(alaw_decode(0x2A), -32_256);

        assert_eq!(alaw_compress(0), 0xD5);
        assert_eq!(alaw_compress(15), 0xD5);
        assert_eq!(alaw_compress(16), 0xD5 ^ 0x01);
        assert_eq!(alaw_compress(255), 0x80 ^ 0x55 ^ 0x0F);
        assert_eq!(alaw_compress(256), 0x80 ^ 0x55 ^ 0x10);
        assert_eq!(alaw_compress(511), 0x80 ^ 0x55 ^ 0x1F);
        assert_eq!(alaw_compress(512), 0x80 ^ 0x55 ^ 0x20);
        assert_eq!(alaw_compress(16_383), 0x80 ^ 0x55 ^ 0x6F);
        assert_eq!(alaw_compress(16_384), 0x80 ^ 0x55 ^ 0x70);
        assert_eq!(alaw_compress(i16::MAX), 0xAA);
        assert_eq!(alaw_compress(i16::MIN), 0x2A);
        assert_eq!(alaw_compress(-1), 0x55);
        assert_eq!(alaw_compress(-16), 0x55);
        assert_eq!(alaw_compress(-17), 0x55 ^ 0x01);
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for code in 0..=255u8 {
            let v = ulaw_decode(code);
            if code == 0x7F {
                // µ-law −0 decodes to 0, which encodes as +0.
                assert_eq!(ulaw_compress(v), 0xFF);
            } else {
                assert_eq!(ulaw_compress(v), code, "µ-law code {code:#04x} -> {v}");
            }
            let v = alaw_decode(code);
            assert_eq!(alaw_compress(v), code, "A-law code {code:#04x} -> {v}");
        }
    }

    #[test]
    fn decoded_values_are_symmetric_and_monotonic() {
        for code in 0..=127u8 {
            assert_eq!(ulaw_decode(code), -ulaw_decode(code | 0x80));
            assert_eq!(alaw_decode(code), -alaw_decode(code ^ 0x80));
        }
        // Magnitude grows with the 7-bit value.
        for m in 1..=127u8 {
            assert!(ulaw_decode(!m) > ulaw_decode(!(m - 1)));
            assert!(alaw_decode((0x80 | m) ^ 0x55) > alaw_decode((0x80 | (m - 1)) ^ 0x55));
        }
    }

    /// Half the width of the quantisation interval that holds `x`.
    fn ulaw_half_step(x: i16) -> i32 {
        let mag = (i32::from(x).abs() >> 2) + ULAW_BIAS;
        let seg = (31 - mag.min(ULAW_CLIP).leading_zeros() as i32) - 5;
        // Interval width in 16-bit units is 8 << seg.
        4 << seg
    }

    fn alaw_half_step(x: i16) -> i32 {
        let mag = i32::from(x).abs() >> 4;
        let seg = if mag < 32 {
            1
        } else {
            (31 - mag.leading_zeros() as i32) - 3
        };
        8 << (seg - 1)
    }

    #[test]
    fn decode_of_encode_is_within_the_quantisation_step() {
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_compress(x));
            let err = (i32::from(u) - i32::from(x)).abs();
            // Clipping above ±32 124 (µ-law) is the only larger error.
            if i32::from(x).abs() <= 32_124 {
                assert!(err <= ulaw_half_step(x) + 4, "µ-law {x} -> {u}");
            } else {
                assert_eq!(u.signum(), x.signum());
            }
            let a = alaw_decode(alaw_compress(x));
            let err = (i32::from(a) - i32::from(x)).abs();
            if i32::from(x).abs() <= 32_256 {
                assert!(err <= alaw_half_step(x) + 1, "A-law {x} -> {a}");
            }
        }
    }

    #[test]
    fn law_slices_round_trip() {
        let pcm: Vec<i16> = (-8..8).map(|k| k * 4000).collect();
        for law in [Law::Mu, Law::A] {
            let mut codes = vec![0u8; pcm.len()];
            law.encode(&pcm, &mut codes);
            let mut back = vec![0i16; pcm.len()];
            law.decode(&codes, &mut back);
            for (x, y) in pcm.iter().zip(&back) {
                assert!((i32::from(*x) - i32::from(*y)).abs() < 600, "{law:?}: {x} -> {y}");
            }
        }
    }
}
