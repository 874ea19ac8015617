//! confgate's media relay against rtpengine, side by side, same offered load.
//!
//! Both peers are driven over the rtpengine *ng* protocol as Kamailio would
//! (`offer`, `answer`, `delete`), one peer at a time, pinned to core 1; this
//! process is the load generator, pinned to core 0. For every load level it
//! sets up N calls, sends one G.711-shaped RTP stream per call from the
//! caller's side (all callers share one UDP socket, all callees another),
//! and measures what arrives at the callee: loss, latency, and the relay's
//! CPU time per forwarded packet from `/proc/<pid>/stat`. At every load:
//! plain RTP, SDES-SRTP on both legs with different suites and keys (both
//! relays re-key every packet), and at two loads SDES-SRTP with the same
//! suite on both legs (where rtpengine passes SRTP through). Every load is
//! measured in several rounds (3 by default), modes and peers alternating
//! within a round, a fresh daemon for each measurement; the summary takes
//! each figure's median over the rounds, so that one run's drift in this
//! machine's speed does not decide a ratio.
//!
//! It reports numbers and asserts nothing about speed. Method and the latest
//! figures: `benches/README.md`. Run with
//! `cargo build --release -p confgate && cargo bench -p confgate-suite --bench relay-vs-rtpengine`.
//!
//! Environment knobs for quick runs (the README is only rewritten with the
//! defaults): `RELAY_BENCH_LEVELS=250,1000`, `RELAY_BENCH_WARMUP_SECS`,
//! `RELAY_BENCH_MEASURE_SECS`, `RELAY_BENCH_PEERS=confgate,rtpengine`,
//! `RELAY_BENCH_MODES=rtp,srtp,srtp80`, `RELAY_BENCH_ROUNDS=3`,
//! `RELAY_BENCH_RAW_SEND=false` (confgate sends from each media socket, as
//! without `CAP_NET_RAW`).

// The generator needs a few system calls std does not wrap (CPU affinity,
// RLIMIT_NOFILE, forced socket buffer sizes, ppoll, sysconf, kill, prctl); they are
// confined to `mod os`, each with the reason it is sound.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use confgate_suite::TempDir;
use relay::bencode::{self, Value};
use relay::sys::{RecvBatch, SendBatch, BUF_SIZE};
use relay::{SrtpContext, SrtpProfile};

/// Generator tick: every millisecond one twentieth of the streams send.
const TICK_NS: u64 = 1_000_000;
/// Ticks per packetization interval (20 ms, 50 packets/s per stream).
const SLOTS: u64 = 20;
/// RTP header + 160 bytes of PCMU (20 ms at 8 kHz).
const RTP_LEN: usize = 172;
/// Stream i of level `run` uses SSRC `run << 16 | i`: packets still in
/// flight from an earlier level are told apart and not counted.
const MAX_STREAMS: usize = 1 << 16;
/// Datagrams per `sendmmsg` / `recvmmsg` on the generator side.
const GEN_BATCH: usize = 64;
/// Generator socket buffers (forced, we are root): large enough that the
/// generator never drops what a relay delivered.
const GEN_SOCKBUF: i32 = 64 << 20;
/// Latency histogram: 1 µs buckets up to this, then one overflow bucket.
const HIST_MAX_US: usize = 200_000;
/// A sweep stops after the first level with at least this loss (%).
const STOP_LOSS_PCT: f64 = 1.0;
/// "Carried" means less loss than this (%).
const OK_LOSS_PCT: f64 = 0.1;

/// File descriptors kept free for a daemon's own use (listeners, epoll, logs, database).
const FD_RESERVE: u64 = 256;

/// Media modes, in the order they run.
const MODES: [Mode; 3] = [Mode::Rtp, Mode::Srtp, Mode::Srtp80];
/// Levels for `Mode::Srtp80` (a side measurement: what each peer does by default).
const SRTP80_LEVELS: [usize; 2] = [1000, 3000];
/// The generator waits this long for a quiet machine before each level.
const QUIET_WAIT: Duration = Duration::from_secs(30);
/// The generator is the bottleneck past this share of its core ...
const GEN_BOUND_WORK: f64 = 0.95;
/// ... or this far behind its schedule.
const GEN_BOUND_LAG_MS: f64 = 100.0;
/// A level is measured again (once) when other processes used more than
/// this share of one core during its window.
const DISTURBED_OTHER_CPU: f64 = 0.02;
/// A relay using this share of its core or more is saturated.
const SATURATED_CPU: f64 = 0.9;
/// No level is measured again once the run has taken this long.
const RERUN_BUDGET: Duration = Duration::from_secs(420);

const DEFAULT_LEVELS: [usize; 8] = [250, 500, 1000, 1500, 2000, 3000, 4000, 5000];
const DEFAULT_WARMUP: u64 = 2;
const DEFAULT_MEASURE: u64 = 10;
/// Every load is measured this many times; the report takes the median.
const DEFAULT_ROUNDS: u64 = 3;

/// Nanoseconds since the bench started (one clock for send and receive stamps).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The few system calls std does not offer.
#[path = "common/os.rs"]
mod os;

// ---------------------------------------------------------------------------
// Small helpers: randomness, base64, /proc readers.

/// splitmix64: keys and call ids need to differ, not to be secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// utime + stime of a process, in seconds (`/proc/<pid>/stat` fields 14, 15).
fn proc_cpu_secs(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field 14 is index 11, field 15 index 12.
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((utime + stime) as f64 / os::clk_tck() as f64)
}

/// CPU seconds used so far by every user-space process except `skip`
/// (utime + stime, plus cutime + cstime so that children reaped meanwhile,
/// such as a compiler under `cargo`, are counted too). Kernel threads are
/// left out: they include softirq work done for the relay itself.
fn other_processes_cpu_secs(skip: &[u32]) -> f64 {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if skip.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
        // rest starts at field 3: flags is field 9 (index 6), utime..cstime fields 14-17 (11..=14).
        if f.get(6).is_some_and(|fl| fl & PF_KTHREAD != 0) {
            continue;
        }
        ticks += f.get(11..15).map_or(0, |v| v.iter().sum());
    }
    ticks as f64 / os::clk_tck() as f64
}

/// Time on a CPU of every thread of a process, in ns: the first field of
/// `/proc/<pid>/task/<tid>/schedstat` (the scheduler's exact
/// `sum_exec_runtime`, where `/proc/<pid>/stat` counts clock ticks).
fn proc_runtime_ns(pid: &str) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut sum = 0;
    for e in std::fs::read_dir(&dir).with_context(|| dir.clone())?.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        sum += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(sum)
}

/// CPU and scheduling counters at one instant.
struct Sample {
    relay_cpu: f64,
    relay_ns: u64,
    others_cpu: f64,
    at: u64,
}

impl Sample {
    fn take(relay_pid: &str) -> Result<Self> {
        Ok(Self {
            relay_cpu: proc_cpu_secs(relay_pid)?,
            relay_ns: proc_runtime_ns(relay_pid)?,
            others_cpu: other_processes_cpu_secs(&[relay_pid.parse().unwrap_or(0), std::process::id()]),
            at: now_ns(),
        })
    }
}

/// Waits until the whole machine is nearly idle (other processes use less
/// than 10 % of all cores over half a second), at most `max`. Returns the
/// time waited and whether it got quiet.
fn wait_for_quiet(max: Duration) -> (Duration, bool) {
    fn busy_total() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return (0, 0);
        };
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (total - idle, total)
    }
    let start = Instant::now();
    loop {
        let (b0, t0) = busy_total();
        std::thread::sleep(Duration::from_millis(500));
        let (b1, t1) = busy_total();
        if t1 <= t0 || ((b1 - b0) as f64) < 0.10 * (t1 - t0) as f64 {
            return (start.elapsed(), true);
        }
        if start.elapsed() >= max {
            return (start.elapsed(), false);
        }
    }
}

/// Waits for a quiet machine (at most [`QUIET_WAIT`]) and says so when it
/// took a while or did not happen.
fn quiet_machine() {
    let (waited, quiet) = wait_for_quiet(QUIET_WAIT);
    if !quiet {
        eprintln!(
            "  the machine stayed busy for {:.0} s (other processes): measuring anyway",
            waited.as_secs_f64()
        );
    } else if waited > Duration::from_secs(2) {
        eprintln!("  waited {:.0} s for a quiet machine", waited.as_secs_f64());
    }
}

/// Receive-queue drops of the UDP sockets bound to 127.0.0.1 in `ports`
/// (the last column of `/proc/net/udp`).
fn udp_drops(ports: std::ops::RangeInclusive<u16>) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let mut sum = 0;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some((_, port_hex)) = cols.get(1).and_then(|a| a.split_once(':')) else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port_hex, 16) else {
            continue;
        };
        if ports.contains(&port) {
            sum += cols.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    sum
}

/// A UDP socket on 127.0.0.1 in 10000-19999, outside both relays' media
/// ranges and the kernel's ephemeral range, so that no relay loses a port to us.
fn bind_low_udp(rng: &mut Rng) -> Result<UdpSocket> {
    for _ in 0..200 {
        let port = 10_000 + (rng.next() % 10_000) as u16;
        if let Ok(s) = UdpSocket::bind(("127.0.0.1", port)) {
            return Ok(s);
        }
    }
    bail!("no free UDP port in 10000-19999")
}

