#!/usr/bin/env bash
# scripts/bench-pool.sh — Sluice's connection pooling against PgBouncer's,
# on one machine in one run. Called by `make bench-pool` (and by `make
# bench`), which build bin/sluice first.
#
# Usage:
#   make bench-pool
#   POOL_DURATION=5 POOL_CLIENTS="16 64" bash scripts/bench-pool.sh
#   POOL_MODE=session POOL_IDLE_CONNS=200 bash scripts/bench-pool.sh   # a Sluice without transaction pooling
#
# Three measurements, against a throwaway PostgreSQL primary (bench/pgcluster),
# Sluice (bin/sluice, cluster pool `mode: transaction`, `max_server_conns: 20`)
# and PgBouncer (pool_mode=transaction, pool_size 20):
#
#  1. Throughput: pgbench -S with -M prepared and -M extended at 64 and 500
#     clients (-j 2, 10 s each) directly against PostgreSQL, through
#     Sluice's writer endpoint (route: writer, so that read routing does
#     not dilute the comparison: every statement goes to the one primary,
#     as through PgBouncer) and through PgBouncer in transaction mode.
#     PgBouncer before 1.21 has no max_prepared_statements: -M prepared is
#     run against it anyway and its failure reported; a reference line then
#     runs -M prepared with 20 clients (the pool size) against all three,
#     PgBouncer in session mode, pool 20. From 1.21 on,
#     max_prepared_statements = 200 is set.
#  2. Idle connections: bench/idleconns opens $POOL_IDLE_CONNS (10,000)
#     idle connections through each proxy (md5 logins on both: a SCRAM
#     exchange per connection would only measure CPU) and reports the growth
#     of the proxy process's VmRSS per connection.
#  3. Connect latency: bench/idleconns -sequential opens and closes 1,000
#     connections one after the other (SCRAM-SHA-256 logins, as PostgreSQL
#     accepts only those) directly, through Sluice and through PgBouncer.
#
# The tables go to bench/results/pool-<date>.md (raw pgbench output to
# bench/results/pool-<date>.log) and to stdout.
#
# Environment (all optional):
#   POOL_STEPS           subset of "tps idle connect" (default: all three)
#   POOL_DURATION        seconds per pgbench run (default 10; connecting 500
#                        SCRAM clients takes about 5 s of it on 2 cores)
#   POOL_CLIENTS         pgbench client counts (default "64 500")
#   POOL_MODES           pgbench -M modes (default "prepared extended")
#   POOL_MODE            Sluice's pool mode (default transaction; session only
#                        to try the script out on a Sluice without it)
#   POOL_SERVER_CONNS    Sluice max_server_conns and PgBouncer pool_size (default
#                        20; in session mode Sluice gets no max_server_conns)
#   POOL_IDLE_CONNS      idle connections per proxy in step 2 (default 10000)
#   POOL_IDLE_TARGETS    proxies of step 2 (default "sluice pgbouncer")
#   POOL_CONNECTS        sequential connects per target in step 3 (default 1000)
#   POOL_PG_MAX_CONNECTIONS  PostgreSQL max_connections (default: largest
#                        client count + 200, in session mode twice that count + 200)
#   POOL_SCALE           pgbench scale factor (default 10)
#   POOL_READY_TIMEOUT   seconds to wait for each server to accept queries (default 60)
#   BENCH_KEEP_TMP=1     keep the temporary directory (configs, logs) on exit
#   SLUICE_BIN, PGBOUNCER, GO, BENCH_PGCLUSTER: as for scripts/bench.sh
#
# Exit status: 0 if every run behaved as expected (PgBouncer < 1.21 failing
# -M prepared in transaction mode is expected), 1 otherwise; the report is
# written in both cases.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STEPS=${POOL_STEPS:-"tps idle connect"}
DURATION=${POOL_DURATION:-10}
CLIENTS=${POOL_CLIENTS:-"64 500"}
MODES=${POOL_MODES:-"prepared extended"}
SLUICE_MODE=${POOL_MODE:-transaction}
SERVER_CONNS=${POOL_SERVER_CONNS:-20}
IDLE_CONNS=${POOL_IDLE_CONNS:-10000}
IDLE_TARGETS=${POOL_IDLE_TARGETS:-"sluice pgbouncer"}
CONNECTS=${POOL_CONNECTS:-1000}
SCALE=${POOL_SCALE:-10}
READY_TIMEOUT=${POOL_READY_TIMEOUT:-60}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/bin/sluice}
RESULTS_DIR=$ROOT/bench/results
STAMP=$(date +%Y-%m-%d-%H%M%S)
REPORT=$RESULTS_DIR/pool-$STAMP.md
RAW_LOG=$RESULTS_DIR/pool-$STAMP.log
DB_USER=app
DB_PASSWORD=app
DB_NAME=app
TARGETS="direct sluice pgbouncer" # for want() of bench-lib.sh

