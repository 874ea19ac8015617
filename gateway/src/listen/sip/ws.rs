//! SIP over WebSocket (RFC 7118) on the HTTP listener, for browser
//! softphones: `GET /sip` upgrades to a WebSocket with the `sip`
//! subprotocol, and the connection is then a SIP transport like TCP.
//!
//! - The handshake must ask for the `sip` subprotocol (RFC 7118 §4.1); the
//!   answer names it in `Sec-WebSocket-Protocol`. A handshake without it is
//!   refused with 400 and a text saying so, and one from a browser page on
//!   another origin with 403 (the page's `Origin` must be this server's own
//!   `Host`, or one of `sip.websocket_origins`). 503 when SIP over
//!   WebSocket is not served (`sip.websocket = false`, or no SIP listener)
//!   or when the SIP listener holds its most connections (TCP, TLS and
//!   WebSocket together).
//! - Each text or binary frame carries one SIP message (RFC 7118 §5.1);
//!   what we send goes out as a text frame (SIP is UTF-8) unless it is not
//!   valid UTF-8 (a binary body), then as a binary frame. A frame over
//!   [`MAX_MESSAGE`] bytes closes the connection (1009). A message that
//!   does not parse is answered with 400 naming the header, as on the other
//!   transports, and the connection stays open (the framing is intact).
//! - Via says `WS` (`WSS` when the request came over HTTPS through a proxy,
//!   `X-Forwarded-Proto: https` or `Forwarded: proto=https`). Responses,
//!   in-dialog requests and calls to a contact registered over the
//!   connection all go back over it, since the Contact host of a browser
//!   (`….invalid`) cannot be reached otherwise (RFC 7118 §5.2, and the
//!   flow idea of RFC 5626). The connection is keyed by the browser's
//!   address, like a TCP connection.
//! - When the connection closes, the bindings registered over it are
//!   removed from the registrar.
//! - A double CRLF is a keep-alive and is answered with one CRLF (RFC 5626
//!   §3.5.1, what SIP.js and JsSIP send). We ping every [`PING_EVERY`] and
//!   close a connection that has sent nothing (not even a pong) for
//!   [`IDLE`]. More than [`RATE_BURST`] frames at once (refilled at
//!   [`RATE_PER_SEC`] a second) close it with 1008.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::mpsc;

use super::{lock, unix_now, Core, Transport, MAX_TCP_CONNECTIONS, TCP_SEND_QUEUE};
use crate::state::Shared;

/// The path of the SIP WebSocket on the HTTP listener.
pub const PATH: &str = "/sip";
/// The WebSocket subprotocol of SIP (RFC 7118 §4.1, IANA registry).
pub const SUBPROTOCOL: &str = "sip";
/// Largest SIP message over a WebSocket, in bytes (the largest UDP message
/// of RFC 3261 §18.1.1).
pub const MAX_MESSAGE: usize = 65_535;
/// Frames a connection may send at once before the rate limit applies.
pub const RATE_BURST: f64 = 100.0;
/// Frames per second a connection may keep sending.
pub const RATE_PER_SEC: f64 = 50.0;
/// How often we ping an open connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// A connection that sends nothing for this long is closed.
pub const IDLE: Duration = Duration::from_secs(95);
/// How long a connection we close waits for the peer's Close.
const LINGER: Duration = Duration::from_secs(1);

/// What a connection's task sends (the messages queued for the peer) and
/// reads them from.
type Outbox = (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>);

/// How the HTTP listener hands SIP WebSocket connections to the SIP
/// listener: created before both, filled by the SIP listener once it runs.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct WsTransport {
    core: Arc<OnceLock<Weak<Core>>>,
}

impl std::fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("attached", &self.core().is_some())
            .finish()
    }
}

impl WsTransport {
    /// A handle with no SIP listener behind it yet (upgrades get 503).
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands connections to `core` from now on. Only a weak reference is
    /// kept: once the SIP listener and its tasks are gone, upgrades get 503.
    pub(super) fn attach(&self, core: &Arc<Core>) {
        let _ = self.core.set(Arc::downgrade(core));
    }

    fn core(&self) -> Option<Arc<Core>> {
        self.core.get().and_then(Weak::upgrade)
    }
}

/// The route of the SIP WebSocket, with its state applied.
pub fn routes(shared: Shared, transport: WsTransport) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state((shared, transport))
}

/// Whether the handshake asks for the `sip` subprotocol.
fn asks_for_sip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// Whether the browser's `Origin` (if any) is this server's own `Host` or
/// one of `allowed` (`*`: any). Non-browser clients send no `Origin`.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

