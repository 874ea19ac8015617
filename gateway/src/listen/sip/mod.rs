//! The SIP listener: owns the UDP socket, drives `confgate-sip`'s
//! transaction layer, answers REGISTER as the registrar, and hands INVITEs
//! to one task per call ([`call`]).
//!
//! One core task reads datagrams, feeds them to the transaction layer and
//! sends what it says to send; it wakes for the layer's timers and when a
//! call task has queued a response or a request. Call tasks talk to the
//! core through [`Core`]'s methods (the layer sits behind a mutex held only
//! for the duration of one call, never across an await) and receive what
//! belongs to them (in-dialog requests, ACKs, CANCELs, responses to their
//! own requests) on a channel keyed by dialog or transaction.
//!
//! UDP, TCP and TLS (RFC 3261 §18): a TCP or TLS connection is kept per
//! peer address and reused both ways; what arrives on it is answered on it,
//! and in-dialog requests of a call that came over it go back over the same
//! connection. WebSocket (RFC 7118, [`ws`]) connections come in through the
//! HTTP listener and join the same map of connections: a message is one
//! frame, and a phone registered over a WebSocket is reached only over
//! that connection (its bindings go when it closes). Trunks ([`trunk`])
//! register to their provider, carry the calls of gateway routes out, and
//! bring the provider's calls in. Browser softphones offer DTLS-SRTP with
//! ICE; [`browser`] answers them as an ICE-lite, DTLS endpoint on the relay.

mod browser;
mod call;
mod flood;
mod register;
mod trunk;
pub mod ws;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay::Relay;
use sip::transaction::{ClientTxKey, Received, ServerTxKey, Timers, TransactionLayer, Transmit, TxEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Notify};

use crate::state::Shared;

/// Largest datagram read (RFC 3261 §18.1.1 allows up to 65 535 over UDP).
const MAX_DATAGRAM: usize = 65_535;
/// Longest TLS handshake before the connection is dropped.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// A TCP connection with no traffic for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(600);
/// Most TCP connections at once; more are refused (closed at once).
const MAX_TCP_CONNECTIONS: usize = 4096;
/// Bytes queued towards one TCP peer before it counts as stuck and is dropped.
const TCP_SEND_QUEUE: usize = 256;

/// The transport a message came over and is answered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// UDP datagrams.
    Udp,
    /// A TCP connection.
    Tcp,
    /// A TLS connection (over TCP).
    Tls,
    /// A WebSocket connection (RFC 7118) on the HTTP listener.
    Ws,
    /// A WebSocket connection that reached us over HTTPS (through a proxy
    /// that terminates TLS).
    Wss,
}

impl Transport {
    /// The Via transport token (RFC 3261 §20.42).
    pub(crate) fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Reliable transports skip retransmissions (RFC 3261 §17).
    fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// Over a WebSocket (RFC 7118): the peer is reached only over the
    /// connection it opened.
    pub(crate) fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// From a Via or binding transport token.
    pub(crate) fn from_token(t: &str) -> Transport {
        if t.eq_ignore_ascii_case("tcp") {
            Transport::Tcp
        } else if t.eq_ignore_ascii_case("tls") {
            Transport::Tls
        } else if t.eq_ignore_ascii_case("ws") {
            Transport::Ws
        } else if t.eq_ignore_ascii_case("wss") {
            Transport::Wss
        } else {
            Transport::Udp
        }
    }
}

/// What the core hands to a call task.
#[derive(Debug)]
pub(crate) enum CallInput {
    /// A request inside the call's dialog (BYE, re-INVITE, INFO, UPDATE,
    /// OPTIONS), to be answered through its transaction.
    Request(ServerTxKey, Box<rsip::Request>),
    /// The ACK for our 2xx.
    Ack(Box<rsip::Request>),
    /// The caller cancelled the INVITE (the core has answered the CANCEL).
    Cancel,
    /// A response to a request the call sent.
    Response(ClientTxKey, Box<rsip::Response>),
    /// A request the call sent got no final response in time.
    Timeout(ClientTxKey),
    /// Our 2xx was never acknowledged.
    AckTimeout,
}

