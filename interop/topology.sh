#!/usr/bin/env bash
# Topology hiding between peers nobody on the project wrote: an internal
# caller (SIPp) behind an internal proxy (Kamailio) calls a carrier (SIPp)
# through siphon with a `[[route]] hide = true`, and a packet capture shows
# that neither side ever gets a byte of the other's addresses, while every
# request in the dialog still reaches its hop (Kamailio's Record-Route
# included). See interop/README.md ("Topology hiding: interop/topology.sh").
#
#   bash interop/topology.sh                    # after cargo build --bin siphon
#   MODES=stateful CALLS=20 KEEP=1 bash interop/topology.sh
#
#   caller (SIPp)        internal proxy        siphon (edge)        carrier (SIPp)
#   127.0.8.2:5060  -->  Kamailio          --> 127.0.8.1:5060  -->  127.0.8.9:5080
#                        127.0.8.5:5060        hide = true
#
# For each siphon mode (MODES: stateless, stateful) two runs of CALLS calls:
# INVITE / 100 / 180 / 200 / ACK, a re-INVITE from the caller (200, ACK), a
# re-INVITE from the carrier (200, ACK), then a BYE from the caller (first
# run) or from the carrier (second run). tcpdump records every packet on
# 127.0.8.0/24 (lo) and SIPp traces every message it sends and receives;
# sipdump.py reads the capture. Checks per run: every call completes at
# both SIPps (exit status 0, 0 failed calls). Checks per mode: the carrier
# exchanged packets with siphon only, and nothing it sent or received holds
# 127.0.8.2, 127.0.8.5 or the caller's Contact user; the caller exchanged
# packets with Kamailio only, and nothing it sent or received holds
# 127.0.8.9 or the carrier's Contact user; every request the carrier got
# carries one Via (siphon's, with th=), one Record-Route (siphon's), a
# Contact sip:TOKEN@127.0.8.1:5060, and in the dialog the carrier's own
# Contact as Request-URI; every request of the carrier's reached the caller
# through Kamailio (its Record-Route restored as the Route, its Via on top)
# at the caller's own Contact; Call-ID, From, To and SDP pass unchanged;
# siphon dropped nothing, logged no error and exits 0.
#
# Loopback only (127.0.8.0/24); every process it starts (Kamailio, siphon,
# tcpdump, the SIPps) is stopped by PID at exit; every SIPp runs under
# timeout with -timeout and -recv_timeout; every wait is bounded. About
# 10 s (a run whose calls fail: up to ~25 s more per run).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=interop/lib.sh
. interop/lib.sh
SIPHON="${SIPHON:-target/debug/siphon}"
KEEP="${KEEP:-0}"
MODES="${MODES:-stateless stateful}"
CALLS="${CALLS:-10}"
RATE="${RATE:-20}"

T=interop/topology
P_IP=127.0.8.1 # siphon
METRICS=127.0.8.1:9080
KAM=127.0.8.5
CALLER=127.0.8.2
CARRIER=127.0.8.9
CARRIER_PORT=5080

need_tools "apt-get install kamailio sip-tester tcpdump curl python3" kamailio sipp tcpdump curl python3 timeout
need_siphon
start_work siphon-topology

# our addresses, and the wildcard on our ports (a SIP server on 0.0.0.0:5060
# would take Kamailio's and siphon's datagrams or their binds)
for a in "$KAM 5060" "$CALLER 5060" "$CARRIER $CARRIER_PORT" "$P_IP 5060" "0.0.0.0 5060" "0.0.0.0 $CARRIER_PORT"; do
    if udp_bound $a; then
        die setup "something already has UDP ${a/ /:} (another run of this script? a SIP server on all addresses?)"
    fi
done

# ---------------------------------------------------------------- Kamailio
mkdir -p "$W/kamailio"
kamailio -f "$T/kamailio.cfg" -DD -E -Y "$W/kamailio" -P "$W/kamailio/kamailio.pid" >"$W/kamailio/log" 2>&1 &
KAM_PID=$!
PIDS+=("$KAM_PID")
kam_up() { alive "$KAM_PID" && udp_bound "$KAM" 5060; }
wait_until 10 kam_up || die "Kamailio starts" "not listening on $KAM:5060 within 10 s: $(tail -3 "$W/kamailio/log" | tr '\n' ' ')"
pass "Kamailio $(kamailio -v 2>/dev/null | awk '/^version:/ {print $3; exit}') starts as the internal proxy on $KAM:5060 ($T/kamailio.cfg)"

