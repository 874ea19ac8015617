//! The H.323 listener: call signalling on TCP (H.225.0 over TPKT, port
//! 1720), one task pair per connection, driving `confgate-h323`'s
//! [`h323::signalling::CallSignalling`] for one incoming call.
//!
//! Per connection an I/O task owns the socket and the sans-IO machine: it
//! feeds it what it reads and the clock, writes what it says to write, and
//! hands its events to the call task; the call task gets commands back to
//! it (answer with Fast Connect, release with a reason). The call task
//! routes the dialed alias like every other protocol's call string
//! ([`calls::route_call`]), answers a conference or IVR call with Fast
//! Connect and a relay endpoint for the mixer, asks for a PIN with prompts
//! and digits (H.245 UserInputIndication, a Keypad IE, or RFC 4733 in the
//! RTP), then joins the room through an [`AudioPort`].
//!
//! The RAS gatekeeper on UDP is [`ras`]: endpoints register there and are
//! admitted with the gatekeeper-routed model, so their calls come here.
//!
//! Not served yet: calls without Fast Connect (H.245 OpenLogicalChannel), a
//! separate H.245 connection, calls out (also to registered H.323
//! endpoints), and calls to accounts or gateway routes (released as
//! unreachable).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use call::{EndReason, Party, Protocol};
use h323::media::{FastConnect, G711};
use h323::signalling::{CallSignalling, Config as SignallingConfig, Event, IncomingCall, Output};
use mixer::codec::CodecKind;
use relay::{EndpointId, LatchMode, PeerConfig, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::calls::{self, PinPrompt};
use crate::conference::{Heard, Membership, RoomEvent};
use crate::media::{AudioFormat, AudioPort};
use crate::router::Decision;
use crate::state::Shared;

pub mod ras;

/// Most signalling connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long the IVR waits for the digits of one answer.
const DIGIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest conference id or PIN typed.
const MAX_DIGITS: usize = 32;
/// How long a release may take to be written before the socket is dropped.
const RELEASE_FLUSH: Duration = Duration::from_secs(2);

/// Binds the call-signalling listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

struct Ctx {
    shared: Shared,
    relay: Relay,
    media_address: IpAddr,
    next_call: AtomicU64,
    connections: AtomicUsize,
}

/// Accepts signalling connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    relay: Relay,
    media_address: IpAddr,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        shared,
        relay,
        media_address,
        next_call: AtomicU64::new(1),
        connections: AtomicUsize::new(0),
    });
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if ctx.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                        ctx.connections.fetch_sub(1, Ordering::Relaxed);
                        ctx.shared.metrics.count_drop("h323_connection_limit");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let id = ctx.next_call.fetch_add(1, Ordering::Relaxed);
                        use tracing::Instrument;
                        connection(ctx.clone(), id, stream, peer)
                            .instrument(tracing::info_span!("h323_call", call = id))
                            .await;
                        ctx.connections.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "H.323 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

/// What the call task asks of the I/O task.
enum Command {
    Answer {
        codec: G711,
        rtp: SocketAddr,
        rtcp: SocketAddr,
        reply: oneshot::Sender<Result<FastConnect, String>>,
    },
    Release(EndReason),
}

/// Owns the socket and the machine: see the module docs.
async fn io_task(
    mut stream: TcpStream,
    mut sig: CallSignalling,
    events: mpsc::UnboundedSender<Event>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; 4096];
    let mut commands_open = true;
    loop {
        let mut close = false;
        while let Some(o) = sig.poll_output() {
            match o {
                Output::Transmit(bytes) => {
                    let write = tokio::time::timeout(RELEASE_FLUSH, stream.write_all(&bytes)).await;
                    if !matches!(write, Ok(Ok(()))) {
                        close = true;
                    }
                }
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Close => close = true,
            }
        }
        if close {
            let _ = tokio::time::timeout(RELEASE_FLUSH, stream.shutdown()).await;
            return;
        }
        let deadline = sig.poll_timeout();
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    // The peer went away without ReleaseComplete.
                    if !sig.is_released() {
                        let _ = events.send(Event::Released(h323::signalling::Released {
                            by_peer: true,
                            reason: EndReason::Normal,
                            cause: None,
                        }));
                    }
                    return;
                }
                Ok(n) => sig.handle_input(Instant::now(), buf.get(..n).unwrap_or_default()),
            },
            c = commands.recv(), if commands_open => match c {
                Some(Command::Answer { codec, rtp, rtcp, reply }) => {
                    let _ = reply.send(sig.answer(codec, rtp, rtcp).map_err(|e| e.to_string()));
                }
                Some(Command::Release(reason)) => sig.release(reason),
                None => {
                    commands_open = false;
                    sig.release(EndReason::ServerError);
                }
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => sig.handle_timeout(Instant::now()),
        }
    }
}

/// How a call ended.
#[derive(Debug)]
enum Ended {
    /// The endpoint released (or the connection went away).
    ByPeer,
    /// We end it with this reason.
    ByUs(EndReason),
}

struct Call {
    ctx: Arc<Ctx>,
    id: u64,
    peer: SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::Sender<Command>,
    endpoint: Option<EndpointId>,
    /// How the call ended while a PIN was being asked.
    hung_up: Option<Ended>,
}

