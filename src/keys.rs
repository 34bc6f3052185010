//! API keys: `sck_<key id>_<secret>`. Only a salted SHA-256 of the secret is stored;
//! comparison is constant-time. Secrets are 256 random bits, so a fast hash is the right
//! tool (a password KDF protects low-entropy secrets and would cost every request).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Ingest,
    Read,
    Generate,
    Admin,
    /// `DELETE /v1/users/{user}`; keys with `admin` have it too.
    Erase,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Self::Ingest, Self::Read, Self::Generate, Self::Admin, Self::Erase];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Generate => "generate",
            Self::Admin => "admin",
            Self::Erase => "erase",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?}; expected ingest, read, generate, admin or erase")]
pub struct UnknownScope(String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

/// Parses "ingest,read" into scopes (sorted, distinct).
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, UnknownScope> {
    let mut scopes = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Scope::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

const PREFIX: &str = "sck_";

/// A freshly made key: the token is shown once, the rest is stored.
pub struct NewKey {
    pub id: Uuid,
    pub token: String,
    pub salt: Vec<u8>,
    pub secret_hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let id = Uuid::new_v4();
    let mut secret = [0u8; 32];
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut secret);
    rand::rng().fill_bytes(&mut salt);
    let secret = hex::encode(secret);
    NewKey {
        id,
        token: format!("{PREFIX}{}_{secret}", id.simple()),
        salt: salt.to_vec(),
        secret_hash: salted_hash(&salt, &secret),
    }
}

/// A bearer token split into its key id and secret.
pub struct PresentedKey<'a> {
    pub id: Uuid,
    secret: &'a str,
}

pub fn parse_token(token: &str) -> Option<PresentedKey<'_>> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    Some(PresentedKey {
        id: Uuid::parse_str(id).ok()?,
        secret,
    })
}

impl PresentedKey<'_> {
    pub fn matches(&self, salt: &[u8], secret_hash: &[u8]) -> bool {
        salted_hash(salt, self.secret).ct_eq(secret_hash).into()
    }
}

fn salted_hash(salt: &[u8], secret: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret.as_bytes());
    hasher.finalize().to_vec()
}

/// The configured bootstrap admin key, kept only as a digest.
#[derive(Clone)]
pub struct BootstrapKey(Vec<u8>);

impl BootstrapKey {
    pub fn new(token: &str) -> Self {
        Self(salted_hash(b"stylecast-bootstrap", token))
    }

    pub fn matches(&self, token: &str) -> bool {
        salted_hash(b"stylecast-bootstrap", token).ct_eq(&self.0).into()
    }
}

impl fmt::Debug for BootstrapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BootstrapKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_matches_its_stored_hash_only() {
        let key = generate();
        let presented = parse_token(&key.token).expect("parses");
        assert_eq!(presented.id, key.id);
        assert!(presented.matches(&key.salt, &key.secret_hash));
        let other = generate();
        assert!(!presented.matches(&other.salt, &other.secret_hash));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        assert!(parse_token("Bearer x").is_none());
        assert!(parse_token("sck_notauuid_abc").is_none());
    }

    #[test]
    fn scope_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            parse_scopes("read, ingest,read").ok(),
            Some(vec![Scope::Ingest, Scope::Read])
        );
        assert!(parse_scopes("read,root").is_err());
    }

    #[test]
    fn the_bootstrap_key_compares_by_digest() {
        let key = BootstrapKey::new("s3cret-admin");
        assert!(key.matches("s3cret-admin"));
        assert!(!key.matches("s3cret-admiN"));
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}
