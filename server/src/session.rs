//! Sign-in sessions of the console, without HTTP: the session id and its cookie, the CSRF
//! token, and the limiter of failed sign-ins.
//!
//! - A **session id** is 32 random bytes (256 bits), written as 64 lowercase hex digits in
//!   the cookie [`COOKIE`]. The state database keeps only its SHA-256
//!   ([`crate::state::hash_secret`]), so a copy of `state.db` signs nobody in.
//! - The **CSRF token** of a session is the hex SHA-256 of `sysward-csrf:` followed by the
//!   session id: the page learns it from the sign-in answer and sends it back in
//!   `X-CSRF-Token` with every request that changes something. Another site can make the
//!   browser send the cookie (SameSite keeps most of that out too) but cannot read the
//!   token; the token does not reveal the id. It needs no storage: the server derives it
//!   again from the cookie and compares in constant time.
//! - The **limiter** counts failed sign-ins per user name and per client address within a
//!   window that starts at the first failure; at the limit, further attempts are refused
//!   before any password is looked at, until the window ends. It lives in memory (a
//!   restart forgets it) and holds at most [`MAX_TRACKED`] names and as many addresses,
//!   dropping expired entries first; past that a new name is not tracked, while its
//!   address still is.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

/// The name of the session cookie.
pub const COOKIE: &str = "sysward_session";
/// The request header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Entries each map of the limiter holds at most.
pub const MAX_TRACKED: usize = 10_000;

/// A new session id: 256 random bits as 64 hex digits.
pub fn new_session_id() -> String {
    crate::state::random_hex(32)
}

/// Whether `s` has the shape of a session id; anything else is never looked up.
pub fn is_session_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The session id in the value of a `Cookie` header (`a=1; sysward_session=…; b=2`): the
/// first [`COOKIE`] whose value is shaped like an id. Never panics, whatever the text.
pub fn session_from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim() == COOKIE && is_session_id(value)).then_some(value)
    })
}

/// The CSRF token of session `id`.
pub fn csrf_token(id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sysward-csrf:");
    h.update(id.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `presented` is session `id`'s CSRF token, compared in constant time.
pub fn csrf_matches(id: &str, presented: &str) -> bool {
    let expected = csrf_token(id);
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value that hands session `id` to the browser for `max_age`.
pub fn set_cookie(id: &str, max_age: Duration) -> String {
    format!(
        "{COOKIE}={id}; Max-Age={}; Path=/; HttpOnly; Secure; SameSite=Strict",
        max_age.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict")
}

/// The body of `POST /ui/api/session`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub user: String,
    pub password: String,
}

/// Reads a sign-in body: a JSON object with `user` and `password`, nothing else. Never
/// panics, whatever the bytes.
pub fn parse_sign_in(body: &[u8]) -> Result<SignIn, String> {
    serde_json::from_slice(body).map_err(|e| format!("sign-in body: {e}"))
}

/// Limits on failed sign-ins (`[ui]`).
#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    pub max_per_user: u32,
    pub max_per_address: u32,
    pub window: Duration,
}

/// Counts failed sign-ins per user name and per address (see the module's doc).
#[derive(Debug)]
pub struct SignInLimiter {
    config: LimiterConfig,
    inner: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    users: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

impl Failures {
    /// How long attempts stay refused, when at the limit within the window.
    fn blocked_for(&self, max: u32, window: Duration, now: Instant) -> Option<Duration> {
        let end = self.first + window;
        (self.count >= max && now < end).then(|| end - now)
    }
}

fn record<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Failures>,
    key: K,
    window: Duration,
    now: Instant,
) {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, f| now < f.first + window);
        if map.len() >= MAX_TRACKED {
            return;
        }
    }
    let f = map.entry(key).or_insert(Failures {
        first: now,
        count: 0,
    });
    if now >= f.first + window {
        *f = Failures {
            first: now,
            count: 0,
        };
    }
    f.count = f.count.saturating_add(1);
}

impl LimiterConfig {
    /// The limits of `[ui]`.
    pub fn of(ui: &crate::config::UiConfig) -> Self {
        Self {
            max_per_user: ui.max_failures_per_user,
            max_per_address: ui.max_failures_per_address,
            window: ui.failure_window,
        }
    }
}

