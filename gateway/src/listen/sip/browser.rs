//! Media of browser softphones (SIP.js, JsSIP over [`super::ws`]): their
//! INVITE offers WebRTC media, `UDP/TLS/RTP/SAVPF` keyed by DTLS-SRTP
//! (RFC 5763, RFC 5764) with ICE (RFC 8445), BUNDLE and rtcp-mux, and Opus.
//! The plain SIP offer/answer of `confgate-sip` refuses that; here it is
//! answered the way the web client's media is set up ([`crate::listen::web`]):
//!
//! 1. one relay endpoint (rtcp-mux) tapped by an [`AudioPort`] that also
//!    hands up the STUN and DTLS datagrams reaching it;
//! 2. our answer ([`webrtc::sdp::build_answer`]): ICE-lite, one host
//!    candidate on the media advertise address and the endpoint's port,
//!    our certificate's fingerprint, `a=setup:passive` (we are the DTLS
//!    server), Opus and telephone-event with the browser's payload types.
//!    Only the first audio m-section is taken; video and data channels are
//!    refused (port 0);
//! 3. a task per leg drives an [`IceLiteAgent`] (answers the browser's
//!    connectivity checks) and a [`DtlsTransport`] (the handshake, checked
//!    against the offer's fingerprint), both sending through
//!    [`Relay::send_raw`];
//! 4. nominated address + DTLS keys → the relay endpoint's peer
//!    ([`LatchMode::Signaled`]) and SRTP contexts; the leg's audio then
//!    flows browser → relay → [`AudioPort`] → room, and back.
//!
//! The task ends when the port is dropped (the relay then stops handing
//! datagrams up) or the endpoint is removed.
//!
//! The other way round, a phone calling an account registered over a
//! WebSocket: the INVITE to the browser carries our WebRTC offer
//! ([`offer`]: ICE-lite, our fingerprint, `a=setup:actpass`, rtcp-mux,
//! `UDP/TLS/RTP/SAVPF`) from the callee's relay endpoint, listing first the
//! caller's codecs a browser decodes (G.711, G.722, Opus) with the caller's
//! payload types, then Opus. The browser's answer ([`take_answer`]) starts
//! the same ICE and DTLS driver on that endpoint. When the browser took one
//! of the caller's codecs the relay forwards the two endpoints to each
//! other, plain RTP one side and DTLS-keyed SRTP the other, re-keyed in
//! place, and the endpoint's tap only hands up STUN and DTLS
//! ([`TransportTap`]); otherwise an [`AudioPort`] on it decodes and
//! re-encodes through the call's transcoder.
//!
//! Re-INVITEs and UPDATEs from either kind of browser leg (hold, resume,
//! ICE restart) are answered by its [`BrowserSession`]: a WebRTC answer on
//! the same DTLS association (fingerprint and `a=setup` role kept, RFC
//! 8842), codec, payload types, BUNDLE and mid; the direction mirrored
//! (the call applies it); new ICE credentials when the browser's changed,
//! handed to the leg's task, whose ICE-lite agent restarts with them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use relay::{EndpointId, LatchMode, PeerConfig, Relay, SrtpParams, TapSink};
use tokio::sync::mpsc;
use webrtc::dtls::{DtlsCert, DtlsOutput, DtlsRole, DtlsTransport, Fingerprint};
use webrtc::ice::{IceCredentials, IceEvent, IceLiteAgent, IceOutput};
use webrtc::sdp::{
    AnswerOptions, Direction, LocalMedia, LocalSource, LocalTransport, MediaKind, SessionDescription, Setup,
};

use super::Core;
use crate::media::{AudioFormat, AudioPort, TransportDatagram};

/// Whether a SIP offer is a browser's: an audio stream keyed by DTLS-SRTP.
pub(super) fn is_browser_offer(offer: &sip::sdp::SessionDescription) -> bool {
    offer
        .media
        .iter()
        .any(|m| m.kind == Some(call::MediaKind::Audio) && m.port != 0 && m.is_dtls())
}

