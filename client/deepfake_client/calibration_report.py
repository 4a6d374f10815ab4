"""The report folder of `deepfake calibrate`: calibration.json, calibration.md and PNG plots.

The JSON holds everything the Markdown shows: sample counts, cross-validated AUCs
with their intervals, the adopted weights, calibration and threshold, ECE before and
after, each model's AUC, warnings, and the sha256 of every data file.
Plots need matplotlib (the `plots` extra); without it they are left out and said so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import CalibrationResult, Sample, sample_scores
from .metrics import roc_auc, roc_curve
from .probability import reliability

JSON_FILE = "calibration.json"
MARKDOWN_FILE = "calibration.md"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_digests(paths: Iterable[Path]) -> list[dict[str, str | None]]:
    """sha256 of each data file (None for one that is no longer there, e.g. scores from an old report)."""
    return [{"path": str(p), "sha256": sha256_file(p) if Path(p).is_file() else None} for p in paths]


def model_aucs(result: CalibrationResult, samples: Sequence[Sample], aggregation: str, top_k: int) -> dict[str, float]:
    """Each model alone (its most-fake face per frame), on the same samples."""
    alone = sample_scores(samples, np.eye(len(result.model_names)), result.image_score, aggregation, top_k)
    return {name: roc_auc(result.labels, alone[:, i]) for i, name in enumerate(result.model_names)}


def build_report(result: CalibrationResult, *, model_auc: dict[str, float], data: dict[str, Any],
                 settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": data,
        "result": result.to_dict(),
        "model_auc": model_auc,
        "reliability": {
            "before": reliability(result.labels, result.adopted_scores).to_dict(),
            "after": reliability(result.labels, result.calibrated_scores).to_dict(),
        },
        "settings": settings,
    }


def _markdown(report: dict[str, Any], plots: Sequence[Path]) -> str:
    r = report["result"]
    c = r["counts"]
    auc = r["cross_validated_auc"]

    def iv(d: dict[str, float]) -> str:
        return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"

    lines = [
        "# Ensemble calibration report",
        "",
        f"Data: `{report['data']['source']}` ({report['data']['level']} level); "
        f"{c['samples']} samples: {c['real']} real, {c['fake']} fake, from {c['real_groups']} real and "
        f"{c['fake_groups']} fake independent sources (videos count once; minimum {c['min_per_class']} per class).",
        "",
    ]
    for warning in r["warnings"]:
        lines += [f"> **Warning:** {warning}", ""]
    lines += [
        f"## Weights ({r['folds']}-fold cross-validation grouped by source, 95% bootstrap intervals)",
        "",
        "| | cross-validated AUC |",
        "| --- | --- |",
        f"| equal weights | {iv(auc['equal_weights'])} |",
        f"| searched weights | {iv(auc['searched_weights'])} |",
        f"| gain | {iv(auc['gain'])} |",
        "",
        f"Adopted: **{'searched weights' if r['adopted'] else 'equal weights'}** "
        "(searched weights are adopted only when the interval of the gain lies above 0).",
        "",
        "| model | weight | range over folds | AUC alone |",
        "| --- | --- | --- | --- |",
    ]
    for name, weight in r["weights"].items():
        spread = r["weight_ranges"][name]
        lines.append(f"| {name} | {weight:.3f} | {spread['min']:.2f} to {spread['max']:.2f} "
                     f"| {report['model_auc'][name]:.3f} |")
    calibration = r["calibration"]
    lines += ["", "## Calibration", ""]
    if calibration is None:
        lines.append("None: the served score stays the weighted mean of the models' probabilities.")
    elif calibration["method"] == "platt":
        p = r["calibration_parameters"]
        lines.append(f"Platt: p = sigmoid(a * logit(score) + b), a = {iv(p['a'])}, b = {iv(p['b'])}.")
    else:
        lines.append(f"Isotonic: {len(calibration['x'])} points, piecewise linear.")
    lines += [
        "",
        "| | before | after (nested cross-validation) |",
        "| --- | --- | --- |",
        f"| ECE (10 equal-width bins) | {iv(r['ece_before'])} | {iv(r['ece_after'])} |",
        f"| AUC | {iv(auc['searched_weights'] if r['adopted'] else auc['equal_weights'])} "
        f"| {iv(r['auc_after_calibration'])} |",
        "",
        f"Threshold ({r['objective']} objective, on the calibrated probability): {iv(r['threshold_interval'])}.",
        "",
        _band_line(report["settings"]["content"].get("uncertain_band")),
        "",
        "## Stacking (measured, not served)",
        "",
        _stacking_line(r["stacking"]),
        "",
        "## Settings",
        "",
        f"{'Written to `' + report['settings']['path'] + '`' if report['settings']['written'] else 'Not written'}"
        f": {report['settings']['reason']}",
        "",
    ]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", f"Data files and their sha256: see `{JSON_FILE}` (`data.files`).", ""]
    return "\n".join(lines)


def _band_line(band: dict[str, Any] | None) -> str:
    if band is None:
        return "Uncertain band: none (every face is FAKE or REAL)."
    return (f"Uncertain band: [{band['low']:.3f}, {band['high']:.3f}] ({band['source']}): "
            "scores inside it are served as UNCERTAIN.")


def _stacking_line(stacked: dict[str, Any] | None) -> str:
    if stacked is None:
        return "Not measured."
    auc, gain = stacked["auc"], stacked["gain_over_weighted_average"]
    verdict = ("beats the weighted average beyond the interval; serving it would need a stacking form "
               "in the settings file" if stacked["better_beyond_the_interval"]
               else "does not beat the weighted average beyond the interval, so it is not offered")
    return (f"A logistic regression over the models' logits, same folds: cross-validated AUC "
            f"{auc['estimate']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}], gain {gain['estimate']:+.3f} "
            f"[{gain['low']:+.3f}, {gain['high']:+.3f}]: it {verdict}.")


def write_calibration_report(report: dict[str, Any], result: CalibrationResult, samples: Sequence[Sample],
                             out_dir: Path, aggregation: str, top_k: int) -> tuple[list[Path], str]:
    """(files written, note about plots left out or "")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / JSON_FILE]
    written[0].write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    plots, note = [], ""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note = 'plots skipped: matplotlib is not installed (pip install "deepfake-client[plots]")'
    else:
        plots = [_plot_roc(plt, result, samples, aggregation, top_k, out_dir / "roc.png"),
                 _plot_reliability(plt, result, out_dir / "reliability.png")]
    markdown = out_dir / MARKDOWN_FILE
    markdown.write_text(_markdown(report, plots))
    return written + [markdown] + plots, note


