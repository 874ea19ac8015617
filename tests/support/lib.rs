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

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
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

    /// Starts a daemon with extra environment variables.
    pub fn start_with(name: &str, extra: &[(&str, &str)]) -> Result<Self> {
        let dir = TempDir::new(name);
        let port = free_port();
        let mut env = vec![
            (
                "CONFGATE_SERVER__DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            ("CONFGATE_SERVER__NAME".to_string(), SERVER.to_string()),
            ("CONFGATE_HTTP__LISTEN".to_string(), format!("127.0.0.1:{port}")),
            ("CONFGATE_MEDIA__ADVERTISE".to_string(), "127.0.0.1".to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut d = Self {
            dir,
            port,
            env,
            child: None,
        };
        d.spawn(&[])?;
        Ok(d)
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