/// Where the core routes what arrives.
#[derive(Default)]
struct Routes {
    /// Dialogs by (Call-ID, our tag).
    dialogs: HashMap<(String, String), mpsc::Sender<CallInput>>,
    /// INVITE server transactions not yet answered, for CANCEL.
    invites: HashMap<ServerTxKey, mpsc::Sender<CallInput>>,
    /// Our own requests in progress.
    clients: HashMap<ClientTxKey, mpsc::Sender<CallInput>>,
}

/// The state the core and the call tasks share.
pub(crate) struct Core {
    shared: Shared,
    relay: Relay,
    socket: UdpSocket,
    /// Open TCP, TLS and WebSocket connections by peer address: where
    /// their messages go.
    tcp: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    /// Accounts registered over each open WebSocket connection: their
    /// bindings are removed when it closes (RFC 7118 §5: such a contact is
    /// reached through that connection or not at all).
    ws_bindings: Mutex<HashMap<SocketAddr, BTreeSet<String>>>,
    /// The HTTP listener's port, for Via and Contact over WebSocket.
    ws_port: Option<u16>,
    /// Our DTLS certificate for browser softphones' media (`None`: it
    /// could not be made, and their offers get 488).
    dtls_cert: Option<Arc<webrtc::dtls::DtlsCert>>,
    /// Whether SIP over TCP is served.
    tcp_enabled: bool,
    /// Our TCP and TLS listen ports, for Contact and Via over those transports.
    tcp_port: Option<u16>,
    tls_port: Option<u16>,
    layer: Mutex<TransactionLayer>,
    /// What [`Core::flush`] takes out of the layer, kept between calls so
    /// that a burst of responses does not allocate (and free) a list each time.
    flushing: Mutex<(Vec<Transmit>, Vec<TxEvent>)>,
    wake: Notify,
    routes: Mutex<Routes>,
    /// New requests per source ([`flood`]).
    flood: Mutex<flood::SourceLimiter>,
    nonces: Mutex<sip::digest::NonceIssuer>,
    /// REGISTERs with credentials, on their way to the registrar's next
    /// batch ([`register::run`]).
    registrar: mpsc::Sender<register::Pending>,
    /// `host:port` for Via and Contact.
    sent_by: String,
    /// The digest realm: the server name.
    realm: String,
    /// The address the socket is bound to.
    local: SocketAddr,
    /// The media address put in SDP.
    media_address: std::net::IpAddr,
    next_call: AtomicU64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("local", &self.local).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Binds the SIP UDP socket.
///
/// # Errors
///
/// The address is taken or not local.
pub async fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(addr).await
}

