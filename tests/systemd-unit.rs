//! `systemd/confgate.service` is a valid, hardened `Type=notify` unit.
//!
//! Runs `systemd-analyze verify` on a copy of the unit whose `ExecStart=`
//! binary is replaced by `/bin/true` (verify requires it to exist; every other
//! line is kept), and checks the unit's keys. Needs the `systemd` package
//! (for `systemd-analyze`) and `procps` (for `/bin/kill`, the `ExecReload=`
//! command, which verify also requires to exist). The test fails, rather than
//! skips, when they are missing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

const UNIT_NAME: &str = "confgate.service";
const INSTALLED_BINARY: &str = "/usr/bin/confgate";
const STAND_IN_BINARY: &str = "/bin/true";

fn unit_path() -> PathBuf {
    confgate_suite::repo_dir().join("systemd").join(UNIT_NAME)
}

fn read_unit() -> Result<String> {
    let path = unit_path();
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `(section, key, value)` for every setting, in file order; comments and
/// blank lines skipped. (The unit uses no line continuations; a trailing
/// backslash is rejected so that this stays true.)
fn settings(unit: &str) -> Result<Vec<(String, String, String)>> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in unit.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        ensure!(
            !line.ends_with('\\'),
            "line {}: continuation lines are not supported here",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: not a key=value setting: {line}", n + 1);
        };
        out.push((section.clone(), key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

/// The single value of `key` in `[section]`; an error if it is missing or set
/// more than once (a second line would silently override or extend it).
fn value<'a>(settings: &'a [(String, String, String)], section: &str, key: &str) -> Result<&'a str> {
    let values: Vec<&str> = settings
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect();
    match values[..] {
        [v] => Ok(v),
        [] => bail!("[{section}] {key}= is missing from {UNIT_NAME}"),
        _ => bail!(
            "[{section}] {key}= is set {} times in {UNIT_NAME}: {values:?}",
            values.len()
        ),
    }
}

/// The unit with the `ExecStart=` binary replaced by one that exists on every
/// machine, every other line kept byte for byte.
fn with_stand_in_binary(unit: &str) -> Result<String> {
    let mut replaced = 0;
    let mut out = String::with_capacity(unit.len());
    for line in unit.split_inclusive('\n') {
        if let Some(command) = line.strip_prefix("ExecStart=") {
            let rest = command
                .strip_prefix(INSTALLED_BINARY)
                .with_context(|| format!("ExecStart= does not run {INSTALLED_BINARY}: {line}"))?;
            out.push_str("ExecStart=");
            out.push_str(STAND_IN_BINARY);
            out.push_str(rest);
            replaced += 1;
        } else {
            out.push_str(line);
        }
    }
    ensure!(replaced == 1, "expected exactly one ExecStart= line, found {replaced}");
    Ok(out)
}

/// A scratch directory removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("confgate-systemd-unit-{}-{tag}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Output of `systemd-analyze verify` on `unit_text` saved as
/// `confgate.service` in a scratch directory: (success, stderr).
fn verify(unit_text: &str, tag: &str) -> Result<(bool, String)> {
    let dir = ScratchDir::new(tag)?;
    let path = dir.0.join(UNIT_NAME);
    std::fs::write(&path, unit_text).with_context(|| format!("writing {}", path.display()))?;
    let output = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "systemd-analyze is not installed: install the `systemd` package \
             (apt-get install -y systemd procps) to run this test"
        ),
        Err(e) => return Err(e).context("running systemd-analyze verify"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok((output.status.success(), stderr))
}

/// stderr lines about our unit that report an unknown or unparsable setting.
fn complaints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(UNIT_NAME))
        .filter(|l| {
            ["Unknown", "Failed", "Invalid", "ignoring"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() -> Result<()> {
    let unit = read_unit()?;
    let (success, stderr) = verify(&with_stand_in_binary(&unit)?, "real")?;
    ensure!(
        success,
        "systemd-analyze verify failed for {}:\n{stderr}",
        unit_path().display()
    );
    let bad = complaints(&stderr);
    ensure!(
        bad.is_empty(),
        "systemd-analyze verify complained about {UNIT_NAME}:\n{}",
        bad.join("\n")
    );

    // The check itself works on this systemd: an unknown key and a bad value
    // in an otherwise identical copy are reported.
    let broken =
        with_stand_in_binary(&unit)?.replacen("UMask=0077\n", "UMask=0077\nNoSuchKey=1\nProtectSystem=sideways\n", 1);
    ensure!(
        broken != with_stand_in_binary(&unit)?,
        "could not plant errors: UMask=0077 line not found"
    );
    let (_, stderr) = verify(&broken, "broken")?;
    let bad = complaints(&stderr);
    ensure!(
        bad.iter().any(|l| l.contains("NoSuchKey")) && bad.iter().any(|l| l.contains("sideways")),
        "systemd-analyze verify did not report planted errors; its output:\n{stderr}"
    );
    Ok(())
}

#[test]
fn exec_lines_run_the_daemon() -> Result<()> {
    let s = settings(&read_unit()?)?;
    ensure!(
        value(&s, "Service", "ExecStart")? == "/usr/bin/confgate serve --config /etc/confgate/confgate.toml",
        "unexpected ExecStart="
    );
    ensure!(
        value(&s, "Service", "ExecReload")? == "/bin/kill -HUP $MAINPID",
        "unexpected ExecReload="
    );
    Ok(())
}

#[test]
fn unit_is_notify_with_watchdog_and_hardening() -> Result<()> {
    let s = settings(&read_unit()?)?;
    let expected: &[(&str, &str)] = &[
        // life cycle
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        // identity, directories, environment
        ("DynamicUser", "yes"),
        ("StateDirectory", "confgate"),
        ("ConfigurationDirectory", "confgate"),
        ("RuntimeDirectory", "confgate"),
        ("UMask", "0077"),
        ("LimitNOFILE", "65536"),
        // capabilities
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        // file system
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        // kernel and system
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        // processes
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        // network
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        // system calls
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallErrorNumber", "EPERM"),
    ];
    let mut wrong = Vec::new();
    for &(key, want) in expected {
        match value(&s, "Service", key) {
            Ok(got) if got == want => {}
            Ok(got) => wrong.push(format!("{key}={got} (want {key}={want})")),
            Err(e) => wrong.push(e.to_string()),
        }
    }
    ensure!(wrong.is_empty(), "{UNIT_NAME}:\n{}", wrong.join("\n"));

    // Environment= may repeat: the state directory and the loopback socket are both set.
    let env: Vec<&str> = s
        .iter()
        .filter(|(sec, k, _)| sec == "Service" && k == "Environment")
        .map(|(_, _, v)| v.as_str())
        .collect();
    for want in [
        "CONFGATE_SERVER__DATA_DIR=/var/lib/confgate",
        "CONFGATE_LOOPBACK__SOCKET=/run/confgate/loopback.sock",
    ] {
        ensure!(
            env.contains(&want),
            "{UNIT_NAME}: Environment={want} missing (have {env:?})"
        );
    }

    ensure!(
        value(&s, "Unit", "Documentation")?.contains("://"),
        "Documentation= should name a URL"
    );

    // SIGTERM grace period is 10 s by default: systemd must wait longer
    // before SIGKILL.
    let stop = value(&s, "Service", "TimeoutStopSec")?;
    let stop: u64 = stop
        .strip_suffix('s')
        .unwrap_or(stop)
        .parse()
        .with_context(|| format!("TimeoutStopSec={stop}: expected plain seconds"))?;
    ensure!(
        (11..=60).contains(&stop),
        "TimeoutStopSec={stop} should be a bit above the 10 s grace period"
    );
    Ok(())
}

#[test]
fn no_capability_other_than_net_bind_service() -> Result<()> {
    let unit = read_unit()?;
    // Every CAP_* token anywhere in the file, comments included.
    let caps: Vec<&str> = unit
        .match_indices("CAP_")
        .map(|(at, _)| {
            let rest = &unit[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    ensure!(!caps.is_empty(), "no capability named at all");
    let others: Vec<&&str> = caps.iter().filter(|c| **c != "CAP_NET_BIND_SERVICE").collect();
    ensure!(
        others.is_empty(),
        "capabilities other than CAP_NET_BIND_SERVICE: {others:?}"
    );

    // And no other setting grants capabilities or keeps them across exec.
    let s = settings(&unit)?;
    for key in ["SecureBits", "User", "PrivateUsers"] {
        ensure!(
            s.iter().all(|(_, k, _)| k != key),
            "{key}= must not be set: the unit relies on DynamicUser=yes"
        );
    }
    Ok(())
}

#[test]
fn stand_in_rewrite_keeps_every_other_line() -> Result<()> {
    let unit = read_unit()?;
    let copy = with_stand_in_binary(&unit)?;
    let (a, b): (Vec<&str>, Vec<&str>) = (unit.lines().collect(), copy.lines().collect());
    ensure!(a.len() == b.len(), "line count changed");
    let changed: Vec<(&&str, &&str)> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    ensure!(changed.len() == 1, "expected one changed line, got {changed:?}");
    ensure!(
        changed[0].1.starts_with("ExecStart=/bin/true serve "),
        "bad rewrite: {}",
        changed[0].1
    );
    Ok(())
}
