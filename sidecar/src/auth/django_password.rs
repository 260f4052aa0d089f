//! Verification of the encoded passwords Django keeps in `auth_user.password`.
//!
//! Every cost parameter is read from the stored string, as Django does, so hashes written
//! under older defaults or custom hasher subclasses keep working.
//!
//! The work is split between two crates:
//! - PBKDF2 (SHA-256 and SHA-1), bcrypt, bcrypt_sha256 and scrypt go to `djangohashers`. This
//!   module checks the shape and cost parameters of those strings first, because djangohashers
//!   indexes and unwraps its way through malformed input (a zero iteration count or a
//!   non-numeric scrypt field panics) and takes scrypt's memory cost on trust.
//! - argon2 goes to RustCrypto's `argon2`. djangohashers 1.8 always computes Argon2i version 1.3
//!   whatever the string names, so it rejects every argon2id hash Django has written by default
//!   since 3.2 and every `v=16` hash; it also refuses digests containing `/` (about half of
//!   all hashes) and panics on salts whose base64 contains `+` or `/`.
//!
//! Any string that is malformed, uses another algorithm, or asks for more work than the bounds
//! below is refused rather than guessed at.

use std::hint::black_box;
use std::panic::{self, RefUnwindSafe};

use argon2::password_hash::{ParamsString, PasswordHash};
use argon2::{Argon2, Params, Version};
use djangohashers::{
    BCryptHasher, BCryptSHA256Hasher, Hasher, PBKDF2Hasher, PBKDF2SHA1Hasher, ScryptHasher,
};
use subtle::ConstantTimeEq;

/// What a login for an unknown user is checked against, so that it costs what a real one does:
/// PBKDF2-SHA256 at Django 5.2's default 1,000,000 iterations, made by Django from a random
/// password nobody kept. A test ties the count to the default vector Django produced.
const DUMMY_ENCODED: &str =
    "pbkdf2_sha256$1000000$IitO2L8mip5RYjGMEUSeAT$CDFnr+85kZCwn9Lzyy5FTJx4CeO+E10kJ8OPRb+mfKQ=";

/// djangohashers refuses anything above this as a denial-of-service guard; stating it here makes
/// the limit visible (Django 6.0 writes 1,200,000, so it is not far off).
const MAX_PBKDF2_ITERATIONS: u32 = 1_500_000;

/// Ceiling on the memory one argon2 or scrypt verification may allocate. An allocation failure
/// aborts the whole process, which no error handling can catch, so a corrupt row must not be able
/// to ask for more. Django's defaults use 100 MiB (argon2) and 16 MiB (scrypt).
const MAX_KDF_MEMORY_BYTES: u64 = 1 << 30;

/// Bounds on the remaining costs. They only limit how long one login can occupy a thread, and
/// sit far above anything Django writes (argon2 t=2, p=8; scrypt p=5; bcrypt 12 rounds).
const MAX_ARGON2_TIME_COST: u32 = 64;
const MAX_ARGON2_PARALLELISM: u32 = 255;
const MAX_SCRYPT_PARALLELISM: u32 = 64;
/// djangohashers' own limit, restated so that the shape check rejects the string first.
const MAX_BCRYPT_COST: u32 = 16;
/// The smallest cost bcrypt itself accepts.
const MIN_BCRYPT_COST: u32 = 4;

/// True when `password` matches Django's encoded hash `encoded`. Never panics; any malformed or
/// unsupported string (including "!" unusable passwords and empty strings) returns false.
///
/// Supports `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2` (argon2id, argon2i and argon2d, versions
/// 1.3 and 1.0), `bcrypt_sha256`, `bcrypt` and `scrypt`, all with the parameters stored in the
/// string. The hash comparison is constant time. This runs the full key derivation, so call it
/// from a blocking-capable thread.
pub fn verify_password(password: &str, encoded: &str) -> bool {
    let Some(algorithm) = Algorithm::identify(encoded) else {
        return false;
    };
    match algorithm {
        // Checks the string's shape itself, and parses it once for both.
        Algorithm::Argon2 => argon2_matches(password, encoded).unwrap_or(false),
        _ if !is_well_formed(algorithm, encoded) => false,
        Algorithm::Pbkdf2Sha256 => verify_with_djangohashers(&PBKDF2Hasher, password, encoded),
        Algorithm::Pbkdf2Sha1 => verify_with_djangohashers(&PBKDF2SHA1Hasher, password, encoded),
        Algorithm::BcryptSha256 => {
            verify_with_djangohashers(&BCryptSHA256Hasher, password, encoded)
        }
        Algorithm::Bcrypt => verify_with_djangohashers(&BCryptHasher, password, encoded),
        Algorithm::Scrypt => verify_with_djangohashers(&ScryptHasher, password, encoded),
    }
}

