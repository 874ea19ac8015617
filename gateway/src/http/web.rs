//! The web client over HTTP: its pages and the signaling WebSocket.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /` | main page: conference id, then log in or join anonymously |
//! | `GET /c/{id}` | join screen for one conference; GET parameters `name`, `pin`, `mic`, `cam`, `autojoin`, `lang` |
//! | `GET /assets/{file}` | the client's CSS and JS modules (embedded in the binary) |
//! | `GET /account` | personal account: log in (any account type), then "Join conference" per membership |
//! | `GET /ws` | the signaling WebSocket ([`crate::listen::web`]) |
//! | `POST /api/session` | log in: JSON `{"user", "password"}`; sets the session cookie |
//! | `GET /api/session` | who the session cookie belongs to (401 when none) |
//! | `DELETE /api/session` | log out: forgets the session and clears the cookie |
//! | `GET /api/account/conferences` | the conferences the session's account owns, moderates or takes part in |
//!
//! ## Sessions
//!
//! A browser logs in with `POST /api/session` (the one path that sets the
//! cookie; the `/ws` `login` message authenticates only that WebSocket and
//! is meant for non-browser clients). The answer sets
//! `confgate_session=<128-bit random id, hex>; Path=/; HttpOnly;
//! SameSite=Strict` (plus `Secure` when the request came over HTTPS, which
//! the daemon learns from a reverse proxy's `X-Forwarded-Proto: https` or
//! `Forwarded: proto=https`). The id names an entry of the in-memory
//! [`SessionStore`] that expires after [`SESSION_TTL`] without use (each
//! use slides the expiry); a restart forgets every session. The `/ws`
//! upgrade looks the cookie up: a session that then joins "anonymously"
//! joins as the account. Failed logins go through
//! [`crate::calls::authenticate`] with the client's address, so the same
//! lock-out with back-off applies as on the WebSocket and SIP.
//!
//! The pages are plain HTML, CSS and JS modules from `gateway/assets/`,
//! compiled in with `include_str!`: no CDN, no build step, works offline.
//! The WebSocket upgrade is refused (403) when the browser's `Origin` is
//! not this server's own `Host`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use call::{EndReason, Protocol};
use serde::Deserialize;
use serde_json::json;

use crate::listen::web::{session, WebContext};
use crate::state::Shared;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const I18N_JS: &str = include_str!("../../assets/i18n.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// Content-Security-Policy of the pages: nothing from elsewhere.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   media-src 'self' blob:; frame-ancestors 'none'";

/// The web client's routes, with their state applied.
pub fn routes(shared: Shared, web: WebContext) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/c/{id}", get(join_page))
        .route("/account", get(account_page))
        .route("/assets/{file}", get(asset))
        .route("/ws", get(ws))
        .route(
            "/api/session",
            get(session_show)
                .post(session_login)
                .delete(session_logout)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_BODY)),
        )
        .route("/api/account/conferences", get(account_conferences))
        .with_state((shared, web))
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "confgate_session";
/// How long a session lives without use; every use starts it again.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; beyond, the one closest to expiry goes.
pub const MAX_SESSIONS: usize = 100_000;
/// Largest `POST /api/session` body.
const MAX_LOGIN_BODY: usize = 4096;

/// A session id: 128 random bits, hex in the cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a bearer credential: never in logs.
        f.write_str("SessionId(..)")
    }
}

impl SessionId {
    /// A fresh id from the operating system's random source.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(b)
    }

    /// The cookie value: 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a cookie value; `None` unless exactly 32 hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(b))
    }

    /// The session cookie in a request's `Cookie` headers, if well formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == SESSION_COOKIE)
            .and_then(|(_, v)| Self::parse(v.trim()))
    }
}

/// The account a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// The bare user name (lowercase).
    pub user: String,
    /// The full id, `user@server`.
    pub id: String,
    /// The account's display name.
    pub display_name: String,
}

