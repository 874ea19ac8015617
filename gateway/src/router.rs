//! The router: the one place that knows how a dialed string becomes a
//! conference, a user, a federated server or a gateway route.
//!
//! It is pure. A driver reports an incoming leg; the caller looks up the
//! [`Facts`] the router asks for ([`conference_candidate`],
//! [`account_candidate`]) and calls [`route`], which applies the abuse checks
//! and then the routing rules in order, first match wins:
//!
//! 1. Unauthenticated caller and anonymous calls disabled → reject.
//! 2. Nothing dialed → IVR if enabled, else reject.
//! 3. A conference id → that conference's admission rules ([`admission`]).
//! 4. An account of this server → a point-to-point call to its reachable
//!    endpoints (a web-client session is never called).
//! 5. `user@<other server>` → federation.
//! 6. A gateway route (prefix or pattern) → an outgoing call through it.
//! 7. Otherwise → IVR if enabled, else not found.
//!
//! [`AbuseGuard`] keeps the lock-out state (failed PINs and passwords per
//! source address and per target, with exponential back-off).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use call::{CallString, EndReason, Party, Protocol};

use crate::config::{RouteConfig, RoutingConfig};
use crate::directory::Conference;

/// A participant's role in a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Not listed: anonymous or an account that is not a member.
    Guest,
    /// A listed participant.
    Participant,
    /// A moderator.
    Moderator,
    /// The owner (a moderator too).
    Owner,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Participant => "participant",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }

    /// Owners and moderators may moderate.
    pub fn is_moderator(self) -> bool {
        matches!(self, Self::Moderator | Self::Owner)
    }
}

/// What is live about a conference right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveState {
    /// Participants admitted now.
    pub participants: u32,
    /// Whether the conference is running.
    pub running: bool,
    /// Locked by a moderator: no new guests or participants.
    pub locked: bool,
}

/// What the router needs to know about the dialed target.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The conference the dial string names, if it exists.
    pub conference: Option<(Conference, LiveState)>,
    /// The local account the dial string names, if it exists, with how many
    /// endpoints can be called now (web-client sessions do not count).
    pub account: Option<(call::TrueConfId, usize)>,
}

/// How a caller gets into a conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// In, with this role.
    Admit(Role),
    /// A PIN is needed (none was offered).
    NeedPin,
    /// Wait in the lobby for a moderator.
    Lobby,
    /// Refused.
    Refuse(EndReason),
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Refuse the call.
    Reject(EndReason),
    /// Ask for a conference id (and then a PIN) by voice menu.
    Ivr,
    /// Into this conference, on these terms.
    Conference {
        /// Conference id.
        id: String,
        /// Admission.
        admission: Admission,
    },
    /// A point-to-point call to a local user's endpoints.
    Account(call::TrueConfId),
    /// To another confgate server.
    Federation {
        /// User part.
        user: String,
        /// The other server.
        server: String,
    },
    /// Out through a gateway route.
    Gateway {
        /// Route name.
        route: String,
        /// `sip:<trunk>` or `h323:<host>`.
        target: String,
        /// The number after rewriting.
        number: String,
    },
    /// A direct call to a SIP or H.323 address (`#sip:`, `#h323:`).
    Direct(CallString),
}

/// An incoming call as the router sees it.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    /// The dial string as received (before parsing), for the length check.
    pub raw_dialed: &'a str,
    /// Who calls.
    pub party: &'a Party,
    /// The caller's software, if the protocol says.
    pub user_agent: Option<&'a str>,
    /// A PIN the caller offered with the call, if any.
    pub pin: Option<&'a str>,
}

/// The conference id a dial string could name, to look up before routing.
pub fn conference_candidate(dialed: &CallString, home: &str) -> Option<String> {
    match dialed {
        CallString::Conference(id) | CallString::Digits(id) => Some(id.clone()),
        CallString::Account { user, server } if server.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(home)) => {
            call::validate_conference_id(user).is_ok().then(|| user.clone())
        }
        _ => None,
    }
}

/// The local account a dial string could name, to look up before routing.
pub fn account_candidate(dialed: &CallString, home: &str) -> Option<String> {
    match dialed {
        CallString::Digits(d) => Some(d.clone()),
        CallString::Account { user, server } if server.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(home)) => {
            Some(user.clone())
        }
        _ => None,
    }
}

