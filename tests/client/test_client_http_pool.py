"""The HTTP transport lends each client to one call at a time, only on the thread that made it
(gevent binds a client's sockets to that thread), and closes the clients of ended threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

import tritonclient.http

from deepfake_client.transport import HttpTransport


class SlowClient:
    """Stands for tritonclient.http.InferenceServerClient: not thread-safe and bound to its thread, so it checks."""

    made: list = []

    def __init__(self, url, **kwargs):
        SlowClient.made.append(self)
        self.owner = threading.current_thread()
        self.busy = threading.Lock()
        self.closed = False

    def is_server_live(self, **kwargs):
        assert threading.current_thread() is self.owner, "a client used by another thread than its own"
        assert self.busy.acquire(blocking=False), "one client used by two calls at once"
        try:
            threading.Event().wait(0.01)
            return True
        finally:
            self.busy.release()

    def close(self):
        self.closed = True


def test_clients_stay_on_their_thread_and_those_of_ended_threads_are_closed(monkeypatch):
    monkeypatch.setattr(tritonclient.http, "InferenceServerClient", SlowClient)
    SlowClient.made = []
    transport = HttpTransport("triton:8000", 60.0)
    for _ in range(5):  # e.g. five detect_many calls, each with its own pool of 4 threads
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert all(pool.map(lambda _: transport.server_live(), range(40)))
    assert 1 <= len(SlowClient.made) <= 20  # at most one per thread: reused for all of that thread's calls
    open_clients = [c for c in SlowClient.made if not c.closed]
    assert len(open_clients) <= 4  # those of the last pool; the earlier pools' were closed
    assert transport.server_live()  # this (main) thread gets its own client
    transport.close()
    assert all(client.closed for client in SlowClient.made)
