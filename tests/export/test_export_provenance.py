"""The export cache fingerprint covers every package whose code shapes the outputs."""

from __future__ import annotations

import shutil

import pytest

from export import provenance


@pytest.mark.parametrize("package", ["export", "deepfake_models", "deepfake_contract"])
def test_a_change_in_a_fingerprinted_package_changes_the_fingerprint(package, tmp_path, monkeypatch):
    before = provenance.code_fingerprint()
    real = provenance._package_dir
    copy = tmp_path / package
    shutil.copytree(real(package), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "_package_dir", lambda name: copy if name == package else real(name))
    assert provenance.code_fingerprint() == before  # same code, same fingerprint
    (copy / "__init__.py").write_text((copy / "__init__.py").read_text() + "\nRENAMED_TENSOR = 'X'\n")
    assert provenance.code_fingerprint() != before


def test_the_assembly_modules_do_not_invalidate_exports(tmp_path, monkeypatch):
    before = provenance.code_fingerprint()
    real = provenance._package_dir
    copy = tmp_path / "export"
    shutil.copytree(real("export"), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "_package_dir", lambda name: copy if name == "export" else real(name))
    (copy / "repository.py").write_text("# edited\n")
    assert provenance.code_fingerprint() == before
