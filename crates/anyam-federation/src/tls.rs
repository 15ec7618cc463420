//! Mutual TLS between partner nodes, each pinned to the other's Ed25519
//! node keys, with no certificate authority.
//!
//! # How a peer is recognized
//!
//! Every node presents a self-signed X.509 certificate whose subject public
//! key is its current node key ([`NodeCertificate`]). The certificate is
//! only a container for that key: it may be made afresh at every start or
//! key change ([`LocalCertificate`] makes it again when the key rotates
//! while the node serves, for the next connection on), and
//! the node id written into its subject and alternative name is there for
//! people reading logs and packet captures. Nothing reads it to decide.
//!
//! What decides is the key. The verifiers here take the certificate's
//! SubjectPublicKeyInfo, require it to be Ed25519, compute its key id (the
//! hex SHA-256 of the 32 key bytes, as everywhere in Anyam) and ask the
//! caller's [`KeyPins`]:
//!
//! - a client, which dials one partner, accepts the server iff the pins
//!   accept the key as an active key of that partner's node id
//!   ([`client_config`]);
//! - a server accepts a client iff the pins map the key to a partner whose
//!   active key it is ([`server_config`]); [`peer_node`] tells the server,
//!   after the handshake, which partner that was.
//!
//! The handshake signature (TLS 1.3 `CertificateVerify`) is checked with
//! rustls's own verification over the certificate's key, so a peer that
//! replays someone else's certificate without the private key fails. Only
//! Ed25519 signatures are offered and accepted.
//!
//! # Choices
//!
//! - **TLS 1.3 only.** Both ends are Anyam nodes; there is no older peer
//!   to accommodate.
//! - **No session resumption.** A resumed session skips certificate
//!   verification, so a key revoked since the first connection would be
//!   let back in. Each connection performs a full handshake.
//! - **Validity dates and chains are ignored.** Whether a key may speak
//!   for a node, and since when, is the keyring's business (signed
//!   rotations and revocations), not a date a certificate claims. Extra
//!   certificates a peer sends after its own are ignored.
//! - **A connection is checked when it opens.** A revocation learned
//!   while a connection is open does not close it; [`peer_node`] answers
//!   from the pins as they are when asked, so a server can check again per
//!   request.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use anyam_trust::{KeyStatus, Keyring, Keyrings, key_id};
use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::{ALGORITHM_OID, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};

use crate::error::{FederationError, Result};

/// Which node keys speak for which partner, now.
///
/// The verifiers ask this on every handshake, so an implementation must
/// answer from its current knowledge (a rotation or revocation imported a
/// second ago counts). [`KeyringPins`] answers from `anyam-trust`
/// keyrings.
pub trait KeyPins: fmt::Debug + Send + Sync {
    /// Whether `key_id` is an active key of the partner `node_id` now.
    fn accepts(&self, node_id: &str, key_id: &str) -> bool;

    /// The partner whose active key `key_id` is now, if exactly one is.
    fn node_of(&self, key_id: &str) -> Option<String>;

    /// For error messages only, never to accept: the node `key_id` is or
    /// was a key of, and its state now. The default knows nothing, which
    /// reports every refused key as unknown.
    fn status(&self, key_id: &str) -> Option<(String, KeyStatus)> {
        let _ = key_id;
        None
    }
}

/// [`KeyPins`] over keyrings: a key is accepted for a node when the node's
/// keyring says it is [`KeyStatus::Active`] at the moment of the question.
/// Retired keys (rotated away from), revoked keys and keys not yet valid
/// are refused.
///
/// The set can be replaced or updated while servers and clients use it.
/// Put in it the partners this node should talk to; leave out the local
/// node's own keyring unless connecting to itself is wanted.
#[derive(Debug, Default)]
pub struct KeyringPins {
    rings: RwLock<Keyrings>,
}

impl KeyringPins {
    pub fn new(rings: Keyrings) -> Self {
        KeyringPins {
            rings: RwLock::new(rings),
        }
    }

