//! The relay's control interface: endpoints, their peers and keys, and the
//! subscriptions between them. Signalling (SIP, H.323, the web client, the
//! `ng` protocol) drives media only through this.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Cmd, DropCounters, EndpointConfig, EndpointStats, LatchMode, NewEndpoint, TapSink, Worker};
use crate::pool::{PoolError, PortPool};
use crate::rtp::PayloadMap;
use crate::srtp::{SrtpContext, SrtpError, SrtpProfile};
use crate::sys::{EventFd, RawSender};

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Address the media sockets bind to.
    pub bind: IpAddr,
    /// Lowest media port.
    pub port_min: u16,
    /// Highest media port.
    pub port_max: u16,
    /// Worker threads (one per core is the rule).
    pub workers: usize,
    /// Datagrams per `recvmmsg`.
    pub batch: usize,
    /// Send IPv4 datagrams through one raw socket per worker, a round's
    /// datagrams in one `sendmmsg` (see [`crate::sys::RawSender`]); needs
    /// `CAP_NET_RAW`, and without it the relay sends from each UDP socket.
    pub raw_send: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            port_min: 20000,
            port_max: 29999,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 32,
            raw_send: true,
        }
    }
}

/// An endpoint's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// What the relay allocated for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Its id.
    pub id: EndpointId,
    /// Local RTP port.
    pub rtp_port: u16,
    /// Local RTCP port (`None` with rtcp-mux: RTCP on the RTP port).
    pub rtcp_port: Option<u16>,
}

