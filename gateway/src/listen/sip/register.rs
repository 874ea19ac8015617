//! The registrar (RFC 3261 §10.3): digest authentication against the
//! directory, bindings kept in the directory so that they survive a
//! restart, the lock-out rules for repeated wrong passwords.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rsip::prelude::*;
use sip::registrar::{ExpiryPolicy, RegisterRequest};
use sip::transaction::ServerTxKey;

use super::{unix_now, Core, Transport};

/// Answers one REGISTER.
pub(super) async fn handle(
    core: Arc<Core>,
    key: ServerTxKey,
    request: rsip::Request,
    from: SocketAddr,
    transport: Transport,
) {
    let response = answer(&core, &request, from, transport).await;
    core.respond(&key, response);
}

async fn answer(core: &Core, request: &rsip::Request, from: SocketAddr, transport: Transport) -> rsip::Response {
    let msg = request;
    let Some(to) = sip::message::to_uri(msg) else {
        return bad_request(request, "To: no SIP URI");
    };
    let aor_user = to.user.unwrap_or_default();
    if aor_user.is_empty() {
        return bad_request(request, "To: the address of record needs a user part");
    }
    let cfg = core.shared.config();
    // Lock-out first: a locked source or account gets no password check at all.
    let target = format!("account:{}", aor_user.to_ascii_lowercase());
    {
        let guard = core.shared.guard.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(d) = guard
            .locked_source(from.ip(), now)
            .or_else(|| guard.locked_target(&target, now))
        {
            let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
            let resp = sip::message::with_header(resp, "Retry-After", &d.as_secs().max(1).to_string());
            return sip::message::with_header(resp, "Warning", &warning(core, "too many failed attempts; locked out"));
        }
    }
    let Some(authorization) = request.authorization_header().map(|h| h.value().to_string()) else {
        return challenge(core, request, false);
    };
    let verified = match core.verify_digest(&authorization, "REGISTER").await {
        Ok(v) => v,
        Err(e) => {
            use sip::digest::DigestError as E;
            return match e {
                E::Malformed { .. } => bad_request(request, &format!("Authorization: {e}")),
                E::UnknownUser { .. } | E::WrongResponse { .. } => {
                    core.shared
                        .guard
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_failure(Some(from.ip()), &target, Instant::now());
                    tracing::info!(user = %call::Pii(aor_user.clone()), %from, "REGISTER: wrong credentials");
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
            };
        }
    };
    if !verified.username.eq_ignore_ascii_case(&aor_user) {
        let resp = sip::message::response_for(request, 403, Some(&sip::message::new_tag()));
        return sip::message::with_header(
            resp,
            "Warning",
            &warning(core, "the credentials do not belong to this address of record"),
        );
    }
    core.shared
        .guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_success(Some(from.ip()));
    let register = match RegisterRequest::from_request(request, from, transport.via()) {
        Ok(r) => r,
        Err(e) => return error_response(core, request, &e),
    };
    let now = unix_now();
    let dir = &core.shared.directory;
    let existing = match dir.sip_bindings(&aor_user, now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read registrations");
            return sip::message::response_for(request, 500, Some(&sip::message::new_tag()));
        }
    };
    let policy = ExpiryPolicy {
        min: cfg.sip.min_expires,
        max: cfg.sip.max_expires,
        default: cfg.sip.default_expires,
        max_bindings: cfg.sip.max_contacts,
    };
    let bindings = match sip::registrar::apply(&existing, &register, &policy, now) {
        Ok(b) => b,
        Err(e) => return error_response(core, request, &e),
    };
    if bindings != existing {
        if let Err(e) = dir.set_sip_bindings(&aor_user, &bindings).await {
            tracing::error!(error = %e, "cannot store registrations");
            return sip::message::response_for(request, 500, Some(&sip::message::new_tag()));
        }
        tracing::info!(user = %call::Pii(aor_user.clone()), contacts = bindings.len(), "registered");
    }
    let mut resp = sip::message::response_for(request, 200, Some(&sip::message::new_tag()));
    for c in sip::registrar::contact_header_values(&bindings, now) {
        resp = sip::message::with_header(resp, "Contact", &c);
    }
    sip::message::with_header(resp, "Date", &httpdate(std::time::SystemTime::now()))
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
