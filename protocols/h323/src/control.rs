//! The H.245 control protocol of one call (ITU-T H.245 procedures as
//! H.323 §8.2 and §8.4 use them), whatever carries its messages: tunnelled
//! in the H.225.0 messages or on a separate TCP connection
//! ([`crate::signalling`] decides and frames).
//!
//! ```text
//!  start ──► TerminalCapabilitySet ─────────────► Ack ─┐
//!        └─► MasterSlaveDetermination ─► Ack ⇄ Ack ────┤ peer's TCS acked,
//!                                                      ▼ status determined
//!            OpenLogicalChannel (our audio) ──────► Ack: the peer's RTP address
//!  peer's OpenLogicalChannel (its audio) ◄──── we Ack with the relay's addresses
//! ```
//!
//! Sans-IO: feed each received PDU with [`Control::handle_pdu`] and the
//! clock with [`Control::handle_timeout`]; after every input drain
//! [`Control::poll_output`] (messages to send and [`ControlEvent`]s) until
//! it returns `None`, and sleep until [`Control::poll_timeout`].
//!
//! Rules kept here:
//! - Capability exchange (H.245 §8.2): our set lists the receive codecs of
//!   [`ControlConfig::audio`] and user input; every TerminalCapabilitySet
//!   of the peer is acknowledged, an empty one (H.323 §8.4.6, a pause)
//!   closes our transmit channel until the next non-empty one.
//! - Master/slave determination (H.245 §8.3, §C.2): confgate is an MCU
//!   (terminal type 240 by default); the status determination numbers
//!   decide a tie; identical numbers are rejected and retried with a new
//!   number, at most [`MSD_RETRIES`] times.
//! - Logical channels (H.245 §8.4): one audio channel each way. Ours opens
//!   once the peer's capabilities are known and the status determined,
//!   with the codec the peer already sends us when it can receive it (after
//!   [`ControlConfig::open_grace`] without the peer's channel, the first
//!   codec of its table that we take): both directions then share a codec.
//!   If the peer then opens its channel with another codec that it can
//!   also receive, ours is closed and reopened once with that codec. A
//!   rejected codec is not tried again. The peer's channels for audio we
//!   take are acknowledged with the relay's RTP and RTCP addresses; data
//!   and other audio codecs get OpenLogicalChannelReject
//!   `dataTypeNotSupported`.
//! - Video (H.241, session 2), once [`Control::set_video`] gave the relay's
//!   video addresses: our capabilities add H.264
//!   ([`ControlConfig::video`], Constrained Baseline); the peer's H.264
//!   Baseline channel with a dynamic payload type is acknowledged with the
//!   video addresses; our H.264 channel opens when the peer's capabilities
//!   receive H.264 Baseline (the lower level and bit rate of the two), once
//!   each way. H.261, H.263 and other video, H.264 without a payload type,
//!   and any video when no video addresses were given, get
//!   OpenLogicalChannelReject (`dataTypeNotSupported`, or
//!   `dataTypeALCombinationNotSupported`). A refused video channel of ours
//!   is not retried. [`Control::request_video_fast_update`] sends
//!   VideoFastUpdatePicture on the peer's video channel.
//! - CloseLogicalChannel is acknowledged; RequestChannelClose of our
//!   channel is acknowledged and the channel closed (not reopened until
//!   the peer sends new capabilities); RoundTripDelayRequest answered;
//!   MaintenanceLoopRequest and RequestMode rejected; any other request
//!   answered with FunctionNotUnderstood, so that the peer never waits.
//! - Commands: EndSessionCommand ends the call; VideoFastUpdatePicture
//!   (and GOB/MB updates) and FlowControlCommand are reported as events.
//!   UserInputIndication (alphanumeric and signal) gives DTMF digits.
//!
//! When Fast Connect already carries the media ([`MediaMode::FastConnect`])
//! no audio channel is opened here, and the peer's audio channels are taken
//! only in the Fast Connect codec; video opens by H.245 unless Fast Connect
//! opened it too ([`Control::set_video_fast_connect`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::asn1::{self, h245};
use crate::media::{self, AudioCodec, AUDIO_FRAMES, AUDIO_SESSION, H264, H264_PAYLOAD_TYPE, VIDEO_SESSION};

/// How many times master/slave determination is retried after identical
/// numbers (H.245 §C.2: N100).
pub const MSD_RETRIES: u8 = 3;
/// Most OpenLogicalChannels of the peer held while our media addresses are
/// not known yet; more are rejected.
const MAX_DEFERRED: usize = 4;

/// H.245 as confgate speaks it on one call.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Our terminal type for master/slave determination (H.323 Table 1:
    /// 240, an MCU with an active MC).
    pub terminal_type: u8,
    /// A random number for master/slave determination (H.245 §C.2: 0..2^24).
    pub msd_number: u32,
    /// The audio codecs we receive and send, in order of preference.
    pub audio: Vec<AudioCodec>,
    /// How long our channel waits for the peer's, to take its codec.
    pub open_grace: Duration,
    /// The H.264 video announced and taken once [`Control::set_video`]
    /// gave video addresses.
    pub video: H264,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            terminal_type: 240,
            msd_number: 0x5a_5a5a,
            audio: AudioCodec::ALL.to_vec(),
            open_grace: Duration::from_millis(500),
            video: H264::CONSTRAINED_BASELINE,
        }
    }
}

/// Where we receive media (the relay's endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our RTP address.
    pub rtp: SocketAddr,
    /// Our RTCP address.
    pub rtcp: SocketAddr,
}

/// How the call's audio channels come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaMode {
    /// Fast Connect opened both channels in this codec: open nothing.
    FastConnect(AudioCodec),
    /// Open our channel and take the peer's with H.245 OpenLogicalChannel.
    OpenChannels,
}

/// What the control protocol tells its owner.
#[derive(Debug)]
pub enum Output {
    /// Send this message to the peer.
    Send(Box<h245::MultimediaSystemControlMessage>),
    /// Something happened.
    Event(ControlEvent),
}

/// An event of the control protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// A key press (UserInputIndication).
    Dtmf(char),
    /// The peer sent EndSessionCommand (H.245 §8.5: the call is over).
    EndSession,
    /// The media changed.
    Media(MediaEvent),
}

/// A change in the call's media channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// Our channel is open: send `codec` to `rtp` (RTCP to `rtcp`), as the
    /// peer's OpenLogicalChannelAck says.
    TransmitOpened {
        /// The codec we send.
        codec: AudioCodec,
        /// Where the peer receives RTP (absent: latch on its packets).
        rtp: Option<SocketAddr>,
        /// Where the peer receives RTCP.
        rtcp: Option<SocketAddr>,
    },
    /// No codec could be opened towards the peer (none in common, or every
    /// one rejected).
    TransmitFailed,
    /// Our channel was closed at the peer's request or by a pause.
    TransmitClosed,
    /// The peer's channel towards us is open.
    ReceiveOpened {
        /// The codec the peer sends.
        codec: AudioCodec,
        /// The peer's RTCP address from its OpenLogicalChannel.
        rtcp: Option<SocketAddr>,
    },
    /// The peer closed its channel.
    ReceiveClosed,
    /// The peer asks for a video key frame (VideoFastUpdatePicture, GOB or MB).
    FastUpdateRequested,
    /// The peer limits what we send (FlowControlCommand): at most this many
    /// bit/s, `None` for no limit.
    FlowControl {
        /// The limit in bit/s.
        max_bit_rate: Option<u64>,
    },
    /// Our H.264 video channel is open: send it to `rtp` with
    /// `payload_type`.
    VideoTransmitOpened {
        /// The H.264 parameters of the channel.
        h264: H264,
        /// The RTP payload type the peer expects.
        payload_type: u8,
        /// Where the peer receives video RTP (absent: latch on its packets).
        rtp: Option<SocketAddr>,
        /// Where the peer receives video RTCP.
        rtcp: Option<SocketAddr>,
    },
    /// The peer refused our video channel (it stays closed).
    VideoTransmitFailed,
    /// Our video channel was closed at the peer's request or by a pause.
    VideoTransmitClosed,
    /// The peer's H.264 video channel towards us is open (acknowledged
    /// with our video addresses).
    VideoReceiveOpened {
        /// The H.264 parameters the peer sends.
        h264: H264,
        /// The RTP payload type it sends with.
        payload_type: u8,
        /// The peer's video RTCP address from its OpenLogicalChannel.
        rtcp: Option<SocketAddr>,
    },
    /// The peer closed its video channel.
    VideoReceiveClosed,
}

