//! confgate's conference mixer against its physical floor, side by side: same
//! run, same core, same pre-encoded input.
//!
//! **System under test**: `confgate_mixer::engine::ConferenceMixer`, driven as a
//! room drives it. Every 20 ms of simulated time each leg's RTP packet is given
//! to `push_rtp` (arrival = now, so the jitter buffer releases one packet per
//! tick), then `tick(now)` runs (jitter buffer, decoder and PCM FIFO per leg,
//! N−1 mix of the loudest 3, one encode per speaker and one shared encode per
//! codec), then `payload(id)` is read for every leg.
//!
//! **Anchor, the floor**: a plain loop on the `opus` crate (the same libopus)
//! or on a hand-written µ-law table that does only what it takes to produce the
//! same outputs: decode every payload received this tick (no jitter buffer, no
//! concealment, no resampling: µ-law is held 6× up to 48 kHz and every 6th
//! sample is taken back, no filter), rank the frames by energy and sum the
//! loudest 3 above −50 dBFS in an `i32` accumulator (no VAD), and make the same
//! encodes as ConferenceMixer: the N−1 mix of each speaker with that
//! participant's own encoder, and the shared mix once.
//!
//! **Measured**: thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) of every tick:
//! 500 ticks per system after 100 of warm-up (more than the jitter buffer's 64
//! slots, whose pages are faulted in the first time round), confgate and the
//! floor taking turns in 10 rounds of 50 ticks (each turn after one
//! unmeasured tick that refills the caches) so that a slow spell of the
//! machine falls on both; µs per participant per tick; participants one core
//! carries in real time: 20 ms ÷ that, and, for confgate, the largest N whose
//! 99th-percentile tick stays under 20 ms, found by stepping N. A breakdown
//! shows where the time goes: the floor's decode, mix and encode, and
//! confgate's public parts (`InboundAudio`, bare decoders, `JitterBuffer`,
//! `Mixer`, encoders) driven the same way and timed one by one, in the same
//! rounds. The process pins itself to core 1 and reports how busy the other
//! CPUs were (they share caches and memory with it). It asserts nothing about
//! speed. Method and the latest figures: `benches/README.md`.
//!
//! Run: `cargo bench -p confgate-suite --bench mixer` (about 3 minutes). Knobs
//! for quick runs: `MIXER_BENCH_TICKS` (500), `MIXER_BENCH_WARMUP` (100),
//! `MIXER_BENCH_CASES` (`1,2,3,4`), `MIXER_BENCH_STEP` (`1`: search the
//! largest N for confgate; `0`: no search; `both`: the floor too).

// Two system calls std does not wrap (CPU affinity, per-thread CPU clock)
// and sysconf; confined to `mod os`, each with the reason it is sound.
#![allow(unsafe_code)]

use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use mixer::codec::{self, AudioDecoder, AudioEncoder, CodecKind, EncoderOptions, MAX_PAYLOAD_SAMPLES_48K};
use mixer::engine::{ConferenceMixer, LegCodec, MAX_PAYLOAD};
use mixer::inbound::{FrameState, InboundAudio, InboundConfig};
use mixer::jitter::{JitterBuffer, JitterConfig, Popped};
use mixer::{Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};

/// One mixer tick.
const TICK: Duration = Duration::from_millis(20);
/// One mixer tick, the real-time budget of a core.
const TICK_NS: u64 = 20_000_000;
/// The core the bench runs on.
const CORE: usize = 1;
/// Distinct signals per kind (participant `i` sends signal `i % POOLS`, each
/// at its own offset).
const POOLS: usize = 8;
/// Length of a speech-like signal, in frames (5 s).
const VOICE_FRAMES: usize = 250;
/// Length of a background-noise signal, in frames (8 s: a whole number of
/// 400 ms DTX update periods).
const NOISE_FRAMES: usize = 400;
/// Opus frames encoded before a DTX stream is recorded (into DTX).
const DTX_PREROLL: usize = 50;
const OPUS_PT: u8 = 111;
const PCMU_PT: u8 = 0;
const TELEPHONE_EVENT_PT: u8 = 101;
const OPUS_COMPLEXITY: u8 = 5;
/// What confgate's Opus encoder tells libopus to expect with FEC on
/// (`codec::opus::FEC_EXPECTED_LOSS_PERCENT`, crate-private).
const FEC_LOSS_PERCENT: i32 = 10;
/// Speakers mixed (`MixerConfig::default().max_speakers`).
const SPEAKERS: usize = 3;
/// Measured ticks of the breakdown of confgate's parts (after the same
/// warm-up, in the same rounds).
const PARTS_TICKS: usize = 200;

// ---------------------------------------------------------------------------
// Input signals and pre-encoded streams.

/// xorshift32: deterministic noise.
struct XorShift(u32);

impl XorShift {
    fn new(seed: usize) -> Self {
        Self((0x2545_f491 ^ (seed as u32).wrapping_mul(0x9e37_79b9)) | 1)
    }

    /// Uniform in [−1, 1].
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        f64::from(self.0 as i32) / f64::from(i32::MAX)
    }
}

/// Speech-like signal number `v`: a harmonic series on a wandering pitch
/// (105-210 Hz depending on `v`) shaped by two moving formant-like peaks,
/// syllable-rate amplitude modulation, a little noise. Around −20 dBFS, never
/// below the mixer's −50 dBFS speech threshold: "talking" all the time.
fn voice(v: usize, frames: usize) -> Vec<Frame> {
    let vf = v as f64;
    let f0_mid = 105.0 + 15.0 * vf;
    let (f1_mid, f2_mid) = (550.0 + 40.0 * vf, 1900.0 + 90.0 * vf);
    let syllables = 3.0 + 0.35 * vf;
    let mut rng = XorShift::new(v);
    let mut phase = 0.0f64; // of the fundamental, in cycles
    (0..frames)
        .map(|k| {
            let mut f = [0i16; FRAME_SAMPLES];
            for (n, s) in f.iter_mut().enumerate() {
                let t = (k * FRAME_SAMPLES + n) as f64 / 48_000.0;
                let f0 = f0_mid * (1.0 + 0.1 * (TAU * (0.5 + 0.1 * vf) * t).sin());
                phase = (phase + f0 / 48_000.0).fract();
                let f1 = f1_mid + 250.0 * (TAU * (1.1 + 0.13 * vf) * t + vf).sin();
                let f2 = f2_mid + 500.0 * (TAU * (0.8 + 0.11 * vf) * t + 2.0 * vf).sin();
                let mut x = 0.0;
                for h in 1..=30 {
                    let fh = f0 * f64::from(h);
                    if fh > 5000.0 {
                        break;
                    }
                    let g = 1.0 / (1.0 + ((fh - f1) / 150.0).powi(2)) + 0.5 / (1.0 + ((fh - f2) / 250.0).powi(2));
                    x += g / f64::from(h).sqrt() * (TAU * phase * f64::from(h)).sin();
                }
                let envelope = 0.15 + 0.85 * (0.5 - 0.5 * (TAU * syllables * t + vf).cos());
                *s = (6000.0 * envelope * x + 100.0 * rng.next()).clamp(-32_768.0, 32_767.0) as i16;
            }
            f
        })
        .collect()
}

