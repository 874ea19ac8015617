//! Q.931 messages as H.225.0 §7.2 uses them for call signalling.
//!
//! A message (Q.931 §4) is the protocol discriminator `0x08`, the call
//! reference (§4.3: a length octet, then that many octets whose first bit is
//! the flag), the message type (§4.4) and information elements (§4.5).
//! Variable-length IEs are `id, length, contents`; single-octet IEs have bit 8
//! set. H.225.0 §7.2.2 codes the User-user IE's length in two octets.
//!
//! Decoding checks every length against what is left before reading.
//! Unknown IEs are kept ([`Ie::Unknown`], [`Ie::UnknownSingleOctet`]) so a
//! message re-encodes as it came; Q.931 §5.8.7.1 says the receiver ignores
//! them unless their identifier is in the "comprehension required" range
//! (codeset 0, `0000 xxxx`): [`Message::unrecognized_comprehension_required`]
//! tells the call layer when to clear with cause 96.

/// Q.931's protocol discriminator (§4.2).
pub const PROTOCOL_DISCRIMINATOR: u8 = 0x08;
/// User-user IE protocol discriminator for X.208/X.209 coded information,
/// which H.225.0 §7.2.2.31 requires for the H323-UserInformation.
pub const USER_USER_PROTOCOL_X208: u8 = 0x05;

/// A Q.931 message that cannot be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Q931Error {
    /// The first octet is not Q.931's protocol discriminator.
    #[error("protocol discriminator {0:#04x} is not Q.931 (0x08)")]
    NotQ931(u8),
    /// The message ends inside its header or an IE.
    #[error("message truncated in {0}")]
    Truncated(&'static str),
    /// The call reference length octet is invalid (spare bits set or longer
    /// than 4 octets).
    #[error("invalid call reference length octet {0:#04x}")]
    CallReferenceLength(u8),
    /// The message type octet has bit 8 set (reserved, Q.931 §4.4).
    #[error("invalid message type octet {0:#04x}")]
    MessageType(u8),
    /// A known IE's contents are malformed.
    #[error("invalid {ie} information element: {reason}")]
    InvalidIe {
        /// The IE's name.
        ie: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// An IE is too long for its length field when encoding.
    #[error("{0} information element too long to encode")]
    IeTooLong(&'static str),
}

/// The message types H.225.0 uses (Q.931 §4.4, Table 4-2; H.225.0 §7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// ALERTING, `0x01`.
    Alerting,
    /// CALL PROCEEDING, `0x02`.
    CallProceeding,
    /// PROGRESS, `0x03`.
    Progress,
    /// SETUP, `0x05`.
    Setup,
    /// CONNECT, `0x07`.
    Connect,
    /// RELEASE COMPLETE, `0x5a`.
    ReleaseComplete,
    /// FACILITY, `0x62`.
    Facility,
    /// NOTIFY, `0x6e`.
    Notify,
    /// STATUS ENQUIRY, `0x75`.
    StatusEnquiry,
    /// INFORMATION, `0x7b`.
    Information,
    /// STATUS, `0x7d`.
    Status,
    /// Any other type: Q.931 §5.8.4 answers it with STATUS, cause 97.
    Other(u8),
}

impl MessageType {
    /// The message type octet.
    pub fn code(self) -> u8 {
        match self {
            Self::Alerting => 0x01,
            Self::CallProceeding => 0x02,
            Self::Progress => 0x03,
            Self::Setup => 0x05,
            Self::Connect => 0x07,
            Self::ReleaseComplete => 0x5a,
            Self::Facility => 0x62,
            Self::Notify => 0x6e,
            Self::StatusEnquiry => 0x75,
            Self::Information => 0x7b,
            Self::Status => 0x7d,
            Self::Other(code) => code,
        }
    }

    /// The type for a message type octet.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::Alerting,
            0x02 => Self::CallProceeding,
            0x03 => Self::Progress,
            0x05 => Self::Setup,
            0x07 => Self::Connect,
            0x5a => Self::ReleaseComplete,
            0x62 => Self::Facility,
            0x6e => Self::Notify,
            0x75 => Self::StatusEnquiry,
            0x7b => Self::Information,
            0x7d => Self::Status,
            other => Self::Other(other),
        }
    }
}

