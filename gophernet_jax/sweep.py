"""The end of a Hydra multirun: every job's files gathered into one comparison.

Hydra hands `on_multirun_end` no job results, so the report reads each job's folder
under `hydra.sweep.dir`: `.hydra/overrides.yaml` for what the job changed, and the
files the app wrote (`summary.json`, `results.csv`, `curves.csv`, or `error.json`).
"""

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from gophernet_jax.plots import plot_accuracy, plot_curves
from gophernet_jax.reporting import write_csv, write_json
from gophernet_jax.statistics import compare

#: Keys whose equality makes seed i start from the same weights in two jobs.
SHAPE_KEYS = ("seeds.base", "seeds.count", "model.hidden", "train.dtype", "data.train", "data.labels")
STAT_COLUMNS = ("mean", "std", "min", "q05", "median", "q95", "max")


def _overrides(job: Path) -> dict[str, str]:
    items = OmegaConf.load(job / ".hydra" / "overrides.yaml")
    return dict(item.split("=", 1) for item in items)


def _job_num(job: Path) -> int:
    hydra_yaml = job / ".hydra" / "hydra.yaml"
    return int(OmegaConf.load(hydra_yaml).hydra.job.num) if hydra_yaml.is_file() else 10**9


def find_jobs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, in the order of the latest sweep that ran them."""
    jobs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda job: (_job_num(job), job.name))


def _job_row(job: Path) -> dict[str, Any]:
    summary_file, error_file = job / "summary.json", job / "error.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        acc = summary["test_accuracy"]
        low, high = acc["mean_ci95"]
        return {
            "status": "ok",
            "seeds": acc["count"],
            **{k: acc[k] for k in STAT_COLUMNS},
            "ci95_low": low,
            "ci95_high": high,
            "diverged": summary["diverged"],
            "seconds": summary["seconds"],
            "compilations": summary.get("compilations"),
            "error": "",
            "_config": summary["config"],
            "_test_rows": summary["test_rows"],
        }
    if error_file.is_file():
        return {"status": "failed", "error": json.loads(error_file.read_text())["error"]}
    return {"status": "incomplete", "error": "no summary.json: the job was interrupted or is running"}


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{group}.{k}": v for group, values in config.items() for k, v in values.items()}


def collect(sweep_dir: Path, baseline: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """summary (one row per job), results (every seed of every job) and plot data."""
    jobs = find_jobs(sweep_dir)
    overrides = {job.name: _overrides(job) for job in jobs}
    keys = sorted({k for o in overrides.values() for k in o})
    swept = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1] or keys
    rows, results, curves, accuracies, by_job = [], [], {}, {}, {}
    for job in jobs:
        values = {k: overrides[job.name].get(k, "") for k in swept}
        row = {**values, "job": job.name, **_job_row(job)}
        rows.append(row)
        if row["status"] == "ok":
            label = ",".join(f"{k}={v}" for k, v in values.items())
            seeds = pd.read_csv(job / "results.csv")
            results.append(seeds.assign(**values, job=job.name))
            accuracies[label] = by_job[job.name] = seeds["test_accuracy"].to_numpy()
            if (job / "curves.csv").is_file():
                curves[label] = pd.read_csv(job / "curves.csv")
    summary = pd.DataFrame(rows)
    for column in ("seeds", "diverged", "compilations"):
        if column in summary:
            summary[column] = summary[column].astype("Int64")  # integers, with gaps for failed jobs
    _add_comparison(summary, by_job, baseline)
    hidden = [c for c in summary.columns if c.startswith("_")]
    extras = {"curves": curves, "accuracies": accuracies, "test_rows": _common(summary, "_test_rows")}
    long = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    return summary.drop(columns=hidden), long, extras


def _common(summary: pd.DataFrame, column: str) -> int | None:
    """The value every finished job shares in `column`, or None if they differ."""
    values = set(summary[column].dropna()) if column in summary else set()
    return int(values.pop()) if len(values) == 1 else None


COMPARISON_COLUMNS = ["baseline", "paired", "difference", "difference_ci95_low", "difference_ci95_high"]
COMPARISON_COLUMNS += ["p_better", "p_tie", "p_worse"]


def _add_comparison(summary: pd.DataFrame, accuracies: dict[str, Any], baseline: str | None) -> None:
    """Differences against the baseline job, in place: paired seed by seed where the
    jobs share their initial weights (`SHAPE_KEYS` equal), unpaired otherwise."""
    ok = summary[summary["status"] == "ok"]
    for c in COMPARISON_COLUMNS:
        summary[c] = None
    if ok.empty:
        return
    base = _pick_baseline(ok, baseline)
    base_config = _flat(base["_config"])
    for i, row in ok.iterrows():
        config = _flat(row["_config"])
        paired = all(config.get(k) == base_config.get(k) for k in SHAPE_KEYS)
        result = compare(accuracies[base["job"]], accuracies[row["job"]], paired=paired)
        low, high = result["difference_ci95"]
        shares = [result[k] for k in ("p_better", "p_tie", "p_worse")]
        summary.loc[i, COMPARISON_COLUMNS] = [
            base["job"],
            paired,
            result["mean_difference"],
            low,
            high,
            *shares,
        ]


def _pick_baseline(ok: pd.DataFrame, baseline: str | None) -> pd.Series:
    if baseline is None:
        return ok.iloc[0]
    wanted = dict(item.split("=", 1) for item in baseline.split(",")) if "=" in baseline else {}
    for _, row in ok.iterrows():
        if row["job"] == baseline or (wanted and all(str(row.get(k)) == v for k, v in wanted.items())):
            return row
    raise ValueError(f"config key report.baseline: no finished job matches {baseline!r}")


def format_comparison(summary: pd.DataFrame) -> str:
    """The table printed at the end of a sweep: swept values, spread, difference to the baseline."""
    dropped = [
        "job",
        "baseline",
        "error",
        "std",
        "min",
        "max",
        "q05",
        "q95",
        "seconds",
        "compilations",
        "p_tie",
    ]
    short = {"ci95_low": "mean_lo", "ci95_high": "mean_hi", "difference": "diff"}
    short |= {"difference_ci95_low": "diff_lo", "difference_ci95_high": "diff_hi"}
    shown = summary.drop(columns=dropped, errors="ignore").rename(columns=short)
    options = ("display.width", 200, "display.max_columns", 40, "display.float_format", "{:.4f}".format)
    with pd.option_context(*options):
        return shown.to_string(index=False, na_rep="-")


def report_sweep(sweep_dir: Path, baseline: str | None = None) -> pd.DataFrame:
    """Writes summary.csv, results.csv, summary.json and the plots into `sweep_dir`; prints the table."""
    sweep_dir = Path(sweep_dir)
    summary, results, extras = collect(sweep_dir, baseline)
    write_csv(summary, sweep_dir / "summary.csv")
    write_csv(results, sweep_dir / "results.csv")
    write_json({"jobs": summary.astype(object).where(summary.notna(), None).to_dict(orient="records")},
               sweep_dir / "summary.json")  # fmt: skip
    if extras["accuracies"]:
        plot_accuracy(extras["accuracies"], sweep_dir / "accuracy.png", extras["test_rows"])
    if extras["curves"]:
        plot_curves(extras["curves"], sweep_dir / "curves.png")
    baseline_job = summary["baseline"].dropna()
    print(f"\nsweep of {len(summary)} jobs: test accuracy per job, and its difference to the baseline job")
    if len(baseline_job):
        print(f"{baseline_job.iloc[0]} (paired seed by seed where the initial weights match; 95% intervals)")
    print(format_comparison(summary))
    print(f"summary.csv, results.csv and plots in {sweep_dir}")
    return summary


class SweepReport(Callback):
    """Hydra callback: at the end of a multirun, compare every job of the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            summary = report_sweep(Path(config.hydra.sweep.dir), OmegaConf.select(config, "report.baseline"))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        failed = summary[summary["status"] != "ok"]
        if len(failed):
            for _, row in failed.iterrows():
                print(f"error: job {row['job']} {row['status']}: {row['error']}", file=sys.stderr)
            sys.exit(1)  # every other job's results are written above
