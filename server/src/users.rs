//! Console users: who may sign in to `/ui/`, with which role, and how their passwords are
//! kept. The rows live in `state.db` (table `users`, see [`crate::state`]); this module
//! holds what needs no database: the roles, the rules for names and passwords, and the
//! password hashing.
//!
//! Passwords are hashed with Argon2id at the `argon2` crate's default parameters and kept as
//! PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so a later change of parameters
//! still verifies the older hashes. Verification compares in constant time; a sign-in for a
//! user that does not exist verifies against [`dummy_hash`], so that it costs as long as a
//! wrong password.

use std::sync::OnceLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// Fewer characters than this are refused by `user add` and `user passwd`.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// More bytes than this are refused (and never hashed at sign-in).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest user name.
pub const MAX_NAME_CHARS: usize = 64;

/// What a console user may do. Each role may do what the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserRole {
    /// Reads what a read token reads.
    Viewer,
    /// A viewer who may also acknowledge alerts and add or end silences.
    Editor,
    /// Everything a session may do, the admin endpoints included.
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Viewer => "viewer",
            UserRole::Editor => "editor",
            UserRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(UserRole::Viewer),
            "editor" => Some(UserRole::Editor),
            "admin" => Some(UserRole::Admin),
            _ => None,
        }
    }
}

/// Whether `name` may name a user: 1 to 64 ASCII letters, digits, '.', '_', '-' and '@',
/// starting with a letter or a digit. The reason when not.
pub fn check_name(name: &str) -> Result<(), String> {
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = starts_well
        && name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a user name is 1 to {MAX_NAME_CHARS} ASCII letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        ))
    }
}

/// Whether `password` may be set: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes, not all white space. The reason when not.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.trim().is_empty() {
        return Err("the password is empty".into());
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is {chars} characters long; it needs at least {MIN_PASSWORD_CHARS}"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The PHC string of `password` with a new random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`; a string that cannot be read
/// matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// A hash of a password nobody knows, made once per process with the same parameters as
/// real ones: what a sign-in for an unknown user is verified against.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = crate::state::random_hex(32);
        // Hashing cannot fail with the default parameters and a fresh salt; should it, a
        // string that verifies nothing is as good.
        hash_password(&secret).unwrap_or_else(|_| "$argon2id$unusable".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["ann", "a", "ops-1", "j.doe", "ann@example.com", "A_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        for bad in ["", "-ann", ".x", "a b", "ann;", "é", "a/b", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn passwords_are_checked() {
        assert_eq!(check_password("").unwrap_err(), "the password is empty");
        assert_eq!(check_password("    ").unwrap_err(), "the password is empty");
        assert!(check_password("short").unwrap_err().contains("at least 12"));
        // Characters, not bytes.
        assert!(check_password("ééééééééééé").is_err());
        assert!(check_password("éééééééééééé").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn hashes_verify_their_password_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("", dummy_hash()));
        // A new salt each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn roles_read_back() {
        for r in [UserRole::Viewer, UserRole::Editor, UserRole::Admin] {
            assert_eq!(UserRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(UserRole::parse("read"), None);
        assert!(UserRole::Viewer < UserRole::Editor && UserRole::Editor < UserRole::Admin);
    }
}
