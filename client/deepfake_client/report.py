"""Write an evaluation report: report.json, plus ROC, confusion-matrix and risk-coverage PNGs.

Plots need matplotlib (`pip install "deepfake-client[plots]"`); without it only
the JSON is written and `write_report` says which plots were left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from .evaluation import Evaluation, LevelReport
from .metrics import roc_curve

REPORT_FILE = "report.json"


def write_report(evaluation: Evaluation, out_dir: Path) -> tuple[list[Path], str]:
    """(files written, note about plots left out or "")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / REPORT_FILE
    report.write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
    written = [report]
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return written, 'plots skipped: matplotlib is not installed (pip install "deepfake-client[plots]")'
    for level_name, level in (("frame", evaluation.frame), ("video", evaluation.video)):
        if level.ensemble is None:
            continue
        if level.ensemble.positives and level.ensemble.negatives:
            written.append(_plot_roc(plt, level, level_name, out_dir / f"roc_{level_name}.png"))
        written.append(_plot_confusion(plt, level, level_name, out_dir / f"confusion_{level_name}.png"))
        written.append(_plot_risk_coverage(plt, level, level_name, out_dir / f"risk_coverage_{level_name}.png"))
    return written, ""


def _plot_risk_coverage(plt, level: LevelReport, level_name: str, path: Path) -> Path:
    """Error rate over the decided samples as the band around the threshold widens; the served
    band (when there is one) and no abstention marked."""
    a = level.abstention
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(a.curve_coverage, a.curve_error_rate, linewidth=2, label="ensemble, nearest to the threshold abstain")
    axes.plot([1.0], [a.error_rate], "ko", label=f"no abstention: error {a.error_rate:.3f}")
    if a.band is not None and a.covered:
        axes.plot([a.coverage], [a.covered_error_rate], "s", color="#e67700", markersize=8,
                  label=f"served band [{a.band[0]:.2f}, {a.band[1]:.2f}]: coverage {a.coverage:.2f}, "
                        f"error {a.covered_error_rate:.3f}")
    axes.set(xlabel="coverage (share decided)", ylabel="error rate of the decided", xlim=(0, 1.02),
             title=f"risk-coverage, {level_name} level (t={a.threshold:.3g})")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _plot_roc(plt, level: LevelReport, level_name: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5, 5))
    curves = [("ensemble", level.ensemble_scores, level.ensemble.roc_auc)]
    curves += [(name, scores, level.models[name].roc_auc) for name, scores in level.model_scores.items()]
    for name, scores, auc in curves:
        fpr, tpr, _ = roc_curve(level.labels, scores)
        axes.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", linewidth=2.5 if name == "ensemble" else 1.2)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {level_name} level")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _plot_confusion(plt, level: LevelReport, level_name: str, path: Path) -> Path:
    m = level.ensemble
    cells = [[m.tn, m.fp], [m.fn, m.tp]]
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.imshow(cells, cmap="Blues")
    for row in range(2):
        for column in range(2):
            axes.text(column, row, str(cells[row][column]), ha="center", va="center", fontsize=14)
    axes.set_xticks([0, 1], ["REAL", "FAKE"])
    axes.set_yticks([0, 1], ["REAL", "FAKE"])
    axes.set(xlabel="predicted", ylabel="true", title=f"ensemble, {level_name} level (t={m.threshold:.3g})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
