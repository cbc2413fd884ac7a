#!/usr/bin/env bash
# Registrar and location routing: the same load through siphon
# ([registrar] in memory, stateful with Record-Route) and Kamailio
# (kamailio-registrar.cfg: usrloc db_mode 0 + registrar, tm + rr), one after
# the other on this machine, driven by siphon-loadgen.
#
# Per proxy:
#   0. prime: register USERS users (user0..user(USERS-1)@DOMAIN, Contact
#      at the generator's UAS) once, so that what follows are refreshes;
#   a. REGISTER at REG_RATE/s for DUR s cycling over the USERS users
#      (each user keeps its Call-ID, CSeq +1 per round): CPU per REGISTER;
#      then (REG_SIPP=1) the same with SIPp (loadtest/sipp-register.xml,
#      the Kamailio anchor's scenario: a new Call-ID per REGISTER), whose
#      burstier sending wakes the proxy less often (see proxy_cs_per_op);
#   b. calls to the registered users (INVITE sip:userK@DOMAIN, lookup +
#      relay to the UAS, ACK, 100 ms hold, BYE) at each of CALL_RATES for
#      DUR s: CPU per call;
#   c. (SEARCH=1) the highest REGISTER rate with 0 failures: x1.5 steps
#      from REG_SEARCH_FROM until a run fails, then two bisection steps
#      (1000/s granularity), REG_SEARCH_DUR s each; then (CALL_SEARCH=1)
#      the same for calls from the best passing call rate (250 cps
#      granularity), CALL_SEARCH_DUR s each.
#
# Per run: offered and achieved rate, attempted, completed, failed,
# timeouts, retransmissions, REGISTER refreshes skipped because the user's
# previous REGISTER was unanswered (overlaps), 200s without the user's
# contact (bad_answers), UDP RcvbufErrors of the whole box and the drops
# on the proxy's own sockets (/proc/net/udp) during the run, latency
# p50/p90/p99 (µs, kernel timestamps), the proxy's CPU per operation
# (utime+stime of all its threads (siphon) or processes (Kamailio) from
# /proc over the run and a tail: REG_TAIL s after REGISTERs; after calls
# long enough for every transaction to end and its clean-up to be counted,
# SIPHON_TAIL 34 s (siphon keeps them 32 s) and KAMAILIO_TAIL 7 s (tm's
# 5 s wait timer); each proxy's idle CPU is measured for IDLE s after its
# start and reported beside, since the tail counts it too), and, over the
# generator's run (start to exit), the proxy's, the generator's and every
# other process's CPU in % of one core (which one ran out first), the
# proxy's voluntary context switches (its threads or processes going to
# sleep) per operation: at a few thousand per second, wake-ups are most
# of a proxy's CPU, and how often it wakes depends on how bursty the
# generator is.
#
# A run passes when every attempt completed, none failed, the achieved rate
# is >= 97 % of the offered one and retransmissions are <= 0.1 % of
# attempts. Writes loadtest/results/<stamp>-registrar/{results.tsv,
# maxrates.tsv, idle.tsv, report.txt, loadgen.log (every generator's
# output), siphon.toml, kamailio.cfg, the proxies' logs}.
#
#   bash loadtest/registrar.sh                       # ~7 min: both proxies, searches
#   SEARCH=0 bash loadtest/registrar.sh              # fixed rates only (~4 min)
#   SHARDS=1 PROXIES=siphon bash loadtest/registrar.sh
#
# Loopback only (127.0.6.x); every process started here is stopped by PID;
# every generator run is bounded by its count and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
PROXIES="${PROXIES:-siphon kamailio}"
SHARDS="${SHARDS:-2}"                 # siphon's server.shards
CHILDREN="${CHILDREN:-$SHARDS}"       # Kamailio's UDP worker processes
USERS="${USERS:-10000}"
DOMAIN="${DOMAIN:-example.com}"
DUR="${DUR:-10}"
REG_RATE="${REG_RATE:-3000}"
CALL_RATES="${CALL_RATES:-1000 3000}"
PRIME_RATE="${PRIME_RATE:-5000}"
REG_TAIL="${REG_TAIL:-2}"
REG_SIPP="${REG_SIPP:-1}"             # also REGISTER at REG_RATE with SIPp
SIPP_IP=127.0.6.4
SIPHON_TAIL="${SIPHON_TAIL:-34}"
KAMAILIO_TAIL="${KAMAILIO_TAIL:-7}"
IDLE="${IDLE:-5}"
SEARCH="${SEARCH:-1}"
REG_SEARCH_FROM="${REG_SEARCH_FROM:-24000}"
REG_SEARCH_DUR="${REG_SEARCH_DUR:-5}"
CALL_SEARCH="${CALL_SEARCH:-$SEARCH}"
CALL_SEARCH_DUR="${CALL_SEARCH_DUR:-5}"
SEARCH_TAIL="${SEARCH_TAIL:-2}"
LG_THREADS="${LG_THREADS:-1}"         # siphon-loadgen register --threads
LG_SOCKETS="${LG_SOCKETS:-8}"
QUIET_MAX="${QUIET_MAX:-30}"          # % of one core used by other processes
QUIET_WAIT="${QUIET_WAIT:-10}"        # s to wait for that before a measured run
SIPHON="${SIPHON:-target/release/siphon}"
LOADGEN="${LOADGEN:-target/release/siphon-loadgen}"
PROXY_IP=127.0.6.1 UAC_IP=127.0.6.2 UAS_IP=127.0.6.3
UAS="$UAS_IP:5080"
stamp=$(date +%Y%m%d-%H%M%S)
out="loadtest/results/$stamp-registrar"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
proxy_pid=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

