#!/usr/bin/env bash
# Makes sure the prebuilt DuckDB 1.5.6 library is on this machine and prints the folder
# that holds it. The npm registry ships it inside @duckdb/node-bindings-linux-x64; the
# duckdb crate (=1.10506.0, no `bundled` feature) links against it via DUCKDB_LIB_DIR.
set -euo pipefail
version="1.5.6-r.1"
dir="${SIGHTLINE_DUCKDB_DIR:-$HOME/.cache/sightline/libduckdb-$version}"
if [[ ! -f "$dir/libduckdb.so" ]]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch libduckdb.so (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-x64@$version" >/dev/null)
  tar -xzf "$tmp"/duckdb-node-bindings-linux-x64-*.tgz -C "$tmp"
  mkdir -p "$dir"
  cp "$tmp/package/libduckdb.so" "$tmp/package/LICENSE" "$dir/"
  echo "fetched libduckdb.so $version into $dir" >&2
fi
echo "$dir"
