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
#   the user registered, a SIPp UAS); 100 INVITEs to unknown users (480).
#   Then a second siphon with [auth] (a generated users file): AUTH_CALLS
#   REGISTERs with Digest (401, then [authentication]), and 100 INVITEs to
#   users of the file who never registered and 100 to unknown users (480
#   both: the answer does not tell which users exist). That siphon offers MD5
#   first (auth.algorithms): SIPp 3.6.1 answers the first WWW-Authenticate
#   and computes MD5 only (see sipp/README.md).
# carrier: config/carrier.toml as it is, two SIPp carriers (uas_carrier.xml,
#   which answers siphon's OPTIONS probes): CARRIER_CALLS calls to +1 must
#   split 70/30 (+-2 %) by siphon's per-target counters, every target up and
#   probed; +44 goes to carrier B; B stopped, siphon takes it out (<= 15 s)
#   and +44 and +1 go to A; B restarted, siphon puts it back (<= 15 s) and
#   +44 goes to B again; the INVITEs the carriers received must equal
#   siphon's counters.
# reload: a copy of config/carrier.toml; RELOAD_CALLS calls of RELOAD_HOLD ms
#   at RELOAD_RATE while RELOADS reloads, 0.5 s apart, swap the weights
#   70/30 <-> 30/70 (and a fourth route), by SIGHUP and POST /admin/reload;
#   one broken config in the middle (422, calls keep flowing). siphon's
#   generation and log must count every good reload, carrier B's share must
#   land between the two weights. Then the ACL, narrowed by a reload: 403.
# Fails on any failed call, unexpected message or timeout.
#
#   bash sipp/run.sh                 # CALLS=300 RATE=100 TRANSPORTS="udp tcp" MODES="stateless stateful registrar carrier reload"
#   CALLS=2000 RATE=500 TRANSPORTS=tcp MODES=stateful bash sipp/run.sh
#   MODES=registrar REG_USERS=10000 REG_RATE=1000 AUTH_CALLS=1000 bash sipp/run.sh
#   MODES="carrier reload" CARRIER_CALLS=1000 RELOAD_CALLS=3000 RELOAD_RATE=200 RELOADS=20 bash sipp/run.sh
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
#     (REGISTER) / :5077 (INVITE) / :5078 (480, unknown) / :5079 (REGISTER
#     with Digest) / :5087 (480, idle) / :5088 (480, unknown, with [auth]);
#     UAS (the registered Contact) 127.0.3.3:5090
#   carrier and reload (one after the other): siphon 127.0.0.1:5060 (UDP and
#     TCP), metrics and admin API 127.0.0.1:9060, as config/carrier.toml
#     says; carriers 127.0.0.1:5080 (A) and :5082 (B); UAC 127.0.3.2:5091
#     (+1) / :5092-:5095 (+44, B down, B back) / :5096 (reload) / :5097
#     (403) / :5098 (after the ACL).
#   OPTIONS from 127.0.3.4.
# Every process it starts is stopped by PID; every SIPp run is bounded by a
# timeout, every UAC (and every UAS but the carriers) by -m.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS="${CALLS:-300}"
RATE="${RATE:-100}"
TRANSPORTS="${TRANSPORTS:-udp tcp}"
MODES="${MODES:-stateless stateful registrar carrier reload}"
REG_USERS="${REG_USERS:-10000}"
REG_RATE="${REG_RATE:-1000}"
AUTH_CALLS="${AUTH_CALLS:-1000}"
CARRIER_CALLS="${CARRIER_CALLS:-1000}"
RELOAD_CALLS="${RELOAD_CALLS:-3000}"
RELOAD_RATE="${RELOAD_RATE:-200}"
RELOAD_HOLD="${RELOAD_HOLD:-1000}"
RELOADS="${RELOADS:-20}"
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
    # --foreground: else timeout signals its process group too, SIPp gets
    # a second SIGUSR1 ("abort all calls") and 3.6.1, with calls still in
    # their timewait, never exits (see sipp/README.md).
    timeout --foreground --preserve-status -s USR1 -k 10 "$limit" sipp -sf sipp/uas_503.xml -t u1 -i 127.0.3.3 -p 5085 -m "$CALLS" \
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
#   reg-unknown.csv   nobody00001..nobody00100 (never registered: 480)
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
    run_uac "registrar unknown 480" sipp/uac_invite_480.xml 5078 100 "$RATE" -inf "$work/reg-unknown.csv" "${keys[@]}" \
        || failed_any=1
    run_options registrar
    stop_siphon "$work/siphon-registrar.log"

    # With [auth]: REGISTER with Digest; users of the users file who never
    # registered get 480, and so do users nobody knows.
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
    run_uac "registrar auth unknown 480" sipp/uac_invite_480.xml 5088 100 "$RATE" -inf "$work/reg-unknown.csv" \
        "${keys[@]}" || failed_any=1
    stop_siphon "$work/siphon-registrar-auth.log"
}

