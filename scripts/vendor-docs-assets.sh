#!/usr/bin/env bash
# Vendors the offline API documentation assets (Swagger UI and ReDoc) from the npm registry
# into crates/server/assets/docs/ and rewrites its VERSIONS file.
#   scripts/vendor-docs-assets.sh           vendor the pinned versions below
#   scripts/vendor-docs-assets.sh --check   vendor into a temp dir and compare with the
#                                           committed files (exit 1 on any difference)
# Versions: override with SWAGGER_UI_VERSION=5.x.y / REDOC_VERSION=2.5.z. ReDoc stays on 2.5.x
# (3.x is a different package layout and API). npm pack verifies each tarball's integrity
# against the registry's metadata.
# Every trailing `//# sourceMappingURL=...` / `/*# sourceMappingURL=... */` line is removed,
# and so is the one inside the string that ReDoc turns into its search worker's Blob, so that
# no browser ever asks for a .map file. ReDoc's Redocly logo, which it loads from a CDN, is
# replaced by an inline blank SVG (see below).
# After changing a version, run scripts/docs-browser-check.py against the server: a CSP that
# lists style hashes (ReDoc injects perfect-scrollbar's CSS as an inline <style>) must be updated
# when that CSS changes; Chromium's CSP console error names the new hash.
set -euo pipefail
cd "$(dirname "$0")/.."

swagger_version="${SWAGGER_UI_VERSION:-5.36.0}"
redoc_version="${REDOC_VERSION:-2.5.4}"
dest="crates/server/assets/docs"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
case "$redoc_version" in 2.5.*) ;; *) echo "REDOC_VERSION must be 2.5.x, got $redoc_version" >&2; exit 1 ;; esac
case "$swagger_version" in 5.*) ;; *) echo "SWAGGER_UI_VERSION must be 5.x, got $swagger_version" >&2; exit 1 ;; esac
command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out="$dest"
if [[ $check == 1 ]]; then out="$tmp/out"; fi
mkdir -p "$out"

# unpack NAME VERSION DIR: npm pack NAME@VERSION and extract its package/ into DIR.
unpack() {
  local name="$1" version="$2" dir="$3" tgz
  mkdir -p "$dir"
  tgz=$(cd "$tmp" && npm pack --silent "$name@$version" | tail -n 1)
  tar -xzf "$tmp/$tgz" -C "$dir"
  # The tarball must hold exactly what was asked for.
  local got
  got=$(node -p "require('$dir/package/package.json').version")
  [[ "$got" == "$version" ]] || { echo "$name: asked for $version, npm gave $got" >&2; exit 1; }
}

# strip_maps FILE: remove source-map references in place.
strip_maps() {
  local f="$1"
  # Whole lines that are only a source-map comment (JS or CSS form).
  sed -E -i '/^[[:space:]]*(\/\/[#@] sourceMappingURL=.*|\/\*[#@] sourceMappingURL=.*\*\/)[[:space:]]*$/d' "$f"
  # The same comment escaped inside a JS string (ReDoc's search worker source): `\n//# sourceMappingURL=x.map'`.
  sed -E -i "s|\\\\n//[#@] sourceMappingURL=[A-Za-z0-9._-]+\\.map(['\"])|\\1|g" "$f"
  # Whatever is left is runtime code that builds data: source maps for injected CSS in dev
  # builds; it must not be a URL to a .map file.
  if grep -Eq 'sourceMappingURL=[A-Za-z0-9._/-]+\.map' "$f"; then
    echo "a .map reference survived in $f" >&2; exit 1
  fi
}

