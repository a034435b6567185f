#!/usr/bin/env bash
# Writes the video reader's test files into OUT with the ffmpeg CLI (none are committed): every
# codec and container a Kinetics download holds, the oddities (B-frames, open GOP, 10-bit, variable
# frame rate, display rotation, odd sizes, colour matrices and ranges, audio beside the video) and
# broken files.
#   scripts/data/make_test_videos.sh OUT
# The good videos are 2 s at 25 fps (50 frames) unless named otherwise; MANIFEST lists them with
# their frame counts.
set -euo pipefail
out=${1:?usage: make_test_videos.sh OUT}
mkdir -p "$out"
cd "$out"

ff() { ffmpeg -hide_banner -loglevel error -nostdin -y "$@"; }
src() { echo "-f lavfi -i testsrc2=size=${1}:rate=${2:-25}:duration=${3:-2}"; }
audio="-f lavfi -i sine=frequency=440:sample_rate=44100:duration=2"

# shellcheck disable=SC2046
{
ff $(src 96x64) -c:v libx264 -preset veryfast -bf 3 -g 12 -pix_fmt yuv420p h264_bframes.mp4
ff $(src 96x64) -c:v libx264 -preset veryfast -x264-params open-gop=1:keyint=12:bframes=3 -pix_fmt yuv420p h264_open_gop.mkv
ff $(src 96x64) -c:v libx264 -preset veryfast -bf 2 -g 10 -pix_fmt yuv420p10le h264_10bit.mp4
ff $(src 96x64) -c:v libx264 -preset veryfast -g 8 -pix_fmt yuv420p h264.mov
ff $(src 96x64) -c:v libx265 -preset veryfast -x265-params log-level=error:keyint=12 hevc.mp4
ff $(src 96x64) -c:v libvpx -auto-alt-ref 1 -lag-in-frames 16 -b:v 200k -g 20 vp8.webm
ff $(src 96x64) -c:v libvpx-vp9 -b:v 200k -g 20 vp9.webm
ff $(src 96x64) -c:v libaom-av1 -cpu-used 8 -b:v 100k -g 20 av1.mkv
ff $(src 96x64) -c:v mpeg4 -bf 2 -g 12 mpeg4_bframes.avi
ff $(src 96x64) -c:v mjpeg -q:v 3 mjpeg.avi
ff $(src 96x64) -c:v ffv1 ffv1.mkv
# Variable frame rate: presentation times with uneven gaps (every fifth slot skipped).
ff $(src 96x64 25 2.4) -vf "setpts=(N+floor(N/4))/25/TB" -fps_mode vfr -c:v libx264 -preset veryfast -bf 2 vfr.mkv
# Phone videos: stored landscape, with a display matrix (written when remuxing) to show them turned.
ff $(src 96x64) -c:v libx264 -preset veryfast -pix_fmt yuv420p unrotated.mp4
ff -i unrotated.mp4 -c copy -metadata:s:v:0 rotate=90 rotated_90.mp4
ff -i unrotated.mp4 -c copy -metadata:s:v:0 rotate=180 rotated_180.mp4
ff -i unrotated.mp4 -c copy -metadata:s:v:0 rotate=270 rotated_270.mp4
rm unrotated.mp4
# Odd sizes (testsrc keeps them; testsrc2 rounds to even).
ff -f lavfi -i testsrc=size=35x21:rate=25:duration=2 -c:v libx264 -preset veryfast -pix_fmt yuv444p odd_size.mp4
ff -f lavfi -i testsrc=size=33x17:rate=25:duration=2 -c:v ffv1 odd_size_ffv1.mkv
# Colour tags ffmpeg converts by: BT.709 (most HD video), full range without a yuvj format, BT.2020.
ff $(src 96x64) -c:v libx264 -preset veryfast -bf 2 -g 12 -pix_fmt yuv420p -colorspace bt709 -color_primaries bt709 -color_trc bt709 h264_bt709.mp4
ff $(src 96x64) -c:v libvpx-vp9 -b:v 200k -g 20 -pix_fmt yuv420p -color_range pc -colorspace bt709 vp9_bt709_full_range.webm
ff $(src 96x64) -c:v libx265 -preset veryfast -x265-params log-level=error:keyint=12 -pix_fmt yuv420p10le -colorspace bt2020nc \
  -color_primaries bt2020 -color_trc smpte2084 hevc_bt2020_10bit.mkv
ff $(src 96x64) -c:v libx264 -preset veryfast -pix_fmt yuv420p -color_range pc h264_full_range.mp4
# Containers demuxers seek by decoding time in (broadcast and DVD video): a keyframe's B-frames are
# shown before it, and seeking to its presentation time lands after it.
ff $(src 96x64 25 4) -c:v libx264 -preset veryfast -bf 2 -g 25 -pix_fmt yuv420p h264_bframes.ts
ff $(src 96x64 25 4) -c:v mpeg2video -bf 2 -g 12 mpeg2_bframes.mpg
ff $(src 96x64) $audio -c:v libx264 -preset veryfast -c:a aac -shortest with_audio.mp4
ff $audio -c:a aac audio_only.m4a
# A 10 s faststart H.264 file to damage.
ff $(src 96x64 25 10) -c:v libx264 -preset veryfast -bf 2 -g 25 -movflags +faststart long.mp4
ff $(src 96x64 25 10) -c:v libx264 -preset veryfast -bf 2 -g 25 long.mkv
ff $(src 96x64 25 10) -c:v libvpx -deadline realtime -g 25 long.webm
# Cut without re-encoding at a frame that is not a keyframe (a broadcast recording starts so): the
# frames before the first keyframe cannot be decoded, and ffmpeg shows none of them.
ff -i long.mp4 -ss 1.3 -c copy -copyinkf h264_cut_mid_gop.mkv
ff -i long.mp4 -ss 1.3 -c copy -copyinkf -f mpegts h264_cut_mid_gop.ts
# Media that is not a video to sample: a still picture, a raw stream without a container.
ff $(src 96x64 25 1) -frames:v 1 still.jpg
ff $(src 96x64) -c:v libx264 -preset veryfast -f h264 raw.h264
}

