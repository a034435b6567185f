#!/usr/bin/env bash
# Writes a Kinetics-style dataset of real footage that only the camera's motion tells apart: each
# video is a stretch of one of the given videos seen through a camera panning left, right, up or
# down, or zooming in or out. Every video draws its source, start, the pan's or zoom's extent and
# the framing's place from the same ranges whatever its class, and the footage moves by itself, so
# neither a frame nor the footage's own motion says the class. The real-data counterpart of
# make_synthetic_dataset.sh, for comparing runs (float32 against bfloat16, say) on natural images.
#
#   scripts/data/make_camera_motion_dataset.sh SOURCES OUT [--train N] [--val N] [--seconds S] [--seed K]
#
# SOURCES: a folder of videos, each at least S seconds long (any container and codec FFmpeg reads);
# N videos per class in each split (default 32 and 8), S seconds each (default 2). Writes
# OUT/{train,val}/LABEL/YOUTUBEID_START_END.mp4 (160x120, 25 fps, H.264), OUT/train.csv and
# OUT/val.csv (label,youtube_id,time_start,time_end,split) and OUT/classes.txt; the CSVs last, so
# that a stopped run leaves none. Needs the ffmpeg and ffprobe CLIs.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: make_camera_motion_dataset.sh SOURCES OUT [--train N] [--val N] [--seconds S] [--seed K]" >&2; exit 64; }
sources=$1 out=$2
shift 2
[ -d "$sources" ] || { echo "make_camera_motion_dataset.sh: $sources is not a folder" >&2; exit 66; }
train=32 val=8 seconds=2 seed=1
while [ $# -gt 0 ]; do
  case $1 in
    --train) train=${2-} ;;
    --val) val=${2-} ;;
    --seconds) seconds=${2-} ;;
    --seed) seed=${2-} ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
  shift $(($# > 1 ? 2 : 1))
done
source "$(dirname "$0")/writing.sh"
whole_number --train "$train" 1
whole_number --val "$val" 0
whole_number --seconds "$seconds" 1
whole_number --seed "$seed" 0

# The sources long enough for a video, with their durations in tenths of a second.
videos=() tenths=()
for file in "$sources"/*; do
  duration=$(ffprobe -v error -select_streams v:0 -show_entries format=duration -of csv=p=0 "$file" 2> /dev/null) || continue
  [ -n "$duration" ] && [ "$duration" != N/A ] || continue
  length=$(awk -v d="$duration" 'BEGIN { printf "%d", d * 10 }')
  [ "$length" -ge $((seconds * 10)) ] || continue
  videos+=("$file") tenths+=("$length")
done
if [ ${#videos[@]} -eq 0 ]; then
  echo "make_camera_motion_dataset.sh: no video of at least $seconds seconds in $sources" >&2
  exit 66
fi

classes=("panning left" "panning right" "panning up" "panning down" "zooming in" "zooming out")
RANDOM=$seed
mkdir -p "$out"
rm -f "$out/train.csv" "$out/val.csv"
printf '%s\n' "${classes[@]}" > "$out/classes.txt"


frames=$((seconds * 25)) made=0 total=$(( (train + val) * ${#classes[@]} ))
for split in train val; do
  count=$([ $split = train ] && echo "$train" || echo "$val")
  echo "label,youtube_id,time_start,time_end,split" > "$out/$split.csv.partial"
  for label in "${classes[@]}"; do
    mkdir -p "$out/$split/$label"
    for ((n = 0; n < count; n++)); do
      source=$((RANDOM % ${#videos[@]}))
      between 0 $((tenths[source] - seconds * 10)); start=$REPLY
      # The framing is 1/zoom of the 4:3 picture; a pan crosses `reach` of the free room, a zoom
      # goes from 1 to `zoom` (or back). p runs from 0 to 1 over the video.
      between 130 160; zoom=$(awk -v z="$REPLY" 'BEGIN { print z / 100 }')
      between 60 100; reach=$(awk -v r="$REPLY" 'BEGIN { print r / 100 }')
      between 0 100; place=$(awk -v r="$REPLY" -v e="$reach" 'BEGIN { print r / 100 * (1 - e) }')
      p="(on/$((frames - 1)))" free_x="(iw-iw/zoom)" free_y="(ih-ih/zoom)"
      z=$zoom x="$free_x*$place" y="$free_y*$place"
      case $label in
        "panning right") x="$free_x*($place+$reach*$p)" y="$free_y/2" ;;
        "panning left") x="$free_x*($place+$reach*(1-$p))" y="$free_y/2" ;;
        "panning down") y="$free_y*($place+$reach*$p)" x="$free_x/2" ;;
        "panning up") y="$free_y*($place+$reach*(1-$p))" x="$free_x/2" ;;
        "zooming in") z="1+($zoom-1)*$p" x="$free_x/2" y="$free_y/2" ;;
        "zooming out") z="1+($zoom-1)*(1-$p)" x="$free_x/2" y="$free_y/2" ;;
      esac
      youtube_id; id=$REPLY
      file=$(printf '%s/%s/%s/%s_%06d_%06d.mp4' "$out" "$split" "$label" "$id" "$start" $((start + 10)))
      encode ffmpeg -hide_banner -loglevel error -nostdin -y -threads 1 \
        -ss "$(awk -v s="$start" 'BEGIN { print s / 10 }')" -t "$seconds" -i "${videos[source]}" \
        -vf "fps=25,crop='min(iw,ih*4/3)':'min(ih,iw*3/4)',scale=640:480,zoompan=z='$z':x='$x':y='$y':d=1:s=160x120:fps=25,format=yuv420p" \
        -frames:v "$frames" -an -c:v libx264 -preset veryfast -fflags +bitexact -flags:v +bitexact "$file"
      echo "$label,$id,$start,$((start + 10)),$split" >> "$out/$split.csv.partial"
      made=$((made + 1))
      [ -t 1 ] && printf '\r%d/%d videos' "$made" "$total"
    done
  done
done
finish "$out"
[ -t 1 ] && echo
echo "wrote $made videos of ${#classes[@]} classes from ${#videos[@]} sources to $out ($train train and $val val per class)"