/// Background noise number `v`: low-passed white noise, RMS about 20
/// (−64 dBFS), under the mixer's −50 dBFS speech threshold.
fn noise(v: usize, frames: usize) -> Vec<Frame> {
    let mut rng = XorShift::new(100 + v);
    let mut lp = 0.0;
    (0..frames)
        .map(|_| {
            let mut f = [0i16; FRAME_SAMPLES];
            for s in f.iter_mut() {
                lp = 0.9 * lp + 0.1 * rng.next();
                *s = (150.0 * lp).round() as i16;
            }
            f
        })
        .collect()
}

/// One sender's payloads, one per 20 ms; `None`: nothing sent (DTX).
type Stream = Vec<Option<Vec<u8>>>;

/// confgate's encoder settings for every case (complexity 5, FEC on, libopus's
/// bitrate).
fn encoder_options() -> EncoderOptions {
    EncoderOptions {
        opus_complexity: OPUS_COMPLEXITY,
        ..EncoderOptions::default()
    }
}

/// Encodes each signal with confgate's own encoder for `kind`.
fn encode_streams(kind: CodecKind, signals: &[Vec<Frame>]) -> Result<Vec<Stream>> {
    let mut buf = vec![0u8; MAX_PAYLOAD];
    signals
        .iter()
        .map(|frames| {
            let mut enc = codec::encoder(kind, encoder_options())?;
            frames
                .iter()
                .map(|f| {
                    let len = enc.encode(f, &mut buf)?;
                    Ok(Some(buf[..len].to_vec()))
                })
                .collect()
        })
        .collect()
}

/// libopus with confgate's settings (VoIP, complexity 5, in-band FEC for 10 %
/// loss, libopus's bitrate).
fn opus_encoder(dtx: bool) -> Result<opus::Encoder> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
    enc.set_complexity(i32::from(OPUS_COMPLEXITY))?;
    enc.set_inband_fec(true)?;
    enc.set_packet_loss_perc(FEC_LOSS_PERCENT)?;
    enc.set_dtx(dtx)?;
    Ok(enc)
}

/// Encodes each signal with libopus in DTX mode, as a WebRTC sender does:
/// packets of at most 2 bytes (DTX frames) are not sent; about every 400 ms
/// a comfort-noise update is.
fn encode_dtx_streams(signals: &[Vec<Frame>]) -> Result<Vec<Stream>> {
    let mut buf = vec![0u8; MAX_PAYLOAD];
    signals
        .iter()
        .map(|frames| {
            let mut enc = opus_encoder(true)?;
            for f in frames.iter().take(DTX_PREROLL) {
                enc.encode(f, &mut buf)?;
            }
            frames
                .iter()
                .map(|f| {
                    let len = enc.encode(f, &mut buf)?;
                    Ok((len > 2).then(|| buf[..len].to_vec()))
                })
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Opus,
    Pcmu,
}

impl Codec {
    fn kind(self) -> CodecKind {
        match self {
            Self::Opus => CodecKind::Opus { channels: 1 },
            Self::Pcmu => CodecKind::Pcmu,
        }
    }

    fn payload_type(self) -> u8 {
        match self {
            Self::Opus => OPUS_PT,
            Self::Pcmu => PCMU_PT,
        }
    }
}

/// What every participant of a case sends.
struct Input {
    codec: Codec,
    talkers: Vec<Stream>,
    listeners: Vec<Stream>,
    /// Participants `0..talking` talk, the others send `listeners`; `None`:
    /// everyone talks.
    talking: Option<usize>,
}

impl Input {
    /// Participant `i`'s payload at tick `k`, if it sends one.
    fn packet(&self, i: usize, k: usize) -> Option<&[u8]> {
        let talks = self.talking.is_none_or(|t| i < t);
        let pool = if talks { &self.talkers } else { &self.listeners };
        let stream = &pool[i % pool.len()];
        let offset = i / pool.len() * 37 + i * 11;
        stream[(offset + k) % stream.len()].as_deref()
    }

    /// Share of participant-ticks with a packet, over `ticks` ticks.
    fn sent_share(&self, n: usize, ticks: usize) -> f64 {
        let sent: usize = (0..n)
            .map(|i| (0..ticks).filter(|&k| self.packet(i, k).is_some()).count())
            .sum();
        sent as f64 / (n * ticks) as f64
    }
}

/// The RTP header fields a sender puts on its packets.
#[derive(Debug, Clone, Copy, Default)]
struct Sender {
    seq: u16,
    sent_last: bool,
}

impl Sender {
    /// Sequence number, timestamp and marker of the packet of tick `k`. The
    /// marker is set on the first packet after a pause (RFC 3551 §4.1).
    fn send(&mut self, k: usize, codec: Codec) -> (u16, u32, bool) {
        let seq = self.seq;
        let marker = !self.sent_last;
        self.seq = self.seq.wrapping_add(1);
        self.sent_last = true;
        let ts = (k as u32).wrapping_mul(codec.kind().timestamp_step_20ms());
        (seq, ts, marker)
    }

    fn skip(&mut self) {
        self.sent_last = false;
    }
}

fn id(i: usize) -> InputId {
    InputId(i as u64)
}

// ---------------------------------------------------------------------------
// Measurement.

mod os {
    use std::io;

    /// Pins the calling thread to `core`.
    pub(crate) fn pin_to_core(core: usize) -> io::Result<()> {
        // SAFETY: `cpu_set_t` is plain data, so all-zero bytes are a valid
        // (empty) set; CPU_ZERO/CPU_SET write inside it (core < CPU_SETSIZE);
        // sched_setaffinity reads exactly `size_of::<cpu_set_t>()` bytes.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(core, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// CPU time of the calling thread, in ns.
    pub(crate) fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the whole call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        debug_assert_eq!(rc, 0);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Clock ticks per second of `/proc/<pid>/stat`.
    pub(crate) fn clock_ticks_per_sec() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
    }
}

/// utime + stime of this process (`/proc/self/stat` fields 14 and 15), in ns.
fn process_cpu_ns() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').context("/proc/self/stat: no ')'")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| -> Result<u64> {
        Ok(fields
            .get(n - 3)
            .with_context(|| format!("/proc/self/stat: no field {n}"))?
            .parse()?)
    };
    Ok((field(14)? + field(15)?) * 1_000_000_000 / os::clock_ticks_per_sec())
}