async fn connection(ctx: Arc<Ctx>, id: u64, stream: TcpStream, peer: SocketAddr) {
    let cfg = SignallingConfig {
        display: ctx.shared.config().server.name.clone(),
        ..SignallingConfig::default()
    };
    let sig = CallSignalling::new(cfg, Instant::now(), rand::random::<u32>());
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let io = tokio::spawn(io_task(stream, sig, ev_tx, cmd_rx));
    let mut call = Call {
        ctx,
        id,
        peer,
        events: ev_rx,
        commands: cmd_tx,
        endpoint: None,
        hung_up: None,
    };
    call.run().await;
    call.cleanup().await;
    // The I/O task ends once the release is written (or the peer left).
    drop(call);
    let _ = tokio::time::timeout(RELEASE_FLUSH * 2, io).await;
}

impl Call {
    async fn run(&mut self) {
        let incoming = loop {
            match self.events.recv().await {
                Some(Event::Incoming(i)) => break i,
                Some(_) => {}
                None => return,
            }
        };
        let name = incoming
            .caller_name
            .clone()
            .or_else(|| incoming.calling_number.clone())
            .unwrap_or_else(|| "H.323 caller".into());
        let mut party = Party::anonymous(name.chars().take(128).collect::<String>(), Protocol::H323);
        party.remote = Some(self.peer);
        tracing::info!(call = self.id, dialed = %call::Pii(incoming.dialed.clone()), caller = %call::Pii(party.display_name().to_string()),
            fast_start = incoming.offer.fast_start, tunnelling = incoming.h245_tunnelling, "H.323 call");
        let (decision, _) = calls::route_call(&self.ctx.shared, &party, &incoming.dialed, None, None).await;
        match decision {
            Decision::Reject(reason) => self.release(reason).await,
            Decision::Conference { .. } => {
                if let Some(port) = self.answer(&incoming).await {
                    self.conference(party, &incoming.dialed, port).await;
                }
            }
            Decision::Ivr => {
                if let Some(port) = self.answer(&incoming).await {
                    self.ivr(party, port).await;
                }
            }
            _ => {
                tracing::info!(
                    call = self.id,
                    "H.323 calls to users, servers and routes are not served by this release"
                );
                self.release(EndReason::Unreachable).await;
            }
        }
    }

    async fn release(&mut self, reason: EndReason) {
        tracing::info!(call = self.id, reason = reason.code(), "H.323 call ended by us");
        let _ = self.commands.send(Command::Release(reason)).await;
    }

    async fn finish(&mut self, ended: Ended) {
        match ended {
            Ended::ByPeer => tracing::info!(call = self.id, "H.323 call ended by the endpoint"),
            Ended::ByUs(reason) => self.release(reason).await,
        }
    }