/// A browser's leg, answered and with its media transport running.
#[derive(Debug)]
pub(super) struct BrowserLeg {
    /// The relay endpoint (removed by the call when it ends).
    pub(super) endpoint: EndpointId,
    /// Its port.
    pub(super) rtp_port: u16,
    /// Our answer.
    pub(super) sdp: String,
    /// The leg's audio.
    pub(super) port: AudioPort,
    /// The audio codec agreed (Opus with the browser's payload type).
    pub(super) codec: call::Codec,
    /// What answers the browser's re-offers.
    pub(super) session: BrowserSession,
}

/// What a browser leg keeps to answer its re-INVITEs and UPDATEs (hold and
/// resume, ICE restart): the DTLS association stays (RFC 8842 §5: same
/// fingerprint, same roles), as do the codec and payload types agreed and
/// our SSRC; a new ufrag or pwd from the browser is an ICE restart
/// (RFC 8445 §9), answered with new credentials of ours, with which the
/// leg's ICE-lite agent then answers the checks. As the web client's
/// `ice_restart` ([`crate::listen::web`]): the relay endpoint and SRTP
/// keys stay, the next nomination points the endpoint at the browser.
#[derive(Debug)]
pub(super) struct BrowserSession {
    transport: LocalTransport,
    remote_ice: IceCredentials,
    remote_fingerprint: Fingerprint,
    role: DtlsRole,
    session_id: u64,
    version: u64,
    /// What we send under (`None`: forwarded under the sender's SSRC).
    source: Option<LocalSource>,
    /// The audio codecs agreed, with their payload types.
    codecs: Vec<webrtc::sdp::Codec>,
    control: mpsc::UnboundedSender<Control>,
}

/// An answer to a browser's re-offer.
#[derive(Debug)]
pub(super) struct Reanswer {
    /// Our SDP.
    pub(super) sdp: String,
    /// Our direction: whether we send to the browser, and take from it.
    pub(super) direction: Direction,
    /// The browser restarted ICE (we answered with new credentials).
    pub(super) ice_restart: bool,
}

/// What the call tells a leg's media transport task.
#[derive(Debug)]
enum Control {
    /// ICE restart: our new credentials and the browser's new ufrag.
    IceRestart {
        local: IceCredentials,
        remote_ufrag: String,
    },
}

impl BrowserSession {
    /// Answers the browser's re-offer `offer` (a re-INVITE's or UPDATE's
    /// body): a WebRTC answer on the same transport, codec and BUNDLE as
    /// before, the direction mirrored. Refused (488) when the offer
    /// changes the DTLS fingerprint or role (a new association is not
    /// supported) or drops the codec in use; nothing changes then.
    pub(super) fn reanswer(&mut self, offer: &str) -> Result<Reanswer, Refusal> {
        let mut desc = SessionDescription::parse(offer).map_err(|e| refusal(488, format!("SDP: {e}")))?;
        only_first_audio(&mut desc);
        let remote = desc.remote_transport().map_err(|e| refusal(488, format!("SDP: {e}")))?;
        if remote.fingerprint != self.remote_fingerprint {
            return Err(refusal(
                488,
                "the re-offer changes the DTLS fingerprint; a new DTLS association is not supported",
            ));
        }
        let kept = matches!(
            (remote.setup, self.role),
            (Setup::ActPass, _) | (Setup::Active, DtlsRole::Server) | (Setup::Passive, DtlsRole::Client)
        );
        if !kept {
            return Err(refusal(
                488,
                "the re-offer changes the DTLS roles; a new DTLS association is not supported",
            ));
        }
        let ice_restart = remote.ice != self.remote_ice;
        let mut transport = self.transport.clone();
        if ice_restart {
            transport.ice = IceCredentials::random().map_err(|e| refusal(500, e.to_string()))?;
        }
        let options = AnswerOptions {
            setup: Some(match self.role {
                DtlsRole::Server => Setup::Passive,
                DtlsRole::Client => Setup::Active,
            }),
            audio_codecs: Some(self.codecs.clone()),
            sends_without_source: self.source.is_none(),
        };
        let version = self.version + 1;
        let source = self.source.clone();
        let (sdp, negotiated) =
            webrtc::sdp::build_answer_with(&desc, self.session_id, version, &transport, &options, &|_| {
                source.clone()
            })
            .map_err(|e| refusal(488, format!("SDP: {e}")))?;
        let audio = negotiated
            .iter()
            .find(|n| n.kind == MediaKind::Audio && !n.rejected)
            .ok_or_else(|| refusal(488, "the re-offer drops the audio codec in use"))?;
        let direction = audio.direction;
        if ice_restart {
            let restart = Control::IceRestart {
                local: transport.ice.clone(),
                remote_ufrag: remote.ice.ufrag.clone(),
            };
            if self.control.send(restart).is_err() {
                return Err(refusal(500, "the leg's media transport has ended"));
            }
            tracing::info!("browser ICE restart: new credentials answered");
        }
        self.version = version;
        self.transport = transport;
        self.remote_ice = remote.ice;
        Ok(Reanswer {
            sdp,
            direction,
            ice_restart,
        })
    }
}

