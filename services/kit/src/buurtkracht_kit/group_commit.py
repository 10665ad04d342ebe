"""Group commit: requests that arrive while a batch is being written go together into the next one.

`await desk.submit(item)` returns what `process` made of that item. Invariants:
- at most one batch of a desk runs at a time, in arrival order; a request waits for at most the batch in
  progress and its own;
- no request waits for a timer: an idle desk starts a batch with the first request at once, so a lone request is
  answered as fast as alone, and under load the batches grow by themselves (to `max_batch`);
- every submitted item gets exactly its own outcome — a result, or an exception raised in its caller — and
  `process` is called with each item once; when `process` itself fails, every item of the batch gets that error;
- a caller that stops waiting (a cancelled request) does not take its item out of a batch already started: the
  item's effects stand, as with any request whose client went away after the commit.

While tracing, a batch of one runs in its caller's trace, as the request would alone (its SQL, its outbox rows); a
larger batch runs in a span of its own, a child of its first caller's span with links to the next callers' (up to
`tracing.MAX_LINKS`), and the events it records carry that span's trace on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import tracing

T = TypeVar("T")
R = TypeVar("R")

Outcome = R | BaseException  # a result, or the exception to raise in the item's caller


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        process: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        max_batch: int = 256,
        observe: Callable[[int], None] = lambda size: None,
    ) -> None:
        """`observe` learns the size of each batch as it starts (a histogram, for operators)."""
        if max_batch < 1:
            raise ValueError("a batch holds at least one item")
        self._process = process
        self._max_batch = max_batch
        self._observe = observe
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._traces: dict[int, otel_context.Context] = {}  # id of a waiting future -> its caller's, while tracing
        self._running: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches ran, and how many items they held: for metrics and tests
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if tracing.enabled():
            self._traces[id(future)] = otel_context.get_current()
        if self._running is None:
            # a context of its own: the batch serves many requests, it logs as none of them
            self._running = asyncio.create_task(self._run(), context=contextvars.Context())
        return await future

    async def _run(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self.batches += 1
                self.items += len(batch)
                self._observe(len(batch))
                try:
                    with self._traced(batch):
                        outcomes = await self._process([item for item, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} got {len(outcomes)} outcomes")
                except Exception as error:  # every caller of the batch learns of it
                    outcomes = [error] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except asyncio.CancelledError:  # the process is stopping: nobody waits in vain
            for _, future in batch + self._waiting:
                future.cancel()
            self._waiting.clear()
            self._traces.clear()
            raise
        finally:
            self._running = None

    @contextlib.contextmanager
    def _traced(self, batch: list[tuple[T, asyncio.Future[R]]]) -> Iterator[None]:
        """The batch in its caller's context (one caller) or in a span linked to every caller's; nothing when off."""
        callers = [self._traces.pop(id(future), None) for _, future in batch]
        if not tracing.enabled() or callers[0] is None:
            yield
            return
        if len(batch) == 1:
            token = otel_context.attach(callers[0])
            try:
                yield
            finally:
                otel_context.detach(token)
            return
        span = tracing.linked_span(callers, f"group commit of {len(batch)}")
        assert span is not None
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            yield
