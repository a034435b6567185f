#!/usr/bin/env python3
"""How many frames a clip of the decode benchmark costs to decode: nlvideo's reader against one that
decodes every frame from the keyframe (PyAV seeking, decord, torchcodec with exact seeks), over
every start a clip of --clip-len frames at --frame-interval can have. nlvideo decodes, from the
keyframe at or before the clip, the reference frames (I, P and referenced B) up to the clip's last
frame and the non-reference frames it returns; the other reader decodes every frame of that span.
Both decode each frame with libavcodec, so the ratio of the two counts bounds nlvideo's lead that
comes from skipping work. Reference frames are those libavcodec still decodes with
skip_frame=NONREF.

    pip install av
    python3 scripts/bench/count_decoded_frames.py FILES... [--clip-len 32] [--frame-interval 2]"""
import argparse

import av


def frame_kinds(path):
    """The presentation-order indices of the reference frames and of the keyframes."""
    with av.open(path) as container:  # the packets' timestamps give the order, without decoding
        order = sorted(p.pts for p in container.demux(container.streams.video[0]) if p.pts is not None)
    index = {pts: i for i, pts in enumerate(order)}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        references, keyframes = set(), []
        for frame in container.decode(stream):
            references.add(index[frame.pts])
            if frame.key_frame:
                keyframes.append(index[frame.pts])
    return len(order), references, sorted(keyframes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--clip-len", type=int, default=32)
    parser.add_argument("--frame-interval", type=int, default=2)
    a = parser.parse_args()
    span = (a.clip_len - 1) * a.frame_interval + 1
    for path in a.files:
        frames, references, keyframes = frame_kinds(path)
        starts = range(max(1, frames - span + 1))
        ours = every = 0
        for start in starts:
            wanted = [min(start + i * a.frame_interval, frames - 1) for i in range(a.clip_len)]
            first = max(k for k in keyframes if k <= start)
            decoded = range(first, wanted[-1] + 1)
            ours += sum(i in references for i in decoded) + len(set(wanted) - references)
            every += len(decoded)
        print(f"{path}: {frames} frames, {len(references)} references, keyframes at {keyframes}; "
              f"a clip decodes {ours / len(starts):.1f} frames in nlvideo, {every / len(starts):.1f} "
              f"decoding every frame from the keyframe: {every / ours:.2f}x")


if __name__ == "__main__":
    main()
