//! The registrar (RFC 3261 §10.3): digest authentication against the
//! directory, bindings kept in the directory so that they survive a
//! restart, the lock-out rules for repeated wrong passwords. A binding
//! made over a WebSocket lives only as long as its connection ([`super::ws`]).
//!
//! What needs no database is answered at once, on the core task: a request
//! without credentials gets its 401 challenge, a locked-out source or
//! account its 403, a To without a user its 400. A REGISTER with
//! credentials waits for the next batch ([`run`], group commit): one task
//! gathers what arrived within [`BATCH_WINDOW`] and, in one write
//! transaction, reads the digest credentials and bindings of those accounts,
//! checks each digest, applies each request in arrival order (a second
//! REGISTER of the same account in the batch sees the first one's result),
//! writes the bindings that changed and commits; only then does it answer.
//! A phone hears 200 only when its binding is in the database, and the
//! directory stays the one place credentials are read from (no cache: a
//! password changed by the CLI counts from the next batch).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsip::prelude::*;
use sip::registrar::{Binding, ExpiryPolicy, RegisterError, RegisterRequest};
use sip::transaction::ServerTxKey;
use tokio::sync::{mpsc, watch};

use super::{lock, unix_now, Core, Transport};
use crate::directory;

/// How long the registrar gathers REGISTERs into one batch after the first
/// one arrives. A few milliseconds against the phone's 500 ms retransmission
/// timer (T1): one commit then serves every REGISTER of the window.
pub(super) const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Most REGISTERs in one batch; a backlog goes into the next batches at once.
const MAX_BATCH: usize = 512;

/// REGISTERs waiting for a batch at most; more are answered 503 (a flood, or a
/// database that does not keep up).
pub(super) const MAX_PENDING: usize = 8192;

/// Seconds a REGISTER refused over [`MAX_PENDING`] is told to wait.
const OVERLOAD_RETRY_AFTER_SECS: u32 = 5;

/// A REGISTER with credentials, waiting for the registrar's next batch.
#[derive(Debug)]
pub(super) struct Pending {
    key: ServerTxKey,
    request: rsip::Request,
    from: SocketAddr,
    transport: Transport,
    /// The Authorization header's digest parameters ([`sip::digest::parse_params`]).
    authorization: Vec<(String, String)>,
    /// The user part of the To URI, as sent.
    aor_user: String,
    /// That account's stored user name (`None`: not a name of this server).
    account: Option<String>,
    /// The stored user name of the digest `username` (`None`: none or not ours).
    digest_account: Option<String>,
    /// The lock-out key of the account.
    target: String,
    /// The request read as a registration (its error is answered only once
    /// the credentials are good: RFC 3261 §10.3 authenticates first).
    register: Result<RegisterRequest, RegisterError>,
}

/// What one REGISTER of a batch comes to.
enum Outcome {
    /// A response that needs nothing written.
    Answer(rsip::Response),
    /// Registered: 200 with these bindings once the batch is committed.
    Registered(Vec<Binding>),
}

/// Answers a REGISTER that carries no credentials, outside any transaction
/// (RFC 3261 §8.2.7: the stateless UAS role is there for challenges, so
/// that a flood of unauthenticated requests creates no state, §26.1.5): a
/// 400 when its To has no user, a 403 when the source or account is locked
/// out, otherwise the 401 challenge. A retransmission gets a fresh one.
pub(super) fn answer_without_credentials(core: &Core, request: &rsip::Request, from: SocketAddr) -> rsip::Response {
    match precheck(core, request, from) {
        Ok(_) => challenge(core, request, false),
        Err(resp) => resp,
    }
}

