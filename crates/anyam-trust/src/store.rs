//! `trust.db`: the node's own key history, partners' descriptors and key
//! statements, every agreement version with its signatures, and
//! termination notices, in one SQLite file of this crate's own.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::agreement::{
    Agreement, AgreementsInForce, InForce, Keyrings, NotInForce, Notice, Removal, Termination,
};
use crate::descriptor::{self, DescriptorExport, NodeDescriptor};
use crate::error::{Result, TrustError};
use crate::keyring::Keyring;
use crate::signed::{PublicKeyInfo, SigCheck, Signature, Signed, format_time};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    recovery_key TEXT NOT NULL,
    is_self INTEGER NOT NULL DEFAULT 0,
    descriptor TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS statements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL REFERENCES nodes(node_id),
    digest TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agreements (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    document TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS agreement_signatures (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (id, version, key_id)
);
CREATE TABLE IF NOT EXISTS terminations (
    digest TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS removals (
    digest TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
";

/// A partner as stored.
#[derive(Debug, Clone)]
pub struct Partner {
    pub descriptor: NodeDescriptor,
    pub signed: Signed,
    pub updated_at: String,
}

/// What an import of a descriptor export did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub node_id: String,
    /// First contact with this node.
    pub new: bool,
    /// Key statements applied that were not known before.
    pub new_statements: usize,
    pub descriptor: NodeDescriptor,
}

/// The trust database. One connection: the file is small and written
/// only by administration commands.
pub struct TrustStore {
    conn: Connection,
}

impl TrustStore {
    /// Open (creating if needed). WAL with `synchronous=FULL`: a key
    /// rotation or a signature that was reported done survives power loss.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(TrustStore { conn })
    }

    /// A number that changes whenever another connection commits to the
    /// database (SQLite `PRAGMA data_version`): callers caching what they
    /// read from it compare it to know when to read again. Writes through
    /// this connection do not change it.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Write a consistent copy of the database to `dest` (which must not
    /// exist), for `anyam backup`: the copy is taken in one read
    /// transaction, so it is whole even while commands write.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| TrustError::Malformed("backup path is not UTF-8".into()))?;
        self.conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Record the local node: its recovery key and its enrollment
    /// statement. Idempotent for the same node.
    pub fn init_self(&mut self, recovery: &VerifyingKey, enrollment: &Signed) -> Result<String> {
        let mut ring = Keyring::new(*recovery);
        ring.apply(enrollment)?;
        let node_id = ring.node_id().to_string();
        if let Some(existing) = self.self_node_id()? {
            if existing != node_id {
                return Err(TrustError::Inconsistent(format!(
                    "this database belongs to node {existing}"
                )));
            }
            return Ok(node_id);
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO nodes (node_id, recovery_key, is_self, updated_at) VALUES (?1, ?2, 1, ?3)",
            params![
                node_id,
                PublicKeyInfo::new(recovery).public_key,
                format_time(Timestamp::now())
            ],
        )?;
        insert_statement(&tx, &node_id, enrollment)?;
        tx.commit()?;
        Ok(node_id)
    }

    pub fn self_node_id(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT node_id FROM nodes WHERE is_self = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Add a key statement of the local node (rotation, revocation) after
    /// checking that it follows from the stored history.
    pub fn add_own_statement(&mut self, statement: &Signed) -> Result<Keyring> {
        let node_id = self
            .self_node_id()?
            .ok_or_else(|| TrustError::NotFound("the local node's key history".into()))?;
        let mut ring = self.keyring_of(&node_id)?;
        if ring.apply(statement)? {
            let tx = self.conn.transaction()?;
            insert_statement(&tx, &node_id, statement)?;
            tx.commit()?;
        }
        Ok(ring)
    }

    /// The key statements of a node, oldest first.
    pub fn statements(&self, node_id: &str) -> Result<Vec<Signed>> {
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM statements WHERE node_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([node_id], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(Signed::from_json(&body?)?);
        }
        Ok(out)
    }

    /// The keyring of a node, rebuilt from its stored statements.
    pub fn keyring(&self, node_id: &str) -> Result<Option<Keyring>> {
        let recovery: Option<String> = self
            .conn
            .query_row(
                "SELECT recovery_key FROM nodes WHERE node_id = ?1",
                [node_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(recovery) = recovery else {
            return Ok(None);
        };
        let key = PublicKeyInfo {
            key_id: node_id.to_string(),
            public_key: recovery,
        }
        .verifying_key()?;
        let mut ring = Keyring::new(key);
        for s in self.statements(node_id)? {
            ring.apply(&s)?;
        }
        Ok(Some(ring))
    }

    fn keyring_of(&self, node_id: &str) -> Result<Keyring> {
        self.keyring(node_id)?
            .ok_or_else(|| TrustError::NotFound(format!("node {node_id}")))
    }

    /// The local node's keyring.
    pub fn own_keyring(&self) -> Result<Keyring> {
        let id = self
            .self_node_id()?
            .ok_or_else(|| TrustError::NotFound("the local node's key history".into()))?;
        self.keyring_of(&id)
    }

    /// Every known node's keyring, the local node's included.
    pub fn keyrings(&self) -> Result<Keyrings> {
        let mut stmt = self.conn.prepare("SELECT node_id FROM nodes")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Keyrings::new();
        for id in ids {
            out.insert(id.clone(), self.keyring_of(&id)?);
        }
        Ok(out)
    }

    /// Verify and store a partner's descriptor export: the descriptor
    /// replaces a stored one only if it is not older. `expect_node_id`
    /// pins the node id on first contact (compared out of band).
    pub fn import_partner(
        &mut self,
        export: &DescriptorExport,
        expect_node_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Imported> {
        let claimed: NodeDescriptor = export.descriptor.parse()?;
        if let Some(expected) = expect_node_id
            && claimed.node_id != expected
        {
            return Err(TrustError::Inconsistent(format!(
                "descriptor of node {}, expected {expected}",
                claimed.node_id
            )));
        }
        if self.self_node_id()?.as_deref() == Some(claimed.node_id.as_str()) {
            return Err(TrustError::Inconsistent(
                "this is the local node's own descriptor".into(),
            ));
        }
        let known = self.keyring(&claimed.node_id)?;
        let before = known.as_ref().map_or(0, |k| k.applied().len());
        let (ring, d) = descriptor::import(known.as_ref(), export, now)?;
        let new = known.is_none();
        let tx = self.conn.transaction()?;
        if new {
            tx.execute(
                "INSERT INTO nodes (node_id, recovery_key, is_self, descriptor, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?4)",
                params![
                    d.node_id,
                    d.recovery_key.public_key,
                    serde_json::to_string(&export.descriptor)?,
                    format_time(now)
                ],
            )?;
        } else {
            let stored: Option<String> = tx
                .query_row(
                    "SELECT descriptor FROM nodes WHERE node_id = ?1",
                    [&d.node_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let older = stored
                .and_then(|s| Signed::from_json(&s).ok())
                .and_then(|s| s.parse::<NodeDescriptor>().ok())
                .is_some_and(|old| {
                    crate::signed::parse_time("created", &old.created).ok()
                        > crate::signed::parse_time("created", &d.created).ok()
                });
            if !older {
                tx.execute(
                    "UPDATE nodes SET descriptor = ?2, updated_at = ?3 WHERE node_id = ?1",
                    params![
                        d.node_id,
                        serde_json::to_string(&export.descriptor)?,
                        format_time(now)
                    ],
                )?;
            }
        }
        for s in &export.key_statements {
            if ring.applied().contains(&s.digest()) {
                insert_statement(&tx, &d.node_id, s)?;
            }
        }
        tx.commit()?;
        Ok(Imported {
            node_id: d.node_id.clone(),
            new,
            new_statements: ring.applied().len() - before,
            descriptor: d,
        })
    }

    /// Every partner (not the local node).
    pub fn partners(&self) -> Result<Vec<Partner>> {
        let mut stmt = self.conn.prepare(
            "SELECT descriptor, updated_at FROM nodes WHERE is_self = 0 AND descriptor IS NOT NULL ORDER BY node_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (text, updated_at) = row?;
            let signed = Signed::from_json(&text)?;
            out.push(Partner {
                descriptor: signed.parse()?,
                signed,
                updated_at,
            });
        }
        Ok(out)
    }

    pub fn partner(&self, node_id: &str) -> Result<Option<Partner>> {
        Ok(self
            .partners()?
            .into_iter()
            .find(|p| p.descriptor.node_id == node_id))
    }

    /// Store an agreement version, merging its signatures with those
    /// already held. The same id and version with a different document is
    /// refused. A signature by a known key that does not verify is
    /// refused; signatures by keys not known yet are kept, to be checked
    /// when the partner's descriptor arrives.
    pub fn put_agreement(&mut self, signed: &Signed, now: Timestamp) -> Result<Agreement> {
        let a: Agreement = signed.parse()?;
        a.check()?;
        let digest = signed.digest();
        let rings = self.keyrings()?;
        let mut verified = Vec::new();
        let mut unverified = Vec::new();
        for sig in &signed.signatures {
            let key = rings
                .values()
                .find_map(|r| r.get(&sig.key_id).map(|k| k.key));
            match key {
                Some(k) => {
                    let one = Signed {
                        document: signed.document.clone(),
                        signatures: vec![sig.clone()],
                    };
                    if one.check(&k) != SigCheck::Valid {
                        return Err(TrustError::BadSignature {
                            key_id: sig.key_id.clone(),
                        });
                    }
                    verified.push(sig);
                }
                None => unverified.push(sig),
            }
        }
        let tx = self.conn.transaction()?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT digest FROM agreements WHERE id = ?1 AND version = ?2",
                params![a.id, a.version],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(d) if d != digest => {
                return Err(TrustError::Inconsistent(format!(
                    "{} version {} is already held with different content",
                    a.id, a.version
                )));
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO agreements (id, version, digest, document, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        a.id,
                        a.version,
                        digest,
                        serde_json::to_string(&signed.document)?,
                        format_time(now)
                    ],
                )?;
            }
        }
        for (sig, replace) in verified
            .into_iter()
            .map(|s| (s, true))
            .chain(unverified.into_iter().map(|s| (s, false)))
        {
            let sql = if replace {
                "INSERT OR REPLACE INTO agreement_signatures (id, version, key_id, signature) VALUES (?1, ?2, ?3, ?4)"
            } else {
                "INSERT OR IGNORE INTO agreement_signatures (id, version, key_id, signature) VALUES (?1, ?2, ?3, ?4)"
            };
            tx.execute(sql, params![a.id, a.version, sig.key_id, sig.signature])?;
        }
        tx.commit()?;
        Ok(a)
    }

    /// One stored version with every signature held (the latest version
    /// when `version` is `None`).
    pub fn agreement(&self, id: &str, version: Option<u32>) -> Result<Signed> {
        let row: Option<(u32, String)> = match version {
            Some(v) => self
                .conn
                .query_row(
                    "SELECT version, document FROM agreements WHERE id = ?1 AND version = ?2",
                    params![id, v],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
            None => self
                .conn
                .query_row(
                    "SELECT version, document FROM agreements WHERE id = ?1 ORDER BY version DESC LIMIT 1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
        };
        let Some((v, doc)) = row else {
            return Err(TrustError::NotFound(match version {
                Some(v) => format!("{id} version {v}"),
                None => id.to_string(),
            }));
        };
        let document: Value = serde_json::from_str(&doc)?;
        let mut stmt = self.conn.prepare(
            "SELECT key_id, signature FROM agreement_signatures WHERE id = ?1 AND version = ?2 ORDER BY key_id",
        )?;
        let signatures = stmt
            .query_map(params![id, v], |r| {
                Ok(Signature {
                    key_id: r.get(0)?,
                    signature: r.get(1)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(Signed {
            document,
            signatures,
        })
    }

    /// Every version of every agreement, by id then version.
    pub fn agreements(&self) -> Result<Vec<Signed>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, version FROM agreements ORDER BY id, version")?;
        let keys: Vec<(String, u32)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        keys.into_iter()
            .map(|(id, v)| self.agreement(&id, Some(v)))
            .collect()
    }

    /// Store a termination notice after checking it is signed by a party
    /// of a stored agreement with a key its keyring accepts now.
    pub fn put_termination(&mut self, signed: &Signed, now: Timestamp) -> Result<Termination> {
        let t: Termination = signed.parse()?;
        // An unknown agreement is a rejection of the notice, not a failure
        // of the node: non-parties never hold the agreement.
        let a: Agreement = match self.agreement(&t.agreement_id, None) {
            Ok(s) => s.parse()?,
            Err(TrustError::NotFound(_)) => {
                return Err(TrustError::Inconsistent(format!(
                    "termination of {}, an agreement not held here",
                    t.agreement_id
                )));
            }
            Err(e) => return Err(e),
        };
        if !a.party_ids().any(|p| p == t.by) {
            return Err(TrustError::Inconsistent(format!(
                "{} is not a party to {}",
                t.by, t.agreement_id
            )));
        }
        let ring = self.keyring_of(&t.by)?;
        let given = crate::signed::parse_time("notice_given", &t.notice_given)?;
        let ok = signed.signatures.iter().any(|s| {
            ring.get(&s.key_id).is_some_and(|k| {
                signed.check(&k.key) == SigCheck::Valid
                    && ring.accept(&s.key_id, given, now).is_ok()
            })
        });
        if !ok {
            return Err(TrustError::MissingSignature {
                key_id: format!("a valid key of {}", t.by),
            });
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO terminations (digest, agreement_id, body, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                signed.digest(),
                t.agreement_id,
                serde_json::to_string(signed)?,
                format_time(now)
            ],
        )?;
        Ok(t)
    }

    /// Store a removal after checking it names two distinct parties of a
    /// stored version of the agreement and is signed by the removing
    /// party with a key its keyring accepts.
    pub fn put_removal(&mut self, signed: &Signed, now: Timestamp) -> Result<Removal> {
        let r: Removal = signed.parse()?;
        let a: Agreement = match self.agreement(&r.agreement_id, Some(r.agreement_version)) {
            Ok(s) => s.parse()?,
            Err(TrustError::NotFound(_)) => {
                return Err(TrustError::Inconsistent(format!(
                    "removal from {} version {}, which is not held here",
                    r.agreement_id, r.agreement_version
                )));
            }
            Err(e) => return Err(e),
        };
        r.check(&a)?;
        let ring = self.keyring_of(&r.by)?;
        let time = crate::signed::parse_time("time", &r.time)?;
        let ok = signed.signatures.iter().any(|s| {
            ring.get(&s.key_id).is_some_and(|k| {
                signed.check(&k.key) == SigCheck::Valid && ring.accept(&s.key_id, time, now).is_ok()
            })
        });
        if !ok {
            return Err(TrustError::MissingSignature {
                key_id: format!("a valid key of {}", r.by),
            });
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO removals (digest, agreement_id, body, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                signed.digest(),
                r.agreement_id,
                serde_json::to_string(signed)?,
                format_time(now)
            ],
        )?;
        Ok(r)
    }

    /// Every removal held.
    pub fn removals(&self) -> Result<Vec<Removal>> {
        let mut stmt = self
            .conn
            .prepare("SELECT body FROM removals ORDER BY received_at, digest")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(Signed::from_json(&row?)?.parse()?);
        }
        Ok(out)
    }

    /// Every termination notice held, with when it arrived here.
    pub fn terminations(&self) -> Result<Vec<Notice>> {
        let mut stmt = self
            .conn
            .prepare("SELECT body, received_at FROM terminations ORDER BY received_at, digest")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (body, received) = row?;
            out.push(Notice {
                signed: Signed::from_json(&body)?,
                received_at: Some(crate::signed::parse_time("received_at", &received)?),
            });
        }
        Ok(out)
    }

    /// Evaluate one stored version against everything stored.
    pub fn evaluate(
        &self,
        id: &str,
        version: Option<u32>,
        now: Timestamp,
    ) -> Result<Result<InForce, NotInForce>> {
        let signed = self.agreement(id, version)?;
        Ok(crate::agreement::in_force(
            &signed,
            &self.keyrings()?,
            now,
            &self.terminations()?,
            &self.agreements()?,
        ))
    }

    /// Every stored version with its evaluation.
    pub fn evaluate_all(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(Signed, Result<InForce, NotInForce>)>> {
        let rings = self.keyrings()?;
        let terms = self.terminations()?;
        let all = self.agreements()?;
        Ok(all
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    crate::agreement::in_force(s, &rings, now, &terms, &all),
                )
            })
            .collect())
    }

    /// The machine-readable view of the agreements in force at `now`.
    pub fn in_force_view(&self, now: Timestamp) -> Result<AgreementsInForce> {
        let rings = self.keyrings()?;
        let forces: Vec<InForce> = self
            .evaluate_all(now)?
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .collect();
        let mut view = crate::agreement::view(&forces, &rings, now);
        let local = self.self_node_id()?.unwrap_or_default();
        crate::agreement::apply_removals(&mut view, &self.removals()?, &local);
        Ok(view)
    }
}

fn insert_statement(tx: &rusqlite::Transaction<'_>, node_id: &str, s: &Signed) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO statements (node_id, digest, body) VALUES (?1, ?2, ?3)",
        params![node_id, s.digest(), serde_json::to_string(s)?],
    )?;
    Ok(())
}
