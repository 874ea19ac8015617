//! One task per incoming INVITE: authenticate the caller, ask the router,
//! and then either refuse with the right status, take the call into a
//! conference (through the IVR and PIN entry when needed), or bridge it to
//! a registered user's phones or out through a trunk.
//!
//! Calls to a user ring every phone the account has registered at once
//! (one INVITE per contact, each its own dialog); [`sip::fork`] decides:
//! the first 2xx wins and the others are cancelled (a later 2xx is
//! acknowledged and ended with BYE), a 6xx ends the search, and when nobody
//! answers the caller gets the best final response of RFC 3261 §16.7. The
//! first ringing is relayed to the caller once.
//!
//! Reliable provisional responses (RFC 3262, [`sip::reliable`]): a caller
//! that requires or supports `100rel` gets its 180 with `Require: 100rel`
//! and an RSeq, retransmitted until its PRACK (answered 200; one matching
//! nothing gets 481); the 2xx waits for that PRACK, and without one after
//! 64·T1 the INVITE is refused with 500. Towards callees confgate says
//! `Supported: 100rel` and PRACKs the reliable provisionals they send.
//!
//! Media: every leg gets a relay endpoint. A conference leg is tapped by an
//! [`AudioPort`] (decoded for the room's mixer). A call between two phones
//! offers the callee the caller's codecs (with its payload types) and then
//! those the mixer can transcode: when the callee takes one of the
//! caller's, the two endpoints are subscribed to each other and forwarded
//! without decoding; otherwise each leg gets its own codec and an
//! [`AudioBridge`] decodes one side and re-encodes it for the other (RFC 4733
//! events are not negotiated then: digits travel in band, as audio).
//!
//! Video in conferences: a call that names its conference gets its video
//! endpoint in the room's relay group at once. A call answered for the IVR
//! has its video accepted `a=inactive` on an endpoint of its own; once the
//! digits name a conference, a re-INVITE offers the video again
//! (`sendrecv`) on an endpoint in the room's group and the room routes it.
//! Re-offers from the phone keep the video where it is.
//!
//! A callee registered over a WebSocket (a browser softphone) gets a WebRTC
//! offer instead of a plain one ([`super::browser::offer`]); its answer
//! starts ICE and DTLS on the callee's endpoint, and the media is forwarded
//! or transcoded as between two phones.
//!
//! Re-offers from browser legs (a browser in a conference or the IVR, a
//! browser callee) get WebRTC answers ([`super::browser::BrowserSession`]);
//! their direction applies to the room (a browser that does not receive
//! hears nothing of it, one that does not send is not mixed in) or, when
//! the relay forwards a callee's media as it is, to the two endpoints'
//! subscriptions.
//!
//! Across protocols ([`crate::legs`]): an account with H.323 endpoints
//! registered by RAS is reached through an H.323 leg (forked with its SIP
//! phones when it has both: the first answer wins); the other way, callers
//! on other protocols reach an account's SIP phones through
//! [`SipDialer`], the same INVITE fork without a SIP caller: ringing is
//! reported once, the first 2xx is ACKed and its SDP answer given to the
//! relay, a failure's status becomes the leg's end (486 → busy → Q.850 17),
//! and the caller's release becomes CANCEL or BYE with a `Reason` header.
//! A re-offer from such a callee is answered on the codec in use.
//!
//! In-dialog requests go to the address the dialog's first request came
//! from (the phone's real, possibly NATed, address), not to the Contact it
//! wrote.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use call::{EndReason, Party, Protocol, TrueConfId};
use relay::{EndpointId, LatchMode, PeerConfig, SrtpParams, SrtpProfile};
use rsip::prelude::*;
use sip::dialog::Dialog;
use sip::fork::{ForkContext, ForkOutput};
use sip::reliable::{PrackClient, Provisional, Reliability, ReliableProvisionals, UasOutput};
use sip::sdp::{AnswerParams, NegotiatedStream, SessionDescription};
use sip::transaction::{ClientTxKey, ServerTxKey};
use tokio::sync::mpsc;

use super::register::warning;
use super::{unix_now, CallInput, Core, Transport};
use crate::calls::{self, PinPrompt};
use crate::conference::{Heard, Membership, RoomEvent};
use crate::legs;
use crate::media::{AudioBridge, AudioFormat, AudioPort};
use crate::router::Decision;

/// SIP extensions (option tags) a caller may require (RFC 3261 §19.2).
const SUPPORTED: [&str; 2] = ["timer", "100rel"];

/// How long the IVR waits for the digits of one answer.
const DIGIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest conference id or PIN typed at the IVR.
const MAX_DIGITS: usize = 32;
/// How often a call checks that media still arrives.
const MEDIA_CHECK: Duration = Duration::from_secs(5);
/// How long a callee's phone may ring.
const RING_TIMEOUT: Duration = Duration::from_secs(60);

/// How a call ended, for the log and for the other side.
#[derive(Debug)]
enum Ended {
    /// The SIP side hung up (its BYE was answered).
    ByPeer,
    /// We end it: send BYE.
    ByUs(EndReason),
}

struct Call {
    core: Arc<Core>,
    id: u64,
    invite_key: ServerTxKey,
    invite: rsip::Request,
    /// Where the INVITE came from: responses and in-dialog requests go here.
    source: SocketAddr,
    /// What it came over: in-dialog requests go back the same way.
    transport: Transport,
    local_tag: String,
    tx: mpsc::Sender<CallInput>,
    rx: mpsc::Receiver<CallInput>,
    call_id: String,
    offer: Option<SessionDescription>,
    /// The dialog, once answered.
    dialog: Option<Dialog>,
    endpoint: Option<EndpointId>,
    sdp_session: u64,
    sdp_version: u64,
    /// The last SDP we sent (answer or offer).
    local_sdp: Option<String>,
    /// The peer put us on hold (we must not send).
    held: bool,
    /// Session timer: the peer must refresh before this.
    session_deadline: Option<Instant>,
    session_interval: Option<u32>,
    user_agent: Option<String>,
    /// The leg's audio, while the mixer (IVR, conference) serves it.
    port: Option<AudioPort>,
    /// How the call ended while a PIN was being asked.
    hung_up: Option<Ended>,
    /// Our RTP port towards the caller.
    local_port: Option<u16>,
    /// The audio codec in use with the caller.
    current_codec: Option<call::Codec>,
    /// The relay endpoint towards the callee (calls between phones).
    peer_endpoint: Option<EndpointId>,
    /// The callees' dialogs (Call-ID, our tag), routed to this task: one per branch of a forked call.
    peer_dialog_keys: Vec<(String, String)>,
    /// Reliable provisional responses towards the caller (RFC 3262), when it asked for them.
    reliable: Option<ReliableProvisionals>,
    /// Decoding and re-encoding between the two phones of a call without a common codec.
    transcoder: Option<AudioBridge>,
    /// Offer/accept RFC 4733 telephone events with the caller.
    telephone_events: bool,
    /// When our 200 went out.
    answered_at: Option<Instant>,
    /// The relay group of the conference the call goes straight into: its
    /// video endpoint must be there for the room to route video to it.
    video_group: Option<u64>,
    /// The caller's video in a conference: our relay endpoint and what was agreed.
    video: Option<(EndpointId, NegotiatedStream)>,
    /// The call is answered for the IVR: which conference (and relay group)
    /// it goes to is not known yet.
    ivr: bool,
    /// The caller's video while in the IVR: accepted on an endpoint of the
    /// call's own relay group and held inactive until the conference is
    /// known; then a re-INVITE moves it to an endpoint in the room's group.
    parked_video: Option<(EndpointId, NegotiatedStream)>,
    /// The port of the video endpoint a re-INVITE offers in the room.
    moving_port: Option<u16>,
    /// A browser callee's audio, decoded for the transcoder (its endpoint's
    /// tap, which also hands up the leg's ICE and DTLS).
    browser_port: Option<AudioPort>,
    /// The endpoint our WebRTC offer to browser callees came from, while
    /// phones are rung with it too (the winner's endpoint stays).
    web_endpoint: Option<EndpointId>,
    /// The caller is a browser softphone: what answers its re-offers.
    browser: Option<super::browser::BrowserSession>,
    /// The connected callee is a browser softphone: what answers its re-offers.
    browser_callee: Option<super::browser::BrowserSession>,
    /// The caller said it sends nothing (`recvonly`, `inactive`): its
    /// silence is expected and nothing of it goes to the room.
    silent: bool,
}

/// Handles one incoming INVITE to the end of its call.
#[allow(clippy::too_many_arguments)]
pub(super) async fn incoming(
    core: Arc<Core>,
    id: u64,
    key: ServerTxKey,
    invite: rsip::Request,
    source: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<CallInput>,
    rx: mpsc::Receiver<CallInput>,
) {
    let msg = &invite;
    let call_id = sip::message::call_id(msg).unwrap_or_default().to_string();
    let user_agent = invite.user_agent_header().map(|h| h.value().to_string());
    let mut call = Call {
        core,
        id,
        invite_key: key,
        invite,
        source,
        transport,
        local_tag: sip::message::new_tag(),
        tx,
        rx,
        call_id,
        offer: None,
        dialog: None,
        endpoint: None,
        sdp_session: rand::random::<u32>().into(),
        sdp_version: 1,
        local_sdp: None,
        held: false,
        session_deadline: None,
        session_interval: None,
        user_agent,
        port: None,
        hung_up: None,
        local_port: None,
        current_codec: None,
        peer_endpoint: None,
        peer_dialog_keys: Vec::new(),
        reliable: None,
        transcoder: None,
        telephone_events: true,
        answered_at: None,
        video_group: None,
        video: None,
        ivr: false,
        parked_video: None,
        moving_port: None,
        browser_port: None,
        web_endpoint: None,
        browser: None,
        browser_callee: None,
        silent: false,
    };
    use tracing::Instrument;
    let span = tracing::info_span!("sip_call", call = id);
    call.run().instrument(span).await;
    call.cleanup();
}

impl Call {
    async fn run(&mut self) {
        // The offer, if the INVITE carries one (else: late offer, RFC 3261 §13.2.1).
        if !self.invite.body.is_empty() {
            let text = String::from_utf8_lossy(&self.invite.body).into_owned();
            match sip::sdp::parse(&text) {
                Ok(sdp) => self.offer = Some(sdp),
                Err(e) => {
                    self.reply_warning(400, &format!("SDP: {e}"));
                    return;
                }
            }
        }
        // RFC 3261 §8.2.2.3: an extension we do not support, required by the caller: 420.
        let unsupported: Vec<String> = sip::message::option_tags(&self.invite, "Require")
            .into_iter()
            .filter(|o| !SUPPORTED.contains(&o.as_str()))
            .collect();
        if !unsupported.is_empty() {
            let resp = self.response(420);
            let resp = sip::message::with_header(resp, "Unsupported", &unsupported.join(", "));
            self.core.respond(&self.invite_key, resp);
            return;
        }
        // RFC 3262: provisional responses go reliably when the caller requires or supports it.
        if Reliability::of(&self.invite).reliable() {
            let t1 = Duration::from_millis(self.core.shared.config().sip.t1_ms);
            self.reliable = Some(ReliableProvisionals::new(
                &self.invite,
                t1,
                sip::reliable::random_rseq(),
            ));
        }
        // RFC 4028: a Session-Expires below our Min-SE gets 422.
        let cfg = self.core.shared.config();
        match sip::dialog::SessionTimer::negotiate(&self.invite, cfg.sip.min_se) {
            // RFC 4028 §9: the UAS may shorten the interval (not below Min-SE), and may
            // impose one when the caller supports timers but asked for none.
            Ok(Some(t)) => self.session_interval = Some(t.interval.min(cfg.sip.session_expires).max(cfg.sip.min_se)),
            Ok(None) => {
                let msg = &self.invite;
                let supports = sip::message::header_values(msg, "Supported")
                    .iter()
                    .flat_map(|v| v.split(','))
                    .any(|o| o.trim().eq_ignore_ascii_case("timer"));
                self.session_interval = supports.then_some(cfg.sip.session_expires);
            }
            Err(min) => {
                let resp = self.response(422);
                let resp = sip::message::with_header(resp, "Min-SE", &min.to_string());
                self.core.respond(&self.invite_key, resp);
                return;
            }
        }
        let party = match self.authenticate().await {
            Some(p) => p,
            None => return,
        };
        let dialed = self.dialed();
        tracing::info!(call = self.id, dialed = %call::Pii(dialed.clone()), caller = %call::Pii(party.display_name().to_string()),
            authenticated = !party.is_anonymous(), "SIP call");
        let (decision, _) =
            calls::route_call(&self.core.shared, &party, &dialed, None, self.user_agent.as_deref()).await;
        match decision {
            Decision::Reject(reason) => self.refuse(reason),
            Decision::Conference { id, .. } => {
                self.video_group = Some(crate::video::media_group(&id));
                if self.answer_for_mixer().await {
                    self.conference(party, &dialed).await;
                }
            }
            Decision::Ivr => {
                self.ivr = true;
                if self.answer_for_mixer().await {
                    self.ivr(party).await;
                }
            }
            Decision::Account(user) => self.bridge_to_account(party, user).await,
            Decision::Federation { .. } => {
                self.reply_warning(503, "calls to other servers are not served by this release")
            }
            Decision::Gateway { target, number, .. } => match target.split_once(':') {
                Some(("sip", trunk)) => self.bridge_to_trunk(party, trunk, &number).await,
                _ => self.reply_warning(503, "H.323 gateway routes are not served by this release"),
            },
            Decision::Direct(_) => self.reply_warning(503, "direct dialing of addresses is not served by this release"),
        }
    }

    /// The caller's identity: a local account proves itself with digest
    /// (challenged with 407), anyone else is an anonymous guest named by
    /// the From display name. `None`: answered already (challenge or refusal).
    async fn authenticate(&mut self) -> Option<Party> {
        let msg = &self.invite;
        let (from_user, from_host) = sip::message::from_uri(msg)
            .map(|u| (percent_decode(&u.user.unwrap_or_default()), u.host))
            .unwrap_or_default();
        let ours = self.is_our_host(&from_host);
        let local_account = if ours && !from_user.is_empty() {
            self.core
                .shared
                .directory
                .digest_ha1(&from_user, sip::digest::Algorithm::Md5)
                .await
                .ok()
                .flatten()
                .is_some()
        } else {
            false
        };
        let auth = sip::message::header_value(msg, "Proxy-Authorization");
        if let Some(trunk) = super::trunk::inbound(&self.core, self.source.ip()) {
            // A call from a trunk: the caller is its calling number, not challenged.
            let number = if from_user.is_empty() {
                "unknown".to_string()
            } else {
                from_user.clone()
            };
            tracing::info!(call = self.id, trunk = %trunk.name, "call from a trunk");
            let mut party = Party::anonymous(number.chars().take(64).collect::<String>(), Protocol::Sip);
            party.remote = Some(self.source);
            return Some(party);
        }
        if local_account {
            let Some(auth) = auth else {
                self.challenge(false);
                return None;
            };
            match self.core.verify_digest(&auth, "INVITE").await {
                Ok(v) if v.username.eq_ignore_ascii_case(&from_user) => {
                    let id = TrueConfId::new(&v.username, self.core.shared.directory.server()).ok()?;
                    let mut party = Party::authenticated(id, Protocol::Sip);
                    if let Ok(Some(a)) = self.core.shared.directory.lookup_account(&v.username).await {
                        party.display_name = Some(a.display_name);
                    }
                    party.remote = Some(self.source);
                    Some(party)
                }
                Err(e) if e.status() == 401 => {
                    self.challenge(e.stale());
                    None
                }
                Ok(_) | Err(_) => {
                    self.core
                        .shared
                        .guard
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_failure(
                            Some(self.source.ip()),
                            &format!("account:{}", from_user.to_ascii_lowercase()),
                            Instant::now(),
                        );
                    self.reply_warning(403, "wrong user name or password");
                    None
                }
            }
        } else {
            let name = sip::message::from_header(msg)
                .and_then(|n| n.display)
                .map(|d| d.trim().trim_matches('"').to_string())
                .filter(|n| !n.trim().is_empty())
                .or_else(|| (!from_user.is_empty()).then(|| from_user.clone()))
                .unwrap_or_else(|| "SIP caller".to_string());
            let mut party = Party::anonymous(name.chars().take(128).collect::<String>(), Protocol::Sip);
            party.remote = Some(self.source);
            Some(party)
        }
    }

