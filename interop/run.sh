#!/usr/bin/env bash
# Interop: siphon (stateful, registrar, Digest) with softphones nobody on
# the project wrote: baresip (libre) and sipsak. See interop/README.md.
#
# For each of TRANSPORTS (udp, then tcp), two baresip UAs register through
# siphon with Digest as sip:alice@example.com and sip:bob@example.com (outbound
# proxy = siphon), alice calls bob twice (bob answers automatically, siphon
# challenges the INVITE with 407), each call up for HOLD seconds with a sine
# tone each way (alice 440 Hz, bob 660 Hz) that must flow directly between
# the UAs; the first call is ended by the caller, the second by the callee.
# Then carol registers with a wrong password (no binding), and sipsak sends
# OPTIONS (UDP and TCP) and REGISTERs with Digest (right and wrong password,
# then expires=0). siphon's metrics and admin API are checked along the way.
#
#   bash interop/run.sh                        # after cargo build --bin siphon
#   SIPHON=/path/to/siphon TRANSPORTS=tcp HOLD=2 KEEP=1 bash interop/run.sh
#   PROBE_SHA256=1 SIPHON_LOG_LEVEL=debug bash interop/run.sh
#
# Prints `PASS name` or `FAIL name: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. The work dir (configs, logs with baresip's SIP
# trace, per-call ladders, audio dumps) is kept when a check fails or KEEP=1.
#
# Loopback only: siphon 127.0.4.1:5060 (UDP and TCP), metrics and admin API
# 127.0.4.1:9070; alice 127.0.4.2 (SIP 5060, control 4444, RTP 20000-20099),
# bob 127.0.4.3 (SIP 5060, control 4444, RTP 20200-20299), carol 127.0.4.4,
# sipsak 127.0.4.5. Every process it starts is stopped by PID at exit; every
# wait is bounded; each baresip also quits by itself after 120 s (-t).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=interop/lib.sh
. interop/lib.sh
SIPHON="${SIPHON:-target/debug/siphon}"
TRANSPORTS="${TRANSPORTS:-udp tcp}"
HOLD="${HOLD:-3}"
KEEP="${KEEP:-0}"
PROBE_SHA256="${PROBE_SHA256:-0}"
SIPHON_LOG_LEVEL="${SIPHON_LOG_LEVEL:-info}"
MODULES="${BARESIP_MODULES:-/usr/lib/baresip/modules}"

P_IP=127.0.4.1
METRICS=127.0.4.1:9070
declare -A IP=([alice]=127.0.4.2 [bob]=127.0.4.3 [carol]=127.0.4.4 [sha256]=127.0.4.12)
declare -A RTP=([alice]=20000 [bob]=20200 [carol]=20400 [sha256]=20600)
declare -A TONE=([alice]=440 [bob]=660 [carol]=880 [sha256]=440)
declare -A PASSWORD=([alice]=alice-secret [bob]=bob-secret [carol]=carol-secret [dave]=dave-secret)
SIPSAK_IP=127.0.4.5
CTRL_PORT=4444
UA_MEDIA=1 # RTP and the tones are checked
# the counters that tell why siphon could not deliver
SIPHON_ERRORS="siphon_tcp_connect_errors_total siphon_branch_transport_errors_total siphon_branch_timeouts_total siphon_send_errors_total siphon_dropped_total siphon_mesh_handoffs_total"
CALLS_UP=0

need_tools "apt-get install baresip sipsak curl" baresip sipsak curl stdbuf od awk
need_siphon
need_modules g711 ausine aubridge sndfile account menu ctrl_tcp

start_work siphon-interop

# ---------------------------------------------------------------- siphon
mkdir -p "$W/siphon/journal"
cat >"$W/siphon/users.txt" <<EOF
alice:password=${PASSWORD[alice]}
bob:password=${PASSWORD[bob]}
carol:password=${PASSWORD[carol]}
dave:password=${PASSWORD[dave]}
EOF
cat >"$W/siphon/siphon.toml" <<EOF
# written by interop/run.sh
[server]
user_agent = "Siphon"
log_level = "$SIPHON_LOG_LEVEL"
# two shards on any machine, so that the cross-shard paths run (e.g. a TCP
# binding whose connection another shard owns)
shards = 2

