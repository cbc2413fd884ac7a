# What interop/run.sh and interop/nat.sh share: check results, child
# processes and cleanup, waits (and SIPp stats, tcpdump captures), siphon's
# metrics and admin API, baresip UAs (config, start, ctrl_tcp commands and
# events, SIP ladders) and the call steps both scripts take;
# interop/attack.sh and interop/topology.sh use the first four. Sourced from
# the repository root, after `set -euo pipefail`; it defines functions and
# their state and runs nothing. See interop/README.md.
#
# The script sets what these read: W (start_work), METRICS, SIPHON_ERRORS,
# SIPHON_PID, MODULES, CTRL_PORT, HOLD, KEEP, and per UA IP and TONE
# (associative arrays). Where the scripts differ, it sets after sourcing:
#   IN_SIPHON_NS    the command prefix that runs a command where siphon is
#                   (nat.sh: ip netns exec NS); default none
#   UA_NS[NAME]     the network namespace UA NAME runs in; default none
#   UA_MEDIA        1: the UAs' media is examined: fixed RTP ports (RTP[NAME],
#                   100 of them), a short jitter buffer, sndfile dumps of
#                   what they encode and decode in DIR/rec; default 0
#   LADDER_CONTACT  1: ladders have a last column, the Contact; default 0
# and may define cleanup_more KEEP, run by cleanup once every child is
# stopped, before the work dir is removed (KEEP 0) or kept (1).

IN_SIPHON_NS=()
declare -A UA_NS=()
UA_MEDIA=0
LADDER_CONTACT=0

# ---------------------------------------------------------------- results
NPASS=0
NFAIL=0
WHY=""
pass() { echo "PASS $1"; NPASS=$((NPASS + 1)); }
fail() { echo "FAIL $1: $2"; NFAIL=$((NFAIL + 1)); }
info() { echo "  $*"; }
# check NAME CMD...: CMD returns 0 (pass) or sets WHY and returns 1 (fail)
check() {
    local name=$1
    shift
    WHY=""
    if "$@"; then pass "$name"; else fail "$name" "${WHY:-failed}"; fi
}
summary() { echo "$NPASS passed, $NFAIL failed"; }
die() { fail "$1" "$2"; summary; exit 1; }
# finish: the last lines (time taken, where the logs are, the counts);
# status 1 if a check failed
finish() {
    echo "  ($(($(date +%s) - started)) s; logs in $W)"
    summary
    [ "$NFAIL" = 0 ]
}

# need_tools HINT TOOL...: each TOOL is on PATH, else FAIL setup (HINT: how
# to install them) and exit
need_tools() {
    local hint=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die setup "$tool not found ($hint)"
    done
}
need_siphon() { [ -x "$SIPHON" ] || die setup "no siphon binary at $SIPHON (cargo build --bin siphon)"; }
# need_modules MODULE...: each baresip module is in MODULES
need_modules() {
    local m
    for m in "$@"; do
        [ -e "$MODULES/$m.so" ] || die setup "baresip module $MODULES/$m.so missing (BARESIP_MODULES=dir)"
    done
}

