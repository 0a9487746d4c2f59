"""Slices of one population pooled: the jobs of a multirun that each trained a slice of
seeds (`seeds.slices` K, `seeds.start`; `+sweep=slices`) made into the one job that a
single run of `seeds.count` seeds would have been.

Seed i of a slice is seed i of the whole population, bit for bit (`training.seed_indices`),
so pooling is reading: each slice's `results.csv` and `params.npz`, in the order of their
seeds, become one `Population`, which the job's own scoring and writing (`job.score`,
`job.write_outputs`) turn into the files one job writes: `results.csv`, `params.npz`,
`summary.json` and the plots (no `curves.csv`: a slice keeps its curves' quantiles only).
They go into `pooled/` in the sweep folder (`pooled/NAME/` when the sweep holds several
populations, NAME being their shared overrides). A population with a slice missing,
failed or unfinished gets `pooled/.../incomplete.json` instead, which names those slices.
"""

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from gophernet_jax.files import write_json

POOLED_DIR = "pooled"
INCOMPLETE_FILE = "incomplete.json"
START = "seeds.start"


class Member(NamedTuple):
    """A job of the sweep that trains one slice: its folder and the seeds it trains."""

    job: Path
    start: int
    seeds: int  # seeds per slice: count // slices
    count: int  # seeds of the whole population
    slices: int


class Pooled(NamedTuple):
    """What pooling one population found: where its files are, and the slices it lacks
    (one line each, naming the slice and why); `summary` is None when it is incomplete."""

    name: str
    folder: Path
    slices: int
    missing: list[str]
    summary: Any = None  # summary.Summary


def _saved_seeds(job: Path) -> dict[str, Any]:
    """The job's seeds settings: from the config Hydra saved with it, or from its summary
    (a copied study may keep no `.hydra/config.yaml`)."""
    config = job / ".hydra" / "config.yaml"
    if config.is_file():
        return OmegaConf.to_container(OmegaConf.load(config).seeds, resolve=True)
    return _unsplit(json.loads((job / "summary.json").read_text())["config"]["seeds"])


def _unsplit(seeds: dict[str, Any]) -> dict[str, Any]:
    """Saved seeds settings as they can be validated again: `seeds.splits` makes its grid again."""
    return seeds | ({"grid": None} if seeds.get("splits") else {})


def _member(job: Path) -> Member | None:
    """The slice `job` trains; None for a job that is not a slice (one slice, or a config
    that cannot be read or that the job refused: its own row says so)."""
    from gophernet_jax.config import SeedsConfig

    try:  # the seeds as the job validated them (a grid sets the count)
        seeds = SeedsConfig(**_saved_seeds(job))
    except Exception:  # noqa: BLE001 - a config the job refused (its row says why): no slice
        return None
    if seeds.slices == 1:
        return None
    return Member(job, seeds.start, seeds.trained(), seeds.count, seeds.slices)


def _overrides(job: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]


def populations(jobs: list[Path]) -> dict[str, list[Member]]:
    """The sweep's slices grouped by population: the jobs whose overrides are the same but
    for `seeds.start`, by a name made of those overrides."""
    from gophernet_jax.config import job_dir_name

    groups: dict[str, list[Member]] = {}
    for job in jobs:
        member = _member(job)
        if member is not None:
            shared = sorted(o for o in _overrides(job) if not o.startswith(f"{START}="))
            groups.setdefault(job_dir_name(",".join(shared)), []).append(member)
    return groups


def _range(start: int, seeds: int) -> str:
    return f"seeds {start}..{start + seeds - 1}"


def missing_slices(members: list[Member], status: dict[str, tuple[str, str]]) -> list[str]:
    """One line per slice of the population that did not finish: absent (no job ran it),
    failed or unfinished, with the job's own error; `status` is job name -> (status, error)."""
    first = members[0]
    by_start = {m.start: m for m in members}
    lines = []
    for j in range(first.slices):
        start = j * first.seeds
        member = by_start.get(start)
        where = f"slice {START}={start} ({_range(start, first.seeds)})"
        if member is None:
            lines.append(f"{where}: missing (no job ran it)")
            continue
        state, error = status.get(member.job.name, ("incomplete", "no summary.json"))
        if state != "ok":
            lines.append(f"{where}: {state} in {member.job.name}: {error}")
    return lines