[[listen]]
transport = "udp"
addr = "$P_IP:5060"

[[listen]]
transport = "tcp"
addr = "$P_IP:5060"

[proxy]
mode = "stateful"
record_route = true

[registrar]
domains = ["example.com"]
journal_dir = "journal"

[auth]
realm = "example.com"
register = true
requests = ["INVITE"]
# baresip 1.0.0 (libre 1.1.0) fails any Digest challenge set that has a
# non-MD5 algorithm in it, even beside an MD5 one: see interop/README.md.
algorithms = ["MD5"]
users_file = "users.txt"

[metrics]
listen = "$METRICS"
EOF
start_siphon "$W/siphon"
pass "siphon starts (stateful, registrar, Digest MD5; UDP+TCP $P_IP:5060)"

# ---------------------------------------------------------------- baresip
# start_ua NAME TRANSPORT PASSWORD [USER] [PROXY]: a headless baresip in its
# own config dir, registering as USER@example.com (default NAME) through PROXY
start_ua() {
    local name=$1 tp=$2 pw=$3 user=${4:-$1} proxy=${5:-$P_IP} uri ob
    uri="sip:$user@example.com"
    ob="sip:$proxy"
    if [ "$tp" = tcp ]; then
        uri="$uri;transport=tcp"
        ob="$ob;transport=tcp"
    fi
    launch_ua "$name" "$W/$tp/$name" "$uri" "$pw" "$ob"
}
# ctrl_open NAME: connect to the UA's ctrl_tcp; its events go to NAME/events
ctrl_open() {
    local name=$1 fd
    wait_until 10 tcp_open "${IP[$name]}" "$CTRL_PORT" || return 1
    exec {fd}<>"/dev/tcp/${IP[$name]}/$CTRL_PORT"
    CTRL[$name]=$fd
    cat <&"$fd" >"${UA_DIR[$name]}/events" &
    PIDS+=("$!")
}

# wait_registered NAME TP: baresip says 200 OK and siphon has the binding
wait_registered() {
    local name=$1 tp=$2
    ua_registered "$name" "$(echo "$tp" | tr a-z A-Z)" || return 1
    local b
    b=$(aor "$name")
    echo "$b" >"${UA_DIR[$name]}/aor.json"
    if ! echo "$b" | grep -q "\"transport\":\"$tp\"" || ! echo "$b" | grep -q "\"contact\":\"sip:$name-[^\"]*@${IP[$name]}:5060"; then
        WHY="baresip got 200 OK but /admin/aor/$name@example.com shows no $tp binding at ${IP[$name]}:5060: $b"
        return 1
    fi
}

# tone_of WAV: "<loud seconds> <Hz>" of a 16-bit 8 kHz mono dump (20 ms
# frames louder than 2000; frequency from upward zero crossings)
TONE_AWK='
{ for (i = 1; i <= NF; i++) {
    v = $i + 0; a = v < 0 ? -v : v; if (a > mx) mx = a
    if (n > 0 && prev < 0 && v >= 0) cr++
    prev = v; n++
    if (n % 160 == 0) { if (mx > 2000) { loud += 160; lcr += cr }; mx = 0; cr = 0 }
} }
END { if (loud == 0) print "0 0"; else printf "%.2f %.0f\n", loud / 8000, lcr / (loud / 8000) }'
tone_of() { od -An -v -t d2 -j 44 "$1" | awk "$TONE_AWK"; }

