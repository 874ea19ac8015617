//! An ICE-lite agent (RFC 8445 §2.5) for one web-client session.
//!
//! We are always the lite, *controlled* side: we gather one host candidate
//! (the relay endpoint's address, see [`crate::sdp`]), send no checks of our
//! own, and answer the browser's connectivity checks. The browser (a full
//! agent, controlling) nominates a pair with USE-CANDIDATE; from then on
//! its periodic checks double as consent freshness (RFC 7675).
//!
//! How a datagram classified as STUN by the relay is handled:
//!
//! | input | answer |
//! |---|---|
//! | does not parse, FINGERPRINT missing or wrong (RFC 8445 §7.2.2, RFC 8489 §7.3) | silence |
//! | not a Binding request (responses, indications: keep-alives) | silence |
//! | comprehension-required attribute unknown | 420 with UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1) |
//! | USERNAME or MESSAGE-INTEGRITY missing | 400 (RFC 8489 §9.1.3) |
//! | USERNAME is not `<our ufrag>:<their ufrag>` | 401 (RFC 8489 §9.1.3) |
//! | MESSAGE-INTEGRITY wrong for our password | 401 |
//! | ICE-CONTROLLED present (the peer wants to be controlled too) | 487 (RFC 8445 §7.3.1.1: a lite agent stays controlled) |
//! | valid | success with XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT (RFC 8445 §7.3.1.2) |
//!
//! Error responses carry FINGERPRINT but no MESSAGE-INTEGRITY (RFC 8489
//! §6.3.4: the request could not be authenticated). Before the remote
//! ufrag is known (checks can race the SDP answer), only our half of the
//! USERNAME is checked: the integrity key is our own password.
//!
//! A valid check with USE-CANDIDATE nominates its source address
//! ([`IceEvent::Nominated`]); a later nomination of another address moves
//! it (the browser renominates after a network change). The driver latches
//! the relay endpoint to the nominated address. When no valid check has
//! come from the nominated address for [`CONSENT_TIMEOUT`] (30 s, RFC 7675
//! §5.1), [`IceEvent::ConsentExpired`] tells the driver to stop sending.
//! After consent expired, or after an ICE restart ([`IceLiteAgent::restart`]),
//! the next nomination is reported even when it names the same address
//! as before, so that the driver points its endpoint there again.
//!
//! Drain contract: after every [`IceLiteAgent::handle_input`] and
//! [`IceLiteAgent::handle_timeout`], call [`IceLiteAgent::poll_output`]
//! until it returns `None`, and arm a timer for
//! [`IceLiteAgent::poll_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{code, Class, MessageBuilder, StunMessage, METHOD_BINDING};

/// Consent lapses this long after the last valid check (RFC 7675 §5.1).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The characters of `ice-char` (RFC 8839 §5.4).
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// ICE credentials of one side: `a=ice-ufrag` and `a=ice-pwd`.
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// The username fragment (4–256 ice-chars).
    pub ufrag: String,
    /// The password (22–256 ice-chars).
    pub pwd: String,
}

impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}

/// Failures of the ICE layer that are not the peer's packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// The system's random generator failed.
    #[error("random generator failed")]
    Random,
}

/// Whether `s` is 1..=256 ice-chars.
pub(crate) fn is_ice_chars(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| ICE_CHARS.contains(&b))
}

impl IceCredentials {
    /// Fresh random credentials: an 8-character ufrag and a 24-character
    /// password (RFC 8445 §5.3: at least 24 and 128 bits of randomness).
    pub fn random() -> Result<Self, IceError> {
        let mut r = [0u8; 32];
        aws_lc_rs::rand::fill(&mut r).map_err(|_| IceError::Random)?;
        let s: String = r.iter().map(|b| char::from(ICE_CHARS[usize::from(b & 63)])).collect();
        Ok(Self {
            ufrag: s[..8].to_string(),
            pwd: s[8..].to_string(),
        })
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// What the agent tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceEvent {
    /// The browser nominated the pair whose remote side is `remote`:
    /// latch the relay endpoint to it. Raised again if it moves.
    Nominated {
        /// The browser's address as we see it.
        remote: SocketAddr,
    },
    /// No valid check from the nominated address for [`CONSENT_TIMEOUT`]:
    /// stop sending media there (RFC 7675 §5.1).
    ConsentExpired {
        /// The address consent was lost for.
        remote: SocketAddr,
    },
}

/// Output of [`IceLiteAgent::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceOutput {
    /// Send this STUN response from the endpoint's socket.
    Transmit(Transmit),
    /// Something the driver acts on.
    Event(IceEvent),
}

