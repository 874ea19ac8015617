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
//! - URQ → UCF, or URJ `notCurrentlyRegistered`.
//! - ARQ → ACF with `callModel gatekeeperRouted` and `destCallSignalAddress`
//!   = our call-signalling address (confgate routes the call signalling: the
//!   dialed alias arrives in the Setup and is routed there), or ARJ:
//!   `callerNotRegistered`, `incompleteAddress` (nothing to call),
//!   `resourceUnavailable` (no call signalling served). When the endpoint
//!   answers a call (`answerCall`), the ACF points at its own address.
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

use rasn::types::{BmpString, Ia5String, OctetString};

use crate::asn1::{self, h225};
use crate::signalling::protocol_identifier;

/// Longest alias kept (characters).
const MAX_ALIAS: usize = 128;
/// Most aliases in one registration.
pub const MAX_ALIASES: usize = 16;
/// Most full registrations waiting for [`Gatekeeper::authorize`].
const MAX_PENDING: usize = 256;
/// How long a full registration waits for its verdict before it is dropped.
const PENDING_TIMEOUT: Duration = Duration::from_secs(10);

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
    },
    /// An endpoint registered (or registered again with new aliases).
    Registered {
        /// Its identifier.
        endpoint: EndpointId,
        /// The account given in the verdict.
        account: Option<String>,
        /// Its aliases.
        aliases: Vec<Alias>,
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
}

/// A full registration waiting for its verdict.
#[derive(Debug)]
struct Pending {
    source: SocketAddr,
    rrq: h225::RegistrationRequest,
    aliases: Vec<Alias>,
    deadline: Instant,
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
        }
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
        let msg = asn1::decode_ras(bytes).map_err(|_| Ignored::Undecodable)?;
        use h225::RasMessage as M;
        let reply = match msg {
            M::gatekeeperRequest(r) => Some(self.gatekeeper_request(r)),
            M::registrationRequest(r) => self.registration_request(now, source, r)?,
            M::unregistrationRequest(r) => Some(self.unregistration_request(source, r)),
            M::admissionRequest(r) => Some(self.admission_request(source, r)),
            M::bandwidthRequest(r) => Some(M::bandwidthConfirm(h225::BandwidthConfirm {
                request_seq_num: r.request_seq_num,
                band_width: h225::BandWidth(r.band_width.0.min(self.config.max_bandwidth)),
                non_standard_data: None,
                tokens: None,
                crypto_tokens: None,
                integrity_check_value: None,
                capacity: None,
                generic_data: None,
                transport_qos: None,
            })),
            M::disengageRequest(r) => Some(self.disengage_request(source, r)),
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
            self.transmit(source, &reply);
        }
        Ok(())
    }

    /// Answers the full registration waiting under `ticket` (from
    /// [`Event::Authorize`]). Unknown or expired tickets are ignored.
    pub fn authorize(&mut self, now: Instant, ticket: u64, verdict: Verdict) {
        let Some(p) = self.pending.remove(&ticket) else { return };
        let seq = p.rrq.request_seq_num.clone();
        let account = match verdict {
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
            Verdict::Accept { account } => account,
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
        let registration = Registration {
            source: p.source.ip(),
            ras_address,
            call_signal_address: p.rrq.call_signal_address.first().cloned(),
            aliases: p.aliases.clone(),
            account: account.clone(),
            time_to_live: ttl,
            expires: now + ttl + self.config.grace,
        };
        let rcf = self.registration_confirm(seq, &id, &registration);
        self.registrations.insert(id.clone(), registration);
        self.transmit(p.source, &rcf);
        self.out.push_back(Output::Event(Event::Registered {
            endpoint: id,
            account,
            aliases: p.aliases,
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
        h225::RasMessage::gatekeeperConfirm(h225::GatekeeperConfirm {
            request_seq_num: r.request_seq_num,
            protocol_identifier: protocol_identifier(),
            non_standard_data: None,
            gatekeeper_identifier: self.our_gatekeeper_identifier(),
            ras_address: transport(self.config.ras_address),
            alternate_gatekeeper: None,
            authentication_mode: None,
            tokens: None,
            crypto_tokens: None,
            algorithm_oid: None,
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
        if self.pending.len() >= MAX_PENDING {
            return Err(Ignored::Busy);
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
            },
        );
        self.out.push_back(Output::Event(Event::Authorize {
            ticket,
            source,
            aliases,
        }));
        Ok(None)
    }

    fn unregistration_request(&mut self, source: SocketAddr, r: h225::UnregistrationRequest) -> h225::RasMessage {
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
        let Some(id) = found else {
            return h225::RasMessage::unregistrationReject(h225::UnregistrationReject {
                request_seq_num: r.request_seq_num,
                reject_reason: h225::UnregRejectReason::notCurrentlyRegistered(()),
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

    fn admission_request(&self, source: SocketAddr, r: h225::AdmissionRequest) -> h225::RasMessage {
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
        let Some((_, reg)) = self.registration_of(source, &r.endpoint_identifier) else {
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

    fn disengage_request(&mut self, source: SocketAddr, r: h225::DisengageRequest) -> h225::RasMessage {
        if self.registration_of(source, &r.endpoint_identifier).is_none() {
            return h225::RasMessage::disengageReject(h225::DisengageReject {
                request_seq_num: r.request_seq_num,
                reject_reason: h225::DisengageRejectReason::notRegistered(()),
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
                    gk.authorize(now, ticket, Verdict::Accept { account: None });
                    drain(&mut gk);
                }
            }
        }
    }
}
