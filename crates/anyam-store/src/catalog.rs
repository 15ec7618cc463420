//! The catalog: the small tables every request reads before its page (API
//! roots, collections and the release classes each holds, organizations,
//! users, tokens, grants, and the `policy.` settings), kept in memory.
//!
//! Reading them took six to eight queries per request: about 4% of the
//! instructions of a GET of 100 objects, and more while each query could
//! land on a freshly opened connection. Now a read asks only whether the
//! catalog changed: one row, `catalog_generation.gen`, which triggers
//! (schema version 7) bump in the same transaction as any change to
//! those tables, whichever process made it. A changed generation reloads the whole catalog in one
//! read transaction, so what a request sees is always one committed state
//! of it, no older than the generation read at the start of that call.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use crate::sqlite::{
    TOKEN_COLS, USER_COLS, api_root_row, collection_row, grant_row, token_row, user_row,
};
use crate::{
    ApiRoot, Collection, Ctx, Grant, Organization, ReleaseClass, Result, StoreError, Token, User,
};

/// Meta keys under this prefix are settings the policy reads on every
/// request: they are part of the catalog (see `meta_catalog_*` triggers).
pub const POLICY_META_PREFIX: &str = "policy.";

/// One committed state of the catalog tables.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub generation: i64,
    /// In creation order.
    pub api_roots: Vec<ApiRoot>,
    /// In creation order.
    pub collections: Vec<Collection>,
    /// By collection id: its release classes, by class number.
    pub classes: HashMap<String, Vec<ReleaseClass>>,
    /// In creation order.
    pub orgs: Vec<Organization>,
    pub users: HashMap<String, User>,
    pub tokens: HashMap<[u8; 32], Token>,
    /// By organization, then collection.
    pub grants: Vec<Grant>,
    /// The meta rows whose key starts with [`POLICY_META_PREFIX`].
    pub policy_meta: HashMap<String, String>,
}

/// The generation the file is at now.
pub(crate) fn generation(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT gen FROM catalog_generation")
        .ctx("preparing the catalog generation")?
        .query_row([], |r| r.get(0))
        .ctx("reading the catalog generation")
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    what: &str,
) -> Result<Vec<T>> {
    let mut st = conn.prepare(sql).ctx(what)?;
    st.query_map([], map)
        .ctx(what)?
        .collect::<rusqlite::Result<_>>()
        .ctx(what)
}

impl Catalog {
    /// Read the whole catalog in one read transaction.
    pub(crate) fn load(conn: &Connection) -> Result<Catalog> {
        let tx = conn
            .unchecked_transaction()
            .ctx("starting the catalog read")?;
        let generation = generation(&tx)?;
        let api_roots = all(
            &tx,
            "SELECT name, title, description, max_content_length FROM api_roots ORDER BY seq",
            api_root_row,
            "reading api roots",
        )?;
        let collections = all(
            &tx,
            "SELECT id, api_root, title, description, alias FROM collections ORDER BY cid",
            collection_row,
            "reading collections",
        )?;
        let mut classes: HashMap<String, Vec<ReleaseClass>> = HashMap::new();
        for (collection, class) in all(
            &tx,
            "SELECT co.id, c.class, c.label FROM collection_classes cc
             JOIN collections co ON co.cid = cc.cid
             JOIN release_classes c ON c.class = cc.class
             ORDER BY co.cid, c.class",
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ReleaseClass {
                        class: r.get(1)?,
                        label: r.get(2)?,
                    },
                ))
            },
            "reading release classes",
        )? {
            classes.entry(collection).or_default().push(class);
        }
        let orgs = all(
            &tx,
            "SELECT name, title FROM orgs ORDER BY seq",
            |r| {
                Ok(Organization {
                    name: r.get(0)?,
                    title: r.get(1)?,
                })
            },
            "reading organizations",
        )?;
        let users = all(&tx, USER_COLS, user_row, "reading users")?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        let tokens = all(&tx, TOKEN_COLS, token_row, "reading tokens")?
            .into_iter()
            .map(|t| (t.sha256, t))
            .collect();
        let grants = all(
            &tx,
            "SELECT org, collection, can_read, can_write FROM grants ORDER BY org, collection",
            grant_row,
            "reading grants",
        )?;
        let policy_meta = all(
            &tx,
            "SELECT key, value FROM meta WHERE key LIKE 'policy.%'",
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            "reading policy settings",
        )?
        .into_iter()
        .filter(|(k, _)| k.starts_with(POLICY_META_PREFIX))
        .collect();
        tx.finish().ctx("ending the catalog read")?;
        Ok(Catalog {
            generation,
            api_roots,
            collections,
            classes,
            orgs,
            users,
            tokens,
            grants,
            policy_meta,
        })
    }

    pub(crate) fn api_root(&self, name: &str) -> Option<ApiRoot> {
        self.api_roots.iter().find(|r| r.name == name).cloned()
    }

    pub(crate) fn collections(&self, api_root: &str) -> Vec<Collection> {
        self.collections
            .iter()
            .filter(|c| c.api_root == api_root)
            .cloned()
            .collect()
    }

    pub(crate) fn collection(&self, api_root: &str, id: &str) -> Option<Collection> {
        self.collections
            .iter()
            .find(|c| c.id == id && c.api_root == api_root)
            .cloned()
    }

    /// The collection's release classes; `NotFound` for an unknown
    /// collection, as the query it replaces answered.
    pub(crate) fn release_classes(&self, collection: &str) -> Result<Vec<ReleaseClass>> {
        if !self.collections.iter().any(|c| c.id == collection) {
            return Err(StoreError::NotFound(format!("collection {collection:?}")));
        }
        Ok(self.classes.get(collection).cloned().unwrap_or_default())
    }

    pub(crate) fn grants(&self, org: Option<&str>) -> Vec<Grant> {
        self.grants
            .iter()
            .filter(|g| org.is_none_or(|o| g.org == o))
            .cloned()
            .collect()
    }
}

/// The kept catalog and how to get a current one.
#[derive(Default)]
pub(crate) struct CatalogCache {
    kept: std::sync::Mutex<Option<Arc<Catalog>>>,
}

impl CatalogCache {
    /// The catalog as of now: the kept one if the file's generation is
    /// still its generation, else one read afresh (and kept).
    pub(crate) fn current(&self, conn: &Connection) -> Result<Arc<Catalog>> {
        let now = generation(conn)?;
        if let Some(c) = self.lock().as_ref()
            && c.generation == now
        {
            return Ok(Arc::clone(c));
        }
        let fresh = Arc::new(Catalog::load(conn)?);
        let mut kept = self.lock();
        // Keep the newer of two concurrent reloads.
        if kept
            .as_ref()
            .is_none_or(|k| k.generation <= fresh.generation)
        {
            *kept = Some(Arc::clone(&fresh));
        }
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Catalog>>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
