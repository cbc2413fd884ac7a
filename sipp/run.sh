#!/usr/bin/env bash
# SIPp interop: SIPp UAC -> siphon -> SIPp UAS for a bounded number of calls,
# once per proxy mode in MODES.
#
# stateless: INVITE/180/200/ACK/BYE/200 with Record-Route over each of
#   TRANSPORTS (UDP, then TCP on both legs), then OPTIONS to siphon itself.
# stateful: the same calls, then CANCEL (INVITE/180/CANCEL/200/487/ACK,
#   siphon cancelling the downstream leg and relaying the 487), then serial
#   failover (a destination of two targets, one answering 503 and one a
#   normal UAS, started round-robin: every call must succeed, and every 503
#   must have been followed by a failover), then OPTIONS.
# registrar: a stateful siphon with [registrar] (UDP): REG_USERS REGISTERs
#   (one user each, from a generated injection file) at REG_RATE, then
#   siphon's binding gauge must equal REG_USERS; CALLS calls to registered
#   users (siphon's location service forwards each INVITE to the Contact
#   the user registered, a SIPp UAS); 100 INVITEs to unknown users (404).
#   Then a second siphon with [auth] (a generated users file): AUTH_CALLS
#   REGISTERs with Digest (401, then [authentication]), and 100 INVITEs to
#   users of the file who never registered (480). That siphon offers MD5
#   first (auth.algorithms): SIPp 3.6.1 answers the first WWW-Authenticate
#   and computes MD5 only (see sipp/README.md).
# Fails on any failed call, unexpected message or timeout.
#
#   bash sipp/run.sh                 # CALLS=300 RATE=100 TRANSPORTS="udp tcp" MODES="stateless stateful registrar"
#   CALLS=2000 RATE=500 TRANSPORTS=tcp MODES=stateful bash sipp/run.sh
#   MODES=registrar REG_USERS=10000 REG_RATE=1000 AUTH_CALLS=1000 bash sipp/run.sh
#   TRACE=1 bash sipp/run.sh         # also -trace_msg for every SIPp (kept in the work dir)
#
# Needs sipp (Debian: apt-get install sip-tester). Loopback only:
#   stateless siphon 127.0.3.1:5060 (UDP and TCP); UAC 127.0.3.2:5070;
#     UAS 127.0.3.3:5080 (UDP) / :5081 (TCP)
#   stateful siphon 127.0.3.1:5062 (UDP and TCP), metrics 127.0.3.1:9062;
#     UAC 127.0.3.2:5072 (UDP) / :5073 (TCP) / :5074 (CANCEL) / :5075
#     (failover); UAS 127.0.3.3:5082 (UDP) / :5083 (TCP) / :5084 (CANCEL) /
#     :5085 (503, failover first target) / :5086 (failover second target)
#   registrar siphon 127.0.3.1:5064 (UDP and TCP), metrics 127.0.3.1:9064;
#     with [auth] 127.0.3.1:5065, metrics :9065; UAC 127.0.3.2:5076
#     (REGISTER) / :5077 (INVITE) / :5078 (404) / :5079 (REGISTER with
#     Digest) / :5087 (480); UAS (the registered Contact) 127.0.3.3:5090
#   OPTIONS from 127.0.3.4.
# Every process it starts is stopped by PID; every SIPp run is bounded by -m
# and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS="${CALLS:-300}"
RATE="${RATE:-100}"
TRANSPORTS="${TRANSPORTS:-udp tcp}"
MODES="${MODES:-stateless stateful registrar}"
REG_USERS="${REG_USERS:-10000}"
REG_RATE="${REG_RATE:-1000}"
AUTH_CALLS="${AUTH_CALLS:-1000}"
TRACE="${TRACE:-0}"
SIPHON="${SIPHON:-target/debug/siphon}"
command -v sipp >/dev/null || { echo "sipp/run.sh: sipp not found (apt-get install sip-tester)"; exit 1; }
[ -x "$SIPHON" ] || cargo build --bin siphon

