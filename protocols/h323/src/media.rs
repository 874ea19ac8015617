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
//! as proposed. Only G.711 µ-law and A-law (64 kbit/s) are taken here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rasn::types::{ObjectIdentifier, OctetString, SetOf};

use crate::asn1::{self, h225, h245, PerError};

/// The H.245 audio session id (H.245 §7.2.2 / H.225.0 §6.2.8.1: 1 is audio).
pub const AUDIO_SESSION: u8 = 1;

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
        let proposals = items
            .iter()
            .filter_map(|b| asn1::decode::<h245::OpenLogicalChannel>(b).ok())
            .filter_map(proposal)
            .collect();
        Self {
            proposals,
            fast_start: true,
        }
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

fn h2250(media: Option<SocketAddr>, control: Option<SocketAddr>) -> h245::H2250LogicalChannelParameters {
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
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as Fwd;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as Rev;
    let send = h245::OpenLogicalChannel::new(
        h245::LogicalChannelNumber(lcn.max(1)),
        h245::OpenLogicalChannelForwardLogicalChannelParameters::new(
            None,
            h245::DataType::audioData(codec.capability(20)),
            Fwd::h2250LogicalChannelParameters(h2250(None, Some(local_rtcp))),
            None,
            None,
        ),
        None,
        None,
        None,
        None,
    );
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
            h245::DataType::audioData(codec.capability(20)),
            Some(Rev::h2250LogicalChannelParameters(h2250(
                Some(local_rtp),
                Some(local_rtcp),
            ))),
            None,
            None,
        )),
        None,
        None,
        None,
    );
    Ok(vec![
        OctetString::from(asn1::encode(&send)?),
        OctetString::from(asn1::encode(&receive)?),
    ])
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
    let mut table = Vec::new();
    let mut audio_entries = Vec::new();
    for (i, codec) in audio.iter().enumerate() {
        let n = u16::try_from(i + 1).unwrap_or(u16::MAX);
        audio_entries.push(h245::CapabilityTableEntryNumber(n));
        table.push(h245::CapabilityTableEntry::new(
            h245::CapabilityTableEntryNumber(n),
            Some(h245::Capability::receiveAudioCapability(codec.capability(AUDIO_FRAMES))),
        ));
    }
    let mut alternatives = Vec::new();
    if !audio_entries.is_empty() {
        alternatives.push(h245::AlternativeCapabilitySet(audio_entries));
    }
    for (offset, uii) in [
        h245::UserInputCapability::basicString(()),
        h245::UserInputCapability::dtmf(()),
    ]
    .into_iter()
    .enumerate()
    {
        let n = u16::try_from(audio.len() + offset + 1).unwrap_or(u16::MAX);
        table.push(h245::CapabilityTableEntry::new(
            h245::CapabilityTableEntryNumber(n),
            Some(h245::Capability::receiveUserInputCapability(uii)),
        ));
        alternatives.push(h245::AlternativeCapabilitySet(vec![h245::CapabilityTableEntryNumber(
            n,
        )]));
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
