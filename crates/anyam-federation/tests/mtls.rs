//! Mutual TLS between nodes over real sockets on 127.0.0.1: who is let in,
//! who is refused, and why.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyam_federation::FederationError;
use anyam_federation::tls::{
    KeyPins, KeyringPins, NodeCertificate, Peer, certificate_key, client_config, peer_node,
    refusal_in_io, server_config,
};
use anyam_trust::keyring::{enroll, revoke, rotate};
use anyam_trust::{KeyStatus, Keyring, key_id};
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn ago(seconds: i64) -> Timestamp {
    let now = Timestamp::now().as_second();
    Timestamp::from_second(now - seconds).expect("a time an hour ago")
}

/// A node as its partners know it: its keyring, and every node key it ever
/// had (oldest first) so tests can present old ones.
struct Node {
    id: String,
    ring: Keyring,
    recovery: SigningKey,
    keys: Vec<SigningKey>,
}

impl Node {
    /// A node enrolled an hour ago.
    fn new() -> Node {
        let recovery = new_key();
        let key = new_key();
        let mut ring = Keyring::new(recovery.verifying_key());
        let statement = enroll(&recovery, &key, ago(3600)).expect("enrollment");
        ring.apply(&statement).expect("apply enrollment");
        Node {
            id: ring.node_id().to_string(),
            ring,
            recovery,
            keys: vec![key],
        }
    }

    /// Routine rotation to a new key, half an hour ago.
    fn rotated(mut self) -> Node {
        let old = self.keys.last().expect("a key").clone();
        let new = new_key();
        let statement = rotate(&self.id, &old, &new, ago(1800)).expect("rotation");
        self.ring.apply(&statement).expect("apply rotation");
        self.keys.push(new);
        self
    }

    /// Compromise recovery: the current key revoked, a new one installed.
    fn revoked(mut self) -> Node {
        let stolen = key_id(&self.keys.last().expect("a key").verifying_key());
        let new = new_key();
        let statement = revoke(&self.recovery, &stolen, &new, ago(1800), None).expect("revoke");
        self.ring.apply(&statement).expect("apply revocation");
        self.keys.push(new);
        self
    }

    fn current(&self) -> &SigningKey {
        self.keys.last().expect("a key")
    }

    fn cert(&self) -> NodeCertificate {
        NodeCertificate::generate(&self.id, self.current()).expect("certificate")
    }

    fn cert_with(&self, key: &SigningKey) -> NodeCertificate {
        NodeCertificate::generate(&self.id, key).expect("certificate")
    }
}

fn pins(nodes: &[&Node]) -> Arc<KeyringPins> {
    let pins = KeyringPins::default();
    for n in nodes {
        pins.insert(n.ring.clone());
    }
    Arc::new(pins)
}

/// What one side of a connection ended with.
#[derive(Debug)]
enum Outcome {
    /// The server identified the client as this peer and exchanged data.
    Served(Peer),
    /// The client exchanged data with the server.
    Connected,
    /// The handshake or the first exchange failed.
    Failed(std::io::Error),
}

impl Outcome {
    fn refusal(&self) -> Option<&FederationError> {
        match self {
            Outcome::Failed(e) => refusal_in_io(e),
            _ => None,
        }
    }
}

/// One server accepting one client on 127.0.0.1, both for real: the
/// handshake, then a ping from the client and a pong from the server.
async fn connect(
    server: &NodeCertificate,
    server_pins: Arc<dyn KeyPins>,
    client: &NodeCertificate,
    client_pins: Arc<dyn KeyPins>,
    dial: &str,
) -> (Outcome, Outcome) {
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(server, server_pins.clone()).expect("server config"),
    ));
    let connector = TlsConnector::from(Arc::new(
        client_config(client, client_pins, dial).expect("client config"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");

    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = peer_node(tls.get_ref().1.peer_certificates(), server_pins.as_ref())
            .map_err(std::io::Error::other)?;
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(peer)
    });

    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        // The name is not what is checked; an address will do.
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await?;
        Ok::<_, std::io::Error>(())
    };

    let limit = Duration::from_secs(20);
    let client = match tokio::time::timeout(limit, client).await {
        Ok(Ok(())) => Outcome::Connected,
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => panic!("client timed out"),
    };
    let server = match tokio::time::timeout(limit, served).await {
        Ok(Ok(Ok(peer))) => Outcome::Served(peer),
        Ok(Ok(Err(e))) => Outcome::Failed(e),
        Ok(Err(join)) => panic!("server task: {join}"),
        Err(_) => panic!("server timed out"),
    };
    (server, client)
}

