//! SIPp (Debian `sip-tester`) from the tests: one scenario per process,
//! its error and message logs kept for failure reports, the process ended
//! by its PID.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{free_udp_port, ChildGuard};

/// A scenario file under `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    crate::repo_dir().join("tests/sipp").join(name)
}

/// A SIPp process running one scenario, with its error and message logs.
pub struct Sipp {
    child: ChildGuard,
    err_file: PathBuf,
    /// SIPp's message trace (`-trace_msg`).
    pub msg_file: PathBuf,
}

/// Starts SIPp on `127.0.0.1:port` with its logs in `dir`: as a UAC towards
/// `127.0.0.1:remote` when given, else as a UAS waiting for requests.
pub fn spawn_sipp(dir: &Path, scenario_file: &str, port: u16, remote: Option<u16>, extra: &[&str]) -> Sipp {
    let media = free_udp_port();
    let err_file = dir.join(format!("sipp-{scenario_file}-{port}.err"));
    let msg_file = dir.join(format!("sipp-{scenario_file}-{port}.msg"));
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir).arg("-sf").arg(scenario(scenario_file));
    if let Some(remote) = remote {
        cmd.arg(format!("127.0.0.1:{remote}"));
    }
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-m", "1", "-l", "1", "-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file", err_file.to_str().unwrap_or_default()])
        .args(["-trace_msg", "-message_file", msg_file.to_str().unwrap_or_default()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = ChildGuard(cmd.spawn().expect("sipp is installed (Debian package sip-tester)"));
    Sipp {
        child,
        err_file,
        msg_file,
    }
}

impl Sipp {
    /// Waits for SIPp to end (killed after `timeout`): whether the scenario
    /// passed, and its logs (errors, then the last messages it exchanged).
    pub fn finish(self, timeout: Duration) -> (bool, String) {
        let Sipp {
            child,
            err_file,
            msg_file,
        } = self;
        let (ok, status, stderr) = match child.output_timeout(timeout) {
            Ok((status, _, stderr)) => (status.success(), status.to_string(), stderr),
            Err(e) => (false, e.to_string(), String::new()),
        };
        let log = std::fs::read_to_string(&err_file).unwrap_or_default();
        let msgs = std::fs::read_to_string(&msg_file).unwrap_or_default();
        let tail: String = msgs.chars().skip(msgs.chars().count().saturating_sub(8000)).collect();
        (
            ok,
            format!("exit {status}; stderr: {stderr}; error log: {log}\n--- last messages:\n{tail}"),
        )
    }
}

/// 1 s of a µ-law tone at `hz`, raw (what SIPp's `rtp_stream` plays as PCMU).
pub fn ulaw_tone(path: &Path, hz: f64) -> std::io::Result<()> {
    let bytes: Vec<u8> = (0..8000)
        .map(|i| {
            let s = (f64::sin(2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0) * 12_000.0) as i16;
            linear_to_ulaw(s)
        })
        .collect();
    std::fs::write(path, bytes)
}

/// ITU-T G.711 µ-law encoding of one sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}
