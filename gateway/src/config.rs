//! Configuration: one TOML file, overridden key by key from the environment.
//!
//! Sources, later ones winning: the embedded defaults (the [`Config`]
//! `Default`s, which `conf/confgate.toml` documents one by one), the file
//! given with `--config` (none: defaults only), and `CONFGATE_<SECTION>__<KEY>`
//! environment variables (`CONFGATE_HTTP__LISTEN=127.0.0.1:18080`; list
//! values take a comma-separated string).
//!
//! Every error names the key, the value and what is allowed; unknown keys are
//! errors, not silently ignored.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "CONFGATE";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "media.advertise",
    "routing.blocked_user_agents",
    "routing.allow",
    "routing.deny",
    "sip.digest_algorithms",
    "sip.websocket_origins",
];

/// A configuration problem: which key, which value, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key '{key}': {problem}")]
pub struct ConfigError {
    /// The dotted key (`http.listen`), or the file when the file itself is bad.
    pub key: String,
    /// What is wrong and what is allowed, including the bad value.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn value(key: &str, value: impl fmt::Display, allowed: &str) -> Self {
        Self::new(key, format!("value '{value}' is not allowed: {allowed}"))
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[sip]`
    pub sip: SipConfig,
    /// `[h323]`
    pub h323: H323Config,
    /// `[media]`
    pub media: MediaConfig,
    /// `[relay]`
    pub relay: RelayConfig,
    /// `[federation]`
    pub federation: FederationConfig,
    /// `[routing]`
    pub routing: RoutingConfig,
    /// `[conference]`
    pub conference: ConferenceConfig,
    /// `[loopback]`
    pub loopback: LoopbackConfig,
}

/// `[server]`: identity, state and process behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The `@server` part of account ids. Default: the host name.
    pub name: String,
    /// Where the state (SQLite database, loopback socket) lives.
    pub data_dir: PathBuf,
    /// Log filter (`info`, `debug`, `confgate=debug,sqlx=warn`, ...).
    pub log: String,
    /// Show phone numbers, URIs and display names in logs.
    pub log_personal_data: bool,
    /// Seconds that calls get to end cleanly on SIGTERM.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: host_name(),
            data_dir: PathBuf::from("./confgate-data"),
            log: "info".into(),
            log_personal_data: false,
            shutdown_grace_secs: 10,
        }
    }
}

/// `[http]`: web client, personal account, admin REST API, metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// `[sip]`: the SIP listener, registrar and calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP listen address (empty: no SIP over UDP).
    pub udp_listen: String,
    /// TCP listen address (empty: no SIP over TCP).
    pub tcp_listen: String,
    /// TLS listen address (empty: no SIP over TLS).
    pub tls_listen: String,
    /// PEM file with the TLS certificate chain (leaf first).
    pub tls_certificate: String,
    /// PEM file with the TLS private key.
    pub tls_private_key: String,
    /// The host (and port) put in Via, Contact and SDP-less headers; empty:
    /// the first media advertise address and the UDP port.
    pub advertise: String,
    /// RFC 3261 timer T1 (round-trip estimate), milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 timer T2 (longest retransmit interval), milliseconds.
    pub t2_ms: u64,
    /// RFC 3261 timer T4 (longest time a message stays in the network), milliseconds.
    pub t4_ms: u64,
    /// Shortest registration accepted, seconds (shorter: 423).
    pub min_expires: u32,
    /// Longest registration granted, seconds (longer requests are cut to this).
    pub max_expires: u32,
    /// Registration time when the phone asks for none, seconds.
    pub default_expires: u32,
    /// Most registered contacts per account.
    pub max_contacts: usize,
    /// How long a digest nonce stays valid, seconds.
    pub nonce_lifetime_secs: u64,
    /// Digest algorithms offered in challenges, in this order (`MD5`, `SHA-256`).
    pub digest_algorithms: Vec<String>,
    /// Most SIP transactions in progress; more get 503 with Retry-After.
    pub max_transactions: usize,
    /// New requests (out of dialog: INVITE, REGISTER, OPTIONS, ...) taken
    /// per second from one source address; over it, at most one 503 with
    /// Retry-After a second, the rest dropped. Trunk addresses are not limited.
    /// 0: no limit.
    pub max_requests_per_source: u32,
    /// Session timer interval offered and accepted (RFC 4028), seconds.
    pub session_expires: u32,
    /// Shortest session timer interval accepted (RFC 4028 Min-SE), seconds.
    pub min_se: u32,
    /// SIP trunks (`[[sip.trunks]]`): providers that calls go out through
    /// (gateway routes with target `sip:<name>`) and come in from.
    pub trunks: Vec<TrunkConfig>,
    /// Serve SIP over WebSocket (RFC 7118) at `/sip` on the HTTP listener.
    pub websocket: bool,
    /// Browser origins (`https://phone.example.com`) allowed to open the SIP
    /// WebSocket besides the server's own; `*` allows any.
    pub websocket_origins: Vec<String>,
}

