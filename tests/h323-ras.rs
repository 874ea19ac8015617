//! A scripted H.323 endpoint (written here on `confgate-h323`) uses the
//! daemon as its gatekeeper over UDP RAS: GRQ → GCF, RRQ for an existing
//! h323 account → RCF, ARQ for a conference → ACF pointing at the daemon's
//! call-signalling port (gatekeeper-routed), URQ → UCF; an RRQ with an
//! alias that is no account gets RRJ `invalidAlias`, one naming a `ws`
//! account without a password RRJ `securityDenial`, and an ARQ after the
//! URQ gets ARJ `callerNotRegistered`; with `h323.registration_policy =
//! "open"` any alias registers. The requests start from the real
//! GRQ, RRQ and ARQ of the corpus (h323plus registering with GnuGk).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use confgate_suite::h323_endpoint::Ras;
use confgate_suite::{Daemon, SERVER};
use h323::asn1::h225;
use h323::ras::{socket_address, text, transport, Alias};

/// The scripted endpoint's RAS side, waiting up to five seconds for each answer.
fn endpoint(d: &Daemon) -> Ras {
    Ras::with_timeout(d, Duration::from_secs(5))
}

fn rrq(ep: &Ras, alias: &str, gatekeeper: Option<h225::GatekeeperIdentifier>) -> h225::RegistrationRequest {
    let mut r = ep.rrq(&[Alias::H323Id(alias.into())], "127.0.0.1:41720".parse().unwrap());
    r.gatekeeper_identifier = gatekeeper;
    r
}

fn arq(ep: &Ras, endpoint: &h225::EndpointIdentifier, dialed: &str) -> h225::AdmissionRequest {
    ep.arq(endpoint, &Alias::DialedDigits(dialed.into()))
}

fn urq(endpoint: &h225::EndpointIdentifier) -> h225::UnregistrationRequest {
    h225::UnregistrationRequest::new(
        h225::RequestSeqNum(4242),
        vec![transport("127.0.0.1:41720".parse().unwrap())],
        None,
        None,
        Some(endpoint.clone()),
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
        None,
    )
}

#[test]
fn endpoint_registers_is_admitted_to_a_conference_and_unregisters() {
    let d = Daemon::start("h323-ras").unwrap();
    d.cli_ok(&["user", "add", "alice", "--type", "h323"]).unwrap();
    d.cli_ok(&["conference", "add", "7001"]).unwrap();
    let ep = endpoint(&d);

    // Discovery.
    let h225::RasMessage::gatekeeperConfirm(gcf) = ep.ask(&h225::RasMessage::gatekeeperRequest(ep.grq())) else {
        panic!("no GCF")
    };
    let gk_id = gcf.gatekeeper_identifier.clone().unwrap();
    assert_eq!(text(&gk_id.0).as_deref(), Some(SERVER));
    assert_eq!(socket_address(&gcf.ras_address), Some(ep.gatekeeper));

    // Registration of the account's alias.
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(
        &ep,
        "alice",
        Some(gk_id.clone()),
    )));
    let h225::RasMessage::registrationConfirm(rcf) = answer else {
        panic!("no RCF: {answer:?}")
    };
    assert_eq!(rcf.time_to_live, Some(h225::TimeToLive(300)));
    assert_eq!(
        rcf.terminal_alias,
        Some(vec![Alias::H323Id("alice".into()).to_asn1().unwrap()])
    );
    let endpoint = rcf.endpoint_identifier.clone();

    // Admission to a conference: the call signalling goes to the daemon.
    let answer = ep.ask(&h225::RasMessage::admissionRequest(arq(&ep, &endpoint, "7001")));
    let h225::RasMessage::admissionConfirm(acf) = answer else {
        panic!("no ACF: {answer:?}")
    };
    assert_eq!(acf.call_model, h225::CallModel::gatekeeperRouted(()));
    assert_eq!(
        socket_address(&acf.dest_call_signal_address),
        Some(SocketAddr::from(([127, 0, 0, 1], d.h323_port)))
    );

    // Unregistration, then the endpoint is not admitted any more.
    let answer = ep.ask(&h225::RasMessage::unregistrationRequest(urq(&endpoint)));
    assert!(
        matches!(answer, h225::RasMessage::unregistrationConfirm(_)),
        "{answer:?}"
    );
    let answer = ep.ask(&h225::RasMessage::admissionRequest(arq(&ep, &endpoint, "7001")));
    let h225::RasMessage::admissionReject(arj) = answer else {
        panic!("no ARJ: {answer:?}")
    };
    assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::callerNotRegistered(()));
}

#[test]
fn unknown_alias_gets_rrj_invalid_alias() {
    let d = Daemon::start("h323-ras-unknown").unwrap();
    let ep = endpoint(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(&ep, "mallory", None)));
    let h225::RasMessage::registrationReject(rrj) = answer else {
        panic!("no RRJ: {answer:?}")
    };
    assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::invalidAlias(()));
}

#[test]
fn account_of_another_type_without_password_gets_rrj_security_denial() {
    let d = Daemon::start("h323-ras-denied").unwrap();
    d.cli_ok(&["user", "add", "webby", "--type", "ws"]).unwrap();
    let ep = endpoint(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(&ep, "webby", None)));
    let h225::RasMessage::registrationReject(rrj) = answer else {
        panic!("no RRJ: {answer:?}")
    };
    assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::securityDenial(()));
}

#[test]
fn open_policy_registers_any_alias() {
    let d = Daemon::start_with("h323-ras-open", &[("CONFGATE_H323__REGISTRATION_POLICY", "open")]).unwrap();
    let ep = endpoint(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(rrq(&ep, "room-101", None)));
    assert!(matches!(answer, h225::RasMessage::registrationConfirm(_)), "{answer:?}");
}
