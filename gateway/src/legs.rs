//! Outbound legs on any protocol: how one driver has another place the
//! called side of a point-to-point call and reports back in the call
//! model's terms, so that a caller on one protocol reaches an account whose
//! endpoints registered on another.
//!
//! A driver that can call an account's registered endpoints registers a
//! [`Dialer`] for its protocol at start-up (SIP: INVITE to every contact
//! the account registered, forked; H.323: Setup to the call-signalling
//! addresses of its RAS registrations). The caller's driver asks
//! [`place`] for a leg and bridges it:
//!
//! - [`LegEvent::Ringing`] at most once: SIP 180 ↔ H.225 Alerting;
//! - [`LegEvent::Answered`] with the leg's relay endpoint (already pointed
//!   at the callee's media) and the codec negotiated with it: SIP 200/ACK
//!   ↔ Connect (with Fast Connect or the channels H.245 opened);
//! - [`LegEvent::Released`] once, last, with the call model's
//!   [`EndReason`] and, when the protocol gave one, the Q.850 cause or the
//!   SIP status it came with (486 ↔ 17 and the like: [`LegEnd`]).
//!
//! The caller's driver ends the leg with [`OutboundLeg::release`] (before
//! the answer: CANCEL or ReleaseComplete; after: BYE or ReleaseComplete).
//!
//! Media: the leg's relay endpoint is made in the caller's relay group
//! ([`LegRequest::group`]) so that the two endpoints can be subscribed to
//! each other and forwarded packet by packet when they share a codec;
//! otherwise the caller's driver decodes and re-encodes between them
//! ([`crate::media::AudioBridge`]). The leg's driver removes its endpoint
//! when the leg is over.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use call::{EndReason, Party, Protocol};
use relay::EndpointId;
use tokio::sync::mpsc;

use crate::media::AudioFormat;

/// How long a leg may take to write its release once told to end.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// What the caller's driver asks for.
#[derive(Debug, Clone)]
pub struct LegRequest {
    /// The caller's relay group (its call id): the leg's relay endpoint is
    /// made in it, so that the two can be forwarded to each other.
    pub group: u64,
    /// The caller's call id, for the log.
    pub call: u64,
    /// The account called (its user name).
    pub account: String,
    /// What the caller dialed (an alias of the account, or its name).
    pub dialed: String,
    /// Who calls.
    pub caller: Party,
    /// The caller's audio codecs, in its order of preference, with the
    /// payload types it uses: offered first (forwarded untouched when the
    /// callee takes one), then those confgate can transcode.
    pub codecs: Vec<call::Codec>,
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegEnd {
    /// The callee (or its network) ended it, rather than confgate.
    pub by_peer: bool,
    /// In the call model's terms.
    pub reason: EndReason,
    /// The Q.850 cause the leg was released with (H.323), if any.
    pub cause: Option<u8>,
    /// The SIP final status the leg failed with (SIP), if any.
    pub status: Option<u16>,
}

impl LegEnd {
    /// An end by confgate for `reason`, with no cause from the wire.
    pub fn ours(reason: EndReason) -> LegEnd {
        LegEnd {
            by_peer: false,
            reason,
            cause: None,
            status: None,
        }
    }

    /// The Q.850 cause to pass on to an H.323 caller: the leg's own, else
    /// the call model's for its reason (RFC 3398 §8.2.6.1 for SIP statuses).
    pub fn q850_cause(&self) -> u8 {
        self.cause.unwrap_or_else(|| sip::status::q850_cause(self.reason))
    }

