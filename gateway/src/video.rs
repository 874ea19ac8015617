//! Video routing in a conference: which publisher's video goes to whom.
//!
//! Pure policy, no I/O: it answers membership changes and active-speaker
//! changes (already filtered for hysteresis by the audio side) with
//! [`VideoOp`]s that the caller applies to the media relay.
//!
//! - Receivers that take many streams (browsers) get every publisher's
//!   video forwarded as is (SFU); feedback goes back to each publisher.
//! - Receivers that take one stream (most SIP and H.323 room systems) get
//!   the active speaker's video, rewritten into one continuous stream (one
//!   SSRC, continuous sequence numbers), with a keyframe request to the new
//!   speaker at every switch so the picture starts at once.
//! - A participant whose video a moderator stopped is nobody's source.
//! - Nobody receives their own video.

use std::collections::{BTreeMap, BTreeSet};

/// A participant's id as the video router knows it.
pub type Pid = u64;

/// What the relay must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoOp {
    /// Forward `from`'s video to `to`.
    Subscribe {
        /// Publisher.
        from: Pid,
        /// Receiver.
        to: Pid,
    },
    /// Stop forwarding `from`'s video to `to`.
    Unsubscribe {
        /// Publisher.
        from: Pid,
        /// Receiver.
        to: Pid,
    },
    /// Ask `from` for a keyframe.
    RequestKeyframe(Pid),
}

#[derive(Debug, Clone, Copy)]
struct Member {
    publishes: bool,
    takes_many: bool,
    stopped: bool,
}

/// The video routing state of one conference.
#[derive(Debug, Default)]
pub struct VideoRouter {
    members: BTreeMap<Pid, Member>,
    speaker: Option<Pid>,
    /// For each single-stream receiver, whom it gets now.
    single_source: BTreeMap<Pid, Pid>,
}

impl VideoRouter {
    /// No one in the conference.
    pub fn new() -> Self {
        Self::default()
    }

    fn can_publish(&self, p: Pid) -> bool {
        self.members.get(&p).is_some_and(|m| m.publishes && !m.stopped)
    }

    /// The source a single-stream receiver `r` should get now: the active
    /// speaker, or (when `r` is the speaker or none is set) the most
    /// recent other publisher by id order as a stable fallback.
    fn single_target(&self, r: Pid) -> Option<Pid> {
        match self.speaker {
            Some(s) if s != r && self.can_publish(s) => Some(s),
            _ => self.members.keys().copied().find(|&p| p != r && self.can_publish(p)),
        }
    }

    /// Someone joined with video: `publishes` (sends video), `takes_many`
    /// (can receive several streams).
    pub fn join(&mut self, p: Pid, publishes: bool, takes_many: bool) -> Vec<VideoOp> {
        self.members.insert(
            p,
            Member {
                publishes,
                takes_many,
                stopped: false,
            },
        );
        self.reconcile()
    }

    /// Someone left.
    pub fn leave(&mut self, p: Pid) -> Vec<VideoOp> {
        let mut ops = Vec::new();
        // Drop every subscription that involves the one leaving.
        for (&r, m) in &self.members {
            if r == p {
                continue;
            }
            if m.takes_many && self.can_publish(p) {
                ops.push(VideoOp::Unsubscribe { from: p, to: r });
            }
        }
        if let Some(src) = self.single_source.remove(&p) {
            ops.push(VideoOp::Unsubscribe { from: src, to: p });
        }
        for (&r, &src) in &self.single_source {
            if src == p {
                ops.push(VideoOp::Unsubscribe { from: p, to: r });
            }
        }
        self.single_source.retain(|_, src| *src != p);
        if let Some(m) = self.members.get(&p).copied() {
            if m.takes_many {
                for (&q, _) in self.members.iter().filter(|(q, _)| **q != p) {
                    if self.can_publish(q) {
                        ops.push(VideoOp::Unsubscribe { from: q, to: p });
                    }
                }
            }
        }
        self.members.remove(&p);
        if self.speaker == Some(p) {
            self.speaker = None;
        }
        ops.extend(self.reconcile());
        ops
    }

    /// A moderator stopped (or allowed) `p`'s video.
    pub fn set_stopped(&mut self, p: Pid, stopped: bool) -> Vec<VideoOp> {
        let Some(m) = self.members.get(&p).copied() else {
            return Vec::new();
        };
        if m.stopped == stopped {
            return Vec::new();
        }
        let mut ops = Vec::new();
        if stopped {
            for (&r, rm) in &self.members {
                if r != p && rm.takes_many && m.publishes {
                    ops.push(VideoOp::Unsubscribe { from: p, to: r });
                }
            }
        }
        if let Some(mm) = self.members.get_mut(&p) {
            mm.stopped = stopped;
        }
        if !stopped {
            for (&r, rm) in &self.members {
                if r != p && rm.takes_many && m.publishes {
                    ops.push(VideoOp::Subscribe { from: p, to: r });
                }
            }
            if m.publishes {
                ops.push(VideoOp::RequestKeyframe(p));
            }
        }
        ops.extend(self.reconcile());
        ops
    }

