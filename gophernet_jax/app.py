"""The Hydra application: the entry point around `job.job`, which trains a population
and writes its files. Here: one-line errors and their exit statuses, resume of a sweep's
finished jobs, the search sweepers' protocol, Ctrl-C and closed pipes.
"""

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    CompactHydraException,
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from gophernet_jax import callbacks, progress, runtime
from gophernet_jax import config as config_module
from gophernet_jax.config import (
    CONF_DIR,
    ConfigError,
    section_given_a_value,
    unknown_key,
    unused_settings,
    validate,
)
from gophernet_jax.dataset import DataError
from gophernet_jax.files import write_json
from gophernet_jax.job import config_hash, job, shown
from gophernet_jax.summary import Summary, SummaryError

config_module.register()


def finished_earlier(output_dir: Path, digest: str) -> Summary | None:
    """The summary of a job with this configuration that already finished in this folder.
    summary.json is written last, so its presence means every other file was complete; one
    that cannot be read (cut short by a full disk, say), or beside a results.csv that is
    missing or short of its seeds (the sweep report reads it), marks no finished job."""
    path = output_dir / "summary.json"
    if not path.is_file():
        return None
    from gophernet_jax.sweep import UnreadableFile, job_results  # pandas: only where a job finished

    try:
        summary = Summary.from_json(shown(path))
        if summary.config_hash == digest:
            job_results(output_dir, summary.seeds)
    except (SummaryError, UnreadableFile) as e:
        print(f"note: {e}; running the job again", file=sys.stderr)
        return None
    return summary if summary.config_hash == digest else None


def _in_search() -> bool:
    """Is this job a trial of a search sweeper (Optuna, Nevergrad, Ax), which reads its return value?"""
    config = HydraConfig.get()
    return config.mode == RunMode.MULTIRUN and callbacks.is_search(config.sweeper)


def _returned(summary: Summary) -> float:
    error = summary.objective.error
    return float(error) if error is not None and math.isfinite(error) else 1.0


#: The job running now (its folder, and whether it is a sweep's), for the line printed on Ctrl-C.
_running: dict[str, Any] = {}


def _interrupted_line() -> str:
    """What a Ctrl-C leaves: finished jobs keep their files, the running one counts as not
    run (no summary.json, which a resume would trust)."""
    output_dir = _running.get("output_dir")
    if output_dir is None:
        return "interrupted: no job had started"
    done = (output_dir / "summary.json").is_file()
    if not _running["multirun"]:
        if done:
            return f"interrupted: the run had finished; its files are in {shown(output_dir)}"
        return f"interrupted: the run did not finish; nothing of it was kept ({shown(output_dir)})"
    sweep_dir = output_dir.parent
    finished = sum(1 for _ in sweep_dir.glob("*/summary.json"))
    job_state = "had finished" if done else "did not finish and was not kept"
    return (
        f"interrupted: job {output_dir.name} {job_state}; {finished} finished "
        f"{'job is' if finished == 1 else 'jobs are'} kept in {shown(sweep_dir)}, and the same command "
        "runs the rest"
    )


def _leave_interrupted() -> None:
    """Ends the process on Ctrl-C: one line, exit status 130 (128 + SIGINT), no teardown
    (XLA may still be running the interrupted program)."""
    progress.end_line()
    with contextlib.suppress(Exception):
        print(_interrupted_line(), file=sys.stderr)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(130)


