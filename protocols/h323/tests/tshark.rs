//! tshark as the independent oracle for what we encode (recipe in
//! `../shared/TESTING.md`): a Setup with fastStart OpenLogicalChannels and
//! an H.245 address, a Connect and a ReleaseComplete over TPKT on TCP 1720,
//! an RRQ and an RCF on UDP 1719, what the RAS gatekeeper answers (GCF,
//! RRJ, RCF, ACF), an H.245 TerminalCapabilitySet over TPKT on a
//! separate H.245 connection, and every H.245 message the call's control
//! protocol sends there (capabilities, determination, logical channels
//! opened, acknowledged, refused and closed, answers to other requests,
//! EndSessionCommand) with the Connect that offers an H.245 address. The dissectors must report no
//! malformed packet and no error-level expert item, and name the right
//! message types.
//!
//! The Q.931 messages, TPKT frames and every PER encoding are ours. The
//! larger UUIE, RAS and H.245 values start from PDUs of the corpus
//! (`../shared/h323-corpus/`), decoded with our types, changed, and encoded
//! by us; the ReleaseComplete is built from scratch.
#![allow(clippy::unwrap_used)]

use confgate_h323::asn1::{decode, encode, h225, h245};
use confgate_h323::q931::{self, BearerCapability, CallReference, CalledPartyNumber, Cause, Ie, Message, MessageType};
use confgate_h323::tpkt;
use rasn::types::{FixedOctetString, ObjectIdentifier, OctetString};
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == kind)
        .map(|(_, hex)| {
            let hex = hex.trim();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn uuie_where(pred: impl Fn(&h225::H323UserInformation) -> bool) -> h225::H323UserInformation {
    corpus("h225")
        .iter()
        .map(|b| decode::<h225::H323UserInformation>(b).unwrap())
        .find(|u| pred(u))
        .expect("no such UUIE in the corpus")
}

fn h245_address() -> h225::TransportAddress {
    h225::TransportAddress::ipAddress(h225::TransportAddressIpAddress::new(
        OctetString::from_static(&[127, 0, 0, 1]),
        1721,
    ))
}

/// A Q.931 message carrying `uuie` in its User-user IE, framed in TPKT.
fn signalling(message_type: MessageType, mut ies: Vec<Ie>, uuie: &h225::H323UserInformation) -> Vec<u8> {
    let mut msg = Message::new(
        message_type,
        CallReference::new(0x0123, message_type != MessageType::Setup),
    );
    ies.push(Ie::UserUser(q931::UserUser {
        protocol_discriminator: q931::USER_USER_PROTOCOL_X208,
        information: encode(uuie).unwrap(),
    }));
    msg.ies = ies;
    let mut out = Vec::new();
    tpkt::encode(&msg.to_bytes().unwrap(), &mut out).unwrap();
    out
}

fn setup() -> Vec<u8> {
    let mut uuie = uuie_where(
        |u| matches!(&u.h323_uu_pdu.h323_message_body, h225::H323UUPDUH323MessageBody::setup(s) if s.fast_start.is_some()),
    );
    let h225::H323UUPDUH323MessageBody::setup(setup) = &mut uuie.h323_uu_pdu.h323_message_body else {
        unreachable!()
    };
    setup.h245_address = Some(h245_address());
    // Every fastStart proposal re-encoded by us.
    let proposals = setup.fast_start.take().unwrap();
    assert!(!proposals.is_empty());
    setup.fast_start = Some(
        proposals
            .iter()
            .map(|olc| OctetString::from(encode(&decode::<h245::OpenLogicalChannel>(olc).unwrap()).unwrap()))
            .collect(),
    );
    let ies = vec![
        Ie::BearerCapability(BearerCapability {
            coding_standard: 0,
            transfer_capability: 8,
            transfer_mode: 0,
            transfer_rate: 0x13,
            rate_multiplier: None,
            layer1_protocol: Some(5),
            more: Vec::new(),
        }),
        Ie::Display(b"confgate".to_vec()),
        Ie::CalledPartyNumber(CalledPartyNumber {
            type_of_number: 0,
            numbering_plan: 1,
            digits: b"1000".to_vec(),
        }),
    ];
    signalling(MessageType::Setup, ies, &uuie)
}

fn connect() -> Vec<u8> {
    let mut uuie = uuie_where(|u| {
        matches!(
            u.h323_uu_pdu.h323_message_body,
            h225::H323UUPDUH323MessageBody::connect(_)
        )
    });
    if let h225::H323UUPDUH323MessageBody::connect(c) = &mut uuie.h323_uu_pdu.h323_message_body {
        c.h245_address = Some(h245_address());
    }
    signalling(MessageType::Connect, vec![Ie::Display(b"confgate".to_vec())], &uuie)
}

fn release_complete() -> Vec<u8> {
    let protocol = h225::ProtocolIdentifier(ObjectIdentifier::new(vec![0, 0, 8, 2250, 0, 8]).unwrap());
    let call_id = h225::CallIdentifier::new(h225::GloballyUniqueID(FixedOctetString::from([0x42; 16])));
    let body = h225::ReleaseCompleteUUIE::new(
        protocol,
        Some(h225::ReleaseCompleteReason::undefinedReason(())),
        Some(call_id),
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
    let pdu = h225::H323UUPDU::new(
        h225::H323UUPDUH323MessageBody::releaseComplete(body),
        None,
        None,
        Some(false),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    );
    let uuie = h225::H323UserInformation::new(pdu, None);
    let cause = Ie::Cause(Cause {
        coding_standard: 0,
        location: 0,
        recommendation: None,
        value: 16,
        diagnostics: vec![],
    });
    signalling(MessageType::ReleaseComplete, vec![cause], &uuie)
}

fn ras(pred: impl Fn(&h225::RasMessage) -> bool) -> Vec<u8> {
    let msg = corpus("ras")
        .iter()
        .map(|b| decode::<h225::RasMessage>(b).unwrap())
        .find(|m| pred(m))
        .unwrap();
    encode(&msg).unwrap()
}

fn terminal_capability_set() -> Vec<u8> {
    let is_tcs = |m: &h245::MultimediaSystemControlMessage| {
        matches!(
            m,
            h245::MultimediaSystemControlMessage::request(h245::RequestMessage::terminalCapabilitySet(_))
        )
    };
    // From the separate H.245 connection, else tunnelled in h245Control.
    let mut found = corpus("h245").iter().map(|b| decode(b).unwrap()).find(is_tcs);
    if found.is_none() {
        found = corpus("h225")
            .iter()
            .filter_map(|b| decode::<h225::H323UserInformation>(b).unwrap().h323_uu_pdu.h245_control)
            .flatten()
            .map(|b| decode(&b).unwrap())
            .find(is_tcs);
    }
    let mut out = Vec::new();
    tpkt::encode(&encode(&found.unwrap()).unwrap(), &mut out).unwrap();
    out
}

/// text2pcap's input: each packet an offset-0 hex dump.
fn hex_dump(packets: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for p in packets {
        for (i, line) in p.chunks(16).enumerate() {
            out.push_str(&format!("{:06x}", i * 16));
            for b in line {
                out.push_str(&format!(" {b:02x}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Runs text2pcap with `framing` and tshark with `extra`; returns the Info
/// column of each packet, after checking for malformed/error items.
fn dissect(dir: &Path, name: &str, packets: &[Vec<u8>], framing: &[&str], extra: &[&str]) -> Vec<String> {
    let txt = dir.join(format!("{name}.txt"));
    let pcap = dir.join(format!("{name}.pcap"));
    std::fs::write(&txt, hex_dump(packets)).unwrap();
    let out = Command::new("text2pcap")
        .arg("-q")
        .args(framing)
        .arg(&txt)
        .arg(&pcap)
        .output()
        .expect("text2pcap not found: install Debian's wireshark-common (scripts/test does)");
    assert!(
        out.status.success(),
        "text2pcap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tshark = |args: &[&str]| {
        let out = Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(&pcap)
            .args(extra)
            .args(args)
            .output()
            .expect("tshark not found: install Debian's tshark (scripts/test does)");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bad = tshark(&["-Y", "_ws.malformed || _ws.expert.severity >= 6291456"]);
    assert!(
        bad.trim().is_empty(),
        "{name}: malformed or error-level items:\n{bad}\n{}",
        tshark(&["-V"])
    );
    let info = tshark(&["-T", "fields", "-e", "_ws.col.Info"]);
    info.lines().map(str::to_owned).collect()
}

#[test]
fn tshark_accepts_what_we_encode() {
    let dir = std::env::temp_dir().join(format!("confgate-h323-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let cs = dissect(
        &dir,
        "call-signalling",
        &[setup(), connect(), release_complete()],
        &["-T", "40000,1720", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    assert_eq!(cs.len(), 3, "{cs:?}");
    assert!(
        cs[0].contains("setup") && cs[0].contains("OpenLogicalChannel"),
        "{cs:?}"
    );
    assert!(cs[1].contains("connect"), "{cs:?}");
    assert!(cs[2].contains("releaseComplete"), "{cs:?}");

    let rrq = ras(|m| matches!(m, h225::RasMessage::registrationRequest(_)));
    let rcf = ras(|m| matches!(m, h225::RasMessage::registrationConfirm(_)));
    let r = dissect(
        &dir,
        "ras",
        &[rrq, rcf],
        &["-u", "40002,1719", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].contains("registrationRequest"), "{r:?}");
    assert!(r[1].contains("registrationConfirm"), "{r:?}");

    let h = dissect(
        &dir,
        "h245",
        &[terminal_capability_set()],
        &["-T", "40004,1721", "-4", "127.0.0.1,127.0.0.1"],
        &["-d", "tcp.port==1721,h245"],
    );
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains("terminalCapabilitySet"), "{h:?}");

    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the call-signalling machine itself sends to a caller: Call
/// Proceeding, Connect with the accepted fastStart and our tunnelled
/// TerminalCapabilitySet, a Facility with H.245 answers, and ReleaseComplete
/// with a cause.
#[test]
fn tshark_accepts_what_the_call_signalling_machine_sends() {
    use confgate_h323::media::{self, G711};
    use confgate_h323::signalling::{self, CallSignalling, Config, Output, SetupParams};
    use std::time::Instant;

    let caller_rtp: std::net::SocketAddr = "127.0.0.1:5004".parse().unwrap();
    let caller_rtcp: std::net::SocketAddr = "127.0.0.1:5005".parse().unwrap();
    let setup = signalling::setup(&SetupParams {
        call_reference: 0x0123,
        call_id: [0x42; 16],
        dialed: "7001".into(),
        display: "tshark".into(),
        calling: None,
        fast_start: media::propose(G711::Ulaw, 1, caller_rtp, caller_rtcp).unwrap(),
        tunnelling: true,
        h245_address: None,
    })
    .unwrap();
    let now = Instant::now();
    let mut m = CallSignalling::new(Config::default(), now, 12345);
    let mut sent = Vec::new();
    let drain = |m: &mut CallSignalling, sent: &mut Vec<Vec<u8>>| {
        while let Some(o) = m.poll_output() {
            if let Output::Transmit(b) = o {
                sent.push(b);
            }
        }
    };
    m.handle_input(now, &setup);
    drain(&mut m, &mut sent);
    m.answer(
        now,
        &signalling::Answer {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            rtcp: "127.0.0.1:20001".parse().unwrap(),
            fast_connect: Some(G711::Ulaw),
            h245_listen: None,
        },
    )
    .unwrap();
    drain(&mut m, &mut sent);
    // The caller's TCS and a PIN digit, tunnelled: we answer with TCSAck in a Facility.
    let tcs = terminal_capability_set_pdu();
    let fac = signalling::facility_h245(
        CallReference::new(0x0123, false),
        None,
        &[tcs, signalling::user_input("1").unwrap()],
    )
    .unwrap();
    m.handle_input(now, &fac);
    drain(&mut m, &mut sent);
    m.release(call::EndReason::ConferenceEnded);
    drain(&mut m, &mut sent);
    assert_eq!(sent.len(), 4, "Call Proceeding, Connect, Facility, ReleaseComplete");

    let dir = std::env::temp_dir().join(format!("confgate-h323-tshark-machine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let info = dissect(
        &dir,
        "machine",
        &sent,
        &["-T", "1720,40000", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    assert_eq!(info.len(), 4, "{info:?}");
    assert!(info[0].contains("callProceeding"), "{info:?}");
    assert!(
        info[1].contains("connect") && info[1].contains("OpenLogicalChannel"),
        "{info:?}"
    );
    assert!(
        info[2].contains("facility") && info[2].contains("terminalCapabilitySetAck"),
        "{info:?}"
    );
    assert!(info[3].contains("releaseComplete"), "{info:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn terminal_capability_set_pdu() -> h245::MultimediaSystemControlMessage {
    decode(&terminal_capability_set()[tpkt::HEADER_LEN..]).unwrap()
}

/// What the RAS gatekeeper sends, driven by the corpus's GRQ, RRQ and ARQ
/// (h323plus registering with GnuGk): GCF, RCF, ACF (gatekeeper-routed)
/// and an RRJ, on UDP 1719.
#[test]
fn tshark_accepts_what_the_gatekeeper_sends() {
    use confgate_h323::ras::{Config, Event, Gatekeeper, Output, Refusal, Verdict};
    use std::net::SocketAddr;
    use std::time::Instant;

    let endpoint = SocketAddr::from(([127, 0, 0, 1], 40002));
    let mut gk = Gatekeeper::new(Config {
        gatekeeper_identifier: "video.example.com".into(),
        ..Config::default()
    });
    let now = Instant::now();
    let mut sent = Vec::new();
    let mut tickets = Vec::new();
    let feed = |gk: &mut Gatekeeper, msg: &h225::RasMessage, sent: &mut Vec<Vec<u8>>, tickets: &mut Vec<u64>| {
        gk.handle_input(now, endpoint, &encode(msg).unwrap()).unwrap();
        while let Some(o) = gk.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => sent.push(bytes),
                Output::Event(Event::Authorize { ticket, .. }) => tickets.push(ticket),
                Output::Event(_) => {}
            }
        }
    };
    let find = |pred: &dyn Fn(&h225::RasMessage) -> bool| {
        corpus("ras")
            .iter()
            .map(|b| decode::<h225::RasMessage>(b).unwrap())
            .find(|m| pred(m))
            .unwrap()
    };
    let h225::RasMessage::gatekeeperRequest(mut grq) = find(&|m| matches!(m, h225::RasMessage::gatekeeperRequest(_)))
    else {
        unreachable!()
    };
    // Offering the H.235 password hash: the GCF names it.
    let (mechanism, algorithm) = confgate_h323::h235::capability(confgate_h323::h235::Procedure::PasswordHash);
    grq.authentication_capability = Some(vec![mechanism]);
    grq.algorithm_oids = Some(vec![algorithm]);
    feed(
        &mut gk,
        &h225::RasMessage::gatekeeperRequest(grq),
        &mut sent,
        &mut tickets,
    );
    let h225::RasMessage::registrationRequest(mut rrq) =
        find(&|m| matches!(m, h225::RasMessage::registrationRequest(_)))
    else {
        unreachable!()
    };
    rrq.gatekeeper_identifier = None;
    // Two requests (a retransmission, same sequence number, would wait for
    // the first one's answer).
    let mut second = rrq.clone();
    second.request_seq_num = h225::RequestSeqNum(rrq.request_seq_num.0.wrapping_add(1));
    feed(
        &mut gk,
        &h225::RasMessage::registrationRequest(rrq),
        &mut sent,
        &mut tickets,
    );
    feed(
        &mut gk,
        &h225::RasMessage::registrationRequest(second),
        &mut sent,
        &mut tickets,
    );
    let refused = tickets.pop().unwrap();
    let accepted = tickets.pop().unwrap();
    gk.authorize(now, refused, Verdict::Refuse(Refusal::InvalidAlias));
    gk.authorize(
        now,
        accepted,
        Verdict::Accept {
            account: None,
            password: None,
        },
    );
    let mut endpoint_identifier = None;
    while let Some(o) = gk.poll_output() {
        if let Output::Transmit { bytes, .. } = o {
            if let h225::RasMessage::registrationConfirm(rcf) = decode(&bytes).unwrap() {
                endpoint_identifier = Some(rcf.endpoint_identifier);
            }
            sent.push(bytes);
        }
    }
    let h225::RasMessage::admissionRequest(mut arq) =
        find(&|m| matches!(m, h225::RasMessage::admissionRequest(a) if !a.answer_call))
    else {
        unreachable!()
    };
    arq.endpoint_identifier = endpoint_identifier.unwrap();
    feed(
        &mut gk,
        &h225::RasMessage::admissionRequest(arq),
        &mut sent,
        &mut tickets,
    );

    let dir = std::env::temp_dir().join(format!("confgate-h323-tshark-gk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = dissect(
        &dir,
        "gatekeeper",
        &sent,
        &["-u", "1719,40002", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r[0].contains("gatekeeperConfirm"), "{r:?}");
    assert!(r[1].contains("registrationReject"), "{r:?}");
    assert!(r[2].contains("registrationConfirm"), "{r:?}");
    assert!(r[3].contains("admissionConfirm"), "{r:?}");
}

/// What the call-signalling machine sends for a call without Fast Connect
/// whose H.245 runs on a separate connection: Call Proceeding, Connect
/// (with our H.245 address when the caller is to connect, without when we
/// connect to it), ReleaseComplete; and on the H.245 connection our
/// capabilities (G.722, G.711, user input), master/slave determination,
/// the answers to the caller's capabilities, determination and channels
/// (audio acknowledged, H.263 refused), our own audio channel, the answers
/// to RoundTripDelay, MaintenanceLoop and an unserved request, channel
/// closing both ways, and EndSessionCommand.
#[test]
fn tshark_accepts_h245_on_a_separate_connection() {
    use confgate_h323::control;
    use confgate_h323::media::AudioCodec;
    use confgate_h323::signalling::{self, Answer, CallSignalling, Config, Output, SetupParams};
    use h245::MultimediaSystemControlMessage as M;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    let caller_h245: SocketAddr = "127.0.0.1:1721".parse().unwrap();
    let setup = |h245_address| {
        signalling::setup(&SetupParams {
            call_reference: 0x0123,
            call_id: [0x42; 16],
            dialed: "7001".into(),
            display: "tshark".into(),
            calling: None,
            fast_start: Vec::new(),
            tunnelling: false,
            h245_address,
        })
        .unwrap()
    };
    let answer = |listen| Answer {
        rtp: "127.0.0.1:20000".parse().unwrap(),
        rtcp: "127.0.0.1:20001".parse().unwrap(),
        fast_connect: None,
        h245_listen: listen,
    };
    let now = Instant::now();
    let (mut signalling_sent, mut h245_sent) = (Vec::new(), Vec::new());
    let drain = |m: &mut CallSignalling, cs: &mut Vec<Vec<u8>>, h: &mut Vec<Vec<u8>>| {
        while let Some(o) = m.poll_output() {
            match o {
                Output::Transmit(b) => cs.push(b),
                Output::H245(b) => h.push(b),
                _ => {}
            }
        }
    };

    // The caller connects to us: Connect carries our H.245 address.
    let mut listen = CallSignalling::new(Config::default(), now, 1);
    listen.handle_input(now, &setup(None));
    listen
        .answer(now, &answer(Some("127.0.0.1:40100".parse().unwrap())))
        .unwrap();
    let mut ignored = Vec::new();
    drain(&mut listen, &mut ignored, &mut Vec::new());
    assert_eq!(ignored.len(), 2);
    let offer_connect = ignored.pop().unwrap();

    // We connect to the caller's address.
    let mut m = CallSignalling::new(Config::default(), now, 12345);
    m.handle_input(now, &setup(Some(caller_h245)));
    m.answer(now, &answer(None)).unwrap();
    drain(&mut m, &mut signalling_sent, &mut h245_sent);
    signalling_sent.insert(1, offer_connect);
    m.h245_connected(now);
    let peer_rtcp: SocketAddr = "127.0.0.1:5001".parse().unwrap();
    let mut video = control::open_logical_channel(12, AudioCodec::Pcmu, peer_rtcp);
    video.forward_logical_channel_parameters.data_type =
        h245::DataType::videoData(confgate_h323::media::h263_capability());
    let feed = |m: &mut CallSignalling, msg: M| {
        let mut framed = Vec::new();
        tpkt::encode(&encode(&msg).unwrap(), &mut framed).unwrap();
        m.handle_h245_input(now, &framed);
    };
    feed(&mut m, terminal_capability_set_pdu());
    feed(&mut m, control::master_slave_determination(50, 4242));
    feed(
        &mut m,
        M::response(h245::ResponseMessage::masterSlaveDeterminationAck(
            h245::MasterSlaveDeterminationAck::new(h245::MasterSlaveDeterminationAckDecision::master(())),
        )),
    );
    feed(&mut m, M::request(h245::RequestMessage::openLogicalChannel(video)));
    feed(
        &mut m,
        M::request(h245::RequestMessage::openLogicalChannel(control::open_logical_channel(
            11,
            AudioCodec::Pcma,
            peer_rtcp,
        ))),
    );
    drain(&mut m, &mut signalling_sent, &mut h245_sent);
    let ours = h245_sent
        .iter()
        .map(|b| decode::<M>(&b[tpkt::HEADER_LEN..]).unwrap())
        .find_map(|msg| match msg {
            M::request(h245::RequestMessage::openLogicalChannel(o)) => Some(o.forward_logical_channel_number.0),
            _ => None,
        })
        .expect("our channel opened");
    feed(
        &mut m,
        M::response(h245::ResponseMessage::openLogicalChannelAck(
            control::open_logical_channel_ack(
                ours,
                1,
                control::LocalMedia {
                    rtp: "127.0.0.1:5000".parse().unwrap(),
                    rtcp: peer_rtcp,
                },
            ),
        )),
    );
    feed(
        &mut m,
        M::request(h245::RequestMessage::roundTripDelayRequest(
            h245::RoundTripDelayRequest::new(h245::SequenceNumber(3)),
        )),
    );
    feed(
        &mut m,
        M::request(h245::RequestMessage::maintenanceLoopRequest(
            h245::MaintenanceLoopRequest::new(h245::MaintenanceLoopRequestType::systemLoop(())),
        )),
    );
    feed(
        &mut m,
        M::request(h245::RequestMessage::communicationModeRequest(
            h245::CommunicationModeRequest::new(),
        )),
    );
    feed(&mut m, control::video_fast_update(12));
    feed(
        &mut m,
        M::request(h245::RequestMessage::closeLogicalChannel(
            h245::CloseLogicalChannel::new(
                h245::LogicalChannelNumber(11),
                h245::CloseLogicalChannelSource::user(()),
                None,
            ),
        )),
    );
    feed(
        &mut m,
        M::request(h245::RequestMessage::requestChannelClose(
            h245::RequestChannelClose::new(h245::LogicalChannelNumber(ours), None, None),
        )),
    );
    m.handle_timeout(now + Duration::from_secs(1));
    m.release(call::EndReason::ConferenceEnded);
    drain(&mut m, &mut signalling_sent, &mut h245_sent);

    let dir = std::env::temp_dir().join(format!("confgate-h323-tshark-h245-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cs = dissect(
        &dir,
        "h245-signalling",
        &signalling_sent,
        &["-T", "1720,40000", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    assert_eq!(cs.len(), 4, "{cs:?}");
    assert!(cs[0].contains("callProceeding"), "{cs:?}");
    assert!(cs[1].contains("connect") && cs[2].contains("connect"), "{cs:?}");
    assert!(cs[3].contains("releaseComplete"), "{cs:?}");
    let h = dissect(
        &dir,
        "h245-separate",
        &h245_sent,
        &["-T", "40006,1721", "-4", "127.0.0.1,127.0.0.1"],
        &["-d", "tcp.port==1721,h245"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let all = h.join("\n");
    for name in [
        "terminalCapabilitySet",
        "masterSlaveDetermination",
        "terminalCapabilitySetAck",
        "masterSlaveDeterminationAck",
        "openLogicalChannelReject",
        "openLogicalChannelAck",
        "openLogicalChannel (g711A)",
        "roundTripDelayResponse",
        "maintenanceLoopReject",
        "functionNotUnderstood",
        "closeLogicalChannelAck",
        "requestChannelCloseAck",
        "closeLogicalChannel",
        "endSessionCommand",
    ] {
        assert!(all.contains(name), "{name} missing from {h:?}");
    }
    assert_eq!(h.len(), h245_sent.len(), "{h:?}");
}

/// H.264 video as the call's control protocol and Fast Connect send it: a
/// capability set with H.264 (generic capability, H.241 profile, level and
/// ProfileIOP), our H.264 OpenLogicalChannel, the Ack of the caller's
/// H.264 channel with our video addresses, VideoFastUpdatePicture, and a
/// Connect whose fastStart accepts H.264 proposals; and a caller's
/// FlowControlCommand.
#[test]
fn tshark_accepts_h264_video() {
    use confgate_h323::control::{self, LocalMedia};
    use confgate_h323::media::{self, AudioCodec, G711, H264};
    use confgate_h323::signalling::{self, Answer, CallSignalling, Config, Output, SetupParams};
    use h245::MultimediaSystemControlMessage as M;
    use std::net::SocketAddr;
    use std::time::Instant;

    let now = Instant::now();
    let video = LocalMedia {
        rtp: "127.0.0.1:20002".parse().unwrap(),
        rtcp: "127.0.0.1:20003".parse().unwrap(),
    };
    let peer_rtp: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let peer_rtcp: SocketAddr = "127.0.0.1:5001".parse().unwrap();
    let peer_vrtp: SocketAddr = "127.0.0.1:5002".parse().unwrap();
    let peer_vrtcp: SocketAddr = "127.0.0.1:5003".parse().unwrap();
    let drain = |m: &mut CallSignalling, cs: &mut Vec<Vec<u8>>, h: &mut Vec<Vec<u8>>| {
        while let Some(o) = m.poll_output() {
            match o {
                Output::Transmit(b) => cs.push(b),
                Output::H245(b) => h.push(b),
                _ => {}
            }
        }
    };
    let feed = |m: &mut CallSignalling, msg: M| {
        let mut framed = Vec::new();
        tpkt::encode(&encode(&msg).unwrap(), &mut framed).unwrap();
        m.handle_h245_input(now, &framed);
    };

    // Fast Connect with G.711 and H.264 proposals, H.245 on a separate connection.
    let mut fast_start = media::propose(G711::Ulaw, 1, peer_rtp, peer_rtcp).unwrap();
    fast_start.extend(media::propose_video(&H264::CONSTRAINED_BASELINE, 109, 3, peer_vrtp, peer_vrtcp).unwrap());
    let setup = signalling::setup(&SetupParams {
        call_reference: 0x0456,
        call_id: [0x43; 16],
        dialed: "7001".into(),
        display: "tshark".into(),
        calling: None,
        fast_start,
        tunnelling: false,
        h245_address: Some("127.0.0.1:1721".parse().unwrap()),
    })
    .unwrap();
    let mut m = CallSignalling::new(Config::default(), now, 777);
    m.handle_input(now, &setup);
    m.set_video(now, video);
    m.answer(
        now,
        &Answer {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            rtcp: "127.0.0.1:20001".parse().unwrap(),
            fast_connect: Some(G711::Ulaw),
            h245_listen: None,
        },
    )
    .unwrap();
    let (mut signalling_sent, mut h245_sent) = (vec![setup], Vec::new());
    drain(&mut m, &mut signalling_sent, &mut h245_sent);
    // Connect accepts the H.264 proposals, with our video address.
    let connect_fast_start = signalling_sent
        .iter()
        .filter_map(|b| signalling::decode_signalling(&b[tpkt::HEADER_LEN..]).ok())
        .find_map(|(msg, uuie)| match uuie?.h323_uu_pdu.h323_message_body {
            h225::H323UUPDUH323MessageBody::connect(c) if msg.message_type == MessageType::Connect => c.fast_start,
            _ => None,
        })
        .expect("Connect with fastStart");
    assert_eq!(connect_fast_start.len(), 4);
    assert_eq!(
        media::accepted_video(&connect_fast_start),
        Some((H264::CONSTRAINED_BASELINE, video.rtp))
    );
    m.h245_connected(now);
    // The peer receives H.264 too: our channel opens by H.245 only when
    // Fast Connect did not open it, so a second call opens it below.
    feed(&mut m, control::video_fast_update(1));
    drain(&mut m, &mut signalling_sent, &mut h245_sent);

    // H.245 only: the caller's H.264 channel and ours.
    let mut h = CallSignalling::new(Config::default(), now, 4242);
    h.handle_input(
        now,
        &signalling::setup(&SetupParams {
            call_reference: 0x0457,
            call_id: [0x44; 16],
            dialed: "7001".into(),
            display: "tshark".into(),
            calling: None,
            fast_start: Vec::new(),
            tunnelling: false,
            h245_address: Some("127.0.0.1:1721".parse().unwrap()),
        })
        .unwrap(),
    );
    h.set_video(now, video);
    h.answer(
        now,
        &Answer {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            rtcp: "127.0.0.1:20001".parse().unwrap(),
            fast_connect: None,
            h245_listen: None,
        },
    )
    .unwrap();
    let mut ignored = Vec::new();
    drain(&mut h, &mut ignored, &mut h245_sent);
    h.h245_connected(now);
    feed(
        &mut h,
        media::terminal_capability_set_with_video(1, &[AudioCodec::Pcmu], Some(&H264::CONSTRAINED_BASELINE)),
    );
    feed(&mut h, control::master_slave_determination(50, 4242));
    feed(
        &mut h,
        M::response(h245::ResponseMessage::masterSlaveDeterminationAck(
            h245::MasterSlaveDeterminationAck::new(h245::MasterSlaveDeterminationAckDecision::master(())),
        )),
    );
    feed(
        &mut h,
        M::request(h245::RequestMessage::openLogicalChannel(
            control::video_open_logical_channel(12, &H264::CONSTRAINED_BASELINE, 100, peer_vrtcp),
        )),
    );
    feed(&mut h, control::flow_control_command(12, Some(384_000)));
    assert!(h.video_fast_update());
    drain(&mut h, &mut ignored, &mut h245_sent);

    let dir = std::env::temp_dir().join(format!("confgate-h323-tshark-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cs = dissect(
        &dir,
        "video-signalling",
        &signalling_sent,
        &["-T", "1720,40000", "-4", "127.0.0.1,127.0.0.1"],
        &[],
    );
    assert!(
        cs[0].contains("setup") && cs.iter().any(|i| i.contains("connect")),
        "{cs:?}"
    );
    let mut all_h245 = h245_sent.clone();
    let mut flow = Vec::new();
    tpkt::encode(
        &encode(&control::flow_control_command(12, Some(384_000))).unwrap(),
        &mut flow,
    )
    .unwrap();
    all_h245.push(flow);
    let hv = dissect(
        &dir,
        "video-h245",
        &all_h245,
        &["-T", "40008,1721", "-4", "127.0.0.1,127.0.0.1"],
        &["-d", "tcp.port==1721,h245"],
    );
    let verbose = Command::new("tshark")
        .args(["-n", "-V", "-d", "tcp.port==1721,h245", "-r"])
        .arg(dir.join("video-h245.pcap"))
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&verbose.stdout).into_owned();
    let fast = Command::new("tshark")
        .args(["-n", "-V", "-r"])
        .arg(dir.join("video-signalling.pcap"))
        .output()
        .unwrap();
    let fast = String::from_utf8_lossy(&fast.stdout).into_owned();
    std::fs::remove_dir_all(&dir).unwrap();
    let all = hv.join("\n");
    for name in [
        "terminalCapabilitySet",
        "openLogicalChannelAck",
        "openLogicalChannel",
        "miscellaneousCommand",
        "flowControlCommand",
    ] {
        assert!(all.contains(name), "{name} missing from {hv:?}");
    }
    // The dissector reads the H.264 capability's OID and its level, and the fast update.
    assert!(
        verbose.contains("0.0.8.241.0.0.1"),
        "no H.264 capability identifier:\n{verbose}"
    );
    assert!(verbose.contains("videoFastUpdatePicture"), "{verbose}");
    assert!(
        fast.contains("0.0.8.241.0.0.1"),
        "no H.264 in Connect's fastStart:\n{fast}"
    );
}
