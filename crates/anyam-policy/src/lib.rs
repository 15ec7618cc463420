//! The release decision: which principal may see which collection, object and
//! status resource, and the only door through which data is read for release.
//!
//! # Design
//!
//! A leak is the worst bug this project can have, so there is exactly one
//! function that decides whether a principal may read from a collection
//! ([`decide`]), and exactly one type through which data is read for anyone
//! outside the store: [`Gate`]. The TAXII handlers and the `export` command
//! hold a `Gate`, never a bare [`Store`] reference for reading, so no read
//! path can reach the store around the decision.
//!
//! Today the decision rests on collection grants (an organization's read
//! and/or write right on a collection) narrowed by the token scope. The
//! marking (TLP 2.0) and agreement checks extend [`decide`] and the
//! per-object filter that `Gate` hands the store, in this one place.
//!
//! A collection or object that the caller may not see is indistinguishable
//! from one that does not exist: [`Denied::NotFound`] is returned for both.
//! [`Denied::Forbidden`] is only returned where the caller already knows the
//! collection exists because it holds some grant on it (TAXII 2.1 §1.6.8:
//! 403 for a collection the caller can list but not read or write).
//!
//! # What it is not
//!
//! Not authentication (the HTTP layer turns credentials into a
//! [`Principal`]), and not storage.

use std::sync::Arc;

use anyam_store::{
    Access, Collection, ManifestEntry, Page, Query, Status, Store, StoreError, StoredObject,
    TokenScope, VersionSel,
};

/// Who is asking. Built by the authentication layer from a verified
/// password or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub org: String,
    /// Node administrators manage the node; being one grants no read right
    /// on data by itself.
    pub is_admin: bool,
    pub scope: TokenScope,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The resource does not exist, or the caller may not know it exists.
    #[error("not found")]
    NotFound,
    /// The caller holds a grant on the collection but not for this action.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a principal wants to do with a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    /// Deleting needs both rights (the caller must be able to see what it
    /// deletes).
    Delete,
}

/// The one decision: may `p`, whose organization holds `grant` on a
/// collection, perform `action` on it?
///
/// `Err(NotFound)` when the principal holds no effective right at all (the
/// collection is then invisible to it); `Err(Forbidden)` when it holds some
/// right but not the one asked for.
pub fn decide(p: &Principal, grant: Access, action: Action) -> Result<(), Denied> {
    let effective = effective_access(p, grant);
    if !effective.read && !effective.write {
        return Err(Denied::NotFound);
    }
    let ok = match action {
        Action::Read => effective.read,
        Action::Write => effective.write,
        Action::Delete => effective.read && effective.write,
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::Forbidden(match action {
            Action::Read => "the caller may not read this collection",
            Action::Write => "the caller may not write to this collection",
            Action::Delete => "the caller may not delete from this collection",
        }))
    }
}

/// The grant narrowed by the token's scope.
pub fn effective_access(p: &Principal, grant: Access) -> Access {
    match p.scope {
        TokenScope::Full => grant,
        TokenScope::ReadOnly => Access {
            read: grant.read,
            write: false,
        },
        TokenScope::WriteOnly => Access {
            read: false,
            write: grant.write,
        },
    }
}

/// The only way data is read from the store for release. Every method
/// applies [`decide`] before it touches objects.
#[derive(Clone)]
pub struct Gate {
    store: Arc<dyn Store>,
}

impl Gate {
    pub fn new(store: Arc<dyn Store>) -> Gate {
        Gate { store }
    }

    fn grant(&self, p: &Principal, collection: &str) -> Result<Access, Denied> {
        Ok(self
            .store
            .grants(Some(&p.org))?
            .into_iter()
            .find(|g| g.collection == collection)
            .map(|g| g.access)
            .unwrap_or_default())
    }

    /// The collections of an API root that `p` may see, with what it may do
    /// there (TAXII `can_read`/`can_write`). Collections without any
    /// effective right are left out.
    pub fn collections(
        &self,
        p: &Principal,
        api_root: &str,
    ) -> Result<Vec<(Collection, Access)>, Denied> {
        let grants = self.store.grants(Some(&p.org))?;
        let mut out = Vec::new();
        for c in self.store.collections(api_root)? {
            let grant = grants
                .iter()
                .find(|g| g.collection == c.id)
                .map(|g| g.access)
                .unwrap_or_default();
            let eff = effective_access(p, grant);
            if eff.read || eff.write {
                out.push((c, eff));
            }
        }
        Ok(out)
    }

