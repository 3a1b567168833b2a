#!/usr/bin/env bash
# scripts/bench.sh — what a bare hop costs: pgbench -S (select-only) against
# one PostgreSQL primary directly, through Sluice's writer endpoint, through
# go-relay, and through PgBouncer in transaction and in session pool mode,
# all in one run on the same machine. Called by `make bench` (which builds
# bin/sluice first).
#
# go-relay is bench/tcprelay: a zero-protocol Go TCP relay (one goroutine
# pair per connection, bytes copied both ways, no pool). It is the floor of
# any goroutine-per-connection Go proxy on this machine, so Sluice's rows
# can be read against it as well as against PgBouncer.
#
# Steps: start a PostgreSQL 15 primary (no replicas) with bench/pgcluster,
# `pgbench -i -s $BENCH_SCALE`, start Sluice, go-relay and (if installed)
# PgBouncer with generated configurations in a temporary directory, then for
# every protocol mode × client count run pgbench against every target, measuring
# the proxy process's CPU time (utime+stime from /proc/PID/stat) during the
# run. Prints a table and writes it as markdown to bench/results/latest.md
# (raw pgbench output in bench/results/latest.log).
#
# Environment (all optional):
#   BENCH_DURATION       seconds per pgbench run (default 15)
#   BENCH_CLIENTS        client counts (default "1 16 64")
#   BENCH_MODES          pgbench -M modes (default "simple extended prepared")
#   BENCH_TARGETS        subset of "direct sluice go-relay pgbouncer-tx pgbouncer-session"
#   BENCH_SCALE          pgbench scale factor (default 10)
#   BENCH_WARMUP         seconds of warm-up before the runs (default 5, 0 = none)
#   BENCH_POOL_SIZE      PgBouncer default_pool_size (default 64)
#   BENCH_READY_TIMEOUT  seconds to wait for each server to accept queries (default 60)
#   BENCH_KEEP_TMP=1     keep the temporary directory (configs, logs) on exit
#   SLUICE_BIN           proxy binary (default bin/sluice)
#   PGBOUNCER            pgbouncer binary (default: from PATH, else /usr/sbin/pgbouncer)
#   GO                   go command (default: go from PATH, else /usr/local/go/bin/go)
#   BENCH_PGCLUSTER      a built bench/pgcluster binary (default: built by this script)
#
# Exit status: 0 if every run succeeded, 1 if a run failed (the results are
# still written, with FAIL rows) or the set-up failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-15}
CLIENTS=${BENCH_CLIENTS:-"1 16 64"}
MODES=${BENCH_MODES:-"simple extended prepared"}
TARGETS=${BENCH_TARGETS:-"direct sluice go-relay pgbouncer-tx pgbouncer-session"}
SCALE=${BENCH_SCALE:-10}
WARMUP=${BENCH_WARMUP:-5}
POOL_SIZE=${BENCH_POOL_SIZE:-64}
MAX_CLIENT_CONN=200
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/bin/sluice}
RESULTS_DIR=$ROOT/bench/results
DB_USER=app
DB_PASSWORD=app
DB_NAME=app

BENCH_NAME=bench
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

# ---------------------------------------------------------------- checks

is_uint "$DURATION" && ((DURATION > 0)) || die "BENCH_DURATION must be a positive number of seconds, not '$DURATION'"
is_uint "$SCALE" && ((SCALE > 0)) || die "BENCH_SCALE must be a positive integer, not '$SCALE'"
is_uint "$WARMUP" || die "BENCH_WARMUP must be a number of seconds, not '$WARMUP'"
is_uint "$POOL_SIZE" && ((POOL_SIZE > 0)) || die "BENCH_POOL_SIZE must be a positive integer, not '$POOL_SIZE'"
is_uint "$READY_TIMEOUT" && ((READY_TIMEOUT > 0)) || die "BENCH_READY_TIMEOUT must be a positive number of seconds"
for c in $CLIENTS; do
	is_uint "$c" && ((c > 0)) || die "BENCH_CLIENTS: '$c' is not a positive integer"
	((c <= MAX_CLIENT_CONN)) || die "BENCH_CLIENTS: $c is more than PgBouncer's max_client_conn ($MAX_CLIENT_CONN)"
