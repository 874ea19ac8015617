//! The web client's protocol for confgate, as pure state machines (sans-IO).
//!
//! Nothing here opens a socket, spawns a task or reads a clock: input is
//! bytes (or a text frame) plus `now`, output is bytes to send, timers and
//! events. The web-client listener in `gateway/src/listen/` owns the
//! WebSocket and drives these; the relay owns the UDP socket of each
//! session's media endpoint and hands STUN and DTLS datagrams up.
//!
//! - [`signal`]: the JSON messages over the WebSocket at `/ws`, version 1,
//!   with the full message catalogue.
//! - [`sdp`]: our offer or answer as an ICE-lite, DTLS-passive,
//!   BUNDLE + rtcp-mux endpoint (Opus, telephone-event, VP8, H.264), and
//!   parsing of Chrome's and Firefox's SDP.
//! - [`stun`]: STUN messages (RFC 8489) with MESSAGE-INTEGRITY and
//!   FINGERPRINT; RFC 5769 vectors as tests.
//! - [`ice`]: the ICE-lite agent (RFC 8445 §2.5) of one session: answers
//!   connectivity checks, reports the nominated address and consent
//!   expiry (RFC 7675).
//! - [`dtls`]: DTLS-SRTP keying (RFC 5764) as the DTLS server, with the
//!   peer's certificate checked against its SDP fingerprint.
//!
//! # Drain contract
//!
//! [`ice::IceLiteAgent`] and [`dtls::DtlsTransport`] follow the same
//! shape: `handle_input(now, ..)`, `handle_timeout(now)`, then
//! `poll_output()` until it returns `None`, then sleep until
//! `poll_timeout()`. Outputs queue inside; nothing is sent by itself.
//!
//! # One session, end to end (what the driver does)
//!
//! 1. At start: one [`dtls::DtlsCert::generate`] for the process (its
//!    fingerprint goes in every SDP).
//! 2. On `join` → admitted: ask the relay for an endpoint (rtcp-mux, no
//!    peer yet), make [`ice::IceCredentials::random`] and an
//!    [`ice::IceLiteAgent`], send `offer` built by [`sdp::build_offer`]
//!    with the endpoint's advertised address.
//! 3. On `answer`: [`sdp::SessionDescription::parse`], then
//!    [`sdp::SessionDescription::remote_transport`]: give the agent the
//!    remote ufrag, create a [`dtls::DtlsTransport`] in
//!    [`sdp::RemoteTransport::our_dtls_role`] (server for browsers) with
//!    the remote fingerprint.
//! 4. STUN datagrams from the endpoint → the agent; its `Transmit`s go out
//!    of the same endpoint to their `destination`. On
//!    [`ice::IceEvent::Nominated`] point the endpoint's peer at that address.
//! 5. DTLS datagrams from the nominated address → the transport; its
//!    `Transmit`s go to the nominated address. On
//!    [`dtls::DtlsOutput::Connected`] configure the endpoint's SRTP:
//!    `srtp_in` = [`dtls::SrtpKeying::remote`], `srtp_out` =
//!    [`dtls::SrtpKeying::local`], profile [`dtls::SrtpKeying::profile`].
//!    Any [`dtls::DtlsError`] (a fingerprint mismatch included) ends the
//!    session's media: the endpoint is never keyed.
//! 6. On [`ice::IceEvent::ConsentExpired`] stop sending (clear the peer);
//!    a new nomination (ICE restart) resumes.
//! 7. On `ice_restart` (the browser lost its path): new
//!    [`ice::IceCredentials::random`], [`ice::IceLiteAgent::restart`], and a
//!    new offer with them — same fingerprint, same candidate, same relay
//!    endpoint. The answer's ufrag goes to
//!    [`ice::IceLiteAgent::set_remote_ufrag`]; the DTLS transport and its
//!    keys stay. The next nomination (even of the same address) points the
//!    endpoint again.
//!
//! # Relay hooks this needs
//!
//! The relay (`confgate-relay`) today counts and drops STUN and DTLS in
//! `engine::forward`. The driver needs:
//!
//! - `TapSink::stun(&mut self, src: SocketAddr, packet: &[u8])` and
//!   `TapSink::dtls(&mut self, src: SocketAddr, packet: &[u8])`, default
//!   no-ops (so the mixer's sinks are untouched), called for datagrams
//!   classified `Stun`/`Dtls` on a tapped endpoint *before* the source
//!   check (checks arrive from addresses not yet known), with the
//!   datagram's source. Still counted as today; dropped when there is no
//!   tap. STUN is small and rare (a check every ~2.5 s per session), DTLS
//!   only during the handshake: a copy into the sink's queue is fine.
//!   The driver, not the relay, decides whether a DTLS datagram's source
//!   is the nominated one.
//! - `Relay::send_raw(id, dest: SocketAddr, packet: Vec<u8>)`: send a
//!   datagram out of the endpoint's RTP socket as is (no SRTP, no RTP
//!   parsing) to an explicit destination, for STUN responses and DTLS
//!   records.
//! - Setting the peer and SRTP contexts after the fact, which
//!   `Relay::configure` already does (peer = nominated address,
//!   `LatchMode::Signaled`, `rtcp_mux: true`, keys once DTLS connects).
//!
//! # Why dimpl for DTLS
//!
//! Candidates were `webrtc-dtls` (webrtc-rs), `openssl` with DTLS,
//! `dimpl`, and what `str0m` uses. `dimpl` is chosen:
//!
//! - It is sans-IO and synchronous (`handle_packet` / `poll_output` /
//!   `handle_timeout`), the same shape as this crate: no async driver
//!   type, no task, no channel. `webrtc-dtls` is built around async
//!   `Conn` objects and tokio, which would put a task per session in the
//!   driver and a copy of every record through it.
//! - It is what `str0m` (the sans-IO WebRTC stack this codebase models
//!   itself on) uses for DTLS, written by its maintainer for WebRTC:
//!   DTLS-SRTP export for `SRTP_AES128_CM_SHA1_80`, `AEAD_AES_128_GCM` and
//!   `AEAD_AES_256_GCM`, ECDSA P-256 certificates (what browsers make),
//!   extended master secret enforced, peer certificate surfaced for
//!   fingerprint pinning, no PKI; it is tested against OpenSSL.
//! - Its crypto is `aws-lc-rs`, which the relay already links for SRTP:
//!   no second crypto library, no system OpenSSL to install or keep in
//!   step (the `openssl` route needs `libssl-dev` on every machine and
//!   a hand-written memory BIO).
//! - `forbid(unsafe_code)`; certificate generation through `rcgen`.
//!
//! Note: when the browser offers `SRTP_AEAD_AES_256_GCM` (Chrome does),
//! dimpl selects it first; the relay's SRTP supports it.
#![forbid(unsafe_code)]

pub mod dtls;
pub mod ice;
pub mod sdp;
pub mod signal;
pub mod stun;

#[doc(hidden)]
pub mod fuzzing;