/// Our video channel towards the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoTx {
    Closed,
    Opening {
        lcn: u16,
        h264: H264,
    },
    Open {
        lcn: u16,
    },
    Closing {
        lcn: u16,
    },
    /// Refused by the peer, or opened by Fast Connect: not (re)opened here.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tcs {
    NotSent,
    Sent,
    Acked,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msd {
    Idle,
    /// Ours sent, no answer yet.
    Outgoing,
    /// The peer's acknowledged with this status of ours; its Ack awaited.
    Incoming {
        master: bool,
    },
    Determined {
        master: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    Closed,
    Opening {
        lcn: u16,
        codec: AudioCodec,
    },
    Open {
        lcn: u16,
        codec: AudioCodec,
    },
    /// CloseLogicalChannel sent; reopen after its Ack if `reopen`.
    Closing {
        lcn: u16,
        reopen: bool,
    },
}

/// The H.245 control protocol of one call: see the module docs.
#[derive(Debug)]
pub struct Control {
    config: ControlConfig,
    out: VecDeque<Output>,
    started: bool,
    tcs_sequence: u8,
    tcs: Tcs,
    /// The audio codecs the peer receives, in its order; `None` before its
    /// first capability set.
    peer_audio: Option<Vec<AudioCodec>>,
    msd: Msd,
    msd_number: u32,
    msd_retries: u8,
    media: Option<LocalMedia>,
    mode: MediaMode,
    tx: Tx,
    next_lcn: u16,
    /// Codecs the peer refused for our channel.
    refused: Vec<AudioCodec>,
    transmit_failed: bool,
    /// Our channel stays closed (the peer asked) until new capabilities.
    hold: bool,
    realigned: bool,
    /// Set when our channel waits for the peer's.
    open_deadline: Option<Instant>,
    /// The peer's open audio channel: its number and codec.
    rx: Option<(u16, AudioCodec)>,
    deferred: Vec<h245::OpenLogicalChannel>,
    /// Our video addresses (the relay's video endpoint), when video is taken.
    video_media: Option<LocalMedia>,
    /// The H.264 the peer receives, from its capabilities.
    peer_video: Option<H264>,
    vtx: VideoTx,
    /// The peer's open video channel towards us.
    vrx: Option<u16>,
    /// Our video channel stays closed (the peer asked) until new capabilities.
    video_hold: bool,
}

impl Control {
    /// A control protocol that has sent nothing yet.
    pub fn new(config: ControlConfig) -> Self {
        let msd_number = config.msd_number & 0x00ff_ffff;
        Self {
            config,
            out: VecDeque::new(),
            started: false,
            tcs_sequence: 0,
            tcs: Tcs::NotSent,
            peer_audio: None,
            msd: Msd::Idle,
            msd_number,
            msd_retries: 0,
            media: None,
            mode: MediaMode::OpenChannels,
            tx: Tx::Closed,
            next_lcn: 1,
            refused: Vec::new(),
            transmit_failed: false,
            hold: false,
            realigned: false,
            open_deadline: None,
            rx: None,
            deferred: Vec::new(),
            video_media: None,
            peer_video: None,
            vtx: VideoTx::Closed,
            vrx: None,
            video_hold: false,
        }
    }

    /// The next output; drain until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.open_deadline
    }

    /// Runs the timer of our channel's wait for the peer's.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.open_deadline.is_some_and(|d| now >= d) {
            self.open_deadline = None;
            self.try_open(now, true);
        }
    }

    /// Whether [`start`](Self::start) was called.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Whether the peer acknowledged our latest capabilities (`Some(false)`:
    /// it rejected them; `None`: no answer yet, or not sent).
    pub fn capabilities_accepted(&self) -> Option<bool> {
        match self.tcs {
            Tcs::Acked => Some(true),
            Tcs::Rejected => Some(false),
            Tcs::NotSent | Tcs::Sent => None,
        }
    }

    /// Whether master/slave determination made us the master (`None`
    /// while undetermined).
    pub fn is_master(&self) -> Option<bool> {
        match self.msd {
            Msd::Determined { master } => Some(master),
            _ => None,
        }
    }

    /// The codecs the peer receives, in its order (`None` before its
    /// capabilities arrived).
    pub fn peer_audio(&self) -> Option<&[AudioCodec]> {
        self.peer_audio.as_deref()
    }

    /// Sends our capabilities and starts master/slave determination
    /// (unless the peer's determination already settled it). Once only.
    pub fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        self.send_tcs();
        if self.msd == Msd::Idle {
            self.send_msd();
        }
        self.try_open(now, false);
    }

    /// Takes H.264 video, received at `media` (the relay's video
    /// endpoint): our capabilities announce it, the peer's H.264 channel
    /// is acknowledged with these addresses, and ours opens when the peer
    /// receives H.264. Call before [`start`](Self::start) (capabilities
    /// already sent are sent again).
    pub fn set_video(&mut self, now: Instant, media: LocalMedia) {
        let resend = self.video_media.is_none() && self.tcs != Tcs::NotSent;
        self.video_media = Some(media);
        if resend {
            self.send_tcs();
        }
        self.try_open(now, false);
    }

    /// Fast Connect opened video channels: the peer's towards us is
    /// `receive_lcn` (if it sends), and ours towards it opened when
    /// `transmit` (then none is opened by H.245).
    pub fn set_video_fast_connect(&mut self, receive_lcn: Option<u16>, transmit: bool) {
        if receive_lcn.is_some() {
            self.vrx = receive_lcn;
        }
        if transmit {
            self.vtx = VideoTx::Done;
        }
    }

    /// The H.264 the peer receives (`None` before its capabilities, or
    /// when it announced none).
    pub fn peer_video(&self) -> Option<&H264> {
        self.peer_video.as_ref()
    }

    /// Asks the peer for a video key frame on its channel towards us
    /// (VideoFastUpdatePicture, H.245 §6.2.10.4.6). Whether it was sent
    /// (`false`: no video channel from the peer is open).
    pub fn request_video_fast_update(&mut self) -> bool {
        match self.vrx {
            Some(lcn) => {
                self.send(video_fast_update(lcn));
                true
            }
            None => false,
        }
    }

    /// Our media addresses are known: channels can be opened and taken.
    pub fn set_media(&mut self, now: Instant, media: LocalMedia, mode: MediaMode) {
        self.media = Some(media);
        self.mode = mode;
        for olc in std::mem::take(&mut self.deferred) {
            self.peer_open(now, olc);
        }
        self.try_open(now, false);
    }

    /// One received PDU. Undecodable bytes are dropped (H.245 cannot answer
    /// what it cannot read); the result says whether it decoded.
    pub fn handle_pdu(&mut self, now: Instant, pdu: &[u8]) -> bool {
        match asn1::decode_h245(pdu) {
            Ok(msg) => {
                self.handle_message(now, msg);
                true
            }
            Err(_) => false,
        }
    }

    /// One received message.
    pub fn handle_message(&mut self, now: Instant, msg: h245::MultimediaSystemControlMessage) {
        use h245::MultimediaSystemControlMessage as M;
        match msg {
            M::request(r) => self.request(now, r),
            M::response(r) => self.response(now, r),
            M::command(c) => self.command(c),
            M::indication(i) => self.indication(i),
        }
    }

    fn send(&mut self, msg: h245::MultimediaSystemControlMessage) {
        self.out.push_back(Output::Send(Box::new(msg)));
    }

    fn event(&mut self, e: ControlEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn media_event(&mut self, e: MediaEvent) {
        self.event(ControlEvent::Media(e));
    }

    fn send_tcs(&mut self) {
        self.tcs_sequence = self.tcs_sequence.wrapping_add(1);
        let video = self.video_media.map(|_| &self.config.video);
        let tcs = media::terminal_capability_set_with_video(self.tcs_sequence, &self.config.audio, video);
        self.send(tcs);
        self.tcs = Tcs::Sent;
    }

    fn send_msd(&mut self) {
        self.send(request(h245::RequestMessage::masterSlaveDetermination(
            h245::MasterSlaveDetermination::new(self.config.terminal_type, self.msd_number),
        )));
        self.msd = Msd::Outgoing;
    }

    fn request(&mut self, now: Instant, r: h245::RequestMessage) {
        use h245::RequestMessage as R;
        match r {
            R::terminalCapabilitySet(tcs) => self.peer_capabilities(now, tcs),
            R::masterSlaveDetermination(msd) => self.peer_msd(now, &msd),
            R::openLogicalChannel(olc) => self.peer_open(now, olc),
            R::closeLogicalChannel(clc) => {
                let lcn = clc.forward_logical_channel_number.0;
                self.send(response(h245::ResponseMessage::closeLogicalChannelAck(
                    h245::CloseLogicalChannelAck::new(h245::LogicalChannelNumber(lcn)),
                )));
                if self.rx.is_some_and(|(n, _)| n == lcn) {
                    self.rx = None;
                    self.media_event(MediaEvent::ReceiveClosed);
                } else if self.vrx == Some(lcn) {
                    self.vrx = None;
                    self.media_event(MediaEvent::VideoReceiveClosed);
                }
            }
            R::requestChannelClose(rcc) => {
                let lcn = rcc.forward_logical_channel_number.0;
                if let VideoTx::Open { lcn: ours } | VideoTx::Opening { lcn: ours, .. } = self.vtx {
                    if ours == lcn {
                        self.send(response(h245::ResponseMessage::requestChannelCloseAck(
                            h245::RequestChannelCloseAck::new(h245::LogicalChannelNumber(lcn)),
                        )));
                        self.video_hold = true;
                        self.close_video(lcn);
                        self.media_event(MediaEvent::VideoTransmitClosed);
                        return;
                    }
                }
                match self.tx {
                    Tx::Open { lcn: ours, .. } | Tx::Opening { lcn: ours, .. } if ours == lcn => {
                        self.send(response(h245::ResponseMessage::requestChannelCloseAck(
                            h245::RequestChannelCloseAck::new(h245::LogicalChannelNumber(lcn)),
                        )));
                        self.hold = true;
                        self.close_tx(false);
                        self.media_event(MediaEvent::TransmitClosed);
                    }
                    _ => self.send(response(h245::ResponseMessage::requestChannelCloseReject(
                        h245::RequestChannelCloseReject::new(
                            h245::LogicalChannelNumber(lcn),
                            h245::RequestChannelCloseRejectCause::unspecified(()),
                        ),
                    ))),
                }
            }
            R::roundTripDelayRequest(rtd) => self.send(response(h245::ResponseMessage::roundTripDelayResponse(
                h245::RoundTripDelayResponse::new(rtd.sequence_number),
            ))),
            R::maintenanceLoopRequest(ml) => {
                use h245::MaintenanceLoopRejectType as T;
                use h245::MaintenanceLoopRequestType as Q;
                let kind = match ml.r_type {
                    Q::systemLoop(()) => T::systemLoop(()),
                    Q::mediaLoop(n) => T::mediaLoop(n),
                    Q::logicalChannelLoop(n) => T::logicalChannelLoop(n),
                };
                self.send(response(h245::ResponseMessage::maintenanceLoopReject(
                    h245::MaintenanceLoopReject::new(kind, h245::MaintenanceLoopRejectCause::canNotPerformLoop(())),
                )));
            }
            R::requestMode(rm) => self.send(response(h245::ResponseMessage::requestModeReject(
                h245::RequestModeReject::new(rm.sequence_number, h245::RequestModeRejectCause::modeUnavailable(())),
            ))),
            other => {
                // H.245 §8.13 and Annex: a request we do not serve is
                // returned, so that the peer does not wait for an answer.
                self.send(h245::MultimediaSystemControlMessage::indication(
                    h245::IndicationMessage::functionNotUnderstood(h245::FunctionNotUnderstood::request(other)),
                ));
            }
        }
    }

    fn response(&mut self, now: Instant, r: h245::ResponseMessage) {
        use h245::ResponseMessage as R;
        match r {
            R::terminalCapabilitySetAck(ack) if ack.sequence_number.0 == self.tcs_sequence => {
                self.tcs = Tcs::Acked;
            }
            R::terminalCapabilitySetReject(rej) if rej.sequence_number.0 == self.tcs_sequence => {
                self.tcs = Tcs::Rejected;
            }
            R::masterSlaveDeterminationAck(ack) => {
                // The decision is the receiver's (our) status.
                let master = matches!(ack.decision, h245::MasterSlaveDeterminationAckDecision::master(()));
                match self.msd {
                    Msd::Outgoing => {
                        self.send(msd_ack(master));
                        self.msd = Msd::Determined { master };
                        self.try_open(now, false);
                    }
                    Msd::Incoming { master: ours } => {
                        self.msd = Msd::Determined { master: ours };
                        self.try_open(now, false);
                    }
                    Msd::Idle | Msd::Determined { .. } => {}
                }
            }
            R::masterSlaveDeterminationReject(_) if self.msd == Msd::Outgoing => self.retry_msd(),
            R::openLogicalChannelAck(ack) => self.channel_acked(&ack),
            R::openLogicalChannelReject(rej) if matches!(self.vtx, VideoTx::Opening { lcn, .. } if lcn == rej.forward_logical_channel_number.0) =>
            {
                self.vtx = VideoTx::Done;
                self.media_event(MediaEvent::VideoTransmitFailed);
            }
            R::closeLogicalChannelAck(ack) if matches!(self.vtx, VideoTx::Closing { lcn } if lcn == ack.forward_logical_channel_number.0) =>
            {
                self.vtx = VideoTx::Closed;
                self.try_open(now, false);
            }
            R::openLogicalChannelReject(rej) => {
                if let Tx::Opening { lcn, codec } = self.tx {
                    if rej.forward_logical_channel_number.0 == lcn {
                        self.refused.push(codec);
                        self.tx = Tx::Closed;
                        self.try_open(now, true);
                    }
                }
            }
            R::closeLogicalChannelAck(ack) => {
                if let Tx::Closing { lcn, reopen } = self.tx {
                    if ack.forward_logical_channel_number.0 == lcn {
                        self.tx = Tx::Closed;
                        if reopen {
                            self.try_open(now, true);
                        }
                    }
                }
            }
            // Answers to requests we never make, or that need no action.
            _ => {}
        }
    }

    fn command(&mut self, c: h245::CommandMessage) {
        use h245::CommandMessage as C;
        match c {
            C::endSessionCommand(_) => self.event(ControlEvent::EndSession),
            C::miscellaneousCommand(m) => {
                use h245::MiscellaneousCommandType as T;
                if matches!(
                    m.r_type,
                    T::videoFastUpdatePicture(()) | T::videoFastUpdateGOB(_) | T::videoFastUpdateMB(_)
                ) {
                    self.media_event(MediaEvent::FastUpdateRequested);
                }
            }
            C::flowControlCommand(f) => {
                // H.245 §6.2.10.2: maximumBitRate in units of 100 bit/s.
                let max_bit_rate = match f.restriction {
                    h245::FlowControlCommandRestriction::maximumBitRate(r) => Some(u64::from(r) * 100),
                    h245::FlowControlCommandRestriction::noRestriction(()) => None,
                };
                self.media_event(MediaEvent::FlowControl { max_bit_rate });
            }
            C::sendTerminalCapabilitySet(_) => self.send_tcs(),
            // Commands have no answer; the others do not apply to an
            // audio-only MCU leg.
            _ => {}
        }
    }

    fn indication(&mut self, i: h245::IndicationMessage) {
        use h245::IndicationMessage as I;
        match i {
            I::userInput(ui) => {
                for d in crate::signalling::user_input_digits(&ui) {
                    self.event(ControlEvent::Dtmf(d));
                }
            }
            I::masterSlaveDeterminationRelease(_) => {
                // Our determination timed out at the peer: start again.
                if matches!(self.msd, Msd::Outgoing | Msd::Incoming { .. }) {
                    self.retry_msd();
                }
            }
            _ => {}
        }
    }

    fn retry_msd(&mut self) {
        if self.msd_retries >= MSD_RETRIES {
            // Give up on the determination, keep the call: audio channels
            // are unidirectional and need no master.
            self.msd = Msd::Determined { master: false };
            return;
        }
        self.msd_retries += 1;
        // A new number (H.245 §C.2.4.3): an LCG step keeps it within 24 bits.
        self.msd_number = (self.msd_number.wrapping_mul(1_103_515_245).wrapping_add(12_345) >> 4) & 0x00ff_ffff;
        self.send_msd();
    }

    fn peer_msd(&mut self, now: Instant, msd: &h245::MasterSlaveDetermination) {
        // H.245 §C.2.4: the larger terminal type is master; on a tie the
        // status determination numbers decide.
        let master = match msd.terminal_type.cmp(&self.config.terminal_type) {
            std::cmp::Ordering::Less => Some(true),
            std::cmp::Ordering::Greater => Some(false),
            std::cmp::Ordering::Equal => {
                let diff = msd.status_determination_number.wrapping_sub(self.msd_number) & 0x00ff_ffff;
                match diff {
                    0 | 0x0080_0000 => None,
                    d => Some(d < 0x0080_0000),
                }
            }
        };
        match master {
            Some(master) => {
                self.send(msd_ack(master));
                self.msd = Msd::Incoming { master };
            }
            None if self.msd == Msd::Outgoing => self.retry_msd(),
            None => self.send(response(h245::ResponseMessage::masterSlaveDeterminationReject(
                h245::MasterSlaveDeterminationReject::new(h245::MasterSlaveDeterminationRejectCause::identicalNumbers(
                    (),
                )),
            ))),
        }
        self.try_open(now, false);
    }

    fn peer_capabilities(&mut self, now: Instant, tcs: h245::TerminalCapabilitySet) {
        self.send(response(h245::ResponseMessage::terminalCapabilitySetAck(
            h245::TerminalCapabilitySetAck::new(tcs.sequence_number.clone(), None),
        )));
        let audio = receive_audio(&tcs);
        let pause = tcs.capability_table.as_ref().is_none_or(|t| t.to_vec().is_empty());
        self.peer_audio = Some(audio);
        self.peer_video = media::receive_h264(&tcs);
        if pause {
            // H.323 §8.4.6: an empty set asks us to stop sending.
            if matches!(self.tx, Tx::Open { .. } | Tx::Opening { .. }) {
                self.close_tx(false);
                self.media_event(MediaEvent::TransmitClosed);
            }
            if let VideoTx::Open { lcn } | VideoTx::Opening { lcn, .. } = self.vtx {
                self.close_video(lcn);
                self.media_event(MediaEvent::VideoTransmitClosed);
            }
            return;
        }
        self.hold = false;
        self.video_hold = false;
        self.refused.clear();
        self.transmit_failed = false;
        self.try_open(now, false);
    }

    /// The codec our channel would open with now, if any.
    fn choose(&self, peer: &[AudioCodec]) -> Option<AudioCodec> {
        let usable = |c: &AudioCodec| self.config.audio.contains(c) && !self.refused.contains(c) && peer.contains(c);
        if let Some((_, rx)) = self.rx {
            if usable(&rx) {
                return Some(rx);
            }
        }
        peer.iter().copied().find(usable)
    }

    /// Opens our channels if everything they need is there; `waited`: the
    /// grace for the peer's audio channel is over (or not needed).
    fn try_open(&mut self, now: Instant, waited: bool) {
        self.try_open_audio(now, waited);
        self.try_open_video();
    }

    /// Opens our H.264 channel (H.245 §8.4, H.241 §8.3): once video is
    /// taken, the peer's capabilities say it receives H.264 Baseline, and
    /// the status is determined; with the lower of the two levels and bit
    /// rates, our dynamic payload type and packetization mode 1
    /// (non-interleaved, RFC 6184), RTCP at our video address.
    fn try_open_video(&mut self) {
        if !self.started || self.video_hold || self.vtx != VideoTx::Closed || self.is_master().is_none() {
            return;
        }
        let (Some(video), Some(_), Some(peer)) = (self.video_media, self.media, self.peer_video) else {
            return;
        };
        if !peer.takes_baseline() {
            return;
        }
        let h264 = self.config.video.common(&peer);
        let lcn = self.next_lcn;
        self.next_lcn = self.next_lcn.checked_add(1).unwrap_or(1);
        self.send(request(h245::RequestMessage::openLogicalChannel(
            video_open_logical_channel(lcn, &h264, H264_PAYLOAD_TYPE, video.rtcp),
        )));
        self.vtx = VideoTx::Opening { lcn, h264 };
    }

    fn close_video(&mut self, lcn: u16) {
        self.send(request(h245::RequestMessage::closeLogicalChannel(
            h245::CloseLogicalChannel::new(
                h245::LogicalChannelNumber(lcn),
                h245::CloseLogicalChannelSource::user(()),
                None,
            ),
        )));
        self.vtx = VideoTx::Closing { lcn };
    }

    /// The peer acknowledged one of our channels.
    fn channel_acked(&mut self, ack: &h245::OpenLogicalChannelAck) {
        if !self.video_opened(ack) {
            self.opened(ack);
        }
    }

    /// The peer acknowledged our video channel; whether `ack` was about it.
    fn video_opened(&mut self, ack: &h245::OpenLogicalChannelAck) -> bool {
        let VideoTx::Opening { lcn, h264 } = self.vtx else {
            return false;
        };
        if ack.forward_logical_channel_number.0 != lcn {
            return false;
        }
        self.vtx = VideoTx::Open { lcn };
        let (rtp, rtcp) = ack_addresses(ack);
        self.media_event(MediaEvent::VideoTransmitOpened {
            h264,
            payload_type: H264_PAYLOAD_TYPE,
            rtp,
            rtcp,
        });
        true
    }

    /// The peer opens a video channel: H.264 Baseline over H.225.0 with a
    /// dynamic payload type is acknowledged with our video addresses;
    /// H.261, H.263, other video, and video when we take none, get
    /// `dataTypeNotSupported` (H.245 §6.2.8.3).
    fn peer_open_video(&mut self, olc: h245::OpenLogicalChannel) {
        use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
        use h245::OpenLogicalChannelRejectCause as Cause;
        let lcn = olc.forward_logical_channel_number.0;
        let reject = |c: &mut Self, cause| {
            c.send(response(h245::ResponseMessage::openLogicalChannelReject(
                h245::OpenLogicalChannelReject::new(h245::LogicalChannelNumber(lcn), cause, None),
            )));
        };
        let fwd = &olc.forward_logical_channel_parameters;
        let h264 = match &fwd.data_type {
            h245::DataType::videoData(cap) => H264::from_capability(cap).filter(H264::takes_baseline),
            _ => None,
        };
        let Some(h264) = h264 else {
            return reject(self, Cause::dataTypeNotSupported(()));
        };
        let Fwd::h2250LogicalChannelParameters(params) = &fwd.multiplex_parameters else {
            return reject(self, Cause::dataTypeALCombinationNotSupported(()));
        };
        // H.264 has no static payload type (RFC 6184): the channel must name one.
        let Some(payload_type) = params.dynamic_rtppayload_type else {
            return reject(self, Cause::dataTypeALCombinationNotSupported(()));
        };
        if olc.reverse_logical_channel_parameters.is_some() {
            return reject(self, Cause::unsuitableReverseParameters(()));
        }
        let Some(local) = self.video_media else {
            return reject(self, Cause::dataTypeNotSupported(()));
        };
        if self.vrx.is_some_and(|n| n != lcn) {
            // One video channel each way.
            return reject(self, Cause::unspecified(()));
        }
        let session = if params.session_id == 0 {
            VIDEO_SESSION
        } else {
            params.session_id
        };
        let rtcp = params.media_control_channel.as_ref().and_then(media::from_h245);
        self.send(response(h245::ResponseMessage::openLogicalChannelAck(
            open_logical_channel_ack(lcn, session, local),
        )));
        self.vrx = Some(lcn);
        self.media_event(MediaEvent::VideoReceiveOpened {
            h264,
            payload_type,
            rtcp,
        });
    }

    fn try_open_audio(&mut self, now: Instant, waited: bool) {
        if self.mode != MediaMode::OpenChannels || self.hold || !self.started || self.tx != Tx::Closed {
            return;
        }
        let (Some(media), Some(peer), Some(_)) = (self.media, self.peer_audio.as_ref(), self.is_master()) else {
            return;
        };
        if peer.is_empty() {
            return;
        }
        if self.rx.is_none() && !waited {
            // Give the peer's channel a moment, to take its codec.
            if self.open_deadline.is_none() {
                self.open_deadline = Some(now + self.config.open_grace);
            }
            return;
        }
        self.open_deadline = None;
        let Some(codec) = self.choose(peer) else {
            if !self.transmit_failed {
                self.transmit_failed = true;
                self.media_event(MediaEvent::TransmitFailed);
            }
            return;
        };
        let lcn = self.next_lcn;
        self.next_lcn = self.next_lcn.checked_add(1).unwrap_or(1);
        self.send(request(h245::RequestMessage::openLogicalChannel(open_logical_channel(
            lcn, codec, media.rtcp,
        ))));
        self.tx = Tx::Opening { lcn, codec };
    }

    fn close_tx(&mut self, reopen: bool) {
        let lcn = match self.tx {
            Tx::Open { lcn, .. } | Tx::Opening { lcn, .. } => lcn,
            Tx::Closed | Tx::Closing { .. } => return,
        };
        self.send(request(h245::RequestMessage::closeLogicalChannel(
            h245::CloseLogicalChannel::new(
                h245::LogicalChannelNumber(lcn),
                h245::CloseLogicalChannelSource::user(()),
                None,
            ),
        )));
        self.tx = Tx::Closing { lcn, reopen };
    }

    fn opened(&mut self, ack: &h245::OpenLogicalChannelAck) {
        let Tx::Opening { lcn, codec } = self.tx else {
            return;
        };
        if ack.forward_logical_channel_number.0 != lcn {
            return;
        }
        self.tx = Tx::Open { lcn, codec };
        if self.realign(codec) {
            return;
        }
        let (rtp, rtcp) = match &ack.forward_multiplex_ack_parameters {
            Some(h245::OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(p)) => (
                p.media_channel.as_ref().and_then(media::from_h245),
                p.media_control_channel.as_ref().and_then(media::from_h245),
            ),
            _ => (None, None),
        };
        self.media_event(MediaEvent::TransmitOpened { codec, rtp, rtcp });
    }

    /// Closes our open channel for reopening when the peer sends another
    /// codec that it also receives (once per call). Whether it did.
    fn realign(&mut self, ours: AudioCodec) -> bool {
        let Some((_, theirs)) = self.rx else {
            return false;
        };
        let peer_takes = self.peer_audio.as_ref().is_some_and(|p| p.contains(&theirs));
        if theirs == ours || self.realigned || !peer_takes || !self.config.audio.contains(&theirs) {
            return false;
        }
        if !matches!(self.tx, Tx::Open { .. }) {
            // Still opening: decided when the Ack comes.
            return false;
        }
        self.realigned = true;
        self.close_tx(true);
        true
    }

    fn peer_open(&mut self, now: Instant, olc: h245::OpenLogicalChannel) {
        use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
        let lcn = olc.forward_logical_channel_number.0;
        let reject = |cause| {
            response(h245::ResponseMessage::openLogicalChannelReject(
                h245::OpenLogicalChannelReject::new(h245::LogicalChannelNumber(lcn), cause, None),
            ))
        };
        let fwd = &olc.forward_logical_channel_parameters;
        if matches!(fwd.data_type, h245::DataType::videoData(_)) {
            if self.media.is_none() && self.video_media.is_none() && self.deferred.len() < MAX_DEFERRED {
                // Before our answer: decided with the audio.
                self.deferred.push(olc);
                return;
            }
            self.peer_open_video(olc);
            return;
        }
        let h245::DataType::audioData(cap) = &fwd.data_type else {
            // Data, or anything else.
            self.send(reject(h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(())));
            return;
        };
        let taken = AudioCodec::from_capability(cap)
            .map(|(c, _)| c)
            .filter(|c| self.config.audio.contains(c))
            .filter(|c| match self.mode {
                MediaMode::FastConnect(fc) => *c == fc,
                MediaMode::OpenChannels => true,
            });
        let Some(codec) = taken else {
            self.send(reject(h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(())));
            return;
        };
        let Fwd::h2250LogicalChannelParameters(params) = &fwd.multiplex_parameters else {
            self.send(reject(
                h245::OpenLogicalChannelRejectCause::dataTypeALCombinationNotSupported(()),
            ));
            return;
        };
        if olc.reverse_logical_channel_parameters.is_some() {
            // Audio channels are unidirectional in H.323 (§6.2.8.4).
            self.send(reject(
                h245::OpenLogicalChannelRejectCause::unsuitableReverseParameters(()),
            ));
            return;
        }
        let Some(local) = self.media else {
            if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push(olc);
            } else {
                self.send(reject(h245::OpenLogicalChannelRejectCause::unspecified(())));
            }
            return;
        };
        let session = if params.session_id == 0 {
            AUDIO_SESSION
        } else {
            params.session_id
        };
        let peer_rtcp = params.media_control_channel.as_ref().and_then(media::from_h245);
        self.send(response(h245::ResponseMessage::openLogicalChannelAck(
            open_logical_channel_ack(lcn, session, local),
        )));
        self.rx = Some((lcn, codec));
        self.media_event(MediaEvent::ReceiveOpened { codec, rtcp: peer_rtcp });
        match self.tx {
            Tx::Open { codec: ours, .. } => {
                let _ = self.realign(ours);
            }
            Tx::Closed => {
                self.open_deadline = None;
                self.try_open(now, true);
            }
            Tx::Opening { .. } | Tx::Closing { .. } => {}
        }
    }
}

