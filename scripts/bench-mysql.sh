#!/usr/bin/env bash
# scripts/bench-mysql.sh — what a bare hop costs on the MySQL protocol:
# sysbench oltp_point_select and oltp_read_only against one MariaDB primary
# directly, through Sluice's writer endpoint (protocol mysql), through
# go-relay, and through HAProxy in TCP mode, all in one run on the same
# machine. Called by `make bench` after scripts/bench.sh (which builds
# bin/sluice first).
#
# go-relay is bench/tcprelay: a zero-protocol Go TCP relay (one goroutine
# pair per connection, bytes copied both ways). It is the floor of any
# goroutine-per-connection Go proxy on this machine, so Sluice's rows can be
# read against it as well as against HAProxy.
#
# Steps: start a MariaDB primary (no replicas) with bench/mycluster,
# `sysbench oltp_read_only prepare` (one table of $BENCH_TABLE_SIZE rows),
# start Sluice, go-relay and (if installed) HAProxy with generated
# configurations in a temporary directory, then for every workload × thread
# count run sysbench against every target, measuring the proxy process's CPU
# time (utime+stime from /proc/PID/stat) during the run. Prints a table and
# writes it as markdown to bench/results/latest-mysql.md (raw sysbench
# output in bench/results/latest-mysql.log).
#
# Environment (all optional):
#   BENCH_DURATION       seconds per sysbench run (default 15)
#   BENCH_THREADS        thread counts (default "1 16 64")
#   BENCH_WORKLOADS      subset of "oltp_point_select oltp_read_only"
#   BENCH_TARGETS        subset of "direct sluice go-relay haproxy"
#   BENCH_TABLE_SIZE     rows of the sbtest1 table (default 100000)
#   BENCH_PS_MODE        sysbench --db-ps-mode (default auto: server-side prepared statements)
#   BENCH_WARMUP         seconds of warm-up per target before the runs (default 3, 0 = none)
#   BENCH_READY_TIMEOUT  seconds to wait for each server to accept queries (default 60)
#   BENCH_KEEP_TMP=1     keep the temporary directory (configs, logs) on exit
#   SLUICE_BIN           proxy binary (default bin/sluice)
#   SYSBENCH             sysbench binary (default: from PATH, else /usr/bin/sysbench)
#   HAPROXY              haproxy binary (default: from PATH, else /usr/sbin/haproxy)
#   GO                   go command (default: go from PATH, else /usr/local/go/bin/go)
#   BENCH_MYCLUSTER      a built bench/mycluster binary (default: built by this script)
#
# Exit status: 0 if every run succeeded (or sysbench is not installed: then
# nothing runs), 1 if a run failed (the results are still written, with
# FAIL/HANG rows) or the set-up failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-15}
THREADS=${BENCH_THREADS:-"1 16 64"}
WORKLOADS=${BENCH_WORKLOADS:-"oltp_point_select oltp_read_only"}
TARGETS=${BENCH_TARGETS:-"direct sluice go-relay haproxy"}
TABLE_SIZE=${BENCH_TABLE_SIZE:-100000}
PS_MODE=${BENCH_PS_MODE:-auto}
WARMUP=${BENCH_WARMUP:-3}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/bin/sluice}
RESULTS_DIR=$ROOT/bench/results
REPORT=$RESULTS_DIR/latest-mysql.md
RAW_LOG=$RESULTS_DIR/latest-mysql.log
FAIL_LOGS=$RESULTS_DIR/latest-mysql-logs
DB_USER=app
DB_PASSWORD=app
DB_NAME=app
MAX_THREADS_LIMIT=400 # the server allows 500 connections

BENCH_NAME=bench-mysql
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

# ---------------------------------------------------------------- checks

SYSBENCH=${SYSBENCH:-$(command -v sysbench || echo /usr/bin/sysbench)}
if [[ ! -x $SYSBENCH ]]; then
	log "sysbench not installed ($SYSBENCH): skipping the MySQL benchmark (Debian/Ubuntu: apt-get install sysbench)"
	exit 0
fi

