//! SIP trunks (`[[sip.trunks]]`) against SIPp playing the provider:
//! registration with digest, a call out through a gateway route (the
//! provider's 407 answered with the trunk's credentials, 180 and 200
//! relayed, BYE passed on), calls from the trunk's addresses taken without a
//! challenge, and a provider's refusal reaching the caller.
//!
//! Scenarios are `tests/sipp/trunk-*.xml`. Needs `sipp` (Debian
//! `sip-tester`); it fails, not skips, without it. Every SIPp process is
//! ended by its PID; each test uses its own ports.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confgate_suite::sipp::spawn_sipp;
use confgate_suite::{free_udp_port, metric_value, ChildGuard, Daemon, TempDir};

/// The trunk's credentials at the provider (also in the provider scenarios).
const TRUNK_USER: &str = "4930123400";
const TRUNK_PASSWORD: &str = "trunk-secret-1";

/// A trunk named `carrier` at `127.0.0.1:<provider>`, domain `carrier.test`,
/// with the trunk's credentials and `extra` TOML lines.
fn trunk_toml(provider: u16, extra: &str) -> String {
    format!(
        "[[sip.trunks]]\n\
         name = \"carrier\"\n\
         host = \"127.0.0.1:{provider}\"\n\
         domain = \"carrier.test\"\n\
         username = \"{TRUNK_USER}\"\n\
         password = \"{TRUNK_PASSWORD}\"\n\
         {extra}\n"
    )
}

/// The international route of `conf/examples/gateway-routes.toml`:
/// 0049301234567 → +49301234567 through the trunk `carrier`.
const ROUTE_TOML: &str = "[[routing.routes]]\n\
                          name = \"international\"\n\
                          prefix = \"00\"\n\
                          strip = 2\n\
                          prepend = \"+\"\n\
                          target = \"sip:carrier\"\n";

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

/// An injection file (`-inf`) with one line of fields.
fn injection(dir: &Path, name: &str, fields: &[&str]) -> String {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, format!("SEQUENTIAL\n{}\n", fields.join(";"))).unwrap();
    path.display().to_string()
}

#[test]
fn trunk_registers_with_digest() {
    // The provider listens before the daemon starts: the daemon registers at start-up.
    let logs = TempDir::new("trunk-register-sipp");
    let provider_port = free_udp_port();
    let provider = spawn_sipp(logs.path(), "trunk-provider-register.xml", provider_port, None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let config = trunk_toml(provider_port, "register = true\nregister_expires = 120");
    let d = Daemon::start_with_config("trunk-register", &[], &config).unwrap();
    let (ok, log) = provider.finish(Duration::from_secs(20));
    assert!(
        ok,
        "provider: REGISTER sip:carrier.test → 401 (qop auth) → REGISTER with a verified Authorization → 200: \
         {log}\n--- daemon log:\n{}",
        d.stderr()
    );
    // The daemon took the 200 and the granted time (the Contact's expires).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.stderr().contains("registered to the trunk") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("registered to the trunk") && l.contains("expires=120")),
        "the daemon logs the registration granted for 120 s: {log}"
    );
}

/// `confgate_relay_endpoints` now (`None`: not exposed or no answer).
fn relay_endpoints(d: &Daemon) -> Option<f64> {
    let text = ureq::get(&d.url("/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    metric_value(&text, "confgate_relay_endpoints")
}

/// Polls `confgate_relay_endpoints` for up to `within` until `pred` holds; the last value read.
fn wait_endpoints(d: &Daemon, within: Duration, pred: impl Fn(f64) -> bool) -> Option<f64> {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = relay_endpoints(d);
        if last.is_some_and(&pred) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

#[test]
fn calls_go_out_through_a_trunk_route() {
    let provider_port = free_udp_port();
    let config = format!("{}\n{ROUTE_TOML}", trunk_toml(provider_port, ""));
    let d = Daemon::start_with_config("trunk-call-out", &[], &config).unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let provider = spawn_sipp(d.dir.path(), "trunk-provider-call.xml", provider_port, None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let caller = spawn_sipp(
        d.dir.path(),
        "trunk-caller.xml",
        free_udp_port(),
        Some(d.sip_port),
        &["-s", "0049301234567", "-au", "alice", "-ap", "alice-secret-1"],
    );
    // While the call is up, the relay holds an endpoint for each leg.
    let during = wait_endpoints(&d, Duration::from_secs(10), |n| n >= 2.0);
    let provider_msgs = provider.msg_file.clone();
    let (caller_ok, caller_log) = caller.finish(Duration::from_secs(40));
    let (provider_ok, provider_log) = provider.finish(Duration::from_secs(20));
    let after = wait_endpoints(&d, Duration::from_secs(5), |n| n == 0.0);
    assert!(
        provider_ok,
        "provider: INVITE sip:+49301234567@carrier.test → 407 → ACK → INVITE with Proxy-Authorization → 180, 200 \
         (PCMU) → ACK → BYE → 200: {provider_log}\n--- daemon log:\n{}",
        d.stderr()
    );
    assert!(
        caller_ok,
        "caller alice: INVITE 0049301234567 → 407 → ACK → INVITE with credentials → 180 → 200 (PCMU) → ACK → BYE → \
         200: {caller_log}\n--- daemon log:\n{}",
        d.stderr()
    );
    assert!(
        during.is_some_and(|n| n >= 2.0),
        "the relay bridges the two legs during the call: confgate_relay_endpoints {during:?}"
    );
    assert_eq!(after, Some(0.0), "the relay endpoints are freed after the BYE");
    let msgs = std::fs::read_to_string(&provider_msgs).unwrap_or_default();
    assert_proxy_digest(&msgs, "INVITE", "sip:+49301234567@carrier.test");
}

/// The MD5 of `text` in hex (coreutils `md5sum`: the suite has no MD5 of its own).
fn md5_hex(text: &str) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let (status, out, err) = ChildGuard(child).output_timeout(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "md5sum: {err}");
    out.split_whitespace().next().unwrap_or_default().to_string()
}

/// The value of `name` in a digest header's parameters (quoted or not).
fn digest_param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let params = header.split_once("Digest")?.1;
    params.split(',').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"'))
    })
}

