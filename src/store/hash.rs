//! Buildbot's `hashColumns`: the identity of sourcestamps and builders.

use sha1::{Digest, Sha1};

/// One value fed to the hash: text, an integer, or NULL.
#[derive(Clone, Copy, Debug)]
pub enum HashValue<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl<'a> From<Option<&'a str>> for HashValue<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(HashValue::Null, HashValue::Text)
    }
}

/// Lowercase hex SHA-1 of the values joined by NUL, where NULL is the byte 0xF5 and an
/// integer is its decimal text — bit for bit what Buildbot computes, so both write
/// the same row for the same description.
pub fn hash_columns(values: &[HashValue<'_>]) -> String {
    hex::encode(Sha1::digest(hash_input(values)))
}

/// The bytes [`hash_columns`] hashes.
fn hash_input(values: &[HashValue<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(0u8);
        }
        match value {
            HashValue::Text(s) => out.extend_from_slice(s.as_bytes()),
            HashValue::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            HashValue::Null => out.push(0xF5u8),
        }
    }
    out
}

/// What `ss_hash` hashes before the patch id, which comes last: for a stamp whose
/// patch gets its id in the same statement, the database appends the id's decimal
/// text and hashes (MySQL's `SHA1(CONCAT(prefix, patchid))`).
pub fn sourcestamp_hash_prefix(
    branch: Option<&str>,
    revision: Option<&str>,
    repository: &str,
    project: &str,
    codebase: &str,
) -> Vec<u8> {
    let mut out = hash_input(&[
        branch.into(),
        revision.into(),
        HashValue::Text(repository),
        HashValue::Text(project),
        HashValue::Text(codebase),
    ]);
    out.push(0u8);
    out
}

/// `ss_hash` of a sourcestamp description, in Buildbot's column order.
pub fn sourcestamp_hash(
    branch: Option<&str>,
    revision: Option<&str>,
    repository: &str,
    project: &str,
    codebase: &str,
    patchid: Option<i32>,
) -> String {
    hash_columns(&[
        branch.into(),
        revision.into(),
        HashValue::Text(repository),
        HashValue::Text(project),
        HashValue::Text(codebase),
        patchid.map_or(HashValue::Null, |id| HashValue::Int(id.into())),
    ])
}

/// `name_hash` of a builder.
pub fn builder_name_hash(name: &str) -> String {
    hash_columns(&[HashValue::Text(name)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildbot_vectors() {
        assert_eq!(
            sourcestamp_hash(None, None, "", "", "", None),
            "835fccf6db3694afb48c380997024542c0bc162d"
        );
        assert_eq!(
            sourcestamp_hash(
                Some("main"),
                Some("abc123"),
                "https://example.org/repo.git",
                "proj",
                "cb",
                Some(7)
            ),
            "7ecce245b6be5d282a3ab85edba91e8ca16bcdbb"
        );
        assert_eq!(
            sourcestamp_hash(Some("feature/ünïcode"), None, "git://x", "", "", None),
            "91069747a0a818b977c7797bc1ecf7f483265333"
        );
        let mut with_id = sourcestamp_hash_prefix(
            Some("main"),
            Some("abc123"),
            "https://example.org/repo.git",
            "proj",
            "cb",
        );
        with_id.extend_from_slice(b"7");
        assert_eq!(
            hex::encode(Sha1::digest(with_id)),
            "7ecce245b6be5d282a3ab85edba91e8ca16bcdbb"
        );
        assert_eq!(
            builder_name_hash("bldr1"),
            "88103b2fbeb05bdd81c066b58a11bcf9b0d29300"
        );
    }
}