    /// The reason to give a SIP caller: the Q.850 cause's when there is one
    /// (17 user busy → 486), else the leg's reason.
    pub fn sip_reason(&self) -> EndReason {
        self.cause.and_then(sip::status::reason_for_q850).unwrap_or(self.reason)
    }
}

/// What a leg reports, in order: at most one `Ringing`, at most one
/// `Answered`, then one `Released`.
#[derive(Debug, Clone)]
pub enum LegEvent {
    /// The callee rings.
    Ringing,
    /// The callee answered: its media ends at `endpoint`, in `codec`.
    Answered {
        /// The leg's relay endpoint, configured towards the callee.
        endpoint: EndpointId,
        /// The audio codec agreed with the callee, with its payload type.
        codec: call::Codec,
    },
    /// The leg is over.
    Released(LegEnd),
}

/// What the caller's driver tells a leg.
#[derive(Debug, Clone, Copy)]
pub enum LegCommand {
    /// End the leg (cancel it while it rings), with the caller's reason and
    /// Q.850 cause when it has one.
    Release {
        /// Why.
        reason: EndReason,
        /// The caller's Q.850 cause, when it was released with one.
        cause: Option<u8>,
    },
}

/// The caller's handle on a leg.
#[derive(Debug)]
pub struct OutboundLeg {
    /// The leg's events.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    commands: mpsc::Sender<LegCommand>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The leg driver's side of a leg.
#[derive(Debug)]
pub struct LegSide {
    /// Where its events go.
    pub events: mpsc::UnboundedSender<LegEvent>,
    /// The caller's commands.
    pub commands: mpsc::Receiver<LegCommand>,
}

impl LegSide {
    /// Reports `event` (the caller may be gone: then nobody listens).
    pub fn report(&self, event: LegEvent) {
        let _ = self.events.send(event);
    }
}

/// A new leg: the caller's handle and the driver's side.
pub fn channel() -> (OutboundLeg, LegSide) {
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    (
        OutboundLeg {
            events: ev_rx,
            commands: cmd_tx,
            task: None,
        },
        LegSide {
            events: ev_tx,
            commands: cmd_rx,
        },
    )
}

impl OutboundLeg {
    /// The leg, driven by `task` (waited for by [`OutboundLeg::finish`]).
    pub fn with_task(mut self, task: tokio::task::JoinHandle<()>) -> OutboundLeg {
        self.task = Some(task);
        self
    }

    /// A leg that failed before it started: it reports `end` and nothing else.
    pub fn failed(end: LegEnd) -> OutboundLeg {
        let (leg, side) = channel();
        side.report(LegEvent::Released(end));
        leg
    }

    /// Ends the leg (see [`LegCommand::Release`]).
    pub async fn release(&self, reason: EndReason, cause: Option<u8>) {
        let _ = self.commands.send(LegCommand::Release { reason, cause }).await;
    }

