//! The H.323 listener: call signalling on TCP (H.225.0 over TPKT, port
//! 1720), one task pair per connection, driving `confgate-h323`'s
//! [`h323::signalling::CallSignalling`] for one incoming call.
//!
//! Per connection an I/O task owns the sockets and the sans-IO machine: the
//! signalling connection, and the call's separate H.245 connection when
//! there is one (connected to the caller's `h245Address`, or accepted on a
//! listener of its own on the signalling connection's local address, an
//! ephemeral port, open at most [`H245_WAIT`] and only to the caller's
//! address). It feeds the machine what it reads and the clock, writes what
//! it says to write, and hands its events to the call task; the call task
//! gets commands back to it (answer, release with a reason).
//!
//! The call task routes the dialed alias like every other protocol's call
//! string ([`calls::route_call`]) and answers a conference or IVR call with
//! a relay endpoint for the mixer: with Fast Connect when the Setup
//! proposes G.711, otherwise by H.245 (capability exchange, master/slave
//! determination, OpenLogicalChannel both ways, tunnelled or on the
//! separate connection), waiting at most [`MEDIA_WAIT`] for the channels.
//! It asks for a PIN with prompts and digits (H.245 UserInputIndication, a
//! Keypad IE, or RFC 4733 in the RTP), then joins the room through an
//! [`AudioPort`].
//!
//! The RAS gatekeeper on UDP is [`ras`]: endpoints register there and are
//! admitted with the gatekeeper-routed model, so their calls come here. A
//! Setup whose call the gatekeeper admitted for a registered endpoint (same
//! callIdentifier, from the registration's IP address) is the account's
//! call; any other caller is anonymous.
//!
//! Calls to an account's registered H.323 endpoints, to `#h323:` addresses
//! and through gateway routes to H.323 destinations go out ([`out`]): a
//! second leg dials the destination and the two are bridged.
//!
//! Video: a call into a conference takes H.264 (Constrained Baseline) on
//! a relay endpoint of its own in the conference's relay group, by Fast
//! Connect or H.245 (our capabilities announce it; H.263 and other video
//! are refused); a call the voice menu puts in a conference takes it from
//! then on (new capabilities with H.264). The endpoint's camera is published to the room and it
//! receives the active speaker's video as one switched stream
//! ([`crate::video::RoomVideo`]); every keyframe the room asks of its
//! video also goes to it as H.245 VideoFastUpdatePicture, and its own
//! VideoFastUpdatePicture asks the sources it receives (RTCP PLI).
//! FlowControlCommand is logged and counted, not enforced (the relay
//! forwards video as it comes).
//!
//! Calls to an account's SIP phones go out as a SIP leg ([`crate::legs`]).
//!
//! Not served yet: calls to federation and through SIP
//! routes (released as unreachable), video outside conferences (refused),
//! and switching from tunnelled H.245 to a separate connection mid-call
//! (Facility `startH245`).

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use call::{EndReason, Party, Protocol};
use h323::control::{LocalMedia, MediaEvent};
use h323::media::{AudioCodec, FastConnect, G711};
use h323::signalling::{
    Answer, CallSignalling, Config as SignallingConfig, Event, H245Transport, IncomingCall, Output,
};
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

mod out;
pub mod ras;

/// Most signalling connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long the IVR waits for the digits of one answer.
const DIGIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest conference id or PIN typed.
const MAX_DIGITS: usize = 32;
/// How long a release may take to be written before the socket is dropped.
const RELEASE_FLUSH: Duration = Duration::from_secs(2);
/// How long the separate H.245 connection may take to come up (the
/// caller's to our listener, or ours to the caller).
pub const H245_WAIT: Duration = Duration::from_secs(15);
/// How long the audio channels may take to open by H.245 after Connect.
pub const MEDIA_WAIT: Duration = Duration::from_secs(15);

/// Binds the call-signalling listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

