//! A scripted H.323 endpoint (written here on `confgate-h323`) dials into
//! conferences without Fast Connect: the audio channels are opened by
//! H.245 (TerminalCapabilitySet, MasterSlaveDetermination,
//! OpenLogicalChannel both ways), scripted message by message here:
//! - tunnelled in the H.225.0 messages;
//! - on a separate H.245 connection to the address the daemon offers in
//!   Connect (the endpoint neither tunnels nor gives one), which the daemon
//!   closes at the end of the call;
//! - on a separate H.245 connection the daemon opens to the `h245Address`
//!   of the Setup, with a PIN entered by UserInputIndication on it.
//!
//! In each the endpoint's H.263 channel is refused
//! (`dataTypeNotSupported`), it hears a `confgate bot` playing a tone and
//! the bot hears its tone, and the call ends cleanly (the endpoint's
//! EndSessionCommand, its ReleaseComplete, or the conference ending).
//!
//! Video: two endpoints that announce and open H.264 get their channels
//! acknowledged with the relay's video addresses and the daemon's H.264
//! channels towards them; one's synthetic H.264 RTP reaches the other as
//! the switched stream (the receiver's payload type, one SSRC), each gets
//! VideoFastUpdatePicture when its video starts going to the other, and a
//! VideoFastUpdatePicture of the receiver reaches the sender. With three,
//! the one who starts speaking gets VideoFastUpdatePicture and the others'
//! switched stream changes to its video (same SSRC). A call that reaches
//! the conference through the voice menu gets H.264 capabilities then.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confgate_suite::h323_endpoint::{assert_bot_heard, assert_endpoint_heard, bot, next_signalling, read_some, Media};
use confgate_suite::Daemon;
use h323::asn1::{self, h225, h245};
use h323::control::{self, LocalMedia};
use h323::media::{self, AudioCodec, G711, H264};
use h323::q931::{CallReference, Message, MessageType};
use h323::signalling::{self, SetupParams};
use h323::tpkt::{self, TpktDecoder};

use h245::MultimediaSystemControlMessage as M;

const CRV: u16 = 0x3131;
/// The endpoint's logical channel numbers.
const AUDIO_LCN: u16 = 11;
const VIDEO_LCN: u16 = 12;

/// How the endpoint carries H.245.
enum Link {
    Tunnelled,
    Separate { stream: TcpStream, decoder: TpktDecoder },
}

/// How the endpoint sets its H.245 up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Tunnelled,
    /// Neither tunnelling nor an address: the daemon offers one.
    DaemonListens,
    /// An `h245Address` in the Setup: the daemon connects.
    EndpointListens,
}

struct Endpoint {
    tcp: TcpStream,
    decoder: TpktDecoder,
    link: Link,
    rtp: UdpSocket,
    /// The relay's RTP address, from the daemon's OpenLogicalChannelAck.
    relay: Option<SocketAddr>,
    h245_in: VecDeque<M>,
    /// Non-H.245 signalling messages seen while reading H.245.
    calls: VecDeque<(Message, Option<h225::H323UserInformation>)>,
    /// The daemon's H.245 address from Connect.
    offered: Option<SocketAddr>,
    /// Where the endpoint receives and sends video.
    video_rtp: UdpSocket,
    /// It announces and opens H.264 (else it opens H.263, to be refused).
    h264: bool,
    /// The relay's video RTP address, from the daemon's ack of our H.264 channel.
    video_relay: Option<SocketAddr>,
    /// The payload type of the daemon's H.264 channel towards us.
    video_pt: Option<u8>,
    /// VideoFastUpdatePicture commands received for our video channel.
    fast_updates: usize,
    /// The daemon's H.264 channel towards us.
    their_video_lcn: Option<u16>,
    /// The call goes to the voice menu first: no video until a conference.
    ivr: bool,
}

/// The payload type the endpoint sends H.264 with.
const ENDPOINT_H264_PT: u8 = 100;
/// What the endpoint announces and sends: H.264 Baseline level 2 at 384 kbit/s.
const ENDPOINT_H264: H264 = H264 {
    profile: media::H264_PROFILE_BASELINE,
    profile_iop: 0,
    level: 43,
    max_bit_rate: Some(3840),
};

impl Endpoint {
    /// Setup without fastStart → Call Proceeding → Connect, and the H.245
    /// transport of `mode` up.
    fn dial(d: &Daemon, dialed: &str, mode: Mode) -> Endpoint {
        Self::dial_with(d, dialed, mode, false)
    }

