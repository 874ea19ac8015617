//! SIPp (a SIP test tool nobody here wrote) against the running daemon:
//! registration with digest authentication, a call into a conference with
//! media that a `confgate bot` in the same conference hears, PIN entry by
//! SIP INFO and by RFC 4733 events, reliable provisional responses (PRACK,
//! RFC 3262) both ways, and malformed messages.
//!
//! Scenarios are in `tests/sipp/`. Needs `sipp` (Debian `sip-tester`); it
//! fails, not skips, without it. Every SIPp process is ended by its PID.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use confgate_suite::sipp::{self, Sipp};
use confgate_suite::{assert_bot_heard, free_udp_port, ChildGuard, Daemon, SERVER};

/// Runs SIPp once (one call) and returns its exit status and its error log.
fn sipp(d: &Daemon, scenario_file: &str, extra: &[&str], timeout: Duration) -> (bool, String) {
    spawn_sipp(d, scenario_file, free_udp_port(), true, extra).finish(timeout)
}

/// Starts SIPp on `127.0.0.1:port`: as a UAC towards the daemon's SIP port
/// when `to_daemon`, else as a UAS (a phone waiting for calls).
fn spawn_sipp(d: &Daemon, scenario_file: &str, port: u16, to_daemon: bool, extra: &[&str]) -> Sipp {
    sipp::spawn_sipp(
        d.dir.path(),
        scenario_file,
        port,
        to_daemon.then_some(d.sip_port),
        extra,
    )
}

fn injection(d: &Daemon, user: &str, password: &str) -> String {
    let path = d.dir.path().join(format!("users-{user}-{password}.csv"));
    std::fs::write(&path, format!("SEQUENTIAL\n{user};{SERVER};{password}\n")).unwrap();
    path.display().to_string()
}