struct Ctx {
    shared: Shared,
    relay: Relay,
    media_address: IpAddr,
    /// Where our listener is (calls out never go there).
    signalling_address: Option<SocketAddr>,
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
        signalling_address: listener.local_addr().ok(),
        next_call: AtomicU64::new(1),
        connections: AtomicUsize::new(0),
    });
    out::register_dialer(&ctx);
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
        answer: Answer,
        /// The listener for the caller's H.245 connection, when we offer one.
        h245_listener: Option<TcpListener>,
        reply: oneshot::Sender<Result<Option<FastConnect>, String>>,
    },
    /// Alerting: the call rings elsewhere.
    Alerting,
    Release(EndReason),
    /// Release with the Q.850 cause another leg was released with.
    ReleaseWithCause(EndReason, u8),
    /// Take H.264 video at these addresses (before `Answer`).
    SetVideo(LocalMedia),
    /// Ask the endpoint for a video key frame (VideoFastUpdatePicture).
    FastUpdate,
}

type Connecting = Pin<Box<dyn Future<Output = Result<std::io::Result<TcpStream>, tokio::time::error::Elapsed>> + Send>>;

/// The separate H.245 connection, as the I/O task holds it.
enum H245Io {
    /// None (tunnelled, Fast Connect without H.245, or over).
    Idle,
    /// Waiting for the caller (from `peer`) until the deadline.
    Listening {
        listener: TcpListener,
        peer: IpAddr,
        deadline: tokio::time::Instant,
    },
    /// Connecting to the caller.
    Connecting(Connecting),
    /// Up.
    Open(TcpStream),
}

/// What happened on the H.245 connection.
enum H245Step {
    Up(TcpStream),
    Failed,
    Data(usize),
    Closed,
}

/// Waits for the next thing on the H.245 connection (never, when idle).
/// Cancel-safe: accept, the boxed connect and read all are.
async fn h245_step(io: &mut H245Io, buf: &mut [u8]) -> H245Step {
    match io {
        H245Io::Idle => std::future::pending().await,
        H245Io::Listening {
            listener,
            peer,
            deadline,
        } => loop {
            match tokio::time::timeout_at(*deadline, listener.accept()).await {
                // Only the caller may open the call's H.245 connection.
                Ok(Ok((s, from))) if from.ip() == *peer => break H245Step::Up(s),
                Ok(Ok(_)) => continue,
                Ok(Err(_)) | Err(_) => break H245Step::Failed,
            }
        },
        H245Io::Connecting(f) => match f.as_mut().await {
            Ok(Ok(s)) => H245Step::Up(s),
            _ => H245Step::Failed,
        },
        H245Io::Open(s) => match s.read(buf).await {
            Ok(0) | Err(_) => H245Step::Closed,
            Ok(n) => H245Step::Data(n),
        },
    }
}

