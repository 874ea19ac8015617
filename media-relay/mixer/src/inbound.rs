//! One participant's incoming RTP audio, turned into one 20 ms frame per tick.
//!
//! [`InboundAudio`] chains a [`JitterBuffer`], the stream's
//! [`AudioDecoder`] and a small PCM FIFO, and routes RFC 4733
//! telephone-event packets of the same RTP stream to a [`DtmfDetector`].
//!
//! # Model
//!
//! * [`InboundAudio::push_rtp`] takes each received packet of the stream
//!   (already parsed and, if need be, SRTP-decrypted): the audio payload type
//!   goes to the jitter buffer; the telephone-event payload type (if
//!   configured) to the DTMF detector; any other payload type (comfort noise,
//!   a codec not negotiated) is counted and dropped. Every non-audio packet
//!   still tells the jitter buffer that its sequence number was used, so the
//!   gap it leaves in the audio is not taken for a loss.
//! * [`InboundAudio::pull`] is called every 20 ms and always produces exactly
//!   one frame ([`FRAME_SAMPLES`] samples at 48 kHz), whatever the sender's
//!   packet time: it pops packets until the FIFO holds a frame, decodes each
//!   packet exactly once (a 60 ms packet feeds three frames), conceals lost
//!   audio with the decoder's [`AudioDecoder::conceal`], and says what the
//!   frame is made of ([`FrameState`]).
//! * Concealment is bounded: after [`InboundConfig::max_concealment`]
//!   (100 ms) without decoded audio, the output is silence until audio comes
//!   back. A stream that has not produced audio yet is silence.
//! * Key presses come out of [`InboundAudio::poll_dtmf`]; drain it after
//!   every `push_rtp` and `pull` (it holds at most 8, dropping the oldest).
//!
//! # Invariants
//!
//! * No allocation after [`InboundAudio::new`]: the jitter buffer's slots,
//!   the FIFO (which the decoder writes into) and the DTMF queue are
//!   allocated there (the decoder itself must not allocate per packet
//!   either).
//! * The FIFO never holds more than one packet's audio plus a frame.
//! * Deterministic: no clock is read; time comes in as arguments.

use std::time::{Duration, Instant};

use crate::codec::{AudioDecoder, CodecKind, MAX_PAYLOAD_SAMPLES_48K};
use crate::dtmf::{DtmfDetector, DtmfEvent, DtmfStats};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Popped, PushOutcome};
use crate::{Frame, FRAME_SAMPLES, SAMPLE_RATE};

/// Room in the PCM FIFO: the longest payload plus two frames.
const FIFO_CAPACITY: usize = MAX_PAYLOAD_SAMPLES_48K + 2 * FRAME_SAMPLES;
/// Key presses held for [`InboundAudio::poll_dtmf`].
const DTMF_QUEUE: usize = 8;

/// Configuration of an [`InboundAudio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundConfig {
    /// RTP payload type of the audio codec (the decoder's).
    pub payload_type: u8,
    /// RTP payload type of RFC 4733 telephone events, if negotiated.
    pub telephone_event_payload_type: Option<u8>,
    /// Clock rate of the telephone events (`telephone-event/8000`); `None`:
    /// the audio codec's RTP clock rate.
    pub telephone_event_clock_rate: Option<u32>,
    /// The jitter buffer's configuration; its `clock_rate` is replaced by the
    /// decoder's RTP clock rate.
    pub jitter: JitterConfig,
    /// Longest concealment before the output turns to silence (default
    /// 100 ms).
    pub max_concealment: Duration,
}

impl InboundConfig {
    /// Defaults for an audio payload type, without telephone events.
    pub fn new(payload_type: u8) -> Self {
        Self {
            payload_type,
            telephone_event_payload_type: None,
            telephone_event_clock_rate: None,
            jitter: JitterConfig::default(),
            max_concealment: Duration::from_millis(100),
        }
    }
}

/// What a frame from [`InboundAudio::pull`] is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameState {
    /// Decoded audio only.
    Audio,
    /// Some or all of it is concealment of lost or late audio.
    Concealed,
    /// Silence: nothing received yet, the sender is silent (discontinuous
    /// transmission), or the loss outlasted the concealment limit.
    Silence,
}

/// Where [`InboundAudio::push_rtp`] sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RtpOutcome {
    /// Audio: what the jitter buffer did with it.
    Audio(PushOutcome),
    /// An RFC 4733 telephone event, given to the DTMF detector.
    TelephoneEvent,
    /// Neither payload type: counted and dropped.
    UnknownPayloadType,
}

/// Counters of one inbound stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InboundStats {
    /// Audio packets received (the audio payload type).
    pub packets: u64,
    /// Audio packets never received in time (jitter buffer).
    pub lost: u64,
    /// Audio packets received after their playout time (jitter buffer).
    pub late: u64,
    /// Duplicate audio packets (jitter buffer).
    pub duplicates: u64,
    /// Audio packets dropped to keep the jitter buffer bounded.
    pub overflow: u64,
    /// Packets decoded.
    pub decoded: u64,
    /// Packets the decoder rejected (concealed instead).
    pub decode_errors: u64,
    /// Frames pulled.
    pub frames: u64,
    /// Frames with concealment in them.
    pub concealed_frames: u64,
    /// Frames of silence.
    pub silence_frames: u64,
    /// Packets of neither payload type.
    pub unknown_payload_type: u64,
    /// RFC 4733 telephone-event packets.
    pub telephone_events: u64,
    /// Key presses reported.
    pub dtmf_digits: u64,
}

