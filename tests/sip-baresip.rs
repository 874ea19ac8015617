//! baresip (a real SIP user agent nobody here wrote) against confgate's SIP
//! listener on 127.0.0.1: two registered phones call each other through
//! confgate, a call rings both phones of one account and the first to
//! answer wins, two phones without a common codec (G.711 µ-law and G.722)
//! hear each other through the transcoder, and a phone dials into a
//! conference with a `confgate bot`; phones with cameras get each other's
//! video in a conference, dialed directly or entered through the IVR.
//! Each side plays its own tone (baresip's `ausine` with opus at 48 kHz,
//! or a WAV file at the codec's rate) and records what it decoded; the
//! recordings are checked by frequency (video by tshark's RTP counts).
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
use confgate_suite::{dominant_frequency, loudest_two_seconds, read_wav, read_wav_mixed, rms, ChildGuard, Daemon};

/// The cases run one after the other: two cores, real-time audio.
static SERIAL: Mutex<()> = Mutex::new(());

/// What a UA sends and which codec it has.
#[derive(Debug, Clone, Copy)]
enum Voice {
    /// `ausine` (48 kHz only) with opus only.
    Opus,
    /// A tone from a WAV file (`aufile`) at the codec's rate, with one
    /// codec module loaded and allowed.
    Codec {
        /// baresip module, e.g. `g711.so`.
        module: &'static str,
        /// The account's `audio_codecs`, e.g. `PCMU`.
        codec: &'static str,
        /// The codec's sampling rate (the WAV's).
        rate: u32,
    },
}

struct Ua {
    /// Its directory and log name.
    name: String,
    /// The account it registers as.
    user: &'static str,
    password: &'static str,
    tone: f64,
    dir: PathBuf,
    rec: PathBuf,
    voice: Voice,
    /// `auto` or `manual`.
    answermode: &'static str,
}

impl Ua {
    fn new(root: &Path, name: &'static str, password: &'static str, tone: f64, rtp_base: u16) -> Result<Ua> {
        Ua::build(root, name, name, password, tone, rtp_base, Voice::Opus)
    }