/// Owns the sockets and the machine: see the module docs.
async fn io_task(
    mut stream: TcpStream,
    peer: IpAddr,
    mut sig: CallSignalling,
    events: mpsc::UnboundedSender<Event>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; 4096];
    let mut h245_buf = vec![0u8; 4096];
    let mut h245 = H245Io::Idle;
    let mut commands_open = true;
    loop {
        let mut close = false;
        let mut h245_lost = false;
        while let Some(o) = sig.poll_output() {
            match o {
                Output::Transmit(bytes) => {
                    let write = tokio::time::timeout(RELEASE_FLUSH, stream.write_all(&bytes)).await;
                    if !matches!(write, Ok(Ok(()))) {
                        close = true;
                    }
                }
                Output::H245(bytes) => {
                    if let H245Io::Open(s) = &mut h245 {
                        let write = tokio::time::timeout(RELEASE_FLUSH, s.write_all(&bytes)).await;
                        if !matches!(write, Ok(Ok(()))) {
                            h245_lost = true;
                        }
                    }
                }
                Output::ConnectH245(addr) => {
                    tracing::debug!(%addr, "opening the H.245 connection");
                    h245 = H245Io::Connecting(Box::pin(tokio::time::timeout(H245_WAIT, TcpStream::connect(addr))));
                }
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Close => close = true,
            }
        }
        if close {
            if let H245Io::Open(s) = &mut h245 {
                let _ = tokio::time::timeout(RELEASE_FLUSH, s.shutdown()).await;
            }
            let _ = tokio::time::timeout(RELEASE_FLUSH, stream.shutdown()).await;
            return;
        }
        if h245_lost {
            h245 = H245Io::Idle;
            sig.h245_closed(Instant::now());
            continue;
        }
        let deadline = sig.poll_timeout();
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    // The peer went away without ReleaseComplete.
                    if !sig.is_released() {
                        let _ = events.send(Event::Released(gone()));
                    }
                    return;
                }
                Ok(n) => sig.handle_input(Instant::now(), buf.get(..n).unwrap_or_default()),
            },
            step = h245_step(&mut h245, &mut h245_buf) => match step {
                H245Step::Up(s) => {
                    let _ = s.set_nodelay(true);
                    tracing::debug!(peer = ?s.peer_addr().ok(), "H.245 connection up");
                    h245 = H245Io::Open(s);
                    sig.h245_connected(Instant::now());
                }
                H245Step::Failed => {
                    tracing::info!("no H.245 connection came about");
                    h245 = H245Io::Idle;
                    sig.h245_failed(Instant::now());
                }
                H245Step::Data(n) => sig.handle_h245_input(Instant::now(), h245_buf.get(..n).unwrap_or_default()),
                H245Step::Closed => {
                    h245 = H245Io::Idle;
                    sig.h245_closed(Instant::now());
                }
            },
            c = commands.recv(), if commands_open => match c {
                Some(Command::Answer { answer, h245_listener, reply }) => {
                    let answered = sig.answer(Instant::now(), &answer).map_err(|e| e.to_string());
                    if answered.is_ok() {
                        if let Some(listener) = h245_listener {
                            h245 = H245Io::Listening {
                                listener,
                                peer,
                                deadline: tokio::time::Instant::now() + H245_WAIT,
                            };
                        }
                    }
                    let _ = reply.send(answered);
                }
                Some(Command::Alerting) => {
                    if let Err(e) = sig.alerting() {
                        tracing::debug!(error = %e, "no Alerting sent");
                    }
                }
                Some(Command::Release(reason)) => sig.release(reason),
                Some(Command::SetVideo(local)) => sig.set_video(Instant::now(), local),
                Some(Command::FastUpdate) => {
                    if !sig.video_fast_update() {
                        tracing::debug!("no video channel from the endpoint for a fast update");
                    }
                }
                Some(Command::ReleaseWithCause(reason, cause)) => sig.release_with_cause(reason, cause),
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
    /// Our address on the signalling connection (where an H.245 listener binds).
    local: SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
    commands: mpsc::Sender<Command>,
    endpoint: Option<EndpointId>,
    /// How the call ended while a PIN was being asked.
    hung_up: Option<Ended>,
    /// Key presses that came before anyone read them (while channels opened).
    early_digits: VecDeque<char>,
    /// The caller's RTCP address, from its OpenLogicalChannel.
    peer_rtcp: Option<SocketAddr>,
    /// The relay endpoint of the leg a call out placed, if any.
    peer_endpoint: Option<EndpointId>,
    /// How the other leg of a bridged call ended while this one waited.
    other_released: Option<h323::signalling::Released>,
    /// How the caller's leg ended while its channels were awaited.
    caller_released: Option<h323::signalling::Released>,
    /// The other leg's events that came while this one waited.
    deferred: VecDeque<Event>,
    /// The conference's relay group, when the call goes into a conference
    /// (its video is taken then).
    video_group: Option<u64>,
    /// The call's H.264 video, when it has a video endpoint.
    video: Option<H323Video>,
    /// FlowControlCommands the endpoint sent.
    flow_controls: u32,
}

