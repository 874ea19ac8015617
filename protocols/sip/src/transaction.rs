//! The SIP transaction layer: the four machines of RFC 3261 §17, with the "Accepted" state that RFC 6026
//! adds to both INVITE machines, and the 2xx retransmission that RFC 3261 §13.3.1.4 gives the UAS core.
//!
//! # Model
//!
//! [`TransactionLayer`] is a sans-IO state machine holding every live transaction, keyed by
//! [`ServerTxKey`] (§17.2.3: top Via branch, sent-by and method) and [`ClientTxKey`] (§17.1.3: branch and
//! CSeq method). Input is parsed messages plus `now`; output is [`Transmit`]s, [`TxEvent`]s and a wake-up
//! time. It never reads a clock or touches a socket.
//!
//! # Drain contract
//!
//! After every call to [`TransactionLayer::receive`], [`respond`](TransactionLayer::respond),
//! [`send_request`](TransactionLayer::send_request), [`send_stateless`](TransactionLayer::send_stateless)
//! or [`handle_timeout`](TransactionLayer::handle_timeout), the driver:
//! 1. sends every [`Transmit`] from [`poll_transmit`](TransactionLayer::poll_transmit) until `None`;
//! 2. handles every [`TxEvent`] from [`poll_event`](TransactionLayer::poll_event) until `None`;
//! 3. sleeps until [`poll_timeout`](TransactionLayer::poll_timeout) (or the next input), then calls
//!    `handle_timeout(now)`. A wake-up may find nothing to do: timers are cancelled lazily.
//!
//! # What the layer does on its own
//!
//! - Stamps `received`/`rport` on the top Via of every incoming request (RFC 3261 §18.2.1, RFC 3581).
//! - Sends `100 Trying` as soon as a new INVITE arrives (§17.2.1 allows it at once; §8.2.6.1).
//! - Absorbs retransmitted requests and re-sends the last response (§17.2.1, §17.2.2); in the Accepted
//!   state a retransmitted INVITE is absorbed without a response (RFC 6026 §8.5): the 2xx is already
//!   being retransmitted on its own timer.
//! - Retransmits a 2xx to INVITE at T1, 2·T1, … capped at T2 until the ACK arrives (matched on Call-ID
//!   and CSeq number, since the ACK is a new transaction) or 64·T1 passes, then reports
//!   [`TxEvent::AckTimeout`] (the core should then BYE, §13.3.1.4).
//! - Answers CANCEL itself (§9.2): `200 OK` when an INVITE server transaction matches, `481` when none
//!   does. The TU learns of it through [`Received::Cancel`] and should answer the INVITE with 487 when
//!   `invite` is `Some`.
//! - Sends the ACK for a 300–699 response to an INVITE it sent (§17.1.1.3); the ACK for a 2xx is the
//!   TU's, through [`send_stateless`](TransactionLayer::send_stateless) (see `dialog::Dialog::ack`).
//! - Rejects a new incoming request with `503 Service Unavailable` and `Retry-After` when the number of
//!   live transactions is at the limit ([`TransactionLayer::with_limit`]; RFC 3261 §21.5.4), without
//!   creating a transaction for it. Outgoing requests are not limited.
//! - Drops responses that match no client transaction, counting them ([`Stats::stray_responses`]).
//!
//! Over reliable transports, retransmission timers (A, E, G and the 2xx timer) are not armed and timers
//! D, I, J, K are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
//!
//! Not done here: the TU must answer every request it receives (a non-INVITE server transaction waits
//! for it forever); RFC 2543 peers without a magic-cookie branch are matched on a key built from Call-ID,
//! CSeq, From tag and the top Via, a simplification of §17.2.3; responses are not checked against our own
//! sent-by (§18.1.2).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};

use crate::message;

/// Default bound on live transactions ([`TransactionLayer::new`]).
pub const DEFAULT_MAX_TRANSACTIONS: usize = 10_000;

/// Seconds put in `Retry-After` of the 503 sent when over the transaction limit.
pub const OVERLOAD_RETRY_AFTER_SECS: u32 = 5;

/// The RFC 3261 timer base values (§17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses, 4 s by default.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s by default.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a server transaction (RFC 3261 §17.2.3): branch of the top Via, its sent-by, and the
/// method (an ACK matches the INVITE's transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTxKey {
    /// Top Via branch (or an RFC 2543 fallback key).
    pub branch: String,
    /// Top Via sent-by, `host[:port]`.
    pub sent_by: String,
    /// Method that created the transaction.
    pub method: Method,
}

impl Hash for ServerTxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        self.sent_by.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

/// Identifies a client transaction (RFC 3261 §17.1.3): branch of the top Via we sent and the CSeq method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTxKey {
    /// Branch of the Via we put on the request.
    pub branch: String,
    /// Method of the request.
    pub method: Method,
}

impl Hash for ClientTxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

/// Either kind of transaction key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxKey {
    /// A server transaction.
    Server(ServerTxKey),
    /// A client transaction.
    Client(ClientTxKey),
}

/// What an incoming message means to the TU, from [`TransactionLayer::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A new request the TU must answer with [`TransactionLayer::respond`] (for INVITE, `100 Trying` is
    /// already on its way).
    Request {
        /// The server transaction to answer on.
        key: ServerTxKey,
        /// The request, top Via stamped with `received`/`rport`.
        request: Request,
    },
    /// An ACK for a 2xx (or one no transaction knows): for the dialog (RFC 3261 §13.3.1.4, §17.2.3).
    Ack {
        /// The ACK.
        request: Request,
    },
    /// A CANCEL, already answered by the layer (200, or 481 when nothing matched; RFC 3261 §9.2).
    Cancel {
        /// The CANCEL's own server transaction (already completed).
        key: ServerTxKey,
        /// The CANCEL.
        request: Request,
        /// The INVITE server transaction it cancels, when that INVITE has no final response yet: answer
        /// it with 487 (Request Terminated).
        invite: Option<ServerTxKey>,
    },
    /// A response on one of our client transactions: provisional, or the first final (retransmitted
    /// finals are absorbed; for INVITE, every 2xx is passed on, RFC 6026 §8.4).
    Response {
        /// The client transaction.
        key: ClientTxKey,
        /// The response.
        response: Response,
    },
}

