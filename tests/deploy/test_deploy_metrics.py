"""The Grafana dashboard, the Prometheus adapter rule and the HPA query only metrics that
exist: Triton's own (names and labels from its metrics documentation) and the counters the
face_detector registers; and, on the real server, the non-GPU ones appear on /metrics."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
import yaml
from deploy_files import (
    DOCKER,
    GPU_ONLY_METRICS,
    K8S,
    SCRAPE_LABELS,
    TRITON_METRICS,
    face_detector_metrics,
    face_detector_outcomes,
    promql_labels,
    promql_metrics,
)

DASHBOARD = DOCKER / "grafana" / "dashboards" / "deepfake-triton.json"


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def adapter_queries() -> list[str]:
    config_map = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter.yaml").read_text())
    rules = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return [query for rule in rules for query in (rule["seriesQuery"], rule["metricsQuery"])]


def known_metrics() -> dict[str, set[str]]:
    return {**TRITON_METRICS, **face_detector_metrics()}


def test_promql_reader_finds_metrics_and_labels():
    expr = ('sum by (model) (rate(nv_inference_queue_duration_us{model!="x", reason=~"a|b"}[$__rate_interval]))'
            ' / clamp_min(sum(rate(made_up_metric[2m])), 0.001) / 1000')
    assert promql_metrics(expr) == {"nv_inference_queue_duration_us", "made_up_metric"}
    assert promql_labels(expr) == {"model", "reason"}
    adapter = "max by (<<.GroupBy>>) (rate(nv_inference_request_success{<<.LabelMatchers>>}[2m]))"
    assert promql_metrics(adapter) == {"nv_inference_request_success"} and promql_labels(adapter) == set()


def test_face_detector_counters_are_read_from_its_source():
    metrics = face_detector_metrics()
    assert metrics == {"deepfake_images_total": {"outcome"}, "deepfake_faces_total": set()}
    assert face_detector_outcomes() == {"faces", "no_face", "invalid", "failed"}


@pytest.mark.parametrize("source", ["dashboard", "adapter"])
def test_queries_use_only_metrics_and_labels_that_exist(source):
    queries = dashboard_queries() if source == "dashboard" else adapter_queries()
    known = known_metrics()
    assert queries
    for query in queries:
        names = promql_metrics(query)
        assert names, query
        unknown = names - set(known)
        assert not unknown, f"{sorted(unknown)} in {query}"
        allowed = set().union(*(known[name] for name in names)) | SCRAPE_LABELS
        assert promql_labels(query) <= allowed, f"labels {sorted(promql_labels(query) - allowed)} in {query}"
    for outcome in {o for q in queries for o in re.findall(r'outcome="(\w+)"', q)}:
        assert outcome in face_detector_outcomes()


def test_dashboard_covers_what_operators_watch():
    used = set().union(*(promql_metrics(q) for q in dashboard_queries()))
    for metric in ("nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
                   "nv_inference_request_success", "nv_gpu_utilization", "nv_gpu_memory_used_bytes",
                   "deepfake_images_total", "deepfake_faces_total", "nv_inference_request_failure"):
        assert metric in used
    dashboard = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_hpa_metric_is_built_from_triton_counters():
    hpa = yaml.safe_load((K8S / "hpa.yaml").read_text())
    config_map = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter.yaml").read_text())
    (rule,) = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]
    assert promql_metrics(rule["metricsQuery"]) == {"nv_inference_queue_duration_us", "nv_inference_request_success"}
    assert "rate(" in rule["metricsQuery"]  # counters are cumulative: only their rate scales


@pytest.mark.integration
def test_the_real_server_exports_the_queried_metrics(deepfake_server, sample_media):
    """Triton 2.51 (the local server, CPU) after one image: every non-GPU metric queried exists."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    import deepfake_contract as contract
    from deepfake_dev import samples

    data = (sample_media / samples.FACE_IMAGE).read_bytes()
    image = grpcclient.InferInput(contract.IMAGE.name, [len(data)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    result = grpcclient.InferenceServerClient(deepfake_server.grpc_url).infer(contract.ENSEMBLE_NAME, [image])
    assert result.as_numpy("NUM_FACES").tolist() == [1]
    with urllib.request.urlopen(deepfake_server.metrics_url, timeout=10) as response:
        exposition = response.read().decode()
    exported = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}
    queried = set().union(*(promql_metrics(q) for q in dashboard_queries() + adapter_queries()))
    missing = queried - GPU_ONLY_METRICS - exported
    assert not missing, f"queried but not exported by Triton: {sorted(missing)}"
    assert 'deepfake_images_total{outcome="faces"}' in exposition
