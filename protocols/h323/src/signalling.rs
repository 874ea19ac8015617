//! The call-signalling state machine of one incoming H.323 call (we are
//! the called side), on one TCP connection (H.225.0 §7.3, H.323 §8.1).
//!
//! ```text
//! AwaitSetup ──Setup──► Proceeding ──answer()──► Connected ──► Released
//!      │        (CallProceeding sent)   (Connect with the accepted fastStart)
//!      └─ setup timer ─► closed      release()/ReleaseComplete/EndSession ─┘
//! ```
//!
//! Sans-IO: feed the connection's bytes with [`CallSignalling::handle_input`]
//! and the clock with [`CallSignalling::handle_timeout`]; after every input
//! or command drain [`CallSignalling::poll_output`] until it returns `None`
//! (TPKT-framed bytes to write, [`Event`]s, and finally [`Output::Close`]),
//! and sleep until [`CallSignalling::poll_timeout`].
//!
//! Media is Fast Connect only (H.323 §8.1.7, [`crate::media`]). When the
//! caller tunnels H.245 (H.323 §8.2.1) the minimum is served in the
//! `h245Control` of the H.225.0 messages: our TerminalCapabilitySet, the
//! acknowledgement of the caller's, MasterSlaveDetermination answered,
//! UserInputIndication (alphanumeric and signal) as DTMF digits,
//! RoundTripDelay answered, EndSessionCommand ending the call.
//!
//! One call per connection: a second Setup with another call reference is
//! refused with ReleaseComplete (`newConnectionNeeded`); a repeated Setup on
//! the call's own reference clears the call (Q.850 cause 101).
//!
//! A half-open connection is detected: no Setup within
//! [`Config::setup_timeout`] closes it; during the call, after
//! [`Config::idle`] without a message a STATUS ENQUIRY is sent (Q.931
//! §5.8.10) and no answer within [`Config::enquiry_timeout`] clears the call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use call::EndReason;
use rasn::types::{BmpString, FixedOctetString, GeneralString, Ia5String, ObjectIdentifier, OctetString};

use crate::asn1::{self, h225, h245, PerError};
use crate::media::{self, FastConnect, MediaOffer, G711};
use crate::q931::{self, CallReference, Cause, Ie, Message, MessageType, Q931Error};
use crate::tpkt::{self, TpktDecoder, TpktError};

/// Largest TPKT packet accepted on a signalling connection.
pub const MAX_SIGNALLING_PACKET: usize = 16_384;
/// Longest dialed string or name taken from a Setup.
const MAX_ALIAS: usize = 128;

/// Why a message could not be built or a command not carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignallingError {
    /// A PER value did not encode or decode.
    #[error(transparent)]
    Per(#[from] PerError),
    /// A Q.931 message did not encode or decode.
    #[error(transparent)]
    Q931(#[from] Q931Error),
    /// A TPKT packet could not be framed or the stream is out of step.
    #[error(transparent)]
    Tpkt(#[from] TpktError),
    /// The command does not fit the call's state (answer after release...).
    #[error("not possible in state {0}")]
    WrongState(&'static str),
    /// The caller proposed no channel with the chosen codec.
    #[error("no fastStart proposal for the chosen codec")]
    NoMedia,
}

/// Timers and identity of the call-signalling side.
#[derive(Debug, Clone)]
pub struct Config {
    /// A connection that sends no Setup within this is closed.
    pub setup_timeout: Duration,
    /// After this long without a message in a call, STATUS ENQUIRY is sent.
    pub idle: Duration,
    /// How long to wait for an answer to STATUS ENQUIRY.
    pub enquiry_timeout: Duration,
    /// The Display IE and display name sent in Connect.
    pub display: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            setup_timeout: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            enquiry_timeout: Duration::from_secs(10),
            display: "confgate".into(),
        }
    }
}

/// What the machine tells its driver.
#[derive(Debug)]
pub enum Output {
    /// Bytes to write on the connection (whole TPKT packets).
    Transmit(Vec<u8>),
    /// Something happened in the call.
    Event(Event),
    /// Close the connection after writing what was transmitted.
    Close,
}

/// A call event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A Setup arrived (Call Proceeding was sent): route it, then
    /// [`CallSignalling::answer`] or [`CallSignalling::release`].
    Incoming(IncomingCall),
    /// A key press (H.245 UserInputIndication or a Q.931 Keypad IE).
    Dtmf(char),
    /// The call is over.
    Released(Released),
}

/// The facts of an incoming Setup.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    /// What was dialed: the first destinationAddress alias (dialedDigits,
    /// h323-ID, url-ID or email-ID), else the Called party number's digits;
    /// empty when nothing was dialed.
    pub dialed: String,
    /// The caller's name (Display IE, UUIE displayName or h323-ID alias).
    pub caller_name: Option<String>,
    /// The caller's number (Calling party number or a dialedDigits alias).
    pub calling_number: Option<String>,
    /// The Fast Connect proposals.
    pub offer: MediaOffer,
    /// The caller tunnels H.245 in the call signalling.
    pub h245_tunnelling: bool,
    /// The caller's separate H.245 address, if it gave one.
    pub h245_address: Option<SocketAddr>,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The peer ended it (ReleaseComplete or EndSessionCommand) rather than
    /// a timer or bad input.
    pub by_peer: bool,
    /// In the call model's terms.
    pub reason: EndReason,
    /// The Q.850 cause value received or sent.
    pub cause: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitSetup,
    Proceeding,
    Connected,
    Released,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitSetup => "AwaitSetup",
            State::Proceeding => "Proceeding",
            State::Connected => "Connected",
            State::Released => "Released",
        }
    }
}

