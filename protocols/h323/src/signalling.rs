//! The call-signalling state machine of one H.323 call on one TCP
//! connection (H.225.0 §7.3, H.323 §8.1): an incoming call (we are the
//! called side, [`CallSignalling::new`]) or a call out
//! ([`CallSignalling::dial`]).
//!
//! ```text
//! incoming:
//! AwaitSetup ──Setup──► Proceeding ──answer()──► Connected ──► Released
//!      │        (CallProceeding sent,  (Connect, with the accepted fastStart
//!      │         alerting() rings)      or our H.245 address)
//!      └─ setup timer ─► closed      release()/ReleaseComplete/EndSession ─┘
//! outgoing:
//! Calling ──CallProceeding/Alerting/Progress──► Proceeding ──Connect──► Connected
//!    └─ no answer to Setup: RC 102        └─ no Connect in time: RC 19
//! ```
//!
//! A call out offers Fast Connect (our proposals for the codecs asked) and
//! H.245 tunnelling in its Setup; the called side's first answer settles
//! tunnelling (H.323 §8.2.1), the fastStart it returns (in any of its
//! messages up to Connect) gives the Fast Connect media, and an
//! `h245Address` it gives while not tunnelling is connected to. Without
//! Fast Connect the channels open by H.245 as for an incoming call.
//!
//! Sans-IO: feed the connection's bytes with [`CallSignalling::handle_input`]
//! and the clock with [`CallSignalling::handle_timeout`]; after every input
//! or command drain [`CallSignalling::poll_output`] until it returns `None`
//! (TPKT-framed bytes to write, [`Event`]s, and finally [`Output::Close`]),
//! and sleep until [`CallSignalling::poll_timeout`].
//!
//! Media comes by Fast Connect (H.323 §8.1.7, [`crate::media`]) when the
//! Setup proposes a codec we take, otherwise by H.245 logical channels
//! ([`crate::control`]: capability exchange, master/slave determination,
//! OpenLogicalChannel both ways). H.245 runs on one of three transports,
//! chosen from the Setup ([`H245Transport`]):
//! - tunnelled in the `h245Control` of the H.225.0 messages (H.323 §8.2.1)
//!   when the caller tunnels: ours ride in Connect, then in Facility;
//! - a separate TCP connection to the caller's `h245Address` when it gave
//!   one and does not tunnel: after Connect the machine asks its driver to
//!   connect ([`Output::ConnectH245`]);
//! - a separate TCP connection to us when the caller neither tunnels nor
//!   gave an address: the driver listens and passes its address to
//!   [`CallSignalling::answer`], which offers it in Connect (H.323 §8.1.3).
//!
//! A caller that asks for a separate connection later (Facility
//! `startH245` with its address, as after Fast Connect) gets one the same
//! way, unless H.245 already runs.
//!
//! On a separate connection the driver reports [`CallSignalling::h245_connected`],
//! feeds its bytes to [`CallSignalling::handle_h245_input`], writes
//! [`Output::H245`], and reports its end ([`CallSignalling::h245_closed`])
//! or that none came about ([`CallSignalling::h245_failed`]). Losing the
//! H.245 connection ends the call; never getting one ends a call that has
//! no Fast Connect media. Media changes come out as [`Event::Media`],
//! key presses (UserInputIndication, Keypad IE) as [`Event::Dtmf`], and an
//! EndSessionCommand is answered with ours and ReleaseComplete.
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

pub use call::EndReason;
use rasn::types::{BmpString, FixedOctetString, GeneralString, Ia5String, ObjectIdentifier, OctetString};

use crate::asn1::{self, h225, h245, PerError};
use crate::control::{self, Control, ControlConfig, ControlEvent, LocalMedia, MediaEvent, MediaMode};
use crate::media::{self, AudioCodec, FastConnect, MediaOffer, G711};
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
    /// Neither Fast Connect nor any H.245 transport: the call would have
    /// no media.
    #[error("no Fast Connect and no H.245 address to offer")]
    NoControlChannel,
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
    /// The audio codecs taken on channels opened by H.245, in order of
    /// preference.
    pub audio: Vec<AudioCodec>,
    /// A call out that is not answered (Connect) within this is released
    /// (Q.850 cause 19, no answer). The Setup itself must be answered
    /// within [`Config::setup_timeout`].
    pub answer_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            setup_timeout: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            enquiry_timeout: Duration::from_secs(10),
            display: "confgate".into(),
            audio: AudioCodec::ALL.to_vec(),
            answer_timeout: Duration::from_secs(60),
        }
    }
}

/// What the machine tells its driver.
#[derive(Debug)]
pub enum Output {
    /// Bytes to write on the connection (whole TPKT packets).
    Transmit(Vec<u8>),
    /// Bytes to write on the separate H.245 connection (whole TPKT packets).
    H245(Vec<u8>),
    /// Open the separate H.245 connection to the caller's address, then
    /// call [`CallSignalling::h245_connected`] (or
    /// [`CallSignalling::h245_failed`]).
    ConnectH245(SocketAddr),
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
    /// The media channels opened by H.245 changed.
    Media(MediaEvent),
    /// A call out: the called side took the Setup (Call Proceeding or Progress).
    Proceeding,
    /// A call out: the called side rings (Alerting).
    Alerting,
    /// A call out was answered (Connect); with the Fast Connect media when
    /// the called side accepted our proposals.
    Connected(Option<FastConnect>),
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
    /// Where H.245 will run.
    pub h245: H245Transport,
    /// The Setup's callIdentifier (what the caller's ARQ named), if any.
    pub call_identifier: Option<[u8; 16]>,
    /// The Setup's conferenceID.
    pub conference_id: [u8; 16],
}

/// Where a call's H.245 runs, from the Setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H245Transport {
    /// In the H.225.0 messages (the caller tunnels).
    Tunnelled,
    /// On a connection we open to the caller's `h245Address`.
    ConnectTo(SocketAddr),
    /// On a connection the caller opens to the address we offer in Connect.
    Listen,
}

/// How [`CallSignalling::answer`] accepts the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Our RTP receive address (the relay's).
    pub rtp: SocketAddr,
    /// Our RTCP receive address.
    pub rtcp: SocketAddr,
    /// Accept the Fast Connect proposals of this codec; `None`: open the
    /// channels with H.245.
    pub fast_connect: Option<G711>,
    /// Where we listen for the caller's H.245 connection, offered in
    /// Connect when the transport is [`H245Transport::Listen`].
    pub h245_listen: Option<SocketAddr>,
}

/// A call out: what [`CallSignalling::dial`] puts in its Setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The call reference value (15 bits).
    pub call_reference: u16,
    /// The call identifier and conference id.
    pub call_id: [u8; 16],
    /// The destination alias (dialedDigits when all digits, else h323-ID;
    /// empty: none, the called endpoint takes the call itself).
    pub dialed: String,
    /// Our display name.
    pub display: String,
    /// The calling party's alias (the Setup's sourceAddress), if any.
    pub calling: Option<String>,
    /// Our RTP receive address (the relay's).
    pub rtp: SocketAddr,
    /// Our RTCP receive address.
    pub rtcp: SocketAddr,
    /// The codecs proposed by Fast Connect, in order of preference (empty:
    /// no fastStart, channels by H.245).
    pub fast_start: Vec<G711>,
}

