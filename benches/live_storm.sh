#!/usr/bin/env bash
# Live exec storm: the sensor's CPU time per exec next to auditd's own, for the same storm.
#
#   sudo benches/live_storm.sh [EXECS]        (default 20000; root, auditd installed)
#
# Phase 1: a real auditd (foreground, private config in a temp dir, the Debian defaults for
# format and flushing) is the audit daemon; `execsentry run --source multicast` listens beside
# it. Phase 2: `execsentry run --source netlink` alone is the daemon. In each phase EXECS
# `/bin/true` run from two parallel spawners, and the CPU time (utime + stime, all threads) each
# consumer used during the storm is read from /proc/<pid>/stat. Also printed: what the sensor
# counted as lost (serial gaps, kernel lost, queue drops, ENOBUFS) — zero is the target.
#
# Holds the audit lock the tests use, stops only the processes it started (by pid), and checks
# that the audit status and rules are as they were; on any exit it puts them back.
set -euo pipefail
cd "$(dirname "$0")/.."

execs=${1:-20000}
key=execsentry-bench-$$
lock=/tmp/execsentry-audit.lock
export PATH="$PATH:/usr/sbin:/sbin"

die() {
  echo "live_storm: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root"
command -v auditd >/dev/null || die "needs auditd (apt-get install auditd)"
command -v auditctl >/dev/null || die "needs auditctl"

cargo build --release --bin execsentry -q
bin=${CARGO_TARGET_DIR:-target}/release/execsentry
[ -x "$bin" ] || die "no $bin"

exec 9>"$lock"
flock 9

tmp=$(mktemp -d /tmp/execsentry-storm.XXXXXX)
sensor_pid=
auditd_pid=
status_of() { auditctl -s | awk -v k="$1" '$1 == k { print $2 }'; }
before_status=$(auditctl -s | grep -E '^(enabled|failure|pid|rate_limit|backlog_limit|backlog_wait_time) ')
before_rules=$(auditctl -l)

stop_pid() { # pid signal: signal, wait up to 20 s, then SIGKILL
  local pid=$1 sig=$2
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  [ -n "$sensor_pid" ] && stop_pid "$sensor_pid" TERM
  [ -n "$auditd_pid" ] && stop_pid "$auditd_pid" TERM
  wait 2>/dev/null || true
  if [ "$(auditctl -l)" != "$before_rules" ]; then
    auditctl -D -k "$key" >/dev/null 2>&1 || true
  fi
  auditctl -e "$(echo "$before_status" | awk '$1 == "enabled" { print $2 }')" >/dev/null
  auditctl -b "$(echo "$before_status" | awk '$1 == "backlog_limit" { print $2 }')" >/dev/null
  auditctl --backlog_wait_time "$(echo "$before_status" | awk '$1 == "backlog_wait_time" { print $2 }')" >/dev/null
  auditctl -r "$(echo "$before_status" | awk '$1 == "rate_limit" { print $2 }')" >/dev/null
  local after
  after=$(auditctl -s | grep -E '^(enabled|failure|pid|rate_limit|backlog_limit|backlog_wait_time) ')
  if [ "$after" != "$before_status" ] || [ "$(auditctl -l)" != "$before_rules" ]; then
    echo "live_storm: WARNING: audit state differs from before:" >&2
    auditctl -s >&2
    auditctl -l >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

tick=$(getconf CLK_TCK)
cpu_ms() { # utime + stime of every thread of pid, in milliseconds
  awk -v t="$tick" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / t }' "/proc/$1/stat"
}

start_auditd() {
  mkdir -p "$tmp/auditd/plugins.d"
  cat >"$tmp/auditd/auditd.conf" <<EOF
local_events = yes
write_logs = yes
log_file = $tmp/auditd/audit.log
log_group = root
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 0
max_log_file_action = IGNORE
num_logs = 0
priority_boost = 0
name_format = NONE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 0
plugin_dir = $tmp/auditd/plugins.d
end_of_event_timeout = 2
EOF
  chmod 640 "$tmp/auditd/auditd.conf"
  auditd -n -s nochange -c "$tmp/auditd" >"$tmp/auditd/out" 2>&1 &
  auditd_pid=$!
  for _ in $(seq 200); do
    [ "$(status_of pid)" = "$auditd_pid" ] && return 0
    sleep 0.1
  done
  cat "$tmp/auditd/out" >&2
  die "auditd did not register"
}

start_sensor() { # source
  "$bin" run --source "$1" --alerts /dev/null --audit-key "$key" --stats-interval 3600 \
    2>"$tmp/sensor.err" &
  sensor_pid=$!
  for _ in $(seq 600); do
    grep -q '^execsentry: ready' "$tmp/sensor.err" && return 0
    kill -0 "$sensor_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/sensor.err" >&2
  die "the sensor did not get ready"
}

storm() { # label: two spawners, $execs in all, each with a unique argument
  local half=$((execs / 2)) t0 t1
  t0=$(date +%s.%N)
  seq 1 "$half" | xargs -P 1 -I{} /bin/true "es-storm-$1-a-{}" &
  seq 1 "$((execs - half))" | xargs -P 1 -I{} /bin/true "es-storm-$1-b-{}"
  wait "$!"
  t1=$(date +%s.%N)
  # Let the consumers finish what the kernel handed them.
  sleep 3
  awk -v a="$t0" -v b="$t1" -v n="$execs" 'BEGIN { printf "  storm: %d execs in %.1f s (%.0f/s)\n", n, b - a, n / (b - a) }'
}

per_exec() { # label, cpu ms before, after
  awk -v l="$1" -v a="$2" -v b="$3" -v n="$execs" \
    'BEGIN { printf "  %-34s %8.0f ms CPU  %6.1f µs/exec\n", l, b - a, (b - a) * 1000 / n }'
}

sensor_summary() {
  stop_pid "$sensor_pid" TERM
  wait "$sensor_pid" || true
  sensor_pid=
  local line
  line=$(grep '^execsentry: stopped;' "$tmp/sensor.err" || true)
  [ -n "$line" ] || { cat "$tmp/sensor.err" >&2; die "no summary from the sensor"; }
  echo "  sensor counters: ${line#execsentry: stopped; }"
}

echo "live storm: $execs execs per phase, $(nproc) CPUs, kernel $(uname -r)"

echo "phase 1: auditd is the daemon, execsentry multicast beside it"
start_auditd
start_sensor multicast
s0=$(cpu_ms "$sensor_pid")
a0=$(cpu_ms "$auditd_pid")
storm mc
s1=$(cpu_ms "$sensor_pid")
a1=$(cpu_ms "$auditd_pid")
per_exec "auditd (ENRICHED log, the daemon)" "$a0" "$a1"
per_exec "execsentry (multicast, rules)" "$s0" "$s1"
awk -v s="$((${s1%.*} - ${s0%.*}))" -v a="$((${a1%.*} - ${a0%.*}))" \
  'BEGIN { if (a > 0) printf "  execsentry / auditd CPU ratio: %.2f\n", s / a }'
sensor_summary
stop_pid "$auditd_pid" TERM
wait "$auditd_pid" || true
auditd_pid=
echo "  auditd logged $(grep -c '^type=EXECVE.* a1="es-storm-mc-' "$tmp/auditd/audit.log" || true) of the storm's EXECVE records"

echo "phase 2: execsentry alone is the daemon (netlink)"
start_sensor netlink
s0=$(cpu_ms "$sensor_pid")
storm nl
s1=$(cpu_ms "$sensor_pid")
per_exec "execsentry (netlink, rules)" "$s0" "$s1"
sensor_summary