    fn build(
        root: &Path,
        name: &str,
        user: &'static str,
        password: &'static str,
        tone: f64,
        rtp_base: u16,
        voice: Voice,
    ) -> Result<Ua> {
        let dir = root.join(name);
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec)?;
        let sip_port = confgate_suite::free_port();
        let (modules, source) = match voice {
            Voice::Opus => (
                "module\t\t\tg711.so\nmodule\t\t\topus.so\nmodule\t\t\tausine.so\n".to_string(),
                format!("ausine,{tone}"),
            ),
            Voice::Codec { module, rate, .. } => {
                let wav = dir.join("tone.wav");
                write_tone(&wav, rate, tone, 20)?;
                (format!("module\t\t\t{module}\n"), format!("aufile,{}", wav.display()))
            }
        };
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             {modules}\
             module\t\t\taufile.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             audio_source\t\t{source}\n\
             snd_path\t\t{rec}\n\
             rtp_ports\t\t{rtp_base}-{rtp_end}\n",
            rec = rec.display(),
            rtp_end = rtp_base + 99,
        );
        std::fs::write(dir.join("config"), config)?;
        Ok(Ua {
            name: name.to_string(),
            user,
            password,
            tone,
            dir,
            rec,
            voice,
            answermode: "auto",
        })
    }

    /// The account line: registered with confgate (digest) or not, over
    /// UDP or TCP.
    fn account(&self, sip_port: u16, register: bool) -> Result<()> {
        self.account_over(sip_port, register, "udp")
    }

    fn account_over(&self, sip_port: u16, register: bool, transport: &str) -> Result<()> {
        let codecs = match self.voice {
            Voice::Opus => "opus/48000/2",
            Voice::Codec { codec, .. } => codec,
        };
        let line = format!(
            "<sip:{user}@127.0.0.1:{sip_port};transport={transport}>;auth_pass={pw};answermode={mode};regint={reg};\
             audio_codecs={codecs}\n",
            user = self.user,
            pw = self.password,
            mode = self.answermode,
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
    phones_call_each_other("udp", false);
}

#[test]
fn two_phones_registered_over_tcp_call_each_other() {
    phones_call_each_other("tcp", false);
}

#[test]
fn two_phones_registered_over_tls_call_each_other() {
    phones_call_each_other("tls", false);
}

/// Both phones insist on SDES-SRTP (baresip `mediaenc=srtp-mand`: RTP/SAVP
/// with `a=crypto` offered, and a call whose answer or offer is not SRTP is
/// refused), so the call connects only if confgate answers the caller and
/// offers the callee SRTP; the relay re-keys between the two legs.
#[test]
fn two_phones_with_sdes_srtp_call_each_other() {
    phones_call_each_other("udp", true);
}

/// A self-signed certificate for 127.0.0.1, written as PEM files.
fn test_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (c, k) = (dir.join("sip-cert.pem"), dir.join("sip-key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

fn phones_call_each_other(transport: &str, srtp: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("sip-baresip-p2p-{transport}{}", if srtp { "-srtp" } else { "" });
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
        if srtp {
            with_sdes_srtp(&alice)?;
            with_sdes_srtp(&bob)?;
        }
        let mut bob_p = bob.spawn(&logs, &["-t".into(), "40".into()])?;
        wait_for_log(&mut bob_p, &logs, "bob", "[1 binding]", Duration::from_secs(10))?;
        let mut alice_p = alice.spawn(
            &logs,
            &[
                "-e".into(),
                format!("/dial sip:bob@127.0.0.1:{port};transport={transport}"),
                "-t".into(),
                CALLER_SECS.into(),
            ],
        )?;
        let st = alice_p.wait_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "alice exited with {st}");
        // alice's BYE reaches bob through confgate.
        wait_for_log(&mut bob_p, &logs, "bob", "terminated", Duration::from_secs(10))?;
        bob_p.signal("TERM")?;
        bob_p.wait_timeout(Duration::from_secs(10))?;
        hear_each_other(&alice, "alice", &bob, "bob")
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
                CALLER_SECS.into(),
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
        let part = loudest_two_seconds(&heard, rate).context("bot recording too short")?;
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

/// `secs` seconds of a 16-bit mono tone at `hz`, sampled at `rate`.
fn write_tone(path: &Path, rate: u32, hz: f64, secs: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for i in 0..rate * secs {
        let t = f64::from(i) / f64::from(rate);
        w.write_sample((f64::sin(2.0 * std::f64::consts::PI * hz * t) * 10_000.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// Whether `ua` decoded any audio (a `*-dec.wav` with samples in it).
fn decoded_anything(ua: &Ua) -> bool {
    std::fs::read_dir(&ua.rec)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                .any(|p| read_wav_mixed(&p).is_ok_and(|(_, s)| !s.is_empty()))
        })
        .unwrap_or(false)
}

#[test]
fn a_call_rings_every_phone_of_the_account_and_the_first_to_answer_wins() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("sip-baresip-fork").unwrap();
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    add_user(&d, "alice", "alice-pass-1");
    add_user(&d, "bob", "bob-pass-22");
    let r = (|| -> Result<String> {
        let alice = Ua::new(d.dir.path(), "alice", "alice-pass-1", 440.0, 41000)?;
        // Bob has two phones, registered as the same account from two
        // addresses: the desk phone answers by itself, the mobile only rings.
        let desk = Ua::build(
            d.dir.path(),
            "bob-desk",
            "bob",
            "bob-pass-22",
            660.0,
            41200,
            Voice::Opus,
        )?;
        let mut mobile = Ua::build(
            d.dir.path(),
            "bob-mobile",
            "bob",
            "bob-pass-22",
            880.0,
            41400,
            Voice::Opus,
        )?;
        mobile.answermode = "manual";
        alice.account(d.sip_port, true)?;
        desk.account(d.sip_port, true)?;
        mobile.account(d.sip_port, true)?;
        let mut mobile_p = mobile.spawn(&logs, &["-t".into(), "40".into()])?;
        wait_for_log(&mut mobile_p, &logs, "bob-mobile", "binding", Duration::from_secs(10))?;
        let mut desk_p = desk.spawn(&logs, &["-t".into(), "40".into()])?;
        wait_for_log(&mut desk_p, &logs, "bob-desk", "2 bindings", Duration::from_secs(10))?;
        let mut alice_p = alice.spawn(
            &logs,
            &[
                "-e".into(),
                format!("/dial sip:bob@127.0.0.1:{}", d.sip_port),
                "-t".into(),
                CALLER_SECS.into(),
            ],
        )?;
        // Both phones ring; the desk phone answers and the mobile is cancelled.
        wait_for_log(
            &mut mobile_p,
            &logs,
            "bob-mobile",
            "Incoming call",
            Duration::from_secs(10),
        )?;
        let st = alice_p.wait_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "alice exited with {st}");
        wait_for_log(&mut desk_p, &logs, "bob-desk", "terminated", Duration::from_secs(10))?;
        // The mobile's SIP trace (-s): after the INVITE, a CANCEL request
        // arrived and the INVITE was answered 487 (RFC 3261 §9.2).
        let mobile_log = log_of(&logs, "bob-mobile");
        let incoming = mobile_log.find("Incoming call").context("the mobile never rang")?;
        let after = &mobile_log[incoming..];
        let cancel = after
            .lines()
            .position(|l| l.starts_with("CANCEL sip:"))
            .context("the mobile got no CANCEL")?;
        ensure!(
            after.lines().skip(cancel).any(|l| l.starts_with("SIP/2.0 487")),
            "the mobile did not end the cancelled INVITE with 487"
        );
        desk_p.signal("TERM")?;
        desk_p.wait_timeout(Duration::from_secs(10))?;
        mobile_p.signal("TERM")?;
        mobile_p.wait_timeout(Duration::from_secs(10))?;
        ensure!(
            !decoded_anything(&mobile),
            "the mobile never answered, yet decoded audio"
        );
        Ok(format!(
            "{}; the mobile was cancelled",
            hear_each_other(&alice, "alice", &desk, "bob's desk phone")?
        ))
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["alice", "bob-desk", "bob-mobile"], e),
    }
}

#[test]
fn phones_without_a_common_codec_hear_each_other_through_the_transcoder() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("sip-baresip-transcode").unwrap();
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    add_user(&d, "alice", "alice-pass-1");
    add_user(&d, "bob", "bob-pass-22");
    let r = (|| -> Result<String> {
        // Alice's phone has only G.711 µ-law, Bob's only G.722.
        let pcmu = Voice::Codec {
            module: "g711.so",
            codec: "PCMU",
            rate: 8000,
        };
        let g722 = Voice::Codec {
            module: "g722.so",
            codec: "G722",
            rate: 16_000,
        };
        let alice = Ua::build(d.dir.path(), "alice", "alice", "alice-pass-1", 440.0, 41000, pcmu)?;
        let bob = Ua::build(d.dir.path(), "bob", "bob", "bob-pass-22", 660.0, 41200, g722)?;
        alice.account(d.sip_port, true)?;
        bob.account(d.sip_port, true)?;
        let mut bob_p = bob.spawn(&logs, &["-t".into(), "40".into()])?;
        wait_for_log(&mut bob_p, &logs, "bob", "[1 binding]", Duration::from_secs(10))?;
        let mut alice_p = alice.spawn(
            &logs,
            &[
                "-e".into(),
                format!("/dial sip:bob@127.0.0.1:{}", d.sip_port),
                "-t".into(),
                CALLER_SECS.into(),
            ],
        )?;
        let st = alice_p.wait_timeout(Duration::from_secs(30))?;
        ensure!(st.success(), "alice exited with {st}");
        wait_for_log(&mut bob_p, &logs, "bob", "terminated", Duration::from_secs(10))?;
        bob_p.signal("TERM")?;
        bob_p.wait_timeout(Duration::from_secs(10))?;
        ensure!(
            d.stderr().contains("phones connected through the transcoder"),
            "the call did not go through the transcoder"
        );
        hear_each_other(&alice, "alice (PCMU)", &bob, "bob (G722)")
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["alice", "bob"], e),
    }
}

/// Makes a UA insist on SDES-SRTP (RFC 4568): baresip's `srtp` module and
/// `mediaenc=srtp-mand` on its account.
fn with_sdes_srtp(ua: &Ua) -> Result<()> {
    let cfg = ua.dir.join("config");
    let mut c = std::fs::read_to_string(&cfg)?;
    c.push_str("module\t\t\tsrtp.so\n");
    std::fs::write(&cfg, c)?;
    let acc = ua.dir.join("accounts");
    let line = std::fs::read_to_string(&acc)?;
    std::fs::write(&acc, format!("{};mediaenc=srtp-mand\n", line.trim_end()))?;
    Ok(())
}

/// How long a calling baresip runs (`-t`): registration, the call set-up
/// and at least the 4 s that `Ua::heard` reads, with room to spare on a busy
/// machine (at 7 s, a run here once got 0.3 s of audio).
const CALLER_SECS: &str = "10";

/// Checks that `a` and `b` each heard the other's tone (within 10 Hz, rms
/// above 1000) from 1 s to 4 s of their recordings; the report names them
/// `a_name` and `b_name`.
fn hear_each_other(a: &Ua, a_name: &str, b: &Ua, b_name: &str) -> Result<String> {
    let (fa, la) = a.heard()?;
    let (fb, lb) = b.heard()?;
    ensure!(
        (fa - b.tone).abs() <= 10.0 && la > 1000.0,
        "{a_name} heard {fa} Hz at rms {la:.0}"
    );
    ensure!(
        (fb - a.tone).abs() <= 10.0 && lb > 1000.0,
        "{b_name} heard {fb} Hz at rms {lb:.0}"
    );
    Ok(format!(
        "{a_name} heard {fa} Hz (rms {la:.0}), {b_name} heard {fb} Hz (rms {lb:.0})"
    ))
}

/// Adds a fake camera (baresip's `fakevideo`) and VP8 to a UA.
fn with_video(ua: &Ua) -> Result<()> {
    let cfg = ua.dir.join("config");
    let mut c = std::fs::read_to_string(&cfg)?;
    c.push_str(
        "module\t\t\tvp8.so\n\
         module\t\t\tfakevideo.so\n\
         video_source\t\tfakevideo,nil\n\
         video_display\t\tfakevideo,nil\n\
         video_size\t\t320x240\n\
         video_fps\t\t15\n",
    );
    std::fs::write(&cfg, c)?;
    let acc = ua.dir.join("accounts");
    let line = std::fs::read_to_string(&acc)?;
    std::fs::write(&acc, format!("{};video_codecs=VP8\n", line.trim_end()))?;
    Ok(())
}

/// One RTP packet seen on loopback.
#[derive(Debug, Clone, Copy)]
struct Seen {
    src: u16,
    dst: u16,
    ssrc: u32,
    timestamp: u32,
}

/// RTP packets seen on loopback while `f` runs, from tshark with RTP
/// found heuristically.
fn capture_rtp(ports: (u16, u16), secs: u32, f: impl FnOnce() -> Result<()>) -> Result<Vec<Seen>> {
    let pcap = std::env::temp_dir().join(format!("confgate-video-{}.pcap", std::process::id()));
    let cap = Command::new("tshark")
        .args(["-i", "lo", "-q", "-a"])
        .arg(format!("duration:{secs}"))
        .args(["-f", &format!("udp portrange {}-{}", ports.0, ports.1), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("tshark (scripts/test installs it)")?;
    let mut cap = ChildGuard(cap);
    std::thread::sleep(Duration::from_secs(1));
    f()?;
    cap.wait_timeout(Duration::from_secs(u64::from(secs) + 20))?;
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp", "-T", "fields"])
        .args([
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.timestamp",
        ])
        .output()?;
    let _ = std::fs::remove_file(&pcap);
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Seen {
                src: f.first()?.parse().ok()?,
                dst: f.get(1)?.parse().ok()?,
                ssrc: u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?,
                timestamp: f.get(3)?.parse().ok()?,
            })
        })
        .collect())
}