[ -x "$SIPHON" ] || cargo build --release --bin siphon
[ -x "$LOADGEN" ] || cargo build --release -p siphon-loadtest
if [ "$REG_SIPP" = 1 ] && ! command -v sipp >/dev/null; then
    echo "registrar.sh: sipp not found (apt-get install sip-tester); REG_SIPP=0"; REG_SIPP=0
fi
{ echo SEQUENTIAL; for (( i = 0; i < USERS; i++ )); do echo "user$i"; done; } > "$work/users.csv"
sed "s/@DOMAIN@/$DOMAIN/g; s/@CONTACT@/$UAS/g" loadtest/sipp-register.xml > "$work/sipp-register.xml"

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rcvbuf_errors() {
    awk '/^Udp:/ {if (!h) {for (i=1;i<=NF;i++) if ($i=="RcvbufErrors") c=i; h=1} else print $c}' /proc/net/snmp
}
# Drops counted on the proxy's own UDP sockets (every socket bound to
# PROXY_IP; /proc/net/udp holds the address in little-endian hex).
proxy_ip_hex=$(awk -v ip="$PROXY_IP" 'BEGIN {split(ip, a, "."); printf "%02X%02X%02X%02X", a[4], a[3], a[2], a[1]}')
proxy_drops() {
    awk -v ip="$proxy_ip_hex" 'NR > 1 {split($2, a, ":"); if (a[1] == ip) d += $NF} END {print d + 0}' /proc/net/udp
}
proxy_procs() { [ -n "$proxy_pid" ] && echo "$proxy_pid" $(pgrep -P "$proxy_pid" || true); }
# Voluntary context switches of every thread of the proxy's processes.
proxy_cs() {
    local p
    for p in $(proxy_procs); do cat /proc/"$p"/task/*/status 2>/dev/null; done |
        awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'
}
proxy_cpu() {
    local total=0 p
    for p in $(proxy_procs); do total=$(( total + $(cpu_ticks "$p") )); done
    echo "$total"
}
# CPU ticks of every other process: utime+stime+cutime+cstime (a process
# that ended and was reaped moves into its parent's cutime), leaving out
# the proxy and this script (whose cutime holds the generator's CPU).
other_cpu() {
    local ex=" $$ $(proxy_procs | tr '\n' ' ') "
    # cat goes on past a process that ended since the glob; awk would not.
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v ex="$ex" '{
        if (index(ex, " " $1 " ")) next
        line = $0; sub(/^.*\) /, "", line); n = split(line, f, " ")
        if (n >= 15) s += f[12] + f[13] + f[14] + f[15]
    } END {print s + 0}'
}
pct_of_core() { awk -v t="$1" -v hz="$ticks" -v s="$2" 'BEGIN {if (s > 0) printf "%.0f", t / hz / s * 100; else print "-"}'; }
us_per() { awk -v c="$1" -v t="$ticks" -v n="$2" 'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / t / n; else print "-"}'; }
now() { date +%s.%N; }
loadgen_value() { awk -v k="$2" '$1==k {print $2}' "$1"; }
stat_last() { # csv column: the last value of a SIPp -trace_stat column
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print (c ? $c : "")}' "$1" 2>/dev/null
}

# Wait (at most QUIET_WAIT s) until other processes use <= QUIET_MAX % of
# one core; the CPU they used during each run is reported either way.
wait_quiet() {
    local end=$(( SECONDS + QUIET_WAIT )) a b p
    while :; do
        a=$(other_cpu); sleep 1; b=$(other_cpu)
        p=$(( (b - a) * 100 / ticks ))
        [ "$p" -le "$QUIET_MAX" ] && return 0
        if [ "$SECONDS" -ge "$end" ]; then
            echo "registrar.sh: other processes at ${p}% of a core after ${QUIET_WAIT}s of waiting; going on" | tee -a "$out/notes.txt"
            return 0
        fi
    done
}

start_proxy() { # name
    case $1 in
        siphon)
            cat > "$out/siphon.toml" <<TOML
[server]
shards = $SHARDS
[[listen]]
transport = "udp"
addr = "$PROXY_IP:5060"
[proxy]
mode = "stateful"
record_route = true
[registrar]
domains = ["$DOMAIN"]
default_expires = 3600
TOML
            "$SIPHON" --config "$out/siphon.toml" 2> "$work/siphon.log" &
            proxy_pid=$! ;;
        kamailio)
            # tm keeps finished transactions ~5 s: ~135 MB of shm per 1000 cps.
            sed "s/@PROXY_IP@/$PROXY_IP/; s/^children=.*/children=$CHILDREN/" loadtest/kamailio-registrar.cfg > "$out/kamailio.cfg"
            mkdir -p "$work/kam"
            kamailio -f "$out/kamailio.cfg" -DD -E -x tlsf -b 4194304 -m 4096 -Y "$work/kam" -P "$work/kam/kamailio.pid" \
                2> "$work/kamailio.log" &
            proxy_pid=$! ;;
    esac
    pids+=("$proxy_pid")
    sleep 2
    kill -0 "$proxy_pid" 2>/dev/null || { echo "registrar.sh: $1 did not start"; tail "$work/$1.log"; exit 1; }
}

