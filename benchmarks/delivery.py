"""Delivery baselines: records handed to another process, end to end.

A producer's put() or push() returning says little about what it costs to
get a record to another process. multiprocessing.Queue.put() appends to a
local deque and returns; a feeder thread pickles the record and writes it
to a pipe later, and the consumer still has to read and unpickle it.
Ring.push() copies the record into shared memory, where the consumer's
peek() finds it. So delivery is timed in rounds, against a consumer
process (spawned once, serving every round):

    producer                         consumer
    control.send(records) ---------> a round of `records` starts
    put() or push() x records        get(), or peek() + advance(), until
                                     it holds every record of the round
    control.recv()  <--------------- send(records it received)

A round's time, divided by its records, is the delivery cost per record.
It includes the two control messages (about 40 us a round on an idle VM,
2 ns a record at DELIVERY_RECORDS) and, for the queue, the feeder thread's
competition for the producer's GIL, which a real producer pays too. Each
consumer is dedicated and wakes at once: a blocking get() for the queue,
a busy peek() loop for the ring (within a round only; between rounds it
blocks on the control pipe). The ring has the click ring's default
capacity, so a round fits in it and a producer meets a full ring only if
the consumer falls behind, in which case it retries: a delivery must not
drop.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from benchmarks import workload
from shm import Ring

__all__ = [
    "DELIVERY_RECORDS",
    "DELIVERY_ROUNDS",
    "DELIVERY_WARMUP_ROUNDS",
    "Deliver",
    "queue_delivery",
    "ring_delivery",
]

DELIVERY_RECORDS = 20_000
DELIVERY_ROUNDS = 15
DELIVERY_WARMUP_ROUNDS = 2
# The default of CLICK_RING_RECORDS (hyperlinkr/config.py).
DELIVERY_RING_RECORDS = 65_536
_REPLY_TIMEOUT_S = 60.0
_JOIN_TIMEOUT_S = 10.0

Deliver = Callable[[int], int]
"""Deliver `records` records to the consumer; the number it received."""

_spawn = multiprocessing.get_context("spawn")


def _queue_consumer(queue: Queue[bytes], control: Connection) -> None:
    get = queue.get
    control.send(0)  # ready
    while True:
        try:
            records = control.recv()
        except EOFError:  # the producer closed its end: no more rounds
            return
        for _ in range(records):
            get()
        control.send(records)


def _ring_consumer(name: str, control: Connection) -> None:
    ring = Ring.create_or_attach(
        name, DELIVERY_RING_RECORDS, workload.RING_RECORD_BYTES
    )
    peek, advance, batch = ring.peek, ring.advance, workload.POP_BATCH_RECORDS
    try:
        control.send(0)  # ready
        while True:
            try:
                records = control.recv()
            except EOFError:  # the producer closed its end: no more rounds
                return
            taken = 0
            while taken < records:
                got, end = peek(batch)
                if got:
                    advance(end)
                    taken += len(got)
            control.send(taken)
    finally:
        ring.close()


def _reply(control: Connection, consumer: BaseProcess) -> int:
    """The consumer's next report; raise instead of waiting forever."""
    if not control.poll(_REPLY_TIMEOUT_S):
        raise RuntimeError(
            f"delivery consumer {consumer.name} (pid {consumer.pid}) sent "
            f"nothing for {_REPLY_TIMEOUT_S:.0f} s; it is stuck"
        )
    try:
        records: int = control.recv()
    except EOFError as exc:
        consumer.join(_REPLY_TIMEOUT_S)
        raise RuntimeError(
            f"delivery consumer {consumer.name} exited with "
            f"{consumer.exitcode} before reporting (its traceback, if any, is above)"
        ) from exc
    return records


def _push_when_room(push: Callable[[bytes], int], consumer: BaseProcess) -> None:
    """Retry a push a full ring refused, for as long as the consumer lives."""
    while push(workload.CLICK_RECORD) < 0:
        if not consumer.is_alive():
            raise RuntimeError(
                f"delivery consumer {consumer.name} exited with "
                f"{consumer.exitcode} and left the ring full"
            )


@contextmanager
def _consumer(
    target: Callable[..., None], *args: object
) -> Iterator[tuple[Connection, BaseProcess]]:
    """A spawned consumer, ready to serve rounds; stopped and joined on exit."""
    ours, theirs = _spawn.Pipe()
    consumer = _spawn.Process(target=target, args=(*args, theirs), name=target.__name__)
    consumer.start()
    theirs.close()
    try:
        _reply(ours, consumer)
        yield ours, consumer
    finally:
        ours.close()  # the consumer's recv() sees EOF and it returns
        consumer.join(_JOIN_TIMEOUT_S)
        if consumer.exitcode is None:  # stuck mid-round after a failure
            consumer.kill()
            consumer.join()


@contextmanager
def queue_delivery() -> Iterator[Deliver]:
    """Deliver CLICK_RECORDs through a spawn-context multiprocessing.Queue."""
    queue: Queue[bytes] = _spawn.Queue()
    try:
        with _consumer(_queue_consumer, queue) as (control, consumer):

            def deliver(records: int) -> int:
                put, record = queue.put, workload.CLICK_RECORD
                control.send(records)
                for _ in range(records):
                    put(record)
                return _reply(control, consumer)

            yield deliver
    except BaseException:
        # A failed round can leave the feeder blocked on a full pipe.
        queue.cancel_join_thread()
        raise
    finally:
        queue.close()
        queue.join_thread()


@contextmanager
def ring_delivery() -> Iterator[Deliver]:
    """Deliver CLICK_RECORDs through a click-ring-sized Ring."""
    with (
        workload.open_ring(DELIVERY_RING_RECORDS) as ring,
        _consumer(_ring_consumer, ring.name) as (control, consumer),
    ):

        def deliver(records: int) -> int:
            push, record = ring.push, workload.CLICK_RECORD
            control.send(records)
            for _ in range(records):
                if push(record) < 0:  # full: the consumer fell behind
                    _push_when_room(push, consumer)
            return _reply(control, consumer)

        yield deliver
