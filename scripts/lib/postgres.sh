# A throwaway PostgreSQL cluster on loopback, for the test suite (sourced after common.sh).
#
#   pg_start_throwaway   starts it and exports TEST_POSTGRES_URL (superuser, database postgres)
#   pg_stop_throwaway    stops it and deletes its folder; safe to call twice
#
# The cluster lives in a temporary folder, listens on 127.0.0.1 only, on a free port, with a
# random password, and durability switched off (it is thrown away anyway).

PG_DIR=""
PG_BINDIR=""
PG_AS=()

pg_find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

pg_start_throwaway() {
    PG_BINDIR="$(pg_find_bindir)" || die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin.
Install Debian's postgresql package (apt-get install postgresql), or set TEST_SKIP_POSTGRES=1
to skip the PostgreSQL half of the end-to-end suite explicitly."
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/anki-sidecar-pg.XXXXXX")"
    # initdb and postgres refuse to run as root.
    if [[ $(id -u) == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root, but there is no postgres user to run PostgreSQL as"
        chown postgres: "$PG_DIR"
        PG_AS=(runuser -u postgres --)
    fi
    local password
    password="$(random_hex 16)"
    (umask 077 && printf '%s\n' "$password" >"$PG_DIR/pwfile")
    [[ ${#PG_AS[@]} -eq 0 ]] || chown postgres: "$PG_DIR/pwfile"
    if ! "${PG_AS[@]}" "$PG_BINDIR/initdb" -D "$PG_DIR/data" -U postgres --auth=scram-sha-256 \
        --pwfile="$PG_DIR/pwfile" --encoding=UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1; then
        cat "$PG_DIR/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$PG_DIR/pwfile"
    local attempt port
    for attempt in 1 2 3; do
        port="$(free_port)"
        if "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            export TEST_POSTGRES_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
            log "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)"
            return 0
        fi
        # Most likely the port was taken between choosing and binding it; try another.
        warn "PostgreSQL did not start on port $port (attempt $attempt)"
    done
    cat "$PG_DIR/server.log" >&2
    die "PostgreSQL did not start"
}

pg_stop_throwaway() {
    if [[ -n $PG_DIR && -d $PG_DIR ]]; then
        if [[ -f $PG_DIR/data/postmaster.pid ]]; then
            "${PG_AS[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 ||
                warn "could not stop PostgreSQL in $PG_DIR"
        fi
        rm -rf "$PG_DIR"
    fi
    PG_DIR=""
}