    /// [`Endpoint::dial`], announcing and opening H.264 video when `h264`.
    fn dial_with(d: &Daemon, dialed: &str, mode: Mode, h264: bool) -> Endpoint {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", d.h323_port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let listener = (mode == Mode::EndpointListens).then(|| TcpListener::bind("127.0.0.1:0").unwrap());
        let mut ep = Endpoint {
            tcp,
            decoder: TpktDecoder::new(65_535),
            link: Link::Tunnelled,
            rtp,
            relay: None,
            h245_in: VecDeque::new(),
            calls: VecDeque::new(),
            offered: None,
            video_rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            h264,
            video_relay: None,
            video_pt: None,
            fast_updates: 0,
            their_video_lcn: None,
            ivr: false,
        };
        let setup = signalling::setup(&SetupParams {
            call_reference: CRV,
            call_id: [0x6b; 16],
            dialed: dialed.into(),
            display: "Scripted H.245 room".into(),
            calling: None,
            fast_start: Vec::new(),
            tunnelling: mode == Mode::Tunnelled,
            h245_address: listener.as_ref().map(|l| l.local_addr().unwrap()),
        })
        .unwrap();
        ep.tcp.write_all(&setup).unwrap();
        let (proceeding, _) = ep.next(Duration::from_secs(10)).expect("Call Proceeding");
        assert_eq!(proceeding.message_type, MessageType::CallProceeding);
        let (connect, uuie) = ep.next(Duration::from_secs(10)).expect("Connect");
        assert_eq!(connect.message_type, MessageType::Connect, "{connect:?}");
        let uuie = uuie.unwrap();
        let h225::H323UUPDUH323MessageBody::connect(c) = &uuie.h323_uu_pdu.h323_message_body else {
            panic!("{uuie:?}")
        };
        assert!(c.fast_start.is_none(), "no Fast Connect without fastStart");
        ep.offered = c.h245_address.as_ref().and_then(media::from_h225);
        assert_eq!(uuie.h323_uu_pdu.h245_tunneling, Some(mode == Mode::Tunnelled));
        match mode {
            Mode::Tunnelled => {
                assert!(ep.offered.is_none());
                // Our capabilities and determination ride in Connect.
                for b in uuie.h323_uu_pdu.h245_control.iter().flatten() {
                    ep.h245_in.push_back(asn1::decode_h245(b).unwrap());
                }
                assert_eq!(ep.h245_in.len(), 2, "TCS and MSD in Connect: {:?}", ep.h245_in);
            }
            Mode::DaemonListens => {
                let addr = ep.offered.expect("an h245Address in Connect");
                assert_eq!(addr.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                ep.link = Link::Separate {
                    stream,
                    decoder: TpktDecoder::new(65_535),
                };
            }
            Mode::EndpointListens => {
                assert!(ep.offered.is_none(), "the daemon connects to ours");
                let listener = listener.unwrap();
                listener.set_nonblocking(true).unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => panic!("the daemon did not connect to our H.245 address: {e}"),
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                ep.link = Link::Separate {
                    stream,
                    decoder: TpktDecoder::new(65_535),
                };
            }
        }
        ep
    }

    /// The next signalling message, `None` on timeout or EOF.
    fn next(&mut self, timeout: Duration) -> Option<(Message, Option<h225::H323UserInformation>)> {
        if let Some(m) = self.calls.pop_front() {
            return Some(m);
        }
        next_signalling(&mut self.tcp, &mut self.decoder, timeout)
    }

    /// The next H.245 message from the daemon, `None` on timeout.
    fn next_h245(&mut self, timeout: Duration) -> Option<M> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.h245_in.pop_front() {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match &mut self.link {
                Link::Tunnelled => {
                    let Some((msg, uuie)) = self.next(Duration::from_millis(100)) else {
                        continue;
                    };
                    let control: Vec<M> = uuie
                        .iter()
                        .flat_map(|u| u.h323_uu_pdu.h245_control.iter().flatten())
                        .map(|b| asn1::decode_h245(b).unwrap())
                        .collect();
                    self.h245_in.extend(control);
                    if msg.message_type != MessageType::Facility {
                        self.calls.push_back((msg, uuie));
                    }
                }
                Link::Separate { stream, decoder } => {
                    while let Some(p) = decoder.next_pdu().unwrap() {
                        self.h245_in.push_back(asn1::decode_h245(p).unwrap());
                    }
                    if self.h245_in.is_empty() {
                        read_some(stream, decoder)?;
                    }
                }
            }
        }
    }

