#!/usr/bin/env python3
"""Writes the hostile-input corpus: files as other tools write them (Python's csv module, pandas,
spreadsheets, Windows and old-Mac line ends, byte-order marks), damaged videos of every container,
stills, raw streams, hidden files, bad configs and bad output paths; and OUT/cases.jsonl, one case a
line: the command to run on them, the exit status it must give and words its output must hold.
The Swift test HostileInputTests runs every case. Only the standard library and the ffmpeg CLI.

    scripts/data/make_hostile_inputs.py OUT DATASET

DATASET is a synthetic dataset (scripts/data/make_synthetic_dataset.sh), whose videos the annotation
files point at.
"""
import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import types
import zipfile

out, dataset = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
cases = []


def path(*parts):
    return os.path.join(out, *parts)


def case(name, args, status, contains=(), absent=()):
    """A command (the first word a built command or an absolute program), its exit status, and
    words standard output plus standard error must (and must not) hold."""
    cases.append({"name": name, "args": args, "status": status, "contains": list(contains), "absent": list(absent)})


def write(name, data, mode="w", **kwargs):
    with open(path(name), mode, **kwargs) as f:
        f.write(data)
    return path(name)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


# Videos the annotation files name: copies of the dataset's first video under the labels used.
source = sorted(os.path.join(dataset, "train", label, name)
                for label in os.listdir(os.path.join(dataset, "train")) for name in os.listdir(os.path.join(dataset, "train", label)))[0]
rows = [("abseiling", "aaa", 4, 14), ("kind, gentle", "bbb", 1, 11), ("air drumming", "ccc", 10, 20), ("abseiling", "ddd", 2147483648, 2147483658)]
for label, vid, start, end in rows:
    folder = path("videos", "train", label)
    os.makedirs(folder, exist_ok=True)
    shutil.copy(source, os.path.join(folder, f"{vid}_{start:06d}_{end:06d}.mp4"))
header = ["label", "youtube_id", "time_start", "time_end", "split"]
root = path("videos")


def check(name, annotations, status=0, contains=(), absent=(), fmt="kinetics_csv"):
    case(name, ["nlvideo", "check", annotations, "--format", fmt, "--root", root], status, contains, absent)


# Kinetics CSVs as other tools write them.
with open(path("python_csv.csv"), "w", newline="") as f:   # the csv module ends lines with CRLF and quotes "kind, gentle"
    w = csv.writer(f)
    w.writerow(header)
    for label, vid, start, end in rows:
        w.writerow([label, vid, start, end, "train"])
check("csv module (CRLF, quoted comma)", path("python_csv.csv"), contains=["checked 4 videos: 4 readable"])
text = open(path("python_csv.csv"), newline="").read()
write("old_mac.csv", text.replace("\r\n", "\r"), newline="")
check("CR line ends", path("old_mac.csv"), contains=["checked 4 videos: 4 readable"])
write("excel_utf8.csv", "\ufeff" + text, newline="", encoding="utf-8")   # Excel's "CSV UTF-8": a BOM and CRLF
check("Excel CSV UTF-8 (BOM)", path("excel_utf8.csv"), contains=["checked 4 videos: 4 readable"])
write("trailing_blanks.csv", "".join(line.rstrip("\r\n") + "  \t\n" for line in text.splitlines(True)))
check("trailing blanks", path("trailing_blanks.csv"), contains=["checked 4 videos: 4 readable"])
with open(path("pandas.csv"), "w", newline="") as f:   # DataFrame.to_csv(): an index column, LF, floats where a column had a NaN
    f.write("," + ",".join(header) + "\n")
    for i, (label, vid, start, end) in enumerate(rows):
        f.write(f'{i},"{label}",{vid},{start}.0,{end}.0,train\n' if "," in label else f"{i},{label},{vid},{start}.0,{end}.0,train\n")