/// SIPp's `verifyauth` reads only `Authorization` (3.6.1: on a
/// `Proxy-Authorization` it logs "authentication must be digest is" and
/// fails), so the provider's scenario checks the Proxy-Authorization's
/// user, realm, nonce and uri with ereg, and this checks its response
/// (RFC 2617 §3.2.2 with qop=auth) against the trunk's password, from the
/// provider's message log.
fn assert_proxy_digest(provider_msgs: &str, method: &str, uri: &str) {
    let header = provider_msgs
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
        .unwrap_or_else(|| panic!("the provider received no Proxy-Authorization: {provider_msgs}"));
    let p = |n: &str| digest_param(header, n).unwrap_or_else(|| panic!("no {n} in {header}"));
    assert_eq!(p("username"), TRUNK_USER, "{header}");
    assert_eq!(p("uri"), uri, "{header}");
    assert_eq!(p("qop"), "auth", "{header}");
    let ha1 = md5_hex(&format!("{TRUNK_USER}:{}:{TRUNK_PASSWORD}", p("realm")));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = md5_hex(&format!("{ha1}:{}:{}:{}:auth:{ha2}", p("nonce"), p("nc"), p("cnonce")));
    assert_eq!(
        p("response"),
        expected,
        "the Proxy-Authorization's response is the digest of the trunk's credentials: {header}"
    );
}

/// Waits until conference `conf` has a participant; returns the participants' JSON.
fn wait_participants(d: &Daemon, conf: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = d
            .api("GET", &format!("/api/v1/conferences/{conf}/participants"), None)
            .unwrap();
        assert_eq!(s, 200, "{body}");
        if body["participants"].as_array().is_some_and(|p| !p.is_empty()) || Instant::now() >= deadline {
            return body["participants"].clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn calls_from_the_trunk_are_not_challenged() {
    // The trunk's calls come from 127.0.0.1, where SIPp runs.
    let config = trunk_toml(free_udp_port(), "inbound_from = [\"127.0.0.1/32\"]");
    let d = Daemon::start_with_config("trunk-inbound", &[], &config).unwrap();
    d.cli_ok(&["conference", "add", "5301"]).unwrap();
    // Without the trunk, a From naming a local account would be challenged with 407.
    add_user(&d, "alice", "alice-secret-1");
    for (user, domain) in [("+4930555", "carrier.test"), ("alice", "127.0.0.1")] {
        let inf = injection(d.dir.path(), &format!("from-{user}"), &[user, domain]);
        let call = spawn_sipp(
            d.dir.path(),
            "trunk-inbound-call.xml",
            free_udp_port(),
            Some(d.sip_port),
            &["-s", "5301", "-inf", &inf],
        );
        let participants = wait_participants(&d, "5301");
        let (ok, log) = call.finish(Duration::from_secs(40));
        assert!(
            ok,
            "a call from the trunk (From {user}@{domain}) → 200 without a 407 → ACK → BYE → 200: {log}\n\
             --- daemon log:\n{}",
            d.stderr()
        );
        // Named by its calling number, not by the From display name ("Carrier Caller").
        assert_eq!(
            participants[0]["display_name"], *user,
            "the trunk's caller is in the room named {user}: {participants}"
        );
    }
    assert!(
        d.stderr().contains("call from a trunk"),
        "the daemon logs the calls as the trunk's: {}",
        d.stderr()
    );
}

#[test]
fn a_refusal_by_the_provider_reaches_the_caller() {
    // A trunk without credentials: the provider's 486 comes straight away.
    let provider_port = free_udp_port();
    let trunk = format!(
        "[[sip.trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1:{provider_port}\"\ndomain = \"carrier.test\"\n"
    );
    let d = Daemon::start_with_config("trunk-busy", &[], &format!("{trunk}\n{ROUTE_TOML}")).unwrap();
    add_user(&d, "alice", "alice-secret-1");
    let provider = spawn_sipp(d.dir.path(), "trunk-provider-busy.xml", provider_port, None, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let (caller_ok, caller_log) = spawn_sipp(
        d.dir.path(),
        "trunk-caller-busy.xml",
        free_udp_port(),
        Some(d.sip_port),
        &["-s", "0049301234567", "-au", "alice", "-ap", "alice-secret-1"],
    )
    .finish(Duration::from_secs(40));
    let (provider_ok, provider_log) = provider.finish(Duration::from_secs(20));
    assert!(
        provider_ok,
        "provider: INVITE sip:+49301234567@carrier.test → 486 → ACK: {provider_log}\n--- daemon log:\n{}",
        d.stderr()
    );
    assert!(
        caller_ok,
        "caller alice: INVITE 0049301234567 → 407 → ACK → INVITE with credentials → 486 → ACK: {caller_log}\n\
         --- daemon log:\n{}",
        d.stderr()
    );
}
