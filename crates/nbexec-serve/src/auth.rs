//! Users, passwords and tokens for `nbexec serve` (spec serve.md §4).
//!
//! * The users file (`--users FILE`) is JSON: `{"users":[{"name","role","password_hash"}]}`,
//!   `role` is `admin` or `user`, `password_hash` an argon2id PHC string. `nbexec users`
//!   writes it; the server re-reads it when its modification time changes, so a user added
//!   or removed while the server runs takes effect on the next request.
//! * Tokens are HMAC-SHA256 signed with a key drawn at server start: nothing is stored,
//!   verification is constant-time (`hmac`'s `verify_slice`), and every token dies with
//!   the server process. A token names its user and its expiry; the user's role is looked
//!   up at each request, so a removed user's tokens stop working at once.
//! * A token arrives in `X-Esri-Authorization: Bearer …`, `Authorization: Bearer …`, or a
//!   `token` query or form field. Missing: HTTP 401 with ArcGIS's code 499 `Token Required`;
//!   bad or expired: HTTP 401 with code 498 `Invalid token.` (RFC 6750's status for an
//!   invalid bearer token; the ArcGIS client reads only the body).
//! * Neither passwords nor tokens are ever formatted into logs or errors: `Debug` of the
//!   types that hold them is redacted.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::AppState;
use crate::api::{ApiError, Format, Req, answer};

type HmacSha256 = Hmac<Sha256>;

/// What a user may do: an administrator sees and cancels every job, a user only their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(format!("unknown role `{other}` (expected admin or user)")),
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No users are configured and the server is bound to loopback: whoever can
    /// reach it is its administrator.
    Anonymous,
    User {
        name: String,
        role: Role,
    },
}

impl Principal {
    /// The name recorded as a job's owner (`""` for anonymous).
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::User { name, .. } => name,
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::User { role, .. } => *role == Role::Admin,
        }
    }

    /// May this principal see (and cancel, and read the artifacts of) a job owned
    /// by `owner`? Administrators see all jobs, users only their own (seed 003).
    pub fn may_access(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner == Some(self.name())
    }

    /// May this principal run (or schedule, or have a webhook run) the notebook item
    /// `item`? Its owner and administrators may; an item without an owner is
    /// everybody's.
    pub fn may_run(&self, item: &crate::Item) -> bool {
        item.owner.is_empty() || self.may_access(Some(&item.owner))
    }
}

// ------------------------------------------------------------------------------------
// Passwords

/// An argon2id hash (PHC string) of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks `password` against the PHC string `phc`, with `memory` as argon2's working
/// memory (grown to the hash's `m` cost, then reused: the server keeps one per check slot,
/// so a flood of sign-ins costs no fresh 19 MiB allocation each, which the allocator
/// would keep per thread). The comparison of the outputs is constant-time.
fn verify_password_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) =
        (Params::try_from(&hash), Algorithm::try_from(hash.algorithm))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::new());
    }
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..])
        .is_ok()
        && Output::new(out).is_ok_and(|o| o == expected)
}

/// A hash nobody knows the password of, checked for unknown user names so that a wrong
/// name costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 24];
        let _ = getrandom::fill(&mut secret);
        hash_password(&hex(&secret)).unwrap_or_default()
    })
}

// ------------------------------------------------------------------------------------
// The users file

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    pub users: Vec<UserRecord>,
}

/// A user name: 1–128 characters of letters, digits and `._@-` (what ArcGIS accepts).
pub fn check_user_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadUserName(name.chars().take(64).collect()))
    }
}

