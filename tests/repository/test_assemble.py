"""Assembling repositories from (fabricated) export outputs: files, configs, refusals."""

import json
import os

import pytest

from deepfake_contract import ENSEMBLE_NAME
from deepfake_contract import settings as settings_file
from deepfake_contract.settings import EnsembleSettings
from deepfake_models import CLASSIFIER_NAMES, CLASSIFIERS
from deepfake_serving.combiner import CombinerSettings
from export import triton_config
from export.artifacts import BuildArtifacts
from export.cli import main as export_main
from export.errors import MissingArtifactError
from export.provenance import sha256_file
from export.repository import RepositoryError, RepositoryOptions, assemble


@pytest.fixture
def artifacts(tmp_path):
    """What `deepfake-export all` leaves behind, with tiny stand-in model files."""
    built = BuildArtifacts(tmp_path / "build")
    for i, name in enumerate(CLASSIFIER_NAMES):
        for path, content in ((built.onnx(name), b"onnx"), (built.fixed_checkpoint(name), b"st")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content + name.encode())
        manifest = {"untrained": name != "f3net", "source": {"sha256": f"{i:064x}"}}
        built.manifest_path(name).write_text(json.dumps(manifest))
    return built


def add_plan(artifacts, name, key, max_batch=64, onnx_sha256=None, **record):
    """A plan + sidecar as `deepfake-export tensorrt` leaves them (built from the current ONNX by default)."""
    artifacts.plan(name, key).parent.mkdir(parents=True, exist_ok=True)
    artifacts.plan(name, key).write_bytes(b"plan " + key.encode())
    record.update(onnx_sha256=onnx_sha256 or sha256_file(artifacts.onnx(name)),
                  flags={"profile": {"min_batch": 1, "opt_batch": 8, "max_batch": max_batch}})
    artifacts.plan_sidecar(name, key).write_text(json.dumps(record))


def configs(repository):
    return {p.parent.name: triton_config.parse(p.read_text()) for p in repository.glob("*/config.pbtxt")}


@pytest.mark.parametrize("flavour", ["cpu", "onnxruntime", "pytorch"])
def test_every_flavour_is_complete_and_consistent(artifacts, tmp_path, flavour):
    out = assemble(artifacts.root, tmp_path / flavour, RepositoryOptions(flavour=flavour))
    found = configs(out)
    assert set(found) == {ENSEMBLE_NAME, "face_detector", "weighted_average", *CLASSIFIER_NAMES}
    assert triton_config.check_pipelines(found, CLASSIFIERS) == []
    for name in ("face_detector", "weighted_average", ENSEMBLE_NAME):
        assert (out / name / "1" / "model.py").is_file()
    admission = json.loads((out / "repository.json").read_text())["admission"][ENSEMBLE_NAME]
    assert admission == vars(triton_config.FLAVOURS[flavour].admission)


def test_model_files_are_linked_not_copied(artifacts, tmp_path):
    out = assemble(artifacts.root, tmp_path / "cpu")
    served = out / "effort_clip" / "1" / "model.onnx"
    assert served.read_bytes() == b"onnxeffort_clip"
    assert os.path.samefile(served, artifacts.onnx("effort_clip"))
    assert (out / "effort_clip" / "1" / "model.py").read_text().startswith('"""Triton python model: one exported')


@pytest.mark.parametrize("argv, runtime", [([], "openvino"), (["--cpu-runtime", "onnxruntime"], "onnxruntime")])
def test_the_cpu_classifiers_runtime_reaches_every_classifier_and_is_recorded(artifacts, tmp_path, argv, runtime):
    out = tmp_path / "cpu"
    assert export_main(["repository", "--artifacts", str(artifacts.root), "--out", str(out), *argv]) == 0
    found = configs(out)
    for name in CLASSIFIER_NAMES:
        assert json.loads(found[name].parameters["runtime"].string_value) == runtime
    assert json.loads((out / "repository.json").read_text())["cpu_runtime"] == runtime


def test_untrained_flags_and_weights_reach_the_combiner(artifacts, tmp_path):
    weights = {"xception": 2.0, "efficientnet_b4": 0.0, "f3net": 1.0, "effort_clip": 1.0}
    out = assemble(artifacts.root, tmp_path / "cpu", RepositoryOptions(ensemble=EnsembleSettings(weights, threshold=0.7)))
    params = {k: v.string_value for k, v in configs(out)["weighted_average"].parameters.items()}
    settings = CombinerSettings.from_parameters(params)
    assert dict(settings.weights) == weights and settings.threshold == 0.7
    assert settings.untrained_models == {"xception", "efficientnet_b4", "effort_clip"}
    summary = json.loads((out / "repository.json").read_text())
    assert summary["models"]["f3net"] == {"untrained": False, "source_sha256": f"{2:064x}"}


