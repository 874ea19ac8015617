//! Fast Connect media (H.323 §8.1.7): the fastStart OpenLogicalChannel
//! proposals of a Setup, the set the called side accepts in Connect, and
//! the H.245 capability set confgate announces, and the audio codecs taken
//! on channels opened by H.245.
//!
//! In a fastStart proposal (H.323 §8.1.7.1) the *caller* describes each
//! channel from its own point of view:
//! - a channel it would **send** on has the codec in
//!   `forwardLogicalChannelParameters` and no `mediaChannel` (the called
//!   side fills in where it receives, its RTP address);
//! - a channel it would **receive** on has `nullData` forward parameters and
//!   the codec in `reverseLogicalChannelParameters`, whose `mediaChannel` is
//!   the caller's RTP receive address.
//!
//! The called side accepts at most one proposal per direction and session
//! (audio is session 1) and returns them in Connect: the forward ones with
//! its own `mediaChannel`/`mediaControlChannel` filled in, the reverse ones
//! as proposed. Only G.711 µ-law and A-law (64 kbit/s) are taken for
//! audio.
//!
//! Video (session 2) is H.264 as ITU-T H.241 signals it in H.245: a
//! genericVideoCapability with the H.264 capability identifier
//! ([`H264_OID`]) and the Profile, Level and ProfileIOP parameters
//! ([`H264`]). A caller's H.264 proposals ([`MediaOffer::video`]) are
//! accepted with [`MediaOffer::accept_video`]; H.261, H.263 and other video
//! proposals are never accepted (left out of Connect, which refuses them:
//! H.323 §8.1.7.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rasn::types::{ObjectIdentifier, OctetString, SetOf};

use crate::asn1::{self, h225, h245, PerError};

/// The H.245 audio session id (H.245 §7.2.2 / H.225.0 §6.2.8.1: 1 is audio).
pub const AUDIO_SESSION: u8 = 1;

/// The H.245 video session id (H.225.0 §6.2.8.1: 2 is video).
pub const VIDEO_SESSION: u8 = 2;

/// The RTP payload type confgate gives H.264 on the video channels it
/// opens (a dynamic one, H.225.0 §6.2.8.1 `dynamicRTPPayloadType`).
pub const H264_PAYLOAD_TYPE: u8 = 96;

/// H.264's capability identifier in H.245 genericVideoCapability (ITU-T
/// H.241 §8.3.1: `itu-t(0) recommendation(0) h(8) 241 specificCodec(0)
/// h264(0) generic-capabilities(1)`).
pub const H264_OID: [u32; 7] = [0, 0, 8, 241, 0, 0, 1];

/// H.241 §8.3.2.1 Profile parameter (booleanArray): the Baseline bit.
pub const H264_PROFILE_BASELINE: u8 = 64;
/// H.241 §8.3.2.1 ProfileIOP parameter (booleanArray): the bit of
/// `constraint_set1_flag` (value 64), which with Baseline is Constrained
/// Baseline.
pub const H264_IOP_CONSTRAINT_SET1: u8 = 64;

/// H.241 generic parameter identifiers (Table 8-4 of H.241).
mod h241 {
    pub(super) const PROFILE: u8 = 41;
    pub(super) const LEVEL: u8 = 42;
    pub(super) const PROFILE_IOP: u8 = 46;
}

/// H.264 video as H.241 signals it in H.245: profile, level and the
/// largest bit rate, the parameters confgate announces and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct H264 {
    /// The Profile booleanArray (H.241: 64 Baseline, 32 Main, 16
    /// Extended, 8 High).
    pub profile: u8,
    /// The ProfileIOP booleanArray (constraint flags; 0 when absent).
    pub profile_iop: u8,
    /// The Level in H.241 coding (H.241 Table 8-5: 15 is level 1, 22 is
    /// 1.1, 29 is 1.2, 36 is 1.3, 43 is 2, 50 is 2.1, 57 is 2.2, 64 is 3,
    /// 71 is 3.1, 78 is 3.2, 85 is 4, and so on by 7).
    pub level: u16,
    /// The largest bit rate in units of 100 bit/s (H.245
    /// GenericCapability `maxBitRate`), if given.
    pub max_bit_rate: Option<u32>,
}

impl H264 {
    /// What confgate receives and sends: Constrained Baseline at level
    /// 3.1 (720p at 30 frames/s), up to 2 Mbit/s. It forwards H.264 as it
    /// comes (no transcoding), so this is what browsers and SIP phones
    /// decode.
    pub const CONSTRAINED_BASELINE: H264 = H264 {
        profile: H264_PROFILE_BASELINE,
        profile_iop: H264_IOP_CONSTRAINT_SET1,
        level: 71,
        max_bit_rate: Some(20_000),
    };

    /// Whether the Baseline profile is among those announced (what
    /// confgate's H.264 needs; Constrained Baseline is its subset).
    pub fn takes_baseline(&self) -> bool {
        self.profile & H264_PROFILE_BASELINE != 0
    }

