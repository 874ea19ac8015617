//! Dialog state and in-dialog requests (RFC 3261 §12), and session timers (RFC 4028).
//!
//! A [`Dialog`] is created from the INVITE and its dialog-creating response, on the UAS side with
//! [`Dialog::uas`] (§12.1.1) and on the UAC side with [`Dialog::uac`] (§12.1.2). Incoming requests are
//! matched to it with [`DialogId::of_request`]; their CSeq is checked with
//! [`Dialog::check_remote_cseq`] (§12.2.2); requests we send within it are built by [`Dialog::request`]
//! and [`Dialog::ack`] (§12.2.1.1, §13.2.2.4), routed to [`Dialog::next_hop`].
//!
//! Local and remote URIs are kept as [`NameAddr`]s (what From and To carry, without the tag), the route
//! set as the Record-Route values in the order they are used for Route headers.

use std::time::Duration;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage, Uri};

use crate::message::{self, NameAddr};

/// Why a dialog could not be created from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The message lacks a header a dialog needs.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The Contact is not a SIP URI we can send to (RFC 3261 §12.1.1: it MUST be a SIP(S) URI).
    #[error("Contact is not a usable SIP URI")]
    BadContact,
    /// The response has no To tag (RFC 3261 §12.1.2 requires one to create a dialog).
    #[error("response has no To tag")]
    NoRemoteTag,
}

/// A dialog id (RFC 3261 §12): Call-ID, local tag and remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer without tags).
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog a request belongs to. For a request we `received`, our tag is in To and the
    /// peer's in From (§12.2.2); for one we send, the other way round. `None` when the Call-ID is absent
    /// or, for a received request, To has no tag (it is not in a dialog).
    pub fn of_request(req: &Request, received: bool) -> Option<Self> {
        let msg = SipMessage::Request(req.clone());
        let call_id = message::call_id(&msg)?.to_owned();
        let from = message::from_tag(&msg).unwrap_or_default();
        let to = message::to_tag(&msg);
        if received {
            Some(Self {
                call_id,
                local_tag: to?,
                remote_tag: from,
            })
        } else {
            Some(Self {
                call_id,
                local_tag: from,
                remote_tag: to.unwrap_or_default(),
            })
        }
    }

    /// The id of the dialog a response to one of our requests belongs to (our tag in From).
    pub fn of_response(resp: &Response) -> Option<Self> {
        let msg = SipMessage::Response(resp.clone());
        Some(Self {
            call_id: message::call_id(&msg)?.to_owned(),
            local_tag: message::from_tag(&msg).unwrap_or_default(),
            remote_tag: message::to_tag(&msg).unwrap_or_default(),
        })
    }
}

/// Dialog state (RFC 3261 §12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our URI (From of our requests), without tag.
    pub local_uri: NameAddr,
    /// The peer's URI (To of our requests), without tag.
    pub remote_uri: NameAddr,
    /// Where requests go (the peer's Contact), updated by target refreshes.
    pub remote_target: Uri,
    /// Our Contact, put on the requests we send.
    pub local_contact: Option<Uri>,
    /// Route set: the Record-Route values in the order they become Route headers (§12.1.1, §12.1.2).
    pub route_set: Vec<NameAddr>,
    /// Last CSeq number we used.
    pub local_cseq: u32,
    /// Last CSeq number the peer used; `None` until it sends a request (§12.1.2).
    pub remote_cseq: Option<u32>,
    /// The dialog was set up over SIPS (§12.1.1: Request-URI `sips:` and a secure transport).
    pub secure: bool,
}

impl Dialog {
    /// The UAS side (RFC 3261 §12.1.1), when we answer `invite` with a 101–299 response carrying
    /// `local_tag`. The route set is the INVITE's Record-Route in order, the remote target its Contact,
    /// the remote CSeq its CSeq.
    pub fn uas(invite: &Request, local_tag: &str, local_contact: Uri) -> Result<Self, DialogError> {
        let msg = SipMessage::Request(invite.clone());
        let contact = message::contacts(&msg)
            .into_iter()
            .next()
            .ok_or(DialogError::Missing("Contact"))?;
        let remote_target = contact.rsip_uri().ok_or(DialogError::BadContact)?;
        let route_set = record_routes(&msg);
        let (remote_cseq, _) = message::cseq(&msg).ok_or(DialogError::Missing("CSeq"))?;
        Ok(Self {
            call_id: message::call_id(&msg)
                .ok_or(DialogError::Missing("Call-ID"))?
                .to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: message::from_tag(&msg).unwrap_or_default(),
            local_uri: untagged(message::to_header(&msg).ok_or(DialogError::Missing("To"))?),
            remote_uri: untagged(message::from_header(&msg).ok_or(DialogError::Missing("From"))?),
            remote_target,
            local_contact: Some(local_contact),
            route_set,
            local_cseq: initial_cseq(),
            remote_cseq: Some(remote_cseq),
            secure: invite.uri.is_sips().unwrap_or(false),
        })
    }

