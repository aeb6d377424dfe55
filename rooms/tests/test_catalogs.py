"""The Chinese catalogs are complete: every message the templates, the server and the
page's scripts can show is in them, translated, and none is left fuzzy. A string marked
for translation but missing from the .po (makemessages not run, or a msgid left empty)
would reach a Chinese viewer in English.

The sources are read the way `manage.py makemessages` reads them: xgettext over the
Python modules and the scripts, and over the templates once Django has turned them into
something xgettext reads (templatize)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils.translation.template import templatize

REPO = Path(__file__).resolve().parents[2]
MESSAGES = REPO / "locale" / "zh_Hans" / "LC_MESSAGES"
# Django's own keywords for each domain (django.core.management.commands.makemessages).
KEYWORDS = [
    "--keyword=gettext_noop",
    "--keyword=gettext_lazy",
    "--keyword=ngettext_lazy:1,2",
    "--keyword=pgettext:1c,2",
    "--keyword=npgettext:1c,2,3",
    "--keyword=pgettext_lazy:1c,2",
    "--keyword=npgettext_lazy:1c,2,3",
]
GETTEXT = {"env": {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, "capture_output": True, "text": True}

pytestmark = pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext (xgettext) is not installed")


def python_sources() -> list[Path]:
    return [
        path
        for app in ("chatsite", "rooms", "moderation")
        for path in sorted((REPO / app).rglob("*.py"))
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def templatized(tmp_path: Path) -> list[Path]:
    out = []
    for template in sorted((REPO / "templates").rglob("*.html")):
        target = tmp_path / (template.relative_to(REPO).as_posix().replace("/", "__") + ".py")
        target.write_text(templatize(template.read_text("utf-8"), origin=str(template)), "utf-8")
        out.append(target)
    return out


def extract(tmp_path: Path, language: str, sources: list[Path]) -> Path:
    pot = tmp_path / f"{language}.pot"
    subprocess.run(
        ["xgettext", f"--language={language}", "--from-code=UTF-8", *KEYWORDS, f"--output={pot}", *map(str, sources)],
        check=True,
        **GETTEXT,
    )
    return pot


def missing_from(catalog: str, pot: Path) -> str:
    """What msgcmp says of the messages in `pot` that `catalog` lacks or leaves
    untranslated ("" when it has them all)."""
    result = subprocess.run(["msgcmp", str(MESSAGES / catalog), str(pot)], **GETTEXT)
    return "" if result.returncode == 0 else result.stderr


def test_every_message_of_the_templates_and_the_server_is_in_the_django_catalog(tmp_path):
    pot = extract(tmp_path, "Python", python_sources() + templatized(tmp_path))
    assert missing_from("django.po", pot) == ""


def test_every_message_of_the_pages_scripts_is_in_the_djangojs_catalog(tmp_path):
    pot = extract(tmp_path, "JavaScript", sorted((REPO / "static").rglob("*.js")))
    assert missing_from("djangojs.po", pot) == ""


@pytest.mark.parametrize("catalog", ["django.po", "djangojs.po"])
def test_no_message_of_the_chinese_catalogs_is_fuzzy_or_untranslated(catalog):
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(MESSAGES / catalog)], check=True, **GETTEXT
    )
    # "N translated messages." and nothing about fuzzy or untranslated ones.
    assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr, result.stderr
