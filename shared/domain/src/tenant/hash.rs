//! The public tenant identifier the widget sends, parsed at the edge.

use std::fmt;

/// A `tenant_hash` known to match `[A-Za-z0-9_-]{1,64}`, so it is safe inside an S3 key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantHash(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant_hash must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct InvalidTenantHash;

impl TenantHash {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantHash> {
        if is_safe_key_segment(raw) { Ok(Self(raw.to_owned())) } else { Err(InvalidTenantHash) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[A-Za-z0-9_-]{1,64}`: no dots, slashes or anything else that could walk an S3 prefix.
pub(crate) fn is_safe_key_segment(raw: &str) -> bool {
    (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for TenantHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_tenant_hashes_are_accepted() {
        for raw in ["auc5b0ecb0adcb", "at807c3896fbd2", "ri3a9f2c7d41be", "A_b-9"] {
            assert_eq!(TenantHash::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn path_walking_empty_long_and_odd_hashes_are_refused() {
        let too_long = "a".repeat(65);
        for raw in ["", "../x", "a/b", "a.json", "a b", "é", "a%2F", too_long.as_str()] {
            assert_eq!(TenantHash::parse(raw), Err(InvalidTenantHash), "{raw:?}");
        }
    }
}
