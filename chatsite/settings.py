"""Settings for chatsite.

Every value comes from the environment, with defaults that give the embedded mode
(one daphne process, SQLite, no Redis). Junk values raise ImproperlyConfigured at
startup rather than surfacing later as odd behaviour.
"""

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def ip_networks(name: str, items: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The addresses and CIDR networks (`10.0.0.0/8`, `::1`) of variable `name`."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} must list IP addresses or networks, not {item!r}") from None
    return tuple(networks)


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("DJANGO_HTTPS", False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_HTTPS is on")
    # Good enough for the embedded mode on a laptop; `check --deploy` flags it.
    SECRET_KEY = "django-insecure-chatsite-embedded-default-key-change-me-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rooms",
    "moderation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions (the language switch is kept there), before CommonMiddleware.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "rooms.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "chatsite.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    # Persistent connections: Channels closes "old" connections around every database
    # call, and opening a PostgreSQL connection per chat line costs more than the line.
    # No health checks: Channels would ping the database before every call (a round
    # trip on the one thread all of a process's database calls share); a connection
    # that broke fails its query and is replaced on the next call.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600))}
except Exception as exc:  # dj-database-url raises several types for junk URLs
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once; WAL lets readers run beside
    # the one writer, which is what a chat room does all day.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
TEST_DATABASE_NAME = os.environ.get("CHATSITE_TEST_DATABASE_NAME")
if TEST_DATABASE_NAME:
    DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # One Redis subscription per process per room; see rooms/realtime.py.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8.1 defaults to a 5 s socket timeout, which kills an
                        # idle subscriber's blocking read, and to 100 pooled connections.
                        "socket_timeout": None,
                        "socket_connect_timeout": 5,
                        "max_connections": 10_000,
                        "health_check_interval": 15,
                    }
                ],
                "prefix": env_str("CHATSITE_REDIS_PREFIX", "chatsite"),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Rate-limit counters are keyed by user id: keep sites sharing a Redis apart.
            "KEY_PREFIX": env_str("CHATSITE_REDIS_PREFIX", "chatsite"),
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # The only members of a room group are the per-process hubs, which drain
            # their channel continuously; the default capacity of 100 is for consumers.
            "CONFIG": {"capacity": 100_000, "expiry": 60},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Database sessions: every server process sees every session.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "room_list"
LOGOUT_REDIRECT_URL = "room_list"

