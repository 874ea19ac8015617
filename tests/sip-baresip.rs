//! baresip (a real SIP user agent nobody here wrote) against confgate's SIP
//! listener on 127.0.0.1: two registered phones call each other through
//! confgate, and a phone dials into a conference with a `confgate bot`.
//! Each side plays its own tone (baresip's `ausine`, opus at 48 kHz) and
//! records what it decoded; the recordings are checked by frequency.
//!
//! Needs `baresip` (Debian `baresip-core`); it fails, not skips, without it.
//! Every process is ended by its PID; logs are printed when a case fails
//! (kept with `CONFGATE_KEEP_TEST_DIRS=1`).
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use confgate_suite::{dominant_frequency, read_wav, read_wav_mixed, rms, ChildGuard, Daemon};

/// The cases run one after the other: two cores, real-time audio.
static SERIAL: Mutex<()> = Mutex::new(());

struct Ua {
    name: &'static str,
    password: &'static str,
    tone: f64,
    dir: PathBuf,
    rec: PathBuf,
}

impl Ua {
    fn new(root: &Path, name: &'static str, password: &'static str, tone: f64, rtp_base: u16) -> Result<Ua> {
        let dir = root.join(name);
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec)?;
        let sip_port = confgate_suite::free_port();
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\topus.so\n\
             module\t\t\tausine.so\n\
             module\t\t\taufile.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             audio_source\t\tausine,{tone}\n\
             snd_path\t\t{rec}\n\
             rtp_ports\t\t{rtp_base}-{rtp_end}\n",
            rec = rec.display(),
            rtp_end = rtp_base + 99,
        );
        std::fs::write(dir.join("config"), config)?;
        Ok(Ua {
            name,
            password,
            tone,
            dir,
            rec,
        })
    }

    /// The account line: registered with confgate (digest) or not, over
    /// UDP or TCP.
    fn account(&self, sip_port: u16, register: bool) -> Result<()> {
        self.account_over(sip_port, register, "udp")
    }

    fn account_over(&self, sip_port: u16, register: bool, transport: &str) -> Result<()> {
        let line = format!(
            "<sip:{name}@127.0.0.1:{sip_port};transport={transport}>;auth_pass={pw};answermode=auto;regint={reg};\
             audio_codecs=opus/48000/2\n",
            name = self.name,
            pw = self.password,
            reg = if register { 60 } else { 0 },
        );
        std::fs::write(self.dir.join("accounts"), line)?;
        Ok(())
    }

    fn spawn(&self, logs: &Path, extra: &[String]) -> Result<ChildGuard> {
        let mut cmd = Command::new("baresip");
        cmd.args(["-4", "-s", "-f"]).arg(&self.dir).args(extra);
        let out = File::create(logs.join(format!("{}.out", self.name)))?;
        let err = File::create(logs.join(format!("{}.err", self.name)))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawning baresip (Debian package baresip-core)")?;
        Ok(ChildGuard(child))
    }

    /// Dominant frequency and level of what this UA decoded, from 1 s to 4 s.
    fn heard(&self) -> Result<(f64, f64)> {
        let files: Vec<PathBuf> = std::fs::read_dir(&self.rec)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        let [path] = files.as_slice() else {
            bail!("expected one *-dec.wav in {}, found {files:?}", self.rec.display());
        };
        let (rate, samples) = read_wav_mixed(path)?;
        let r = rate as usize;
        ensure!(
            samples.len() >= 4 * r,
            "{}: only {} samples",
            path.display(),
            samples.len()
        );
        let window = &samples[r..4 * r];
        Ok((dominant_frequency(window, rate), rms(window)))
    }
}

fn log_of(logs: &Path, name: &str) -> String {
    let mut s = String::new();
    for ext in ["out", "err"] {
        if let Ok(b) = std::fs::read(logs.join(format!("{name}.{ext}"))) {
            s.push_str(&String::from_utf8_lossy(&b));
        }
    }
    s
}