# ---------------------------------------------------------------- per run
# sipp_run D BYE: the carrier SIPp (UAS) and the caller SIPp (UAC), CALLS
# calls whose BYE comes from BYE (caller, callee); their output, stats,
# errors and message traces in D/{caller,carrier}-BYE.*
sipp_run() {
    local d=$1 bye=$2 i
    timeout 25 sipp -sf "$T/carrier.xml" -i "$CARRIER" -p "$CARRIER_PORT" -m "$CALLS" -set bye "$bye" \
        -nostdin -timeout 20s -recv_timeout 5s -trace_msg -message_file "$d/carrier-$bye.msg" -trace_stat -stf "$d/carrier-$bye.csv" \
        -trace_err -error_file "$d/carrier-$bye.err" >"$d/carrier-$bye.out" 2>&1 &
    local uas=$!
    PIDS+=("$uas")
    wait_until 5 udp_bound "$CARRIER" "$CARRIER_PORT" || true
    RC_CALLER=0
    timeout 25 sipp -sf "$T/caller.xml" "$KAM:5060" -i "$CALLER" -p 5060 -m "$CALLS" -r "$RATE" -l "$CALLS" \
        -set bye "$bye" -cid_str "%u-%p-topo-$bye" -nostdin -timeout 20s -recv_timeout 5s \
        -trace_msg -message_file "$d/caller-$bye.msg" -trace_stat -stf "$d/caller-$bye.csv" \
        -trace_err -error_file "$d/caller-$bye.err" >"$d/caller-$bye.out" 2>&1 || RC_CALLER=$?
    RC_CARRIER=0
    # bounded: the carrier runs under timeout 25
    for ((i = 0; i < 270; i++)); do alive "$uas" || break; sleep 0.1; done
    wait "$uas" || RC_CARRIER=$?
    REAPED[$uas]=1
}
# calls_ok D BYE: both SIPps exited 0 with CALLS successful calls, none failed
calls_ok() {
    local d=$1 bye=$2 side ok failed rc
    for side in caller carrier; do
        [ "$side" = caller ] && rc=$RC_CALLER || rc=$RC_CARRIER
        ok=$(sipp_stat "$d/$side-$bye.csv" 'SuccessfulCall(C)')
        failed=$(sipp_stat "$d/$side-$bye.csv" 'FailedCall(C)')
        if [ "$rc" != 0 ] || [ "$ok" != "$CALLS" ] || [ "$failed" != 0 ]; then
            WHY="$side SIPp: exit $rc, $ok successful, $failed failed of $CALLS; its errors: $(grep -a -v '^$' "$d/$side-$bye.err" 2>/dev/null | head -3 | tr '\n' ' ' | head -c 400)"
            return 1
        fi
    done
}

# ---------------------------------------------------------------- checks
# The ladder (sipdump.py), one datagram a line, TAB-separated: 1 src, 2 dst,
# 3 start line, 4 CSeq, 5 Call-ID, 6 top Via, 7 Vias (how many), 8 Route,
# 9 Record-Route, 10 Contact, 11 From, 12 To. lq PROGRAM runs an awk
# PROGRAM over it, with AWK_LIB and the SIP sockets (carrier, caller, kam:
# "IP:port"; siphon: its IP, as its stateful Vias name its shards' own
# ports); bad(WHY) prints WHY and stops. A broken program prints "AWK
# ERROR", which fails the check reading it. Sockets, not hosts: the test
# suite's tests/carrier.rs also uses addresses in 127.0.8.0/24 (other
# ports), and a `cargo test` beside this run must not count.
AWK_LIB='
BEGIN { FS = "\t" }
function host(a) { sub(/:[0-9]+$/, "", a); return a }
function req() { return $3 !~ /^SIP\/2\.0 / }
function method() { split($3, w, " "); return req() ? w[1] : "" }
function show() { return $1 " > " $2 " " $3 " (CSeq " $4 ", Call-ID " $5 ")" }
function bad(why) { print why; found = 1; exit }
'
lq() {
    awk -v carrier="$CARRIER:$CARRIER_PORT" -v caller="$CALLER:5060" -v kam="$KAM:5060" -v siphon="$P_IP" \
        "$AWK_LIB $1" "$D/cap.ladder" || echo "AWK ERROR"
}
# D/carrier.txt, D/caller.txt: the datagrams to or from that SIP socket,
# as sent (sipdump.py's text)
split_text() {
    awk -v a="$CARRIER:$CARRIER_PORT" '/^=== / { keep = index($0 " ", " " a " ") > 0 } keep' "$D/cap.txt" >"$D/carrier.txt"
    awk -v a="$CALLER:5060" '/^=== / { keep = index($0 " ", " " a " ") > 0 } keep' "$D/cap.txt" >"$D/caller.txt"
}
# leaks SIDE STRING...: the first line of SIDE's datagrams (capture) or of
# SIDE's SIPp message traces that holds one of the STRINGs, or nothing
leaks() {
    local side=$1 x hit
    shift
    for x in "$@"; do
        hit=$(grep -a -n -m1 -F "$x" "$D/$side.txt" || true)
        [ -z "$hit" ] || { echo "'$x' on the $side's wire (line ${hit%%:*} of $D/$side.txt: ${hit#*:})"; return 0; }
        hit=$(cat "$D/$side"-*.msg | grep -a -m1 -F "$x" || true)
        [ -z "$hit" ] || { echo "'$x' in the $side SIPp's message trace: $hit"; return 0; }
    done
}