BENCH_NAME=bench-pool
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

step() { [[ " $STEPS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- checks

for s in $STEPS; do
	case $s in tps | idle | connect) ;; *) die "POOL_STEPS: unknown step '$s'" ;; esac
done
for v in DURATION SCALE SERVER_CONNS IDLE_CONNS CONNECTS READY_TIMEOUT; do
	is_uint "${!v}" && ((${!v} > 0)) || die "POOL_$v must be a positive integer, not '${!v}'"
done
MAX_CLIENTS=0
for c in $CLIENTS; do
	is_uint "$c" && ((c > 0)) || die "POOL_CLIENTS: '$c' is not a positive integer"
	((c > MAX_CLIENTS)) && MAX_CLIENTS=$c
done
for m in $MODES; do
	case $m in simple | extended | prepared) ;; *) die "POOL_MODES: unknown pgbench mode '$m'" ;; esac
done
case $SLUICE_MODE in transaction | session) ;; *) die "POOL_MODE must be transaction or session, not '$SLUICE_MODE'" ;; esac
if [[ $SLUICE_MODE == session ]]; then
	PG_MAX_CONN=${POOL_PG_MAX_CONNECTIONS:-$((2 * MAX_CLIENTS + 200))}
else
	PG_MAX_CONN=${POOL_PG_MAX_CONNECTIONS:-$((MAX_CLIENTS + 200))}
fi
is_uint "$PG_MAX_CONN" || die "POOL_PG_MAX_CONNECTIONS must be a positive integer"
for t in $IDLE_TARGETS; do
	case $t in sluice | pgbouncer) ;; *) die "POOL_IDLE_TARGETS: unknown proxy '$t'" ;; esac
done
if step idle && [[ $SLUICE_MODE == session && " $IDLE_TARGETS " == *" sluice "* ]] && ((IDLE_CONNS + 100 > PG_MAX_CONN)); then
	die "in session mode Sluice holds a server connection per client: POOL_IDLE_CONNS=$IDLE_CONNS needs more than max_connections $PG_MAX_CONN (try POOL_IDLE_CONNS=200)"
fi

command -v pgbench >/dev/null || die "pgbench not found (Debian/Ubuntu: apt-get install postgresql-client)"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
[[ -x $SLUICE_BIN ]] || die "$SLUICE_BIN not found or not executable: run 'make build' (or 'make bench-pool')"
if [[ -z ${GO:-} ]]; then
	GO=$(command -v go || true)
	[[ -n $GO ]] || GO=/usr/local/go/bin/go
fi
PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
[[ -x $PGBOUNCER ]] || die "pgbouncer not found ($PGBOUNCER): apt-get install pgbouncer, or set PGBOUNCER"
PGB_VERSION=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p' | head -n1)
IFS=. read -r pgb_major pgb_minor _ <<<"${PGB_VERSION:-0.0}.0.0"
PGB_TX_PREPARED=0 # max_prepared_statements: PgBouncer >= 1.21
if ((pgb_major > 1 || (pgb_major == 1 && pgb_minor >= 21))); then PGB_TX_PREPARED=1; fi

