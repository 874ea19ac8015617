//! Calls out from an H.323 caller: to the registered H.323 endpoints of an
//! account, to `#h323:<alias>@<host>` addresses, and through gateway routes
//! whose target is `h323:<host[:port]>`.
//!
//! The caller's leg stays in Call Proceeding while a second leg
//! ([`legs::OutboundLeg`], a task of its own) dials: a
//! relay endpoint for it (in the caller's relay group), a TCP connection to
//! the destination's call-signalling address (a registration's, from its
//! RRQ; or the address dialed, port 1720 by default), and
//! [`CallSignalling::dial`] driven by the same I/O task as incoming calls.
//! The Setup proposes Fast Connect in the caller's G.711 codecs first, then
//! the other G.711 law, and offers tunnelled H.245.
//!
//! - While the destination rings (Alerting), the caller hears Alerting too.
//! - When it answers (Connect), its media is known from Fast Connect, or
//!   H.245 opens its channels (at most [`MEDIA_WAIT`]). Only then is the
//!   caller answered: with Fast Connect in the destination's codec when the
//!   caller proposed it, else the caller's own G.711 proposal, else by
//!   H.245.
//! - One codec on both legs: the relay forwards packet by packet, each
//!   endpoint subscribed to the other. Different codecs: the two legs'
//!   audio is decoded and re-encoded between them ([`AudioBridge`]).
//! - Whoever releases, the other leg is released with the same Q.850 cause
//!   (normal clearing when a connection just went away). A caller that
//!   hangs up before the answer cancels the call out.
//!
//! Causes when the destination is not reached: an account without a
//! registered H.323 endpoint (or one that does not take the TCP
//! connection), 20 "subscriber absent" (`calledPartyNotRegistered`); an
//! address whose name does not resolve, 3 "no route to destination"; one
//! that refuses or does not take the connection, 27 "destination out of
//! order" (both `unreachableDestination`). A destination that is our own
//! call-signalling listener is never dialed.
//!
//! Calls from H.323 to SIP phones: an account without a registered H.323
//! endpoint but with SIP registrations gets a SIP leg ([`legs::place`]:
//! INVITE to every contact, forked), bridged the same way (Alerting for
//! 180, Connect for 200/ACK, the SIP status mapped to a Q.850 cause and
//! back). An account with both kinds of registration rings all of them
//! ([`legs::fork`]): the first to answer wins. The H.323 side of the reverse direction, a caller on
//! another protocol calling an account's H.323 endpoints, is the same leg
//! ([`H323Dialer`]).
//!
//! Calls to other servers and through SIP routes are not served here: they
//! are released as unreachable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use call::{CallString, EndReason, Party, Protocol};
use h323::control::MediaEvent;
use h323::media::{AudioCodec, G711};
use h323::ras::Alias;
use h323::signalling::{CallSignalling, Config as SignallingConfig, Dial, Event, IncomingCall, Released};
use relay::{EndpointId, LatchMode, PeerConfig};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{follow_media, gone, io_task, ras, Call, Command, Ctx, MEDIA_WAIT, RELEASE_FLUSH};
use crate::legs::{self, LegCommand, LegEnd, LegEvent, LegRequest, LegSide, OutboundLeg};
use crate::media::{AudioBridge, AudioPort};
use crate::router::Decision;

/// How long the TCP connection to a destination may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long resolving a destination's name may take.
const RESOLVE_WAIT: Duration = Duration::from_secs(5);
/// Most registrations of one account tried (newest first).
const MAX_TARGETS: usize = 4;
/// The call-signalling port when the address names none (H.225.0 §7.1).
const DEFAULT_PORT: u16 = 1720;

/// A destination of a call out.
#[derive(Debug, Clone)]
struct Target {
    address: SocketAddr,
    /// The destinationAddress alias (empty: none).
    alias: String,
}

/// What a call out goes to (for the cause when it is not reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An account's registered endpoints.
    Registered,
    /// An address dialed or a route's.
    Address,
}

/// Which side ended a bridged call, and how.
enum End {
    Caller(Released),
    Callee(LegEnd),
}

/// The H.323 side's [`legs::Dialer`]: Setup to an account's registered
/// endpoints, for callers on any protocol.
struct H323Dialer(Arc<Ctx>);