check("pandas (index column, 4.0)", path("pandas.csv"), contains=["checked 4 videos: 4 readable"])
with open(path("quote_all.csv"), "w", newline="") as f:   # LibreOffice's "quote all text cells"
    w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    w.writerow(header)
    for label, vid, start, end in rows:
        w.writerow([label, vid, start, end, "train"])
check("every text cell quoted", path("quote_all.csv"), contains=["checked 4 videos: 4 readable"])
with open(path("reordered.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["youtube_id", "split", "time_end", "label", "time_start", "is_cc"])
    for label, vid, start, end in rows:
        w.writerow([vid, "train", end, label, start, 0])
check("reordered header", path("reordered.csv"), contains=["checked 4 videos: 4 readable"])
write("latin1.csv", "label,youtube_id,time_start,time_end,split\ncaf\u00e9,aaa,4,14,train\n", encoding="latin-1")
check("Latin-1, not UTF-8", path("latin1.csv"), 65, [path("latin1.csv") + ":2: not UTF-8 text"])
write("utf16.csv", "label,youtube_id,time_start,time_end,split\n", encoding="utf-16")
check("UTF-16 (Notepad's Unicode)", path("utf16.csv"), 65, ["UTF-16 text; save it as UTF-8"])
bad_times = write("bad_times.csv", "label,youtube_id,time_start,time_end,split\nabseiling,aaa,4,14,train\n"
                  "abseiling,aaa,,14,train\nabseiling,aaa,.,14,train\nabseiling,aaa,.5,14,train\nabseiling,aaa,4.5,14,train\n")
check("empty, '.' and fractional times", bad_times, 65,
      [f"{bad_times}:{n}: malformed: time_start and time_end must be whole seconds" for n in (3, 4, 5, 6)] + ["4 malformed lines"])
check("times of 2^31 and more kept whole", path("python_csv.csv"), contains=["checked 4 videos: 4 readable"], absent=["no video at"])
unlabelled = write("test.csv", "youtube_id,time_start,time_end,split\naaa,4,14,test\n")
check("test CSV without labels", unlabelled, 65, [f"{unlabelled}:1: the header has no label column"])
missing = write("missing.csv", "label,youtube_id,time_start,time_end,split\nabseiling,aaa,4,14,train\nabseiling,zzz,5,15,train\n")
check("a missing entry names the path looked for", missing, 65,
      [f"{missing}:3: missing: no video at {root}/train/abseiling/zzz_000005_000015.{{mp4", f"or {root}/train/zzz_000005_000015.{{mp4"])
nothing = write("nothing.csv", "label,youtube_id,time_start,time_end,split\nabseiling,zzz,5,15,train\nbroken line\n")
check("no usable video says why", nothing, 65, ["no usable video (0 videos, 0 classes; 1 missing, 1 malformed line)",
                                                f"{nothing}:2: no video at", f"{nothing}:3: expected 5 fields"])
check("a directory as annotation file", out, 65, [f"{out}: is a directory, not the annotation file"])
# The CVDF download (cvdfoundation/kinetics-dataset) unpacks a split flat, without class folders;
# cameras and Windows tools write endings in capitals.
for label, vid, start, end in rows:
    os.makedirs(path("flat", "train"), exist_ok=True)
    shutil.copy(source, path("flat", "train", f"{vid}_{start:06d}_{end:06d}" + (".MP4" if vid == "bbb" else ".mp4")))
# mmaction2's rename_classnames.sh, in its older form, also turned parentheses to hyphens.
os.makedirs(path("renamed", "train", "skiing_-not_slalom_or_crosscountry-"), exist_ok=True)
shutil.copy(source, path("renamed", "train", "skiing_-not_slalom_or_crosscountry-", "eee_000001_000011.mp4"))
renamed = write("renamed.csv", 'label,youtube_id,time_start,time_end,split\n"skiing (not slalom or crosscountry)",eee,1,11,train\n')
case("Kinetics class folders renamed by mmaction2's script", ["nlvideo", "check", renamed, "--format", "kinetics_csv", "--root", path("renamed")], 0,
     ["checked 1 videos: 1 readable"])
case("Kinetics split unpacked flat (CVDF), an ending in capitals", ["nlvideo", "check", path("python_csv.csv"), "--format", "kinetics_csv", "--root", path("flat")], 0,
     ["checked 4 videos: 4 readable"])

# mmaction2 list files: paths with spaces, extra labels.
os.makedirs(path("videos", "pan left"), exist_ok=True)
shutil.copy(source, path("videos", "pan left", "clip 1.mp4"))
spaces = write("spaces.txt", "pan left/clip 1.mp4 3\r\ntrain/abseiling/aaa_000004_000014.mp4\t0\r\n", newline="")
check("list paths with spaces", spaces, 0, ["checked 2 videos: 2 readable"], fmt="list")
windows = write("windows.txt", "pan left\\clip 1.mp4 3\r\ntrain\\abseiling\\aaa_000004_000014.mp4 0\r\n", newline="")
check("list written on Windows (backslashes)", windows, 0, ["checked 2 videos: 2 readable"], fmt="list")
multi = write("multi.txt", "train/abseiling/aaa_000004_000014.mp4 1 4 7\n")
check("extra labels warned", multi, 0, [f"{multi}:1: warning: 3 labels on one line"], fmt="list")

# Folder trees with what macOS leaves behind.
os.makedirs(path("folders", "a"), exist_ok=True)
shutil.copy(source, path("folders", "a", "clip.mp4"))
write(os.path.join("folders", "a", "._clip.mp4"), b"\x00\x05\x16\x07AppleDouble", "wb")
write(os.path.join("folders", ".DS_Store"), b"\x00\x00\x00\x01Bud1", "wb")
case("hidden files skipped", ["nlvideo", "check", path("folders"), "--format", "folders", "--root", "/"], 0, ["checked 1 videos: 1 readable"])
# Class folders of other containers (cameras' .MTS, broadcast .ts, DVD .mpg, old downloads' .flv),
# beside files that are not videos.
os.makedirs(path("containers", "a"), exist_ok=True)
for name in ("clip.MTS", "clip.mpg", "clip.flv", "clip.m4v"):
    ffmpeg("-i", source, "-t", "1", "-c:v", "mpeg2video" if name.endswith(".mpg") else "libx264", "-bf", "2",
           *(["-f", "mpegts"] if name.endswith(".MTS") else []), path("containers", "a", name))
write(os.path.join("containers", "a", "notes.txt"), "not a video\n")
case("other containers in class folders", ["nlvideo", "check", path("containers"), "--format", "folders", "--root", "/", "--every-frame"], 0,
     ["checked 4 videos: 4 readable"])

# Class folders other systems leave: café in NFC and in NFD (macOS writes accents decomposed),
# a file name in Latin-1 (an old archive unpacked on Linux), an empty class folder.
import unicodedata
for form in ("NFC", "NFD"):
    os.makedirs(path("unicode", unicodedata.normalize(form, "caf\u00e9")), exist_ok=True)
    shutil.copy(source, path("unicode", unicodedata.normalize(form, "caf\u00e9"), f"{form}.mp4"))
os.makedirs(path("unicode", "latin"), exist_ok=True)
shutil.copy(source, os.path.join(os.fsencode(path("unicode", "latin")), b"caf\xe9.mp4"))
shutil.copy(source, path("unicode", "latin", "plain.mp4"))
os.makedirs(path("unicode", "empty"), exist_ok=True)
case("class folders: NFC and NFD, Latin-1 names, an empty folder", ["nlvideo", "check", path("unicode"), "--format", "folders", "--root", "/"], 0,
     ["the same name as", "in another Unicode form (NFC and NFD", "a file whose name is not UTF-8 (caf\\xE9.mp4) is left out: rename it",
      f"{path('unicode', 'empty')}: warning: holds no videos: no class empty", "checked 3 videos: 3 readable"])
# The same video twice: with two labels (which is meant?), and every row repeated.
conflict = write("conflict.txt", "train/abseiling/aaa_000004_000014.mp4 0\ntrain/abseiling/aaa_000004_000014.mp4 1\n")
check("one video with two labels", conflict, 65, [f"{conflict}:2: malformed: the video of {conflict}:1 again, with another label (1, not 0); left out"], fmt="list")
repeated = write("repeated.csv", text.replace("\r\n", "\n") + "".join(text.replace("\r\n", "\n").split("\n", 1)[1] for _ in range(3)))
check("every row four times", repeated, 0, ["is listed 4 times; each is trained on", "checked 16 videos: 16 readable"])
bommed = write("bom_inside.txt", "train/abseiling/aaa_000004_000014.mp4 0\n\ufeffmissing/clip.mp4 1\n")
check("a byte-order mark inside a list (cat a.txt b.txt)", bommed, 65, [f"{bommed}:2: missing: no video at {root}/missing/clip.mp4"], ["\ufeff"], fmt="list")

# Damaged videos: every container cut at several points keeps its index but loses its data.
os.makedirs(path("damaged"), exist_ok=True)
src = ["-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=6"]
encoders = {"mp4": ["-c:v", "libx264", "-preset", "veryfast", "-movflags", "+faststart"], "mov": ["-c:v", "libx264", "-preset", "veryfast", "-movflags", "+faststart"],
            "mkv": ["-c:v", "libx264", "-preset", "veryfast"], "webm": ["-c:v", "libvpx", "-deadline", "realtime"]}
cuts = []
for ext, codec in encoders.items():
    whole = path("damaged", f"whole.{ext}")
    ffmpeg(*src, *codec, whole)
    data = open(whole, "rb").read()
    os.makedirs(path("damaged", "cut", ext), exist_ok=True)
    for percent in (25, 50, 90):
        cut = write(os.path.join("damaged", "cut", ext, f"cut_{percent}.{ext}"), data[: len(data) * percent // 100], "wb")
        case(f"{ext} cut at {percent}%: probe", ["nlvideo", "probe", cut], 65, ["truncated: "])
        cuts.append(cut)
case("every cut named by check --every-frame", ["nlvideo", "check", path("damaged", "cut"), "--format", "folders", "--root", "/", "--every-frame"], 65,
     [f"{cut}: truncated: " for cut in cuts] + [f"checked {len(cuts)} videos: 0 readable, 0 missing"])
ffmpeg(*src, "-frames:v", "1", path("damaged", "still.jpg"))
case("a JPEG says what it is", ["nlvideo", "probe", path("damaged", "still.jpg")], 65, ["a still image (mjpeg), not a video"])
ffmpeg(*src, "-c:v", "libx264", "-preset", "veryfast", "-f", "h264", path("damaged", "raw.h264"))
case("a raw stream says what it is", ["nlvideo", "probe", path("damaged", "raw.h264")], 65, ["a raw h264 stream", "put it in a container first"])

# Timing and orientation as other tools leave them: a Matroska file whose frames share times in
# groups of 5 (the ffmpeg CLI shows all 50), and a display matrix of 45 degrees (read as stored,
# not as a 270-degree turn).
ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=2", "-c:v", "libx264", "-bf", "0", "-g", "10", "-vsync", "passthrough",
       "-vf", "setpts=floor(N/5)*5", "-enc_time_base", "1/25", path("damaged", "repeated_times.mkv"))
case("Matroska with repeated times: every frame", ["nlvideo", "probe", path("damaged", "repeated_times.mkv")], 0, ['"frames":50'])
ffmpeg(*src, "-c:v", "libx264", "-preset", "veryfast", "-t", "1", path("damaged", "upright.mp4"))
movie = bytearray(open(path("damaged", "upright.mp4"), "rb").read())
identity = b"".join(v.to_bytes(4, "big", signed=True) for v in (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000))
at = movie.find(identity, movie.find(b"tkhd"))
movie[at:at + 36] = b"".join(v.to_bytes(4, "big", signed=True) for v in (0xB505, 0xB505, 0, -0xB505, 0xB505, 0, 0, 0, 0x40000000))
write(os.path.join("damaged", "rotated_45.mp4"), bytes(movie), "wb")
case("a 45-degree display matrix is not a quarter turn", ["nlvideo", "probe", path("damaged", "rotated_45.mp4")], 0, ['"rotation":0', '"width":96'])

# Command lines as users type them.
case("nlvideo probe of a name starting with '-'", ["nlvideo", "probe", path("damaged", "-dash.mp4")], 65, ["-dash.mp4", "no such file"], ["OVERVIEW"])
case("nlvideo frames --indices with an empty item", ["nlvideo", "frames", source, "--indices", "1,,2", "--output", path("f.safetensors")], 64,
     ["--indices takes comma-separated frame numbers"])
case("--config /dev/zero", ["nltrain", "--print-config", "--config", "/dev/zero"], 64, ["/dev/zero: is a device, not the config file"])
write("starts_0x80.safetensors", bytes([0x80, 0x41]) + bytes(64), "wb")
case("a file starting with 0x80 is not called a pickle", ["nleval", "--ckpt", path("starts_0x80.safetensors")], 65,
     ["starts_0x80.safetensors: header length"], ["pickle"])

# Configs.
def config(name, body, **kwargs):
    return write(name, body, newline="", **kwargs)


good = "[train]\nlr = 0.123\nepochs = 7\n[data]\nroot = \"with space\"\n"
for name, body in [("crlf.cfg", good.replace("\n", "\r\n")), ("cr.cfg", good.replace("\n", "\r")), ("bom.cfg", "\ufeff" + good)]:
    case(f"config with {name[:-4]}", ["nltrain", "--print-config", "--config", config(name, body)], 0, ["lr = 0.123", "epochs = 7", "root = with space"])
for name, body, words in [("empty_section.cfg", "[train]\nlr = 1\n[trian]\n", "empty_section.cfg:3: unknown section [trian]"),
                          ("hex.cfg", "[train]\nlr = 0x10\n", "hex.cfg:2: train.lr: expected a number, got '0x10'"),
                          ("underflow.cfg", "[train]\nlr = 1e-400\n", "underflow.cfg:2: train.lr: 1e-400 is beyond the range"),
                          ("crlf_typo.cfg", "[train]\r\nlr_step = 3\r\n", "crlf_typo.cfg:2: unknown key 'lr_step' in [train]; did you mean 'lr_steps'?")]:
    case(f"config: {name[:-4]}", ["nltrain", "--print-config", "--config", config(name, body)], 64, [words])
# The configs of the frameworks users come from, given as they are.
for name, body, words in [("mmaction2.py", "_base_ = ['../../_base_/models/i3d_r50.py']\nmodel = dict(backbone=dict(non_local=((0, 0, 0), (0, 1, 0, 1))))\n",
                           "mmaction2.py:1: '_base_' is outside any [section]; the file looks like an mmaction2 (Python) config"),
                          ("slowfast.yaml", "TRAIN:\n  ENABLE: True\n  BATCH_SIZE: 64\nNONLOCAL:\n  LOCATION: [[[]], [[]], [[1, 3]], [[]]]\n",
                           "slowfast.yaml:1: expected 'key = value', '[section]' or a # comment, got 'TRAIN:'; the file looks like YAML"),
                          ("config.json", '{"train": {"lr": 0.1}}\n', "config.json:1: expected 'key = value', '[section]' or a # comment, got '{\"train\": {\"lr\": 0.1}}'; the file looks like JSON")]:
    case(f"config: {name}", ["nltrain", "--print-config", "--config", config(name, body)], 64, [words, "start from configs/i3d_nl.cfg"])
case("config: a plain typo gets no format hint", ["nltrain", "--print-config", "--config", config("typo.cfg", "[train]\nlr 0.1\n")], 64,
     ["typo.cfg:2: expected 'key = value', '[section]' or a # comment, got 'lr 0.1'"], ["looks like"])
utf16 = config("utf16.cfg", good, encoding="utf-16")
case("config in UTF-16", ["nltrain", "--print-config", "--config", utf16], 64, [f"{utf16}: UTF-16 text"])
# Values that round-trip through the resolved config every checkpoint keeps.
tricky = 'wd/a" #b'
case("a --set value with a quote and a '#' is written back quoted", ["nltrain", "--print-config", "--set", f"train.work_dir={tricky}"], 0,
     ['work_dir = "wd/a\\" #b"'])
roundtrip = config("roundtrip.cfg", '[train]\nwork_dir = "wd/a\\" #b" # a comment\n')
case("such a value reads back as itself", ["nltrain", "--print-config", "--config", roundtrip], 0, ['work_dir = "wd/a\\" #b"'])
case("class weights that are not one per class", ["nltrain", "--print-config", "--set", "train.class_weights=1 2"], 64,
     ["train.class_weights has 2 numbers for model.num_classes 400: give one per class, or balanced"])
case("a --set value with a line break", ["nltrain", "--print-config", "--set", "train.work_dir=a\nb"], 64, ["a value cannot hold a line break"])
case("an unterminated quote", ["nltrain", "--print-config", "--config", config("open_quote.cfg", '[data]\nroot = "/videos\n')], 64,
     ["open_quote.cfg:2: root: the quote is not closed"])
case("config that is a directory", ["nltrain", "--print-config", "--config", out], 64, [f"{out}: is a directory, not the config file"])
included = config("includes_dir.cfg", f"include = {out}\n")
case("include of a directory", ["nltrain", "--print-config", "--config", included], 64, [f"include {out}: is a directory"])
def run_config(name):
    """A config to train with, in a work directory of its own (the cases run at once)."""
    return config(f"run_{name}.cfg", f"[data]\nroot = {root}\ntrain_annotations = {path('python_csv.csv')}\n[train]\nwork_dir = {path('work', name)}\n")


case("empty work_dir at run time", ["nltrain", "--config", run_config("a"), "--set", "train.work_dir="], 64, ["train.work_dir is empty; nltrain needs it"])
case("empty data.root at run time", ["nltrain", "--config", run_config("b"), "--set", "data.root="], 64, ["data.root is empty; nltrain needs it"])
labels = write("labels.txt", "train/abseiling/aaa_000004_000014.mp4 0\ntrain/abseiling/ddd_2147483648_2147483658.mp4 9\n")
case("an out-of-range label is named by its line", ["nltrain", "--config", run_config("c"), "--set", "data.format=list", "--set", f"data.train_annotations={labels}",
                                                    "--set", "model.num_classes=4"], 65, [f"{labels}:2: label 9"])

twice = write("twice.txt", "abseiling\nair drumming\nkind, gentle\nabseiling \n")
case("a class named twice in the classes file", ["nltrain", "--config", run_config("e"), "--set", f"data.classes={twice}"], 65,
     [f"{twice}:4: 'abseiling' again (first at line 1)"])

# Output paths that cannot be written: said before the work, in words.
case("nlvideo check --bad-list DIR", ["nlvideo", "check", path("python_csv.csv"), "--root", root, "--bad-list", out], 74, [f"{out}: is a directory; give a file name"])
case("nlvideo frames --png onto a file", ["nlvideo", "frames", source, "--indices", "0", "--png", path("python_csv.csv")], 74, ["is a file; give a folder"])
case("nlvideo frames --output into a missing folder", ["nlvideo", "frames", source, "--indices", "0", "--output", path("nowhere", "f.safetensors")], 74,
     ["no such directory"])
case("nltrain --resume DIR", ["nltrain", "--config", run_config("d"), "--resume", out], 74, [f"{out}: is a directory, not the checkpoint"])
case("nleval --json DIR", ["nleval", "--ckpt", path("nothing.ckpt"), "--json", out], 74, [f"{out}: is a directory; give a file name for the JSON report"])
case("nleval --dump DIR", ["nleval", "--ckpt", path("nothing.ckpt"), "--dump", out], 74, [f"{out}: is a directory; give a file name for the scores file"])

# Output paths that name an input (or another output): refused (64) before any work, whatever the
# spelling (./, a symbolic link), so nothing is overwritten.
victim = write("victim.safetensors", b"not really a checkpoint", "wb")
os.symlink(victim, path("victim_link"))
case("nleval --report over its --ckpt", ["nleval", "--ckpt", victim, "--report", victim], 64,
     [f"--report {victim} is the same file as --ckpt {victim}"])
case("nleval --json over its --ckpt through a link", ["nleval", "--ckpt", victim, "--json", path("victim_link")], 64,
     [f"--json {path('victim_link')} is the same file as --ckpt {victim}"])
case("nleval --dump and --json one file", ["nleval", "--ckpt", victim, "--dump", path("one.out"), "--json", path("one.out")], 64,
     [f"--dump {path('one.out')} is the same file as --json {path('one.out')}"])
case("nlvideo frames --output over its video", ["nlvideo", "frames", source, "--indices", "0", "--output", source], 64,
     [f"--output {source} is the same file as the video {source}"])
case("nlvideo check --bad-list over its annotation file", ["nlvideo", "check", path("python_csv.csv"), "--root", root, "--bad-list",
     os.path.join(out, ".", "python_csv.csv")], 64, ["is the same file as the annotation file"])
case("nleval --views beyond any recipe", ["nleval", "--ckpt", victim, "--views", "99999999999999x3"], 64, ["clips: 1 to 64"])
case("nlmodel forward --output over its --input", ["nlmodel", "forward", "--model", "nl_i3d_r50_tiny", "--input", victim, "--output", victim], 64,
     ["is the same file as --input"])

# PyTorch checkpoints are read, but a pickle is a program: the reader follows only what a state dict
# needs and refuses every other name it meets, before anything of the file is used. Hostile pickles
# as Python's pickle writes them; stand-ins for torch's modules let it name torch.nn classes.
weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "NLTrainTests", "Fixtures", "weights")
pwned = path("pwned")


class CallsSystem:
    def __reduce__(self):
        return (os.system, (f"touch {pwned}",))


def stand_in(qualified):
    """A class that pickles as `qualified` (module.Name), as if that module were installed."""
    module, name = qualified.rsplit(".", 1)
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    cls = type(name, (), {"__module__": module})
    setattr(sys.modules[module], name, cls)
    return cls


def torch_zip(name, payload):
    with zipfile.ZipFile(path(name), "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    return path(name)


def refused(name, file, contains, absent=()):
    case(name, ["nlmodel", "convert", file, path("converted.safetensors")], 65, [file, *contains], absent)


system = ["refused: its pickle names posix.system", "which is not one of the classes a state dict needs", "nothing of this file is used"]
refused("a __reduce__ calling os.system, in a zip .pth", torch_zip("system_zip.pth", pickle.dumps({"state_dict": CallsSystem()})), system)
refused("a __reduce__ calling os.system, in an old .pth", write("system_old.pth", pickle.dumps({"state_dict": CallsSystem()}, protocol=2), "wb"), system)
refused("a __reduce__ calling os.system, in a Caffe2 .pkl", write("system_blobs.pkl", pickle.dumps({"blobs": {"conv1_w": CallsSystem()}}, protocol=0), "wb"),
        system)
case("nothing was called", ["/bin/sh", "-c", f"test ! -e {pwned} && echo untouched"], 0, ["untouched"])
whole = stand_in("torch.nn.modules.conv.Conv3d")()
refused("torch.save(model): a whole model", torch_zip("whole_model.pth", pickle.dumps(whole, protocol=2)),
        ["names torch.nn.modules.conv.Conv3d", "save model.state_dict() instead"])
refused("a class of the user's own package", write("own_class.pth", pickle.dumps({"state_dict": {}, "meta": stand_in("mypackage.layers.Custom")()}), "wb"),
        ["names mypackage.layers.Custom"])
with zipfile.ZipFile(path("no_state_dict.pth"), "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"state_dict": {}}))
case("nleval --ckpt a .pth without tensors", ["nleval", "--ckpt", path("no_state_dict.pth")], 65,
     ["a zip archive torch.save wrote without a state dict (no tensors under state_dict, model_state or model)"])
zoo = open(os.path.join(weights, "mmengine.pth"), "rb").read()
refused("a zip .pth cut in half", write("half.pth", zoo[: len(zoo) // 2], "wb"), ["a damaged zip archive: no end-of-central-directory record (truncated?)"])
old = open(os.path.join(weights, "mmcv_legacy_fp16.pth"), "rb").read()
refused("an old .pth cut in its storages", write("cut_storages.pth", old[:-1000], "wb"), ["elements, more than the file holds (truncated?)"])
refused("an old .pth cut in its pickle", write("cut_pickle.pth", old[:200], "wb"), ["the file ends inside the pickle (truncated?)"])
with zipfile.ZipFile(os.path.join(weights, "mmengine.pth")) as source, zipfile.ZipFile(path("short_storage.pth"), "w") as z:
    for entry in source.namelist():
        data = source.read(entry)
        z.writestr(entry, data[: len(data) // 2] if entry.endswith("/data/0") else data)
refused("a storage shorter than its tensor", path("short_storage.pth"), ["storage 0 holds fewer bytes than its 1470 elements"])

# Habits from mmaction2 and PySlowFast, answered with this project's way.
case("nltrain CONFIG, as mmaction2's tools/train.py takes it", ["nltrain", "configs/i3d_nl.cfg"], 64, ["give the config as --config configs/i3d_nl.cfg"])
case("nltrain --cfg-options", ["nltrain", "--cfg-options", "train.lr=0.001"], 64, ["--cfg-options is mmaction2's", "--set train.lr=0.001"])
os.makedirs(path("work_dirs", "demo"), exist_ok=True)
shutil.copy(os.path.join(weights, "weights.safetensors"), path("work_dirs", "demo", "best.safetensors"))
case("nleval --ckpt a file that is not there", ["/bin/sh", "-c", f"cd {out} && exec \"$NL_BIN/nleval\" --ckpt best.safetensors"], 74,
     ["best.safetensors: no such checkpoint", "work_dirs/demo/best.safetensors"])

# A checkpoint trained on another machine: its config keeps that machine's data paths.
header = json.dumps({"__metadata__": {"config": "[data]\nroot = /elsewhere/kinetics\nval_annotations = /elsewhere/kinetics/val.csv\n"
                                                 f"train_annotations = {path('python_csv.csv')}\n"}}).encode()
write("moved.safetensors", len(header).to_bytes(8, "little") + header, "wb")
case("nleval --ckpt from another machine", ["nleval", "--ckpt", path("moved.safetensors")], 64,
     [f"{path('moved.safetensors')} (its config):2: data.root = /elsewhere/kinetics, data.val_annotations = /elsewhere/kinetics/val.csv: not on this machine",
      "give --set data.root=... --set data.val_annotations=..., or --config FILE"], ["train_annotations ="])

with open(path("cases.jsonl"), "w") as f:
    for c in cases:
        f.write(json.dumps(c) + "\n")
print(f"{len(cases)} cases in {path('cases.jsonl')}")
