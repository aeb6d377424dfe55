"""Reading a server process's CPU time and memory from /proc (Linux only)."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    f = _stat_fields(pid)
    # After comm: state is index 0, so utime/stime/cutime/cstime are 11..14.
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:", "VmSize:", "Threads:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def rss_kb(pid: int) -> int:
    return status_kb(pid).get("VmRSS", 0)


def hwm_kb(pid: int) -> int:
    return status_kb(pid).get("VmHWM", 0)


def pids_by_comm(*names: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in names:
            pids.append(int(entry))
    return pids


def group_cpu_seconds(*names: str) -> float:
    """CPU of every live process with that command name, plus what their reaped children used.

    Postgres backends come and go; a backend that exited is counted in the postmaster's
    cutime/cstime once reaped, so the sum over live processes of their own and their
    reaped children's time does not lose it.
    """
    total = 0.0
    for pid in pids_by_comm(*names):
        try:
            total += cpu_seconds(pid, children=True)
        except (OSError, ValueError, IndexError):
            continue
    return total


def pid_listening_on(port: int) -> int | None:
    """The process holding a listening TCP socket on `port` (needs permission to read /proc/*/fd)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except OSError:
            continue
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(f"{fd_dir}/{fd}") in inodes:
                        return int(entry)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def pg_counters(dsn: str) -> dict:
    """Sessions opened and transactions of the bench database (pg_stat_database)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    # This very query opened a session and ran a transaction: leave them out.
    return {"pg_sessions": row[0] - 1, "pg_xacts": row[1] - 1}


class ProcProbe:
    """Snapshots of one server process (and Redis/PostgreSQL) for before/after deltas."""

    def __init__(self, pid: int | None, pg_dsn: str | None = None):
        self.pid = pid
        self.pg_dsn = pg_dsn

    def alive(self) -> bool:
        return self.pid is not None and os.path.exists(f"/proc/{self.pid}")

    def snapshot(self) -> dict:
        snap: dict = {
            "redis_cpu_s": group_cpu_seconds("redis-server"),
            "postgres_cpu_s": group_cpu_seconds("postgres", "postmaster"),
        }
        if self.pg_dsn:
            try:
                snap.update(pg_counters(self.pg_dsn))
            except Exception:
                pass
        if self.alive():
            try:
                snap["cpu_s"] = cpu_seconds(self.pid)
                st = status_kb(self.pid)
                snap["rss_kb"] = st.get("VmRSS")
                snap["hwm_kb"] = st.get("VmHWM")
                snap["threads"] = st.get("Threads")
            except OSError:
                pass
        return snap


def cpu_times() -> dict[str, list[int]]:
    """Per-CPU jiffies from /proc/stat: user nice system idle iowait irq softirq steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                parts = line.split()
                out[parts[0]] = [int(x) for x in parts[1:9]]
    return out


def cpu_shares(before: dict, after: dict) -> dict:
    """Busy, softirq and steal shares per CPU between two cpu_times() snapshots."""
    shares = {}
    for name, b in before.items():
        a = after.get(name)
        if a is None:
            continue
        d = [y - x for x, y in zip(b, a, strict=True)]
        total = sum(d) or 1
        idle = d[3] + d[4]
        shares[name] = {
            "busy": round((total - idle - d[7]) / total, 3),
            "softirq": round(d[6] / total, 3),
            "steal": round(d[7] / total, 3),
        }
    return shares