    /// The capability both sides can use on a channel: Baseline, the lower
    /// level and bit rate.
    pub fn common(&self, other: &H264) -> H264 {
        H264 {
            profile: H264_PROFILE_BASELINE,
            profile_iop: self.profile_iop & other.profile_iop,
            level: self.level.min(other.level),
            max_bit_rate: match (self.max_bit_rate, other.max_bit_rate) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// The level as H.264 names it (`3.1`), from the H.241 coding.
    pub fn level_name(&self) -> String {
        // H.241 Table 8-5: 15 + 7·k for the levels in order, 1b being 19.
        const NAMES: [&str; 16] = [
            "1", "1.1", "1.2", "1.3", "2", "2.1", "2.2", "3", "3.1", "3.2", "4", "4.1", "4.2", "5", "5.1", "5.2",
        ];
        if self.level == 19 {
            return "1b".into();
        }
        let k = self
            .level
            .checked_sub(15)
            .filter(|d| d % 7 == 0)
            .map(|d| usize::from(d / 7));
        match k.and_then(|k| NAMES.get(k)) {
            Some(n) => (*n).to_string(),
            None => format!("H.241 level {}", self.level),
        }
    }

    /// The H.245 genericVideoCapability (H.241 §8.3): profile and level
    /// collapsing, with ProfileIOP when it has flags.
    pub fn capability(&self) -> h245::VideoCapability {
        let param = |id: u8, value| h245::GenericParameter::new(h245::ParameterIdentifier::standard(id), value, None);
        let mut collapsing = vec![
            param(h241::PROFILE, h245::ParameterValue::booleanArray(self.profile)),
            param(h241::LEVEL, h245::ParameterValue::unsignedMin(self.level)),
        ];
        if self.profile_iop != 0 {
            collapsing.push(param(
                h241::PROFILE_IOP,
                h245::ParameterValue::booleanArray(self.profile_iop),
            ));
        }
        h245::VideoCapability::genericVideoCapability(h245::GenericCapability::new(
            h245::CapabilityIdentifier::standard(h264_oid()),
            self.max_bit_rate,
            Some(collapsing),
            None,
            None,
            None,
        ))
    }

    /// The H.264 parameters of an H.245 video capability, if it is H.264's
    /// generic capability with a profile and a level (H.241 makes both
    /// mandatory). H.261, H.263 and every other video give `None`.
    pub fn from_capability(cap: &h245::VideoCapability) -> Option<H264> {
        let h245::VideoCapability::genericVideoCapability(g) = cap else {
            return None;
        };
        let h245::CapabilityIdentifier::standard(oid) = &g.capability_identifier else {
            return None;
        };
        if oid.as_ref() != H264_OID.as_slice() {
            return None;
        }
        let (mut profile, mut level, mut profile_iop) = (None, None, 0);
        for p in g.collapsing.iter().flatten() {
            let h245::ParameterIdentifier::standard(id) = p.parameter_identifier else {
                continue;
            };
            match (id, &p.parameter_value) {
                (h241::PROFILE, h245::ParameterValue::booleanArray(v)) => profile = Some(*v),
                (h241::LEVEL, h245::ParameterValue::unsignedMin(v)) => level = Some(*v),
                (h241::PROFILE_IOP, h245::ParameterValue::booleanArray(v)) => profile_iop = *v,
                _ => {}
            }
        }
        Some(H264 {
            profile: profile?,
            profile_iop,
            level: level?,
            max_bit_rate: g.max_bit_rate,
        })
    }
}

fn h264_oid() -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(std::borrow::Cow::Borrowed(&H264_OID))
}

/// The G.711 variants taken by Fast Connect (ITU-T G.711, 64 kbit/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law (PCMU, RTP payload type 0).
    Ulaw,
    /// A-law (PCMA, RTP payload type 8).
    Alaw,
}

impl G711 {
    /// The static RTP payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Ulaw => 0,
            G711::Alaw => 8,
        }
    }

    /// The H.245 audio capability with `frames` (maximum audio frames per
    /// packet, H.245 §6.2.8.1).
    pub fn capability(self, frames: u16) -> h245::AudioCapability {
        match self {
            G711::Ulaw => h245::AudioCapability::g711Ulaw64k(frames),
            G711::Alaw => h245::AudioCapability::g711Alaw64k(frames),
        }
    }

    /// The variant and frames of an H.245 audio capability, if it is 64 kbit/s G.711.
    pub fn from_capability(cap: &h245::AudioCapability) -> Option<(G711, u16)> {
        match cap {
            h245::AudioCapability::g711Ulaw64k(f) => Some((G711::Ulaw, *f)),
            h245::AudioCapability::g711Alaw64k(f) => Some((G711::Alaw, *f)),
            _ => None,
        }
    }
}

impl From<G711> for AudioCodec {
    fn from(c: G711) -> Self {
        match c {
            G711::Ulaw => AudioCodec::Pcmu,
            G711::Alaw => AudioCodec::Pcma,
        }
    }
}

/// The audio codecs confgate takes on channels opened by H.245
/// OpenLogicalChannel (H.245 §6.2.8 AudioCapability): G.711 at 64 kbit/s
/// and G.722 at 64 kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law (PCMU, RTP payload type 0).
    Pcmu,
    /// G.711 A-law (PCMA, RTP payload type 8).
    Pcma,
    /// G.722 64 kbit/s (RTP payload type 9, RTP clock 8000: RFC 3551 §4.5.2).
    G722,
}

impl AudioCodec {
    /// Every codec this crate takes, in confgate's order of preference.
    pub const ALL: [AudioCodec; 3] = [AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma];