unpack swagger-ui-dist "$swagger_version" "$tmp/swagger"
s="$tmp/swagger/package"
cp "$s/swagger-ui-bundle.js" "$out/swagger-ui-bundle.js"
cp "$s/swagger-ui.css" "$out/swagger-ui.css"
cp "$s/LICENSE" "$out/swagger-ui-LICENSE"
cp "$s/NOTICE" "$out/swagger-ui-NOTICE"
# Third-party notices of the code bundled into swagger-ui-bundle.js (its banner points here).
cp "$s/swagger-ui-bundle.js.LICENSE.txt" "$out/swagger-ui-bundle.js.LICENSE.txt"
strip_maps "$out/swagger-ui-bundle.js"
strip_maps "$out/swagger-ui.css"

unpack redoc "$redoc_version" "$tmp/redoc"
r="$tmp/redoc/package"
cp "$r/bundles/redoc.standalone.js" "$out/redoc.standalone.js"
cp "$r/LICENSE" "$out/redoc-LICENSE"
# Third-party notices of the code bundled into redoc.standalone.js and its search worker.
cp "$r/bundles/redoc.standalone.js.LICENSE.txt" "$out/redoc.standalone.js.LICENSE.txt"
worker_license=( "$r"/bundles/*.worker.js.LICENSE.txt )
[[ ${#worker_license[@]} == 1 && -f ${worker_license[0]} ]] || { echo "expected one *.worker.js.LICENSE.txt in redoc" >&2; exit 1; }
cp "${worker_license[0]}" "$out/redoc-worker.js.LICENSE.txt"
strip_maps "$out/redoc.standalone.js"
# ReDoc 2.x always renders "API docs by Redocly" under the side menu with an <img> loaded from
# https://cdn.redoc.ly/redoc/logo-mini.svg (no option turns it off). Under our CSP
# (img-src 'self' data:) that is a blocked request and a console error, and offline it is a
# request to a host that is not ours: point it at an empty, transparent inline SVG instead.
logo_url='https://cdn.redoc.ly/redoc/logo-mini.svg'
blank_svg="data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27 viewBox=%270 0 1 1%27/%3E"
n=$( { grep -oF "\"$logo_url\"" "$out/redoc.standalone.js" || true; } | wc -l)
[[ $n == 1 ]] || { echo "expected the Redocly logo URL once in redoc.standalone.js, found it $n times" >&2; exit 1; }
sed -i "s|\"$logo_url\"|\"$blank_svg\"|" "$out/redoc.standalone.js"
if grep -q 'cdn\.redoc\.ly' "$out/redoc.standalone.js"; then echo "cdn.redoc.ly still referenced" >&2; exit 1; fi

# line NAME VERSION FILE...: "NAME VERSION FILE=sha256:HEX ..."
line() {
  local name="$1" version="$2"; shift 2
  local parts=("$name" "$version") f
  for f in "$@"; do parts+=("$f=sha256:$(sha256sum "$out/$f" | cut -d' ' -f1)"); done
  echo "${parts[*]}"
}
{
  echo "# Written by scripts/vendor-docs-assets.sh (npm pack, source-map comments stripped,"
  echo "# redoc.standalone.js's CDN logo URL replaced by an inline SVG); do not edit."
  echo "# package version file=sha256:hex ..."
  line swagger-ui-dist "$swagger_version" swagger-ui-bundle.js swagger-ui.css swagger-ui-LICENSE swagger-ui-NOTICE swagger-ui-bundle.js.LICENSE.txt
  line redoc "$redoc_version" redoc.standalone.js redoc-LICENSE redoc.standalone.js.LICENSE.txt redoc-worker.js.LICENSE.txt
} > "$out/VERSIONS"

if [[ $check == 1 ]]; then
  status=0
  for f in "$out"/*; do
    b=$(basename "$f")
    if ! cmp -s "$f" "$dest/$b"; then echo "differs: $dest/$b" >&2; status=1; fi
  done
  [[ $status == 0 ]] && echo "vendored docs assets match swagger-ui-dist $swagger_version and redoc $redoc_version"
  exit $status
fi
echo "vendored swagger-ui-dist $swagger_version and redoc $redoc_version into $dest" >&2
cat "$dest/VERSIONS"
