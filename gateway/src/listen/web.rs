//! The web client's driver: one task per WebSocket session at `/ws`.
//!
//! It speaks `confgate-webrtc`'s signaling messages ([`webrtc::signal`]),
//! joins the conference through [`calls::join_conference`] (PIN asked with
//! `pin_required`, lobby told with `lobby`), and once admitted drives the
//! session's media transport the way the crate docs of `confgate-webrtc`
//! describe:
//!
//! 1. a relay endpoint (rtcp-mux) tapped by an [`AudioPort`] that also
//!    hands up STUN and DTLS datagrams;
//! 2. our offer (ICE-lite, `a=setup:actpass`, Opus sendrecv) with one host
//!    candidate on the media advertise address and the endpoint's port;
//! 3. the browser's answer gives the remote ufrag and fingerprint: an
//!    [`IceLiteAgent`] answers the checks, a [`DtlsTransport`] (server)
//!    does the handshake; both send through [`Relay::send_raw`];
//! 4. nominated address + DTLS keys → the relay endpoint's peer
//!    ([`LatchMode::Signaled`]) and SRTP contexts; audio then flows
//!    browser → relay → [`AudioPort`] → room and back.
//!
//! Our m-sections: `0` audio, `1` the browser's camera, `2` the browser's
//! screen share (its own payload types, [`sdp::SCREEN_VP8_PT`] and
//! [`sdp::SCREEN_H264_PT`], so that the relay tells it from the camera on
//! the one bundled endpoint), then `v<participant>` for each other
//! participant's camera and `s<participant>` for each other participant's
//! screen, re-offered whenever [`RoomEvent::VideoSources`] changes.
//!
//! `ice_restart` (the browser lost its path) is answered with a new offer
//! carrying new ICE credentials; the DTLS association, its SRTP keys and
//! the relay endpoint stay, and the next nomination points the endpoint at
//! the browser's new address.
//!
//! Moderators get `lobby_queue` (who waits in the waiting room) whenever
//! it changes, and admit or reject with `moderate`.
//!
//! Chat: a `chat` line goes to the room ([`Membership::chat`]) when the
//! conference's `chat` setting (read from the directory at each line) is
//! on; otherwise an `error` with code `chat_disabled`. A chat flood meets
//! the same per-session rate limit as every other frame.
//!
//! Bad input: a frame that does not parse closes the session with the
//! code [`webrtc::signal::SignalError::close_code`] gives (1008, or 1009
//! when too big); binary frames close with 1003; more than
//! [`RATE_BURST`] frames at once (refilled at [`RATE_PER_SEC`] per
//! second) close with 1008 `rate limited`. Nothing else is touched.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use call::{EndReason, ParticipantId, Party, Protocol};
use relay::{EndpointId, LatchMode, PeerConfig, Relay, SrtpParams};
use webrtc::dtls::Fingerprint;
use webrtc::dtls::{DtlsCert, DtlsOutput, DtlsTransport};
use webrtc::ice::{IceCredentials, IceEvent, IceLiteAgent, IceOutput};
use webrtc::sdp::{self, Direction, LocalMedia, LocalSource, LocalTransport, MediaKind, SessionDescription};
use webrtc::signal::{self, ClientMessage, ServerMessage};

use crate::calls::{self, PinPrompt};
use crate::conference::{Membership, ModerationError, ModeratorAction, ParticipantView, RoomEvent, RoomNotice};
use crate::http::web::{SessionStore, WebUser};
use crate::media::{AudioFormat, AudioPort, TransportDatagram};
use crate::router::Role;
use crate::state::Shared;
use crate::video::{self, VideoCodec, VideoFormat, VideoKind, VideoLeg, VideoSource};

/// Frames a session may send at once before the rate limit applies.
pub const RATE_BURST: f64 = 40.0;
/// Frames per second a session may keep sending.
pub const RATE_PER_SEC: f64 = 10.0;
/// How long we wait for the browser's Close after ours.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);
/// How long a new session has to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the browser has to answer `pin_required`.
const PIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long before a session that never joins is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// DTLS datagrams kept while waiting for the browser's answer.
const EARLY_DTLS: usize = 16;
/// The mid of our audio m-section.
const AUDIO_MID: &str = "0";
/// The mid of the m-section the browser's camera goes in.
const CAMERA_MID: &str = "1";
/// The mid of the m-section the browser's screen share goes in.
const SCREEN_MID: &str = "2";

/// What every web session needs besides [`Shared`]: the media plane and
/// our DTLS certificate (one per process). Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebContext {
    /// The media relay.
    pub relay: Relay,
    /// The address put in our ICE host candidate (`media.advertise`).
    pub media_address: IpAddr,
    /// Our DTLS certificate; its fingerprint goes in every offer.
    pub cert: Arc<DtlsCert>,
    /// Logged-in browser sessions (the session cookie's store).
    pub sessions: Arc<SessionStore>,
}

impl WebContext {
    /// A context with a freshly generated certificate.
    ///
    /// # Errors
    ///
    /// The certificate could not be generated.
    pub fn new(relay: Relay, media_address: IpAddr) -> Result<Self, webrtc::dtls::DtlsError> {
        Ok(Self {
            relay,
            media_address,
            cert: Arc::new(DtlsCert::generate()?),
            sessions: Arc::new(SessionStore::default()),
        })
    }
}

/// The WebSocket side of a session: framing, limits, closing.
struct Signal {
    socket: WebSocket,
    tokens: f64,
    refilled: Instant,
    closed: bool,
}

impl Signal {
    fn new(socket: WebSocket) -> Self {
        Self {
            socket,
            tokens: RATE_BURST,
            refilled: Instant::now(),
            closed: false,
        }
    }