/// Applies the abuse checks and the routing rules. `home` is this server's name.
pub fn route(
    call: &Incoming<'_>,
    facts: &Facts,
    cfg: &RoutingConfig,
    guard: &AbuseGuard,
    home: &str,
    now: Instant,
) -> Decision {
    // Abuse checks come first and stay on.
    if call.raw_dialed.len() > cfg.max_dial_string {
        return Decision::Reject(EndReason::DialStringTooLong);
    }
    if let Some(ua) = call.user_agent {
        let ua = ua.to_ascii_lowercase();
        if cfg
            .blocked_user_agents
            .iter()
            .any(|b| !b.is_empty() && ua.contains(&b.to_ascii_lowercase()))
        {
            return Decision::Reject(EndReason::Forbidden);
        }
    }
    if let Some(ip) = call.party.remote.map(|a| a.ip()) {
        let allowed = cfg.allow.is_empty() || cfg.allow.iter().filter_map(|n| IpNet::parse(n)).any(|n| n.contains(ip));
        let denied = cfg.deny.iter().filter_map(|n| IpNet::parse(n)).any(|n| n.contains(ip));
        if !allowed || denied {
            return Decision::Reject(EndReason::Forbidden);
        }
        if let Some(retry) = guard.locked_source(ip, now) {
            return Decision::Reject(EndReason::LockedOut {
                retry_after_secs: retry.as_secs().max(1),
            });
        }
    }
    let dialed = match CallString::parse(call.raw_dialed) {
        Ok(d) => d,
        Err(_) => return Decision::Reject(EndReason::BadDialString),
    };

    // 1. Anonymous callers.
    if call.party.is_anonymous() && !cfg.allow_anonymous {
        return Decision::Reject(EndReason::AnonymousNotAllowed);
    }
    // 2. Nothing dialed.
    if dialed == CallString::Empty {
        return if cfg.ivr && supports_ivr(call.party.protocol) {
            Decision::Ivr
        } else {
            Decision::Reject(EndReason::NotFound)
        };
    }
    // 3. A conference.
    if let Some((conf, live)) = &facts.conference {
        if let Some(retry) = guard.locked_target(&conf.id, now) {
            return Decision::Reject(EndReason::LockedOut {
                retry_after_secs: retry.as_secs().max(1),
            });
        }
        return Decision::Conference {
            id: conf.id.clone(),
            admission: admission(conf, *live, call.party, call.pin, home),
        };
    }
    if matches!(dialed, CallString::Conference(_)) {
        return Decision::Reject(EndReason::NotFound);
    }
    // 4. A local account.
    if let Some((id, reachable)) = &facts.account {
        return if *reachable > 0 {
            Decision::Account(id.clone())
        } else {
            Decision::Reject(EndReason::Unreachable)
        };
    }
    match &dialed {
        // 5. Another server.
        CallString::Account {
            user,
            server: Some(server),
        } if !server.eq_ignore_ascii_case(home) => {
            return Decision::Federation {
                user: user.clone(),
                server: server.clone(),
            };
        }
        // Direct dialing out is for callers with an account: never let guests make outside calls.
        CallString::Sip { .. } | CallString::H323 { .. } => {
            return if call.party.is_anonymous() {
                Decision::Reject(EndReason::Forbidden)
            } else {
                Decision::Direct(dialed)
            };
        }
        _ => {}
    }
    // 6. A gateway route.
    let number = match &dialed {
        CallString::Tel(n) | CallString::Digits(n) => Some(n.as_str()),
        _ => None,
    };
    if let Some(number) = number {
        if let Some((r, rewritten)) = cfg.routes.iter().find_map(|r| match_route(r, number).map(|n| (r, n))) {
            if call.party.is_anonymous() {
                return Decision::Reject(EndReason::Forbidden);
            }
            return Decision::Gateway {
                route: r.name.clone(),
                target: r.target.clone(),
                number: rewritten,
            };
        }
    }
    // 7. Nothing matched.
    if cfg.ivr && supports_ivr(call.party.protocol) {
        Decision::Ivr
    } else {
        Decision::Reject(EndReason::NotFound)
    }
}