fn refuse(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

async fn upgrade(
    State((shared, transport)): State<(Shared, WsTransport)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let cfg = shared.config();
    let Some(core) = transport.core().filter(|_| cfg.sip.websocket) else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "SIP over WebSocket is not served here");
    };
    if !asks_for_sip(&headers) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "SIP over WebSocket needs the 'sip' subprotocol (Sec-WebSocket-Protocol: sip, RFC 7118)",
        );
    }
    if !origin_allowed(&headers, &cfg.sip.websocket_origins) {
        shared.metrics.count_drop("web_bad_origin");
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let kind = if crate::http::web::request_is_https(&headers) {
        Transport::Wss
    } else {
        Transport::Ws
    };
    if !core.websocket_room(peer) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many SIP connections");
    }
    let mut upgrade = upgrade.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE);
    // The protocol was asked for (checked above): name it in the answer.
    upgrade.set_selected_protocol(HeaderValue::from_static(SUBPROTOCOL));
    upgrade.on_upgrade(move |mut socket| async move {
        // Taken into the map only once upgraded: a handshake that never
        // completes leaves nothing behind.
        match core.open_websocket(peer) {
            Some((tx, rx)) => connection(core, socket, peer, kind, tx, rx).await,
            None => {
                let _ = socket.send(close_frame(1013, "too many SIP connections")).await;
            }
        }
    })
}

/// A Close frame with `code` and `reason`.
fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

impl Core {
    /// Whether a WebSocket connection from `peer` would find room in the
    /// connection map: it is not full and holds nothing from that very
    /// address (a TCP connection from the same address and port).
    fn websocket_room(&self, peer: SocketAddr) -> bool {
        let conns = lock(&self.tcp);
        conns.len() < MAX_TCP_CONNECTIONS && !conns.contains_key(&peer)
    }

    /// Takes a WebSocket connection from `peer` into the connection map.
    /// `None`: no room ([`Self::websocket_room`]).
    fn open_websocket(&self, peer: SocketAddr) -> Option<Outbox> {
        let mut conns = lock(&self.tcp);
        if conns.len() >= MAX_TCP_CONNECTIONS || conns.contains_key(&peer) {
            tracing::warn!(%peer, "SIP WebSocket refused: too many connections, or one from this address");
            return None;
        }
        let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
        conns.insert(peer, tx.clone());
        Some((tx, rx))
    }

    /// Forgets a WebSocket connection and removes the bindings registered
    /// over it.
    fn close_websocket(self: &Arc<Self>, peer: SocketAddr, tx: &mpsc::Sender<Vec<u8>>) {
        super::forget_connection(self, peer, tx);
        let users = lock(&self.ws_bindings).remove(&peer).unwrap_or_default();
        if users.is_empty() {
            return;
        }
        let core = self.clone();
        tokio::spawn(async move {
            for user in users {
                core.drop_websocket_bindings(&user, peer).await;
            }
        });
    }