/// True when [`verify_password`] would run the full key derivation for `encoded`: a supported
/// algorithm, a well-formed string and costs within the bounds. Unusable passwords (`!...`),
/// empty strings, legacy and malformed hashes give false; a login checks those against the
/// dummy hash instead, so that they cost what any other failed login costs.
pub fn is_verifiable(encoded: &str) -> bool {
    Algorithm::identify(encoded).is_some_and(|algorithm| is_well_formed(algorithm, encoded))
}

/// A well-formed string of `algorithm` with costs within the bounds.
fn is_well_formed(algorithm: Algorithm, encoded: &str) -> bool {
    match algorithm {
        Algorithm::Pbkdf2Sha256 | Algorithm::Pbkdf2Sha1 => pbkdf2_is_well_formed(encoded),
        Algorithm::Argon2 => argon2_prepare(encoded).is_some(),
        Algorithm::BcryptSha256 | Algorithm::Bcrypt => bcrypt_is_well_formed(encoded),
        Algorithm::Scrypt => scrypt_is_well_formed(encoded),
    }
}

/// The hash a failed login is checked against when the user has no verifiable hash of their
/// own (unknown, inactive, unusable or malformed): the dummy, at Django's default cost.
pub fn dummy_encoded() -> &'static str {
    DUMMY_ENCODED
}

/// Runs one verification of the same cost as a default Django hash (PBKDF2-SHA256 with Django's
/// current default iteration count) against a fixed dummy hash, so that a login for an unknown
/// username takes as long as one for a known username. Result is discarded.
pub fn burn_dummy_verification(password: &str) {
    // black_box keeps the optimiser from deciding an unused result needs no computing.
    black_box(verify_password(black_box(password), DUMMY_ENCODED));
}

/// The algorithm prefix of an encoded string ("pbkdf2_sha256", "argon2", ...), for logs; None if
/// unrecognised.
///
/// Only the algorithms [`verify_password`] supports are recognised, so Django's legacy `md5`,
/// `sha1` and `crypt` hashes give None as well.
pub fn algorithm_of(encoded: &str) -> Option<&str> {
    Algorithm::identify(encoded).map(Algorithm::name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Pbkdf2Sha256,
    Pbkdf2Sha1,
    Argon2,
    BcryptSha256,
    Bcrypt,
    Scrypt,
}

impl Algorithm {
    const ALL: [Algorithm; 6] = [
        Algorithm::Pbkdf2Sha256,
        Algorithm::Pbkdf2Sha1,
        Algorithm::Argon2,
        Algorithm::BcryptSha256,
        Algorithm::Bcrypt,
        Algorithm::Scrypt,
    ];

    /// Django's `algorithm` attribute for the hasher, which is also the stored prefix.
    fn name(self) -> &'static str {
        match self {
            Algorithm::Pbkdf2Sha256 => "pbkdf2_sha256",
            Algorithm::Pbkdf2Sha1 => "pbkdf2_sha1",
            Algorithm::Argon2 => "argon2",
            Algorithm::BcryptSha256 => "bcrypt_sha256",
            Algorithm::Bcrypt => "bcrypt",
            Algorithm::Scrypt => "scrypt",
        }
    }

    /// Django's `identify_hasher`: everything before the first `$` names the hasher. Strings
    /// without any `$` (unusable "!" passwords, unsalted legacy digests) name none we support.
    fn identify(encoded: &str) -> Option<Algorithm> {
        let (prefix, _) = encoded.split_once('$')?;
        Algorithm::ALL.into_iter().find(|a| a.name() == prefix)
    }
}

fn verify_with_djangohashers<H: Hasher + RefUnwindSafe>(
    hasher: &H,
    password: &str,
    encoded: &str,
) -> bool {
    // The shape checks before this call rule out every input djangohashers 1.8 is known to panic
    // on. The guard is for whatever a later release adds: a login must fail, not unwind through
    // the caller.
    #[cfg(test)]
    kdf_log::record(encoded);
    panic::catch_unwind(|| hasher.verify(password, encoded).unwrap_or(false)).unwrap_or(false)
}