/// `[[sip.trunks]]`: a SIP provider or PBX.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The trunk's name (routes say `sip:<name>`).
    pub name: String,
    /// The provider's SIP server, `host[:port]` (port 5060 when absent).
    pub host: String,
    /// `udp` or `tcp`.
    #[serde(default = "default_trunk_transport")]
    pub transport: String,
    /// Where requests are sent instead of `host` (`host[:port]`), if set.
    #[serde(default)]
    pub outbound_proxy: String,
    /// Digest user name at the provider (empty: no authentication).
    #[serde(default)]
    pub username: String,
    /// Digest password at the provider.
    #[serde(default)]
    pub password: String,
    /// The domain in From, To and Request-URIs towards the provider
    /// (default: `host` without its port).
    #[serde(default)]
    pub domain: String,
    /// Register to the provider (RFC 3261 §10) and keep the registration.
    #[serde(default)]
    pub register: bool,
    /// Registration time asked for, seconds.
    #[serde(default = "default_trunk_expires")]
    pub register_expires: u32,
    /// Addresses (CIDR) whose calls are taken as coming from this trunk:
    /// not challenged, named by their calling number.
    #[serde(default)]
    pub inbound_from: Vec<String>,
}

fn default_trunk_transport() -> String {
    "udp".into()
}

fn default_trunk_expires() -> u32 {
    3600
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp_listen: "0.0.0.0:5060".into(),
            tcp_listen: "0.0.0.0:5060".into(),
            tls_listen: String::new(),
            tls_certificate: String::new(),
            tls_private_key: String::new(),
            advertise: String::new(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            nonce_lifetime_secs: 300,
            digest_algorithms: vec!["MD5".into()],
            max_transactions: 100_000,
            max_requests_per_source: 200,
            session_expires: 1800,
            min_se: 90,
            trunks: Vec::new(),
            websocket: true,
            websocket_origins: Vec::new(),
        }
    }
}

/// Whether `s` is `host` or `host:port` (a name, an IPv4 address or a
/// bracketed IPv6 address, an optional port 1–65535).
fn valid_host_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => {
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return false;
        }
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
    }
}

/// `[h323]`: the H.323 listener's addresses: call signalling and the RAS
/// gatekeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct H323Config {
    /// Call signalling (H.225.0 over TCP; empty: no H.323).
    pub signalling_listen: String,
    /// RAS (gatekeeper, UDP; empty: no gatekeeper).
    pub ras_listen: String,
    /// Who may register with the gatekeeper.
    pub registration_policy: RegistrationPolicy,
    /// Time to live granted to registrations, in seconds (endpoints asking
    /// for less get what they ask).
    pub registration_ttl_secs: u32,
}

impl Default for H323Config {
    fn default() -> Self {
        Self {
            signalling_listen: "0.0.0.0:1720".into(),
            ras_listen: "0.0.0.0:1719".into(),
            registration_policy: RegistrationPolicy::Accounts,
            registration_ttl_secs: 300,
        }
    }
}

/// `h323.registration_policy`: which RAS registrations are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Every H.323-ID and dialedDigits alias names one existing account,
    /// of type h323 or with a password.
    Accounts,
    /// Any alias registers (a lab or a closed network).
    Open,
}

/// `[media]`: addresses and ports of the media plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address the media sockets bind to.
    pub bind: IpAddr,
    /// Addresses put in SDP and H.245. Empty: the host's non-loopback addresses.
    pub advertise: Vec<IpAddr>,
    /// Lowest media port.
    pub port_min: u16,
    /// Highest media port.
    pub port_max: u16,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            advertise: Vec::new(),
            port_min: 20000,
            port_max: 29999,
        }
    }
}

impl MediaConfig {
    /// The addresses to advertise: the configured ones, or the host's
    /// non-loopback interface addresses.
    pub fn effective_advertise(&self) -> Vec<IpAddr> {
        if !self.advertise.is_empty() {
            return self.advertise.clone();
        }
        let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|ifs| ifs.into_iter().filter(|i| !i.is_loopback()).map(|i| i.ip()).collect())
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }
}

