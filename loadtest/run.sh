#!/usr/bin/env bash
# The same SIPp call load through siphon and (when installed) Kamailio, at
# fixed rates, one run after the other on this machine. Per run: offered
# and achieved calls per second, failed calls, retransmissions, the
# kernel's UDP RcvbufErrors during the run, and the proxy's CPU per call
# (utime+stime of all its threads from /proc/PID/stat, over the run and a
# 2 s tail). Writes loadtest/results/<stamp>/results.tsv and prints it.
#
#   bash loadtest/run.sh                     # RATES="1000 3000" DUR=20
#   RATES="3000" DUR=10 PROXIES=siphon SHARDS=1 bash loadtest/run.sh
#
# Call: INVITE/180/200/ACK/100 ms hold/BYE/200 (sipp/uac.xml, sipp/uas.xml),
# stateless, no Record-Route: 6 datagrams relayed per call. Kamailio runs
# with -x tlsf -b 4194304 (the tuned settings). Loopback only; every process
# started here is stopped by PID; every SIPp run is bounded by -m and a
# timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-1000 3000}"
DUR="${DUR:-20}"
SHARDS="${SHARDS:-2}"
PROXIES="${PROXIES:-siphon kamailio}"
SIPHON="${SIPHON:-target/release/siphon}"
PROXY_IP=127.0.4.1 UAC_IP=127.0.4.2 UAS_IP=127.0.4.3
stamp=$(date +%Y%m%d-%H%M%S)
out="loadtest/results/$stamp"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

command -v sipp >/dev/null || { echo "loadtest: sipp not found (apt-get install sip-tester)"; exit 1; }
[ -x "$SIPHON" ] || cargo build --release --bin siphon

ticks=$(getconf CLK_TCK)
cpu_ticks() { # total utime+stime of a process and all its threads, in ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
rcvbuf_errors() {
    awk '/^Udp:/ {if (!h) {for (i=1;i<=NF;i++) if ($i=="RcvbufErrors") c=i; h=1} else print $c}' /proc/net/snmp
}
stat_last() { # csv column
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print $c}' "$1"
}

start_proxy() { # name -> sets proxy_pid
    case $1 in
        siphon)
            cat > "$work/siphon.toml" <<TOML
[server]
shards = $SHARDS
[[listen]]
transport = "udp"
addr = "$PROXY_IP:5060"
[[route]]
name = "uas"
match = { user_prefix = "service" }
destination = "uas"
[destination.uas]
targets = [{ uri = "sip:$UAS_IP:5080" }]
TOML
            "$SIPHON" --config "$work/siphon.toml" 2> "$work/siphon.log" &
            proxy_pid=$! ;;
        kamailio)
            sed "s/@PROXY_IP@/$PROXY_IP/; s/@UAS_IP@/$UAS_IP/" loadtest/kamailio-stateless.cfg > "$work/kamailio.cfg"
            mkdir -p "$work/kam"
            kamailio -f "$work/kamailio.cfg" -DD -E -x tlsf -b 4194304 -m 512 -Y "$work/kam" -P "$work/kam/kamailio.pid" \
                2> "$work/kamailio.log" &
            proxy_pid=$! ;;
    esac
    pids+=("$proxy_pid")
    sleep 2
    kill -0 "$proxy_pid" 2>/dev/null || { echo "loadtest: $1 did not start"; tail "$work/$1.log"; exit 1; }
}

proxy_cpu() { # the proxy and its children (Kamailio forks workers)
    local total=0 p
    for p in $proxy_pid $(pgrep -P "$proxy_pid" || true); do
        [ -r "/proc/$p/stat" ] && total=$(( total + $(cpu_ticks "$p") ))
    done
    echo "$total"
}

printf 'proxy\toffered_cps\tachieved_cps\tcalls\tfailed\tretransmissions\trcvbuf_errors\tcpu_us_per_call\n' > "$out/results.tsv"
for proxy in $PROXIES; do
    if [ "$proxy" = kamailio ] && ! command -v kamailio >/dev/null; then
        echo "loadtest: kamailio not installed (apt-get install kamailio); skipping it"; continue
    fi
    start_proxy "$proxy"
    for rate in $RATES; do
        calls=$(( rate * DUR ))
        limit=$(( DUR + 40 ))
        timeout "$limit" sipp -sf sipp/uas.xml -i "$UAS_IP" -p 5080 -m "$calls" -nostdin -timeout "${limit}s" \
            -buff_size 4194304 > "$work/uas.out" 2>&1 &
        uas=$!; pids+=("$uas")
        sleep 0.5
        cpu0=$(proxy_cpu); rb0=$(rcvbuf_errors); t0=$(date +%s.%N)
        set +e
        timeout "$limit" sipp -sf sipp/uac.xml "$PROXY_IP:5060" -i "$UAC_IP" -p 5070 -s service -m "$calls" -r "$rate" \
            -l $(( rate * 3 )) -nostdin -timeout "${limit}s" -recv_timeout 10000 -buff_size 4194304 \
            -trace_stat -stf "$work/uac-$proxy-$rate.csv" > "$work/uac.out" 2>&1
        t1=$(date +%s.%N)
        wait "$uas"
        set -e
        sleep 2
        cpu1=$(proxy_cpu); rb1=$(rcvbuf_errors)
        ok=$(stat_last "$work/uac-$proxy-$rate.csv" 'SuccessfulCall(C)')
        failed=$(stat_last "$work/uac-$proxy-$rate.csv" 'FailedCall(C)')
        retrans=$(stat_last "$work/uac-$proxy-$rate.csv" 'Retransmissions(C)')
        achieved=$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a - 0.1)}')
        us=$(awk -v c="$(( cpu1 - cpu0 ))" -v t="$ticks" -v n="$ok" 'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / t / n; else print "-"}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$rate" "$achieved" "$ok" "$failed" "$retrans" "$(( rb1 - rb0 ))" "$us" \
            | tee -a "$out/results.tsv"
    done
    kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
done
{ echo "# $(date -u) $(uname -r) $(nproc) cpus; sipp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1)"; cat "$out/results.tsv"; } > "$out/report.txt"
column -t -s $'\t' "$out/results.tsv"
