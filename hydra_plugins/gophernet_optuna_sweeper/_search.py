"""The search: Optuna's ask-and-tell interface around Hydra's launcher.

Each batch asks Optuna for `n_jobs` trials, turns each trial's parameters (and the fixed
overrides) into a Hydra job, launches the batch, and tells Optuna every job's return value,
the error to minimise, or a failed trial. Each trial keeps a few of its population's
statistics (from the job's summary.json) as user attributes.
"""

import json
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from .gophernet_optuna_sweeper import SearchError

log = logging.getLogger(__name__)

#: Files the sweeper writes into the sweep folder.
JOURNAL, SAMPLER_FILE, RESULTS_FILE = "study.journal", "sampler.json", "optimization_results.yaml"
#: The study's user attribute listing the trials an interrupted run left running (failed
#: at the next start): they do not count towards n_trials.
INTERRUPTED = "interrupted_trials"
#: A trial's user attributes taken from its job's summary.json: attribute -> keys in the summary.
SUMMARY_ATTRS = {
    "objective": ("objective", "value"),
    "objective_name": ("objective", "name"),
    "objective_on": ("objective", "on"),
    "val_accuracy_mean": ("val_accuracy", "mean"),
    "val_accuracy_q05": ("val_accuracy", "q05"),
    "test_accuracy_mean": ("test_accuracy", "mean"),
    "test_accuracy_std": ("test_accuracy", "std"),
    "test_accuracy_q05": ("test_accuracy", "q05"),
    "collapsed": ("collapsed",),
    "diverged": ("diverged",),
    "cause": ("cause", "kind"),  # only where half the seeds or more failed
    "seeds": ("seeds",),
    "seconds": ("seconds",),
}
TPE_KEYS = ("seed", "n_startup_trials", "n_ei_candidates", "multivariate", "group", "constant_liar")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SearchSpace(NamedTuple):
    """What Optuna chooses (a distribution per key), and the overrides every trial gets as given."""

    distributions: dict[str, BaseDistribution]
    fixed: list[str]


def search_space(params: Mapping[str, Any], arguments: Sequence[str]) -> SearchSpace:
    """The search space of `hydra.sweeper.params` and the command line's overrides, in
    Hydra's sweep syntax. A key given twice takes its last value: the command line's."""
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as e:
        raise SearchError(f"error: the search space: {str(e).splitlines()[0]}") from None
    by_key: dict[str, Override] = {}
    for override in parsed:
        by_key[override.get_key_element()] = override
    distributions = {k: distribution(o) for k, o in by_key.items() if o.is_sweep_override()}
    fixed = [str(o.input_line) for o in by_key.values() if not o.is_sweep_override()]
    return SearchSpace(distributions, fixed)


def distribution(override: Override) -> BaseDistribution:
    """Optuna's distribution for one sweep: choice() is categorical; range(start, stop, step)
    the values Hydra's range gives (stop excluded), ints or floats on that step;
    interval(low, high) a float, int(interval(...)) an int; tag(log, ...) on a log scale."""
    value, line = override.value(), override.input_line
    try:
        if isinstance(value, ChoiceSweep | RangeSweep) and value.shuffle:
            value.shuffle = False  # the order of the choices is no part of the space: keep it fixed
        if isinstance(value, ChoiceSweep):
            return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if not values:
                raise ValueError("an empty range")
            low, high, step = min(values), max(values), abs(value.step)
            if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
                return IntDistribution(low, high, step=step)
            return FloatDistribution(low, high, step=step)
        if isinstance(value, IntervalSweep):
            log_scale = "log" in value.tags
            if isinstance(value.start, int) and isinstance(value.end, int):
                return IntDistribution(value.start, value.end, log=log_scale)
            return FloatDistribution(value.start, value.end, log=log_scale)
    except ValueError as e:
        raise SearchError(f"error: the search space: {line}: {e}") from None
    raise SearchError(f"error: the search space: {line}: Optuna cannot search a {type(value).__name__}")


