"""The end of a Hydra multirun: every job's files gathered into one comparison.

Hydra hands `on_multirun_end` no job results, so the report reads each job's folder
under `hydra.sweep.dir`: `.hydra/overrides.yaml` for what the job changed, and the
files the app wrote (`summary.json`, `results.csv`, `curves.csv`, or `error.json`).

    python -m gophernet_jax.sweep SWEEP_DIR   # the same report again, e.g. after an interrupted search

The report never depends on every job having finished: failed, interrupted and one-seed
jobs get their row, with the statistics they cannot have left empty and a reason.
"""

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from gophernet_jax.files import write_csv, write_json
from gophernet_jax.statistics import BEST_OF
from gophernet_jax.store import config_net
from gophernet_jax.summary import STAT_COLUMNS, Pairing, Summary, SummaryError

#: How many of a search's best trials the plots show.
BEST_SHOWN = 5


class ReportError(ValueError):
    """A sweep report that cannot be made as asked; the message names the key."""


class UnreadableFile(ValueError):
    """A file of a job that cannot be read; the message names it."""


def _read(path: Path, read: Callable[[Path], Any]) -> Any:
    """`read(path)`, failing with an `UnreadableFile` that names the file."""
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 - yaml, json and pandas each raise their own
        reason = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)).splitlines()[0]
        raise UnreadableFile(f"{path} is unreadable ({reason or type(e).__name__})") from None


def _overrides(job: Path) -> dict[str, str]:
    items = _read(job / ".hydra" / "overrides.yaml", OmegaConf.load)
    return dict(item.split("=", 1) for item in items)


def _json(path: Path) -> Any:
    return _read(path, lambda p: json.loads(p.read_text()))


def _job_num(job: Path) -> int:
    hydra_yaml, summary = job / ".hydra" / "hydra.yaml", job / "summary.json"
    if hydra_yaml.is_file():
        return int(_read(hydra_yaml, OmegaConf.load).hydra.job.num)
    if summary.is_file():  # a committed study keeps no hydra.yaml (it holds machine paths)
        with contextlib.suppress(UnreadableFile, AttributeError):  # unreadable: its row says so
            return int(_json(summary).get("job_num", 10**9))
    return 10**9


