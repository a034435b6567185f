#!/usr/bin/env bash
# Decoding beside the Python decoders, on this machine: for each cell of the README's decode table
# (340x256 and 640x360 H.264, 1 and 2 readers), ROUNDS rounds of `nlbench decode` and
# scripts/bench/bench_decode_python.py (PyAV, decord, torchcodec, and the frameworks' own ways),
# one right after the other, then each reader's median clips/s as a Markdown table. As each cell
# ends, nlvideo's clips/s there goes to stderr with an estimate of the time left.
#   scripts/bench/compare_decode_with_python.sh [ROUNDS] [CLIPS]
# PYTHON is a Python with av, decord and torchcodec (default: python3); PEERS another script of
# bench_decode_python.py's output.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-1} clips=${2:-100}
python=${PYTHON:-python3}
peers=${PEERS:-scripts/bench/bench_decode_python.py}
source scripts/common.sh
positive_integer ROUNDS "$rounds"
positive_integer CLIPS "$clips"
# The commands make build builds; NL_BIN names another folder of them (the tests' build).
bin="${NL_BIN:-.build/release}"
[ -x "$bin/nlbench" ] || { echo "no $bin/nlbench: run make build first" >&2; exit 1; }
stoppable scripts/data/make_bench_videos.sh data/bench > /dev/null
"$bin/nlbench" step --model nl_i3d_r50_tiny --steps 1 | sed -E 's/.*MiB; /machine: /'
results=$(mktemp) output=$(mktemp) errors=$(mktemp)
trap 'rm -f "$results" "$output" "$errors"' EXIT
cells=("340x256 1" "340x256 2" "640x360 1" "640x360 2")
total=$((rounds * ${#cells[@]})) finished=0 start=$SECONDS
for round in $(seq "$rounds"); do
  for cell in "${cells[@]}"; do
    set -- $cell
    files=(data/bench/h264_"$1"_*.mp4)
    stoppable "$bin/nlbench" decode "${files[@]}" --workers "$2" --clips "$clips" > "$output"
    sed -E "s/^nlbench decode .* ([0-9.]+) clips\/s.*/$1x$2|nlvideo|\1/" "$output" >> "$results"
    if ! stoppable "$python" "$peers" "${files[@]}" --workers "$2" --clips "$clips" --style all > "$output" 2> "$errors"; then
      { echo "$python $peers failed:"; tail -5 "$errors"; } >&2
      exit 1
    fi
    sed -E "s/^(.*) workers=.* ([0-9.]+) clips\/s$/$1x$2|\1|\2/" "$output" >> "$results"
    finished=$((finished + 1))
    nlvideo=$(grep "^$1x$2|nlvideo|" "$results" | tail -1 | cut -d'|' -f3)
    echo "$1, $2 reader$([ "$2" = 1 ] || echo s), round $round/$rounds: nlvideo $nlvideo clips/s; $(minutes_left "$finished" "$total")" >&2
  done
done
# One row a reader, one column a cell; the last row is nlvideo over the fastest other reader.
awk -F'|' '
  { key = $2 SUBSEP $1; values[key] = values[key] " " $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
    if (!($1 in cellSeen)) { cellSeen[$1] = 1; cells[++m] = $1 } }
  function median(list,   a, k, i, j, t) {  # mawk has no asort
    k = split(list, a, " ")
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return a[int((k + 1) / 2)]
  }
  END {
    header = "| clips/s |"; rule = "| --- |"
    for (c = 1; c <= m; c++) { split(cells[c], p, "x"); header = header " " p[1] "x" p[2] ", " p[3] " reader" (p[3] > 1 ? "s" : "") " |"; rule = rule " --- |" }
    print header; print rule
    for (r = 1; r <= n; r++) {
      line = "| " order[r] " |"
      for (c = 1; c <= m; c++) {
        v = median(values[order[r] SUBSEP cells[c]]); med[order[r], c] = v; line = line " " v " |"
        if (order[r] != "nlvideo" && v > best[c]) best[c] = v
      }
      print line
    }
    line = "| nlvideo / the fastest other |"
    for (c = 1; c <= m; c++) line = line sprintf(" %.2fx |", med["nlvideo", c] / best[c])
    print line
  }' "$results"