/// Serves SIP on `socket` (and `tcp`, `tls` when given, and WebSocket
/// connections handed over through `websocket` when `sip.websocket` is on)
/// until `stop` changes.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    socket: UdpSocket,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    websocket: ws::WsTransport,
    shared: Shared,
    relay: Relay,
    media_address: std::net::IpAddr,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = shared.config();
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "SIP socket has no address");
            return;
        }
    };
    let sent_by = if cfg.sip.advertise.is_empty() {
        let host = if local.ip().is_unspecified() {
            media_address
        } else {
            local.ip()
        };
        SocketAddr::new(host, local.port()).to_string()
    } else if cfg.sip.advertise.contains(':') && !cfg.sip.advertise.starts_with('[') {
        cfg.sip.advertise.clone()
    } else {
        format!("{}:{}", cfg.sip.advertise, local.port())
    };
    let layer = TransactionLayer::with_limit(
        Timers {
            t1: Duration::from_millis(cfg.sip.t1_ms),
            t2: Duration::from_millis(cfg.sip.t2_ms),
            t4: Duration::from_millis(cfg.sip.t4_ms),
        },
        cfg.sip.max_transactions,
    );
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut secret[..]);
    let dtls_cert = match webrtc::dtls::DtlsCert::generate() {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::warn!(error = %e, "no DTLS certificate; calls from browser softphones get 488");
            None
        }
    };
    let (registrar, registrar_queue) = mpsc::channel(register::MAX_PENDING);
    let core = Arc::new(Core {
        realm: shared.directory.server().to_string(),
        shared,
        relay,
        socket,
        tcp: Mutex::new(HashMap::new()),
        ws_bindings: Mutex::new(HashMap::new()),
        ws_port: cfg.sip.websocket.then_some(cfg.http.listen.port()),
        dtls_cert,
        tcp_enabled: tcp.is_some(),
        tcp_port: tcp.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port()),
        tls_port: tls.as_ref().and_then(|(l, _)| l.local_addr().ok()).map(|a| a.port()),
        layer: Mutex::new(layer),
        flushing: Mutex::new((Vec::new(), Vec::new())),
        wake: Notify::new(),
        routes: Mutex::new(Routes::default()),
        flood: Mutex::new(flood::SourceLimiter::default()),
        nonces: Mutex::new(
            sip::digest::NonceIssuer::new(secret, Duration::from_secs(cfg.sip.nonce_lifetime_secs)).with_algorithms(
                &cfg.sip
                    .digest_algorithms
                    .iter()
                    .filter_map(|a| sip::digest::Algorithm::from_token(a.trim()))
                    .collect::<Vec<_>>(),
            ),
        ),
        registrar,
        sent_by,
        local,
        media_address,
        next_call: AtomicU64::new(1),
    });
    tokio::spawn(register::run(core.clone(), registrar_queue, stop.clone()));
    call::register_dialer(&core);
    tracing::info!(listen = %local, sent_by = %core.sent_by, "SIP listener up");
    if let Some(listener) = tcp {
        tokio::spawn(accept_tcp(core.clone(), listener, None, stop.clone()));
    }
    if let Some((listener, acceptor)) = tls {
        tokio::spawn(accept_tcp(core.clone(), listener, Some(acceptor), stop.clone()));
    }
    if cfg.sip.websocket {
        websocket.attach(&core);
    }
    for t in cfg.sip.trunks.iter().filter(|t| t.register) {
        tokio::spawn(trunk::keep_registered(core.clone(), t.clone(), stop.clone()));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut purge = tokio::time::interval(Duration::from_secs(60));
    // One timer for the layer's wake-ups, moved only when its deadline changes.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = lock(&core.layer).poll_timeout();
        if deadline != armed {
            if let Some(d) = deadline {
                timer.as_mut().reset(tokio::time::Instant::from_std(d));
            }
            armed = deadline;
        }
        tokio::select! {
            r = core.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => core.on_message(&buf[..n], from, Transport::Udp),
                Err(e) => tracing::debug!(error = %e, "SIP receive failed"),
            },
            _ = core.wake.notified() => {}
            _ = &mut timer, if armed.is_some() => {
                armed = None;
                lock(&core.layer).handle_timeout(Instant::now());
            }
            _ = purge.tick() => {
                let dir = core.shared.directory.clone();
                tokio::spawn(async move {
                    if let Err(e) = dir.purge_expired_bindings(unix_now()).await {
                        tracing::warn!(error = %e, "cannot purge expired registrations");
                    }
                });
            }
            _ = stop.changed() => break,
        }
        core.flush();
    }
    tracing::info!("SIP listener stopped");
}