    /// The static RTP payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
            AudioCodec::G722 => 9,
        }
    }

    /// The H.245 audio capability with `frames` (for G.711 and G.722 the
    /// longest packet in milliseconds, H.245 §6.2.8.1).
    pub fn capability(self, frames: u16) -> h245::AudioCapability {
        match self {
            AudioCodec::Pcmu => h245::AudioCapability::g711Ulaw64k(frames),
            AudioCodec::Pcma => h245::AudioCapability::g711Alaw64k(frames),
            AudioCodec::G722 => h245::AudioCapability::g722_64k(frames),
        }
    }

    /// The codec and frames of an H.245 audio capability, if it is one
    /// this crate takes.
    pub fn from_capability(cap: &h245::AudioCapability) -> Option<(AudioCodec, u16)> {
        match cap {
            h245::AudioCapability::g711Ulaw64k(f) => Some((AudioCodec::Pcmu, *f)),
            h245::AudioCapability::g711Alaw64k(f) => Some((AudioCodec::Pcma, *f)),
            h245::AudioCapability::g722_64k(f) => Some((AudioCodec::G722, *f)),
            _ => None,
        }
    }

    /// The codec's name as H.245 and SDP spell it.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
            AudioCodec::G722 => "G722",
        }
    }
}

/// Which way a proposed channel carries media, seen from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The caller sends (forward parameters carry the codec).
    CallerSends,
    /// The caller receives (reverse parameters carry the codec).
    CallerReceives,
}

/// One decoded fastStart proposal that this crate can take.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The codec.
    pub codec: G711,
    /// Maximum frames per packet the caller asked for.
    pub frames: u16,
    /// Which way it carries media.
    pub direction: Direction,
    /// The H.245 session id.
    pub session_id: u8,
    /// Where the caller receives RTP (reverse proposals).
    pub media: Option<SocketAddr>,
    /// The caller's RTCP address.
    pub media_control: Option<SocketAddr>,
    olc: h245::OpenLogicalChannel,
}

/// The G.711 audio proposals of a Setup's fastStart element, in the
/// caller's order of preference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaOffer {
    /// The proposals taken (others — video, other codecs, undecodable
    /// elements — are left out).
    pub proposals: Vec<Proposal>,
    /// Whether the Setup carried a fastStart element at all.
    pub fast_start: bool,
    /// The H.264 video proposals (H.241 generic capability), in the
    /// caller's order.
    pub video: Vec<VideoProposal>,
    /// How many video proposals were left out (H.261, H.263, other video,
    /// or H.264 without a dynamic payload type): they are not accepted.
    pub video_refused: u16,
}

/// One fastStart H.264 video proposal (H.323 §8.1.7.1, session 2).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProposal {
    /// The H.264 parameters proposed.
    pub h264: H264,
    /// Which way it carries video.
    pub direction: Direction,
    /// The H.245 session id.
    pub session_id: u8,
    /// The RTP payload type the channel uses (`dynamicRTPPayloadType`).
    pub payload_type: u8,
    /// Where the caller receives RTP (reverse proposals).
    pub media: Option<SocketAddr>,
    /// The caller's RTCP address.
    pub media_control: Option<SocketAddr>,
    olc: h245::OpenLogicalChannel,
}

/// The video side of an accepted Fast Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFastConnect {
    /// The caller sends H.264 with these parameters and this payload type
    /// (its forward proposal was accepted).
    pub receive: Option<(H264, u8)>,
    /// The caller receives H.264 with these parameters and this payload
    /// type (its reverse proposal was accepted).
    pub send: Option<(H264, u8)>,
    /// Where the caller receives video RTP, if it said.
    pub peer_rtp: Option<SocketAddr>,
    /// Where the caller receives video RTCP, if it said.
    pub peer_rtcp: Option<SocketAddr>,
    /// The caller's logical channel number of the channel it sends on
    /// (where key frame requests go).
    pub receive_channel: Option<u16>,
}

/// The media side of an accepted Fast Connect: what the driver tells the
/// relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastConnect {
    /// The codec, both directions.
    pub codec: G711,
    /// Where the caller receives RTP, if it said (else latch on its packets).
    pub peer_rtp: Option<SocketAddr>,
    /// Where the caller receives RTCP, if it said.
    pub peer_rtcp: Option<SocketAddr>,
}

impl MediaOffer {
    /// Decodes the fastStart element (each item one PER-encoded
    /// OpenLogicalChannel). Items that do not decode or are not G.711 audio
    /// are skipped.
    pub fn from_fast_start(fast_start: Option<&[OctetString]>) -> Self {
        let Some(items) = fast_start else {
            return Self::default();
        };
        let olcs: Vec<h245::OpenLogicalChannel> = items
            .iter()
            .filter_map(|b| asn1::decode::<h245::OpenLogicalChannel>(b).ok())
            .collect();
        let mut video = Vec::new();
        let mut video_refused = 0;
        for olc in &olcs {
            if is_video(olc) {
                match video_proposal(olc.clone()) {
                    Some(v) if video.len() < MAX_VIDEO_PROPOSALS => video.push(v),
                    _ => video_refused = u16::saturating_add(video_refused, 1),
                }
            }
        }
        let proposals = olcs.into_iter().filter_map(proposal).collect();
        Self {
            proposals,
            fast_start: true,
            video,
            video_refused,
        }
    }

