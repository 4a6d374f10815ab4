"""Batches: input order, bounded concurrency, per-item errors; the async client's batch."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from client_fakes import FakeTransport, ensemble_outputs, fake_client, one_face

from deepfake_client import (
    NO_RETRY,
    AsyncDeepfakeClient,
    DetectionResult,
    InvalidImageError,
    InvalidInputError,
    OverloadedError,
    UntrainedModelsWarning,
)
from deepfake_client.concurrency import AdaptiveLimit, bounded_map
from deepfake_client.retry import RetryPolicy


def by_number(image: bytes):
    """b"img-7" scores 0.07, after a delay that makes later items finish first."""
    number = int(image.decode().split("-")[1])
    time.sleep(0.002 * (20 - number))
    return one_face(number / 100)


def test_results_come_back_in_input_order_despite_completion_order():
    transport = FakeTransport(by_number)
    images = [f"img-{i}".encode() for i in range(20)]
    completed = []
    with fake_client(transport, concurrency=4) as client:
        results = client.detect_many(images, on_result=lambda position, _: completed.append(position))

    assert [r.fake_probability for r in results] == pytest.approx([i / 100 for i in range(20)])
    assert sorted(completed) == list(range(20)) and completed != list(range(20))
    assert 1 < transport.max_in_flight <= 4


def test_errors_are_per_item_and_do_not_sink_the_batch(tmp_path):
    def respond(image: bytes):
        if image == b"corrupt":
            raise InvalidImageError("the server rejected the input: not an image")
        return one_face(0.9)

    with fake_client(FakeTransport(respond)) as client:
        outcomes = client.detect_many([b"ok", tmp_path / "missing.jpg", b"corrupt", b"ok"])

    assert isinstance(outcomes[0], DetectionResult) and outcomes[0].is_fake
    assert isinstance(outcomes[1], InvalidInputError) and "not found" in str(outcomes[1])
    assert isinstance(outcomes[2], InvalidImageError) and "not an image" in str(outcomes[2])
    assert isinstance(outcomes[3], DetectionResult)


def test_bounded_map_pulls_items_lazily():
    pulled = []

    def items():
        for i in range(10):
            pulled.append(i)
            yield i

    def slow_square(x: int) -> int:
        time.sleep(0.01)
        return x * x

    iterator = bounded_map(slow_square, items(), concurrency=2)
    first = next(iterator)
    assert len(pulled) == 2  # only as many as can be in flight
    outcomes = [first, *iterator]
    assert sorted(outcomes) == [(i, i * i) for i in range(10)]
    assert len(pulled) == 10


def test_bounded_map_refuses_zero_concurrency():
    with pytest.raises(InvalidInputError, match="concurrency"):
        list(bounded_map(str, [1], concurrency=0))


def test_untrained_weights_warn_once_per_client():
    transport = FakeTransport(lambda _: ensemble_outputs([[0.5] * 4], untrained=(True, True, False, False)))
    with fake_client(transport) as client, pytest.warns(UntrainedModelsWarning, match="xception, efficientnet_b4"):
        result = client.detect(b"x")
        client.detect(b"y")
    assert result.untrained_models == ("xception", "efficientnet_b4")


def test_async_batch_keeps_order_bounds_concurrency_and_isolates_errors():
    def respond(image: bytes):
        number = int(image.decode().split("-")[1])
        time.sleep(0.002 * (10 - number))
        if number == 3:
            raise InvalidImageError("the server rejected the input: not an image")
        return one_face(number / 10)

    transport = FakeTransport(respond)
    seen = []

    async def run():
        loop_thread = threading.get_ident()

        def on_result(position, outcome):
            seen.append((position, threading.get_ident() == loop_thread))

        async with AsyncDeepfakeClient("localhost:1", transport=transport, concurrency=3) as client:
            return await client.detect_many([f"img-{i}".encode() for i in range(10)], on_result=on_result)

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[3], InvalidImageError)
    assert [o.fake_probability for i, o in enumerate(outcomes) if i != 3] == pytest.approx(
        [i / 10 for i in range(10) if i != 3]
    )
    assert 1 < transport.max_in_flight <= 3
    assert sorted(position for position, _ in seen) == list(range(10))
    assert all(on_loop for _, on_loop in seen)  # callbacks run on the event loop
    assert transport.closed


def test_the_fan_out_backs_off_and_retries_overload_refusals_a_single_detect_does_not():
    """Batches and videos are the SDK's own load: a queue refusal is retried with backoff,
    within a budget; one detect() call reports it at once (client/README.md)."""
    refusals = {"left": 3}

    def respond(_image: bytes):
        if refusals["left"]:
            refusals["left"] -= 1
            raise OverloadedError("the server is overloaded, retry later: Request timeout expired")
        return ensemble_outputs([[0.5] * 4])

    with fake_client(FakeTransport(respond)) as client:
        (outcome,) = client.detect_many([b"img"], concurrency=1)
        assert isinstance(outcome, DetectionResult) and refusals["left"] == 0
        refusals["left"] = 1
        with pytest.raises(OverloadedError):
            client.detect(b"img")
    with fake_client(FakeTransport(respond), retry=NO_RETRY) as client:  # load tests count refusals
        refusals["left"] = 1
        (outcome,) = client.detect_many([b"img"], concurrency=1)
        assert isinstance(outcome, OverloadedError)


def test_the_fan_out_slows_to_what_the_server_can_take():
    """A server that takes 2 requests at a time and refuses the rest: a batch of 8 in flight
    falls back (AdaptiveLimit) instead of spending its retry budget on refusals."""
    refused = []

    def respond(_image: bytes):
        if transport.in_flight > 2:
            refused.append(1)
            raise OverloadedError("the server is overloaded, retry later: Exceeds maximum queue size")
        time.sleep(0.01)
        return ensemble_outputs([[0.5] * 4])

    transport = FakeTransport(respond)
    retry = RetryPolicy(initial_backoff_s=0.001, max_backoff_s=0.004)
    with fake_client(transport, retry=retry) as client:
        outcomes = client.detect_many([b"img"] * 60, concurrency=8)
    assert all(isinstance(o, DetectionResult) for o in outcomes), [str(o) for o in outcomes]
    # Probing upwards costs a refusal now and then (~20 here); blind retries at 8 in flight
    # cost ~360, and 40 of the 60 images then fail with their budget spent.
    assert len(refused) < 40, len(refused)


def test_the_adaptive_limit_halves_on_a_refusal_and_grows_by_one_after_a_full_window():
    limit = AdaptiveLimit(8)

    def refuse():
        raise OverloadedError("overloaded")

    for expected in (4, 2, 1, 1):
        with pytest.raises(OverloadedError):
            limit.call(refuse)
        assert limit.limit == expected
    assert [limit.call(lambda n=n: n) for n in range(3)] == [0, 1, 2] and limit.limit == 3  # 1 → 2 → 3
    with pytest.raises(ValueError):
        limit.call(lambda: (_ for _ in ()).throw(ValueError("a bug")))
    assert limit.limit == 3  # other errors say nothing about the server's load
    with pytest.raises(InvalidInputError):
        AdaptiveLimit(0)
