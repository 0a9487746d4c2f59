"""Hydra callbacks named in conf/config.yaml. Hydra instantiates them when the command
starts, so this module stays light: the sweep report is imported when a sweep ends."""

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


#: Hydra's switch for raising an error rather than printing it (`run_and_report`).
FULL_ERROR = "HYDRA_FULL_ERROR"
#: While this process has FULL_ERROR set for composing: the value it had before, if any.
_composing: list[str | None] = []


@contextlib.contextmanager
def composition_errors_raised() -> Iterator[bool]:
    """Hydra raises, rather than prints, the errors of composing the command's config and
    its jobs' configs, until a job starts (`Composed`); yields whether it was switched here.

    Hydra prints a composition error (an unknown key or config group option, a value where
    a section is, an override it cannot parse) on several lines, with a hint about
    FULL_ERROR, and exits 1, the status that says a sweep's job failed. Raised, it reaches
    `app.main`, which prints one line and exits 2, as for any bad setting. Hydra's basic
    sweeper composes every job's config before the first job starts, so `-m model=mlp,foo`
    stops there too. Once a job has started, Hydra reports as it did (a bug's trace, a
    failed trial's line). A FULL_ERROR of the user's own is left alone: Hydra's whole
    trace, as asked.
    """
    if os.environ.get(FULL_ERROR) == "1":  # the value Hydra reads as set
        yield False
        return
    _composing.append(os.environ.get(FULL_ERROR))
    os.environ[FULL_ERROR] = "1"
    try:
        yield True
    finally:
        composed()


def composed() -> None:
    """A job has started: Hydra prints its errors again (see above)."""
    if _composing:
        before = _composing.pop()
        if before is None:
            os.environ.pop(FULL_ERROR, None)
        else:
            os.environ[FULL_ERROR] = before


class Composed(Callback):
    """Marks the end of composition (`composition_errors_raised`): the run's start, or in a
    sweep the first job's, after Hydra has composed every job of its batch. A sweep whose
    config has a key the schema lacks (`+train.epoch=5`) stops at its start with one line
    naming the key, exit status 2, rather than failing each job on it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        composed()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from gophernet_jax.config import ConfigError, check_keys

        try:
            check_keys(config)
        except ConfigError as e:
            _stop(str(e))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        composed()


class OutputFolderCheck(Callback):
    """A run or sweep folder that cannot be created stops the command with one line, before
    Hydra's own attempt would end in a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _make_folder(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _make_folder(config.hydra.sweep.dir, "hydra.sweep.dir")


class SliceCheck(Callback):
    """A slices sweep (`conf/sweep/slices.yaml`) whose `seeds.slices` cannot cut
    `seeds.count` stops with one line naming the key, exit status 2, before Hydra's sweeper
    reads the slices' starts (where the same error would end in a traceback)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from gophernet_jax.config import ConfigError, SeedsConfig

        try:  # the seeds of the command line (a seeds.start there runs that slice alone)
            SeedsConfig(**OmegaConf.to_container(config.seeds, resolve=True))
        except ConfigError as e:
            _stop(str(e))


def _make_folder(folder: str, key: str) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _stop(f"config key {key}: cannot create {folder}: {e.strerror or e}")


def _stop(message: str) -> None:
    """Ends the command before any job: one `error:` line, exit status 2 (a bad setting)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def is_search(sweeper: DictConfig) -> bool:
    """Is `sweeper` (the `hydra.sweeper` node) a search (Optuna, Nevergrad, Ax), which reads
    each job's return value? Decided here alone, for the sweep report and the app."""
    target = OmegaConf.select(sweeper, "_target_")
    return target is not None and target != BASIC_SWEEPER


class SweepReport(Callback):
    """At the end of a multirun, compare every job of the sweep folder (`sweep.report_sweep`).

    Hydra turns an exception in a callback into a warning and exits 0, so a failure here
    becomes an exit status instead: 1 when a job failed, 2 for a comparison that cannot be
    made as asked, 3 when the report itself failed.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from gophernet_jax.sweep import report_or_status

        baseline, gamma = (OmegaConf.select(config, f"report.{key}") for key in ("baseline", "gamma"))
        sweep_dir, search = Path(config.hydra.sweep.dir), is_search(config.hydra.sweeper)
        status = report_or_status(sweep_dir, baseline, search, gamma)
        if status:
            sys.exit(status)  # the files are written; the command says what failed
