//! The bounds on passphrase KDF parameters (a leaf: the key code and the
//! error messages both read them).

/// Argon2id minimums (OWASP's recommended floor; the defaults).
pub const ARGON2ID_MIN_M_KIB: u32 = 19_456;
/// Minimum Argon2id passes.
pub const ARGON2ID_MIN_T: u32 = 2;
/// Minimum PBKDF2-HMAC-SHA256 iterations (OWASP 2023).
pub const PBKDF2_MIN_ITERATIONS: u32 = 600_000;

/// Largest accepted Argon2id memory (a planted file could exhaust memory).
pub(crate) const ARGON2ID_MAX_M_KIB: u32 = 4 * 1024 * 1024;
/// Most Argon2id passes accepted.
pub(crate) const ARGON2ID_MAX_T: u32 = 64;
/// Most Argon2id lanes accepted.
pub(crate) const ARGON2ID_MAX_P: u32 = 64;
/// Most PBKDF2 iterations accepted.
pub(crate) const PBKDF2_MAX_ITERATIONS: u32 = 100_000_000;
