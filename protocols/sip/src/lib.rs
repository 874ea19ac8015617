//! SIP for confgate, as pure state machines (sans-IO).
//!
//! Nothing here opens a socket, spawns a task or reads a clock: input is
//! bytes plus `now`, output is bytes to send, timers and events. The
//! listener in `gateway/src/listen/sip` owns the sockets and drives these.
//!
//! - [`message`]: parsing and building SIP messages (on `rsip`), with errors
//!   that name the header at fault.
//! - [`transaction`]: the four transaction machines of RFC 3261 §17, timers
//!   A–K.
//! - [`dialog`]: dialog state and in-dialog requests (RFC 3261 §12).
//! - [`reliable`]: reliable provisional responses and PRACK (RFC 3262), both sides.
//! - [`fork`]: parallel forking to several contacts and the choice of the caller's response
//!   (RFC 3261 §16.7).
//! - [`digest`]: HTTP digest authentication, server and client side
//!   (RFC 7616 / RFC 8760: MD5 and SHA-256, `qop=auth`).
//! - [`registrar`]: REGISTER processing and bindings (RFC 3261 §10).
//! - [`sdp`]: SDP offer/answer for SIP calls (RFC 3264, RFC 4568 SDES).
//! - [`info`]: DTMF in SIP INFO (`application/dtmf-relay`).
//! - [`status`]: mapping call-model end reasons onto SIP responses and back.
#![forbid(unsafe_code)]

pub mod dialog;
pub mod digest;
pub mod fork;
pub mod info;
pub mod message;
pub mod registrar;
pub mod reliable;
pub mod sdp;
pub mod status;
pub mod transaction;

#[doc(hidden)]
pub mod fuzzing;
