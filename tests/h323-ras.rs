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

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confgate_suite::{repo_dir, Daemon, SERVER};
use h323::asn1::{decode_ras, encode, h225};
use h323::ras::{socket_address, text, transport, Alias};

fn corpus_ras() -> Vec<h225::RasMessage> {
    let text = std::fs::read_to_string(repo_dir().join("protocols/h323/tests/data/corpus.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("ras "))
        .map(|hex| {
            let hex = hex.trim();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            decode_ras(&bytes).unwrap()
        })
        .collect()
}

struct Endpoint {
    socket: UdpSocket,
    gatekeeper: SocketAddr,
    corpus: Vec<h225::RasMessage>,
}

impl Endpoint {
    fn new(d: &Daemon) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self {
            socket,
            gatekeeper: SocketAddr::from(([127, 0, 0, 1], d.ras_port)),
            corpus: corpus_ras(),
        }
    }

    fn ras_address(&self) -> h225::TransportAddress {
        transport(self.socket.local_addr().unwrap())
    }

    /// Sends `msg` and returns the answer (retrying as RAS does over UDP).
    fn ask(&self, msg: &h225::RasMessage) -> h225::RasMessage {
        let bytes = encode(msg).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..5 {
            self.socket.send_to(&bytes, self.gatekeeper).unwrap();
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                assert_eq!(from, self.gatekeeper);
                return decode_ras(&buf[..n]).unwrap();
            }
        }
        panic!("no answer from the gatekeeper to {msg:?}");
    }

    fn grq(&self) -> h225::GatekeeperRequest {
        let mut r = self
            .corpus
            .iter()
            .find_map(|m| match m {
                h225::RasMessage::gatekeeperRequest(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        r.ras_address = self.ras_address();
        r.gatekeeper_identifier = None;
        r
    }

    fn rrq(&self, alias: &str, gatekeeper: Option<h225::GatekeeperIdentifier>) -> h225::RegistrationRequest {
        let mut r = self
            .corpus
            .iter()
            .find_map(|m| match m {
                h225::RasMessage::registrationRequest(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        r.ras_address = vec![self.ras_address()];
        r.call_signal_address = vec![transport("127.0.0.1:41720".parse().unwrap())];
        r.terminal_alias = Some(vec![Alias::H323Id(alias.into()).to_asn1().unwrap()]);
        r.gatekeeper_identifier = gatekeeper;
        r.time_to_live = None;
        r
    }

    fn arq(&self, endpoint: &h225::EndpointIdentifier, dialed: &str) -> h225::AdmissionRequest {
        let mut r = self
            .corpus
            .iter()
            .find_map(|m| match m {
                h225::RasMessage::admissionRequest(r) if !r.answer_call => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        r.endpoint_identifier = endpoint.clone();
        r.destination_info = Some(vec![Alias::DialedDigits(dialed.into()).to_asn1().unwrap()]);
        r.dest_call_signal_address = None;
        r.gatekeeper_identifier = None;
        r
    }
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
    let ep = Endpoint::new(&d);

    // Discovery.
    let h225::RasMessage::gatekeeperConfirm(gcf) = ep.ask(&h225::RasMessage::gatekeeperRequest(ep.grq())) else {
        panic!("no GCF")
    };
    let gk_id = gcf.gatekeeper_identifier.clone().unwrap();
    assert_eq!(text(&gk_id.0).as_deref(), Some(SERVER));
    assert_eq!(socket_address(&gcf.ras_address), Some(ep.gatekeeper));

    // Registration of the account's alias.
    let answer = ep.ask(&h225::RasMessage::registrationRequest(
        ep.rrq("alice", Some(gk_id.clone())),
    ));
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
    let answer = ep.ask(&h225::RasMessage::admissionRequest(ep.arq(&endpoint, "7001")));
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
    let answer = ep.ask(&h225::RasMessage::admissionRequest(ep.arq(&endpoint, "7001")));
    let h225::RasMessage::admissionReject(arj) = answer else {
        panic!("no ARJ: {answer:?}")
    };
    assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::callerNotRegistered(()));
}

#[test]
fn unknown_alias_gets_rrj_invalid_alias() {
    let d = Daemon::start("h323-ras-unknown").unwrap();
    let ep = Endpoint::new(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(ep.rrq("mallory", None)));
    let h225::RasMessage::registrationReject(rrj) = answer else {
        panic!("no RRJ: {answer:?}")
    };
    assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::invalidAlias(()));
}

#[test]
fn account_of_another_type_without_password_gets_rrj_security_denial() {
    let d = Daemon::start("h323-ras-denied").unwrap();
    d.cli_ok(&["user", "add", "webby", "--type", "ws"]).unwrap();
    let ep = Endpoint::new(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(ep.rrq("webby", None)));
    let h225::RasMessage::registrationReject(rrj) = answer else {
        panic!("no RRJ: {answer:?}")
    };
    assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::securityDenial(()));
}

#[test]
fn open_policy_registers_any_alias() {
    let d = Daemon::start_with("h323-ras-open", &[("CONFGATE_H323__REGISTRATION_POLICY", "open")]).unwrap();
    let ep = Endpoint::new(&d);
    let answer = ep.ask(&h225::RasMessage::registrationRequest(ep.rrq("room-101", None)));
    assert!(matches!(answer, h225::RasMessage::registrationConfirm(_)), "{answer:?}");
}