work=$(mktemp -d)
# On exit, stop whatever this script started that still runs (its own
# background jobs, by PID).
cleanup() {
    local p
    for p in $(jobs -pr); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

limit=$(( CALLS / RATE + 60 ))
failed_any=0

# Successful/failed calls from the last line of SIPp's stat CSV.
stat() { # file column
    [ -s "$1" ] || { echo "?"; return 0; }
    awk -F';' -v col="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==col) c=i} END {print $c}' "$1"
}

# Common SIPp arguments for a run named $1: bounded, stats and errors to
# the work dir, messages too with TRACE=1.
sipp_args() { # name
    local a=(-nostdin -timeout "${limit}s" -trace_stat -stf "$work/$1.csv" -trace_err -error_file "$work/$1.err")
    [ "$TRACE" = 1 ] && a+=(-trace_msg -message_file "$work/$1.msg")
    printf '%s\n' "${a[@]}"
}

# Print the errors and the end of the output of the SIPp runs named.
show() { # name...
    local n
    for n in "$@"; do
        [ -s "$work/$n.err" ] && { echo "--- $n.err"; head -n 40 "$work/$n.err"; }
        [ -s "$work/$n.out" ] && { echo "--- $n.out"; tail -n 20 "$work/$n.out"; }
    done
    return 0
}

# One counter of a siphon's metrics (by default the stateful one's), summed
# over the shards (plain bash: no curl needed).
metric() { # name [metrics-host:port]
    local addr=${2:-127.0.3.1:9062} sum
    { exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"; } 2>/dev/null || { echo "?"; return 0; }
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
    sum=$(awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}' <&3)
    exec 3<&-
    echo "$sum"
}

# Start siphon with config $1, logging to $2; wait (bounded) until it
# answers OPTIONS on $3. A siphon that exits (say, its port is taken) fails
# the script, even if something else answered the OPTIONS.
siphon_pid=
start_siphon() { # config log addr
    "$SIPHON" --config "$1" 2> "$2" &
    siphon_pid=$!
    local _
    for _ in $(seq 1 50); do
        kill -0 "$siphon_pid" 2>/dev/null || break
        if timeout 5 sipp -sf sipp/options.xml "$3" -i 127.0.3.4 -m 1 -nostdin -timeout 2s -recv_timeout 1000 \
            > /dev/null 2>&1 && kill -0 "$siphon_pid" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "sipp/run.sh: siphon ($1) did not come up"
    cat "$2"
    exit 1
}

# Stop siphon (SIGTERM, then wait); fails the run if it had already exited.
stop_siphon() { # log
    if ! kill -TERM "$siphon_pid" 2>/dev/null; then
        echo "sipp/run.sh: siphon exited before the end of its runs"
        failed_any=1
    fi
    wait "$siphon_pid" || true
    tail -n 1 "$1"
}

# One UAC against one UAS through siphon at $proxy; one report line. Any
# further arguments go to the UAC.
run_calls() { # label uac.xml uas.xml sipp-transport uac-port uas-port service calls [uac-arg...]
    local label=$1 uac=$2 uas=$3 flag=$4 uac_port=$5 uas_port=$6 service=$7 calls=$8
    shift 8
    local name=${label// /-} uas_pid uac_rc uas_rc ok failed retrans unexpected
    mapfile -t uas_args < <(sipp_args "uas-$name")
    mapfile -t uac_args < <(sipp_args "uac-$name")
    timeout "$limit" sipp -sf "$uas" -t "$flag" -i 127.0.3.3 -p "$uas_port" -m "$calls" "${uas_args[@]}" \
        > "$work/uas-$name.out" 2>&1 &
    uas_pid=$!
    sleep 0.3
    set +e
    timeout "$limit" sipp -sf "$uac" "$proxy" -t "$flag" -i 127.0.3.2 -p "$uac_port" -s "$service" -m "$calls" -r "$RATE" \
        -l "$(( RATE * 3 ))" -recv_timeout 10000 "${uac_args[@]}" "$@" > "$work/uac-$name.out" 2>&1
    uac_rc=$?
    wait "$uas_pid"
    uas_rc=$?
    set -e
    ok=$(stat "$work/uac-$name.csv" SuccessfulCall\(C\))
    failed=$(stat "$work/uac-$name.csv" FailedCall\(C\))
    retrans=$(stat "$work/uac-$name.csv" Retransmissions\(C\))
    unexpected=$(stat "$work/uac-$name.csv" FailedUnexpectedMessage\(C\))
    echo "sipp $label: uac rc=$uac_rc uas rc=$uas_rc; calls ok=$ok failed=$failed unexpected=$unexpected" \
        "retransmissions=$retrans rate=$(stat "$work/uac-$name.csv" CallRate\(C\))/s"
    if [ "$uac_rc" != 0 ] || [ "$uas_rc" != 0 ] || [ "$ok" != "$calls" ]; then
        failed_any=1
        show "uac-$name" "uas-$name"
    fi
}

# A UAC alone against siphon at $proxy (UDP): CALLS calls at RATE cps,
# bounded by CALLS / RATE + 60 s; further arguments go to SIPp. One report
# line; returns 1 (after showing the logs) unless every call succeeded.
run_uac() { # label scenario uac-port calls rate [sipp-arg...]
    local label=$1 sf=$2 port=$3 calls=$4 rate=$5
    shift 5
    local name=${label// /-} rc ok failed retrans unexpected
    local limit=$(( calls / rate + 60 ))
    mapfile -t uac_args < <(sipp_args "uac-$name")
    set +e
    timeout "$limit" sipp -sf "$sf" "$proxy" -t u1 -i 127.0.3.2 -p "$port" -m "$calls" -r "$rate" \
        -l "$(( rate * 3 ))" -recv_timeout 10000 "${uac_args[@]}" "$@" > "$work/uac-$name.out" 2>&1
    rc=$?
    set -e
    ok=$(stat "$work/uac-$name.csv" SuccessfulCall\(C\))
    failed=$(stat "$work/uac-$name.csv" FailedCall\(C\))
    retrans=$(stat "$work/uac-$name.csv" Retransmissions\(C\))
    unexpected=$(stat "$work/uac-$name.csv" FailedUnexpectedMessage\(C\))
    echo "sipp $label: uac rc=$rc; calls ok=$ok failed=$failed unexpected=$unexpected retransmissions=$retrans" \
        "rate=$(stat "$work/uac-$name.csv" CallRate\(C\))/s elapsed=$(stat "$work/uac-$name.csv" ElapsedTime\(C\))"
    if [ "$rc" != 0 ] || [ "$ok" != "$calls" ]; then
        show "uac-$name"
        return 1
    fi
}

# Serial failover: the destination's targets are a UAS answering 503 and a
# normal UAS. siphon starts each request at the next target round-robin,
# so about half the calls meet the 503 first: each of those must be ACKed
# and followed by exactly one failover, and every call must reach the
# normal UAS and succeed.
run_failover() { # label
    local label=$1 name=${1// /-} u503_pid uas_pid uac_rc uas_rc u503_rc ok failed retrans unexpected
    local seen503 failed503 fo_before fo_after fo
    mapfile -t u503_args < <(sipp_args "uas503-$name")
    mapfile -t uas_args < <(sipp_args "uas-$name")
    mapfile -t uac_args < <(sipp_args "uac-$name")
    fo_before=$(metric siphon_failovers_total)
    # At most CALLS INVITEs; stopped once the UAC is done (SIGALRM makes
    # timeout send SIGUSR1, SIPp's "finish the calls in progress and exit").
    timeout --preserve-status -s USR1 -k 10 "$limit" sipp -sf sipp/uas_503.xml -t u1 -i 127.0.3.3 -p 5085 -m "$CALLS" \
        "${u503_args[@]}" > "$work/uas503-$name.out" 2>&1 &
    u503_pid=$!
    timeout "$limit" sipp -sf sipp/uas.xml -t u1 -i 127.0.3.3 -p 5086 -m "$CALLS" "${uas_args[@]}" \
        > "$work/uas-$name.out" 2>&1 &
    uas_pid=$!
    sleep 0.3
    set +e
    timeout "$limit" sipp -sf sipp/uac.xml "$proxy" -t u1 -i 127.0.3.2 -p 5075 -s failover -m "$CALLS" -r "$RATE" \
        -l "$(( RATE * 3 ))" -recv_timeout 10000 "${uac_args[@]}" > "$work/uac-$name.out" 2>&1
    uac_rc=$?
    wait "$uas_pid"
    uas_rc=$?
    kill -ALRM "$u503_pid" 2>/dev/null
    wait "$u503_pid"
    u503_rc=$?
    set -e
    sleep 0.1 # siphon publishes its transaction counters every 10 ms
    fo_after=$(metric siphon_failovers_total)
    fo="?"
    [[ "$fo_before$fo_after" =~ ^[0-9]+$ ]] && fo=$(( fo_after - fo_before ))
    ok=$(stat "$work/uac-$name.csv" SuccessfulCall\(C\))
    failed=$(stat "$work/uac-$name.csv" FailedCall\(C\))
    retrans=$(stat "$work/uac-$name.csv" Retransmissions\(C\))
    unexpected=$(stat "$work/uac-$name.csv" FailedUnexpectedMessage\(C\))
    seen503=$(stat "$work/uas503-$name.csv" SuccessfulCall\(C\))
    failed503=$(stat "$work/uas503-$name.csv" FailedCall\(C\))
    echo "sipp $label: uac rc=$uac_rc uas rc=$uas_rc uas503 rc=$u503_rc; calls ok=$ok failed=$failed" \
        "unexpected=$unexpected retransmissions=$retrans; 503 answered=$seen503 failed=$failed503," \
        "siphon failovers=$fo"
    if [ "$uac_rc" != 0 ] || [ "$uas_rc" != 0 ] || [ "$u503_rc" != 0 ] || [ "$ok" != "$CALLS" ] \
        || [ "$failed503" != 0 ] || [ "$seen503" = 0 ] || [ "$fo" != "$seen503" ]; then
        failed_any=1
        show "uac-$name" "uas503-$name" "uas-$name"
    fi
}

run_options() { # label
    local rc
    set +e
    timeout 60 sipp -sf sipp/options.xml "$proxy" -i 127.0.3.4 -m 200 -r 200 -nostdin -timeout 30s -recv_timeout 5000 \
        > "$work/options-$1.out" 2>&1
    rc=$?
    set -e
    echo "sipp $1 options: rc=$rc"
    if [ "$rc" != 0 ]; then
        failed_any=1
        tail -n 20 "$work/options-$1.out"
    fi
}

stateless() {
    proxy=127.0.3.1:5060
    cat > "$work/siphon-stateless.toml" <<TOML
[server]
shards = 2
[[listen]]
transport = "udp"
addr = "127.0.3.1:5060"
[[listen]]
transport = "tcp"
addr = "127.0.3.1:5060"
[proxy]
record_route = true
[[route]]
name = "to-uas-tcp"
match = { user_prefix = "tcp-" }
destination = "uas-tcp"
[[route]]
name = "to-uas"
match = { user_prefix = "service" }
destination = "uas"
[destination.uas]
targets = [{ uri = "sip:127.0.3.3:5080" }]
[destination.uas-tcp]
targets = [{ uri = "sip:127.0.3.3:5081;transport=tcp" }]
TOML
    start_siphon "$work/siphon-stateless.toml" "$work/siphon-stateless.log" "$proxy"
    local t
    for t in $TRANSPORTS; do
        case "$t" in
            udp) run_calls "stateless udp" sipp/uac.xml sipp/uas.xml u1 5070 5080 service "$CALLS" ;;
            tcp) run_calls "stateless tcp" sipp/uac.xml sipp/uas.xml t1 5070 5081 tcp-service "$CALLS" ;;
            *) echo "sipp/run.sh: unknown transport $t"; exit 2 ;;
        esac
    done
    run_options stateless
    stop_siphon "$work/siphon-stateless.log"
}

stateful() {
    proxy=127.0.3.1:5062
    cat > "$work/siphon-stateful.toml" <<TOML
[server]
shards = 2
[[listen]]
transport = "udp"
addr = "127.0.3.1:5062"
[[listen]]
transport = "tcp"
addr = "127.0.3.1:5062"
[metrics]
listen = "127.0.3.1:9062"
[proxy]
mode = "stateful"
record_route = true
[[route]]
name = "to-uas-tcp"
match = { user_prefix = "tcp-" }
destination = "uas-tcp"
[[route]]
name = "to-uas"
match = { user_prefix = "service" }
destination = "uas"
[[route]]
name = "to-uas-cancel"
match = { user_prefix = "cancel" }
destination = "uas-cancel"
[[route]]
name = "failover"
match = { user_prefix = "failover" }
destination = "failover"
[destination.uas]
targets = [{ uri = "sip:127.0.3.3:5082" }]
[destination.uas-tcp]
targets = [{ uri = "sip:127.0.3.3:5083;transport=tcp" }]
[destination.uas-cancel]
targets = [{ uri = "sip:127.0.3.3:5084" }]
[destination.failover]
fork = "serial"
targets = [{ uri = "sip:127.0.3.3:5085" }, { uri = "sip:127.0.3.3:5086" }]
TOML
    start_siphon "$work/siphon-stateful.toml" "$work/siphon-stateful.log" "$proxy"
    local t
    for t in $TRANSPORTS; do
        case "$t" in
            udp) run_calls "stateful udp" sipp/uac.xml sipp/uas.xml u1 5072 5082 service "$CALLS" ;;
            tcp) run_calls "stateful tcp" sipp/uac.xml sipp/uas.xml t1 5073 5083 tcp-service "$CALLS" ;;
            *) echo "sipp/run.sh: unknown transport $t"; exit 2 ;;
        esac
    done
    run_calls "stateful cancel" sipp/uac_cancel.xml sipp/uas_cancel.xml u1 5074 5084 cancel "$CALLS"
    run_failover "stateful failover"
    run_options stateful
    stop_siphon "$work/siphon-stateful.log"
}

