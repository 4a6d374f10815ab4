"""The HTTP transport keeps no more tritonclient clients than calls ever in flight at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import tritonclient.http

from deepfake_client.transport import HttpTransport


class SlowClient:
    """Stands for tritonclient.http.InferenceServerClient: not thread-safe, so it checks."""

    made = 0

    def __init__(self, url, **kwargs):
        SlowClient.made += 1
        self.busy = threading.Lock()
        self.closed = False

    def is_server_live(self):
        assert self.busy.acquire(blocking=False), "one client used by two threads at once"
        try:
            threading.Event().wait(0.01)
            return True
        finally:
            self.busy.release()

    def close(self):
        self.closed = True


def test_clients_are_reused_across_thread_pools_and_never_shared(monkeypatch):
    monkeypatch.setattr(tritonclient.http, "InferenceServerClient", SlowClient)
    SlowClient.made = 0
    transport = HttpTransport("triton:8000", 60.0)
    for _ in range(5):  # e.g. five detect_many calls, each with its own pool of 4 threads
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert all(pool.map(lambda _: transport.server_live(), range(40)))
    assert 1 <= SlowClient.made <= 4
    clients = list(transport._clients)
    transport.close()
    assert all(client.closed for client in clients)