fn request(r: h245::RequestMessage) -> h245::MultimediaSystemControlMessage {
    h245::MultimediaSystemControlMessage::request(r)
}

fn response(r: h245::ResponseMessage) -> h245::MultimediaSystemControlMessage {
    h245::MultimediaSystemControlMessage::response(r)
}

/// A MasterSlaveDeterminationAck telling the peer its status: `we_master`
/// makes it the slave.
fn msd_ack(we_master: bool) -> h245::MultimediaSystemControlMessage {
    let decision = if we_master {
        h245::MasterSlaveDeterminationAckDecision::slave(())
    } else {
        h245::MasterSlaveDeterminationAckDecision::master(())
    };
    response(h245::ResponseMessage::masterSlaveDeterminationAck(
        h245::MasterSlaveDeterminationAck::new(decision),
    ))
}

/// The audio codecs a capability set says its sender receives: those of
/// its descriptors' alternatives first, in their order, then the rest of
/// the table.
fn receive_audio(tcs: &h245::TerminalCapabilitySet) -> Vec<AudioCodec> {
    let Some(table) = &tcs.capability_table else {
        return Vec::new();
    };
    let table = table.to_vec();
    let receive = |entry: &h245::CapabilityTableEntry| match &entry.capability {
        Some(h245::Capability::receiveAudioCapability(a) | h245::Capability::receiveAndTransmitAudioCapability(a)) => {
            AudioCodec::from_capability(a).map(|(c, _)| c)
        }
        _ => None,
    };
    let mut out: Vec<AudioCodec> = Vec::new();
    let mut push = |c: Option<AudioCodec>| {
        if let Some(c) = c {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    };
    for descriptor in tcs.capability_descriptors.iter().flat_map(|d| d.to_vec()) {
        for alternatives in descriptor.simultaneous_capabilities.iter().flat_map(|s| s.to_vec()) {
            for n in &alternatives.0 {
                push(
                    table
                        .iter()
                        .find(|e| e.capability_table_entry_number == *n)
                        .and_then(|e| receive(e)),
                );
            }
        }
    }
    for entry in &table {
        push(receive(entry));
    }
    out
}

/// An OpenLogicalChannel for our audio in `codec` (H.245 §6.2.8.3,
/// H.225.0 §6.2.8.1): session 1, RTCP received at `rtcp`, no silence
/// suppression.
pub fn open_logical_channel(lcn: u16, codec: AudioCodec, rtcp: SocketAddr) -> h245::OpenLogicalChannel {
    media::sending_channel(
        lcn,
        h245::DataType::audioData(codec.capability(AUDIO_FRAMES)),
        media::h2250(None, Some(rtcp)),
    )
}

/// An OpenLogicalChannel for H.264 video (H.245 §6.2.8.3, H.241 §8.3,
/// H.225.0 §6.2.8.1): session 2, `payload_type`, packetization mode 1
/// (non-interleaved, H.241 Annex A: `0.0.8.241.0.0.0.1`), RTCP received
/// at `rtcp`.
pub fn video_open_logical_channel(
    lcn: u16,
    h264: &H264,
    payload_type: u8,
    rtcp: SocketAddr,
) -> h245::OpenLogicalChannel {
    let mut params = media::video_h2250(payload_type, None, Some(rtcp));
    params.media_packetization = Some(h245::H2250LogicalChannelParametersMediaPacketization::rtpPayloadType(
        h245::RTPPayloadType::new(
            h245::RTPPayloadTypePayloadDescriptor::oid(rasn::types::ObjectIdentifier::new_unchecked(
                std::borrow::Cow::Borrowed(&H264_NON_INTERLEAVED),
            )),
            Some(params.dynamic_rtppayload_type.unwrap_or(payload_type)),
        ),
    ));
    media::sending_channel(lcn, h245::DataType::videoData(h264.capability()), params)
}

/// H.241 Annex A's payload descriptor of H.264 packetization mode 1
/// (non-interleaved, RFC 6184 §6.3).
const H264_NON_INTERLEAVED: [u32; 8] = [0, 0, 8, 241, 0, 0, 0, 1];

/// The H.264 parameters, payload type and RTCP address of a video
/// OpenLogicalChannel, if it is H.264 (for the side that receives it:
/// tests and calls out).
pub fn video_channel(olc: &h245::OpenLogicalChannel) -> Option<(H264, Option<u8>, Option<SocketAddr>)> {
    let fwd = &olc.forward_logical_channel_parameters;
    let h245::DataType::videoData(cap) = &fwd.data_type else {
        return None;
    };
    let h264 = H264::from_capability(cap)?;
    match &fwd.multiplex_parameters {
        h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
            p,
        ) => Some((
            h264,
            p.dynamic_rtppayload_type,
            p.media_control_channel.as_ref().and_then(media::from_h245),
        )),
        _ => Some((h264, None, None)),
    }
}

