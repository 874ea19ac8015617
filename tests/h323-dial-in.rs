//! A scripted H.323 endpoint (written here on `confgate-h323`) dials into
//! conferences over TCP call signalling with Fast Connect (G.711 µ-law):
//! it hears a `confgate bot` playing a tone and the bot hears its tone;
//! it hangs up with ReleaseComplete and the daemon closes the connection;
//! in a closed conference it enters the PIN by tunnelled H.245
//! UserInputIndication, and when the conference is ended it gets
//! ReleaseComplete with a Q.850 cause.
//!
//! Video by Fast Connect: an endpoint that proposes only H.263 has its
//! video proposals left out of Connect (refused) while its audio
//! connects; two endpoints that propose H.264 both ways get their
//! proposals accepted with the relay's video address, and one's synthetic
//! H.264 RTP reaches the other in the payload type it proposed.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use confgate_suite::h323_endpoint::{assert_bot_heard, assert_endpoint_heard, bot, next_signalling, Media};
use confgate_suite::Daemon;
use h323::asn1::OctetString;
use h323::asn1::{self, h225, h245};
use h323::media::{self, G711, H264};
use h323::q931::{CallReference, Message, MessageType};
use h323::signalling::{self, SetupParams};
use h323::tpkt::TpktDecoder;

const CRV: u16 = 0x2a2a;

struct Endpoint {
    tcp: TcpStream,
    decoder: TpktDecoder,
    /// Its µ-law media, sent to the relay's RTP address from the accepted fastStart.
    media: Media,
}

impl Endpoint {
    /// Setup → Call Proceeding → Connect with the accepted fastStart.
    fn dial(d: &Daemon, dialed: &str, tunnelling: bool) -> Endpoint {
        Self::dial_with(d, dialed, tunnelling, Vec::new()).0
    }

