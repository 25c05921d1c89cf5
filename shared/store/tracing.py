"""Spans around every store call, for all backends at once.

The factory wraps each store so that ``logstore.search`` or
``metastore.get_user`` show up inside the request's trace next to the Redis
and HTTP spans, whichever backend is configured.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from opentelemetry import trace

T = TypeVar("T")


class _TracedStore:
    """Delegates to the wrapped store, timing each coroutine method in a client span."""

    def __init__(self, inner: Any, *, kind: str, system: str, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer
        self._kind = kind
        self._system = system
        self._wrapped: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute
        wrapper = self._wrapped.get(name)
        if wrapper is None:
            span_name = f"{self._kind}.{name}"
            system = self._system

            @functools.wraps(attribute)
            async def traced(*args: Any, **kwargs: Any) -> Any:
                # Look the method up again so a store that replaces bound methods still works.
                method = getattr(self._inner, name)
                with self._tracer.start_as_current_span(
                    span_name, kind=trace.SpanKind.CLIENT, attributes={"db.system": system}
                ):
                    return await method(*args, **kwargs)

            wrapper = self._wrapped[name] = traced
        return wrapper

    @property
    def wrapped(self) -> Any:
        """The backend behind the spans."""
        return self._inner


def traced(store: T, *, kind: str, system: str, tracer: trace.Tracer | None = None) -> T:
    """``store`` with a span around each of its coroutine methods (global tracer unless given)."""
    return cast(T, _TracedStore(store, kind=kind, system=system, tracer=tracer or trace.get_tracer("logwarden.store")))
