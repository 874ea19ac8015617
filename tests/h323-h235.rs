//! H.235 password tokens in RAS against the daemon's gatekeeper, from a
//! scripted endpoint (written here on `confgate-h323`), with the account's
//! H.235 password in `h235-passwords` in the state directory:
//! - the endpoint's MD5 password hash: the GCF names it when the GRQ offers
//!   it; an RRQ with a valid token registers; later ARQs need a token (none:
//!   ARJ `securityDenial`; valid: ACF); a wrong password, a timestamp ten
//!   minutes old (a replay) or a token the daemon cannot check (no password
//!   for the account, or a password file others can read) get RRJ
//!   `securityDenial`;
//! - H.235.1 procedure I (HMAC-SHA1-96 over the whole message): an RRQ
//!   registers and the RCF carries the gatekeeper's own token over the RCF,
//!   made with the same password; the same RRQ sent again is a replay;
//! - repeated wrong tokens lock the source out: even a valid one is then
//!   refused.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use confgate_suite::h323_endpoint::Ras;
use confgate_suite::{Daemon, SERVER};
use h323::asn1::{decode_ras, encode, guid, h225};
use h323::h235::{self, Procedure};
use h323::ras::{text, Alias};

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The scripted endpoint's RAS side, waiting up to three seconds for each answer.
fn endpoint(d: &Daemon) -> Ras {
    Ras::with_timeout(d, Duration::from_secs(3))
}

fn rrq(ep: &Ras, alias: &str, tokens: Vec<h225::CryptoH323Token>) -> h225::RegistrationRequest {
    let mut r = ep.rrq(&[Alias::H323Id(alias.into())], "127.0.0.1:41720".parse().unwrap());
    r.crypto_tokens = (!tokens.is_empty()).then_some(tokens);
    r
}

fn arq(ep: &Ras, endpoint: &h225::EndpointIdentifier, tokens: Vec<h225::CryptoH323Token>) -> h225::AdmissionRequest {
    let mut r = ep.arq(endpoint, &Alias::DialedDigits("7001".into()));
    r.call_identifier = Some(h225::CallIdentifier::new(guid([0x42; 16])));
    r.crypto_tokens = (!tokens.is_empty()).then_some(tokens);
    r
}

fn md5(alias: &str, password: &str, timestamp: u32) -> h225::CryptoH323Token {
    h235::password_hash_token(&Alias::H323Id(alias.into()), password, timestamp).unwrap()
}

fn rrj_reason(m: h225::RasMessage) -> h225::RegistrationRejectReason {
    match m {
        h225::RasMessage::registrationReject(r) => r.reject_reason,
        other => panic!("not an RRJ: {other:?}"),
    }
}