    /// Accepts the H.264 video proposals (at most one each way, session
    /// 2): the OpenLogicalChannels to add to Connect's fastStart (our
    /// video RTP and RTCP receive addresses in the forward one) and what
    /// the channels carry. `None`: no H.264 was proposed. Proposals of
    /// other video (H.263...) are never accepted: a caller takes a
    /// proposal left out of Connect as refused (H.323 §8.1.7.1).
    pub fn accept_video(
        &self,
        local_rtp: SocketAddr,
        local_rtcp: SocketAddr,
    ) -> Option<(VideoFastConnect, Vec<h245::OpenLogicalChannel>)> {
        let find = |d: Direction| self.video.iter().find(|p| p.direction == d && p.h264.takes_baseline());
        let (forward, reverse) = (find(Direction::CallerSends), find(Direction::CallerReceives));
        if forward.is_none() && reverse.is_none() {
            return None;
        }
        let mut accepted = Vec::new();
        let mut media = VideoFastConnect {
            receive: None,
            send: None,
            peer_rtp: None,
            peer_rtcp: None,
            receive_channel: None,
        };
        if let Some(p) = forward {
            let mut olc = p.olc.clone();
            if let h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
                h,
            ) = &mut olc.forward_logical_channel_parameters.multiplex_parameters
            {
                h.media_channel = Some(to_h245(local_rtp));
                h.media_control_channel = Some(to_h245(local_rtcp));
            }
            accepted.push(olc);
            media.receive = Some((p.h264, p.payload_type));
            media.receive_channel = Some(p.olc.forward_logical_channel_number.0);
            media.peer_rtcp = p.media_control;
        }
        if let Some(p) = reverse {
            accepted.push(p.olc.clone());
            media.send = Some((p.h264, p.payload_type));
            media.peer_rtp = p.media;
            media.peer_rtcp = p.media_control.or(media.peer_rtcp);
        }
        Some((media, accepted))
    }

    /// The codecs proposed, in the caller's order, each once.
    pub fn codecs(&self) -> Vec<G711> {
        let mut out = Vec::new();
        for p in &self.proposals {
            if !out.contains(&p.codec) {
                out.push(p.codec);
            }
        }
        out
    }

    /// The first codec of the caller's that is in `ours`.
    pub fn choose(&self, ours: &[G711]) -> Option<G711> {
        self.codecs().into_iter().find(|c| ours.contains(c))
    }

    fn find(&self, codec: G711, direction: Direction) -> Option<&Proposal> {
        self.proposals
            .iter()
            .find(|p| p.codec == codec && p.direction == direction && p.session_id == AUDIO_SESSION)
    }

    /// Accepts `codec`: the OpenLogicalChannels to return in Connect (our
    /// RTP and RTCP receive addresses in the forward channel) and the
    /// caller's addresses. `None`: the caller did not propose `codec`.
    pub fn accept(
        &self,
        codec: G711,
        local_rtp: SocketAddr,
        local_rtcp: SocketAddr,
    ) -> Option<(FastConnect, Vec<h245::OpenLogicalChannel>)> {
        let forward = self.find(codec, Direction::CallerSends);
        let reverse = self.find(codec, Direction::CallerReceives);
        if forward.is_none() && reverse.is_none() {
            return None;
        }
        let mut accepted = Vec::new();
        if let Some(p) = forward {
            let mut olc = p.olc.clone();
            if let h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
                h,
            ) = &mut olc.forward_logical_channel_parameters.multiplex_parameters
            {
                h.media_channel = Some(to_h245(local_rtp));
                h.media_control_channel = Some(to_h245(local_rtcp));
            }
            accepted.push(olc);
        }
        let mut media = FastConnect {
            codec,
            peer_rtp: None,
            peer_rtcp: forward.and_then(|p| p.media_control),
        };
        if let Some(p) = reverse {
            media.peer_rtp = p.media;
            media.peer_rtcp = p.media_control.or(media.peer_rtcp);
            accepted.push(p.olc.clone());
        }
        Some((media, accepted))
    }
}

/// Most video proposals of one Setup looked at.
const MAX_VIDEO_PROPOSALS: usize = 16;

/// Whether an OpenLogicalChannel (a proposal) carries video either way.
fn is_video(olc: &h245::OpenLogicalChannel) -> bool {
    matches!(
        olc.forward_logical_channel_parameters.data_type,
        h245::DataType::videoData(_)
    ) || olc
        .reverse_logical_channel_parameters
        .as_ref()
        .is_some_and(|r| matches!(r.data_type, h245::DataType::videoData(_)))
}

/// The proposal an OpenLogicalChannel makes, if it is H.264 video over
/// H.225.0 with its dynamic payload type.
fn video_proposal(olc: h245::OpenLogicalChannel) -> Option<VideoProposal> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as Rev;
    let fwd = &olc.forward_logical_channel_parameters;
    if let (h245::DataType::videoData(cap), Fwd::h2250LogicalChannelParameters(h)) =
        (&fwd.data_type, &fwd.multiplex_parameters)
    {
        let h264 = H264::from_capability(cap)?;
        return Some(VideoProposal {
            h264,
            direction: Direction::CallerSends,
            session_id: h.session_id,
            payload_type: h.dynamic_rtppayload_type?,
            media: None,
            media_control: h.media_control_channel.as_ref().and_then(from_h245),
            olc,
        });
    }
    let rev = olc.reverse_logical_channel_parameters.as_ref()?;
    let h245::DataType::videoData(cap) = &rev.data_type else {
        return None;
    };
    let h264 = H264::from_capability(cap)?;
    let Some(Rev::h2250LogicalChannelParameters(h)) = &rev.multiplex_parameters else {
        return None;
    };
    Some(VideoProposal {
        h264,
        direction: Direction::CallerReceives,
        session_id: h.session_id,
        payload_type: h.dynamic_rtppayload_type?,
        media: h.media_channel.as_ref().and_then(from_h245),
        media_control: h.media_control_channel.as_ref().and_then(from_h245),
        olc,
    })
}