    /// Waits (bounded) for the leg's driver to finish: its release written
    /// and its relay endpoint removed.
    pub async fn finish(mut self) {
        if let Some(task) = self.task.take() {
            drop(self.commands);
            let _ = tokio::time::timeout(FINISH_WAIT, task).await;
        }
    }
}

/// What [`Dialer::registered`] answers: a count, maybe after a directory
/// lookup.
pub type Count<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'a>>;

/// A protocol's way to place legs to an account's registered endpoints.
pub trait Dialer: Send + Sync {
    /// How many endpoints of `account` this protocol could ring now.
    fn registered<'a>(&'a self, account: &'a str) -> Count<'a>;
    /// Places a leg to `request.account`'s registered endpoints (forked
    /// when several). A leg that cannot be placed reports its end at once.
    fn place(&self, request: LegRequest) -> OutboundLeg;
}

type Dialers = Vec<(Protocol, Arc<dyn Dialer>)>;

fn dialers() -> &'static RwLock<Dialers> {
    static DIALERS: RwLock<Dialers> = RwLock::new(Vec::new());
    &DIALERS
}

/// Registers (or replaces) the dialer of `protocol`; its listener calls this
/// when it starts.
pub fn register(protocol: Protocol, dialer: Arc<dyn Dialer>) {
    let mut d = dialers().write().unwrap_or_else(|e| e.into_inner());
    d.retain(|(p, _)| *p != protocol);
    d.push((protocol, dialer));
}

/// The dialer of `protocol`, if its listener runs.
fn dialer(protocol: Protocol) -> Option<Arc<dyn Dialer>> {
    let d = dialers().read().unwrap_or_else(|e| e.into_inner());
    d.iter().find(|(p, _)| *p == protocol).map(|(_, d)| d.clone())
}

/// How many endpoints of `account` `protocol` could ring now (0 when its
/// listener does not run).
pub async fn registered(protocol: Protocol, account: &str) -> usize {
    match dialer(protocol) {
        Some(d) => d.registered(account).await,
        None => 0,
    }
}

/// Places a leg on `protocol`; a protocol whose listener does not run gives
/// a leg released as unreachable.
pub fn place(protocol: Protocol, request: LegRequest) -> OutboundLeg {
    match dialer(protocol) {
        Some(d) => d.place(request),
        None => OutboundLeg::failed(LegEnd::ours(EndReason::Unreachable)),
    }
}

/// Rings several legs at once (an account's endpoints on several
/// protocols), as one leg: the first ringing is reported, the first answer
/// wins and the others are released (cancelled while they ring); when none
/// answers, the most telling end is reported (the callee's own refusal,
/// busy or declined, before a failure, before "not reachable"), as RFC 3261
/// §16.7 chooses among a fork's final responses. One leg is itself.
pub fn fork(legs: Vec<OutboundLeg>) -> OutboundLeg {
    if legs.len() == 1 {
        if let Some(leg) = legs.into_iter().next() {
            return leg;
        }
        return OutboundLeg::failed(LegEnd::ours(EndReason::Unreachable));
    }
    let (leg, side) = channel();
    let task = tokio::spawn(run_fork(legs, side));
    leg.with_task(task)
}

/// How telling a leg's end is for the caller when no leg answered.
fn rank(e: &LegEnd) -> u8 {
    match e.reason {
        EndReason::Busy | EndReason::Forbidden => 3,
        EndReason::Unreachable | EndReason::NotFound => 0,
        EndReason::Timeout => 1,
        _ => 2,
    }
}

async fn run_fork(mut legs: Vec<OutboundLeg>, mut side: LegSide) {
    let mut open = vec![true; legs.len()];
    let mut ends: Vec<LegEnd> = Vec::new();
    let mut rang = false;
    let winner = loop {
        if !open.iter().any(|o| *o) {
            let best = ends
                .iter()
                .rev()
                .max_by_key(|e| rank(e))
                .copied()
                .unwrap_or(LegEnd::ours(EndReason::Unreachable));
            side.report(LegEvent::Released(best));
            break None;
        }
        let next = std::future::poll_fn(|cx| {
            for (i, leg) in legs.iter_mut().enumerate() {
                if open.get(i).copied().unwrap_or(false) {
                    if let std::task::Poll::Ready(ev) = leg.events.poll_recv(cx) {
                        return std::task::Poll::Ready((i, ev));
                    }
                }
            }
            std::task::Poll::Pending
        });
        tokio::select! {
            (i, ev) = next => match ev {
                Some(LegEvent::Ringing) => {
                    if !rang {
                        rang = true;
                        side.report(LegEvent::Ringing);
                    }
                }
                Some(answered @ LegEvent::Answered { .. }) => {
                    side.report(answered);
                    break Some(i);
                }
                Some(LegEvent::Released(e)) => {
                    open[i] = false;
                    ends.push(e);
                }
                None => {
                    open[i] = false;
                    ends.push(LegEnd::ours(EndReason::ServerError));
                }
            },
            c = side.commands.recv() => {
                let (reason, cause) = match c {
                    Some(LegCommand::Release { reason, cause }) => (reason, cause),
                    None => (EndReason::Cancelled, None),
                };
                for (i, leg) in legs.iter().enumerate() {
                    if open[i] {
                        leg.release(reason, cause).await;
                    }
                }
                break None;
            }
        }
    };
    if let Some(w) = winner {
        // Answered elsewhere: the others are cancelled.
        for (i, leg) in legs.iter().enumerate() {
            if i != w && open[i] {
                leg.release(EndReason::Cancelled, None).await;
            }
        }
        let mut won = legs.swap_remove(w);
        let end = loop {
            tokio::select! {
                ev = won.events.recv() => match ev {
                    Some(LegEvent::Released(e)) => break Some(e),
                    Some(_) => {}
                    None => break Some(LegEnd::ours(EndReason::ServerError)),
                },
                c = side.commands.recv() => {
                    let (reason, cause) = match c {
                        Some(LegCommand::Release { reason, cause }) => (reason, cause),
                        None => (EndReason::Normal, None),
                    };
                    won.release(reason, cause).await;
                    break None;
                }
            }
        };
        if let Some(e) = end {
            side.report(LegEvent::Released(e));
        }
        won.finish().await;
    }
    for leg in legs {
        leg.finish().await;
    }
}

/// The mixer's format for a codec a leg agreed on (no RFC 4733 events:
/// key presses do not cross a bridged call between protocols). `None`
/// when the mixer cannot decode it or it has no payload type.
pub fn audio_format(codec: &call::Codec) -> Option<AudioFormat> {
    Some(AudioFormat {
        codec: AudioFormat::codec_for(&codec.name, codec.clock_rate, codec.channels)?,
        payload_type: codec.payload_type?,
        telephone_event: None,
        telephone_event_clock: 8000,
    })
}

/// Whether two legs in `a` and `b` can be forwarded packet by packet: the
/// same format with the same payload type.
pub fn same_codec(a: &call::Codec, b: &call::Codec) -> bool {
    a.same_format(b) && a.payload_type == b.payload_type
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(name: &str, pt: u8) -> call::Codec {
        call::Codec {
            name: name.into(),
            clock_rate: 8000,
            channels: 1,
            payload_type: Some(pt),
            fmtp: None,
        }
    }

    #[test]
    fn busy_maps_both_ways() {
        let from_h323 = LegEnd {
            by_peer: true,
            reason: EndReason::Busy,
            cause: Some(17),
            status: None,
        };
        assert_eq!(sip::status::response_for_reason(from_h323.sip_reason()).code, 486);
        let from_sip = LegEnd {
            by_peer: true,
            reason: sip::status::reason_for_status(486),
            cause: None,
            status: Some(486),
        };
        assert_eq!(from_sip.q850_cause(), 17);
        assert_eq!(LegEnd::ours(EndReason::Normal).q850_cause(), 16);
    }

    #[test]
    fn forwarding_needs_the_same_payload_type() {
        assert!(same_codec(&codec("PCMU", 0), &codec("pcmu", 0)));
        assert!(!same_codec(&codec("PCMU", 0), &codec("PCMA", 8)));
        assert!(!same_codec(&codec("PCMU", 0), &codec("PCMU", 96)));
        assert!(audio_format(&codec("PCMA", 8)).is_some());
        assert!(audio_format(&codec("H264", 96)).is_none());
    }

    #[tokio::test]
    async fn a_fork_reports_the_first_ringing_and_the_most_telling_end() {
        let (a, side_a) = channel();
        let (b, side_b) = channel();
        let mut forked = fork(vec![a, b]);
        side_a.report(LegEvent::Ringing);
        side_b.report(LegEvent::Ringing);
        side_a.report(LegEvent::Released(LegEnd::ours(EndReason::Unreachable)));
        side_b.report(LegEvent::Released(LegEnd {
            by_peer: true,
            reason: EndReason::Busy,
            cause: Some(17),
            status: None,
        }));
        assert!(matches!(forked.events.recv().await, Some(LegEvent::Ringing)));
        match forked.events.recv().await {
            Some(LegEvent::Released(e)) => assert_eq!(e.cause, Some(17), "busy before unreachable"),
            other => panic!("{other:?}"),
        }
        assert!(forked.events.recv().await.is_none(), "nothing after the end");
        forked.finish().await;
    }

    #[tokio::test]
    async fn a_protocol_without_a_listener_gives_an_unreachable_leg() {
        let mut leg = place(
            Protocol::Federation,
            LegRequest {
                group: 1,
                call: 1,
                account: "x".into(),
                dialed: "x".into(),
                caller: Party::anonymous("a", Protocol::Sip),
                codecs: Vec::new(),
            },
        );
        match leg.events.recv().await {
            Some(LegEvent::Released(e)) => assert_eq!(e.reason, EndReason::Unreachable),
            other => panic!("{other:?}"),
        }
        assert_eq!(registered(Protocol::Federation, "x").await, 0);
    }
}