    /// The UAC side (RFC 3261 §12.1.2), from the INVITE we sent and a 101–299 response with a To tag. The
    /// route set is the response's Record-Route in reverse order, the remote target its Contact.
    pub fn uac(invite: &Request, response: &Response) -> Result<Self, DialogError> {
        let req = SipMessage::Request(invite.clone());
        let resp = SipMessage::Response(response.clone());
        let contact = message::contacts(&resp)
            .into_iter()
            .next()
            .ok_or(DialogError::Missing("Contact"))?;
        let remote_target = contact.rsip_uri().ok_or(DialogError::BadContact)?;
        let mut route_set = record_routes(&resp);
        route_set.reverse();
        let (local_cseq, _) = message::cseq(&req).ok_or(DialogError::Missing("CSeq"))?;
        Ok(Self {
            call_id: message::call_id(&req)
                .ok_or(DialogError::Missing("Call-ID"))?
                .to_owned(),
            local_tag: message::from_tag(&req).unwrap_or_default(),
            remote_tag: message::to_tag(&resp).ok_or(DialogError::NoRemoteTag)?,
            local_uri: untagged(message::from_header(&req).ok_or(DialogError::Missing("From"))?),
            remote_uri: untagged(message::to_header(&resp).ok_or(DialogError::Missing("To"))?),
            remote_target,
            local_contact: message::contact_uris(&req).into_iter().next(),
            route_set,
            local_cseq,
            remote_cseq: None,
            secure: invite.uri.is_sips().unwrap_or(false),
        })
    }