/// (busy, total) jiffies of every CPU (`/proc/stat`; idle and iowait are not
/// busy).
fn cpu_jiffies() -> Result<Vec<(u64, u64)>> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>()?;
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            Ok((total - idle, total))
        })
        .collect()
}

/// Per-tick CPU time of one system's measured ticks, and its measured windows
/// by two other clocks.
#[derive(Debug, Default)]
struct Timing {
    ticks: Vec<u64>,
    wall: Duration,
    /// Process CPU time over the windows (`/proc/self/stat`), in ns.
    process_ns: u64,
    /// (busy, total) jiffies of every CPU over the windows (`/proc/stat`).
    jiffies: Vec<(u64, u64)>,
}

impl Timing {
    fn mean_ns(&self) -> f64 {
        self.ticks.iter().sum::<u64>() as f64 / self.ticks.len().max(1) as f64
    }

    fn p99_ns(&self) -> u64 {
        let mut sorted = self.ticks.clone();
        sorted.sort_unstable();
        let rank = (sorted.len() * 99).div_ceil(100).max(1);
        sorted.get(rank - 1).copied().unwrap_or(0)
    }

    /// Sum of the per-tick CPU times over the process CPU time of the windows
    /// (about 1.0; the process clock counts in 10 ms ticks).
    fn thread_share(&self) -> f64 {
        self.ticks.iter().sum::<u64>() as f64 / self.process_ns.max(1) as f64
    }

    /// Process CPU over wall time: below ~0.95, something else ran on our core.
    fn cpu_share(&self) -> f64 {
        self.process_ns as f64 / self.wall.as_nanos().max(1) as f64
    }

    /// The busiest other CPU's share of the measured time spent not idle:
    /// another process there shares caches and memory with us.
    fn others_busy(&self) -> f64 {
        self.jiffies
            .iter()
            .enumerate()
            .filter(|&(cpu, _)| cpu != CORE)
            .map(|(_, &(busy, total))| busy as f64 / total.max(1) as f64)
            .fold(0.0, f64::max)
    }
}

/// One measured window: wall clock, process CPU, every CPU's jiffies.
struct Window {
    wall: Instant,
    process_ns: u64,
    jiffies: Vec<(u64, u64)>,
}

impl Window {
    fn open() -> Result<Self> {
        Ok(Self {
            wall: Instant::now(),
            process_ns: process_cpu_ns()?,
            jiffies: cpu_jiffies()?,
        })
    }

    /// Closes the window and adds it to `timing`.
    fn close_into(self, timing: &mut Timing) -> Result<()> {
        timing.wall += self.wall.elapsed();
        timing.process_ns += process_cpu_ns()?.saturating_sub(self.process_ns);
        let now = cpu_jiffies()?;
        timing.jiffies.resize(now.len(), (0, 0));
        for ((sum, &(b1, t1)), &(b0, t0)) in timing.jiffies.iter_mut().zip(&now).zip(&self.jiffies) {
            sum.0 += b1.saturating_sub(b0);
            sum.1 += t1.saturating_sub(t0);
        }
        Ok(())
    }
}

/// A system driven one 20 ms tick at a time, in simulated time.
trait System {
    /// Tick `k` (at `k` × 20 ms): this tick's packets in, the tick, the
    /// output collected. This is what is timed.
    fn tick(&mut self, input: &Input, k: usize, measured: bool) -> Result<()>;

    /// Bookkeeping after a measured tick; not timed.
    fn after_measured_tick(&mut self) {}
}

/// Drives `systems` on the same input: `warmup` ticks each, then `rounds`
/// rounds in which each system in turn runs its number of measured ticks, so
/// that a slow spell of the machine falls on all of them alike. With more
/// than one system, each turn starts with one unmeasured tick: the others
/// have just evicted its data from the caches, which no steady tick sees.
fn drive(input: &Input, systems: &mut [(&mut dyn System, usize)], warmup: usize, rounds: usize) -> Result<Vec<Timing>> {
    let mut timings: Vec<Timing> = systems.iter().map(|_| Timing::default()).collect();
    let mut next = vec![0usize; systems.len()];
    for ((system, _), k) in systems.iter_mut().zip(&mut next) {
        for _ in 0..warmup {
            system.tick(input, *k, false)?;
            *k += 1;
        }
    }
    let refill = usize::from(systems.len() > 1);
    for _ in 0..rounds {
        for (((system, per_round), k), timing) in systems.iter_mut().zip(&mut next).zip(&mut timings) {
            for _ in 0..refill {
                system.tick(input, *k, false)?;
                *k += 1;
            }
            let window = Window::open()?;
            for _ in 0..*per_round {
                let start = os::thread_cpu_ns();
                system.tick(input, *k, true)?;
                let end = os::thread_cpu_ns();
                timing.ticks.push(end - start);
                system.after_measured_tick();
                *k += 1;
            }
            window.close_into(timing)?;
        }
    }
    Ok(timings)
}

// ---------------------------------------------------------------------------
// confgate.

/// `ConferenceMixer` with one leg per participant.
struct Confgate {
    conf: ConferenceMixer,
    codec: Codec,
    senders: Vec<Sender>,
    t0: Instant,
    /// Payload bytes handed out at the last tick.
    sent: usize,
    /// Sums over the measured ticks.
    encodes: usize,
    bytes: usize,
    measured: usize,
}

impl Confgate {
    fn new(input: &Input, n: usize) -> Result<Self> {
        let codec = input.codec;
        let mut conf = ConferenceMixer::new(MixerConfig::default(), encoder_options());
        let leg = LegCodec {
            kind: codec.kind(),
            payload_type: codec.payload_type(),
            telephone_event_payload_type: Some(TELEPHONE_EVENT_PT),
        };
        for i in 0..n {
            conf.add_leg(id(i), leg)?;
        }
        Ok(Self {
            conf,
            codec,
            senders: vec![Sender::default(); n],
            t0: Instant::now(),
            sent: 0,
            encodes: 0,
            bytes: 0,
            measured: 0,
        })
    }

    /// Encodes per tick (`encodes_last_tick`), averaged over the measured ticks.
    fn encodes_per_tick(&self) -> f64 {
        self.encodes as f64 / self.measured.max(1) as f64
    }

