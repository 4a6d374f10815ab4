"""docker/compose.yaml (+ compose.tls.yaml), checked offline: interpolated with the pin file
as `docker compose --env-file docker/versions.env` does, validated against the Compose
Specification schema that check-jsonschema vendors, then the deployment's own rules."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import pytest
import yaml
from deploy_files import DOCKER, REPO, load_entrypoint, read_env

COMPOSE_FILES = ("compose.yaml", "compose.tls.yaml")
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:\?|:-)(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (an unset required variable is an error)."""
    def value(match):
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name} is not set: {arg or 'no default'}")
    return _VARIABLE.sub(value, text)


def load_compose(name: str, env: dict[str, str]):
    """Parsed first, then interpolated, as Compose does (so "26.05" stays a string)."""
    def walk(node):
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return interpolate(node, env) if isinstance(node, str) else node
    return walk(yaml.safe_load((DOCKER / name).read_text()))


def compose_schema() -> dict:
    text = (resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    return json.loads(text)


@pytest.fixture(scope="module")
def compose():
    return load_compose("compose.yaml", read_env())


def test_interpolation_needs_the_pin_file():
    text = (DOCKER / "compose.yaml").read_text()
    with pytest.raises(KeyError, match="TRITON_TAG.*--env-file docker/versions.env"):
        load_compose("compose.yaml", {})
    # Every variable the file uses is pinned there, or has a default.
    pinned = read_env()
    for match in _VARIABLE.finditer(text):
        assert match["name"] in pinned or match["op"] == ":-", match.group(0)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_follow_the_compose_specification(name):
    document = load_compose(name, read_env())
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def test_the_schema_validation_catches_mistakes(compose):
    schema = compose_schema()
    broken = json.loads(json.dumps(compose))
    broken["services"]["triton"]["shm_sise"] = "2gb"  # a typo must not pass silently
    broken["services"]["prometheus"]["ports"] = "9090"
    assert len(list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))) >= 2


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)b?", size.lower()).groups()
    return int(number) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def _minutes(duration: str) -> float:
    return sum(int(n) * {"h": 60, "m": 1, "s": 1 / 60}[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def test_triton_service(compose):
    triton = compose["services"]["triton"]
    pins = read_env()
    assert triton["image"] == f"deepfake-triton:{pins['TRITON_TAG']}"
    assert triton["build"]["args"] == {"TRITON_TAG": pins["TRITON_TAG"], "TRITON_VERSION": pins["TRITON_VERSION"]}
    assert (DOCKER / triton["build"]["context"]).resolve() == REPO
    assert (REPO / triton["build"]["dockerfile"]) == DOCKER / "serving" / "Dockerfile"
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert _bytes(triton["shm_size"]) >= 1 << 30
    mounts = {v.split(":")[1]: v for v in triton["volumes"]}
    assert mounts["/models/artifacts"].endswith(":ro")
    assert mounts["/models/cache"].split(":")[0] in compose["volumes"]  # a named, persistent volume
    env = triton["environment"]
    assert env["DEEPFAKE_ARTIFACTS"] == "/models/artifacts" and env["DEEPFAKE_PLAN_CACHE"].startswith("/models/cache/")
    assert env["DEEPFAKE_GRPC_TLS"] in load_entrypoint().TLS_MODES
    assert env["TRITON_ADMIN_KEY_FILE"] == "/run/secrets/triton_admin_key" and "triton_admin_key" in triton["secrets"]
    assert triton["user"].split(":")[0] not in ("0", "root") and triton["read_only"] is True
    health = triton["healthcheck"]
    assert "http://127.0.0.1:8000/v2/health/ready" in health["test"] and _minutes(health["start_period"]) >= 30
    assert all(p.startswith("127.0.0.1:") for s in compose["services"].values() for p in s.get("ports", []))


def test_secrets_live_in_a_git_ignored_folder(compose):
    for secret in compose["secrets"].values():
        path = (DOCKER / secret["file"]).resolve()
        assert path.parent == DOCKER / "secrets"
    ignore = (DOCKER / "secrets" / ".gitignore").read_text().split()
    assert ignore[:1] == ["*"] or "*" in ignore


def test_locust_master_and_workers_target_triton(compose):
    services = compose["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert master["profiles"] == ["load"] == worker["profiles"]
    assert "--master" in master["command"] and master["command"][master["command"].index("--host") + 1] == "grpc://triton:8001"
    assert "--worker" in worker["command"] and worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    assert worker["deploy"]["replicas"] >= 1
    locustfile = (REPO / "benchmarks" / "load" / "locustfile.py").read_text()
    for command in (master["command"], worker["command"]):
        assert f"class {command[-1]}(" in locustfile  # the user class exists


def test_prometheus_and_grafana_are_wired(compose):
    services = compose["services"]
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert "triton:8002" in targets and "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = services["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/deepfake.yaml").read_text())["providers"][0]
    dashboards_mount = next(target for source, target in mounts.items() if source == "./grafana/dashboards")
    assert provider["options"]["path"] == dashboards_mount
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(dashboards_mount + "/")
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].rsplit("/", 1)[1]
    assert (DOCKER / "grafana" / "dashboards" / home).is_file()
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / home).read_text())
    used = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert used == {datasource["uid"]}


def test_gateway_service_serves_the_web_console_from_triton(compose):
    gateway = compose["services"]["gateway"]
    pins = read_env()
    assert gateway["image"] == f"deepfake-web:{pins['TRITON_TAG']}"
    assert (REPO / gateway["build"]["dockerfile"]) == DOCKER / "web" / "Dockerfile"
    assert gateway["build"]["args"] == {"PYTHON_IMAGE": pins["PYTHON_IMAGE"]}
    command = gateway["command"]
    assert command[command.index("--url") + 1] == "grpc://triton:8001"
    port = command[command.index("--port") + 1]
    assert gateway["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"http://127.0.0.1:{port}/health" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert gateway["user"].split(":")[0] not in ("0", "root") and gateway["read_only"] is True
    assert "/tmp" in gateway["tmpfs"]  # video uploads' temporary copies on a read-only root
    # The image's entrypoint is `deepfake web`; the command parses as its arguments.
    from deepfake_client.cli import build_parser

    args = build_parser().parse_args(["web", *command])
    assert (args.url, args.host, args.port) == ("grpc://triton:8001", "0.0.0.0", int(port))
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert f"gateway:{port}" in targets
    # Beyond loopback (0.0.0.0 in the container) it needs API keys: the secret's file, which
    # Prometheus also reads to scrape the gateway's /metrics as a bearer token.
    key_file = gateway["environment"]["DEEPFAKE_WEB_API_KEY_FILE"]
    assert key_file == "/run/secrets/web_api_keys" and "web_api_keys" in gateway["secrets"]
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "gateway"]
    assert job["authorization"]["credentials_file"] == key_file
    assert "web_api_keys" in compose["services"]["prometheus"]["secrets"]