/// Connection state of the agent (RFC 8445 §6.1.3, reduced for lite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceState {
    /// No valid check yet.
    New,
    /// Valid checks seen, nothing nominated.
    Checking,
    /// A pair is nominated and consent is fresh.
    Connected,
    /// Consent expired on the nominated pair.
    Disconnected,
}

/// Counters of what was dropped or refused; the driver exports them as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceStats {
    /// Valid checks answered with success.
    pub answered: u64,
    /// Datagrams that did not parse as STUN.
    pub malformed: u64,
    /// FINGERPRINT missing or wrong.
    pub bad_fingerprint: u64,
    /// Not a Binding request.
    pub ignored: u64,
    /// Answered 400.
    pub bad_request: u64,
    /// Answered 401.
    pub unauthenticated: u64,
    /// Answered 420.
    pub unknown_attribute: u64,
    /// Answered 487.
    pub role_conflict: u64,
}

/// The ICE-lite agent of one session. See the module docs.
#[derive(Debug)]
pub struct IceLiteAgent {
    local: IceCredentials,
    remote_ufrag: Option<String>,
    nominated: Option<SocketAddr>,
    /// Time of the last valid check from the nominated address.
    last_consent: Option<Instant>,
    state: IceState,
    /// The next nomination is reported even for the address nominated now
    /// (after consent expired or an ICE restart).
    renominate: bool,
    software: Option<String>,
    out: VecDeque<IceOutput>,
    stats: IceStats,
}

impl IceLiteAgent {
    /// A new agent with our credentials (the ones put in our SDP).
    pub fn new(local: IceCredentials) -> Self {
        Self {
            local,
            remote_ufrag: None,
            nominated: None,
            last_consent: None,
            state: IceState::New,
            renominate: false,
            software: None,
            out: VecDeque::new(),
            stats: IceStats::default(),
        }
    }

    /// Adds SOFTWARE to our responses (RFC 8489 §14.14; off by default).
    pub fn set_software(&mut self, software: Option<String>) {
        self.software = software;
    }

    /// Our credentials.
    pub fn local_credentials(&self) -> &IceCredentials {
        &self.local
    }

    /// The browser's ufrag, from its SDP. Checks are then required to name it.
    pub fn set_remote_ufrag(&mut self, ufrag: &str) {
        self.remote_ufrag = Some(ufrag.to_string());
    }

    /// ICE restart (RFC 8445 §9): new local credentials, the remote ufrag
    /// forgotten until the new SDP gives it, the nomination kept until a
    /// new one arrives (media keeps flowing meanwhile).
    pub fn restart(&mut self, local: IceCredentials) {
        self.local = local;
        self.remote_ufrag = None;
        self.renominate = true;
    }

    /// The nominated remote address.
    pub fn nominated(&self) -> Option<SocketAddr> {
        self.nominated
    }

    /// When the last valid check from the nominated address arrived.
    pub fn last_consent(&self) -> Option<Instant> {
        self.last_consent
    }

    /// The agent's state.
    pub fn state(&self) -> IceState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> &IceStats {
        &self.stats
    }

    /// Handles one datagram the relay classified as STUN, received from `source`.
    pub fn handle_input(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        let Ok(msg) = StunMessage::parse(datagram) else {
            self.stats.malformed += 1;
            return;
        };
        if !msg.verify_fingerprint() {
            self.stats.bad_fingerprint += 1;
            return;
        }
        if msg.class != Class::Request || msg.method != METHOD_BINDING {
            self.stats.ignored += 1;
            return;
        }
        if !msg.unknown_required.is_empty() {
            self.stats.unknown_attribute += 1;
            let mut b = MessageBuilder::new(Class::ErrorResponse, METHOD_BINDING, msg.transaction_id);
            b.error_code(code::UNKNOWN_ATTRIBUTE, "Unknown Attribute");
            b.unknown_attributes(&msg.unknown_required);
            self.respond(b, source, false);
            return;
        }
        let Some(username) = msg.username.filter(|_| msg.has_integrity()) else {
            self.stats.bad_request += 1;
            self.error(&msg, source, code::BAD_REQUEST, "Bad Request");
            return;
        };
        if !self.username_ok(username) || !msg.verify_integrity(self.local.pwd.as_bytes()) {
            self.stats.unauthenticated += 1;
            self.error(&msg, source, code::UNAUTHENTICATED, "Unauthenticated");
            return;
        }
        if msg.ice_controlled.is_some() {
            self.stats.role_conflict += 1;
            self.error(&msg, source, code::ROLE_CONFLICT, "Role Conflict");
            return;
        }

        // Valid check: answer it (RFC 8445 §7.3.1.2).
        self.stats.answered += 1;
        let mut b = MessageBuilder::new(Class::SuccessResponse, METHOD_BINDING, msg.transaction_id);
        b.xor_mapped_address(source);
        self.respond(b, source, true);

        if self.state == IceState::New {
            self.state = IceState::Checking;
        }
        if msg.use_candidate && (self.nominated != Some(source) || self.renominate) {
            // RFC 8445 §7.3.1.5: the controlled agent takes the nomination.
            self.nominated = Some(source);
            self.renominate = false;
            self.out
                .push_back(IceOutput::Event(IceEvent::Nominated { remote: source }));
        }
        if self.nominated == Some(source) {
            self.last_consent = Some(now);
            self.state = IceState::Connected;
        }
    }