/// The proposal an OpenLogicalChannel makes, if it is G.711 audio over H.225.0.
fn proposal(olc: h245::OpenLogicalChannel) -> Option<Proposal> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as Rev;
    let fwd = &olc.forward_logical_channel_parameters;
    if let (h245::DataType::audioData(cap), Fwd::h2250LogicalChannelParameters(h)) =
        (&fwd.data_type, &fwd.multiplex_parameters)
    {
        let (codec, frames) = G711::from_capability(cap)?;
        return Some(Proposal {
            codec,
            frames,
            direction: Direction::CallerSends,
            session_id: h.session_id,
            media: None,
            media_control: h.media_control_channel.as_ref().and_then(from_h245),
            olc,
        });
    }
    let rev = olc.reverse_logical_channel_parameters.as_ref()?;
    let h245::DataType::audioData(cap) = &rev.data_type else {
        return None;
    };
    let (codec, frames) = G711::from_capability(cap)?;
    let Some(Rev::h2250LogicalChannelParameters(h)) = &rev.multiplex_parameters else {
        return None;
    };
    Some(Proposal {
        codec,
        frames,
        direction: Direction::CallerReceives,
        session_id: h.session_id,
        media: h.media_channel.as_ref().and_then(from_h245),
        media_control: h.media_control_channel.as_ref().and_then(from_h245),
        olc,
    })
}

pub(crate) fn h2250(media: Option<SocketAddr>, control: Option<SocketAddr>) -> h245::H2250LogicalChannelParameters {
    h245::H2250LogicalChannelParameters::new(
        None,
        AUDIO_SESSION,
        None,
        media.map(to_h245),
        None,
        control.map(to_h245),
        None,
        Some(false),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
}

/// A caller's fastStart proposals for `codec` (the side that sends
/// Setup): one channel it sends on (logical channel `lcn`) and one it
/// receives on at `local_rtp` (logical channel `lcn + 1`), RTCP at
/// `local_rtcp`. Each item is a PER-encoded OpenLogicalChannel.
pub fn propose(
    codec: G711,
    lcn: u16,
    local_rtp: SocketAddr,
    local_rtcp: SocketAddr,
) -> Result<Vec<OctetString>, PerError> {
    let data_type = h245::DataType::audioData(codec.capability(20));
    proposal_pair(
        lcn,
        data_type,
        h2250(None, Some(local_rtcp)),
        h2250(Some(local_rtp), Some(local_rtcp)),
    )
}

/// An OpenLogicalChannel on which we send `data_type` over channel `lcn`
/// with the H.225.0 parameters `params` (H.245 §6.2.8.3).
pub(crate) fn sending_channel(
    lcn: u16,
    data_type: h245::DataType,
    params: h245::H2250LogicalChannelParameters,
) -> h245::OpenLogicalChannel {
    h245::OpenLogicalChannel::new(
        h245::LogicalChannelNumber(lcn),
        h245::OpenLogicalChannelForwardLogicalChannelParameters::new(
            None,
            data_type,
            h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(
                params,
            ),
            None,
            None,
        ),
        None,
        None,
        None,
        None,
    )
}

/// A caller's fastStart pair in `data_type`: the channel it sends on
/// (`lcn`, parameters `send`) and the one it receives on (`lcn + 1`,
/// reverse parameters `receive`), each PER-encoded.
fn proposal_pair(
    lcn: u16,
    data_type: h245::DataType,
    send: h245::H2250LogicalChannelParameters,
    receive: h245::H2250LogicalChannelParameters,
) -> Result<Vec<OctetString>, PerError> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as Rev;
    let receive = h245::OpenLogicalChannel::new(
        h245::LogicalChannelNumber(lcn.max(1).saturating_add(1)),
        h245::OpenLogicalChannelForwardLogicalChannelParameters::new(
            None,
            h245::DataType::nullData(()),
            Fwd::none(()),
            None,
            None,
        ),
        Some(h245::OpenLogicalChannelReverseLogicalChannelParameters::new(
            data_type.clone(),
            Some(Rev::h2250LogicalChannelParameters(receive)),
            None,
            None,
        )),
        None,
        None,
        None,
    );
    let send = sending_channel(lcn.max(1), data_type, send);
    Ok(vec![
        OctetString::from(asn1::encode(&send)?),
        OctetString::from(asn1::encode(&receive)?),
    ])
}

/// The H.225.0 logical channel parameters of an H.264 video channel in
/// session 2 with `payload_type`, our RTP address `media` (reverse
/// parameters and acks) and RTCP address `control`.
pub fn video_h2250(
    payload_type: u8,
    media: Option<SocketAddr>,
    control: Option<SocketAddr>,
) -> h245::H2250LogicalChannelParameters {
    let mut h = h2250(media, control);
    h.session_id = VIDEO_SESSION;
    h.silence_suppression = None;
    h.dynamic_rtppayload_type = Some(payload_type.clamp(96, 127));
    h
}

/// A caller's fastStart proposals for H.264 `video` (session 2): one
/// channel it sends on (logical channel `lcn`) and one it receives on at
/// `local_rtp` (logical channel `lcn + 1`), both with `payload_type`,
/// RTCP at `local_rtcp`. Each item is a PER-encoded OpenLogicalChannel.
pub fn propose_video(
    video: &H264,
    payload_type: u8,
    lcn: u16,
    local_rtp: SocketAddr,
    local_rtcp: SocketAddr,
) -> Result<Vec<OctetString>, PerError> {
    proposal_pair(
        lcn,
        h245::DataType::videoData(video.capability()),
        video_h2250(payload_type, None, Some(local_rtcp)),
        video_h2250(payload_type, Some(local_rtp), Some(local_rtcp)),
    )
}