/// The call reference (Q.931 §4.3). H.225.0 §7.2.2.2 uses two octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallReference {
    /// Octets the value takes (0 is the dummy call reference; at most 4).
    pub length: u8,
    /// The value without the flag bit.
    pub value: u32,
    /// The flag: `false` in messages from the side that allocated the call
    /// reference, `true` in messages towards it.
    pub from_destination: bool,
}

impl CallReference {
    /// A two-octet call reference as H.225.0 uses (value is 15 bits).
    pub fn new(value: u16, from_destination: bool) -> Self {
        Self {
            length: 2,
            value: u32::from(value & 0x7fff),
            from_destination,
        }
    }
}

/// Bearer capability (Q.931 §4.5.5; H.225.0 §7.2.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerCapability {
    /// Coding standard, 2 bits (0: ITU-T).
    pub coding_standard: u8,
    /// Information transfer capability, 5 bits (0: speech, 8: unrestricted
    /// digital, 16: 3.1 kHz audio, 17: unrestricted digital with tones).
    pub transfer_capability: u8,
    /// Transfer mode, 2 bits (0: circuit).
    pub transfer_mode: u8,
    /// Information transfer rate, 5 bits (0x10: 64 kbit/s, 0x18: multirate).
    pub transfer_rate: u8,
    /// Rate multiplier (octet 4.1), present when the rate is multirate.
    pub rate_multiplier: Option<u8>,
    /// User information layer 1 protocol (octet 5), 5 bits (2: G.711 µ-law,
    /// 3: G.711 A-law, 5: H.221 and H.242).
    pub layer1_protocol: Option<u8>,
    /// Octets 5a and later, kept as they came.
    pub more: Vec<u8>,
}

/// Cause (Q.931 §4.5.12, values from Q.850).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Coding standard, 2 bits (0: ITU-T).
    pub coding_standard: u8,
    /// Location, 4 bits (0: user, 1: private network serving the local user...).
    pub location: u8,
    /// Recommendation (octet 3a), if present.
    pub recommendation: Option<u8>,
    /// Cause value, 7 bits (16: normal call clearing, 17: user busy...).
    pub value: u8,
    /// Diagnostics, kept as they came.
    pub diagnostics: Vec<u8>,
}

/// Calling party number (Q.931 §4.5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingPartyNumber {
    /// Type of number, 3 bits.
    pub type_of_number: u8,
    /// Numbering plan identification, 4 bits (1: E.164).
    pub numbering_plan: u8,
    /// Octet 3a: presentation indicator (2 bits) and screening indicator
    /// (2 bits), if present.
    pub presentation_screening: Option<(u8, u8)>,
    /// The number digits (IA5 characters).
    pub digits: Vec<u8>,
}

/// Called party number (Q.931 §4.5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledPartyNumber {
    /// Type of number, 3 bits.
    pub type_of_number: u8,
    /// Numbering plan identification, 4 bits (1: E.164).
    pub numbering_plan: u8,
    /// The number digits (IA5 characters).
    pub digits: Vec<u8>,
}

/// Progress indicator (Q.931 §4.5.23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressIndicator {
    /// Coding standard, 2 bits.
    pub coding_standard: u8,
    /// Location, 4 bits.
    pub location: u8,
    /// Progress description, 7 bits (1: not end-to-end ISDN, 8: in-band
    /// information available).
    pub description: u8,
}

/// Notification indicator (Q.931 §4.5.22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationIndicator {
    /// Notification description, 7 bits.
    pub description: u8,
    /// Further octets, kept as they came.
    pub more: Vec<u8>,
}

/// User-user (Q.931 §4.5.30 with H.225.0's two-octet length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUser {
    /// Protocol discriminator ([`USER_USER_PROTOCOL_X208`] for H.225.0).
    pub protocol_discriminator: u8,
    /// The user information: for H.225.0, the PER-encoded
    /// H323-UserInformation.
    pub information: Vec<u8>,
}