def test_a_settings_file_is_served_and_recorded(artifacts, tmp_path, capsys):
    """What `make repository SETTINGS=...` runs: the file's weights, threshold and image score reach the
    combiner's config, and repository.json names the file by path and sha256."""
    weights = {"xception": 3.0, "efficientnet_b4": 0.0, "f3net": 1.0, "effort_clip": 0.5}
    band = {"low": 0.3, "high": 0.42, "source": "test"}
    written = EnsembleSettings(weights, threshold=0.35, image_score="mean", provenance={"objective": "auc"},
                               uncertain_band=band)
    path = settings_file.dump(written, tmp_path / "ensemble-settings.json")
    out = tmp_path / "cpu"
    code = export_main(["repository", "--artifacts", str(artifacts.root), "--out", str(out), "--settings", str(path)])
    printed = capsys.readouterr().out
    assert code == 0 and "ensemble settings from the settings file" in printed and "uncertain band [0.3, 0.42]" in printed
    params = {k: v.string_value for k, v in configs(out)["weighted_average"].parameters.items()}
    served = CombinerSettings.from_parameters(params)
    assert (dict(served.weights), served.threshold, served.image_score) == (weights, 0.35, "mean")
    assert served.uncertain_band == band  # the band reaches the combiner's config
    summary = json.loads((out / "repository.json").read_text())
    assert summary["settings"] == written.to_dict()
    assert summary["settings_file"] == {"path": str(path.resolve()), "sha256": sha256_file(path)}
    assert summary["weights"] == weights and summary["threshold"] == 0.35


def test_without_a_settings_file_the_defaults_are_served(artifacts, tmp_path):
    out = assemble(artifacts.root, tmp_path / "cpu")
    summary = json.loads((out / "repository.json").read_text())
    assert summary["settings_file"] is None
    assert summary["weights"] == {name: 1.0 for name in CLASSIFIER_NAMES}
    assert summary["threshold"] == settings_file.DEFAULT_THRESHOLD


@pytest.mark.parametrize("content, argv, message", [
    ('{"format": "deepfake-ensemble-settings/1", "weights": {"xception": -1}}', [], "weights must be"),
    ("not json", [], "not valid JSON"),
    (None, ["--threshold", "0.3"], "both set the ensemble"),
])
def test_a_bad_settings_file_is_refused(artifacts, tmp_path, capsys, content, argv, message):
    path = tmp_path / "ensemble-settings.json"
    if content is None:
        settings_file.dump(EnsembleSettings({name: 1.0 for name in CLASSIFIER_NAMES}), path)
    else:
        path.write_text(content)
    code = export_main(["repository", "--artifacts", str(artifacts.root), "--out", str(tmp_path / "cpu"),
                        "--settings", str(path), *argv])
    assert code != 0 and message in capsys.readouterr().err
    assert not (tmp_path / "cpu").exists()


def test_detector_parameters_flow_into_the_config(artifacts, tmp_path):
    out = assemble(artifacts.root, tmp_path / "cpu", RepositoryOptions(face_detector={"max_faces": "3"}))
    params = configs(out)["face_detector"].parameters
    assert params["max_faces"].string_value == "3"
    assert json.loads(params["crop_sizes"].string_value) == [256, 224]


def test_a_calibration_map_reaches_the_combiner(artifacts, tmp_path):
    calibration = {"method": "platt", "a": 2.0, "b": -0.5}
    settings = EnsembleSettings({name: 1.0 for name in CLASSIFIER_NAMES}, calibration=calibration)
    out = assemble(artifacts.root, tmp_path / "cpu", RepositoryOptions(ensemble=settings))
    params = {k: v.string_value for k, v in configs(out)["weighted_average"].parameters.items()}
    assert CombinerSettings.from_parameters(params).calibration == calibration