/// The video streams among `packets` (by SSRC, with their packet counts):
/// those whose timestamp does not step by one 20 ms Opus packet (960)
/// most of the time — video steps by 90000/fps per frame, or not at all
/// between the packets of one frame.
fn video_streams(packets: &[Seen]) -> std::collections::BTreeMap<u32, usize> {
    let mut by: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
    for p in packets {
        by.entry(p.ssrc).or_default().push(p.timestamp);
    }
    by.into_iter()
        .filter(|(_, ts)| {
            let audio_steps = ts.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 960).count();
            ts.len() > 10 && audio_steps * 2 < ts.len()
        })
        .map(|(ssrc, ts)| (ssrc, ts.len()))
        .collect()
}

/// Two phones with cameras in a conference: each gets the other's video as
/// one switched stream (its own SSRC from the relay), with audio as usual.
#[test]
fn two_video_phones_in_a_conference_get_each_others_video() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("sip-baresip-video").unwrap();
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    d.cli_ok(&["conference", "add", "7003"]).unwrap();
    let r = (|| -> Result<String> {
        let carol = Ua::new(d.dir.path(), "carol", "unused-pass", 440.0, 41600)?;
        let dave = Ua::new(d.dir.path(), "dave", "unused-pass", 660.0, 41700)?;
        for ua in [&carol, &dave] {
            ua.account(d.sip_port, false)?;
            with_video(ua)?;
        }
        let mut procs = Vec::new();
        let packets = capture_rtp((41600, 41799), 12, || {
            for ua in [&carol, &dave] {
                procs.push(ua.spawn(
                    &logs,
                    &[
                        "-e".into(),
                        format!("/dial sip:7003@127.0.0.1:{}", d.sip_port),
                        "-t".into(),
                        "9".into(),
                    ],
                )?);
            }
            Ok(())
        })?;
        for mut p in procs {
            let st = p.wait_timeout(Duration::from_secs(30))?;
            ensure!(st.success(), "baresip exited with {st}");
        }
        let range = |lo: u16| lo..lo + 100;
        let sent: Vec<Seen> = packets
            .iter()
            .filter(|p| range(41600).contains(&p.src))
            .copied()
            .collect();
        let carol_sent = video_streams(&sent);
        let sent: Vec<Seen> = packets
            .iter()
            .filter(|p| range(41700).contains(&p.src))
            .copied()
            .collect();
        let dave_sent = video_streams(&sent);
        // What reached a phone from the ports it sends to (the relay's),
        // so that other traffic on loopback does not count.
        let got = |lo: u16| -> Vec<Seen> {
            let peers: std::collections::BTreeSet<(u16, u16)> = packets
                .iter()
                .filter(|p| range(lo).contains(&p.src))
                .map(|p| (p.src, p.dst))
                .collect();
            packets
                .iter()
                .filter(|p| peers.contains(&(p.dst, p.src)))
                .copied()
                .collect()
        };
        let (to_carol, to_dave) = (video_streams(&got(41600)), video_streams(&got(41700)));
        ensure!(
            carol_sent.len() == 1 && dave_sent.len() == 1,
            "each phone sends one video stream: {carol_sent:?} {dave_sent:?}"
        );
        // One switched stream each, from the relay's own SSRC (not the other phone's passed through).
        ensure!(
            to_carol.len() == 1 && to_dave.len() == 1,
            "each phone gets one video stream: {to_carol:?} {to_dave:?}"
        );
        let n = |m: &std::collections::BTreeMap<u32, usize>| m.values().sum::<usize>();
        ensure!(
            n(&to_carol) > 30 && n(&to_dave) > 30,
            "video packets to the phones: {to_carol:?} {to_dave:?}"
        );
        ensure!(
            to_carol.keys().all(|s| !dave_sent.contains_key(s)) && to_dave.keys().all(|s| !carol_sent.contains_key(s)),
            "the relay rewrote the SSRC: {to_carol:?} {dave_sent:?}"
        );
        let (cs, cg, ds, dg) = (n(&carol_sent), n(&to_carol), n(&dave_sent), n(&to_dave));
        Ok(format!(
            "carol sent {cs} and got {cg} video packets, dave sent {ds} and got {dg}"
        ))
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["carol", "dave"], e),
    }
}