#[test]
fn register_with_digest_right_and_wrong_password() {
    let d = Daemon::start("sipp-register").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let inf = injection(&d, "alice", "alice-secret-1");
    let creds = ["-au", "alice", "-ap", "alice-secret-1"];
    let (ok, log) = sipp(
        &d,
        "register.xml",
        &[&["-inf", &inf][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER with the right password must get 200: {log}");

    let bad = injection(&d, "alice", "not-the-password");
    let creds = ["-au", "alice", "-ap", "not-the-password"];
    let (ok, log) = sipp(
        &d,
        "register-wrong-password.xml",
        &[&["-inf", &bad][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER with a wrong password must get 403: {log}");

    // An unknown user is answered exactly like a wrong password.
    let ghost = injection(&d, "nobody", "whatever-pass");
    let creds = ["-au", "nobody", "-ap", "whatever-pass"];
    let (ok, log) = sipp(
        &d,
        "register-wrong-password.xml",
        &[&["-inf", &ghost][..], &creds].concat(),
        Duration::from_secs(30),
    );
    assert!(ok, "REGISTER of an unknown user must get 403: {log}");
}

fn ulaw_tone(path: &Path, hz: f64) {
    sipp::ulaw_tone(path, hz).unwrap();
}

#[test]
fn call_into_a_conference_is_heard_by_a_bot() {
    let d = Daemon::start("sipp-call").unwrap();
    d.cli_ok(&["conference", "add", "5001"]).unwrap();
    let rec = d.dir.path().join("bot.wav");
    let bot = d
        .bot(&[
            "--conference",
            "5001",
            "--name",
            "Listener",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "7",
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let tone = d.dir.path().join("tone.ulaw");
    ulaw_tone(&tone, 800.0);
    let (ok, log) = sipp(&d, "call-conference.xml", &["-s", "5001"], Duration::from_secs(40));
    assert!(ok, "SIPp call: INVITE → 200 → ACK → media → BYE → 200: {log}");
    assert_bot_heard(bot, &rec, 800.0);
}

fn add_user(d: &Daemon, user: &str, password: &str) {
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

/// Starts a bot in `conf` that records what it hears for `secs` seconds.
fn listening_bot(d: &Daemon, conf: &str, pin: Option<&str>, secs: u32) -> (ChildGuard, PathBuf) {
    let rec = d.dir.path().join(format!("bot-{conf}.wav"));
    let secs = secs.to_string();
    let mut args = vec![
        "--conference",
        conf,
        "--name",
        "Listener",
        "--record",
        rec.to_str().unwrap(),
        "--duration",
        &secs,
    ];
    if let Some(pin) = pin {
        args.extend(["--pin", pin]);
    }
    let bot = d.bot(&args).unwrap();
    (bot, rec)
}

#[test]
fn pin_by_sip_info_lets_the_caller_into_a_closed_conference() {
    let d = Daemon::start("sipp-pin-info").unwrap();
    d.cli_ok(&["conference", "add", "5101", "--closed", "--pin", "4321"])
        .unwrap();
    let (bot, rec) = listening_bot(&d, "5101", Some("4321"), 11);
    std::thread::sleep(Duration::from_millis(500));
    ulaw_tone(&d.dir.path().join("tone.ulaw"), 800.0);
    let (ok, log) = sipp(&d, "call-pin-info.xml", &["-s", "5101"], Duration::from_secs(40));
    assert!(
        ok,
        "INVITE → 200 → ACK → INFO 4, 3, 2, 1, # (each 200) → media → BYE: {log}"
    );
    // Only a caller let in by its PIN is heard in the room.
    assert_bot_heard(bot, &rec, 800.0);
}

#[test]
fn three_wrong_pins_by_sip_info_end_the_call_with_a_bye() {
    let d = Daemon::start("sipp-pin-wrong").unwrap();
    d.cli_ok(&["conference", "add", "5102", "--closed", "--pin", "4321"])
        .unwrap();
    let (ok, log) = sipp(&d, "call-pin-info-wrong.xml", &["-s", "5102"], Duration::from_secs(60));
    assert!(ok, "three wrong PINs by INFO, then a BYE from confgate: {log}");
}

#[test]
fn pin_by_rfc4733_events_lets_the_caller_into_a_closed_conference() {
    // PIN 1234: SIPp replays its pcaps as captured (one SSRC, the capture's
    // timestamps); only 1, 2, 3, 4, # follow each other with growing RTP
    // timestamps, as a real sender's events do (RFC 4733 §2.5.1.2).
    let d = Daemon::start("sipp-pin-4733").unwrap();
    d.cli_ok(&["conference", "add", "5103", "--closed", "--pin", "1234"])
        .unwrap();
    let (bot, rec) = listening_bot(&d, "5103", Some("1234"), 13);
    std::thread::sleep(Duration::from_millis(500));
    ulaw_tone(&d.dir.path().join("tone.ulaw"), 800.0);
    let (ok, log) = sipp(&d, "call-pin-rfc4733.xml", &["-s", "5103"], Duration::from_secs(40));
    assert!(
        ok,
        "INVITE with telephone-event/8000 → 200 → ACK → events 1 2 3 4 # → media → BYE: {log}"
    );
    assert_bot_heard(bot, &rec, 800.0);
}

#[test]
fn cancel_before_the_answer_gets_487_and_reaches_the_phone() {
    let d = Daemon::start("sipp-cancel").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    // Alice's phone registers from the port it then takes calls on.
    let phone = free_udp_port();
    let inf = injection(&d, "alice", "alice-secret-1");
    let (ok, log) = spawn_sipp(
        &d,
        "register.xml",
        phone,
        true,
        &["-inf", &inf, "-au", "alice", "-ap", "alice-secret-1"],
    )
    .finish(Duration::from_secs(30));
    assert!(ok, "alice's phone registers: {log}");
    let callee = spawn_sipp(&d, "callee-ring-cancelled.xml", phone, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (caller_ok, caller_log) = sipp(&d, "call-cancel-caller.xml", &["-s", "alice"], Duration::from_secs(40));
    let (callee_ok, callee_log) = callee.finish(Duration::from_secs(40));
    assert!(
        caller_ok,
        "caller: INVITE → 180 → CANCEL → 200 (CANCEL), 487 (INVITE) → ACK: {caller_log}"
    );
    assert!(callee_ok, "phone: INVITE → 180 → CANCEL → 200, 487 → ACK: {callee_log}");
}

#[test]
fn ending_the_conference_over_the_api_sends_bye_to_the_sip_caller() {
    let d = Daemon::start("sipp-server-bye").unwrap();
    d.cli_ok(&["conference", "add", "5104"]).unwrap();
    ulaw_tone(&d.dir.path().join("tone.ulaw"), 800.0);
    let call = spawn_sipp(&d, "call-ended-by-server.xml", free_udp_port(), true, &["-s", "5104"]);
    // Wait until the SIP caller is in the room.
    let mut present = false;
    for _ in 0..60 {
        let (s, body) = d.api("GET", "/api/v1/conferences/5104/participants", None).unwrap();
        assert_eq!(s, 200, "{body}");
        if body["participants"].as_array().is_some_and(|p| !p.is_empty()) {
            present = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (s, body) = d.api("POST", "/api/v1/conferences/5104/end", None).unwrap();
    let (ok, log) = call.finish(Duration::from_secs(40));
    assert!(present, "the SIP caller never appeared among the participants: {log}");
    assert_eq!(s, 204, "end the conference: {body}");
    assert!(ok, "SIPp gets a BYE from confgate and answers 200: {log}");
}

#[test]
fn hold_and_resume_by_reinvite() {
    let d = Daemon::start("sipp-hold").unwrap();
    d.cli_ok(&["conference", "add", "5105"]).unwrap();
    let (ok, log) = sipp(&d, "call-hold-resume.xml", &["-s", "5105"], Duration::from_secs(40));
    assert!(
        ok,
        "re-INVITE sendonly → 200 recvonly; re-INVITE sendrecv → 200 sendrecv: {log}"
    );
}

#[test]
fn options_out_of_dialog_gets_200_with_allow() {
    let d = Daemon::start("sipp-options").unwrap();
    let (ok, log) = sipp(&d, "options.xml", &[], Duration::from_secs(30));
    assert!(ok, "OPTIONS → 200 with Allow and a To tag: {log}");
}

/// Sends one datagram to the daemon's SIP port from a fresh socket and
/// returns the first answer within `wait`, if any.
fn exchange(d: &Daemon, bytes: &[u8], wait: Duration) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let text = String::from_utf8_lossy(bytes).replace("LOCALPORT", &port.to_string());
    let bytes = if bytes.is_ascii() {
        text.into_bytes()
    } else {
        bytes.to_vec()
    };
    sock.send_to(&bytes, ("127.0.0.1", d.sip_port)).unwrap();
    let mut buf = vec![0u8; 65_535];
    match sock.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// An OPTIONS request from `127.0.0.1:LOCALPORT` with `cseq`, extra header
/// lines, a body and a Content-Length that may lie.
fn options_request(tag: &str, cseq: &str, extra: &str, body: &str, content_length: usize) -> String {
    format!(
        "OPTIONS sip:{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe-{tag}\r\n\
         To: <sip:{SERVER}>\r\n\
         Call-ID: {tag}@127.0.0.1\r\n\
         CSeq: {cseq}\r\n\
         {extra}Content-Length: {content_length}\r\n\r\n{body}"
    )
}

/// The value of header `name` in a SIP message, if present.
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Asserts a 400 for the request tagged `tag` whose Warning names `what`.
fn assert_bad_request(answer: Option<String>, tag: &str, what: &str) {
    let answer = answer.unwrap_or_else(|| panic!("{tag}: no answer, expected 400 Bad Request"));
    assert!(answer.starts_with("SIP/2.0 400 "), "{tag}: {answer}");
    assert_eq!(
        header(&answer, "Call-ID"),
        Some(format!("{tag}@127.0.0.1").as_str()),
        "{answer}"
    );
    assert!(
        header(&answer, "To").is_some_and(|t| t.contains(";tag=")),
        "{tag}: a final response has a To tag (RFC 3261 §8.2.6.2): {answer}"
    );
    let warning = header(&answer, "Warning").unwrap_or_else(|| panic!("{tag}: no Warning header: {answer}"));
    assert!(warning.starts_with("399 "), "{tag}: Warning {warning}");
    assert!(warning.contains(what), "{tag}: the Warning names {what}: {warning}");
}

/// After bad input the daemon still answers a good OPTIONS with 200.
fn assert_still_serving(d: &Daemon) {
    let ok = exchange(
        d,
        options_request("good", "9 OPTIONS", "", "", 0).as_bytes(),
        Duration::from_secs(2),
    )
    .expect("a good OPTIONS after malformed input gets an answer");
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(header(&ok, "Allow").is_some_and(|a| a.contains("INVITE")), "{ok}");
}

#[test]
fn malformed_messages_get_400_naming_the_header_or_silence() {
    let d = Daemon::start("sipp-malformed").unwrap();
    let wait = Duration::from_millis(1500);
    // Garbage: no request line and no Via to send an answer to; dropped silently.
    for garbage in [
        &b"\x00\xff\x13\x37 not SIP at all\r\n\r\n"[..],
        b"hello world\r\n\r\n",
        &[0xc3; 300],
    ] {
        let answer = exchange(&d, garbage, wait);
        assert!(answer.is_none(), "garbage {garbage:?} must be dropped, got {answer:?}");
    }
    // A CSeq whose method is not the request's (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17).
    let mismatch = options_request("cseq-method", "1 INVITE", "", "", 0);
    assert_bad_request(exchange(&d, mismatch.as_bytes(), wait), "cseq-method", "CSeq");
    // A CSeq without a method.
    let no_method = options_request("cseq-nomethod", "7", "", "", 0);
    assert_bad_request(exchange(&d, no_method.as_bytes(), wait), "cseq-nomethod", "CSeq");
    // A Content-Length larger than the body: RFC 3261 §18.3, a request SHOULD get 400.
    let body = "hello";
    let long = options_request("content-length", "8 OPTIONS", "Content-Type: text/plain\r\n", body, 500);
    assert_bad_request(exchange(&d, long.as_bytes(), wait), "content-length", "Content-Length");
    assert_still_serving(&d);
}

#[test]
fn unparsable_cseq_number_gets_400_naming_cseq() {
    let d = Daemon::start("sipp-cseq-number").unwrap();
    let wait = Duration::from_millis(1500);
    // RFC 4475 §3.1.2.4 (scalar02): a CSeq number above 2^32-1 is answered
    // 400 Bad Request; RFC 3261 §8.1.1.5: it must be a 32-bit unsigned integer.
    let overlarge = options_request("cseq-overlarge", "36893488147419103232 OPTIONS", "", "", 0);
    assert_bad_request(exchange(&d, overlarge.as_bytes(), wait), "cseq-overlarge", "CSeq");
    let letters = options_request("cseq-letters", "abc OPTIONS", "", "", 0);
    assert_bad_request(exchange(&d, letters.as_bytes(), wait), "cseq-letters", "CSeq");
    assert_still_serving(&d);
}

/// An INVITE into conference 5001 from `127.0.0.1:LOCALPORT` with extra header lines.
fn invite_request(tag: &str, extra: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:5001@{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe-{tag}\r\n\
         To: <sip:5001@{SERVER}>\r\n\
         Call-ID: {tag}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:probe@127.0.0.1:LOCALPORT>\r\n\
         {extra}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Reads responses until a final one (the INVITE's 100 Trying comes first).
fn final_response(d: &Daemon, request: &str) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let text = request.replace("LOCALPORT", &port.to_string());
    sock.send_to(text.as_bytes(), ("127.0.0.1", d.sip_port)).unwrap();
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !msg.starts_with("SIP/2.0 1") {
            return Some(msg);
        }
    }
}

#[test]
fn required_extensions_we_lack_get_420_naming_them() {
    let d = Daemon::start("sipp-require").unwrap();
    d.cli_ok(&["conference", "add", "5001"]).unwrap();
    // RFC 3261 §8.2.2.3: 420 Bad Extension with the unsupported option tags.
    let r = final_response(&d, &invite_request("req1", "Require: foo, timer\r\n")).expect("an answer");
    assert!(r.starts_with("SIP/2.0 420 "), "{r}");
    assert_eq!(header(&r, "Unsupported"), Some("foo"), "{r}");
    // A session timer below Min-SE: 422 with our Min-SE (RFC 4028 §8.1).
    let r = final_response(
        &d,
        &invite_request("req2", "Supported: timer\r\nSession-Expires: 30\r\n"),
    )
    .expect("an answer");
    assert!(r.starts_with("SIP/2.0 422 "), "{r}");
    assert_eq!(header(&r, "Min-SE"), Some("90"), "{r}");
    // 100rel and timer are supported: the call is answered.
    let r = final_response(&d, &invite_request("req3", "Require: 100rel\r\nSupported: timer\r\n")).expect("an answer");
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(
        header(&r, "Session-Expires").is_some_and(|v| v.starts_with("1800")),
        "{r}"
    );
}

/// Registers a SIPp phone for `user` from a fresh local port and returns
/// that port (where the phone then takes calls).
fn register_phone(d: &Daemon, user: &str, password: &str) -> u16 {
    let phone = free_udp_port();
    let inf = injection(d, user, password);
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

/// The messages of a SIPp trace that start with `start_line` (e.g. `SIP/2.0 180`).
fn traced<'a>(trace: &'a str, start_line: &str) -> Vec<&'a str> {
    trace
        .split("-----------------------------------------------")
        .filter_map(|m| {
            let at = m.find(start_line)?;
            let msg = &m[at..];
            msg.lines()
                .next()
                .is_some_and(|l| l.starts_with(start_line))
                .then_some(msg)
        })
        .collect()
}

#[test]
fn reliable_ringing_is_acknowledged_both_ways_and_the_answer_waits_for_the_prack() {
    let d = Daemon::start("sipp-prack").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let phone = register_phone(&d, "alice", "alice-secret-1");
    // Alice's phone rings reliably and wants a PRACK from confgate.
    let callee = spawn_sipp(&d, "callee-100rel-answer.xml", phone, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let caller = spawn_sipp(&d, "call-100rel-prack.xml", free_udp_port(), true, &["-s", "alice"]);
    let trace_file = caller.msg_file.clone();
    let (caller_ok, caller_log) = caller.finish(Duration::from_secs(40));
    let (callee_ok, callee_log) = callee.finish(Duration::from_secs(40));
    assert!(
        callee_ok,
        "phone: INVITE (Supported: 100rel) → 183 with SDP (RSeq 4711) → PRACK (RAck 4711) → 200 \
         without SDP → ACK → BYE: {callee_log}"
    );
    assert!(
        caller_ok,
        "caller: INVITE (Require: 100rel) → reliable 180 → PRACK → 200 (PRACK) → 200 (INVITE) → ACK \
         → BYE: {caller_log}"
    );
    let trace = std::fs::read_to_string(trace_file).unwrap();
    let ringing = traced(&trace, "SIP/2.0 180");
    assert!(!ringing.is_empty(), "{trace}");
    for r in &ringing {
        assert!(
            header(r, "Require").is_some_and(|v| v.contains("100rel")),
            "the 180 is sent reliably: {r}"
        );
        assert!(
            header(r, "RSeq").is_some_and(|v| v.parse::<u32>().is_ok_and(|n| (1..1 << 31).contains(&n))),
            "{r}"
        );
    }
    // RFC 3262 §3 as confgate applies it: the 2xx waits for the PRACK (the
    // callee answered while the caller was still pausing).
    let entries: Vec<&str> = trace.split("-----------------------------------------------").collect();
    let prack_sent = entries
        .iter()
        .position(|e| e.contains("message sent") && e.contains("\nPRACK "))
        .expect("the caller sent a PRACK");
    let answer = entries
        .iter()
        .position(|e| {
            e.contains("message received")
                && e.contains("\nSIP/2.0 200 ")
                && header(&e[e.find("SIP/2.0").unwrap_or(0)..], "CSeq").is_some_and(|c| c.ends_with("INVITE"))
        })
        .expect("the caller got a 200 for its INVITE");
    assert!(
        answer > prack_sent,
        "the 200 for the INVITE came before the PRACK was sent:\n{trace}"
    );
}

#[test]
fn reliable_ringing_never_acknowledged_is_retransmitted_then_the_call_fails_with_500() {
    // T1 = 100 ms: retransmissions at 100, 300, 700, 1500, 3100 and 6300 ms,
    // the 500 at 6400 ms (64·T1).
    let d = Daemon::start_with("sipp-prack-none", &[("CONFGATE_SIP__T1_MS", "100")]).unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let phone = register_phone(&d, "alice", "alice-secret-1");
    let callee = spawn_sipp(&d, "callee-ring-cancelled.xml", phone, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let caller = spawn_sipp(&d, "call-100rel-no-prack.xml", free_udp_port(), true, &["-s", "alice"]);
    let trace_file = caller.msg_file.clone();
    let started = std::time::Instant::now();
    let (caller_ok, caller_log) = caller.finish(Duration::from_secs(40));
    let took = started.elapsed();
    let (callee_ok, callee_log) = callee.finish(Duration::from_secs(40));
    assert!(
        caller_ok,
        "caller: INVITE → reliable 180, retransmitted → 500 → ACK: {caller_log}"
    );
    assert!(
        callee_ok,
        "the ringing phone is cancelled when the caller's call fails: {callee_log}"
    );
    let trace = std::fs::read_to_string(trace_file).unwrap();
    let ringing = traced(&trace, "SIP/2.0 180");
    let rseqs: Vec<&str> = ringing.iter().filter_map(|r| header(r, "RSeq")).collect();
    assert_eq!(rseqs.len(), ringing.len(), "every 180 has an RSeq: {trace}");
    assert!(
        ringing.len() >= 6,
        "the 180 is retransmitted until 64·T1: {} sent\n{trace}",
        ringing.len()
    );
    assert!(
        rseqs.windows(2).all(|w| w[0] == w[1]),
        "retransmissions keep the RSeq: {rseqs:?}"
    );
    let finals = traced(&trace, "SIP/2.0 500");
    assert!(!finals.is_empty(), "{trace}");
    assert!(
        took >= Duration::from_millis(6000),
        "the call is given up after 64·T1 (6.4 s), not before: {took:?}"
    );
}

#[test]
fn prack_for_an_unknown_rseq_gets_481_and_one_without_rack_400() {
    let d = Daemon::start("sipp-prack-481").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let phone = register_phone(&d, "alice", "alice-secret-1");
    let callee = spawn_sipp(&d, "callee-ring-cancelled.xml", phone, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (caller_ok, caller_log) = sipp(
        &d,
        "call-100rel-wrong-rack.xml",
        &["-s", "alice"],
        Duration::from_secs(40),
    );
    let (callee_ok, callee_log) = callee.finish(Duration::from_secs(40));
    assert!(
        caller_ok,
        "caller: reliable 180 → PRACK (unknown RSeq) → 481 → PRACK (no RAck) → 400 → CANCEL → 200, 487 \
         → ACK: {caller_log}"
    );
    assert!(callee_ok, "phone: INVITE → 180 → CANCEL → 200, 487 → ACK: {callee_log}");
}

#[test]
fn a_call_to_a_user_whose_phones_are_all_busy_gets_486() {
    let d = Daemon::start("sipp-fork-busy").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    // Two phones registered as alice, from two ports: both are rung.
    let phones: Vec<Sipp> = (0..2)
        .map(|_| {
            let port = register_phone(&d, "alice", "alice-secret-1");
            spawn_sipp(&d, "callee-busy.xml", port, false, &[])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (caller_ok, caller_log) = sipp(
        &d,
        "call-user-refused-486.xml",
        &["-s", "alice"],
        Duration::from_secs(40),
    );
    for (i, p) in phones.into_iter().enumerate() {
        let (ok, log) = p.finish(Duration::from_secs(40));
        assert!(
            ok,
            "phone {i} got the INVITE, refused it with 486 and got the ACK: {log}"
        );
    }
    assert!(
        caller_ok,
        "both busy: the caller gets 486 (RFC 3261 §16.7): {caller_log}"
    );
}

#[test]
fn a_decline_from_one_phone_ends_the_search_and_cancels_the_other() {
    let d = Daemon::start("sipp-fork-6xx").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let ringing = register_phone(&d, "alice", "alice-secret-1");
    let declining = register_phone(&d, "alice", "alice-secret-1");
    let ringing = spawn_sipp(&d, "callee-ring-cancelled.xml", ringing, false, &[]);
    let declining = spawn_sipp(&d, "callee-decline.xml", declining, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (caller_ok, caller_log) = sipp(
        &d,
        "call-user-refused-603.xml",
        &["-s", "alice"],
        Duration::from_secs(40),
    );
    let (ringing_ok, ringing_log) = ringing.finish(Duration::from_secs(40));
    let (declining_ok, declining_log) = declining.finish(Duration::from_secs(40));
    assert!(declining_ok, "the declining phone: INVITE → 603 → ACK: {declining_log}");
    assert!(
        caller_ok,
        "a 6xx ends the search: the caller gets 603 at once (RFC 3261 §16.7): {caller_log}"
    );
    assert!(
        ringing_ok,
        "the phone still ringing is cancelled: INVITE → 180 → CANCEL → 200, 487 → ACK: {ringing_log}"
    );
}

#[test]
fn a_hold_from_the_callee_is_answered_on_the_codec_in_use() {
    let d = Daemon::start("sipp-callee-hold").unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let phone = register_phone(&d, "alice", "alice-secret-1");
    let callee = spawn_sipp(&d, "callee-answer-then-hold.xml", phone, false, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (caller_ok, caller_log) = sipp(&d, "call-user-answered.xml", &["-s", "alice"], Duration::from_secs(40));
    let (callee_ok, callee_log) = callee.finish(Duration::from_secs(40));
    assert!(caller_ok, "caller: INVITE → 200 (PCMU) → ACK → BYE → 200: {caller_log}");
    assert!(
        callee_ok,
        "phone: 200 → ACK → re-INVITE sendonly → 200 with PCMU alone, recvonly → ACK → BYE: {callee_log}"
    );
}
