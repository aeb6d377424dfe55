"""scripts/serve builds the translations (.mo) from their sources (.po) when a .po
changed or a .mo is missing, and not on every start: the .mo files are not in git."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
COMPILE = "python manage.py compilemessages -v0"

pytestmark = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext (msgfmt) is not installed")


@pytest.fixture
def site(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "serve", tmp_path / "scripts" / "serve")
    requirements = (REPO_ROOT / "requirements.txt").read_bytes()
    (tmp_path / "requirements.txt").write_bytes(requirements)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / ".requirements.sha256").write_text(hashlib.sha256(requirements).hexdigest() + "\n")
    for name in ("python", "daphne"):
        (tmp_path / ".venv" / "bin" / name).write_text(RECORDER)
        (tmp_path / ".venv" / "bin" / name).chmod(0o755)
    messages = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "django.po").write_text('msgid "Sign in"\nmsgstr "登录"\n', encoding="utf-8")
    return tmp_path


def serve(site: Path) -> list[str]:
    calls = site / "calls"
    calls.unlink(missing_ok=True)
    subprocess.run(
        [site / "scripts" / "serve"],
        env={"PATH": "/usr/bin:/bin", "CALLS": str(calls)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return calls.read_text().splitlines()


def test_serve_compiles_translations_only_when_a_catalog_changed(site):
    messages = site / "locale" / "zh_Hans" / "LC_MESSAGES"
    assert COMPILE in serve(site)
    # What compilemessages would have written (the recorder only notes the call).
    (messages / "django.mo").write_bytes(b"")
    assert COMPILE not in serve(site)

    (messages / "django.po").write_text('msgid "Sign in"\nmsgstr "登入"\n', encoding="utf-8")
    assert COMPILE in serve(site)
    assert COMPILE not in serve(site)

    (messages / "django.mo").unlink()
    assert COMPILE in serve(site)
