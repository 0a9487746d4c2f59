"""The run's configuration: dataclasses registered in Hydra's ConfigStore, validated once.

Numeric fields are typed `Any` in the schema on purpose: a typed field makes Hydra
reject `train.epochs=abc` itself with a multi-line message; here every bad value gets
one line that names its key (`ConfigError`), raised by `__post_init__` when
`OmegaConf.to_object` builds the validated objects.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gophernet_jax.dataset import ARTICLE_LABELS
from gophernet_jax.training import OPTIMIZERS, RULES, SOURCES

_HERE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """A folder shipped with the package: inside it when installed from a wheel,
    beside it (the repository's top level) when run from a source checkout."""
    inside = _HERE / name
    return inside if inside.is_dir() else _HERE.parent / name


CONF_DIR = shipped("conf")
DATA_DIR = shipped("data")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _int(key: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        raise ConfigError(f"config key {key}: expected an integer {bound}, got {value!r}")
    return value


def _choice(key: str, value: Any, choices) -> str:
    if value not in choices:
        raise ConfigError(f"config key {key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key {key}: expected true or false, got {value!r}")
    return value


@dataclass
class SeedsConfig:
    count: Any = 1  # int >= 1: seeds trained together
    base: Any = 0  # int in [0, 2**32 - 1]: seed i is fold_in(key(base), i)
    vary: Any = field(default_factory=lambda: ["init"])  # sources that follow the seed: init, split, noise
    splits: Any = 0  # int >= 0: > 0 makes a crossed grid of `splits` splits × count/splits inits

    def __post_init__(self) -> None:
        self.count = _int("seeds.count", self.count, 1)
        self.base = _int("seeds.base", self.base, 0, 2**32 - 1)
        vary = list(self.vary) if isinstance(self.vary, (list, tuple)) else [self.vary]
        if not vary or any(v not in SOURCES for v in vary) or len(set(vary)) < len(vary):
            raise ConfigError(
                f"config key seeds.vary: expected a list of {', '.join(SOURCES)}, got {self.vary!r}"
            )
        self.vary = vary
        self.splits = _int("seeds.splits", self.splits, 0)
        if self.splits and (self.splits < 2 or self.count % self.splits or self.count // self.splits < 2):
            raise ConfigError(
                f"config key seeds.splits: a grid needs >= 2 splits dividing seeds.count ({self.count}) "
                f"into >= 2 initialisations each, got {self.splits}"
            )


@dataclass
class ModelConfig:
    hidden: Any = 3  # int >= 1: hidden units

    def __post_init__(self) -> None:
        self.hidden = _int("model.hidden", self.hidden, 1)


@dataclass
class TrainConfig:
    epochs: Any = 5000  # int >= 1
    rule: Any = "autodiff"  # autodiff | article
    dtype: Any = "float32"  # float32 | float64
    chunk_size: Any = 500  # int >= 1: seeds trained together; bounds memory

    def __post_init__(self) -> None:
        self.epochs = _int("train.epochs", self.epochs, 1)
        self.rule = _choice("train.rule", self.rule, tuple(RULES))
        self.dtype = _choice("train.dtype", self.dtype, ("float32", "float64"))
        self.chunk_size = _int("train.chunk_size", self.chunk_size, 1)


@dataclass
class OptimizerConfig:
    name: Any = "sgd"  # an optax alias: see training.OPTIMIZERS
    learning_rate: Any = 0.3  # float > 0, on the summed loss

    def __post_init__(self) -> None:
        self.name = _choice("optimizer.name", self.name, OPTIMIZERS)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"config key optimizer.learning_rate: expected a number > 0, got {lr!r}")
        self.learning_rate = float(lr)


@dataclass
class DataConfig:
    # The article's pre-split files (the default):
    train: Any = str(DATA_DIR / "train.csv")
    test: Any = str(DATA_DIR / "test.csv")
    labels: Any = field(default_factory=lambda: list(ARTICLE_LABELS))
    padding_row: Any = False  # true: the reference loader's extra all-zero row
    # Or a raw table, split by the run (data=iris, data=wine, or data.path + data.label):
    path: Any = None  # a CSV of features and a label
    label: Any = None  # its class column, or a list of its one-hot columns
    test_fraction: Any = 0.2  # share of each class held out, in (0, 1)
    split_seed: Any = 0  # split s is fold_in(key(split_seed), s)
    noise: Any = 0.0  # Gaussian feature noise, in units of each column's range (>= 0)
    noise_seed: Any = 0  # noise draw n is fold_in(key(noise_seed), n)

    def __post_init__(self) -> None:
        if self.path is not None:
            self._check_raw()
        for key in ("train", "test"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"config key data.{key}: expected a file path, got {getattr(self, key)!r}")
        labels = list(self.labels) if isinstance(self.labels, (list, tuple)) else None
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ConfigError(f"config key data.labels: expected a list of column names, got {self.labels!r}")
        self.labels = labels
        self.padding_row = _bool("data.padding_row", self.padding_row)

    def _check_raw(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(f"config key data.path: expected a file path, got {self.path!r}")
        label = list(self.label) if isinstance(self.label, (list, tuple)) else self.label
        if not label or not all(
            isinstance(x, str) and x for x in (label if isinstance(label, list) else [label])
        ):
            raise ConfigError(
                f"config key data.label: name the class column (or one-hot columns), got {self.label!r}"
            )
        self.label = label
        fraction = self.test_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"config key data.test_fraction: expected a number in (0, 1), got {fraction!r}")
        self.test_fraction = float(fraction)
        self.split_seed = _int("data.split_seed", self.split_seed, 0, 2**32 - 1)
        self.noise_seed = _int("data.noise_seed", self.noise_seed, 0, 2**32 - 1)
        noise = self.noise
        if (
            isinstance(noise, bool)
            or not isinstance(noise, (int, float))
            or not math.isfinite(noise)
            or noise < 0
        ):
            raise ConfigError(f"config key data.noise: expected a number >= 0, got {noise!r}")
        self.noise = float(noise)
        if self.padding_row:
            raise ConfigError("config key data.padding_row: applies to the article's files, not to data.path")


@dataclass
class ReportConfig:
    curve_every: Any = 50  # int >= 0: record loss and test accuracy every k epochs (0: never)
    baseline: Any = None  # the sweep's reference job: its folder name or "key=value[,key=value]"

    def __post_init__(self) -> None:
        self.curve_every = _int("report.curve_every", self.curve_every, 0)
        if self.baseline is not None and not isinstance(self.baseline, str):
            self.baseline = str(self.baseline)


@dataclass
class RuntimeConfig:
    """How to run, not what: none of these changes a result."""

    progress: Any = "auto"  # auto (on a terminal) | true | false
    ynn_fusion: Any = False  # XLA's experimental CPU library fusion; off measured faster here
    compilation_cache: Any = None  # a folder: reuse compiled programs across processes

    def __post_init__(self) -> None:
        if self.progress != "auto":
            self.progress = _bool("runtime.progress", self.progress)
        self.ynn_fusion = _bool("runtime.ynn_fusion", self.ynn_fusion)
        if self.compilation_cache is not None and not isinstance(self.compilation_cache, str):
            raise ConfigError(
                f"config key runtime.compilation_cache: expected a folder, got {self.compilation_cache!r}"
            )


@dataclass
class Config:
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        varies = self.seeds.splits or set(self.seeds.vary) - {"init"}
        if varies and self.data.path is None:
            raise ConfigError(
                "config key seeds.vary: varying the split or noise needs a raw table "
                "(data=iris, data=wine, or data.path and data.label)"
            )


def job_dir_name(override_dirname: str) -> str:
    """A job's folder name from its overrides: the same overrides, the same folder.

    Resuming relies on it: a job is found again by what it changes, not by its position.
    """
    name = re.sub(r"[^A-Za-z0-9._,=+-]", "_", override_dirname) or "defaults"
    return name if len(name) <= 150 else f"{name[:130]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def register() -> None:
    """Makes the schema the base of `conf/config.yaml` (its defaults list names it), and
    `${job_dir:...}` available to `hydra.sweep.subdir`."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    OmegaConf.register_new_resolver("job_dir", job_dir_name, replace=True)
    OmegaConf.register_new_resolver("shipped_data", lambda name: str(DATA_DIR / name), replace=True)


def validate(cfg: DictConfig) -> Config:
    """The validated, typed configuration, or a one-line `ConfigError` naming the key."""
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(e).splitlines()[0]) from None