/// `<algorithm>$<iterations>$<salt>$<hash>`.
fn pbkdf2_is_well_formed(encoded: &str) -> bool {
    let Some([_, iterations, salt, hash]) = split_fields(encoded) else {
        return false;
    };
    canonical_decimal(iterations).is_some_and(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(&n))
        && !salt.is_empty()
        && !hash.is_empty()
}

/// `scrypt$<N>$<salt>$<r>$<p>$<hash>`, N first, as `ScryptPasswordHasher.encode` writes it.
fn scrypt_is_well_formed(encoded: &str) -> bool {
    let Some([_, n, salt, r, p, hash]) = split_fields(encoded) else {
        return false;
    };
    let (Some(n), Some(r), Some(p)) = (
        canonical_decimal(n),
        canonical_decimal(r),
        canonical_decimal(p),
    ) else {
        return false;
    };
    // djangohashers hands log2(N) to the scrypt crate, so N has to be an exact power of two.
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 || p > MAX_SCRYPT_PARALLELISM {
        return false;
    }
    // scrypt's own bound N < 2^(16 r); hashlib enforces it too, and the scrypt crate would
    // report it as an error that djangohashers unwraps.
    let log_n = u64::from(n.trailing_zeros());
    if log_n >= 16 * u64::from(r) {
        return false;
    }
    let memory = 128 * u64::from(r) * u64::from(n);
    memory <= MAX_KDF_MEMORY_BYTES && !salt.is_empty() && !hash.is_empty()
}

/// `bcrypt$` or `bcrypt_sha256$` followed by a modular-crypt bcrypt string
/// `$2b$<cost>$<22 salt chars><31 hash chars>`.
fn bcrypt_is_well_formed(encoded: &str) -> bool {
    let Some([_, empty, version, cost, data]) = split_fields(encoded) else {
        return false;
    };
    // Python's bcrypt module, which Django calls, accepts all four prefixes; so does the bcrypt
    // crate, and for passwords Django can hash they compute the same thing.
    let known_version = matches!(version, "2a" | "2b" | "2x" | "2y");
    let cost_ok = cost.len() == 2
        && canonical_or_padded_decimal(cost)
            .is_some_and(|c| (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&c));
    let data_ok = data.len() == 53
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    empty.is_empty() && known_version && cost_ok && data_ok
}

/// Django stores argon2-cffi's PHC string, `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`, after
/// its own `argon2` prefix. None means malformed or out of bounds.
fn argon2_matches(password: &str, encoded: &str) -> Option<bool> {
    let (argon2, salt, expected) = argon2_prepare(encoded)?;
    let mut actual = [0u8; 64];
    let actual = actual.get_mut(..expected.len())?;
    #[cfg(test)]
    kdf_log::record(encoded);
    argon2
        .hash_password_into(password.as_bytes(), &salt, actual)
        .ok()?;
    Some(actual.ct_eq(&expected).into())
}

/// The hasher, salt and expected output of a stored argon2 string; None when it is malformed
/// or out of bounds.
#[allow(clippy::type_complexity)]
fn argon2_prepare(encoded: &str) -> Option<(Argon2<'static>, Vec<u8>, Vec<u8>)> {
    let phc = encoded.strip_prefix(Algorithm::Argon2.name())?;
    let parsed = PasswordHash::new(phc).ok()?;
    let variant = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
    // The reference implementation, and so argon2-cffi, reads a missing `v=` as version 1.0:
    // the first argon2-cffi releases Django supported wrote no version field. The argon2
    // crate would assume 1.3 instead.
    let version = match parsed.version {
        None => Version::V0x10,
        Some(v) => Version::try_from(v).ok()?,
    };
    if !argon2_costs_are_bounded(&parsed.params) {
        return None;
    }
    // The output length is taken from the stored hash, as argon2-cffi does.
    let params = Params::try_from(&parsed).ok()?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?.to_vec();
    let expected = parsed.hash?.as_bytes().to_vec();
    if expected.len() > 64 {
        return None;
    }
    Some((Argon2::new(variant, version, params), salt, expected))
}

