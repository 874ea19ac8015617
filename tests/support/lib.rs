//! Support for confgate's end-to-end tests: run the real `confgate` binary
//! on loopback in a fresh state directory, drive it over HTTP, the CLI and
//! `confgate bot`, and analyse recorded audio.
//!
//! Every process started here is ended by its PID when its guard drops, also
//! when a test fails. Traffic goes only to 127.0.0.1.
//!
//! The binary is the workspace's `confgate` next to the test executable:
//! build it first (`cargo build --workspace --bins`, as the test command in
//! the README does).

pub mod h323_endpoint;
pub mod sipp;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The `confgate` binary of this build.
pub fn confgate_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test>-<hash> → target/<profile>/confgate
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("confgate"))
        .unwrap_or_default();
    assert!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

/// A fresh directory, removed on drop (kept if `CONFGATE_KEEP_TEST_DIRS` is set).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/confgate-<name>-<pid>-<n>`.
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("confgate-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        Self(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("CONFGATE_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The repository root (this package's directory), read when the test runs:
/// `cargo test` sets `CARGO_MANIFEST_DIR` for the test process. The
/// compile-time value is only the fallback, so that a build directory shared
/// between clones never points a test at another clone's files.
pub fn repo_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A loopback port that was free for both UDP and TCP a moment ago (SIP
/// listens on both).
pub fn free_sip_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    free_udp_port()
}

/// A child process killed by PID when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.0.try_wait()? {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                bail!("process {} still running after {timeout:?}", self.0.id());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits and collects stdout and stderr (both must have been piped).
    pub fn output_timeout(mut self, timeout: Duration) -> Result<(ExitStatus, String, String)> {
        let mut out = self.0.stdout.take();
        let mut err = self.0.stderr.take();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let st = self.wait_timeout(timeout)?;
        Ok((st, t_out.join().unwrap_or_default(), t_err.join().unwrap_or_default()))
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, sig: &str) -> Result<()> {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()?;
        if !st.success() {
            bail!("kill -{sig} {} failed", self.0.id());
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running daemon with its own state directory and HTTP port.
#[derive(Debug)]
pub struct Daemon {
    /// The state and scratch directory.
    pub dir: TempDir,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    /// SIP port (UDP and TCP) on 127.0.0.1 (unless a test moved the listener).
    pub sip_port: u16,
    /// H.323 call-signalling port (TCP) on 127.0.0.1 (unless a test moved the listener).
    pub h323_port: u16,
    /// H.323 RAS (gatekeeper) port (UDP) on 127.0.0.1 (unless a test moved the listener).
    pub ras_port: u16,
    /// Extra environment given to the daemon and to CLI commands.
    pub env: Vec<(String, String)>,
    /// The daemon process.
    pub child: Option<ChildGuard>,
}

/// The server name the tests use.
pub const SERVER: &str = "test.example";

impl Daemon {
    /// Starts a daemon and waits until `/healthz` answers.
    pub fn start(name: &str) -> Result<Self> {
        Self::start_with(name, &[])
    }

    /// Starts a daemon with a configuration file (written into its
    /// directory as `confgate.toml`) and extra environment variables. The
    /// environment still sets the test's ports and state directory.
    pub fn start_with_config(name: &str, extra: &[(&str, &str)], config: &str) -> Result<Self> {
        Self::start_on_free_ports(name, extra, |d| {
            let path = d.dir.path().join("confgate.toml");
            std::fs::write(&path, config)?;
            let path = path.display().to_string();
            d.spawn(&["--config", &path])
        })
    }

    /// Starts a daemon with extra environment variables.
    pub fn start_with(name: &str, extra: &[(&str, &str)]) -> Result<Self> {
        Self::start_on_free_ports(name, extra, |d| d.spawn(&[]))
    }

    /// Prepares a daemon and starts it with `spawn`. The ports were free
    /// when chosen, but another process (a peer's outgoing connection, a
    /// test running beside this one) can take one before the daemon binds
    /// it: start-up then fails naming the port, and the daemon is started
    /// again on newly chosen ports, a few times at most.
    fn start_on_free_ports(
        name: &str,
        extra: &[(&str, &str)],
        spawn: impl Fn(&mut Self) -> Result<()>,
    ) -> Result<Self> {
        const ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        loop {
            let mut d = Self::prepare(name, extra);
            let Err(e) = spawn(&mut d) else {
                return Ok(d);
            };
            let message = format!("{e:#}");
            if attempt == ATTEMPTS || !message.contains("Address already in use") {
                return Err(e);
            }
            eprintln!(
                "confgate start-up, attempt {attempt}, choosing other ports: {}",
                message.trim_end()
            );
            attempt += 1;
        }
    }

    fn prepare(name: &str, extra: &[(&str, &str)]) -> Self {
        let dir = TempDir::new(name);
        let port = free_port();
        let sip_port = free_sip_port();
        let h323_port = free_port();
        let ras_port = free_udp_port();
        let mut env = vec![
            (
                "CONFGATE_SERVER__DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            ("CONFGATE_SERVER__NAME".to_string(), SERVER.to_string()),
            ("CONFGATE_HTTP__LISTEN".to_string(), format!("127.0.0.1:{port}")),
            ("CONFGATE_MEDIA__ADVERTISE".to_string(), "127.0.0.1".to_string()),
            ("CONFGATE_MEDIA__BIND".to_string(), "127.0.0.1".to_string()),
            // Tests run in parallel: no fixed ng port unless a test asks for one.
            ("CONFGATE_RELAY__NG_LISTEN".to_string(), String::new()),
            ("CONFGATE_SIP__UDP_LISTEN".to_string(), format!("127.0.0.1:{sip_port}")),
            ("CONFGATE_SIP__TCP_LISTEN".to_string(), format!("127.0.0.1:{sip_port}")),
            (
                "CONFGATE_H323__SIGNALLING_LISTEN".to_string(),
                format!("127.0.0.1:{h323_port}"),
            ),
            ("CONFGATE_H323__RAS_LISTEN".to_string(), format!("127.0.0.1:{ras_port}")),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self {
            dir,
            port,
            sip_port,
            h323_port,
            ras_port,
            env,
            child: None,
        }
    }

    /// Starts (again) the daemon process with extra arguments after `serve`.
    pub fn spawn(&mut self, args: &[&str]) -> Result<()> {
        let out = std::fs::File::create(self.dir.path().join("serve.out"))?;
        let err = std::fs::File::create(self.dir.path().join("serve.err"))?;
        let child = self
            .command()
            .arg("serve")
            .args(args)
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .context("spawning confgate serve")?;
        self.child = Some(ChildGuard(child));
        self.wait_healthy(Duration::from_secs(20))
    }

    /// A `confgate` command with this daemon's environment, run in its directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(confgate_bin());
        c.current_dir(self.dir.path());
        // The daemon reads every CONFGATE_* variable as configuration; this one is the suite's own.
        c.env_remove("CONFGATE_KEEP_TEST_DIRS");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.0.try_wait()? {
                    bail!("confgate serve exited with {st} during start-up: {}", self.stderr());
                }
            }
            if let Ok(r) = ureq::get(&self.url("/healthz"))
                .timeout(Duration::from_millis(500))
                .call()
            {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("confgate did not answer /healthz within {timeout:?}: {}", self.stderr())
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the daemon printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.out")).unwrap_or_default()
    }

    /// What the daemon logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.err")).unwrap_or_default()
    }

    /// Whether the daemon's log says `needle` within 3 s (it logs some
    /// events just after answering the request that caused them).
    pub fn log_shows(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        self.cli_stdin(args, "")
    }

    /// Runs a CLI command with `input` on standard input.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Result<Output> {
        let mut c = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut si) = c.stdin.take() {
            std::io::Write::write_all(&mut si, input.as_bytes())?;
        }
        let guard = ChildGuard(c);
        let (status, stdout, stderr) = guard.output_timeout(Duration::from_secs(60))?;
        Ok(Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        })
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let o = self.cli(args)?;
        if !o.status.success() {
            bail!(
                "confgate {args:?} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The admin token.
    pub fn token(&self) -> Result<String> {
        Ok(self.cli_ok(&["admin", "token"])?.trim().to_string())
    }

    /// An authenticated API call; returns status and JSON body (`null` for none).
    pub fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<(u16, serde_json::Value)> {
        let token = self.token()?;
        self.api_with_token(method, path, body, Some(&token))
    }

    /// An API call with the given token (or none).
    pub fn api_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        token: Option<&str>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(30));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("{method} {path}: {e}")),
        };
        let status = resp.status();
        let text = resp.into_string()?;
        let json = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, json))
    }

    /// Starts `confgate bot` with these arguments (stdout/stderr piped).
    pub fn bot(&self, args: &[&str]) -> Result<ChildGuard> {
        let c = self
            .command()
            .arg("bot")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(ChildGuard(c))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let c = self.child.as_mut().ok_or_else(|| anyhow!("daemon not running"))?;
        c.signal("TERM")?;
        c.wait_timeout(timeout)
    }

    /// Kills the daemon with SIGKILL and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        let c = self.child.as_mut().ok_or_else(|| anyhow!("daemon not running"))?;
        c.signal("KILL")?;
        c.wait_timeout(Duration::from_secs(10))?;
        Ok(())
    }
}

