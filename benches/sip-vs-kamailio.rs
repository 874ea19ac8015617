//! confgate's SIP listener against Kamailio 5.6, side by side in one run,
//! driven by the same SIPp scenarios.
//!
//! 1. **REGISTER with digest** (401 challenge, answer, 200), many accounts
//!    with their own passwords, into confgate's registrar (accounts in its
//!    directory) and into Kamailio as a registrar (usrloc in memory,
//!    `pv_auth_check` with the password computed in the script, no database).
//! 2. **Calls** INVITE → 200 → ACK, a short hold without media, BYE → 200:
//!    into confgate's conferences, and through Kamailio (`t_relay`,
//!    record-routed) to a SIPp UAS.
//!
//! The server under test runs on core 1 (`taskset -c 1`), SIPp on core 0. At
//! each offered rate every peer gets a fresh process and one SIPp run of
//! `rate × STEP_SECS` registrations or calls; a peer's sweep stops at its
//! first rate with a failed call or a retransmission. Server CPU time is read
//! from `/proc/<pid>/stat` (Kamailio: the main process and its children)
//! before and after the SIPp run: µs per registration or per call.
//!
//! confgate runs twice: with its default configuration, and with
//! `sip.max_transactions` raised to 1 000 000 (the default 10 000 live
//! transactions, with non-INVITE server transactions lingering 64·T1 = 32 s
//! on UDP, is a rate limit of its own).
//!
//! It reports numbers and asserts nothing about speed. Method and figures:
//! `benches/README.md`. Run with
//! `cargo build --release -p confgate --bins && cargo bench -p confgate-suite --bench sip-vs-kamailio`.
//!
//! Knobs for quick looks: `SIP_BENCH_REG_RATES=500,1000`,
//! `SIP_BENCH_CALL_RATES=250,1000`, `SIP_BENCH_STEP_SECS` (5),
//! `SIP_BENCH_HOLD_MS` (1000), `SIP_BENCH_USERS` (100),
//! `SIP_BENCH_PEERS=confgate,confgate-tuned,kamailio`,
//! `SIP_BENCH_KAMAILIO_CHILDREN` (UDP worker processes, 4),
//! `SIP_BENCH_TESTS=register,call`.

// Three system calls std does not wrap (prctl, kill, sysconf); they are in
// `mod os`, each with the reason it is sound.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use confgate_suite::TempDir;

/// The few system calls std does not offer.
#[path = "common/os.rs"]
mod os;

/// A process we started, ended by its PID on drop (SIGTERM, then SIGKILL).
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Result<Self> {
        os::die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit; kills it (by PID) after `timeout`. True if it exited by itself.
    fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
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

// ---------------------------------------------------------------------------
// /proc readers.

/// (ppid, utime + stime in ticks) from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4 (index 1), utime/stime fields 14/15 (11/12).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// CPU seconds of `pid` and its direct children (Kamailio forks its workers
/// from the main process; confgate is one process with threads).
fn tree_cpu_secs(pid: u32) -> f64 {
    let mut ticks = stat_of(pid).map_or(0, |(_, t)| t);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, t)) = stat_of(p) {
                if ppid == pid {
                    ticks += t;
                }
            }
        }
    }
    ticks as f64 / (os::clk_tck() as f64)
}

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback TCP port that was free a moment ago.
fn free_tcp_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something answers an OPTIONS on `127.0.0.1:port` (any status).
fn wait_sip(port: u16, server: &mut Proc, what: &str, log: &Path) -> Result<()> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let local = sock.local_addr()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = server.child.try_wait() {
            bail!(
                "{what} exited with {st} during start-up: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        n += 1;
        let msg = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{n};rport\r\n\
             From: <sip:bench@{local}>;tag=ready{n}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: ready-{n}@bench\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port))?;
        let mut buf = [0u8; 4096];
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 ") {
                return Ok(());
            }
        }
    }
    bail!("{what} did not answer OPTIONS on port {port} within 30 s")
}

