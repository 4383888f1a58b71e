#!/usr/bin/env bash
# Run every test of caddy-dane: unit, conformance (OpenSSL's DANE vectors in
# ../shared), fuzz seed corpora, and the integration suite with real NSD,
# Unbound, OpenSSL and a Caddy built from ./cmd/caddy, all on loopback.
#
# Needs the Debian packages listed in DEB_PACKAGES; as root it installs the
# missing ones. FUZZTIME (default 10s) is how long each fuzz target runs.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES="unbound nsd ldnsutils bind9-dnsutils gnutls-bin dns-root-data openssl curl jq dnsmasq-base bind9"
missing=()
for p in $DEB_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
fi

export DANE_INTEGRATION=1
FUZZTIME=${FUZZTIME:-10s}

echo "== go vet"
go vet ./...

echo "== go test (unit, conformance, integration)"
go test -count=1 -timeout 20m ./...

echo "== go test -race (engine and transport)"
go test -count=1 -race -timeout 10m ./caddymodule/...

echo "== fuzz ($FUZZTIME each)"
for pkg in $(go list ./caddymodule/...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $f"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "== all tests passed"
