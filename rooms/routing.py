from django.urls import path

from rooms.consumers import RoomConsumer
from rooms.middleware import SessionUserMiddleware
from rooms.sse import RoomStream

websocket_urlpatterns = [
    path("ws/rooms/<slug:slug>/", RoomConsumer.as_asgi()),
]

http_urlpatterns = [
    # The session and the user read in one hop, as for a socket (no Origin check: a
    # stream changes nothing, and another site's page cannot read it without CORS).
    path("rooms/<slug:slug>/stream", SessionUserMiddleware(RoomStream.as_asgi())),
]
