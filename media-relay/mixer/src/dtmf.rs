//! DTMF key presses from RFC 4733 telephone-event packets.
//!
//! RFC 4733 §2.3 payload (one event, four bytes; the RTP timestamp of every
//! packet of an event is the event's start, §2.5.1.2):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A sender repeats the packet every few tens of milliseconds with a growing
//! `duration` while the key is held, then sends the final packet, E bit set,
//! three times (§2.5.1.4). An event longer than the 16-bit duration field
//! continues in a new *segment* whose timestamp is the previous one plus
//! 0xFFFF (§2.5.1.3).
//!
//! [`DtmfDetector`] turns that into one [`DtmfEvent`] per key press:
//!
//! * an event is identified by its RTP timestamp; a packet with a new
//!   timestamp starts a new event;
//! * the event is reported when its first E-bit packet arrives; the
//!   retransmitted end packets are ignored;
//! * if every end packet was lost, the event is reported when the next event
//!   starts, or by [`DtmfDetector::poll`] once no packet of it has arrived
//!   for [`END_TIMEOUT`];
//! * packets of an earlier event arriving late (timestamp up to 10 s older
//!   than the current event's) are ignored;
//! * events 0–15 are DTMF (RFC 4733 §3.2: '0'–'9', '*', '#', 'A'–'D'); other
//!   events (flash, tones) are counted and ignored.

use std::time::{Duration, Instant};

/// An un-ended event is reported after this long without any of its packets.
pub const END_TIMEOUT: Duration = Duration::from_millis(1000);

/// Older timestamps within this many seconds of the current event are late
/// packets of earlier events.
const STALE_WINDOW_S: u32 = 10;

/// One RFC 4733 §2.3 telephone-event payload, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code (§2.3.1; §3.2 for DTMF).
    pub event: u8,
    /// E bit: the end of the event (§2.3.2).
    pub end: bool,
    /// Power level, 0 to 63, in dB below 0 dBm0 (§2.3.4).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units (§2.3.5).
    pub duration: u16,
}

