//! Bencode, the serialisation the rtpengine *ng* control protocol carries.
//!
//! Bencode (from the BitTorrent specification, BEP 3) knows four kinds of
//! value:
//!
//! | kind        | wire form                        | example               |
//! |-------------|----------------------------------|-----------------------|
//! | integer     | `i` decimal `e`                  | `i42e`, `i-3e`        |
//! | byte string | decimal length `:` bytes         | `4:ping`              |
//! | list        | `l` values `e`                   | `l3:IP49:192.0.2.1e`  |
//! | dictionary  | `d` (byte-string key, value)… `e`| `d7:command4:pinge`   |
//!
//! BEP 3 asks for dictionary keys in sorted order. The *ng* protocol
//! explicitly does not honour that (rtpengine's `docs/ng_control_protocol.md`:
//! "The bencode standard's requirement that dictionary keys must be presented
//! in the lexicographical order is currently not honored"), and Kamailio's
//! `rtpengine` module emits keys in the order it builds them. So this module
//! keeps dictionaries as ordered `Vec`s of pairs, in wire order, and neither
//! checks nor sorts. Duplicate keys are kept too; rejecting them is a policy
//! of the layer above ([`crate::ng`] does).
//!
//! # Invariants
//!
//! * [`decode`] never panics, whatever the input; every length prefix is
//!   checked against the bytes that remain before it is used, and nesting is
//!   limited to [`MAX_DEPTH`] containers.
//! * Only the canonical spelling of integers and lengths is accepted (no
//!   leading zeros, no `-0`, no `+`), so for every input that [`decode`]
//!   accepts, [`encode`] of the result reproduces the input byte for byte.
//! * The whole input must be exactly one value; trailing bytes are an error.

use std::fmt;

/// How many containers (lists and dictionaries) may be nested, counting the
/// outermost one. An *ng* request needs three at most (`d` → `codec` `d` → `l`).
pub const MAX_DEPTH: usize = 16;

/// A decoded bencode value borrowing its byte strings from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i…e`: a signed 64-bit integer.
    Int(i64),
    /// `N:…`: a byte string (not necessarily UTF-8).
    Bytes(&'a [u8]),
    /// `l…e`: a list.
    List(Vec<Value<'a>>),
    /// `d…e`: a dictionary, pairs in wire order.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value stored under `key`, if `self` is a dictionary holding it.
    /// With duplicate keys the first one wins.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Dict(pairs) => pairs.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The byte string as `&str`, if `self` is a byte string holding UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The raw bytes, if `self` is a byte string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if `self` is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements, if `self` is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The pairs in wire order, if `self` is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }

    /// Copies the value into an [`OwnedValue`].
    pub fn to_owned_value(&self) -> OwnedValue {
        match self {
            Value::Int(i) => OwnedValue::Int(*i),
            Value::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Value::List(l) => OwnedValue::List(l.iter().map(Value::to_owned_value).collect()),
            Value::Dict(d) => OwnedValue::Dict(d.iter().map(|(k, v)| (k.to_vec(), v.to_owned_value())).collect()),
        }
    }
}

/// An owned bencode value, for building replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedValue {
    /// A signed 64-bit integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary, pairs in the order they will be encoded.
    Dict(Vec<(Vec<u8>, OwnedValue)>),
}

