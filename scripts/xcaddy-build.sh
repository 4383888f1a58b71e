#!/usr/bin/env bash
# Build Caddy with xcaddy exactly as pinned in xcaddy.json (xcaddy reads no
# config file of its own). Usage: scripts/xcaddy-build.sh [output]  (default ./caddy)
#
# The module gets an explicit pseudo-version: the Go module proxy answers 403
# (not 404) for an unpublished module path, and Go falls back to a local
# replacement only on 404/410.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-./caddy}
command -v jq >/dev/null || { echo "xcaddy-build: needs jq (apt-get install jq)" >&2; exit 2; }
caddy_version=$(jq -r .caddy_version xcaddy.json)
xcaddy_version=$(jq -r .xcaddy_version xcaddy.json)
args=()
while IFS=$'\t' read -r module version replace; do
  spec=$module
  [ -n "$version" ] && spec="$spec@$version"
  if [ -n "$replace" ]; then
    case "$replace" in /*) ;; *) replace="$PWD/$replace" ;; esac
    spec="$spec=$replace"
  fi
  args+=(--with "$spec")
done < <(jq -r '.plugins[] | [.module, (.version // ""), (.replace // "")] | @tsv' xcaddy.json)
XCADDY=${XCADDY:-$(command -v xcaddy || true)}
if [ -z "$XCADDY" ]; then
  GOBIN=$(go env GOPATH)/bin go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version"
  XCADDY=$(go env GOPATH)/bin/xcaddy
fi
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
echo "xcaddy build $caddy_version ${args[*]} --output $out"
exec "$XCADDY" build "$caddy_version" "${args[@]}" --output "$out"