// ---------------------------------------------------------------------------
// The peers.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    /// confgate with its default configuration.
    Confgate,
    /// confgate with `sip.max_transactions = 1000000`.
    ConfgateTuned,
    Kamailio,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Confgate => "confgate",
            Self::ConfgateTuned => "confgate-tuned",
            Self::Kamailio => "kamailio",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    Register,
    Call,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Call => "call",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Register => "registration",
            Self::Call => "call",
        }
    }
}

/// Everything shared by the steps.
struct Setup {
    bin: PathBuf,
    work: TempDir,
    /// confgate's state directory, kept across its restarts (accounts, conferences).
    confgate_data: PathBuf,
    users_csv: PathBuf,
    confs_csv: PathBuf,
    kamailio_cfg: String,
    step_secs: u64,
    hold_ms: u64,
    users: usize,
    kamailio_children: u64,
}

const SERVER: &str = "bench.example";
/// Conferences the calls are spread over, round robin, 1000 places each.
const CONFERENCES: usize = 20;

fn bench_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join(name)
}

/// A running server under test.
struct Server {
    main: Proc,
    sip_port: u16,
    http_port: Option<u16>,
    /// The SIPp UAS behind Kamailio.
    uas: Option<Proc>,
    log: PathBuf,
}

impl Server {
    fn metrics(&self) -> Option<HashMap<String, f64>> {
        let port = self.http_port?;
        let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .timeout(Duration::from_secs(5))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        Some(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        )
    }
}