impl legs::Dialer for H323Dialer {
    fn registered<'a>(&'a self, account: &'a str) -> legs::Count<'a> {
        let n = ras::registered_endpoints(account);
        Box::pin(async move { n })
    }

    fn place(&self, request: LegRequest) -> OutboundLeg {
        let targets = registered_targets(&request.account, &request.dialed);
        place_leg(self.0.clone(), request, targets, Kind::Registered)
    }
}

/// Lets the other protocols' callers reach H.323 endpoints (the listener
/// calls this when it starts).
pub(super) fn register_dialer(ctx: &Arc<Ctx>) {
    legs::register(Protocol::H323, Arc::new(H323Dialer(ctx.clone())));
}

/// An H.323 codec in the call model's terms.
fn call_codec(codec: AudioCodec) -> call::Codec {
    call::Codec {
        name: codec.name().into(),
        clock_rate: 8000,
        channels: 1,
        payload_type: Some(codec.payload_type()),
        fmtp: None,
    }
}

/// The G.711 law a call-model codec is, if it is one.
fn g711_of(codec: &call::Codec) -> Option<G711> {
    if codec.clock_rate != 8000 {
        return None;
    }
    if codec.name.eq_ignore_ascii_case("PCMU") {
        Some(G711::Ulaw)
    } else if codec.name.eq_ignore_ascii_case("PCMA") {
        Some(G711::Alaw)
    } else {
        None
    }
}

impl Call {
    /// Routes a call that is not for a conference or the IVR: out to H.323
    /// destinations or an account's SIP phones (see the module docs), else
    /// released as unreachable.
    pub(super) async fn call_out(&mut self, party: Party, incoming: &IncomingCall, decision: Decision) {
        // The caller's codecs first (forwarded untouched when taken), then
        // the other law (transcoded).
        let mut codecs: Vec<call::Codec> = incoming
            .offer
            .codecs()
            .into_iter()
            .map(|c| call_codec(c.into()))
            .collect();
        for c in [AudioCodec::Pcmu, AudioCodec::Pcma] {
            if !codecs.iter().any(|o| o.same_format(&call_codec(c))) {
                codecs.push(call_codec(c));
            }
        }
        let request = |account: String| LegRequest {
            group: self.id,
            call: self.id,
            account,
            dialed: incoming.dialed.clone(),
            caller: party.clone(),
            codecs: codecs.clone(),
        };
        let (targets, kind, account) = match decision {
            Decision::Account(id) => (
                registered_targets(id.user(), &incoming.dialed),
                Kind::Registered,
                id.user().to_string(),
            ),
            Decision::Direct(CallString::H323 { alias, host }) => (
                resolve(&host, alias.unwrap_or_default()).await,
                Kind::Address,
                String::new(),
            ),
            Decision::Gateway { route, target, number } => match target.strip_prefix("h323:") {
                Some(host) => {
                    tracing::info!(call = self.id, route = %route, "H.323 call out through a gateway route");
                    (resolve(host, number).await, Kind::Address, String::new())
                }
                None => return self.not_served("SIP routes").await,
            },
            Decision::Direct(_) => return self.not_served("SIP addresses").await,
            Decision::Federation { .. } => return self.not_served("other servers").await,
            Decision::Reject(reason) => return self.release(reason).await,
            Decision::Conference { .. } | Decision::Ivr => return self.release(EndReason::ServerError).await,
        };
        let sip_phones = kind == Kind::Registered && legs::registered(Protocol::Sip, &account).await > 0;
        let mut leg = if !targets.is_empty() && sip_phones {
            // Its SIP phones ring too (a fork across protocols).
            tracing::info!(
                call = self.id,
                "the account has H.323 endpoints and SIP phones: calling all"
            );
            let h323 = place_leg(self.ctx.clone(), request(account.clone()), targets, kind);
            legs::fork(vec![h323, legs::place(Protocol::Sip, request(account))])
        } else if !targets.is_empty() {
            place_leg(self.ctx.clone(), request(account), targets, kind)
        } else if sip_phones {
            tracing::info!(
                call = self.id,
                "the account has SIP phones and no H.323 endpoint: calling them"
            );
            legs::place(Protocol::Sip, request(account))
        } else {
            match kind {
                Kind::Registered => {
                    tracing::info!(call = self.id, "the account has no registered endpoint");
                    self.release(EndReason::Unreachable).await;
                }
                Kind::Address => {
                    tracing::info!(call = self.id, "the H.323 destination's name does not resolve");
                    self.release_with_cause(EndReason::NotFound, 3).await;
                }
            }
            return;
        };
        let end = self.bridge(incoming, &mut leg).await;
        match end {
            End::Caller(r) => {
                tracing::info!(call = self.id, cause = ?r.cause, "H.323 call ended by the caller");
                leg.release(r.reason, r.cause).await;
            }
            End::Callee(e) => {
                tracing::info!(call = self.id, cause = ?e.cause, status = ?e.status, reason = e.reason.code(), "H.323 call ended by the called side");
                self.release_with_cause(e.reason, e.q850_cause()).await;
            }
        }
        leg.finish().await;
    }