/// An information element.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ie {
    /// Bearer capability, `0x04`.
    BearerCapability(BearerCapability),
    /// Cause, `0x08`.
    Cause(Cause),
    /// Progress indicator, `0x1e`.
    ProgressIndicator(ProgressIndicator),
    /// Notification indicator, `0x27`.
    NotificationIndicator(NotificationIndicator),
    /// Display, `0x28`: IA5 characters.
    Display(Vec<u8>),
    /// Keypad facility, `0x2c`: IA5 characters.
    Keypad(Vec<u8>),
    /// Signal, `0x34`: the signal value.
    Signal(u8),
    /// Calling party number, `0x6c`.
    CallingPartyNumber(CallingPartyNumber),
    /// Called party number, `0x70`.
    CalledPartyNumber(CalledPartyNumber),
    /// User-user, `0x7e`.
    UserUser(UserUser),
    /// Sending complete, single octet `0xa1`.
    SendingComplete,
    /// Shift, single octet `1001 L ccc` (Q.931 §4.5.3): locking (`L` = 0) or
    /// non-locking shift to codeset `ccc`.
    Shift {
        /// Locking shift (applies until the next locking shift).
        locking: bool,
        /// The codeset shifted to.
        codeset: u8,
    },
    /// A variable-length IE this crate does not interpret (or one in a
    /// codeset other than 0), kept as it came.
    Unknown {
        /// The codeset in force for this IE.
        codeset: u8,
        /// The IE identifier.
        id: u8,
        /// The contents.
        contents: Vec<u8>,
    },
    /// A single-octet IE this crate does not interpret.
    UnknownSingleOctet {
        /// The codeset in force for this IE.
        codeset: u8,
        /// The octet.
        octet: u8,
    },
}

mod id {
    pub(super) const BEARER_CAPABILITY: u8 = 0x04;
    pub(super) const CAUSE: u8 = 0x08;
    pub(super) const PROGRESS_INDICATOR: u8 = 0x1e;
    pub(super) const NOTIFICATION_INDICATOR: u8 = 0x27;
    pub(super) const DISPLAY: u8 = 0x28;
    pub(super) const KEYPAD: u8 = 0x2c;
    pub(super) const SIGNAL: u8 = 0x34;
    pub(super) const CALLING_PARTY_NUMBER: u8 = 0x6c;
    pub(super) const CALLED_PARTY_NUMBER: u8 = 0x70;
    pub(super) const USER_USER: u8 = 0x7e;
    pub(super) const SENDING_COMPLETE: u8 = 0xa1;
}

/// A Q.931 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The call reference.
    pub call_reference: CallReference,
    /// The message type.
    pub message_type: MessageType,
    /// The information elements, in order.
    pub ies: Vec<Ie>,
}