    /// Payload bytes handed to one leg per tick, averaged.
    fn payload_bytes(&self) -> f64 {
        self.bytes as f64 / (self.measured * self.senders.len()).max(1) as f64
    }
}

impl System for Confgate {
    fn tick(&mut self, input: &Input, k: usize, _measured: bool) -> Result<()> {
        let now = self.t0 + TICK * k as u32;
        let pt = self.codec.payload_type();
        for (i, sender) in self.senders.iter_mut().enumerate() {
            match input.packet(i, k) {
                Some(payload) => {
                    let (seq, ts, marker) = sender.send(k, self.codec);
                    self.conf.push_rtp(id(i), seq, ts, marker, pt, payload, now);
                }
                None => sender.skip(),
            }
        }
        self.conf.tick(now)?;
        let mut sent = 0;
        for i in 0..self.senders.len() {
            sent += self.conf.payload(id(i)).map_or(0, <[u8]>::len);
        }
        self.sent = black_box(sent);
        Ok(())
    }

    fn after_measured_tick(&mut self) {
        self.encodes += self.conf.encodes_last_tick();
        self.bytes += self.sent;
        self.measured += 1;
    }
}

/// confgate's public parts, driven as `ConferenceMixer::tick` drives them,
/// each timed on its own (thread CPU, summed over the measured ticks).
#[derive(Debug, Default)]
struct Parts {
    ticks: usize,
    /// `InboundAudio::push_rtp` + `pull`: jitter buffer, decoder, concealment,
    /// PCM FIFO.
    inbound_ns: u64,
    /// Separate `codec::decoder`s decoding the same payloads, alone.
    decode_ns: u64,
    /// The same decoders concealing as `InboundAudio` does: a frame of
    /// `conceal` for each of the 5 ticks (100 ms) after a stream's last packet.
    conceal_ns: u64,
    /// Separate `JitterBuffer`s: `push` + `pop` until a frame is covered.
    jitter_ns: u64,
    /// `Mixer::push_frame` for every leg + `Mixer::tick`.
    mixer_ns: u64,
    /// One `codec::encoder` per speaker + the shared one.
    encode_ns: u64,
    /// Frames pulled: decoded audio, with concealment, silence.
    audio: usize,
    concealed: usize,
    silence: usize,
}

impl Parts {
    fn us_per_tick(&self, ns: u64) -> f64 {
        ns as f64 / 1e3 / self.ticks.max(1) as f64
    }
}

/// A decoder beside an `InboundAudio`, concealing by the same rule.
struct BareDecoder {
    decoder: Box<dyn AudioDecoder>,
    /// Ticks since the last decoded packet; `None` before the first.
    since: Option<usize>,
}

/// `InboundConfig::max_concealment` (100 ms) in ticks.
const CONCEAL_TICKS: usize = 5;

struct PartsSystem {
    codec: Codec,
    t0: Instant,
    inbound: Vec<InboundAudio>,
    senders: Vec<Sender>,
    decoders: Vec<BareDecoder>,
    jitter: Vec<JitterBuffer>,
    jitter_senders: Vec<Sender>,
    mix: Mixer,
    encoders: Vec<Box<dyn AudioEncoder>>,
    shared: Box<dyn AudioEncoder>,
    frames: Vec<Frame>,
    scratch: Vec<i16>,
    payload: Vec<u8>,
    parts: Parts,
}

impl PartsSystem {
    fn new(input: &Input, n: usize) -> Result<Self> {
        let codec = input.codec;
        let kind = codec.kind();
        let mut s = Self {
            codec,
            t0: Instant::now(),
            inbound: Vec::with_capacity(n),
            senders: vec![Sender::default(); n],
            decoders: Vec::with_capacity(n),
            jitter: Vec::with_capacity(n),
            jitter_senders: vec![Sender::default(); n],
            mix: Mixer::new(MixerConfig::default()),
            encoders: Vec::with_capacity(n),
            shared: codec::encoder(kind, encoder_options())?,
            frames: vec![[0i16; FRAME_SAMPLES]; n],
            scratch: vec![0i16; MAX_PAYLOAD_SAMPLES_48K],
            payload: vec![0u8; MAX_PAYLOAD],
            parts: Parts::default(),
        };
        for i in 0..n {
            let mut config = InboundConfig::new(codec.payload_type());
            config.telephone_event_payload_type = Some(TELEPHONE_EVENT_PT);
            s.inbound.push(InboundAudio::new(config, codec::decoder(kind)?));
            s.decoders.push(BareDecoder {
                decoder: codec::decoder(kind)?,
                since: None,
            });
            s.jitter
                .push(JitterBuffer::new(JitterConfig::new(kind.rtp_clock_rate())));
            s.encoders.push(codec::encoder(kind, encoder_options())?);
            s.mix.add_input(id(i));
        }
        Ok(s)
    }
}

