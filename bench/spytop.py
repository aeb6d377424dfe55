"""Summarise a py-spy profile as text: top functions by own and by inclusive samples.

    py-spy record -f raw -o /tmp/server.txt --pid PID -d 30      (collapsed stacks)
    python bench/spytop.py /tmp/server.txt [--top 25] [--idle]

Also reads py-spy's speedscope JSON (-f speedscope). Idle threads (waiting in
epoll/select/locks) are left out unless --idle, so the shares are of busy samples.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

IDLE = re.compile(r"\b(select|poll|epoll|wait|_wait_for_tstate_lock|acquire|sleep|_worker|doPoll|accept)\b")


def read_raw(path: str):
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            yield stack.split(";"), int(count)


def read_speedscope(path: str):
    with open(path) as fh:
        doc = json.load(fh)
    frames = doc["shared"]["frames"]
    names = [f"{f['name']} ({(f.get('file') or '').rsplit('/', 2)[-1]}:{f.get('line', '')})" for f in frames]
    for prof in doc["profiles"]:
        for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
            yield [names[i] for i in sample], weight


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--idle", action="store_true", help="count idle samples too")
    p.add_argument("--grep", help="only stacks containing this text")
    args = p.parse_args(argv)
    reader = read_speedscope if args.path.endswith(".json") else read_raw
    own, incl = Counter(), Counter()
    total = 0
    for stack, n in reader(args.path):
        if not stack:
            continue
        if not args.idle and IDLE.search(stack[-1].split(" (")[0]):
            continue
        if args.grep and not any(args.grep in f for f in stack):
            continue
        total += n
        own[stack[-1]] += n
        for f in set(stack):
            incl[f] += n
    print(f"busy samples: {total:g}")
    for title, counter in (("own", own), ("inclusive", incl)):
        print(f"\ntop {args.top} by {title} samples")
        for name, n in counter.most_common(args.top):
            print(f"  {100 * n / max(1, total):5.1f}%  {name}")


if __name__ == "__main__":
    main()