# Every process started below inherits this: 10,000 clients need as many
# descriptors in the load generator and in each proxy.
NOFILE=$((IDLE_CONNS + 2048))
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < NOFILE)); then
	ulimit -Hn "$NOFILE" 2>/dev/null || die "ulimit -n: the hard limit $hard is below the $NOFILE descriptors that POOL_IDLE_CONNS=$IDLE_CONNS needs (raise it or lower POOL_IDLE_CONNS)"
fi
ulimit -Sn "$NOFILE"

unset PGSERVICE PGSERVICEFILE PGOPTIONS PGHOSTADDR PGPASSFILE PGTARGETSESSIONATTRS PGDATABASE PGUSER PGHOST PGPORT
export PGPASSWORD=$DB_PASSWORD PGSSLMODE=disable PGCONNECT_TIMEOUT=10 PGAPPNAME=sluice-bench-pool

# ---------------------------------------------------------------- clean-up

WORK="" PGC_PID="" SLUICE_PID="" PGB_PID="" CUR_PID=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	stop_proc "$CUR_PID" "load generator" 10
	stop_proc "$PGB_PID" pgbouncer 10
	stop_proc "$SLUICE_PID" sluice 15
	stop_proc "$PGC_PID" "postgres cluster" 60
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ ${BENCH_KEEP_TMP:-0} == 1 || $rc != 0 ]]; then
			log "kept $WORK (configurations and logs)"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM HUP

mkdir -p "$RESULTS_DIR"
# Under /tmp and world-readable: PgBouncer runs as another account when we are root.
WORK=$(mktemp -d /tmp/sluice-bench-pool.XXXXXX)
chmod 755 "$WORK"
: >"$RAW_LOG"

log "building bench/pgcluster and bench/idleconns"
if [[ -n ${BENCH_PGCLUSTER:-} ]]; then
	cp "$BENCH_PGCLUSTER" "$WORK/pgcluster"
else
	"$GO" build -o "$WORK/pgcluster" ./bench/pgcluster || die "could not build bench/pgcluster"
fi
"$GO" build -o "$WORK/idleconns" ./bench/idleconns || die "could not build bench/idleconns"

# ready PORT DB: one select-only transaction succeeds.
ready() { pgbench -n -S -t 1 -h 127.0.0.1 -p "$1" -U "$DB_USER" "$2" >"$WORK/ready.out" 2>&1; }

# start_server NAME LOGFILE PORT DB... -- CMD...: start CMD in the
# background (its pid in START_PID) and wait until every DB answers on PORT.
# Returns 3 if the port was taken meanwhile (the caller picks another).
start_server() {
	local name=$1 logf=$2 port=$3 dbs=() d deadline=$((SECONDS + READY_TIMEOUT))
	shift 3
	while [[ $1 != -- ]]; do dbs+=("$1") && shift; done
	shift
	"$@" >"$logf" 2>&1 &
	START_PID=$!
	for d in "${dbs[@]}"; do
		until ready "$port" "$d"; do
			if ! alive "$START_PID"; then
				wait "$START_PID" 2>/dev/null || true
				grep -qi 'address already in use' "$logf" && return 3
				show_tail "$logf"
				die "$name exited during start-up"
			fi
			((SECONDS < deadline)) || {
				show_tail "$WORK/ready.out" 5
				show_tail "$logf"
				die "$name (pid $START_PID) does not answer on 127.0.0.1:$port/$d after ${READY_TIMEOUT}s"
			}
			sleep 0.2
		done
	done
}

# ---------------------------------------------------------------- postgres

log "starting PostgreSQL (primary only, max_connections $PG_MAX_CONN)"
"$WORK/pgcluster" -v -replicas 0 -max-connections "$PG_MAX_CONN" >"$WORK/pgcluster.out" 2>"$WORK/pgcluster.err" &
PGC_PID=$!
deadline=$((SECONDS + 180))
until grep -qx READY "$WORK/pgcluster.out" 2>/dev/null; do
	alive "$PGC_PID" && ((SECONDS < deadline)) || {
		show_tail "$WORK/pgcluster.err" 40
		die "the PostgreSQL cluster did not start"
	}
	sleep 0.2