/// argon2-cffi requires m, t and p to be present; the argon2 crate would silently substitute
/// its own defaults for missing ones. Checked before building `Params`, which computes `8 * p`
/// in u32 and would overflow on a huge p.
fn argon2_costs_are_bounded(params: &ParamsString) -> bool {
    let (Some(m_kib), Some(t), Some(p)) = (
        params.get_decimal("m"),
        params.get_decimal("t"),
        params.get_decimal("p"),
    ) else {
        return false;
    };
    u64::from(m_kib) * 1024 <= MAX_KDF_MEMORY_BYTES
        && (1..=MAX_ARGON2_TIME_COST).contains(&t)
        && (1..=MAX_ARGON2_PARALLELISM).contains(&p)
}

/// Splits on `$` into exactly `N` fields. Django's hashers split into a fixed number of fields
/// and then compare the whole re-encoded string, so a string with extra fields can never verify
/// there; refusing it here keeps djangohashers from ignoring the surplus.
fn split_fields<const N: usize>(encoded: &str) -> Option<[&str; N]> {
    let mut fields = [""; N];
    let mut parts = encoded.split('$');
    for field in &mut fields {
        *field = parts.next()?;
    }
    parts.next().is_none().then_some(fields)
}

/// A decimal written the way Django's `%d` writes one. Django only accepts a stored number that
/// re-encodes to the same text, whereas Rust's parser would also take `+5` or `007`.
fn canonical_decimal(text: &str) -> Option<u32> {
    if text.starts_with('0') && text != "0" {
        return None;
    }
    canonical_or_padded_decimal(text)
}

/// ASCII digits only, leading zeros allowed (bcrypt writes its cost as two digits).
fn canonical_or_padded_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Test-only record of the key derivations run on this thread, so that tests can count the
/// work a login does without timing it.
#[cfg(test)]
pub(crate) mod kdf_log {
    use std::cell::RefCell;

