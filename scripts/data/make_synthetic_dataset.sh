#!/usr/bin/env bash
# Writes a Kinetics-style dataset that only motion tells apart: textured 2:1 rectangles on a
# textured background, all moving left, right, up or down, or all turning clockwise or
# counterclockwise. Every video draws its own colours (dark on bright or bright on dark), sizes,
# tilts, starts and speeds from the same ranges whatever its class, so a single frame says nothing
# about the class. Codecs, containers, sizes and frame rates are mixed as in a real download
# (H.264 mp4 and mkv, VP9 and VP8 webm; 24, 25, 30 fps).
#
#   scripts/data/make_synthetic_dataset.sh OUT [--train N] [--val N] [--seconds S] [--objects K] [--seed K]
#
# N videos per class in each split (default 32 and 8), S seconds each (default 2), K rectangles
# a video (default 3). Writes OUT/{train,val}/LABEL/YOUTUBEID_START_END.EXT, OUT/train.csv and
# OUT/val.csv (label,youtube_id,time_start,time_end,split) and OUT/classes.txt. Needs the ffmpeg CLI.
# The CSVs are written last, once every video is: a run that was stopped leaves none, so the next
# one (make demo's, which checks for val.csv) makes the dataset again instead of using part of it.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: make_synthetic_dataset.sh OUT [--train N] [--val N] [--seconds S] [--objects K] [--seed K]" >&2; exit 64; }
out=$1
shift
train=32 val=8 seconds=2 seed=1 objects=3
while [ $# -gt 0 ]; do
  case $1 in
    --train) train=${2-} ;;
    --val) val=${2-} ;;
    --seconds) seconds=${2-} ;;
    --seed) seed=${2-} ;;
    --objects) objects=${2-} ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
  shift $(($# > 1 ? 2 : 1))
done
source "$(dirname "$0")/writing.sh"
whole_number --train "$train" 1
whole_number --val "$val" 0
whole_number --seconds "$seconds" 1
whole_number --seed "$seed" 0
whole_number --objects "$objects" 1

classes=("moving left" "moving right" "moving up" "moving down" "turning clockwise" "turning counterclockwise")
sizes=(160x120 176x132 144x112 192x128)
rates=(24 25 30)
encoders=("mp4:-c:v libx264 -preset veryfast -pix_fmt yuv420p"
          "webm:-c:v libvpx-vp9 -deadline good -cpu-used 5 -b:v 300k -pix_fmt yuv420p"
          "mkv:-c:v libx264 -preset veryfast -bf 2 -pix_fmt yuv420p"
          "webm:-c:v libvpx -deadline good -cpu-used 5 -b:v 300k")
RANDOM=$seed
mkdir -p "$out"
rm -f "$out/train.csv" "$out/val.csv"
printf '%s\n' "${classes[@]}" > "$out/classes.txt"

pick() { local -n list=$1; REPLY=${list[RANDOM % ${#list[@]}]}; }
color() { printf -v REPLY '0x%02x%02x%02x' $(($1 + RANDOM % 128)) $(($1 + RANDOM % 128)) $(($1 + RANDOM % 128)); }

made=0 total=$(( (train + val) * ${#classes[@]} ))
for split in train val; do
  count=$([ $split = train ] && echo "$train" || echo "$val")
  echo "label,youtube_id,time_start,time_end,split" > "$out/$split.csv.partial"
  for label in "${classes[@]}"; do
    mkdir -p "$out/$split/$label"
    for ((n = 0; n < count; n++)); do
      pick sizes; w=${REPLY%x*}; h=${REPLY#*x}
      pick rates; rate=$REPLY
      pick encoders; ext=${REPLY%%:*}; options=${REPLY#*:}
      dark=$((RANDOM % 2 * 128))                   # background dark and objects bright, or the reverse
      color $dark; background=$REPLY
      between 10 30
      inputs=(-f lavfi -i "color=c=$background:s=${w}x${h}:r=$rate:d=$seconds,noise=alls=$REPLY:allf=p:all_seed=$RANDOM")
      chain="" scene="[0]"
      for ((k = 1; k <= objects; k++)); do
        between $((h / 5)) $((h / 3)); side=$REPLY  # the rectangle's long side
        between 0 179; tilt=$REPLY                   # degrees, whatever the class
        span=$((side * 3 / 2))                       # room the tilted rectangle needs
        # Across 60 to 95% of the free room over the video.
        between $(( (w - span) * 6 / (10 * seconds) )) $(( (w - span) * 95 / (100 * seconds) )); speed=$REPLY
        between $(( (h - span) * 6 / (10 * seconds) )) $(( (h - span) * 95 / (100 * seconds) )); vspeed=$REPLY
        between 0 $((w - span)); x0=$REPLY
        between 0 $((h - span)); y0=$REPLY
        turn=0 x="$x0" y="$y0"
        case $label in
          "moving right") between 0 $((w - span - speed * seconds)); x="$REPLY+$speed*t" ;;
          "moving left") between $((speed * seconds)) $((w - span)); x="$REPLY-$speed*t" ;;
          "moving down") between 0 $((h - span - vspeed * seconds)); y="$REPLY+$vspeed*t" ;;
          "moving up") between $((vspeed * seconds)) $((h - span)); y="$REPLY-$vspeed*t" ;;
          "turning clockwise") between 90 180; turn=$REPLY ;;
          "turning counterclockwise") between 90 180; turn=-$REPLY ;;
        esac
        color $((128 - dark)); foreground=$REPLY
        between 20 40
        inputs+=(-f lavfi -i "color=c=$foreground:s=${side}x$((side / 2)):r=$rate:d=$seconds,noise=alls=$REPLY:allf=p:all_seed=$RANDOM,format=rgba")
        chain+="[$k]rotate=a='($tilt+($turn)*t)*PI/180':c=black@0:ow=$span:oh=$span[o$k];${scene}[o$k]overlay=x='$x':y='$y':shortest=1[s$k];"
        scene="[s$k]"
      done
      between 0 300; start=$REPLY
      youtube_id; id=$REPLY
      file=$(printf '%s/%s/%s/%s_%06d_%06d.%s' "$out" "$split" "$label" "$id" "$start" $((start + 10)) "$ext")
      # Two single-threaded encoders at once, with the noise seeded and the containers bit-exact
      # (no random IDs or dates): the files follow from --seed alone.
      # shellcheck disable=SC2086
      encode ffmpeg -hide_banner -loglevel error -nostdin -y -threads 1 "${inputs[@]}" \
        -filter_complex "${chain}${scene}format=yuv420p" $options -fflags +bitexact -flags:v +bitexact "$file"
      echo "$label,$id,$start,$((start + 10)),$split" >> "$out/$split.csv.partial"
      made=$((made + 1))
      [ -t 1 ] && printf '\r%d/%d videos' "$made" "$total"
    done
  done
done
finish "$out"
[ -t 1 ] && echo
echo "wrote $made videos of ${#classes[@]} classes to $out ($train train and $val val per class)"