/// The checks that come before the password: the To user (400) and the
/// lock-out (403). Returns the To user and the account's lock-out key.
fn precheck(core: &Core, request: &rsip::Request, from: SocketAddr) -> Result<(String, String), rsip::Response> {
    let Some(to) = sip::message::to_uri(request) else {
        return Err(bad_request(request, "To: no SIP URI"));
    };
    let aor_user = to.user.unwrap_or_default();
    if aor_user.is_empty() {
        return Err(bad_request(request, "To: the address of record needs a user part"));
    }
    // Lock-out first: a locked source or account gets no password check at all.
    let target = format!("account:{}", aor_user.to_ascii_lowercase());
    let guard = lock(&core.shared.guard);
    let now = Instant::now();
    if let Some(d) = guard
        .locked_source(from.ip(), now)
        .or_else(|| guard.locked_target(&target, now))
    {
        drop(guard);
        let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
        let resp = sip::message::with_header(resp, "Retry-After", &d.as_secs().max(1).to_string());
        return Err(sip::message::with_header(
            resp,
            "Warning",
            &warning(core, "too many failed attempts; locked out"),
        ));
    }
    Ok((aor_user, target))
}

/// Answers one REGISTER in its server transaction: at once when no
/// database is needed, otherwise through the next batch.
pub(super) fn handle(core: &Core, key: ServerTxKey, request: rsip::Request, from: SocketAddr, transport: Transport) {
    let (aor_user, target) = match precheck(core, &request, from) {
        Ok(p) => p,
        Err(resp) => {
            core.respond(&key, resp);
            return;
        }
    };
    let Some(authorization) = request.authorization_header() else {
        core.respond(&key, challenge(core, &request, false));
        return;
    };
    let authorization = match sip::digest::parse_params(authorization.value()) {
        Ok(p) => p,
        Err(e) => {
            core.respond(&key, bad_request(&request, &format!("Authorization: {e}")));
            return;
        }
    };
    let dir = &core.shared.directory;
    let digest_account = authorization
        .iter()
        .find(|(k, _)| k == "username")
        .and_then(|(_, u)| dir.local_user("user", u).ok());
    let pending = Pending {
        register: RegisterRequest::from_request(&request, from, transport.via()),
        account: dir.local_user("user", &aor_user).ok(),
        key,
        request,
        from,
        transport,
        authorization,
        aor_user,
        digest_account,
        target,
    };
    if let Err(e) = core.registrar.try_send(pending) {
        let pending = match e {
            mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
        };
        tracing::debug!(from = %pending.from, "REGISTER: the registrar is behind; 503");
        let resp = sip::message::response_for(&pending.request, 503, Some(&sip::message::new_tag()));
        let resp = sip::message::with_header(resp, "Retry-After", &OVERLOAD_RETRY_AFTER_SECS.to_string());
        core.respond(&pending.key, resp);
    }
}

/// The registrar's batch task: runs until `stop` changes or the core goes.
pub(super) async fn run(core: Arc<Core>, mut queue: mpsc::Receiver<Pending>, mut stop: watch::Receiver<bool>) {
    let mut jobs: Vec<Pending> = Vec::new();
    let mut store = core.shared.directory.sip_registrar_store();
    loop {
        let first = tokio::select! {
            j = queue.recv() => j,
            _ = stop.changed() => return,
        };
        let Some(first) = first else { return };
        jobs.push(first);
        drain(&mut queue, &mut jobs);
        if jobs.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
            drain(&mut queue, &mut jobs);
        }
        run_batch(&core, &mut store, &mut jobs).await;
    }
}

fn drain(queue: &mut mpsc::Receiver<Pending>, jobs: &mut Vec<Pending>) {
    while jobs.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => return,
        }
    }
}

