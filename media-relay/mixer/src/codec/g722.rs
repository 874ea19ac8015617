//! ITU-T G.722 (11/88) 7 kHz audio coding within 64 kbit/s: sub-band ADPCM,
//! mode 1 (64 kbit/s, no auxiliary data channel).
//!
//! # The algorithm (G.722 §3 encoder, §4 decoder, §6 computational details)
//!
//! * **Transmit QMF** (§3.1): a 24-tap quadrature mirror filter pair splits
//!   the 16 kHz, 14-bit uniform input into a lower sub-band `XL` (0–4 kHz)
//!   and a higher sub-band `XH` (4–8 kHz), each at 8 kHz:
//!   `XA = Σ h(2i)·x(j−2i)`, `XB = Σ h(2i+1)·x(j−2i−1)`, `XL = XA + XB`,
//!   `XH = XA − XB` (Table 11 gives `h` in units of 2⁻¹³). The sub-band
//!   signals carry one more bit than the input (15 bits).
//! * **Lower sub-band** (§6.2.1): 6-bit ADPCM. The prediction error
//!   `EL = XL − SL` (SUBTRA) is quantised by a 60-level non-uniform adaptive
//!   quantiser (QUANTL, Table 14 `Q6` scaled by `DETL`) to `IL`. Only the 4
//!   most significant bits of `IL` feed the adaptation, so a decoder that
//!   received 5 or 4 bits (modes 2 and 3) tracks the encoder: the 4-bit
//!   inverse quantiser (INVQAL, `QQ4`) gives `DLT`; the scale factor adapts
//!   in the log domain (LOGSCL: `NBL ← NBL·127/128 + WL(IL4)`, limited to
//!   0…18 432) and is turned linear by a 32-entry table (SCALEL: `ILB`); the
//!   adaptive predictor (RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA,
//!   FILTEP, FILTEZ, PREDIC) has two poles and six zeros, updated by
//!   simplified sign-sign gradient rules.
//! * **Higher sub-band** (§6.2.2): the same four blocks with a 2-bit
//!   quantiser (QUANTH, one decision level `Q2 = 564`), inverse quantiser
//!   `QQ2`, log scale factor `NBH ← NBH·127/128 + WH(IH2)` limited to
//!   0…22 528, and the same pole-zero predictor.
//! * **Decoder** (§4): the same inverse quantisers and adaptation, plus the
//!   mode-dependent lower-band inverse quantiser for the output (here
//!   `QQ6`, mode 1), the output limiters (LIMIT, ±16 384), and the receive
//!   QMF (§4.4): `xout(j) = 2 Σ h(2i)·xd(i)`, `xout(j+1) = 2 Σ h(2i+1)·xs(i)`
//!   with `xd = rL − rH`, `xs = rL + rH`.
//!
//! The arithmetic is the Recommendation's 16-bit fixed point: additions
//! saturate to 16 bits, `mult(a, b)` is `(a·b) >> 15`, and the tables are
//! the Recommendation's (Table 11 for the QMF, Table 14 for the quantisers,
//! and the tables of §6 for the adaptation and the code assignment). The
//! octet is `IH` in the two most significant bits and `IL` in the six
//! others, and RTP carries the octets as they are (RFC 3551 §4.5.2).
//!
//! Our 16-bit samples map to the Recommendation's 14-bit uniform PCM by an
//! arithmetic shift of 2 (input) and back (output).
//!
//! No ITU-T test sequences (the G.722 Appendix II digital test vectors) were
//! available when this was written, so bit-exactness against them is not
//! verified; the tests check the signal path (tone fidelity, SNR, both
//! sub-bands, silence) and the encoder/decoder tracking.

/// Transmit and receive QMF coefficients `h(0)…h(23)`, units of 2⁻¹³
/// (Table 11/G.722).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11,
    3,
];