impl Core {
    /// Sends what the layer queued and dispatches its events.
    fn flush(self: &Arc<Self>) {
        // Lock order: `flushing`, then `layer` (briefly) or `routes` (events).
        let mut scratch = lock(&self.flushing);
        let (transmits, events) = &mut *scratch;
        loop {
            {
                let mut layer = lock(&self.layer);
                while let Some(x) = layer.poll_transmit() {
                    transmits.push(x);
                }
                while let Some(x) = layer.poll_event() {
                    events.push(x);
                }
            }
            if transmits.is_empty() && events.is_empty() {
                return;
            }
            for t in transmits.drain(..) {
                if t.reliable {
                    let conn = lock(&self.tcp).get(&t.dest).cloned();
                    match conn {
                        Some(c) => {
                            if c.try_send(t.bytes).is_err() {
                                tracing::debug!(dest = %t.dest, "SIP TCP peer not reading; message dropped");
                            }
                        }
                        None => tracing::debug!(dest = %t.dest, "no TCP connection to the SIP peer any more"),
                    }
                } else if let Err(e) = self.socket.try_send_to(&t.bytes, t.dest) {
                    tracing::debug!(error = %e, dest = %t.dest, "SIP send failed");
                }
            }
            for ev in events.drain(..) {
                self.on_event(ev);
            }
        }
    }

    fn on_event(self: &Arc<Self>, ev: TxEvent) {
        match ev {
            TxEvent::Timeout(key) => {
                let owner = lock(&self.routes).clients.remove(&key);
                if let Some(tx) = owner {
                    let _ = tx.try_send(CallInput::Timeout(key));
                }
            }
            TxEvent::AckTimeout { call_id, .. } => {
                let owners: Vec<_> = lock(&self.routes)
                    .dialogs
                    .iter()
                    .filter(|((c, _), _)| *c == call_id)
                    .map(|(_, tx)| tx.clone())
                    .collect();
                for tx in owners {
                    let _ = tx.try_send(CallInput::AckTimeout);
                }
            }
            TxEvent::Terminated(_) => {}
            _ => {}
        }
    }