/// Reads a 16-bit mono WAV file.
pub fn read_wav(path: &Path) -> Result<(u32, Vec<i16>)> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let spec = r.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 {
        bail!("{}: expected 16-bit mono, got {spec:?}", path.display());
    }
    let samples = r.samples::<i16>().collect::<Result<Vec<_>, _>>()?;
    Ok((spec.sample_rate, samples))
}

/// Power of frequency `hz` in `samples` (Goertzel), normalised per sample.
pub fn tone_power(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p / (samples.len() as f64).powi(2)
}

/// The strongest frequency between 50 Hz and 4 kHz, in 5 Hz steps.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut best = (0.0, f64::MIN);
    let mut f = 50.0;
    while f <= 4000.0 {
        let p = tone_power(samples, rate, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    best.0
}

/// Root mean square of the samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The loudest 2 s of `samples` (searched in steps of a quarter second):
/// where a recording that also holds silence before and after a call has
/// the call. `None` when the recording is shorter than 2 s.
pub fn loudest_two_seconds(samples: &[i16], rate: u32) -> Option<&[i16]> {
    let window = rate as usize * 2;
    let best = (0..samples.len().checked_sub(window)?)
        .step_by((rate as usize / 4).max(1))
        .max_by(|a, b| rms(&samples[*a..*a + window]).total_cmp(&rms(&samples[*b..*b + window])))?;
    Some(&samples[best..best + window])
}

/// Waits for a bot (`confgate bot`) to end and asserts that it heard a tone
/// at `hz`, within 10 Hz and louder than rms 500, in the loudest 2 s of its
/// recording `rec` (the call lasts only part of its stay).
pub fn assert_bot_heard(bot: ChildGuard, rec: &Path, hz: f64) {
    let (st, _, err) = bot
        .output_timeout(Duration::from_secs(30))
        .expect("waiting for the bot");
    assert!(st.success(), "bot: {st} {err}");
    let (rate, heard) = read_wav(rec).expect("reading the bot's recording");
    let part = loudest_two_seconds(&heard, rate).expect("bot recording shorter than 2 s");
    let f = dominant_frequency(part, rate);
    assert!(rms(part) > 500.0, "the bot hears its peer: rms {}", rms(part));
    assert!(
        (f - hz).abs() <= 10.0,
        "bot: dominant frequency {f} Hz, expected {hz} Hz"
    );
}

/// Reads a 16-bit WAV file with any number of channels and mixes it down to
/// mono (the mean of the channels of each frame). baresip's `sndfile` writes
/// opus audio as 48 kHz stereo.
pub fn read_wav_mixed(path: &Path) -> Result<(u32, Vec<i16>)> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let spec = r.spec();
    if spec.bits_per_sample != 16 || spec.channels == 0 {
        bail!("{}: expected 16-bit samples, got {spec:?}", path.display());
    }
    let samples = r.samples::<i16>().collect::<Result<Vec<_>, _>>()?;
    let ch = usize::from(spec.channels);
    let mono = samples
        .chunks_exact(ch)
        .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect();
    Ok((spec.sample_rate, mono))
}

