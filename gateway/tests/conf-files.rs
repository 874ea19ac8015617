//! The configuration files shipped under `conf/`: every one loads, and the
//! reference file `conf/confgate.toml` documents every key with exactly the
//! code's defaults.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use confgate::config::{Config, RouteConfig};

/// Sections whose listener the daemon does not serve in this release.
const NOT_SERVED: &[&str] = &["federation"];

fn conf_dir() -> PathBuf {
    // Read at run time: a build directory shared between clones keeps the compile-time path of another.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../conf")
}

fn reference_path() -> PathBuf {
    conf_dir().join("confgate.toml")
}

fn load(path: &Path) -> Config {
    Config::load_from(Some(path), std::iter::empty()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "toml") {
            out.push(path);
        }
    }
}

/// A key line of the reference file: `key = ...` or `# key = ...`.
#[derive(Debug, Clone)]
struct KeyLine {
    line_no: usize,
    commented: bool,
    /// The comment lines directly above it.
    doc: Vec<String>,
}

/// The reference file's key lines by section and key. A commented-out table
/// header on a line of its own (`# [[routing.routes]]`) opens a section too,
/// so that the keys of a commented-out example are found under it.
fn key_lines(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<KeyLine>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<KeyLine>>> = BTreeMap::new();
    let mut section = String::new();
    let mut doc: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let (commented, body) = match line.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let header = body
            .strip_prefix("[[")
            .and_then(|s| s.strip_suffix("]]"))
            .or_else(|| body.strip_prefix('[').and_then(|s| s.strip_suffix(']')));
        if let Some(name) = header.filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        }) {
            section = name.to_string();
            doc.clear();
            continue;
        }
        let key = body.split_once(" = ").map(|(k, _)| k).filter(|k| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if let Some(key) = key {
            out.entry(section.clone())
                .or_default()
                .entry(key.to_string())
                .or_default()
                .push(KeyLine {
                    line_no: i + 1,
                    commented,
                    doc: doc.clone(),
                });
            doc.clear();
        } else if line.starts_with('#') {
            doc.push(line.to_string());
        } else {
            doc.clear();
        }
    }
    out
}

