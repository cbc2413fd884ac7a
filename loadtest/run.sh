#!/usr/bin/env bash
# The same call load through siphon and (when installed) Kamailio, one run
# after the other on this machine, then a plot.
#
#   1. Calls at fixed rates (RATES, DUR s each) driven by SIPp (GEN=sipp) or
#      by siphon-loadgen (GEN=loadgen).
#   2. OPTIONS answered by the proxy itself at OPTIONS_RATE for DUR s
#      (SIPp sipp/options.xml), CPU per OPTIONS.
#   3. (SEARCH=1) the highest rate with zero failed calls, driven by
#      SEARCH_GEN (default loadgen: a single SIPp process saturates first):
#      x1.5 steps above the best fixed rate until a run fails, then two
#      bisection steps, 250 cps granularity.
#
# Per run: offered and achieved cps, calls, failed calls, retransmissions,
# the kernel's UDP RcvbufErrors during the run, response-time percentiles
# (SIPp: INVITE->200 from -trace_rtt, 1 ms resolution; loadgen: INVITE->200
# less the UAS's own wait, from kernel timestamps), and the proxy's CPU per
# call: utime+stime of all its threads (siphon) or processes (Kamailio)
# from /proc over the run and a 2 s tail. Writes
# loadtest/results/<stamp>/{results,options,maxrates}.tsv, plot.svg and
# report.txt, and prints the tables.
#
#   bash loadtest/run.sh                          # everything, both proxies
#   RATES="3000" DUR=10 SEARCH=0 PROXIES=siphon bash loadtest/run.sh
#   GEN=loadgen RATES="1000 3000 10000" SEARCH=0 bash loadtest/run.sh
#
# Call: INVITE/180/200/ACK/100 ms hold/BYE/200 (sipp/uac.xml, sipp/uas.xml,
# or the same call from siphon-loadgen). PROFILE=stateless (default):
# no Record-Route, 6 datagrams relayed per call; Kamailio forward().
# PROFILE=stateful: siphon mode = "stateful" and Kamailio tm (t_relay),
# both with Record-Route; 6 datagrams relayed plus a 100 Trying per call. Kamailio runs with -x tlsf -b 4194304 (the
# tuned settings). Loopback only; every process started here is stopped by
# PID; every generator run is bounded by a call count and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RATES="${RATES:-1000 3000}"
PROFILE="${PROFILE:-stateless}"     # stateless | stateful
# CPU is counted over the run and this tail: in stateful mode long enough
# for every transaction of the run to end (siphon: Timers J, L, M = 32 s;
# Kamailio's tm: its 5 s wait timer), so that their clean-up is counted.
TAIL="${TAIL:-$([ "$PROFILE" = stateful ] && echo 34 || echo 2)}"
DUR="${DUR:-20}"
SHARDS="${SHARDS:-2}"                # siphon's server.shards
CHILDREN="${CHILDREN:-$SHARDS}"      # Kamailio's UDP worker processes
PROXIES="${PROXIES:-siphon kamailio}"
GEN="${GEN:-sipp}"
OPTIONS_RATE="${OPTIONS_RATE:-3000}" # 0 skips the OPTIONS runs
SEARCH="${SEARCH:-1}"
SEARCH_GEN="${SEARCH_GEN:-loadgen}"
SEARCH_DUR="${SEARCH_DUR:-10}"
SIPHON="${SIPHON:-target/release/siphon}"
LOADGEN="${LOADGEN:-target/release/siphon-loadgen}"
PROXY_IP=127.0.4.1 UAC_IP=127.0.4.2 UAS_IP=127.0.4.3 OPT_IP=127.0.4.4
stamp=$(date +%Y%m%d-%H%M%S)
out="loadtest/results/$stamp-$PROFILE"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

command -v sipp >/dev/null || { echo "loadtest: sipp not found (apt-get install sip-tester)"; exit 1; }
[ -x "$SIPHON" ] || cargo build --release --bin siphon
[ -x "$LOADGEN" ] || cargo build --release -p siphon-loadtest

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rcvbuf_errors() {
    awk '/^Udp:/ {if (!h) {for (i=1;i<=NF;i++) if ($i=="RcvbufErrors") c=i; h=1} else print $c}' /proc/net/snmp
}
stat_last() { # csv column
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print $c}' "$1"
}
# p50 p90 p99 in µs of SIPp -trace_rtt files (response times in ms).
sipp_percentiles() { # files...
    cat "$@" 2>/dev/null | awk -F';' 'NR>0 && $2 ~ /^[0-9.]+$/ {print $2 * 1000}' | sort -n | awk '
        {v[NR]=$1} END {
            if (NR == 0) {print "- - -"; exit}
            p = "50 90 99"; split(p, q, " ");
            for (i=1;i<=3;i++) {k=int(NR*q[i]/100); if (k<1) k=1; printf "%s%d", (i>1?" ":""), v[k]}
            print ""
        }'
}
loadgen_value() { awk -v k="$2" '$1==k {print $2}' "$1"; }

