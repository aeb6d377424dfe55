"""Render run.py JSON reports as one Markdown table (for RESULTS.md).

    python bench/report.py bench/results/target-1000x100-daphne-*.json [...]
"""

from __future__ import annotations

import argparse
import json

COLUMNS = [
    ("run", lambda r, m: r.get("label") or "-"),
    ("server", lambda r, m: m.get("server", "-")),
    ("viewers", lambda r, m: _n(r["connect"]["viewers"]["connected"])),
    ("conn/s", lambda r, m: _n(r["connect"]["viewers"]["per_s"])),
    ("msg/s", lambda r, m: _n(r["config"]["rate"])),
    ("sent/acked", lambda r, m: f"{r['messages']['sent']:,}/{r['messages']['acked']:,}"),
    ("ack p50 ms", lambda r, m: _n(r["messages"]["ack_ms_p50"])),
    ("expected", lambda r, m: _n(r["deliveries"]["expected"])),
    ("received", lambda r, m: _n(r["deliveries"]["received"])),
    ("lost", lambda r, m: _n(r["deliveries"]["lost"])),
    ("dup", lambda r, m: _n(r["deliveries"]["duplicates"])),
    ("resync", lambda r, m: _n(r["deliveries"]["resyncs"])),
    ("deliv/s", lambda r, m: _n(r["deliveries"]["per_s"], 0)),
    ("p50 ms", lambda r, m: _n(r["latency_ms"]["p50"])),
    ("p90 ms", lambda r, m: _n(r["latency_ms"]["p90"])),
    ("p99 ms", lambda r, m: _n(r["latency_ms"]["p99"])),
    ("max ms", lambda r, m: _n(r["latency_ms"]["max"])),
    ("srv CPU %", lambda r, m: _n(_pc(r["server"]["cpu_util"]))),
    ("srv us/deliv", lambda r, m: _n(r["server"]["cpu_us_per_delivery"])),
    ("conn CPU ms", lambda r, m: _n(r["server"].get("connect_cpu_ms_per_conn"))),
    ("RSS KiB/conn", lambda r, m: _n(r["server"]["rss_kb_per_conn"])),
    ("peak RSS MB", lambda r, m: _n(r["server"]["peak_rss_mb"])),
    ("gen CPU %", lambda r, m: _n(_pc(r["generator"]["cpu_util"]))),
    ("machine busy %", lambda r, m: _n(_pc((r.get("machine_cpu") or {}).get("cpu", {}).get("busy")))),
]


def _pc(x):
    return None if x is None else x * 100


def _n(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("paths", nargs="+")
    args = p.parse_args(argv)
    print("| " + " | ".join(c for c, _ in COLUMNS) + " |")
    print("|" + "|".join("---" for _ in COLUMNS) + "|")
    for path in args.paths:
        with open(path) as fh:
            doc = json.load(fh)
        meta = doc.get("meta", {})
        for r in doc.get("steps") or [doc]:
            print("| " + " | ".join(str(fn(r, meta)) for _, fn in COLUMNS) + " |")


if __name__ == "__main__":
    main()
