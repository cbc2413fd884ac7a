#!/usr/bin/env bash
# Interop behind a real NAT: a baresip phone (bob) in a network namespace
# behind a Linux router namespace that masquerades (nftables, conntrack),
# registering to siphon and called through it; alice (baresip) beside
# siphon. See interop/README.md, "Behind a NAT: interop/nat.sh".
#
#   bash interop/nat.sh                          # as root, after cargo build --bin siphon
#   SIPHON=/path/to/siphon KEEP=1 CONTROL=0 bash interop/nat.sh
#
# Three namespaces, created here and deleted at exit (nothing is added to
# the namespace the script runs in):
#   sxnat-PID-s  "the internet": siphon on 10.77.0.1:5060 (veth sxnat0) and
#                127.0.4.1:5060 (lo), metrics/admin 127.0.4.1:9071; alice
#                (baresip) on 127.0.4.2
#   sxnat-PID-r  the NAT: wan 10.77.0.2/24, lan 192.168.77.1/24, forwarding,
#                masquerade on wan (UDP/TCP source ports mapped into
#                40000-49999), nothing from wan to lan but conntrack replies
#   sxnat-PID-p  the phone: bob (baresip) on 192.168.77.2, default via .1
#
# Prints `PASS name` or `FAIL name: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. The work dir (configs, logs with baresip's SIP
# trace, per-call ladders, a pcap of the NAT's two sides) is kept when a
# check fails or KEEP=1. Every process it starts is stopped by PID at exit;
# every wait is bounded; each baresip also quits by itself after 120 s (-t).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=interop/lib.sh
. interop/lib.sh
SIPHON="${SIPHON:-target/debug/siphon}"
HOLD="${HOLD:-1}"
KEEP="${KEEP:-0}"
CONTROL="${CONTROL:-1}"
SIPHON_LOG_LEVEL="${SIPHON_LOG_LEVEL:-info}"
MODULES="${BARESIP_MODULES:-/usr/lib/baresip/modules}"

NS_S="sxnat-$$-s"
NS_R="sxnat-$$-r"
NS_P="sxnat-$$-p"
P_WAN=10.77.0.1      # siphon's listener on the NAT's outside
P_LO=127.0.4.1       # siphon's listener for alice
NAT_WAN=10.77.0.2    # the NAT's public address
NAT_LAN=192.168.77.1
BOB_IP=192.168.77.2
NAT_PORTS=40000-49999
METRICS=127.0.4.1:9071
PING_S=2
PING_MISSES=2
declare -A IP=([alice]=127.0.4.2 [bob]=$BOB_IP)
declare -A PROXY=([alice]=$P_LO [bob]=$P_WAN)
declare -A TONE=([alice]=440 [bob]=660)
declare -A PASSWORD=([alice]=alice-secret [bob]=bob-secret)
CTRL_PORT=4444
IN_SIPHON_NS=(ip netns exec "$NS_S")
UA_NS=([alice]=$NS_S [bob]=$NS_P)
LADDER_CONTACT=1
# the counters that tell why siphon could not deliver
SIPHON_ERRORS="siphon_branch_transport_errors_total siphon_branch_timeouts_total siphon_send_errors_total siphon_dropped_total siphon_mesh_handoffs_total"

[ "$(id -u)" = 0 ] || die setup "must run as root (network namespaces, nftables)"
need_tools "apt-get install --no-install-recommends baresip curl iproute2 nftables" baresip curl ip nft ss stdbuf awk mkfifo
need_siphon
SIPHON=$(realpath "$SIPHON")
need_modules g711 ausine aubridge account menu ctrl_tcp
HAVE_CONNTRACK=0
command -v conntrack >/dev/null && HAVE_CONNTRACK=1
HAVE_TCPDUMP=0
command -v tcpdump >/dev/null && HAVE_TCPDUMP=1

GRAND=()     # pid files of grandchildren (the ctrl writers)
CREATED_NS=()
# cleanup_more KEEP (run by cleanup once our children are stopped): the ctrl
# writers, the pcap as text if the work dir is kept, our namespaces
cleanup_more() {
    local keep=$1 f pid ns i
    for f in "${GRAND[@]}"; do
        pid=$(cat "$f" 2>/dev/null) || continue
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cat ] && kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$keep" = 1 ] && [ -s "$W/nat.pcap" ]; then
        # read inside the router's namespace, so that -i any's interface
        # indexes still have names (wan, lan)
        ip netns exec "$NS_R" timeout 10 tcpdump -nn -r "$W/nat.pcap" >"$W/nat.pcap.txt" 2>/dev/null || true
    fi
    for ns in "${CREATED_NS[@]}"; do
        # anything still running in a namespace of ours was started by us
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        for ((i = 0; i < 20; i++)); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
        ip netns del "$ns" 2>/dev/null || echo "could not delete network namespace $ns"
    done
}
start_work siphon-nat

