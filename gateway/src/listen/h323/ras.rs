//! The RAS listener (H.225.0 §7 on UDP `h323.ras_listen`): one task owning
//! the socket and `confgate-h323`'s sans-IO [`Gatekeeper`].
//!
//! The task feeds the gatekeeper each datagram and the clock, sends what it
//! says to send, and answers its [`Event::Authorize`] requests with the
//! registration policy (`h323.registration_policy`), looked up in the
//! directory by a spawned task so that a slow lookup never holds up other
//! endpoints:
//! - `accounts` (the default): every H.323-ID alias names one and the same
//!   existing account, of type `h323` or with a password, and there is at
//!   least one; a dialedDigits alias names that account or no account at
//!   all. No such account: RRJ `invalidAlias`; an account of another type
//!   without a password: RRJ `securityDenial`.
//! - `open`: any alias registers; the registration counts for the account
//!   its first alias names, if any.
//!
//! H.235 password tokens (the endpoint's MD5 password hash, H.235.1
//! procedure I; `confgate-h323`'s `h235`): where an RRQ carries one, the
//! verdict gives the account's H.235 password and the gatekeeper checks the
//! token against it; with the `accounts` policy a token that cannot be
//! checked (no H.235 password for the account) is refused with
//! `securityDenial`, with `open` it is ignored. A registration that proved
//! its password must prove it in its later requests too. Each refused token
//! counts as a failed password for the source address and the alias (the
//! abuse guard's lock-out), and a locked-out source registers no more until
//! its lock-out ends.
//!
//! H.235 passwords are read from the file `h235-passwords` in the state
//! directory (`server.data_dir`): one `<account> <password>` per line, `#`
//! comments; the file must not be readable by group or others. (The
//! password hash needs the password itself on both sides; account passwords
//! are only kept as one-way hashes.)
//!
//! Live registrations are published in a process-wide table: the count per
//! account that [`crate::calls`] counts as reachable endpoints
//! ([`registered_endpoints`]), the accounts their aliases name
//! ([`account_of_alias`]), and where to call them ([`call_targets`]).
//! Admissions to place calls (ARQ → ACF) are kept a short while
//! ([`ADMISSION_TTL`]) so that the Setup that follows is taken as the
//! registration's account ([`admitted_caller`]).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use h323::h235::Procedure;
use h323::ras::{Alias, Config as GatekeeperConfig, Event, Gatekeeper, Output, Refusal, Verdict};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::config::RegistrationPolicy;
use crate::directory::AccountType;
use crate::state::Shared;

/// Largest RAS datagram read.
const MAX_DATAGRAM: usize = 8192;
/// Most verdicts being looked up at once (the gatekeeper bounds them too).
const VERDICT_QUEUE: usize = 256;

/// The file of H.235 passwords in the state directory.
pub const PASSWORD_FILE: &str = "h235-passwords";
/// How long an admission waits for its Setup.
pub const ADMISSION_TTL: Duration = Duration::from_secs(60);
/// Most admissions waiting for their Setup.
const MAX_ADMISSIONS: usize = 4096;

/// A live registration, as published.
#[derive(Debug, Clone)]
struct Live {
    account: Option<String>,
    aliases: Vec<Alias>,
    call_signal_address: Option<SocketAddr>,
    /// Publication order (newest registrations are called first).
    serial: u64,
}

#[derive(Debug, Default)]
struct Table {
    live: BTreeMap<String, Live>,
    serial: u64,
}

/// Live H.323 registrations by endpoint identifier.
static REGISTRATIONS: Mutex<Table> = Mutex::new(Table {
    live: BTreeMap::new(),
    serial: 0,
});

/// An admission to place a call, waiting for its Setup.
#[derive(Debug, Clone)]
struct Admission {
    account: Option<String>,
    source: IpAddr,
    expires: Instant,
}

/// Admissions by call identifier (else conference identifier).
static ADMISSIONS: Mutex<Option<HashMap<[u8; 16], Admission>>> = Mutex::new(None);

fn table() -> std::sync::MutexGuard<'static, Table> {
    REGISTRATIONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many H.323 endpoints are registered now for the account `user`.
