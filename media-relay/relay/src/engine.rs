//! The forwarding engine: one worker thread per core, each owning its
//! endpoints, their sockets and their SRTP contexts, so that the packet path
//! takes no locks.
//!
//! A round: `epoll_wait` → for each ready socket one `recvmmsg` (no second
//! call to find it empty: sockets are polled edge-triggered, and a batch
//! shorter than its capacity means the socket is empty; a full one is read
//! again after the other ready sockets, and while one stays full the next
//! wait does not block) → per datagram:
//! demux, source check, validation, SRTP unprotect in place, then for each
//! subscriber a copy into the send batch, stream rewriting, SRTP protect in
//! place → one `sendmmsg` per run of datagrams from one socket (`sendto`
//! for a run of one).
//!
//! Subscriptions are the forwarding graph (rtpengine's media subscriptions):
//! media received on endpoint A is sent out of every endpoint that
//! subscribed to A, to that endpoint's peer. A two-party bridge is two
//! endpoints subscribed to each other; a fan-out is many subscribers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::demux::{classify, PacketKind};
use crate::rtp::{parse_rtcp, parse_rtp, translate_nacks, PayloadMap, ReceptionStats, StreamRewriter, MAX_NACK_FCI};
use crate::srtp::SrtpContext;
use crate::sys::{self, Epoll, EventFd, RawSender, RecvBatch, SendBatch, Source, BUF_SIZE};

/// Hashes endpoint ids with one multiply instead of SipHash: the ids are
/// handed out by the relay itself (sequential), never taken from the network,
/// so there is no hash flooding to defend against, and the packet path looks
/// endpoints up a few times per datagram.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Endpoints by id.
type EndpointMap = HashMap<u64, Endpoint, BuildHasherDefault<IdHasher>>;

/// How long a looked-up source address (raw sends from a socket bound to
/// 0.0.0.0) is used before it is looked up again.
const ROUTE_REFRESH: Duration = Duration::from_secs(30);

/// Token of the worker's wake-up eventfd.
const WAKE: u64 = u64::MAX;

/// How a source address is accepted (protection against media hijacking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// Learn the peer's address from its first valid (for SRTP:
    /// authenticated) packet, then accept only that address.
    #[default]
    Once,
    /// Accept only the signalled address; never learn another.
    Signaled,
}

/// Why packets were dropped, counted per reason.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// Not RTP/RTCP, or a header that does not validate.
    pub malformed: AtomicU64,
    /// From an address other than the latched or signalled one.
    pub wrong_source: AtomicU64,
    /// SRTP/SRTCP authentication failed.
    pub srtp_auth: AtomicU64,
    /// SRTP/SRTCP replayed or too old.
    pub srtp_replay: AtomicU64,
    /// Other SRTP failures (too many SSRCs, no room).
    pub srtp_other: AtomicU64,
    /// A subscriber whose peer address is not known yet.
    pub no_destination: AtomicU64,
    /// STUN on a port with no ICE handling.
    pub stun: AtomicU64,
    /// DTLS on a port with no DTLS handling.
    pub dtls: AtomicU64,
    /// The kernel refused to send.
    pub send_failed: AtomicU64,
    /// Datagrams for an endpoint that no longer exists.
    pub unknown_endpoint: AtomicU64,
}