/// FlowControlCommand limiting channel `lcn` to `max_bit_rate` bit/s
/// (H.245 §6.2.10.2: in units of 100 bit/s; `None`: no restriction).
pub fn flow_control_command(lcn: u16, max_bit_rate: Option<u64>) -> h245::MultimediaSystemControlMessage {
    let restriction = match max_bit_rate {
        Some(b) => h245::FlowControlCommandRestriction::maximumBitRate(
            u32::try_from(b / 100).unwrap_or(16_777_215).min(16_777_215),
        ),
        None => h245::FlowControlCommandRestriction::noRestriction(()),
    };
    h245::MultimediaSystemControlMessage::command(h245::CommandMessage::flowControlCommand(
        h245::FlowControlCommand::new(
            h245::FlowControlCommandScope::logicalChannelNumber(h245::LogicalChannelNumber(lcn)),
            restriction,
        ),
    ))
}

/// The OpenLogicalChannelAck for the peer's channel `lcn`: we receive its
/// RTP and RTCP at `local` (H.225.0 §6.2.8.1).
pub fn open_logical_channel_ack(lcn: u16, session: u8, local: LocalMedia) -> h245::OpenLogicalChannelAck {
    h245::OpenLogicalChannelAck::new(
        h245::LogicalChannelNumber(lcn),
        None,
        None,
        Some(
            h245::OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(
                h245::H2250LogicalChannelAckParameters::new(
                    None,
                    Some(session),
                    Some(media::to_h245(local.rtp)),
                    Some(media::to_h245(local.rtcp)),
                    None,
                    None,
                    None,
                    None,
                ),
            ),
        ),
        None,
        None,
        None,
    )
}

