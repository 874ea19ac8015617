//! Wrong PINs: three wrong attempts end the attempt; repeated failures
//! lock the target out (with back-off), even for the right PIN.
#![allow(clippy::unwrap_used)]

use confgate_suite::{Daemon, LoopbackClient};
use loopback::{ClientMessage, ServerMessage};

fn join(pin: Option<&str>) -> ClientMessage {
    ClientMessage::Join {
        conference: "vault".into(),
        display_name: Some("Guest".into()),
        user: None,
        password: None,
        pin: pin.map(str::to_string),
    }
}

#[test]
fn three_wrong_pins_then_locked_out() {
    // Lock a target out after 4 × 1 failures (per-target threshold is four times the per-source one).
    let d = Daemon::start_with("pin-attempts", &[("CONFGATE_ROUTING__LOCKOUT_AFTER", "1")]).unwrap();
    d.cli_ok(&["conference", "add", "vault", "--closed", "--pin", "13579"])
        .unwrap();
    let socket = d.dir.path().join("data/loopback.sock");

    let mut c = LoopbackClient::connect(&socket).unwrap();
    c.send(&join(None)).unwrap();
    assert_eq!(
        c.next_message().unwrap(),
        ServerMessage::PinRequired {
            attempts_left: 3,
            wrong: false
        }
    );
    c.send(&ClientMessage::Pin { pin: "1111".into() }).unwrap();
    assert_eq!(
        c.next_message().unwrap(),
        ServerMessage::PinRequired {
            attempts_left: 2,
            wrong: true
        }
    );
    c.send(&ClientMessage::Pin { pin: "2222".into() }).unwrap();
    assert_eq!(
        c.next_message().unwrap(),
        ServerMessage::PinRequired {
            attempts_left: 1,
            wrong: true
        }
    );
    c.send(&ClientMessage::Pin { pin: "3333".into() }).unwrap();
    match c.next_message().unwrap() {
        ServerMessage::Refused { reason, .. } => assert_eq!(reason, "pin_attempts_exhausted"),
        other => panic!("{other:?}"),
    }
    assert!(c.next_message().is_err(), "the server closes the session");

    // One more failure reaches the lock-out; then even the right PIN is refused.
    let mut c = LoopbackClient::connect(&socket).unwrap();
    c.send(&join(Some("4444"))).unwrap();
    assert!(matches!(
        c.next_message().unwrap(),
        ServerMessage::PinRequired { wrong: true, .. }
    ));
    let mut c = LoopbackClient::connect(&socket).unwrap();
    c.send(&join(Some("13579"))).unwrap();
    match c.next_message().unwrap() {
        ServerMessage::Refused { reason, message } => {
            assert_eq!(reason, "locked_out", "{message}");
        }
        other => panic!("{other:?}"),
    }
}
