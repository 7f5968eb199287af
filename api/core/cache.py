"""The cache backend: Redis, and a per-process memory while Redis cannot be reached.

The cache holds the API's rate-limit counters (DRF's throttle), the failed-sign-in
counters of :mod:`api.core.lockout` and a few cached console figures. Plain Django
``RedisCache`` raises on every call while Redis is down, which turned every
authenticated API call into a 500 (issue 10, defect 6).

Why a local fallback rather than failing open: failing open would switch off the
per-key rate limit and the brute-force lockout exactly while Redis is down, so an
attacker who can wait for (or cause) an outage gets unlimited guesses. With the
fallback every limit keeps holding, counted by each web process on its own (so at
most ``processes x limit`` overall) until Redis answers again; what was counted
locally is then forgotten and Redis's counters apply. Cached figures are recomputed.
The cost is a little memory per process, and a cache that is not shared for the
length of the outage.

A failed call opens a breaker for ``FALLBACK_SECONDS`` (default 5): calls go straight
to memory without trying Redis (no connect attempt and timeout per request), then the
next call tries Redis again. The outage is logged as a warning when it starts (and once
a minute while it lasts), its end as info. Redis's socket timeouts (``OPTIONS``
``socket_connect_timeout`` / ``socket_timeout``, set in settings) bound what one
attempt costs on a Redis host that does not answer at all.
"""
from __future__ import annotations

import functools
import logging
import threading
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

#: What a call raises when Redis is unreachable, times out or refuses the command.
UNAVAILABLE = (RedisError, OSError)


class _Breaker:
    """Per process and per Redis location: Django builds a cache object per thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open_until = 0.0
        self.down_since: float | None = None
        self.warned_at = 0.0


_breakers: dict[str, _Breaker] = {}
_breakers_lock = threading.Lock()


def _breaker(location: str) -> _Breaker:
    with _breakers_lock:
        return _breakers.setdefault(location, _Breaker())


def _falls_back(name: str):
    """``RedisCache.<name>``, or the same call on the memory while Redis is down."""
    @functools.wraps(getattr(RedisCache, name))
    def call(self, *args, **kwargs):
        if not self._breaker_closed():
            return getattr(self._fallback, name)(*args, **kwargs)
        try:
            result = getattr(super(FallbackRedisCache, self), name)(*args, **kwargs)
        except UNAVAILABLE as exc:
            self._redis_failed(exc)
            return getattr(self._fallback, name)(*args, **kwargs)
        self._redis_answered()
        return result

    return call


class FallbackRedisCache(RedisCache):
    """``RedisCache`` whose every call falls back to process memory while Redis is down.

    ``OPTIONS["FALLBACK_SECONDS"]`` (popped before the Redis client sees the options):
    how long a failure sends calls to memory before Redis is tried again.
    """

    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.fallback_seconds = float(options.pop("FALLBACK_SECONDS", 5))
        params["OPTIONS"] = options
        super().__init__(server, params)
        location = server if isinstance(server, str) else ",".join(server)
        self._state = _breaker(location)
        # One memory per process and location (LocMemCache shares its store by name across threads).
        self._fallback = LocMemCache(f"redis-fallback:{location}", {
            "TIMEOUT": params.get("TIMEOUT", 300), "KEY_PREFIX": params.get("KEY_PREFIX", ""),
            "VERSION": params.get("VERSION", 1), "OPTIONS": {"MAX_ENTRIES": 100_000}})

    def _breaker_closed(self) -> bool:
        return time.monotonic() >= self._state.open_until

    def _redis_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        state = self._state
        with state.lock:
            state.open_until = now + self.fallback_seconds
            starting = state.down_since is None
            if starting:
                state.down_since = now
            warn = starting or now - state.warned_at >= 60
            if warn:
                state.warned_at = now
        if warn:
            since = "" if starting else f" (for {now - state.down_since:.0f} s now)"
            logger.warning("the cache (Redis) is unreachable%s: %s: %s; rate limits and sign-in lockouts are "
                           "counted per process until it answers", since, type(exc).__name__, exc)

    def _redis_answered(self) -> None:
        state = self._state
        if state.down_since is None:
            return
        with state.lock:
            down_since, state.down_since = state.down_since, None
        if down_since is not None:
            logger.info("the cache (Redis) answers again after %.0f s", time.monotonic() - down_since)


# Every call that reaches Redis (BaseCache's others, decr or get_or_set, are built on these).
for _name in ("add", "get", "set", "touch", "delete", "get_many", "has_key", "incr", "set_many", "delete_many",
              "clear"):
    setattr(FallbackRedisCache, _name, _falls_back(_name))
del _name