/// Keeps the first audio m-section of a browser's offer, refusing the
/// others (port 0): one audio stream per leg.
fn only_first_audio(desc: &mut SessionDescription) {
    let mut audio_seen = false;
    for m in &mut desc.media {
        let take = m.kind == MediaKind::Audio && m.port != 0 && !audio_seen;
        audio_seen |= take;
        if !take {
            m.port = 0;
        }
    }
}

/// Why an offer was refused: the SIP status and the Warning text.
#[derive(Debug)]
pub(super) struct Refusal {
    /// 488 (the offer) or 500 (our side).
    pub(super) status: u16,
    /// What for.
    pub(super) text: String,
}

fn refusal(status: u16, text: impl Into<String>) -> Refusal {
    Refusal {
        status,
        text: text.into(),
    }
}

/// Answers a browser's offer (`offer` is the INVITE's body) for a leg the
/// mixer serves; `group` names the leg's relay endpoints.
pub(super) fn answer(core: &Core, group: u64, offer: &str) -> Result<BrowserLeg, Refusal> {
    let cert = core
        .dtls_cert
        .clone()
        .ok_or_else(|| refusal(488, "DTLS-SRTP is not available"))?;
    let mut desc = SessionDescription::parse(offer).map_err(|e| refusal(488, format!("SDP: {e}")))?;
    // One audio stream: the first one offered. Video and data channels are
    // refused (port 0 in the answer).
    only_first_audio(&mut desc);
    let remote = desc.remote_transport().map_err(|e| refusal(488, format!("SDP: {e}")))?;
    let role = remote.our_dtls_role().map_err(|e| refusal(488, format!("SDP: {e}")))?;
    let creds = IceCredentials::random().map_err(|e| refusal(500, e.to_string()))?;
    let ep = core
        .relay
        .create_endpoint(group, true)
        .map_err(|e| refusal(500, format!("no media ports: {e}")))?;
    let fail = |r: Refusal| {
        let _ = core.relay.remove_endpoint(ep.id);
        r
    };
    let transport = LocalTransport {
        ice: creds.clone(),
        fingerprint: cert.fingerprint().clone(),
        candidate: SocketAddr::new(core.media_address, ep.rtp_port),
    };
    let source = |ssrc: u32| LocalSource {
        ssrc,
        cname: format!("confgate-{group}"),
        stream: "confgate".into(),
        track: "conference-audio".into(),
    };
    let session_id = u64::from(rand::random::<u32>());
    // First pass: what would be agreed (the source only sets our direction).
    let (_, negotiated) = webrtc::sdp::build_answer(&desc, session_id, 1, &transport, &|_| Some(source(0)))
        .map_err(|e| fail(refusal(488, format!("SDP: {e}"))))?;
    let audio = negotiated
        .iter()
        .find(|n| n.kind == MediaKind::Audio && !n.rejected)
        .ok_or_else(|| fail(refusal(488, "no Opus audio stream in the offer")))?;
    let opus = audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("opus"))
        .ok_or_else(|| fail(refusal(488, "no Opus audio stream in the offer")))?;
    let events = audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event"));
    let format = AudioFormat {
        codec: mixer::codec::CodecKind::Opus { channels: 2 },
        payload_type: opus.payload_type,
        telephone_event: events.map(|c| c.payload_type),
        telephone_event_clock: events.map_or(8000, |c| c.clock_rate),
    };
    let codec = call::Codec {
        name: "opus".into(),
        clock_rate: 48_000,
        channels: 2,
        payload_type: Some(opus.payload_type),
        fmtp: opus.fmtp.clone(),
    };
    let (port, datagrams) = AudioPort::start_with_transport(&core.relay, ep.id, format)
        .map_err(|e| fail(refusal(500, format!("cannot start the leg's audio: {e}"))))?;
    let ssrc = port.ssrc();
    let (sdp, _) = webrtc::sdp::build_answer(&desc, session_id, 1, &transport, &|_| Some(source(ssrc)))
        .map_err(|e| fail(refusal(488, format!("SDP: {e}"))))?;
    let agreed = audio.codecs.clone();
    let dtls = DtlsTransport::new(role, &cert, remote.fingerprint.clone(), Instant::now())
        .map_err(|e| fail(refusal(500, format!("DTLS: {e}"))))?;
    let mut agent = IceLiteAgent::new(creds);
    agent.set_software(Some(super::USER_AGENT.to_string()));
    agent.set_remote_ufrag(&remote.ice.ufrag);
    let driver = MediaTransport {
        relay: core.relay.clone(),
        endpoint: ep.id,
        agent,
        dtls,
        dtls_peer: None,
        nominated: None,
        keys: None,
        configured: None,
        failed: false,
        clock_rate: 48_000,
    };
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(driver.run(datagrams, control_rx));
    let session = BrowserSession {
        transport,
        remote_ice: remote.ice,
        remote_fingerprint: remote.fingerprint,
        role,
        session_id,
        version: 1,
        source: Some(source(ssrc)),
        codecs: agreed,
        control,
    };
    Ok(BrowserLeg {
        endpoint: ep.id,
        rtp_port: ep.rtp_port,
        sdp,
        port,
        codec,
        session,
    })
}

