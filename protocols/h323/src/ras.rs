//! The RAS gatekeeper (H.225.0 §7: Registration, Admission and Status on
//! UDP 1719), sans-IO.
//!
//! One [`Gatekeeper`] serves every endpoint. Feed each datagram with
//! [`Gatekeeper::handle_input`] and the clock with
//! [`Gatekeeper::handle_timeout`]; after every input or command drain
//! [`Gatekeeper::poll_output`] until it returns `None` (datagrams to send and
//! [`Event`]s), and wake up at [`Gatekeeper::poll_timeout`].
//!
//! What it answers:
//! - GRQ → GCF with our gatekeeper identifier and RAS address, or GRJ
//!   (`undefinedReason`) when the endpoint asks for another gatekeeper
//!   (H.225.0 §7.2.1).
//! - RRQ → RCF (endpoint identifier, time to live, the aliases kept) or RRJ.
//!   A full registration is not answered at once: the core emits
//!   [`Event::Authorize`] with the aliases and waits for
//!   [`Gatekeeper::authorize`] (the account check is the caller's policy,
//!   possibly asynchronous). A lightweight re-registration (`keepAlive`,
//!   H.225.0 §7.9.1) refreshes the registration at once. Reasons: a
//!   `gatekeeperIdentifier` that is not ours → `discoveryRequired`; a
//!   keep-alive from an unknown endpoint → `fullRegistrationRequired`; no
//!   H.323-ID or dialedDigits alias, or too many → `invalidAlias`; the
//!   caller's verdict otherwise (`invalidAlias`, `securityDenial`); the
//!   table full → `resourceUnavailable`.
//!   A registration is called at its call-signalling address on the IP
//!   address it registered from, else the first it gives
//!   ([`Event::Registered`]).
//! - URQ → UCF, or URJ `notCurrentlyRegistered`.
//! - ARQ → ACF with `callModel gatekeeperRouted` and `destCallSignalAddress`
//!   = our call-signalling address (confgate routes the call signalling: the
//!   dialed alias arrives in the Setup and is routed there), or ARJ:
//!   `callerNotRegistered`, `incompleteAddress` (nothing to call),
//!   `resourceUnavailable` (no call signalling served). When the endpoint
//!   answers a call (`answerCall`), the ACF points at its own address. An
//!   admission to place a call is reported ([`Event::Admitted`]: the call
//!   identifier and the registration's account), so that the Setup that
//!   follows can be taken as the account's.
//! - H.235 password tokens ([`crate::h235`]: the endpoint's MD5 password
//!   hash, H.235.1 procedure I): a GCF names the procedure the GRQ offers;
//!   a full RRQ's token is checked against the password the verdict gives
//!   (a token naming none of the aliases asked for, a wrong hash, a
//!   timestamp outside [`Config::token_window`] of the wall clock given by
//!   [`Gatekeeper::set_wall_clock`], one older than the last token taken
//!   from its sender, or the same procedure I token twice: RRJ
//!   `securityDenial`). A registration that proved its password so must
//!   prove it again in every keep-alive RRQ, ARQ, URQ and DRQ (else
//!   `securityDenial`). Requests without tokens are judged by the verdict
//!   (the caller's configured policy) alone.
//! - BRQ → BCF (the bandwidth asked for, capped), DRQ → DCF (or DRJ
//!   `notRegistered`), LRQ → LCF with our addresses when an alias asked for
//!   is registered here, else LRJ `requestDenied`; IRR → IACK when the
//!   endpoint asks for a response (and it refreshes the registration);
//!   other requests → `unknownMessageResponse`. Confirms, rejects and
//!   undecodable datagrams are dropped (counted by the caller).
//!
//! Every request is answered to the address it came from (LRQ's
//! `replyAddress` only when it is that same IP address), so the gatekeeper
//! cannot be used to send datagrams to third parties.
//!
//! A registration belongs to the IP address that made it: requests naming
//! its endpoint identifier from another address are treated as from an
//! unregistered endpoint. Registrations expire after their time to live
//! plus [`Config::grace`] without a re-registration.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rasn::types::{BmpString, Ia5String, Integer, OctetString};

use crate::asn1::{self, h225};
use crate::h235::{self, PasswordToken, Procedure};
use crate::signalling::protocol_identifier;

/// Longest alias kept (characters).
const MAX_ALIAS: usize = 128;
/// Most aliases in one registration.
pub const MAX_ALIASES: usize = 16;
/// Most full registrations waiting for [`Gatekeeper::authorize`].
const MAX_PENDING: usize = 256;
/// How long a full registration waits for its verdict before it is dropped.
const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Most senders whose last password token is remembered (for replays).
const MAX_TOKEN_SENDERS: usize = 20_000;

/// The gatekeeper's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our gatekeeper identifier (the server name), at most 128 characters.
    pub gatekeeper_identifier: String,
    /// Our RAS address as endpoints reach it.
    pub ras_address: SocketAddr,
    /// Our call-signalling address (ACF, LCF); `None`: no call signalling
    /// is served and admissions are refused.
    pub call_signal_address: Option<SocketAddr>,
    /// The time to live granted (and the most granted when the endpoint asks
    /// for less, the endpoint's value is used).
    pub time_to_live: Duration,
    /// How long past its time to live a registration is kept.
    pub grace: Duration,
    /// Most bandwidth granted per call, in units of 100 bit/s.
    pub max_bandwidth: u32,
    /// Most registrations at once.
    pub max_registrations: usize,
    /// Mixed into endpoint identifiers so that they are not guessable from
    /// one daemon run to the next.
    pub endpoint_id_salt: u64,
    /// How far a password token's timestamp may be from our clock (H.235.0
    /// §10.3.3: the receiver checks that the time is within an acceptable
    /// window); older tokens are refused as replays.
    pub token_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gatekeeper_identifier: "confgate".into(),
            ras_address: SocketAddr::from(([127, 0, 0, 1], 1719)),
            call_signal_address: Some(SocketAddr::from(([127, 0, 0, 1], 1720))),
            time_to_live: Duration::from_secs(300),
            grace: Duration::from_secs(30),
            max_bandwidth: 40_960,
            max_registrations: 10_000,
            endpoint_id_salt: 0,
            token_window: Duration::from_secs(120),
        }
    }
}

/// A registered alias (H.225.0 `AliasAddress`, the kinds a registration may
/// use here).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Alias {
    /// `h323-ID`, a BMPString name.
    H323Id(String),
    /// `dialedDigits`, an E.164 number (`0-9 * # ,`).
    DialedDigits(String),
}

impl Alias {
    /// The alias text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::H323Id(s) | Self::DialedDigits(s) => s,
        }
    }

    /// The alias of an `AliasAddress`, if it is a well-formed H.323-ID or
    /// dialedDigits.
    pub fn from_asn1(a: &h225::AliasAddress) -> Option<Self> {
        match a {
            h225::AliasAddress::h323_ID(b) => {
                let s: String = char::decode_utf16(b.clone().into_vec())
                    .collect::<Result<_, _>>()
                    .ok()?;
                (!s.is_empty() && s.chars().count() <= MAX_ALIAS && !s.chars().any(char::is_control))
                    .then_some(Self::H323Id(s))
            }
            h225::AliasAddress::dialedDigits(d) => {
                let s = String::from(d.clone());
                (!s.is_empty() && s.len() <= MAX_ALIAS).then_some(Self::DialedDigits(s))
            }
            _ => None,
        }
    }

    /// The alias as an `AliasAddress` (`None` if it cannot be encoded).
    pub fn to_asn1(&self) -> Option<h225::AliasAddress> {
        match self {
            Self::H323Id(s) => bmp(s).map(h225::AliasAddress::h323_ID),
            Self::DialedDigits(s) => Ia5String::try_from(s.clone())
                .ok()
                .map(h225::AliasAddress::dialedDigits),
        }
    }

    /// Whether this alias names `other` (H.323-IDs without regard to case).
    fn matches(&self, other: &Alias) -> bool {
        match (self, other) {
            (Self::H323Id(a), Self::H323Id(b)) => a.to_lowercase() == b.to_lowercase(),
            (Self::DialedDigits(a), Self::DialedDigits(b)) => a == b,
            _ => false,
        }
    }
}

/// Why the caller's policy refuses a registration (the RRJ reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No account has these aliases (`invalidAlias`).
    InvalidAlias,
    /// The account exists but may not register (`securityDenial`).
    SecurityDenial,
    /// We cannot take it now (`resourceUnavailable`).
    ResourceUnavailable,
}

/// The caller's verdict on a full registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Register; `account` is the account the aliases belong to, if any.
    Accept {
        /// The account's user name.
        account: Option<String>,
        /// The account's H.235 password, when known. A password token in
        /// the request is checked against it (none known, or a wrong,
        /// stale or replayed token: RRJ `securityDenial`), and then every
        /// later request of the registration must carry a valid token too.
        /// A request without a token registers on the verdict alone.
        password: Option<String>,
    },
    /// Refuse with this reason.
    Refuse(Refusal),
}

/// An endpoint identifier we assigned (H.225.0 `EndpointIdentifier`).
pub type EndpointId = String;

