"""One-command benchmark runs: bench database, fixtures, a pinned server, the load, a report.

    .venv/bin/python bench/run.py --preset target-1000x100
    .venv/bin/python bench/run.py --preset rate-500 --duration 5        # a short smoke run
    .venv/bin/python bench/run.py --server uvicorn --preset big-5000x20
    .venv/bin/python bench/run.py --server fanout --preset ceiling      # the generator's own ceiling
    .venv/bin/python bench/run.py --server socketio -n 200 -s 7 -r 50 -d 30   # Socket.IO 4, side by side
    .venv/bin/python bench/run.py --url ws://127.0.0.1:8000 -n 200 -s 5 -r 50 -d 20

By default it starts one server process pinned to CPU 0 (`taskset -c 0`) on a free
loopback port, against PostgreSQL database `chatsite_bench` (created and migrated when
missing) and Redis, exactly as production runs it, and pins itself to CPU 1. The report
is printed as a table and written as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
import peak as peak_mod  # noqa: E402
import procstats  # noqa: E402
import syncstorm  # noqa: E402
from loadgen import LoadConfig  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
SOCKETIO_DIR = os.path.join(HERE, "socketio")
PYTHON = os.path.join(VENV_BIN, "python")
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/chatsite_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# Senders stay under the per-connection command budget (CHAT_COMMANDS_PER_SECOND, 10/s).
PER_SENDER_RATE = 8.0

PRESETS: dict[str, dict] = {
    "target-1000x100": dict(
        help="1,000 viewers, 10 senders, 100 msg/s, 60 s",
        load=dict(viewers=1000, senders=10, rate=100, duration=60, warmup=5, ramp=100),
    ),
    "rate-500": dict(
        help="500 viewers: the highest rate with p99 <= 250 ms and no loss (20 s steps)",
        load=dict(viewers=500, senders=10, rate=50, duration=20, warmup=3, ramp=100),
        search=dict(start=50, max_rate=3200, p99_ms=250, precision=0.1, max_steps=10),
    ),
    "big-5000x20": dict(
        help="5,000 viewers at 20 msg/s, 60 s",
        load=dict(viewers=5000, senders=4, rate=20, duration=60, warmup=5, ramp=100),
    ),
    "idle-10000": dict(
        help="10,000 idle viewers: connect time and RSS per connection",
        load=dict(viewers=10000, senders=1, rate=0, duration=30, warmup=0, ramp=100, drain=5),
    ),
    "quiet-1": dict(
        help="1 msg/s into a 100-viewer room: latency of a quiet room",
        load=dict(viewers=100, senders=1, rate=1, duration=60, warmup=2, ramp=100),
    ),
    "slow-viewers": dict(
        help="1,000 viewers at 100 msg/s, 20 of them stop reading for 90 s",
        # The server's 1 MiB per-viewer bound sits behind a few MiB of kernel socket
        # buffers: at ~40 KB/s per viewer a reader must stall for a minute or more to hit it.
        load=dict(viewers=1000, senders=10, rate=100, duration=120, warmup=5, ramp=100, slow=20, slow_pause=90,
                  slow_at=10),
    ),
    "sync-storm": dict(
        help="20 guests asking for a 1,200-event replay 10 times a second each, 20 s: a bystander's ping",
        load=dict(viewers=0, senders=1, rate=0, duration=20),
        storm=dict(guests=20, per_second=10, log_events=1200),
    ),
    "peak": dict(
        help="300 viewers; 2,100 msg/s from 100 members for 20 s (3x capacity), a recovery probe, then 50 msg/s",
        load=dict(viewers=300, senders=100, rate=2100, duration=20, warmup=2, ramp=200, drain=5),
        peak=dict(burst_rate=2100, probe_seconds=20, after_rate=50),
        # Members, not the host team (whom admission never sheds), with limits raised so
        # that only the room's capacity refuses them.
        members=True,
        server_env=["CHAT_SEND_BURST_COUNT=100000", "CHAT_SEND_SUSTAINED_COUNT=100000",
                    "CHAT_COMMANDS_PER_SECOND=100", "CHAT_COMMANDS_BURST=200"],
    ),
    "huge": dict(
        help="10,000 viewers; 200 msg/s from 25 members and 2 msg/s from 2 moderators, 30 s: the readable feed "
             "(member lines per viewer <= the readable rate), no priority event lost, p99",
        # Connecting 10,000 as idle-10000 does (~70/s on one core: about 2.5 minutes).
        load=dict(viewers=10000, senders=25, rate=200, duration=30, warmup=5, ramp=100, drain=15,
                  team_senders=2, team_rate=2),
        members=True,
        # Members at 8 msg/s each: only the room's capacity and its readable feed may hold them back.
        server_env=["CHAT_SEND_BURST_COUNT=100000", "CHAT_SEND_SUSTAINED_COUNT=100000",
                    "CHAT_COMMANDS_PER_SECOND=100", "CHAT_COMMANDS_BURST=200"],
    ),
    "ceiling": dict(
        help="the generator's own ceiling against bench/fanout_server.py (use with --server fanout)",
        load=dict(viewers=1000, senders=25, rate=200, duration=15, warmup=3, ramp=2000, connect_concurrency=200),
        sweep=dict(rates=[100, 200, 300, 400]),
        # One WebSocket frame per event (the generator's worst case), written to each
        # viewer once per 20 ms so that the server is not what limits.
        fanout_args=["--batch-ms", "20", "--frames", "single"],
    ),
}


# ---------------------------------------------------------------------------------------
# Machine setup


def pin_self(cpu: int | None) -> None:
    if cpu is not None and cpu < os.cpu_count():
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before listening; see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not listen on {port} within {timeout} s")


def ensure_database(url: str) -> None:
    """Create the bench database when missing (PostgreSQL only)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if not u.scheme.startswith("postgres"):
        return
    import psycopg

    name = u.path.lstrip("/")
    admin = f"host={u.hostname or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} dbname=postgres"
    if u.password:
        admin += f" password={u.password}"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", file=sys.stderr)