def _formatted(value: Any) -> str:
    """A parameter's value as Hydra's override grammar reads it back."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str) and not re.fullmatch(r"[\w.:/+-]+", value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def trial_overrides(trial: Trial | FrozenTrial, space: SearchSpace) -> list[str]:
    return [f"{key}={_formatted(trial.params[key])}" for key in space.distributions] + space.fixed


# --- the study --------------------------------------------------------------------------


def storage_of(storage: str | None, sweep_dir: Path) -> tuple[optuna.storages.BaseStorage | None, str]:
    """Optuna's storage for `hydra.sweeper.storage`, and how to name it in logs and files
    (an RDB URL without its password)."""
    if storage == "memory":
        return None, "memory"
    if storage is not None and "://" in storage:
        return optuna.storages.RDBStorage(storage), re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", storage)
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage) if storage is not None else sweep_dir / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)


def open_study(settings: DictConfig, sweep_dir: Path) -> tuple[optuna.Study, str]:
    if settings.direction not in ("minimize", "maximize"):
        raise SearchError(
            f"error: config key hydra.sweeper.direction: minimize or maximize, not {settings.direction!r}"
        )
    try:
        storage, name = storage_of(settings.storage, sweep_dir)
        study = optuna.create_study(
            storage=storage, study_name=settings.study_name, direction=settings.direction, load_if_exists=True
        )
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's, the journal's, Optuna's errors alike
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        raise SearchError(f"error: config key hydra.sweeper.storage: cannot open the study: {message}") from e
    if study.direction.name.lower() != settings.direction:
        raise SearchError(
            f"error: config key hydra.sweeper.direction: study {settings.study_name!r} in {name} "
            f"was made to {study.direction.name.lower()}"
        )
    return study, name


def fail_interrupted(study: optuna.Study) -> list[int]:
    """Marks FAIL the trials an earlier run left RUNNING (killed, or interrupted): with one
    sweeper per study at a time, nothing will ever tell their results."""
    numbers = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in numbers:
        study.tell(number, state=TrialState.FAIL)
    if numbers:
        earlier = study.user_attrs.get(INTERRUPTED, [])
        study.set_user_attr(INTERRUPTED, sorted({*earlier, *numbers}))
        log.warning(f"trials {numbers}, left running by an interrupted run, are marked failed")
    return numbers


def mark_interrupted_jobs(
    study: optuna.Study, numbers: Sequence[int], space: "SearchSpace", sweep_dir: Path
) -> None:
    """Writes error.json, status "interrupted", into the job folder each interrupted trial
    left (its overrides those of the trial, no summary.json or error.json in it): the trial
    is failed and will not run again, so the sweep report lists the folder as interrupted
    rather than as a job still to finish (which made every later report exit 1)."""
    wanted = {frozenset(trial_overrides(study.trials[n], space)): n for n in numbers}
    for listed in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job = listed.parent.parent
        if (job / "summary.json").exists() or (job / "error.json").exists():
            continue
        number = wanted.get(frozenset(OmegaConf.load(listed)))
        if number is not None:
            error = (
                f"trial {number}, interrupted before it finished: marked failed, not counted towards n_trials"
            )
            (job / "error.json").write_text(json.dumps({"status": "interrupted", "error": error}))


#: The study's user attribute holding the overrides every trial got (`SearchSpace.fixed`).
FIXED = "fixed_overrides"


def check_fixed(study: optuna.Study, space: "SearchSpace", ignored: Sequence[str], name: str) -> None:
    """Refuses to go on with a study whose trials had other fixed settings (`seeds.count=20`
    then 30, or other epochs): their objectives would not compare, and a trial of the new
    settings would be reported best beside trials it is not paired with. Settings that
    change no result (a job folder's excluded keys, `ignored`) may differ. A study that
    predates the attribute gets it."""
    fixed = sorted(o for o in space.fixed if o.split("=", 1)[0].lstrip("+~") not in set(ignored))
    earlier = study.user_attrs.get(FIXED)
    if earlier is None:
        study.set_user_attr(FIXED, fixed)
    elif earlier != fixed:
        was, now = sorted(set(earlier) - set(fixed)), sorted(set(fixed) - set(earlier))
        raise SearchError(
            f"error: study {study.study_name!r} in {name} ran its trials with "
            f"{', '.join(was) or 'no such override'}, where this run gives {', '.join(now) or 'none'}: "
            "trials of other settings do not compare; "
            "give its settings, or another hydra.sweep.dir (or hydra.sweeper.study_name)"
        )


def counted(study: optuna.Study) -> int:
    """The trials that count towards n_trials: finished ones, failed ones included (a failed
    trial is a result: its setting failed), but not those an interrupted run left behind."""
    interrupted = set(study.user_attrs.get(INTERRUPTED, []))
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    return sum(1 for t in trials if t.number not in interrupted)


# --- the sampler ------------------------------------------------------------------------


def sampler_settings(sampler: DictConfig) -> dict[str, Any]:
    if sampler.name == "random":
        return {"name": "random", "seed": sampler.seed}
    if sampler.name == "tpe":
        return {"name": "tpe", **{key: sampler[key] for key in TPE_KEYS}}
    raise SearchError(f"error: config key hydra.sweeper.sampler.name: tpe or random, not {sampler.name!r}")


def trial_seed(seed: int, number: int) -> int:
    """The seed of the sampler that asks trial `number`: NumPy's SeedSequence of (seed,
    number). Not seed + number: Mersenne Twisters seeded 0 and 3 start with 0.549 and 0.551."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def make_sampler(settings: Mapping[str, Any], number: int) -> optuna.samplers.BaseSampler:
    """The sampler that asks trial `number`, seeded by `trial_seed`: what a trial asks
    depends on the study's history, not on how many runs made it."""
    kwargs = {k: v for k, v in settings.items() if k != "name"}
    if kwargs["seed"] is not None:
        kwargs["seed"] = trial_seed(kwargs["seed"], number)
    with warnings.catch_warnings():
        # Optuna 4 calls multivariate TPE and the constant liar experimental; asked for here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings["name"] == "random":
            return optuna.samplers.RandomSampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)