    thread_local! {
        static RUNS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub fn record(encoded: &str) {
        RUNS.with(|runs| runs.borrow_mut().push(encoded.to_string()));
    }

    /// The encoded strings verified on this thread since the last call, in order.
    pub fn take() -> Vec<String> {
        RUNS.with(|runs| std::mem::take(&mut *runs.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde::Deserialize;

    /// `PBKDF2PasswordHasher.iterations` in Django 5.2, the cost of a freshly set password.
    const DJANGO_DEFAULT_PBKDF2_ITERATIONS: u32 = 1_000_000;

    /// Written by tests/tools/make_hasher_vectors.py, which proves each vector with Django's own
    /// `check_password` before writing it.
    const VECTORS_JSON: &str = include_str!("testdata/django_password_vectors.json");

    #[derive(Deserialize)]
    struct VectorFile {
        django_version: String,
        vectors: Vec<Vector>,
        rejected: Vec<Rejected>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        algorithm: String,
        password: String,
        wrong_password: String,
        encoded: String,
    }

    #[derive(Deserialize)]
    struct Rejected {
        name: String,
        password: String,
        encoded: String,
    }

    fn vector_file() -> VectorFile {
        serde_json::from_str(VECTORS_JSON).expect("vector file parses")
    }

    fn vector(name: &str) -> Vector {
        vector_file()
            .vectors
            .into_iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector named {name:?}"))
    }

    /// Checked per algorithm so that the expensive default vectors run on parallel threads.
    fn check_vectors_of(algorithm: Algorithm) {
        let vectors: Vec<Vector> = vector_file()
            .vectors
            .into_iter()
            .filter(|v| v.algorithm == algorithm.name())
            .collect();
        assert!(
            vectors.len() >= 4,
            "expected several {} vectors",
            algorithm.name()
        );
        for v in &vectors {
            assert_eq!(
                algorithm_of(&v.encoded),
                Some(algorithm.name()),
                "{}",
                v.name
            );
            assert!(
                verify_password(&v.password, &v.encoded),
                "{}: right password refused",
                v.name
            );
            assert!(
                !verify_password(&v.wrong_password, &v.encoded),
                "{}: wrong password accepted",
                v.name
            );
        }
    }

    /// One test per algorithm, so that a failure names it.
    macro_rules! vector_tests {
        ($($test:ident: $algorithm:ident),+ $(,)?) => {$(
            #[test]
            fn $test() {
                check_vectors_of(Algorithm::$algorithm);
            }
        )+};
    }

    vector_tests! {
        pbkdf2_sha256_vectors: Pbkdf2Sha256,
        pbkdf2_sha1_vectors: Pbkdf2Sha1,
        argon2_vectors: Argon2,
        bcrypt_sha256_vectors: BcryptSha256,
        bcrypt_vectors: Bcrypt,
        scrypt_vectors: Scrypt,
    }

    #[test]
    fn vectors_cover_the_cases_that_matter() {
        let file = vector_file();
        assert!(file.django_version.starts_with("5.2"));
        let names: Vec<&str> = file.vectors.iter().map(|v| v.name.as_str()).collect();
        for wanted in [
            "pbkdf2_sha256 default",
            "argon2id default",
            "argon2i",
            "argon2i v=16",
            "argon2i without version field",
            "argon2i salt with + and /",
            "bcrypt_sha256 default",
            "bcrypt default",
            "scrypt default",
        ] {
            assert!(names.contains(&wanted), "missing vector {wanted:?}");
        }
        for v in &file.vectors {
            assert!(Algorithm::identify(&v.encoded).is_some(), "{}", v.name);
        }
        let passwords = || file.vectors.iter().map(|v| v.password.as_str());
        assert!(passwords().any(str::is_empty));
        assert!(passwords().any(|p| !p.is_ascii()));
        assert!(passwords().any(|p| p.contains('$') && p.contains(':')));
    }

    #[test]
    fn strings_django_refuses_are_refused() {
        for case in vector_file().rejected {
            assert!(
                !verify_password(&case.password, &case.encoded),
                "{}",
                case.name
            );
            assert!(!verify_password("", &case.encoded), "{}", case.name);
        }
    }

    #[test]
    fn malformed_strings_are_refused() {
        let cheap = vector("pbkdf2_sha256 non-ascii");
        let iterations_field = "$1000$";
        assert!(cheap.encoded.contains(iterations_field));
        let with_iterations = |text: &str| {
            cheap
                .encoded
                .replacen(iterations_field, &format!("${text}$"), 1)
        };
        let argon2_salt = "c2FsdHNhbHRzYWx0";
        let argon2_hash = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let bcrypt_data = "ncBEgvN0ifLJhvEaC10zZeq5EoHPIEoXYRefZxenMNRiERpb/XFt2";
        let malformed = [
            String::new(),
            "!abc".into(),
            "!".into(),
            "$".into(),
            "$$$".into(),
            "pbkdf2_sha256".into(),
            "pbkdf2_sha256$".into(),
            "pbkdf2_sha256$notanumber$salt$hash".into(),
            "pbkdf2_sha256$1000$salt".into(),
            "pbkdf2_sha256$1000$$hash".into(),
            "pbkdf2_sha256$1000$salt$".into(),
            "pbkdf2_sha256$0$salt$hash".into(),
            "pbkdf2_sha256$-1$salt$hash".into(),
            "pbkdf2_sha256$99999999999999999999$salt$hash".into(),
            "pbkdf2_sha256$1500001$salt$hash".into(),
            "pbkdf2_sha1$0$salt$hash".into(),
            // A real hash with its iteration count spelled differently, or with a field added,
            // is one Django would refuse.
            with_iterations("01000"),
            with_iterations("+1000"),
            with_iterations(" 1000"),
            format!("{}$", cheap.encoded),
            format!("{}$extra", cheap.encoded),
            format!("!{}", cheap.encoded),
            "sha512$1000$salt$hash".into(),
            "md5$salt$0137e4d74cb2d9ed9cb1a5f391f6175e".into(),
            "unsalted_md5$$0137e4d74cb2d9ed9cb1a5f391f6175e".into(),
            "PBKDF2_SHA256$1000$salt$hash".into(),
            "argon2$argon2id$garbage".into(),
            "argon2$argon2id$".into(),
            "argon2$".into(),
            "argon2".into(),
            "argon2argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            format!("argon2$argon2x$v=19$m=64,t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$scrypt$v=19$m=64,t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=18$m=64,t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1,x=2${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=0,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=0${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=4,t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=999999999${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=4294967295,t=1,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=4294967295,p=1${argon2_salt}${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1$${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1${argon2_salt}$"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1${argon2_salt}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1$!!!!${argon2_hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1${argon2_salt}$not-base64!"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=1${argon2_salt}${argon2_hash}$x"),
            format!("bcrypt$$2b$12${bcrypt_data}x"),
            format!("bcrypt$$2b$12${}", &bcrypt_data[1..]),
            format!("bcrypt$2b$12${bcrypt_data}"),
            format!("bcrypt$$2c$12${bcrypt_data}"),
            format!("bcrypt$$2b$03${bcrypt_data}"),
            format!("bcrypt$$2b$17${bcrypt_data}"),
            format!("bcrypt$$2b$99${bcrypt_data}"),
            format!("bcrypt$$2b$4${bcrypt_data}"),
            format!("bcrypt$$2b$+4${bcrypt_data}"),
            format!("bcrypt$$2b$$12${bcrypt_data}"),
            format!("bcrypt$$2b$12${}é", &bcrypt_data[..51]),
            format!("bcrypt_sha256$$2b$12${}!", &bcrypt_data[..52]),
            "bcrypt_sha256$$2b$12$".into(),
            "scrypt$16384$salt$8$5".into(),
            "scrypt$16384$salt$8$5$".into(),
            "scrypt$$salt$8$5$hash".into(),
            "scrypt$16000$salt$8$5$hash".into(),
            "scrypt$0$salt$8$5$hash".into(),
            "scrypt$1$salt$8$5$hash".into(),
            "scrypt$16384$salt$0$5$hash".into(),
            "scrypt$16384$salt$8$0$hash".into(),
            "scrypt$16384$salt$8$65$hash".into(),
            "scrypt$65536$salt$1$1$hash".into(),
            "scrypt$2147483648$salt$8$1$hash".into(),
            "scrypt$1048576$salt$16$1$hash".into(),
            "scrypt$16384$salt$4294967295$1$hash".into(),
            "scrypt$1e4$salt$8$1$hash".into(),
            "scrypt$16384.0$salt$8$1$hash".into(),
            "scrypt$16384$$8$5$hash".into(),
            "scrypt$salt$16384$8$5$hash".into(),
        ];
        for encoded in &malformed {
            for password in ["", "password", "\u{0}", "é$:"] {
                assert!(
                    !verify_password(password, encoded),
                    "{encoded:?} accepted {password:?}"
                );
            }
        }
    }

    /// Every cut through a real string, including through the middle of the salt and hash, must
    /// fail cleanly. The default-cost vectors are skipped because each cut costs a full hash.
    #[test]
    fn truncated_strings_are_refused() {
        for v in vector_file().vectors {
            if v.name.contains("default") {
                continue;
            }
            for (cut, _) in v.encoded.char_indices() {
                let truncated = &v.encoded[..cut];
                assert!(
                    !verify_password(&v.password, truncated),
                    "{}: accepted when cut to {truncated:?}",
                    v.name
                );
            }
        }
    }

    #[test]
    fn hashes_are_not_interchangeable_between_algorithms() {
        // The same salt and digest under another name must not verify: the prefix picks the
        // computation, not just the parser.
        let sha256 = vector("pbkdf2_sha256 non-ascii");
        let relabelled = sha256.encoded.replacen("pbkdf2_sha256$", "pbkdf2_sha1$", 1);
        assert!(!verify_password(&sha256.password, &relabelled));

        let bcrypt_sha256 = vector("bcrypt_sha256 empty");
        let relabelled = bcrypt_sha256
            .encoded
            .replacen("bcrypt_sha256$", "bcrypt$", 1);
        assert!(!verify_password(&bcrypt_sha256.password, &relabelled));

        let argon2id = vector("argon2id small");
        let relabelled = argon2id.encoded.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!verify_password(&argon2id.password, &relabelled));
        let relabelled = argon2id.encoded.replacen("$argon2id$", "$argon2d$", 1);
        assert!(!verify_password(&argon2id.password, &relabelled));
        // Dropping the version field means version 1.0, a different computation.
        let versionless = argon2id.encoded.replacen("$v=19$", "$", 1);
        assert!(!verify_password(&argon2id.password, &versionless));
    }

    #[test]
    fn parameters_are_read_from_the_string() {
        let scrypt = vector("scrypt small");
        for (from, to) in [("$1024$", "$2048$"), ("$4$2$", "$4$1$"), ("$4$2$", "$8$2$")] {
            let altered = scrypt.encoded.replacen(from, to, 1);
            assert_ne!(altered, scrypt.encoded);
            assert!(!verify_password(&scrypt.password, &altered), "{altered}");
        }
        let argon2 = vector("argon2id odd parameters");
        for (from, to) in [("m=2048", "m=4096"), ("t=3", "t=2"), ("p=4", "p=2")] {
            let altered = argon2.encoded.replacen(from, to, 1);
            assert_ne!(altered, argon2.encoded);
            assert!(!verify_password(&argon2.password, &altered), "{altered}");
        }
        let bcrypt = vector("bcrypt empty");
        let altered = bcrypt.encoded.replacen("$05$", "$04$", 1);
        assert_ne!(altered, bcrypt.encoded);
        assert!(!verify_password(&bcrypt.password, &altered));
    }

    #[test]
    fn algorithm_of_names_supported_prefixes_only() {
        for algorithm in Algorithm::ALL {
            let encoded = format!("{}$anything", algorithm.name());
            assert_eq!(algorithm_of(&encoded), Some(algorithm.name()));
        }
        assert_eq!(
            algorithm_of("argon2$argon2i$v=19$m=512,t=2,p=2$c2FsdA$aGFzaA"),
            Some("argon2")
        );
        assert_eq!(
            algorithm_of("bcrypt_sha256$$2b$12$x"),
            Some("bcrypt_sha256")
        );
        assert_eq!(algorithm_of("bcrypt$$2b$12$x"), Some("bcrypt"));
        for unrecognised in [
            "",
            "!",
            "!pbkdf2_sha256$1$s$h",
            "pbkdf2_sha256",
            "md5$salt$hash",
            "sha1$salt$hash",
            "crypt$$ab1Hv2Lg7ltQo",
            "0137e4d74cb2d9ed9cb1a5f391f6175e",
            "Argon2$argon2id$x",
        ] {
            assert_eq!(algorithm_of(unrecognised), None, "{unrecognised:?}");
        }
    }

    #[test]
    fn dummy_verification_costs_a_default_django_hash() {
        // Ties the dummy to what Django writes today: if the vectors are regenerated with a
        // Django whose default differs, this fails and the constants need updating.
        let default = vector("pbkdf2_sha256 default");
        let [algorithm, iterations, ..] =
            split_fields::<4>(&default.encoded).expect("default vector has four fields");
        let [dummy_algorithm, dummy_iterations, ..] =
            split_fields::<4>(DUMMY_ENCODED).expect("dummy has four fields");
        assert_eq!(dummy_algorithm, algorithm);
        assert_eq!(dummy_iterations, iterations);
        assert_eq!(
            canonical_decimal(iterations),
            Some(DJANGO_DEFAULT_PBKDF2_ITERATIONS)
        );
        assert!(pbkdf2_is_well_formed(DUMMY_ENCODED));
        assert_eq!(algorithm_of(DUMMY_ENCODED), Some("pbkdf2_sha256"));
        burn_dummy_verification("whatever the caller typed");
    }

    #[test]
    fn verifiable_means_the_key_derivation_runs() {
        // Every hash Django writes is verifiable, and verifying it runs exactly one derivation.
        for vector in vector_file().vectors {
            assert!(is_verifiable(&vector.encoded), "{}", vector.name);
            kdf_log::take();
            verify_password(&vector.wrong_password, &vector.encoded);
            assert_eq!(
                kdf_log::take(),
                [vector.encoded.as_str()],
                "{}",
                vector.name
            );
        }
        // Unusable, empty, legacy and malformed strings are not, and verify nothing.
        for encoded in [
            "!",
            "!Mj3v2mH4xQd9Zr8aL0pUe1sWk7yTn5bVc6fGh2iJ",
            "",
            "md5$salt$0123456789abcdef0123456789abcdef",
            "pbkdf2_sha256$0$salt$hash",
            "argon2$argon2id$v=19$m=102400,t=2$c2FsdA$aGFzaA",
        ] {
            assert!(!is_verifiable(encoded), "{encoded:?}");
            kdf_log::take();
            verify_password("x", encoded);
            assert!(kdf_log::take().is_empty(), "{encoded:?}");
        }
        assert!(is_verifiable(dummy_encoded()));
    }
}