impl DropCounters {
    /// `(reason, count)` for every reason.
    pub fn snapshot(&self) -> [(&'static str, u64); 10] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("malformed", l(&self.malformed)),
            ("wrong_source", l(&self.wrong_source)),
            ("srtp_auth", l(&self.srtp_auth)),
            ("srtp_replay", l(&self.srtp_replay)),
            ("srtp_other", l(&self.srtp_other)),
            ("no_destination", l(&self.no_destination)),
            ("stun", l(&self.stun)),
            ("dtls", l(&self.dtls)),
            ("send_failed", l(&self.send_failed)),
            ("unknown_endpoint", l(&self.unknown_endpoint)),
        ]
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Counters of one endpoint, published by its worker a few times a second.
#[derive(Debug, Default)]
pub(crate) struct EndpointStats {
    /// RTP packets received and accepted.
    pub rtp_in: AtomicU64,
    /// RTP payload+header bytes received (after SRTP removal).
    pub bytes_in: AtomicU64,
    /// RTCP packets received and accepted.
    pub rtcp_in: AtomicU64,
    /// Packets sent out of this endpoint (RTP and RTCP).
    pub packets_out: AtomicU64,
    /// Bytes sent out of this endpoint.
    pub bytes_out: AtomicU64,
    /// RTP packets lost (RFC 3550 A.3), of what this endpoint received.
    pub lost: AtomicU64,
    /// Interarrival jitter in clock units × 1000.
    pub jitter_milli: AtomicU64,
    /// Milliseconds since the relay started at the last accepted packet (0: never).
    pub last_packet_ms: AtomicU64,
    /// The peer's learned address, as text, when latched (for queries).
    pub latched: std::sync::Mutex<Option<SocketAddr>>,
}

/// Receives what a tapped endpoint's peer sends: validated, authenticated
/// and decrypted packets, on the worker thread. The mixer's legs use this;
/// an implementation must not block (queue and return).
pub trait TapSink: Send {
    /// One RTP packet (header and payload, SRTP already removed).
    fn rtp(&mut self, packet: &[u8]);
    /// One RTCP compound packet (SRTCP already removed).
    fn rtcp(&mut self, _packet: &[u8]) {}
    /// A STUN message (RFC 7983: first byte 0–3) from `src`, before any
    /// source check: ICE connectivity checks come from addresses not yet
    /// known. Return true if taken (it is then not counted as a drop).
    fn stun(&mut self, _src: SocketAddr, _packet: &[u8]) -> bool {
        false
    }
    /// A DTLS record (first byte 20–63) from `src`, for the DTLS-SRTP
    /// handshake. Return true if taken.
    fn dtls(&mut self, _src: SocketAddr, _packet: &[u8]) -> bool {
        false
    }
}

/// What the control plane tells a worker.
pub(crate) enum Cmd {
    Add(Box<NewEndpoint>),
    Configure(u64, Box<EndpointConfig>),
    Subscribe {
        from: u64,
        to: u64,
        media: Option<PayloadMap>,
        ssrc: Option<u32>,
    },
    Untapped(u64, PayloadMap),
    Unsubscribe {
        from: u64,
        to: u64,
    },
    Rewrite {
        id: u64,
        ssrc: Option<u32>,
        ts_step: u32,
    },
    RequestKeyframe(u64),
    Tap(u64, Option<Box<dyn TapSink>>),
    Send(u64, Vec<u8>),
    SendRaw(u64, SocketAddr, Vec<u8>),
    Remove(u64, SyncSender<()>),
    Shutdown,
}

pub(crate) struct NewEndpoint {
    pub id: u64,
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
    pub stats: Arc<EndpointStats>,
}

/// Where an endpoint's peer is and how its media is protected.
#[derive(Default)]
pub(crate) struct EndpointConfig {
    /// The signalled RTP address of the peer (from SDP, H.245, ...).
    pub peer: Option<SocketAddr>,
    /// The signalled RTCP address (default: RTP port + 1, or the RTP address with rtcp-mux).
    pub peer_rtcp: Option<SocketAddr>,
    /// Source address policy.
    pub latch: LatchMode,
    /// Decrypts what the peer sends (its key).
    pub srtp_in: Option<SrtpContext>,
    /// Encrypts what we send to the peer (our key).
    pub srtp_out: Option<SrtpContext>,
    /// The keys did not change: keep the endpoint's SRTP contexts (their
    /// roll-over counters and replay windows) instead of the two above.
    pub keep_srtp: bool,
    /// RTP clock rate of what the peer sends, for jitter (default 8000).
    pub clock_rate: u32,
    /// RTCP goes over the RTP port in both directions (RFC 5761).
    pub rtcp_mux: bool,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("peer", &self.peer)
            .field("peer_rtcp", &self.peer_rtcp)
            .field("latch", &self.latch)
            .field("srtp_in", &self.srtp_in.is_some())
            .field("srtp_out", &self.srtp_out.is_some())
            .finish()
    }
}

struct Endpoint {
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
    /// What sending from `rtp` / `rtcp` needs: descriptor and local address.
    rtp_src: Source,
    rtcp_src: Option<Source>,
    signaled: Option<SocketAddr>,
    signaled_rtcp: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    peer_rtcp: Option<SocketAddr>,
    latch: LatchMode,
    latched: bool,
    rtcp_latched: bool,
    // Boxed: a context is kilobytes, and inline it would spread every
    // endpoint (RTP ones too) over a page, a cache miss per field touched.
    srtp_in: Option<Box<SrtpContext>>,
    srtp_out: Option<Box<SrtpContext>>,
    clock_rate: u32,
    rtcp_mux: bool,
    subscribers: Vec<Subscription>,
    /// Where accepted packets also go (the mixer), if anywhere.
    tap: Option<Box<dyn TapSink>>,
    /// RTP payload types that never reach the tap (a bundled leg's video,
    /// which goes to media subscriptions only).
    untapped: PayloadMap,
    rewriter: Option<(StreamRewriter, u32)>,
    /// SSRC of the peer's last accepted RTP packet (the media SSRC of a PLI).
    last_ssrc: Option<u32>,
    /// Our own SSRC as an RTCP sender towards the peer.
    own_ssrc: u32,
    reception: ReceptionStats,
    local: LocalStats,
    stats: Arc<EndpointStats>,
}

/// One edge of the forwarding graph.
#[derive(Clone, Copy)]
struct Subscription {
    to: u64,
    /// `None`: everything the source's peer sends. `Some`: only RTP with
    /// these payload types, renumbered for the receiver (RTCP still goes),
    /// and the receiver's feedback (NACK, PLI, FIR) goes back to the source.
    media: Option<PayloadMap>,
    /// The SSRC the receiver gets this media as (a publisher whose own
    /// SSRC nobody announced, e.g. a SIP phone's video to a browser); the
    /// receiver's feedback about it is given the publisher's SSRC back.
    ssrc: Option<u32>,
}

/// Counters kept in the worker and published in bulk (no atomic per packet).
#[derive(Default, Clone, Copy)]
struct LocalStats {
    rtp_in: u64,
    bytes_in: u64,
    rtcp_in: u64,
    packets_out: u64,
    bytes_out: u64,
    last_packet_ms: u64,
}

impl Endpoint {
    /// The socket RTCP goes out of: the RTP one under rtcp-mux or when there
    /// is no RTCP socket.
    fn rtcp_source(&self) -> Source {
        match self.rtcp_src {
            Some(s) if !self.rtcp_mux => s,
            _ => self.rtp_src,
        }
    }

