//! The `ng` control server: Kamailio's or OpenSIPS's `rtpengine` module
//! drives the relay as it would drive rtpengine.
//!
//! A call (`call-id`) has two sides: the one that sent the first offer
//! (its `from-tag`) and the other one (its tag is learned from the answer).
//! Each media line of each side gets a relay endpoint facing that side's
//! party; the two endpoints of a media line are subscribed to each other.
//! An offer's SDP is rewritten with the answerer-facing endpoint's address
//! and ports, an answer's with the offerer-facing one's, so both parties
//! send their media to the relay. With `transport-protocol` the two sides
//! can differ: RTP/AVP on one side, SDES-keyed RTP/SAVP on the other (the
//! relay generates its own keys for each side and re-keys in place).
//!
//! A repeated request (same cookie: a retransmission) gets the first reply
//! again. Calls whose media and signalling have both been silent for the
//! configured timeout are deleted and their ports freed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bencode::OwnedValue;
use crate::ng::{self, Command, Request, Response, RtcpMux, Transport};
use crate::sdp::{self, SessionDescription};
use crate::{EndpointInfo, LatchMode, PeerConfig, Relay, SrtpParams, SrtpProfile};

/// ng server settings.
#[derive(Debug, Clone)]
pub struct NgConfig {
    /// Address written into rewritten SDP.
    pub advertise: IpAddr,
    /// A call whose media and signalling were silent this long is deleted.
    pub timeout: Duration,
    /// Most calls at once; further offers get an error.
    pub max_calls: usize,
}

/// SRTP suites offered to an SDES side, in order of preference.
const OFFERED_SUITES: [SrtpProfile; 2] = [SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32];

#[derive(Debug, Default)]
struct Leg {
    ep: Option<EndpointInfo>,
    /// The transport profile this side speaks on this media line.
    proto: String,
    peer: Option<SocketAddr>,
    peer_rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    /// Keys we offered this side (SDES tag → our key).
    offered: Vec<(u32, SrtpParams)>,
    /// The side's key for what it sends us.
    srtp_in: Option<SrtpParams>,
    /// Our key for what we send it, and its tag.
    srtp_out: Option<(u32, SrtpParams)>,
    /// The side offered rtcp-mux.
    offered_mux: bool,
    /// RTP clock rate of what this side sends (for jitter statistics).
    clock_rate: u32,
}

#[derive(Debug, Default)]
struct Side {
    tag: String,
    legs: Vec<Leg>,
    pending_offer: bool,
}

#[derive(Debug)]
struct Call {
    group: u64,
    created: SystemTime,
    last_signal: Instant,
    sides: [Side; 2],
}

/// The ng request handler (no sockets: see [`NgServer`] for the UDP loop).
#[derive(Debug)]
pub struct NgController {
    relay: Relay,
    cfg: NgConfig,
    calls: HashMap<String, Call>,
    next_group: u64,
    cache: HashMap<Vec<u8>, (Instant, Vec<u8>)>,
}