# An HTTP request to a siphon's metrics listener (its admin API included):
# plain bash and coreutils, bounded by 5 s. Prints the status code on the
# first line, then the body; nothing if siphon did not answer.
http() { # method path addr
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "%s %s HTTP/1.0\r\nContent-Length: 0\r\n\r\n" "$3" "$4" >&3
        cat <&3' _ "${3%:*}" "${3##*:}" "$1" "$2" 2>/dev/null \
        | tr -d '\r' | awk 'NR == 1 { print $2; next } body { print; next } /^$/ { body = 1 }'
    return 0
}

# siphon's /metrics at $2 into the file $1 (empty if it did not answer).
scrape() { # file addr
    http GET /metrics "$2" | awk 'NR == 1 && $1 != "200" { exit } NR > 1' > "$1"
}

# The sum of metric $2 over the series of scrape $1 whose labels contain $3
# (say set="na",target="sip:127.0.0.1:5080"; "" for all of them).
series() { # file name labels
    awk -v n="$2" -v l="$3" 'index($1, n "{") == 1 && (l == "" || index($1, l)) { s += $2 } END { print s + 0 }' "$1"
}

# Succeeds if scrape $1 has a series of metric $2 whose labels contain $3,
# and every such series has a value $4 $5 ("==", ">=" or "<=").
every() { # file name labels op value
    awk -v n="$2" -v l="$3" -v op="$4" -v v="$5" '
        index($1, n "{") == 1 && (l == "" || index($1, l)) {
            k++; x = $2 + 0
            ok += (op == "==") ? (x == v) : (op == ">=") ? (x >= v) : (x <= v)
        }
        END { exit !(k > 0 && ok == k) }' "$1"
}

# Poll siphon's metrics at $2 every 0.25 s, for at most $1 s, until every
# series of metric $3 whose labels contain $4 has a value $5 $6. Prints how
# long it took; returns 1 at the deadline.
wait_metric() { # seconds addr name labels op value
    local secs=$1 addr=$2 t0 i
    shift 2
    t0=$(date +%s%N)
    for i in $(seq 1 $(( secs * 4 ))); do
        scrape "$work/poll" "$addr"
        if every "$work/poll" "$@"; then
            awk -v t="$(( $(date +%s%N) - t0 ))" 'BEGIN { printf "%.1f s\n", t / 1e9 }'
            return 0
        fi
        sleep 0.25
    done
    echo "more than $secs s"
    return 1
}