/// Something that happened without input, from [`TransactionLayer::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxEvent {
    /// Timer B or F fired: no final response to our request (the TU treats it as 408, §8.1.3.1).
    Timeout(ClientTxKey),
    /// 64·T1 passed without the ACK for our 2xx to an INVITE (§13.3.1.4): the session should be ended
    /// with a BYE.
    AckTimeout {
        /// The INVITE server transaction.
        key: ServerTxKey,
        /// Call-ID of the INVITE.
        call_id: String,
    },
    /// A transaction ended and its key is no longer valid.
    Terminated(TxKey),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: SocketAddr,
    /// Over a reliable (stream) transport.
    pub reliable: bool,
    /// The serialized message.
    pub bytes: Vec<u8>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Responses matching no client transaction, dropped (§17.1.3).
    pub stray_responses: u64,
    /// Retransmitted requests and responses absorbed.
    pub retransmissions_absorbed: u64,
    /// New requests rejected with 503 over the transaction limit.
    pub rejected_over_limit: u64,
    /// Requests without a usable top Via or CSeq, dropped.
    pub unmatchable: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    /// Non-INVITE, no response yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE only: ACK received for a non-2xx final.
    Confirmed,
    /// INVITE only (RFC 6026): 2xx sent.
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// INVITE only.
    Calling,
    /// Non-INVITE only.
    Trying,
    Proceeding,
    Completed,
    /// INVITE only (RFC 6026): 2xx received.
    Accepted,
}

#[derive(Debug)]
struct ServerTx {
    key: ServerTxKey,
    state: ServerState,
    reliable: bool,
    source: SocketAddr,
    last: Option<LastResponse>,
    interval: Duration,
    acked: bool,
    call_id: String,
    cseq: u32,
}

/// The last response a server transaction sent, kept to answer retransmitted requests and to retransmit
/// it on its own timers.
#[derive(Debug)]
struct LastResponse {
    /// Where it went, and where its retransmissions go.
    dest: SocketAddr,
    /// The serialized response.
    bytes: Vec<u8>,
    /// Its To tag, for INVITE transactions: the 200 to a CANCEL carries it (§9.2).
    to_tag: Option<String>,
}

#[derive(Debug)]
struct ClientTx {
    key: ClientTxKey,
    state: ClientState,
    reliable: bool,
    dest: SocketAddr,
    request: Request,
    bytes: Vec<u8>,
    ack: Option<Vec<u8>>,
    interval: Duration,
}

#[derive(Debug)]
enum Tx {
    Server(ServerTx),
    Client(ClientTx),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// A, E, G, or the 2xx retransmission.
    Retransmit,
    /// B, F, H, L (Accepted), or the end of a lingering state: D, I, J, K, M.
    End,
}

/// The transaction layer. See the module docs for the model and the drain contract.
#[derive(Debug)]
pub struct TransactionLayer {
    timers: Timers,
    max: usize,
    next_id: u64,
    txs: HashMap<u64, (Tx, u32)>,
    servers: HashMap<ServerTxKey, u64>,
    clients: HashMap<ClientTxKey, u64>,
    /// INVITE server transactions in Accepted state, by (Call-ID, CSeq number): where a 2xx ACK goes.
    accepted: HashMap<(String, u32), u64>,
    queue: BinaryHeap<Reverse<(Instant, u64, TimerKind, u32)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    stats: Stats,
}

impl TransactionLayer {
    /// A layer with the given timers and [`DEFAULT_MAX_TRANSACTIONS`].
    pub fn new(timers: Timers) -> Self {
        Self::with_limit(timers, DEFAULT_MAX_TRANSACTIONS)
    }