/// Protocols that can carry the digits a voice menu needs.
fn supports_ivr(p: Protocol) -> bool {
    matches!(p, Protocol::Sip | Protocol::H323)
}

/// A conference's admission rules for one caller.
///
/// - Owners and moderators always get in (even when full or locked).
/// - Anonymous callers need `allow_anonymous`.
/// - Locked or full conferences refuse everyone else.
/// - Listed participants get in.
/// - Everyone else (guests): with a PIN set, the right PIN admits; with no
///   PIN offered the lobby (if on) or a PIN prompt follows. With no PIN set,
///   the lobby (if on) or, for an open conference, straight in; a closed
///   conference without PIN or lobby refuses them.
pub fn admission(conf: &Conference, live: LiveState, party: &Party, pin: Option<&str>, home: &str) -> Admission {
    let role = party
        .account()
        .filter(|a| a.is_local(home))
        .map(|a| {
            let id = a.to_string();
            if conf.is_owner(&id) {
                Role::Owner
            } else if conf.moderators.contains(&id) {
                Role::Moderator
            } else if conf.participants.contains(&id) {
                Role::Participant
            } else {
                Role::Guest
            }
        })
        .unwrap_or(Role::Guest);
    if role.is_moderator() {
        return Admission::Admit(role);
    }
    if party.is_anonymous() && !conf.allow_anonymous {
        return Admission::Refuse(EndReason::AnonymousNotAllowed);
    }
    if live.locked {
        return Admission::Refuse(EndReason::ConferenceLocked);
    }
    if live.participants >= conf.max_participants {
        return Admission::Refuse(EndReason::ConferenceFull);
    }
    if role == Role::Participant {
        return Admission::Admit(role);
    }
    match (&conf.pin, pin) {
        (Some(expected), Some(offered)) => {
            if offered == expected {
                Admission::Admit(Role::Guest)
            } else {
                Admission::Refuse(EndReason::WrongPin)
            }
        }
        (Some(_), None) if conf.lobby => Admission::Lobby,
        (Some(_), None) => Admission::NeedPin,
        (None, _) if conf.lobby => Admission::Lobby,
        (None, _) if !conf.closed => Admission::Admit(Role::Guest),
        (None, _) => Admission::Refuse(EndReason::Forbidden),
    }
}

fn match_route(r: &RouteConfig, number: &str) -> Option<String> {
    let matched = match (&r.prefix, &r.pattern) {
        (Some(p), _) => number.starts_with(p.as_str()),
        (None, Some(p)) => DigitPattern::parse(p).is_some_and(|pat| pat.matches(number)),
        _ => false,
    };
    if !matched {
        return None;
    }
    let rest = number.get(r.strip.min(number.len())..).unwrap_or("");
    Some(format!("{}{rest}", r.prepend))
}

/// A dial pattern: digits and `+` match themselves, `X` any digit, `Z` 1–9,
/// `N` 2–9, `[...]` a class of digits and ranges, and a final `.` one or
/// more further characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitPattern {
    items: Vec<PatItem>,
    tail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatItem {
    Lit(u8),
    Class([bool; 10]),
}

impl DigitPattern {
    /// Parses a pattern; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let mut items = Vec::new();
        let mut tail = false;
        let mut i = 0;
        while i < b.len() {
            if tail {
                return None;
            }
            match b[i] {
                c @ (b'0'..=b'9' | b'+' | b'*' | b'#') => items.push(PatItem::Lit(c)),
                b'X' | b'x' => items.push(PatItem::Class([true; 10])),
                b'Z' | b'z' => items.push(PatItem::Class(class(1, 9))),
                b'N' | b'n' => items.push(PatItem::Class(class(2, 9))),
                b'.' => tail = true,
                b'[' => {
                    let end = i + b[i..].iter().position(|&c| c == b']')?;
                    let inner = &b[i + 1..end];
                    let mut set = [false; 10];
                    let mut j = 0;
                    while j < inner.len() {
                        let lo = digit(inner[j])?;
                        if inner.get(j + 1) == Some(&b'-') {
                            let hi = digit(*inner.get(j + 2)?)?;
                            if hi < lo {
                                return None;
                            }
                            set[lo as usize..=hi as usize].iter_mut().for_each(|x| *x = true);
                            j += 3;
                        } else {
                            set[lo as usize] = true;
                            j += 1;
                        }
                    }
                    if !set.contains(&true) {
                        return None;
                    }
                    items.push(PatItem::Class(set));
                    i = end;
                }
                _ => return None,
            }
            i += 1;
        }
        if items.is_empty() || items.len() > 64 {
            return None;
        }
        Some(Self { items, tail })
    }

    /// Whether the whole number matches.
    pub fn matches(&self, number: &str) -> bool {
        let b = number.as_bytes();
        if b.len() < self.items.len()
            || (!self.tail && b.len() != self.items.len())
            || (self.tail && b.len() == self.items.len())
        {
            return false;
        }
        self.items.iter().zip(b).all(|(item, &c)| match item {
            PatItem::Lit(l) => *l == c,
            PatItem::Class(set) => digit(c).is_some_and(|d| set[d as usize]),
        })
    }
}

