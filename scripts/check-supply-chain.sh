#!/usr/bin/env bash
# Supply chain, by cargo-deny with the committed deny.toml: licenses, bans (including ort's
# download features), sources and advisories, all failing the run on a finding.
#
# Advisories need the RustSec database. It is fetched from its upstream repository when the
# network allows; otherwise the dated snapshot in RUSTSEC_BUNDLE (a git bundle; default
# ../shared/rustsec-advisory-db.bundle beside the checkout) is cloned into .tools/advisory-dbs/
# and cargo-deny runs offline against it. The output says which database, and of which date,
# was checked. With neither, the check fails: an unchecked supply chain is not a pass.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version\$"; then
    cargo install cargo-deny --locked --version "$version" --quiet
fi
cargo deny --locked check licenses bans sources

set +e
fetched="$(cargo deny --locked check advisories 2>&1)"
status=$?
set -e
if ! grep -q "failed to fetch advisory database" <<<"$fetched"; then
    echo "$fetched" | tail -20
    echo "advisories checked against the RustSec database fetched from its upstream repository"
    exit "$status"
fi

# The folder cargo-deny wanted to clone into names the database (a hash of its URL).
wanted="$(grep -o '/[^" ]*advisory-dbs/advisory-db-[0-9a-f]*' <<<"$fetched" | head -1)"
[ -n "$wanted" ] || { echo "$fetched" | tail -5; echo "check-supply-chain: cannot tell which database cargo-deny wants" >&2; exit 1; }
bundle="${RUSTSEC_BUNDLE:-}"
if [ -z "$bundle" ]; then
    for candidate in "$root/../shared/rustsec-advisory-db.bundle" /work/shared/rustsec-advisory-db.bundle; do
        [ -f "$candidate" ] && { bundle="$candidate"; break; }
    done
fi
if [ ! -f "${bundle:-/nonexistent}" ]; then
    echo "$fetched" | tail -3
    echo "check-supply-chain: advisories NOT CHECKED: the RustSec database cannot be fetched and no snapshot is given (RUSTSEC_BUNDLE)" >&2
    exit 1
fi
db_root="$root/.tools/advisory-dbs"
db="$db_root/$(basename "$wanted")"
rm -rf "$db"
mkdir -p "$db_root"
git -c init.defaultBranch=main clone --quiet "$bundle" "$db"
# Same policy, another place for the database.
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$db_root\"|" deny.toml > "$config"
echo "advisories: RustSec snapshot $(git -C "$db" log -1 --format='%h of %cs: %s') (from $bundle)"
cargo deny --locked --offline --config "$config" check advisories