    fn username_ok(&self, username: &str) -> bool {
        let Some((ours, theirs)) = username.split_once(':') else {
            return false;
        };
        ours == self.local.ufrag && self.remote_ufrag.as_deref().is_none_or(|r| r == theirs)
    }

    fn error(&mut self, msg: &StunMessage<'_>, to: SocketAddr, code: u16, reason: &str) {
        let mut b = MessageBuilder::new(Class::ErrorResponse, METHOD_BINDING, msg.transaction_id);
        b.error_code(code, reason);
        self.respond(b, to, false);
    }

    fn respond(&mut self, mut b: MessageBuilder, to: SocketAddr, integrity: bool) {
        if let Some(s) = &self.software {
            b.software(s);
        }
        let key = integrity.then_some(self.local.pwd.as_bytes());
        let contents = b.finish(key, true);
        self.out.push_back(IceOutput::Transmit(Transmit {
            destination: to,
            contents,
        }));
    }

    /// Advances time: raises [`IceEvent::ConsentExpired`] when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(remote), Some(t), IceState::Connected) = (self.nominated, self.last_consent, self.state) {
            if now >= t + CONSENT_TIMEOUT {
                self.state = IceState::Disconnected;
                self.renominate = true;
                self.out
                    .push_back(IceOutput::Event(IceEvent::ConsentExpired { remote }));
            }
        }
    }

    /// When to call [`IceLiteAgent::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            IceState::Connected => self.last_consent.map(|t| t + CONSENT_TIMEOUT),
            _ => None,
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<IceOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{ErrorCode, TransactionId};

    fn creds(u: &str, p: &str) -> IceCredentials {
        IceCredentials {
            ufrag: u.into(),
            pwd: p.into(),
        }
    }

    fn agent() -> IceLiteAgent {
        let mut a = IceLiteAgent::new(creds("srvU", "serverpasswordserverpass"));
        a.set_remote_ufrag("brwU");
        a
    }

    /// A check as Chrome sends it: USERNAME, ICE-CONTROLLING, PRIORITY,
    /// optionally USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT.
    fn check(username: &str, pwd: &[u8], nominate: bool, tid: u8) -> Vec<u8> {
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TransactionId([tid; 12]));
        b.attribute(0xC057, &[0, 1, 0, 10]); // GOOG-NETWORK-INFO: comprehension-optional
        b.username(username)
            .ice_controlling(0x1234_5678_9abc_def0)
            .priority(1_853_817_087);
        if nominate {
            b.use_candidate();
        }
        b.finish(Some(pwd), true)
    }

    fn transmit(a: &mut IceLiteAgent) -> Transmit {
        match a.poll_output() {
            Some(IceOutput::Transmit(t)) => t,
            other => panic!("expected a transmit, got {other:?}"),
        }
    }

    const BROWSER: &str = "192.0.2.10:54321";

    #[test]
    fn answers_a_valid_check_and_reports_nomination() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let t0 = Instant::now();
        a.handle_input(t0, src, &check("srvU:brwU", b"serverpasswordserverpass", false, 1));
        let t = transmit(&mut a);
        assert_eq!(t.destination, src);
        let r = StunMessage::parse(&t.contents).expect("response parses");
        assert_eq!(r.class, Class::SuccessResponse);
        assert_eq!(r.transaction_id, TransactionId([1; 12]));
        assert_eq!(r.xor_mapped_address, Some(src));
        assert!(r.verify_integrity(b"serverpasswordserverpass"));
        assert!(r.verify_fingerprint());
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.state(), IceState::Checking);
        assert_eq!(a.poll_timeout(), None);

        a.handle_input(t0, src, &check("srvU:brwU", b"serverpasswordserverpass", true, 2));
        let _ = transmit(&mut a);
        assert_eq!(
            a.poll_output(),
            Some(IceOutput::Event(IceEvent::Nominated { remote: src }))
        );
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.nominated(), Some(src));
        assert_eq!(a.state(), IceState::Connected);
        assert_eq!(a.last_consent(), Some(t0));

        // Consent refreshed by a later check (no USE-CANDIDATE needed).
        let t1 = t0 + Duration::from_secs(5);
        a.handle_input(t1, src, &check("srvU:brwU", b"serverpasswordserverpass", false, 3));
        let _ = transmit(&mut a);
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.last_consent(), Some(t1));
        assert_eq!(a.poll_timeout(), Some(t1 + CONSENT_TIMEOUT));

        a.handle_timeout(t1 + Duration::from_secs(29));
        assert_eq!(a.poll_output(), None);
        a.handle_timeout(t1 + CONSENT_TIMEOUT);
        assert_eq!(
            a.poll_output(),
            Some(IceOutput::Event(IceEvent::ConsentExpired { remote: src }))
        );
        assert_eq!(a.state(), IceState::Disconnected);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn renomination_moves_the_pair() {
        let mut a = agent();
        let s1: SocketAddr = BROWSER.parse().expect("addr");
        let s2: SocketAddr = "198.51.100.7:4000".parse().expect("addr");
        let now = Instant::now();
        a.handle_input(now, s1, &check("srvU:brwU", b"serverpasswordserverpass", true, 1));
        let _ = transmit(&mut a);
        assert!(matches!(
            a.poll_output(),
            Some(IceOutput::Event(IceEvent::Nominated { .. }))
        ));
        a.handle_input(now, s2, &check("srvU:brwU", b"serverpasswordserverpass", true, 2));
        let _ = transmit(&mut a);
        assert_eq!(
            a.poll_output(),
            Some(IceOutput::Event(IceEvent::Nominated { remote: s2 }))
        );
        assert_eq!(a.nominated(), Some(s2));
    }

    fn error_code_of(t: &Transmit) -> (u16, bool) {
        let r = StunMessage::parse(&t.contents).expect("parses");
        assert_eq!(r.class, Class::ErrorResponse);
        assert!(r.verify_fingerprint());
        let ErrorCode { code, .. } = r.error_code.expect("error code");
        (code, r.has_integrity())
    }

    #[test]
    fn wrong_password_is_401_and_nominates_nothing() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        a.handle_input(Instant::now(), src, &check("srvU:brwU", b"guessedpassword", true, 1));
        assert_eq!(error_code_of(&transmit(&mut a)), (401, false));
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.nominated(), None);
        assert_eq!(a.stats().unauthenticated, 1);
    }

    #[test]
    fn wrong_username_is_401() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        for u in ["srvU:other", "nope:brwU", "srvUbrwU"] {
            a.handle_input(Instant::now(), src, &check(u, b"serverpasswordserverpass", true, 1));
            assert_eq!(error_code_of(&transmit(&mut a)), (401, false), "{u}");
        }
        assert_eq!(a.nominated(), None);
    }

    #[test]
    fn remote_ufrag_unknown_yet_checks_only_ours() {
        let mut a = IceLiteAgent::new(creds("srvU", "serverpasswordserverpass"));
        let src: SocketAddr = BROWSER.parse().expect("addr");
        a.handle_input(
            Instant::now(),
            src,
            &check("srvU:anything", b"serverpasswordserverpass", true, 1),
        );
        let r = transmit(&mut a);
        assert_eq!(
            StunMessage::parse(&r.contents).expect("parses").class,
            Class::SuccessResponse
        );
    }

    #[test]
    fn missing_credentials_is_400() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TransactionId([9; 12]));
        b.username("srvU:brwU");
        a.handle_input(Instant::now(), src, &b.finish(None, true));
        assert_eq!(error_code_of(&transmit(&mut a)), (400, false));
    }

    #[test]
    fn no_or_bad_fingerprint_is_silence() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TransactionId([9; 12]));
        b.username("srvU:brwU");
        a.handle_input(Instant::now(), src, &b.finish(Some(b"serverpasswordserverpass"), false));
        let mut p = check("srvU:brwU", b"serverpasswordserverpass", true, 1);
        let n = p.len();
        p[n - 1] ^= 0xff;
        a.handle_input(Instant::now(), src, &p);
        a.handle_input(Instant::now(), src, b"\x00\x01\x00\x00garbage");
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.stats().bad_fingerprint, 2);
        assert_eq!(a.stats().malformed, 1);
    }

    #[test]
    fn role_conflict_and_unknown_attribute() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TransactionId([3; 12]));
        b.username("srvU:brwU").ice_controlled(1).use_candidate();
        a.handle_input(Instant::now(), src, &b.finish(Some(b"serverpasswordserverpass"), true));
        assert_eq!(error_code_of(&transmit(&mut a)), (487, false));

        let mut b = MessageBuilder::new(Class::Request, METHOD_BINDING, TransactionId([4; 12]));
        b.username("srvU:brwU").attribute(0x7001, &[1, 2, 3, 4]);
        a.handle_input(Instant::now(), src, &b.finish(Some(b"serverpasswordserverpass"), true));
        let t = transmit(&mut a);
        assert_eq!(error_code_of(&t), (420, false));
        let r = StunMessage::parse(&t.contents).expect("parses");
        assert!(r.as_bytes().windows(2).any(|w| w == [0x70, 0x01]));
        assert_eq!(a.nominated(), None);
    }

    #[test]
    fn responses_and_indications_are_ignored() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let b = MessageBuilder::new(Class::Indication, METHOD_BINDING, TransactionId([5; 12]));
        a.handle_input(Instant::now(), src, &b.finish(None, true));
        assert_eq!(a.poll_output(), None);
        assert_eq!(a.stats().ignored, 1);
    }

    #[test]
    fn restart_changes_credentials() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        a.restart(creds("new1", "newpasswordnewpassword12"));
        a.handle_input(
            Instant::now(),
            src,
            &check("srvU:brwU", b"serverpasswordserverpass", true, 1),
        );
        assert_eq!(error_code_of(&transmit(&mut a)), (401, false));
        a.set_remote_ufrag("brw2");
        a.handle_input(
            Instant::now(),
            src,
            &check("new1:brw2", b"newpasswordnewpassword12", true, 2),
        );
        let r = transmit(&mut a);
        assert_eq!(
            StunMessage::parse(&r.contents).expect("parses").class,
            Class::SuccessResponse
        );
    }

    #[test]
    fn same_address_is_nominated_again_after_restart_or_lost_consent() {
        let mut a = agent();
        let src: SocketAddr = BROWSER.parse().expect("addr");
        let t0 = Instant::now();
        let nominated = |a: &mut IceLiteAgent| {
            let mut seen = false;
            while let Some(o) = a.poll_output() {
                seen |= o == IceOutput::Event(IceEvent::Nominated { remote: src });
            }
            seen
        };
        a.handle_input(t0, src, &check("srvU:brwU", b"serverpasswordserverpass", true, 1));
        assert!(nominated(&mut a));
        // The same nomination again is not news.
        a.handle_input(t0, src, &check("srvU:brwU", b"serverpasswordserverpass", true, 2));
        assert!(!nominated(&mut a));

        // Consent lapses; the browser comes back from the same address.
        a.handle_timeout(t0 + CONSENT_TIMEOUT);
        assert_eq!(
            a.poll_output(),
            Some(IceOutput::Event(IceEvent::ConsentExpired { remote: src }))
        );
        let t1 = t0 + CONSENT_TIMEOUT + Duration::from_secs(1);
        a.handle_input(t1, src, &check("srvU:brwU", b"serverpasswordserverpass", false, 3));
        assert!(!nominated(&mut a), "a check without USE-CANDIDATE nominates nothing");
        a.handle_input(t1, src, &check("srvU:brwU", b"serverpasswordserverpass", true, 4));
        assert!(nominated(&mut a), "reported again after consent expired");
        assert_eq!(a.state(), IceState::Connected);

        // An ICE restart: the new credentials' first nomination is reported too.
        a.restart(creds("new1", "newpasswordnewpassword12"));
        a.set_remote_ufrag("brw2");
        a.handle_input(t1, src, &check("new1:brw2", b"newpasswordnewpassword12", true, 5));
        assert!(nominated(&mut a), "reported again after a restart");
        a.handle_input(t1, src, &check("new1:brw2", b"newpasswordnewpassword12", true, 6));
        assert!(!nominated(&mut a));
    }

    #[test]
    fn random_credentials_are_ice_chars() {
        let c = IceCredentials::random().expect("random");
        assert_eq!(c.ufrag.len(), 8);
        assert_eq!(c.pwd.len(), 24);
        assert!(is_ice_chars(&c.ufrag) && is_ice_chars(&c.pwd));
        assert_ne!(c, IceCredentials::random().expect("random"));
    }
}
