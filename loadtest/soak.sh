#!/usr/bin/env bash
# Soak: siphon as an internet edge (config/secure-edge.toml, every defence
# on) for DURATION_S seconds under legitimate calls, a REGISTER load and an
# attack mix, sampled every SAMPLE_S s; then the load stops, the
# transactions drain, and verdicts are printed.
#
#   bash loadtest/soak.sh 120                        # CI: debug build, 50 cps
#   SIPHON=target/release/siphon RATE=... REG_RATE=... bash loadtest/soak.sh 3600
#
# Load, all from loopback 127.0.7.x:
#   calls     SIPp UAC 127.0.7.2:5070 (a trunk: in [acl] trusted) -> siphon
#             -> SIPp UAS 127.0.7.3:5080 (bob, registered there with Digest,
#             sipp/uas.xml). Stateful, Record-Route, Digest on every INVITE
#             (secure-edge.toml challenges INVITE for everyone: 407, ACK,
#             INVITE with credentials as alice), 180, 200, ACK, HOLD_MS of
#             hold, BYE from the caller; RATE calls/s, RATE*DURATION_S
#             calls (interop/attack/uac_digest.xml with its 200 ms pause
#             taken from -d HOLD_MS).
#   REGISTER  REG_RATE/s with Digest (sipp/uac_register_auth.xml: 401, then
#             200) from phones: ceil(REG_RATE/REG_PER_ADDR) SIPp processes
#             on 127.0.7.10.., each cycling over its share of REG_USERS
#             users (soak0000.., added to the copy of the users file).
#             Phones are not trusted: each address stays under the guard's
#             max_requests per window (REG_PER_ADDR/s = 2*REG_PER_ADDR
#             requests/s).
#   attacks   every ATTACK_PERIOD s, at once: a flood burst (interop/attack/
#             flood.py, FLOOD_RATE/s for FLOOD_S s, from 127.0.7.30-49 in
#             turn: each banned afresh), an off-path forger (inject.py, 64
#             forged 200 OKs while a call from 127.0.7.51 to carol at
#             127.0.7.52:5090 rings, from 127.0.7.60-79 in turn) and
#             SLOW_CONNS slowloris connections for SLOW_S s from
#             127.0.7.80-81 (slowloris.py).
#
# Samples (loadtest/results/soak-<stamp>/soak.tsv): elapsed s (0 = load
# start), phase (base, load, drain, after), VmRSS kB of the siphon PID,
# its CPU s (utime+stime of all threads, /proc/PID/stat) and CPU % of one
# core since the previous sample, siphon_transactions_active (summed over
# shards), siphon_registrar_bindings, siphon_bans_active,
# siphon_tcp_connections, the box's UDP RcvbufErrors (/proc/net/snmp) and
# the drops on siphon's own UDP sockets (/proc/net/udp) since the previous
# sample, and the calls SIPp completed so far. soak.svg plots RSS and CPU %
# against time (loadtest/soak-plot.py). Also there: verdict.txt, the
# config, siphon's log and final /metrics and /admin/bans, every tool's
# output.
#
# Verdicts (PASS/FAIL lines; exit 1 if any FAIL): every call completed and
# none failed (retransmissions reported), REGISTERs likewise; RSS after
# warm-up (the first 20 % of the run or 60 s, whichever is shorter, but at
# least a call's length + 32 s: see below) within 5 % (max/min), judged on
# runs of FLAT_MIN_S (600 s) or more only; RSS after
# the drain within 2x the baseline taken after start; transactions active
# 0 after the drain (bounded wait DRAIN_S; with the idle wake-up rate
# before and after, a sign of timers left) and no TCP connection left; the
# attacks seen (every flood banned, no forged response reached a caller,
# every forged-at call completed, no legitimate address banned); siphon
# logs no panic or ERROR and exits 0. CPU per call is printed.
#
# Loopback only. Every process it starts is stopped by PID; every loop is
# bounded in count and time; every tool runs with a timeout or -m.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION_S="${1:-}"
if ! [[ "$DURATION_S" =~ ^[0-9]+$ ]] || [ "$DURATION_S" -lt 30 ] || [ "$DURATION_S" -gt 6600 ]; then
    # 6600: bob's and carol's bindings are made once with Expires 7200
    # (secure-edge.toml's max_expires), and must outlive the run.
    echo "usage: loadtest/soak.sh DURATION_S   (30..6600 seconds)" >&2
    exit 2
fi
if [ -z "${SIPHON:-}" ]; then
    if [ -x target/release/siphon ]; then SIPHON=target/release/siphon; else SIPHON=target/debug/siphon; fi
