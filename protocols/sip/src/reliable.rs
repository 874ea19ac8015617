//! Reliable provisional responses (RFC 3262): the `100rel` option tag, the `RSeq` and `RAck` headers and
//! the PRACK method, on both sides of an INVITE.
//!
//! # UAS side: [`ReliableProvisionals`]
//!
//! One per incoming INVITE whose sender asked for reliability ([`Reliability::of`]: `Require: 100rel`, or
//! `Supported: 100rel`, which confgate takes up too). Every provisional response other than 100 goes
//! through [`ReliableProvisionals::send`], which adds `Require: 100rel` and an `RSeq` (§3: the first in
//! 1..2^31−1, chosen at random, then consecutive) and schedules its retransmissions: at T1, then at an
//! interval that doubles each time, with no cap (§3, unlike a 2xx's T2 cap), until the matching PRACK
//! arrives. After 64·T1 without it the machine reports [`UasOutput::GiveUp`] and the driver rejects the
//! INVITE with a 5xx (§3).
//!
//! - Only one reliable provisional is outstanding at a time (§3: "MUST NOT send a second reliable
//!   provisional response until the first is acknowledged"); later ones wait, up to [`MAX_QUEUED`], and
//!   go out, in order, as each PRACK arrives.
//! - A PRACK ([`ReliableProvisionals::on_prack`]) matches when its `RAck` names the outstanding
//!   response's RSeq and the INVITE's CSeq number and method (§3): it gets 200. Anything else gets 481,
//!   and a PRACK without a readable `RAck` gets 400 ([`PrackError::sip_status`]).
//! - A 2xx to the INVITE waits while a reliable provisional is unacknowledged
//!   ([`ReliableProvisionals::awaiting_prack`]). RFC 3262 §3 only requires this when the provisional
//!   carried SDP and allows it otherwise; confgate always waits, so that the PRACK never crosses the 2xx
//!   (pjsip's UAS does the same). Other final responses go at once.
//! - Once a final response is out ([`ReliableProvisionals::final_sent`]) retransmissions stop, but a
//!   PRACK for the response that was still outstanding is answered 200 (§3: "MUST be prepared to process
//!   PRACK requests for those outstanding responses").
//!
//! The machine follows the crate's sans-IO contract: after every call, drain
//! [`ReliableProvisionals::poll_output`] until `None`, and call [`ReliableProvisionals::handle_timeout`]
//! at [`ReliableProvisionals::poll_timeout`]. It never reads a clock.
//!
//! # UAC side: [`PrackClient`]
//!
//! For an INVITE confgate sends (advertising `Supported: 100rel`): [`PrackClient::on_provisional`] says
//! whether a provisional response must be acknowledged and with which `RAck` (§4). The sequence is kept
//! per early dialog (per To tag: a forking proxy may bring several), starts at the first RSeq seen, and
//! only the next number is acknowledged; a retransmission is not acknowledged again and a response out of
//! order is neither acknowledged nor processed further (§4). [`prack_request`] builds the PRACK in the
//! early dialog.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rsip::message::HasHeaders;
use rsip::{Method, Request, Response};

use crate::dialog::Dialog;
use crate::message;

/// The option tag of this extension (RFC 3262 §8).
pub const OPTION_TAG: &str = "100rel";

/// Reliable provisional responses held back while an earlier one waits for its PRACK; more are dropped
/// (they are progress reports, and a later one says at least as much).
pub const MAX_QUEUED: usize = 4;

/// What the sender of an INVITE said about reliable provisional responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// `Require: 100rel`: every provisional response but 100 MUST be sent reliably (RFC 3262 §3).
    Required,
    /// `Supported: 100rel`: the UAS MAY send them reliably.
    Supported,
    /// Neither: they MUST NOT be sent reliably.
    NotSupported,
}

impl Reliability {
    /// Reads the `Require` and `Supported` headers of `invite`.
    pub fn of<M: HasHeaders>(invite: &M) -> Self {
        if message::option_tags(invite, "Require").iter().any(|t| t == OPTION_TAG) {
            Reliability::Required
        } else if message::option_tags(invite, "Supported")
            .iter()
            .any(|t| t == OPTION_TAG)
        {
            Reliability::Supported
        } else {
            Reliability::NotSupported
        }
    }

