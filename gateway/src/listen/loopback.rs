//! The loopback listener: a unix stream socket where local programs join
//! conferences (protocol in the `confgate-loopback` crate docs).
//!
//! One task per connection drives a [`loopback::ServerSession`]: it reads
//! frames, asks the router, enters the room, and relays audio and room
//! events until either side hangs up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use call::{EndReason, Party, Protocol};
use loopback::{
    encode_audio, encode_message, ClientMessage, Frame, FrameDecoder, ParticipantInfo, ServerMessage, ServerSession,
    AUDIO_FRAME_SAMPLES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::calls;
use crate::conference::{Membership, ModeratorAction, ParticipantView, RoomEvent, RoomNotice};
use crate::state::Shared;

/// Longest wait for the client's `hello` and `join`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a PIN after `pin_required`.
const PIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds the socket. A stale socket file (nobody listening) is replaced; a
/// live one is an error naming the path.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by another process", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

/// Accepts connections until `stop` turns true, then removes the socket
/// file. Sessions get the stop signal too and hang up properly.
pub async fn serve(listener: UnixListener, path: PathBuf, shared: Shared, stop: watch::Receiver<bool>) {
    let mut stop_accept = stop.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        shared.metrics.loopback_sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Session::new(stream, shared.clone(), stop).run().await;
                        shared.metrics.loopback_sessions.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loopback accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop_accept.changed() => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

struct Session {
    stream: UnixStream,
    shared: Shared,
    stop: watch::Receiver<bool>,
    proto: ServerSession,
    decoder: FrameDecoder,
    out: Vec<u8>,
    audio: [i16; AUDIO_FRAME_SAMPLES],
    read_buf: Vec<u8>,
}

/// How a session ends.
enum Done {
    /// Say this and close.
    Send(ServerMessage),
    /// Just close.
    Close,
}

fn refused(reason: EndReason) -> Done {
    Done::Send(ServerMessage::Refused {
        reason: reason.code().into(),
        message: reason.to_string(),
    })
}

impl Session {
    fn new(stream: UnixStream, shared: Shared, stop: watch::Receiver<bool>) -> Self {
        Self {
            stream,
            shared,
            stop,
            proto: ServerSession::new(),
            decoder: FrameDecoder::new(),
            out: Vec::with_capacity(4096),
            audio: [0; AUDIO_FRAME_SAMPLES],
            read_buf: vec![0; 16 * 1024],
        }
    }

    async fn run(mut self) {
        let done = match self.handshake().await {
            Ok(membership) => self.in_conference(membership).await,
            Err(done) => done,
        };
        if let Done::Send(msg) = done {
            self.out.clear();
            encode_message(&msg, &mut self.out);
            let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.write_all(&self.out)).await;
        }
        self.proto.on_closed();
        let _ = self.stream.shutdown().await;
    }

    async fn send(&mut self, msg: &ServerMessage) -> Result<(), Done> {
        self.out.clear();
        encode_message(msg, &mut self.out);
        self.stream.write_all(&self.out).await.map_err(|_| Done::Close)
    }

    /// Reads until the next control message (audio before admission is discarded).
    async fn next_control(&mut self, timeout: Duration) -> Result<ClientMessage, Done> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.decoder.next_frame(&mut self.audio) {
                Ok(Some(Frame::Control(text))) => {
                    return self.proto.handle_control(&text).map_err(|e| {
                        Done::Send(ServerMessage::Error {
                            code: e.code().into(),
                            message: e.to_string(),
                        })
                    });
                }
                Ok(Some(Frame::Audio)) => {
                    self.shared.metrics.count_drop("audio_not_admitted");
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.shared.metrics.count_drop("loopback_bad_frame");
                    return Err(Done::Send(ServerMessage::Error {
                        code: e.code().into(),
                        message: e.to_string(),
                    }));
                }
            }
            let mut stop = self.stop.clone();
            let n = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.stream.read(&mut self.read_buf)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) => return Err(Done::Close),
                    Ok(Ok(n)) => n,
                    Err(_) => return Err(refused(EndReason::Timeout)),
                },
                _ = stop.changed() => return Err(refused(EndReason::ServerShutdown)),
            };
            self.decoder.extend(&self.read_buf[..n]);
        }
    }

    async fn handshake(&mut self) -> Result<Membership, Done> {
        match self.next_control(HANDSHAKE_TIMEOUT).await? {
            ClientMessage::Hello { .. } => {}
            _ => return Err(Done::Close),
        }
        let server = self.shared.directory.server().to_string();
        self.send(&ServerMessage::Welcome {
            version: loopback::PROTOCOL_VERSION,
            server,
        })
        .await?;
        let ClientMessage::Join {
            conference,
            display_name,
            user,
            password,
            pin,
        } = self.next_control(HANDSHAKE_TIMEOUT).await?
        else {
            return Err(Done::Close);
        };
        let party = match (&user, &password) {
            (Some(user), Some(password)) => calls::authenticate(&self.shared, user, password, Protocol::Loopback, None)
                .await
                .map_err(refused)?,
            (Some(_), None) => {
                return Err(Done::Send(ServerMessage::Error {
                    code: "bad_message".into(),
                    message: "'user' needs 'password'".into(),
                }))
            }
            (None, _) => {
                let name = display_name.as_deref().map(str::trim).unwrap_or("");
                if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
                    return Err(Done::Send(ServerMessage::Error {
                        code: "bad_message".into(),
                        message: "an anonymous join needs 'display_name': 1 to 128 characters, no control characters"
                            .into(),
                    }));
                }
                Party::anonymous(name, Protocol::Loopback)
            }
        };
        let mut party = party;
        if let (Some(name), Some(_)) = (display_name.as_deref().map(str::trim).filter(|n| !n.is_empty()), &user) {
            party.display_name = Some(name.chars().take(128).collect());
        }
        let dialed = format!("\\c\\{}", conference.trim());
        let shared = self.shared.clone();
        calls::join_conference(&shared, party, &dialed, pin, None, &mut AskPin(self))
            .await
            .map_err(refused)
    }

    async fn ask_pin(&mut self, attempts_left: u32, wrong: bool) -> Result<(), Done> {
        self.proto.on_pin_required();
        self.send(&ServerMessage::PinRequired { attempts_left, wrong }).await
    }

    async fn in_conference(&mut self, mut m: Membership) -> Done {
        let done = self.relay(&mut m).await;
        m.leave().await;
        done
    }

    async fn relay(&mut self, m: &mut Membership) -> Done {
        let mut stop = self.stop.clone();
        loop {
            // Handle whatever whole frames are buffered before reading more.
            loop {
                match self.decoder.next_frame(&mut self.audio) {
                    Ok(Some(Frame::Audio)) => {
                        if self.proto.accepts_audio() && m.audio_in.try_send((m.id, self.audio)).is_err() {
                            self.shared.metrics.count_drop("room_queue_full");
                        }
                    }
                    Ok(Some(Frame::Control(text))) => match self.proto.handle_control(&text) {
                        Ok(ClientMessage::Leave) => return Done::Close,
                        Ok(request) => {
                            if let Some(reply) = self.moderator_request(m, request).await {
                                if self.send(&reply).await.is_err() {
                                    return Done::Close;
                                }
                            }
                        }
                        Err(e) => {
                            return Done::Send(ServerMessage::Error {
                                code: e.code().into(),
                                message: e.to_string(),
                            })
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        self.shared.metrics.count_drop("loopback_bad_frame");
                        return Done::Send(ServerMessage::Error {
                            code: e.code().into(),
                            message: e.to_string(),
                        });
                    }
                }
            }
            tokio::select! {
                r = self.stream.read(&mut self.read_buf) => match r {
                    Ok(0) | Err(_) => return Done::Close,
                    Ok(n) => self.decoder.extend(&self.read_buf[..n]),
                },
                Some(heard) = m.audio_out.recv() => {
                    self.out.clear();
                    encode_audio(&heard.frame, &mut self.out);
                    if self.stream.write_all(&self.out).await.is_err() {
                        return Done::Close;
                    }
                }
                ev = m.events.recv() => {
                    let Some(ev) = ev else { return refused(EndReason::ConferenceEnded) };
                    let (msg, last) = self.event_message(&m.conference, m.id.0, ev);
                    if let Some(msg) = msg {
                        if last {
                            return Done::Send(msg);
                        }
                        if self.send(&msg).await.is_err() {
                            return Done::Close;
                        }
                    }
                }
                _ = stop.changed() => {
                    return Done::Send(ServerMessage::Ended { reason: EndReason::ServerShutdown.code().into() });
                }
            }
        }
    }

    /// Carries out a moderator request; returns `denied` when refused.
    async fn moderator_request(&mut self, m: &Membership, req: ClientMessage) -> Option<ServerMessage> {
        let kind = req.kind();
        let confs = &self.shared.conferences;
        let me = Some(m.id);
        let act = |p: u64| call::ParticipantId(p);
        let r = match req {
            ClientMessage::Admit { participant } => {
                confs
                    .moderate_as(&m.conference, me, act(participant), ModeratorAction::Admit)
                    .await
            }
            ClientMessage::Reject { participant } => {
                confs
                    .moderate_as(&m.conference, me, act(participant), ModeratorAction::Reject)
                    .await
            }
            // Anyone may mute or unmute themselves.
            ClientMessage::Mute { participant, muted } => {
                let actor = if participant == m.id.0 { None } else { me };
                confs
                    .moderate_as(&m.conference, actor, act(participant), ModeratorAction::Mute(muted))
                    .await
            }
            ClientMessage::StopVideo { participant, stopped } => {
                confs
                    .moderate_as(&m.conference, me, act(participant), ModeratorAction::StopVideo(stopped))
                    .await
            }
            ClientMessage::Remove { participant } => {
                confs
                    .moderate_as(&m.conference, me, act(participant), ModeratorAction::Remove)
                    .await
            }
            ClientMessage::MakeModerator { participant } => {
                confs
                    .moderate_as(&m.conference, me, act(participant), ModeratorAction::MakeModerator)
                    .await
            }
            ClientMessage::Lock { locked } => confs.lock(&m.conference, me, locked).await,
            ClientMessage::EndConference => {
                match confs.participants(&m.conference).await.iter().find(|p| p.id == m.id.0) {
                    Some(p) if p.role == "moderator" || p.role == "owner" => {
                        confs.end(&m.conference, EndReason::ConferenceEnded).await;
                        Ok(())
                    }
                    _ => Err(crate::conference::ModerationError::NotModerator),
                }
            }
            _ => return None,
        };
        r.err().map(|e| ServerMessage::Denied {
            action: kind.into(),
            reason: e.to_string(),
        })
    }

    /// The message for a room event, and whether it ends the session.
    fn event_message(&mut self, conference: &str, me: u64, ev: RoomEvent) -> (Option<ServerMessage>, bool) {
        match ev {
            RoomEvent::Joined(role) => {
                self.proto.on_joined();
                (
                    Some(ServerMessage::Joined {
                        conference: conference.to_string(),
                        participant: me,
                        role: role.as_str().into(),
                    }),
                    false,
                )
            }
            RoomEvent::Lobby(timeout) => {
                self.proto.on_lobby();
                (
                    Some(ServerMessage::Lobby {
                        timeout_secs: timeout.as_secs(),
                    }),
                    false,
                )
            }
            RoomEvent::Admitted => (Some(ServerMessage::Admitted), false),
            RoomEvent::Participants(list) => (
                Some(ServerMessage::Participants {
                    participants: list.into_iter().map(info).collect(),
                }),
                false,
            ),
            RoomEvent::Speaking(p) => (Some(ServerMessage::Speaking { participant: p }), false),
            RoomEvent::Removed(reason) if matches!(reason, EndReason::LobbyRejected | EndReason::LobbyTimeout) => (
                Some(ServerMessage::Refused {
                    reason: reason.code().into(),
                    message: reason.to_string(),
                }),
                true,
            ),
            RoomEvent::Removed(reason) => (
                Some(ServerMessage::Kicked {
                    reason: reason.code().into(),
                }),
                true,
            ),
            RoomEvent::Notice(n) => {
                let msg = match n {
                    RoomNotice::Joined(v) => ServerMessage::ParticipantJoined { participant: info(v) },
                    RoomNotice::Left(id) => ServerMessage::ParticipantLeft { participant: id },
                    RoomNotice::Muted { id, muted } => ServerMessage::Muted { participant: id, muted },
                    RoomNotice::VideoStopped { id, stopped } => ServerMessage::VideoStopped {
                        participant: id,
                        stopped,
                    },
                    RoomNotice::RoleChanged { id, role } => ServerMessage::RoleChanged {
                        participant: id,
                        role: role.as_str().into(),
                    },
                    RoomNotice::LobbyQueue(q) => ServerMessage::LobbyQueue {
                        waiting: q.into_iter().map(info).collect(),
                    },
                    RoomNotice::Locked(locked) => ServerMessage::Locked { locked },
                    // The loopback protocol has no chat message.
                    RoomNotice::Chat { .. } => return (None, false),
                };
                (Some(msg), false)
            }
            RoomEvent::Ended(reason) => (
                Some(ServerMessage::Ended {
                    reason: reason.code().into(),
                }),
                true,
            ),
            // Loopback endpoints carry audio only.
            RoomEvent::VideoSources(_) => (None, false),
        }
    }
}

fn info(v: ParticipantView) -> ParticipantInfo {
    ParticipantInfo {
        id: v.id,
        display_name: v.display_name,
        account: v.account,
        role: v.role.into(),
        protocol: v.protocol,
        muted: v.muted,
        in_lobby: v.in_lobby,
    }
}

/// PIN entry over the loopback protocol: a `pin_required` message, answered
/// by a `pin` message.
struct AskPin<'a>(&'a mut Session);

impl calls::PinPrompt for AskPin<'_> {
    async fn ask(&mut self, attempts_left: u32, wrong: bool) -> Option<String> {
        self.0.ask_pin(attempts_left, wrong).await.ok()?;
        match self.0.next_control(PIN_TIMEOUT).await {
            Ok(ClientMessage::Pin { pin }) => Some(pin),
            _ => None,
        }
    }
}