/// What the gatekeeper tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A full registration asks to be admitted: answer with
    /// [`Gatekeeper::authorize`] and this ticket.
    Authorize {
        /// The ticket to answer with.
        ticket: u64,
        /// Where the request came from.
        source: SocketAddr,
        /// The aliases asked for (H.323-IDs and dialedDigits only).
        aliases: Vec<Alias>,
        /// The procedure of the password token the request carries, whose
        /// sender is one of `aliases` (`None`: no token): the verdict
        /// should then give the account's password.
        token: Option<Procedure>,
    },
    /// An endpoint registered (or registered again with new aliases).
    Registered {
        /// Its identifier.
        endpoint: EndpointId,
        /// The account given in the verdict.
        account: Option<String>,
        /// Its aliases.
        aliases: Vec<Alias>,
        /// Where calls to it go: its first call-signalling address on the
        /// IP address it registered from, else the first it gave.
        call_signal_address: Option<SocketAddr>,
        /// It proved the account's password with an H.235 token.
        authenticated: bool,
    },
    /// A registered endpoint was admitted to place a call (ARQ → ACF): its
    /// Setup, which comes to our call-signalling address, names the same
    /// call.
    Admitted {
        /// Its identifier.
        endpoint: EndpointId,
        /// The account of its registration.
        account: Option<String>,
        /// The IP address the registration belongs to.
        source: IpAddr,
        /// The ARQ's callIdentifier, if it gave one.
        call_identifier: Option<[u8; 16]>,
        /// The ARQ's conferenceID.
        conference_id: [u8; 16],
    },
    /// A request's password token was wrong, stale or replayed, or missing
    /// where the registration needs one: the request was refused with
    /// `securityDenial`.
    SecurityDenied {
        /// Where the request came from.
        source: SocketAddr,
        /// The alias the token named, if there was one.
        sender: Option<String>,
    },
    /// A registration ended (URQ, expiry, or replaced by a new one).
    Unregistered {
        /// Its identifier.
        endpoint: EndpointId,
        /// The account given in the verdict.
        account: Option<String>,
    },
}

/// One output of the gatekeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` (one PER-encoded RasMessage) to `to`.
    Transmit {
        /// The destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Something the owner should know.
    Event(Event),
}

/// Why a datagram was not answered (for the caller's drop counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// Not a RAS message (PER decoding failed).
    Undecodable,
    /// A confirm, reject or other message a gatekeeper does not answer.
    NotARequest,
    /// Too many registrations waiting for a verdict.
    Busy,
}

/// A registered endpoint.
#[derive(Debug, Clone)]
struct Registration {
    source: IpAddr,
    ras_address: SocketAddr,
    call_signal_address: Option<h225::TransportAddress>,
    aliases: Vec<Alias>,
    account: Option<String>,
    time_to_live: Duration,
    expires: Instant,
    /// The H.235 password the registration proved: its later requests must
    /// carry tokens made with it.
    password: Option<String>,
    /// The procedure it proved it with (procedure I: our answers carry
    /// tokens too).
    procedure: Option<Procedure>,
}

/// What signs an answer with an H.235.1 procedure I token: the password
/// and the endpoint identifier the token is for.
#[derive(Debug, Clone)]
struct Signer {
    password: String,
    endpoint: EndpointId,
}

/// A full registration waiting for its verdict.
#[derive(Debug)]
struct Pending {
    source: SocketAddr,
    rrq: h225::RegistrationRequest,
    aliases: Vec<Alias>,
    deadline: Instant,
    /// Its password token, and the datagram as received (procedure I
    /// hashes all of it).
    token: Option<(PasswordToken, Vec<u8>)>,
}

/// The last password token taken from a sender.
#[derive(Debug, Clone)]
struct Seen {
    timestamp: u32,
    random: Option<Integer>,
}

/// The gatekeeper: see the module docs.
#[derive(Debug)]
pub struct Gatekeeper {
    config: Config,
    registrations: HashMap<EndpointId, Registration>,
    pending: BTreeMap<u64, Pending>,
    next_ticket: u64,
    next_endpoint: u64,
    out: VecDeque<Output>,
    /// The wall clock: an instant and the UNIX time then.
    clock: Option<(Instant, u64)>,
    /// The last token taken per sender (lower-cased).
    tokens_seen: HashMap<String, Seen>,
    /// How to sign the answer to the request being handled, when its
    /// registration proved its password with procedure I (H.235.1 §14:
    /// the gatekeeper's messages are secured too).
    signer: Option<Signer>,
    /// The sequence number of our procedure I tokens.
    random: i64,
}

