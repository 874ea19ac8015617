//! DTLS-SRTP keying (RFC 5764) over [`dimpl`], sans-IO.
//!
//! [`DtlsTransport`] wraps one DTLS 1.2 association. We are the DTLS
//! *server* (`a=setup:passive` in our answer, RFC 5763 §5; with
//! `actpass` in our offer Chrome answers `active`). Feed it the datagrams
//! the relay classified as DTLS (RFC 7983: first byte 20–63); it gives
//! back records to send and, once the handshake is done **and** the
//! peer's certificate matched the `a=fingerprint` of its SDP (RFC 8122 §5,
//! RFC 5763 §5), one [`DtlsOutput::Connected`] with the SRTP keys. A
//! mismatch is [`DtlsError::FingerprintMismatch`]: no keys ever leave this
//! type, so no media flows.
//!
//! Drain contract: after [`DtlsTransport::new`], every
//! [`DtlsTransport::handle_input`] and every
//! [`DtlsTransport::handle_timeout`], call [`DtlsTransport::poll_output`]
//! until `None` and arm a timer for [`DtlsTransport::poll_timeout`]
//! (handshake retransmissions). An error is fatal for the association.
//!
//! Keying material layout (RFC 5764 §4.2): `client_write_key |
//! server_write_key | client_write_salt | server_write_salt`, exported
//! with the label `EXTRACTOR-dtls_srtp`. The DTLS client's write key
//! protects what the client sends: as the server, we decrypt the browser's
//! SRTP with [`SrtpKeying::client_write`] and encrypt ours with
//! [`SrtpKeying::server_write`] ([`SrtpKeying::remote`] and
//! [`SrtpKeying::local`] pick them by our role).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;

/// A certificate's hash algorithm in `a=fingerprint` (RFC 8122 §5; the
/// names are those of the IANA "Hash Function Textual Names" registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// `sha-1` (still accepted from peers, never produced).
    Sha1,
    /// `sha-256`: what browsers and we use.
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl HashAlgorithm {
    /// The SDP name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha-1",
            HashAlgorithm::Sha256 => "sha-256",
            HashAlgorithm::Sha384 => "sha-384",
            HashAlgorithm::Sha512 => "sha-512",
        }
    }

    /// Parses an SDP name (case-insensitive, RFC 8122 §5).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sha-1" => HashAlgorithm::Sha1,
            "sha-256" => HashAlgorithm::Sha256,
            "sha-384" => HashAlgorithm::Sha384,
            "sha-512" => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlgorithm::Sha256 => &digest::SHA256,
            HashAlgorithm::Sha384 => &digest::SHA384,
            HashAlgorithm::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// A certificate fingerprint: `a=fingerprint:sha-256 AB:CD:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The hash function.
    pub algorithm: HashAlgorithm,
    /// The digest of the DER certificate.
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(algorithm: HashAlgorithm, der: &[u8]) -> Self {
        Self {
            algorithm,
            value: digest::digest(algorithm.digest(), der).as_ref().to_vec(),
        }
    }

    /// Parses the value of `a=fingerprint:` (`sha-256 AB:CD:...`): a known
    /// hash name, then exactly its length in colon-separated hex pairs.
    pub fn parse(s: &str) -> Option<Self> {
        let (name, hex) = s.trim().split_once(' ')?;
        let algorithm = HashAlgorithm::from_name(name)?;
        let value: Option<Vec<u8>> = hex
            .trim()
            .split(':')
            .map(|p| {
                if p.len() == 2 {
                    u8::from_str_radix(p, 16).ok()
                } else {
                    None
                }
            })
            .collect();
        let value = value?;
        (value.len() == algorithm.len()).then_some(Self { algorithm, value })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm.name())?;
        for (i, b) in self.value.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ":" })?;
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// DTLS failures. Every one ends the association: tear it down, send no media.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The peer's certificate does not match the fingerprint in its SDP.
    #[error("peer certificate fingerprint {actual} does not match the SDP's {expected}")]
    FingerprintMismatch {
        /// From the SDP.
        expected: String,
        /// Of the certificate presented.
        actual: String,
    },
    /// The handshake completed without a peer certificate.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// The handshake completed without an SRTP profile (no `use_srtp`, RFC 5764 §4.1.1).
    #[error("no SRTP protection profile negotiated")]
    NoSrtpProfile,
    /// The negotiated SRTP profile or its keying material is not one we use.
    #[error("unsupported SRTP profile or keying material")]
    UnsupportedProfile,
    /// The DTLS engine failed (peer garbage, timeout, alert, ...).
    #[error("DTLS: {0}")]
    Engine(String),
    /// Generating the certificate failed.
    #[error("cannot generate a DTLS certificate: {0}")]
    Certificate(String),
    /// The engine's configuration was rejected.
    #[error("DTLS configuration: {0}")]
    Config(String),
}

