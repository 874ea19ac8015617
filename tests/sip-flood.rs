//! A flood of new SIP requests from one address (`sip.max_requests_per_source`):
//! a second's worth is answered, the first request over the rate gets 503
//! with Retry-After, the rest are dropped and counted; other addresses are
//! served meanwhile, and the source is served again once its rate falls.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use confgate_suite::{metric_value, Daemon, SERVER};

const RATE: usize = 50;

fn register(tag: &str, via_host: &str) -> String {
    format!(
        "REGISTER sip:{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch=z9hG4bK-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{SERVER}>;tag=f-{tag}\r\n\
         To: <sip:alice@{SERVER}>\r\n\
         Call-ID: {tag}@flood\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:alice@{via_host}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn invite(tag: &str, via_host: &str) -> String {
    format!(
        "INVITE sip:70001@{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch=z9hG4bK-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{SERVER}>;tag=f-{tag}\r\n\
         To: <sip:70001@{SERVER}>\r\n\
         Call-ID: {tag}@flood\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{via_host}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Everything that arrives on `sock` within `window`.
fn collect(sock: &UdpSocket, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

fn status(msg: &str) -> u16 {
    msg.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn dropped(d: &Daemon) -> f64 {
    let m = ureq::get(&d.url("/metrics")).call().unwrap().into_string().unwrap();
    metric_value(&m, "confgate_dropped_total{reason=\"sip_rate_limited\"}").unwrap_or(0.0)
}

#[test]
fn a_flood_from_one_address_is_cut_at_the_rate_and_others_are_served() {
    let rate = RATE.to_string();
    let d = Daemon::start_with("sip-flood", &[("CONFGATE_SIP__MAX_REQUESTS_PER_SOURCE", &rate)]).unwrap();
    let target = format!("127.0.0.1:{}", d.sip_port);
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let via = flooder.local_addr().unwrap().to_string();
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    let other_via = other.local_addr().unwrap().to_string();

    // Six seconds' worth of REGISTERs in about 70 ms, each a new
    // transaction (paced only so that the daemon's socket buffer does not
    // overflow: what the kernel drops never reaches the limiter).
    const SENT: usize = 6 * RATE;
    let started = Instant::now();
    for i in 0..SENT {
        flooder
            .send_to(register(&format!("r{i}"), &via).as_bytes(), &target)
            .unwrap();
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if i == SENT / 2 {
            // Another address registers in the middle of the flood.
            other
                .send_to(register("other", &other_via).as_bytes(), &target)
                .unwrap();
        }
    }
    let sending = started.elapsed();
    let answers = collect(&flooder, Duration::from_millis(800));
    let other_answers = collect(&other, Duration::from_millis(500));

    let challenged = answers.iter().filter(|a| status(a) == 401).count();
    let refused: Vec<&String> = answers.iter().filter(|a| status(a) == 503).collect();
    // The bucket holds one second's worth and refills while we send.
    let refill = (sending.as_secs_f64() * RATE as f64).ceil() as usize + 1;
    assert!(
        (RATE..=RATE + refill).contains(&challenged),
        "{challenged} of {SENT} REGISTERs challenged (401), expected {RATE} (+{refill} refilled in {sending:?})"
    );
    assert_eq!(
        refused.len(),
        1,
        "exactly one 503 tells the flooder, the rest is dropped: {} answers",
        answers.len()
    );
    assert_eq!(answers.len(), challenged + 1, "nothing but 401s and one 503");
    let r = refused[0];
    assert_eq!(header(r, "Retry-After"), Some("1"), "{r}");
    assert!(
        header(r, "Warning").is_some_and(|w| w.contains("too many requests")),
        "{r}"
    );
    assert!(header(r, "To").is_some_and(|t| t.contains("tag=")), "{r}");
    assert_eq!(other_answers.len(), 1, "the other address is served during the flood");
    assert_eq!(status(&other_answers[0]), 401, "{}", other_answers[0]);

    let counted = dropped(&d);
    assert_eq!(
        counted as usize,
        SENT - challenged,
        "/metrics counts every request refused or dropped"
    );

    // An INVITE flood is limited the same way (a new run: a new 503).
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..(2 * RATE) {
        flooder
            .send_to(invite(&format!("i{i}"), &via).as_bytes(), &target)
            .unwrap();
    }
    let answers = collect(&flooder, Duration::from_millis(800));
    let refused = answers
        .iter()
        .filter(|a| status(a) == 503 && header(a, "Retry-After").is_some())
        .count();
    assert_eq!(refused, 1, "one 503 for the INVITE flood");
    let invites_answered = answers
        .iter()
        .filter(|a| header(a, "CSeq").is_some_and(|c| c.ends_with("INVITE")) && status(a) != 503)
        .map(|a| header(a, "Call-ID").unwrap_or(""))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(
        (RATE..=RATE + 5).contains(&invites_answered),
        "{invites_answered} INVITEs of {} handled",
        2 * RATE
    );

    // Once the rate falls, the address is served again.
    std::thread::sleep(Duration::from_millis(1100));
    flooder.send_to(register("after", &via).as_bytes(), &target).unwrap();
    let after = collect(&flooder, Duration::from_millis(800));
    assert!(
        after.iter().any(|a| status(a) == 401 && a.contains("after@flood")),
        "served again after the flood: {after:?}"
    );
}