def find_jobs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, in the order of the latest sweep that ran them."""
    jobs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda job: (_job_num(job), job.name))


def job_results(job: Path, seeds: int) -> pd.DataFrame:
    """A finished job's results.csv, or an `UnreadableFile` where it is missing, unreadable
    or holds another number of seeds than its summary.json (cut short, or edited)."""
    results = _read(job / "results.csv", pd.read_csv)
    if len(results) != seeds:
        raise UnreadableFile(
            f"{job / 'results.csv'} holds {len(results)} seeds where the job trained {seeds}"
        )
    return results


def _job_row(job: Path) -> dict[str, Any]:
    summary_file, error_file = job / "summary.json", job / "error.json"
    if summary_file.is_file():
        try:
            summary = Summary.from_json(summary_file)
        except SummaryError as e:  # a rerun of the sweep runs the job again
            return {"status": "incomplete", "error": str(e)}
        acc = summary.test_accuracy
        low, high = acc["mean_ci95"] or (None, None)
        rows_low, rows_high = acc.get("mean_ci95_seeds_and_rows") or (None, None)
        corrected_low, corrected_high = (acc.get("corrected") or {}).get("ci95") or (None, None)
        best = acc.get("best_of_n") or {}
        return {
            "status": "ok",
            "seeds": acc["count"],
            "objective": summary.objective.value,
            "objective_on": summary.objective.on,
            **{k: acc[k] for k in STAT_COLUMNS},
            "ci95_low": low,
            "ci95_high": high,
            "ci95_seeds_and_rows_low": rows_low,
            "ci95_seeds_and_rows_high": rows_high,
            "ci95_corrected_low": corrected_low,
            "ci95_corrected_high": corrected_high,
            **{f"best_of_{n}": best.get(str(n)) for n in BEST_OF},
            "seeds_needed": acc.get("seeds_needed"),
            "diverged": summary.diverged,
            "collapsed": summary.collapsed,
            # the likely cause when half the seeds or more failed (`cause.Cause.kind`), else empty
            "cause": summary.cause.kind if summary.cause is not None else None,
            "seconds": summary.seconds,
            "compilations": summary.compilations,
            "cache_hits": summary.cache_hits,
            "error": "",
            "_config": summary.config,
            "_test_rows": summary.test_rows,
            "_pairing": summary.pairing,
            "_design": (summary.variance or {}).get("levels"),
            "_train_rows": summary.train_rows,
        }
    if error_file.is_file():
        try:
            error = _json(error_file)
        except UnreadableFile as e:
            return {"status": "failed", "error": str(e)}
        interrupted = isinstance(error, dict) and error.get("status") == "interrupted"  # a search's trial
        status = "interrupted" if interrupted else "failed"
        return {"status": status, "error": str(error.get("error") if isinstance(error, dict) else error)}
    return {"status": "incomplete", "error": "no summary.json: the job was interrupted or is running"}


def collect(
    sweep_dir: Path, baseline: str | None = None, *, search: bool = False, gamma: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """summary (one row per job), results (every seed of every job) and plot data.

    In a search the baseline is the best trial (the lowest objective error), unless one is
    named. `gamma` is the verdicts' threshold (`report.gamma`; None: the baseline job's).
    """
    jobs = find_jobs(sweep_dir)
    if not jobs:
        run = (Path(sweep_dir) / ".hydra").is_dir()
        raise ReportError(
            f"{sweep_dir}: no job of a sweep in it (a folder with .hydra/overrides.yaml)"
            + ("; it is a single run's folder: its report is its app.log and summary.json" if run else "")
        )
    overrides = {job.name: _overrides(job) for job in jobs}
    keys = sorted({k for o in overrides.values() for k in o})
    swept = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1] or keys
    # A job's name in the plots: its swept values, numbers to 4 significant digits while
    # that still tells every job apart (0.300001 and 0.300002 would both read 0.3).
    labels = {name: ",".join(f"{k}={o.get(k, '')}" for k in swept) for name, o in overrides.items()}
    short = {name: ",".join(f"{k}={_short(o.get(k, ''))}" for k in swept) for name, o in overrides.items()}
    if len(set(short.values())) == len(short):
        labels = short
    rows, results, curves, accuracies, by_job, blocks, splits = [], [], {}, {}, {}, {}, {}
    for number, job in enumerate(jobs):
        values = {k: overrides[job.name].get(k, "") for k in swept}
        row = {**values, "trial": number, "job": job.name, **_job_row(job)}
        rows.append(row)
        if row["status"] == "ok":
            try:
                seeds = job_results(job, row["seeds"])
            except UnreadableFile as e:
                row.update(status="incomplete", error=f"{e}: the sweep run again trains it again")
                continue
            label = labels[job.name]
            results.append(seeds.assign(**values, job=job.name))
            by_job[job.name] = seeds["test_accuracy"].to_numpy()
            splits[job.name] = seeds["split_seed"].to_numpy() if "split_seed" in seeds else None
            blocks[job.name] = _blocks(job)
            accuracies[job.name] = (label, by_job[job.name])
            if (job / "curves.csv").is_file():
                loss = config_net(row["_config"]).loss  # names the curve's axis
                curves[job.name] = (label, _read(job / "curves.csv", pd.read_csv), loss)
    summary = pd.DataFrame(rows)
    for column in ("seeds", "diverged", "collapsed", "compilations", "cache_hits", "seeds_needed"):
        if column in summary:
            summary[column] = summary[column].astype("Int64")  # integers, with gaps for failed jobs
    per_job = {"accuracies": by_job, "blocks": blocks, "splits": splits}
    problem = _add_comparison(summary, per_job, baseline, search=search, gamma=gamma)
    hidden = [c for c in summary.columns if c.startswith("_")]
    extras = {
        "curves": curves,
        "accuracies": accuracies,
        "test_rows": _common(summary, "_test_rows"),
        "problem": problem,
    }
    long = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    return summary.drop(columns=hidden), long, extras


def _short(value: str) -> str:
    """A swept value as the plots name it: a number to 4 significant digits where that is
    shorter (a search's trial asks for optimizer.learning_rate=0.24933911076384513), anything
    else as it is."""
    try:
        short = f"{float(value):.4g}"
    except ValueError:
        return value
    return short if len(short) < len(value) else value


def _blocks(job: Path):
    """A job's seeds dealt into blocks of correct rows (`testset.seed_blocks`), from its
    rows_correct.npz, or None when it kept none: bounded whatever its seed count."""
    from gophernet_jax.testrows import load_correct
    from gophernet_jax.testset import seed_blocks

    found = _read(job, load_correct)
    if found is None:
        return None
    correct, groups = found
    return seed_blocks(correct, groups=groups), groups


def _common(summary: pd.DataFrame, column: str) -> int | None:
    """The value every finished job shares in `column`, or None if they differ."""
    values = set(summary[column].dropna()) if column in summary else set()
    return int(values.pop()) if len(values) == 1 else None


COMPARISON_COLUMNS = ["baseline", "paired", "unpaired_because", "difference"]
COMPARISON_COLUMNS += ["difference_ci95_low", "difference_ci95_high", "p_better", "p_tie", "p_worse"]
COMPARISON_COLUMNS += [
    "simultaneous_ci95_low",
    "simultaneous_ci95_high",
    "holds",
    "seeds_needed_for_difference",
]
#: Beside the seed-only columns: over seeds and test rows, corrected over splits, and decisions.
DECISION_COLUMNS = ["difference_ci95_seeds_and_rows_low", "difference_ci95_seeds_and_rows_high"]
DECISION_COLUMNS += ["difference_ci95_corrected_low", "difference_ci95_corrected_high", "corrected_method"]
DECISION_COLUMNS += ["p_outperform", "p_outperform_ci95_low", "p_outperform_ci95_high", "verdict"]
DECISION_COLUMNS += ["seeds_needed_for_decision"]
COMPARISON_COLUMNS += ["comparison_note"]
_SEED_COLUMNS = list(COMPARISON_COLUMNS)
COMPARISON_COLUMNS = COMPARISON_COLUMNS[:-1] + DECISION_COLUMNS + COMPARISON_COLUMNS[-1:]


def pairing_of(base: Pairing, other: Pairing) -> tuple[bool, str]:
    """Are two jobs' seeds comparable seed by seed, and if not, why not?

    Seed i pairs with seed i when both start from the same initial weights and are tested
    on the same rows: the fingerprints each job stores in its summary (`Summary.pairing`).
    """
    reasons = [
        (base.seeds != other.seeds, "different seed counts"),
        (base.init != other.init, "different initial weights"),
        (base.test_rows != other.test_rows, "different test rows"),
    ]
    why = [text for differs, text in reasons if differs]
    return (not why), "; ".join(why)


def _add_comparison(
    summary: pd.DataFrame,
    per_job: dict[str, dict[str, Any]],
    baseline: str | None,
    *,
    search: bool,
    gamma: float | None = None,
) -> str | None:
    """Differences against the baseline job, in place: paired seed by seed where the jobs'
    seeds are comparable (`pairing_of`), unpaired otherwise, with Bonferroni-simultaneous
    intervals over the m comparisons; beside them the interval over seeds and test rows
    (the multi-bootstrap, both draws shared by the two jobs), the Nadeau–Bengio corrected
    one where the split varies over a design, and P(job > baseline) with its verdict
    (`testset.p_outperform`). Returns a problem to report, or None."""
    for c in COMPARISON_COLUMNS:
        summary[c] = None
    ok = summary[summary["status"] == "ok"]
    if ok.empty:
        return "no job finished: nothing to compare"
    try:
        base = _pick_baseline(summary, ok, baseline, search=search)
    except ReportError as e:
        return str(e)
    from gophernet_jax.statistics import compare

    try:
        gamma = _gamma(base, gamma)
    except ReportError as e:
        return str(e)
    accuracies = per_job["accuracies"]
    comparisons = max(1, len(ok) - 1)
    for i, row in ok.iterrows():
        own = row["job"] == base["job"]  # the baseline beside itself: not a comparison
        paired, why = pairing_of(base["_pairing"], row["_pairing"])
        design = row["_design"] if paired and row["_design"] == base["_design"] else None
        result = compare(
            accuracies[base["job"]],
            accuracies[row["job"]],
            paired=paired,
            design=design,
            comparisons=comparisons,
        )
        low, high = result["difference_ci95"] or (None, None)
        sim_low, sim_high = result.get("difference_ci95_simultaneous") or (None, None)
        summary.loc[i, _SEED_COLUMNS] = [
            base["job"],
            paired,
            why or None,
            result["mean_difference"],
            low,
            high,
            result["p_better"],
            result["p_tie"],
            result["p_worse"],
            sim_low,
            sim_high,
            None if own else result.get("holds"),
            None if own else result.get("seeds_needed"),
            "; ".join(n for n in (result.get("reason"), None if own else _scoring_note(base, row)) if n)
            or None,
        ]
        if not own:
            summary.loc[i, DECISION_COLUMNS] = _decisions(base, row, paired, per_job, gamma)
    return None


def _ties(row: pd.Series) -> str:
    return (row["_config"].get("report") or {}).get("ties", "strict")


def _scoring_note(base: pd.Series, row: pd.Series) -> str | None:
    """What makes a difference of accuracies mean less than it says: the two jobs scoring
    tied rows by different rules, or collapsed seeds (dead networks, tying on every row)
    scored by the article's rule, which counts a tie with the true class correct."""
    notes = []
    if _ties(row) != _ties(base):
        notes.append(
            f"report.ties {_ties(row)} against the baseline's {_ties(base)}: tied rows count otherwise"
        )
    for job, who in ((row, "this job"), (base, "the baseline")):
        if _ties(job) == "article" and job["collapsed"]:
            notes.append(
                f"{who}: {job['collapsed']} of {job['seeds']} seeds collapsed, their tied rows counted "
                "correct by report.ties=article"
            )
    return "; ".join(notes) or None


def _gamma(base: pd.Series, gamma: float | None) -> float:
    """The verdicts' threshold: as given, else the baseline job's `report.gamma`, checked."""
    from gophernet_jax.testset import GAMMA

    if gamma is None:
        gamma = (base["_config"].get("report") or {}).get("gamma", GAMMA)
    number = isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
    if not number or not 0.5 < gamma < 1:
        raise ReportError(f"config key report.gamma: expected a number in (0.5, 1), got {gamma!r}")
    return float(gamma)


def _decisions(base: pd.Series, row: pd.Series, paired: bool, per_job: dict, gamma: float) -> list[Any]:
    """The columns after the seed-only ones: the interval over seeds and rows, the corrected
    one, P(row's job > baseline) with its interval and verdict, and Noether's seeds."""
    from gophernet_jax.testset import p_outperform, seeds_needed_for_decision

    a, b = (per_job["accuracies"][r["job"]] for r in (base, row))
    multi = _seeds_and_rows(base, row, paired, per_job)
    corrected = _corrected(base, row, paired, per_job)
    decided = p_outperform(b, a, paired=paired, gamma=gamma)
    return [
        *multi,
        *corrected,
        decided.p_outperform,
        decided.p_outperform_ci95_low,
        decided.p_outperform_ci95_high,
        decided.verdict,
        seeds_needed_for_decision(gamma=gamma),
    ]


def _seeds_and_rows(base: pd.Series, row: pd.Series, paired: bool, per_job: dict) -> list[float | None]:
    """The multi-bootstrap interval of the difference, where both jobs kept their correct rows
    and were tested on the same rows with the same splits per seed."""
    from gophernet_jax.testset import difference_ci95_seeds_and_rows

    a, b = per_job["blocks"].get(base["job"]), per_job["blocks"].get(row["job"])
    if a is None or b is None or base["_pairing"].test_rows != row["_pairing"].test_rows:
        return [None, None]
    (a, groups_a), (b, groups_b) = a, b
    if (groups_a is None) != (groups_b is None) or (
        groups_a is not None and not np.array_equal(groups_a, groups_b)
    ):
        return [None, None]
    try:
        found = difference_ci95_seeds_and_rows(a, b, paired=paired)
    except ValueError:  # other splits, blocks or rows: not the same test draw
        return [None, None]
    return found.ci95 or [None, None]


def _corrected(base: pd.Series, row: pd.Series, paired: bool, per_job: dict) -> list[Any]:
    """Nadeau–Bengio's corrected interval of the paired difference over the design's splits."""
    from gophernet_jax.testset import corrected_interval

    design = row["_design"] if isinstance(row["_design"], dict) else {}  # NaN beside failed jobs
    groups = per_job["splits"].get(row["job"])
    if not paired or "split" not in design or groups is None or design != base["_design"]:
        return [None, None, None]
    a, b = (per_job["accuracies"][r["job"]] for r in (base, row))
    found = corrected_interval(
        b - a,
        groups=groups,
        n_train=int(row["_train_rows"]),
        n_test=int(row["_test_rows"]),
        bounds=(-1.0, 1.0),
    )
    low, high = found.ci95 or (None, None)
    return [low, high, found.method]


def _pick_baseline(
    summary: pd.DataFrame, ok: pd.DataFrame, baseline: str | None, *, search: bool
) -> pd.Series:
    if baseline is None:
        if search:
            return ok.loc[ok["objective"].astype(float).idxmax()]
        first = summary.iloc[0]
        if first["status"] != "ok":
            raise ReportError(
                f"the baseline (the first job, {first['job']}) {first['status']}: no differences to "
                "report; name another with report.baseline"
            )
        return first
    baseline = str(baseline)  # report.baseline=3 comes as a number
    named = summary[summary["job"] == baseline]
    if named.empty and (wanted := _baseline_pairs(baseline)) is None:
        raise ReportError(
            f"config key report.baseline: {baseline!r} is neither a job's folder name nor key=value "
            "pairs of the swept keys"
        )
    if named.empty:
        swept = list(summary.columns[: list(summary.columns).index("trial")])
        if unknown := [k for k in wanted if k not in swept]:
            raise ReportError(
                f"config key report.baseline: {unknown[0]} is not a swept key of this sweep "
                f"({', '.join(swept) or 'none'})"
            )
        named = summary[[all(_same(row[k], v) for k, v in wanted.items()) for _, row in summary.iterrows()]]
    if len(named) > 1:
        raise ReportError(
            f"config key report.baseline: {baseline!r} matches {len(named)} jobs "
            f"({', '.join(named['job'])}): give one by more keys or by its folder name"
        )
    if named.empty:
        raise ReportError(f"config key report.baseline: no job matches {baseline!r}")
    row = named.iloc[0]
    if row["status"] != "ok":
        raise ReportError(f"config key report.baseline: job {row['job']} {row['status']}")
    return row


#: A comma that starts another key=value pair: a list value's commas do not ('a=[1,2],b=3').
_NEXT_PAIR = re.compile(r",(?=[\w.+/@-]+=)")


def _baseline_pairs(baseline: str) -> dict[str, str] | None:
    """The key=value pairs of a baseline (`model.hidden=[8,8],optimizer.learning_rate=0.3`),
    or None where it is not such pairs."""
    items = _NEXT_PAIR.split(baseline)
    if "=" not in baseline or not all("=" in item and item.split("=", 1)[0] for item in items):
        return None
    return dict(item.split("=", 1) for item in items)


def _same(cell: Any, text: str) -> bool:
    """Whether a summary cell holds the value `text` names: as written, or as a number
    (`0.30` is the job of 0.3)."""
    if str(cell) == text:
        return True
    try:
        return float(cell) == float(text)
    except (TypeError, ValueError):
        return False


def best_trial(summary: pd.DataFrame) -> dict[str, Any] | None:
    """The finished job with the best objective: its job, parameters, objective and spread."""
    ok = summary[summary["status"] == "ok"]
    if ok.empty or ok["objective"].isna().all():
        return None
    row = ok.loc[ok["objective"].astype(float).idxmax()]
    swept = [c for c in summary.columns[: list(summary.columns).index("trial")]]
    return {
        "job": row["job"],
        "trial": int(row["trial"]),
        "parameters": {k: row[k] for k in swept},
        "objective": float(row["objective"]),
        "objective_on": row["objective_on"],
        **{k: _plain(row[k]) for k in (*STAT_COLUMNS, "collapsed", "diverged", "seeds", "cause")},
    }


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


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
        "cache_hits",
    ]
    dropped += ["p_tie", "objective_on", "comparison_note", "seeds_needed", "seeds_needed_for_difference"]
    dropped += [f"best_of_{n}" for n in BEST_OF if n != 5]
    dropped += ["difference_ci95_low", "difference_ci95_high", "trial", "unpaired_because"]
    dropped += [c for c in summary.columns if "seeds_and_rows" in c or "corrected" in c]
    dropped += ["p_outperform_ci95_low", "p_outperform_ci95_high", "seeds_needed_for_decision"]
    if "cause" in summary and summary["cause"].isna().all():
        dropped.append("cause")  # shown only where a job's seeds failed
    short = {"ci95_low": "mean_lo", "ci95_high": "mean_hi", "difference": "diff", "best_of_5": "best5"}
    short |= {"simultaneous_ci95_low": "diff_lo", "simultaneous_ci95_high": "diff_hi", "objective": "obj"}
    short |= {"p_outperform": "p_out"}
    shown = summary.drop(columns=dropped, errors="ignore").rename(columns=short)
    # None in a column of mixed values (the baseline's holds, p_out and verdict) printed as
    # "None" beside the "-" of a missing number: both are missing.
    shown = shown.apply(
        lambda column: column.where(column.notna(), np.nan) if column.dtype == object else column
    )
    options = ("display.width", 220, "display.max_columns", 40, "display.float_format", "{:.4f}".format)
    with pd.option_context(*options):
        return shown.to_string(index=False, na_rep="-")


