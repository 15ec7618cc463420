//! Authentication: HTTP Basic over argon2id password hashes, and API tokens
//! (random 256-bit secrets stored as SHA-256), with throttling of repeated
//! failures.
//!
//! Hashing a password with argon2id on every request would make Basic auth a
//! CPU denial of service and cap the node at a few dozen requests a second.
//! So a verified `(user, password)` pair is remembered by its SHA-256, tied to
//! the user's password *generation*; every request still reads the user's
//! record from the store, so a password change or a disabled account takes
//! effect at once, also when another process (the CLI) made the change.
//!
//! An argon2id verification also takes its memory cost (19 MiB with the
//! default parameters) for as long as it runs. So verifications are bounded:
//! at most [`MAX_HASHING`] run at once, and requests carrying credentials
//! already being verified wait for that verification and then use its
//! cached outcome, rather than each hashing again. Without that, a burst of
//! requests on a cold cache, or a flood of wrong passwords, would take
//! 19 MiB per request in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyam_policy::Principal;
use anyam_store::{Store, TokenScope, User};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every API token, so that a leaked token is recognizable by
/// secret scanners.
pub const TOKEN_PREFIX: &str = "anyam_";

/// Failures allowed per key (user name or client address) within
/// [`FAILURE_WINDOW`] before further attempts are refused for a while.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
const MAX_LOCKOUT: Duration = Duration::from_secs(900);
/// Bounds on the in-memory tables, so that a flood of distinct names cannot
/// grow them without limit.
const MAX_CACHE: usize = 10_000;
const CACHE_TTL: Duration = Duration::from_secs(600);
/// Password verifications allowed to run at once. Each holds the argon2id
/// memory cost (19 MiB by default), so this bounds what Basic auth can take.
/// Two keep both cores of a small machine busy when several users log in.
pub const MAX_HASHING: usize = 2;

/// Why authentication failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No or wrong credentials: 401.
    Invalid,
    /// Too many recent failures for this user or address: 429 with the
    /// seconds to wait.
    Throttled(u64),
    /// The store failed.
    Internal(String),
}

/// Hash a human password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new API token: the secret to hand out once, and the SHA-256 to store.
pub fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = token_digest(&secret);
    (secret, digest)
}

pub fn token_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

struct CachedLogin {
    user: String,
    generation: i64,
    at: Instant,
}

/// Password verifications under way: how many hold a permit, and which
/// credentials (by their cache key) are being verified.
#[derive(Default)]
struct Hashing {
    running: usize,
    keys: HashSet<[u8; 32]>,
    /// Verifications started, and the most that ever ran at once.
    started: u64,
    peak: usize,
}

/// While held: the right to verify one set of credentials. Dropping it
/// (also on unwinding) frees the permit and wakes whoever waits.
struct HashPermit<'a> {
    auth: &'a Authenticator,
    key: [u8; 32],
}

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        let mut h = lock(&self.auth.hashing);
        h.running -= 1;
        h.keys.remove(&self.key);
        drop(h);
        self.auth.hashed.notify_all();
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (each critical section here is a few field updates).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Turns request credentials into a [`Principal`].
pub struct Authenticator {
    store: Arc<dyn Store>,
    verified: Mutex<HashMap<[u8; 32], CachedLogin>>,
    failures: Mutex<HashMap<String, Failures>>,
    hashing: Mutex<Hashing>,
    /// Signalled whenever a verification ends.
    hashed: Condvar,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Authenticator {
        Authenticator {
            store,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            hashing: Mutex::new(Hashing::default()),
            hashed: Condvar::new(),
        }
    }

