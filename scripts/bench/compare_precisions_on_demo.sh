#!/usr/bin/env bash
# The demo's validation top-1 and training time in both precisions on this machine: for each of
# SEEDS seeds (default 3: seeds 0, 1, 2), nltrain trains configs/demo.cfg from scratch in fp32,
# then in bf16, each into a work directory of its own under a temporary folder (removed at the
# end); then a row per seed with each precision's best and final validation top-1 and its
# training time, the means over the seeds, and the CPU (lscpu's model name and flags). This is
# what docs/training.md's "How close in training" reports per CPU family. About 5 minutes a seed
# on 2 cores of a Zen 4. Each run's progress goes to stderr as it ends.
#   scripts/bench/compare_precisions_on_demo.sh [SEEDS] [--set section.key=value ...]
# --set arguments go to every run (other data, fewer epochs). Needs a CPU with AVX512_BF16 or
# AMX; the synthetic dataset is made first if data/synthetic has none (about a minute).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/common.sh
seeds=${1:-3}
positive_integer SEEDS "$seeds"
shift $(($# > 0 ? 1 : 0))
overrides=("$@")
bf16_cpu || { echo "this CPU has neither AVX512_BF16 nor AMX: bf16 cannot run here" >&2; exit 64; }
bin="${NL_BIN:-.build/release}"
[ -x "$bin/nltrain" ] || { echo "no $bin/nltrain: run make build first" >&2; exit 1; }
# The demo's dataset, unless the runs are given other data; its progress goes to stderr.
if [[ " ${overrides[*]} " != *" data.root="* ]]; then synthetic_dataset >&2; fi
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT

# Trains at SEED in PRECISION and appends "best final time" to the seed's row in $runs/table:
# the best validation top-1 (percent) and the time from nltrain's last line, the last
# validation's top-1 from metrics.jsonl.
train() {  # SEED PRECISION
  local work="$runs/$2-seed$1"
  if ! stoppable "$bin/nltrain" --config configs/demo.cfg --set "train.work_dir=$work" --set "train.seed=$1" \
    --set "train.precision=$2" "${overrides[@]}" > /dev/null 2> "$work.err"; then
    echo "nltrain at seed $1 in $2 failed:" >&2
    tail -5 "$work.err" >&2
    exit 1
  fi
  local finished best final time
  finished=$(grep ' finished ' "$work/train.log" | tail -1)
  final=$(grep '"mode":"val"' "$work/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([0-9.eE+-]+).*/\1/')
  if [[ $finished != *"best validation top-1 "* || -z $final ]]; then
    echo "the run at seed $1 in $2 never validated: see $work/train.log" >&2
    exit 1
  fi
  best=$(sed -E 's/.*best validation top-1 ([0-9.]+)%.*/\1/' <<< "$finished")
  final=$(awk -v t="$final" 'BEGIN { printf "%.2f", 100 * t }')
  time=$(sed -E 's/.* finished .* in ([0-9:]+),.*/\1/' <<< "$finished")
  finished_runs=$((finished_runs + 1))
  echo "seed $1 $2: best $best%, final $final%, in $time; $(minutes_left "$finished_runs" $((2 * seeds)))" >&2
  echo -n " $best $final $time" >> "$runs/table"
}

cpu_lines
finished_runs=0 start=$SECONDS
for seed in $(seq 0 $((seeds - 1))); do
  echo -n "$seed" >> "$runs/table"
  train "$seed" fp32
  train "$seed" bf16
  echo >> "$runs/table"
done
awk '{
  printf "seed %d: fp32 best %.2f%% final %.2f%% in %s; bf16 best %.2f%% final %.2f%% in %s\n", $1, $2, $3, $4, $5, $6, $7
  fp32best += $2; fp32final += $3; bf16best += $5; bf16final += $6
} END {
  printf "mean over %d seeds: fp32 best %.2f%% final %.2f%%; bf16 best %.2f%% final %.2f%%\n", NR, fp32best / NR, fp32final / NR, bf16best / NR, bf16final / NR
}' "$runs/table"
