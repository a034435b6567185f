#!/usr/bin/env python3
"""PyAV, decord and torchcodec on the decode benchmark's pattern, the peers `nlbench decode` is measured against:
training clips of --clip-len frames at --frame-interval from a random start, RGB with the short side
at --short-side, one fresh reader per clip, on --workers processes at once (as PyTorch's DataLoader).

    pip install av decord torchcodec
    python3 scripts/bench/bench_decode_python.py FILES... [--clips 80] [--workers 1] [--style best|frameworks|all]

Styles (one decoder thread each):
- best: each library at its best: PyAV seeking to the keyframe before the clip, decoding forward and
  converting only the frames wanted, scaling inside swscale; decord with the size given to its
  VideoReader (scaling inside its decoder) and get_batch; torchcodec's VideoDecoder with exact and
  with approximate seeking (no scan of the file when opened), resizing in the decoder
  (transforms=[Resize]), get_frames_at.
- frameworks: as the frameworks use them: mmaction2's PyAVDecode (decode from the start, every frame
  to RGB at native size), mmaction2's DecordDecode (get_batch at native size), PySlowFast's
  pyav_decode_stream (seek, then every frame of the segment to RGB at native size), each followed by
  the resize of the clip's frames to the short side that their pipelines do next (cv2, bilinear, as
  mmcv.imresize), so that all give the same output. Needs opencv-python-headless."""
import argparse, multiprocessing, random, time

ap = argparse.ArgumentParser()
ap.add_argument("files", nargs="+"); ap.add_argument("--clips", type=int, default=80)
ap.add_argument("--workers", type=int, default=1); ap.add_argument("--clip-len", type=int, default=32)
ap.add_argument("--frame-interval", type=int, default=2); ap.add_argument("--short-side", type=int, default=256)
ap.add_argument("--style", default="all", choices=["best", "frameworks", "all"])
a = ap.parse_args()


def size(w, h):
    s = a.short_side / min(w, h)
    return int(w * s + 0.5), int(h * s + 0.5)


def pyav_clip(path, indices):
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        fps = float(stream.average_rate)
        w, h = size(stream.codec_context.width, stream.codec_context.height)
        wanted = sorted(set(indices))
        start = int(wanted[0] / fps / stream.time_base)
        container.seek(start, backward=True, any_frame=False, stream=stream)
        out = {}
        for frame in container.decode(stream):
            i = int(round(frame.pts * stream.time_base * fps))
            if i in wanted and i not in out:
                out[i] = frame.to_ndarray(width=w, height=h, format="rgb24")
            if i >= wanted[-1]:
                break
        return [out[i] for i in indices]


def resized(frames):
    import cv2
    h, w = frames[0].shape[:2]
    return [cv2.resize(f, size(w, h), interpolation=cv2.INTER_LINEAR) for f in frames]


def pyav_mmaction2(path, indices):
    import av
    with av.open(path) as container:
        container.streams.video[0].thread_count = 1
        imgs, last = [], max(indices)
        for i, frame in enumerate(container.decode(video=0)):
            if i > last + 1: break
            imgs.append(frame.to_rgb().to_ndarray())
        return resized([imgs[i % len(imgs)] for i in indices])


def pyav_pyslowfast(path, indices):
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        fps, tb = float(stream.average_rate), stream.time_base
        start, end = int(min(indices) / fps / tb), int(max(indices) / fps / tb)
        container.seek(max(start - 1024, 0), any_frame=False, backward=True, stream=stream)
        frames = []
        for frame in container.decode(stream):
            if frame.pts < start: continue
            if frame.pts > end: break
            frames.append(frame.to_rgb().to_ndarray())
        picked = [frames[min(i - min(indices), len(frames) - 1)] for i in indices]
        return resized(picked)


def decord_mmaction2(path, indices):
    import decord
    return resized(list(decord.VideoReader(path, num_threads=1).get_batch(indices).asnumpy()))


def decord_clip(path, indices):
    import decord
    probe = decord.VideoReader(path, num_threads=1)
    h0, w0 = probe[0].shape[:2]
    del probe
    w, h = size(w0, h0)
    reader = decord.VideoReader(path, width=w, height=h, num_threads=1)
    return reader.get_batch(indices).asnumpy()


def torchcodec_clip(path, indices, seek_mode):
    import torch
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize
    torch.set_num_threads(1)  # one thread a reader, as the others (PyTorch's own pool would fight the other workers)
    w, h = size(*SIZES[a.files.index(path)])   # known beforehand, as decord's best is given its size
    decoder = VideoDecoder(path, seek_mode=seek_mode, dimension_order="NHWC", num_ffmpeg_threads=1, transforms=[Resize(size=(h, w))])
    return decoder.get_frames_at(indices).data.numpy()


def frame_counts(files):
    import av
    counts, sizes = [], []
    for f in files:
        with av.open(f) as c:
            counts.append(sum(1 for _ in c.demux(c.streams.video[0]) if _.size > 0))
            sizes.append((c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height))
    return counts, sizes


READERS = {"av (best)": pyav_clip, "decord (best)": decord_clip,
           "torchcodec (exact, best)": lambda p, i: torchcodec_clip(p, i, "exact"),
           "torchcodec (approximate, best)": lambda p, i: torchcodec_clip(p, i, "approximate"),
           "av (mmaction2 PyAVDecode)": pyav_mmaction2, "decord (mmaction2 DecordDecode)": decord_mmaction2,
           "av (PySlowFast)": pyav_pyslowfast}


def work(job):
    library, clips, seed = job
    rng = random.Random(seed)
    read = READERS[library]
    span = (a.clip_len - 1) * a.frame_interval + 1
    for k in clips:
        f = k % len(a.files)
        first = rng.randrange(max(1, COUNTS[f] - span + 1))
        read(a.files[f], [min(first + j * a.frame_interval, COUNTS[f] - 1) for j in range(a.clip_len)])


COUNTS, SIZES = frame_counts(a.files)
for module in ("av", "decord", "torch", "torchcodec.decoders", "torchcodec.transforms"):  # imported before the workers fork, not timed
    try: __import__(module)
    except ImportError: pass
if __name__ == "__main__":
    names = list(READERS)
    chosen = names[:4] if a.style == "best" else names[4:] if a.style == "frameworks" else names
    for library in chosen:
        jobs = [(library, list(range(w, a.clips, a.workers)), w) for w in range(a.workers)]
        t = time.perf_counter()
        if a.workers == 1:
            work(jobs[0])
        else:
            with multiprocessing.Pool(a.workers) as pool:
                pool.map(work, jobs)
        s = time.perf_counter() - t
        print(f"{library} workers={a.workers} clip_len={a.clip_len} interval={a.frame_interval} short_side={a.short_side}: "
              f"{a.clips} clips in {s:.2f} s, {a.clips / s:.1f} clips/s")