    fn send_h245(&mut self, msgs: &[M]) {
        match &mut self.link {
            Link::Tunnelled => {
                let fac = signalling::facility_h245(CallReference::new(CRV, false), None, msgs).unwrap();
                self.tcp.write_all(&fac).unwrap();
            }
            Link::Separate { stream, .. } => {
                for m in msgs {
                    let mut framed = Vec::new();
                    tpkt::encode(&asn1::encode(m).unwrap(), &mut framed).unwrap();
                    stream.write_all(&framed).unwrap();
                }
            }
        }
    }

    /// Capability exchange, master/slave determination, both audio
    /// channels (G.711 µ-law, all the endpoint takes), and a refused H.263
    /// channel.
    fn open_channels(&mut self) {
        let local = self.rtp.local_addr().unwrap();
        let ours = LocalMedia {
            rtp: local,
            rtcp: SocketAddr::new(local.ip(), local.port() + 1),
        };
        let video_ours = self.video_ours();
        let h264 = ENDPOINT_H264;
        self.send_h245(&[
            media::terminal_capability_set_with_video(1, &[AudioCodec::Pcmu], self.h264.then_some(&h264)),
            control::master_slave_determination(50, 0x12_3456),
        ]);
        let (mut their_tcs, mut their_msd, mut our_msd_acked, mut opened) = (false, false, false, false);
        let (mut their_channel, mut video_refused) = (false, false);
        // Without H.264 (or before a conference) nothing comes our way: the
        // daemon's video channel counts as there.
        let mut their_video = !self.h264 || self.ivr;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(their_tcs && their_msd && our_msd_acked && opened && their_channel && video_refused && their_video) {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.next_h245(left).unwrap_or_else(|| {
                panic!(
                    "H.245 stalled: tcs {their_tcs} msd {their_msd} msd-ack {our_msd_acked} \
                     opened {opened} their channel {their_channel} video refused {video_refused}"
                )
            });
            match m {
                M::request(h245::RequestMessage::terminalCapabilitySet(tcs)) => {
                    let table_set = tcs.capability_table.clone().unwrap();
                    let table = table_set.to_vec();
                    let audio: Vec<_> = table
                        .iter()
                        .filter_map(|e| match &e.capability {
                            Some(h245::Capability::receiveAudioCapability(a)) => AudioCodec::from_capability(a),
                            _ => None,
                        })
                        .map(|(c, _)| c)
                        .collect();
                    assert!(audio.contains(&AudioCodec::Pcmu) && audio.contains(&AudioCodec::Pcma));
                    // A conference call takes H.264 Constrained Baseline, and no other video.
                    let video: Vec<_> = table
                        .iter()
                        .filter_map(|e| match &e.capability {
                            Some(h245::Capability::receiveVideoCapability(v)) => Some(v.clone()),
                            _ => None,
                        })
                        .collect();
                    if self.ivr {
                        assert!(video.is_empty(), "no video in the voice menu: {video:?}");
                    } else {
                        assert_eq!(video.len(), 1, "{video:?}");
                        let theirs = H264::from_capability(&video[0]).expect("H.264");
                        assert!(theirs.takes_baseline() && theirs.profile_iop & 64 != 0, "{theirs:?}");
                    }
                    self.send_h245(&[M::response(h245::ResponseMessage::terminalCapabilitySetAck(
                        h245::TerminalCapabilitySetAck::new(tcs.sequence_number, None),
                    ))]);
                    their_tcs = true;
                    // Our audio channel, and a video one: H.264, or H.263 that the daemon must refuse.
                    let audio = control::open_logical_channel(AUDIO_LCN, AudioCodec::Pcmu, ours.rtcp);
                    if self.h264 {
                        let video =
                            control::video_open_logical_channel(VIDEO_LCN, &h264, ENDPOINT_H264_PT, video_ours.rtcp);
                        self.send_h245(&[
                            M::request(h245::RequestMessage::openLogicalChannel(audio)),
                            M::request(h245::RequestMessage::openLogicalChannel(video)),
                        ]);
                        continue;
                    }
                    let mut video = control::open_logical_channel(VIDEO_LCN, AudioCodec::Pcmu, ours.rtcp);
                    video.forward_logical_channel_parameters.data_type =
                        h245::DataType::videoData(media::h263_capability());
                    self.send_h245(&[
                        M::request(h245::RequestMessage::openLogicalChannel(audio)),
                        M::request(h245::RequestMessage::openLogicalChannel(video)),
                    ]);
                }
                M::request(h245::RequestMessage::masterSlaveDetermination(msd)) => {
                    // An MCU outranks a terminal: the daemon is the master.
                    assert!(msd.terminal_type > 50, "{msd:?}");
                    self.send_h245(&[M::response(h245::ResponseMessage::masterSlaveDeterminationAck(
                        h245::MasterSlaveDeterminationAck::new(h245::MasterSlaveDeterminationAckDecision::master(())),
                    ))]);
                    their_msd = true;
                }
                M::response(h245::ResponseMessage::terminalCapabilitySetAck(_)) => {}
                M::response(h245::ResponseMessage::masterSlaveDeterminationAck(ack)) => {
                    assert_eq!(ack.decision, h245::MasterSlaveDeterminationAckDecision::slave(()));
                    our_msd_acked = true;
                }
                M::response(h245::ResponseMessage::openLogicalChannelAck(ack))
                    if self.h264 && ack.forward_logical_channel_number.0 == VIDEO_LCN =>
                {
                    let (rtp, rtcp) = control::ack_addresses(&ack);
                    let (rtp, rtcp) = (rtp.expect("video RTP address"), rtcp.expect("video RTCP address"));
                    assert_ne!(Some(rtp), self.relay, "video has its own relay address");
                    assert_eq!(rtp.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
                    assert_ne!(rtp.port(), rtcp.port());
                    self.video_relay = Some(rtp);
                    video_refused = true;
                }
                M::response(h245::ResponseMessage::openLogicalChannelAck(ack)) => {
                    assert_eq!(ack.forward_logical_channel_number.0, AUDIO_LCN);
                    let (rtp, rtcp) = control::ack_addresses(&ack);
                    assert!(rtp.is_some() && rtcp.is_some(), "{ack:?}");
                    self.relay = rtp;
                    opened = true;
                }
                M::response(h245::ResponseMessage::openLogicalChannelReject(rej)) => {
                    assert_eq!(rej.forward_logical_channel_number.0, VIDEO_LCN);
                    assert_eq!(rej.cause, h245::OpenLogicalChannelRejectCause::dataTypeNotSupported(()));
                    video_refused = true;
                }
                M::request(h245::RequestMessage::openLogicalChannel(olc)) if control::video_channel(&olc).is_some() => {
                    assert!(self.h264, "no video channel towards an endpoint without H.264");
                    let (theirs, pt, rtcp) = control::video_channel(&olc).unwrap();
                    // At most what we announced: level 2, 384 kbit/s, Baseline.
                    assert!(theirs.takes_baseline() && theirs.level <= 43, "{theirs:?}");
                    assert!(theirs.max_bit_rate.is_some_and(|b| b <= 3840), "{theirs:?}");
                    assert!(rtcp.is_some(), "the daemon's video RTCP address");
                    self.video_pt = Some(pt.expect("a dynamic payload type"));
                    self.their_video_lcn = Some(olc.forward_logical_channel_number.0);
                    let ack = control::open_logical_channel_ack(
                        olc.forward_logical_channel_number.0,
                        media::VIDEO_SESSION,
                        video_ours,
                    );
                    self.send_h245(&[M::response(h245::ResponseMessage::openLogicalChannelAck(ack))]);
                    their_video = true;
                }
                M::command(h245::CommandMessage::miscellaneousCommand(c))
                    if c.r_type == h245::MiscellaneousCommandType::videoFastUpdatePicture(()) =>
                {
                    assert_eq!(c.logical_channel_number.0, VIDEO_LCN);
                    self.fast_updates += 1;
                }
                M::request(h245::RequestMessage::openLogicalChannel(olc)) => {
                    let (codec, rtcp) = control::audio_channel(&olc).expect("an audio channel");
                    assert_eq!(codec, AudioCodec::Pcmu, "the only codec we receive");
                    assert!(rtcp.is_some(), "the daemon's RTCP address");
                    let ack = control::open_logical_channel_ack(olc.forward_logical_channel_number.0, 1, ours);
                    self.send_h245(&[M::response(h245::ResponseMessage::openLogicalChannelAck(ack))]);
                    their_channel = true;
                }
                other => panic!("unexpected H.245 message: {other:?}"),
            }
        }
    }

    /// Where the endpoint receives video.
    fn video_ours(&self) -> LocalMedia {
        let vlocal = self.video_rtp.local_addr().unwrap();
        LocalMedia {
            rtp: vlocal,
            rtcp: SocketAddr::new(vlocal.ip(), vlocal.port() + 1),
        }
    }

    /// After the voice menu put the call in a conference: the daemon's new
    /// capabilities announce H.264 (acknowledged), our H.264 channel opened
    /// again is acknowledged with the relay's video address, and the
    /// daemon's H.264 channel towards us is acknowledged.
    fn video_after_the_voice_menu(&mut self) {
        let (mut tcs, mut acked, mut theirs) = (false, false, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(tcs && acked && theirs) {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .next_h245(left)
                .unwrap_or_else(|| panic!("no video after the voice menu: tcs {tcs} acked {acked} theirs {theirs}"));
            match m {
                M::request(h245::RequestMessage::terminalCapabilitySet(t)) => {
                    assert!(media::receive_h264(&t).is_some(), "H.264 announced now");
                    let ours = self.video_ours();
                    let video =
                        control::video_open_logical_channel(VIDEO_LCN, &ENDPOINT_H264, ENDPOINT_H264_PT, ours.rtcp);
                    self.send_h245(&[
                        M::response(h245::ResponseMessage::terminalCapabilitySetAck(
                            h245::TerminalCapabilitySetAck::new(t.sequence_number, None),
                        )),
                        M::request(h245::RequestMessage::openLogicalChannel(video)),
                    ]);
                    tcs = true;
                }
                M::response(h245::ResponseMessage::openLogicalChannelAck(ack)) => {
                    assert_eq!(ack.forward_logical_channel_number.0, VIDEO_LCN);
                    self.video_relay = control::ack_addresses(&ack).0;
                    assert!(self.video_relay.is_some());
                    acked = true;
                }
                M::request(h245::RequestMessage::openLogicalChannel(olc)) => {
                    let (_, pt, _) = control::video_channel(&olc).expect("the daemon's video channel");
                    self.video_pt = pt;
                    self.their_video_lcn = Some(olc.forward_logical_channel_number.0);
                    let ack = control::open_logical_channel_ack(
                        olc.forward_logical_channel_number.0,
                        media::VIDEO_SESSION,
                        self.video_ours(),
                    );
                    self.send_h245(&[M::response(h245::ResponseMessage::openLogicalChannelAck(ack))]);
                    theirs = true;
                }
                M::command(h245::CommandMessage::miscellaneousCommand(c))
                    if c.r_type == h245::MiscellaneousCommandType::videoFastUpdatePicture(()) =>
                {
                    self.fast_updates += 1;
                }
                other => panic!("unexpected H.245 message: {other:?}"),
            }
        }
    }

    /// Reads H.245 for `timeout`, counting VideoFastUpdatePicture for our
    /// video channel.
    fn pump_h245(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_h245(left) {
                Some(M::command(h245::CommandMessage::miscellaneousCommand(c)))
                    if c.r_type == h245::MiscellaneousCommandType::videoFastUpdatePicture(()) =>
                {
                    assert_eq!(c.logical_channel_number.0, VIDEO_LCN, "on the channel we send on");
                    self.fast_updates += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
    }

    /// Sends synthetic H.264 RTP (payload type [`ENDPOINT_H264_PT`], SSRC
    /// `ssrc`, 50 packets/s, each a one-NAL packet tagged `cg-h264` and
    /// the SSRC's low octet) to the relay until the returned flag is set.
    fn send_video(&self, ssrc: u32) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
        let tx = self.video_rtp.try_clone().unwrap();
        let relay = self.video_relay.expect("the relay's video address");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            while !stop2.load(Ordering::Relaxed) {
                let seq = (n as u16).wrapping_add(1000);
                let mut pkt = vec![0x80, 0x80 | ENDPOINT_H264_PT];
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&((n as u32).wrapping_mul(1800)).to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                // A NAL unit header (type 5, IDR slice, every 50th; else type 1), then a tag.
                pkt.push(if n.is_multiple_of(50) { 0x65 } else { 0x41 });
                pkt.extend_from_slice(b"cg-h264");
                // Whose stream it is.
                pkt.push(ssrc as u8);
                pkt.extend_from_slice(&[0xab; 600]);
                let _ = tx.send_to(&pkt, relay);
                n += 1;
                let next = start + Duration::from_millis(20 * n);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            n
        });
        (stop, sender)
    }

    /// The video RTP packets received for `secs`: (payload type, SSRC, payload).
    fn receive_video(&self, secs: f64) -> Vec<(u8, u32, Vec<u8>)> {
        self.video_rtp
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            if let Ok((n, _)) = self.video_rtp.recv_from(&mut buf) {
                if n > 12 && buf[0] >> 6 == 2 {
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    got.push((buf[1] & 0x7f, ssrc, buf[12..n].to_vec()));
                }
            }
        }
        got
    }

    fn send_pin(&mut self, pin: &str) {
        self.send_h245(&[signalling::user_input(pin).unwrap()]);
    }

    /// Sends a µ-law tone at `hz` for `secs` (SSRC 0x42424242) and returns what it received, decoded (8 kHz).
    fn talk(&self, hz: f64, secs: f64) -> Vec<i16> {
        let media = Media {
            rtp: self.rtp.try_clone().unwrap(),
            codec: G711::Ulaw,
            to: self.relay.expect("the daemon's RTP address"),
            ssrc: 0x4242_4242,
        };
        media.talk(hz, secs)
    }

    /// Whether the separate H.245 connection is closed by the daemon within `timeout`.
    fn h245_closed(&mut self, timeout: Duration) -> bool {
        let Link::Separate { stream, decoder } = &mut self.link else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if read_some(stream, decoder).is_none() {
                return true;
            }
        }
        false
    }
}