fn err(reason: impl Into<String>) -> Response {
    Response::Error { reason: reason.into() }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl NgController {
    /// A controller creating endpoints on `relay`.
    pub fn new(relay: Relay, cfg: NgConfig) -> Self {
        Self {
            relay,
            cfg,
            calls: HashMap::new(),
            next_group: 1,
            cache: HashMap::new(),
        }
    }

    /// Calls held now.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Handles one datagram and writes the reply datagram into `out`.
    pub fn handle_datagram(&mut self, d: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let now = Instant::now();
        if let Some(cookie) = ng::cookie(d) {
            if let Some((_, reply)) = self.cache.get(cookie) {
                out.extend_from_slice(reply);
                return;
            }
        }
        let (cookie, resp) = match ng::parse_datagram(d) {
            Ok((cookie, req)) => (cookie.to_vec(), self.handle(&req)),
            Err(e) => match ng::cookie(d) {
                Some(c) => (c.to_vec(), Response::error(&e)),
                // Without a cookie no reply can be addressed.
                None => return,
            },
        };
        ng::encode_reply(&cookie, &resp, out);
        if self.cache.len() >= 4096 {
            self.cache
                .retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(30));
        }
        if self.cache.len() < 4096 {
            self.cache.insert(cookie, (now, out.clone()));
        }
    }

    /// Handles one parsed request.
    pub fn handle(&mut self, req: &Request) -> Response {
        let r = match req.command {
            Command::Ping => Ok(Response::Pong),
            Command::Offer => self.offer(req),
            Command::Answer => self.answer(req),
            Command::Delete => self.delete(req),
            Command::Query => self.query(req),
        };
        r.unwrap_or_else(|e| e)
    }

    fn offer(&mut self, req: &Request) -> Result<Response, Response> {
        let call_id = req.call_id.clone().ok_or_else(|| err("missing call-id"))?;
        let from = req.from_tag.clone().ok_or_else(|| err("missing from-tag"))?;
        let text = req.sdp.as_deref().ok_or_else(|| err("missing sdp"))?;
        let mut sdp = sdp::parse(text).map_err(|e| err(format!("bad SDP: {e}")))?;
        if !self.calls.contains_key(&call_id) && self.calls.len() >= self.cfg.max_calls {
            return Err(err("too many calls"));
        }
        // Check everything before allocating anything.
        for i in 0..sdp.media_count() {
            let m = sdp.media(i);
            let proto = m.proto.parse::<Transport>().ok();
            if proto.is_some_and(Transport::is_dtls) && !req.dtls_off {
                return Err(err(format!(
                    "media {i} uses {}: DTLS-SRTP is not available over ng; send DTLS=off",
                    m.proto
                )));
            }
        }
        let group = self.next_group;
        let call = self.calls.entry(call_id.clone()).or_insert_with(|| Call {
            group,
            created: SystemTime::now(),
            last_signal: Instant::now(),
            sides: Default::default(),
        });
        if call.group == group {
            self.next_group += 1;
            call.sides[0].tag = from.clone();
        }
        call.last_signal = Instant::now();
        let o = if call.sides[0].tag == from {
            0
        } else if call.sides[1].tag == from {
            1
        } else if call.sides[1].tag.is_empty() {
            // A new offer for a call whose answer never came: the new offerer replaces the old.
            call.sides[0].tag = from.clone();
            0
        } else {
            return Err(err(format!("from-tag '{from}' is not part of call '{call_id}'")));
        };
        let n = 1 - o;
        let advertise = self.cfg.advertise;
        let relay = self.relay.clone();
        let group = call.group;
        for i in 0..sdp.media_count() {
            let m = sdp.media(i);
            for side in [o, n] {
                let legs = &mut call.sides[side].legs;
                while legs.len() <= i {
                    legs.push(Leg::default());
                }
                if legs[i].ep.is_none() && m.port != 0 {
                    legs[i].ep = Some(relay.create_endpoint(group, false).map_err(|e| err(e.to_string()))?);
                }
            }
            if m.port == 0 {
                continue; // a rejected or disabled stream stays as it is
            }
            // The offerer's side of this media line.
            let ol = &mut call.sides[o].legs[i];
            ol.proto = m.proto.clone();
            let addr = m.connection.or(sdp.session_connection());
            ol.peer = addr.map(|a| SocketAddr::new(a, m.port));
            ol.peer_rtcp = m
                .rtcp_port
                .and_then(|p| m.rtcp_address.or(addr).map(|a| SocketAddr::new(a, p)));
            ol.offered_mux = m.rtcp_mux;
            ol.clock_rate = clock_rate(&sdp, i);
            ol.srtp_in = None;
            ol.srtp_out = None;
            if let Some(c) = m
                .crypto
                .iter()
                .find(|c| SrtpProfile::from_sdes_name(&c.suite).is_some())
            {
                let profile = SrtpProfile::from_sdes_name(&c.suite).ok_or_else(|| err("crypto suite"))?;
                let ks = c.key_salt();
                if ks.len() != profile.key_len() + profile.salt_len() {
                    return Err(err(format!(
                        "media {i}: a=crypto:{} key has the wrong length for {}",
                        c.tag, c.suite
                    )));
                }
                ol.srtp_in = Some(SrtpParams {
                    profile,
                    key: ks[..profile.key_len()].to_vec(),
                    salt: ks[profile.key_len()..].to_vec(),
                });
                ol.srtp_out = Some((c.tag, SrtpParams::random(profile).map_err(|e| err(e.to_string()))?));
            } else if m.proto.contains("SAVP") && !m.proto.starts_with("UDP/TLS") {
                return Err(err(format!("media {i} is {} but has no usable a=crypto line", m.proto)));
            }
            let ol_ep = ol.ep.map(|e| e.id);
            configure(&relay, &call.sides[o].legs[i], req)?;

            // The answerer's side: what it will be offered.
            let nproto = match req.transport_protocol {
                Some(t) => t.as_str().to_string(),
                None if m.proto.starts_with("UDP/TLS/") => m.proto.replacen("UDP/TLS/", "", 1),
                None => m.proto.clone(),
            };
            let nl = &mut call.sides[n].legs[i];
            nl.proto = nproto.clone();
            let Some(nep) = nl.ep else { continue };
            sdp.remove_crypto(i);
            if nproto.contains("SAVP") && !req.sdes_off {
                if nl.offered.is_empty() {
                    for (k, p) in OFFERED_SUITES.iter().enumerate() {
                        nl.offered
                            .push((k as u32 + 1, SrtpParams::random(*p).map_err(|e| err(e.to_string()))?));
                    }
                }
                for (tag, key) in &nl.offered {
                    sdp.add_crypto(i, *tag, key.profile.sdes_name(), &key.key, &key.salt);
                }
            }
            sdp.set_media_proto(i, &nproto);
            let demux = req.rtcp_mux.contains(&RtcpMux::Demux) || req.rtcp_mux.contains(&RtcpMux::Reject);
            let offer_mux = (m.rtcp_mux && !demux) || req.rtcp_mux.contains(&RtcpMux::Offer);
            sdp.set_rtcp_mux(i, offer_mux);
            sdp.set_media_endpoint(i, advertise, nep.rtp_port, nep.rtcp_port);
            if let Some(oid) = ol_ep {
                relay.subscribe(oid, nep.id).map_err(|e| err(e.to_string()))?;
                // An SRTP answerer's keys come with the answer: until then its
                // packets cannot be authenticated and must not be forwarded
                // (`answer` subscribes it once it is keyed).
                if !nproto.contains("SAVP") {
                    relay.subscribe(nep.id, oid).map_err(|e| err(e.to_string()))?;
                }
            }
        }
        rewrite_common(&mut sdp, req, advertise);
        call.sides[o].pending_offer = true;
        Ok(Response::Ok {
            sdp: Some(sdp.to_string()),
            extra: Vec::new(),
        })
    }

    fn answer(&mut self, req: &Request) -> Result<Response, Response> {
        let call_id = req.call_id.clone().ok_or_else(|| err("missing call-id"))?;
        let from = req.from_tag.clone().ok_or_else(|| err("missing from-tag"))?;
        let to = req.to_tag.clone().ok_or_else(|| err("missing to-tag"))?;
        let text = req.sdp.as_deref().ok_or_else(|| err("missing sdp"))?;
        let mut sdp = sdp::parse(text).map_err(|e| err(format!("bad SDP: {e}")))?;
        let call = self
            .calls
            .get_mut(&call_id)
            .ok_or_else(|| err(format!("Unknown call-id '{call_id}'")))?;
        call.last_signal = Instant::now();
        // The offerer is the side with an offer pending; Kamailio may swap the
        // tags (an answer in an ACK), so match either.
        let o = (0..2)
            .find(|&s| call.sides[s].pending_offer && (call.sides[s].tag == from || call.sides[s].tag == to))
            .or_else(|| (0..2).find(|&s| call.sides[s].tag == from || call.sides[s].tag == to))
            .ok_or_else(|| err(format!("tags '{from}'/'{to}' are not part of call '{call_id}'")))?;
        let n = 1 - o;
        let answerer_tag = if call.sides[o].tag == from { to } else { from };
        call.sides[n].tag = answerer_tag;
        if sdp.media_count() > call.sides[o].legs.len() {
            return Err(err("the answer has more media lines than the offer"));
        }
        let relay = self.relay.clone();
        let advertise = self.cfg.advertise;
        for i in 0..sdp.media_count() {
            let m = sdp.media(i);
            if m.port == 0 {
                continue;
            }
            let nl = &mut call.sides[n].legs[i];
            let addr = m.connection.or(sdp.session_connection());
            nl.peer = addr.map(|a| SocketAddr::new(a, m.port));
            nl.peer_rtcp = m
                .rtcp_port
                .and_then(|p| m.rtcp_address.or(addr).map(|a| SocketAddr::new(a, p)));
            nl.rtcp_mux = m.rtcp_mux;
            nl.clock_rate = clock_rate(&sdp, i);
            nl.srtp_in = None;
            nl.srtp_out = None;
            if let Some(c) = m.crypto.iter().find(|c| nl.offered.iter().any(|(t, _)| *t == c.tag)) {
                let ours = nl
                    .offered
                    .iter()
                    .find(|(t, _)| *t == c.tag)
                    .map(|(t, k)| (*t, k.clone()));
                let profile = SrtpProfile::from_sdes_name(&c.suite)
                    .ok_or_else(|| err(format!("media {i}: unsupported crypto suite {}", c.suite)))?;
                let ks = c.key_salt();
                if ks.len() != profile.key_len() + profile.salt_len() {
                    return Err(err(format!("media {i}: a=crypto:{} key has the wrong length", c.tag)));
                }
                nl.srtp_in = Some(SrtpParams {
                    profile,
                    key: ks[..profile.key_len()].to_vec(),
                    salt: ks[profile.key_len()..].to_vec(),
                });
                nl.srtp_out = ours;
            } else if nl.proto.contains("SAVP") && !req.sdes_off {
                return Err(err(format!(
                    "media {i}: the answer accepts none of the offered a=crypto lines"
                )));
            }
            configure(&relay, &call.sides[n].legs[i], req)?;
            // Now keyed: the answerer's media may reach the offerer (queued
            // after the configuration, so no packet is forwarded unkeyed).
            if let (Some(nep), Some(oep)) = (call.sides[n].legs[i].ep, call.sides[o].legs[i].ep) {
                relay.subscribe(nep.id, oep.id).map_err(|e| err(e.to_string()))?;
            }

            // What the offerer hears back.
            let ol = &mut call.sides[o].legs[i];
            let Some(oep) = ol.ep else { continue };
            ol.rtcp_mux = ol.offered_mux && (m.rtcp_mux || req.rtcp_mux.contains(&RtcpMux::Accept));
            sdp.remove_crypto(i);
            if let Some((tag, key)) = &ol.srtp_out {
                sdp.add_crypto(i, *tag, key.profile.sdes_name(), &key.key, &key.salt);
            }
            sdp.set_media_proto(i, &ol.proto.clone());
            sdp.set_rtcp_mux(i, ol.rtcp_mux);
            sdp.set_media_endpoint(
                i,
                advertise,
                oep.rtp_port,
                if ol.rtcp_mux { None } else { oep.rtcp_port },
            );
            configure(&relay, &call.sides[o].legs[i], req)?;
        }
        rewrite_common(&mut sdp, req, advertise);
        call.sides[o].pending_offer = false;
        Ok(Response::Ok {
            sdp: Some(sdp.to_string()),
            extra: Vec::new(),
        })
    }

    fn delete(&mut self, req: &Request) -> Result<Response, Response> {
        let call_id = req.call_id.clone().ok_or_else(|| err("missing call-id"))?;
        let call = self
            .calls
            .remove(&call_id)
            .ok_or_else(|| err(format!("Unknown call-id '{call_id}'")))?;
        let totals = self.totals(&call);
        self.free(call);
        Ok(Response::Ok {
            sdp: None,
            extra: totals,
        })
    }

    fn query(&mut self, req: &Request) -> Result<Response, Response> {
        let call_id = req.call_id.clone().ok_or_else(|| err("missing call-id"))?;
        let call = self
            .calls
            .get(&call_id)
            .ok_or_else(|| err(format!("Unknown call-id '{call_id}'")))?;
        Ok(Response::Ok {
            sdp: None,
            extra: self.totals(call),
        })
    }

    fn totals(&self, call: &Call) -> Vec<(String, OwnedValue)> {
        let (mut packets, mut bytes) = (0i64, 0i64);
        let mut tags = Vec::new();
        for side in &call.sides {
            let mut medias = Vec::new();
            for (i, leg) in side.legs.iter().enumerate() {
                let Some(ep) = leg.ep else { continue };
                let st = self.relay.stats(ep.id).unwrap_or_default();
                packets += st.rtp_in as i64;
                bytes += st.bytes_in as i64;
                let mut stream = vec![
                    ("local port", OwnedValue::Int(i64::from(ep.rtp_port))),
                    (
                        "stats",
                        OwnedValue::dict([
                            ("packets", OwnedValue::Int(st.rtp_in as i64)),
                            ("bytes", OwnedValue::Int(st.bytes_in as i64)),
                            ("lost", OwnedValue::Int(st.lost as i64)),
                        ]),
                    ),
                ];
                if let Some(peer) = st.latched.or(leg.peer) {
                    stream.push((
                        "endpoint",
                        OwnedValue::dict([
                            ("address", OwnedValue::string(&peer.ip().to_string())),
                            ("port", OwnedValue::Int(i64::from(peer.port()))),
                        ]),
                    ));
                }
                medias.push(OwnedValue::dict([
                    ("index", OwnedValue::Int(i as i64 + 1)),
                    ("protocol", OwnedValue::string(&leg.proto)),
                    ("streams", OwnedValue::List(vec![OwnedValue::dict(stream)])),
                ]));
            }
            if !side.tag.is_empty() {
                tags.push((
                    side.tag.clone(),
                    OwnedValue::dict([
                        ("tag", OwnedValue::string(&side.tag)),
                        ("medias", OwnedValue::List(medias)),
                    ]),
                ));
            }
        }
        vec![
            ("created".into(), OwnedValue::Int(unix_secs(call.created))),
            (
                "totals".into(),
                OwnedValue::dict([(
                    "RTP",
                    OwnedValue::dict([("packets", OwnedValue::Int(packets)), ("bytes", OwnedValue::Int(bytes))]),
                )]),
            ),
            (
                "tags".into(),
                OwnedValue::Dict(tags.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect()),
            ),
        ]
    }

    fn free(&self, call: Call) {
        for side in call.sides {
            for leg in side.legs {
                if let Some(ep) = leg.ep {
                    let _ = self.relay.remove_endpoint(ep.id);
                }
            }
        }
    }

    /// Deletes calls silent for longer than the timeout; returns how many.
    pub fn expire(&mut self) -> usize {
        let timeout = self.cfg.timeout;
        let relay = &self.relay;
        let stale: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                let signal_idle = c.last_signal.elapsed();
                let media_idle = c
                    .sides
                    .iter()
                    .flat_map(|s| s.legs.iter())
                    .filter_map(|l| l.ep)
                    .filter_map(|e| relay.stats(e.id).and_then(|s| s.idle))
                    .min()
                    .unwrap_or(signal_idle);
                signal_idle > timeout && media_idle > timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            if let Some(c) = self.calls.remove(id) {
                self.free(c);
            }
        }
        stale.len()
    }
}