/// The text of one `[section]` of the reference file, up to the next header.
fn section_text(text: &str, section: &str) -> String {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line.trim_end() == header;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_conf_file_loads() {
    let mut files = Vec::new();
    toml_files(&conf_dir(), &mut files);
    assert!(
        files.len() >= 3,
        "expected at least 3 *.toml files under {}, found {files:?}",
        conf_dir().display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            Config::load_from(Some(f), std::iter::empty())
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(failures.is_empty(), "files that do not load:\n{}", failures.join("\n"));
}

#[test]
fn reference_file_is_exactly_the_defaults() {
    let documented = load(&reference_path());
    let defaults = Config::load_from(None, std::iter::empty()).unwrap();
    assert_eq!(
        documented, defaults,
        "conf/confgate.toml must set every key to the code's default"
    );
    assert_eq!(defaults, Config::default());
}

#[test]
fn reference_file_documents_every_key() {
    let text = std::fs::read_to_string(reference_path()).unwrap();
    let lines = key_lines(&text);
    let toml::Value::Table(defaults) = toml::Value::try_from(Config::default()).unwrap() else {
        panic!("the default configuration does not serialize to a table");
    };
    let mut problems = Vec::new();
    for (section, value) in &defaults {
        if !text.lines().any(|l| l.trim_end() == format!("[{section}]")) {
            problems.push(format!("[{section}]: no section header"));
        }
        let toml::Value::Table(keys) = value else {
            problems.push(format!("{section}: not a table in the serialized defaults"));
            continue;
        };
        for key in keys.keys() {
            let found = lines.get(section).and_then(|s| s.get(key));
            let Some(found) = found else {
                problems.push(format!("{section}.{key}: not in conf/confgate.toml"));
                continue;
            };
            if found.len() != 1 {
                let at: Vec<usize> = found.iter().map(|k| k.line_no).collect();
                problems.push(format!("{section}.{key}: appears {} times (lines {at:?})", found.len()));
            }
            let k = &found[0];
            // Only the host-dependent server name, and the routes and trunks (arrays of tables
            // that an uncommented `routes = []` would forbid adding), stay commented out.
            let must_be_commented = matches!(
                (section.as_str(), key.as_str()),
                ("server", "name") | ("routing", "routes") | ("sip", "trunks")
            );
            if k.commented != must_be_commented {
                problems.push(format!(
                    "{section}.{key} (line {}): should be {}",
                    k.line_no,
                    if must_be_commented {
                        "commented out"
                    } else {
                        "set, not commented out"
                    }
                ));
            }
            if k.doc.is_empty() {
                problems.push(format!("{section}.{key} (line {}): no comment above it", k.line_no));
            } else if !k.doc.iter().any(|d| d.to_ascii_lowercase().contains("default")) {
                problems.push(format!(
                    "{section}.{key} (line {}): its comment does not give the default",
                    k.line_no
                ));
            }
        }
    }

    // Route keys: shown in the commented-out `# [[routing.routes]]` example or,
    // for the optional ones, at least described in the routing comments.
    let route = RouteConfig {
        name: "r".into(),
        prefix: Some("9".into()),
        pattern: Some("9X".into()),
        strip: 1,
        prepend: "+".into(),
        target: "sip:t".into(),
    };
    let toml::Value::Table(route_keys) = toml::Value::try_from(route).unwrap() else {
        panic!("a route does not serialize to a table");
    };
    let example = lines.get("routing.routes");
    assert!(example.is_some(), "no commented-out `# [[routing.routes]]` example");
    let routing_text = section_text(&text, "routing");
    for key in route_keys.keys() {
        let in_example = example.is_some_and(|e| e.get(key).is_some_and(|k| k.iter().all(|k| k.commented)));
        let described = routing_text.lines().any(|l| l.starts_with(&format!("#   {key} ")));
        if !in_example && !described {
            problems.push(format!("routing.routes[].{key}: neither in the example nor described"));
        }
    }
    if lines
        .get("routing.routes")
        .is_some_and(|e| e.values().flatten().any(|k| !k.commented))
    {
        problems.push("the [[routing.routes]] example must stay commented out (no default routes)".into());
    }

    for section in NOT_SERVED {
        if !section_text(&text, section).contains("the listener is not part of this release yet") {
            problems.push(format!(
                "[{section}]: does not say that its listener is not part of this release"
            ));
        }
    }
    let header: String = text
        .lines()
        .take_while(|l| !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "CONFGATE_HTTP__LISTEN=127.0.0.1:18080",
        "comma-separated",
        "exit code 2",
        "check-config --config",
    ] {
        if !header.contains(needle) {
            problems.push(format!("header comment: does not mention {needle:?}"));
        }
    }
    assert!(problems.is_empty(), "conf/confgate.toml:\n{}", problems.join("\n"));
}

#[test]
fn gateway_routes_example_loads_its_values() {
    let c = load(&conf_dir().join("examples/gateway-routes.toml"));
    let r = &c.routing;
    assert_eq!(r.routes.len(), 2);
    let intl = &r.routes[0];
    assert_eq!(intl.name, "international");
    assert_eq!((intl.prefix.as_deref(), intl.pattern.as_deref()), (Some("00"), None));
    assert_eq!((intl.strip, intl.prepend.as_str()), (2, "+"));
    assert_eq!(intl.target, "sip:carrier");
    let rooms = &r.routes[1];
    assert_eq!(rooms.name, "room-systems");
    assert_eq!(
        (rooms.prefix.as_deref(), rooms.pattern.as_deref()),
        (None, Some("7[0-4]XX"))
    );
    assert_eq!((rooms.strip, rooms.prepend.as_str()), (0, ""));
    assert_eq!(rooms.target, "h323:mcu.example.com:1720");
    assert_eq!(r.deny, ["198.51.100.0/24", "203.0.113.7", "2001:db8:bad::/48"]);
    assert!(r.allow.is_empty());
    assert_eq!(
        r.blocked_user_agents,
        ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent"]
    );
    assert_eq!((r.lockout_after, r.lockout_secs, r.lockout_max_secs), (3, 60, 86400));
    assert_eq!(c.server.name, "gw.example.com");
    // What the example does not set keeps its default.
    let d = Config::default();
    assert_eq!((r.allow_anonymous, r.ivr), (d.routing.allow_anonymous, d.routing.ivr));
    assert_eq!(c.http, d.http);
    assert_eq!(c.conference, d.conference);
}

#[test]
fn small_office_example_loads_its_values() {
    let c = load(&conf_dir().join("examples/small-office.toml"));
    assert_eq!(c.server.name, "video.office.example");
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/confgate"));
    assert_eq!(c.server.log, "info,sqlx=warn");
    assert_eq!(c.http.listen, "192.168.10.5:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(
        c.media.advertise,
        [
            "192.168.10.5".parse::<IpAddr>().unwrap(),
            "203.0.113.20".parse().unwrap()
        ]
    );
    assert_eq!((c.media.port_min, c.media.port_max), (40000, 40999));
    let r = &c.routing;
    assert!(!r.allow_anonymous);
    assert!(!r.ivr);
    assert_eq!(r.allow, ["192.168.10.0/24", "10.8.0.0/16"]);
    assert!(r.deny.is_empty() && r.routes.is_empty());
    let d = Config::default();
    assert!(
        r.lockout_after < d.routing.lockout_after,
        "the lock-out is stricter than the default"
    );
    assert!(r.lockout_secs > d.routing.lockout_secs);
    assert_eq!((r.lockout_after, r.lockout_secs, r.lockout_max_secs), (3, 300, 21600));
    assert_eq!(
        (
            c.conference.pin_attempts,
            c.conference.lobby_timeout_secs,
            c.conference.max_speakers
        ),
        (2, 120, 4)
    );
    assert_eq!(c.loopback, d.loopback);
}

#[test]
fn key_lines_parser_sees_sections_and_commented_keys() {
    let text = "# header = 1\n[a]\n# Doc.\n# Default: 1\nx = 1\n# y = \"v\"\n\n[b]\n#   z    prose\n# [[b.c]]\n# name = \"n\"\n";
    let lines = key_lines(text);
    let a = &lines["a"];
    assert!(!a["x"][0].commented && a["x"][0].doc.len() == 2);
    assert!(a["y"][0].commented && a["y"][0].doc.is_empty());
    assert!(lines.get("b").is_none_or(|b| b.is_empty()));
    assert!(lines["b.c"]["name"][0].commented);
    let keys: BTreeSet<&String> = lines.values().flat_map(|s| s.keys()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}
