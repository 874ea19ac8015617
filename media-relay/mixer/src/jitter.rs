//! An adaptive jitter buffer for one RTP audio stream.
//!
//! The buffer sits between the network and a decoder that is pulled every
//! 20 ms (one mixer frame). It holds RTP payloads, hands them out in sequence
//! (= timestamp) order when their playout time has come, tells the caller
//! where a packet is missing so it can conceal, and keeps the playout delay
//! just above what the network's jitter needs.
//!
//! # Time
//!
//! Two clocks meet here. The *sender's* clock is the RTP timestamp (RFC 3550
//! §5.1), in units of [`JitterConfig::clock_rate`]; the buffer unwraps it, and
//! the 16-bit sequence number, into 64-bit "extended" values, so both wrap
//! around freely. The *local* clock is the `Instant` the caller passes to
//! [`JitterBuffer::push`] (arrival time) and [`JitterBuffer::pop`] (now). The
//! buffer never reads a clock itself: tests drive it with simulated time.
//!
//! A *mapping* ties them together: sender timestamp `base_ts` plays at local
//! time `base_time`, and the play position advances by one frame (20 ms of
//! timestamps) per 20 ms of local time. The position is quantised to the
//! frame grid (`play(now)`, rounded to the nearest frame), so a caller whose
//! 20 ms tick wobbles by a few milliseconds still gets exactly one frame per
//! tick.
//!
//! # Algorithm
//!
//! **Storage.** `max_packets` slots, indexed by extended sequence number
//! modulo the slot count, each with a preallocated payload area of
//! `max_payload` bytes: a push copies the payload into its slot, nothing is
//! allocated after [`JitterBuffer::new`]. The slots cover the window
//! `[next_seq, next_seq + max_packets)`, where `next_seq` is the next packet
//! to play. A packet beyond the window, or one that would make the buffered
//! timestamps span [`JitterConfig::max_delay`] (500 ms) or more, evicts the
//! oldest packets first ([`PushOutcome::Overflow`]); so at most `max_packets`
//! packets and less than 500 ms of audio are ever held.
//!
//! **Start.** The first packet (and the first after a resync) sets a
//! provisional mapping. [`JitterBuffer::pop`] returns [`Popped::Nothing`]
//! until that packet has waited the *target delay* (one frame until jitter
//! has been measured, see below); then the mapping is
//! re-anchored at that very `pop` (the lowest queued sequence number plays
//! now), which aligns the frame grid with the caller's tick.
//!
//! **Playout.** A `cursor` marks the end (in sender timestamps) of the audio
//! already handed out; at each tick it equals the play position plus what
//! the caller still holds from earlier packets. Each `pop(now)` looks
//! at the lowest queued packet `H` and the *horizon* `play(now) + 1 frame`:
//!
//! * `H` lies entirely before the cursor (its time has passed, e.g. after a
//!   drop): discard it and look again.
//! * `H` starts before the cursor but ends after it: return it with
//!   [`Packet::skip`], the part the caller must discard.
//! * `H` starts at the cursor: return it; the cursor moves to its end.
//! * `H` starts after the cursor and sequence numbers are missing before it
//!   (or were, on an earlier call): return [`Popped::Lost`] for the missing
//!   audio, at most up to the horizon, and move the cursor; the caller
//!   conceals. Missing packets are declared lost only when their audio is
//!   needed, so a reordered packet that arrives in time is still played.
//! * `H` starts after the cursor with no sequence gap (the sender was silent,
//!   RFC 3551 §4.1 / discontinuous transmission): [`Popped::Nothing`] until
//!   `H` reaches the horizon. A talk spurt's first packet (marker bit) is then
//!   snapped onto the cursor (the silence shrinks by under a frame);
//!   otherwise the sub-frame remainder is handed out as `Lost`.
//! * Nothing queued: [`Popped::Nothing`].
//!
//! On `Nothing` the buffer assumes the caller fills the rest of the current
//! frame itself (concealment or silence) and moves the cursor to the
//! horizon; a packet that then arrives for audio already filled in is
//! [`PushOutcome::TooLate`]. Calling `pop` until it returns `Nothing` once per
//! 20 ms tick therefore yields exactly one frame of audio per tick, whatever
//! the sender's packet time (10, 20, 30, 40, 60 ms…).
//!
//! **Jitter and target delay.** Every accepted packet updates the RFC 3550
//! §6.4.1 interarrival jitter estimate `J += (|D(i−1,i)| − J)/16`, where `D`
//! is the difference of relative transit times. The raw target is
//! `clamp(2·J + 1 frame, min_target, max_target)` (20 ms … 200 ms by
//! default); the target follows it up at once and down slowly (1/64 of the
//! difference per packet), so a jitter burst is remembered for a while.
//!
//! **Adapting the delay.** Each in-order packet's *slack* (its playout time
//! minus its arrival time: how long it will wait here) feeds a moving average
//! (1/16), the buffer's delay estimate. The delay is corrected in whole
//! frames, never more than one frame at a time:
//!
//! * At a talk-spurt start (marker bit, nothing else queued) the change is
//!   inaudible: the silence before the spurt shrinks by one frame if the
//!   packet's slack exceeds the target by a frame or more, or grows at once
//!   by as many frames as the target needs.
//! * Within a talk spurt, when the delay estimate stays more than one frame
//!   above the target for 1 s, one frame is dropped (the play position jumps
//!   a frame ahead and the caller is told to skip it); when it stays more
//!   than half a frame below the target for 250 ms, one frame is stretched
//!   (the play position steps back a frame: one extra `Nothing`, which the
//!   caller conceals).
//!
//! This also absorbs clock drift between sender and receiver: a sender whose
//! clock runs 0.5 % fast makes packets arrive ever earlier relative to the
//! mapping, the delay estimate creeps up by 5 ms per second, and a frame is
//! dropped every few seconds; a slow sender gets stretched likewise.
//!
//! **Reordering, duplicates, late packets.** A packet below `next_seq` or
//! whose audio lies entirely before the cursor is [`PushOutcome::TooLate`]
//! (its slot is remembered, so it is not also counted as lost); one already
//! queued is [`PushOutcome::Duplicate`]. A sequence number may go back by up
//! to 100 (RFC 3550 Appendix A.1's `MAX_MISORDER`) and still be treated as
//! reordering.
//!
//! **Sender restart.** A packet whose sequence number jumps by more than
//! 3000 (`MAX_DROPOUT`) or back by more than 100, or whose timestamp puts it
//! more than 500 ms early or 2 s late against the mapping, is a
//! discontinuity. As in RFC 3550 Appendix A.1 it is held on probation
//! ([`PushOutcome::Probation`]); if the next packet follows it in sequence,
//! the buffer resyncs: everything queued is flushed and both are queued under
//! a fresh mapping. A timing discontinuity whose sequence number does follow
//! on (or whose marker bit says a new talk spurt starts) resyncs at once.

use std::time::{Duration, Instant};

/// One frame (the mixer's tick), in microseconds.
const FRAME_US: i64 = 20_000;
/// RFC 3550 Appendix A.1: a forward sequence jump larger than this is a
/// discontinuity.
const MAX_DROPOUT: i64 = 3000;
/// RFC 3550 Appendix A.1: a backward sequence jump larger than this is a
/// discontinuity.
const MAX_MISORDER: i64 = 100;
/// A new packet this late against the mapping is a discontinuity, not a late
/// packet.
const LATE_RESYNC_US: i64 = 2_000_000;
/// How long the delay must stay above target before a frame is dropped.
const DROP_HOLD_US: i64 = 1_000_000;
/// How long the delay must stay below target before a frame is stretched.
const STRETCH_HOLD_US: i64 = 250_000;
/// Packet times learnt from timestamps must lie in this range (2.5–120 ms).
const MIN_PTIME_US: i64 = 2_500;
const MAX_PTIME_US: i64 = 120_000;
/// Magnitudes are kept below this so that sums of a few values never
/// overflow, whatever the input.
const LIMIT: i64 = 1 << 60;

/// Configuration of a [`JitterBuffer`], fixed at [`JitterBuffer::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JitterConfig {
    /// RTP clock rate of the stream, in Hz (RFC 3551: 8000 for G.711 and
    /// G.722, 48 000 for Opus). Clamped to 1000 ..= 384 000.
    pub clock_rate: u32,
    /// Most packets held (default 64). Clamped to 2 ..= 1024.
    pub max_packets: usize,
    /// Most audio held, and how early a packet may arrive before its playout
    /// time (default 500 ms). Clamped to 60 ms ..= 5 s.
    pub max_delay: Duration,
    /// Largest payload accepted, in bytes (default 1500). Clamped to
    /// 1 ..= 65 535.
    pub max_payload: usize,
    /// Smallest target delay (default 20 ms).
    pub min_target: Duration,
    /// Largest target delay (default 200 ms); at most `max_delay`.
    pub max_target: Duration,
}

