#!/usr/bin/env bash
# What a stream read a byte at a time costs siphon: loadtest/dribble.py
# sends OPTIONS (answered by siphon itself) one byte per TCP segment over
# CONNS connections for SECONDS, against each binary named, one after the
# other; siphon's CPU time (utime+stime, /proc/PID/stat) per byte sent.
#
#   bash loadtest/dribble.sh BINARY...      (SECONDS=10 CONNS=4 PAD=1500)
#
# Loopback only (127.0.9.1); each siphon is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${SECONDS_RUN:-10}" CONNS="${CONNS:-4}" PAD="${PAD:-1500}"
[ $# -gt 0 ] || { echo "usage: loadtest/dribble.sh BINARY..." >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/siphon.toml" <<CFG
[server]
shards = 1
[[listen]]
transport = "tcp"
addr = "127.0.9.1:5060"
[tcp]
message_timeout_ms = 600000
CFG
tck=$(getconf CLK_TCK)
printf '%s\t%s\t%s\t%s\t%s\n' binary bytes messages cpu_s us_per_byte
for bin in "$@"; do
    "$bin" --config "$dir/siphon.toml" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        python3 -c 'import socket; socket.create_connection(("127.0.9.1", 5060), timeout=0.2).close()' 2>/dev/null && break
        sleep 0.1
    done
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    res=$(timeout $((SECONDS_RUN + 20)) python3 loadtest/dribble.py 127.0.9.1 5060 "$SECONDS_RUN" "$CONNS" "$PAD")
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    bytes=$(sed 's/.*bytes=\([0-9]*\).*/\1/' <<<"$res")
    msgs=$(sed 's/.*messages=\([0-9]*\).*/\1/' <<<"$res")
    awk -v b="$bin" -v n="$bytes" -v m="$msgs" -v d=$((t1 - t0)) -v h="$tck" 'BEGIN {
        printf "%s\t%d\t%d\t%.2f\t%.2f\n", b, n, m, d / h, (n > 0 ? d / h * 1e6 / n : 0) }'
done
