//! Listener tasks, one set per protocol: each owns its sockets, drives the
//! protocol's sans-IO core and turns its output into calls for the router.

pub mod h323;
pub mod loopback;
pub mod sip;
pub mod web;