#[derive(Debug)]
struct SessionEntry {
    user: WebUser,
    expires: Instant,
}

/// Logged-in browser sessions, in memory, each expiring after its time to
/// live without use.
#[derive(Debug)]
pub struct SessionStore {
    ttl: Duration,
    max: usize,
    sessions: Mutex<HashMap<SessionId, SessionEntry>>,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(SESSION_TTL, MAX_SESSIONS)
    }
}

impl SessionStore {
    /// A store whose sessions live `ttl` without use, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `user`.
    pub fn create(&self, user: WebUser, now: Instant) -> SessionId {
        let mut map = self.lock();
        map.retain(|_, e| e.expires > now);
        if map.len() >= self.max {
            if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        let id = loop {
            let id = SessionId::random();
            if !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(
            id,
            SessionEntry {
                user,
                expires: now + self.ttl,
            },
        );
        id
    }

    /// The session's account, sliding its expiry; `None` for an unknown or
    /// expired id (an expired one is forgotten).
    pub fn get(&self, id: &SessionId, now: Instant) -> Option<WebUser> {
        let mut map = self.lock();
        let e = map.get_mut(id)?;
        if e.expires <= now {
            map.remove(id);
            return None;
        }
        e.expires = now + self.ttl;
        Some(e.user.clone())
    }

    /// Forgets a session (logout); whether it existed.
    pub fn remove(&self, id: &SessionId) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Sessions held, expired ones included until the next [`Self::create`].
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the request reached the proxy in front of us over HTTPS
/// (`X-Forwarded-Proto: https`, or `proto=https` in RFC 7239 `Forwarded`).
/// The daemon itself serves plain HTTP.
pub fn request_is_https(headers: &HeaderMap) -> bool {
    let xfp = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let fwd = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto") && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    xfp || fwd
}

/// The `Set-Cookie` value: the session, or (`None`) one that clears it.
pub fn session_cookie(id: Option<&SessionId>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            id.to_hex(),
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The session's account, if the request carries a live session cookie.
fn session_user(web: &WebContext, headers: &HeaderMap) -> Option<WebUser> {
    let id = SessionId::from_headers(headers)?;
    web.sessions.get(&id, Instant::now())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginReq {
    user: String,
    password: String,
}

async fn session_login(
    State((shared, web)): State<(Shared, WebContext)>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginReq>, JsonRejection>,
) -> Response {
    if !origin_allowed(&headers) {
        shared.metrics.count_drop("web_bad_origin");
        return json_error(StatusCode::FORBIDDEN, "forbidden", "origin not allowed");
    }
    let Ok(Json(req)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"user\", \"password\"}",
        );
    };
    let user = req.user.trim();
    if user.is_empty()
        || user.len() > webrtc::signal::MAX_LOGIN_USER_LEN
        || req.password.is_empty()
        || req.password.len() > webrtc::signal::MAX_PASSWORD_LEN
    {
        return json_error(StatusCode::BAD_REQUEST, "bad_request", "user and password are required");
    }
    let party =
        match crate::calls::authenticate(&shared, user, &req.password, Protocol::WebRtc, Some(source.ip())).await {
            Ok(p) => p,
            Err(EndReason::LockedOut { retry_after_secs }) => {
                let mut r = json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many failed logins; try later",
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            Err(EndReason::Forbidden) => {
                return json_error(StatusCode::UNAUTHORIZED, "auth_failed", "wrong user or password")
            }
            Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "login failed"),
        };
    let Some(account) = party.account() else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "login failed");
    };
    let wu = WebUser {
        user: account.user().to_string(),
        id: account.to_string(),
        display_name: party.display_name.clone().unwrap_or_else(|| account.user().to_string()),
    };
    // A new login replaces the session the browser had.
    if let Some(old) = SessionId::from_headers(&headers) {
        web.sessions.remove(&old);
    }
    let id = web.sessions.create(wu.clone(), Instant::now());
    tracing::info!(user = %call::Pii(&wu.id), "web session started");
    let body = Json(json!({ "user": wu.id, "display_name": wu.display_name }));
    with_cookie(
        body.into_response(),
        &session_cookie(Some(&id), request_is_https(&headers)),
    )
}

async fn session_show(State((_, web)): State<(Shared, WebContext)>, headers: HeaderMap) -> Response {
    match session_user(&web, &headers) {
        Some(u) => with_cookie(
            Json(json!({ "user": u.id, "display_name": u.display_name })).into_response(),
            // Sliding: the cookie's own Max-Age starts again too.
            &session_cookie(SessionId::from_headers(&headers).as_ref(), request_is_https(&headers)),
        ),
        None => json_error(StatusCode::UNAUTHORIZED, "not_logged_in", "not logged in"),
    }
}

async fn session_logout(State((shared, web)): State<(Shared, WebContext)>, headers: HeaderMap) -> Response {
    if !origin_allowed(&headers) {
        shared.metrics.count_drop("web_bad_origin");
        return json_error(StatusCode::FORBIDDEN, "forbidden", "origin not allowed");
    }
    if let Some(id) = SessionId::from_headers(&headers) {
        web.sessions.remove(&id);
    }
    with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &session_cookie(None, request_is_https(&headers)),
    )
}

async fn account_conferences(State((shared, web)): State<(Shared, WebContext)>, headers: HeaderMap) -> Response {
    let Some(u) = session_user(&web, &headers) else {
        return json_error(StatusCode::UNAUTHORIZED, "not_logged_in", "not logged in");
    };
    let mut list = match shared.directory.conferences_of(&u.user).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "listing an account's conferences failed");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cannot list conferences");
        }
    };
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let out: Vec<_> = list
        .iter()
        .map(|c| {
            let role = if c.is_owner(&u.id) {
                "owner"
            } else if c.moderators.contains(&u.id) {
                "moderator"
            } else {
                "participant"
            };
            json!({ "id": c.id, "name": c.name, "role": role })
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "user": u.id, "display_name": u.display_name, "conferences": out })),
    )
        .into_response()
}

fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn index() -> Response {
    page()
}

async fn join_page(Path(_id): Path<String>) -> Response {
    // The page reads the id from its own path (and says so if it is bad).
    page()
}

async fn account_page() -> Response {
    page()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "i18n.js" => ("text/javascript; charset=utf-8", I18N_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    (
        [(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// Whether the browser's `Origin` (if any) names the host it asked for.
/// Non-browser clients send no `Origin` and are let through.
fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else { return false };
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    rest.trim_end_matches('/').eq_ignore_ascii_case(host)
}

async fn ws(
    State((shared, web)): State<(Shared, WebContext)>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers) {
        shared.metrics.count_drop("web_bad_origin");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let user = session_user(&web, &headers);
    upgrade
        .max_message_size(webrtc::signal::MAX_MESSAGE_LEN)
        .max_frame_size(webrtc::signal::MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| session(shared, web, socket, Some(source), user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().expect("origin"));
        }
        h
    }

    #[test]
    fn origin_must_be_our_host() {
        assert!(origin_allowed(&headers(None, "127.0.0.1:8080")));
        assert!(origin_allowed(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(!origin_allowed(&headers(Some("http://evil.example"), "127.0.0.1:8080")));
        assert!(!origin_allowed(&headers(Some("null"), "127.0.0.1:8080")));
    }

    fn alice() -> WebUser {
        WebUser {
            user: "alice".into(),
            id: "alice@web.test".into(),
            display_name: "Alice".into(),
        }
    }

    #[test]
    fn session_lives_while_used_and_expires_after_ttl() {
        let ttl = Duration::from_secs(100);
        let store = SessionStore::new(ttl, 10);
        let t0 = Instant::now();
        let id = store.create(alice(), t0);
        assert_eq!(store.get(&id, t0 + Duration::from_secs(60)), Some(alice()));
        // Sliding: the use at 60 s keeps it alive until 160 s.
        assert_eq!(store.get(&id, t0 + Duration::from_secs(150)), Some(alice()));
        // Unused for a whole ttl: gone, and forgotten.
        assert_eq!(store.get(&id, t0 + Duration::from_secs(250)), None);
        assert!(store.is_empty());
    }

    #[test]
    fn logout_forgets_the_session() {
        let store = SessionStore::default();
        let now = Instant::now();
        let id = store.create(alice(), now);
        let other = store.create(alice(), now);
        assert_ne!(id, other, "every login gets its own id");
        assert!(store.remove(&id));
        assert_eq!(store.get(&id, now), None);
        assert!(!store.remove(&id));
        assert_eq!(store.get(&other, now), Some(alice()), "other sessions stay");
    }

    #[test]
    fn unknown_or_malformed_cookie_is_no_session() {
        let store = SessionStore::default();
        let now = Instant::now();
        store.create(alice(), now);
        assert_eq!(store.get(&SessionId::random(), now), None);
        for bad in [
            "",
            "zz",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdefg",
            "0123456789abcdef0123456789abcdeg",
            "é123456789abcdef0123456789abcde",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; confgate_session=nothex; c=d".parse().expect("cookie"),
        );
        assert_eq!(SessionId::from_headers(&h), None);
    }

    #[test]
    fn cookie_round_trips_through_headers() {
        let id = SessionId::random();
        let hex = id.to_hex();
        assert_eq!(hex.len(), 32, "128 bits");
        assert_eq!(SessionId::parse(&hex), Some(id));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "theme=dark".parse().expect("cookie"));
        h.append(
            header::COOKIE,
            format!("x=1; {SESSION_COOKIE}={hex}; y=2").parse().expect("cookie"),
        );
        assert_eq!(SessionId::from_headers(&h), Some(id));
        assert!(!format!("{id:?}").contains(&hex), "ids stay out of logs");
    }

    #[test]
    fn full_store_drops_the_session_closest_to_expiry() {
        let store = SessionStore::new(Duration::from_secs(100), 2);
        let t0 = Instant::now();
        let a = store.create(alice(), t0);
        let b = store.create(alice(), t0 + Duration::from_secs(1));
        let c = store.create(alice(), t0 + Duration::from_secs(2));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(store.len(), 2);
        assert_eq!(store.get(&a, now), None);
        assert!(store.get(&b, now).is_some() && store.get(&c, now).is_some());
    }

    #[test]
    fn cookie_attributes() {
        let id = SessionId::random();
        let set = session_cookie(Some(&id), false);
        assert!(set.starts_with(&format!("{SESSION_COOKIE}={}; ", id.to_hex())), "{set}");
        for attr in ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
            assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: no Secure: {set}");
        assert!(session_cookie(Some(&id), true).ends_with("; Secure"));
        let clear = session_cookie(None, false);
        assert!(
            clear.starts_with(&format!("{SESSION_COOKIE}=; ")) && clear.contains("Max-Age=0"),
            "{clear}"
        );
        assert!(clear.contains("HttpOnly") && clear.contains("SameSite=Strict"));
    }

    #[test]
    fn https_is_learnt_from_the_proxy() {
        let mut h = HeaderMap::new();
        assert!(!request_is_https(&h));
        h.insert("x-forwarded-proto", "https".parse().expect("h"));
        assert!(request_is_https(&h));
        h.insert("x-forwarded-proto", "http".parse().expect("h"));
        assert!(!request_is_https(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            "for=192.0.2.60;proto=HTTPS;by=203.0.113.43".parse().expect("h"),
        );
        assert!(request_is_https(&h));
        h.insert(header::FORWARDED, "for=192.0.2.60;proto=http".parse().expect("h"));
        assert!(!request_is_https(&h));
    }
}