/// What a side is expected to end with.
enum Want {
    /// Served: the server named the client as this node.
    Peer(&'static str),
    Connected,
    /// This side refused the peer for this reason.
    Refused(fn(&FederationError, &World) -> bool),
    /// This side failed because the other side refused.
    Failed,
}

fn check(case: &str, side: &str, got: &Outcome, want: &Want, world: &World) {
    let ok = match (want, got) {
        (Want::Peer(label), Outcome::Served(peer)) => {
            let node = world.node(label);
            peer.node_id == node.id && peer.key_id == key_id(&node.current().verifying_key())
        }
        (Want::Connected, Outcome::Connected) => true,
        (Want::Refused(reason), got) => got.refusal().is_some_and(|e| reason(e, world)),
        (Want::Failed, Outcome::Failed(_)) => true,
        _ => false,
    };
    assert!(ok, "{case}: {side} ended with {got:?}");
}

/// The nodes of the cases: `a` and `b` plain, `r` after a routine
/// rotation, `v` after a compromise revocation, `x` never pinned by anyone.
struct World {
    a: Node,
    b: Node,
    r: Node,
    v: Node,
    x: Node,
}

impl World {
    fn new() -> World {
        World {
            a: Node::new(),
            b: Node::new(),
            r: Node::new().rotated(),
            v: Node::new().revoked(),
            x: Node::new(),
        }
    }

    fn node(&self, label: &str) -> &Node {
        match label {
            "a" => &self.a,
            "b" => &self.b,
            "r" => &self.r,
            "v" => &self.v,
            "x" => &self.x,
            other => panic!("no node {other}"),
        }
    }