    /// Pin these keyrings instead of the current ones.
    pub fn replace(&self, rings: Keyrings) {
        *self.write() = rings;
    }

    /// Pin one node's keyring (replacing what was pinned for that node).
    pub fn insert(&self, ring: Keyring) {
        self.write().insert(ring.node_id().to_string(), ring);
    }

    /// Stop accepting a node.
    pub fn remove(&self, node_id: &str) {
        self.write().remove(node_id);
    }

    // A panic elsewhere while holding the lock leaves whole keyrings in
    // the map (updates replace entries), so a poisoned lock is still
    // consistent and is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Keyrings> {
        self.rings.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Keyrings> {
        self.rings.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl KeyPins for KeyringPins {
    fn accepts(&self, node_id: &str, key_id: &str) -> bool {
        let now = Timestamp::now();
        self.read().get(node_id).is_some_and(|ring| {
            // The map key is the caller's; the keyring's own id is derived
            // from its recovery key, so that is the one that must match.
            ring.node_id() == node_id && ring.status_at(key_id, now) == KeyStatus::Active
        })
    }

    fn node_of(&self, key_id: &str) -> Option<String> {
        let now = Timestamp::now();
        let rings = self.read();
        let mut owners = rings
            .values()
            .filter(|ring| ring.status_at(key_id, now) == KeyStatus::Active)
            .map(|ring| ring.node_id().to_string());
        let owner = owners.next()?;
        // A key active for two nodes names neither: refuse rather than
        // guess which partner is calling.
        match owners.next() {
            None => Some(owner),
            Some(_) => None,
        }
    }

    fn status(&self, key_id: &str) -> Option<(String, KeyStatus)> {
        let now = Timestamp::now();
        self.read()
            .values()
            .find(|ring| ring.get(key_id).is_some())
            .map(|ring| (ring.node_id().to_string(), ring.status_at(key_id, now)))
    }
}

/// The local node's TLS identity: a self-signed certificate over its node
/// key, and that key for the handshake.
pub struct NodeCertificate {
    node_id: String,
    key_id: String,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for NodeCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCertificate")
            .field("node_id", &self.node_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl NodeCertificate {
    /// Make a self-signed certificate for `node_key`, naming `node_id` in
    /// its subject common name and in a `urn:anyam:node:` URI alternative
    /// name (for diagnostics: peers do not read them). Cheap enough to do
    /// at every start and after every key change.
    pub fn generate(node_id: &str, node_key: &SigningKey) -> Result<Self> {
        let cert_err = |e: &dyn fmt::Display| FederationError::Certificate(e.to_string());
        let pkcs8 = node_key.to_pkcs8_der().map_err(|e| cert_err(&e))?;
        let key = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(|e| cert_err(&e))?;
        let mut params = rcgen::CertificateParams::default();
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, node_id);
        params.distinguished_name = name;
        let uri = rcgen::Ia5String::try_from(format!("urn:anyam:node:{node_id}"))
            .map_err(|e| cert_err(&e))?;
        params.subject_alt_names = vec![rcgen::SanType::URI(uri)];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key_pair).map_err(|e| cert_err(&e))?;
        Ok(NodeCertificate {
            node_id: node_id.to_string(),
            key_id: key_id(&node_key.verifying_key()),
            cert: cert.der().clone(),
            key,
        })
    }

    /// The node id written in the certificate.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The id of the key the certificate carries.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The partner's node id (the id of its recovery key).
    pub node_id: String,
    /// The id of the node key it proved it holds.
    pub key_id: String,
}

/// The Ed25519 key a certificate carries, and its key id. Only the
/// SubjectPublicKeyInfo is read; nothing else in the certificate matters.
pub fn certificate_key(cert: &CertificateDer<'_>) -> Result<(VerifyingKey, String)> {
    let malformed = |e: &dyn fmt::Display| FederationError::MalformedCertificate(e.to_string());
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| malformed(&e))?;
    let spki = parsed.subject_public_key_info();
    let info = SubjectPublicKeyInfoRef::try_from(spki.as_ref()).map_err(|e| malformed(&e))?;
    if info.algorithm.oid != ALGORITHM_OID {
        return Err(FederationError::NotEd25519 {
            algorithm: info.algorithm.oid.to_string(),
        });
    }
    let key = VerifyingKey::from_public_key_der(spki.as_ref()).map_err(|e| malformed(&e))?;
    let id = key_id(&key);
    Ok((key, id))
}

/// The partner a client certificate speaks for, if the pins accept its key
/// now. This is the server side's decision.
pub fn identify_client(cert: &CertificateDer<'_>, pins: &dyn KeyPins) -> Result<Peer> {
    let (_, key_id) = certificate_key(cert)?;
    match pins.node_of(&key_id) {
        Some(node_id) if pins.accepts(&node_id, &key_id) => Ok(Peer { node_id, key_id }),
        _ => Err(refused(pins, &key_id, None)),
    }
}

/// Whether a server certificate speaks for `expected` (a node id) now.
/// This is the client side's decision.
pub fn identify_partner(
    cert: &CertificateDer<'_>,
    expected: &str,
    pins: &dyn KeyPins,
) -> Result<Peer> {
    let (_, key_id) = certificate_key(cert)?;
    if pins.accepts(expected, &key_id) {
        return Ok(Peer {
            node_id: expected.to_string(),
            key_id,
        });
    }
    Err(refused(pins, &key_id, Some(expected)))
}

/// The partner on the other end of a server connection, from the
/// certificates the handshake received (`ServerConnection::peer_certificates`).
/// The pins are asked again, so the answer holds for now, not only for
/// when the connection opened.
pub fn peer_node(certs: Option<&[CertificateDer<'_>]>, pins: &dyn KeyPins) -> Result<Peer> {
    let cert = certs
        .and_then(|c| c.first())
        .ok_or(FederationError::NoCertificate)?;
    identify_client(cert, pins)
}

/// The most precise reason a key was refused.
fn refused(pins: &dyn KeyPins, key_id: &str, expected: Option<&str>) -> FederationError {
    let key_id = key_id.to_string();
    if let Some(expected) = expected {
        // Whose key it is (or was), if the pins know: an answer for another
        // node says more than the key's state would.
        let owner = pins
            .node_of(&key_id)
            .or_else(|| pins.status(&key_id).map(|(node, _)| node));
        if let Some(found) = owner
            && found != expected
        {
            return FederationError::WrongNode {
                expected: expected.to_string(),
                found,
                key_id,
            };
        }
    }
    match pins.status(&key_id) {
        Some((node_id, KeyStatus::Revoked)) => FederationError::RevokedKey { node_id, key_id },
        Some((node_id, status @ (KeyStatus::Retired | KeyStatus::NotYetValid))) => {
            FederationError::InactiveKey {
                node_id,
                key_id,
                status,
            }
        }
        // Active yet refused (a key active for two nodes), or not known.
        _ => FederationError::UnknownKey { key_id },
    }
}

/// The refusal inside a rustls error, when a verifier of this module
/// refused the peer. A side that received an alert only knows the alert;
/// the reason is on the side that refused.
pub fn refusal(err: &rustls::Error) -> Option<&FederationError> {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<FederationError>()
        }
        _ => None,
    }
}

