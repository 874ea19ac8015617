//! Moderator requests over the loopback protocol, and the events every
//! participant gets: joined, muted, role changed, locked, left, ended.
//! A guest's requests are denied; a temporary conference disappears when it stops.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use confgate_suite::{Daemon, LoopbackClient};
use loopback::{ClientMessage, ServerMessage};

fn joined(c: &mut LoopbackClient) -> u64 {
    match c.wait_for(|m| matches!(m, ServerMessage::Joined { .. })).unwrap() {
        ServerMessage::Joined { participant, .. } => participant,
        _ => unreachable!(),
    }
}

#[test]
fn moderators_act_and_everyone_is_told() {
    let d = Daemon::start("moderator-actions").unwrap();
    d.cli_stdin(&["user", "add", "mia", "--password-stdin"], "mia-pass\n")
        .unwrap();
    d.cli_ok(&["conference", "add", "standup", "--moderator", "mia", "--temporary"])
        .unwrap();
    let socket = d.dir.path().join("data/loopback.sock");

    let mut m = LoopbackClient::connect(&socket).unwrap();
    m.send(&ClientMessage::Join {
        conference: "standup".into(),
        display_name: None,
        user: Some("mia".into()),
        password: Some("mia-pass".into()),
        pin: None,
    })
    .unwrap();
    let mia = joined(&mut m);
    let mut g = LoopbackClient::connect(&socket).unwrap();
    g.send(&ClientMessage::Join {
        conference: "standup".into(),
        display_name: Some("Gus".into()),
        user: None,
        password: None,
        pin: None,
    })
    .unwrap();
    let gus = joined(&mut g);
    let ev = m
        .wait_for(|e| matches!(e, ServerMessage::ParticipantJoined { .. }))
        .unwrap();
    assert!(
        matches!(ev, ServerMessage::ParticipantJoined { participant } if participant.id == gus && participant.role == "guest")
    );

    // A guest may not moderate, but may mute itself.
    g.send(&ClientMessage::Remove { participant: mia }).unwrap();
    let ev = g.wait_for(|e| matches!(e, ServerMessage::Denied { .. })).unwrap();
    assert!(
        matches!(ev, ServerMessage::Denied { ref action, .. } if action == "remove"),
        "{ev:?}"
    );
    g.send(&ClientMessage::Mute {
        participant: gus,
        muted: true,
    })
    .unwrap();
    assert_eq!(
        m.wait_for(|e| matches!(e, ServerMessage::Muted { .. })).unwrap(),
        ServerMessage::Muted {
            participant: gus,
            muted: true
        }
    );

    m.send(&ClientMessage::Lock { locked: true }).unwrap();
    assert_eq!(
        g.wait_for(|e| matches!(e, ServerMessage::Locked { .. })).unwrap(),
        ServerMessage::Locked { locked: true }
    );
    // while locked, a new guest is refused
    let mut late = LoopbackClient::connect(&socket).unwrap();
    late.send(&ClientMessage::Join {
        conference: "standup".into(),
        display_name: Some("Late".into()),
        user: None,
        password: None,
        pin: None,
    })
    .unwrap();
    assert!(
        matches!(late.next_message().unwrap(), ServerMessage::Refused { reason, .. } if reason == "conference_locked")
    );

    m.send(&ClientMessage::MakeModerator { participant: gus }).unwrap();
    assert_eq!(
        g.wait_for(|e| matches!(e, ServerMessage::RoleChanged { .. })).unwrap(),
        ServerMessage::RoleChanged {
            participant: gus,
            role: "moderator".into()
        }
    );
    // Now Gus may remove... nobody else is here but Mia; Mia ends the conference instead.
    m.send(&ClientMessage::EndConference).unwrap();
    assert!(
        matches!(g.wait_for(|e| matches!(e, ServerMessage::Ended { .. })).unwrap(), ServerMessage::Ended { reason } if reason == "conference_ended")
    );

    // The temporary conference is removed once it stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = d.api("GET", "/api/v1/conferences/standup", None).unwrap();
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "temporary conference still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}
