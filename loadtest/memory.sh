#!/usr/bin/env bash
# Memory after an INVITE flood: does siphon give back what a flood took?
#
# For each allocator in ALLOCATORS, one siphon process (release build,
# mode = "stateful", SHARDS shards) on 127.0.8.1 routes every INVITE to a
# UDP socket on 127.0.8.3 that never answers, so each INVITE holds a
# response context until its timers run out (the branch timeout's 408 goes
# up, the caller ACKs it, Timer B ends the leg: 64 x T1 = 32 s by
# default; the target is never taken out of service, so every INVITE is
# forwarded). Then ROUNDS times:
#
#   1. SIPp's built-in UAC (`-sn uac`, one socket on 127.0.8.2) sends RATE
#      INVITEs a second for DUR s (-m RATE*DUR calls, bounded by timeout);
#   2. /metrics is polled until every transaction has ended
#      (siphon_transactions_total == siphon_transactions_ended_total),
#      at most DRAIN_MAX s;
#   3. SETTLE s later (the housekeeping tick and the allocator's own purge
#      get that long) the RSS is read.
#
# RSS is VmRSS of /proc/PID/status: `baseline` once the process has
# started and idled 2 s, `peak` the highest sample (every 0.25 s) over the
# round, `after` after the drain. Prints one TSV row per allocator and
# round (and writes it to loadtest/results/<stamp>-memory/memory.tsv):
#
#   allocator round baseline_mb peak_mb after_mb after/baseline contexts drain_s
#
# Allocators, none of which needs a rebuild (jemalloc and mimalloc are
# preloaded: apt-get install libjemalloc2 libmimalloc2.0):
#   glibc          the binary as built (its own #[global_allocator] if any)
#   glibc-arena2   GLIBC_TUNABLES=glibc.malloc.arena_max=2
#   glibc-trim     GLIBC_TUNABLES with a fixed 128 KiB trim and mmap threshold
#   jemalloc       LD_PRELOAD=libjemalloc.so.2
#   mimalloc       LD_PRELOAD=libmimalloc.so.2
# (a preloaded allocator only replaces malloc if the binary uses the
# system allocator).
#
#   bash loadtest/memory.sh
#   ALLOCATORS="glibc jemalloc" ROUNDS=2 RATE=3000 DUR=5 bash loadtest/memory.sh
#   SIPHON=/tmp/siphon-old ALLOCATORS=glibc bash loadtest/memory.sh
#
# Loopback only. Every process is started here and stopped by its PID;
# every loop is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLOCATORS="${ALLOCATORS:-glibc glibc-arena2 glibc-trim jemalloc mimalloc}"
ROUNDS="${ROUNDS:-3}"
RATE="${RATE:-5000}"
DUR="${DUR:-10}"
SHARDS="${SHARDS:-2}"
T1="${T1:-500}"                  # [proxy] t1_ms: contexts live 64 x T1
MAX_TX="${MAX_TX:-1000000}"      # [proxy] max_transactions (siphon's default)
DRAIN_MAX="${DRAIN_MAX:-120}"    # s to wait for the transactions to end
SETTLE="${SETTLE:-10}"           # s after the drain before RSS is read
SIPHON="${SIPHON:-target/release/siphon}"
PROXY_IP=127.0.8.1 UAC_IP=127.0.8.2 SILENT_IP=127.0.8.3
METRICS="$PROXY_IP:9068"
LIBDIR=/usr/lib/x86_64-linux-gnu

command -v sipp >/dev/null || { echo "memory.sh: sipp not found (apt-get install sip-tester)" >&2; exit 1; }
command -v curl >/dev/null || { echo "memory.sh: curl not found" >&2; exit 1; }
command -v python3 >/dev/null || { echo "memory.sh: python3 not found (the silent target)" >&2; exit 1; }
[ -x "$SIPHON" ] || cargo build --release -p siphon --bin siphon

stamp=$(date +%Y%m%d-%H%M%S)
out="loadtest/results/$stamp-memory"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# A process that has been waited for is no longer ours to stop.
forget() { local p keep=(); for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
# Sum of a counter over the shards; empty if /metrics does not answer.
metric() {
    local body
    body=$(curl -s --max-time 2 "http://$METRICS/metrics" 2>/dev/null) || return 0
    awk -v n="$1" '$1 ~ "^"n"[{ ]" || $1 == n {s += $2; f = 1} END {if (f) print s}' <<< "$body"
}

# The silent target: bound, never reads, never answers. Lives at most an
# hour; stopped by PID at the end.
python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$SILENT_IP', 5090))
time.sleep(3600)
" &
pids+=($!)

cat > "$work/siphon.toml" <<TOML
[server]
shards = $SHARDS
[[listen]]
transport = "udp"
addr = "$PROXY_IP:5060"
[proxy]
mode = "stateful"
record_route = true
t1_ms = $T1
max_transactions = $MAX_TX
[[route]]
name = "silent"
match = { user_prefix = "service" }
destination = "silent"
[destination.silent]
targets = [{ uri = "sip:$SILENT_IP:5090" }]
# Never taken out of service: every INVITE of the flood is forwarded and
# holds its context for its whole life.
probe = { mode = "off", passive_hold_ms = 0 }
[metrics]
listen = "$METRICS"
TOML
cp "$work/siphon.toml" "$out/siphon.toml"

alloc_env() { # allocator -> env assignments
    case $1 in
        glibc) ;;
        glibc-arena2) echo "GLIBC_TUNABLES=glibc.malloc.arena_max=2" ;;
        glibc-trim) echo "GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072" ;;
        jemalloc) echo "LD_PRELOAD=$LIBDIR/libjemalloc.so.2" ;;
        mimalloc) echo "LD_PRELOAD=$LIBDIR/libmimalloc.so.2" ;;
        *) echo "memory.sh: unknown allocator $1" >&2; exit 2 ;;
    esac
}

