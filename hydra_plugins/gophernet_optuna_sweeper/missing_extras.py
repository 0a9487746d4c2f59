"""One line, not Hydra's list of config options, when a launcher or sweeper named on the
command line belongs to an extra that is not installed.

For each such plugin that is missing, a stand-in config of the same name is stored, whose
plugin says which extra to install and exits with status 2. An installed plugin keeps its
own config: nothing is stored for it.
"""

import importlib.util
import sys
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper

#: (config group, option, the plugin's module, the extra that installs it)
EXTRAS = (
    ("hydra/launcher", "joblib", "hydra_plugins.hydra_joblib_launcher", "joblib"),
    ("hydra/launcher", "submitit_local", "hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "submitit_slurm", "hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/sweeper", "optuna", "hydra_plugins.hydra_optuna_sweeper", "legacy-optuna"),
)
HINTS = {
    "legacy-optuna": " (Hydra's legacy Optuna sweeper; this project's is hydra/sweeper=gophernet_optuna)"
}


def missing(find_spec=importlib.util.find_spec) -> list[tuple[str, str, str]]:
    """(group, option, extra) of each plugin in `EXTRAS` that is not installed."""
    return [(group, option, extra) for group, option, module, extra in EXTRAS if find_spec(module) is None]


def message(group: str, option: str, extra: str) -> str:
    return (
        f"error: {group}={option} needs the {extra} extra{HINTS.get(extra, '')}: "
        f"pip install 'gophernet-jax[{extra}]'"
    )


def _stop(settings: dict[str, Any]) -> None:
    print(message(settings["group"], settings["option"], settings["extra"]), file=sys.stderr)
    sys.exit(2)


class MissingLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        _stop(settings)

    def setup(self, **kwargs: Any) -> None:  # pragma: no cover - __init__ has exited
        raise NotImplementedError

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:  # pragma: no cover
        raise NotImplementedError


class MissingSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        _stop(settings)

    def setup(self, **kwargs: Any) -> None:  # pragma: no cover - __init__ has exited
        raise NotImplementedError

    def sweep(self, arguments: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


def register() -> None:
    for group, option, extra in missing():
        stand_in = MissingLauncher if group == "hydra/launcher" else MissingSweeper
        node = {
            "_target_": f"{__name__}.{stand_in.__name__}",
            "group": group,
            "option": option,
            "extra": extra,
        }
        ConfigStore.instance().store(group=group, name=option, node=node, provider="gophernet_jax")


register()
