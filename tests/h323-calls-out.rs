//! Calls out of the daemon between scripted H.323 endpoints
//! (`confgate_suite::h323_endpoint`, written on `confgate-h323`: the
//! crate's own call-signalling machines drive them over TCP, and they
//! register over UDP RAS):
//! - `room1`, registered and admitted by ARQ (so its call is its
//!   account's), calls the registered `room2` by its dialedDigits alias:
//!   `room2` gets the Setup at the call-signalling address it registered,
//!   rings (`room1` hears Alerting), answers with Fast Connect in G.711
//!   µ-law; each hears the other's tone through the relay (one codec:
//!   forwarded packet by packet); `room2` hangs up and `room1` gets its
//!   cause;
//! - `room1` calls `room2` by account id, proposing only A-law while
//!   `room2` answers µ-law: the audio is transcoded and heard both ways;
//!   `room1` hangs up and `room2` gets normal clearing;
//! - `room1` dials `#h323:desk@127.0.0.1:<port>`, an unregistered endpoint
//!   that answers without Fast Connect: its channels open by tunnelled
//!   H.245, the audio flows both ways;
//! - release causes: a busy callee's 17 reaches the caller, a caller that
//!   hangs up while it rings cancels the call out, an account without a
//!   registered endpoint gives 20, an address that refuses the connection
//!   27, and an anonymous caller may not dial `#h323:` (21).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use confgate_suite::h323_endpoint::{
    answer_fast, assert_heard, connected, h323_accounts, place, take_call, while_pumping, Media, Peer, Room,
};
use confgate_suite::{Daemon, SERVER};
use h323::control::MediaEvent;
use h323::media::{AudioCodec, G711};
use h323::ras::Alias;
use h323::signalling::{Answer, EndReason, Event};

/// Both endpoints talk at once; returns what each heard.
fn converse(a: &Media, a_hz: f64, b: &Media, b_hz: f64, peers: &mut [&mut Peer]) -> (Vec<i16>, Vec<i16>) {
    while_pumping(peers, || {
        std::thread::scope(|s| {
            let ha = s.spawn(|| a.talk(a_hz, 4.0));
            let hb = s.spawn(|| b.talk(b_hz, 4.0));
            (ha.join().unwrap(), hb.join().unwrap())
        })
    })
}

// ------------------------------------------------------------ scenario

#[test]
fn registered_endpoint_calls_another_by_alias_and_the_callee_hangs_up() {
    let d = Daemon::start("h323-out-alias").unwrap();
    h323_accounts(&d, &["room1", "room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into()), Alias::DialedDigits("2002".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);

    let (m1, mut m2) = (Media::new(G711::Ulaw), Media::new(G711::Ulaw));
    let mut caller = room1.call("2002", [0x21; 16], &m1, &[G711::Ulaw]);
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "2002", "the alias dialed");
    assert_eq!(incoming.caller_name.as_deref(), Some("Room One"));
    assert_eq!(incoming.offer.codecs(), vec![G711::Ulaw, G711::Alaw]);
    assert_ne!(
        incoming.call_identifier,
        Some([0x21; 16]),
        "a call identifier of its own"
    );
    // The callee asks the gatekeeper to answer, as registered endpoints do.
    room2.ras.admit(incoming.call_identifier.unwrap(), "room2", true);
    callee.sig.alerting().unwrap();
    callee.flush();
    std::thread::sleep(Duration::from_millis(300));
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let (relay, codec) = connected(&mut caller, true, Duration::from_secs(10));
    assert_eq!(codec, G711::Ulaw);
    let mut m1 = m1;
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 800.0, &m2, 440.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 440.0);
    assert_heard("room2", &heard2, 800.0);
    assert!(
        d.log_shows("media forwarded packet by packet"),
        "one codec: no transcoding\n{}",
        d.stderr()
    );

    callee.sig.release_with_cause(EndReason::Normal, 31);
    callee.flush();
    let r = caller
        .released(Duration::from_secs(10))
        .expect("the caller is released");
    assert!(r.by_peer);
    assert_eq!(r.cause, Some(31), "the callee's cause is passed on");
    assert!(
        caller.closes(Duration::from_secs(5)),
        "the daemon closes the caller's connection"
    );
}

#[test]
fn registered_endpoint_calls_an_account_id_with_transcoding_and_the_caller_hangs_up() {
    let d = Daemon::start("h323-out-account").unwrap();
    h323_accounts(&d, &["room1", "room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);

    let (mut m1, mut m2) = (Media::new(G711::Alaw), Media::new(G711::Ulaw));
    let dialed = format!("room2@{SERVER}");
    let mut caller = room1.call(&dialed, [0x22; 16], &m1, &[G711::Alaw]);
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "room2", "the registered alias");
    // The caller's A-law first, then µ-law, which the callee takes.
    assert_eq!(incoming.offer.codecs(), vec![G711::Alaw, G711::Ulaw]);
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let (relay, codec) = connected(&mut caller, false, Duration::from_secs(10));
    assert_eq!(codec, G711::Alaw, "the caller keeps its own law");
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 700.0, &m2, 500.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 500.0);
    assert_heard("room2", &heard2, 700.0);
    assert!(d.log_shows("media transcoded"), "{}", d.stderr());

    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee
        .released(Duration::from_secs(10))
        .expect("the callee is released");
    assert!(r.by_peer);
    assert_eq!(r.cause, Some(16));
    assert!(callee.closes(Duration::from_secs(5)));
}