/// ICE and DTLS of one browser leg: see the module docs.
struct MediaTransport {
    relay: Relay,
    endpoint: EndpointId,
    agent: IceLiteAgent,
    dtls: DtlsTransport,
    /// Where DTLS records go until an address is nominated: the source of
    /// the last one taken.
    dtls_peer: Option<SocketAddr>,
    nominated: Option<SocketAddr>,
    /// (srtp_in, srtp_out) once DTLS connected.
    keys: Option<(SrtpParams, SrtpParams)>,
    /// The peer the relay endpoint is configured with.
    configured: Option<SocketAddr>,
    failed: bool,
    /// The RTP clock rate of the stream on the endpoint.
    clock_rate: u32,
}

impl MediaTransport {
    async fn run(
        mut self,
        mut datagrams: mpsc::Receiver<TransportDatagram>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut controlled = true;
        loop {
            let deadline = match (self.agent.poll_timeout(), self.dtls.poll_timeout()) {
                (Some(a), Some(d)) => Some(a.min(d)),
                (a, d) => a.or(d),
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                d = datagrams.recv() => match d {
                    Some(d) => self.on_datagram(d),
                    None => break,
                },
                c = control.recv(), if controlled => match c {
                    Some(c) => self.on_control(c),
                    // The call no longer renegotiates: the media goes on.
                    None => controlled = false,
                },
                _ = sleep => self.on_timeout(),
            }
            self.drain();
        }
        tracing::debug!(endpoint = ?self.endpoint, "browser media transport ended");
    }