/// Runs one batch in one transaction and answers every REGISTER of it.
async fn run_batch(core: &Core, store: &mut directory::SipRegistrarStore, jobs: &mut Vec<Pending>) {
    let now = unix_now();
    let mut accounts: Vec<String> = Vec::with_capacity(jobs.len() * 2);
    for j in jobs.iter() {
        accounts.extend(j.account.iter().cloned());
        accounts.extend(j.digest_account.iter().cloned());
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(jobs.len());
    let stored = store
        .register_batch(&accounts, now, |state| decide(core, jobs, state, now, &mut outcomes))
        .await;
    if let Err(e) = &stored {
        tracing::error!(error = %e, registers = jobs.len(), "cannot store registrations");
    }
    let mut outcomes = outcomes.into_iter();
    for job in jobs.drain(..) {
        let resp = match (outcomes.next(), &stored) {
            (Some(Outcome::Answer(r)), _) => r,
            (Some(Outcome::Registered(bindings)), Ok(())) => {
                if job.transport.is_websocket() && bindings.iter().any(|b| b.source == Some(job.from)) {
                    core.note_websocket_binding(job.from, &job.aor_user).await;
                }
                ok_response(&job.request, &bindings, now)
            }
            // Not decided (the read failed) or not stored.
            _ => sip::message::response_for(&job.request, 500, Some(&sip::message::new_tag())),
        };
        core.respond(&job.key, resp);
    }
}

/// Decides every REGISTER of a batch, in arrival order, against `state`
/// (what the directory holds of their accounts); pushes one outcome per job
/// and returns the accounts whose bindings change.
fn decide(
    core: &Core,
    jobs: &[Pending],
    mut state: HashMap<String, directory::SipAccountState>,
    now: u64,
    outcomes: &mut Vec<Outcome>,
) -> Vec<(String, Vec<Binding>)> {
    let cfg = core.shared.config();
    let policy = ExpiryPolicy {
        min: cfg.sip.min_expires,
        max: cfg.sip.max_expires,
        default: cfg.sip.default_expires,
        max_bindings: cfg.sip.max_contacts,
    };
    let mut writes: Vec<(String, Vec<Binding>)> = Vec::new();
    for job in jobs {
        let outcome = match decide_one(core, job, &mut state, &policy, now) {
            Ok((account, bindings, changed)) => {
                if changed {
                    match writes.iter_mut().find(|(a, _)| *a == account) {
                        Some((_, b)) => b.clone_from(&bindings),
                        None => writes.push((account, bindings.clone())),
                    }
                }
                Outcome::Registered(bindings)
            }
            Err(resp) => Outcome::Answer(resp),
        };
        outcomes.push(outcome);
    }
    writes
}

/// One REGISTER of a batch: the account, its new bindings and whether they
/// changed, or the response that refuses it. A change is applied to `state`
/// for the REGISTERs after it.
fn decide_one(
    core: &Core,
    job: &Pending,
    state: &mut HashMap<String, directory::SipAccountState>,
    policy: &ExpiryPolicy,
    now: u64,
) -> Result<(String, Vec<Binding>, bool), rsip::Response> {
    let request = &job.request;
    let (md5, sha256) = job
        .digest_account
        .as_ref()
        .and_then(|a| state.get(a))
        .map(|s| (s.digest_md5.clone(), s.digest_sha256.clone()))
        .unwrap_or_default();
    let verified =
        lock(&core.nonces).verify_params(&job.authorization, "REGISTER", &core.realm, now, |alg, _| match alg {
            sip::digest::Algorithm::Md5 => md5.clone(),
            _ => sha256.clone(),
        });
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            use sip::digest::DigestError as E;
            return Err(match e {
                E::Malformed { .. } => bad_request(request, &format!("Authorization: {e}")),
                E::UnknownUser { .. } | E::WrongResponse { .. } => {
                    lock(&core.shared.guard).record_failure(Some(job.from.ip()), &job.target, Instant::now());
                    tracing::info!(user = %call::Pii(job.aor_user.clone()), from = %job.from, "REGISTER: wrong credentials");
                    let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
                    sip::message::with_header(resp, "Warning", &warning(core, "wrong user name or password"))
                }
                _ if e.status() == 401 => {
                    // Stale, forged or replayed nonce, wrong realm, another algorithm: ask again.
                    tracing::debug!(error = %e, "REGISTER: digest refused");
                    challenge(core, request, e.stale())
                }
                _ => {
                    let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
                    sip::message::with_header(resp, "Warning", &warning(core, &e.to_string()))
                }
            });
        }
    };
    if !verified.username.eq_ignore_ascii_case(&job.aor_user) {
        let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
        return Err(sip::message::with_header(
            resp,
            "Warning",
            &warning(core, "the credentials do not belong to this address of record"),
        ));
    }
    lock(&core.shared.guard).record_success(Some(job.from.ip()));
    let register = match &job.register {
        Ok(r) => r,
        Err(e) => return Err(error_response(core, request, e)),
    };
    // RFC 3261 §10.3 step 3: an address of record with no account here.
    let Some((account, current)) = job
        .account
        .as_ref()
        .and_then(|a| state.get_mut(a).map(|s| (a.clone(), s)))
    else {
        return Err(sip::message::response_for(request, 404, Some(&sip::message::new_tag())));
    };
    // A binding made over a WebSocket that has closed (before a restart,
    // say) is reached by nothing: it goes now (RFC 7118 §5).
    let existing: Vec<Binding> = current
        .bindings
        .iter()
        .filter(|b| websocket_binding_live(core, b))
        .cloned()
        .collect();
    let bindings =
        sip::registrar::apply(&existing, register, policy, now).map_err(|e| error_response(core, request, &e))?;
    let changed = bindings != current.bindings;
    if changed {
        current.bindings.clone_from(&bindings);
        tracing::info!(
            user = %call::Pii(job.aor_user.clone()),
            contacts = bindings.len(),
            transport = job.transport.via(),
            "registered"
        );
    }
    Ok((account, bindings, changed))
}