done
PG_PORT=$(sed -n 's/^PRIMARY_PORT=//p' "$WORK/pgcluster.out")
PG_BINDIR=$(sed -n 's/^BINDIR=//p' "$WORK/pgcluster.out")
PG_VERSION=$("$PG_BINDIR/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) //') || PG_VERSION=unknown
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT; pgbench -i -s $SCALE"
run_bg "$WORK/init.out" pgbench -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" "$DB_NAME" || {
	show_tail "$WORK/init.out"
	die "pgbench -i failed"
}

# ---------------------------------------------------------------- sluice

NOTES=()
# sluice_yaml WITH-POOL: the configuration, with or without the pool block.
sluice_yaml() {
	cat <<EOF
# generated by scripts/bench-pool.sh
listeners:
  - name: pool-writer
    protocol: postgres
    address: 127.0.0.1:$SLUICE_PORT
    cluster: bench
    route: writer
    auth: scram-sha-256
  - name: pool-writer-md5
    protocol: postgres
    address: 127.0.0.1:$SLUICE_MD5_PORT
    cluster: bench
    route: writer
    auth: md5
clusters:
  bench:
    protocol: postgres
    backends:
      - address: 127.0.0.1:$PG_PORT
        name: pg0
    monitor_user: $DB_USER
    monitor_database: $DB_NAME
EOF
	if (($1)); then
		echo "    pool:"
		echo "      mode: $SLUICE_MODE"
		if [[ $SLUICE_MODE == transaction ]]; then
			echo "      max_server_conns: $SERVER_CONNS"
		else
			# Session mode keeps a server connection per client; do not
			# let them outlive the run that opened them.
			echo "      idle_timeout: 1s"
		fi
	fi
	cat <<EOF
users:
  - name: $DB_USER
    password: $DB_PASSWORD
health:
  interval: 500ms
http:
  address: ""
server:
  shutdown_timeout: 2s
log:
  level: warn
EOF
}

# SLUICE_* variables would override the generated configuration.
sluice_env=(env)
while IFS= read -r v; do sluice_env+=(-u "$v"); done < <(compgen -e | grep '^SLUICE_' || true)
SLUICE_POOL_DESC="pool mode transaction, max_server_conns $SERVER_CONNS"
[[ $SLUICE_MODE == session ]] && SLUICE_POOL_DESC="pool mode session"
for attempt in 1 2 3; do
	read -r SLUICE_PORT SLUICE_MD5_PORT < <("$WORK/pgcluster" -free-ports 2 | paste -sd' ')
	sluice_yaml 1 >"$WORK/sluice.yaml"
	if ! "${sluice_env[@]}" "$SLUICE_BIN" check-config "$WORK/sluice.yaml" >"$WORK/sluice-check.out" 2>&1; then
		if grep -qi 'in use' "$WORK/sluice-check.out" && ((attempt < 3)); then continue; fi
		if [[ $SLUICE_MODE == session ]] && grep -q 'pool\.' "$WORK/sluice-check.out"; then
			# A Sluice from before pooling: its session pass-through is what session mode means.
			sluice_yaml 0 >"$WORK/sluice.yaml"
			SLUICE_POOL_DESC="no pool block: this Sluice rejects the pool keys (session pass-through)"
			NOTES+=("This Sluice build rejects \`clusters.<name>.pool.mode\`: it ran without a pool block (a server connection per client session).")
		else
			cat "$WORK/sluice-check.out" >&2
			hint=""
			[[ $SLUICE_MODE == transaction ]] && hint="; does this build have transaction pooling? (POOL_MODE=session tries the script out without it)"
			die "Sluice rejects the generated configuration ($WORK/sluice.yaml)$hint"
		fi
	fi
	log "starting Sluice ($SLUICE_POOL_DESC): writer endpoint 127.0.0.1:$SLUICE_PORT (scram), 127.0.0.1:$SLUICE_MD5_PORT (md5)"
	rc=0
	start_server sluice "$WORK/sluice.log" "$SLUICE_PORT" "$DB_NAME" -- "${sluice_env[@]}" "$SLUICE_BIN" --config "$WORK/sluice.yaml" || rc=$?
	SLUICE_PID=$START_PID
	((rc == 0)) && break
	SLUICE_PID=""
	((attempt < 3)) || die "Sluice could not get a free port"