impl Users {
    /// Reads and checks a users file. A missing file is an error here (the server must not
    /// start open by mistake); `nbexec users add` creates it with [`Users::load_or_empty`].
    pub fn load(path: &Path) -> Result<Users, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Io(path.to_owned(), e))?;
        let users: Users = serde_json::from_str(&text)
            .map_err(|e| AuthError::Format(path.to_owned(), e.to_string()))?;
        users
            .check()
            .map_err(|m| AuthError::Format(path.to_owned(), m))?;
        Ok(users)
    }

    pub fn load_or_empty(path: &Path) -> Result<Users, AuthError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            _ => Users::load(path),
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for u in &self.users {
            check_user_name(&u.name).map_err(|e| e.to_string())?;
            if !seen.insert(u.name.as_str()) {
                return Err(format!("user `{}` is listed twice", u.name));
            }
            match PasswordHash::new(&u.password_hash) {
                Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
                _ => {
                    return Err(format!(
                        "user `{}`: password_hash is not an argon2 PHC string (make one with `nbexec users add`)",
                        u.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes the file atomically (temporary file + rename), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let mut text = serde_json::to_string_pretty(self).expect("users serialise");
        text.push('\n');
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            AuthError::Io(path.to_owned(), e)
        })
    }

    /// Adds the user, or replaces its role and password. Returns whether it was new.
    pub fn upsert(&mut self, name: &str, password: &str, role: Role) -> Result<bool, AuthError> {
        check_user_name(name)?;
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let record = UserRecord {
            name: name.to_owned(),
            role,
            password_hash: hash_password(password)?,
        };
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(existing) => {
                *existing = record;
                Ok(false)
            }
            None => {
                self.users.push(record);
                Ok(true)
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        self.users.len() != before
    }

    pub fn get(&self, name: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user, if `password` is theirs. Takes about as long for an unknown name.
    pub fn verify(&self, name: &str, password: &str) -> Option<Principal> {
        self.verify_in(name, password, &mut Vec::new())
    }

    /// [`Users::verify`] with `memory` as argon2's (reused) working memory.
    fn verify_in(&self, name: &str, password: &str, memory: &mut Vec<Block>) -> Option<Principal> {
        match self.get(name) {
            Some(u) if verify_password_in(password, &u.password_hash, memory) => {
                Some(Principal::User {
                    name: u.name.clone(),
                    role: u.role,
                })
            }
            Some(_) => None,
            None => {
                let _ = verify_password_in(password, decoy_hash(), memory);
                None
            }
        }
    }
}

/// The users file as the server sees it: re-read when its modification time changes.
/// A file that turns unreadable or invalid keeps the last good table (with a warning).
struct UserStore {
    path: PathBuf,
    /// The table as last read (shared, not copied, by each request) and the file's
    /// modification time then.
    cached: RwLock<(Option<SystemTime>, Arc<Users>)>,
}

impl UserStore {
    fn open(path: &Path) -> Result<Self, AuthError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let users = Users::load(path)?;
        if users.users.is_empty() {
            return Err(AuthError::Format(
                path.to_owned(),
                "it lists no users".into(),
            ));
        }
        Ok(UserStore {
            path: path.to_owned(),
            cached: RwLock::new((mtime, Arc::new(users))),
        })
    }

    fn current(&self) -> Arc<Users> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if cached.0 == mtime {
                return cached.1.clone();
            }
        }
        let mut cached = self.cached.write().unwrap_or_else(|e| e.into_inner());
        if cached.0 != mtime {
            match Users::load(&self.path) {
                Ok(users) => *cached = (mtime, Arc::new(users)),
                Err(e) => {
                    eprintln!("warning: keeping the previous users table: {e}");
                    cached.0 = mtime;
                }
            }
        }
        cached.1.clone()
    }
}

// ------------------------------------------------------------------------------------
// Tokens

/// The longest lifetime a token may ask for: 14 days, ArcGIS's default maximum. Longer
/// requests are cut to it, as ArcGIS does.
pub const MAX_TOKEN_MINUTES: f64 = 14.0 * 24.0 * 60.0;
/// The lifetime when `expiration` is not given.
pub const DEFAULT_TOKEN_MINUTES: f64 = 60.0;
/// Longer strings are not tokens this server made; rejected before any work.
const MAX_TOKEN_LEN: usize = 1024;