#[test]
fn tunnelled_h245_channels_then_end_session() {
    let d = Daemon::start("h323-h245-tunnelled").unwrap();
    d.cli_ok(&["conference", "add", "7101"]).unwrap();
    let (bot, rec) = bot(&d, "7101", None, "10");
    let mut ep = Endpoint::dial(&d, "7101", Mode::Tunnelled);
    ep.open_channels();
    let heard = ep.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    // The endpoint ends the session: the daemon answers with its own, then ReleaseComplete.
    ep.send_h245(&[control::end_session_command()]);
    let mut got_end_session = false;
    let rc = loop {
        let (msg, uuie) = ep.next(Duration::from_secs(10)).expect("ReleaseComplete");
        let control: Vec<M> = uuie
            .iter()
            .flat_map(|u| u.h323_uu_pdu.h245_control.iter().flatten())
            .map(|b| asn1::decode_h245(b).unwrap())
            .collect();
        got_end_session |= control
            .iter()
            .any(|m| matches!(m, M::command(h245::CommandMessage::endSessionCommand(_))));
        if msg.message_type == MessageType::ReleaseComplete {
            break msg;
        }
    };
    assert!(got_end_session, "EndSessionCommand before ReleaseComplete");
    assert_eq!(rc.cause().map(|c| c.value), Some(16));
    assert!(
        ep.next(Duration::from_secs(5)).is_none(),
        "connection still open after ReleaseComplete"
    );
    assert_bot_heard(bot, &rec, 800.0);
    let log = d.stderr();
    assert!(log.contains("H.323 channels open by H.245"), "{log}");
    assert!(log.contains("H.323 call ended by the endpoint"), "{log}");
}

