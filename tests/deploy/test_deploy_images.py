"""The images, read as Docker would build them: the one pin, FROM lines, non-root users, no
secrets in the build context, pinned packages, and every module the image runs is installed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from deploy_files import (
    DOCKER,
    K8S,
    REPO,
    copy_sources,
    dockerfile_instructions,
    dockerignore_excludes,
    load_entrypoint,
    read_env,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

IMAGES = {"serving": DOCKER / "serving" / "Dockerfile", "load": DOCKER / "load" / "Dockerfile",
          "web": DOCKER / "web" / "Dockerfile"}
README = DOCKER / "README.md"


def test_the_pin_file_holds_one_release():
    pins = read_env()
    assert re.fullmatch(r"\d\d\.\d\d", pins["TRITON_TAG"]) and re.fullmatch(r"2\.\d+\.\d+", pins["TRITON_VERSION"])
    # Triton 2.60.0 is 25.08; one minor per monthly release since (docs/design.md §8).
    year, month = map(int, pins["TRITON_TAG"].split("."))
    assert (year, month) >= (25, 8)
    assert pins["TRITON_VERSION"] == f"2.{60 + (year - 25) * 12 + month - 8}.0"
    for key in ("PROMETHEUS_IMAGE", "GRAFANA_IMAGE", "PYTHON_IMAGE"):
        name, _, tag = pins[key].rpartition(":")
        assert name and tag and tag != "latest", key


def test_the_pin_file_rejects_what_compose_would_misread(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text('TRITON_TAG="26.05"\n')
    with pytest.raises(ValueError, match="plain KEY=VALUE"):
        read_env(bad)


def test_no_other_file_names_a_triton_release():
    """Only docker/versions.env names the release; everything else takes it from there."""
    tag = read_env()["TRITON_TAG"]
    pattern = re.compile(r"tritonserver:(\d\d\.\d\d)")
    for path in DOCKER.rglob("*"):
        if path.is_file() and path.suffix not in (".png",) and path != DOCKER / "versions.env":
            for release in pattern.findall(path.read_text()):
                assert release == tag, f"{path.relative_to(REPO)} names tritonserver:{release}"
    for path in (DOCKER / "serving" / "Dockerfile", DOCKER / "load" / "Dockerfile"):
        args = [a for k, a in dockerfile_instructions(path) if k == "ARG"]
        assert all("=" not in a for a in args), f"{path}: an ARG default would be a second pin"


def test_from_lines_use_the_pinned_arguments():
    serving = dockerfile_instructions(IMAGES["serving"])
    assert serving[0] == ("ARG", "TRITON_TAG")
    assert [a for k, a in serving if k == "FROM"] == ["nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3"]
    run = " ".join(a for k, a in serving if k == "RUN")
    assert '"${NVIDIA_TRITON_SERVER_VERSION}" = "${TRITON_TAG}"' in run  # the base must be the pinned release
    assert '"${TRITON_SERVER_VERSION}" = "${TRITON_VERSION}"' in run
    load = dockerfile_instructions(IMAGES["load"])
    assert load[0] == ("ARG", "PYTHON_IMAGE") and [a for k, a in load if k == "FROM"] == ["${PYTHON_IMAGE}"]


@pytest.mark.parametrize("image", IMAGES)
def test_images_run_as_a_non_root_user(image):
    users = [a for k, a in dockerfile_instructions(IMAGES[image]) if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0] == "1000"  # what the manifests' runAsUser and the volumes expect


@pytest.mark.parametrize("image", IMAGES)
def test_no_secret_reaches_an_image(image):
    instructions = dockerfile_instructions(IMAGES[image])
    for keyword, arguments in instructions:
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)\w*\s*=", arguments, re.IGNORECASE), arguments
    ignore = IMAGES[image].with_name("Dockerfile.dockerignore")
    for path in (".git/config", ".venv/bin/python", "build/test-artifacts/onnx/xception.onnx", "weights/f3net_best.pth",
                 "docker/secrets/triton_admin_key", "docker/secrets/tls/tls.key", "export/__pycache__/cli.pyc"):
        assert dockerignore_excludes(ignore, path), f"{path} would be sent to `docker build`"
    for source in copy_sources(instructions):
        assert not dockerignore_excludes(ignore, source.rstrip("/")), f"COPY {source} is excluded from the context"
        assert (REPO / source).exists(), source


def test_dockerignore_reader():
    ignore = IMAGES["serving"].with_name("Dockerfile.dockerignore")
    assert not dockerignore_excludes(ignore, "export/cli.py") and dockerignore_excludes(ignore, "README.md")
    assert dockerignore_excludes(ignore, "client/deepfake_client/client.py")  # the serving image has no client


def constraints() -> dict[str, str]:
    output = subprocess.run(["sh", str(DOCKER / "pip-constraints.sh")], capture_output=True, text=True, check=True).stdout
    pins = {}
    for line in output.splitlines():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras, line
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def image_packages(image: str) -> list[Requirement]:
    lines = (DOCKER / image / "packages.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_constraints_are_the_project_pins():
    pins = constraints()
    assert pins["numpy"].startswith("1.")  # the python backend needs numpy < 2
    assert pins["facenet-pytorch"] and pins["torch"] and pins["tritonclient"]
    requirements = (REPO / "requirements" / "server.txt").read_text()
    for name, version in pins.items():
        if re.search(rf"^{re.escape(name)}\b", requirements, re.MULTILINE | re.IGNORECASE):
            assert f"=={version}" in requirements


@pytest.mark.parametrize("image", ["serving", "load", "web"])
def test_every_image_package_is_pinned(image):
    pins = constraints()
    for requirement in image_packages(image):
        name = canonicalize_name(requirement.name)
        pinned_here = [s for s in requirement.specifier if s.operator == "=="]
        assert name in pins or pinned_here, f"{image}: {requirement} has no pinned version"
        if pinned_here:  # not in requirements/ yet: must be the version the project is tested with
            assert name not in pins and metadata.version(name) == pinned_here[0].version


def _installed_closure(requirements: list[Requirement]) -> set[str]:
    """Distributions pip installs for these requirements (their dependencies, extras included),
    as resolved in this environment, which has the same pins."""
    seen: set[str] = set()
    # (requirement, the extras asked of the package that requires it: what its marker is evaluated with)
    todo = [(r, frozenset()) for r in requirements]
    while todo:
        requirement, parent_extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in (parent_extras or {""})):
            continue
        if name in seen:
            continue
        seen.add(name)
        for dependency in metadata.requires(name) or []:
            todo.append((Requirement(dependency), frozenset(requirement.extras)))
    return seen


def _imports(paths: list[Path]) -> set[str]:
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


# Imports the image does not install: provided by Triton, installed by its own step, or opt-in.
PROVIDED = {"triton_python_backend_utils": "Triton's python backend", "tensorrt": "install-tensorrt-python.sh",
            "dlib": "opt-in dlib68 landmarks (DetectorSettings.landmarks), not in the image"}
OWN = {"export", "deepfake_models", "deepfake_serving", "deepfake_contract", "deepfake_dev", "benchmarks", "deepfake_client"}


def _modules_of_distributions(distributions: set[str]) -> set[str]:
    provided = set()
    for module, owners in metadata.packages_distributions().items():
        if any(canonicalize_name(owner) in distributions for owner in owners):
            provided.add(module)
    return provided


def _copied_python(image: str) -> list[Path]:
    """Every python file the image's COPY lines bring in."""
    files = []
    for source in copy_sources(dockerfile_instructions(IMAGES[image])):
        path = REPO / source
        files += [path] if path.suffix == ".py" else sorted(path.rglob("*.py")) if path.is_dir() else []
    return files


