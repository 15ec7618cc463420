//! A node's data directory: opening it, and creating everything on first
//! start (configuration, database, signing key, recovery key, TLS pair, host
//! organization, admin user, default API root and collection).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyam_store::{Access, ApiRoot, Collection, Grant, Organization, SqliteStore, Store, User};
use anyhow::{Context, Result, bail};

use crate::config::{CONFIG_FILE, FileConfig, Synchronous};
use crate::identity;

/// The database file inside the data directory.
pub const DB_FILE: &str = "anyam.db";
/// The host organization: the one that runs the node.
pub const HOST_ORG: &str = "host";
pub const ADMIN_USER: &str = "admin";
pub const DEFAULT_API_ROOT: &str = "anyam";
/// Default `max_content_length` of API roots: 100 MiB.
pub const DEFAULT_MAX_CONTENT: u64 = 100 * 1024 * 1024;

/// An open data directory.
pub struct Node {
    pub dir: PathBuf,
    pub config: FileConfig,
    pub store: Arc<dyn Store>,
}

impl Node {
    /// The one door for reading data out of this node, with the node's
    /// release policy: its id, host organization, default for unmarked
    /// data, and the agreements in force in its trust database.
    pub fn gate(&self) -> Result<anyam_policy::Gate> {
        let trust = identity::open_trust(&self.dir)?;
        // Before the first start completed there is no key history; RED
        // recipients on "this node" then match nobody.
        let node_id = trust.self_node_id()?.unwrap_or_default();
        Ok(anyam_policy::Gate::new(
            self.store.clone(),
            anyam_policy::PolicyConfig {
                node_id,
                host_org: HOST_ORG.into(),
                unmarked: self.config.policy.unmarked,
            },
            Arc::new(crate::federation::TrustView::from_store(trust)),
        ))
    }
}

/// What first start created, to tell the operator once.
pub struct Created {
    pub admin_password: Option<String>,
    pub password_from_env: bool,
    pub collection_id: String,
}

fn open_store(dir: &Path, config: &FileConfig) -> Result<Arc<dyn Store>> {
    let db = dir.join(DB_FILE);
    let opts = anyam_store::SqliteOptions {
        synchronous: match config.store.synchronous {
            Synchronous::Full => anyam_store::Synchronous::Full,
            Synchronous::Normal => anyam_store::Synchronous::Normal,
        },
        max_idle_readers: config.store.max_idle_readers,
        cache_kib: config.store.cache_kib,
        mmap_bytes: config.store.mmap_mib.saturating_mul(1 << 20),
    };
    let store = SqliteStore::open(&db, opts)
        .with_context(|| format!("opening the database {}", db.display()))?;
    relabel_legacy(&store)?;
    Ok(Arc::new(store))
}

/// The meta key recording that every stored version carries a release
/// label.
const LABELLED_KEY: &str = "release_labels";

/// Versions stored before release labels existed are released to no one
/// until they have one: give it to them once, from their own markings
/// (their source is taken to be the host organization).
fn relabel_legacy(store: &SqliteStore) -> Result<()> {
    if store.meta(LABELLED_KEY)?.is_some() {
        return Ok(());
    }
    let n = store
        .relabel_unlabelled(
            &mut |raw| match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(v) => anyam_policy::label_of(&v).key(),
                // Stored objects are valid JSON; anything else stays
                // unreleasable (and must leave class 0, or this never ends).
                Err(e) => anyam_policy::Label {
                    malformed: Some(format!("the stored text is not JSON: {e}")),
                    ..anyam_policy::Label::default()
                }
                .key(),
            },
            5_000,
        )
        .context("giving stored objects their release labels")?;
    if n > 0 {
        tracing::info!(versions = n, "stored objects given release labels");
    }
    store.set_meta(LABELLED_KEY, "1")?;
    Ok(())
}

/// Open an existing data directory (administration commands). Fails with a
/// clear message when the node was never started there.
pub fn open_existing(dir: &Path, config_path: Option<&Path>) -> Result<Node> {
    open_existing_tuned(dir, config_path, |_| {})
}