#[test]
fn separate_h245_to_the_daemons_address_then_the_endpoint_hangs_up() {
    let d = Daemon::start("h323-h245-daemon-listens").unwrap();
    d.cli_ok(&["conference", "add", "7102"]).unwrap();
    let (bot, rec) = bot(&d, "7102", None, "10");
    let mut ep = Endpoint::dial(&d, "7102", Mode::DaemonListens);
    ep.open_channels();
    let heard = ep.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    let rc = signalling::release_complete(CallReference::new(CRV, false), 16, None, None, false, Vec::new()).unwrap();
    ep.tcp.write_all(&rc).unwrap();
    assert!(
        ep.next(Duration::from_secs(5)).is_none(),
        "signalling still open after ReleaseComplete"
    );
    assert!(ep.h245_closed(Duration::from_secs(5)), "H.245 connection still open");
    // The call's H.245 listener is gone with the call.
    let offered = ep.offered.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(offered).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the H.245 listener {offered} outlives the call"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_bot_heard(bot, &rec, 800.0);
    let log = d.stderr();
    assert!(log.contains("H.323 call ended by the endpoint"), "{log}");
}

#[test]
fn separate_h245_to_the_endpoints_address_with_a_pin_then_the_conference_ends() {
    let d = Daemon::start("h323-h245-endpoint-listens").unwrap();
    d.cli_ok(&["conference", "add", "7103", "--closed", "--pin", "2468"])
        .unwrap();
    let (bot, rec) = bot(&d, "7103", Some("2468"), "10");
    let mut ep = Endpoint::dial(&d, "7103", Mode::EndpointListens);
    ep.open_channels();
    // The PIN prompt plays; the PIN goes as UserInputIndication on the H.245 connection.
    std::thread::sleep(Duration::from_millis(500));
    ep.send_pin("2468#");
    let heard = ep.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    assert_bot_heard(bot, &rec, 800.0);

    let (status, _) = d.api("POST", "/api/v1/conferences/7103/end", None).unwrap();
    assert!((200..300).contains(&status), "end: {status}");
    // EndSessionCommand on the H.245 connection, ReleaseComplete on the signalling one.
    let end = ep.next_h245(Duration::from_secs(10));
    assert!(
        matches!(end, Some(M::command(h245::CommandMessage::endSessionCommand(_)))),
        "{end:?}"
    );
    let (rc, _) = ep.next(Duration::from_secs(10)).expect("ReleaseComplete");
    assert_eq!(rc.message_type, MessageType::ReleaseComplete, "{rc:?}");
    assert_eq!(rc.cause().map(|c| c.value), Some(16), "normal clearing: {rc:?}");
    assert!(ep.h245_closed(Duration::from_secs(5)), "H.245 connection still open");
    assert!(
        ep.next(Duration::from_secs(5)).is_none(),
        "signalling still open after ReleaseComplete"
    );
}

