//! The HTTP listener: health, metrics and the admin REST API (`/api/v1/`).
//!
//! The admin API takes and returns JSON and needs `Authorization: Bearer
//! <token>` (`confgate admin token` prints it). Errors are JSON objects
//! `{"error": "...", "field": "..."}` naming the field and the rule, with
//! 400 (bad input), 401 (no or wrong token), 404 (no such object) or 409
//! (exists already). Nothing is written when a request is refused.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /healthz` | 200 `ok` |
//! | `GET /metrics` | Prometheus text |
//! | `GET, POST /api/v1/users` | list, add |
//! | `GET, PATCH, DELETE /api/v1/users/{user}` | show, change, remove |
//! | `GET, POST /api/v1/users/{user}/address-book` | list, add an entry |
//! | `DELETE /api/v1/users/{user}/address-book/{target}` | remove an entry |
//! | `GET, POST /api/v1/conferences` | list, add |
//! | `GET, PATCH, DELETE /api/v1/conferences/{id}` | show, change, remove |
//! | `GET /api/v1/conferences/{id}/participants` | who is in it now (and in its lobby) |
//! | `POST /api/v1/conferences/{id}/participants/{pid}/{admit,reject,mute,unmute,remove,make-moderator,stop-video,allow-video}` | moderator actions |
//! | `POST /api/v1/conferences/{id}/end` | end the running conference |
//! | `POST /api/v1/conferences/{id}/lock`, `.../unlock` | no new guests or participants (moderators still get in) |
//!
//! The web client's pages and its WebSocket are in [`web`]; SIP over
//! WebSocket (`GET /sip`) in [`crate::listen::sip::ws`].

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

pub mod web;

use crate::conference::{ModerationError, ModeratorAction};
use crate::directory::{AccountPatch, AccountType, ConferencePatch, ConferenceSpec, DirectoryError, NewAccount};
use crate::state::Shared;

/// An API error: status, message and the field it is about.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match &e {
            DirectoryError::Invalid { field, .. } => Self::bad(*field, e.to_string()),
            DirectoryError::NotFound { .. } => Self {
                status: StatusCode::NOT_FOUND,
                field: None,
                message: e.to_string(),
            },
            DirectoryError::Conflict { .. } => Self {
                status: StatusCode::CONFLICT,
                field: None,
                message: e.to_string(),
            },
            _ => {
                tracing::error!(error = %e, "directory failure");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    field: None,
                    message: "internal error".into(),
                }
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body; an error names the field that was wrong.
fn parse<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad("body", "a JSON object is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        // serde names unknown fields in its message; make it the field.
        let field = match (path.as_str(), msg.strip_prefix("unknown field `")) {
            (".", Some(rest)) => rest.split('`').next().unwrap_or("body").to_string(),
            (".", None) => "body".to_string(),
            (p, _) => p.to_string(),
        };
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ApiError::bad(field, msg)
    })
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value, `None` when absent.
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The HTTP routes with the web client's pages and WebSocket ([`web`]),
/// and the SIP WebSocket (`/sip`, [`crate::listen::sip::ws`]).
pub fn router_with_web(
    shared: Shared,
    web_ctx: crate::listen::web::WebContext,
    sip_ws: crate::listen::sip::ws::WsTransport,
) -> Router {
    router(shared.clone())
        .merge(web::routes(shared.clone(), web_ctx))
        .merge(crate::listen::sip::ws::routes(shared, sip_ws))
}

/// The HTTP routes.
pub fn router(shared: Shared) -> Router {
    let max_body = shared.config().http.max_body_bytes;
    let api = Router::new()
        .route("/users", get(list_users).post(add_user))
        .route("/users/{user}", get(show_user).patch(patch_user).delete(remove_user))
        .route("/users/{user}/address-book", get(list_book).post(add_book))
        .route(
            "/users/{user}/address-book/{target}",
            axum::routing::delete(remove_book),
        )
        .route("/conferences", get(list_confs).post(add_conf))
        .route(
            "/conferences/{id}",
            get(show_conf).patch(patch_conf).delete(remove_conf),
        )
        .route("/conferences/{id}/participants", get(live_participants))
        .route("/conferences/{id}/participants/{pid}/{action}", post(moderate))
        .route("/conferences/{id}/end", post(end_conf))
        .route("/conferences/{id}/lock", post(lock_conf))
        .route("/conferences/{id}/unlock", post(unlock_conf))
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

async fn require_token(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = match presented {
        Some(t) if !t.is_empty() => shared.directory.check_admin_token(t).await.unwrap_or(false),
        _ => false,
    };
    if !ok {
        shared
            .metrics
            .api_unauthorized
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            field: Some("Authorization".into()),
            message: "a valid 'Authorization: Bearer <token>' header is required (see 'confgate admin token')".into(),
        }
        .into_response();
    }
    next.run(req).await
}

