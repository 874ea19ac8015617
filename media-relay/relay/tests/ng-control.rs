//! The ng control protocol drives the relay over UDP as Kamailio's
//! rtpengine module would: ping, offer/answer with SDP rewriting, media
//! through the offered ports (plain and RTP↔SDES-SRTP), query, delete.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use confgate_relay::bencode::{self, Value};
use confgate_relay::{sdp, NgConfig, NgServer, Relay, RelayConfig, SrtpContext, SrtpProfile};

struct Setup {
    relay: Relay,
    server: NgServer,
    ctl: UdpSocket,
}

fn setup(min: u16) -> Setup {
    let relay = Relay::start(RelayConfig {
        bind: "127.0.0.1".parse().unwrap(),
        port_min: min,
        port_max: min + 199,
        workers: 1,
        batch: 16,
        // The UDP sockets send here (the other relay tests use the raw
        // socket when they run with CAP_NET_RAW).
        raw_send: false,
    })
    .unwrap();
    let server = NgServer::start(
        "127.0.0.1:0".parse().unwrap(),
        relay.clone(),
        NgConfig {
            advertise: "127.0.0.1".parse().unwrap(),
            timeout: Duration::from_secs(60),
            max_calls: 100,
        },
    )
    .unwrap();
    let ctl = UdpSocket::bind("127.0.0.1:0").unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    Setup { relay, server, ctl }
}

fn bstr(s: &str) -> String {
    format!("{}:{s}", s.len())
}

