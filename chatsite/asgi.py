"""ASGI entry point: HTTP through Django, WebSockets through the room consumer, and a
room's server-sent-events stream through its own app (rooms.sse)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models (the consumer does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from rooms.delivery import drain  # noqa: E402
from rooms.delivery.transport import (  # noqa: E402
    defer_handshake_logging,
    drain_on_sigterm,
    spread_connection_checks,
)
from rooms.metrics import MetricsEndpoint  # noqa: E402
from rooms.middleware import OriginCheckMiddleware, SessionUserMiddleware  # noqa: E402
from rooms.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # GET /metrics to CHAT_METRICS_ALLOW, answered before Django; a room's stream stays
        # open for as long as the viewer watches: it is a viewer of the room's hub, not a
        # Django view (rooms.sse). Everything else is Django's.
        "http": MetricsEndpoint(URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)])),
        # A handshake from anywhere but the site's own origins (scheme, host and port) is
        # refused with 403: no cross-site hijacking.
        "websocket": OriginCheckMiddleware(SessionUserMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Under daphne, SIGTERM closes the viewers a few at a time (1012) and flushes the room
# writers before the process exits (docs/deploy.md, "Stopping a process").
drain_on_sigterm(drain.drain)
# Under daphne, its checks of every connection (timeouts, WebSocket pings) every 2 s run
# a slice at a time rather than holding every room's frames for a whole pass.
spread_connection_checks()
# Autobahn formats each handshake's options for a debug line: only when it is written.
defer_handshake_logging()

# A full garbage collection walks every tracked object, and each open connection holds
# ~140 of them (its middleware coroutines, tasks, protocol objects): with thousands of
# viewers one pass stops the event loop for half a second, and every room's frames with
# it. The code and data loaded at startup never become garbage: freezing them takes
# them out of every later pass. A larger first threshold makes collections rarer.
gc.freeze()
gc.set_threshold(50_000, 20, 100)