/// The value of one series in a Prometheus text exposition, e.g.
/// `metric_value(text, "confgate_dropped_total{reason=\"relay_srtp_auth\"}")`.
/// `None` when the series is not there.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Fails unless this process runs as root and `ip netns` (iproute2) works:
/// the namespace tests need both and must not skip silently.
pub fn require_root_and_netns() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| anyhow!("no Uid line in /proc/self/status"))?;
    if euid != "0" {
        bail!("this test needs root (network namespaces); effective uid is {euid}");
    }
    let out = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
        .context("running `ip netns list`: is iproute2 installed?")?;
    if !out.status.success() {
        bail!(
            "`ip netns list` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `ip <args>` to completion; fails with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// PIDs of the processes running in network namespace `ns`.
fn netns_pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Two network namespaces joined by a veth pair, as in `TESTING.md`: a
/// "server" side (`10.99.<subnet>.1`) and a "client" side
/// (`10.99.<subnet>.2`), each with `lo` up. Traffic between them never
/// leaves the machine.
///
/// On drop, every process still running in either namespace (all started by
/// the test that owns them) gets SIGTERM, then SIGKILL after 2 s, by PID;
/// then both namespaces are deleted (which removes the veth pair).
#[derive(Debug)]
pub struct NetnsPair {
    /// Server namespace name.
    pub server: String,
    /// Client namespace name.
    pub client: String,
    /// The server side's address.
    pub server_ip: String,
    /// The client side's address.
    pub client_ip: String,
    created: Vec<String>,
}

impl NetnsPair {
    /// Creates the pair `cg<tag><pid>-<n>-srv` / `…-cli` on `10.99.<subnet>.0/24`.
    /// `tag` is at most 3 characters (interface names are at most 15).
    pub fn create(tag: &str, subnet: u8) -> Result<Self> {
        require_root_and_netns()?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{tag}{}{n}", std::process::id());
        let mut pair = Self {
            server: format!("cg{id}-srv"),
            client: format!("cg{id}-cli"),
            server_ip: format!("10.99.{subnet}.1"),
            client_ip: format!("10.99.{subnet}.2"),
            created: Vec::new(),
        };
        let (veth_s, veth_c) = (format!("v{id}s"), format!("v{id}c"));
        if veth_s.len() > 15 {
            bail!("interface name {veth_s} is too long: use a shorter tag");
        }
        for ns in [pair.server.clone(), pair.client.clone()] {
            ip(&["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        ip(&["link", "add", &veth_s, "type", "veth", "peer", "name", &veth_c])?;
        // If a step below fails, the link is still in the root namespace:
        // deleting one end removes both.
        let moved = ip(&["link", "set", &veth_s, "netns", &pair.server])
            .and_then(|()| ip(&["link", "set", &veth_c, "netns", &pair.client]));
        if let Err(e) = moved {
            let _ = ip(&["link", "del", &veth_s]);
            let _ = ip(&["link", "del", &veth_c]);
            return Err(e);
        }
        for (ns, dev, addr) in [
            (&pair.server, &veth_s, &pair.server_ip),
            (&pair.client, &veth_c, &pair.client_ip),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// `ip netns exec <ns> <program>`: the program replaces `ip`, so the
    /// child's PID is the program's.
    pub fn exec(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// A command run in the server namespace.
    pub fn server_cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        Self::exec(&self.server, program)
    }

    /// A command run in the client namespace.
    pub fn client_cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        Self::exec(&self.client, program)
    }

    fn signal_all(&self, sig: &str) -> usize {
        let mut n = 0;
        for ns in &self.created {
            for pid in netns_pids(ns) {
                n += 1;
                let _ = Command::new("kill")
                    .arg(format!("-{sig}"))
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        n
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        if self.signal_all("TERM") > 0 {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && self.created.iter().any(|ns| !netns_pids(ns).is_empty()) {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.signal_all("KILL");
        }
        for ns in self.created.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// A synchronous loopback-protocol client, for tests that need more than
/// `confgate bot` does (several PINs, moderator requests, events).
pub struct LoopbackClient {
    stream: std::os::unix::net::UnixStream,
    decoder: loopback::FrameDecoder,
    audio: loopback::AudioFrame,
}

impl LoopbackClient {
    /// Connects, says hello and reads the welcome.
    pub fn connect(socket: &Path) -> Result<Self> {
        let stream =
            std::os::unix::net::UnixStream::connect(socket).with_context(|| format!("{}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut c = Self {
            stream,
            decoder: loopback::FrameDecoder::new(),
            audio: [0; loopback::AUDIO_FRAME_SAMPLES],
        };
        c.send(&loopback::ClientMessage::Hello {
            version: loopback::PROTOCOL_VERSION,
            client: "test".into(),
        })?;
        match c.next_message()? {
            loopback::ServerMessage::Welcome { .. } => Ok(c),
            other => bail!("expected welcome, got {other:?}"),
        }
    }

    /// Sends a control message.
    pub fn send(&mut self, m: &loopback::ClientMessage) -> Result<()> {
        let mut out = Vec::new();
        loopback::encode_message(m, &mut out);
        std::io::Write::write_all(&mut self.stream, &out)?;
        Ok(())
    }

    /// The next control message (audio is skipped).
    pub fn next_message(&mut self) -> Result<loopback::ServerMessage> {
        let mut buf = [0u8; 8192];
        loop {
            while let Some(f) = self.decoder.next_frame(&mut self.audio)? {
                if let loopback::Frame::Control(text) = f {
                    if let Some(m) = loopback::parse_server_message(&text)? {
                        return Ok(m);
                    }
                }
            }
            let n = std::io::Read::read(&mut self.stream, &mut buf)?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            self.decoder.extend(&buf[..n]);
        }
    }

    /// Reads messages until one matches `pred` (at most 200), returning it.
    pub fn wait_for(
        &mut self,
        mut pred: impl FnMut(&loopback::ServerMessage) -> bool,
    ) -> Result<loopback::ServerMessage> {
        for _ in 0..200 {
            let m = self.next_message()?;
            if pred(&m) {
                return Ok(m);
            }
        }
        bail!("the expected message never came")
    }
}