/// Signs and checks tokens: `<hex user>.<expiry epoch ms>.<hex nonce>.<hex HMAC-SHA256>`.
pub struct TokenKey {
    key: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Why a token was refused. Both answer 498 `Invalid token.`; the kind is for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

impl TokenKey {
    pub fn random() -> Result<Self, AuthError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(TokenKey { key })
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `user` that expires at `expires_ms` (epoch milliseconds).
    pub fn issue(&self, user: &str, expires_ms: i64) -> Result<String, AuthError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| AuthError::Random(e.to_string()))?;
        let payload = format!("{}.{}.{}", hex(user.as_bytes()), expires_ms, hex(&nonce));
        let sig = self.mac(&payload).finalize().into_bytes();
        Ok(format!("{payload}.{}", hex(&sig)))
    }

    /// The user a token was issued to, if it is this server's, intact and not expired.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<String, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let sig = unhex(sig.as_bytes()).ok_or(TokenError::Malformed)?;
        self.mac(payload)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let mut parts = payload.split('.');
        let (Some(user), Some(expires), Some(_nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let user = unhex(user.as_bytes())
            .and_then(|u| String::from_utf8(u).ok())
            .ok_or(TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if now_ms >= expires {
            return Err(TokenError::Expired);
        }
        Ok(user)
    }
}

use nbexec_kernel::{hex, unhex};
pub use nbexec_runner::jobs::now_ms;

// ------------------------------------------------------------------------------------
// Where a token comes from

/// The token of a request's headers: `X-Esri-Authorization: Bearer …` (what the ArcGIS
/// client sends), then `Authorization: Bearer …`.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    ["x-esri-authorization", "authorization"]
        .iter()
        .find_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?.trim();
            let (scheme, rest) = value.split_once(' ')?;
            let rest = rest.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty()).then(|| rest.to_owned())
        })
}

// ------------------------------------------------------------------------------------
// The server's view

/// Authentication as configured for one server.
pub struct Auth {
    users: Option<UserStore>,
    key: TokenKey,
    /// Whether the server speaks HTTPS (`ssl` in generateToken's answer).
    ssl: bool,
    /// Password checks at once. Each argon2 check takes ~19 MiB and a core for tens of
    /// milliseconds; unbounded, a flood of generateToken requests would run hundreds at
    /// once on the blocking pool (gigabytes). One per core; the rest wait their turn.
    checks: Arc<tokio::sync::Semaphore>,
    /// argon2 working memory, one per check running or done before (so at most one per
    /// slot), reused from check to check.
    memory: std::sync::Mutex<Vec<Vec<Block>>>,
}

fn check_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.as_ref().map(|u| &u.path))
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// generateToken's answer: `{"token","expires"(epoch ms),"ssl"}`.
#[derive(Clone, Serialize)]
pub struct TokenReply {
    pub token: String,
    pub expires: i64,
    pub ssl: bool,
}

impl fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReply")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .field("ssl", &self.ssl)
            .finish()
    }
}