# Users for the registrar runs, in the work dir: SIPp injection files
# (SEQUENTIAL, "user;password" per line) and siphon's users file.
#   reg-users.csv     user00001..user$REG_USERS (registered)
#   reg-unknown.csv   nobody00001..nobody00100 (never registered: 404)
#   reg-idle.csv      idle00001..idle00100 (in the users file, never
#                     registered: 480 from the [auth] siphon)
#   users.txt         siphon's users file: every user and idle user,
#                     "name:password=SECRET"
make_users() {
    awk -v n="$REG_USERS" 'BEGIN { print "SEQUENTIAL"; for (i = 1; i <= n; i++) printf "user%05d;pw-%05d\n", i, i }' \
        > "$work/reg-users.csv"
    awk 'BEGIN { print "SEQUENTIAL"; for (i = 1; i <= 100; i++) printf "nobody%05d;x\n", i }' > "$work/reg-unknown.csv"
    awk 'BEGIN { print "SEQUENTIAL"; for (i = 1; i <= 100; i++) printf "idle%05d;pw-idle-%05d\n", i, i }' \
        > "$work/reg-idle.csv"
    awk -F';' 'FNR > 1 { printf "%s:password=%s\n", $1, $2 }' "$work/reg-users.csv" "$work/reg-idle.csv" \
        > "$work/users.txt"
}