impl JitterConfig {
    /// The defaults for a stream with this RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            max_packets: 64,
            max_delay: Duration::from_millis(500),
            max_payload: 1500,
            min_target: Duration::from_millis(20),
            max_target: Duration::from_millis(200),
        }
    }

    /// The configuration with every limit applied.
    fn effective(self) -> Self {
        let max_delay = self.max_delay.clamp(Duration::from_millis(60), Duration::from_secs(5));
        let max_target = self.max_target.min(max_delay);
        Self {
            clock_rate: self.clock_rate.clamp(1000, 384_000),
            max_packets: self.max_packets.clamp(2, 1024),
            max_delay,
            max_payload: self.max_payload.clamp(1, 65_535),
            min_target: self.min_target.min(max_target),
            max_target,
        }
    }
}

impl Default for JitterConfig {
    /// The defaults at 48 kHz.
    fn default() -> Self {
        Self::new(48_000)
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Queued for playout.
    Queued,
    /// The same sequence number is already queued (or was already late); the
    /// copy was dropped.
    Duplicate,
    /// Its playout time has passed (or its sequence number was already played
    /// or declared lost); dropped.
    TooLate,
    /// The buffer was full (`max_packets`, or `max_delay` of audio): the
    /// oldest packets were dropped to make room and this one queued, or, if it
    /// would itself have been the oldest, it was dropped.
    Overflow,
    /// A discontinuity (RFC 3550 Appendix A.1): held apart until the next
    /// packet confirms a sender restart (then the buffer resyncs) or shows it
    /// was a stray.
    Probation,
    /// Larger than [`JitterConfig::max_payload`]; dropped.
    TooLarge,
}

/// A packet handed out by [`JitterBuffer::pop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet<'a> {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// RTP marker bit (RFC 3551 §4.1: first packet of a talk spurt).
    pub marker: bool,
    /// The payload, valid until the next call on the buffer.
    pub payload: &'a [u8],
    /// How much of the packet's start, in RTP timestamp units, lies before
    /// the play position and must be discarded after decoding (a frame
    /// dropped to reduce delay, or a packet that arrived partly late).
    /// Usually 0.
    pub skip: u32,
}

/// What [`JitterBuffer::pop`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Popped<'a> {
    /// The next packet: decode it (dropping [`Packet::skip`] first).
    Packet(Packet<'a>),
    /// Audio is missing here, `duration` RTP timestamp units of it (at most a
    /// frame): conceal it.
    Lost {
        /// Length of the gap, in RTP timestamp units.
        duration: u32,
    },
    /// Nothing to play in the current frame: fill the rest of the frame
    /// yourself (concealment, comfort noise or silence). Keep calling `pop`
    /// until this comes back once per 20 ms tick.
    Nothing,
}

/// Counters of a [`JitterBuffer`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct JitterStats {
    /// Calls to [`JitterBuffer::push`].
    pub received: u64,
    /// Packets queued.
    pub queued: u64,
    /// Packets handed out by [`JitterBuffer::pop`].
    pub played: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped as too late.
    pub late: u64,
    /// Sequence numbers never received by the time they were needed
    /// (RFC 3550 "cumulative number of packets lost", minus late arrivals).
    pub lost: u64,
    /// Packets dropped to keep the buffer within its bounds.
    pub overflow: u64,
    /// Packets dropped because the payload was too large.
    pub too_large: u64,
    /// Packets held on probation.
    pub probation: u64,
    /// Resynchronisations after a sender restart or discontinuity.
    pub resyncs: u64,
    /// Frames dropped within a talk spurt to reduce the delay.
    pub drops: u64,
    /// Frames stretched within a talk spurt to increase the delay.
    pub stretches: u64,
    /// Delay changes made at a talk-spurt start (inaudible).
    pub spurt_adjustments: u64,
    /// Queued packets discarded at `pop` because their time had passed.
    pub expired: u64,
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Nothing: a packet not (yet) received.
    Empty,
    /// A packet waiting to be played.
    Full,
    /// The sequence number was seen but there is nothing to play: the packet
    /// came too late, or carried no audio.
    Gone,
}

/// One packet's metadata; its payload lives in `payloads`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    /// Extended sequence number (meaningful unless `Empty`).
    seq: i64,
    /// Extended timestamp.
    ts: i64,
    marker: bool,
    /// Payload length.
    len: usize,
}

const EMPTY_SLOT: Slot = Slot {
    state: SlotState::Empty,
    seq: 0,
    ts: 0,
    marker: false,
    len: 0,
};

/// A packet held on probation (its payload in the last payload area).
#[derive(Debug, Clone, Copy)]
struct Probe {
    seq: u16,
    ts: u32,
    marker: bool,
    len: usize,
    arrival: i64,
}

/// Where a payload to store comes from.
enum Source<'a> {
    Slice(&'a [u8]),
    /// The probation area, this many bytes.
    Probe(usize),
}

/// An adaptive jitter buffer for one RTP stream. See the [module
/// docs](self) for the algorithm.
pub struct JitterBuffer {
    config: JitterConfig,
    /// RTP clock rate.
    clock: i64,
    /// Timestamp units per frame (20 ms).
    frame_ts: i64,
    /// `max_delay` in timestamp units.
    max_span_ts: i64,
    /// `max_delay` in microseconds.
    max_delay_us: i64,
    slots: Box<[Slot]>,
    /// `max_packets + 1` payload areas of `max_payload` bytes; the last one
    /// is the probation area.
    payloads: Box<[u8]>,
    /// Number of `Full` slots.
    count: usize,
    /// Local time zero: the first arrival.
    epoch: Option<Instant>,
    /// A first packet has set the mapping.
    synced: bool,
    /// Playout has begun (the mapping is anchored).
    started: bool,
    /// Lowest sequence number that may still be played.
    next_seq: i64,
    /// Highest sequence number received.
    highest_seq: i64,
    /// Timestamp of the highest sequence number.
    highest_ts: i64,
    /// End of the audio handed out, in timestamp units.
    cursor: i64,
    /// The mapping: `base_ts` plays at `base_time` (µs since `epoch`).
    base_ts: i64,
    base_time: i64,
    /// Arrival of the first packet since the last (re)sync.
    first_arrival: i64,
    /// The gap before the next packet is a loss (not a silence).
    loss_gap: bool,
    /// Timestamp and end of the last packet handed out, while the cursor
    /// still stands at that end, and whether the caller confirmed the end
    /// with [`JitterBuffer::set_packet_duration`].
    last_popped: Option<(i64, i64, bool)>,
    /// Sequence number and timestamp of the last packet handed out.
    last_played: Option<(i64, i64)>,
    /// Packet time, in timestamp units.
    ptime: i64,
    /// RFC 3550 relative transit time of the previous packet (ts units).
    last_transit: Option<f64>,
    /// RFC 3550 interarrival jitter (ts units).
    jitter: f64,
    /// Target delay (µs).
    target_us: f64,
    /// Moving average of the slack of in-order packets (µs).
    delay_est: Option<f64>,
    above_since: Option<i64>,
    below_since: Option<i64>,
    probe: Option<Probe>,
    stats: JitterStats,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("config", &self.config)
            .field("len", &self.count)
            .field("started", &self.started)
            .field("target_delay", &self.target_delay())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Saturates an `i128` into `±LIMIT`.
fn limit(v: i128) -> i64 {
    // In range after the clamp.
    v.clamp(-i128::from(LIMIT), i128::from(LIMIT)) as i64
}

/// The extended value of a 16-bit sequence number: the one closest to
/// `reference`.
fn unwrap16(reference: i64, raw: u16) -> i64 {
    reference + i64::from(raw.wrapping_sub(reference as u16) as i16)
}

/// The extended value of a 32-bit timestamp: the one closest to `reference`.
fn unwrap32(reference: i64, raw: u32) -> i64 {
    reference + i64::from(raw.wrapping_sub(reference as u32) as i32)
}

impl JitterBuffer {
    /// An empty buffer; every slot and payload area is allocated here, once.
    pub fn new(config: JitterConfig) -> Self {
        let config = config.effective();
        let clock = i64::from(config.clock_rate);
        let max_delay_us = i64::try_from(config.max_delay.as_micros()).unwrap_or(LIMIT);
        let mut buffer = Self {
            config,
            clock,
            frame_ts: (clock * FRAME_US / 1_000_000).max(1),
            max_span_ts: 0,
            max_delay_us,
            slots: vec![EMPTY_SLOT; config.max_packets].into_boxed_slice(),
            payloads: vec![0; (config.max_packets + 1) * config.max_payload].into_boxed_slice(),
            count: 0,
            epoch: None,
            synced: false,
            started: false,
            next_seq: 0,
            highest_seq: 0,
            highest_ts: 0,
            cursor: 0,
            base_ts: 0,
            base_time: 0,
            first_arrival: 0,
            loss_gap: false,
            last_popped: None,
            last_played: None,
            ptime: 0,
            last_transit: None,
            jitter: 0.0,
            target_us: 0.0,
            delay_est: None,
            above_since: None,
            below_since: None,
            probe: None,
            stats: JitterStats::default(),
        };
        buffer.max_span_ts = buffer.us_to_ts(max_delay_us);
        buffer.ptime = buffer.frame_ts;
        buffer.target_us = (FRAME_US as f64).clamp(buffer.min_target_us(), buffer.max_target_us());
        buffer
    }