    async fn send(&mut self, m: ServerMessage) {
        if self.closed {
            return;
        }
        if self.socket.send(Message::Text(m.to_json().into())).await.is_err() {
            self.closed = true;
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        if self.closed {
            return;
        }
        let frame = CloseFrame {
            code,
            reason: reason.chars().take(120).collect::<String>().into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
        self.closed = true;
        // Read (and drop) what the browser still sends until its Close, for
        // a moment: closing with unread data resets the connection, and the
        // reset can overtake our error and Close frames (the browser then
        // sees 1006 and no reason).
        let drain = async {
            while let Some(Ok(m)) = self.socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_DRAIN, drain).await;
    }

    /// The next client message; `None` once the session is over (closed by
    /// the browser, or by us for a bad frame). Cancel-safe.
    async fn recv(&mut self) -> Option<ClientMessage> {
        loop {
            if self.closed {
                return None;
            }
            let msg = match self.socket.recv().await {
                Some(Ok(m)) => m,
                Some(Err(_)) | None => {
                    self.closed = true;
                    return None;
                }
            };
            let text = match msg {
                Message::Text(t) => t,
                Message::Binary(_) => {
                    self.close(1003, "binary frames are not accepted").await;
                    return None;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => {
                    self.closed = true;
                    return None;
                }
            };
            let now = Instant::now();
            let elapsed = now.duration_since(self.refilled).as_secs_f64();
            self.refilled = now;
            self.tokens = (self.tokens + elapsed * RATE_PER_SEC).min(RATE_BURST);
            if self.tokens < 1.0 {
                self.send(error("rate_limited", "too many messages")).await;
                self.close(1008, "rate limited").await;
                return None;
            }
            self.tokens -= 1.0;
            match ClientMessage::parse(text.as_str()) {
                Ok(m) => return Some(m),
                Err(e) => {
                    tracing::info!(error = %e, "web client sent a bad frame; closing");
                    self.send(ServerMessage::from_error(&e)).await;
                    self.close(e.close_code(), "bad message").await;
                    return None;
                }
            }
        }
    }
}

fn error(code: &str, message: &str) -> ServerMessage {
    ServerMessage::Error(signal::ErrorMessage {
        code: code.into(),
        message: message.into(),
    })
}

fn ended(reason: &EndReason) -> ServerMessage {
    ServerMessage::Ended(signal::Ended::from_reason(reason))
}

/// The party of a browser whose session cookie names `user`, if the
/// account still exists.
async fn cookie_party(shared: &Shared, user: &WebUser, source: Option<SocketAddr>) -> Option<Party> {
    let account = match shared.directory.lookup_account(&user.user).await {
        Ok(Some(a)) => a,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "looking up a session's account failed");
            return None;
        }
    };
    let id = call::TrueConfId::new(&account.user, shared.directory.server()).ok()?;
    let mut party = Party::authenticated(id, Protocol::WebRtc);
    party.display_name = Some(account.display_name);
    party.remote = source;
    Some(party)
}

/// Runs one session to its end. `user`: the account of the browser's
/// session cookie, if it had a live one; the session is then authenticated
/// from the start (`welcome` names it) and a `join` without `login` joins
/// as that account.
pub async fn session(
    shared: Shared,
    ctx: WebContext,
    socket: WebSocket,
    source: Option<SocketAddr>,
    user: Option<WebUser>,
) {
    let mut sig = Signal::new(socket);
    // hello → welcome
    match tokio::time::timeout(HELLO_TIMEOUT, sig.recv()).await {
        Ok(Some(ClientMessage::Hello(_))) => {}
        Ok(Some(_)) => {
            sig.send(error("bad_message", "the first message must be hello")).await;
            sig.close(1008, "hello expected").await;
            return;
        }
        Ok(None) => return,
        Err(_) => {
            sig.close(1008, "no hello").await;
            return;
        }
    }
    let welcome = |user: Option<String>| {
        ServerMessage::Welcome(signal::Welcome {
            server: format!("confgate/{}", env!("CARGO_PKG_VERSION")),
            user,
        })
    };
    let mut account: Option<Party> = match &user {
        Some(u) => cookie_party(&shared, u, source).await,
        None => None,
    };
    sig.send(welcome(
        account.as_ref().and_then(|p| p.account()).map(|a| a.to_string()),
    ))
    .await;
    let deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
    loop {
        let m = match tokio::time::timeout_at(deadline, sig.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => {
                sig.close(1000, "idle").await;
                return;
            }
        };
        match m {
            ClientMessage::Login(l) => {
                match calls::authenticate(
                    &shared,
                    &l.user,
                    &l.password.0,
                    Protocol::WebRtc,
                    source.map(|s| s.ip()),
                )
                .await
                {
                    Ok(mut party) => {
                        party.remote = source;
                        let user = party.account().map(|a| a.to_string());
                        account = Some(party);
                        sig.send(welcome(user)).await;
                    }
                    Err(EndReason::LockedOut { .. }) => {
                        sig.send(error("rate_limited", "too many failed logins; try later"))
                            .await;
                    }
                    Err(_) => sig.send(error("auth_failed", "wrong user or password")).await,
                }
            }
            ClientMessage::Join(j) => {
                let party = match &account {
                    Some(p) => {
                        let mut p = p.clone();
                        p.display_name = Some(j.display_name.clone());
                        p
                    }
                    None => {
                        let mut p = Party::anonymous(j.display_name.clone(), Protocol::WebRtc);
                        p.remote = source;
                        p
                    }
                };
                join(&shared, &ctx, &mut sig, party, j).await;
                return;
            }
            ClientMessage::Hello(_) => {}
            ClientMessage::Leave(_) => {
                sig.close(1000, "left").await;
                return;
            }
            other => {
                sig.send(error("bad_message", &format!("{} before join", other.message_type())))
                    .await;
            }
        }
    }
}

/// Asks for the PIN over the WebSocket.
struct WebPin<'a> {
    sig: &'a mut Signal,
}