def main() -> None:
    """Entry point of `python -m gophernet_jax` and `gophernet-jax` (see `_main`).

    Output to a reader that has gone (`| head`) is dropped and the run goes on to the end,
    writing every file, with its usual exit status. Ctrl-C ends the command at once with
    one line saying what was kept, and exit status 130.
    """
    runtime.quiet_closed_pipes()
    runtime.on_interrupt = _leave_interrupted
    try:
        with callbacks.composition_errors_raised() as raised:
            _main()
    except KeyboardInterrupt:
        _leave_interrupted()
    except (ConfigCompositionException, OverrideParseException, OmegaConfBaseException) as e:
        if not raised:
            raise  # the user's HYDRA_FULL_ERROR: Hydra's whole trace
        print(f"error: {composition_error(e)}", file=sys.stderr)
        sys.exit(2)
    except CompactHydraException as e:
        if not raised:
            raise
        # Raised in a sweep whose jobs run elsewhere (`composed` is called in the job's
        # process): what Hydra prints for it, and its status.
        print(e, file=sys.stderr)
        if isinstance(e.__cause__, OmegaConfBaseException):
            print(e.__cause__, file=sys.stderr)
        sys.exit(1)


def composition_error(e: Exception) -> str:
    """One line for an error of composing the command's config (`main`): an unknown config
    group option with the options there are, an unknown key with the one it may mean, a value
    where a section of keys is, else Hydra's message on one line."""
    cause = e.__cause__
    if isinstance(e, MissingConfigException) and e.missing_cfg_file and e.options:
        group, _, name = e.missing_cfg_file.rpartition("/")
        return f"config group {group}: no option {name!r} (options: {', '.join(e.options)})"
    key = getattr(cause, "full_key", None) or getattr(e, "full_key", None)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        return str(unknown_key(key))
    if isinstance(cause, ValidationError) and key and (error := section_given_a_value(key)):
        return str(error)
    lines = [line.strip().removesuffix(".") for line in str(e).splitlines() if line.strip()]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    message = "; ".join(lines)
    if isinstance(e, OverrideParseException) and "input '='" in message:  # a value holding '='
        message += "; a value that holds '=' is quoted inside the override: \"report.baseline='a=1'\""
    elif isinstance(e, OverrideParseException):  # most often a shell's split: seeds.grid={split: 2}
        message += "; in a shell, quote an override that holds spaces: 'seeds.grid={split: 2, init: 3}'"
    if isinstance(cause, OmegaConfBaseException):
        message += f": {str(cause).splitlines()[0]}"
    return f"config key {key}: {message}" if key else message


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    """The Hydra application. Returns the job's objective as an error to minimise,
    1 − `report.objective` (see README), for Hydra's search sweepers.

    In a multirun a failing job writes `error.json`. Under the basic sweeper it returns,
    so that Hydra runs the other jobs and the sweep report lists it (the sweep then exits
    non-zero); under a search sweeper it raises, so the sweeper counts a failed trial
    against its `max_failure_rate`.
    """
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    _running.update(output_dir=output_dir, multirun=multirun)
    try:
        settings = validate(cfg)
        for note in unused_settings(settings):
            print(f"note: {note}", file=sys.stderr)
        runtime.configure(
            settings.runtime.ynn_fusion, settings.runtime.usable_cache_folder(), settings.runtime.host_devices
        )
        if multirun and (done := finished_earlier(output_dir, config_hash(settings))):
            print(f"skipped: this configuration already finished in {output_dir}")
            return _returned(done)
        if _in_search() and not settings.data.val_fraction:
            print(
                f"warning: report.objective ({settings.report.objective}) is taken over the test rows: "
                "the search is tuning on the test set; set data.val_fraction to hold out a validation part",
                file=sys.stderr,
            )
        return _returned(job(settings, output_dir, HydraConfig.get().job.num if multirun else None))
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        write_json({"status": "failed", "error": str(e)}, output_dir / "error.json")
        if _in_search():
            raise TrialFailed(f"error: a trial failed ({output_dir.name}): {e}") from None
    except Exception as e:
        if not multirun:
            raise  # a bug, not a user mistake: the traceback is what a developer needs
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"error: {message}", file=sys.stderr)
        write_json({"status": "failed", "error": message}, output_dir / "error.json")
        if _in_search():
            raise TrialFailed(f"error: a trial failed ({output_dir.name}): {message}") from None
    return None


class TrialFailed(CompactHydraException):
    """A search trial that failed; its error is in the job's error.json. Hydra prints a
    compact exception as its message alone, when the sweeper stops on it."""