/// Writes the H.235 password file (readable by its owner only, unless `open`).
fn passwords(d: &Daemon, text: &str, open: bool) {
    use std::os::unix::fs::PermissionsExt;
    let path = d.dir.path().join("data").join("h235-passwords");
    std::fs::write(&path, text).unwrap();
    let mode = if open { 0o644 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn daemon(name: &str, lockout_after: &str) -> Daemon {
    let d = Daemon::start_with(name, &[("CONFGATE_ROUTING__LOCKOUT_AFTER", lockout_after)]).unwrap();
    d.cli_ok(&["user", "add", "room1", "--type", "h323"]).unwrap();
    d.cli_ok(&["user", "add", "room2", "--type", "h323"]).unwrap();
    passwords(&d, "# H.235 passwords\nroom1 s3cret\n", false);
    d
}

#[test]
fn md5_password_tokens_register_and_admit_and_bad_ones_are_refused() {
    let d = daemon("h323-h235-md5", "100");
    let ep = endpoint(&d);
    let deny = h225::RegistrationRejectReason::securityDenial(());

    // Discovery offering the password hash: the GCF names it.
    let mut grq = ep.grq();
    let (mechanism, algorithm) = h235::capability(Procedure::PasswordHash);
    grq.authentication_capability = Some(vec![mechanism.clone()]);
    grq.algorithm_oids = Some(vec![algorithm.clone()]);
    let h225::RasMessage::gatekeeperConfirm(gcf) = ep.ask(&h225::RasMessage::gatekeeperRequest(grq)) else {
        panic!("no GCF")
    };
    assert_eq!(gcf.authentication_mode, Some(mechanism));
    assert_eq!(gcf.algorithm_oid, Some(algorithm));

    // Wrong password, a token ten minutes old: refused.
    let now = unix_now();
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room1",
        vec![md5("room1", "guess", now)],
    )));
    assert_eq!(rrj_reason(answer), deny);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room1",
        vec![md5("room1", "s3cret", now - 600)],
    )));
    assert_eq!(rrj_reason(answer), deny);
    // An account with no H.235 password: the token cannot be checked.
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room2",
        vec![md5("room2", "s3cret", now)],
    )));
    assert_eq!(rrj_reason(answer), deny);

    // The right one registers.
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room1",
        vec![md5("room1", "s3cret", unix_now())],
    )));
    let h225::RasMessage::registrationConfirm(rcf) = answer else {
        panic!("no RCF: {answer:?}")
    };
    let endpoint = rcf.endpoint_identifier;
    assert!(d.log_shows("authenticated=true"), "{}", d.stderr());

    // Its ARQs must prove the password too.
    let answer = ep.ask(&h225::RasMessage::admissionRequest(arq(&ep, &endpoint, Vec::new())));
    let h225::RasMessage::admissionReject(arj) = answer else {
        panic!("no ARJ: {answer:?}")
    };
    assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::securityDenial(()));
    let answer = ep.ask(&h225::RasMessage::admissionRequest(arq(
        &ep,
        &endpoint,
        vec![md5("room1", "s3cret", unix_now())],
    )));
    assert!(matches!(answer, h225::RasMessage::admissionConfirm(_)), "{answer:?}");

    // A password file others can read is not used.
    passwords(&d, "room1 s3cret\n", true);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room1",
        vec![md5("room1", "s3cret", unix_now())],
    )));
    assert_eq!(rrj_reason(answer), deny);
    assert!(
        d.log_shows("H.235 password file is readable by others"),
        "{}",
        d.stderr()
    );
}

#[test]
fn procedure1_tokens_both_ways_and_replays_refused() {
    let d = daemon("h323-h235-p1", "100");
    let ep = endpoint(&d);
    let signed = |random: i64| {
        let token = h235::procedure1_token("room1", Some(SERVER), unix_now(), random).unwrap();
        let mut bytes = encode(&h225::RasMessage::registrationRequest(rrq(&ep, "room1", vec![token]))).unwrap();
        assert!(h235::procedure1_sign(&mut bytes, "s3cret"));
        bytes
    };
    let first = signed(1);
    let answer = ep.ask_raw(&first);
    let h225::RasMessage::registrationConfirm(rcf) = decode_ras(&answer).unwrap() else {
        panic!("no RCF: {:?}", decode_ras(&answer))
    };
    // The gatekeeper's token: from it, to the endpoint identifier, over the
    // RCF as sent, with the same password.
    let theirs = h235::find_token(rcf.crypto_tokens.as_deref()).expect("a token in the RCF");
    assert_eq!(theirs.procedure(), Procedure::Procedure1);
    assert_eq!(theirs.sender, SERVER);
    assert_eq!(theirs.recipient, text(&rcf.endpoint_identifier.0));
    assert!(theirs.verify("s3cret", &answer));
    assert!(!theirs.verify("guess", &answer));

    // The same RRQ again: a replay.
    let answer = decode_ras(&ep.ask_raw(&first)).unwrap();
    assert_eq!(rrj_reason(answer), h225::RegistrationRejectReason::securityDenial(()));
    // A new one is fine.
    let answer = decode_ras(&ep.ask_raw(&signed(2))).unwrap();
    assert!(matches!(answer, h225::RasMessage::registrationConfirm(_)), "{answer:?}");
}

#[test]
fn repeated_wrong_tokens_lock_the_source_out() {
    let d = daemon("h323-h235-lockout", "3");
    let ep = endpoint(&d);
    for _ in 0..3 {
        let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
            &ep,
            "room1",
            vec![md5("room1", "guess", unix_now())],
        )));
        assert_eq!(rrj_reason(answer), h225::RegistrationRejectReason::securityDenial(()));
    }
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "room1",
        vec![md5("room1", "s3cret", unix_now())],
    )));
    assert_eq!(
        rrj_reason(answer),
        h225::RegistrationRejectReason::securityDenial(()),
        "locked out"
    );
    assert!(
        d.log_shows("locked out after repeated wrong H.235 passwords"),
        "{}",
        d.stderr()
    );
}