/// An H.263 video capability (QCIF and CIF at MPI 1, 384 kbit/s): video
/// that is not H.264, which we leave out; peers offer it, tests send it.
pub fn h263_capability() -> h245::VideoCapability {
    h245::VideoCapability::h263VideoCapability(h245::H263VideoCapability::new(
        None,
        Some(1),
        Some(1),
        None,
        None,
        3840,
        false,
        false,
        false,
        false,
        false,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// For a caller: the video channel the called side accepted in its
/// fastStart element (the forward H.264 channel it filled in): its
/// parameters and where it receives RTP.
pub fn accepted_video(fast_start: &[OctetString]) -> Option<(H264, SocketAddr)> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    fast_start.iter().find_map(|b| {
        let olc = asn1::decode::<h245::OpenLogicalChannel>(b).ok()?;
        let fwd = &olc.forward_logical_channel_parameters;
        match (&fwd.data_type, &fwd.multiplex_parameters) {
            (h245::DataType::videoData(cap), Fwd::h2250LogicalChannelParameters(h)) => Some((
                H264::from_capability(cap)?,
                h.media_channel.as_ref().and_then(from_h245)?,
            )),
            _ => None,
        }
    })
}

/// For a caller: the codec and the called side's RTP receive address in
/// the fastStart element it accepted (the forward channel it filled in).
pub fn accepted_remote(fast_start: &[OctetString]) -> Option<(G711, SocketAddr)> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    fast_start.iter().find_map(|b| {
        let olc = asn1::decode::<h245::OpenLogicalChannel>(b).ok()?;
        let fwd = &olc.forward_logical_channel_parameters;
        match (&fwd.data_type, &fwd.multiplex_parameters) {
            (h245::DataType::audioData(cap), Fwd::h2250LogicalChannelParameters(h)) => {
                let (codec, _) = G711::from_capability(cap)?;
                Some((codec, h.media_channel.as_ref().and_then(from_h245)?))
            }
            _ => None,
        }
    })
}

/// For a caller: the Fast Connect media of the fastStart element the
/// called side returned (Connect, Call Proceeding, Alerting or Progress):
/// the codec, and where the called side receives RTP and RTCP (the
/// forward channel it filled in).
pub fn fast_connect_accepted(fast_start: &[OctetString]) -> Option<FastConnect> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    fast_start.iter().find_map(|b| {
        let olc = asn1::decode::<h245::OpenLogicalChannel>(b).ok()?;
        let fwd = &olc.forward_logical_channel_parameters;
        match (&fwd.data_type, &fwd.multiplex_parameters) {
            (h245::DataType::audioData(cap), Fwd::h2250LogicalChannelParameters(h)) => {
                let (codec, _) = G711::from_capability(cap)?;
                Some(FastConnect {
                    codec,
                    peer_rtp: Some(h.media_channel.as_ref().and_then(from_h245)?),
                    peer_rtcp: h.media_control_channel.as_ref().and_then(from_h245),
                })
            }
            _ => None,
        }
    })
}

/// An H.245 unicast transport address.
pub fn to_h245(addr: SocketAddr) -> h245::H245TransportAddress {
    h245::H245TransportAddress::unicastAddress(match addr.ip() {
        IpAddr::V4(ip) => h245::UnicastAddress::iPAddress(h245::UnicastAddressIPAddress::new(
            OctetString::from(ip.octets().to_vec()),
            addr.port(),
        )),
        IpAddr::V6(ip) => h245::UnicastAddress::iP6Address(h245::UnicastAddressIP6Address::new(
            OctetString::from(ip.octets().to_vec()),
            addr.port(),
        )),
    })
}

/// The socket address in an H.245 unicast transport address (IPv4 or IPv6).
pub fn from_h245(addr: &h245::H245TransportAddress) -> Option<SocketAddr> {
    match addr {
        h245::H245TransportAddress::unicastAddress(h245::UnicastAddress::iPAddress(a)) => {
            let o: [u8; 4] = a.network.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), a.tsap_identifier))
        }
        h245::H245TransportAddress::unicastAddress(h245::UnicastAddress::iP6Address(a)) => {
            let o: [u8; 16] = a.network.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), a.tsap_identifier))
        }
        _ => None,
    }
}

/// An H.225.0 transport address.
pub fn to_h225(addr: SocketAddr) -> h225::TransportAddress {
    match addr.ip() {
        IpAddr::V4(ip) => h225::TransportAddress::ipAddress(h225::TransportAddressIpAddress::new(
            OctetString::from(ip.octets().to_vec()),
            addr.port(),
        )),
        IpAddr::V6(ip) => h225::TransportAddress::ip6Address(h225::TransportAddressIp6Address::new(
            OctetString::from(ip.octets().to_vec()),
            addr.port(),
        )),
    }
}

/// The socket address in an H.225.0 transport address (IPv4 or IPv6).
pub fn from_h225(addr: &h225::TransportAddress) -> Option<SocketAddr> {
    match addr {
        h225::TransportAddress::ipAddress(a) => {
            let o: [u8; 4] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), a.port))
        }
        h225::TransportAddress::ip6Address(a) => {
            let o: [u8; 16] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), a.port))
        }
        _ => None,
    }
}