/// Lower sub-band quantiser decision levels `Q6(1)…Q6(29)`; index 0 is the
/// lower edge of the first interval (Table 14/G.722).
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339,
    1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// 6-bit inverse quantiser outputs `QQ6(1)…QQ6(30)` (Table 14/G.722).
const QQ6: [i32; 31] = [
    0, 17, 54, 91, 130, 170, 211, 254, 300, 347, 396, 447, 501, 558, 618, 682, 750, 822, 899, 982, 1072, 1170, 1279,
    1399, 1535, 1689, 1873, 2088, 2376, 2738, 3101,
];

/// 4-bit inverse quantiser outputs `QQ4(0)…QQ4(7)` (Table 14/G.722).
const QQ4: [i32; 8] = [0, 150, 323, 530, 786, 1121, 1612, 2557];

/// Higher sub-band decision level `Q2(1)` (Table 14/G.722).
const Q2: i32 = 564;

/// 2-bit inverse quantiser outputs `QQ2(1)`, `QQ2(2)` (Table 14/G.722).
const QQ2: [i32; 3] = [0, 202, 926];

/// Lower sub-band log scale factor multipliers `WL(IL4)` (G.722 §6, LOGSCL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Higher sub-band log scale factor multipliers `WH(IH2)` (G.722 §6, LOGSCL).
const WH: [i32; 3] = [0, -214, 798];

/// Log-to-linear scale factor table `ILB(0)…ILB(31)`, 2048·2^(i/32)
/// rounded (G.722 §6, SCALEL/SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025,
    3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// 6-bit code for a positive error in interval `MIL` (1…30) (G.722 §6,
/// QUANTL's `ILP`); index 0 unused.
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34,
    33, 32,
];

/// 6-bit code for a negative error in interval `MIL` (1…30) (G.722 §6,
/// QUANTL's `ILN`); index 0 unused.
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
];

/// For each 6-bit code: (negative, interval `MIL`). The codes 0…3 that the
/// encoder never sends decode as the smallest negative level.
const IL_TO_LEVEL: [(bool, u8); 64] = {
    let mut t = [(true, 1u8); 64];
    let mut mil = 1;
    while mil <= 30 {
        t[ILP[mil] as usize] = (false, mil as u8);
        t[ILN[mil] as usize] = (true, mil as u8);
        mil += 1;
    }
    t
};

/// For each 4-bit code `RIL = IL >> 2`: (negative, `IL4`), `IL4` indexing
/// both `QQ4` and `WL` (G.722 §6, INVQAL and LOGSCL).
const RIL_TO_LEVEL: [(bool, u8); 16] = [
    (true, 0),
    (true, 7),
    (true, 6),
    (true, 5),
    (true, 4),
    (true, 3),
    (true, 2),
    (true, 1),
    (false, 7),
    (false, 6),
    (false, 5),
    (false, 4),
    (false, 3),
    (false, 2),
    (false, 1),
    (false, 0),
];

/// For each 2-bit code `IH`: (negative, `IH2`) (G.722 §6, QUANTH: `IHN`
/// = 1, 0 and `IHP` = 3, 2 for `MIH` = 1, 2).
const IH_TO_LEVEL: [(bool, u8); 4] = [(true, 2), (true, 1), (false, 2), (false, 1)];

/// Lower and higher sub-band scale factors at reset: the linear values of
/// `NBL = NBH = 0` (`ILB(0) >> 8 << 2` and `ILB(0) >> 10 << 2`).
const DETL_RESET: i32 = 32;
const DETH_RESET: i32 = 8;

/// Saturates to 16 bits.
#[inline]
fn sat(x: i32) -> i32 {
    x.clamp(-32_768, 32_767)
}

/// 16-bit saturating addition.
#[inline]
fn add(a: i32, b: i32) -> i32 {
    sat(a + b)
}

/// Fractional multiplication `(a·b) >> 15`, saturated.
#[inline]
fn mult(a: i32, b: i32) -> i32 {
    sat((a * b) >> 15)
}