    /// The active speaker changed (after hysteresis).
    pub fn speaker_changed(&mut self, speaker: Option<Pid>) -> Vec<VideoOp> {
        self.speaker = speaker;
        self.reconcile()
    }

    /// Brings single-stream receivers and newly joined multi-stream
    /// receivers to what the policy says.
    fn reconcile(&mut self) -> Vec<VideoOp> {
        let mut ops = Vec::new();
        let receivers: Vec<(Pid, Member)> = self.members.iter().map(|(p, m)| (*p, *m)).collect();
        for (r, m) in receivers {
            if m.takes_many {
                continue;
            }
            let want = self.single_target(r);
            let have = self.single_source.get(&r).copied();
            if want == have {
                continue;
            }
            if let Some(h) = have {
                ops.push(VideoOp::Unsubscribe { from: h, to: r });
                self.single_source.remove(&r);
            }
            if let Some(w) = want {
                ops.push(VideoOp::Subscribe { from: w, to: r });
                self.single_source.insert(r, w);
                if !ops.contains(&VideoOp::RequestKeyframe(w)) {
                    ops.push(VideoOp::RequestKeyframe(w));
                }
            }
        }
        ops
    }

    /// Ops to bring a newly joined multi-stream receiver or publisher in:
    /// call after [`VideoRouter::join`] to get the SFU subscriptions.
    pub fn sfu_ops_for_join(&self, p: Pid) -> Vec<VideoOp> {
        let Some(m) = self.members.get(&p).copied() else {
            return Vec::new();
        };
        let mut ops = Vec::new();
        if m.takes_many {
            for &q in self.members.keys() {
                if q != p && self.can_publish(q) {
                    ops.push(VideoOp::Subscribe { from: q, to: p });
                    ops.push(VideoOp::RequestKeyframe(q));
                }
            }
        }
        if self.can_publish(p) {
            for (&r, rm) in &self.members {
                if r != p && rm.takes_many {
                    ops.push(VideoOp::Subscribe { from: p, to: r });
                }
            }
        }
        ops
    }

    /// Whom single-stream receiver `r` gets now.
    pub fn source_of(&self, r: Pid) -> Option<Pid> {
        self.single_source.get(&r).copied()
    }
}

/// A video codec the relay forwards without transcoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 constrained baseline, packetization-mode 1 (RFC 6184).
    H264,
}

impl VideoCodec {
    /// The codec of an SDP encoding name (`VP8`, `H264`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("VP8") {
            Some(Self::Vp8)
        } else if name.eq_ignore_ascii_case("H264") {
            Some(Self::H264)
        } else {
            None
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vp8 => "VP8",
            Self::H264 => "H264",
        }
    }
}

/// A video stream's codec and payload type as negotiated on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// The codec.
    pub codec: VideoCodec,
    /// Its payload type on this leg.
    pub payload_type: u8,
}

/// Which of a participant's videos a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoKind {
    /// The camera.
    Camera,
    /// A shared screen (a browser's `getDisplayMedia`).
    Screen,
}

/// A participant's video, as its driver negotiated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoLeg {
    /// The relay endpoint the video arrives on and leaves by (a browser's
    /// one bundled endpoint, or a phone's video endpoint). Must be in the
    /// conference's relay group ([`media_group`]).
    pub endpoint: relay::EndpointId,
    /// What the participant sends, and the SSRC when the SDP said it.
    pub sends: Option<(VideoFormat, Option<u32>)>,
    /// What it can receive, in its payload types.
    pub receives: Vec<VideoFormat>,
    /// It shows every publisher (a browser); otherwise it gets the active
    /// speaker as one stream with the SSRC [`VideoLeg::switched_ssrc`].
    pub takes_many: bool,
    /// The SSRC of the one switched stream a single-stream receiver gets.
    pub switched_ssrc: u32,
    /// The screen it shares now, on the same endpoint as its camera and
    /// under a payload type of its own (the relay tells the two streams
    /// apart by payload type), with its SSRC.
    pub screen: Option<(VideoFormat, Option<u32>)>,
    /// What it receives others' screens as, in its payload types (empty:
    /// as [`VideoLeg::receives`]). Only many-stream receivers get screens.
    pub receives_screen: Vec<VideoFormat>,
}