    /// This dialog's id.
    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// RFC 3261 §12.2.2: a request whose CSeq is lower than the last one from the peer is out of order
    /// (answer 500) and gives `false`; otherwise the remote CSeq is updated. ACK and CANCEL carry the
    /// INVITE's number and are not checked. A request without a CSeq gives `false`.
    pub fn check_remote_cseq(&mut self, req: &Request) -> bool {
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return true;
        }
        let Some((n, _)) = message::cseq(&SipMessage::Request(req.clone())) else {
            return false;
        };
        if self.remote_cseq.is_some_and(|last| n < last) {
            return false;
        }
        self.remote_cseq = Some(n);
        true
    }

    /// A target refresh (re-INVITE, UPDATE, or their 2xx; RFC 3261 §12.2.1.2, §12.2.2): takes the remote
    /// target from the message's Contact when it has a usable one. Returns whether it changed.
    pub fn refresh_target(&mut self, msg: &SipMessage) -> bool {
        match message::contact_uris(msg).into_iter().next() {
            Some(uri) if uri != self.remote_target => {
                self.remote_target = uri;
                true
            }
            _ => false,
        }
    }

    /// Builds an in-dialog request (BYE, re-INVITE, INFO, UPDATE, …; RFC 3261 §12.2.1.1) with the next
    /// local CSeq, a fresh branch in `Via: SIP/2.0/<transport> <via_sent_by>;rport`, the route set as
    /// Route headers (loose or strict routing), `Max-Forwards: 70`, our Contact, and the optional body
    /// `(content type, bytes)`.
    pub fn request(
        &mut self,
        method: Method,
        via_sent_by: &str,
        transport: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let cseq = self.local_cseq;
        self.build(method, cseq, via_sent_by, transport, body)
    }

    /// The ACK for a 2xx to our INVITE with CSeq number `invite_cseq` (RFC 3261 §13.2.2.4): same routing
    /// as any in-dialog request, CSeq `<invite_cseq> ACK`, a fresh branch. Does not change the local CSeq.
    pub fn ack(&self, invite_cseq: u32, via_sent_by: &str, transport: &str, body: Option<(&str, Vec<u8>)>) -> Request {
        self.build(Method::Ack, invite_cseq, via_sent_by, transport, body)
    }

    /// Where the next request goes (RFC 3261 §12.2.1.1, §8.1.2): the first route when there is a route
    /// set, else the remote target. A route `rsip` cannot represent falls back to the remote target.
    pub fn next_hop(&self) -> Uri {
        self.route_set
            .first()
            .and_then(NameAddr::rsip_uri)
            .unwrap_or_else(|| self.remote_target.clone())
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via_sent_by: &str,
        transport: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        use rsip::headers as h;
        let mut headers: Vec<Header> = Vec::with_capacity(12);
        headers.push(Header::Via(h::Via::new(format!(
            "SIP/2.0/{} {via_sent_by};branch={};rport",
            transport.to_ascii_uppercase(),
            message::new_branch()
        ))));
        headers.push(Header::MaxForwards(h::MaxForwards::new("70")));
        // §12.2.1.1: loose routing when the first route has `lr`, else strict routing.
        let strict = self
            .route_set
            .first()
            .and_then(NameAddr::rsip_uri)
            .filter(|u| !u.params.iter().any(|p| matches!(p, rsip::Param::Lr)));
        let uri = match &strict {
            Some(first) => {
                let mut uri = first.clone();
                uri.params.clear();
                for r in self.route_set.iter().skip(1) {
                    headers.push(Header::Route(h::Route::new(r.to_string())));
                }
                let target = format!("<{}>", self.remote_target);
                headers.push(Header::Route(h::Route::new(target)));
                uri
            }
            None => {
                for r in &self.route_set {
                    headers.push(Header::Route(h::Route::new(r.to_string())));
                }
                self.remote_target.clone()
            }
        };
        let mut from = self.local_uri.clone();
        from.params.push(("tag".into(), Some(self.local_tag.clone())));
        let mut to = self.remote_uri.clone();
        if !self.remote_tag.is_empty() {
            to.params.push(("tag".into(), Some(self.remote_tag.clone())));
        }
        headers.push(Header::From(h::From::new(from.to_string())));
        headers.push(Header::To(h::To::new(to.to_string())));
        headers.push(Header::CallId(h::CallId::new(self.call_id.clone())));
        headers.push(Header::CSeq(h::CSeq::new(format!("{cseq} {method}"))));
        if let Some(contact) = &self.local_contact {
            headers.push(Header::Contact(h::Contact::new(format!("<{contact}>"))));
        }
        headers.push(Header::ContentLength(h::ContentLength::new("0")));
        let req = Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        match body {
            Some((content_type, bytes)) => message::with_body(req, content_type, bytes),
            None => req,
        }
    }
}

fn untagged(mut na: NameAddr) -> NameAddr {
    na.params.retain(|(n, _)| !n.eq_ignore_ascii_case("tag"));
    na
}

fn record_routes(msg: &SipMessage) -> Vec<NameAddr> {
    message::header_values(msg, "Record-Route")
        .iter()
        .filter_map(|v| NameAddr::parse(v).ok())
        .collect()
}

/// A first local CSeq: random and small, well below 2^31 (RFC 3261 §8.1.1.5).
fn initial_cseq() -> u32 {
    u32::from(rand::random::<u16>()) + 1
}

/// Who refreshes the session (RFC 4028 §7.4 `refresher` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller.
    Uac,
    /// The callee.
    Uas,
}

/// The smallest Session-Expires anyone may use (RFC 4028 §4: Min-SE is at least 90 seconds).
pub const MIN_SE_FLOOR: u32 = 90;

/// A negotiated session timer (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval in seconds.
    pub interval: u32,
    /// Who sends the refreshes.
    pub refresher: Refresher,
    /// The UAC listed `timer` in Supported (then the 2xx carries `Require: timer`).
    pub uac_supports: bool,
}