in_s() { "${IN_SIPHON_NS[@]}" "$@"; }
in_r() { ip netns exec "$NS_R" "$@"; }
# bob's NAT mapping as conntrack sees it: "PORT" (outside port) or ""
nat_port() {
    [ "$HAVE_CONNTRACK" = 1 ] || return 0
    in_r conntrack -L -p udp --orig-src "$BOB_IP" --orig-port-src 5060 --orig-dst "$P_WAN" --orig-port-dst 5060 2>/dev/null |
        awk '{ p = ""; for (i = 1; i <= NF; i++) if ($i ~ /^dport=/) p = substr($i, 7); if (p != "") { print p; exit } }'
}

# ---------------------------------------------------------------- network
setup_net() {
    local ns
    for ns in "$NS_S" "$NS_R" "$NS_P"; do
        ip netns add "$ns" || return 1
        CREATED_NS+=("$ns")
        ip -n "$ns" link set lo up || return 1
    done
    ip link add sxnat0 netns "$NS_S" type veth peer name wan netns "$NS_R" &&
        ip link add lan netns "$NS_R" type veth peer name lan0 netns "$NS_P" &&
        ip -n "$NS_S" addr add "$P_WAN/24" dev sxnat0 &&
        ip -n "$NS_R" addr add "$NAT_WAN/24" dev wan &&
        ip -n "$NS_R" addr add "$NAT_LAN/24" dev lan &&
        ip -n "$NS_P" addr add "$BOB_IP/24" dev lan0 &&
        ip -n "$NS_S" link set sxnat0 up &&
        ip -n "$NS_R" link set wan up &&
        ip -n "$NS_R" link set lan up &&
        ip -n "$NS_P" link set lan0 up &&
        ip -n "$NS_P" route add default via "$NAT_LAN" &&
        in_r sysctl -qw net.ipv4.ip_forward=1 || return 1
    # the NAT: masquerade what leaves on wan (UDP/TCP ports remapped, so
    # that the outside port is never the phone's 5060), and let in from wan
    # only what conntrack relates to a flow the phone started
    cat >"$W/nat.nft" <<EOF
table ip sxnat {
    chain masq {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" meta l4proto { udp, tcp } masquerade to :$NAT_PORTS
        oifname "wan" masquerade
    }
    chain guard {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
    }
}
EOF
    in_r nft -f "$W/nat.nft" || return 1
}
setup_net 2>"$W/setup.err" || die setup "network namespaces / nftables: $(tr '\n' ' ' <"$W/setup.err" | head -c 400)"
info "network: siphon $P_WAN (ns $NS_S) | $NAT_WAN NAT $NAT_LAN (ns $NS_R, masquerade to :$NAT_PORTS) | bob $BOB_IP (ns $NS_P)"

if [ "$HAVE_TCPDUMP" = 1 ]; then
    # both sides of the NAT (wan: after translation, lan: before)
    ip netns exec "$NS_R" tcpdump -i any -nn -U -Z root -s 0 -w "$W/nat.pcap" udp or icmp >"$W/tcpdump.log" 2>&1 &
    PIDS+=("$!")
    wait_until 5 grep_log "$W/tcpdump.log" "listening on" || info "tcpdump did not start: $(head -c 200 "$W/tcpdump.log")"
fi

