"""Lockout after repeated failed sign-ins: console passwords and API keys.

A failure is counted under each identity it came with: the client's address and the
account it named (a username, an API key's prefix), whether or not that account exists,
so the answer tells nothing about which accounts do. An identity that reaches its limit
within the window is refused with a 429 (``too_many_failures``, ``Retry-After``) *before*
the credentials are checked, until the window opened by its first failure ends: guessing
stops rather than only being hidden, and the right password does not get through either.

Counting is a fixed window: the first failure opens it (``cache.add``, which also sets the
expiry), each failure is one atomic ``cache.incr``, so parallel guesses cannot slip under
the limit as they could past a read-modify-write counter. Refused attempts are not
counted, so a lockout lasts at most one window. The counters live in the default cache;
while Redis is down it counts per process (:mod:`api.core.cache`), so lockouts keep
holding, more loosely, and sign-in keeps working.

Per-account limits let someone who knows a username (or a key's prefix) lock its owner
out for one window; the address limit alone would let a spread-out attack guess forever
at one account. The limits are settings (``LOGIN_MAX_FAILURES_PER_*``,
``API_KEY_MAX_FAILURES_PER_*``, ``AUTH_FAILURE_WINDOW_SECONDS``); 0 switches one off.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from api.core.errors import ApplicationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """One kind of identity failures are counted under."""

    setting: str  #: the setting that holds its maximum number of failures per window
    phrase: str  #: how a message names it: "from this address"


@dataclass(frozen=True)
class Lockout:
    """Failure limits of one way of signing in; ``what`` names its failures ("failed logins")."""

    scope: str
    what: str
    identities: dict[str, Identity]

    @property
    def window(self) -> int:
        return int(settings.AUTH_FAILURE_WINDOW_SECONDS)

    def _limit(self, kind: str) -> int:
        return int(getattr(settings, self.identities[kind].setting))

    def _keys(self, kind: str, identity: str) -> tuple[str, str]:
        digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        base = f"lockout:{self.scope}:{kind}:{digest}"
        return base + ":n", base + ":t"

    def _identities(self, identities: dict[str, str | None]) -> list[tuple[str, str, int]]:
        unknown = set(identities) - set(self.identities)
        if unknown:
            raise ValueError(f"{self.scope} counts failures by {sorted(self.identities)}; got {sorted(unknown)}")
        return [(kind, identity, self._limit(kind)) for kind, identity in identities.items()
                if identity and self._limit(kind) > 0]

    def check(self, **identities: str | None) -> None:
        """Raise a 429 :class:`ApplicationError` if any identity has used up its failures."""
        counted = self._identities(identities)
        if not counted:
            return
        keys = {kind: self._keys(kind, identity) for kind, identity, _ in counted}
        stored = cache.get_many([key for pair in keys.values() for key in pair])
        now = time.time()
        for kind, identity, limit in counted:
            count_key, start_key = keys[kind]
            if int(stored.get(count_key) or 0) < limit:
                continue
            wait = max(1, math.ceil(float(stored.get(start_key) or now) + self.window - now))
            logger.info("%s: refused an attempt, %s %r is locked out for %d s more", self.scope, kind, identity,
                        wait)
            raise ApplicationError(
                "too_many_failures",
                f"too many {self.what} {self.identities[kind].phrase} ({limit} within {_duration(self.window)}); "
                f"try again in {_duration(wait)}",
                status_code=429, retry_after=wait,
                detail={"identity": kind, "limit": limit, "window_seconds": self.window},
            )

    def failed(self, **identities: str | None) -> None:
        """Count one failure under each identity."""
        now = time.time()
        for kind, identity, limit in self._identities(identities):
            count_key, start_key = self._keys(kind, identity)
            cache.add(start_key, now, self.window)
            cache.add(count_key, 0, self.window)
            try:
                count = cache.incr(count_key)
            except ValueError:  # expired between add and incr
                cache.set(count_key, count := 1, self.window)
            if count == limit:
                logger.warning("%s: %s %r reached %d %s within %d s; locked out until the window ends",
                               self.scope, kind, identity, limit, self.what, self.window)

    def succeeded(self, **identities: str | None) -> None:
        """Forget the failures of these identities (an account whose owner just signed in)."""
        for kind, identity, _ in self._identities(identities):
            cache.delete_many(list(self._keys(kind, identity)))


def _duration(seconds: int) -> str:
    """``"15 minutes"``, ``"1 minute"``, ``"40 seconds"``: rounded up, as a wait is."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


#: Console (and admin) passwords: by client address and by username.
LOGIN = Lockout("login", "failed logins", {
    "address": Identity("LOGIN_MAX_FAILURES_PER_ADDRESS", "from this address"),
    "account": Identity("LOGIN_MAX_FAILURES_PER_ACCOUNT", "for this username"),
})
#: API keys: by client address and by the key's prefix (the key a caller claims to hold).
API_KEY = Lockout("api_key", "invalid API keys", {
    "address": Identity("API_KEY_MAX_FAILURES_PER_ADDRESS", "from this address"),
    "account": Identity("API_KEY_MAX_FAILURES_PER_KEY", "for this key"),
})


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the address ``TRUSTED_PROXIES`` reverse proxies
    put in ``X-Forwarded-For`` (the one the nearest trusted proxy saw). Without trusted proxies
    the header is ignored: anyone can write it, and a lockout keyed on it would be bypassed."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = int(settings.TRUSTED_PROXIES)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else remote
