"""The serving container's start (docker/serving/entrypoint.py) without a GPU: settings, the
admin key, TLS flags, the hardened command line, the plan profile, and the choice of plans
from a shared cache holding stale ones (fabricated plan files, real repository assembly)."""

from __future__ import annotations

import json

import pytest
from deploy_files import load_entrypoint

from deepfake_contract import settings as settings_file
from deepfake_dev import local_server
from deepfake_models import CLASSIFIER_NAMES, CLASSIFIERS
from deepfake_serving import launcher
from deepfake_serving.images import ImageLimits
from export import triton_config
from export.artifacts import BuildArtifacts
from export.provenance import sha256_file
from export.tensorrt_build import build_flags, plan_sidecar, precision_mode

entrypoint = load_entrypoint()


def test_settings_reject_an_unknown_tls_mode_and_bad_numbers():
    with pytest.raises(entrypoint.StartError, match="DEEPFAKE_GRPC_TLS='tls'"):
        entrypoint.Settings.from_environment({"DEEPFAKE_GRPC_TLS": "tls"})
    with pytest.raises(entrypoint.StartError, match="not a number"):
        entrypoint.Settings.from_environment({"DEEPFAKE_PLAN_OPT_BATCH": "eight"})
    settings = entrypoint.Settings.from_environment({})
    assert settings.tls_mode == "off" and settings.admin_key_file is None
    assert str(settings.plan_cache).startswith("/models/cache")