/// [`refusal`] inside an I/O error, as TLS stream wrappers report a failed
/// handshake.
pub fn refusal_in_io(err: &std::io::Error) -> Option<&FederationError> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(refusal)
}

fn to_tls(err: FederationError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

/// Refuse any handshake signature scheme but Ed25519 before rustls maps it
/// to an algorithm: the pinned keys are Ed25519, so nothing else can be
/// legitimate.
fn require_ed25519(dss: &DigitallySignedStruct) -> Result<(), rustls::Error> {
    if dss.scheme == SignatureScheme::ED25519 {
        Ok(())
    } else {
        Err(to_tls(FederationError::NotEd25519 {
            algorithm: format!("{:?}", dss.scheme),
        }))
    }
}

/// The server side's [`ClientCertVerifier`]: a client certificate is
/// required, and accepted iff [`identify_client`] accepts it.
#[derive(Debug)]
pub struct PinnedClientVerifier {
    pins: Arc<dyn KeyPins>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedClientVerifier {
    pub fn new(pins: Arc<dyn KeyPins>, provider: &CryptoProvider) -> Self {
        PinnedClientVerifier {
            pins,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No authority to name: the client sends its one certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        identify_client(end_entity, self.pins.as_ref())
            .map(|_| ClientCertVerified::assertion())
            .map_err(to_tls)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        require_ed25519(dss)?;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        require_ed25519(dss)?;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The client side's [`ServerCertVerifier`], pinned to one partner: the
/// server is accepted iff [`identify_partner`] accepts its certificate for
/// that partner's node id. The server name the connection was opened with
/// plays no part.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    pins: Arc<dyn KeyPins>,
    partner: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    pub fn new(pins: Arc<dyn KeyPins>, partner_node_id: &str, provider: &CryptoProvider) -> Self {
        PinnedServerVerifier {
            pins,
            partner: partner_node_id.to_string(),
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        identify_partner(end_entity, &self.partner, self.pins.as_ref())
            .map(|_| ServerCertVerified::assertion())
            .map_err(to_tls)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        require_ed25519(dss)?;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        require_ed25519(dss)?;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The crypto provider of these configurations, given explicitly so that
/// they do not depend on which provider the process installed as default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration for partner connections: presents `local`,
/// requires a client certificate and accepts only clients whose key the
/// pins accept for some partner. Learn which one with [`peer_node`] after
/// the handshake. ALPN is left empty for the protocols to come to set.
pub fn server_config(local: &NodeCertificate, pins: Arc<dyn KeyPins>) -> Result<ServerConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedClientVerifier::new(pins, &provider));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(local.chain(), local.private_key())?;
    Ok(without_resumption(config))
}

/// [`server_config`] presenting, at every handshake, the certificate of
/// the node key as it is then ([`LocalCertificate`]): a key rotated while
/// the node serves is presented from the next connection on.
pub fn server_config_following(
    local: Arc<LocalCertificate>,
    pins: Arc<dyn KeyPins>,
) -> Result<ServerConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedClientVerifier::new(pins, &provider));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(local);
    Ok(without_resumption(config))
}

fn without_resumption(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

/// Reads the node key as it is now (a rotation while the node runs
/// changes what it returns).
pub type KeyLoader = Arc<dyn Fn() -> std::result::Result<SigningKey, String> + Send + Sync>;

/// The local node's certificate, following its key: [`LocalCertificate::current`]
/// reads the key and makes the certificate again when the key changed
/// since the last call, so that connections opened after a rotation
/// present the new key (which partners that imported the rotation pin),
/// without a restart.
pub struct LocalCertificate {
    node_id: String,
    load: KeyLoader,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Arc<NodeCertificate>, Arc<CertifiedKey>)>,
    /// Told of every certificate made after the first.
    on_change: Box<dyn Fn(&NodeCertificate) + Send + Sync>,
}

impl fmt::Debug for LocalCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCertificate")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl LocalCertificate {
    /// The certificate of the key `load` returns now; `on_change` is
    /// called with each later one (for example to write it out).
    pub fn new(
        node_id: &str,
        load: KeyLoader,
        on_change: Box<dyn Fn(&NodeCertificate) + Send + Sync>,
    ) -> Result<Self> {
        let provider = provider();
        let key = load().map_err(FederationError::Certificate)?;
        let cert = NodeCertificate::generate(node_id, &key)?;
        let certified = certified_key(&cert, &provider)?;
        Ok(LocalCertificate {
            node_id: node_id.to_string(),
            load,
            provider,
            current: Mutex::new((Arc::new(cert), certified)),
            on_change,
        })
    }

    /// The certificate of the node key as it is now (when the key cannot
    /// be read, or its certificate made, that of the key read last, and a
    /// warning logged).
    pub fn current(&self) -> Arc<NodeCertificate> {
        self.current_pair().0
    }

    fn current_pair(&self) -> (Arc<NodeCertificate>, Arc<CertifiedKey>) {
        // The key is read under the lock: a caller that read it before a
        // rotation cannot put the old certificate back after one that read
        // it since.
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let made = (self.load)()
            .map_err(FederationError::Certificate)
            .and_then(|key| {
                if cur.0.key_id() == key_id(&key.verifying_key()) {
                    return Ok(None);
                }
                let cert = NodeCertificate::generate(&self.node_id, &key)?;
                let certified = certified_key(&cert, &self.provider)?;
                Ok(Some((cert, certified)))
            });
        match made {
            Ok(None) => {}
            Ok(Some((cert, certified))) => {
                tracing::info!(key_id = %cert.key_id(), "the node key changed: presenting its certificate");
                (self.on_change)(&cert);
                *cur = (Arc::new(cert), certified);
            }
            Err(e) => tracing::warn!(
                error = %e,
                key_id = %cur.0.key_id(),
                "the node key cannot be read: presenting the certificate of the key read last"
            ),
        }
        (cur.0.clone(), cur.1.clone())
    }
}

impl ResolvesServerCert for LocalCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current_pair().1)
    }
}