def whole_settings(member: Member) -> "Config":  # noqa: F821
    """The validated config of the population `member` is a slice of, as one job would run it."""
    from omegaconf import OmegaConf as Conf

    from gophernet_jax.config import Config, validate, whole_population
    from gophernet_jax.summary import Summary

    saved = Summary.from_json(member.job / "summary.json").config
    saved = saved | {"seeds": _unsplit(saved["seeds"])}
    return whole_population(validate(Conf.merge(Conf.structured(Config), saved)))


#: Reads floats back exactly as written: pandas 3's default parser does (and deprecates the
#: argument); pandas 2's default can be an ulp off.
EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _results(job: Path) -> pd.DataFrame:
    return pd.read_csv(job / "results.csv", **EXACT_FLOATS)


def pooled_population(members: list[Member], dtype: str) -> "Population":  # noqa: F821
    """The population the slices make together, in the order of their seeds: their
    results and parameters, as the job that trained them all would hold them."""
    import jax

    from gophernet_jax.store import load_run
    from gophernet_jax.testrows import load_rows
    from gophernet_jax.training import Population

    members = sorted(members, key=lambda m: m.start)
    frame = pd.concat([_results(m.job) for m in members], ignore_index=True)
    count = members[0].count
    if not np.array_equal(frame["seed"].to_numpy(), np.arange(count)):
        raise ValueError(f"the slices' results.csv hold seeds other than 0..{count - 1}")
    runs = [load_run(m.job) for m in members]
    params = jax.tree.map(lambda *leaves: np.concatenate(leaves), *(run.params for run in runs))
    # Each slice's per-row results, where every slice kept them (rows.csv and test_set pool too).
    found = [load_rows(m.job) for m in members]  # (correct, split, predicted) or None
    rows = all(f is not None and f[2] is not None for f in found)
    return Population(
        params=params,
        final_loss=frame["final_loss"].to_numpy(dtype),  # the training dtype: exact, as trained
        train_accuracy=frame["train_accuracy"].to_numpy(np.float64),
        test_accuracy=frame["test_accuracy"].to_numpy(np.float64),
        diverged=frame["diverged"].to_numpy(bool),
        val_accuracy=frame["val_accuracy"].to_numpy(np.float64) if "val_accuracy" in frame else None,
        tied_rows=frame["tied_rows"].to_numpy(np.int64),
        collapsed=frame["collapsed"].to_numpy(bool),
        test_predicted=np.concatenate([f[2] for f in found]) if rows else None,
        test_correct=np.concatenate([f[0] for f in found]) if rows else None,
    )


def _timing(members: list[Member], settings: "Config") -> dict[str, Any]:  # noqa: F821
    """The slices' time, added up: what training the population took, machines apart."""
    from gophernet_jax.summary import Summary

    summaries = [Summary.from_json(m.job / "summary.json") for m in members]
    phases = {k: sum(s.phases.get(k, 0.0) for s in summaries) for k in summaries[0].phases}
    train = phases.get("train", 0.0)
    return {
        "phases": phases,
        "compilations": sum(s.compilations for s in summaries),
        "cache_hits": sum(s.cache_hits for s in summaries),
        "compile_seconds": sum(s.compile_seconds for s in summaries),
        "training_seconds": sum(s.training_seconds for s in summaries),
        "seed_epochs_per_second": settings.seeds.count * settings.train.epochs / train if train > 0 else None,
        "seconds": sum(s.seconds for s in summaries),
    }


def pool(members: list[Member], folder: Path) -> "Summary":  # noqa: F821
    """Writes the pooled population's files into `folder`, as one job writes its own
    (summary.json last, with `pooled_from`: the slices' jobs); returns its summary."""
    import jax

    from gophernet_jax import job, runtime
    from gophernet_jax.summary import Summary

    members = sorted(members, key=lambda m: m.start)
    settings = whole_settings(members[0])
    run = settings.runtime
    runtime.configure(run.ynn_fusion, run.usable_cache_folder(), run.host_devices)  # as the jobs computed
    jax.config.update("jax_enable_x64", settings.train.dtype == "float64")
    population = pooled_population(members, settings.train.dtype)
    data = job.load_data(settings)
    (folder / "summary.json").unlink(missing_ok=True)
    (folder / INCOMPLETE_FILE).unlink(missing_ok=True)
    scores = job.score(population, data, settings)
    job.write_outputs(settings, folder, population, data, scores.get("variance"))
    summary = Summary(
        **scores,
        pairing=job.pairing(settings, data, job._sizes(settings, data)),
        config=job.portable_config(settings),
        config_hash=job.config_hash(settings),
        **_timing(members, settings),
    )
    slices = [{"job": m.job.name, "start": m.start, "seeds": m.seeds} for m in members]
    write_json({**summary.to_json(), "pooled_from": slices}, folder / "summary.json")
    return summary