is_uint "$DURATION" && ((DURATION > 0)) || die "BENCH_DURATION must be a positive number of seconds, not '$DURATION'"
is_uint "$TABLE_SIZE" && ((TABLE_SIZE > 0)) || die "BENCH_TABLE_SIZE must be a positive integer, not '$TABLE_SIZE'"
is_uint "$WARMUP" || die "BENCH_WARMUP must be a number of seconds, not '$WARMUP'"
is_uint "$READY_TIMEOUT" && ((READY_TIMEOUT > 0)) || die "BENCH_READY_TIMEOUT must be a positive number of seconds"
for c in $THREADS; do
	is_uint "$c" && ((c > 0)) || die "BENCH_THREADS: '$c' is not a positive integer"
	((c <= MAX_THREADS_LIMIT)) || die "BENCH_THREADS: $c is more than $MAX_THREADS_LIMIT"
done
for w in $WORKLOADS; do
	case $w in oltp_point_select | oltp_read_only) ;; *) die "BENCH_WORKLOADS: unknown workload '$w'" ;; esac
done
for t in $TARGETS; do
	case $t in direct | sluice | go-relay | haproxy) ;; *) die "BENCH_TARGETS: unknown target '$t'" ;; esac
done
case $PS_MODE in auto | disable) ;; *) die "BENCH_PS_MODE must be auto or disable, not '$PS_MODE'" ;; esac

[[ -r /proc/self/stat ]] || die "this script needs Linux /proc to measure the proxies' CPU time"
command -v getconf >/dev/null || die "getconf not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
MYSQL_CLIENT=$(command -v mariadb || command -v mysql || true)
[[ -n $MYSQL_CLIENT ]] || die "no mariadb (or mysql) client found (Debian/Ubuntu: apt-get install mariadb-client)"
CLK_TCK=$(getconf CLK_TCK)
is_uint "$CLK_TCK" && ((CLK_TCK > 0)) || die "getconf CLK_TCK returned '$CLK_TCK'"
if want sluice; then
	[[ -x $SLUICE_BIN ]] || die "$SLUICE_BIN not found or not executable: run 'make build' (or 'make bench')"
fi
if [[ -z ${GO:-} ]]; then
	GO=$(command -v go || true)
	[[ -n $GO ]] || GO=/usr/local/go/bin/go
fi
if [[ -z ${BENCH_MYCLUSTER:-} ]] || want go-relay; then
	[[ -x $GO ]] || command -v "$GO" >/dev/null || die "go not found (set GO=/path/to/go)"
fi

HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
HAVE_HAPROXY=0
HAPROXY_VERSION=""
if want haproxy; then
	if [[ -x $HAPROXY ]]; then
		HAVE_HAPROXY=1
		HAPROXY_VERSION=$("$HAPROXY" -v 2>/dev/null | sed -n 's/^HA-\{0,1\}Proxy version \([^ ]*\).*/\1/p' | head -n1)
	else
		log "haproxy not installed ($HAPROXY): skipping the HAProxy rows"
	fi
fi
SYSBENCH_VERSION=$("$SYSBENCH" --version 2>/dev/null | head -n1)

# Nothing inherited may redirect the client connections.
unset MYSQL_HOST MYSQL_TCP_PORT MYSQL_UNIX_PORT MYSQL_PWD

# ---------------------------------------------------------------- clean-up

WORK=""
MYC_PID="" SLUICE_PID="" RELAY_PID="" HAP_PID="" CUR_PID=""



cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	stop_proc "$CUR_PID" sysbench 5
	stop_proc "$HAP_PID" haproxy 10
	stop_proc "$RELAY_PID" go-relay 5
	stop_proc "$SLUICE_PID" sluice 15
	if ((rc != 0)) && [[ -n $WORK && -d $WORK && -d $RESULTS_DIR ]]; then
		# Keep what explains the failure; the server directory goes with the server.
		rm -rf "$FAIL_LOGS"
		mkdir -p "$FAIL_LOGS"
		cp "$WORK"/*.log "$WORK"/*.out "$WORK"/*.err "$WORK"/*.yaml "$WORK"/*.cfg "$FAIL_LOGS/" 2>/dev/null
		[[ -n ${MY_LOG:-} && -f $MY_LOG ]] && cp "$MY_LOG" "$FAIL_LOGS/mariadb.log"
		log "logs of the failed run copied to ${FAIL_LOGS#"$ROOT"/}/"
	elif ((rc == 0)); then
		rm -rf "$FAIL_LOGS"
	fi
	stop_proc "$MYC_PID" "mariadb helper" 60
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
WORK=$(mktemp -d /tmp/sluice-bench-mysql.XXXXXX)
chmod 755 "$WORK"

# run_bg OUTFILE CMD...: run CMD with its output in OUTFILE, in the
# background so that a signal to this script is handled at once (bash defers
# traps while a foreground command runs); the clean-up stops it.


free_ports() { # N: prints N free loopback ports
	"$WORK/mycluster" -free-ports "$1"
}

# ping PORT: one SELECT 1 as app over TCP, bounded.
ping_port() {
	timeout --kill-after=2 10 "$MYSQL_CLIENT" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$1" \
		-u "$DB_USER" "-p$DB_PASSWORD" --connect-timeout=5 -N -e 'SELECT 1' "$DB_NAME"
}

# wait_query NAME PID PORT LOGFILE: poll with one query until it succeeds,
# failing if the process exits or the time is up.
wait_query() {
	local name=$1 pid=$2 port=$3 logf=$4 deadline=$((SECONDS + READY_TIMEOUT))
	while :; do
		if ! alive "$pid"; then
			show_tail "$logf"
			return 2
		fi
		if ping_port "$port" >"$WORK/ready.out" 2>&1; then
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

# ---------------------------------------------------------------- mariadb

if [[ -n ${BENCH_MYCLUSTER:-} ]]; then
	[[ -x $BENCH_MYCLUSTER ]] || die "BENCH_MYCLUSTER=$BENCH_MYCLUSTER is not an executable"
	cp "$BENCH_MYCLUSTER" "$WORK/mycluster"
else
	log "building bench/mycluster"
	"$GO" build -o "$WORK/mycluster" ./bench/mycluster ||
		die "could not build bench/mycluster (BENCH_MYCLUSTER=/path/to/a/built/mycluster skips the build)"
fi
if want go-relay; then
	log "building bench/tcprelay"
	"$GO" build -o "$WORK/tcprelay" ./bench/tcprelay || die "could not build bench/tcprelay"
fi

log "starting MariaDB (primary only)"
"$WORK/mycluster" -v >"$WORK/mycluster.out" 2>"$WORK/mycluster.err" &
MYC_PID=$!
deadline=$((SECONDS + 180))
until grep -qx READY "$WORK/mycluster.out" 2>/dev/null; do
	if ! alive "$MYC_PID"; then
		show_tail "$WORK/mycluster.err" 40
		die "the MariaDB server failed to start"
	fi
	((SECONDS < deadline)) || {
		show_tail "$WORK/mycluster.err" 40
		die "the MariaDB server did not start within 180s"
	}
	sleep 0.2
done
kv() { sed -n "s/^$1=//p" "$WORK/mycluster.out" | head -n1; }
MY_PORT=$(kv PRIMARY_PORT)
MY_LOG=$(kv PRIMARY_LOG)
MY_VERSION=$(kv VERSION | sed -n 's/.*Ver \([^ ]*\).*/\1/p')
[[ -n $MY_VERSION ]] || MY_VERSION=unknown
is_uint "$MY_PORT" || die "bench/mycluster printed no primary port"
log "MariaDB $MY_VERSION primary on 127.0.0.1:$MY_PORT (log $MY_LOG)"

SB_COMMON=(--tables=1 --table-size="$TABLE_SIZE" --db-driver=mysql
	--mysql-host=127.0.0.1 --mysql-user="$DB_USER" --mysql-password="$DB_PASSWORD" --mysql-db="$DB_NAME")

log "sysbench prepare: 1 table of $TABLE_SIZE rows"
if ! run_bg "$WORK/prepare.out" timeout --kill-after=5 600 \
	"$SYSBENCH" oltp_read_only "${SB_COMMON[@]}" --mysql-port="$MY_PORT" prepare; then
	show_tail "$WORK/prepare.out"
	show_tail "$MY_LOG"
	die "sysbench prepare failed"
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
# generated by scripts/bench-mysql.sh
listeners:
  - name: bench-writer
    protocol: mysql
    address: 127.0.0.1:$port
    cluster: bench
    route: writer
    auth: mysql_native_password
clusters:
  bench:
    protocol: mysql
    backends:
      - address: 127.0.0.1:$MY_PORT
        name: mdb0
    monitor_user: $DB_USER
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
		log "starting Sluice: writer endpoint (mysql) on 127.0.0.1:$port"
	}
	sluice_ready() { wait_query sluice "$1" "$2" "$WORK/sluice.log"; } # PID PORT
	start_server Sluice SLUICE_PORT SLUICE_PID "$WORK/sluice.log" 'address already in use' \
		sluice_prepare sluice_ready "${sluice_env[@]}" "$SLUICE_BIN" --config "$WORK/sluice.yaml"