done

# ---------------------------------------------------------------- pgbouncer

PGB_DIR=$WORK/pgbouncer
mkdir -p "$PGB_DIR"
pgb_args=()
PGB_USER=""
if ((EUID == 0)); then
	# PgBouncer refuses to run as root; -u makes the same process switch.
	for u in postgres nobody; do
		if id -u "$u" >/dev/null 2>&1; then PGB_USER=$u && break; fi
	done
	[[ -n $PGB_USER ]] || die "running as root, but there is neither a postgres nor a nobody account for PgBouncer"
	pgb_args=(-u "$PGB_USER")
fi
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" >"$PGB_DIR/userlist.txt"
# md5 logins for the idle-connection database only, as on Sluice's md5 listener.
printf 'host %s all 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n' "${DB_NAME}_idle" >"$PGB_DIR/hba.conf"
for attempt in 1 2 3; do
	PGB_PORT=$("$WORK/pgcluster" -free-ports 1)
	db="host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME pool_size=$SERVER_CONNS"
	cat >"$PGB_DIR/pgbouncer.ini" <<EOF
; generated by scripts/bench-pool.sh
[databases]
${DB_NAME}_tx = $db pool_mode=transaction
${DB_NAME}_session = $db pool_mode=session
${DB_NAME}_idle = $db pool_mode=transaction

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = hba
auth_hba_file = $PGB_DIR/hba.conf
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
default_pool_size = $SERVER_CONNS
max_client_conn = $((IDLE_CONNS + MAX_CLIENTS + 100))
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
stats_period = 3600
EOF
	((PGB_TX_PREPARED)) && echo "max_prepared_statements = 200" >>"$PGB_DIR/pgbouncer.ini"
	[[ -n $PGB_USER ]] && chown -R "$PGB_USER" "$PGB_DIR"
	chmod 700 "$PGB_DIR"
	log "starting PgBouncer $PGB_VERSION on 127.0.0.1:$PGB_PORT${PGB_USER:+ as $PGB_USER} (pool_size $SERVER_CONNS)"
	rc=0
	start_server pgbouncer "$WORK/pgbouncer.log" "$PGB_PORT" "${DB_NAME}_tx" "${DB_NAME}_session" -- \
		"$PGBOUNCER" "${pgb_args[@]}" "$PGB_DIR/pgbouncer.ini" || rc=$?
	PGB_PID=$START_PID
	((rc == 0)) && break
	PGB_PID=""
	((attempt < 3)) || die "PgBouncer could not get a free port"
done

# server_conns: client backends of user app on PostgreSQL (as the superuser,
# whose reserved slots are left when the proxies have taken the others).
server_conns() {
	"$PG_BINDIR/psql" -X -Atq -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
		-c "select count(*) from pg_stat_activity where usename = '$DB_USER'" 2>/dev/null || echo "?"
}
# note_server_conns WHEN: logs and reports how many server connections exist.
note_server_conns() {
	local n
	n=$(server_conns)
	log "PostgreSQL has $n connections of $DB_USER $1"
	NOTES+=("PostgreSQL connections of $DB_USER $1: $n (Sluice may hold $SERVER_CONNS, PgBouncer $SERVER_CONNS per database).")
}

FAILED=0
fail() { # MESSAGE: an unexpected failure; the run goes on
	log "$*"
	FAILED=1
}

# ---------------------------------------------------------------- 1. throughput

declare -A TPS=() ERR=()
RUN_TIMEOUT=$((DURATION + 60))

