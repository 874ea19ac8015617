//! What protocol cores report ([`CallEvent`]) and what the router tells them
//! to do ([`CallCommand`]).

use crate::dial::CallString;
use crate::ids::LegId;
use crate::media::MediaDescription;
use crate::party::Party;
use crate::reason::{EndReason, Prompt};

/// Something that happened on a leg, reported by a protocol core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A new leg: someone is calling.
    Incoming {
        /// The new leg.
        leg: LegId,
        /// What was dialed.
        dialed: CallString,
        /// Who is calling.
        party: Party,
        /// The media offer, or `None` when the caller expects an offer
        /// (SIP INVITE without SDP, H.323 without Fast Connect).
        offer: Option<MediaDescription>,
    },
    /// The far end of an outgoing leg is alerting.
    Ringing {
        /// The leg.
        leg: LegId,
    },
    /// The far end of an outgoing leg answered.
    Answered {
        /// The leg.
        leg: LegId,
        /// The media answer, if it came with the answer.
        answer: Option<MediaDescription>,
    },
    /// DTMF digits arrived (RFC 4733 events, SIP INFO, H.245
    /// userInputIndication, …), in order.
    Digits {
        /// The leg.
        leg: LegId,
        /// The digits: `0-9`, `*`, `#`, `A-D`.
        digits: String,
    },
    /// The endpoint changed its media (re-INVITE, H.245 reopen, hold).
    MediaChanged {
        /// The leg.
        leg: LegId,
        /// The new description.
        media: MediaDescription,
    },
    /// The leg is gone. No further events follow for it.
    Ended {
        /// The leg.
        leg: LegId,
        /// Why.
        reason: EndReason,
    },
}

impl CallEvent {
    /// The leg the event is about.
    pub fn leg(&self) -> LegId {
        match self {
            CallEvent::Incoming { leg, .. }
            | CallEvent::Ringing { leg }
            | CallEvent::Answered { leg, .. }
            | CallEvent::Digits { leg, .. }
            | CallEvent::MediaChanged { leg, .. }
            | CallEvent::Ended { leg, .. } => *leg,
        }
    }
}

/// An instruction from the router to the protocol core owning a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    /// Tell the caller the call is alerting (SIP 180, H.225 Alerting).
    Ring {
        /// The leg.
        leg: LegId,
    },
    /// Answer an incoming leg with this media.
    Answer {
        /// The leg.
        leg: LegId,
        /// The media answer.
        media: MediaDescription,
    },
    /// Refuse an incoming leg that has not been answered.
    Reject {
        /// The leg.
        leg: LegId,
        /// Why.
        reason: EndReason,
    },
    /// Play a prompt on an answered leg.
    PlayPrompt {
        /// The leg.
        leg: LegId,
        /// Which prompt.
        prompt: Prompt,
    },
    /// Collect up to `max` digits, stopping early at `terminator` (not
    /// included in the reported digits).
    CollectDigits {
        /// The leg.
        leg: LegId,
        /// Most digits to collect.
        max: usize,
        /// Digit that ends collection early, e.g. `'#'`.
        terminator: Option<char>,
    },
    /// End an answered leg (or cancel an unanswered outgoing one).
    Hangup {
        /// The leg.
        leg: LegId,
        /// Why.
        reason: EndReason,
    },
    /// Subscribe two legs to each other's media: a two-party call.
    Bridge {
        /// One leg.
        a: LegId,
        /// The other leg.
        b: LegId,
    },
    /// Put the leg into a conference.
    AttachToConference {
        /// The leg.
        leg: LegId,
        /// The conference id (lowercase, as in [`CallString::Conference`]).
        conference: String,
    },
}

impl CallCommand {
    /// The leg the command is for; for [`CallCommand::Bridge`] leg `a`.
    pub fn leg(&self) -> LegId {
        match self {
            CallCommand::Ring { leg }
            | CallCommand::Answer { leg, .. }
            | CallCommand::Reject { leg, .. }
            | CallCommand::PlayPrompt { leg, .. }
            | CallCommand::CollectDigits { leg, .. }
            | CallCommand::Hangup { leg, .. }
            | CallCommand::AttachToConference { leg, .. } => *leg,
            CallCommand::Bridge { a, .. } => *a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::party::Protocol;

    #[test]
    fn event_leg() {
        let leg = LegId(3);
        let events = [
            CallEvent::Incoming {
                leg,
                dialed: CallString::Empty,
                party: Party::anonymous("x", Protocol::Loopback),
                offer: Some(MediaDescription::pcm_audio()),
            },
            CallEvent::Ringing { leg },
            CallEvent::Answered { leg, answer: None },
            CallEvent::Digits {
                leg,
                digits: "12#".into(),
            },
            CallEvent::MediaChanged {
                leg,
                media: MediaDescription::default(),
            },
            CallEvent::Ended {
                leg,
                reason: EndReason::Normal,
            },
        ];
        for e in &events {
            assert_eq!(e.leg(), leg, "{e:?}");
        }
    }

    #[test]
    fn command_leg() {
        let leg = LegId(9);
        let commands = [
            CallCommand::Ring { leg },
            CallCommand::Answer {
                leg,
                media: MediaDescription::pcm_audio(),
            },
            CallCommand::Reject {
                leg,
                reason: EndReason::Busy,
            },
            CallCommand::PlayPrompt {
                leg,
                prompt: Prompt::EnterPin,
            },
            CallCommand::CollectDigits {
                leg,
                max: 8,
                terminator: Some('#'),
            },
            CallCommand::Hangup {
                leg,
                reason: EndReason::Kicked,
            },
            CallCommand::Bridge { a: leg, b: LegId(10) },
            CallCommand::AttachToConference {
                leg,
                conference: "room".into(),
            },
        ];
        for c in &commands {
            assert_eq!(c.leg(), leg, "{c:?}");
        }
    }
}