/// The H.245 link of the call as the machine sees it.
#[derive(Debug)]
enum Link {
    /// None (yet).
    None,
    /// In the H.225.0 messages.
    Tunnelled,
    /// A separate connection; messages wait in `queue` until it is up.
    Separate { connected: bool, queue: Vec<Vec<u8>> },
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
    /// We sent Setup (a call out) and heard nothing yet.
    Calling,
    Proceeding,
    Connected,
    Released,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitSetup => "AwaitSetup",
            State::Calling => "Calling",
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
    transport: H245Transport,
    link: Link,
    h245_decoder: TpktDecoder,
    control: Control,
    /// The call's media came by Fast Connect.
    fast_connect: bool,
    /// We placed the call (sent the Setup).
    outgoing: bool,
    /// A call out: when it must be answered.
    answer_deadline: Option<Instant>,
    /// A call out: the called side's first message settled tunnelling.
    responded: bool,
    /// A call out: the Fast Connect media the called side accepted.
    accepted: Option<FastConnect>,
    /// Our media addresses (set by `dial` or `answer`).
    local: Option<LocalMedia>,
    /// Our video addresses, when the call takes video ([`CallSignalling::set_video`]).
    video_local: Option<LocalMedia>,
}

impl CallSignalling {
    /// A new connection at `now`; `msd_number` is a random number for
    /// MasterSlaveDetermination (H.245 §C.2: 0..2^24).
    pub fn new(config: Config, now: Instant, msd_number: u32) -> Self {
        let setup_deadline = Some(now + config.setup_timeout);
        let control = Control::new(ControlConfig {
            msd_number,
            audio: config.audio.clone(),
            ..ControlConfig::default()
        });
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
            transport: H245Transport::Listen,
            link: Link::None,
            h245_decoder: TpktDecoder::new(MAX_SIGNALLING_PACKET),
            control,
            fast_connect: false,
            outgoing: false,
            answer_deadline: None,
            responded: false,
            accepted: None,
            local: None,
            video_local: None,
        }
    }

    /// A call out at `now`: the Setup (with our fastStart proposals and
    /// H.245 tunnelling offered) is the first output. Then feed the
    /// connection's bytes as for an incoming call: [`Event::Proceeding`],
    /// [`Event::Alerting`] and [`Event::Connected`] tell how it goes, and
    /// H.245 (tunnelled, or on the separate connection the called side
    /// offers) opens the channels when Fast Connect did not.
    pub fn dial(config: Config, now: Instant, msd_number: u32, dial: &Dial) -> Result<Self, SignallingError> {
        let mut fast_start = Vec::new();
        for (i, codec) in dial.fast_start.iter().enumerate() {
            let lcn = u16::try_from(1 + 2 * i).unwrap_or(1);
            fast_start.extend(media::propose(*codec, lcn, dial.rtp, dial.rtcp)?);
        }
        let bytes = setup(&SetupParams {
            call_reference: dial.call_reference & 0x7fff,
            call_id: dial.call_id,
            dialed: dial.dialed.clone(),
            display: dial.display.clone(),
            calling: dial.calling.clone(),
            fast_start,
            tunnelling: true,
            h245_address: None,
        })?;
        let mut m = Self::new(config, now, msd_number);
        let guid = h225::GloballyUniqueID(FixedOctetString::from(dial.call_id));
        m.outgoing = true;
        m.state = State::Calling;
        m.call_reference = CallReference::new(dial.call_reference & 0x7fff, false);
        m.call_identifier = Some(h225::CallIdentifier::new(guid.clone()));
        m.conference_id = h225::ConferenceIdentifier(guid);
        m.tunnelling = true;
        m.transport = H245Transport::Tunnelled;
        m.link = Link::Tunnelled;
        let local = LocalMedia {
            rtp: dial.rtp,
            rtcp: dial.rtcp,
        };
        m.local = Some(local);
        m.control.set_media(now, local, MediaMode::OpenChannels);
        m.out.push_back(Output::Transmit(bytes));
        Ok(m)
    }

    /// Whether we placed the call.
    pub fn is_outgoing(&self) -> bool {
        self.outgoing
    }

    /// An incoming call rings: Alerting (H.225.0 §7.3.2), e.g. while the
    /// call is put through to another endpoint.
    pub fn alerting(&mut self) -> Result<(), SignallingError> {
        if self.outgoing || self.state != State::Proceeding {
            return Err(SignallingError::WrongState(self.state.name()));
        }
        let body = h225::AlertingUUIE::new(
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
            None,
            None,
            None,
            None,
            None,
            display_name(&self.config.display).map(|d| vec![d]),
        );
        let uuie = user_information(
            h225::H323UUPDUH323MessageBody::alerting(body),
            self.tunnelling,
            Vec::new(),
        );
        self.send(MessageType::Alerting, Vec::new(), &uuie)
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
            State::AwaitSetup | State::Calling => self.setup_deadline,
            State::Connected | State::Proceeding => {
                let mut signalling = self.enquiry_deadline.unwrap_or(self.last_rx + self.config.idle);
                if let Some(a) = self.answer_deadline {
                    signalling = signalling.min(a);
                }
                Some(match self.control.poll_timeout() {
                    Some(c) => c.min(signalling),
                    None => signalling,
                })
            }
            State::Released => None,
        }
    }

    /// Runs the timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Proceeding | State::Connected) {
            self.control.handle_timeout(now);
            self.pump_control();
            self.flush_h245();
        }
        match self.state {
            State::AwaitSetup => {
                if self.setup_deadline.is_some_and(|d| now >= d) {
                    self.state = State::Released;
                    self.out.push_back(Output::Close);
                }
            }
            State::Calling => {
                if self.setup_deadline.is_some_and(|d| now >= d) {
                    // H.225.0 §7.3: no answer to the Setup (T303 expired).
                    self.clear(EndReason::Timeout, Some(102), false);
                }
            }
            State::Proceeding | State::Connected if self.answer_deadline.is_some_and(|d| now >= d) => {
                // Q.931 §5.1.7 (T301): nobody answered.
                self.clear(EndReason::Timeout, Some(19), false);
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
                self.handle_pdu(now, &pdu);
            }
            if self.state == State::Released {
                return;
            }
        }
        self.flush_h245();
    }

    /// Takes H.264 video in this call, received at `local` (the relay's
    /// video endpoint). Call before [`CallSignalling::answer`]: Fast
    /// Connect then accepts the caller's H.264 proposals (never H.263 or
    /// other video), our capabilities announce H.264, the caller's H.264
    /// channel opened by H.245 is acknowledged with `local`, and ours opens
    /// when the caller receives H.264. [`Event::Media`] tells how the video
    /// channels went.
    pub fn set_video(&mut self, now: Instant, local: LocalMedia) {
        self.video_local = Some(local);
        self.control.set_video(now, local);
        self.pump_control();
        self.flush_h245();
    }

    /// Asks the caller for a video key frame (H.245 VideoFastUpdatePicture
    /// on its video channel). Whether one was sent: `false` when no video
    /// channel from the caller is open, or H.245 cannot be sent.
    pub fn video_fast_update(&mut self) -> bool {
        if self.state != State::Connected {
            return false;
        }
        let sent = self.control.request_video_fast_update();
        self.pump_control();
        self.flush_h245();
        sent
    }

    /// Accepts the call: Connect carries the accepted Fast Connect
    /// proposals with our RTP/RTCP receive addresses when
    /// [`Answer::fast_connect`] names a codec, and our H.245 address when
    /// the caller is to connect to us. Our capabilities and master/slave
    /// determination start (tunnelled: in Connect; separate: once the
    /// connection is up), and without Fast Connect the audio channels are
    /// then opened by H.245 ([`Event::Media`] tells how they went).
    /// Returns where the caller receives Fast Connect media.
    pub fn answer(&mut self, now: Instant, answer: &Answer) -> Result<Option<FastConnect>, SignallingError> {
        if self.outgoing || self.state != State::Proceeding {
            return Err(SignallingError::WrongState(self.state.name()));
        }
        let mut video_fc = None;
        let (fc, fast_start) = match answer.fast_connect {
            Some(codec) => {
                let (fc, mut olcs) = self
                    .offer
                    .accept(codec, answer.rtp, answer.rtcp)
                    .ok_or(SignallingError::NoMedia)?;
                // H.264 proposals ride along (H.323 §8.1.7.1: video is
                // session 2); others are left out, which refuses them.
                if let Some((v, video_olcs)) = self.video_local.and_then(|l| self.offer.accept_video(l.rtp, l.rtcp)) {
                    olcs.extend(video_olcs);
                    video_fc = Some(v);
                }
                let fast_start = olcs
                    .iter()
                    .map(|o| asn1::encode(o).map(OctetString::from))
                    .collect::<Result<Vec<_>, _>>()?;
                (Some(fc), Some(fast_start))
            }
            None => (None, None),
        };
        if let Some(v) = video_fc {
            self.control.set_video_fast_connect(v.receive_channel, v.send.is_some());
            if let Some((h264, payload_type)) = v.receive {
                self.out
                    .push_back(Output::Event(Event::Media(MediaEvent::VideoReceiveOpened {
                        h264,
                        payload_type,
                        rtcp: v.peer_rtcp,
                    })));
            }
            if let Some((h264, payload_type)) = v.send {
                self.out
                    .push_back(Output::Event(Event::Media(MediaEvent::VideoTransmitOpened {
                        h264,
                        payload_type,
                        rtp: v.peer_rtp,
                        rtcp: v.peer_rtcp,
                    })));
            }
        }
        let mut h245_address = None;
        let mut connect_to = None;
        match self.transport {
            H245Transport::Tunnelled => {}
            H245Transport::ConnectTo(addr) => connect_to = Some(addr),
            H245Transport::Listen => match answer.h245_listen {
                Some(addr) => h245_address = Some(media::to_h225(addr)),
                None if fc.is_none() => return Err(SignallingError::NoControlChannel),
                None => {}
            },
        }
        if h245_address.is_some() || connect_to.is_some() {
            self.link = Link::Separate {
                connected: false,
                queue: Vec::new(),
            };
        }
        self.fast_connect = fc.is_some();
        let mode = match answer.fast_connect {
            Some(codec) => MediaMode::FastConnect(codec.into()),
            None => MediaMode::OpenChannels,
        };
        let local = LocalMedia {
            rtp: answer.rtp,
            rtcp: answer.rtcp,
        };
        self.local = Some(local);
        self.control.set_media(now, local, mode);
        if matches!(self.link, Link::Tunnelled) {
            self.control.start(now);
        }
        self.pump_control();
        if self.state == State::Released {
            return Err(SignallingError::WrongState(self.state.name()));
        }
        let body = h225::ConnectUUIE::new(
            protocol_identifier(),
            h245_address,
            endpoint_type(),
            self.conference_id.clone(),
            Some(self.call_id()),
            None,
            None,
            None,
            fast_start,
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
        let h245 = std::mem::take(&mut self.pending_h245);
        let uuie = user_information(h225::H323UUPDUH323MessageBody::connect(body), self.tunnelling, h245);
        let ies = vec![Ie::Display(ascii(&self.config.display))];
        self.send(MessageType::Connect, ies, &uuie)?;
        self.state = State::Connected;
        if let Some(addr) = connect_to {
            self.out.push_back(Output::ConnectH245(addr));
        }
        Ok(fc)
    }

    /// The separate H.245 connection is up: what waited is sent, and
    /// capability exchange and master/slave determination start.
    pub fn h245_connected(&mut self, now: Instant) {
        if self.state == State::Released {
            return;
        }
        let Link::Separate { connected, queue } = &mut self.link else {
            return;
        };
        if *connected {
            return;
        }
        *connected = true;
        for bytes in std::mem::take(queue) {
            self.out.push_back(Output::H245(bytes));
        }
        self.control.start(now);
        self.pump_control();
    }

    /// Bytes received on the separate H.245 connection (TPKT, one H.245
    /// PDU per packet).
    pub fn handle_h245_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Released || !matches!(self.link, Link::Separate { connected: true, .. }) {
            return;
        }
        self.h245_decoder.push(bytes);
        loop {
            let pdu = match self.h245_decoder.next_pdu() {
                Ok(Some(p)) => p.to_vec(),
                Ok(None) => break,
                Err(_) => {
                    // Out of step: the H.245 connection is unusable.
                    self.h245_closed(now);
                    return;
                }
            };
            if !pdu.is_empty() {
                self.control.handle_pdu(now, &pdu);
                self.pump_control();
            }
            if self.state == State::Released {
                return;
            }
        }
    }

    /// The separate H.245 connection ended: so does the call (H.323 §8.5:
    /// the control channel lives as long as the call).
    pub fn h245_closed(&mut self, _now: Instant) {
        if !matches!(self.link, Link::Separate { .. }) {
            return;
        }
        self.link = Link::None;
        if self.state != State::Released {
            self.clear(EndReason::Normal, Some(16), false);
            self.mark_released_by_peer();
        }
    }

    /// No separate H.245 connection came about (the caller never connected,
    /// or ours failed): without Fast Connect media the call is cleared.
    pub fn h245_failed(&mut self, _now: Instant) {
        if !matches!(self.link, Link::Separate { connected: false, .. }) {
            return;
        }
        self.link = Link::None;
        if !self.fast_connect && self.state != State::Released {
            self.clear(EndReason::Timeout, Some(102), false);
        }
    }

    /// Ends the call with ReleaseComplete carrying `reason` as a Q.850
    /// cause and an H.225.0 ReleaseCompleteReason, then closes.
    pub fn release(&mut self, reason: EndReason) {
        let (cause, _) = release_cause(reason);
        self.clear(reason, Some(cause), false);
    }

    /// Ends the call as [`CallSignalling::release`] does, with the Q.850
    /// `cause` given (1 to 127) rather than the one `reason` maps to: the
    /// cause another leg of the call was released with, passed on.
    pub fn release_with_cause(&mut self, reason: EndReason, cause: u8) {
        let cause = if (1..=127).contains(&cause) {
            cause
        } else {
            release_cause(reason).0
        };
        self.clear(reason, Some(cause), false);
    }

    fn our_reference(&self) -> CallReference {
        CallReference {
            from_destination: !self.outgoing,
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
            if self.state == State::Connected {
                if let Ok(b) = asn1::encode(&control::end_session_command()) {
                    match &self.link {
                        Link::Tunnelled => h245.push(OctetString::from(b)),
                        Link::Separate { connected: true, .. } => {
                            if let Ok(framed) = frame(&b) {
                                self.out.push_back(Output::H245(framed));
                            }
                        }
                        Link::Separate { connected: false, .. } | Link::None => {}
                    }
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

    fn handle_pdu(&mut self, now: Instant, pdu: &[u8]) {
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
        if msg.message_type == MessageType::Setup && !self.outgoing {
            self.handle_setup(now, &msg);
            return;
        }
        if msg.message_type == MessageType::Setup {
            // A Setup towards the side that called: refused, one call per connection.
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
        // A ReleaseComplete ends the call whatever H.245 it carries (an
        // EndSessionCommand there needs no answer: Q.931 §5.3.4).
        let releasing = msg.message_type == MessageType::ReleaseComplete;
        if let Some(u) = uuie.as_ref().filter(|_| !releasing) {
            if let Some(control) = &u.h323_uu_pdu.h245_control {
                for pdu in control.clone() {
                    self.handle_h245(now, &pdu);
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
            MessageType::CallProceeding
            | MessageType::Alerting
            | MessageType::Progress
            | MessageType::Connect
            | MessageType::Facility
                if self.outgoing =>
            {
                self.callee_message(now, msg.message_type, uuie.as_ref());
            }
            MessageType::Facility if self.state == State::Connected => {
                if let Some(h225::H323UUPDUH323MessageBody::facility(f)) =
                    uuie.as_ref().map(|u| &u.h323_uu_pdu.h323_message_body)
                {
                    if matches!(f.reason, h225::FacilityReason::startH245(())) {
                        let addr = f.h245_address.as_ref().and_then(media::from_h225);
                        self.start_h245(addr);
                    }
                }
            }
            MessageType::StatusEnquiry => self.status(30),
            MessageType::Other(_) => self.status(97),
            _ => {}
        }
    }

    /// STATUS with `cause` and our call state (Q.931 §5.8.10, §4.5.7).
    fn status(&mut self, cause: u8) {
        // Q.931 §4.5.7: active, incoming call proceeding, call initiated,
        // outgoing call proceeding.
        let call_state = match self.state {
            State::Connected => 10,
            State::Calling => 1,
            State::Proceeding if self.outgoing => 3,
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

    fn handle_setup(&mut self, now: Instant, msg: &Message) {
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
        let h245_address = setup.h245_address.as_ref().and_then(media::from_h225);
        self.transport = match h245_address {
            _ if self.tunnelling => H245Transport::Tunnelled,
            Some(addr) => H245Transport::ConnectTo(addr),
            None => H245Transport::Listen,
        };
        if self.tunnelling {
            self.link = Link::Tunnelled;
        }
        let incoming = IncomingCall {
            dialed: dialed(setup, msg),
            caller_name: caller_name(setup, msg),
            calling_number: calling_number(setup, msg),
            offer: self.offer.clone(),
            h245_tunnelling: self.tunnelling,
            h245_address,
            h245: self.transport,
            call_identifier: setup
                .call_identifier
                .as_ref()
                .map(|c| *c.guid.0)
                .filter(|g| g.iter().any(|&b| b != 0)),
            conference_id: *setup.conference_id.0 .0,
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
                self.handle_h245(now, &pdu);
                if self.state == State::Released {
                    return;
                }
            }
        }
    }

    /// Sends an H.245 message on the call's link: tunnelled (with the next
    /// H.225.0 message), or on the separate connection (queued until it is
    /// up). Without a link it is dropped.
    fn send_h245(&mut self, msg: &h245::MultimediaSystemControlMessage) {
        let Ok(bytes) = asn1::encode(msg) else {
            return;
        };
        match &mut self.link {
            Link::Tunnelled => self.pending_h245.push(OctetString::from(bytes)),
            Link::Separate { connected, queue } => {
                if let Ok(framed) = frame(&bytes) {
                    if *connected {
                        self.out.push_back(Output::H245(framed));
                    } else {
                        queue.push(framed);
                    }
                }
            }
            Link::None => {}
        }
    }

    /// A call out: the called side's Call Proceeding, Alerting, Progress,
    /// Connect or Facility.
    fn callee_message(&mut self, now: Instant, mt: MessageType, uuie: Option<&h225::H323UserInformation>) {
        use h225::H323UUPDUH323MessageBody as B;
        let Some(u) = uuie else {
            return;
        };
        if !self.responded && mt != MessageType::Facility {
            // H.323 §8.2.1: tunnelling holds only if the first answer keeps it.
            self.responded = true;
            if u.h323_uu_pdu.h245_tunneling != Some(true) {
                self.tunnelling = false;
                self.pending_h245.clear();
                if matches!(self.link, Link::Tunnelled) {
                    self.link = Link::None;
                }
            }
        }
        let (fast_start, h245_address) = match &u.h323_uu_pdu.h323_message_body {
            B::callProceeding(b) => (b.fast_start.as_deref(), b.h245_address.as_ref()),
            B::alerting(b) => (b.fast_start.as_deref(), b.h245_address.as_ref()),
            B::progress(b) => (b.fast_start.as_deref(), b.h245_address.as_ref()),
            B::connect(b) => (b.fast_start.as_deref(), b.h245_address.as_ref()),
            B::facility(f) if matches!(f.reason, h225::FacilityReason::startH245(())) => {
                (None, f.h245_address.as_ref())
            }
            _ => (None, None),
        };
        if let (Some(fs), None) = (fast_start, &self.accepted) {
            if let Some(fc) = media::fast_connect_accepted(fs) {
                if let Some(local) = self.local {
                    self.control
                        .set_media(now, local, MediaMode::FastConnect(fc.codec.into()));
                }
                self.fast_connect = true;
                self.accepted = Some(fc);
            }
        }
        if !self.tunnelling {
            let addr = h245_address.and_then(media::from_h225);
            self.start_h245(addr);
        }
        match mt {
            MessageType::CallProceeding | MessageType::Progress | MessageType::Alerting
                if matches!(self.state, State::Calling | State::Proceeding) =>
            {
                if self.state == State::Calling {
                    self.state = State::Proceeding;
                    self.setup_deadline = None;
                    self.answer_deadline = Some(now + self.config.answer_timeout);
                }
                let e = if mt == MessageType::Alerting {
                    Event::Alerting
                } else {
                    Event::Proceeding
                };
                self.out.push_back(Output::Event(e));
            }
            MessageType::Connect if matches!(self.state, State::Calling | State::Proceeding) => {
                self.state = State::Connected;
                self.setup_deadline = None;
                self.answer_deadline = None;
                self.out
                    .push_back(Output::Event(Event::Connected(self.accepted.clone())));
                if matches!(self.link, Link::Tunnelled) {
                    self.control.start(now);
                    self.pump_control();
                }
            }
            _ => {}
        }
    }

    /// The caller asks for a separate H.245 connection to `addr` (Facility
    /// `startH245`, H.323 §8.2.3), e.g. after Fast Connect when it did not
    /// take the address we offered: connect, unless H.245 already runs.
    fn start_h245(&mut self, addr: Option<SocketAddr>) {
        let Some(addr) = addr else {
            return;
        };
        match &self.link {
            Link::Tunnelled | Link::Separate { connected: true, .. } => {}
            Link::None | Link::Separate { connected: false, .. } => {
                let queue = match std::mem::replace(&mut self.link, Link::None) {
                    Link::Separate { queue, .. } => queue,
                    _ => Vec::new(),
                };
                self.link = Link::Separate {
                    connected: false,
                    queue,
                };
                self.transport = H245Transport::ConnectTo(addr);
                self.out.push_back(Output::ConnectH245(addr));
            }
        }
    }

    /// Carries out what the H.245 control protocol said.
    fn pump_control(&mut self) {
        while let Some(o) = self.control.poll_output() {
            if self.state == State::Released {
                continue;
            }
            match o {
                control::Output::Send(msg) => self.send_h245(&msg),
                control::Output::Event(ControlEvent::Dtmf(d)) => self.out.push_back(Output::Event(Event::Dtmf(d))),
                control::Output::Event(ControlEvent::Media(m)) => self.out.push_back(Output::Event(Event::Media(m))),
                control::Output::Event(ControlEvent::EndSession) => {
                    // H.323 §8.5: answer with our own EndSessionCommand, then ReleaseComplete.
                    self.clear(EndReason::Normal, Some(16), false);
                    self.mark_released_by_peer();
                }
            }
        }
    }

    /// The call was released by us on the peer's behalf (EndSessionCommand,
    /// the H.245 connection closed): report it as the peer's doing.
    fn mark_released_by_peer(&mut self) {
        if let Some(Output::Event(Event::Released(r))) = self
            .out
            .iter_mut()
            .rev()
            .find(|o| matches!(o, Output::Event(Event::Released(_))))
        {
            r.by_peer = true;
        }
    }

    /// Sends what tunnelled H.245 is waiting in a Facility (H.323 §8.2.1),
    /// once the call is connected (before, it rides in Connect).
    fn flush_h245(&mut self) {
        let open = self.state == State::Connected || (self.outgoing && self.state == State::Proceeding);
        if self.pending_h245.is_empty() || !self.tunnelling || !open {
            return;
        }
        let h245 = std::mem::take(&mut self.pending_h245);
        let body = transported_information(Some(self.conference_id.clone()), Some(self.call_id()));
        let uuie = user_information(h225::H323UUPDUH323MessageBody::facility(body), true, h245);
        let _ = self.send(MessageType::Facility, Vec::new(), &uuie);
    }

    fn handle_h245(&mut self, now: Instant, pdu: &[u8]) {
        self.control.handle_pdu(now, pdu);
        self.pump_control();
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
    /// The destination alias: dialedDigits when all digits, else h323-ID;
    /// empty: no destinationAddress.
    pub dialed: String,
    /// The caller's display name.
    pub display: String,
    /// The caller's alias (sourceAddress: dialedDigits when all digits,
    /// else h323-ID), if any.
    pub calling: Option<String>,
    /// fastStart proposals ([`media::propose`]).
    pub fast_start: Vec<OctetString>,
    /// Offer H.245 tunnelling.
    pub tunnelling: bool,
    /// Our separate H.245 address (the called side connects to it).
    pub h245_address: Option<SocketAddr>,
}

/// A TPKT-framed Setup.
pub fn setup(p: &SetupParams) -> Result<Vec<u8>, SignallingError> {
    let destination = if p.dialed.is_empty() {
        None
    } else {
        Some(vec![alias_address(&p.dialed)?])
    };
    let source = match p.calling.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(vec![alias_address(c)?]),
        None => None,
    };
    let guid = h225::GloballyUniqueID(FixedOctetString::from(p.call_id));
    let mut body = h225::SetupUUIE::new(
        protocol_identifier(),
        None,
        None,
        endpoint_terminal(),
        destination,
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
    body.source_address = source;
    body.h245_address = p.h245_address.map(media::to_h225);
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

/// An alias as an AliasAddress: dialedDigits when it is all digits (and
/// `*`, `#`), else an h323-ID.
fn alias_address(alias: &str) -> Result<h225::AliasAddress, SignallingError> {
    if !alias.is_empty() && alias.bytes().all(|b| b.is_ascii_digit() || b == b'#' || b == b'*') {
        Ok(h225::AliasAddress::dialedDigits(
            Ia5String::try_from(alias.to_string()).map_err(|e| PerError::Encode(e.to_string()))?,
        ))
    } else {
        Ok(h225::AliasAddress::h323_ID(
            bmp(alias).ok_or_else(|| PerError::Encode("alias not in the BMP".into()))?,
        ))
    }
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
    facility_h245_raw(call_reference, call_id, control)
}

/// A Facility carrying the already encoded H.245 `pdus` in its
/// h245Control, framed (either side).
pub fn facility_h245_raw(
    call_reference: CallReference,
    call_id: Option<h225::CallIdentifier>,
    pdus: Vec<OctetString>,
) -> Result<Vec<u8>, SignallingError> {
    let body = transported_information(None, call_id);
    let uuie = user_information(h225::H323UUPDUH323MessageBody::facility(body), true, pdus);
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
                other => panic!("unexpected {other:?}"),
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
    fn fast_connect_h264_video_and_fast_update_on_the_callers_channel() {
        use crate::control::MediaEvent;
        use crate::media::H264;
        let rtp: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        let rtcp: SocketAddr = "192.0.2.1:5005".parse().unwrap();
        let vrtp: SocketAddr = "192.0.2.1:5006".parse().unwrap();
        let vrtcp: SocketAddr = "192.0.2.1:5007".parse().unwrap();
        let mut fast_start = media::propose(G711::Ulaw, 1, rtp, rtcp).unwrap();
        fast_start.extend(media::propose_video(&H264::CONSTRAINED_BASELINE, 109, 5, vrtp, vrtcp).unwrap());
        let bytes = setup(&SetupParams {
            call_reference: 78,
            call_id: [8; 16],
            dialed: "7001".into(),
            display: "Room 2".into(),
            calling: None,
            fast_start,
            tunnelling: true,
            h245_address: None,
        })
        .unwrap();
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &bytes);
        let (_, events, _) = drain(&mut m);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!((inc.offer.video.len(), inc.offer.video_refused), (2, 0));
        // No key frame can be asked before the call is answered.
        assert!(!m.video_fast_update());
        let video = LocalMedia {
            rtp: "198.51.100.1:20002".parse().unwrap(),
            rtcp: "198.51.100.1:20003".parse().unwrap(),
        };
        m.set_video(now, video);
        m.answer(
            now,
            &Answer {
                rtp: "198.51.100.1:20000".parse().unwrap(),
                rtcp: "198.51.100.1:20001".parse().unwrap(),
                fast_connect: Some(G711::Ulaw),
                h245_listen: None,
            },
        )
        .unwrap();
        let (sent, events, _) = drain(&mut m);
        assert_eq!(
            events,
            vec![
                Event::Media(MediaEvent::VideoReceiveOpened {
                    h264: H264::CONSTRAINED_BASELINE,
                    payload_type: 109,
                    rtcp: Some(vrtcp),
                }),
                Event::Media(MediaEvent::VideoTransmitOpened {
                    h264: H264::CONSTRAINED_BASELINE,
                    payload_type: 109,
                    rtp: Some(vrtp),
                    rtcp: Some(vrtcp),
                }),
            ]
        );
        let (connect, uuie) = &sent[0];
        assert_eq!(connect.message_type, MessageType::Connect);
        let uuie = uuie.as_ref().unwrap();
        let h225::H323UUPDUH323MessageBody::connect(c) = &uuie.h323_uu_pdu.h323_message_body else {
            panic!()
        };
        let accepted = c.fast_start.as_deref().unwrap();
        assert_eq!(accepted.len(), 4);
        assert_eq!(
            media::accepted_video(accepted),
            Some((H264::CONSTRAINED_BASELINE, video.rtp))
        );
        // Our capabilities (with H.264) ride in Connect; Fast Connect opened
        // the video, so H.245 opens no video channel of ours.
        let tcs = h245_of(uuie)
            .into_iter()
            .find_map(|msg| match msg {
                h245::MultimediaSystemControlMessage::request(h245::RequestMessage::terminalCapabilitySet(t)) => {
                    Some(t)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(media::receive_h264(&tcs), Some(H264::CONSTRAINED_BASELINE));
        // A key frame request goes, tunnelled in a Facility, on the caller's channel 5.
        assert!(m.video_fast_update());
        let (sent, _, _) = drain(&mut m);
        let [(fac, Some(u))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(fac.message_type, MessageType::Facility);
        assert_eq!(h245_of(u), vec![control::video_fast_update(5)]);
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
            calling: None,
            fast_start: media::propose(G711::Ulaw, 1, rtp, rtcp).unwrap(),
            tunnelling: true,
            h245_address: None,
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
        assert_eq!(inc.h245, H245Transport::Tunnelled);
        let ours: SocketAddr = "198.51.100.1:20000".parse().unwrap();
        let answer = |codec| Answer {
            rtp: ours,
            rtcp: "198.51.100.1:20001".parse().unwrap(),
            fast_connect: Some(codec),
            h245_listen: None,
        };
        assert!(matches!(
            m.answer(now, &answer(G711::Alaw)),
            Err(SignallingError::NoMedia)
        ));
        let fc = m.answer(now, &answer(G711::Ulaw)).unwrap().unwrap();
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
        // Our TCS and MSD ride in Connect.
        assert_eq!(uuie.h323_uu_pdu.h245_control.as_ref().map(Vec::len), Some(2));

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
    fn release_complete_with_end_session_is_not_answered() {
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &no_fast_start(true, None));
        drain(&mut m);
        m.answer(now, &answer_h245(None)).unwrap();
        drain(&mut m);
        let end = asn1::encode(&control::end_session_command()).unwrap();
        let rc = release_complete(
            CallReference::new(9, false),
            16,
            None,
            None,
            true,
            vec![OctetString::from(end)],
        )
        .unwrap();
        m.handle_input(now, &rc);
        let (sent, events, closed) = drain(&mut m);
        assert!(sent.is_empty(), "{sent:?}");
        assert!(closed);
        assert!(matches!(
            &events[..],
            [Event::Released(Released {
                by_peer: true,
                cause: Some(16),
                ..
            })]
        ));
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

    fn h245_of(uuie: &h225::H323UserInformation) -> Vec<h245::MultimediaSystemControlMessage> {
        uuie.h323_uu_pdu
            .h245_control
            .iter()
            .flatten()
            .map(|b| asn1::decode_h245(b).unwrap())
            .collect()
    }

    fn h245_frames(m: &mut CallSignalling) -> (Vec<h245::MultimediaSystemControlMessage>, Sent, Vec<Event>, bool) {
        let (mut h, mut sent, mut events, mut closed) = (Vec::new(), Vec::new(), Vec::new(), false);
        while let Some(o) = m.poll_output() {
            match o {
                Output::H245(b) => {
                    let mut d = TpktDecoder::new(65_535);
                    d.push(&b);
                    while let Some(p) = d.next_pdu().unwrap() {
                        h.push(asn1::decode_h245(p).unwrap());
                    }
                }
                Output::Transmit(b) => {
                    let mut d = TpktDecoder::new(65_535);
                    d.push(&b);
                    while let Some(p) = d.next_pdu().unwrap() {
                        sent.push(decode_signalling(p).unwrap());
                    }
                }
                Output::Event(e) => events.push(e),
                Output::Close => closed = true,
                Output::ConnectH245(a) => panic!("unexpected connect to {a}"),
            }
        }
        (h, sent, events, closed)
    }

    fn tpkt(msg: &h245::MultimediaSystemControlMessage) -> Vec<u8> {
        frame(&asn1::encode(msg).unwrap()).unwrap()
    }

    fn no_fast_start(tunnelling: bool, h245_address: Option<SocketAddr>) -> Vec<u8> {
        setup(&SetupParams {
            call_reference: 9,
            call_id: [3; 16],
            dialed: "7001".into(),
            display: "Room".into(),
            calling: None,
            fast_start: Vec::new(),
            tunnelling,
            h245_address,
        })
        .unwrap()
    }

    fn answer_h245(listen: Option<SocketAddr>) -> Answer {
        Answer {
            rtp: "198.51.100.1:20000".parse().unwrap(),
            rtcp: "198.51.100.1:20001".parse().unwrap(),
            fast_connect: None,
            h245_listen: listen,
        }
    }

    #[test]
    fn tunnelled_h245_opens_channels_without_fast_start() {
        use h245::MultimediaSystemControlMessage as M;
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &no_fast_start(true, None));
        let (_, events, _) = drain(&mut m);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(!inc.offer.fast_start);
        assert_eq!(inc.h245, H245Transport::Tunnelled);
        assert_eq!(m.answer(now, &answer_h245(None)).unwrap(), None);
        let (sent, _, _) = drain(&mut m);
        let (connect, uuie) = &sent[0];
        assert_eq!(connect.message_type, MessageType::Connect);
        let uuie = uuie.as_ref().unwrap();
        let h225::H323UUPDUH323MessageBody::connect(c) = &uuie.h323_uu_pdu.h323_message_body else {
            panic!()
        };
        assert!(c.fast_start.is_none() && c.h245_address.is_none());
        assert!(matches!(
            &h245_of(uuie)[..],
            [
                M::request(h245::RequestMessage::terminalCapabilitySet(_)),
                M::request(h245::RequestMessage::masterSlaveDetermination(_))
            ]
        ));

        // The caller: its capabilities, determination, and its channel, in one Facility.
        let peer_rtcp: SocketAddr = "192.0.2.7:7001".parse().unwrap();
        let caller = [
            media::terminal_capability_set(1, &[AudioCodec::Pcmu]),
            control::master_slave_determination(50, 99),
            M::response(h245::ResponseMessage::masterSlaveDeterminationAck(
                h245::MasterSlaveDeterminationAck::new(h245::MasterSlaveDeterminationAckDecision::master(())),
            )),
            M::request(h245::RequestMessage::openLogicalChannel(control::open_logical_channel(
                11,
                AudioCodec::Pcmu,
                peer_rtcp,
            ))),
        ];
        let fac = facility_h245(CallReference::new(9, false), None, &caller).unwrap();
        m.handle_input(now, &fac);
        let (sent, events, _) = drain(&mut m);
        assert_eq!(
            events,
            vec![Event::Media(MediaEvent::ReceiveOpened {
                codec: AudioCodec::Pcmu,
                rtcp: Some(peer_rtcp)
            })]
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0.message_type, MessageType::Facility);
        let answers = h245_of(sent[0].1.as_ref().unwrap());
        assert!(
            matches!(
                &answers[..],
                [
                    M::response(h245::ResponseMessage::terminalCapabilitySetAck(_)),
                    M::response(h245::ResponseMessage::masterSlaveDeterminationAck(_)),
                    M::response(h245::ResponseMessage::openLogicalChannelAck(_)),
                    M::request(h245::RequestMessage::openLogicalChannel(_)),
                ]
            ),
            "{answers:?}"
        );
        let M::request(h245::RequestMessage::openLogicalChannel(ours)) = &answers[3] else {
            unreachable!()
        };
        let peer_rtp: SocketAddr = "192.0.2.7:7000".parse().unwrap();
        let ack = M::response(h245::ResponseMessage::openLogicalChannelAck(
            control::open_logical_channel_ack(
                ours.forward_logical_channel_number.0,
                1,
                LocalMedia {
                    rtp: peer_rtp,
                    rtcp: peer_rtcp,
                },
            ),
        ));
        m.handle_input(now, &facility_h245(CallReference::new(9, false), None, &[ack]).unwrap());
        let (sent, events, _) = drain(&mut m);
        assert!(sent.is_empty());
        assert_eq!(
            events,
            vec![Event::Media(MediaEvent::TransmitOpened {
                codec: AudioCodec::Pcmu,
                rtp: Some(peer_rtp),
                rtcp: Some(peer_rtcp)
            })]
        );
        // The caller ends the session: ours, then ReleaseComplete.
        let end = facility_h245(CallReference::new(9, false), None, &[control::end_session_command()]).unwrap();
        m.handle_input(now, &end);
        let (sent, events, closed) = drain(&mut m);
        assert!(closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert!(matches!(
            &h245_of(sent[0].1.as_ref().unwrap())[..],
            [M::command(h245::CommandMessage::endSessionCommand(_))]
        ));
        assert!(matches!(&events[..], [Event::Released(Released { by_peer: true, .. })]));
    }

    #[test]
    fn separate_h245_to_the_callers_address() {
        use h245::MultimediaSystemControlMessage as M;
        let now = Instant::now();
        let theirs: SocketAddr = "192.0.2.7:1800".parse().unwrap();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &no_fast_start(false, Some(theirs)));
        let (_, events, _) = drain(&mut m);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(inc.h245, H245Transport::ConnectTo(theirs));
        m.answer(now, &answer_h245(None)).unwrap();
        let mut outputs = Vec::new();
        while let Some(o) = m.poll_output() {
            outputs.push(o);
        }
        // Connect (nothing tunnelled, no address of ours), then connect to theirs.
        let [Output::Transmit(connect), Output::ConnectH245(a)] = &outputs[..] else {
            panic!("{outputs:?}")
        };
        assert_eq!(*a, theirs);
        let (msg, uuie) = decode_signalling(&connect[tpkt::HEADER_LEN..]).unwrap();
        assert_eq!(msg.message_type, MessageType::Connect);
        let uuie = uuie.unwrap();
        assert!(h245_of(&uuie).is_empty());
        assert_eq!(uuie.h323_uu_pdu.h245_tunneling, Some(false));
        // Bytes before the connection is up are ignored.
        m.handle_h245_input(now, &tpkt(&control::end_session_command()));
        assert!(m.poll_output().is_none());
        m.h245_connected(now);
        let (h, sent, _, _) = h245_frames(&mut m);
        assert!(sent.is_empty());
        assert!(matches!(
            &h[..],
            [
                M::request(h245::RequestMessage::terminalCapabilitySet(_)),
                M::request(h245::RequestMessage::masterSlaveDetermination(_))
            ]
        ));
        // The caller's TCS, one byte at a time.
        for b in tpkt(&media::terminal_capability_set(1, &[AudioCodec::Pcma])) {
            m.handle_h245_input(now, &[b]);
        }
        let (h, _, _, _) = h245_frames(&mut m);
        assert!(matches!(
            &h[..],
            [M::response(h245::ResponseMessage::terminalCapabilitySetAck(_))]
        ));
        // EndSessionCommand on the H.245 connection.
        m.handle_h245_input(now, &tpkt(&control::end_session_command()));
        let (h, sent, events, closed) = h245_frames(&mut m);
        assert!(matches!(
            &h[..],
            [M::command(h245::CommandMessage::endSessionCommand(_))]
        ));
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert!(closed);
        assert!(matches!(&events[..], [Event::Released(Released { by_peer: true, .. })]));
    }

    #[test]
    fn separate_h245_to_our_listener() {
        let now = Instant::now();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &no_fast_start(false, None));
        let (_, events, _) = drain(&mut m);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(inc.h245, H245Transport::Listen);
        // No Fast Connect and nowhere to listen: no media possible.
        assert!(matches!(
            m.answer(now, &answer_h245(None)),
            Err(SignallingError::NoControlChannel)
        ));
        let ours: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        m.answer(now, &answer_h245(Some(ours))).unwrap();
        let (sent, _, _) = drain(&mut m);
        let h225::H323UUPDUH323MessageBody::connect(c) = &sent[0].1.as_ref().unwrap().h323_uu_pdu.h323_message_body
        else {
            panic!()
        };
        assert_eq!(c.h245_address.as_ref().and_then(media::from_h225), Some(ours));
        // The caller never connects: the call is cleared.
        m.h245_failed(now);
        let (sent, events, closed) = drain(&mut m);
        assert!(closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(102));
        assert!(matches!(
            &events[..],
            [Event::Released(Released {
                by_peer: false,
                reason: EndReason::Timeout,
                ..
            })]
        ));

        // Connected, then the caller closes the H.245 connection: the call ends.
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &no_fast_start(false, None));
        drain(&mut m);
        m.answer(now, &answer_h245(Some(ours))).unwrap();
        drain(&mut m);
        m.h245_connected(now);
        h245_frames(&mut m);
        m.h245_closed(now);
        let (h, sent, events, closed) = h245_frames(&mut m);
        // Nothing more on the closed connection.
        assert!(h.is_empty());
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert!(closed);
        assert!(matches!(&events[..], [Event::Released(Released { by_peer: true, .. })]));
    }

    #[test]
    fn facility_start_h245_after_fast_connect() {
        let now = Instant::now();
        let rtp: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        let bytes = setup(&SetupParams {
            call_reference: 77,
            call_id: [9; 16],
            dialed: "7001".into(),
            display: "Room".into(),
            calling: None,
            fast_start: media::propose(G711::Ulaw, 1, rtp, rtp).unwrap(),
            tunnelling: false,
            h245_address: None,
        })
        .unwrap();
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &bytes);
        drain(&mut m);
        let mut a = answer_h245(Some("127.0.0.1:40001".parse().unwrap()));
        a.fast_connect = Some(G711::Ulaw);
        assert!(m.answer(now, &a).unwrap().is_some());
        drain(&mut m);
        // The caller ignores our address and asks us to connect to its own.
        let theirs: SocketAddr = "192.0.2.1:1800".parse().unwrap();
        let mut body = transported_information(None, None);
        body.reason = h225::FacilityReason::startH245(());
        body.h245_address = Some(media::to_h225(theirs));
        let uuie = user_information(h225::H323UUPDUH323MessageBody::facility(body), false, Vec::new());
        let fac = signalling_message(MessageType::Facility, CallReference::new(77, false), Vec::new(), &uuie).unwrap();
        m.handle_input(now, &fac);
        let out: Vec<Output> = std::iter::from_fn(|| m.poll_output()).collect();
        assert!(matches!(&out[..], [Output::ConnectH245(a)] if *a == theirs), "{out:?}");
        // The driver connects (its listener is dropped).
        m.h245_connected(now);
        let (h, _, _, closed) = h245_frames(&mut m);
        assert!(!closed);
        assert_eq!(h.len(), 2, "TCS and MSD on the new connection: {h:?}");
        // Asked again once H.245 runs: nothing more.
        m.handle_input(now, &fac);
        assert!(m.poll_output().is_none());

        // Had the connection failed, the Fast Connect call would go on.
        let mut m = CallSignalling::new(Config::default(), now, 7);
        m.handle_input(now, &bytes);
        drain(&mut m);
        m.answer(now, &a).unwrap();
        drain(&mut m);
        m.handle_input(now, &fac);
        m.poll_output();
        m.h245_failed(now);
        assert!(m.poll_output().is_none());
        assert!(!m.is_released());
    }

    /// Moves what each machine transmits to the other until both are
    /// quiet; returns each one's events.
    fn converse(now: Instant, a: &mut CallSignalling, b: &mut CallSignalling) -> (Vec<Event>, Vec<Event>) {
        fn one_way(now: Instant, from: &mut CallSignalling, to: &mut CallSignalling, events: &mut Vec<Event>) -> bool {
            let mut moved = false;
            while let Some(o) = from.poll_output() {
                match o {
                    Output::Transmit(bytes) => {
                        moved = true;
                        to.handle_input(now, &bytes);
                    }
                    Output::Event(e) => events.push(e),
                    _ => {}
                }
            }
            moved
        }
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        loop {
            let ab = one_way(now, a, b, &mut ea);
            let ba = one_way(now, b, a, &mut eb);
            if !ab && !ba {
                return (ea, eb);
            }
        }
    }

    fn dial_params(fast_start: Vec<G711>) -> Dial {
        Dial {
            call_reference: 0x0444,
            call_id: [0x44; 16],
            dialed: "room-7".into(),
            display: "confgate".into(),
            calling: Some("alice".into()),
            rtp: "198.51.100.9:30000".parse().unwrap(),
            rtcp: "198.51.100.9:30001".parse().unwrap(),
            fast_start,
        }
    }

    #[test]
    fn a_call_out_with_fast_connect_to_our_own_called_side() {
        let now = Instant::now();
        let mut caller =
            CallSignalling::dial(Config::default(), now, 1, &dial_params(vec![G711::Alaw, G711::Ulaw])).unwrap();
        assert!(caller.is_outgoing());
        let mut callee = CallSignalling::new(Config::default(), now, 2);
        let (caller_events, events) = converse(now, &mut caller, &mut callee);
        assert_eq!(caller_events, vec![Event::Proceeding]);
        let [Event::Incoming(inc)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(inc.dialed, "room-7");
        assert_eq!(inc.calling_number, None);
        assert_eq!(inc.caller_name.as_deref(), Some("confgate"));
        assert_eq!(inc.call_identifier, Some([0x44; 16]));
        assert_eq!(inc.conference_id, [0x44; 16]);
        assert_eq!(inc.offer.codecs(), vec![G711::Alaw, G711::Ulaw]);
        assert_eq!(inc.h245, H245Transport::Tunnelled);
        callee.alerting().unwrap();
        let (events, _) = converse(now, &mut caller, &mut callee);
        assert_eq!(events, vec![Event::Alerting]);
        let callee_rtp: SocketAddr = "192.0.2.50:6000".parse().unwrap();
        let fc = callee
            .answer(
                now,
                &Answer {
                    rtp: callee_rtp,
                    rtcp: "192.0.2.50:6001".parse().unwrap(),
                    fast_connect: Some(G711::Alaw),
                    h245_listen: None,
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(fc.peer_rtp, Some(dial_params(vec![]).rtp));
        let (events, _) = converse(now, &mut caller, &mut callee);
        assert_eq!(
            events,
            vec![Event::Connected(Some(FastConnect {
                codec: G711::Alaw,
                peer_rtp: Some(callee_rtp),
                peer_rtcp: Some("192.0.2.50:6001".parse().unwrap()),
            }))]
        );
        // Tunnelled H.245 settled both ways; between two MCUs the numbers decide.
        assert_eq!(caller.control.is_master(), Some(true));
        assert_eq!(callee.control.is_master(), Some(false));
        // The called side hangs up.
        callee.release(EndReason::Busy);
        let (events, _) = converse(now, &mut caller, &mut callee);
        assert!(matches!(
            &events[..],
            [Event::Released(Released {
                by_peer: true,
                reason: EndReason::Busy,
                cause: Some(17)
            })]
        ));
        assert!(caller.is_released());
    }

    #[test]
    fn a_call_out_without_fast_connect_opens_channels_by_h245() {
        let now = Instant::now();
        let mut caller = CallSignalling::dial(Config::default(), now, 1, &dial_params(Vec::new())).unwrap();
        let mut callee = CallSignalling::new(Config::default(), now, 0x80_0001);
        converse(now, &mut caller, &mut callee);
        let callee_rtp: SocketAddr = "192.0.2.50:6000".parse().unwrap();
        assert_eq!(callee.answer(now, &answer_h245(None)).unwrap(), None);
        let mut caller_events = converse(now, &mut caller, &mut callee).0;
        let later = now + Duration::from_secs(1);
        caller.handle_timeout(later);
        callee.handle_timeout(later);
        let (more_caller, callee_events) = converse(later, &mut caller, &mut callee);
        caller_events.extend(more_caller);
        let ours = dial_params(Vec::new());
        assert!(caller_events.contains(&Event::Connected(None)), "{caller_events:?}");
        assert!(
            caller_events.iter().any(|e| matches!(e,
                Event::Media(MediaEvent::TransmitOpened { rtp: Some(r), .. }) if *r == answer_h245(None).rtp)),
            "{caller_events:?}"
        );
        assert!(
            callee_events.iter().any(|e| matches!(e,
                Event::Media(MediaEvent::TransmitOpened { rtp: Some(r), .. }) if *r == ours.rtp)),
            "{callee_events:?}"
        );
        let _ = callee_rtp;
        // Both directions in one codec.
        let codec = |events: &[Event]| {
            events.iter().find_map(|e| match e {
                Event::Media(MediaEvent::TransmitOpened { codec, .. }) => Some(*codec),
                _ => None,
            })
        };
        assert_eq!(codec(&caller_events), codec(&callee_events));
        // We hang up: EndSessionCommand tunnelled in our ReleaseComplete.
        caller.release(EndReason::Normal);
        let (_, events) = converse(later, &mut caller, &mut callee);
        assert!(matches!(&events[..], [Event::Released(Released { by_peer: true, .. })]));
    }

    #[test]
    fn a_call_out_that_nobody_answers_is_released() {
        let now = Instant::now();
        // No answer to the Setup at all.
        let mut caller = CallSignalling::dial(Config::default(), now, 1, &dial_params(vec![G711::Ulaw])).unwrap();
        let (sent, _, _) = drain(&mut caller);
        assert_eq!(sent[0].0.message_type, MessageType::Setup);
        assert_eq!(sent[0].0.call_reference, CallReference::new(0x0444, false));
        let t = caller.poll_timeout().unwrap();
        assert_eq!(t, now + Config::default().setup_timeout);
        caller.handle_timeout(t);
        let (sent, events, closed) = drain(&mut caller);
        assert!(closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(102));
        assert!(matches!(
            &events[..],
            [Event::Released(Released {
                by_peer: false,
                reason: EndReason::Timeout,
                ..
            })]
        ));

        // It rings, and nobody picks up.
        let mut caller = CallSignalling::dial(Config::default(), now, 1, &dial_params(vec![G711::Ulaw])).unwrap();
        let mut callee = CallSignalling::new(Config::default(), now, 2);
        converse(now, &mut caller, &mut callee);
        callee.alerting().unwrap();
        converse(now, &mut caller, &mut callee);
        let t = caller.poll_timeout().unwrap();
        assert_eq!(t, now + Config::default().answer_timeout);
        caller.handle_timeout(t);
        let (sent, _, closed) = drain(&mut caller);
        assert!(closed);
        assert_eq!(sent[0].0.cause().map(|c| c.value), Some(19));
    }

    #[test]
    fn a_call_out_to_a_side_that_does_not_tunnel_uses_its_h245_address() {
        let now = Instant::now();
        let mut caller = CallSignalling::dial(Config::default(), now, 1, &dial_params(Vec::new())).unwrap();
        drain(&mut caller);
        let theirs: SocketAddr = "192.0.2.60:1800".parse().unwrap();
        let mut connect = h225::ConnectUUIE::new(
            protocol_identifier(),
            Some(media::to_h225(theirs)),
            endpoint_type(),
            h225::ConferenceIdentifier(h225::GloballyUniqueID(FixedOctetString::from([0x44; 16]))),
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
            None,
            None,
            None,
        );
        connect.call_identifier = Some(h225::CallIdentifier::new(h225::GloballyUniqueID(
            FixedOctetString::from([0x44; 16]),
        )));
        let uuie = user_information(h225::H323UUPDUH323MessageBody::connect(connect), false, Vec::new());
        let bytes = signalling_message(
            MessageType::Connect,
            CallReference::new(0x0444, true),
            Vec::new(),
            &uuie,
        )
        .unwrap();
        caller.handle_input(now, &bytes);
        let out: Vec<Output> = std::iter::from_fn(|| caller.poll_output()).collect();
        assert!(
            matches!(&out[..], [Output::ConnectH245(a), Output::Event(Event::Connected(None))] if *a == theirs),
            "{out:?}"
        );
        caller.h245_connected(now);
        let (h, _, _, _) = h245_frames(&mut caller);
        assert_eq!(h.len(), 2, "TCS and MSD: {h:?}");
        // A Setup towards us on this connection is refused.
        caller.handle_input(now, &no_fast_start(true, None));
        let (_, sent, _, closed) = h245_frames(&mut caller);
        assert!(!closed);
        assert_eq!(sent[0].0.message_type, MessageType::ReleaseComplete);
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