# ---------------------------------------------------------------- siphon
cat >"$W/users.txt" <<EOF
alice:password=${PASSWORD[alice]}
bob:password=${PASSWORD[bob]}
EOF
# write_siphon DIR NAT: siphon's config in DIR with [proxy] nat = NAT
write_siphon() {
    mkdir -p "$1/journal"
    cat >"$1/siphon.toml" <<EOF
# written by interop/nat.sh
[server]
user_agent = "Siphon"
log_level = "$SIPHON_LOG_LEVEL"
shards = 2

# bob registers here, through the NAT
[[listen]]
transport = "udp"
addr = "$P_WAN:5060"

# alice registers here
[[listen]]
transport = "udp"
addr = "$P_LO:5060"

[proxy]
mode = "stateful"
record_route = true
nat = "$2"

[registrar]
domains = ["example.com"]
journal_dir = "journal"
nat_ping_interval_s = $PING_S
nat_ping_misses = $PING_MISSES

[auth]
realm = "example.com"
register = true
requests = ["INVITE"]
# baresip 1.0.0 answers MD5 challenges only: see interop/README.md
algorithms = ["MD5"]
users_file = "../users.txt"

[metrics]
listen = "$METRICS"
EOF
}
SIPHON_PID=""
SIPHON_DIR=""
# start_siphon DIR: start siphon in the "internet" namespace; 0 once it is up
start_siphon() {
    # not through in_s: a function run with & is a subshell, and $! would
    # be that shell's PID, not siphon's
    "${IN_SIPHON_NS[@]}" "$SIPHON" --config "$1/siphon.toml" >"$1/log" 2>&1 &
    SIPHON_PID=$!
    SIPHON_DIR=$1
    PIDS+=("$SIPHON_PID")
    siphon_up() {
        alive "$SIPHON_PID" && ! grep -q -E 'ERROR|panicked' "$SIPHON_DIR/log" && [ "$(in_s curl -s --max-time 1 "http://$METRICS/health" 2>/dev/null)" = ok ] &&
            [ "$(in_s ss -H -uln "( sport = :5060 )" 2>/dev/null | grep -c -E "$P_WAN:5060|$P_LO:5060")" -ge 2 ]
    }
    wait_until 15 siphon_up
}

S1="$W/siphon"
write_siphon "$S1" auto
start_siphon "$S1" || die "siphon starts" "not up on $P_WAN:5060, $P_LO:5060 and $METRICS after 15 s: $(tail -3 "$S1/log" | tr '\n' ' ')"
pass "siphon starts (stateful, record_route, Digest MD5, nat = \"auto\", pings every ${PING_S} s; UDP $P_WAN:5060 and $P_LO:5060)"

# ---------------------------------------------------------------- baresip
# start_ua NAME [DIR]: a headless baresip in NAME's namespace, registering as
# NAME@example.com through NAME's proxy address
start_ua() {
    local name=$1
    launch_ua "$name" "${2:-$W/$1}" "sip:$name@example.com" "${PASSWORD[$name]}" "sip:${PROXY[$name]}"
}
# ctrl_open NAME: connect to NAME's ctrl_tcp from inside its namespace.
# Commands go through a FIFO (NAME/ctrl.in) to a writer there; events go to
# NAME/events.
ctrl_open() {
    local name=$1 d=${UA_DIR[$1]} fd
    rm -f "$d/ctrl.in" "$d/ctrl.pid"
    mkfifo "$d/ctrl.in"
    exec {fd}<>"$d/ctrl.in"
    CTRL[$name]=$fd
    GRAND+=("$d/ctrl.pid")
    # shellcheck disable=SC2016
    ip netns exec "${UA_NS[$name]}" bash -c '
        for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && break; sleep 0.1; done
        exec 3<>"/dev/tcp/$1/$2"
        cat "$3" >&3 &
        echo $! >"$4"
        exec cat <&3' _ "${IP[$name]}" "$CTRL_PORT" "$d/ctrl.in" "$d/ctrl.pid" >"$d/events" 2>"$d/ctrl.err" {fd}>&- &
    PIDS+=("$!")
    wait_until 12 test -s "$d/ctrl.pid"
}
brief_ladder() { cut -d'|' -f1,3,5,6 "$1" | tr '\n' ';' | tail -c "${2:-400}"; }

NATPORT=""   # bob's outside port as siphon saw it
# wait_registered NAME: baresip says 200 OK and siphon has the binding;
# bob's must come from the NAT's outside address
wait_registered() {
    local name=$1 b src
    if ! ua_registered "$name" UDP; then
        WHY="$WHY; its ladder: $(ladder "$name" "${UA_DIR[$name]}/log" | cut -d'|' -f1,3,4,5 | tr '\n' ';' | tail -c 300)"
        return 1
    fi
    b=$(aor "$name")
    echo "$b" >"${UA_DIR[$name]}/aor.json"
    echo "$b" | grep -q "\"contact\":\"sip:$name-[^\"]*@${IP[$name]}:5060" ||
        { WHY="baresip got 200 OK but /admin/aor/$name@example.com has no binding with contact at ${IP[$name]}:5060: $b"; return 1; }
    src=$(echo "$b" | grep -o '"source":"[^"]*"' | head -1 | cut -d'"' -f4)
    if [ "$name" = bob ]; then
        case "$src" in
            "$NAT_WAN":*) NATPORT=${src##*:} ;;
            *) WHY="bob's binding has source '$src', want the NAT's outside address $NAT_WAN:<port> (not $BOB_IP, bob's own): $b"; return 1 ;;
        esac
        local ct
        ct=$(nat_port)
        if [ "$HAVE_CONNTRACK" = 1 ] && [ "$ct" != "$NATPORT" ]; then
            WHY="bob's binding has source $src, but the NAT maps $BOB_IP:5060 -> $NAT_WAN:${ct:-nothing} (conntrack)"
            return 1
        fi
    else
        [ "$src" = "${IP[$name]}:5060" ] || { WHY="$name's binding has source '$src', want ${IP[$name]}:5060: $b"; return 1; }
    fi
}