    fn on_datagram(&mut self, d: TransportDatagram) {
        let now = Instant::now();
        match d {
            TransportDatagram::Stun(src, d) => self.agent.handle_input(now, src, &d),
            TransportDatagram::Dtls(src, d) => self.on_dtls(now, src, &d),
        }
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::IceRestart { local, remote_ufrag } => {
                // The nomination and the DTLS association stay until the
                // checks with the new credentials nominate again.
                self.agent.restart(local);
                self.agent.set_remote_ufrag(&remote_ufrag);
            }
        }
    }

    fn on_dtls(&mut self, now: Instant, src: SocketAddr, d: &[u8]) {
        if self.failed {
            return;
        }
        // Once nominated, only the nominated address speaks DTLS. Before,
        // any may: the handshake checks the offer's fingerprint.
        if self.nominated.is_some_and(|n| n != src) {
            return;
        }
        self.dtls_peer = Some(src);
        if let Err(e) = self.dtls.handle_input(now, d) {
            tracing::warn!(error = %e, "browser DTLS failed; no media for this call");
            self.failed = true;
        }
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        self.agent.handle_timeout(now);
        if let Err(e) = self.dtls.handle_timeout(now) {
            tracing::warn!(error = %e, "browser DTLS failed; no media for this call");
            self.failed = true;
        }
    }

    /// Sends what the agent and the DTLS transport queued; acts on their events.
    fn drain(&mut self) {
        while let Some(out) = self.agent.poll_output() {
            match out {
                IceOutput::Transmit(t) => {
                    let _ = self.relay.send_raw(self.endpoint, t.destination, t.contents);
                }
                IceOutput::Event(IceEvent::Nominated { remote }) => {
                    tracing::debug!(%remote, "browser ICE nominated");
                    self.nominated = Some(remote);
                }
                IceOutput::Event(IceEvent::ConsentExpired { remote }) => {
                    tracing::info!(%remote, "browser ICE consent expired; media stopped");
                    self.nominated = None;
                }
                _ => {}
            }
        }
        while let Some(out) = self.dtls.poll_output() {
            match out {
                DtlsOutput::Transmit(b) => {
                    if let Some(dest) = self.nominated.or(self.dtls_peer) {
                        let _ = self.relay.send_raw(self.endpoint, dest, b);
                    }
                }
                DtlsOutput::Connected(k) => {
                    tracing::debug!(profile = k.profile.name(), "browser DTLS connected");
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
                _ => {}
            }
        }
        self.configure();
    }

    /// Points the relay endpoint at the nominated address once keys exist.
    fn configure(&mut self) {
        let want = if self.failed { None } else { self.nominated };
        if want == self.configured {
            return;
        }
        let Some((srtp_in, srtp_out)) = self.keys.clone() else {
            return;
        };
        let r = self.relay.configure(
            self.endpoint,
            &PeerConfig {
                peer: want,
                peer_rtcp: None,
                latch: LatchMode::Signaled,
                srtp_in: Some(srtp_in),
                srtp_out: Some(srtp_out),
                clock_rate: self.clock_rate,
                rtcp_mux: true,
            },
        );
        match r {
            Ok(()) => {
                tracing::info!(peer = ?want, "browser softphone media configured");
                self.configured = want;
            }
            Err(e) => tracing::warn!(error = %e, "relay refused the browser's media"),
        }
    }
}

/// Our offer to a browser softphone (the callee of a phone's call), made
/// on the callee's relay endpoint; [`take_answer`] reads its answer.
pub(super) struct CalleeOffer {
    /// The offer's SDP.
    pub(super) sdp: String,
    endpoint: EndpointId,
    creds: IceCredentials,
    cert: Arc<DtlsCert>,
    transport: LocalTransport,
    session_id: u64,
}

