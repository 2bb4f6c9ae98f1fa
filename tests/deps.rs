//! The dependency policy, checked on every test run (`deny.toml` says the same for
//! `cargo deny check`): no OpenSSL, no other C crypto library, no C allocator. TLS is rustls
//! with ring; JWTs are signed by pure-Rust crypto.

/// Crates that bring OpenSSL, another C crypto library or a C allocator.
const BANNED: [&str; 12] = [
    "openssl",
    "openssl-sys",
    "native-tls",
    "hyper-tls",
    "tokio-native-tls",
    "aws-lc-rs",
    "aws-lc-sys",
    "boring",
    "boring-sys",
    "libssh2-sys",
    "mimalloc",
    "tikv-jemalloc-sys",
];

#[test]
fn no_openssl_or_c_crypto_in_the_lock_file() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock is committed");
    let names: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(names.len() > 50, "the lock file lists the dependency tree");
    let found: Vec<&&str> = names.iter().filter(|n| BANNED.contains(n)).collect();
    assert!(found.is_empty(), "banned crates in Cargo.lock: {found:?}");
    for needed in ["rustls", "jsonwebtoken", "hyper"] {
        assert!(names.contains(&needed), "{needed} missing from Cargo.lock");
    }
}

#[test]
fn deny_toml_bans_the_same_crates() {
    let deny = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deny.toml"))
        .expect("deny.toml");
    for name in BANNED {
        assert!(
            deny.contains(&format!("name = \"{name}\"")),
            "deny.toml does not ban {name}"
        );
    }
}