/// An H.323 call's video on its relay endpoint.
#[derive(Debug, Clone, Copy)]
struct H323Video {
    endpoint: EndpointId,
    /// The payload type the endpoint sends H.264 with (its channel is open).
    sends: Option<u8>,
    /// The payload type it receives H.264 with (our channel is open).
    receives: Option<u8>,
    /// Where it receives video RTP, from its ack of our channel.
    peer_rtp: Option<SocketAddr>,
    /// Its video RTCP address, from its channel or its ack.
    peer_rtcp: Option<SocketAddr>,
    /// The SSRC of the switched stream it receives.
    switched_ssrc: u32,
}

impl H323Video {
    /// The room's view of it (`None`: no channel open either way).
    fn leg(&self) -> Option<crate::video::VideoLeg> {
        use crate::video::{VideoCodec, VideoFormat};
        let format = |pt| VideoFormat {
            codec: VideoCodec::H264,
            payload_type: pt,
        };
        if self.sends.is_none() && self.receives.is_none() {
            return None;
        }
        Some(crate::video::VideoLeg {
            endpoint: self.endpoint,
            sends: self.sends.map(|pt| (format(pt), None)),
            receives: self.receives.map(|pt| vec![format(pt)]).unwrap_or_default(),
            takes_many: false,
            switched_ssrc: self.switched_ssrc,
            screen: None,
            receives_screen: Vec::new(),
        })
    }
}

/// The end of a leg whose connection went away without ReleaseComplete.
fn gone() -> h323::signalling::Released {
    h323::signalling::Released {
        by_peer: true,
        reason: EndReason::Normal,
        cause: None,
    }
}