/// Our certificate and key, generated at start (ECDSA P-256, self-signed:
/// WebRTC authenticates it by the SDP fingerprint, not by a CA).
#[derive(Clone)]
pub struct DtlsCert {
    inner: dimpl::DtlsCertificate,
    fingerprint: Fingerprint,
}

impl fmt::Debug for DtlsCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCert")
            .field("fingerprint", &self.fingerprint.to_string())
            .finish()
    }
}

impl DtlsCert {
    /// Generates a fresh self-signed certificate (rcgen, through dimpl).
    pub fn generate() -> Result<Self, DtlsError> {
        let inner = dimpl::certificate::generate_self_signed_certificate()
            .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        Ok(Self::from_parts(inner.certificate, inner.private_key))
    }

    /// Uses an existing certificate and PKCS#8 private key, both DER.
    pub fn from_parts(certificate_der: Vec<u8>, private_key_der: Vec<u8>) -> Self {
        let fingerprint = Fingerprint::of_der(HashAlgorithm::Sha256, &certificate_der);
        Self {
            inner: dimpl::DtlsCertificate {
                certificate: certificate_der,
                private_key: private_key_der,
            },
            fingerprint,
        }
    }

    /// Our SHA-256 fingerprint, for `a=fingerprint`.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.inner.certificate
    }
}

/// Which side of the handshake we play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// DTLS server: `a=setup:passive` (ours with browsers).
    Server,
    /// DTLS client: `a=setup:active` (tests, and peers that answer passive).
    Client,
}

/// The negotiated SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2).
/// Names match the relay's `SrtpProfile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80`.
    AesCm128HmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM`.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM` (what dimpl picks first when Chrome offers it).
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpProfile::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes (RFC 3711 §8.2: 14; RFC 7714 §12: 12).
    pub fn salt_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 14,
            _ => 12,
        }
    }

    /// The profile's name in the RFC 5764 registry.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "SRTP_AES128_CM_HMAC_SHA1_80",
            SrtpProfile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
        }
    }

    fn from_dimpl(p: dimpl::SrtpProfile) -> Option<Self> {
        Some(match p {
            dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::AesCm128HmacSha1_80,
            dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
            dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
            _ => return None,
        })
    }
}

/// One direction's SRTP master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// Master key.
    pub key: Vec<u8>,
    /// Master salt.
    pub salt: Vec<u8>,
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpKey(<redacted>)")
    }
}

/// The SRTP keys exported by the handshake (RFC 5764 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    /// The protection profile.
    pub profile: SrtpProfile,
    /// What the DTLS client encrypts with.
    pub client_write: SrtpKey,
    /// What the DTLS server encrypts with.
    pub server_write: SrtpKey,
    /// Our role in the handshake that produced these.
    pub role: DtlsRole,
}

impl SrtpKeying {
    /// Splits exported keying material (RFC 5764 §4.2).
    pub fn from_material(profile: SrtpProfile, material: &[u8], role: DtlsRole) -> Option<Self> {
        let (k, s) = (profile.key_len(), profile.salt_len());
        if material.len() != 2 * (k + s) {
            return None;
        }
        let (ck, rest) = material.split_at(k);
        let (sk, rest) = rest.split_at(k);
        let (cs, ss) = rest.split_at(s);
        Some(Self {
            profile,
            client_write: SrtpKey {
                key: ck.to_vec(),
                salt: cs.to_vec(),
            },
            server_write: SrtpKey {
                key: sk.to_vec(),
                salt: ss.to_vec(),
            },
            role,
        })
    }

    /// Our outbound key (the relay endpoint's `srtp_out`).
    pub fn local(&self) -> &SrtpKey {
        match self.role {
            DtlsRole::Server => &self.server_write,
            DtlsRole::Client => &self.client_write,
        }
    }

    /// The peer's key: decrypts what it sends (the relay endpoint's `srtp_in`).
    pub fn remote(&self) -> &SrtpKey {
        match self.role {
            DtlsRole::Server => &self.client_write,
            DtlsRole::Client => &self.server_write,
        }
    }
}