fi

# ---------------------------------------------------------------- go-relay

RELAY_PORT=""
if want go-relay; then
	relay_prepare() { log "starting go-relay (bench/tcprelay) on 127.0.0.1:$1"; } # PORT ATTEMPT
	relay_ready() { wait_query go-relay "$1" "$2" "$WORK/tcprelay.log"; } # PID PORT
	start_server go-relay RELAY_PORT RELAY_PID "$WORK/tcprelay.log" 'address already in use' \
		relay_prepare relay_ready "$WORK/tcprelay" -listen "127.0.0.1:@PORT@" -backend "127.0.0.1:$MY_PORT"
fi

# ---------------------------------------------------------------- haproxy

HAP_PORT=""
if ((HAVE_HAPROXY)); then
	hap_prepare() { # PORT ATTEMPT: see start_server
		local port=$1
		cat >"$WORK/haproxy.cfg" <<EOF
# generated by scripts/bench-mysql.sh
global
    maxconn 2000

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend bench
    bind 127.0.0.1:$port
    default_backend mariadb

backend mariadb
    server mdb0 127.0.0.1:$MY_PORT
EOF
		if ! "$HAPROXY" -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy-check.out" 2>&1; then
			cat "$WORK/haproxy-check.out" >&2
			die "the generated HAProxy configuration is invalid ($WORK/haproxy.cfg)"
		fi
		log "starting HAProxy $HAPROXY_VERSION (TCP mode) on 127.0.0.1:$port"
	}
	hap_ready() { wait_query haproxy "$1" "$2" "$WORK/haproxy.log"; } # PID PORT
	# -db: foreground, no daemon, so the pid is the process to measure.
	start_server HAProxy HAP_PORT HAP_PID "$WORK/haproxy.log" 'address already in use\|cannot bind' \
		hap_prepare hap_ready "$HAPROXY" -db -f "$WORK/haproxy.cfg"
fi

# ---------------------------------------------------------------- runs


target_port() { # TARGET
	case $1 in
	direct) echo "$MY_PORT" ;;
	sluice) echo "$SLUICE_PORT" ;;
	go-relay) echo "$RELAY_PORT" ;;
	haproxy) echo "$HAP_PORT" ;;
	esac
}
target_pid() { # TARGET
	case $1 in
	sluice) echo "$SLUICE_PID" ;;
	go-relay) echo "$RELAY_PID" ;;
	haproxy) echo "$HAP_PID" ;;
	*) echo "" ;;
	esac
}
target_on() { # TARGET: wanted and available
	case $1 in
	haproxy) ((HAVE_HAPROXY)) ;;
	*) want "$1" ;;
	esac
}

# A run may take the duration plus connecting its threads; beyond this it hangs.
RUN_TIMEOUT=$((DURATION + 60))
MAX_THREADS=0
for c in $THREADS; do ((c > MAX_THREADS)) && MAX_THREADS=$c; done

# Warm-up: the buffer pool (direct) and every proxy's start-up, once with
# the largest thread count. A failure here only warns: the runs will tell.
if ((WARMUP > 0)); then
	for t in $TARGETS; do
		target_on "$t" || continue
		log "warm-up: ${WARMUP}s oltp_point_select, $MAX_THREADS threads, $t"
		run_bg "$WORK/warmup.out" timeout --kill-after=5 $((WARMUP + 60)) \
			"$SYSBENCH" oltp_point_select "${SB_COMMON[@]}" --mysql-port="$(target_port "$t")" \
			--db-ps-mode="$PS_MODE" --threads="$MAX_THREADS" --time="$WARMUP" run ||
			log "warning: warm-up through $t failed: $(grep -m1 -i 'fatal\|error' "$WORK/warmup.out" || tail -n1 "$WORK/warmup.out")"
	done
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$RAW_LOG"
ROWS=$WORK/rows.tsv
: >"$ROWS"
FAILED=0
declare -A DIRECT_QPS=()

nruns=0
for w in $WORKLOADS; do for c in $THREADS; do for t in $TARGETS; do
	target_on "$t" && nruns=$((nruns + 1))
done; done; done
log "running sysbench: workloads [$WORKLOADS] x threads [$THREADS] x targets [$TARGETS], ${DURATION}s each (about $((nruns * (DURATION + 1) / 60 + 1)) min)"