impl PinPrompt for WebPin<'_> {
    async fn ask(&mut self, attempts_left: u32, wrong: bool) -> Option<String> {
        self.sig
            .send(ServerMessage::PinRequired(signal::PinRequired { attempts_left, wrong }))
            .await;
        let deadline = tokio::time::Instant::now() + PIN_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.sig.recv()).await {
                Ok(Some(ClientMessage::Pin(p))) => return Some(p.pin),
                Ok(Some(ClientMessage::Leave(_))) | Ok(None) | Err(_) => return None,
                Ok(Some(other)) => {
                    self.sig
                        .send(error(
                            "bad_message",
                            &format!("{} while a PIN is asked", other.message_type()),
                        ))
                        .await;
                }
            }
        }
    }
}

async fn join(shared: &Shared, ctx: &WebContext, sig: &mut Signal, party: Party, j: signal::Join) {
    let dialed = format!("\\c\\{}", j.conference);
    let joined = {
        let mut prompt = WebPin { sig: &mut *sig };
        calls::join_conference(shared, party, &dialed, j.pin.clone(), Some("confgate-web"), &mut prompt).await
    };
    let m = match joined {
        Ok(m) => m,
        Err(reason) => {
            sig.send(ended(&reason)).await;
            sig.close(1000, reason.code()).await;
            return;
        }
    };
    tracing::info!(conf = %m.conference, participant = m.id.0, "web client joined");
    let mut s = Session {
        shared,
        ctx,
        media: None,
        role: Role::Guest,
        mic_muted: !j.mic,
        admitted: false,
        lobby_queue: None,
    };
    let reason = s.in_room(sig, m).await;
    if let Some(media) = s.media.take() {
        media.close(&ctx.relay);
    }
    sig.send(ended(&reason)).await;
    sig.close(1000, reason.code()).await;
}

/// The session's media transport, once admitted.
struct Media {
    endpoint: EndpointId,
    port: AudioPort,
    datagrams: tokio::sync::mpsc::Receiver<TransportDatagram>,
    agent: IceLiteAgent,
    dtls: Option<DtlsTransport>,
    /// DTLS datagrams that came before the browser's answer.
    early_dtls: Vec<(SocketAddr, Vec<u8>)>,
    /// Where DTLS records go: the source of the last one taken.
    dtls_peer: Option<SocketAddr>,
    nominated: Option<SocketAddr>,
    /// (srtp_in, srtp_out) once DTLS connected.
    keys: Option<(SrtpParams, SrtpParams)>,
    /// The peer the relay endpoint is configured with.
    configured: Option<SocketAddr>,
    failed: bool,
    /// Our offers' session id (fixed) and last version.
    session_id: u64,
    version: u64,
    transport: LocalTransport,
    /// Our m-sections in offer order: audio, the camera, then one per
    /// other participant's video (inactive once that stream is gone: an
    /// m-section is never removed, RFC 8829 §5.2.2).
    sections: Vec<LocalMedia>,
    /// An offer is out and its answer has not come.
    awaiting_answer: bool,
    /// The video sources changed while an offer was out: offer again after.
    reoffer: bool,
    /// What the room was told of this session's video.
    video_leg: Option<VideoLeg>,
    /// The browser's last answer (its camera and screen m-sections).
    last_answer: Option<SessionDescription>,
    /// The browser shares its screen now (`screen` message).
    screen_sharing: bool,
    /// The browser's DTLS fingerprint from its first answer: later answers
    /// must keep it (the DTLS association outlives ICE restarts).
    remote_fingerprint: Option<Fingerprint>,
    /// The browser asked for an ICE restart while an offer was out.
    restart_pending: bool,
    /// The endpoint had a peer before (so a new one is a re-pointing).
    was_configured: bool,
    /// The endpoint was pointed at a new address after a loss: the room
    /// asks for keyframes so that video starts again at once.
    repointed: bool,
}

/// What the media transport woke up for.
// A frame moves through here by value every 20 ms: boxing it would
// allocate per frame, which the packet path avoids.
#[allow(clippy::large_enum_variant)]
enum MediaInput {
    Frame(mixer::Frame),
    Datagram(TransportDatagram),
    Timeout,
    Gone,
}