    /// Whether confgate sends provisional responses reliably to this sender: when required, and when
    /// supported (the sender then acknowledges them, so ringing is not lost on a lossy path).
    pub fn reliable(self) -> bool {
        self != Reliability::NotSupported
    }
}

/// Why a PRACK cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrackError {
    /// The PRACK has no `RAck` header (RFC 3262 §7.2 requires one).
    #[error("PRACK without RAck header")]
    MissingRAck,
    /// The `RAck` value does not parse.
    #[error("RAck: {0}")]
    BadRAck(&'static str),
    /// No unacknowledged reliable provisional response matches (RFC 3262 §3: 481).
    #[error("no unacknowledged reliable provisional response matches the RAck")]
    NoMatch,
}

impl PrackError {
    /// The response to the PRACK: 400 for a missing or malformed `RAck` (RFC 3261 §8.2.2.3 for a
    /// malformed request), 481 when nothing matches (RFC 3262 §3).
    pub fn sip_status(&self) -> u16 {
        match self {
            PrackError::MissingRAck | PrackError::BadRAck(_) => 400,
            PrackError::NoMatch => 481,
        }
    }
}

/// The `RAck` header (RFC 3262 §7.2): the RSeq of the response acknowledged, and the CSeq number and
/// method of the request it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// `response-num`: the acknowledged response's RSeq.
    pub rseq: u32,
    /// `CSeq-num`: the INVITE's CSeq number.
    pub cseq: u32,
    /// `Method`: the INVITE's method.
    pub method: Method,
}

impl RAck {
    /// Parses `response-num LWS CSeq-num LWS Method` (RFC 3262 §7.2). Numbers are 1 to 2^32−1 digits
    /// only; the method is case-sensitive (RFC 3261 §7.1).
    ///
    /// # Errors
    ///
    /// [`PrackError::BadRAck`] naming the part at fault.
    pub fn parse(value: &str) -> Result<RAck, PrackError> {
        let mut parts = value.split_ascii_whitespace();
        let rseq = parts
            .next()
            .and_then(parse_number)
            .ok_or(PrackError::BadRAck("response-num is not a number from 1 to 2^32-1"))?;
        let cseq = parts
            .next()
            .and_then(|s| digits(s).and_then(|s| s.parse::<u32>().ok()))
            .ok_or(PrackError::BadRAck("CSeq-num is not a 32-bit number"))?;
        let method = parts
            .next()
            .and_then(|m| m.parse::<Method>().ok().filter(|p| p.to_string() == m))
            .ok_or(PrackError::BadRAck("method is not a SIP method"))?;
        if parts.next().is_some() {
            return Err(PrackError::BadRAck("more than three fields"));
        }
        Ok(RAck { rseq, cseq, method })
    }

    /// The `RAck` of `prack`.
    ///
    /// # Errors
    ///
    /// [`PrackError::MissingRAck`] or [`PrackError::BadRAck`].
    pub fn of(prack: &Request) -> Result<RAck, PrackError> {
        let value = message::header_value(prack, "RAck").ok_or(PrackError::MissingRAck)?;
        RAck::parse(&value)
    }
}

impl fmt::Display for RAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// `response-num` (RFC 3262 §7.1): 1 to 2^32−1.
fn parse_number(s: &str) -> Option<u32> {
    digits(s)?.parse::<u32>().ok().filter(|n| *n != 0)
}

/// The `RSeq` of a response (RFC 3262 §7.1), if it has a valid one.
pub fn rseq<M: HasHeaders>(msg: &M) -> Option<u32> {
    parse_number(message::header_value(msg, "RSeq")?.trim())
}

/// Whether a response was sent reliably: a 101–199 with `Require: 100rel` (RFC 3262 §4; a 100's tag is
/// ignored).
pub fn is_reliable(response: &Response) -> bool {
    (101..200).contains(&response.status_code.code())
        && message::option_tags(response, "Require")
            .iter()
            .any(|t| t == OPTION_TAG)
}

/// A random first RSeq, uniform in 1..2^31−1 (RFC 3262 §3).
pub fn random_rseq() -> u32 {
    rand::random::<u32>() % ((1 << 31) - 1) + 1
}