/// Types `keys` into a running baresip through its `cons` module (UDP
/// console on `port`): one `/sndcode` per digit, so that each goes as its
/// own RFC 4733 event with its end.
fn send_digits(port: u16, keys: &str) -> Result<()> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    for k in keys.chars() {
        sock.send_to(format!("/sndcode {k}\n").as_bytes(), ("127.0.0.1", port))?;
        std::thread::sleep(Duration::from_millis(400));
    }
    Ok(())
}

/// A phone with a camera that dials the server alone, enters the
/// conference id at the IVR by DTMF, and then gets the room's video from
/// another phone and sends its own into it: its video, answered inactive
/// in the IVR, moves into the room by re-INVITE. A re-INVITE from the
/// phone in the room keeps the video where it is.
#[test]
fn a_video_phone_entering_through_the_ivr_gets_the_rooms_video() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Daemon::start("sip-baresip-ivr-video").unwrap();
    let logs = d.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    d.cli_ok(&["conference", "add", "7153"]).unwrap();
    let r = (|| -> Result<String> {
        let carol = Ua::new(d.dir.path(), "carol", "unused-pass", 440.0, 42600)?;
        let dave = Ua::new(d.dir.path(), "dave", "unused-pass", 660.0, 42700)?;
        for ua in [&carol, &dave] {
            ua.account(d.sip_port, false)?;
            with_video(ua)?;
        }
        // carol's console, to type the conference id during the call.
        let cons_port = confgate_suite::free_udp_port();
        let cfg = carol.dir.join("config");
        let mut c = std::fs::read_to_string(&cfg)?;
        c.push_str(&format!("module\t\t\tcons.so\ncons_listen\t\t127.0.0.1:{cons_port}\n"));
        std::fs::write(&cfg, c)?;
        let mut procs = Vec::new();
        let packets = capture_rtp((42600, 42799), 18, || {
            let mut carol_p = carol.spawn(
                &logs,
                &[
                    "-e".into(),
                    format!("/dial sip:127.0.0.1:{}", d.sip_port),
                    "-t".into(),
                    "15".into(),
                ],
            )?;
            wait_for_log(
                &mut carol_p,
                &logs,
                "carol",
                "Call established",
                Duration::from_secs(10),
            )?;
            std::thread::sleep(Duration::from_millis(500));
            send_digits(cons_port, "7153#")?;
            procs.push(carol_p);
            procs.push(dave.spawn(
                &logs,
                &[
                    "-e".into(),
                    format!("/dial sip:7153@127.0.0.1:{}", d.sip_port),
                    "-t".into(),
                    "10".into(),
                ],
            )?);
            // carol re-offers her media in the room.
            std::thread::sleep(Duration::from_secs(2));
            let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
            sock.send_to(b"/reinvite\n", ("127.0.0.1", cons_port))?;
            Ok(())
        })?;
        for mut p in procs {
            let st = p.wait_timeout(Duration::from_secs(30))?;
            ensure!(st.success(), "baresip exited with {st}");
        }
        ensure!(
            d.log_shows("the phone's video is in the room"),
            "the IVR leg's video was not moved into the room"
        );
        // Her INVITE, ours moving the video, and her re-INVITE.
        let invites = log_of(&logs, "carol").matches("\nINVITE sip:").count();
        ensure!(invites >= 3, "three INVITEs in carol's SIP trace, saw {invites}");
        // No answer of ours refused her video (port 0), her re-INVITE's included.
        ensure!(
            !log_of(&logs, "carol").contains("m=video 0 "),
            "an answer refused carol's video"
        );
        let range = |lo: u16| lo..lo + 100;
        let sent_by =
            |lo: u16| -> Vec<Seen> { packets.iter().filter(|p| range(lo).contains(&p.src)).copied().collect() };
        // What reached a phone from the ports it sends to (the relay's),
        // so that other traffic on loopback does not count.
        let got = |lo: u16| -> Vec<Seen> {
            let peers: std::collections::BTreeSet<(u16, u16)> = sent_by(lo).iter().map(|p| (p.src, p.dst)).collect();
            packets
                .iter()
                .filter(|p| peers.contains(&(p.dst, p.src)))
                .copied()
                .collect()
        };
        let (carol_sent, dave_sent) = (video_streams(&sent_by(42600)), video_streams(&sent_by(42700)));
        let (to_carol, to_dave) = (video_streams(&got(42600)), video_streams(&got(42700)));
        let n = |m: &std::collections::BTreeMap<u32, usize>| m.values().sum::<usize>();
        ensure!(
            n(&carol_sent) > 30 && n(&dave_sent) > 30,
            "each phone sends video: carol {carol_sent:?}, dave {dave_sent:?}"
        );
        // carol (through the IVR) gets dave's camera, and dave gets carol's:
        // her video reaches the room.
        let flows = |m: &std::collections::BTreeMap<u32, usize>| -> Vec<(u32, u16, u16)> {
            let mut f: Vec<(u32, u16, u16)> = packets
                .iter()
                .filter(|p| m.contains_key(&p.ssrc))
                .map(|p| (p.ssrc, p.src, p.dst))
                .collect();
            f.dedup();
            f
        };
        // About 300 each over the call: the video goes on after carol's re-INVITE.
        ensure!(
            to_carol.len() == 1 && n(&to_carol) > 150,
            "video to the phone that came through the IVR: {to_carol:?} {:?}",
            flows(&to_carol)
        );
        ensure!(
            to_dave.len() == 1 && n(&to_dave) > 150,
            "video to the other phone (the IVR phone's camera): {to_dave:?}"
        );
        let (cs, cg, ds, dg) = (n(&carol_sent), n(&to_carol), n(&dave_sent), n(&to_dave));
        Ok(format!(
            "carol (IVR) sent {cs} and got {cg} video packets, dave sent {ds} and got {dg}"
        ))
    })();
    match r {
        Ok(report) => println!("{report}"),
        Err(e) => report_failure(&d, &logs, &["carol", "dave"], e),
    }
}