impl Media {
    fn start(ctx: &WebContext, group: u64) -> Result<(Media, String), String> {
        let ep = ctx.relay.create_endpoint(group, true).map_err(|e| e.to_string())?;
        let format = AudioFormat {
            codec: mixer::codec::CodecKind::Opus { channels: 2 },
            payload_type: sdp::OPUS_PT,
            telephone_event: Some(sdp::TELEPHONE_EVENT_PT),
            telephone_event_clock: 8000,
        };
        let (port, datagrams) = match AudioPort::start_with_transport(&ctx.relay, ep.id, format) {
            Ok(x) => x,
            Err(e) => {
                let _ = ctx.relay.remove_endpoint(ep.id);
                return Err(e.to_string());
            }
        };
        let creds = match IceCredentials::random() {
            Ok(c) => c,
            Err(e) => {
                let _ = ctx.relay.remove_endpoint(ep.id);
                return Err(e.to_string());
            }
        };
        let transport = LocalTransport {
            ice: creds.clone(),
            fingerprint: ctx.cert.fingerprint().clone(),
            candidate: SocketAddr::new(ctx.media_address, ep.rtp_port),
        };
        let sections = vec![
            LocalMedia {
                mid: AUDIO_MID.into(),
                kind: MediaKind::Audio,
                direction: Direction::SendRecv,
                source: Some(LocalSource {
                    ssrc: port.ssrc(),
                    cname: format!("confgate-{group}"),
                    stream: "confgate-room".into(),
                    track: "room-audio".into(),
                }),
                codecs: None,
            },
            // The browser's camera, which we receive.
            LocalMedia {
                mid: CAMERA_MID.into(),
                kind: MediaKind::Video,
                direction: Direction::RecvOnly,
                source: None,
                codecs: None,
            },
            // The browser's screen share, under payload types of its own.
            LocalMedia {
                mid: SCREEN_MID.into(),
                kind: MediaKind::Video,
                direction: Direction::RecvOnly,
                source: None,
                codecs: Some(sdp::screen_codecs()),
            },
        ];
        let mut agent = IceLiteAgent::new(creds);
        agent.set_software(Some(format!("confgate/{}", env!("CARGO_PKG_VERSION"))));
        let mut media = Media {
            endpoint: ep.id,
            port,
            datagrams,
            agent,
            dtls: None,
            early_dtls: Vec::new(),
            dtls_peer: None,
            nominated: None,
            keys: None,
            configured: None,
            failed: false,
            session_id: u64::from(rand::random::<u32>()),
            version: 0,
            transport,
            sections,
            awaiting_answer: false,
            reoffer: false,
            video_leg: None,
            last_answer: None,
            screen_sharing: false,
            remote_fingerprint: None,
            restart_pending: false,
            was_configured: false,
            repointed: false,
        };
        let offer = media.offer();
        Ok((media, offer))
    }

    /// Our next offer (the version goes up by one each time), with new ICE
    /// credentials when a restart is pending.
    fn offer(&mut self) -> String {
        if self.restart_pending {
            match IceCredentials::random() {
                Ok(creds) => {
                    tracing::info!("ICE restart: new credentials offered");
                    self.agent.restart(creds.clone());
                    self.transport.ice = creds;
                }
                Err(e) => tracing::warn!(error = %e, "ICE restart: no new credentials"),
            }
            self.restart_pending = false;
        }
        self.version += 1;
        self.awaiting_answer = true;
        self.reoffer = false;
        sdp::build_offer(self.session_id, self.version, &self.transport, &self.sections)
    }

    /// The browser asks for an ICE restart: the offer to send now, or
    /// `None` when one is out (the restart goes with the next, sent when
    /// its answer comes).
    fn ice_restart(&mut self) -> Option<String> {
        self.restart_pending = true;
        if self.awaiting_answer {
            self.reoffer = true;
            return None;
        }
        Some(self.offer())
    }

    /// Brings the m-sections of other participants' video to `sources`;
    /// true when the offer must be renegotiated.
    fn set_sources(&mut self, sources: &[VideoSource]) -> bool {
        let mut changed = false;
        for s in sources {
            let mid = source_mid(s);
            let (stream, track) = match s.kind {
                VideoKind::Camera => (format!("p{}", s.participant), format!("p{}-video", s.participant)),
                VideoKind::Screen => (
                    format!("p{}-screen", s.participant),
                    format!("p{}-screen", s.participant),
                ),
            };
            let source = LocalSource {
                ssrc: s.ssrc,
                cname: format!("p{}", s.participant),
                stream,
                track,
            };
            // The section's payload types are the ones the room forwards in.
            let codecs = (s.format.payload_type == sdp::SCREEN_VP8_PT || s.format.payload_type == sdp::SCREEN_H264_PT)
                .then(sdp::screen_codecs);
            let room = self.sections.len() < sdp::MAX_MEDIA;
            match self.sections.iter_mut().find(|m| m.mid == mid) {
                Some(m) if m.direction == Direction::SendOnly && m.source.as_ref() == Some(&source) => {}
                Some(m) => {
                    m.direction = Direction::SendOnly;
                    m.source = Some(source);
                    changed = true;
                }
                None if room => {
                    self.sections.push(LocalMedia {
                        mid,
                        kind: MediaKind::Video,
                        direction: Direction::SendOnly,
                        source: Some(source),
                        codecs,
                    });
                    changed = true;
                }
                None => tracing::info!(participant = s.participant, "too many video streams for one page"),
            }
        }
        for m in self
            .sections
            .iter_mut()
            .filter(|m| m.mid.starts_with('v') || m.mid.starts_with('s'))
        {
            let live = sources.iter().any(|s| m.mid == source_mid(s));
            if !live && m.direction != Direction::Inactive {
                m.direction = Direction::Inactive;
                m.source = None;
                changed = true;
            }
        }
        changed
    }

    fn close(self, relay: &Relay) {
        let ep = self.endpoint;
        drop(self);
        let _ = relay.remove_endpoint(ep);
    }