impl VideoLeg {
    /// Whether `other` differs from it at most in the screen: the camera's
    /// routing then stays as it is.
    fn same_camera(&self, other: &VideoLeg) -> bool {
        self.endpoint == other.endpoint
            && self.sends == other.sends
            && self.receives == other.receives
            && self.takes_many == other.takes_many
            && self.switched_ssrc == other.switched_ssrc
    }

    /// The format `to` gets `from`'s stream of `kind` in, if it takes that codec.
    fn receive_format(&self, kind: VideoKind, codec: VideoCodec) -> Option<VideoFormat> {
        let list = match kind {
            VideoKind::Screen if !self.receives_screen.is_empty() => &self.receives_screen,
            _ => &self.receives,
        };
        list.iter().find(|r| r.codec == codec).copied()
    }

    /// What it publishes of `kind`.
    fn published(&self, kind: VideoKind) -> Option<(VideoFormat, Option<u32>)> {
        match kind {
            VideoKind::Camera => self.sends,
            VideoKind::Screen => self.screen,
        }
    }
}

/// A publisher's video as one many-stream receiver gets it: what its SDP
/// must announce so that the page knows whose stream it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSource {
    /// The publisher's participant id.
    pub participant: u64,
    /// Its camera or its screen.
    pub kind: VideoKind,
    /// The SSRC the stream arrives with.
    pub ssrc: u32,
    /// Codec and payload type as the receiver gets them.
    pub format: VideoFormat,
}

/// The SSRC a publisher that signalled none (most SIP phones) is given
/// towards many-stream receivers, so that their SDP can name its stream.
pub fn alias_ssrc(p: Pid) -> u32 {
    // Stable per participant, never 0.
    ((p as u32).wrapping_mul(0x9e37_79b9) ^ 0x5ca1_ab1e) | 1
}