fi
RATE="${RATE:-50}"                   # calls/s
HOLD_MS="${HOLD_MS:-3000}"           # each call's hold between ACK and BYE
REG_RATE="${REG_RATE:-20}"           # REGISTERs/s in all (0: none)
REG_PER_ADDR="${REG_PER_ADDR:-10}"   # REGISTERs/s per phone address
REG_USERS="${REG_USERS:-200}"        # users the REGISTER load cycles over
ATTACK_PERIOD="${ATTACK_PERIOD:-20}" # s between attack rounds (0: none)
FLOOD_RATE="${FLOOD_RATE:-5000}"     # datagrams/s of a flood burst
FLOOD_S="${FLOOD_S:-2}"
SLOW_CONNS="${SLOW_CONNS:-40}"
SLOW_S="${SLOW_S:-8}"
SAMPLE_S="${SAMPLE_S:-5}"
# Transactions outlive their last message by Timer J/L (32 s over UDP).
DRAIN_S="${DRAIN_S:-45}"
# After the drain, the RSS is read this much later (as loadtest/memory.sh
# does: siphon trims its heap at most every 5 s, allocators purge later).
# On runs of FLAT_MIN_S or more the verdict's reading waits for the state
# that lives by the clock, not by transactions, to expire as well: the
# Digest replay window keeps each challenge nonce_lifetime_s (300 s in
# secure-edge.toml) and a flood ban ban_s; the reading SETTLE_S after the
# drain is printed beside it.
SETTLE_S="${SETTLE_S:-10}"
FLAT_MIN_S="${FLAT_MIN_S:-600}"
if [ "$DURATION_S" -ge "$FLAT_MIN_S" ]; then LIFETIME_S="${LIFETIME_S:-320}"; else LIFETIME_S="${LIFETIME_S:-0}"; fi

P_IP=127.0.7.1 UAC_IP=127.0.7.2 UAS_IP=127.0.7.3
METRICS=$P_IP:9060
INJ_CALLER=127.0.7.51 INJ_CALLEE=127.0.7.52
SLOW_SRCS=127.0.7.80,127.0.7.81
A=interop/attack
CALLS=$((RATE * DURATION_S))
HOLD_S=$(((HOLD_MS + 999) / 1000))
started=$(date +%s)
HEAD_AT_START=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
stamp=$(date +%Y%m%d-%H%M%S)
out="loadtest/results/soak-$stamp"
logs="$out/logs"
mkdir -p "$logs"
logs_abs="$root/$logs"

# ---------------------------------------------------------------- processes
PIDS=()
alive() { # a process that has not exited (a zombie counts as exited)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
stop_pid() { # stop_pid PID [SIGNAL]: SIGNAL (TERM), KILL after 5 s; reaped
    local pid=$1 sig=${2:-TERM} i
    if alive "$pid"; then kill "-$sig" "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi; done
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# wait_for SECONDS CMD...: poll CMD every 0.1 s, at most SECONDS
wait_for() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do "$@" && return 0; sleep 0.1; done
    "$@"
}
# wait_pid PID SECONDS: wait for PID to exit, at most SECONDS; its status
wait_pid() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do alive "$1" || break; sleep 0.1; done
    if alive "$1"; then return 124; fi
    wait "$1"
}

# ---------------------------------------------------------------- results
NPASS=0 NFAIL=0
say() { echo "$*" | tee -a "$out/verdict.txt"; }
pass() { say "PASS $1"; NPASS=$((NPASS + 1)); }
fail() { say "FAIL $1"; NFAIL=$((NFAIL + 1)); }
info() { say "  $*"; }
die() { fail "$1"; say "$NPASS passed, $NFAIL failed"; exit 1; }

for tool in sipp python3 curl timeout awk; do
    command -v "$tool" >/dev/null || die "setup: $tool not found (apt-get install sip-tester python3 curl)"
done
[ -x "$SIPHON" ] || die "setup: no siphon binary at $SIPHON (cargo build --bin siphon)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || true
fi

# ---------------------------------------------------------------- /proc and /metrics
ticks=$(getconf CLK_TCK)
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
scrape() { curl -s --max-time 2 "http://$METRICS/metrics" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SIPHON_PID/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SIPHON_PID/stat" 2>/dev/null || echo 0; }
rcvbuf_errors() {
    awk '/^Udp:/ {if (!h) {for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1} else print $c}' /proc/net/snmp
}
# drops counted on siphon's own UDP sockets (/proc/net/udp: the address in
# little-endian hex, the drops last)
p_hex=$(awk -v ip="$P_IP" 'BEGIN {split(ip, a, "."); printf "%02X%02X%02X%02X", a[4], a[3], a[2], a[1]}')
sock_drops() { awk -v ip="$p_hex" 'NR > 1 {split($2, a, ":"); if (a[1] == ip) d += $NF} END {print d + 0}' /proc/net/udp; }
# "tx bindings bans tcp wakeups" from one scrape
gauges() {
    scrape | awk '
        index($1, "siphon_transactions_active{") == 1 { tx += $2 }
        $1 == "siphon_registrar_bindings" { b = $2 }
        $1 == "siphon_bans_active" { bans = $2 }
        index($1, "siphon_tcp_connections{") == 1 { tcp += $2 }
        index($1, "siphon_shard_wakeups_total{") == 1 { w += $2 }
        END { printf "%d %d %d %d %d\n", tx, b, bans, tcp, w }'
}
# a column of the last line of a SIPp -trace_stat CSV (0 when none)
sipp_stat() {
    [ -s "$1" ] || { echo 0; return 0; }
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i } END { v = (c ? $c : 0); print (v == "" ? 0 : v) }' "$1"
}