pub fn registered_endpoints(user: &str) -> usize {
    table()
        .live
        .values()
        .filter(|l| l.account.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(user)))
        .count()
}

/// The account a registered alias belongs to (H.323-IDs without regard to
/// case), if an endpoint registered it for an account.
pub fn account_of_alias(alias: &str) -> Option<String> {
    table()
        .live
        .values()
        .filter(|l| l.aliases.iter().any(|a| same_alias(a, alias)))
        .max_by_key(|l| l.serial)
        .and_then(|l| l.account.clone())
}

/// Where the registered endpoints of `user` are called, newest
/// registration first, each with its aliases.
pub fn call_targets(user: &str) -> Vec<(SocketAddr, Vec<Alias>)> {
    let t = table();
    let mut found: Vec<&Live> = t
        .live
        .values()
        .filter(|l| l.account.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(user)))
        .collect();
    found.sort_by_key(|l| std::cmp::Reverse(l.serial));
    found
        .into_iter()
        .filter_map(|l| l.call_signal_address.map(|a| (a, l.aliases.clone())))
        .collect()
}

/// Whether `alias` is the text `text` (an H.323-ID without regard to case).
pub fn same_alias(alias: &Alias, text: &str) -> bool {
    match alias {
        Alias::H323Id(a) => a.to_lowercase() == text.to_lowercase(),
        Alias::DialedDigits(d) => d == text,
    }
}

fn publish(endpoint: &str, live: Option<Live>) {
    let mut t = table();
    match live {
        Some(mut l) => {
            t.serial += 1;
            l.serial = t.serial;
            t.live.insert(endpoint.to_string(), l);
        }
        None => {
            t.live.remove(endpoint);
        }
    }
}

fn admissions() -> std::sync::MutexGuard<'static, Option<HashMap<[u8; 16], Admission>>> {
    ADMISSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

fn admitted(key: [u8; 16], admission: Admission) {
    let mut guard = admissions();
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    map.retain(|_, a| a.expires > now);
    if map.len() < MAX_ADMISSIONS {
        map.insert(key, admission);
    }
}

/// The account of the registered endpoint admitted to place the call a
/// Setup names (its callIdentifier, else its conferenceID), when the Setup
/// comes from the IP address of that registration. Each admission is taken
/// once.
pub fn admitted_caller(call_identifier: Option<[u8; 16]>, conference_id: [u8; 16], source: IpAddr) -> Option<String> {
    let mut guard = admissions();
    let map = guard.as_mut()?;
    let key = call_identifier.unwrap_or(conference_id);
    let a = map.get(&key)?;
    if a.source != source || a.expires <= Instant::now() {
        return None;
    }
    map.remove(&key).and_then(|a| a.account)
}

/// The H.235 password of `user` from [`PASSWORD_FILE`] in `data_dir`, if
/// the file names one (and is not readable by others).
pub async fn h235_password(data_dir: &Path, user: &str) -> Option<String> {
    let path = data_dir.join(PASSWORD_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = tokio::fs::metadata(&path).await.ok()?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "H.235 password file is readable by others: not used");
            return None;
        }
    }
    let text = tokio::fs::read_to_string(&path).await.ok()?;
    password_in(&text, user)
}

/// The password `text` (the password file) gives `user`.
fn password_in(text: &str, user: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(u, _)| u.eq_ignore_ascii_case(user))
        .map(|(_, p)| p.trim().to_string())
        .filter(|p| !p.is_empty())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Binds the RAS socket.
pub async fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(addr).await
}

/// Where endpoints reach us.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// Our RAS address (GCF, LCF).
    pub ras: SocketAddr,
    /// Our call-signalling address (RCF, ACF, LCF); `None`: not served.
    pub call_signalling: Option<SocketAddr>,
}

