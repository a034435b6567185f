#!/usr/bin/env bash
# Writes the decode benchmark's videos into OUT: 10-second H.264 clips at 340x256 and 640x360,
# 30 fps, encoded with x264's defaults (as the Kinetics download scripts re-encode: one or two
# keyframes in 10 s, B-frames), from moving test patterns with grain so they compress like camera
# footage. Skips files that exist; each is written under a hidden name and renamed when whole, so a
# run that was stopped leaves no short file for the next to skip (or the benchmark to read).
#   scripts/data/make_bench_videos.sh OUT [COUNT_PER_SIZE]
set -euo pipefail
out=${1:?usage: make_bench_videos.sh OUT [COUNT]}
count=${2:-4}
mkdir -p "$out"
for size in 340x256 640x360; do
  for i in $(seq 1 "$count"); do
    file="$out/h264_${size}_$i.mp4"
    [ -s "$file" ] && continue
    ffmpeg -hide_banner -loglevel error -nostdin -y \
      -f lavfi -i "testsrc2=size=${size}:rate=30:duration=10,hue=h=$((i * 40)),noise=alls=8:allf=t" \
      -c:v libx264 -pix_fmt yuv420p "$out/.partial_h264_${size}_$i.mp4"
    mv "$out/.partial_h264_${size}_$i.mp4" "$file"
  done
done
