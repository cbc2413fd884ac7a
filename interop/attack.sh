#!/usr/bin/env bash
# Attack: siphon running config/secure-edge.toml (the internet edge config)
# against attack tools nobody on the project wrote: SIPVicious (svmap,
# svwar, svcrack), a request flood beside SIPp calls, an off-path response
# injector beside a ringing call, and a slowloris beside a TCP client
# (sipsak). See interop/README.md ("Attacks: interop/attack.sh").
#
#   bash interop/attack.sh                       # after cargo build --bin siphon
#   SIPHON=target/release/siphon FLOOD_RATE=50000 KEEP=1 bash interop/attack.sh
#
# 1. svmap finds siphon (recorded); siphon still answers afterwards.
# 2. svwar (REGISTER, INVITE, OPTIONS; alice, bob, carol exist, nobody1 and
#    nobody2 do not) cannot tell the known users from the unknown ones.
# 3. svcrack guessing alice's password (the right one at line 450 of 500)
#    does not find it: siphon bans it after [guard] auth_failures failures.
# 4. A flood from one address at >= 20,000 requests/s is banned while SIPp
#    calls with Digest from another address all complete.
# 5. Forged 200 OKs guessing siphon's branch while a call rings are dropped
#    (siphon_dropped_total{reason="forged_response"}), never relayed.
# 6. 2,000 slowloris TCP connections are shed (per-address cap, message
#    deadline) while a TCP client from another address is answered.
# 7. siphon logged no error and exits 0 on SIGTERM.
#
# Prints `PASS name: numbers` or `FAIL name: why` per check, then `N passed,
# M failed`; exits 1 if any check failed. The work dir (siphon's config,
# log and final /metrics, every tool's output, SIPp's traces) is kept when a
# check fails or KEEP=1. About 40 s (svcrack's own timeouts are 13 of them).
#
# Loopback only: siphon 127.0.5.1:5060 (UDP and TCP), metrics and admin API
# 127.0.5.1:9060; svmap 127.0.5.2; svwar and svcrack 127.0.0.1 (below);
# alice registering after svcrack 127.0.5.4; flooder 127.0.5.5; SIPp caller
# 127.0.5.6:5070 (check 4) and 127.0.5.9:5070 (check 5); SIPp callee bob
# 127.0.5.7:5080; injector's callee carol 127.0.5.10:5090, forger 127.0.5.8;
# slowloris 127.0.5.11-14; TCP client 127.0.5.15; liveness probes
# 127.0.5.20. svwar and svcrack 0.3.3 ignore -b (they bind 0.0.0.0), so
# their requests come from 127.0.0.1, the source Linux picks for any
# 127.x destination; -x 127.0.0.1 makes their Via say so. Every process it
# starts is stopped by PID at exit; every tool runs under timeout; every
# loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=interop/lib.sh
. interop/lib.sh
SIPHON="${SIPHON:-target/debug/siphon}"
KEEP="${KEEP:-0}"
FLOOD_RATE="${FLOOD_RATE:-25000}"
FLOOD_S="${FLOOD_S:-8}"
SLOW_CONNS="${SLOW_CONNS:-2000}"
SLOW_S="${SLOW_S:-9}"

P_IP=127.0.5.1
METRICS=127.0.5.1:9060
PROBE_IP=127.0.5.20
A=interop/attack

need_tools "apt-get install sipvicious sipsak sip-tester curl python3" svmap svwar svcrack sipsak sipp curl python3 timeout
need_siphon

# 2,000 connections need 2,000 descriptors in this script's python and
# (briefly) in siphon, which inherits the limit: raise the soft limit if it
# is lower (never lower it), and use fewer connections if that is refused.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
    ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((SLOW_CONNS + 256)) ]; then
    info "ulimit -n is $NOFILE: slowloris with $((NOFILE - 256)) connections instead of $SLOW_CONNS"
    SLOW_CONNS=$((NOFILE - 256))
fi

start_work siphon-attack