impl Gatekeeper {
    /// A gatekeeper with no registrations.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            registrations: HashMap::new(),
            pending: BTreeMap::new(),
            next_ticket: 1,
            next_endpoint: 1,
            out: VecDeque::new(),
            clock: None,
            tokens_seen: HashMap::new(),
            signer: None,
            random: 0,
        }
    }

    /// Tells the gatekeeper the wall clock: at `now` it is `unix_secs`
    /// seconds since 1970-01-01 UTC. Password tokens carry such times; until
    /// this is called, every token is refused as stale.
    pub fn set_wall_clock(&mut self, now: Instant, unix_secs: u64) {
        self.clock = Some((now, unix_secs));
    }

    /// The UNIX time at `now`, from the wall clock given.
    fn unix_time(&self, now: Instant) -> Option<u64> {
        let (at, unix) = self.clock?;
        Some(match now.checked_duration_since(at) {
            Some(d) => unix.saturating_add(d.as_secs()),
            None => unix.saturating_sub(at.duration_since(now).as_secs()),
        })
    }

    /// Checks `token` (from `message`) against `password`: its time within
    /// the window, not older than the last token taken from its sender nor
    /// the same procedure I token again, and its hash. A token that passes
    /// becomes the sender's last.
    fn check_token(&mut self, now: Instant, token: &PasswordToken, password: &str, message: &[u8]) -> bool {
        let Some(unix) = self.unix_time(now) else {
            return false;
        };
        if unix.abs_diff(u64::from(token.timestamp)) > self.config.token_window.as_secs() {
            return false;
        }
        if let (Some(to), Some(ours)) = (&token.recipient, self.our_gatekeeper_identifier()) {
            // Made for another gatekeeper (that shares the password).
            if text(&ours.0).is_none_or(|ours| &ours != to) {
                return false;
            }
        }
        let key = token.sender.to_lowercase();
        if let Some(seen) = self.tokens_seen.get(&key) {
            if token.timestamp < seen.timestamp {
                return false;
            }
            let same = token.timestamp == seen.timestamp && token.random == seen.random;
            if same && token.procedure() == Procedure::Procedure1 {
                return false;
            }
        }
        if !token.verify(password, message) {
            return false;
        }
        if self.tokens_seen.len() >= MAX_TOKEN_SENDERS && !self.tokens_seen.contains_key(&key) {
            // Forget the senders whose last token is out of the window anyway.
            let oldest = unix.saturating_sub(self.config.token_window.as_secs());
            self.tokens_seen.retain(|_, s| u64::from(s.timestamp) >= oldest);
            if self.tokens_seen.len() >= MAX_TOKEN_SENDERS {
                return false;
            }
        }
        self.tokens_seen.insert(
            key,
            Seen {
                timestamp: token.timestamp,
                random: token.random.clone(),
            },
        );
        true
    }

    /// Whether a request of the registration `id` is authentic: with no
    /// password proved at registration, always; else it must carry a valid
    /// token from one of the registration's aliases. A refusal is reported
    /// ([`Event::SecurityDenied`]).
    fn authentic(
        &mut self,
        now: Instant,
        source: SocketAddr,
        id: &str,
        tokens: Option<&[h225::CryptoH323Token]>,
        message: &[u8],
    ) -> bool {
        let Some(reg) = self.registrations.get(id) else {
            return false;
        };
        let Some(password) = reg.password.clone() else {
            return true;
        };
        let procedure = reg.procedure;
        let token = h235::find_token(tokens);
        let ok = match &token {
            Some(t) => {
                // Procedure I endpoints name themselves by the endpoint
                // identifier once registered.
                let theirs = t.sender == id || reg.aliases.iter().any(|a| a.as_str().eq_ignore_ascii_case(&t.sender));
                theirs && self.check_token(now, t, &password, message)
            }
            None => false,
        };
        if ok && procedure == Some(Procedure::Procedure1) {
            self.signer = Some(Signer {
                password,
                endpoint: id.to_string(),
            });
        }
        if !ok {
            self.out.push_back(Output::Event(Event::SecurityDenied {
                source,
                sender: token.map(|t| t.sender),
            }));
        }
        ok
    }

    /// The number of registered endpoints.
    pub fn registered(&self) -> usize {
        self.registrations.len()
    }

    /// The endpoints registered with `alias`.
    pub fn endpoints_with_alias(&self, alias: &Alias) -> Vec<EndpointId> {
        self.registrations
            .iter()
            .filter(|(_, r)| r.aliases.iter().any(|a| a.matches(alias)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Handles one datagram from `source`. `Err` says why nothing was
    /// answered; drain [`Gatekeeper::poll_output`] in both cases.
    pub fn handle_input(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) -> Result<(), Ignored> {
        self.handle_timeout(now);
        self.signer = None;
        let msg = asn1::decode_ras(bytes).map_err(|_| Ignored::Undecodable)?;
        use h225::RasMessage as M;
        let reply = match msg {
            M::gatekeeperRequest(r) => Some(self.gatekeeper_request(r)),
            M::registrationRequest(r) => self.registration_request(now, source, r, bytes)?,
            M::unregistrationRequest(r) => Some(self.unregistration_request(now, source, r, bytes)),
            M::admissionRequest(r) => Some(self.admission_request(now, source, r, bytes)),
            M::bandwidthRequest(r) => Some(self.bandwidth_request(now, source, r, bytes)),
            M::disengageRequest(r) => Some(self.disengage_request(now, source, r, bytes)),
            M::locationRequest(r) => {
                let (to, reply) = self.location_request(source, r);
                self.transmit(to, &reply);
                None
            }
            M::infoRequestResponse(r) => self.info_request_response(now, source, r),
            M::infoRequest(r) => Some(unknown_message(r.request_seq_num, bytes)),
            M::nonStandardMessage(r) => Some(unknown_message(r.request_seq_num, bytes)),
            M::resourcesAvailableIndicate(r) => Some(unknown_message(r.request_seq_num, bytes)),
            M::serviceControlIndication(r) => Some(unknown_message(r.request_seq_num, bytes)),
            _ => return Err(Ignored::NotARequest),
        };
        if let Some(reply) = reply {
            let signer = self.signer.take();
            self.transmit_signed(now, source, reply, signer);
        }
        Ok(())
    }

    fn bandwidth_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::BandwidthRequest,
        message: &[u8],
    ) -> h225::RasMessage {
        let found = self.registration_of(source, &r.endpoint_identifier).map(|(id, _)| id);
        let reason = match found {
            None => Some(h225::BandRejectReason::notBound(())),
            Some(id) if !self.authentic(now, source, &id, r.crypto_tokens.as_deref(), message) => {
                Some(h225::BandRejectReason::securityDenial(()))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return h225::RasMessage::bandwidthReject(h225::BandwidthReject::new(
                r.request_seq_num,
                reason,
                h225::BandWidth(0),
                None,
                None,
                None,
                None,
                None,
                None,
            ));
        }
        h225::RasMessage::bandwidthConfirm(h225::BandwidthConfirm {
            request_seq_num: r.request_seq_num,
            band_width: h225::BandWidth(r.band_width.0.min(self.config.max_bandwidth)),
            non_standard_data: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            capacity: None,
            generic_data: None,
            transport_qos: None,
        })
    }

    /// Answers the full registration waiting under `ticket` (from
    /// [`Event::Authorize`]). Unknown or expired tickets are ignored.
    pub fn authorize(&mut self, now: Instant, ticket: u64, verdict: Verdict) {
        let Some(p) = self.pending.remove(&ticket) else { return };
        let seq = p.rrq.request_seq_num.clone();
        let (account, password) = match verdict {
            Verdict::Refuse(r) => {
                let reason = match r {
                    Refusal::InvalidAlias => h225::RegistrationRejectReason::invalidAlias(()),
                    Refusal::SecurityDenial => h225::RegistrationRejectReason::securityDenial(()),
                    Refusal::ResourceUnavailable => h225::RegistrationRejectReason::resourceUnavailable(()),
                };
                let rrj = self.registration_reject(seq, reason);
                self.transmit(p.source, &rrj);
                return;
            }
            Verdict::Accept { account, password } => (account, password),
        };
        // A token must prove the password; without one the verdict stands alone.
        let proved = match (&p.token, password) {
            (None, _) => None,
            (Some((token, message)), Some(password)) if self.check_token(now, token, &password, message) => {
                Some(password)
            }
            (Some((token, _)), _) => {
                let rrj = self.registration_reject(seq, h225::RegistrationRejectReason::securityDenial(()));
                self.transmit(p.source, &rrj);
                self.out.push_back(Output::Event(Event::SecurityDenied {
                    source: p.source,
                    sender: Some(token.sender.clone()),
                }));
                return;
            }
        };
        // A full registration from the same RAS address replaces the
        // endpoint's earlier one (H.225.0 §7.9: an endpoint re-registering).
        let ras_address = ras_address_of(&p.rrq, p.source);
        let old: Vec<EndpointId> = self
            .registrations
            .iter()
            .filter(|(_, r)| r.ras_address == ras_address)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            self.remove(&id);
        }
        if self.registrations.len() >= self.config.max_registrations {
            let rrj = self.registration_reject(seq, h225::RegistrationRejectReason::resourceUnavailable(()));
            self.transmit(p.source, &rrj);
            return;
        }
        let id = self.new_endpoint_id();
        let ttl = self.time_to_live(p.rrq.time_to_live.as_ref());
        let call_signal_address = call_address(&p.rrq.call_signal_address, p.source.ip());
        let authenticated = proved.is_some();
        let procedure = p.token.as_ref().map(|(t, _)| t.procedure()).filter(|_| authenticated);
        let signer = match (&proved, procedure) {
            (Some(password), Some(Procedure::Procedure1)) => Some(Signer {
                password: password.clone(),
                endpoint: id.clone(),
            }),
            _ => None,
        };
        let registration = Registration {
            source: p.source.ip(),
            ras_address,
            call_signal_address: call_signal_address.map(transport),
            aliases: p.aliases.clone(),
            account: account.clone(),
            time_to_live: ttl,
            expires: now + ttl + self.config.grace,
            password: proved,
            procedure,
        };
        let rcf = self.registration_confirm(seq, &id, &registration);
        self.registrations.insert(id.clone(), registration);
        self.transmit_signed(now, p.source, rcf, signer);
        self.out.push_back(Output::Event(Event::Registered {
            endpoint: id,
            account,
            aliases: p.aliases,
            call_signal_address,
            authenticated,
        }));
    }

    /// Expires registrations and abandons registrations left without a
    /// verdict.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<EndpointId> = self
            .registrations
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
        self.pending.retain(|_, p| p.deadline > now);
    }

    /// When [`Gatekeeper::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let regs = self.registrations.values().map(|r| r.expires);
        let pending = self.pending.values().map(|p| p.deadline);
        regs.chain(pending).min()
    }

    /// The next output; drain until `None` after every input or command.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn remove(&mut self, id: &str) {
        if let Some(r) = self.registrations.remove(id) {
            self.out.push_back(Output::Event(Event::Unregistered {
                endpoint: id.to_string(),
                account: r.account,
            }));
        }
    }

    /// Sends `msg`, with a procedure I token from us to the endpoint when
    /// `signer` says (H.235.1: `sendersID` our gatekeeper identifier,
    /// `generalID` the endpoint identifier, HMAC-SHA1-96 over the message).
    fn transmit_signed(&mut self, now: Instant, to: SocketAddr, mut msg: h225::RasMessage, signer: Option<Signer>) {
        let Some(signer) = signer else {
            self.transmit(to, &msg);
            return;
        };
        let gatekeeper: String = self.config.gatekeeper_identifier.chars().take(128).collect();
        self.random = self.random.wrapping_add(1);
        let token = self.unix_time(now).and_then(|unix| {
            h235::procedure1_token(
                &gatekeeper,
                Some(&signer.endpoint),
                u32::try_from(unix).unwrap_or(u32::MAX),
                self.random,
            )
        });
        let signed = token
            .filter(|t| set_crypto_tokens(&mut msg, vec![t.clone()]))
            .and_then(|_| {
                let mut bytes = asn1::encode(&msg).ok()?;
                h235::procedure1_sign(&mut bytes, &signer.password).then_some(bytes)
            });
        match signed {
            Some(bytes) => self.out.push_back(Output::Transmit { to, bytes }),
            // No clock or an identifier that does not fit: the endpoint
            // will not take the answer unsigned, but it is the answer.
            None => self.transmit(to, &msg),
        }
    }

    fn transmit(&mut self, to: SocketAddr, msg: &h225::RasMessage) {
        // Our values are within their constraints; a failure here would be
        // a bug, and the request simply goes unanswered.
        if let Ok(bytes) = asn1::encode(msg) {
            self.out.push_back(Output::Transmit { to, bytes });
        }
    }

    fn new_endpoint_id(&mut self) -> EndpointId {
        let n = self.next_endpoint;
        self.next_endpoint += 1;
        // Distinct per registration; the salt makes them differ per run.
        let mixed = (n ^ self.config.endpoint_id_salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!("{n:x}_{mixed:016x}")
    }

    fn time_to_live(&self, asked: Option<&h225::TimeToLive>) -> Duration {
        let ours = self.config.time_to_live.max(Duration::from_secs(1));
        match asked {
            Some(t) => ours.min(Duration::from_secs(u64::from(t.0.max(1)))),
            None => ours,
        }
    }

    fn our_gatekeeper_identifier(&self) -> Option<h225::GatekeeperIdentifier> {
        let name: String = self.config.gatekeeper_identifier.chars().take(128).collect();
        if name.is_empty() {
            return None;
        }
        bmp(&name).map(h225::GatekeeperIdentifier)
    }

    /// Whether `asked` (from a request) names another gatekeeper.
    fn other_gatekeeper(&self, asked: Option<&h225::GatekeeperIdentifier>) -> bool {
        match (asked, self.our_gatekeeper_identifier()) {
            (Some(a), Some(ours)) => a != &ours,
            _ => false,
        }
    }

    /// The registration `id`, if it was made from `source`'s IP address.
    fn registration_of(
        &self,
        source: SocketAddr,
        id: &h225::EndpointIdentifier,
    ) -> Option<(EndpointId, &Registration)> {
        let id = text(&id.0)?;
        let r = self.registrations.get(&id)?;
        (r.source == source.ip()).then_some((id, r))
    }

    fn gatekeeper_request(&self, r: h225::GatekeeperRequest) -> h225::RasMessage {
        if self.other_gatekeeper(r.gatekeeper_identifier.as_ref()) {
            return h225::RasMessage::gatekeeperReject(h225::GatekeeperReject {
                request_seq_num: r.request_seq_num,
                protocol_identifier: protocol_identifier(),
                non_standard_data: None,
                gatekeeper_identifier: self.our_gatekeeper_identifier(),
                reject_reason: h225::GatekeeperRejectReason::undefinedReason(()),
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                feature_set: None,
                generic_data: None,
            });
        }
        // H.225.0 §7.2.1: of the security the endpoint offers, the one we use.
        let mode = h235::choose(r.authentication_capability.as_deref(), r.algorithm_oids.as_deref()).map(h235::mode);
        let (authentication_mode, algorithm_oid) = match mode {
            Some((m, a)) => (Some(m), Some(a)),
            None => (None, None),
        };
        h225::RasMessage::gatekeeperConfirm(h225::GatekeeperConfirm {
            request_seq_num: r.request_seq_num,
            protocol_identifier: protocol_identifier(),
            non_standard_data: None,
            gatekeeper_identifier: self.our_gatekeeper_identifier(),
            ras_address: transport(self.config.ras_address),
            alternate_gatekeeper: None,
            authentication_mode,
            tokens: None,
            crypto_tokens: None,
            algorithm_oid,
            integrity: None,
            integrity_check_value: None,
            feature_set: None,
            generic_data: None,
            assigned_gatekeeper: None,
            rehoming_model: None,
        })
    }

    fn registration_reject(
        &self,
        seq: h225::RequestSeqNum,
        reason: h225::RegistrationRejectReason,
    ) -> h225::RasMessage {
        h225::RasMessage::registrationReject(h225::RegistrationReject {
            request_seq_num: seq,
            protocol_identifier: protocol_identifier(),
            non_standard_data: None,
            reject_reason: reason,
            gatekeeper_identifier: self.our_gatekeeper_identifier(),
            alt_gkinfo: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            feature_set: None,
            generic_data: None,
            assigned_gatekeeper: None,
        })
    }

    fn registration_confirm(&self, seq: h225::RequestSeqNum, id: &str, r: &Registration) -> h225::RasMessage {
        let aliases: Vec<h225::AliasAddress> = r.aliases.iter().filter_map(Alias::to_asn1).collect();
        h225::RasMessage::registrationConfirm(h225::RegistrationConfirm {
            request_seq_num: seq,
            protocol_identifier: protocol_identifier(),
            non_standard_data: None,
            call_signal_address: self.config.call_signal_address.map(transport).into_iter().collect(),
            terminal_alias: (!aliases.is_empty()).then_some(aliases),
            gatekeeper_identifier: self.our_gatekeeper_identifier(),
            endpoint_identifier: h225::EndpointIdentifier(bmp(id).unwrap_or_default()),
            alternate_gatekeeper: None,
            time_to_live: Some(h225::TimeToLive(
                u32::try_from(r.time_to_live.as_secs()).unwrap_or(u32::MAX).max(1),
            )),
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            will_respond_to_irr: Some(false),
            pre_granted_arq: None,
            maintain_connection: Some(false),
            service_control: None,
            supports_additive_registration: None,
            terminal_alias_pattern: None,
            supported_prefixes: None,
            usage_spec: None,
            feature_server_alias: None,
            capacity_reporting_spec: None,
            feature_set: None,
            generic_data: None,
            assigned_gatekeeper: None,
            rehoming_model: None,
            transport_qos: None,
            language: None,
        })
    }

    fn registration_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::RegistrationRequest,
        message: &[u8],
    ) -> Result<Option<h225::RasMessage>, Ignored> {
        use h225::RegistrationRejectReason as Why;
        let seq = r.request_seq_num.clone();
        if self.other_gatekeeper(r.gatekeeper_identifier.as_ref()) {
            return Ok(Some(self.registration_reject(seq, Why::discoveryRequired(()))));
        }
        if r.keep_alive == Some(true) {
            // Lightweight re-registration (H.225.0 §7.9.1).
            let found = r
                .endpoint_identifier
                .as_ref()
                .and_then(|id| self.registration_of(source, id))
                .map(|(id, _)| id);
            let Some(id) = found else {
                return Ok(Some(self.registration_reject(seq, Why::fullRegistrationRequired(()))));
            };
            if !self.authentic(now, source, &id, r.crypto_tokens.as_deref(), message) {
                return Ok(Some(self.registration_reject(seq, Why::securityDenial(()))));
            }
            let ttl = self.time_to_live(r.time_to_live.as_ref());
            let grace = self.config.grace;
            let Some(reg) = self.registrations.get_mut(&id) else {
                return Ok(Some(self.registration_reject(seq, Why::fullRegistrationRequired(()))));
            };
            reg.time_to_live = ttl;
            reg.expires = now + ttl + grace;
            let reg = reg.clone();
            return Ok(Some(self.registration_confirm(seq, &id, &reg)));
        }
        let all = r.terminal_alias.as_deref().unwrap_or_default();
        let aliases: Vec<Alias> = all.iter().filter_map(Alias::from_asn1).collect();
        if aliases.is_empty() || all.len() > MAX_ALIASES {
            return Ok(Some(self.registration_reject(seq, Why::invalidAlias(()))));
        }
        if r.call_signal_address.is_empty() {
            return Ok(Some(self.registration_reject(seq, Why::invalidCallSignalAddress(()))));
        }
        if self
            .pending
            .values()
            .any(|p| p.source == source && p.rrq.request_seq_num == seq)
        {
            // A retransmission of a request still waiting for its verdict:
            // the answer to the first goes out soon.
            return Ok(None);
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(Ignored::Busy);
        }
        let token = h235::find_token(r.crypto_tokens.as_deref());
        if let Some(t) = &token {
            // The token speaks for one of the aliases asked for, or for none.
            if !aliases.iter().any(|a| a.as_str().eq_ignore_ascii_case(&t.sender)) {
                self.out.push_back(Output::Event(Event::SecurityDenied {
                    source,
                    sender: Some(t.sender.clone()),
                }));
                return Ok(Some(self.registration_reject(seq, Why::securityDenial(()))));
            }
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.pending.insert(
            ticket,
            Pending {
                source,
                rrq: r,
                aliases: aliases.clone(),
                deadline: now + PENDING_TIMEOUT,
                token: token.clone().map(|t| (t, message.to_vec())),
            },
        );
        self.out.push_back(Output::Event(Event::Authorize {
            ticket,
            source,
            aliases,
            token: token.map(|t| t.procedure()),
        }));
        Ok(None)
    }

    fn unregistration_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::UnregistrationRequest,
        message: &[u8],
    ) -> h225::RasMessage {
        let found = match &r.endpoint_identifier {
            Some(id) => self.registration_of(source, id).map(|(id, _)| id),
            // Without an identifier: by call-signalling address (H.225.0
            // §7.6), from the same IP address.
            None => self
                .registrations
                .iter()
                .find(|(_, reg)| {
                    reg.source == source.ip()
                        && reg
                            .call_signal_address
                            .as_ref()
                            .is_some_and(|a| r.call_signal_address.contains(a))
                })
                .map(|(id, _)| id.clone()),
        };
        let found = found.map(|id| {
            let ok = self.authentic(now, source, &id, r.crypto_tokens.as_deref(), message);
            (id, ok)
        });
        let (id, reason) = match found {
            Some((id, true)) => (Some(id), h225::UnregRejectReason::notCurrentlyRegistered(())),
            Some((_, false)) => (None, h225::UnregRejectReason::securityDenial(())),
            None => (None, h225::UnregRejectReason::notCurrentlyRegistered(())),
        };
        let Some(id) = id else {
            return h225::RasMessage::unregistrationReject(h225::UnregistrationReject {
                request_seq_num: r.request_seq_num,
                reject_reason: reason,
                non_standard_data: None,
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                generic_data: None,
            });
        };
        self.remove(&id);
        h225::RasMessage::unregistrationConfirm(h225::UnregistrationConfirm {
            request_seq_num: r.request_seq_num,
            non_standard_data: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            generic_data: None,
            assigned_gatekeeper: None,
        })
    }

    fn admission_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::AdmissionRequest,
        message: &[u8],
    ) -> h225::RasMessage {
        use h225::AdmissionRejectReason as Why;
        let reject = |reason| {
            h225::RasMessage::admissionReject(h225::AdmissionReject {
                request_seq_num: r.request_seq_num.clone(),
                reject_reason: reason,
                non_standard_data: None,
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                call_signal_address: None,
                integrity_check_value: None,
                service_control: None,
                feature_set: None,
                generic_data: None,
                assigned_gatekeeper: None,
            })
        };
        let Some(id) = self.registration_of(source, &r.endpoint_identifier).map(|(id, _)| id) else {
            return reject(Why::callerNotRegistered(()));
        };
        if !self.authentic(now, source, &id, r.crypto_tokens.as_deref(), message) {
            return reject(Why::securityDenial(()));
        }
        let Some(reg) = self.registrations.get(&id).cloned() else {
            return reject(Why::callerNotRegistered(()));
        };
        let dest = if r.answer_call {
            // Answering: the call comes through us to the endpoint itself.
            match reg.call_signal_address.clone() {
                Some(a) => a,
                None => return reject(Why::invalidEndpointIdentifier(())),
            }
        } else {
            let has_destination =
                r.destination_info.as_ref().is_some_and(|d| !d.is_empty()) || r.dest_call_signal_address.is_some();
            if !has_destination {
                return reject(Why::incompleteAddress(()));
            }
            match self.config.call_signal_address {
                Some(a) => transport(a),
                None => return reject(Why::resourceUnavailable(())),
            }
        };
        if !r.answer_call {
            self.out.push_back(Output::Event(Event::Admitted {
                endpoint: id.clone(),
                account: reg.account.clone(),
                source: reg.source,
                call_identifier: r
                    .call_identifier
                    .as_ref()
                    .map(|c| *c.guid.0)
                    .filter(|g| g.iter().any(|&b| b != 0)),
                conference_id: *r.conference_id.0 .0,
            }));
        }
        h225::RasMessage::admissionConfirm(h225::AdmissionConfirm {
            request_seq_num: r.request_seq_num.clone(),
            band_width: h225::BandWidth(r.band_width.0.min(self.config.max_bandwidth)),
            call_model: h225::CallModel::gatekeeperRouted(()),
            dest_call_signal_address: dest,
            irr_frequency: None,
            non_standard_data: None,
            destination_info: r.destination_info.clone().filter(|d| !d.is_empty()),
            dest_extra_call_info: None,
            destination_type: None,
            remote_extension_address: None,
            alternate_endpoints: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            transport_qos: None,
            will_respond_to_irr: Some(false),
            uuies_requested: Some(h225::UUIEsRequested::new(
                false, false, false, false, false, false, false, false, false, None, None, None, None,
            )),
            language: None,
            alternate_transport_addresses: None,
            use_specified_transport: None,
            circuit_info: None,
            usage_spec: None,
            supported_protocols: None,
            service_control: None,
            multiple_calls: None,
            feature_set: None,
            generic_data: None,
            modified_src_info: None,
            assigned_gatekeeper: None,
        })
    }

    fn disengage_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::DisengageRequest,
        message: &[u8],
    ) -> h225::RasMessage {
        let reason = match self.registration_of(source, &r.endpoint_identifier).map(|(id, _)| id) {
            None => Some(h225::DisengageRejectReason::notRegistered(())),
            Some(id) if !self.authentic(now, source, &id, r.crypto_tokens.as_deref(), message) => {
                Some(h225::DisengageRejectReason::securityDenial(()))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return h225::RasMessage::disengageReject(h225::DisengageReject {
                request_seq_num: r.request_seq_num,
                reject_reason: reason,
                non_standard_data: None,
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                generic_data: None,
            });
        }
        h225::RasMessage::disengageConfirm(h225::DisengageConfirm {
            request_seq_num: r.request_seq_num,
            non_standard_data: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            capacity: None,
            circuit_info: None,
            usage_information: None,
            generic_data: None,
            assigned_gatekeeper: None,
        })
    }

    fn location_request(&self, source: SocketAddr, r: h225::LocationRequest) -> (SocketAddr, h225::RasMessage) {
        let to = match socket_address(&r.reply_address) {
            Some(a) if a.ip() == source.ip() => a,
            _ => source,
        };
        let known = r
            .destination_info
            .iter()
            .filter_map(Alias::from_asn1)
            .find(|a| !self.endpoints_with_alias(a).is_empty());
        let reply = match (known, self.config.call_signal_address) {
            (Some(alias), Some(cs)) => h225::RasMessage::locationConfirm(h225::LocationConfirm {
                request_seq_num: r.request_seq_num,
                call_signal_address: transport(cs),
                ras_address: transport(self.config.ras_address),
                non_standard_data: None,
                destination_info: alias.to_asn1().map(|a| vec![a]),
                dest_extra_call_info: None,
                destination_type: None,
                remote_extension_address: None,
                alternate_endpoints: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                alternate_transport_addresses: None,
                supported_protocols: None,
                multiple_calls: None,
                feature_set: None,
                generic_data: None,
                circuit_info: None,
                service_control: None,
                modified_src_info: None,
                band_width: None,
                language: None,
            }),
            _ => h225::RasMessage::locationReject(h225::LocationReject {
                request_seq_num: r.request_seq_num,
                reject_reason: h225::LocationRejectReason::requestDenied(()),
                non_standard_data: None,
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                feature_set: None,
                generic_data: None,
                service_control: None,
            }),
        };
        (to, reply)
    }

    fn info_request_response(
        &mut self,
        now: Instant,
        source: SocketAddr,
        r: h225::InfoRequestResponse,
    ) -> Option<h225::RasMessage> {
        let found = self.registration_of(source, &r.endpoint_identifier).map(|(id, _)| id);
        let registered = match found.and_then(|id| self.registrations.get_mut(&id)) {
            Some(reg) => {
                // An IRR shows the endpoint is alive (H.225.0 §7.15.2).
                reg.expires = reg.expires.max(now + reg.time_to_live);
                true
            }
            None => false,
        };
        if r.need_response != Some(true) {
            return None;
        }
        Some(if registered {
            h225::RasMessage::infoRequestAck(h225::InfoRequestAck {
                request_seq_num: r.request_seq_num,
                non_standard_data: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
            })
        } else {
            h225::RasMessage::infoRequestNak(h225::InfoRequestNak {
                request_seq_num: r.request_seq_num,
                non_standard_data: None,
                nak_reason: h225::InfoRequestNakReason::notRegistered(()),
                alt_gkinfo: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
            })
        })
    }
}