header=$'allocator\tround\tbaseline_mb\tpeak_mb\tafter_mb\tafter/baseline\tcontexts\tdrain_s'
echo "$header" | tee "$out/memory.tsv"
{
    echo "# $(date -u) $(uname -r) $(nproc) cpus; $(ldd --version | head -1)"
    echo "# siphon $(git rev-parse --short HEAD 2>/dev/null || echo '?') $SIPHON; shards=$SHARDS t1_ms=$T1 max_transactions=$MAX_TX"
    echo "# flood: sipp -sn uac, $RATE INVITE/s for $DUR s from one socket, $ROUNDS rounds; RSS read $SETTLE s after the drain"
} > "$out/report.txt"

for alloc in $ALLOCATORS; do
    envs=$(alloc_env "$alloc")
    # shellcheck disable=SC2086
    env $envs "$SIPHON" --config "$work/siphon.toml" > "$out/siphon-$alloc.log" 2>&1 &
    sp=$!
    pids+=("$sp")
    up=0
    for _ in $(seq 50); do
        [ -n "$(metric siphon_transactions_total)" ] && { up=1; break; }
        kill -0 "$sp" 2>/dev/null || break
        sleep 0.1
    done
    [ "$up" = 1 ] || { echo "memory.sh: siphon ($alloc) did not start" >&2; tail "$out/siphon-$alloc.log" >&2; exit 1; }
    sleep 2
    base=$(rss_kb "$sp")
    for round in $(seq "$ROUNDS"); do
        created0=$(metric siphon_transactions_total)
        peak=$(rss_kb "$sp")
        calls=$(( RATE * DUR ))
        limit=$(( DUR + 60 ))
        (cd "$work" && exec timeout "$limit" sipp -sn uac "$PROXY_IP:5060" -i "$UAC_IP" -p 5070 -s service \
            -r "$RATE" -m "$calls" -l "$calls" -nostdin -timeout "${limit}s" -recv_timeout 40000 \
            -buff_size 4194304 > "$work/sipp-$alloc-$round.out" 2>&1) &
        gen=$!
        pids+=("$gen")
        # The flood, then the drain: RSS sampled every 0.25 s.
        t0=$(date +%s)
        n=0
        while kill -0 "$gen" 2>/dev/null && [ "$n" -lt $(( limit * 4 + 8 )) ]; do
            r=$(rss_kb "$sp"); [ "$r" -gt "$peak" ] && peak=$r
            sleep 0.25; n=$(( n + 1 ))
        done
        wait "$gen" 2>/dev/null || true
        forget "$gen"
        drained=-
        n=0
        while [ "$n" -lt $(( DRAIN_MAX * 4 )) ]; do
            r=$(rss_kb "$sp"); [ "$r" -gt "$peak" ] && peak=$r
            if [ $(( n % 4 )) = 0 ]; then
                c=$(metric siphon_transactions_total); e=$(metric siphon_transactions_ended_total)
                if [ -n "$c" ] && [ "$c" = "$e" ]; then drained=$(( $(date +%s) - t0 )); break; fi
            fi
            sleep 0.25; n=$(( n + 1 ))
        done
        sleep "$SETTLE"
        kill -0 "$sp" 2>/dev/null || { echo "memory.sh: siphon ($alloc) died" >&2; tail "$out/siphon-$alloc.log" >&2; exit 1; }
        after=$(rss_kb "$sp")
        created1=$(metric siphon_transactions_total)
        contexts=$(( ${created1:-0} - ${created0:-0} ))
        row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$alloc" "$round" "$(mb "$base")" "$(mb "$peak")" "$(mb "$after")" \
            "$(awk -v a="$after" -v b="$base" 'BEGIN {printf "%.1f", a / b}')" "$contexts" "$drained")
        echo "$row" | tee -a "$out/memory.tsv"
    done
    kill "$sp" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$sp" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    forget "$sp"
done
cat "$out/memory.tsv" >> "$out/report.txt"
echo "memory.sh: $out/memory.tsv"