# The page's language: the switch in the header (a cookie), else the browser's
# Accept-Language, else English. Catalogs are locale/*/LC_MESSAGES/*.po, compiled by
# scripts/test and scripts/serve.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Unset in the embedded mode: files are served from the app folders (finders).
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploaded files (room emotes), written through the storage API. They are served by
# rooms.views.emote_image with the type their bytes were sniffed as, never from here by
# extension; see docs/deploy.md "Uploads".
MEDIA_ROOT = Path(env_str("CHATSITE_MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"
# Serve straight from the app's static folders: no collectstatic step in the embedded mode.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# Health checks come from the proxy or a monitor straight to daphne, over plain HTTP
# without X-Forwarded-Proto: they get their answer, not a redirect to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^livez$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "WARNING").strip().upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"DJANGO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}")
# One JSON object per line, for log shippers; otherwise one line of text per record.
LOG_JSON = env_bool("CHATSITE_LOG_JSON", False)
# While Redis is down, one traceback per logger and message per this many seconds; 0: all.
LOG_REDIS_ERRORS_EVERY_SECONDS = env_int("CHATSITE_LOG_REDIS_ERRORS_EVERY_SECONDS", 60)
# chatsite.logging.configure applies LOGGING and also takes over daphne's and Twisted's
# logs, which daphne sets up before Django starts; see that module.
LOGGING_CONFIG = "chatsite.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "chatsite.logging.TextFormatter"},
        "json": {"()": "chatsite.logging.JsonFormatter"},
    },
    "filters": {
        # Ahead of the throttle: every Redis and database failure is counted (/metrics).
        "count_errors": {"()": "rooms.metrics.ErrorCounter"},
        "redis_errors": {"()": "chatsite.logging.RedisErrorThrottle", "seconds": LOG_REDIS_ERRORS_EVERY_SECONDS},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_JSON else "text",
            "filters": ["count_errors", "redis_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's defaults give these handlers of their own (a plain console one when
        # DEBUG is on): everything goes through the root's instead, in one format.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        # Where it listens at start-up and what it dropped at shutdown; the rest of
        # daphne's INFO and DEBUG lines are per request.
        "daphne": {"level": "INFO" if LOG_LEVEL in ("WARNING", "ERROR", "CRITICAL") else LOG_LEVEL},
    },
}

# Chat limits (PROTOCOL.md "Default limits").
CHAT_BODY_MAX_CHARS = env_int("CHAT_BODY_MAX_CHARS", 500, minimum=1)
CHAT_FRAME_MAX_BYTES = env_int("CHAT_FRAME_MAX_BYTES", 8192, minimum=256)
CHAT_HISTORY_FIRST_VISIT = 50
CHAT_HISTORY_RESUME_MAX = 1000
# `sync` replays, per connection: a sustained rate and a burst (paging a long catch-up
# is a burst), and the page a guest gets (signed-in viewers get CHAT_HISTORY_RESUME_MAX).
# Replays are cheap to ask for and dear to serve; these keep a few sockets from taking
# the process's database thread from everyone else.
CHAT_SYNC_PER_SECOND = env_int("CHAT_SYNC_PER_SECOND", 2, minimum=1)
CHAT_SYNC_BURST = env_int("CHAT_SYNC_BURST", 10, minimum=1)
CHAT_SYNC_PAGE_GUEST = env_int("CHAT_SYNC_PAGE_GUEST", 200, minimum=1)
CHAT_SEND_RATE_BURST = (env_int("CHAT_SEND_BURST_COUNT", 5, minimum=1), 5)
CHAT_SEND_RATE_SUSTAINED = (env_int("CHAT_SEND_SUSTAINED_COUNT", 20, minimum=1), 30)
CHAT_MAX_CONNECTIONS_PER_USER = env_int("CHAT_MAX_CONNECTIONS_PER_USER", 50, minimum=1)
CHAT_MAX_CONNECTIONS_PER_IP = env_int("CHAT_MAX_CONNECTIONS_PER_IP", 1000, minimum=1)
# Fan-out: an event that finds its room's feed idle goes out at once; events that arrive
# while a frame is being written to the viewers, or in the pause after it, go out
# together as one batch frame. The pause keeps a room's writing to at most
# CHAT_BATCH_FANOUT_PERCENT of the process's time (after a flush that took 2 ms, 8 ms of
# other work at 20 %), and is at most CHAT_BATCH_WINDOW_MAX_MS, unless the room is so big
# that its writing would then take more than CHAT_BATCH_FANOUT_MAX_PERCENT of the process
# (the rest is for storing, reading and welcoming). So batches grow with the room's size
# and rate, never with a clock.
CHAT_BATCH_WINDOW_MAX_MS = env_int("CHAT_BATCH_WINDOW_MAX_MS", 200, minimum=1)
CHAT_BATCH_FANOUT_PERCENT = env_int("CHAT_BATCH_FANOUT_PERCENT", 20, minimum=1)
CHAT_BATCH_FANOUT_MAX_PERCENT = env_int("CHAT_BATCH_FANOUT_MAX_PERCENT", 60, minimum=1)
# A room's database writes batch the same way: a send that finds the writer idle is
# written at once; the sends arriving while a write is in flight, or in the pause that
# keeps the room's writes to CHAT_WRITE_CPU_PERCENT of the process's CPU, go together.
CHAT_WRITE_CPU_PERCENT = env_int("CHAT_WRITE_CPU_PERCENT", 20, minimum=1)
# A member's send that a room's writer could not store within this long (by what it has
# queued and what its writes cost) is answered `busy` at once rather than queued. The
# host team and staff are never refused.
CHAT_ADMISSION_MS = env_int("CHAT_ADMISSION_MS", 250, minimum=1)
# Automatic slow mode: a room whose members' sends are refused as busy for this many
# seconds in a row gets slow mode (this many seconds between a member's messages) from the
# server itself; it is lifted once the room has had it for at least the minimum and its
# members offer less than a quarter of what it can store. 0 seconds turns it off.
CHAT_AUTO_SLOW_MODE_SECONDS = env_int("CHAT_AUTO_SLOW_MODE_SECONDS", 10, minimum=0)
CHAT_AUTO_SLOW_MODE_AFTER_SECONDS = env_int("CHAT_AUTO_SLOW_MODE_AFTER_SECONDS", 3, minimum=1)
CHAT_AUTO_SLOW_MODE_MIN_SECONDS = env_int("CHAT_AUTO_SLOW_MODE_MIN_SECONDS", 60, minimum=1)
# The readable feed: past this many member messages a second in a room, viewers' live
# feeds leave member messages out (with a count) and keep everything else; the log and
# sync keep everything. 0 turns it off.
CHAT_READABLE_MESSAGES_PER_SECOND = env_int("CHAT_READABLE_MESSAGES_PER_SECOND", 20, minimum=0)
# Frames a viewer may have waiting before it is told to resync from the log (4409).
CHAT_VIEWER_QUEUE_MAX = env_int("CHAT_VIEWER_QUEUE_MAX", 1000, minimum=1)
# Presence: how often each process refreshes its connections, and when a connection
# whose process stopped refreshing it is dropped from the roster.
CHAT_PRESENCE_BEAT_SECONDS = env_int("CHAT_PRESENCE_BEAT_SECONDS", 10, minimum=1)
CHAT_PRESENCE_TTL_SECONDS = env_int("CHAT_PRESENCE_TTL_SECONDS", 30, minimum=2)
CHAT_PRESENCE_COALESCE_MS = env_int("CHAT_PRESENCE_COALESCE_MS", 250, minimum=0)
# Tips: the largest single tip, and how long a tip stays pinned by amount
# (amount at least N coins: pinned S seconds; 0 means highlighted but not pinned).
CHAT_TIP_MAX = env_int("CHAT_TIP_MAX", 100_000, minimum=1)
CHAT_TIP_HIGHLIGHT_MIN = 10
CHAT_TIP_PIN_TIERS = [(1000, 1800), (500, 600), (100, 120), (50, 60)]
CHAT_GRANT_MAX = 10_000_000
# Announcements stay pinned at the top of the room for this long.
CHAT_NOTICE_PIN_SECONDS = env_int("CHAT_NOTICE_PIN_SECONDS", 120)
# Rooms with fewer viewers than this show a line for everyone who joins; bigger rooms
# only for the host team.
CHAT_JOIN_LINES_MAX_VIEWERS = env_int("CHAT_JOIN_LINES_MAX_VIEWERS", 50)
# Any client command, per connection: sustained rate and burst; after this many refused
# commands in a row-ish (each accepted one forgives one) the connection is closed 4429.
CHAT_COMMANDS_PER_SECOND = env_int("CHAT_COMMANDS_PER_SECOND", 10, minimum=1)
CHAT_COMMANDS_BURST = env_int("CHAT_COMMANDS_BURST", 40, minimum=1)
CHAT_FLOOD_STRIKES = env_int("CHAT_FLOOD_STRIKES", 50, minimum=1)
# The host team runs bots and fast hands: their connections get this many times the budget.
CHAT_TEAM_COMMAND_MULTIPLIER = env_int("CHAT_TEAM_COMMAND_MULTIPLIER", 5, minimum=1)
# Room emotes (rooms/emotes.py): an upload is refused past this many bytes, or past this
# many pixels on either side.
CHAT_EMOTE_MAX_BYTES = env_int("CHAT_EMOTE_MAX_BYTES", 256 * 1024, minimum=1)
CHAT_EMOTE_MAX_SIDE = env_int("CHAT_EMOTE_MAX_SIDE", 256, minimum=1)
# Who may embed the read-only overlay (/rooms/<slug>/overlay/) in a frame: the CSP
# frame-ancestors sources, space-separated. Every other page may not be framed at all.
CHAT_OVERLAY_FRAME_ANCESTORS = " ".join(env_str("CHAT_OVERLAY_FRAME_ANCESTORS", "*").split()) or "*"
if any(char in CHAT_OVERLAY_FRAME_ANCESTORS for char in ";,"):
    # A `;` would end the directive and start another one in the policy.
    raise ImproperlyConfigured(
        "CHAT_OVERLAY_FRAME_ANCESTORS is CSP sources separated by spaces (e.g. `'self' https://studio.example.com`), "
        f"not {CHAT_OVERLAY_FRAME_ANCESTORS!r}"
    )

# Who may read GET /metrics: addresses and networks, compared with the TCP peer of a
# request that came straight to the process (rooms.metrics.scrape_allowed).
CHAT_METRICS_ALLOW = ip_networks("CHAT_METRICS_ALLOW", env_list("CHAT_METRICS_ALLOW", ["127.0.0.1", "::1"]))
# On SIGTERM a process closes its viewers (1012) spread evenly over this many seconds,
# so that they come back on the other processes a few at a time, then exits
# (rooms/delivery/drain.py). 0 closes them all at once.
CHAT_DRAIN_SECONDS = env_int("CHAT_DRAIN_SECONDS", 10, minimum=0)