    /// A layer that holds at most `max_transactions` live transactions; a new incoming request over the
    /// limit is answered `503` with `Retry-After` ([`OVERLOAD_RETRY_AFTER_SECS`]) and not passed on.
    pub fn with_limit(timers: Timers, max_transactions: usize) -> Self {
        Self {
            timers,
            max: max_transactions,
            next_id: 0,
            txs: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            accepted: HashMap::new(),
            queue: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Next message to send; drain until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event; drain until `None` after every input.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    /// Feeds one message received from `from` (over a stream transport when `reliable`). See
    /// [`Received`] for what comes back; `None` means the layer absorbed or dropped it.
    pub fn receive(&mut self, msg: SipMessage, from: SocketAddr, reliable: bool, now: Instant) -> Option<Received> {
        match msg {
            SipMessage::Request(req) => self.receive_request(req, from, reliable, now),
            SipMessage::Response(resp) => self.receive_response(resp, now),
        }
    }

    fn receive_request(
        &mut self,
        mut req: Request,
        from: SocketAddr,
        reliable: bool,
        now: Instant,
    ) -> Option<Received> {
        let stamped = message::stamp_received_top_via(&mut req, from);
        let key = match stamped {
            Some(via) => server_key_with(&req, via),
            None => server_key(&req),
        };
        let Some(key) = key else {
            self.stats.unmatchable += 1;
            return None;
        };
        match req.method {
            Method::Ack => return self.receive_ack(req, key, now),
            Method::Cancel => return self.receive_cancel(req, key, from, reliable, now),
            _ => {}
        }
        if let Some(&id) = self.servers.get(&key) {
            self.absorb_retransmission(id);
            return None;
        }
        if self.reject_if_over_limit(&req, from, reliable) {
            return None;
        }
        let is_invite = req.method == Method::Invite;
        let id = self.create_server(
            &key,
            &req,
            from,
            reliable,
            if is_invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
        );
        if is_invite {
            let trying = message::response_for(&req, 100, None);
            self.respond_id(id, trying, now);
        }
        Some(Received::Request { key, request: req })
    }

    fn receive_ack(&mut self, req: Request, key: ServerTxKey, now: Instant) -> Option<Received> {
        let invite_key = ServerTxKey {
            method: Method::Invite,
            ..key
        };
        if let Some(&id) = self.servers.get(&invite_key) {
            if let Some((Tx::Server(tx), gen)) = self.txs.get_mut(&id) {
                match tx.state {
                    ServerState::Completed => {
                        // §17.2.1: ACK for a non-2xx final; Timer I.
                        tx.state = ServerState::Confirmed;
                        *gen += 1;
                        let linger = if tx.reliable { Duration::ZERO } else { self.timers.t4 };
                        let gen = *gen;
                        self.queue.push(Reverse((now + linger, id, TimerKind::End, gen)));
                        return None;
                    }
                    ServerState::Accepted => {
                        tx.acked = true;
                        return Some(Received::Ack { request: req });
                    }
                    _ => {
                        self.stats.retransmissions_absorbed += 1;
                        return None;
                    }
                }
            }
        }
        // An ACK for a 2xx is its own transaction (§17.1.1.3): match it to the INVITE on Call-ID and CSeq.
        let msg = SipMessage::Request(req);
        if let (Some(call_id), Some((cseq, _))) = (message::call_id(&msg), message::cseq(&msg)) {
            if let Some(id) = self.accepted.get(&(call_id.to_owned(), cseq)) {
                if let Some((Tx::Server(tx), _)) = self.txs.get_mut(id) {
                    tx.acked = true;
                }
            }
        }
        let SipMessage::Request(req) = msg else { return None };
        Some(Received::Ack { request: req })
    }

    fn receive_cancel(
        &mut self,
        req: Request,
        key: ServerTxKey,
        from: SocketAddr,
        reliable: bool,
        now: Instant,
    ) -> Option<Received> {
        if let Some(&id) = self.servers.get(&key) {
            // A retransmitted CANCEL: re-send its response.
            self.absorb_retransmission(id);
            return None;
        }
        if self.reject_if_over_limit(&req, from, reliable) {
            return None;
        }
        // §9.2: the INVITE transaction is found with the §17.2.3 rules, method INVITE.
        let invite_key = ServerTxKey {
            method: Method::Invite,
            ..key.clone()
        };
        let invite = self.servers.get(&invite_key).and_then(|id| match self.txs.get(id) {
            Some((Tx::Server(tx), _)) => Some(tx),
            _ => None,
        });
        let (code, to_tag, pending) = match invite {
            Some(tx) => {
                let tag = tx.last.as_ref().and_then(|l| l.to_tag.clone());
                (200, tag, tx.state == ServerState::Proceeding)
            }
            None => (481, None, false),
        };
        let id = self.create_server(&key, &req, from, reliable, ServerState::Trying);
        let to_tag = to_tag.unwrap_or_else(message::new_tag);
        let resp = message::response_for(&req, code, Some(&to_tag));
        self.respond_id(id, resp, now);
        Some(Received::Cancel {
            key,
            request: req,
            invite: pending.then_some(invite_key),
        })
    }

    /// Counts a retransmitted request for server transaction `id` and re-sends
    /// the transaction's last response, if it has sent one; in Accepted the
    /// request is absorbed without a response (RFC 6026 §8.5).
    fn absorb_retransmission(&mut self, id: u64) {
        self.stats.retransmissions_absorbed += 1;
        if let Some((Tx::Server(tx), _)) = self.txs.get(&id) {
            if tx.state == ServerState::Accepted {
                return;
            }
            if let Some(last) = &tx.last {
                self.transmits.push_back(Transmit {
                    dest: last.dest,
                    reliable: tx.reliable,
                    bytes: last.bytes.clone(),
                });
            }
        }
    }

    /// When the table is full, answers `req` with a 503 and `Retry-After`
    /// instead of creating a transaction, and says so.
    fn reject_if_over_limit(&mut self, req: &Request, from: SocketAddr, reliable: bool) -> bool {
        if self.txs.len() < self.max {
            return false;
        }
        self.stats.rejected_over_limit += 1;
        let resp = message::with_header(
            message::response_for(req, 503, Some(&message::new_tag())),
            "Retry-After",
            &OVERLOAD_RETRY_AFTER_SECS.to_string(),
        );
        let dest = destination(&resp, from, reliable);
        let bytes = message::to_bytes(&SipMessage::Response(resp));
        self.transmits.push_back(Transmit { dest, reliable, bytes });
        true
    }

    fn create_server(
        &mut self,
        key: &ServerTxKey,
        req: &Request,
        source: SocketAddr,
        reliable: bool,
        state: ServerState,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let msg_headers = &req.headers;
        let call_id = msg_headers
            .iter()
            .find_map(|h| match h {
                Header::CallId(c) => Some(c.value().to_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let cseq = message::cseq_of(msg_headers).map(|(n, _)| n).unwrap_or_default();
        let tx = ServerTx {
            key: key.clone(),
            state,
            reliable,
            source,
            last: None,
            interval: self.timers.t1,
            acked: false,
            call_id,
            cseq,
        };
        self.txs.insert(id, (Tx::Server(tx), 0));
        self.servers.insert(key.clone(), id);
        id
    }

    fn receive_response(&mut self, resp: Response, now: Instant) -> Option<Received> {
        let msg = SipMessage::Response(resp);
        let key = match (message::top_via_branch(&msg), message::cseq(&msg)) {
            (Some(branch), Some((_, method))) => ClientTxKey { branch, method },
            _ => {
                self.stats.stray_responses += 1;
                return None;
            }
        };
        let SipMessage::Response(resp) = msg else { return None };
        let Some(&id) = self.clients.get(&key) else {
            self.stats.stray_responses += 1;
            return None;
        };
        let code = resp.status_code.code();
        let t1 = self.timers.t1;
        let Some((Tx::Client(tx), gen)) = self.txs.get_mut(&id) else {
            return None;
        };
        let invite = tx.key.method == Method::Invite;
        let pass = Some(Received::Response {
            key: key.clone(),
            response: resp.clone(),
        });
        match (tx.state, code) {
            (ClientState::Calling | ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                if tx.state != ClientState::Proceeding {
                    tx.state = ClientState::Proceeding;
                    if invite {
                        // §17.1.1.2: Timers A and B stop in Proceeding.
                        *gen += 1;
                    }
                }
                pass
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) if invite => {
                // RFC 6026 §8.4: Accepted, Timer M = 64·T1.
                tx.state = ClientState::Accepted;
                *gen += 1;
                let gen = *gen;
                self.queue.push(Reverse((now + 64 * t1, id, TimerKind::End, gen)));
                pass
            }
            (ClientState::Calling | ClientState::Proceeding, 300..) if invite => {
                // §17.1.1.3: ACK the failure ourselves; Timer D.
                let ack = message::to_bytes(&SipMessage::Request(ack_for_failure(&tx.request, &resp)));
                self.transmits.push_back(Transmit {
                    dest: tx.dest,
                    reliable: tx.reliable,
                    bytes: ack.clone(),
                });
                tx.ack = Some(ack);
                tx.state = ClientState::Completed;
                *gen += 1;
                let linger = if tx.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32).max(64 * t1)
                };
                let gen = *gen;
                self.queue.push(Reverse((now + linger, id, TimerKind::End, gen)));
                pass
            }
            (ClientState::Trying | ClientState::Proceeding, 200..) => {
                // §17.1.2.2: Completed, Timer K.
                tx.state = ClientState::Completed;
                *gen += 1;
                let linger = if tx.reliable { Duration::ZERO } else { self.timers.t4 };
                let gen = *gen;
                self.queue.push(Reverse((now + linger, id, TimerKind::End, gen)));
                pass
            }
            (ClientState::Accepted, 200..=299) => pass,
            (ClientState::Completed, 300..) if invite => {
                if let Some(ack) = &tx.ack {
                    self.transmits.push_back(Transmit {
                        dest: tx.dest,
                        reliable: tx.reliable,
                        bytes: ack.clone(),
                    });
                }
                self.stats.retransmissions_absorbed += 1;
                None
            }
            _ => {
                self.stats.retransmissions_absorbed += 1;
                None
            }
        }
    }

    /// Sends `response` on a server transaction (RFC 3261 §17.2.1, §17.2.2): to the request's source over
    /// a reliable transport, else to [`message::response_destination`]. Arms Timers G/H (3xx–6xx to
    /// INVITE), the 2xx retransmission and 64·T1 ACK wait (2xx to INVITE), or J (final to non-INVITE).
    /// Returns `false` (and sends nothing) when the transaction is gone or already has a final response
    /// (a further 2xx to an INVITE in Accepted state is still sent).
    pub fn respond(&mut self, key: &ServerTxKey, response: Response, now: Instant) -> bool {
        match self.servers.get(key) {
            Some(&id) => self.respond_id(id, response, now),
            None => false,
        }
    }

    fn respond_id(&mut self, id: u64, response: Response, now: Instant) -> bool {
        let timers = self.timers;
        let Some((Tx::Server(tx), gen)) = self.txs.get_mut(&id) else {
            return false;
        };
        let code = response.status_code.code();
        let invite = tx.key.method == Method::Invite;
        let open = matches!(tx.state, ServerState::Trying | ServerState::Proceeding);
        let resend_2xx = tx.state == ServerState::Accepted && (200..300).contains(&code);
        if !open && !resend_2xx {
            return false;
        }
        let bytes = message::response_bytes(&response);
        let dest = destination(&response, tx.source, tx.reliable);
        self.transmits.push_back(Transmit {
            dest,
            reliable: tx.reliable,
            bytes: bytes.clone(),
        });
        tx.last = Some(LastResponse {
            dest,
            bytes,
            to_tag: if invite { message::to_tag(&response) } else { None },
        });
        if resend_2xx {
            return true;
        }
        let reliable = tx.reliable;
        match code {
            100..=199 => {
                tx.state = ServerState::Proceeding;
            }
            200..=299 if invite => {
                tx.state = ServerState::Accepted;
                tx.interval = timers.t1;
                *gen += 1;
                let gen = *gen;
                self.accepted.insert((tx.call_id.clone(), tx.cseq), id);
                if !reliable {
                    self.queue
                        .push(Reverse((now + timers.t1, id, TimerKind::Retransmit, gen)));
                }
                // RFC 6026 Timer L, and §13.3.1.4's 64·T1 wait for the ACK.
                self.queue
                    .push(Reverse((now + 64 * timers.t1, id, TimerKind::End, gen)));
            }
            _ if invite => {
                // §17.2.1: Completed, Timer G (unreliable) and Timer H.
                tx.state = ServerState::Completed;
                tx.interval = timers.t1;
                *gen += 1;
                let gen = *gen;
                if !reliable {
                    self.queue
                        .push(Reverse((now + timers.t1, id, TimerKind::Retransmit, gen)));
                }
                self.queue
                    .push(Reverse((now + 64 * timers.t1, id, TimerKind::End, gen)));
            }
            _ => {
                // §17.2.2: Completed, Timer J.
                tx.state = ServerState::Completed;
                *gen += 1;
                let gen = *gen;
                let linger = if reliable { Duration::ZERO } else { 64 * timers.t1 };
                self.queue.push(Reverse((now + linger, id, TimerKind::End, gen)));
            }
        }
        true
    }

    /// Starts a client transaction (RFC 3261 §17.1) and sends `request` to `dest`. The request must carry
    /// a top Via with a fresh branch ([`message::new_branch`]), and a CSeq. Arms Timers A and B (INVITE)
    /// or E and F (others); A and E only over unreliable transports. An ACK is not a transaction: it is
    /// sent as by [`send_stateless`](Self::send_stateless) and the key returned means nothing.
    pub fn send_request(&mut self, request: Request, dest: SocketAddr, reliable: bool, now: Instant) -> ClientTxKey {
        let msg = SipMessage::Request(request);
        let key = ClientTxKey {
            branch: message::top_via_branch(&msg).unwrap_or_default(),
            method: match &msg {
                SipMessage::Request(r) => r.method,
                SipMessage::Response(_) => Method::Options,
            },
        };
        let bytes = message::to_bytes(&msg);
        self.transmits.push_back(Transmit {
            dest,
            reliable,
            bytes: bytes.clone(),
        });
        let SipMessage::Request(request) = msg else { return key };
        if request.method == Method::Ack {
            return key;
        }
        let id = self.next_id;
        self.next_id += 1;
        let invite = request.method == Method::Invite;
        let t1 = self.timers.t1;
        let tx = ClientTx {
            key: key.clone(),
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            reliable,
            dest,
            request,
            bytes,
            ack: None,
            interval: t1,
        };
        if let Some(old) = self.clients.insert(key.clone(), id) {
            // A reused branch replaces the older transaction.
            self.txs.remove(&old);
        }
        self.txs.insert(id, (Tx::Client(tx), 0));
        if !reliable {
            self.queue.push(Reverse((now + t1, id, TimerKind::Retransmit, 0)));
        }
        self.queue.push(Reverse((now + 64 * t1, id, TimerKind::End, 0)));
        key
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4), or a response the
    /// core retransmits itself.
    pub fn send_stateless(&mut self, dest: SocketAddr, reliable: bool, msg: &SipMessage) {
        self.transmits.push_back(Transmit {
            dest,
            reliable,
            bytes: message::to_bytes(msg),
        });
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, kind, gen))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            self.fire(id, kind, gen, now);
        }
    }