# ---------------------------------------------------------------- a call
# call TP N HANGER: alice calls bob; HANGER (alice or bob) hangs up
call() {
    local tp=$1 n=$2 hanger=$3 other name peer
    local tag="$tp call$n ($([ "$hanger" = alice ] && echo "caller" || echo "callee") hangs up)"
    [ "$hanger" = alice ] && other=bob || other=alice
    local r_a r_b
    r_a=$(evcount alice CALL_RTPESTAB)
    r_b=$(evcount bob CALL_RTPESTAB)
    call_dial alice bob
    local up=$CALL_UP m0 m1
    [ "$up" != 1 ] || CALLS_UP=$((CALLS_UP + 1))
    m0=$(($(metric siphon_udp_datagrams_received_total) + $(metric siphon_tcp_messages_received_total)))
    if [ "$up" = 1 ]; then
        sleep "$HOLD"
        m1=$(($(metric siphon_udp_datagrams_received_total) + $(metric siphon_tcp_messages_received_total)))
    else
        m1=$m0
    fi
    call_end "$hanger"
    local d="$W/$tp"
    call_files "$d" "$n"

    check_established() {
        if [ "$up" != 1 ]; then
            WHY="no CALL_ESTABLISHED at both ends; alice saw: $(events_of alice | tail -c 200); bob saw: $(events_of bob | tail -c 200); alice's ladder: $(cut -d'|' -f1,5 "$d/call$n.alice.ladder" | tr '\n' ';' | tail -c 400); bob's ladder: $(cut -d'|' -f1,5 "$d/call$n.bob.ladder" | tr '\n' ';' | tail -c 300); siphon counters that moved: $(siphon_errors_moved "$CALL_K0")"
            return 1
        fi
        both_established "$d" "$n" alice bob
    }
    check "$tag: INVITE with Digest (407), bob answers, established at both UAs" check_established
    if [ "$up" != 1 ]; then
        # the same list of checks in every run: those that need the call fail
        local c
        for c in "RTP flows directly between alice and bob, not through siphon" \
            "each UA decodes the other's tone (alice hears 660 Hz, bob 440 Hz)" \
            "$hanger's BYE reaches $other through siphon, 200 OK back, call ended at both" \
            "no stray ACK reaches the callee"; do
            fail "$tag: $c" "not checked: the call was not established"
        done
        return 0
    fi

    check_rtp() {
        local who peer from port lo
        for who in alice bob; do
            [ "$who" = alice ] && peer=bob || peer=alice
            ev_more "$who" CALL_RTPESTAB "$([ "$who" = alice ] && echo "$r_a" || echo "$r_b")" ||
                { WHY="$who got no RTP (no CALL_RTPESTAB event)"; return 1; }
            # baresip 1.0.0 binds RTP to 0.0.0.0: on loopback its packets
            # leave from 127.0.0.1, from the port it offered in its SDP
            from=$(grep -a -o "incoming rtp for 'audio' established, receiving from [0-9.]*:[0-9]*" "$d/call$n.$who.log" | tail -1 | awk '{print $NF}')
            port=${from##*:}
            lo=${RTP[$peer]}
            if [ -z "$from" ] || [ "${from%:*}" = "$P_IP" ] || [ "$port" -lt "$lo" ] || [ "$port" -gt $((lo + 99)) ]; then
                WHY="$who receives RTP from '${from:-nothing}', not from $peer's RTP ports $lo-$((lo + 99))"
                return 1
            fi
            # the SDP in every message either UA saw names a UA, never siphon
            local bad
            bad=$(awk -F'|' -v a="${IP[alice]}" -v b="${IP[bob]}" '$9 != "" && $9 != a && $9 != b { print $9 }' "$d/call$n.$who.ladder" | head -1)
            [ -z "$bad" ] || { WHY="an SDP $who saw has c=IN IP4 $bad (not a UA)"; return 1; }
            awk -F'|' -v p="${IP[$peer]}" '$1 == "<" && $9 == p' "$d/call$n.$who.ladder" | grep -q . ||
                { WHY="no SDP with c=IN IP4 ${IP[$peer]} ($peer) reached $who"; return 1; }
        done
        # 3 s of G.711 both ways is ~300 RTP packets; SIP in that time is ~0
        if [ $((m1 - m0)) -ge 20 ]; then
            WHY="siphon received $((m1 - m0)) UDP datagrams/TCP messages while the call was up for ${HOLD}s (RTP through siphon?)"
            return 1
        fi
    }
    check "$tag: RTP flows directly between alice and bob, not through siphon" check_rtp

    check_audio() {
        local who peer wav t
        for who in alice bob; do
            [ "$who" = alice ] && peer=bob || peer=alice
            wav=$(grep -a -o "dumping decode audio to .*\.wav" "$d/call$n.$who.log" | tail -1 | sed 's/^dumping decode audio to //')
            [ -n "$wav" ] && [ -f "$wav" ] || { WHY="$who has no decoded-audio dump"; return 1; }
            t=$(tone_of "$wav")
            set -- $t
            if ! awk -v s="$1" -v f="$2" -v want="${TONE[$peer]}" -v hold="$HOLD" \
                'BEGIN { exit !(s >= hold / 2 && f > want * 0.9 && f < want * 1.1) }'; then
                WHY="$who decoded $1 s of audio at ~$2 Hz, want >= $(awk -v h="$HOLD" 'BEGIN{print h/2}') s of $peer's ${TONE[$peer]} Hz ($wav)"
                return 1
            fi
        done
    }
    check "$tag: each UA decodes the other's tone (alice hears 660 Hz, bob 440 Hz)" check_audio

    check_bye() {
        local hl="$d/call$n.$hanger.ladder" ol="$d/call$n.$other.ladder"
        awk -F'|' '$1 == ">" && $5 ~ /^BYE /' "$hl" | grep -q . ||
            { WHY="$hanger sent no BYE"; return 1; }
        if ! awk -F'|' '$1 == "<" && $5 ~ /^BYE /' "$ol" | grep -q .; then
            WHY="$hanger's BYE never reached $other; $hanger's ladder from the BYE: $(awk -F'|' '$5 ~ /^BYE /{p=1} p' "$hl" | cut -d'|' -f1,3-6 | tr '\n' ';' | tail -c 500)"
            return 1
        fi
        bye_ended "$d" "$n" "$hanger" "$other"
    }
    check "$tag: $hanger's BYE reaches $other through siphon, 200 OK back, call ended at both" check_bye

    check_no_stray_ack() {
        # every ACK bob receives must be for a response bob sent (his To
        # tag); the ACK for siphon's own 407 ends at siphon (RFC 3261 17.2.1)
        local stray
        stray=$(awk -F'|' '
            $1 == ">" && $5 ~ /^SIP\/2.0 / { mine[$7 "|" $8] = 1 }
            $1 == "<" && $5 ~ /^ACK / { ack[++n] = $0 }
            END { for (i = 1; i <= n; i++) { split(ack[i], f, "|"); if (!((f[7] "|" f[8]) in mine)) print ack[i] } }' "$d/call$n.bob.ladder" | head -1)
        if [ -n "$stray" ]; then
            IFS='|' read -r _ _ s _ st cs _ tt _ <<<"$stray"
            WHY="bob received '$st' (CSeq $cs, To tag $tt, from $s) for a response he never sent"
            if awk -F'|' -v px="$P_IP:" -v t="$tt" '$1 == "<" && $5 ~ /^SIP\/2.0 407/ && $8 == t' "$d/call$n.alice.ladder" | grep -q .; then
                WHY="$WHY: the ACK for siphon's own 407 (To tag $tt) was forwarded to the callee instead of being absorbed (RFC 3261 17.2.1)"
            fi
            return 1
        fi
    }
    check "$tag: no stray ACK reaches the callee" check_no_stray_ack
}

# ---------------------------------------------------------------- runs
# the shard whose siphon_tcp_accepted_total grew since "$1" (a snapshot)
accepted() { scrape | awk '/^siphon_tcp_accepted_total\{/ { printf "%s ", $2 }'; }
grown() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) if (y[i] > x[i]) { print i - 1; exit } print "?" }'; }

