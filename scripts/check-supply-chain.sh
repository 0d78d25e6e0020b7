#!/usr/bin/env bash
# Supply chain, by cargo-deny with the committed deny.toml: licenses, bans (including ort's
# download features) and sources always; advisories whenever the RustSec database can be
# fetched. That database lives on GitHub; on a network that cannot reach it the check says so
# loudly and does not count as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version\$"; then
    cargo install cargo-deny --locked --version "$version" --quiet
fi
cargo deny --locked check licenses bans sources

set +e
advisories="$(cargo deny --locked check advisories 2>&1)"
status=$?
set -e
echo "$advisories" | tail -20
if [ "$status" -ne 0 ] && grep -q "failed to fetch advisory database" <<<"$advisories"; then
    echo "!!! cargo deny advisories NOT CHECKED: the RustSec advisory database could not be fetched (network)"
    exit 0
fi
exit "$status"
