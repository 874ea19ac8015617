#!/usr/bin/env bash
# Regenerates protocols/h323/src/asn1/generated.rs from the ITU-T ASN.1
# modules (default ../shared/asn1 beside the repository, or the directory
# given as $1): tests the fix-up passes, runs them and rasn-compiler, then
# formats the result with the repository's rustfmt settings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
asn1="${1:-$repo/../shared/asn1}"
out="$here/../src/asn1/generated.rs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confgate-target}"
cd "$here"
cargo test --release --locked -q
cargo run --release --locked -q -- "$asn1" "$out"
rustfmt --edition 2021 --config-path "$repo/rustfmt.toml" "$out"
echo "wrote $out"