    fn fire(&mut self, id: u64, kind: TimerKind, gen: u32, now: Instant) {
        let timers = self.timers;
        let Some((tx, current)) = self.txs.get_mut(&id) else {
            return;
        };
        if *current != gen {
            return;
        }
        match (tx, kind) {
            (Tx::Server(tx), TimerKind::Retransmit) => {
                let due = match tx.state {
                    ServerState::Completed => true,
                    ServerState::Accepted => !tx.acked,
                    _ => false,
                };
                if !due {
                    return;
                }
                if let Some(last) = &tx.last {
                    self.transmits.push_back(Transmit {
                        dest: last.dest,
                        reliable: tx.reliable,
                        bytes: last.bytes.clone(),
                    });
                }
                // Timer G and §13.3.1.4: double, capped at T2.
                tx.interval = (tx.interval * 2).min(timers.t2);
                self.queue
                    .push(Reverse((now + tx.interval, id, TimerKind::Retransmit, gen)));
            }
            (Tx::Server(tx), TimerKind::End) => {
                if tx.state == ServerState::Accepted && !tx.acked {
                    let event = TxEvent::AckTimeout {
                        key: tx.key.clone(),
                        call_id: tx.call_id.clone(),
                    };
                    self.events.push_back(event);
                }
                self.remove(id);
            }
            (Tx::Client(tx), TimerKind::Retransmit) => {
                let due = matches!(
                    tx.state,
                    ClientState::Calling | ClientState::Trying | ClientState::Proceeding
                );
                if !due || (tx.state == ClientState::Proceeding && tx.key.method == Method::Invite) {
                    return;
                }
                self.transmits.push_back(Transmit {
                    dest: tx.dest,
                    reliable: tx.reliable,
                    bytes: tx.bytes.clone(),
                });
                // Timer A doubles without cap (§17.1.1.2); Timer E doubles up to T2, and is T2 in
                // Proceeding (§17.1.2.2).
                tx.interval = match tx.state {
                    ClientState::Calling => tx.interval * 2,
                    ClientState::Proceeding => timers.t2,
                    _ => (tx.interval * 2).min(timers.t2),
                };
                self.queue
                    .push(Reverse((now + tx.interval, id, TimerKind::Retransmit, gen)));
            }
            (Tx::Client(tx), TimerKind::End) => {
                if matches!(
                    tx.state,
                    ClientState::Calling | ClientState::Trying | ClientState::Proceeding
                ) {
                    // Timer B or F.
                    self.events.push_back(TxEvent::Timeout(tx.key.clone()));
                }
                self.remove(id);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Some((tx, _)) = self.txs.remove(&id) else { return };
        let key = match tx {
            Tx::Server(tx) => {
                if self.servers.get(&tx.key) == Some(&id) {
                    self.servers.remove(&tx.key);
                }
                if self.accepted.get(&(tx.call_id.clone(), tx.cseq)) == Some(&id) {
                    self.accepted.remove(&(tx.call_id, tx.cseq));
                }
                TxKey::Server(tx.key)
            }
            Tx::Client(tx) => {
                if self.clients.get(&tx.key) == Some(&id) {
                    self.clients.remove(&tx.key);
                }
                TxKey::Client(tx.key)
            }
        };
        self.events.push_back(TxEvent::Terminated(key));
    }
}

fn destination(resp: &Response, source: SocketAddr, reliable: bool) -> SocketAddr {
    if reliable {
        source
    } else {
        message::response_destination(resp, source)
    }
}

/// §17.2.3 key of a request; the RFC 2543 fallback when the branch lacks the magic cookie.
fn server_key(req: &Request) -> Option<ServerTxKey> {
    server_key_with(req, message::top_via(req)?)
}

/// [`server_key`] with the request's top Via already parsed.
fn server_key_with(req: &Request, via: message::ViaHeader) -> Option<ServerTxKey> {
    let (cseq, _) = message::cseq(req)?;
    let method = if req.method == Method::Ack {
        Method::Invite
    } else {
        req.method
    };
    let branch = match via.param("branch") {
        Some(b) if b.starts_with(message::BRANCH_COOKIE) => b.to_owned(),
        _ => format!(
            "2543|{}|{cseq}|{}|{via}",
            message::call_id(req).unwrap_or_default(),
            message::from_tag(req).unwrap_or_default()
        ),
    };
    Some(ServerTxKey {
        branch,
        sent_by: via.sent_by(),
        method,
    })
}

/// The ACK for a 300–699 response to `invite` (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From,
/// CSeq number and top Via as the INVITE, To from the response, the INVITE's Route headers.
pub fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut headers: Vec<Header> = Vec::with_capacity(8);
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(h.clone()),
            Header::CSeq(c) => {
                let n = c.value().split_whitespace().next().unwrap_or("1");
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{n} ACK"))));
            }
            _ => {}
        }
    }
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// A CANCEL for `request` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq number, top Via
/// (so the same branch) and Route headers; method CANCEL.
pub fn cancel_request(request: &Request) -> Request {
    let mut headers: Vec<Header> = Vec::with_capacity(8);
    if let Some(via) = request.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    for h in request.headers.iter() {
        match h {
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => headers.push(h.clone()),
            Header::CSeq(c) => {
                let n = c.value().split_whitespace().next().unwrap_or("1");
                headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{n} CANCEL"))));
            }
            _ => {}
        }
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new("0")));
    Request {
        method: Method::Cancel,
        uri: request.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PEER: &str = "192.0.2.10:5060";
    const MS: Duration = Duration::from_millis(1);

    fn peer() -> SocketAddr {
        PEER.parse().unwrap()
    }

    fn request(method: &str, branch: &str, cseq: &str) -> SipMessage {
        let text = format!(
            "{method} sip:1000@gw.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\nTo: <sip:1000@gw.example.com>\r\nFrom: <sip:alice@example.com>;tag=a1\r\nCall-ID: call-1@example.com\r\n\
CSeq: {cseq}\r\nContact: <sip:alice@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n"
        );
        message::parse(text.as_bytes()).unwrap()
    }

    fn response_to(req: &SipMessage, code: u16) -> SipMessage {
        let SipMessage::Request(r) = req else { panic!() };
        SipMessage::Response(message::response_for(r, code, Some("b2")))
    }

    fn drain(layer: &mut TransactionLayer) -> Vec<Transmit> {
        std::iter::from_fn(|| layer.poll_transmit()).collect()
    }

    fn events(layer: &mut TransactionLayer) -> Vec<TxEvent> {
        std::iter::from_fn(|| layer.poll_event()).collect()
    }

    fn status(t: &Transmit) -> u16 {
        match message::parse(&t.bytes).unwrap() {
            SipMessage::Response(r) => r.status_code.code(),
            SipMessage::Request(_) => 0,
        }
    }

    fn method(t: &Transmit) -> Option<Method> {
        match message::parse(&t.bytes).unwrap() {
            SipMessage::Request(r) => Some(r.method),
            SipMessage::Response(_) => None,
        }
    }

    /// Runs the timers from `start` to `end` in 1 ms steps and returns the offsets (ms from `t0`) at
    /// which something was transmitted.
    fn run(layer: &mut TransactionLayer, t0: Instant, start_ms: u64, end_ms: u64) -> Vec<u64> {
        let mut at = Vec::new();
        let mut ms = start_ms;
        while ms <= end_ms {
            let now = t0 + Duration::from_millis(ms);
            if layer.poll_timeout().is_some_and(|t| t <= now) {
                layer.handle_timeout(now);
                for _ in drain(layer) {
                    at.push(ms);
                }
            }
            ms = match layer.poll_timeout() {
                Some(t) if t > now => (t - t0).as_millis() as u64,
                _ => ms + 1,
            };
        }
        at
    }

    fn new_invite(layer: &mut TransactionLayer, t0: Instant) -> (ServerTxKey, SipMessage) {
        let invite = request("INVITE", "z9hG4bKinv1", "1 INVITE");
        let got = layer.receive(invite.clone(), peer(), false, t0).unwrap();
        let Received::Request { key, .. } = got else {
            panic!("{got:?}")
        };
        let sent = drain(layer);
        assert_eq!(sent.len(), 1);
        assert_eq!(status(&sent[0]), 100, "100 Trying at once");
        (key, invite)
    }

    #[test]
    fn invite_server_2xx_is_retransmitted_until_the_ack() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let (key, invite) = new_invite(&mut layer, t0);
        let SipMessage::Response(ok) = response_to(&invite, 200) else {
            panic!()
        };
        assert!(layer.respond(&key, ok, t0));
        let sent = drain(&mut layer);
        assert_eq!(status(&sent[0]), 200);
        assert_eq!(sent[0].dest, peer(), "rport + received send it back to the source");
        // T1, 2T1, 4T1, then capped at T2 = 4 s.
        assert_eq!(run(&mut layer, t0, 1, 11_600), [500, 1_500, 3_500, 7_500, 11_500]);
        // A retransmitted INVITE in Accepted is absorbed without a response (RFC 6026).
        assert!(layer.receive(invite, peer(), false, t0 + 11_600 * MS).is_none());
        assert!(drain(&mut layer).is_empty());
        // The ACK is a new transaction (new branch); it matches on Call-ID and CSeq.
        let ack = request("ACK", "z9hG4bKack1", "1 ACK");
        let got = layer.receive(ack, peer(), false, t0 + 12 * 1000 * MS);
        assert!(matches!(got, Some(Received::Ack { .. })));
        assert!(
            run(&mut layer, t0, 12_000, 40_000).is_empty(),
            "no more retransmissions"
        );
        let ev = events(&mut layer);
        assert_eq!(
            ev,
            [TxEvent::Terminated(TxKey::Server(key))],
            "Timer L ends it; no AckTimeout"
        );
        assert!(layer.is_empty());
    }

    #[test]
    fn invite_server_reports_ack_timeout_after_64_t1() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let (key, invite) = new_invite(&mut layer, t0);
        let SipMessage::Response(ok) = response_to(&invite, 200) else {
            panic!()
        };
        layer.respond(&key, ok, t0);
        drain(&mut layer);
        run(&mut layer, t0, 1, 31_999);
        assert!(events(&mut layer).is_empty());
        layer.handle_timeout(t0 + 32_000 * MS);
        let ev = events(&mut layer);
        assert_eq!(
            ev,
            [
                TxEvent::AckTimeout {
                    key: key.clone(),
                    call_id: "call-1@example.com".into()
                },
                TxEvent::Terminated(TxKey::Server(key))
            ]
        );
    }

    #[test]
    fn invite_server_failure_timer_g_until_ack_then_timer_i() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let (key, invite) = new_invite(&mut layer, t0);
        let SipMessage::Response(busy) = response_to(&invite, 486) else {
            panic!()
        };
        assert!(layer.respond(&key, busy, t0));
        assert_eq!(status(&drain(&mut layer)[0]), 486);
        // Timer G: T1 doubling up to T2.
        assert_eq!(run(&mut layer, t0, 1, 12_000), [500, 1_500, 3_500, 7_500, 11_500]);
        // A retransmitted INVITE gets the 486 again.
        assert!(layer.receive(invite, peer(), false, t0 + 12_000 * MS).is_none());
        assert_eq!(status(&drain(&mut layer)[0]), 486);
        // The ACK (same branch) is absorbed: Confirmed.
        let ack = request("ACK", "z9hG4bKinv1", "1 ACK");
        assert!(layer.receive(ack.clone(), peer(), false, t0 + 12_100 * MS).is_none());
        assert!(!layer.respond(&key, message::response_for(&invite_req(), 200, None), t0 + 12_100 * MS));
        // Timer I = T4: still absorbing ACKs until then, no more 486s.
        assert!(layer.receive(ack, peer(), false, t0 + 13_000 * MS).is_none());
        assert!(run(&mut layer, t0, 12_101, 17_099).is_empty());
        assert_eq!(layer.len(), 1);
        layer.handle_timeout(t0 + 17_100 * MS);
        assert_eq!(events(&mut layer), [TxEvent::Terminated(TxKey::Server(key))]);
    }

    fn invite_req() -> Request {
        let SipMessage::Request(r) = request("INVITE", "z9hG4bKinv1", "1 INVITE") else {
            panic!()
        };
        r
    }

    #[test]
    fn invite_server_timer_h_without_ack() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let (key, _) = new_invite(&mut layer, t0);
        layer.respond(&key, message::response_for(&invite_req(), 404, Some("x")), t0);
        run(&mut layer, t0, 1, 31_999);
        assert_eq!(layer.len(), 1);
        layer.handle_timeout(t0 + 32_000 * MS);
        assert_eq!(events(&mut layer), [TxEvent::Terminated(TxKey::Server(key))]);
        assert!(layer.is_empty());
    }

    #[test]
    fn non_invite_server_absorbs_and_lingers_timer_j() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let options = request("OPTIONS", "z9hG4bKopt1", "5 OPTIONS");
        let Some(Received::Request { key, request }) = layer.receive(options.clone(), peer(), false, t0) else {
            panic!()
        };
        assert!(drain(&mut layer).is_empty(), "no 100 for non-INVITE");
        // Retransmission before any response: absorbed silently.
        assert!(layer.receive(options.clone(), peer(), false, t0 + 400 * MS).is_none());
        assert!(drain(&mut layer).is_empty());
        layer.respond(&key, message::response_for(&request, 200, Some("t")), t0 + 500 * MS);
        assert_eq!(status(&drain(&mut layer)[0]), 200);
        // Retransmission after the final: the final again.
        assert!(layer.receive(options, peer(), false, t0 + 600 * MS).is_none());
        assert_eq!(status(&drain(&mut layer)[0]), 200);
        assert_eq!(layer.stats().retransmissions_absorbed, 2);
        // No retransmissions of its own; Timer J = 64·T1 after the final.
        assert!(run(&mut layer, t0, 501, 32_499).is_empty());
        assert_eq!(layer.len(), 1);
        layer.handle_timeout(t0 + 32_500 * MS);
        assert!(layer.is_empty());
    }

    #[test]
    fn invite_client_timer_a_doubles_and_timer_b_times_out() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let SipMessage::Request(invite) = request("INVITE", "z9hG4bKout1", "1 INVITE") else {
            panic!()
        };
        let key = layer.send_request(invite, peer(), false, t0);
        assert_eq!(
            key,
            ClientTxKey {
                branch: "z9hG4bKout1".into(),
                method: Method::Invite
            }
        );
        assert_eq!(drain(&mut layer).len(), 1);
        // Timer A: 0.5, 1, 2, 4, 8, 16 s (no cap) until Timer B at 32 s.
        assert_eq!(
            run(&mut layer, t0, 1, 32_000),
            [500, 1_500, 3_500, 7_500, 15_500, 31_500]
        );
        assert_eq!(
            events(&mut layer),
            [TxEvent::Timeout(key.clone()), TxEvent::Terminated(TxKey::Client(key))]
        );
    }

    #[test]
    fn invite_client_acks_a_failure_itself_and_absorbs_retransmissions() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let out = request("INVITE", "z9hG4bKout2", "7 INVITE");
        let SipMessage::Request(invite) = out.clone() else {
            panic!()
        };
        let key = layer.send_request(invite, peer(), false, t0);
        drain(&mut layer);
        let ringing = response_to(&out, 180);
        assert!(matches!(
            layer.receive(ringing, peer(), false, t0 + 100 * MS),
            Some(Received::Response { .. })
        ));
        assert!(
            run(&mut layer, t0, 101, 10_000).is_empty(),
            "Timer A stops in Proceeding"
        );
        let busy = response_to(&out, 486);
        let got = layer.receive(busy.clone(), peer(), false, t0 + 10_000 * MS);
        assert!(
            matches!(got, Some(Received::Response { key: k, response }) if k == key && response.status_code.code() == 486)
        );
        let sent = drain(&mut layer);
        assert_eq!(sent.len(), 1);
        let SipMessage::Request(ack) = message::parse(&sent[0].bytes).unwrap() else {
            panic!()
        };
        let ack = SipMessage::Request(ack);
        assert_eq!(message::cseq(&ack), Some((7, Method::Ack)));
        assert_eq!(message::top_via_branch(&ack).as_deref(), Some("z9hG4bKout2"));
        assert_eq!(message::to_tag(&ack).as_deref(), Some("b2"));
        // The retransmitted 486 is absorbed and re-ACKed.
        assert!(layer.receive(busy, peer(), false, t0 + 10_500 * MS).is_none());
        assert_eq!(method(&drain(&mut layer)[0]), Some(Method::Ack));
        // Timer D (32 s on UDP).
        layer.handle_timeout(t0 + 42_000 * MS);
        assert_eq!(events(&mut layer), [TxEvent::Terminated(TxKey::Client(key))]);
    }

    #[test]
    fn invite_client_passes_every_2xx_in_accepted() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let out = request("INVITE", "z9hG4bKout3", "1 INVITE");
        let SipMessage::Request(invite) = out.clone() else {
            panic!()
        };
        let key = layer.send_request(invite, peer(), false, t0);
        drain(&mut layer);
        let ok = response_to(&out, 200);
        assert!(layer.receive(ok.clone(), peer(), false, t0 + 100 * MS).is_some());
        assert!(drain(&mut layer).is_empty(), "the ACK for a 2xx is the TU's");
        assert!(
            layer.receive(ok, peer(), false, t0 + 600 * MS).is_some(),
            "RFC 6026: retransmitted 2xx to the TU"
        );
        assert!(run(&mut layer, t0, 101, 32_099).is_empty(), "no Timer A, no Timer B");
        layer.handle_timeout(t0 + 32_100 * MS);
        assert_eq!(events(&mut layer), [TxEvent::Terminated(TxKey::Client(key))], "Timer M");
    }

    #[test]
    fn non_invite_client_timers_e_f_and_k() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let SipMessage::Request(bye) = request("BYE", "z9hG4bKbye1", "2 BYE") else {
            panic!()
        };
        let key = layer.send_request(bye, peer(), false, t0);
        drain(&mut layer);
        // Timer E: T1 doubling, capped at T2; Timer F at 64·T1.
        assert_eq!(
            run(&mut layer, t0, 1, 32_000),
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(
            events(&mut layer),
            [TxEvent::Timeout(key.clone()), TxEvent::Terminated(TxKey::Client(key))]
        );

        let out = request("BYE", "z9hG4bKbye2", "3 BYE");
        let SipMessage::Request(bye) = out.clone() else {
            panic!()
        };
        let key = layer.send_request(bye, peer(), false, t0);
        drain(&mut layer);
        assert!(layer
            .receive(response_to(&out, 100), peer(), false, t0 + 100 * MS)
            .is_some());
        // In Proceeding, Timer E is T2 (the first retransmission still at T1).
        assert_eq!(run(&mut layer, t0, 101, 9_000), [500, 4_500, 8_500]);
        let ok = response_to(&out, 200);
        assert!(layer.receive(ok.clone(), peer(), false, t0 + 9_000 * MS).is_some());
        assert!(
            layer.receive(ok, peer(), false, t0 + 9_100 * MS).is_none(),
            "retransmitted final absorbed"
        );
        assert!(run(&mut layer, t0, 9_001, 13_999).is_empty());
        layer.handle_timeout(t0 + 14_000 * MS);
        assert_eq!(
            events(&mut layer),
            [TxEvent::Terminated(TxKey::Client(key))],
            "Timer K = T4"
        );
    }

    #[test]
    fn reliable_transports_skip_retransmissions_and_lingering() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let SipMessage::Request(invite) = request("INVITE", "z9hG4bKrel1", "1 INVITE") else {
            panic!()
        };
        let key = layer.send_request(invite, peer(), true, t0);
        drain(&mut layer);
        assert!(run(&mut layer, t0, 1, 31_999).is_empty(), "no Timer A over TCP");
        layer.handle_timeout(t0 + 32_000 * MS);
        assert_eq!(events(&mut layer)[0], TxEvent::Timeout(key), "Timer B still runs");

        let invite = request("INVITE", "z9hG4bKrel2", "1 INVITE");
        let from: SocketAddr = "198.51.100.1:33000".parse().unwrap();
        let Some(Received::Request { key, .. }) = layer.receive(invite.clone(), from, true, t0) else {
            panic!()
        };
        let trying = drain(&mut layer);
        assert_eq!(trying[0].dest, from, "over TCP, back on the connection");
        assert!(trying[0].reliable);
        let SipMessage::Response(busy) = response_to(&invite, 486) else {
            panic!()
        };
        layer.respond(&key, busy, t0);
        drain(&mut layer);
        assert!(run(&mut layer, t0, 1, 2_000).is_empty(), "no Timer G over TCP");
        layer.receive(request("ACK", "z9hG4bKrel2", "1 ACK"), from, true, t0 + 2_000 * MS);
        layer.handle_timeout(t0 + 2_000 * MS);
        assert_eq!(
            events(&mut layer),
            [TxEvent::Terminated(TxKey::Server(key))],
            "Timer I = 0"
        );
    }

    #[test]
    fn cancel_is_matched_to_its_invite_and_answered() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let (invite_key, _) = new_invite(&mut layer, t0);
        let cancel = request("CANCEL", "z9hG4bKinv1", "1 CANCEL");
        let got = layer.receive(cancel.clone(), peer(), false, t0 + 100 * MS);
        let Some(Received::Cancel { invite, key, .. }) = got else {
            panic!("{got:?}")
        };
        assert_eq!(invite, Some(invite_key.clone()));
        assert_eq!(key.method, Method::Cancel);
        let sent = drain(&mut layer);
        assert_eq!(status(&sent[0]), 200);
        let resp = message::parse(&sent[0].bytes).unwrap();
        assert_eq!(message::cseq(&resp), Some((1, Method::Cancel)));
        // A retransmitted CANCEL gets the same 200.
        assert!(layer.receive(cancel, peer(), false, t0 + 200 * MS).is_none());
        assert_eq!(status(&drain(&mut layer)[0]), 200);
        // The TU ends the INVITE with 487.
        assert!(layer.respond(&invite_key, message::response_for(&invite_req(), 487, Some("t")), t0));
        assert_eq!(status(&drain(&mut layer)[0]), 487);
        // A CANCEL for an INVITE that already has its final: 200, but nothing to cancel.
        let got = layer.receive(request("CANCEL", "z9hG4bKinv1", "1 CANCEL"), peer(), false, t0);
        assert!(got.is_none(), "a retransmission of the first CANCEL");
        assert_eq!(status(&drain(&mut layer)[0]), 200);
        // A CANCEL matching nothing: 481.
        let got = layer.receive(request("CANCEL", "z9hG4bKnone", "1 CANCEL"), peer(), false, t0);
        assert!(matches!(got, Some(Received::Cancel { invite: None, .. })));
        assert_eq!(status(&drain(&mut layer)[0]), 481);
    }

    #[test]
    fn stray_responses_are_dropped_and_counted() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let stray = response_to(&request("INVITE", "z9hG4bKunknown", "1 INVITE"), 200);
        assert!(layer.receive(stray, peer(), false, t0).is_none());
        assert!(drain(&mut layer).is_empty());
        assert_eq!(layer.stats().stray_responses, 1);
        // Same branch but another method is another transaction (§17.1.3).
        let SipMessage::Request(bye) = request("BYE", "z9hG4bKb", "2 BYE") else {
            panic!()
        };
        layer.send_request(bye, peer(), false, t0);
        let wrong = response_to(&request("INFO", "z9hG4bKb", "2 INFO"), 200);
        assert!(layer.receive(wrong, peer(), false, t0).is_none());
        assert_eq!(layer.stats().stray_responses, 2);
    }

    #[test]
    fn over_the_limit_new_requests_get_503_with_retry_after() {
        let mut layer = TransactionLayer::with_limit(Timers::default(), 1);
        let t0 = Instant::now();
        assert!(layer
            .receive(request("OPTIONS", "z9hG4bK1", "1 OPTIONS"), peer(), false, t0)
            .is_some());
        let got = layer.receive(request("OPTIONS", "z9hG4bK2", "2 OPTIONS"), peer(), false, t0);
        assert!(got.is_none());
        let sent = drain(&mut layer);
        assert_eq!(sent.len(), 1);
        assert_eq!(status(&sent[0]), 503);
        let resp = message::parse(&sent[0].bytes).unwrap();
        assert_eq!(message::header_value(&resp, "Retry-After").as_deref(), Some("5"));
        assert_eq!(layer.len(), 1);
        assert_eq!(layer.stats().rejected_over_limit, 1);
        // A retransmission of the live one is still absorbed, not rejected.
        assert!(layer
            .receive(request("OPTIONS", "z9hG4bK1", "1 OPTIONS"), peer(), false, t0)
            .is_none());
        assert!(drain(&mut layer).is_empty());
    }

    #[test]
    fn cancel_request_copies_the_invite() {
        let SipMessage::Request(invite) = request("INVITE", "z9hG4bKc", "4 INVITE") else {
            panic!()
        };
        let cancel = SipMessage::Request(cancel_request(&invite));
        let reparsed = message::parse(&message::to_bytes(&cancel)).unwrap();
        assert_eq!(message::cseq(&reparsed), Some((4, Method::Cancel)));
        assert_eq!(message::top_via_branch(&reparsed).as_deref(), Some("z9hG4bKc"));
        assert_eq!(message::call_id(&reparsed), Some("call-1@example.com"));
        assert_eq!(message::to_tag(&reparsed), None);
    }

    #[test]
    fn rfc2543_requests_without_cookie_still_match_retransmissions() {
        let mut layer = TransactionLayer::new(Timers::default());
        let t0 = Instant::now();
        let old = request("OPTIONS", "oldstyle1", "9 OPTIONS");
        assert!(layer.receive(old.clone(), peer(), false, t0).is_some());
        assert!(layer.receive(old, peer(), false, t0).is_none());
        assert_eq!(layer.stats().retransmissions_absorbed, 1);
    }
}