/// Which sub-band a [`Band`] codes; sets the scale factor limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubBand {
    Lower,
    Higher,
}

/// The adaptive state of one sub-band: scale factor and predictor, shared by
/// encoder and decoder (blocks 3L/4L and 3H/4H).
#[derive(Debug, Clone)]
struct Band {
    which: SubBand,
    /// Log scale factor `NBL` / `NBH`.
    nb: i32,
    /// Linear scale factor `DETL` / `DETH`.
    det: i32,
    /// Predictor output `SL` / `SH` for the current sample.
    s: i32,
    /// Zero-section output `SZL` / `SZH` for the current sample.
    sz: i32,
    /// Pole coefficients `AL1`, `AL2` (index 1, 2).
    a: [i32; 3],
    /// Zero coefficients `BL1`…`BL6` (index 1…6).
    b: [i32; 7],
    /// Past quantised differences `DLT1`…`DLT6` (index 1…6).
    d: [i32; 7],
    /// Past partially reconstructed signals `PLT1`, `PLT2`.
    p: [i32; 3],
    /// Past reconstructed signals `RLT1`, `RLT2`.
    r: [i32; 3],
}

impl Band {
    fn new(which: SubBand) -> Self {
        Self {
            which,
            nb: 0,
            det: match which {
                SubBand::Lower => DETL_RESET,
                SubBand::Higher => DETH_RESET,
            },
            s: 0,
            sz: 0,
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            p: [0; 3],
            r: [0; 3],
        }
    }

    /// FILTEZ, FILTEP and PREDIC: the predictor output for the next sample.
    fn predict(&mut self) {
        // FILTEZ: SZ = Σ mult(2·DLTi, BLi).
        let mut sz = 0;
        for i in 1..=6 {
            sz = add(sz, mult(add(self.d[i], self.d[i]), self.b[i]));
        }
        // FILTEP: SP = mult(2·RLT1, AL1) + mult(2·RLT2, AL2).
        let sp = add(
            mult(add(self.r[1], self.r[1]), self.a[1]),
            mult(add(self.r[2], self.r[2]), self.a[2]),
        );
        self.sz = sz;
        // PREDIC.
        self.s = add(sp, sz);
    }

    /// Blocks 3 and 4 after a sample with quantised difference `dq` (`DLT` /
    /// `DH`) and log scale factor multiplier `w` (`WL(IL4)` / `WH(IH2)`).
    fn update(&mut self, dq: i32, w: i32) {
        // LOGSCL / LOGSCH: NB ← NB·(1 − 2⁻⁷) + W, limited.
        let nb_max = match self.which {
            SubBand::Lower => 18_432,
            SubBand::Higher => 22_528,
        };
        let nbp = add(mult(self.nb, 32_512), w).clamp(0, nb_max);
        // SCALEL / SCALEH: DET = ILB(bits 6…10 of NB) scaled by its top bits.
        let wd1 = ((nbp >> 6) & 31) as usize;
        let wd2 = nbp >> 11;
        let shift = match self.which {
            SubBand::Lower => 8 - wd2,
            SubBand::Higher => 10 - wd2,
        };
        let wd3 = if shift >= 0 {
            ILB[wd1] >> shift
        } else {
            ILB[wd1] << -shift
        };
        self.nb = nbp;
        self.det = wd3 << 2;

        // RECONS and PARREC.
        let r0 = add(self.s, dq);
        let p0 = add(self.sz, dq);

        // UPPOL2: A2 ← A2·(1 − 2⁻⁷) + 2⁻⁷·sgn(P0·P2) − 2⁻⁷·4·A1·sgn(P0·P1).
        let sg0 = p0 < 0;
        let sg1 = self.p[1] < 0;
        let sg2 = self.p[2] < 0;
        let wd1 = sat(self.a[1] << 2);
        let wd2 = sat(if sg0 == sg1 { -wd1 } else { wd1 }) >> 7;
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let apl2 = add(add(wd2, wd3), mult(self.a[2], 32_512)).clamp(-12_288, 12_288);

        // UPPOL1: A1 ← A1·(1 − 2⁻⁸) + 3·2⁻⁸·sgn(P0·P1), |A1| ≤ 1 − 2⁻⁴ − A2.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let limit = add(15_360, -apl2);
        let apl1 = add(wd1, mult(self.a[1], 32_640)).clamp(-limit, limit);

        // UPZERO: Bi ← Bi·(1 − 2⁻⁸) + 2⁻⁷·sgn(D0·Di), no step when D0 = 0.
        let step = if dq == 0 { 0 } else { 128 };
        let dsg0 = dq < 0;
        for i in 1..=6 {
            let wd2 = if dsg0 == (self.d[i] < 0) { step } else { -step };
            self.b[i] = add(wd2, mult(self.b[i], 32_640));
        }

        // DELAYA.
        self.d.copy_within(1..6, 2);
        self.d[1] = dq;
        self.a[1] = apl1;
        self.a[2] = apl2;
        self.p[2] = self.p[1];
        self.p[1] = p0;
        self.r[2] = self.r[1];
        self.r[1] = r0;

        self.predict();
    }
}