/// Tells the relay what it now knows about one leg.
fn configure(relay: &Relay, leg: &Leg, req: &Request) -> Result<(), Response> {
    let Some(ep) = leg.ep else { return Ok(()) };
    let latch = if req.strict_source {
        LatchMode::Signaled
    } else {
        LatchMode::Once
    };
    relay
        .configure(
            ep.id,
            &PeerConfig {
                peer: leg.peer,
                peer_rtcp: if leg.rtcp_mux { leg.peer } else { leg.peer_rtcp },
                latch,
                srtp_in: leg.srtp_in.clone(),
                srtp_out: leg.srtp_out.as_ref().map(|(_, k)| k.clone()),
                clock_rate: leg.clock_rate,
                rtcp_mux: leg.rtcp_mux,
            },
        )
        .map_err(|e| err(e.to_string()))
}

/// The RTP clock rate of media line `i`'s first format: from its
/// `a=rtpmap` when dynamic, from RFC 3551's table when static.
fn clock_rate(sdp: &SessionDescription, i: usize) -> u32 {
    let m = sdp.media(i);
    let Some(pt) = m.payload_types().first().copied() else {
        return 8000;
    };
    if let Some(map) = sdp.media_attribute(i, "rtpmap") {
        let mut it = map.split_whitespace();
        if it.next().and_then(|p| p.parse::<u8>().ok()) == Some(pt) {
            if let Some(rate) = it
                .next()
                .and_then(|enc| enc.split('/').nth(1))
                .and_then(|r| r.parse().ok())
            {
                return rate;
            }
        }
    }
    match pt {
        10 | 11 => 44_100,
        6 => 16_000,
        16 => 11_025,
        17 => 22_050,
        14 | 25 | 26 | 28 | 31..=34 => 90_000,
        _ => 8000,
    }
}