    fn rtcp_destination(&self) -> Option<SocketAddr> {
        if self.rtcp_mux {
            return self.peer;
        }
        match (&self.rtcp, self.peer_rtcp, self.peer) {
            (_, Some(a), _) => Some(a),
            (None, None, Some(p)) => Some(p),
            // RFC 3550 §11: RTCP on the next port when nothing else is known.
            (Some(_), None, Some(p)) => Some(SocketAddr::new(p.ip(), p.port().wrapping_add(1))),
            _ => None,
        }
    }

    fn publish(&mut self) {
        let s = &self.stats;
        s.rtp_in.store(self.local.rtp_in, Ordering::Relaxed);
        s.bytes_in.store(self.local.bytes_in, Ordering::Relaxed);
        s.rtcp_in.store(self.local.rtcp_in, Ordering::Relaxed);
        s.packets_out.store(self.local.packets_out, Ordering::Relaxed);
        s.bytes_out.store(self.local.bytes_out, Ordering::Relaxed);
        s.last_packet_ms.store(self.local.last_packet_ms, Ordering::Relaxed);
        s.lost.store(self.reception.lost(), Ordering::Relaxed);
        s.jitter_milli
            .store((self.reception.jitter() * 1000.0) as u64, Ordering::Relaxed);
        if self.latched {
            if let Ok(mut l) = s.latched.lock() {
                *l = self.peer;
            }
        }
    }
}

/// One worker thread's state.
pub(crate) struct Worker {
    epoll: Epoll,
    wake: Arc<EventFd>,
    cmds: Receiver<Cmd>,
    endpoints: EndpointMap,
    recv: RecvBatch,
    send: SendBatch,
    drops: Arc<DropCounters>,
    epoch: Instant,
    /// Total syscalls made for packet I/O, for benchmarks.
    syscalls: Arc<AtomicU64>,
    /// Packet I/O syscalls of this round, added to `syscalls` once per round.
    io_calls: u64,
    /// Keyframe requests (PLI) sent.
    keyframes: Arc<AtomicU64>,
    /// Scratch list of endpoints, reused (no allocation per request).
    sources: Vec<u64>,
    /// Sockets (tokens) whose last read filled the batch or failed: they
    /// may hold more, and edge-triggered epoll will not say so again. Read
    /// again at the end of the round; still full then, in the next round,
    /// whose wait does not block.
    pending: Vec<u64>,
    /// The previous round's `pending`, being read (swapped, not allocated).
    again: Vec<u64>,
}

fn token(id: u64, rtcp: bool) -> u64 {
    id << 1 | u64::from(rtcp)
}

impl Worker {
    pub(crate) fn new(
        wake: Arc<EventFd>,
        cmds: Receiver<Cmd>,
        drops: Arc<DropCounters>,
        epoch: Instant,
        batch: usize,
        syscalls: Arc<AtomicU64>,
        keyframes: Arc<AtomicU64>,
    ) -> std::io::Result<Self> {
        let epoll = Epoll::new(256)?;
        epoll.add(wake.raw(), WAKE)?;
        Ok(Self {
            epoll,
            wake,
            cmds,
            endpoints: EndpointMap::default(),
            recv: RecvBatch::new(batch),
            send: SendBatch::new(batch * 4),
            drops,
            epoch,
            syscalls,
            io_calls: 0,
            keyframes,
            sources: Vec::with_capacity(16),
            pending: Vec::with_capacity(256),
            again: Vec::with_capacity(256),
        })
    }

    /// Sends IPv4 datagrams through `raw` (see [`RawSender`]).
    pub(crate) fn use_raw_send(&mut self, raw: RawSender) {
        self.send.use_raw(raw);
    }