/// QUANTL: the 6-bit code of the lower sub-band error `el` (§6.2.1.1).
fn quantl(el: i32, detl: i32) -> u8 {
    let negative = el < 0;
    // Magnitude; negative values by one's complement (WD = (32767 − EL) & 32767).
    let wd = if negative { (32_767 - el) & 32_767 } else { el };
    // MIL: the interval whose decision levels (Q6(MIL−1), Q6(MIL)) · DETL
    // bracket WD; the last interval is open above.
    let mut mil = 1;
    while mil < 30 && wd >= mult(Q6[mil] << 3, detl) {
        mil += 1;
    }
    if negative {
        ILN[mil]
    } else {
        ILP[mil]
    }
}

/// INVQAL: the 4-bit inverse quantiser (`DLT`) for the code `il`.
fn invqal(il: u8, detl: i32) -> (i32, usize) {
    let (negative, il4) = RIL_TO_LEVEL[usize::from(il >> 2)];
    let wd1 = QQ4[usize::from(il4)] << 3;
    let wd2 = if negative { -wd1 } else { wd1 };
    (mult(detl, wd2), usize::from(il4))
}

/// INVQBL (mode 1): the 6-bit inverse quantiser (`DL`) for the code `il`.
fn invqbl(il: u8, detl: i32) -> i32 {
    let (negative, mil) = IL_TO_LEVEL[usize::from(il & 0x3F)];
    let wd1 = QQ6[usize::from(mil)] << 3;
    mult(detl, if negative { -wd1 } else { wd1 })
}

/// QUANTH: the 2-bit code of the higher sub-band error `eh` (§6.2.2.1).
fn quanth(eh: i32, deth: i32) -> u8 {
    let negative = eh < 0;
    let wd = if negative { (32_767 - eh) & 32_767 } else { eh };
    let mih = if wd >= mult(Q2 << 3, deth) { 2 } else { 1 };
    match (negative, mih) {
        (true, 2) => 0,
        (true, _) => 1,
        (false, 2) => 2,
        (false, _) => 3,
    }
}

/// INVQAH: the 2-bit inverse quantiser (`DH`) for the code `ih`.
fn invqah(ih: u8, deth: i32) -> (i32, usize) {
    let (negative, ih2) = IH_TO_LEVEL[usize::from(ih & 3)];
    let wd1 = QQ2[usize::from(ih2)] << 3;
    (mult(deth, if negative { -wd1 } else { wd1 }), usize::from(ih2))
}

/// A G.722 encoder: 16 kHz 16-bit PCM in, one octet per two samples out.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    /// The last 24 input samples (14-bit), newest first.
    x: [i32; 24],
    low: Band,
    high: Band,
}