/// What the UAS machine asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasOutput {
    /// Send this provisional response (the first time or again) on the INVITE's server transaction.
    Send(Response),
    /// The outstanding reliable provisional response went 64·T1 without a PRACK: reject the INVITE with a
    /// 5xx (RFC 3262 §3). The machine sends nothing more.
    GiveUp,
}

/// A reliable provisional response on its way.
#[derive(Debug)]
struct Outstanding {
    response: Response,
    rseq: u32,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// The UAS side of RFC 3262 for one INVITE: see the module docs.
#[derive(Debug)]
pub struct ReliableProvisionals {
    t1: Duration,
    invite_cseq: u32,
    next_rseq: u32,
    outstanding: Option<Outstanding>,
    queued: VecDeque<Response>,
    outputs: VecDeque<UasOutput>,
    /// A final response went out, or the machine gave up: no more sending.
    finished: bool,
}

impl ReliableProvisionals {
    /// The machine for `invite` (the CSeq number PRACKs must name), with timer T1 and the first RSeq
    /// (taken into 1..2^31−1; [`random_rseq`] draws one as §3 recommends).
    pub fn new(invite: &Request, t1: Duration, first_rseq: u32) -> Self {
        let invite_cseq = message::cseq(invite).map_or(0, |(n, _)| n);
        Self {
            t1,
            invite_cseq,
            next_rseq: first_rseq.clamp(1, (1 << 31) - 1),
            outstanding: None,
            queued: VecDeque::new(),
            outputs: VecDeque::new(),
            finished: false,
        }
    }

    /// Sends `response` (a 101–199 to the INVITE) reliably: now if nothing is outstanding, else after the
    /// PRACKs of those before it. Returns `false` when it was dropped: not a 101–199, a final response
    /// already went out, or [`MAX_QUEUED`] are waiting.
    pub fn send(&mut self, response: Response, now: Instant) -> bool {
        if self.finished || !(101..200).contains(&response.status_code.code()) {
            return false;
        }
        if self.outstanding.is_some() {
            if self.queued.len() >= MAX_QUEUED {
                return false;
            }
            self.queued.push_back(response);
            return true;
        }
        self.transmit(response, now);
        true
    }

    fn transmit(&mut self, response: Response, now: Instant) {
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1).max(1);
        let response = message::with_header(response, "Require", OPTION_TAG);
        let response = message::with_header(response, "RSeq", &rseq.to_string());
        self.outputs.push_back(UasOutput::Send(response.clone()));
        self.outstanding = Some(Outstanding {
            response,
            rseq,
            interval: self.t1,
            next: now + self.t1,
            give_up: now + 64 * self.t1,
        });
    }

    /// A PRACK for this INVITE's dialog. `Ok`: it acknowledges the outstanding response (answer 200; the
    /// next held one, if any, goes out). `Err`: answer with [`PrackError::sip_status`].
    ///
    /// # Errors
    ///
    /// See [`PrackError`].
    pub fn on_prack(&mut self, prack: &Request, now: Instant) -> Result<RAck, PrackError> {
        let rack = RAck::of(prack)?;
        let matches = self
            .outstanding
            .as_ref()
            .is_some_and(|o| o.rseq == rack.rseq && rack.cseq == self.invite_cseq && rack.method == Method::Invite);
        if !matches {
            return Err(PrackError::NoMatch);
        }
        self.outstanding = None;
        if !self.finished {
            if let Some(next) = self.queued.pop_front() {
                self.transmit(next, now);
            }
        }
        Ok(rack)
    }

    /// Whether a reliable provisional response is sent or held and not yet acknowledged: a 2xx must wait
    /// (module docs).
    pub fn awaiting_prack(&self) -> bool {
        !self.finished && (self.outstanding.is_some() || !self.queued.is_empty())
    }

    /// A final response to the INVITE went out: stop retransmitting and drop what is held. A PRACK for
    /// the response outstanding until now is still answered 200 (RFC 3262 §3).
    pub fn final_sent(&mut self) {
        self.finished = true;
        self.queued.clear();
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<UasOutput> {
        self.outputs.pop_front()
    }

    /// When to call [`ReliableProvisionals::handle_timeout`]: the next retransmission or the give-up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        self.outstanding.as_ref().map(|o| o.next.min(o.give_up))
    }

