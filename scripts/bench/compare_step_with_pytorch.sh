#!/usr/bin/env bash
# The training step beside PyTorch's, on this machine: for each shape, ROUNDS rounds of
# `nlbench step` and scripts/bench/pytorch_step.py (mmaction2's own NL I3D R50 and training step),
# one right after the other (a machine's speed drifts by 10-20% over minutes, so the two are
# interleaved), then each one's median and the ratio of the medians, with the machine and
# OpenBLAS's kernel; then the range of the rounds' own ratios (each round's two runs a minute
# apart), which says how far the machine's drift moves the ratio. Each round's times go to
# stderr as it ends, with an estimate of the time left (rounds weighted by the clip's size).
#   scripts/bench/compare_step_with_pytorch.sh [ROUNDS]
# Each precision of PRECISIONS (default: "fp32 bf16" on a CPU with AVX512_BF16 or AMX, else
# "fp32") gets its own row: nlbench step --precision P beside the yardstick's --precision P
# (PyTorch's bfloat16 is its autocast), all of a round's runs one after the other; then, with both,
# a row of nlbench's bf16 step over its fp32 one.
# PYTHON is a Python with torch and mmaction2 (default: python3; scripts/reference/mmaction2_models.py
# says how to install them); YARDSTICK another step script of the same output; SHAPES other
# "batch frames size" triples, comma-separated.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
python=${PYTHON:-python3}
yardstick=${YARDSTICK:-scripts/bench/pytorch_step.py}
IFS=',' read -ra shapes <<< "${SHAPES:-2 8 112,2 8 224,1 32 224}"
source scripts/common.sh
bf16=$(bf16_cpu && echo " bf16" || true)
read -ra precisions <<< "${PRECISIONS:-fp32$bf16}"
for p in "${precisions[@]}"; do
  [[ $p == fp32 || $p == bf16 ]] || { echo "PRECISIONS: '$p' is not fp32 or bf16" >&2; exit 64; }
done
positive_integer ROUNDS "$rounds"
for shape in "${shapes[@]}"; do
  [[ $shape =~ ^\ *[1-9][0-9]*\ +[1-9][0-9]*\ +[1-9][0-9]*\ *$ ]] || { echo "SHAPES: '$shape' is not 'batch frames size' (positive integers)" >&2; exit 64; }
done
# The commands make build builds; NL_BIN names another folder of them (the tests' build).
bin="${NL_BIN:-.build/release}"
[ -x "$bin/nlbench" ] || { echo "no $bin/nlbench: run make build first" >&2; exit 1; }
output=$(mktemp) errors=$(mktemp)
trap 'rm -f "$output" "$errors"' EXIT
# Each sets `line` to its step's result line; the yardstick, if it fails or prints none, says
# what it said and exits 1.
nlbench_step() {
  stoppable "$bin/nlbench" step "$@" > "$output"
  line=$(tail -1 "$output")
}
yardstick_step() {
  line=
  stoppable "$python" "$yardstick" "$@" > "$output" 2> "$errors" && line=$(tail -1 "$output")
  if [[ $line != *" median "* ]]; then
    { echo "$python $yardstick $* failed:"; tail -5 "$errors"; } >&2
    exit 1
  fi
}
"$bin/nlbench" step --model nl_i3d_r50_tiny --steps 1 | sed -E 's/.*MiB; /machine: /'
cpu_lines
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
total=0 finished=0 start=$SECONDS
for shape in "${shapes[@]}"; do set -- $shape; total=$((total + rounds * ${#precisions[@]} * $1 * $2 * $3 * $3)); done
for shape in "${shapes[@]}"; do
  set -- $shape
  declare -A ours=() theirs=() ours_rss=() theirs_rss=()
  for round in $(seq "$rounds"); do
    for p in "${precisions[@]}"; do
      nlbench_step --batch "$1" --frames "$2" --size "$3" --precision "$p"
      ours[$p]+="$(sed -E 's/.*median ([0-9.]+) s.*/\1/' <<< "$line") "; ours_rss[$p]+="$(sed -E 's/.*peak RSS ([0-9]+) MiB.*/\1/' <<< "$line") "
      yardstick_step --batch "$1" --frames "$2" --size "$3" --precision "$p"
      theirs[$p]+="$(sed -E 's/.*median ([0-9.]+) s.*/\1/' <<< "$line") "; theirs_rss[$p]+="$(sed -E 's/.*peak RSS ([0-9]+) MiB.*/\1/' <<< "$line") "
      flops=$(sed -E 's/.*train-step ([0-9.]+) GFLOP.*/\1/' <<< "$line")
      finished=$((finished + $1 * $2 * $3 * $3))
      read -ra o <<< "${ours[$p]}"; read -ra t <<< "${theirs[$p]}"
      echo "$1x$2x$3 $p round $round/$rounds: nlbench ${o[-1]} s, pytorch ${t[-1]} s; $(minutes_left "$finished" "$total")" >&2
    done
  done
  for p in "${precisions[@]}"; do
    a=$(tr ' ' '\n' <<< "${ours[$p]}" | grep . | median) b=$(tr ' ' '\n' <<< "${theirs[$p]}" | grep . | median)
    ratios=$(paste <(tr ' ' '\n' <<< "${theirs[$p]}" | grep .) <(tr ' ' '\n' <<< "${ours[$p]}" | grep .) | awk '{printf "%.2f\n", $1 / $2}' | sort -n)
    ra=$(tr ' ' '\n' <<< "${ours_rss[$p]}" | grep . | median) rb=$(tr ' ' '\n' <<< "${theirs_rss[$p]}" | grep . | median)
    awk -v s="$1x$2x$3 $p" -v f="$flops" -v a="$a" -v b="$b" -v ra="$ra" -v rb="$rb" -v lo="$(head -1 <<< "$ratios")" -v hi="$(tail -1 <<< "$ratios")" 'BEGIN {
      printf "batch %s: %s GFLOP; nlbench %.3f s (%.1f GFLOP/s, %d MiB), pytorch %.3f s (%.1f GFLOP/s, %d MiB): %.2fx (rounds %.2f-%.2fx)\n",
        s, f, a, f / a, ra, b, f / b, rb, b / a, lo, hi }'
  done
  if [[ -n ${ours[fp32]:-} && -n ${ours[bf16]:-} ]]; then
    a=$(tr ' ' '\n' <<< "${ours[fp32]}" | grep . | median) b=$(tr ' ' '\n' <<< "${ours[bf16]}" | grep . | median)
    awk -v s="$1x$2x$3" -v a="$a" -v b="$b" 'BEGIN { printf "batch %s: nlbench bf16 %.3f s over its fp32 %.3f s: %.2fx\n", s, b, a, a / b }'
  fi
  unset ours theirs ours_rss theirs_rss
done
