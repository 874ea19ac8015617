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

use std::collections::BTreeMap;

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
}

/// A publisher's video as one many-stream receiver gets it: what its SDP
/// must announce so that the page knows whose stream it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSource {
    /// The publisher's participant id.
    pub participant: u64,
    /// The SSRC the stream arrives with.
    pub ssrc: u32,
    /// Codec and payload type as the receiver gets them.
    pub format: VideoFormat,
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
#[derive(Debug, Default)]
pub struct RoomVideo {
    router: VideoRouter,
    legs: BTreeMap<Pid, VideoLeg>,
    edges: BTreeMap<(Pid, Pid), relay::PayloadMap>,
    relay: Option<relay::Relay>,
    announced: BTreeMap<Pid, Vec<VideoSource>>,
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
    /// moderator stopped its video before it had any.
    pub fn set_leg(&mut self, p: Pid, leg: Option<VideoLeg>, stopped: bool) {
        if self.legs.contains_key(&p) {
            let ops = self.router.leave(p);
            self.apply(&ops);
            self.drop_edges_of(p);
        }
        self.legs.remove(&p);
        let Some(leg) = leg else { return };
        if !leg.takes_many {
            if let Some(r) = &self.relay {
                if let Err(e) = r.set_rewrite(leg.endpoint, Some(leg.switched_ssrc), 3000) {
                    tracing::warn!(participant = p, error = %e, "video: no switched stream");
                }
            }
        }
        if leg.sends.is_some() {
            if let (Some(r), Some((f, _))) = (&self.relay, leg.sends) {
                let _ = r.set_untapped(leg.endpoint, relay::PayloadMap::identity(&[f.payload_type]));
            }
        }
        let (publishes, takes_many) = (leg.sends.is_some(), leg.takes_many);
        self.legs.insert(p, leg);
        let mut ops = self.router.join(p, publishes, takes_many);
        ops.extend(self.router.sfu_ops_for_join(p));
        if stopped {
            ops.extend(self.router.set_stopped(p, true));
        }
        self.apply(&ops);
    }

    /// `p` left the room.
    pub fn leave(&mut self, p: Pid) {
        if self.legs.remove(&p).is_some() {
            let ops = self.router.leave(p);
            self.apply(&ops);
            self.drop_edges_of(p);
        }
        self.announced.remove(&p);
    }

    /// The active speaker changed.
    pub fn speaker_changed(&mut self, speaker: Option<Pid>) {
        let ops = self.router.speaker_changed(speaker);
        self.apply(&ops);
    }

    /// A moderator stopped or allowed `p`'s video.
    pub fn set_stopped(&mut self, p: Pid, stopped: bool) {
        let ops = self.router.set_stopped(p, stopped);
        self.apply(&ops);
    }

    /// Who sends video to whom now (publisher, receiver).
    pub fn edges(&self) -> Vec<(Pid, Pid)> {
        self.edges.keys().copied().collect()
    }

    /// For each many-stream receiver whose sources changed since the last
    /// call, its sources now (publishers whose SSRC is known).
    pub fn take_announcements(&mut self) -> Vec<(Pid, Vec<VideoSource>)> {
        let mut out = Vec::new();
        for (&r, leg) in &self.legs {
            if !leg.takes_many {
                continue;
            }
            let now: Vec<VideoSource> = self
                .edges
                .iter()
                .filter(|((_, to), _)| *to == r)
                .filter_map(|(&(from, _), map)| {
                    let (f, ssrc) = self.legs.get(&from)?.sends?;
                    let pt = map.get(f.payload_type)?;
                    Some(VideoSource {
                        participant: from,
                        ssrc: ssrc?,
                        format: VideoFormat {
                            codec: f.codec,
                            payload_type: pt,
                        },
                    })
                })
                .collect();
            if self.announced.get(&r) != Some(&now) {
                self.announced.insert(r, now.clone());
                out.push((r, now));
            }
        }
        out
    }

    fn drop_edges_of(&mut self, p: Pid) {
        let gone: Vec<(Pid, Pid)> = self.edges.keys().filter(|(f, t)| *f == p || *t == p).copied().collect();
        for (f, t) in gone {
            self.edges.remove(&(f, t));
            if let (Some(r), Some(a), Some(b)) = (&self.relay, self.legs.get(&f), self.legs.get(&t)) {
                let _ = r.unsubscribe(a.endpoint, b.endpoint);
            }
        }
    }

    /// The payload map from `from`'s video to `to`'s: the same codec,
    /// renumbered; empty when they share none.
    fn payload_map(from: &VideoLeg, to: &VideoLeg) -> relay::PayloadMap {
        let mut m = relay::PayloadMap::new();
        if let Some((f, _)) = from.sends {
            if let Some(r) = to.receives.iter().find(|r| r.codec == f.codec) {
                m.insert(f.payload_type, r.payload_type);
            }
        }
        m
    }

    fn apply(&mut self, ops: &[VideoOp]) {
        for op in ops {
            match *op {
                VideoOp::Subscribe { from, to } => {
                    let (Some(a), Some(b)) = (self.legs.get(&from), self.legs.get(&to)) else {
                        continue;
                    };
                    let map = Self::payload_map(a, b);
                    if map.is_empty() {
                        tracing::info!(from, to, "video: no codec in common, not forwarded");
                        continue;
                    }
                    if let Some(r) = &self.relay {
                        if let Err(e) = r.subscribe_media(a.endpoint, b.endpoint, map) {
                            tracing::warn!(from, to, error = %e, "video: subscription refused");
                            continue;
                        }
                    }
                    self.edges.insert((from, to), map);
                }
                VideoOp::Unsubscribe { from, to } => {
                    if self.edges.remove(&(from, to)).is_none() {
                        continue;
                    }
                    if let (Some(r), Some(a), Some(b)) = (&self.relay, self.legs.get(&from), self.legs.get(&to)) {
                        let _ = r.unsubscribe(a.endpoint, b.endpoint);
                    }
                }
                VideoOp::RequestKeyframe(p) => {
                    if let (Some(r), Some(a)) = (&self.relay, self.legs.get(&p)) {
                        let _ = r.request_keyframe(a.endpoint);
                    }
                }
            }
        }
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
                    ssrc: 222,
                    format: VideoFormat {
                        codec: Vp8,
                        payload_type: 96
                    }
                },
                VideoSource {
                    participant: 3,
                    ssrc: 333,
                    format: VideoFormat {
                        codec: H264,
                        payload_type: 102
                    }
                }
            ]
        );
        assert!(v.take_announcements().is_empty(), "nothing changed");
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
}
