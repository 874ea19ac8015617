//! Protocol-neutral call handling between a driver and the router: gather
//! the facts the router needs, ask it, and keep the abuse guard's counts.
//!
//! Every driver (loopback, SIP, H.323, web) goes through here, so that the
//! same dial string and the same caller get the same answer on any protocol.

use std::net::IpAddr;
use std::time::Instant;

use call::{CallString, EndReason, Party, Protocol, TrueConfId};

use crate::directory::Conference;
use crate::router::{self, Decision, Facts, Incoming};
use crate::state::Shared;

/// Looks up what the dial string could name and routes the call.
/// Returns the decision and, for a conference, its directory record.
pub async fn route_call(
    shared: &Shared,
    party: &Party,
    raw_dialed: &str,
    pin: Option<&str>,
    user_agent: Option<&str>,
) -> (Decision, Option<Conference>) {
    shared
        .metrics
        .calls_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cfg = shared.config();
    let home = shared.directory.server().to_string();
    let mut facts = Facts::default();
    let mut record = None;
    if raw_dialed.len() <= cfg.routing.max_dial_string {
        if let Ok(dialed) = CallString::parse(raw_dialed) {
            if let Some(id) = router::conference_candidate(&dialed, &home) {
                match shared.directory.find_conference(&id).await {
                    Ok(Some(c)) => {
                        let mut live = shared.conferences.live(&c.id);
                        live.running |= c.permanent;
                        facts.conference = Some((c.clone(), live));
                        record = Some(c);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "directory lookup failed");
                        return (Decision::Reject(EndReason::ServerError), None);
                    }
                }
            }
            if facts.conference.is_none() {
                if let Some(user) = router::account_candidate(&dialed, &home) {
                    // The account's name, or an alias one of its H.323 endpoints registered.
                    let user = match shared.directory.lookup_account(&user).await {
                        Ok(None) => crate::listen::h323::ras::account_of_alias(&user).unwrap_or(user),
                        _ => user,
                    };
                    if let Ok(Some(a)) = shared.directory.lookup_account(&user).await {
                        if let Ok(id) = TrueConfId::new(&a.user, &home) {
                            facts.account = Some((id, reachable_endpoints(shared, &a.user).await));
                        }
                    }
                }
            }
        }
    }
    let decision = {
        let guard = shared.guard.lock().unwrap_or_else(|e| e.into_inner());
        router::route(
            &Incoming {
                raw_dialed,
                party,
                user_agent,
                pin,
            },
            &facts,
            &cfg.routing,
            &guard,
            &home,
            Instant::now(),
        )
    };
    if let Decision::Reject(reason) = &decision {
        shared
            .metrics
            .calls_rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(dialed = %call::Pii(raw_dialed.to_string()), protocol = %party.protocol, reason = reason.code(), "call refused");
    }
    (decision, record)
}

/// Endpoints of `user` that can be called now: its live SIP
/// registrations and its H.323 (RAS) registrations. Web-client sessions are never called (the web client
/// only calls in), so they do not count.
async fn reachable_endpoints(shared: &Shared, user: &str) -> usize {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let h323 = crate::listen::h323::ras::registered_endpoints(user);
    match shared.directory.sip_bindings(user, now).await {
        Ok(b) => b.len() + h323,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read registrations");
            h323
        }
    }
}

/// Records a wrong PIN from `source` against `conference`.
pub fn pin_failed(shared: &Shared, source: Option<IpAddr>, conference: &str) {
    let locked =
        shared
            .guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_failure(source, conference, Instant::now());
    if let Some(d) = locked {
        tracing::warn!(conf = %conference, secs = d.as_secs(), "locked out after repeated wrong PINs");
    }
}

/// Checks an account's password, with the lock-out rules. Returns the
/// authenticated party, or why not.
pub async fn authenticate(
    shared: &Shared,
    user: &str,
    password: &str,
    protocol: Protocol,
    source: Option<IpAddr>,
) -> Result<Party, EndReason> {
    let now = Instant::now();
    let target = format!("account:{}", user.to_ascii_lowercase());
    {
        let guard = shared.guard.lock().unwrap_or_else(|e| e.into_inner());
        let locked = source
            .and_then(|ip| guard.locked_source(ip, now))
            .or_else(|| guard.locked_target(&target, now));
        if let Some(d) = locked {
            return Err(EndReason::LockedOut {
                retry_after_secs: d.as_secs().max(1),
            });
        }
    }
    match shared.directory.verify_password(user, password).await {
        Ok(Some(account)) => {
            shared
                .guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_success(source);
            let id = TrueConfId::new(&account.user, shared.directory.server()).map_err(|_| EndReason::ServerError)?;
            let mut party = Party::authenticated(id, protocol);
            party.display_name = Some(account.display_name);
            Ok(party)
        }
        Ok(None) => {
            shared
                .guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_failure(source, &target, now);
            Err(EndReason::Forbidden)
        }
        Err(e) => {
            tracing::error!(error = %e, "password check failed");
            Err(EndReason::ServerError)
        }
    }
}

/// Asks a caller for a conference PIN, the way its protocol can (a prompt
/// and DTMF digits, a form in the web client, a loopback message).
pub trait PinPrompt {
    /// Asks once. `wrong`: the last PIN was wrong. `None` when the caller
    /// gave up, hung up or did not answer in time.
    fn ask(&mut self, attempts_left: u32, wrong: bool) -> impl std::future::Future<Output = Option<String>> + Send;
}

/// Routes a call whose dial string names a conference and takes the caller
/// in: straight in, into the lobby, or after a PIN asked through `prompt`
/// (three wrong PINs end the attempt; each wrong one counts towards the
/// source's lock-out). Refusals come back as the reason to give the caller.
pub async fn join_conference<P: PinPrompt>(
    shared: &Shared,
    party: Party,
    dialed: &str,
    mut pin: Option<String>,
    user_agent: Option<&str>,
    prompt: &mut P,
) -> Result<crate::conference::Membership, EndReason> {
    use crate::conference::Entry;
    use router::Admission;
    let source = party.remote.map(|a| a.ip());
    let attempts = shared.config().conference.pin_attempts;
    let mut attempts_left = attempts;
    loop {
        let (decision, record) = route_call(shared, &party, dialed, pin.as_deref(), user_agent).await;
        let (id, admission) = match decision {
            Decision::Conference { id, admission } => (id, admission),
            Decision::Reject(reason) => return Err(reason),
            _ => return Err(EndReason::NotFound),
        };
        let max = record.as_ref().map_or(u32::MAX, |c| c.max_participants);
        let asked = match admission {
            Admission::Admit(role) => {
                if pin.is_some() {
                    shared
                        .guard
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_success(source);
                }
                return shared.conferences.enter(&id, party, Entry::Admit(role), max).await;
            }
            Admission::Lobby => return shared.conferences.enter(&id, party, Entry::Lobby, max).await,
            Admission::Refuse(EndReason::WrongPin) => {
                pin_failed(shared, source, &id);
                attempts_left = attempts_left.saturating_sub(1);
                if attempts_left == 0 {
                    return Err(EndReason::PinAttemptsExhausted);
                }
                prompt.ask(attempts_left, true).await
            }
            Admission::NeedPin => prompt.ask(attempts_left, false).await,
            Admission::Refuse(reason) => return Err(reason),
        };
        match asked {
            Some(p) => pin = Some(p.trim().to_string()),
            None => return Err(EndReason::Timeout),
        }
    }
}