impl System for PartsSystem {
    fn tick(&mut self, input: &Input, k: usize, measured: bool) -> Result<()> {
        let codec = self.codec;
        let step = codec.kind().timestamp_step_20ms();
        let now = self.t0 + TICK * k as u32;
        let parts = &mut self.parts;
        let a = os::thread_cpu_ns();
        let legs = self.inbound.iter_mut().zip(&mut self.senders).zip(&mut self.frames);
        for (i, ((leg, sender), frame)) in legs.enumerate() {
            match input.packet(i, k) {
                Some(p) => {
                    let (seq, ts, marker) = sender.send(k, codec);
                    leg.push_rtp(seq, ts, marker, codec.payload_type(), p, now);
                }
                None => sender.skip(),
            }
            let state = leg.pull(now, frame);
            if measured {
                match state {
                    FrameState::Audio => parts.audio += 1,
                    FrameState::Concealed => parts.concealed += 1,
                    FrameState::Silence => parts.silence += 1,
                }
            }
        }
        let b = os::thread_cpu_ns();
        for (i, bare) in self.decoders.iter_mut().enumerate() {
            if let Some(p) = input.packet(i, k) {
                black_box(bare.decoder.decode(p, &mut self.scratch)?);
                bare.since = Some(0);
            }
        }
        let c = os::thread_cpu_ns();
        for bare in &mut self.decoders {
            if let Some(since) = &mut bare.since {
                if *since > 0 && *since <= CONCEAL_TICKS {
                    black_box(bare.decoder.conceal(FRAME_SAMPLES, &mut self.scratch));
                }
                *since += 1;
            }
        }
        let d = os::thread_cpu_ns();
        for (i, (buffer, sender)) in self.jitter.iter_mut().zip(&mut self.jitter_senders).enumerate() {
            match input.packet(i, k) {
                Some(p) => {
                    let (seq, ts, marker) = sender.send(k, codec);
                    buffer.push(seq, ts, marker, p, now);
                }
                None => sender.skip(),
            }
            let mut covered = 0;
            while covered < step {
                match buffer.pop(now) {
                    Popped::Packet(_) => {
                        buffer.set_packet_duration(step);
                        covered += step;
                    }
                    Popped::Lost { duration } => covered += duration.max(1),
                    Popped::Nothing => break,
                }
            }
        }
        let e = os::thread_cpu_ns();
        for (i, frame) in self.frames.iter().enumerate() {
            self.mix.push_frame(id(i), frame);
        }
        self.mix.tick();
        let f = os::thread_cpu_ns();
        let mut shared_used = false;
        for (i, enc) in self.encoders.iter_mut().enumerate() {
            if self.mix.hears_shared_mix(id(i)) {
                shared_used = true;
            } else if let Some(out) = self.mix.output(id(i)) {
                black_box(enc.encode(out, &mut self.payload)?);
            }
        }
        if shared_used {
            black_box(self.shared.encode(self.mix.shared_mix(), &mut self.payload)?);
        }
        let g = os::thread_cpu_ns();
        if measured {
            parts.ticks += 1;
            parts.inbound_ns += b - a;
            parts.decode_ns += c - b;
            parts.conceal_ns += d - c;
            parts.jitter_ns += e - d;
            parts.mixer_ns += f - e;
            parts.encode_ns += g - f;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The floor.

/// µ-law (G.711 Table 2) as 16-bit linear samples, Sun's reference algorithm:
/// a 256-entry decoding table and a 16 384-entry encoding table indexed by the
/// top 14 bits of the sample.
struct Ulaw {
    decode: [i16; 256],
    encode: Vec<u8>,
}

impl Ulaw {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;

    fn compress(pcm: i16) -> u8 {
        let x = i32::from(pcm);
        let (sign, mag) = if x < 0 { (0x80, -x) } else { (0, x) };
        let biased = mag.min(Self::CLIP) + Self::BIAS;
        let exponent = 31 - biased.leading_zeros() as i32 - 7;
        let mantissa = (biased >> (exponent + 3)) & 0x0F;
        !((sign | (exponent << 4) | mantissa) as u8)
    }

    fn expand(code: u8) -> i16 {
        let u = !code;
        let exponent = i32::from((u >> 4) & 0x07);
        let mantissa = i32::from(u & 0x0F);
        let mag = (((mantissa << 3) + Self::BIAS) << exponent) - Self::BIAS;
        (if u & 0x80 != 0 { -mag } else { mag }) as i16
    }

    fn new() -> Result<Self> {
        let mut decode = [0i16; 256];
        for (code, d) in decode.iter_mut().enumerate() {
            *d = Self::expand(code as u8);
        }
        let encode: Vec<u8> = (0..1u32 << 14)
            .map(|top| Self::compress(((top << 2) as u16) as i16))
            .collect();
        let t = Self { decode, encode };
        // Every code but −0 (0x7F, decoded as 0 and encoded as +0) survives.
        for code in 0..=255u8 {
            if code != 0x7F && t.encode_one(t.decode[usize::from(code)]) != code {
                bail!("µ-law table: code {code:#04x} does not round-trip");
            }
        }
        Ok(t)
    }

    fn encode_one(&self, s: i16) -> u8 {
        self.encode[usize::from((s >> 2) as u16 & 0x3FFF)]
    }
}

enum FloorCodec {
    /// One mono decoder per participant; one encoder per participant (its
    /// N−1 mix when it speaks) and the shared one last.
    Opus {
        decoders: Vec<opus::Decoder>,
        encoders: Vec<opus::Encoder>,
    },
    Pcmu(Box<Ulaw>),
}

struct Floor {
    codec: FloorCodec,
    frames: Vec<Frame>,
    received: Vec<bool>,
    /// (energy, participant) of this tick's speakers, loudest first.
    top: Vec<(u64, usize)>,
    acc: Box<[i32; FRAME_SAMPLES]>,
    /// The shared mix, then each speaker's N−1 mix.
    outs: Vec<Frame>,
    payload: Vec<u8>,
    /// Energy (sum of squares) of a frame at −50 dBFS RMS.
    threshold: u64,
    /// Sums over the measured ticks.
    phases: FloorPhases,
}

/// CPU time of the floor's phases over the measured ticks, in ns.
#[derive(Debug, Default, Clone, Copy)]
struct FloorPhases {
    ticks: usize,
    decode: u64,
    mix: u64,
    encode: u64,
    encodes: usize,
}

impl FloorPhases {
    fn us_per_tick(&self, ns: u64) -> f64 {
        ns as f64 / 1e3 / self.ticks.max(1) as f64
    }
}

impl Floor {
    fn new(codec: Codec, n: usize) -> Result<Self> {
        let codec = match codec {
            Codec::Opus => FloorCodec::Opus {
                decoders: (0..n)
                    .map(|_| opus::Decoder::new(48_000, opus::Channels::Mono))
                    .collect::<Result<_, _>>()?,
                encoders: (0..=n).map(|_| opus_encoder(false)).collect::<Result<_>>()?,
            },
            Codec::Pcmu => FloorCodec::Pcmu(Box::new(Ulaw::new()?)),
        };
        let full_scale_energy = FRAME_SAMPLES as f64 * 32_768.0 * 32_768.0;
        Ok(Self {
            codec,
            frames: vec![[0; FRAME_SAMPLES]; n],
            received: vec![false; n],
            top: Vec::with_capacity(SPEAKERS + 1),
            acc: Box::new([0; FRAME_SAMPLES]),
            outs: vec![[0; FRAME_SAMPLES]; SPEAKERS + 1],
            payload: vec![0; MAX_PAYLOAD],
            threshold: (full_scale_energy * 1e-5) as u64,
            phases: FloorPhases::default(),
        })
    }

    /// One tick: the CPU time of each phase, the number of encodes.
    fn run(&mut self, input: &Input, k: usize) -> Result<([u64; 3], usize)> {
        let t0 = os::thread_cpu_ns();
        // 1. Decode what arrived.
        let frames = self.frames.iter_mut().zip(self.received.iter_mut()).enumerate();
        match &mut self.codec {
            FloorCodec::Opus { decoders, .. } => {
                for ((i, (frame, received)), dec) in frames.zip(decoders.iter_mut()) {
                    *received = match input.packet(i, k) {
                        Some(p) => dec.decode(p, frame, false)? == FRAME_SAMPLES,
                        None => false,
                    };
                }
            }
            FloorCodec::Pcmu(ulaw) => {
                for (i, (frame, received)) in frames {
                    *received = match input.packet(i, k) {
                        Some(p) => {
                            for (six, &code) in frame.chunks_exact_mut(6).zip(p) {
                                six.fill(ulaw.decode[usize::from(code)]);
                            }
                            true
                        }
                        None => false,
                    };
                }
            }
        }
        let t1 = os::thread_cpu_ns();
        // 2. The loudest 3 above the threshold, their sum, the N−1 mixes.
        self.top.clear();
        for (i, (frame, _)) in self
            .frames
            .iter()
            .zip(&self.received)
            .enumerate()
            .filter(|(_, (_, &r))| r)
        {
            let energy: u64 = frame.iter().map(|&s| (i64::from(s) * i64::from(s)) as u64).sum();
            if energy <= self.threshold {
                continue;
            }
            let at = self.top.partition_point(|&(e, _)| e >= energy);
            if at < SPEAKERS {
                self.top.truncate(SPEAKERS - 1);
                self.top.insert(at, (energy, i));
            }
        }
        self.acc.fill(0);
        for &(_, i) in &self.top {
            for (a, &s) in self.acc.iter_mut().zip(&self.frames[i]) {
                *a += i32::from(s);
            }
        }
        let (shared, own) = self.outs.split_at_mut(1);
        for (o, &a) in shared[0].iter_mut().zip(self.acc.iter()) {
            *o = a.clamp(-32_768, 32_767) as i16;
        }
        for (out, &(_, i)) in own.iter_mut().zip(&self.top) {
            for ((o, &a), &s) in out.iter_mut().zip(self.acc.iter()).zip(&self.frames[i]) {
                *o = (a - i32::from(s)).clamp(-32_768, 32_767) as i16;
            }
        }
        let t2 = os::thread_cpu_ns();
        // 3. Each speaker's N−1 mix with its own encoder; the shared mix once
        // if anyone else listens.
        let n = self.frames.len();
        let shared_used = n > self.top.len();
        let mut encodes = 0;
        match &mut self.codec {
            FloorCodec::Opus { encoders, .. } => {
                for (out, &(_, i)) in own.iter().zip(&self.top) {
                    black_box(encoders[i].encode(out, &mut self.payload)?);
                    encodes += 1;
                }
                if shared_used {
                    black_box(encoders[n].encode(&shared[0], &mut self.payload)?);
                    encodes += 1;
                }
            }
            FloorCodec::Pcmu(ulaw) => {
                let outs = own[..self.top.len()].iter().chain(shared_used.then_some(&shared[0]));
                for out in outs {
                    for (o, &s) in self.payload[..FRAME_SAMPLES / 6].iter_mut().zip(out.iter().step_by(6)) {
                        *o = ulaw.encode_one(s);
                    }
                    black_box(&self.payload);
                    encodes += 1;
                }
            }
        }
        let t3 = os::thread_cpu_ns();
        Ok(([t1 - t0, t2 - t1, t3 - t2], encodes))
    }
}

impl System for Floor {
    fn tick(&mut self, input: &Input, k: usize, measured: bool) -> Result<()> {
        let ([decode, mix, encode], encodes) = self.run(input, k)?;
        if measured {
            let p = &mut self.phases;
            p.ticks += 1;
            p.decode += decode;
            p.mix += mix;
            p.encode += encode;
            p.encodes += encodes;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The largest N in real time.

/// Warm-up and measured ticks of one probe of the search for the largest N.
/// confgate's warm-up covers the jitter buffer's 64 slots (their pages are
/// faulted in the first time round); the floor has no such buffers.
const PROBE_WARMUP_CONFGATE: usize = 70;
const PROBE_WARMUP_FLOOR: usize = 20;
const PROBE_TICKS: usize = 100;
/// The search stops here (the G.711 floor would otherwise only measure memory
/// bandwidth, 50 000 frames of 48 kHz PCM per tick).
const MAX_SEARCH_N: usize = 20_000;

/// The result of a search for the largest N.
#[derive(Debug, Clone, Copy)]
struct LargestN {
    n: usize,
    p99_ns: u64,
    /// The search stopped at [`MAX_SEARCH_N`].
    capped: bool,
    probes: usize,
    /// Over all probes: the busiest any other CPU was in a probe, and our
    /// lowest share of our core (process CPU / wall).
    others_busy: f64,
    cpu_share: f64,
}

/// The largest N whose p99 tick CPU time stays under 20 ms. Starts at
/// `guess`, steps by 5 % until the verdict flips, then bisects to 3 %. A
/// failing N is probed once more and the better p99 kept: a burst from the
/// host (other virtual machines) should not decide alone.
fn largest_n(label: &str, guess: usize, mut run: impl FnMut(usize) -> Result<Timing>) -> Result<LargestN> {
    let mut found = LargestN {
        n: 0,
        p99_ns: 0,
        capped: false,
        probes: 0,
        others_busy: 0.0,
        cpu_share: f64::MAX,
    };
    let mut fits = |n: usize, found: &mut LargestN| -> Result<(bool, u64)> {
        let mut best = u64::MAX;
        for _ in 0..2 {
            let t = run(n)?;
            let p99 = t.p99_ns();
            eprintln!(
                "    {label}: N = {n:5}, mean tick {:6.2} ms, p99 {:6.2} ms (other CPUs busy {:3.0} %, our CPU/wall {:.2})",
                t.mean_ns() / 1e6,
                p99 as f64 / 1e6,
                100.0 * t.others_busy(),
                t.cpu_share()
            );
            found.probes += 1;
            found.others_busy = found.others_busy.max(t.others_busy());
            found.cpu_share = found.cpu_share.min(t.cpu_share());
            best = best.min(p99);
            if p99 <= TICK_NS {
                break;
            }
        }
        Ok((best <= TICK_NS, best))
    };
    let mut n = guess.clamp(4, MAX_SEARCH_N);
    let (ok, p99) = fits(n, &mut found)?;
    let mut pass = (0, p99);
    let mut fail;
    if ok {
        pass = (n, p99);
        loop {
            if n == MAX_SEARCH_N {
                found.capped = true;
                fail = n;
                break;
            }
            n = ((n as f64 * 1.05).ceil() as usize).min(MAX_SEARCH_N);
            let (ok, p99) = fits(n, &mut found)?;
            if !ok {
                fail = n;
                break;
            }
            pass = (n, p99);
        }
    } else {
        fail = n;
        while n > 4 {
            n = ((n as f64 * 0.95) as usize).max(4);
            let (ok, p99) = fits(n, &mut found)?;
            if ok {
                pass = (n, p99);
                break;
            }
            fail = n;
        }
    }
    while pass.0 > 0 && fail > pass.0 && fail - pass.0 > (pass.0 * 3 / 100).max(1) {
        n = (pass.0 + fail) / 2;
        let (ok, p99) = fits(n, &mut found)?;
        if ok {
            pass = (n, p99);
        } else {
            fail = n;
        }
    }
    found.n = pass.0;
    found.p99_ns = pass.1;
    Ok(found)
}

/// A first guess for the search: the N at which the mean tick would take 95 %
/// of 20 ms, from a cost of `fixed_us` per tick plus the rest per participant.
fn guess_n(mean_ns: f64, fixed_us: f64, n: usize) -> usize {
    let per_leg = ((mean_ns / 1e3 - fixed_us) / n as f64).max(0.01);
    ((0.95 * TICK_NS as f64 / 1e3 - fixed_us) / per_leg).max(4.0) as usize
}

// ---------------------------------------------------------------------------
// Cases and report.

struct Case {
    number: usize,
    label: &'static str,
    n: usize,
    /// Product owner's target, participants per core.
    target: usize,
    input: Input,
}

struct Row<'a> {
    case: &'a Case,
    confgate: Timing,
    floor: Timing,
    encodes: f64,
    payload_bytes: f64,
    phases: FloorPhases,
    parts: Parts,
    sent_share: f64,
    confgate_max: Option<LargestN>,
    floor_max: Option<LargestN>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    Off,
    Confgate,
    Both,
}

struct Settings {
    warmup: usize,
    ticks: usize,
    cases: Vec<usize>,
    search: Search,
}

/// Rounds in which confgate, the floor and the breakdown take turns.
const ROUNDS: usize = 10;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Self> {
        let cases = match std::env::var("MIXER_BENCH_CASES") {
            Ok(v) => v
                .split(',')
                .map(|c| c.trim().parse().with_context(|| format!("MIXER_BENCH_CASES={v}")))
                .collect::<Result<_>>()?,
            Err(_) => vec![1, 2, 3, 4],
        };
        let search = match std::env::var("MIXER_BENCH_STEP").as_deref() {
            Ok("0") => Search::Off,
            Ok("both") => Search::Both,
            Ok("1") | Err(_) => Search::Confgate,
            Ok(other) => bail!("MIXER_BENCH_STEP={other}: 0, 1 or both"),
        };
        let ticks = env_usize("MIXER_BENCH_TICKS", 500)?.max(ROUNDS);
        Ok(Self {
            warmup: env_usize("MIXER_BENCH_WARMUP", 100)?,
            ticks: ticks.div_ceil(ROUNDS) * ROUNDS,
            cases,
            search,
        })
    }
}

/// µs per participant per tick from a mean tick time in ns.
fn per_participant_us(mean_ns: f64, n: usize) -> f64 {
    mean_ns / 1e3 / n as f64
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} (family {}, model {}), {} online CPUs",
        field("model name"),
        field("cpu family"),
        field("model"),
        info.lines().filter(|l| l.starts_with("processor")).count()
    )
}

/// Today's date (UTC), `YYYY-MM-DD` (H. Hinnant's `civil_from_days`).
fn utc_date() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn fmt_max(max: Option<LargestN>) -> String {
    match max {
        Some(m) if m.capped => format!("≥ {} (search cap)", m.n),
        Some(m) if m.n == 0 => "< 4".into(),
        Some(m) => format!("{} (p99 {:.1} ms)", m.n, m.p99_ns as f64 / 1e6),
        None => "not searched".into(),
    }
}

fn report(rows: &[Row<'_>], settings: &Settings) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} · {} · `cargo bench -p confgate-suite --bench mixer` · thread CPU time per tick; {} measured ticks \
         per system after {} of warm-up, in {ROUNDS} interleaved rounds; core {CORE}\n",
        utc_date(),
        cpu_model(),
        settings.ticks,
        settings.warmup
    );
    let _ = writeln!(
        s,
        "| case | N | confgate µs/participant/tick | floor µs/participant/tick | ratio | confgate participants/core \
         (20 ms ÷ µs) | floor participants/core (20 ms ÷ µs) | confgate largest N, p99 tick < 20 ms | floor largest N, \
         p99 tick < 20 ms | target/core |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let n = r.case.n;
        let c = per_participant_us(r.confgate.mean_ns(), n);
        let f = per_participant_us(r.floor.mean_ns(), n);
        let _ = writeln!(
            s,
            "| {}. {} | {n} | {c:.2} | {f:.2} | {:.1}× | {:.0} | {:.0} | {} | {} | ≥ {} |",
            r.case.number,
            r.case.label,
            c / f,
            20_000.0 / c,
            20_000.0 / f,
            fmt_max(r.confgate_max),
            fmt_max(r.floor_max),
            r.case.target,
        );
    }
    let _ = writeln!(
        s,
        "\nWhere the time goes, µs per tick for the whole conference (mean; confgate's parts from a separate \
         driver of its public pieces, {} ticks):\n",
        rows.first().map_or(0, |r| r.parts.ticks)
    );
    let _ = writeln!(
        s,
        "| case | N | floor: decode | mix | encode (encodes) | tick | confgate: decode | conceal | jitter buffer | \
         rest of `InboundAudio` (PCM FIFO…) | `Mixer` | encode (encodes) | rest of `ConferenceMixer` | tick |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let (f, p) = (&r.phases, &r.parts);
        let total = r.confgate.mean_ns() / 1e3;
        let inbound_rest = p.us_per_tick(p.inbound_ns) - p.us_per_tick(p.decode_ns + p.conceal_ns + p.jitter_ns);
        let engine_rest = total - p.us_per_tick(p.inbound_ns + p.mixer_ns + p.encode_ns);
        let _ = writeln!(
            s,
            "| {}. | {} | {:.0} | {:.0} | {:.0} ({:.1}) | **{:.0}** | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | \
             {:.0} ({:.1}) | {:.0} | **{:.0}** |",
            r.case.number,
            r.case.n,
            f.us_per_tick(f.decode),
            f.us_per_tick(f.mix),
            f.us_per_tick(f.encode),
            f.encodes as f64 / f.ticks.max(1) as f64,
            r.floor.mean_ns() / 1e3,
            p.us_per_tick(p.decode_ns),
            p.us_per_tick(p.conceal_ns),
            p.us_per_tick(p.jitter_ns),
            inbound_rest,
            p.us_per_tick(p.mixer_ns),
            p.us_per_tick(p.encode_ns),
            r.encodes,
            engine_rest,
            total,
        );
    }
    let _ = writeln!(s, "\nChecks:\n");
    for r in rows {
        let p = &r.parts;
        let frames = (p.audio + p.concealed + p.silence).max(1) as f64;
        let (mut others, mut share) = (
            r.confgate.others_busy().max(r.floor.others_busy()),
            r.confgate.cpu_share().min(r.floor.cpu_share()),
        );
        let mut probes = 0;
        for m in [r.confgate_max, r.floor_max].into_iter().flatten() {
            others = others.max(m.others_busy);
            share = share.min(m.cpu_share);
            probes += m.probes;
        }
        let _ = writeln!(
            s,
            "- case {}: packets sent in {:.1} % of participant-ticks; confgate's frames: audio {:.1} %, concealed \
             {:.1} %, silence {:.1} %; {:.1} payload bytes per leg per tick; p99 tick {:.2} ms (confgate), {:.2} ms \
             (floor); per-tick CPU sum / process CPU {:.2} (confgate), {:.2} (floor); {probes} search probes; \
             interference over every window of the case: other CPUs at most {:.0} % busy, our CPU/wall at least {:.2}",
            r.case.number,
            100.0 * r.sent_share,
            100.0 * p.audio as f64 / frames,
            100.0 * p.concealed as f64 / frames,
            100.0 * p.silence as f64 / frames,
            r.payload_bytes,
            r.confgate.p99_ns() as f64 / 1e6,
            r.floor.p99_ns() as f64 / 1e6,
            r.confgate.thread_share(),
            r.floor.thread_share(),
            100.0 * others,
            share,
        );
    }
    s
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    match os::pin_to_core(CORE) {
        Ok(()) => eprintln!("pinned to core {CORE}"),
        Err(e) => eprintln!("warning: cannot pin to core {CORE} ({e}); running unpinned"),
    }

    eprintln!("encoding the input streams (not timed)…");
    let voices: Vec<Vec<Frame>> = (0..POOLS).map(|v| voice(v, VOICE_FRAMES)).collect();
    let noises: Vec<Vec<Frame>> = (0..POOLS).map(|v| noise(v, NOISE_FRAMES)).collect();
    let opus = Codec::Opus.kind();
    let opus_voices = encode_streams(opus, &voices)?;
    let pcmu_voices = encode_streams(Codec::Pcmu.kind(), &voices)?;
    let opus_noise = encode_streams(opus, &noises)?;
    let opus_dtx = encode_dtx_streams(&noises)?;

    let all_cases = [
        Case {
            number: 1,
            label: "Opus 48 kHz c5, all talking",
            n: 100,
            target: 100,
            input: Input {
                codec: Codec::Opus,
                talkers: opus_voices.clone(),
                listeners: Vec::new(),
                talking: None,
            },
        },
        Case {
            number: 2,
            label: "G.711 µ-law, all talking",
            n: 1000,
            target: 1000,
            input: Input {
                codec: Codec::Pcmu,
                talkers: pcmu_voices,
                listeners: Vec::new(),
                talking: None,
            },
        },
        Case {
            number: 3,
            label: "Opus, 3 talking, rest DTX (background noise)",
            n: 500,
            target: 500,
            input: Input {
                codec: Codec::Opus,
                talkers: opus_voices.clone(),
                listeners: opus_dtx,
                talking: Some(3),
            },
        },
        Case {
            number: 4,
            label: "Opus, 3 talking, rest background noise without DTX",
            n: 500,
            target: 500,
            input: Input {
                codec: Codec::Opus,
                talkers: opus_voices,
                listeners: opus_noise,
                talking: Some(3),
            },
        },
    ];
    let cases: Vec<&Case> = all_cases
        .iter()
        .filter(|c| settings.cases.contains(&c.number))
        .collect();
    if cases.is_empty() {
        bail!("MIXER_BENCH_CASES selects no case (1-4)");
    }

    let per_round = settings.ticks / ROUNDS;
    let parts_per_round = (PARTS_TICKS.min(settings.ticks) / ROUNDS).max(1);
    let mut rows = Vec::new();
    for case in cases {
        let (input, n) = (&case.input, case.n);
        eprintln!("case {}: {} (N = {n})", case.number, case.label);
        let mut confgate = Confgate::new(input, n)?;
        let mut floor = Floor::new(input.codec, n)?;
        let mut parts = PartsSystem::new(input, n)?;
        let mut timings = drive(
            input,
            &mut [
                (&mut confgate, per_round),
                (&mut floor, per_round),
                (&mut parts, parts_per_round),
            ],
            settings.warmup,
            ROUNDS,
        )?
        .into_iter();
        let (Some(confgate_timing), Some(floor_timing)) = (timings.next(), timings.next()) else {
            bail!("drive returned too few timings");
        };
        eprintln!(
            "  confgate {:.2} µs/participant/tick, floor {:.2}",
            per_participant_us(confgate_timing.mean_ns(), n),
            per_participant_us(floor_timing.mean_ns(), n)
        );
        let (mut confgate_max, mut floor_max) = (None, None);
        if settings.search != Search::Off {
            let fixed = parts.parts.us_per_tick(parts.parts.encode_ns);
            let guess = guess_n(confgate_timing.mean_ns(), fixed, n);
            confgate_max = Some(largest_n("confgate", guess, |n| {
                let mut c = Confgate::new(input, n)?;
                let mut t = drive(input, &mut [(&mut c, PROBE_TICKS)], PROBE_WARMUP_CONFGATE, 1)?;
                t.pop().context("no timing")
            })?);
        }
        if settings.search == Search::Both {
            let fixed = floor.phases.us_per_tick(floor.phases.encode);
            let guess = guess_n(floor_timing.mean_ns(), fixed, n);
            floor_max = Some(largest_n("floor", guess, |n| {
                let mut f = Floor::new(input.codec, n)?;
                let mut t = drive(input, &mut [(&mut f, PROBE_TICKS)], PROBE_WARMUP_FLOOR, 1)?;
                t.pop().context("no timing")
            })?);
        }
        rows.push(Row {
            case,
            sent_share: input.sent_share(n, settings.ticks),
            encodes: confgate.encodes_per_tick(),
            payload_bytes: confgate.payload_bytes(),
            confgate: confgate_timing,
            floor: floor_timing,
            phases: floor.phases,
            parts: parts.parts,
            confgate_max,
            floor_max,
        });
    }
    println!("{}", report(&rows, &settings));
    Ok(())
}
