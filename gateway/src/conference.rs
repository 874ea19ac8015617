//! Room control: running conferences, their participants, the lobby, and
//! the audio each participant hears.
//!
//! Each running conference is one tokio task (a *room*) that owns its
//! participant list and a [`mixer::Mixer`]. Drivers (loopback today; SIP,
//! web and H.323 plug into the same interface) call [`Conferences::enter`]
//! after the router has decided admission, and get a [`Membership`]: a
//! sender for the participant's audio and receivers for what it hears and
//! for room events. Dropping the membership's channels (or calling
//! [`Membership::leave`]) leaves the room.
//!
//! A room runs while someone is in it (or waiting in its lobby); the last
//! one out ends the task. It ticks the mixer every 20 ms only while audio
//! arrives: a room with no media does no work.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use call::{EndReason, ParticipantId, Party};
use mixer::{Frame, InputId, Mixer, MixerConfig, FRAME_SAMPLES};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::router::{LiveState, Role};

/// How a participant is to enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Straight in with this role.
    Admit(Role),
    /// Into the lobby, to wait for a moderator.
    Lobby,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParticipantView {
    /// Id within the server.
    pub id: u64,
    /// Name to show.
    pub display_name: String,
    /// Account id, absent for anonymous guests.
    pub account: Option<String>,
    /// Role name.
    pub role: &'static str,
    /// Protocol name.
    pub protocol: String,
    /// Audio muted by a moderator or by themselves.
    pub muted: bool,
    /// Video stopped by a moderator.
    pub video_stopped: bool,
    /// Waiting in the lobby rather than in the conference.
    pub in_lobby: bool,
}

/// What the room tells one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// Now in the conference with this role.
    Joined(Role),
    /// Waiting in the lobby; the wait ends after this long.
    Lobby(Duration),
    /// A moderator admitted us from the lobby (a `Joined` follows).
    Admitted,
    /// Everyone in the conference now (lobby excluded).
    Participants(Vec<ParticipantView>),
    /// The active speaker changed.
    Speaking(Option<u64>),
    /// Removed: kicked, lobby rejected or timed out.
    Removed(EndReason),
    /// The conference ended.
    Ended(EndReason),
    /// Something happened in the room.
    Notice(RoomNotice),
    /// The video streams this participant gets now (many-stream receivers:
    /// browsers), whenever the set changes.
    VideoSources(Vec<crate::video::VideoSource>),
}

/// What a participant hears in one 20 ms tick.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The audio.
    pub frame: Frame,
    /// Set when this is the room's shared mix of a tick: the same frame for
    /// every participant who is not speaking and hears no prompt, so that
    /// legs which encode it (RTP legs) encode it once per codec for all of
    /// them ([`crate::media::SharedEncoders`]).
    pub shared: Option<SharedMix>,
}

/// The room's shared mix of one tick and the encoders that serve it.
#[derive(Debug, Clone)]
pub struct SharedMix {
    /// The tick's number in this room.
    pub tick: u64,
    /// The room's shared encoders.
    pub encoders: crate::media::SharedEncoders,
}

/// A participant's handle on its room.
#[derive(Debug)]
pub struct Membership {
    /// The participant's id.
    pub id: ParticipantId,
    /// The conference id.
    pub conference: String,
    /// Send what the participant says (20 ms frames). Frames sent while in
    /// the lobby are discarded.
    pub audio_in: mpsc::Sender<(ParticipantId, Frame)>,
    /// What the participant hears.
    pub audio_out: mpsc::Receiver<Heard>,
    /// Room events.
    pub events: mpsc::Receiver<RoomEvent>,
    control: mpsc::Sender<RoomCmd>,
}

impl Membership {
    /// Leaves the room.
    pub async fn leave(&self) {
        let _ = self.control.send(RoomCmd::Leave(self.id)).await;
    }

    /// Says a chat line to everyone admitted (the sender included, so that
    /// every one sees the lines in the same order). Lines from the lobby are
    /// dropped; the text is cut at [`MAX_CHAT_CHARS`]. Whether the
    /// conference allows chat is the driver's check (the directory's
    /// `chat` setting).
    pub async fn chat(&self, text: String) {
        let _ = self.control.send(RoomCmd::Chat(self.id, text)).await;
    }

    /// The participant's media came back on a new path (an ICE restart):
    /// every stream it gets and the ones it sends start again with a
    /// keyframe.
    pub async fn refresh_video(&self) {
        let _ = self.control.send(RoomCmd::VideoRefresh(self.id)).await;
    }

    /// Sets the participant's video as its driver negotiated it (`None`:
    /// no video). Only for admitted participants; the room routes it from
    /// then on ([`crate::video::RoomVideo`]).
    pub async fn set_video(&self, leg: Option<crate::video::VideoLeg>) {
        let _ = self.control.send(RoomCmd::Video(self.id, leg)).await;
    }

    /// From now on, `hook` hears of every keyframe the room asks of the
    /// participant's video (besides the relay's RTCP PLI): for drivers
    /// whose endpoints take keyframe requests another way (H.323's
    /// VideoFastUpdatePicture).
    pub async fn on_keyframe_request(&self, hook: mpsc::UnboundedSender<()>) {
        let _ = self.control.send(RoomCmd::KeyframeHook(self.id, hook)).await;
    }

    /// The participant asks for a keyframe of the video it receives (an
    /// H.323 VideoFastUpdatePicture): its current sources are asked.
    pub async fn request_keyframe(&self) {
        let _ = self.control.send(RoomCmd::KeyframeWanted(self.id)).await;
    }
}

