//! The admin REST API: bearer token, JSON errors naming the field, 404/409,
//! users, conferences, address books; passwords never returned; a rotated
//! token takes effect at once.
#![allow(clippy::unwrap_used)]

use confgate_suite::Daemon;
use serde_json::json;

#[test]
fn token_is_required_and_rotation_is_immediate() {
    let d = Daemon::start("api-token").unwrap();
    let (s, body) = d.api_with_token("GET", "/api/v1/users", None, None).unwrap();
    assert_eq!(s, 401);
    assert_eq!(body["field"], "Authorization");
    let (s, _) = d.api_with_token("GET", "/api/v1/users", None, Some("wrong")).unwrap();
    assert_eq!(s, 401);
    let old = d.token().unwrap();
    let (s, _) = d.api_with_token("GET", "/api/v1/users", None, Some(&old)).unwrap();
    assert_eq!(s, 200);
    let new = d.cli_ok(&["admin", "token", "--rotate"]).unwrap().trim().to_string();
    assert_ne!(old, new);
    assert_eq!(
        d.api_with_token("GET", "/api/v1/users", None, Some(&old)).unwrap().0,
        401
    );
    assert_eq!(
        d.api_with_token("GET", "/api/v1/users", None, Some(&new)).unwrap().0,
        200
    );
    // health and metrics need no token
    assert_eq!(ureq::get(&d.url("/healthz")).call().unwrap().status(), 200);
    let m = ureq::get(&d.url("/metrics")).call().unwrap().into_string().unwrap();
    assert!(m.contains("confgate_api_unauthorized_total 3"), "{m}");
}

#[test]
fn users_and_validation_errors_name_the_field() {
    let d = Daemon::start("api-users").unwrap();
    let (s, body) = d
        .api(
            "POST",
            "/api/v1/users",
            Some(json!({"user": "Alice", "type": "sip", "display_name": "Alice A", "password": "s3cret!"})),
        )
        .unwrap();
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["id"], "alice@test.example");
    assert_eq!(body["type"], "sip");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    assert_eq!(body["has_password"], true);

    // visible to the CLI at once, and the other way round
    assert!(d.cli_ok(&["user", "list"]).unwrap().contains("alice@test.example"));
    d.cli_stdin(
        &["user", "add", "bob", "--type", "h323", "--password-stdin"],
        "pw-of-bob\n",
    )
    .unwrap();
    let (s, body) = d.api("GET", "/api/v1/users/bob@test.example", None).unwrap();
    assert_eq!((s, body["type"].as_str()), (200, Some("h323")));

    let cases = [
        (json!({"user": "bad user"}), "user"),
        (json!({"user": "x".repeat(65)}), "user"),
        (json!({"user": "carol", "type": "fax"}), "type"),
        (json!({"user": "carol", "password": "123"}), "password"),
        (json!({"user": "carol", "colour": "blue"}), "colour"),
        (json!({"user": 5}), "user"),
        (json!({"user": "carol@elsewhere.example"}), "user"),
    ];
    for (body, field) in cases {
        let (s, err) = d.api("POST", "/api/v1/users", Some(body.clone())).unwrap();
        assert_eq!(s, 400, "{body} → {err}");
        assert_eq!(err["field"], field, "{body} → {err}");
        assert!(err["error"].as_str().unwrap().len() > 5);
    }
    assert_eq!(
        d.api("GET", "/api/v1/users/carol", None).unwrap().0,
        404,
        "nothing written"
    );
    let (s, _) = d.api("POST", "/api/v1/users", Some(json!({"user": "ALICE"}))).unwrap();
    assert_eq!(s, 409, "user names are case-insensitive");

    let (s, body) = d
        .api("PATCH", "/api/v1/users/alice", Some(json!({"display_name": "Alice B"})))
        .unwrap();
    assert_eq!((s, body["display_name"].as_str()), (200, Some("Alice B")));
    assert_eq!(d.api("DELETE", "/api/v1/users/alice", None).unwrap().0, 204);
    assert_eq!(d.api("DELETE", "/api/v1/users/alice", None).unwrap().0, 404);
    assert_eq!(d.api("GET", "/api/v1/nothing-here", None).unwrap().0, 404);
}

