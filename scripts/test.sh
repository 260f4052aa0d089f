#!/usr/bin/env bash
# README command 2: every check and every test, exactly as CI runs them. Works from any
# directory. Extra arguments go to pytest (e.g. `scripts/test.sh -k login`).
#
#   1. the Python venv with tests/requirements.txt
#   2. cargo fmt --check, cargo clippy -D warnings, cargo test (dev profile; the ignored tests
#      too, which need the anki package: ANKI_PYTHON is the venv's python; the cluster tests
#      on the throwaway PostgreSQL cluster started first)
#   3. ruff check and ruff format --check on every Python file of the repository
#   4. one release build of the sidecar and of the load benchmark's driver (bench/loadgen, whose
#      dependencies are the sidecar's), the client venvs of the version matrix, then pytest:
#      the end-to-end suite on SQLite and on a throwaway PostgreSQL cluster started here, plus
#      the Django tests
#
# TEST_SKIP_POSTGRES=1 runs the end-to-end suite on SQLite only; TEST_SKIP_BROWSER=1 skips the
# browser tests (Chromium), TEST_SKIP_NGINX=1 the nginx test. Every step runs even when an
# earlier one failed, so one run shows every problem; the exit status is non-zero if any failed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$ROOT/scripts/lib/postgres.sh"
cd "$ROOT"

ARTIFACTS="$ROOT/tests/artifacts"
mkdir -p "$ARTIFACTS"
RESULTS=()
FAILED=0
CARGO_FLAGS=()
# In CI the committed Cargo.lock must be complete; locally cargo may update it.
[[ -n ${CI:-} ]] && CARGO_FLAGS=(--locked)

step() {
    local name="$1"
    shift
    log "$name"
    local started=$SECONDS status=0
    "$@" || status=$?
    local took=$((SECONDS - started))
    if [[ $status -eq 0 ]]; then
        RESULTS+=("ok    ${took}s  $name")
    else
        RESULTS+=("FAIL  ${took}s  $name (exit $status)")
        FAILED=1
    fi
    return $status
}

cleanup() { pg_stop_throwaway; }
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
# Checked before the long build steps, so a missing server is reported at once.
if [[ ${TEST_SKIP_POSTGRES:-} != 1 ]] && ! pg_find_bindir >/dev/null; then
    die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin. Install Debian's
postgresql package (apt-get install postgresql), or set TEST_SKIP_POSTGRES=1 to run the
end-to-end suite on SQLite only."
fi
ensure_venv "$ROOT/tests/requirements.txt"
rm -f "$ARTIFACTS/cargo-test.log" "$ARTIFACTS/pytest.xml"

# Started before cargo test: the cluster-mode tests (sidecar/tests/cluster_http.rs) run two
# nodes on it through TEST_POSTGRES_URL, and skip themselves without it.
if [[ ${TEST_SKIP_POSTGRES:-} == 1 ]]; then
    warn "TEST_SKIP_POSTGRES=1: the end-to-end suite runs on SQLite only and the cluster tests skip"
    RESULTS+=("skip      PostgreSQL (TEST_SKIP_POSTGRES=1)")
else
    step "start PostgreSQL" pg_start_throwaway
fi

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy "${CARGO_FLAGS[@]}" --workspace --all-targets -- -D warnings
run_cargo_test() {
    # The ignored tests are the ones that open a collection with the real client (the `anki`
    # package): they run here, with the venv's python. Kept in a file as well, for the totals.
    ANKI_PYTHON="$PY" cargo test "${CARGO_FLAGS[@]}" --workspace -- --include-ignored 2>&1 |
        tee "$ARTIFACTS/cargo-test.log"
}
step "cargo test" run_cargo_test
step "ruff check" "$VENV/bin/ruff" check .
step "ruff format --check" "$VENV/bin/ruff" format --check .

PYTEST_ARGS=(tests --junitxml="$ARTIFACTS/pytest.xml" "$@")
# One cargo invocation for both: the driver's dependencies and features are ones the sidecar
# already builds, so it adds only its own crate to the build (a few seconds).
if step "cargo build --release" cargo build "${CARGO_FLAGS[@]}" --release -p anki-sidecar \
    -p anki-loadgen; then
    # Always the binaries just built, never ones from the caller's environment.
    export SIDECAR_BIN="$SIDECAR_RELEASE_BIN"
    export LOADGEN_BIN="$LOADGEN_RELEASE_BIN"
else
    warn "the release build failed: the end-to-end suite cannot run, the Django tests still do"
    PYTEST_ARGS+=(--ignore=tests/e2e)
fi

# The client-version matrix runs each pinned anki wheel in its own venv (.venv-clients/,
# tests/clients/); made once, remade only when a pin file changes.
step "client venvs" "$PY" tests/support/client_matrix.py

run_pytest() {
    local status=0
    "$PY" -m pytest "${PYTEST_ARGS[@]}" || status=$?
    if [[ $status -eq 5 ]]; then
        # pytest's "no tests collected": a suite that ran nothing has not passed.
        printf 'error: pytest collected no tests\n' >&2
    fi
    return $status
}
if [[ ${TEST_SKIP_BROWSER:-} == 1 ]]; then
    warn "TEST_SKIP_BROWSER=1: the browser tests (Chromium) are skipped"
    RESULTS+=("skip      browser tests (TEST_SKIP_BROWSER=1)")
fi
step "pytest" run_pytest
pg_stop_throwaway

printf '\n%s\n' "Summary:"
printf '  %s\n' "${RESULTS[@]}"
# One closing line over both test runners, for people and for CI's log reader.
"$PY" - "$ARTIFACTS/cargo-test.log" "$ARTIFACTS/pytest.xml" <<'PYEOF'
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
cargo_log = Path(sys.argv[1])
if cargo_log.exists():
    for match in re.finditer(
        r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", cargo_log.read_text()
    ):
        passed += int(match[1])
        failed += int(match[2])
        skipped += int(match[3])
junit = Path(sys.argv[2])
if junit.exists():
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        total, errors = int(suite.get("tests", 0)), int(suite.get("errors", 0))
        failures, skips = int(suite.get("failures", 0)), int(suite.get("skipped", 0))
        passed += total - errors - failures - skips
        failed += errors + failures
        skipped += skips
print(f"\ntotal: {passed} passed, {failed} failed, {skipped} skipped")
PYEOF
exit $FAILED