/// Puts `tokens` in the cryptoTokens of an answer; `false` for messages
/// without them.
fn set_crypto_tokens(msg: &mut h225::RasMessage, tokens: Vec<h225::CryptoH323Token>) -> bool {
    use h225::RasMessage as M;
    let slot = match msg {
        M::gatekeeperConfirm(m) => &mut m.crypto_tokens,
        M::registrationConfirm(m) => &mut m.crypto_tokens,
        M::registrationReject(m) => &mut m.crypto_tokens,
        M::unregistrationConfirm(m) => &mut m.crypto_tokens,
        M::unregistrationReject(m) => &mut m.crypto_tokens,
        M::admissionConfirm(m) => &mut m.crypto_tokens,
        M::admissionReject(m) => &mut m.crypto_tokens,
        M::bandwidthConfirm(m) => &mut m.crypto_tokens,
        M::bandwidthReject(m) => &mut m.crypto_tokens,
        M::disengageConfirm(m) => &mut m.crypto_tokens,
        M::disengageReject(m) => &mut m.crypto_tokens,
        M::locationConfirm(m) => &mut m.crypto_tokens,
        M::locationReject(m) => &mut m.crypto_tokens,
        M::infoRequestAck(m) => &mut m.crypto_tokens,
        M::infoRequestNak(m) => &mut m.crypto_tokens,
        _ => return false,
    };
    *slot = Some(tokens);
    true
}

