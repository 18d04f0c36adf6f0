"""Micro benchmarks of shm's hot operations, each beside a baseline.

Groups (one pytest-benchmark table each):

    table-get      Table.get hit and miss, beside dict.get on the same data
    table-put      Table.put over an existing key, beside dict item assignment
    ring-push      Ring.push of a click-sized record, beside multiprocessing
                   Queue.put of the same bytes, enqueue only (no consumer:
                   see workload.py)
    ring-pop       peek + advance in batches; per-record figure at the end
    ring-delivery  rounds of records handed to a consumer process, through
                   a Ring and through a Queue (see delivery.py); per-record
                   figures at the end

The bars (get hit and push at or under 1 us median; delivery through the
ring at least 10x cheaper per record than through a Queue, and push at
least 10x faster than Queue.put) are read off these tables, not asserted:
timing depends on the machine. See benchmarks/README.md. The assertions
here only check that each benchmark measured what it claims (a hit hit, no
push met a full ring, every record arrived), and hold with
--benchmark-disable too, where every function runs once as a smoke test.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.queues import Queue

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import delivery, workload
from shm import Ring, Table


@pytest.mark.benchmark(group="table-get")
def test_table_get_hit(
    benchmark: BenchmarkFixture, table: Table, entries: dict[bytes, bytes]
) -> None:
    value = benchmark(table.get, workload.HIT_KEY)
    assert value == entries[workload.HIT_KEY]


@pytest.mark.benchmark(group="table-get")
def test_table_get_miss(benchmark: BenchmarkFixture, table: Table) -> None:
    assert benchmark(table.get, workload.MISS_KEY) is None


@pytest.mark.benchmark(group="table-get")
def test_baseline_dict_get_hit(
    benchmark: BenchmarkFixture, entries: dict[bytes, bytes]
) -> None:
    value = benchmark(entries.get, workload.HIT_KEY)
    assert value == entries[workload.HIT_KEY]


@pytest.mark.benchmark(group="table-put")
def test_table_put_overwrite(benchmark: BenchmarkFixture, table: Table) -> None:
    assert benchmark(table.put, workload.HIT_KEY, workload.VALUE)
    assert table.get(workload.HIT_KEY) == workload.VALUE


@pytest.mark.benchmark(group="table-put")
def test_baseline_dict_set(
    benchmark: BenchmarkFixture, entries: dict[bytes, bytes]
) -> None:
    benchmark(entries.__setitem__, workload.HIT_KEY, workload.VALUE)
    assert entries[workload.HIT_KEY] == workload.VALUE


@pytest.mark.benchmark(group="ring-push")
def test_ring_push(benchmark: BenchmarkFixture, push_ring: Ring) -> None:
    benchmark.pedantic(
        push_ring.push,
        args=(workload.CLICK_RECORD,),
        rounds=workload.PUSH_ROUNDS,
        warmup_rounds=workload.PUSH_WARMUP_ROUNDS,
        iterations=workload.PUSH_ITERATIONS,
    )
    assert push_ring.statistics().drops == 0, "a push met a full ring"


@pytest.mark.benchmark(group="ring-push")
def test_baseline_queue_put_enqueue_only(
    benchmark: BenchmarkFixture, queue: Queue[bytes | None]
) -> None:
    """put() only appends to a deque: the pickling and the pipe write wait."""
    benchmark.pedantic(
        queue.put,
        args=(workload.CLICK_RECORD,),
        rounds=workload.PUSH_ROUNDS,
        warmup_rounds=workload.PUSH_WARMUP_ROUNDS,
        iterations=workload.PUSH_ITERATIONS,
    )


@pytest.mark.benchmark(group="ring-pop")
def test_ring_pop_in_batches(
    benchmark: BenchmarkFixture,
    pop_ring: Ring,
    per_record: Callable[[int], None],
) -> None:
    """One call drains POP_ROUND_RECORDS records, POP_BATCH_RECORDS a peek."""

    def refill() -> None:
        workload.fill(pop_ring, workload.POP_ROUND_RECORDS)

    taken = benchmark.pedantic(
        workload.drain,
        args=(pop_ring, workload.POP_BATCH_RECORDS),
        setup=refill,
        rounds=workload.POP_ROUNDS,
        warmup_rounds=workload.POP_ROUNDS // 10,
    )
    assert taken == workload.POP_ROUND_RECORDS
    per_record(workload.POP_ROUND_RECORDS)


@pytest.mark.benchmark(group="ring-delivery")
def test_ring_delivery(
    benchmark: BenchmarkFixture,
    ring_delivery: delivery.Deliver,
    per_record: Callable[[int], None],
) -> None:
    """One call pushes DELIVERY_RECORDS records and waits for the consumer."""
    _time_delivery(benchmark, ring_delivery, per_record)


@pytest.mark.benchmark(group="ring-delivery")
def test_baseline_queue_delivery(
    benchmark: BenchmarkFixture,
    queue_delivery: delivery.Deliver,
    per_record: Callable[[int], None],
) -> None:
    """One call puts DELIVERY_RECORDS records and waits for the consumer."""
    _time_delivery(benchmark, queue_delivery, per_record)


def _time_delivery(
    benchmark: BenchmarkFixture,
    deliver: delivery.Deliver,
    per_record: Callable[[int], None],
) -> None:
    received = benchmark.pedantic(
        deliver,
        args=(delivery.DELIVERY_RECORDS,),
        rounds=delivery.DELIVERY_ROUNDS,
        warmup_rounds=delivery.DELIVERY_WARMUP_ROUNDS,
    )
    assert received == delivery.DELIVERY_RECORDS, "records were lost"
    per_record(delivery.DELIVERY_RECORDS)