    fn is_our_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case(&self.core.realm)
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == self.core.local.ip() || ip == self.core.media_address || ip.is_loopback())
            || self.core.sent_by.starts_with(host)
    }

    /// The dialed string: the Request-URI's user part, percent-decoded
    /// (none: the server itself, which the router sends to the IVR).
    fn dialed(&self) -> String {
        let user = sip::message::request_uri_user(&self.invite).unwrap_or_default();
        percent_decode(&user)
    }

    fn response(&self, code: u16) -> rsip::Response {
        sip::message::response_for(&self.invite, code, Some(&self.local_tag))
    }

    fn reply_warning(&self, code: u16, text: &str) {
        let resp = self.response(code);
        let resp = sip::message::with_header(resp, "Warning", &warning(&self.core, text));
        self.core.respond(&self.invite_key, resp);
    }

    fn challenge(&self, stale: bool) {
        let mut resp = self.response(407);
        for c in self.core.challenge(stale) {
            resp = sip::message::with_header(resp, "Proxy-Authenticate", &c);
        }
        self.core.respond(&self.invite_key, resp);
    }

    /// Refuses the INVITE for `reason` (RFC 3261 status, Warning, Reason,
    /// Retry-After as the call model's mapping says).
    fn refuse(&self, reason: EndReason) {
        let r = sip::status::response_for_reason(reason);
        let mut resp = self.response(r.code);
        if let Some(w) = &r.warning {
            resp = sip::message::with_header(resp, "Warning", &warning(&self.core, w));
        }
        if let Some(h) = &r.reason_header {
            resp = sip::message::with_header(resp, "Reason", h);
        }
        if let Some(s) = r.retry_after {
            resp = sip::message::with_header(resp, "Retry-After", &s.to_string());
        }
        tracing::info!(
            call = self.id,
            reason = reason.code(),
            status = r.code,
            "SIP call refused"
        );
        self.core.respond(&self.invite_key, resp);
    }

    /// Our codecs for legs the mixer decodes, in order of preference.
    fn mixer_codecs() -> Vec<call::Codec> {
        let c = |name: &str, rate: u32, ch: u8, pt: Option<u8>, fmtp: Option<&str>| call::Codec {
            name: name.into(),
            clock_rate: rate,
            channels: ch,
            payload_type: pt,
            fmtp: fmtp.map(Into::into),
        };
        vec![
            c("opus", 48_000, 2, Some(111), Some("useinbandfec=1; minptime=10")),
            c("G722", 8000, 1, Some(9), None),
            c("PCMU", 8000, 1, Some(0), None),
            c("PCMA", 8000, 1, Some(8), None),
        ]
    }

    /// Answers the INVITE with our relay endpoint for the mixer and starts
    /// its audio in `self.port`. `false`: refused or ended (answered already).
    async fn answer_for_mixer(&mut self) -> bool {
        match self.answer_for_mixer_inner().await {
            Some(p) => {
                self.port = Some(p);
                true
            }
            None => false,
        }
    }

    async fn answer_for_mixer_inner(&mut self) -> Option<AudioPort> {
        if self.offer.as_ref().is_some_and(super::browser::is_browser_offer) {
            // A browser softphone: ICE-lite and DTLS-SRTP ([`super::browser`]).
            let leg = super::browser::answer(&self.core, self.id, &String::from_utf8_lossy(&self.invite.body));
            let leg = leg.map_err(|r| self.reply_warning(r.status, &r.text)).ok()?;
            (self.endpoint, self.local_port) = (Some(leg.endpoint), Some(leg.rtp_port));
            self.current_codec = Some(leg.codec);
            self.browser = Some(leg.session);
            if self.cancelled() {
                return None;
            }
            self.send_200(&leg.sdp);
            return Some(leg.port);
        }
        let offer = self.offer.clone();
        let codecs = Self::mixer_codecs();
        let ep = match self.core.relay.create_endpoint(self.id, true) {
            Ok(ep) => ep,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports");
                self.refuse(EndReason::ServerError);
                return None;
            }
        };
        self.endpoint = Some(ep.id);
        self.local_port = Some(ep.rtp_port);
        let (sdp, audio) = match &offer {
            Some(offer) if (self.video_group.is_some() || self.ivr) && offers_video(offer) => {
                match self.answer_with_video(offer, ep.rtp_port, &codecs) {
                    Ok(x) => x,
                    Err(code_text) => {
                        self.reply_warning(code_text.0, &code_text.1);
                        return None;
                    }
                }
            }
            Some(offer) => match self.answer_offer(offer, ep.rtp_port, &codecs) {
                Ok(x) => x,
                Err(code_text) => {
                    self.reply_warning(code_text.0, &code_text.1);
                    return None;
                }
            },
            None => {
                // Late offer: we offer in the 200, the ACK answers.
                let sdp = sip::sdp::offer(&self.offer_params(ep.rtp_port, &codecs, None));
                (sdp, None)
            }
        };
        if let Some(a) = &audio {
            if let Err(e) = self.configure(ep.id, a) {
                tracing::warn!(error = %e, "relay refused the media");
                self.refuse(EndReason::ServerError);
                return None;
            }
        }
        if self.cancelled() {
            return None;
        }
        self.send_200(&sdp);
        let audio = match audio {
            Some(a) => a,
            None => self.await_ack_answer(ep.id, &codecs).await?,
        };
        self.current_codec = Some(audio.codec.clone());
        let format = match format_of(&audio) {
            Some(f) => f,
            None => {
                self.bye(EndReason::MediaIncompatible);
                return None;
            }
        };
        match AudioPort::start(&self.core.relay, ep.id, format) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the leg's audio");
                self.bye(EndReason::ServerError);
                None
            }
        }
    }

    /// Answers `offer` with our endpoint on `port` and `codecs`.
    #[allow(clippy::type_complexity)]
    fn answer_offer(
        &mut self,
        offer: &SessionDescription,
        port: u16,
        codecs: &[call::Codec],
    ) -> Result<(String, Option<NegotiatedStream>), (u16, String)> {
        let params = self.answer_params(port, codecs);
        match sip::sdp::answer(offer, &params) {
            Ok(a) => match a.audio {
                Some(audio) => Ok((a.sdp, Some(audio))),
                None => Err((488, "no audio stream in the offer".into())),
            },
            Err(e) => Err((488, format!("SDP: {e}"))),
        }
    }

    /// Answers an offer with video going straight into a conference: the
    /// video gets its own relay endpoint in the conference's relay group;
    /// the room then sends it the active speaker's video (one stream,
    /// switched on voice activity) and takes its camera. Only codecs the
    /// relay forwards as they are (H.264 constrained baseline, VP8); with
    /// none in common the video is refused (port 0) and the call goes on
    /// with audio.
    ///
    /// A call answered for the IVR does not know its conference yet: its
    /// video is accepted on an endpoint of the call's own relay group with
    /// `a=inactive` (nothing to show, nothing to take while digits are
    /// typed) and parked; joining the room moves it there by re-INVITE
    /// ([`Call::move_video_into_room`]). That re-offer lists the m-lines
    /// audio first, then video, so only offers of that shape (the usual
    /// one) get their video accepted in the IVR.
    #[allow(clippy::type_complexity)]
    fn answer_with_video(
        &mut self,
        offer: &SessionDescription,
        port: u16,
        codecs: &[call::Codec],
    ) -> Result<(String, Option<NegotiatedStream>), (u16, String)> {
        let group = match self.video_group {
            Some(g) => g,
            None if self.ivr && reofferable_with_video(offer) => self.id,
            None => return self.answer_offer(offer, port, codecs),
        };
        let vep = match self.core.relay.create_endpoint(group, true) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(call = self.id, error = %e, "no port for video; audio only");
                return self.answer_offer(offer, port, codecs);
            }
        };
        let mut params = self.answer_params(port, codecs);
        params.video_port = Some(vep.rtp_port);
        params.video_codecs = sip::sdp::default_video_codecs();
        let answer = match sip::sdp::answer(offer, &params) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.core.relay.remove_endpoint(vep.id);
                return Err((488, format!("SDP: {e}")));
            }
        };
        let Some(audio) = answer.audio else {
            let _ = self.core.relay.remove_endpoint(vep.id);
            return Err((488, "no audio stream in the offer".into()));
        };
        let mut sdp = answer.sdp;
        match answer.video {
            Some(v) if crate::video::VideoCodec::from_name(&v.codec.name).is_some() => {
                if let Err(e) = self.configure(vep.id, &v) {
                    tracing::warn!(call = self.id, error = %e, "relay refused the video");
                    let _ = self.core.relay.remove_endpoint(vep.id);
                } else if self.video_group.is_none() {
                    sdp = with_video_direction(&sdp, "inactive");
                    self.parked_video = Some((vep.id, v));
                } else {
                    self.video = Some((vep.id, v));
                }
            }
            _ => {
                let _ = self.core.relay.remove_endpoint(vep.id);
            }
        }
        Ok((sdp, Some(audio)))
    }

    /// The room's view of the caller's video, if it has any.
    fn video_leg(&self) -> Option<crate::video::VideoLeg> {
        let (ep, v) = self.video.as_ref()?;
        let codec = crate::video::VideoCodec::from_name(&v.codec.name)?;
        let pt = v.codec.payload_type?;
        let format = crate::video::VideoFormat {
            codec,
            payload_type: pt,
        };
        Some(crate::video::VideoLeg {
            endpoint: *ep,
            sends: v.direction.receives().then_some((format, None)),
            receives: if v.direction.sends() { vec![format] } else { Vec::new() },
            takes_many: false,
            switched_ssrc: rand::random::<u32>() | 1,
            screen: None,
            receives_screen: Vec::new(),
        })
    }

    fn answer_params(&mut self, port: u16, codecs: &[call::Codec]) -> AnswerParams {
        self.sdp_version += 1;
        let mut p = AnswerParams::new(self.core.media_address, port, self.sdp_session, self.sdp_version);
        // Bridged calls pass RFC 4733 events through only when the other side took them.
        p.telephone_event = self.telephone_events;
        p.audio_codecs = codecs.to_vec();
        p.video_codecs = Vec::new();
        p.srtp_keys = local_keys();
        p
    }

    fn offer_params(&mut self, port: u16, codecs: &[call::Codec], srtp: Option<bool>) -> sip::sdp::OfferParams {
        self.sdp_version += 1;
        let mut p = sip::sdp::OfferParams::new(self.core.media_address, port, self.sdp_session, self.sdp_version);
        p.audio_codecs = codecs.to_vec();
        p.video_codecs = Vec::new();
        if srtp == Some(true) {
            p.srtp_keys = local_keys();
        }
        p
    }

    /// Points the relay endpoint at the negotiated peer with its keys.
    fn configure(&self, ep: EndpointId, audio: &NegotiatedStream) -> Result<(), relay::RelayError> {
        configure_endpoint(&self.core.relay, ep, audio)
    }

    /// Whether the caller cancelled while we were getting ready to answer
    /// (the layer answered the CANCEL; the INVITE gets 487 here).
    fn cancelled(&mut self) -> bool {
        while let Ok(input) = self.rx.try_recv() {
            if let CallInput::Cancel = input {
                self.core.respond(&self.invite_key, self.response(487));
                return true;
            }
        }
        false
    }

    /// Sends the 200 with `sdp` and sets up the dialog.
    fn send_200(&mut self, sdp: &str) {
        let contact = format!("<{}>", self.core.our_uri("", self.transport));
        let mut resp = self.response(200);
        resp = sip::message::with_header(resp, "Contact", &contact);
        resp = sip::message::with_header(resp, "Allow", super::ALLOW);
        resp = sip::message::with_header(resp, "Supported", "timer, 100rel");
        if let Some(i) = self.session_interval {
            // RFC 4028 §9: the caller refreshes.
            resp = sip::message::with_header(resp, "Require", "timer");
            resp = sip::message::with_header(resp, "Session-Expires", &format!("{i};refresher=uac"));
            self.session_deadline = Some(Instant::now() + Duration::from_secs(u64::from(i)));
        }
        let resp = sip::message::with_body(resp, "application/sdp", sdp.as_bytes().to_vec());
        self.local_sdp = Some(sdp.to_string());
        self.answered_at = Some(Instant::now());
        if let Ok(uri) = rsip::Uri::try_from(self.core.our_uri("", self.transport).as_str()) {
            self.dialog = Dialog::uas(&self.invite, &self.local_tag, uri).ok();
        }
        self.core.add_dialog(&self.call_id, &self.local_tag, self.tx.clone());
        if let Some(r) = self.reliable.as_mut() {
            r.final_sent();
        }
        self.core.respond(&self.invite_key, resp);
    }

    /// Late offer: waits for the ACK and reads the answer in it.
    async fn await_ack_answer(&mut self, ep: EndpointId, codecs: &[call::Codec]) -> Option<NegotiatedStream> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(32);
        loop {
            let input = tokio::time::timeout_at(deadline, self.rx.recv()).await.ok()??;
            match input {
                CallInput::Ack(ack) => {
                    let text = String::from_utf8_lossy(&ack.body).into_owned();
                    let port = self.local_port.unwrap_or(0);
                    let params = self.offer_params(port, codecs, None);
                    let answer = sip::sdp::parse(&text)
                        .ok()
                        .and_then(|sdp| sip::sdp::parse_answer(&sdp, &params).ok())
                        .and_then(|n| n.audio);
                    match answer {
                        Some(a) => {
                            if self.configure(ep, &a).is_err() {
                                self.bye(EndReason::ServerError);
                                return None;
                            }
                            return Some(a);
                        }
                        None => {
                            self.bye(EndReason::MediaIncompatible);
                            return None;
                        }
                    }
                }
                CallInput::Request(key, req) => {
                    if let Some(Ended::ByPeer) = self.in_dialog(key, *req, None) {
                        return None;
                    }
                }
                CallInput::AckTimeout => {
                    self.bye(EndReason::Timeout);
                    return None;
                }
                _ => {}
            }
        }
    }

    /// The IVR: asks for the conference id by DTMF, then joins it (the PIN
    /// is asked the same way when the conference wants one).
    async fn ivr(&mut self, party: Party) {
        let Some(mut port) = self.take_port() else { return };
        for _ in 0..3 {
            let digits = match self
                .collect(&mut port, mixer::prompts::PromptId::EnterConferenceId)
                .await
            {
                Ok(Some(d)) if !d.is_empty() => d,
                Ok(_) => continue,
                Err(ended) => {
                    self.finish(ended);
                    return;
                }
            };
            let dialed = format!("\\c\\{digits}");
            let (decision, _) =
                calls::route_call(&self.core.shared, &party, &dialed, None, self.user_agent.as_deref()).await;
            if let Decision::Conference { id, .. } = &decision {
                // The room's relay group: where the parked video moves on joining.
                self.video_group = Some(crate::video::media_group(id));
                self.port = Some(port);
                self.conference(party, &dialed).await;
                return;
            }
        }
        self.port = None;
        drop(port);
        self.bye(EndReason::NotFound);
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
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(f) = player.next_frame() {
                        let _ = port.to_leg.try_send(Heard { frame: *f, shared: None });
                    }
                }
                d = port.dtmf.recv() => match d {
                    Some('#') => return Ok(Some(digits)),
                    Some(c) if c.is_ascii_digit() && digits.len() < MAX_DIGITS => {
                        // Typing stops the prompt.
                        player = mixer::prompts::PromptPlayer::new(prompt, Some(usize::MAX / 2));
                        while player.next_frame().is_some() {}
                        digits.push(c);
                    }
                    Some(_) => {}
                    None => return Err(Ended::ByUs(EndReason::ServerError)),
                },
                _ = port.from_leg.recv() => {}
                input = self.rx.recv() => match input {
                    Some(CallInput::Request(key, req)) => {
                        if let Some(e) = self.in_dialog(key, *req, Some(port)) {
                            return Err(e);
                        }
                    }
                    Some(CallInput::AckTimeout) => return Err(Ended::ByUs(EndReason::Timeout)),
                    Some(_) => {}
                    None => return Err(Ended::ByUs(EndReason::ServerError)),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    fn take_port(&mut self) -> Option<AudioPort> {
        self.port.take()
    }

    /// Joins the conference `dialed` names and stays until either side ends.
    async fn conference(&mut self, party: Party, dialed: &str) {
        let Some(port) = self.take_port() else { return };
        let shared = self.core.shared.clone();
        let ua = self.user_agent.clone();
        let mut prompt = SipPin { call: self, port };
        let joined = calls::join_conference(&shared, party, dialed, None, ua.as_deref(), &mut prompt).await;
        let SipPin { port, .. } = prompt;
        match joined {
            Ok(m) => {
                let ended = self.in_room(m, port).await;
                self.finish(ended);
            }
            Err(reason) => {
                if let Some(ended) = self.hung_up.take() {
                    self.finish(ended);
                    return;
                }
                self.bye(reason);
            }
        }
    }

    async fn in_room(&mut self, mut m: Membership, mut port: AudioPort) -> Ended {
        if let Some(leg) = self.video_leg() {
            m.set_video(Some(leg)).await;
        }
        // Video parked in the IVR moves into the room by re-INVITE.
        let mut moving = self.move_video_into_room(None);
        let mut retry_move: Option<Instant> = None;
        let mut media_check = tokio::time::interval(MEDIA_CHECK);
        let ended = loop {
            let deadline = self.session_deadline;
            tokio::select! {
                _ = sleep_until(retry_move) => {
                    retry_move = None;
                    let endpoint = moving.take().map(|mv| mv.endpoint);
                    moving = self.move_video_into_room(endpoint);
                }
                _ = media_check.tick() => {
                    if self.endpoint.is_some_and(|ep| self.media_stopped(ep)) {
                        tracing::info!(call = self.id, "no media from the phone; ending the call");
                        break Ended::ByUs(EndReason::Timeout);
                    }
                }
                f = port.from_leg.recv() => match f {
                    Some(_) if self.silent => {}
                    Some(f) => {
                        if m.audio_in.try_send((m.id, f)).is_err() {
                            self.core.shared.metrics.count_drop("room_queue_full");
                        }
                    }
                    None => break Ended::ByUs(EndReason::ServerError),
                },
                f = m.audio_out.recv() => match f {
                    Some(heard) => {
                        if !self.held {
                            let _ = port.to_leg.try_send(heard);
                        }
                    }
                    None => break Ended::ByUs(EndReason::ConferenceEnded),
                },
                ev = m.events.recv() => match ev {
                    Some(RoomEvent::Removed(r)) | Some(RoomEvent::Ended(r)) => break Ended::ByUs(r),
                    Some(_) => {}
                    None => break Ended::ByUs(EndReason::ConferenceEnded),
                },
                input = self.rx.recv() => match input {
                    Some(CallInput::Request(key, req)) => {
                        if req.method == rsip::Method::Invite && moving.as_ref().is_some_and(|mv| mv.ack.is_none()) {
                            // RFC 3261 §14.2: our re-INVITE is pending.
                            self.core.respond(&key, sip::message::response_for(&req, 491, None));
                        } else if let Some(e) = self.in_dialog(key, *req, Some(&mut port)) {
                            break e;
                        }
                    }
                    Some(CallInput::Response(k, resp)) if moving.as_ref().is_some_and(|mv| mv.key == k) => {
                        match self.video_move_response(&mut moving, &resp) {
                            MoveStep::Waiting => {}
                            MoveStep::Moved(leg) => m.set_video(Some(leg)).await,
                            MoveStep::Retry => {
                                // RFC 3261 §14.1: the UAS side waits 0 to 2 s before trying again.
                                let wait = Duration::from_millis(rand::random::<u64>() % 2000);
                                retry_move = Some(Instant::now() + wait);
                            }
                        }
                    }
                    Some(CallInput::Timeout(k)) if moving.as_ref().is_some_and(|mv| mv.key == k) => {
                        tracing::info!(call = self.id, "no answer to the re-INVITE moving the video; audio only");
                        if let Some(mv) = moving.take() {
                            let _ = self.core.relay.remove_endpoint(mv.endpoint);
                        }
                    }
                    Some(CallInput::AckTimeout) => break Ended::ByUs(EndReason::Timeout),
                    Some(_) => {}
                    None => break Ended::ByUs(EndReason::ServerError),
                },
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d.into()).await, None => std::future::pending().await } } => {
                    tracing::info!(call = self.id, "session timer expired without refresh");
                    break Ended::ByUs(EndReason::Timeout);
                }
            }
        };
        m.leave().await;
        if let Some(mv) = moving {
            if mv.ack.is_none() {
                let _ = self.core.relay.remove_endpoint(mv.endpoint);
            }
        }
        ended
    }

    /// Offers the phone its video on an endpoint in the room's relay group
    /// (`endpoint`, or a new one), by re-INVITE: the video parked in the
    /// IVR comes back `sendrecv`, audio stays on its port and codec. `None`:
    /// nothing parked, or it cannot be done (the call goes on with audio).
    fn move_video_into_room(&mut self, endpoint: Option<EndpointId>) -> Option<VideoMove> {
        let (_, parked) = self.parked_video.as_ref()?;
        let parked_codec = parked.codec.clone();
        let (group, port, codec) = (self.video_group?, self.local_port?, self.current_codec.clone()?);
        let first = self
            .offer
            .as_ref()
            .and_then(|o| o.media.first().map(|m| m.proto.clone()));
        let video_proto = self
            .offer
            .as_ref()
            .and_then(|o| o.media.get(1).map(|m| m.proto.clone()));
        let (endpoint, video_port) = match endpoint.and_then(|e| self.core.relay.stats(e).map(|s| (e, s))) {
            Some((e, _)) => (e, self.moving_port?),
            None => match self.core.relay.create_endpoint(group, true) {
                Ok(v) => (v.id, v.rtp_port),
                Err(e) => {
                    tracing::info!(call = self.id, error = %e, "no port for the room's video; audio only");
                    return None;
                }
            },
        };
        self.moving_port = Some(video_port);
        let mut params = self.offer_params(port, &[codec], first.map(|p| p.is_sdes()));
        params.telephone_event = self.telephone_events;
        params.video_port = Some(video_port);
        params.video_codecs = vec![parked_codec];
        params.video_feedback = video_proto.is_some_and(|p| p.has_feedback());
        let sdp = sip::sdp::offer(&params);
        let sent_by = self.core.sent_by(self.transport);
        let Some(dialog) = self.dialog.as_mut() else {
            let _ = self.core.relay.remove_endpoint(endpoint);
            return None;
        };
        let req = dialog.request(
            rsip::Method::Invite,
            &sent_by,
            self.transport.via(),
            Some(("application/sdp", sdp.clone().into_bytes())),
        );
        let cseq = dialog.local_cseq;
        let key = self
            .core
            .send_request(req, self.source, self.transport, self.tx.clone());
        tracing::info!(call = self.id, "re-INVITE: the video moves into the room");
        Some(VideoMove {
            key,
            cseq,
            params,
            sdp,
            endpoint,
            ack: None,
        })
    }

    /// A response to the re-INVITE moving the video: on 2xx (acknowledged,
    /// and again for each retransmission) the relay takes the answer and
    /// the room gets the leg's video.
    fn video_move_response(&mut self, moving: &mut Option<VideoMove>, resp: &rsip::Response) -> MoveStep {
        let Some(mv) = moving.as_mut() else {
            return MoveStep::Waiting;
        };
        let code = resp.status_code.code();
        if code < 200 {
            return MoveStep::Waiting;
        }
        if let Some(ack) = &mv.ack {
            // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
            if (200..300).contains(&code) {
                self.core
                    .send_stateless(self.source, self.transport, rsip::SipMessage::Request(ack.clone()));
            }
            return MoveStep::Waiting;
        }
        if code == 491 {
            return MoveStep::Retry;
        }
        if code >= 300 {
            tracing::info!(
                call = self.id,
                status = code,
                "the phone refused the room's video; audio only"
            );
            let _ = self.core.relay.remove_endpoint(mv.endpoint);
            *moving = None;
            return MoveStep::Waiting;
        }
        let sent_by = self.core.sent_by(self.transport);
        let Some(dialog) = self.dialog.as_mut() else {
            return MoveStep::Waiting;
        };
        let ack = dialog.ack(mv.cseq, &sent_by, self.transport.via(), None);
        self.core
            .send_stateless(self.source, self.transport, rsip::SipMessage::Request(ack.clone()));
        mv.ack = Some(ack);
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        let answer = sip::sdp::parse(&text)
            .ok()
            .and_then(|sdp| sip::sdp::parse_answer(&sdp, &mv.params).ok());
        let (endpoint, sdp) = (mv.endpoint, mv.sdp.clone());
        let Some(answer) = answer else {
            tracing::info!(
                call = self.id,
                "the phone's answer to the room's video is unusable; ending the call"
            );
            let _ = self.core.relay.remove_endpoint(endpoint);
            *moving = None;
            self.bye(EndReason::MediaIncompatible);
            return MoveStep::Waiting;
        };
        self.local_sdp = Some(sdp);
        if let (Some(audio), Some(ep)) = (&answer.audio, self.endpoint) {
            self.held = !audio.direction.sends() || audio.remote_rtp.ip().is_unspecified();
            if let Err(e) = self.configure(ep, audio) {
                tracing::warn!(call = self.id, error = %e, "relay refused the re-negotiated audio");
            }
        }
        let video = answer
            .video
            .filter(|v| crate::video::VideoCodec::from_name(&v.codec.name).is_some());
        let Some(v) = video else {
            tracing::info!(call = self.id, "the phone took no video in the room; audio only");
            let _ = self.core.relay.remove_endpoint(endpoint);
            return MoveStep::Waiting;
        };
        if let Err(e) = self.configure(endpoint, &v) {
            tracing::warn!(call = self.id, error = %e, "relay refused the room's video");
            let _ = self.core.relay.remove_endpoint(endpoint);
            return MoveStep::Waiting;
        }
        if let Some((old, _)) = self.parked_video.take() {
            let _ = self.core.relay.remove_endpoint(old);
        }
        self.video = Some((endpoint, v));
        tracing::info!(call = self.id, "the phone's video is in the room");
        match self.video_leg() {
            Some(leg) => MoveStep::Moved(leg),
            None => MoveStep::Waiting,
        }
    }

    /// Handles a request inside the dialog. Returns how the call ended if
    /// it did (BYE).
    fn in_dialog(&mut self, key: ServerTxKey, req: rsip::Request, port: Option<&mut AudioPort>) -> Option<Ended> {
        if let Some(d) = self.dialog.as_mut() {
            if !d.check_remote_cseq(&req) {
                self.core.respond(&key, sip::message::response_for(&req, 500, None));
                return None;
            }
        }
        match req.method {
            rsip::Method::Bye => {
                self.core.respond(&key, sip::message::response_for(&req, 200, None));
                Some(Ended::ByPeer)
            }
            rsip::Method::Invite | rsip::Method::Update => {
                self.refresh_session();
                let resp = self.reoffer(&req);
                self.core.respond(&key, resp);
                None
            }
            rsip::Method::Info => {
                let msg = &req;
                let ctype = sip::message::header_value(msg, "Content-Type").unwrap_or_default();
                let ctype = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                let code = if req.body.is_empty() {
                    200
                } else if ctype == "application/dtmf-relay" || ctype == "application/dtmf" {
                    match sip::info::parse_info_body(&ctype, &req.body) {
                        Ok(d) => {
                            if let Some(p) = port {
                                let _ = p.dtmf_sender().try_send(d.digit);
                            }
                            200
                        }
                        Err(_) => 400,
                    }
                } else {
                    415
                };
                self.core.respond(&key, sip::message::response_for(&req, code, None));
                None
            }
            rsip::Method::Options => {
                let resp = sip::message::response_for(&req, 200, None);
                let resp = sip::message::with_header(resp, "Allow", super::ALLOW);
                self.core.respond(&key, resp);
                None
            }
            rsip::Method::PRack => {
                self.on_prack(key, &req);
                None
            }
            _ => {
                let resp = sip::message::response_for(&req, 405, None);
                let resp = sip::message::with_header(resp, "Allow", super::ALLOW);
                self.core.respond(&key, resp);
                None
            }
        }
    }

    /// Whether `ep`'s peer has sent nothing for `relay.timeout_secs` (and the
    /// call is not on hold, when silence is expected): a phone that vanished
    /// without BYE. Calls that never had media count from their answer.
    fn media_stopped(&self, ep: EndpointId) -> bool {
        if self.held || self.silent {
            return false;
        }
        let limit = Duration::from_secs(self.core.shared.config().relay.timeout_secs);
        match self.core.relay.stats(ep) {
            Some(s) => match s.idle {
                Some(idle) => idle > limit,
                None => self.answered_at.is_some_and(|t| t.elapsed() > limit),
            },
            None => false,
        }
    }

    fn refresh_session(&mut self) {
        if let Some(i) = self.session_interval {
            self.session_deadline = Some(Instant::now() + Duration::from_secs(u64::from(i)));
        }
    }

    /// Answers a re-INVITE or UPDATE: a new offer is answered (hold and
    /// resume, a new address or key, a refresh); none gets our current SDP.
    fn reoffer(&mut self, req: &rsip::Request) -> rsip::Response {
        let Some(ep) = self.endpoint else {
            return sip::message::response_for(req, 488, None);
        };
        let Some(port) = self.local_port else {
            return sip::message::response_for(req, 500, None);
        };
        let mut resp = sip::message::response_for(req, 200, None);
        resp = sip::message::with_header(resp, "Contact", &format!("<{}>", self.core.our_uri("", self.transport)));
        if let Some(i) = self.session_interval {
            resp = sip::message::with_header(resp, "Require", "timer");
            resp = sip::message::with_header(resp, "Session-Expires", &format!("{i};refresher=uac"));
        }
        if req.body.is_empty() {
            return match &self.local_sdp {
                Some(sdp) => sip::message::with_body(resp, "application/sdp", sdp.as_bytes().to_vec()),
                None => resp,
            };
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        if let Some(session) = self.browser.as_mut() {
            // A browser softphone: a WebRTC answer on the same DTLS association.
            return match session.reanswer(&text) {
                Ok(a) => {
                    tracing::info!(
                        call = self.id,
                        direction = a.direction.as_str(),
                        ice_restart = a.ice_restart,
                        "browser re-offer answered"
                    );
                    self.held = !a.direction.sends();
                    self.silent = !a.direction.receives();
                    self.local_sdp = Some(a.sdp.clone());
                    sip::message::with_body(resp, "application/sdp", a.sdp.into_bytes())
                }
                Err(r) => {
                    tracing::info!(call = self.id, status = r.status, reason = %r.text, "browser re-offer refused");
                    let resp = sip::message::response_for(req, r.status, None);
                    sip::message::with_header(resp, "Warning", &warning(&self.core, &r.text))
                }
            };
        }
        let offer = match sip::sdp::parse(&text) {
            Ok(o) => o,
            Err(e) => {
                let r = sip::message::response_for(req, 488, None);
                return sip::message::with_header(r, "Warning", &warning(&self.core, &format!("SDP: {e}")));
            }
        };
        let codecs = self.current_codecs();
        match self.answer_keeping_video(&offer, port, &codecs) {
            Ok((sdp, Some(audio))) => {
                self.held = !audio.direction.sends() || audio.remote_rtp.ip().is_unspecified();
                if self.configure(ep, &audio).is_err() {
                    return sip::message::response_for(req, 500, None);
                }
                self.local_sdp = Some(sdp.clone());
                self.offer = Some(offer);
                sip::message::with_body(resp, "application/sdp", sdp.into_bytes())
            }
            Ok((_, None)) => sip::message::response_for(req, 488, None),
            Err((code, text)) => {
                let r = sip::message::response_for(req, code, None);
                sip::message::with_header(r, "Warning", &warning(&self.core, &text))
            }
        }
    }

    /// Answers a re-offer from the phone: its video (in the room, or parked
    /// in the IVR, then still `a=inactive`) stays on the endpoint and port
    /// our last SDP gave it, with the codec agreed; without video in the
    /// call or the offer, as [`Call::answer_offer`].
    #[allow(clippy::type_complexity)]
    fn answer_keeping_video(
        &mut self,
        offer: &SessionDescription,
        port: u16,
        codecs: &[call::Codec],
    ) -> Result<(String, Option<NegotiatedStream>), (u16, String)> {
        let ours = self.video.as_ref().map(|(e, v)| (*e, v.codec.clone(), false));
        let video = ours.or_else(|| self.parked_video.as_ref().map(|(e, v)| (*e, v.codec.clone(), true)));
        let video_port = self
            .local_sdp
            .as_deref()
            .and_then(|s| sip::sdp::parse(s).ok())
            .and_then(|d| {
                d.media
                    .iter()
                    .find(|m| m.media == "video" && m.port != 0)
                    .map(|m| m.port)
            });
        let (Some((vep, vcodec, parked)), Some(vport), true) = (video, video_port, offers_video(offer)) else {
            return self.answer_offer(offer, port, codecs);
        };
        let mut params = self.answer_params(port, codecs);
        params.video_port = Some(vport);
        params.video_codecs = vec![vcodec];
        let answer = sip::sdp::answer(offer, &params).map_err(|e| (488, format!("SDP: {e}")))?;
        let Some(audio) = answer.audio else {
            return Err((488, "no audio stream in the offer".into()));
        };
        let mut sdp = answer.sdp;
        if let Some(v) = answer.video {
            if let Err(e) = self.configure(vep, &v) {
                tracing::warn!(call = self.id, error = %e, "relay refused the re-negotiated video");
            }
            if parked {
                sdp = with_video_direction(&sdp, "inactive");
                self.parked_video = Some((vep, v));
            } else {
                self.video = Some((vep, v));
            }
        }
        Ok((sdp, Some(audio)))
    }

    /// The codecs a re-offer may settle on: the one in use (a mid-call
    /// change of codec would need a new decoder; keep the call stable).
    fn current_codecs(&self) -> Vec<call::Codec> {
        self.current_codec.clone().map_or_else(Self::mixer_codecs, |c| vec![c])
    }

    /// Sends BYE (after our 200) or a final refusal (before it).
    fn bye(&mut self, reason: EndReason) {
        let Some(dialog) = self.dialog.as_mut() else {
            self.refuse(reason);
            return;
        };
        let mut req = dialog.request(
            rsip::Method::Bye,
            &self.core.sent_by(self.transport),
            self.transport.via(),
            None,
        );
        let r = sip::status::response_for_reason(reason);
        if let Some(h) = r.reason_header {
            req = sip::message::with_header(req, "Reason", &h);
        }
        tracing::info!(call = self.id, reason = reason.code(), "SIP call ended by us");
        self.core
            .send_request(req, self.source, self.transport, self.tx.clone());
    }

    fn finish(&mut self, ended: Ended) {
        match ended {
            Ended::ByPeer => tracing::info!(call = self.id, "SIP call ended by the caller"),
            Ended::ByUs(reason) => self.bye(reason),
        }
    }

    fn cleanup(&mut self) {
        self.port = None;
        self.transcoder = None;
        self.browser_port = None;
        if let Some(ep) = self.web_endpoint.take() {
            let _ = self.core.relay.remove_endpoint(ep);
        }
        if let Some(ep) = self.endpoint.take() {
            let _ = self.core.relay.remove_endpoint(ep);
        }
        if let Some(ep) = self.peer_endpoint.take() {
            let _ = self.core.relay.remove_endpoint(ep);
        }
        if let Some((ep, _)) = self.video.take() {
            let _ = self.core.relay.remove_endpoint(ep);
        }
        if let Some((ep, _)) = self.parked_video.take() {
            let _ = self.core.relay.remove_endpoint(ep);
        }
        self.core.remove_dialog(&self.call_id, &self.local_tag);
        for (cid, tag) in std::mem::take(&mut self.peer_dialog_keys) {
            self.core.remove_dialog(&cid, &tag);
        }
    }
}

