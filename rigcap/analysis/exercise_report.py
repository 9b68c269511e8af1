"""The exercise report: a rich table for the terminal and a PNG (the driving angle with its
thresholds and reps, then one panel per form rule with its limit and the frames that broke it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rigcap.analysis.angles import JointAngles
from rigcap.analysis.exercises import ExerciseResult, Signal


def reps_table(result: ExerciseResult, title: str):
    from rich.table import Table

    ex = result.exercise
    t = (lambda f: f"{f / result.fps:.2f}") if result.fps else (lambda f: "-")
    table = Table(title=title)
    for col in ("rep", "frames", f"{ex.peak_name} frame", f"{ex.peak_name} s", f"{ex.peak_name} deg", "ROM deg",
                "rule hits"):
        table.add_column(col, justify="right" if col != "rule hits" else "left")
    for r in result.reps:
        hits = ", ".join(f"{h.rule} {h.value:.0f}" for h in r.hits)  # the detail lines follow the table
        table.add_row(str(r.index), f"{r.start}-{r.end}", str(r.peak), t(r.peak), f"{r.peak_value:.1f}",
                      f"{r.rom:.1f}", hits or "[green]ok[/]")
    return table


def plot_report(path: str | Path, angles: JointAngles, result: ExerciseResult, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ex = result.exercise
    n = result.driving.size
    x = np.arange(n) / result.fps if result.fps else np.arange(n)
    scale = (1.0 / result.fps) if result.fps else 1.0
    rows = 1 + len(ex.rules)
    fig, axes = plt.subplots(rows, 1, figsize=(13, 2.0 + 1.7 * rows), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot(x, result.driving, color="k", lw=1.2, label=ex.driving.label)
    ax.axhline(ex.enter, color="tab:blue", ls="--", lw=0.8, label=f"enter {ex.enter:g}")
    ax.axhline(ex.exit, color="tab:blue", ls=":", lw=0.8, label=f"exit {ex.exit:g}")
    for r in result.reps:
        ax.axvspan(r.start * scale, r.end * scale, color="tab:red" if r.hits else "tab:green", alpha=0.15, lw=0)
        ax.plot(r.peak * scale, r.peak_value, "o", color="tab:red" if r.hits else "tab:green", ms=4)
        ax.annotate(f"{r.index}: {r.peak_value:.0f}", (r.peak * scale, r.peak_value), fontsize=7,
                    textcoords="offset points", xytext=(0, 5), ha="center")
    for frame, _ in result.not_this_exercise:
        ax.plot(frame * scale, result.driving[frame], "x", color="0.5", ms=5)
    ax.set_title(f"{ex.name}: {len(result.reps)} reps (green ok, red with rule hits; grey x: not this exercise)",
                 fontsize=9)
    ax.set_ylabel("deg", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    for ax, rule in zip(axes[1:, 0], ex.rules):
        names = rule.signal.angles if rule.each else (None,)
        for name in names:
            curve = (Signal((name,), absolute=rule.signal.absolute).combined(angles) if name
                     else rule.signal.combined(angles))
            ax.plot(x, curve, lw=1.0, label=name or rule.signal.label)
        for bound in (rule.min, rule.max):
            if bound is not None:
                ax.axhline(bound, color="tab:red", ls="--", lw=0.8)
        hits = [h for h in result.hits if h.rule == rule.name]
        if hits:
            ax.plot([h.frame * scale for h in hits], [h.value for h in hits], "x", color="tab:red", ms=6)
        ax.set_title(f"{rule.name}: {rule.text or rule.bound_text()} ({'at the ' + ex.peak_name if rule.at == 'peak' else 'over the rep'}"
                     f"; {len(hits)} hits)", fontsize=9)
        ax.set_ylabel("deg", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    for a in axes[:, 0]:
        a.grid(alpha=0.3)
        a.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)" if result.fps else "frame", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.985, top=1 - 0.5 / (2.0 + 1.7 * rows), bottom=0.35 / (2.0 + 1.7 * rows) + 0.03,
                        hspace=0.45)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
