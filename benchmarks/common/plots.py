"""The PNG figures of the benchmark reports (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common.latency import Summary  # noqa: E402

if TYPE_CHECKING:
    from benchmarks.load.capacity import Level


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def comparison_chart(path: Path, baseline: Summary, served: Mapping[int, Summary], flavour: str) -> Path:
    """Throughput and p50/p95 latency: the seed-style baseline next to the served pipeline."""
    labels = ["baseline\n(seed design)"] + [f"served {flavour}\n{level} in flight" for level in served]
    summaries = [baseline, *served.values()]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bars = left.bar(labels, [s.throughput_rps for s in summaries], color=["grey"] + ["tab:blue"] * len(served))
    left.bar_label(bars, labels=[f"{s.throughput_rps:.3g}\n({s.throughput_rps / baseline.throughput_rps:.2f}×)"
                                 for s in summaries])
    left.set_ylabel("requests / s")
    left.set_title("Throughput (higher is better)")
    left.margins(y=0.25)
    positions = range(len(summaries))
    width = 0.38
    right.bar([p - width / 2 for p in positions], [s.p50_ms for s in summaries], width, label="p50")
    right.bar([p + width / 2 for p in positions], [s.p95_ms for s in summaries], width, label="p95")
    right.set_xticks(list(positions), labels)
    right.set_ylabel("latency (ms)")
    right.set_title("Latency per request (lower is better)")
    right.legend()
    return _save(figure, path)


def throughput_latency_chart(path: Path, levels: Sequence[Level], slo_p95_ms: float, best: Level | None) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    throughput = [lvl.summary.throughput_rps for lvl in levels]
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^--")):
        axes.plot(throughput, [getattr(lvl.summary, key) for lvl in levels], style, label=key.split("_")[0])
    for lvl in levels:
        axes.annotate(f"{lvl.concurrency}", (lvl.summary.throughput_rps, lvl.summary.p95_ms),
                      textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.axhline(slo_p95_ms, color="red", linestyle=":", label=f"p95 SLO {slo_p95_ms:g} ms")
    if best is not None:
        axes.axvline(best.summary.throughput_rps, color="green", linestyle=":",
                     label=f"best under SLO: {best.summary.throughput_rps:.3g}/s")
    axes.set_xlabel("throughput (requests / s)")
    axes.set_ylabel("latency (ms)")
    axes.set_title("Throughput vs latency (labels: requests in flight)")
    axes.legend(fontsize=8)
    return _save(figure, path)


def time_per_model_chart(path: Path, levels: Sequence[Level], models: Sequence[str]) -> Path:
    """Per model and concurrency: queue vs compute time per request (Triton metrics)."""
    shown = [m for m in models if all(m in lvl.models for lvl in levels)]
    figure, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.8), sharey=True, squeeze=False)
    labels = [str(lvl.concurrency) for lvl in levels]
    for axis, model in zip(axes[0], shown):
        queue = [lvl.models[model].queue_ms for lvl in levels]
        compute = [lvl.models[model].compute_ms for lvl in levels]
        axis.bar(labels, queue, label="queue", color="tab:orange")
        axis.bar(labels, compute, bottom=queue, label="compute", color="tab:blue")
        axis.set_title(model, fontsize=9)
        axis.set_xlabel("in flight")
    axes[0][0].set_ylabel("ms per request")
    axes[0][-1].legend(fontsize=8)
    figure.suptitle("Where the time goes: queue vs compute per model")
    return _save(figure, path)


def batch_throughput_chart(path: Path, rows: Sequence[Mapping], floors: Mapping[str, float]) -> Path:
    """GPU benchmark: faces/s against batch size per model and runtime, with each model's compute floor."""
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    series: dict[tuple[str, str], list[Mapping]] = {}
    for row in rows:
        series.setdefault((row["model"], row["runtime"]), []).append(row)
    colours = {model: f"C{i}" for i, model in enumerate(floors)}
    for (model, runtime), points in series.items():
        axes.plot([p["batch"] for p in points], [p["faces_per_s"] for p in points],
                  "o-" if runtime == "pytorch" else "s--", color=colours.get(model), label=f"{model} ({runtime})")
    for model, floor in floors.items():
        axes.axhline(floor, color=colours[model], linestyle=":", linewidth=1)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("batch size")
    axes.set_ylabel("faces / s")
    axes.set_title("FP16 throughput vs batch (dotted: compute ceiling = peak / FLOPs)")
    axes.legend(fontsize=7)
    return _save(figure, path)
