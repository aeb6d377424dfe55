"""The health probes: /healthz (the contract: database and Redis), /readyz (the proxy's:
this process can serve, Redis or not), /livez (the process answers)."""

import runpy
from pathlib import Path

import pytest

SETTINGS = Path(__file__).resolve().parents[2] / "chatsite" / "settings.py"
# Nothing listens on port 1: connecting is refused at once, as when Redis is down.
REDIS_DOWN = "redis://127.0.0.1:1/0"
PROBES = ["/healthz", "/readyz", "/livez"]


@pytest.fixture
def redis_down(settings):
    settings.REDIS_URL = REDIS_DOWN


@pytest.fixture
def https_settings(settings, monkeypatch):
    """The request-handling settings that DJANGO_HTTPS=1 gives, read from settings.py."""
    for name in ("REDIS_URL", "DATABASE_URL", "DJANGO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DJANGO_HTTPS", "1")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 60)
    production = runpy.run_path(str(SETTINGS))
    for name in ("SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS"):
        setattr(settings, name, production[name])
    return production


def test_readyz_and_livez_are_ok_in_the_embedded_mode(client, db):
    ready = client.get("/readyz")
    live = client.get("/livez")

    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok", "redis": "disabled"})
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert "no-cache" in ready.headers["Cache-Control"] and "no-cache" in live.headers["Cache-Control"]


def test_with_redis_down_healthz_fails_but_readyz_and_livez_keep_the_process_in_the_pool(client, db, redis_down):
    health = client.get("/healthz")
    ready = client.get("/readyz")
    live = client.get("/livez")

    # The contract, exactly: 503 whenever status is not ok.
    assert (health.status_code, health.json()) == (503, {"status": "degraded", "database": "ok", "redis": "error"})
    assert (ready.status_code, ready.json()) == (200, {"status": "degraded", "database": "ok", "redis": "error"})
    assert live.status_code == 200


def test_with_the_database_down_readyz_takes_the_process_out_and_livez_does_not(client, db, monkeypatch):
    from rooms import views

    monkeypatch.setattr(views, "_database_answers", lambda: False)

    health = client.get("/healthz")
    ready = client.get("/readyz")
    live = client.get("/livez")

    assert (health.status_code, health.json()["database"]) == (503, "error")
    assert (ready.status_code, ready.json()) == (503, {"status": "degraded", "database": "error", "redis": "disabled"})
    assert live.status_code == 200


@pytest.mark.parametrize("path", PROBES)
def test_probes_answer_plain_http_when_https_redirects_everything_else(client, db, https_settings, path):
    response = client.get(path)

    assert response.status_code == 200
    assert https_settings["SECURE_SSL_REDIRECT"] is True
    # Everything else is still sent to https.
    assert client.get("/").status_code == 301


@pytest.mark.parametrize("path", PROBES)
def test_probes_refuse_other_methods_with_405(client, db, path):
    assert client.post(path).status_code == 405