impl OwnedValue {
    /// A byte string holding `s`.
    pub fn string(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs, kept in the given order.
    pub fn dict<'k>(pairs: impl IntoIterator<Item = (&'k str, OwnedValue)>) -> Self {
        OwnedValue::Dict(pairs.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }

    /// A list of byte strings.
    pub fn string_list<'s>(items: impl IntoIterator<Item = &'s str>) -> Self {
        OwnedValue::List(items.into_iter().map(OwnedValue::string).collect())
    }

    /// Appends `key → value` if `self` is a dictionary; returns whether it was.
    pub fn insert(&mut self, key: &str, value: OwnedValue) -> bool {
        match self {
            OwnedValue::Dict(pairs) => {
                pairs.push((key.as_bytes().to_vec(), value));
                true
            }
            _ => false,
        }
    }

    /// The value stored under `key`, if `self` is a dictionary holding it.
    pub fn get(&self, key: &str) -> Option<&OwnedValue> {
        match self {
            OwnedValue::Dict(pairs) => pairs.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Borrows the value as a [`Value`].
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Int(i) => Value::Int(*i),
            OwnedValue::Bytes(b) => Value::Bytes(b),
            OwnedValue::List(l) => Value::List(l.iter().map(OwnedValue::as_value).collect()),
            OwnedValue::Dict(d) => Value::Dict(d.iter().map(|(k, v)| (k.as_slice(), v.as_value())).collect()),
        }
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::string(s)
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> Self {
        OwnedValue::Bytes(s.into_bytes())
    }
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> Self {
        OwnedValue::Int(i)
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(l: Vec<OwnedValue>) -> Self {
        OwnedValue::List(l)
    }
}

/// Why a byte sequence is not one well-formed bencode value.
///
/// Every variant carries the byte offset (from the start of the input) at
/// which the problem was found. All of them mean "the peer sent garbage".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// The input ended inside a value.
    #[error("bencode: unexpected end of input at byte {offset}")]
    UnexpectedEnd {
        /// Offset of the end of input.
        offset: usize,
    },
    /// A byte that cannot start a value (`i`, `l`, `d` or a digit).
    #[error("bencode: unexpected byte 0x{byte:02x} at byte {offset}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte itself.
        byte: u8,
    },
    /// An integer that is empty, has leading zeros, is `-0` or contains a non-digit.
    #[error("bencode: malformed integer at byte {offset}")]
    InvalidInteger {
        /// Offset of the `i`.
        offset: usize,
    },
    /// An integer outside the range of `i64`.
    #[error("bencode: integer out of range at byte {offset}")]
    IntegerOverflow {
        /// Offset of the `i`.
        offset: usize,
    },
    /// A byte-string length prefix with leading zeros, no `:` or too many digits.
    #[error("bencode: malformed string length at byte {offset}")]
    InvalidLength {
        /// Offset of the first digit.
        offset: usize,
    },
    /// A byte-string length prefix larger than the rest of the input.
    #[error("bencode: string of {length} bytes at byte {offset} exceeds the {remaining} bytes left")]
    LengthExceedsInput {
        /// Offset of the first digit of the length.
        offset: usize,
        /// The announced length.
        length: usize,
        /// Bytes remaining after the `:`.
        remaining: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("bencode: dictionary key at byte {offset} is not a byte string")]
    NonStringKey {
        /// Offset of the key.
        offset: usize,
    },
    /// More than [`MAX_DEPTH`] nested lists or dictionaries.
    #[error("bencode: nesting deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Offset of the container that is one too deep.
        offset: usize,
    },
    /// Bytes after the end of the (single) top-level value.
    #[error("bencode: trailing data at byte {offset}")]
    TrailingData {
        /// Offset of the first extra byte.
        offset: usize,
    },
}

/// Decodes `input`, which must hold exactly one bencode value.
///
/// # Errors
///
/// [`BencodeError`] for any malformed input, naming the byte offset.
pub fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    if d.pos != input.len() {
        return Err(BencodeError::TrailingData { offset: d.pos });
    }
    Ok(v)
}