    /// The configuration in effect (limits applied).
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Packets queued (not counting one on probation).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if no packet is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Timestamp span of the queued packets (newest minus oldest timestamp),
    /// in RTP timestamp units; always below `max_delay`.
    pub fn span(&self) -> u32 {
        self.ts_range()
            .map_or(0, |(lo, hi, _)| u32::try_from(hi - lo).unwrap_or(u32::MAX))
    }

    /// The current target delay.
    pub fn target_delay(&self) -> Duration {
        duration_from_us(self.target_us)
    }

    /// The RFC 3550 §6.4.1 interarrival jitter estimate.
    pub fn jitter(&self) -> Duration {
        duration_from_us(self.jitter * 1e6 / self.clock as f64)
    }

    /// The average time packets wait here before playout, once measured.
    pub fn delay_estimate(&self) -> Option<Duration> {
        self.delay_est.map(duration_from_us)
    }

    /// The packet time in use (learnt from timestamps and from
    /// [`JitterBuffer::set_packet_duration`]; one frame until then), in RTP
    /// timestamp units.
    pub fn packet_time(&self) -> u32 {
        u32::try_from(self.ptime).unwrap_or(u32::MAX)
    }

    /// Forgets the stream (queued packets, mapping, probation) but keeps the
    /// counters and the jitter estimate: the next packet starts afresh.
    pub fn reset(&mut self) {
        self.clear_slots();
        self.synced = false;
        self.started = false;
        self.probe = None;
    }

    /// Offers a received packet. `arrival` is when it was received.
    ///
    /// Copies the payload into a preallocated slot; never allocates.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], arrival: Instant) -> PushOutcome {
        let now = self.arrival_us(arrival);
        self.stats.received += 1;
        if payload.len() > self.config.max_payload {
            self.stats.too_large += 1;
            return PushOutcome::TooLarge;
        }
        if !self.synced {
            self.sync(seq, timestamp, marker, now, Source::Slice(payload));
            return PushOutcome::Queued;
        }
        self.push_synced(seq, timestamp, marker, payload, now)
    }