/// Things a moderator (or the admin API) can do to a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeratorAction {
    /// Let a lobby participant in.
    Admit,
    /// Turn a lobby participant away.
    Reject,
    /// Mute or unmute audio.
    Mute(bool),
    /// Remove from the conference.
    Remove,
    /// Make a moderator.
    MakeModerator,
    /// Stop (true) or allow (false) the participant's video.
    StopVideo(bool),
}

/// Something that happened in the room, told to those who can show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomNotice {
    /// Someone was admitted.
    Joined(ParticipantView),
    /// Someone left (or was removed).
    Left(u64),
    /// Someone's audio was muted or unmuted.
    Muted {
        /// Who.
        id: u64,
        /// Muted now.
        muted: bool,
    },
    /// Someone's video was stopped or allowed again.
    VideoStopped {
        /// Who.
        id: u64,
        /// Stopped now.
        stopped: bool,
    },
    /// Someone's role changed.
    RoleChanged {
        /// Who.
        id: u64,
        /// The new role.
        role: Role,
    },
    /// The lobby queue (moderators only).
    LobbyQueue(Vec<ParticipantView>),
    /// The conference was locked or unlocked.
    Locked(bool),
    /// A chat line.
    Chat {
        /// Who wrote it.
        from: u64,
        /// Their name.
        display_name: String,
        /// The text.
        text: String,
    },
}

/// Longest chat line a room passes on, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

#[derive(Debug)]
enum RoomCmd {
    Enter {
        party: Party,
        entry: Entry,
        max_participants: u32,
        reply: oneshot::Sender<Result<Membership, EndReason>>,
    },
    Leave(ParticipantId),
    Moderate {
        actor: Option<ParticipantId>,
        target: ParticipantId,
        action: ModeratorAction,
        reply: oneshot::Sender<Result<(), ModerationError>>,
    },
    Lock {
        actor: Option<ParticipantId>,
        locked: bool,
        reply: oneshot::Sender<Result<(), ModerationError>>,
    },
    End(EndReason),
    List(oneshot::Sender<Vec<ParticipantView>>),
    Video(ParticipantId, Option<crate::video::VideoLeg>),
    Chat(ParticipantId, String),
    VideoRefresh(ParticipantId),
    KeyframeHook(ParticipantId, mpsc::UnboundedSender<()>),
    KeyframeWanted(ParticipantId),
}

/// Why a moderator action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModerationError {
    /// No such participant in this conference.
    #[error("participant {0} is not in this conference")]
    NoSuchParticipant(u64),
    /// Admit/reject on someone who is not waiting.
    #[error("participant {0} is not waiting in the lobby")]
    NotInLobby(u64),
    /// The conference is not running.
    #[error("conference '{0}' is not running")]
    NotRunning(String),
    /// The one asking is not a moderator.
    #[error("only moderators may do that")]
    NotModerator,
}

struct Member {
    party: Party,
    role: Role,
    in_lobby: bool,
    muted: bool,
    video_stopped: bool,
    /// A prompt being played into this participant's audio.
    prompt: Option<mixer::prompts::PromptPlayer>,
    audio_out: mpsc::Sender<Heard>,
    events: mpsc::Sender<RoomEvent>,
    lobby_deadline: Option<tokio::time::Instant>,
}

impl Member {
    fn view(&self, id: ParticipantId) -> ParticipantView {
        ParticipantView {
            id: id.0,
            display_name: self.party.display_name().to_string(),
            account: self.party.account().map(|a| a.to_string()),
            role: self.role.as_str(),
            protocol: self.party.protocol.to_string(),
            muted: self.muted,
            video_stopped: self.video_stopped,
            in_lobby: self.in_lobby,
        }
    }
}

#[derive(Debug, Clone)]
struct RoomHandle {
    control: mpsc::Sender<RoomCmd>,
    live: Arc<Mutex<LiveState>>,
}

/// Room settings from the `[conference]` section.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Lobby wait.
    pub lobby_timeout: Duration,
    /// Speakers mixed at once.
    pub max_speakers: usize,
}

/// All running conferences.
#[derive(Debug, Clone)]
pub struct Conferences {
    rooms: Arc<Mutex<HashMap<String, RoomHandle>>>,
    next_id: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    settings: Arc<Mutex<RoomSettings>>,
    stopped: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>,
    relay: Arc<Mutex<Option<relay::Relay>>>,
}

impl Conferences {
    /// Tells `tx` the id of every conference that stops (the last one left
    /// or it was ended), e.g. to remove temporary conferences.
    pub fn on_stopped(&self, tx: mpsc::UnboundedSender<String>) {
        *lock(&self.stopped) = Some(tx);
    }

    /// No conference running yet.
    pub fn new(metrics: Arc<Metrics>, settings: RoomSettings) -> Self {
        Self {
            rooms: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            metrics,
            settings: Arc::new(Mutex::new(settings)),
            stopped: Arc::default(),
            relay: Arc::default(),
        }
    }

    /// The media relay whose endpoints carry the participants' video; rooms
    /// started later route video over it.
    pub fn set_relay(&self, relay: relay::Relay) {
        *lock(&self.relay) = Some(relay);
    }

    /// Applies new room settings (SIGHUP); rooms started later use them.
    pub fn reconfigure(&self, settings: RoomSettings) {
        *lock(&self.settings) = settings;
    }

