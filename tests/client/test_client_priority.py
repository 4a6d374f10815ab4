"""Request priority by call kind (issue 17): people first, bulk work behind them; the caller overrides."""

from __future__ import annotations

import asyncio

import pytest
from client_fakes import FakeTransport, fake_client, one_face
from test_client_video import write_video

from deepfake_client import AsyncDeepfakeClient, InvalidImageError, InvalidInputError
from deepfake_client.explain import EXPLAINER_MODEL
from deepfake_contract import PRIORITY_BULK, PRIORITY_INTERACTIVE

DETECTOR = "deepfake_detector"


def levels(transport: FakeTransport) -> set[int]:
    return {priority for _, priority in transport.priorities}


def test_a_single_image_is_interactive_and_a_batch_is_bulk():
    transport = FakeTransport(lambda _: one_face(0.2))
    with fake_client(transport) as client:
        client.detect(b"one")
        assert transport.priorities == [(DETECTOR, PRIORITY_INTERACTIVE)]
        transport.priorities.clear()
        client.detect_many([b"a", b"b", b"c"])
    assert transport.priorities == [(DETECTOR, PRIORITY_BULK)] * 3


def test_a_video_is_bulk_and_a_live_stream_interactive(tmp_path):
    path = write_video(tmp_path / "v.mp4", 6)
    transport = FakeTransport(lambda _: one_face(0.2))
    with fake_client(transport) as client:
        client.detect_video(path, num_frames=6)
        assert levels(transport) == {PRIORITY_BULK} and len(transport.priorities) == 6
        transport.priorities.clear()
        list(client.stream(path, realtime=False))
    assert levels(transport) == {PRIORITY_INTERACTIVE}


def test_an_explanation_is_interactive():
    def refuse(_):
        raise InvalidImageError("the server rejected the input: not an image")

    transport = FakeTransport(refuse)
    with fake_client(transport) as client, pytest.raises(InvalidImageError):
        client.explain(b"x")
    assert transport.priorities == [(EXPLAINER_MODEL, PRIORITY_INTERACTIVE)]


def test_the_call_overrides_the_client_which_overrides_the_kind():
    transport = FakeTransport(lambda _: one_face(0.2))
    with fake_client(transport, priority="bulk") as client:
        client.detect(b"one")  # the client's default beats the call kind
        client.detect(b"one", priority="interactive")  # the call's beats the client's
        client.detect_many([b"a"], priority=PRIORITY_INTERACTIVE)
        client.detect(b"one", priority=0)  # 0: the model's own default level
    assert [p for _, p in transport.priorities] == [PRIORITY_BULK, PRIORITY_INTERACTIVE, PRIORITY_INTERACTIVE, 0]


@pytest.mark.parametrize("priority", ["urgent", 3, -1, 1.0, True])
def test_a_bad_priority_is_an_invalid_input_before_any_request(priority):
    transport = FakeTransport(lambda _: one_face(0.2))
    with fake_client(transport) as client:
        with pytest.raises(InvalidInputError, match="priority"):
            client.detect(b"one", priority=priority)
        with pytest.raises(InvalidInputError, match="priority"):
            client.detect_many([b"a"], priority=priority)
    with pytest.raises(InvalidInputError, match="priority"):
        fake_client(transport, priority=priority)
    assert transport.priorities == []


def test_the_async_client_passes_the_priority_through():
    transport = FakeTransport(lambda _: one_face(0.2))

    async def run():
        async with AsyncDeepfakeClient("localhost:1", transport=transport) as client:
            await client.detect(b"one")
            await client.detect_many([b"a"])
            await client.detect(b"one", priority="bulk")

    asyncio.run(run())
    assert [p for _, p in transport.priorities] == [PRIORITY_INTERACTIVE, PRIORITY_BULK, PRIORITY_BULK]