# /admin/sets as one line per target (plain text, for the report):
#   set target weight= priority= state= reason= requests= probes= probes_failed= changes=
sets_summary() { # addr
    http GET /admin/sets "$1" | sed -n '2,$p' | sed 's/{"name":/\n&/g; s/{"uri":/\n&/g' | awk '
        function field(k,   r) {
            if (!match($0, "\"" k "\":(\"[^\"]*\"|[^,}]*)")) return "?"
            r = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
            gsub(/"/, "", r)
            return r
        }
        /^\{"name":/ { set = field("name") }
        /^\{"uri":/ {
            printf "  %s %s weight=%s priority=%s state=%s reason=%s requests=%s probes=%s probes_failed=%s changes=%s\n",
                set, field("uri"), field("weight"), field("priority"), field("state"), field("reason"),
                field("requests"), field("probes"), field("probes_failed"), field("changes")
        }'
}

# A carrier: a SIPp UAS running uas_carrier.xml (calls, and siphon's OPTIONS
# probes answered 200) on 127.0.0.1:$2, named $1. It runs from the work dir
# with a copy of the scenario named $1, so that its -trace_counts file is
# $work/$1_<pid>_counts.csv. No -m: every probe is a SIPp call too. Sets
# carrier_pid, the PID of its `timeout`: kill -ALRM stops the UAS
# (SIGUSR1: finish the calls in progress and exit), and SIPp's exit code
# says whether any call failed.
carrier_pid=
start_carrier() { # name port
    local args
    cp sipp/uas_carrier.xml "$work/$1.xml"
    mapfile -t args < <(sipp_args "$1")
    (cd "$work" && exec timeout --foreground --preserve-status -s USR1 -k 10 "$limit" sipp -sf "$1.xml" -t u1 \
        -i 127.0.0.1 -p "$2" -trace_counts "${args[@]}") > "$work/$1.out" 2>&1 &
    carrier_pid=$!
}

# Stop carrier $2 by $1, the PID of its `timeout` (one SIGUSR1 to SIPp);
# fails the run unless SIPp exits 0 (no failed call). One report line: its
# calls (INVITEs and probes), INVITEs, OPTIONS and 200s to them.
stop_carrier() { # pid name
    local rc
    kill -ALRM "$1" 2>/dev/null || true
    set +e
    wait "$1"
    rc=$?
    set -e
    echo "sipp $2: uas rc=$rc; calls ok=$(stat "$work/$2.csv" SuccessfulCall\(C\))" \
        "failed=$(stat "$work/$2.csv" FailedCall\(C\))" \
        "unexpected=$(stat "$work/$2.csv" FailedUnexpectedMessage\(C\))" \
        "retransmissions=$(stat "$work/$2.csv" Retransmissions\(C\)); INVITEs=$(counts 0_INVITE_Recv "$2")" \
        "OPTIONS=$(counts 1_OPTIONS_Recv "$2") answered=$(counts 2_200_Sent "$2")"
    if [ "$rc" != 0 ]; then
        failed_any=1
        show "$2"
    fi
}

# A column of the last line of the -trace_counts file(s) of the carrier(s)
# named, summed (SIPp writes the file when it exits).
counts() { # column name...
    local col=$1 f n sum=0
    shift
    for n in "$@"; do
        for f in "$work/${n}"_*_counts.csv; do
            [ -s "$f" ] || continue
            sum=$(( sum + $(stat "$f" "$col") ))
        done
    done
    echo "$sum"
}

# The four targets of config/carrier.toml as siphon's metrics label them.
NA_A='set="na",target="sip:127.0.0.1:5080"'
NA_B='set="na",target="sip:127.0.0.1:5082"'
UK_A='set="uk",target="sip:127.0.0.1:5080"'
UK_B='set="uk",target="sip:127.0.0.1:5082"'
TO_A='target="sip:127.0.0.1:5080"'
TO_B='target="sip:127.0.0.1:5082"'

# How much siphon_target_requests_total of the targets labelled $3 rose
# from scrape $1 to scrape $2.
requests_between() { # before after labels
    echo $(( $(series "$2" siphon_target_requests_total "$3") - $(series "$1" siphon_target_requests_total "$3") ))
}

# $3 calls to the number $4 through the carrier edge at $proxy (run_uac,
# UAC 127.0.3.2:$2, at RATE); then the INVITEs each target got meanwhile,
# from siphon's siphon_target_requests_total at $maddr: sets na_a, na_b,
# uk_a, uk_b. One report line.
na_a= na_b= uk_a= uk_b=
edge_calls() { # label port calls number
    local before="$work/edge-before" after="$work/edge-after"
    scrape "$before" "$maddr"
    run_uac "$1" sipp/uac.xml "$2" "$3" "$RATE" -s "$4" || failed_any=1
    scrape "$after" "$maddr"
    na_a=$(requests_between "$before" "$after" "$NA_A")
    na_b=$(requests_between "$before" "$after" "$NA_B")
    uk_a=$(requests_between "$before" "$after" "$UK_A")
    uk_b=$(requests_between "$before" "$after" "$UK_B")
    echo "siphon $1: INVITEs to set na: carrier A $na_a, carrier B $na_b; set uk: carrier B $uk_b, carrier A $uk_a"
}

# Fail the run, saying why.
fail() { # message
    echo "sipp/run.sh: $1"
    failed_any=1
}

# Fails the run with message $1 unless the rest, a test(1) expression, holds.
expect() { # message test-expr...
    local msg=$1
    shift
    if ! [ "$@" ]; then
        echo "sipp/run.sh: expected $msg"
        failed_any=1
    fi
}

# The carrier edge: config/carrier.toml as it is, two SIPp carriers
# (uas_carrier.xml) on 127.0.0.1:5080 (A) and :5082 (B). See sipp/README.md,
# "Carrier mode".
carrier() {
    proxy=127.0.0.1:5060
    local maddr=127.0.0.1:9060 limit=$(( CARRIER_CALLS / RATE + 180 ))
    local a_pid b_pid b2_pid took pct m="$work/carrier-metrics" log="$work/siphon-carrier.log"
    start_carrier carrier-a 5080
    a_pid=$carrier_pid
    start_carrier carrier-b 5082
    b_pid=$carrier_pid
    sleep 0.3
    start_siphon config/carrier.toml "$log" "$proxy"
    # Before any call, a 2xx from a target can only answer a probe.
    if took=$(wait_metric 10 "$maddr" siphon_target_responses_total 'class="2xx"' ">=" 1); then
        echo "siphon carrier: every target answered a probe after $took"
    else
        fail "not every target answered a probe within 10 s"
    fi

    # a. +1: weighted 70/30, every call answered.
    edge_calls "carrier +1" 5091 "$CARRIER_CALLS" +15551234
    pct=$(awk -v a="$na_a" -v n="$CARRIER_CALLS" 'BEGIN { printf "%.1f", 100 * a / n }')
    echo "siphon carrier +1: $CARRIER_CALLS calls: carrier A $na_a INVITEs ($pct%)," \
        "carrier B $na_b ($(awk -v b="$na_b" -v n="$CARRIER_CALLS" 'BEGIN { printf "%.1f", 100 * b / n }')%)"
    expect "one INVITE per call, all to set na" "$(( na_a + na_b )):$(( uk_a + uk_b ))" = "$CARRIER_CALLS:0"
    expect "carrier A's share within 70 +- 2 % (got $pct %)" \
        "$(awk -v p="$pct" 'BEGIN { print (p >= 68 && p <= 72) ? "yes" : "no" }')" = yes
    scrape "$m" "$maddr"
    echo "siphon carrier probes: up=$(series "$m" siphon_target_up "")/4" \
        "sent=$(series "$m" siphon_target_probes_total "") failed=$(series "$m" siphon_target_probe_failures_total "")" \
        "failovers=$(series "$m" siphon_target_failovers_total "")"
    every "$m" siphon_target_up "" == 1 || fail "expected siphon_target_up 1 for every target"
    every "$m" siphon_target_probes_total "" ">=" 1 || fail "expected siphon_target_probes_total > 0 for every target"
    expect "no failed probe and no failover" \
        "$(series "$m" siphon_target_probe_failures_total ""):$(series "$m" siphon_target_failovers_total "")" = 0:0

    # b. +44 to B (priority); B stops: +44 and +1 to A; B comes back.
    edge_calls "carrier +44" 5092 100 +442071234567
    expect "every +44 call to carrier B" "$uk_b:$uk_a:$(( na_a + na_b ))" = 100:0:0
    stop_carrier "$b_pid" carrier-b
    if took=$(wait_metric 15 "$maddr" siphon_target_up "$TO_B" == 0); then
        echo "siphon carrier: carrier B stopped; siphon took it out of both sets after $took"
    else
        fail "siphon did not take carrier B out within 15 s"
    fi
    edge_calls "carrier +44 B down" 5093 100 +442071234567
    expect "every +44 call to carrier A while B is down" "$uk_a:$uk_b:$(( na_a + na_b ))" = 100:0:0
    edge_calls "carrier +1 B down" 5094 100 +15551234
    expect "every +1 call to carrier A while B is down" "$na_a:$na_b:$(( uk_a + uk_b ))" = 100:0:0
    start_carrier carrier-b2 5082
    b2_pid=$carrier_pid
    if took=$(wait_metric 15 "$maddr" siphon_target_up "$TO_B" == 1); then
        echo "siphon carrier: carrier B restarted; siphon put it back in both sets after $took"
    else
        fail "siphon did not put carrier B back within 15 s"
    fi
    edge_calls "carrier +44 B back" 5095 100 +442071234567
    expect "every +44 call to carrier B once it is back" "$uk_b:$uk_a:$(( na_a + na_b ))" = 100:0:0

    echo "siphon carrier log:"
    grep -E 'target (down|up) ' "$log" | sed 's/^[^ ]* *//; s/^/  /' || true
    echo "siphon carrier /admin/sets:"
    sets_summary "$maddr"
    scrape "$m" "$maddr"
    stop_siphon "$log"
    stop_carrier "$a_pid" carrier-a
    stop_carrier "$b2_pid" carrier-b2
    # What siphon counted against what the carriers received.
    local sa sb ra rb
    sa=$(series "$m" siphon_target_requests_total "$TO_A")
    sb=$(series "$m" siphon_target_requests_total "$TO_B")
    ra=$(counts 0_INVITE_Recv carrier-a)
    rb=$(counts 0_INVITE_Recv carrier-b carrier-b2)
    echo "siphon carrier: INVITEs sent by siphon A=$sa B=$sb, received by the carriers A=$ra B=$rb"
    expect "the carriers to receive what siphon counted" "$ra:$rb" = "$sa:$sb"
}

# The reload mode's configs, from config/carrier.toml: as it is (0); the
# weights swapped to 30/70 and a fourth route (1); route north-america to
# a destination set that does not exist (broken); the customer ACL
# narrowed to 127.0.0.1 and ::1 (acl).
carrier_variant() { # 0|1|broken|acl
    case "$1" in
        0) cat config/carrier.toml ;;
        1)
            sed -e 's/\(uri = "sip:127.0.0.1:5080", weight = \)70/\130/' \
                -e 's/\(uri = "sip:127.0.0.1:5082", weight = \)30/\170/' config/carrier.toml
            printf '\n[[route]]\nname = "reload-extra"\nmatch = { user_prefix = "+33" }\ndestination = "uk"\n'
            ;;
        broken) sed 's/^destination = "na"$/destination = "nowhere"/' config/carrier.toml ;;
        acl) sed 's|^customers = \["127.0.0.0/8", "::1/128"\]$|customers = ["127.0.0.1/32", "::1/128"]|' config/carrier.toml ;;
    esac
}