/// H.245's protocol identifier for the version this crate's types follow
/// (`itu-t(0) recommendation(0) h(8) 245 version(0) 17`).
pub fn h245_protocol_identifier() -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(std::borrow::Cow::Borrowed(&[0, 0, 8, 245, 0, 17]))
}

/// Longest audio packet confgate sends and announces, in milliseconds.
pub const AUDIO_FRAMES: u16 = 20;

/// The TerminalCapabilitySet confgate sends (H.245 §6.2.8): it receives
/// `audio` (in that order of preference, one at a time) and user input as
/// alphanumeric strings or DTMF signals (H.245 UserInputIndication), both
/// at the same time as audio.
pub fn terminal_capability_set(sequence_number: u8, audio: &[AudioCodec]) -> h245::MultimediaSystemControlMessage {
    terminal_capability_set_with_video(sequence_number, audio, None)
}

/// [`terminal_capability_set`] with H.264 `video` received at the same
/// time as audio (its own alternative set in the one capability
/// descriptor, H.245 §6.2.8.1), when given.
pub fn terminal_capability_set_with_video(
    sequence_number: u8,
    audio: &[AudioCodec],
    video: Option<&H264>,
) -> h245::MultimediaSystemControlMessage {
    let mut table = Vec::new();
    let mut audio_entries = Vec::new();
    let mut next = 0u16;
    let mut number = || {
        next = next.saturating_add(1);
        h245::CapabilityTableEntryNumber(next)
    };
    for codec in audio {
        let n = number();
        audio_entries.push(n.clone());
        table.push(h245::CapabilityTableEntry::new(
            n,
            Some(h245::Capability::receiveAudioCapability(codec.capability(AUDIO_FRAMES))),
        ));
    }
    let mut alternatives = Vec::new();
    if !audio_entries.is_empty() {
        alternatives.push(h245::AlternativeCapabilitySet(audio_entries));
    }
    if let Some(v) = video {
        let n = number();
        table.push(h245::CapabilityTableEntry::new(
            n.clone(),
            Some(h245::Capability::receiveVideoCapability(v.capability())),
        ));
        alternatives.push(h245::AlternativeCapabilitySet(vec![n]));
    }
    for uii in [
        h245::UserInputCapability::basicString(()),
        h245::UserInputCapability::dtmf(()),
    ] {
        let n = number();
        table.push(h245::CapabilityTableEntry::new(
            n.clone(),
            Some(h245::Capability::receiveUserInputCapability(uii)),
        ));
        alternatives.push(h245::AlternativeCapabilitySet(vec![n]));
    }
    let descriptor =
        h245::CapabilityDescriptor::new(h245::CapabilityDescriptorNumber(0), Some(SetOf::from_vec(alternatives)));
    h245::MultimediaSystemControlMessage::request(h245::RequestMessage::terminalCapabilitySet(
        h245::TerminalCapabilitySet::new(
            h245::SequenceNumber(sequence_number),
            h245_protocol_identifier(),
            None,
            Some(SetOf::from_vec(table)),
            Some(SetOf::from_vec(vec![descriptor])),
            None,
        ),
    ))
}

