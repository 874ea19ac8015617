//! SIP trunks (`[[sip.trunks]]`): registration to the provider, and
//! recognising calls that come from it.
//!
//! A trunk with `register = true` keeps one registration alive (RFC 3261
//! §10.2): REGISTER, the provider's digest challenge answered with the
//! trunk's credentials, and a refresh well before the granted time runs
//! out; failures are retried with a growing pause (30 s up to 5 min).
//! Outgoing calls through trunks are placed by [`super::call`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{CallInput, Core, Transport};
use crate::config::TrunkConfig;

/// The trunk whose `inbound_from` networks hold `ip`, if any.
pub(super) fn inbound(core: &Core, ip: std::net::IpAddr) -> Option<TrunkConfig> {
    core.shared
        .config()
        .sip
        .trunks
        .iter()
        .find(|t| {
            t.inbound_from
                .iter()
                .filter_map(|n| crate::router::IpNet::parse(n))
                .any(|n| n.contains(ip))
        })
        .cloned()
}

/// The domain of a trunk's URIs: `domain`, else `host` without its port.
pub(super) fn domain(t: &TrunkConfig) -> String {
    if !t.domain.is_empty() {
        return t.domain.clone();
    }
    host_only(&t.host).to_string()
}

fn host_only(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => host_port,
    }
}

/// Where a trunk's requests go: the outbound proxy if set, else its host;
/// port 5060 unless given. Names are resolved through the system resolver.
pub(super) async fn resolve(t: &TrunkConfig) -> Option<SocketAddr> {
    let target = if t.outbound_proxy.is_empty() {
        &t.host
    } else {
        &t.outbound_proxy
    };
    let with_port = if target.starts_with('[') {
        if target.contains("]:") {
            target.clone()
        } else {
            format!("{target}:5060")
        }
    } else if target.contains(':') {
        target.clone()
    } else {
        format!("{target}:5060")
    };
    tokio::net::lookup_host(with_port).await.ok()?.next()
}

/// How long to wait before refreshing a registration granted for
/// `granted` seconds: well before it runs out (RFC 3261 §10.2.4 leaves the
/// margin to the client).
fn refresh_after(granted: u32) -> Duration {
    let g = u64::from(granted.max(60));
    Duration::from_secs((g * 3 / 4).min(g.saturating_sub(30)).max(30))
}

