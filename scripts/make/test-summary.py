#!/usr/bin/env python3
"""make test's output: Swift Testing's lines (on stdin) reduced to one line per suite with a running
count of the tests done out of the total (the first argument), every failure in full, and the
run's last line; every line goes to the file named by the second argument (the tests' own
measures, such as max-relative-error, are there). The Makefile takes the exit status from
`swift test` (pipefail).

    swift test ... 2>&1 | scripts/make/test-summary.py TOTAL FULL_LOG
"""
import re
import sys

total, full_log = max(int(sys.argv[1]), 1), sys.argv[2]
done = failed = 0
in_failure = False
with open(full_log, "wb") as log:
    for raw in sys.stdin.buffer:  # bytes: a crash's register dump is not UTF-8
        log.write(raw)
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        starts_event = text[:1] in "◇✔✘"  # "↳" lines go on a failure's message
        if in_failure and not starts_event:
            print(text, flush=True)  # a failure's message goes on over several lines
            continue
        in_failure = False
        if re.match(r"^✔ Test (?!run)", text) or re.match(r"^✘ Test (?!run).* failed after", text):
            done += 1
            if done * 10 // total > (done - 1) * 10 // total:  # a line at every tenth of the run
                print(f"[{done:3d}/{total}] tests done", flush=True)
        if re.match(r"^✘ Test (?!run).* recorded an issue", text):
            failed += 1
            in_failure = True
            print(text, flush=True)
        elif re.match(r"^[✔✘] Suite ", text):
            print(f"[{done:3d}/{total}] {text}", flush=True)
        elif re.match(r"^[✔✘] Test run ", text):
            print(text, flush=True)
        elif text.startswith("error:") or "Fatal error" in text or "Crash" in text:
            print(text, flush=True)
print(f"(every line of the run: {full_log})")