    /// [`Endpoint::dial`] with `extra` fastStart proposals (video); also
    /// returns Connect's fastStart.
    fn dial_with(d: &Daemon, dialed: &str, tunnelling: bool, extra: Vec<OctetString>) -> (Endpoint, Vec<OctetString>) {
        let media = Media::new(G711::Ulaw);
        let (local, rtcp) = (media.addr(), media.rtcp());
        let tcp = TcpStream::connect(("127.0.0.1", d.h323_port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut ep = Endpoint {
            tcp,
            decoder: TpktDecoder::new(65_535),
            media,
        };
        let setup = signalling::setup(&SetupParams {
            call_reference: CRV,
            call_id: [0x5a; 16],
            dialed: dialed.into(),
            display: "Scripted room".into(),
            calling: None,
            fast_start: [media::propose(G711::Ulaw, 1, local, rtcp).unwrap(), extra].concat(),
            tunnelling,
            h245_address: None,
        })
        .unwrap();
        ep.tcp.write_all(&setup).unwrap();
        let (proceeding, _) = ep.next(Duration::from_secs(10)).expect("Call Proceeding");
        assert_eq!(proceeding.message_type, MessageType::CallProceeding);
        assert_eq!(proceeding.call_reference, CallReference::new(CRV, true));
        let (connect, uuie) = ep.next(Duration::from_secs(10)).expect("Connect");
        assert_eq!(connect.message_type, MessageType::Connect, "{connect:?}");
        let uuie = uuie.unwrap();
        let h225::H323UUPDUH323MessageBody::connect(c) = &uuie.h323_uu_pdu.h323_message_body else {
            panic!("{uuie:?}")
        };
        let (codec, relay) = media::accepted_remote(c.fast_start.as_deref().unwrap()).expect("accepted fastStart");
        assert_eq!(codec, G711::Ulaw);
        assert_eq!(uuie.h323_uu_pdu.h245_tunneling, Some(tunnelling));
        ep.media.to = relay;
        let fast_start = c.fast_start.clone().unwrap();
        (ep, fast_start)
    }

    /// The next signalling message, `None` on timeout or EOF.
    fn next(&mut self, timeout: Duration) -> Option<(Message, Option<h225::H323UserInformation>)> {
        next_signalling(&mut self.tcp, &mut self.decoder, timeout)
    }

    /// The next message that is not Facility (tunnelled H.245 answers).
    fn next_call_message(&mut self, timeout: Duration) -> Option<(Message, Option<h225::H323UserInformation>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.next(left)?;
            if m.0.message_type != MessageType::Facility {
                return Some(m);
            }
        }
    }

    fn send_pin(&mut self, pin: &str) {
        let fac = signalling::facility_h245(
            CallReference::new(CRV, false),
            None,
            &[signalling::user_input(pin).unwrap()],
        )
        .unwrap();
        self.tcp.write_all(&fac).unwrap();
    }

    fn hang_up(&mut self) {
        let rc =
            signalling::release_complete(CallReference::new(CRV, false), 16, None, None, false, Vec::new()).unwrap();
        self.tcp.write_all(&rc).unwrap();
    }
}

#[test]
fn endpoint_and_bot_hear_each_other_then_the_endpoint_hangs_up() {
    let d = Daemon::start("h323-dial-in").unwrap();
    d.cli_ok(&["conference", "add", "7001"]).unwrap();
    let (bot, rec) = bot(&d, "7001", None, "9");
    let mut ep = Endpoint::dial(&d, "7001", false);
    let heard = ep.media.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    ep.hang_up();
    // The daemon closes the connection after the endpoint's ReleaseComplete.
    assert!(
        ep.next(Duration::from_secs(5)).is_none(),
        "connection still open after ReleaseComplete"
    );
    assert_bot_heard(bot, &rec, 800.0);
    let log = d.stderr();
    assert!(log.contains("H.323 call ended by the endpoint"), "{log}");
}

#[test]
fn pin_by_tunnelled_user_input_then_the_conference_ends() {
    let d = Daemon::start("h323-pin").unwrap();
    d.cli_ok(&["conference", "add", "7002", "--closed", "--pin", "4321"])
        .unwrap();
    let (bot, rec) = bot(&d, "7002", Some("4321"), "9");
    let mut ep = Endpoint::dial(&d, "7002", true);
    // The PIN prompt plays; the PIN goes as one alphanumeric UserInputIndication.
    std::thread::sleep(Duration::from_millis(500));
    ep.send_pin("4321#");
    let heard = ep.media.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    assert_bot_heard(bot, &rec, 800.0);

    // A wrong PIN would have ended the call: it is still up; end the conference.
    let (status, _) = d.api("POST", "/api/v1/conferences/7002/end", None).unwrap();
    assert!((200..300).contains(&status), "end: {status}");
    let (rc, uuie) = ep.next_call_message(Duration::from_secs(10)).expect("ReleaseComplete");
    assert_eq!(rc.message_type, MessageType::ReleaseComplete, "{rc:?}");
    assert_eq!(rc.cause().map(|c| c.value), Some(16), "normal clearing: {rc:?}");
    assert!(matches!(
        uuie.unwrap().h323_uu_pdu.h323_message_body,
        h225::H323UUPDUH323MessageBody::releaseComplete(_)
    ));
    assert!(
        ep.next(Duration::from_secs(5)).is_none(),
        "connection still open after ReleaseComplete"
    );
}

#[test]
fn unknown_conference_is_released_with_a_cause() {
    let d = Daemon::start_with("h323-unknown", &[("CONFGATE_ROUTING__IVR", "false")]).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", d.h323_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let rtp: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut media = Media::new(G711::Ulaw);
    media.to = rtp;
    let mut ep = Endpoint {
        tcp,
        decoder: TpktDecoder::new(65_535),
        media,
    };
    let setup = signalling::setup(&SetupParams {
        call_reference: CRV,
        call_id: [1; 16],
        dialed: "9999".into(),
        display: "Lost".into(),
        calling: None,
        fast_start: media::propose(G711::Ulaw, 1, rtp, rtp).unwrap(),
        tunnelling: false,
        h245_address: None,
    })
    .unwrap();
    ep.tcp.write_all(&setup).unwrap();
    let (m, _) = ep.next(Duration::from_secs(10)).unwrap();
    assert_eq!(m.message_type, MessageType::CallProceeding);
    let (m, _) = ep.next(Duration::from_secs(10)).unwrap();
    assert_eq!(m.message_type, MessageType::ReleaseComplete);
    assert_eq!(m.cause().map(|c| c.value), Some(1), "unallocated number: {m:?}");
}

/// A video OpenLogicalChannel's data type, either way.
fn video_of(olc: &h245::OpenLogicalChannel) -> Option<&h245::VideoCapability> {
    match (
        &olc.forward_logical_channel_parameters.data_type,
        &olc.reverse_logical_channel_parameters,
    ) {
        (h245::DataType::videoData(v), _) => Some(v),
        (_, Some(r)) => match &r.data_type {
            h245::DataType::videoData(v) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

/// H.263 (QCIF, CIF) fastStart proposals both ways, from `socket`'s address.
fn h263_proposals(socket: &UdpSocket) -> Vec<OctetString> {
    let local = socket.local_addr().unwrap();
    let rtcp = SocketAddr::new(local.ip(), local.port() + 1);
    let items = media::propose_video(&H264::CONSTRAINED_BASELINE, 100, 3, local, rtcp).unwrap();
    let h263 = media::h263_capability();
    items
        .iter()
        .map(|b| {
            let mut olc: h245::OpenLogicalChannel = asn1::decode(b).unwrap();
            match &mut olc.reverse_logical_channel_parameters {
                Some(r) => r.data_type = h245::DataType::videoData(h263.clone()),
                None => olc.forward_logical_channel_parameters.data_type = h245::DataType::videoData(h263.clone()),
            }
            OctetString::from(asn1::encode(&olc).unwrap())
        })
        .collect()
}

#[test]
fn h263_only_video_proposals_are_refused_and_audio_connects() {
    let d = Daemon::start("h323-dial-in-h263").unwrap();
    d.cli_ok(&["conference", "add", "7004"]).unwrap();
    let (bot, rec) = bot(&d, "7004", None, "9");
    let video = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut ep, accepted) = Endpoint::dial_with(&d, "7004", true, h263_proposals(&video));
    // Only the two audio channels come back: H.263 is not accepted.
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    for b in &accepted {
        let olc: h245::OpenLogicalChannel = asn1::decode(b).unwrap();
        assert!(video_of(&olc).is_none(), "video accepted: {olc:?}");
    }
    let heard = ep.media.talk(800.0, 5.0);
    assert_endpoint_heard(&heard, 440.0);
    ep.hang_up();
    assert_bot_heard(bot, &rec, 800.0);
}

#[test]
fn fast_connect_h264_video_reaches_the_other_endpoint() {
    let d = Daemon::start("h323-dial-in-h264").unwrap();
    d.cli_ok(&["conference", "add", "7005"]).unwrap();
    let propose = |socket: &UdpSocket, pt| {
        let local = socket.local_addr().unwrap();
        media::propose_video(
            &H264::CONSTRAINED_BASELINE,
            pt,
            3,
            local,
            SocketAddr::new(local.ip(), local.port() + 1),
        )
        .unwrap()
    };
    // B sends with payload type 109, A receives with 110.
    let b_video = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut b, b_accepted) = Endpoint::dial_with(&d, "7005", true, propose(&b_video, 109));
    assert_eq!(b_accepted.len(), 4, "audio and video both ways");
    let (h264, b_relay) = media::accepted_video(&b_accepted).expect("H.264 accepted");
    assert_eq!(h264, H264::CONSTRAINED_BASELINE);
    assert_ne!(b_relay, b.media.to, "video has its own relay address");
    let a_video = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut a, a_accepted) = Endpoint::dial_with(&d, "7005", false, propose(&a_video, 110));
    assert!(media::accepted_video(&a_accepted).is_some());
    // B's H.264 RTP, 50 packets/s for 3 s.
    const B_SSRC: u32 = 0x0b0b_0b0b;
    let sender = {
        let tx = b_video.try_clone().unwrap();
        std::thread::spawn(move || {
            for n in 0u32..150 {
                let mut pkt = vec![0x80, 0x80 | 109];
                pkt.extend_from_slice(&(n as u16).to_be_bytes());
                pkt.extend_from_slice(&n.wrapping_mul(1800).to_be_bytes());
                pkt.extend_from_slice(&B_SSRC.to_be_bytes());
                pkt.push(if n.is_multiple_of(50) { 0x65 } else { 0x41 });
                pkt.extend_from_slice(b"cg-h264");
                pkt.extend_from_slice(&[0xab; 500]);
                let _ = tx.send_to(&pkt, b_relay);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    a_video.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (mut tagged, mut pts, mut ssrcs) = (0, Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, _)) = a_video.recv_from(&mut buf) {
            if n > 20 && &buf[13..20] == b"cg-h264" {
                tagged += 1;
                pts.push(buf[1] & 0x7f);
                ssrcs.push(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
            }
        }
    }
    sender.join().unwrap();
    assert!(tagged >= 100, "A got {tagged} of B's 150 video packets");
    assert!(pts.iter().all(|&p| p == 110), "A's payload type: {pts:?}");
    ssrcs.dedup();
    assert_eq!(ssrcs.len(), 1, "one stream: {ssrcs:?}");
    a.hang_up();
    b.hang_up();
}
