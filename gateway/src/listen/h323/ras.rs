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
//!   without a password: RRJ `securityDenial`. H.235 password tokens are not
//!   checked (not in this release).
//! - `open`: any alias registers; the registration counts for the account
//!   its first alias names, if any.
//!
//! Live registrations are published per account in a process-wide table
//! ([`registered_endpoints`]) that [`crate::calls`] counts as reachable
//! endpoints. Calling a registered H.323 endpoint (calls out) is not served
//! yet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Live H.323 registrations per account user, for [`registered_endpoints`].
static REGISTERED: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// How many H.323 endpoints are registered now for the account `user`.
pub fn registered_endpoints(user: &str) -> usize {
    let table = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    table.get(&user.to_lowercase()).copied().unwrap_or(0)
}

fn publish(account: &str, delta: isize) {
    let mut table = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    let n = table.entry(account.to_lowercase()).or_insert(0);
    *n = n.saturating_add_signed(delta);
    if *n == 0 {
        table.remove(&account.to_lowercase());
    }
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
    drop(cfg);
    let (verdict_tx, mut verdicts) = mpsc::channel::<(u64, Verdict)>(VERDICT_QUEUE);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ignored: u64 = 0;
    let mut mine: BTreeMap<String, String> = BTreeMap::new();
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
                }) => {
                    let shared = shared.clone();
                    let tx = verdict_tx.clone();
                    tokio::spawn(async move {
                        let verdict = decide(&shared, policy, &aliases).await;
                        tracing::info!(
                            source = %source,
                            aliases = %call::Pii(aliases.iter().map(Alias::as_str).collect::<Vec<_>>().join(",")),
                            ?verdict,
                            "H.323 registration"
                        );
                        let _ = tx.send((ticket, verdict)).await;
                    });
                }
                Output::Event(Event::Registered { endpoint, account, .. }) => {
                    if let Some(a) = account {
                        publish(&a, 1);
                        mine.insert(endpoint, a);
                    }
                }
                Output::Event(Event::Unregistered { endpoint, .. }) => {
                    if let Some(a) = mine.remove(&endpoint) {
                        publish(&a, -1);
                    }
                }
            }
        }
        let deadline = gk.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default();
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
    for (_, a) in std::mem::take(&mut mine) {
        publish(&a, -1);
    }
    tracing::debug!(ignored, "RAS listener stopped");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The registration policy's verdict on `aliases` (see the module docs).
async fn decide(shared: &Shared, policy: RegistrationPolicy, aliases: &[Alias]) -> Verdict {
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
        return Verdict::Accept { account: first_named };
    }
    let has_h323_id = aliases.iter().any(|a| matches!(a, Alias::H323Id(_)));
    match account {
        Some(_) if !has_h323_id => Verdict::Refuse(Refusal::InvalidAlias),
        Some(_) if !eligible => Verdict::Refuse(Refusal::SecurityDenial),
        Some(user) => Verdict::Accept { account: Some(user) },
        None => Verdict::Refuse(Refusal::InvalidAlias),
    }
}
