#!/usr/bin/env bash
# Run cargo-fuzz targets for FUZZ_SECONDS each (default 60), seeded from the
# RFC 4475 / RFC 5118 corpora and the benchmark messages.
#   bash fuzz/run.sh [TARGET...]      (default: parse uri edit proxy stateful)
# Crashes land in fuzz/artifacts/TARGET/; keep each as a regression test in
# tests/fuzz_regressions.rs before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1 CARGO_CACHE_RUSTC_INFO=0
secs="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse uri edit proxy stateful)

seed() {
    local t=$1 dir=corpus/$1
    mkdir -p "$dir"
    case $t in
        parse|proxy)
            cp ../tests/corpus/rfc4475/*.dat ../tests/corpus/rfc5118/wire/*.sip ../benches/messages/*.sip "$dir"/ ;;
        edit)
            local f n=0
            for f in ../tests/corpus/rfc4475/*.dat ../tests/corpus/rfc5118/wire/*.sip ../benches/messages/*.sip; do
                n=$((n + 1))
                { printf "\\$(printf '%03o' $(( (n * 37) % 256 )))"; cat "$f"; } > "$dir/$(basename "$f")"
            done ;;
        stateful)
            cp ../tests/fuzz_regressions/stateful/* "$dir"/ ;;
        uri)
            local i=0 u
            while IFS= read -r u; do
                i=$((i + 1)); printf '%s' "$u" > "$dir/seed$i"
            done < seeds/uris.txt ;;
    esac
}

for t in "${targets[@]}"; do
    seed "$t"
    echo "fuzz: $t for ${secs}s"
    log=$(mktemp)
    if ! cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $t FAILED"; ls -l "artifacts/$t" 2>/dev/null || true
        exit 1
    fi
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 5 "$log"
    rm -f "$log"
done