/// Longest accepted decimal length prefix: 10 digits already exceed any
/// datagram, and it keeps the arithmetic far from `usize` overflow.
const MAX_LENGTH_DIGITS: usize = 10;
/// `i64::MIN` has 19 digits.
const MAX_INT_DIGITS: usize = 19;

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd { offset: self.pos })
    }

    /// `depth` is the number of containers already open around this value.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, BencodeError> {
        let start = self.pos;
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                if depth >= MAX_DEPTH {
                    return Err(BencodeError::TooDeep { offset: start });
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                if depth >= MAX_DEPTH {
                    return Err(BencodeError::TooDeep { offset: start });
                }
                self.pos += 1;
                let mut pairs = Vec::new();
                loop {
                    let b = self.peek()?;
                    if b == b'e' {
                        break;
                    }
                    if !b.is_ascii_digit() {
                        return Err(BencodeError::NonStringKey { offset: self.pos });
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    pairs.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(pairs))
            }
            byte => Err(BencodeError::UnexpectedByte { offset: start, byte }),
        }
    }

    /// `i` [`-`] digits `e`, canonical only.
    fn int(&mut self) -> Result<i64, BencodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        loop {
            let b = self.peek()?;
            if b == b'e' {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(BencodeError::InvalidInteger { offset: start });
            }
            if self.pos - digits_start >= MAX_INT_DIGITS {
                return Err(BencodeError::IntegerOverflow { offset: start });
            }
            let digit = i64::from(b - b'0');
            // Accumulate negatively so that i64::MIN is representable.
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_sub(digit))
                .ok_or(BencodeError::IntegerOverflow { offset: start })?;
            self.pos += 1;
        }
        let digits = &self.input[digits_start..self.pos];
        let canonical = match digits {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => true,
        };
        if !canonical {
            return Err(BencodeError::InvalidInteger { offset: start });
        }
        self.pos += 1; // 'e'
        if negative {
            Ok(value)
        } else {
            value
                .checked_neg()
                .ok_or(BencodeError::IntegerOverflow { offset: start })
        }
    }

    /// digits `:` bytes, canonical length only, validated before slicing.
    fn bytes(&mut self) -> Result<&'a [u8], BencodeError> {
        let start = self.pos;
        let mut length: usize = 0;
        loop {
            let b = self.peek()?;
            if b == b':' {
                break;
            }
            if !b.is_ascii_digit() || self.pos - start >= MAX_LENGTH_DIGITS {
                return Err(BencodeError::InvalidLength { offset: start });
            }
            // At most 10 digits: cannot overflow a 64-bit usize; checked anyway.
            length = length
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(b - b'0')))
                .ok_or(BencodeError::InvalidLength { offset: start })?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.input.get(start) == Some(&b'0')) {
            return Err(BencodeError::InvalidLength { offset: start });
        }
        self.pos += 1; // ':'
        let remaining = self.input.len() - self.pos;
        if length > remaining {
            return Err(BencodeError::LengthExceedsInput {
                offset: start,
                length,
                remaining,
            });
        }
        let s = &self.input[self.pos..self.pos + length];
        self.pos += length;
        Ok(s)
    }
}

/// Appends the bencoding of `v` to `out`. Dictionaries keep their order.
pub fn encode(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => encode_int(*i, out),
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(l) => {
            out.push(b'l');
            for item in l {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            out.push(b'd');
            for (k, item) in d {
                encode_bytes(k, out);
                encode(item, out);
            }
            out.push(b'e');
        }
    }
}

/// Appends the bencoding of `v` to `out`. Dictionaries keep their order.
pub fn encode_owned(v: &OwnedValue, out: &mut Vec<u8>) {
    match v {
        OwnedValue::Int(i) => encode_int(*i, out),
        OwnedValue::Bytes(b) => encode_bytes(b, out),
        OwnedValue::List(l) => {
            out.push(b'l');
            for item in l {
                encode_owned(item, out);
            }
            out.push(b'e');
        }
        OwnedValue::Dict(d) => {
            out.push(b'd');
            for (k, item) in d {
                encode_bytes(k, out);
                encode_owned(item, out);
            }
            out.push(b'e');
        }
    }
}

/// Appends a byte string (`N:…`) to `out`.
pub fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    push_decimal(b.len() as u64, out);
    out.push(b':');
    out.extend_from_slice(b);
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    out.push(b'i');
    if i < 0 {
        out.push(b'-');
    }
    push_decimal(i.unsigned_abs(), out);
    out.push(b'e');
}

fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Displays a value in a JSON-like notation (byte strings escaped), the way
/// rtpengine's documentation writes messages. For logs and test failures.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "\"{}\"", b.escape_ascii()),
            Value::List(l) => {
                f.write_str("[")?;
                for (n, item) in l.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Dict(d) => {
                f.write_str("{")?;
                for (n, (k, item)) in d.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "\"{}\": {item}", k.escape_ascii())?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn round_trip(input: &[u8]) {
        let v = decode(input).unwrap();
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out, input, "re-encoding {}", input.escape_ascii());
    }

    #[test]
    fn bencode_decodes_each_kind() {
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(decode(b"i-42e").unwrap(), Value::Int(-42));
        assert_eq!(decode(b"i9223372036854775807e").unwrap(), Value::Int(i64::MAX));
        assert_eq!(decode(b"i-9223372036854775808e").unwrap(), Value::Int(i64::MIN));
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(b""));
        assert_eq!(decode(b"4:ping").unwrap(), Value::Bytes(b"ping"));
        assert_eq!(decode(b"le").unwrap(), Value::List(vec![]));
        assert_eq!(decode(b"de").unwrap(), Value::Dict(vec![]));
        assert_eq!(
            decode(b"l3:IP49:192.0.2.1e").unwrap(),
            Value::List(vec![Value::Bytes(b"IP4"), Value::Bytes(b"192.0.2.1")])
        );
    }

    #[test]
    fn bencode_dict_keeps_wire_order_and_duplicates() {
        let v = decode(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![
                (b"b", Value::Int(1)),
                (b"a", Value::Int(2)),
                (b"b", Value::Int(3))
            ])
        );
        assert_eq!(v.get("b"), Some(&Value::Int(1)));
        assert_eq!(v.get("a").and_then(Value::as_int), Some(2));
        assert_eq!(v.get("c"), None);
        round_trip(b"d1:bi1e1:ai2e1:bi3ee");
    }

    #[test]
    fn bencode_accessors() {
        let v = decode(b"d7:command4:ping4:listl1:xi7ee3:bin2:\xff\xfee").unwrap();
        assert_eq!(v.get("command").and_then(Value::as_str), Some("ping"));
        assert_eq!(v.get("list").and_then(Value::as_list).map(<[_]>::len), Some(2));
        assert_eq!(v.get("bin").and_then(Value::as_str), None);
        assert_eq!(v.get("bin").and_then(Value::as_bytes), Some(&b"\xff\xfe"[..]));
        assert_eq!(v.get("command").and_then(Value::as_int), None);
        assert_eq!(Value::Int(3).get("x"), None);
        assert_eq!(v.kind(), "dictionary");
        assert_eq!(
            v.to_string(),
            r#"{"command": "ping", "list": ["x", 7], "bin": "\xff\xfe"}"#
        );
    }

    #[test]
    fn bencode_round_trips_ng_messages() {
        round_trip(b"d7:command4:pinge");
        round_trip(b"d6:result4:ponge");
        round_trip(b"d8:supportsl10:load limite7:call-id3:abc13:received-froml3:IP49:192.0.2.1e8:from-tag2:ft7:command6:deletee");
        round_trip(b"d6:result5:error12:error-reason7:Unknowne");
    }

    #[test]
    fn bencode_owned_helpers() {
        let mut d = OwnedValue::dict([("result", "ok".into()), ("n", 5i64.into())]);
        assert!(d.insert("l", OwnedValue::string_list(["a", "bc"])));
        assert!(!OwnedValue::Int(1).insert("x", OwnedValue::Int(2)));
        assert_eq!(d.get("n"), Some(&OwnedValue::Int(5)));
        let mut out = Vec::new();
        encode_owned(&d, &mut out);
        assert_eq!(out, b"d6:result2:ok1:ni5e1:ll1:a2:bcee");
        assert_eq!(decode(&out).unwrap().to_owned_value(), d);
        let mut again = Vec::new();
        encode(&d.as_value(), &mut again);
        assert_eq!(again, out);
        assert_eq!(OwnedValue::from(String::from("x")), OwnedValue::Bytes(b"x".to_vec()));
        assert_eq!(
            OwnedValue::from(vec![OwnedValue::Int(1)]),
            OwnedValue::List(vec![OwnedValue::Int(1)])
        );
    }

    #[test]
    fn bencode_errors_name_kind_and_offset() {
        use BencodeError::*;
        let cases: &[(&[u8], BencodeError)] = &[
            (b"", UnexpectedEnd { offset: 0 }),
            (b"i12", UnexpectedEnd { offset: 3 }),
            (b"l", UnexpectedEnd { offset: 1 }),
            (b"d3:key", UnexpectedEnd { offset: 6 }),
            (b"4", UnexpectedEnd { offset: 1 }),
            (b"x", UnexpectedByte { offset: 0, byte: b'x' }),
            (b"lxe", UnexpectedByte { offset: 1, byte: b'x' }),
            (b"ie", InvalidInteger { offset: 0 }),
            (b"i-e", InvalidInteger { offset: 0 }),
            (b"i-0e", InvalidInteger { offset: 0 }),
            (b"i03e", InvalidInteger { offset: 0 }),
            (b"i+3e", InvalidInteger { offset: 0 }),
            (b"i1x2e", InvalidInteger { offset: 0 }),
            (b"i9223372036854775808e", IntegerOverflow { offset: 0 }),
            (b"i-9223372036854775809e", IntegerOverflow { offset: 0 }),
            (b"i12345678901234567890e", IntegerOverflow { offset: 0 }),
            (b"04:ping", InvalidLength { offset: 0 }),
            (b"4x", InvalidLength { offset: 0 }),
            (b"12345678901:x", InvalidLength { offset: 0 }),
            (
                b"l5:abce",
                LengthExceedsInput {
                    offset: 1,
                    length: 5,
                    remaining: 4,
                },
            ),
            (
                b"4294967295:x",
                LengthExceedsInput {
                    offset: 0,
                    length: 4_294_967_295,
                    remaining: 1,
                },
            ),
            (b"di1ei2ee", NonStringKey { offset: 1 }),
            (b"dle", NonStringKey { offset: 1 }),
            (b"i1ei2e", TrailingData { offset: 3 }),
            (b"4:ping ", TrailingData { offset: 6 }),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(input).as_ref(), Err(expected), "input {}", input.escape_ascii());
        }
        let msg = decode(b"l5:abce").unwrap_err().to_string();
        assert_eq!(msg, "bencode: string of 5 bytes at byte 1 exceeds the 4 bytes left");
    }

    #[test]
    fn bencode_depth_limit() {
        let ok = [&b"l".repeat(MAX_DEPTH)[..], &b"e".repeat(MAX_DEPTH)[..]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [&b"l".repeat(MAX_DEPTH + 1)[..], &b"e".repeat(MAX_DEPTH + 1)[..]].concat();
        assert_eq!(decode(&deep), Err(BencodeError::TooDeep { offset: MAX_DEPTH }));
        // A hostile input nests far deeper; it must fail fast, not overflow the stack.
        let hostile = b"l".repeat(100_000);
        assert!(matches!(decode(&hostile), Err(BencodeError::TooDeep { .. })));
    }

    fn owned_value() -> impl Strategy<Value = OwnedValue> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(OwnedValue::Int),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(OwnedValue::Bytes),
        ];
        leaf.prop_recursive(MAX_DEPTH as u32 - 1, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
                proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..8), inner), 0..6)
                    .prop_map(OwnedValue::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn bencode_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = decode(&data) {
                // Canonical input only: re-encoding gives the input back.
                let mut out = Vec::new();
                encode(&v, &mut out);
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn bencode_decode_never_panics_on_near_valid(
            base in owned_value(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = Vec::new();
            encode_owned(&base, &mut bytes);
            let mut mutated = bytes.clone();
            let at = flip.index(mutated.len());
            mutated[at] = byte;
            let _ = decode(&mutated);
            let _ = decode(&bytes[..cut.index(bytes.len())]);
        }

        #[test]
        fn bencode_decode_of_encode_is_identity(v in owned_value()) {
            let mut bytes = Vec::new();
            encode_owned(&v, &mut bytes);
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.to_owned_value(), v.clone());
            prop_assert_eq!(decoded, v.as_value());
        }
    }
}
