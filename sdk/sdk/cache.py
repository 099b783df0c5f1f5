"""JWKS cache (sdk.md §7) and the small TTL/LRU map used by the middlewares."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Generic, Hashable, TypeVar

from .types import JWKS

__all__ = ["JWKSCacheManager", "SyncJWKSCacheManager", "TTLCache"]

V = TypeVar("V")


class TTLCache(Generic[V]):
    """LRU map whose entries carry their own expiry (monotonic seconds)."""

    def __init__(self, maxsize: int, now: Callable[[], float] = time.monotonic) -> None:
        self.maxsize = max(0, int(maxsize))
        self._now = now
        self._data: "OrderedDict[Hashable, tuple[float, V]]" = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires_at, value = item
        if self._now() >= expires_at:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def set(self, key: Hashable, value: V, ttl: float) -> None:
        if self.maxsize <= 0 or ttl <= 0:
            return
        self._data[key] = (self._now() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


class JWKSCacheManager:
    """Caches authd's JWKS for `ttl_seconds` (default 300).

    Compatible defaults (1.5.2): a cold or stale cache is refreshed under one
    lock (single-flight); `force_refresh=True` always fetches; a failed fetch
    raises and no stale value is served.

    Improvements, all off by default:

    * `get_jwks(force_refresh=True, seen_generation=g)`: when the key set has
      already been replaced since generation `g` (the one the caller verified
      against), the newer set is returned without another fetch, so N
      concurrent unknown-kid requests cause one fetch.
    * `min_refresh_interval_seconds`: minimum time between two *forced*
      fetches; during the cooldown a forced call returns the cached set.
    * `stale_if_error_seconds`: while authd is unreachable, keep serving the
      last good set for this long after it expired (3600 recommended).
    * `refresh_ahead=True`: refresh in the background once less than 10 % of
      the TTL remains.
    """

    def __init__(self, auth_client: Any, ttl_seconds: int = 300,
                 now: Callable[[], float] | None = None, *,
                 min_refresh_interval_seconds: float = 0,
                 stale_if_error_seconds: float = 0,
                 refresh_ahead: bool = False) -> None:
        self.auth_client = auth_client
        self.ttl_seconds = ttl_seconds
        self.min_refresh_interval_seconds = min_refresh_interval_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        self.refresh_ahead = refresh_ahead
        self._now = now or time.monotonic
        self._value: JWKS | None = None
        self._expires_at = 0.0
        self._generation = 0
        self._last_forced_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None
        self._ahead_task: asyncio.Task | None = None

    @property
    def generation(self) -> int:
        """Incremented every time a new key set is stored."""
        return self._generation

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock

    def _store(self, value: JWKS) -> JWKS:
        self._value = value
        self._expires_at = self._now() + self.ttl_seconds
        self._generation += 1
        return value

    async def _fetch(self) -> JWKS:
        try:
            value = await self.auth_client.fetch_jwks()
        except Exception:
            if (self.stale_if_error_seconds > 0 and self._value is not None
                    and self._now() < self._expires_at + self.stale_if_error_seconds):
                return self._value
            raise
        return self._store(value)

    def _maybe_refresh_ahead(self) -> None:
        if not self.refresh_ahead or self._ahead_task is not None:
            return
        if self._expires_at - self._now() >= 0.1 * self.ttl_seconds:
            return

        async def run() -> None:
            try:
                async with self._get_lock():
                    if self._expires_at - self._now() < 0.1 * self.ttl_seconds:
                        await self._fetch()
            except Exception:
                pass
            finally:
                self._ahead_task = None

        self._ahead_task = asyncio.get_running_loop().create_task(run())

    async def get_jwks(self, force_refresh: bool = False,
                       seen_generation: int | None = None) -> JWKS:
        if not force_refresh and self._value is not None and self._now() < self._expires_at:
            self._maybe_refresh_ahead()
            return self._value
        async with self._get_lock():
            if force_refresh:
                if (seen_generation is not None and self._value is not None
                        and self._generation != seen_generation):
                    return self._value
                now = self._now()
                if (self.min_refresh_interval_seconds > 0 and self._value is not None
                        and self._last_forced_at is not None
                        and now - self._last_forced_at < self.min_refresh_interval_seconds):
                    return self._value
                self._last_forced_at = now
                return await self._fetch()
            if self._value is not None and self._now() < self._expires_at:
                return self._value
            return await self._fetch()


class SyncJWKSCacheManager:
    """Thread-safe blocking twin of `JWKSCacheManager` (same options)."""

    def __init__(self, auth_client: Any, ttl_seconds: int = 300,
                 now: Callable[[], float] | None = None, *,
                 min_refresh_interval_seconds: float = 0,
                 stale_if_error_seconds: float = 0) -> None:
        self.auth_client = auth_client
        self.ttl_seconds = ttl_seconds
        self.min_refresh_interval_seconds = min_refresh_interval_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        self._now = now or time.monotonic
        self._value: JWKS | None = None
        self._expires_at = 0.0
        self._generation = 0
        self._last_forced_at: float | None = None
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        return self._generation

    def _fetch(self) -> JWKS:
        try:
            value = self.auth_client.fetch_jwks()
        except Exception:
            if (self.stale_if_error_seconds > 0 and self._value is not None
                    and self._now() < self._expires_at + self.stale_if_error_seconds):
                return self._value
            raise
        self._value = value
        self._expires_at = self._now() + self.ttl_seconds
        self._generation += 1
        return value

    def get_jwks(self, force_refresh: bool = False, seen_generation: int | None = None) -> JWKS:
        if not force_refresh and self._value is not None and self._now() < self._expires_at:
            return self._value
        with self._lock:
            if force_refresh:
                if (seen_generation is not None and self._value is not None
                        and self._generation != seen_generation):
                    return self._value
                now = self._now()
                if (self.min_refresh_interval_seconds > 0 and self._value is not None
                        and self._last_forced_at is not None
                        and now - self._last_forced_at < self.min_refresh_interval_seconds):
                    return self._value
                self._last_forced_at = now
                return self._fetch()
            if self._value is not None and self._now() < self._expires_at:
                return self._value
            return self._fetch()


async def single_flight(inflight: dict, key: Hashable,
                        factory: Callable[[], Awaitable[V]]) -> V:
    """Runs `factory()` once for concurrent callers with the same key."""
    fut = inflight.get(key)
    if fut is not None:
        return await asyncio.shield(fut)
    fut = asyncio.get_running_loop().create_future()
    inflight[key] = fut
    try:
        result = await factory()
    except BaseException as exc:
        if not fut.done():
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved
        raise
    else:
        fut.set_result(result)
        return result
    finally:
        inflight.pop(key, None)