def test_the_serving_image_copies_only_what_it_runs():
    sources = {source.rstrip("/") for source in copy_sources(dockerfile_instructions(IMAGES["serving"]))}
    for unused in ("benchmarks", "deepfake_dev", "client/deepfake_client", "pyproject.toml", "model_repository",
                   "model_repository/onnx_classifier", "model_repository/pytorch_classifier"):
        assert unused not in sources, f"the serving image copies {unused}, which it does not run"
    # What it copies imports only what it copies (the tensorrt flavour's models, the entrypoint),
    # but for steps the image never runs, named here.
    never_run = {"deepfake_dev": "export.parity's sample faces, for the ONNX export step (done before the image)"}
    copied_packages = {Path(source).name for source in sources}
    own = {"export", "deepfake_models", "deepfake_serving", "deepfake_contract", "deepfake_dev", "benchmarks",
           "deepfake_client"}
    assert _imports(_copied_python("serving")) & own <= copied_packages | set(never_run)
    ignore = IMAGES["serving"].with_name("Dockerfile.dockerignore")
    for path in ("benchmarks/comparison/compare.py", "deepfake_dev/demo.py", "model_repository/onnx_classifier/1/model.py"):
        assert dockerignore_excludes(ignore, path), f"{path} would be sent to `docker build`"