# pgbench_run KEY PORT DB MODE CLIENTS: TPS[KEY] (or ERR[KEY] and status 1)
pgbench_run() {
	local key=$1 port=$2 db=$3 mode=$4 c=$5 out=$WORK/run.out rc=0 tps aborted
	run_bg "$out" timeout --kill-after=5 "$RUN_TIMEOUT" \
		pgbench -n -S -M "$mode" -c "$c" -j $((c < 2 ? c : 2)) -T "$DURATION" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$db" || rc=$?
	{
		echo "=== $key (exit $rc)"
		cat "$out"
		echo
	} >>"$RAW_LOG"
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)
	aborted=$(grep -c 'aborted in command\|Run was aborted\|ERROR:\|error:' "$out" || true)
	if ((rc != 0 || aborted > 0)) || [[ -z $tps ]]; then
		ERR[$key]=$(grep -m1 -o 'ERROR:.*\|FATAL:.*\|error:.*' "$out" || tail -n1 "$out")
		((rc == 124 || rc == 137)) && ERR[$key]="hung: killed after ${RUN_TIMEOUT}s; ${ERR[$key]}"
		grep -q '^number of transactions actually processed: 0$' "$out" &&
			ERR[$key]="no transaction in ${DURATION}s: connecting $c clients took longer? (raise POOL_DURATION)"
		log "$(printf '%-9s %4s clients  %-18s FAIL: %s' "$mode" "$c" "${key##*/}" "${ERR[$key]}")"
		return 1
	fi
	TPS[$key]=$(printf '%.0f' "$tps")
	log "$(printf '%-9s %4s clients  %-18s %8s tps' "$mode" "$c" "${key##*/}" "${TPS[$key]}")"
}

# tps_row MODE CLIENTS PGB-DB: direct, Sluice and PgBouncer back to back.
tps_row() {
	local mode=$1 c=$2 pgbdb=$3 k="$1/$2"
	if ((c + 20 > PG_MAX_CONN - 2 * SERVER_CONNS)); then
		ERR[$k/direct]="skipped: max_connections $PG_MAX_CONN"
	else
		pgbench_run "$k/direct" "$PG_PORT" "$DB_NAME" "$mode" "$c" || fail "direct run failed ($(server_conns) connections of $DB_USER on PostgreSQL)"
	fi
	pgbench_run "$k/sluice" "$SLUICE_PORT" "$DB_NAME" "$mode" "$c" || fail "Sluice run failed"
	if ! pgbench_run "$k/pgbouncer" "$PGB_PORT" "$pgbdb" "$mode" "$c"; then
		# Expected: protocol-level prepared statements in transaction mode before 1.21.
		[[ $mode == prepared && $pgbdb == *_tx ]] && ((!PGB_TX_PREPARED)) || fail "PgBouncer run failed"
	fi
}

REF_ROW=""
if step tps; then
	log "warm-up: each target once with $MAX_CLIENTS clients (pools filled)"
	for t in "$PG_PORT $DB_NAME" "$SLUICE_PORT $DB_NAME" "$PGB_PORT ${DB_NAME}_tx"; do
		read -r port db <<<"$t"
		run_bg "$WORK/warm.out" timeout 120 pgbench -n -S -c "$MAX_CLIENTS" -j 2 -t 20 -h 127.0.0.1 -p "$port" -U "$DB_USER" "$db" ||
			log "warning: warm-up on port $port failed: $(tail -n1 "$WORK/warm.out")"
	done
	log "pgbench -S, ${DURATION}s per run: modes [$MODES] x clients [$CLIENTS] x direct, sluice, pgbouncer-tx"
	for mode in $MODES; do
		for c in $CLIENTS; do tps_row "$mode" "$c" "${DB_NAME}_tx"; done
	done
	if [[ " $MODES " == *" prepared "* ]] && ((!PGB_TX_PREPARED)); then
		REF_ROW=prepared/$SERVER_CONNS
		log "reference: -M prepared with $SERVER_CONNS clients, PgBouncer in session mode (pool $SERVER_CONNS)"
		tps_row prepared "$SERVER_CONNS" "${DB_NAME}_session"
	fi
	note_server_conns "after the pgbench runs"
fi

# ---------------------------------------------------------------- 2. idle connections

declare -A IDLE=()
# idle_run NAME PORT DB PID
idle_run() {
	local name=$1 out=$WORK/idle-$1.out rc=0
	log "idle: $IDLE_CONNS md5 connections through $name (pid $4)"
	run_bg "$out" "$WORK/idleconns" -dsn "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$2/$3?sslmode=disable" \
		-n "$IDLE_CONNS" -pid "$4" -concurrency 64 || rc=$?
	{
		echo "=== idle $name (exit $rc)"
		cat "$out"
		echo
	} >>"$RAW_LOG"
	grep -v '^[A-Z_0-9]*=' "$out" | sed 's/^/  /' >&2 || true
	IDLE[$name]=$(grep '^[A-Z_]*=' "$out" | paste -sd' ' || true)
	((rc == 0)) || fail "idle connections through $name: $(grep -m1 'failed' "$out" || tail -n1 "$out")"
	sleep 2 # let the proxy notice the closed connections
}
if step idle; then
	[[ " $IDLE_TARGETS " != *" sluice "* ]] || idle_run sluice "$SLUICE_MD5_PORT" "$DB_NAME" "$SLUICE_PID"
	[[ " $IDLE_TARGETS " != *" pgbouncer "* ]] || idle_run pgbouncer "$PGB_PORT" "${DB_NAME}_idle" "$PGB_PID"
	note_server_conns "after the idle-connection runs"
fi

# ---------------------------------------------------------------- 3. connect latency

declare -A CONN=()
# connect_run NAME PORT DB
connect_run() {
	local name=$1 out=$WORK/connect-$1.out rc=0
	run_bg "$out" "$WORK/idleconns" -sequential -n "$CONNECTS" \
		-dsn "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$2/$3?sslmode=disable" || rc=$?
	{
		echo "=== connect $name (exit $rc)"
		cat "$out"
		echo
	} >>"$RAW_LOG"
	CONN[$name]=$(grep '^[A-Z_0-9]*=' "$out" | paste -sd' ' || true)
	log "connect: $name: $(grep -v '^[A-Z_0-9]*=' "$out" | tail -n1)"
	((rc == 0)) || fail "sequential connects through $name failed"
}
if step connect; then
	log "connect latency: $CONNECTS sequential connects (SCRAM-SHA-256) per target"
	connect_run direct "$PG_PORT" "$DB_NAME"
	connect_run sluice "$SLUICE_PORT" "$DB_NAME"
	connect_run pgbouncer "$PGB_PORT" "${DB_NAME}_tx"
fi

# ---------------------------------------------------------------- report

ratio() { # A B: A/B with two decimals, or - if either is not a number
	[[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] || {
		echo -
		return
	}
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
}
cell() { # KEY: the TPS, or FAIL/skipped
	if [[ -n ${TPS[$1]:-} ]]; then
		echo "${TPS[$1]}"
	elif [[ ${ERR[$1]:-} == skipped* ]]; then
		echo "skipped"
	elif [[ -n ${ERR[$1]:-} ]]; then
		echo "FAIL"
	else
		echo -
	fi
}
kvget() { # "K=V K=V..." KEY
	local kv
	for kv in $1; do [[ ${kv%%=*} == "$2" ]] && echo "${kv#*=}" && return; done
	echo -
}

rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true) ]] || rev="$rev + local changes"
{
	echo "# Connection pooling: Sluice vs PgBouncer"
	echo
	echo "Generated by \`scripts/bench-pool.sh\` (\`make bench-pool\`) on $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), Linux $(uname -r); everything on 127.0.0.1, TCP, no TLS"
	echo "- PostgreSQL $PG_VERSION (bench/pgcluster, primary only, fsync off, max_connections $PG_MAX_CONN), pgbench scale $SCALE"
	echo "- Sluice $rev: writer endpoint (route: writer: every statement to the primary, as through PgBouncer), $SLUICE_POOL_DESC"
	echo "- PgBouncer $PGB_VERSION: pool_size $SERVER_CONNS, auth from a plain-text userlist$( ((PGB_TX_PREPARED)) && echo ", max_prepared_statements 200")"
	if step tps; then
		echo
		echo "## pgbench -S (select-only), TPS"
		echo
		echo "\`pgbench -n -S -M <mode> -c <clients> -j 2 -T $DURATION\`, SCRAM-SHA-256 logins; direct, Sluice and PgBouncer back to back per row, after one warm-up connect of $MAX_CLIENTS clients through each."
		echo
		echo "| mode | clients | direct | Sluice | PgBouncer | Sluice / PgBouncer | Sluice / direct |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for mode in $MODES; do
			for c in $CLIENTS $([[ $REF_ROW == "$mode"/* ]] && echo "${REF_ROW#*/}"); do
				k=$mode/$c
				s=$(cell "$k/sluice") p=$(cell "$k/pgbouncer") d=$(cell "$k/direct")
				label=$c pl="$p (tx)"
				[[ $k == "$REF_ROW" ]] && label="$c (reference)" pl="$p (**session**)"
				echo "| $mode | $label | $d | $s | $pl | $(ratio "$s" "$p") | $(ratio "$s" "$d") |"
			done
		done
		echo
		if [[ -n $REF_ROW ]]; then
			echo "- PgBouncer $PGB_VERSION predates max_prepared_statements (1.21): in transaction mode -M prepared breaks (a statement prepared on one server connection is executed on another): $(for c in $CLIENTS; do e=${ERR[prepared/$c/pgbouncer]:-}; [[ -n $e ]] && printf '%s clients: `%s`; ' "$c" "$e"; done)"
			echo "- reference line: -M prepared with $SERVER_CONNS clients (= pool size) against all three, PgBouncer in **session** mode, pool $SERVER_CONNS; with more clients than servers, session mode leaves the extra clients waiting for the whole run."
		fi
		for k in "${!ERR[@]}"; do
			[[ $k == prepared/*/pgbouncer && -n $REF_ROW ]] && continue
			echo "- $k: ${ERR[$k]}"
		done
	fi
	if step idle; then
		echo
		echo "## Idle client connections: proxy RSS"
		echo
		echo "bench/idleconns: $IDLE_CONNS connections opened 64 at a time (md5 logins on both, PgBouncer database in transaction mode), all kept idle; VmRSS of the proxy process after 16 warm-up connections and once all are open."
		echo
		echo "| proxy | opened | failed | RSS before (KiB) | RSS after (KiB) | KiB per connection | open time (s) |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for t in sluice pgbouncer; do
			r=${IDLE[$t]:-}
			echo "| $t | $(kvget "$r" OPENED) | $(kvget "$r" FAILED) | $(kvget "$r" RSS_BEFORE_KIB) | $(kvget "$r" RSS_AFTER_KIB) | $(kvget "$r" RSS_PER_CONN_KIB) | $(kvget "$r" OPEN_SECONDS) |"
		done
		echo
		echo "Sluice / PgBouncer, KiB per connection: $(ratio "$(kvget "${IDLE[sluice]:-}" RSS_PER_CONN_KIB)" "$(kvget "${IDLE[pgbouncer]:-}" RSS_PER_CONN_KIB)")"
	fi
	if step connect; then
		echo
		echo "## Connect latency"
		echo
		echo "bench/idleconns -sequential: $CONNECTS connections opened and closed one after the other (start-up, SCRAM-SHA-256, ReadyForQuery, Terminate; no query)."
		echo
		echo "| target | connects | failed | total (ms) | per connection (ms) | p50 (ms) | p99 (ms) |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for t in direct sluice pgbouncer; do
			r=${CONN[$t]:-}
			echo "| $t | $(kvget "$r" CONNECTS) | $(kvget "$r" FAILED) | $(kvget "$r" TOTAL_MS) | $(kvget "$r" PER_CONN_MS) | $(kvget "$r" P50_MS) | $(kvget "$r" P99_MS) |"
		done
	fi
	if ((${#NOTES[@]})); then
		echo
		for n in "${NOTES[@]}"; do echo "- $n"; done
	fi
} >"$REPORT"
echo
cat "$REPORT"
log "results written to ${REPORT#"$ROOT"/} (raw output: ${RAW_LOG#"$ROOT"/})"
((FAILED == 0)) || die "some runs failed unexpectedly (see above and ${RAW_LOG#"$ROOT"/})"