    /// Retransmits the outstanding response when due (T1, then doubling, RFC 3262 §3), or gives up after
    /// 64·T1.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        let Some(o) = self.outstanding.as_mut() else { return };
        if now >= o.give_up {
            self.finished = true;
            self.queued.clear();
            self.outputs.push_back(UasOutput::GiveUp);
            return;
        }
        if now >= o.next {
            self.outputs.push_back(UasOutput::Send(o.response.clone()));
            o.interval = o.interval.saturating_mul(2);
            o.next = now + o.interval;
        }
    }
}

/// What to do with a provisional response to an INVITE confgate sent ([`PrackClient::on_provisional`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisional {
    /// Not sent reliably (no `Require: 100rel`, or a 100): process it, nothing to acknowledge.
    Unreliable,
    /// The next in order: process it and send a PRACK with this `RAck` in its early dialog.
    Acknowledge(RAck),
    /// A retransmission of the last one acknowledged: ignore it; the PRACK's own transaction takes
    /// care of a lost PRACK (RFC 3262 §4: not acknowledged again).
    Retransmission,
    /// Out of order, or without a usable `RSeq` or To tag: neither acknowledged nor processed (§4).
    Discard,
}

/// The UAC side of RFC 3262 for one INVITE: see the module docs.
#[derive(Debug, Default)]
pub struct PrackClient {
    /// The last RSeq acknowledged, per early dialog (the response's To tag).
    last: HashMap<String, u32>,
}

/// Early dialogs tracked per INVITE; more are discarded (a forking proxy rarely brings more than a few).
const MAX_EARLY_DIALOGS: usize = 16;

impl PrackClient {
    /// A tracker for one INVITE.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies a provisional `response` to the INVITE `invite` (whose CSeq the `RAck` names).
    pub fn on_provisional(&mut self, invite: &Request, response: &Response) -> Provisional {
        if !is_reliable(response) {
            return Provisional::Unreliable;
        }
        let (Some(rseq), Some(tag)) = (rseq(response), message::to_tag(response)) else {
            return Provisional::Discard;
        };
        let Some((cseq, method)) = message::cseq(invite) else {
            return Provisional::Discard;
        };
        let ack = RAck { rseq, cseq, method };
        match self.last.get(&tag).copied() {
            None if self.last.len() < MAX_EARLY_DIALOGS => {
                self.last.insert(tag, rseq);
                Provisional::Acknowledge(ack)
            }
            None => Provisional::Discard,
            Some(last) if rseq == last => Provisional::Retransmission,
            Some(last) if Some(rseq) == last.checked_add(1) => {
                self.last.insert(tag, rseq);
                Provisional::Acknowledge(ack)
            }
            Some(_) => Provisional::Discard,
        }
    }
}

