//! Calls between SIP and H.323 through the running daemon: SIPp plays the
//! SIP phones and callers (scenarios in `tests/sipp/`), and scripted H.323
//! endpoints written on `confgate-h323` (the crate's own call-signalling
//! machines over TCP, registered by RAS over UDP:
//! `confgate_suite::h323_endpoint`) play the room systems:
//! - a SIP caller dials an account whose only endpoint registered by RAS:
//!   the endpoint gets the Setup with Fast Connect in the caller's codecs,
//!   its Alerting reaches the caller as 180 and its Connect as 200 (µ-law:
//!   forwarded packet by packet); the tone SIPp plays is heard at its
//!   frequency by the endpoint; SIPp's BYE releases the endpoint with
//!   normal clearing (16);
//! - the same with SIPp echoing what it hears (`-rtp_echo`): the endpoint
//!   hears its own tone back through SIPp, then hangs up, and SIPp gets a
//!   BYE with `Reason: Q.850;cause=16`;
//! - an H.323 endpoint calls an account whose only phone registered by SIP,
//!   proposing only A-law: the phone rings (Alerting reaches the caller),
//!   answers µ-law (transcoded), echoes the audio (the endpoint hears its
//!   own tone through the phone), then hangs up: the endpoint is released
//!   with cause 16;
//! - busy both ways (an H.323 release with cause 17 becomes 486; a 486
//!   becomes cause 17), and an H.323 caller that hangs up while the phone
//!   rings cancels the INVITE.
//!
//! Needs `sipp` (Debian `sip-tester`); it fails, not skips, without it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use confgate_suite::h323_endpoint::{
    answer_fast, assert_heard, connected, h323_accounts, while_pumping, Media, Peer, Room,
};
use confgate_suite::sipp::{self, Sipp};
use confgate_suite::{free_udp_port, Daemon, SERVER};
use h323::media::{AudioCodec, G711};
use h323::ras::Alias;
use h323::signalling::{EndReason, Event};

/// `m` talks at `hz` for `secs` while `peers` are kept running; returns what it heard.
fn talk_pumping(m: &Media, hz: f64, secs: f64, peers: &mut [&mut Peer]) -> Vec<i16> {
    while_pumping(peers, || m.talk(hz, secs))
}

// ---------------------------------------------------------------- SIP side

