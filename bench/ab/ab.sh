#!/usr/bin/env bash
# A/B of two server binaries on one database: alternating rounds of wrk on one
# query, each after 2 s of uncounted warm-up, printing req/s, the server's CPU per
# request and its peak RSS. Alternating keeps the machine's drift out of the
# comparison. Needs wrk (apt-get install wrk).
#
#   bench/ab/ab.sh OLD_BIN NEW_BIN [a|b|c|d] [ROUNDS=3] [SECONDS=8] [DATABASE_URL]
#
# DATABASE_URL defaults to sqlite:///tmp/rig.db?mode=rwc; seed one with
#   .venv-interop/bin/python bench/buildbot/seed.py 'sqlite:////tmp/rig.db' --count 10000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2 query=${3:-b} rounds=${4:-3} secs=${5:-8} db=${6:-sqlite:///tmp/rig.db?mode=rwc}
lua=$(mktemp --suffix=.lua)
trap 'rm -f "$lua"' EXIT
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$here/$query.json"); wrk.body = f:read("*a"); f:close()
LUA
port=18097
ticks=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        "$bin" --listen "127.0.0.1:$port" --database-url "$db" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
        wrk -t1 -c8 -d2s -s "$lua" "http://127.0.0.1:$port/graphql" >/dev/null
        t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
        rps=$(wrk -t1 -c8 -d"${secs}s" -s "$lua" "http://127.0.0.1:$port/graphql" | awk '/Requests\/sec/ {print $2}')
        t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
        hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        awk -v r="$r" -v bin="$bin" -v rps="$rps" -v t0="$t0" -v t1="$t1" -v hz="$ticks" -v s="$secs" -v hwm="$hwm" \
            'BEGIN { printf "round %d  %-40s %9.1f req/s  %.3f ms CPU/req  peak RSS %.1f MiB\n", r, bin, rps, (t1-t0)*1000/hz/(rps*s), hwm/1024 }'
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