#[test]
fn h264_video_between_two_endpoints_with_fast_updates() {
    let d = Daemon::start("h323-h245-video").unwrap();
    d.cli_ok(&["conference", "add", "7104"]).unwrap();
    // B joins first and sends its camera (nobody receives it yet).
    let mut b = Endpoint::dial_with(&d, "7104", Mode::Tunnelled, true);
    b.open_channels();
    assert!(b.video_relay.is_some() && b.video_pt.is_some());
    const B_SSRC: u32 = 0xb0b0_b0b0;
    let (stop, sender) = b.send_video(B_SSRC);
    std::thread::sleep(Duration::from_millis(500));
    // A joins on a separate H.245 connection: B's video goes to A.
    let mut a = Endpoint::dial_with(&d, "7104", Mode::DaemonListens, true);
    a.open_channels();
    let a_pt = a.video_pt.unwrap();
    let got = a.receive_video(3.0);
    let tagged: Vec<_> = got.iter().filter(|(_, _, p)| p.get(1..8) == Some(b"cg-h264")).collect();
    assert!(
        tagged.len() >= 100,
        "A got {} of B's ~150 video packets ({} in all)",
        tagged.len(),
        got.len()
    );
    // In the payload type of the daemon's channel towards A, as one stream.
    assert!(tagged.iter().all(|(pt, _, _)| *pt == a_pt), "payload types: {:?}", {
        let mut pts: Vec<u8> = tagged.iter().map(|(pt, _, _)| *pt).collect();
        pts.dedup();
        pts
    });
    let ssrc = tagged[0].1;
    assert!(tagged.iter().all(|(_, s, _)| *s == ssrc), "one SSRC");
    // B was asked for a keyframe when its video started going to A
    // (VideoFastUpdatePicture on its channel), and A when its went to B.
    b.pump_h245(Duration::from_secs(2));
    assert!(b.fast_updates >= 1, "no VideoFastUpdatePicture at B: {}", d.stderr());
    a.pump_h245(Duration::from_secs(1));
    assert!(a.fast_updates >= 1, "no VideoFastUpdatePicture at A");
    // A asks for a keyframe of what it receives: B is asked.
    let before = b.fast_updates;
    a.send_h245(&[control::video_fast_update(a.their_video_lcn.unwrap())]);
    b.pump_h245(Duration::from_secs(2));
    assert!(b.fast_updates > before, "A's VideoFastUpdatePicture did not reach B");
    // A FlowControlCommand is taken (logged) and the call goes on.
    a.send_h245(&[control::flow_control_command(a.their_video_lcn.unwrap(), Some(256_000))]);
    let more = a.receive_video(1.0);
    assert!(
        more.len() >= 25,
        "video stopped after FlowControlCommand: {}",
        more.len()
    );
    stop.store(true, Ordering::Relaxed);
    assert!(sender.join().unwrap() > 100);
    for ep in [&mut a, &mut b] {
        ep.send_h245(&[control::end_session_command()]);
    }
    assert!(d.log_shows("H.323 FlowControlCommand"), "{}", d.stderr());
    let log = d.stderr();
    assert!(log.contains("H.323 endpoint sends H.264"), "{log}");
    assert!(log.contains("H.323 endpoint receives H.264"), "{log}");
}