for tp in $TRANSPORTS; do
    acc=$(accepted)
    start_ua alice "$tp" "${PASSWORD[alice]}"
    check "$tp: alice registers with Digest through siphon (binding in /admin/aor)" wait_registered alice "$tp"
    if [ "$tp" = tcp ]; then
        # siphon's shards own TCP connections (SO_REUSEPORT spreads them by
        # address hash). Place bob's connection on a shard other than
        # alice's, so that the INVITE (on alice's shard) must reach a
        # binding whose connection another shard holds: every run tests
        # that path instead of half of them. Up to 8 starts of bob.
        sa=$(grown "$acc" "$(accepted)")
        sb="?"
        for ((try = 1; try <= 8; try++)); do
            acc=$(accepted)
            start_ua bob "$tp" "${PASSWORD[bob]}"
            wait_registered bob "$tp" || break
            sb=$(grown "$acc" "$(accepted)")
            [ "$sb" = "$sa" ] && [ "$sa" != "?" ] && [ "$try" -lt 8 ] || break
            stop_pid "${UA_PID[bob]}" 5
        done
        info "tcp: alice's connection is on siphon shard $sa, bob's on shard $sb (bob started $try times)"
    else
        start_ua bob "$tp" "${PASSWORD[bob]}"
    fi
    check "$tp: bob registers with Digest through siphon (binding in /admin/aor)" wait_registered bob "$tp"
    if ! ctrl_open alice || ! ctrl_open bob; then
        fail "$tp: baresip control" "ctrl_tcp on ${IP[alice]}/${IP[bob]}:$CTRL_PORT not reachable"
    else
        call "$tp" 1 alice
        call "$tp" 2 bob
        ctrl alice quit
        ctrl bob quit
    fi
    uas_gone() { ! alive "${UA_PID[alice]}" && ! alive "${UA_PID[bob]}"; }
    wait_until 10 uas_gone || true
    check_unregistered() {
        local who b
        for who in alice bob; do
            alive "${UA_PID[$who]}" && { WHY="$who did not quit within 10 s"; return 1; }
            b=$(aor "$who")
            echo "$b" | grep -q '"bindings":\[\]' ||
                { WHY="$who's binding is still there after it unregistered (expires=0, Digest): $b; $who's last REGISTER answers: $(ladder "$who" "${UA_DIR[$who]}/log" | awk -F'|' '$6 ~ /REGISTER$/ && $5 ~ /^SIP/' | tail -2 | cut -d'|' -f5 | tr '\n' ';')"; return 1; }
        done
    }
    check "$tp: alice and bob quit and unregister (bindings gone)" check_unregistered
    stop_pid "${UA_PID[alice]}"
    stop_pid "${UA_PID[bob]}"
    ctrl_close alice
    ctrl_close bob