    /// Accounts for a packet of the same RTP stream that carries no audio for
    /// this buffer (an RFC 4733 telephone event, RFC 3389 comfort noise, an
    /// unknown payload type): its sequence number is marked as seen, so the
    /// gap it leaves is not taken for a loss.
    pub fn push_placeholder(&mut self, seq: u16) {
        if !self.synced {
            return;
        }
        let ext = unwrap16(self.highest_seq, seq);
        let d_seq = ext - self.highest_seq;
        if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&d_seq) || ext < self.next_seq {
            return;
        }
        while ext >= self.next_seq + self.cap() {
            self.evict_oldest();
        }
        let i = self.index(ext);
        if self.slots[i].state == SlotState::Empty {
            self.slots[i] = Slot {
                state: SlotState::Gone,
                seq: ext,
                ..EMPTY_SLOT
            };
        }
        if d_seq > 0 {
            self.highest_seq = ext;
        }
    }

    /// After decoding the packet that [`JitterBuffer::pop`] just returned:
    /// its real duration in RTP timestamp units (from the decoder). Corrects
    /// the playout cursor and teaches the buffer the packet time.
    pub fn set_packet_duration(&mut self, duration: u32) {
        let Some((ts, end, _)) = self.last_popped else {
            return;
        };
        let duration = i64::from(duration);
        if self.cursor == end {
            self.cursor = ts + duration;
            self.last_popped = Some((ts, self.cursor, true));
        }
        if self.ptime_plausible(duration) {
            self.ptime = duration;
        }
    }

    /// The next thing to play in the frame that is due at `now`. Call it
    /// until it returns [`Popped::Nothing`] (or until you hold a frame of
    /// audio), once per 20 ms tick.
    pub fn pop(&mut self, now: Instant) -> Popped<'_> {
        let Some(epoch) = self.epoch else {
            return Popped::Nothing;
        };
        let now = micros_since(epoch, now);
        if !self.synced {
            return Popped::Nothing;
        }
        if !self.started {
            if self.count == 0 || (now as f64) < self.first_arrival as f64 + self.target_us {
                return Popped::Nothing;
            }
            let Some((head, _)) = self.head() else {
                return Popped::Nothing;
            };
            // Anchor the mapping: the first packet plays now.
            let ts = self.slots[self.index(head)].ts;
            self.clear_range(self.next_seq, head);
            self.next_seq = head;
            self.base_time = now;
            self.base_ts = ts;
            self.cursor = ts;
            self.started = true;
            self.loss_gap = false;
            self.delay_est = None;
            self.above_since = None;
            self.below_since = None;
        }
        let play = self.play_ts(now);
        if self.cursor < play {
            // The caller missed ticks: what it did not play is gone.
            self.cursor = play;
            self.last_popped = None;
        }
        let horizon = play + self.frame_ts;
        loop {
            let Some((head, gap)) = self.head() else {
                self.fill_to(horizon);
                return Popped::Nothing;
            };
            let slot = self.slots[self.index(head)];
            if slot.ts + self.ptime <= self.cursor {
                // Its time has passed entirely.
                self.commit(head, gap);
                self.stats.expired += 1;
                continue;
            }
            if self.cursor >= horizon {
                // The caller already holds this frame's audio.
                return Popped::Nothing;
            }
            if slot.ts > self.cursor {
                if gap > 0 || self.loss_gap {
                    self.stats.lost += gap;
                    self.clear_range(self.next_seq, head);
                    self.next_seq = head;
                    self.loss_gap = true;
                    let duration = slot.ts.min(horizon) - self.cursor;
                    self.cursor += duration;
                    self.last_popped = None;
                    return Popped::Lost {
                        duration: u32::try_from(duration).unwrap_or(u32::MAX),
                    };
                }
                if slot.ts >= horizon {
                    self.fill_to(horizon);
                    return Popped::Nothing;
                }
                let gap_ts = slot.ts - self.cursor;
                if slot.marker {
                    // A talk spurt starts a little after the frame grid:
                    // shorten the silence before it.
                    self.shift(gap_ts);
                } else {
                    self.cursor = slot.ts;
                    self.last_popped = None;
                    return Popped::Lost {
                        duration: u32::try_from(gap_ts).unwrap_or(u32::MAX),
                    };
                }
            }
            let skip = self.cursor - slot.ts;
            self.commit(head, gap);
            self.loss_gap = false;
            self.cursor = slot.ts + self.ptime;
            self.last_popped = Some((slot.ts, self.cursor, false));
            self.last_played = Some((head, slot.ts));
            self.stats.played += 1;
            let start = self.index(head) * self.config.max_payload;
            return Popped::Packet(Packet {
                seq: slot.seq as u16,
                timestamp: slot.ts as u32,
                marker: slot.marker,
                payload: &self.payloads[start..start + slot.len],
                skip: u32::try_from(skip).unwrap_or(u32::MAX),
            });
        }
    }

    // ---- push internals ----

    fn push_synced(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], now: i64) -> PushOutcome {
        let ext_seq = unwrap16(self.highest_seq, seq);
        let ext_ts = unwrap32(self.highest_ts, timestamp);
        let d_seq = ext_seq - self.highest_seq;
        let slack = self.due_us(ext_ts) - now;
        let far_seq = !(-MAX_MISORDER..=MAX_DROPOUT).contains(&d_seq);
        let bad_time = d_seq > 0 && !(-LATE_RESYNC_US..=self.max_delay_us).contains(&slack);
        if far_seq || bad_time {
            if !far_seq && (d_seq == 1 || marker) {
                // Same packet stream, new timeline: resync at once.
                self.probe = None;
                self.stats.resyncs += 1;
                self.sync(seq, timestamp, marker, now, Source::Slice(payload));
                return PushOutcome::Queued;
            }
            return self.probation(seq, timestamp, marker, payload, now);
        }
        // A normal packet: whatever was on probation was a stray.
        self.probe = None;
        let cap = self.cap();
        let i = self.index(ext_seq);
        let slot = self.slots[i];
        if ext_seq >= self.next_seq && slot.state != SlotState::Empty && slot.seq == ext_seq {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        // Late and reordered packets count: they are what jitter is.
        self.update_jitter(ext_ts, now);
        if ext_seq < self.next_seq {
            if self.started || self.highest_seq - ext_seq >= cap {
                self.stats.late += 1;
                return PushOutcome::TooLate;
            }
            // Before playout starts, the stream may begin earlier than its
            // first arrival suggested.
            self.next_seq = ext_seq;
        }
        if self.started && ext_ts + self.ptime <= self.cursor {
            if ext_seq < self.next_seq + cap && slot.state == SlotState::Empty {
                self.slots[i] = Slot {
                    state: SlotState::Gone,
                    seq: ext_seq,
                    ..EMPTY_SLOT
                };
            }
            self.stats.late += 1;
            return PushOutcome::TooLate;
        }

        // Bounds: the sequence window, then the audio span.
        let mut overflow = false;
        while ext_seq >= self.next_seq + cap {
            self.evict_oldest();
            overflow = true;
        }
        while let Some((lo, hi, first)) = self.ts_range() {
            if hi - ext_ts >= self.max_span_ts || (ext_ts - lo >= self.max_span_ts && first >= ext_seq) {
                // This packet would itself be the one to go.
                self.stats.overflow += 1;
                return PushOutcome::Overflow;
            }
            if ext_ts - lo < self.max_span_ts {
                break;
            }
            while self.next_seq <= first {
                self.evict_oldest();
            }
            overflow = true;
        }

        self.store(ext_seq, ext_ts, marker, Source::Slice(payload));
        self.stats.queued += 1;
        if d_seq > 0 {
            self.highest_seq = ext_seq;
            self.highest_ts = ext_ts;
        }
        self.learn_ptime(ext_seq, ext_ts, marker);
        if d_seq > 0 && self.started {
            let spurt_start = marker && self.count == 1 && ext_ts >= self.cursor;
            if spurt_start {
                self.adjust_at_spurt_start(ext_ts, now);
            }
            let slack = self.due_us(ext_ts) - now;
            self.adapt(slack as f64, now, !spurt_start);
        }
        if overflow {
            PushOutcome::Overflow
        } else {
            PushOutcome::Queued
        }
    }

    /// Starts afresh with this packet: flush, new provisional mapping.
    fn sync(&mut self, seq: u16, timestamp: u32, marker: bool, now: i64, source: Source<'_>) {
        self.clear_slots();
        self.synced = true;
        self.started = false;
        let seq = i64::from(seq);
        let ts = i64::from(timestamp);
        self.next_seq = seq;
        self.highest_seq = seq;
        self.highest_ts = ts;
        self.first_arrival = now;
        self.base_time = limit(i128::from(now) + self.target_us as i128);
        self.base_ts = ts;
        self.cursor = ts;
        self.loss_gap = false;
        self.last_popped = None;
        self.last_played = None;
        self.last_transit = None;
        self.delay_est = None;
        self.above_since = None;
        self.below_since = None;
        self.store(seq, ts, marker, source);
        self.stats.queued += 1;
    }

    /// RFC 3550 Appendix A.1 probation for a discontinuous packet.
    fn probation(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], now: i64) -> PushOutcome {
        if let Some(probe) = self.probe {
            let follows =
                seq == probe.seq.wrapping_add(1) && i64::from(timestamp.wrapping_sub(probe.ts)) < self.max_span_ts;
            if follows {
                self.probe = None;
                self.stats.resyncs += 1;
                self.sync(
                    probe.seq,
                    probe.ts,
                    probe.marker,
                    probe.arrival,
                    Source::Probe(probe.len),
                );
                return self.push_synced(seq, timestamp, marker, payload, now);
            }
        }
        let start = self.config.max_packets * self.config.max_payload;
        self.payloads[start..start + payload.len()].copy_from_slice(payload);
        self.probe = Some(Probe {
            seq,
            ts: timestamp,
            marker,
            len: payload.len(),
            arrival: now,
        });
        self.stats.probation += 1;
        PushOutcome::Probation
    }

    /// Copies a packet into its slot (which must be free).
    fn store(&mut self, seq: i64, ts: i64, marker: bool, source: Source<'_>) {
        let i = self.index(seq);
        let start = i * self.config.max_payload;
        let len = match source {
            Source::Slice(payload) => {
                self.payloads[start..start + payload.len()].copy_from_slice(payload);
                payload.len()
            }
            Source::Probe(len) => {
                let from = self.config.max_packets * self.config.max_payload;
                self.payloads.copy_within(from..from + len, start);
                len
            }
        };
        self.slots[i] = Slot {
            state: SlotState::Full,
            seq,
            ts,
            marker,
            len,
        };
        self.count += 1;
    }

    /// Drops whatever is at `next_seq` and advances it. A dropped packet
    /// moves the play position past its audio once playout has begun.
    fn evict_oldest(&mut self) {
        let seq = self.next_seq;
        let i = self.index(seq);
        let slot = self.slots[i];
        if slot.seq == seq {
            match slot.state {
                SlotState::Full => {
                    self.count -= 1;
                    self.stats.overflow += 1;
                    if self.started {
                        let end = slot.ts + self.ptime;
                        if end > self.cursor {
                            self.shift(end - self.cursor);
                        }
                    }
                }
                SlotState::Empty => {
                    if self.started {
                        self.stats.lost += 1;
                    }
                }
                SlotState::Gone => {}
            }
        } else if self.started && seq <= self.highest_seq {
            self.stats.lost += 1;
        }
        self.slots[i] = EMPTY_SLOT;
        self.next_seq += 1;
    }

    /// RFC 3550 §6.4.1 interarrival jitter, then the target delay.
    fn update_jitter(&mut self, ext_ts: i64, now: i64) {
        let clock = self.clock as f64;
        let transit = now as f64 * clock / 1e6 - ext_ts as f64;
        if let Some(previous) = self.last_transit {
            let d = (transit - previous).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        let jitter_us = self.jitter * 1e6 / clock;
        let raw = (2.0 * jitter_us + FRAME_US as f64).clamp(self.min_target_us(), self.max_target_us());
        if raw > self.target_us {
            self.target_us = raw;
        } else {
            self.target_us += (raw - self.target_us) / 64.0;
        }
    }

    /// Learns the packet time from a neighbour in sequence (not across a talk
    /// spurt start, whose timestamp jump includes the silence).
    fn learn_ptime(&mut self, seq: i64, ts: i64, marker: bool) {
        let before = self.slots[self.index(seq - 1)];
        if !marker && before.state == SlotState::Full && before.seq == seq - 1 {
            self.learn_ptime_from(ts - before.ts);
        }
        if let Some((played_seq, played_ts)) = self.last_played {
            if !marker && played_seq == seq - 1 {
                // The packet just played: also correct where its audio ends
                // (unless the caller already did, from the decoder).
                let delta = ts - played_ts;
                if self.ptime_plausible(delta) {
                    if let Some((popped_ts, end, false)) = self.last_popped {
                        if popped_ts == played_ts && self.cursor == end {
                            self.cursor = ts;
                            self.last_popped = Some((played_ts, ts, false));
                        }
                    }
                    self.ptime = delta;
                }
            }
        }
        let after = self.slots[self.index(seq + 1)];
        if after.state == SlotState::Full && after.seq == seq + 1 && !after.marker {
            self.learn_ptime_from(after.ts - ts);
        }
    }

    fn learn_ptime_from(&mut self, delta: i64) {
        if self.ptime_plausible(delta) {
            self.ptime = delta;
        }
    }

    fn ptime_plausible(&self, delta: i64) -> bool {
        let us = self.ts_to_us(delta);
        (MIN_PTIME_US..=MAX_PTIME_US).contains(&us)
    }

    /// A talk spurt starts (marker bit, nothing else queued): move its
    /// playout towards the target while nothing is playing.
    fn adjust_at_spurt_start(&mut self, ts: i64, now: i64) {
        let slack = (self.due_us(ts) - now) as f64;
        let excess = slack - self.target_us;
        if excess >= FRAME_US as f64 && ts >= self.cursor + self.frame_ts {
            // Shrink slowly: one frame per spurt.
            self.shift(self.frame_ts);
            self.stats.spurt_adjustments += 1;
        } else if excess <= -(FRAME_US as f64) / 2.0 {
            // Grow at once, in whole frames.
            let frames = (-excess / FRAME_US as f64).ceil().min(1000.0) as i64;
            self.shift(-frames * self.frame_ts);
            self.stats.spurt_adjustments += 1;
        }
    }

    /// Updates the delay estimate with one packet's slack and, if `act`,
    /// drops or stretches a frame when the delay has been off target for long
    /// enough.
    fn adapt(&mut self, slack: f64, now: i64, act: bool) {
        let estimate = self.delay_est.map_or(slack, |e| e + (slack - e) / 16.0);
        self.delay_est = Some(estimate);
        let frame = FRAME_US as f64;
        if !act {
            self.above_since = None;
            self.below_since = None;
        } else if estimate > self.target_us + frame {
            self.below_since = None;
            let since = *self.above_since.get_or_insert(now);
            if now - since >= DROP_HOLD_US && self.can_drop() {
                self.shift(self.frame_ts);
                self.stats.drops += 1;
                self.above_since = Some(now);
            }
        } else if estimate < self.target_us - frame / 2.0 {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            if now - since >= STRETCH_HOLD_US {
                self.shift(-self.frame_ts);
                self.stats.stretches += 1;
                self.below_since = Some(now);
            }
        } else {
            self.above_since = None;
            self.below_since = None;
        }
    }

    /// True if at least two frames of audio are queued past the cursor, so
    /// dropping one leaves one to play.
    fn can_drop(&self) -> bool {
        self.ts_range()
            .is_some_and(|(_, hi, _)| hi + self.ptime - self.cursor >= 2 * self.frame_ts)
    }

    /// Moves the play position by `delta` timestamp units (positive: ahead,
    /// less delay; negative: back, more delay), keeping what the caller holds
    /// (`cursor − play`) unchanged.
    fn shift(&mut self, delta: i64) {
        self.base_ts = limit(i128::from(self.base_ts) + i128::from(delta));
        self.cursor = limit(i128::from(self.cursor) + i128::from(delta));
        self.last_popped = None;
        let delta_us = self.ts_to_us(delta) as f64;
        if let Some(estimate) = self.delay_est.as_mut() {
            *estimate -= delta_us;
        }
    }

    // ---- pop internals ----

    /// The lowest queued sequence number and how many sequence numbers before
    /// it were never received.
    fn head(&self) -> Option<(i64, u64)> {
        if self.count == 0 {
            return None;
        }
        let mut gap = 0;
        let mut seq = self.next_seq;
        while seq <= self.highest_seq {
            let slot = &self.slots[self.index(seq)];
            match slot.state {
                SlotState::Full if slot.seq == seq => return Some((seq, gap)),
                SlotState::Gone if slot.seq == seq => {}
                _ => gap += 1,
            }
            seq += 1;
        }
        None
    }

    /// Removes `head` (and the holes before it) from the buffer.
    fn commit(&mut self, head: i64, gap: u64) {
        self.stats.lost += gap;
        self.clear_range(self.next_seq, head);
        let i = self.index(head);
        if self.slots[i].state == SlotState::Full {
            self.count -= 1;
        }
        self.slots[i] = EMPTY_SLOT;
        self.next_seq = head + 1;
    }

    /// On `Nothing`: the caller fills up to the horizon itself.
    fn fill_to(&mut self, horizon: i64) {
        if self.cursor < horizon {
            self.cursor = horizon;
            self.last_popped = None;
        }
    }

    // ---- helpers ----

    fn cap(&self) -> i64 {
        self.slots.len() as i64
    }

    fn index(&self, seq: i64) -> usize {
        seq.rem_euclid(self.cap()) as usize
    }

    /// Empties the slots for sequence numbers `from..to` (no `Full` ones).
    fn clear_range(&mut self, from: i64, to: i64) {
        let mut seq = from;
        while seq < to {
            let i = self.index(seq);
            if self.slots[i].state != SlotState::Full {
                self.slots[i] = EMPTY_SLOT;
            }
            seq += 1;
        }
    }

    fn clear_slots(&mut self) {
        self.slots.fill(EMPTY_SLOT);
        self.count = 0;
    }

    /// Lowest and highest queued timestamp, and the lowest queued sequence
    /// number.
    fn ts_range(&self) -> Option<(i64, i64, i64)> {
        if self.count == 0 {
            return None;
        }
        let mut range: Option<(i64, i64, i64)> = None;
        let mut seq = self.next_seq;
        while seq <= self.highest_seq {
            let slot = &self.slots[self.index(seq)];
            if slot.state == SlotState::Full && slot.seq == seq {
                range = Some(match range {
                    None => (slot.ts, slot.ts, seq),
                    Some((lo, hi, first)) => (lo.min(slot.ts), hi.max(slot.ts), first),
                });
            }
            seq += 1;
        }
        range
    }

    /// Microseconds since the epoch, which the first arrival sets.
    fn arrival_us(&mut self, arrival: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(arrival);
        micros_since(epoch, arrival)
    }

    /// The play position at `now`: the mapping, on the frame grid.
    fn play_ts(&self, now: i64) -> i64 {
        let frames = (now - self.base_time + FRAME_US / 2).div_euclid(FRAME_US);
        limit(i128::from(self.base_ts) + i128::from(frames) * i128::from(self.frame_ts))
    }

    /// When the audio at timestamp `ts` plays, by the mapping (µs).
    fn due_us(&self, ts: i64) -> i64 {
        limit(i128::from(self.base_time) + i128::from(self.ts_to_us(ts - self.base_ts)))
    }

    fn ts_to_us(&self, ts: i64) -> i64 {
        limit(i128::from(ts) * 1_000_000 / i128::from(self.clock))
    }

    fn us_to_ts(&self, us: i64) -> i64 {
        limit(i128::from(us) * i128::from(self.clock) / 1_000_000)
    }

    fn min_target_us(&self) -> f64 {
        self.config.min_target.as_micros() as f64
    }

    fn max_target_us(&self) -> f64 {
        self.config.max_target.as_micros() as f64
    }
}