fn free_low_tcp_port(rng: &mut Rng) -> Result<u16> {
    for _ in 0..200 {
        let port = 10_000 + (rng.next() % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free TCP port in 10000-19999")
}

fn free_low_udp_port(rng: &mut Rng) -> Result<u16> {
    let s = bind_low_udp(rng)?;
    Ok(s.local_addr()?.port())
}

// ---------------------------------------------------------------------------
// The ng client.

/// A parsed ng reply.
#[derive(Debug, Default)]
struct NgReply {
    result: String,
    error: Option<String>,
    sdp: Option<String>,
}

struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

/// Cookies are unique over the whole run: the peers cache replies by cookie.
static NEXT_COOKIE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn bencode_dict(pairs: &[(&str, &str)], out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in pairs {
        for s in [k, v] {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
        }
    }
    out.push(b'e');
}

impl NgClient {
    fn new(server: SocketAddr, rng: &mut Rng) -> Result<Self> {
        let sock = bind_low_udp(rng)?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(Self {
            sock,
            server,
            buf: vec![0; 65536],
        })
    }

    /// One request; retransmitted (same cookie) up to `tries` times.
    fn request(&mut self, pairs: &[(&str, &str)], tries: u32) -> Result<NgReply> {
        let n = NEXT_COOKIE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cookie = format!("{}_{n}", std::process::id());
        let mut msg = Vec::with_capacity(1024);
        msg.extend_from_slice(cookie.as_bytes());
        msg.push(b' ');
        bencode_dict(pairs, &mut msg);
        for _ in 0..tries {
            self.sock.send_to(&msg, self.server)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let n = match self.sock.recv_from(&mut self.buf) {
                    Ok((n, _)) => n,
                    Err(_) => continue, // read timeout: wait on until the deadline
                };
                let d = &self.buf[..n];
                let Some(sp) = d.iter().position(|&b| b == b' ') else {
                    continue;
                };
                if &d[..sp] != cookie.as_bytes() {
                    continue; // a late reply to an earlier request
                }
                let v = bencode::decode(&d[sp + 1..]).map_err(|e| anyhow!("bad ng reply: {e}"))?;
                let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                return Ok(NgReply {
                    result: s("result").unwrap_or_default(),
                    error: s("error-reason"),
                    sdp: s("sdp"),
                });
            }
        }
        bail!("no ng reply from {} after {tries} tries", self.server)
    }

    fn ok(&mut self, pairs: &[(&str, &str)]) -> Result<NgReply> {
        let r = self.request(pairs, 3)?;
        if r.result != "ok" {
            bail!(
                "ng {:?} failed: {} {}",
                pairs.first().map(|p| p.1).unwrap_or(""),
                r.result,
                r.error.unwrap_or_default()
            );
        }
        Ok(r)
    }
}

/// The first audio port and the `a=crypto` lines of an SDP.
struct SdpInfo {
    addr: String,
    port: u16,
    /// (tag, suite, key||salt)
    crypto: Vec<(String, String, Vec<u8>)>,
}

fn parse_sdp(sdp: &str) -> Result<SdpInfo> {
    let mut addr = String::new();
    let mut port = None;
    let mut crypto = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            addr = c.split('/').next().unwrap_or("").to_string();
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = m.split_whitespace().next().and_then(|p| p.parse::<u16>().ok());
        } else if let Some(c) = line.strip_prefix("a=crypto:") {
            let mut it = c.split_whitespace();
            let (Some(tag), Some(suite), Some(key)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Some(b64) = key.strip_prefix("inline:") else {
                continue;
            };
            let b64 = b64.split('|').next().unwrap_or("");
            if let Some(ks) = base64_decode(b64) {
                crypto.push((tag.to_string(), suite.to_string(), ks));
            }
        }
    }
    let port = port.ok_or_else(|| anyhow!("no m=audio port in SDP:\n{sdp}"))?;
    Ok(SdpInfo { addr, port, crypto })
}

fn make_sdp(port: u16, sess: u64, proto: &str, crypto: Option<(&str, &str, &[u8])>) -> String {
    let mut s = format!(
        "v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    if let Some((tag, suite, ks)) = crypto {
        let _ = write!(s, "a=crypto:{tag} {suite} inline:{}\r\n", base64_encode(ks));
    }
    s
}

// ---------------------------------------------------------------------------
// The peers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    Confgate,
    Rtpengine,
}

impl PeerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Confgate => "confgate",
            Self::Rtpengine => "rtpengine",
        }
    }

    fn ports(self) -> std::ops::RangeInclusive<u16> {
        match self {
            Self::Confgate => 20_000..=39_999,
            Self::Rtpengine => 40_000..=59_999,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// RTP/AVP on both legs.
    Rtp,
    /// SDES-SRTP on both legs with different suites and keys: the caller
    /// offers AES_CM_128_HMAC_SHA1_32, the callee accepts the relay's
    /// AES_CM_128_HMAC_SHA1_80. Both relays re-key every packet.
    Srtp,
    /// SDES-SRTP, AES_CM_128_HMAC_SHA1_80 on both legs. confgate re-keys;
    /// rtpengine offers the callee the caller's own key and passes SRTP through.
    Srtp80,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Rtp => "RTP",
            Self::Srtp => "SRTP",
            Self::Srtp80 => "SRTP-80/80",
        }
    }

    /// The caller's crypto suite.
    fn caller_suite(self) -> Option<(SrtpProfile, &'static str)> {
        match self {
            Self::Rtp => None,
            Self::Srtp => Some((SrtpProfile::AesCm128HmacSha1_32, "AES_CM_128_HMAC_SHA1_32")),
            Self::Srtp80 => Some((SrtpProfile::AesCm128HmacSha1_80, "AES_CM_128_HMAC_SHA1_80")),
        }
    }
}

