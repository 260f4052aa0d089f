#!/usr/bin/env bash
# README command 1: the whole product on this machine, on the embedded default (SQLite), no
# Docker. Works from any directory. Stop it with Ctrl-C.
#
#   - creates .venv if missing and installs django_app/requirements.txt
#   - runs Django's migrations, builds the sidecar (release)
#   - generates a Django secret key and an internal API token once, kept in var/
#   - starts the sidecar (Anki's sync endpoint, :8080) and Django's runserver (127.0.0.1:8000)
#     on the same DATABASE_URL, and waits until the sidecar is healthy
#
# Every variable of .env.example can be set in the environment to override a default.
# RUN_SIDECAR_BIN=<path> runs that prebuilt sidecar binary instead of building one (the tests
# use it to reuse the suite's release build).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
ensure_venv "$ROOT/django_app/requirements.txt"

mkdir -p "$ROOT/var"
# A secret given in the environment wins; otherwise one is generated on the first run and
# reused, so that sessions and the sidecar's token survive a restart.
persisted_secret() {
    local file="$ROOT/var/$1"
    if [[ ! -s $file ]]; then
        (umask 077 && random_hex 32 >"$file")
    fi
    cat "$file"
}
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(persisted_secret django-secret-key)}"
export SIDECAR_INTERNAL_TOKEN="${SIDECAR_INTERNAL_TOKEN:-$(persisted_secret sidecar-internal-token)}"

# One database for both processes: the sidecar reads Django's auth_user from it.
export DATABASE_URL="${DATABASE_URL:-sqlite:///$ROOT/django_app/db.sqlite3}"
if [[ -n ${SIDECAR_DATABASE_URL:-} && $SIDECAR_DATABASE_URL != "$DATABASE_URL" ]]; then
    die "SIDECAR_DATABASE_URL differs from DATABASE_URL; both processes must use one database"
fi
export SIDECAR_DATA_DIR="${SIDECAR_DATA_DIR:-$ROOT/data}"
export SIDECAR_PUBLIC_ADDR="${SIDECAR_PUBLIC_ADDR:-0.0.0.0:8080}"
export SIDECAR_INTERNAL_ADDR="${SIDECAR_INTERNAL_ADDR:-127.0.0.1:8081}"
export SIDECAR_INTERNAL_URL="${SIDECAR_INTERNAL_URL:-http://$SIDECAR_INTERNAL_ADDR}"
DJANGO_ADDR="${DJANGO_ADDR:-127.0.0.1:8000}"

public_port="${SIDECAR_PUBLIC_ADDR##*:}"
public_host="${SIDECAR_PUBLIC_ADDR%:*}"
base_path="${SIDECAR_BASE_PATH:-}"
base_path="${base_path#/}"
base_path="${base_path%/}"
if [[ $public_host == 0.0.0.0 || $public_host == "[::]" ]]; then
    # Listening on every interface: show the address other devices on the network can use.
    public_host="$(hostname -I 2>/dev/null | awk '{print $1}')"
    public_host="${public_host:-127.0.0.1}"
fi
sync_url="http://$public_host:$public_port/${base_path:+$base_path/}"
export ANKI_SYNC_PUBLIC_URL="${ANKI_SYNC_PUBLIC_URL:-$sync_url}"

# A listener address already taken (most often by another run.sh) is reported before anything
# is started, with the variable that chooses another one.
address_free() {
    "$PY" - "$1" <<'PYEOF'
import socket
import sys

host, _, port = sys.argv[1].rpartition(":")
host = host.strip("[]") or "0.0.0.0"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family) as sock:
    try:
        sock.bind((host, int(port)))
    except OSError as error:
        print(error.strerror or error, file=sys.stderr)
        sys.exit(1)
