# Shared by the scripts in scripts/ (sourced, not run). Sets ROOT, VENV and PY, and the helpers.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
SIDECAR_RELEASE_BIN="$ROOT/target/release/anki-sidecar"
# The load benchmark's Rust driver (bench/loadgen), built beside the sidecar by scripts/test.sh.
LOADGEN_RELEASE_BIN="$ROOT/target/release/anki-loadgen"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Creates .venv when missing and installs the pinned requirements into it. Reruns are cheap:
# with exact pins already installed, pip does not go to the network.
ensure_venv() {
    local requirements="$1"
    if [[ ! -x $PY ]]; then
        command -v python3 >/dev/null || die "python3 is needed (3.11 or newer)"
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "python3 is $(python3 -V 2>&1); 3.11 or newer is needed"
        log "creating $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    log "installing $(realpath --relative-to="$ROOT" "$requirements") into .venv"
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
        die "pip install -r $requirements failed"
}

# A TCP port that is free on loopback right now.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

random_hex() {
    od -An -tx1 -N"${1:-32}" /dev/urandom | tr -d ' \n'
}
