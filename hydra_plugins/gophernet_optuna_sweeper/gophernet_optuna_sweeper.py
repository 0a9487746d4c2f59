"""The sweeper Hydra instantiates for `hydra/sweeper=gophernet_optuna`. Light on import:
Optuna is imported by `sweep`, with a one-line error when the `search` extra is missing."""

import sys
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# Imported here, so that Hydra's scan of the plugins registers the config.
from .config import GophernetOptunaSweeperConf


class SearchError(Exception):
    """A search that cannot go on: the message is the line the command prints, `status` its
    exit status (2: a setting; 1: too many trials failed)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class GophernetOptunaSweeper(Sweeper):
    """Asks Optuna for a batch of trials, launches them as Hydra jobs, tells Optuna their
    results: see `_search.run_search` and the README's section on searches."""

    def __init__(self, **settings: Any) -> None:
        # Typed and checked against the schema: a misspelt key fails here, by name.
        schema = OmegaConf.structured(GophernetOptunaSweeperConf)
        self.settings = OmegaConf.merge(schema, settings)
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        """Runs the search; a `SearchError` ends the command with its one line (Hydra would
        add a line about HYDRA_FULL_ERROR to an exception's message)."""
        try:
            try:
                from ._search import run_search
            except ModuleNotFoundError as e:
                raise SearchError(
                    f"error: hydra/sweeper=gophernet_optuna needs Optuna ({e.name} is not installed): "
                    "pip install 'gophernet-jax[search]'"
                ) from None
            assert self.config is not None and self.launcher is not None, "setup() comes first"
            return run_search(self.settings, self.config, self.launcher, arguments)
        except SearchError as e:
            print(e, file=sys.stderr)
            sys.exit(e.status)