/// What a FIFO sample is: one bit per kind, so that the kinds of a run of
/// samples are the OR of their tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Silent = 0,
    Decoded = 1,
    Concealed = 2,
}

/// Samples waiting to be pulled, each tagged with its [`Kind`]: a linear
/// buffer allocated once, holding `samples[start..end]`.
///
/// The decoder writes straight after the queued samples ([`PcmFifo::spare`],
/// then [`PcmFifo::commit`]); a frame is taken from the front. Samples move
/// in bulk: slice copies and fills, an OR over a frame's tags, no
/// per-sample index arithmetic. When the buffer empties both ends go back to
/// its start, so a stream whose packets last a frame reuses the same 960
/// samples every tick; when there is not room after `end`, the samples left
/// (less than a frame plus a packet) are first moved to the front.
struct PcmFifo {
    samples: Box<[i16]>,
    /// `Kind as u8` of each sample, same indices as `samples`.
    kinds: Box<[u8]>,
    start: usize,
    end: usize,
}

impl PcmFifo {
    fn new() -> Self {
        Self::with_capacity(FIFO_CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            samples: vec![0; capacity].into_boxed_slice(),
            kinds: vec![Kind::Silent as u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Room for `n` samples (at most the capacity) right after the queued
    /// ones, for [`PcmFifo::commit`]. Moves the queued samples to the front
    /// if they leave too little room after them, dropping the oldest if even
    /// that is not enough (which the pull loop never lets happen).
    fn spare(&mut self, n: usize) -> &mut [i16] {
        let cap = self.samples.len();
        let n = n.min(cap);
        if cap - self.end < n {
            let from = self.start + (self.len() + n).saturating_sub(cap);
            self.samples.copy_within(from..self.end, 0);
            self.kinds.copy_within(from..self.end, 0);
            self.end -= from;
            self.start = 0;
        }
        &mut self.samples[self.end..self.end + n]
    }

    /// Queues the samples written at `spare[skip..n]`, where `spare` is what
    /// [`PcmFifo::spare`] returned last, tagged `kind`.
    fn commit(&mut self, skip: usize, n: usize, kind: Kind) {
        let n = n.min(self.samples.len() - self.end);
        let skip = skip.min(n);
        if skip > 0 {
            self.samples.copy_within(self.end + skip..self.end + n, self.end);
        }
        let kept = n - skip;
        self.kinds[self.end..self.end + kept].fill(kind as u8);
        self.end += kept;
    }

    /// Appends `samples` (only the newest capacity's worth if longer). The
    /// stream's decoder writes in place instead; the tests feed with this.
    #[cfg(test)]
    fn push(&mut self, samples: &[i16], kind: Kind) {
        let samples = &samples[samples.len().saturating_sub(self.samples.len())..];
        self.spare(samples.len()).copy_from_slice(samples);
        self.commit(0, samples.len(), kind);
    }

    /// Appends `n` zeros (at most the capacity).
    fn push_zeros(&mut self, n: usize, kind: Kind) {
        let spare = self.spare(n);
        spare.fill(0);
        let n = spare.len();
        self.commit(0, n, kind);
    }

    /// Takes one frame (padding with silence if short) and tells what it is.
    fn pop_frame(&mut self, out: &mut Frame) -> FrameState {
        let taken = self.len().min(FRAME_SAMPLES);
        let queued = self.start..self.start + taken;
        out[..taken].copy_from_slice(&self.samples[queued.clone()]);
        out[taken..].fill(0);
        let kinds = or_all(&self.kinds[queued]);
        self.start += taken;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if kinds & Kind::Concealed as u8 != 0 {
            FrameState::Concealed
        } else if kinds & Kind::Decoded as u8 != 0 {
            FrameState::Audio
        } else {
            FrameState::Silence
        }
    }
}

/// The OR of all tags (a loop the compiler vectorises).
fn or_all(tags: &[u8]) -> u8 {
    tags.iter().fold(0, |acc, &t| acc | t)
}

/// One participant's incoming audio stream. See the [module docs](self).
pub struct InboundAudio {
    config: InboundConfig,
    /// The audio codec's RTP clock rate.
    clock: u32,
    jitter: JitterBuffer,
    decoder: Box<dyn AudioDecoder>,
    dtmf: DtmfDetector,
    dtmf_queue: [Option<DtmfEvent>; DTMF_QUEUE],
    dtmf_head: usize,
    dtmf_len: usize,
    /// Decoded and concealed audio; the decoder writes into it directly.
    fifo: PcmFifo,
    /// Samples since the last decoded audio.
    loss_run: usize,
    /// `max_concealment` in samples.
    max_conceal: usize,
    /// Audio has been decoded at least once.
    had_audio: bool,
    stats: InboundStats,
}

impl std::fmt::Debug for InboundAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundAudio")
            .field("codec", &self.decoder.kind())
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl InboundAudio {
    /// A stream decoded by `decoder`; allocates every buffer it will use.
    pub fn new(config: InboundConfig, decoder: Box<dyn AudioDecoder>) -> Self {
        let clock = decoder.kind().rtp_clock_rate();
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate: clock,
            ..config.jitter
        });
        let max_conceal = usize::try_from(config.max_concealment.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000)
            .unwrap_or(usize::MAX);
        Self {
            config,
            clock: jitter.config().clock_rate,
            jitter,
            decoder,
            dtmf: DtmfDetector::new(config.telephone_event_clock_rate.unwrap_or(clock)),
            dtmf_queue: [None; DTMF_QUEUE],
            dtmf_head: 0,
            dtmf_len: 0,
            fifo: PcmFifo::new(),
            loss_run: 0,
            max_conceal,
            had_audio: false,
            stats: InboundStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InboundConfig {
        &self.config
    }

    /// The codec being decoded.
    pub fn codec(&self) -> CodecKind {
        self.decoder.kind()
    }

    /// The jitter buffer (delay, jitter estimate, its own counters).
    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// Counters of the jitter buffer.
    pub fn jitter_stats(&self) -> &JitterStats {
        self.jitter.stats()
    }

    /// Counters of the DTMF detector.
    pub fn dtmf_stats(&self) -> &DtmfStats {
        self.dtmf.stats()
    }

    /// Decoded or concealed samples waiting to be pulled.
    pub fn buffered_samples(&self) -> usize {
        self.fifo.len()
    }

    /// Counters of this stream.
    pub fn stats(&self) -> InboundStats {
        let j = self.jitter.stats();
        InboundStats {
            lost: j.lost,
            late: j.late,
            duplicates: j.duplicates,
            overflow: j.overflow,
            ..self.stats
        }
    }

    /// Takes one received RTP packet of this stream: its header fields, its
    /// payload, and when it arrived. Never allocates.
    pub fn push_rtp(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload_type: u8,
        payload: &[u8],
        arrival: Instant,
    ) -> RtpOutcome {
        if payload_type == self.config.payload_type {
            self.stats.packets += 1;
            return RtpOutcome::Audio(self.jitter.push(seq, timestamp, marker, payload, arrival));
        }
        // Same RTP stream, same sequence space: not a loss in the audio.
        self.jitter.push_placeholder(seq);
        if Some(payload_type) == self.config.telephone_event_payload_type {
            self.stats.telephone_events += 1;
            if let Some(event) = self.dtmf.push(timestamp, payload, arrival) {
                self.queue_dtmf(event);
            }
            if let Some(event) = self.dtmf.poll(arrival) {
                self.queue_dtmf(event);
            }
            return RtpOutcome::TelephoneEvent;
        }
        self.stats.unknown_payload_type += 1;
        RtpOutcome::UnknownPayloadType
    }

    /// The next key press, oldest first.
    pub fn poll_dtmf(&mut self) -> Option<DtmfEvent> {
        if self.dtmf_len == 0 {
            return None;
        }
        let event = self.dtmf_queue[self.dtmf_head].take();
        self.dtmf_head = (self.dtmf_head + 1) % DTMF_QUEUE;
        self.dtmf_len -= 1;
        event
    }

    /// Produces the frame due at `now` (call every 20 ms) into `out`.
    pub fn pull(&mut self, now: Instant, out: &mut Frame) -> FrameState {
        if let Some(event) = self.dtmf.poll(now) {
            self.queue_dtmf(event);
        }
        while self.fifo.len() < FRAME_SAMPLES {
            match self.jitter.pop(now) {
                Popped::Packet(packet) => {
                    let skip = ts_to_samples(self.clock, packet.skip);
                    let expected = self.decoder.samples_in(packet.payload);
                    // Straight into the FIFO: no copy.
                    let out = self.fifo.spare(MAX_PAYLOAD_SAMPLES_48K);
                    match self.decoder.decode(packet.payload, out) {
                        Ok(n) => {
                            let n = n.min(MAX_PAYLOAD_SAMPLES_48K);
                            self.stats.decoded += 1;
                            self.had_audio = true;
                            self.loss_run = 0;
                            self.fifo.commit(skip, n, Kind::Decoded);
                            let duration = samples_to_ts(self.clock, n);
                            self.jitter.set_packet_duration(duration);
                        }
                        Err(_) => {
                            self.stats.decode_errors += 1;
                            let n = expected
                                .unwrap_or_else(|| ts_to_samples(self.clock, self.jitter.packet_time()))
                                .min(MAX_PAYLOAD_SAMPLES_48K);
                            let duration = samples_to_ts(self.clock, n);
                            self.jitter.set_packet_duration(duration);
                            self.conceal(n.saturating_sub(skip));
                        }
                    }
                }
                Popped::Lost { duration } => {
                    let n = ts_to_samples(self.clock, duration).min(MAX_PAYLOAD_SAMPLES_48K);
                    self.conceal(n);
                }
                Popped::Nothing => break,
            }
        }
        if self.fifo.len() < FRAME_SAMPLES {
            self.conceal(FRAME_SAMPLES - self.fifo.len());
        }
        let state = self.fifo.pop_frame(out);
        self.stats.frames += 1;
        match state {
            FrameState::Audio => {}
            FrameState::Concealed => self.stats.concealed_frames += 1,
            FrameState::Silence => self.stats.silence_frames += 1,
        }
        state
    }

    /// Fills `n` samples: the decoder's concealment while within the limit,
    /// silence after it (or before any audio).
    fn conceal(&mut self, mut n: usize) {
        while n > 0 {
            let allowed = if self.had_audio {
                self.max_conceal.saturating_sub(self.loss_run)
            } else {
                0
            };
            if allowed == 0 {
                self.fifo.push_zeros(n, Kind::Silent);
                self.loss_run = self.loss_run.saturating_add(n);
                return;
            }
            let chunk = n.min(allowed).min(MAX_PAYLOAD_SAMPLES_48K);
            let out = self.fifo.spare(chunk);
            let written = self.decoder.conceal(chunk, out).min(chunk);
            out[written..].fill(0);
            self.fifo.commit(0, chunk, Kind::Concealed);
            self.loss_run += chunk;
            n -= chunk;
        }
    }

    fn queue_dtmf(&mut self, event: DtmfEvent) {
        self.stats.dtmf_digits += 1;
        if self.dtmf_len == DTMF_QUEUE {
            // Full: drop the oldest.
            self.dtmf_head = (self.dtmf_head + 1) % DTMF_QUEUE;
            self.dtmf_len -= 1;
        }
        self.dtmf_queue[(self.dtmf_head + self.dtmf_len) % DTMF_QUEUE] = Some(event);
        self.dtmf_len += 1;
    }
}

/// RTP timestamp units at `clock` Hz to 48 kHz samples.
fn ts_to_samples(clock: u32, ts: u32) -> usize {
    usize::try_from(u64::from(ts) * u64::from(SAMPLE_RATE) / u64::from(clock.max(1))).unwrap_or(usize::MAX)
}

/// 48 kHz samples to RTP timestamp units at `clock` Hz.
fn samples_to_ts(clock: u32, samples: usize) -> u32 {
    u32::try_from(samples as u64 * u64::from(clock) / u64::from(SAMPLE_RATE)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod fifo_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// `n` samples counting up from `from`.
    fn count(from: i16, n: usize) -> Vec<i16> {
        (0..n).map(|i| from.wrapping_add(i as i16)).collect()
    }

    fn pop(fifo: &mut PcmFifo) -> (Vec<i16>, FrameState) {
        let mut out = [7i16; FRAME_SAMPLES];
        let state = fifo.pop_frame(&mut out);
        (out.to_vec(), state)
    }

    #[test]
    fn steady_frames_reuse_the_front_of_the_buffer() {
        let mut fifo = PcmFifo::with_capacity(2000);
        for round in 0..10i16 {
            let from = round.wrapping_mul(FRAME_SAMPLES as i16);
            fifo.push(&count(from, FRAME_SAMPLES), Kind::Decoded);
            assert_eq!(pop(&mut fifo), (count(from, FRAME_SAMPLES), FrameState::Audio));
            assert_eq!((fifo.start, fifo.end), (0, 0), "round {round}");
        }
    }

    #[test]
    fn leftovers_move_to_the_front_when_the_end_is_reached() {
        // The "wrap-around" of this buffer: 1500 in, a frame out (540 left
        // at 960..1500), 400 more fit after them, the next 300 do not: the
        // 940 queued samples and their tags move to the front first.
        let mut fifo = PcmFifo::with_capacity(2000);
        fifo.push(&count(0, 1500), Kind::Decoded);
        assert_eq!(pop(&mut fifo), (count(0, FRAME_SAMPLES), FrameState::Audio));
        fifo.push(&count(1500, 400), Kind::Concealed);
        assert_eq!((fifo.start, fifo.end), (960, 1900));
        fifo.push(&count(1900, 300), Kind::Decoded);
        assert_eq!((fifo.start, fifo.end), (0, 1240));
        // 540 decoded, 400 concealed, 20 decoded.
        assert_eq!(pop(&mut fifo), (count(960, FRAME_SAMPLES), FrameState::Concealed));
        // The last 280, decoded only: the concealed tags moved with their
        // samples and did not stay behind.
        let (out, state) = pop(&mut fifo);
        assert_eq!((&out[..280], state), (&count(1920, 280)[..], FrameState::Audio));
        assert!(out[280..].iter().all(|&s| s == 0));
        assert_eq!((fifo.start, fifo.end), (0, 0));
    }

    #[test]
    fn the_decoder_writes_in_place_and_skipped_samples_are_dropped() {
        let mut fifo = PcmFifo::with_capacity(2000);
        fifo.push(&count(0, 100), Kind::Decoded);
        let spare = fifo.spare(500);
        assert_eq!(spare.len(), 500);
        spare.copy_from_slice(&count(1000, 500));
        // The first 200 overlap what was already played: not queued.
        fifo.commit(200, 500, Kind::Decoded);
        assert_eq!(fifo.len(), 400);
        let (out, _) = pop(&mut fifo);
        assert_eq!(&out[..100], &count(0, 100)[..]);
        assert_eq!(&out[100..400], &count(1200, 300)[..]);
        // Skipping everything queues nothing.
        fifo.spare(300).fill(5);
        fifo.commit(400, 300, Kind::Concealed);
        assert_eq!(fifo.len(), 0);
        assert_eq!(pop(&mut fifo).1, FrameState::Silence);
    }

    #[test]
    fn partial_frames_are_padded_and_tagged_by_what_they_hold() {
        let mut fifo = PcmFifo::new();
        // Fewer samples than a frame: padded with zeros, still audio.
        fifo.push(&count(1, 500), Kind::Decoded);
        let (out, state) = pop(&mut fifo);
        assert_eq!(&out[..500], &count(1, 500)[..]);
        assert!(out[500..].iter().all(|&s| s == 0));
        assert_eq!((state, fifo.len()), (FrameState::Audio, 0));

        // Concealment then audio: one frame has both (concealed), the 40
        // samples left over are audio only.
        fifo.push(&count(1000, 300), Kind::Concealed);
        fifo.push(&count(2000, 700), Kind::Decoded);
        let (out, state) = pop(&mut fifo);
        assert_eq!(state, FrameState::Concealed);
        assert_eq!(&out[..300], &count(1000, 300)[..]);
        assert_eq!(&out[300..], &count(2000, 660)[..]);
        assert_eq!(fifo.len(), 40);
        let (out, state) = pop(&mut fifo);
        assert_eq!(state, FrameState::Audio);
        assert_eq!(&out[..40], &count(2660, 40)[..]);
        assert!(out[40..].iter().all(|&s| s == 0));

        // A tag at the very last sample of a frame counts; one just after
        // it belongs to the next frame.
        fifo.push(&count(1, FRAME_SAMPLES - 1), Kind::Silent);
        fifo.push(&[5], Kind::Concealed);
        fifo.push(&[6], Kind::Decoded);
        assert_eq!(pop(&mut fifo).1, FrameState::Concealed);
        assert_eq!(pop(&mut fifo).1, FrameState::Audio);

        // Empty: silence.
        let (out, state) = pop(&mut fifo);
        assert_eq!(state, FrameState::Silence);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn zeros_carry_their_kind() {
        let mut fifo = PcmFifo::with_capacity(2000);
        // Make the zeros overwrite non-zero samples.
        fifo.push(&[-3; 1500], Kind::Decoded);
        pop(&mut fifo);
        fifo.push_zeros(FRAME_SAMPLES - 540, Kind::Silent);
        assert_eq!(pop(&mut fifo).1, FrameState::Audio);
        fifo.push_zeros(FRAME_SAMPLES, Kind::Silent);
        let (out, state) = pop(&mut fifo);
        assert_eq!(state, FrameState::Silence);
        assert!(out.iter().all(|&s| s == 0));
        fifo.push_zeros(100, Kind::Concealed);
        fifo.push_zeros(FRAME_SAMPLES - 100, Kind::Silent);
        let (out, state) = pop(&mut fifo);
        assert_eq!(state, FrameState::Concealed);
        assert!(out.iter().all(|&s| s == 0));
        // More zeros than the buffer holds: it is full, of zeros.
        fifo.push(&[9; 10], Kind::Decoded);
        fifo.push_zeros(5000, Kind::Silent);
        assert_eq!(fifo.len(), 2000);
        assert_eq!(pop(&mut fifo), (vec![0; FRAME_SAMPLES], FrameState::Silence));
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut fifo = PcmFifo::with_capacity(1000);
        fifo.push(&count(0, 900), Kind::Concealed);
        fifo.push(&count(900, 200), Kind::Decoded);
        assert_eq!(fifo.len(), 1000);
        assert_eq!(pop(&mut fifo), (count(100, FRAME_SAMPLES), FrameState::Concealed));
        assert_eq!(pop(&mut fifo).0[..40], count(1060, 40)[..]);
        // One push longer than the buffer keeps its newest samples.
        fifo.push(&count(0, 2500), Kind::Decoded);
        assert_eq!(fifo.len(), 1000);
        assert_eq!(pop(&mut fifo).0, count(1500, FRAME_SAMPLES));
    }

    /// What the FIFO may be asked to do.
    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<i16>, Kind),
        Zeros(usize, Kind),
        /// Written into `spare`, then committed without the first `skip`.
        InPlace(Vec<i16>, usize, Kind),
        Pop,
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Silent), Just(Kind::Decoded), Just(Kind::Concealed)]
    }

    fn op() -> impl Strategy<Value = Op> {
        let samples = || prop::collection::vec(any::<i16>(), 0..2500);
        prop_oneof![
            (samples(), kind()).prop_map(|(s, k)| Op::Push(s, k)),
            (0usize..2500, kind()).prop_map(|(n, k)| Op::Zeros(n, k)),
            (samples(), 0usize..600, kind()).prop_map(|(s, skip, k)| Op::InPlace(s, skip, k)),
            Just(Op::Pop),
            Just(Op::Pop),
        ]
    }

    /// The model: a queue of tagged samples. `n` new ones (at most the
    /// capacity) first make room by dropping the oldest, then the `kept`
    /// are appended.
    fn append(model: &mut VecDeque<(i16, Kind)>, capacity: usize, n: usize, kept: &[i16], kind: Kind) {
        let excess = (model.len() + n.min(capacity)).saturating_sub(capacity);
        model.drain(..excess);
        model.extend(kept.iter().map(|&s| (s, kind)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The buffer behaves as a queue of tagged samples that drops its
        /// oldest when full.
        #[test]
        fn matches_a_queue_of_tagged_samples(
            capacity in FRAME_SAMPLES..3 * FRAME_SAMPLES,
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let mut fifo = PcmFifo::with_capacity(capacity);
            let mut model: VecDeque<(i16, Kind)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(samples, k) => {
                        fifo.push(&samples, k);
                        let newest = &samples[samples.len().saturating_sub(capacity)..];
                        append(&mut model, capacity, newest.len(), newest, k);
                    }
                    Op::Zeros(n, k) => {
                        fifo.push_zeros(n, k);
                        append(&mut model, capacity, n, &vec![0; n.min(capacity)], k);
                    }
                    Op::InPlace(samples, skip, k) => {
                        let n = samples.len().min(capacity);
                        fifo.spare(n).copy_from_slice(&samples[..n]);
                        fifo.commit(skip, n, k);
                        append(&mut model, capacity, n, &samples[skip.min(n)..n], k);
                    }
                    Op::Pop => {
                        let taken: Vec<_> = model.drain(..FRAME_SAMPLES.min(model.len())).collect();
                        let mut want = vec![0i16; FRAME_SAMPLES];
                        for (w, (s, _)) in want.iter_mut().zip(&taken) {
                            *w = *s;
                        }
                        let want_state = if taken.iter().any(|t| t.1 == Kind::Concealed) {
                            FrameState::Concealed
                        } else if taken.iter().any(|t| t.1 == Kind::Decoded) {
                            FrameState::Audio
                        } else {
                            FrameState::Silence
                        };
                        prop_assert_eq!(pop(&mut fifo), (want, want_state));
                    }
                }
                prop_assert_eq!(fifo.len(), model.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::CodecError;
    use crate::dtmf::DtmfEvent;
    use crate::fuzzing::LinearPcm;
    use std::sync::{Arc, Mutex};

    const MS: Duration = Duration::from_millis(1);
    const PT: u8 = 96;
    const TE: u8 = 101;

    /// The ramp signal: sample `i` of the stream.
    fn ramp(i: u64) -> i16 {
        (i % 20_000) as i16
    }

    /// L16 payload of ramp samples `first..first + n` (48 kHz), preceded by
    /// nothing: big-endian samples.
    fn payload(first: u64, n: u64) -> Vec<u8> {
        (first..first + n).flat_map(|i| ramp(i).to_be_bytes()).collect()
    }

    /// Configuration for the 48 kHz L16 stand-in, whose payloads (2 bytes a
    /// sample) are far larger than real codecs'.
    fn config48() -> InboundConfig {
        let mut config = InboundConfig::new(PT);
        config.telephone_event_payload_type = Some(TE);
        config.telephone_event_clock_rate = Some(8000);
        config.jitter.max_payload = 2 * MAX_PAYLOAD_SAMPLES_48K;
        config
    }

    fn inbound48() -> InboundAudio {
        InboundAudio::new(config48(), Box::new(LinearPcm::new_48k()))
    }

    /// Sends a ramp with `ptime_ms` packets and pulls every 20 ms for
    /// `ticks`; returns the frame states and the concatenated output.
    fn run(ptime_ms: u64, ticks: u64) -> (Vec<FrameState>, Vec<i16>, InboundAudio) {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let samples_per_packet = 48 * ptime_ms;
        let mut next_send = 0u64;
        let mut seq = 7u16;
        let mut states = Vec::new();
        let mut output = Vec::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        for k in 0..ticks {
            let now_ms = k * 20;
            while next_send <= now_ms {
                let first = next_send * 48;
                let r = inbound.push_rtp(
                    seq,
                    first as u32,
                    next_send == 0,
                    PT,
                    &payload(first, samples_per_packet),
                    t0 + Duration::from_millis(next_send),
                );
                assert_eq!(r, RtpOutcome::Audio(PushOutcome::Queued));
                seq = seq.wrapping_add(1);
                next_send += ptime_ms;
            }
            states.push(inbound.pull(t0 + Duration::from_millis(now_ms + 2), &mut frame));
            output.extend_from_slice(&frame);
            assert!(inbound.buffered_samples() < samples_per_packet as usize + FRAME_SAMPLES);
        }
        (states, output, inbound)
    }

    /// Asserts the output is the ramp, unbroken, from the first audio frame.
    fn assert_continuous(states: &[FrameState], output: &[i16]) {
        let first = states.iter().position(|s| *s == FrameState::Audio).unwrap();
        assert!(first <= 3, "{states:?}");
        assert!(states[first..].iter().all(|s| *s == FrameState::Audio), "{states:?}");
        let audio = &output[first * FRAME_SAMPLES..];
        assert_eq!(audio[0], 0);
        for (i, &s) in audio.iter().enumerate() {
            assert_eq!(s, ramp(i as u64), "sample {i}");
        }
    }

    #[test]
    fn every_packet_time_yields_steady_frames() {
        for ptime in [10, 20, 30, 40, 60] {
            let (states, output, inbound) = run(ptime, 500);
            assert_continuous(&states, &output);
            let stats = inbound.stats();
            assert_eq!(
                (stats.lost, stats.late, stats.concealed_frames),
                (0, 0, 0),
                "ptime {ptime}"
            );
            assert_eq!(stats.decoded, stats.packets - inbound.jitter_buffer().len() as u64);
        }
    }

    #[test]
    fn narrowband_clock() {
        // 8 kHz RTP clock, each sample repeated six times by the decoder.
        let mut inbound = InboundAudio::new(InboundConfig::new(0), Box::new(LinearPcm::new_8k()));
        assert_eq!(inbound.codec(), CodecKind::Pcmu);
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        for k in 0..100u32 {
            // 20 ms = 160 samples at 8 kHz.
            let p: Vec<u8> = (0..160).flat_map(|i| ((k * 160 + i) as i16).to_be_bytes()).collect();
            inbound.push_rtp(k as u16, k * 160, false, 0, &p, t0 + k * 20 * MS);
            states.push(inbound.pull(t0 + k * 20 * MS + MS, &mut frame));
            if states.last() == Some(&FrameState::Audio) {
                assert_eq!(frame[0], frame[5]);
                assert_eq!(i32::from(frame[6]), i32::from(frame[0]) + 1);
            }
        }
        assert!(states[2..].iter().all(|s| *s == FrameState::Audio), "{states:?}");
    }

    #[test]
    fn nothing_received_is_silence() {
        let mut inbound = inbound48();
        let mut frame = [1i16; FRAME_SAMPLES];
        assert_eq!(inbound.pull(Instant::now(), &mut frame), FrameState::Silence);
        assert!(frame.iter().all(|&s| s == 0));
        assert_eq!(inbound.stats().silence_frames, 1);
    }

    /// Runs 20 ms packets, dropping those in `lost`; returns frame states.
    fn run_with_loss(lost: std::ops::Range<u32>) -> (Vec<FrameState>, InboundStats) {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        for k in 0..60u32 {
            if !lost.contains(&k) {
                let first = u64::from(k) * 960;
                inbound.push_rtp(
                    k as u16,
                    first as u32,
                    false,
                    PT,
                    &payload(first, 960),
                    t0 + k * 20 * MS,
                );
            }
            states.push(inbound.pull(t0 + k * 20 * MS + MS, &mut frame));
        }
        (states, inbound.stats())
    }

    #[test]
    fn a_lost_packet_is_concealed_once() {
        let (states, stats) = run_with_loss(20..21);
        assert_eq!(stats.lost, 1);
        assert_eq!(stats.concealed_frames, 1);
        let at = states.iter().position(|s| *s == FrameState::Concealed).unwrap();
        assert!(states[at + 1..].iter().all(|s| *s == FrameState::Audio));
    }

    #[test]
    fn long_loss_turns_to_silence_after_100_ms() {
        // 200 ms lost (10 packets): 5 frames concealed, 5 silent, then audio.
        let (states, stats) = run_with_loss(20..30);
        assert_eq!(stats.lost, 10);
        let concealed = states.iter().filter(|s| **s == FrameState::Concealed).count();
        let silent = states[5..].iter().filter(|s| **s == FrameState::Silence).count();
        assert_eq!((concealed, silent), (5, 5), "{states:?}");
        let last_bad = states.iter().rposition(|s| *s != FrameState::Audio).unwrap();
        assert!(states[last_bad + 1..].len() >= 25);
    }

    #[test]
    fn sender_silence_is_silence_not_loss() {
        // The sender stops for 400 ms (DTX) and resumes with a marker.
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        let mut seq = 0u16;
        for k in 0..60u32 {
            if !(20..40).contains(&k) {
                let first = u64::from(k) * 960;
                inbound.push_rtp(seq, first as u32, k == 40, PT, &payload(first, 960), t0 + k * 20 * MS);
                seq += 1;
            }
            states.push(inbound.pull(t0 + k * 20 * MS + MS, &mut frame));
        }
        let stats = inbound.stats();
        assert_eq!(stats.lost, 0);
        // The decoder's concealment fades the last sound out for 100 ms.
        assert_eq!(stats.concealed_frames, 5);
        assert_eq!(stats.silence_frames, 1 + 15);
    }

    #[test]
    fn reordering_and_duplicates_decode_each_packet_once() {
        let decoded = Arc::new(Mutex::new(Vec::new()));
        let decoder = Recording {
            inner: LinearPcm::new_48k(),
            seen: Arc::clone(&decoded),
        };
        let mut inbound = InboundAudio::new(config48(), Box::new(decoder));
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        // Arrival order: pairs swapped, every packet sent twice. Each
        // packet's samples are its sequence number.
        for k in 0..120u32 {
            let seq = k ^ 1;
            let first = u64::from(seq) * 960;
            let p: Vec<u8> = (0..960).flat_map(|_| (seq as i16).to_be_bytes()).collect();
            let at = t0 + k * 20 * MS;
            inbound.push_rtp(seq as u16, first as u32, false, PT, &p, at);
            let r = inbound.push_rtp(seq as u16, first as u32, false, PT, &p, at + MS);
            assert!(matches!(
                r,
                RtpOutcome::Audio(PushOutcome::Duplicate | PushOutcome::TooLate)
            ));
            inbound.pull(at + 2 * MS, &mut frame);
        }
        let seen = decoded.lock().unwrap().clone();
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(seen, sorted, "decoded twice or out of order");
        assert!(seen.len() >= 100, "{}", seen.len());
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(inbound.stats().duplicates, 120);
    }

    #[test]
    fn burst_after_delay_spike() {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        let mut held = Vec::new();
        for k in 0..200u32 {
            let now = t0 + k * 20 * MS;
            let first = u64::from(k) * 960;
            let packet = (k as u16, first as u32, payload(first, 960));
            if (50..58).contains(&k) {
                held.push(packet);
            } else {
                if k == 58 {
                    for (s, t, p) in held.drain(..) {
                        inbound.push_rtp(s, t, false, PT, &p, now);
                    }
                }
                inbound.push_rtp(packet.0, packet.1, false, PT, &packet.2, now);
            }
            states.push(inbound.pull(now + MS, &mut frame));
            assert!(inbound.buffered_samples() < 2 * FRAME_SAMPLES);
            assert!(inbound.jitter_buffer().len() <= 12);
        }
        let stats = inbound.stats();
        assert!(stats.late > 0);
        assert_eq!(stats.lost, 0);
        assert!(stats.concealed_frames >= 5 && stats.concealed_frames <= 12, "{stats:?}");
        assert!(states[150..].iter().all(|s| *s == FrameState::Audio), "{states:?}");
    }

    #[test]
    fn drift_keeps_latency_bounded() {
        // Sender 0.5 % fast for 2 minutes.
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut sent = 0u64;
        let mut next_us = 0u64;
        let mut max_latency = 0;
        for k in 0..6000u64 {
            let now_us = k * 20_000;
            while next_us <= now_us {
                let first = sent * 960;
                let at = t0 + Duration::from_micros(next_us);
                inbound.push_rtp(sent as u16, first as u32, false, PT, &payload(first, 960), at);
                sent += 1;
                next_us = sent * 20_000 * 995 / 1000;
            }
            let now = t0 + Duration::from_micros(now_us + 1000);
            assert_ne!(inbound.pull(now, &mut frame), FrameState::Concealed);
            let latency = inbound.jitter_buffer().len() * FRAME_SAMPLES + inbound.buffered_samples();
            max_latency = max_latency.max(latency);
        }
        // Never more than 4 frames (80 ms) behind.
        assert!(max_latency <= 4 * FRAME_SAMPLES, "{max_latency}");
        assert!(inbound.jitter_stats().drops >= 25);
        assert_eq!(inbound.stats().lost, 0);
    }

    #[test]
    fn telephone_events_are_routed_and_leave_no_audio_gap() {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut digits = Vec::new();
        let mut seq = 0u16;
        let send_audio = |inbound: &mut InboundAudio, seq: &mut u16, k: u32| {
            let first = u64::from(k) * 960;
            inbound.push_rtp(*seq, first as u32, false, PT, &payload(first, 960), t0 + k * 20 * MS);
            *seq = seq.wrapping_add(1);
        };
        for k in 0..100u32 {
            if (30..38).contains(&k) {
                // Key '5' instead of audio (as many gateways do): 5 updates,
                // then the end packet three times, all at event ts 30·160.
                let ts = 30 * 160;
                let ends: &[bool] = match k {
                    30..=34 => &[false],
                    35 => &[true, true, true],
                    _ => &[],
                };
                for &end in ends {
                    let duration = ((k - 29) * 160) as u16;
                    let d = duration.to_be_bytes();
                    let p = [5, (u8::from(end) << 7) | 10, d[0], d[1]];
                    let r = inbound.push_rtp(seq, ts, k == 30, TE, &p, t0 + k * 20 * MS);
                    assert_eq!(r, RtpOutcome::TelephoneEvent);
                    seq = seq.wrapping_add(1);
                }
            } else {
                send_audio(&mut inbound, &mut seq, k);
            }
            inbound.pull(t0 + k * 20 * MS + MS, &mut frame);
            while let Some(d) = inbound.poll_dtmf() {
                digits.push(d);
            }
        }
        assert_eq!(
            digits,
            vec![DtmfEvent {
                digit: '5',
                duration_ms: 120,
                volume: 10
            }]
        );
        let stats = inbound.stats();
        assert_eq!(stats.telephone_events, 8);
        assert_eq!(stats.dtmf_digits, 1);
        assert_eq!(stats.lost, 0);
        assert_eq!(inbound.dtmf_stats().events, 1);
    }

    #[test]
    fn unknown_payload_types_are_counted_and_dropped() {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        assert_eq!(
            inbound.push_rtp(1, 0, false, 13, &[0x40], t0),
            RtpOutcome::UnknownPayloadType
        );
        assert_eq!(
            inbound.push_rtp(2, 0, false, 0, &[0; 160], t0),
            RtpOutcome::UnknownPayloadType
        );
        assert_eq!(inbound.stats().unknown_payload_type, 2);
        assert_eq!(inbound.stats().packets, 0);
        assert!(inbound.jitter_buffer().is_empty());
    }

    #[test]
    fn decode_errors_are_concealed() {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        for k in 0..30u32 {
            let first = u64::from(k) * 960;
            let mut p = payload(first, 960);
            if k == 15 {
                p.pop(); // odd length: the L16 decoder rejects it
            }
            inbound.push_rtp(k as u16, first as u32, false, PT, &p, t0 + k * 20 * MS);
            states.push(inbound.pull(t0 + k * 20 * MS + MS, &mut frame));
        }
        let stats = inbound.stats();
        assert_eq!(stats.decode_errors, 1);
        assert_eq!(stats.concealed_frames, 1);
        assert_eq!(states.iter().filter(|s| **s == FrameState::Concealed).count(), 1);
        assert!(format!("{inbound:?}").starts_with("InboundAudio"));
    }

    #[test]
    fn dtmf_queue_keeps_the_newest_eight() {
        let mut inbound = inbound48();
        let t0 = Instant::now();
        for k in 0..10u32 {
            let p = [k as u8, 0x80 | 10, 0x03, 0x20];
            inbound.push_rtp(k as u16, k * 8000, true, TE, &p, t0);
        }
        let digits: String = std::iter::from_fn(|| inbound.poll_dtmf()).map(|e| e.digit).collect();
        assert_eq!(digits, "23456789");
    }

    /// Records the first sample of every decoded packet.
    struct Recording {
        inner: LinearPcm,
        seen: Arc<Mutex<Vec<i16>>>,
    }

    impl AudioDecoder for Recording {
        fn kind(&self) -> CodecKind {
            self.inner.kind()
        }
        fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
            let n = self.inner.decode(payload, out)?;
            self.seen.lock().unwrap().push(out[0]);
            Ok(n)
        }
        fn conceal(&mut self, samples: usize, out: &mut [i16]) -> usize {
            self.inner.conceal(samples, out)
        }
        fn samples_in(&self, payload: &[u8]) -> Option<usize> {
            self.inner.samples_in(payload)
        }
    }
}
