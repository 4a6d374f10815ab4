"""Error mapping from tritonclient's exceptions, and the retry policy."""

from __future__ import annotations

import asyncio
import socket

import pytest
from client_fakes import FakeTransport, fake_client, one_face
from tritonclient.utils import InferenceServerException

from deepfake_client import (
    NO_RETRY,
    AsyncDeepfakeClient,
    DeepfakeClient,
    DeepfakeError,
    InvalidImageError,
    InvalidInputError,
    ModelNotReadyError,
    OverloadedError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    ServerUnavailableError,
)
from deepfake_client.errors import from_transport_exception, from_triton_exception
from deepfake_client.retry import call_with_retry

# (status, message) pairs as Triton 2.51 sends them, measured with tritonclient 2.73 over
# gRPC ("StatusCode.X") and HTTP (the HTTP status code), and the SDK error each must become.
CASES = [
    ("StatusCode.INVALID_ARGUMENT", "in ensemble 'deepfake_detector', not an image", InvalidImageError),
    ("400", "in ensemble 'deepfake_detector', not an image", InvalidImageError),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses; Connection refused", ServerUnavailableError),
    ("503", "server is shutting down", ServerUnavailableError),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", RequestTimeoutError),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'nope' is not found", ModelNotReadyError),
    ("404", "Request for unknown model: 'nope' is not found", ModelNotReadyError),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' has no available versions", ModelNotReadyError),
    ("StatusCode.UNAVAILABLE", "Request for unknown model: 'x' version 1 is not at ready state", ModelNotReadyError),
    # Refusals by a queue policy (max_queue_size; default_timeout_microseconds with REJECT), directly
    # and through an ensemble: measured against tritonserver 2.51 (test_client_overload.py checks them live).
    ("StatusCode.UNAVAILABLE", "[request id: <id_unknown>] Exceeds maximum queue size", OverloadedError),
    ("503", "[request id: <id_unknown>] Exceeds maximum queue size", OverloadedError),
    ("StatusCode.UNAVAILABLE", "in ensemble 'ens', [request id: <id_unknown>] Exceeds maximum queue size",
     OverloadedError),
    ("503", "in ensemble 'ens', [request id: <id_unknown>] Exceeds maximum queue size", OverloadedError),
    ("StatusCode.UNAVAILABLE", "Request timeout expired", OverloadedError),
    ("503", "Request timeout expired", OverloadedError),
    ("StatusCode.INTERNAL", "Exceeds maximum queue size", ServerError),  # only UNAVAILABLE/503 is a refusal
    ("StatusCode.INTERNAL", "Failed to process the request(s) for model instance", ServerError),
    ("500", "Failed to process the request(s)", ServerError),
    (None, "something odd", ServerError),
]


@pytest.mark.parametrize("status, message, expected", CASES)
def test_triton_exceptions_map_to_sdk_errors(status, message, expected):
    error = from_triton_exception(InferenceServerException(message, status=status), "deepfake_detector")
    assert type(error) is expected
    assert isinstance(error, DeepfakeError)
    assert message in str(error)  # the server's explanation reaches the user
    assert error.status == (status or "")


def test_sdk_errors_are_also_the_matching_builtin_errors():
    assert issubclass(InvalidImageError, ValueError)
    assert issubclass(ServerUnavailableError, ConnectionError)
    assert issubclass(RequestTimeoutError, TimeoutError)
    # An overload refusal is a kind of "unavailable", so handlers of the latter still see it.
    assert issubclass(OverloadedError, ServerUnavailableError)


@pytest.mark.parametrize(
    "exception, expected",
    [
        (ConnectionRefusedError(111, "Connection refused"), ServerUnavailableError),
        (ConnectionResetError(104, "reset by peer"), ServerUnavailableError),
        (socket.gaierror(-2, "Name or service not known"), ServerUnavailableError),
        (TimeoutError("timed out"), RequestTimeoutError),
        (asyncio.TimeoutError(), RequestTimeoutError),
    ],
)
def test_network_exceptions_map_to_sdk_errors(exception, expected):
    error = from_transport_exception(exception, "host:8000", 2.5)
    assert type(error) is expected and "host:8000" in str(error)


