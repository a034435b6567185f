#!/usr/bin/env bash
# make demo: the synthetic dataset (made once), training configs/demo.cfg (resumed if it was
# interrupted, skipped if it finished), evaluation of the best checkpoint, and where it all is.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/common.sh
started=$(date +%s)
bin="${NL_BIN:-.build/release}"
synthetic_dataset
echo "== training configs/demo.cfg into work_dirs/demo (each epoch's line ends with the time left, measured)"
stoppable $bin/nltrain --config configs/demo.cfg
echo "== evaluating work_dirs/demo/best.safetensors on the validation videos"
stoppable $bin/nleval --ckpt work_dirs/demo/best.safetensors --json work_dirs/demo/eval.json --dump work_dirs/demo/scores.csv \
  --report work_dirs/demo/report.html
cat <<EOT
== done in $(( $(date +%s) - started )) s
   log and metrics:   work_dirs/demo/train.log, work_dirs/demo/metrics.jsonl
   pictures:          work_dirs/demo/curves.svg (open in a browser), tensorboard --logdir work_dirs
   checkpoints:       work_dirs/demo/best.safetensors and iter_*.safetensors (safetensors, mmaction2's keys)
   evaluation:        work_dirs/demo/report.html (per-class accuracy, confusion matrix; open in a browser),
                      work_dirs/demo/eval.json (top-1, top-5, per class), work_dirs/demo/scores.csv
   again, on 3 clips: $bin/nleval --ckpt work_dirs/demo/best.safetensors --views 3x1
EOT