/// A running system under test, ended by its PID on drop (SIGTERM, then SIGKILL).
struct Peer {
    kind: PeerKind,
    child: Child,
    dir: TempDir,
    ng: SocketAddr,
    http_port: Option<u16>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            os::terminate(self.child.id());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Peer {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["out.log", "err.log"] {
            let t = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(s, "  {l}");
            }
        }
        s
    }

    fn start(kind: PeerKind, confgate_bin: &Path, rng: &mut Rng) -> Result<Self> {
        let dir = TempDir::new(&format!("bench-{}", kind.name()));
        let ng_port = free_low_udp_port(rng)?;
        let ng: SocketAddr = ([127, 0, 0, 1], ng_port).into();
        let out = std::fs::File::create(dir.path().join("out.log"))?;
        let err = std::fs::File::create(dir.path().join("err.log"))?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("1");
        let mut http_port = None;
        match kind {
            PeerKind::Confgate => {
                let hp = free_low_tcp_port(rng)?;
                http_port = Some(hp);
                let r = kind.ports();
                cmd.arg(confgate_bin)
                    .arg("serve")
                    .env("CONFGATE_SERVER__DATA_DIR", dir.path().join("data"))
                    .env("CONFGATE_HTTP__LISTEN", format!("127.0.0.1:{hp}"))
                    .env("CONFGATE_LOOPBACK__ENABLED", "false")
                    .env("CONFGATE_SIP__UDP_LISTEN", "")
                    .env("CONFGATE_SIP__TCP_LISTEN", "")
                    .env("CONFGATE_H323__SIGNALLING_LISTEN", "")
                    .env("CONFGATE_H323__RAS_LISTEN", "")
                    .env("CONFGATE_RELAY__NG_LISTEN", ng.to_string())
                    .env("CONFGATE_RELAY__WORKERS", "1")
                    .env("CONFGATE_MEDIA__BIND", "127.0.0.1")
                    .env("CONFGATE_MEDIA__ADVERTISE", "127.0.0.1")
                    .env("CONFGATE_MEDIA__PORT_MIN", r.start().to_string())
                    .env("CONFGATE_MEDIA__PORT_MAX", r.end().to_string())
                    .env("CONFGATE_SERVER__LOG", "warn")
                    .env("CONFGATE_RELAY__RAW_SEND", raw_send().to_string());
            }
            PeerKind::Rtpengine => {
                let r = kind.ports();
                cmd.arg("rtpengine")
                    // Only the options below: not /etc/rtpengine/rtpengine.conf.
                    .arg("--config-file=none")
                    .arg("--interface=127.0.0.1")
                    .arg(format!("--listen-ng={ng}"))
                    .arg("--foreground")
                    .arg("--table=-1")
                    .arg(format!("--port-min={}", r.start()))
                    .arg(format!("--port-max={}", r.end()))
                    .arg("--num-threads=1")
                    // Free a call's ports at `delete`, not 30 s later (the next level needs them).
                    .arg("--delete-delay=0")
                    .arg("--log-level=3")
                    .arg("--log-stderr")
                    .arg(format!("--pidfile={}", dir.path().join("rtpengine.pid").display()));
            }
        }
        os::die_with_parent(&mut cmd);
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let mut peer = Self {
            kind,
            child,
            dir,
            ng,
            http_port,
        };
        // Ready when it answers an ng ping.
        let mut ng_client = NgClient::new(ng, rng)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = peer.child.try_wait()? {
                bail!("{} exited with {st} during start-up:\n{}", kind.name(), peer.log_tail());
            }
            if let Ok(r) = ng_client.request(&[("command", "ping")], 1) {
                if r.result == "pong" {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer an ng ping within 30 s:\n{}",
                    kind.name(),
                    peer.log_tail()
                );
            }
        }
        Ok(peer)
    }

    /// Non-zero relay lines of `/metrics` (`confgate_relay_*` and relay drop
    /// reasons; confgate only).
    fn relay_metrics(&self) -> Option<Vec<String>> {
        let port = self.http_port?;
        let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        Some(
            text.lines()
                .filter(|l| (l.starts_with("confgate_relay_") || l.contains("reason=\"relay_")) && !l.ends_with(" 0"))
                .map(str::to_owned)
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------
// Calls and the generator.

/// What the generator needs per stream.
struct Stream {
    /// The relay's caller-facing RTP address (from the answer).
    dest: SocketAddr,
    /// Caller → relay (caller's key).
    srtp_out: Option<SrtpContext>,
    /// Relay → callee (the relay's key offered to the callee).
    srtp_in: Option<SrtpContext>,
}

struct Calls {
    ids: Vec<(String, String)>,
    streams: Vec<Stream>,
    /// The relay offered the callee the caller's own key (SDES pass-through, no re-keying).
    passthrough_keys: usize,
}

fn setup_calls(
    ng: &mut NgClient,
    n: usize,
    mode: Mode,
    run: u64,
    port_a: u16,
    port_b: u16,
    rng: &mut Rng,
) -> Result<Calls> {
    let mut calls = Calls {
        ids: Vec::with_capacity(n),
        streams: Vec::with_capacity(n),
        passthrough_keys: 0,
    };
    let proto = if mode == Mode::Rtp { "RTP/AVP" } else { "RTP/SAVP" };
    let caller_suite = mode.caller_suite();
    for i in 0..n {
        let call_id = format!("bench-{run}-{i}-{:x}", rng.next());
        let from_tag = format!("caller-{i}");
        let to_tag = format!("callee-{i}");
        let mut caller_ks = [0u8; 30];
        rng.fill(&mut caller_ks);
        let offer_sdp = make_sdp(
            port_a,
            rng.next() >> 1,
            proto,
            caller_suite.map(|(_, name)| ("1", name, &caller_ks[..])),
        );
        let mut req = vec![
            ("command", "offer"),
            ("call-id", call_id.as_str()),
            ("from-tag", from_tag.as_str()),
            ("sdp", offer_sdp.as_str()),
        ];
        if mode != Mode::Rtp {
            req.push(("transport-protocol", "RTP/SAVP"));
        }
        let offer = ng.ok(&req).with_context(|| format!("offer of call {i} of {n}"))?;
        let to_callee = parse_sdp(offer.sdp.as_deref().unwrap_or(""))?;
        if to_callee.addr != "127.0.0.1" {
            bail!("offer: relay advertises {:?}, not 127.0.0.1", to_callee.addr);
        }
        // The callee accepts the relay's AES_CM_128_HMAC_SHA1_80 line and answers with its own key.
        let mut callee_ks = [0u8; 30];
        rng.fill(&mut callee_ks);
        let mut relay_to_callee = None;
        let mut answer_tag = String::new();
        if mode != Mode::Rtp {
            let (tag, _, ks) = to_callee
                .crypto
                .iter()
                .find(|(_, suite, ks)| suite == "AES_CM_128_HMAC_SHA1_80" && ks.len() == 30)
                .ok_or_else(|| anyhow!("offer: no AES_CM_128_HMAC_SHA1_80 key offered to the callee"))?;
            if ks[..] == caller_ks[..] {
                calls.passthrough_keys += 1;
            }
            relay_to_callee = Some(SrtpContext::new(
                SrtpProfile::AesCm128HmacSha1_80,
                &ks[..16],
                &ks[16..],
            )?);
            answer_tag.clone_from(tag);
        }
        let answer_sdp = make_sdp(
            port_b,
            rng.next() >> 1,
            proto,
            (mode != Mode::Rtp).then_some((answer_tag.as_str(), "AES_CM_128_HMAC_SHA1_80", &callee_ks[..])),
        );
        let mut req = vec![
            ("command", "answer"),
            ("call-id", call_id.as_str()),
            ("from-tag", from_tag.as_str()),
            ("to-tag", to_tag.as_str()),
            ("sdp", answer_sdp.as_str()),
        ];
        if mode != Mode::Rtp {
            req.push(("transport-protocol", "RTP/SAVP"));
        }
        let answer = ng.ok(&req).with_context(|| format!("answer of call {i} of {n}"))?;
        let to_caller = parse_sdp(answer.sdp.as_deref().unwrap_or(""))?;
        if to_caller.addr != "127.0.0.1" {
            bail!("answer: relay advertises {:?}, not 127.0.0.1", to_caller.addr);
        }
        if let Some((_, name)) = caller_suite {
            if !to_caller.crypto.iter().any(|(_, suite, _)| suite == name) {
                bail!(
                    "answer: no {name} key towards the caller:\n{}",
                    answer.sdp.unwrap_or_default()
                );
            }
        }
        calls.streams.push(Stream {
            dest: ([127, 0, 0, 1], to_caller.port).into(),
            srtp_out: match caller_suite {
                None => None,
                Some((profile, _)) => Some(SrtpContext::new(profile, &caller_ks[..16], &caller_ks[16..])?),
            },
            srtp_in: relay_to_callee,
        });
        calls.ids.push((call_id, from_tag));
    }
    Ok(calls)
}

fn delete_calls(ng: &mut NgClient, calls: &Calls) -> Result<()> {
    for (call_id, from_tag) in &calls.ids {
        ng.ok(&[("command", "delete"), ("call-id", call_id), ("from-tag", from_tag)])?;
    }
    Ok(())
}

/// One level's measurements.
#[derive(Debug, Clone)]
struct Level {
    peer: PeerKind,
    mode: Mode,
    n: usize,
    measure_s: f64,
    /// Wall time between the CPU samples (the window; longer if the generator fell behind).
    wall_s: f64,
    sent: u64,
    received: u64,
    relay_cpu_s: f64,
    /// CPU used by other processes during the window, in cores (0.01 = 1 % of one core).
    others_cpu: f64,
    /// Fraction of the window the generator spent sending and receiving (it polls the rest).
    gen_work: f64,
    p50_us: f64,
    p99_us: f64,
    max_lag_ms: f64,
    gen_rx_drops: u64,
    relay_rx_drops: u64,
    bad: u64,
    setup_s: f64,
    delete_s: f64,
    /// Calls whose callee was offered the caller's own SRTP key (no re-keying).
    passthrough: usize,
    /// Packets of an earlier level that arrived during this one.
    stale: u64,
    /// Which round of the sweep (0-based) measured it.
    round: usize,
    /// On a level standing for several rounds (the median): the lowest and
    /// highest µs/pkt of all of them.
    spread: Option<(f64, f64)>,
}

impl Level {
    fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * (self.sent.saturating_sub(self.received)) as f64 / self.sent as f64
    }

    fn fwd_pps(&self) -> f64 {
        self.received as f64 / self.measure_s
    }

    fn us_per_pkt(&self) -> f64 {
        if self.received == 0 {
            return f64::NAN;
        }
        self.relay_cpu_s * 1e6 / self.received as f64
    }

    /// Less than 0.1 % loss at a load the generator really offered.
    fn carried(&self) -> bool {
        self.loss_pct() < OK_LOSS_PCT && !self.generator_bound()
    }

    /// The generator could not keep to its schedule: the offered load was not held.
    fn generator_bound(&self) -> bool {
        self.gen_work >= GEN_BOUND_WORK || self.max_lag_ms >= GEN_BOUND_LAG_MS
    }

    /// The relay used (nearly) all of its core: packets queue, and CPU per
    /// packet is bounded by 1 core / throughput rather than measured.
    fn saturated(&self) -> bool {
        self.relay_cpu_share() >= SATURATED_CPU
    }

    /// Other tasks took the relay's or the generator's core during the window.
    fn disturbed(&self) -> bool {
        self.others_cpu > DISTURBED_OTHER_CPU
    }

    /// Why a level's figures need care, for the table.
    fn flags(&self) -> String {
        let mut f = Vec::new();
        if self.generator_bound() {
            f.push("generator-bound");
        }
        if self.saturated() {
            f.push("saturated");
        }
        if self.disturbed() {
            f.push("disturbed");
        }
        f.join(", ")
    }

    /// Relay CPU time over the window's wall time.
    fn relay_cpu_share(&self) -> f64 {
        self.relay_cpu_s / self.wall_s
    }
}

struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: vec![0; HIST_MAX_US + 1],
            count: 0,
        }
    }

    fn add(&mut self, ns: u64) {
        let us = ((ns / 1000) as usize).min(HIST_MAX_US);
        self.buckets[us] += 1;
        self.count += 1;
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (us, c) in self.buckets.iter().enumerate() {
            acc += c;
            if acc >= want {
                return us as f64;
            }
        }
        HIST_MAX_US as f64
    }
}

/// The generator's two sockets and batches.
struct Generator {
    a: UdpSocket,
    b: UdpSocket,
    send: SendBatch,
    recv: RecvBatch,
}