def test_admin_key_comes_from_its_file_or_stays_unknown(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("0123456789abcdef0123456789abcdef\n")
    assert entrypoint.admin_key(key_file) == "0123456789abcdef0123456789abcdef"
    first, second = entrypoint.admin_key(None), entrypoint.admin_key(None)
    assert first != second and len(first) == 64  # random: nobody holds it, the APIs stay closed
    with pytest.raises(entrypoint.StartError, match="cannot read"):
        entrypoint.admin_key(tmp_path / "missing")
    for bad in ("short", "has,comma-0123456789", "has:colon-0123456789", "a=b-0123456789abcdef", "with space 0123456789"):
        key_file.write_text(bad)
        with pytest.raises(entrypoint.StartError, match="must be 16-256 characters"):
            entrypoint.admin_key(key_file)


def test_tls_flags_name_existing_files_only(tmp_path):
    assert entrypoint.tls_flags("off", tmp_path) == []
    with pytest.raises(entrypoint.StartError, match="tls.crt"):
        entrypoint.tls_flags("server", tmp_path)
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("pem")
    assert entrypoint.tls_flags("server", tmp_path) == [
        "--grpc-use-ssl=true", f"--grpc-server-cert={tmp_path / 'tls.crt'}", f"--grpc-server-key={tmp_path / 'tls.key'}"]
    with pytest.raises(entrypoint.StartError, match="ca.crt"):
        entrypoint.tls_flags("mutual", tmp_path)
    (tmp_path / "ca.crt").write_text("pem")
    mutual = entrypoint.tls_flags("mutual", tmp_path)
    assert mutual[0] == "--grpc-use-ssl-mutual=true" and f"--grpc-root-cert={tmp_path / 'ca.crt'}" in mutual


def _flag_names(command):
    return {arg.split("=", 1)[0] for arg in command if arg.startswith("--")}


def test_the_container_and_the_local_server_share_one_launcher(tmp_path):
    command = entrypoint.tritonserver_command(tmp_path / "repo", "k" * 32, ["--grpc-use-ssl=true"])
    assert command[0] == "tritonserver"
    local = local_server.server_command(tmp_path / "repo", tmp_path, local_server.Ports(), "k" * 32)
    # Same switches; the differences are the launcher's explicit arguments.
    assert _flag_names(local) - {"--backend-directory"} <= _flag_names(command)
    assert _flag_names(command) - _flag_names(local) == {"--http-max-input-size", "--grpc-use-ssl"}
    for flag in launcher.HARDENED_FLAGS:
        assert flag in command and flag in local
    for flag in ("--disable-auto-complete-config", "--model-control-mode=none", "--strict-readiness=true",
                 "--exit-on-error=true", f"--backend-config=python,shm-default-byte-size={launcher.PYTHON_SHM_BYTES}"):
        assert flag in local and flag in command
    assert f"--http-restricted-api={launcher.RESTRICTED_APIS}:admin-key={'k' * 32}" in command
    assert f"--grpc-restricted-protocol={launcher.RESTRICTED_APIS}:admin-key={'k' * 32}" in command
    assert "--allow-gpu-metrics=true" in command and "--allow-gpu-metrics=false" in local
    assert command[-1] == "--grpc-use-ssl=true"  # TLS and user flags last: they can override
    # The container is reached from other pods; the local server only from this machine.
    for flag in ("--http-address", "--grpc-address", "--metrics-address"):
        assert f"{flag}=0.0.0.0" in command and f"{flag}=127.0.0.1" in local
    assert f"--http-max-input-size={entrypoint.HTTP_MAX_INPUT_BYTES}" in command
    assert entrypoint.HTTP_MAX_INPUT_BYTES > ImageLimits().max_bytes
    ports = {flag: int(arg.split("=")[1]) for arg in command for flag in ("--http-port", "--grpc-port", "--metrics-port")
             if arg.startswith(flag + "=")}
    assert ports == {"--http-port": 8000, "--grpc-port": 8001, "--metrics-port": 8002}


def test_plan_profile_covers_the_batch_sizes_triton_will_run():
    flavour = triton_config.FLAVOURS["tensorrt"]
    profile = entrypoint.plan_profile(8)
    assert profile.max_batch == flavour.classifier_max_batch_size
    assert profile.min_batch == 1 and profile.opt_batch == 8
    assert entrypoint.plan_profile(1000).opt_batch == profile.max_batch  # clamped, never an invalid profile
    # Warmup runs the largest batch: the plan must accept it.
    config = triton_config.classifier_config(CLASSIFIERS[0], flavour, {})
    assert max(w.batch_size for w in config.model_warmup) <= profile.max_batch


@pytest.mark.parametrize("python, system, ok", [
    ("10.16.1.11", "10.16.1.11-1+cuda13.2", True),
    ("10.5.0", "10.5.0.18-1+cuda12.6", True),  # PyPI's three-component spelling of old releases
    ("11.0.0.114", "11.0.0.114-1+cuda13.2", True),
    ("10.16.0.72", "10.16.1.11-1+cuda13.2", False),
    ("10.1", "10.16.1.11-1+cuda13.2", False),
])
def test_tensorrt_bindings_must_match_the_image_libnvinfer(python, system, ok):
    if ok:
        entrypoint.check_tensorrt_versions(python, system)
    else:
        with pytest.raises(entrypoint.StartError, match="would not load in Triton"):
            entrypoint.check_tensorrt_versions(python, system)


@pytest.fixture
def export_output(tmp_path):
    """What `make export` leaves (stand-in ONNX bytes), mounted read-only in the container."""
    built = BuildArtifacts(tmp_path / "artifacts")
    for i, name in enumerate(CLASSIFIER_NAMES):
        built.onnx(name).parent.mkdir(parents=True, exist_ok=True)
        built.onnx(name).write_bytes(b"onnx " + name.encode())
        built.manifest_path(name).parent.mkdir(parents=True, exist_ok=True)
        built.manifest_path(name).write_text(json.dumps({"untrained": True, "source": {"sha256": f"{i:064x}"}}))
    return built.root


def _add_plan(view, name, key, trt, cc, flags, onnx_sha256):
    artifacts = BuildArtifacts(view)
    artifacts.plan(name, key).parent.mkdir(parents=True, exist_ok=True)
    artifacts.plan(name, key).write_bytes(f"plan {name} {key}".encode())
    sidecar = plan_sidecar(name, tensorrt_version=trt, gpu_name="NVIDIA H100", compute_capability=cc,
                           onnx_file=f"{name}.onnx", onnx_sha256=onnx_sha256, flags=flags, untrained=True,
                           parity={"1": {"max_abs_fake_probability_diff": 1e-3}})
    artifacts.plan_sidecar(name, key).write_text(json.dumps(sidecar))


def test_build_view_refuses_an_incomplete_export(tmp_path, export_output):
    BuildArtifacts(export_output).onnx("effort_clip").unlink()
    with pytest.raises(entrypoint.StartError, match="effort_clip.onnx"):
        entrypoint.prepare_build_view(export_output, tmp_path / "cache", tmp_path / "view", CLASSIFIER_NAMES)


def test_the_current_plans_are_served_although_the_shared_cache_holds_stale_ones(tmp_path, export_output):
    cache = tmp_path / "cache" / "plans"
    view = entrypoint.prepare_build_view(export_output, cache, tmp_path / "work" / "build", CLASSIFIER_NAMES)
    assert (view / "plans").resolve() == cache.resolve() and (view / "onnx" / "f3net.onnx").is_symlink()
    trt, cc, profile = "10.16.1.11", "9.0", entrypoint.plan_profile(8)
    keys = entrypoint.expected_plan_keys(view, CLASSIFIER_NAMES, trt, cc, profile)
    flags = build_flags(precision_mode(trt), profile)
    other_profile = build_flags(precision_mode(trt), entrypoint.plan_profile(16))
    for name in CLASSIFIER_NAMES:
        current = sha256_file(BuildArtifacts(view).onnx(name))
        _add_plan(view, name, keys[name], trt, cc, flags, current)
        _add_plan(view, name, f"old-{name}", trt, cc, flags, "an older onnx")  # same TensorRT and GPU
        _add_plan(view, name, f"l40s-{name}", trt, "8.9", flags, current)
        _add_plan(view, name, f"opt16-{name}", trt, cc, other_profile, current)  # another replica's setting
    # With the whole cache, the documented filter is ambiguous; with the selection it is not.
    with pytest.raises(entrypoint.StartError, match="repository failed"):
        entrypoint.assemble_repository(view, tmp_path / "ambiguous", trt, cc)
    selected = entrypoint.select_plans(view, keys, tmp_path / "work" / "selected")
    repository = entrypoint.assemble_repository(selected, tmp_path / "work" / "repository", trt, cc)
    for name in CLASSIFIER_NAMES:
        assert (repository / name / "1" / "model.plan").read_bytes() == f"plan {name} {keys[name]}".encode()
        config = triton_config.parse((repository / name / "config.pbtxt").read_text())
        assert config.platform == "tensorrt_plan"
    # The shared cache keeps every plan (other GPUs still need theirs).
    assert len(list(cache.glob("*/*.plan"))) == 4 * len(CLASSIFIER_NAMES)

    # DEEPFAKE_SETTINGS: the mounted settings file is what the combiner serves.
    weights = {name: float(i + 1) for i, name in enumerate(CLASSIFIER_NAMES)}
    path = settings_file.dump(settings_file.EnsembleSettings(weights, threshold=0.3), tmp_path / "settings.json")
    start = entrypoint.Settings.from_environment({"DEEPFAKE_SETTINGS": str(path)})
    repository = entrypoint.assemble_repository(selected, tmp_path / "work" / "repository", trt, cc,
                                                start.ensemble_settings)
    served = json.loads((repository / "repository.json").read_text())
    assert served["weights"] == weights and served["threshold"] == 0.3
    assert served["settings_file"]["sha256"] == sha256_file(path)


def test_a_missing_settings_file_stops_the_start(tmp_path):
    with pytest.raises(entrypoint.StartError, match="DEEPFAKE_SETTINGS=.*no such file"):
        entrypoint.Settings.from_environment({"DEEPFAKE_SETTINGS": str(tmp_path / "absent.json")})
    assert entrypoint.Settings.from_environment({}).ensemble_settings is None


def test_a_missing_or_failed_plan_stops_the_start(tmp_path, export_output):
    view = entrypoint.prepare_build_view(export_output, tmp_path / "plans", tmp_path / "view", CLASSIFIER_NAMES)
    keys = entrypoint.expected_plan_keys(view, CLASSIFIER_NAMES, "10.16.1.11", "9.0", entrypoint.plan_profile(8))
    with pytest.raises(entrypoint.StartError, match="no plan"):
        entrypoint.select_plans(view, keys, tmp_path / "selected")
    flags = build_flags(precision_mode("10.16.1.11"), entrypoint.plan_profile(8))
    for name in CLASSIFIER_NAMES:
        _add_plan(view, name, keys[name], "10.16.1.11", "9.0", flags, sha256_file(BuildArtifacts(view).onnx(name)))
    sidecar_path = BuildArtifacts(view).plan_sidecar("xception", keys["xception"])
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["parity"]["passed"] = False
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(entrypoint.StartError, match="failed its parity check"):
        entrypoint.select_plans(view, keys, tmp_path / "selected")


def test_start_errors_are_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPFAKE_GRPC_TLS", "sometimes")
    assert entrypoint.main(["serve"]) == 1
    assert "deepfake-serve: error: DEEPFAKE_GRPC_TLS" in capsys.readouterr().err


def test_libnvinfer_version_is_read_from_dpkg(tmp_path, monkeypatch):
    fake = tmp_path / "dpkg-query"
    # dpkg lists known-but-absent packages matching the glob with an empty version.
    fake.write_text('#!/bin/sh\nprintf "\\n10.16.1.11-1+cuda13.2\\n"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert entrypoint.system_libnvinfer_version() == "10.16.1.11-1+cuda13.2"
    fake.write_text("#!/bin/sh\necho 'dpkg-query: no packages found' >&2; exit 1\n")
    with pytest.raises(entrypoint.StartError, match="no libnvinfer"):
        entrypoint.system_libnvinfer_version()
