"""The live delivery path of a server process: room events from the channel layer to
every local viewer's socket, exactly once per viewer.

- `hub`: one per process; subscribes to each watched room once and writes each batch of
  events, encoded once, to every local viewer of the room;
- `stream`: one viewer's place in the room's log (what it has, what it waits for, whom
  it blocked), plain synchronous code with no I/O;
- `transport`: writing frames to a socket. Everything that touches daphne, Twisted or
  Autobahn lives there, behind a small interface with a plain-ASGI fallback.
"""