/// Per-level receive accounting.
struct RxState<'a> {
    streams: &'a mut [Stream],
    /// The level's SSRC prefix.
    run_tag: u32,
    /// Packets of an earlier level.
    stale: u64,
    seq_lo: u16,
    seq_hi: u16,
    received: u64,
    /// Packets received per sequence number (any window): the interleaved
    /// measurement sums a phase's numbers after the packets still in flight
    /// at its end have arrived.
    by_seq: Vec<u32>,
    bad: u64,
    hist: Histogram,
}

impl<'a> RxState<'a> {
    /// Accounting for level `run`'s `streams`, counting into `received`
    /// (and the latency histogram) the packets with sequence numbers in `seqs`.
    fn new(streams: &'a mut [Stream], run: u64, seqs: Range<u16>) -> Self {
        Self {
            streams,
            run_tag: (run & 0xffff) as u32,
            stale: 0,
            seq_lo: seqs.start,
            seq_hi: seqs.end,
            received: 0,
            by_seq: vec![0; 1 << 16],
            bad: 0,
            hist: Histogram::new(),
        }
    }
}

impl Generator {
    /// The generator's (caller side, callee side) ports.
    fn ports(&self) -> Result<(u16, u16)> {
        Ok((self.a.local_addr()?.port(), self.b.local_addr()?.port()))
    }

    /// Reads everything waiting on socket B; returns how many datagrams.
    fn drain(&mut self, rx: &mut RxState<'_>) -> usize {
        let fd = self.b.as_raw_fd();
        let mut total = 0;
        loop {
            let n = self.recv.recv(fd).unwrap_or_default();
            if n == 0 {
                return total;
            }
            total += n;
            let now = now_ns();
            for j in 0..n {
                let (buf, len, _) = self.recv.packet_mut(j);
                if len < 12 {
                    rx.bad += 1;
                    continue;
                }
                let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                if ssrc >> 16 != rx.run_tag {
                    rx.stale += 1;
                    continue;
                }
                let Some(st) = rx.streams.get_mut((ssrc & 0xffff) as usize) else {
                    rx.bad += 1;
                    continue;
                };
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let len = match st.srtp_in.as_mut() {
                    Some(ctx) => match ctx.unprotect_rtp(&mut buf[..], len) {
                        Ok(l) => l,
                        Err(_) => {
                            rx.bad += 1;
                            continue;
                        }
                    },
                    None => len,
                };
                if len != RTP_LEN {
                    rx.bad += 1;
                    continue;
                }
                rx.by_seq[usize::from(seq)] += 1;
                if seq >= rx.seq_lo && seq < rx.seq_hi {
                    rx.received += 1;
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&buf[12..20]);
                    rx.hist.add(now.saturating_sub(u64::from_be_bytes(ts)));
                }
            }
        }
    }

    /// Sends tick `t`'s packets of the streams in `set`: its `t % SLOTS`th,
    /// that `+ SLOTS`, …; returns how many the kernel refused.
    fn send_tick(&mut self, t: u64, set: &Range<usize>, rx: &mut RxState<'_>) -> Result<u64> {
        let fd = self.a.as_raw_fd();
        let seq = (t / SLOTS) as u16;
        let mut failed = 0;
        let n = set.end.min(rx.streams.len());
        let mut i = set.start + (t % SLOTS) as usize;
        while i < n {
            if self.send.is_full() {
                failed += self.send.flush().failed;
                let _ = self.drain(rx);
            }
            let st = &mut rx.streams[i];
            let Some(buf) = self.send.next_buf() else { break };
            fill_rtp(buf, seq, rx.run_tag << 16 | i as u32);
            let len = match st.srtp_out.as_mut() {
                Some(ctx) => ctx.protect_rtp(&mut buf[..], RTP_LEN)?,
                None => RTP_LEN,
            };
            self.send.commit(fd, &st.dest, len);
            i += SLOTS as usize;
        }
        failed += self.send.flush().failed;
        Ok(failed)
    }
}

fn fill_rtp(buf: &mut [u8; BUF_SIZE], seq: u16, ssrc: u32) {
    buf[0] = 0x80; // V=2, no padding, no extension, no CSRC
    buf[1] = 0; // PCMU, no marker
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[20..RTP_LEN].fill(0xff); // PCMU silence
    buf[12..20].copy_from_slice(&now_ns().to_be_bytes());
}

/// What [`drive`] measured.
struct Window {
    /// Taken when the first measured tick was due.
    start: Sample,
    /// Taken when the tick after the last one was due.
    end: Sample,
    /// Packets sent in the measured ticks.
    sent: u64,
    /// Datagrams the generator's kernel refused, warm-up included.
    refused: u64,
    /// How far the generator fell behind its schedule at worst.
    max_lag_ns: u64,
    /// The generator's time spent sending, and receiving something, in the measured ticks.
    gen_work_ns: u64,
}

/// Offers load for `warm + measure` ticks, numbered from `first` (tick `t`
/// sends sequence number `t / SLOTS`), from the streams in `set`, receiving
/// everything meanwhile; samples the relay's CPU at the first measured tick
/// and when the tick after the last is due.
fn drive(
    gen: &mut Generator,
    rx: &mut RxState<'_>,
    set: &Range<usize>,
    pid: &str,
    first: u64,
    warm: u64,
    measure: u64,
) -> Result<Window> {
    let total = warm + measure;
    let mut window_start: Option<Sample> = None;
    let (mut sent, mut refused, mut max_lag, mut gen_work_ns) = (0u64, 0u64, 0u64, 0u64);
    let start = now_ns() + 1_000_000;
    let mut k = 0u64;
    // The generator polls without sleeping: a relay's send to socket B then
    // never has to wake a thread (an IPI, a VM exit here), which a relay
    // sending to a NIC would not pay either.
    loop {
        let now = now_ns();
        let due = start + k * TICK_NS;
        if k < total && now >= due {
            if k == warm {
                window_start = Some(Sample::take(pid)?);
            }
            max_lag = max_lag.max(now - due);
            let t = first + k;
            refused += gen.send_tick(t, set, rx)?;
            if k >= warm {
                sent += (set.len() as u64).saturating_sub(t % SLOTS).div_ceil(SLOTS);
                gen_work_ns += now_ns() - now;
            }
            k += 1;
            continue;
        }
        if k == total && now >= due {
            let end = Sample::take(pid)?;
            let start = window_start.ok_or_else(|| anyhow!("measurement window not sampled"))?;
            return Ok(Window {
                start,
                end,
                sent,
                refused,
                max_lag_ns: max_lag,
                gen_work_ns,
            });
        }
        if gen.drain(rx) > 0 && k > warm {
            gen_work_ns += now_ns() - now;
        }
    }
}

/// Receives what is still in flight: until 200 ms pass without a packet (at most 3 s).
fn collect_in_flight(gen: &mut Generator, rx: &mut RxState<'_>) {
    let drain_start = now_ns();
    let mut last_rx = drain_start;
    while now_ns() - last_rx < 200_000_000 && now_ns() - drain_start < 3_000_000_000 {
        if gen.drain(rx) == 0 {
            os::wait_readable(gen.b.as_raw_fd(), 10_000_000);
        } else {
            last_rx = now_ns();
        }
    }
}

struct Timing {
    warm_ticks: u64,
    measure_ticks: u64,
}

fn run_level(
    peer: &Peer,
    gen: &mut Generator,
    mode: Mode,
    n: usize,
    timing: &Timing,
    run: u64,
    rng: &mut Rng,
) -> Result<Level> {
    let mut ng = NgClient::new(peer.ng, rng)?;
    let (port_a, port_b) = gen.ports()?;
    let t_setup = Instant::now();
    let mut calls = setup_calls(&mut ng, n, mode, run, port_a, port_b, rng)?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    let passthrough = calls.passthrough_keys;
    // Let the relay's workers take the new endpoints before media starts.
    std::thread::sleep(Duration::from_millis(300));
    // Discard anything still queued from an earlier level.
    while gen.recv.recv(gen.b.as_raw_fd()).unwrap_or(0) > 0 {}

    let pid = peer.pid();
    let gen_rx_drops0 = udp_drops(port_b..=port_b);
    let total_ticks = timing.warm_ticks + timing.measure_ticks;
    let seqs = (timing.warm_ticks / SLOTS) as u16..(total_ticks / SLOTS) as u16;
    let mut rx = RxState::new(&mut calls.streams, run, seqs);
    let all = 0..n;
    let w = drive(gen, &mut rx, &all, &pid, 0, timing.warm_ticks, timing.measure_ticks)?;
    collect_in_flight(gen, &mut rx);
    let relay_rx_drops = udp_drops(peer.kind.ports());
    let gen_rx_drops = udp_drops(port_b..=port_b).saturating_sub(gen_rx_drops0);
    let (s, e) = (&w.start, &w.end);
    let wall = (e.at - s.at) as f64 / 1e9;
    let level = Level {
        peer: peer.kind,
        mode,
        n,
        measure_s: timing.measure_ticks as f64 * TICK_NS as f64 / 1e9,
        wall_s: wall,
        sent: w.sent,
        received: rx.received,
        relay_cpu_s: e.relay_cpu - s.relay_cpu,
        others_cpu: (e.others_cpu - s.others_cpu).max(0.0) / wall,
        gen_work: w.gen_work_ns as f64 / 1e9 / wall,
        p50_us: rx.hist.quantile_us(0.50),
        p99_us: rx.hist.quantile_us(0.99),
        max_lag_ms: w.max_lag_ns as f64 / 1e6,
        gen_rx_drops,
        relay_rx_drops,
        bad: rx.bad + w.refused,
        setup_s,
        delete_s: 0.0,
        passthrough,
        stale: rx.stale,
        round: 0,
        spread: None,
    };
    let t_del = Instant::now();
    delete_calls(&mut ng, &calls)?;
    Ok(Level {
        delete_s: t_del.elapsed().as_secs_f64(),
        ..level
    })
}

