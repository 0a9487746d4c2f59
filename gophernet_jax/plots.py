"""Figures: accuracy distributions (discrete, so counts per value) and training curves."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _margins(fig, *, left: float, right: float, bottom: float, top: float, **space: float) -> None:
    """Fixed margins in inches: `tight_layout` would measure every label in a draw of its
    own, which cost a run's plots more than half their time."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **space
    )


#: A panel's title, placed at y=1.0, where matplotlib puts it anyway: left unplaced, it
#: measures the axes' tick labels on every draw to lift a title above any on top, which
#: these figures do not have (the same pixels either way).
TITLE: dict[str, Any] = {"fontsize": 9, "loc": "left", "y": 1.0}


def plot_accuracy(accuracies: Mapping[str, np.ndarray], path: Path, test_rows: int | None = None) -> None:
    """`accuracy.png`: per configuration, the share of seeds at each accuracy value.

    Accuracy on n test rows takes only the values k/n, so this draws one bar per value
    (a smooth density would invent values in between), one panel per configuration.
    """
    labels = list(accuracies)
    fig, axes = plt.subplots(len(labels), 1, figsize=(8, 1.1 + 1.5 * len(labels)), sharex=True, squeeze=False)
    width = 0.8 / test_rows if test_rows else 0.02
    for ax, label in zip(axes[:, 0], labels):
        values, counts = np.unique(
            np.round(np.asarray(accuracies[label], dtype=float), 6), return_counts=True
        )
        ax.bar(values, counts / counts.sum(), width=width, color="tab:blue")
        ax.set_ylabel("share")
        title = f"{label}  (n={counts.sum()}, mean {np.mean(accuracies[label]):.4f})"
        ax.set_title(title, **TITLE)
        ax.set_ylim(0, 1)
    axes[-1, 0].set_xlabel("test accuracy" + (f" (steps of 1/{test_rows})" if test_rows else ""))
    _margins(fig, left=0.7, right=0.15, bottom=0.55, top=0.3, hspace=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: A run's training loss on the curves' axis, per `train.loss` (`model.population_loss`).
LOSS_NAMES = {
    "sse": "½·Σ squared error",
    "mse": "½·mean squared error",
    "cross_entropy": "cross-entropy, mean over rows",
}


class _PlainLog(matplotlib.ticker.LogFormatterSciNotation):
    """A log axis's tick labels as plain numbers (0.03, 0.4, 10), on the ticks matplotlib
    labels. Its own labels (4×10⁻¹ on the minor ticks of an axis spanning less than a
    decade, as a mean loss's often does) are wider than the figure's fixed margin, which
    then cut the axis's name off."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


#: The loss columns of a curves frame (`reporting.curve_quantiles`).
LOSS_COLUMNS = ("loss_q05", "loss_median", "loss_q95")
#: Curves whose legend `curves_figure` draws inside the accuracy panel; more go under the panels.
LEGEND_INSIDE = 4


def curves_figure(curves: Mapping[str, pd.DataFrame], losses: Mapping[str, str]):
    """The figure of `plot_curves`: a training-loss panel per kind of loss among the curves
    (`losses`: each curve's `train.loss`), then test accuracy. A sweep over `train.loss`
    gets a panel per loss, each on its own scale and named on its axis: a summed squared
    error in tens and a mean cross-entropy in hundredths are not one quantity."""
    kinds = list(dict.fromkeys(losses[label] for label in curves))
    panels = len(kinds) + 1
    # Past LEGEND_INSIDE curves the legend would cover the accuracy curves: it goes under the
    # panels, a column per panel, and the figure grows by its rows.
    rows = -(-len(curves) // panels) if len(curves) > LEGEND_INSIDE else 0
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4 + 0.2 * rows))
    loss_axes, ax_acc = dict(zip(kinds, axes[:-1])), axes[-1]
    for i, (label, frame) in enumerate(curves.items()):
        color = f"C{i % 10}"
        for ax, name in ((loss_axes[losses[label]], "loss"), (ax_acc, "test_accuracy")):
            ax.plot(frame["epoch"], frame[f"{name}_median"], color=color, label=label)
            ax.fill_between(
                frame["epoch"], frame[f"{name}_q05"], frame[f"{name}_q95"], color=color, alpha=0.2
            )
    for kind, ax in loss_axes.items():
        ax.set(xlabel="epoch", ylabel=f"training loss ({LOSS_NAMES[kind]})")
        shown = [frame[c] for label, frame in curves.items() if losses[label] == kind for c in LOSS_COLUMNS]
        if not any(((v > 0) & np.isfinite(v)).any() for v in shown):
            # a log axis of nothing positive and finite (every seed diverged from the start)
            # would stop the whole figure
            ax.text(0.5, 0.5, "no finite loss to draw", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_PlainLog())
        ax.yaxis.set_minor_formatter(_PlainLog(labelOnlyBase=False))
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02))
    axes[0].set_title("median, band 5–95% across seeds", **TITLE)
    if rows:
        handles, labels = ax_acc.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=panels, fontsize=8, frameon=False)
    else:
        ax_acc.legend(fontsize=8, loc="lower right")
    bottom = 0.55 + (0.2 * rows + 0.1 if rows else 0)
    _margins(fig, left=0.85, right=0.15, bottom=bottom, top=0.3, wspace=0.22)
    return fig


def plot_curves(curves: Mapping[str, pd.DataFrame], path: Path, losses: Mapping[str, str]) -> None:
    """`curves.png`: training loss and test accuracy against epoch, median and 5–95% band
    (`curves_figure`).

    Each frame has columns `epoch`, `loss_q05`, `loss_median`, `loss_q95`,
    `test_accuracy_q05`, `test_accuracy_median`, `test_accuracy_q95` (see `curve_quantiles`);
    `losses` names each curve's `train.loss` (`LOSS_NAMES`).
    """
    fig = curves_figure(curves, losses)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_variance(acc: np.ndarray, report: dict, path: Path) -> None:
    """`variance.png`: each effect's share of the grid's accuracy variance with its bootstrap
    interval, and per pair of sources a heatmap of the mean accuracy over the other sources
    (for two sources, the grid itself). `acc` has one axis per source of `report["sources"]`,
    in that order (see `variance.variance_components`).
    """
    acc, sources, names = np.asarray(acc, dtype=float), report["sources"], list(report["effects"])
    pairs = [(i, j) for i in range(len(sources)) for j in range(i + 1, len(sources))]
    columns = min(3, len(pairs))
    rows = -(-len(pairs) // columns)
    if len(pairs) == 1:  # the grid beside the shares
        fig = plt.figure(figsize=(11, 4), layout="constrained")
        spec = fig.add_gridspec(1, 2, width_ratios=[3, 2])
        ax_share, cells = fig.add_subplot(spec[0, 1]), [spec[0, 0]]
    else:  # the shares across the top, one heatmap per pair below, three to a row
        bars = 0.6 + 0.3 * len(names)
        fig = plt.figure(figsize=(4.2 * columns, bars + 3.4 * rows), layout="constrained")
        spec = fig.add_gridspec(1 + rows, columns, height_ratios=[bars] + [3.4] * rows)
        ax_share = fig.add_subplot(spec[0, :])
        cells = [spec[1 + i // columns, i % columns] for i in range(len(pairs))]

    # Horizontal bars (room for names like split×init×order), coloured by interaction order;
    # a percentile interval need not hold its estimate, so it is drawn as a line, not as ± errors.
    y = np.arange(len(names))
    shares = [report["effects"][name]["share"] or 0.0 for name in names]
    ax_share.barh(y, shares, height=0.6, color=[f"C{name.count('×') % 10}" for name in names])
    for i, name in enumerate(names):
        if (interval := report["effects"][name]["share_ci95"]) is not None:
            ax_share.plot(interval, [i, i], color="black", lw=1.2, marker="|", markersize=8)
    ax_share.set_yticks(y, names)
    ax_share.invert_yaxis()  # main effects on top
    ax_share.set(xlim=(0, 1), xlabel="share of the grid's accuracy variance")
    title = f"where the spread comes from ({report['level']:.0%} intervals)"
    ax_share.set_title(title, fontsize=9, loc="left")

    # One colour scale for every heatmap, so the pairs' spreads compare.
    means = [acc.mean(axis=tuple(a for a in range(acc.ndim) if a not in pair)) for pair in pairs]
    low, high = min(m.min() for m in means), max(m.max() for m in means)
    heatmaps = []
    for (first, second), grid, cell in zip(pairs, means, cells):
        ax = fig.add_subplot(cell)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest", vmin=low, vmax=high)
        others = [source for k, source in enumerate(sources) if k not in (first, second)]
        title = f"mean test accuracy over {' × '.join(others)}" if others else "test accuracy"
        ax.set(xlabel=f"{sources[second]} level", ylabel=f"{sources[first]} level")
        ax.set_title(title, fontsize=9)
        heatmaps.append(ax)
    fig.colorbar(image, ax=heatmaps, shrink=0.9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_search(
    summary: pd.DataFrame, best: Mapping[str, np.ndarray], path: Path, test_rows: int | None
) -> None:
    """`search.png`: each trial's objective against its number, with the best so far, and
    the accuracy distributions of the best trials (share of seeds at each value)."""
    fig, (ax_trials, ax_best) = plt.subplots(1, 2, figsize=(12, 4.2))
    ok = summary[summary["status"] == "ok"]
    failed = summary[summary["status"] != "ok"]
    objective = ok["objective"].astype(float)
    ax_trials.plot(ok["trial"], objective, "o", color="C0", label="trial")
    ax_trials.step(ok["trial"], objective.cummax(), where="post", color="C1", label="best so far")
    if len(failed):
        ax_trials.plot(failed["trial"], np.zeros(len(failed)), "x", color="C3", label="failed")
    on = ok["objective_on"].iloc[0] if len(ok) else "test"
    ax_trials.set(xlabel="trial", ylabel=f"objective ({on} accuracy)", ylim=(-0.02, 1.02))
    ax_trials.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # trials are numbered
    ax_trials.legend(fontsize=8, loc="lower right")
    width = 0.8 / test_rows / max(len(best), 1) if test_rows else 0.01
    for i, (label, values) in enumerate(best.items()):
        v, counts = np.unique(np.round(np.asarray(values, dtype=float), 6), return_counts=True)
        ax_best.bar(v + (i - (len(best) - 1) / 2) * width, counts / counts.sum(), width=width, label=label)
    ax_best.set(xlabel="test accuracy", ylabel="share of seeds", title="the best trials", ylim=(0, 1))
    ax_best.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: Up to this many test rows, rows.png draws a bar per row; above, a filled area per class.
_BARS = 2000
#: Past this many test rows, rows.png leaves out the rows every seed gets right.
ROWS_SHOWN = 80


def class_colors(count: int) -> list:
    """A colour per class, none of them the grey of tied predictions: matplotlib's C0..C9
    without C7 (grey) for the first 9 classes, then tab20's light shades of the same hues
    (its light grey left out too): 18 colours, repeated beyond."""
    tab20 = plt.get_cmap("tab20").colors
    palette = [f"C{k}" for k in range(10) if k != 7] + [tab20[k] for k in range(1, 20, 2) if k != 15]
    return [palette[k % len(palette)] for k in range(count)]


def rows_figure(table: pd.DataFrame, seeds: int | None = None):
    """`rows.png`'s figure (see `plot_rows`)."""
    shares = [c for c in table.columns if c.startswith("share_")]
    easy = int((table["correct_share"] >= 1).sum()) if len(table) > ROWS_SHOWN else 0
    if easy:  # past ROWS_SHOWN the rows that every seed gets right would hide the others
        table = table[table["correct_share"] < 1]
    n = len(table)
    # Past a bar per row, rows of a share are grouped by class: areas, not stripes.
    by = "correct_share" if n <= _BARS else ["correct_share", "label"]
    ordered = table.sort_values(by, kind="stable").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.3 * n + 1.5)), 4.2))
    x, bottom = np.arange(n), np.zeros(n)
    colors = class_colors(len(shares))
    layers = [
        (ordered[c].to_numpy(dtype=float), colors[k], f"predicted {c[6:]}") for k, c in enumerate(shares)
    ]
    layers.append((ordered["tied_share"].to_numpy(dtype=float), "0.6", "tied"))
    for values, color, label in layers:
        if n <= _BARS:
            ax.bar(x, values, bottom=bottom, width=0.85, color=color, label=label)
        else:  # one filled area per layer: a bar per row costs minutes and a gigabyte at 20 000 rows
            ax.fill_between(x, bottom, bottom + values, step="mid", color=color, label=label, linewidth=0)
        bottom = bottom + values
    correct = ordered["correct_share"]
    if n <= _BARS:
        ax.plot(x, correct, "_", color="black", markersize=9, mew=2, label="correct (tie rule)")
    else:
        ax.step(x, correct, where="mid", color="black", linewidth=1.5, label="correct (tie rule)")
    if n <= ROWS_SHOWN:
        split = ordered["split"].astype(str) + ":" if "split" in ordered else ""
        ax.set_xticks(x, split + ordered["row"].astype(str) + " " + ordered["label"].astype(str), rotation=90)
        ax.tick_params(axis="x", labelsize=7)
    else:
        ax.set_xticks([])
    where = " (split:row)" if "split" in ordered else ""
    ax.set(
        xlim=(-0.6, max(n, 1) - 0.4),
        ylim=(0, 1.0),
        ylabel="share of seeds",
        xlabel=f"test row{where} and its class",
    )
    who = f"{seeds} seeds" if seeds else "the seeds"
    left_out = f"; the {easy} rows every seed gets right are left out" if easy else ""
    ax.set_title(f"test rows, hardest first: what {who} predict on each{left_out}", **TITLE)
    if n == 0:
        ax.text(
            0.5, 0.5, "every seed gets every test row right", ha="center", va="center", transform=ax.transAxes
        )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _margins(fig, left=0.7, right=1.5, bottom=1.3 if n <= ROWS_SHOWN else 0.4, top=0.3)
    return fig


def plot_rows(table: pd.DataFrame, path: Path, seeds: int | None = None) -> None:
    """`rows.png`: the test rows sorted by the share of seeds that get them right, each bar
    split into the classes the seeds predict there (ties in grey, a grey no class has),
    labelled by row and true class. Past `ROWS_SHOWN` rows, the rows every seed gets right
    are left out (the title counts them): among digits' 359 test rows they were 327 bars
    of their class's colour, and the rows that differ were a sliver at the left.

    `table` is rows.csv's frame (`testset.rows_table`): `row`, `label`, `correct_share`,
    `tied_share`, `share_CLASS` per class, and `split` where splits have their own rows.
    """
    fig = rows_figure(table, seeds)
    fig.savefig(path, dpi=100)
    plt.close(fig)