/// Sends `<cookie> d...e` built from (key, raw bencoded value) pairs; returns the reply text.
fn ng(s: &Setup, cookie: &str, pairs: &[(&str, String)]) -> Vec<u8> {
    let mut msg = format!("{cookie} d");
    for (k, v) in pairs {
        msg.push_str(&bstr(k));
        msg.push_str(v);
    }
    msg.push('e');
    s.ctl.send_to(msg.as_bytes(), s.server.local_addr()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.ctl.recv(&mut buf).unwrap();
    let reply = buf[..n].to_vec();
    assert!(
        reply.starts_with(format!("{cookie} ").as_bytes()),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    reply[cookie.len() + 1..].to_vec()
}

fn field(reply: &[u8], key: &str) -> Option<String> {
    let v = bencode::decode(reply).unwrap();
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn offer_sdp(port: u16, proto: &str, crypto: Option<&str>) -> String {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    );
    if let Some(c) = crypto {
        s.push_str(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{c}\r\n"));
    }
    s
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    s
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 160, 0, 0, 0, 9];
    p.extend_from_slice(&[0xd5; 160]);
    p
}

fn media_port(text: &str) -> u16 {
    let d = sdp::parse(text).unwrap();
    d.media(0).port
}

#[test]
fn ping_offer_answer_media_query_delete() {
    let s = setup(44000);
    assert_eq!(ng(&s, "c0", &[("command", bstr("ping"))]), b"d6:result4:ponge");

    let (a, b) = (client(), client());
    let a_port = a.local_addr().unwrap().port();
    let b_port = b.local_addr().unwrap().port();
    let offer = ng(
        &s,
        "c1",
        &[
            ("supports", format!("l{}e", bstr("load limit"))),
            ("sdp", bstr(&offer_sdp(a_port, "RTP/AVP", None))),
            ("replace", format!("l{}{}e", bstr("origin"), bstr("session-connection"))),
            ("ICE", bstr("remove")),
            ("call-id", bstr("call-1")),
            ("received-from", format!("l{}{}e", bstr("IP4"), bstr("127.0.0.1"))),
            ("from-tag", bstr("tag-a")),
            ("command", bstr("offer")),
        ],
    );
    assert_eq!(
        field(&offer, "result").as_deref(),
        Some("ok"),
        "{}",
        String::from_utf8_lossy(&offer)
    );
    let to_b = field(&offer, "sdp").unwrap();
    let relay_for_b = media_port(&to_b);
    assert!((44000..44200).contains(&relay_for_b), "{to_b}");
    assert!(to_b.contains("a=rtcp:"), "{to_b}");

    // A retransmitted offer gets the same reply and allocates nothing more.
    let ports = s.relay.ports_in_use();
    let again = ng(
        &s,
        "c1",
        &[
            ("call-id", bstr("call-1")),
            ("from-tag", bstr("tag-a")),
            ("command", bstr("offer")),
        ],
    );
    assert_eq!(again, offer);
    assert_eq!(s.relay.ports_in_use(), ports);

    let answer = ng(
        &s,
        "c2",
        &[
            ("sdp", bstr(&offer_sdp(b_port, "RTP/AVP", None))),
            ("call-id", bstr("call-1")),
            ("from-tag", bstr("tag-a")),
            ("to-tag", bstr("tag-b")),
            ("command", bstr("answer")),
        ],
    );
    assert_eq!(field(&answer, "result").as_deref(), Some("ok"));
    let to_a = field(&answer, "sdp").unwrap();
    let relay_for_a = media_port(&to_a);
    assert_ne!(relay_for_a, relay_for_b);

    // media both ways through the rewritten ports
    a.send_to(&rtp(1), SocketAddr::from(([127, 0, 0, 1], relay_for_a)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &rtp(1)[..]);
    assert_eq!(from.port(), relay_for_b);
    b.send_to(&rtp(7), SocketAddr::from(([127, 0, 0, 1], relay_for_b)))
        .unwrap();
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &rtp(7)[..]);

    std::thread::sleep(Duration::from_millis(300));
    let q = ng(&s, "c3", &[("call-id", bstr("call-1")), ("command", bstr("query"))]);
    let v = bencode::decode(&q).unwrap();
    assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"));
    let packets = v
        .get("totals")
        .and_then(|t| t.get("RTP"))
        .and_then(|r| r.get("packets"))
        .and_then(Value::as_int);
    assert_eq!(packets, Some(2), "{}", String::from_utf8_lossy(&q));

    let d = ng(
        &s,
        "c4",
        &[
            ("call-id", bstr("call-1")),
            ("from-tag", bstr("tag-a")),
            ("command", bstr("delete")),
        ],
    );
    assert_eq!(field(&d, "result").as_deref(), Some("ok"));
    assert_eq!(s.relay.ports_in_use(), 0, "delete frees the ports");
    let d = ng(
        &s,
        "c5",
        &[
            ("call-id", bstr("call-1")),
            ("from-tag", bstr("tag-a")),
            ("command", bstr("delete")),
        ],
    );
    assert_eq!(field(&d, "result").as_deref(), Some("error"));
    assert!(field(&d, "error-reason").unwrap().contains("Unknown call-id"));
}

#[test]
fn unknown_flags_and_bad_requests_get_an_error_reason() {
    let s = setup(44300);
    let r = ng(
        &s,
        "e1",
        &[
            ("sdp", bstr(&offer_sdp(5000, "RTP/AVP", None))),
            ("flags", format!("l{}e", bstr("teleport"))),
            ("call-id", bstr("x")),
            ("from-tag", bstr("t")),
            ("command", bstr("offer")),
        ],
    );
    assert_eq!(field(&r, "result").as_deref(), Some("error"));
    assert!(field(&r, "error-reason").unwrap().contains("teleport"));
    let r = ng(&s, "e2", &[("command", bstr("offer")), ("call-id", bstr("x"))]);
    assert_eq!(field(&r, "result").as_deref(), Some("error"));
    assert!(field(&r, "error-reason").unwrap().contains("from-tag"));
    let r = ng(
        &s,
        "e3",
        &[
            ("sdp", bstr("v=0\r\nbogus\r\n")),
            ("call-id", bstr("x")),
            ("from-tag", bstr("t")),
            ("command", bstr("offer")),
        ],
    );
    assert!(
        field(&r, "error-reason").unwrap().contains("SDP"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(s.relay.ports_in_use(), 0, "nothing allocated for refused requests");
    // garbage without a cookie gets no reply; the server keeps serving
    s.ctl.send_to(b"nocookie", s.server.local_addr()).unwrap();
    assert_eq!(ng(&s, "e4", &[("command", bstr("ping"))]), b"d6:result4:ponge");
}

#[test]
fn plain_rtp_side_to_sdes_srtp_side() {
    let s = setup(44600);
    let (a, b) = (client(), client());
    let (a_port, b_port) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
    let offer = ng(
        &s,
        "s1",
        &[
            ("sdp", bstr(&offer_sdp(a_port, "RTP/AVP", None))),
            ("transport-protocol", bstr("RTP/SAVP")),
            ("call-id", bstr("sec")),
            ("from-tag", bstr("a")),
            ("command", bstr("offer")),
        ],
    );
    let to_b = field(&offer, "sdp").unwrap();
    let d = sdp::parse(&to_b).unwrap();
    let m = d.media(0);
    assert_eq!(m.proto, "RTP/SAVP");
    assert_eq!(m.crypto.len(), 2, "{to_b}");
    let relay_key = &m.crypto[0];
    assert_eq!(relay_key.suite, "AES_CM_128_HMAC_SHA1_80");
    // B answers with its own key (30 bytes of key+salt, base64).
    let b_key: Vec<u8> = (0u8..30).collect();
    let b_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
    let answer = ng(
        &s,
        "s2",
        &[
            ("sdp", bstr(&offer_sdp(b_port, "RTP/SAVP", Some(b_b64)))),
            ("call-id", bstr("sec")),
            ("from-tag", bstr("a")),
            ("to-tag", bstr("b")),
            ("command", bstr("answer")),
        ],
    );
    let to_a = field(&answer, "sdp").unwrap();
    assert!(
        to_a.contains("RTP/AVP") && !to_a.contains("a=crypto"),
        "A stays plain: {to_a}"
    );
    let relay_for_a = media_port(&to_a);

    // A's plain RTP reaches B encrypted with the relay's offered key.
    a.send_to(&rtp(3), SocketAddr::from(([127, 0, 0, 1], relay_for_a)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = b.recv_from(&mut buf).unwrap();
    assert_eq!(n, 172 + 10);
    let ks = relay_key.key_salt();
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &ks[..16], &ks[16..]).unwrap();
    let m = rx.unprotect_rtp(&mut buf, n).unwrap();
    assert_eq!(&buf[..m], &rtp(3)[..]);

    // B's SRTP (with B's key) reaches A as plain RTP.
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &b_key[..16], &b_key[16..]).unwrap();
    let p = rtp(9);
    buf[..p.len()].copy_from_slice(&p);
    let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
    b.send_to(&buf[..n], SocketAddr::from(([127, 0, 0, 1], media_port(&to_b))))
        .unwrap();
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &p[..]);
}
