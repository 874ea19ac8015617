#!/usr/bin/env bash
# Runs every cargo-fuzz target in this crate for FUZZ_SECONDS seconds each,
# on the stable toolchain. Exits non-zero if any target crashes (or fails to
# build). See README.md for what each target covers.
#
#   FUZZ_SECONDS    seconds per target (default 30)
#   FUZZ_SANITIZER  none (default: works on plain stable) or address
#                   (ASan: needs RUSTC_BOOTSTRAP=1, which this script sets)
#   CARGO_TARGET_DIR  honoured as usual (default: fuzz/target)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz not found; installing it" >&2
    cargo install cargo-fuzz --locked
fi

if [[ "$FUZZ_SANITIZER" != none ]]; then
    # cargo-fuzz passes -Zsanitizer=... to rustc; stable rustc accepts -Z
    # flags only with RUSTC_BOOTSTRAP=1. Cargo caches rustc's target-info
    # probe without looking at RUSTC_BOOTSTRAP, so a probe that once failed
    # without it would be replayed; CARGO_CACHE_RUSTC_INFO=0 avoids that.
    export RUSTC_BOOTSTRAP=1
    export CARGO_CACHE_RUSTC_INFO=0
fi

log_dir="artifacts/logs"
mkdir -p "$log_dir"

mapfile -t targets < <(cargo fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "run.sh: no fuzz targets found" >&2
    exit 1
fi

failed=()
summary=()
for target in "${targets[@]}"; do
    log="$log_dir/$target.log"
    echo "=== $target: ${FUZZ_SECONDS}s, sanitizer=$FUZZ_SANITIZER (log: fuzz/$log)"
    status=0
    cargo fuzz run "$target" -s "$FUZZ_SANITIZER" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$log" 2>&1 || status=$?

    # libFuzzer's last status line, e.g. "#123 DONE cov: 1 ft: 2 corp: ...".
    last="$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)"
    execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")"
    cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
    ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"

    if [[ $status -eq 0 ]]; then
        result="ok"
    else
        failed+=("$target")
        if grep -qE '^==[0-9]+== ERROR: libFuzzer|^SUMMARY: libFuzzer|panicked at|Test unit written to' "$log"; then
            result="CRASH (exit $status)"
            # Show the panic and the failing input.
            grep -E -A3 'panicked at' "$log" | head -n 20 || true
            grep -E 'Test unit written to|^Base64:' "$log" || true
            artifact="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)"
            if [[ -n "$artifact" && -f "$artifact" ]]; then
                echo "input (hex): $(od -An -v -tx1 "$artifact" | tr -d ' \n')"
            fi
        else
            result="FAILED (exit $status; no crash report: build or setup error)"
            tail -n 30 "$log"
        fi
    fi
    line="$target: execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} -> $result"
    echo "$line"
    summary+=("$line")
done

echo
echo "=== summary (${FUZZ_SECONDS}s per target, sanitizer=$FUZZ_SANITIZER)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