    /// Answers with Fast Connect and a relay endpoint for the mixer.
    async fn answer(&mut self, incoming: &IncomingCall) -> Option<AudioPort> {
        let Some(codec) = incoming.offer.choose(&[G711::Ulaw, G711::Alaw]) else {
            // No fastStart (or no G.711 in it): H.245 channel opening is not served yet.
            self.release(EndReason::MediaIncompatible).await;
            return None;
        };
        let ep = match self.ctx.relay.create_endpoint(self.id, false) {
            Ok(ep) => ep,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports");
                self.release(EndReason::ServerError).await;
                return None;
            }
        };
        self.endpoint = Some(ep.id);
        let rtp = SocketAddr::new(self.ctx.media_address, ep.rtp_port);
        let rtcp = SocketAddr::new(
            self.ctx.media_address,
            ep.rtcp_port.unwrap_or(ep.rtp_port.saturating_add(1)),
        );
        // Media first, so that the first packets after Connect are taken.
        let Some((fc, _)) = incoming.offer.accept(codec, rtp, rtcp) else {
            self.release(EndReason::MediaIncompatible).await;
            return None;
        };
        let configured = self.ctx.relay.configure(
            ep.id,
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
            self.release(EndReason::ServerError).await;
            return None;
        }
        let format = AudioFormat {
            codec: match codec {
                G711::Ulaw => CodecKind::Pcmu,
                G711::Alaw => CodecKind::Pcma,
            },
            payload_type: codec.payload_type(),
            telephone_event: None,
            telephone_event_clock: 8000,
        };
        let port = match AudioPort::start(&self.ctx.relay, ep.id, format) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the leg's audio");
                self.release(EndReason::ServerError).await;
                return None;
            }
        };
        let (reply, answered) = oneshot::channel();
        if self
            .commands
            .send(Command::Answer {
                codec,
                rtp,
                rtcp,
                reply,
            })
            .await
            .is_err()
        {
            return None;
        }
        match answered.await {
            Ok(Ok(_)) => Some(port),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot answer");
                self.release(EndReason::MediaIncompatible).await;
                None
            }
            Err(_) => None,
        }
    }

    /// Plays `prompt` and collects digits up to `#`. `Ok(None)`: nothing
    /// typed in time. `Err`: the call ended meanwhile.
    async fn collect(
        &mut self,
        port: &mut AudioPort,
        prompt: mixer::prompts::PromptId,
    ) -> Result<Option<String>, Ended> {
        let mut player = mixer::prompts::PromptPlayer::new(prompt, None);
        let mut digits = String::new();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let deadline = tokio::time::Instant::now() + DIGIT_TIMEOUT;
        loop {
            let key = tokio::select! {
                _ = tick.tick() => {
                    if let Some(f) = player.next_frame() {
                        let _ = port.to_leg.try_send(Heard { frame: *f, shared: None });
                    }
                    None
                }
                d = port.dtmf.recv() => match d {
                    Some(c) => Some(c),
                    None => return Err(Ended::ByUs(EndReason::ServerError)),
                },
                _ = port.from_leg.recv() => None,
                ev = self.events.recv() => match ev {
                    Some(Event::Dtmf(c)) => Some(c),
                    Some(Event::Released(_)) | None => return Err(Ended::ByPeer),
                    Some(_) => None,
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            };
            match key {
                Some('#') => return Ok(Some(digits)),
                Some(c) if c.is_ascii_digit() && digits.len() < MAX_DIGITS => {
                    // Typing stops the prompt.
                    player = mixer::prompts::PromptPlayer::new(prompt, Some(usize::MAX / 2));
                    while player.next_frame().is_some() {}
                    digits.push(c);
                }
                _ => {}
            }
        }
    }

    /// The IVR: asks for the conference id, then joins it.
    async fn ivr(&mut self, party: Party, mut port: AudioPort) {
        for _ in 0..3 {
            let digits = match self
                .collect(&mut port, mixer::prompts::PromptId::EnterConferenceId)
                .await
            {
                Ok(Some(d)) if !d.is_empty() => d,
                Ok(_) => continue,
                Err(ended) => {
                    self.finish(ended).await;
                    return;
                }
            };
            let dialed = format!("\\c\\{digits}");
            let (decision, _) = calls::route_call(&self.ctx.shared, &party, &dialed, None, None).await;
            if matches!(decision, Decision::Conference { .. }) {
                self.conference(party, &dialed, port).await;
                return;
            }
        }
        drop(port);
        self.release(EndReason::NotFound).await;
    }

    /// Joins the conference `dialed` names (asking for a PIN if needed) and
    /// stays until either side ends.
    async fn conference(&mut self, party: Party, dialed: &str, port: AudioPort) {
        let shared = self.ctx.shared.clone();
        let mut prompt = H323Pin { call: self, port };
        let joined = calls::join_conference(&shared, party, dialed, None, None, &mut prompt).await;
        let H323Pin { port, .. } = prompt;
        match joined {
            Ok(m) => {
                let ended = self.in_room(m, port).await;
                self.finish(ended).await;
            }
            Err(reason) => {
                drop(port);
                if let Some(ended) = self.hung_up.take() {
                    self.finish(ended).await;
                    return;
                }
                self.release(reason).await;
            }
        }
    }

    async fn in_room(&mut self, mut m: Membership, mut port: AudioPort) -> Ended {
        tracing::info!(call = self.id, "H.323 endpoint in the conference");
        let ended = loop {
            tokio::select! {
                f = port.from_leg.recv() => match f {
                    Some(f) => {
                        if m.audio_in.try_send((m.id, f)).is_err() {
                            self.ctx.shared.metrics.count_drop("room_queue_full");
                        }
                    }
                    None => break Ended::ByUs(EndReason::ServerError),
                },
                f = m.audio_out.recv() => match f {
                    Some(heard) => {
                        let _ = port.to_leg.try_send(heard);
                    }
                    None => break Ended::ByUs(EndReason::ConferenceEnded),
                },
                ev = m.events.recv() => match ev {
                    Some(RoomEvent::Removed(r)) | Some(RoomEvent::Ended(r)) => break Ended::ByUs(r),
                    Some(_) => {}
                    None => break Ended::ByUs(EndReason::ConferenceEnded),
                },
                ev = self.events.recv() => match ev {
                    Some(Event::Released(_)) | None => break Ended::ByPeer,
                    Some(_) => {}
                },
            }
        };
        m.leave().await;
        ended
    }

    async fn cleanup(&mut self) {
        if let Some(ep) = self.endpoint.take() {
            let relay = self.ctx.relay.clone();
            let _ = tokio::task::spawn_blocking(move || relay.remove_endpoint(ep)).await;
        }
    }
}

/// PIN entry for an H.323 caller: a prompt, then digits by
/// UserInputIndication, Keypad IE or RFC 4733 events.
struct H323Pin<'a> {
    call: &'a mut Call,
    port: AudioPort,
}

impl PinPrompt for H323Pin<'_> {
    async fn ask(&mut self, _attempts_left: u32, wrong: bool) -> Option<String> {
        if wrong {
            // "That PIN is not correct." then the question again.
            self.port.play_prompt(mixer::prompts::PromptId::WrongPin).await;
        }
        match self
            .call
            .collect(&mut self.port, mixer::prompts::PromptId::EnterPin)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                self.call.hung_up = Some(e);
                None
            }
        }
    }
}