/// An `unknownMessageResponse` (XRS) quoting what we do not serve.
fn unknown_message(seq: h225::RequestSeqNum, bytes: &[u8]) -> h225::RasMessage {
    h225::RasMessage::unknownMessageResponse(h225::UnknownMessageResponse {
        request_seq_num: seq,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        message_not_understood: Some(OctetString::from(bytes[..bytes.len().min(512)].to_vec())),
    })
}

/// The RAS address of an RRQ: its first IPv4/IPv6 `rasAddress`, else where
/// it came from.
fn ras_address_of(r: &h225::RegistrationRequest, source: SocketAddr) -> SocketAddr {
    r.ras_address.iter().find_map(socket_address).unwrap_or(source)
}

/// Where to call an endpoint that registered from `source` with these
/// call-signalling addresses: the first on `source` itself, else the first
/// it gives (a host with several addresses registers from one and takes
/// calls on another).
fn call_address(addresses: &[h225::TransportAddress], source: IpAddr) -> Option<SocketAddr> {
    let all: Vec<SocketAddr> = addresses
        .iter()
        .filter_map(socket_address)
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
        .collect();
    all.iter().find(|a| a.ip() == source).or(all.first()).copied()
}

/// A TransportAddress as a socket address (IPv4 and IPv6 only).
pub fn socket_address(a: &h225::TransportAddress) -> Option<SocketAddr> {
    match a {
        h225::TransportAddress::ipAddress(a) => {
            let ip: [u8; 4] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::from((ip, a.port)))
        }
        h225::TransportAddress::ip6Address(a) => {
            let ip: [u8; 16] = a.ip.as_ref().try_into().ok()?;
            Some(SocketAddr::from((ip, a.port)))
        }
        _ => None,
    }
}

/// A socket address as a TransportAddress.
pub fn transport(a: SocketAddr) -> h225::TransportAddress {
    match a.ip() {
        IpAddr::V4(ip) => h225::TransportAddress::ipAddress(h225::TransportAddressIpAddress::new(
            OctetString::from(ip.octets().to_vec()),
            a.port(),
        )),
        IpAddr::V6(ip) => h225::TransportAddress::ip6Address(h225::TransportAddressIp6Address::new(
            OctetString::from(ip.octets().to_vec()),
            a.port(),
        )),
    }
}

/// A BMPString of the characters of `s`.
pub fn bmp(s: &str) -> Option<BmpString> {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    BmpString::try_from(bytes).ok()
}

