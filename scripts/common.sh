# Sourced by the scripts make demo and make bench run, and by the comparisons with the peers.
#
# `stoppable COMMAND...` runs a training, benchmark or data run so that a TERM, INT or HUP to the
# script (kill, a scheduler, a closed terminal) stops it at once, the run included. bash runs a
# trap only when its foreground command has ended, so a signal would wait for a run of minutes,
# and a script killed outright would leave the run going; a run in the background and waited for
# is interrupted by the signal, and the trap then stops it. Its output goes where the caller
# redirects it, not through $(...), which would be in the foreground again.
running=
exec 3>&2  # the script's stderr, for the trap's message: a run's own may be redirected to a file
stoppable() {
  "$@" &
  running=$!
  local status=0
  wait "$running" || status=$?
  running=
  return "$status"
}
# The run gets SIGTERM (a run in the background ignores SIGINT) and is waited for: nltrain, say,
# stops on a checkpoint first.
stop() {
  if [ -n "$running" ]; then kill "$running" 2> /dev/null; wait "$running" || true; fi
  echo "stopped by SIG$1" >&3
  exit "$2"
}
trap 'stop TERM 143' TERM
trap 'stop INT 130' INT
trap 'stop HUP 129' HUP

# `positive_integer NAME VALUE`: exits 64, naming NAME, unless VALUE is a positive integer.
positive_integer() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$1: '$2' is not a positive integer" >&2; exit 64; }
}

# `minutes_left DONE TOTAL`: "about N min left", from the seconds since `start` (set by the
# caller) and the share of the work done.
minutes_left() {
  echo "about $(( ((SECONDS - start) * ($2 - $1) / $1 + 30) / 60 )) min left"
}

# `synthetic_dataset`: the demo's dataset in data/synthetic, made unless it is there whole (its
# maker writes the CSVs last, so a folder without val.csv is a stopped run's and is made anew).
synthetic_dataset() {
  [ -f data/synthetic/val.csv ] && return
  echo "== making the synthetic dataset in data/synthetic (about a minute)"
  rm -rf data/synthetic
  stoppable scripts/data/make_synthetic_dataset.sh data/synthetic
}

# `bf16_cpu`: succeeds where the CPU has AVX512_BF16 or AMX's bfloat16, which train.precision =
# bf16 needs (the commands check again, through oneDNN, and refuse it elsewhere).
bf16_cpu() { grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; }

# `cpu_lines`: the CPU as a measurement names it: lscpu's model name, then the flags its speed
# depends on (AVX2, AVX-512, AVX512_BF16, AMX).
cpu_lines() {
  lscpu | grep -E '^Model name' | sed 's/  */ /g'
  grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_tile|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '
  echo
}
