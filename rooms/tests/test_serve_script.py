"""scripts/serve, run for real against stand-ins for the venv's python and daphne that
only record how they were called: which management commands it runs, and how it starts
daphne. The demo accounts have a published password, so they are made only on request."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'


@pytest.fixture
def serve(tmp_path):
    """`serve(*args)` -> the commands scripts/serve ran, one line each."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "serve", tmp_path / "scripts" / "serve")
    requirements = (REPO_ROOT / "requirements.txt").read_bytes()
    (tmp_path / "requirements.txt").write_bytes(requirements)
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # Up to date: the script installs nothing.
    (tmp_path / ".venv" / ".requirements.sha256").write_text(hashlib.sha256(requirements).hexdigest() + "\n")
    for name in ("python", "daphne"):
        (venv_bin / name).write_text(RECORDER)
        (venv_bin / name).chmod(0o755)
    calls = tmp_path / "calls"

    def run(*args: str) -> list[str]:
        calls.unlink(missing_ok=True)
        subprocess.run(
            [tmp_path / "scripts" / "serve", *args],
            env={"PATH": "/usr/bin:/bin", "CALLS": str(calls)},
            check=True,
            capture_output=True,
            timeout=60,
        )
        return calls.read_text().splitlines()

    return run


def test_serve_without_demo_creates_no_demo_accounts(serve):
    assert serve() == [
        "python manage.py migrate --no-input -v0",
        "daphne -b 127.0.0.1 -p 8000 chatsite.asgi:application",
    ]


def test_serve_with_demo_seeds_the_demo_data_before_starting(serve):
    assert serve("--demo") == [
        "python manage.py migrate --no-input -v0",
        "python manage.py seed_demo",
        "daphne -b 127.0.0.1 -p 8000 chatsite.asgi:application",
    ]


def test_serve_behind_a_proxy_passes_proxy_headers_to_daphne(serve):
    assert serve("--proxy-headers")[-1] == "daphne -b 127.0.0.1 -p 8000 --proxy-headers chatsite.asgi:application"


def test_serve_refuses_an_unknown_option(serve):
    with pytest.raises(subprocess.CalledProcessError) as refused:
        serve("--demo-please")
    assert refused.value.returncode == 2
    assert b"unknown option --demo-please" in refused.value.stderr
