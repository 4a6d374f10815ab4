"""docker/k8s, checked offline: every object validates (strictly: no unknown field) against
the Kubernetes JSON schemas shipped by the kubernetes-validate package, for the oldest and
newest Kubernetes we claim, and the manifests agree with each other and with the image."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_files import (
    K8S,
    REPO,
    kustomization_resources,
    load_entrypoint,
    pod_spec,
    read_env,
    strategic_merge,
)

# Oldest and newest Kubernetes the manifests are written for (docker/README.md).
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
KUSTOMIZATIONS = ("", "loadtest", "monitoring", "tools")
entrypoint = load_entrypoint()


def all_objects():
    return [(path, obj) for folder in KUSTOMIZATIONS for path, obj in kustomization_resources(K8S / folder)]


def find(kind: str, name: str, folder: str = "") -> dict:
    matches = [obj for _, obj in kustomization_resources(K8S / folder)
               if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def test_every_yaml_file_parses_and_is_listed_by_a_kustomization():
    listed = {path for path, _ in all_objects()}
    for folder in KUSTOMIZATIONS + ("components/grpc-tls", "overlays/grpc-tls"):
        kustomization = yaml.safe_load((K8S / folder / "kustomization.yaml").read_text())
        for entry in kustomization.get("resources", []) + kustomization.get("components", []):
            assert (K8S / folder / entry).exists(), f"{folder}: {entry} does not exist"
        for patch in kustomization.get("patches", []):
            listed.add((K8S / folder / patch["path"]).resolve())
    scrape_fragment = K8S / "monitoring" / "prometheus-scrape.yaml"  # a Prometheus config fragment
    for path in K8S.rglob("*.yaml"):
        assert list(yaml.safe_load_all(path.read_text()))
        if path.name != "kustomization.yaml" and path != scrape_fragment:
            assert path.resolve() in listed, f"{path} is not part of any kustomization"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_validate_against_the_kubernetes_schemas(version):
    objects = all_objects() + [(K8S / "components/grpc-tls", tls_deployment())]
    assert len(objects) >= 12
    for path, obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.relative_to(REPO)} {obj['kind']}/{obj['metadata']['name']} ({version}): {error.message}"
                        f" at {'/'.join(map(str, error.path))}")


def test_the_validator_rejects_mistakes():
    broken = find("Deployment", "triton")
    broken = {**broken, "spec": {**broken["spec"], "replica": 2}}  # typo of replicas
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_images_come_from_the_pin():
    tag = read_env()["TRITON_TAG"]
    used = {c["image"] for _, obj in all_objects() if pod_spec(obj) for c in pod_spec(obj)["containers"]}
    assert used == {"deepfake-triton", "deepfake-load", "deepfake-web"}
    for folder in ("", "loadtest", "tools"):
        kustomization = yaml.safe_load((K8S / folder / "kustomization.yaml").read_text())
        images = {image["name"]: image for image in kustomization["images"]}
        for name in {c["image"] for _, obj in kustomization_resources(K8S / folder) if pod_spec(obj)
                     for c in pod_spec(obj)["containers"]}:
            assert isinstance(images[name]["newTag"], str) and images[name]["newTag"].startswith(tag), folder


def test_every_pod_is_non_root_and_unprivileged():
    pods = [(obj["metadata"]["name"], pod_spec(obj)) for _, obj in all_objects() if pod_spec(obj)]
    assert len(pods) == 6
    for name, spec in pods:
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"], name
            assert "command" not in container, f"{name}: keep NVIDIA's entrypoint (CUDA compatibility), set args"


def test_triton_deployment():
    deployment = find("Deployment", "triton")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["python3", "/opt/deepfake/entrypoint.py", "serve"]
    assert "replicas" not in deployment["spec"]  # the HorizontalPodAutoscaler owns it
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == entrypoint.PORTS
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert mounts["/models/artifacts"]["readOnly"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DEEPFAKE_GRPC_TLS"] in entrypoint.TLS_MODES
    assert env["DEEPFAKE_PLAN_CACHE"].startswith("/models/cache/")
    assert volumes[mounts["/models/cache"]["name"]]["persistentVolumeClaim"]["claimName"] == "deepfake-plans"
    # The admin key is a file from the Secret, never a literal.
    key_mount = next(m for path, m in mounts.items() if env["TRITON_ADMIN_KEY_FILE"].startswith(path + "/"))
    assert volumes[key_mount["name"]]["secret"]["secretName"] == "triton-admin-key"
    # Writable paths are volumes: the root filesystem is read-only.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for path in (env["DEEPFAKE_WORKDIR"], env["HOME"]):
        assert path in mounts and "emptyDir" in volumes[mounts[path]["name"]]


def _budget_s(probe: dict) -> int:
    return probe["periodSeconds"] * probe["failureThreshold"]


def test_probes_use_triton_health_and_allow_for_plan_builds():
    (container,) = find("Deployment", "triton")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready" and startup["httpGet"]["port"] in ports
    assert _budget_s(startup) >= 30 * 60  # four plan builds on first start
    # Liveness and readiness exercise inference (a dead stub leaves /v2/health/* at 200).
    for name in ("livenessProbe", "readinessProbe"):
        probe = container[name]
        command = probe["exec"]["command"]
        assert command[:3] == ["python3", "-m", "deepfake_serving.probe"]
        url = command[command.index("--url") + 1]
        assert url == f"127.0.0.1:{entrypoint.PORTS['http']}"
        assert float(command[command.index("--timeout") + 1]) < probe["timeoutSeconds"]  # the probe's own answer
    assert _budget_s(container["readinessProbe"]) <= 10  # not ready within 10 s of a failure
    assert _budget_s(container["livenessProbe"]) >= 30  # a slow moment is not a restart


def test_service_hpa_and_pdb_select_the_triton_pods():
    pod_labels = find("Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    service = find("Service", "triton")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == entrypoint.PORTS
    assert find("PodDisruptionBudget", "triton")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = find("HorizontalPodAutoscaler", "triton")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and float(metric["pods"]["target"]["averageValue"]) > 0
    claims = {obj["metadata"]["name"] for _, obj in all_objects() if obj["kind"] == "PersistentVolumeClaim"}
    used = {v["persistentVolumeClaim"]["claimName"] for _, obj in all_objects() if pod_spec(obj)
            for v in pod_spec(obj).get("volumes", []) if "persistentVolumeClaim" in v}
    assert used == claims


def test_distributed_locust_job_targets_the_triton_service():
    master = find("Job", "locust-master", "loadtest")["spec"]
    worker = find("Job", "locust-worker", "loadtest")["spec"]
    args = dict(a.lstrip("-").split("=", 1) for a in master["template"]["spec"]["containers"][0]["args"] if "=" in a)
    assert int(args["expect-workers"]) == worker["parallelism"] == worker["completions"]
    assert args["host"] == f"grpc://{find('Service', 'triton')['metadata']['name']}:{entrypoint.PORTS['grpc']}"
    worker_args = worker["template"]["spec"]["containers"][0]["args"]
    service = find("Service", "locust-master", "loadtest")
    assert f"--master-host={service['metadata']['name']}" in worker_args
    assert service["spec"]["selector"].items() <= master["template"]["metadata"]["labels"].items()
    locustfile = (REPO / "benchmarks" / "load" / "locustfile.py").read_text()
    for container_args in (master["template"]["spec"]["containers"][0]["args"], worker_args):
        assert f"class {container_args[-1]}(" in locustfile


def tls_deployment() -> dict:
    patch = yaml.safe_load((K8S / "components" / "grpc-tls" / "triton-tls.yaml").read_text())
    return strategic_merge(find("Deployment", "triton"), patch)


def test_the_tls_component_turns_on_triton_grpc_tls_from_a_secret(tmp_path):
    spec = tls_deployment()["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DEEPFAKE_GRPC_TLS"] in ("server", "mutual") and len(container["env"]) == len({*env})
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == env["DEEPFAKE_TLS_DIR"])
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "triton-grpc-tls"
    # The entrypoint reads the secret's keys by these names.
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).write_text("pem")
    flags = entrypoint.tls_flags(env["DEEPFAKE_GRPC_TLS"], tmp_path)
    assert f"--grpc-server-cert={tmp_path / 'tls.crt'}" in flags


def test_strategic_merge_stand_in_merges_by_key():
    base = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    merged = strategic_merge(base, {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]})
    assert merged["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]


def test_adapter_rule_names_the_hpa_metric_and_maps_pods():
    config_map = find("ConfigMap", "prometheus-adapter-deepfake", "monitoring")
    (rule,) = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    hpa_metric = find("HorizontalPodAutoscaler", "triton")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert rule["name"]["as"] == hpa_metric
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
    scrape = yaml.safe_load((K8S / "monitoring" / "prometheus-scrape.yaml").read_text())["scrape_configs"][0]
    relabelled = {r["target_label"] for r in scrape["relabel_configs"] if "target_label" in r}
    assert {"namespace", "pod"} <= relabelled
    assert scrape["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]]
    pod_labels = find("Deployment", "triton")["spec"]["template"]["metadata"]["labels"]
    keep = next(r for r in scrape["relabel_configs"] if "app_kubernetes_io_name" in r["source_labels"][0])
    assert pod_labels["app.kubernetes.io/name"] == keep["regex"]


def test_manifests_do_not_carry_secret_values():
    for path in Path(K8S).rglob("*.yaml"):
        for obj in yaml.safe_load_all(path.read_text()):
            assert not (obj and obj.get("kind") == "Secret"), f"{path}: create Secrets with kubectl, never commit them"


def test_gateway_deployment_and_service_reach_triton():
    deployment = find("Deployment", "gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    triton = find("Service", "triton")
    assert args[args.index("--url") + 1] == f"grpc://{triton['metadata']['name']}:{entrypoint.PORTS['grpc']}"
    port = int(args[args.index("--port") + 1])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"  # 503 until Triton is ready
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # video uploads' temporary copies
    service = find("Service", "gateway")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    from deepfake_client.cli import build_parser

    parsed = build_parser().parse_args(["web", *args])  # the image's entrypoint is `deepfake web`
    assert parsed.host == "0.0.0.0" and parsed.port == port
    # Beyond loopback it needs API keys: a file from the Secret, readable by the pod's user.
    key_file = Path({e["name"]: e["value"] for e in container["env"]}["DEEPFAKE_WEB_API_KEY_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert mount["readOnly"] is True and volumes[mount["name"]]["secret"]["secretName"] == "gateway-api-keys"
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["fsGroup"] == pod_security["runAsGroup"]
    assert "httpGet" not in container["livenessProbe"]  # /metrics needs a key; liveness must not