/// Unmeasured ticks at the start of every interleaved phase: the new set's
/// state comes back into the caches, and the other set's last packets land.
const PHASE_WARM_TICKS: u64 = 500;
/// Measured ticks of every interleaved phase.
const PHASE_MEASURE_TICKS: u64 = 2000;
/// Unmeasured ticks of each set before an interleaved measurement's first pair.
const SETTLE_TICKS: u64 = 2000;
const DEFAULT_PAIRS: usize = 16;
const DEFAULT_PAIRED_LEVELS: [usize; 4] = [250, 500, 1000, 1500];

/// One phase of an interleaved measurement.
#[derive(Debug, Clone)]
struct Phase {
    srtp: bool,
    relay_ns: u64,
    sent: u64,
    received: u64,
    others_cpu: f64,
    /// Sequence numbers `seq_lo..seq_hi` were sent in the measured ticks.
    seq_lo: u16,
    seq_hi: u16,
}

impl Phase {
    fn us_per_pkt(&self) -> f64 {
        if self.received == 0 {
            return f64::NAN;
        }
        self.relay_ns as f64 / 1e3 / self.received as f64
    }
}

/// SRTP's cost over plain RTP for one peer and load, measured in one daemon:
/// see [`run_interleaved`].
#[derive(Debug, Clone)]
struct Interleaved {
    peer: PeerKind,
    n: usize,
    /// (RTP phase, SRTP phase), adjacent in time.
    pairs: Vec<(Phase, Phase)>,
    bad: u64,
    passthrough: usize,
}

impl Interleaved {
    fn phases(&self, srtp: bool) -> impl Iterator<Item = &Phase> {
        self.pairs.iter().map(move |(r, s)| if srtp { s } else { r })
    }

    /// µs per packet over all phases of one kind.
    fn pooled_us(&self, srtp: bool) -> f64 {
        let ns: u64 = self.phases(srtp).map(|p| p.relay_ns).sum();
        let pkts: u64 = self.phases(srtp).map(|p| p.received).sum();
        ns as f64 / 1e3 / pkts as f64
    }

    /// SRTP / RTP − 1 of every pair, ascending.
    fn pair_costs(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .pairs
            .iter()
            .map(|(r, s)| s.us_per_pkt() / r.us_per_pkt() - 1.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median_cost(&self) -> f64 {
        let v = self.pair_costs();
        match v.len() {
            0 => f64::NAN,
            l if l % 2 == 1 => v[l / 2],
            l => (v[l / 2 - 1] + v[l / 2]) / 2.0,
        }
    }

    fn loss_pct(&self) -> f64 {
        let sent: u64 = self.pairs.iter().map(|(r, s)| r.sent + s.sent).sum();
        let received: u64 = self.pairs.iter().map(|(r, s)| r.received + s.received).sum();
        100.0 * sent.saturating_sub(received) as f64 / sent.max(1) as f64
    }

    /// Phases in which other processes took more than [`DISTURBED_OTHER_CPU`].
    fn disturbed_phases(&self) -> usize {
        self.pairs
            .iter()
            .flat_map(|(r, s)| [r, s])
            .filter(|p| p.others_cpu > DISTURBED_OTHER_CPU)
            .count()
    }
}

/// Measures SRTP re-keying against plain RTP in one daemon, so that the
/// drift of this machine's speed (±10 % between measurements a minute apart)
/// does not swamp a difference of that size: `n` RTP calls and `n` SRTP
/// calls (the `Mode::Srtp` suites and keys) are set up side by side, and the
/// generator alternates which set sends, phase by phase, RTP and SRTP in
/// ABBA order (RTP, SRTP, SRTP, RTP, ...), each phase [`PHASE_WARM_TICKS`]
/// unmeasured and [`PHASE_MEASURE_TICKS`] measured. The relay's CPU comes
/// from schedstat (exact, not in clock ticks). Each pair of adjacent phases
/// gives one ratio.
fn run_interleaved(
    peer: &Peer,
    gen: &mut Generator,
    n: usize,
    pairs: usize,
    run: u64,
    rng: &mut Rng,
) -> Result<Interleaved> {
    let mut ng = NgClient::new(peer.ng, rng)?;
    let (port_a, port_b) = gen.ports()?;
    let mut calls = setup_calls(&mut ng, n, Mode::Rtp, run, port_a, port_b, rng)?;
    let srtp_calls = setup_calls(&mut ng, n, Mode::Srtp, run, port_a, port_b, rng)?;
    let passthrough = srtp_calls.passthrough_keys;
    calls.streams.extend(srtp_calls.streams);
    calls.ids.extend(srtp_calls.ids);
    std::thread::sleep(Duration::from_millis(300));
    while gen.recv.recv(gen.b.as_raw_fd()).unwrap_or(0) > 0 {}

    let pid = peer.pid();
    // Phases are counted from `by_seq` (after the last one), not by a window.
    let mut rx = RxState::new(&mut calls.streams, run, 0..0);
    let phase_ticks = PHASE_WARM_TICKS + PHASE_MEASURE_TICKS;
    if ((2 * pairs as u64 * phase_ticks + 2 * (SETTLE_TICKS + SLOTS)) / SLOTS) >= 1 << 15 {
        bail!("{pairs} pairs of phases would wrap the 16-bit sequence numbers");
    }
    // Both sets send once, unmeasured, before the first pair: the relay's
    // first packets of a stream (SRTP state created, sources latched) and
    // the caches' first fill are not what is being compared.
    let mut t = 0;
    for set in [n..2 * n, 0..n] {
        let w = drive(gen, &mut rx, &set, &pid, t, SETTLE_TICKS, 1)?;
        rx.bad += w.refused;
        t += SETTLE_TICKS + SLOTS;
    }
    let mut phases = Vec::with_capacity(2 * pairs);
    for k in 0..2 * pairs {
        let srtp = matches!(k % 4, 1 | 2);
        let set = if srtp { n..2 * n } else { 0..n };
        let w = drive(gen, &mut rx, &set, &pid, t, PHASE_WARM_TICKS, PHASE_MEASURE_TICKS)?;
        let wall = (w.end.at - w.start.at) as f64 / 1e9;
        phases.push(Phase {
            srtp,
            relay_ns: w.end.relay_ns - w.start.relay_ns,
            sent: w.sent,
            received: 0,
            others_cpu: (w.end.others_cpu - w.start.others_cpu).max(0.0) / wall,
            seq_lo: ((t + PHASE_WARM_TICKS) / SLOTS) as u16,
            seq_hi: ((t + phase_ticks) / SLOTS) as u16,
        });
        rx.bad += w.refused;
        t += phase_ticks;
    }
    collect_in_flight(gen, &mut rx);
    for p in &mut phases {
        p.received = rx.by_seq[usize::from(p.seq_lo)..usize::from(p.seq_hi)]
            .iter()
            .map(|&c| u64::from(c))
            .sum();
    }
    let bad = rx.bad;
    delete_calls(&mut ng, &calls)?;
    let mut it = phases.into_iter();
    let mut out = Vec::with_capacity(pairs);
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push(if a.srtp { (b, a) } else { (a, b) });
    }
    Ok(Interleaved {
        peer: peer.kind,
        n,
        pairs: out,
        bad,
        passthrough,
    })
}

fn interleaved_table(runs: &[Interleaved]) -> String {
    let mut s = String::new();
    s.push_str(
        "| peer | calls | pairs | RTP µs/pkt | SRTP µs/pkt | SRTP / RTP − 1, median of pairs (lowest–highest) | pooled | loss % | disturbed phases |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in runs {
        let costs = r.pair_costs();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | **{} %** ({}–{} %) | {} % | {} | {} |",
            r.peer.name(),
            r.n,
            r.pairs.len(),
            fmt_f(r.pooled_us(false), 2),
            fmt_f(r.pooled_us(true), 2),
            fmt_f(100.0 * r.median_cost(), 1),
            fmt_f(100.0 * costs.first().copied().unwrap_or(f64::NAN), 0),
            fmt_f(100.0 * costs.last().copied().unwrap_or(f64::NAN), 0),
            fmt_f(100.0 * (r.pooled_us(true) / r.pooled_us(false) - 1.0), 1),
            fmt_f(r.loss_pct(), 3),
            r.disturbed_phases(),
        );
    }
    s
}

// ---------------------------------------------------------------------------
// Reporting.

fn fmt_f(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "–".into()
    }
}

