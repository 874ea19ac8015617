//! A scripted H.323 endpoint for the end-to-end tests, written on
//! `confgate-h323`: the crate's own call-signalling machines drive it over
//! TCP, it registers and asks for admission over UDP RAS (messages taken
//! from the H.323 corpus), and it sends and hears G.711 tones. Every
//! helper panics on failure: it is for tests.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use h323::asn1::{decode_ras, encode, guid, h225};
use h323::media::{AudioCodec, G711};
use h323::q931::Message;
use h323::ras::{socket_address, transport, Alias};
use h323::signalling::{self, Answer, CallSignalling, Config, Dial, Event, Output, Released};
use h323::tpkt::TpktDecoder;

use crate::sipp::linear_to_ulaw;
use crate::{dominant_frequency, repo_dir, rms, ChildGuard, Daemon};

// ---------------------------------------------------------------- RAS

/// The RAS messages of the H.323 corpus (`protocols/h323/tests/data/corpus.txt`).
pub fn corpus_ras() -> Vec<h225::RasMessage> {
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
pub struct Ras {
    /// Its UDP socket.
    pub socket: UdpSocket,
    /// The daemon's RAS address.
    pub gatekeeper: SocketAddr,
    corpus: Vec<h225::RasMessage>,
    /// The endpoint identifier the gatekeeper gave, once registered.
    pub endpoint: Option<h225::EndpointIdentifier>,
}

impl Ras {
    /// A RAS side towards `d`'s gatekeeper.
    pub fn new(d: &Daemon) -> Self {
        Self::with_timeout(d, Duration::from_secs(2))
    }

    /// A RAS side towards `d`'s gatekeeper that waits `timeout` for each answer.
    pub fn with_timeout(d: &Daemon, timeout: Duration) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(timeout)).unwrap();
        Self {
            socket,
            gatekeeper: SocketAddr::from(([127, 0, 0, 1], d.ras_port)),
            corpus: corpus_ras(),
            endpoint: None,
        }
    }

    /// Its RAS address.
    pub fn address(&self) -> h225::TransportAddress {
        transport(self.socket.local_addr().unwrap())
    }

    /// Sends `bytes` (up to five times) and returns the gatekeeper's
    /// answer as received; the answer must come from the gatekeeper.
    fn answer(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        for _ in 0..5 {
            self.socket.send_to(bytes, self.gatekeeper).unwrap();
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                assert_eq!(from, self.gatekeeper);
                return Some(buf[..n].to_vec());
            }
        }
        None
    }

    /// Sends `bytes` and returns the answer as received.
    pub fn ask_raw(&self, bytes: &[u8]) -> Vec<u8> {
        self.answer(bytes)
            .unwrap_or_else(|| panic!("no answer from the gatekeeper"))
    }

    /// Sends `msg` (up to five times) and returns the answer.
    pub fn ask(&self, msg: &h225::RasMessage) -> h225::RasMessage {
        let answer = self.answer(&encode(msg).unwrap());
        decode_ras(&answer.unwrap_or_else(|| panic!("no answer from the gatekeeper to {msg:?}"))).unwrap()
    }

    /// The first corpus message that `pick` takes.
    fn corpus_message<T>(&self, pick: impl FnMut(&h225::RasMessage) -> Option<T>) -> T {
        self.corpus.iter().find_map(pick).unwrap()
    }

    /// The corpus GRQ from our RAS address, to no gatekeeper in particular.
    pub fn grq(&self) -> h225::GatekeeperRequest {
        let mut r = self.corpus_message(|m| match m {
            h225::RasMessage::gatekeeperRequest(r) => Some(r.clone()),
            _ => None,
        });
        r.ras_address = self.address();
        r.gatekeeper_identifier = None;
        r
    }

    /// The corpus RRQ for `aliases` from our RAS address, to be called at
    /// `call_signalling`, with no gatekeeper identifier and no time to live.
    pub fn rrq(&self, aliases: &[Alias], call_signalling: SocketAddr) -> h225::RegistrationRequest {
        let mut r = self.corpus_message(|m| match m {
            h225::RasMessage::registrationRequest(r) => Some(r.clone()),
            _ => None,
        });
        r.ras_address = vec![self.address()];
        r.call_signal_address = vec![transport(call_signalling)];
        r.terminal_alias = Some(aliases.iter().map(|a| a.to_asn1().unwrap()).collect());
        r.gatekeeper_identifier = None;
        r.time_to_live = None;
        r
    }

    /// The corpus ARQ (placing a call) of `endpoint` for `dialed`, with no
    /// destination address and no gatekeeper identifier.
    pub fn arq(&self, endpoint: &h225::EndpointIdentifier, dialed: &Alias) -> h225::AdmissionRequest {
        let mut r = self.corpus_message(|m| match m {
            h225::RasMessage::admissionRequest(r) if !r.answer_call => Some(r.clone()),
            _ => None,
        });
        r.endpoint_identifier = endpoint.clone();
        r.destination_info = Some(vec![dialed.to_asn1().unwrap()]);
        r.dest_call_signal_address = None;
        r.gatekeeper_identifier = None;
        r
    }

    /// Registers `aliases`, to be called at `call_signalling`.
    pub fn register(&mut self, aliases: &[Alias], call_signalling: SocketAddr) {
        let answer = self.ask(&h225::RasMessage::registrationRequest(
            self.rrq(aliases, call_signalling),
        ));
        let h225::RasMessage::registrationConfirm(rcf) = answer else {
            panic!("no RCF: {answer:?}")
        };
        self.endpoint = Some(rcf.endpoint_identifier);
    }

    /// Asks to place (or answer) the call `call_id`; returns where its
    /// signalling goes.
    pub fn admit(&self, call_id: [u8; 16], dialed: &str, answer_call: bool) -> SocketAddr {
        let mut r = self.arq(self.endpoint.as_ref().unwrap(), &Alias::H323Id(dialed.into()));
        let guid = guid(call_id);
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
pub struct Peer {
    tcp: TcpStream,
    /// The call-signalling machine.
    pub sig: CallSignalling,
    /// Its events not yet taken.
    pub events: VecDeque<Event>,
    /// The connection is closed.
    pub closed: bool,
}

impl Peer {
    /// Drives `sig` over `tcp`.
    pub fn new(tcp: TcpStream, sig: CallSignalling) -> Peer {
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
    pub fn flush(&mut self) {
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
    pub fn pump(&mut self) {
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
    pub fn wait<T>(&mut self, timeout: Duration, mut want: impl FnMut(&Event) -> Option<T>) -> Option<T> {
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

    /// The release, within `timeout`.
    pub fn released(&mut self, timeout: Duration) -> Option<Released> {
        self.wait(timeout, |e| match e {
            Event::Released(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// Waits until the connection is closed.
    pub fn closes(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed && Instant::now() < deadline {
            self.pump();
        }
        self.closed
    }
}

/// Keeps `peer` running (answering H.245, timers) while `f` runs.
pub fn while_pumping<T: Send>(peers: &mut [&mut Peer], f: impl FnOnce() -> T + Send) -> T {
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

/// Reads what `stream` has into `decoder`: `Some(true)` when something
/// came, `Some(false)` on a read timeout, `None` at EOF or on an error.
pub fn read_some(stream: &mut TcpStream, decoder: &mut TpktDecoder) -> Option<bool> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => {
            decoder.push(&buf[..n]);
            Some(true)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(false),
        Err(_) => None,
    }
}

/// The next Q.931 message (and its H.225.0 user information) from a raw
/// call-signalling connection, `None` on timeout, EOF or an error.
pub fn next_signalling(
    stream: &mut TcpStream,
    decoder: &mut TpktDecoder,
    timeout: Duration,
) -> Option<(Message, Option<h225::H323UserInformation>)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = decoder.next_pdu().unwrap() {
            if p.is_empty() {
                continue;
            }
            return Some(signalling::decode_signalling(p).unwrap());
        }
        if Instant::now() >= deadline {
            return None;
        }
        read_some(stream, decoder)?;
    }
}

/// The caller's answer within `timeout`: Alerting first when `ringing`,
/// then Connect with Fast Connect; returns the relay's address and the codec.
pub fn connected(peer: &mut Peer, ringing: bool, timeout: Duration) -> (SocketAddr, G711) {
    let mut alerted = false;
    let fc = peer
        .wait(timeout, |e| match e {
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

/// Adds the h323 accounts `names` to `d`.
pub fn h323_accounts(d: &Daemon, names: &[&str]) {
    for n in names {
        d.cli_ok(&["user", "add", n, "--type", "h323"]).unwrap();
    }
}

// ---------------------------------------------------------------- media

/// One endpoint's media: its RTP socket and the relay address it sends to.
pub struct Media {
    /// Its RTP socket.
    pub rtp: UdpSocket,
    /// What it sends and takes.
    pub codec: G711,
    /// Where it sends (the relay, once known).
    pub to: SocketAddr,
    /// The SSRC it sends with.
    pub ssrc: u32,
}

impl Media {
    /// A media socket on 127.0.0.1 in `codec`.
    pub fn new(codec: G711) -> Media {
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rtp.local_addr().unwrap();
        Media {
            rtp,
            codec,
            to,
            ssrc: 0x1234_5678,
        }
    }

    /// Its RTP address.
    pub fn addr(&self) -> SocketAddr {
        self.rtp.local_addr().unwrap()
    }

    /// Its RTCP address (RTP + 1).
    pub fn rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.addr().ip(), self.addr().port() + 1)
    }

    /// Sends a tone at `hz` for `secs`; returns what came back, decoded.
    pub fn talk(&self, hz: f64, secs: f64) -> Vec<i16> {
        let tx = self.rtp.try_clone().unwrap();
        let (to, codec, ssrc) = (self.to, self.codec, self.ssrc);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut seq, mut ts, mut n) = (1u16, 0u32, 0u64);
            while !stop2.load(Ordering::Relaxed) {
                let mut pkt = vec![0x80, codec.payload_type(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
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

/// Starts a bot in `conference` (with `pin`) that plays a 440 Hz tone
/// for `duration` seconds and records what it hears; waits 0.8 s for it
/// to join. Returns it and its recording's path.
pub fn bot(d: &Daemon, conference: &str, pin: Option<&str>, duration: &str) -> (ChildGuard, PathBuf) {
    let rec = d.dir.path().join("bot.wav");
    let mut args = vec!["--conference", conference];
    if let Some(p) = pin {
        args.extend(["--pin", p]);
    }
    args.extend([
        "--name",
        "Bot",
        "--play",
        "tone:440",
        "--record",
        rec.to_str().unwrap(),
        "--duration",
        duration,
    ]);
    let bot = d.bot(&args).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    (bot, rec)
}

pub use crate::assert_bot_heard;

/// Asserts that an endpoint that talked with a bot heard a tone at `hz`
/// (at least 3 s received; its last 2 s).
pub fn assert_endpoint_heard(heard: &[i16], hz: f64) {
    assert!(
        heard.len() > 8000 * 3,
        "at least 3 s received, got {} samples",
        heard.len()
    );
    let tail = &heard[heard.len() - 16_000..];
    let f = dominant_frequency(tail, 8000);
    assert!(rms(tail) > 500.0, "the endpoint hears the bot: rms {}", rms(tail));
    assert!(
        (f - hz).abs() <= 10.0,
        "endpoint: dominant frequency {f} Hz, expected {hz} Hz"
    );
}

/// Asserts that `heard` holds at least 2 s of a tone at `hz` (its last 1.5 s).
pub fn assert_heard(who: &str, heard: &[i16], hz: f64) {
    assert!(
        heard.len() > 8000 * 2,
        "{who}: at least 2 s received, got {} samples",
        heard.len()
    );
    let tail = &heard[heard.len() - 12_000..];
    let f = dominant_frequency(tail, 8000);
    assert!(
        rms(tail) > 500.0,
        "{who}: rms {} in the last 1.5 s; rms of each 0.25 s received: {:?}",
        rms(tail),
        heard.chunks(2000).map(|c| rms(c).round()).collect::<Vec<_>>()
    );
    assert!(
        (f - hz).abs() <= 10.0,
        "{who}: dominant frequency {f} Hz, expected {hz} Hz"
    );
}

/// ITU-T G.711 µ-law decoding of one sample.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let magnitude = (((i32::from(u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// ITU-T G.711 A-law encoding of one sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
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
pub fn alaw_to_linear(a: u8) -> i16 {
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

/// A registered endpoint: its RAS side and its call-signalling listener.
pub struct Room {
    /// Its RAS side.
    pub ras: Ras,
    /// Where it takes calls.
    pub listener: TcpListener,
}

impl Room {
    /// Registers `aliases` with `d`'s gatekeeper, taking calls on a fresh port.
    pub fn register(d: &Daemon, aliases: &[Alias]) -> Room {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut ras = Ras::new(d);
        ras.register(aliases, listener.local_addr().unwrap());
        Room { ras, listener }
    }

    /// Places a call to `dialed` through the gatekeeper (ARQ, then Setup
    /// to where the ACF says), proposing `codecs` by Fast Connect.
    pub fn call(&self, dialed: &str, call_id: [u8; 16], media: &Media, codecs: &[G711]) -> Peer {
        let to = self.ras.admit(call_id, dialed, false);
        place(to, dialed, call_id, media, codecs)
    }

    /// Takes the daemon's call: the Setup.
    pub fn take_call(&self, audio: Vec<AudioCodec>) -> (Peer, signalling::IncomingCall) {
        take_call(&self.listener, audio)
    }
}

/// Places a call to `dialed` at `to`, proposing `codecs` by Fast Connect.
pub fn place(to: SocketAddr, dialed: &str, call_id: [u8; 16], media: &Media, codecs: &[G711]) -> Peer {
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

/// Takes the daemon's call on `listener` (within 20 s): the Setup.
pub fn take_call(listener: &TcpListener, audio: Vec<AudioCodec>) -> (Peer, signalling::IncomingCall) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
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
pub fn answer_fast(peer: &mut Peer, media: &Media, codec: G711) -> SocketAddr {
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
