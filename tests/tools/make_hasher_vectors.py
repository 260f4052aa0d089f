"""Write the Django password-hash vectors used by sidecar/src/auth/django_password.rs.

Every encoded string comes from Django's own hashers (or, for the argon2 variants Django no
longer writes, from argon2-cffi in exactly Django's layout) and is only written out after
Django's `check_password` has accepted the right password and refused the wrong one, so the
Rust tests check against Django's behaviour rather than against another reimplementation.

Salts are random, so rerunning rewrites every vector; that is expected.

    .venv/bin/python tests/tools/make_hasher_vectors.py
"""

import json
import pathlib
import sys
import unicodedata
from importlib import metadata

import django
from django.conf import settings

SUPPORTED_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

settings.configure(PASSWORD_HASHERS=SUPPORTED_HASHERS)
django.setup()

# Imported only now: Django must be configured before its hashers module is loaded.
import argon2
import bcrypt
from django.contrib.auth import hashers

OUT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "sidecar/src/auth/testdata/django_password_vectors.json"
)

ASCII = "correct horse battery staple"
# NFC on purpose: the NFD spelling of the same text is used as a wrong password, because
# Django hashes the UTF-8 bytes it is given and never normalises.
NON_ASCII = unicodedata.normalize("NFC", "pässwörd Ünïcödé 日本語 🔑")
NON_ASCII_NFD = unicodedata.normalize("NFD", NON_ASCII)
SEPARATORS = "pa$$w:rd$1:2$"
# Longer than a SHA block (64) and than bcrypt's 72-byte limit.
LONG = "long-" + "0123456789" * 10


# Cheap parameter sets so that the Rust tests stay fast. Verification reads every parameter
# from the encoded string, so these subclasses share their parent's algorithm name.
class PBKDF2Fast(hashers.PBKDF2PasswordHasher):
    iterations = 1000


class PBKDF2One(hashers.PBKDF2PasswordHasher):
    iterations = 1