done
for m in $MODES; do
	case $m in simple | extended | prepared) ;; *) die "BENCH_MODES: unknown pgbench mode '$m'" ;; esac
done
for t in $TARGETS; do
	case $t in direct | sluice | go-relay | pgbouncer-tx | pgbouncer-session) ;; *) die "BENCH_TARGETS: unknown target '$t'" ;; esac
done

[[ -r /proc/self/stat ]] || die "this script needs Linux /proc to measure the proxies' CPU time"
command -v pgbench >/dev/null || die "pgbench not found (Debian/Ubuntu: apt-get install postgresql-client)"
command -v getconf >/dev/null || die "getconf not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
CLK_TCK=$(getconf CLK_TCK)
is_uint "$CLK_TCK" && ((CLK_TCK > 0)) || die "getconf CLK_TCK returned '$CLK_TCK'"
if want sluice; then
	[[ -x $SLUICE_BIN ]] || die "$SLUICE_BIN not found or not executable: run 'make build' (or 'make bench')"
fi
if [[ -z ${GO:-} ]]; then
	GO=$(command -v go || true)
	[[ -n $GO ]] || GO=/usr/local/go/bin/go
fi
[[ -x $GO ]] || command -v "$GO" >/dev/null || die "go not found (set GO=/path/to/go)"