    fn deadline(&self) -> Option<Instant> {
        let a = self.agent.poll_timeout();
        let d = self.dtls.as_ref().and_then(|d| d.poll_timeout());
        match (a, d) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        }
    }

    /// Takes the browser's answer to our offer; returns the session's
    /// video leg when it changed.
    fn answer(&mut self, ctx: &WebContext, text: &str) -> Result<Option<VideoLeg>, String> {
        if !self.awaiting_answer {
            return Err("no offer to answer".into());
        }
        self.awaiting_answer = false;
        let desc = SessionDescription::parse(text).map_err(|e| e.to_string())?;
        let audio = desc
            .media_by_mid(AUDIO_MID)
            .or_else(|| desc.media.iter().find(|m| m.kind == MediaKind::Audio))
            .ok_or("the answer has no audio")?;
        if audio.port == 0 || audio.codec(sdp::OPUS_PT).is_none() {
            return Err("the answer refuses Opus audio".into());
        }
        let rt = desc.remote_transport().map_err(|e| e.to_string())?;
        // An ICE restart brings a new ufrag; the DTLS association stays.
        self.agent.set_remote_ufrag(&rt.ice.ufrag);
        if let Some(fp) = &self.remote_fingerprint {
            if *fp != rt.fingerprint {
                return Err("the answer changes the DTLS fingerprint; a new DTLS association is not supported".into());
            }
        }
        if self.dtls.is_none() {
            let role = rt.our_dtls_role().map_err(|e| e.to_string())?;
            let now = Instant::now();
            self.remote_fingerprint = Some(rt.fingerprint.clone());
            let dtls = DtlsTransport::new(role, &ctx.cert, rt.fingerprint, now).map_err(|e| e.to_string())?;
            self.dtls = Some(dtls);
            for (src, d) in std::mem::take(&mut self.early_dtls) {
                self.on_dtls(now, src, &d);
            }
            self.drain(ctx);
        }
        self.last_answer = Some(desc);
        Ok(self.update_video_leg())
    }

    /// This session's video leg from the last answer and the screen
    /// sharing state; `Some` when it changed (to tell the room).
    fn update_video_leg(&mut self) -> Option<VideoLeg> {
        let leg = self.last_answer.as_ref().and_then(|d| self.video_leg_of(d));
        if leg == self.video_leg {
            return None;
        }
        self.video_leg = leg.clone();
        leg
    }

    /// The browser started or stopped sharing its screen; the video leg to
    /// tell the room when it changed.
    fn set_screen(&mut self, sharing: bool) -> Option<VideoLeg> {
        self.screen_sharing = sharing;
        self.update_video_leg()
    }

    /// This session's video as the answer says: the camera's codec and
    /// SSRC when the browser sends one, and the codecs it takes.
    fn video_leg_of(&self, desc: &SessionDescription) -> Option<VideoLeg> {
        let cam = desc.media_by_mid(CAMERA_MID).filter(|m| m.port != 0)?;
        let formats = |m: &sdp::MediaSection| -> Vec<VideoFormat> {
            m.codecs
                .iter()
                .filter_map(|c| {
                    let codec = VideoCodec::from_name(&c.name)?;
                    (c.clock_rate == 90_000).then_some(VideoFormat {
                        codec,
                        payload_type: c.payload_type,
                    })
                })
                .collect()
        };
        let receives = formats(cam);
        // The browser sends with the first codec of its answer.
        let sends = if cam.direction.sends() {
            receives.first().map(|f| (*f, cam.media_ssrcs().first().copied()))
        } else {
            None
        };
        let screen_section = desc.media_by_mid(SCREEN_MID).filter(|m| m.port != 0);
        let receives_screen = screen_section.map(formats).unwrap_or_default();
        let screen = match screen_section {
            Some(m) if self.screen_sharing && m.direction.sends() => {
                receives_screen.first().map(|f| (*f, m.media_ssrcs().first().copied()))
            }
            _ => None,
        };
        Some(VideoLeg {
            endpoint: self.endpoint,
            sends,
            receives,
            takes_many: true,
            switched_ssrc: 0,
            screen,
            receives_screen,
        })
    }

    fn on_dtls(&mut self, now: Instant, src: SocketAddr, d: &[u8]) {
        if self.failed {
            return;
        }
        // Once nominated, only the nominated address speaks DTLS.
        if self.nominated.is_some_and(|n| n != src) {
            return;
        }
        let Some(dtls) = self.dtls.as_mut() else {
            if self.early_dtls.len() < EARLY_DTLS {
                self.early_dtls.push((src, d.to_vec()));
            }
            return;
        };
        self.dtls_peer = Some(src);
        if let Err(e) = dtls.handle_input(now, d) {
            tracing::warn!(error = %e, "DTLS failed; no media for this session");
            self.failed = true;
        }
    }

    fn on_input(&mut self, ctx: &WebContext, input: TransportDatagram) {
        let now = Instant::now();
        match input {
            TransportDatagram::Stun(src, d) => self.agent.handle_input(now, src, &d),
            TransportDatagram::Dtls(src, d) => self.on_dtls(now, src, &d),
        }
        self.drain(ctx);
    }

    fn on_timeout(&mut self, ctx: &WebContext) {
        let now = Instant::now();
        self.agent.handle_timeout(now);
        if let Some(d) = self.dtls.as_mut() {
            if let Err(e) = d.handle_timeout(now) {
                tracing::warn!(error = %e, "DTLS failed; no media for this session");
                self.failed = true;
            }
        }
        self.drain(ctx);
    }

    /// Sends what the agent and the DTLS transport queued; acts on their events.
    fn drain(&mut self, ctx: &WebContext) {
        let relay = &ctx.relay;
        while let Some(out) = self.agent.poll_output() {
            match out {
                IceOutput::Transmit(t) => {
                    let _ = relay.send_raw(self.endpoint, t.destination, t.contents);
                }
                IceOutput::Event(IceEvent::Nominated { remote }) => {
                    tracing::debug!(%remote, "ICE nominated");
                    self.nominated = Some(remote);
                }
                IceOutput::Event(IceEvent::ConsentExpired { remote }) => {
                    tracing::info!(%remote, "ICE consent expired; media stopped");
                    self.nominated = None;
                }
                _ => {}
            }
        }
        if let Some(dtls) = self.dtls.as_mut() {
            while let Some(out) = dtls.poll_output() {
                match out {
                    DtlsOutput::Transmit(b) => {
                        if let Some(dest) = self.nominated.or(self.dtls_peer) {
                            let _ = relay.send_raw(self.endpoint, dest, b);
                        }
                    }
                    DtlsOutput::Connected(k) => {
                        tracing::debug!(profile = k.profile.name(), "DTLS connected");
                        let key = |s: &webrtc::dtls::SrtpKey| {
                            relay_profile(k.profile).map(|profile| SrtpParams {
                                profile,
                                key: s.key.clone(),
                                salt: s.salt.clone(),
                            })
                        };
                        match (key(k.remote()), key(k.local())) {
                            (Some(i), Some(o)) => self.keys = Some((i, o)),
                            _ => {
                                tracing::warn!("DTLS negotiated an SRTP profile the relay lacks");
                                self.failed = true;
                            }
                        }
                    }
                    DtlsOutput::Closed => {}
                    _ => {}
                }
            }
        }
        self.configure(relay);
    }

    /// Points the relay endpoint at the nominated address once keys exist.
    fn configure(&mut self, relay: &Relay) {
        let want = if self.failed { None } else { self.nominated };
        if want == self.configured {
            return;
        }
        let Some((srtp_in, srtp_out)) = self.keys.clone() else {
            return;
        };
        let r = relay.configure(
            self.endpoint,
            &PeerConfig {
                peer: want,
                peer_rtcp: None,
                latch: LatchMode::Signaled,
                srtp_in: Some(srtp_in),
                srtp_out: Some(srtp_out),
                clock_rate: 48_000,
                rtcp_mux: true,
            },
        );
        match r {
            Ok(()) => {
                tracing::info!(peer = ?want, "web client media configured");
                if want.is_some() {
                    self.repointed |= self.was_configured;
                    self.was_configured = true;
                }
                self.configured = want;
            }
            Err(e) => tracing::warn!(error = %e, "relay refused the web client's media"),
        }
    }
}

