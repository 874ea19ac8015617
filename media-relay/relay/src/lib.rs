//! confgate's media relay: every leg's media terminates here.
//!
//! The relay owns the UDP sockets. Signalling asks it for endpoints (an RTP
//! port and, without rtcp-mux, the next port for RTCP), tells it where each
//! endpoint's peer is and which SRTP keys apply, and subscribes endpoints
//! to each other ([`Relay`]). Media then flows socket → worker → socket
//! without passing through any signalling task:
//!
//! - two endpoints that share a codec are forwarded packet by packet, SRTP
//!   re-keyed in place where their keys differ (RTP↔RTP, SRTP↔SRTP,
//!   RTP↔SRTP), nothing decoded;
//! - a fan-out is the same mechanism with more subscribers, with optional
//!   SSRC/sequence rewriting per subscriber so that a stream stays continuous
//!   when its source changes (the active speaker's video); such a
//!   receiver's keyframe requests become the relay's own PLI to the current
//!   source, and its NACKs are translated into the source's SSRC and
//!   sequence numbers (losses from an earlier source are not asked for);
//! - a media subscription carries only some payload types of a bundled leg
//!   (a browser's camera, while its audio goes to the mixer), renumbered
//!   for the receiver, and routes the receiver's NACK, PLI and FIR back to
//!   the publisher ([`Relay::subscribe_media`]);
//! - one port carries STUN, DTLS, RTP and RTCP, told apart by
//!   [`demux::classify`] (RFC 7983).
//!
//! Invariants: the packet path allocates nothing in steady state, takes no
//! lock, and never panics on any input; bad packets are dropped and counted
//! by reason ([`Relay::drops`]). System calls are batched (`recvmmsg`,
//! `sendmmsg`; `sendto` for a socket's lone datagram) and confined to
//! [`sys`], the crate's only unsafe code.
//!
//! Operators who run Kamailio or OpenSIPS can drive the relay with the
//! rtpengine `ng` control protocol (see the `ng` module).

pub mod bencode;
pub mod control;
pub mod demux;
mod engine;
pub mod ng;
pub mod pool;
mod relay;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod sys;

pub use control::{NgConfig, NgController, NgServer};
pub use engine::{DropCounters, LatchMode, TapSink};
pub use relay::{EndpointId, EndpointInfo, EndpointSnapshot, PeerConfig, Relay, RelayConfig, RelayError, SrtpParams};
pub use rtp::PayloadMap;
pub use srtp::{SrtpContext, SrtpError, SrtpProfile};