    /// The live state of a conference (not running: zeroes).
    pub fn live(&self, id: &str) -> LiveState {
        lock(&self.rooms).get(id).map(|r| *lock(&r.live)).unwrap_or_default()
    }

    /// Ids of the running conferences.
    pub fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.rooms).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Puts a participant into a conference (starting it if needed), or
    /// into its lobby. The room re-checks the size limit, so that two
    /// callers racing for the last place cannot both get in.
    pub async fn enter(
        &self,
        conference: &str,
        party: Party,
        entry: Entry,
        max_participants: u32,
    ) -> Result<Membership, EndReason> {
        for _ in 0..3 {
            let control = self.room(conference);
            let (reply, rx) = oneshot::channel();
            if control
                .send(RoomCmd::Enter {
                    party: party.clone(),
                    entry,
                    max_participants,
                    reply,
                })
                .await
                .is_err()
            {
                // The room ended between lookup and send: start a new one.
                self.forget(conference, &control);
                continue;
            }
            match rx.await {
                Ok(r) => return r,
                Err(_) => {
                    self.forget(conference, &control);
                    continue;
                }
            }
        }
        Err(EndReason::ServerError)
    }

    /// The live participant list (lobby included, marked).
    pub async fn participants(&self, conference: &str) -> Vec<ParticipantView> {
        let Some(control) = lock(&self.rooms).get(conference).map(|r| r.control.clone()) else {
            return Vec::new();
        };
        let (tx, rx) = oneshot::channel();
        if control.send(RoomCmd::List(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A moderator action on one participant, by the administrator.
    pub async fn moderate(
        &self,
        conference: &str,
        target: ParticipantId,
        action: ModeratorAction,
    ) -> Result<(), ModerationError> {
        self.moderate_as(conference, None, target, action).await
    }

    /// A moderator action by participant `actor` (who must be a moderator),
    /// or by the administrator (`None`).
    pub async fn moderate_as(
        &self,
        conference: &str,
        actor: Option<ParticipantId>,
        target: ParticipantId,
        action: ModeratorAction,
    ) -> Result<(), ModerationError> {
        let (reply, rx) = oneshot::channel();
        self.ask(
            conference,
            RoomCmd::Moderate {
                actor,
                target,
                action,
                reply,
            },
            rx,
        )
        .await
    }

    /// Locks (no new guests or participants; moderators still get in) or unlocks.
    pub async fn lock(
        &self,
        conference: &str,
        actor: Option<ParticipantId>,
        locked: bool,
    ) -> Result<(), ModerationError> {
        let (reply, rx) = oneshot::channel();
        self.ask(conference, RoomCmd::Lock { actor, locked, reply }, rx).await
    }

    async fn ask(
        &self,
        conference: &str,
        cmd: RoomCmd,
        rx: oneshot::Receiver<Result<(), ModerationError>>,
    ) -> Result<(), ModerationError> {
        let not_running = || ModerationError::NotRunning(conference.to_string());
        let control = lock(&self.rooms)
            .get(conference)
            .map(|r| r.control.clone())
            .ok_or_else(not_running)?;
        control.send(cmd).await.map_err(|_| not_running())?;
        rx.await.map_err(|_| not_running())?
    }

    /// Ends one conference: everyone is told why and let go.
    pub async fn end(&self, conference: &str, reason: EndReason) -> bool {
        let Some(control) = lock(&self.rooms).get(conference).map(|r| r.control.clone()) else {
            return false;
        };
        control.send(RoomCmd::End(reason)).await.is_ok()
    }

    /// Ends every conference (shutdown) and waits until the rooms are gone
    /// or `grace` runs out. Returns how many rooms were still running.
    pub async fn end_all(&self, reason: EndReason, grace: Duration) -> usize {
        let controls: Vec<_> = lock(&self.rooms).values().map(|r| r.control.clone()).collect();
        for c in &controls {
            let _ = c.send(RoomCmd::End(reason)).await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if controls.iter().all(|c| c.is_closed()) {
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        controls.iter().filter(|c| !c.is_closed()).count()
    }

    fn forget(&self, conference: &str, control: &mpsc::Sender<RoomCmd>) {
        let mut rooms = lock(&self.rooms);
        if rooms.get(conference).is_some_and(|r| r.control.same_channel(control)) {
            rooms.remove(conference);
        }
    }

    fn room(&self, conference: &str) -> mpsc::Sender<RoomCmd> {
        let mut rooms = lock(&self.rooms);
        if let Some(r) = rooms.get(conference) {
            if !r.control.is_closed() {
                return r.control.clone();
            }
        }
        let (control, rx) = mpsc::channel(64);
        let live = Arc::new(Mutex::new(LiveState::default()));
        rooms.insert(
            conference.to_string(),
            RoomHandle {
                control: control.clone(),
                live: live.clone(),
            },
        );
        self.metrics
            .conferences_running
            .store(rooms.len() as u64, Ordering::Relaxed);
        let settings = lock(&self.settings).clone();
        let (audio_tx, audio_rx) = mpsc::channel(ROOM_AUDIO_QUEUE);
        let mut room = Room::new(
            conference.to_string(),
            settings,
            self.clone(),
            control.clone(),
            live,
            audio_tx,
        );
        room.video = crate::video::RoomVideo::new(lock(&self.relay).clone());
        tokio::spawn(room.run(rx, audio_rx));
        control
    }

    fn room_ended(&self, conference: &str, control: &mpsc::Sender<RoomCmd>) {
        self.forget(conference, control);
        self.metrics
            .conferences_running
            .store(lock(&self.rooms).len() as u64, Ordering::Relaxed);
        if let Some(tx) = lock(&self.stopped).as_ref() {
            let _ = tx.send(conference.to_string());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Room {
    id: String,
    settings: RoomSettings,
    owner: Conferences,
    control: mpsc::Sender<RoomCmd>,
    live: Arc<Mutex<LiveState>>,
    members: BTreeMap<ParticipantId, Member>,
    mixer: Mixer,
    audio_tx: mpsc::Sender<(ParticipantId, Frame)>,
    speaker: Option<u64>,
    switcher: mixer::vad::SpeakerSwitcher,
    speaking_now: Vec<(InputId, bool, f32)>,
    ended: bool,
    /// Ticks so far (names the shared mix of each).
    ticks: u64,
    /// Encoders of the shared mix, one per codec, used by the RTP legs.
    encoders: crate::media::SharedEncoders,
    /// Who sees whose video.
    video: crate::video::RoomVideo,
}

/// How long a new loudest speaker must lead before it becomes the active speaker.
const SPEAKER_HOLD_MS: u64 = 600;
/// Frames queued from all participants of one room before new ones are dropped.
const ROOM_AUDIO_QUEUE: usize = 512;
/// Frames queued towards one participant before new ones are dropped.
const PARTICIPANT_AUDIO_QUEUE: usize = 16;

impl Room {
    fn new(
        id: String,
        settings: RoomSettings,
        owner: Conferences,
        control: mpsc::Sender<RoomCmd>,
        live: Arc<Mutex<LiveState>>,
        audio_tx: mpsc::Sender<(ParticipantId, Frame)>,
    ) -> Self {
        let mixer = Mixer::new(MixerConfig {
            max_speakers: settings.max_speakers,
            ..MixerConfig::default()
        });
        Self {
            id,
            settings,
            owner,
            control,
            live,
            members: BTreeMap::new(),
            mixer,
            audio_tx,
            speaker: None,
            switcher: mixer::vad::SpeakerSwitcher::new(Duration::from_millis(SPEAKER_HOLD_MS)),
            speaking_now: Vec::with_capacity(8),
            ended: false,
            ticks: 0,
            encoders: crate::media::SharedEncoders::default(),
            video: crate::video::RoomVideo::new(None),
        }
    }

    async fn run(mut self, mut control: mpsc::Receiver<RoomCmd>, mut audio_rx: mpsc::Receiver<(ParticipantId, Frame)>) {
        let mut ticker: Option<tokio::time::Interval> = None;
        tracing::info!(conf = %self.id, "conference started");
        loop {
            let next_lobby = self.members.values().filter_map(|m| m.lobby_deadline).min();
            tokio::select! {
                cmd = control.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some((pid, frame)) = audio_rx.recv() => {
                    self.on_audio(pid, &frame);
                    if ticker.is_none() {
                        let mut t = tokio::time::interval(Duration::from_millis(20));
                        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        ticker = Some(t);
                    }
                }
                _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    if !self.tick() {
                        // Nobody sent anything for a whole tick: stop until audio arrives.
                        ticker = None;
                    }
                }
                _ = async { match next_lobby { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    self.expire_lobby();
                }
            }
            if self.members.is_empty() || self.ended {
                break;
            }
            // A prompt needs the 20 ms clock even when nobody sends audio.
            if ticker.is_none() && self.members.values().any(|m| m.prompt.is_some()) {
                let mut t = tokio::time::interval(Duration::from_millis(20));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker = Some(t);
            }
        }
        for (_, m) in std::mem::take(&mut self.members) {
            let _ = m.events.try_send(RoomEvent::Ended(EndReason::ConferenceEnded));
        }
        self.publish_live();
        self.owner.room_ended(&self.id, &self.control);
        tracing::info!(conf = %self.id, "conference stopped");
    }

    fn admitted_count(&self) -> u32 {
        self.members.values().filter(|m| !m.in_lobby).count() as u32
    }

    fn publish_live(&self) {
        let mut live = lock(&self.live);
        live.participants = self.admitted_count();
        live.running = live.participants > 0;
    }

    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Enter {
                party,
                entry,
                max_participants,
                reply,
            } => {
                let result = self.enter(party, entry, max_participants);
                if let Err(Ok(membership)) = reply.send(result) {
                    // The caller gave up waiting: take the participant out again.
                    self.remove(membership.id, None);
                }
            }
            RoomCmd::Leave(id) => self.remove(id, None),
            RoomCmd::Moderate {
                actor,
                target,
                action,
                reply,
            } => {
                let r = self.check_moderator(actor).and_then(|()| self.moderate(target, action));
                let _ = reply.send(r);
            }
            RoomCmd::Lock { actor, locked, reply } => {
                let r = self.check_moderator(actor).map(|()| {
                    lock(&self.live).locked = locked;
                    self.notify_all(RoomNotice::Locked(locked));
                });
                let _ = reply.send(r);
            }
            RoomCmd::End(reason) => {
                for m in self.members.values() {
                    let _ = m.events.try_send(RoomEvent::Ended(reason));
                }
                let ids: Vec<_> = self.members.keys().copied().collect();
                for id in ids {
                    self.remove(id, None);
                }
                self.ended = true;
            }
            RoomCmd::List(reply) => {
                let _ = reply.send(self.members.iter().map(|(id, m)| m.view(*id)).collect());
            }
            RoomCmd::Chat(id, text) => {
                let Some(m) = self.members.get(&id).filter(|m| !m.in_lobby) else {
                    return;
                };
                let text: String = text.chars().take(MAX_CHAT_CHARS).collect();
                if text.trim().is_empty() {
                    return;
                }
                let display_name = m.party.display_name().to_string();
                self.notify_all(RoomNotice::Chat {
                    from: id.0,
                    display_name,
                    text,
                });
            }
            RoomCmd::VideoRefresh(id) => {
                self.video.refresh(id.0);
            }
            RoomCmd::KeyframeHook(id, hook) => {
                if self.members.contains_key(&id) {
                    self.video.set_keyframe_hook(id.0, hook);
                }
            }
            RoomCmd::KeyframeWanted(id) => {
                self.video.request_keyframe_for(id.0);
            }
            RoomCmd::Video(id, leg) => {
                let Some(m) = self.members.get(&id).filter(|m| !m.in_lobby) else {
                    return;
                };
                let stopped = m.video_stopped;
                self.video.set_leg(id.0, leg, stopped);
                self.announce_video();
            }
        }
    }

    /// Tells many-stream receivers whose video sources changed.
    fn announce_video(&mut self) {
        for (r, sources) in self.video.take_announcements() {
            if let Some(m) = self.members.get(&ParticipantId(r)) {
                let _ = m.events.try_send(RoomEvent::VideoSources(sources));
            }
        }
    }

    fn enter(&mut self, party: Party, entry: Entry, max: u32) -> Result<Membership, EndReason> {
        let role = match entry {
            Entry::Admit(role) => role,
            Entry::Lobby => Role::Guest,
        };
        if entry != Entry::Lobby && !role.is_moderator() && self.admitted_count() >= max {
            return Err(EndReason::ConferenceFull);
        }
        let id = ParticipantId(self.owner.next_id.fetch_add(1, Ordering::Relaxed));
        let (out_tx, out_rx) = mpsc::channel(PARTICIPANT_AUDIO_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let in_lobby = entry == Entry::Lobby;
        let lobby_deadline = in_lobby.then(|| tokio::time::Instant::now() + self.settings.lobby_timeout);
        let member = Member {
            party,
            role,
            in_lobby,
            muted: false,
            video_stopped: false,
            // Lobby: "you are in the waiting room", again every 10 s.
            prompt: in_lobby
                .then(|| mixer::prompts::PromptPlayer::new(mixer::prompts::PromptId::WaitingRoom, Some(500))),
            audio_out: out_tx,
            events: ev_tx,
            lobby_deadline,
        };
        tracing::info!(conf = %self.id, participant = id.0, role = role.as_str(), lobby = in_lobby,
            name = %call::Pii(member.party.display_name().to_string()), "participant entered");
        if in_lobby {
            let _ = member.events.try_send(RoomEvent::Lobby(self.settings.lobby_timeout));
        } else {
            let _ = member.events.try_send(RoomEvent::Joined(role));
            self.mixer.add_input(InputId(id.0));
        }
        let view = member.view(id);
        self.members.insert(id, member);
        if in_lobby {
            self.lobby_changed();
        } else {
            self.notify_others(id, RoomNotice::Joined(view));
            if role.is_moderator() {
                self.lobby_to_new_moderator(id);
            }
        }
        self.owner.metrics.legs_active.fetch_add(1, Ordering::Relaxed);
        self.owner.metrics.participants_joined.fetch_add(1, Ordering::Relaxed);
        self.roster_changed(in_lobby);
        Ok(Membership {
            id,
            conference: self.id.clone(),
            audio_in: self.audio_tx.clone(),
            audio_out: out_rx,
            events: ev_rx,
            control: self.control.clone(),
        })
    }

    fn remove(&mut self, id: ParticipantId, tell: Option<RoomEvent>) {
        let Some(m) = self.members.remove(&id) else { return };
        if let Some(ev) = tell {
            let _ = m.events.try_send(ev);
        }
        self.mixer.remove_input(InputId(id.0));
        self.video.leave(id.0);
        self.announce_video();
        if m.in_lobby {
            self.lobby_changed();
        } else {
            self.notify_all(RoomNotice::Left(id.0));
        }
        self.owner.metrics.legs_active.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(conf = %self.id, participant = id.0, "participant left");
        self.roster_changed(m.in_lobby);
    }

    fn check_moderator(&self, actor: Option<ParticipantId>) -> Result<(), ModerationError> {
        match actor {
            None => Ok(()),
            Some(a) => match self.members.get(&a) {
                Some(m) if m.role.is_moderator() && !m.in_lobby => Ok(()),
                _ => Err(ModerationError::NotModerator),
            },
        }
    }

    fn lobby_queue(&self) -> Vec<ParticipantView> {
        self.members
            .iter()
            .filter(|(_, m)| m.in_lobby)
            .map(|(id, m)| m.view(*id))
            .collect()
    }

    /// Tells moderators who waits in the lobby now.
    fn lobby_changed(&self) {
        let queue = self.lobby_queue();
        for m in self.members.values().filter(|m| !m.in_lobby && m.role.is_moderator()) {
            let _ = m
                .events
                .try_send(RoomEvent::Notice(RoomNotice::LobbyQueue(queue.clone())));
        }
    }

    /// Tells one new moderator (just admitted or just promoted) who already
    /// waits in the lobby: the queue is otherwise sent only when it changes.
    fn lobby_to_new_moderator(&self, id: ParticipantId) {
        let queue = self.lobby_queue();
        if queue.is_empty() {
            return;
        }
        if let Some(m) = self.members.get(&id) {
            let _ = m.events.try_send(RoomEvent::Notice(RoomNotice::LobbyQueue(queue)));
        }
    }

    /// Tells every admitted participant but `who`.
    fn notify_others(&self, who: ParticipantId, notice: RoomNotice) {
        for (id, m) in &self.members {
            if *id != who && !m.in_lobby {
                let _ = m.events.try_send(RoomEvent::Notice(notice.clone()));
            }
        }
    }

    /// Tells every admitted participant.
    fn notify_all(&self, notice: RoomNotice) {
        for m in self.members.values().filter(|m| !m.in_lobby) {
            let _ = m.events.try_send(RoomEvent::Notice(notice.clone()));
        }
    }

    fn moderate(&mut self, target: ParticipantId, action: ModeratorAction) -> Result<(), ModerationError> {
        let Some(m) = self.members.get_mut(&target) else {
            return Err(ModerationError::NoSuchParticipant(target.0));
        };
        match action {
            ModeratorAction::Admit | ModeratorAction::Reject if !m.in_lobby => {
                return Err(ModerationError::NotInLobby(target.0));
            }
            ModeratorAction::Admit => {
                m.in_lobby = false;
                m.lobby_deadline = None;
                m.prompt = None;
                let _ = m.events.try_send(RoomEvent::Admitted);
                let _ = m.events.try_send(RoomEvent::Joined(m.role));
                self.mixer.add_input(InputId(target.0));
                let view = m.view(target);
                self.notify_others(target, RoomNotice::Joined(view));
                self.lobby_changed();
                self.roster_changed(false);
            }
            ModeratorAction::Reject => self.remove(target, Some(RoomEvent::Removed(EndReason::LobbyRejected))),
            ModeratorAction::Mute(muted) => {
                m.muted = muted;
                self.mixer.set_muted(InputId(target.0), muted);
                self.notify_all(RoomNotice::Muted { id: target.0, muted });
                self.roster_changed(false);
            }
            ModeratorAction::StopVideo(stopped) => {
                m.video_stopped = stopped;
                self.video.set_stopped(target.0, stopped);
                self.announce_video();
                self.notify_all(RoomNotice::VideoStopped { id: target.0, stopped });
                self.roster_changed(false);
            }
            ModeratorAction::MakeModerator => {
                if m.in_lobby {
                    return Err(ModerationError::NoSuchParticipant(target.0));
                }
                if !m.role.is_moderator() {
                    m.role = Role::Moderator;
                    self.notify_all(RoomNotice::RoleChanged {
                        id: target.0,
                        role: Role::Moderator,
                    });
                    self.lobby_to_new_moderator(target);
                    self.roster_changed(false);
                }
            }
            ModeratorAction::Remove => self.remove(target, Some(RoomEvent::Removed(EndReason::Kicked))),
        }
        Ok(())
    }

    fn expire_lobby(&mut self) {
        let now = tokio::time::Instant::now();
        let expired: Vec<_> = self
            .members
            .iter()
            .filter(|(_, m)| m.lobby_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.remove(id, Some(RoomEvent::Removed(EndReason::LobbyTimeout)));
        }
    }

    /// Tells everyone admitted the new list; moderators also hear of lobby changes.
    fn roster_changed(&mut self, lobby_only: bool) {
        self.publish_live();
        let all: Vec<ParticipantView> = self.members.iter().map(|(id, m)| m.view(*id)).collect();
        let admitted: Vec<ParticipantView> = all.iter().filter(|v| !v.in_lobby).cloned().collect();
        for m in self.members.values().filter(|m| !m.in_lobby) {
            if lobby_only && !m.role.is_moderator() {
                continue;
            }
            let list = if m.role.is_moderator() {
                all.clone()
            } else {
                admitted.clone()
            };
            let _ = m.events.try_send(RoomEvent::Participants(list));
        }
    }

    fn on_audio(&mut self, id: ParticipantId, frame: &Frame) {
        match self.members.get(&id) {
            Some(m) if !m.in_lobby => {
                if self.mixer.push_frame(InputId(id.0), frame) == mixer::PushResult::DroppedOldest {
                    self.owner.metrics.count_drop("mixer_queue_full");
                }
            }
            _ => self.owner.metrics.count_drop("audio_not_admitted"),
        }
    }

    fn tick(&mut self) -> bool {
        let mixed = self.mixer.tick();
        self.ticks += 1;
        let mut prompting = false;
        for (id, m) in self.members.iter_mut() {
            let prompt = m.prompt.as_mut().and_then(|p| p.next_frame());
            if m.prompt.as_ref().is_some_and(|p| !p.finished()) {
                prompting = true;
            }
            let shared =
                (mixed && !m.in_lobby && prompt.is_none() && self.mixer.hears_shared_mix(InputId(id.0))).then(|| {
                    SharedMix {
                        tick: self.ticks,
                        encoders: self.encoders.clone(),
                    }
                });
            let mut out = if m.in_lobby || !mixed {
                match prompt {
                    Some(_) => [0; FRAME_SAMPLES],
                    None => continue,
                }
            } else {
                self.mixer.output(InputId(id.0)).copied().unwrap_or([0; FRAME_SAMPLES])
            };
            if let Some(p) = prompt {
                for (o, x) in out.iter_mut().zip(p.iter()) {
                    *o = o.saturating_add(*x);
                }
            }
            if m.prompt.as_ref().is_some_and(|p| p.finished()) {
                m.prompt = None;
            }
            if m.audio_out.try_send(Heard { frame: out, shared }).is_err() {
                self.owner.metrics.count_drop("participant_queue_full");
            }
        }
        if !mixed {
            return prompting;
        }
        // Active speaker with hysteresis: a new one must lead for a while
        // before the room (and video switching) follows.
        self.speaking_now.clear();
        for (rank, s) in self.mixer.speakers().iter().enumerate() {
            self.speaking_now.push((*s, true, -(rank as f32)));
        }
        let changed = self.switcher.update(std::time::Instant::now(), &self.speaking_now);
        let speaker = changed.map(|s| s.0);
        if speaker.is_some() && speaker != self.speaker {
            self.speaker = speaker;
            self.video.speaker_changed(speaker);
            self.announce_video();
            for m in self.members.values().filter(|m| !m.in_lobby) {
                let _ = m.events.try_send(RoomEvent::Speaking(speaker));
            }
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use call::Protocol;

    fn rooms() -> Conferences {
        Conferences::new(
            Arc::new(Metrics::default()),
            RoomSettings {
                lobby_timeout: Duration::from_secs(60),
                max_speakers: 3,
            },
        )
    }

    fn tone(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    async fn next_event(m: &mut Membership) -> RoomEvent {
        tokio::time::timeout(Duration::from_secs(2), m.events.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn two_participants_hear_each_other_not_themselves() {
        let c = rooms();
        let mut a = c
            .enter(
                "c1",
                Party::anonymous("A", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                10,
            )
            .await
            .unwrap();
        let mut b = c
            .enter(
                "c1",
                Party::anonymous("B", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                10,
            )
            .await
            .unwrap();
        assert_eq!(next_event(&mut a).await, RoomEvent::Joined(Role::Guest));
        assert_eq!(
            c.live("c1"),
            LiveState {
                participants: 2,
                running: true,
                locked: false
            }
        );
        for _ in 0..5 {
            a.audio_in.send((a.id, tone(1000))).await.unwrap();
            b.audio_in.send((b.id, tone(300))).await.unwrap();
            let heard_a = tokio::time::timeout(Duration::from_secs(2), a.audio_out.recv())
                .await
                .unwrap()
                .unwrap();
            let heard_b = tokio::time::timeout(Duration::from_secs(2), b.audio_out.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(heard_a.frame[0], 300, "A hears B only");
            assert_eq!(heard_b.frame[0], 1000, "B hears A only");
        }
        a.leave().await;
        b.leave().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(c.running().is_empty(), "the last one out stops the room");
    }

    #[tokio::test]
    async fn room_enforces_the_size_limit() {
        let c = rooms();
        let _a = c
            .enter(
                "c2",
                Party::anonymous("A", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                1,
            )
            .await
            .unwrap();
        let r = c
            .enter(
                "c2",
                Party::anonymous("B", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                1,
            )
            .await;
        assert_eq!(r.err(), Some(EndReason::ConferenceFull));
        let m = c
            .enter(
                "c2",
                Party::anonymous("M", Protocol::Loopback),
                Entry::Admit(Role::Moderator),
                1,
            )
            .await;
        assert!(m.is_ok(), "moderators get in anyway");
    }

    #[tokio::test]
    async fn lobby_admit_and_reject() {
        let c = rooms();
        let mut m = c
            .enter(
                "c3",
                Party::anonymous("Mod", Protocol::Loopback),
                Entry::Admit(Role::Moderator),
                10,
            )
            .await
            .unwrap();
        let mut g = c
            .enter("c3", Party::anonymous("G", Protocol::Loopback), Entry::Lobby, 10)
            .await
            .unwrap();
        assert_eq!(next_event(&mut g).await, RoomEvent::Lobby(Duration::from_secs(60)));
        assert_eq!(c.live("c3").participants, 1, "the lobby does not count");
        // the moderator is told about the lobby: the queue, and the roster with the lobby marked
        let (mut queue_seen, mut roster_seen) = (false, false);
        while !(queue_seen && roster_seen) {
            match next_event(&mut m).await {
                RoomEvent::Notice(RoomNotice::LobbyQueue(q)) => queue_seen |= q.iter().any(|p| p.id == g.id.0),
                RoomEvent::Participants(list) => roster_seen |= list.iter().any(|p| p.id == g.id.0 && p.in_lobby),
                _ => {}
            }
        }
        // audio from the lobby is not mixed
        g.audio_in.send((g.id, tone(500))).await.unwrap();
        c.moderate("c3", g.id, ModeratorAction::Admit).await.unwrap();
        assert_eq!(next_event(&mut g).await, RoomEvent::Admitted);
        assert_eq!(next_event(&mut g).await, RoomEvent::Joined(Role::Guest));
        assert_eq!(c.live("c3").participants, 2);
        assert_eq!(
            c.moderate("c3", g.id, ModeratorAction::Admit).await,
            Err(ModerationError::NotInLobby(g.id.0))
        );
        let mut h = c
            .enter("c3", Party::anonymous("H", Protocol::Loopback), Entry::Lobby, 10)
            .await
            .unwrap();
        c.moderate("c3", h.id, ModeratorAction::Reject).await.unwrap();
        assert_eq!(next_event(&mut h).await, RoomEvent::Lobby(Duration::from_secs(60)));
        assert_eq!(next_event(&mut h).await, RoomEvent::Removed(EndReason::LobbyRejected));
        assert_eq!(
            c.moderate("c3", ParticipantId(9999), ModeratorAction::Remove).await,
            Err(ModerationError::NoSuchParticipant(9999))
        );
    }

    /// A moderator who arrives, or is promoted, while someone already waits
    /// in the lobby is told the queue at once, not only at its next change.
    #[tokio::test]
    async fn late_moderator_is_told_who_waits() {
        let c = rooms();
        let g = c
            .enter("c5", Party::anonymous("G", Protocol::Loopback), Entry::Lobby, 10)
            .await
            .unwrap();
        let mut m = c
            .enter(
                "c5",
                Party::anonymous("Mod", Protocol::Loopback),
                Entry::Admit(Role::Moderator),
                10,
            )
            .await
            .unwrap();
        assert_eq!(next_event(&mut m).await, RoomEvent::Joined(Role::Moderator));
        match next_event(&mut m).await {
            RoomEvent::Notice(RoomNotice::LobbyQueue(q)) => {
                assert_eq!(q.iter().map(|p| p.id).collect::<Vec<_>>(), vec![g.id.0]);
            }
            other => panic!("expected the lobby queue, got {other:?}"),
        }

        let mut p = c
            .enter(
                "c5",
                Party::anonymous("P", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                10,
            )
            .await
            .unwrap();
        c.moderate("c5", p.id, ModeratorAction::MakeModerator).await.unwrap();
        let mut queue = None;
        while queue.is_none() {
            match next_event(&mut p).await {
                RoomEvent::Notice(RoomNotice::LobbyQueue(q)) => queue = Some(q),
                RoomEvent::Notice(RoomNotice::RoleChanged { .. })
                | RoomEvent::Participants(_)
                | RoomEvent::Joined(_)
                | RoomEvent::Notice(RoomNotice::Joined(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(queue.unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![g.id.0]);

        // a moderator admitted while nobody waits gets no queue
        let mut h = c
            .enter(
                "c6",
                Party::anonymous("Mod2", Protocol::Loopback),
                Entry::Admit(Role::Moderator),
                10,
            )
            .await
            .unwrap();
        assert_eq!(next_event(&mut h).await, RoomEvent::Joined(Role::Moderator));
        assert!(matches!(next_event(&mut h).await, RoomEvent::Participants(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn lobby_times_out() {
        let c = Conferences::new(
            Arc::new(Metrics::default()),
            RoomSettings {
                lobby_timeout: Duration::from_secs(5),
                max_speakers: 3,
            },
        );
        let _m = c
            .enter(
                "c4",
                Party::anonymous("Mod", Protocol::Loopback),
                Entry::Admit(Role::Moderator),
                10,
            )
            .await
            .unwrap();
        let mut g = c
            .enter("c4", Party::anonymous("G", Protocol::Loopback), Entry::Lobby, 10)
            .await
            .unwrap();
        assert_eq!(next_event(&mut g).await, RoomEvent::Lobby(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(next_event(&mut g).await, RoomEvent::Removed(EndReason::LobbyTimeout));
    }

    /// The next chat line `m` is told, skipping other events.
    async fn next_chat(m: &mut Membership) -> (u64, String, String) {
        loop {
            if let RoomEvent::Notice(RoomNotice::Chat {
                from,
                display_name,
                text,
            }) = next_event(m).await
            {
                return (from, display_name, text);
            }
        }
    }

    #[tokio::test]
    async fn chat_reaches_everyone_admitted_not_the_lobby() {
        let c = rooms();
        let enter = |name: &str, entry| c.enter("c6", Party::anonymous(name, Protocol::Loopback), entry, 10);
        let mut a = enter("Ann", Entry::Admit(Role::Moderator)).await.unwrap();
        let mut b = enter("Bob", Entry::Admit(Role::Guest)).await.unwrap();
        let mut w = enter("Wait", Entry::Lobby).await.unwrap();
        b.chat("hello\nall".into()).await;
        let line = (b.id.0, "Bob".to_string(), "hello\nall".to_string());
        assert_eq!(next_chat(&mut a).await, line);
        assert_eq!(next_chat(&mut b).await, line, "the sender sees its own line");
        // Someone in the lobby neither hears the line nor can say one.
        w.chat("let me in".into()).await;
        a.chat(format!("{}!", "x".repeat(MAX_CHAT_CHARS + 10))).await;
        let (from, _, text) = next_chat(&mut b).await;
        assert_eq!(from, a.id.0, "the lobby's line was dropped");
        assert_eq!(text.chars().count(), MAX_CHAT_CHARS, "cut at the limit");
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), w.events.recv()).await {
            assert!(
                !matches!(ev, RoomEvent::Notice(RoomNotice::Chat { .. })),
                "the lobby gets no chat: {ev:?}"
            );
        }
    }

    #[tokio::test]
    async fn end_all_tells_everyone() {
        let c = rooms();
        let mut a = c
            .enter(
                "c5",
                Party::anonymous("A", Protocol::Loopback),
                Entry::Admit(Role::Guest),
                10,
            )
            .await
            .unwrap();
        assert_eq!(c.end_all(EndReason::ServerShutdown, Duration::from_secs(2)).await, 0);
        let mut last = None;
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), a.events.recv()).await {
            last = Some(ev);
        }
        assert_eq!(last, Some(RoomEvent::Ended(EndReason::ServerShutdown)));
        assert!(c.running().is_empty());
    }
}