/// The 200 to a REGISTER: every current binding (RFC 3261 §10.3 step 8) and the Date.
fn ok_response(request: &rsip::Request, bindings: &[Binding], now: u64) -> rsip::Response {
    let mut resp = sip::message::response_for(request, 200, Some(&sip::message::new_tag()));
    for c in sip::registrar::contact_header_values(bindings, now) {
        resp = sip::message::with_header(resp, "Contact", &c);
    }
    sip::message::with_header(resp, "Date", &httpdate(std::time::SystemTime::now()))
}

/// Whether `b` can still be reached: any binding but one made over a
/// WebSocket connection that is no longer open.
fn websocket_binding_live(core: &Core, b: &sip::registrar::Binding) -> bool {
    if !Transport::from_token(&b.transport).is_websocket() {
        return true;
    }
    b.source.is_some_and(|peer| core.connection_open(peer))
}

fn error_response(core: &Core, request: &rsip::Request, e: &sip::registrar::RegisterError) -> rsip::Response {
    let code = e.status();
    let resp = sip::message::response_for(request, code, Some(&sip::message::new_tag()));
    if let sip::registrar::RegisterError::IntervalTooBrief { min } = e {
        return sip::message::with_header(resp, "Min-Expires", &min.to_string());
    }
    sip::message::with_header(resp, "Warning", &warning(core, &e.to_string()))
}

fn challenge(core: &Core, request: &rsip::Request, stale: bool) -> rsip::Response {
    let mut resp = sip::message::response_for(request, 401, Some(&sip::message::new_tag()));
    for c in core.challenge(stale) {
        resp = sip::message::with_header(resp, "WWW-Authenticate", &c);
    }
    resp
}

fn bad_request(request: &rsip::Request, what: &str) -> rsip::Response {
    let resp = sip::message::response_for(request, 400, Some(&sip::message::new_tag()));
    sip::message::with_header(resp, "Warning", &format!("399 confgate \"{}\"", what.replace('"', "'")))
}

/// A Warning header value (RFC 3261 §20.43, code 399: miscellaneous).
pub(super) fn warning(core: &Core, text: &str) -> String {
    format!("399 {} \"{}\"", core.realm, text.replace('"', "'"))
}

/// An RFC 1123 date for the Date header (RFC 3261 §20.17).
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_name = months[(month - 1).clamp(0, 11) as usize];
    format!("{weekday}, {d:02} {month_name} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[cfg(test)]
mod tests {
    use super::httpdate;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_follow_rfc_1123() {
        assert_eq!(httpdate(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        // 2026-11-22 21:30:05 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_383_005);
        assert_eq!(httpdate(t), "Sun, 22 Nov 2026 21:30:05 GMT");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(httpdate(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