PYEOF
}
check_address() {
    local variable="$1" address="$2" reason
    if ! reason="$(address_free "$address" 2>&1)"; then
        die "$address cannot be used ($reason): another program, perhaps another scripts/run.sh,
already listens there. Stop it, or choose another address, e.g.
    $variable=${address%:*}:$((${address##*:} + 10)) scripts/run.sh"
    fi
}
check_address SIDECAR_PUBLIC_ADDR "$SIDECAR_PUBLIC_ADDR"
check_address SIDECAR_INTERNAL_ADDR "$SIDECAR_INTERNAL_ADDR"
check_address DJANGO_ADDR "$DJANGO_ADDR"

log "migrating the database"
"$PY" django_app/manage.py migrate --noinput

if [[ -n ${RUN_SIDECAR_BIN:-} ]]; then
    [[ -x $RUN_SIDECAR_BIN ]] || die "RUN_SIDECAR_BIN=$RUN_SIDECAR_BIN is not an executable"
    SIDECAR_RELEASE_BIN="$RUN_SIDECAR_BIN"
    log "using the prebuilt sidecar $SIDECAR_RELEASE_BIN (RUN_SIDECAR_BIN)"
else
    log "building the sidecar (release)"
    cargo build --release -p anki-sidecar
fi

PIDS=()
stop_all() {
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        # Each runs in its own process group, so runserver's autoreload child goes too.
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    rm -f "${sidecar_log:-}"
    log "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# The sidecar's output goes to the terminal and to a log file, where run.sh looks for its
# "listening" line: a /health answer alone could come from another instance on the same port.
# That line is logged at info, whatever RUST_LOG says otherwise.
sidecar_log="$(mktemp "${TMPDIR:-/tmp}/anki-sidecar-start.XXXXXX")"
export RUST_LOG="${RUST_LOG:-info},anki_sidecar::server=info"
log "starting the sidecar on $SIDECAR_PUBLIC_ADDR (internal API on $SIDECAR_INTERNAL_ADDR)"
setsid "$SIDECAR_RELEASE_BIN" serve > >(tee -a "$sidecar_log") 2>&1 &
PIDS+=($!)
log "starting Django on http://$DJANGO_ADDR/"
setsid "$PY" django_app/manage.py runserver "$DJANGO_ADDR" &
PIDS+=($!)

sidecar_failed() {
    if grep -q "Address already in use" "$sidecar_log"; then
        die "the sidecar could not listen: an address is already in use (see its log above).
Choose free ones with SIDECAR_PUBLIC_ADDR and SIDECAR_INTERNAL_ADDR."
    fi
    die "the sidecar exited during startup (see its log above)"
}
health_url="http://127.0.0.1:$public_port/${base_path:+$base_path/}health"
healthy=0
for _ in $(seq 300); do
    kill -0 "${PIDS[0]}" 2>/dev/null || sidecar_failed
    if grep -q "listening public=" "$sidecar_log" &&
        "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$health_url" 2>/dev/null; then
        healthy=1
        break
    fi
    sleep 0.2
done
[[ $healthy == 1 ]] || die "the sidecar did not become healthy at $health_url"
# Django's development server exits at once when its address is taken.
sleep 1
kill -0 "${PIDS[1]}" 2>/dev/null ||
    die "Django exited during startup (see its log above); DJANGO_ADDR chooses its address"

cat <<MSG

  Anki sync server is running.

  In Anki (Desktop: Preferences > Syncing; AnkiDroid and AnkiMobile: their sync settings),
  set the self-hosted sync server to:

      $ANKI_SYNC_PUBLIC_URL

  (keep the trailing slash), then log in with a user of this site. To create one:

      $VENV/bin/python $ROOT/django_app/manage.py createsuperuser

  or add users in the admin at http://$DJANGO_ADDR/admin/ .

  Press Ctrl-C to stop both.

MSG

# Whichever stops first (a crash, or Ctrl-C) takes the other down with it.
status=0
wait -n "${PIDS[@]}" || status=$?
exit "$status"