stop_proxy() { # name
    kill -TERM "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    tail -n 200 "$work/$1.log" > "$out/$1.log" 2>/dev/null || true
    proxy_pid=
}

cols='proxy\tgen\tstep\toffered\tachieved\tattempted\tcompleted\tfailed\ttimeouts\tretransmissions\toverlaps\tbad_answers\tunexpected\trcvbuf_errors\tproxy_drops\tp50_us\tp90_us\tp99_us\tcpu_us_per_op\tproxy_cpu_pct\tgen_cpu_pct\tother_cpu_pct\tproxy_cs_per_op\tgen_lag_ms\tpass\twhy\n'
printf "$cols" > "$out/results.tsv"
printf 'proxy\tload\thighest_passing\tfirst_failing\twhy_failing\n' > "$out/maxrates.tsv"
printf 'proxy\tidle_cpu_ms_per_s\tidle_cs_per_s\n' > "$out/idle.tsv"

# One run; prints a row and returns 0 when it passed.
#   measure proxy step(register|calls|...) rate dur tail
measure() {
    local proxy=$1 step=$2 rate=$3 dur=$4 tail=$5
    local n=$(( rate * dur )) limit=$(( dur + 45 )) lg="$work/lg.out"
    local cpu0 cpuG cpu1 oth0 othG rb0 rb1 dr0 dr1 cs0 cs1 t0 tG gen=loadgen
    local kind=${step%%-*}
    declare -A r
    cs0=$(proxy_cs); cpu0=$(proxy_cpu); oth0=$(other_cpu); rb0=$(rcvbuf_errors); dr0=$(proxy_drops); t0=$(now)
    if [ "$step" = register-sipp ]; then
        gen=sipp
        (cd "$work" && timeout "$limit" sipp -sf "$work/sipp-register.xml" "$PROXY_IP:5060" -i "$SIPP_IP" \
            -inf "$work/users.csv" -m "$n" -r "$rate" -l $(( rate * 3 )) -nostdin -timeout "${limit}s" \
            -recv_timeout 5000 -buff_size 4194304 -trace_stat -stf "$work/reg.csv" > "$work/sipp.out" 2>&1) || true
        # The loadgen's key/value lines, from SIPp's final statistics.
        local cs=$work/reg.csv
        tG=$(now)
        {
            echo "attempted $(stat_last "$cs" 'TotalCallCreated')"
            echo "completed $(stat_last "$cs" 'SuccessfulCall(C)')"
            echo "failed $(stat_last "$cs" 'FailedCall(C)')"
            echo "timeouts $(stat_last "$cs" 'FailedMaxUDPRetrans(C)')"
            echo "retransmissions $(stat_last "$cs" 'Retransmissions(C)')"
            echo "unexpected $(stat_last "$cs" 'FailedUnexpectedMessage(C)')"
            awk -v n="$(stat_last "$cs" 'SuccessfulCall(C)')" -v a="$t0" -v b="$tG" 'BEGIN {printf "achieved_cps %.1f\n", n / (b - a - 0.1)}'
        } > "$lg"
        rm -f "$cs"
    elif [ "$kind" = register ]; then
        timeout "$limit" "$LOADGEN" register --proxy "$PROXY_IP:5060" --uac "$UAC_IP" --users "$USERS" --domain "$DOMAIN" \
            --contact "$UAS" --rate "$rate" --duration "$dur" --threads "$LG_THREADS" --sockets "$LG_SOCKETS" \
            --label "$proxy" > "$lg" 2>&1 || true
    else
        timeout "$limit" "$LOADGEN" calls --proxy "$PROXY_IP:5060" --uac "$UAC_IP" --uas "$UAS" --users "$USERS" \
            --domain "$DOMAIN" --rate "$rate" --duration "$dur" --sockets "$LG_SOCKETS" --label "$proxy" > "$lg" 2>&1 || true
    fi
    cpuG=$(proxy_cpu); othG=$(other_cpu); tG=$(now)
    { echo "== $proxy $gen $step $rate/s x ${dur}s"; cat "$lg"; } >> "$out/loadgen.log"
    sleep "$tail"
    cpu1=$(proxy_cpu); rb1=$(rcvbuf_errors); dr1=$(proxy_drops); cs1=$(proxy_cs)
    local v k
    for k in attempted completed failed timeouts retransmissions unexpected overlaps bad_answers achieved_cps \
        duration_s p50_us p90_us p99_us gen_cpu_us_per_call start_lag_max_us uas_unexpected; do
        v=$(loadgen_value "$lg" "$k"); r[$k]=${v:--}
    done
    local att=${r[attempted]/-/0} ok=${r[completed]/-/0} failed=${r[failed]/-/0} retrans=${r[retransmissions]/-/0}
    local achieved secs gen_pct lag_ms verdict=FAIL why=""
    achieved=$(awk -v a="${r[achieved_cps]}" 'BEGIN {printf "%.0f", a + 0}')
    secs=$(awk -v a="$t0" -v b="$tG" 'BEGIN {print b - a}')
    [ "$gen" = sipp ] && r[gen_cpu_us_per_call]=-
    gen_pct=$(awk -v u="${r[gen_cpu_us_per_call]}" -v n="$ok" -v s="$secs" 'BEGIN {if (u != "-" && s > 0) printf "%.0f", u * n / 1e6 / s * 100; else print "-"}')
    lag_ms=$(awk -v l="${r[start_lag_max_us]}" 'BEGIN {if (l != "-") printf "%.0f", l / 1000; else print "-"}')
    if [ "$att" = "$n" ] && [ "$ok" = "$n" ] && [ "$failed" = 0 ] && [ $(( achieved * 100 )) -ge $(( rate * 97 )) ] \
        && [ $(( retrans * 1000 )) -le "$n" ]; then verdict=pass; fi
    # What went wrong, as far as the counters tell.
    if [ "$verdict" = FAIL ]; then
        [ $(( dr1 - dr0 )) -gt 0 ] && why+="proxy-socket-drops,"
        [ $(( (rb1 - rb0) - (dr1 - dr0) )) -gt 0 ] && why+="other-socket-drops,"
        [ "${r[timeouts]}" != - ] && [ "${r[timeouts]}" -gt 0 ] && why+="timeouts,"
        [ "${r[overlaps]}" != - ] && [ "${r[overlaps]}" -gt 0 ] && why+="overlaps,"
        [ "${r[bad_answers]}" != - ] && [ "${r[bad_answers]}" -gt 0 ] && why+="bad-answers,"
        [ "$retrans" -gt 0 ] && why+="retransmissions,"
        [ "$lag_ms" != - ] && [ "$lag_ms" -ge 50 ] && why+="generator-behind,"
        [ "$att" != "$n" ] && why+="not-all-attempted,"
        [ $(( achieved * 100 )) -lt $(( rate * 97 )) ] && why+="rate<97%,"
        why=${why%,}
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$proxy" "$gen" "$step" "$rate" "$achieved" "$att" "$ok" "$failed" "${r[timeouts]}" "$retrans" "${r[overlaps]}" \
        "${r[bad_answers]}" "${r[unexpected]}" "$(( rb1 - rb0 ))" "$(( dr1 - dr0 ))" "${r[p50_us]}" "${r[p90_us]}" "${r[p99_us]}" \
        "$(us_per $(( cpu1 - cpu0 )) "$ok")" "$(pct_of_core $(( cpuG - cpu0 )) "$secs")" "$gen_pct" \
        "$(pct_of_core $(( othG - oth0 )) "$secs")" "$(awk -v c=$(( cs1 - cs0 )) -v n="$ok" 'BEGIN {if (n > 0) printf "%.2f", c / n; else print "-"}')" \
        "$lag_ms" "$verdict" "${why:--}" | tee -a "$out/results.tsv"
    last_why=${why:--}
    [ "$verdict" = pass ]
}

