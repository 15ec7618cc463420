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
//! Two layers, one door. [`decide`] is the collection-level decision:
//! an organization's grant on a collection (read and/or write) narrowed by
//! the token scope. [`decide_release`] is the object-level decision: may
//! this object version go to this reader through this path, by its TLP 2.0
//! markings, its named recipients, its source, and for partner nodes the
//! agreements in force (see [`decision`] for the rules). `Gate` applies
//! both on every read: it turns the reader into the release classes (and
//! object types) [`decide_release`] admits, and the store applies them
//! inside its page indexes, so nothing the reader may not see is ever read
//! for it and a page costs the same however little of a collection the
//! reader may see.
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

pub mod decision;
pub mod marking;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyam_store::{
    Access, ClassScope, Collection, ManifestEntry, Page, Query, Search, Status, Store, StoreError,
    StoredObject, TokenScope, TypeScope, VersionSel,
};
use anyam_trust::{AgreementsInForce, Tlp};

pub use decision::{
    Accepted, Path, Reader, Rules, Version, Withheld, decide_release, decide_sighting_report,
    distinguished_types, effective,
};
pub use marking::{Label, Origin, Recipient, Source, label_of};

/// The store `meta` key under which the operator's accepted markings are
/// kept (a JSON object: marking id → [`Accepted`]).
pub const ACCEPTED_MARKINGS_KEY: &str = "policy.accepted_markings";

/// The node-wide settings of the release decision.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// This node's id (the recovery key id).
    pub node_id: String,
    /// The organization that runs the node.
    pub host_org: String,
    /// The level of data without a TLP marking. The safe default,
    /// AMBER+STRICT, shares nothing outside the host organization (and the
    /// organization that submitted it). RED makes unmarked data go to no
    /// one at all (it names no recipients, and the submitting user of
    /// unmarked data is not kept); the node's configuration refuses it.
    pub unmarked: Tlp,
}

/// Where the agreements in force come from (the trust database, evaluated
/// at the time of asking). Only releases to partner nodes read them.
pub trait AgreementSource: Send + Sync {
    fn in_force(&self) -> Result<AgreementsInForce, String>;
}

/// No agreements at all: nothing is released to any partner.
pub struct NoAgreements;

impl AgreementSource for NoAgreements {
    fn in_force(&self) -> Result<AgreementsInForce, String> {
        Ok(AgreementsInForce {
            schema_version: 1,
            evaluated_at: String::new(),
            agreements: Vec::new(),
        })
    }
}

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
    /// The policy's own inputs could not be read (accepted markings,
    /// agreements): nothing is released.
    #[error("release policy unavailable: {0}")]
    Policy(String),
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
/// applies [`decide`] to the collection and [`decide_release`] to every
/// object version before it touches objects.
#[derive(Clone)]
pub struct Gate {
    store: Arc<dyn Store>,
    config: Arc<PolicyConfig>,
    agreements: Arc<dyn AgreementSource>,
}

