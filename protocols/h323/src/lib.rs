//! H.323 for confgate, as pure functions and state machines (sans-IO).
//!
//! Nothing here opens a socket, spawns a task or reads a clock: input is
//! bytes, output is bytes and values. The listener in `gateway/listen/h323`
//! owns the sockets.
//!
//! Framing, the message codecs, and the call-signalling state machine:
//! - [`tpkt`]: TPKT (RFC 1006) stream reassembly and framing, for the call
//!   signalling (TCP 1720) and separate H.245 connections.
//! - [`q931`]: Q.931 messages and information elements as H.225.0 §7.2 uses
//!   them, the H.225.0 UUIE riding in the User-user IE.
//! - [`asn1`]: the generated H.225.0 / H.235 / H.245 types and their ALIGNED
//!   PER codec (`rasn::aper`), with bounded decoding.
//! - [`signalling`]: one call on one signalling connection, incoming (Setup,
//!   Call Proceeding, Alerting, Connect with Fast Connect or without) or
//!   out (Setup with fastStart proposals, the called side's answers), H.245
//!   tunnelled or on a separate connection, ReleaseComplete with Q.850
//!   causes, driven by bytes and `now`.
//! - [`control`]: the H.245 control protocol of a call (capability
//!   exchange, master/slave determination, OpenLogicalChannel both ways,
//!   channel closing, commands and indications), whatever carries it.
//! - [`media`]: Fast Connect's fastStart proposals and accepted channels,
//!   the audio codecs, H.264 video (H.241) and the capability set of H.245.
//! - [`ras`]: the RAS gatekeeper (GRQ, RRQ, URQ, ARQ, BRQ, DRQ, LRQ, IRR),
//!   driven by datagrams and `now`.
//! - [`h235`]: H.235 password tokens in RAS (the endpoint's MD5 password
//!   hash, H.235.1 procedure I with HMAC-SHA1-96), made and checked.
//!
//! A signalling connection's bytes go: TCP chunks → [`tpkt::TpktDecoder`] →
//! [`q931::Message::decode`] → [`q931::Message::user_user`] →
//! [`asn1::decode_user_information`]. RAS datagrams (UDP 1719) go to
//! [`ras::Gatekeeper::handle_input`], which decodes them with
//! [`asn1::decode_ras`]; H.245 PDUs (tunnelled in `h245Control`, in
//! `fastStart`, or one per TPKT on their own connection) to
//! [`asn1::decode_h245`].
//!
//! No decoder here panics on any input, and every length read from the wire
//! is checked before use; the fuzz targets in `fuzz/` drive them through
//! [`fuzzing`].
#![forbid(unsafe_code)]

pub mod asn1;
pub mod control;
pub mod h235;
pub mod media;
pub mod q931;
pub mod ras;
pub mod signalling;
pub mod tpkt;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
#[path = "../generate/src/passes.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod generate_passes;