def test_the_serving_image_installs_every_module_its_code_imports():
    sources = _copied_python("serving")
    assert DOCKER / "serving" / "entrypoint.py" in sources and REPO / "deepfake_models" / "registry.py" in sources
    facenet = Requirement((REPO / "requirements" / "facenet.txt").read_text().split()[-1])
    installed = _installed_closure(image_packages("serving")) | {canonicalize_name(facenet.name)}
    # facenet-pytorch is installed --no-deps: its imports must come from the list itself.
    missing = _imports(sources) - _modules_of_distributions(installed) - set(sys.stdlib_module_names) - OWN - set(PROVIDED)
    assert not missing, f"imported by the serving code but not installed in the image: {sorted(missing)}"
    facenet_imports = _imports(list(Path(metadata.distribution("facenet-pytorch").locate_file("facenet_pytorch")).rglob("*.py")))
    facenet_needs = {"torch", "torchvision", "numpy", "PIL", "requests", "tqdm"} & facenet_imports
    assert facenet_needs <= _modules_of_distributions(installed)


def test_the_load_image_installs_every_module_locust_imports():
    # Locust and the headless runner. Not the capacity sweep: benchmarks.common.machine imports torch,
    # which this image leaves out (docker/README.md runs the sweep from the project's venv).
    sources = [REPO / "benchmarks" / "load" / name for name in ("locustfile.py", "workload.py", "locust_results.py",
                                                      "loadtest.py", "targets.py")]
    sources += [REPO / "deepfake_dev" / "samples.py", REPO / "model_repository" / "deepfake_serving" / "images.py"]
    sources += list((REPO / "client" / "deepfake_client").glob("*.py"))
    installed = _installed_closure(image_packages("load"))
    optional = {"matplotlib"}  # the SDK's plots extra (deepfake evaluate), guarded by an ImportError
    missing = _imports(sources) - _modules_of_distributions(installed) - set(sys.stdlib_module_names) - OWN - optional
    assert not missing, f"imported by the load generator but not installed in the image: {sorted(missing)}"


def test_the_web_image_installs_every_module_the_gateway_imports():
    web = dockerfile_instructions(IMAGES["web"])
    assert web[0] == ("ARG", "PYTHON_IMAGE") and [a for k, a in web if k == "FROM"] == ["${PYTHON_IMAGE}"]
    sources = list((REPO / "client" / "deepfake_client").rglob("*.py"))
    installed = _installed_closure(image_packages("web"))
    # The SDK's plots extra (deepfake evaluate, guarded by an ImportError) and its mlflow extra
    # (imported only by `deepfake history export --mlflow`, which says so when it is missing).
    optional = {"matplotlib", "mlflow"}
    missing = _imports(sources) - _modules_of_distributions(installed) - set(sys.stdlib_module_names) - OWN - optional
    assert not missing, f"imported by the SDK and its gateway but not installed in the image: {sorted(missing)}"


def test_the_import_check_finds_a_missing_package():
    assert "torch" not in _modules_of_distributions(_installed_closure([Requirement("numpy")]))


def test_images_and_docs_agree_on_the_release():
    pins = read_env()
    text = README.read_text()
    assert f"nvcr.io/nvidia/tritonserver:{pins['TRITON_TAG']}-py3" in text
    assert f"TRITON_TAG={pins['TRITON_TAG']}" in text and pins["TRITON_VERSION"] in text
    for command in ("--env-file docker/versions.env", "docker/serving/Dockerfile", "docker/load/Dockerfile",
                    "build-plans", "kubectl apply -k docker/k8s"):
        assert command in text, command
    assert "benchmarks/README.md" in text  # sizing comes from the capacity benchmark, not from us
    entrypoint = load_entrypoint()
    assert f"--max-batch {entrypoint.plan_profile(8).max_batch}" in text  # the documented manual build
    assert str(K8S.relative_to(REPO)) in text
