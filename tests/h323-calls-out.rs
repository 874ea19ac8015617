//! Calls out of the daemon between scripted H.323 endpoints (written here
//! on `confgate-h323`: the crate's own call-signalling machines drive them
//! over TCP, and they register over UDP RAS):
//! - `room1`, registered and admitted by ARQ (so its call is its
//!   account's), calls the registered `room2` by its dialedDigits alias:
//!   `room2` gets the Setup at the call-signalling address it registered,
//!   rings (`room1` hears Alerting), answers with Fast Connect in G.711
//!   µ-law; each hears the other's tone through the relay (one codec:
//!   forwarded packet by packet); `room2` hangs up and `room1` gets its
//!   cause;
//! - `room1` calls `room2` by account id, proposing only A-law while
//!   `room2` answers µ-law: the audio is transcoded and heard both ways;
//!   `room1` hangs up and `room2` gets normal clearing;
//! - `room1` dials `#h323:desk@127.0.0.1:<port>`, an unregistered endpoint
//!   that answers without Fast Connect: its channels open by tunnelled
//!   H.245, the audio flows both ways;
//! - release causes: a busy callee's 17 reaches the caller, a caller that
//!   hangs up while it rings cancels the call out, an account without a
//!   registered endpoint gives 20, an address that refuses the connection
//!   27, and an anonymous caller may not dial `#h323:` (21).
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confgate_suite::{dominant_frequency, repo_dir, rms, Daemon, SERVER};
use h323::asn1::{decode_ras, encode, guid, h225};
use h323::control::MediaEvent;
use h323::media::{AudioCodec, G711};
use h323::ras::{socket_address, transport, Alias};
use h323::signalling::{self, Answer, CallSignalling, Config, Dial, EndReason, Event, Output, Released};

// ---------------------------------------------------------------- RAS

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

/// An endpoint's RAS side.
struct Ras {
    socket: UdpSocket,
    gatekeeper: SocketAddr,
    corpus: Vec<h225::RasMessage>,
    endpoint: Option<h225::EndpointIdentifier>,
}