impl Call {
    /// A call to a local user: INVITE every phone it has registered, in
    /// parallel (one branch per contact, RFC 3261 §16.6), relay the first
    /// ringing and connect the first that answers; the others are
    /// cancelled ([`sip::fork`]).
    async fn bridge_to_account(&mut self, party: Party, user: TrueConfId) {
        let bindings = match self.core.shared.directory.sip_bindings(user.user(), unix_now()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read registrations");
                self.refuse(EndReason::ServerError);
                return;
            }
        };
        let caller = party
            .account()
            .map(|a| a.user().to_string())
            .unwrap_or_else(|| "anonymous".into());
        let targets = account_targets(&self.core, user.user(), &caller, bindings);
        // Its H.323 endpoints ring too (a fork across protocols, [`legs::fork`]).
        if legs::registered(Protocol::H323, user.user()).await > 0 {
            let protocols: &[Protocol] = if targets.is_empty() {
                &[Protocol::H323]
            } else {
                &[Protocol::Sip, Protocol::H323]
            };
            self.bridge_leg(party, user, protocols).await;
            return;
        }
        if targets.is_empty() {
            self.refuse(EndReason::Unreachable);
            return;
        }
        self.bridge(party, targets).await;
    }

    /// A call to `user`'s endpoints on `protocols` ([`legs`], forked when
    /// several): the first ringing becomes our 180, the first answer our
    /// 200 (in its codec when the caller offered it: forwarded packet by
    /// packet; else in one of the caller's, transcoded), a refusal or
    /// hang-up our status or BYE with the matching reason; the caller's
    /// CANCEL or BYE ends it.
    async fn bridge_leg(&mut self, party: Party, user: TrueConfId, protocols: &[Protocol]) {
        let Some(offer) = self.offer.clone() else {
            self.reply_warning(488, "calls between phones need an SDP offer in the INVITE");
            return;
        };
        let caller_codecs: Vec<call::Codec> = offer
            .media
            .iter()
            .find(|m| m.kind == Some(call::MediaKind::Audio) && m.port != 0)
            .map(|m| m.codecs.clone())
            .unwrap_or_default();
        if caller_codecs.is_empty() {
            self.reply_warning(488, "no audio stream in the offer");
            return;
        }
        let ea = match self.core.relay.create_endpoint(self.id, true) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports");
                self.refuse(EndReason::ServerError);
                return;
            }
        };
        self.endpoint = Some(ea.id);
        self.local_port = Some(ea.rtp_port);
        tracing::info!(call = self.id, callee = %call::Pii(user.to_string()), protocols = ?protocols, "calling out on another protocol");
        let request = legs::LegRequest {
            group: self.id,
            call: self.id,
            account: user.user().to_string(),
            dialed: self.dialed(),
            caller: party,
            codecs: caller_codecs.clone(),
        };
        let mut leg = legs::fork(protocols.iter().map(|p| legs::place(*p, request.clone())).collect());
        let ended = self
            .bridge_leg_inner(&offer, &caller_codecs, ea.id, ea.rtp_port, &mut leg)
            .await;
        if let Some((reason, cause)) = ended {
            leg.release(reason, cause).await;
        }
        if let Some(t) = self.transcoder.take() {
            tracing::debug!(call = self.id, frames = t.frames(), "transcoder stopped");
        }
        leg.finish().await;
    }

    /// Rings, answers and bridges the caller with `leg` until one ends.
    /// Returns how to release the leg, when the caller's side ended it.
    async fn bridge_leg_inner(
        &mut self,
        offer: &SessionDescription,
        caller_codecs: &[call::Codec],
        ea: EndpointId,
        port: u16,
        leg: &mut legs::OutboundLeg,
    ) -> Option<(EndReason, Option<u8>)> {
        let mut none = Outgoing::none();
        let ring_deadline = tokio::time::Instant::now() + RING_TIMEOUT;
        let mut rang = false;
        let (eb, callee_codec) = loop {
            let retransmit = self.reliable.as_ref().and_then(|r| r.poll_timeout());
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(CallInput::Cancel) => {
                        self.final_refusal(None, 487);
                        return Some((EndReason::Cancelled, None));
                    }
                    Some(CallInput::Request(key, req)) => {
                        if self.early_request(&none, key, *req) {
                            self.final_refusal(None, 487);
                            return Some((EndReason::Cancelled, None));
                        }
                    }
                    Some(_) => {}
                    None => return Some((EndReason::ServerError, None)),
                },
                ev = leg.events.recv() => match ev {
                    Some(legs::LegEvent::Ringing) => {
                        if !rang {
                            rang = true;
                            self.send_provisional(180);
                        }
                    }
                    Some(legs::LegEvent::Answered { endpoint, codec }) => break (endpoint, codec),
                    Some(legs::LegEvent::Released(e)) => {
                        tracing::info!(call = self.id, reason = e.reason.code(), cause = ?e.cause, "the callee did not answer");
                        self.final_refusal(Some(e.sip_reason()), 0);
                        return None;
                    }
                    None => {
                        self.final_refusal(Some(EndReason::ServerError), 0);
                        return None;
                    }
                },
                _ = tokio::time::sleep_until(ring_deadline) => {
                    tracing::info!(call = self.id, "nobody answered in time");
                    self.final_refusal(None, 408);
                    return Some((EndReason::Timeout, None));
                }
                _ = sleep_until(retransmit) => {
                    if self.reliable_timeout() {
                        self.reply_warning(500, NO_PRACK);
                        return Some((EndReason::ServerError, None));
                    }
                }
            }
        };
        tracing::info!(call = self.id, codec = %callee_codec.name, "callee answered");
        // RFC 3262 §3: the caller's 2xx waits for its outstanding PRACK.
        if !self.await_pracks(&mut none).await {
            return Some((EndReason::Cancelled, None));
        }
        // Key presses do not cross protocols: no RFC 4733 with the caller.
        self.telephone_events = false;
        let passthrough = caller_codecs.iter().any(|c| legs::same_codec(c, &callee_codec));
        let answered = if passthrough {
            self.answer_offer(offer, port, std::slice::from_ref(&callee_codec))
        } else {
            self.answer_offer(offer, port, &Self::mixer_codecs())
        };
        let (sdp_a, answer_a) = match answered {
            Ok((sdp, Some(a))) => (sdp, a),
            Ok((_, None)) | Err(_) => {
                self.refuse(EndReason::MediaIncompatible);
                return Some((EndReason::MediaIncompatible, None));
            }
        };
        self.current_codec = Some(answer_a.codec.clone());
        let forwarded = legs::same_codec(&answer_a.codec, &callee_codec);
        let wired = self.configure(ea, &answer_a).is_ok()
            && if forwarded {
                let relay = &self.core.relay;
                relay.subscribe(ea, eb).is_ok() && relay.subscribe(eb, ea).is_ok()
            } else {
                self.transcode_leg(ea, &answer_a, eb, &callee_codec)
            };
        if !wired {
            self.refuse(EndReason::ServerError);
            return Some((EndReason::ServerError, None));
        }
        if self.cancelled_while_connecting(&mut none) {
            return Some((EndReason::Cancelled, None));
        }
        self.send_200(&sdp_a);
        if forwarded {
            tracing::info!(call = self.id, codec = %answer_a.codec.name, "call connected across protocols, media forwarded packet by packet");
        } else {
            tracing::info!(call = self.id, caller_codec = %answer_a.codec.name, callee_codec = %callee_codec.name,
                "call connected across protocols, media transcoded");
        }
        // Connected: whoever hangs up, the other side is told.
        let mut media_check = tokio::time::interval(MEDIA_CHECK);
        loop {
            let deadline = self.session_deadline;
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(CallInput::Request(key, req)) => {
                        if let Some(Ended::ByPeer) = self.in_dialog(key, *req, None) {
                            tracing::info!(call = self.id, "the caller hung up");
                            return Some((EndReason::Normal, None));
                        }
                    }
                    Some(CallInput::AckTimeout) => {
                        self.bye(EndReason::Timeout);
                        return Some((EndReason::Timeout, None));
                    }
                    Some(_) => {}
                    None => return Some((EndReason::ServerError, None)),
                },
                ev = leg.events.recv() => match ev {
                    Some(legs::LegEvent::Released(e)) => {
                        tracing::info!(call = self.id, reason = e.reason.code(), cause = ?e.cause, "the callee hung up");
                        self.bye(e.sip_reason());
                        return None;
                    }
                    Some(_) => {}
                    None => {
                        self.bye(EndReason::ServerError);
                        return None;
                    }
                },
                _ = media_check.tick() => {
                    if self.media_stopped(ea) || self.media_stopped(eb) {
                        tracing::info!(call = self.id, "no media from one of the legs; ending the call");
                        self.bye(EndReason::Timeout);
                        return Some((EndReason::Timeout, None));
                    }
                }
                _ = sleep_until(deadline) => {
                    self.bye(EndReason::Timeout);
                    return Some((EndReason::Timeout, None));
                }
            }
        }
    }

    /// The caller's final refusal while a leg on another protocol was
    /// tried: for `reason`, or with `code` as it is.
    fn final_refusal(&mut self, reason: Option<EndReason>, code: u16) {
        match reason {
            Some(r) => self.refuse(r),
            None => self.core.respond(&self.invite_key, self.response(code)),
        }
        if let Some(r) = self.reliable.as_mut() {
            r.final_sent();
        }
    }

    /// Decodes the caller's audio and re-encodes it for a leg on another
    /// protocol in `callee` (and back). `false`: it could not be started.
    fn transcode_leg(
        &mut self,
        ea: EndpointId,
        answer_a: &NegotiatedStream,
        eb: EndpointId,
        callee: &call::Codec,
    ) -> bool {
        let (Some(fa), Some(fb)) = (format_of(answer_a), legs::audio_format(callee)) else {
            return false;
        };
        let relay = &self.core.relay;
        match (AudioPort::start(relay, ea, fa), AudioPort::start(relay, eb, fb)) {
            (Ok(a), Ok(b)) => {
                self.transcoder = Some(AudioBridge::start(a, b));
                true
            }
            (a, b) => {
                for e in [a.err(), b.err()].into_iter().flatten() {
                    tracing::warn!(error = %e, "cannot start the transcoder");
                }
                false
            }
        }
    }

    /// A call out through a SIP trunk (a gateway route): INVITE
    /// `sip:<number>@<domain>` to the provider, answering its digest
    /// challenge with the trunk's credentials.
    async fn bridge_to_trunk(&mut self, party: Party, trunk_name: &str, number: &str) {
        let cfg = self.core.shared.config();
        let Some(trunk) = cfg.sip.trunks.iter().find(|t| t.name == trunk_name).cloned() else {
            self.reply_warning(503, "the route's trunk is not configured");
            return;
        };
        let Some(dest) = super::trunk::resolve(&trunk).await else {
            tracing::warn!(trunk = %trunk.name, host = %trunk.host, "cannot resolve the trunk's address");
            self.refuse(EndReason::Unreachable);
            return;
        };
        let domain = super::trunk::domain(&trunk);
        let from_user = if trunk.username.is_empty() {
            party
                .account()
                .map(|a| a.user().to_string())
                .unwrap_or_else(|| "anonymous".into())
        } else {
            trunk.username.clone()
        };
        let target = Outbound {
            request_uri: format!("sip:{number}@{domain}"),
            to: format!("sip:{number}@{domain}"),
            from: format!("sip:{from_user}@{domain}"),
            dest,
            transport: Transport::from_token(&trunk.transport),
            credentials: (!trunk.username.is_empty()).then(|| (trunk.username.clone(), trunk.password.clone())),
            label: format!("{number} via {}", trunk.name),
        };
        self.bridge(party, vec![target]).await;
    }

    /// The INVITE of one branch, with our offer `sdp` and an optional
    /// `(header, credentials)` answering a digest challenge.
    #[allow(clippy::too_many_arguments)]
    fn branch_invite(
        core: &Core,
        target: &Outbound,
        call_id: &str,
        tag: &str,
        cseq: u32,
        display: &str,
        sdp: &str,
        auth: Option<(&str, String)>,
    ) -> Option<rsip::Request> {
        let tb = target.transport;
        let auth = auth.map(|(h, v)| format!("{h}: {v}\r\n")).unwrap_or_default();
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"{display}\" <{from}>;tag={tag}\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <{our}>\r\n\
             Allow: {allow}\r\n\
             Supported: {rel}\r\n\
             {auth}\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            ruri = target.request_uri,
            via = tb.via(),
            sent_by = core.sent_by(tb),
            branch = sip::message::new_branch(),
            from = target.from,
            to = target.to,
            our = core.our_uri("", tb),
            allow = super::ALLOW,
            rel = sip::reliable::OPTION_TAG,
            len = sdp.len(),
        );
        match sip::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => Some(r),
            _ => None,
        }
    }

    /// Sends the INVITE of every target, each a branch of `out` (with
    /// `out.sdp` as the offer); returns the dialogs routed to `tx`.
    fn send_branches(
        core: &Arc<Core>,
        tx: &mpsc::Sender<CallInput>,
        call: u64,
        out: &mut Outgoing,
        targets: Vec<Outbound>,
    ) -> Vec<(String, String)> {
        let mut keys = Vec::with_capacity(targets.len());
        for target in targets {
            let call_id = sip::message::new_call_id(&core.realm);
            let tag = sip::message::new_tag();
            let Some(invite) = Self::branch_invite(core, &target, &call_id, &tag, 1, &out.display, &out.sdp, None)
            else {
                let uri = call::Pii(target.request_uri.clone());
                tracing::warn!(target = %uri, "cannot build an INVITE to this target");
                continue;
            };
            core.add_dialog(&call_id, &tag, tx.clone());
            keys.push((call_id.clone(), tag.clone()));
            let key = core.send_request(invite.clone(), target.dest, target.transport, tx.clone());
            let callee = call::Pii(target.label.clone());
            tracing::info!(call, callee = %callee, branch = out.branches.len(), "calling out");
            out.branches.push(Branch {
                target,
                call_id,
                tag,
                invite,
                key,
                cseq: 1,
                authenticated: false,
                early: Vec::new(),
                prack: PrackClient::new(),
                early_sdp: Vec::new(),
                answer: None,
            });
        }
        keys
    }

    /// Calls `targets` for the caller (all at once when there are several)
    /// and connects the first that answers: media forwarded packet by packet
    /// when the callee took one of the caller's codecs, else decoded and
    /// re-encoded between the two ([`AudioBridge`]).
    async fn bridge(&mut self, party: Party, targets: Vec<Outbound>) {
        let Some(offer) = self.offer.clone() else {
            // Calls between phones need the caller's offer to pass on.
            self.reply_warning(488, "calls between phones need an SDP offer in the INVITE");
            return;
        };
        let caller_audio = offer
            .media
            .iter()
            .find(|m| m.kind == Some(call::MediaKind::Audio) && m.port != 0);
        let caller_codecs: Vec<call::Codec> = caller_audio.map(|m| m.codecs.clone()).unwrap_or_default();
        // A caller that keys SRTP in its SDP (RFC 4568) may insist on it at
        // the other end too: the callees are offered SDES with keys of ours
        // (the relay re-keys between the legs).
        let caller_sdes = caller_audio.is_some_and(|m| m.proto.is_sdes());
        if caller_codecs.is_empty() {
            self.reply_warning(488, "no audio stream in the offer");
            return;
        }
        let mut reachable = Vec::with_capacity(targets.len());
        for t in targets {
            if t.transport == Transport::Udp || self.core.tcp_connection(t.dest, t.transport).await {
                reachable.push(t);
            }
        }
        if reachable.is_empty() {
            self.refuse(EndReason::Unreachable);
            return;
        }
        let (ea, eb) = match (
            self.core.relay.create_endpoint(self.id, true),
            self.core.relay.create_endpoint(self.id, true),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                for ep in [a.ok(), b.ok()].into_iter().flatten() {
                    let _ = self.core.relay.remove_endpoint(ep.id);
                }
                self.refuse(EndReason::ServerError);
                return;
            }
        };
        self.endpoint = Some(ea.id);
        self.local_port = Some(ea.rtp_port);
        self.peer_endpoint = Some(eb.id);

        // One offer for every branch: the caller's codecs first (forwarded
        // untouched when the callee takes one), then those the mixer can
        // transcode.
        let offered = sip::sdp::bridge_codecs(&caller_codecs, &Self::mixer_codecs());
        let params_b = self.offer_params(eb.rtp_port, &offered, Some(caller_sdes));
        let mut sdp_b = sip::sdp::offer(&params_b);
        // Browser softphones over WebSocket take WebRTC media only: their
        // branches get a WebRTC offer, from `eb` when they are all there is
        // to call, else from an endpoint of their own (whichever branch
        // wins, its endpoint serves the call and the other is let go).
        let is_web = |t: &Outbound| matches!(t.transport, Transport::Ws | Transport::Wss);
        let (web, reachable): (Vec<Outbound>, Vec<Outbound>) = reachable.into_iter().partition(is_web);
        let only_web = reachable.is_empty();
        let mut browser_offer = None;
        let mut web_endpoint: Option<relay::EndpointInfo> = None;
        let mut web_branches = Vec::new();
        if !web.is_empty() {
            let wep = if only_web {
                Ok(eb)
            } else {
                self.core.relay.create_endpoint(self.id, true)
            };
            let offered = wep
                .map_err(|e| super::browser::Refusal {
                    status: 500,
                    text: format!("no media ports: {e}"),
                })
                .and_then(|w| {
                    if w.id != eb.id {
                        self.web_endpoint = Some(w.id);
                    }
                    super::browser::offer(&self.core, w.id, w.rtp_port, &caller_codecs).map(|o| (w, o))
                });
            match offered {
                Ok((w, o)) => {
                    if only_web {
                        sdp_b = o.sdp.clone();
                    }
                    browser_offer = Some(o);
                    web_endpoint = Some(w);
                    web_branches = web;
                }
                Err(r) if only_web => {
                    self.reply_warning(r.status, &r.text);
                    return;
                }
                Err(r) => tracing::info!(call = self.id, reason = %r.text, "browser softphones not called"),
            }
        }
        let display = party.display_name().replace(['"', '\\', '\r', '\n'], "");
        let mut out = Outgoing {
            branches: Vec::with_capacity(reachable.len()),
            fork: ForkContext::new(0),
            answered: None,
            failed: None,
            display,
            sdp: sdp_b.clone(),
            ringing: false,
        };
        let mut keys = Self::send_branches(&self.core, &self.tx, self.id, &mut out, reachable);
        if let (Some(o), false) = (&browser_offer, web_branches.is_empty() || only_web) {
            // The browsers' branches carry the WebRTC offer; the phones' keep theirs.
            let plain = std::mem::replace(&mut out.sdp, o.sdp.clone());
            keys.extend(Self::send_branches(
                &self.core,
                &self.tx,
                self.id,
                &mut out,
                web_branches,
            ));
            out.sdp = plain;
        } else if only_web {
            keys.extend(Self::send_branches(
                &self.core,
                &self.tx,
                self.id,
                &mut out,
                web_branches,
            ));
        }
        self.peer_dialog_keys.extend(keys);
        if out.branches.is_empty() {
            self.refuse(EndReason::Unreachable);
            return;
        }
        out.fork = ForkContext::new(out.branches.len());

        // Ringing until a callee answers, all refuse, the caller gives up or
        // the ring time runs out.
        let Some(win) = self.ring(&mut out).await else {
            self.linger(&mut out).await;
            return;
        };
        let Some((mut dialog_b, resp_b)) = out.branches[win].answer.take() else {
            return;
        };
        let dest = out.branches[win].target.dest;
        let tb = out.branches[win].target.transport;
        let call_id_b = out.branches[win].call_id.clone();
        // A browser won: its endpoint serves the call; a phone won: the browsers' goes.
        let eb = match web_endpoint {
            Some(w) if is_web(&out.branches[win].target) => {
                if w.id != eb.id {
                    let _ = self.core.relay.remove_endpoint(eb.id);
                    self.peer_endpoint = Some(w.id);
                    self.web_endpoint = None;
                }
                w
            }
            Some(w) => {
                if w.id != eb.id {
                    let _ = self.core.relay.remove_endpoint(w.id);
                    self.web_endpoint = None;
                }
                browser_offer = None;
                eb
            }
            None => eb,
        };
        let browser = browser_offer.is_some();
        // RFC 3261 §13.2.2.4: the ACK for a 2xx is ours to send.
        let ack = dialog_b.ack(out.branches[win].cseq, &self.core.sent_by(tb), tb.via(), None);
        self.core.send_stateless(dest, tb, rsip::SipMessage::Request(ack));
        let bye_b = |call: &Call, dialog_b: &mut Dialog| {
            let bye = dialog_b.request(rsip::Method::Bye, &call.core.sent_by(tb), tb.via(), None);
            call.core.send_request(bye, dest, tb, call.tx.clone());
        };
        // RFC 3262 §5: an answer in a reliable provisional response is the
        // answer; the 2xx may then carry none.
        let body = if resp_b.body.is_empty() {
            let tag = &dialog_b.remote_tag;
            out.branches[win]
                .early_sdp
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, b)| b.clone())
                .unwrap_or_default()
        } else {
            resp_b.body.clone()
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let answer_b = match browser_offer.take() {
            Some(o) => self.browser_answer(o, &text, &caller_codecs),
            None => sip::sdp::parse(&text)
                .ok()
                .and_then(|sdp| sip::sdp::parse_answer(&sdp, &params_b).ok())
                .and_then(|n| n.audio),
        };
        let Some(answer_b) = answer_b else {
            bye_b(self, &mut dialog_b);
            self.reply_warning(488, "the callee's answer has no usable audio");
            self.linger(&mut out).await;
            return;
        };
        // RFC 3262 §3: the caller's 2xx waits for its outstanding PRACK.
        if !self.await_pracks(&mut out).await {
            bye_b(self, &mut dialog_b);
            self.linger(&mut out).await;
            return;
        }
        // Passthrough when the callee took one of the caller's codecs.
        let passthrough = caller_codecs.iter().any(|c| c.same_format(&answer_b.codec));
        let answered = if passthrough {
            self.telephone_events = answer_b.telephone_event_pt.is_some();
            self.answer_offer(&offer, ea.rtp_port, std::slice::from_ref(&answer_b.codec))
        } else {
            // RFC 4733 events cannot cross the transcoder: the caller sends
            // its digits in band, as audio, which does.
            self.telephone_events = false;
            self.answer_offer(&offer, ea.rtp_port, &Self::mixer_codecs())
        };
        let (sdp_a, answer_a) = match answered {
            Ok((sdp, Some(a))) => (sdp, a),
            Ok((_, None)) | Err(_) => {
                bye_b(self, &mut dialog_b);
                self.refuse(EndReason::MediaIncompatible);
                self.linger(&mut out).await;
                return;
            }
        };
        self.current_codec = Some(answer_a.codec.clone());
        let wired = if passthrough {
            let relay = &self.core.relay;
            self.configure(ea.id, &answer_a).is_ok()
                && (browser || self.configure(eb.id, &answer_b).is_ok())
                && relay.subscribe(ea.id, eb.id).is_ok()
                && relay.subscribe(eb.id, ea.id).is_ok()
        } else {
            self.configure(ea.id, &answer_a).is_ok()
                && (browser || self.configure(eb.id, &answer_b).is_ok())
                && self.start_transcoding(ea.id, &answer_a, eb.id, &answer_b)
        };
        if !wired {
            bye_b(self, &mut dialog_b);
            self.refuse(EndReason::ServerError);
            self.linger(&mut out).await;
            return;
        }
        if self.cancelled_while_connecting(&mut out) {
            bye_b(self, &mut dialog_b);
            self.linger(&mut out).await;
            return;
        }
        self.send_200(&sdp_a);
        if passthrough {
            tracing::info!(call = self.id, codec = %answer_a.codec.name, "phones connected");
        } else {
            tracing::info!(call = self.id, caller_codec = %answer_a.codec.name, callee_codec = %answer_b.codec.name,
                "phones connected through the transcoder");
        }

        // Connected: whoever hangs up, the other side is told.
        let mut media_check = tokio::time::interval(MEDIA_CHECK);
        loop {
            let deadline = self.session_deadline;
            let input = tokio::select! {
                i = self.rx.recv() => i,
                _ = media_check.tick() => {
                    if self.media_stopped(ea.id) || self.media_stopped(eb.id) {
                        tracing::info!(call = self.id, "no media from one of the phones; ending the call");
                        self.bye(EndReason::Timeout);
                        bye_b(self, &mut dialog_b);
                        return;
                    }
                    continue;
                }
                _ = sleep_until(deadline) => {
                    self.bye(EndReason::Timeout);
                    bye_b(self, &mut dialog_b);
                    return;
                }
            };
            match input {
                Some(CallInput::Request(key, req)) => {
                    let req_call_id = sip::message::call_id(&*req).unwrap_or_default().to_string();
                    if req_call_id == call_id_b {
                        let bye = req.method == rsip::Method::Bye;
                        let resp = if bye || matches!(req.method, rsip::Method::Options | rsip::Method::Info) {
                            sip::message::response_for(&req, 200, None)
                        } else if matches!(req.method, rsip::Method::Invite | rsip::Method::Update) {
                            // A refresh, hold or move from the callee: answered on
                            // the codec in use with it; the caller's side stays.
                            let (resp, sdp) = self.callee_reoffer(&req, tb, (eb.id, eb.rtp_port), &answer_b, &sdp_b);
                            sdp_b = sdp;
                            resp
                        } else {
                            sip::message::response_for(&req, 405, None)
                        };
                        self.core.respond(&key, resp);
                        if bye {
                            self.bye(EndReason::Normal);
                            return;
                        }
                    } else if req_call_id != self.call_id {
                        // A branch that lost: its dialog is over or never was.
                        let code = if req.method == rsip::Method::Bye { 200 } else { 481 };
                        self.core.respond(&key, sip::message::response_for(&req, code, None));
                    } else if let Some(Ended::ByPeer) = self.in_dialog(key, *req, None) {
                        bye_b(self, &mut dialog_b);
                        return;
                    }
                }
                Some(CallInput::Response(k, resp)) => self.branch_response(&mut out, &k, *resp),
                Some(CallInput::AckTimeout) => {
                    self.bye(EndReason::Timeout);
                    bye_b(self, &mut dialog_b);
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Rings the branches until one answers (its index), or the search ends
    /// without an answer (`None`: the caller has had its final response).
    async fn ring(&mut self, out: &mut Outgoing) -> Option<usize> {
        let ring_deadline = tokio::time::Instant::now() + RING_TIMEOUT;
        loop {
            let retransmit = self.reliable.as_ref().and_then(|r| r.poll_timeout());
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(CallInput::Response(k, resp)) => self.branch_response(out, &k, *resp),
                    Some(CallInput::Timeout(k)) => {
                        if let Some(i) = out.branches.iter().position(|b| b.key == k) {
                            out.fork.timed_out(i);
                            self.apply_fork(out);
                        }
                    }
                    Some(CallInput::Cancel) => {
                        self.stop_ringing(out, 487, None);
                        return None;
                    }
                    Some(CallInput::Request(key, req)) => {
                        if self.early_request(out, key, *req) {
                            self.stop_ringing(out, 487, None);
                            return None;
                        }
                    }
                    Some(_) => {}
                    None => {
                        out.fork.give_up(500);
                        self.apply_fork(out);
                        return None;
                    }
                },
                _ = tokio::time::sleep_until(ring_deadline) => {
                    tracing::info!(call = self.id, "nobody answered in time");
                    out.fork.give_up(408);
                    self.apply_fork(out);
                }
                _ = sleep_until(retransmit) => {
                    if self.reliable_timeout() {
                        self.stop_ringing(out, 500, Some(NO_PRACK));
                        return None;
                    }
                }
            }
            if let Some(i) = out.answered {
                return Some(i);
            }
            if let Some(code) = out.failed.take() {
                self.relay_failure(code);
                return None;
            }
        }
    }

    /// Answers a re-INVITE or UPDATE from the connected callee: an offer is
    /// answered with our endpoint towards it on the codec in use (`answer`),
    /// and its new address or direction goes to the relay; without an offer
    /// it gets `last_sdp`. Returns the response and our SDP now.
    fn callee_reoffer(
        &mut self,
        req: &rsip::Request,
        transport: Transport,
        (eb, port): (EndpointId, u16),
        answer: &NegotiatedStream,
        last_sdp: &str,
    ) -> (rsip::Response, String) {
        if let (Some(session), false) = (self.browser_callee.as_mut(), req.body.is_empty()) {
            // A browser softphone: a WebRTC answer on the same DTLS association.
            let text = String::from_utf8_lossy(&req.body).into_owned();
            return match session.reanswer(&text) {
                Ok(a) => {
                    tracing::info!(
                        call = self.id,
                        direction = a.direction.as_str(),
                        ice_restart = a.ice_restart,
                        "browser callee's re-offer answered"
                    );
                    self.callee_direction(eb, a.direction);
                    let ok = sip::message::response_for(req, 200, None);
                    let ok =
                        sip::message::with_header(ok, "Contact", &format!("<{}>", self.core.our_uri("", transport)));
                    (
                        sip::message::with_body(ok, "application/sdp", a.sdp.clone().into_bytes()),
                        a.sdp,
                    )
                }
                Err(r) => {
                    tracing::info!(call = self.id, status = r.status, reason = %r.text, "browser callee's re-offer refused");
                    let resp = sip::message::response_for(req, r.status, None);
                    let resp = sip::message::with_header(resp, "Warning", &warning(&self.core, &r.text));
                    (resp, last_sdp.to_string())
                }
            };
        }
        let sdp_session = self.sdp_session;
        Self::reoffer_answer(
            &self.core,
            req,
            transport,
            (eb, port),
            answer,
            last_sdp,
            (sdp_session, &mut self.sdp_version),
        )
    }

    /// Applies a browser callee's direction (ours towards it, from our
    /// answer to its re-offer) to the relay when the two endpoints forward
    /// to each other: the caller's media reaches it only while we send,
    /// its media reaches the caller only while we receive. Transcoded
    /// calls keep their bridge (the browser then drops what it refused).
    fn callee_direction(&self, eb: EndpointId, direction: webrtc::sdp::Direction) {
        let Some(ea) = self.endpoint.filter(|_| self.transcoder.is_none()) else {
            return;
        };
        let relay = &self.core.relay;
        let set = |from: EndpointId, to: EndpointId, on: bool| {
            let r = if on {
                relay.subscribe(from, to)
            } else {
                relay.unsubscribe(from, to)
            };
            if let Err(e) = r {
                tracing::warn!(call = self.id, error = %e, "relay refused the browser callee's direction");
            }
        };
        set(ea, eb, direction.sends());
        set(eb, ea, direction.receives());
    }

    /// [`Call::callee_reoffer`] for any holder of a callee's dialog: our
    /// SDP session id and version (`version` counts up with each answer).
    #[allow(clippy::too_many_arguments)]
    fn reoffer_answer(
        core: &Core,
        req: &rsip::Request,
        transport: Transport,
        (eb, port): (EndpointId, u16),
        answer: &NegotiatedStream,
        last_sdp: &str,
        (session, version): (u64, &mut u64),
    ) -> (rsip::Response, String) {
        let ok = sip::message::response_for(req, 200, None);
        let ok = sip::message::with_header(ok, "Contact", &format!("<{}>", core.our_uri("", transport)));
        if req.body.is_empty() {
            let r = sip::message::with_body(ok, "application/sdp", last_sdp.as_bytes().to_vec());
            return (r, last_sdp.to_string());
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        *version += 1;
        let mut params = AnswerParams::new(core.media_address, port, session, *version);
        params.audio_codecs = vec![answer.codec.clone()];
        params.video_codecs = Vec::new();
        params.telephone_event = answer.telephone_event_pt.is_some();
        let answered = sip::sdp::parse(&text)
            .ok()
            .and_then(|offer| sip::sdp::answer(&offer, &params).ok())
            .and_then(|a| a.audio.map(|audio| (a.sdp, audio)));
        match answered {
            Some((sdp, audio)) if configure_endpoint(&core.relay, eb, &audio).is_ok() => {
                let r = sip::message::with_body(ok, "application/sdp", sdp.clone().into_bytes());
                (r, sdp)
            }
            _ => (sip::message::response_for(req, 488, None), last_sdp.to_string()),
        }
    }

    /// Whether the caller cancelled (or hung up its early dialog) while the
    /// answer was being set up: it then has its 487. What else arrived
    /// meanwhile is handled (a late 2xx of another branch is released).
    fn cancelled_while_connecting(&mut self, out: &mut Outgoing) -> bool {
        while let Ok(input) = self.rx.try_recv() {
            match input {
                CallInput::Cancel => {
                    self.core.respond(&self.invite_key, self.response(487));
                    return true;
                }
                CallInput::Response(k, resp) => self.branch_response(out, &k, *resp),
                CallInput::Request(key, req) => {
                    let hung_up = self.early_request(out, key, *req);
                    if hung_up {
                        self.core.respond(&self.invite_key, self.response(487));
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// Ends the search for a callee and answers the caller with `code`
    /// (487 when it cancelled, 500 when it never acknowledged our ringing).
    fn stop_ringing(&mut self, out: &mut Outgoing, code: u16, warning_text: Option<&str>) {
        out.fork.give_up(code);
        self.apply_fork(out);
        out.failed = None;
        match warning_text {
            Some(w) => self.reply_warning(code, w),
            None => self.core.respond(&self.invite_key, self.response(code)),
        }
    }

    /// Waits, after the callee answered, until the caller has acknowledged
    /// every reliable provisional response (RFC 3262 §3). `false`: the call
    /// ended meanwhile (the caller has its final response).
    async fn await_pracks(&mut self, out: &mut Outgoing) -> bool {
        while self.reliable.as_ref().is_some_and(|r| r.awaiting_prack()) {
            let retransmit = self.reliable.as_ref().and_then(|r| r.poll_timeout());
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(CallInput::Response(k, resp)) => self.branch_response(out, &k, *resp),
                    Some(CallInput::Cancel) => {
                        self.core.respond(&self.invite_key, self.response(487));
                        return false;
                    }
                    Some(CallInput::Request(key, req)) => {
                        let winner = out.answered.and_then(|i| out.branches.get(i)).map(|b| b.call_id.clone());
                        if winner.is_some_and(|w| sip::message::call_id(&*req) == Some(w.as_str())) {
                            // The callee hung up before the caller was connected.
                            let bye = req.method == rsip::Method::Bye;
                            let code = if bye { 200 } else { 491 };
                            self.core.respond(&key, sip::message::response_for(&req, code, None));
                            if bye {
                                self.refuse(EndReason::Normal);
                                return false;
                            }
                        } else if self.early_request(out, key, *req) {
                            self.core.respond(&self.invite_key, self.response(487));
                            return false;
                        }
                    }
                    Some(_) => {}
                    None => return false,
                },
                _ = sleep_until(retransmit) => {
                    if self.reliable_timeout() {
                        self.reply_warning(500, NO_PRACK);
                        return false;
                    }
                }
            }
        }
        true
    }

    /// After the caller's INVITE is answered without a connection: waits
    /// (bounded) for the branches still open, so that a callee answering
    /// late is acknowledged and released rather than left retransmitting.
    async fn linger(&mut self, out: &mut Outgoing) {
        if let Some(r) = self.reliable.as_mut() {
            r.final_sent();
        }
        Self::linger_branches(&self.core, &self.tx, &mut self.rx, self.id, out).await;
    }

    /// Waits (bounded) for the branches still open after the search ended,
    /// acknowledging and releasing late answers.
    async fn linger_branches(
        core: &Arc<Core>,
        tx: &mpsc::Sender<CallInput>,
        rx: &mut mpsc::Receiver<CallInput>,
        call: u64,
        out: &mut Outgoing,
    ) {
        let t1 = Duration::from_millis(core.shared.config().sip.t1_ms);
        let deadline = tokio::time::Instant::now() + 64 * t1;
        let answered = out.answered;
        let open = |out: &Outgoing| (0..out.branches.len()).any(|i| Some(i) != answered && out.fork.is_open(i));
        while open(out) {
            tokio::select! {
                input = rx.recv() => if !Self::branch_input(core, tx, call, out, input) {
                    return;
                },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// What reaches a call that only places branches (lingering after the
    /// search, or a SIP leg for another protocol's caller): its branches'
    /// responses and timeouts; a request of a branch's dialog gets 200 for
    /// BYE and 481 otherwise. False when the call's channel closed.
    fn branch_input(
        core: &Arc<Core>,
        tx: &mpsc::Sender<CallInput>,
        call: u64,
        out: &mut Outgoing,
        input: Option<CallInput>,
    ) -> bool {
        match input {
            Some(CallInput::Response(k, resp)) => Self::outgoing_response(core, tx, call, out, &k, *resp),
            Some(CallInput::Timeout(k)) => {
                if let Some(i) = out.branches.iter().position(|b| b.key == k) {
                    out.fork.timed_out(i);
                    Self::outgoing_fork(core, tx, call, out);
                }
            }
            Some(CallInput::Request(key, req)) => {
                let code = if req.method == rsip::Method::Bye { 200 } else { 481 };
                core.respond(&key, sip::message::response_for(&req, code, None));
            }
            Some(_) => {}
            None => return false,
        }
        true
    }

    /// A request from the caller before its INVITE is answered: PRACK,
    /// or a BYE of the early dialog (RFC 3261 §15: the caller may end an
    /// early dialog so). Requests of a branch's dialog are refused. `true`:
    /// the caller hung up.
    fn early_request(&mut self, out: &Outgoing, key: ServerTxKey, req: rsip::Request) -> bool {
        let from_caller = sip::message::call_id(&req) == Some(self.call_id.as_str());
        if !from_caller {
            let code = if out
                .branches
                .iter()
                .any(|b| sip::message::call_id(&req) == Some(b.call_id.as_str()))
            {
                491
            } else {
                481
            };
            self.core.respond(&key, sip::message::response_for(&req, code, None));
            return false;
        }
        match req.method {
            rsip::Method::PRack => {
                self.on_prack(key, &req);
                false
            }
            rsip::Method::Bye => {
                self.core.respond(&key, sip::message::response_for(&req, 200, None));
                true
            }
            rsip::Method::Options | rsip::Method::Info => {
                self.core.respond(&key, sip::message::response_for(&req, 200, None));
                false
            }
            _ => {
                // RFC 3261 §14.2: an offer while ours is pending.
                self.core.respond(&key, sip::message::response_for(&req, 491, None));
                false
            }
        }
    }

    /// A response to one of the branches' INVITEs, for the caller: its
    /// ringing relayed once.
    fn branch_response(&mut self, out: &mut Outgoing, k: &ClientTxKey, resp: rsip::Response) {
        Self::outgoing_response(&self.core, &self.tx, self.id, out, k, resp);
        self.ring_caller(out);
    }

    /// Does what the fork context asks, for the caller.
    fn apply_fork(&mut self, out: &mut Outgoing) {
        Self::outgoing_fork(&self.core, &self.tx, self.id, out);
        self.ring_caller(out);
    }

    /// Relays the callees' first ringing to the caller.
    fn ring_caller(&mut self, out: &mut Outgoing) {
        if std::mem::take(&mut out.ringing) {
            self.send_provisional(180);
        }
    }

    /// A response to one of the branches' INVITEs (PRACKs, CANCELs and BYEs
    /// we sent are answered too, and ignored here).
    fn outgoing_response(
        core: &Arc<Core>,
        tx: &mpsc::Sender<CallInput>,
        call: u64,
        out: &mut Outgoing,
        k: &ClientTxKey,
        resp: rsip::Response,
    ) {
        let Some(i) = out.branches.iter().position(|b| &b.key == k) else {
            return;
        };
        let code = resp.status_code.code();
        if code < 200 {
            let b = &mut out.branches[i];
            match b.prack.on_provisional(&b.invite, &resp) {
                Provisional::Unreliable => {}
                Provisional::Acknowledge(rack) => {
                    // RFC 3262 §4: PRACK in the early dialog the response created.
                    let tag = sip::message::to_tag(&resp).unwrap_or_default();
                    if !resp.body.is_empty() && !b.early_sdp.iter().any(|(t, _)| *t == tag) {
                        b.early_sdp.push((tag.clone(), resp.body.clone()));
                    }
                    if !b.early.iter().any(|(t, _)| *t == tag) {
                        match Dialog::uac(&b.invite, &resp) {
                            Ok(d) => b.early.push((tag.clone(), d)),
                            Err(e) => tracing::debug!(error = %e, "reliable provisional without a usable dialog"),
                        }
                    }
                    let (dest, tb) = (b.target.dest, b.target.transport);
                    let sent_by = core.sent_by(tb);
                    if let Some((_, d)) = b.early.iter_mut().find(|(t, _)| *t == tag) {
                        let prack = sip::reliable::prack_request(d, &rack, &sent_by, tb.via());
                        core.send_request(prack, dest, tb, tx.clone());
                    }
                }
                Provisional::Retransmission | Provisional::Discard => return,
            }
            out.fork.provisional(i, code);
        } else if (200..300).contains(&code) {
            let b = &mut out.branches[i];
            match Dialog::uac(&b.invite, &resp) {
                Ok(mut d) => {
                    // CSeq numbers the early dialog used (PRACK) stay used.
                    let tag = d.remote_tag.clone();
                    if let Some((_, early)) = b.early.iter().find(|(t, _)| *t == tag) {
                        d.local_cseq = d.local_cseq.max(early.local_cseq);
                    }
                    b.answer = Some((d, resp));
                    out.fork.final_response(i, code);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the callee's 2xx makes no dialog");
                    out.fork.final_response(i, 500);
                }
            }
        } else if (code == 401 || code == 407)
            && !out.branches[i].authenticated
            && out.branches[i].target.credentials.is_some()
        {
            // RFC 3261 §22.2: answer the challenge once, in a new INVITE of the same branch.
            let b = &out.branches[i];
            let (user, password) = b.target.credentials.clone().unwrap_or_default();
            let (ask, answer) = if code == 401 {
                ("WWW-Authenticate", "Authorization")
            } else {
                ("Proxy-Authenticate", "Proxy-Authorization")
            };
            let challenges = sip::message::header_values(&resp, ask);
            let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
            let cnonce = format!("{:016x}", rand::random::<u64>());
            let value = sip::digest::preferred_challenge(&refs).and_then(|c| {
                sip::digest::respond(c, "INVITE", &b.target.request_uri, &user, &password, &cnonce, 1).ok()
            });
            let cseq = b.cseq + 1;
            let rebuilt = value.and_then(|v| {
                Self::branch_invite(
                    core,
                    &b.target,
                    &b.call_id,
                    &b.tag,
                    cseq,
                    &out.display,
                    &out.sdp,
                    Some((answer, v)),
                )
            });
            match rebuilt {
                Some(invite) => {
                    let (dest, tb) = (b.target.dest, b.target.transport);
                    let key = core.send_request(invite.clone(), dest, tb, tx.clone());
                    let b = &mut out.branches[i];
                    b.invite = invite;
                    b.key = key;
                    b.cseq = cseq;
                    b.authenticated = true;
                }
                None => out.fork.final_response(i, 403),
            }
        } else {
            out.fork.final_response(i, code);
        }
        Self::outgoing_fork(core, tx, call, out);
    }

    /// Does what the fork context asks.
    fn outgoing_fork(core: &Arc<Core>, tx: &mpsc::Sender<CallInput>, call: u64, out: &mut Outgoing) {
        while let Some(o) = out.fork.poll_output() {
            match o {
                ForkOutput::Provisional(_) => {
                    // Ringing, once, whatever the callee's 18x: confgate
                    // carries no early media, so the caller plays its own ringback.
                    out.ringing = true;
                }
                ForkOutput::Cancel(i) => {
                    if let Some(b) = out.branches.get(i) {
                        let c = sip::transaction::cancel_request(&b.invite);
                        core.send_request(c, b.target.dest, b.target.transport, tx.clone());
                    }
                }
                ForkOutput::Answered(i) => {
                    tracing::info!(call = call, branch = i, "callee answered");
                    out.answered = Some(i);
                }
                ForkOutput::Release(i) => {
                    if let Some(b) = out.branches.get_mut(i) {
                        if let Some((mut d, _)) = b.answer.take() {
                            let (dest, tb) = (b.target.dest, b.target.transport);
                            let sent_by = core.sent_by(tb);
                            let ack = d.ack(b.cseq, &sent_by, tb.via(), None);
                            core.send_stateless(dest, tb, rsip::SipMessage::Request(ack));
                            let bye = d.request(rsip::Method::Bye, &sent_by, tb.via(), None);
                            core.send_request(bye, dest, tb, tx.clone());
                            tracing::info!(call = call, branch = i, "late answer released");
                        }
                    }
                }
                ForkOutput::Final(code) => out.failed = Some(code),
            }
        }
    }

    /// Answers the caller with the final status the fork chose (RFC 3261
    /// §16.7): passed on as it is when it tells the caller something true
    /// of the callee, else mapped through the call model's end reasons (a
    /// challenge meant for us, for one, is not the caller's to answer).
    fn relay_failure(&self, code: u16) {
        let reason = sip::status::reason_for_status(code);
        if matches!(code, 404 | 408 | 410 | 480 | 484 | 486 | 600 | 603 | 604) {
            let resp = self.response(code);
            let resp = sip::message::with_header(resp, "Reason", &sip::status::reason_header(reason));
            tracing::info!(call = self.id, status = code, "no callee answered");
            self.core.respond(&self.invite_key, resp);
        } else {
            self.refuse(reason);
        }
    }

    /// Sends a provisional response to the caller: reliably (RFC 3262)
    /// when it asked for that, then routing its PRACKs to this task.
    fn send_provisional(&mut self, code: u16) {
        let contact = format!("<{}>", self.core.our_uri("", self.transport));
        let resp = sip::message::with_header(self.response(code), "Contact", &contact);
        match self.reliable.as_mut() {
            Some(r) => {
                // The early dialog: the caller's PRACK carries our tag.
                self.core.add_dialog(&self.call_id, &self.local_tag, self.tx.clone());
                if !r.send(resp, Instant::now()) {
                    tracing::debug!(call = self.id, "reliable provisional response dropped");
                }
                self.flush_reliable();
            }
            None => self.core.respond(&self.invite_key, resp),
        }
    }

    /// Sends what the reliable-provisional machine queued. `true`: it gave
    /// up (no PRACK for 64·T1).
    fn flush_reliable(&mut self) -> bool {
        let mut gave_up = false;
        while let Some(o) = self.reliable.as_mut().and_then(|r| r.poll_output()) {
            match o {
                UasOutput::Send(resp) => self.core.respond(&self.invite_key, resp),
                UasOutput::GiveUp => gave_up = true,
            }
        }
        gave_up
    }

    /// The reliable provisional's timer fired: retransmit, or `true` when
    /// it is given up.
    fn reliable_timeout(&mut self) -> bool {
        if let Some(r) = self.reliable.as_mut() {
            r.handle_timeout(Instant::now());
        }
        let gave_up = self.flush_reliable();
        if gave_up {
            tracing::info!(call = self.id, "no PRACK for the reliable provisional response");
        }
        gave_up
    }

    /// Answers a PRACK from the caller (RFC 3262 §3): 200 when it
    /// acknowledges our outstanding reliable provisional response, 481 when
    /// it matches none, 400 without a readable RAck.
    fn on_prack(&mut self, key: ServerTxKey, req: &rsip::Request) {
        let result = match self.reliable.as_mut() {
            Some(r) => r.on_prack(req, Instant::now()).map(|_| ()),
            None => Err(sip::reliable::PrackError::NoMatch),
        };
        let resp = match result {
            Ok(()) => sip::message::response_for(req, 200, None),
            Err(e) => {
                let r = sip::message::response_for(req, e.sip_status(), None);
                sip::message::with_header(r, "Warning", &warning(&self.core, &e.to_string()))
            }
        };
        self.core.respond(&key, resp);
        self.flush_reliable();
    }

    /// Decodes each phone's audio and re-encodes it for the other: the two
    /// legs share no codec. `false`: the codecs could not be started.
    fn start_transcoding(
        &mut self,
        ea: EndpointId,
        answer_a: &NegotiatedStream,
        eb: EndpointId,
        answer_b: &NegotiatedStream,
    ) -> bool {
        let (Some(fa), Some(fb)) = (format_of(answer_a), format_of(answer_b)) else {
            return false;
        };
        let relay = &self.core.relay;
        // A browser callee's side runs already (it also carries its ICE and DTLS).
        let b = match self.browser_port.take() {
            Some(p) => Ok(p),
            None => AudioPort::start(relay, eb, fb),
        };
        match (AudioPort::start(relay, ea, fa), b) {
            (Ok(a), Ok(b)) => {
                self.transcoder = Some(AudioBridge::start(a, b));
                true
            }
            (a, b) => {
                for e in [a.err(), b.err()].into_iter().flatten() {
                    tracing::warn!(error = %e, "cannot start the transcoder");
                }
                false
            }
        }
    }

    /// Reads a browser callee's answer to our WebRTC offer and starts its
    /// ICE and DTLS ([`super::browser::take_answer`]); the port that
    /// decodes its side when the call is transcoded waits in
    /// `browser_port`. `None`: unusable (logged).
    fn browser_answer(
        &mut self,
        offer: super::browser::CalleeOffer,
        text: &str,
        caller: &[call::Codec],
    ) -> Option<NegotiatedStream> {
        match super::browser::take_answer(&self.core, offer, text, caller) {
            Ok((stream, port, session)) => {
                tracing::info!(call = self.id, codec = %stream.codec.name, transcoded = port.is_some(),
                    "browser callee answered with WebRTC media");
                self.browser_port = port;
                self.browser_callee = Some(session);
                Some(stream)
            }
            Err(r) => {
                tracing::info!(call = self.id, status = r.status, reason = %r.text, "browser callee's answer refused");
                None
            }
        }
    }
}

/// A re-INVITE in progress that moves a phone's video from the IVR into
/// its conference ([`Call::move_video_into_room`]).
struct VideoMove {
    key: ClientTxKey,
    /// Its CSeq number (the ACK's).
    cseq: u32,
    /// What we offered, to read the answer against.
    params: sip::sdp::OfferParams,
    sdp: String,
    /// The video endpoint in the room's relay group.
    endpoint: EndpointId,
    /// Our ACK, once the 2xx came (sent again for its retransmissions).
    ack: Option<rsip::Request>,
}

/// What a response to the video's re-INVITE means for the room.
enum MoveStep {
    /// Nothing for the room (more to come, or it ended without video).
    Waiting,
    /// The phone's video is in the room's relay group now.
    Moved(crate::video::VideoLeg),
    /// Glare (491): offer again after a while.
    Retry,
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Why a call fails when the caller never acknowledges our ringing.
const NO_PRACK: &str = "the reliable provisional response was never acknowledged (PRACK)";

/// Most phones one call rings at once.
const MAX_BRANCHES: usize = 10;

/// The outgoing side of a bridged call: its branches and their response
/// context.
struct Outgoing {
    branches: Vec<Branch>,
    fork: ForkContext,
    /// The branch that answered first.
    answered: Option<usize>,
    /// The final status for the caller, when nobody answered.
    failed: Option<u16>,
    /// The caller's name as the callees see it.
    display: String,
    /// Our offer to the callees.
    sdp: String,
    /// A callee rings (the fork context said so), not yet relayed.
    ringing: bool,
}

impl Outgoing {
    /// No branch: a caller whose callee is on another protocol.
    fn none() -> Outgoing {
        Outgoing {
            branches: Vec::new(),
            fork: ForkContext::new(0),
            answered: None,
            failed: None,
            display: String::new(),
            sdp: String::new(),
            ringing: false,
        }
    }
}

/// One INVITE of a (possibly forked) outgoing call.
struct Branch {
    target: Outbound,
    call_id: String,
    tag: String,
    /// The INVITE in progress (a second one answers a digest challenge).
    invite: rsip::Request,
    key: ClientTxKey,
    cseq: u32,
    /// A digest challenge was answered already (once only).
    authenticated: bool,
    /// Early dialogs by the callee's tag, made by reliable provisional
    /// responses: where PRACKs go.
    early: Vec<(String, Dialog)>,
    prack: PrackClient,
    /// The callee's 2xx and the dialog it made, until connected or released.
    answer: Option<(Dialog, rsip::Response)>,
    /// The SDP answers of reliable provisional responses, by the callee's
    /// tag (RFC 3262 §5: the 2xx need not repeat them).
    early_sdp: Vec<(String, Vec<u8>)>,
}

/// Where a bridged call goes.
struct Outbound {
    /// Request-URI of the INVITE.
    request_uri: String,
    /// To URI.
    to: String,
    /// From URI (ours, as the callee's side should see the caller).
    from: String,
    /// Where the INVITE is sent.
    dest: SocketAddr,
    /// Over what.
    transport: Transport,
    /// Digest credentials for a challenge, if any.
    credentials: Option<(String, String)>,
    /// For the log.
    label: String,
}

/// The phones of account `user` to ring for `caller`: one target per
/// registered contact (the address the REGISTER came from, else the
/// Contact's), duplicates dropped, at most [`MAX_BRANCHES`].
fn account_targets(core: &Core, user: &str, caller: &str, bindings: Vec<sip::registrar::Binding>) -> Vec<Outbound> {
    let mut targets: Vec<Outbound> = Vec::new();
    for binding in bindings {
        let Some(dest) = binding.source.or_else(|| contact_address(&binding.contact)) else {
            continue;
        };
        let request_uri = binding
            .contact
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        if targets.iter().any(|t| t.request_uri == request_uri && t.dest == dest) {
            continue;
        }
        targets.push(Outbound {
            request_uri,
            to: format!("sip:{user}@{}", core.realm),
            from: format!("sip:{caller}@{}", core.realm),
            dest,
            transport: Transport::from_token(&binding.transport),
            credentials: None,
            label: format!("{user}@{}", core.realm),
        });
        if targets.len() == MAX_BRANCHES {
            break;
        }
    }
    targets
}

/// The SIP side's [`legs::Dialer`]: INVITE to every phone an account
/// registered, forked as for SIP callers, for callers on other protocols.
struct SipDialer(Arc<Core>);

impl legs::Dialer for SipDialer {
    fn registered<'a>(&'a self, account: &'a str) -> legs::Count<'a> {
        Box::pin(async move {
            match self.0.shared.directory.sip_bindings(account, unix_now()).await {
                Ok(b) => b.len(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read registrations");
                    0
                }
            }
        })
    }

    fn place(&self, request: legs::LegRequest) -> legs::OutboundLeg {
        let (leg, side) = legs::channel();
        let task = tokio::spawn(sip_leg(self.0.clone(), request, side));
        leg.with_task(task)
    }
}

/// Lets the other protocols' callers reach SIP phones (the listener calls
/// this when it starts).
pub(super) fn register_dialer(core: &Arc<Core>) {
    legs::register(Protocol::Sip, Arc::new(SipDialer(core.clone())));
}

/// A SIP leg for a caller on another protocol: INVITE the account's phones
/// (forked), report the first ringing and the first answer (ACKed, its SDP
/// answer given to the relay), and stay until the callee's BYE or the
/// caller's release (CANCEL before the answer, BYE after).
async fn sip_leg(core: Arc<Core>, request: legs::LegRequest, mut side: legs::LegSide) {
    let id = request.call;
    let (tx, mut rx) = mpsc::channel(32);
    let bindings = match core.shared.directory.sip_bindings(&request.account, unix_now()).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read registrations");
            side.report(legs::LegEvent::Released(legs::LegEnd::ours(EndReason::ServerError)));
            return;
        }
    };
    let caller = request
        .caller
        .account()
        .map(|a| a.user().to_string())
        .unwrap_or_else(|| "anonymous".into());
    let mut reachable = Vec::new();
    for t in account_targets(&core, &request.account, &caller, bindings) {
        if t.transport == Transport::Udp || core.tcp_connection(t.dest, t.transport).await {
            reachable.push(t);
        }
    }
    if reachable.is_empty() {
        side.report(legs::LegEvent::Released(legs::LegEnd::ours(EndReason::Unreachable)));
        return;
    }
    let eb = match core.relay.create_endpoint(request.group, true) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "no media ports");
            side.report(legs::LegEvent::Released(legs::LegEnd::ours(EndReason::ServerError)));
            return;
        }
    };
    // The caller's codecs first (forwarded untouched when taken), then
    // those the mixer can transcode.
    let offered = sip::sdp::bridge_codecs(&request.codecs, &Call::mixer_codecs());
    let session: u64 = rand::random::<u32>().into();
    let mut params = sip::sdp::OfferParams::new(core.media_address, eb.rtp_port, session, 1);
    params.audio_codecs = offered;
    params.video_codecs = Vec::new();
    let display = request.caller.display_name().replace(['"', '\\', '\r', '\n'], "");
    let mut out = Outgoing {
        branches: Vec::with_capacity(reachable.len()),
        fork: ForkContext::new(0),
        answered: None,
        failed: None,
        display,
        sdp: sip::sdp::offer(&params),
        ringing: false,
    };
    let keys = Call::send_branches(&core, &tx, id, &mut out, reachable);
    out.fork = ForkContext::new(out.branches.len());
    let end = if out.branches.is_empty() {
        Some(legs::LegEnd::ours(EndReason::Unreachable))
    } else {
        sip_leg_run(&core, &tx, &mut rx, id, &mut out, &params, eb.id, &mut side).await
    };
    if let Some(e) = end {
        side.report(legs::LegEvent::Released(e));
    }
    Call::linger_branches(&core, &tx, &mut rx, id, &mut out).await;
    for (cid, tag) in keys {
        core.remove_dialog(&cid, &tag);
    }
    let relay = core.relay.clone();
    let _ = tokio::task::spawn_blocking(move || relay.remove_endpoint(eb.id)).await;
}

/// Rings, connects and holds a SIP leg ([`sip_leg`]). Returns its end to
/// report, `None` when the caller ended it.
#[allow(clippy::too_many_arguments)]
async fn sip_leg_run(
    core: &Arc<Core>,
    tx: &mpsc::Sender<CallInput>,
    rx: &mut mpsc::Receiver<CallInput>,
    id: u64,
    out: &mut Outgoing,
    params: &sip::sdp::OfferParams,
    eb: EndpointId,
    side: &mut legs::LegSide,
) -> Option<legs::LegEnd> {
    let ring_deadline = tokio::time::Instant::now() + RING_TIMEOUT;
    let mut rang = false;
    let win = loop {
        tokio::select! {
            input = rx.recv() => if !Call::branch_input(core, tx, id, out, input) {
                return Some(legs::LegEnd::ours(EndReason::ServerError));
            },
            c = side.commands.recv() => {
                // The caller gave up: CANCEL every branch (RFC 3261 §9.1).
                let reason = c.map(|legs::LegCommand::Release { reason, .. }| reason);
                tracing::info!(call = id, reason = reason.map(|r| r.code()), "the SIP call out is cancelled");
                out.fork.give_up(487);
                Call::outgoing_fork(core, tx, id, out);
                return None;
            }
            _ = tokio::time::sleep_until(ring_deadline) => {
                tracing::info!(call = id, "nobody answered in time");
                out.fork.give_up(408);
                Call::outgoing_fork(core, tx, id, out);
            }
        }
        if std::mem::take(&mut out.ringing) && !rang {
            rang = true;
            side.report(legs::LegEvent::Ringing);
        }
        if let Some(i) = out.answered {
            break i;
        }
        if let Some(code) = out.failed.take() {
            tracing::info!(call = id, status = code, "no SIP phone answered");
            return Some(legs::LegEnd {
                by_peer: true,
                reason: sip::status::reason_for_status(code),
                cause: None,
                status: Some(code),
            });
        }
    };
    let Some((mut dialog, resp)) = out.branches.get_mut(win).and_then(|b| b.answer.take()) else {
        return Some(legs::LegEnd::ours(EndReason::ServerError));
    };
    let b = &out.branches[win];
    let (dest, tb, call_id) = (b.target.dest, b.target.transport, b.call_id.clone());
    // RFC 3261 §13.2.2.4: the ACK for a 2xx is ours to send.
    let ack = dialog.ack(b.cseq, &core.sent_by(tb), tb.via(), None);
    core.send_stateless(dest, tb, rsip::SipMessage::Request(ack));
    // RFC 3262 §5: the answer may have come in a reliable provisional response.
    let body = if resp.body.is_empty() {
        b.early_sdp
            .iter()
            .find(|(t, _)| *t == dialog.remote_tag)
            .map(|(_, body)| body.clone())
            .unwrap_or_default()
    } else {
        resp.body.clone()
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let answer = sip::sdp::parse(&text)
        .ok()
        .and_then(|sdp| sip::sdp::parse_answer(&sdp, params).ok())
        .and_then(|n| n.audio);
    let bye = |dialog: &mut Dialog, reason: EndReason, cause: Option<u8>| {
        let mut req = dialog.request(rsip::Method::Bye, &core.sent_by(tb), tb.via(), None);
        let header = match cause {
            Some(c) => format!("Q.850;cause={c}"),
            None => sip::status::reason_header(reason),
        };
        req = sip::message::with_header(req, "Reason", &header);
        core.send_request(req, dest, tb, tx.clone());
    };
    let Some(answer) = answer else {
        tracing::info!(call = id, "the SIP phone's answer has no usable audio");
        bye(&mut dialog, EndReason::MediaIncompatible, None);
        return Some(legs::LegEnd::ours(EndReason::MediaIncompatible));
    };
    if let Err(e) = configure_endpoint(&core.relay, eb, &answer) {
        tracing::warn!(error = %e, "relay refused the media");
        bye(&mut dialog, EndReason::ServerError, None);
        return Some(legs::LegEnd::ours(EndReason::ServerError));
    }
    tracing::info!(call = id, codec = %answer.codec.name, "SIP phone answered");
    let (mut last_sdp, mut version) = (out.sdp.clone(), params.session_version);
    side.report(legs::LegEvent::Answered {
        endpoint: eb,
        codec: answer.codec.clone(),
    });
    loop {
        tokio::select! {
            input = rx.recv() => match input {
                Some(CallInput::Request(key, req)) => {
                    let ours = sip::message::call_id(&*req) == Some(call_id.as_str());
                    match req.method {
                        rsip::Method::Bye if ours => {
                            core.respond(&key, sip::message::response_for(&req, 200, None));
                            let msg = &*req;
                            let reason = sip::message::header_value(msg, "Reason")
                                .and_then(|v| sip::status::reason_from_header(&v))
                                .unwrap_or(EndReason::Normal);
                            tracing::info!(call = id, reason = reason.code(), "the SIP phone hung up");
                            return Some(legs::LegEnd {
                                by_peer: true,
                                reason,
                                cause: None,
                                status: None,
                            });
                        }
                        rsip::Method::Options | rsip::Method::Info if ours => {
                            core.respond(&key, sip::message::response_for(&req, 200, None));
                        }
                        // A refresh, hold or move: answered on the codec in use.
                        rsip::Method::Invite | rsip::Method::Update if ours => {
                            let (resp, sdp) = Call::reoffer_answer(
                                core,
                                &req,
                                tb,
                                (eb, params.audio_port),
                                &answer,
                                &last_sdp,
                                (params.session_id, &mut version),
                            );
                            last_sdp = sdp;
                            core.respond(&key, resp);
                        }
                        _ => {
                            let code = if req.method == rsip::Method::Bye { 200 } else { 481 };
                            core.respond(&key, sip::message::response_for(&req, code, None));
                        }
                    }
                }
                Some(CallInput::Response(k, resp)) => Call::outgoing_response(core, tx, id, out, &k, *resp),
                Some(_) => {}
                None => {
                    bye(&mut dialog, EndReason::ServerError, None);
                    return Some(legs::LegEnd::ours(EndReason::ServerError));
                }
            },
            c = side.commands.recv() => {
                let (reason, cause) = match c {
                    Some(legs::LegCommand::Release { reason, cause }) => (reason, cause),
                    None => (EndReason::Normal, None),
                };
                tracing::info!(call = id, reason = reason.code(), "the caller hung up; BYE to the SIP phone");
                bye(&mut dialog, reason, cause);
                return None;
            }
        }
    }
}

/// Points relay endpoint `ep` at the negotiated peer with its keys.
fn configure_endpoint(relay: &relay::Relay, ep: EndpointId, audio: &NegotiatedStream) -> Result<(), relay::RelayError> {
    let hold = audio.remote_rtp.ip().is_unspecified();
    relay.configure(
        ep,
        &PeerConfig {
            peer: (!hold).then_some(audio.remote_rtp),
            peer_rtcp: if audio.rtcp_mux { None } else { audio.remote_rtcp },
            latch: LatchMode::Once,
            srtp_in: audio.remote_srtp.as_ref().and_then(srtp_params),
            srtp_out: audio.local_srtp.as_ref().and_then(srtp_params),
            clock_rate: audio.codec.clock_rate,
            rtcp_mux: audio.rtcp_mux,
        },
    )
}

/// The address in a Contact URI when its host is an IP literal.
fn contact_address(contact: &str) -> Option<SocketAddr> {
    let uri = rsip::Uri::try_from(contact.trim_start_matches('<').trim_end_matches('>')).ok()?;
    let ip: std::net::IpAddr = uri
        .host_with_port
        .host
        .to_string()
        .trim_matches(['[', ']'])
        .parse()
        .ok()?;
    let port = uri.host_with_port.port.map_or(5060, |p| *p.value());
    Some(SocketAddr::new(ip, port))
}

/// PIN entry by DTMF: "enter the PIN" (or "wrong PIN" first), digits up to `#`.
struct SipPin<'a> {
    call: &'a mut Call,
    port: AudioPort,
}

impl PinPrompt for SipPin<'_> {
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

/// Keys we offer or answer with, one per suite we take.
fn local_keys() -> Vec<call::SrtpKeys> {
    [
        (SrtpProfile::AesCm128HmacSha1_80, call::SrtpSuite::AesCm128HmacSha1_80),
        (SrtpProfile::AesCm128HmacSha1_32, call::SrtpSuite::AesCm128HmacSha1_32),
        (SrtpProfile::AeadAes128Gcm, call::SrtpSuite::AeadAes128Gcm),
        (SrtpProfile::AeadAes256Gcm, call::SrtpSuite::AeadAes256Gcm),
    ]
    .into_iter()
    .filter_map(|(profile, suite)| {
        let p = SrtpParams::random(profile).ok()?;
        Some(call::SrtpKeys {
            suite,
            master_key: p.key,
            master_salt: p.salt,
        })
    })
    .collect()
}

/// The relay's keying for an SDES key.
fn srtp_params(k: &call::SrtpKeys) -> Option<SrtpParams> {
    let profile = match k.suite {
        call::SrtpSuite::AesCm128HmacSha1_80 => SrtpProfile::AesCm128HmacSha1_80,
        call::SrtpSuite::AesCm128HmacSha1_32 => SrtpProfile::AesCm128HmacSha1_32,
        call::SrtpSuite::AeadAes128Gcm => SrtpProfile::AeadAes128Gcm,
        call::SrtpSuite::AeadAes256Gcm => SrtpProfile::AeadAes256Gcm,
    };
    Some(SrtpParams {
        profile,
        key: k.master_key.clone(),
        salt: k.master_salt.clone(),
    })
}

/// The mixer's view of a negotiated audio stream.
fn format_of(a: &NegotiatedStream) -> Option<AudioFormat> {
    let codec = AudioFormat::codec_for(&a.codec.name, a.codec.clock_rate, a.codec.channels)?;
    Some(AudioFormat {
        codec,
        payload_type: a.codec.payload_type?,
        telephone_event: a.telephone_event_pt,
        telephone_event_clock: 8000,
    })
}

/// `%xx` escapes of a URI user part (RFC 3261 §19.1.2), decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The offer has a video stream that is not refused.
fn offers_video(offer: &SessionDescription) -> bool {
    offer.media.iter().any(|m| m.media == "video" && m.port != 0)
}

/// The offer is audio then video, nothing else: the m-lines our own
/// re-offer ([`sip::sdp::offer`]) writes, in its order (RFC 3264 §8: a new
/// offer keeps the m-lines of the session and their order).
fn reofferable_with_video(offer: &SessionDescription) -> bool {
    matches!(offer.media.as_slice(), [a, v] if a.kind == Some(call::MediaKind::Audio) && a.port != 0
        && v.media == "video" && v.port != 0)
}

/// `sdp` with the direction attribute of its video m-section set to `dir`
/// (added when the section has none). Other sections are left as they are.
fn with_video_direction(sdp: &str, dir: &str) -> String {
    const DIRECTIONS: [&str; 4] = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"];
    let mut out = String::with_capacity(sdp.len() + 16);
    let (mut in_video, mut written) = (false, false);
    for line in sdp.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("m=") {
            if in_video && !written {
                out.push_str(&format!("a={dir}\r\n"));
            }
            in_video = l.starts_with("m=video ");
            written = false;
        } else if in_video && DIRECTIONS.contains(&l) {
            if !written {
                out.push_str(&format!("a={dir}\r\n"));
                written = true;
            }
            continue;
        }
        out.push_str(line);
    }
    if in_video && !written {
        if !out.ends_with('\n') {
            out.push_str("\r\n");
        }
        out.push_str(&format!("a={dir}\r\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, with_video_direction};

    #[test]
    fn only_the_video_sections_direction_changes() {
        let sdp = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\nm=video 4002 RTP/AVP 96\r\n\
                   a=rtpmap:96 VP8/90000\r\na=sendrecv\r\n";
        assert_eq!(
            with_video_direction(sdp, "inactive"),
            "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\nm=video 4002 RTP/AVP 96\r\n\
             a=rtpmap:96 VP8/90000\r\na=inactive\r\n"
        );
        // No direction attribute (sendrecv by default): one is added.
        let bare = "v=0\r\nm=video 4002 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            with_video_direction(bare, "sendrecv"),
            "v=0\r\nm=video 4002 RTP/AVP 96\r\na=sendrecv\r\nm=audio 4000 RTP/AVP 0\r\n"
        );
        assert_eq!(with_video_direction("v=0\r\n", "inactive"), "v=0\r\n");
    }

    #[test]
    fn user_parts_are_percent_decoded() {
        assert_eq!(percent_decode("alice"), "alice");
        assert_eq!(percent_decode("%5Cc%5C1234"), "\\c\\1234");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