impl Encoder {
    /// An encoder in the reset state.
    pub(crate) fn new() -> Self {
        Self {
            x: [0; 24],
            low: Band::new(SubBand::Lower),
            high: Band::new(SubBand::Higher),
        }
    }

    /// Encodes `pcm` (16 kHz, an even number of samples) into `out`, which
    /// must hold `pcm.len() / 2` octets.
    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut [u8]) {
        debug_assert_eq!(out.len() * 2, pcm.len());
        for (pair, octet) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            *octet = self.encode_pair(pair[0], pair[1]);
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF (§3.1).
        self.x.copy_within(0..22, 2);
        self.x[1] = i32::from(first) >> 2;
        self.x[0] = i32::from(second) >> 2;
        let (mut xa, mut xb) = (0i32, 0i32);
        for i in 0..12 {
            xa += QMF[2 * i] * self.x[2 * i];
            xb += QMF[2 * i + 1] * self.x[2 * i + 1];
        }
        let xl = sat((xa + xb) >> 12);
        let xh = sat((xa - xb) >> 12);

        // Lower sub-band: SUBTRA, QUANTL, INVQAL, adaptation.
        let el = add(xl, -self.low.s);
        let il = quantl(el, self.low.det);
        let (dlt, il4) = invqal(il, self.low.det);
        self.low.update(dlt, WL[il4]);

        // Higher sub-band: SUBTRA, QUANTH, INVQAH, adaptation.
        let eh = add(xh, -self.high.s);
        let ih = quanth(eh, self.high.det);
        let (dh, ih2) = invqah(ih, self.high.det);
        self.high.update(dh, WH[ih2]);

        (ih << 6) | il
    }
}

/// A G.722 decoder (mode 1): one octet in, two 16 kHz 16-bit samples out.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    /// Past `xd = rL − rH`, newest first.
    xd: [i32; 12],
    /// Past `xs = rL + rH`, newest first.
    xs: [i32; 12],
    low: Band,
    high: Band,
}

impl Decoder {
    /// A decoder in the reset state.
    pub(crate) fn new() -> Self {
        Self {
            xd: [0; 12],
            xs: [0; 12],
            low: Band::new(SubBand::Lower),
            high: Band::new(SubBand::Higher),
        }
    }

    /// Decodes `octets` into `pcm` (16 kHz), which must hold twice as many
    /// samples.
    pub(crate) fn decode(&mut self, octets: &[u8], pcm: &mut [i16]) {
        debug_assert_eq!(octets.len() * 2, pcm.len());
        for (&octet, pair) in octets.iter().zip(pcm.chunks_exact_mut(2)) {
            let (a, b) = self.decode_octet(octet);
            pair[0] = a;
            pair[1] = b;
        }
    }