# The registrar siphon's config: stateful, Record-Route, [registrar] for
# example.com with a journal in the work dir, $2 (e.g. an [auth] section)
# appended.
registrar_config() { # port-suffix extra-toml
    cat <<TOML
[server]
shards = 2
[[listen]]
transport = "udp"
addr = "127.0.3.1:506$1"
[[listen]]
transport = "tcp"
addr = "127.0.3.1:506$1"
[metrics]
listen = "127.0.3.1:906$1"
[proxy]
mode = "stateful"
record_route = true
[registrar]
domains = ["example.com"]
default_expires = 3600
min_expires = 60
max_expires = 7200
journal_dir = "journal-$1"
fsync = "batch"
fork = "parallel"
$2
TOML
}

registrar() {
    local maddr=127.0.3.1:9064 before after reg bindings jerr keys
    keys=(-key domain example.com -key contact 127.0.3.3:5090)
    make_users

    # Without [auth]: REGISTER every user, call some of them, and call
    # users nobody registered.
    proxy=127.0.3.1:5064
    registrar_config 4 "" > "$work/siphon-registrar.toml"
    start_siphon "$work/siphon-registrar.toml" "$work/siphon-registrar.log" "$proxy"
    before=$(metric siphon_registrar_registers_total "$maddr")
    run_uac "registrar register" sipp/uac_register.xml 5076 "$REG_USERS" "$REG_RATE" \
        -inf "$work/reg-users.csv" "${keys[@]}" || failed_any=1
    sleep 0.2 # siphon publishes its shard counters every 10 ms
    after=$(metric siphon_registrar_registers_total "$maddr")
    bindings=$(metric siphon_registrar_bindings "$maddr")
    jerr=$(metric siphon_registrar_journal_errors_total "$maddr")
    reg="?"
    [[ "$before$after" =~ ^[0-9]+$ ]] && reg=$(( after - before ))
    echo "siphon registrar: REGISTERs answered=$reg bindings=$bindings journal errors=$jerr" \
        "journal writes=$(metric siphon_registrar_journal_writes_total "$maddr")"
    if [ "$reg" != "$REG_USERS" ] || [ "$bindings" != "$REG_USERS" ] || [ "$jerr" != 0 ]; then
        echo "sipp/run.sh: expected $REG_USERS REGISTERs answered, $REG_USERS bindings and no journal error"
        failed_any=1
    fi
    run_calls "registrar invite" sipp/uac_invite_registered.xml sipp/uas.xml u1 5077 5090 service "$CALLS" \
        -inf "$work/reg-users.csv" "${keys[@]}"
    run_uac "registrar 404" sipp/uac_invite_404.xml 5078 100 "$RATE" -inf "$work/reg-unknown.csv" "${keys[@]}" \
        || failed_any=1
    run_options registrar
    stop_siphon "$work/siphon-registrar.log"

    # With [auth]: REGISTER with Digest; users of the users file who never
    # registered get 480.
    proxy=127.0.3.1:5065
    maddr=127.0.3.1:9065
    registrar_config 5 "[auth]
realm = \"example.com\"
users_file = \"users.txt\"
register = true
# SIPp 3.6.1 answers the first challenge and computes MD5 only: MD5 first.
algorithms = [\"MD5\", \"SHA-256\"]" > "$work/siphon-registrar-auth.toml"
    start_siphon "$work/siphon-registrar-auth.toml" "$work/siphon-registrar-auth.log" "$proxy"
    # SIPp's Digest uri is sip:REMOTE_IP:REMOTE_PORT unless -auth_uri: siphon
    # wants the Request-URI (sip:example.com) byte for byte.
    local out
    if ! out=$(run_uac "registrar register auth" sipp/uac_register_auth.xml 5079 "$AUTH_CALLS" "$REG_RATE" \
        -inf "$work/reg-users.csv" "${keys[@]}" -auth_uri example.com); then
        echo "$out"
        failed_any=1
    else
        echo "$out"
        sleep 0.2
        bindings=$(metric siphon_registrar_bindings "$maddr")
        echo "siphon registrar auth: challenges=$(metric siphon_auth_challenges_total "$maddr")" \
            "failures=$(metric siphon_auth_failures_total "$maddr") bindings=$bindings"
        # More calls than users register some users twice.
        if [ "$bindings" != "$(( AUTH_CALLS < REG_USERS ? AUTH_CALLS : REG_USERS ))" ]; then
            echo "sipp/run.sh: expected one binding per user registered"
            failed_any=1
        fi
    fi
    run_uac "registrar 480" sipp/uac_invite_480.xml 5087 100 "$RATE" -inf "$work/reg-idle.csv" "${keys[@]}" \
        || failed_any=1
    stop_siphon "$work/siphon-registrar-auth.log"
}

for m in $MODES; do
    case "$m" in
        stateless) stateless ;;
        stateful) stateful ;;
        registrar) registrar ;;
        *) echo "sipp/run.sh: unknown mode $m"; exit 2 ;;
    esac
done

if [ "$failed_any" != 0 ]; then
    echo "sipp/run.sh: FAILED (logs in $work)"
    exit 1
fi
echo "sipp/run.sh: passed"
if [ "$TRACE" = 1 ]; then echo "sipp/run.sh: traces in $work"; else rm -rf "$work"; fi
