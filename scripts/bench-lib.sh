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