def test_other_exceptions_are_not_swallowed():
    assert from_transport_exception(KeyError("bug"), "host:8000", 1.0) is None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_closed_port_is_server_unavailable(protocol, tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8 not really a jpeg")
    with DeepfakeClient(f"127.0.0.1:{closed_port()}", protocol=protocol, retry=NO_RETRY, timeout_s=5) as client:
        with pytest.raises(ServerUnavailableError, match="127.0.0.1"):
            client.detect(image)
        health = client.health()
    assert not health.live and not health.ready


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_closed_port_is_server_unavailable_async(protocol):
    async def run():
        async with AsyncDeepfakeClient(f"127.0.0.1:{closed_port()}", protocol=protocol, retry=NO_RETRY) as client:
            with pytest.raises(ServerUnavailableError):
                await client.detect(b"bytes")
            return await client.health()

    assert not asyncio.run(run()).live


# Retry policy


def test_backoff_grows_exponentially_up_to_the_cap():
    policy = RetryPolicy(max_attempts=6, initial_backoff_s=0.1, multiplier=3, max_backoff_s=1.0)
    assert list(policy.backoffs()) == pytest.approx([0.1, 0.3, 0.9, 1.0, 1.0])
    assert list(NO_RETRY.backoffs()) == []


@pytest.mark.parametrize("bad", [dict(max_attempts=0), dict(initial_backoff_s=-1), dict(multiplier=0.5)])
def test_retry_policy_rejects_nonsense(bad):
    with pytest.raises(InvalidInputError):
        RetryPolicy(**bad)


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_unavailable_is_retried_with_backoff_until_it_succeeds():
    waits = []
    flaky = Flaky(ServerUnavailableError("down"), ServerUnavailableError("down"))
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.5, multiplier=2)
    assert call_with_retry(flaky, policy, sleep=waits.append) == "ok"
    assert flaky.calls == 3 and waits == [0.5, 1.0]


def test_retries_stop_after_max_attempts_with_the_last_error():
    waits = []
    flaky = Flaky(*[ServerUnavailableError(f"down {i}") for i in range(5)])
    with pytest.raises(ServerUnavailableError, match="down 2"):
        call_with_retry(flaky, RetryPolicy(max_attempts=3, initial_backoff_s=0.1), sleep=waits.append)
    assert flaky.calls == 3 and waits == [0.1, 0.2]


@pytest.mark.parametrize(
    "error",
    [InvalidImageError("bad image"), RequestTimeoutError("slow"), ModelNotReadyError("no model"), ServerError("x")],
)
def test_nothing_but_unavailable_is_retried(error):
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        call_with_retry(flaky, RetryPolicy(max_attempts=5), sleep=lambda _: None)
    assert flaky.calls == 1


def test_overloaded_is_not_retried_by_default():
    flaky = Flaky(OverloadedError("queue full"))
    with pytest.raises(OverloadedError):
        call_with_retry(flaky, RetryPolicy(max_attempts=5), sleep=lambda _: pytest.fail("slept"))
    assert flaky.calls == 1


def test_overloaded_is_retried_with_jittered_backoff_within_its_own_budget():
    waits, drawn = [], []

    def jitter(backoff: float) -> float:
        drawn.append(backoff)
        return backoff / 3  # stands for a uniform draw in [0, backoff]

    flaky = Flaky(*[OverloadedError(f"full {i}") for i in range(5)])
    policy = RetryPolicy(max_attempts=2, overloaded_attempts=3, initial_backoff_s=0.3, multiplier=2)
    with pytest.raises(OverloadedError, match="full 2"):
        call_with_retry(flaky, policy, sleep=waits.append, jitter=jitter)
    assert flaky.calls == 3
    assert drawn == pytest.approx([0.3, 0.6]) and waits == pytest.approx([0.1, 0.2])


def test_the_default_jitter_waits_at_most_the_backoff():
    waits = []
    flaky = Flaky(*[OverloadedError("full")] * 40)
    with pytest.raises(OverloadedError):
        call_with_retry(flaky, RetryPolicy(overloaded_attempts=40, initial_backoff_s=0.5, max_backoff_s=0.5),
                        sleep=waits.append)
    assert len(waits) == 39 and all(0 <= w <= 0.5 for w in waits)
    assert len(set(waits)) > 1  # drawn, not a fixed wait


def test_unavailable_and_overloaded_budgets_are_separate():
    waits = []
    flaky = Flaky(ServerUnavailableError("down"), OverloadedError("full"), ServerUnavailableError("down"))
    policy = RetryPolicy(max_attempts=3, overloaded_attempts=2, initial_backoff_s=0.1)
    assert call_with_retry(flaky, policy, sleep=waits.append, jitter=lambda b: b) == "ok"
    assert flaky.calls == 4 and waits == pytest.approx([0.1, 0.1, 0.2])


def test_retry_policy_rejects_no_overloaded_attempts():
    with pytest.raises(InvalidInputError):
        RetryPolicy(overloaded_attempts=0)


def test_the_client_retries_an_unavailable_server_and_not_a_bad_image():
    attempts = {"n": 0}

    def respond(image: bytes):
        attempts["n"] += 1
        if image == b"bad":
            raise InvalidImageError("the server rejected the input: not an image")
        if attempts["n"] < 3:
            raise ServerUnavailableError("restarting")
        return one_face(0.9)

    client = fake_client(FakeTransport(respond), retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.001))
    assert client.detect(b"good").is_fake and attempts["n"] == 3
    with pytest.raises(InvalidImageError, match="not an image"):
        client.detect(b"bad")
    assert attempts["n"] == 4