/// The text of a BMPString, if it is valid UTF-16.
pub fn text(b: &BmpString) -> Option<String> {
    char::decode_utf16(b.clone().into_vec()).collect::<Result<_, _>>().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const CORPUS: &str = include_str!("../tests/data/corpus.txt");
    const EP: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40002);

    fn corpus_ras() -> Vec<h225::RasMessage> {
        CORPUS
            .lines()
            .filter_map(|l| l.strip_prefix("ras "))
            .map(|hex| {
                let hex = hex.trim();
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                asn1::decode_ras(&bytes).unwrap()
            })
            .collect()
    }

    fn find<T>(f: impl Fn(h225::RasMessage) -> Option<T>) -> T {
        corpus_ras().into_iter().find_map(f).expect("not in the corpus")
    }

    fn grq() -> h225::GatekeeperRequest {
        find(|m| match m {
            h225::RasMessage::gatekeeperRequest(r) => Some(r),
            _ => None,
        })
    }

    fn rrq() -> h225::RegistrationRequest {
        find(|m| match m {
            h225::RasMessage::registrationRequest(r) => Some(r),
            _ => None,
        })
    }

    fn arq() -> h225::AdmissionRequest {
        find(|m| match m {
            h225::RasMessage::admissionRequest(r) if !r.answer_call => Some(r),
            _ => None,
        })
    }

    fn gatekeeper() -> Gatekeeper {
        Gatekeeper::new(Config {
            gatekeeper_identifier: "video.example.com".into(),
            ras_address: "192.0.2.1:1719".parse().unwrap(),
            call_signal_address: Some("192.0.2.1:1720".parse().unwrap()),
            ..Config::default()
        })
    }

    /// Sends `msg`, returns what came out: the replies (decoded again from
    /// our PER) and the events.
    fn exchange(gk: &mut Gatekeeper, now: Instant, msg: h225::RasMessage) -> (Vec<h225::RasMessage>, Vec<Event>) {
        let bytes = asn1::encode(&msg).unwrap();
        let _ = gk.handle_input(now, EP, &bytes);
        drain(gk)
    }

    fn drain(gk: &mut Gatekeeper) -> (Vec<h225::RasMessage>, Vec<Event>) {
        let (mut replies, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = gk.poll_output() {
            match o {
                Output::Transmit { to, bytes } => {
                    assert_eq!(to, EP);
                    let m = asn1::decode_ras(&bytes).unwrap();
                    // What we encode re-encodes to the same octets.
                    assert_eq!(asn1::encode(&m).unwrap(), bytes);
                    replies.push(m);
                }
                Output::Event(e) => events.push(e),
            }
        }
        (replies, events)
    }

    fn one(replies: Vec<h225::RasMessage>) -> h225::RasMessage {
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.into_iter().next().unwrap()
    }

    /// Registers the corpus RRQ (with `alias`), accepting it; returns the
    /// endpoint identifier.
    fn register(gk: &mut Gatekeeper, now: Instant, alias: &str) -> h225::EndpointIdentifier {
        let mut r = rrq();
        r.terminal_alias = Some(vec![h225::AliasAddress::h323_ID(bmp(alias).unwrap())]);
        r.gatekeeper_identifier = None;
        r.time_to_live = None;
        let (replies, events) = exchange(gk, now, h225::RasMessage::registrationRequest(r));
        assert!(replies.is_empty());
        let [Event::Authorize { ticket, aliases, .. }] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(aliases, &[Alias::H323Id(alias.into())]);
        gk.authorize(
            now,
            *ticket,
            Verdict::Accept {
                account: Some(alias.into()),
                password: None,
            },
        );
        let (replies, events) = drain(gk);
        assert!(matches!(&events[..], [Event::Registered { account: Some(a), .. }] if a == alias));
        let h225::RasMessage::registrationConfirm(rcf) = one(replies) else {
            panic!()
        };
        assert_eq!(rcf.time_to_live, Some(h225::TimeToLive(300)));
        assert_eq!(
            rcf.call_signal_address,
            vec![transport("192.0.2.1:1720".parse().unwrap())]
        );
        assert_eq!(
            rcf.terminal_alias,
            Some(vec![h225::AliasAddress::h323_ID(bmp(alias).unwrap())])
        );
        rcf.endpoint_identifier
    }

    #[test]
    fn grq_gets_gcf_with_our_identifier_and_ras_address() {
        let mut gk = gatekeeper();
        let r = grq();
        let seq = r.request_seq_num.clone();
        let (replies, _) = exchange(&mut gk, Instant::now(), h225::RasMessage::gatekeeperRequest(r));
        let h225::RasMessage::gatekeeperConfirm(gcf) = one(replies) else {
            panic!()
        };
        assert_eq!(gcf.request_seq_num, seq);
        assert_eq!(
            gcf.gatekeeper_identifier.map(|g| text(&g.0).unwrap()).as_deref(),
            Some("video.example.com")
        );
        assert_eq!(
            socket_address(&gcf.ras_address),
            Some("192.0.2.1:1719".parse().unwrap())
        );
    }

    #[test]
    fn grq_for_another_gatekeeper_gets_grj() {
        let mut gk = gatekeeper();
        let mut r = grq();
        r.gatekeeper_identifier = Some(h225::GatekeeperIdentifier(bmp("TestGK").unwrap()));
        let (replies, _) = exchange(&mut gk, Instant::now(), h225::RasMessage::gatekeeperRequest(r));
        assert!(matches!(one(replies), h225::RasMessage::gatekeeperReject(_)));
    }

    #[test]
    fn corpus_rrq_asks_for_authorization_and_refusal_gives_rrj() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        let mut r = rrq();
        // The corpus endpoint registered with GnuGk ("TestGK"): as is, it is
        // sent to discovery.
        assert!(r.gatekeeper_identifier.is_some());
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::registrationRequest(r.clone()));
        let h225::RasMessage::registrationReject(rrj) = one(replies) else {
            panic!()
        };
        assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::discoveryRequired(()));

        r.gatekeeper_identifier = None;
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::registrationRequest(r));
        assert!(replies.is_empty());
        let [Event::Authorize { ticket, aliases, .. }] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert!(!aliases.is_empty());
        gk.authorize(now, *ticket, Verdict::Refuse(Refusal::InvalidAlias));
        let (replies, events) = drain(&mut gk);
        assert!(events.is_empty());
        let h225::RasMessage::registrationReject(rrj) = one(replies) else {
            panic!()
        };
        assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::invalidAlias(()));
        assert_eq!(gk.registered(), 0);
    }

    #[test]
    fn rrq_without_usable_alias_gets_invalid_alias() {
        let mut gk = gatekeeper();
        let mut r = rrq();
        r.gatekeeper_identifier = None;
        r.terminal_alias = None;
        let (replies, events) = exchange(&mut gk, Instant::now(), h225::RasMessage::registrationRequest(r));
        assert!(events.is_empty());
        let h225::RasMessage::registrationReject(rrj) = one(replies) else {
            panic!()
        };
        assert_eq!(rrj.reject_reason, h225::RegistrationRejectReason::invalidAlias(()));
    }

    #[test]
    fn keep_alive_refreshes_and_unknown_keep_alive_needs_full_registration() {
        let mut gk = gatekeeper();
        let t0 = Instant::now();
        let id = register(&mut gk, t0, "alice");
        let mut light = rrq();
        light.gatekeeper_identifier = None;
        light.keep_alive = Some(true);
        light.terminal_alias = None;
        light.endpoint_identifier = Some(id.clone());
        light.time_to_live = Some(h225::TimeToLive(60));
        let t1 = t0 + Duration::from_secs(200);
        let (replies, events) = exchange(&mut gk, t1, h225::RasMessage::registrationRequest(light.clone()));
        assert!(events.is_empty());
        let h225::RasMessage::registrationConfirm(rcf) = one(replies) else {
            panic!()
        };
        assert_eq!(rcf.endpoint_identifier, id);
        assert_eq!(rcf.time_to_live, Some(h225::TimeToLive(60)));
        // Still registered within its new time to live and the grace.
        gk.handle_timeout(t1 + Duration::from_secs(80));
        assert_eq!(gk.registered(), 1);
        // Expires after its new time to live and the grace.
        gk.handle_timeout(t1 + Duration::from_secs(90));
        let (_, events) = drain(&mut gk);
        assert!(matches!(&events[..], [Event::Unregistered { account: Some(a), .. }] if a == "alice"));
        assert_eq!(gk.registered(), 0);

        let (replies, _) = exchange(&mut gk, t1, h225::RasMessage::registrationRequest(light));
        let h225::RasMessage::registrationReject(rrj) = one(replies) else {
            panic!()
        };
        assert_eq!(
            rrj.reject_reason,
            h225::RegistrationRejectReason::fullRegistrationRequired(())
        );
    }

    #[test]
    fn corpus_arq_gets_gatekeeper_routed_acf_or_arj() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        // Not registered with us.
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(arq()));
        let h225::RasMessage::admissionReject(arj) = one(replies) else {
            panic!()
        };
        assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::callerNotRegistered(()));

        let id = register(&mut gk, now, "alice");
        let mut r = arq();
        r.endpoint_identifier = id.clone();
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(r.clone()));
        let h225::RasMessage::admissionConfirm(acf) = one(replies) else {
            panic!()
        };
        assert_eq!(acf.call_model, h225::CallModel::gatekeeperRouted(()));
        assert_eq!(
            socket_address(&acf.dest_call_signal_address),
            Some("192.0.2.1:1720".parse().unwrap())
        );
        assert_eq!(acf.band_width, h225::BandWidth(r.band_width.0.min(40_960)));

        // The same identifier from another address is not the endpoint.
        let bytes = asn1::encode(&h225::RasMessage::admissionRequest(r.clone())).unwrap();
        let other = SocketAddr::from(([192, 0, 2, 99], 1719));
        gk.handle_input(now, other, &bytes).unwrap();
        let Some(Output::Transmit { to, bytes }) = gk.poll_output() else {
            panic!()
        };
        assert_eq!(to, other);
        assert!(matches!(
            asn1::decode_ras(&bytes).unwrap(),
            h225::RasMessage::admissionReject(_)
        ));

        // Nothing to call.
        r.destination_info = None;
        r.dest_call_signal_address = None;
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(r));
        let h225::RasMessage::admissionReject(arj) = one(replies) else {
            panic!()
        };
        assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::incompleteAddress(()));
    }

    #[test]
    fn corpus_drq_gets_dcf_and_urq_unregisters() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        let id = register(&mut gk, now, "alice");
        let mut drq = find(|m| match m {
            h225::RasMessage::disengageRequest(r) => Some(r),
            _ => None,
        });
        drq.endpoint_identifier = id.clone();
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::disengageRequest(drq.clone()));
        assert!(matches!(one(replies), h225::RasMessage::disengageConfirm(_)));

        let urq = h225::UnregistrationRequest {
            request_seq_num: h225::RequestSeqNum(7),
            call_signal_address: rrq().call_signal_address,
            endpoint_alias: None,
            non_standard_data: None,
            endpoint_identifier: Some(id),
            alternate_endpoints: None,
            gatekeeper_identifier: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            reason: None,
            endpoint_alias_pattern: None,
            supported_prefixes: None,
            alternate_gatekeeper: None,
            generic_data: None,
            assigned_gatekeeper: None,
        };
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::unregistrationRequest(urq.clone()));
        assert!(matches!(one(replies), h225::RasMessage::unregistrationConfirm(_)));
        assert!(matches!(&events[..], [Event::Unregistered { .. }]));
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::unregistrationRequest(urq));
        let h225::RasMessage::unregistrationReject(urj) = one(replies) else {
            panic!()
        };
        assert_eq!(urj.reject_reason, h225::UnregRejectReason::notCurrentlyRegistered(()));
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::disengageRequest(drq));
        assert!(matches!(one(replies), h225::RasMessage::disengageReject(_)));
    }

    #[test]
    fn lrq_for_a_registered_alias_gets_lcf_else_lrj() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        register(&mut gk, now, "Alice");
        let lrq = |alias: &str| {
            h225::RasMessage::locationRequest(h225::LocationRequest {
                request_seq_num: h225::RequestSeqNum(9),
                endpoint_identifier: None,
                destination_info: vec![h225::AliasAddress::h323_ID(bmp(alias).unwrap())],
                non_standard_data: None,
                reply_address: transport(SocketAddr::from(([203, 0, 113, 5], 1719))),
                source_info: None,
                can_map_alias: Some(false),
                gatekeeper_identifier: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                desired_protocols: None,
                desired_tunnelled_protocol: None,
                feature_set: None,
                generic_data: None,
                hop_count: None,
                circuit_info: None,
                call_identifier: None,
                band_width: None,
                source_endpoint_info: None,
                can_map_src_alias: None,
                language: None,
            })
        };
        // The reply goes to the source, not to a third-party replyAddress.
        let (replies, _) = exchange(&mut gk, now, lrq("alice"));
        let h225::RasMessage::locationConfirm(lcf) = one(replies) else {
            panic!()
        };
        assert_eq!(
            socket_address(&lcf.call_signal_address),
            Some("192.0.2.1:1720".parse().unwrap())
        );
        let (replies, _) = exchange(&mut gk, now, lrq("bob"));
        assert!(matches!(one(replies), h225::RasMessage::locationReject(_)));
    }

    #[test]
    fn bandwidth_is_capped_and_non_requests_are_ignored() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        assert_eq!(gk.handle_input(now, EP, &[0xff, 0x00, 0x12]), Err(Ignored::Undecodable));
        assert_eq!(gk.handle_input(now, EP, &[]), Err(Ignored::Undecodable));
        let gcf = find(|m| matches!(m, h225::RasMessage::gatekeeperConfirm(_)).then_some(m));
        let bytes = asn1::encode(&gcf).unwrap();
        assert_eq!(gk.handle_input(now, EP, &bytes), Err(Ignored::NotARequest));
        assert!(gk.poll_output().is_none());
    }

    #[test]
    fn every_corpus_pdu_is_handled_without_panic() {
        let mut gk = gatekeeper();
        let now = Instant::now();
        for m in corpus_ras() {
            let bytes = asn1::encode(&m).unwrap();
            let _ = gk.handle_input(now, EP, &bytes);
            let (_, events) = drain(&mut gk);
            for e in events {
                if let Event::Authorize { ticket, .. } = e {
                    gk.authorize(
                        now,
                        ticket,
                        Verdict::Accept {
                            account: None,
                            password: None,
                        },
                    );
                    drain(&mut gk);
                }
            }
        }
    }

    const UNIX: u64 = 1_700_000_000;

    /// A gatekeeper whose wall clock reads [`UNIX`] at `now`.
    fn clocked(now: Instant) -> Gatekeeper {
        let mut gk = gatekeeper();
        gk.set_wall_clock(now, UNIX);
        gk
    }

    fn md5_token(alias: &str, password: &str, timestamp: u64) -> h225::CryptoH323Token {
        h235::password_hash_token(&Alias::H323Id(alias.into()), password, timestamp as u32).unwrap()
    }

    /// A full RRQ for `alias` with `tokens`.
    fn rrq_with(alias: &str, tokens: Vec<h225::CryptoH323Token>) -> h225::RegistrationRequest {
        let mut r = rrq();
        r.terminal_alias = Some(vec![h225::AliasAddress::h323_ID(bmp(alias).unwrap())]);
        r.gatekeeper_identifier = None;
        r.time_to_live = None;
        r.crypto_tokens = (!tokens.is_empty()).then_some(tokens);
        r
    }

    /// Sends an RRQ, answers its authorization with `verdict`; returns the
    /// reply and the events after the verdict.
    fn register_with(
        gk: &mut Gatekeeper,
        now: Instant,
        bytes: &[u8],
        verdict: Verdict,
    ) -> (h225::RasMessage, Vec<Event>) {
        let _ = gk.handle_input(now, EP, bytes);
        let (replies, events) = drain(gk);
        if !replies.is_empty() {
            return (one(replies), events);
        }
        let [Event::Authorize { ticket, .. }] = events.as_slice() else {
            panic!("{events:?}")
        };
        gk.authorize(now, *ticket, verdict);
        let (replies, events) = drain(gk);
        (one(replies), events)
    }

    fn accept(password: &str) -> Verdict {
        Verdict::Accept {
            account: Some("room1".into()),
            password: Some(password.into()),
        }
    }

    fn rrj_reason(m: h225::RasMessage) -> h225::RegistrationRejectReason {
        match m {
            h225::RasMessage::registrationReject(r) => r.reject_reason,
            other => panic!("not an RRJ: {other:?}"),
        }
    }

    #[test]
    fn md5_password_token_registers_and_authenticates_later_requests() {
        let now = Instant::now();
        let mut gk = clocked(now);
        let r = rrq_with("room1", vec![md5_token("room1", "s3cret", UNIX - 5)]);
        let bytes = asn1::encode(&h225::RasMessage::registrationRequest(r)).unwrap();
        let _ = gk.handle_input(now, EP, &bytes);
        let (_, events) = drain(&mut gk);
        assert!(
            matches!(
                &events[..],
                [Event::Authorize {
                    token: Some(Procedure::PasswordHash),
                    ..
                }]
            ),
            "{events:?}"
        );
        let Event::Authorize { ticket, .. } = events[0] else {
            panic!()
        };
        gk.authorize(now, ticket, accept("s3cret"));
        let (replies, events) = drain(&mut gk);
        let h225::RasMessage::registrationConfirm(rcf) = one(replies) else {
            panic!()
        };
        assert!(
            matches!(
                &events[..],
                [Event::Registered {
                    authenticated: true,
                    ..
                }]
            ),
            "{events:?}"
        );
        let id = rcf.endpoint_identifier;

        // An ARQ now needs a valid token: none → ARJ securityDenial.
        let mut a = arq();
        a.endpoint_identifier = id.clone();
        a.crypto_tokens = None;
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a.clone()));
        let h225::RasMessage::admissionReject(arj) = one(replies) else {
            panic!()
        };
        assert_eq!(arj.reject_reason, h225::AdmissionRejectReason::securityDenial(()));
        assert!(matches!(&events[..], [Event::SecurityDenied { sender: None, .. }]));
        // A wrong password → ARJ.
        a.crypto_tokens = Some(vec![md5_token("room1", "guess", UNIX)]);
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a.clone()));
        assert!(matches!(one(replies), h225::RasMessage::admissionReject(_)));
        // Another alias's token → ARJ.
        a.crypto_tokens = Some(vec![md5_token("room2", "s3cret", UNIX)]);
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a.clone()));
        assert!(matches!(one(replies), h225::RasMessage::admissionReject(_)));
        // The right one (in the same second as another: allowed) → ACF.
        a.crypto_tokens = Some(vec![md5_token("room1", "s3cret", UNIX)]);
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a.clone()));
        assert!(matches!(one(replies), h225::RasMessage::admissionConfirm(_)));
        assert!(matches!(&events[..], [Event::Admitted { account: Some(u), .. }] if u == "room1"));
        // A token older than the last one taken is a replay → ARJ.
        a.crypto_tokens = Some(vec![md5_token("room1", "s3cret", UNIX - 5)]);
        let (replies, _) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a));
        assert!(matches!(one(replies), h225::RasMessage::admissionReject(_)));

        // A keep-alive with a token refreshes; without one it is refused.
        let mut light = rrq();
        light.gatekeeper_identifier = None;
        light.keep_alive = Some(true);
        light.terminal_alias = None;
        light.endpoint_identifier = Some(id.clone());
        light.crypto_tokens = Some(vec![md5_token("room1", "s3cret", UNIX + 1)]);
        let later = now + Duration::from_secs(1);
        let (replies, _) = exchange(&mut gk, later, h225::RasMessage::registrationRequest(light.clone()));
        assert!(matches!(one(replies), h225::RasMessage::registrationConfirm(_)));
        light.crypto_tokens = None;
        let (replies, _) = exchange(&mut gk, later, h225::RasMessage::registrationRequest(light));
        assert_eq!(
            rrj_reason(one(replies)),
            h225::RegistrationRejectReason::securityDenial(())
        );

        // URQ: without a token refused, with one done.
        let mut u = h225::UnregistrationRequest::new(
            h225::RequestSeqNum(9),
            rrq().call_signal_address,
            None,
            None,
            Some(id),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        );
        let (replies, _) = exchange(&mut gk, later, h225::RasMessage::unregistrationRequest(u.clone()));
        let h225::RasMessage::unregistrationReject(urj) = one(replies) else {
            panic!()
        };
        assert_eq!(urj.reject_reason, h225::UnregRejectReason::securityDenial(()));
        u.crypto_tokens = Some(vec![md5_token("room1", "s3cret", UNIX + 1)]);
        let (replies, _) = exchange(&mut gk, later, h225::RasMessage::unregistrationRequest(u));
        assert!(matches!(one(replies), h225::RasMessage::unregistrationConfirm(_)));
        assert_eq!(gk.registered(), 0);
    }

    #[test]
    fn wrong_stale_unverifiable_or_foreign_tokens_get_security_denial() {
        let now = Instant::now();
        let deny = h225::RegistrationRejectReason::securityDenial(());
        let send = |gk: &mut Gatekeeper, token: h225::CryptoH323Token, verdict: Verdict| {
            let r = rrq_with("room1", vec![token]);
            let bytes = asn1::encode(&h225::RasMessage::registrationRequest(r)).unwrap();
            register_with(gk, now, &bytes, verdict)
        };
        // Wrong password.
        let mut gk = clocked(now);
        let (reply, events) = send(&mut gk, md5_token("room1", "guess", UNIX), accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
        assert!(matches!(&events[..], [Event::SecurityDenied { sender: Some(s), .. }] if s == "room1"));
        // Too old, and too far ahead.
        let (reply, _) = send(&mut gk, md5_token("room1", "s3cret", UNIX - 600), accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
        let (reply, _) = send(&mut gk, md5_token("room1", "s3cret", UNIX + 600), accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
        // No password known for the account.
        let (reply, _) = send(
            &mut gk,
            md5_token("room1", "s3cret", UNIX),
            Verdict::Accept {
                account: Some("room1".into()),
                password: None,
            },
        );
        assert_eq!(rrj_reason(reply), deny);
        // A token for an alias that is not registered here: refused at once.
        let (reply, _) = send(&mut gk, md5_token("room9", "s3cret", UNIX), accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
        assert_eq!(gk.registered(), 0);
        // Without a wall clock no token is fresh.
        let mut gk = gatekeeper();
        let (reply, _) = send(&mut gk, md5_token("room1", "s3cret", UNIX), accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
        // The right one registers; then the same RRQ, once another token
        // has been taken, is a replay.
        let mut gk = clocked(now);
        let first = asn1::encode(&h225::RasMessage::registrationRequest(rrq_with(
            "room1",
            vec![md5_token("room1", "s3cret", UNIX - 2)],
        )))
        .unwrap();
        let (reply, _) = register_with(&mut gk, now, &first, accept("s3cret"));
        assert!(matches!(reply, h225::RasMessage::registrationConfirm(_)));
        let (reply, _) = send(&mut gk, md5_token("room1", "s3cret", UNIX), accept("s3cret"));
        assert!(matches!(reply, h225::RasMessage::registrationConfirm(_)));
        let (reply, _) = register_with(&mut gk, now, &first, accept("s3cret"));
        assert_eq!(rrj_reason(reply), deny);
    }

    #[test]
    fn procedure1_tokens_cover_the_message_and_are_not_taken_twice() {
        let now = Instant::now();
        let mut gk = clocked(now);
        let signed = |ts: u64, random: i64, password: &str| {
            let token = h235::procedure1_token("room1", Some("video.example.com"), ts as u32, random).unwrap();
            let r = rrq_with("room1", vec![token]);
            let mut bytes = asn1::encode(&h225::RasMessage::registrationRequest(r)).unwrap();
            assert!(h235::procedure1_sign(&mut bytes, password));
            bytes
        };
        let (reply, _) = register_with(&mut gk, now, &signed(UNIX, 1, "guess"), accept("s3cret"));
        assert_eq!(rrj_reason(reply), h225::RegistrationRejectReason::securityDenial(()));
        let first = signed(UNIX, 2, "s3cret");
        let _ = gk.handle_input(now, EP, &first);
        let (_, events) = drain(&mut gk);
        let [Event::Authorize { ticket, .. }] = events[..] else {
            panic!("{events:?}")
        };
        gk.authorize(now, ticket, accept("s3cret"));
        // The RCF carries our token for the endpoint, over the whole RCF.
        let Some(Output::Transmit { bytes: rcf_bytes, .. }) = gk.poll_output() else {
            panic!()
        };
        let (_, events) = drain(&mut gk);
        assert!(matches!(
            &events[..],
            [Event::Registered {
                authenticated: true,
                ..
            }]
        ));
        let h225::RasMessage::registrationConfirm(rcf) = asn1::decode_ras(&rcf_bytes).unwrap() else {
            panic!()
        };
        let id = text(&rcf.endpoint_identifier.0).unwrap();
        let ours = h235::find_token(rcf.crypto_tokens.as_deref()).unwrap();
        assert_eq!(ours.sender, "video.example.com");
        assert_eq!(ours.recipient.as_deref(), Some(id.as_str()));
        assert_eq!(ours.timestamp as u64, UNIX);
        assert!(ours.verify("s3cret", &rcf_bytes));
        assert!(!ours.verify("s3cre", &rcf_bytes));
        // Registered, the endpoint names itself by its identifier; the
        // answer is signed again.
        let token = h235::procedure1_token(&id, Some("video.example.com"), UNIX as u32, 3).unwrap();
        let mut a = arq();
        a.endpoint_identifier = rcf.endpoint_identifier.clone();
        a.crypto_tokens = Some(vec![token]);
        let mut bytes = asn1::encode(&h225::RasMessage::admissionRequest(a.clone())).unwrap();
        assert!(h235::procedure1_sign(&mut bytes, "s3cret"));
        let _ = gk.handle_input(now, EP, &bytes);
        let Some(acf_bytes) = std::iter::from_fn(|| gk.poll_output()).find_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(bytes),
            Output::Event(_) => None,
        }) else {
            panic!()
        };
        let h225::RasMessage::admissionConfirm(acf) = asn1::decode_ras(&acf_bytes).unwrap() else {
            panic!()
        };
        assert!(h235::find_token(acf.crypto_tokens.as_deref())
            .unwrap()
            .verify("s3cret", &acf_bytes));
        // A token made for another gatekeeper is refused.
        let token = h235::procedure1_token(&id, Some("other.example.com"), UNIX as u32, 4).unwrap();
        a.crypto_tokens = Some(vec![token]);
        let mut bytes = asn1::encode(&h225::RasMessage::admissionRequest(a)).unwrap();
        assert!(h235::procedure1_sign(&mut bytes, "s3cret"));
        let _ = gk.handle_input(now, EP, &bytes);
        let (replies, _) = drain(&mut gk);
        assert!(matches!(one(replies), h225::RasMessage::admissionReject(_)));
        // The same message again (same time and sequence number): a replay.
        let (reply, _) = register_with(&mut gk, now, &first, accept("s3cret"));
        assert_eq!(rrj_reason(reply), h225::RegistrationRejectReason::securityDenial(()));
        // The next one in the same second is fine.
        let (reply, _) = register_with(&mut gk, now, &signed(UNIX, 3, "s3cret"), accept("s3cret"));
        assert!(matches!(reply, h225::RasMessage::registrationConfirm(_)));
    }

    #[test]
    fn a_retransmitted_rrq_waits_for_the_first_ones_verdict() {
        let now = Instant::now();
        let mut gk = gatekeeper();
        let bytes = asn1::encode(&h225::RasMessage::registrationRequest(rrq_with("alice", Vec::new()))).unwrap();
        let _ = gk.handle_input(now, EP, &bytes);
        let (_, first) = drain(&mut gk);
        assert!(matches!(&first[..], [Event::Authorize { .. }]));
        // The same request again before the verdict: no second ticket, no answer.
        assert_eq!(gk.handle_input(now, EP, &bytes), Ok(()));
        let (replies, events) = drain(&mut gk);
        assert!(replies.is_empty() && events.is_empty(), "{replies:?} {events:?}");
        let [Event::Authorize { ticket, .. }] = first[..] else {
            panic!()
        };
        gk.authorize(
            now,
            ticket,
            Verdict::Accept {
                account: None,
                password: None,
            },
        );
        let (replies, _) = drain(&mut gk);
        assert!(matches!(one(replies), h225::RasMessage::registrationConfirm(_)));
    }

    #[test]
    fn gcf_names_the_password_procedure_the_grq_offers() {
        let mut gk = gatekeeper();
        let mut r = grq();
        let (m, o) = h235::capability(Procedure::PasswordHash);
        r.authentication_capability = Some(vec![m.clone()]);
        r.algorithm_oids = Some(vec![o.clone()]);
        let (replies, _) = exchange(&mut gk, Instant::now(), h225::RasMessage::gatekeeperRequest(r.clone()));
        let h225::RasMessage::gatekeeperConfirm(gcf) = one(replies) else {
            panic!()
        };
        assert_eq!(gcf.authentication_mode, Some(m));
        assert_eq!(gcf.algorithm_oid, Some(o));
        r.authentication_capability = None;
        let (replies, _) = exchange(&mut gk, Instant::now(), h225::RasMessage::gatekeeperRequest(r));
        let h225::RasMessage::gatekeeperConfirm(gcf) = one(replies) else {
            panic!()
        };
        assert_eq!(gcf.authentication_mode, None);
    }

    #[test]
    fn admission_names_the_call_and_registration_the_call_address() {
        let now = Instant::now();
        let mut gk = gatekeeper();
        let mut r = rrq_with("alice", Vec::new());
        // The address on the host it registers from comes first.
        r.call_signal_address = vec![
            transport("0.0.0.0:1720".parse().unwrap()),
            transport("198.51.100.7:1820".parse().unwrap()),
            transport(SocketAddr::new(EP.ip(), 1821)),
        ];
        let bytes = asn1::encode(&h225::RasMessage::registrationRequest(r)).unwrap();
        let (reply, events) = register_with(
            &mut gk,
            now,
            &bytes,
            Verdict::Accept {
                account: Some("alice".into()),
                password: None,
            },
        );
        let h225::RasMessage::registrationConfirm(rcf) = reply else {
            panic!()
        };
        let [Event::Registered {
            call_signal_address,
            authenticated: false,
            ..
        }] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*call_signal_address, Some(SocketAddr::new(EP.ip(), 1821)));
        assert_eq!(
            call_address(&[transport("198.51.100.7:1820".parse().unwrap())], EP.ip()),
            Some("198.51.100.7:1820".parse().unwrap())
        );
        let mut a = arq();
        a.endpoint_identifier = rcf.endpoint_identifier;
        a.call_identifier = Some(h225::CallIdentifier::new(h225::GloballyUniqueID(
            rasn::types::FixedOctetString::from([7; 16]),
        )));
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a.clone()));
        assert!(matches!(one(replies), h225::RasMessage::admissionConfirm(_)));
        let [Event::Admitted {
            account,
            source,
            call_identifier,
            ..
        }] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(account.as_deref(), Some("alice"));
        assert_eq!(*source, EP.ip());
        assert_eq!(*call_identifier, Some([7; 16]));
        // Answering a call admits nothing to place.
        a.answer_call = true;
        let (replies, events) = exchange(&mut gk, now, h225::RasMessage::admissionRequest(a));
        assert!(matches!(one(replies), h225::RasMessage::admissionConfirm(_)));
        assert!(events.is_empty());
    }
}