    /// One collection, named by id or alias, if `p` may do `action` on it.
    pub fn collection(
        &self,
        p: &Principal,
        api_root: &str,
        id: &str,
        action: Action,
    ) -> Result<(Collection, Access), Denied> {
        // `id` may be the collection's id or its alias (TAXII 2.1 §5.2.1).
        let c = match self.store.collection(api_root, id)? {
            Some(c) => c,
            None => self
                .store
                .collections(api_root)?
                .into_iter()
                .find(|c| c.alias.as_deref() == Some(id))
                .ok_or(Denied::NotFound)?,
        };
        let grant = self.grant(p, &c.id)?;
        decide(p, grant, action)?;
        Ok((c, effective_access(p, grant)))
    }

    /// The objects endpoint's page, for a reader.
    pub fn objects(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        q: &Query,
    ) -> Result<Page<StoredObject>, Denied> {
        let (c, _) = self.collection(p, api_root, collection, Action::Read)?;
        Ok(self.store.objects(&c.id, q)?)
    }

    /// The manifest endpoint's page, for a reader.
    pub fn manifest(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        q: &Query,
    ) -> Result<Page<ManifestEntry>, Denied> {
        let (c, _) = self.collection(p, api_root, collection, Action::Read)?;
        Ok(self.store.manifest(&c.id, q)?)
    }

    /// The versions of one object, for a reader.
    pub fn versions(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        id: &str,
        q: &Query,
    ) -> Result<Page<ManifestEntry>, Denied> {
        let (c, _) = self.collection(p, api_root, collection, Action::Read)?;
        Ok(self.store.versions(&c.id, id, q)?)
    }

    /// Delete versions of one object; the caller must be able to read and
    /// write the collection. Deleting what the caller cannot see is
    /// reported as not found.
    pub fn delete(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
    ) -> Result<u64, Denied> {
        let (c, _) = self.collection(p, api_root, collection, Action::Delete)?;
        let n = self
            .store
            .delete_object(&c.id, id, versions, spec_versions)?;
        if n == 0 {
            return Err(Denied::NotFound);
        }
        Ok(n)
    }

    /// A status resource: only the organization that made the request may
    /// read it back; to anyone else it does not exist.
    pub fn status(&self, p: &Principal, api_root: &str, id: &str) -> Result<Status, Denied> {
        match self.store.status(api_root, id)? {
            Some(s) if s.owner_org == p.org => Ok(s),
            _ => Err(Denied::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(scope: TokenScope) -> Principal {
        Principal {
            user: "u".into(),
            org: "o".into(),
            is_admin: false,
            scope,
        }
    }
    const NONE: Access = Access {
        read: false,
        write: false,
    };
    const R: Access = Access {
        read: true,
        write: false,
    };
    const W: Access = Access {
        read: false,
        write: true,
    };
    const RW: Access = Access {
        read: true,
        write: true,
    };

    #[test]
    fn decision_table() {
        use Action::*;
        use TokenScope::*;
        // (scope, grant, action, expected: 0 ok, 1 forbidden, 2 not found)
        let cases = [
            (Full, NONE, Read, 2),
            (Full, NONE, Write, 2),
            (Full, R, Read, 0),
            (Full, R, Write, 1),
            (Full, R, Delete, 1),
            (Full, W, Read, 1),
            (Full, W, Write, 0),
            (Full, RW, Delete, 0),
            (ReadOnly, RW, Write, 1),
            (ReadOnly, RW, Read, 0),
            (ReadOnly, W, Read, 2),
            (WriteOnly, RW, Read, 1),
            (WriteOnly, R, Write, 2),
            (WriteOnly, RW, Delete, 1),
        ];
        for (scope, grant, action, want) in cases {
            let got = match decide(&p(scope), grant, action) {
                Ok(()) => 0,
                Err(Denied::Forbidden(_)) => 1,
                Err(Denied::NotFound) => 2,
                Err(e) => panic!("unexpected {e}"),
            };
            assert_eq!(got, want, "{scope:?} {grant:?} {action:?}");
        }
    }
}