async fn api_not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        field: None,
        message: "no such API endpoint".into(),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserReq {
    user: String,
    #[serde(rename = "type", default)]
    account_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUserReq {
    #[serde(rename = "type", default)]
    account_type: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn account_type(t: Option<&str>) -> ApiResult<Option<AccountType>> {
    t.map(|t| t.parse::<AccountType>().map_err(ApiError::from)).transpose()
}

async fn list_users(State(s): State<Shared>) -> ApiResult<Response> {
    Ok(Json(s.directory.list_accounts().await?).into_response())
}

async fn add_user(State(s): State<Shared>, body: Bytes) -> ApiResult<Response> {
    let req: NewUserReq = parse(&body)?;
    let a = s
        .directory
        .add_account(NewAccount {
            user: req.user,
            account_type: account_type(req.account_type.as_deref())?.unwrap_or(AccountType::Ws),
            display_name: req.display_name.unwrap_or_default(),
            password: req.password,
        })
        .await?;
    tracing::info!(user = %a.id, "account added over the API");
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

async fn show_user(State(s): State<Shared>, Path(user): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.directory.get_account(&user).await?).into_response())
}

async fn patch_user(State(s): State<Shared>, Path(user): Path<String>, body: Bytes) -> ApiResult<Response> {
    let req: PatchUserReq = parse(&body)?;
    let patch = AccountPatch {
        account_type: account_type(req.account_type.as_deref())?,
        display_name: req.display_name,
        password: req.password,
    };
    Ok(Json(s.directory.update_account(&user, patch).await?).into_response())
}

async fn remove_user(State(s): State<Shared>, Path(user): Path<String>) -> ApiResult<StatusCode> {
    s.directory.remove_account(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookReq {
    target: String,
    #[serde(default)]
    display_name: Option<String>,
}

async fn list_book(State(s): State<Shared>, Path(user): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.directory.address_book(&user).await?).into_response())
}

async fn add_book(State(s): State<Shared>, Path(user): Path<String>, body: Bytes) -> ApiResult<Response> {
    let req: BookReq = parse(&body)?;
    let e = s
        .directory
        .address_book_add(&user, &req.target, req.display_name.as_deref().unwrap_or(""))
        .await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

async fn remove_book(State(s): State<Shared>, Path((user, target)): Path<(String, String)>) -> ApiResult<StatusCode> {
    s.directory.address_book_remove(&user, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfReq {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    closed: Option<bool>,
    #[serde(default)]
    allow_anonymous: Option<bool>,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default)]
    lobby: Option<bool>,
    #[serde(default)]
    chat: Option<bool>,
    #[serde(default)]
    max_participants: Option<u32>,
    #[serde(default)]
    permanent: Option<bool>,
    #[serde(default)]
    moderators: Option<Vec<String>>,
    #[serde(default)]
    participants: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfPatchReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "double")]
    owner: Option<Option<String>>,
    #[serde(default)]
    closed: Option<bool>,
    #[serde(default)]
    allow_anonymous: Option<bool>,
    #[serde(default, deserialize_with = "double")]
    pin: Option<Option<String>>,
    #[serde(default)]
    lobby: Option<bool>,
    #[serde(default)]
    chat: Option<bool>,
    #[serde(default)]
    max_participants: Option<u32>,
    #[serde(default)]
    permanent: Option<bool>,
    #[serde(default)]
    moderators: Option<Vec<String>>,
    #[serde(default)]
    participants: Option<Vec<String>>,
}

async fn list_confs(State(s): State<Shared>) -> ApiResult<Response> {
    Ok(Json(s.directory.list_conferences().await?).into_response())
}