#[test]
fn conferences_and_address_books() {
    let d = Daemon::start("api-confs").unwrap();
    d.cli_ok(&["user", "add", "mona", "--name", "Mona"]).unwrap();
    d.cli_ok(&["user", "add", "pete"]).unwrap();
    let (s, body) = d
        .api(
            "POST",
            "/api/v1/conferences",
            Some(
                json!({"id": "Board", "name": "Board meeting", "closed": true, "pin": "4321", "lobby": true,
                         "max_participants": 12, "moderators": ["mona"], "participants": ["pete@test.example"]}),
            ),
        )
        .unwrap();
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["id"], "board");
    assert_eq!(body["moderators"], json!(["mona@test.example"]));

    for (req, field) in [
        (json!({"id": "x", "pin": "0999"}), "pin"),
        (json!({"id": "x", "pin": 1234}), "pin"),
        (json!({"id": "has-dash"}), "id"),
        (json!({"id": "x", "max_participants": 0}), "max_participants"),
        (json!({"id": "x", "moderators": ["ghost"]}), "moderators"),
        (json!({"id": "x", "closed": "yes"}), "closed"),
    ] {
        let (s, err) = d.api("POST", "/api/v1/conferences", Some(req.clone())).unwrap();
        assert_eq!((s, err["field"].as_str()), (400, Some(field)), "{req} → {err}");
    }
    assert_eq!(
        d.api("GET", "/api/v1/conferences/x", None).unwrap().0,
        404,
        "nothing written"
    );
    assert_eq!(
        d.api("POST", "/api/v1/conferences", Some(json!({"id": "board"})))
            .unwrap()
            .0,
        409
    );
    assert_eq!(
        d.api("POST", "/api/v1/conferences", Some(json!({"id": "mona"})))
            .unwrap()
            .0,
        409,
        "clashes with an account"
    );

    let (s, body) = d
        .api(
            "PATCH",
            "/api/v1/conferences/board",
            Some(json!({"pin": null, "lobby": false})),
        )
        .unwrap();
    assert_eq!(s, 200, "{body}");
    assert!(body["pin"].is_null());
    assert_eq!(body["lobby"], false);
    assert_eq!(body["closed"], true, "untouched fields stay");
    let shown = d.cli_ok(&["conference", "show", "board"]).unwrap();
    assert!(
        shown.contains("pin:              none") && shown.contains("lobby:            off"),
        "{shown}"
    );

    let (s, body) = d.api("GET", "/api/v1/conferences/board/participants", None).unwrap();
    assert_eq!(s, 200);
    assert_eq!(body["participants"], json!([]));
    assert_eq!(body["running"], true, "permanent (the default) conferences run always");

    // address book
    let (s, e) = d
        .api(
            "POST",
            "/api/v1/users/pete/address-book",
            Some(json!({"target": "mona"})),
        )
        .unwrap();
    assert_eq!(s, 201, "{e}");
    assert_eq!(
        (
            e["target"].as_str(),
            e["display_name"].as_str(),
            e["is_account"].as_bool()
        ),
        (Some("mona@test.example"), Some("Mona"), Some(true))
    );
    let (s, _) = d
        .api(
            "POST",
            "/api/v1/users/pete/address-book",
            Some(json!({"target": "#tel:+15550100", "display_name": "Desk"})),
        )
        .unwrap();
    assert_eq!(s, 201);
    let (s, err) = d
        .api(
            "POST",
            "/api/v1/users/pete/address-book",
            Some(json!({"target": "#fax:1"})),
        )
        .unwrap();
    assert_eq!((s, err["field"].as_str()), (400, Some("target")));
    assert_eq!(
        d.api(
            "POST",
            "/api/v1/users/pete/address-book",
            Some(json!({"target": "mona"}))
        )
        .unwrap()
        .0,
        409
    );
    let (_, list) = d.api("GET", "/api/v1/users/pete/address-book", None).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        d.api("DELETE", "/api/v1/users/pete/address-book/mona%40test.example", None)
            .unwrap()
            .0,
        204
    );
    let (_, list) = d.api("GET", "/api/v1/users/pete/address-book", None).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    assert_eq!(d.api("DELETE", "/api/v1/conferences/board", None).unwrap().0, 204);
    assert_eq!(d.api("GET", "/api/v1/conferences/board", None).unwrap().0, 404);
}