# the sum over shards of one metric's series whose labels contain LABEL
metric_where() { scrape | awk -v n="$1" -v l="$2" 'index($1, n "{") == 1 && index($1, l) { s += $2 } END { printf "%d\n", s }'; }
bans() { curl -s --max-time 2 "http://$METRICS/admin/bans" 2>/dev/null || true; }
# ban_of ADDRESS: "reason drops" of its ban, or nothing
ban_of() { bans | grep -o "{\"address\":\"$1\",\"reason\":\"[a-z]*\"[^}]*}" | sed 's/.*"reason":"\([a-z]*\)".*"drops":\([0-9]*\).*/\1 \2/'; }
# serving: siphon answers an OPTIONS over UDP from PROBE_IP with 200
serving() {
    alive "$SIPHON_PID" || { WHY="siphon is not running: $(tail -2 "$W/siphon/log" | tr '\n' ' ')"; return 1; }
    local out
    out=$(timeout 10 sipsak -vv -s "sip:$P_IP" -k "$PROBE_IP" -H "$PROBE_IP" 2>&1) || true
    echo "$out" | grep -q '^SIP/2.0 200' && return 0
    WHY="sipsak OPTIONS from $PROBE_IP got no 200: $(echo "$out" | grep -a -E '^SIP/2.0|error|timeout' | head -2 | tr '\n' ' ')"
    return 1
}
# sipp_register USER PASSWORD IP PORT: a Digest REGISTER from IP:PORT
# binding sip:USER@IP:PORT (sipp/uac_register_auth.xml; SIPp sends from the
# port it names in Via and Contact, so the binding is not taken for a NATed
# one, as sipsak's would be: it sends from another port than its Via's)
sipp_register() {
    local u=$1 pw=$2 ip=$3 port=$4 b
    printf 'SEQUENTIAL\n%s;%s\n' "$u" "$pw" >"$W/reg-$u.csv"
    timeout 20 sipp -sf sipp/uac_register_auth.xml "$P_IP:5060" -i "$ip" -p "$port" -m 1 -inf "$W/reg-$u.csv" \
        -key domain example.com -key contact "$ip:$port" -auth_uri example.com -nostdin -timeout 15s \
        -trace_err -error_file "$W/reg-$u.err" >"$W/reg-$u.out" 2>&1 ||
        { WHY="SIPp REGISTER $u with Digest failed: $(head -c 300 "$W/reg-$u.err" 2>/dev/null)"; return 1; }
    b=$(aor "$u")
    echo "$b" | grep -q "\"contact\":\"sip:$u@$ip:$port\"" || { WHY="no binding sip:$u@$ip:$port after REGISTER: $b"; return 1; }
}

# ---------------------------------------------------------------- siphon
# config/secure-edge.toml as it is, but for three addresses:
# - both [[listen]] addrs 127.0.0.1:5060 -> 127.0.5.1:5060, and
# - [metrics] listen 127.0.0.1:9060 -> 127.0.5.1:9060:
#   a range of its own, so that the run neither collides with nor (SO_REUSEPORT)
#   shares sockets with a siphon someone runs on the config's own address, or
#   with interop/run.sh (127.0.4.x) and sipp/run.sh (127.0.3.x, 127.0.0.1);
#   the ports stay.
# Everything else is the file's: users_file (a copy of
# config/registrar-users.txt beside it), the [acl] trusted address
# 127.0.0.250 (no attacker here uses it), [auth], [guard], [tcp]. "journal
# none": secure-edge.toml has no journal_dir, so bindings live in memory.
mkdir -p "$W/siphon" "$W/home"
sed -e 's/^addr = "127\.0\.0\.1:5060"$/addr = "127.0.5.1:5060"/' \
    -e 's/^listen = "127\.0\.0\.1:9060"$/listen = "127.0.5.1:9060"/' \
    config/secure-edge.toml >"$W/siphon/siphon.toml"
