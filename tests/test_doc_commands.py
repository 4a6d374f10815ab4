"""Every command of ours that the docs show exists, and so does every long flag it passes (issue 22).

Each entry point's --help runs in this process (runpy for `python -m`, main() for the console
scripts: one import of torch instead of one per command); make targets run as `make -n`.
"""

import contextlib
import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_dev import doc_commands
from deepfake_dev.docs_evidence import REPO_ROOT, doc_files

SHOWN = [command for doc in doc_files() for command in doc_commands.commands(doc)]
ENTRIES = sorted({command.entry for command in SHOWN})


def _help(entry: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        if entry[0] == "-m":
            monkeypatch.setattr(sys, "argv", [entry[1], "--help"])
            runpy.run_module(entry[1], run_name="__main__", alter_sys=True)
        elif entry[0] == "deepfake":
            from deepfake_client.cli import main
            sys.exit(main([*entry[1:], "--help"]))
        else:
            from export.cli import main
            sys.exit(main([*entry[1:], "--help"]))
    assert exited.value.code in (0, None), out.getvalue()
    return out.getvalue()


def test_the_docs_show_commands_of_every_kind():
    kinds = {command.kind for command in SHOWN}
    assert kinds == {"make", "-m", "cli"}
    assert ("deepfake-export", "repository") in ENTRIES


# runpy warns when it re-runs a module that an earlier test imported; --help reads nothing stale.
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package:RuntimeWarning")
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e[0] != "make"], ids=" ".join)
def test_shown_flags_are_in_the_help(entry: tuple[str, ...], monkeypatch: pytest.MonkeyPatch):
    text = _help(entry, monkeypatch)
    shown = [c for c in SHOWN if c.entry == entry]
    missing = [f"{c.doc.relative_to(REPO_ROOT)}:{c.line}: {flag} in `{c.text}`"
               for c in shown for flag in c.flags if flag not in _long_options(text)]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("target", sorted({e[1] for e in ENTRIES if e[0] == "make"}))
def test_shown_make_targets_exist(target: str):
    result = subprocess.run(["make", "-n", "-C", str(REPO_ROOT), target], capture_output=True, text=True,
                            check=False, timeout=60)
    assert "No rule to make target" not in result.stderr, result.stderr


def _long_options(help_text: str) -> set[str]:
    return set(doc_commands.LONG_FLAG.findall(help_text))


def test_a_flag_that_does_not_exist_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    doc = tmp_path / "README.md"
    doc.write_text("```bash\npython -m benchmarks.load.loadtest --url grpc://h:8001 --repository build/r\n```\n")
    [command] = doc_commands.commands(doc)
    assert command.flags == ("--url", "--repository")
    assert "--repository" not in _long_options(_help(command.entry, monkeypatch))
    assert "--url" in _long_options(_help(command.entry, monkeypatch))


def test_commands_are_found_where_the_docs_write_them(tmp_path: Path):
    doc = tmp_path / "README.md"
    doc.write_text("Run `deepfake explain x.jpg --out o.png`, not `deepfake_client`.\n\n"
                   "```sh\nFOO=1 heavy deepfake-export tensorrt --artifacts build \\\n    [--opt-batch 8]  # comment --no\n"
                   "kubectl -n deepfake logs x && make serve\n"
                   "docker compose run load python3 -m benchmarks.load.sweep --mix face=1\n```\n")
    assert [(c.entry, c.flags) for c in doc_commands.commands(doc)] == [
        (("deepfake", "explain"), ("--out",)),
        (("deepfake-export", "tensorrt"), ("--artifacts", "--opt-batch")),
        (("make", "serve"), ()),
        (("-m", "benchmarks.load.sweep"), ("--mix",)),
    ]