impl SessionTimer {
    /// UAS side of RFC 4028 §9 for an INVITE or UPDATE. `Ok(None)`: the request asks for no session
    /// timer (we do not impose one). `Err(min_se)`: its Session-Expires is below `local_min_se` (or the
    /// 90 s floor): answer `422 Session Interval Too Small` with `Min-SE: <min_se>`. Otherwise the timer,
    /// with the requested refresher, or the UAC when it supports timers and did not choose, else us.
    pub fn negotiate(request: &Request, local_min_se: u32) -> Result<Option<SessionTimer>, u32> {
        let msg = SipMessage::Request(request.clone());
        let Some(se) = message::header_value(&msg, "Session-Expires") else {
            return Ok(None);
        };
        let (delta, params) = se.split_once(';').unwrap_or((se.as_str(), ""));
        let Ok(interval) = delta.trim().parse::<u32>() else {
            return Ok(None);
        };
        let min_se = local_min_se.max(MIN_SE_FLOOR);
        if interval < min_se {
            return Err(min_se);
        }
        let uac_supports = message::header_values(&msg, "Supported")
            .iter()
            .chain(message::header_values(&msg, "Require").iter())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"));
        let asked = params.split(';').find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim()
                .eq_ignore_ascii_case("refresher")
                .then(|| v.trim().to_ascii_lowercase())
        });
        let refresher = match asked.as_deref() {
            Some("uas") => Refresher::Uas,
            Some("uac") if uac_supports => Refresher::Uac,
            None if uac_supports => Refresher::Uac,
            _ => Refresher::Uas,
        };
        Ok(Some(SessionTimer {
            interval,
            refresher,
            uac_supports,
        }))
    }

    /// Headers for the 2xx (RFC 4028 §9): `Session-Expires: <interval>;refresher=uac|uas`, and
    /// `Require: timer` when the UAC supports it.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let who = match self.refresher {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        };
        let mut out = vec![("Session-Expires", format!("{};refresher={who}", self.interval))];
        if self.uac_supports {
            out.push(("Require", "timer".to_owned()));
        }
        out
    }

    /// When the refresher should refresh: half the interval (RFC 4028 §10).
    pub fn refresh_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval / 2))
    }

    /// When the other side ends the session without a refresh: the interval less min(32 s, interval/3)
    /// (RFC 4028 §10), after which a BYE is sent.
    pub fn expire_after(&self) -> Duration {
        let i = u64::from(self.interval);
        Duration::from_secs(i - (i / 3).min(32))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:1000@gw.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKd1\r\n\
Max-Forwards: 70\r\nTo: \"Room\" <sip:1000@gw.example.com>\r\nFrom: Alice <sip:alice@example.com>;tag=a1\r\n\
Call-ID: dlg-1@example.com\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!(),
        }
    }

    fn header(req: &Request, name: &str) -> Vec<String> {
        message::header_values(&SipMessage::Request(req.clone()), name)
    }

    fn local_contact() -> Uri {
        Uri::try_from("sip:gw@203.0.113.5:5060").unwrap()
    }

    #[test]
    fn uas_dialog_from_invite() {
        let inv = invite("");
        let mut d = Dialog::uas(&inv, "b1", local_contact()).unwrap();
        assert_eq!(
            d.id(),
            DialogId {
                call_id: "dlg-1@example.com".into(),
                local_tag: "b1".into(),
                remote_tag: "a1".into()
            }
        );
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.10:5060;transport=UDP");
        assert_eq!(d.remote_cseq, Some(10));
        assert_eq!(
            d.route_set.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>(),
            ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
        );
        assert!(!d.secure);
        // Loose routing: the first route is the next hop, the Request-URI is the remote target.
        assert_eq!(d.next_hop().host().to_string(), "p1.example.com");
        let before = d.local_cseq;
        let bye = d.request(Method::Bye, "203.0.113.5:5060", "udp", None);
        assert_eq!(d.local_cseq, before + 1);
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.10:5060;transport=UDP");
        assert_eq!(
            header(&bye, "Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        let msg = SipMessage::Request(bye.clone());
        assert_eq!(message::cseq(&msg), Some((before + 1, Method::Bye)));
        assert_eq!(message::from_tag(&msg).as_deref(), Some("b1"));
        assert_eq!(message::to_tag(&msg).as_deref(), Some("a1"));
        assert_eq!(message::from_uri(&msg).unwrap().user.as_deref(), Some("1000"));
        assert_eq!(message::to_header(&msg).unwrap().display.as_deref(), Some("Alice"));
        assert_eq!(message::header_value(&msg, "Max-Forwards").as_deref(), Some("70"));
        let via = message::top_via(&msg).unwrap();
        assert_eq!(
            (via.transport.as_str(), via.sent_by()),
            ("UDP", "203.0.113.5:5060".to_owned())
        );
        assert!(via.param("branch").unwrap().starts_with("z9hG4bK"));
        // It survives the wire and is matched back to the dialog by the peer's view.
        let wire = message::parse(&message::to_bytes(&msg)).unwrap();
        let SipMessage::Request(wire) = wire else { panic!() };
        assert_eq!(DialogId::of_request(&wire, false), Some(d.id()));
    }

    #[test]
    fn incoming_in_dialog_request_matches_and_cseq_is_checked() {
        let inv = invite("");
        let mut d = Dialog::uas(&inv, "b1", local_contact()).unwrap();
        let bye_text = |cseq: u32, method: &str| {
            format!(
                "{method} sip:gw@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx{cseq}\r\n\
To: <sip:1000@gw.example.com>;tag=b1\r\nFrom: <sip:alice@example.com>;tag=a1\r\nCall-ID: dlg-1@example.com\r\n\
CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let parse = |t: String| match message::parse(t.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!(),
        };
        let info = parse(bye_text(11, "INFO"));
        assert_eq!(DialogId::of_request(&info, true), Some(d.id()));
        assert!(d.check_remote_cseq(&info));
        assert_eq!(d.remote_cseq, Some(11));
        assert!(!d.check_remote_cseq(&parse(bye_text(9, "INFO"))), "out of order: 500");
        assert_eq!(d.remote_cseq, Some(11));
        assert!(
            d.check_remote_cseq(&parse(bye_text(10, "ACK"))),
            "ACK carries the INVITE's CSeq"
        );
        assert!(d.check_remote_cseq(&parse(bye_text(12, "BYE"))));
        // Not in a dialog: no To tag.
        assert_eq!(DialogId::of_request(&inv, true), None);
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_acks_2xx() {
        let inv = invite("");
        let mut resp = message::response_for(&inv, 200, Some("b9"));
        resp.headers.push(Header::Contact(rsip::headers::Contact::new(
            "<sip:bob@198.51.100.2:5070>",
        )));
        let mut d = Dialog::uac(&inv, &resp).unwrap();
        assert_eq!(
            d.id(),
            DialogId {
                call_id: "dlg-1@example.com".into(),
                local_tag: "a1".into(),
                remote_tag: "b9".into()
            }
        );
        assert_eq!(
            d.route_set.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>(),
            ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
        );
        assert_eq!(d.local_cseq, 10);
        assert_eq!(d.remote_cseq, None);
        assert_eq!(d.next_hop().host().to_string(), "p2.example.com");
        let ack = d.ack(10, "192.0.2.10:5060", "UDP", None);
        let msg = SipMessage::Request(ack.clone());
        assert_eq!(message::cseq(&msg), Some((10, Method::Ack)));
        assert_eq!(ack.uri.to_string(), "sip:bob@198.51.100.2:5070");
        assert_ne!(
            message::top_via_branch(&msg).as_deref(),
            Some("z9hG4bKd1"),
            "the 2xx ACK is a new transaction"
        );
        assert_eq!(d.local_cseq, 10, "ACK does not advance the CSeq");
        let reinvite = d.request(
            Method::Invite,
            "192.0.2.10:5060",
            "UDP",
            Some(("application/sdp", b"v=0\r\n".to_vec())),
        );
        let msg = SipMessage::Request(reinvite.clone());
        assert_eq!(message::cseq(&msg), Some((11, Method::Invite)));
        assert_eq!(reinvite.body, b"v=0\r\n");
        assert_eq!(message::header_value(&msg, "Content-Length").as_deref(), Some("5"));
        assert_eq!(
            message::header_value(&msg, "Content-Type").as_deref(),
            Some("application/sdp")
        );
        assert_eq!(
            message::contact_uris(&msg)[0].to_string(),
            "sip:alice@192.0.2.10:5060;transport=UDP"
        );
        // A 2xx without To tag or Contact does not make a dialog.
        let bare = message::response_for(&inv, 200, None);
        assert_eq!(Dialog::uac(&inv, &bare), Err(DialogError::Missing("Contact")));
        let mut no_tag = message::response_for(&inv, 200, None);
        no_tag
            .headers
            .push(Header::Contact(rsip::headers::Contact::new("<sip:bob@198.51.100.2>")));
        assert_eq!(Dialog::uac(&inv, &no_tag), Err(DialogError::NoRemoteTag));
    }

    #[test]
    fn strict_route_puts_the_first_route_in_the_request_uri() {
        let text = String::from_utf8(message::to_bytes(&SipMessage::Request(invite(""))))
            .unwrap()
            .replace("<sip:p1.example.com;lr>", "<sip:p1.example.com;transport=tcp>");
        let SipMessage::Request(inv) = message::parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        let mut d = Dialog::uas(&inv, "b1", local_contact()).unwrap();
        let bye = d.request(Method::Bye, "203.0.113.5", "UDP", None);
        assert_eq!(bye.uri.to_string(), "sip:p1.example.com");
        assert_eq!(
            header(&bye, "Route"),
            ["<sip:p2.example.com;lr>", "<sip:alice@192.0.2.10:5060;transport=UDP>"]
        );
        assert_eq!(d.next_hop().host().to_string(), "p1.example.com");
    }

    #[test]
    fn target_refresh_and_sips() {
        let text = String::from_utf8(message::to_bytes(&SipMessage::Request(invite(""))))
            .unwrap()
            .replace("INVITE sip:1000@", "INVITE sips:1000@")
            .replace(
                "Record-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\n",
                "",
            );
        let SipMessage::Request(inv) = message::parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        let mut d = Dialog::uas(&inv, "b1", local_contact()).unwrap();
        assert!(d.secure);
        assert!(d.route_set.is_empty());
        assert_eq!(d.next_hop(), d.remote_target);
        let mut refresh = inv.clone();
        refresh.headers.retain(|h| !matches!(h, Header::Contact(_)));
        refresh.headers.push(Header::Contact(rsip::headers::Contact::new(
            "<sip:alice@192.0.2.99:5062>",
        )));
        assert!(d.refresh_target(&SipMessage::Request(refresh.clone())));
        assert_eq!(d.remote_target.to_string(), "sip:alice@192.0.2.99:5062");
        assert!(
            !d.refresh_target(&SipMessage::Request(refresh)),
            "same target: no change"
        );
        let bye = d.request(Method::Bye, "gw", "TLS", None);
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.99:5062");
        assert!(header(&bye, "Route").is_empty());
    }

    #[test]
    fn uas_needs_a_sip_contact() {
        let inv = invite("");
        let mut no_contact = inv.clone();
        no_contact.headers.retain(|h| !matches!(h, Header::Contact(_)));
        assert_eq!(
            Dialog::uas(&no_contact, "b", local_contact()),
            Err(DialogError::Missing("Contact"))
        );
        let mut tel = no_contact.clone();
        tel.headers
            .push(Header::Contact(rsip::headers::Contact::new("<tel:+15551234>")));
        assert_eq!(Dialog::uas(&tel, "b", local_contact()), Err(DialogError::BadContact));
    }

    #[test]
    fn session_timer_negotiation() {
        // No Session-Expires: no timer.
        assert_eq!(SessionTimer::negotiate(&invite(""), 90), Ok(None));
        // Too small for our Min-SE: 422 with our Min-SE.
        assert_eq!(
            SessionTimer::negotiate(&invite("Session-Expires: 120\r\n"), 300),
            Err(300)
        );
        // Below the 90 s floor even if we would accept less.
        assert_eq!(SessionTimer::negotiate(&invite("x: 60\r\n"), 30), Err(90));
        // UAC supports timer and chose nobody: it refreshes; Require: timer goes in the 2xx.
        let st = SessionTimer::negotiate(&invite("Supported: 100rel, timer\r\nSession-Expires: 1800\r\n"), 90)
            .unwrap()
            .unwrap();
        assert_eq!(
            st,
            SessionTimer {
                interval: 1800,
                refresher: Refresher::Uac,
                uac_supports: true
            }
        );
        assert_eq!(
            st.response_headers(),
            [
                ("Session-Expires", "1800;refresher=uac".to_owned()),
                ("Require", "timer".to_owned())
            ]
        );
        assert_eq!(st.refresh_after(), Duration::from_secs(900));
        assert_eq!(st.expire_after(), Duration::from_secs(1768));
        // It asked us to refresh.
        let st = SessionTimer::negotiate(&invite("k: timer\r\nx: 600;refresher=uas\r\n"), 90)
            .unwrap()
            .unwrap();
        assert_eq!(st.refresher, Refresher::Uas);
        // Without Supported: timer we refresh, and no Require.
        let st = SessionTimer::negotiate(&invite("Session-Expires: 600;refresher=uac\r\n"), 90)
            .unwrap()
            .unwrap();
        assert_eq!(st.refresher, Refresher::Uas);
        assert_eq!(
            st.response_headers(),
            [("Session-Expires", "600;refresher=uas".to_owned())]
        );
        assert_eq!(st.expire_after(), Duration::from_secs(600 - 32));
        assert_eq!(
            SessionTimer {
                interval: 90,
                refresher: Refresher::Uas,
                uac_supports: false
            }
            .expire_after(),
            Duration::from_secs(60)
        );
    }
}