# (b) the carrier: packets with siphon only, no internal byte
check_carrier_blind() {
    local bad
    CARRIER_N=$(lq '$1 == carrier || $2 == carrier { n++ } END { print n + 0 }')
    [ "$CARRIER_N" -gt 0 ] || { WHY="the capture has no packet to or from $CARRIER:$CARRIER_PORT"; return 1; }
    bad=$(lq '($1 == carrier && host($2) != siphon) || ($2 == carrier && host($1) != siphon) { bad(show()) }')
    [ -z "$bad" ] || { WHY="the carrier exchanged a packet with someone other than siphon: $bad"; return 1; }
    bad=$(leaks carrier "$CALLER" "$KAM" alice-phone)
    [ -z "$bad" ] || { WHY="$bad"; return 1; }
}
# (c) the caller: packets with Kamailio only, no carrier byte
check_caller_blind() {
    local bad
    CALLER_N=$(lq '$1 == caller || $2 == caller { n++ } END { print n + 0 }')
    [ "$CALLER_N" -gt 0 ] || { WHY="the capture has no packet to or from $CALLER:5060"; return 1; }
    bad=$(lq '($1 == caller && $2 != kam) || ($2 == caller && $1 != kam) { bad(show()) }')
    [ -z "$bad" ] || { WHY="the caller exchanged a packet with someone other than Kamailio: $bad"; return 1; }
    bad=$(leaks caller "$CARRIER" carrier-gw)
    [ -z "$bad" ] || { WHY="$bad"; return 1; }
}
# (d) what the carrier received names siphon only: one Via (th=), one
# Record-Route, a sealed Contact; in the dialog its own Contact as R-URI
check_carrier_sees_siphon() {
    local bad
    bad=$(lq '
        $2 != carrier { next }
        req() {
            nreq++
            if ($7 != 1 || index($6, "SIP/2.0/UDP " siphon ":") != 1 || $6 !~ /;th=[A-Za-z0-9_-]+/) bad("Via: " $6 " (" $7 " Vias) in " show())
            if (method() != "ACK" && $9 !~ ("^<sip:" siphon ":5060;lr(;th=[A-Za-z0-9_-]+)?>$")) bad("Record-Route: " $9 " in " show())
            if (method() == "INVITE" && $10 !~ ("^<sip:[A-Za-z0-9_-]+@" siphon ":5060>$")) bad("Contact: " $10 " in " show())
            if ($3 !~ /^INVITE sip:\+15551234@carrier\.example /) {
                indialog++
                if ($3 !~ (" sip:carrier-gw@" carrier " SIP/2.0$")) bad("a Request-URI other than its Contact in " show())
            }
            next
        }
        {
            # responses: its own Via back; siphon in Contact and Record-Route
            if ($7 != 1 || index($6, "SIP/2.0/UDP " carrier ";") != 1) bad("Via: " $6 " (" $7 " Vias) in " show())
            if ($10 != "" && $10 !~ ("^<sip:[A-Za-z0-9_-]+@" siphon ":5060>$")) bad("Contact: " $10 " in " show())
            if ($9 != "" && $9 !~ ("^<sip:" siphon ":5060;lr(;th=[A-Za-z0-9_-]+)?>$")) bad("Record-Route: " $9 " in " show())
        }
        END { if (!found && indialog == 0) print "no request in a dialog (" nreq " requests)" }')
    [ -z "$bad" ] || { WHY="the carrier got $bad"; return 1; }
    SEEN="e.g. Via: $(lq '$2 == carrier && req() { print substr($6, 1, 60); exit }')…; Contact: $(lq '$2 == carrier && method() == "INVITE" { print substr($10, 1, 24); exit }')…"
}
# (d) every request of the carrier's reached the caller through Kamailio:
# siphon put Kamailio's Record-Route back as the Route, Kamailio relayed it
# to the caller's own Contact with its Via on top (siphon's below it)
check_through_kamailio() {
    local from_carrier to_kam at_caller bad byes kbyes
    from_carrier=$(lq '$1 == carrier && req() { n++ } END { print n + 0 }')
    bad=$(lq 'host($1) == siphon && $2 == kam && req() && $8 != "<sip:" host(kam) ";lr>" { bad("Route: " $8 " in " show()) }')
    [ -z "$bad" ] || { WHY="siphon sent Kamailio a request without Kamailio's Record-Route as its Route: $bad"; return 1; }
    to_kam=$(lq 'host($1) == siphon && $2 == kam && req() { n++ } END { print n + 0 }')
    bad=$(lq '$2 == caller && req() && !(index($3, " sip:alice-phone@" caller " SIP/2.0") && index($6, "SIP/2.0/UDP " host(kam) ";") == 1 && $7 == 2) { bad(show() ", top Via " $6 " (" $7 " Vias)") }')
    [ -z "$bad" ] || { WHY="the caller got a request not at its Contact through Kamailio and siphon: $bad"; return 1; }
    at_caller=$(lq '$2 == caller && req() { n++ } END { print n + 0 }')
    # a retransmission may add one on a side; none may be missing
    if [ "$from_carrier" -lt $((CALLS * 5)) ] || [ "$to_kam" -lt "$from_carrier" ] || [ "$at_caller" -lt "$from_carrier" ]; then
        WHY="the carrier sent $from_carrier requests (want >= $((CALLS * 5)): a re-INVITE and its ACK per call in both runs, a BYE in one), siphon sent Kamailio $to_kam, the caller got $at_caller"
        return 1
    fi
    byes=$(lq '$2 == caller && method() == "BYE" && $5 ~ /-topo-callee$/ { n[$5] = 1 } END { print length(n) }')
    kbyes=$(tail -c +"$((KAM_LOG0 + 1))" "$W/kamailio/log" | grep -c "topo: BYE sip:alice-phone@$CALLER:5060 from $P_IP:" || true)
    if [ "$byes" != "$CALLS" ] || [ "$kbyes" -lt "$CALLS" ]; then
        WHY="the carrier's BYE reached the caller in $byes of $CALLS calls; Kamailio logged $kbyes BYEs from siphon"
        return 1
    fi
    THROUGH="the carrier's $from_carrier requests went siphon -> Kamailio ($to_kam, Route <sip:$KAM;lr>) -> the caller ($at_caller, R-URI its Contact, top Via Kamailio's); Kamailio logged $kbyes BYEs from siphon"
}
# what is not rewritten passes unchanged: Call-ID, From, To, SDP
check_untouched() {
    local sent got bad
    sent=$(lq '$1 == caller && method() == "INVITE" { print $5 }' | sort -u)
    got=$(lq '$2 == carrier && method() == "INVITE" { print $5 }' | sort -u)
    [ -n "$sent" ] && [ "$sent" = "$got" ] || { WHY="the Call-IDs the caller sent ($(echo $sent | head -c 100)…) are not those the carrier got ($(echo $got | head -c 100)…)"; return 1; }
    [ "$(echo "$sent" | wc -l)" = $((2 * CALLS)) ] || { WHY="$(echo "$sent" | wc -l) Call-IDs, want $((2 * CALLS))"; return 1; }
    bad=$(echo "$sent" | grep -v -m1 -E '^[0-9]+-[0-9]+-topo-(caller|callee)$' || true)
    [ -z "$bad" ] || { WHY="a Call-ID not made by -cid_str: $bad"; return 1; }
    bad=$(lq '$2 == carrier && req() && !($11 ~ /^"Alice" <sip:alice@pbx\.internal>;tag=[0-9]+SIPpTag00[0-9]+$/ && $12 ~ /^<sip:\+15551234@carrier\.example>(;tag=[0-9]+SIPpTag01[0-9]+)?$/) { bad(show() ": From " $11 ", To " $12) }')
    [ -z "$bad" ] || { WHY="the carrier got $bad"; return 1; }
    grep -a -q '^c=IN IP4 192\.0\.2\.10' "$D/carrier.txt" || { WHY="the caller's SDP (c=IN IP4 192.0.2.10) never reached the carrier"; return 1; }
    grep -a -q '^c=IN IP4 198\.51\.100\.20' "$D/caller.txt" || { WHY="the carrier's SDP (c=IN IP4 198.51.100.20) never reached the caller"; return 1; }
}
# siphon dropped nothing, logged no error and exits 0 on SIGTERM
check_siphon_clean() {
    local drops
    drops=$(scrape | awk '/^siphon_dropped_total\{/ && $2 > 0 { printf "%s=%s ", $1, $2 }')
    [ -z "$drops" ] || { WHY="siphon dropped messages: $drops"; return 1; }
    scrape >"$D/metrics.txt"
    siphon_exits_clean "$D" 3
}

# ---------------------------------------------------------------- modes
for mode in $MODES; do
    D="$W/$mode"
    mkdir -p "$D"
    # interop/topology/siphon.toml as it is (stateless), or with its mode line changed
    sed "s/^mode = \"stateless\"$/mode = \"$mode\"/" "$T/siphon.toml" >"$D/siphon.toml"
    grep -q "^mode = \"$mode\"$" "$D/siphon.toml" || die "$mode: siphon config" "no mode line to set in $T/siphon.toml"
    start_siphon "$D"
    if ! start_tcpdump "$D/cap.pcap" udp and net 127.0.8.0/24; then
        fail "$mode: capture" "$WHY"
        stop_pid "$SIPHON_PID"
        continue
    fi
    KAM_LOG0=$(stat -c %s "$W/kamailio/log")
    for bye in caller callee; do
        sipp_run "$D" "$bye"
        [ "$bye" = caller ] && who="the caller" || who="the carrier"
        check "$mode, BYE from $who: $CALLS calls (INVITE/100/180/200/ACK, re-INVITE each way, BYE) complete at both SIPps, 0 failed" calls_ok "$D" "$bye"
    done
    sleep 0.3 # the last datagrams reach the capture
    stop_pid "$TCPDUMP_PID"
    check "$mode: tcpdump captured every packet on 127.0.8.0/24" tcpdump_complete "$D/cap.pcap"
    if ! python3 "$T/sipdump.py" "$D/cap.pcap" "$D/cap.txt" "$D/cap.ladder" 2>"$D/sipdump.err"; then
        fail "$mode: capture" "sipdump.py: $(head -c 300 "$D/sipdump.err")"
    fi
    split_text
    CARRIER_N=0 CALLER_N=0 SEEN="" THROUGH=""
    if check_carrier_blind; then pass "$mode: the carrier exchanged its $CARRIER_N datagrams with siphon only; none holds $CALLER, $KAM or the caller's Contact user alice-phone (capture and SIPp trace)"; else fail "$mode: the carrier sees nothing internal" "$WHY"; fi
    if check_caller_blind; then pass "$mode: the caller exchanged its $CALLER_N datagrams with Kamailio only; none holds $CARRIER or the carrier's Contact user carrier-gw (capture and SIPp trace)"; else fail "$mode: the caller sees nothing of the carrier" "$WHY"; fi
    if check_carrier_sees_siphon; then pass "$mode: every request at the carrier has siphon's Via (th=) only, siphon's Record-Route only, Contact sip:TOKEN@$P_IP:5060; in the dialog its own Contact as R-URI ($SEEN)"; else fail "$mode: the carrier sees siphon only" "$WHY"; fi
    if check_through_kamailio; then pass "$mode: $THROUGH"; else fail "$mode: the carrier's requests reach the caller through Kamailio" "$WHY"; fi
    check "$mode: not rewritten, passed unchanged: Call-ID (no address in it), From, To, SDP" check_untouched
    check "$mode: siphon dropped nothing, logged no error, exits 0 on SIGTERM" check_siphon_clean
    stop_pid "$SIPHON_PID"
done

check_kamailio() {
    alive "$KAM_PID" || { WHY="Kamailio is not running any more: $(tail -3 "$W/kamailio/log" | tr '\n' ' ')"; return 1; }
    ! grep -a -q -E 'ERROR|CRITICAL' "$W/kamailio/log" || { WHY="$(grep -a -m1 -E 'ERROR|CRITICAL' "$W/kamailio/log")"; return 1; }
}
check "Kamailio still running, logged no error" check_kamailio

finish