/// Reads octets from a slice, checking that each one is there.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, Q931Error> {
        let (&b, rest) = self.data.split_first().ok_or(Q931Error::Truncated(what))?;
        self.data = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Q931Error> {
        if n > self.data.len() {
            return Err(Q931Error::Truncated(what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
}

impl Message {
    /// A message with no IEs.
    pub fn new(message_type: MessageType, call_reference: CallReference) -> Self {
        Self {
            call_reference,
            message_type,
            ies: Vec::new(),
        }
    }

    /// Decodes a whole message (one TPKT payload).
    pub fn decode(bytes: &[u8]) -> Result<Self, Q931Error> {
        let mut r = Reader { data: bytes };
        let pd = r.u8("protocol discriminator")?;
        if pd != PROTOCOL_DISCRIMINATOR {
            return Err(Q931Error::NotQ931(pd));
        }
        let len_octet = r.u8("call reference")?;
        if len_octet & 0xf0 != 0 || len_octet > 4 {
            return Err(Q931Error::CallReferenceLength(len_octet));
        }
        let cr = r.take(usize::from(len_octet), "call reference")?;
        let call_reference = match cr.split_first() {
            None => CallReference {
                length: 0,
                value: 0,
                from_destination: false,
            },
            Some((&first, rest)) => CallReference {
                length: len_octet,
                value: rest
                    .iter()
                    .fold(u32::from(first & 0x7f), |v, &b| (v << 8) | u32::from(b)),
                from_destination: first & 0x80 != 0,
            },
        };
        let mt = r.u8("message type")?;
        if mt & 0x80 != 0 {
            return Err(Q931Error::MessageType(mt));
        }
        let mut msg = Self::new(MessageType::from_code(mt), call_reference);
        let mut locked = 0u8;
        let mut next_only: Option<u8> = None;
        while !r.data.is_empty() {
            let codeset = next_only.take().unwrap_or(locked);
            let first = r.u8("information element")?;
            if first & 0x80 != 0 {
                let ie = match first {
                    id::SENDING_COMPLETE if codeset == 0 => Ie::SendingComplete,
                    _ if first & 0xf0 == 0x90 => {
                        let locking = first & 0x08 == 0;
                        let target = first & 0x07;
                        if locking {
                            locked = target;
                        } else {
                            next_only = Some(target);
                        }
                        Ie::Shift {
                            locking,
                            codeset: target,
                        }
                    }
                    octet => Ie::UnknownSingleOctet { codeset, octet },
                };
                msg.ies.push(ie);
                continue;
            }
            let len = if first == id::USER_USER && codeset == 0 {
                let hi = r.u8("User-user length")?;
                let lo = r.u8("User-user length")?;
                usize::from(u16::from_be_bytes([hi, lo]))
            } else {
                usize::from(r.u8("information element length")?)
            };
            let contents = r.take(len, "information element contents")?;
            msg.ies.push(if codeset == 0 {
                decode_ie(first, contents)?
            } else {
                Ie::Unknown {
                    codeset,
                    id: first,
                    contents: contents.to_vec(),
                }
            });
        }
        Ok(msg)
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Q931Error> {
        out.push(PROTOCOL_DISCRIMINATOR);
        let cr = self.call_reference;
        if cr.length > 4 {
            return Err(Q931Error::CallReferenceLength(cr.length));
        }
        out.push(cr.length);
        if cr.length > 0 {
            let bytes = cr.value.to_be_bytes();
            let start = bytes.len() - usize::from(cr.length);
            let at = out.len();
            out.extend_from_slice(&bytes[start..]);
            if let Some(first) = out.get_mut(at) {
                *first = (*first & 0x7f) | if cr.from_destination { 0x80 } else { 0 };
            }
        }
        let mt = self.message_type.code();
        if mt & 0x80 != 0 {
            return Err(Q931Error::MessageType(mt));
        }
        out.push(mt);
        for ie in &self.ies {
            encode_ie(ie, out)?;
        }
        Ok(())
    }

    /// The encoded message in a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Q931Error> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// The first User-user IE, which carries the H.225.0 UUIE.
    pub fn user_user(&self) -> Option<&UserUser> {
        self.ies.iter().find_map(|ie| match ie {
            Ie::UserUser(uu) => Some(uu),
            _ => None,
        })
    }

    /// The first Cause IE.
    pub fn cause(&self) -> Option<&Cause> {
        self.ies.iter().find_map(|ie| match ie {
            Ie::Cause(c) => Some(c),
            _ => None,
        })
    }

    /// The identifier of the first unrecognized IE whose identifier says
    /// "comprehension required" (codeset 0, bits 8–5 `0000`; Q.931 §4.5.1,
    /// §5.8.7.1): the call is then cleared with cause 96.
    pub fn unrecognized_comprehension_required(&self) -> Option<u8> {
        self.ies.iter().find_map(|ie| match ie {
            Ie::Unknown { codeset: 0, id, .. } if id & 0xf0 == 0 => Some(*id),
            _ => None,
        })
    }
}

fn invalid(ie: &'static str, reason: &'static str) -> Q931Error {
    Q931Error::InvalidIe { ie, reason }
}

fn decode_ie(ie_id: u8, c: &[u8]) -> Result<Ie, Q931Error> {
    Ok(match ie_id {
        id::BEARER_CAPABILITY => Ie::BearerCapability(decode_bearer(c)?),
        id::CAUSE => Ie::Cause(decode_cause(c)?),
        id::PROGRESS_INDICATOR => {
            let [o3, o4] = c else {
                return Err(invalid("Progress indicator", "length is not 2"));
            };
            if o3 & 0x80 == 0 || o4 & 0x80 == 0 {
                return Err(invalid("Progress indicator", "extension bit not set"));
            }
            Ie::ProgressIndicator(ProgressIndicator {
                coding_standard: (o3 >> 5) & 0x03,
                location: o3 & 0x0f,
                description: o4 & 0x7f,
            })
        }
        id::NOTIFICATION_INDICATOR => {
            let (&o3, more) = c.split_first().ok_or(invalid("Notification indicator", "empty"))?;
            Ie::NotificationIndicator(NotificationIndicator {
                description: o3 & 0x7f,
                more: more.to_vec(),
            })
        }
        id::DISPLAY => Ie::Display(c.to_vec()),
        id::KEYPAD => Ie::Keypad(c.to_vec()),
        id::SIGNAL => {
            let [value] = c else {
                return Err(invalid("Signal", "length is not 1"));
            };
            Ie::Signal(*value)
        }
        id::CALLING_PARTY_NUMBER => {
            let (&o3, rest) = c.split_first().ok_or(invalid("Calling party number", "empty"))?;
            let (presentation_screening, digits) = if o3 & 0x80 == 0 {
                let (&o3a, digits) = rest
                    .split_first()
                    .ok_or(invalid("Calling party number", "octet 3a missing"))?;
                if o3a & 0x80 == 0 {
                    return Err(invalid("Calling party number", "octet 3a extension bit not set"));
                }
                (Some(((o3a >> 5) & 0x03, o3a & 0x03)), digits)
            } else {
                (None, rest)
            };
            Ie::CallingPartyNumber(CallingPartyNumber {
                type_of_number: (o3 >> 4) & 0x07,
                numbering_plan: o3 & 0x0f,
                presentation_screening,
                digits: digits.to_vec(),
            })
        }
        id::CALLED_PARTY_NUMBER => {
            let (&o3, digits) = c.split_first().ok_or(invalid("Called party number", "empty"))?;
            if o3 & 0x80 == 0 {
                return Err(invalid("Called party number", "octet 3 extension bit not set"));
            }
            Ie::CalledPartyNumber(CalledPartyNumber {
                type_of_number: (o3 >> 4) & 0x07,
                numbering_plan: o3 & 0x0f,
                digits: digits.to_vec(),
            })
        }
        id::USER_USER => {
            let (&pd, info) = c.split_first().ok_or(invalid("User-user", "empty"))?;
            Ie::UserUser(UserUser {
                protocol_discriminator: pd,
                information: info.to_vec(),
            })
        }
        other => Ie::Unknown {
            codeset: 0,
            id: other,
            contents: c.to_vec(),
        },
    })
}

fn decode_bearer(c: &[u8]) -> Result<BearerCapability, Q931Error> {
    const IE: &str = "Bearer capability";
    let mut r = Reader { data: c };
    let o3 = r.u8(IE)?;
    let o4 = r.u8(IE)?;
    if o3 & 0x80 == 0 || o4 & 0x80 == 0 {
        return Err(invalid(IE, "octet 3 or 4 extension bit not set"));
    }
    let transfer_rate = o4 & 0x1f;
    let rate_multiplier = if transfer_rate == 0x18 {
        let o41 = r.u8(IE)?;
        Some(o41 & 0x7f)
    } else {
        None
    };
    // Octet 5 is there when the next octet has layer identifier `01`.
    let layer1_protocol = match r.data.first() {
        Some(&o5) if (o5 >> 5) & 0x03 == 0x01 => {
            r.data = &r.data[1..];
            if o5 & 0x80 == 0 && r.data.is_empty() {
                return Err(invalid(IE, "octet 5a missing"));
            }
            Some(o5 & 0x1f)
        }
        _ => None,
    };
    Ok(BearerCapability {
        coding_standard: (o3 >> 5) & 0x03,
        transfer_capability: o3 & 0x1f,
        transfer_mode: (o4 >> 5) & 0x03,
        transfer_rate,
        rate_multiplier,
        layer1_protocol,
        more: r.data.to_vec(),
    })
}

fn decode_cause(c: &[u8]) -> Result<Cause, Q931Error> {
    const IE: &str = "Cause";
    let mut r = Reader { data: c };
    let o3 = r.u8(IE)?;
    let recommendation = if o3 & 0x80 == 0 { Some(r.u8(IE)? & 0x7f) } else { None };
    let o4 = r.u8(IE)?;
    if o4 & 0x80 == 0 {
        return Err(invalid(IE, "octet 4 extension bit not set"));
    }
    Ok(Cause {
        coding_standard: (o3 >> 5) & 0x03,
        location: o3 & 0x0f,
        recommendation,
        value: o4 & 0x7f,
        diagnostics: r.data.to_vec(),
    })
}

fn push_ie(out: &mut Vec<u8>, ie_id: u8, name: &'static str, contents: &[u8]) -> Result<(), Q931Error> {
    let len = u8::try_from(contents.len()).map_err(|_| Q931Error::IeTooLong(name))?;
    out.extend_from_slice(&[ie_id, len]);
    out.extend_from_slice(contents);
    Ok(())
}

fn encode_ie(ie: &Ie, out: &mut Vec<u8>) -> Result<(), Q931Error> {
    match ie {
        Ie::BearerCapability(b) => {
            let mut c = vec![0x80 | (b.coding_standard & 0x03) << 5 | (b.transfer_capability & 0x1f)];
            c.push(0x80 | (b.transfer_mode & 0x03) << 5 | (b.transfer_rate & 0x1f));
            if let Some(m) = b.rate_multiplier {
                c.push(0x80 | (m & 0x7f));
            }
            if let Some(p) = b.layer1_protocol {
                let ext = if b.more.is_empty() { 0x80 } else { 0x00 };
                c.push(ext | 0x20 | (p & 0x1f));
            }
            c.extend_from_slice(&b.more);
            push_ie(out, id::BEARER_CAPABILITY, "Bearer capability", &c)
        }
        Ie::Cause(k) => {
            let ext = if k.recommendation.is_some() { 0x00 } else { 0x80 };
            let mut c = vec![ext | (k.coding_standard & 0x03) << 5 | (k.location & 0x0f)];
            if let Some(rec) = k.recommendation {
                c.push(0x80 | (rec & 0x7f));
            }
            c.push(0x80 | (k.value & 0x7f));
            c.extend_from_slice(&k.diagnostics);
            push_ie(out, id::CAUSE, "Cause", &c)
        }
        Ie::ProgressIndicator(p) => {
            let c = [
                0x80 | (p.coding_standard & 0x03) << 5 | (p.location & 0x0f),
                0x80 | (p.description & 0x7f),
            ];
            push_ie(out, id::PROGRESS_INDICATOR, "Progress indicator", &c)
        }
        Ie::NotificationIndicator(n) => {
            let mut c = vec![0x80 | (n.description & 0x7f)];
            c.extend_from_slice(&n.more);
            push_ie(out, id::NOTIFICATION_INDICATOR, "Notification indicator", &c)
        }
        Ie::Display(d) => push_ie(out, id::DISPLAY, "Display", d),
        Ie::Keypad(k) => push_ie(out, id::KEYPAD, "Keypad facility", k),
        Ie::Signal(s) => push_ie(out, id::SIGNAL, "Signal", &[*s]),
        Ie::CallingPartyNumber(n) => {
            let ext = if n.presentation_screening.is_some() { 0x00 } else { 0x80 };
            let mut c = vec![ext | (n.type_of_number & 0x07) << 4 | (n.numbering_plan & 0x0f)];
            if let Some((pi, si)) = n.presentation_screening {
                c.push(0x80 | (pi & 0x03) << 5 | (si & 0x03));
            }
            c.extend_from_slice(&n.digits);
            push_ie(out, id::CALLING_PARTY_NUMBER, "Calling party number", &c)
        }
        Ie::CalledPartyNumber(n) => {
            let mut c = vec![0x80 | (n.type_of_number & 0x07) << 4 | (n.numbering_plan & 0x0f)];
            c.extend_from_slice(&n.digits);
            push_ie(out, id::CALLED_PARTY_NUMBER, "Called party number", &c)
        }
        Ie::UserUser(u) => {
            let len = u16::try_from(u.information.len() + 1).map_err(|_| Q931Error::IeTooLong("User-user"))?;
            out.push(id::USER_USER);
            out.extend_from_slice(&len.to_be_bytes());
            out.push(u.protocol_discriminator);
            out.extend_from_slice(&u.information);
            Ok(())
        }
        Ie::SendingComplete => {
            out.push(id::SENDING_COMPLETE);
            Ok(())
        }
        Ie::Shift { locking, codeset } => {
            out.push(0x90 | if *locking { 0 } else { 0x08 } | (codeset & 0x07));
            Ok(())
        }
        Ie::Unknown {
            codeset: 0,
            id: id::USER_USER,
            contents,
        } => {
            // Codeset 0's User-user identifier always has the two-octet length.
            let len = u16::try_from(contents.len()).map_err(|_| Q931Error::IeTooLong("User-user"))?;
            out.push(id::USER_USER);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(contents);
            Ok(())
        }
        Ie::Unknown {
            id: ie_id, contents, ..
        } => push_ie(out, *ie_id & 0x7f, "unknown", contents),
        Ie::UnknownSingleOctet { octet, .. } => {
            out.push(*octet | 0x80);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn setup_with_the_usual_ies_round_trips() {
        let mut m = Message::new(MessageType::Setup, CallReference::new(0x1234, false));
        m.ies = vec![
            Ie::BearerCapability(BearerCapability {
                coding_standard: 0,
                transfer_capability: 8,
                transfer_mode: 0,
                transfer_rate: 0x13,
                rate_multiplier: None,
                layer1_protocol: Some(5),
                more: Vec::new(),
            }),
            Ie::Display(b"alice".to_vec()),
            Ie::CallingPartyNumber(CallingPartyNumber {
                type_of_number: 0,
                numbering_plan: 1,
                presentation_screening: Some((0, 3)),
                digits: b"100".to_vec(),
            }),
            Ie::CalledPartyNumber(CalledPartyNumber {
                type_of_number: 0,
                numbering_plan: 1,
                digits: b"2001".to_vec(),
            }),
            Ie::SendingComplete,
            Ie::UserUser(UserUser {
                protocol_discriminator: USER_USER_PROTOCOL_X208,
                information: vec![0x20, 0xa8],
            }),
        ];
        let bytes = m.to_bytes().unwrap();
        assert_eq!(
            bytes,
            hex(
                "08 02 12 34 05  04 03 88 93 a5  28 05 616c696365  6c 05 01 83 313030  70 05 81 32303031  a1  \
                 7e 00 03 05 20 a8"
            )
        );
        assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn call_reference_flag_and_dummy() {
        let m = Message::decode(&hex("08 02 92 34 5a 08 02 80 90")).unwrap();
        assert_eq!(
            m.call_reference,
            CallReference {
                length: 2,
                value: 0x1234,
                from_destination: true
            }
        );
        assert_eq!(m.message_type, MessageType::ReleaseComplete);
        assert_eq!(m.cause().unwrap().value, 16);
        let dummy = Message::decode(&hex("08 00 62")).unwrap();
        assert_eq!(dummy.call_reference.length, 0);
        assert_eq!(dummy.to_bytes().unwrap(), hex("08 00 62"));
    }

    #[test]
    fn every_message_type_code_round_trips() {
        for code in 0..0x80u8 {
            assert_eq!(MessageType::from_code(code).code(), code);
        }
        assert_eq!(MessageType::from_code(0x7d), MessageType::Status);
        assert_eq!(MessageType::from_code(0x6e), MessageType::Notify);
    }

    #[test]
    fn other_ies_round_trip() {
        let bytes = hex("08 02 00 01 03  1e 02 80 88  27 01 80  2c 02 3132  34 01 40  \
             08 03 00 83 91  04 04 88 98 86 a5  08 04 81 90 01 02");
        let m = Message::decode(&bytes).unwrap();
        assert!(matches!(
            m.ies[0],
            Ie::ProgressIndicator(ProgressIndicator { description: 8, .. })
        ));
        assert!(matches!(
            m.ies[1],
            Ie::NotificationIndicator(NotificationIndicator { description: 0, .. })
        ));
        assert_eq!(m.ies[2], Ie::Keypad(b"12".to_vec()));
        assert_eq!(m.ies[3], Ie::Signal(0x40));
        assert!(matches!(
            &m.ies[4],
            Ie::Cause(Cause {
                recommendation: Some(3),
                value: 17,
                ..
            })
        ));
        assert!(matches!(
            &m.ies[5],
            Ie::BearerCapability(BearerCapability {
                rate_multiplier: Some(6),
                layer1_protocol: Some(5),
                ..
            })
        ));
        assert!(matches!(&m.ies[6], Ie::Cause(Cause { value: 16, diagnostics, .. }) if diagnostics == &[1, 2]));
        assert_eq!(m.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn unknown_ies_are_kept_and_comprehension_required_is_reported() {
        // 0x1c Facility IE (not interpreted), then a shift to codeset 6 and an
        // IE there with a one-octet length even though its id is 0x7e.
        let bytes = hex("08 02 00 01 62  1c 02 aa bb  9e 7e 01 ff  a0  7e 00 02 05 01");
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(
            m.ies[0],
            Ie::Unknown {
                codeset: 0,
                id: 0x1c,
                contents: vec![0xaa, 0xbb]
            }
        );
        assert_eq!(
            m.ies[1],
            Ie::Shift {
                locking: false,
                codeset: 6
            }
        );
        assert_eq!(
            m.ies[2],
            Ie::Unknown {
                codeset: 6,
                id: 0x7e,
                contents: vec![0xff]
            }
        );
        assert_eq!(
            m.ies[3],
            Ie::UnknownSingleOctet {
                codeset: 0,
                octet: 0xa0
            }
        );
        assert_eq!(m.user_user().unwrap().information, [1]);
        assert_eq!(m.unrecognized_comprehension_required(), None);
        assert_eq!(m.to_bytes().unwrap(), bytes);
        let m = Message::decode(&hex("08 02 00 01 05 01 01 00")).unwrap();
        assert_eq!(m.unrecognized_comprehension_required(), Some(0x01));
    }

    #[test]
    fn lengths_are_checked() {
        for (bytes, err) in [
            ("", Q931Error::Truncated("protocol discriminator")),
            ("09 02", Q931Error::NotQ931(0x09)),
            ("08 05 01 02 03 04 05 05", Q931Error::CallReferenceLength(5)),
            ("08 02 00", Q931Error::Truncated("call reference")),
            ("08 02 00 01", Q931Error::Truncated("message type")),
            ("08 02 00 01 85", Q931Error::MessageType(0x85)),
            ("08 02 00 01 05 28", Q931Error::Truncated("information element length")),
            (
                "08 02 00 01 05 28 05 41",
                Q931Error::Truncated("information element contents"),
            ),
            ("08 02 00 01 05 7e 00", Q931Error::Truncated("User-user length")),
            (
                "08 02 00 01 05 7e ff ff 05",
                Q931Error::Truncated("information element contents"),
            ),
            ("08 02 00 01 05 7e 00 00", invalid("User-user", "empty")),
            ("08 02 00 01 05 04 01 88", Q931Error::Truncated("Bearer capability")),
            ("08 02 00 01 05 08 01 00", Q931Error::Truncated("Cause")),
            ("08 02 00 01 05 34 00", invalid("Signal", "length is not 1")),
        ] {
            assert_eq!(Message::decode(&hex(bytes)), Err(err), "{bytes}");
        }
    }

    #[test]
    fn encode_refuses_oversized_ies() {
        let mut m = Message::new(MessageType::Information, CallReference::new(1, false));
        m.ies.push(Ie::Display(vec![b'x'; 256]));
        assert_eq!(m.to_bytes(), Err(Q931Error::IeTooLong("Display")));
        m.ies = vec![Ie::UserUser(UserUser {
            protocol_discriminator: 5,
            information: vec![0; 65535],
        })];
        assert_eq!(m.to_bytes(), Err(Q931Error::IeTooLong("User-user")));
    }
}