def record_sampler(study: optuna.Study, settings: dict[str, Any], path: Path) -> None:
    """Writes the sampler's settings beside the study (`sampler.json`) and into it."""
    earlier = study.user_attrs.get("sampler")
    if earlier is not None and earlier != settings:
        log.warning(f"the study's earlier trials were asked with another sampler: {earlier}")
    study.set_user_attr("sampler", settings)
    record = {
        "sampler": settings,
        "seeding": "trial n is asked by a new sampler seeded with SeedSequence([seed, n])",
        "optuna": optuna.__version__,
        "study_name": study.study_name,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


# --- the jobs ---------------------------------------------------------------------------


def _job_folder(ret: JobReturn) -> Path | None:
    folder = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
    return Path(folder) if folder else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_attrs(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The few statistics of a job's summary.json a trial keeps (absent keys left out)."""
    attrs = {}
    for attr, keys in SUMMARY_ATTRS.items():
        value: Any = summary
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            attrs[attr] = value
    return attrs


def outcome(ret: JobReturn) -> tuple[float | None, dict[str, Any]]:
    """A finished job's value for Optuna (None: a failed trial) and its user attributes."""
    folder = _job_folder(ret)
    attrs: dict[str, Any] = {"job": folder.name} if folder else {}
    if ret.status != JobStatus.COMPLETED:
        # Not ret.return_value: it re-raises the job's exception and writes to stderr.
        error = (_read_json(folder / "error.json") or {}).get("error") if folder else None
        return None, attrs | {"error": error or str(ret._return_value).splitlines()[0]}
    if folder and (summary := _read_json(folder / "summary.json")):
        attrs |= summary_attrs(summary)
    try:
        value = float(ret.return_value)
    except (TypeError, ValueError):
        return None, attrs | {"error": f"the job returned {ret.return_value!r}, not a number"}
    if not math.isfinite(value):
        return None, attrs | {"error": f"the job returned {value}"}
    return value, attrs


# --- the search -------------------------------------------------------------------------


def run_search(settings: DictConfig, config: DictConfig, launcher: Launcher, arguments: list[str]) -> None:
    """Runs the study up to `n_trials` counted trials, then writes its best trial."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    space = search_space(settings.params or {}, arguments)
    if not space.distributions:
        raise SearchError("error: the search space is empty: set hydra.sweeper.params, or sweep a key")
    if settings.n_jobs < 1 or not 0.0 <= settings.max_failure_rate <= 1.0:
        raise SearchError("error: config keys hydra.sweeper: n_jobs >= 1 and max_failure_rate in [0, 1]")
    sampler = sampler_settings(settings.sampler)
    study, storage = open_study(settings, sweep_dir)
    ignored = OmegaConf.select(config, "hydra.job.config.override_dirname.exclude_keys", default=None) or []
    check_fixed(study, space, list(ignored), storage)
    record_sampler(study, sampler, sweep_dir / SAMPLER_FILE)
    mark_interrupted_jobs(study, fail_interrupted(study), space, sweep_dir)
    done = counted(study)
    log.info(f"study {study.study_name!r} in {storage}: {done} trials done, {settings.n_trials} wanted")
    try:
        while (to_go := settings.n_trials - counted(study)) > 0:
            batch = []
            for _ in range(min(settings.n_jobs, to_go)):
                study.sampler = make_sampler(sampler, len(study.get_trials(deepcopy=False)))
                batch.append(study.ask(fixed_distributions=space.distributions))
            jobs = [trial_overrides(t, space) for t in batch]
            returns = launcher.launch(jobs, initial_job_idx=batch[0].number)
            failed = [_tell(study, trial, ret) for trial, ret in zip(batch, returns)]
            failures = [ret for ret, bad in zip(returns, failed) if bad]
            if failures and len(failures) / len(batch) > settings.max_failure_rate:
                first = str(failures[0]._return_value).splitlines()[0]
                raise SearchError(
                    f"{first} (the search stops: {len(failures)} of {len(batch)} trials of a batch failed, "
                    f"more than hydra.sweeper.max_failure_rate={settings.max_failure_rate})",
                    status=1,
                )
    finally:
        write_results(study, storage, sweep_dir / RESULTS_FILE)


def _tell(study: optuna.Study, trial: Trial, ret: JobReturn) -> bool:
    """Tells Optuna a job's result; True when the trial failed."""
    value, attrs = outcome(ret)
    for key, attr in attrs.items():
        trial.set_user_attr(key, attr)
    if value is None:
        study.tell(trial, state=TrialState.FAIL)
        log.warning(f"trial {trial.number} failed: {attrs.get('error')}")
        return True
    study.tell(trial, value)
    return False


def write_results(study: optuna.Study, storage: str, path: Path) -> None:
    """optimization_results.yaml, as Hydra's Optuna sweeper writes it (best_params,
    best_value), with the study's name, storage, trial counts and the best trial's job."""
    trials = study.get_trials(deepcopy=False)
    results: dict[str, Any] = {
        "name": "gophernet_optuna",
        "study_name": study.study_name,
        "storage": storage,
        "trials": {
            "counted": counted(study),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
        },
    }
    if results["trials"]["complete"]:
        best = study.best_trial
        results |= {
            "best_trial": best.number,
            "best_job": best.user_attrs.get("job"),
            "best_params": best.params,
            "best_value": best.value,
        }
        log.info(f"best trial {best.number}: {best.params}, value {best.value}")
    OmegaConf.save(OmegaConf.create(results), path)
