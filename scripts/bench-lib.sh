# Shared helpers of scripts/bench.sh and scripts/bench-mysql.sh; sourced,
# not run. The sourcing script sets BENCH_NAME (the log prefix) first.

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2
	exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

want() { [[ " $TARGETS " == *" $1 "* ]]; } # TARGET: listed in $TARGETS

alive() { # PID: running and not a zombie
	local pid=$1 stat
	[[ -n $pid ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	{ stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

stop_proc() { # PID NAME SECONDS: SIGTERM, wait, then SIGKILL
	local pid=$1 name=$2 secs=$3 i
	[[ -n $pid ]] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < secs * 10; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			log "$name (pid $pid) did not stop within ${secs}s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

run_bg() {
	local out=$1 rc=0
	shift
	"$@" >"$out" 2>&1 &
	CUR_PID=$!
	wait "$CUR_PID" || rc=$?
	CUR_PID=""
	return "$rc"
}

show_tail() { # FILE [LINES]
	[[ -s $1 ]] || return 0
	printf -- '--- last lines of %s:\n' "$1" >&2
	tail -n "${2:-20}" "$1" | sed 's/^/  /' >&2
}

cpu_ticks() { # PID: utime+stime in clock ticks (all threads)
	local stat f
	stat=$(<"/proc/$1/stat") || return 1
	read -r -a f <<<"${stat##*) }" # fields from 3 (state) on
	echo $((f[11] + f[12]))        # fields 14 (utime) and 15 (stime)
}

# start_server LABEL PORT_VAR PID_VAR LOGFILE BUSY PREPARE READY CMD...
# Starts a server process on a free loopback port, retrying (3 attempts in
# all) when the port was taken between picking it and binding it. Each
# attempt:
#   1. picks a port with the sourcing script's `free_ports 1` and stores it in
#      the variable named PORT_VAR;
#   2. calls PREPARE PORT ATTEMPT (a function: writes the configuration for
#      PORT, checks it, logs the "starting ..." line). It runs with set -e in
#      force. If it finds PORT taken already, it sets START_PORT_TAKEN=1 and
#      returns: the helper logs "port PORT taken meanwhile, picking another"
#      and starts the next attempt (ATTEMPT, 1 to 3, lets it die itself on
#      the last one);
#   3. runs CMD... in the background, every "@PORT@" in its arguments replaced
#      with PORT, stdout and stderr to LOGFILE, and stores its pid in the
#      variable named PID_VAR (so that the clean-up stops it);
#   4. calls READY PID PORT (a function: returns 0 once the server answers,
#      non-zero if the process exited; it dies itself on a time-out).
# If the process exited: when LOGFILE matches BUSY (grep -i basic regular
# expression, e.g. 'address already in use') and attempts are left, logs
# "port PORT taken meanwhile, retrying" and starts the next attempt, else
# dies with "LABEL exited during start-up (log above)"; PID_VAR is emptied.
# On return PORT_VAR and PID_VAR hold the port and pid of the running server.
start_server() {
	local _ss_label=$1 _ss_port_var=$2 _ss_pid_var=$3 _ss_log=$4 _ss_busy=$5 _ss_prepare=$6 _ss_ready=$7
	local _ss_attempt _ss_port _ss_pid _ss_rc _ss_cmd
	shift 7
	for _ss_attempt in 1 2 3; do
		_ss_port=$(free_ports 1)
		printf -v "$_ss_port_var" '%s' "$_ss_port"
		START_PORT_TAKEN=0
		"$_ss_prepare" "$_ss_port" "$_ss_attempt"
		if ((START_PORT_TAKEN)); then
			((_ss_attempt < 3)) || die "$_ss_label: no free port after 3 attempts"
			log "port $_ss_port taken meanwhile, picking another"
			continue
		fi
		_ss_cmd=("${@//@PORT@/$_ss_port}")
		"${_ss_cmd[@]}" >"$_ss_log" 2>&1 &
		_ss_pid=$!
		printf -v "$_ss_pid_var" '%s' "$_ss_pid"
		_ss_rc=0
		"$_ss_ready" "$_ss_pid" "$_ss_port" || _ss_rc=$?
		((_ss_rc == 0)) && return 0
		wait "$_ss_pid" 2>/dev/null || true
		printf -v "$_ss_pid_var" '%s' ""
		if grep -qi -- "$_ss_busy" "$_ss_log" && ((_ss_attempt < 3)); then
			log "port $_ss_port taken meanwhile, retrying"
			continue
		fi
		die "$_ss_label exited during start-up (log above)"
	done
}