impl SignInLimiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Tracked::default()),
        }
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while sign-ins for `user` or from `address` are refused.
    pub fn check(&self, user: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let c = self.config;
        let t = self.tracked();
        let by_user = t
            .users
            .get(user)
            .and_then(|f| f.blocked_for(c.max_per_user, c.window, now));
        let by_address = t
            .addresses
            .get(&address)
            .and_then(|f| f.blocked_for(c.max_per_address, c.window, now));
        match by_user.max(by_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, user: &str, address: IpAddr, now: Instant) {
        let window = self.config.window;
        let mut t = self.tracked();
        record(&mut t.users, user.to_string(), window, now);
        record(&mut t.addresses, address, window, now);
    }

    /// Forgets the failures of `user` after it signed in (its address's stay counted).
    pub fn succeeded(&self, user: &str) {
        self.tracked().users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            session_from_cookie_header(&format!("a=1; sysward_session={ID}; b=2")),
            Some(ID)
        );
        assert_eq!(
            session_from_cookie_header(&format!("sysward_session=\"{ID}\"")),
            Some(ID)
        );
        // The first well-formed one.
        assert_eq!(
            session_from_cookie_header(&format!("sysward_session=bad; sysward_session={ID}")),
            Some(ID)
        );
        for none in [
            "",
            "sysward_session=",
            "sysward_session",
            "other=1",
            &format!("xsysward_session={ID}"),
            &format!("sysward_session={}", ID.to_uppercase()),
            &format!("sysward_session={ID}0"),
        ] {
            assert_eq!(session_from_cookie_header(none), None, "{none}");
        }
        assert!(is_session_id(&new_session_id()));
        assert_ne!(new_session_id(), new_session_id());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let t = csrf_token(ID);
        assert_eq!(t.len(), 64);
        assert_ne!(t, ID);
        assert_ne!(t, crate::state::hash_secret(ID), "not the stored hash");
        assert!(csrf_matches(ID, &t));
        assert!(!csrf_matches(ID, &t[..63]));
        assert!(!csrf_matches(ID, ""));
        assert!(!csrf_matches(&new_session_id(), &t));
    }

    #[test]
    fn cookies_carry_the_attributes() {
        let c = set_cookie(ID, Duration::from_secs(3600));
        assert_eq!(
            c,
            format!(
                "sysward_session={ID}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Strict"
            )
        );
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn sign_in_bodies_are_user_and_password_only() {
        assert_eq!(
            parse_sign_in(br#"{"user":"ann","password":"pw"}"#),
            Ok(SignIn {
                user: "ann".into(),
                password: "pw".into()
            })
        );
        for bad in [
            &br#"{"user":"ann"}"#[..],
            br#"{"user":"ann","password":"pw","admin":true}"#,
            br#"{"user":1,"password":"pw"}"#,
            b"user=ann&password=pw",
            b"",
            b"\xff\xfe",
        ] {
            assert!(parse_sign_in(bad).is_err());
        }
    }

    fn limiter() -> SignInLimiter {
        SignInLimiter::new(LimiterConfig {
            max_per_user: 3,
            max_per_address: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn failures_per_user_block_until_the_window_ends() {
        let l = limiter();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check("ann", a, t0).is_ok());
            l.failed("ann", if i % 2 == 0 { a } else { b }, t0);
        }
        // From any address.
        let wait = l.check("ann", b, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.check("bob", a, t0).is_ok(), "other users are not blocked");
        assert!(l.check("ann", a, t0 + Duration::from_secs(60)).is_ok());
        // A success forgets the user's failures.
        l.failed("cid", a, t0);
        l.succeeded("cid");
        l.failed("cid", a, t0);
        l.failed("cid", a, t0);
        assert!(l.check("cid", b, t0).is_ok());
    }

    #[test]
    fn failures_per_address_block_every_user_from_it() {
        let l = limiter();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..5 {
            l.failed(&format!("user{i}"), a, t0);
        }
        assert!(l.check("someone", a, t0).is_err());
        assert!(
            l.check("someone", "2001:db8::2".parse().unwrap(), t0)
                .is_ok()
        );
        // The count starts again after the window.
        let later = t0 + Duration::from_secs(61);
        l.failed("user0", a, later);
        assert!(l.check("someone", a, later).is_ok());
    }

    #[test]
    fn the_maps_stay_bounded() {
        let l = limiter();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            l.failed(&i.to_string(), a, t0);
        }
        assert_eq!(l.tracked().users.len(), MAX_TRACKED);
        // Once they expire, room is made.
        l.failed("new", a, t0 + Duration::from_secs(61));
        assert_eq!(l.tracked().users.len(), 1);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = session_from_cookie_header(&text);
            let _ = parse_sign_in(text.as_bytes());
            let _ = parse_sign_in(&bytes);
            let _ = csrf_matches(ID, &text);
        }

        #[test]
        fn a_cookie_header_with_the_session_anywhere_finds_it(
            before in "[a-z]{1,8}=[a-z0-9]{0,8}", after in "[a-z]{1,8}=[a-z0-9]{0,8}"
        ) {
            let header = format!("{before}; {COOKIE}={ID}; {after}");
            prop_assert_eq!(session_from_cookie_header(&header), Some(ID));
        }
    }
}