    /// Every node but `x`, as each of them pins its partners.
    fn pins(&self) -> Arc<KeyringPins> {
        pins(&[&self.a, &self.b, &self.r, &self.v])
    }
}

/// Which certificate a side presents.
enum Present {
    /// The node's current key.
    Current(&'static str),
    /// The node's first key (retired or revoked since, for `r` and `v`).
    First(&'static str),
    /// A fresh key that is no key of the node, under the node's id.
    Impostor(&'static str),
}

impl Present {
    fn cert(&self, world: &World) -> NodeCertificate {
        match self {
            Present::Current(n) => world.node(n).cert(),
            Present::First(n) => {
                let node = world.node(n);
                node.cert_with(&node.keys[0])
            }
            Present::Impostor(n) => world.node(n).cert_with(&new_key()),
        }
    }
}

struct Case {
    name: &'static str,
    server: Present,
    client: Present,
    /// The node the client means to reach.
    dial: &'static str,
    server_wants: Want,
    client_wants: Want,
}

fn cases() -> Vec<Case> {
    use Present::*;
    vec![
        Case {
            name: "b dials a",
            server: Current("a"),
            client: Current("b"),
            dial: "a",
            server_wants: Want::Peer("b"),
            client_wants: Want::Connected,
        },
        Case {
            name: "a dials b",
            server: Current("b"),
            client: Current("a"),
            dial: "b",
            server_wants: Want::Peer("a"),
            client_wants: Want::Connected,
        },
        Case {
            name: "rotated and recovered nodes with their current keys",
            server: Current("r"),
            client: Current("v"),
            dial: "r",
            server_wants: Want::Peer("v"),
            client_wants: Want::Connected,
        },
        Case {
            name: "unpinned client",
            server: Current("a"),
            client: Current("x"),
            dial: "a",
            server_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::UnknownKey { key_id }
                    if *key_id == key_id_of(w.x.current()))
            }),
            client_wants: Want::Failed,
        },
        Case {
            name: "client pinned to another node than the server's",
            server: Current("a"),
            client: Current("b"),
            dial: "r",
            server_wants: Want::Failed,
            client_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::WrongNode { expected, found, .. }
                    if *expected == w.r.id && *found == w.a.id)
            }),
        },
        Case {
            name: "client pinned to a node no one pins",
            server: Current("a"),
            client: Current("b"),
            dial: "x",
            server_wants: Want::Failed,
            client_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::WrongNode { expected, found, .. }
                    if *expected == w.x.id && *found == w.a.id)
            }),
        },
        Case {
            name: "client with a key retired by rotation",
            server: Current("a"),
            client: First("r"),
            dial: "a",
            server_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::InactiveKey { node_id, status: KeyStatus::Retired, .. }
                    if *node_id == w.r.id)
            }),
            client_wants: Want::Failed,
        },
        Case {
            name: "client with a revoked key",
            server: Current("a"),
            client: First("v"),
            dial: "a",
            server_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::RevokedKey { node_id, key_id }
                    if *node_id == w.v.id && *key_id == key_id_of(&w.v.keys[0]))
            }),
            client_wants: Want::Failed,
        },
        Case {
            name: "server with a revoked key",
            server: First("v"),
            client: Current("a"),
            dial: "v",
            server_wants: Want::Failed,
            client_wants: Want::Refused(
                |e, w| matches!(e, FederationError::RevokedKey { node_id, .. } if *node_id == w.v.id),
            ),
        },
        Case {
            name: "server with a key retired by rotation",
            server: First("r"),
            client: Current("a"),
            dial: "r",
            server_wants: Want::Failed,
            client_wants: Want::Refused(|e, w| {
                matches!(e, FederationError::InactiveKey { node_id, status: KeyStatus::Retired, .. }
                    if *node_id == w.r.id)
            }),
        },
        Case {
            name: "client naming b with a key that is not b's",
            server: Current("a"),
            client: Impostor("b"),
            dial: "a",
            server_wants: Want::Refused(|e, _| matches!(e, FederationError::UnknownKey { .. })),
            client_wants: Want::Failed,
        },
        Case {
            name: "server naming a with a key that is not a's",
            server: Impostor("a"),
            client: Current("b"),
            dial: "a",
            server_wants: Want::Failed,
            client_wants: Want::Refused(|e, _| matches!(e, FederationError::UnknownKey { .. })),
        },
    ]
}

fn key_id_of(key: &SigningKey) -> String {
    key_id(&key.verifying_key())
}

#[tokio::test]
async fn handshakes_between_pinned_and_unpinned_nodes() {
    let world = World::new();
    for case in cases() {
        let (server, client) = connect(
            &case.server.cert(&world),
            world.pins(),
            &case.client.cert(&world),
            world.pins(),
            &world.node(case.dial).id,
        )
        .await;
        check(case.name, "server", &server, &case.server_wants, &world);
        check(case.name, "client", &client, &case.client_wants, &world);
    }
}

/// Pins are asked at every handshake: a partner removed, or a revocation
/// imported, while the server runs takes effect on the next connection.
#[tokio::test]
async fn pins_changed_while_serving_apply_to_the_next_handshake() {
    let a = Node::new();
    let b = Node::new();
    let server_pins = pins(&[&b]);
    let client_pins = pins(&[&a]);
    let a_cert = a.cert();
    let b_cert = b.cert();

    let (server, client) = connect(
        &a_cert,
        server_pins.clone(),
        &b_cert,
        client_pins.clone(),
        &a.id,
    )
    .await;
    assert!(matches!(server, Outcome::Served(ref p) if p.node_id == b.id));
    assert!(matches!(client, Outcome::Connected));

    // b's key is revoked after a compromise; a learns of it.
    let b = b.revoked();
    server_pins.insert(b.ring.clone());
    let (server, _) = connect(
        &a_cert,
        server_pins.clone(),
        &b_cert,
        client_pins.clone(),
        &a.id,
    )
    .await;
    assert!(
        matches!(server.refusal(), Some(FederationError::RevokedKey { node_id, .. }) if *node_id == b.id),
        "{server:?}"
    );
    // Its new key is accepted.
    let (server, _) = connect(
        &a_cert,
        server_pins.clone(),
        &b.cert(),
        client_pins.clone(),
        &a.id,
    )
    .await;
    assert!(matches!(server, Outcome::Served(ref p) if p.node_id == b.id));

    // a stops pinning b altogether.
    server_pins.remove(&b.id);
    let (server, _) = connect(&a_cert, server_pins, &b.cert(), client_pins, &a.id).await;
    assert!(
        matches!(server.refusal(), Some(FederationError::UnknownKey { .. })),
        "{server:?}"
    );
}