    fn on_message(self: &Arc<Self>, bytes: &[u8], from: SocketAddr, transport: Transport) {
        // RFC 5626 §3.5.1 keep-alives: a bare CRLF (or two) is not a message.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        let msg = match sip::message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.shared.metrics.count_drop("sip_malformed");
                tracing::debug!(error = %e, %from, "malformed SIP message");
                self.reject_malformed(bytes, from, transport, &e);
                return;
            }
        };
        if let rsip::SipMessage::Request(req) = &msg {
            if !self.admit_request(req, from, transport) {
                return;
            }
        }
        // A REGISTER without credentials is challenged without transaction
        // state (RFC 3261 §8.2.7, §26.1.5); everything else goes through the
        // layer, which stamps `received`/`rport` on requests itself.
        let msg = match msg {
            rsip::SipMessage::Request(mut req)
                if req.method == rsip::Method::Register
                    && !req.headers.iter().any(|h| matches!(h, rsip::Header::Authorization(_))) =>
            {
                sip::message::stamp_received(&mut req, from);
                let resp = register::answer_without_credentials(self, &req, from);
                self.respond_stateless(resp, from, transport);
                return;
            }
            other => other,
        };
        let received = lock(&self.layer).receive(msg, from, transport.reliable(), Instant::now());
        let Some(received) = received else { return };
        match received {
            Received::Request { key, request } => self.on_request(key, request, from, transport),
            Received::Ack { request } => {
                if let Some(tx) = self.dialog_of(&request) {
                    let _ = tx.try_send(CallInput::Ack(Box::new(request)));
                }
            }
            Received::Cancel { invite, .. } => {
                let owner = invite.and_then(|k| lock(&self.routes).invites.get(&k).cloned());
                if let Some(tx) = owner {
                    let _ = tx.try_send(CallInput::Cancel);
                }
            }
            Received::Response { key, response } => {
                let final_response = response.status_code.code() >= 200;
                let owner = {
                    let mut routes = lock(&self.routes);
                    if final_response {
                        routes.clients.remove(&key)
                    } else {
                        routes.clients.get(&key).cloned()
                    }
                };
                if let Some(tx) = owner {
                    let _ = tx.try_send(CallInput::Response(key, Box::new(response)));
                }
            }
            _ => {}
        }
    }

    /// A message that does not parse: answer 400 naming what was wrong
    /// when it is a request whose headers still allow a response.
    fn reject_malformed(&self, bytes: &[u8], from: SocketAddr, transport: Transport, e: &sip::message::ParseError) {
        if let Some(resp) = bad_request_text(bytes, &e.to_string(), &self.realm) {
            match transport {
                Transport::Udp => {
                    let _ = self.socket.try_send_to(resp.as_bytes(), from);
                }
                Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                    if let Some(c) = lock(&self.tcp).get(&from) {
                        let _ = c.try_send(resp.into_bytes());
                    }
                }
            }
        }
    }

    fn dialog_of(&self, req: &rsip::Request) -> Option<mpsc::Sender<CallInput>> {
        let call_id = sip::message::call_id(req)?.to_string();
        let tag = sip::message::to_tag(req)?;
        lock(&self.routes).dialogs.get(&(call_id, tag)).cloned()
    }

    fn on_request(self: &Arc<Self>, key: ServerTxKey, request: rsip::Request, from: SocketAddr, transport: Transport) {
        let in_dialog = sip::message::to_tag(&request).is_some();
        match request.method {
            rsip::Method::Register => register::handle(self, key, request, from, transport),
            rsip::Method::Invite if !in_dialog => {
                // The layer has sent 100 Trying already (RFC 3261 §17.2.1).
                let (tx, rx) = mpsc::channel(32);
                lock(&self.routes).invites.insert(key.clone(), tx.clone());
                let core = self.clone();
                let id = self.next_call.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(call::incoming(core, id, key, request, from, transport, tx, rx));
            }
            rsip::Method::Options if !in_dialog => {
                let resp = self.capabilities(sip::message::response_for(
                    &request,
                    200,
                    Some(&sip::message::new_tag()),
                ));
                self.respond(&key, resp);
            }
            _ if in_dialog => match self.dialog_of(&request) {
                Some(tx) => {
                    if tx
                        .try_send(CallInput::Request(key.clone(), Box::new(request.clone())))
                        .is_err()
                    {
                        // The call is busy or gone: RFC 3261 §12.2.2 / §14.2.
                        self.respond(
                            &key,
                            sip::message::response_for(&request, 500, Some(&sip::message::new_tag())),
                        );
                    }
                }
                None => {
                    self.respond(
                        &key,
                        sip::message::response_for(&request, 481, Some(&sip::message::new_tag())),
                    );
                }
            },
            rsip::Method::Bye | rsip::Method::Info | rsip::Method::Update | rsip::Method::PRack => {
                self.respond(
                    &key,
                    sip::message::response_for(&request, 481, Some(&sip::message::new_tag())),
                );
            }
            _ => {
                // RFC 3261 §8.2.1: 405 with the methods we do take.
                let resp = self.capabilities(sip::message::response_for(
                    &request,
                    405,
                    Some(&sip::message::new_tag()),
                ));
                self.respond(&key, resp);
            }
        }
    }

    /// Adds Allow, Accept and Supported (what OPTIONS and 405 tell).
    fn capabilities(&self, resp: rsip::Response) -> rsip::Response {
        let resp = sip::message::with_header(resp, "Allow", ALLOW);
        let resp = sip::message::with_header(resp, "Accept", "application/sdp, application/dtmf-relay");
        sip::message::with_header(resp, "Supported", "timer, 100rel")
    }

    /// Answers a server transaction.
    pub(crate) fn respond(&self, key: &ServerTxKey, response: rsip::Response) {
        let response = sip::message::with_header(response, "Server", USER_AGENT);
        if response.status_code.code() >= 200 {
            lock(&self.routes).invites.remove(key);
        }
        lock(&self.layer).respond(key, response, Instant::now());
        self.wake.notify_one();
    }

    /// Whether a request from `from` is within the source's rate
    /// (`sip.max_requests_per_source`). Only requests that start something
    /// count: in-dialog requests, ACK and CANCEL belong to what already
    /// passed. Trunk addresses are not limited. Over the rate, one request
    /// a second is answered 503 with Retry-After and the rest are dropped.
    fn admit_request(&self, req: &rsip::Request, from: SocketAddr, transport: Transport) -> bool {
        if matches!(req.method, rsip::Method::Ack | rsip::Method::Cancel) || sip::message::to_tag(req).is_some() {
            return true;
        }
        let rate = self.shared.config().sip.max_requests_per_source;
        let verdict = lock(&self.flood).check(from.ip(), rate, Instant::now());
        if verdict == flood::Verdict::Pass || trunk::inbound(self, from.ip()).is_some() {
            return true;
        }
        self.shared.metrics.count_drop("sip_rate_limited");
        if verdict == flood::Verdict::Refuse {
            tracing::info!(%from, rate, "SIP requests from this source over the rate; refusing with 503");
            let resp = sip::message::response_for(req, 503, Some(&sip::message::new_tag()));
            let resp = sip::message::with_header(resp, "Retry-After", "1");
            let resp = sip::message::with_header(
                resp,
                "Warning",
                &register::warning(self, "too many requests from your address"),
            );
            self.respond_stateless(resp, from, transport);
        }
        false
    }

    /// Sends a response outside any transaction, to a request from `from`
    /// (RFC 3261 §18.2.2: over UDP where the top Via says).
    fn respond_stateless(&self, response: rsip::Response, from: SocketAddr, transport: Transport) {
        let response = sip::message::with_header(response, "Server", USER_AGENT);
        let dest = if transport.reliable() {
            from
        } else {
            sip::message::response_destination(&response, from)
        };
        lock(&self.layer).send_stateless(dest, transport.reliable(), &rsip::SipMessage::Response(response));
        self.wake.notify_one();
    }

    /// Sends a request in a new client transaction; what comes back goes to `owner`.
    pub(crate) fn send_request(
        &self,
        request: rsip::Request,
        dest: SocketAddr,
        transport: Transport,
        owner: mpsc::Sender<CallInput>,
    ) -> ClientTxKey {
        let request = sip::message::with_header(request, "User-Agent", USER_AGENT);
        let mut routes = lock(&self.routes);
        let key = lock(&self.layer).send_request(request, dest, transport.reliable(), Instant::now());
        routes.clients.insert(key.clone(), owner);
        drop(routes);
        self.wake.notify_one();
        key
    }

    /// Sends a message outside any transaction (the ACK for a 2xx).
    pub(crate) fn send_stateless(&self, dest: SocketAddr, transport: Transport, msg: rsip::SipMessage) {
        lock(&self.layer).send_stateless(dest, transport.reliable(), &msg);
        self.wake.notify_one();
    }

    /// Routes requests of the dialog (Call-ID, our tag) to `tx`.
    pub(crate) fn add_dialog(&self, call_id: &str, local_tag: &str, tx: mpsc::Sender<CallInput>) {
        lock(&self.routes)
            .dialogs
            .insert((call_id.to_string(), local_tag.to_string()), tx);
    }

    /// Stops routing a dialog.
    pub(crate) fn remove_dialog(&self, call_id: &str, local_tag: &str) {
        lock(&self.routes)
            .dialogs
            .remove(&(call_id.to_string(), local_tag.to_string()));
    }

    /// A fresh digest challenge (WWW-Authenticate / Proxy-Authenticate values).
    pub(crate) fn challenge(&self, stale: bool) -> Vec<String> {
        lock(&self.nonces).challenge(&self.realm, unix_now(), stale)
    }

    /// Checks a digest Authorization / Proxy-Authorization value against
    /// the directory. The stored HA1s are fetched first (the check itself
    /// is synchronous).
    pub(crate) async fn verify_digest(
        &self,
        authorization: &str,
        method: &str,
    ) -> Result<sip::digest::Verified, sip::digest::DigestError> {
        let username = sip::digest::parse_params(authorization)
            .ok()
            .and_then(|p| {
                p.into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("username"))
                    .map(|(_, v)| v)
            })
            .unwrap_or_default();
        let (md5, sha256) = self.shared.directory.digest_ha1s(&username).await.unwrap_or_default();
        lock(&self.nonces).verify(authorization, method, &self.realm, unix_now(), |alg, _user| match alg {
            sip::digest::Algorithm::Md5 => md5.clone(),
            _ => sha256.clone(),
        })
    }

    /// Our `host:port` as reached over `transport` (Via sent-by, Contact).
    pub(crate) fn sent_by(&self, transport: Transport) -> String {
        let port = match transport {
            Transport::Udp => None,
            Transport::Tcp => self.tcp_port,
            Transport::Tls => self.tls_port,
            Transport::Ws | Transport::Wss => self.ws_port,
        };
        match port {
            None => self.sent_by.clone(),
            Some(p) => {
                let host = match self.sent_by.rsplit_once(':') {
                    Some((h, port)) if port.parse::<u16>().is_ok() => h,
                    _ => self.sent_by.as_str(),
                };
                format!("{host}:{p}")
            }
        }
    }

    /// A SIP URI for us, with `user`, reached over `transport`.
    pub(crate) fn our_uri(&self, user: &str, transport: Transport) -> String {
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
            Transport::Ws => ";transport=ws",
            Transport::Wss => ";transport=wss",
        };
        let host = self.sent_by(transport);
        if user.is_empty() {
            format!("sip:{host}{param}")
        } else {
            format!("sip:{user}@{host}{param}")
        }
    }

    /// A TCP connection to `dest`: the open one, or a new one (RFC 3261
    /// §18.1.1: requests to a TCP contact reuse a connection when there is
    /// one).
    pub(crate) async fn tcp_connection(self: &Arc<Self>, dest: SocketAddr, transport: Transport) -> bool {
        if lock(&self.tcp).contains_key(&dest) {
            return true;
        }
        // TLS towards phones: only over the connection the phone opened (it
        // has no certificate to show us); new outgoing connections are TCP.
        if !self.tcp_enabled || transport != Transport::Tcp {
            return false;
        }
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(dest)).await {
            Ok(Ok(stream)) => {
                let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
                lock(&self.tcp).insert(dest, tx.clone());
                tokio::spawn(connection(self.clone(), stream, dest, Transport::Tcp, tx, rx));
                true
            }
            _ => false,
        }
    }
}