/// `[relay]`: the media relay's workers and control interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// rtpengine `ng` control protocol listen address; empty turns it off.
    pub ng_listen: String,
    /// Forwarding threads; 0: one per core.
    pub workers: usize,
    /// Seconds without media or signalling after which an ng call is deleted.
    pub timeout_secs: u64,
    /// Most ng calls at once.
    pub max_calls: usize,
    /// Send media to IPv4 peers through one raw socket per worker, a
    /// round's datagrams in one system call; needs `CAP_NET_RAW` (without
    /// it, each media socket sends its own).
    pub raw_send: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            ng_listen: "127.0.0.1:2223".into(),
            workers: 0,
            timeout_secs: 60,
            max_calls: 10_000,
            raw_send: true,
        }
    }
}

/// `[federation]`: calls between confgate servers over QUIC (not served in
/// this release; validated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// QUIC listen address.
    pub listen: SocketAddr,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 4307)),
        }
    }
}

/// `[routing]`: who may call, and the abuse checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Accept calls from callers who are not logged in (guests with a display name).
    pub allow_anonymous: bool,
    /// Offer the voice menu (conference id, then PIN) to callers who dial
    /// nothing or an unknown number, on protocols that can carry digits.
    pub ivr: bool,
    /// Longest dial string accepted, in bytes.
    pub max_dial_string: usize,
    /// Failed PINs or passwords from one source address, or against one
    /// target, before it is locked out.
    pub lockout_after: u32,
    /// First lock-out, in seconds; each further lock-out doubles it.
    pub lockout_secs: u64,
    /// Longest lock-out, in seconds.
    pub lockout_max_secs: u64,
    /// User agents refused outright (substring match, case-insensitive).
    pub blocked_user_agents: Vec<String>,
    /// Caller networks allowed (CIDR). Empty: all.
    pub allow: Vec<String>,
    /// Caller networks refused (CIDR); checked after `allow`.
    pub deny: Vec<String>,
    /// Gateway routes, first match wins.
    pub routes: Vec<RouteConfig>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            ivr: true,
            max_dial_string: 256,
            lockout_after: 5,
            lockout_secs: 30,
            lockout_max_secs: 3600,
            blocked_user_agents: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// `[[routing.routes]]`: a dialed number that matches goes out through a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name, for logs.
    pub name: String,
    /// Digits the number starts with (`prefix` or `pattern`, not both).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Regular expression the whole number matches (`prefix` or `pattern`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Digits removed from the front before sending.
    #[serde(default)]
    pub strip: usize,
    /// Digits added in front after stripping.
    #[serde(default)]
    pub prepend: String,
    /// Where the call goes: `sip:<trunk name>` or `h323:<host[:port]>`.
    pub target: String,
}

/// `[conference]`: room behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConferenceConfig {
    /// PIN attempts before a join attempt ends.
    pub pin_attempts: u32,
    /// Seconds a guest waits in the lobby before the wait ends.
    pub lobby_timeout_secs: u64,
    /// Loudest speakers mixed at once.
    pub max_speakers: usize,
}

impl Default for ConferenceConfig {
    fn default() -> Self {
        Self {
            pin_attempts: 3,
            lobby_timeout_secs: 300,
            max_speakers: 3,
        }
    }
}

/// `[loopback]`: local endpoints over a unix socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopbackConfig {
    /// Serve the loopback socket.
    pub enabled: bool,
    /// Socket path; empty: `loopback.sock` in `server.data_dir`.
    pub socket: String,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: String::new(),
        }
    }
}