/// A PRACK in the early `dialog` (made from the reliable provisional response with `Dialog::uac`),
/// acknowledging `rack`: the next local CSeq, Via `SIP/2.0/<transport> <via_sent_by>`, the `RAck` header
/// (RFC 3262 §7.2).
pub fn prack_request(dialog: &mut Dialog, rack: &RAck, via_sent_by: &str, transport: &str) -> Request {
    let req = dialog.request(Method::PRack, via_sent_by, transport, None);
    message::with_header(req, "RAck", &rack.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rsip::SipMessage;

    const MS: Duration = Duration::from_millis(1);

    fn request(text: &str) -> Request {
        match message::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("expected a request"),
        }
    }

    fn invite(extra: &str) -> Request {
        request(&format!(
            "INVITE sip:bob@gw.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr1\r\n\
             Max-Forwards: 70\r\nTo: <sip:bob@gw.example.com>\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
             Call-ID: rel-1@example.com\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@192.0.2.10>\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        ))
    }

    fn prack(rack: &str) -> Request {
        let rack = if rack.is_empty() {
            String::new()
        } else {
            format!("RAck: {rack}\r\n")
        };
        request(&format!(
            "PRACK sip:gw@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKp{}\r\n\
             Max-Forwards: 70\r\nTo: <sip:bob@gw.example.com>;tag=b1\r\nFrom: <sip:alice@example.com>;tag=a1\r\n\
             Call-ID: rel-1@example.com\r\nCSeq: 8 PRACK\r\n{rack}Content-Length: 0\r\n\r\n",
            rack.len()
        ))
    }

    fn drain(m: &mut ReliableProvisionals) -> Vec<UasOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn sent_rseq(out: &UasOutput) -> u32 {
        match out {
            UasOutput::Send(r) => {
                assert!(message::option_tags(r, "Require").contains(&OPTION_TAG.to_string()));
                rseq(r).unwrap()
            }
            UasOutput::GiveUp => panic!("expected a response"),
        }
    }

    #[test]
    fn reliability_is_read_from_require_and_supported() {
        assert_eq!(Reliability::of(&invite("Require: 100rel\r\n")), Reliability::Required);
        assert_eq!(
            Reliability::of(&invite("Supported: timer, 100REL\r\n")),
            Reliability::Supported
        );
        assert_eq!(
            Reliability::of(&invite("Supported: timer\r\nk: replaces\r\n")),
            Reliability::NotSupported
        );
        assert!(Reliability::Supported.reliable() && !Reliability::NotSupported.reliable());
    }

    #[test]
    fn rack_parses_and_prints() {
        let r = RAck::parse("776656 1 INVITE").unwrap();
        assert_eq!(
            r,
            RAck {
                rseq: 776_656,
                cseq: 1,
                method: Method::Invite
            }
        );
        assert_eq!(r.to_string(), "776656 1 INVITE");
        assert_eq!(RAck::parse("  5\t9   INVITE ").unwrap().cseq, 9);
        for bad in [
            "",
            "0 1 INVITE",
            "x 1 INVITE",
            "1 INVITE",
            "1 2",
            "1 2 invite",
            "1 2 INVITE x",
            "4294967296 1 INVITE",
        ] {
            assert!(matches!(RAck::parse(bad), Err(PrackError::BadRAck(_))), "{bad:?}");
        }
        assert_eq!(RAck::of(&prack("")), Err(PrackError::MissingRAck));
        assert_eq!(PrackError::MissingRAck.sip_status(), 400);
        assert_eq!(PrackError::NoMatch.sip_status(), 481);
    }

    #[test]
    fn a_reliable_provisional_is_retransmitted_doubling_until_prack() {
        let inv = invite("Require: 100rel\r\n");
        let t1 = 500 * MS;
        let mut m = ReliableProvisionals::new(&inv, t1, 4000);
        let t0 = Instant::now();
        assert!(m.send(message::response_for(&inv, 180, Some("b1")), t0));
        let out = drain(&mut m);
        assert_eq!(out.len(), 1);
        assert_eq!(sent_rseq(&out[0]), 4000);
        assert!(m.awaiting_prack(), "a 2xx waits");
        // Retransmissions at T1, 3·T1, 7·T1: the interval doubles.
        let mut times = Vec::new();
        let mut now = t0;
        while let Some(at) = m.poll_timeout() {
            if at > t0 + 8 * t1 {
                break;
            }
            now = at;
            m.handle_timeout(now);
            for o in drain(&mut m) {
                assert_eq!(sent_rseq(&o), 4000, "a retransmission keeps its RSeq");
                times.push(now - t0);
            }
        }
        assert_eq!(times, [t1, 3 * t1, 7 * t1]);
        // A PRACK for another RSeq or CSeq does not match: 481, and retransmissions go on.
        assert_eq!(m.on_prack(&prack("4001 7 INVITE"), now), Err(PrackError::NoMatch));
        assert_eq!(m.on_prack(&prack("4000 6 INVITE"), now), Err(PrackError::NoMatch));
        assert_eq!(m.on_prack(&prack("4000 7 BYE"), now), Err(PrackError::NoMatch));
        assert!(m.awaiting_prack());
        // The matching one stops them.
        assert_eq!(m.on_prack(&prack("4000 7 INVITE"), now).unwrap().rseq, 4000);
        assert!(!m.awaiting_prack());
        assert_eq!(m.poll_timeout(), None);
        assert!(drain(&mut m).is_empty());
        // A second PRACK for the same response matches nothing any more.
        assert_eq!(m.on_prack(&prack("4000 7 INVITE"), now), Err(PrackError::NoMatch));
    }

    #[test]
    fn without_prack_it_gives_up_after_64_t1() {
        let inv = invite("Require: 100rel\r\n");
        let t1 = 100 * MS;
        let mut m = ReliableProvisionals::new(&inv, t1, 1);
        let t0 = Instant::now();
        m.send(message::response_for(&inv, 183, Some("b1")), t0);
        let mut sends = drain(&mut m).len();
        let mut gave_up = None;
        for _ in 0..100 {
            let Some(at) = m.poll_timeout() else { break };
            m.handle_timeout(at);
            for o in drain(&mut m) {
                match o {
                    UasOutput::Send(_) => sends += 1,
                    UasOutput::GiveUp => gave_up = Some(at - t0),
                }
            }
        }
        // Sent at 0, T1, 3, 7, 15, 31, 63·T1; given up at 64·T1.
        assert_eq!(sends, 7);
        assert_eq!(gave_up, Some(64 * t1));
        assert_eq!(m.poll_timeout(), None);
        assert!(!m.awaiting_prack());
        assert!(!m.send(message::response_for(&inv, 180, Some("b1")), t0 + 65 * t1));
    }

    #[test]
    fn one_outstanding_at_a_time_and_consecutive_rseq() {
        let inv = invite("Supported: 100rel\r\n");
        let mut m = ReliableProvisionals::new(&inv, 500 * MS, 10);
        let t0 = Instant::now();
        assert!(m.send(message::response_for(&inv, 180, Some("b1")), t0));
        assert!(m.send(message::response_for(&inv, 183, Some("b1")), t0));
        let out = drain(&mut m);
        assert_eq!(out.len(), 1, "the second waits for the first's PRACK");
        assert_eq!(sent_rseq(&out[0]), 10);
        m.on_prack(&prack("10 7 INVITE"), t0 + 10 * MS).unwrap();
        let out = drain(&mut m);
        assert_eq!(out.len(), 1);
        assert_eq!(sent_rseq(&out[0]), 11, "consecutive RSeq");
        let UasOutput::Send(r) = &out[0] else { panic!() };
        assert_eq!(r.status_code.code(), 183);
        assert!(m.awaiting_prack());
        // Not a provisional, or 100: refused.
        assert!(!m.send(message::response_for(&inv, 100, None), t0));
        assert!(!m.send(message::response_for(&inv, 200, Some("b1")), t0));
        // A bounded queue.
        for _ in 0..MAX_QUEUED {
            assert!(m.send(message::response_for(&inv, 180, Some("b1")), t0));
        }
        assert!(!m.send(message::response_for(&inv, 180, Some("b1")), t0));
    }

    #[test]
    fn after_a_final_response_retransmissions_stop_but_prack_is_answered() {
        let inv = invite("Require: 100rel\r\n");
        let mut m = ReliableProvisionals::new(&inv, 500 * MS, 77);
        let t0 = Instant::now();
        m.send(message::response_for(&inv, 180, Some("b1")), t0);
        m.send(message::response_for(&inv, 183, Some("b1")), t0);
        drain(&mut m);
        m.final_sent();
        assert_eq!(m.poll_timeout(), None);
        assert!(!m.awaiting_prack());
        m.handle_timeout(t0 + 100 * 500 * MS);
        assert!(drain(&mut m).is_empty(), "no retransmission, no give-up");
        assert!(m.on_prack(&prack("77 7 INVITE"), t0 + MS).is_ok());
        assert!(drain(&mut m).is_empty(), "the held 183 is not sent after the final");
    }

    #[test]
    fn first_rseq_is_in_range() {
        for _ in 0..1000 {
            let r = random_rseq();
            assert!((1..(1 << 31)).contains(&r));
        }
        let inv = invite("");
        let mut m = ReliableProvisionals::new(&inv, MS, 0);
        m.send(message::response_for(&inv, 180, Some("b")), Instant::now());
        assert_eq!(sent_rseq(&drain(&mut m)[0]), 1);
    }

    fn provisional(inv: &Request, code: u16, tag: &str, extra: &[(&str, &str)]) -> Response {
        let mut r = message::response_for(inv, code, Some(tag));
        for (n, v) in extra {
            r = message::with_header(r, n, v);
        }
        r
    }

    #[test]
    fn uac_acknowledges_in_order_per_early_dialog() {
        let inv = invite("Supported: 100rel\r\n");
        let mut c = PrackClient::new();
        let rel = |rseq: &'static str| [("Require", "100rel"), ("RSeq", rseq)];
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 180, "x", &[])),
            Provisional::Unreliable
        );
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 100, "x", &rel("5"))),
            Provisional::Unreliable,
            "100 is never reliable"
        );
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 180, "x", &rel("5"))),
            Provisional::Acknowledge(RAck {
                rseq: 5,
                cseq: 7,
                method: Method::Invite
            })
        );
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 180, "x", &rel("5"))),
            Provisional::Retransmission
        );
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 183, "x", &rel("7"))),
            Provisional::Discard,
            "a gap"
        );
        assert!(matches!(
            c.on_provisional(&inv, &provisional(&inv, 183, "x", &rel("6"))),
            Provisional::Acknowledge(RAck { rseq: 6, .. })
        ));
        // Another early dialog (forking) has its own numbering.
        assert!(matches!(
            c.on_provisional(&inv, &provisional(&inv, 180, "y", &rel("900"))),
            Provisional::Acknowledge(RAck { rseq: 900, .. })
        ));
        // Without RSeq or with RSeq 0: discarded.
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 180, "z", &[("Require", "100rel")])),
            Provisional::Discard
        );
        assert_eq!(
            c.on_provisional(&inv, &provisional(&inv, 180, "z", &rel("0"))),
            Provisional::Discard
        );
    }

    #[test]
    fn the_fuzz_entry_point_holds_its_checks_on_samples() {
        let prack = |rack: &str| {
            format!(
                "PRACK sip:gw@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKq{rack}\r\n\
                 To: <sip:bob@fuzz.example.org>;tag=b\r\nFrom: <sip:alice@fuzz.example.org>;tag=a\r\n\
                 Call-ID: fz\r\nCSeq: 6 PRACK\r\nRAck: {rack}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let reliable_180 = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfz\r\n\
                            To: <sip:bob@fuzz.example.org>;tag=x\r\nFrom: <sip:alice@fuzz.example.org>;tag=a\r\n\
                            Call-ID: fz\r\nCSeq: 5 INVITE\r\nRequire: 100rel\r\nRSeq: 9\r\nContent-Length: 0\r\n\r\n";
        let mut input = Vec::new();
        for part in [
            prack("1000 5 INVITE"),
            "\x05".into(),
            prack("1001 5 INVITE"),
            reliable_180.into(),
            prack("7 5 INVITE"),
        ] {
            input.extend_from_slice(part.as_bytes());
            input.push(0);
        }
        crate::fuzzing::prack(&input);
        crate::fuzzing::prack(b"1 2 INVITE");
        crate::fuzzing::prack(b"\xff\x00\x00garbage");
    }

    #[test]
    fn prack_request_carries_rack_in_the_early_dialog() {
        let inv = invite("Supported: 100rel\r\n");
        let resp = provisional(
            &inv,
            180,
            "b7",
            &[
                ("Require", "100rel"),
                ("RSeq", "42"),
                ("Contact", "<sip:bob@198.51.100.2:5070>"),
            ],
        );
        let mut d = Dialog::uac(&inv, &resp).unwrap();
        let rack = RAck {
            rseq: 42,
            cseq: 7,
            method: Method::Invite,
        };
        let p = prack_request(&mut d, &rack, "192.0.2.10:5060", "UDP");
        assert_eq!(p.method, Method::PRack);
        assert_eq!(p.uri.to_string(), "sip:bob@198.51.100.2:5070");
        assert_eq!(message::cseq(&p), Some((8, Method::PRack)));
        assert_eq!(message::to_tag(&p).as_deref(), Some("b7"));
        assert_eq!(RAck::of(&p).unwrap(), rack);
        // It survives the wire.
        let wire = message::parse(&message::to_bytes(&SipMessage::Request(p))).unwrap();
        let SipMessage::Request(wire) = wire else { panic!() };
        assert_eq!(RAck::of(&wire).unwrap(), rack);
    }
}