/// SRTP keying material for one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpParams {
    /// Crypto suite.
    pub profile: SrtpProfile,
    /// Master key.
    pub key: Vec<u8>,
    /// Master salt.
    pub salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpParams")
            .field("profile", &self.profile)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SrtpParams {
    /// Fresh random keys for `profile` (from the OS generator).
    pub fn random(profile: SrtpProfile) -> std::io::Result<Self> {
        let mut key = vec![0u8; profile.key_len()];
        let mut salt = vec![0u8; profile.salt_len()];
        getrandom(&mut key)?;
        getrandom(&mut salt)?;
        Ok(Self { profile, key, salt })
    }

    fn context(&self) -> Result<SrtpContext, SrtpError> {
        SrtpContext::new(self.profile, &self.key, &self.salt)
    }
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// How an endpoint's peer is reached and keyed.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// Signalled RTP address.
    pub peer: Option<SocketAddr>,
    /// Signalled RTCP address.
    pub peer_rtcp: Option<SocketAddr>,
    /// Source policy.
    pub latch: LatchMode,
    /// The peer's key (what it sends is decrypted with this).
    pub srtp_in: Option<SrtpParams>,
    /// Our key towards the peer.
    pub srtp_out: Option<SrtpParams>,
    /// Clock rate of the peer's RTP.
    pub clock_rate: u32,
    /// RTCP multiplexed on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

/// Relay failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// No ports left.
    #[error(transparent)]
    Ports(#[from] PoolError),
    /// No such endpoint.
    #[error("endpoint {0} does not exist")]
    NoEndpoint(u64),
    /// The two endpoints are served by different workers (give them the same group).
    #[error("endpoints {0} and {1} are in different groups")]
    CrossWorker(u64, u64),
    /// Bad SRTP keying material.
    #[error("SRTP: {0}")]
    Srtp(#[from] SrtpError),
    /// A worker is gone.
    #[error("the relay is shutting down")]
    Stopped,
}

/// Counters of one endpoint, read now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// RTP packets accepted.
    pub rtp_in: u64,
    /// Bytes accepted.
    pub bytes_in: u64,
    /// RTCP packets accepted.
    pub rtcp_in: u64,
    /// Packets sent out of this endpoint.
    pub packets_out: u64,
    /// Bytes sent out of this endpoint.
    pub bytes_out: u64,
    /// Packets lost from the peer.
    pub lost: u64,
    /// Jitter in clock units × 1000.
    pub jitter_milli: u64,
    /// Time since the last accepted packet (None: never).
    pub idle: Option<Duration>,
    /// The latched peer address.
    pub latched: Option<SocketAddr>,
}

struct Meta {
    worker: usize,
    rtp_port: u16,
    has_rtcp: bool,
    stats: Arc<EndpointStats>,
    /// The keys of the last configuration (in, out).
    keys: (Option<SrtpParams>, Option<SrtpParams>),
}

struct WorkerHandle {
    tx: Sender<Cmd>,
    wake: Arc<EventFd>,
}

impl WorkerHandle {
    fn send(&self, cmd: Cmd) -> Result<(), RelayError> {
        self.tx.send(cmd).map_err(|_| RelayError::Stopped)?;
        self.wake.wake();
        Ok(())
    }
}

struct Inner {
    pool: Mutex<PortPool>,
    workers: Vec<WorkerHandle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    endpoints: Mutex<HashMap<u64, Meta>>,
    next_id: AtomicU64,
    /// Whether every worker sends IPv4 through a raw socket.
    raw_send: bool,
    drops: Arc<DropCounters>,
    syscalls: Arc<AtomicU64>,
    keyframes: Arc<AtomicU64>,
    epoch: Instant,
}

/// The media relay. Cheap to clone; the workers stop when [`Relay::shutdown`] is called.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("workers", &self.inner.workers.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// Starts the worker threads.
    pub fn start(cfg: RelayConfig) -> std::io::Result<Self> {
        let drops = Arc::new(DropCounters::default());
        let syscalls = Arc::new(AtomicU64::new(0));
        let keyframes = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let mut raw_send = cfg.raw_send;
        for i in 0..cfg.workers.max(1) {
            let (tx, rx) = mpsc::channel();
            let wake = Arc::new(EventFd::new()?);
            // Without CAP_NET_RAW (EPERM) the UDP sockets send, as they would anyway.
            let raw = if cfg.raw_send { RawSender::open().ok() } else { None };
            raw_send &= raw.is_some();
            let mut w = Worker::new(
                wake.clone(),
                rx,
                drops.clone(),
                epoch,
                cfg.batch,
                syscalls.clone(),
                keyframes.clone(),
            )?;
            if let Some(raw) = raw {
                w.use_raw_send(raw);
            }
            threads.push(
                std::thread::Builder::new()
                    .name(format!("relay-{i}"))
                    .spawn(move || w.run())?,
            );
            workers.push(WorkerHandle { tx, wake });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                pool: Mutex::new(PortPool::new(cfg.bind, cfg.port_min, cfg.port_max)),
                workers,
                threads: Mutex::new(threads),
                endpoints: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                raw_send,
                drops,
                syscalls,
                keyframes,
                epoch,
            }),
        })
    }

    /// Whether the workers send IPv4 datagrams through raw sockets
    /// ([`RelayConfig::raw_send`] asked for it and `CAP_NET_RAW` allowed it).
    pub fn raw_send(&self) -> bool {
        self.inner.raw_send
    }

    /// Allocates an endpoint's ports. Endpoints that exchange media must
    /// share a `group` (one call, one conference): a group lives on one worker.
    pub fn create_endpoint(&self, group: u64, rtcp_mux: bool) -> Result<EndpointInfo, RelayError> {
        let pair = lock(&self.inner.pool).allocate(rtcp_mux)?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let worker = (group % self.inner.workers.len() as u64) as usize;
        let rtp_port = pair.rtp_port();
        let rtcp_port = pair.rtcp.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.port());
        let stats = Arc::new(EndpointStats::default());
        lock(&self.inner.endpoints).insert(
            id,
            Meta {
                worker,
                rtp_port,
                has_rtcp: pair.rtcp.is_some(),
                stats: stats.clone(),
                keys: (None, None),
            },
        );
        self.inner.workers[worker].send(Cmd::Add(Box::new(NewEndpoint {
            id,
            rtp: pair.rtp,
            rtcp: pair.rtcp,
            stats,
        })))?;
        Ok(EndpointInfo {
            id: EndpointId(id),
            rtp_port,
            rtcp_port,
        })
    }

    fn worker_of(&self, id: EndpointId) -> Result<usize, RelayError> {
        lock(&self.inner.endpoints)
            .get(&id.0)
            .map(|m| m.worker)
            .ok_or(RelayError::NoEndpoint(id.0))
    }

    /// Sets an endpoint's peer, source policy and keys.
    ///
    /// Configuring again with the same keys (a new address after an ICE
    /// restart, a re-INVITE) keeps the SRTP contexts, with their roll-over
    /// counters and replay windows: only new keys start new contexts.
    pub fn configure(&self, id: EndpointId, cfg: &PeerConfig) -> Result<(), RelayError> {
        let (w, same_keys) = {
            let mut eps = lock(&self.inner.endpoints);
            let m = eps.get_mut(&id.0).ok_or(RelayError::NoEndpoint(id.0))?;
            let keys = (cfg.srtp_in.clone(), cfg.srtp_out.clone());
            let same = keys.0.is_some() && keys.1.is_some() && m.keys == keys;
            m.keys = keys;
            (m.worker, same)
        };
        let c = EndpointConfig {
            peer: cfg.peer,
            peer_rtcp: cfg.peer_rtcp,
            latch: cfg.latch,
            srtp_in: if same_keys {
                None
            } else {
                cfg.srtp_in.as_ref().map(SrtpParams::context).transpose()?
            },
            srtp_out: if same_keys {
                None
            } else {
                cfg.srtp_out.as_ref().map(SrtpParams::context).transpose()?
            },
            keep_srtp: same_keys,
            clock_rate: cfg.clock_rate,
            rtcp_mux: cfg.rtcp_mux,
        };
        self.inner.workers[w].send(Cmd::Configure(id.0, Box::new(c)))
    }

    /// Media received on `from` goes out of `to`, to `to`'s peer.
    pub fn subscribe(&self, from: EndpointId, to: EndpointId) -> Result<(), RelayError> {
        let (wf, wt) = (self.worker_of(from)?, self.worker_of(to)?);
        if wf != wt {
            return Err(RelayError::CrossWorker(from.0, to.0));
        }
        self.inner.workers[wf].send(Cmd::Subscribe {
            from: from.0,
            to: to.0,
            media: None,
            ssrc: None,
        })
    }

    /// A media subscription: RTP received on `from` whose payload type is
    /// in `map` goes out of `to`, renumbered as `map` says (other RTP does
    /// not), with `from`'s RTCP; `to`'s feedback about it (NACK, PLI, FIR)
    /// goes back to `from`'s peer. This is how one stream of a bundled leg
    /// (a browser's camera) reaches other legs while its audio goes to the
    /// mixer. Subscribing again replaces the map.
    pub fn subscribe_media(&self, from: EndpointId, to: EndpointId, map: PayloadMap) -> Result<(), RelayError> {
        self.subscribe_media_as(from, to, map, None)
    }

    /// [`Relay::subscribe_media`], the receiver getting the stream as SSRC
    /// `ssrc` (when `Some`) whatever the publisher's own: for a publisher
    /// whose SSRC was never signalled (most SIP phones), so that the
    /// receiver's SDP can name the stream before it starts. The receiver's
    /// NACK, PLI and FIR about `ssrc` reach the publisher with its own SSRC.
    pub fn subscribe_media_as(
        &self,
        from: EndpointId,
        to: EndpointId,
        map: PayloadMap,
        ssrc: Option<u32>,
    ) -> Result<(), RelayError> {
        let (wf, wt) = (self.worker_of(from)?, self.worker_of(to)?);
        if wf != wt {
            return Err(RelayError::CrossWorker(from.0, to.0));
        }
        self.inner.workers[wf].send(Cmd::Subscribe {
            from: from.0,
            to: to.0,
            media: Some(map),
            ssrc,
        })
    }

    /// RTP with these payload types, received on `id`, never reaches its
    /// tap: a bundled leg's video goes only to its media subscribers. The
    /// keyframe requests of [`Relay::request_keyframe`] then name the SSRC
    /// of that stream.
    pub fn set_untapped(&self, id: EndpointId, pts: PayloadMap) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::Untapped(id.0, pts))
    }

    /// Stops a subscription.
    pub fn unsubscribe(&self, from: EndpointId, to: EndpointId) -> Result<(), RelayError> {
        let w = self.worker_of(from)?;
        self.inner.workers[w].send(Cmd::Unsubscribe { from: from.0, to: to.0 })
    }

    /// Sends everything going out of `id` as one stream with SSRC `ssrc`,
    /// continuous across source changes (`None`: pass headers through).
    pub fn set_rewrite(&self, id: EndpointId, ssrc: Option<u32>, ts_step: u32) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::Rewrite {
            id: id.0,
            ssrc,
            ts_step,
        })
    }

    /// Asks the publisher behind `id` for a keyframe (an RTCP PLI to its
    /// peer, SRTCP-protected when keyed). Needs one RTP packet seen from it.
    pub fn request_keyframe(&self, id: EndpointId) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::RequestKeyframe(id.0))
    }

    /// Delivers what `id`'s peer sends to `sink` as well as to the
    /// endpoint's subscribers (`None` stops it). This is how a conference's
    /// mixer receives a leg's media: validated, authenticated, decrypted.
    pub fn tap(&self, id: EndpointId, sink: Option<Box<dyn TapSink>>) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::Tap(id.0, sink))
    }

    /// Sends an RTP packet made here (the mixer's output for this leg) out
    /// of `id` to its peer, SRTP-protected with the endpoint's outbound key.
    /// Packets that do not parse as RTP are dropped and counted.
    pub fn send_rtp(&self, id: EndpointId, packet: Vec<u8>) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::Send(id.0, packet))
    }

    /// Sends `packet` unchanged out of `id`'s RTP socket to `dest` (no SRTP,
    /// no parsing): STUN responses and DTLS records of a browser leg.
    pub fn send_raw(&self, id: EndpointId, dest: SocketAddr, packet: Vec<u8>) -> Result<(), RelayError> {
        let w = self.worker_of(id)?;
        self.inner.workers[w].send(Cmd::SendRaw(id.0, dest, packet))
    }

    /// Keyframe requests sent so far (asked for, or translated from a
    /// subscriber's PLI/FIR).
    pub fn keyframe_requests(&self) -> u64 {
        self.inner.keyframes.load(Ordering::Relaxed)
    }

    /// Removes an endpoint: its sockets close and its ports return to the pool.
    pub fn remove_endpoint(&self, id: EndpointId) -> Result<(), RelayError> {
        let meta = lock(&self.inner.endpoints)
            .remove(&id.0)
            .ok_or(RelayError::NoEndpoint(id.0))?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.inner.workers[meta.worker].send(Cmd::Remove(id.0, tx))?;
        // The worker closes the sockets; wait (bounded) so the ports are really free.
        let _ = rx.recv_timeout(Duration::from_secs(2));
        lock(&self.inner.pool).release(meta.rtp_port, meta.has_rtcp);
        Ok(())
    }

    /// An endpoint's counters.
    pub fn stats(&self, id: EndpointId) -> Option<EndpointSnapshot> {
        let eps = lock(&self.inner.endpoints);
        let s = &eps.get(&id.0)?.stats;
        let last = s.last_packet_ms.load(Ordering::Relaxed);
        let now = self.inner.epoch.elapsed().as_millis() as u64 + 1;
        Some(EndpointSnapshot {
            rtp_in: s.rtp_in.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            rtcp_in: s.rtcp_in.load(Ordering::Relaxed),
            packets_out: s.packets_out.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            jitter_milli: s.jitter_milli.load(Ordering::Relaxed),
            idle: (last > 0).then(|| Duration::from_millis(now.saturating_sub(last))),
            latched: s.latched.lock().ok().and_then(|l| *l),
        })
    }

    /// Endpoints allocated now.
    pub fn endpoint_count(&self) -> usize {
        lock(&self.inner.endpoints).len()
    }

    /// Ports in use now.
    pub fn ports_in_use(&self) -> usize {
        lock(&self.inner.pool).in_use()
    }

    /// Drops so far, by reason.
    pub fn drops(&self) -> [(&'static str, u64); 10] {
        self.inner.drops.snapshot()
    }

    /// Packet I/O system calls made so far (epoll, recvmmsg, sendmmsg).
    pub fn syscalls(&self) -> u64 {
        self.inner.syscalls.load(Ordering::Relaxed)
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(&self) {
        for w in &self.inner.workers {
            let _ = w.send(Cmd::Shutdown);
        }
        for t in lock(&self.inner.threads).drain(..) {
            let _ = t.join();
        }
    }
}
