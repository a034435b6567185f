#!/usr/bin/env bash
# make bench: the project's speed, each figure one line.
# - the training step of nl_i3d_r50 at batch 2 x 8x112x112, 2 x 8x224x224 and 1 x 32x224x224, in
#   float32 and, on a CPU with AVX512_BF16 or AMX, in mixed precision (bf16), and a per-layer
#   breakdown of the middle one in float32 (forward and backward);
# - decoding: the Kinetics training pattern (32 frames at interval 2 from a random start, RGB,
#   short side 256) over 10-second H.264 videos at 340x256 and 640x360, one reader and two at once;
# - the loader alone, and the whole pipeline (loader and training step together: clips/s end to
#   end and the time spent waiting for data), at the demo config and at i3d_nl's clip shape.
# The peers run beside it, interleaved, on the same machine (see README, Speed):
#   PYTHON=VENV/bin/python scripts/bench/compare_step_with_pytorch.sh    (PyTorch, mmaction2)
#   PYTHON=VENV/bin/python scripts/bench/compare_decode_with_python.sh   (PyAV, decord, torchcodec)
# and the demo's top-1 in both precisions: scripts/bench/compare_precisions_on_demo.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/common.sh
bin="${NL_BIN:-.build/release}"
layers=$(mktemp)
trap 'rm -f "$layers"' EXIT
stoppable scripts/data/make_bench_videos.sh data/bench
synthetic_dataset
(cd data/bench && for f in h264_*.mp4; do echo "$f 0"; done) > data/bench/list.txt  # an mmaction2 list file
i3d_nl_on_bench=(--config configs/i3d_nl.cfg --set data.format=list --set data.root=data/bench
                 --set data.train_annotations=data/bench/list.txt --set data.classes=)

read -ra precisions <<< "fp32$(bf16_cpu && echo " bf16" || true)"
for shape in "2 8 112" "2 8 224" "1 32 224"; do
  set -- $shape
  for precision in "${precisions[@]}"; do
    stoppable $bin/nlbench step --batch "$1" --frames "$2" --size "$3" --precision "$precision"
  done
done
stoppable $bin/nlbench step --batch 2 --frames 8 --size 224 --layers > "$layers"
tail -n +2 "$layers"
for size in 340x256 640x360; do
  for workers in 1 2; do
    stoppable $bin/nlbench decode data/bench/h264_${size}_*.mp4 --workers $workers --clips 100
  done
done
for workers in 1 2; do
  stoppable $bin/nlbench loader --config configs/demo.cfg --set data.workers=$workers --batches 40
  stoppable $bin/nlbench loader "${i3d_nl_on_bench[@]}" --set data.workers=$workers --batches 5
done
stoppable $bin/nlbench pipeline --config configs/demo.cfg --iterations 40
stoppable $bin/nlbench pipeline "${i3d_nl_on_bench[@]}" --set train.batch_size=2 --iterations 4