def _pg_dsn(url: str) -> str | None:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if not u.scheme.startswith("postgres"):
        return None
    dsn = f"host={u.hostname or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} " \
          f"dbname={u.path.lstrip('/')}"
    return dsn + (f" password={u.password}" if u.password else "")


def server_env(args) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        # Other servers on this machine share Redis: keep this one's groups and presence apart.
        CHATSITE_REDIS_PREFIX=args.redis_prefix,
        DJANGO_DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    if not args.redis_url:
        env.pop("REDIS_URL", None)
    for item in args.server_env:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def migrate(env: dict) -> None:
    r = subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise SystemExit(f"migrate failed:\n{r.stdout}\n{r.stderr}")


def make_fixtures(env: dict, slug: str, senders: int, log_events: int = 0, members: bool = False,
                  team_senders: int = 0) -> dict:
    r = subprocess.run([PYTHON, os.path.join(HERE, "fixtures.py"), "--slug", slug, "--senders", str(senders),
                        "--log-events", str(log_events), "--team-senders", str(team_senders),
                        *(["--members"] if members else [])],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise SystemExit(f"fixtures failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _raise_nofile_in_child() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.setsid()


def socketio_install() -> str:
    """The node binary, with bench/socketio's pinned packages installed (`npm ci`) when missing."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("--server socketio needs Node.js (Debian: apt-get install -y nodejs npm)")
    if not os.path.isdir(os.path.join(SOCKETIO_DIR, "node_modules", "socket.io")):
        print("installing bench/socketio (npm ci)", file=sys.stderr)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SOCKETIO_DIR, capture_output=True,
                           text=True, timeout=600)
        if r.returncode:
            raise SystemExit(f"npm ci failed:\n{r.stdout}\n{r.stderr}")
    return node


class Server:
    """A server process this script started, pinned to one CPU; stopped by its pid."""

    def __init__(self, kind: str, port: int, cpu: int | None, env: dict, log_path: str, extra: list[str],
                 asgi_app: str = "chatsite.asgi:application"):
        self.kind = kind
        self.port = port
        self.log_path = log_path
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        if kind == "daphne":
            cmd = [os.path.join(VENV_BIN, "daphne"), "-b", "127.0.0.1", "-p", str(port), *extra, asgi_app]
        elif kind == "uvicorn":
            cmd = [os.path.join(VENV_BIN, "uvicorn"), asgi_app, "--host", "127.0.0.1",
                   "--port", str(port), "--ws", "websockets", "--log-level", "warning", "--no-access-log",
                   *extra]
        elif kind == "fanout":
            cmd = [PYTHON, os.path.join(HERE, "fanout_server.py"), "--port", str(port), "--max-seconds", "7200",
                   *extra]
        elif kind == "socketio":
            cmd = [socketio_install(), os.path.join(SOCKETIO_DIR, "server.js"), "--port", str(port),
                   "--max-seconds", "7200", *extra]
        else:
            raise SystemExit(f"unknown server {kind}")
        self.cmd = pin + cmd
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_raise_nofile_in_child)
        # taskset execs the server in place, so the pid is the server's.
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


async def wait_quiet(max_wait: float, busy_max: float = 0.25) -> dict:
    """Wait (bounded) until the machine is mostly idle, so others' work does not skew a run.

    Counts everything, the open connections' own idle cost included; it is small.
    """
    deadline = time.monotonic() + max_wait
    last = {}
    while True:
        a = procstats.cpu_times()
        await asyncio.sleep(1.0)
        shares = procstats.cpu_shares(a, procstats.cpu_times())
        last = shares.get("cpu", {})
        if last.get("busy", 0) <= busy_max or time.monotonic() >= deadline:
            return last


# ---------------------------------------------------------------------------------------
# Runs


def passes(result: dict, p99_ms: float) -> tuple[bool, str]:
    d, m, lat = result["deliveries"], result["messages"], result["latency_ms"]
    if result["connect"]["failures"]:
        return False, "connect failures"
    if m["errors"] or m["unanswered"]:
        return False, f"send errors {m['errors']} unanswered {m['unanswered']}"
    if d["lost"]:
        return False, f"lost {d['lost']}"
    if d["duplicates"]:
        return False, f"duplicates {d['duplicates']}"
    if lat["p99"] is None or lat["p99"] > p99_ms:
        return False, f"p99 {lat['p99']} ms"
    if result["messages"]["rate_achieved"] < 0.95 * result["config"]["rate"]:
        return False, "rate not reached"
    return True, "ok"


async def _quiet(args) -> None:
    if args.quiet_wait:
        seen = await wait_quiet(args.quiet_wait)
        print(f"  machine busy before the step: {seen.get('busy', 0) * 100:.0f}%", file=sys.stderr)


async def run_one(cfg: LoadConfig, probe, args) -> dict:
    gen = loadgen.Generator(cfg, probe)
    async with gen.session():
        await _quiet(args)
        return await gen.step()


async def search(base: LoadConfig, probe, args, spec: dict) -> dict:
    """Step search for the highest rate that passes: double until a failure, then bisect.

    The viewers stay connected across steps (connecting is slow on the real server);
    each step is its own warm-up, window and drain with its own accounting.
    """
    lo, hi = None, None
    rate = float(args.search_start or spec["start"])
    steps = []
    gen = loadgen.Generator(base, probe)
    async with gen.session():
        for _ in range(spec["max_steps"]):
            n_send = max(base.senders, math.ceil(rate / PER_SENDER_RATE))
            await gen.ensure_senders(n_send)
            print(f"step: {rate:g} msg/s, {n_send} senders", file=sys.stderr)
            await _quiet(args)
            result = await gen.step(rate=rate, senders=n_send, label=f"{base.label} rate {rate:g}")
            ok, why = passes(result, spec["p99_ms"])
            result["pass"], result["why"] = ok, why
            steps.append(result)
            print(loadgen.format_table(result), file=sys.stderr)
            print(f"  => {'PASS' if ok else 'FAIL'} ({why})", file=sys.stderr)
            if ok:
                lo = rate
            else:
                hi = rate
            if hi is None:
                if rate >= spec["max_rate"]:
                    break
                rate = min(rate * 2, spec["max_rate"])
            elif lo is None:
                if rate <= 1:
                    break
                rate = max(1.0, math.floor(rate / 2))
            else:
                nxt = math.floor((lo + hi) / 2)
                if (hi - lo) / lo <= spec["precision"] or nxt in (lo, hi):
                    break
                rate = nxt
            # Let the server finish what a failed step queued before measuring again.
            waited = await gen.quiesce()
            print(f"  server idle again after {waited:.1f} s", file=sys.stderr)
    return {
        "search": {"p99_ms": spec["p99_ms"], "best_rate": lo, "first_failing_rate": hi},
        "steps": steps,
    }


async def peak(base: LoadConfig, probe, args, spec: dict, port: int) -> dict:
    """A burst at several times the room's capacity, a recovery probe right after it,
    then an ordinary load: is nothing lost, is every send answered, and how soon is the
    room usable again?"""
    gen = loadgen.Generator(base, probe)
    async with gen.session():
        await gen.ensure_senders(base.senders)
        await _quiet(args)
        burst = await gen.step(rate=spec["burst_rate"], senders=base.senders, label=f"{base.label} burst")
        print(loadgen.format_table(burst), file=sys.stderr)
        cookies = [f"{base.cookie_name}={session}" for session in base.sessions[-spec["probe_seconds"]:]]
        probed = await peak_mod.recovery_probe(
            f"{base.url}/ws/rooms/{base.room}/", f"http://127.0.0.1:{port}", cookies
        )
        print(peak_mod.format_probe(probed), file=sys.stderr)
        after = await gen.step(rate=spec["after_rate"], senders=base.senders, label=f"{base.label} after")
    return {"peak": probed, "steps": [burst, after]}


async def sweep(base: LoadConfig, probe, args, spec: dict) -> dict:
    steps = []
    rates = [float(x) for x in args.sweep.split(",")] if args.sweep else spec["rates"]
    gen = loadgen.Generator(base, probe)
    async with gen.session():
        for rate in rates:
            n_send = max(base.senders, math.ceil(rate / PER_SENDER_RATE))
            await gen.ensure_senders(n_send)
            await _quiet(args)
            result = await gen.step(rate=rate, senders=n_send, label=f"{base.label} rate {rate:g}")
            steps.append(result)
            print(loadgen.format_table(result), file=sys.stderr)
            await gen.quiesce()
    return {"steps": steps}


def summary_rows(results: list[dict]) -> str:
    head = ("run", "viewers", "rate", "sent/acked", "deliv/s", "lost", "dup", "resync", "p50", "p90", "p99",
            "max", "prio lost", "prio p99", "member/s max", "srv cpu%", "us/deliv", "rss KiB/conn", "peak MB",
            "gen cpu%")
    rows = [head]
    for r in results:
        d, m, lat, s, g = r["deliveries"], r["messages"], r["latency_ms"], r["server"], r["generator"]
        pr, mf = r.get("priority"), r.get("member_feed")

        def n(x, nd=1):
            return "-" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}")

        rows.append((
            r.get("label") or "-", n(r["connect"]["viewers"]["connected"]), n(r["config"]["rate"], 0),
            f"{m['sent']:,}/{m['acked']:,}", n(d["per_s"], 0), n(d["lost"]), n(d["duplicates"]), n(d["resyncs"]),
            n(lat["p50"]), n(lat["p90"]), n(lat["p99"]), n(lat["max"]),
            f"{pr['lost']:,} ({pr['viewers_with_loss']:,})" if pr else "-",
            n(pr["latency_ms"]["p99"]) if pr else "-",
            f"{n(mf['per_viewer_per_s_max'])}/{n(float(mf['readable_rate']), 0)}"
            if mf and mf["per_viewer_per_s_max"] is not None else "-",
            n(s["cpu_util"] * 100 if s["cpu_util"] is not None else None), n(s["cpu_us_per_delivery"], 2),
            n(s["rss_kb_per_conn"]), n(s["peak_rss_mb"]), n(g["cpu_util"] * 100 if g["cpu_util"] is not None else None),
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), help="; ".join(f"{k}: {v['help']}" for k, v in PRESETS.items()))
    p.add_argument("--server", choices=["daphne", "uvicorn", "fanout", "socketio"], default="daphne",
                   help="server to start (default daphne; socketio: bench/socketio/server.js, Socket.IO 4 on "
                        "Node.js, spoken to with --protocol socketio); ignored with --url")
    p.add_argument("--url", help="target an already running server instead (loopback only)")
    p.add_argument("--room", help="room slug (default: a fresh bench room per invocation)")
    p.add_argument("--port", type=int, help="port for the started server (default: a free one)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--gen-cpu", type=int, default=1)
    p.add_argument("--asgi-app", default="chatsite.asgi:application",
                   help="the application daphne or uvicorn serves (bench.floor_asgi:application: the "
                        "server and Channels with nothing of the chat, for the floor of a connect)")
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for the server command")
    p.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server's environment")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG))
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
                   help="'' for the embedded mode (in-memory layer)")
    p.add_argument("--redis-prefix", default="chatsite-bench")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto", help="generator event loop")
    p.add_argument("--json", help="report path (default bench/results/<run>.json)")
    p.add_argument("--quiet-wait", type=float, default=0,
                   help="before each run, wait up to this many seconds for the machine to be idle")
    p.add_argument("--search-start", type=float, help="rate search: first rate")
    p.add_argument("--sweep", help="comma-separated rates to run one after another")
    p.add_argument("--profile", type=float, default=0,
                   help="py-spy record the server for this many seconds (text summary in bench/results/)")
    p.add_argument("--profile-phase", choices=["window", "connect"], default="window",
                   help="start profiling when the measured window starts, or when viewers start connecting")
    p.add_argument("--profile-gil", action="store_true",
                   help="sample only the thread holding the GIL: where the CPU goes, not where threads wait")
    loadgen.add_load_args(p)
    args = p.parse_args(argv)

    preset = PRESETS.get(args.preset, {}) if args.preset else {}
    base = LoadConfig(**preset.get("load", {}))
    base = loadgen.config_from_args(args, base)
    if args.server == "socketio" and not args.url:
        if args.protocol not in (None, "socketio"):
            raise SystemExit("--server socketio speaks --protocol socketio")
        base.protocol = "socketio"
    if base.protocol != "chat" and (preset.get("peak") or preset.get("storm")):
        raise SystemExit(f"--preset {args.preset} speaks chatsite's protocol only")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = args.label or args.preset or "custom"
    base.label = label

    pin_self(args.gen_cpu)
    loadgen.raise_nofile()
    loop_kind = loadgen.install_loop(args.loop)

    server = None
    args.server_env = preset.get("server_env", []) + args.server_env
    env = server_env(args)
    if args.readable_rate is None and env.get("CHAT_READABLE_MESSAGES_PER_SECOND"):
        base.readable_rate = float(env["CHAT_READABLE_MESSAGES_PER_SECOND"])
    search_spec = preset.get("search")
    sweep_spec = preset.get("sweep") or ({"rates": []} if args.sweep else None)
    max_senders = base.senders
    if search_spec:
        max_senders = max(max_senders, math.ceil(search_spec["max_rate"] / PER_SENDER_RATE))
    if sweep_spec:
        rates = [float(x) for x in args.sweep.split(",")] if args.sweep else sweep_spec["rates"]
        max_senders = max([max_senders] + [math.ceil(r / PER_SENDER_RATE) for r in rates])
    if not search_spec and not sweep_spec and base.rate / max(1, base.senders) > PER_SENDER_RATE + 2:
        print(f"warning: {base.rate / base.senders:.1f} msg/s per sender is above the per-connection command "
              f"budget; expect rate_limited errors", file=sys.stderr)

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    # Taken before the server starts: the work tree may change while a run goes on.
    kind = "url" if args.url else args.server
    digest = source_digest(kind)
    try:
        if args.url:
            base.url = args.url
            port = int(args.url.rsplit(":", 1)[1].split("/")[0])
            pid = procstats.pid_listening_on(port)
        else:
            port = args.port or free_port()
            base.url = f"ws://127.0.0.1:{port}"
        needs_django = base.protocol == "chat" and (
            kind in ("daphne", "uvicorn") or (kind == "url" and args.database_url))
        if kind in ("fanout", "socketio"):
            base.room = args.room or f"bench-{stamp}"
        elif needs_django:
            if not args.url:
                ensure_database(args.database_url)
                migrate(env)
            slug = args.room or f"bench-{label}-{stamp}".lower().replace(".", "-")[:64]
            # The peak preset's recovery probe signs in as members of its own, a fresh one each second.
            probes = int(preset.get("peak", {}).get("probe_seconds", 0))
            fx = make_fixtures(env, slug, max_senders + probes, preset.get("storm", {}).get("log_events", 0),
                               members=preset.get("members", False), team_senders=base.team_senders)
            base.room = fx["slug"]
            base.sessions = fx["sessions"]
            base.team_sessions = fx.get("team_sessions", [])
        if not args.url:
            log_path = os.path.join(HERE, "results", f"{label}-{kind}-{stamp}.log")
            extra = (preset.get("fanout_args", []) if kind == "fanout" else []) + args.server_arg
            server = Server(kind, port, args.server_cpu, env, log_path, extra, args.asgi_app)
            wait_port(port, server.proc, 60)
            pid = server.pid
        probe = procstats.ProcProbe(pid, _pg_dsn(args.database_url) if needs_django else None)

        profiler = None
        if args.profile and pid:
            profiler = _start_profiler(pid, base, args, label, kind, stamp)

        storm_spec = preset.get("storm")
        peak_spec = preset.get("peak")

        async def go():
            if peak_spec:
                return await peak(base, probe, args, peak_spec, port)
            if storm_spec:
                return await syncstorm.run_storm(
                    f"{base.url}/ws/rooms/{base.room}/", f"http://127.0.0.1:{port}", guests=storm_spec["guests"],
                    per_second=storm_spec["per_second"], duration=base.duration, probe=probe,
                )
            if search_spec and args.rate is None:
                return await search(base, probe, args, search_spec)
            if sweep_spec and (args.sweep or args.rate is None):
                return await sweep(base, probe, args, sweep_spec)
            return await run_one(base, probe, args)

        out = asyncio.run(go())
        if profiler is not None:
            try:
                profiler.wait(max(5, args.profile + 30))
            except subprocess.TimeoutExpired:
                profiler.terminate()
    finally:
        if server is not None:
            server.stop()

    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": loadgen.machine_info(),
        "command": " ".join([".venv/bin/python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "server": kind,
        "server_cmd": server.cmd if server else None,
        "generator_loop": loop_kind,
        "versions": _versions(kind),
        "git_head": _git_head(),
        "server_source_digest": digest,
    }
    out = {"meta": meta, **out}
    path = args.json or os.path.join(HERE, "results", f"{label}-{kind}-{stamp}.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)

    if "peak" in out:
        for step in out["steps"]:
            print(loadgen.format_table(step))
        print(peak_mod.format_probe(out["peak"]))
        print(f"\nreport: {os.path.relpath(path, ROOT)}")
        return
    if "storm" in out:
        print(syncstorm.format_storm(out))
        print(f"\nreport: {os.path.relpath(path, ROOT)}")
        return
    results = out.get("steps") or [out]
    if "steps" not in out:
        print(loadgen.format_table(out))
    print()
    print(summary_rows(results))
    if "search" in out:
        s = out["search"]
        print(f"\nhighest passing rate: {s['best_rate']} msg/s (p99 <= {s['p99_ms']} ms, no loss); "
              f"first failing: {s['first_failing_rate']}")
    print(f"\nreport: {os.path.relpath(path, ROOT)}")


def _start_profiler(pid: int, cfg: LoadConfig, args, label: str, kind: str, stamp: str):
    """py-spy the server from the start of the measured window (or of connecting)."""
    spy = os.path.join(VENV_BIN, "py-spy")
    out = os.path.join(HERE, "results", f"{label}-{kind}-{stamp}.spy.txt")
    top = os.path.join(HERE, "results", f"{label}-{kind}-{stamp}.spytop.txt")
    # Connecting runs at the server's pace, not --ramp: wait for the generator's marker.
    marker = os.path.join(HERE, "results", f".{stamp}.window")
    wait = "" if args.profile_phase == "connect" else \
        f"for i in $(seq 1 3600); do [ -e {marker} ] && break; sleep 1; done; "
    cmd = ["sh", "-c", f"{wait}"
                       f"{spy} record --nonblocking {'--gil ' if args.profile_gil else ''}"
                       f"-r 200 -d {int(args.profile)} "
                       f"-f raw -o {out} --pid {pid}; "
                       f"{PYTHON} {os.path.join(HERE, 'spytop.py')} {out} --top 40 > {top}; rm -f {marker}"]
    loadgen.WINDOW_MARKER = marker
    print(f"profiling server pid {pid} into {os.path.relpath(top, ROOT)}", file=sys.stderr)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def source_digest(kind: str) -> str:
    """A digest of the server's source, tying a report to the code it measured (the
    work tree may be ahead of any commit)."""
    import hashlib

    h = hashlib.sha1()
    if kind == "socketio":
        for name in ("server.js", "package-lock.json"):
            with open(os.path.join(SOCKETIO_DIR, name), "rb") as fh:
                h.update(fh.read())
        return h.hexdigest()[:12]
    for top in ("chatsite", "rooms", "moderation"):
        for dirpath, dirnames, filenames in sorted(os.walk(os.path.join(ROOT, top))):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "tests"))
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, ROOT).encode())
                    with open(path, "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()[:12]


def _git_head() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                           timeout=10)
        return r.stdout.strip() or None
    except OSError:
        return None


def _versions(kind: str) -> dict:
    out = {}
    if kind == "socketio":
        out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        for name in ("socket.io", "engine.io", "ws"):
            try:
                with open(os.path.join(SOCKETIO_DIR, "node_modules", name, "package.json")) as fh:
                    out[name] = json.load(fh)["version"]
            except (OSError, ValueError, KeyError):
                out[name] = None
    try:
        from importlib.metadata import version

        for name in ("django", "channels", "channels-redis", "daphne", "uvicorn", "websockets", "redis", "orjson",
                     "uvloop", "twisted"):
            try:
                out[name] = version(name)
            except Exception:
                out[name] = None
    except ImportError:
        pass
    return out


if __name__ == "__main__":
    main()