# x1.5 steps from `from` until a run fails (at most 7), then two
# bisection steps; appends to maxrates.tsv.
search() { # proxy kind from granularity dur
    local proxy=$1 kind=$2 rate=$3 g=$4 dur=$5 lo=0 hi=0 mid why=-
    for _ in 1 2 3 4 5 6 7; do
        if measure "$proxy" "$kind-search" "$rate" "$dur" "$SEARCH_TAIL"; then
            lo=$rate; rate=$(( (rate * 3 / 2 + g / 2) / g * g ))
        else
            hi=$rate; why=$last_why; break
        fi
    done
    for _ in 1 2; do
        [ "$hi" -gt 0 ] || break
        mid=$(( ((lo + hi) / 2 + g / 2) / g * g ))
        if [ "$mid" -le "$lo" ] || [ "$mid" -ge "$hi" ]; then break; fi
        if measure "$proxy" "$kind-search" "$mid" "$dur" "$SEARCH_TAIL"; then lo=$mid; else hi=$mid; why=$last_why; fi
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$proxy" "$kind" "$lo" "$([ "$hi" -gt 0 ] && echo "$hi" || echo "-")" "$why" >> "$out/maxrates.tsv"
}

for proxy in $PROXIES; do
    if [ "$proxy" = kamailio ] && ! command -v kamailio >/dev/null; then
        echo "registrar.sh: kamailio not installed (apt-get install kamailio); skipping it"; continue
    fi
    echo "== $proxy"
    start_proxy "$proxy"
    call_tail=$KAMAILIO_TAIL
    [ "$proxy" = siphon ] && call_tail=$SIPHON_TAIL
    # Its CPU at rest (timers), which the tails also count.
    c0=$(proxy_cpu); s0=$(proxy_cs); sleep "$IDLE"; c1=$(proxy_cpu); s1=$(proxy_cs)
    printf '%s\t%s\t%s\n' "$proxy" "$(awk -v c=$(( c1 - c0 )) -v hz="$ticks" -v s="$IDLE" 'BEGIN {printf "%.1f", c / hz / s * 1000}')" \
        "$(( (s1 - s0) / IDLE ))" >> "$out/idle.tsv"
    # 0. Every user registered once (not measured).
    timeout 60 "$LOADGEN" register --proxy "$PROXY_IP:5060" --uac "$UAC_IP" --users "$USERS" --domain "$DOMAIN" \
        --contact "$UAS" --rate "$PRIME_RATE" --duration "$(awk -v u="$USERS" -v r="$PRIME_RATE" 'BEGIN {print u / r}')" \
        --label "$proxy" > "$work/prime.out" 2>&1 || true
    { echo "== $proxy prime"; cat "$work/prime.out"; } >> "$out/loadgen.log"
    if [ "$(loadgen_value "$work/prime.out" result)" != pass ]; then
        echo "registrar.sh: $proxy: registering the $USERS users failed:"; cat "$work/prime.out"
    fi
    # a. REGISTER refreshes.
    wait_quiet
    measure "$proxy" register "$REG_RATE" "$DUR" "$REG_TAIL" || true
    if [ "$REG_SIPP" = 1 ]; then
        wait_quiet
        measure "$proxy" register-sipp "$REG_RATE" "$DUR" "$REG_TAIL" || true
    fi
    # b. Calls to the registered users.
    best=0
    for rate in $CALL_RATES; do
        wait_quiet
        if measure "$proxy" calls "$rate" "$DUR" "$call_tail" && [ "$rate" -gt "$best" ]; then best=$rate; fi
    done
    # c. The highest rates.
    if [ "$SEARCH" = 1 ]; then
        search "$proxy" register "$REG_SEARCH_FROM" 1000 "$REG_SEARCH_DUR"
    fi
    if [ "$CALL_SEARCH" = 1 ]; then
        search "$proxy" calls "$(( best > 0 ? best * 3 / 2 : 3000 ))" 250 "$CALL_SEARCH_DUR"
    fi
    stop_proxy "$proxy"
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
git diff --quiet HEAD -- src 2>/dev/null || commit+=" (src/ modified)"
# The binary carries no commit: say when a source is newer than it.
if [ -n "$(find src Cargo.toml Cargo.lock -newer "$SIPHON" -print -quit 2>/dev/null)" ]; then
    commit+=" (sources newer than the binary: rebuild to measure them)"
