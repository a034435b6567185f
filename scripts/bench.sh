#!/usr/bin/env bash
# make bench: the project's speed, each figure one line.
# - decoding: the Kinetics training pattern (32 frames at interval 2 from a random start, RGB,
#   short side 256) over 10-second H.264 videos at 340x256 and 640x360, one reader and two at once;
# - the loader: training batches at the demo config and at i3d_nl's clip shape, 1 and 2 workers.
# The peers run beside it on the same machine (see README, Speed):
#   python3 scripts/bench_decode_python.py data/bench/h264_340x256_*.mp4      (PyAV, decord)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
scripts/make_bench_videos.sh data/bench
[ -f data/synthetic/val.csv ] || scripts/make_synthetic_dataset.sh data/synthetic
for size in 340x256 640x360; do
  for workers in 1 2; do
    $bin/nlbench decode data/bench/h264_${size}_*.mp4 --workers $workers --clips 100
  done
done
# The bench videos as an mmaction2 list file, for the loader at i3d_nl's clip shape.
(cd data/bench && for f in h264_*.mp4; do echo "$f 0"; done) > data/bench/list.txt
for workers in 1 2; do
  $bin/nlbench loader --config configs/demo.cfg --set data.workers=$workers --batches 40
  $bin/nlbench loader --config configs/i3d_nl.cfg --set data.workers=$workers --set data.format=list \
    --set data.root=data/bench --set data.train_annotations=data/bench/list.txt --set data.classes= --batches 5
done
