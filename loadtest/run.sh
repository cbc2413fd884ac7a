#!/usr/bin/env bash
# The same SIPp call load through siphon and (when installed) Kamailio, at
# fixed rates, one run after the other on this machine. Per run: offered
# and achieved calls per second, failed calls, retransmissions, the
# kernel's UDP RcvbufErrors during the run, and the proxy's CPU per call
# (utime+stime of all its threads from /proc/PID/stat, over the run and a
# 2 s tail). Then (SEARCH=1) the highest rate that passes: x1.5 steps above
# the best fixed rate until a run fails, then two bisection steps. Writes
# loadtest/results/<stamp>/{results,maxrates}.tsv and prints them.
#
#   bash loadtest/run.sh                     # RATES="1000 3000" DUR=20, then the max-rate search
#   SEARCH=0 bash loadtest/run.sh            # fixed rates only
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
SEARCH="${SEARCH:-1}"          # search the highest passing rate after the fixed rates
SEARCH_DUR="${SEARCH_DUR:-10}" # seconds per search run
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

printf 'proxy\toffered_cps\tachieved_cps\tcalls\tfailed\tretransmissions\trcvbuf_errors\tcpu_us_per_call\tpass\n' > "$out/results.tsv"

# One run at `rate` for `dur` seconds; prints a row; returns 0 if it passed:
# every call completed, 0 failed (unexpected messages fail a call), achieved
# >= 97 % of offered, retransmissions <= 0.1 % of calls.
run_rate() { # proxy rate dur
    local proxy=$1 rate=$2 dur=$3
    local calls=$(( rate * dur )) limit=$(( dur + 40 ))
    timeout "$limit" sipp -sf sipp/uas.xml -i "$UAS_IP" -p 5080 -m "$calls" -nostdin -timeout "${limit}s" \
        -buff_size 4194304 > "$work/uas.out" 2>&1 &
    local uas=$!; pids+=("$uas")
    sleep 0.5
    local cpu0 rb0 t0 t1 cpu1 rb1
    cpu0=$(proxy_cpu); rb0=$(rcvbuf_errors); t0=$(date +%s.%N)
    timeout "$limit" sipp -sf sipp/uac.xml "$PROXY_IP:5060" -i "$UAC_IP" -p 5070 -s service -m "$calls" -r "$rate" \
        -l $(( rate * 3 )) -nostdin -timeout "${limit}s" -recv_timeout 10000 -buff_size 4194304 \
        -trace_stat -stf "$work/uac-$proxy-$rate.csv" > "$work/uac.out" 2>&1 || true
    t1=$(date +%s.%N)
    wait "$uas" || true
    sleep 2
    cpu1=$(proxy_cpu); rb1=$(rcvbuf_errors)
    local csv="$work/uac-$proxy-$rate.csv" ok failed retrans achieved us verdict=FAIL
    ok=$(stat_last "$csv" 'SuccessfulCall(C)'); ok=${ok:-0}
    failed=$(stat_last "$csv" 'FailedCall(C)'); failed=${failed:-0}
    retrans=$(stat_last "$csv" 'Retransmissions(C)'); retrans=${retrans:-0}
    achieved=$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a - 0.1)}')
    us=$(awk -v c="$(( cpu1 - cpu0 ))" -v t="$ticks" -v n="$ok" 'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / t / n; else print "-"}')
    if [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ $(( achieved * 100 )) -ge $(( rate * 97 )) ] \
        && [ $(( retrans * 1000 )) -le "$calls" ]; then verdict=pass; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$rate" "$achieved" "$ok" "$failed" "$retrans" \
        "$(( rb1 - rb0 ))" "$us" "$verdict" | tee -a "$out/results.tsv"
    [ "$verdict" = pass ]
}

round250() { echo $(( ($1 + 125) / 250 * 250 )); }

printf 'proxy\thighest_passing_cps\tfirst_failing_cps\n' > "$out/maxrates.tsv"
for proxy in $PROXIES; do
    if [ "$proxy" = kamailio ] && ! command -v kamailio >/dev/null; then
        echo "loadtest: kamailio not installed (apt-get install kamailio); skipping it"; continue
    fi
    start_proxy "$proxy"
    best=0
    for rate in $RATES; do
        if run_rate "$proxy" "$rate" "$DUR" && [ "$rate" -gt "$best" ]; then best=$rate; fi
    done
    if [ "$SEARCH" = 1 ] && [ "$best" -gt 0 ]; then
        # x1.5 steps until a run fails (bounded), then two bisection steps.
        lo=$best; hi=0; rate=$(round250 $(( lo * 3 / 2 )))
        for _ in 1 2 3 4 5 6; do
            if run_rate "$proxy" "$rate" "$SEARCH_DUR"; then lo=$rate; rate=$(round250 $(( rate * 3 / 2 ))); else hi=$rate; break; fi
        done
        for _ in 1 2; do
            [ "$hi" -gt 0 ] || break
            mid=$(round250 $(( (lo + hi) / 2 )))
            if [ "$mid" -le "$lo" ] || [ "$mid" -ge "$hi" ]; then break; fi
            if run_rate "$proxy" "$mid" "$SEARCH_DUR"; then lo=$mid; else hi=$mid; fi
        done
        printf '%s\t%s\t%s\n' "$proxy" "$lo" "$hi" >> "$out/maxrates.tsv"
    fi
    kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
done
{ echo "# $(date -u) $(uname -r) $(nproc) cpus; sipp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1)"; cat "$out/results.tsv"; } > "$out/report.txt"
column -t -s $'\t' "$out/results.tsv"
[ "$SEARCH" = 1 ] && { echo; column -t -s $'\t' "$out/maxrates.tsv"; }
exit 0