fn results_table(levels: &[Level]) -> String {
    let mut s = String::new();
    s.push_str(
        "| peer | media | calls | round | offered pps | forwarded pps | loss % | relay CPU % | relay CPU µs/pkt | p50 µs | p99 µs | relay rx-queue drops | gen work % | gen lag ms | other processes CPU % | setup s | delete s | flags |\n",
    );
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    for l in levels {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.peer.name(),
            l.mode.name(),
            l.n,
            l.round + 1,
            l.sent as f64 / l.measure_s,
            l.fwd_pps(),
            fmt_f(l.loss_pct(), 3),
            fmt_f(100.0 * l.relay_cpu_share(), 1),
            fmt_f(l.us_per_pkt(), 2),
            fmt_f(l.p50_us, 0),
            fmt_f(l.p99_us, 0),
            l.relay_rx_drops,
            fmt_f(100.0 * l.gen_work, 0),
            fmt_f(l.max_lag_ms, 2),
            fmt_f(100.0 * l.others_cpu, 1),
            fmt_f(l.setup_s, 1),
            fmt_f(l.delete_s, 1),
            l.flags(),
        );
    }
    s
}

/// µs per packet, marked † when other processes disturbed the window.
fn us_cell(l: &Level) -> String {
    let mut v = fmt_f(l.us_per_pkt(), 2);
    if let Some((lo, hi)) = l.spread {
        let _ = write!(v, " ({}–{})", fmt_f(lo, 2), fmt_f(hi, 2));
    }
    if l.disturbed() {
        format!("{v} †")
    } else {
        v
    }
}

fn find(levels: &[Level], peer: PeerKind, mode: Mode, n: usize) -> Option<&Level> {
    levels.iter().find(|l| l.peer == peer && l.mode == mode && l.n == n)
}

/// One level per peer, media and load: of the rounds that measured it, the
/// one with the median µs/pkt (the lower middle of an even count), with the
/// range over all of them in `spread` when there was more than one.
fn medians(levels: &[Level]) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for l in levels {
        if find(&out, l.peer, l.mode, l.n).is_some() {
            continue;
        }
        let mut rounds: Vec<&Level> = levels
            .iter()
            .filter(|x| x.peer == l.peer && x.mode == l.mode && x.n == l.n)
            .collect();
        rounds.sort_by(|a, b| a.us_per_pkt().total_cmp(&b.us_per_pkt()));
        let mut m = rounds[(rounds.len() - 1) / 2].clone();
        if rounds.len() > 1 {
            m.spread = Some((rounds[0].us_per_pkt(), rounds[rounds.len() - 1].us_per_pkt()));
        }
        out.push(m);
    }
    out
}

fn summary(levels: &[Level]) -> String {
    use PeerKind::{Confgate, Rtpengine};
    let mut s = String::new();
    s.push_str(
        "**Highest load carried with < 0.1 % loss**\n\n\
         | peer | media | calls | forwarded pps | relay CPU % | relay CPU µs/pkt | p50 µs | p99 µs |\n\
         |---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for mode in MODES {
        for peer in [Confgate, Rtpengine] {
            let best = levels
                .iter()
                .filter(|l| l.peer == peer && l.mode == mode && l.carried())
                .max_by_key(|l| l.n);
            match best {
                Some(l) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                        peer.name(),
                        mode.name(),
                        l.n,
                        l.fwd_pps(),
                        fmt_f(100.0 * l.relay_cpu_share(), 0),
                        us_cell(l),
                        fmt_f(l.p50_us, 0),
                        fmt_f(l.p99_us, 0)
                    );
                }
                None if levels.iter().any(|l| l.peer == peer && l.mode == mode) => {
                    let _ = writeln!(s, "| {} | {} | none | – | – | – | – | – |", peer.name(), mode.name());
                }
                None => {}
            }
        }
    }
    if levels
        .iter()
        .any(|l| l.peer == Confgate && l.mode == Mode::Rtp && l.generator_bound())
    {
        s.push_str(
            "\nA sweep that ends with a generator-bound level did not find the relay's limit: the generator \
             (one core) could not offer more.\n",
        );
    }

    s.push_str(
        "\n**Relay CPU per forwarded packet at the same load** (both peers < 0.1 % loss; target: ratio ≤ 0.67)\n\n\
         | media | calls | pps | confgate CPU % | rtpengine CPU % | confgate µs/pkt | rtpengine µs/pkt | confgate / rtpengine |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    let mut common = [None; MODES.len()];
    let mut common_unsat = [None; MODES.len()];
    for (k, mode) in MODES.into_iter().enumerate() {
        for n in level_ns(levels, |l| l.mode == mode) {
            let (Some(c), Some(r)) = (find(levels, Confgate, mode, n), find(levels, Rtpengine, mode, n)) else {
                continue;
            };
            if !(c.carried() && r.carried()) {
                continue;
            }
            common[k] = Some(n);
            if !c.saturated() && !r.saturated() {
                common_unsat[k] = Some(n);
            }
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                mode.name(),
                n,
                c.fwd_pps(),
                cpu_cell(c),
                cpu_cell(r),
                us_cell(c),
                us_cell(r),
                fmt_f(c.us_per_pkt() / r.us_per_pkt(), 2)
            );
        }
    }
    let any_saturated = levels.iter().any(|l| l.carried() && l.saturated());
    s.push_str(if !any_saturated {
        ""
    } else {
        "\n‡ saturated: the relay used ≥ 90 % of its core and queued packets (see p50 below); its µs/pkt is \
         then about 1 core / throughput, a floor set by the offered load, not its cost per packet.\n"
    });
    for (k, mode) in MODES.into_iter().enumerate() {
        for (what, n) in [
            ("Highest common load", common[k]),
            ("Highest common load with neither relay saturated", common_unsat[k]),
        ] {
            let Some(n) = n else { continue };
            if let (Some(c), Some(r)) = (find(levels, Confgate, mode, n), find(levels, Rtpengine, mode, n)) {
                let _ = writeln!(
                    s,
                    "\n{what}, {}: {n} calls ({:.0} pps): confgate {} µs/pkt, rtpengine {} µs/pkt, ratio **{}**.",
                    mode.name(),
                    c.fwd_pps(),
                    us_cell(c),
                    us_cell(r),
                    fmt_f(c.us_per_pkt() / r.us_per_pkt(), 2)
                );
            }
        }
    }

    s.push_str(
        "\n**SRTP↔SRTP cost over plain RTP, same peer, same load** (both < 0.1 % loss; target for confgate: ≤ +15 %)\n\n\
         | peer | media | calls | RTP µs/pkt | SRTP µs/pkt | SRTP / RTP − 1 |\n|---|---|--:|--:|--:|--:|\n",
    );
    for srtp in [Mode::Srtp, Mode::Srtp80] {
        for peer in [Confgate, Rtpengine] {
            for n in level_ns(levels, |l| l.peer == peer) {
                let (Some(p), Some(x)) = (find(levels, peer, Mode::Rtp, n), find(levels, peer, srtp, n)) else {
                    continue;
                };
                if !(p.carried() && x.carried()) {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {}{} | {}{} | {} % |",
                    peer.name(),
                    srtp.name(),
                    n,
                    us_cell(p),
                    if p.saturated() { " ‡" } else { "" },
                    us_cell(x),
                    if x.saturated() { " ‡" } else { "" },
                    fmt_f(100.0 * (x.us_per_pkt() / p.us_per_pkt() - 1.0), 0)
                );
            }
        }
    }
    s
}

/// The call counts of the levels that match, ascending.
fn level_ns(levels: &[Level], pick: impl Fn(&Level) -> bool) -> Vec<usize> {
    let mut ns: Vec<usize> = levels.iter().filter(|l| pick(l)).map(|l| l.n).collect();
    ns.sort_unstable();
    ns.dedup();
    ns
}

