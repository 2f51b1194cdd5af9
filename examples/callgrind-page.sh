#!/usr/bin/env bash
# Instructions the server spends on one 100-buildset page with every nested field,
# counted by callgrind: repeatable on a noisy machine, unlike req/s. Compare two
# binaries on the same database:
#
#   examples/callgrind-page.sh target/release/buildsets-graphql buildsets.db 20
#
# DB is a SQLite file with buildsets in it (e.g. seeded by `bench/buildbot/seed.py 'sqlite:////tmp/rig.db' --count 10000`); it is
# copied first, so it is not changed. Prints instructions per page request: the run
# with N requests minus the run with none (start-up and shutdown), over N+1 requests
# (one warm-up).
set -euo pipefail
bin=$1 db=$2 n=${3:-20}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
page='{"query":"query($f: Int) { buildsets(first: $f) { edges { cursor } nodes { bsid reason submittedAt complete results externalIdstring sourcestampIds sourcestamps { ssid branch revision repository codebase project patch { level body } } properties { name value source } buildrequests { buildrequestid priority complete builder { name } } } } }","variables":{"f":100}}'
total() { # requests -> instructions of the whole server run
    local k=$1 port=$((20000 + RANDOM % 10000))
    cp "$db" "$work/db"
    valgrind --tool=callgrind --callgrind-out-file="$work/out" "$bin" \
        --database-url "sqlite://$work/db?mode=rwc" --listen "127.0.0.1:$port" >"$work/log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 240); do curl -sf -o /dev/null "localhost:$port/healthz" && break; sleep 0.5; done
    for _ in $(seq 0 "$k"); do
        [ "$k" -eq 0 ] && break
        curl -s -o /dev/null "localhost:$port/graphql" -H 'content-type: application/json' -d "$page"
    done
    kill -INT "$pid"; wait "$pid" || true
    grep -E '^summary:' "$work/out" | awk '{print $2}'
}
idle=$(total 0)
busy=$(total "$n")
echo "$(( (busy - idle) / (n + 1) )) instructions per page request ($bin)"