/// The codec and RTCP address of an audio OpenLogicalChannel, if it is
/// one of ours (for the side that receives it: tests and calls out).
pub fn audio_channel(olc: &h245::OpenLogicalChannel) -> Option<(AudioCodec, Option<SocketAddr>)> {
    let fwd = &olc.forward_logical_channel_parameters;
    let h245::DataType::audioData(cap) = &fwd.data_type else {
        return None;
    };
    let (codec, _) = AudioCodec::from_capability(cap)?;
    let rtcp = match &fwd.multiplex_parameters {
        h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
            p,
        ) => p.media_control_channel.as_ref().and_then(media::from_h245),
        _ => None,
    };
    Some((codec, rtcp))
}

/// The RTP and RTCP addresses in an OpenLogicalChannelAck.
pub fn ack_addresses(ack: &h245::OpenLogicalChannelAck) -> (Option<SocketAddr>, Option<SocketAddr>) {
    match &ack.forward_multiplex_ack_parameters {
        Some(h245::OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(p)) => (
            p.media_channel.as_ref().and_then(media::from_h245),
            p.media_control_channel.as_ref().and_then(media::from_h245),
        ),
        _ => (None, None),
    }
}

/// EndSessionCommand `disconnect` (H.245 §6.2.10.4, H.323 §8.5).
pub fn end_session_command() -> h245::MultimediaSystemControlMessage {
    h245::MultimediaSystemControlMessage::command(h245::CommandMessage::endSessionCommand(
        h245::EndSessionCommand::disconnect(()),
    ))
}

/// MasterSlaveDetermination with `terminal_type` and `number`.
pub fn master_slave_determination(terminal_type: u8, number: u32) -> h245::MultimediaSystemControlMessage {
    request(h245::RequestMessage::masterSlaveDetermination(
        h245::MasterSlaveDetermination::new(terminal_type, number & 0x00ff_ffff),
    ))
}

