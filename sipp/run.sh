#!/usr/bin/env bash
# SIPp interop: SIPp UAC -> siphon -> SIPp UAS for a bounded number of calls
# (INVITE/180/200/ACK/BYE/200 with Record-Route), over UDP and then over TCP
# on both legs, then OPTIONS to siphon itself. Fails on any failed call,
# unexpected message or timeout.
#
#   bash sipp/run.sh                 # CALLS=300 RATE=100 TRANSPORTS="udp tcp"
#   CALLS=2000 RATE=500 TRANSPORTS=tcp bash sipp/run.sh
#
# Needs sipp (Debian: apt-get install sip-tester). Loopback only: siphon on
# 127.0.3.1:5060 (UDP and TCP), the UAC on 127.0.3.2, the UAS on
# 127.0.3.3:5080 (UDP) / :5081 (TCP). Every process it starts is stopped by
# PID; every SIPp run is bounded by -m and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS="${CALLS:-300}"
RATE="${RATE:-100}"
TRANSPORTS="${TRANSPORTS:-udp tcp}"
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
[[listen]]
transport = "tcp"
addr = "127.0.3.1:5060"
[proxy]
record_route = true
[[route]]
name = "to-uas-tcp"
match = { user_prefix = "tcp-" }
destination = "uas-tcp"
[[route]]
name = "to-uas"
match = { user_prefix = "service" }
destination = "uas"
[destination.uas]
targets = [{ uri = "sip:127.0.3.3:5080" }]
[destination.uas-tcp]
targets = [{ uri = "sip:127.0.3.3:5081;transport=tcp" }]
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
# Successful/failed calls from the last line of SIPp's stat CSV.
stat() { # file column
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print $c}' "$1"
}
failed_any=0
for t in $TRANSPORTS; do
    case "$t" in
        udp) flag=u1; uas_port=5080; service=service ;;
        tcp) flag=t1; uas_port=5081; service=tcp-service ;;
        *) echo "sipp/run.sh: unknown transport $t"; exit 2 ;;
    esac
    timeout "$limit" sipp -sf sipp/uas.xml -t "$flag" -i 127.0.3.3 -p "$uas_port" -m "$CALLS" -nostdin -timeout "${limit}s" \
        -trace_stat -stf "$work/uas-$t.csv" -trace_err -error_file "$work/uas-$t.err" > "$work/uas-$t.out" 2>&1 &
    uas_pid=$!
    pids+=("$uas_pid")
    sleep 0.3
    set +e
    timeout "$limit" sipp -sf sipp/uac.xml 127.0.3.1:5060 -t "$flag" -i 127.0.3.2 -p 5070 -s "$service" -m "$CALLS" -r "$RATE" -l "$(( RATE * 3 ))" \
        -nostdin -timeout "${limit}s" -recv_timeout 10000 -trace_stat -stf "$work/uac-$t.csv" -trace_err -error_file "$work/uac-$t.err" \
        > "$work/uac-$t.out" 2>&1
    uac_rc=$?
    wait "$uas_pid"
    uas_rc=$?
    set -e
    ok=$(stat "$work/uac-$t.csv" SuccessfulCall\(C\))
    failed=$(stat "$work/uac-$t.csv" FailedCall\(C\))
    retrans=$(stat "$work/uac-$t.csv" Retransmissions\(C\))
    unexpected=$(stat "$work/uac-$t.csv" FailedUnexpectedMessage\(C\))
    echo "sipp $t: uac rc=$uac_rc uas rc=$uas_rc; calls ok=$ok failed=$failed unexpected=$unexpected retransmissions=$retrans"
    if [ "$uac_rc" != 0 ] || [ "$uas_rc" != 0 ] || [ "$ok" != "$CALLS" ]; then
        failed_any=1
        for f in "uac-$t.err" "uas-$t.err"; do [ -s "$work/$f" ] && { echo "--- $f"; head -n 40 "$work/$f"; }; done
        tail -n 20 "$work/uac-$t.out" "$work/uas-$t.out" 2>/dev/null
    fi
done

set +e
timeout 60 sipp -sf sipp/options.xml 127.0.3.1:5060 -i 127.0.3.4 -m 200 -r 200 -nostdin -timeout 30s -recv_timeout 5000 \
    > "$work/options.out" 2>&1
opt_rc=$?
set -e
echo "sipp options: rc=$opt_rc"

kill -TERM "$siphon_pid"
wait "$siphon_pid" || true
tail -n 1 "$work/siphon.log"
if [ "$failed_any" != 0 ] || [ "$opt_rc" != 0 ]; then
    echo "sipp/run.sh: FAILED"
    tail -n 20 "$work/options.out"
    exit 1
fi
echo "sipp/run.sh: passed"
rm -rf "$work"