#[test]
fn the_new_speaker_gets_a_fast_update_and_receivers_switch_to_it() {
    let d = Daemon::start("h323-h245-video-switch").unwrap();
    d.cli_ok(&["conference", "add", "7105"]).unwrap();
    // B, A, C join in that order, all with H.264 and sending video. With
    // no one speaking, A and C get B, B gets A: C's video goes nowhere.
    let mut b = Endpoint::dial_with(&d, "7105", Mode::Tunnelled, true);
    b.open_channels();
    let (b_stop, b_sender) = b.send_video(0xb0b0_b0b1);
    let mut a = Endpoint::dial_with(&d, "7105", Mode::Tunnelled, true);
    a.open_channels();
    let (a_stop, a_sender) = a.send_video(0xa0a0_a0a2);
    let mut c = Endpoint::dial_with(&d, "7105", Mode::DaemonListens, true);
    c.open_channels();
    let (c_stop, c_sender) = c.send_video(0xc0c0_c0c3);
    let before = a.receive_video(1.5);
    let from = |got: &[(u8, u32, Vec<u8>)], tag: u8| {
        got.iter()
            .filter(|(_, _, p)| p.get(1..8) == Some(b"cg-h264") && p.get(8) == Some(&tag))
            .count()
    };
    assert!(
        from(&before, 0xb1) >= 40,
        "A gets B first: {} packets",
        from(&before, 0xb1)
    );
    assert_eq!(from(&before, 0xc3), 0, "A gets no C before C speaks");
    c.pump_h245(Duration::from_millis(500));
    assert_eq!(c.fast_updates, 0, "C's video went to nobody yet");
    // C speaks: the speaker switches to C, whose video now goes to A and B
    // (one keyframe request, as VideoFastUpdatePicture on C's channel).
    let _ = c.talk(800.0, 3.0);
    c.pump_h245(Duration::from_secs(1));
    assert!(c.fast_updates >= 1, "no VideoFastUpdatePicture at the new speaker");
    let after = a.receive_video(1.5);
    let a_pt = a.video_pt.unwrap();
    let c_packets: Vec<_> = after
        .iter()
        .filter(|(_, _, p)| p.get(1..8) == Some(b"cg-h264") && p.get(8) == Some(&0xc3))
        .collect();
    assert!(
        c_packets.len() >= 40,
        "A gets C after the switch: {} packets",
        c_packets.len()
    );
    assert_eq!(
        from(&after[after.len().saturating_sub(40)..], 0xb1),
        0,
        "A no longer gets B"
    );
    // The same stream for A across the switch: one SSRC, A's payload type.
    let ssrc = before[0].1;
    assert!(after.iter().chain(&before).all(|(pt, s, _)| *s == ssrc && *pt == a_pt));
    for (stop, sender) in [(a_stop, a_sender), (b_stop, b_sender), (c_stop, c_sender)] {
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
    }
}

#[test]
fn video_is_taken_once_the_voice_menu_puts_the_call_in_a_conference() {
    let d = Daemon::start("h323-h245-video-ivr").unwrap();
    d.cli_ok(&["conference", "add", "7106"]).unwrap();
    let mut b = Endpoint::dial_with(&d, "7106", Mode::Tunnelled, true);
    b.open_channels();
    let (stop, sender) = b.send_video(0xb0b0_b0b4);
    // C dials nothing: the voice menu, audio only (its H.264 is refused).
    let mut c = Endpoint::dial_with(&d, "", Mode::DaemonListens, true);
    c.ivr = true;
    c.open_channels();
    assert!(c.video_relay.is_none());
    std::thread::sleep(Duration::from_millis(500));
    c.send_pin("7106#");
    c.video_after_the_voice_menu();
    let got = c.receive_video(2.0);
    let from_b: Vec<_> = got
        .iter()
        .filter(|(_, _, p)| p.get(1..8) == Some(b"cg-h264") && p.get(8) == Some(&0xb4))
        .collect();
    assert!(from_b.len() >= 50, "C got {} of B's video packets", from_b.len());
    assert!(from_b.iter().all(|(pt, _, _)| Some(*pt) == c.video_pt));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}