async fn connection(ctx: Arc<Ctx>, id: u64, stream: TcpStream, peer: SocketAddr) {
    let cfg = SignallingConfig {
        display: ctx.shared.config().server.name.clone(),
        ..SignallingConfig::default()
    };
    let sig = CallSignalling::new(cfg, Instant::now(), rand::random::<u32>());
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(ctx.media_address, 0));
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let io = tokio::spawn(io_task(stream, peer.ip(), sig, ev_tx, cmd_rx));
    let mut call = Call {
        ctx,
        id,
        peer,
        local,
        events: ev_rx,
        commands: cmd_tx,
        endpoint: None,
        hung_up: None,
        early_digits: VecDeque::new(),
        peer_rtcp: None,
        peer_endpoint: None,
        other_released: None,
        caller_released: None,
        deferred: VecDeque::new(),
        video_group: None,
        video: None,
        flow_controls: 0,
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
        let name: String = name.chars().take(128).collect();
        // A registered endpoint's call, admitted by our gatekeeper, is its account's.
        let admitted = ras::admitted_caller(incoming.call_identifier, incoming.conference_id, self.peer.ip())
            .and_then(|user| call::TrueConfId::new(&user, self.ctx.shared.directory.server()).ok());
        let mut party = match admitted {
            Some(id) => {
                let mut p = Party::authenticated(id, Protocol::H323);
                p.display_name = Some(name);
                p
            }
            None => Party::anonymous(name, Protocol::H323),
        };
        party.remote = Some(self.peer);
        tracing::info!(call = self.id, dialed = %call::Pii(incoming.dialed.clone()), caller = %call::Pii(party.display_name().to_string()),
            account = party.account().map(|a| a.user().to_string()).unwrap_or_default(),
            fast_start = incoming.offer.fast_start, tunnelling = incoming.h245_tunnelling, h245 = ?incoming.h245, "H.323 call");
        let (decision, _) = calls::route_call(&self.ctx.shared, &party, &incoming.dialed, None, None).await;
        match decision {
            Decision::Reject(reason) => self.release(reason).await,
            Decision::Conference { id, .. } => {
                self.video_group = Some(crate::video::media_group(&id));
                if let Some(port) = self.answer(&incoming).await {
                    self.conference(party, &incoming.dialed, port).await;
                }
            }
            Decision::Ivr => {
                if let Some(port) = self.answer(&incoming).await {
                    self.ivr(party, port).await;
                }
            }
            other => self.call_out(party, &incoming, other).await,
        }
    }

    async fn release(&mut self, reason: EndReason) {
        tracing::info!(call = self.id, reason = reason.code(), "H.323 call ended by us");
        let _ = self.commands.send(Command::Release(reason)).await;
    }

    /// Releases the caller with the Q.850 `cause` given (passed on from
    /// the other leg).
    async fn release_with_cause(&mut self, reason: EndReason, cause: u8) {
        tracing::info!(call = self.id, reason = reason.code(), cause, "H.323 call ended by us");
        let _ = self.commands.send(Command::ReleaseWithCause(reason, cause)).await;
    }

    async fn finish(&mut self, ended: Ended) {
        match ended {
            Ended::ByPeer => tracing::info!(call = self.id, "H.323 call ended by the endpoint"),
            Ended::ByUs(reason) => self.release(reason).await,
        }
    }

    /// Answers with a relay endpoint for the mixer: with Fast Connect when
    /// the Setup proposes G.711, else with the channels H.245 opens.
    async fn answer(&mut self, incoming: &IncomingCall) -> Option<AudioPort> {
        let fast = incoming.offer.choose(&[G711::Ulaw, G711::Alaw]);
        let (ep, codec, port) = self.accept(incoming, fast, true, None).await?;
        match port {
            Some(port) => Some(port),
            None => self.start_port(ep, codec).await,
        }
    }

    /// Answers with a relay endpoint: with Fast Connect in `fast` when the
    /// Setup proposes it, else with the channels H.245 opens (waiting at
    /// most [`MEDIA_WAIT`], and for `other`'s events too: see
    /// [`Call::await_channels`]). With `port`, the leg's audio starts before
    /// Connect when Fast Connect gives the codec then. Returns the endpoint,
    /// the codec and the port if started. `None`: the call ended (released
    /// if by us).
    async fn accept(
        &mut self,
        incoming: &IncomingCall,
        fast: Option<G711>,
        port: bool,
        other: Option<&mut mpsc::UnboundedReceiver<Event>>,
    ) -> Option<(EndpointId, AudioCodec, Option<AudioPort>)> {
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
        // The caller neither tunnels nor gave an address: it connects to us.
        let h245_listener = if incoming.h245 == H245Transport::Listen {
            match TcpListener::bind(SocketAddr::new(self.local.ip(), 0)).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for H.245");
                    None
                }
            }
        } else {
            None
        };
        let h245_listen = h245_listener.as_ref().and_then(|l| l.local_addr().ok());
        // Media first, so that the first packets after Connect are taken.
        let (peer, peer_rtcp, codec) = match fast.and_then(|c| incoming.offer.accept(c, rtp, rtcp)) {
            Some((fc, _)) => (fc.peer_rtp, fc.peer_rtcp, Some(AudioCodec::from(fc.codec))),
            None => (None, None, None),
        };
        let configured = self.ctx.relay.configure(
            ep.id,
            &PeerConfig {
                peer,
                peer_rtcp,
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
        let mut started = None;
        if let Some(codec) = codec.filter(|_| port) {
            started = Some(self.start_port(ep.id, codec).await?);
        }
        if let Some(group) = self.video_group {
            self.take_video(group).await;
        }
        let (reply, answered) = oneshot::channel();
        let answer = Answer {
            rtp,
            rtcp,
            fast_connect: codec.and(fast),
            h245_listen,
        };
        let command = Command::Answer {
            answer,
            h245_listener,
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return None;
        }
        match answered.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot answer");
                self.release(EndReason::MediaIncompatible).await;
                return None;
            }
            Err(_) => return None,
        }
        if let Some(codec) = codec {
            return Some((ep.id, codec, started));
        }
        let codec = self.await_channels(other).await?;
        tracing::info!(call = self.id, codec = codec.name(), "H.323 channels open by H.245");
        Some((ep.id, codec, None))
    }

    /// Gives the call a video endpoint in the conference's relay `group`
    /// and has the signalling take H.264 there. Without ports the call
    /// goes on with audio only.
    async fn take_video(&mut self, group: u64) {
        let vep = match self.ctx.relay.create_endpoint(group, false) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(call = self.id, error = %e, "no port for video; audio only");
                return;
            }
        };
        let local = LocalMedia {
            rtp: SocketAddr::new(self.ctx.media_address, vep.rtp_port),
            rtcp: SocketAddr::new(
                self.ctx.media_address,
                vep.rtcp_port.unwrap_or(vep.rtp_port.saturating_add(1)),
            ),
        };
        let configured = self.ctx.relay.configure(vep.id, &video_peer(None, None));
        if let Err(e) = configured {
            tracing::warn!(call = self.id, error = %e, "relay refused the video; audio only");
            let _ = self.ctx.relay.remove_endpoint(vep.id);
            return;
        }
        self.video = Some(H323Video {
            endpoint: vep.id,
            sends: None,
            receives: None,
            peer_rtp: None,
            peer_rtcp: None,
            switched_ssrc: rand::random::<u32>() | 1,
        });
        let _ = self.commands.send(Command::SetVideo(local)).await;
    }

    /// The leg's audio through the relay endpoint, in `codec`.
    async fn start_port(&mut self, ep: EndpointId, codec: AudioCodec) -> Option<AudioPort> {
        match AudioPort::start(&self.ctx.relay, ep, audio_format(codec)) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the leg's audio");
                self.release(EndReason::ServerError).await;
                None
            }
        }
    }

    /// Waits (at most [`MEDIA_WAIT`]) until H.245 has opened the audio
    /// channels both ways in one codec, and returns it; with only one
    /// direction open by then, its codec. `None`: the call ended, or no
    /// channel opened (the call is then released). The caller's end is
    /// kept in `caller_released`. While it waits, the events of `other`
    /// (the other leg of a bridged call) are watched: its end ends the
    /// wait (kept in `other_released`, for the caller to pass on), its
    /// other events are kept in `deferred`.
    async fn await_channels(&mut self, mut other: Option<&mut mpsc::UnboundedReceiver<Event>>) -> Option<AudioCodec> {
        let deadline = tokio::time::Instant::now() + MEDIA_WAIT;
        let (mut tx, mut rx) = (None, None);
        loop {
            if let (Some(t), Some(r)) = (tx, rx) {
                if t == r {
                    return Some(t);
                }
            }
            let ev = tokio::select! {
                ev = self.events.recv() => ev,
                o = async {
                    match other.as_deref_mut() {
                        Some(o) => o.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match o {
                        Some(Event::Released(r)) => self.other_released = Some(r),
                        Some(e) => {
                            self.deferred.push_back(e);
                            continue;
                        }
                        None => self.other_released = Some(gone()),
                    }
                    return None;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            };
            match ev {
                Some(Event::Media(m)) => {
                    let _ = self.media_event(m);
                    match m {
                        MediaEvent::TransmitOpened { codec, .. } => tx = Some(codec),
                        MediaEvent::ReceiveOpened { codec, .. } => rx = Some(codec),
                        MediaEvent::TransmitClosed => tx = None,
                        MediaEvent::ReceiveClosed => rx = None,
                        MediaEvent::TransmitFailed if rx.is_some() => break,
                        _ => {}
                    }
                }
                Some(Event::Dtmf(d)) => self.early_digits.push_back(d),
                Some(Event::Released(r)) => {
                    tracing::info!(call = self.id, "H.323 call ended by the endpoint");
                    self.caller_released = Some(r);
                    return None;
                }
                None => {
                    tracing::info!(call = self.id, "H.323 call ended by the endpoint");
                    self.caller_released = Some(gone());
                    return None;
                }
                // A second Setup, or what only calls out report.
                Some(Event::Incoming(_) | Event::Proceeding | Event::Alerting | Event::Connected(_)) => {}
            }
        }
        match rx.or(tx) {
            Some(codec) => Some(codec),
            None => {
                tracing::info!(call = self.id, "no audio channel opened by H.245");
                self.release(EndReason::MediaIncompatible).await;
                None
            }
        }
    }

    /// Follows a change of the H.245 channels: where the caller receives
    /// goes to the relay. Whether the call's video changed (the room must
    /// be told).
    fn media_event(&mut self, m: MediaEvent) -> bool {
        let Some(v) = self.video.as_mut() else {
            if let MediaEvent::VideoReceiveOpened { .. } | MediaEvent::VideoTransmitOpened { .. } = m {
                tracing::debug!(call = self.id, "H.323 video without a video endpoint");
            }
            follow_media(&self.ctx.relay, self.id, self.endpoint, &mut self.peer_rtcp, m);
            return false;
        };
        match m {
            MediaEvent::VideoReceiveOpened {
                h264,
                payload_type,
                rtcp,
            } => {
                tracing::info!(call = self.id, level = %h264.level_name(), payload_type, "H.323 endpoint sends H.264");
                v.sends = Some(payload_type);
                if rtcp.is_some() {
                    v.peer_rtcp = rtcp;
                    let configured = self.ctx.relay.configure(v.endpoint, &video_peer(v.peer_rtp, rtcp));
                    if let Err(e) = configured {
                        tracing::warn!(call = self.id, error = %e, "relay refused the video");
                    }
                }
                true
            }
            MediaEvent::VideoTransmitOpened {
                h264,
                payload_type,
                rtp,
                rtcp,
            } => {
                tracing::info!(call = self.id, level = %h264.level_name(), payload_type, peer = ?rtp, "H.323 endpoint receives H.264");
                v.receives = Some(payload_type);
                v.peer_rtp = rtp;
                v.peer_rtcp = rtcp.or(v.peer_rtcp);
                let configured = self.ctx.relay.configure(v.endpoint, &video_peer(rtp, v.peer_rtcp));
                if let Err(e) = configured {
                    tracing::warn!(call = self.id, error = %e, "relay refused the video");
                }
                true
            }
            MediaEvent::VideoReceiveClosed => v.sends.take().is_some(),
            MediaEvent::VideoTransmitClosed | MediaEvent::VideoTransmitFailed => {
                tracing::info!(call = self.id, event = ?m, "H.323 video towards the endpoint closed");
                v.receives.take().is_some()
            }
            MediaEvent::FlowControl { max_bit_rate } => {
                // Logged and counted: the relay forwards video as it comes.
                self.flow_controls = self.flow_controls.saturating_add(1);
                tracing::info!(
                    call = self.id,
                    ?max_bit_rate,
                    count = self.flow_controls,
                    "H.323 FlowControlCommand"
                );
                false
            }
            other => {
                follow_media(&self.ctx.relay, self.id, self.endpoint, &mut self.peer_rtcp, other);
                false
            }
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
            let key = if let Some(d) = self.early_digits.pop_front() {
                Some(d)
            } else {
                tokio::select! {
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
                    Some(Event::Media(m)) => {
                        let _ = self.media_event(m);
                        None
                    }
                    Some(Event::Released(_)) | None => return Err(Ended::ByPeer),
                    Some(_) => None,
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                }
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
            if let Decision::Conference { id, .. } = decision {
                // Video is taken from now on: new capabilities with H.264.
                if self.video.is_none() {
                    let group = crate::video::media_group(&id);
                    self.video_group = Some(group);
                    self.take_video(group).await;
                }
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
        // Keyframes the room asks of the endpoint's video go to it as
        // VideoFastUpdatePicture.
        let (kf_tx, mut keyframes) = mpsc::unbounded_channel();
        let mut keyframes_open = self.video.is_some();
        if let Some(v) = self.video {
            m.on_keyframe_request(kf_tx).await;
            if let Some(leg) = v.leg() {
                m.set_video(Some(leg)).await;
            }
        } else {
            drop(kf_tx);
        }
        let ended = loop {
            tokio::select! {
                k = keyframes.recv(), if keyframes_open => match k {
                    Some(()) => {
                        // One request for a burst.
                        while keyframes.try_recv().is_ok() {}
                        tracing::debug!(call = self.id, "keyframe asked of the H.323 endpoint");
                        if self.commands.try_send(Command::FastUpdate).is_err() {
                            self.ctx.shared.metrics.count_drop("h323_fast_update_queue_full");
                        }
                    }
                    None => keyframes_open = false,
                },
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
                    Some(Event::Media(MediaEvent::FastUpdateRequested)) => {
                        // The endpoint wants a keyframe of what it receives.
                        tracing::debug!(call = self.id, "VideoFastUpdatePicture from the H.323 endpoint");
                        m.request_keyframe().await;
                    }
                    Some(Event::Media(ev)) => {
                        if self.media_event(ev) {
                            m.set_video(self.video.and_then(|v| v.leg())).await;
                        }
                    }
                    Some(_) => {}
                },
            }
        };
        m.leave().await;
        ended
    }

    async fn cleanup(&mut self) {
        let video = self.video.take().map(|v| v.endpoint);
        for ep in [self.endpoint.take(), self.peer_endpoint.take(), video]
            .into_iter()
            .flatten()
        {
            let relay = self.ctx.relay.clone();
            let _ = tokio::task::spawn_blocking(move || relay.remove_endpoint(ep)).await;
        }
    }
}

/// The mixer's format for an H.323 audio codec (static payload types, no
/// RFC 4733 events).
fn audio_format(codec: AudioCodec) -> AudioFormat {
    AudioFormat {
        codec: match codec {
            AudioCodec::Pcmu => CodecKind::Pcmu,
            AudioCodec::Pcma => CodecKind::Pcma,
            AudioCodec::G722 => CodecKind::G722,
        },
        payload_type: codec.payload_type(),
        telephone_event: None,
        telephone_event_clock: 8000,
    }
}

/// The relay's view of an H.323 endpoint's video: RTP to `rtp` (absent:
/// latched on its packets), RTCP to `rtcp`, 90 kHz clock, no SRTP.
fn video_peer(rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) -> PeerConfig {
    PeerConfig {
        peer: rtp,
        peer_rtcp: rtcp,
        latch: LatchMode::Once,
        srtp_in: None,
        srtp_out: None,
        clock_rate: 90_000,
        rtcp_mux: false,
    }
}

/// Follows a change of a leg's H.245 channels: where the endpoint receives
/// goes to the leg's relay endpoint `ep` (`peer_rtcp` keeps its RTCP
/// address from its own OpenLogicalChannel).
fn follow_media(relay: &Relay, call: u64, ep: Option<EndpointId>, peer_rtcp: &mut Option<SocketAddr>, m: MediaEvent) {
    match m {
        MediaEvent::ReceiveOpened { rtcp, .. } => {
            if rtcp.is_some() {
                *peer_rtcp = rtcp;
            }
        }
        MediaEvent::TransmitOpened { codec, rtp, rtcp } => {
            tracing::debug!(call, codec = codec.name(), peer = ?rtp, "H.323 transmit channel open");
            if let Some(ep) = ep {
                let configured = relay.configure(
                    ep,
                    &PeerConfig {
                        peer: rtp,
                        peer_rtcp: rtcp.or(*peer_rtcp),
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
            }
        }
        other => tracing::debug!(call, event = ?other, "H.323 media event"),
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