fn certified_key(cert: &NodeCertificate, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
    let key = provider.key_provider.load_private_key(cert.private_key())?;
    Ok(Arc::new(CertifiedKey::new(cert.chain(), key)))
}

/// A client configuration for connecting to the partner `partner_node_id`:
/// presents `local` and accepts the server only if its key is an active
/// key of that partner in the pins. Any server name may be used to
/// connect; it is not checked.
pub fn client_config(
    local: &NodeCertificate,
    pins: Arc<dyn KeyPins>,
    partner_node_id: &str,
) -> Result<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier::new(pins, partner_node_id, &provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(local.chain(), local.private_key())?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_local_certificate_follows_the_node_key() {
        let key = Arc::new(Mutex::new(SigningKey::from_bytes(&[1; 32])));
        let loaded = key.clone();
        let load: KeyLoader =
            Arc::new(move || Ok(loaded.lock().map_err(|e| e.to_string())?.clone()));
        let changes = Arc::new(AtomicUsize::new(0));
        let seen = changes.clone();
        let local = LocalCertificate::new(
            "node-1",
            load,
            Box::new(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .expect("certificate");
        let first = local.current();
        assert_eq!(
            first.key_id(),
            key_id(&SigningKey::from_bytes(&[1; 32]).verifying_key())
        );
        // The same key: the same certificate, nothing made again.
        assert!(Arc::ptr_eq(&first, &local.current()));
        assert_eq!(changes.load(Ordering::SeqCst), 0);

        // The key rotates: the next call presents the new one, once.
        let rotated = SigningKey::from_bytes(&[2; 32]);
        *key.lock().expect("lock") = rotated.clone();
        let second = local.current();
        assert_eq!(second.key_id(), key_id(&rotated.verifying_key()));
        assert_eq!(
            certificate_key(second.der()).expect("key").0,
            rotated.verifying_key()
        );
        assert!(Arc::ptr_eq(&second, &local.current()));
        assert_eq!(changes.load(Ordering::SeqCst), 1);

        // A key that cannot be read: the last certificate stays.
        let broken: KeyLoader = Arc::new(|| Err("no key file".into()));
        let local = LocalCertificate {
            load: broken,
            ..local
        };
        assert!(Arc::ptr_eq(&second, &local.current()));
        assert_eq!(changes.load(Ordering::SeqCst), 1);
    }
}
