#!/usr/bin/env bash
# Profiles the sidecar during small review syncs (one device at a time) with `perf`.
#
#   bench/profile.sh [seconds]        # default 30; needs perf (Debian: linux-perf) and strace
#
# It runs the load benchmark against the sidecar alone, attaches `perf record` (the software
# cpu-clock event, which works in VMs without hardware counters) to the sidecar for the review
# phase, then a second, shorter phase under `strace -c` for the system calls. Reports land in
# var/profile/: perf-self.txt (by symbol, own time), perf-children.txt (by symbol, including
# callees: read it for the share of each handler), perf-dso.txt (by library), strace.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_PROFILE="${1:-30}"
OUT="$ROOT/var/profile"
PY="$ROOT/.venv/bin/python"
rm -rf "$OUT"
mkdir -p "$OUT"

run_bench() {  # $1: phase seconds, $2: log file
    "$PY" "$ROOT/bench/load_bench.py" --servers ours --phases review --levels 1 --rounds 1 \
        --users 4 --duration "$1" --work-dir "$OUT/work-$RANDOM" >"$2" 2>&1 &
    BENCH_PID=$!
    local deadline=$((SECONDS + 300))
    until grep -q '^ours: .*(pid [0-9]*)' "$2" && grep -q '^round 1' "$2"; do
        if ((SECONDS > deadline)) || ! kill -0 "$BENCH_PID" 2>/dev/null; then
            cat "$2"; echo "the benchmark did not reach its review phase" >&2; exit 1
        fi
        sleep 0.5
    done
    SIDECAR_PID="$(sed -n 's/^ours: .*(pid \([0-9]*\)).*/\1/p' "$2")"
}

run_bench "$SECONDS_TO_PROFILE" "$OUT/bench-perf.log"
# The release binary has no frame pointers; DWARF unwinding through .eh_frame gives the call
# paths (about 2 MB of samples per second at this rate).
perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$SIDECAR_PID" -o "$OUT/perf.data" \
    -- sleep "$((SECONDS_TO_PROFILE - 5))" 2>"$OUT/perf-record.log"
wait "$BENCH_PID"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none \
    --percent-limit 0.5 >"$OUT/perf-self.txt" 2>/dev/null
perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none \
    --percent-limit 0.3 >"$OUT/perf-children.txt" 2>/dev/null
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none \
    >"$OUT/perf-dso.txt" 2>/dev/null

run_bench 15 "$OUT/bench-strace.log"
timeout 13 strace -f -c -p "$SIDECAR_PID" -o "$OUT/strace.txt" || true
wait "$BENCH_PID"
grep -E 'review sync x1 +ours' "$OUT/bench-perf.log" "$OUT/bench-strace.log"
echo "reports in $OUT"