/// [`open_existing`] with settings of this process's own changed (for
/// example a bulk import's larger page cache), the file left as it is.
pub fn open_existing_tuned(
    dir: &Path,
    config_path: Option<&Path>,
    tune: impl FnOnce(&mut FileConfig),
) -> Result<Node> {
    if !dir.join(DB_FILE).exists() {
        bail!(
            "{} holds no Anyam node (no {DB_FILE}); start one there first with `anyam serve --data-dir {}`",
            dir.display(),
            dir.display()
        );
    }
    let mut config =
        FileConfig::load(&config_path.map_or_else(|| dir.join(CONFIG_FILE), Path::to_path_buf))?;
    tune(&mut config);
    let store = open_store(dir, &config)?;
    Ok(Node {
        dir: dir.to_path_buf(),
        config,
        store,
    })
}

/// Create the data directory and configuration file if absent, open the
/// store, and make sure every first-start item exists. Each step checks
/// before it creates, so a first start interrupted half-way completes on
/// the next start.
pub fn open_or_init(
    dir: &Path,
    config_path: Option<&Path>,
    admin_password: Option<String>,
) -> Result<(Node, Option<Created>)> {
    create_private_dir(dir)?;
    let cfg_path = config_path.map_or_else(|| dir.join(CONFIG_FILE), Path::to_path_buf);
    if config_path.is_none() && !cfg_path.exists() {
        std::fs::write(&cfg_path, FileConfig::render_default()?)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
    }
    let config = FileConfig::load(&cfg_path)?;
    let store = open_store(dir, &config)?;
    identity::ensure_node_key(dir)?;
    if let Some(r) = identity::ensure_recovery_key(dir)? {
        // Told once, like the admin password: the running node never needs
        // this key, so it should not stay on the machine that may be the
        // one compromised.
        println!("Recovery key written to {}", r.private_path.display());
        println!("  node id:        {}", r.node_id);
        println!(
            "  move it offline now; it is needed only for `anyam key revoke` after a node key compromise"
        );
    }

    let mut created = None;
    if store.meta("initialized")?.is_none() {
        if !store.orgs()?.iter().any(|o| o.name == HOST_ORG) {
            store.create_org(&Organization {
                name: HOST_ORG.into(),
                title: config.node_name.clone(),
            })?;
        }
        let mut admin_password_out = None;
        let from_env = admin_password.is_some();
        if store.user(ADMIN_USER)?.is_none() {
            let password = admin_password.unwrap_or_else(random_password);
            let phc = anyam_taxii::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            store.create_user(&User {
                name: ADMIN_USER.into(),
                org: HOST_ORG.into(),
                password_phc: Some(phc),
                is_admin: true,
                generation: 0,
                disabled: false,
            })?;
            admin_password_out = Some(password);
        }
        if store.api_root(DEFAULT_API_ROOT)?.is_none() {
            store.create_api_root(&ApiRoot {
                name: DEFAULT_API_ROOT.into(),
                title: format!("{} default API root", config.node_name),
                description: None,
                max_content_length: DEFAULT_MAX_CONTENT,
            })?;
        }
        let collection_id = match store
            .collections(DEFAULT_API_ROOT)?
            .into_iter()
            .find(|c| c.title == "default")
        {
            Some(c) => c.id,
            None => {
                let c = Collection {
                    id: uuid::Uuid::new_v4().to_string(),
                    api_root: DEFAULT_API_ROOT.into(),
                    title: "default".into(),
                    description: Some("The node's default writable collection.".into()),
                    alias: Some("default".into()),
                };
                store.create_collection(&c)?;
                c.id
            }
        };
        store.set_grant(&Grant {
            org: HOST_ORG.into(),
            collection: collection_id.clone(),
            access: Access {
                read: true,
                write: true,
            },
        })?;
        store.set_meta("default_api_root", DEFAULT_API_ROOT)?;
        store.set_meta("initialized", &jiff::Timestamp::now().to_string())?;
        created = Some(Created {
            admin_password: admin_password_out,
            password_from_env: from_env,
            collection_id,
        });
    }
    Ok((
        Node {
            dir: dir.to_path_buf(),
            config,
            store,
        },
        created,
    ))
}

/// A 24-character password from the URL-safe alphabet (144 bits).
pub fn random_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Create a directory readable by its owner only (it holds keys and data).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