    async fn not_served(&mut self, what: &str) {
        tracing::info!(call = self.id, what, "H.323 calls to these destinations are not served");
        self.release(EndReason::Unreachable).await;
    }

    /// An event of the caller's leg while the call out goes on: its end, or
    /// nothing (media changes followed, key presses dropped).
    fn caller_event(&mut self, ev: Option<Event>) -> Option<Released> {
        match ev {
            Some(Event::Released(r)) => Some(r),
            None => Some(gone()),
            Some(Event::Dtmf(_)) => {
                // Key presses do not cross a bridged call.
                None
            }
            Some(Event::Media(m)) => {
                self.media_event(m);
                None
            }
            Some(_) => None,
        }
    }

    /// Rings, answers and bridges the caller with the called leg until one
    /// ends.
    async fn bridge(&mut self, incoming: &IncomingCall, leg: &mut OutboundLeg) -> End {
        // Ringing.
        let mut alerted = false;
        let (callee_ep, callee_codec) = loop {
            tokio::select! {
                ev = self.events.recv() => {
                    if let Some(r) = self.caller_event(ev) {
                        tracing::info!(call = self.id, "H.323 caller hung up before the answer");
                        return End::Caller(Released { reason: EndReason::Cancelled, ..r });
                    }
                }
                ev = leg.events.recv() => match ev {
                    Some(LegEvent::Ringing) => {
                        if !alerted {
                            alerted = true;
                            let _ = self.commands.send(Command::Alerting).await;
                        }
                    }
                    Some(LegEvent::Answered { endpoint, codec }) => break (endpoint, codec),
                    Some(LegEvent::Released(e)) => return End::Callee(e),
                    None => return End::Callee(leg_gone()),
                },
            }
        };
        tracing::info!(call = self.id, codec = %callee_codec.name, "H.323 call out answered");
        // Now the caller: in the called side's codec when it can.
        let proposed = incoming.offer.codecs();
        let fast = g711_of(&callee_codec)
            .filter(|c| proposed.contains(c))
            .or_else(|| incoming.offer.choose(&[G711::Ulaw, G711::Alaw]));
        let Some((ea, caller_codec, _)) = self.accept(incoming, fast, false, None).await else {
            // The caller hung up, or was released for want of media.
            let r = self.caller_released.take().unwrap_or(Released {
                by_peer: false,
                reason: EndReason::MediaIncompatible,
                cause: None,
            });
            return End::Caller(r);
        };
        // Wire the media.
        let relay = self.ctx.relay.clone();
        let mut transcoder = None;
        let caller_call_codec = call_codec(caller_codec);
        if legs::same_codec(&caller_call_codec, &callee_codec) {
            let wired = relay.subscribe(ea, callee_ep).is_ok() && relay.subscribe(callee_ep, ea).is_ok();
            if !wired {
                return self.media_failed(leg).await;
            }
            tracing::info!(
                call = self.id,
                codec = caller_codec.name(),
                "H.323 call connected, media forwarded packet by packet"
            );
        } else {
            let Some(callee_format) = legs::audio_format(&callee_codec) else {
                tracing::warn!(call = self.id, codec = %callee_codec.name, "cannot transcode the called side's codec");
                return self.media_failed(leg).await;
            };
            match (
                AudioPort::start(&relay, ea, super::audio_format(caller_codec)),
                AudioPort::start(&relay, callee_ep, callee_format),
            ) {
                (Ok(a), Ok(b)) => transcoder = Some(AudioBridge::start(a, b)),
                (a, b) => {
                    for e in [a.err(), b.err()].into_iter().flatten() {
                        tracing::warn!(error = %e, "cannot start the transcoder");
                    }
                    return self.media_failed(leg).await;
                }
            }
            tracing::info!(
                call = self.id,
                caller_codec = caller_codec.name(),
                callee_codec = %callee_codec.name,
                "H.323 call connected, media transcoded"
            );
        }
        // Connected: whoever ends it, the other leg is told.
        let end = loop {
            tokio::select! {
                ev = self.events.recv() => {
                    if let Some(r) = self.caller_event(ev) {
                        break End::Caller(r);
                    }
                }
                ev = leg.events.recv() => match ev {
                    Some(LegEvent::Released(e)) => break End::Callee(e),
                    None => break End::Callee(leg_gone()),
                    Some(_) => {}
                },
            }
        };
        if let Some(t) = transcoder.take() {
            tracing::debug!(call = self.id, frames = t.frames(), "transcoder stopped");
        }
        end
    }

