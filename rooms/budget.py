"""A connection's budget for commands: a token bucket."""

from __future__ import annotations

import time


class CommandBudget:
    """Commands of any kind, per connection. A client that keeps hitting the bottom is
    flooding and gets closed; one that bumps it gets errors."""

    __slots__ = ("rate", "burst", "strikes_to_close", "tokens", "updated", "strikes")

    def __init__(self, *, rate: float, burst: int, strikes_to_close: int) -> None:
        self.rate, self.burst, self.strikes_to_close = rate, burst, strikes_to_close
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.strikes = 0

    def take(self) -> float | None:
        """None if the command may run, else seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.strikes = max(0, self.strikes - 1)
            return None
        self.strikes += 1
        return (1 - self.tokens) / self.rate

    def rescale(self, *, rate: float, burst: int) -> None:
        """Take a new rate and burst (the viewer joined or left the host team)."""
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, float(burst))

    @property
    def flooding(self) -> bool:
        return self.strikes >= self.strikes_to_close
