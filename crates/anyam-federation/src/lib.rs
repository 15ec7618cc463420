//! Federation between Anyam nodes: how two partner nodes recognize each
//! other on the wire.
//!
//! # What it is
//!
//! Nodes federate peer to peer, each under its own operator, with no hub
//! and no certificate authority they would all have to trust (a shared CA
//! would be a hub). What a node already trusts about a partner is its
//! keyring (`anyam-trust`): the partner's node id, which is the id of its
//! recovery key, and the node keys that recovery key vouched for through
//! signed enrollment, rotation and revocation statements. So that is what
//! the transport trusts too.
//!
//! [`tls`] builds rustls configurations for mutual TLS in which each node
//! presents a self-signed certificate over its current Ed25519 node key,
//! and a peer is accepted if and only if that key's id is one its
//! [`tls::KeyPins`] accept as active now, for the partner expected (client
//! side) or for some partner, which then names the peer (server side).
//! Names, validity dates, issuers and chains in certificates are ignored:
//! the TLS handshake signature proves the peer holds the private key, and
//! the pins say whose key it is. Connections do not resume sessions, so
//! every connection is checked against the pins as they are at that time.
//!
//! # What it is not
//!
//! It speaks no protocol over these connections yet: the sync and live
//! stream protocols between partners come next and will run on top. It
//! reads no key files (the `anyam` binary's identity module passes the
//! node key in) and keeps no state of its own: which partners are pinned
//! (typically the partners with an agreement in force) is the caller's
//! choice, through the [`tls::KeyPins`] it hands in.
//!
//! # Key types
//!
//! - [`tls::NodeCertificate`]: the local node's self-signed certificate;
//!   [`tls::LocalCertificate`]: the same, following the node key
//!   (presented by [`tls::server_config_following`]), so that a key
//!   rotated while the node serves is used without a restart.
//! - [`tls::KeyPins`], [`tls::KeyringPins`]: which keys speak for which
//!   partner, now.
//! - [`tls::server_config`], [`tls::client_config`], [`tls::peer_node`],
//!   [`tls::Peer`]: the two ends of a connection and who is on the other.
//! - [`FederationError`]: the crate's one error type; [`tls::refusal`]
//!   finds it inside a failed handshake's error.

mod error;
pub mod page;
pub mod receive;
pub mod retention;
pub mod server;
pub mod sightings;
pub mod state;
pub mod stream;
pub mod sync;
pub mod tls;
pub mod tombstone;

pub use error::{FederationError, Result};
