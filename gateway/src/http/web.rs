//! The web client over HTTP: its pages and the signaling WebSocket.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /` | main page: conference id, then log in or join anonymously |
//! | `GET /c/{id}` | join screen for one conference; GET parameters `name`, `pin`, `mic`, `cam`, `autojoin`, `lang` |
//! | `GET /assets/{file}` | the client's CSS and JS modules (embedded in the binary) |
//! | `GET /ws` | the signaling WebSocket ([`crate::listen::web`]) |
//!
//! The pages are plain HTML, CSS and JS modules from `gateway/assets/`,
//! compiled in with `include_str!`: no CDN, no build step, works offline.
//! The WebSocket upgrade is refused (403) when the browser's `Origin` is
//! not this server's own `Host`.

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

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
        .route("/assets/{file}", get(asset))
        .route("/ws", get(ws))
        .with_state((shared, web))
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
    upgrade
        .max_message_size(webrtc::signal::MAX_MESSAGE_LEN)
        .max_frame_size(webrtc::signal::MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| session(shared, web, socket, Some(source)))
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
}