/// Codecs a browser decodes that a phone may offer: (name, clock rate, channels).
const BROWSER_AUDIO: [(&str, u32, u8); 4] = [
    ("PCMU", 8000, 1),
    ("PCMA", 8000, 1),
    ("G722", 8000, 1),
    ("opus", 48_000, 2),
];

/// The audio codecs we offer a browser for a caller offering `caller`:
/// the caller's that browsers decode, with its payload types and in its
/// order (the browser then answers with one we can forward as it is), then
/// Opus (transcoded), then `telephone-event/8000` when the caller offered it.
fn callee_codecs(caller: &[call::Codec]) -> Vec<webrtc::sdp::Codec> {
    let wc = |pt: u8, name: &str, rate: u32, ch: Option<u8>, fmtp: Option<String>| webrtc::sdp::Codec {
        payload_type: pt,
        name: name.into(),
        clock_rate: rate,
        channels: ch,
        fmtp,
        rtcp_fb: Vec::new(),
    };
    let mut out: Vec<webrtc::sdp::Codec> = Vec::new();
    for c in caller {
        let Some(pt) = c.payload_type.filter(|pt| *pt <= 127) else {
            continue;
        };
        let taken = BROWSER_AUDIO
            .iter()
            .find(|(n, r, ch)| c.name.eq_ignore_ascii_case(n) && c.clock_rate == *r && c.channels == *ch);
        if let Some((name, rate, ch)) = taken {
            if !out
                .iter()
                .any(|o| o.payload_type == pt || o.name.eq_ignore_ascii_case(name))
            {
                let channels = (*ch > 1).then_some(*ch);
                out.push(wc(pt, name, *rate, channels, c.fmtp.clone()));
            }
        }
    }
    let free = |out: &[webrtc::sdp::Codec], want: u8| -> Option<u8> {
        std::iter::once(want).chain(96..=127).find(|pt| {
            !out.iter().any(|o| o.payload_type == *pt) && !caller.iter().any(|c| c.payload_type == Some(*pt))
        })
    };
    if !out.iter().any(|o| o.name.eq_ignore_ascii_case("opus")) {
        if let Some(pt) = free(&out, webrtc::sdp::OPUS_PT) {
            out.push(wc(
                pt,
                "opus",
                48_000,
                Some(2),
                Some("minptime=10;useinbandfec=1".into()),
            ));
        }
    }
    let events = caller
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event") && c.clock_rate == 8000)
        .and_then(|c| c.payload_type)
        .filter(|pt| !out.iter().any(|o| o.payload_type == *pt));
    if let Some(pt) = events {
        out.push(wc(pt, "telephone-event", 8000, None, Some("0-16".into())));
    }
    out
}

/// Our WebRTC offer to a browser callee from `endpoint` (port
/// `rtp_port`), for a caller offering `caller` (the module docs).
pub(super) fn offer(
    core: &Core,
    endpoint: EndpointId,
    rtp_port: u16,
    caller: &[call::Codec],
) -> Result<CalleeOffer, Refusal> {
    let cert = core
        .dtls_cert
        .clone()
        .ok_or_else(|| refusal(503, "DTLS-SRTP is not available for browser softphones"))?;
    let creds = IceCredentials::random().map_err(|e| refusal(500, e.to_string()))?;
    let transport = LocalTransport {
        ice: creds.clone(),
        fingerprint: cert.fingerprint().clone(),
        candidate: SocketAddr::new(core.media_address, rtp_port),
    };
    let media = LocalMedia {
        mid: "0".into(),
        kind: MediaKind::Audio,
        direction: webrtc::sdp::Direction::SendRecv,
        source: None,
        codecs: Some(callee_codecs(caller)),
    };
    let session_id = u64::from(rand::random::<u32>());
    let sdp = webrtc::sdp::build_offer(session_id, 1, &transport, &[media]);
    Ok(CalleeOffer {
        sdp,
        endpoint,
        creds,
        cert,
        transport,
        session_id,
    })
}