/// VideoFastUpdatePicture for channel `lcn` (H.245 §6.2.10.4.6).
pub fn video_fast_update(lcn: u16) -> h245::MultimediaSystemControlMessage {
    h245::MultimediaSystemControlMessage::command(h245::CommandMessage::miscellaneousCommand(
        h245::MiscellaneousCommand::new(
            h245::LogicalChannelNumber(lcn),
            h245::MiscellaneousCommandType::videoFastUpdatePicture(()),
            None,
        ),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use h245::MultimediaSystemControlMessage as M;

    fn local() -> LocalMedia {
        LocalMedia {
            rtp: "198.51.100.1:20000".parse().unwrap(),
            rtcp: "198.51.100.1:20001".parse().unwrap(),
        }
    }

    fn drain(c: &mut Control) -> (Vec<M>, Vec<ControlEvent>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = c.poll_output() {
            match o {
                Output::Send(m) => {
                    // Everything we send encodes and decodes to itself.
                    let bytes = asn1::encode(&*m).unwrap();
                    assert_eq!(asn1::decode_h245(&bytes).unwrap(), *m);
                    sent.push(*m);
                }
                Output::Event(e) => events.push(e),
            }
        }
        (sent, events)
    }

    fn peer_tcs(seq: u8, audio: &[AudioCodec]) -> M {
        media::terminal_capability_set(seq, audio)
    }

    fn video_olc(lcn: u16) -> h245::OpenLogicalChannel {
        let mut olc = open_logical_channel(lcn, AudioCodec::Pcmu, local().rtcp);
        olc.forward_logical_channel_parameters.data_type = h245::DataType::videoData(media::h263_capability());
        olc
    }

    /// A peer that opens its channel in `codec` right after the exchange.
    fn connected(now: Instant, peer_codec: AudioCodec, peer_receives: &[AudioCodec]) -> (Control, Vec<M>) {
        let mut c = Control::new(ControlConfig::default());
        c.set_media(now, local(), MediaMode::OpenChannels);
        c.start(now);
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::request(h245::RequestMessage::terminalCapabilitySet(_)),
                M::request(h245::RequestMessage::masterSlaveDetermination(_))
            ]
        ));
        c.handle_message(now, peer_tcs(1, peer_receives));
        // A terminal (type 50): we are the master.
        c.handle_message(now, master_slave_determination(50, 77));
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::response(h245::ResponseMessage::terminalCapabilitySetAck(_)),
                M::response(h245::ResponseMessage::masterSlaveDeterminationAck(a))
            ] if a.decision == h245::MasterSlaveDeterminationAckDecision::slave(())
        ));
        c.handle_message(now, msd_ack(false));
        assert_eq!(c.is_master(), Some(true));
        // Nothing opens before the grace: the peer's channel comes first.
        assert!(drain(&mut c).0.is_empty());
        c.handle_message(
            now,
            request(h245::RequestMessage::openLogicalChannel(open_logical_channel(
                101,
                peer_codec,
                "192.0.2.9:5005".parse().unwrap(),
            ))),
        );
        let (sent, events) = drain(&mut c);
        assert_eq!(
            events,
            vec![ControlEvent::Media(MediaEvent::ReceiveOpened {
                codec: peer_codec,
                rtcp: Some("192.0.2.9:5005".parse().unwrap())
            })]
        );
        (c, sent)
    }

    #[test]
    fn channels_both_ways_in_the_peer_codec() {
        let now = Instant::now();
        let (mut c, sent) = connected(now, AudioCodec::Pcma, &[AudioCodec::Pcmu, AudioCodec::Pcma]);
        let [M::response(h245::ResponseMessage::openLogicalChannelAck(ack)), M::request(h245::RequestMessage::openLogicalChannel(ours))] =
            &sent[..]
        else {
            panic!("{sent:?}")
        };
        assert_eq!(ack.forward_logical_channel_number.0, 101);
        assert_eq!(ack_addresses(ack), (Some(local().rtp), Some(local().rtcp)));
        // Ours in the codec the peer sends, though it prefers µ-law.
        assert_eq!(audio_channel(ours), Some((AudioCodec::Pcma, Some(local().rtcp))));
        let peer_rtp = "192.0.2.9:5004".parse().unwrap();
        let peer_rtcp = "192.0.2.9:5005".parse().unwrap();
        let mut their_ack = open_logical_channel_ack(
            ours.forward_logical_channel_number.0,
            1,
            LocalMedia {
                rtp: peer_rtp,
                rtcp: peer_rtcp,
            },
        );
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelAck(their_ack.clone())),
        );
        let (sent, events) = drain(&mut c);
        assert!(sent.is_empty());
        assert_eq!(
            events,
            vec![ControlEvent::Media(MediaEvent::TransmitOpened {
                codec: AudioCodec::Pcma,
                rtp: Some(peer_rtp),
                rtcp: Some(peer_rtcp)
            })]
        );
        // A repeated Ack changes nothing.
        their_ack.forward_logical_channel_number = h245::LogicalChannelNumber(77);
        c.handle_message(now, response(h245::ResponseMessage::openLogicalChannelAck(their_ack)));
        assert_eq!(drain(&mut c), (vec![], vec![]));
    }

    #[test]
    fn without_the_peer_channel_ours_opens_after_the_grace_in_its_first_codec() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.start(now);
        c.handle_message(now, peer_tcs(1, &[AudioCodec::Pcma, AudioCodec::Pcmu]));
        // The peer is the slave: our status is master.
        c.handle_message(now, msd_ack(false));
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            sent.last(),
            Some(M::response(h245::ResponseMessage::masterSlaveDeterminationAck(a)))
                if a.decision == h245::MasterSlaveDeterminationAckDecision::slave(())
        ));
        assert_eq!(c.is_master(), Some(true));
        // No media addresses yet: nothing to open, no timer.
        assert_eq!(c.poll_timeout(), None);
        c.set_media(now, local(), MediaMode::OpenChannels);
        let t = c.poll_timeout().unwrap();
        assert_eq!(t, now + ControlConfig::default().open_grace);
        c.handle_timeout(now);
        assert!(drain(&mut c).0.is_empty());
        c.handle_timeout(t);
        let (sent, _) = drain(&mut c);
        let [M::request(h245::RequestMessage::openLogicalChannel(ours))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(audio_channel(ours).unwrap().0, AudioCodec::Pcma);
        // The peer then sends µ-law: ours is closed and reopened in µ-law, once.
        let lcn = ours.forward_logical_channel_number.0;
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelAck(open_logical_channel_ack(
                lcn,
                1,
                local(),
            ))),
        );
        drain(&mut c);
        c.handle_message(
            now,
            request(h245::RequestMessage::openLogicalChannel(open_logical_channel(
                5,
                AudioCodec::Pcmu,
                local().rtcp,
            ))),
        );
        let (sent, _) = drain(&mut c);
        let [M::response(h245::ResponseMessage::openLogicalChannelAck(_)), M::request(h245::RequestMessage::closeLogicalChannel(clc))] =
            &sent[..]
        else {
            panic!("{sent:?}")
        };
        assert_eq!(clc.forward_logical_channel_number.0, lcn);
        c.handle_message(
            now,
            response(h245::ResponseMessage::closeLogicalChannelAck(
                h245::CloseLogicalChannelAck::new(h245::LogicalChannelNumber(lcn)),
            )),
        );
        let (sent, _) = drain(&mut c);
        let [M::request(h245::RequestMessage::openLogicalChannel(again))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(audio_channel(again).unwrap().0, AudioCodec::Pcmu);
        assert_ne!(again.forward_logical_channel_number.0, lcn);
    }

    #[test]
    fn video_and_unknown_audio_are_rejected_cleanly() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.set_media(now, local(), MediaMode::OpenChannels);
        c.handle_message(now, request(h245::RequestMessage::openLogicalChannel(video_olc(3))));
        let mut g729 = open_logical_channel(4, AudioCodec::Pcmu, local().rtcp);
        g729.forward_logical_channel_parameters.data_type = h245::DataType::audioData(h245::AudioCapability::g729(2));
        c.handle_message(now, request(h245::RequestMessage::openLogicalChannel(g729)));
        let (sent, events) = drain(&mut c);
        assert!(events.is_empty());
        assert_eq!(sent.len(), 2);
        for (m, lcn) in sent.iter().zip([3, 4]) {
            let M::response(h245::ResponseMessage::openLogicalChannelReject(r)) = m else {
                panic!("{m:?}")
            };
            assert_eq!(r.forward_logical_channel_number.0, lcn);
            assert_eq!(r.cause, h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(()));
        }
        // And our own set offers no video at all.
        let tcs = media::terminal_capability_set(1, &AudioCodec::ALL);
        let M::request(h245::RequestMessage::terminalCapabilitySet(tcs)) = tcs else {
            unreachable!()
        };
        assert!(tcs.capability_table.unwrap().to_vec().iter().all(|e| !matches!(
            e.capability,
            Some(
                h245::Capability::receiveVideoCapability(_)
                    | h245::Capability::transmitVideoCapability(_)
                    | h245::Capability::receiveAndTransmitVideoCapability(_)
            )
        )));
    }

    fn video_local() -> LocalMedia {
        LocalMedia {
            rtp: "198.51.100.1:20010".parse().unwrap(),
            rtcp: "198.51.100.1:20011".parse().unwrap(),
        }
    }

    fn h264_olc(lcn: u16, pt: Option<u8>) -> h245::OpenLogicalChannel {
        let mut olc =
            video_open_logical_channel(lcn, &H264::CONSTRAINED_BASELINE, 97, "192.0.2.9:5007".parse().unwrap());
        if let h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
            p,
        ) = &mut olc.forward_logical_channel_parameters.multiplex_parameters
        {
            p.dynamic_rtppayload_type = pt;
        }
        olc
    }

    #[test]
    fn h264_channels_both_ways_and_fast_update() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.set_video(now, video_local());
        c.set_media(now, local(), MediaMode::FastConnect(AudioCodec::Pcmu));
        c.start(now);
        let (sent, _) = drain(&mut c);
        let M::request(h245::RequestMessage::terminalCapabilitySet(ours)) = &sent[0] else {
            panic!("{sent:?}")
        };
        // Our set announces H.264 Constrained Baseline.
        assert_eq!(media::receive_h264(ours), Some(H264::CONSTRAINED_BASELINE));
        // The peer receives H.264 Baseline level 2.2 at 768 kbit/s, and H.263.
        let peer = H264 {
            profile: media::H264_PROFILE_BASELINE,
            profile_iop: 0,
            level: 57,
            max_bit_rate: Some(7680),
        };
        let M::request(h245::RequestMessage::terminalCapabilitySet(mut tcs)) =
            media::terminal_capability_set_with_video(1, &[AudioCodec::Pcmu], Some(&peer))
        else {
            unreachable!()
        };
        let mut table: Vec<h245::CapabilityTableEntry> = tcs
            .capability_table
            .take()
            .unwrap()
            .to_vec()
            .into_iter()
            .cloned()
            .collect();
        table.insert(
            0,
            h245::CapabilityTableEntry::new(
                h245::CapabilityTableEntryNumber(90),
                Some(h245::Capability::receiveVideoCapability(
                    match video_olc(1).forward_logical_channel_parameters.data_type {
                        h245::DataType::videoData(v) => v,
                        other => panic!("{other:?}"),
                    },
                )),
            ),
        );
        tcs.capability_table = Some(rasn::types::SetOf::from_vec(table));
        c.handle_message(now, request(h245::RequestMessage::terminalCapabilitySet(tcs)));
        c.handle_message(now, master_slave_determination(50, 77));
        c.handle_message(now, msd_ack(false));
        let (sent, events) = drain(&mut c);
        assert!(events.is_empty(), "{events:?}");
        let olc = sent
            .iter()
            .find_map(|m| match m {
                M::request(h245::RequestMessage::openLogicalChannel(o)) => Some(o.clone()),
                _ => None,
            })
            .expect("our video channel");
        let (h264, pt, rtcp) = video_channel(&olc).unwrap();
        assert_eq!(pt, Some(H264_PAYLOAD_TYPE));
        assert_eq!(rtcp, Some(video_local().rtcp));
        // The lower level and bit rate of the two.
        assert_eq!((h264.level, h264.max_bit_rate), (57, Some(7680)));
        assert_eq!(h264.level_name(), "2.2");
        // Its ack gives where the peer receives.
        let peer_video = LocalMedia {
            rtp: "192.0.2.9:5006".parse().unwrap(),
            rtcp: "192.0.2.9:5007".parse().unwrap(),
        };
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelAck(open_logical_channel_ack(
                olc.forward_logical_channel_number.0,
                VIDEO_SESSION,
                peer_video,
            ))),
        );
        let (_, events) = drain(&mut c);
        assert_eq!(
            events,
            vec![ControlEvent::Media(MediaEvent::VideoTransmitOpened {
                h264,
                payload_type: H264_PAYLOAD_TYPE,
                rtp: Some(peer_video.rtp),
                rtcp: Some(peer_video.rtcp),
            })]
        );
        // No key frame can be asked before the peer's channel.
        assert!(!c.request_video_fast_update());
        // The peer's H.264 channel is acked with our video addresses.
        c.handle_message(
            now,
            request(h245::RequestMessage::openLogicalChannel(h264_olc(31, Some(97)))),
        );
        let (sent, events) = drain(&mut c);
        let [M::response(h245::ResponseMessage::openLogicalChannelAck(ack))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(ack.forward_logical_channel_number.0, 31);
        assert_eq!(ack_addresses(ack), (Some(video_local().rtp), Some(video_local().rtcp)));
        assert_eq!(
            events,
            vec![ControlEvent::Media(MediaEvent::VideoReceiveOpened {
                h264: H264::CONSTRAINED_BASELINE,
                payload_type: 97,
                rtcp: Some("192.0.2.9:5007".parse().unwrap()),
            })]
        );
        // A key frame request goes on the peer's channel.
        assert!(c.request_video_fast_update());
        let (sent, _) = drain(&mut c);
        assert_eq!(sent, vec![video_fast_update(31)]);
        // The peer's fast update and flow control are reported.
        c.handle_message(now, video_fast_update(olc.forward_logical_channel_number.0));
        c.handle_message(
            now,
            flow_control_command(olc.forward_logical_channel_number.0, Some(384_000)),
        );
        let (_, events) = drain(&mut c);
        assert_eq!(
            events,
            vec![
                ControlEvent::Media(MediaEvent::FastUpdateRequested),
                ControlEvent::Media(MediaEvent::FlowControl {
                    max_bit_rate: Some(384_000)
                }),
            ]
        );
        // A second video channel from the peer is refused; closing its first one is reported.
        c.handle_message(
            now,
            request(h245::RequestMessage::openLogicalChannel(h264_olc(32, Some(97)))),
        );
        c.handle_message(
            now,
            request(h245::RequestMessage::closeLogicalChannel(
                h245::CloseLogicalChannel::new(
                    h245::LogicalChannelNumber(31),
                    h245::CloseLogicalChannelSource::user(()),
                    None,
                ),
            )),
        );
        let (sent, events) = drain(&mut c);
        assert!(
            matches!(&sent[0], M::response(h245::ResponseMessage::openLogicalChannelReject(r)) if r.forward_logical_channel_number.0 == 32)
        );
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::VideoReceiveClosed)]);
        assert!(!c.request_video_fast_update());
    }

    #[test]
    fn video_we_cannot_take_is_refused_cleanly() {
        let now = Instant::now();
        let reject_cause = |c: &mut Control, olc| {
            c.handle_message(now, request(h245::RequestMessage::openLogicalChannel(olc)));
            let (sent, events) = drain(c);
            assert!(events.is_empty(), "{events:?}");
            let [M::response(h245::ResponseMessage::openLogicalChannelReject(r))] = &sent[..] else {
                panic!("{sent:?}")
            };
            r.cause.clone()
        };
        let mut c = Control::new(ControlConfig::default());
        c.set_video(now, video_local());
        c.set_media(now, local(), MediaMode::OpenChannels);
        use h245::OpenLogicalChannelRejectCause as Cause;
        // H.263, even with video taken.
        assert_eq!(reject_cause(&mut c, video_olc(3)), Cause::dataTypeNotSupported(()));
        // H.264 without its dynamic payload type.
        assert_eq!(
            reject_cause(&mut c, h264_olc(4, None)),
            Cause::dataTypeALCombinationNotSupported(())
        );
        // H.264 Main only.
        let mut main = h264_olc(5, Some(97));
        main.forward_logical_channel_parameters.data_type = h245::DataType::videoData(
            H264 {
                profile: 32,
                ..H264::CONSTRAINED_BASELINE
            }
            .capability(),
        );
        assert_eq!(reject_cause(&mut c, main), Cause::dataTypeNotSupported(()));
        // A call that takes no video refuses H.264 too, and announces none.
        let mut audio_only = Control::new(ControlConfig::default());
        audio_only.set_media(now, local(), MediaMode::OpenChannels);
        assert_eq!(
            reject_cause(&mut audio_only, h264_olc(6, Some(97))),
            Cause::dataTypeNotSupported(())
        );
        audio_only.start(now);
        let (sent, _) = drain(&mut audio_only);
        let M::request(h245::RequestMessage::terminalCapabilitySet(tcs)) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert_eq!(media::receive_h264(tcs), None);
    }

    #[test]
    fn a_refused_video_channel_is_not_retried() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.set_video(now, video_local());
        c.set_media(now, local(), MediaMode::FastConnect(AudioCodec::Pcmu));
        c.start(now);
        drain(&mut c);
        c.handle_message(
            now,
            media::terminal_capability_set_with_video(1, &[AudioCodec::Pcmu], Some(&H264::CONSTRAINED_BASELINE)),
        );
        c.handle_message(now, master_slave_determination(50, 77));
        c.handle_message(now, msd_ack(false));
        let (sent, _) = drain(&mut c);
        let lcn = sent
            .iter()
            .find_map(|m| match m {
                M::request(h245::RequestMessage::openLogicalChannel(o)) => Some(o.forward_logical_channel_number.0),
                _ => None,
            })
            .unwrap();
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelReject(
                h245::OpenLogicalChannelReject::new(
                    h245::LogicalChannelNumber(lcn),
                    h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(()),
                    None,
                ),
            )),
        );
        let (sent, events) = drain(&mut c);
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::VideoTransmitFailed)]);
    }

    #[test]
    fn channel_close_requests_and_commands_are_answered() {
        let now = Instant::now();
        let (mut c, sent) = connected(now, AudioCodec::Pcmu, &[AudioCodec::Pcmu]);
        let Some(M::request(h245::RequestMessage::openLogicalChannel(ours))) = sent.last() else {
            panic!("{sent:?}")
        };
        let lcn = ours.forward_logical_channel_number.0;
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelAck(open_logical_channel_ack(
                lcn,
                1,
                local(),
            ))),
        );
        drain(&mut c);

        // The peer closes its channel: Ack, event.
        c.handle_message(
            now,
            request(h245::RequestMessage::closeLogicalChannel(
                h245::CloseLogicalChannel::new(
                    h245::LogicalChannelNumber(101),
                    h245::CloseLogicalChannelSource::user(()),
                    None,
                ),
            )),
        );
        let (sent, events) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [M::response(h245::ResponseMessage::closeLogicalChannelAck(a))] if a.forward_logical_channel_number.0 == 101
        ));
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::ReceiveClosed)]);

        // The peer asks us to close ours: Ack, then CloseLogicalChannel; an unknown one is refused.
        for n in [lcn + 40, lcn] {
            c.handle_message(
                now,
                request(h245::RequestMessage::requestChannelClose(
                    h245::RequestChannelClose::new(h245::LogicalChannelNumber(n), None, None),
                )),
            );
        }
        let (sent, events) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::response(h245::ResponseMessage::requestChannelCloseReject(_)),
                M::response(h245::ResponseMessage::requestChannelCloseAck(_)),
                M::request(h245::RequestMessage::closeLogicalChannel(clc)),
            ] if clc.forward_logical_channel_number.0 == lcn
        ));
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::TransmitClosed)]);
        c.handle_message(
            now,
            response(h245::ResponseMessage::closeLogicalChannelAck(
                h245::CloseLogicalChannelAck::new(h245::LogicalChannelNumber(lcn)),
            )),
        );
        // Not reopened until new capabilities.
        c.handle_timeout(now + Duration::from_secs(5));
        assert_eq!(drain(&mut c).0, vec![]);
        c.handle_message(now, peer_tcs(2, &[AudioCodec::Pcmu]));
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [M::response(h245::ResponseMessage::terminalCapabilitySetAck(_))]
        ));
        c.handle_timeout(now + Duration::from_secs(1));
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [M::request(h245::RequestMessage::openLogicalChannel(_))]
        ));

        // Commands and requests that need an answer or an event.
        c.handle_message(now, video_fast_update(3));
        c.handle_message(
            now,
            M::command(h245::CommandMessage::flowControlCommand(h245::FlowControlCommand::new(
                h245::FlowControlCommandScope::wholeMultiplex(()),
                h245::FlowControlCommandRestriction::maximumBitRate(640),
            ))),
        );
        c.handle_message(
            now,
            request(h245::RequestMessage::roundTripDelayRequest(
                h245::RoundTripDelayRequest::new(h245::SequenceNumber(9)),
            )),
        );
        c.handle_message(
            now,
            request(h245::RequestMessage::maintenanceLoopRequest(
                h245::MaintenanceLoopRequest::new(h245::MaintenanceLoopRequestType::systemLoop(())),
            )),
        );
        c.handle_message(
            now,
            request(h245::RequestMessage::communicationModeRequest(
                h245::CommunicationModeRequest::new(),
            )),
        );
        c.handle_message(now, signalling_user_input("5"));
        c.handle_message(now, end_session_command());
        let (sent, events) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::response(h245::ResponseMessage::roundTripDelayResponse(r)),
                M::response(h245::ResponseMessage::maintenanceLoopReject(_)),
                M::indication(h245::IndicationMessage::functionNotUnderstood(h245::FunctionNotUnderstood::request(
                    h245::RequestMessage::communicationModeRequest(_)
                ))),
            ] if r.sequence_number.0 == 9
        ));
        assert_eq!(
            events,
            vec![
                ControlEvent::Media(MediaEvent::FastUpdateRequested),
                ControlEvent::Media(MediaEvent::FlowControl {
                    max_bit_rate: Some(64_000)
                }),
                ControlEvent::Dtmf('5'),
                ControlEvent::EndSession,
            ]
        );
    }

    fn signalling_user_input(s: &str) -> M {
        crate::signalling::user_input(s).unwrap()
    }

    #[test]
    fn rejected_codecs_are_not_tried_again() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.set_media(now, local(), MediaMode::OpenChannels);
        c.start(now);
        c.handle_message(now, peer_tcs(1, &[AudioCodec::G722, AudioCodec::Pcmu]));
        c.handle_message(now, master_slave_determination(50, 1));
        c.handle_message(now, msd_ack(false));
        c.handle_timeout(now + Duration::from_secs(1));
        let mut codecs = Vec::new();
        let mut events = Vec::new();
        for _ in 0..3 {
            let (sent, ev) = drain(&mut c);
            events.extend(ev);
            let Some(M::request(h245::RequestMessage::openLogicalChannel(o))) = sent.last() else {
                break;
            };
            codecs.push(audio_channel(o).unwrap().0);
            c.handle_message(
                now,
                response(h245::ResponseMessage::openLogicalChannelReject(
                    h245::OpenLogicalChannelReject::new(
                        o.forward_logical_channel_number.clone(),
                        h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(()),
                        None,
                    ),
                )),
            );
        }
        assert_eq!(codecs, vec![AudioCodec::G722, AudioCodec::Pcmu]);
        let (_, ev) = drain(&mut c);
        events.extend(ev);
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::TransmitFailed)]);
    }

    #[test]
    fn master_slave_determination_both_ways_and_ties() {
        let now = Instant::now();
        // Two confgates (same terminal type) settle on opposite statuses.
        let mut a = Control::new(ControlConfig {
            msd_number: 100,
            ..ControlConfig::default()
        });
        let mut b = Control::new(ControlConfig {
            msd_number: 200,
            ..ControlConfig::default()
        });
        a.start(now);
        b.start(now);
        for _ in 0..4 {
            let (to_b, _) = drain(&mut a);
            let (to_a, _) = drain(&mut b);
            for m in to_b {
                b.handle_message(now, m);
            }
            for m in to_a {
                a.handle_message(now, m);
            }
        }
        assert_eq!(
            a.is_master(),
            Some(true),
            "the larger number difference from the peer's side"
        );
        assert_eq!(b.is_master(), Some(false));
        assert_eq!(a.capabilities_accepted(), Some(true));
        assert_eq!(b.peer_audio(), Some(&AudioCodec::ALL[..]));

        // Identical numbers: rejected when idle, retried when outgoing.
        let mut c = Control::new(ControlConfig::default());
        c.handle_message(
            now,
            master_slave_determination(240, ControlConfig::default().msd_number),
        );
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [M::response(h245::ResponseMessage::masterSlaveDeterminationReject(_))]
        ));
        c.start(now);
        drain(&mut c);
        c.handle_message(
            now,
            response(h245::ResponseMessage::masterSlaveDeterminationReject(
                h245::MasterSlaveDeterminationReject::new(h245::MasterSlaveDeterminationRejectCause::identicalNumbers(
                    (),
                )),
            )),
        );
        let (sent, _) = drain(&mut c);
        let [M::request(h245::RequestMessage::masterSlaveDetermination(m))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_ne!(m.status_determination_number, ControlConfig::default().msd_number);
        assert!(m.status_determination_number < 1 << 24);
    }

    #[test]
    fn fast_connect_opens_nothing_and_takes_only_its_codec() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.set_media(now, local(), MediaMode::FastConnect(AudioCodec::Pcmu));
        c.start(now);
        c.handle_message(now, peer_tcs(1, &[AudioCodec::Pcma, AudioCodec::Pcmu]));
        c.handle_message(now, msd_ack(true));
        c.handle_timeout(now + Duration::from_secs(2));
        let (sent, _) = drain(&mut c);
        assert!(sent
            .iter()
            .all(|m| !matches!(m, M::request(h245::RequestMessage::openLogicalChannel(_)))));
        for codec in [AudioCodec::Pcma, AudioCodec::Pcmu] {
            c.handle_message(
                now,
                request(h245::RequestMessage::openLogicalChannel(open_logical_channel(
                    7,
                    codec,
                    local().rtcp,
                ))),
            );
        }
        let (sent, _) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::response(h245::ResponseMessage::openLogicalChannelReject(_)),
                M::response(h245::ResponseMessage::openLogicalChannelAck(_))
            ]
        ));
    }

    #[test]
    fn an_empty_capability_set_pauses_our_channel() {
        let now = Instant::now();
        let (mut c, sent) = connected(now, AudioCodec::Pcmu, &[AudioCodec::Pcmu]);
        let Some(M::request(h245::RequestMessage::openLogicalChannel(ours))) = sent.last() else {
            panic!()
        };
        let lcn = ours.forward_logical_channel_number.0;
        c.handle_message(
            now,
            response(h245::ResponseMessage::openLogicalChannelAck(open_logical_channel_ack(
                lcn,
                1,
                local(),
            ))),
        );
        drain(&mut c);
        let M::request(h245::RequestMessage::terminalCapabilitySet(mut empty)) = peer_tcs(2, &[]) else {
            unreachable!()
        };
        empty.capability_table = None;
        empty.capability_descriptors = None;
        c.handle_message(now, request(h245::RequestMessage::terminalCapabilitySet(empty)));
        let (sent, events) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [
                M::response(h245::ResponseMessage::terminalCapabilitySetAck(_)),
                M::request(h245::RequestMessage::closeLogicalChannel(_))
            ]
        ));
        assert_eq!(events, vec![ControlEvent::Media(MediaEvent::TransmitClosed)]);
    }

    #[test]
    fn peer_channels_before_our_media_wait_for_it() {
        let now = Instant::now();
        let mut c = Control::new(ControlConfig::default());
        c.handle_message(
            now,
            request(h245::RequestMessage::openLogicalChannel(open_logical_channel(
                1,
                AudioCodec::Pcmu,
                local().rtcp,
            ))),
        );
        assert_eq!(drain(&mut c), (vec![], vec![]));
        c.set_media(now, local(), MediaMode::OpenChannels);
        let (sent, events) = drain(&mut c);
        assert!(matches!(
            &sent[..],
            [M::response(h245::ResponseMessage::openLogicalChannelAck(_))]
        ));
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn garbage_is_dropped() {
        let mut c = Control::new(ControlConfig::default());
        assert!(!c.handle_pdu(Instant::now(), &[0xff, 0x00, 0x13]));
        assert!(c.poll_output().is_none());
    }
}