def _finite(value: Any) -> Any:
    """JSON-ready: NumPy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _plot_roc(plt, result: CalibrationResult, samples: Sequence[Sample], aggregation: str, top_k: int,
              path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    alone = sample_scores(samples, np.eye(len(result.model_names)), result.image_score, aggregation, top_k)
    curves = [(name, alone[:, i], 1.0, ":") for i, name in enumerate(result.model_names)]
    curves += [("ensemble, equal weights (before)", result.equal_scores, 2.0, "--"),
               ("ensemble, adopted, out of fold (after)", result.calibrated_scores, 2.5, "-")]
    for name, scores, width, style in curves:
        fpr, tpr, _ = roc_curve(result.labels, scores)
        axes.plot(fpr, tpr, style, linewidth=width, label=f"{name} (AUC {roc_auc(result.labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, per model and ensemble")
    axes.legend(loc="lower right", fontsize="x-small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _plot_reliability(plt, result: CalibrationResult, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    for name, scores, marker in (("before", result.adopted_scores, "s--"), ("after", result.calibrated_scores, "o-")):
        bins = reliability(result.labels, scores)
        axes.plot(bins.mean_predicted, bins.fraction_fake, marker, label=f"{name} (ECE {bins.ece:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="perfectly calibrated")
    axes.set(xlabel="predicted fake probability (bin mean)", ylabel="fraction fake", xlim=(0, 1), ylim=(0, 1),
             title="Reliability (10 equal-width bins)")
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