    /// Runs until told to shut down.
    pub(crate) fn run(mut self) {
        let mut ready: Vec<u64> = Vec::with_capacity(256);
        let mut last_publish = Instant::now();
        let mut last_routes = last_publish;
        loop {
            ready.clear();
            // Sockets left with data last round are read without waiting.
            let timeout = if self.pending.is_empty() { 100 } else { 0 };
            match self.epoll.wait(timeout) {
                Ok(tokens) => ready.extend(tokens),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            self.io_calls += 1;
            // One clock read per round: packets of a round share its arrival time.
            let now = Instant::now();
            let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
            self.prefetch_round(&ready);
            for &t in &ready {
                if t == WAKE {
                    self.wake.clear();
                    if !self.commands() {
                        return;
                    }
                    continue;
                }
                self.drain_socket(t, now_ms);
            }
            std::mem::swap(&mut self.pending, &mut self.again);
            for k in 0..self.again.len() {
                let t = self.again[k];
                // Its endpoint may have been removed since.
                if self.endpoints.contains_key(&(t >> 1)) {
                    self.drain_socket(t, now_ms);
                }
            }
            self.again.clear();
            let st = self.send.flush();
            self.io_calls += st.syscalls;
            if st.failed > 0 {
                self.drops.send_failed.fetch_add(st.failed, Ordering::Relaxed);
            }
            self.syscalls
                .fetch_add(std::mem::take(&mut self.io_calls), Ordering::Relaxed);
            if now.saturating_duration_since(last_routes) >= ROUTE_REFRESH {
                last_routes = now;
                self.send.forget_routes();
            }
            if now.saturating_duration_since(last_publish) >= Duration::from_millis(200) {
                last_publish = now;
                for ep in self.endpoints.values_mut() {
                    ep.publish();
                }
            }
        }
    }

    /// Warms the caches for a round before any of its packets is read: looks
    /// up the endpoint of every ready socket, prefetching the endpoint, its
    /// subscriber list and its receiving SRTP context; then does the same
    /// for the first receivers of each (their endpoint and sending SRTP
    /// context). The lookups of one pass do not depend on each other, so
    /// their cache misses overlap; forwarding socket by socket would take
    /// each in turn, between system calls that evict them again.
    fn prefetch_round(&self, ready: &[u64]) {
        /// Receivers warmed per source (a two-party call has one).
        const FANOUT: usize = 4;
        for &t in ready {
            if let Some(ep) = self.endpoints.get(&(t >> 1)) {
                sys::prefetch(ep, std::mem::size_of::<Endpoint>());
                sys::prefetch(ep.subscribers.as_slice(), FANOUT * std::mem::size_of::<Subscription>());
                if let Some(ctx) = &ep.srtp_in {
                    ctx.prefetch_rtp();
                }
            }
        }
        for &t in ready {
            let Some(ep) = self.endpoints.get(&(t >> 1)) else {
                continue;
            };
            for edge in ep.subscribers.iter().take(FANOUT) {
                if let Some(sub) = self.endpoints.get(&edge.to) {
                    sys::prefetch(sub, std::mem::size_of::<Endpoint>());
                    if let Some(ctx) = &sub.srtp_out {
                        ctx.prefetch_rtp();
                    }
                }
            }
        }
    }

    /// Applies pending commands; false on shutdown.
    fn commands(&mut self) -> bool {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                Cmd::Add(n) => {
                    let NewEndpoint { id, rtp, rtcp, stats } = *n;
                    if self.epoll.add_edge(rtp.as_raw_fd(), token(id, false)).is_err() {
                        continue;
                    }
                    if let Some(r) = &rtcp {
                        let _ = self.epoll.add_edge(r.as_raw_fd(), token(id, true));
                    }
                    // Room for every socket, twice (a socket left full last
                    // round can be reported ready again), in the re-read
                    // lists, so that the packet path never grows them.
                    let sockets = 4 * (self.endpoints.len() + 1);
                    for list in [&mut self.pending, &mut self.again] {
                        if list.capacity() < sockets {
                            list.reserve(sockets - list.len());
                        }
                    }
                    let (Ok(rtp_src), Ok(rtcp_src)) = (Source::of(&rtp), rtcp.as_ref().map(Source::of).transpose())
                    else {
                        let _ = self.epoll.delete(rtp.as_raw_fd());
                        if let Some(r) = &rtcp {
                            let _ = self.epoll.delete(r.as_raw_fd());
                        }
                        continue;
                    };
                    self.endpoints.insert(
                        id,
                        Endpoint {
                            rtp,
                            rtcp,
                            rtp_src,
                            rtcp_src,
                            signaled: None,
                            signaled_rtcp: None,
                            peer: None,
                            peer_rtcp: None,
                            latch: LatchMode::Once,
                            latched: false,
                            rtcp_latched: false,
                            srtp_in: None,
                            srtp_out: None,
                            clock_rate: 8000,
                            rtcp_mux: false,
                            subscribers: Vec::with_capacity(4),
                            tap: None,
                            untapped: PayloadMap::new(),
                            rewriter: None,
                            last_ssrc: None,
                            // Derived from the id, odd so it is never 0.
                            own_ssrc: (id as u32).wrapping_mul(0x9e37_79b9) | 1,
                            reception: ReceptionStats::default(),
                            local: LocalStats::default(),
                            stats,
                        },
                    );
                }
                Cmd::Configure(id, cfg) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        let cfg = *cfg;
                        // A new signalled address resets latching (re-INVITE, media handover).
                        if cfg.peer != ep.signaled {
                            ep.latched = false;
                            ep.rtcp_latched = false;
                            ep.peer = cfg.peer;
                            ep.peer_rtcp = cfg.peer_rtcp;
                        }
                        ep.signaled = cfg.peer;
                        ep.signaled_rtcp = cfg.peer_rtcp;
                        ep.latch = cfg.latch;
                        if !cfg.keep_srtp {
                            ep.srtp_in = cfg.srtp_in.map(Box::new);
                            ep.srtp_out = cfg.srtp_out.map(Box::new);
                        }
                        ep.clock_rate = if cfg.clock_rate == 0 { 8000 } else { cfg.clock_rate };
                        ep.rtcp_mux = cfg.rtcp_mux || ep.rtcp.is_none();
                    }
                }
                Cmd::Subscribe { from, to, media, ssrc } => {
                    if self.endpoints.contains_key(&to) {
                        if let Some(ep) = self.endpoints.get_mut(&from) {
                            match ep.subscribers.iter_mut().find(|s| s.to == to) {
                                Some(s) => {
                                    s.media = media;
                                    s.ssrc = ssrc;
                                }
                                None => ep.subscribers.push(Subscription { to, media, ssrc }),
                            }
                        }
                    }
                }
                Cmd::Untapped(id, pts) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.untapped = pts;
                    }
                }
                Cmd::Unsubscribe { from, to } => {
                    if let Some(ep) = self.endpoints.get_mut(&from) {
                        ep.subscribers.retain(|s| s.to != to);
                    }
                }
                Cmd::Rewrite { id, ssrc, ts_step } => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.rewriter = ssrc.map(|s| (StreamRewriter::new(s), ts_step));
                    }
                }
                Cmd::RequestKeyframe(id) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        if send_pli(ep, &mut self.send) {
                            self.keyframes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let st = self.send.flush();
                    self.io_calls += st.syscalls;
                }
                Cmd::Tap(id, sink) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        ep.tap = sink;
                    }
                }
                Cmd::Send(id, packet) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        if self.send.is_full() {
                            let st = self.send.flush();
                            self.io_calls += st.syscalls;
                        }
                        send_own(ep, &mut self.send, &self.drops, &packet);
                    }
                }
                Cmd::SendRaw(id, dest, packet) => {
                    if let Some(ep) = self.endpoints.get_mut(&id) {
                        if self.send.is_full() {
                            let st = self.send.flush();
                            self.io_calls += st.syscalls;
                        }
                        match self.send.next_buf() {
                            Some(out) if packet.len() <= out.len() => {
                                out[..packet.len()].copy_from_slice(&packet);
                                self.send.commit_from(ep.rtp_src, &dest, packet.len());
                                ep.local.packets_out += 1;
                                ep.local.bytes_out += packet.len() as u64;
                            }
                            _ => bump(&self.drops.send_failed),
                        }
                    }
                }
                Cmd::Remove(id, done) => {
                    if let Some(mut ep) = self.endpoints.remove(&id) {
                        ep.publish();
                        let _ = self.epoll.delete(ep.rtp.as_raw_fd());
                        if let Some(r) = &ep.rtcp {
                            let _ = self.epoll.delete(r.as_raw_fd());
                        }
                    }
                    for ep in self.endpoints.values_mut() {
                        ep.subscribers.retain(|s| s.to != id);
                    }
                    let _ = done.send(());
                }
                Cmd::Shutdown => return false,
            }
        }
        true
    }

    /// Reads one batch from a ready socket and forwards it; returns how many datagrams came.
    fn drain_socket(&mut self, t: u64, now_ms: u64) -> usize {
        let id = t >> 1;
        let is_rtcp_socket = t & 1 == 1;
        let fd = match self.endpoints.get(&id) {
            Some(ep) if is_rtcp_socket => match &ep.rtcp {
                Some(s) => s.as_raw_fd(),
                None => return 0,
            },
            Some(ep) => ep.rtp.as_raw_fd(),
            None => {
                bump(&self.drops.unknown_endpoint);
                return 0;
            }
        };
        self.io_calls += 1;
        let n = match self.recv.recv(fd) {
            Ok(n) => n,
            Err(_) => {
                // The error is consumed by the call; datagrams may remain.
                self.pending.push(t);
                return 0;
            }
        };
        if n == self.recv.capacity() {
            // A full batch: the socket may hold more (edge-triggered epoll
            // will not report it again); read it again after the others.
            self.pending.push(t);
        }
        for i in 0..n {
            if self.send.is_full() {
                let st = self.send.flush();
                self.io_calls += st.syscalls;
                if st.failed > 0 {
                    self.drops.send_failed.fetch_add(st.failed, Ordering::Relaxed);
                }
            }
            let (buf, len, src) = self.recv.packet_mut(i);
            let Some(src) = src else { continue };
            let feedback = forward(
                &mut self.endpoints,
                &mut self.send,
                &self.drops,
                id,
                is_rtcp_socket,
                buf,
                len,
                src,
                now_ms,
            );
            if let Some((flen, media_only)) = feedback.to_sources {
                // Feedback goes to the publishers the receiver gets media from.
                self.sources.clear();
                self.sources.extend(
                    self.endpoints
                        .iter()
                        .filter(|(_, e)| {
                            e.subscribers
                                .iter()
                                .any(|s| s.to == id && (s.media.is_some() || !media_only))
                        })
                        .map(|(k, _)| *k),
                );
                for k in 0..self.sources.len() {
                    if self.send.is_full() {
                        let st = self.send.flush();
                        self.io_calls += st.syscalls;
                    }
                    if let Some(ep) = self.endpoints.get_mut(&self.sources[k]) {
                        // Feedback about an SSRC the relay gave this stream names the publisher's own.
                        let alias = ep
                            .subscribers
                            .iter()
                            .find(|s| s.to == id)
                            .and_then(|s| s.ssrc)
                            .zip(ep.last_ssrc);
                        send_feedback(ep, &mut self.send, &self.drops, &buf[..flen], alias);
                    }
                }
            }
            if feedback.keyframe {
                // A switched subscriber asked for a keyframe: ask its current sources.
                // `sources` is reused, so this allocates only when it grows.
                self.sources.clear();
                self.sources.extend(
                    self.endpoints
                        .iter()
                        .filter(|(_, e)| e.subscribers.iter().any(|s| s.to == id))
                        .map(|(k, _)| *k),
                );
                for k in 0..self.sources.len() {
                    if self.send.is_full() {
                        let st = self.send.flush();
                        self.io_calls += st.syscalls;
                    }
                    if let Some(ep) = self.endpoints.get_mut(&self.sources[k]) {
                        if send_pli(ep, &mut self.send) {
                            self.keyframes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        n
    }
}

/// What a received datagram asks of the worker besides forwarding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Feedback {
    /// A switched receiver wants a keyframe: ask its current sources.
    keyframe: bool,
    /// Feedback RTCP, this many bytes at the start of the datagram's
    /// buffer, goes back to the publishers the receiver subscribes to
    /// (`true`: through media subscriptions only). A media subscriber's
    /// NACK, PLI or FIR goes as it came; a switched receiver's NACKs are
    /// translated to its current source's SSRC and sequence numbers.
    to_sources: Option<(usize, bool)>,
}

impl Feedback {
    const NONE: Self = Self {
        keyframe: false,
        to_sources: None,
    };
}

/// Handles one received datagram. Public to the crate for tests and benchmarks.
#[allow(clippy::too_many_arguments)]
fn forward(
    endpoints: &mut EndpointMap,
    send: &mut SendBatch,
    drops: &DropCounters,
    id: u64,
    on_rtcp_socket: bool,
    buf: &mut [u8; BUF_SIZE],
    len: usize,
    src: SocketAddr,
    now_ms: u64,
) -> Feedback {
    if len == 0 {
        bump(&drops.malformed);
        return Feedback::NONE;
    }
    let kind = match classify(&buf[..len]) {
        PacketKind::Rtp if on_rtcp_socket => PacketKind::Unknown,
        k => k,
    };
    let Some(ep) = endpoints.get_mut(&id) else {
        bump(&drops.unknown_endpoint);
        return Feedback::NONE;
    };
    let rtcp = match kind {
        PacketKind::Rtp => false,
        PacketKind::Rtcp => true,
        PacketKind::Stun => {
            if !ep.tap.as_mut().is_some_and(|t| t.stun(src, &buf[..len])) {
                bump(&drops.stun);
            }
            return Feedback::NONE;
        }
        PacketKind::Dtls => {
            if !ep.tap.as_mut().is_some_and(|t| t.dtls(src, &buf[..len])) {
                bump(&drops.dtls);
            }
            return Feedback::NONE;
        }
        _ => {
            bump(&drops.malformed);
            return Feedback::NONE;
        }
    };

    // Source check before any work.
    let (latched, known) = if rtcp && on_rtcp_socket {
        (ep.rtcp_latched, ep.peer_rtcp.or(ep.signaled_rtcp))
    } else {
        (ep.latched, ep.peer)
    };
    let source_ok = match ep.latch {
        LatchMode::Signaled => {
            let want = if rtcp && on_rtcp_socket {
                ep.signaled_rtcp.or(ep.rtcp_destination())
            } else {
                ep.signaled
            };
            want == Some(src) || (rtcp && want.is_some_and(|w| w.ip() == src.ip()))
        }
        LatchMode::Once => !latched || known == Some(src),
    };
    if !source_ok {
        bump(&drops.wrong_source);
        return Feedback::NONE;
    }

    // Validate, then authenticate and decrypt in place.
    let mut len = len;
    let mut feedback = Feedback::NONE;
    let mut translate_nack = false;
    let mut pt = 0;
    if rtcp {
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtcp(buf, len) {
                Ok(l) => len = l,
                Err(e) => {
                    count_srtp(drops, &e);
                    return Feedback::NONE;
                }
            }
        }
        match parse_rtcp(&buf[..len]) {
            Ok(summary) => {
                let keyframe = summary.pli > 0 || summary.fir > 0;
                if ep.rewriter.is_some() {
                    feedback.keyframe = keyframe;
                    translate_nack = summary.nack > 0;
                } else if keyframe || summary.nack > 0 {
                    feedback.to_sources = Some((len, true));
                }
            }
            Err(_) => {
                bump(&drops.malformed);
                return Feedback::NONE;
            }
        }
    } else {
        let Ok(h) = parse_rtp(&buf[..len]) else {
            bump(&drops.malformed);
            return Feedback::NONE;
        };
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtp(buf, len) {
                Ok(l) => len = l,
                Err(e) => {
                    count_srtp(drops, &e);
                    return Feedback::NONE;
                }
            }
        }
        pt = h.payload_type;
        // On a bundled leg the keyframe requests are about its video.
        if ep.untapped.is_empty() || ep.untapped.get(pt).is_some() {
            ep.last_ssrc = Some(h.ssrc);
        }
        let arrival = (now_ms.wrapping_mul(u64::from(ep.clock_rate)) / 1000) as u32;
        ep.reception.record(h.sequence, h.timestamp, arrival);
    }

    // Latch only after the packet proved itself (for SRTP: authenticated).
    if ep.latch == LatchMode::Once {
        if rtcp && on_rtcp_socket {
            if !ep.rtcp_latched {
                ep.peer_rtcp = Some(src);
                ep.rtcp_latched = true;
            }
        } else if !ep.latched {
            ep.peer = Some(src);
            ep.latched = true;
        }
    }
    if rtcp {
        ep.local.rtcp_in += 1;
    } else {
        ep.local.rtp_in += 1;
        ep.local.bytes_in += len as u64;
    }
    ep.local.last_packet_ms = now_ms;
    if let Some(tap) = ep.tap.as_mut() {
        if rtcp {
            tap.rtcp(&buf[..len]);
        } else if ep.untapped.get(pt).is_none() {
            tap.rtp(&buf[..len]);
        }
    }

    let n_subs = ep.subscribers.len();
    for k in 0..n_subs {
        let Some(edge) = endpoints.get(&id).and_then(|e| e.subscribers.get(k).copied()) else {
            break;
        };
        let out_pt = match edge.media {
            Some(map) if !rtcp => match map.get(pt) {
                Some(p) => p,
                None => continue,
            },
            _ => pt,
        };
        let Some(sub) = endpoints.get_mut(&edge.to) else {
            continue;
        };
        let (dest, from) = if rtcp {
            (sub.rtcp_destination(), sub.rtcp_source())
        } else {
            (sub.peer, sub.rtp_src)
        };
        let Some(dest) = dest else {
            bump(&drops.no_destination);
            continue;
        };
        if send.is_full() {
            // A large fan-out fills the batch: send it and go on, dropping nothing.
            let st = send.flush();
            drops.send_failed.fetch_add(st.failed, Ordering::Relaxed);
        }
        let Some(out) = send.next_buf() else {
            bump(&drops.send_failed);
            continue;
        };
        out[..len].copy_from_slice(&buf[..len]);
        let mut out_len = len;
        if !rtcp && out_pt != pt {
            out[1] = (out[1] & 0x80) | out_pt;
        }
        if let (false, Some(ssrc)) = (rtcp, edge.ssrc) {
            crate::rtp::set_ssrc(&mut out[..len], ssrc);
        }
        if !rtcp {
            if let Some((rw, step)) = sub.rewriter.as_mut() {
                if let Ok(h) = parse_rtp(&out[..len]) {
                    rw.rewrite(&mut out[..len], &h, *step);
                }
            }
        }
        if let Some(ctx) = sub.srtp_out.as_mut() {
            let r = if rtcp {
                ctx.protect_rtcp(out, len)
            } else {
                ctx.protect_rtp(out, len)
            };
            match r {
                Ok(l) => out_len = l,
                Err(e) => {
                    count_srtp(drops, &e);
                    continue;
                }
            }
        }
        send.commit_from(from, &dest, out_len);
        sub.local.packets_out += 1;
        sub.local.bytes_out += out_len as u64;
    }
    if translate_nack {
        if let Some(ep) = endpoints.get(&id) {
            if let Some((rw, _)) = ep.rewriter.as_ref() {
                let mut nack = [0u8; 12 + 4 * MAX_NACK_FCI];
                if let Some(n) = translate_nacks(&buf[..len], rw, ep.own_ssrc, &mut nack) {
                    buf[..n].copy_from_slice(&nack[..n]);
                    feedback.to_sources = Some((n, false));
                }
            }
        }
    }
    feedback
}

/// Sends a receiver's decrypted feedback RTCP (`packet`) to the peer of
/// `ep`, a publisher it subscribes to, SRTCP-protected when keyed.
fn send_feedback(
    ep: &mut Endpoint,
    send: &mut SendBatch,
    drops: &DropCounters,
    packet: &[u8],
    alias: Option<(u32, u32)>,
) {
    let Some(dest) = ep.rtcp_destination() else {
        bump(&drops.no_destination);
        return;
    };
    let from = ep.rtcp_source();
    let Some(out) = send.next_buf() else {
        bump(&drops.send_failed);
        return;
    };
    if packet.len() + 32 > out.len() {
        bump(&drops.malformed);
        return;
    }
    out[..packet.len()].copy_from_slice(packet);
    let mut len = packet.len();
    if let Some((given, real)) = alias {
        crate::rtp::rename_feedback_ssrc(&mut out[..len], given, real);
    }
    if let Some(ctx) = ep.srtp_out.as_mut() {
        match ctx.protect_rtcp(out, len) {
            Ok(l) => len = l,
            Err(e) => {
                count_srtp(drops, &e);
                return;
            }
        }
    }
    send.commit_from(from, &dest, len);
    ep.local.packets_out += 1;
    ep.local.bytes_out += len as u64;
}

/// Sends an RTP packet made by the control plane (the mixer's output for
/// this leg) to `ep`'s peer, SRTP-protected when keyed.
fn send_own(ep: &mut Endpoint, send: &mut SendBatch, drops: &DropCounters, packet: &[u8]) {
    let Some(dest) = ep.peer else {
        bump(&drops.no_destination);
        return;
    };
    let len = packet.len();
    let Some(out) = send.next_buf() else {
        bump(&drops.send_failed);
        return;
    };
    // Room for the SRTP tag after the packet.
    if len + 16 > out.len() || parse_rtp(packet).is_err() {
        bump(&drops.malformed);
        return;
    }
    out[..len].copy_from_slice(packet);
    let mut out_len = len;
    if let Some(ctx) = ep.srtp_out.as_mut() {
        match ctx.protect_rtp(out, len) {
            Ok(l) => out_len = l,
            Err(e) => {
                count_srtp(drops, &e);
                return;
            }
        }
    }
    send.commit_from(ep.rtp_src, &dest, out_len);
    ep.local.packets_out += 1;
    ep.local.bytes_out += out_len as u64;
}

/// Sends a picture loss indication (RFC 4585 §6.3.1) to `ep`'s peer, asking
/// the publisher for a keyframe. Returns whether one was queued.
fn send_pli(ep: &mut Endpoint, send: &mut SendBatch) -> bool {
    let (Some(media_ssrc), Some(dest)) = (ep.last_ssrc, ep.rtcp_destination()) else {
        return false;
    };
    let from = ep.rtcp_source();
    let Some(out) = send.next_buf() else { return false };
    out[..4].copy_from_slice(&[0x81, crate::rtp::rtcp_type::PSFB, 0, 2]);
    out[4..8].copy_from_slice(&ep.own_ssrc.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    let mut len = 12;
    if let Some(ctx) = ep.srtp_out.as_mut() {
        match ctx.protect_rtcp(out, len) {
            Ok(l) => len = l,
            Err(_) => return false,
        }
    }
    send.commit_from(from, &dest, len);
    ep.local.packets_out += 1;
    ep.local.bytes_out += len as u64;
    true
}

fn count_srtp(drops: &DropCounters, e: &crate::srtp::SrtpError) {
    use crate::srtp::SrtpError;
    match e {
        SrtpError::AuthFailed => bump(&drops.srtp_auth),
        SrtpError::Replayed | SrtpError::TooOld => bump(&drops.srtp_replay),
        _ => bump(&drops.srtp_other),
    }
}