/// Microseconds from `epoch` to `t` (0 if `t` is earlier), within `LIMIT`.
fn micros_since(epoch: Instant, t: Instant) -> i64 {
    i64::try_from(t.saturating_duration_since(epoch).as_micros()).map_or(LIMIT, |us| us.min(LIMIT))
}

fn duration_from_us(us: f64) -> Duration {
    Duration::from_micros(us.max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// What one tick's pops produced.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Pkt { seq: u16, skip: u32 },
        Lost(u32),
    }

    /// Pops until `Nothing`, as a caller does once per tick.
    fn tick(jb: &mut JitterBuffer, now: Instant) -> Vec<Ev> {
        let mut out = Vec::new();
        loop {
            match jb.pop(now) {
                Popped::Packet(p) => out.push(Ev::Pkt {
                    seq: p.seq,
                    skip: p.skip,
                }),
                Popped::Lost { duration } => out.push(Ev::Lost(duration)),
                Popped::Nothing => return out,
            }
            assert!(out.len() < 100, "pop never returned Nothing");
        }
    }

    fn seqs(evs: &[Ev]) -> Vec<u16> {
        evs.iter()
            .filter_map(|e| match e {
                Ev::Pkt { seq, .. } => Some(*seq),
                Ev::Lost(_) => None,
            })
            .collect()
    }

    /// A stream of `ptime_ms` packets at 48 kHz (ts step 48 per ms).
    struct Sender {
        seq: u16,
        ts: u32,
        ptime_ms: u32,
    }

    impl Sender {
        fn new(seq: u16, ts: u32, ptime_ms: u32) -> Self {
            Self { seq, ts, ptime_ms }
        }
        fn next(&mut self) -> (u16, u32) {
            let out = (self.seq, self.ts);
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(48 * self.ptime_ms);
            out
        }
    }

    fn jb48() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::new(48_000))
    }

    #[test]
    fn in_order_stream_plays_one_frame_per_tick() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(1000, 5000, 20);
        let mut played = Vec::new();
        for n in 0..100u32 {
            let now = t0 + n * 20 * MS;
            let (s, t) = tx.next();
            assert_eq!(jb.push(s, t, n == 0, &[1, 2, 3], now), PushOutcome::Queued);
            let evs = tick(&mut jb, now + 5 * MS);
            assert!(evs.iter().all(|e| matches!(e, Ev::Pkt { skip: 0, .. })), "{evs:?}");
            if n >= 3 {
                assert_eq!(evs.len(), 1, "tick {n}: {evs:?}");
            }
            played.extend(seqs(&evs));
        }
        let expected: Vec<u16> = (1000..1000 + played.len() as u16).collect();
        assert_eq!(played, expected);
        assert!(played.len() >= 97);
        assert_eq!(jb.stats().lost, 0);
        assert!(jb.len() <= 3);
    }

    #[test]
    fn playout_waits_for_the_target_delay() {
        let mut jb = jb48();
        let t0 = Instant::now();
        jb.push(1, 0, true, &[0], t0);
        // No jitter measured yet: 2·0 + one frame.
        assert_eq!(jb.target_delay(), Duration::from_millis(20));
        assert_eq!(tick(&mut jb, t0), vec![]);
        assert_eq!(tick(&mut jb, t0 + 19 * MS), vec![]);
        assert_eq!(tick(&mut jb, t0 + 20 * MS), vec![Ev::Pkt { seq: 1, skip: 0 }]);
    }

    #[test]
    fn payload_and_fields_are_returned() {
        let mut jb = jb48();
        let t0 = Instant::now();
        jb.push(7, 960, true, b"hello", t0);
        match jb.pop(t0 + 100 * MS) {
            Popped::Packet(p) => {
                assert_eq!(p.payload, b"hello");
                assert_eq!((p.seq, p.timestamp, p.marker, p.skip), (7, 960, true, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut jb = jb48();
        let t0 = Instant::now();
        // Pairs swapped: 1 0 3 2 5 4 ... each pair arrives within 20 ms.
        let mut played = Vec::new();
        for n in 0..60u16 {
            let seq = n ^ 1;
            let now = t0 + u32::from(n) * 20 * MS;
            assert_eq!(
                jb.push(seq, u32::from(seq) * 960, false, &[0], now),
                PushOutcome::Queued
            );
            played.extend(seqs(&tick(&mut jb, now + MS)));
        }
        for k in 60..80u32 {
            played.extend(seqs(&tick(&mut jb, t0 + k * 20 * MS + MS)));
        }
        // Every packet, in order, none lost: reordering raised the jitter
        // estimate (RFC 3550 counts it), so the delay grew by stretching.
        let expected: Vec<u16> = (0..60).collect();
        assert_eq!(played, expected);
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_played_once() {
        let mut jb = jb48();
        let t0 = Instant::now();
        assert_eq!(jb.push(10, 0, false, &[1], t0), PushOutcome::Queued);
        assert_eq!(jb.push(10, 0, false, &[1], t0), PushOutcome::Duplicate);
        assert_eq!(jb.push(11, 960, false, &[2], t0 + 20 * MS), PushOutcome::Queued);
        assert_eq!(jb.push(10, 0, false, &[1], t0 + 20 * MS), PushOutcome::Duplicate);
        assert_eq!(tick(&mut jb, t0 + 40 * MS), vec![Ev::Pkt { seq: 10, skip: 0 }]);
        // After it was played, a copy is too late.
        assert_eq!(jb.push(10, 0, false, &[1], t0 + 45 * MS), PushOutcome::TooLate);
        assert_eq!(tick(&mut jb, t0 + 60 * MS), vec![Ev::Pkt { seq: 11, skip: 0 }]);
        assert_eq!(jb.stats().duplicates, 2);
        assert_eq!(jb.stats().played, 2);
    }

    #[test]
    fn loss_is_reported_when_needed_then_late_copy_is_dropped() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut all = Vec::new();
        for n in 0..20u16 {
            let now = t0 + u32::from(n) * 20 * MS;
            if n != 8 {
                jb.push(n, u32::from(n) * 960, false, &[0], now);
            }
            all.extend(tick(&mut jb, now + MS));
        }
        // Packet 8 never came: exactly one frame of loss in its place.
        let at = all.iter().position(|e| *e == Ev::Lost(960)).unwrap();
        assert_eq!(all[at - 1], Ev::Pkt { seq: 7, skip: 0 });
        assert_eq!(all[at + 1], Ev::Pkt { seq: 9, skip: 0 });
        assert_eq!(all.iter().filter(|e| matches!(e, Ev::Lost(_))).count(), 1);
        assert_eq!(jb.stats().lost, 1);
        // Its late arrival changes nothing.
        assert_eq!(jb.push(8, 8 * 960, false, &[0], t0 + 400 * MS), PushOutcome::TooLate);
    }

    #[test]
    fn reordered_packet_arriving_just_in_time_is_not_lost() {
        let mut jb = jb48();
        let t0 = Instant::now();
        for n in 0..4u16 {
            jb.push(n, u32::from(n) * 960, false, &[0], t0 + u32::from(n) * 20 * MS);
        }
        // 4 is late by 30 ms, 5 arrives first.
        jb.push(5, 5 * 960, false, &[0], t0 + 100 * MS);
        let mut all = Vec::new();
        for k in 2..6u32 {
            all.extend(tick(&mut jb, t0 + k * 20 * MS));
        }
        jb.push(4, 4 * 960, false, &[0], t0 + 110 * MS);
        all.extend(tick(&mut jb, t0 + 120 * MS));
        all.extend(tick(&mut jb, t0 + 140 * MS));
        assert_eq!(seqs(&all), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(65_530, u32::MAX - 3 * 960, 20);
        let mut played = Vec::new();
        for n in 0..30u32 {
            let now = t0 + n * 20 * MS;
            let (s, t) = tx.next();
            assert_eq!(jb.push(s, t, false, &[0], now), PushOutcome::Queued, "{s}");
            played.extend(seqs(&tick(&mut jb, now + MS)));
        }
        let expected: Vec<u16> = (0..played.len() as u16).map(|i| 65_530u16.wrapping_add(i)).collect();
        assert_eq!(played, expected);
        assert!(played.contains(&65_535) && played.contains(&0) && played.contains(&3));
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(jb.stats().resyncs, 0);
        assert_eq!(jb.stats().probation, 0);
    }

    #[test]
    fn reordering_across_the_wrap() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let order = [65_533u16, 65_535, 65_534, 1, 0, 2, 3];
        for (k, &s) in order.iter().enumerate() {
            let ts = u32::from(s.wrapping_sub(65_533)) * 960;
            assert_eq!(
                jb.push(s, ts, false, &[0], t0 + k as u32 * 20 * MS),
                PushOutcome::Queued
            );
        }
        let mut played = Vec::new();
        for k in 2..12u32 {
            played.extend(seqs(&tick(&mut jb, t0 + k * 20 * MS)));
        }
        assert_eq!(played, vec![65_533, 65_534, 65_535, 0, 1, 2, 3]);
    }

    fn run_ptime(ptime_ms: u32) {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(1, 0, ptime_ms);
        let mut next_send = 0u32;
        let mut audio_end = None;
        for k in 0..300u32 {
            let now_ms = k * 20;
            while next_send <= now_ms {
                let (s, t) = tx.next();
                jb.push(s, t, false, &[0], t0 + next_send * MS);
                next_send += ptime_ms;
            }
            let evs = tick(&mut jb, t0 + now_ms * MS + MS);
            for e in &evs {
                assert!(matches!(e, Ev::Pkt { skip: 0, .. }), "ptime {ptime_ms}: {evs:?}");
            }
            // The audio handed out always reaches the end of this frame.
            if let Some(Ev::Pkt { seq, .. }) = evs.last() {
                audio_end = Some(u32::from(*seq) * ptime_ms);
            }
            if k > 10 {
                let end = audio_end.unwrap();
                let frame_start = (k - 10) * 20;
                assert!(end + ptime_ms >= frame_start, "ptime {ptime_ms}: starved at tick {k}");
            }
        }
        assert_eq!(jb.stats().lost, 0, "ptime {ptime_ms}");
        assert_eq!(jb.stats().late, 0, "ptime {ptime_ms}");
        assert_eq!(jb.stats().stretches, 0, "ptime {ptime_ms}");
        assert_eq!(jb.packet_time(), 48 * ptime_ms);
    }

    #[test]
    fn packet_times_from_10_to_60_ms() {
        for ptime in [10, 20, 30, 40, 60] {
            run_ptime(ptime);
        }
    }

    #[test]
    fn ten_ms_packets_come_two_per_tick() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(1, 0, 10);
        for n in 0..200u32 {
            let (s, t) = tx.next();
            jb.push(s, t, false, &[0], t0 + n * 10 * MS);
            if n % 2 == 1 && n > 20 {
                let evs = tick(&mut jb, t0 + n * 10 * MS + MS);
                assert_eq!(evs.len(), 2, "{evs:?}");
            } else if n % 2 == 1 {
                tick(&mut jb, t0 + n * 10 * MS + MS);
            }
        }
    }

    #[test]
    fn delay_spike_then_burst() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut played = Vec::new();
        let mut lost_frames = 0;
        // 20 ms packets; packets 50..60 are held back 250 ms, then all arrive
        // at once together with packet 62's regular arrival.
        let mut queue: Vec<(u16, u32)> = Vec::new();
        for k in 0..400u32 {
            let now = t0 + k * 20 * MS;
            let seq = k as u16;
            if (50..62).contains(&k) {
                queue.push((seq, k * 960));
            } else {
                if k == 62 {
                    for (s, t) in queue.drain(..) {
                        let r = jb.push(s, t, false, &[0], now);
                        assert!(matches!(r, PushOutcome::TooLate | PushOutcome::Queued), "{r:?}");
                    }
                }
                jb.push(seq, k * 960, false, &[0], now);
            }
            let evs = tick(&mut jb, now + MS);
            lost_frames += evs.iter().filter(|e| matches!(e, Ev::Lost(_))).count();
            played.extend(seqs(&evs));
            assert!(jb.len() <= 20);
        }
        // The packets overtaken by the play position were dropped as late...
        assert!(jb.stats().late >= 8, "{:?}", jb.stats());
        // ...the spike raised the target delay, which then came back down...
        assert!(played.windows(2).all(|w| w[0] < w[1]), "out of order");
        assert!(played.contains(&62) && played.contains(&63));
        assert!(played.len() >= 370, "{}", played.len());
        // ...and nothing was declared lost: late is not lost.
        assert_eq!(jb.stats().lost, 0);
        assert_eq!(lost_frames, 0);
        assert!(jb.delay_estimate().unwrap() < Duration::from_millis(120));
    }

    #[test]
    fn jitter_raises_the_target_and_it_decays_slowly() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut rng = 12345u64;
        let mut rand = move || {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (rng >> 33) % 40
        };
        for n in 0..300u32 {
            let jitter = Duration::from_millis(rand());
            jb.push(n as u16, n * 960, false, &[0], t0 + n * 20 * MS + jitter);
        }
        let jittery = jb.target_delay();
        assert!(jb.jitter() > Duration::from_millis(8), "{:?}", jb.jitter());
        assert!(jittery > Duration::from_millis(40), "{jittery:?}");
        assert!(jittery <= Duration::from_millis(200));
        for n in 300..320u32 {
            jb.push(n as u16, n * 960, false, &[0], t0 + n * 20 * MS);
        }
        let later = jb.target_delay();
        assert!(
            later < jittery && later > Duration::from_millis(25),
            "{jittery:?} {later:?}"
        );
        for n in 320..1000u32 {
            jb.push(n as u16, n * 960, false, &[0], t0 + n * 20 * MS);
        }
        assert!(jb.target_delay() < Duration::from_millis(22), "{:?}", jb.target_delay());
    }

    /// Runs a sender whose clock is off by `ppm` parts per million for
    /// `seconds`; returns the buffer.
    fn run_drift(ppm: i64, seconds: u32) -> (JitterBuffer, u64) {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(40_000, 0, 20);
        let mut sent = 0u64;
        let mut max_len = 0;
        let mut lost_events = 0u64;
        // Sender's packet n is sent at n·20 ms of its own clock, i.e.
        // n·20·(1 − ppm·1e-6) ms of ours.
        let mut next_send_us = 0i64;
        for k in 0..(seconds * 50) {
            let now_us = i64::from(k) * 20_000;
            while next_send_us <= now_us {
                let (s, t) = tx.next();
                let at = t0 + Duration::from_micros(next_send_us as u64);
                assert_ne!(jb.push(s, t, false, &[0], at), PushOutcome::Overflow);
                sent += 1;
                next_send_us = (sent as i64 * 20_000 * (1_000_000 - ppm)) / 1_000_000;
            }
            let evs = tick(&mut jb, t0 + Duration::from_micros(now_us as u64 + 1000));
            lost_events += evs.iter().filter(|e| matches!(e, Ev::Lost(_))).count() as u64;
            max_len = max_len.max(jb.len());
        }
        assert!(max_len <= 5, "max_len {max_len}");
        assert_eq!(jb.stats().lost, 0);
        (jb, lost_events)
    }

    #[test]
    fn fast_sender_drift_is_absorbed_by_drops() {
        // 0.5 % fast over 2 minutes: 600 ms of extra audio.
        let (jb, _) = run_drift(5000, 120);
        let drops = jb.stats().drops;
        assert!((20..=40).contains(&drops), "drops {drops}");
        assert!(jb.delay_estimate().unwrap() < Duration::from_millis(80));
        assert_eq!(jb.stats().overflow, 0);
        assert_eq!(jb.stats().resyncs, 0);
    }

    #[test]
    fn slow_sender_drift_is_absorbed_by_stretches() {
        let (jb, lost_events) = run_drift(-5000, 120);
        let stretches = jb.stats().stretches;
        assert!((20..=40).contains(&stretches), "stretches {stretches}");
        assert!(lost_events <= stretches);
        assert!(jb.delay_estimate().unwrap() > Duration::from_millis(5));
        assert_eq!(jb.stats().resyncs, 0);
    }

    #[test]
    fn dropped_frame_skips_into_long_packets() {
        // 60 ms packets from a fast sender: drops are one frame (960), not a
        // whole packet.
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut tx = Sender::new(1, 0, 60);
        let mut sent = 0i64;
        let mut next_us = 0i64;
        let mut skips = Vec::new();
        for k in 0..(60 * 50) {
            let now_us = i64::from(k) * 20_000;
            while next_us <= now_us {
                let (s, t) = tx.next();
                jb.push(s, t, false, &[0], t0 + Duration::from_micros(next_us as u64));
                sent += 1;
                next_us = sent * 60_000 * 990 / 1000;
            }
            for e in tick(&mut jb, t0 + Duration::from_micros(now_us as u64 + 500)) {
                if let Ev::Pkt { skip, .. } = e {
                    if skip > 0 {
                        skips.push(skip);
                    }
                }
            }
        }
        assert!(jb.stats().drops > 10);
        assert!(skips.iter().all(|&s| s == 960), "{skips:?}");
        assert!(jb.len() <= 4);
    }

    #[test]
    fn sender_restart_resyncs_after_probation() {
        let mut jb = jb48();
        let t0 = Instant::now();
        for n in 0..20u32 {
            jb.push(n as u16, n * 960, false, &[1], t0 + n * 20 * MS);
            tick(&mut jb, t0 + n * 20 * MS + MS);
        }
        // Restart: new random seq and timestamp.
        let at = t0 + 400 * MS;
        assert_eq!(jb.push(31_000, 7_777_777, true, &[2], at), PushOutcome::Probation);
        assert_eq!(
            jb.push(31_001, 7_777_777 + 960, false, &[3], at + 20 * MS),
            PushOutcome::Queued
        );
        assert_eq!(jb.stats().resyncs, 1);
        let mut played = Vec::new();
        for k in 0..10u32 {
            let now = at + (k + 2) * 20 * MS;
            jb.push(31_002 + k as u16, 7_777_777 + (k + 2) * 960, false, &[4], now);
            played.extend(seqs(&tick(&mut jb, now + MS)));
        }
        assert_eq!(&played[..3], &[31_000, 31_001, 31_002]);
    }

    #[test]
    fn a_stray_packet_does_not_resync() {
        let mut jb = jb48();
        let t0 = Instant::now();
        for n in 0..10u32 {
            jb.push(n as u16, n * 960, false, &[1], t0 + n * 20 * MS);
        }
        assert_eq!(jb.push(20_000, 99, false, &[9], t0 + 200 * MS), PushOutcome::Probation);
        assert_eq!(jb.push(10, 10 * 960, false, &[1], t0 + 200 * MS), PushOutcome::Queued);
        assert_eq!(
            jb.push(20_001, 99 + 960, false, &[9], t0 + 220 * MS),
            PushOutcome::Probation
        );
        assert_eq!(jb.stats().resyncs, 0);
        assert_eq!(jb.len(), 11);
    }

    #[test]
    fn timestamp_jump_with_consecutive_seq_resyncs_at_once() {
        let mut jb = jb48();
        let t0 = Instant::now();
        for n in 0..10u32 {
            jb.push(n as u16, n * 960, false, &[1], t0 + n * 20 * MS);
        }
        // Same sequence, timestamps jump 10 s ahead (another source behind a
        // B2BUA, say).
        assert_eq!(
            jb.push(10, 480_000 + 10 * 960, false, &[1], t0 + 200 * MS),
            PushOutcome::Queued
        );
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(jb.len(), 1);
    }

    #[test]
    fn talk_spurts_after_silence_play_on_time() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut seq = 0u16;
        let mut played = Vec::new();
        let mut lost = 0;
        // Talk 1 s, silent 1 s (no packets, DTX), talk again; seq continues,
        // timestamps jump over the silence, marker on each spurt's first packet.
        for k in 0..150u32 {
            let now = t0 + k * 20 * MS;
            let talking = (k / 50) % 2 == 0;
            if talking {
                jb.push(seq, k * 960, k % 50 == 0, &[0], now);
                seq += 1;
            }
            let evs = tick(&mut jb, now + MS);
            lost += evs.iter().filter(|e| matches!(e, Ev::Lost(_))).count();
            played.extend(seqs(&evs));
        }
        assert_eq!(lost, 0);
        assert_eq!(jb.stats().lost, 0);
        let expected: Vec<u16> = (0..played.len() as u16).collect();
        assert_eq!(played, expected);
        assert!(played.len() >= 97);
    }

    #[test]
    fn talk_spurt_start_grows_delay_to_new_target() {
        let mut jb = jb48();
        let t0 = Instant::now();
        // Steady start.
        for n in 0..50u32 {
            jb.push(n as u16, n * 960, n == 0, &[0], t0 + n * 20 * MS);
            tick(&mut jb, t0 + n * 20 * MS + MS);
        }
        // Silence: everything played out.
        for k in 50..60u32 {
            tick(&mut jb, t0 + k * 20 * MS + MS);
        }
        assert!(jb.is_empty());
        let before = jb.stats().spurt_adjustments;
        // Very jittery spurt raises the target...
        jb.target_us = 120_000.0;
        // ...and the next spurt starts with the longer delay, inaudibly.
        jb.push(50, 60 * 960, true, &[0], t0 + 1200 * MS);
        assert_eq!(jb.stats().spurt_adjustments, before + 1);
        let slack = jb.due_us(60 * 960) - micros_since(jb.epoch.unwrap(), t0 + 1200 * MS);
        assert!(slack >= 110_000, "{slack}");
        assert_eq!(jb.stats().stretches, 0);
    }

    #[test]
    fn overflow_keeps_the_buffer_bounded() {
        let mut jb = JitterBuffer::new(JitterConfig {
            max_packets: 8,
            ..JitterConfig::new(8000)
        });
        let t0 = Instant::now();
        // No pops at all, all arriving at once: the window evicts the oldest.
        let mut outcomes = Vec::new();
        for n in 0..20u16 {
            outcomes.push(jb.push(n, u32::from(n) * 160, false, &[0; 160], t0));
            assert!(jb.len() <= 8);
        }
        assert!(outcomes[..8].iter().all(|o| *o == PushOutcome::Queued));
        assert!(outcomes[8..].iter().all(|o| *o == PushOutcome::Overflow));
        assert_eq!(jb.stats().overflow, 12);
        // The span bound: 60 ms packets at 8 kHz arriving twice as fast as
        // real time, never popped: at most 500 ms of audio is held.
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut overflows = 0;
        for n in 0..15u16 {
            let r = jb.push(n, u32::from(n) * 480, false, &[0; 10], t0 + u32::from(n) * 30 * MS);
            overflows += usize::from(r == PushOutcome::Overflow);
            assert!(jb.span() < 4000, "{}", jb.span());
        }
        assert_eq!(jb.len(), 9);
        assert_eq!(overflows, 6);
    }

    #[test]
    fn too_large_payloads_are_refused() {
        let mut jb = JitterBuffer::new(JitterConfig {
            max_payload: 4,
            ..JitterConfig::default()
        });
        let t0 = Instant::now();
        assert_eq!(jb.push(1, 0, false, &[0; 5], t0), PushOutcome::TooLarge);
        assert_eq!(jb.push(1, 0, false, &[0; 4], t0), PushOutcome::Queued);
        assert_eq!(jb.stats().too_large, 1);
    }

    #[test]
    fn placeholders_are_not_losses() {
        let mut jb = jb48();
        let t0 = Instant::now();
        let mut evs = Vec::new();
        for n in 0..20u16 {
            let now = t0 + u32::from(n) * 20 * MS;
            if (8..12).contains(&n) {
                jb.push_placeholder(n); // e.g. RFC 4733 packets in between
            } else {
                jb.push(n, u32::from(n) * 960, n == 12, &[0], now);
            }
            evs.extend(tick(&mut jb, now + MS));
        }
        assert_eq!(jb.stats().lost, 0);
        assert!(!evs.iter().any(|e| matches!(e, Ev::Lost(_))), "{evs:?}");
    }

    #[test]
    fn empty_buffer_and_no_epoch() {
        let mut jb = jb48();
        assert_eq!(jb.pop(Instant::now()), Popped::Nothing);
        assert!(jb.is_empty());
        assert_eq!(jb.span(), 0);
        assert_eq!(jb.delay_estimate(), None);
        jb.set_packet_duration(960);
        jb.push_placeholder(3);
        jb.reset();
        assert!(format!("{jb:?}").starts_with("JitterBuffer"));
    }

    #[test]
    fn config_limits_apply() {
        let jb = JitterBuffer::new(JitterConfig {
            clock_rate: 0,
            max_packets: 0,
            max_delay: Duration::ZERO,
            max_payload: 0,
            min_target: Duration::from_secs(9),
            max_target: Duration::from_secs(9),
        });
        let c = jb.config();
        assert_eq!(c.clock_rate, 1000);
        assert_eq!(c.max_packets, 2);
        assert_eq!(c.max_delay, Duration::from_millis(60));
        assert_eq!(c.max_payload, 1);
        assert_eq!(c.max_target, Duration::from_millis(60));
        assert_eq!(c.min_target, Duration::from_millis(60));
    }

    // ---- property tests ----

    #[derive(Debug, Clone)]
    enum Op {
        Push {
            dseq: i16,
            dts: i32,
            marker: bool,
            len: usize,
        },
        Raw {
            seq: u16,
            ts: u32,
        },
        Placeholder {
            dseq: i16,
        },
        Pop,
        Advance {
            ms: u16,
        },
        Back {
            ms: u8,
        },
        Duration {
            ts: u32,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-3i16..6, -2000i32..4000, proptest::bool::weighted(0.1), 0usize..40)
                .prop_map(|(dseq, dts, marker, len)| Op::Push { dseq, dts, marker, len }),
            1 => (any::<u16>(), any::<u32>()).prop_map(|(seq, ts)| Op::Raw { seq, ts }),
            1 => (-5i16..10).prop_map(|dseq| Op::Placeholder { dseq }),
            4 => Just(Op::Pop),
            3 => (0u16..200).prop_map(|ms| Op::Advance { ms }),
            1 => any::<u8>().prop_map(|ms| Op::Back { ms }),
            1 => (0u32..20_000).prop_map(|ts| Op::Duration { ts }),
        ]
    }

    /// Checks the internal invariants.
    fn check(jb: &JitterBuffer) -> Result<(), TestCaseError> {
        let full = jb.slots.iter().filter(|s| s.state == SlotState::Full).count();
        prop_assert_eq!(full, jb.count);
        prop_assert!(jb.len() <= jb.config().max_packets);
        if let Some((lo, hi, first)) = jb.ts_range() {
            prop_assert!(hi - lo < jb.max_span_ts);
            prop_assert!(first >= jb.next_seq);
        }
        for s in jb.slots.iter().filter(|s| s.state == SlotState::Full) {
            prop_assert!(s.seq >= jb.next_seq && s.seq < jb.next_seq + jb.cap());
            prop_assert!(s.seq <= jb.highest_seq);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_operations_never_panic_and_stay_bounded(
            ops in prop::collection::vec(op(), 0..300),
            clock in prop_oneof![Just(8000u32), Just(48_000u32), 1000u32..100_000],
            max_packets in 2usize..40,
        ) {
            let mut jb = JitterBuffer::new(JitterConfig {
                max_packets,
                max_payload: 32,
                ..JitterConfig::new(clock)
            });
            let t0 = Instant::now() + Duration::from_secs(1);
            let mut now = t0;
            let (mut seq, mut ts) = (100u16, 1000u32);
            for op in ops {
                match op {
                    Op::Push { dseq, dts, marker, len } => {
                        seq = seq.wrapping_add(dseq as u16);
                        ts = ts.wrapping_add(dts as u32);
                        let payload = [7u8; 40];
                        let r = jb.push(seq, ts, marker, &payload[..len], now);
                        prop_assert_eq!(r == PushOutcome::TooLarge, len > 32);
                    }
                    Op::Raw { seq, ts } => {
                        jb.push(seq, ts, false, &[1], now);
                    }
                    Op::Placeholder { dseq } => jb.push_placeholder(seq.wrapping_add(dseq as u16)),
                    Op::Pop => {
                        for _ in 0..200 {
                            match jb.pop(now) {
                                Popped::Packet(p) => {
                                    prop_assert!(p.payload.len() <= 32);
                                    prop_assert!(p.payload.iter().all(|&b| b == 7 || b == 1));
                                }
                                Popped::Lost { duration } => prop_assert!(duration > 0),
                                Popped::Nothing => break,
                            }
                        }
                    }
                    Op::Advance { ms } => now += Duration::from_millis(u64::from(ms)),
                    Op::Back { ms } => now = now.checked_sub(Duration::from_millis(u64::from(ms))).unwrap_or(now),
                    Op::Duration { ts } => jb.set_packet_duration(ts),
                }
                check(&jb)?;
            }
        }

        #[test]
        fn every_packet_is_played_at_most_once(
            order in prop::collection::vec((0u16..40, 0u64..60), 1..80),
        ) {
            let mut jb = jb48();
            let t0 = Instant::now();
            let mut events: Vec<(u64, u16)> = order.iter().map(|&(s, d)| (u64::from(s) * 20 + d, s)).collect();
            events.sort();
            let mut played = Vec::new();
            let mut e = 0;
            for k in 0..200u64 {
                let now_ms = k * 20;
                while e < events.len() && events[e].0 <= now_ms {
                    let s = events[e].1;
                    jb.push(s, u32::from(s) * 960, false, &[s as u8], t0 + Duration::from_millis(events[e].0));
                    e += 1;
                }
                loop {
                    match jb.pop(t0 + Duration::from_millis(now_ms)) {
                        Popped::Packet(p) => {
                            prop_assert_eq!(p.payload, &[p.seq as u8][..]);
                            played.push(p.seq);
                        }
                        Popped::Lost { .. } => {}
                        Popped::Nothing => break,
                    }
                }
            }
            prop_assert!(played.windows(2).all(|w| w[0] < w[1]), "{:?}", played);
        }
    }
}