fn rewrite_common(sdp: &mut SessionDescription, req: &Request, advertise: IpAddr) {
    if req.ice_remove {
        sdp.remove_ice();
    }
    if req.dtls_off {
        sdp.remove_dtls();
    }
    if req.replace_origin {
        sdp.set_origin_address(advertise);
    }
    if req.replace_session_connection || sdp.session_connection().is_some() {
        sdp.set_session_connection(advertise);
    }
}

/// The ng server: a UDP socket and a thread running an [`NgController`].
#[derive(Debug)]
pub struct NgServer {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NgServer {
    /// Binds `addr` and serves until [`NgServer::stop`].
    pub fn start(addr: SocketAddr, relay: Relay, cfg: NgConfig) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_read_timeout(Some(Duration::from_millis(250)))?;
        let local = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("ng".into()).spawn(move || {
            let mut ctl = NgController::new(relay, cfg);
            let mut buf = vec![0u8; 65536];
            let mut out = Vec::with_capacity(8192);
            let mut last_sweep = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    ctl.handle_datagram(&buf[..n], &mut out);
                    if !out.is_empty() {
                        let _ = sock.send_to(&out, from);
                    }
                }
                if last_sweep.elapsed() >= Duration::from_secs(1) {
                    last_sweep = Instant::now();
                    ctl.expire();
                }
            }
            for (_, c) in ctl.calls.drain() {
                for side in c.sides {
                    for leg in side.legs {
                        if let Some(ep) = leg.ep {
                            let _ = ctl.relay.remove_endpoint(ep.id);
                        }
                    }
                }
            }
        })?;
        Ok(Self {
            local,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the server and frees every call's ports.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{RelayConfig, SrtpContext};

    fn request(pairs: &[(&str, &str)]) -> Request {
        let mut d = b"c1 d".to_vec();
        for (k, v) in pairs {
            d.extend_from_slice(format!("{}:{k}{}:{v}", k.len(), v.len()).as_bytes());
        }
        d.push(b'e');
        ng::parse_datagram(&d).unwrap().1
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 160, 0, 0, 0, 9];
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    /// An SDES answerer's media can be authenticated only with the key in
    /// its answer: before the answer none of it reaches the offerer.
    #[test]
    fn ng_srtp_answerer_is_forwarded_only_once_keyed() {
        let relay = Relay::start(RelayConfig {
            bind: "127.0.0.1".parse().unwrap(),
            port_min: 46100,
            port_max: 46119,
            workers: 1,
            batch: 8,
            raw_send: true,
        })
        .unwrap();
        let mut ctl = NgController::new(
            relay.clone(),
            NgConfig {
                advertise: "127.0.0.1".parse().unwrap(),
                timeout: Duration::from_secs(60),
                max_calls: 4,
            },
        );
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let sdp = |port: u16, proto: &str, crypto: &str| {
            format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {proto} 0\r\n{crypto}")
        };
        let Response::Ok { sdp: Some(to_b), .. } = ctl.handle(&request(&[
            ("sdp", &sdp(a.local_addr().unwrap().port(), "RTP/AVP", "")),
            ("transport-protocol", "RTP/SAVP"),
            ("call-id", "k"),
            ("from-tag", "a"),
            ("command", "offer"),
        ])) else {
            panic!("offer refused")
        };
        let relay_for_b = SocketAddr::from(([127, 0, 0, 1], sdp::parse(&to_b).unwrap().media(0).port));
        let key: Vec<u8> = (0u8..30).collect();
        let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key[..16], &key[16..]).unwrap();
        let mut buf = [0u8; 2048];
        let mut send = |seq: u16| {
            let p = rtp(seq);
            let mut out = [0u8; 2048];
            out[..p.len()].copy_from_slice(&p);
            let n = tx.protect_rtp(&mut out, p.len()).unwrap();
            b.send_to(&out[..n], relay_for_b).unwrap();
        };
        send(1);
        assert!(
            a.recv_from(&mut buf).is_err(),
            "unauthenticated SRTP forwarded before the answer"
        );

        let crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n";
        let answer = ctl.handle(&request(&[
            ("sdp", &sdp(b.local_addr().unwrap().port(), "RTP/SAVP", crypto)),
            ("call-id", "k"),
            ("from-tag", "a"),
            ("to-tag", "b"),
            ("command", "answer"),
        ]));
        assert!(matches!(answer, Response::Ok { sdp: Some(_), .. }), "{answer:?}");
        send(2);
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &rtp(2)[..]);
        relay.shutdown();
    }
}