async fn add_conf(State(s): State<Shared>, body: Bytes) -> ApiResult<Response> {
    let r: ConfReq = parse(&body)?;
    let mut spec = ConferenceSpec::new(&r.id);
    spec.name = r.name.unwrap_or_default();
    spec.owner = r.owner;
    spec.closed = r.closed.unwrap_or(spec.closed);
    spec.allow_anonymous = r.allow_anonymous.unwrap_or(spec.allow_anonymous);
    spec.pin = r.pin;
    spec.lobby = r.lobby.unwrap_or(spec.lobby);
    spec.chat = r.chat.unwrap_or(spec.chat);
    spec.max_participants = r.max_participants.unwrap_or(spec.max_participants);
    spec.permanent = r.permanent.unwrap_or(spec.permanent);
    spec.moderators = r.moderators.unwrap_or_default();
    spec.participants = r.participants.unwrap_or_default();
    let c = s.directory.add_conference(spec).await?;
    tracing::info!(conf = %c.id, "conference added over the API");
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

async fn show_conf(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(s.directory.get_conference(&id).await?).into_response())
}

async fn patch_conf(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let r: ConfPatchReq = parse(&body)?;
    let patch = ConferencePatch {
        name: r.name,
        owner: r.owner,
        closed: r.closed,
        allow_anonymous: r.allow_anonymous,
        pin: r.pin,
        lobby: r.lobby,
        chat: r.chat,
        max_participants: r.max_participants,
        permanent: r.permanent,
        moderators: r.moderators,
        participants: r.participants,
    };
    Ok(Json(s.directory.update_conference(&id, patch).await?).into_response())
}

async fn remove_conf(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let conf = s.directory.get_conference(&id).await?;
    s.directory.remove_conference(&conf.id).await?;
    s.conferences.end(&conf.id, call::EndReason::ConferenceEnded).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn live_participants(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let conf = s.directory.get_conference(&id).await?;
    let list = s.conferences.participants(&conf.id).await;
    let live = s.conferences.live(&conf.id);
    Ok(Json(json!({
        "conference": conf.id,
        "running": live.running || conf.permanent,
        "participants": list.iter().filter(|p| !p.in_lobby).collect::<Vec<_>>(),
        "lobby": list.iter().filter(|p| p.in_lobby).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn moderate(
    State(s): State<Shared>,
    Path((id, pid, action)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let conf = s.directory.get_conference(&id).await?;
    let pid: u64 = pid
        .parse()
        .map_err(|_| ApiError::bad("participant", format!("'{pid}' is not a participant id")))?;
    let action = match action.as_str() {
        "admit" => ModeratorAction::Admit,
        "reject" => ModeratorAction::Reject,
        "mute" => ModeratorAction::Mute(true),
        "unmute" => ModeratorAction::Mute(false),
        "remove" => ModeratorAction::Remove,
        "make-moderator" => ModeratorAction::MakeModerator,
        "stop-video" => ModeratorAction::StopVideo(true),
        "allow-video" => ModeratorAction::StopVideo(false),
        other => {
            return Err(ApiError::bad(
                "action",
                format!(
                    "'{other}' is not an action: use admit, reject, mute, unmute, remove, make-moderator, stop-video or allow-video"
                ),
            ))
        }
    };
    s.conferences
        .moderate(&conf.id, call::ParticipantId(pid), action)
        .await
        .map_err(|e| match e {
            ModerationError::NotInLobby(_) => ApiError {
                status: StatusCode::CONFLICT,
                field: None,
                message: e.to_string(),
            },
            _ => ApiError {
                status: StatusCode::NOT_FOUND,
                field: None,
                message: e.to_string(),
            },
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn end_conf(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let conf = s.directory.get_conference(&id).await?;
    if s.conferences.end(&conf.id, call::EndReason::ConferenceEnded).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError {
            status: StatusCode::CONFLICT,
            field: None,
            message: format!("conference '{}' is not running", conf.id),
        })
    }
}

async fn lock_conf(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    set_lock(s, id, true).await
}

async fn unlock_conf(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    set_lock(s, id, false).await
}

async fn set_lock(s: Shared, id: String, locked: bool) -> ApiResult<StatusCode> {
    let conf = s.directory.get_conference(&id).await?;
    s.conferences.lock(&conf.id, None, locked).await.map_err(|e| ApiError {
        status: StatusCode::CONFLICT,
        field: None,
        message: e.to_string(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}