def _mark_incomplete(folder: Path, members: list[Member], missing: list[str], finished: list[str]) -> None:
    """No pooled files but the list of what is missing: a population lacking a slice is not
    the population, and files from an earlier, complete pooling would vouch for it (every
    file `pool` wrote: summary, results, params, rows and plots; the folders of other
    populations stay)."""
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()
    first = members[0]
    document = {"complete": False, "seeds": first.count, "slices": first.slices, "missing": missing}
    write_json({**document, "finished": finished}, folder / INCOMPLETE_FILE)


def pool_sweep(sweep_dir: Path, jobs: list[Path], status: dict[str, tuple[str, str]]) -> list[Pooled]:
    """Pools every population of slices among `jobs` (the sweep's job folders) into
    `sweep_dir/pooled/` (`pooled/NAME/` for each of several); `status` is job name ->
    (status, error) as the sweep report found it."""
    groups = populations(jobs)
    found = []
    for name, members in groups.items():
        folder = Path(sweep_dir) / POOLED_DIR / (name if len(groups) > 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        missing = missing_slices(members, status)
        if missing:
            finished = sorted(m.job.name for m in members if status.get(m.job.name, ("",))[0] == "ok")
            _mark_incomplete(folder, members, missing, finished)
            found.append(Pooled(name, folder, members[0].slices, missing))
        else:
            found.append(Pooled(name, folder, members[0].slices, [], pool(members, folder)))
    return found


def format_pooled(pooled: Pooled, shown_folder: Path) -> str:
    """The lines printed for a pooled population: its spread as one job prints it, or
    what it lacks."""
    if pooled.summary is None:
        lines = [f"pooled population INCOMPLETE ({len(pooled.missing)} of {pooled.slices} slices missing):"]
        return "\n".join([*lines, *(f"  {line}" for line in pooled.missing), f"  see {shown_folder}"])
    from gophernet_jax.reporting import format_spread

    summary = pooled.summary
    head = f"pooled population: {summary.seeds} seeds from {pooled.slices} slices, in {shown_folder}"
    from gophernet_jax.cause import format_cause

    lines = [head, format_spread(summary.to_json(), summary.test_rows), *format_cause(summary.cause)]
    if summary.ensemble is not None:
        from gophernet_jax.inference import format_ensemble

        lines.append(format_ensemble(summary.ensemble))
    if summary.variance is not None:
        from gophernet_jax.variance import format_variance

        lines.append(format_variance(summary.variance))
    return "\n".join(lines)


def report_slices(sweep_dir: Path, summary: pd.DataFrame) -> set[str]:
    """Pools and prints every population of slices of a sweep (`summary`: the sweep
    report's table, one row per job); returns the jobs that are slices."""
    from gophernet_jax.job import shown

    if "job" not in summary:  # no job folder at all
        return set()
    jobs = [Path(sweep_dir) / name for name in summary["job"]]
    status = {row["job"]: (row["status"], row["error"]) for _, row in summary.iterrows()}
    found = pool_sweep(sweep_dir, jobs, status)
    for pooled in found:
        print(f"\n{format_pooled(pooled, shown(pooled.folder))}")
    return {m.job.name for members in populations(jobs).values() for m in members} if found else set()


def incomplete(sweep_dir: Path) -> list[str]:
    """The missing slices the latest report found, one line each, from the pooled folders."""
    lines = []
    for path in sorted(Path(sweep_dir).glob(f"{POOLED_DIR}/**/{INCOMPLETE_FILE}")):
        folder = path.parent.relative_to(sweep_dir).as_posix()
        missing = json.loads(path.read_text())["missing"]
        lines += [f"the population in {folder}/ is incomplete: {line}" for line in missing]
    return lines