def report_sweep(
    sweep_dir: Path, baseline: str | None = None, *, search: bool = False, gamma: float | None = None
) -> pd.DataFrame:
    """Writes summary.csv, results.csv, summary.json and the plots into `sweep_dir`; prints the table.

    Raises:
      ReportError: after writing every file, when the comparison asked for cannot be made
        (a baseline that failed or matches no job); before writing any, for a folder that
        holds no job of a sweep.
    """
    from gophernet_jax.plots import plot_accuracy, plot_curves, plot_search

    sweep_dir = Path(sweep_dir)
    summary, results, extras = collect(sweep_dir, baseline, search=search, gamma=gamma)
    write_csv(summary, sweep_dir / "summary.csv")
    write_csv(results, sweep_dir / "results.csv")
    jobs = summary.astype(object).where(summary.notna(), None).to_dict(orient="records")
    best = best_trial(summary)
    write_json({"jobs": jobs, "best": best, "search": search}, sweep_dir / "summary.json")
    shown = _shown_jobs(summary, search)
    accuracies = {
        extras["accuracies"][j][0]: extras["accuracies"][j][1] for j in shown if j in extras["accuracies"]
    }
    shown_curves = [extras["curves"][j] for j in shown if j in extras["curves"]]
    curves = {label: frame for label, frame, _ in shown_curves}
    if accuracies:
        plot_accuracy(accuracies, sweep_dir / "accuracy.png", extras["test_rows"])
    if curves:
        plot_curves(curves, sweep_dir / "curves.png", {label: loss for label, _, loss in shown_curves})
    if search and best is not None:
        plot_search(summary, accuracies, sweep_dir / "search.png", extras["test_rows"])
    base = summary["baseline"].dropna()
    print(f"\nsweep of {len(summary)} jobs: test accuracy per job, and its difference to the baseline job")
    if len(base):
        print(
            f"{base.iloc[0]} (paired seed by seed where the initial weights and test rows match; "
            "diff_lo/diff_hi: 95% intervals holding for all comparisons at once, Bonferroni)"
        )
    print(format_comparison(summary))
    for job, note in summary[["job", "comparison_note"]].dropna().itertuples(index=False):
        print(f"note: {job}: {note}")
    if best is not None and search:
        print(f"best trial: {best['job']} ({best['objective_on']} {best['objective']:.4f})")
    print(f"summary.csv, results.csv and plots in {sweep_dir}")
    from gophernet_jax.slices import report_slices

    slices = report_slices(sweep_dir, summary)  # pooled/: the populations that jobs trained in slices
    if extras["problem"] and slices != set(summary["job"]):  # slices are pooled, not compared
        raise ReportError(extras["problem"])
    return summary