class PBKDF2SHA1Fast(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class Argon2Small(hashers.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 64
    parallelism = 1


class Argon2Odd(hashers.Argon2PasswordHasher):
    time_cost = 3
    memory_cost = 2048
    parallelism = 4


class Argon2i(hashers.Argon2PasswordHasher):
    """Argon2i with the parameters Django 1.10-3.1 used as defaults before moving to argon2id."""

    time_cost = 2
    memory_cost = 512
    parallelism = 2

    def params(self):
        params = super().params()
        params.type = argon2.low_level.Type.I
        return params


class BCryptSHA256Fast(hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class BCryptFast(hashers.BCryptPasswordHasher):
    rounds = 5


class ScryptSmall(hashers.ScryptPasswordHasher):
    work_factor = 2**10
    block_size = 4
    parallelism = 2


class ScryptTiny(hashers.ScryptPasswordHasher):
    work_factor = 2**4
    block_size = 1
    parallelism = 1


def argon2_cffi(password, *, version=19, omit_version=False, salt=None):
    """An argon2i hash in Django's layout that Django itself no longer writes.

    version=16 is what the argon2-cffi releases of Django 1.10's time wrote; the oldest of
    those omitted the `v=` field altogether, which argon2 reads as version 1.0. A raw-byte salt
    stands in for hashes imported from other systems: Django's alphanumeric salts never put `+`
    or `/` into the base64.
    """
    if salt is None:
        salt = hashers.Argon2PasswordHasher().salt().encode()
    data = argon2.low_level.hash_secret(
        password.encode(),
        salt,
        time_cost=2,
        memory_cost=512,
        parallelism=2,
        hash_len=16,
        type=argon2.low_level.Type.I,
        version=version,
    ).decode("ascii")
    if omit_version:
        assert f"$v={version}$" in data
        data = data.replace(f"$v={version}$", "$", 1)
    return "argon2" + data


def with_bcrypt_prefix(hasher, prefix):
    """Django writes $2b$, but verifies any prefix the bcrypt module accepts, such as the $2a$
    and $2y$ of hashes imported from elsewhere."""
    salt = b"$" + prefix + bcrypt.gensalt(hasher.rounds)[3:]
    return lambda password: hashers.make_password(password, salt=salt, hasher=hasher)


def digest_has_plus_and_slash(encoded):
    """Base64's two non-alphanumeric symbols are where URL-safe and standard decoders differ."""
    digest = encoded.rsplit("$", 1)[1]
    return "+" in digest and "/" in digest


vectors = []


def add(name, password, wrong, make, must=None):
    # Some properties (such as '+' or '/' in argon2's base64) only show up by chance.
    for _ in range(200):
        encoded = make(password)
        if must is None or must(encoded):
            break
    else:
        sys.exit(f"{name}: could not produce a vector with the wanted property")
    if not hashers.check_password(password, encoded):
        sys.exit(f"{name}: Django rejects {encoded!r}")
    if hashers.check_password(wrong, encoded):
        sys.exit(f"{name}: Django accepts the wrong password {wrong!r}")
    vectors.append(
        {
            "name": name,
            "algorithm": encoded.split("$", 1)[0],
            "password": password,
            "wrong_password": wrong,
            "encoded": encoded,
        }
    )


def with_hasher(hasher):
    return lambda password: hashers.make_password(password, hasher=hasher)


pbkdf2_default = hashers.PBKDF2PasswordHasher()
add("pbkdf2_sha256 default", ASCII, ASCII + " ", with_hasher(pbkdf2_default))
add("pbkdf2_sha256 non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(PBKDF2Fast()))
add("pbkdf2_sha256 empty", "", " ", with_hasher(PBKDF2Fast()))
add("pbkdf2_sha256 separators", SEPARATORS, SEPARATORS[:-1], with_hasher(PBKDF2Fast()))
add("pbkdf2_sha256 long", LONG, LONG[:-1], with_hasher(PBKDF2Fast()))
add("pbkdf2_sha256 one iteration", ASCII, ASCII.upper(), with_hasher(PBKDF2One()))

add("pbkdf2_sha1 small", ASCII, ASCII[1:], with_hasher(PBKDF2SHA1Fast()))
add("pbkdf2_sha1 non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(PBKDF2SHA1Fast()))
# Not "\x00": HMAC zero-pads its key, so PBKDF2 cannot tell "" from "\x00" (Django agrees).
add("pbkdf2_sha1 empty", "", "x", with_hasher(PBKDF2SHA1Fast()))
add(
    "pbkdf2_sha1 separators",
    SEPARATORS,
    SEPARATORS + "$",
    with_hasher(PBKDF2SHA1Fast()),
)

add(
    "argon2id default",
    ASCII,
    ASCII + " ",
    with_hasher(hashers.Argon2PasswordHasher()),
    must=digest_has_plus_and_slash,
)
add("argon2id small", ASCII, ASCII.title(), with_hasher(Argon2Small()))
add("argon2id odd parameters", SEPARATORS, SEPARATORS[1:], with_hasher(Argon2Odd()))
add("argon2id non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(Argon2Small()))
add("argon2id empty", "", " ", with_hasher(Argon2Small()))
add("argon2i", ASCII, ASCII + "!", with_hasher(Argon2i()))
add("argon2i non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(Argon2i()))
add("argon2i v=16", ASCII, ASCII[:-1], lambda p: argon2_cffi(p, version=16))
add(
    "argon2i without version field",
    SEPARATORS,
    SEPARATORS.replace(":", ";"),
    lambda p: argon2_cffi(p, version=16, omit_version=True),
)
add(
    "argon2i salt with + and /",
    NON_ASCII,
    NON_ASCII_NFD,
    lambda p: argon2_cffi(
        p, salt=b"\xfb\xff\xbf" + hashers.Argon2PasswordHasher().salt().encode()
    ),
    must=lambda encoded: "+/+/" in encoded,
)

add(
    "bcrypt_sha256 default",
    ASCII,
    ASCII + " ",
    with_hasher(hashers.BCryptSHA256PasswordHasher()),
)
add(
    "bcrypt_sha256 non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(BCryptSHA256Fast())
)
add("bcrypt_sha256 empty", "", " ", with_hasher(BCryptSHA256Fast()))
add(
    "bcrypt_sha256 separators",
    SEPARATORS,
    "$" + SEPARATORS,
    with_hasher(BCryptSHA256Fast()),
)
# Only the SHA-256 pre-hash makes the last character count here.
add("bcrypt_sha256 long", LONG, LONG[:-1] + "X", with_hasher(BCryptSHA256Fast()))

add("bcrypt default", ASCII, ASCII + " ", with_hasher(hashers.BCryptPasswordHasher()))
add("bcrypt non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(BCryptFast()))
add("bcrypt empty", "", " ", with_hasher(BCryptFast()))
add("bcrypt separators", SEPARATORS, SEPARATORS.upper(), with_hasher(BCryptFast()))

add("bcrypt 2a prefix", ASCII, ASCII + " ", with_bcrypt_prefix(BCryptFast(), b"2a"))
add(
    "bcrypt_sha256 2y prefix",
    ASCII,
    ASCII + " ",
    with_bcrypt_prefix(BCryptSHA256Fast(), b"2y"),
)

add("scrypt default", ASCII, ASCII + " ", with_hasher(hashers.ScryptPasswordHasher()))
add("scrypt small", ASCII, ASCII.swapcase(), with_hasher(ScryptSmall()))
add("scrypt tiny", SEPARATORS, SEPARATORS[:-2], with_hasher(ScryptTiny()))
add("scrypt non-ascii", NON_ASCII, NON_ASCII_NFD, with_hasher(ScryptSmall()))
add("scrypt empty", "", " ", with_hasher(ScryptSmall()))

# The test cost of the default vectors is worth paying only if they really are the defaults.
by_name = {v["name"]: v["encoded"] for v in vectors}
assert by_name["pbkdf2_sha256 default"].startswith(
    f"pbkdf2_sha256${pbkdf2_default.iterations}$"
)
assert "$argon2id$v=19$m=102400,t=2,p=8$" in by_name["argon2id default"]
assert by_name["scrypt default"].startswith("scrypt$16384$")

# Strings Django, configured with the hashers above, refuses whatever the password.
unusable = hashers.make_password(None)
md5 = hashers.MD5PasswordHasher().encode(ASCII, hashers.MD5PasswordHasher().salt())
rejected = [
    {"name": "unusable password", "password": unusable[1:], "encoded": unusable},
    {"name": "md5 (hasher not installed)", "password": ASCII, "encoded": md5},
]
for case in rejected:
    if hashers.check_password(case["password"], case["encoded"]):
        sys.exit(f"{case['name']}: Django accepts {case['encoded']!r}")

OUT.parent.mkdir(parents=True, exist_ok=True)
document = {
    "generated_by": "tests/tools/make_hasher_vectors.py",
    "django_version": django.get_version(),
    "argon2_cffi_version": metadata.version("argon2-cffi"),
    "bcrypt_version": metadata.version("bcrypt"),
    "vectors": vectors,
    "rejected": rejected,
}
OUT.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
print(f"wrote {len(vectors)} vectors and {len(rejected)} rejected strings to {OUT}")
