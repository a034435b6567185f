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