impl LoopbackConfig {
    /// The socket path, resolved against the data directory.
    pub fn socket_path(&self, data_dir: &Path) -> PathBuf {
        if self.socket.is_empty() {
            data_dir.join("loopback.sock")
        } else {
            PathBuf::from(&self.socket)
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && call::validate_server(s).is_ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    /// Loads the file (if any) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    path.display().to_string(),
                    "the configuration file does not exist",
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        let vars: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        let mut environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(vars));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let built = builder.add_source(environment).build().map_err(|e| match e {
            config::ConfigError::FileParse { uri, cause } => {
                ConfigError::new(uri.unwrap_or_else(|| "file".into()), format!("not valid TOML: {cause}"))
            }
            other => ConfigError::new("file", other.to_string()),
        })?;
        let cfg: Config = serde_path_to_error::deserialize(built.clone()).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = inner.split(" for key `").next().unwrap_or(&inner).to_string();
            // serde's type errors name the value; parse errors (addresses) do not: add it.
            let problem = match built.get_string(&key) {
                Ok(v) if !inner.contains(&v) => format!("value '{v}' is not allowed: {inner}"),
                _ => inner,
            };
            ConfigError::new(if key == "." { "(top level)".into() } else { key }, problem)
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate_sip(&self) -> Result<(), ConfigError> {
        let sip = &self.sip;
        if !sip.udp_listen.is_empty() && sip.udp_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::value(
                "sip.udp_listen",
                &sip.udp_listen,
                "an IP address and a port (\"0.0.0.0:5060\"), or empty for no SIP over UDP",
            ));
        }
        if !sip.tls_listen.is_empty() {
            if sip.udp_listen.is_empty() {
                return Err(ConfigError::value(
                    "sip.tls_listen",
                    &sip.tls_listen,
                    "empty while sip.udp_listen is empty (SIP over TLS is served alongside SIP over UDP)",
                ));
            }
            if sip.tls_listen.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::value(
                    "sip.tls_listen",
                    &sip.tls_listen,
                    "an IP address and a port (\"0.0.0.0:5061\"), or empty for no SIP over TLS",
                ));
            }
            if sip.tls_certificate.is_empty() {
                return Err(ConfigError::new(
                    "sip.tls_certificate",
                    "a PEM file is needed when sip.tls_listen is set",
                ));
            }
            if sip.tls_private_key.is_empty() {
                return Err(ConfigError::new(
                    "sip.tls_private_key",
                    "a PEM file is needed when sip.tls_listen is set",
                ));
            }
        }
        if !sip.tcp_listen.is_empty() && sip.udp_listen.is_empty() {
            return Err(ConfigError::value(
                "sip.tcp_listen",
                &sip.tcp_listen,
                "empty while sip.udp_listen is empty (SIP over TCP is served alongside SIP over UDP)",
            ));
        }
        if !sip.tcp_listen.is_empty() && sip.tcp_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::value(
                "sip.tcp_listen",
                &sip.tcp_listen,
                "an IP address and a port (\"0.0.0.0:5060\"), or empty for no SIP over TCP",
            ));
        }
        if !sip.advertise.is_empty() && sip.advertise.chars().any(|c| c.is_whitespace() || c == ';' || c == ',') {
            return Err(ConfigError::value(
                "sip.advertise",
                &sip.advertise,
                "a host name or IP address, optionally with :port",
            ));
        }
        if !(50..=10_000).contains(&sip.t1_ms) {
            return Err(ConfigError::value("sip.t1_ms", sip.t1_ms, "50 to 10000"));
        }
        if sip.t2_ms < sip.t1_ms || sip.t2_ms > 60_000 {
            return Err(ConfigError::value(
                "sip.t2_ms",
                sip.t2_ms,
                "at least sip.t1_ms, at most 60000",
            ));
        }
        if !(sip.t1_ms..=60_000).contains(&sip.t4_ms) {
            return Err(ConfigError::value(
                "sip.t4_ms",
                sip.t4_ms,
                "at least sip.t1_ms, at most 60000",
            ));
        }
        if !(1..=86_400).contains(&sip.min_expires) {
            return Err(ConfigError::value("sip.min_expires", sip.min_expires, "1 to 86400"));
        }
        if sip.max_expires < sip.min_expires || sip.max_expires > 604_800 {
            return Err(ConfigError::value(
                "sip.max_expires",
                sip.max_expires,
                "at least sip.min_expires, at most 604800",
            ));
        }
        if !(sip.min_expires..=sip.max_expires).contains(&sip.default_expires) {
            return Err(ConfigError::value(
                "sip.default_expires",
                sip.default_expires,
                "between sip.min_expires and sip.max_expires",
            ));
        }
        if !(1..=100).contains(&sip.max_contacts) {
            return Err(ConfigError::value("sip.max_contacts", sip.max_contacts, "1 to 100"));
        }
        if !(10..=86_400).contains(&sip.nonce_lifetime_secs) {
            return Err(ConfigError::value(
                "sip.nonce_lifetime_secs",
                sip.nonce_lifetime_secs,
                "10 to 86400",
            ));
        }
        let mut seen = Vec::new();
        for a in &sip.digest_algorithms {
            let norm = a.trim().to_ascii_uppercase();
            if !matches!(norm.as_str(), "MD5" | "SHA-256") || seen.contains(&norm) {
                return Err(ConfigError::value(
                    "sip.digest_algorithms",
                    sip.digest_algorithms.join(","),
                    "a list of distinct digest algorithms out of \"MD5\" and \"SHA-256\"",
                ));
            }
            seen.push(norm);
        }
        if seen.is_empty() {
            return Err(ConfigError::value(
                "sip.digest_algorithms",
                "",
                "at least one of \"MD5\" and \"SHA-256\"",
            ));
        }
        if sip.max_requests_per_source > 1_000_000 {
            return Err(ConfigError::value(
                "sip.max_requests_per_source",
                sip.max_requests_per_source,
                "0 (no limit) to 1000000",
            ));
        }
        if !(16..=1_000_000).contains(&sip.max_transactions) {
            return Err(ConfigError::value(
                "sip.max_transactions",
                sip.max_transactions,
                "16 to 1000000",
            ));
        }
        // RFC 4028 §4: Min-SE is at least 90 seconds.
        if !(90..=86_400).contains(&sip.min_se) {
            return Err(ConfigError::value("sip.min_se", sip.min_se, "90 to 86400"));
        }
        if sip.session_expires < sip.min_se || sip.session_expires > 86_400 {
            return Err(ConfigError::value(
                "sip.session_expires",
                sip.session_expires,
                "at least sip.min_se, at most 86400",
            ));
        }
        for o in &sip.websocket_origins {
            let o = o.trim();
            let well_formed = o == "*"
                || o.split_once("://").is_some_and(|(scheme, host)| {
                    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
                        && valid_host_port(host.trim_end_matches('/'))
                });
            if !well_formed {
                return Err(ConfigError::value(
                    "sip.websocket_origins",
                    o,
                    "a list of browser origins (\"https://phone.example.com\", with an optional :port) or \"*\" for any",
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, t) in sip.trunks.iter().enumerate() {
            let key = |k: &str| format!("sip.trunks[{i}].{k}");
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !name_ok || !names.insert(t.name.clone()) {
                return Err(ConfigError::value(
                    &key("name"),
                    &t.name,
                    "a unique name of letters, digits, '-', '_' and '.'",
                ));
            }
            if !valid_host_port(&t.host) {
                return Err(ConfigError::value(
                    &key("host"),
                    &t.host,
                    "a host name or IP address, optionally with :port",
                ));
            }
            if !t.outbound_proxy.is_empty() && !valid_host_port(&t.outbound_proxy) {
                return Err(ConfigError::value(
                    &key("outbound_proxy"),
                    &t.outbound_proxy,
                    "empty, or a host name or IP address, optionally with :port",
                ));
            }
            if !matches!(t.transport.as_str(), "udp" | "tcp") {
                return Err(ConfigError::value(
                    &key("transport"),
                    &t.transport,
                    "\"udp\" or \"tcp\"",
                ));
            }
            if !t.domain.is_empty() && !valid_host_port(&t.domain) {
                return Err(ConfigError::value(
                    &key("domain"),
                    &t.domain,
                    "empty, or a host or domain name",
                ));
            }
            if t.register && (t.username.is_empty() || t.password.is_empty()) {
                return Err(ConfigError::new(
                    key("register"),
                    "registering to the provider needs 'username' and 'password'",
                ));
            }
            if t.username
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '@' || c.is_whitespace())
            {
                return Err(ConfigError::value(
                    &key("username"),
                    &t.username,
                    "a user name without spaces, quotes or '@'",
                ));
            }
            if !(60..=86_400).contains(&t.register_expires) {
                return Err(ConfigError::value(
                    &key("register_expires"),
                    t.register_expires,
                    "60 to 86400",
                ));
            }
            for net in &t.inbound_from {
                if crate::router::IpNet::parse(net).is_none() {
                    return Err(ConfigError::value(
                        &key("inbound_from"),
                        net,
                        "networks in CIDR form, like 192.0.2.0/24, or single addresses",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the rules that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if call::validate_server(&self.server.name).is_err() {
            return Err(ConfigError::value(
                "server.name",
                &self.server.name,
                "a host or domain name (letters, digits, '-' in dot-separated labels, at most 253 characters)",
            ));
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::value("server.data_dir", "", "a directory path"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.server.log) {
            return Err(ConfigError::value(
                "server.log",
                &self.server.log,
                &format!("a log filter ({e})"),
            ));
        }
        if !(1..=3600).contains(&self.server.shutdown_grace_secs) {
            return Err(ConfigError::value(
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
                "1 to 3600",
            ));
        }
        self.validate_sip()?;
        if !self.h323.signalling_listen.is_empty() && self.h323.signalling_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::value(
                "h323.signalling_listen",
                &self.h323.signalling_listen,
                "an IP address and a port (\"0.0.0.0:1720\"), or empty for no H.323",
            ));
        }
        if !self.h323.ras_listen.is_empty() && self.h323.ras_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::value(
                "h323.ras_listen",
                &self.h323.ras_listen,
                "an IP address and a port (\"0.0.0.0:1719\"), or empty for no gatekeeper",
            ));
        }
        if !(30..=86_400).contains(&self.h323.registration_ttl_secs) {
            return Err(ConfigError::value(
                "h323.registration_ttl_secs",
                self.h323.registration_ttl_secs,
                "30 to 86400",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.http.max_body_bytes) {
            return Err(ConfigError::value(
                "http.max_body_bytes",
                self.http.max_body_bytes,
                "1024 to 16777216",
            ));
        }
        let m = &self.media;
        if m.port_min < 1024 || !m.port_min.is_multiple_of(2) {
            return Err(ConfigError::value(
                "media.port_min",
                m.port_min,
                "an even port from 1024 to 65534",
            ));
        }
        if m.port_max < m.port_min.saturating_add(1) {
            return Err(ConfigError::value(
                "media.port_max",
                m.port_max,
                &format!("a port above media.port_min ({})", m.port_min),
            ));
        }
        if let Some(a) = m.advertise.iter().find(|a| a.is_unspecified() || a.is_multicast()) {
            return Err(ConfigError::value(
                "media.advertise",
                a,
                "unicast addresses peers can reach",
            ));
        }
        if !self.relay.ng_listen.is_empty() && self.relay.ng_listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::value(
                "relay.ng_listen",
                &self.relay.ng_listen,
                "a socket address like 127.0.0.1:2223, or empty to turn it off",
            ));
        }
        if self.relay.workers > 256 {
            return Err(ConfigError::value(
                "relay.workers",
                self.relay.workers,
                "0 (one per core) to 256",
            ));
        }
        if !(5..=86_400).contains(&self.relay.timeout_secs) {
            return Err(ConfigError::value(
                "relay.timeout_secs",
                self.relay.timeout_secs,
                "5 to 86400",
            ));
        }
        if !(1..=1_000_000).contains(&self.relay.max_calls) {
            return Err(ConfigError::value(
                "relay.max_calls",
                self.relay.max_calls,
                "1 to 1000000",
            ));
        }
        if m.bind.is_multicast() {
            return Err(ConfigError::value(
                "media.bind",
                m.bind,
                "a local unicast address, or 0.0.0.0 / :: for all",
            ));
        }
        let r = &self.routing;
        if !(16..=4096).contains(&r.max_dial_string) {
            return Err(ConfigError::value(
                "routing.max_dial_string",
                r.max_dial_string,
                "16 to 4096",
            ));
        }
        if !(1..=1000).contains(&r.lockout_after) {
            return Err(ConfigError::value(
                "routing.lockout_after",
                r.lockout_after,
                "1 to 1000",
            ));
        }
        if r.lockout_secs == 0 || r.lockout_secs > r.lockout_max_secs {
            return Err(ConfigError::value(
                "routing.lockout_secs",
                r.lockout_secs,
                "1 second up to routing.lockout_max_secs",
            ));
        }
        for (key, nets) in [("routing.allow", &r.allow), ("routing.deny", &r.deny)] {
            for net in nets {
                if crate::router::IpNet::parse(net).is_none() {
                    return Err(ConfigError::value(
                        key,
                        net,
                        "networks in CIDR form, like 192.0.2.0/24 or 2001:db8::/32",
                    ));
                }
            }
        }
        let mut names = BTreeSet::new();
        for (i, route) in r.routes.iter().enumerate() {
            let key = |k: &str| format!("routing.routes[{i}].{k}");
            if route.name.is_empty() || !names.insert(route.name.clone()) {
                return Err(ConfigError::value(
                    &key("name"),
                    &route.name,
                    "a unique, non-empty name",
                ));
            }
            match (&route.prefix, &route.pattern) {
                (Some(p), None) => {
                    if p.is_empty() || p.len() > 32 || !p.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
                        return Err(ConfigError::value(
                            &key("prefix"),
                            p,
                            "1 to 32 digits (a leading '+' allowed)",
                        ));
                    }
                }
                (None, Some(p)) => {
                    if crate::router::DigitPattern::parse(p).is_none() {
                        return Err(ConfigError::value(
                            &key("pattern"),
                            p,
                            "digits, 'X' (any digit), '[0-9]' classes, '.' (one or more further digits) — e.g. 8XXXXXXXXXX or 00.",
                        ));
                    }
                }
                _ => {
                    return Err(ConfigError::new(
                        key("prefix"),
                        "give exactly one of 'prefix' or 'pattern'",
                    ));
                }
            }
            if !route.prepend.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
                return Err(ConfigError::value(
                    &key("prepend"),
                    &route.prepend,
                    "digits (a leading '+' allowed)",
                ));
            }
            let target_ok = match route.target.split_once(':') {
                Some(("sip", trunk)) => !trunk.is_empty(),
                Some(("h323", host)) => !host.is_empty(),
                _ => false,
            };
            if !target_ok {
                return Err(ConfigError::value(
                    &key("target"),
                    &route.target,
                    "'sip:<trunk>' or 'h323:<host[:port]>'",
                ));
            }
        }
        let c = &self.conference;
        if !(1..=10).contains(&c.pin_attempts) {
            return Err(ConfigError::value("conference.pin_attempts", c.pin_attempts, "1 to 10"));
        }
        if !(5..=86_400).contains(&c.lobby_timeout_secs) {
            return Err(ConfigError::value(
                "conference.lobby_timeout_secs",
                c.lobby_timeout_secs,
                "5 to 86400",
            ));
        }
        if !(1..=16).contains(&c.max_speakers) {
            return Err(ConfigError::value("conference.max_speakers", c.max_speakers, "1 to 16"));
        }
        // A route to a trunk names one that exists.
        for (i, route) in self.routing.routes.iter().enumerate() {
            if let Some(("sip", trunk)) = route.target.split_once(':') {
                if !self.sip.trunks.iter().any(|t| t.name == trunk) {
                    return Err(ConfigError::value(
                        &format!("routing.routes[{i}].target"),
                        &route.target,
                        "a 'sip:<trunk>' target names one of the [[sip.trunks]]",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// What a reload may apply: `newer` with every section that needs a
    /// restart kept as it runs now, and the names of those that changed.
    pub fn reloadable_from(&self, newer: &Config) -> (Config, Vec<&'static str>) {
        let mut applied = newer.clone();
        let mut restart = Vec::new();
        macro_rules! keep {
            ($($field:ident).+ => $name:literal) => {
                if applied.$($field).+ != self.$($field).+ {
                    restart.push($name);
                    applied.$($field).+ = self.$($field).+.clone();
                }
            };
        }
        keep!(server.name => "server.name");
        keep!(server.data_dir => "server.data_dir");
        keep!(http => "http");
        keep!(sip => "sip");
        keep!(h323 => "h323");
        keep!(media => "media");
        keep!(relay => "relay");
        keep!(federation => "federation");
        keep!(loopback => "loopback");
        (applied, restart)
    }

    /// Keys whose change needs a restart, comparing with a newer configuration.
    pub fn restart_needed_for(&self, newer: &Config) -> Vec<&'static str> {
        self.reloadable_from(newer).1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn websocket_origins_are_origins() {
        let c = load_str(
            "[sip]\nwebsocket_origins = [\"https://phone.example.com\", \"http://10.0.0.1:8080/\"]\n",
            &[],
        )
        .unwrap();
        assert!(c.sip.websocket, "SIP over WebSocket is on by default");
        assert_eq!(c.sip.websocket_origins.len(), 2);
        let c = load_str("", &[("CONFGATE_SIP__WEBSOCKET_ORIGINS", "*")]).unwrap();
        assert_eq!(c.sip.websocket_origins, ["*"]);
        for bad in ["phone.example.com", "ftp://x.example", "https://", "https://a b"] {
            let e = load_str(&format!("[sip]\nwebsocket_origins = [\"{bad}\"]\n"), &[]).unwrap_err();
            assert_eq!(e.key, "sip.websocket_origins", "{bad}");
            assert!(e.problem.contains(bad), "{e}");
        }
    }

    #[test]
    fn routes_name_existing_trunks_and_trunks_are_checked() {
        let e = load_str(
            "[[routing.routes]]\nname = \"a\"\nprefix = \"9\"\ntarget = \"sip:nope\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "routing.routes[0].target");
        let ok = "[[sip.trunks]]\nname = \"carrier\"\nhost = \"sip.example:5080\"\n\
                  [[routing.routes]]\nname = \"a\"\nprefix = \"9\"\ntarget = \"sip:carrier\"\n";
        let c = load_str(ok, &[]).unwrap();
        assert_eq!(c.sip.trunks[0].transport, "udp");
        let e = load_str("[[sip.trunks]]\nname = \"t\"\nhost = \"bad host\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "sip.trunks[0].host");
        let e = load_str("[[sip.trunks]]\nname = \"t\"\nhost = \"h\"\nregister = true\n", &[]).unwrap_err();
        assert_eq!(e.key, "sip.trunks[0].register");
        let e = load_str(
            "[[sip.trunks]]\nname = \"t\"\nhost = \"h\"\ninbound_from = [\"x\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "sip.trunks[0].inbound_from");
    }

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("confgate-cfg-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let r = Config::load_from(Some(&file), env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        std::fs::remove_dir_all(&dir).ok();
        r
    }

    #[test]
    fn defaults_are_valid_and_documented_ports() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.sip.udp_listen, "0.0.0.0:5060");
        assert_eq!(c.h323.signalling_listen, "0.0.0.0:1720");
        assert_eq!(c.h323.ras_listen, "0.0.0.0:1719");
        assert_eq!(c.federation.listen.port(), 4307);
        assert_eq!((c.media.port_min, c.media.port_max), (20000, 29999));
        assert_eq!(c.relay.ng_listen, "127.0.0.1:2223");
        assert_eq!(c.server.data_dir, PathBuf::from("./confgate-data"));
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "[http]\nlisten = \"127.0.0.1:9000\"\n",
            &[
                ("CONFGATE_HTTP__LISTEN", "127.0.0.1:18080"),
                ("CONFGATE_SERVER__NAME", "video.example.com"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(c.server.name, "video.example.com");
    }

    #[test]
    fn env_list_is_comma_separated() {
        let c = load_str("", &[("CONFGATE_MEDIA__ADVERTISE", "192.0.2.1,2001:db8::1")]).unwrap();
        assert_eq!(
            c.media.advertise,
            vec!["192.0.2.1".parse::<IpAddr>().unwrap(), "2001:db8::1".parse().unwrap()]
        );
        assert_eq!(c.media.effective_advertise(), c.media.advertise);
    }

    #[test]
    fn env_data_dir_with_underscore_key() {
        let c = load_str("", &[("CONFGATE_SERVER__DATA_DIR", "/tmp/x")]).unwrap();
        assert_eq!(c.server.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_str("[server]\nnmae = \"x\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.nmae");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = load_str("[serverr]\n", &[]).unwrap_err();
        assert_eq!(e.key, "serverr");
        let e = load_str("", &[("CONFGATE_HTTP__LISTN", "1.2.3.4:5")]).unwrap_err();
        assert_eq!(e.key, "http.listn");
    }

    #[test]
    fn bad_values_are_named_with_value_and_rule() {
        let e = load_str("[http]\nlisten = \"nowhere\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "http.listen");
        assert!(e.to_string().contains("nowhere"), "{e}");
        let e = load_str("[media]\nport_min = 30001\n", &[]).unwrap_err();
        assert_eq!(e.key, "media.port_min");
        assert!(e.to_string().contains("30001") && e.to_string().contains("even"), "{e}");
        let e = load_str("[media]\nport_min = 20000\nport_max = 1000\n", &[]).unwrap_err();
        assert_eq!(e.key, "media.port_max");
        let e = load_str("[media]\nport_max = 70000\n", &[]).unwrap_err();
        assert_eq!(e.key, "media.port_max");
        let e = load_str("[server]\nname = \"bad name!\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "server.name");
        let e = load_str("[relay]\nng_listen = \"x\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "relay.ng_listen");
        let e = load_str("[[routing.routes]]\nname = \"a\"\ntarget = \"sip:t\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "routing.routes[0].prefix");
        let e = load_str(
            "[[routing.routes]]\nname = \"a\"\nprefix = \"9\"\ntarget = \"ftp:x\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "routing.routes[0].target");
        let e = load_str("[routing]\ndeny = [\"10.0.0.0/33\"]\n", &[]).unwrap_err();
        assert_eq!(e.key, "routing.deny");
        let e = load_str("[routing]\nallow_anonymous = \"maybe\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "routing.allow_anonymous");
        assert!(e.to_string().contains("maybe"), "{e}");
    }

    #[test]
    fn not_toml_is_an_error_naming_the_file() {
        let e = load_str("[http\n", &[]).unwrap_err();
        assert!(e.key.ends_with("c.toml"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Config::load_from(Some(Path::new("/nonexistent/confgate.toml")), Vec::new()).unwrap_err();
        assert!(e.problem.contains("does not exist"));
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let c = Config::load_from(None, Vec::new()).unwrap();
        let text = c.to_toml();
        let back = load_str(&text, &[]).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn restart_needed_lists_changed_sections() {
        let a = Config::default();
        let mut b = a.clone();
        b.server.log = "debug".into();
        b.routing.allow_anonymous = false;
        assert!(a.restart_needed_for(&b).is_empty());
        b.http.listen = "127.0.0.1:1".parse().unwrap();
        assert_eq!(a.restart_needed_for(&b), vec!["http"]);
        let (applied, restart) = a.reloadable_from(&b);
        assert_eq!(restart, vec!["http"]);
        assert_eq!(applied.http, a.http, "the running listener is kept");
        assert_eq!(applied.server.log, "debug", "reloadable keys are taken");
        assert!(!applied.routing.allow_anonymous);
    }
}