# ---------------------------------------------------------------- processes
PIDS=() # our children
declare -A UA_PID UA_DIR CTRL REAPED
alive() { # a process that has not exited (a zombie counts as exited)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
stop_pid() { # stop_pid PID [SECONDS]: TERM, then KILL after SECONDS; reaped
    local pid=$1 t=${2:-3} i
    [ -z "${REAPED[$pid]:-}" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t * 10; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    REAPED[$pid]=1
}
cleanup_more() { :; }
cleanup() {
    local rc=$? pid keep=0
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do [ -n "${REAPED[$pid]:-}" ] || kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 3; done
    { [ "$NFAIL" -gt 0 ] || [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; } && keep=1
    cleanup_more "$keep"
    if [ "$keep" = 1 ]; then
        echo "work dir kept: $W"
    else
        rm -rf "$W"
    fi
    exit "$rc"
}
# start_work NAME: the work dir W (/tmp/NAME.XXXXXX), the clock, and cleanup
# at exit
start_work() {
    W=$(mktemp -d "/tmp/$1.XXXXXX")
    started=$(date +%s)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds
wait_until() {
    local t=$1 i
    shift
    for ((i = 0; i < t * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}
grep_log() { grep -a -q -E "$2" "$1" 2>/dev/null; }
# tcp_open HOST PORT: something accepts TCP connections there
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# udp_bound IP PORT: a UDP socket (of this network namespace) is bound to
# exactly IPv4 IP:PORT (/proc/net/udp writes the address as the 32-bit
# word in host order: byte-reversed on a little-endian machine)
udp_bound() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    awk -v h="$(printf '%02X%02X%02X%02X:%04X' "$d" "$c" "$b" "$a" "$2")" \
        'NR > 1 && $2 == h { f = 1 } END { exit !f }' /proc/net/udp
}
# a column of the last line of a SIPp -trace_stat CSV
sipp_stat() {
    [ -s "$1" ] || { echo "?"; return 0; }
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i } END { print (c ? $c : "?") }' "$1"
}
# start_tcpdump FILE FILTER...: capture what FILTER matches on lo into FILE
# (pcap; tcpdump's own output in FILE.log) as TCPDUMP_PID, one of PIDS;
# 0 once tcpdump says it listens (within 5 s), else WHY. --immediate-mode:
# each packet reaches tcpdump as it comes (without it the kernel hands them
# over a block at a time, and those of the last second are lost when it is
# stopped); then the kernel's ring holds a frame of the snap length per
# packet, so -s 65600 (a whole datagram on lo) and -B 65536 (KiB: 1,000
# frames for when tcpdump is not scheduled in time); -U: each packet is
# written at once; -Z root: root's work dir stays writable. Stopped by
# stop_pid (SIGTERM: it reports its drops, see tcpdump_complete).
start_tcpdump() {
    local f=$1
    shift
    tcpdump -i lo -nn --immediate-mode -s 65600 -B 65536 -U -Z root -w "$f" "$@" >"$f.log" 2>&1 &
    TCPDUMP_PID=$!
    PIDS+=("$TCPDUMP_PID")
    wait_until 5 grep_log "$f.log" "listening on" && return 0
    WHY="tcpdump did not start: $(head -c 200 "$f.log" | tr '\n' ' ')"
    return 1
}
# tcpdump_complete FILE: the tcpdump that wrote FILE (start_tcpdump, now
# stopped) reported that the kernel dropped none of the packets, else WHY
tcpdump_complete() {
    grep -q '^0 packets dropped by kernel' "$1.log" && return 0
    WHY="tcpdump's capture is incomplete or it did not stop cleanly: $(tail -3 "$1.log" | tr '\n' ' ')"
    return 1
}

# ---------------------------------------------------------------- siphon
scrape() { "${IN_SIPHON_NS[@]}" curl -s --max-time 2 "http://$METRICS/metrics" 2>/dev/null || true; }
metric() { # the sum of a metric over its label sets (shards)
    scrape | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
# the counters in SIPHON_ERRORS (why siphon could not deliver), "name=value ..."
siphon_errors() { local m; for m in $SIPHON_ERRORS; do printf '%s=%s ' "$m" "$(metric "$m")"; done; }
# siphon_errors_moved BEFORE: "name +N ..." for those that moved since BEFORE
siphon_errors_moved() {
    local now
    now=$(siphon_errors)
    awk -v a="$1" -v b="$now" 'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) { split(x[i], p, "="); split(y[i], q, "="); if (q[2] != p[2]) printf "%s +%d ", p[1], q[2] - p[2] } }'
}
aor() { "${IN_SIPHON_NS[@]}" curl -s --max-time 2 "http://$METRICS/admin/aor/$1@example.com" 2>/dev/null || true; }
# start_siphon DIR: $SIPHON with DIR/siphon.toml (its log: DIR/log) as
# SIPHON_PID, up once it answers /health at $METRICS and listens on
# $P_IP:5060. siphon's listeners use SO_REUSEPORT: a siphon left running
# would share them (and answer /health), so the addresses must be free.
start_siphon() {
    local a
    for a in "$P_IP 5060" "${METRICS%:*} ${METRICS#*:}"; do
        if tcp_open $a; then
            die "siphon starts" "something already listens on TCP ${a/ /:} (a siphon left running?)"
        fi
    done
    "$SIPHON" --config "$1/siphon.toml" >"$1/log" 2>&1 &
    SIPHON_PID=$!
    PIDS+=("$SIPHON_PID")
    siphon_up() { alive "$SIPHON_PID" && [ "$(curl -s --max-time 1 "http://$METRICS/health")" = ok ] && tcp_open "$P_IP" 5060; }
    wait_until 15 siphon_up || die "siphon starts" "not listening on $P_IP:5060 and $METRICS after 15 s: $(tail -3 "$1/log" | tr '\n' ' ')"
}
# stop_siphon DIR [KILL_S]: SIGTERM to SIPHON_PID (its log: DIR/log); 0 if it
# exits 0 within 5 s, else WHY. One still running then is stopped at once
# (stop_pid, KILL after KILL_S) if KILL_S is given, else left to cleanup.
stop_siphon() {
    local rc=0 i
    alive "$SIPHON_PID" || { WHY="siphon is not running any more: $(tail -2 "$1/log" | tr '\n' ' ')"; return 1; }
    kill -TERM "$SIPHON_PID"
    for ((i = 0; i < 50; i++)); do alive "$SIPHON_PID" || break; sleep 0.1; done
    if alive "$SIPHON_PID"; then
        WHY="still running 5 s after SIGTERM"
        [ -z "${2:-}" ] || stop_pid "$SIPHON_PID" "$2"
        return 1
    fi
    wait "$SIPHON_PID" || rc=$?
    REAPED[$SIPHON_PID]=1
    [ "$rc" = 0 ] || { WHY="exit status $rc"; return 1; }
}
# siphon_exits_clean DIR [KILL_S]: stop_siphon, and its log has no panic or ERROR
siphon_exits_clean() {
    stop_siphon "$@" || return 1
    ! grep -q -E 'panicked|ERROR' "$1/log" || { WHY="$(grep -m1 -E 'panicked|ERROR' "$1/log")"; return 1; }
}

# ---------------------------------------------------------------- baresip
# ua_config NAME DIR: the config of a headless baresip for NAME: SIP on
# IP[NAME]:5060, G.711, a TONE[NAME] Hz sine out, a null sink in, no video,
# ctrl_tcp on IP[NAME]:CTRL_PORT (and the UA_MEDIA lines)
ua_config() {
    local name=$1 d=$2
    cat <<EOF
poll_method		epoll
net_interface		${IP[$name]}
sip_listen		${IP[$name]}:5060
call_local_timeout	20
call_max_calls		4
audio_player		aubridge,$name
audio_alert		aubridge,$name
audio_source		ausine,${TONE[$name]}
ausrc_srate		48000
ausrc_channels		2
auplay_srate		48000
auplay_channels		1
audio_level		no
EOF
    if [ "$UA_MEDIA" = 1 ]; then
        cat <<EOF
rtp_ports		${RTP[$name]}-$((RTP[$name] + 99))
jitter_buffer_delay	5-10
EOF
    fi
    cat <<EOF
rtp_stats		no
statmode_default	off
module_path		$MODULES
module			g711.so
module			ausine.so
module			aubridge.so
EOF
    if [ "$UA_MEDIA" = 1 ]; then
        echo "module			sndfile.so"
    fi
    cat <<EOF
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		${IP[$name]}:$CTRL_PORT
EOF
    if [ "$UA_MEDIA" = 1 ]; then
        echo "snd_path		$d/rec"
    fi
}
# launch_ua NAME DIR URI PASSWORD OUTBOUND: a headless baresip (in UA_NS[NAME]
# if set) with its config dir DIR, registering as URI through OUTBOUND;
# quits by itself after 120 s
launch_ua() {
    local name=$1 d=$2 in_ns=()
    mkdir -p "$d"
    if [ "$UA_MEDIA" = 1 ]; then
        mkdir -p "$d/rec"
    fi
    ua_config "$name" "$d" >"$d/config"
    echo "<$3>;auth_pass=$4;outbound=\"$5\";regint=60;answermode=auto" >"$d/accounts"
    [ -z "${UA_NS[$name]:-}" ] || in_ns=(ip netns exec "${UA_NS[$name]}")
    # not through a function: $! must be baresip's PID
    "${in_ns[@]}" stdbuf -oL -eL baresip -f "$d" -s -t 120 >"$d/log" 2>&1 &
    UA_PID[$name]=$!
    UA_DIR[$name]=$d
    PIDS+=("$!")
}
# ua_registered NAME PROTO: within 10 s baresip logs a 200 OK for NAME's
# REGISTER over PROTO (UDP, TCP); else WHY with what it logged instead
ua_registered() {
    local name=$1
    wait_until 10 grep_log "${UA_DIR[$name]}/log" "$name@example.com: \{[0-9]+/$2/v4\} 200 OK" && return 0
    WHY="no 200 OK for its REGISTER within 10 s; baresip says: $(grep -a -E "reg:|$name@example.com:" "${UA_DIR[$name]}/log" | tr -d '\033' | tail -2 | tr '\n' ' ')"
    return 1
}
# (each script opens a UA's control connection its own way: ctrl_open NAME
# sets CTRL[NAME] to a file descriptor that reaches its ctrl_tcp, and writes
# its events to NAME/events)
ctrl_close() { local fd=${CTRL[$1]:-}; [ -n "$fd" ] && exec {fd}>&-; CTRL[$1]=""; }
# ctrl NAME COMMAND [PARAMS]: a netstring-framed JSON command
ctrl() {
    local j="{\"command\":\"$2\",\"params\":\"${3:-}\",\"token\":\"$2\"}"
    printf '%d:%s,' "${#j}" "$j" >&"${CTRL[$1]}"
}
evcount() { { grep -a -o "\"type\":\"$2\"" "${UA_DIR[$1]}/events" 2>/dev/null || true; } | wc -l; }
ev_more() { [ "$(evcount "$1" "$2")" -gt "$3" ]; }
events_of() { { grep -a -o '"type":"[A-Z_]*"[^}]*"param":"[^"]*"' "${UA_DIR[$1]}/events" 2>/dev/null || true; } | sed 's/"type":"\([A-Z_]*\)".*"param":"\([^"]*\)"/\1(\2)/' | tr '\n' ' '; }
log_size() { stat -c %s "${UA_DIR[$1]}/log"; }
# the slice of a UA's log since byte OFFSET
slice() { tail -c +$(($2 + 1)) "${UA_DIR[$1]}/log"; }

# ladder NAME LOG: one line per SIP message in baresip's trace (-s):
# dir|transport|src|dst|start line|CSeq|Call-ID|To tag|SDP c= address, and
# with LADDER_CONTACT=1 |Contact.
# dir is ">" (sent by NAME) or "<" (received): a request NAME sends and a
# response it receives have NAME's address in the top Via. (The trace's
# addresses do not tell: over TCP baresip's end of a connection it opened,
# and siphon's, are 127.0.0.1:ephemeral.)
LADDER_AWK='
function flush() {
    if (start != "") {
        isreq = start !~ /^SIP\/2\.0 /
        mine = index(via, me ":") == 1
        print (isreq == mine ? ">" : "<") "|" tp "|" src "|" dst "|" start "|" cseq "|" callid "|" totag "|" conn (with_contact ? "|" contact : "")
    }
    start = ""; inmsg = 0
}
{ sub(/\r$/, "") }
/^(UDP|TCP|TLS) [0-9.]+:[0-9]+ -> [0-9.]+:[0-9]+$/ {
    flush(); tp = $1; src = $2; dst = $4; inmsg = 1
    cseq = callid = totag = conn = via = contact = ""
    if ((getline line) > 0) { sub(/\r$/, "", line); start = line }
    next
}
!inmsg { next }
/\033\[;m/ { flush(); next }
/^(CSeq|cseq):/ { sub(/^[^:]*: */, ""); cseq = $0; next }
/^(Call-ID|i):/ { sub(/^[^:]*: */, ""); callid = $0; next }
/^(Via|v):/ { if (via == "" && match($0, /SIP\/2\.0\/[A-Za-z]+ +[^ ;,]+/)) { via = substr($0, RSTART, RLENGTH); sub(/^[^ ]+ +/, "", via) }; next }
/^(To|t):/ { if (match($0, /;tag=[^;> ]+/)) totag = substr($0, RSTART + 5, RLENGTH - 5); next }
/^(Contact|m):/ { sub(/^[^:]*: */, ""); contact = $0; next }
/^c=IN IP4 / { conn = $3; next }
END { flush() }'
ladder() { awk -v me="${IP[$1]}" -v with_contact="$LADDER_CONTACT" "$LADDER_AWK" "$2"; }

# ---------------------------------------------------------------- calls
# The steps of a call between alice and bob (either way) through siphon.
# call_dial CALLER CALLEE: note where both UAs' logs and events are
# (CALL_OFF, CALL_E0, CALL_C0 [NAME]) and siphon's error counters (CALL_K0),
# CALLER dials CALLEE, and within 10 s both have the call (CALL_UP=1) or
# the caller has given up (CALL_UP=0).
declare -A CALL_OFF CALL_E0 CALL_C0
CALL_K0=""
CALL_UP=0
CALL_CALLER=""
call_established() { ev_more alice CALL_ESTABLISHED "${CALL_E0[alice]}" && ev_more bob CALL_ESTABLISHED "${CALL_E0[bob]}"; }
call_settled() { call_established || ev_more "$CALL_CALLER" CALL_CLOSED "${CALL_C0[$CALL_CALLER]}"; }
call_closed() { ev_more alice CALL_CLOSED "${CALL_C0[alice]}" && ev_more bob CALL_CLOSED "${CALL_C0[bob]}"; }
call_dial() {
    local ua
    for ua in alice bob; do
        CALL_OFF[$ua]=$(log_size "$ua")
        CALL_E0[$ua]=$(evcount "$ua" CALL_ESTABLISHED)
        CALL_C0[$ua]=$(evcount "$ua" CALL_CLOSED)
    done
    CALL_K0=$(siphon_errors)
    CALL_CALLER=$1
    CALL_UP=0
    ctrl "$1" dial "sip:$2@example.com"
    wait_until 10 call_settled || true
    if call_established; then CALL_UP=1; fi
}
# call_end HANGER: once the call has been up long enough, HANGER hangs up
# and within 8 s both have ended it; a call that did not come up is ended
# at both UAs
call_end() {
    local other
    [ "$1" = alice ] && other=bob || other=alice
    if [ "$CALL_UP" = 1 ]; then
        ctrl "$1" hangup
        wait_until 8 call_closed || true
        # a call left over (a BYE that never arrived) must not spill into
        # the next one
        ev_more "$other" CALL_CLOSED "${CALL_C0[$other]}" || { ctrl "$other" hangup; sleep 1; }
    else
        # end whatever is left of the attempt at both ends
        ev_more alice CALL_CLOSED "${CALL_C0[alice]}" || { ctrl alice hangup; wait_until 5 ev_more alice CALL_CLOSED "${CALL_C0[alice]}" || true; }
        ev_more bob CALL_CLOSED "${CALL_C0[bob]}" || { ctrl bob hangup; sleep 0.5; }
    fi
}
# call_files DIR N: both UAs' logs of the call (DIR/callN.NAME.log) and
# their ladders (DIR/callN.NAME.ladder)
call_files() {
    local d=$1 n=$2
    slice alice "${CALL_OFF[alice]}" >"$d/call$n.alice.log"
    slice bob "${CALL_OFF[bob]}" >"$d/call$n.bob.log"
    ladder alice "$d/call$n.alice.log" >"$d/call$n.alice.ladder"
    ladder bob "$d/call$n.bob.log" >"$d/call$n.bob.ladder"
}
# both_established DIR N CALLER CALLEE: both logs of call N say so (else WHY)
both_established() {
    local d=$1 n=$2 caller=$3 callee=$4
    grep_log "$d/call$n.$caller.log" "$caller@example.com: Call established: sip:$callee@example.com" ||
        { WHY="$caller's log has no 'Call established'"; return 1; }
    grep_log "$d/call$n.$callee.log" "$callee@example.com: Call established: sip:$caller@example.com" ||
        { WHY="$callee's log has no 'Call established'"; return 1; }
}
# bye_ended DIR N HANGER OTHER: after HANGER's BYE reached OTHER, HANGER got
# its 200 OK and the call ended at both (else WHY)
bye_ended() {
    local d=$1 n=$2 hanger=$3 other=$4 hl="$1/call$2.$3.ladder"
    awk -F'|' '$1 == "<" && $5 ~ /^SIP\/2.0 200/ && $6 ~ / BYE$/' "$hl" | grep -q . ||
        { WHY="$hanger got no 200 OK for its BYE: $(awk -F'|' '$6 ~ / BYE$/' "$hl" | cut -d'|' -f1,3-6 | tr '\n' ';')"; return 1; }
    ev_more "$other" CALL_CLOSED "${CALL_C0[$other]}" || { WHY="$other still has the call"; return 1; }
    grep_log "$d/call$n.alice.log" "Call with sip:bob@example.com[^ ]* terminated" ||
        { WHY="alice's log has no 'Call ... terminated'"; return 1; }
    grep_log "$d/call$n.bob.log" "Call with sip:alice@example.com[^ ]* terminated" ||
        { WHY="bob's log has no 'Call ... terminated'"; return 1; }
}