    /// Wait until these credentials may be verified: no other verification
    /// of the same key is under way, and fewer than [`MAX_HASHING`] run.
    /// `None` when, while waiting, a verification of the same key ended
    /// with success: the caller finds it in the cache.
    fn hash_permit(&self, key: [u8; 32], cached: impl Fn() -> bool) -> Option<HashPermit<'_>> {
        let mut h = lock(&self.hashing);
        loop {
            if h.keys.contains(&key) {
                h = self.hashed.wait(h).unwrap_or_else(|p| p.into_inner());
                if !h.keys.contains(&key) && cached() {
                    return None;
                }
                continue;
            }
            if h.running < MAX_HASHING {
                h.running += 1;
                h.started += 1;
                h.peak = h.peak.max(h.running);
                h.keys.insert(key);
                metrics::counter!("anyam_password_verifications_total").increment(1);
                return Some(HashPermit { auth: self, key });
            }
            h = self.hashed.wait(h).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether `key` was verified for this user's current password.
    fn cached(&self, key: &[u8; 32], user: &User) -> bool {
        let now = Instant::now();
        lock(&self.verified).get(key).is_some_and(|c| {
            c.user == user.name
                && c.generation == user.generation
                && now.duration_since(c.at) < CACHE_TTL
        })
    }

    /// Authenticate one `Authorization` header value; `client` names the
    /// peer address for throttling.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: &str,
    ) -> Result<Principal, AuthFailure> {
        let Some(value) = authorization else {
            return Err(AuthFailure::Invalid);
        };
        let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthFailure::Invalid)?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| AuthFailure::Invalid)?;
            let decoded = String::from_utf8(decoded).map_err(|_| AuthFailure::Invalid)?;
            let (user, password) = decoded.split_once(':').ok_or(AuthFailure::Invalid)?;
            self.basic(user, password, client)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer(rest.trim(), client)
        } else {
            Err(AuthFailure::Invalid)
        }
    }

    fn check_throttle(&self, keys: &[&str]) -> Result<(), AuthFailure> {
        let now = Instant::now();
        let table = self
            .failures
            .lock()
            .map_err(|_| AuthFailure::Internal("lock poisoned".into()))?;
        for k in keys {
            if let Some(f) = table.get(*k)
                && let Some(until) = f.locked_until
                && until > now
            {
                return Err(AuthFailure::Throttled((until - now).as_secs().max(1)));
            }
        }
        Ok(())
    }

    fn record_failure(&self, keys: &[&str]) {
        let now = Instant::now();
        let Ok(mut table) = self.failures.lock() else {
            return;
        };
        if table.len() >= MAX_CACHE {
            table.retain(|_, f| {
                now.duration_since(f.first) < FAILURE_WINDOW
                    || f.locked_until.is_some_and(|u| u > now)
            });
        }
        for k in keys {
            let f = table.entry((*k).to_string()).or_insert(Failures {
                count: 0,
                first: now,
                locked_until: None,
            });
            if now.duration_since(f.first) > FAILURE_WINDOW
                && f.locked_until.is_none_or(|u| u <= now)
            {
                f.count = 0;
                f.first = now;
            }
            f.count += 1;
            if f.count >= MAX_FAILURES {
                // Each further failure doubles the wait, up to the maximum.
                let extra = (f.count - MAX_FAILURES).min(10);
                let wait = Duration::from_secs(1u64 << extra).min(MAX_LOCKOUT);
                f.locked_until = Some(now + wait);
            }
        }
    }

    fn clear_failures(&self, keys: &[&str]) {
        if let Ok(mut table) = self.failures.lock() {
            for k in keys {
                table.remove(*k);
            }
        }
    }

    fn principal(user: &User, scope: TokenScope) -> Principal {
        Principal {
            user: user.name.clone(),
            org: user.org.clone(),
            is_admin: user.is_admin,
            scope,
        }
    }

    fn basic(&self, name: &str, password: &str, client: &str) -> Result<Principal, AuthFailure> {
        let user_key = format!("user:{name}");
        let client_key = format!("addr:{client}");
        let keys = [user_key.as_str(), client_key.as_str()];
        self.check_throttle(&keys)?;
        let user = self
            .store
            .user(name)
            .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.record_failure(&keys);
            return Err(AuthFailure::Invalid);
        };
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(password.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if self.cached(&key, &user) {
            return Ok(Self::principal(&user, TokenScope::Full));
        }
        let Some(permit) = self.hash_permit(key, || self.cached(&key, &user)) else {
            return Ok(Self::principal(&user, TokenScope::Full));
        };
        // Failures recorded while this request waited count too.
        self.check_throttle(&keys)?;
        let ok = user
            .password_phc
            .as_deref()
            .is_some_and(|phc| verify_password(password, phc));
        if !ok {
            self.record_failure(&keys);
            return Err(AuthFailure::Invalid);
        }
        self.clear_failures(&keys);
        let now = Instant::now();
        let mut cache = lock(&self.verified);
        if cache.len() >= MAX_CACHE {
            cache.retain(|_, c| now.duration_since(c.at) < CACHE_TTL);
            if cache.len() >= MAX_CACHE {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CachedLogin {
                user: user.name.clone(),
                generation: user.generation,
                at: now,
            },
        );
        drop(cache);
        // Only now may those waiting on this key look in the cache.
        drop(permit);
        Ok(Self::principal(&user, TokenScope::Full))
    }

    fn bearer(&self, secret: &str, client: &str) -> Result<Principal, AuthFailure> {
        let client_key = format!("addr:{client}");
        let keys = [client_key.as_str()];
        self.check_throttle(&keys)?;
        let digest = token_digest(secret);
        let token = self
            .store
            .token_by_hash(&digest)
            .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        // The lookup was by digest; compare again in constant time so that
        // no timing difference depends on how much of the digest matched.
        let Some(token) = token.filter(|t| bool::from(t.sha256.ct_eq(&digest))) else {
            self.record_failure(&keys);
            return Err(AuthFailure::Invalid);
        };
        let now_micros = jiff::Timestamp::now().as_microsecond();
        if token.revoked || token.expires.is_some_and(|e| e <= now_micros) {
            self.record_failure(&keys);
            return Err(AuthFailure::Invalid);
        }
        let user = self
            .store
            .user(&token.user)
            .map_err(|e| AuthFailure::Internal(e.to_string()))?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.record_failure(&keys);
            return Err(AuthFailure::Invalid);
        };
        Ok(Self::principal(&user, token.scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trip() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, da) = new_token();
        let (b, _) = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), da);
        assert!(a.len() > 40);
    }

    fn with_users(names: &[(&str, &str)]) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let store = anyam_store::SqliteStore::open(
            &dir.path().join("a.db"),
            anyam_store::SqliteOptions::default(),
        )
        .unwrap();
        store
            .create_org(&anyam_store::Organization {
                name: "org".into(),
                title: "Org".into(),
            })
            .unwrap();
        for (name, password) in names {
            store
                .create_user(&User {
                    name: (*name).into(),
                    org: "org".into(),
                    password_phc: Some(hash_password(password).unwrap()),
                    is_admin: false,
                    generation: 0,
                    disabled: false,
                })
                .unwrap();
        }
        (dir, Authenticator::new(Arc::new(store)))
    }

    fn basic(name: &str, password: &str) -> String {
        let pair = format!("{name}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    fn stats(a: &Authenticator) -> (u64, usize) {
        let h = lock(&a.hashing);
        (h.started, h.peak)
    }

    /// Many requests at once with the same credentials on a cold cache:
    /// one verification, whose outcome every one of them gets.
    #[test]
    fn a_burst_of_the_same_credentials_is_verified_once() {
        let (_dir, auth) = with_users(&[("alice", "pw-alice")]);
        let header = basic("alice", "pw-alice");
        let start = std::sync::Barrier::new(12);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..12)
                .map(|i| {
                    let (auth, header, start) = (&auth, &header, &start);
                    s.spawn(move || {
                        start.wait();
                        auth.authenticate(Some(header), &format!("10.0.0.{i}"))
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap().unwrap().user, "alice");
            }
        });
        assert_eq!(stats(&auth), (1, 1));
        // A different password for the same user is verified, and refused.
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wrong")), "10.0.0.1"),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(stats(&auth).0, 2);
    }

    /// Distinct credentials at once: never more than `MAX_HASHING`
    /// verifications run together, and each gets its own outcome.
    #[test]
    fn concurrent_verifications_are_bounded() {
        let users: Vec<(String, String)> = (0..8)
            .map(|i| (format!("u{i}"), format!("pw-{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = users
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .collect();
        let (_dir, auth) = with_users(&refs);
        let start = std::sync::Barrier::new(users.len() * 2);
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (i, (u, p)) in users.iter().enumerate() {
                for right in [true, false] {
                    let (auth, start) = (&auth, &start);
                    let header = basic(u, if right { p } else { "nope" });
                    handles.push((
                        right,
                        s.spawn(move || {
                            start.wait();
                            auth.authenticate(Some(&header), &format!("10.0.1.{i}"))
                        }),
                    ));
                }
            }
            for (right, h) in handles {
                let outcome = h.join().unwrap();
                if right {
                    assert!(outcome.is_ok(), "{outcome:?}");
                } else {
                    assert_eq!(outcome, Err(AuthFailure::Invalid));
                }
            }
        });
        let (started, peak) = stats(&auth);
        assert_eq!(started, 16);
        assert!((1..=MAX_HASHING).contains(&peak), "peak {peak}");
    }
}