@pytest.mark.parametrize("options, message", [
    (RepositoryOptions(ensemble=EnsembleSettings({"xception": 1.0, "efficientnet_b4": 0.0, "f3net": 0.0,
                                                  "effort_clip": 0.0})), "at least 2 models"),
    (RepositoryOptions(ensemble=EnsembleSettings({"xception": 1.0, "f3net": 1.0})), "no weight given"),
    (RepositoryOptions(face_detector={"max_faces": "65"}, flavour="onnxruntime"), "exceeds the classifiers' max batch"),
    (RepositoryOptions(face_detector={"min_face_sz": "20"}), "unknown face_detector parameters"),
    (RepositoryOptions(face_detector={"confidence_threshold": "2"}), "confidence_threshold"),
    (RepositoryOptions(flavour="gpu"), "unknown flavour"),
    (RepositoryOptions(flavour="tensorrt", cpu_instances=True), "need a GPU"),
    (RepositoryOptions(cpu_runtime="tensorflow"), "unknown cpu runtime 'tensorflow'"),
])
def test_refusals_are_clear(artifacts, tmp_path, options, message):
    with pytest.raises(RepositoryError, match=message):
        assemble(artifacts.root, tmp_path / "out", options)
    assert not (tmp_path / "out").exists()


def test_never_overwrites_a_folder_it_did_not_build(artifacts, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(RepositoryError, match="not built by this command"):
        assemble(artifacts.root, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    rebuilt = assemble(artifacts.root, assemble(artifacts.root, tmp_path / "cpu"))  # its own output: fine
    assert (rebuilt / "repository.json").is_file()


def test_missing_export_outputs_name_the_command_to_run(artifacts, tmp_path):
    artifacts.onnx("f3net").unlink()
    with pytest.raises(RepositoryError, match="deepfake-export all"):
        assemble(artifacts.root, tmp_path / "cpu")
    with pytest.raises(MissingArtifactError, match="deepfake-export fix"):
        assemble(tmp_path / "empty", tmp_path / "cpu2")


def test_tensorrt_plans_must_match_exactly_one_build(artifacts, tmp_path):
    with pytest.raises(RepositoryError, match="0 TensorRT plans"):
        assemble(artifacts.root, tmp_path / "trt", RepositoryOptions(flavour="tensorrt"))
    for name in CLASSIFIER_NAMES:
        add_plan(artifacts, name, "a", tensorrt_version="10.5.0", compute_capability="9.0")
        add_plan(artifacts, name, "b", tensorrt_version="10.5.0", compute_capability="8.9")
    with pytest.raises(RepositoryError, match="2 TensorRT plans"):
        assemble(artifacts.root, tmp_path / "trt", RepositoryOptions(flavour="tensorrt"))
    out = assemble(artifacts.root, tmp_path / "trt",
                   RepositoryOptions(flavour="tensorrt", plan_filter={"compute_capability": "8.9"}))
    assert (out / "xception" / "1" / "model.plan").read_bytes() == b"plan b"
    assert configs(out)["xception"].platform == "tensorrt_plan"


def test_stale_or_too_small_plans_are_never_served(artifacts, tmp_path):
    for name in CLASSIFIER_NAMES:
        add_plan(artifacts, name, "old", onnx_sha256="0" * 64, compute_capability="9.0")  # an earlier ONNX
        add_plan(artifacts, name, "small", max_batch=32, compute_capability="9.0")  # config runs 64
    with pytest.raises(RepositoryError, match=r"0 TensorRT plans .*\(2 stale or too small\)"):
        assemble(artifacts.root, tmp_path / "trt", RepositoryOptions(flavour="tensorrt"))
    for name in CLASSIFIER_NAMES:
        add_plan(artifacts, name, "current", compute_capability="9.0")
    out = assemble(artifacts.root, tmp_path / "trt", RepositoryOptions(flavour="tensorrt"))
    assert (out / "f3net" / "1" / "model.plan").read_bytes() == b"plan current"


def test_make_repository_passes_the_settings_file_when_it_exists(tmp_path):
    """`make serve`/`make demo` assemble through `make repository`: it serves $(SETTINGS) when present."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "ensemble-settings.json"

    def dry_run() -> str:
        result = subprocess.run(["make", "-n", "-C", str(root), "repository", f"SETTINGS={path}"],
                                capture_output=True, text=True, check=True)
        commands = result.stdout.replace("\\\n", " ").splitlines()
        return " ".join(next(c for c in commands if "deepfake-export repository" in c).split())

    assert "--settings" not in dry_run()
    settings_file.dump(EnsembleSettings({name: 1.0 for name in CLASSIFIER_NAMES}), path)
    assert dry_run().endswith(f"--settings {path}")
