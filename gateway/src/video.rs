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
}