fn confgate_env(cmd: &mut Command, setup: &Setup, http_port: u16, sip_port: u16, tuned: bool) {
    cmd.env("CONFGATE_SERVER__DATA_DIR", &setup.confgate_data)
        .env("CONFGATE_SERVER__NAME", SERVER)
        .env("CONFGATE_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("CONFGATE_SIP__UDP_LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("CONFGATE_MEDIA__BIND", "127.0.0.1")
        .env("CONFGATE_MEDIA__ADVERTISE", "127.0.0.1")
        .env("CONFGATE_RELAY__NG_LISTEN", "")
        .env("CONFGATE_LOOPBACK__ENABLED", "false")
        // Listeners the bench does not use stay closed: on a shared machine
        // their standard ports may be taken.
        .env("CONFGATE_SIP__TCP_LISTEN", "")
        .env("CONFGATE_H323__SIGNALLING_LISTEN", "")
        .env("CONFGATE_H323__RAS_LISTEN", "")
        // SIPp sends everything from one address, like a proxy in front of
        // confgate: the per-source limit (200/s by default) would cut it.
        .env("CONFGATE_SIP__MAX_REQUESTS_PER_SOURCE", "0")
        .env("CONFGATE_SERVER__LOG", "warn");
    if tuned {
        cmd.env("CONFGATE_SIP__MAX_TRANSACTIONS", "1000000");
    }
}

fn start_confgate(setup: &Setup, tuned: bool, tag: &str) -> Result<Server> {
    let http_port = free_tcp_port()?;
    let sip_port = free_udp_port()?;
    let log = setup.work.path().join(format!("confgate-{tag}.log"));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1"]).arg(&setup.bin).arg("serve");
    confgate_env(&mut cmd, setup, http_port, sip_port, tuned);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let mut main = Proc::spawn(cmd, "confgate serve")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = main.child.try_wait() {
            bail!(
                "confgate exited with {st} during start-up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if ureq::get(&format!("http://127.0.0.1:{http_port}/healthz"))
            .timeout(Duration::from_millis(500))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("confgate did not answer /healthz within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_sip(sip_port, &mut main, "confgate", &log)?;
    Ok(Server {
        main,
        sip_port,
        http_port: Some(http_port),
        uas: None,
        log,
    })
}

fn start_kamailio(setup: &Setup, with_uas: bool, tag: &str) -> Result<Server> {
    let sip_port = free_udp_port()?;
    let uas_port = free_udp_port()?;
    let dir = setup.work.path().join(format!("kamailio-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(
        &cfg,
        setup
            .kamailio_cfg
            .replace("@CHILDREN@", &setup.kamailio_children.to_string())
            .replace("@SIP_PORT@", &sip_port.to_string())
            .replace("@UAS_PORT@", &uas_port.to_string()),
    )?;
    let uas = if with_uas {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0", "sipp", "-sf"])
            .arg(bench_file("sipp/call-uas.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-mp", &free_udp_port()?.to_string(), "-nostdin"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.join("uas-errors.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Some(Proc::spawn(cmd, "sipp (UAS)")?)
    } else {
        None
    };
    let log = dir.join("kamailio.log");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "kamailio", "-DD", "-E", "-f"])
        .arg(&cfg)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(&dir)
        .args(["-m", "1024", "-M", "16"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let mut main = Proc::spawn(cmd, "kamailio")?;
    wait_sip(sip_port, &mut main, "kamailio", &log)?;
    Ok(Server {
        main,
        sip_port,
        http_port: None,
        uas,
        log,
    })
}

fn start(setup: &Setup, peer: Peer, test: Test, tag: &str) -> Result<Server> {
    match peer {
        Peer::Confgate => start_confgate(setup, false, tag),
        Peer::ConfgateTuned => start_confgate(setup, true, tag),
        Peer::Kamailio => start_kamailio(setup, test == Test::Call, tag),
    }
}

/// Creates the accounts (u1.., password pw-N-x, as Kamailio's script
/// computes it) and the conferences in confgate's directory over the REST API.
fn provision_confgate(setup: &Setup) -> Result<()> {
    let server = start_confgate(setup, false, "provision")?;
    let http_port = server.http_port.ok_or_else(|| anyhow!("no HTTP port"))?;
    let sip_port = free_udp_port()?;
    let mut cmd = Command::new(&setup.bin);
    confgate_env(&mut cmd, setup, http_port, sip_port, false);
    let out = cmd.args(["admin", "token"]).output().context("confgate admin token")?;
    if !out.status.success() {
        bail!("confgate admin token: {}", String::from_utf8_lossy(&out.stderr));
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let post = |path: &str, body: serde_json::Value| -> Result<()> {
        let r = ureq::post(&format!("http://127.0.0.1:{http_port}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(30))
            .send_json(body.clone());
        match r {
            Ok(resp) if resp.status() == 201 => Ok(()),
            Ok(resp) => bail!("POST {path} {body}: {}", resp.status()),
            Err(e) => bail!("POST {path} {body}: {e}"),
        }
    };
    let t = Instant::now();
    for i in 1..=setup.users {
        post(
            "/api/v1/users",
            serde_json::json!({"user": format!("u{i}"), "type": "sip", "password": format!("pw-{i}-x")}),
        )?;
    }
    for c in 0..CONFERENCES {
        post(
            "/api/v1/conferences",
            serde_json::json!({"id": format!("{}", 70_001 + c), "max_participants": 1000}),
        )?;
    }
    eprintln!(
        "provisioned {} SIP accounts and {CONFERENCES} conferences in confgate over the REST API in {:.1} s",
        setup.users,
        t.elapsed().as_secs_f64()
    );
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------
// One SIPp run.

struct Step {
    peer: Peer,
    test: Test,
    rate: u64,
    offered: u64,
    ok: u64,
    failed: u64,
    retrans: u64,
    /// Out-of-call and dead-call messages SIPp saw (stray retransmissions, BYEs).
    stray: u64,
    /// Mean response time (first request to final response), ms.
    rtt_ms: f64,
    server_cpu: f64,
    /// Server CPU % of a core at rest, in the second before the run.
    idle_pct: f64,
    generator_cpu: f64,
    wall: f64,
    /// SIPp did not finish on its own in time.
    hung: bool,
    /// What failed, from SIPp's error log and confgate's metrics.
    notes: Vec<String>,
}

impl Step {
    fn clean(&self) -> bool {
        self.ok == self.offered && self.failed == 0 && self.retrans == 0 && !self.hung
    }

    fn us_per_unit(&self) -> Option<f64> {
        (self.ok > 0).then(|| self.server_cpu * 1e6 / self.ok as f64)
    }

    fn server_pct(&self) -> f64 {
        100.0 * self.server_cpu / self.wall.max(1e-9)
    }

    fn generator_pct(&self) -> f64 {
        100.0 * self.generator_cpu / self.wall.max(1e-9)
    }
}

/// The last line of SIPp's statistics file, by column name.
fn sipp_stats(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `HH:MM:SS:usec` → ms.
fn sipp_duration_ms(v: &str) -> f64 {
    let p: Vec<f64> = v.split(':').filter_map(|x| x.parse().ok()).collect();
    if p.len() == 4 {
        (p[0] * 3600.0 + p[1] * 60.0 + p[2]) * 1000.0 + p[3] / 1000.0
    } else {
        0.0
    }
}

/// Why calls failed, from SIPp's error log: counts of each kind.
fn failure_kinds(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut kinds: Vec<(String, u64)> = Vec::new();
    let mut add = |k: String| match kinds.iter_mut().find(|(n, _)| *n == k) {
        Some((_, c)) => *c += 1,
        None => kinds.push((k, 1)),
    };
    for line in text.lines() {
        if let Some(i) = line.find("received 'SIP/2.0 ") {
            let status: String = line[i + 18..].chars().take_while(|c| *c != '\r').collect();
            let what = line
                .split("while expecting ")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or("?");
            add(format!("got `{}` while expecting {what}", status.trim()));
        } else if line.contains("unexpected BYE") {
            add("the server sent BYE during the call".into());
        } else if line.contains("Max retransmission") || line.contains("max retransmission") {
            add("no answer after the retransmissions".into());
        } else if line.contains("timeout") || line.contains("Timeout") {
            add("timed out waiting for a message".into());
        } else if line.contains("Aborting call") {
            let short: String = line.split(": ").skip(1).collect::<Vec<_>>().join(": ");
            add(short.chars().take(100).collect());
        }
    }
    kinds.into_iter().map(|(k, c)| format!("{c} × {k}")).collect()
}

fn run_step(setup: &Setup, peer: Peer, test: Test, rate: u64) -> Result<Step> {
    let tag = format!("{}-{}-{rate}", test.name(), peer.name());
    let mut server = start(setup, peer, test, &tag)?;
    // Let start-up work (first timers, mixer threads) settle.
    std::thread::sleep(Duration::from_millis(500));
    // The server's CPU use at rest (timers, idle conferences), over 1 s.
    let idle0 = tree_cpu_secs(server.main.pid());
    std::thread::sleep(Duration::from_secs(1));
    let idle_pct = 100.0 * (tree_cpu_secs(server.main.pid()) - idle0);
    let metrics_before = server.metrics();
    let offered = rate * setup.step_secs;
    let stat = setup.work.path().join(format!("{tag}-stat.csv"));
    let errors = setup.work.path().join(format!("{tag}-errors.log"));
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", "sipp", "-sf"]);
    match test {
        Test::Register => {
            cmd.arg(bench_file("sipp/register-digest.xml"))
                .arg("-inf")
                .arg(&setup.users_csv);
        }
        Test::Call => {
            cmd.arg(bench_file("sipp/call-uac.xml"))
                .arg("-inf")
                .arg(&setup.confs_csv)
                .args(["-d", &setup.hold_ms.to_string()]);
        }
    }
    cmd.arg(format!("127.0.0.1:{}", server.sip_port))
        .args(["-i", "127.0.0.1", "-p", &free_udp_port()?.to_string()])
        .args(["-mp", &free_udp_port()?.to_string()])
        .args(["-r", &rate.to_string(), "-rp", "1000", "-m", &offered.to_string()])
        .args(["-recv_timeout", "10000", "-nostdin"])
        .args(["-trace_stat", "-fd", "1"])
        .arg("-stf")
        .arg(&stat)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .current_dir(setup.work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let uas_pid = server.uas.as_ref().map(Proc::pid);
    let server_pid = server.main.pid();
    let cpu0 = tree_cpu_secs(server_pid);
    let uas0 = uas_pid.map_or(0.0, tree_cpu_secs);
    let t0 = Instant::now();
    let mut sipp = Proc::spawn(cmd, "sipp")?;
    let sipp_pid = sipp.pid();
    // SIPp's own CPU time, read just before it exits (after, it is gone).
    let mut gen_cpu = 0.0;
    let limit = Duration::from_secs(setup.step_secs + 60) + Duration::from_millis(setup.hold_ms);
    let hung = loop {
        if let Ok(Some(_)) = sipp.child.try_wait() {
            break false;
        }
        if let Some((_, t)) = stat_of(sipp_pid) {
            gen_cpu = t as f64 / (os::clk_tck() as f64);
        }
        if t0.elapsed() > limit {
            break !sipp.wait_timeout(Duration::ZERO);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = t0.elapsed().as_secs_f64();
    let server_cpu = tree_cpu_secs(server_pid) - cpu0;
    let uas_cpu = uas_pid.map_or(0.0, |p| tree_cpu_secs(p) - uas0);
    let metrics_after = server.metrics();
    if let Ok(Some(st)) = server.main.child.try_wait() {
        bail!(
            "{} exited with {st} during the run: {}",
            peer.name(),
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
    }
    drop(server);

    let s = sipp_stats(&stat);
    let num = |k: &str| s.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
    let mut notes = failure_kinds(&errors);
    if let (Some(a), Some(b)) = (metrics_before, metrics_after) {
        let mut keys: Vec<&String> = b.keys().collect();
        keys.sort();
        for k in keys {
            let d = b[k] - a.get(k).copied().unwrap_or(0.0);
            if d != 0.0 && (k.contains("rejected") || k.contains("dropped")) {
                notes.push(format!("confgate metric {k} +{d}"));
            }
        }
    }
    if hung {
        notes.push("SIPp had not finished after the time limit and was killed".into());
    }
    Ok(Step {
        peer,
        test,
        rate,
        offered,
        ok: num("SuccessfulCall(C)"),
        failed: num("FailedCall(C)"),
        retrans: num("Retransmissions(C)"),
        stray: num("OutOfCallMsgs(C)") + num("DeadCallMsgs(C)"),
        rtt_ms: s.get("ResponseTime1(C)").map_or(0.0, |v| sipp_duration_ms(v)),
        server_cpu,
        idle_pct,
        generator_cpu: gen_cpu + uas_cpu,
        wall,
        hung,
        notes,
    })
}

// ---------------------------------------------------------------------------
// Report.

fn print_step(s: &Step) {
    let us = s.us_per_unit().map_or("-".into(), |u| format!("{u:.1}"));
    eprintln!(
        "{:<8} {:<15} {:>5}/s  ok {:>6}/{:<6} failed {:>5} retrans {:>4} stray {:>3}  server CPU {:>5.1} % \
         (idle {:>4.1} %) {:>7} µs/{}  SIPp CPU {:>5.1} %  resp {:>6.1} ms  {:.1} s{}",
        s.test.name(),
        s.peer.name(),
        s.rate,
        s.ok,
        s.offered,
        s.failed,
        s.retrans,
        s.stray,
        s.server_pct(),
        s.idle_pct,
        us,
        s.test.unit(),
        s.generator_pct(),
        s.rtt_ms,
        s.wall,
        if s.clean() { "" } else { "  NOT CLEAN" }
    );
    for n in &s.notes {
        eprintln!("           {n}");
    }
}

fn report(steps: &[Step], setup: &Setup, peers: &[Peer], tests: &[Test], took: Duration) -> String {
    let mut r = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| {
                let t = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                t.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        r,
        "{cpu}; {}; {}; confgate {} (commit {head}, `{}`); {} SIP accounts, calls over {CONFERENCES} conferences, \
         {} s of load per step, hold {} ms; the run took {} s.\n",
        version("kamailio", "-v"),
        version("sipp", "-v"),
        version(&setup.bin.display().to_string(), "--version"),
        setup.bin.display(),
        setup.users,
        setup.step_secs,
        setup.hold_ms,
        took.as_secs()
    );
    for &test in tests {
        let _ = writeln!(
            r,
            "**{}** (µs = server CPU time, user + system, per successful {}):\n",
            match test {
                Test::Register => "REGISTER with digest",
                Test::Call => "Calls INVITE-200-ACK-BYE",
            },
            test.unit()
        );
        let _ = writeln!(
            r,
            "| offered /s | peer | ok / offered | failed | retrans | server CPU % | server idle CPU % | µs per {} | SIPp CPU % | mean response ms |",
            test.unit()
        );
        let _ = writeln!(r, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for s in steps.iter().filter(|s| s.test == test) {
            let _ = writeln!(
                r,
                "| {} | {} | {} / {} | {} | {} | {:.0} | {:.1} | {} | {:.0} | {:.1} |",
                s.rate,
                s.peer.name(),
                s.ok,
                s.offered,
                s.failed,
                s.retrans,
                s.server_pct(),
                s.idle_pct,
                s.us_per_unit().map_or("-".into(), |u| format!("{u:.1}")),
                s.generator_pct(),
                s.rtt_ms
            );
        }
        let _ = writeln!(r);
        for &peer in peers {
            let best = steps
                .iter()
                .filter(|s| s.test == test && s.peer == peer && s.clean())
                .max_by_key(|s| s.rate);
            let first_bad = steps.iter().find(|s| s.test == test && s.peer == peer && !s.clean());
            let _ = write!(
                r,
                "- {}: highest rate with zero failures and zero retransmissions: {}",
                peer.name(),
                best.map_or("none".into(), |b| format!(
                    "**{}/s** ({} µs per {})",
                    b.rate,
                    b.us_per_unit().map_or("-".into(), |u| format!("{u:.1}")),
                    test.unit()
                ))
            );
            match first_bad {
                Some(b) => {
                    let _ = writeln!(
                        r,
                        "; at {}/s: {} ok of {}, {} failed, {} retransmissions{}",
                        b.rate,
                        b.ok,
                        b.offered,
                        b.failed,
                        b.retrans,
                        if b.notes.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", b.notes.join("; "))
                        }
                    );
                }
                None => {
                    let _ = writeln!(r, " (no failing rate in the sweep)");
                }
            }
        }
        // Ratio at every rate where both confgate (either configuration) and Kamailio were clean.
        for cg in [Peer::Confgate, Peer::ConfgateTuned] {
            for s in steps.iter().filter(|s| s.test == test && s.peer == cg && s.clean()) {
                let Some(k) = steps
                    .iter()
                    .find(|k| k.test == test && k.peer == Peer::Kamailio && k.rate == s.rate && k.clean())
                else {
                    continue;
                };
                if let (Some(a), Some(b)) = (s.us_per_unit(), k.us_per_unit()) {
                    let _ = writeln!(
                        r,
                        "- at {}/s: {} {a:.1} µs vs kamailio {b:.1} µs per {}: ratio **{:.2}**",
                        s.rate,
                        cg.name(),
                        test.unit(),
                        a / b
                    );
                }
            }
        }
        let _ = writeln!(r);
    }
    r
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    Some(
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn env_rates(name: &str, default: &[u64]) -> Result<Vec<u64>> {
    match env_list(name) {
        Some(v) => v
            .iter()
            .map(|x| x.parse().map_err(|_| anyhow!("{name}: `{x}` is not a rate")))
            .collect(),
        None => Ok(default.to_vec()),
    }
}

fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| anyhow!("{name}: `{v}` is not a number")),
        Err(_) => Ok(default),
    }
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
            "{} does not exist: build the daemon first with `cargo build --release -p confgate --bins` \
             (same CARGO_TARGET_DIR as this bench)",
            bin.display()
        );
    }
    Ok(bin)
}

fn main() -> Result<()> {
    let started = Instant::now();
    let bin = confgate_bin()?;
    for tool in ["sipp", "kamailio", "taskset"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            bail!("`{tool}` is not installed (Debian packages: sip-tester, kamailio, util-linux)");
        }
    }
    let reg_rates = env_rates("SIP_BENCH_REG_RATES", &[500, 1000, 2000, 4000, 8000])?;
    let call_rates = env_rates("SIP_BENCH_CALL_RATES", &[250, 500, 1000, 1500, 2000, 3000])?;
    let peers: Vec<Peer> = match env_list("SIP_BENCH_PEERS") {
        Some(v) => v
            .iter()
            .map(|p| match p.as_str() {
                "confgate" => Ok(Peer::Confgate),
                "confgate-tuned" => Ok(Peer::ConfgateTuned),
                "kamailio" => Ok(Peer::Kamailio),
                _ => Err(anyhow!("SIP_BENCH_PEERS: unknown peer `{p}`")),
            })
            .collect::<Result<_>>()?,
        None => vec![Peer::Confgate, Peer::ConfgateTuned, Peer::Kamailio],
    };
    let tests: Vec<Test> = match env_list("SIP_BENCH_TESTS") {
        Some(v) => v
            .iter()
            .map(|p| match p.as_str() {
                "register" => Ok(Test::Register),
                "call" => Ok(Test::Call),
                _ => Err(anyhow!("SIP_BENCH_TESTS: unknown test `{p}`")),
            })
            .collect::<Result<_>>()?,
        None => vec![Test::Register, Test::Call],
    };
    let work = TempDir::new("sip-bench");
    let users = env_num("SIP_BENCH_USERS", 100)? as usize;
    let users_csv = work.path().join("users.csv");
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 1..=users {
        let _ = writeln!(
            csv,
            "u{i};{SERVER};pw-{i}-x;[authentication username=u{i} password=pw-{i}-x]"
        );
    }
    std::fs::write(&users_csv, csv)?;
    let confs_csv = work.path().join("conferences.csv");
    let mut csv = String::from("SEQUENTIAL\n");
    for c in 0..CONFERENCES {
        let _ = writeln!(csv, "{}", 70_001 + c);
    }
    std::fs::write(&confs_csv, csv)?;
    let setup = Setup {
        bin,
        confgate_data: work.path().join("confgate-data"),
        users_csv,
        confs_csv,
        kamailio_cfg: std::fs::read_to_string(bench_file("kamailio-sip-bench.cfg"))?,
        step_secs: env_num("SIP_BENCH_STEP_SECS", 5)?,
        hold_ms: env_num("SIP_BENCH_HOLD_MS", 1000)?,
        users,
        kamailio_children: env_num("SIP_BENCH_KAMAILIO_CHILDREN", 4)?,
        work,
    };
    if peers.iter().any(|p| *p != Peer::Kamailio) {
        provision_confgate(&setup)?;
    }

    let mut steps: Vec<Step> = Vec::new();
    for &test in &tests {
        let rates = match test {
            Test::Register => &reg_rates,
            Test::Call => &call_rates,
        };
        let mut done: Vec<Peer> = Vec::new();
        for (i, &rate) in rates.iter().enumerate() {
            // Alternate the order from one rate to the next.
            let mut order = peers.clone();
            if i % 2 == 1 {
                order.reverse();
            }
            for peer in order {
                if done.contains(&peer) {
                    continue;
                }
                let step = run_step(&setup, peer, test, rate)?;
                print_step(&step);
                if !step.clean() {
                    done.push(peer);
                }
                steps.push(step);
            }
            if done.len() == peers.len() {
                break;
            }
        }
    }
    let text = report(&steps, &setup, &peers, &tests, started.elapsed());
    println!("{text}");
    Ok(())
}