# check_primary: after a failed run, make sure MariaDB itself still
# answers; if not, every further run would fail too: stop here.
check_primary() {
	local why=""
	if ! alive "$MYC_PID"; then
		why="the MariaDB helper exited"
	elif ! ping_port "$MY_PORT" >"$WORK/check.out" 2>&1; then
		why="the MariaDB primary no longer answers: $(tail -n1 "$WORK/check.out")"
	fi
	[[ -n $why ]] || return 0
	show_tail "$MY_LOG" 15
	write_report "$why"
	die "$why (see the server log above)"
}

# run_one WORKLOAD THREADS TARGET: appends a row to $ROWS
run_one() {
	local w=$1 threads=$2 target=$3 port pid out rc before="" after="" qps queries tps errors cpu cores ratio
	port=$(target_port "$target")
	pid=$(target_pid "$target")
	if [[ -n $pid ]] && ! alive "$pid"; then
		log "$target: the proxy (pid $pid) is not running any more"
		printf '%s\t%s\t%s\tFAIL\t-\t-\t-\t-\n' "$w" "$threads" "$target" >>"$ROWS"
		FAILED=1
		return 0
	fi
	out=$WORK/run.out
	[[ -n $pid ]] && before=$(cpu_ticks "$pid")
	rc=0
	# sysbench --time does not end while a thread waits for an answer that
	# never comes: a proxy that loses a message would hang the benchmark.
	run_bg "$out" timeout --kill-after=5 "$RUN_TIMEOUT" \
		"$SYSBENCH" "$w" "${SB_COMMON[@]}" --mysql-port="$port" --db-ps-mode="$PS_MODE" \
		--threads="$threads" --time="$DURATION" --report-interval=0 run || rc=$?
	[[ -n $pid ]] && after=$(cpu_ticks "$pid" 2>/dev/null || true)
	{
		echo "=== $w, $threads threads, $target (exit $rc)"
		cat "$out"
		echo
	} >>"$RAW_LOG"
	# "    queries:                             160000 (16000.00 per sec.)"
	queries=$(sed -n 's/^ *queries: *\([0-9]*\) *(.*/\1/p' "$out" | head -n1)
	qps=$(sed -n 's/^ *queries: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' "$out" | head -n1)
	tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' "$out" | head -n1)
	errors=$(sed -n 's/^ *ignored errors: *\([0-9]*\).*/\1/p' "$out" | head -n1)
	if ((rc == 124 || rc == 137)); then
		log "$target, $w, $threads threads: sysbench did not finish within ${RUN_TIMEOUT}s (a thread waits for an answer that never comes?): killed"
		show_tail "$out" 10
		printf '%s\t%s\t%s\tHANG\t-\t-\t-\t-\n' "$w" "$threads" "$target" >>"$ROWS"
		FAILED=1
		check_primary
		return 0
	fi
	if ((rc != 0)) || [[ -z $qps || -z $queries || ${errors:-0} != 0 ]] || ((${queries:-0} == 0)); then
		log "$target, $w, $threads threads: sysbench failed (exit $rc, ${queries:-no} queries)"
		show_tail "$out" 10
		printf '%s\t%s\t%s\tFAIL\t-\t-\t-\t-\n' "$w" "$threads" "$target" >>"$ROWS"
		FAILED=1
		check_primary
		return 0
	fi
	if [[ $target == direct ]]; then DIRECT_QPS[$w/$threads]=$qps; fi
	ratio=-
	if [[ -n ${DIRECT_QPS[$w/$threads]:-} ]]; then
		ratio=$(awk -v a="$qps" -v b="${DIRECT_QPS[$w/$threads]}" 'BEGIN { printf "%.2f", a / b }')
	fi
	cpu=- cores=-
	if [[ -n $before && -n $after ]]; then
		cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$queries" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
		cores=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v s="$DURATION" 'BEGIN { printf "%.2f", d / hz / s }')
	fi
	printf '%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\n' "$w" "$threads" "$target" "$qps" "${tps:-0}" "$ratio" "$cpu" "$cores" >>"$ROWS"
	log "$(printf '%-17s %3s threads  %-8s %9.0f qps  x%-5s %6s us/query' "$w" "$threads" "$target" "$qps" "$ratio" "$cpu")"
}

# ---------------------------------------------------------------- report