impl Ras {
    fn new(d: &Daemon) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Self {
            socket,
            gatekeeper: SocketAddr::from(([127, 0, 0, 1], d.ras_port)),
            corpus: corpus_ras(),
            endpoint: None,
        }
    }

    fn ask(&self, msg: &h225::RasMessage) -> h225::RasMessage {
        let bytes = encode(msg).unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..5 {
            self.socket.send_to(&bytes, self.gatekeeper).unwrap();
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                return decode_ras(&buf[..n]).unwrap();
            }
        }
        panic!("no answer from the gatekeeper to {msg:?}");
    }

    /// Registers `aliases`, to be called at `call_signalling`.
    fn register(&mut self, aliases: &[Alias], call_signalling: SocketAddr) {
        let mut r = self
            .corpus
            .iter()
            .find_map(|m| match m {
                h225::RasMessage::registrationRequest(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        r.ras_address = vec![transport(self.socket.local_addr().unwrap())];
        r.call_signal_address = vec![transport(call_signalling)];
        r.terminal_alias = Some(aliases.iter().map(|a| a.to_asn1().unwrap()).collect());
        r.gatekeeper_identifier = None;
        r.time_to_live = None;
        let answer = self.ask(&h225::RasMessage::registrationRequest(r));
        let h225::RasMessage::registrationConfirm(rcf) = answer else {
            panic!("no RCF: {answer:?}")
        };
        self.endpoint = Some(rcf.endpoint_identifier);
    }

    /// Asks to place (or answer) the call `call_id`; returns where its
    /// signalling goes.
    fn admit(&self, call_id: [u8; 16], dialed: &str, answer_call: bool) -> SocketAddr {
        let mut r = self
            .corpus
            .iter()
            .find_map(|m| match m {
                h225::RasMessage::admissionRequest(r) if !r.answer_call => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        let guid = guid(call_id);
        r.endpoint_identifier = self.endpoint.clone().unwrap();
        r.destination_info = Some(vec![Alias::H323Id(dialed.into()).to_asn1().unwrap()]);
        r.dest_call_signal_address = None;
        r.gatekeeper_identifier = None;
        r.call_identifier = Some(h225::CallIdentifier::new(guid.clone()));
        r.conference_id = h225::ConferenceIdentifier(guid);
        r.answer_call = answer_call;
        let answer = self.ask(&h225::RasMessage::admissionRequest(r));
        let h225::RasMessage::admissionConfirm(acf) = answer else {
            panic!("no ACF: {answer:?}")
        };
        socket_address(&acf.dest_call_signal_address).unwrap()
    }
}

// ---------------------------------------------------- call signalling

/// A call-signalling connection driven by one of the crate's machines.
struct Peer {
    tcp: TcpStream,
    sig: CallSignalling,
    events: VecDeque<Event>,
    closed: bool,
}

impl Peer {
    fn new(tcp: TcpStream, sig: CallSignalling) -> Peer {
        tcp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut p = Peer {
            tcp,
            sig,
            events: VecDeque::new(),
            closed: false,
        };
        p.flush();
        p
    }

    /// Writes what the machine says and keeps its events.
    fn flush(&mut self) {
        while let Some(o) = self.sig.poll_output() {
            match o {
                Output::Transmit(bytes) => {
                    if self.tcp.write_all(&bytes).is_err() {
                        self.closed = true;
                    }
                }
                Output::Event(e) => self.events.push_back(e),
                Output::Close => {
                    let _ = self.tcp.shutdown(std::net::Shutdown::Write);
                    self.closed = true;
                }
                Output::H245(_) | Output::ConnectH245(_) => panic!("the daemon tunnels H.245"),
            }
        }
    }

    /// Reads and runs the timers for a moment.
    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        match self.tcp.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.sig.handle_input(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.closed = true,
        }
        self.sig.handle_timeout(Instant::now());
        self.flush();
    }

    /// The first event that `want` picks, within `timeout` (others are
    /// dropped, media events kept for [`Peer::media`]).
    fn wait<T>(&mut self, timeout: Duration, mut want: impl FnMut(&Event) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                if let Some(t) = want(&e) {
                    return Some(t);
                }
            }
            if Instant::now() >= deadline || self.closed && self.events.is_empty() {
                return None;
            }
            self.pump();
        }
    }

    fn released(&mut self, timeout: Duration) -> Option<Released> {
        self.wait(timeout, |e| match e {
            Event::Released(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// Waits until the connection is closed.
    fn closes(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed && Instant::now() < deadline {
            self.pump();
        }
        self.closed
    }
}

/// Keeps `peer` running (answering H.245, timers) while `f` runs.
fn while_pumping<T: Send>(peers: &mut [&mut Peer], f: impl FnOnce() -> T + Send) -> T {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        let worker = s.spawn(move || {
            let r = f();
            stop.store(true, Ordering::Relaxed);
            r
        });
        while !stop.load(Ordering::Relaxed) {
            for p in peers.iter_mut() {
                p.pump();
            }
        }
        worker.join().unwrap()
    })
}

// ---------------------------------------------------------------- media

/// One endpoint's media: its RTP socket and the relay address it sends to.
struct Media {
    rtp: UdpSocket,
    codec: G711,
    to: SocketAddr,
}

impl Media {
    fn new(codec: G711) -> Media {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rtp.local_addr().unwrap();
        Media { rtp, codec, to }
    }

    fn addr(&self) -> SocketAddr {
        self.rtp.local_addr().unwrap()
    }

    fn rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.addr().ip(), self.addr().port() + 1)
    }

    /// Sends a tone at `hz` for `secs`; returns what came back, decoded.
    fn talk(&self, hz: f64, secs: f64) -> Vec<i16> {
        let tx = self.rtp.try_clone().unwrap();
        let (to, codec) = (self.to, self.codec);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut seq, mut ts, mut n) = (1u16, 0u32, 0u64);
            while !stop2.load(Ordering::Relaxed) {
                let mut pkt = vec![0x80, codec.payload_type(), 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                for i in 0..160u64 {
                    let t = (n * 160 + i) as f64 / 8000.0;
                    let s = (f64::sin(2.0 * std::f64::consts::PI * hz * t) * 12_000.0) as i16;
                    pkt.push(match codec {
                        G711::Ulaw => linear_to_ulaw(s),
                        G711::Alaw => linear_to_alaw(s),
                    });
                }
                let _ = tx.send_to(&pkt, to);
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                n += 1;
                let next = start + Duration::from_millis(20 * n);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        self.rtp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut heard = Vec::new();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            if let Ok((n, _)) = self.rtp.recv_from(&mut buf) {
                if n > 12 && buf[1] & 0x7f == self.codec.payload_type() {
                    heard.extend(buf[12..n].iter().map(|&b| match self.codec {
                        G711::Ulaw => ulaw_to_linear(b),
                        G711::Alaw => alaw_to_linear(b),
                    }));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        heard
    }
}

/// Both endpoints talk at once; returns what each heard.
fn converse(a: &Media, a_hz: f64, b: &Media, b_hz: f64, peers: &mut [&mut Peer]) -> (Vec<i16>, Vec<i16>) {
    while_pumping(peers, || {
        std::thread::scope(|s| {
            let ha = s.spawn(|| a.talk(a_hz, 4.0));
            let hb = s.spawn(|| b.talk(b_hz, 4.0));
            (ha.join().unwrap(), hb.join().unwrap())
        })
    })
}

fn assert_heard(who: &str, heard: &[i16], hz: f64) {
    assert!(
        heard.len() > 8000 * 2,
        "{who}: at least 2 s received, got {} samples",
        heard.len()
    );
    let tail = &heard[heard.len() - 12_000..];
    let f = dominant_frequency(tail, 8000);
    assert!(rms(tail) > 500.0, "{who}: rms {}", rms(tail));
    assert!(
        (f - hz).abs() <= 10.0,
        "{who}: dominant frequency {f} Hz, expected {hz} Hz"
    );
}

fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(32_635) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let magnitude = (((i32::from(u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// ITU-T G.711 A-law encoding of one sample.
fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    let (exponent, mantissa) = if s < 32 {
        (0, s >> 1)
    } else {
        let mut e = 1;
        while e < 7 && s >= (32 << e) {
            e += 1;
        }
        (e, (s >> e) & 0x0f)
    };
    ((sign | (exponent << 4) | mantissa) as u8) ^ 0x55
}

/// ITU-T G.711 A-law decoding of one sample.
fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

// ------------------------------------------------------------ scenario

/// A registered endpoint: its RAS side and its call-signalling listener.
struct Room {
    ras: Ras,
    listener: TcpListener,
}

impl Room {
    fn register(d: &Daemon, aliases: &[Alias]) -> Room {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut ras = Ras::new(d);
        ras.register(aliases, listener.local_addr().unwrap());
        Room { ras, listener }
    }

    /// Places a call to `dialed` through the gatekeeper (ARQ, then Setup
    /// to where the ACF says), proposing `codecs` by Fast Connect.
    fn call(&self, dialed: &str, call_id: [u8; 16], media: &Media, codecs: &[G711]) -> Peer {
        let to = self.ras.admit(call_id, dialed, false);
        place(to, dialed, call_id, media, codecs)
    }

    /// Takes the daemon's call: the Setup.
    fn take_call(&self, audio: Vec<AudioCodec>) -> (Peer, signalling::IncomingCall) {
        take_call(&self.listener, audio)
    }
}

fn place(to: SocketAddr, dialed: &str, call_id: [u8; 16], media: &Media, codecs: &[G711]) -> Peer {
    let tcp = TcpStream::connect(to).unwrap();
    let sig = CallSignalling::dial(
        Config::default(),
        Instant::now(),
        0x12_3456,
        &Dial {
            call_reference: 0x0101,
            call_id,
            dialed: dialed.into(),
            display: "Room One".into(),
            calling: Some("room1".into()),
            rtp: media.addr(),
            rtcp: media.rtcp(),
            fast_start: codecs.to_vec(),
        },
    )
    .unwrap();
    Peer::new(tcp, sig)
}

fn take_call(listener: &TcpListener, audio: Vec<AudioCodec>) -> (Peer, signalling::IncomingCall) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let tcp = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the daemon did not call: {e}"),
        }
    };
    tcp.set_nonblocking(false).unwrap();
    let config = Config {
        audio,
        display: "Callee".into(),
        ..Config::default()
    };
    let mut peer = Peer::new(tcp, CallSignalling::new(config, Instant::now(), 0x65_4321));
    let incoming = peer
        .wait(Duration::from_secs(10), |e| match e {
            Event::Incoming(i) => Some(i.clone()),
            _ => None,
        })
        .expect("a Setup");
    (peer, incoming)
}

/// Answers with Fast Connect in `codec`; returns the relay's address.
fn answer_fast(peer: &mut Peer, media: &Media, codec: G711) -> SocketAddr {
    let fc = peer
        .sig
        .answer(
            Instant::now(),
            &Answer {
                rtp: media.addr(),
                rtcp: media.rtcp(),
                fast_connect: Some(codec),
                h245_listen: None,
            },
        )
        .unwrap()
        .unwrap();
    peer.flush();
    fc.peer_rtp.unwrap()
}

/// The caller's answer: Alerting first when `ringing`, then Connect with
/// Fast Connect; returns the relay's address.
fn connected(peer: &mut Peer, ringing: bool) -> (SocketAddr, G711) {
    let mut alerted = false;
    let fc = peer
        .wait(Duration::from_secs(10), |e| match e {
            Event::Alerting => {
                alerted = true;
                None
            }
            Event::Connected(fc) => Some(fc.clone()),
            Event::Released(r) => panic!("released: {r:?}"),
            _ => None,
        })
        .expect("Connect");
    assert_eq!(alerted, ringing, "Alerting while the callee rang");
    let fc = fc.expect("Fast Connect to the caller");
    (fc.peer_rtp.unwrap(), fc.codec)
}

fn accounts(d: &Daemon, names: &[&str]) {
    for n in names {
        d.cli_ok(&["user", "add", n, "--type", "h323"]).unwrap();
    }
}

#[test]
fn registered_endpoint_calls_another_by_alias_and_the_callee_hangs_up() {
    let d = Daemon::start("h323-out-alias").unwrap();
    accounts(&d, &["room1", "room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into()), Alias::DialedDigits("2002".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);

    let (m1, mut m2) = (Media::new(G711::Ulaw), Media::new(G711::Ulaw));
    let mut caller = room1.call("2002", [0x21; 16], &m1, &[G711::Ulaw]);
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "2002", "the alias dialed");
    assert_eq!(incoming.caller_name.as_deref(), Some("Room One"));
    assert_eq!(incoming.offer.codecs(), vec![G711::Ulaw, G711::Alaw]);
    assert_ne!(
        incoming.call_identifier,
        Some([0x21; 16]),
        "a call identifier of its own"
    );
    // The callee asks the gatekeeper to answer, as registered endpoints do.
    room2.ras.admit(incoming.call_identifier.unwrap(), "room2", true);
    callee.sig.alerting().unwrap();
    callee.flush();
    std::thread::sleep(Duration::from_millis(300));
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let (relay, codec) = connected(&mut caller, true);
    assert_eq!(codec, G711::Ulaw);
    let mut m1 = m1;
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 800.0, &m2, 440.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 440.0);
    assert_heard("room2", &heard2, 800.0);
    assert!(
        d.log_shows("media forwarded packet by packet"),
        "one codec: no transcoding\n{}",
        d.stderr()
    );

    callee.sig.release_with_cause(EndReason::Normal, 31);
    callee.flush();
    let r = caller
        .released(Duration::from_secs(10))
        .expect("the caller is released");
    assert!(r.by_peer);
    assert_eq!(r.cause, Some(31), "the callee's cause is passed on");
    assert!(
        caller.closes(Duration::from_secs(5)),
        "the daemon closes the caller's connection"
    );
}

#[test]
fn registered_endpoint_calls_an_account_id_with_transcoding_and_the_caller_hangs_up() {
    let d = Daemon::start("h323-out-account").unwrap();
    accounts(&d, &["room1", "room2"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);

    let (mut m1, mut m2) = (Media::new(G711::Alaw), Media::new(G711::Ulaw));
    let dialed = format!("room2@{SERVER}");
    let mut caller = room1.call(&dialed, [0x22; 16], &m1, &[G711::Alaw]);
    let (mut callee, incoming) = room2.take_call(AudioCodec::ALL.to_vec());
    assert_eq!(incoming.dialed, "room2", "the registered alias");
    // The caller's A-law first, then µ-law, which the callee takes.
    assert_eq!(incoming.offer.codecs(), vec![G711::Alaw, G711::Ulaw]);
    m2.to = answer_fast(&mut callee, &m2, G711::Ulaw);
    let (relay, codec) = connected(&mut caller, false);
    assert_eq!(codec, G711::Alaw, "the caller keeps its own law");
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 700.0, &m2, 500.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 500.0);
    assert_heard("room2", &heard2, 700.0);
    assert!(d.log_shows("media transcoded"), "{}", d.stderr());

    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee
        .released(Duration::from_secs(10))
        .expect("the callee is released");
    assert!(r.by_peer);
    assert_eq!(r.cause, Some(16));
    assert!(callee.closes(Duration::from_secs(5)));
}

#[test]
fn registered_endpoint_dials_an_h323_address_answered_by_h245() {
    let d = Daemon::start("h323-out-direct").unwrap();
    accounts(&d, &["room1"]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    let desk = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = desk.local_addr().unwrap().port();

    let mut m1 = Media::new(G711::Ulaw);
    let mut m2 = Media::new(G711::Ulaw);
    let dialed = format!("#h323:desk@127.0.0.1:{port}");
    let mut caller = room1.call(&dialed, [0x23; 16], &m1, &[G711::Ulaw]);
    // The desk takes only µ-law, and answers without Fast Connect.
    let (mut callee, incoming) = take_call(&desk, vec![AudioCodec::Pcmu]);
    assert_eq!(incoming.dialed, "desk");
    let fc = callee
        .sig
        .answer(
            Instant::now(),
            &Answer {
                rtp: m2.addr(),
                rtcp: m2.rtcp(),
                fast_connect: None,
                h245_listen: None,
            },
        )
        .unwrap();
    assert!(fc.is_none());
    callee.flush();
    // Its channel towards the daemon opens by tunnelled H.245.
    let relay = while_pumping(&mut [&mut caller], || {
        callee.wait(Duration::from_secs(10), |e| match e {
            Event::Media(MediaEvent::TransmitOpened { codec, rtp, .. }) => {
                assert_eq!(*codec, AudioCodec::Pcmu);
                *rtp
            }
            _ => None,
        })
    });
    m2.to = relay.expect("the desk's channel opened");
    let (relay, codec) = connected(&mut caller, false);
    assert_eq!(codec, G711::Ulaw);
    m1.to = relay;

    let (heard1, heard2) = converse(&m1, 600.0, &m2, 900.0, &mut [&mut caller, &mut callee]);
    assert_heard("room1", &heard1, 900.0);
    assert_heard("desk", &heard2, 600.0);

    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee.released(Duration::from_secs(10)).expect("the desk is released");
    assert_eq!(r.cause, Some(16));
}

#[test]
fn busy_cancelled_unregistered_unreachable_and_anonymous_calls_get_their_causes() {
    let d = Daemon::start("h323-out-causes").unwrap();
    accounts(&d, &["room1", "room2", "room3"]);
    let room2 = Room::register(&d, &[Alias::H323Id("room2".into())]);
    let room1 = Room::register(&d, &[Alias::H323Id("room1".into())]);
    let m1 = Media::new(G711::Ulaw);

    // The callee is busy: its cause reaches the caller.
    let mut caller = room1.call("room2", [0x31; 16], &m1, &[G711::Ulaw]);
    let (mut callee, _) = room2.take_call(AudioCodec::ALL.to_vec());
    callee.sig.release(EndReason::Busy);
    callee.flush();
    let r = caller.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(17), "user busy");
    assert_eq!(r.reason, EndReason::Busy);

    // The caller hangs up while the callee rings: the call out is cancelled.
    let mut caller = room1.call("room2", [0x32; 16], &m1, &[G711::Ulaw]);
    let (mut callee, _) = room2.take_call(AudioCodec::ALL.to_vec());
    callee.sig.alerting().unwrap();
    callee.flush();
    caller
        .wait(Duration::from_secs(10), |e| matches!(e, Event::Alerting).then_some(()))
        .expect("Alerting");
    caller.sig.release(EndReason::Normal);
    caller.flush();
    let r = callee.released(Duration::from_secs(10)).expect("cancelled");
    assert_eq!(r.cause, Some(16));
    assert!(callee.closes(Duration::from_secs(5)));

    // An account whose endpoints are not registered: subscriber absent.
    let mut caller = room1.call("room3", [0x33; 16], &m1, &[G711::Ulaw]);
    let r = caller.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(20));

    // An address where nothing listens: destination out of order.
    let closed = confgate_suite::free_port();
    let mut caller = room1.call(&format!("#h323:x@127.0.0.1:{closed}"), [0x34; 16], &m1, &[G711::Ulaw]);
    let r = caller.released(Duration::from_secs(15)).expect("released");
    assert_eq!(r.cause, Some(27));

    // Without the gatekeeper's admission the caller is anonymous: no
    // direct dialing out.
    let desk = TcpListener::bind("127.0.0.1:0").unwrap();
    let dialed = format!("#h323:desk@127.0.0.1:{}", desk.local_addr().unwrap().port());
    let mut anonymous = place(
        SocketAddr::from(([127, 0, 0, 1], d.h323_port)),
        &dialed,
        [0x35; 16],
        &m1,
        &[G711::Ulaw],
    );
    let r = anonymous.released(Duration::from_secs(10)).expect("released");
    assert_eq!(r.cause, Some(21));
    desk.set_nonblocking(true).unwrap();
    assert!(desk.accept().is_err(), "nothing was dialed");
}
