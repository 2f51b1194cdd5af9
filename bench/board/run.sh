#!/usr/bin/env bash
# Starts the server on DATABASE_URL at a free port of 127.0.0.1, runs first_screen.py
# against it with the remaining arguments, then stops that server (by its PID).
#   bench/board/run.sh 'sqlite:///tmp/board10k/state.sqlite' --label sqlite --markdown
# BIN=path/to/buildsets-graphql (default target/release/buildsets-graphql),
# PY=python with Playwright (default .venv-blackbox/bin/python); the server's log
# goes to ${LOG:-/tmp/first-screen-server.log} (RUST_LOG is passed through).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
url="${1:?usage: run.sh DATABASE_URL [first_screen.py options]}"
shift
bin="${BIN:-$root/target/release/buildsets-graphql}"
py="${PY:-$root/.venv-blackbox/bin/python}"
log="${LOG:-/tmp/first-screen-server.log}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" --database-url "$url" --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "the server exited; its log:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
echo "server $bin (pid $pid) on 127.0.0.1:$port, $url" >&2
"$py" "$root/bench/board/first_screen.py" "http://127.0.0.1:$port" "$@"