/// Output of [`DtlsTransport::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DtlsOutput {
    /// A datagram of DTLS records to send to the peer (the nominated ICE address).
    Transmit(Vec<u8>),
    /// Handshake done, peer fingerprint verified: hand these keys to the relay.
    Connected(SrtpKeying),
    /// The peer closed the association (close_notify).
    Closed,
}

/// State of a [`DtlsTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsState {
    /// Handshake in progress.
    Handshaking,
    /// Keys exported.
    Connected,
    /// Closed by the peer.
    Closed,
    /// Failed: nothing more will be sent or exported.
    Failed,
}

/// How much data a datagram can carry; dimpl asks for more if needed.
const POLL_BUF: usize = 2048;
/// Bound on one drain of the engine (it always ends with a timeout).
const MAX_POLLS: usize = 256;

/// One DTLS-SRTP association. See the module docs.
pub struct DtlsTransport {
    dtls: dimpl::Dtls,
    role: DtlsRole,
    expected: Fingerprint,
    peer: Option<Fingerprint>,
    connected: bool,
    material: Option<(dimpl::SrtpProfile, Vec<u8>)>,
    state: DtlsState,
    timeout: Option<Instant>,
    out: VecDeque<DtlsOutput>,
    buf: Vec<u8>,
    /// Application data received (data channels are not supported): dropped.
    dropped_app_data: u64,
}

impl fmt::Debug for DtlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsTransport")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("expected", &self.expected.to_string())
            .finish()
    }
}

impl DtlsTransport {
    /// A new association in `role`, with our `cert`, expecting the peer to
    /// present a certificate matching `remote_fingerprint` (from its SDP).
    pub fn new(
        role: DtlsRole,
        cert: &DtlsCert,
        remote_fingerprint: Fingerprint,
        now: Instant,
    ) -> Result<Self, DtlsError> {
        let config = dimpl::Config::builder()
            .require_client_certificate(true)
            .build()
            .map_err(|e| DtlsError::Config(e.to_string()))?;
        let mut dtls = dimpl::Dtls::new_12(Arc::new(config), cert.inner.clone(), now);
        dtls.set_active(role == DtlsRole::Client);
        let mut t = Self {
            dtls,
            role,
            expected: remote_fingerprint,
            peer: None,
            connected: false,
            material: None,
            state: DtlsState::Handshaking,
            timeout: None,
            out: VecDeque::new(),
            buf: vec![0; POLL_BUF],
            dropped_app_data: 0,
        };
        if role == DtlsRole::Client {
            // The client speaks first: ClientHello on the first timeout.
            t.dtls.handle_timeout(now).map_err(|e| t.fail(e))?;
        }
        t.drain()?;
        Ok(t)
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// The state.
    pub fn state(&self) -> DtlsState {
        self.state
    }

    /// The fingerprint of the certificate the peer presented, once it has.
    pub fn peer_fingerprint(&self) -> Option<&Fingerprint> {
        self.peer.as_ref()
    }

    /// Application-data records received and dropped (no data channels).
    pub fn dropped_application_data(&self) -> u64 {
        self.dropped_app_data
    }

    fn fail(&mut self, e: dimpl::Error) -> DtlsError {
        self.state = DtlsState::Failed;
        self.out.clear();
        self.timeout = None;
        DtlsError::Engine(e.to_string())
    }

    fn fail_with(&mut self, e: DtlsError) -> DtlsError {
        self.state = DtlsState::Failed;
        self.out.clear();
        self.timeout = None;
        e
    }

    /// Handles one datagram the relay classified as DTLS.
    pub fn handle_input(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DtlsError> {
        if matches!(self.state, DtlsState::Failed | DtlsState::Closed) {
            return Ok(());
        }
        // dimpl wants its clock moved before input at a new instant.
        self.dtls.handle_timeout(now).map_err(|e| self.fail(e))?;
        self.dtls.handle_packet(datagram).map_err(|e| self.fail(e))?;
        self.drain()
    }

    /// Advances time (retransmissions, the handshake deadline).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if matches!(self.state, DtlsState::Failed | DtlsState::Closed) {
            return Ok(());
        }
        self.dtls.handle_timeout(now).map_err(|e| self.fail(e))?;
        self.drain()
    }