done

# ---------------------------------------------------------------- carol
af0=$(metric siphon_auth_failures_total)
start_ua carol udp wrong-password
check_carol() {
    local l="${UA_DIR[carol]}/log"
    if ! wait_until 10 grep_log "$l" "reg: sip:carol@example.com: 40[13]"; then
        WHY="baresip reported no refused registration within 10 s: $(grep -a -E 'reg:|carol@example.com:' "$l" | tr -d '\033' | tail -2 | tr '\n' ' ')"
        return 1
    fi
    grep_log "$l" '^Authorization: Digest username="carol"' || { WHY="carol never sent credentials"; return 1; }
    local b
    b=$(aor carol)
    echo "$b" | grep -q '"bindings":\[\]' || { WHY="carol has a binding with a wrong password: $b"; return 1; }
    [ "$(metric siphon_auth_failures_total)" -gt "$af0" ] || { WHY="siphon_auth_failures_total did not move"; return 1; }
    grep_log "$l" "reg: sip:carol@example.com: 403" || { WHY="refused, but not with 403: $(grep -a 'reg:' "$l" | tr -d '\033' | tail -1)"; return 1; }
}
check "carol (baresip, wrong password) gets 403 and no binding" check_carol
stop_pid "${UA_PID[carol]}"

# ---------------------------------------------------------------- sipsak
mkdir -p "$W/sipsak"
sipsak_run() { # sipsak_run LOGNAME ARGS...: rc of sipsak, output kept
    local out="$W/sipsak/$1.log" rc=0
    shift
    timeout 20 sipsak -vv -k "$SIPSAK_IP" -H "$SIPSAK_IP" "$@" >"$out" 2>&1 || rc=$?
    return "$rc"
}
sipsak_said() { # sipsak_said LOGNAME: the status lines and errors of a run, on one line
    grep -a -E '^SIP/2.0|error' "$W/sipsak/$1.log" | tr '\n' ' ' | head -c 300
}
check_options() {
    local rc=0
    sipsak_run "options-$1" -E "$1" -s "sip:$P_IP" || rc=$?
    [ "$rc" = 0 ] && grep -q '^SIP/2.0 200 OK' "$W/sipsak/options-$1.log" && return 0
    WHY="sipsak exit $rc: $(grep -a -E '^SIP/2.0|error|timeout' "$W/sipsak/options-$1.log" | head -2 | tr '\n' ' ')"
    return 1
}
check "sipsak OPTIONS sip:$P_IP over UDP: 200" check_options udp
check "sipsak OPTIONS sip:$P_IP over TCP: 200" check_options tcp
register() { # register LOGNAME PASSWORD EXPIRES
    sipsak_run "$1" -U -s "sip:dave@$P_IP" -u dave -a "$2" -C "sip:dave@$SIPSAK_IP:5070" -x "$3"
}
check_reg_ok() {
    local rc=0 b
    register register-ok "${PASSWORD[dave]}" 60 || rc=$?
    [ "$rc" = 0 ] || { WHY="sipsak exit $rc: $(sipsak_said register-ok)"; return 1; }
    b=$(aor dave)
    echo "$b" | grep -q "\"contact\":\"sip:dave@$SIPSAK_IP:5070\"" || { WHY="200 OK but no binding: $b"; return 1; }
}
check "sipsak REGISTER dave with Digest: 401, then 200 and a binding" check_reg_ok
check_reg_wrong() {
    local rc=0
    register register-wrong wrong-password 60 || rc=$?
    [ "$rc" != 0 ] || { WHY="sipsak got a 200 OK with a wrong password"; return 1; }
    grep -q '^SIP/2.0 403' "$W/sipsak/register-wrong.log" ||
        { WHY="sipsak exit $rc without a 403: $(sipsak_said register-wrong)"; return 1; }
    ! grep -q '^SIP/2.0 200' "$W/sipsak/register-wrong.log" || { WHY="a 200 OK came back"; return 1; }
}
check "sipsak REGISTER dave with a wrong password: 403, no 200" check_reg_wrong
check_reg_zero() {
    local rc=0 b
    register register-expires0 "${PASSWORD[dave]}" 0 || rc=$?
    [ "$rc" = 0 ] || { WHY="sipsak exit $rc: $(sipsak_said register-expires0)"; return 1; }
    b=$(aor dave)
    echo "$b" | grep -q '"bindings":\[\]' || { WHY="binding still there: $b"; return 1; }
}
check "sipsak REGISTER dave expires=0 with Digest: 200, binding gone" check_reg_zero