    /// The media of the two legs could not be wired: the called side is
    /// released, and the caller after it.
    async fn media_failed(&mut self, leg: &OutboundLeg) -> End {
        leg.release(EndReason::ServerError, None).await;
        End::Callee(LegEnd::ours(EndReason::ServerError))
    }
}

/// The end of a leg whose driver went away without a word.
fn leg_gone() -> LegEnd {
    LegEnd {
        by_peer: true,
        reason: EndReason::Normal,
        cause: None,
        status: None,
    }
}

/// The end of an H.323 leg in the call model's terms.
fn leg_end(r: Released) -> LegEnd {
    LegEnd {
        by_peer: r.by_peer,
        reason: r.reason,
        cause: r.cause,
        status: None,
    }
}

/// Whether `addr` is our own call-signalling listener.
fn is_own(ctx: &Ctx, addr: SocketAddr) -> bool {
    let Some(own) = ctx.signalling_address else {
        return false;
    };
    addr.port() == own.port()
        && (addr.ip() == own.ip()
            || (own.ip().is_unspecified() && (addr.ip().is_loopback() || addr.ip() == ctx.media_address)))
}

/// Places an H.323 leg to `targets` for `request` (see [`legs`]): its own
/// task connects to the first target that takes the connection, sends the
/// Setup (Fast Connect in the caller's codecs), and reports.
fn place_leg(ctx: Arc<Ctx>, request: LegRequest, targets: Vec<Target>, kind: Kind) -> OutboundLeg {
    let (leg, side) = legs::channel();
    let task = tokio::spawn(run_leg(ctx, request, targets, kind, side));
    leg.with_task(task)
}

/// The called side of an H.323 call out, driven by [`place_leg`]'s task.
struct H323Leg {
    ctx: Arc<Ctx>,
    id: u64,
    endpoint: EndpointId,
    peer_rtcp: Option<SocketAddr>,
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::Sender<Command>,
    side: LegSide,
}

