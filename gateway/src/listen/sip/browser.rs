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

use std::net::SocketAddr;
use std::time::Instant;

use relay::{EndpointId, LatchMode, PeerConfig, Relay, SrtpParams};
use tokio::sync::mpsc;
use webrtc::dtls::{DtlsOutput, DtlsTransport};
use webrtc::ice::{IceCredentials, IceEvent, IceLiteAgent, IceOutput};
use webrtc::sdp::{LocalSource, LocalTransport, MediaKind, SessionDescription};

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
    let mut audio_seen = false;
    for m in &mut desc.media {
        let take = m.kind == MediaKind::Audio && m.port != 0 && !audio_seen;
        audio_seen |= take;
        if !take {
            m.port = 0;
        }
    }
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
    let dtls = DtlsTransport::new(role, &cert, remote.fingerprint, Instant::now())
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
    };
    tokio::spawn(driver.run(datagrams));
    Ok(BrowserLeg {
        endpoint: ep.id,
        rtp_port: ep.rtp_port,
        sdp,
        port,
        codec,
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
}

impl MediaTransport {
    async fn run(mut self, mut datagrams: mpsc::Receiver<TransportDatagram>) {
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
                clock_rate: 48_000,
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
    use super::is_browser_offer;

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
