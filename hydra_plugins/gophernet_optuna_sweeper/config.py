"""The sweeper's config, stored in Hydra's ConfigStore as `hydra/sweeper=gophernet_optuna`."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConf:
    """The sampler: `tpe` (Optuna's TPESampler) or `random`.

    Every TPE argument whose default changed between Optuna 4 and 5 is set here, to Optuna
    5's values for one objective (multivariate TPE, the constant liar), so the installed
    version's defaults do not decide. They do not make 4.9 and 5 ask the same trials: with
    these settings both ask the same random startup trials, then 5's TPE (other bandwidths)
    asks others."""

    name: str = "tpe"
    #: Trial n is asked by a sampler seeded from (seed, n) (see the README): a resumed
    #: study asks what one uninterrupted run would have asked. None: unseeded.
    seed: int | None = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    group: bool = False
    constant_liar: bool = True


@dataclass
class GophernetOptunaSweeperConf:
    _target_: str = "hydra_plugins.gophernet_optuna_sweeper.gophernet_optuna_sweeper.GophernetOptunaSweeper"
    #: minimize (the app returns an error, 1 - report.objective) or maximize
    direction: str = "minimize"
    study_name: str = "gophernet"
    #: null: an Optuna journal file in the sweep folder (`study.journal`), so the same
    #: command run again continues the study; a URL with `://` (sqlite:///study.db): an
    #: RDB storage; `memory`: nothing kept; any other text: the path of a journal file.
    storage: str | None = None
    #: Trials the study holds when the sweep ends, counting those of earlier runs: complete,
    #: pruned and failed ones, not those an interrupted run left running.
    n_trials: int = 20
    #: Trials asked, launched and told together (the launcher may run them in parallel).
    n_jobs: int = 1
    #: The sweep stops when more than this fraction of one batch's trials failed.
    max_failure_rate: float = 0.0
    sampler: SamplerConf = field(default_factory=SamplerConf)
    #: The search space in Hydra's sweep syntax: choice(...), range(...), interval(...),
    #: tag(log, interval(...)), int(interval(...)); command-line sweeps add to it.
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="gophernet_optuna", node=GophernetOptunaSweeperConf, provider="gophernet_jax"
)