impl Auth {
    /// No users: every caller is the local administrator (the server binds loopback only).
    pub fn open(ssl: bool) -> Result<Self, AuthError> {
        Ok(Auth {
            users: None,
            key: TokenKey::random()?,
            ssl,
            checks: Arc::new(tokio::sync::Semaphore::new(check_permits())),
            memory: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Users from `path`: every request but the public ones needs a token.
    pub fn with_users(path: &Path, ssl: bool) -> Result<Self, AuthError> {
        Ok(Auth {
            users: Some(UserStore::open(path)?),
            key: TokenKey::random()?,
            ssl,
            checks: Arc::new(tokio::sync::Semaphore::new(check_permits())),
            memory: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Runs `check` (a [`Auth::generate_token`] call) on the blocking pool once a password
    /// check slot is free: at most one per core at a time.
    pub async fn generate_token_bounded(
        &self,
        check: impl FnOnce() -> Result<TokenReply, GenerateTokenError> + Send + 'static,
    ) -> Result<TokenReply, GenerateTokenError> {
        let permit = Arc::clone(&self.checks)
            .acquire_owned()
            .await
            .map_err(|_| GenerateTokenError::Internal)?;
        tokio::task::spawn_blocking(move || {
            let reply = check();
            drop(permit);
            reply
        })
        .await
        .map_err(|_| GenerateTokenError::Internal)?
    }

    /// Whether tokens are required (a users file is configured).
    pub fn enabled(&self) -> bool {
        self.users.is_some()
    }

    /// The user name a valid (this server's, unexpired) token was issued to, whether or
    /// not users are configured. An open server's callers are all the anonymous
    /// administrator; this is the name they signed in with, for display only.
    pub fn token_name(&self, token: &str) -> Option<String> {
        self.key.verify(token, now_ms()).ok()
    }

    /// Whether the users file names `name`.
    pub fn has_user(&self, name: &str) -> bool {
        self.users
            .as_ref()
            .is_some_and(|s| s.current().get(name).is_some())
    }

    /// Whether `name` is an administrator in the users file.
    pub fn is_admin_user(&self, name: &str) -> bool {
        self.users
            .as_ref()
            .is_some_and(|s| s.current().get(name).is_some_and(|u| u.role == Role::Admin))
    }

    /// Who presents `token` (None: no token came with the request).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AuthRejection> {
        let Some(store) = &self.users else {
            return Ok(Principal::Anonymous);
        };
        let token = token.ok_or(AuthRejection::TokenRequired)?;
        let name = self
            .key
            .verify(token, now_ms())
            .map_err(|_| AuthRejection::InvalidToken)?;
        let users = store.current();
        let user = users.get(&name).ok_or(AuthRejection::InvalidToken)?;
        Ok(Principal::User {
            name: user.name.clone(),
            role: user.role,
        })
    }

    /// The generateToken operation. `expiration` is in minutes (default 60; fractions are
    /// accepted; more than 14 days is cut to 14 days). Runs argon2: call it off the async
    /// workers (`spawn_blocking`).
    pub fn generate_token(
        &self,
        username: Option<&str>,
        password: Option<&str>,
        expiration: Option<&str>,
    ) -> Result<TokenReply, GenerateTokenError> {
        let minutes = match expiration.map(str::trim).filter(|s| !s.is_empty()) {
            None => DEFAULT_TOKEN_MINUTES,
            Some(text) => match text.parse::<f64>() {
                Ok(m) if m.is_finite() && m > 0.0 => m.min(MAX_TOKEN_MINUTES),
                _ => return Err(GenerateTokenError::BadExpiration),
            },
        };
        let username = username.map(str::trim).filter(|s| !s.is_empty());
        let password = password.filter(|s| !s.is_empty());
        let (Some(username), Some(password)) = (username, password) else {
            return Err(GenerateTokenError::MissingCredentials);
        };
        let name = match &self.users {
            // An open server checks nothing: every caller is its administrator anyway.
            None => username.to_owned(),
            Some(store) => {
                let pooled = self.memory.lock().ok().and_then(|mut pool| pool.pop());
                let mut memory = pooled.unwrap_or_default();
                let who = store.current().verify_in(username, password, &mut memory);
                if let Ok(mut pool) = self.memory.lock() {
                    pool.push(memory);
                }
                who.ok_or(GenerateTokenError::BadCredentials)?
                    .name()
                    .to_owned()
            }
        };
        let ttl = Duration::from_secs_f64(minutes * 60.0);
        let expires = now_ms().saturating_add(ttl.as_millis() as i64);
        let token = self
            .key
            .issue(&name, expires)
            .map_err(|_| GenerateTokenError::Internal)?;
        Ok(TokenReply {
            token,
            expires,
            ssl: self.ssl,
        })
    }
}

// ------------------------------------------------------------------------------------
// Errors

/// Errors reading or writing users (CLI and start-up). Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {1}", path = .0.display())]
    Io(PathBuf, std::io::Error),
    #[error("{path}: not a valid users file: {1}", path = .0.display())]
    Format(PathBuf, String),
    #[error("invalid user name `{0}` (use letters, digits and . _ @ -, at most 128)")]
    BadUserName(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A request refused for want of a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    /// No token: HTTP 401, code 499 `Token Required`.
    TokenRequired,
    /// A token that is not this server's, altered, expired, or of a removed user:
    /// HTTP 401, code 498 `Invalid token.`.
    InvalidToken,
}

impl From<AuthRejection> for ApiError {
    fn from(r: AuthRejection) -> ApiError {
        match r {
            AuthRejection::TokenRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, 499, "Token Required", Vec::new())
            }
            AuthRejection::InvalidToken => {
                ApiError::new(StatusCode::UNAUTHORIZED, 498, "Invalid token.", Vec::new())
            }
        }
    }
}

/// Why generateToken refused: HTTP 400 with ArcGIS's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerateTokenError {
    MissingCredentials,
    BadCredentials,
    BadExpiration,
    Internal,
}

impl From<GenerateTokenError> for ApiError {
    fn from(e: GenerateTokenError) -> ApiError {
        let (status, detail) = match e {
            GenerateTokenError::MissingCredentials => (
                StatusCode::BAD_REQUEST,
                "username and password are required.",
            ),
            GenerateTokenError::BadCredentials => {
                (StatusCode::BAD_REQUEST, "Invalid username or password.")
            }
            GenerateTokenError::BadExpiration => (
                StatusCode::BAD_REQUEST,
                "expiration must be a positive number of minutes.",
            ),
            GenerateTokenError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not make a token.",
            ),
        };
        ApiError::new(
            status,
            400,
            "Unable to generate token.",
            vec![detail.to_owned()],
        )
    }
}

// ------------------------------------------------------------------------------------
// The seam every handler calls, and the generateToken operation

/// The token a request carries: `X-Esri-Authorization`, `Authorization`, then the
/// `token` query or form field.
pub fn request_token(req: &Req) -> Option<String> {
    token_from_headers(&req.headers).or_else(|| {
        req.text("token")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    })
}

/// The principal of a request, or the error to answer it with (499 Token Required,
/// 498 Invalid token).
pub async fn principal(state: &AppState, req: &Req) -> Result<Principal, ApiError> {
    Ok(state.auth.authenticate(request_token(req).as_deref())?)
}

/// The principal if the request has a valid token (or the server is open); `None`
/// otherwise. For resources that answer anonymous callers too.
pub fn optional_principal(state: &AppState, req: &Req) -> Option<Principal> {
    state.auth.authenticate(request_token(req).as_deref()).ok()
}

/// `generateToken` (`/admin/generateToken`, and `/portal/sharing/rest/generateToken`
/// with `--portal`): `username`, `password`, `expiration` (minutes), `f` →
/// `{"token","expires","ssl"}`. POST only: a password does not belong in a URL.
pub async fn generate_token(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let username = req.text("username");
        let password = req.text("password");
        if req.method != Method::POST {
            if username.is_none() && password.is_none() && req.format()? == Format::Html {
                // The operation's page: a form (html only).
                return Ok(json!({"operation": "generateToken",
                                 "parameters": ["username", "password", "expiration"]}));
            }
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                405,
                "Unable to generate token.",
                vec!["generateToken takes POST (credentials do not belong in a URL).".into()],
            ));
        }
        let expiration = req.text("expiration");
        let state = st.clone();
        let reply = st
            .auth
            .generate_token_bounded(move || {
                state.auth.generate_token(
                    username.as_deref(),
                    password.as_deref(),
                    expiration.as_deref(),
                )
            })
            .await?;
        Ok(json!({"token": reply.token, "expires": reply.expires, "ssl": reply.ssl}))
    }
    .await;
    answer(&st, &req, "generateToken", r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn users_file(dir: &Path, entries: &[(&str, &str, Role)]) -> PathBuf {
        let mut users = Users::default();
        for (name, pw, role) in entries {
            users.upsert(name, pw, *role).unwrap();
        }
        let path = dir.join("users.json");
        users.save(&path).unwrap();
        path
    }

    #[test]
    fn passwords_hash_with_fresh_salts_and_verify() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        let mut memory = Vec::new();
        assert!(verify_password_in("pw", &a, &mut memory));
        assert!(!verify_password_in("pW", &a, &mut memory));
        assert!(!verify_password_in("pw", "not a hash", &mut memory));
    }

    #[test]
    fn verification_reuses_its_memory_and_agrees_with_argon2() {
        use argon2::PasswordVerifier;
        let mut memory = Vec::new();
        let default = hash_password("pw").unwrap();
        assert!(verify_password_in("pw", &default, &mut memory));
        let blocks = memory.len();
        assert_eq!(blocks, Params::DEFAULT_M_COST as usize);
        assert!(!verify_password_in("pw ", &default, &mut memory));
        assert_eq!(memory.len(), blocks, "the same memory, not grown");
        // Hashes made with other algorithms and costs (a hand-written users file).
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for (alg, m, t) in [(Algorithm::Argon2i, 4096, 3), (Algorithm::Argon2d, 8, 1)] {
            let params = Params::new(m, t, 1, Some(24)).unwrap();
            let argon = Argon2::new(alg, Version::V0x13, params);
            let phc = argon.hash_password(b"secret", &salt).unwrap().to_string();
            let parsed = PasswordHash::new(&phc).unwrap();
            assert!(argon.verify_password(b"secret", &parsed).is_ok());
            assert!(verify_password_in("secret", &phc, &mut memory), "{phc}");
            assert!(!verify_password_in("Secret", &phc, &mut memory), "{phc}");
        }
        assert_eq!(
            memory.len(),
            blocks,
            "smaller costs fit in the memory there is"
        );
        for bad in [
            "",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            "$scrypt$ln=1,r=8,p=1$c2FsdA$aGFzaA",
        ] {
            assert!(!verify_password_in("pw", bad, &mut memory), "{bad}");
        }
    }

    #[test]
    fn users_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = users_file(
            dir.path(),
            &[("alice", "pw", Role::Admin), ("bob", "x", Role::User)],
        );
        let users = Users::load(&path).unwrap();
        assert_eq!(users.users.len(), 2);
        assert!(users.verify("alice", "pw").unwrap().is_admin());
        assert_eq!(
            users.verify("bob", "x").unwrap(),
            Principal::User {
                name: "bob".into(),
                role: Role::User
            }
        );
        assert!(users.verify("bob", "pw").is_none());
        assert!(users.verify("carol", "pw").is_none());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"pw\""), "no clear password in the file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Debug output never shows a hash.
        assert!(!format!("{users:?}").contains("argon2"));
    }

    #[test]
    fn upsert_replaces_and_remove_removes() {
        let mut users = Users::default();
        assert!(users.upsert("alice", "one", Role::User).unwrap());
        assert!(!users.upsert("alice", "two", Role::Admin).unwrap());
        assert_eq!(users.users.len(), 1);
        assert!(users.verify("alice", "one").is_none());
        assert!(users.verify("alice", "two").unwrap().is_admin());
        assert!(users.remove("alice"));
        assert!(!users.remove("alice"));
        assert!(matches!(
            users.upsert("a b", "x", Role::User),
            Err(AuthError::BadUserName(_))
        ));
        assert!(matches!(
            users.upsert("a", "", Role::User),
            Err(AuthError::EmptyPassword)
        ));
    }

    #[test]
    fn bad_users_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.json");
        let cases = [
            ("{", "not a valid users file"),
            (
                r#"{"users":[{"name":"a","role":"boss","password_hash":"x"}]}"#,
                "boss",
            ),
            (
                r#"{"users":[{"name":"a","role":"user","password_hash":"plain"}]}"#,
                "argon2",
            ),
            (r#"{"users":[],"extra":1}"#, "extra"),
        ];
        for (text, needle) in cases {
            std::fs::write(&path, text).unwrap();
            let e = Users::load(&path).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let hash = hash_password("p").unwrap();
        let dup = serde_json::json!({"users":[
            {"name":"a","role":"user","password_hash":hash},
            {"name":"a","role":"admin","password_hash":hash}]});
        std::fs::write(&path, dup.to_string()).unwrap();
        assert!(
            Users::load(&path)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        std::fs::write(&path, r#"{"users":[]}"#).unwrap();
        assert!(
            Auth::with_users(&path, false)
                .unwrap_err()
                .to_string()
                .contains("no users")
        );
        assert!(Auth::with_users(&dir.path().join("missing.json"), false).is_err());
    }

    #[test]
    fn tokens_verify_and_refuse_tampering_expiry_and_other_keys() {
        let key = TokenKey::random().unwrap();
        let now = now_ms();
        let t = key.issue("alice", now + 60_000).unwrap();
        assert_eq!(key.verify(&t, now).unwrap(), "alice");
        assert_ne!(
            t,
            key.issue("alice", now + 60_000).unwrap(),
            "tokens are unique"
        );
        assert_eq!(key.verify(&t, now + 60_000), Err(TokenError::Expired));
        let other = TokenKey::random().unwrap();
        assert_eq!(other.verify(&t, now), Err(TokenError::BadSignature));
        // Push the expiry out: the signature no longer matches.
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[1] = (now + 10_000_000).to_string();
        assert_eq!(
            key.verify(&parts.join("."), now),
            Err(TokenError::BadSignature)
        );
        // Another user's name under alice's signature.
        parts[1] = (now + 60_000).to_string();
        parts[0] = hex(b"admin");
        assert_eq!(
            key.verify(&parts.join("."), now),
            Err(TokenError::BadSignature)
        );
        for junk in ["", ".", "abc", "zz.zz", &"a".repeat(5000)] {
            assert!(key.verify(junk, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn token_carriers() {
        let mut h = HeaderMap::new();
        assert_eq!(token_from_headers(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("abc"));
        h.insert(
            "x-esri-authorization",
            HeaderValue::from_static("bearer  esri "),
        );
        assert_eq!(
            token_from_headers(&h).as_deref(),
            Some("esri"),
            "the Esri header first"
        );
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic YTpi"));
        assert_eq!(token_from_headers(&basic), None);
    }

    #[test]
    fn authenticate_and_generate_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = users_file(
            dir.path(),
            &[("alice", "pw", Role::User), ("root", "r", Role::Admin)],
        );
        let auth = Auth::with_users(&path, true).unwrap();
        assert!(auth.enabled());
        assert_eq!(auth.authenticate(None), Err(AuthRejection::TokenRequired));
        assert_eq!(
            auth.authenticate(Some("nope")),
            Err(AuthRejection::InvalidToken)
        );
        let reply = auth
            .generate_token(Some("alice"), Some("pw"), None)
            .unwrap();
        assert!(reply.ssl);
        let minutes = (reply.expires - now_ms()) as f64 / 60_000.0;
        assert!((59.0..=60.0).contains(&minutes), "{minutes}");
        assert!(!format!("{reply:?}").contains(&reply.token));
        let who = auth.authenticate(Some(&reply.token)).unwrap();
        assert_eq!(
            who,
            Principal::User {
                name: "alice".into(),
                role: Role::User
            }
        );
        assert_eq!(
            auth.generate_token(Some("alice"), Some("bad"), None)
                .unwrap_err(),
            GenerateTokenError::BadCredentials
        );
        assert_eq!(
            auth.generate_token(Some("alice"), None, None).unwrap_err(),
            GenerateTokenError::MissingCredentials
        );
        for bad in ["0", "-1", "x", "NaN", "inf"] {
            assert_eq!(
                auth.generate_token(Some("alice"), Some("pw"), Some(bad))
                    .unwrap_err(),
                GenerateTokenError::BadExpiration,
                "{bad}"
            );
        }
        let long = auth
            .generate_token(Some("root"), Some("r"), Some("1e9"))
            .unwrap();
        let days = (long.expires - now_ms()) as f64 / 86_400_000.0;
        assert!((13.9..=14.0).contains(&days), "{days}");
        // Removing alice from the file ends her tokens at once.
        let mut users = Users::load(&path).unwrap();
        users.remove("alice");
        std::thread::sleep(Duration::from_millis(20));
        users.save(&path).unwrap();
        let bump = std::fs::File::options().write(true).open(&path).unwrap();
        bump.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            auth.authenticate(Some(&reply.token)),
            Err(AuthRejection::InvalidToken)
        );
        assert!(auth.authenticate(Some(&long.token)).unwrap().is_admin());
    }

    #[test]
    fn password_checks_wait_for_a_free_slot() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let auth = Arc::new(Auth::open(false).unwrap());
        rt.block_on(async {
            // Every slot taken: a check waits rather than running beside them.
            let held = Arc::clone(&auth.checks)
                .acquire_many_owned(check_permits() as u32)
                .await
                .unwrap();
            let a = Arc::clone(&auth);
            let mut pending = tokio::spawn(async move {
                a.generate_token_bounded(|| {
                    Ok(TokenReply {
                        token: "t".into(),
                        expires: 0,
                        ssl: false,
                    })
                })
                .await
            });
            let waited = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
            assert!(waited.is_err(), "ran without a slot");
            drop(held);
            let reply = pending.await.unwrap().unwrap();
            assert_eq!(reply.token, "t");
            assert_eq!(auth.checks.available_permits(), check_permits());
        });
    }

    #[test]
    fn open_server_treats_everyone_as_anonymous_admin() {
        let auth = Auth::open(false).unwrap();
        assert!(!auth.enabled());
        assert_eq!(auth.authenticate(None).unwrap(), Principal::Anonymous);
        let reply = auth
            .generate_token(Some("anyone"), Some("x"), Some("0.5"))
            .unwrap();
        assert!(!reply.ssl);
        assert!(reply.expires - now_ms() <= 30_000);
    }

    #[test]
    fn rejection_bodies_are_arcgis_texts() {
        let e = ApiError::from(AuthRejection::TokenRequired);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.body.to_string(),
            r#"{"error":{"code":499,"message":"Token Required","details":[]}}"#
        );
        let e = ApiError::from(AuthRejection::InvalidToken);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.body.to_string(),
            r#"{"error":{"code":498,"message":"Invalid token.","details":[]}}"#
        );
        let e = ApiError::from(GenerateTokenError::BadCredentials);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body.to_string(),
            r#"{"error":{"code":400,"message":"Unable to generate token.","details":["Invalid username or password."]}}"#
        );
    }
}