/// One incoming call on one signalling connection: see the module docs.
#[derive(Debug)]
pub struct CallSignalling {
    config: Config,
    state: State,
    decoder: TpktDecoder,
    /// The call reference of the Setup (ours are sent with the flag set).
    call_reference: CallReference,
    call_identifier: Option<h225::CallIdentifier>,
    conference_id: h225::ConferenceIdentifier,
    tunnelling: bool,
    offer: MediaOffer,
    out: VecDeque<Output>,
    setup_deadline: Option<Instant>,
    last_rx: Instant,
    enquiry_deadline: Option<Instant>,
    /// Tunnelled H.245 PDUs waiting for the next message we send.
    pending_h245: Vec<OctetString>,
    tcs_sent: bool,
    msd_number: u32,
}

impl CallSignalling {
    /// A new connection at `now`; `msd_number` is a random number for
    /// MasterSlaveDetermination (H.245 §C.2: 0..2^24).
    pub fn new(config: Config, now: Instant, msd_number: u32) -> Self {
        let setup_deadline = Some(now + config.setup_timeout);
        Self {
            config,
            state: State::AwaitSetup,
            decoder: TpktDecoder::new(MAX_SIGNALLING_PACKET),
            call_reference: CallReference::new(0, true),
            call_identifier: None,
            conference_id: h225::ConferenceIdentifier(h225::GloballyUniqueID(FixedOctetString::from([0; 16]))),
            tunnelling: false,
            offer: MediaOffer::default(),
            out: VecDeque::new(),
            setup_deadline,
            last_rx: now,
            enquiry_deadline: None,
            pending_h245: Vec::new(),
            tcs_sent: false,
            msd_number: msd_number & 0x00ff_ffff,
        }
    }

    /// Whether the call is over (only [`Output::Close`] left to drain).
    pub fn is_released(&self) -> bool {
        self.state == State::Released
    }