    /// When to call [`DtlsTransport::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<DtlsOutput> {
        self.out.pop_front()
    }

    fn drain(&mut self) -> Result<(), DtlsError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.drain_into(&mut buf);
        self.buf = buf;
        r
    }

    fn drain_into(&mut self, buf: &mut Vec<u8>) -> Result<(), DtlsError> {
        for _ in 0..MAX_POLLS {
            match self.dtls.poll_output(buf) {
                dimpl::Output::Packet(p) => self.out.push_back(DtlsOutput::Transmit(p.to_vec())),
                dimpl::Output::BufferTooSmall { needed } => {
                    if needed > 65_536 {
                        return Err(self.fail_with(DtlsError::Engine("record too large".into())));
                    }
                    buf.resize(needed, 0);
                }
                dimpl::Output::Timeout(t) => {
                    self.timeout = (self.state == DtlsState::Handshaking).then_some(t);
                    return Ok(());
                }
                dimpl::Output::PeerCert(der) => {
                    let actual = Fingerprint::of_der(self.expected.algorithm, der);
                    if actual != self.expected {
                        let e = DtlsError::FingerprintMismatch {
                            expected: self.expected.to_string(),
                            actual: actual.to_string(),
                        };
                        return Err(self.fail_with(e));
                    }
                    self.peer = Some(actual);
                }
                dimpl::Output::KeyingMaterial(km, profile) => {
                    self.material = Some((profile, km.to_vec()));
                    self.try_connected()?;
                }
                dimpl::Output::Connected => {
                    self.connected = true;
                    self.try_connected()?;
                }
                dimpl::Output::ApplicationData(_) => self.dropped_app_data += 1,
                dimpl::Output::CloseNotify => {
                    self.state = DtlsState::Closed;
                    self.timeout = None;
                    self.out.push_back(DtlsOutput::Closed);
                    return Ok(());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Releases the keys once connected, keyed and verified, exactly once.
    fn try_connected(&mut self) -> Result<(), DtlsError> {
        if self.state != DtlsState::Handshaking || !self.connected {
            return Ok(());
        }
        if self.peer.is_none() {
            return Err(self.fail_with(DtlsError::NoPeerCertificate));
        }
        let Some((profile, material)) = self.material.take() else {
            // dimpl may report Connected before the keying material: wait for it.
            return Ok(());
        };
        let Some(profile) = SrtpProfile::from_dimpl(profile) else {
            return Err(self.fail_with(DtlsError::UnsupportedProfile));
        };
        let Some(keying) = SrtpKeying::from_material(profile, &material, self.role) else {
            return Err(self.fail_with(DtlsError::UnsupportedProfile));
        };
        self.state = DtlsState::Connected;
        self.out.push_back(DtlsOutput::Connected(keying));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs both sides against each other in memory until both are done.
    fn handshake(
        server: &mut DtlsTransport,
        client: &mut DtlsTransport,
        mut now: Instant,
    ) -> (
        Result<Option<SrtpKeying>, DtlsError>,
        Result<Option<SrtpKeying>, DtlsError>,
    ) {
        let (mut sk, mut ck) = (None, None);
        for _ in 0..200 {
            let mut progressed = false;
            while let Some(o) = client.poll_output() {
                progressed = true;
                match o {
                    DtlsOutput::Transmit(p) => {
                        if let Err(e) = server.handle_input(now, &p) {
                            return (Err(e), Ok(ck));
                        }
                    }
                    DtlsOutput::Connected(k) => ck = Some(k),
                    DtlsOutput::Closed => {}
                }
            }
            while let Some(o) = server.poll_output() {
                progressed = true;
                match o {
                    DtlsOutput::Transmit(p) => {
                        if let Err(e) = client.handle_input(now, &p) {
                            return (Ok(sk), Err(e));
                        }
                    }
                    DtlsOutput::Connected(k) => sk = Some(k),
                    DtlsOutput::Closed => {}
                }
            }
            if sk.is_some() && ck.is_some() {
                break;
            }
            if !progressed {
                now += Duration::from_millis(100);
                let _ = client.handle_timeout(now);
                let _ = server.handle_timeout(now);
            }
        }
        (Ok(sk), Ok(ck))
    }

    #[test]
    fn handshake_exports_the_same_keys_on_both_sides() {
        let now = Instant::now();
        let (sc, cc) = (DtlsCert::generate().expect("cert"), DtlsCert::generate().expect("cert"));
        assert_ne!(sc.fingerprint(), cc.fingerprint());
        let mut server = DtlsTransport::new(DtlsRole::Server, &sc, cc.fingerprint().clone(), now).expect("server");
        let mut client = DtlsTransport::new(DtlsRole::Client, &cc, sc.fingerprint().clone(), now).expect("client");
        let (s, c) = handshake(&mut server, &mut client, now);
        let s = s.expect("server ok").expect("server keys");
        let c = c.expect("client ok").expect("client keys");
        assert_eq!(s.profile, c.profile);
        assert_eq!(s.client_write, c.client_write);
        assert_eq!(s.server_write, c.server_write);
        assert_ne!(s.client_write, s.server_write);
        assert_eq!(s.local(), c.remote());
        assert_eq!(s.remote(), c.local());
        assert_eq!(s.local().key.len(), s.profile.key_len());
        assert_eq!(s.local().salt.len(), s.profile.salt_len());
        assert_eq!(server.state(), DtlsState::Connected);
        assert_eq!(server.peer_fingerprint(), Some(cc.fingerprint()));
        assert_eq!(client.peer_fingerprint(), Some(sc.fingerprint()));
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn wrong_fingerprint_fails_without_keys() {
        let now = Instant::now();
        let (sc, cc, other) = (
            DtlsCert::generate().expect("cert"),
            DtlsCert::generate().expect("cert"),
            DtlsCert::generate().expect("cert"),
        );
        // The server expects someone else's certificate.
        let mut server = DtlsTransport::new(DtlsRole::Server, &sc, other.fingerprint().clone(), now).expect("server");
        let mut client = DtlsTransport::new(DtlsRole::Client, &cc, sc.fingerprint().clone(), now).expect("client");
        let (s, _) = handshake(&mut server, &mut client, now);
        assert!(matches!(s, Err(DtlsError::FingerprintMismatch { .. })), "{s:?}");
        assert_eq!(server.state(), DtlsState::Failed);
        assert_eq!(server.poll_output(), None);
        // Nothing more comes out of a failed association.
        assert_eq!(server.handle_input(now, &[22, 254, 253, 0, 0]), Ok(()));
        assert_eq!(server.poll_output(), None);

        // And the client side refuses a server with the wrong certificate.
        let mut server = DtlsTransport::new(DtlsRole::Server, &sc, cc.fingerprint().clone(), now).expect("server");
        let mut client = DtlsTransport::new(DtlsRole::Client, &cc, other.fingerprint().clone(), now).expect("client");
        let (s, c) = handshake(&mut server, &mut client, now);
        assert!(matches!(c, Err(DtlsError::FingerprintMismatch { .. })), "{c:?}");
        assert!(!matches!(s, Ok(Some(_))), "the server never completes: {s:?}");
    }

    #[test]
    fn garbage_does_not_panic() {
        let now = Instant::now();
        let sc = DtlsCert::generate().expect("cert");
        let mut server = DtlsTransport::new(DtlsRole::Server, &sc, sc.fingerprint().clone(), now).expect("server");
        for d in [
            &[][..],
            &[22][..],
            &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255][..],
            &[63; 40][..],
        ] {
            let _ = server.handle_input(now, d);
        }
    }

    #[test]
    fn fingerprint_text_round_trip() {
        let f = Fingerprint::of_der(HashAlgorithm::Sha256, b"not really a certificate");
        let s = f.to_string();
        assert!(s.starts_with("sha-256 "));
        assert_eq!(s.len(), 8 + 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&s), Some(f.clone()));
        assert_eq!(Fingerprint::parse(&s.to_lowercase()), Some(f));
        assert_eq!(Fingerprint::parse("sha-256 AB:CD"), None);
        assert_eq!(Fingerprint::parse("md5 AB:CD"), None);
        assert_eq!(Fingerprint::parse("sha-256"), None);
    }

    #[test]
    fn keying_material_layout() {
        let m: Vec<u8> = (0..60).collect();
        let k = SrtpKeying::from_material(SrtpProfile::AesCm128HmacSha1_80, &m, DtlsRole::Server).expect("60 bytes");
        assert_eq!(k.client_write.key, (0..16).collect::<Vec<u8>>());
        assert_eq!(k.server_write.key, (16..32).collect::<Vec<u8>>());
        assert_eq!(k.client_write.salt, (32..46).collect::<Vec<u8>>());
        assert_eq!(k.server_write.salt, (46..60).collect::<Vec<u8>>());
        assert_eq!(k.local(), &k.server_write);
        assert!(SrtpKeying::from_material(SrtpProfile::AeadAes128Gcm, &m, DtlsRole::Server).is_none());
        assert!(SrtpKeying::from_material(SrtpProfile::AeadAes128Gcm, &m[..56], DtlsRole::Server).is_some());
    }
}