/// The mid of the m-section that carries `s` to a page: `v<participant>`
/// for a camera, `s<participant>` for a screen.
fn source_mid(s: &VideoSource) -> String {
    match s.kind {
        VideoKind::Camera => format!("v{}", s.participant),
        VideoKind::Screen => format!("s{}", s.participant),
    }
}

/// Whether the conference lets its participants chat (on when it is not
/// in the directory, or the directory cannot say).
async fn chat_allowed(shared: &Shared, conference: &str) -> bool {
    match shared.directory.find_conference(conference).await {
        Ok(Some(c)) => c.chat,
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "reading the conference's chat setting failed");
            true
        }
    }
}

/// Why the room let a participant go: the `Removed` or `Ended` still
/// queued on its events, else the conference ended.
fn left_why(events: &mut tokio::sync::mpsc::Receiver<RoomEvent>) -> EndReason {
    while let Ok(ev) = events.try_recv() {
        if let RoomEvent::Removed(r) | RoomEvent::Ended(r) = ev {
            return r;
        }
    }
    EndReason::ConferenceEnded
}

/// The relay's name for a DTLS-negotiated SRTP profile.
fn relay_profile(p: webrtc::dtls::SrtpProfile) -> Option<relay::SrtpProfile> {
    use webrtc::dtls::SrtpProfile as W;
    match p {
        W::AesCm128HmacSha1_80 => Some(relay::SrtpProfile::AesCm128HmacSha1_80),
        W::AeadAes128Gcm => Some(relay::SrtpProfile::AeadAes128Gcm),
        W::AeadAes256Gcm => Some(relay::SrtpProfile::AeadAes256Gcm),
        _ => None,
    }
}

/// Waits for the media transport's next input (forever when there is none).
async fn next_media(media: &mut Option<Media>) -> MediaInput {
    let Some(m) = media.as_mut() else {
        return std::future::pending().await;
    };
    let deadline = m.deadline();
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        f = m.port.from_leg.recv() => f.map_or(MediaInput::Gone, MediaInput::Frame),
        d = m.datagrams.recv() => d.map_or(MediaInput::Gone, MediaInput::Datagram),
        _ = sleep => MediaInput::Timeout,
    }
}

struct Session<'a> {
    shared: &'a Shared,
    ctx: &'a WebContext,
    media: Option<Media>,
    role: Role,
    mic_muted: bool,
    /// In the conference (not, or no longer, in its lobby).
    admitted: bool,
    /// The waiting room as last told to this moderator.
    lobby_queue: Option<Vec<signal::Waiting>>,
}

fn signal_role(r: &str) -> signal::Role {
    match r {
        "moderator" | "owner" => signal::Role::Moderator,
        _ => signal::Role::Participant,
    }
}

fn participants(list: &[ParticipantView]) -> ServerMessage {
    ServerMessage::Participants(signal::Participants {
        participants: list
            .iter()
            .filter(|p| !p.in_lobby)
            .take(signal::MAX_PARTICIPANTS)
            .map(|p| signal::Participant {
                id: p.id,
                display_name: p.display_name.chars().take(signal::MAX_DISPLAY_NAME_LEN).collect(),
                role: signal_role(p.role),
                audio_muted: p.muted,
                video_muted: p.video_stopped,
                stream: Some(format!("p{}", p.id)),
            })
            .collect(),
    })
}