start_ua alice
check "alice registers with Digest on $P_LO (binding from ${IP[alice]}:5060)" wait_registered alice
start_ua bob
check "bob registers with Digest through the NAT (binding: contact $BOB_IP:5060, source $NAT_WAN:<NAT port>)" wait_registered bob
if [ -n "$NATPORT" ]; then
    info "NAT mapping: bob $BOB_IP:5060 is $NAT_WAN:$NATPORT outside$([ "$HAVE_CONNTRACK" = 1 ] && echo " (siphon's binding and conntrack agree)")"
fi

# ---------------------------------------------------------------- calls
# call N CALLER CALLEE HANGER: CALLER dials CALLEE, HANGER hangs up
call() {
    local n=$1 caller=$2 callee=$3 hanger=$4 other
    [ "$hanger" = "$caller" ] && other=$callee || other=$caller
    local tag="call$n ($caller calls $callee, $hanger hangs up)"
    call_dial "$caller" "$callee"
    local up=$CALL_UP
    [ "$up" != 1 ] || sleep "$HOLD"
    call_end "$hanger"
    local d="$W/calls"
    mkdir -p "$d"
    call_files "$d" "$n"
    local la="$d/call$n.alice.ladder" lb="$d/call$n.bob.ladder"
    local pcap=""
    [ "$HAVE_TCPDUMP" = 1 ] && pcap="; pcap of both sides of the NAT: $W/nat.pcap"

    check_established() {
        if [ "$up" != 1 ]; then
            WHY="no CALL_ESTABLISHED at both ends within 10 s; alice saw: $(events_of alice | tail -c 200); bob saw: $(events_of bob | tail -c 200); alice's ladder: $(brief_ladder "$la"); bob's ladder: $(brief_ladder "$lb"); siphon counters that moved: $(siphon_errors_moved "$CALL_K0")$pcap"
            return 1
        fi
        both_established "$d" "$n" "$caller" "$callee" || return 1
        # everything bob receives comes from siphon's listener he registered
        # on (the NAT lets in nothing else)
        local bad
        bad=$(awk -F'|' -v p="$P_WAN:5060" '$1 == "<" && $3 != p { print $3 " " $5; exit }' "$lb")
        [ -z "$bad" ] || { WHY="bob received a message not from $P_WAN:5060: $bad"; return 1; }
        if [ "$callee" = bob ]; then
            awk -F'|' '$1 == "<" && $5 ~ /^INVITE /' "$lb" | grep -q . ||
                { WHY="bob has the call but no INVITE in his trace"; return 1; }
        fi
        # the callee got the ACK for its 200 OK
        local tt
        tt=$(awk -F'|' '$1 == ">" && $5 ~ /^SIP\/2.0 200/ && $6 ~ / INVITE$/ { print $8; exit }' "$d/call$n.$callee.ladder")
        awk -F'|' -v t="$tt" '$1 == "<" && $5 ~ /^ACK / && $8 == t' "$d/call$n.$callee.ladder" | grep -q . ||
            { WHY="$callee got no ACK for its 200 OK (To tag '$tt'); $callee's ladder: $(brief_ladder "$d/call$n.$callee.ladder")"; return 1; }
    }
    local via_nat="the INVITE"
    [ "$callee" = bob ] && via_nat="siphon's INVITE to $NAT_WAN:<NAT port> from $P_WAN:5060"
    [ "$caller" = bob ] && via_nat="bob's INVITE"
    check "$tag: $via_nat gets through the NAT, established at both UAs, ACK reaches the callee" check_established

    local need_call="not checked: the call was not established"
    check_alias() {
        [ "$up" = 1 ] || { WHY=$need_call; return 1; }
        # the message alice got that carries bob's Contact: the 200 OK for
        # the INVITE (bob called) or the INVITE (bob calls)
        local c want="alias=$NAT_WAN~$NATPORT~1"
        if [ "$callee" = bob ]; then
            c=$(awk -F'|' '$1 == "<" && $5 ~ /^SIP\/2.0 200/ && $6 ~ / INVITE$/ { print $10; exit }' "$la")
        else
            c=$(awk -F'|' '$1 == "<" && $5 ~ /^INVITE / { print $10; exit }' "$la")
        fi
        [ -n "$NATPORT" ] && [[ "$c" == *"$BOB_IP:5060"*";$want"* ]] ||
            { WHY="the Contact of bob's that reached alice is '$c', want bob's Contact with ;$want"; return 1; }
    }
    check "$tag: the Contact siphon relays to alice carries ;alias=$NAT_WAN~<NAT port>~1" check_alias

    check_bye() {
        [ "$up" = 1 ] || { WHY=$need_call; return 1; }
        local hl="$d/call$n.$hanger.ladder" ol="$d/call$n.$other.ladder" bye
        awk -F'|' '$1 == ">" && $5 ~ /^BYE /' "$hl" | grep -q . || { WHY="$hanger sent no BYE"; return 1; }
        bye=$(awk -F'|' '$1 == "<" && $5 ~ /^BYE / { print $5; exit }' "$ol")
        if [ -z "$bye" ]; then
            WHY="$hanger's BYE never reached $other; $hanger's ladder from the BYE: $(awk -F'|' '$5 ~ /^BYE /{p=1} p' "$hl" | cut -d'|' -f1,3-6 | tr '\n' ';' | tail -c 500); siphon counters that moved: $(siphon_errors_moved "$CALL_K0")$pcap"
            return 1
        fi
        if [ "$other" = bob ]; then
            [[ "$bye" == "BYE sip:bob-"*"@$BOB_IP:5060"* ]] && [[ "$bye" != *alias=* ]] ||
                { WHY="bob received '$bye': want his own Contact, the alias stripped"; return 1; }
        fi
        bye_ended "$d" "$n" "$hanger" "$other"
    }
    check "$tag: $hanger's BYE reaches $other$([ "$other" = bob ] && echo " through the NAT (at the alias, stripped)"), 200 OK back, call ended at both" check_bye
}

if ! ctrl_open alice || ! ctrl_open bob; then
    fail "baresip control" "ctrl_tcp of alice (${IP[alice]}:$CTRL_PORT) or bob (${IP[bob]}:$CTRL_PORT) not reachable: $(cat "$W"/*/ctrl.err 2>/dev/null | tr '\n' ' ' | head -c 300)"
else
    call 1 alice bob alice
    call 2 bob alice alice
fi

# ---------------------------------------------------------------- keep-alives
pings_seen() { [ "$(metric siphon_nat_pings_total)" -ge 2 ]; }
check_pings() {
    wait_until $((PING_S * 3)) pings_seen || true
    local p m r lb
    p=$(metric siphon_nat_pings_total)
    m=$(metric siphon_nat_ping_misses_total)
    r=$(metric siphon_nat_bindings_removed_total)
    info "keep-alives: siphon_nat_pings_total=$p siphon_nat_ping_misses_total=$m siphon_nat_bindings_removed_total=$r"
    [ "$p" -ge 2 ] || { WHY="siphon_nat_pings_total $p after $(($(date +%s) - started)) s (every ${PING_S} s wanted)"; return 1; }
    [ "$m" = 0 ] || { WHY="siphon_nat_ping_misses_total $m: a keep-alive went unanswered (bob's baresip answers OPTIONS)"; return 1; }
    [ "$r" = 0 ] || { WHY="siphon_nat_bindings_removed_total $r while bob is up"; return 1; }
    lb="$W/bob.ladder"
    ladder bob "${UA_DIR[bob]}/log" >"$lb"
    awk -F'|' -v p="$P_WAN:5060" '$1 == "<" && $3 == p && $5 ~ /^OPTIONS /' "$lb" | grep -q . ||
        { WHY="siphon counts pings but bob's trace has no OPTIONS from $P_WAN:5060"; return 1; }
    awk -F'|' '$1 == ">" && $5 ~ /^SIP\/2.0 200/ && $6 ~ / OPTIONS$/' "$lb" | grep -q . ||
        { WHY="bob never answered an OPTIONS with 200"; return 1; }
    aor bob | grep -q "\"source\":\"$NAT_WAN:$NATPORT\"" || { WHY="bob's binding is gone while bob answers: $(aor bob)"; return 1; }
}
check "keep-alives: siphon pings bob through the NAT (OPTIONS from $P_WAN:5060), bob answers, no misses" check_pings

# ---------------------------------------------------------------- bob dies
ctrl_close bob
kill -KILL "${UA_PID[bob]}" 2>/dev/null || true
wait "${UA_PID[bob]}" 2>/dev/null || true
REAPED[${UA_PID[bob]}]=1
killed=$(date +%s)
gone() { [ "$(metric siphon_nat_bindings_removed_total)" -ge 1 ] && aor bob | grep -q '"bindings":\[\]'; }
check_removed() {
    local r m b ct
    wait_until 12 gone || true
    r=$(metric siphon_nat_bindings_removed_total)
    m=$(metric siphon_nat_ping_misses_total)
    b=$(aor bob)
    ct=$(nat_port)
    info "bob killed (SIGKILL, no un-REGISTER): after $(($(date +%s) - killed)) s siphon_nat_bindings_removed_total=$r siphon_nat_ping_misses_total=$m; the NAT mapping $([ -n "$ct" ] && echo "is still there ($NAT_WAN:$ct)" || echo "is gone or unknown (conntrack)")"
    [ "$r" = 1 ] || { WHY="siphon_nat_bindings_removed_total $r 12 s after bob died, want 1 (misses: $m; binding: $b)"; return 1; }
    echo "$b" | grep -q '"bindings":\[\]' || { WHY="bob's binding is still there: $b"; return 1; }
    [ "$m" -ge "$PING_MISSES" ] || { WHY="binding removed after $m misses, nat_ping_misses = $PING_MISSES"; return 1; }
}
check "bob dies behind the NAT (mapping still open, nobody answers): siphon removes his binding after $PING_MISSES missed keep-alives" check_removed

scrape >"$S1/metrics.txt"
check "siphon: no errors logged, exits 0 on SIGTERM" siphon_exits_clean "$S1" 1

# ---------------------------------------------------------------- control
# nat = "off": the same registration, but siphon trusts bob's Contact
# (192.168.77.2), which no route leads to from siphon's side
if [ "$CONTROL" = 1 ]; then
    S2="$W/siphon-nat-off"
    write_siphon "$S2" off
    check_control() {
        start_siphon "$S2" || { WHY="siphon (nat = \"off\") did not start: $(tail -3 "$S2/log" | tr '\n' ' ')"; return 1; }
        start_ua bob "$W/bob-nat-off"
        wait_registered bob || { WHY="bob did not register: $WHY"; return 1; }
        local c_a e_a k0 off_b
        c_a=$(evcount alice CALL_CLOSED)
        e_a=$(evcount alice CALL_ESTABLISHED)
        k0=$(siphon_errors)
        ctrl alice dial "sip:bob@example.com"
        wait_until 10 ev_more alice CALL_CLOSED "$c_a" || true
        local moved ended
        moved=$(siphon_errors_moved "$k0")
        ended=$(events_of alice | grep -o 'CALL_CLOSED([^)]*)' | tail -1)
        if ev_more alice CALL_ESTABLISHED "$e_a"; then
            ctrl alice hangup
            WHY="the call to bob was established with nat = \"off\" (siphon reached $BOB_IP?)"
            return 1
        fi
        ev_more alice CALL_CLOSED "$c_a" || { ctrl alice hangup; wait_until 5 ev_more alice CALL_CLOSED "$c_a" || true; }
        if grep_log "${UA_DIR[bob]}/log" '^INVITE '; then
            WHY="bob received an INVITE with nat = \"off\""
            return 1
        fi
        info "control (nat = \"off\"): alice's call ends with ${ended:-nothing within 10 s}; siphon counters that moved: ${moved:-none}"
    }
    check "control: with [proxy] nat = \"off\" the call to bob fails (siphon sends to $BOB_IP, unreachable)" check_control
    stop_pid "${UA_PID[bob]}" 3
    stop_siphon "$S2" 1 || true
fi

ctrl_close alice
stop_pid "${UA_PID[alice]}" 3
finish
