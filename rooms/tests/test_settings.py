"""The settings module read fresh under a given environment."""

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "chatsite" / "settings.py"


def load_settings(monkeypatch, **env) -> dict:
    for name in ("REDIS_URL", "DATABASE_URL", "DJANGO_DEBUG", "DJANGO_HTTPS", "DJANGO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_embedded_default_is_sqlite_with_the_in_memory_layer(monkeypatch):
    settings = load_settings(monkeypatch)
    assert settings["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert settings["DEBUG"] is False


def test_redis_layer_survives_redis_py_8_1_defaults(monkeypatch):
    # redis-py 8.1 defaults to a 5 s socket timeout (kills an idle subscriber's blocking
    # read) and 100 pooled connections (big rooms run out): both are overridden.
    settings = load_settings(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0")
    layer = settings["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    (host,) = layer["CONFIG"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/0"
    assert host["socket_timeout"] is None
    assert host["max_connections"] >= 1000
    assert settings["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


@pytest.mark.parametrize(
    "env",
    [
        {"DJANGO_DEBUG": "maybe"},
        {"CHAT_BODY_MAX_CHARS": "lots"},
        {"CHAT_BODY_MAX_CHARS": "0"},
        {"DATABASE_URL": "nosuchscheme://x"},
        {"DJANGO_HTTPS": "1"},  # production without a secret key
        {"CHAT_METRICS_ALLOW": "127.0.0.1,localhost"},
        {"CHAT_METRICS_ALLOW": "10.0.0.0/33"},
        {"CHAT_DRAIN_SECONDS": "soon"},
    ],
)
def test_junk_configuration_fails_at_startup(monkeypatch, env):
    with pytest.raises(ImproperlyConfigured):
        load_settings(monkeypatch, **env)


def test_https_turns_on_secure_cookies_and_hsts(monkeypatch):
    settings = load_settings(monkeypatch, DJANGO_HTTPS="1", DJANGO_SECRET_KEY="x" * 60)
    assert settings["SESSION_COOKIE_SECURE"] and settings["CSRF_COOKIE_SECURE"]
    assert settings["SECURE_SSL_REDIRECT"]
    assert settings["SECURE_HSTS_SECONDS"] > 0
    assert settings["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


def test_deploy_checks_refuse_the_in_memory_layer_and_wildcard_hosts(settings):
    from rooms.checks import check_production_settings

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    ids = {error.id for error in check_production_settings(None)}
    assert {"chatsite.E001", "chatsite.E002"} <= ids


def test_deploy_checks_pass_the_documented_production_settings(settings):
    from rooms.checks import check_production_settings

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.postgresql"},
    }
    assert check_production_settings(None) == []