fn class(lo: usize, hi: usize) -> [bool; 10] {
    let mut s = [false; 10];
    s[lo..=hi].iter_mut().for_each(|x| *x = true);
    s
}

fn digit(c: u8) -> Option<u8> {
    c.is_ascii_digit().then(|| c - b'0')
}

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr/prefix` (or a bare address: a host route).
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Failed attempts of one source or against one target.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Lock-out with back-off after repeated wrong PINs or passwords, per source
/// address and per target (conference or account). Memory is bounded.
#[derive(Debug)]
pub struct AbuseGuard {
    after: u32,
    base: Duration,
    max: Duration,
    by_source: HashMap<IpAddr, Strikes>,
    by_target: HashMap<String, Strikes>,
}

/// Entries kept per map before stale ones are pruned.
const GUARD_CAPACITY: usize = 65_536;
/// After this long without a failure an entry is forgotten.
const GUARD_MEMORY: Duration = Duration::from_secs(24 * 3600);

impl AbuseGuard {
    /// A guard with the routing configuration's limits.
    pub fn new(cfg: &RoutingConfig) -> Self {
        Self {
            after: cfg.lockout_after,
            base: Duration::from_secs(cfg.lockout_secs),
            max: Duration::from_secs(cfg.lockout_max_secs),
            by_source: HashMap::new(),
            by_target: HashMap::new(),
        }
    }

    /// Applies new limits (SIGHUP), keeping the counts.
    pub fn reconfigure(&mut self, cfg: &RoutingConfig) {
        self.after = cfg.lockout_after;
        self.base = Duration::from_secs(cfg.lockout_secs);
        self.max = Duration::from_secs(cfg.lockout_max_secs);
    }

    /// How long `ip` stays locked out, if it is.
    pub fn locked_source(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        remaining(self.by_source.get(&ip), now)
    }

    /// How long `target` stays locked out, if it is.
    pub fn locked_target(&self, target: &str, now: Instant) -> Option<Duration> {
        remaining(self.by_target.get(target), now)
    }

    /// Records a failed attempt. Returns the lock-out it caused, if any.
    pub fn record_failure(&mut self, source: Option<IpAddr>, target: &str, now: Instant) -> Option<Duration> {
        let (after, base, max) = (self.after, self.base, self.max);
        let mut caused = None;
        if let Some(ip) = source {
            prune(&mut self.by_source, now);
            let s = self.by_source.entry(ip).or_insert(Strikes {
                failures: 0,
                lockouts: 0,
                locked_until: None,
                last: now,
            });
            caused = strike(s, after, base, max, now).or(caused);
        }
        prune(&mut self.by_target, now);
        let t = self.by_target.entry(target.to_string()).or_insert(Strikes {
            failures: 0,
            lockouts: 0,
            locked_until: None,
            last: now,
        });
        // A target is attacked from many places: lock it only at a higher count,
        // so one attacker cannot lock everybody else out cheaply.
        strike(t, after.saturating_mul(4), base, max, now).or(caused)
    }

    /// Records a success: the source's failure count starts again.
    pub fn record_success(&mut self, source: Option<IpAddr>) {
        if let Some(ip) = source {
            if let Some(s) = self.by_source.get_mut(&ip) {
                s.failures = 0;
            }
        }
    }
}

fn remaining(s: Option<&Strikes>, now: Instant) -> Option<Duration> {
    s.and_then(|s| s.locked_until)
        .and_then(|until| until.checked_duration_since(now))
        .filter(|d| !d.is_zero())
}

fn strike(s: &mut Strikes, after: u32, base: Duration, max: Duration, now: Instant) -> Option<Duration> {
    if now.duration_since(s.last) > GUARD_MEMORY {
        *s = Strikes {
            failures: 0,
            lockouts: 0,
            locked_until: None,
            last: now,
        };
    }
    s.last = now;
    s.failures += 1;
    if s.failures < after {
        return None;
    }
    let lock = base.saturating_mul(1u32 << s.lockouts.min(20)).min(max);
    s.failures = 0;
    s.lockouts += 1;
    s.locked_until = Some(now + lock);
    Some(lock)
}

fn prune<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Strikes>, now: Instant) {
    if map.len() < GUARD_CAPACITY {
        return;
    }
    map.retain(|_, s| s.locked_until.is_some_and(|u| u > now) || now.duration_since(s.last) < Duration::from_secs(600));
    if map.len() >= GUARD_CAPACITY {
        // Still full of fresh entries: drop the ones that are not locked.
        map.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;
    use call::{Identity, TrueConfId};

    const HOME: &str = "srv.example";

    fn conf(id: &str) -> Conference {
        Conference {
            id: id.into(),
            name: id.into(),
            owner: Some("olga@srv.example".into()),
            closed: false,
            allow_anonymous: true,
            pin: None,
            lobby: false,
            chat: true,
            max_participants: 10,
            permanent: false,
            moderators: vec!["mona@srv.example".into()],
            participants: vec!["pete@srv.example".into()],
        }
    }

    fn anon() -> Party {
        Party {
            identity: Identity::Anonymous {
                display_name: "Guest".into(),
            },
            display_name: None,
            protocol: Protocol::Loopback,
            remote: Some("192.0.2.7:5060".parse().unwrap()),
        }
    }

    fn user(u: &str) -> Party {
        Party {
            identity: Identity::Account(TrueConfId::new(u, HOME).unwrap()),
            display_name: None,
            protocol: Protocol::Sip,
            remote: Some("192.0.2.8:5060".parse().unwrap()),
        }
    }

    fn live(n: u32) -> LiveState {
        LiveState {
            participants: n,
            running: n > 0,
            locked: false,
        }
    }

    #[test]
    fn admission_table() {
        let open = conf("c");
        let closed = Conference {
            closed: true,
            ..conf("c")
        };
        let closed_pin = Conference {
            pin: Some("1234".into()),
            ..closed.clone()
        };
        let closed_lobby = Conference {
            lobby: true,
            ..closed.clone()
        };
        let closed_pin_lobby = Conference {
            lobby: true,
            ..closed_pin.clone()
        };
        let no_anon = Conference {
            allow_anonymous: false,
            ..open.clone()
        };
        let open_pin = Conference {
            pin: Some("55".into()),
            ..open.clone()
        };
        let locked = LiveState {
            locked: true,
            ..live(1)
        };
        use Admission::*;
        let rows: Vec<(&str, &Conference, LiveState, Party, Option<&str>, Admission)> = vec![
            (
                "open, not running, guest starts it",
                &open,
                live(0),
                anon(),
                None,
                Admit(Role::Guest),
            ),
            ("open, running, guest", &open, live(3), anon(), None, Admit(Role::Guest)),
            (
                "open, unlisted account is a guest",
                &open,
                live(1),
                user("zed"),
                None,
                Admit(Role::Guest),
            ),
            (
                "listed participant",
                &open,
                live(1),
                user("pete"),
                None,
                Admit(Role::Participant),
            ),
            ("owner", &closed_pin, live(0), user("olga"), None, Admit(Role::Owner)),
            (
                "moderator bypasses PIN",
                &closed_pin,
                live(0),
                user("mona"),
                None,
                Admit(Role::Moderator),
            ),
            (
                "moderator gets into a full room",
                &open,
                live(10),
                user("mona"),
                None,
                Admit(Role::Moderator),
            ),
            (
                "moderator gets into a locked room",
                &open,
                locked,
                user("mona"),
                None,
                Admit(Role::Moderator),
            ),
            ("full", &open, live(10), anon(), None, Refuse(EndReason::ConferenceFull)),
            (
                "full, listed participant",
                &open,
                live(10),
                user("pete"),
                None,
                Refuse(EndReason::ConferenceFull),
            ),
            (
                "locked",
                &open,
                locked,
                user("pete"),
                None,
                Refuse(EndReason::ConferenceLocked),
            ),
            (
                "anonymous not allowed",
                &no_anon,
                live(1),
                anon(),
                None,
                Refuse(EndReason::AnonymousNotAllowed),
            ),
            (
                "anonymous not allowed, account ok",
                &no_anon,
                live(1),
                user("zed"),
                None,
                Admit(Role::Guest),
            ),
            (
                "closed, guest, nothing set",
                &closed,
                live(1),
                anon(),
                None,
                Refuse(EndReason::Forbidden),
            ),
            (
                "closed, listed",
                &closed,
                live(1),
                user("pete"),
                None,
                Admit(Role::Participant),
            ),
            (
                "closed+PIN, no PIN offered",
                &closed_pin,
                live(1),
                anon(),
                None,
                NeedPin,
            ),
            (
                "closed+PIN, right PIN",
                &closed_pin,
                live(1),
                anon(),
                Some("1234"),
                Admit(Role::Guest),
            ),
            (
                "closed+PIN, wrong PIN",
                &closed_pin,
                live(1),
                anon(),
                Some("1111"),
                Refuse(EndReason::WrongPin),
            ),
            (
                "closed+PIN, listed needs none",
                &closed_pin,
                live(1),
                user("pete"),
                None,
                Admit(Role::Participant),
            ),
            ("closed+lobby", &closed_lobby, live(1), anon(), None, Lobby),
            (
                "closed+PIN+lobby, no PIN: lobby",
                &closed_pin_lobby,
                live(1),
                anon(),
                None,
                Lobby,
            ),
            (
                "closed+PIN+lobby, PIN: in",
                &closed_pin_lobby,
                live(1),
                anon(),
                Some("1234"),
                Admit(Role::Guest),
            ),
            ("open+PIN, guest asked", &open_pin, live(1), anon(), None, NeedPin),
            (
                "open+PIN, listed not asked",
                &open_pin,
                live(1),
                user("pete"),
                None,
                Admit(Role::Participant),
            ),
        ];
        for (name, c, l, p, pin, want) in rows {
            assert_eq!(admission(c, l, &p, pin, HOME), want, "{name}");
        }
    }

    fn cfg() -> RoutingConfig {
        RoutingConfig {
            routes: vec![
                RouteConfig {
                    name: "intl".into(),
                    prefix: Some("00".into()),
                    pattern: None,
                    strip: 2,
                    prepend: "+".into(),
                    target: "sip:carrier".into(),
                },
                RouteConfig {
                    name: "ru-mobile".into(),
                    prefix: None,
                    pattern: Some("89XXXXXXXXX".into()),
                    strip: 1,
                    prepend: "+7".into(),
                    target: "h323:gw.example".into(),
                },
            ],
            ..RoutingConfig::default()
        }
    }

    fn decide(dialed: &str, party: &Party, facts: &Facts, cfg: &RoutingConfig) -> Decision {
        let guard = AbuseGuard::new(cfg);
        route(
            &Incoming {
                raw_dialed: dialed,
                party,
                user_agent: None,
                pin: None,
            },
            facts,
            cfg,
            &guard,
            HOME,
            Instant::now(),
        )
    }

    #[test]
    fn routing_rules_in_order() {
        let c = cfg();
        let none = Facts::default();
        let with_conf = Facts {
            conference: Some((conf("c1"), live(0))),
            account: None,
        };
        let pete = TrueConfId::new("pete", HOME).unwrap();
        let with_acct = Facts {
            conference: None,
            account: Some((pete.clone(), 1)),
        };
        let with_offline = Facts {
            conference: None,
            account: Some((pete.clone(), 0)),
        };
        let no_anon = RoutingConfig {
            allow_anonymous: false,
            ..c.clone()
        };
        let no_ivr = RoutingConfig {
            ivr: false,
            ..c.clone()
        };
        let mut sip_anon = anon();
        sip_anon.protocol = Protocol::Sip;
        let rows: Vec<(&str, &str, Party, &Facts, &RoutingConfig, Decision)> = vec![
            (
                "1: anonymous disabled",
                "c1",
                anon(),
                &with_conf,
                &no_anon,
                Decision::Reject(EndReason::AnonymousNotAllowed),
            ),
            (
                "2: nothing dialed, SIP → IVR",
                "",
                sip_anon.clone(),
                &none,
                &c,
                Decision::Ivr,
            ),
            (
                "2: nothing dialed, no IVR",
                "",
                sip_anon.clone(),
                &none,
                &no_ivr,
                Decision::Reject(EndReason::NotFound),
            ),
            (
                "2: nothing dialed, loopback has no IVR",
                "  ",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::NotFound),
            ),
            (
                "3: conference",
                "\\c\\c1",
                anon(),
                &with_conf,
                &c,
                Decision::Conference {
                    id: "c1".into(),
                    admission: Admission::Admit(Role::Guest),
                },
            ),
            (
                "3: bare conference id",
                "c1",
                anon(),
                &with_conf,
                &c,
                Decision::Conference {
                    id: "c1".into(),
                    admission: Admission::Admit(Role::Guest),
                },
            ),
            (
                "3: unknown \\c\\ id",
                "\\c\\nope",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::NotFound),
            ),
            (
                "4: account",
                "pete",
                user("olga"),
                &with_acct,
                &c,
                Decision::Account(pete.clone()),
            ),
            (
                "4: full id",
                "pete@srv.example",
                user("olga"),
                &with_acct,
                &c,
                Decision::Account(pete.clone()),
            ),
            (
                "4: not reachable",
                "pete",
                user("olga"),
                &with_offline,
                &c,
                Decision::Reject(EndReason::Unreachable),
            ),
            (
                "5: federation",
                "bob@other.example",
                user("olga"),
                &none,
                &c,
                Decision::Federation {
                    user: "bob".into(),
                    server: "other.example".into(),
                },
            ),
            (
                "6: prefix route",
                "0049301234",
                user("olga"),
                &none,
                &c,
                Decision::Gateway {
                    route: "intl".into(),
                    target: "sip:carrier".into(),
                    number: "+49301234".into(),
                },
            ),
            (
                "6: #tel: via pattern",
                "#tel:89161234567",
                user("olga"),
                &none,
                &c,
                Decision::Gateway {
                    route: "ru-mobile".into(),
                    target: "h323:gw.example".into(),
                    number: "+79161234567".into(),
                },
            ),
            (
                "6: guests may not dial out",
                "0049301234",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::Forbidden),
            ),
            (
                "6: direct #sip:",
                "#sip:a@b.example",
                user("olga"),
                &none,
                &c,
                Decision::Direct(CallString::parse("#sip:a@b.example").unwrap()),
            ),
            (
                "6: guests may not #sip:",
                "#sip:a@b.example",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::Forbidden),
            ),
            ("7: unknown, SIP → IVR", "12345", user("olga"), &none, &c, Decision::Ivr),
            (
                "7: unknown, loopback",
                "ghost",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::NotFound),
            ),
            (
                "bad dial string",
                "\\c\\bad-id!",
                anon(),
                &none,
                &c,
                Decision::Reject(EndReason::BadDialString),
            ),
        ];
        for (name, dialed, party, facts, cfg, want) in rows {
            let mut party = party;
            if name.starts_with("7: unknown, SIP") {
                party.protocol = Protocol::Sip;
            }
            assert_eq!(decide(dialed, &party, facts, cfg), want, "{name}");
        }
    }

    #[test]
    fn abuse_checks_come_first() {
        let c = cfg();
        let facts = Facts {
            conference: Some((conf("c1"), live(0))),
            account: None,
        };
        let long = "1".repeat(c.max_dial_string + 1);
        assert_eq!(
            decide(&long, &anon(), &facts, &c),
            Decision::Reject(EndReason::DialStringTooLong)
        );
        let deny = RoutingConfig {
            deny: vec!["192.0.2.0/24".into()],
            ..c.clone()
        };
        assert_eq!(
            decide("c1", &anon(), &facts, &deny),
            Decision::Reject(EndReason::Forbidden)
        );
        let allow = RoutingConfig {
            allow: vec!["198.51.100.0/24".into()],
            ..c.clone()
        };
        assert_eq!(
            decide("c1", &anon(), &facts, &allow),
            Decision::Reject(EndReason::Forbidden)
        );
        let allow = RoutingConfig {
            allow: vec!["192.0.2.0/25".into()],
            ..c.clone()
        };
        assert!(matches!(
            decide("c1", &anon(), &facts, &allow),
            Decision::Conference { .. }
        ));
        let ua = RoutingConfig {
            blocked_user_agents: vec!["friendly-scanner".into()],
            ..c.clone()
        };
        let guard = AbuseGuard::new(&ua);
        let d = route(
            &Incoming {
                raw_dialed: "c1",
                party: &anon(),
                user_agent: Some("Friendly-Scanner 1.0"),
                pin: None,
            },
            &facts,
            &ua,
            &guard,
            HOME,
            Instant::now(),
        );
        assert_eq!(d, Decision::Reject(EndReason::Forbidden));
    }

    #[test]
    fn lockout_with_back_off_per_source_and_target() {
        let c = RoutingConfig {
            lockout_after: 3,
            lockout_secs: 10,
            lockout_max_secs: 35,
            ..RoutingConfig::default()
        };
        let mut g = AbuseGuard::new(&c);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(g.record_failure(Some(ip), "c1", t0), None);
        assert_eq!(g.record_failure(Some(ip), "c1", t0), None);
        assert_eq!(g.record_failure(Some(ip), "c1", t0), Some(Duration::from_secs(10)));
        assert_eq!(
            g.locked_source(ip, t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(g.locked_source(ip, t0 + Duration::from_secs(10)), None);
        // second lock-out doubles, third is capped
        let t1 = t0 + Duration::from_secs(11);
        for _ in 0..3 {
            g.record_failure(Some(ip), "c2", t1);
        }
        assert_eq!(g.locked_source(ip, t1), Some(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(21);
        for _ in 0..3 {
            g.record_failure(Some(ip), "c3", t2);
        }
        assert_eq!(g.locked_source(ip, t2), Some(Duration::from_secs(35)));
        // the router refuses a locked source before anything else
        let party = anon();
        let facts = Facts {
            conference: Some((conf("c1"), live(0))),
            account: None,
        };
        let d = route(
            &Incoming {
                raw_dialed: "c1",
                party: &party,
                user_agent: None,
                pin: None,
            },
            &facts,
            &c,
            &g,
            HOME,
            t2,
        );
        assert_eq!(d, Decision::Reject(EndReason::LockedOut { retry_after_secs: 35 }));
        // a target locks at four times the count, from many sources
        let mut g = AbuseGuard::new(&c);
        for i in 0..11u8 {
            assert_eq!(g.locked_target("c9", t0), None);
            g.record_failure(Some(IpAddr::from([198, 51, 100, i])), "c9", t0);
        }
        assert!(g.locked_target("c9", t0).is_none());
        g.record_failure(Some("198.51.100.99".parse().unwrap()), "c9", t0);
        assert_eq!(g.locked_target("c9", t0), Some(Duration::from_secs(10)));
        // success resets the source's count
        let mut g = AbuseGuard::new(&c);
        g.record_failure(Some(ip), "x", t0);
        g.record_failure(Some(ip), "x", t0);
        g.record_success(Some(ip));
        assert_eq!(g.record_failure(Some(ip), "x", t0), None);
    }

    #[test]
    fn digit_patterns() {
        let p = DigitPattern::parse("8[3-59]XX.").unwrap();
        assert!(p.matches("83001"));
        assert!(p.matches("89001234"));
        assert!(!p.matches("8300"), "'.' needs at least one more");
        assert!(!p.matches("86001"));
        assert!(DigitPattern::parse("NXXNXXXXXX").unwrap().matches("2125551234"));
        assert!(!DigitPattern::parse("NXXNXXXXXX").unwrap().matches("1125551234"));
        for bad in ["", "8[", "8[]", "8[9-3]", "8.1", "abc", "8[a]"] {
            assert!(DigitPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ip_networks() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("203.0.113.5".parse().unwrap()));
        assert!(IpNet::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:1::1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nonsense").is_none());
        assert_eq!(IpNet::parse("192.0.2.1").unwrap().prefix, 32);
    }
}