/// Takes a browser's answer to our [`offer`]: what it agreed as the
/// SIP layer's negotiated stream (no address: ICE finds it, and the
/// driver points the relay there), and, when the browser took none of the
/// `caller`'s codecs, the [`AudioPort`] that decodes and encodes its side
/// for the transcoder. Starts the leg's ICE and DTLS; the
/// [`BrowserSession`] answers the browser's re-offers.
pub(super) fn take_answer(
    core: &Core,
    offer: CalleeOffer,
    answer: &str,
    caller: &[call::Codec],
) -> Result<(sip::sdp::NegotiatedStream, Option<AudioPort>, BrowserSession), Refusal> {
    let desc = SessionDescription::parse(answer).map_err(|e| refusal(488, format!("SDP: {e}")))?;
    let remote = desc.remote_transport().map_err(|e| refusal(488, format!("SDP: {e}")))?;
    let role = remote.our_dtls_role().map_err(|e| refusal(488, format!("SDP: {e}")))?;
    let audio = desc
        .media
        .iter()
        .find(|m| m.kind == MediaKind::Audio && m.port != 0)
        .ok_or_else(|| refusal(488, "the browser took no audio"))?;
    if !audio.rtcp_mux {
        return Err(refusal(488, "the browser's answer has no a=rtcp-mux"));
    }
    let chosen = audio
        .formats
        .iter()
        .filter_map(|pt| audio.codec(*pt))
        .find(|c| {
            BROWSER_AUDIO
                .iter()
                .any(|(n, r, _)| c.name.eq_ignore_ascii_case(n) && c.clock_rate == *r)
        })
        .ok_or_else(|| refusal(488, "the browser's answer has no codec we offered"))?;
    let events = audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event"));
    let codec = call::Codec {
        name: chosen.name.clone(),
        clock_rate: chosen.clock_rate,
        channels: chosen.channels.unwrap_or(1),
        payload_type: Some(chosen.payload_type),
        fmtp: chosen.fmtp.clone(),
    };
    let passthrough = caller.iter().any(|c| c.same_format(&codec));
    let (port, datagrams) = if passthrough {
        let (tx, rx) = mpsc::channel(64);
        core.relay
            .tap(offer.endpoint, Some(Box::new(TransportTap { transport: tx })))
            .map_err(|e| refusal(500, format!("relay: {e}")))?;
        (None, rx)
    } else {
        let kind = AudioFormat::codec_for(&codec.name, codec.clock_rate, codec.channels)
            .ok_or_else(|| refusal(488, "the browser's codec cannot be transcoded"))?;
        let format = AudioFormat {
            codec: kind,
            payload_type: chosen.payload_type,
            telephone_event: None,
            telephone_event_clock: 8000,
        };
        let (port, rx) = AudioPort::start_with_transport(&core.relay, offer.endpoint, format)
            .map_err(|e| refusal(500, format!("cannot start the browser's audio: {e}")))?;
        (Some(port), rx)
    };
    let dtls = DtlsTransport::new(role, &offer.cert, remote.fingerprint.clone(), Instant::now())
        .map_err(|e| refusal(500, format!("DTLS: {e}")))?;
    // The codec taken and the events, as agreed (a re-offer keeps them).
    let agreed: Vec<webrtc::sdp::Codec> = std::iter::once(chosen.clone())
        .chain(events.filter(|e| e.payload_type != chosen.payload_type).cloned())
        .collect();
    let mut agent = IceLiteAgent::new(offer.creds);
    agent.set_software(Some(super::USER_AGENT.to_string()));
    agent.set_remote_ufrag(&remote.ice.ufrag);
    let driver = MediaTransport {
        relay: core.relay.clone(),
        endpoint: offer.endpoint,
        agent,
        dtls,
        dtls_peer: None,
        nominated: None,
        keys: None,
        configured: None,
        failed: false,
        clock_rate: codec.clock_rate,
    };
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(driver.run(datagrams, control_rx));
    let session = BrowserSession {
        transport: offer.transport,
        remote_ice: remote.ice,
        remote_fingerprint: remote.fingerprint,
        role,
        session_id: offer.session_id,
        version: 1,
        source: None,
        codecs: agreed,
        control,
    };
    let stream = sip::sdp::NegotiatedStream {
        index: 0,
        kind: call::MediaKind::Audio,
        proto: sip::sdp::Proto::UdpTlsRtpSavpf,
        remote_rtp: SocketAddr::from(([0, 0, 0, 0], 9)),
        remote_rtcp: None,
        rtcp_mux: true,
        codec,
        local_fmtp: None,
        telephone_event_pt: events.map(|c| c.payload_type),
        telephone_event_rate: events.map(|c| c.clock_rate),
        direction: call::Direction::SendRecv,
        held: false,
        ptime: None,
        remote_srtp: None,
        local_srtp: None,
        rtcp_fb: Vec::new(),
    };
    Ok((stream, port, session))
}

