"""Django settings, read from the environment (every variable is listed in `.env.example`).

The defaults are for development on one machine: SQLite beside this file, the sidecar on
loopback, DEBUG on. Production sets at least DJANGO_SECRET_KEY, DJANGO_DEBUG=0,
DJANGO_ALLOWED_HOSTS and DATABASE_URL.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

# DEVELOPMENT ONLY: this key is public (it is in the repository). scripts/run.sh generates a
# random one into var/; any deployment must set DJANGO_SECRET_KEY.
DEV_SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    # Sessions and password-reset tokens signed with a public key could be forged.
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # The web app (docs/web-app.md).
    "accounts",
    "decks",
    "ankisync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# The sidecar reads auth_user from this same database, so both processes must be given the
# same URL (scripts/run.sh exports one DATABASE_URL to both).
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The sidecar writes its own tables in the same SQLite file; wait for its write lock
    # instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )

# Django's default list, plus the plain BCrypt hasher so that imported legacy bcrypt hashes
# still verify. Every hasher here must be one the sidecar can verify too (pbkdf2_sha256,
# pbkdf2_sha1, argon2, bcrypt_sha256, bcrypt, scrypt): a user whose stored hash the sidecar
# cannot read could log in to the website but not sync.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded note media (images, audio). Private: served only to their owner through a view,
# never under a public URL.
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media")

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "decks:list"
LOGOUT_REDIRECT_URL = "home"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The sidecar's internal API (imports, admin); Django is its only client.
SIDECAR_INTERNAL_URL = os.environ.get("SIDECAR_INTERNAL_URL", "http://127.0.0.1:8081")


def _internal_token() -> str:
    """The variable wins; otherwise the token file that scripts/run.sh generates in the
    checkout's var/, so that `manage.py sync_stats alice` works from a shell beside run.sh."""
    token = os.environ.get("SIDECAR_INTERNAL_TOKEN")
    if token is not None:
        return token
    path = Path(
        os.environ.get("SIDECAR_INTERNAL_TOKEN_FILE")
        or BASE_DIR.parent / "var" / "sidecar-internal-token"
    )
    try:
        return path.read_text().strip()
    except OSError:
        return ""


SIDECAR_INTERNAL_TOKEN = _internal_token()

# What users type into Anki; shown on the website. Anki needs the trailing slash.
ANKI_SYNC_PUBLIC_URL = os.environ.get("ANKI_SYNC_PUBLIC_URL", "http://127.0.0.1:8080/")
# Timeouts of calls to the internal API: admin calls, and imports (a deck with media).
SIDECAR_TIMEOUT_SECONDS = float(os.environ.get("SIDECAR_TIMEOUT_SECONDS") or 10)
SIDECAR_IMPORT_TIMEOUT_SECONDS = float(os.environ.get("SIDECAR_IMPORT_TIMEOUT_SECONDS") or 120)