# ---------------------------------------------------------------- siphon
# config/secure-edge.toml as it is but for:
# - its listen and metrics addresses, moved to 127.0.7.1 (a range of its
#   own: interop/attack.sh uses 127.0.5.x, registrar.sh 127.0.6.x);
# - [acl] trusted also holds the SIPp caller 127.0.7.2: it stands for a
#   trunk, RATE calls/s of 5 requests each, far over the guard's
#   max_requests per window_ms, and a trunk is exactly what the config
#   says belongs in trusted (exempt from the guard). Its INVITEs are still
#   challenged ([auth] applies to every source). The phones (REGISTER),
#   the callee and every attacker are not trusted.
# users_file is a copy of config/registrar-users.txt plus the REGISTER
# load's users.
sed -e 's/^addr = "127\.0\.0\.1:5060"$/addr = "127.0.7.1:5060"/' \
    -e 's/^listen = "127\.0\.0\.1:9060"$/listen = "127.0.7.1:9060"/' \
    -e 's|^trusted = \["127\.0\.0\.250/32"\]$|# soak.sh: the SIPp caller 127.0.7.2 is a trunk (RATE calls/s, far over\n# max_requests): a trunk is exempt. Phones and attackers are not.\ntrusted = ["127.0.0.250/32", "127.0.7.2/32"]|' \
    config/secure-edge.toml >"$out/siphon.toml"
changed=$(diff config/secure-edge.toml "$out/siphon.toml" | grep -c '^>' || true)
[ "$changed" = 6 ] || die "siphon config: expected 4 lines of config/secure-edge.toml changed and 2 comment lines added, got $changed: has the file changed?"
# a phone sends 2 requests per REGISTER (401, then with credentials): its
# address must stay under the guard's max_requests per window_ms
cfg() { awk -v s="[$1]" -v k="$2" '$0 == s { in_s = 1; next } /^\[/ { in_s = 0 } in_s && $1 == k { print $3; exit }' "$out/siphon.toml"; }
MAX_REQUESTS=$(cfg guard max_requests)
WINDOW_MS=$(cfg guard window_ms)
[ $((REG_PER_ADDR * 2 * WINDOW_MS)) -lt $((MAX_REQUESTS * 1000 * 3 / 4)) ] ||
    die "setup: REG_PER_ADDR $REG_PER_ADDR/s is 2 x $REG_PER_ADDR requests/s from one phone, over 3/4 of the guard's max_requests $MAX_REQUESTS per $WINDOW_MS ms"
cp config/registrar-users.txt "$out/registrar-users.txt"
for ((i = 0; i < REG_USERS; i++)); do printf 'soak%04d:password=soak-%04d\n' "$i" "$i"; done >>"$out/registrar-users.txt"
for a in "$P_IP 5060" "$P_IP 9060"; do
    if tcp_open $a; then die "siphon starts: something already listens on TCP ${a/ /:} (a soak left running?)"; fi