/// Accepts SIP TCP (or, with an acceptor, TLS) connections until `stop`
/// changes. The TLS handshake runs in the connection's own task, bounded.
async fn accept_tcp(
    core: Arc<Core>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
                    {
                        let mut conns = lock(&core.tcp);
                        if conns.len() >= MAX_TCP_CONNECTIONS {
                            tracing::warn!(%peer, "too many SIP TCP connections; refused");
                            continue;
                        }
                        conns.insert(peer, tx.clone());
                    }
                    let core = core.clone();
                    match tls.clone() {
                        None => {
                            tokio::spawn(connection(core, stream, peer, Transport::Tcp, tx, rx));
                        }
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                                    Ok(Ok(tls_stream)) => connection(core, tls_stream, peer, Transport::Tls, tx, rx).await,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "SIP TLS handshake failed");
                                        forget_connection(&core, peer, &tx);
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "SIP TLS handshake timed out");
                                        forget_connection(&core, peer, &tx);
                                    }
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

fn forget_connection(core: &Core, peer: SocketAddr, tx: &mpsc::Sender<Vec<u8>>) {
    let mut conns = lock(&core.tcp);
    if conns.get(&peer).is_some_and(|c| c.same_channel(tx)) {
        conns.remove(&peer);
    }
}

/// The TLS acceptor for SIP over TLS from PEM files: the certificate chain
/// (leaf first) and the private key.
///
/// # Errors
///
/// A file that cannot be read or holds no usable certificate or key, named.
pub fn tls_acceptor(certificate: &str, private_key: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| format!("sip.tls_certificate '{certificate}': {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("sip.tls_certificate '{certificate}': {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "sip.tls_certificate '{certificate}': no certificate in the file"
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(private_key).map_err(|e| format!("sip.tls_private_key '{private_key}': {e}"))?;
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("sip.tls_certificate / sip.tls_private_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// One SIP TCP connection: frames messages by Content-Length (RFC 3261
/// §18.3), answers double-CRLF keep-alives with a CRLF (RFC 5626 §3.5.1),
/// and closes on a framing error (after a 400 when one can be built), at
/// end of stream or after [`TCP_IDLE`] without traffic.
async fn connection<S>(
    core: Arc<Core>,
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Vec<u8>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match tokio::time::timeout(TCP_IDLE, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            let crlfs = buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
            if crlfs > 0 {
                if crlfs >= 4 {
                    let _ = tx.try_send(b"\r\n".to_vec());
                }
                buf.drain(..crlfs);
            }
            match sip::message::stream_frame_len(&buf) {
                Ok(Some(len)) => {
                    let msg: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                    core.on_message(&msg, peer, transport);
                    core.flush();
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "SIP TCP framing error; closing");
                    core.reject_malformed(&buf, peer, transport, &e);
                    // Let the writer send the 400 before the connection goes.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break 'read;
                }
            }
        }
    }
    forget_connection(&core, peer, &tx);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

/// A 400 for a request that does not parse, built from its raw text
/// (RFC 3261 §8.2.2.1 / §21.4.1): the Via, From, To, Call-ID and CSeq lines
/// are copied as they are, a To tag is added, and a Warning says what was
/// wrong. `None` when the bytes are not a request or lack one of those
/// headers (then nothing can be answered and the datagram is dropped).
fn bad_request_text(bytes: &[u8], problem: &str, host: &str) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    // Responses are never answered, nor is an ACK (RFC 3261 §17.1.1.3: no response to ACK).
    if !start.trim_end().ends_with("SIP/2.0") || start.starts_with("SIP/") || start.starts_with("ACK ") {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = Some(value),
            "to" | "t" => to = Some(value),
            "call-id" | "i" => call_id = Some(value),
            "cseq" => cseq = Some(value),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    // The CSeq line is copied as it is, even when its number is the fault.
    if vias.is_empty() || cseq.is_empty() {
        return None;
    }
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag={}", sip::message::new_tag())
    };
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    for v in vias {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    let problem: String = problem
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    out.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n\
         Warning: 399 {host} \"{problem}\"\r\nServer: {USER_AGENT}\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(out)
}

/// The methods confgate takes.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REGISTER";
/// Server / User-Agent header value.
const USER_AGENT: &str = concat!("confgate/", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::bad_request_text;

    #[test]
    fn unparsable_requests_get_a_400_that_names_the_problem() {
        let req = "INVITE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nf: <sip:a@x>;tag=1\r\n\
                   To: <sip:1@x>\r\nCall-ID: abc\r\nCSeq: 1 INVITE\r\nContent-Length: 999\r\n\r\n";
        let r = bad_request_text(req.as_bytes(), "body shorter than Content-Length", "srv").unwrap();
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(r.contains("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"));
        assert!(r.contains("To: <sip:1@x>;tag="));
        assert!(r.contains("Call-ID: abc\r\n"));
        assert!(r.contains("Warning: 399 srv \"body shorter than Content-Length\""));
        // Responses and requests without the headers needed are not answered.
        assert!(bad_request_text(b"SIP/2.0 200 OK\r\n\r\n", "x", "srv").is_none());
        let ack = req.replace("INVITE sip:1@x", "ACK sip:1@x");
        assert!(
            bad_request_text(ack.as_bytes(), "x", "srv").is_none(),
            "no response to an ACK"
        );
        let huge = req.replace("CSeq: 1 INVITE", "CSeq: 36893488147419103232 INVITE");
        let r = bad_request_text(huge.as_bytes(), "bad CSeq", "srv").unwrap();
        assert!(
            r.contains("CSeq: 36893488147419103232 INVITE\r\n"),
            "a CSeq that does not parse is echoed"
        );
        assert!(bad_request_text(b"INVITE sip:1@x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n", "x", "srv").is_none());
        assert!(bad_request_text(&[0xff, 0xfe], "x", "srv").is_none());
    }
}
