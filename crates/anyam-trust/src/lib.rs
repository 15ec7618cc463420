//! Trust between nodes: node identity and key history, signed node
//! descriptors, signed sharing agreements, provenance (signed manifests of
//! published objects, the originator's terms, tombstones; [`provenance`]),
//! and the Admiralty code.
//!
//! # What it is
//!
//! Every document this crate defines travels in one envelope, [`Signed`]:
//! the document as JSON plus signatures `{key_id, signature}`, each an
//! Ed25519 signature over the RFC 8785 canonical JSON of the document,
//! checked with `verify_strict`. A key id is the lowercase hex SHA-256 of
//! the 32 raw public key bytes (the audit log uses the same ids). Every
//! document carries a `type` and a `schema_version`, so a signature over
//! one kind of document can never be replayed as another.
//!
//! **Identity.** A node has two keys. The *recovery key* is made at first
//! start; its private half is written once for the operator to move
//! offline, and the running node never needs it. The node id *is* the
//! recovery key's id: it never changes, and it is what operators compare
//! out of band when they first import a partner. The *node key* signs for
//! the node day to day. Key statements link the two ([`keyring`]): the
//! recovery key enrolls the first node key; each rotation is signed by the
//! old key and the new one; after a compromise, a revocation signed by the
//! recovery key (and the new key, as proof of possession) revokes the
//! stolen key, every key it introduced, and installs a new one. A
//! [`Keyring`] applies a node's statements in order and answers whether a
//! key speaks for the node at a given time. A revoked key is refused for
//! everything once the revocation takes effect, whatever date a document
//! claims; a key retired by routine rotation still vouches for documents
//! dated before the rotation.
//!
//! **Descriptors.** A [`NodeDescriptor`] — node name, the organization's
//! STIX identity, node key, recovery key, TAXII URL — is signed by the node
//! key and exported with the node's whole key history
//! ([`DescriptorExport`]), so a partner can follow it from the recovery
//! key to the key that signed. Later imports must follow from what the
//! partner already knows: the node id is pinned after first contact.
//!
//! **Agreements.** An [`Agreement`] version names its parties (their
//! descriptors), scope (collections and/or object types, highest TLP,
//! PAP), redistribution, sightings consent, retention after termination,
//! notice period, validity, and for amendments the version and digest it
//! replaces. [`in_force`] decides whether a version binds, naming the
//! reason when not ([`NotInForce`]): every party signed with a key its
//! keyring accepts; the validity dates hold; no later version signed by
//! all its parties has begun; no party's [`Termination`] notice has run
//! its notice period, counted from the notice's date or from its receipt
//! here when that is later ([`Notice`]), so a party cannot shorten the
//! period by backdating. A termination ends the version it names and
//! earlier ones; a later version signed again by everyone is a fresh
//! commitment. [`view`] flattens the agreements in force into
//! [`AgreementsInForce`], the serde type the release decision consumes.
//! An agreement with more than two parties is a sharing group; its member
//! list lives only in these documents and that view, which are for the
//! parties' nodes and never released through TAXII.
//!
//! **Admiralty code** ([`admiralty`]). Information credibility 1–6 maps
//! to STIX `confidence` by the STIX 2.1 confidence-scale appendix (6 means
//! no confidence); source reliability A–F rides in a property extension
//! whose extension-definition this crate provides.
//!
//! **Times.** Documents write RFC 3339 UTC times truncated to the
//! microsecond, so that a rotation and a document made in the same second
//! still compare in the order they happened.
//!
//! **Storage** ([`TrustStore`]). One SQLite file of its own (`trust.db` in
//! the node's data directory; WAL, `synchronous=FULL`): the local node's
//! key statements, partners' descriptors and statements, every agreement
//! version with every signature held (signatures are merged as copies
//! come back from the parties), termination notices with when they
//! arrived. Backups of a node must include it with the keys directory
//! ([`TrustStore::backup_to`] writes a consistent copy); the keyrings are
//! rebuilt from the stored statements on every open, never cached. The
//! policy engine reads [`TrustStore::in_force_view`].
//!
//! # What it is not
//!
//! It does no network I/O: documents move between nodes as files until
//! federation arrives. It never reads key files: callers (the `identity`
//! module of the `anyam` binary) pass [`ed25519_dalek::SigningKey`]s in.
//! It does not enforce agreements on data: it says which agreements are in
//! force; `anyam-policy` decides what may be released.
//!
//! # Key types
//!
//! - [`Signed`], [`Signature`], [`PublicKeyInfo`], [`key_id`]: the envelope.
//! - [`Keyring`], [`KeyEnrollment`], [`KeyRotation`], [`KeyRevocation`].
//! - [`NodeDescriptor`], [`DescriptorExport`], [`descriptor::import`].
//! - [`Agreement`], [`Termination`], [`in_force`], [`InForce`],
//!   [`NotInForce`], [`AgreementsInForce`].
//! - [`admiralty::Reliability`], [`admiralty::Credibility`],
//!   [`admiralty::extension_definition`].
//! - [`TrustStore`], [`TrustError`].

pub mod admiralty;
pub mod agreement;
pub mod descriptor;
mod error;
pub mod keyring;
pub mod provenance;
mod signed;
mod store;

pub use agreement::{
    Agreement, AgreementView, AgreementsInForce, InForce, Keyrings, NotInForce, Notice, Pap,
    PartyView, Redistribution, Removal, Replaces, Retention, Scope, Sightings, Termination, Terms,
    Tlp, apply_removals, check_signatures, in_force, view,
};
pub use descriptor::{DescriptorExport, NodeDescriptor};
pub use error::{Result, TrustError};
pub use keyring::{KeyEnrollment, KeyRecord, KeyRevocation, KeyRotation, KeyStatus, Keyring};
pub use provenance::{
    AgreementRef, Manifest, OriginTerms, ProvenanceError, Tombstone, VerifiedBatch, may_pass_on,
    verify_batch, verify_relayed,
};
pub use signed::{
    Document, PublicKeyInfo, SCHEMA_VERSION, SigCheck, Signature, Signed, format_time, key_id,
    parse_time,
};
pub use store::{Imported, Partner, TrustStore};