fn sip_account(d: &Daemon, user: &str, password: &str) {
    let out = d
        .cli_stdin(
            &["user", "add", user, "--type", "sip", "--password-stdin"],
            &format!("{password}\n"),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIPp as a UAC towards the daemon (`to_daemon`) or a UAS on `port`.
fn spawn_sipp(d: &Daemon, scenario_file: &str, port: u16, to_daemon: bool, extra: &[&str]) -> Sipp {
    sipp::spawn_sipp(
        d.dir.path(),
        scenario_file,
        port,
        to_daemon.then_some(d.sip_port),
        extra,
    )
}

/// Registers a SIPp phone for `user` from a fresh local port and returns
/// that port (where the phone then takes calls).
fn register_phone(d: &Daemon, user: &str, password: &str) -> u16 {
    let phone = free_udp_port();
    let inf = d.dir.path().join(format!("users-{user}.csv"));
    std::fs::write(&inf, format!("SEQUENTIAL\n{user};{SERVER};{password}\n")).unwrap();
    let inf = inf.display().to_string();
    let (ok, log) = spawn_sipp(
        d,
        "register.xml",
        phone,
        true,
        &["-inf", &inf, "-au", user, "-ap", password],
    )
    .finish(Duration::from_secs(30));
    assert!(ok, "{user}'s phone registers: {log}");
    phone
}

// ------------------------------------------------------------ scenarios

#[test]
fn a_sip_caller_rings_an_h323_endpoint_which_hears_its_tone_until_the_bye() {
    let d = Daemon::start("sip-h323-forwarded").unwrap();
    h323_accounts(&d, &["room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    sipp::ulaw_tone(&d.dir.path().join("tone.ulaw"), 800.0).unwrap();

    let caller = spawn_sipp(
        &d,
        "call-user-ringing-tone.xml",
        free_udp_port(),
        true,
        &["-s", "room2"],
    );
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "room2", "the registered alias");
    assert_eq!(
        incoming.offer.codecs(),
        vec![G711::Ulaw, G711::Alaw],
        "Fast Connect in the SIP caller's codecs"
    );
    callee.sig.alerting().unwrap();
    callee.flush();
    std::thread::sleep(Duration::from_millis(500));
    let mut m2 = Media::new(G711::Ulaw);
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let heard = talk_pumping(&m2, 440.0, 4.0, &mut [&mut callee]);
    assert_heard("room2 (SIP caller's tone)", &heard, 800.0);
    assert!(
        d.log_shows("call connected across protocols, media forwarded packet by packet"),
        "one codec: no transcoding\n{}",
        d.stderr()
    );

    let r = callee
        .released(Duration::from_secs(15))
        .expect("the SIP caller's BYE releases the endpoint");
    assert_eq!(r.cause, Some(16), "normal clearing");
    assert!(callee.closes(Duration::from_secs(5)));
    let (ok, log) = caller.finish(Duration::from_secs(20));
    assert!(ok, "caller: INVITE → 180 → 200 (PCMU) → ACK → tone → BYE → 200: {log}");
}

#[test]
fn an_h323_endpoint_answering_a_sip_caller_hears_itself_through_the_phone_and_hangs_up() {
    let d = Daemon::start("sip-h323-echo").unwrap();
    h323_accounts(&d, &["room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into()), Alias::DialedDigits("2002".into())]);

    let caller = spawn_sipp(
        &d,
        "call-user-hung-up-by-callee.xml",
        free_udp_port(),
        true,
        &["-s", "2002", "-rtp_echo"],
    );
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "2002", "the alias dialed");
    let mut m2 = Media::new(G711::Ulaw);
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let heard = talk_pumping(&m2, 440.0, 4.0, &mut [&mut callee]);
    assert_heard("room2 (its tone echoed by the SIP caller)", &heard, 440.0);

    callee.sig.release(EndReason::Normal);
    callee.flush();
    assert!(callee.closes(Duration::from_secs(5)));
    let (ok, log) = caller.finish(Duration::from_secs(20));
    assert!(ok, "caller: 200 → ACK → BYE with Reason cause 16 → 200: {log}");
}

#[test]
fn an_h323_endpoint_calls_a_sip_phone_transcoded_and_the_phone_hangs_up() {
    let d = Daemon::start("h323-sip-echo").unwrap();
    sip_account(&d, "alice", "alice-secret-1");
    h323_accounts(&d, &["room1"]);
    let phone = register_phone(&d, "alice", "alice-secret-1");
    let phone = spawn_sipp(&d, "callee-ring-answer-echo.xml", phone, false, &["-rtp_echo"]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    std::thread::sleep(Duration::from_millis(300));

    let mut m1 = Media::new(G711::Alaw);
    let mut caller = room1.call("alice", [0x41; 16], &m1, &[G711::Alaw]);
    let (relay, codec) = connected(&mut caller, true, Duration::from_secs(15));
    assert_eq!(codec, G711::Alaw, "the caller keeps its own law");
    m1.to = relay;
    let heard = talk_pumping(&m1, 600.0, 4.0, &mut [&mut caller]);
    assert_heard("room1 (its tone echoed by the SIP phone)", &heard, 600.0);
    assert!(
        d.log_shows("H.323 call connected, media transcoded"),
        "A-law to µ-law\n{}",
        d.stderr()
    );

    let r = caller
        .released(Duration::from_secs(15))
        .expect("the phone's BYE releases the caller");
    assert!(r.by_peer);
    assert_eq!(r.cause, Some(16), "normal clearing");
    let (ok, log) = phone.finish(Duration::from_secs(20));
    assert!(
        ok,
        "phone: INVITE with PCMU → 180 → 200 → ACK → echo → BYE → 200: {log}"
    );
}

#[test]
fn busy_becomes_busy_both_ways_and_an_h323_hang_up_cancels_the_ringing_phone() {
    let d = Daemon::start("sip-h323-busy").unwrap();
    sip_account(&d, "alice", "alice-secret-1");
    h323_accounts(&d, &["room1", "room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    let m1 = Media::new(G711::Ulaw);

    // SIP → H.323: the endpoint is busy (cause 17): the caller gets 486.
    let caller = spawn_sipp(&d, "call-user-refused-486.xml", free_udp_port(), true, &["-s", "room2"]);
    let (mut callee, _) = room2.take_call(AudioCodec::ALL.to_vec());
    callee.sig.release(EndReason::Busy);
    callee.flush();
    let (ok, log) = caller.finish(Duration::from_secs(20));
    assert!(ok, "caller: INVITE → 486 → ACK: {log}");

    // H.323 → SIP: the phone answers 486: the caller gets cause 17.
    let port = register_phone(&d, "alice", "alice-secret-1");
    let phone = spawn_sipp(&d, "callee-busy.xml", port, false, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = room1.call("alice", [0x51; 16], &m1, &[G711::Ulaw]);
    let r = caller.released(Duration::from_secs(15)).expect("released");
    assert_eq!(r.cause, Some(17), "user busy");
    assert_eq!(r.reason, EndReason::Busy);
    let (ok, log) = phone.finish(Duration::from_secs(20));
    assert!(ok, "phone: INVITE → 486 → ACK: {log}");

    // H.323 → SIP: the caller hangs up while the phone rings: CANCEL.
    let phone = spawn_sipp(&d, "callee-ring-cancelled.xml", port, false, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = room1.call("alice", [0x52; 16], &m1, &[G711::Ulaw]);
    caller
        .wait(Duration::from_secs(15), |e| matches!(e, Event::Alerting).then_some(()))
        .expect("Alerting for the phone's 180");
    caller.sig.release(EndReason::Normal);
    caller.flush();
    let (ok, log) = phone.finish(Duration::from_secs(30));
    assert!(ok, "phone: INVITE → 180 → CANCEL → 200, 487 → ACK: {log}");
}

#[test]
fn an_account_with_a_sip_phone_and_an_h323_endpoint_rings_both_and_the_first_answer_wins() {
    let d = Daemon::start("sip-h323-fork").unwrap();
    sip_account(&d, "alice", "alice-secret-1");
    h323_accounts(&d, &["room1"]);
    // Alice's SIP phone, and her room system registered by RAS under her name.
    let port = register_phone(&d, "alice", "alice-secret-1");
    let desk = Room::register(&d, &[Alias::H323Id("alice".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    sipp::ulaw_tone(&d.dir.path().join("tone.ulaw"), 800.0).unwrap();

    // A SIP caller: both ring, the H.323 endpoint answers, the phone is cancelled.
    let phone = spawn_sipp(&d, "callee-ring-cancelled.xml", port, false, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let caller = spawn_sipp(
        &d,
        "call-user-ringing-tone.xml",
        free_udp_port(),
        true,
        &["-s", "alice"],
    );
    let (mut callee, _) = desk.take_call(AudioCodec::ALL.to_vec());
    callee.sig.alerting().unwrap();
    callee.flush();
    std::thread::sleep(Duration::from_millis(500));
    let mut m2 = Media::new(G711::Ulaw);
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let (ok, log) = phone.finish(Duration::from_secs(20));
    assert!(
        ok,
        "the SIP phone rang and was cancelled: INVITE → 180 → CANCEL → 487: {log}"
    );
    let heard = talk_pumping(&m2, 440.0, 3.0, &mut [&mut callee]);
    assert_heard("alice's room system (SIP caller's tone)", &heard, 800.0);
    let r = callee.released(Duration::from_secs(15)).expect("the caller's BYE");
    assert_eq!(r.cause, Some(16));
    let (ok, log) = caller.finish(Duration::from_secs(20));
    assert!(ok, "caller: 180 → 200 → tone → BYE → 200: {log}");

    // An H.323 caller: both ring, the SIP phone answers, the endpoint is released.
    let phone = spawn_sipp(&d, "callee-ring-answer-echo.xml", port, false, &["-rtp_echo"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut m1 = Media::new(G711::Ulaw);
    let mut caller = room1.call("alice", [0x61; 16], &m1, &[G711::Ulaw]);
    let (mut callee, _) = desk.take_call(AudioCodec::ALL.to_vec());
    let (relay, codec) = while_pumping(&mut [&mut callee], || {
        connected(&mut caller, true, Duration::from_secs(15))
    });
    assert_eq!(codec, G711::Ulaw);
    let r = callee
        .released(Duration::from_secs(10))
        .expect("the room system is released when the phone answers");
    assert_eq!(r.cause, Some(16));
    m1.to = relay;
    let heard = talk_pumping(&m1, 600.0, 3.0, &mut [&mut caller]);
    assert_heard("room1 (its tone echoed by alice's phone)", &heard, 600.0);
    let r = caller.released(Duration::from_secs(15)).expect("the phone's BYE");
    assert_eq!(r.cause, Some(16));
    let (ok, log) = phone.finish(Duration::from_secs(20));
    assert!(ok, "phone: INVITE → 180 → 200 → ACK → echo → BYE → 200: {log}");
}

#[test]
fn a_sip_phone_that_puts_an_h323_caller_on_hold_is_answered_on_the_codec_in_use() {
    let d = Daemon::start("h323-sip-hold").unwrap();
    sip_account(&d, "alice", "alice-secret-1");
    h323_accounts(&d, &["room1"]);
    let port = register_phone(&d, "alice", "alice-secret-1");
    let phone = spawn_sipp(&d, "callee-answer-then-hold.xml", port, false, &[]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    std::thread::sleep(Duration::from_millis(300));

    let m1 = Media::new(G711::Ulaw);
    let mut caller = room1.call("alice", [0x71; 16], &m1, &[G711::Ulaw]);
    let (_, codec) = connected(&mut caller, false, Duration::from_secs(15));
    assert_eq!(codec, G711::Ulaw);
    // The phone's hold (re-INVITE a=sendonly) is answered meanwhile.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        caller.pump();
    }
    caller.sig.release(EndReason::Normal);
    caller.flush();
    let (ok, log) = phone.finish(Duration::from_secs(20));
    assert!(
        ok,
        "phone: 200 → ACK → re-INVITE sendonly → 200 with PCMU alone, recvonly → ACK → BYE: {log}"
    );
}