# ---------------------------------------------------------------- SHA-256
# PROBE_SHA256=1: not a check, a record of what this baresip does when a
# challenge offers SHA-256 (siphon's default: SHA-256, then MD5). A second
# siphon on 127.0.4.11 (metrics :9071), alice (right password) from
# 127.0.4.12 registers over UDP, then dials bob (who never registers there).
if [ "$PROBE_SHA256" = 1 ]; then
    sd="$W/sha256-siphon"
    mkdir -p "$sd/journal"
    sed -e "s/$P_IP/127.0.4.11/g" -e 's/:9070"/:9071"/' -e '/^algorithms/d' -e '/^# baresip 1.0.0/,/^# non-MD5/d' \
        -e 's#^users_file = .*#users_file = "../siphon/users.txt"#' "$W/siphon/siphon.toml" >"$sd/siphon.toml"
    "$SIPHON" --config "$sd/siphon.toml" >"$sd/log" 2>&1 &
    sp=$!
    PIDS+=("$sp")
    if wait_until 10 tcp_open 127.0.4.11 5060; then
        start_ua sha256 udp "${PASSWORD[alice]}" alice 127.0.4.11
        wait_until 8 grep_log "${UA_DIR[sha256]}/log" 'alice@example.com: \{0/UDP/v4\} 200 OK|reg: sip:alice@example.com' || true
        echo "INFO sha256 REGISTER: siphon offers $(grep -a -c '^WWW-Authenticate: Digest' "${UA_DIR[sha256]}/log") challenges ($(grep -a -o 'algorithm=[A-Z0-9-]*' "${UA_DIR[sha256]}/log" | sort -u | tr '\n' ' ')), baresip sends $(grep -a -c '^Authorization:' "${UA_DIR[sha256]}/log") Authorization headers and logs: $(grep -a -E 'reg: |alice@example.com: \{' "${UA_DIR[sha256]}/log" | tr -d '\033' | sed 's/\[[0-9;]*m//g' | head -1)"
        ctrl_open sha256 && ctrl sha256 dial "sip:bob@example.com" && sleep 2
        echo "INFO sha256 INVITE: baresip logs: $(grep -a -E 'session closed|Call established' "${UA_DIR[sha256]}/log" | tr -d '\033' | head -1)"
        stop_pid "${UA_PID[sha256]}"
        ctrl_close sha256
    fi
    stop_pid "$sp"
