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

# fuzz_one runs one target. Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" when -fuzztime ends while a worker is
# mid-input (golang/go#75804, fixed in Go 1.27): no input failed and none
# is written to testdata/fuzz. That one outcome is run again (at most
# twice more, each for the full FUZZTIME); anything else, and above all a
# new failing input, fails the run.
fuzz_one() {
  local pkg=$1 dir=$2 f=$3 out corpus before after
  corpus="$dir/testdata/fuzz/$f"
  for attempt in 1 2 3; do
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    out=$(mktemp)
    if go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      rm -f "$out"; return 0
    fi
    after=$(ls "$corpus" 2>/dev/null | sort || true)
    if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" &&
       [ "$(grep -c -- '--- FAIL' "$out")" -eq 1 ]; then
      echo "-- $f: Go fuzz coordinator deadline race (golang/go#75804), no failing input; running it again"
      rm -f "$out"; continue
    fi
    rm -f "$out"; return 1
  done
  return 1
}

echo "== fuzz ($FUZZTIME each)"
for pkg in $(go list ./caddymodule/...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $f"
    fuzz_one "$pkg" "$dir" "$f"
  done
done
echo "== all tests passed"