cp config/registrar-users.txt "$W/siphon/registrar-users.txt"
changed=$(diff config/secure-edge.toml "$W/siphon/siphon.toml" | grep -c '^>' || true)
[ "$changed" = 3 ] || die "siphon config" "expected 3 lines of config/secure-edge.toml changed (two listen addrs, metrics), got $changed: has the file changed?"
# the numbers the checks hold siphon to, from the config itself
cfg() { awk -v s="[$1]" -v k="$2" '$0 == s { in_s = 1; next } /^\[/ { in_s = 0 } in_s && $1 == k { print $3; exit }' "$W/siphon/siphon.toml"; }
AUTH_FAILURES=$(cfg guard auth_failures)
MAX_REQUESTS=$(cfg guard max_requests)
WINDOW_MS=$(cfg guard window_ms)
MSG_TIMEOUT_MS=$(cfg tcp message_timeout_ms)
MAX_PER_SOURCE=$(cfg tcp max_per_source)
start_siphon "$W/siphon"
SHARDS=$(scrape | grep -c '^siphon_udp_datagrams_received_total{' || true)
pass "siphon starts with config/secure-edge.toml ($changed address lines moved to $P_IP; $SHARDS shards; guard max_requests=$MAX_REQUESTS per ${WINDOW_MS} ms, auth_failures=$AUTH_FAILURES; tcp max_per_source=$MAX_PER_SOURCE, message_timeout_ms=$MSG_TIMEOUT_MS)"

# ---------------------------------------------------------------- 1. svmap
# A scanner: what it reports is recorded, not judged. sipvicious keeps its
# sessions under $HOME/.sipvicious: HOME is the work dir.
check_svmap() {
    timeout 30 env HOME="$W/home" svmap -b 127.0.5.2 -p 5060 "$P_IP" >"$W/svmap.out" 2>&1 || true
    local found
    found=$(grep -E '^\| [0-9.]+:[0-9]+ ' "$W/svmap.out" | tr -s ' ' | sed 's/ *$//' | tr '\n' ' ' | sed 's/ $//')
    SVMAP_SUMMARY="it reports ${found:-nothing} (device | User-Agent: the Server header, [server] user_agent); afterwards siphon answers OPTIONS from $PROBE_IP with 200"
    serving
}
SVMAP_SUMMARY=""
if check_svmap; then pass "svmap scans from 127.0.5.2, siphon still serves: $SVMAP_SUMMARY"; else fail "svmap scans from 127.0.5.2, siphon still serves" "$WHY"; fi

# ---------------------------------------------------------------- 2. svwar
# svwar first sends the method for a random extension and keeps its status
# line as "the answer for nobody"; any name that gets another is reported
# found. With a whole list it gives up at the first name whose answer is
# that same status line but not one it expects for an unknown user (401,
# 407: "We got an unknown response"), so it runs once per name and method,
# all 15 at once (each ends 3 s after its last answer). --force: without
# it svwar refuses to scan a server that challenges unknown users at all.
# For OPTIONS svwar 0.3.3 never gets past the random extension (siphon's 480
# for it is what svwar takes for a device that is down), so sipsak asks the
# same OPTIONS for each name, to record that siphon's answers are the same.
check_svwar() {
    local m u p port=15061 pids=() found=0 runs=0 nothing=0 summary="" codes
    mkdir -p "$W/svwar"
    for m in REGISTER INVITE OPTIONS; do
        for u in alice bob carol nobody1 nobody2; do
            echo "$u" >"$W/svwar/$u.dict"
            timeout 30 env HOME="$W/home" svwar -P "$port" -x 127.0.0.1 -d "$W/svwar/$u.dict" -m "$m" \
                --domain example.com --force -v --debug "$P_IP" >"$W/svwar/$m-$u.out" 2>&1 &
            pids+=("$!")
            PIDS+=("$!")
            port=$((port + 1))
        done
    done
    for p in "${pids[@]}"; do wait "$p" || true; REAPED[$p]=1; done
    for m in REGISTER INVITE OPTIONS; do
        codes=""
        for u in alice bob carol nobody1 nobody2; do
            local f="$W/svwar/$m-$u.out" c
            runs=$((runs + 1))
            if grep -q -E "extension '.*' (exists|probably exists)|^\| " "$f"; then
                found=$((found + 1))
                info "svwar -m $m found $u: $(grep -E "exists|^\| " "$f" | head -3 | tr '\n' ' ')"
            fi
            grep -q 'found nothing' "$f" && nothing=$((nothing + 1))
            # the status line siphon gave this name, as svwar printed it
            c=$(grep -a "^b'SIP/2.0 " "$f" | grep -a "To: \"$u\"" | head -1 | sed "s/^b'SIP\/2.0 \([0-9]*\).*/\1/")
            codes="$codes $u=${c:--}"
        done
        if [ "$m" = OPTIONS ]; then
            codes=""
            for u in alice bob carol nobody1 nobody2; do
                c=$(timeout 10 sipsak -vv -s "sip:$u@$P_IP" -k 127.0.5.3 -H 127.0.5.3 2>&1 | grep -a -m1 -o '^SIP/2.0 [0-9]*' | cut -d' ' -f2) || true
                codes="$codes $u=${c:--}"
            done
            codes="$codes (sipsak)"
        fi
        # svwar's first probe: a random extension
        codes="$codes, svwar's random name=$(grep -a -m1 "^b'SIP/2.0 " "$W/svwar/$m-alice.out" | cut -c3-14 | cut -d' ' -f2)"
        summary="$summary${summary:+;} $m:$codes"
        # the answers must be one status for all five names
        local distinct
        if echo "$codes" | grep -q -- '=-\|=,\|=$'; then
            WHY="no answer to $m recorded for some names:$codes (see $W/svwar)"
            return 1
        fi
        distinct=$(echo "$codes" | grep -o '=[0-9-]*' | sort -u | wc -l)
        if [ "$distinct" != 1 ]; then
            WHY="siphon's answers differ by name for $m:$codes"
            return 1
        fi
    done
    SVWAR_SUMMARY="svwar found $found of 15 names in $runs runs (\"found nothing\" in $nothing); answers:$summary"
    if [ "$found" != 0 ] || [ "$nothing" != "$runs" ]; then
        WHY="$SVWAR_SUMMARY"
        return 1
    fi
    serving
}
SVWAR_SUMMARY=""
if check_svwar; then pass "svwar cannot tell alice/bob/carol from nobody1/nobody2: $SVWAR_SUMMARY"; else fail "svwar cannot tell known users from unknown" "$WHY"; fi

