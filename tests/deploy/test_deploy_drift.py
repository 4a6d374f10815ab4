"""The drift dashboard (docker/grafana/dashboards/deepfake-drift.json) against real data: the gateway
(fake SDK client, varied scores) is scraped by a real Prometheus (Debian's `prometheus`, started here
in a temporary folder, 1-s scrapes), and every panel's PromQL returns data from that scrape."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from deploy_files import DOCKER, promql_labels, promql_metrics

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from live_app import serve_app  # noqa: E402
from web_fakes import MODELS, NO_FACE_WIDTH, FakeClient, image_bytes  # noqa: E402

from deepfake_client import DetectionResult, Face, Label  # noqa: E402
from deepfake_client.web import Limits, create_app  # noqa: E402

DASHBOARD = DOCKER / "grafana" / "dashboards" / "deepfake-drift.json"
GATEWAY_HISTOGRAMS = {"deepfake_gateway_fake_probability": {"model"}, "deepfake_gateway_model_disagreement": set(),
                      "deepfake_gateway_faces_per_image": set(), "deepfake_gateway_face_size_pixels": set()}


def panel_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


class VariedClient(FakeClient):
    """Faces whose size and scores vary with the image's width: the histograms get spread data."""

    def _judge(self, data: bytes) -> DetectionResult:
        base = super()._judge(data)
        if not base.faces:
            return base
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            width = image.size[0]
        p = (width % 20) / 20
        per_model = {m: min(1.0, max(0.0, p + 0.1 * (i - 1.5))) for i, m in enumerate(MODELS)}
        face = Face(box=(0.0, 0.0, float(width), float(width) * 1.2), detector_score=0.99, fake_probability=p,
                    model_probabilities=per_model)
        return DetectionResult(label=Label.FAKE if p > 0.5 else Label.REAL, fake_probability=p, faces=(face,) * (1 + width % 2),
                               model_names=MODELS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(prometheus: str, expr: str) -> list:
    url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_panels_query_only_the_gateways_histograms_and_counters():
    known = {**GATEWAY_HISTOGRAMS, "deepfake_gateway_predictions_total": {"prediction"}}
    for expr in panel_queries():
        names = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in promql_metrics(expr)}
        names = {n if n in known else n + "_total" if n + "_total" in known else n for n in names}
        assert names and names <= set(known), expr
        assert promql_labels(expr) <= set().union(*(known[n] for n in names)) | {"le"}, expr


def test_the_drift_panels_return_data_from_a_real_prometheus_scrape(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus; `make test` does)")
    with serve_app(create_app(VariedClient(), limits=Limits())) as gateway:
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [gateway]}]}]}))
        listen = f"127.0.0.1:{free_port()}"
        prometheus = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address={listen}"], stdout=subprocess.DEVNULL,
                                      stderr=open(tmp_path / "prometheus.log", "wb"))
        try:
            def scraped(minimum: int) -> bool:
                try:
                    result = query(listen, 'count_over_time(up{job="gateway"}[5m])')
                except OSError:
                    return False
                return bool(result) and float(result[0]["value"][1]) >= minimum

            deadline = time.monotonic() + 120
            while not scraped(2):
                assert prometheus.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
                time.sleep(0.5)
            # Traffic over several scrapes, so rate() has two points with a rise between them.
            for second in range(6):
                for i in range(8):
                    width = NO_FACE_WIDTH if i == 0 else 40 + second * 8 + i
                    data = image_bytes(width, 30)
                    request = urllib.request.Request(f"http://{gateway}/api/detect/image", method="POST")
                    boundary = "b0undary"
                    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
                    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
                    with urllib.request.urlopen(request, body, timeout=30) as response:
                        assert response.status == 200
                time.sleep(1.2)
            time.sleep(3)  # the last traffic scraped
            empty = []
            for expr in panel_queries():
                result = query(listen, expr.replace("$__rate_interval", "1m"))
                values = [float(r["value"][1]) for r in result]
                if not [v for v in values if v == v]:  # no series, or only NaN
                    empty.append(expr)
            assert not empty, f"panels without data: {empty}"
            models = {r["metric"]["model"] for r in query(listen, "deepfake_gateway_fake_probability_count")}
            assert models == {"ensemble", *MODELS}
        finally:
            prometheus.terminate()
            prometheus.wait(30)


def test_the_shift_alert_fires_on_a_shift_and_stays_quiet_without(tmp_path):
    """promtool's rule tests (Prometheus's own evaluator) on a week of synthetic histogram sums."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("Debian's prometheus (promtool) is not installed (apt-get install prometheus; `make test` does)")
    rules = DOCKER / "prometheus" / "drift-rules.yml"
    week = 168  # hours
    count = {"series": 'deepfake_gateway_fake_probability_count{model="ensemble"}', "values": "0+200x240"}
    steady = {"series": 'deepfake_gateway_fake_probability_sum{model="ensemble"}', "values": "0+60x240"}  # mean 0.3
    shifted = {"series": steady["series"], "values": f"0+60x{week} {60 * week + 140}+140x71"}  # then mean 0.7
    alert = {"exp_labels": {"severity": "warning"},
             "exp_annotations": yaml.safe_load(rules.read_text())["groups"][0]["rules"][0]["annotations"]}
    tests = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [
        {"interval": "1h", "input_series": [count, shifted], "alert_rule_test": [
            {"eval_time": "100h", "alertname": "DeepfakeScoreShift", "exp_alerts": []},  # no week-old data yet
            {"eval_time": "190h", "alertname": "DeepfakeScoreShift", "exp_alerts": [alert]}]},
        {"interval": "1h", "input_series": [count, steady], "alert_rule_test": [
            {"eval_time": "190h", "alertname": "DeepfakeScoreShift", "exp_alerts": []}]},
    ]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