    /// The next output; drain until `None` after every input or command.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitSetup => self.setup_deadline,
            State::Connected | State::Proceeding => {
                Some(self.enquiry_deadline.unwrap_or(self.last_rx + self.config.idle))
            }
            State::Released => None,
        }
    }

    /// Runs the timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitSetup => {
                if self.setup_deadline.is_some_and(|d| now >= d) {
                    self.state = State::Released;
                    self.out.push_back(Output::Close);
                }
            }
            State::Proceeding | State::Connected => {
                if let Some(d) = self.enquiry_deadline {
                    if now >= d {
                        self.clear(EndReason::Timeout, Some(102), false);
                    }
                } else if now >= self.last_rx + self.config.idle {
                    self.enquiry_deadline = Some(now + self.config.enquiry_timeout);
                    let msg = Message::new(MessageType::StatusEnquiry, self.our_reference());
                    self.send_q931(&msg);
                }
            }
            State::Released => {}
        }
    }

    /// Bytes received on the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Released {
            return;
        }
        self.decoder.push(bytes);
        loop {
            let pdu = match self.decoder.next_pdu() {
                Ok(Some(p)) => p.to_vec(),
                Ok(None) => break,
                Err(_) => {
                    // The stream is out of step: nothing more can be read.
                    self.clear(EndReason::ServerError, Some(111), false);
                    return;
                }
            };
            self.last_rx = now;
            self.enquiry_deadline = None;
            if !pdu.is_empty() {
                self.handle_pdu(&pdu);
            }
            if self.state == State::Released {
                return;
            }
        }
        self.flush_h245();
    }

    /// Accepts the call with Fast Connect: Connect carries the accepted
    /// proposals for `codec` with our RTP/RTCP receive addresses. Returns
    /// where the caller receives media.
    pub fn answer(
        &mut self,
        codec: G711,
        local_rtp: SocketAddr,
        local_rtcp: SocketAddr,
    ) -> Result<FastConnect, SignallingError> {
        if self.state != State::Proceeding {
            return Err(SignallingError::WrongState(self.state.name()));
        }
        let (fc, olcs) = self
            .offer
            .accept(codec, local_rtp, local_rtcp)
            .ok_or(SignallingError::NoMedia)?;
        let fast_start = olcs
            .iter()
            .map(|o| asn1::encode(o).map(OctetString::from))
            .collect::<Result<Vec<_>, _>>()?;
        let body = h225::ConnectUUIE::new(
            protocol_identifier(),
            None,
            endpoint_type(),
            self.conference_id.clone(),
            Some(self.call_id()),
            None,
            None,
            None,
            Some(fast_start),
            Some(false),
            Some(false),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            display_name(&self.config.display).map(|d| vec![d]),
        );
        self.queue_tcs();
        let h245 = std::mem::take(&mut self.pending_h245);
        let uuie = user_information(h225::H323UUPDUH323MessageBody::connect(body), self.tunnelling, h245);
        let ies = vec![Ie::Display(ascii(&self.config.display))];
        self.send(MessageType::Connect, ies, &uuie)?;
        self.state = State::Connected;
        Ok(fc)
    }

    /// Ends the call with ReleaseComplete carrying `reason` as a Q.850
    /// cause and an H.225.0 ReleaseCompleteReason, then closes.
    pub fn release(&mut self, reason: EndReason) {
        let (cause, _) = release_cause(reason);
        self.clear(reason, Some(cause), false);
    }

    fn our_reference(&self) -> CallReference {
        CallReference {
            from_destination: true,
            ..self.call_reference
        }
    }

    fn call_id(&self) -> h225::CallIdentifier {
        self.call_identifier
            .clone()
            .unwrap_or_else(|| h225::CallIdentifier::new(h225::GloballyUniqueID(FixedOctetString::from([0; 16]))))
    }

    /// Sends ReleaseComplete (unless nothing was set up), reports and closes.
    fn clear(&mut self, reason: EndReason, cause: Option<u8>, by_peer: bool) {
        if self.state == State::Released {
            return;
        }
        let had_call = self.state != State::AwaitSetup;
        if had_call && !by_peer {
            let value = cause.unwrap_or(release_cause(reason).0);
            let rc_reason = release_cause(reason).1;
            let mut h245 = std::mem::take(&mut self.pending_h245);
            if self.tunnelling && self.state == State::Connected {
                let end = h245::MultimediaSystemControlMessage::command(h245::CommandMessage::endSessionCommand(
                    h245::EndSessionCommand::disconnect(()),
                ));
                if let Ok(b) = asn1::encode(&end) {
                    h245.push(OctetString::from(b));
                }
            }
            let msg = release_complete(
                self.our_reference(),
                value,
                rc_reason,
                Some(self.call_id()),
                self.tunnelling,
                h245,
            );
            self.transmit(msg);
        }
        self.state = State::Released;
        if had_call {
            self.out
                .push_back(Output::Event(Event::Released(Released { by_peer, reason, cause })));
        }
        self.out.push_back(Output::Close);
    }

    fn transmit(&mut self, msg: Result<Vec<u8>, SignallingError>) {
        if let Ok(bytes) = msg {
            self.out.push_back(Output::Transmit(bytes));
        }
    }

    fn send_q931(&mut self, msg: &Message) {
        let framed = msg.to_bytes().map_err(SignallingError::from).and_then(|b| frame(&b));
        self.transmit(framed);
    }

    fn send(&mut self, mt: MessageType, ies: Vec<Ie>, uuie: &h225::H323UserInformation) -> Result<(), SignallingError> {
        let bytes = signalling_message(mt, self.our_reference(), ies, uuie)?;
        self.out.push_back(Output::Transmit(bytes));
        Ok(())
    }

    fn handle_pdu(&mut self, pdu: &[u8]) {
        let msg = match Message::decode(pdu) {
            Ok(m) => m,
            Err(_) => {
                if self.state == State::AwaitSetup {
                    self.state = State::Released;
                    self.out.push_back(Output::Close);
                } else {
                    // Q.931 §5.8: an undecodable message is answered with STATUS, cause 95.
                    self.status(95);
                }
                return;
            }
        };
        if msg.message_type == MessageType::Setup {
            self.handle_setup(&msg);
            return;
        }
        if self.state == State::AwaitSetup {
            // Nothing but Setup opens a call; anything else on a fresh
            // connection is a stray message (Q.931 §5.8.3.2: release it).
            if msg.call_reference.length > 0 && msg.message_type != MessageType::ReleaseComplete {
                let rc = release_complete(
                    CallReference {
                        from_destination: !msg.call_reference.from_destination,
                        ..msg.call_reference
                    },
                    81,
                    None,
                    None,
                    false,
                    Vec::new(),
                );
                self.transmit(rc);
            }
            return;
        }
        if msg.call_reference.value != self.call_reference.value || msg.call_reference.length == 0 {
            // Another call reference (or the global one): not ours.
            return;
        }
        let uuie = msg
            .user_user()
            .and_then(|uu| asn1::decode_user_information(&uu.information).ok());
        if let Some(u) = &uuie {
            if let Some(control) = &u.h323_uu_pdu.h245_control {
                for pdu in control.clone() {
                    self.handle_h245(&pdu);
                    if self.state == State::Released {
                        return;
                    }
                }
            }
        }
        for ie in &msg.ies {
            if let Ie::Keypad(k) = ie {
                for &c in k {
                    if let Some(d) = dtmf(char::from(c)) {
                        self.out.push_back(Output::Event(Event::Dtmf(d)));
                    }
                }
            }
        }
        match msg.message_type {
            MessageType::ReleaseComplete => {
                let cause = msg.cause().map(|c| c.value);
                let reason = uuie.as_ref().and_then(|u| match &u.h323_uu_pdu.h323_message_body {
                    h225::H323UUPDUH323MessageBody::releaseComplete(rc) => rc.reason.clone(),
                    _ => None,
                });
                let end = end_reason(cause, reason.as_ref());
                self.clear(end, cause, true);
            }
            MessageType::StatusEnquiry => self.status(30),
            MessageType::Other(_) => self.status(97),
            _ => {}
        }
    }

    /// STATUS with `cause` and our call state (Q.931 §5.8.10, §4.5.7).
    fn status(&mut self, cause: u8) {
        let call_state = match self.state {
            State::Connected => 10,
            _ => 9,
        };
        let mut msg = Message::new(MessageType::Status, self.our_reference());
        msg.ies.push(Ie::Cause(q850(cause)));
        msg.ies.push(Ie::Unknown {
            codeset: 0,
            id: 0x14,
            contents: vec![call_state],
        });
        self.send_q931(&msg);
    }

    fn handle_setup(&mut self, msg: &Message) {
        if self.state != State::AwaitSetup {
            if msg.call_reference.value == self.call_reference.value {
                // The same call set up twice: the state machines disagree.
                self.clear(EndReason::ServerError, Some(101), false);
            } else {
                let rc = release_complete(
                    CallReference {
                        from_destination: true,
                        ..msg.call_reference
                    },
                    47,
                    Some(h225::ReleaseCompleteReason::newConnectionNeeded(())),
                    None,
                    false,
                    Vec::new(),
                );
                self.transmit(rc);
            }
            return;
        }
        self.setup_deadline = None;
        self.call_reference = msg.call_reference;
        self.state = State::Proceeding;
        if msg.call_reference.length == 0 {
            self.clear(EndReason::BadDialString, Some(81), false);
            return;
        }
        if msg.unrecognized_comprehension_required().is_some() {
            self.clear(EndReason::ServerError, Some(96), false);
            return;
        }
        let Some(uu) = msg.user_user() else {
            self.clear(EndReason::ServerError, Some(96), false);
            return;
        };
        let Ok(uuie) = asn1::decode_user_information(&uu.information) else {
            self.clear(EndReason::ServerError, Some(100), false);
            return;
        };
        let h225::H323UUPDUH323MessageBody::setup(setup) = &uuie.h323_uu_pdu.h323_message_body else {
            self.clear(EndReason::ServerError, Some(100), false);
            return;
        };
        self.call_identifier = setup.call_identifier.clone();
        self.conference_id = setup.conference_id.clone();
        self.tunnelling = uuie.h323_uu_pdu.h245_tunneling == Some(true);
        self.offer = MediaOffer::from_fast_start(setup.fast_start.as_deref());
        let incoming = IncomingCall {
            dialed: dialed(setup, msg),
            caller_name: caller_name(setup, msg),
            calling_number: calling_number(setup, msg),
            offer: self.offer.clone(),
            h245_tunnelling: self.tunnelling,
            h245_address: setup.h245_address.as_ref().and_then(media::from_h225),
        };
        // Call Proceeding at once (H.225.0 §7.3.1): the router may take a while.
        let body = h225::CallProceedingUUIE::new(
            protocol_identifier(),
            endpoint_type(),
            None,
            Some(self.call_id()),
            None,
            None,
            None,
            None,
            Some(false),
            Some(false),
            None,
            None,
        );
        let uuie_out = user_information(
            h225::H323UUPDUH323MessageBody::callProceeding(body),
            self.tunnelling,
            Vec::new(),
        );
        if self.send(MessageType::CallProceeding, Vec::new(), &uuie_out).is_err() {
            self.clear(EndReason::ServerError, Some(41), false);
            return;
        }
        self.out.push_back(Output::Event(Event::Incoming(incoming)));
        if let Some(control) = &uuie.h323_uu_pdu.h245_control {
            for pdu in control.clone() {
                self.handle_h245(&pdu);
            }
        }
    }

    fn queue_tcs(&mut self) {
        if self.tunnelling && !self.tcs_sent {
            if let Ok(b) = asn1::encode(&media::terminal_capability_set(1)) {
                self.pending_h245.push(OctetString::from(b));
                self.tcs_sent = true;
            }
        }
    }

    fn queue_h245(&mut self, msg: &h245::MultimediaSystemControlMessage) {
        if let Ok(b) = asn1::encode(msg) {
            self.pending_h245.push(OctetString::from(b));
        }
    }

    /// Sends what tunnelled H.245 is waiting in a Facility (H.323 §8.2.1),
    /// once the call is connected (before, it rides in Connect).
    fn flush_h245(&mut self) {
        if self.pending_h245.is_empty() || !self.tunnelling || self.state != State::Connected {
            return;
        }
        let h245 = std::mem::take(&mut self.pending_h245);
        let body = transported_information(Some(self.conference_id.clone()), Some(self.call_id()));
        let uuie = user_information(h225::H323UUPDUH323MessageBody::facility(body), true, h245);
        let _ = self.send(MessageType::Facility, Vec::new(), &uuie);
    }

    fn handle_h245(&mut self, pdu: &[u8]) {
        use h245::MultimediaSystemControlMessage as M;
        let Ok(msg) = asn1::decode_h245(pdu) else {
            return;
        };
        match msg {
            M::request(h245::RequestMessage::terminalCapabilitySet(tcs)) => {
                self.queue_tcs();
                self.queue_h245(&M::response(h245::ResponseMessage::terminalCapabilitySetAck(
                    h245::TerminalCapabilitySetAck::new(tcs.sequence_number, None),
                )));
            }
            M::request(h245::RequestMessage::masterSlaveDetermination(msd)) => {
                // H.245 §C.2.4: an MCU (terminal type 240) outranks terminals;
                // on a tie the status determination numbers decide.
                const OURS: u8 = 240;
                let we_master = match msd.terminal_type.cmp(&OURS) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        let diff = (msd.status_determination_number.wrapping_sub(self.msd_number)) & 0x00ff_ffff;
                        diff != 0 && diff < 0x0080_0000
                    }
                };
                // The decision is the receiving terminal's status.
                let decision = if we_master {
                    h245::MasterSlaveDeterminationAckDecision::slave(())
                } else {
                    h245::MasterSlaveDeterminationAckDecision::master(())
                };
                self.queue_h245(&M::response(h245::ResponseMessage::masterSlaveDeterminationAck(
                    h245::MasterSlaveDeterminationAck::new(decision),
                )));
            }
            M::request(h245::RequestMessage::roundTripDelayRequest(r)) => {
                self.queue_h245(&M::response(h245::ResponseMessage::roundTripDelayResponse(
                    h245::RoundTripDelayResponse::new(r.sequence_number),
                )));
            }
            M::indication(h245::IndicationMessage::userInput(ui)) => {
                for d in user_input_digits(&ui) {
                    self.out.push_back(Output::Event(Event::Dtmf(d)));
                }
            }
            M::command(h245::CommandMessage::endSessionCommand(_)) => {
                // H.323 §8.5: answer with our own EndSessionCommand, then ReleaseComplete.
                self.clear(EndReason::Normal, Some(16), false);
                if let Some(Output::Event(Event::Released(r))) = self
                    .out
                    .iter_mut()
                    .rev()
                    .find(|o| matches!(o, Output::Event(Event::Released(_))))
                {
                    r.by_peer = true;
                }
            }
            _ => {}
        }
    }
}

