"""The web console and the seed system's REST/WebSocket API, as a gateway on the SDK.

    pip install './client[web]'
    deepfake web --url localhost:8001          # http://127.0.0.1:8080

The gateway is a client of Triton like any other: every detection goes through
`DeepfakeClient`. Its endpoints keep the seed system's paths and field names
(`deepfake_client.web.seed`); its limits are in `deepfake_client.web.limits`.
Needs the `web` extra (FastAPI, uvicorn, python-multipart, prometheus-client).
"""

from .app import create_app
from .limits import Limits

__all__ = ["Limits", "create_app"]