    /// Removes `user`'s bindings registered over the WebSocket from `peer`.
    async fn drop_websocket_bindings(&self, user: &str, peer: SocketAddr) {
        let dir = &self.shared.directory;
        let now = unix_now();
        let Ok(bindings) = dir.sip_bindings(user, now).await else {
            return;
        };
        let kept: Vec<_> = bindings
            .iter()
            .filter(|b| !(b.source == Some(peer) && Transport::from_token(&b.transport).is_websocket()))
            .cloned()
            .collect();
        if kept.len() == bindings.len() {
            return;
        }
        match dir.set_sip_bindings(user, &kept).await {
            Ok(()) => tracing::info!(
                user = %call::Pii(user.to_string()),
                %peer,
                removed = bindings.len() - kept.len(),
                "WebSocket closed; its registrations removed"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot remove the registrations of a closed WebSocket"),
        }
    }

    /// Whether a connection from `peer` is open (a binding made over a
    /// WebSocket is reachable only while it is).
    pub(super) fn connection_open(&self, peer: SocketAddr) -> bool {
        lock(&self.tcp).contains_key(&peer)
    }

    /// Notes that `user` registered over the WebSocket from `peer`, so that
    /// the binding goes when the connection does. When the connection
    /// closed meanwhile, the binding is removed now.
    pub(super) async fn note_websocket_binding(&self, peer: SocketAddr, user: &str) {
        let open = {
            let conns = lock(&self.tcp);
            let mut ws = lock(&self.ws_bindings);
            let open = conns.contains_key(&peer);
            if open {
                ws.entry(peer).or_default().insert(user.to_ascii_lowercase());
            }
            open
        };
        if !open {
            self.drop_websocket_bindings(user, peer).await;
        }
    }
}

/// The frame for a SIP message we send: text when it is UTF-8.
fn frame(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::Text(text.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

/// After we sent a Close frame: gives the peer a moment to read it and
/// answer before the connection goes (closing a socket with unread input
/// resets it, and the peer would see no close code).
async fn linger(socket: &mut WebSocket) {
    tokio::time::sleep(LINGER / 4).await;
    let _ = tokio::time::timeout(LINGER, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
}

/// One SIP WebSocket connection, to its end; see the module docs.
async fn connection(
    core: Arc<Core>,
    mut socket: WebSocket,
    peer: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Vec<u8>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    tracing::debug!(%peer, via = transport.via(), "SIP WebSocket open");
    let mut tokens = RATE_BURST;
    let mut refilled = Instant::now();
    let mut last_heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(bytes) => {
                    if socket.send(frame(bytes)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            msg = socket.recv() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        // Over-long frames end here (tungstenite refuses them).
                        tracing::debug!(%peer, error = %e, "SIP WebSocket read failed; closing");
                        let _ = socket.send(close_frame(1009, "message too big or malformed frame")).await;
                        linger(&mut socket).await;
                        break;
                    }
                    None => break,
                };
                last_heard = tokio::time::Instant::now();
                let bytes: &[u8] = match &msg {
                    Message::Text(t) => t.as_bytes(),
                    Message::Binary(b) => b,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => break,
                };
                let now = Instant::now();
                tokens = (tokens + now.duration_since(refilled).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
                refilled = now;
                if tokens < 1.0 {
                    tracing::info!(%peer, "SIP WebSocket sends too fast; closing");
                    let _ = socket.send(close_frame(1008, "rate limited")).await;
                    linger(&mut socket).await;
                    break;
                }
                tokens -= 1.0;
                if !bytes.is_empty() && bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    // A keep-alive: a double CRLF is answered with one CRLF.
                    if bytes.len() >= 4 && socket.send(Message::Text("\r\n".into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                core.on_message(bytes, peer, transport);
                core.flush();
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE {
                    tracing::debug!(%peer, "SIP WebSocket idle; closing");
                    let _ = socket.send(close_frame(1000, "idle")).await;
                    break;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            },
        }
    }
    core.close_websocket(peer, &tx);
    tracing::debug!(%peer, "SIP WebSocket closed");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_sip_subprotocol_is_required() {
        assert!(asks_for_sip(&headers(&[("sec-websocket-protocol", "sip")])));
        assert!(asks_for_sip(&headers(&[("sec-websocket-protocol", "chat, SIP")])));
        assert!(asks_for_sip(&headers(&[
            ("sec-websocket-protocol", "chat"),
            ("sec-websocket-protocol", "sip")
        ])));
        assert!(!asks_for_sip(&headers(&[("sec-websocket-protocol", "sips, xsip")])));
        assert!(!asks_for_sip(&HeaderMap::new()));
    }

    #[test]
    fn origins_are_our_host_or_listed() {
        let none: Vec<String> = Vec::new();
        let host = ("host", "10.0.0.1:8080");
        assert!(origin_allowed(&headers(&[host]), &none), "no Origin: not a browser");
        assert!(origin_allowed(
            &headers(&[host, ("origin", "http://10.0.0.1:8080")]),
            &none
        ));
        assert!(!origin_allowed(
            &headers(&[host, ("origin", "https://evil.example")]),
            &none
        ));
        assert!(!origin_allowed(&headers(&[host, ("origin", "null")]), &none));
        let listed = vec!["https://phone.example.com/".to_string()];
        assert!(origin_allowed(
            &headers(&[host, ("origin", "https://PHONE.example.com")]),
            &listed
        ));
        assert!(!origin_allowed(
            &headers(&[host, ("origin", "https://phone.example.com.evil")]),
            &listed
        ));
        assert!(origin_allowed(
            &headers(&[host, ("origin", "https://any.example")]),
            &["*".to_string()]
        ));
    }

    #[test]
    fn messages_go_out_as_text_unless_binary() {
        assert!(matches!(
            frame(b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec()),
            Message::Text(_)
        ));
        assert!(matches!(frame(vec![0xff, 0x00]), Message::Binary(_)));
    }
}