#[test]
fn node_certificate_carries_the_node_key() {
    let key = new_key();
    let cert = NodeCertificate::generate("00ff", &key).expect("certificate");
    let (found, id) = certificate_key(cert.der()).expect("key");
    assert_eq!(found, key.verifying_key());
    assert_eq!(id, key_id_of(&key));
    assert_eq!(cert.key_id(), id);
    assert_eq!(cert.node_id(), "00ff");
}

#[test]
fn certificates_without_an_ed25519_key_are_refused() {
    let ecdsa =
        rcgen::generate_simple_self_signed(vec!["node.test".to_string()]).expect("certificate");
    type Reason = fn(&FederationError) -> bool;
    let cases: Vec<(&str, CertificateDer<'static>, Reason)> = vec![
        (
            "ecdsa key",
            ecdsa.cert.der().clone(),
            |e| matches!(e, FederationError::NotEd25519 { algorithm } if algorithm == "1.2.840.10045.2.1"),
        ),
        ("not der", CertificateDer::from(b"hello".to_vec()), |e| {
            matches!(e, FederationError::MalformedCertificate(_))
        }),
        ("empty", CertificateDer::from(Vec::new()), |e| {
            matches!(e, FederationError::MalformedCertificate(_))
        }),
    ];
    for (name, der, want) in cases {
        match certificate_key(&der) {
            Err(e) => assert!(want(&e), "{name}: {e}"),
            Ok((_, id)) => panic!("{name}: accepted key {id}"),
        }
    }
}

#[test]
fn peer_node_needs_a_certificate() {
    let pins = KeyringPins::default();
    assert!(matches!(
        peer_node(None, &pins),
        Err(FederationError::NoCertificate)
    ));
    assert!(matches!(
        peer_node(Some(&[]), &pins),
        Err(FederationError::NoCertificate)
    ));
}

/// A certificate always presented with a signing key of our choosing,
/// which need not be the certificate's: a peer replaying a partner's
/// certificate it copied off the wire.
#[derive(Debug)]
struct Replay(Arc<rustls::sign::CertifiedKey>);

impl Replay {
    fn new(cert: &NodeCertificate, holder: &SigningKey) -> Replay {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = holder.to_pkcs8_der().expect("pkcs8");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        let signer = rustls::crypto::ring::sign::any_eddsa_type(&key).expect("signing key");
        Replay(Arc::new(rustls::sign::CertifiedKey::new(
            vec![cert.der().clone()],
            signer,
        )))
    }
}

impl rustls::client::ResolvesClientCert for Replay {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A partner's certificate replayed by someone without its private key:
/// the key is pinned, but the handshake signature does not verify.
#[tokio::test]
async fn a_replayed_certificate_without_its_key_is_refused() {
    use anyam_federation::tls::PinnedServerVerifier;
    let a = Node::new();
    let b = Node::new();
    let provider = rustls::crypto::ring::default_provider();
    let stolen = b.cert();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(
            pins(&[&a]),
            &a.id,
            &provider,
        )))
        .with_client_cert_resolver(Arc::new(Replay::new(&stolen, &new_key())));

    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(&a.cert(), pins(&[&b])).expect("server config"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        acceptor.accept(tcp).await.map(|_| ())
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let client = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    let limit = Duration::from_secs(20);
    let client = tokio::time::timeout(limit, async {
        let mut tls = client.await?;
        tls.write_all(b"ping").await?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await.map(|_| ())
    })
    .await
    .expect("client timed out");
    let server = tokio::time::timeout(limit, served)
        .await
        .expect("server timed out")
        .expect("server task");
    let err = server.expect_err("the server accepted a replayed certificate");
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err}"));
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{tls:?}"
    );
    assert!(client.is_err());
}