/// The tap of a browser callee's endpoint whose audio the relay forwards
/// as it is: STUN and DTLS go up to the leg's driver, RTP is not taken
/// (it goes to the endpoint's subscribers).
struct TransportTap {
    transport: mpsc::Sender<TransportDatagram>,
}

impl TapSink for TransportTap {
    fn rtp(&mut self, _packet: &[u8]) {}

    fn stun(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        // Full: the driver is behind; the browser retransmits.
        self.transport
            .try_send(TransportDatagram::Stun(src, packet.to_vec()))
            .is_ok()
    }

    fn dtls(&mut self, src: SocketAddr, packet: &[u8]) -> bool {
        self.transport
            .try_send(TransportDatagram::Dtls(src, packet.to_vec()))
            .is_ok()
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{callee_codecs, is_browser_offer};

    fn codec(name: &str, rate: u32, ch: u8, pt: u8) -> call::Codec {
        call::Codec {
            name: name.into(),
            clock_rate: rate,
            channels: ch,
            payload_type: Some(pt),
            fmtp: None,
        }
    }

    #[test]
    fn a_browser_is_offered_the_callers_codecs_first_then_opus() {
        let caller = [
            codec("GSM", 8000, 1, 3),
            codec("PCMA", 8000, 1, 8),
            codec("PCMU", 8000, 1, 0),
            codec("telephone-event", 8000, 1, 101),
        ];
        let offered: Vec<(u8, String)> = callee_codecs(&caller)
            .into_iter()
            .map(|c| (c.payload_type, c.name))
            .collect();
        let want = [(8, "PCMA"), (0, "PCMU"), (111, "opus"), (101, "telephone-event")];
        assert_eq!(offered, want.map(|(pt, n)| (pt, n.to_string())));
        // Opus under the caller's payload type when it offers it; no events unless offered.
        let caller = [codec("opus", 48_000, 2, 96), codec("G722", 8000, 1, 9)];
        let offered: Vec<(u8, String)> = callee_codecs(&caller)
            .into_iter()
            .map(|c| (c.payload_type, c.name))
            .collect();
        assert_eq!(offered, [(96, "opus".to_string()), (9, "G722".to_string())]);
        // 111 taken by something else of the caller's: Opus gets a free one.
        let caller = [codec("AMR", 8000, 1, 111), codec("PCMU", 8000, 1, 0)];
        let offered = callee_codecs(&caller);
        assert_eq!(offered.len(), 2);
        assert_eq!((offered[1].name.as_str(), offered[1].payload_type), ("opus", 96));
    }

    const BROWSER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n\
        a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";
    const PHONE: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\n";

    #[test]
    fn browser_offers_are_told_from_phone_offers() {
        assert!(is_browser_offer(&sip::sdp::parse(BROWSER).unwrap()));
        assert!(!is_browser_offer(&sip::sdp::parse(PHONE).unwrap()));
    }
}
