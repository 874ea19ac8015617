//! Calls out from an H.323 caller: to the registered H.323 endpoints of an
//! account, to `#h323:<alias>@<host>` addresses, and through gateway routes
//! whose target is `h323:<host[:port]>`.
//!
//! The caller's leg stays in Call Proceeding while a second leg dials: a
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
//! Calls from H.323 to SIP endpoints, to other servers and through SIP
//! routes are not served here: they are released as unreachable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use call::{CallString, EndReason, Party};
use h323::control::MediaEvent;
use h323::media::{AudioCodec, G711};
use h323::ras::Alias;
use h323::signalling::{CallSignalling, Config as SignallingConfig, Dial, Event, IncomingCall, Released};
use relay::{EndpointId, LatchMode, PeerConfig};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{follow_media, gone, io_task, ras, Call, Command, MEDIA_WAIT, RELEASE_FLUSH};
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

/// The leg a call out placed.
struct Leg {
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::Sender<Command>,
    io: tokio::task::JoinHandle<()>,
    endpoint: EndpointId,
    peer_rtcp: Option<SocketAddr>,
}

impl Leg {
    /// Releases the leg, with the other leg's Q.850 cause when there is one.
    async fn release(&self, reason: EndReason, cause: Option<u8>) {
        let command = match cause {
            Some(c) => Command::ReleaseWithCause(reason, c),
            None => Command::Release(reason),
        };
        let _ = self.commands.send(command).await;
    }

    /// Waits for the leg's I/O task to write its release and end.
    async fn finish(self) {
        let Leg { commands, io, .. } = self;
        drop(commands);
        let _ = tokio::time::timeout(RELEASE_FLUSH * 2, io).await;
    }
}

/// Which side ended a bridged call, and how.
enum End {
    Caller(Released),
    Callee(Released),
}

impl Call {
    /// Routes a call that is not for a conference or the IVR: out to H.323
    /// destinations (see the module docs), else released as unreachable.
    pub(super) async fn call_out(&mut self, party: Party, incoming: &IncomingCall, decision: Decision) {
        let (targets, kind) = match decision {
            Decision::Account(id) => (registered_targets(id.user(), &incoming.dialed), Kind::Registered),
            Decision::Direct(CallString::H323 { alias, host }) => {
                (resolve(&host, alias.unwrap_or_default()).await, Kind::Address)
            }
            Decision::Gateway { route, target, number } => match target.strip_prefix("h323:") {
                Some(host) => {
                    tracing::info!(call = self.id, route = %route, "H.323 call out through a gateway route");
                    (resolve(host, number).await, Kind::Address)
                }
                None => return self.not_served("SIP routes").await,
            },
            Decision::Direct(_) => return self.not_served("SIP addresses").await,
            Decision::Federation { .. } => return self.not_served("other servers").await,
            Decision::Reject(reason) => return self.release(reason).await,
            Decision::Conference { .. } | Decision::Ivr => return self.release(EndReason::ServerError).await,
        };
        if targets.is_empty() {
            match kind {
                Kind::Registered => {
                    tracing::info!(call = self.id, "the account has no registered H.323 endpoint (calls from H.323 to SIP endpoints are not served)");
                    self.release(EndReason::Unreachable).await;
                }
                Kind::Address => {
                    tracing::info!(call = self.id, "the H.323 destination's name does not resolve");
                    self.release_with_cause(EndReason::NotFound, 3).await;
                }
            }
            return;
        }
        let Some(mut leg) = self.dial(&party, incoming, &targets, kind).await else {
            return;
        };
        let end = self.bridge(incoming, &mut leg).await;
        match end {
            End::Caller(r) => {
                tracing::info!(call = self.id, cause = ?r.cause, "H.323 call ended by the caller");
                leg.release(r.reason, r.cause).await;
            }
            End::Callee(r) => {
                tracing::info!(call = self.id, cause = ?r.cause, reason = r.reason.code(), "H.323 call ended by the called side");
                self.pass_on(&r).await;
            }
        }
        leg.finish().await;
    }

    async fn not_served(&mut self, what: &str) {
        tracing::info!(call = self.id, what, "H.323 calls to these destinations are not served");
        self.release(EndReason::Unreachable).await;
    }