/// Parses the first event of a telephone-event payload; `None` if it is
/// shorter than four bytes. Bytes after the first four are ignored.
pub fn parse_telephone_event(payload: &[u8]) -> Option<TelephoneEvent> {
    let &[event, flags, d0, d1, ..] = payload else {
        return None;
    };
    Some(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        // R (0x40) is reserved: ignored on receipt (§2.3.3).
        volume: flags & 0x3F,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// The key for a DTMF event code (RFC 4733 §3.2): 0–9 → '0'–'9', 10 → '*',
/// 11 → '#', 12–15 → 'A'–'D'; `None` for other codes.
pub fn dtmf_digit(event: u8) -> Option<char> {
    const KEYS: &[u8; 16] = b"0123456789*#ABCD";
    KEYS.get(usize::from(event)).map(|&k| char::from(k))
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfEvent {
    /// '0'–'9', '*', '#', 'A'–'D'.
    pub digit: char,
    /// How long the key was held (the last reported duration, across
    /// segments), in milliseconds.
    pub duration_ms: u32,
    /// Power level, in dB below 0 dBm0 (0–63).
    pub volume: u8,
}

/// Counters of a [`DtmfDetector`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DtmfStats {
    /// Packets given to [`DtmfDetector::push`].
    pub packets: u64,
    /// Payloads shorter than four bytes.
    pub malformed: u64,
    /// Events that are not DTMF (codes above 15).
    pub ignored: u64,
    /// Key presses reported.
    pub events: u64,
    /// Key presses reported without an end packet (next event or timeout).
    pub unended: u64,
}

/// The event being received.
#[derive(Debug, Clone, Copy)]
struct Current {
    /// RTP timestamp of the current segment.
    ts: u32,
    event: u8,
    /// Duration of the segments before this one, in timestamp units.
    earlier: u64,
    /// Largest duration seen in this segment.
    duration: u16,
    volume: u8,
    reported: bool,
    last_packet: Instant,
}

/// Turns RFC 4733 telephone-event packets into key presses, each reported
/// once. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    clock_rate: u32,
    current: Option<Current>,
    /// A second event finished by the same packet, for [`DtmfDetector::poll`].
    ready: Option<DtmfEvent>,
    stats: DtmfStats,
}

impl DtmfDetector {
    /// A detector for telephone events on an RTP clock of `clock_rate` Hz
    /// (RFC 4733 §2.1: usually 8000, or the audio codec's rate).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            current: None,
            ready: None,
            stats: DtmfStats::default(),
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> &DtmfStats {
        &self.stats
    }

    /// Handles one telephone-event packet (its RTP timestamp and payload)
    /// received at `now`. Returns a key press when one is complete; a second
    /// one completed by the same packet waits for [`DtmfDetector::poll`].
    pub fn push(&mut self, timestamp: u32, payload: &[u8], now: Instant) -> Option<DtmfEvent> {
        self.stats.packets += 1;
        let Some(te) = parse_telephone_event(payload) else {
            self.stats.malformed += 1;
            return None;
        };
        if dtmf_digit(te.event).is_none() {
            self.stats.ignored += 1;
            return None;
        }
        if let Some(cur) = self.current.as_mut() {
            if cur.ts == timestamp && cur.event == te.event {
                // Another packet of the current event (an update, or a
                // retransmitted end packet).
                cur.duration = cur.duration.max(te.duration);
                cur.volume = te.volume;
                cur.last_packet = now;
                if te.end && !cur.reported {
                    cur.reported = true;
                    let cur = *cur;
                    return Some(self.report(&cur, false));
                }
                return None;
            }
            let behind = cur.ts.wrapping_sub(timestamp);
            if behind != 0 && behind <= STALE_WINDOW_S.saturating_mul(self.clock_rate) && behind < 1 << 31 {
                // A late packet of an earlier event.
                return None;
            }
            if !cur.reported
                && cur.event == te.event
                && cur.duration == u16::MAX
                && timestamp == cur.ts.wrapping_add(0xFFFF)
            {
                // §2.5.1.3: the next segment of a long event.
                cur.earlier += 0xFFFF;
                cur.ts = timestamp;
                cur.duration = te.duration;
                cur.volume = te.volume;
                cur.last_packet = now;
                if te.end {
                    cur.reported = true;
                    let cur = *cur;
                    return Some(self.report(&cur, false));
                }
                return None;
            }
        }
        // A new event. The previous one, if never ended, is reported now.
        let previous = match self.current.take() {
            Some(prev) if !prev.reported => Some(self.report(&prev, true)),
            _ => None,
        };
        let cur = Current {
            ts: timestamp,
            event: te.event,
            earlier: 0,
            duration: te.duration,
            volume: te.volume,
            reported: te.end,
            last_packet: now,
        };
        self.current = Some(cur);
        let this = te.end.then(|| self.report(&cur, false));
        match (previous, this) {
            (Some(p), Some(t)) => {
                self.ready = Some(t);
                Some(p)
            }
            (p, t) => p.or(t),
        }
    }

    /// A key press still to report: one completed together with another by
    /// the last [`DtmfDetector::push`], or an event without end packets and
    /// without any packet for [`END_TIMEOUT`].
    pub fn poll(&mut self, now: Instant) -> Option<DtmfEvent> {
        if let Some(event) = self.ready.take() {
            return Some(event);
        }
        let cur = self.current.as_mut()?;
        if cur.reported || now.saturating_duration_since(cur.last_packet) < END_TIMEOUT {
            return None;
        }
        cur.reported = true;
        let cur = *cur;
        Some(self.report(&cur, true))
    }

    fn report(&mut self, cur: &Current, unended: bool) -> DtmfEvent {
        self.stats.events += 1;
        if unended {
            self.stats.unended += 1;
        }
        let units = cur.earlier + u64::from(cur.duration);
        DtmfEvent {
            digit: dtmf_digit(cur.event).unwrap_or('?'),
            duration_ms: u32::try_from(units * 1000 / u64::from(self.clock_rate)).unwrap_or(u32::MAX),
            volume: cur.volume,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A §2.3 payload: event, E, volume, duration.
    fn te(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, (u8::from(end) << 7) | volume, d[0], d[1]]
    }

    fn ev(digit: char, duration_ms: u32) -> DtmfEvent {
        DtmfEvent {
            digit,
            duration_ms,
            volume: 10,
        }
    }

    /// Sends one key press the way RFC 4733 §2.5.1 senders do: updates every
    /// 50 ms (400 units at 8 kHz), then the end packet three times.
    fn key(d: &mut DtmfDetector, now: &mut Instant, event: u8, ts: u32, updates: u16) -> Vec<DtmfEvent> {
        let mut out = Vec::new();
        for k in 1..=updates {
            out.extend(d.push(ts, &te(event, false, 10, k * 400), *now));
            *now += Duration::from_millis(50);
        }
        for _ in 0..3 {
            out.extend(d.push(ts, &te(event, true, 10, updates * 400 + 80), *now));
        }
        out
    }

    #[test]
    fn parses_the_rfc_4733_layout() {
        // Event 5, E set, R set (ignored), volume 10, duration 800.
        let p = [0x05, 0b1100_1010, 0x03, 0x20];
        assert_eq!(
            parse_telephone_event(&p),
            Some(TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            })
        );
        let p = [0x0B, 0x3F, 0xFF, 0xFF, 0xAA];
        assert_eq!(
            parse_telephone_event(&p),
            Some(TelephoneEvent {
                event: 11,
                end: false,
                volume: 63,
                duration: 0xFFFF
            })
        );
        assert_eq!(parse_telephone_event(&[1, 2, 3]), None);
        assert_eq!(parse_telephone_event(&[]), None);
    }

    #[test]
    fn digit_table() {
        let all: String = (0..16).map(|e| dtmf_digit(e).unwrap()).collect();
        assert_eq!(all, "0123456789*#ABCD");
        assert_eq!(dtmf_digit(16), None); // flash
        assert_eq!(dtmf_digit(255), None);
    }

    #[test]
    fn one_press_with_three_end_packets_is_reported_once() {
        let mut d = DtmfDetector::new(8000);
        let mut now = Instant::now();
        // 4 updates: 1600 units, end at 1680 units = 210 ms.
        let out = key(&mut d, &mut now, 1, 1000, 4);
        assert_eq!(out, vec![ev('1', 210)]);
        assert_eq!(d.stats().events, 1);
        assert_eq!(d.poll(now + Duration::from_secs(5)), None);
    }

    #[test]
    fn a_sequence_of_digits() {
        let mut d = DtmfDetector::new(8000);
        let mut now = Instant::now();
        let mut out = Vec::new();
        let mut ts = 160_000u32;
        for event in [1u8, 2, 3, 10, 0, 11, 15] {
            out.extend(key(&mut d, &mut now, event, ts, 2));
            ts = ts.wrapping_add(4000);
            now += Duration::from_millis(200);
        }
        let digits: String = out.iter().map(|e| e.digit).collect();
        assert_eq!(digits, "123*0#D");
        assert!(out.iter().all(|e| e.duration_ms == 110));
    }

    #[test]
    fn the_same_digit_twice_is_two_presses() {
        let mut d = DtmfDetector::new(8000);
        let mut now = Instant::now();
        let mut out = key(&mut d, &mut now, 7, 0, 2);
        out.extend(key(&mut d, &mut now, 7, 4000, 2));
        assert_eq!(out, vec![ev('7', 110), ev('7', 110)]);
    }

    #[test]
    fn timestamps_wrap() {
        let mut d = DtmfDetector::new(8000);
        let mut now = Instant::now();
        let mut out = key(&mut d, &mut now, 4, u32::MAX - 100, 2);
        out.extend(key(&mut d, &mut now, 5, 3000, 2));
        assert_eq!(out, vec![ev('4', 110), ev('5', 110)]);
    }

    #[test]
    fn late_end_packet_of_previous_event_is_ignored() {
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        assert_eq!(d.push(1000, &te(1, true, 10, 800), now), Some(ev('1', 100)));
        assert_eq!(d.push(5000, &te(2, false, 10, 400), now), None);
        // A retransmitted end of '1' arrives after '2' started.
        assert_eq!(d.push(1000, &te(1, true, 10, 800), now), None);
        assert_eq!(d.push(5000, &te(2, true, 10, 800), now), Some(ev('2', 100)));
        assert_eq!(d.stats().events, 2);
    }

    #[test]
    fn lost_end_packets_are_reported_by_the_next_event() {
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        assert_eq!(d.push(1000, &te(3, false, 10, 400), now), None);
        assert_eq!(d.push(1000, &te(3, false, 10, 800), now), None);
        // All end packets lost; the next key starts.
        assert_eq!(d.push(9000, &te(4, false, 10, 400), now), Some(ev('3', 100)));
        assert_eq!(d.stats().unended, 1);
    }

    #[test]
    fn lost_end_packets_are_reported_after_a_timeout() {
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        assert_eq!(d.push(1000, &te(9, false, 10, 400), now), None);
        assert_eq!(d.poll(now + Duration::from_millis(999)), None);
        assert_eq!(d.poll(now + END_TIMEOUT), Some(ev('9', 50)));
        assert_eq!(d.poll(now + 2 * END_TIMEOUT), None);
        // A late end packet does not report it again.
        assert_eq!(d.push(1000, &te(9, true, 10, 480), now + 2 * END_TIMEOUT), None);
    }

    #[test]
    fn two_events_completed_by_one_packet() {
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        d.push(1000, &te(1, false, 10, 400), now);
        // '1' never ended; '2' arrives as a single end packet.
        assert_eq!(d.push(5000, &te(2, true, 10, 400), now), Some(ev('1', 50)));
        assert_eq!(d.poll(now), Some(ev('2', 50)));
        assert_eq!(d.poll(now), None);
    }

    #[test]
    fn long_event_in_segments() {
        // §2.5.1.3: at 8 kHz, 0xFFFF units ≈ 8.19 s per segment.
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        assert_eq!(d.push(100, &te(0, false, 10, 40_000), now), None);
        assert_eq!(d.push(100, &te(0, false, 10, 0xFFFF), now), None);
        let next = 100u32.wrapping_add(0xFFFF);
        assert_eq!(d.push(next, &te(0, false, 10, 8000), now), None);
        assert_eq!(d.push(next, &te(0, true, 10, 16_000), now), Some(ev('0', 10_191)));
        assert_eq!(d.stats().events, 1);
    }

    #[test]
    fn non_dtmf_and_malformed_payloads_are_counted() {
        let mut d = DtmfDetector::new(8000);
        let now = Instant::now();
        assert_eq!(d.push(0, &te(16, true, 0, 800), now), None);
        assert_eq!(d.push(0, &[1, 2], now), None);
        assert_eq!(
            *d.stats(),
            DtmfStats {
                packets: 2,
                malformed: 1,
                ignored: 1,
                events: 0,
                unended: 0
            }
        );
    }

    #[test]
    fn wideband_clock() {
        let mut d = DtmfDetector::new(48_000);
        let now = Instant::now();
        assert_eq!(d.push(0, &te(12, true, 10, 4800), now), Some(ev('A', 100)));
    }
}