# write_report [ABORT-REASON]: prints the table and writes latest-mysql.md.
write_report() {
	local abort=${1:-} rev w c t qps tps ratio cpu cores n
	rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true) ]]; then
		rev="$rev + local changes"
	fi
	echo
	printf '%-18s %7s  %-8s %9s %9s %9s %16s %12s\n' workload threads target QPS TPS vs-direct 'proxy-µs/query' 'proxy-cores'
	while IFS=$'\t' read -r w c t qps tps ratio cpu cores; do
		printf '%-18s %7s  %-8s %9s %9s %9s %15s %12s\n' "$w" "$c" "$t" "$qps" "$tps" "$ratio" "$cpu" "$cores"
	done <"$ROWS"
	for n in ${NOTES[@]+"${NOTES[@]}"}; do echo "note: $n"; done
	[[ -z $abort ]] || echo "ABORTED: $abort"

	{
		echo "# sysbench (MySQL protocol): direct vs Sluice vs HAProxy"
		echo
		echo "Generated by \`scripts/bench-mysql.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC')."
		echo
		if [[ -n $abort ]]; then
			echo "**Aborted: $abort** (logs in \`latest-mysql-logs/\`)"
			echo
		fi
		echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), Linux $(uname -r); load average (1/5/15 min) before the runs: $LOAD_START, after: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- MariaDB $MY_VERSION (primary only, binlog on, innodb_flush_log_at_trx_commit 2, buffer pool 256M), $SYSBENCH_VERSION, one table (sbtest1) of $TABLE_SIZE rows"
		echo "- each run: \`sysbench <workload> --tables=1 --table-size=$TABLE_SIZE --db-ps-mode=$PS_MODE --threads=<threads> --time=$DURATION run\`, all on 127.0.0.1, TCP, no TLS, mysql_native_password logins; targets of one workload and thread count run back to back; before the runs a ${WARMUP}s oltp_point_select warm-up with $MAX_THREADS threads through each target"
		echo "- sluice: $rev, writer endpoint (route: writer, auth: mysql_native_password), log level warn, health interval 500ms"
		if want go-relay; then
			echo "- go-relay: bench/tcprelay, a zero-protocol Go TCP relay to the primary (two goroutines copying bytes per connection, no parsing): the floor of any goroutine-per-connection Go proxy on this machine"
		fi
		if ((HAVE_HAPROXY)); then
			echo "- HAProxy $HAPROXY_VERSION: mode tcp, one frontend forwarding to the primary, default threads"
		fi
		echo "- QPS: sysbench's queries per second (oltp_read_only: 14 SELECTs plus BEGIN and COMMIT per transaction; oltp_point_select: 1 SELECT); vs direct: QPS / QPS of the direct run of the same workload and thread count"
		echo "- proxy µs/query: CPU time (user+system, /proc/PID/stat) of the proxy process during the run (connection set-up included) / queries; proxy cores: that CPU time / run duration"
		echo "- FAIL: sysbench failed, reported errors or ran no query; HANG: sysbench did not end within ${RUN_TIMEOUT}s and was killed (see \`latest-mysql.log\`)"
		echo
		echo "| workload | threads | target | QPS | TPS | vs direct | proxy CPU µs/query | proxy cores |"
		echo "|---|---:|---|---:|---:|---:|---:|---:|"
		while IFS=$'\t' read -r w c t qps tps ratio cpu cores; do
			echo "| $w | $c | $t | $qps | $tps | $ratio | $cpu | $cores |"
		done <"$ROWS"
		if ((${#NOTES[@]})); then
			echo
			for n in "${NOTES[@]}"; do echo "- $n"; done
		fi
	} >"$REPORT"
	log "results written to ${REPORT#"$ROOT"/} (raw sysbench output: ${RAW_LOG#"$ROOT"/})"
}

NOTES=()
for w in $WORKLOADS; do
	for c in $THREADS; do
		# Targets back to back per workload and thread count, so that the
		# ratios compare runs close in time on a shared machine.
		for t in $TARGETS; do
			target_on "$t" || continue
			run_one "$w" "$c" "$t"
		done
	done
done
if want haproxy && ! ((HAVE_HAPROXY)); then
	NOTES+=("HAProxy rows skipped: haproxy is not installed.")
fi

write_report
if ((FAILED)); then
	die "some runs failed (FAIL/HANG rows above; details in ${RAW_LOG#"$ROOT"/})"
fi