def _shown_jobs(summary: pd.DataFrame, search: bool) -> list[str]:
    """The jobs drawn in the plots: every finished job, or a search's best few."""
    ok = summary[summary["status"] == "ok"]
    if search:
        ok = ok.sort_values("objective", ascending=False, kind="stable").head(BEST_SHOWN)
    return list(ok["job"])


def report_or_status(sweep_dir: Path, baseline: str | None, search: bool, gamma: float | None = None) -> int:
    """Writes the report; the exit status: 0, 1 when a job failed, 2 for a report that cannot
    be made as asked, 3 when the report itself failed (a bug: said in one line)."""
    try:
        summary = report_sweep(sweep_dir, baseline, search=search, gamma=gamma)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - Hydra would turn it into a warning and exit 0
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"error: the sweep report failed: {message}", file=sys.stderr)
        return 3
    for _, row in summary[summary["status"] == "interrupted"].iterrows():  # nothing will run it again
        print(f"note: job {row['job']}: {row['error']}", file=sys.stderr)
    failed = summary[~summary["status"].isin(["ok", "interrupted"])]
    for _, row in failed.iterrows():
        print(f"error: job {row['job']} {row['status']}: {row['error']}", file=sys.stderr)
    from gophernet_jax.slices import incomplete

    missing = incomplete(sweep_dir)  # a pooled population without all its slices
    for line in missing:
        print(f"error: {line}", file=sys.stderr)
    return 1 if len(failed) or missing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gophernet_jax.sweep", description="Report a sweep folder again."
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--baseline", help="the job to compare with: its folder name or key=value[,key=value]"
    )
    parser.add_argument(
        "--search",
        action=argparse.BooleanOptionalAction,
        help="compare with the best trial, plot the search (default: where the folder holds a "
        "search's files, study.journal or optimization_results.yaml, or its last report was one)",
    )
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        what = "not a folder" if args.sweep_dir.exists() else "no such folder"
        print(f"error: {args.sweep_dir}: {what}", file=sys.stderr)
        return 2
    search = args.search if args.search is not None else is_search_folder(args.sweep_dir)
    return report_or_status(args.sweep_dir, args.baseline, search)


def is_search_folder(sweep_dir: Path) -> bool:
    """Whether a sweep folder holds a search: the project's Optuna sweeper's journal, the
    `optimization_results.yaml` both Optuna sweepers write, or a report of it as a search."""
    if any((sweep_dir / name).is_file() for name in ("study.journal", "optimization_results.yaml")):
        return True
    with contextlib.suppress(UnreadableFile, AttributeError):
        return _json(sweep_dir / "summary.json").get("search") is True
    return False


if __name__ == "__main__":
    sys.exit(main())