/// Relay CPU %, marked ‡ when saturated.
fn cpu_cell(l: &Level) -> String {
    let v = fmt_f(100.0 * l.relay_cpu_share(), 0);
    if l.saturated() {
        format!("{v} ‡")
    } else {
        v
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Which source the daemon was built from: the commit, uncommitted changes
/// under `gateway/`, `media-relay/` and `protocols/`, and the binary's age.
fn build_identity(bin: &Path) -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = first_line("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "-C",
            dir,
            "status",
            "--porcelain",
            "--",
            "gateway",
            "media-relay",
            "protocols",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    let age = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|d| format!(", binary built {} min before the run", d.as_secs() / 60))
        .unwrap_or_default();
    let head = if head.is_empty() {
        "unknown commit".to_string()
    } else {
        format!("commit {head}")
    };
    if dirty > 0 {
        format!("{head} + uncommitted changes in {dirty} files{age}")
    } else {
        format!("{head}{age}")
    }
}

fn machine() -> (u64, String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (os::online_cpus(), cpu)
}

/// Replaces the "Latest figures" subsection of this bench's section of
/// `benches/README.md` (up to the next `## ` heading), leaving the rest of
/// the file (other benches' sections) as it is.
fn write_readme(report: &str) -> Result<PathBuf> {
    const SECTION: &str = "\n## relay-vs-rtpengine";
    const FIGURES: &str = "\n### Latest figures\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/README.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new_figures = format!("{FIGURES}\n{}\n", report.trim_end());
    let text = match old.find(SECTION) {
        Some(sec) => {
            let body = sec + SECTION.len();
            let section_end = old[body..].find("\n## ").map_or(old.len(), |i| body + i);
            match old[body..section_end].find(FIGURES) {
                Some(i) => format!("{}{new_figures}{}", &old[..body + i], &old[section_end..]),
                None => format!(
                    "{}\n{new_figures}{}",
                    old[..section_end].trim_end(),
                    &old[section_end..]
                ),
            }
        }
        None if old.is_empty() => format!("# Benchmarks\n{SECTION}\n{new_figures}"),
        None => format!("{}\n{SECTION}\n{new_figures}", old.trim_end()),
    };
    std::fs::write(&path, text)?;
    Ok(path)
}

// ---------------------------------------------------------------------------

fn print_level(level: &Level) {
    eprintln!(
        "  {:9} {:4} {:5} calls, round {}: {:7.0} pps fwd, loss {:6.3} %, relay {:5.1} % CPU, {:5.2} µs/pkt, p50 {:5.0} µs, \
         p99 {:6.0} µs, gen work {:3.0} % (lag {:.2} ms), other processes {:.1} % CPU, setup {:.1} s, \
         delete {:.1} s{}",
        level.peer.name(),
        level.mode.name(),
        level.n,
        level.round + 1,
        level.fwd_pps(),
        level.loss_pct(),
        100.0 * level.relay_cpu_share(),
        level.us_per_pkt(),
        level.p50_us,
        level.p99_us,
        100.0 * level.gen_work,
        level.max_lag_ms,
        100.0 * level.others_cpu,
        level.setup_s,
        level.delete_s,
        if level.bad + level.gen_rx_drops + level.stale > 0 {
            format!(
                ", {} bad, {} stale, {} generator rx drops",
                level.bad, level.stale, level.gen_rx_drops
            )
        } else {
            String::new()
        }
    );
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn env_secs(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// Whether confgate may send through its raw socket (`relay.raw_send`):
/// `RELAY_BENCH_RAW_SEND=false` measures its per-socket sends instead.
fn raw_send() -> bool {
    static RAW: OnceLock<bool> = OnceLock::new();
    *RAW.get_or_init(|| std::env::var("RELAY_BENCH_RAW_SEND").map_or(true, |v| v.trim() != "false" && v.trim() != "0"))
}

fn confgate_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/deps/<bench>-<hash> → target/release/confgate
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("confgate"))
        .ok_or_else(|| anyhow!("cannot place {}", exe.display()))?;
    if !bin.is_file() {
        bail!(
            "{} does not exist: build the daemon first with `cargo build --release -p confgate` \
             (same CARGO_TARGET_DIR as this bench)",
            bin.display()
        );
    }
    Ok(bin)
}

fn main() -> Result<()> {
    let _ = now_ns();
    let custom_levels = std::env::var_os("RELAY_BENCH_LEVELS").is_some();
    let levels_cfg: Vec<usize> = match env_list("RELAY_BENCH_LEVELS") {
        Some(v) => v
            .iter()
            .map(|x| x.parse::<usize>().with_context(|| format!("RELAY_BENCH_LEVELS: {x}")))
            .collect::<Result<_>>()?,
        None => DEFAULT_LEVELS.to_vec(),
    };
    let warm = env_secs("RELAY_BENCH_WARMUP_SECS", DEFAULT_WARMUP)?;
    let measure = env_secs("RELAY_BENCH_MEASURE_SECS", DEFAULT_MEASURE)?.max(1);
    let rounds = env_secs("RELAY_BENCH_ROUNDS", DEFAULT_ROUNDS)?.max(1) as usize;
    let peers: Vec<PeerKind> = match env_list("RELAY_BENCH_PEERS") {
        Some(v) => v
            .iter()
            .map(|p| match p.as_str() {
                "confgate" => Ok(PeerKind::Confgate),
                "rtpengine" => Ok(PeerKind::Rtpengine),
                _ => Err(anyhow!("RELAY_BENCH_PEERS: unknown peer {p}")),
            })
            .collect::<Result<_>>()?,
        None => vec![PeerKind::Confgate, PeerKind::Rtpengine],
    };
    let modes: Vec<Mode> = match env_list("RELAY_BENCH_MODES") {
        Some(v) => v
            .iter()
            .map(|m| match m.as_str() {
                "rtp" => Ok(Mode::Rtp),
                "srtp" => Ok(Mode::Srtp),
                "srtp80" => Ok(Mode::Srtp80),
                _ => Err(anyhow!("RELAY_BENCH_MODES: unknown mode {m}")),
            })
            .collect::<Result<_>>()?,
        None => MODES.to_vec(),
    };
    let paired_levels: Vec<usize> = match env_list("RELAY_BENCH_PAIRED_LEVELS") {
        Some(v) => v
            .iter()
            .map(|x| {
                x.parse::<usize>()
                    .with_context(|| format!("RELAY_BENCH_PAIRED_LEVELS: {x}"))
            })
            .collect::<Result<_>>()?,
        None => DEFAULT_PAIRED_LEVELS.to_vec(),
    };
    let pairs = env_secs("RELAY_BENCH_PAIRS", DEFAULT_PAIRS as u64)?.max(1) as usize;
    let defaults = paired_levels == DEFAULT_PAIRED_LEVELS
        && pairs == DEFAULT_PAIRS
        && levels_cfg == DEFAULT_LEVELS
        && warm == DEFAULT_WARMUP
        && measure == DEFAULT_MEASURE
        && rounds == DEFAULT_ROUNDS as usize
        && raw_send()
        && peers.len() == 2
        && modes.len() == MODES.len();
    let timing = Timing {
        warm_ticks: warm * 1000,
        measure_ticks: measure * 1000,
    };

    let bin = confgate_bin()?;
    let build = build_identity(&bin);
    if os::online_cpus() < 2 {
        bail!("needs 2 cores: the relay on core 1, the generator on core 0");
    }
    let rtpengine_version = first_line("rtpengine", &["--version"]);
    if rtpengine_version.is_empty() {
        bail!("rtpengine is not installed (Debian package rtpengine-daemon)");
    }
    let nofile = os::raise_nofile(65_536).context("raising RLIMIT_NOFILE")?;
    let mut notes: Vec<String> = Vec::new();
    // 4 sockets per call, and room for the daemons' other descriptors.
    let fd_cap = ((nofile.saturating_sub(FD_RESERVE) / 4) as usize / 100 * 100).min(MAX_STREAMS - 1);
    let mut levels_cfg: Vec<usize> = levels_cfg.into_iter().map(|n| n.min(fd_cap)).collect();
    levels_cfg.dedup();
    if nofile < 65_536 {
        let msg = format!(
            "RLIMIT_NOFILE could only be raised to {nofile} (hard limit; no CAP_SYS_RESOURCE here): \
             at 4 sockets per call the peers can hold {fd_cap} calls, so the top level is {fd_cap}"
        );
        eprintln!("note: {msg}");
        notes.push(msg);
    }
    os::pin_to_cpu(0).context("pinning the generator to core 0")?;

    let mut rng = Rng(now_ns() ^ u64::from(std::process::id()) << 32 ^ 0x5eed);
    let a = bind_low_udp(&mut rng)?;
    let b = bind_low_udp(&mut rng)?;
    os::force_buffers(a.as_raw_fd(), GEN_SOCKBUF).context("SO_RCVBUFFORCE (run as root)")?;
    os::force_buffers(b.as_raw_fd(), GEN_SOCKBUF).context("SO_RCVBUFFORCE (run as root)")?;
    let mut gen = Generator {
        a,
        b,
        send: SendBatch::new(GEN_BATCH),
        recv: RecvBatch::new(GEN_BATCH),
    };
    let (ncpu, cpu_model) = machine();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "relay-vs-rtpengine: {ncpu} cores ({cpu_model}), {rtpengine_version}, load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    eprintln!(
        "levels {levels_cfg:?} calls, {rounds} round(s), {warm} s warm-up + {measure} s measured per level, generator on core 0, relays on core 1"
    );

    let started = Instant::now();
    let mut results: Vec<Level> = Vec::new();
    let mut run = 0u64;
    let mut metrics_seen: Vec<String> = Vec::new();
    // Whether confgate's /metrics said it sent through its raw socket.
    let mut raw_seen: Option<bool> = None;
    // Media modes and peers alternate at every load (a fresh daemon for each
    // measurement, one at a time, the first peer alternating too), so that
    // the figures compared with each other are taken within a minute or two:
    // this machine's speed drifts more than that over ten minutes.
    let mut stopped: Vec<(PeerKind, Mode)> = Vec::new();
    for (li, &n) in levels_cfg.iter().enumerate() {
        // A sweep stops for a peer and media after a load it did not carry;
        // decided in any round, it applies from the next load, so that every
        // round of a load measures the same peers and media.
        let mut stop_next: Vec<(PeerKind, Mode)> = Vec::new();
        for round in 0..rounds {
            for &mode in &modes {
                if mode == Mode::Srtp80 && !custom_levels && !SRTP80_LEVELS.contains(&n) {
                    continue;
                }
                let order: Vec<PeerKind> = if (li + round) % 2 == 0 {
                    peers.clone()
                } else {
                    peers.iter().rev().copied().collect()
                };
                for kind in order {
                    if stopped.contains(&(kind, mode)) {
                        continue;
                    }
                    let mut attempt = 0;
                    let level = loop {
                        attempt += 1;
                        run += 1;
                        quiet_machine();
                        let peer = Peer::start(kind, &bin, &mut rng)?;
                        let level = match run_level(&peer, &mut gen, mode, n, &timing, run, &mut rng) {
                            Ok(l) => Level { round, ..l },
                            Err(e) => {
                                let msg = format!("{} {} {n} calls: {e:#}", kind.name(), mode.name());
                                eprintln!("  FAILED {msg}\n{}", peer.log_tail());
                                notes.push(msg);
                                break None;
                            }
                        };
                        print_level(&level);
                        if let Some(lines) = peer.relay_metrics() {
                            if !lines.is_empty() {
                                eprintln!("    /metrics: {}", lines.join("; "));
                            }
                            if kind == PeerKind::Confgate {
                                let raw = lines.iter().any(|l| l == "confgate_relay_raw_send 1");
                                raw_seen = Some(raw_seen.unwrap_or(raw) && raw);
                            }
                            metrics_seen.extend(lines.into_iter().filter(|l| l.contains("dropped")));
                        }
                        drop(peer);
                        // Measure a disturbed level again, while the run is within its time budget.
                        if level.disturbed() && attempt < 2 && started.elapsed() < RERUN_BUDGET {
                            eprintln!("  other processes took the cores during the window: measuring this level again");
                            continue;
                        }
                        break Some(level);
                    };
                    let Some(level) = level else {
                        stopped.push((kind, mode));
                        continue;
                    };
                    if level.passthrough > 0 {
                        notes.push(format!(
                            "{} {} {n} calls: in {} of {n} calls the callee was offered the caller's own key \
                         (SDES pass-through: SRTP forwarded without re-keying)",
                            kind.name(),
                            mode.name(),
                            level.passthrough
                        ));
                    }
                    if level.gen_rx_drops > 0 {
                        notes.push(format!(
                            "{} {} {n} calls: the generator's receive socket dropped {} packets (counted as loss)",
                            kind.name(),
                            mode.name(),
                            level.gen_rx_drops
                        ));
                    }
                    if level.bad > 0 {
                        notes.push(format!(
                            "{} {} {n} calls: {} packets failed to authenticate, were malformed or were refused by \
                         the generator's kernel",
                            kind.name(),
                            mode.name(),
                            level.bad
                        ));
                    }
                    let lossy = level.loss_pct() >= STOP_LOSS_PCT;
                    let gen_bound = level.generator_bound();
                    results.push(level);
                    if lossy || gen_bound {
                        eprintln!(
                            "  {}: higher levels skipped for {} {}",
                            if lossy {
                                format!("loss ≥ {STOP_LOSS_PCT} %")
                            } else {
                                "the generator could not hold the offered load".to_string()
                            },
                            kind.name(),
                            mode.name()
                        );
                        if !stop_next.contains(&(kind, mode)) {
                            stop_next.push((kind, mode));
                        }
                    }
                }
            }
        }
        stopped.extend(stop_next);
    }
    // SRTP against RTP in one daemon per peer and load (see `run_interleaved`).
    let mut interleaved: Vec<Interleaved> = Vec::new();
    for (li, &n) in paired_levels.iter().enumerate() {
        let n = n.min(fd_cap / 2);
        let order: Vec<PeerKind> = if li % 2 == 0 {
            peers.clone()
        } else {
            peers.iter().rev().copied().collect()
        };
        for kind in order {
            run += 1;
            quiet_machine();
            let peer = Peer::start(kind, &bin, &mut rng)?;
            match run_interleaved(&peer, &mut gen, n, pairs, run, &mut rng) {
                Ok(r) => {
                    let phases: Vec<String> = r
                        .pairs
                        .iter()
                        .map(|(a, b)| format!("{:.2}/{:.2}", a.us_per_pkt(), b.us_per_pkt()))
                        .collect();
                    eprintln!("    phases, RTP/SRTP µs/pkt: {}", phases.join(" "));
                    let costs: Vec<String> = r.pair_costs().iter().map(|c| format!("{:+.0}", 100.0 * c)).collect();
                    eprintln!(
                        "  {:9} interleaved {n} RTP + {n} SRTP calls: RTP {:.2} µs/pkt, SRTP {:.2} µs/pkt, \
                         SRTP / RTP − 1 per pair [{}] %, median {:+.1} %, loss {:.3} %, {} disturbed phases",
                        kind.name(),
                        r.pooled_us(false),
                        r.pooled_us(true),
                        costs.join(" "),
                        100.0 * r.median_cost(),
                        r.loss_pct(),
                        r.disturbed_phases()
                    );
                    if r.passthrough > 0 {
                        notes.push(format!(
                            "{} interleaved {n} calls: in {} of {n} SRTP calls the callee was offered the caller's \
                             own key (SDES pass-through: SRTP forwarded without re-keying)",
                            kind.name(),
                            r.passthrough
                        ));
                    }
                    if r.bad > 0 {
                        notes.push(format!(
                            "{} interleaved {n} calls: {} packets failed to authenticate, were malformed or were \
                             refused by the generator's kernel",
                            kind.name(),
                            r.bad
                        ));
                    }
                    interleaved.push(r);
                }
                Err(e) => {
                    let msg = format!("{} interleaved {n} calls: {e:#}", kind.name());
                    eprintln!("  FAILED {msg}\n{}", peer.log_tail());
                    notes.push(msg);
                }
            }
        }
    }
    interleaved.sort_by_key(|r| (r.n, r.peer != PeerKind::Confgate));

    if peers.contains(&PeerKind::Confgate) {
        notes.push(match raw_seen {
            Some(true) => "confgate sent IPv4 media through its raw socket, a round's datagrams in one `sendmmsg` \
                           (`relay.raw_send`, allowed here because the bench runs as root; /metrics \
                           `confgate_relay_raw_send 1`)"
                .into(),
            Some(false) => "confgate sent from each media socket (`relay.raw_send` off or no `CAP_NET_RAW`; \
                            /metrics `confgate_relay_raw_send 0`)"
                .into(),
            None => "confgate's /metrics did not say how it sent".into(),
        });
        if metrics_seen.is_empty() {
            notes.push("confgate's GET /metrics counted no relay drops in any level".into());
        } else {
            notes.push(format!("confgate /metrics relay drops: {}", metrics_seen.join("; ")));
        }
    }

    results.sort_by_key(|l| {
        (
            MODES.iter().position(|m| *m == l.mode),
            l.n,
            l.peer != PeerKind::Confgate,
            l.round,
        )
    });
    let elapsed = started.elapsed().as_secs_f64();
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Measured {date} on {ncpu} cores ({cpu_model}); rtpengine {}; confgate {} (release build of {}). \
         {warm} s warm-up + {measure} s measured per level and round; the whole run took {:.0} s.\n",
        rtpengine_version.trim_start_matches("Version: "),
        env!("CARGO_PKG_VERSION"),
        build,
        elapsed
    );
    report.push_str(
        "Command: `cargo build --release -p confgate && cargo bench -p confgate-suite --bench relay-vs-rtpengine`\n\n",
    );
    let _ = writeln!(
        report,
        "Each load was measured in {rounds} round{} (peers and media alternating within a round); the \
         tables below give, per peer, media and load, the round with the median µs/pkt, and in \
         parentheses the lowest and highest of all rounds.\n",
        if rounds == 1 { "" } else { "s" }
    );
    report.push_str(&summary(&medians(&results)));
    if medians(&results).iter().any(Level::disturbed) {
        report.push_str(
            "\n† other processes took the relay's or the generator's core during that window even after one \
             repetition (see \"other processes CPU %\" below): treat that figure with care.\n",
        );
    }
    if !interleaved.is_empty() {
        let _ = write!(
            report,
            "\n**SRTP↔SRTP cost over plain RTP, interleaved in one daemon** (target for confgate: ≤ +15 %). \
             One daemon per peer and load holds N RTP calls and N SRTP calls; the generator alternates \
             which set sends, in phases of {:.1} s unmeasured + {:.1} s measured, in the order RTP, SRTP, \
             SRTP, RTP, …; relay CPU from `/proc/<pid>/task/*/schedstat`. Each pair of adjacent phases gives \
             one ratio; \"pooled\" is all SRTP phases' CPU per packet over all RTP phases'.\n\n",
            PHASE_WARM_TICKS as f64 * TICK_NS as f64 / 1e9,
            PHASE_MEASURE_TICKS as f64 * TICK_NS as f64 / 1e9,
        );
        report.push_str(&interleaved_table(&interleaved));
    }
    report.push_str("\n**Every level** (one direction, caller → callee, 50 packets/s per call; 172-byte RTP; SRTP: 176 bytes in (HMAC_SHA1_32), 182 out (HMAC_SHA1_80); SRTP-80/80: 182 both ways)\n\n");
    report.push_str(&results_table(&results));
    if !notes.is_empty() {
        report.push_str("\nNotes from this run:\n\n");
        for n in &notes {
            let _ = writeln!(report, "- {n}");
        }
    }
    println!("\n{report}");
    if defaults {
        let path = write_readme(&report)?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!("non-default settings: benches/README.md left as it is");
    }
    Ok(())
}
