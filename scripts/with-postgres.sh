#!/usr/bin/env bash
# Runs one command with a throwaway PostgreSQL cluster and TEST_POSTGRES_URL pointing at it,
# e.g. to run part of the suite on both backends:
#
#   scripts/with-postgres.sh .venv/bin/pytest tests/e2e/test_login.py
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$ROOT/scripts/lib/postgres.sh"

[[ $# -gt 0 ]] || die "usage: $0 COMMAND [ARG...]"
[[ -x $PY ]] || ensure_venv "$ROOT/tests/requirements.txt"
trap pg_stop_throwaway EXIT
trap 'exit 130' INT TERM
pg_start_throwaway
"$@"