#[test]
fn registered_endpoint_dials_an_h323_address_answered_by_h245() {
    let d = Daemon::start("h323-out-direct").unwrap();
    h323_accounts(&d, &["room1"]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    let desk = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = desk.local_addr().unwrap().port();

    let mut m1 = Media::new(G711::Ulaw);
    let mut m2 = Media::new(G711::Ulaw);
    let dialed = format!("#h323:desk@127.0.0.1:{port}");
    let mut caller = room1.call(&dialed, [0x23; 16], &m1, &[G711::Ulaw]);
    // The desk takes only µ-law, and answers without Fast Connect.
    let (mut callee, incoming) = take_call(&desk, vec![AudioCodec::Pcmu]);
    assert_eq!(incoming.dialed, "desk");
    let fc = callee
        .sig
        .answer(
            Instant::now(),
            &Answer {
                rtp: m2.addr(),
                rtcp: m2.rtcp(),
                fast_connect: None,
                h245_listen: None,
            },
        )
        .unwrap();
    assert!(fc.is_none());
    callee.flush();
    // Its channel towards the daemon opens by tunnelled H.245.
    let relay = while_pumping(&mut [&mut caller], || {
        callee.wait(Duration::from_secs(10), |e| match e {
            Event::Media(MediaEvent::TransmitOpened { codec, rtp, .. }) => {
                assert_eq!(*codec, AudioCodec::Pcmu);
                *rtp
            }
            _ => None,
        })
    });
    m2.to = relay.expect("the desk's channel opened");
    let (relay, codec) = connected(&mut caller, false, Duration::from_secs(10));
    assert_eq!(codec, G711::Ulaw);
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 600.0, &m2, 900.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 900.0);
    assert_heard("desk", &heard2, 600.0);

    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee.released(Duration::from_secs(10)).expect("the desk is released");
    assert_eq!(r.cause, Some(16));
}

#[test]
fn busy_cancelled_unregistered_unreachable_and_anonymous_calls_get_their_causes() {
    let d = Daemon::start("h323-out-causes").unwrap();
    h323_accounts(&d, &["room1", "room2", "room3"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    let m1 = Media::new(G711::Ulaw);

    // The callee is busy: its cause reaches the caller.
    let mut caller = room1.call("room2", [0x31; 16], &m1, &[G711::Ulaw]);
    let (mut callee, _) = room2.take_call(AudioCodec::ALL.to_vec());
    callee.sig.release(EndReason::Busy);
    callee.flush();
    let r = caller.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(17), "user busy");
    assert_eq!(r.reason, EndReason::Busy);

    // The caller hangs up while the callee rings: the call out is cancelled.
    let mut caller = room1.call("room2", [0x32; 16], &m1, &[G711::Ulaw]);
    let (mut callee, _) = room2.take_call(AudioCodec::ALL.to_vec());
    callee.sig.alerting().unwrap();
    callee.flush();
    caller
        .wait(Duration::from_secs(10), |e| matches!(e, Event::Alerting).then_some(()))
        .expect("Alerting");
    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee.released(Duration::from_secs(10)).expect("cancelled");
    assert_eq!(r.cause, Some(16));
    assert!(callee.closes(Duration::from_secs(5)));

    // An account whose endpoints are not registered: subscriber absent.
    let mut caller = room1.call("room3", [0x33; 16], &m1, &[G711::Ulaw]);
    let r = caller.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(20));

    // An address where nothing listens: destination out of order.
    let closed = confgate_suite::free_port();
    let mut caller = room1.call(&format!("#h323:x@127.0.0.1:{closed}"), [0x34; 16], &m1, &[G711::Ulaw]);
    let r = caller.released(Duration::from_secs(15)).expect("released");
    assert_eq!(r.cause, Some(27));

    // Without the gatekeeper's admission the caller is anonymous: no
    // direct dialing out.
    let desk = TcpListener::bind("127.0.0.1:0").unwrap();
    let dialed = format!("#h323:desk@127.0.0.1:{}", desk.local_addr().unwrap().port());
    let mut anonymous = place(
        SocketAddr::from(([127, 0, 0, 1], d.h323_port)),
        &dialed,
        [0x35; 16],
        &m1,
        &[G711::Ulaw],
    );
    let r = anonymous.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(21));
    desk.set_nonblocking(true).unwrap();
    assert!(desk.accept().is_err(), "nothing was dialed");
}