fn wait_for_log(child: &mut ChildGuard, logs: &Path, name: &str, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if log_of(logs, name).contains(needle) {
            return Ok(());
        }
        if let Some(st) = child.0.try_wait()? {
            bail!("{name} exited with {st} before logging {needle:?}");
        }
        if Instant::now() >= deadline {
            bail!("{name} did not log {needle:?} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report_failure(d: &Daemon, logs: &Path, names: &[&str], e: anyhow::Error) -> ! {
    for n in names {
        eprintln!("==== {n}\n{}", log_of(logs, n));
    }
    eprintln!("==== confgate\n{}", d.stderr());
    panic!("{e:#}");
}

#[test]
fn two_registered_phones_call_each_other() {
    phones_call_each_other("udp");
}

#[test]
fn two_phones_registered_over_tcp_call_each_other() {
    phones_call_each_other("tcp");
}

#[test]
fn two_phones_registered_over_tls_call_each_other() {
    phones_call_each_other("tls");
}

/// A self-signed certificate for 127.0.0.1, written as PEM files.
fn test_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (c, k) = (dir.join("sip-cert.pem"), dir.join("sip-key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

fn phones_call_each_other(transport: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("sip-baresip-p2p-{transport}");
    let d = if transport == "tls" {
        let scratch = confgate_suite::TempDir::new(&format!("{name}-cert"));
        let (cert, key) = test_certificate(scratch.path());
        let tls_port = confgate_suite::free_port().to_string();
        let d = Daemon::start_with(
            &name,
            &[
                ("CONFGATE_SIP__TLS_LISTEN", &format!("127.0.0.1:{tls_port}")),
                ("CONFGATE_SIP__TLS_CERTIFICATE", cert.to_str().unwrap()),
                ("CONFGATE_SIP__TLS_PRIVATE_KEY", key.to_str().unwrap()),
            ],
        )
        .unwrap();
        // The files are read at start-up only.
        drop(scratch);
        (d, tls_port.parse::<u16>().unwrap())
    } else {
        let d = Daemon::start(&name).unwrap();
        let p = d.sip_port;
        (d, p)
    };
    let (d, port) = d;
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    add_user(&d, "alice", "alice-pass-1");
    add_user(&d, "bob", "bob-pass-22");
    let r = (|| -> Result<String> {
        let alice = Ua::new(d.dir.path(), "alice", "alice-pass-1", 440.0, 41000)?;
        let bob = Ua::new(d.dir.path(), "bob", "bob-pass-22", 660.0, 41200)?;
        alice.account_over(port, true, transport)?;
        bob.account_over(port, true, transport)?;
        let mut bob_p = bob.spawn(&logs, &["-t".into(), "40".into()])?;
        wait_for_log(&mut bob_p, &logs, "bob", "[1 binding]", Duration::from_secs(10))?;
        let mut alice_p = alice.spawn(
            &logs,
            &[
                "-e".into(),
                format!("/dial sip:bob@127.0.0.1:{port};transport={transport}"),
                "-t".into(),
                "7".into(),
            ],
        )?;
        let st = alice_p.wait_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "alice exited with {st}");
        // alice's BYE reaches bob through confgate.
        wait_for_log(&mut bob_p, &logs, "bob", "terminated", Duration::from_secs(10))?;
        bob_p.signal("TERM")?;
        bob_p.wait_timeout(Duration::from_secs(10))?;
        let (fa, la) = alice.heard()?;
        let (fb, lb) = bob.heard()?;
        ensure!(
            (fa - bob.tone).abs() <= 10.0 && la > 1000.0,
            "alice heard {fa} Hz at rms {la:.0}"
        );
        ensure!(
            (fb - alice.tone).abs() <= 10.0 && lb > 1000.0,
            "bob heard {fb} Hz at rms {lb:.0}"
        );
        Ok(format!(
            "alice heard {fa} Hz (rms {la:.0}), bob heard {fb} Hz (rms {lb:.0})"
        ))
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["alice", "bob"], e),
    }
}

#[test]
fn a_phone_and_a_bot_hear_each_other_in_a_conference() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("sip-baresip-conf").unwrap();
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    d.cli_ok(&["conference", "add", "7001"]).unwrap();
    let r = (|| -> Result<String> {
        let carol = Ua::new(d.dir.path(), "carol", "unused-pass", 440.0, 41400)?;
        // An unregistered phone, calling in as a guest.
        carol.account(d.sip_port, false)?;
        let bot_rec = d.dir.path().join("bot.wav");
        let bot = d.bot(&[
            "--conference",
            "7001",
            "--name",
            "Bot",
            "--play",
            "tone:1000",
            "--record",
            bot_rec.to_str().unwrap(),
            "--duration",
            "9",
        ])?;
        std::thread::sleep(Duration::from_millis(500));
        let mut carol_p = carol.spawn(
            &logs,
            &[
                "-e".into(),
                format!("/dial sip:7001@127.0.0.1:{}", d.sip_port),
                "-t".into(),
                "7".into(),
            ],
        )?;
        let st = carol_p.wait_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "carol exited with {st}");
        let (st, _, err) = bot.output_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "bot: {st} {err}");
        let (fc, lc) = carol.heard()?;
        ensure!(
            (fc - 1000.0).abs() <= 10.0 && lc > 1000.0,
            "carol heard {fc} Hz at rms {lc:.0}"
        );
        let (rate, heard) = read_wav(&bot_rec)?;
        let window = rate as usize * 2;
        let best = (0..heard.len().saturating_sub(window))
            .step_by(rate as usize / 4)
            .max_by(|a, b| rms(&heard[*a..*a + window]).total_cmp(&rms(&heard[*b..*b + window])))
            .context("bot recording too short")?;
        let part = &heard[best..best + window];
        let fb = dominant_frequency(part, rate);
        ensure!(
            (fb - carol.tone).abs() <= 10.0 && rms(part) > 500.0,
            "the bot heard {fb} Hz at rms {:.0}",
            rms(part)
        );
        Ok(format!("carol heard {fc} Hz (rms {lc:.0}), the bot heard {fb} Hz"))
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["carol"], e),
    }
}

fn add_user(d: &Daemon, user: &str, password: &str) {
    let out = d
        .cli_stdin(
            &["user", "add", user, "--type", "sip", "--password-stdin"],
            &format!("{password}\n"),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