fi
{
    echo "# $(date -u) $(uname -r) $(nproc) cpus ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
    echo "# siphon $commit, binary $(date -u -r "$SIPHON" +%FT%TZ), $SHARDS shard(s), stateful + record_route, registrar in memory"
    command -v kamailio >/dev/null && echo "# $(kamailio -v 2>/dev/null | head -1), $CHILDREN UDP worker(s), -x tlsf -b 4194304 -m 4096, usrloc db_mode 0"
    echo "# generator: siphon-loadgen, $LG_SOCKETS sockets, register threads $LG_THREADS, default tick; users $USERS @$DOMAIN (primed at $PRIME_RATE/s)"
    [ "$REG_SIPP" = 1 ] && echo "# register-sipp: $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1), loadtest/sipp-register.xml, one socket, a new Call-ID per REGISTER; no latency (1 ms resolution)"
    echo "# fixed runs: ${DUR}s each, REGISTER at $REG_RATE/s (tail ${REG_TAIL}s), calls at $CALL_RATES cps (tail: siphon ${SIPHON_TAIL}s, Kamailio ${KAMAILIO_TAIL}s);" \
        "searches: REGISTER from $REG_SEARCH_FROM/s x1.5 (${REG_SEARCH_DUR}s), calls x1.5 (${CALL_SEARCH_DUR}s), tail ${SEARCH_TAIL}s"
    echo "# cpu_us_per_op: proxy CPU over run + tail per completed REGISTER or call;" \
        "*_cpu_pct: % of one core over the generator's run (2 cores = 200); other = every other process on the box;" \
        "proxy_cs_per_op: the proxy's voluntary context switches (sleeps) per operation; gen_lag_ms: how far the generator's starts fell behind schedule"
    echo
    column -t -s $'\t' "$out/results.tsv"; echo
    column -t -s $'\t' "$out/maxrates.tsv"; echo
    column -t -s $'\t' "$out/idle.tsv"
    [ -s "$out/notes.txt" ] && { echo; cat "$out/notes.txt"; }
} > "$out/report.txt"
echo; cat "$out/report.txt"
echo "registrar.sh: results in $out"
exit 0