/// Serves RAS on `socket` until `stop` turns true.
pub async fn serve(socket: UdpSocket, shared: Shared, addresses: Addresses, mut stop: watch::Receiver<bool>) {
    let cfg = shared.config();
    let mut gk = Gatekeeper::new(GatekeeperConfig {
        gatekeeper_identifier: cfg.server.name.clone(),
        ras_address: addresses.ras,
        call_signal_address: addresses.call_signalling,
        time_to_live: Duration::from_secs(u64::from(cfg.h323.registration_ttl_secs)),
        endpoint_id_salt: rand::random::<u64>(),
        ..GatekeeperConfig::default()
    });
    let policy = cfg.h323.registration_policy;
    let data_dir = cfg.server.data_dir.clone();
    drop(cfg);
    let (verdict_tx, mut verdicts) = mpsc::channel::<(u64, Verdict)>(VERDICT_QUEUE);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ignored: u64 = 0;
    let mut mine: Vec<String> = Vec::new();
    loop {
        while let Some(o) = gk.poll_output() {
            match o {
                Output::Transmit { to, bytes } => {
                    let _ = socket.send_to(&bytes, to).await;
                }
                Output::Event(Event::Authorize {
                    ticket,
                    source,
                    aliases,
                    token,
                }) => {
                    let shared = shared.clone();
                    let tx = verdict_tx.clone();
                    let data_dir = data_dir.clone();
                    tokio::spawn(async move {
                        let verdict = decide(&shared, &data_dir, policy, source.ip(), &aliases, token).await;
                        let shown = match &verdict {
                            Verdict::Accept { account, password } => format!(
                                "accept account={} h235_password={}",
                                account.as_deref().unwrap_or("-"),
                                password.is_some()
                            ),
                            Verdict::Refuse(r) => format!("refuse {r:?}"),
                        };
                        tracing::info!(
                            source = %source,
                            aliases = %call::Pii(aliases.iter().map(Alias::as_str).collect::<Vec<_>>().join(",")),
                            token = ?token,
                            verdict = %shown,
                            "H.323 registration"
                        );
                        let _ = tx.send((ticket, verdict)).await;
                    });
                }
                Output::Event(Event::Registered {
                    endpoint,
                    account,
                    aliases,
                    call_signal_address,
                    authenticated,
                }) => {
                    tracing::info!(endpoint = %endpoint, account = account.as_deref().unwrap_or("-"),
                        call_signal = ?call_signal_address, authenticated, "H.323 endpoint registered");
                    if authenticated {
                        shared
                            .guard
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record_success(call_signal_address.map(|a| a.ip()));
                    }
                    publish(
                        &endpoint,
                        Some(Live {
                            account,
                            aliases,
                            call_signal_address,
                            serial: 0,
                        }),
                    );
                    mine.push(endpoint);
                }
                Output::Event(Event::Unregistered { endpoint, .. }) => {
                    publish(&endpoint, None);
                    mine.retain(|e| e != &endpoint);
                }
                Output::Event(Event::Admitted {
                    account,
                    source,
                    call_identifier,
                    conference_id,
                    ..
                }) => admitted(
                    call_identifier.unwrap_or(conference_id),
                    Admission {
                        account,
                        source,
                        expires: Instant::now() + ADMISSION_TTL,
                    },
                ),
                Output::Event(Event::SecurityDenied { source, sender }) => {
                    tracing::warn!(source = %source, alias = %call::Pii(sender.clone().unwrap_or_default()),
                        "H.323 request refused: H.235 password token wrong, stale, replayed or missing");
                    let target = format!("account:{}", sender.unwrap_or_default().to_ascii_lowercase());
                    let locked = shared.guard.lock().unwrap_or_else(|e| e.into_inner()).record_failure(
                        Some(source.ip()),
                        &target,
                        Instant::now(),
                    );
                    if let Some(d) = locked {
                        tracing::warn!(source = %source, secs = d.as_secs(), "locked out after repeated wrong H.235 passwords");
                    }
                }
            }
        }
        let deadline = gk.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    gk.set_wall_clock(Instant::now(), unix_now());
                    if gk.handle_input(Instant::now(), from, data).is_err() {
                        ignored = ignored.wrapping_add(1);
                    }
                }
                Err(e) => {
                    // ICMP port unreachable from an earlier send, on some systems.
                    tracing::debug!(error = %e, "RAS receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some((ticket, verdict)) = verdicts.recv() => gk.authorize(Instant::now(), ticket, verdict),
            _ = sleep_until(deadline) => gk.handle_timeout(Instant::now()),
            _ = stop.changed() => break,
        }
    }
    for endpoint in std::mem::take(&mut mine) {
        publish(&endpoint, None);
    }
    tracing::debug!(ignored, "RAS listener stopped");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The registration policy's verdict on `aliases` from `source`, with the
/// account's H.235 password when the request carries a `token` (see the
/// module docs).
async fn decide(
    shared: &Shared,
    data_dir: &Path,
    policy: RegistrationPolicy,
    source: IpAddr,
    aliases: &[Alias],
    token: Option<Procedure>,
) -> Verdict {
    let locked = shared
        .guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .locked_source(source, Instant::now());
    if locked.is_some() {
        return Verdict::Refuse(Refusal::SecurityDenial);
    }
    let verdict = judge(shared, policy, aliases).await;
    let Verdict::Accept { account, .. } = verdict else {
        return verdict;
    };
    if token.is_none() {
        return Verdict::Accept {
            account,
            password: None,
        };
    }
    let password = match &account {
        Some(user) => h235_password(data_dir, user).await,
        None => None,
    };
    if password.is_none() && policy == RegistrationPolicy::Accounts {
        // A token we cannot check proves nothing: refused rather than ignored.
        return Verdict::Refuse(Refusal::SecurityDenial);
    }
    Verdict::Accept { account, password }
}

/// The registration policy's verdict on `aliases` alone.
async fn judge(shared: &Shared, policy: RegistrationPolicy, aliases: &[Alias]) -> Verdict {
    let mut account: Option<String> = None;
    let mut eligible = false;
    let mut first_named: Option<String> = None;
    for alias in aliases {
        let found = match shared.directory.lookup_account(alias.as_str()).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "directory lookup failed");
                return Verdict::Refuse(Refusal::ResourceUnavailable);
            }
        };
        if first_named.is_none() {
            first_named = found.as_ref().map(|a| a.user.clone());
        }
        if policy == RegistrationPolicy::Open {
            continue;
        }
        match (alias, found) {
            (Alias::H323Id(_), None) => return Verdict::Refuse(Refusal::InvalidAlias),
            (Alias::DialedDigits(_), None) => {}
            (_, Some(a)) => {
                if account.as_ref().is_some_and(|u| u != &a.user) {
                    // Aliases of two accounts in one registration.
                    return Verdict::Refuse(Refusal::InvalidAlias);
                }
                eligible = a.account_type == AccountType::H323 || a.has_password;
                account = Some(a.user);
            }
        }
    }
    if policy == RegistrationPolicy::Open {
        return Verdict::Accept {
            account: first_named,
            password: None,
        };
    }
    let has_h323_id = aliases.iter().any(|a| matches!(a, Alias::H323Id(_)));
    match account {
        Some(_) if !has_h323_id => Verdict::Refuse(Refusal::InvalidAlias),
        Some(_) if !eligible => Verdict::Refuse(Refusal::SecurityDenial),
        Some(user) => Verdict::Accept {
            account: Some(user),
            password: None,
        },
        None => Verdict::Refuse(Refusal::InvalidAlias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_lines() {
        let text = "# H.235 passwords\n\nroom1  s3cret \nRoom2 other pass\nbroken\nroom3 \n";
        assert_eq!(password_in(text, "room1").as_deref(), Some("s3cret"));
        assert_eq!(password_in(text, "ROOM2").as_deref(), Some("other pass"));
        assert_eq!(password_in(text, "broken"), None);
        assert_eq!(password_in(text, "room3"), None);
        assert_eq!(password_in(text, "nobody"), None);
    }

    #[test]
    fn admissions_are_taken_once_from_their_source() {
        let key = [0x31; 16];
        let ip: IpAddr = [127, 0, 0, 7].into();
        admitted(
            key,
            Admission {
                account: Some("room1".into()),
                source: ip,
                expires: Instant::now() + ADMISSION_TTL,
            },
        );
        assert_eq!(admitted_caller(Some(key), [0; 16], [127, 0, 0, 8].into()), None);
        assert_eq!(admitted_caller(None, [0x32; 16], ip), None);
        assert_eq!(admitted_caller(Some(key), [0; 16], ip).as_deref(), Some("room1"));
        assert_eq!(admitted_caller(Some(key), [0; 16], ip), None);
    }
}
