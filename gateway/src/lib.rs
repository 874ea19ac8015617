//! confgate, the conferencing gateway daemon.
//!
//! SIP phones and trunks, H.323 room systems, browsers, local bots and other
//! confgate servers meet in the same conferences. This crate is the control
//! plane: configuration ([`config`]), the directory of accounts and
//! conferences ([`directory`]), the [`router`] that turns a dialed string into
//! a destination, room control ([`conference`]), the listener tasks that
//! drive each protocol's sans-IO core ([`listen`]), the HTTP admin API
//! ([`http`]), the daemon's life cycle ([`daemon`], [`notify`]) and the
//! command line ([`cli`], [`bot`]).
//!
//! Media never passes through signalling tasks. Loopback endpoints send
//! 48 kHz PCM straight into their room, which mixes it with
//! `confgate-mixer`.

#![forbid(unsafe_code)]

pub mod bot;
pub mod calls;
pub mod cli;
pub mod conference;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod http;
pub mod legs;
pub mod listen;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod router;
pub mod state;
pub mod video;
