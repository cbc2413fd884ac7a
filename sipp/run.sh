#!/usr/bin/env bash
# SIPp interop: SIPp UAC -> siphon -> SIPp UAS for a bounded number of calls
# over UDP (INVITE/180/200/ACK/BYE/200 with Record-Route), then OPTIONS to
# siphon itself. Fails on any failed call, unexpected message or timeout.
#
#   bash sipp/run.sh                 # CALLS=300 RATE=100 by default
#   CALLS=2000 RATE=500 bash sipp/run.sh
#
# Needs sipp (Debian: apt-get install sip-tester). Loopback only: siphon on
# 127.0.3.1, the UAC on 127.0.3.2, the UAS on 127.0.3.3. Every process it
# starts is stopped by PID; every SIPp run is bounded by -m and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS="${CALLS:-300}"
RATE="${RATE:-100}"
SIPHON="${SIPHON:-target/debug/siphon}"
command -v sipp >/dev/null || { echo "sipp/run.sh: sipp not found (apt-get install sip-tester)"; exit 1; }
[ -x "$SIPHON" ] || cargo build --bin siphon

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

cat > "$work/siphon.toml" <<TOML
[server]
shards = 2
[[listen]]
transport = "udp"
addr = "127.0.3.1:5060"
[proxy]
record_route = true
[[route]]
name = "to-uas"
match = { user_prefix = "service" }
destination = "uas"
[destination.uas]
targets = [{ uri = "sip:127.0.3.3:5080" }]
TOML

"$SIPHON" --config "$work/siphon.toml" 2> "$work/siphon.log" &
siphon_pid=$!
pids+=("$siphon_pid")

# Wait (bounded) until siphon answers OPTIONS.
ready=0
for _ in $(seq 1 50); do
    if timeout 5 sipp -sf sipp/options.xml 127.0.3.1:5060 -i 127.0.3.4 -m 1 -nostdin -timeout 2s -recv_timeout 1000 \
        > /dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "sipp/run.sh: siphon did not come up"; cat "$work/siphon.log"; exit 1; }

limit=$(( CALLS / RATE + 60 ))
timeout "$limit" sipp -sf sipp/uas.xml -i 127.0.3.3 -p 5080 -m "$CALLS" -nostdin -timeout "${limit}s" \
    -trace_stat -stf "$work/uas.csv" -trace_err -error_file "$work/uas.err" > "$work/uas.out" 2>&1 &
uas_pid=$!
pids+=("$uas_pid")

set +e
timeout "$limit" sipp -sf sipp/uac.xml 127.0.3.1:5060 -i 127.0.3.2 -p 5070 -s service -m "$CALLS" -r "$RATE" -l "$(( RATE * 3 ))" \
    -nostdin -timeout "${limit}s" -recv_timeout 10000 -trace_stat -stf "$work/uac.csv" -trace_err -error_file "$work/uac.err" \
    > "$work/uac.out" 2>&1
uac_rc=$?
wait "$uas_pid"
uas_rc=$?
timeout 60 sipp -sf sipp/options.xml 127.0.3.1:5060 -i 127.0.3.4 -m 200 -r 200 -nostdin -timeout 30s -recv_timeout 5000 \
    > "$work/options.out" 2>&1
opt_rc=$?
set -e

kill -TERM "$siphon_pid"
wait "$siphon_pid" || true

# Successful/failed calls from the last line of SIPp's stat CSV.
stat() { # file column
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print $c}' "$1"
}
ok=$(stat "$work/uac.csv" SuccessfulCall\(C\))
failed=$(stat "$work/uac.csv" FailedCall\(C\))
retrans=$(stat "$work/uac.csv" Retransmissions\(C\))
unexpected=$(stat "$work/uac.csv" FailedUnexpectedMessage\(C\))
echo "sipp: uac rc=$uac_rc uas rc=$uas_rc options rc=$opt_rc; calls ok=$ok failed=$failed unexpected=$unexpected retransmissions=$retrans"
tail -n 1 "$work/siphon.log"
if [ "$uac_rc" != 0 ] || [ "$uas_rc" != 0 ] || [ "$opt_rc" != 0 ] || [ "$ok" != "$CALLS" ]; then
    echo "sipp/run.sh: FAILED"
    for f in uac.err uas.err; do [ -s "$work/$f" ] && { echo "--- $f"; head -n 40 "$work/$f"; }; done
    tail -n 20 "$work/uac.out" "$work/uas.out" "$work/options.out" 2>/dev/null
    exit 1
fi
echo "sipp/run.sh: passed"
rm -rf "$work"