impl Gate {
    pub fn new(
        store: Arc<dyn Store>,
        config: PolicyConfig,
        agreements: Arc<dyn AgreementSource>,
    ) -> Gate {
        Gate {
            store,
            config: Arc::new(config),
            agreements,
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The source a write by `p` gives the versions it stores: no
    /// organization for the host organization itself.
    pub fn source_of(&self, p: &Principal) -> (Option<String>, Option<String>) {
        let org = (p.org != self.config.host_org).then(|| p.org.clone());
        (org, Some(p.user.clone()))
    }

    /// The rules as they stand now: local organizations and accepted
    /// markings from the store, agreements only for partner readers.
    pub fn rules(&self, with_agreements: bool) -> Result<Rules, Denied> {
        let local_orgs = self.store.orgs()?.into_iter().map(|o| o.name).collect();
        let accepted = accepted_markings(self.store.as_ref())?;
        let agreements = if with_agreements {
            self.agreements.in_force().map_err(Denied::Policy)?
        } else {
            NoAgreements.in_force().map_err(Denied::Policy)?
        };
        Ok(Rules {
            node_id: self.config.node_id.clone(),
            host_org: self.config.host_org.clone(),
            local_orgs,
            unmarked: self.config.unmarked,
            accepted,
            agreements,
        })
    }

    /// The release classes of `collection` that `reader` may see through
    /// `via`, each with the object types it may see there, derived from
    /// [`decide_release`] alone: every class is decided for each object
    /// type the rules tell apart for this reader, and once for "any other
    /// type".
    pub fn visible(
        &self,
        rules: &Rules,
        reader: &Reader,
        collection: &str,
        via: Path,
    ) -> Result<Vec<ClassScope>, Denied> {
        let types = distinguished_types(reader, rules);
        let mut out = Vec::new();
        for c in self.store.release_classes(collection)? {
            let label = Label::from_key(&c.label);
            let admits = |object_type: &str| {
                let v = Version {
                    label: label.as_ref(),
                    collection,
                    object_type,
                };
                decide_release(&v, reader, via, rules).is_ok()
            };
            let (mut yes, mut no) = (Vec::new(), Vec::new());
            for t in &types {
                if admits(t) {
                    yes.push(t.clone());
                } else {
                    no.push(t.clone());
                }
            }
            let scope = if admits(decision::OTHER_TYPE) {
                Some(if no.is_empty() {
                    TypeScope::Any
                } else {
                    TypeScope::Except(no)
                })
            } else if !yes.is_empty() {
                Some(TypeScope::Only(yes))
            } else {
                None
            };
            if let Some(types) = scope {
                out.push(ClassScope {
                    class: c.class,
                    types,
                });
            }
        }
        Ok(out)
    }

    /// `q` narrowed to what `p` may see in collection `c` through `via`.
    fn narrowed(
        &self,
        p: &Principal,
        c: &Collection,
        access: Access,
        q: &Query,
        via: Path,
    ) -> Result<Query, Denied> {
        let rules = self.rules(false)?;
        let reader = Reader::Local {
            user: &p.user,
            org: &p.org,
            access,
        };
        let mut q = q.clone();
        q.visible = Some(self.visible(&rules, &reader, &c.id, via)?);
        Ok(q)
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

    fn find_collection(&self, api_root: &str, id: &str) -> Result<Option<Collection>, Denied> {
        // `id` may be the collection's id or its alias (TAXII 2.1 §5.2.1).
        Ok(match self.store.collection(api_root, id)? {
            Some(c) => Some(c),
            None => self
                .store
                .collections(api_root)?
                .into_iter()
                .find(|c| c.alias.as_deref() == Some(id)),
        })
    }

    /// One collection, named by id or alias, if `p` may do `action` on it.
    pub fn collection(
        &self,
        p: &Principal,
        api_root: &str,
        id: &str,
        action: Action,
    ) -> Result<(Collection, Access), Denied> {
        let c = self
            .find_collection(api_root, id)?
            .ok_or(Denied::NotFound)?;
        let grant = self.grant(p, &c.id)?;
        decide(p, grant, action)?;
        Ok((c, effective_access(p, grant)))
    }

    /// For the audit log only: why the collection named `id` is invisible
    /// to `p`, if it exists and is. What it returns is never shown to `p`.
    pub fn why_hidden(&self, p: &Principal, api_root: &str, id: &str) -> Option<String> {
        let c = self.find_collection(api_root, id).ok()??;
        let grant = self.grant(p, &c.id).ok()?;
        let effective = effective_access(p, grant);
        if effective.read || effective.write {
            // Visible: the 404 was about something absent inside it.
            return None;
        }
        Some(if grant.read || grant.write {
            format!(
                "hidden: the token's {:?} scope leaves organization {} no right on collection {} (answered 404, as for an absent collection)",
                p.scope, p.org, c.id
            )
        } else {
            format!(
                "hidden: organization {} holds no grant on collection {} (answered 404, as for an absent collection)",
                p.org, c.id
            )
        })
    }

    /// The objects endpoint's page, for a reader.
    pub fn objects(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        q: &Query,
    ) -> Result<Page<StoredObject>, Denied> {
        self.objects_via(p, api_root, collection, q, Path::Objects)
    }

    /// Objects for a reader through another path (export, search).
    pub fn objects_via(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        q: &Query,
        via: Path,
    ) -> Result<Page<StoredObject>, Denied> {
        let (c, access) = self.collection(p, api_root, collection, Action::Read)?;
        let q = self.narrowed(p, &c, access, q, via)?;
        Ok(self.store.objects(&c.id, &q)?)
    }

    /// The manifest endpoint's page, for a reader.
    pub fn manifest(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        q: &Query,
    ) -> Result<Page<ManifestEntry>, Denied> {
        let (c, access) = self.collection(p, api_root, collection, Action::Read)?;
        let q = self.narrowed(p, &c, access, q, Path::Manifest)?;
        Ok(self.store.manifest(&c.id, &q)?)
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
        let (c, access) = self.collection(p, api_root, collection, Action::Read)?;
        let q = self.narrowed(p, &c, access, q, Path::Versions)?;
        Ok(self.store.versions(&c.id, id, &q)?)
    }

    /// Search every collection of an API root that `p` may read, within
    /// what it may see there (the same release classes as every other
    /// read). Newest first, at most `s.limit`; the flag says whether more
    /// matched.
    pub fn search(
        &self,
        p: &Principal,
        api_root: &str,
        s: &Search,
    ) -> Result<(Vec<SearchHit>, bool), Denied> {
        let rules = self.rules(false)?;
        let limit = s.limit.max(1);
        let mut hits = Vec::new();
        let mut more = false;
        for (c, access) in self.collections(p, api_root)? {
            if !access.read {
                continue;
            }
            let reader = Reader::Local {
                user: &p.user,
                org: &p.org,
                access,
            };
            let visible = self.visible(&rules, &reader, &c.id, Path::Search)?;
            let found = self.store.search(&c.id, &visible, s)?;
            more |= found.len() > limit;
            hits.extend(found.into_iter().take(limit).map(|object| SearchHit {
                collection: c.id.clone(),
                object,
            }));
        }
        hits.sort_by_key(|h| std::cmp::Reverse(h.object.date_added));
        if hits.len() > limit {
            more = true;
            hits.truncate(limit);
        }
        Ok((hits, more))
    }

    /// Objects of a collection for a partner node (sync, live stream,
    /// partner export): what the agreements in force with it admit.
    pub fn partner_objects(
        &self,
        node_id: &str,
        collection_id: &str,
        q: &Query,
        via: Path,
    ) -> Result<Page<StoredObject>, Denied> {
        let q = self.partner_query(node_id, collection_id, q, via)?;
        Ok(self.store.objects(collection_id, &q)?)
    }

    /// The collections of an API root that partner `node_id` may read
    /// from: those in the scope of an agreement in force between it and
    /// this node. Every other collection does not exist for it.
    pub fn partner_collections(
        &self,
        node_id: &str,
        api_root: &str,
    ) -> Result<Vec<Collection>, Denied> {
        let rules = self.rules(true)?;
        Ok(self
            .store
            .collections(api_root)?
            .into_iter()
            .filter(|c| covers(&rules, node_id, &c.id))
            .collect())
    }

    /// The release labels of a collection's classes, for the node's own
    /// bookkeeping of what it releases (never shown to a reader). A class
    /// whose label cannot be read is absent.
    pub fn class_labels(&self, collection_id: &str) -> Result<BTreeMap<i64, Label>, Denied> {
        Ok(self
            .store
            .release_classes(collection_id)?
            .into_iter()
            .filter_map(|c| Label::from_key(&c.label).map(|l| (c.class, l)))
            .collect())
    }

    /// The manifest of a collection for a partner node.
    pub fn partner_manifest(
        &self,
        node_id: &str,
        collection_id: &str,
        q: &Query,
        via: Path,
    ) -> Result<Page<ManifestEntry>, Denied> {
        let q = self.partner_query(node_id, collection_id, q, via)?;
        Ok(self.store.manifest(collection_id, &q)?)
    }

    /// `q` narrowed to what partner `node_id` may see in a collection. A
    /// collection outside every agreement in force with the partner does
    /// not exist for it, exactly like one that does not exist at all.
    fn partner_query(
        &self,
        node_id: &str,
        collection_id: &str,
        q: &Query,
        via: Path,
    ) -> Result<Query, Denied> {
        let rules = self.rules(true)?;
        if !covers(&rules, node_id, collection_id) {
            return Err(Denied::NotFound);
        }
        let reader = Reader::Partner { node_id };
        let visible = match self.visible(&rules, &reader, collection_id, via) {
            Err(Denied::Store(StoreError::NotFound(_))) => return Err(Denied::NotFound),
            other => other?,
        };
        let mut q = q.clone();
        q.visible = Some(visible);
        Ok(q)
    }

    /// Delete versions of one object; the caller must be able to read and
    /// write the collection, and only versions it may see are deleted.
    /// Deleting what the caller cannot see is reported as not found.
    pub fn delete(
        &self,
        p: &Principal,
        api_root: &str,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
    ) -> Result<u64, Denied> {
        let (c, access) = self.collection(p, api_root, collection, Action::Delete)?;
        let q = self.narrowed(p, &c, access, &Query::default(), Path::Delete)?;
        let n =
            self.store
                .delete_object(&c.id, id, versions, spec_versions, q.visible.as_deref())?;
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

    /// For the audit log only: which organization owns a status resource
    /// that `p` was refused. Never shown to `p`.
    pub fn status_owner(&self, api_root: &str, id: &str) -> Option<String> {
        self.store
            .status(api_root, id)
            .ok()
            .flatten()
            .map(|s| s.owner_org)
    }
}

/// One search result: the newest version of an object, and its collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub collection: String,
    pub object: StoredObject,
}

/// Whether an agreement in force between partner `node_id` and this node
/// names `collection_id` in its scope (or names no collection, so covers
/// every one).
fn covers(rules: &Rules, node_id: &str, collection_id: &str) -> bool {
    rules.agreements.with_party(node_id).any(|a| {
        a.parties.iter().any(|p| p.node_id == rules.node_id)
            && (a.scope.collections.is_empty()
                || a.scope.collections.iter().any(|c| c == collection_id))
    })
}

/// The operator's accepted markings, as kept in the store.
pub fn accepted_markings(store: &dyn Store) -> Result<BTreeMap<String, Accepted>, Denied> {
    match store.meta(ACCEPTED_MARKINGS_KEY)? {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            Denied::Policy(format!(
                "the accepted markings in the store do not parse: {e}"
            ))
        }),
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