async fn run_leg(ctx: Arc<Ctx>, request: LegRequest, targets: Vec<Target>, kind: Kind, mut side: LegSide) {
    let id = request.call;
    let mut reached = None;
    for t in &targets {
        if is_own(&ctx, t.address) {
            tracing::warn!(call = id, address = %t.address, "a call out to our own listener is not placed");
            continue;
        }
        let connect = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(t.address));
        tokio::pin!(connect);
        let result = tokio::select! {
            r = &mut connect => r,
            _ = side.commands.recv() => {
                tracing::info!(call = id, "the caller hung up before the H.323 call out was placed");
                return;
            }
        };
        match result {
            Ok(Ok(stream)) => {
                reached = Some((stream, t));
                break;
            }
            Ok(Err(e)) => {
                tracing::info!(call = id, address = %t.address, error = %e, "H.323 destination refuses the connection")
            }
            Err(_) => {
                tracing::info!(call = id, address = %t.address, "H.323 destination does not answer the connection")
            }
        }
    }
    let Some((stream, target)) = reached else {
        // Q.850 20 "subscriber absent", 27 "destination out of order".
        let (reason, cause) = match kind {
            Kind::Registered => (EndReason::Unreachable, 20),
            Kind::Address => (EndReason::NotFound, 27),
        };
        side.report(LegEvent::Released(LegEnd {
            by_peer: false,
            reason,
            cause: Some(cause),
            status: None,
        }));
        return;
    };
    let _ = stream.set_nodelay(true);
    let ep = match ctx.relay.create_endpoint(request.group, false) {
        Ok(ep) => ep,
        Err(e) => {
            tracing::warn!(error = %e, "no media ports");
            side.report(LegEvent::Released(LegEnd::ours(EndReason::ServerError)));
            return;
        }
    };
    let rtp = SocketAddr::new(ctx.media_address, ep.rtp_port);
    let rtcp = SocketAddr::new(ctx.media_address, ep.rtcp_port.unwrap_or(ep.rtp_port.saturating_add(1)));
    let mut fast_start: Vec<G711> = Vec::new();
    for c in request.codecs.iter().filter_map(g711_of) {
        if !fast_start.contains(&c) {
            fast_start.push(c);
        }
    }
    let dial = Dial {
        call_reference: (rand::random::<u16>() & 0x7fff).max(1),
        call_id: rand::random(),
        dialed: target.alias.clone(),
        display: request.caller.display_name().chars().take(80).collect(),
        calling: request.caller.account().map(|a| a.user().to_string()),
        rtp,
        rtcp,
        fast_start,
    };
    let cfg = SignallingConfig {
        display: ctx.shared.config().server.name.clone(),
        ..SignallingConfig::default()
    };
    let sig = match CallSignalling::dial(cfg, Instant::now(), rand::random::<u32>() & 0xff_ffff, &dial) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(call = id, error = %e, "cannot build the Setup");
            side.report(LegEvent::Released(LegEnd::ours(EndReason::BadDialString)));
            remove_endpoint(&ctx, ep.id).await;
            return;
        }
    };
    tracing::info!(call = id, address = %target.address, alias = %call::Pii(target.alias.clone()), "H.323 call out");
    let (ev_tx, events) = mpsc::unbounded_channel();
    let (commands, cmd_rx) = mpsc::channel(8);
    let io = tokio::spawn(io_task(stream, target.address.ip(), sig, ev_tx, cmd_rx));
    let mut leg = H323Leg {
        ctx: ctx.clone(),
        id,
        endpoint: ep.id,
        peer_rtcp: None,
        events,
        commands,
        side,
    };
    leg.run().await;
    // The I/O task ends once the release is written (or the peer left).
    drop(leg);
    let _ = tokio::time::timeout(RELEASE_FLUSH * 2, io).await;
    remove_endpoint(&ctx, ep.id).await;
}

async fn remove_endpoint(ctx: &Ctx, ep: EndpointId) {
    let relay = ctx.relay.clone();
    let _ = tokio::task::spawn_blocking(move || relay.remove_endpoint(ep)).await;
}