/// The H.264 video a capability set says its sender receives (the first
/// H.264 receive capability of its table; H.263, H.261 and other video
/// are not taken).
pub fn receive_h264(tcs: &h245::TerminalCapabilitySet) -> Option<H264> {
    tcs.capability_table
        .as_ref()?
        .to_vec()
        .iter()
        .find_map(|e| match &e.capability {
            Some(
                h245::Capability::receiveVideoCapability(v) | h245::Capability::receiveAndTransmitVideoCapability(v),
            ) => H264::from_capability(v),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proposals_round_trip_through_accept() {
        let rtp: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        let rtcp: SocketAddr = "192.0.2.1:5005".parse().unwrap();
        let items = propose(G711::Ulaw, 1, rtp, rtcp).unwrap();
        let offer = MediaOffer::from_fast_start(Some(&items));
        assert!(offer.fast_start);
        assert_eq!(offer.proposals.len(), 2);
        assert_eq!(offer.choose(&[G711::Alaw, G711::Ulaw]), Some(G711::Ulaw));
        assert_eq!(offer.choose(&[G711::Alaw]), None);
        let ours: SocketAddr = "198.51.100.7:20000".parse().unwrap();
        let ours_rtcp: SocketAddr = "198.51.100.7:20001".parse().unwrap();
        let (media, olcs) = offer.accept(G711::Ulaw, ours, ours_rtcp).unwrap();
        assert_eq!(media.peer_rtp, Some(rtp));
        assert_eq!(media.peer_rtcp, Some(rtcp));
        assert_eq!(olcs.len(), 2);
        let encoded: Vec<OctetString> = olcs
            .iter()
            .map(|o| OctetString::from(asn1::encode(o).unwrap()))
            .collect();
        assert_eq!(accepted_remote(&encoded), Some((G711::Ulaw, ours)));
        assert!(offer.accept(G711::Alaw, ours, ours_rtcp).is_none());
    }

    #[test]
    fn h264_capability_round_trips_and_other_video_is_not_h264() {
        let cap = H264::CONSTRAINED_BASELINE.capability();
        let bytes = asn1::encode(&cap).unwrap();
        let back: h245::VideoCapability = asn1::decode(&bytes).unwrap();
        assert_eq!(H264::from_capability(&back), Some(H264::CONSTRAINED_BASELINE));
        assert_eq!(H264::CONSTRAINED_BASELINE.level_name(), "3.1");
        assert_eq!(
            H264 {
                level: 19,
                ..H264::CONSTRAINED_BASELINE
            }
            .level_name(),
            "1b"
        );
        let h263 = h263_capability();
        assert_eq!(H264::from_capability(&h263), None);
        // Another generic video capability (H.265's OID) is not H.264.
        let h265 = h245::VideoCapability::genericVideoCapability(h245::GenericCapability::new(
            h245::CapabilityIdentifier::standard(ObjectIdentifier::new_unchecked(std::borrow::Cow::Borrowed(&[
                0, 0, 8, 265, 0, 0,
            ]))),
            None,
            None,
            None,
            None,
            None,
        ));
        assert_eq!(H264::from_capability(&h265), None);
        // H.264 without its mandatory level is not taken.
        let h245::VideoCapability::genericVideoCapability(mut g) = cap else {
            unreachable!()
        };
        g.collapsing = g.collapsing.map(|c| {
            c.into_iter()
                .filter(|p| p.parameter_identifier != h245::ParameterIdentifier::standard(42))
                .collect()
        });
        assert_eq!(
            H264::from_capability(&h245::VideoCapability::genericVideoCapability(g)),
            None
        );
    }

    #[test]
    fn fast_start_h264_is_accepted_and_h263_left_out() {
        let rtp: SocketAddr = "192.0.2.1:5004".parse().unwrap();
        let rtcp: SocketAddr = "192.0.2.1:5005".parse().unwrap();
        let vrtp: SocketAddr = "192.0.2.1:5006".parse().unwrap();
        let vrtcp: SocketAddr = "192.0.2.1:5007".parse().unwrap();
        let mut items = propose(G711::Ulaw, 1, rtp, rtcp).unwrap();
        items.extend(propose_video(&H264::CONSTRAINED_BASELINE, 109, 3, vrtp, vrtcp).unwrap());
        // An H.263 proposal: the caller would send H.263.
        let mut h263 = asn1::decode::<h245::OpenLogicalChannel>(&items[2]).unwrap();
        h263.forward_logical_channel_number = h245::LogicalChannelNumber(9);
        h263.forward_logical_channel_parameters.data_type = h245::DataType::videoData(h263_capability());
        items.push(OctetString::from(asn1::encode(&h263).unwrap()));
        let offer = MediaOffer::from_fast_start(Some(&items));
        assert_eq!(offer.proposals.len(), 2, "audio only in the audio proposals");
        assert_eq!(offer.video.len(), 2);
        assert_eq!(offer.video_refused, 1);
        let ours: SocketAddr = "198.51.100.7:20002".parse().unwrap();
        let ours_rtcp: SocketAddr = "198.51.100.7:20003".parse().unwrap();
        let (v, olcs) = offer.accept_video(ours, ours_rtcp).unwrap();
        assert_eq!(v.receive, Some((H264::CONSTRAINED_BASELINE, 109)));
        assert_eq!(v.send, Some((H264::CONSTRAINED_BASELINE, 109)));
        assert_eq!(
            (v.peer_rtp, v.peer_rtcp, v.receive_channel),
            (Some(vrtp), Some(vrtcp), Some(3))
        );
        assert_eq!(olcs.len(), 2);
        assert!(
            olcs.iter().all(|o| o.forward_logical_channel_number.0 != 9),
            "H.263 left out"
        );
        let encoded: Vec<OctetString> = olcs
            .iter()
            .map(|o| OctetString::from(asn1::encode(o).unwrap()))
            .collect();
        assert_eq!(accepted_video(&encoded), Some((H264::CONSTRAINED_BASELINE, ours)));
        // Only H.263 proposed: nothing to accept.
        let only = MediaOffer::from_fast_start(Some(&[items[0].clone(), items[4].clone()]));
        assert_eq!((only.video.len(), only.video_refused), (0, 1));
        assert!(only.accept_video(ours, ours_rtcp).is_none());
    }

    #[test]
    fn capability_set_with_video_encodes() {
        let tcs = terminal_capability_set_with_video(1, &AudioCodec::ALL, Some(&H264::CONSTRAINED_BASELINE));
        let bytes = asn1::encode(&tcs).unwrap();
        let h245::MultimediaSystemControlMessage::request(h245::RequestMessage::terminalCapabilitySet(t)) =
            asn1::decode_h245(&bytes).unwrap()
        else {
            panic!()
        };
        assert_eq!(receive_h264(&t), Some(H264::CONSTRAINED_BASELINE));
        // Audio, video and the two user inputs: four simultaneous alternatives.
        let d = t.capability_descriptors.unwrap().to_vec()[0].clone();
        assert_eq!(d.simultaneous_capabilities.unwrap().to_vec().len(), 4);
    }

    #[test]
    fn garbage_proposals_are_skipped() {
        let items = vec![OctetString::from(vec![0xff; 7]), OctetString::from(Vec::new())];
        let offer = MediaOffer::from_fast_start(Some(&items));
        assert!(offer.fast_start && offer.proposals.is_empty());
    }

    #[test]
    fn capability_set_encodes() {
        let tcs = terminal_capability_set(1, &AudioCodec::ALL);
        let bytes = asn1::encode(&tcs).unwrap();
        assert_eq!(asn1::decode_h245(&bytes).unwrap(), tcs);
    }

    #[test]
    fn addresses_both_ways() {
        for a in ["10.0.0.1:1720", "[2001:db8::1]:1720"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(from_h245(&to_h245(a)), Some(a));
            assert_eq!(from_h225(&to_h225(a)), Some(a));
        }
    }
}