fi

# ---------------------------------------------------------------- metrics
ntp=$(echo $TRANSPORTS | wc -w)
check_metrics() {
    local regs ch af tr fw bind pe
    regs=$(metric siphon_registrar_registers_total)
    ch=$(metric siphon_auth_challenges_total)
    af=$(metric siphon_auth_failures_total)
    tr=$(metric siphon_transactions_total)
    fw=$(metric siphon_forwarded_total)
    bind=$(metric siphon_registrar_bindings)
    pe=$(metric siphon_parse_errors_total)
    info "metrics: registers=$regs challenges=$ch auth_failures=$af transactions=$tr forwarded=$fw bindings=$bind parse_errors=$pe"
    # per transport: alice and bob register and unregister, 401 then 200 each
    [ "$regs" -ge $((ntp * 8 + 6)) ] || { WHY="siphon_registrar_registers_total $regs < $((ntp * 8 + 6))"; return 1; }
    # the REGISTERs' 401s and the INVITEs' 407s
    [ "$ch" -ge $((ntp * 6 + 4)) ] || { WHY="siphon_auth_challenges_total $ch < $((ntp * 6 + 4))"; return 1; }
    [ "$af" -ge 2 ] || { WHY="siphon_auth_failures_total $af < 2 (carol, sipsak)"; return 1; }
    # an INVITE and a BYE per call that came up
    [ "$tr" -ge $((CALLS_UP * 2)) ] || { WHY="siphon_transactions_total $tr < $((CALLS_UP * 2)) ($CALLS_UP calls up)"; return 1; }
    [ "$bind" = 0 ] || { WHY="siphon_registrar_bindings $bind at the end, want 0"; return 1; }
    [ "$pe" = 0 ] || { WHY="siphon_parse_errors_total $pe: siphon refused a message from baresip or sipsak"; return 1; }
}
check "siphon metrics: registers, challenges, auth failures, transactions counted; no bindings left, no parse errors" check_metrics

scrape >"$W/siphon/metrics.txt"
check "siphon: no errors logged, exits 0 on SIGTERM" siphon_exits_clean "$W/siphon"

finish