# Broken files.
: > empty.mp4
head -c 20000 /dev/urandom > random_bytes.mp4
printf 'this is a text file, not a video\n%.0s' {1..50} > text.mp4
head -c 3000 long.mp4 > header_only.mp4   # the moov atom and no media data
size=$(stat -c %s long.mp4)
for percent in 10 30 60 90; do
  head -c $((size * percent / 100)) long.mp4 > "truncated_${percent}.mp4"
  head -c $(($(stat -c %s long.mkv) * percent / 100)) long.mkv > "truncated_${percent}.mkv"
  head -c $(($(stat -c %s long.webm) * percent / 100)) long.webm > "truncated_${percent}.webm"
done

cat > MANIFEST <<'EOF'
# file frames
h264_bframes.mp4 50
h264_open_gop.mkv 50
h264_10bit.mp4 50
h264.mov 50
hevc.mp4 50
vp8.webm 50
vp9.webm 50
av1.mkv 50
mpeg4_bframes.avi 50
mjpeg.avi 50
ffv1.mkv 50
vfr.mkv 60
rotated_90.mp4 50
rotated_180.mp4 50
rotated_270.mp4 50
odd_size.mp4 50
odd_size_ffv1.mkv 50
h264_bt709.mp4 50
vp9_bt709_full_range.webm 50
hevc_bt2020_10bit.mkv 50
h264_full_range.mp4 50
h264_bframes.ts 100
mpeg2_bframes.mpg 100
with_audio.mp4 50
long.mp4 250
long.mkv 250
long.webm 250
h264_cut_mid_gop.mkv 200
h264_cut_mid_gop.ts 200
EOF
