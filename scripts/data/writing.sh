# Sourced by the dataset scripts (make_synthetic_dataset.sh, make_camera_motion_dataset.sh): their
# random draws, their encoders run two at a time, and their CSVs written last.

# `whole_number OPTION VALUE MINIMUM`: exits 64, naming the option, unless VALUE is a whole number
# of at least MINIMUM.
whole_number() {
  [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] || { echo "$(basename "$0"): $1 '$2' is not a whole number of at least $3" >&2; exit 64; }
}

# Stopped, a script stops its encoders too, rather than leave them writing.
stop() { kill $(jobs -p) 2> /dev/null; exit "$1"; }
trap 'stop 143' TERM
trap 'stop 130' INT
trap 'stop 129' HUP

# Random draws set REPLY: a $(...) runs in a subshell, where bash reseeds RANDOM, and the dataset
# would no longer follow from --seed.
between() { REPLY=$(($1 + RANDOM % ($2 - $1 + 1))); }
youtube_id() { local chars=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-; REPLY=; for _ in {1..11}; do REPLY+=${chars:RANDOM % 64:1}; done; }

# `encode COMMAND...`: runs the encoder in the background once fewer than two are running.
encode() {
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  "$@" &
}

# `finish OUT`: waits for every encoder (one that failed fails the script: set -e), then puts
# OUT/train.csv.partial and val.csv.partial in place. The CSVs are written last, once every video
# is: a run that was stopped leaves none.
finish() {
  for job in $(jobs -p); do wait "$job"; done
  mv "$1/train.csv.partial" "$1/train.csv"
  mv "$1/val.csv.partial" "$1/val.csv"
}