# Replace the reload mode's config by variant $2 (a rename: siphon never
# reads half a file).
write_config() { # file variant
    carrier_variant "$2" > "$1.new"
    mv "$1.new" "$1"
}

# Reload through POST /admin/reload; prints the status code and the body on
# one line.
post_reload() {
    http POST /admin/reload "$maddr" | paste -sd ' '
}

# The carrier edge from a copy of config/carrier.toml, reloaded under load.
# See sipp/README.md, "Reload mode".
reload() {
    proxy=127.0.0.1:5060
    local maddr=127.0.0.1:9060 limit=$(( RELOAD_CALLS / RELOAD_RATE + 180 ))
    local dir="$work/reload" log="$work/siphon-reload.log" m0="$work/reload-m0" m1="$work/reload-m1"
    local a_pid b_pid uac_pid uac_rc took i v r good=0 hup=0 post=0 before after n gen logged rejected
    local routes=(3 4) na_a na_b pct
    mkdir -p "$dir"
    cp config/carrier-prefixes.csv "$dir/"
    # Each variant must differ from the bundled file where it means to.
    for v in '1/"sip:127.0.0.1:5082", weight = 70' 'broken/"nowhere"' 'acl/"127.0.0.1/32"'; do
        [[ "$(carrier_variant "${v%%/*}")" == *"${v#*/}"* ]] || { echo "sipp/run.sh: variant ${v%%/*} did not apply"; exit 1; }
    done
    write_config "$dir/carrier.toml" 0
    start_carrier reload-a 5080
    a_pid=$carrier_pid
    start_carrier reload-b 5082
    b_pid=$carrier_pid
    sleep 0.3
    start_siphon "$dir/carrier.toml" "$log" "$proxy"
    took=$(wait_metric 10 "$maddr" siphon_target_responses_total 'class="2xx"' ">=" 1) \
        || fail "not every target answered a probe within 10 s"
    scrape "$m0" "$maddr"

    # Calls of RELOAD_HOLD ms at RELOAD_RATE; meanwhile RELOADS reloads,
    # 0.5 s apart, alternating the variants 1 and 0 and, two by two,
    # SIGHUP and POST /admin/reload; one broken config in the middle.
    run_uac "reload" sipp/uac_hold.xml 5096 "$RELOAD_CALLS" "$RELOAD_RATE" -s +15551234 -d "$RELOAD_HOLD" \
        > "$work/reload-uac.line" 2>&1 &
    uac_pid=$!
    sleep 1.5
    for i in $(seq 1 "$RELOADS"); do
        v=$(( i % 2 ))
        write_config "$dir/carrier.toml" "$v"
        if (( i % 4 == 1 || i % 4 == 2 )); then
            kill -HUP "$siphon_pid"
            hup=$(( hup + 1 ))
            # SIGHUP is handled within 50 ms: wait (at most 2 s) for its log line.
            for _ in $(seq 1 40); do
                [ "$(grep -c 'reloaded .*generation=' "$log")" -gt "$good" ] && break
                sleep 0.05
            done
            r=$(grep 'reloaded .*generation=' "$log" | tail -n 1)
            expect "SIGHUP reload $i logged with ${routes[v]} routes (got: $r)" \
                "$(grep -c 'reloaded .*generation=' "$log"):$(grep -c " ${routes[v]} routes" <<<"$r")" = "$(( good + 1 )):1"
        else
            r=$(post_reload)
            post=$(( post + 1 ))
            expect "POST /admin/reload $i: 200 with ${routes[v]} routes (got: $r)" \
                "$(grep -c "^200 .*\"reloaded\":true.*\"routes\":${routes[v]}," <<<"$r")" = 1
        fi
        good=$(( good + 1 ))
        if (( i == RELOADS / 2 )); then
            write_config "$dir/carrier.toml" broken
            scrape "$m1" "$maddr"
            before=$(series "$m1" siphon_route_requests_total 'route="north-america"')
            r=$(post_reload)
            echo "siphon reload: broken config: POST /admin/reload: $r"
            expect "422 and reloaded false for the broken config" "$(grep -c '^422 .*"reloaded":false' <<<"$r")" = 1
            sleep 0.5
            scrape "$m1" "$maddr"
            after=$(series "$m1" siphon_route_requests_total 'route="north-america"')
            echo "siphon reload: calls routed in the 0.5 s after the rejected reload: $(( after - before ))"
            expect "calls to keep flowing after the rejected reload" "$(( after > before ))" = 1
            write_config "$dir/carrier.toml" "$v"
        fi
        sleep 0.5
    done
    set +e
    wait "$uac_pid"
    uac_rc=$?
    set -e
    cat "$work/reload-uac.line"
    [ "$uac_rc" = 0 ] || failed_any=1
    expect "no failed call and no unexpected message" \
        "$(stat "$work/uac-reload.csv" FailedCall\(C\)):$(stat "$work/uac-reload.csv" FailedUnexpectedMessage\(C\))" = 0:0
    scrape "$m1" "$maddr"
    na_a=$(( $(series "$m1" siphon_target_requests_total "$NA_A") - $(series "$m0" siphon_target_requests_total "$NA_A") ))
    na_b=$(( $(series "$m1" siphon_target_requests_total "$NA_B") - $(series "$m0" siphon_target_requests_total "$NA_B") ))
    pct=$(awk -v a="$na_a" -v b="$na_b" 'BEGIN { printf "%.1f", (a + b) ? 100 * b / (a + b) : 0 }')
    gen=$(http GET /admin/sets "$maddr" | sed -n '2s/^{"generation":\([0-9]*\).*/\1/p')
    logged=$(grep -c 'reloaded .*generation=' "$log" || true)
    rejected=$(grep -c 'reload rejected' "$log" || true)
    echo "siphon reload: $good reloads ($hup SIGHUP, $post POST) and 1 rejected: generation=$gen," \
        "reloads logged=$logged, rejections logged=$rejected; INVITEs carrier A $na_a, carrier B $na_b" \
        "(B $pct %: 30 % at 70/30, 70 % at 30/70)"
    expect "generation, reloads logged and rejections logged to be $good, $good, 1" "$gen:$logged:$rejected" = "$good:$good:1"
    expect "one INVITE per call" "$(( na_a + na_b ))" = "$RELOAD_CALLS"
    expect "carrier B's share between the two weights (35..65 %, got $pct %)" \
        "$(awk -v p="$pct" 'BEGIN { print (p >= 35 && p <= 65) ? "yes" : "no" }')" = yes
    # Targets kept across reloads keep their health and probes.
    echo "siphon reload probes: up=$(series "$m1" siphon_target_up "")/4" \
        "sent=$(series "$m1" siphon_target_probes_total "") failed=$(series "$m1" siphon_target_probe_failures_total "")"
    every "$m1" siphon_target_up "" == 1 || fail "expected siphon_target_up 1 for every target after the reloads"
    expect "no failed probe across the reloads" "$(series "$m1" siphon_target_probe_failures_total "")" = 0

    # The ACL, reloaded: narrowed to 127.0.0.1, a call from 127.0.3.2 gets
    # 403 from the "unknown-source" route; widened again, calls go through.
    write_config "$dir/carrier.toml" acl
    r=$(post_reload)
    expect "POST /admin/reload (acl): 200 (got: $r)" "$(grep -c '^200 .*"reloaded":true' <<<"$r")" = 1
    scrape "$m0" "$maddr"
    run_uac "reload acl 403" sipp/uac_invite_403.xml 5097 50 "$RATE" -s +15551234 || failed_any=1
    scrape "$m1" "$maddr"
    n=$(( $(series "$m1" siphon_route_requests_total 'route="unknown-source"') - $(series "$m0" siphon_route_requests_total 'route="unknown-source"') ))
    # The ACK for each 403 goes through the routes too (and is dropped):
    # siphon counts it as a match of the route as well.
    echo "siphon reload acl: route unknown-source matched $n requests (50 INVITEs answered 403, and their ACKs)"
    expect "the route unknown-source to match the 50 INVITEs (got $n)" "$(( n >= 50 ))" = 1
    write_config "$dir/carrier.toml" 0
    r=$(post_reload)
    expect "POST /admin/reload (back): 200 (got: $r)" "$(grep -c '^200 .*"reloaded":true' <<<"$r")" = 1
    run_uac "reload acl back" sipp/uac.xml 5098 50 "$RATE" -s +15551234 || failed_any=1

    scrape "$m1" "$maddr"
    stop_siphon "$log"
    stop_carrier "$a_pid" reload-a
    stop_carrier "$b_pid" reload-b
    local sa sb ra rb
    sa=$(series "$m1" siphon_target_requests_total "$TO_A")
    sb=$(series "$m1" siphon_target_requests_total "$TO_B")
    ra=$(counts 0_INVITE_Recv reload-a)
    rb=$(counts 0_INVITE_Recv reload-b)
    echo "siphon reload: INVITEs sent by siphon A=$sa B=$sb, received by the carriers A=$ra B=$rb"
    expect "the carriers to receive what siphon counted" "$ra:$rb" = "$sa:$sb"
}

for m in $MODES; do
    case "$m" in
        stateless) stateless ;;
        stateful) stateful ;;
        registrar) registrar ;;
        carrier) carrier ;;
        reload) reload ;;
        *) echo "sipp/run.sh: unknown mode $m"; exit 2 ;;
    esac
done

if [ "$failed_any" != 0 ]; then
    echo "sipp/run.sh: FAILED (logs in $work)"
    exit 1
fi
echo "sipp/run.sh: passed"
if [ "$TRACE" = 1 ]; then echo "sipp/run.sh: traces in $work"; else rm -rf "$work"; fi