done
"$SIPHON" --config "$out/siphon.toml" >"$out/siphon.log" 2>&1 &
SIPHON_PID=$!
PIDS+=("$SIPHON_PID")
siphon_up() { alive "$SIPHON_PID" && [ "$(curl -s --max-time 1 "http://$METRICS/health")" = ok ] && tcp_open "$P_IP" 5060; }
wait_for 15 siphon_up || die "siphon starts: not serving on $P_IP:5060 and $METRICS after 15 s: $(tail -3 "$out/siphon.log" | tr '\n' ' ')"
say "# soak $(date -u +%FT%TZ): $DURATION_S s; $(nproc) cpus, $(uname -r); siphon $SIPHON (built $(stat -c %y "$SIPHON" | cut -d. -f1); HEAD $HEAD_AT_START); sipp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1)"
say "# calls $RATE/s held ${HOLD_MS} ms ($CALLS); REGISTER $REG_RATE/s over $REG_USERS users; attacks every ${ATTACK_PERIOD} s: flood ${FLOOD_RATE}/s x ${FLOOD_S} s, forger, ${SLOW_CONNS} slowloris x ${SLOW_S} s; results in $out"

# bob (the callee, at the SIPp UAS's address) and carol (inject.py's
# callee) register once with Digest, Expires 7200, from the address and
# port they name (a binding from another port is taken for a NATed one).
sed 's/^      Expires: 3600$/      Expires: 7200/' sipp/uac_register_auth.xml >"$logs/register-7200.xml"
[ "$(grep -c 'Expires: 7200' "$logs/register-7200.xml")" = 2 ] || die "setup: sipp/uac_register_auth.xml has changed (no 'Expires: 3600' lines)"
register_once() { # USER PASSWORD IP PORT
    printf 'SEQUENTIAL\n%s;%s\n' "$1" "$2" >"$logs/reg-$1.csv"
    (cd "$logs" && timeout 20 sipp -sf "$logs_abs/register-7200.xml" "$P_IP:5060" -i "$3" -p "$4" -m 1 \
        -inf "$logs_abs/reg-$1.csv" -key domain example.com -key contact "$3:$4" -auth_uri example.com \
        -nostdin -timeout 15s -trace_err -error_file "$logs_abs/reg-$1.err" >"$logs_abs/reg-$1.out" 2>&1) ||
        die "setup: SIPp could not register $1 with Digest: $(head -c 300 "$logs/reg-$1.err" 2>/dev/null)"
}
register_once bob bob-secret "$UAS_IP" 5080
[ "$ATTACK_PERIOD" = 0 ] || register_once carol carol-secret "$INJ_CALLEE" 5090

# ---------------------------------------------------------------- sampling
TSV="$out/soak.tsv"
printf 'elapsed_s\tphase\trss_kb\tcpu_s\tcpu_pct\ttx_active\tbindings\tbans_active\ttcp_conns\trcvbuf_errors\tsock_drops\tcalls_ok\n' >"$TSV"
prev_t="" prev_cpu=0 prev_rb=0 prev_sd=0
rb_total=0 sd_total=0
# sample PHASE: one row; sets S_RSS S_TX S_TCP S_W (wake-ups)
sample() {
    local now cpu rb sd el pct g
    now=$(date +%s.%N)
    cpu=$(cpu_ticks)
    S_RSS=$(rss_kb)
    rb=$(rcvbuf_errors)
    sd=$(sock_drops)
    g=$(gauges)
    read -r S_TX S_BIND S_BANS S_TCP S_W <<<"$g"
    el=$(awk -v a="$now" -v b="$t0" 'BEGIN {printf "%.1f", a - b}')
    if [ -n "$prev_t" ]; then
        pct=$(awk -v c=$((cpu - prev_cpu)) -v hz="$ticks" -v a="$now" -v b="$prev_t" 'BEGIN {printf "%.1f", (a > b ? c / hz / (a - b) * 100 : 0)}')
        rb_total=$((rb_total + rb - prev_rb))
        sd_total=$((sd_total + sd - prev_sd))
    else
        pct=0
        prev_rb=$rb
        prev_sd=$sd
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$el" "$1" "$S_RSS" \
        "$(awk -v c="$cpu" -v hz="$ticks" 'BEGIN {printf "%.2f", c / hz}')" "$pct" "$S_TX" "$S_BIND" "$S_BANS" "$S_TCP" \
        $((rb - prev_rb)) $((sd - prev_sd)) "$(sipp_stat "$logs/uac.csv" 'SuccessfulCall(C)')" >>"$TSV"
    prev_t=$now prev_cpu=$cpu prev_rb=$rb prev_sd=$sd
    { curl -s --max-time 2 "http://$METRICS/admin/bans" 2>/dev/null || true; } | legit_bans
}
# The callee, the phones, the forged-at caller and callee must never be
# banned: any of them in /admin/bans (stdin) is added to legit-bans.txt.
: >"$logs/legit-bans.txt"
legit_bans() {
    { grep -o -E '"address":"127\.0\.7\.([23]|1[0-9]|2[0-9]|5[12])"' || true; } | cut -d'"' -f4 >>"$logs/legit-bans.txt"
}
# wake-ups per second over 5 s of no load (timers left fire)
wakeup_rate() {
    local w0 w1
    w0=$(gauges | awk '{print $5}')
    sleep 5
    w1=$(gauges | awk '{print $5}')
    awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.1f", (b - a) / 5}'
}

sleep 1
IDLE_WAKEUPS=$(wakeup_rate)
t0=$(date +%s.%N)
sample base
BASE_RSS=$S_RSS
CPU0=$(cpu_ticks)
info "baseline: RSS ${BASE_RSS} kB, $IDLE_WAKEUPS shard wake-ups/s idle, $S_BIND bindings"

# ---------------------------------------------------------------- load
# SIPp's global -timeout bounds every generator.
LIMIT_S=$((DURATION_S + HOLD_S + 120))
sed 's|^  <pause milliseconds="200"/>$|  <pause/>|' "$A/uac_digest.xml" >"$logs/uac.xml"
grep -q '^  <pause/>$' "$logs/uac.xml" || die "setup: $A/uac_digest.xml has changed (no 200 ms pause to replace)"
(cd "$logs" && exec sipp -sf "$root/sipp/uas.xml" -i "$UAS_IP" -p 5080 -nostdin -timeout "${LIMIT_S}s" \
    -buff_size 4194304 -trace_err -error_file "$logs_abs/uas.err" >"$logs_abs/uas.out" 2>&1) &
UAS_PID=$!
PIDS+=("$UAS_PID")
sleep 0.3
(cd "$logs" && exec sipp -sf "$logs_abs/uac.xml" "$P_IP:5060" -i "$UAC_IP" -p 5070 -s bob -au alice -ap alice-secret \
    -auth_uri bob@example.com -m "$CALLS" -r "$RATE" -l $((RATE * (HOLD_S + 15))) -d "$HOLD_MS" \
    -recv_timeout 10000 -nostdin -timeout "${LIMIT_S}s" -buff_size 4194304 \
    -trace_stat -stf "$logs_abs/uac.csv" -fd "$SAMPLE_S" -trace_err -error_file "$logs_abs/uac.err" \
    >"$logs_abs/uac.out" 2>&1) &
UAC_PID=$!
PIDS+=("$UAC_PID")

# REGISTER: n processes, the rate and the users split between them
REG_PIDS=()
nreg=0
if [ "$REG_RATE" -gt 0 ]; then
    nreg=$(((REG_RATE + REG_PER_ADDR - 1) / REG_PER_ADDR))
    [ "$nreg" -le 20 ] || die "setup: REG_RATE $REG_RATE needs $nreg phone addresses (127.0.7.10-29: at most 20)"
    for ((i = 0; i < nreg; i++)); do
        r=$((REG_RATE / nreg + (i < REG_RATE % nreg ? 1 : 0)))
        ip=127.0.7.$((10 + i))
        { echo SEQUENTIAL; for ((u = i; u < REG_USERS; u += nreg)); do printf 'soak%04d;soak-%04d\n' "$u" "$u"; done; } >"$logs/reg$i.csv"
        (cd "$logs" && exec sipp -sf "$root/sipp/uac_register_auth.xml" "$P_IP:5060" -i "$ip" -p 5090 \
            -m $((r * DURATION_S)) -r "$r" -inf "$logs_abs/reg$i.csv" -key domain example.com -key contact "$ip:5090" \
            -auth_uri example.com -recv_timeout 10000 -nostdin -timeout "${LIMIT_S}s" \
            -trace_stat -stf "$logs_abs/reg$i.stat.csv" -fd "$SAMPLE_S" -trace_err -error_file "$logs_abs/reg$i.err" \
            >"$logs_abs/reg$i.out" 2>&1) &
        REG_PIDS+=("$!")
        PIDS+=("$!")
    done
fi

# Attacks: rounds every ATTACK_PERIOD s until the load ends (bounded in
# count), each tool bounded by its own duration and a timeout. One line
# per round in attacks.log.
attack_loop() {
    local k rounds=$((DURATION_S / ATTACK_PERIOD)) kids=() t_round fl sl irc crc leaked forged
    trap 'for p in "${kids[@]}"; do kill -TERM "$p" 2>/dev/null; done; exit 0' TERM
    for ((k = 0; k < rounds; k++)); do
        t_round=$(date +%s)
        # the round must end (SLOW_S + a few s) before the load does
        [ $((t_round + SLOW_S + 5)) -le "$LOAD_END" ] || break
        kids=()
        timeout $((FLOOD_S + 10)) python3 "$A/flood.py" --src "127.0.7.$((30 + k % 20))" --dst "$P_IP:5060" \
            --rate "$FLOOD_RATE" --seconds "$FLOOD_S" >"$logs/flood.out" 2>&1 &
        kids+=("$!")
        timeout $((SLOW_S + 10)) python3 "$A/slowloris.py" --srcs "$SLOW_SRCS" --dst "$P_IP:5060" \
            --conns "$SLOW_CONNS" --seconds "$SLOW_S" >"$logs/slowloris.out" 2>&1 &
        kids+=("$!")
        timeout 20 python3 "$A/inject.py" --uas "$INJ_CALLEE:5090" --forger "127.0.7.$((60 + k % 20))" \
            --proxy "$P_IP:5060" --ring 1 --timeout 15 >"$logs/inject.out" 2>&1 &
        local ipid=$!
        kids+=("$ipid")
        wait_for 5 grep -q '^ready' "$logs/inject.out" || true
        crc=0
        (cd "$logs" && exec timeout 20 sipp -sf "$root/$A/uac_digest.xml" "$P_IP:5060" -i "$INJ_CALLER" -p 5070 -s carol \
            -au alice -ap alice-secret -auth_uri carol@example.com -m 1 -recv_timeout 10000 -nostdin -timeout 15s \
            -trace_msg -message_file "$logs_abs/inject-uac.msg" >"$logs_abs/inject-uac.out" 2>&1) || crc=$?
        irc=0
        wait "$ipid" || irc=$?
        for p in "${kids[@]}"; do wait "$p" 2>/dev/null || true; done
        fl=$(sed -n 's/^flood: sent \([0-9]*\) .*/\1/p' "$logs/flood.out")
        sl=$(tail -1 "$logs/slowloris.out" | sed -n 's/.*\bconnected=\([0-9]*\).*closed_fast=\([0-9]*\) closed_slow=\([0-9]*\) open=\([0-9]*\).*/\1 \2 \3 \4/p')
        forged=$(sed -n 's/^forged=\([0-9]*\).*/\1/p' "$logs/inject.out")
        leaked=$(grep -a -c -E 'tag=forged|forger@|IN IP4 127\.0\.7\.([6-7][0-9])' "$logs/inject-uac.msg" 2>/dev/null || true)
        rm -f "$logs/inject-uac.msg"
        # round flooder flood_sent forger forged call_rc inject_rc leaked slow_connected slow_fast slow_slow slow_open
        echo "$k 127.0.7.$((30 + k % 20)) ${fl:-0} 127.0.7.$((60 + k % 20)) ${forged:-0} $crc $irc ${leaked:-0} ${sl:-0 0 0 0}" >>"$logs/attacks.log"
        local left=$((t_round + ATTACK_PERIOD - $(date +%s)))
        [ "$left" -le 0 ] || sleep "$left"
    done
}
LOAD_END=$(($(date +%s) + DURATION_S))
: >"$logs/attacks.log"
ATTACK_PID=""
if [ "$ATTACK_PERIOD" -gt 0 ]; then
    attack_loop &
    ATTACK_PID=$!
    PIDS+=("$ATTACK_PID")
fi

nsamples=$((DURATION_S / SAMPLE_S))
for ((i = 1; i <= nsamples; i++)); do
    left=$(awk -v t0="$t0" -v i="$i" -v s="$SAMPLE_S" -v now="$(date +%s.%N)" 'BEGIN {d = t0 + i * s - now; printf "%.2f", (d > 0 ? d : 0)}')
    sleep "$left"
    alive "$SIPHON_PID" || break
    sample load
done

# ---------------------------------------------------------------- drain
alive "$SIPHON_PID" || fail "siphon ran the whole soak: it exited at $(tail -1 "$TSV" | cut -f1) s: $(tail -3 "$out/siphon.log" | tr '\n' ' ')"
# The generators end by themselves (-m, their last call a hold later);
# the waits are bounds.
uac_rc=0
wait_pid "$UAC_PID" $((HOLD_S + 60)) || uac_rc=$?
reg_rc=0
for p in "${REG_PIDS[@]}"; do wait_pid "$p" 30 || reg_rc=$?; done
[ -z "$ATTACK_PID" ] || wait_pid "$ATTACK_PID" $((SLOW_S + 30)) || true
# the UAS: one SIGUSR1 (SIPp's soft exit), see sipp/README.md
stop_pid "$UAS_PID" USR1
for p in "${PIDS[@]}"; do
    if [ "$p" != "$SIPHON_PID" ] && alive "$p"; then stop_pid "$p"; fi
done
load_stopped=$(date +%s)
drained=0
for ((i = 0; i < DRAIN_S / SAMPLE_S + 1; i++)); do
    sleep "$SAMPLE_S"
    sample drain
    if [ "$S_TX" = 0 ] && [ "$S_TCP" = 0 ]; then drained=1; break; fi
done
drain_s=$(($(date +%s) - load_stopped))
sleep "$SETTLE_S"
sample after
AFTER_RSS=$S_RSS AFTER_TX=$S_TX AFTER_TCP=$S_TCP
SETTLED_RSS=$S_RSS
if [ "$LIFETIME_S" -gt "$SETTLE_S" ]; then
    # Bounded: LIFETIME_S seconds, sampled.
    for ((i = SETTLE_S; i < LIFETIME_S; i += SAMPLE_S)); do sleep "$SAMPLE_S"; sample after; done
    AFTER_RSS=$S_RSS
fi
CPU1=$(cpu_ticks)
DRAIN_WAKEUPS=$(wakeup_rate)
scrape >"$out/metrics.txt"
curl -s --max-time 2 "http://$METRICS/admin/bans" >"$out/bans.json" 2>/dev/null || true

# ---------------------------------------------------------------- verdicts
ok=$(sipp_stat "$logs/uac.csv" 'SuccessfulCall(C)')
failed=$(sipp_stat "$logs/uac.csv" 'FailedCall(C)')
retrans=$(sipp_stat "$logs/uac.csv" 'Retransmissions(C)')
dead=$(sipp_stat "$logs/uac.csv" 'DeadCallMsgs(C)')
ooc=$(sipp_stat "$logs/uac.csv" 'OutOfCallMsgs(C)')
achieved=$(awk -v n="$ok" -v d="$DURATION_S" 'BEGIN {printf "%.1f", n / d}')
summary="$ok of $CALLS calls completed, $failed failed, $retrans retransmissions, $dead dead-call and $ooc out-of-call messages at the caller (SIPp rc $uac_rc); $achieved calls/s over $DURATION_S s; RcvbufErrors on the box +$rb_total, drops on siphon's sockets +$sd_total"
if [ "$failed" = 0 ] && [ "$ok" = "$CALLS" ] && [ "$uac_rc" = 0 ]; then
    pass "calls: $summary"
else
    fail "calls: $summary; $(grep -a -m2 -E 'Aborting|unexpected|Dead|failed' "$logs/uac.err" 2>/dev/null | cut -c1-200 | tr '\n' ' ')"
fi

if [ "$nreg" -gt 0 ]; then
    rok=0 rfail=0 rretr=0 rwant=0
    for ((i = 0; i < nreg; i++)); do
        r=$((REG_RATE / nreg + (i < REG_RATE % nreg ? 1 : 0)))
        rwant=$((rwant + r * DURATION_S))
        rok=$((rok + $(sipp_stat "$logs/reg$i.stat.csv" 'SuccessfulCall(C)')))
        rfail=$((rfail + $(sipp_stat "$logs/reg$i.stat.csv" 'FailedCall(C)')))
        rretr=$((rretr + $(sipp_stat "$logs/reg$i.stat.csv" 'Retransmissions(C)')))
    done
    rsum="$rok of $rwant REGISTERs with Digest completed (401 then 200), $rfail failed, $rretr retransmissions, from $nreg phone addresses (SIPp rc $reg_rc); bindings at the end $S_BIND"
    if [ "$rfail" = 0 ] && [ "$rok" = "$rwant" ] && [ "$reg_rc" = 0 ]; then pass "REGISTER: $rsum"; else fail "REGISTER: $rsum"; fi
fi

# RSS after warm-up: the load samples from WARM s on. WARM is the
# shorter of 20 % of the run and 60 s, but no shorter than the time the
# transaction table takes to fill: a transaction outlives its last message
# by Timer J/L (32 s over UDP), so the number of live transactions (and the
# memory they hold) only levels off a call's length plus 32 s after the
# load starts; on long runs, no shorter than LIFETIME_S either (the replay
# window holds each challenge nonce_lifetime_s, so it fills for that long).
# The ratio from the shorter rule alone is printed too.
warm_rule=$(awk -v d="$DURATION_S" 'BEGIN {w = d * 0.2; if (w > 60) w = 60; printf "%d", w}')
warm_floor=$((HOLD_S + 32 + SAMPLE_S))
[ "$LIFETIME_S" -le "$warm_floor" ] || warm_floor=$LIFETIME_S
warm=$((warm_rule > warm_floor ? warm_rule : warm_floor))
rss_range() { # FROM_S: "min max samples" of the load's RSS from FROM_S on
    awk -F'\t' -v w="$1" 'NR > 1 && $2 == "load" && $1 >= w {
        if (n == 0 || $3 < mn) mn = $3; if ($3 > mx) mx = $3; n++ } END {printf "%d %d %d\n", mn, mx, n}' "$TSV"
}
ratio_of() { awk -v a="$2" -v b="$1" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
read -r rmin rmax rn < <(rss_range "$warm")
ratio=$(ratio_of "$rmin" "$rmax")
read -r qmin qmax qn < <(rss_range "$warm_rule")
rsum="RSS from ${warm} s to the end of the load ($rn samples): min $rmin kB, max $rmax kB, max/min $ratio (limit 1.05); baseline $BASE_RSS kB; slope over the judged samples $(awk -F'\t' -v w="$warm" 'NR > 1 && $2 == "load" && $1 >= w {n++; sx += $1; sy += $3; sxx += $1 * $1; sxy += $1 * $3}
    END {d = n * sxx - sx * sx; if (n > 1 && d > 0) printf "%+.1f", (n * sxy - sx * sy) / d * 3600 / 1024; else printf "-"}' "$TSV") MB/h"
[ "$warm" = "$warm_rule" ] || rsum="$rsum (from ${warm_rule} s, 20 % of the run: max/min $(ratio_of "$qmin" "$qmax"))"
# Flatness is judged only on runs long enough for every table to reach
# its steady state: the Digest replay window holds each challenge for
# nonce_lifetime_s (300 s in secure-edge.toml) before a sweep forgets it,
# so a shorter run is still filling it by construction (FLAT_MIN_S above).
if [ "$DURATION_S" -lt "$FLAT_MIN_S" ]; then
    say "INFO RSS flat after warm-up not judged: the run ($DURATION_S s) is shorter than FLAT_MIN_S ($FLAT_MIN_S s), the time the tables take to reach their steady state; $rsum"
elif [ "$rn" -gt 0 ] && awk -v r="$ratio" 'BEGIN {exit !(r <= 1.05)}'; then pass "RSS flat after warm-up: $rsum"; else fail "RSS flat after warm-up: $rsum"; fi

after_s=$((LIFETIME_S > SETTLE_S ? LIFETIME_S : SETTLE_S))
dsum="RSS ${after_s} s after the drain $AFTER_RSS kB = $(awk -v a="$AFTER_RSS" -v b="$BASE_RSS" 'BEGIN {printf "%.2f", a / b}')x the baseline $BASE_RSS kB (limit 2x; highest during the load $rmax kB; ${SETTLE_S} s after the drain $SETTLED_RSS kB, before the replay window's nonces expired)"
if [ "$AFTER_RSS" -le $((2 * BASE_RSS)) ]; then pass "RSS back after the drain: $dsum"; else fail "RSS back after the drain: $dsum"; fi

tsum="transactions active $AFTER_TX and TCP connections $AFTER_TCP ${drain_s} s after the load stopped (bounded wait ${DRAIN_S} s); shard wake-ups/s idle: $IDLE_WAKEUPS at the start, $DRAIN_WAKEUPS after the drain; bans active $S_BANS, bindings $S_BIND"
if [ "$drained" = 1 ] && [ "$AFTER_TX" = 0 ] && [ "$AFTER_TCP" = 0 ]; then pass "drained: $tsum"; else fail "drained: $tsum"; fi

cpu_s=$(awk -v c=$((CPU1 - CPU0)) -v hz="$ticks" 'BEGIN {printf "%.2f", c / hz}')
info "CPU: siphon used $cpu_s s from the load's start to the end of the drain = $(awk -v c="$cpu_s" -v n="$ok" 'BEGIN {if (n > 0) printf "%.0f", c * 1e6 / n; else print "-"}') µs per completed call (REGISTERs and attacks included), $(awk -v c="$cpu_s" -v d="$DURATION_S" 'BEGIN {printf "%.1f", c / d * 100}') % of one core on average over the load"

if [ "$ATTACK_PERIOD" -gt 0 ]; then
    rounds=$(wc -l <"$logs/attacks.log")
    read -r fsent forged calls_bad leaked slow_conn slow_open < <(awk '{f += $3; g += $5; if ($6 != 0 || $7 != 0) c++; l += $8; sc += $9; so += $12} END {printf "%d %d %d %d %d %d\n", f, g, c, l, sc, so}' "$logs/attacks.log")
    flooders=$(awk '{print $2}' "$logs/attacks.log" | sort -u)
    forgers=$(awk '{print $4}' "$logs/attacks.log" | sort -u)
    nfl=$(echo "$flooders" | grep -c . || true)
    banned_fl=0
    for a in $flooders; do grep -q "\"address\":\"$a\"" "$out/bans.json" && banned_fl=$((banned_fl + 1)); done
    banned_fg=0
    for a in $forgers; do grep -q "\"address\":\"$a\"" "$out/bans.json" && banned_fg=$((banned_fg + 1)); done
    fdrop=$(grep -E '^siphon_dropped_total\{.*reason="forged_response"' "$out/metrics.txt" | awk '{s += $2} END {print s + 0}')
    bdrop=$(grep -E '^siphon_dropped_total\{.*reason="banned"' "$out/metrics.txt" | awk '{s += $2} END {print s + 0}')
    bans_fl=$(grep -E '^siphon_bans_total\{reason="flood"' "$out/metrics.txt" | awk '{print $2}')
    legit_bans <"$out/bans.json"
    legit_banned=$(sort -u "$logs/legit-bans.txt" | tr '\n' ' ' | sed 's/ $//')
    shed=$(grep -E '^siphon_tcp_(source_rejected|slow_closed)_total' "$out/metrics.txt" | awk '{s += $2} END {print s + 0}')
    asum="$rounds rounds: flood bursts sent $fsent datagrams from $nfl addresses ($banned_fl of them still banned at the end, ban_s 300), siphon_bans_total{reason=\"flood\"} $bans_fl, $bdrop datagrams dropped as banned; forgers sent $forged forged 200 OKs ($banned_fg of $(echo "$forgers" | grep -c . || true) forger addresses banned), siphon_dropped_total{forged_response} $fdrop, $leaked reached a caller, $calls_bad of $rounds forged-at calls did not complete; slowloris opened $slow_conn connections, siphon shed $shed (rejected at accept + cut at message_timeout_ms), $slow_open open at a round's end; legitimate addresses banned: ${legit_banned:-none}"
    if [ "$rounds" -gt 0 ] && [ "$leaked" = 0 ] && [ "$calls_bad" = 0 ] && [ "$slow_open" = 0 ] && [ "${bans_fl:-0}" -ge "$rounds" ] \
        && [ -z "$legit_banned" ]; then
        pass "attacks: $asum"
    else
        fail "attacks: $asum"
    fi
fi

# siphon exits clean
src=0
kill -TERM "$SIPHON_PID" 2>/dev/null || true
wait_pid "$SIPHON_PID" 10 || src=$?
if alive "$SIPHON_PID"; then stop_pid "$SIPHON_PID" KILL; fi
errs=$(grep -c -E 'panicked|ERROR' "$out/siphon.log" || true)
if [ "$src" = 0 ] && [ "$errs" = 0 ]; then
    pass "siphon exits 0 on SIGTERM, no panic or ERROR in its log"
else
    fail "siphon exits 0 on SIGTERM, no panic or ERROR in its log: exit status $src, $errs lines: $(grep -m2 -E 'panicked|ERROR' "$out/siphon.log" | cut -c1-200 | tr '\n' ' ')"
fi

python3 loadtest/soak-plot.py --input "$TSV" --output "$out/soak.svg" \
    --title "siphon soak: $DURATION_S s, $RATE calls/s held ${HOLD_MS} ms, $REG_RATE REGISTER/s, attacks every ${ATTACK_PERIOD} s ($(basename "$SIPHON"), HEAD $HEAD_AT_START, $(nproc) cpus)" \
    --warmup "$warm" || info "plot failed"
say "  ($(($(date +%s) - started)) s; samples $TSV, plot $out/soak.svg)"
say "$NPASS passed, $NFAIL failed"
[ "$NFAIL" = 0 ]