/// The relay group of a conference's legs: every leg whose video the
/// conference routes must be created in it, so that all of them are served
/// by one relay worker and can subscribe to each other.
pub fn media_group(conference: &str) -> u64 {
    // FNV-1a: stable across runs and processes.
    conference.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One room's video: the routing policy ([`VideoRouter`]) applied to the
/// relay. The room calls it on membership, speaker and moderation changes;
/// it keeps the forwarding graph's edges and tells many-stream receivers
/// which sources they get.
///
/// A participant publishes up to two streams from its one endpoint: its
/// camera, routed by [`VideoRouter`], and its screen, which goes to every
/// many-stream receiver. The relay keeps one media subscription per
/// (publisher, receiver) pair; its payload map carries the camera's
/// payload type, the screen's, or both, each renumbered to the receiver's.
#[derive(Debug, Default)]
pub struct RoomVideo {
    router: VideoRouter,
    legs: BTreeMap<Pid, VideoLeg>,
    /// Camera edges the router chose (publisher, receiver).
    camera: BTreeSet<(Pid, Pid)>,
    /// Participants whose video a moderator stopped (camera and screen).
    stopped: BTreeSet<Pid>,
    /// What the relay forwards now, per (publisher, receiver).
    edges: BTreeMap<(Pid, Pid), relay::PayloadMap>,
    relay: Option<relay::Relay>,
    announced: BTreeMap<Pid, Vec<VideoSource>>,
    /// Participants told of each keyframe asked of their video, besides
    /// the relay's RTCP PLI (H.323 endpoints: VideoFastUpdatePicture).
    keyframe_hooks: BTreeMap<Pid, tokio::sync::mpsc::UnboundedSender<()>>,
}

impl RoomVideo {
    /// A room's video over `relay` (`None`: routing decisions only, for tests).
    pub fn new(relay: Option<relay::Relay>) -> Self {
        Self {
            relay,
            ..Self::default()
        }
    }

    /// Sets (or with `None` removes) `p`'s video leg. `stopped`: a
    /// moderator stopped its video before it had any. A change of the
    /// screen alone leaves the camera's routing as it is.
    pub fn set_leg(&mut self, p: Pid, leg: Option<VideoLeg>, stopped: bool) {
        if let (Some(old), Some(new)) = (self.legs.get(&p), leg.as_ref()) {
            if old.same_camera(new) {
                let (screen, receives_screen) = (new.screen, new.receives_screen.clone());
                if let Some(l) = self.legs.get_mut(&p) {
                    l.screen = screen;
                    l.receives_screen = receives_screen;
                }
                self.set_untapped(p);
                self.sync(&[]);
                return;
            }
        }
        if self.legs.contains_key(&p) {
            self.drop_edges_of(p);
            let ops = self.router.leave(p);
            self.legs.remove(&p);
            self.apply(&ops);
        }
        let Some(leg) = leg else { return };
        if !leg.takes_many {
            if let Some(r) = &self.relay {
                if let Err(e) = r.set_rewrite(leg.endpoint, Some(leg.switched_ssrc), 3000) {
                    tracing::warn!(participant = p, error = %e, "video: no switched stream");
                }
            }
        }
        let (publishes, takes_many) = (leg.sends.is_some(), leg.takes_many);
        self.legs.insert(p, leg);
        self.set_untapped(p);
        if stopped {
            self.stopped.insert(p);
        } else {
            self.stopped.remove(&p);
        }
        let mut ops = self.router.join(p, publishes, takes_many);
        ops.extend(self.router.sfu_ops_for_join(p));
        if stopped {
            ops.extend(self.router.set_stopped(p, true));
        }
        self.apply(&ops);
    }

    /// Keeps `p`'s video payload types (camera and screen) away from its
    /// audio tap: they go only to media subscribers.
    fn set_untapped(&self, p: Pid) {
        let (Some(r), Some(leg)) = (&self.relay, self.legs.get(&p)) else {
            return;
        };
        let pts: Vec<u8> = [leg.sends, leg.screen]
            .iter()
            .flatten()
            .map(|(f, _)| f.payload_type)
            .collect();
        if !pts.is_empty() {
            let _ = r.set_untapped(leg.endpoint, relay::PayloadMap::identity(&pts));
        }
    }

    /// Tells `p`'s driver of every keyframe asked of `p`'s video from now
    /// on (as well as the relay's PLI to it): for endpoints that take
    /// keyframe requests another way (H.245 VideoFastUpdatePicture).
    pub fn set_keyframe_hook(&mut self, p: Pid, hook: tokio::sync::mpsc::UnboundedSender<()>) {
        self.keyframe_hooks.insert(p, hook);
    }

    /// `p` asks for a keyframe of the video it receives (an H.323
    /// endpoint's VideoFastUpdatePicture): every publisher it gets is
    /// asked. Returns the publishers asked.
    pub fn request_keyframe_for(&mut self, p: Pid) -> Vec<Pid> {
        let ask: BTreeSet<Pid> = self.edges.keys().filter(|(_, to)| *to == p).map(|(f, _)| *f).collect();
        for q in &ask {
            self.ask_keyframe(*q);
        }
        ask.into_iter().collect()
    }

    /// Asks `p`'s video for a keyframe: the relay's PLI, and its hook.
    fn ask_keyframe(&self, p: Pid) {
        if let (Some(r), Some(a)) = (&self.relay, self.legs.get(&p)) {
            let _ = r.request_keyframe(a.endpoint);
        }
        if let Some(h) = self.keyframe_hooks.get(&p) {
            let _ = h.send(());
        }
    }

    /// `p` left the room.
    pub fn leave(&mut self, p: Pid) {
        self.keyframe_hooks.remove(&p);
        if self.legs.contains_key(&p) {
            self.drop_edges_of(p);
            let ops = self.router.leave(p);
            self.legs.remove(&p);
            self.apply(&ops);
        }
        self.stopped.remove(&p);
        self.announced.remove(&p);
    }

    /// The active speaker changed.
    pub fn speaker_changed(&mut self, speaker: Option<Pid>) {
        let ops = self.router.speaker_changed(speaker);
        self.apply(&ops);
    }

    /// A moderator stopped or allowed `p`'s video (camera and screen).
    pub fn set_stopped(&mut self, p: Pid, stopped: bool) {
        if stopped {
            self.stopped.insert(p);
        } else {
            self.stopped.remove(&p);
        }
        let ops = self.router.set_stopped(p, stopped);
        self.apply(&ops);
    }

    /// `p`'s media path changed (it lost packets for a while): asks for a
    /// keyframe from every publisher it receives and from itself when
    /// others receive it. Returns the publishers asked.
    pub fn refresh(&mut self, p: Pid) -> Vec<Pid> {
        let mut ask: BTreeSet<Pid> = self.edges.keys().filter(|(_, to)| *to == p).map(|(f, _)| *f).collect();
        if self.edges.keys().any(|(f, _)| *f == p) {
            ask.insert(p);
        }
        for q in &ask {
            self.ask_keyframe(*q);
        }
        ask.into_iter().collect()
    }

    /// Who sends video to whom now (publisher, receiver).
    pub fn edges(&self) -> Vec<(Pid, Pid)> {
        self.edges.keys().copied().collect()
    }

    /// For each many-stream receiver whose sources changed since the last
    /// call, its sources now (publishers' cameras and screens whose SSRC is
    /// known), by publisher, camera first.
    pub fn take_announcements(&mut self) -> Vec<(Pid, Vec<VideoSource>)> {
        let mut out = Vec::new();
        for (&r, leg) in &self.legs {
            if !leg.takes_many {
                continue;
            }
            let mut now: Vec<VideoSource> = Vec::new();
            for (&(from, _), map) in self.edges.iter().filter(|((_, to), _)| *to == r) {
                let Some(pl) = self.legs.get(&from) else { continue };
                for kind in [VideoKind::Camera, VideoKind::Screen] {
                    let Some((f, ssrc)) = pl.published(kind) else {
                        continue;
                    };
                    // A camera whose SSRC was never signalled (a SIP phone's)
                    // reaches many-stream receivers under one given to it.
                    let ssrc = match (kind, ssrc) {
                        (_, Some(s)) => s,
                        (VideoKind::Camera, None) => alias_ssrc(from),
                        (VideoKind::Screen, None) => continue,
                    };
                    if let Some(pt) = map.get(f.payload_type) {
                        now.push(VideoSource {
                            participant: from,
                            kind,
                            ssrc,
                            format: VideoFormat {
                                codec: f.codec,
                                payload_type: pt,
                            },
                        });
                    }
                }
            }
            if self.announced.get(&r) != Some(&now) {
                self.announced.insert(r, now.clone());
                out.push((r, now));
            }
        }
        out
    }

    /// Stops every subscription that involves `p` (before its leg goes).
    fn drop_edges_of(&mut self, p: Pid) {
        let gone: Vec<(Pid, Pid)> = self.edges.keys().filter(|(f, t)| *f == p || *t == p).copied().collect();
        for (f, t) in gone {
            self.edges.remove(&(f, t));
            if let (Some(r), Some(a), Some(b)) = (&self.relay, self.legs.get(&f), self.legs.get(&t)) {
                let _ = r.unsubscribe(a.endpoint, b.endpoint);
            }
        }
        self.camera.retain(|(f, t)| *f != p && *t != p);
    }

    /// Whether `from`'s screen goes to `to`: every many-stream receiver
    /// but the sharer gets it, unless a moderator stopped `from`'s video.
    fn screen_flows(&self, from: Pid, to: Pid) -> bool {
        from != to
            && !self.stopped.contains(&from)
            && self.legs.get(&from).is_some_and(|l| l.screen.is_some())
            && self.legs.get(&to).is_some_and(|l| l.takes_many)
    }

    /// The payload map of the subscription from `from` to `to`: the
    /// camera's payload type when the router routes it, the screen's when
    /// it flows, each renumbered to the receiver's for the same codec;
    /// empty when nothing goes.
    fn edge_map(&self, from: Pid, to: Pid) -> relay::PayloadMap {
        let mut m = relay::PayloadMap::new();
        let (Some(a), Some(b)) = (self.legs.get(&from), self.legs.get(&to)) else {
            return m;
        };
        let mut add = |kind: VideoKind| {
            if let Some((f, _)) = a.published(kind) {
                if let Some(r) = b.receive_format(kind, f.codec) {
                    m.insert(f.payload_type, r.payload_type);
                }
            }
        };
        if self.camera.contains(&(from, to)) {
            add(VideoKind::Camera);
        }
        let distinct = match (a.sends, a.screen) {
            (Some((c, _)), Some((s, _))) => c.payload_type != s.payload_type,
            _ => true,
        };
        if self.screen_flows(from, to) && distinct {
            add(VideoKind::Screen);
        }
        m
    }

    /// Brings the relay's subscriptions to what the camera routing and the
    /// screens say; asks publishers for a keyframe where a receiver got a
    /// new stream (and for each of `keyframes`).
    fn sync(&mut self, keyframes: &[Pid]) {
        let mut want: BTreeMap<(Pid, Pid), relay::PayloadMap> = BTreeMap::new();
        let pairs: Vec<(Pid, Pid)> = self
            .legs
            .keys()
            .flat_map(|&f| self.legs.keys().map(move |&t| (f, t)))
            .filter(|(f, t)| f != t)
            .collect();
        for (f, t) in pairs {
            if !self.camera.contains(&(f, t)) && !self.screen_flows(f, t) {
                continue;
            }
            let map = self.edge_map(f, t);
            if map.is_empty() {
                tracing::debug!(from = f, to = t, "video: no codec in common, not forwarded");
                continue;
            }
            want.insert((f, t), map);
        }
        let mut ask: BTreeSet<Pid> = keyframes.iter().copied().collect();
        let gone: Vec<(Pid, Pid)> = self.edges.keys().filter(|k| !want.contains_key(k)).copied().collect();
        for (f, t) in gone {
            self.edges.remove(&(f, t));
            if let (Some(r), Some(a), Some(b)) = (&self.relay, self.legs.get(&f), self.legs.get(&t)) {
                let _ = r.unsubscribe(a.endpoint, b.endpoint);
            }
        }
        for ((f, t), map) in want {
            let old = self.edges.get(&(f, t)).copied();
            if old == Some(map) {
                continue;
            }
            if let (Some(r), Some(a), Some(b)) = (&self.relay, self.legs.get(&f), self.legs.get(&t)) {
                let alias = (b.takes_many && a.sends.is_some_and(|(_, s)| s.is_none())).then(|| alias_ssrc(f));
                if let Err(e) = r.subscribe_media_as(a.endpoint, b.endpoint, map, alias) {
                    tracing::warn!(from = f, to = t, error = %e, "video: subscription refused");
                    continue;
                }
            }
            // A stream the receiver did not get before starts with a keyframe.
            let screen_new = self.legs.get(&f).and_then(|l| l.screen).is_some_and(|(s, _)| {
                map.get(s.payload_type).is_some() && old.is_none_or(|o| o.get(s.payload_type).is_none())
            });
            if screen_new {
                ask.insert(f);
            }
            self.edges.insert((f, t), map);
        }
        for p in ask {
            self.ask_keyframe(p);
        }
    }

    /// Applies the router's decisions: camera edges, then the relay, then
    /// the keyframe requests (after the subscriptions they are for).
    fn apply(&mut self, ops: &[VideoOp]) {
        let mut keyframes = Vec::new();
        for op in ops {
            match *op {
                VideoOp::Subscribe { from, to } => {
                    if self.legs.contains_key(&from) && self.legs.contains_key(&to) {
                        self.camera.insert((from, to));
                    }
                }
                VideoOp::Unsubscribe { from, to } => {
                    self.camera.remove(&(from, to));
                }
                VideoOp::RequestKeyframe(p) => keyframes.push(p),
            }
        }
        self.sync(&keyframes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VideoOp::*;

    #[test]
    fn single_stream_receivers_follow_the_speaker_with_a_keyframe() {
        let mut v = VideoRouter::new();
        assert_eq!(v.join(1, true, false), vec![]);
        // 2 joins: 1 gets 2 (the only other publisher) and 2 gets 1.
        let ops = v.join(2, true, false);
        assert_eq!(
            ops,
            vec![
                Subscribe { from: 2, to: 1 },
                RequestKeyframe(2),
                Subscribe { from: 1, to: 2 },
                RequestKeyframe(1)
            ]
        );
        v.join(3, true, false);
        assert_eq!(v.source_of(3), Some(1));
        // 3 speaks: 1 and 2 switch to 3; 3 keeps its view; one keyframe request.
        let ops = v.speaker_changed(Some(3));
        assert_eq!(
            ops,
            vec![
                Unsubscribe { from: 2, to: 1 },
                Subscribe { from: 3, to: 1 },
                RequestKeyframe(3),
                Unsubscribe { from: 1, to: 2 },
                Subscribe { from: 3, to: 2 }
            ]
        );
        assert_eq!(v.source_of(3), Some(1), "the speaker does not see itself");
        // the same speaker again changes nothing
        assert_eq!(v.speaker_changed(Some(3)), vec![]);
    }

    #[test]
    fn sfu_receivers_get_every_publisher() {
        let mut v = VideoRouter::new();
        v.join(1, true, true);
        v.join(2, true, true);
        let ops = v.sfu_ops_for_join(2);
        assert_eq!(
            ops,
            vec![
                Subscribe { from: 1, to: 2 },
                RequestKeyframe(1),
                Subscribe { from: 2, to: 1 }
            ]
        );
        // a receive-only browser gets both, publishes nothing
        v.join(3, false, true);
        let ops = v.sfu_ops_for_join(3);
        assert_eq!(
            ops,
            vec![
                Subscribe { from: 1, to: 3 },
                RequestKeyframe(1),
                Subscribe { from: 2, to: 3 },
                RequestKeyframe(2)
            ]
        );
        // speaker changes do not touch SFU receivers
        assert_eq!(v.speaker_changed(Some(2)), vec![]);
    }

    #[test]
    fn stopped_video_and_leaving() {
        let mut v = VideoRouter::new();
        v.join(1, true, false);
        v.join(2, true, false);
        v.join(3, true, true);
        v.speaker_changed(Some(2));
        assert_eq!(v.source_of(1), Some(2));
        // a moderator stops 2's video: 1 falls back to 3
        let ops = v.set_stopped(2, true);
        assert!(ops.contains(&Unsubscribe { from: 2, to: 3 }), "{ops:?}");
        assert!(
            ops.contains(&Unsubscribe { from: 2, to: 1 }) && ops.contains(&Subscribe { from: 3, to: 1 }),
            "{ops:?}"
        );
        assert_eq!(v.source_of(1), Some(3));
        // allowed again: the speaker is back for 1, with a keyframe
        let ops = v.set_stopped(2, false);
        assert!(
            ops.contains(&Subscribe { from: 2, to: 1 }) && ops.contains(&RequestKeyframe(2)),
            "{ops:?}"
        );
        // 2 leaves: everything about 2 is torn down and 1 gets 3
        let ops = v.leave(2);
        assert!(ops.contains(&Unsubscribe { from: 2, to: 1 }), "{ops:?}");
        assert!(ops.contains(&Unsubscribe { from: 2, to: 3 }), "{ops:?}");
        assert_eq!(v.source_of(1), Some(3));
        assert_eq!(v.source_of(2), None);
    }

    fn leg(ep: u64, sends: Option<(VideoCodec, u8, u32)>, takes_many: bool, receives: &[(VideoCodec, u8)]) -> VideoLeg {
        VideoLeg {
            endpoint: relay::EndpointId(ep),
            sends: sends.map(|(codec, payload_type, ssrc)| (VideoFormat { codec, payload_type }, Some(ssrc))),
            receives: receives
                .iter()
                .map(|&(codec, payload_type)| VideoFormat { codec, payload_type })
                .collect(),
            takes_many,
            switched_ssrc: 0x5e1f,
            screen: None,
            receives_screen: Vec::new(),
        }
    }

    #[test]
    fn room_video_forwards_matching_codecs_and_announces_sources() {
        use VideoCodec::{Vp8, H264};
        let browser = [(Vp8, 96), (H264, 102)];
        let mut v = RoomVideo::new(None);
        v.set_leg(1, Some(leg(10, Some((Vp8, 96, 111)), true, &browser)), false);
        v.set_leg(2, Some(leg(20, Some((Vp8, 96, 222)), true, &browser)), false);
        // An H.264-only phone: gets no VP8 publisher, and its H.264 (PT 99)
        // reaches the browsers as their 102.
        v.set_leg(3, Some(leg(30, Some((H264, 99, 333)), false, &[(H264, 99)])), false);
        let mut edges = v.edges();
        edges.sort();
        assert_eq!(edges, vec![(1, 2), (2, 1), (3, 1), (3, 2)]);
        let ann: BTreeMap<Pid, Vec<VideoSource>> = v.take_announcements().into_iter().collect();
        assert_eq!(ann.len(), 2);
        assert_eq!(
            ann[&1],
            vec![
                VideoSource {
                    participant: 2,
                    kind: VideoKind::Camera,
                    ssrc: 222,
                    format: VideoFormat {
                        codec: Vp8,
                        payload_type: 96
                    }
                },
                VideoSource {
                    participant: 3,
                    kind: VideoKind::Camera,
                    ssrc: 333,
                    format: VideoFormat {
                        codec: H264,
                        payload_type: 102
                    }
                }
            ]
        );
        assert!(v.take_announcements().is_empty(), "nothing changed");
        // 1's path changed: keyframes from 2 and 3 (whom it gets) and 1 (whom 2 gets).
        assert_eq!(v.refresh(1), vec![1, 2, 3]);
        assert_eq!(v.refresh(3), vec![3], "the H.264 phone gets no VP8: it only sends");
        assert_eq!(v.refresh(9), Vec::<Pid>::new(), "not in the room");
        // A moderator stops 2's video: 1 no longer gets it.
        v.set_stopped(2, true);
        let ann = v.take_announcements();
        assert_eq!(ann.len(), 1);
        assert_eq!(ann[0].0, 1);
        assert_eq!(ann[0].1.iter().map(|s| s.participant).collect::<Vec<_>>(), vec![3]);
        // 3 leaves: its edges go.
        v.leave(3);
        assert_eq!(v.edges(), vec![(1, 2)]);
        assert_eq!(media_group("room-1"), media_group("room-1"));
        assert_ne!(media_group("room-1"), media_group("room-2"));
    }

    #[test]
    fn a_screen_share_is_a_second_stream_to_every_browser() {
        use VideoCodec::{Vp8, H264};
        let browser = [(Vp8, 96), (H264, 102)];
        let screen_pts = vec![
            VideoFormat {
                codec: Vp8,
                payload_type: 97,
            },
            VideoFormat {
                codec: H264,
                payload_type: 103,
            },
        ];
        let browser_leg = |ep, ssrc| VideoLeg {
            receives_screen: screen_pts.clone(),
            ..leg(ep, Some((Vp8, 96, ssrc)), true, &browser)
        };
        let mut v = RoomVideo::new(None);
        v.set_leg(1, Some(browser_leg(10, 111)), false);
        v.set_leg(2, Some(browser_leg(20, 222)), false);
        // A phone that takes one stream: it gets cameras, never screens.
        v.set_leg(3, Some(leg(30, Some((Vp8, 100, 333)), false, &[(Vp8, 100)])), false);
        v.take_announcements();
        let before = v.edges();

        // 1 shares its screen (VP8, payload type 97 on its bundle).
        let mut sharing = browser_leg(10, 111);
        sharing.screen = Some((
            VideoFormat {
                codec: Vp8,
                payload_type: 97,
            },
            Some(0x5c),
        ));
        v.set_leg(1, Some(sharing.clone()), false);
        assert_eq!(v.edges(), before, "the same pairs: the camera routing is untouched");
        let map = v.edges[&(1, 2)];
        assert_eq!(
            (map.get(96), map.get(97)),
            (Some(96), Some(97)),
            "camera and screen, told apart"
        );
        assert_eq!(
            v.edges.get(&(1, 3)).and_then(|m| m.get(97)),
            None,
            "the single-stream phone gets no screen"
        );
        let ann: BTreeMap<Pid, Vec<VideoSource>> = v.take_announcements().into_iter().collect();
        assert_eq!(ann.len(), 1, "only browser 2's sources changed: {ann:?}");
        assert_eq!(
            ann[&2],
            vec![
                VideoSource {
                    participant: 1,
                    kind: VideoKind::Camera,
                    ssrc: 111,
                    format: VideoFormat {
                        codec: Vp8,
                        payload_type: 96
                    }
                },
                VideoSource {
                    participant: 1,
                    kind: VideoKind::Screen,
                    ssrc: 0x5c,
                    format: VideoFormat {
                        codec: Vp8,
                        payload_type: 97
                    }
                },
                VideoSource {
                    participant: 3,
                    kind: VideoKind::Camera,
                    ssrc: 333,
                    format: VideoFormat {
                        codec: Vp8,
                        payload_type: 96
                    }
                },
            ]
        );

        // A moderator stops 1's video: camera and screen both stop.
        v.set_stopped(1, true);
        assert!(!v.edges().iter().any(|(f, _)| *f == 1), "{:?}", v.edges());
        v.set_stopped(1, false);
        assert_eq!(v.edges[&(1, 2)].get(97), Some(97), "back with the video");
        v.take_announcements();

        // 1 stops sharing: 2 keeps 1's camera only.
        sharing.screen = None;
        v.set_leg(1, Some(sharing), false);
        assert_eq!(v.edges[&(1, 2)].get(97), None);
        assert_eq!(v.edges[&(1, 2)].get(96), Some(96));
        let ann = v.take_announcements();
        assert_eq!(ann.len(), 1);
        assert!(ann[0].1.iter().all(|s| s.kind == VideoKind::Camera), "{ann:?}");

        // A screen without a camera still reaches the others.
        let mut screen_only = leg(10, None, true, &browser);
        screen_only.screen = Some((
            VideoFormat {
                codec: Vp8,
                payload_type: 97,
            },
            Some(0x5d),
        ));
        v.set_leg(1, Some(screen_only), false);
        assert_eq!(v.edges[&(1, 2)].get(97), Some(97));
        assert_eq!(v.edges[&(1, 2)].get(96), None, "no camera");
        assert_eq!(v.edges.get(&(1, 3)), None);
    }

    #[test]
    fn keyframe_hooks_hear_every_request_and_receivers_ask_their_sources() {
        let mut v = RoomVideo::new(None);
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        v.set_keyframe_hook(1, tx1);
        v.set_keyframe_hook(2, tx2);
        let h264 = [(VideoCodec::H264, 96)];
        v.set_leg(
            1,
            Some(leg(11, Some((VideoCodec::H264, 96, 0x11)), false, &h264)),
            false,
        );
        assert!(rx1.try_recv().is_err(), "alone: nobody gets 1's video");
        // 2 joins: each gets the other's video, each asked for a keyframe.
        v.set_leg(
            2,
            Some(leg(12, Some((VideoCodec::H264, 96, 0x12)), false, &h264)),
            false,
        );
        assert!(rx1.try_recv().is_ok() && rx2.try_recv().is_ok());
        // 2 wants a keyframe of what it receives: 1 is asked, 2 is not.
        assert_eq!(v.request_keyframe_for(2), vec![1]);
        assert!(rx1.try_recv().is_ok());
        assert!(rx2.try_recv().is_err());
        // Gone with the participant.
        v.leave(1);
        assert_eq!(v.request_keyframe_for(2), Vec::<Pid>::new());
        assert!(rx1.try_recv().is_err());
    }
}
