//! Bootstrap tokens as the kit node derives them from a join password, and
//! passwords whose token id a YAML parser would read as a number (issue
//! 28): shared by `join_objects.rs` (no cluster) and the smoke suite (a
//! real API server).

use sha2::{Digest, Sha256};

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node's derivation (`cbam-join token`), written again here:
/// `(id, secret)` from the password. `join_objects.rs` checks it against the
/// node's own.
pub(crate) fn bootstrap_token(password: &str) -> (String, String) {
    let id = hex(&Sha256::digest(format!("id:{password}")))[..6].to_owned();
    let secret = hex(&Sha256::digest(format!("secret:{password}")))[..16].to_owned();
    (id, secret)
}

/// Deterministic passwords of the kind the node generates (64 hex digits).
pub(crate) fn passwords(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| hex(&Sha256::digest(format!("password {i}"))))
}

pub(crate) fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The first password (of the node's kind) whose token id has SHAPE.
fn password_whose_id(shape: impl Fn(&str) -> bool) -> String {
    passwords(1_000_000).find(|p| shape(&bootstrap_token(p).0)).expect("a password of that shape in a million")
}

/// Ids a YAML parser would read as a number if pasted into YAML text:
/// "513048", "012345", "1e5234".
pub(crate) fn numeric_looking_passwords() -> Vec<(&'static str, String)> {
    vec![
        ("all digits", password_whose_id(all_digits)),
        ("0-prefixed digits", password_whose_id(|id| id.starts_with('0') && all_digits(id))),
        (
            "digits e digits",
            password_whose_id(|id| {
                id.split_once('e')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && all_digits(a) && all_digits(b))
            }),
        ),
    ]
}