/// The digits a UserInputIndication carries (alphanumeric or signal).
pub fn user_input_digits(ui: &h245::UserInputIndication) -> Vec<char> {
    match ui {
        h245::UserInputIndication::alphanumeric(s) => {
            s.as_bytes().iter().filter_map(|&b| dtmf(char::from(b))).collect()
        }
        h245::UserInputIndication::signal(s) => s
            .signal_type
            .as_iso646_bytes()
            .iter()
            .filter_map(|&b| dtmf(char::from(b)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A DTMF key (0–9, *, #, A–D), upper-cased.
fn dtmf(c: char) -> Option<char> {
    let c = c.to_ascii_uppercase();
    (c.is_ascii_digit() || matches!(c, '*' | '#' | 'A' | 'B' | 'C' | 'D')).then_some(c)
}

/// H.225.0's protocol identifier for version 6
/// (`itu-t(0) recommendation(0) h(8) 2250 version(0) 6`).
pub fn protocol_identifier() -> h225::ProtocolIdentifier {
    h225::ProtocolIdentifier(ObjectIdentifier::new_unchecked(std::borrow::Cow::Borrowed(&[
        0, 0, 8, 2250, 0, 6,
    ])))
}

/// confgate as an H.323 endpoint type: an MCU with an MC.
fn endpoint_type() -> h225::EndpointType {
    h225::EndpointType::new(
        None,
        None,
        None,
        None,
        Some(h225::McuInfo::new(None, None)),
        None,
        true,
        false,
        None,
        None,
    )
}

fn display_name(name: &str) -> Option<h225::DisplayName> {
    let name: String = name.chars().take(80).collect();
    if name.is_empty() {
        return None;
    }
    bmp(&name).map(|n| h225::DisplayName::new(None, n))
}

/// A BMPString of the characters of `s` (UCS-2, big-endian on the wire).
fn bmp(s: &str) -> Option<BmpString> {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    BmpString::try_from(bytes).ok()
}

fn ascii(s: &str) -> Vec<u8> {
    s.bytes().filter(|b| (0x20..0x7f).contains(b)).take(80).collect()
}

/// An H323-UserInformation with `body`, the tunnelling flag and tunnelled
/// H.245 PDUs.
pub fn user_information(
    body: h225::H323UUPDUH323MessageBody,
    tunnelling: bool,
    h245_control: Vec<OctetString>,
) -> h225::H323UserInformation {
    let pdu = h225::H323UUPDU::new(
        body,
        None,
        None,
        Some(tunnelling),
        (!h245_control.is_empty()).then_some(h245_control),
        None,
        None,
        None,
        None,
        None,
        None,
    );
    h225::H323UserInformation::new(pdu, None)
}

fn frame(payload: &[u8]) -> Result<Vec<u8>, SignallingError> {
    let mut out = Vec::new();
    tpkt::encode(payload, &mut out)?;
    Ok(out)
}

/// A Q.931 message of type `mt` with `ies` and `uuie` in its User-user IE,
/// framed in TPKT.
pub fn signalling_message(
    mt: MessageType,
    call_reference: CallReference,
    mut ies: Vec<Ie>,
    uuie: &h225::H323UserInformation,
) -> Result<Vec<u8>, SignallingError> {
    let mut msg = Message::new(mt, call_reference);
    ies.push(Ie::UserUser(q931::UserUser {
        protocol_discriminator: q931::USER_USER_PROTOCOL_X208,
        information: asn1::encode(uuie)?,
    }));
    msg.ies = ies;
    frame(&msg.to_bytes()?)
}

/// Decodes one TPKT payload: the Q.931 message and its UUIE, if any
/// decodes.
pub fn decode_signalling(payload: &[u8]) -> Result<(Message, Option<h225::H323UserInformation>), SignallingError> {
    let msg = Message::decode(payload)?;
    let uuie = match msg.user_user() {
        Some(uu) => Some(asn1::decode_user_information(&uu.information)?),
        None => None,
    };
    Ok((msg, uuie))
}

fn q850(value: u8) -> Cause {
    // Coding standard ITU-T, location "private network serving the local user".
    Cause {
        coding_standard: 0,
        location: 1,
        recommendation: None,
        value,
        diagnostics: Vec::new(),
    }
}

/// A ReleaseComplete with the Q.850 `cause` and the H.225.0 `reason`, framed.
pub fn release_complete(
    call_reference: CallReference,
    cause: u8,
    reason: Option<h225::ReleaseCompleteReason>,
    call_identifier: Option<h225::CallIdentifier>,
    tunnelling: bool,
    h245_control: Vec<OctetString>,
) -> Result<Vec<u8>, SignallingError> {
    let body = h225::ReleaseCompleteUUIE::new(
        protocol_identifier(),
        reason,
        call_identifier,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    );
    let uuie = user_information(
        h225::H323UUPDUH323MessageBody::releaseComplete(body),
        tunnelling,
        h245_control,
    );
    signalling_message(
        MessageType::ReleaseComplete,
        call_reference,
        vec![Ie::Cause(q850(cause))],
        &uuie,
    )
}

/// The Q.850 cause and H.225.0 ReleaseCompleteReason for an
/// [`EndReason`] (H.225.0 Table 5 pairs the two).
pub fn release_cause(reason: EndReason) -> (u8, Option<h225::ReleaseCompleteReason>) {
    use h225::ReleaseCompleteReason as R;
    match reason {
        EndReason::Normal | EndReason::Cancelled | EndReason::ConferenceEnded | EndReason::Kicked => (16, None),
        EndReason::Busy => (17, Some(R::inConf(()))),
        EndReason::NotFound => (1, Some(R::unreachableDestination(()))),
        EndReason::Unreachable => (20, Some(R::calledPartyNotRegistered(()))),
        EndReason::AnonymousNotAllowed | EndReason::Forbidden => (21, Some(R::noPermission(()))),
        EndReason::WrongPin | EndReason::PinAttemptsExhausted | EndReason::LockedOut { .. } => {
            (21, Some(R::securityDenied(())))
        }
        EndReason::ConferenceFull => (34, Some(R::noBandwidth(()))),
        EndReason::ConferenceNotRunning => (18, Some(R::destinationRejection(()))),
        EndReason::ConferenceLocked | EndReason::LobbyRejected => (21, Some(R::destinationRejection(()))),
        EndReason::LobbyTimeout | EndReason::Timeout => (102, Some(R::undefinedReason(()))),
        EndReason::DialStringTooLong | EndReason::BadDialString => (28, Some(R::badFormatAddress(()))),
        EndReason::MediaIncompatible => (88, Some(R::undefinedReason(()))),
        EndReason::ServerShutdown => (41, Some(R::gatewayResources(()))),
        _ => (41, Some(R::undefinedReason(()))),
    }
}

/// The call model's reason for a received Q.850 cause and
/// ReleaseCompleteReason (the cause wins when both are there).
pub fn end_reason(cause: Option<u8>, reason: Option<&h225::ReleaseCompleteReason>) -> EndReason {
    use h225::ReleaseCompleteReason as R;
    match cause {
        Some(16 | 31) => EndReason::Normal,
        Some(17) => EndReason::Busy,
        Some(1 | 3 | 22) => EndReason::NotFound,
        Some(18..=20) => EndReason::Unreachable,
        Some(21) => EndReason::Forbidden,
        Some(28) => EndReason::BadDialString,
        Some(34 | 47) => EndReason::ConferenceFull,
        Some(58 | 65 | 79 | 88) => EndReason::MediaIncompatible,
        Some(102) => EndReason::Timeout,
        Some(_) => EndReason::ServerError,
        None => match reason {
            None | Some(R::undefinedReason(())) => EndReason::Normal,
            Some(R::inConf(()) | R::adaptiveBusy(())) => EndReason::Busy,
            Some(R::unreachableDestination(()) | R::calledPartyNotRegistered(())) => EndReason::NotFound,
            Some(R::noPermission(()) | R::securityDenied(()) | R::destinationRejection(())) => EndReason::Forbidden,
            Some(R::badFormatAddress(())) => EndReason::BadDialString,
            Some(_) => EndReason::ServerError,
        },
    }
}

fn alias_text(a: &h225::AliasAddress) -> Option<String> {
    let s = match a {
        h225::AliasAddress::dialedDigits(d) => String::from(d.clone()),
        h225::AliasAddress::h323_ID(b) => char::decode_utf16(b.clone().into_vec())
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        h225::AliasAddress::url_ID(u) => {
            let u = String::from(u.clone());
            u.strip_prefix("h323:").map(str::to_string).unwrap_or(u)
        }
        h225::AliasAddress::email_ID(e) => String::from(e.clone()),
        _ => return None,
    };
    let s: String = s.chars().filter(|c| !c.is_control()).take(MAX_ALIAS + 1).collect();
    (!s.is_empty()).then_some(s)
}

fn dialed(setup: &h225::SetupUUIE, msg: &Message) -> String {
    if let Some(s) = setup.destination_address.iter().flatten().find_map(alias_text) {
        return s;
    }
    msg.ies
        .iter()
        .find_map(|ie| match ie {
            Ie::CalledPartyNumber(n) => Some(
                n.digits
                    .iter()
                    .map(|&b| char::from(b))
                    .filter(char::is_ascii_graphic)
                    .take(MAX_ALIAS + 1)
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

fn caller_name(setup: &h225::SetupUUIE, msg: &Message) -> Option<String> {
    let display = msg.ies.iter().find_map(|ie| match ie {
        Ie::Display(d) => {
            let s: String = d.iter().map(|&b| char::from(b)).filter(|c| !c.is_control()).collect();
            (!s.trim().is_empty()).then(|| s.trim().to_string())
        }
        _ => None,
    });
    display
        .or_else(|| {
            setup.display_name.iter().flatten().find_map(|d| {
                let s: String = char::decode_utf16(d.name.clone().into_vec())
                    .filter_map(Result::ok)
                    .filter(|c| !c.is_control())
                    .collect();
                (!s.trim().is_empty()).then_some(s)
            })
        })
        .or_else(|| {
            setup
                .source_address
                .iter()
                .flatten()
                .find(|a| matches!(a, h225::AliasAddress::h323_ID(_)))
                .and_then(alias_text)
        })
        .map(|s| s.chars().take(MAX_ALIAS).collect())
}

fn calling_number(setup: &h225::SetupUUIE, msg: &Message) -> Option<String> {
    msg.ies
        .iter()
        .find_map(|ie| match ie {
            Ie::CallingPartyNumber(n) if !n.digits.is_empty() => Some(
                n.digits
                    .iter()
                    .map(|&b| char::from(b))
                    .filter(char::is_ascii_graphic)
                    .take(MAX_ALIAS)
                    .collect(),
            ),
            _ => None,
        })
        .or_else(|| {
            setup
                .source_address
                .iter()
                .flatten()
                .find(|a| matches!(a, h225::AliasAddress::dialedDigits(_)))
                .and_then(alias_text)
        })
}

/// What a caller puts in its Setup (for the side that dials: tests, and
/// later calls out).
#[derive(Debug, Clone)]
pub struct SetupParams {
    /// The call reference value (15 bits).
    pub call_reference: u16,
    /// The call identifier and conference id.
    pub call_id: [u8; 16],
    /// The destination alias: dialedDigits when all digits, else h323-ID.
    pub dialed: String,
    /// The caller's display name.
    pub display: String,
    /// fastStart proposals ([`media::propose`]).
    pub fast_start: Vec<OctetString>,
    /// Offer H.245 tunnelling.
    pub tunnelling: bool,
}

/// A TPKT-framed Setup.
pub fn setup(p: &SetupParams) -> Result<Vec<u8>, SignallingError> {
    let alias = if !p.dialed.is_empty() && p.dialed.bytes().all(|b| b.is_ascii_digit() || b == b'#' || b == b'*') {
        h225::AliasAddress::dialedDigits(
            Ia5String::try_from(p.dialed.clone()).map_err(|e| PerError::Encode(e.to_string()))?,
        )
    } else {
        h225::AliasAddress::h323_ID(bmp(&p.dialed).ok_or_else(|| PerError::Encode("alias not in the BMP".into()))?)
    };
    let guid = h225::GloballyUniqueID(FixedOctetString::from(p.call_id));
    let mut body = h225::SetupUUIE::new(
        protocol_identifier(),
        None,
        None,
        endpoint_terminal(),
        Some(vec![alias]),
        None,
        None,
        None,
        false,
        h225::ConferenceIdentifier(guid.clone()),
        h225::SetupUUIEConferenceGoal::create(()),
        None,
        h225::CallType::pointToPoint(()),
        None,
        None,
        Some(h225::CallIdentifier::new(guid)),
        None,
        None,
        None,
        (!p.fast_start.is_empty()).then(|| p.fast_start.clone()),
        Some(false),
        Some(false),
        None,
        Some(false),
        Some(false),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    );
    body.display_name = display_name(&p.display).map(|d| vec![d]);
    let uuie = user_information(h225::H323UUPDUH323MessageBody::setup(body), p.tunnelling, Vec::new());
    let ies = vec![
        Ie::BearerCapability(q931::BearerCapability {
            coding_standard: 0,
            transfer_capability: 8,
            transfer_mode: 0,
            transfer_rate: 0x10,
            rate_multiplier: None,
            layer1_protocol: Some(5),
            more: Vec::new(),
        }),
        Ie::Display(ascii(&p.display)),
    ];
    signalling_message(
        MessageType::Setup,
        CallReference::new(p.call_reference, false),
        ies,
        &uuie,
    )
}

fn endpoint_terminal() -> h225::EndpointType {
    h225::EndpointType::new(
        None,
        None,
        None,
        None,
        None,
        Some(h225::TerminalInfo::new(None)),
        false,
        false,
        None,
        None,
    )
}

/// The Facility body that only carries tunnelled H.245 (reason
/// `transportedInformation`, H.225.0 §7.4.2; multipleCalls and
/// maintainConnection false).
fn transported_information(
    conference_id: Option<h225::ConferenceIdentifier>,
    call_id: Option<h225::CallIdentifier>,
) -> h225::FacilityUUIE {
    h225::FacilityUUIE::new(
        protocol_identifier(),
        None,
        None,
        conference_id,
        h225::FacilityReason::transportedInformation(()),
        call_id,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some(false),
        Some(false),
        None,
        None,
        None,
        None,
        None,
        None,
    )
}

/// A Facility carrying tunnelled H.245 `pdus`, framed (either side).
pub fn facility_h245(
    call_reference: CallReference,
    call_id: Option<h225::CallIdentifier>,
    pdus: &[h245::MultimediaSystemControlMessage],
) -> Result<Vec<u8>, SignallingError> {
    let control = pdus
        .iter()
        .map(|m| asn1::encode(m).map(OctetString::from))
        .collect::<Result<Vec<_>, _>>()?;
    let body = transported_information(None, call_id);
    let uuie = user_information(h225::H323UUPDUH323MessageBody::facility(body), true, control);
    signalling_message(MessageType::Facility, call_reference, Vec::new(), &uuie)
}

/// An alphanumeric UserInputIndication of `text` (H.245 §6.3.11 / H.323 §10.5.1).
pub fn user_input(text: &str) -> Result<h245::MultimediaSystemControlMessage, SignallingError> {
    let s = GeneralString::from_bytes(text.as_bytes()).map_err(|e| PerError::Encode(e.to_string()))?;
    Ok(h245::MultimediaSystemControlMessage::indication(
        h245::IndicationMessage::userInput(h245::UserInputIndication::alphanumeric(s)),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn corpus_setups() -> Vec<h225::H323UserInformation> {
        include_str!("../tests/data/corpus.txt")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(k, _)| *k == "h225")
            .map(|(_, hex)| {
                let hex = hex.trim();
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect::<Vec<u8>>()
            })
            .map(|b| asn1::decode_user_information(&b).unwrap())
            .filter(|u| {
                matches!(
                    u.h323_uu_pdu.h323_message_body,
                    h225::H323UUPDUH323MessageBody::setup(_)
                )
            })
            .collect()
    }

    type Sent = Vec<(Message, Option<h225::H323UserInformation>)>;

    fn drain(m: &mut CallSignalling) -> (Sent, Vec<Event>, bool) {
        let (mut sent, mut events, mut closed) = (Vec::new(), Vec::new(), false);
        while let Some(o) = m.poll_output() {
            match o {
                Output::Transmit(b) => {
                    let mut d = TpktDecoder::new(65_535);
                    d.push(&b);
                    while let Some(p) = d.next_pdu().unwrap() {
                        sent.push(decode_signalling(p).unwrap());
                    }
                }
                Output::Event(e) => events.push(e),
                Output::Close => closed = true,
            }
        }
        (sent, events, closed)
    }

    fn wrap(uuie: &h225::H323UserInformation, crv: u16) -> Vec<u8> {
        signalling_message(
            MessageType::Setup,
            CallReference::new(crv, false),
            vec![Ie::CalledPartyNumber(q931::CalledPartyNumber {
                type_of_number: 0,
                numbering_plan: 1,
                digits: b"5001".to_vec(),
            })],
            uuie,
        )
        .unwrap()
    }

    #[test]
    fn corpus_setups_get_call_proceeding_and_an_incoming_event() {
        let setups = corpus_setups();
        assert!(!setups.is_empty());
        let now = Instant::now();
        for uuie in setups {
            let mut m = CallSignalling::new(Config::default(), now, 7);
            let bytes = wrap(&uuie, 0x1234);
            // Byte by byte: reassembly.
            for b in &bytes {
                m.handle_input(now, std::slice::from_ref(b));
            }
            let (sent, events, closed) = drain(&mut m);
            assert!(!closed);
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].0.message_type, MessageType::CallProceeding);
            assert_eq!(sent[0].0.call_reference, CallReference::new(0x1234, true));
            let [Event::Incoming(inc)] = &events[..] else {
                panic!("{events:?}")
            };
            assert!(!inc.dialed.is_empty());
            let h225::H323UUPDUH323MessageBody::setup(s) = &uuie.h323_uu_pdu.h323_message_body else {
                unreachable!()
            };
            assert_eq!(inc.offer.fast_start, s.fast_start.is_some());
        }
    }

    #[test]
    fn fast_connect_then_dtmf_then_release_by_us() {
        let rtp: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        let rtcp: SocketAddr = "192.0.2.1:5005".parse().unwrap();
        let bytes = setup(&SetupParams {
            call_reference: 77,
            call_id: [9; 16],
            dialed: "\\c\\room".into(),
            display: "Room 1".into(),
            fast_start: media::propose(G711::Ulaw, 1, rtp, rtcp).unwrap(),
            tunnelling: true,
        })
        .unwrap();
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &bytes);
        let (_, events, _) = drain(&mut m);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(inc.dialed, "\\c\\room");
        assert_eq!(inc.caller_name.as_deref(), Some("Room 1"));
        assert!(inc.h245_tunnelling);
        let ours: SocketAddr = "198.51.100.1:20000".parse().unwrap();
        assert!(matches!(
            m.answer(G711::Alaw, ours, ours),
            Err(SignallingError::NoMedia)
        ));
        let fc = m
            .answer(G711::Ulaw, ours, "198.51.100.1:20001".parse().unwrap())
            .unwrap();
        assert_eq!(fc.peer_rtp, Some(rtp));
        let (sent, _, _) = drain(&mut m);
        let (connect, uuie) = &sent[0];
        assert_eq!(connect.message_type, MessageType::Connect);
        let uuie = uuie.as_ref().unwrap();
        let h225::H323UUPDUH323MessageBody::connect(c) = &uuie.h323_uu_pdu.h323_message_body else {
            panic!()
        };
        assert_eq!(
            media::accepted_remote(c.fast_start.as_deref().unwrap()),
            Some((G711::Ulaw, ours))
        );
        // Our TCS rides in Connect.
        assert_eq!(uuie.h323_uu_pdu.h245_control.as_ref().map(Vec::len), Some(1));

        // PIN by tunnelled UserInputIndication.
        let fac = facility_h245(CallReference::new(77, false), None, &[user_input("12#").unwrap()]).unwrap();
        m.handle_input(now, &fac);
        let (_, events, _) = drain(&mut m);
        assert_eq!(events, vec![Event::Dtmf('1'), Event::Dtmf('2'), Event::Dtmf('#')]);

        m.release(EndReason::WrongPin);
        let (sent, events, closed) = drain(&mut m);
        assert!(closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(21));
        let Some(u) = &sent[0].1 else { panic!() };
        let h225::H323UUPDUH323MessageBody::releaseComplete(rc) = &u.h323_uu_pdu.h323_message_body else {
            panic!()
        };
        assert_eq!(rc.reason, Some(h225::ReleaseCompleteReason::securityDenied(())));
        assert!(matches!(
            &events[..],
            [Event::Released(Released { by_peer: false, .. })]
        ));
    }

    #[test]
    fn repeated_setup_gets_release_complete() {
        let uuie = corpus_setups().remove(0);
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &wrap(&uuie, 5));
        drain(&mut m);
        // Another call reference: refused, the first call goes on.
        m.handle_input(now, &wrap(&uuie, 6));
        let (sent, _, closed) = drain(&mut m);
        assert!(!closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert_eq!(sent[0].0.call_reference.value, 6);
        // The same one again: the call is cleared.
        m.handle_input(now, &wrap(&uuie, 5));
        let (sent, events, closed) = drain(&mut m);
        assert!(closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(101));
        assert!(matches!(&events[..], [Event::Released(_)]));
    }

    #[test]
    fn release_complete_from_the_peer() {
        let uuie = corpus_setups().remove(0);
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &wrap(&uuie, 5));
        drain(&mut m);
        let rc = release_complete(CallReference::new(5, false), 16, None, None, false, Vec::new()).unwrap();
        m.handle_input(now, &rc);
        let (sent, events, closed) = drain(&mut m);
        assert!(sent.is_empty() && closed);
        assert_eq!(
            events,
            vec![Event::Released(Released {
                by_peer: true,
                reason: EndReason::Normal,
                cause: Some(16)
            })]
        );
    }

    #[test]
    fn timers_close_half_open_connections() {
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        let t = m.poll_timeout().unwrap();
        m.handle_timeout(t);
        let (_, _, closed) = drain(&mut m);
        assert!(closed);

        let uuie = corpus_setups().remove(0);
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &wrap(&uuie, 5));
        drain(&mut m);
        let t = m.poll_timeout().unwrap();
        m.handle_timeout(t);
        let (sent, _, closed) = drain(&mut m);
        assert!(!closed);
        assert_eq!(sent[0].0.message_type, MessageType::StatusEnquiry);
        let t = m.poll_timeout().unwrap();
        m.handle_timeout(t);
        let (sent, events, closed) = drain(&mut m);
        assert!(closed);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(102));
        assert!(matches!(
            &events[..],
            [Event::Released(Released {
                reason: EndReason::Timeout,
                ..
            })]
        ));
    }

    #[test]
    fn garbage_never_panics_and_closes() {
        let now = Instant::now();
        for input in [&b"GET / HTTP/1.1\r\n"[..], &[3, 0, 0, 6, 8, 2], &[3, 0, 0, 5, 0x55]] {
            let mut m = CallSignalling::new(Config::default(), now, 1);
            m.handle_input(now, input);
            let (_, _, closed) = drain(&mut m);
            assert!(closed, "{input:?}");
        }
    }

    #[test]
    fn reasons_map_both_ways() {
        for r in [
            EndReason::Normal,
            EndReason::Busy,
            EndReason::NotFound,
            EndReason::Timeout,
            EndReason::BadDialString,
        ] {
            let (cause, reason) = release_cause(r);
            assert_eq!(end_reason(Some(cause), reason.as_ref()), r);
        }
    }
}