    fn decode_octet(&mut self, octet: u8) -> (i16, i16) {
        let il = octet & 0x3F;
        let ih = octet >> 6;

        // Lower sub-band: INVQBL for the output, INVQAL for the adaptation.
        let dl = invqbl(il, self.low.det);
        let (dlt, il4) = invqal(il, self.low.det);
        let rl = add(self.low.s, dl).clamp(-16_384, 16_383);
        self.low.update(dlt, WL[il4]);

        // Higher sub-band.
        let (dh, ih2) = invqah(ih, self.high.det);
        let rh = add(self.high.s, dh).clamp(-16_384, 16_383);
        self.high.update(dh, WH[ih2]);

        // Receive QMF (§4.4).
        self.xd.copy_within(0..11, 1);
        self.xs.copy_within(0..11, 1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 0..12 {
            even += QMF[2 * i] * self.xd[i];
            odd += QMF[2 * i + 1] * self.xs[i];
        }
        let out = |v: i32| ((v >> 13).clamp(-8192, 8191) << 2) as i16;
        (out(even), out(odd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{goertzel, power};
    use std::f64::consts::PI;

    /// A sine at `dbfs` (peak relative to full scale).
    fn sine(freq: f64, dbfs: f64, n: usize) -> Vec<i16> {
        let amp = 32_767.0 * 10f64.powf(dbfs / 20.0);
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / 16_000.0).sin()).round() as i16)
            .collect()
    }

    fn codec(input: &[i16]) -> (Vec<u8>, Vec<i16>) {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut octets = vec![0u8; input.len() / 2];
        let mut output = vec![0i16; input.len()];
        // 20 ms packets.
        for ((i, o), p) in input
            .chunks(320)
            .zip(octets.chunks_mut(160))
            .zip(output.chunks_mut(320))
        {
            enc.encode(i, o);
            dec.decode(o, p);
        }
        (octets, output)
    }

    /// The codec delay and the SNR at that delay over the second half.
    fn best_snr(input: &[i16], output: &[i16]) -> (usize, f64) {
        let n = input.len();
        (0..64)
            .map(|d| {
                let (mut s, mut e) = (0.0, 0.0);
                for i in n / 2..n {
                    let x = f64::from(input[i - d]);
                    s += x * x;
                    e += (f64::from(output[i]) - x).powi(2);
                }
                (d, 10.0 * (s / e.max(1e-9)).log10())
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::NEG_INFINITY))
    }

    #[test]
    fn tables_are_consistent() {
        // ILB(i) = 2048 · 2^(i/32), rounded.
        for (i, &v) in ILB.iter().enumerate() {
            let exact = 2048.0 * 2f64.powf(i as f64 / 32.0);
            assert!((f64::from(v) - exact).abs() <= 1.0, "ILB({i})");
        }
        // Decision levels increase; each 6-bit output lies in its interval.
        for mil in 1..30 {
            assert!(Q6[mil] > Q6[mil - 1]);
            assert!(QQ6[mil] > Q6[mil - 1] && QQ6[mil] < Q6[mil], "QQ6({mil})");
        }
        assert!(QQ6[30] > Q6[29]);
        // Every interval has distinct positive and negative codes; the
        // unused codes are 0…3.
        let mut seen = [false; 64];
        for mil in 1..=30 {
            for code in [ILP[mil], ILN[mil]] {
                assert!(!seen[usize::from(code)]);
                seen[usize::from(code)] = true;
                assert_eq!(IL_TO_LEVEL[usize::from(code)].1 as usize, mil);
            }
        }
        assert_eq!(seen.iter().filter(|s| !**s).count(), 4);
        assert!(!seen[0] && !seen[1] && !seen[2] && !seen[3]);
        // The 4-bit truncation keeps the sign and a coarser magnitude: the
        // 4-bit level of a 6-bit code is never further than one 4-bit step.
        for mil in 1..=30usize {
            for (code, neg) in [(ILP[mil], false), (ILN[mil], true)] {
                let (n4, il4) = RIL_TO_LEVEL[usize::from(code >> 2)];
                if il4 != 0 {
                    assert_eq!(n4, neg, "code {code}");
                }
            }
        }
    }

    #[test]
    fn reset_scale_factors_are_the_minimum() {
        let mut band = Band::new(SubBand::Lower);
        band.update(0, WL[0]);
        assert_eq!(band.det, DETL_RESET);
        let mut band = Band::new(SubBand::Higher);
        band.update(0, WH[1]);
        assert_eq!(band.det, DETH_RESET);
        // And the maxima.
        let mut band = Band::new(SubBand::Lower);
        for _ in 0..100 {
            band.update(0, WL[7]);
        }
        assert_eq!(band.nb, 18_432);
        assert_eq!(band.det, 16_384);
        let mut band = Band::new(SubBand::Higher);
        for _ in 0..100 {
            band.update(0, WH[2]);
        }
        assert_eq!(band.nb, 22_528);
        assert_eq!(band.det, 16_384);
    }

    #[test]
    fn one_khz_sine_keeps_frequency_and_snr() {
        let input = sine(1000.0, -10.0, 16_000);
        let (_, output) = codec(&input);
        let (delay, snr) = best_snr(&input, &output);
        assert!(snr > 25.0, "SNR {snr:.1} dB at delay {delay}");
        let tail = &output[8000..];
        let tone = goertzel(tail, 16_000.0, 1000.0);
        assert!(
            tone / power(tail) > 0.99,
            "1 kHz holds {:.4} of the power",
            tone / power(tail)
        );
        // The level is kept (within 0.5 dB).
        let level = 10.0 * (power(tail) / power(&input[8000..])).log10();
        assert!(level.abs() < 0.5, "level {level:.2} dB");
    }

    #[test]
    fn five_khz_tone_goes_through_the_upper_band() {
        let input = sine(5000.0, -10.0, 16_000);
        let (octets, output) = codec(&input);
        // The upper band carries it: IH codes use both magnitudes.
        assert!(octets.iter().any(|o| o >> 6 == 0 || o >> 6 == 2));
        let tail = &output[8000..];
        let tone = goertzel(tail, 16_000.0, 5000.0);
        let alias = goertzel(tail, 16_000.0, 3000.0);
        assert!(tone / power(tail) > 0.9, "5 kHz holds {:.3}", tone / power(tail));
        assert!(10.0 * (alias / tone).log10() < -20.0);
        let level = 10.0 * (power(tail) / power(&input[8000..])).log10();
        assert!(level.abs() < 1.5, "level {level:.2} dB");
        let (_, snr) = best_snr(&input, &output);
        assert!(snr > 10.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn silence_stays_near_silent() {
        let (octets, output) = codec(&vec![0i16; 16_000]);
        let peak = output.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0);
        // A few LSBs of the 14-bit output at most (the idle lower band
        // settles on its smallest non-zero levels).
        assert!(peak <= 16, "peak {peak}");
        // With DETL at its minimum the lower band's decision levels are
        // about one LSB apart, so its idle pattern is LSB noise; the scale
        // factors stay near the bottom.
        let mut enc = Encoder::new();
        let mut idle = [0u8; 160];
        enc.encode(&[0; 320], &mut idle);
        assert_eq!(&octets[..160], &idle[..], "a fresh encoder's first packet");
        for _ in 0..50 {
            enc.encode(&[0; 320], &mut idle);
        }
        assert!(enc.low.det <= 4 * DETL_RESET && enc.high.det == DETH_RESET);
    }

    #[test]
    fn speech_like_signal_and_overload_are_stable() {
        // A chirp sweeping 100 Hz … 7 kHz, then full-scale square waves: the
        // encoder must not blow up (saturating arithmetic) and the decoder
        // must keep tracking.
        let mut input: Vec<i16> = (0..32_000)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let f = 100.0 + 3450.0 * t;
                (12_000.0 * (2.0 * PI * f * t).sin()) as i16
            })
            .collect();
        input.extend((0..8000).map(|i| if (i / 20) % 2 == 0 { i16::MAX } else { i16::MIN }));
        input.extend(sine(440.0, -6.0, 16_000));
        let (_, output) = codec(&input);
        // A broadband signal pins the delay: 22 samples for the QMF pair
        // (23-sample impulse response centre, less the one sample by which
        // an output pair starts before the input pair's second sample).
        let (delay, snr) = best_snr(&input[..32_000], &output[..32_000]);
        assert_eq!(delay, 22);
        assert!(snr > 20.0, "chirp SNR {snr:.1} dB");
        let (_, snr) = best_snr(&input[40_000..], &output[40_000..]);
        assert!(snr > 25.0, "recovered SNR {snr:.1} dB");
    }

    #[test]
    fn decoder_accepts_every_octet() {
        let octets: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let mut dec = Decoder::new();
        let mut pcm = vec![0i16; octets.len() * 2];
        dec.decode(&octets, &mut pcm);
        assert!(pcm.iter().all(|v| (-32_768..=32_764).contains(&i32::from(*v))));
    }
}
