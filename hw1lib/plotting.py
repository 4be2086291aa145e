"""One figure style for the whole report.

Plot helpers take `ax=` and return it; `save_figure` writes a PNG (for the
README) and a PDF (vector) copy. Colours are fixed per model index so the
same model has the same colour in every figure of a section.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from .paths import figures_dir, replacing, shown

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

STYLE = {
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "savefig.dpi": 130,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


def use_style() -> None:
    matplotlib.rcParams.update(STYLE)


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def mark_empty_panels(fig: plt.Figure) -> list[str]:
    """Make every panel of `fig` drawable whatever its data (none, all NaN, no
    positive value on a log axis: what a smoke run or a failed method gives):
    a log axis with no positive finite value becomes linear, and a panel with no
    finite value says so in its middle. Returns what was changed, one line per
    panel (empty when every panel had data to show)."""
    notes = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or ax.name != "rectilinear":
            continue        # colour bars follow their image; 3-d panels have limits of their own
        lim = ax.dataLim
        finite = np.all(np.isfinite([lim.x0, lim.x1, lim.y0, lim.y1]))
        relinear = [a for a, minpos in (("x", lim.minposx), ("y", lim.minposy))
                    if getattr(ax, f"get_{a}scale")() == "log" and not (np.isfinite(minpos) and minpos > 0)]
        for a in relinear:
            getattr(ax, f"set_{a}scale")("linear")
        if not finite:
            ax.text(0.5, 0.5, "no finite values to show", transform=ax.transAxes, ha="center", va="center",
                    color="gray", fontsize=12)
            notes.append(f"panel '{ax.get_title()}': no finite values")
        elif relinear:
            notes.append(f"panel '{ax.get_title()}': no positive values, {' and '.join(relinear)} axis linear")
    return notes


def save_figure(fig: plt.Figure, name: str, profile: str) -> None:
    """Write `<name>.png` to the figures directory of `profile` (`figures/` for
    full, `build/figures/<profile>/` otherwise), and for the full profile (the
    report) a vector copy `<name>.pdf`; say where, relative to the repository (a
    notebook's output holds no machine path), and name any panel that had
    nothing to show (`mark_empty_panels`). Each file is written under a
    temporary name and renamed into place: a stopped run never leaves a
    truncated figure under its real name."""
    for note in mark_empty_panels(fig):
        print(f"{name}: {note}")
    out = figures_dir(profile)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    with replacing(png) as tmp:
        fig.savefig(tmp, bbox_inches="tight", metadata={"Software": None}, format="png")
    vector = profile == "full"
    if vector:
        # Fixed metadata keeps regenerated vector files byte-stable across runs.
        with replacing(out / f"{name}.pdf") as tmp:
            fig.savefig(tmp, bbox_inches="tight", metadata={"CreationDate": None, "Producer": None}, format="pdf")
    print(f"saved {shown(png)}" + (" (and .pdf)" if vector else ""))


def mean_spread(ax: plt.Axes | None, x: np.ndarray, runs: np.ndarray, *, label: str, color: str,
                log: bool = False, ls: str = "-", median: bool = False, lw: float = 1.4) -> plt.Axes:
    """Mean of `runs` [len(x), S] as a line (style `ls`), min-max over the S runs
    as a band, on `ax` (None: the current axes).

    With log=True the mean is geometric (the right centre for losses on a log axis);
    with median=True the line is the median over the runs instead (robust to one
    run's spike at a given x, which the band still shows).
    """
    ax = plt.gca() if ax is None else ax
    runs = np.asarray(runs, dtype=float)
    if median:
        centre = np.median(runs, 1)
    else:
        centre = np.exp(np.log(runs).mean(1)) if log else runs.mean(1)
    ax.plot(x, centre, color=color, label=label, lw=lw, ls=ls)
    if runs.shape[1] > 1:
        ax.fill_between(x, runs.min(1), runs.max(1), color=color, alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    return ax


def draw_interval(ax: plt.Axes, x: float, d: dict | None, *, label: str | None = None, **style) -> None:
    """The interval a table prints, as an error bar at x: an interval dict from the headline (centre `gmean`
    or `mean`, bounds `lo`/`hi`, or a half-width `ci95`), so a figure can never draw another interval than
    its table's. Nothing where there is no interval (one run)."""
    if d is None:
        return
    m = d.get("gmean", d.get("mean"))
    lo, hi = (d.get("lo"), d.get("hi")) if "lo" in d else (
        (None, None) if d.get("ci95") is None else (m - d["ci95"], m + d["ci95"]))
    if m is None or lo is None or hi is None:
        return
    style = {"fmt": "s", "color": "k", "ms": 4, "capsize": 3} | style
    ax.errorbar(x, m, [[m - lo], [hi - m]], label=label if label not in ax.get_legend_handles_labels()[1] else None,
                **style)


def twin_axis(ax: plt.Axes, ylabel: str, color: str) -> plt.Axes:
    """A second y axis on the right of `ax`, its label in the colour of what it
    shows, without a second grid."""
    ax2 = ax.twinx()
    ax2.set_ylabel(ylabel, color=color)
    ax2.grid(False)
    return ax2


def twin_legend(ax: plt.Axes, ax2: plt.Axes, **kwargs) -> None:
    """One legend on `ax` for the labelled lines of both axes of a twin plot."""
    lines = [l for a in (ax, ax2) for l in a.get_lines() if not l.get_label().startswith("_")]
    ax.legend(lines, [l.get_label() for l in lines], **kwargs)


def contour_panel(ax: plt.Axes, a: np.ndarray, b: np.ndarray, z: np.ndarray, *, title: str,
                  xlabel: str, ylabel: str, levels: int = 25):
    """Filled contours of a positive surface z [len(b), len(a)] on a log colour
    scale, with thin white contour lines; returns the mappable for a colorbar."""
    from matplotlib.colors import LogNorm

    A, B = np.meshgrid(a, b)
    lv = np.geomspace(z.min(), z.max(), levels)
    cs = ax.contourf(A, B, z, levels=lv, cmap="viridis", norm=LogNorm())
    ax.contour(A, B, z, levels=lv, colors="white", linewidths=0.3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return cs


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table (deterministic, so nbval can compare it)."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def training_curves(arrays: dict, models: list[dict], tasks: list[str], titles: dict[str, str], *,
                    window: int, suptitle: str) -> plt.Figure:
    """1-1b's curves: per task (a row) the train and test loss and accuracy of
    each model after every epoch, `arrays[k]` [task, model, epoch, seed] (epoch 0
    = the initialisation), mean over seeds with the min-max band; the last
    `window` epochs (a plateau rule's) shaded."""
    epochs = np.arange(arrays["train_loss"].shape[2])
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.8 * len(tasks)), squeeze=False)
    for t, task in enumerate(tasks):
        ax_loss, ax_acc = axes[t]
        for i, m in enumerate(models):
            name = f"{m['name']} ({m['params']} params)"
            for split, ls in (("train", "-"), ("test", "--")):
                mean_spread(ax_loss, epochs, arrays[f"{split}_loss"][t, i], label=f"{name}, {split}", color=color(i),
                            log=True, ls=ls)
                mean_spread(ax_acc, epochs, 100 * arrays[f"{split}_acc"][t, i], label=f"{name}, {split}",
                            color=color(i), ls=ls)
        for ax in (ax_loss, ax_acc):
            ax.axvspan(epochs[-1] - window, epochs[-1], color="0.9", zorder=0)
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        label = titles.get(task, task)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title=f"{label} loss: train (solid), test (dashed)")
        low = min(arrays["test_acc"][t, :, 1:].min(), arrays["train_acc"][t, :, 1:].min())
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{label} accuracy: train (solid), test (dashed)",
                   ylim=(max(0, 100 * low - 1), 100))
        ax_loss.legend(fontsize=7)
    fig.suptitle(suptitle)
    return fig