    /// Releases the caller as the other leg was released.
    async fn pass_on(&mut self, r: &Released) {
        match r.cause {
            Some(c) => self.release_with_cause(r.reason, c).await,
            None => self.release(r.reason).await,
        }
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

    /// Whether `addr` is our own call-signalling listener.
    fn is_own(&self, addr: SocketAddr) -> bool {
        let Some(own) = self.ctx.signalling_address else {
            return false;
        };
        addr.port() == own.port()
            && (addr.ip() == own.ip()
                || (own.ip().is_unspecified() && (addr.ip().is_loopback() || addr.ip() == self.ctx.media_address)))
    }

    /// Connects to the first target that takes the connection and sends
    /// the Setup. `None`: nothing reached, or the caller hung up (the
    /// caller is released or gone).
    async fn dial(&mut self, party: &Party, incoming: &IncomingCall, targets: &[Target], kind: Kind) -> Option<Leg> {
        let mut reached = None;
        for t in targets {
            if self.is_own(t.address) {
                tracing::warn!(call = self.id, address = %t.address, "a call out to our own listener is not placed");
                continue;
            }
            let connect = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(t.address));
            tokio::pin!(connect);
            let result = loop {
                tokio::select! {
                    r = &mut connect => break r,
                    ev = self.events.recv() => {
                        if self.caller_event(ev).is_some() {
                            tracing::info!(call = self.id, "H.323 caller hung up before the call out was placed");
                            return None;
                        }
                    }
                }
            };
            match result {
                Ok(Ok(stream)) => {
                    reached = Some((stream, t));
                    break;
                }
                Ok(Err(e)) => {
                    tracing::info!(call = self.id, address = %t.address, error = %e, "H.323 destination refuses the connection")
                }
                Err(_) => {
                    tracing::info!(call = self.id, address = %t.address, "H.323 destination does not answer the connection")
                }
            }
        }
        let Some((stream, target)) = reached else {
            match kind {
                Kind::Registered => self.release(EndReason::Unreachable).await,
                Kind::Address => self.release_with_cause(EndReason::NotFound, 27).await,
            }
            return None;
        };
        let _ = stream.set_nodelay(true);
        let ep = match self.ctx.relay.create_endpoint(self.id, false) {
            Ok(ep) => ep,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports");
                self.release(EndReason::ServerError).await;
                return None;
            }
        };
        self.peer_endpoint = Some(ep.id);
        let rtp = SocketAddr::new(self.ctx.media_address, ep.rtp_port);
        let rtcp = SocketAddr::new(
            self.ctx.media_address,
            ep.rtcp_port.unwrap_or(ep.rtp_port.saturating_add(1)),
        );
        // The caller's codecs first (forwarded untouched when taken), then
        // the other law (transcoded).
        let mut fast_start = incoming.offer.codecs();
        for c in [G711::Ulaw, G711::Alaw] {
            if !fast_start.contains(&c) {
                fast_start.push(c);
            }
        }
        let dial = Dial {
            call_reference: (rand::random::<u16>() & 0x7fff).max(1),
            call_id: rand::random(),
            dialed: target.alias.clone(),
            display: party.display_name().chars().take(80).collect(),
            calling: party.account().map(|a| a.user().to_string()),
            rtp,
            rtcp,
            fast_start,
        };
        let cfg = SignallingConfig {
            display: self.ctx.shared.config().server.name.clone(),
            ..SignallingConfig::default()
        };
        let sig = match CallSignalling::dial(cfg, Instant::now(), rand::random::<u32>() & 0xff_ffff, &dial) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(call = self.id, error = %e, "cannot build the Setup");
                self.release(EndReason::BadDialString).await;
                return None;
            }
        };
        tracing::info!(call = self.id, address = %target.address, alias = %call::Pii(target.alias.clone()), "H.323 call out");
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (commands, cmd_rx) = mpsc::channel(8);
        let io = tokio::spawn(io_task(stream, target.address.ip(), sig, ev_tx, cmd_rx));
        Some(Leg {
            events,
            commands,
            io,
            endpoint: ep.id,
            peer_rtcp: None,
        })
    }

    /// Rings, answers and bridges the two legs until one ends.
    async fn bridge(&mut self, incoming: &IncomingCall, leg: &mut Leg) -> End {
        // Ringing.
        let mut alerted = false;
        let fast = loop {
            tokio::select! {
                ev = self.events.recv() => {
                    if let Some(r) = self.caller_event(ev) {
                        return End::Caller(Released { reason: EndReason::Cancelled, ..r });
                    }
                }
                ev = leg.events.recv() => match ev {
                    Some(Event::Alerting) if !alerted => {
                        alerted = true;
                        let _ = self.commands.send(Command::Alerting).await;
                    }
                    Some(Event::Connected(fc)) => break fc,
                    Some(Event::Released(r)) => return End::Callee(r),
                    None => return End::Callee(gone()),
                    Some(Event::Media(m)) => follow_media(&self.ctx.relay, self.id, Some(leg.endpoint), &mut leg.peer_rtcp, m),
                    Some(_) => {}
                },
            }
        };
        // The called side's media.
        let callee_codec = match fast {
            Some(fc) => {
                let configured = self.ctx.relay.configure(
                    leg.endpoint,
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
            None => match self.leg_channels(leg).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    let r = Released {
                        by_peer: false,
                        reason: EndReason::MediaIncompatible,
                        cause: Some(h323::signalling::release_cause(EndReason::MediaIncompatible).0),
                    };
                    leg.release(EndReason::MediaIncompatible, None).await;
                    return End::Callee(r);
                }
                Err(end) => return end,
            },
        };
        tracing::info!(call = self.id, codec = callee_codec.name(), "H.323 call out answered");
        // Now the caller: in the called side's codec when it can.
        let same = match callee_codec {
            AudioCodec::Pcmu => Some(G711::Ulaw),
            AudioCodec::Pcma => Some(G711::Alaw),
            _ => None,
        };
        let proposed = incoming.offer.codecs();
        let fast = same
            .filter(|c| proposed.contains(c))
            .or_else(|| incoming.offer.choose(&[G711::Ulaw, G711::Alaw]));
        let Some((ea, caller_codec, _)) = self.accept(incoming, fast, false, Some(&mut leg.events)).await else {
            if let Some(r) = self.other_released.take() {
                return End::Callee(r);
            }
            // The caller hung up, or was released for want of media.
            let r = self.caller_released.take().unwrap_or(Released {
                by_peer: false,
                reason: EndReason::MediaIncompatible,
                cause: None,
            });
            return End::Caller(r);
        };
        while let Some(ev) = self.deferred.pop_front() {
            if let Event::Media(m) = ev {
                follow_media(&self.ctx.relay, self.id, Some(leg.endpoint), &mut leg.peer_rtcp, m);
            }
        }
        // Wire the media.
        let relay = self.ctx.relay.clone();
        let mut transcoder = None;
        if caller_codec == callee_codec {
            let wired = relay.subscribe(ea, leg.endpoint).is_ok() && relay.subscribe(leg.endpoint, ea).is_ok();
            if !wired {
                return self.media_failed(leg).await;
            }
            tracing::info!(
                call = self.id,
                codec = caller_codec.name(),
                "H.323 call connected, media forwarded packet by packet"
            );
        } else {
            match (
                AudioPort::start(&relay, ea, super::audio_format(caller_codec)),
                AudioPort::start(&relay, leg.endpoint, super::audio_format(callee_codec)),
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
                callee_codec = callee_codec.name(),
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
                    Some(Event::Released(r)) => break End::Callee(r),
                    None => break End::Callee(gone()),
                    Some(Event::Media(m)) => follow_media(&relay, self.id, Some(leg.endpoint), &mut leg.peer_rtcp, m),
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
    async fn media_failed(&mut self, leg: &Leg) -> End {
        leg.release(EndReason::ServerError, None).await;
        End::Callee(Released {
            by_peer: false,
            reason: EndReason::ServerError,
            cause: Some(h323::signalling::release_cause(EndReason::ServerError).0),
        })
    }

    /// Waits (at most [`MEDIA_WAIT`]) for H.245 to open the called side's
    /// channels, watching the caller. `Ok(None)`: none opened.
    async fn leg_channels(&mut self, leg: &mut Leg) -> Result<Option<AudioCodec>, End> {
        let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
        let (mut tx, mut rx) = (None, None);
        loop {
            if let (Some(t), Some(r)) = (tx, rx) {
                if t == r {
                    return Ok(Some(t));
                }
            }
            tokio::select! {
                ev = self.events.recv() => {
                    if let Some(r) = self.caller_event(ev) {
                        return Err(End::Caller(r));
                    }
                }
                ev = leg.events.recv() => match ev {
                    Some(Event::Media(m)) => {
                        follow_media(&self.ctx.relay, self.id, Some(leg.endpoint), &mut leg.peer_rtcp, m);
                        match m {
                            MediaEvent::TransmitOpened { codec, .. } => tx = Some(codec),
                            MediaEvent::ReceiveOpened { codec, .. } => rx = Some(codec),
                            MediaEvent::TransmitClosed => tx = None,
                            MediaEvent::ReceiveClosed => rx = None,
                            MediaEvent::TransmitFailed if rx.is_some() => return Ok(rx),
                            _ => {}
                        }
                    }
                    Some(Event::Released(r)) => return Err(End::Callee(r)),
                    None => return Err(End::Callee(gone())),
                    Some(_) => {}
                },
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