/// Keeps `trunk`'s registration alive until `stop` changes.
pub(super) async fn keep_registered(core: Arc<Core>, trunk: TrunkConfig, mut stop: watch::Receiver<bool>) {
    let call_id = sip::message::new_call_id(&core.realm);
    let tag = sip::message::new_tag();
    let mut cseq: u32 = 1;
    let mut backoff = Duration::from_secs(30);
    loop {
        let wait = match register_once(&core, &trunk, &call_id, &tag, &mut cseq).await {
            Ok(granted) => {
                tracing::info!(trunk = %trunk.name, expires = granted, "registered to the trunk");
                backoff = Duration::from_secs(30);
                refresh_after(granted)
            }
            Err(why) => {
                tracing::warn!(trunk = %trunk.name, error = %why, retry_secs = backoff.as_secs(), "trunk registration failed");
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                w
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One REGISTER exchange (with the digest round when challenged). Returns
/// the granted expiry.
async fn register_once(
    core: &Arc<Core>,
    t: &TrunkConfig,
    call_id: &str,
    tag: &str,
    cseq: &mut u32,
) -> Result<u32, String> {
    let dest = resolve(t).await.ok_or_else(|| format!("cannot resolve {}", t.host))?;
    let transport = if t.transport == "tcp" {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    if transport == Transport::Tcp && !core.tcp_connection(dest, transport).await {
        return Err(format!("cannot connect to {dest} over TCP"));
    }
    let domain = domain(t);
    let registrar = format!("sip:{domain}");
    let aor = format!("sip:{}@{domain}", t.username);
    let contact = core.our_uri(&t.username, transport);
    let (tx, mut rx) = mpsc::channel(8);
    let mut auth: Option<(String, String)> = None;
    for _attempt in 0..2 {
        let auth_line = auth.as_ref().map(|(h, v)| format!("{h}: {v}\r\n")).unwrap_or_default();
        let text = format!(
            "REGISTER {registrar} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{aor}>;tag={tag}\r\n\
             To: <{aor}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>\r\n\
             Expires: {expires}\r\n\
             {auth_line}\
             Content-Length: 0\r\n\r\n",
            via = transport.via(),
            sent_by = core.sent_by(transport),
            branch = sip::message::new_branch(),
            expires = t.register_expires,
        );
        *cseq = cseq.wrapping_add(1);
        let Ok(rsip::SipMessage::Request(req)) = sip::message::parse(text.as_bytes()) else {
            return Err("cannot build the REGISTER (check username and domain)".into());
        };
        let key = core.send_request(req, dest, transport, tx.clone());
        let resp = loop {
            match tokio::time::timeout(Duration::from_secs(40), rx.recv()).await {
                Ok(Some(CallInput::Response(k, r))) if k == key && r.status_code.code() >= 200 => break r,
                Ok(Some(CallInput::Timeout(k))) if k == key => return Err("no answer".into()),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err("no answer".into()),
            }
        };
        let code = resp.status_code.code();
        let msg = &*resp;
        match code {
            200..=299 => {
                // The granted time: our Contact's expires, else Expires, else what we asked.
                let granted = sip::message::contacts(msg)
                    .iter()
                    .find_map(|c| c.param("expires").and_then(|v| v.parse::<u32>().ok()))
                    .or_else(|| sip::message::expires(msg))
                    .unwrap_or(t.register_expires);
                return Ok(granted);
            }
            401 | 407 if auth.is_none() => {
                let (ask, answer) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let challenges = sip::message::header_values(msg, ask);
                let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
                let challenge = sip::digest::preferred_challenge(&refs).ok_or("no usable digest challenge")?;
                let cnonce = format!("{:016x}", rand::random::<u64>());
                let value =
                    sip::digest::respond(challenge, "REGISTER", &registrar, &t.username, &t.password, &cnonce, 1)
                        .map_err(|e| format!("cannot answer the challenge: {e}"))?;
                auth = Some((answer.to_string(), value));
            }
            423 => return Err("the provider wants a longer registration (423); raise register_expires".into()),
            _ => return Err(format!("refused with {code}")),
        }
    }
    Err("credentials refused".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(host: &str, domain: &str) -> TrunkConfig {
        TrunkConfig {
            name: "t".into(),
            host: host.into(),
            transport: "udp".into(),
            outbound_proxy: String::new(),
            username: "u".into(),
            password: "p".into(),
            domain: domain.into(),
            register: true,
            register_expires: 600,
            inbound_from: Vec::new(),
        }
    }

    #[test]
    fn domains_default_to_the_host_without_port() {
        assert_eq!(domain(&trunk("sip.example:5080", "")), "sip.example");
        assert_eq!(domain(&trunk("sip.example", "")), "sip.example");
        assert_eq!(domain(&trunk("[2001:db8::1]:5060", "")), "2001:db8::1");
        assert_eq!(domain(&trunk("10.0.0.1:5060", "carrier.example")), "carrier.example");
    }

    #[test]
    fn registrations_are_refreshed_well_before_they_run_out() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2700));
        assert_eq!(refresh_after(120), Duration::from_secs(90));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(
            refresh_after(0),
            Duration::from_secs(30),
            "a zero grant is not a busy loop"
        );
    }

    #[tokio::test]
    async fn addresses_resolve_with_the_default_port() {
        let t = trunk("127.0.0.1", "");
        assert_eq!(
            resolve(&t).await,
            Some("127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!()))
        );
        let mut t = trunk("127.0.0.1:5080", "");
        assert_eq!(resolve(&t).await.map(|a| a.port()), Some(5080));
        t.outbound_proxy = "127.0.0.2:5070".into();
        assert_eq!(
            resolve(&t).await.map(|a| a.to_string()),
            Some("127.0.0.2:5070".to_string())
        );
    }
}