/// Who waits in the lobby, from a roster that includes it (moderators get one).
fn waiting(list: &[ParticipantView]) -> Vec<signal::Waiting> {
    list.iter()
        .filter(|p| p.in_lobby)
        .take(signal::MAX_PARTICIPANTS)
        .map(|p| signal::Waiting {
            id: p.id,
            display_name: p.display_name.chars().take(signal::MAX_DISPLAY_NAME_LEN).collect(),
        })
        .collect()
}

fn moderation_error(e: &ModerationError) -> ServerMessage {
    let code = match e {
        ModerationError::NotModerator => "forbidden",
        ModerationError::NoSuchParticipant(_) | ModerationError::NotInLobby(_) => "not_found",
        _ => "internal",
    };
    error(code, &e.to_string())
}

impl Session<'_> {
    fn is_moderator(&self) -> bool {
        matches!(self.role, Role::Moderator | Role::Owner)
    }

    /// Tells a moderator who waits in the lobby, when that changed.
    async fn send_lobby_queue(&mut self, sig: &mut Signal, queue: Vec<signal::Waiting>) {
        if !self.is_moderator() || self.lobby_queue.as_ref() == Some(&queue) {
            return;
        }
        self.lobby_queue = Some(queue.clone());
        sig.send(ServerMessage::LobbyQueue(signal::LobbyQueue { waiting: queue }))
            .await;
    }

    async fn in_room(&mut self, sig: &mut Signal, mut m: Membership) -> EndReason {
        let reason = loop {
            tokio::select! {
                msg = sig.recv() => match msg {
                    Some(msg) => {
                        if let Some(r) = self.on_message(sig, &m, msg).await {
                            break r;
                        }
                    }
                    None => break EndReason::Normal,
                },
                heard = m.audio_out.recv() => match heard {
                    Some(h) => {
                        if let Some(media) = &self.media {
                            let _ = media.port.to_leg.try_send(h);
                        }
                    }
                    // The room let us go; its last event says why (removed,
                    // lobby refused, ended), even when this arm won the race.
                    None => break left_why(&mut m.events),
                },
                ev = m.events.recv() => match ev {
                    Some(ev) => {
                        if let Some(r) = self.on_event(sig, &m, ev).await {
                            break r;
                        }
                    }
                    None => break EndReason::ConferenceEnded,
                },
                input = next_media(&mut self.media) => match input {
                    MediaInput::Frame(f) => {
                        if !self.mic_muted && m.audio_in.try_send((m.id, f)).is_err() {
                            self.shared.metrics.count_drop("room_queue_full");
                        }
                    }
                    MediaInput::Datagram(d) => {
                        if let Some(media) = self.media.as_mut() {
                            media.on_input(self.ctx, d);
                            if std::mem::take(&mut media.repointed) {
                                m.refresh_video().await;
                            }
                        }
                    }
                    MediaInput::Timeout => {
                        if let Some(media) = self.media.as_mut() {
                            media.on_timeout(self.ctx);
                        }
                    }
                    MediaInput::Gone => break EndReason::ServerError,
                },
            }
        };
        m.leave().await;
        reason
    }

    async fn on_event(&mut self, sig: &mut Signal, m: &Membership, ev: RoomEvent) -> Option<EndReason> {
        match ev {
            RoomEvent::Joined(role) => {
                self.role = role;
                self.admitted = true;
                let chat = chat_allowed(self.shared, &m.conference).await;
                sig.send(ServerMessage::Joined(signal::Joined {
                    role: signal_role(role.as_str()),
                    participant: m.id.0,
                    chat,
                }))
                .await;
                if self.media.is_none() {
                    match Media::start(self.ctx, video::media_group(&m.conference)) {
                        Ok((media, offer)) => {
                            self.media = Some(media);
                            sig.send(ServerMessage::Offer(signal::Sdp { sdp: offer })).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start the web client's media");
                            return Some(EndReason::ServerError);
                        }
                    }
                }
                let list = self.shared.conferences.participants(&m.conference).await;
                sig.send(participants(&list)).await;
                self.send_lobby_queue(sig, waiting(&list)).await;
            }
            RoomEvent::Lobby(d) => {
                sig.send(ServerMessage::Lobby(signal::Lobby {
                    timeout: d.as_secs().min(u32::MAX as u64) as u32,
                }))
                .await;
            }
            RoomEvent::Admitted => {}
            RoomEvent::Participants(list) => {
                sig.send(participants(&list)).await;
                self.send_lobby_queue(sig, waiting(&list)).await;
            }
            RoomEvent::Speaking(p) => {
                sig.send(ServerMessage::Speaking(signal::Speaking { participant: p }))
                    .await
            }
            RoomEvent::Removed(r) | RoomEvent::Ended(r) => return Some(r),
            RoomEvent::VideoSources(list) => {
                if let Some(media) = self.media.as_mut() {
                    if media.set_sources(&list) {
                        if media.awaiting_answer {
                            media.reoffer = true;
                        } else {
                            let offer = media.offer();
                            sig.send(ServerMessage::Offer(signal::Sdp { sdp: offer })).await;
                        }
                    }
                }
            }
            RoomEvent::Notice(n) => {
                let (code, text) = match n {
                    RoomNotice::Muted { id, muted } if id == m.id.0 => {
                        self.mic_muted = muted;
                        (
                            if muted {
                                "muted_by_moderator"
                            } else {
                                "unmuted_by_moderator"
                            },
                            if muted {
                                "A moderator muted your microphone"
                            } else {
                                "A moderator unmuted your microphone"
                            },
                        )
                    }
                    RoomNotice::Locked(true) => ("locked", "The conference is locked"),
                    RoomNotice::Locked(false) => ("unlocked", "The conference is unlocked"),
                    RoomNotice::RoleChanged { id, role } if id == m.id.0 => {
                        self.role = role;
                        ("role_changed", "Your role changed")
                    }
                    RoomNotice::LobbyQueue(q) => {
                        // The room's queue: everyone in it waits in the lobby.
                        self.send_lobby_queue(sig, waiting(&q)).await;
                        return None;
                    }
                    RoomNotice::Chat {
                        from,
                        display_name,
                        text,
                    } => {
                        if self.admitted {
                            sig.send(ServerMessage::Chat(signal::ChatLine {
                                from,
                                display_name: display_name.chars().take(signal::MAX_DISPLAY_NAME_LEN).collect(),
                                text,
                            }))
                            .await;
                        }
                        return None;
                    }
                    _ => return None,
                };
                sig.send(ServerMessage::Notice(signal::Notice {
                    code: code.into(),
                    text: text.into(),
                }))
                .await;
            }
        }
        None
    }

    async fn on_message(&mut self, sig: &mut Signal, m: &Membership, msg: ClientMessage) -> Option<EndReason> {
        match msg {
            ClientMessage::Answer(a) => match self.media.as_mut() {
                Some(media) => {
                    match media.answer(self.ctx, &a.sdp) {
                        Ok(Some(leg)) => m.set_video(Some(leg)).await,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::info!(error = %e, "unusable answer from the web client");
                            sig.send(error("bad_message", &e)).await;
                            return Some(EndReason::MediaIncompatible);
                        }
                    }
                    if media.reoffer {
                        let offer = media.offer();
                        sig.send(ServerMessage::Offer(signal::Sdp { sdp: offer })).await;
                    }
                }
                None => sig.send(error("bad_message", "no offer to answer")).await,
            },
            ClientMessage::IceRestart(_) => match self.media.as_mut() {
                Some(media) => {
                    tracing::info!(participant = m.id.0, "web client restarts ICE");
                    if let Some(offer) = media.ice_restart() {
                        sig.send(ServerMessage::Offer(signal::Sdp { sdp: offer })).await;
                    }
                }
                None => sig.send(error("bad_message", "no media to restart")).await,
            },
            ClientMessage::Screen(sc) => match self.media.as_mut() {
                Some(media) => {
                    if let Some(leg) = media.set_screen(sc.sharing) {
                        m.set_video(Some(leg)).await;
                    }
                }
                None => sig.send(error("bad_message", "no media yet")).await,
            },
            ClientMessage::Offer(_) => {
                sig.send(error(
                    "unsupported",
                    "offers from the browser are not supported; the server offers",
                ))
                .await;
            }
            ClientMessage::Mute(mu) => {
                if mu.media == signal::Media::Audio {
                    self.mic_muted = mu.muted;
                }
            }
            ClientMessage::Leave(_) => return Some(EndReason::Normal),
            ClientMessage::End(_) => {
                if self.is_moderator() {
                    self.shared
                        .conferences
                        .end(&m.conference, EndReason::ConferenceEnded)
                        .await;
                } else {
                    sig.send(error("forbidden", "only moderators may end the conference"))
                        .await;
                }
            }
            ClientMessage::Moderate(md) => {
                let action = match md.action {
                    signal::ModerateAction::Admit => ModeratorAction::Admit,
                    signal::ModerateAction::Reject => ModeratorAction::Reject,
                    signal::ModerateAction::MuteAudio => ModeratorAction::Mute(true),
                    signal::ModerateAction::MuteVideo => ModeratorAction::StopVideo(true),
                    signal::ModerateAction::Remove => ModeratorAction::Remove,
                };
                let r = self
                    .shared
                    .conferences
                    .moderate_as(&m.conference, Some(m.id), ParticipantId(md.target), action)
                    .await;
                if let Err(e) = r {
                    sig.send(moderation_error(&e)).await;
                }
            }
            ClientMessage::Lock(l) => {
                if let Err(e) = self.shared.conferences.lock(&m.conference, Some(m.id), l.locked).await {
                    sig.send(moderation_error(&e)).await;
                }
            }
            ClientMessage::Chat(c) => {
                if !self.admitted {
                    sig.send(error("forbidden", "chat is for participants in the conference"))
                        .await;
                } else if chat_allowed(self.shared, &m.conference).await {
                    m.chat(c.text).await;
                } else {
                    sig.send(error("chat_disabled", "chat is turned off in this conference"))
                        .await;
                }
            }
            ClientMessage::Hello(_) | ClientMessage::Login(_) | ClientMessage::Join(_) | ClientMessage::Pin(_) => {
                sig.send(error("bad_message", "already in a conference")).await;
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_for_leaving_survives_the_audio_closing_first() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        tx.try_send(RoomEvent::Participants(Vec::new())).unwrap();
        tx.try_send(RoomEvent::Removed(EndReason::LobbyRejected)).unwrap();
        drop(tx);
        assert_eq!(left_why(&mut rx), EndReason::LobbyRejected);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RoomEvent>(8);
        drop(tx);
        assert_eq!(left_why(&mut rx), EndReason::ConferenceEnded);
    }

    #[test]
    fn sources_have_mids_of_their_kind() {
        let format = VideoFormat {
            codec: VideoCodec::Vp8,
            payload_type: sdp::SCREEN_VP8_PT,
        };
        let s = |kind| VideoSource {
            participant: 7,
            kind,
            ssrc: 1,
            format,
        };
        assert_eq!(source_mid(&s(VideoKind::Camera)), "v7");
        assert_eq!(source_mid(&s(VideoKind::Screen)), "s7");
    }
}