PGBOUNCER=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
HAVE_PGBOUNCER=0
PGB_VERSION=""
if want pgbouncer-tx || want pgbouncer-session; then
	if [[ -x $PGBOUNCER ]]; then
		HAVE_PGBOUNCER=1
		PGB_VERSION=$("$PGBOUNCER" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p' | head -n1)
	else
		log "pgbouncer not installed ($PGBOUNCER): skipping the PgBouncer rows"
	fi
fi
# Prepared statements in transaction mode need PgBouncer >= 1.21
# (max_prepared_statements); older versions break them.
PGB_TX_PREPARED=0
if [[ -n $PGB_VERSION ]]; then
	IFS=. read -r pgb_major pgb_minor _ <<<"$PGB_VERSION.0.0"
	if ((pgb_major > 1 || (pgb_major == 1 && pgb_minor >= 21))); then PGB_TX_PREPARED=1; fi
fi

# libpq settings for every pgbench; anything inherited that could redirect
# the connections is dropped.
unset PGSERVICE PGSERVICEFILE PGOPTIONS PGHOSTADDR PGPASSFILE PGTARGETSESSIONATTRS PGDATABASE PGUSER PGHOST PGPORT
export PGPASSWORD=$DB_PASSWORD PGSSLMODE=disable PGCONNECT_TIMEOUT=5 PGAPPNAME=sluice-bench

# ---------------------------------------------------------------- clean-up

WORK=""
PGC_PID="" SLUICE_PID="" RELAY_PID="" PGB_PID=""



cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	stop_proc "$CUR_PID" pgbench 5
	stop_proc "$PGB_PID" pgbouncer 10
	stop_proc "$RELAY_PID" go-relay 5
	stop_proc "$SLUICE_PID" sluice 15
	if ((rc != 0)) && [[ -n $WORK && -d $WORK && -d $RESULTS_DIR ]]; then
		# Keep what explains the failure; the cluster directory goes with the cluster.
		rm -rf "$RESULTS_DIR/latest-logs"
		mkdir -p "$RESULTS_DIR/latest-logs"
		cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.err "$WORK"/*.yaml "$RESULTS_DIR/latest-logs/" 2>/dev/null
		[[ -n ${PG_LOG:-} && -f $PG_LOG ]] && cp "$PG_LOG" "$RESULTS_DIR/latest-logs/postgres.log"
		log "logs of the failed run copied to ${RESULTS_DIR#"$ROOT"/}/latest-logs/"
	elif ((rc == 0)); then
		rm -rf "$RESULTS_DIR/latest-logs"
	fi
	stop_proc "$PGC_PID" "postgres cluster" 60
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
			log "kept $WORK"
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
# Under /tmp, not $TMPDIR: the PgBouncer account must be able to reach it.
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
# PgBouncer may run as another user and must reach its directory.
chmod 755 "$WORK"

# run_bg OUTFILE CMD...: run CMD with its output in OUTFILE, in the
# background so that a signal to this script is handled at once (bash defers
# traps while a foreground command runs); the clean-up stops it.
CUR_PID=""


free_ports() { # N: prints N free loopback ports
	"$WORK/pgcluster" -free-ports "$1"
}

# wait_query NAME PID PORT DB LOGFILE: poll with a one-transaction pgbench
# until it succeeds, failing if the process exits or the time is up.
wait_query() {
	local name=$1 pid=$2 port=$3 db=$4 logf=$5 deadline=$((SECONDS + READY_TIMEOUT))
	while :; do
		if ! alive "$pid"; then
			show_tail "$logf"
			return 2
		fi
		if pgbench -n -S -t 1 -h 127.0.0.1 -p "$port" -U "$DB_USER" "$db" >"$WORK/ready.out" 2>&1; then
			return 0
		fi
		if ((SECONDS >= deadline)); then
			show_tail "$WORK/ready.out" 5
			show_tail "$logf"
			die "$name (pid $pid) does not answer queries on 127.0.0.1:$port after ${READY_TIMEOUT}s"
		fi
		sleep 0.2
	done
}

# ---------------------------------------------------------------- postgres

if [[ -n ${BENCH_PGCLUSTER:-} ]]; then
	[[ -x $BENCH_PGCLUSTER ]] || die "BENCH_PGCLUSTER=$BENCH_PGCLUSTER is not an executable"
	cp "$BENCH_PGCLUSTER" "$WORK/pgcluster"
else
	log "building bench/pgcluster"
	"$GO" build -o "$WORK/pgcluster" ./bench/pgcluster ||
		die "could not build bench/pgcluster (BENCH_PGCLUSTER=/path/to/a/built/pgcluster skips the build)"
fi
if want go-relay; then
	log "building bench/tcprelay"
	"$GO" build -o "$WORK/tcprelay" ./bench/tcprelay || die "could not build bench/tcprelay"
fi

log "starting PostgreSQL (primary only)"
"$WORK/pgcluster" -v -replicas 0 -max-connections 300 >"$WORK/pgcluster.out" 2>"$WORK/pgcluster.err" &
PGC_PID=$!
deadline=$((SECONDS + 180))
until grep -qx READY "$WORK/pgcluster.out" 2>/dev/null; do
	if ! alive "$PGC_PID"; then
		show_tail "$WORK/pgcluster.err" 40
		die "the PostgreSQL cluster failed to start"
	fi
	((SECONDS < deadline)) || {
		show_tail "$WORK/pgcluster.err" 40
		die "the PostgreSQL cluster did not start within 180s"
	}
	sleep 0.2
done
kv() { sed -n "s/^$1=//p" "$WORK/pgcluster.out" | head -n1; }
PG_PORT=$(kv PRIMARY_PORT)
PG_LOG=$(kv PRIMARY_LOG)
PG_BINDIR=$(kv BINDIR)
is_uint "$PG_PORT" || die "bench/pgcluster printed no primary port"
PG_VERSION=$("$PG_BINDIR/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) //') || PG_VERSION=unknown
log "PostgreSQL $PG_VERSION primary on 127.0.0.1:$PG_PORT (log $PG_LOG)"

log "pgbench -i -s $SCALE"
if ! run_bg "$WORK/init.out" pgbench -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" "$DB_NAME"; then
	show_tail "$WORK/init.out"
	show_tail "$PG_LOG"
	die "pgbench -i failed"
fi

# ---------------------------------------------------------------- sluice

SLUICE_PORT=""
if want sluice; then
	# SLUICE_* variables would override the generated configuration.
	sluice_env=(env)
	while IFS= read -r v; do sluice_env+=(-u "$v"); done < <(compgen -e | grep '^SLUICE_' || true)
	sluice_prepare() { # PORT ATTEMPT: see start_server
		local port=$1
		cat >"$WORK/sluice.yaml" <<EOF
# generated by scripts/bench.sh
listeners:
  - name: bench-writer
    protocol: postgres
    address: 127.0.0.1:$port
    cluster: bench
    route: writer
    auth: scram-sha-256
clusters:
  bench:
    protocol: postgres
    backends:
      - address: 127.0.0.1:$PG_PORT
        name: pg0
    monitor_user: $DB_USER
    monitor_database: $DB_NAME
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
		if ! "${sluice_env[@]}" "$SLUICE_BIN" check-config "$WORK/sluice.yaml" >"$WORK/sluice-check.out" 2>&1; then
			if grep -qi 'in use' "$WORK/sluice-check.out" && (($2 < 3)); then
				START_PORT_TAKEN=1
				return 0
			fi
			cat "$WORK/sluice-check.out" >&2
			die "the generated Sluice configuration is invalid ($WORK/sluice.yaml)"
		fi
		log "starting Sluice: writer endpoint on 127.0.0.1:$port"
	}
	sluice_ready() { wait_query sluice "$1" "$2" "$DB_NAME" "$WORK/sluice.log"; } # PID PORT
	start_server Sluice SLUICE_PORT SLUICE_PID "$WORK/sluice.log" 'address already in use' \
		sluice_prepare sluice_ready "${sluice_env[@]}" "$SLUICE_BIN" --config "$WORK/sluice.yaml"
fi

# ---------------------------------------------------------------- go-relay

RELAY_PORT=""
if want go-relay; then
	relay_prepare() { log "starting go-relay (bench/tcprelay) on 127.0.0.1:$1"; } # PORT ATTEMPT
	relay_ready() { wait_query go-relay "$1" "$2" "$DB_NAME" "$WORK/tcprelay.log"; } # PID PORT
	start_server go-relay RELAY_PORT RELAY_PID "$WORK/tcprelay.log" 'address already in use' \
		relay_prepare relay_ready "$WORK/tcprelay" -listen "127.0.0.1:@PORT@" -backend "127.0.0.1:$PG_PORT"
fi

# ---------------------------------------------------------------- pgbouncer

PGB_PORT=""
PGB_USER=""
if ((HAVE_PGBOUNCER)); then
	PGB_DIR=$WORK/pgbouncer
	mkdir -p "$PGB_DIR"
	pgb_args=()
	if ((EUID == 0)); then
		# PgBouncer refuses to run as root: -u makes it switch user itself
		# (the same process, so $! stays the pid to measure).
		for u in postgres nobody; do
			if id -u "$u" >/dev/null 2>&1; then PGB_USER=$u && break; fi
		done
		[[ -n $PGB_USER ]] || die "running as root, but there is neither a postgres nor a nobody account for PgBouncer"
		pgb_args=(-u "$PGB_USER")
	fi
	printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" >"$PGB_DIR/userlist.txt"
	pgb_prepare() { # PORT ATTEMPT: see start_server
		local port=$1
		{
			echo "; generated by scripts/bench.sh"
			echo "[databases]"
			echo "${DB_NAME}_tx = host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME pool_mode=transaction"
			echo "${DB_NAME}_session = host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME pool_mode=session"
			echo
			echo "[pgbouncer]"
			echo "listen_addr = 127.0.0.1"
			echo "listen_port = $port"
			echo "unix_socket_dir ="
			echo "auth_type = scram-sha-256"
			echo "auth_file = $PGB_DIR/userlist.txt"
			echo "pool_mode = session"
			echo "default_pool_size = $POOL_SIZE"
			echo "max_client_conn = $MAX_CLIENT_CONN"
			echo "ignore_startup_parameters = extra_float_digits"
			echo "log_connections = 0"
			echo "log_disconnections = 0"
			echo "stats_period = 3600"
			if ((PGB_TX_PREPARED)); then echo "max_prepared_statements = 200"; fi
		} >"$PGB_DIR/pgbouncer.ini"
		if [[ -n $PGB_USER ]]; then
			chown -R "$PGB_USER" "$PGB_DIR"
		fi
		chmod 700 "$PGB_DIR"
		chmod 600 "$PGB_DIR/pgbouncer.ini" "$PGB_DIR/userlist.txt"
		log "starting PgBouncer $PGB_VERSION on 127.0.0.1:$port${PGB_USER:+ as $PGB_USER} (databases ${DB_NAME}_tx, ${DB_NAME}_session)"
	}
	pgb_ready() { # PID PORT
		wait_query pgbouncer "$1" "$2" "${DB_NAME}_tx" "$WORK/pgbouncer.log" &&
			wait_query pgbouncer "$1" "$2" "${DB_NAME}_session" "$WORK/pgbouncer.log"
	}
	# start_server opens the log, so it is ours (not the server account's).
	start_server PgBouncer PGB_PORT PGB_PID "$WORK/pgbouncer.log" 'address already in use' \
		pgb_prepare pgb_ready "$PGBOUNCER" "${pgb_args[@]}" "$PGB_DIR/pgbouncer.ini"
fi

# ---------------------------------------------------------------- runs


if ((WARMUP > 0)); then
	log "warm-up: ${WARMUP}s direct"
	run_bg "$WORK/warmup.out" pgbench -n -S -c 4 -j 2 -T "$WARMUP" -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" "$DB_NAME" ||
		{
			show_tail "$WORK/warmup.out"
			die "warm-up run failed"
		}
fi

# Pool warm-up: let every proxy open its backend connections for the
# largest client count once, so that no run pays for filling a pool
# (go-relay has no pool: each client connection dials its own).
MAX_CLIENTS=0
for c in $CLIENTS; do ((c > MAX_CLIENTS)) && MAX_CLIENTS=$c; done
for t in $TARGETS; do
	case $t in
	sluice) port=$SLUICE_PORT db=$DB_NAME ;;
	pgbouncer-tx) port=$PGB_PORT db=${DB_NAME}_tx ;;
	pgbouncer-session) port=$PGB_PORT db=${DB_NAME}_session ;;
	*) continue ;;
	esac
	[[ -n $port ]] || continue
	run_bg "$WORK/poolwarm.out" timeout --kill-after=5 120 \
		pgbench -n -S -c "$MAX_CLIENTS" -j $((MAX_CLIENTS < 2 ? MAX_CLIENTS : 2)) -t 20 -h 127.0.0.1 -p "$port" -U "$DB_USER" "$db" ||
		log "warning: pool warm-up through $t failed (the runs will tell): $(tail -n1 "$WORK/poolwarm.out")"
done

# A run may take the duration plus connecting its clients; beyond this it hangs.
RUN_TIMEOUT=$((DURATION + (DURATION > 60 ? DURATION : 60)))
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW_LOG=$RESULTS_DIR/latest.log
: >"$RAW_LOG"
ROWS=$WORK/rows.tsv
: >"$ROWS"
FAILED=0
declare -A DIRECT_TPS=()

nruns=0
for mode in $MODES; do for c in $CLIENTS; do for t in $TARGETS; do nruns=$((nruns + 1)); done; done; done
log "running pgbench -S: modes [$MODES] x clients [$CLIENTS] x targets [$TARGETS], ${DURATION}s each (about $((nruns * (DURATION + 1) / 60 + 1)) min)"

# check_primary: after a failed run, make sure PostgreSQL itself still
# answers; if not, every further run would fail too: stop here.
check_primary() {
	local why=""
	if ! alive "$PGC_PID"; then
		why="the PostgreSQL cluster helper exited"
	elif ! timeout 20 pgbench -n -S -t 1 -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" "$DB_NAME" >"$WORK/check.out" 2>&1; then
		why="the PostgreSQL primary no longer answers: $(grep -m1 -o 'FATAL:.*\|Connection refused\|could not connect.*' "$WORK/check.out" || tail -n1 "$WORK/check.out")"
	fi
	[[ -n $why ]] || return 0
	show_tail "$PG_LOG" 15
	write_report "$why"
	die "$why (was it signalled by something else on this machine? see the server log above)"
}

# run_one MODE CLIENTS TARGET: appends a row to $ROWS
run_one() {
	local mode=$1 clients=$2 target=$3 port db pid="" jobs out rc before="" after="" tps txns failed cpu cores ratio
	case $target in
	direct) port=$PG_PORT db=$DB_NAME ;;
	sluice) port=$SLUICE_PORT db=$DB_NAME pid=$SLUICE_PID ;;
	go-relay) port=$RELAY_PORT db=$DB_NAME pid=$RELAY_PID ;;
	pgbouncer-tx) port=$PGB_PORT db=${DB_NAME}_tx pid=$PGB_PID ;;
	pgbouncer-session) port=$PGB_PORT db=${DB_NAME}_session pid=$PGB_PID ;;
	esac
	if [[ -n $pid ]] && ! alive "$pid"; then
		log "$target: the proxy (pid $pid) is not running any more"
		printf '%s\t%s\t%s\tFAIL\t-\t-\t-\n' "$mode" "$clients" "$target" >>"$ROWS"
		FAILED=1
		return 0
	fi
	jobs=$((clients < 2 ? clients : 2))
	out=$WORK/run.out
	[[ -n $pid ]] && before=$(cpu_ticks "$pid")
	rc=0
	# pgbench -T does not end while a client waits for an answer that never
	# comes: a proxy that loses a message would hang the whole benchmark.
	run_bg "$out" timeout --kill-after=5 "$RUN_TIMEOUT" \
		pgbench -n -S -M "$mode" -c "$clients" -j "$jobs" -T "$DURATION" \
		-h 127.0.0.1 -p "$port" -U "$DB_USER" "$db" || rc=$?
	[[ -n $pid ]] && after=$(cpu_ticks "$pid" 2>/dev/null || true)
	{
		echo "=== $mode, $clients clients, $target (exit $rc)"
		cat "$out"
		echo
	} >>"$RAW_LOG"
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)
	if ((rc == 124 || rc == 137)); then
		log "$target, $mode, $clients clients: pgbench did not finish within ${RUN_TIMEOUT}s (a client waits for an answer that never comes?): killed"
		show_tail "$out" 10
		printf '%s\t%s\t%s\tHANG\t-\t-\t-\n' "$mode" "$clients" "$target" >>"$ROWS"
		FAILED=1
		check_primary
		return 0
	fi
	if ((rc != 0)) || [[ -z $tps || -z $txns || ${failed:-0} != 0 ]] || ((${txns:-0} == 0)); then
		log "$target, $mode, $clients clients: pgbench failed (exit $rc, ${txns:-no} transactions)"
		show_tail "$out" 10
		printf '%s\t%s\t%s\tFAIL\t-\t-\t-\n' "$mode" "$clients" "$target" >>"$ROWS"
		FAILED=1
		check_primary
		return 0
	fi
	if [[ $target == direct ]]; then DIRECT_TPS[$mode/$clients]=$tps; fi
	ratio=-
	if [[ -n ${DIRECT_TPS[$mode/$clients]:-} ]]; then
		ratio=$(awk -v a="$tps" -v b="${DIRECT_TPS[$mode/$clients]}" 'BEGIN { printf "%.2f", a / b }')
	fi
	cpu=- cores=-
	if [[ -n $before && -n $after ]]; then
		cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
		cores=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v s="$DURATION" 'BEGIN { printf "%.2f", d / hz / s }')
	fi
	printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\n' "$mode" "$clients" "$target" "$tps" "$ratio" "$cpu" "$cores" >>"$ROWS"
	log "$(printf '%-8s %3s clients  %-17s %8.0f tps  x%-5s %6s us/txn' "$mode" "$clients" "$target" "$tps" "$ratio" "$cpu")"
}

# ---------------------------------------------------------------- report

# write_report [ABORT-REASON]: prints the table and writes latest.md.
write_report() {
	local abort=${1:-} rev header mode c t tps ratio cpu cores n
	rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true) ]]; then
		rev="$rev + local changes"
	fi
	header=$(printf '%-9s %7s  %-18s %9s %9s %14s %12s' mode clients target TPS vs-direct 'proxy-µs/txn' 'proxy-cores')
	echo
	echo "$header"
	while IFS=$'\t' read -r mode c t tps ratio cpu cores; do
		printf '%-9s %7s  %-18s %9s %9s %13s %12s\n' "$mode" "$c" "$t" "$tps" "$ratio" "$cpu" "$cores"
	done <"$ROWS"
	for n in ${NOTES[@]+"${NOTES[@]}"}; do echo "note: $n"; done
	[[ -z $abort ]] || echo "ABORTED: $abort"

	{
		echo "# pgbench -S: direct vs Sluice vs PgBouncer"
		echo
		echo "Generated by \`scripts/bench.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC')."
		echo
		if [[ -n $abort ]]; then
			echo "**Aborted: $abort** (logs in \`latest-logs/\`)"
			echo
		fi
		echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), Linux $(uname -r); load average (1/5/15 min) before the runs: $LOAD_START, after: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- PostgreSQL $PG_VERSION (primary only, fsync off, shared_buffers 256MB, max_connections 300), pgbench scale $SCALE, $(pgbench --version | sed 's/^pgbench (PostgreSQL) /pgbench /')"
		echo "- each run: \`pgbench -n -S -M <mode> -c <clients> -j min(2,clients) -T $DURATION\`, all on 127.0.0.1, TCP, no TLS, SCRAM-SHA-256 logins; targets of one mode and client count run back to back; before the runs a ${WARMUP}s direct warm-up and one connect of $MAX_CLIENTS clients through each proxy (pools filled)"
		echo "- sluice: $rev, writer endpoint (route: writer), log level warn, health interval 500ms"
		if want go-relay; then
			echo "- go-relay: bench/tcprelay, a zero-protocol Go TCP relay to the primary (two goroutines copying bytes per connection, no pool, so no pool warm-up, no parsing): the floor of any goroutine-per-connection Go proxy on this machine"
		fi
		if ((HAVE_PGBOUNCER)); then
			echo "- PgBouncer $PGB_VERSION: one process, databases with pool_mode=transaction and pool_mode=session, default_pool_size $POOL_SIZE, max_client_conn $MAX_CLIENT_CONN, auth_type scram-sha-256 (plain-text userlist)"
		fi
		echo "- vs direct: TPS / TPS of the direct run of the same mode and client count"
		echo "- proxy µs/txn: CPU time (user+system, /proc/PID/stat) of the proxy process during the run (connection set-up included) / transactions; proxy cores: that CPU time / run duration"
		echo "- FAIL: pgbench failed or processed nothing; HANG: pgbench did not end within ${RUN_TIMEOUT}s and was killed (see \`latest.log\`)"
		echo
		echo "| mode | clients | target | TPS | vs direct | proxy CPU µs/txn | proxy cores |"
		echo "|---|---:|---|---:|---:|---:|---:|"
		while IFS=$'\t' read -r mode c t tps ratio cpu cores; do
			echo "| $mode | $c | $t | $tps | $ratio | $cpu | $cores |"
		done <"$ROWS"
		if ((${#NOTES[@]})); then
			echo
			for n in "${NOTES[@]}"; do echo "- $n"; done
		fi
	} >"$RESULTS_DIR/latest.md"
	log "results written to ${RESULTS_DIR#"$ROOT"/}/latest.md (raw pgbench output: ${RAW_LOG#"$ROOT"/})"
}

NOTES=()
skipped_tx_prepared=0
for mode in $MODES; do
	for c in $CLIENTS; do
		# Targets back to back per mode and client count, so that the ratios
		# compare runs close in time on a shared machine.
		for t in $TARGETS; do
			case $t in
			sluice) ;;
			pgbouncer-*)
				((HAVE_PGBOUNCER)) || continue
				if [[ $t == pgbouncer-tx && $mode == prepared ]] && ((!PGB_TX_PREPARED)); then
					skipped_tx_prepared=1
					continue
				fi
				;;
			esac
			run_one "$mode" "$c" "$t"
		done
	done
done
if ((skipped_tx_prepared)); then
	NOTES+=("pgbouncer-tx × prepared skipped: PgBouncer $PGB_VERSION does not support protocol-level prepared statements in transaction mode (needs >= 1.21).")
fi
if ! ((HAVE_PGBOUNCER)) && { want pgbouncer-tx || want pgbouncer-session; }; then
	NOTES+=("PgBouncer rows skipped: pgbouncer is not installed.")
fi

write_report
if ((FAILED)); then
	die "some runs failed (FAIL/HANG rows above; details in ${RAW_LOG#"$ROOT"/})"
fi