start_proxy() { # name -> sets proxy_pid
    case $1 in
        siphon*)
            # Variants by dash-separated tokens after "siphon", measured
            # beside the default in the same run: callid (stateful requests
            # handled by the shard their Call-ID hashes to: dispatch =
            # "call-id"), spread (server.spread: the kernel spreads one
            # peer's datagrams over every shard), cN (server.coalesce_us =
            # N), old (the binary in $SIPHON_OLD, e.g. an earlier build).
            local mode=stateless rr=false dispatch=socket coalesce="" spread=false bin=$SIPHON tok
            [ "$PROFILE" = stateful ] && { mode=stateful; rr=true; }
            for tok in $(echo "$1" | tr '-' ' '); do
                case $tok in
                    callid) dispatch=call-id ;;
                    spread) spread=true ;;
                    c[0-9]*) coalesce="coalesce_us = ${tok#c}" ;;
                    old) bin=${SIPHON_OLD:?SIPHON_OLD names the other binary} ;;
                esac
            done
            local server_keys="$coalesce"
            [ "$spread" = true ] && server_keys="$server_keys
spread = true"
            cat > "$work/siphon.toml" <<TOML
[server]
shards = $SHARDS
$server_keys
[[listen]]
transport = "udp"
addr = "$PROXY_IP:5060"
[proxy]
mode = "$mode"
record_route = $rr
dispatch = "$dispatch"
[[route]]
name = "uas"
match = { user_prefix = "service" }
destination = "uas"
[destination.uas]
targets = [{ uri = "sip:$UAS_IP:5080" }]
TOML
            "$bin" --config "$work/siphon.toml" 2> "$work/$1.log" &
            proxy_pid=$! ;;
        kamailio)
            # tm keeps finished transactions ~5 s: ~135 MB of shm per 1000 cps.
            local shm=512
            [ "$PROFILE" = stateful ] && shm=4096
            sed "s/@PROXY_IP@/$PROXY_IP/; s/@UAS_IP@/$UAS_IP/; s/^children=.*/children=$CHILDREN/" "loadtest/kamailio-$PROFILE.cfg" > "$work/kamailio.cfg"
            mkdir -p "$work/kam"
            kamailio -f "$work/kamailio.cfg" -DD -E -x tlsf -b 4194304 -m "$shm" -Y "$work/kam" -P "$work/kam/kamailio.pid" \
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
# CPU ticks of each shard thread (siphon-shard-N), "N:ticks" per line.
shard_ticks() {
    local t
    for t in /proc/"$proxy_pid"/task/*; do
        awk '{ if ($2 ~ /siphon-shard/) { gsub(/[()]/, "", $2); print $2 ":" $14 + $15 } }' "$t/stat" 2>/dev/null || true
    done | sort
}
# The busiest shard's share of the shards' CPU between two shard_ticks
# outputs, in percent ("-" for Kamailio or one shard).
busiest_share() { # before after
    awk -F: 'NR==FNR {b[$1]=$2; next} {d=$2-b[$1]; t+=d; if (d>m) m=d; n++}
        END {if (n < 2 || t == 0) print "-"; else printf "%.0f", m * 100 / t}' <(echo "$1") <(echo "$2")
}
us_per() { awk -v c="$1" -v t="$ticks" -v n="$2" 'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / t / n; else print "-"}'; }

printf 'proxy\tgen\toffered_cps\tachieved_cps\tcalls\tfailed\tretransmissions\trcvbuf_errors\tp50_us\tp90_us\tp99_us\tcpu_us_per_call\tbusiest_shard_pct\tpass\n' > "$out/results.tsv"
printf 'proxy\trate\tanswered\tfailed\tretransmissions\trcvbuf_errors\tp50_us\tp99_us\tcpu_us_per_options\n' > "$out/options.tsv"

# One run at `rate` for `dur` seconds with generator `gen`; prints a row;
# returns 0 if it passed: every call completed, 0 failed (unexpected
# messages fail a call), achieved >= 97 % of offered, retransmissions
# <= 0.1 % of calls.
run_rate() { # proxy gen rate dur
    local proxy=$1 gen=$2 rate=$3 dur=$4
    local calls=$(( rate * dur )) limit=$(( dur + 40 ))
    local cpu0 rb0 t0 t1 cpu1 rb1 ok failed retrans achieved pct
    rm -f "$work"/*_rtt.csv
    local sh0 sh1
    cpu0=$(proxy_cpu); rb0=$(rcvbuf_errors)
    if [ "$gen" = sipp ]; then
        (cd "$work" && exec timeout "$limit" sipp -sf "$root/sipp/uas.xml" -i "$UAS_IP" -p 5080 -m "$calls" -nostdin \
            -timeout "${limit}s" -buff_size 4194304 > "$work/uas.out" 2>&1) &
        local uas=$!; pids+=("$uas")
        sleep 0.5
        cpu0=$(proxy_cpu); rb0=$(rcvbuf_errors); sh0=$(shard_ticks); t0=$(date +%s.%N)
        (cd "$work" && timeout "$limit" sipp -sf "$root/sipp/uac.xml" "$PROXY_IP:5060" -i "$UAC_IP" -p 5070 -s service \
            -m "$calls" -r "$rate" -l $(( rate * 3 )) -nostdin -timeout "${limit}s" -recv_timeout 10000 \
            -buff_size 4194304 -trace_stat -stf "$work/uac.csv" -trace_rtt -rtt_freq 1000 > "$work/uac.out" 2>&1) || true
        t1=$(date +%s.%N)
        wait "$uas" || true
        ok=$(stat_last "$work/uac.csv" 'SuccessfulCall(C)'); ok=${ok:-0}
        failed=$(stat_last "$work/uac.csv" 'FailedCall(C)'); failed=${failed:-0}
        retrans=$(stat_last "$work/uac.csv" 'Retransmissions(C)'); retrans=${retrans:-0}
        achieved=$(awk -v n="$ok" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a - 0.1)}')
        pct=$(sipp_percentiles "$work"/uac_*_rtt.csv)
        rm -f "$work/uac.csv"
    else
        sh0=$(shard_ticks)
        timeout "$limit" "$LOADGEN" calls --proxy "$PROXY_IP:5060" --uac "$UAC_IP" --uas "$UAS_IP:5080" \
            --rate "$rate" --duration "$dur" --label "$proxy" > "$work/lg.out" 2>&1 || true
        ok=$(loadgen_value "$work/lg.out" completed); ok=${ok:-0}
        failed=$(loadgen_value "$work/lg.out" failed); failed=${failed:-0}
        retrans=$(loadgen_value "$work/lg.out" retransmissions); retrans=${retrans:-0}
        achieved=$(loadgen_value "$work/lg.out" achieved_cps | awk '{printf "%.0f", $1}'); achieved=${achieved:-0}
        pct="$(loadgen_value "$work/lg.out" p50_us) $(loadgen_value "$work/lg.out" p90_us) $(loadgen_value "$work/lg.out" p99_us)"
    fi
    sleep "$TAIL"
    cpu1=$(proxy_cpu); rb1=$(rcvbuf_errors); sh1=$(shard_ticks)
    local us verdict=FAIL
    us=$(us_per $(( cpu1 - cpu0 )) "$ok")
    if [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ $(( achieved * 100 )) -ge $(( rate * 97 )) ] \
        && [ $(( retrans * 1000 )) -le "$calls" ]; then verdict=pass; fi
    set -- $pct
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$gen" "$rate" "$achieved" "$ok" "$failed" \
        "$retrans" "$(( rb1 - rb0 ))" "${1:--}" "${2:--}" "${3:--}" "$us" "$(busiest_share "$sh0" "$sh1")" "$verdict" | tee -a "$out/results.tsv"
    [ "$verdict" = pass ]
}

run_options() { # proxy rate dur
    local proxy=$1 rate=$2 dur=$3
    local n=$(( rate * dur )) limit=$(( dur + 30 ))
    rm -f "$work"/*_rtt.csv
    local cpu0 rb0 cpu1 rb1 ok failed retrans pct
    cpu0=$(proxy_cpu); rb0=$(rcvbuf_errors)
    (cd "$work" && timeout "$limit" sipp -sf "$root/sipp/options.xml" "$PROXY_IP:5060" -i "$OPT_IP" -m "$n" -r "$rate" \
        -l $(( rate * 3 )) -nostdin -timeout "${limit}s" -recv_timeout 5000 -buff_size 4194304 \
        -trace_stat -stf "$work/opt.csv" -trace_rtt -rtt_freq 1000 > "$work/opt.out" 2>&1) || true
    sleep 2
    cpu1=$(proxy_cpu); rb1=$(rcvbuf_errors)
    ok=$(stat_last "$work/opt.csv" 'SuccessfulCall(C)'); ok=${ok:-0}
    failed=$(stat_last "$work/opt.csv" 'FailedCall(C)'); failed=${failed:-0}
    retrans=$(stat_last "$work/opt.csv" 'Retransmissions(C)'); retrans=${retrans:-0}
    pct=$(sipp_percentiles "$work"/options_*_rtt.csv)
    rm -f "$work/opt.csv"
    set -- $pct
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$rate" "$ok" "$failed" "$retrans" "$(( rb1 - rb0 ))" \
        "${1:--}" "${3:--}" "$(us_per $(( cpu1 - cpu0 )) "$ok")" | tee -a "$out/options.tsv"
}

round250() { echo $(( ($1 + 125) / 250 * 250 )); }

printf 'proxy\tgen\thighest_passing_cps\tfirst_failing_cps\n' > "$out/maxrates.tsv"
for proxy in $PROXIES; do
    if [ "$proxy" = kamailio ] && ! command -v kamailio >/dev/null; then
        echo "loadtest: kamailio not installed (apt-get install kamailio); skipping it"; continue
    fi
    start_proxy "$proxy"
    best=0
    for rate in $RATES; do
        if run_rate "$proxy" "$GEN" "$rate" "$DUR" && [ "$rate" -gt "$best" ]; then best=$rate; fi
    done
    [ "$OPTIONS_RATE" -gt 0 ] && run_options "$proxy" "$OPTIONS_RATE" "$DUR"
    if [ "$SEARCH" = 1 ]; then
        # From the best fixed rate (or 3000): x1.5 steps until a run fails
        # (bounded), then two bisection steps.
        lo=0; hi=0; rate=$(( best > 0 ? best : 3000 ))
        for _ in 1 2 3 4 5 6 7; do
            if run_rate "$proxy" "$SEARCH_GEN" "$rate" "$SEARCH_DUR"; then lo=$rate; rate=$(round250 $(( rate * 3 / 2 ))); else hi=$rate; break; fi
        done
        for _ in 1 2; do
            [ "$hi" -gt 0 ] || break
            mid=$(round250 $(( (lo + hi) / 2 )))
            if [ "$mid" -le "$lo" ] || [ "$mid" -ge "$hi" ]; then break; fi
            if run_rate "$proxy" "$SEARCH_GEN" "$mid" "$SEARCH_DUR"; then lo=$mid; else hi=$mid; fi
        done
        printf '%s\t%s\t%s\t%s\n' "$proxy" "$SEARCH_GEN" "$lo" "$hi" >> "$out/maxrates.tsv"
    fi
    kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
done

# One series per proxy and generator, passing runs only; SIPp's latency
# (1 ms resolution, 0 on loopback) is left out of the latency panel.
awk -F'\t' 'BEGIN {OFS="\t"} NR==1 || $NF=="pass" {
    if (NR>1) { if ($2=="sipp") { $9="-"; $10="-"; $11="-" }; $1=$1" ("$2")" }; print
}' "$out/results.tsv" > "$work/plot.tsv"
"$LOADGEN" plot --input "$work/plot.tsv" --output "$out/plot.svg" \
    --title "${PROFILE^} proxy, $SHARDS shard(s) / $CHILDREN worker(s), $(nproc) CPUs: CPU per call and latency" || echo "loadtest: plot failed"
{
    echo "# $(date -u) $(uname -r) $(nproc) cpus; sipp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1); profile=$PROFILE gen=$GEN search_gen=$SEARCH_GEN shards=$SHARDS kamailio_children=$CHILDREN"
    cat "$out/results.tsv"; echo; cat "$out/options.tsv"; echo; cat "$out/maxrates.tsv"
} > "$out/report.txt"
column -t -s $'\t' "$out/results.tsv"; echo
column -t -s $'\t' "$out/options.tsv"; echo
[ "$SEARCH" = 1 ] && column -t -s $'\t' "$out/maxrates.tsv"
echo "loadtest: results in $out (plot.svg)"
exit 0