impl H323Leg {
    /// Rings, waits for the answer and its media, then stays until either
    /// side ends the leg.
    async fn run(&mut self) {
        let mut alerted = false;
        let fast = loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Alerting) => {
                        if !alerted {
                            alerted = true;
                            self.side.report(LegEvent::Ringing);
                        }
                    }
                    Some(Event::Connected(fc)) => break fc,
                    Some(Event::Released(r)) => return self.side.report(LegEvent::Released(leg_end(r))),
                    None => return self.side.report(LegEvent::Released(leg_end(gone()))),
                    Some(Event::Media(m)) => self.media_event(m),
                    Some(_) => {}
                },
                c = self.side.commands.recv() => return self.release(c).await,
            }
        };
        // The called side's media.
        let codec = match fast {
            Some(fc) => {
                let configured = self.ctx.relay.configure(
                    self.endpoint,
                    &PeerConfig {
                        peer: fc.peer_rtp,
                        peer_rtcp: fc.peer_rtcp,
                        latch: LatchMode::Once,
                        srtp_in: None,
                        srtp_out: None,
                        clock_rate: 8000,
                        rtcp_mux: false,
                    },
                );
                if let Err(e) = configured {
                    tracing::warn!(error = %e, "relay refused the media");
                }
                AudioCodec::from(fc.codec)
            }
            None => match self.channels().await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    let _ = self.commands.send(Command::Release(EndReason::MediaIncompatible)).await;
                    let cause = h323::signalling::release_cause(EndReason::MediaIncompatible).0;
                    return self.side.report(LegEvent::Released(LegEnd {
                        by_peer: false,
                        reason: EndReason::MediaIncompatible,
                        cause: Some(cause),
                        status: None,
                    }));
                }
                Err(()) => return,
            },
        };
        self.side.report(LegEvent::Answered {
            endpoint: self.endpoint,
            codec: call_codec(codec),
        });
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Released(r)) => return self.side.report(LegEvent::Released(leg_end(r))),
                    None => return self.side.report(LegEvent::Released(leg_end(gone()))),
                    Some(Event::Media(m)) => self.media_event(m),
                    Some(_) => {}
                },
                c = self.side.commands.recv() => return self.release(c).await,
            }
        }
    }

    fn media_event(&mut self, m: MediaEvent) {
        follow_media(&self.ctx.relay, self.id, Some(self.endpoint), &mut self.peer_rtcp, m);
    }

    /// The caller ends the leg (its handle gone: normal clearing).
    async fn release(&mut self, command: Option<LegCommand>) {
        let command = match command {
            Some(LegCommand::Release { reason, cause: Some(c) }) => Command::ReleaseWithCause(reason, c),
            Some(LegCommand::Release { reason, cause: None }) => Command::Release(reason),
            None => Command::Release(EndReason::Normal),
        };
        let _ = self.commands.send(command).await;
    }

    /// Waits (at most [`MEDIA_WAIT`]) for H.245 to open the called side's
    /// channels, watching the caller's commands. `Ok(None)`: none opened.
    /// `Err`: the leg ended meanwhile (reported, or released by the caller).
    async fn channels(&mut self) -> Result<Option<AudioCodec>, ()> {
        let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
        let (mut tx, mut rx) = (None, None);
        loop {
            if let (Some(t), Some(r)) = (tx, rx) {
                if t == r {
                    return Ok(Some(t));
                }
            }
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Media(m)) => {
                        self.media_event(m);
                        match m {
                            MediaEvent::TransmitOpened { codec, .. } => tx = Some(codec),
                            MediaEvent::ReceiveOpened { codec, .. } => rx = Some(codec),
                            MediaEvent::TransmitClosed => tx = None,
                            MediaEvent::ReceiveClosed => rx = None,
                            MediaEvent::TransmitFailed if rx.is_some() => return Ok(rx),
                            _ => {}
                        }
                    }
                    Some(Event::Released(r)) => {
                        self.side.report(LegEvent::Released(leg_end(r)));
                        return Err(());
                    }
                    None => {
                        self.side.report(LegEvent::Released(leg_end(gone())));
                        return Err(());
                    }
                    Some(_) => {}
                },
                c = self.side.commands.recv() => {
                    self.release(c).await;
                    return Err(());
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(rx.or(tx)),
            }
        }
    }
}

/// The registered endpoints of `user` to call, each with the alias to put
/// in the Setup: the one dialed when it is theirs, else their first
/// H.323-ID, else their first alias.
fn registered_targets(user: &str, dialed: &str) -> Vec<Target> {
    ras::call_targets(user)
        .into_iter()
        .take(MAX_TARGETS)
        .map(|(address, aliases)| {
            let alias = aliases
                .iter()
                .find(|a| ras::same_alias(a, dialed))
                .or_else(|| aliases.iter().find(|a| matches!(a, Alias::H323Id(_))))
                .or(aliases.first())
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            Target { address, alias }
        })
        .collect()
}

/// The address of `host` (`name`, `name:port`, `[v6]`, `[v6]:port`; port
/// 1720 when none) as a target for `alias`; none when it does not resolve.
async fn resolve(host: &str, alias: String) -> Vec<Target> {
    let with_port = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:{DEFAULT_PORT}")
        }
    } else if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{DEFAULT_PORT}")
    };
    let found = tokio::time::timeout(RESOLVE_WAIT, tokio::net::lookup_host(with_port)).await;
    let addresses: Vec<SocketAddr> = match found {
        Ok(Ok(a)) => a.collect(),
        _ => Vec::new(),
    };
    let first = addresses.iter().find(|a| a.is_ipv4()).or(addresses.first()).copied();
    first.map(|address| Target { address, alias }).into_iter().collect()
}