# ---------------------------------------------------------------- 3. svcrack
# 500 guesses for alice, the right one ("alice-secret", config/
# registrar-users.txt) at line 450. svcrack takes a fresh challenge for
# every guess, so [auth] max_nonce_failures does not come into it: the
# guard's auth_failures does. --maximumtime 3: it gives up 3 s after the
# last answer (then waits its socket's 10 s timeout); -vvv logs each guess.
check_svcrack() {
    local i
    for ((i = 1; i <= 500; i++)); do
        if [ "$i" = 450 ]; then echo alice-secret; else printf 'guess%03d\n' "$i"; fi
    done >"$W/svcrack.words"
    local af0 ab0
    af0=$(metric siphon_auth_failures_total)
    ab0=$(metric_where siphon_bans_total 'reason="auth"')
    timeout 40 env HOME="$W/home" svcrack -P 15080 -x 127.0.0.1 -u alice -d "$W/svcrack.words" --domain example.com \
        --maximumtime 3 -vvv "$P_IP" >"$W/svcrack.out" 2>&1 || true
    local tried cracked af ab ban addr reason drops
    tried=$(grep -c "ASipOfRedWine:trying " "$W/svcrack.out" || true)
    cracked=$(grep -a -o "The password for .*" "$W/svcrack.out" | head -1)
    af=$(($(metric siphon_auth_failures_total) - af0))
    ab=$(($(metric_where siphon_bans_total 'reason="auth"') - ab0))
    ban=$(bans | grep -o '{"address":"127\.0\.0\.[0-9]*","reason":"auth"[^}]*}' | head -1)
    addr=$(echo "$ban" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p')
    drops=$(echo "$ban" | sed -n 's/.*"drops":\([0-9]*\).*/\1/p')
    [ -z "$cracked" ] || { WHY="svcrack found it: $cracked"; return 1; }
    grep -q 'found nothing' "$W/svcrack.out" || { WHY="svcrack did not end with 'found nothing': $(tail -2 "$W/svcrack.out" | tr '\n' ' ')"; return 1; }
    [ -n "$ban" ] || { WHY="GET /admin/bans lists no 127.0.0.x with reason auth: $(bans)"; return 1; }
    [ "$ab" = 1 ] || { WHY="siphon_bans_total{reason=\"auth\"} rose by $ab, want 1"; return 1; }
    # banned at the auth_failures-th failure; a guess already in flight
    # could add one, never more (the ban drops the rest before parsing)
    if [ "$af" -lt "$AUTH_FAILURES" ] || [ "$af" -gt $((AUTH_FAILURES + 2)) ]; then
        WHY="siphon_auth_failures_total rose by $af, want $AUTH_FAILURES..$((AUTH_FAILURES + 2)) (auth_failures = $AUTH_FAILURES)"
        return 1
    fi
    # no lock-out: the ban is the guesser's address, not alice's account
    local out
    out=$(timeout 15 sipsak -vvv -U -s "sip:alice@$P_IP" -u alice -a alice-secret -C "sip:alice@127.0.5.4:5075" -x 60 \
        -k 127.0.5.4 -H 127.0.5.4 2>&1) || true
    echo "$out" | grep -q '^SIP/2.0 200' || { WHY="alice (right password, 127.0.5.4) did not get 200 after the guessing: $(echo "$out" | grep -a -E '^SIP/2.0' | tr '\n' ' ')"; return 1; }
    SVCRACK_SUMMARY="svcrack found nothing: it sent $tried of 500 guesses (the right one is #450), siphon counted $af failed authentications (auth_failures = $AUTH_FAILURES) and banned $addr (reason auth, $drops of its datagrams dropped since); alice still registers from 127.0.5.4 (401, then 200 with her password)"
}
SVCRACK_SUMMARY=""
if check_svcrack; then pass "svcrack does not find alice's password: $SVCRACK_SUMMARY"; else fail "svcrack does not find alice's password" "$WHY"; fi

# ---------------------------------------------------------------- 4. flood
# flood.py sends OPTIONS from 127.0.5.5 at FLOOD_RATE/s for FLOOD_S s;
# meanwhile alice (SIPp, 127.0.5.6) calls bob (a SIPp UAS, 127.0.5.7:5080,
# registered there with Digest) 4 times a second for FLOOD_S - 2 s.
# The caller is a phone, not a trunk: it authenticates every INVITE with
# Digest (SIPp's [authentication], the realistic way: secure-edge.toml
# challenges every INVITE, and siphon has no route without auth) and is
# not in the exempt ACL. A call is 5 requests from it (INVITE, ACK for the
# 407, INVITE with credentials, ACK, BYE): 4 calls/s are 40 per 2-s window,
# well under max_requests = 100, as a phone's traffic is. A trunk with more
# traffic than that belongs in [acl] trusted ([guard] exempt). The callee
# sends only responses, which the guard does not count, and one REGISTER.
check_flood() {
    # 4 calls a second from 0.7 s into the flood until 1.3 s before its end
    local rate=4 calls=$((FLOOD_S > 3 ? 4 * (FLOOD_S - 2) : 4))
    sipp_register bob bob-secret 127.0.5.7 5080 || return 1
    local rx0 fb0
    rx0=$(metric siphon_udp_datagrams_received_total)
    fb0=$(metric_where siphon_bans_total 'reason="flood"')
    python3 "$A/flood.py" --src 127.0.5.5 --dst "$P_IP:5060" --rate "$FLOOD_RATE" --seconds "$FLOOD_S" >"$W/flood.out" 2>&1 &
    local fpid=$!
    PIDS+=("$fpid")
    sleep 0.5
    timeout 40 sipp -sf sipp/uas.xml -i 127.0.5.7 -p 5080 -m "$calls" -nostdin -timeout 30s \
        -trace_err -error_file "$W/flood-uas.err" >"$W/flood-uas.out" 2>&1 &
    local upid=$!
    PIDS+=("$upid")
    sleep 0.2
    local urc=0 crc=0
    timeout 40 sipp -sf "$A/uac_digest.xml" "$P_IP:5060" -i 127.0.5.6 -p 5070 -s bob -au alice -ap alice-secret \
        -auth_uri bob@example.com -m "$calls" -r "$rate" -recv_timeout 10000 -nostdin -timeout 30s \
        -trace_stat -stf "$W/flood-uac.csv" -trace_err -error_file "$W/flood-uac.err" >"$W/flood-uac.out" 2>&1 || crc=$?
    wait "$upid" || urc=$?
    REAPED[$upid]=1
    wait "$fpid" || true
    REAPED[$fpid]=1
    local fl ok failed retrans rx fb ban
    fl=$(grep -o 'sent .*' "$W/flood.out" || true)
    ok=$(sipp_stat "$W/flood-uac.csv" 'SuccessfulCall(C)')
    failed=$(sipp_stat "$W/flood-uac.csv" 'FailedCall(C)')
    retrans=$(sipp_stat "$W/flood-uac.csv" 'Retransmissions(C)')
    rx=$(($(metric siphon_udp_datagrams_received_total) - rx0))
    fb=$(($(metric_where siphon_bans_total 'reason="flood"') - fb0))
    ban=$(ban_of 127.0.5.5)
    ban=${ban:-none 0}
    local sent="" secs="" frate=""
    read -r sent secs frate < <(sed -n 's/^flood: sent \([0-9]*\) in \([0-9.]*\) s = \([0-9]*\)\/s.*/\1 \2 \3/p' "$W/flood.out") || true
    [ -n "$frate" ] || { WHY="flood.py said: $(head -c 300 "$W/flood.out")"; return 1; }
    FLOOD_SUMMARY="flooder 127.0.5.5 sent $sent OPTIONS in $secs s = $frate/s (siphon received $rx datagrams meanwhile = $(awk -v r="$rx" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')/s), banned with reason ${ban%% *}, ${ban#* } of its datagrams dropped unparsed ($((sent - ${ban#* })) got through: max_requests = $MAX_REQUESTS, and what the kernel dropped); SIPp alice->bob with Digest from 127.0.5.6: $ok of $calls calls completed, $failed failed, $retrans retransmissions (UAC rc $crc, UAS rc $urc)"
    [ "$frate" -ge 20000 ] || { WHY="the flood reached only $frate/s (< 20,000): $FLOOD_SUMMARY"; return 1; }
    [ "${ban%% *}" = flood ] || { WHY="/admin/bans does not list 127.0.5.5 with reason flood: $(bans)"; return 1; }
    [ "$fb" = 1 ] || { WHY="siphon_bans_total{reason=\"flood\"} rose by $fb, want 1 (the flooder only): $(bans)"; return 1; }
    [ -z "$(ban_of 127.0.5.6)" ] || { WHY="the caller 127.0.5.6 was banned too: $(ban_of 127.0.5.6)"; return 1; }
    if [ "$failed" != 0 ] || [ "$ok" != "$calls" ] || [ "$crc" != 0 ] || [ "$urc" != 0 ]; then
        WHY="$FLOOD_SUMMARY; SIPp errors: $(grep -a -m2 -E 'Aborting|unexpected|Dead' "$W/flood-uac.err" 2>/dev/null | cut -c1-200 | tr '\n' ' ')"
        return 1
    fi
}
FLOOD_SUMMARY=""
if check_flood; then pass "a flood from one address is banned while SIPp calls complete: $FLOOD_SUMMARY"; else fail "a flood from one address is banned while SIPp calls complete" "$WHY"; fi

# ---------------------------------------------------------------- 5. forger
# alice (SIPp, 127.0.5.9, Digest) calls carol; carol is inject.py's callee
# (registered at 127.0.5.10:5090 with Digest by SIPp), which rings for 1 s
# while its forger (127.0.5.8) sends siphon 64 forged 200 OKs guessing the
# branch (see interop/attack/inject.py), then answers. The caller must see
# only carol's answers: no To tag "forged…", no Contact or SDP of the
# forger.
check_forger() {
    sipp_register carol carol-secret 127.0.5.10 5090 || return 1
    local f0
    f0=$(metric_where siphon_dropped_total 'reason="forged_response"')
    python3 "$A/inject.py" --uas 127.0.5.10:5090 --forger 127.0.5.8 --proxy "$P_IP:5060" --ring 1 --timeout 20 \
        >"$W/inject.out" 2>&1 &
    local ipid=$!
    PIDS+=("$ipid")
    wait_until 5 grep -q '^ready' "$W/inject.out" || { WHY="inject.py did not start: $(head -c 300 "$W/inject.out")"; return 1; }
    local crc=0 irc=0
    timeout 30 sipp -sf "$A/uac_digest.xml" "$P_IP:5060" -i 127.0.5.9 -p 5070 -s carol -au alice -ap alice-secret \
        -auth_uri carol@example.com -m 1 -recv_timeout 10000 -nostdin -timeout 20s \
        -trace_stat -stf "$W/inject-uac.csv" -trace_msg -message_file "$W/inject-uac.msg" \
        -trace_err -error_file "$W/inject-uac.err" >"$W/inject-uac.out" 2>&1 || crc=$?
    wait "$ipid" || irc=$?
    REAPED[$ipid]=1
    local forged f ok failed leaked branch
    forged=$(sed -n 's/^forged=\([0-9]*\).*/\1/p' "$W/inject.out")
    branch=$(sed -n 's/^branch=//p' "$W/inject.out")
    f=$(($(metric_where siphon_dropped_total 'reason="forged_response"') - f0))
    ok=$(sipp_stat "$W/inject-uac.csv" 'SuccessfulCall(C)')
    failed=$(sipp_stat "$W/inject-uac.csv" 'FailedCall(C)')
    leaked=$(grep -a -c -E 'tag=forged|forger@|IN IP4 127\.0\.5\.8' "$W/inject-uac.msg" 2>/dev/null || true)
    FORGER_SUMMARY="${forged:-0} forged 200 OKs ($(grep -o 'forged_random=.*' "$W/inject.out" | tr ' ' ',')) for siphon's branch $branch; siphon_dropped_total{reason=\"forged_response\"} +$f; the caller saw $leaked forged lines, got carol's 180 and 200 and completed $ok call ($failed failed; callee: $(grep -E '^(ack|bye)=' "$W/inject.out" | tr '\n' ' ' | sed 's/ $//'))"
    [ -n "$forged" ] && [ "$forged" -gt 0 ] || { WHY="the forger sent nothing: $(tr '\n' ' ' <"$W/inject.out" | head -c 300)"; return 1; }
    [ "$leaked" = 0 ] || { WHY="the caller received the forger's response: $(grep -a -m3 -E 'tag=forged|forger@|IN IP4 127\.0\.5\.8' "$W/inject-uac.msg" | tr '\n' ' ')"; return 1; }
    [ "$f" -ge "$forged" ] || { WHY="siphon counted $f forged responses, the forger sent $forged: $FORGER_SUMMARY"; return 1; }
    if [ "$crc" != 0 ] || [ "$irc" != 0 ] || [ "$ok" != 1 ]; then
        WHY="the call did not complete (SIPp rc $crc, inject.py rc $irc): $FORGER_SUMMARY; $(head -c 300 "$W/inject-uac.err" 2>/dev/null)"
        return 1
    fi
}
FORGER_SUMMARY=""
if check_forger; then pass "an off-path injector's forged 200 OKs are dropped while the call rings: $FORGER_SUMMARY"; else fail "an off-path injector's forged 200 OKs are dropped while the call rings" "$WHY"; fi

# ---------------------------------------------------------------- 6. slowloris
# SLOW_CONNS connections from 127.0.5.11-14 dribbling a byte a second for
# SLOW_S s. Expected: per address max_per_source are accepted (split over
# the shards) and cut message_timeout_ms after their first byte
# (siphon_tcp_slow_closed_total), the rest closed at accept
# (siphon_tcp_source_rejected_total). Once every connection is open, a TCP
# client from 127.0.5.15 (sipsak) sends OPTIONS and registers alice with
# Digest: both answered.
check_slowloris() {
    local srcs=127.0.5.11,127.0.5.12,127.0.5.13,127.0.5.14 rj0 sc0
    rj0=$(metric siphon_tcp_source_rejected_total)
    sc0=$(metric siphon_tcp_slow_closed_total)
    python3 "$A/slowloris.py" --srcs "$srcs" --dst "$P_IP:5060" --conns "$SLOW_CONNS" --seconds "$SLOW_S" \
        >"$W/slowloris.out" 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    # every connection opened, the accepted ones still dribbling
    wait_until 10 grep -q -E "^t=([2-9]|[1-9][0-9]) connected=" "$W/slowloris.out" || true
    local during opts reg orc=0 rrc=0
    during=$(grep '^t=' "$W/slowloris.out" | tail -1)
    opts=$(timeout 15 sipsak -vv -E tcp -s "sip:$P_IP" -k 127.0.5.15 -H 127.0.5.15 2>&1) || orc=$?
    reg=$(timeout 15 sipsak -vvv -E tcp -U -s "sip:alice@$P_IP" -u alice -a alice-secret -C "sip:alice@127.0.5.15:5070" \
        -x 60 -k 127.0.5.15 -H 127.0.5.15 2>&1) || rrc=$?
    local during2
    during2=$(grep '^t=' "$W/slowloris.out" | tail -1)
    wait "$spid" || true
    REAPED[$spid]=1
    local rj sc last connected open fast slow lmax
    rj=$(($(metric siphon_tcp_source_rejected_total) - rj0))
    sc=$(($(metric siphon_tcp_slow_closed_total) - sc0))
    last=$(tail -1 "$W/slowloris.out")
    connected=$(echo "$last" | sed -n 's/.*\bconnected=\([0-9]*\).*/\1/p')
    open=$(echo "$last" | sed -n 's/.* open=\([0-9]*\).*/\1/p')
    fast=$(echo "$last" | sed -n 's/.*closed_fast=\([0-9]*\).*/\1/p')
    slow=$(echo "$last" | sed -n 's/.*closed_slow=\([0-9]*\).*/\1/p')
    lmax=$(echo "$last" | sed -n 's/.*lifetime_max=\([0-9.]*\).*/\1/p')
    SLOW_SUMMARY="$connected connections from 4 addresses (while the client ran: ${during#t=* } .. ${during2#t=* }); siphon_tcp_source_rejected_total +$rj, siphon_tcp_slow_closed_total +$sc; the attacker saw $fast closed within 1 s, $slow later (longest ${lmax} s, message_timeout_ms = $MSG_TIMEOUT_MS), $open open at the end; 127.0.5.15 over TCP: OPTIONS $(echo "$opts" | grep -a -m1 -o '^SIP/2.0 [0-9]*' || echo none), REGISTER $(echo "$reg" | grep -a -o '^SIP/2.0 [0-9]*' | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//; s/ /->/g')"
    [ -n "$connected" ] && [ "$connected" = "$SLOW_CONNS" ] || { WHY="slowloris.py did not open $SLOW_CONNS connections: $last"; return 1; }
    { [ "$orc" = 0 ] && echo "$opts" | grep -q '^SIP/2.0 200'; } || { WHY="the TCP client's OPTIONS got no 200 (sipsak rc $orc): $SLOW_SUMMARY"; return 1; }
    { [ "$rrc" = 0 ] && echo "$reg" | grep -q '^SIP/2.0 200'; } || { WHY="the TCP client's REGISTER got no 200 (sipsak rc $rrc): $SLOW_SUMMARY"; return 1; }
    [ "$open" = 0 ] || { WHY="$open slowloris connections still open after $SLOW_S s: $SLOW_SUMMARY"; return 1; }
    [ $((rj + sc)) -ge "$SLOW_CONNS" ] || { WHY="siphon shed $((rj + sc)) (rejected + slow-closed) of $SLOW_CONNS: $SLOW_SUMMARY"; return 1; }
    [ "$sc" -gt 0 ] && [ "$rj" -gt 0 ] || { WHY="want both slow-closed and rejected connections: $SLOW_SUMMARY"; return 1; }
    # opened over 0.5 s, first byte at the first tick, cut at the deadline:
    # a few tenths over message_timeout_ms (idle_timeout is 180 s)
    awk -v l="$lmax" -v t="$MSG_TIMEOUT_MS" 'BEGIN { exit !(l <= t / 1000 + 2.5) }' ||
        { WHY="a dribbling connection lived ${lmax} s, message_timeout_ms = $MSG_TIMEOUT_MS: $SLOW_SUMMARY"; return 1; }
}
SLOW_SUMMARY=""
if check_slowloris; then pass "slowloris is shed while a TCP client is answered: $SLOW_SUMMARY"; else fail "slowloris is shed while a TCP client is answered" "$WHY"; fi

# ---------------------------------------------------------------- the end
scrape >"$W/siphon/metrics.txt"
info "bans at the end: $(bans | tr -d '\n')"
check "siphon: no errors logged, exits 0 on SIGTERM" siphon_exits_clean "$W/siphon"

finish
