"""The run's configuration: dataclasses registered in Hydra's ConfigStore, validated once.

Numeric fields are typed `Any` in the schema on purpose: a typed field makes Hydra
reject `train.epochs=abc` itself with a multi-line message; here every bad value gets
one line that names its key (`ConfigError`), raised by `__post_init__` when
`OmegaConf.to_object` builds the validated objects.
"""

import dataclasses
import difflib
import functools
import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gophernet_jax.dataset import ARTICLE_LABELS
from gophernet_jax.model import ACTIVATIONS, INITS, LOSSES, TIES
from gophernet_jax.statistics import OBJECTIVES
from gophernet_jax.training import OPTIMIZERS, RULES, SCHEDULES, SOURCES

_HERE = Path(__file__).resolve().parent
#: `report.interval`: the interval of the mean a run prints.
INTERVALS = ("seeds", "seeds_and_rows")


def shipped(name: str) -> Path:
    """A folder shipped with the package: inside it when installed from a wheel,
    beside it (the repository's top level) when run from a source checkout."""
    inside = _HERE / name
    return inside if inside.is_dir() else _HERE.parent / name


CONF_DIR = shipped("conf")
DATA_DIR = shipped("data")
#: A data file shipped with the package, by name: `shipped:iris.csv`. Configs and results
#: say this rather than the path of this machine's copy.
SHIPPED = "shipped:"


def data_file(value: str) -> str:
    """A data setting as a path: `shipped:NAME` is the shipped file NAME, any other value a path."""
    return str(DATA_DIR / value[len(SHIPPED) :]) if value.startswith(SHIPPED) else value


def portable_file(path: str) -> str:
    """A data path as configs and results record it: `shipped:NAME` for a shipped file."""
    return f"{SHIPPED}{Path(path).name}" if Path(path).resolve().parent == DATA_DIR else path


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def _distinct(key: str, names: list[str]) -> list[str]:
    """`names`, or a `ConfigError` naming the first one given twice."""
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ConfigError(f"config key {key}: column {twice!r} is named twice")
    return names


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


def _number(key: str, value: Any, low: float, high: float | None = None, *, low_open: bool = True) -> float:
    """A finite number in (low, high) (or [low, high) when not `low_open`)."""
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not number or not (value > low if low_open else value >= low) or (high is not None and value >= high):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g})" if high is not None else None
        wanted = f"a number in {bounds}" if bounds else f"a number {'>' if low_open else '>='} {low:g}"
        raise ConfigError(f"config key {key}: expected {wanted}, got {value!r}")
    return float(value)


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _bytes(key: str, value: Any) -> int:
    """A size in bytes: an integer, or a number with a unit (KB, MB, GB, KiB, MiB, GiB, ...)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", str(value))
    unit = found and found.group(2).upper()
    if isinstance(value, bool) or not found or unit not in _UNITS or float(found.group(1)) * _UNITS[unit] < 1:
        raise ConfigError(
            f"config key {key}: expected a size such as 1GiB, 512MB or a number of bytes, got {value!r}"
        )
    return int(float(found.group(1)) * _UNITS[unit])


def _sources(key: str, value: Any) -> list[str]:
    names = list(value) if isinstance(value, (list, tuple)) else [value]
    if not names or any(v not in SOURCES for v in names) or len(set(names)) < len(names):
        raise ConfigError(f"config key {key}: expected a list of {', '.join(SOURCES)}, got {value!r}")
    return names


def _widths(value: Any) -> int | list[int]:
    widths = list(value) if isinstance(value, (list, tuple)) else [value]
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(
            f"config key model.hidden: expected a width >= 1, or a list of them like [64, 64], got {value!r}"
        )
    return widths[0] if not isinstance(value, (list, tuple)) else widths


def _grid(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"config key seeds.grid: expected a mapping of sources to levels, like "
            f"'{{split: 10, init: 10}}', got {value!r}"
        )
    grid = {}
    for source, levels in value.items():
        if source not in SOURCES:
            raise ConfigError(
                f"config key seeds.grid: unknown source {source!r}; expected some of {', '.join(SOURCES)}"
            )
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ConfigError(
                f"config key seeds.grid.{source}: expected an integer >= 2 levels, got {levels!r}"
            )
        grid[source] = levels
    if len(grid) < 2:  # one source is no design to split a variance by
        ((source, levels),) = grid.items()
        raise ConfigError(
            f"config key seeds.grid: a grid crosses two sources or more, got {source} alone; "
            f"seeds.count={levels} 'seeds.vary=[{source}]' draws {levels} of it"
        )
    return grid


@dataclass
class SeedsConfig:
    count: Any = 1  # int >= 1: seeds trained together (with a grid: 1 or the grid's product)
    base: Any = 0  # int in [0, 2**32 - 1]: seed i is fold_in(key(base), i)
    vary: Any = field(default_factory=lambda: ["init"])  # sources that follow the seed index
    splits: Any = 0  # int >= 0: > 0 is seeds.grid={split: splits, init: count/splits}
    grid: Any = None  # {source: levels}: a full factorial design over these sources
    start: Any = 0  # int >= 0: the index of the first seed this job trains (a grid's: its first cell)
    slices: Any = 1  # int >= 1 dividing count: the population is trained as this many jobs (+sweep=slices)

    def __post_init__(self) -> None:
        self.grid = _grid(self.grid)
        self.vary = _sources("seeds.vary", self.vary)
        self.splits = _int("seeds.splits", self.splits, 0)
        self.count = _int("seeds.count", self.count, 1)
        if self.splits:
            if self.grid is not None:
                raise ConfigError("config key seeds.splits: give seeds.grid or seeds.splits, not both")
            count = self.count
            if self.splits < 2 or count % self.splits or count // self.splits < 2:
                raise ConfigError(
                    f"config key seeds.splits: a grid needs >= 2 splits dividing seeds.count ({count}) "
                    f"into >= 2 initialisations each, got {self.splits}"
                )
            self.grid = {"split": self.splits, "init": count // self.splits}
        if self.grid is not None:
            size = math.prod(self.grid.values())
            if self.count not in (1, size):  # 1 is the default: the grid sets the count
                shape = " × ".join(f"{levels} {source}" for source, levels in self.grid.items())
                raise ConfigError(
                    f"config key seeds.count: {self.count} does not match seeds.grid ({shape} = {size})"
                )
            if self.vary != ["init"]:
                raise ConfigError("config key seeds.vary: with seeds.grid the grid names the varied sources")
            self.count = size
        self.base = _int("seeds.base", self.base, 0, 2**32 - 1)
        self._check_slice()

    def _check_slice(self) -> None:
        """A job trains seeds `start`.. of its population: with `slices` K > 1, the slice
        of count/K seeds that starts there, which must be one of the K; a grid's cells
        are its seeds, so a grid in one job starts at cell 0."""
        self.slices = _int("seeds.slices", self.slices, 1)
        if self.count % self.slices or (self.slices > 1 and self.count // self.slices < 2):
            # a slice of one seed would be a chunk of one, computed another way (population_spec)
            raise ConfigError(
                f"config key seeds.slices: expected a divisor of seeds.count ({self.count}) that leaves "
                f">= 2 seeds per slice, got {self.slices}"
            )
        self.start = _int("seeds.start", self.start, 0, 2**32 - self.count)
        width = self.count // self.slices
        if self.grid and self.slices == 1 and self.start:
            raise ConfigError(
                f"config key seeds.start: a grid (seeds.grid) is trained from its first cell; train part "
                f"of it with seeds.slices, got {self.start}"
            )
        if self.slices > 1 and (self.start % width or self.start >= self.count):
            starts = ", ".join(str(j * width) for j in range(min(self.slices, 4)))
            more = ", ..." if self.slices > 4 else ""
            raise ConfigError(
                f"config key seeds.start: {self.slices} slice(s) of seeds.count={self.count} start at "
                f"{starts}{more}, got {self.start}"
            )

    def varied(self) -> list[str]:
        """The sources whose draw follows the seed: the grid's, or `vary`."""
        return list(self.grid) if self.grid else list(self.vary)

    def trained(self) -> int:
        """How many seeds this job trains: its slice of the population (all of it with one slice)."""
        return self.count // self.slices


@dataclass
class ModelConfig:
    hidden: Any = 3  # int >= 1: hidden units; or a list of widths, one per hidden layer ([64, 64])
    activation: Any = "sigmoid"  # sigmoid | tanh | relu | gelu (jax.nn)
    init: Any = "uniform01"  # uniform01 (the article's U[0, 1)) | glorot_uniform | he_normal | lecun_normal

    def __post_init__(self) -> None:
        self.hidden = _widths(self.hidden)
        self.activation = _choice("model.activation", self.activation, tuple(ACTIVATIONS))
        self.init = _choice("model.init", self.init, INITS)

    def widths(self) -> int | tuple[int, ...]:
        """The hidden widths as `model.Sizes` takes them: an int for one layer, else a tuple."""
        return self.hidden if isinstance(self.hidden, int) else tuple(self.hidden)


@dataclass
class TrainConfig:
    epochs: Any = 5000  # int >= 1
    rule: Any = "autodiff"  # autodiff | article (one sigmoid hidden layer and loss sse only)
    loss: Any = "sse"  # sse (the article's, summed) | mse (averaged) | cross_entropy (softmax, averaged)
    dtype: Any = "float32"  # float32 | float64
    # auto: the most seeds per chunk (at most 512, whole blocks of 16) whose working memory fits
    # runtime.memory_budget; or an int >= 1. Seeds trained together; a seed's numbers do not depend on it.
    chunk_size: Any = "auto"
    batch_size: Any = None  # None: full batch (the article); int >= 1: mini-batches in a fresh order

    def __post_init__(self) -> None:
        self.epochs = _int("train.epochs", self.epochs, 1)
        self.rule = _choice("train.rule", self.rule, tuple(RULES))
        self.loss = _choice("train.loss", self.loss, LOSSES)
        self.dtype = _choice("train.dtype", self.dtype, ("float32", "float64"))
        if self.chunk_size != "auto":
            try:
                self.chunk_size = _int("train.chunk_size", self.chunk_size, 1)
            except ConfigError:  # the same check, naming both choices
                expected = f"expected auto or an integer >= 1, got {self.chunk_size!r}"
                raise ConfigError(f"config key train.chunk_size: {expected}") from None
        if self.batch_size is not None:
            self.batch_size = _int("train.batch_size", self.batch_size, 1)


@dataclass
class OptimizerConfig:
    name: Any = "sgd"  # an optax alias: see training.OPTIMIZERS
    learning_rate: Any = 0.3  # float > 0 (on the summed loss for train.loss=sse)
    # float >= 0, or null: adamw's own decoupled decay (null: optax's default), added to
    # the direction (L2) for the others (null: none)
    weight_decay: Any = None
    schedule: Any = "constant"  # constant | cosine | warmup_cosine, over all the run's steps
    warmup: Any = 0.1  # warmup_cosine: the share of the steps the rate rises over, in (0, 1)

    def __post_init__(self) -> None:
        self.name = _choice("optimizer.name", self.name, OPTIMIZERS)
        self.learning_rate = _number("optimizer.learning_rate", self.learning_rate, 0)
        if self.weight_decay is not None:
            self.weight_decay = _number("optimizer.weight_decay", self.weight_decay, 0, low_open=False)
        self.schedule = _choice("optimizer.schedule", self.schedule, SCHEDULES)
        self.warmup = _number("optimizer.warmup", self.warmup, 0, 1)


@dataclass
class DataConfig:
    # The article's pre-split files (the default), shipped with the package:
    train: Any = "shipped:train.csv"
    test: Any = "shipped:test.csv"
    labels: Any = field(default_factory=lambda: list(ARTICLE_LABELS))
    padding_row: Any = False  # true: the reference loader's extra all-zero row
    # Or a raw table, split by the run (data=iris, data=wine, or data.path + data.label):
    path: Any = None  # a CSV of features and a label
    label: Any = None  # its class column, or a list of its one-hot columns
    test_fraction: Any = 0.2  # share of each class held out, in (0, 1)
    split_seed: Any = 0  # split s is fold_in(key(split_seed), s)
    noise: Any = 0.0  # Gaussian feature noise, in units of each column's range (>= 0)
    noise_seed: Any = 0  # noise draw n is source_keys("noise", noise_seed, [n])
    # Any data:
    # validation rows, from the training rows: this share of each class's rows in the whole table
    val_fraction: Any = 0.0
    order_seed: Any = 0  # with train.batch_size: order j is source_keys("order", order_seed, [j])

    def __post_init__(self) -> None:
        # Files stay as given (`shipped:NAME` included, so that a composed config holds no
        # machine path): `data_file` makes each a path where it is read.
        self.val_fraction = _number("data.val_fraction", self.val_fraction, 0, 1, low_open=False)
        self.split_seed = _int("data.split_seed", self.split_seed, 0, 2**32 - 1)
        self.order_seed = _int("data.order_seed", self.order_seed, 0, 2**32 - 1)
        if self.path is not None:
            self._check_raw()
        for key in ("train", "test"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"config key data.{key}: expected a file path, got {getattr(self, key)!r}")
        labels = list(self.labels) if isinstance(self.labels, (list, tuple)) else None
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ConfigError(f"config key data.labels: expected a list of column names, got {self.labels!r}")
        self.labels = _distinct("data.labels", labels)
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
        # a list of one column is that column by name, as load_table reads it
        self.label = label[0] if isinstance(label, list) and len(label) == 1 else label
        if isinstance(self.label, list):
            self.label = _distinct("data.label", self.label)
        self.test_fraction = _number("data.test_fraction", self.test_fraction, 0, 1)
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"config key data.val_fraction: with data.test_fraction {self.test_fraction:g} it leaves no "
                f"training rows ({self.val_fraction:g} + {self.test_fraction:g} >= 1)"
            )
        self.noise_seed = _int("data.noise_seed", self.noise_seed, 0, 2**32 - 1)
        self.noise = _number("data.noise", self.noise, 0, low_open=False)
        if self.padding_row:
            raise ConfigError("config key data.padding_row: applies to the article's files, not to data.path")


@dataclass
class ReportConfig:
    curve_every: Any = 50  # int >= 0: record loss and test accuracy every k epochs (0: never)
    baseline: Any = None  # the sweep's reference job: its folder name or "key=value[,key=value]"
    ties: Any = "strict"  # strict | article: does a tie for the largest output count as correct?
    objective: Any = "mean"  # the statistic a search optimises: mean, median, q05, q25, min, iqm
    resolution: Any = 0.005  # the half-width a 95% interval should reach: sets "seeds needed"
    # The interval of the mean the report prints: seeds (test rows held fixed, as ever) or
    # seeds_and_rows (the multi-bootstrap: would it hold on new test rows?). The summary has both.
    interval: Any = "seeds"
    # The sweep report's threshold for a meaningful gain: P(A > B) must be able to exceed it
    # (Bouthillier et al.), in (0.5, 1).
    gamma: Any = 0.75

    def __post_init__(self) -> None:
        self.curve_every = _int("report.curve_every", self.curve_every, 0)
        if self.baseline is not None and not isinstance(self.baseline, str):
            self.baseline = str(self.baseline)
        self.ties = _choice("report.ties", self.ties, TIES)
        self.objective = _choice("report.objective", self.objective, OBJECTIVES)
        self.resolution = _number("report.resolution", self.resolution, 0, 1)
        self.interval = _choice("report.interval", self.interval, INTERVALS)
        self.gamma = _number("report.gamma", self.gamma, 0.5, 1)


@dataclass
class RuntimeConfig:
    """How to run, not what: none of these changes a result."""

    progress: Any = "auto"  # auto (on a terminal) | true | false
    ynn_fusion: Any = False  # XLA's experimental CPU library fusion; off measured faster here
    # JAX's persistent compilation cache: "auto" (the user's cache folder, see `cache_folder`),
    # a folder, or false (off): a second run of the same shape compiles nothing.
    compilation_cache: Any = "auto"
    # How many host devices XLA splits the CPU into, each training its share of the chunks:
    # "auto" (one per usable core) or an integer >= 1. A seed's numbers do not depend on it.
    host_devices: Any = "auto"
    # The working memory the training program may take, all devices' chunks together, with
    # train.chunk_size=auto: bytes, or a number with a unit (512MB, 1.5GiB). It chooses the
    # chunk width, never a result.
    memory_budget: Any = "2GiB"

    def __post_init__(self) -> None:
        self.memory_budget = _bytes("runtime.memory_budget", self.memory_budget)
        if self.progress != "auto":
            self.progress = _bool("runtime.progress", self.progress)
        self.ynn_fusion = _bool("runtime.ynn_fusion", self.ynn_fusion)
        if self.host_devices != "auto":
            self.host_devices = _int("runtime.host_devices", self.host_devices, 1)
        cache = self.compilation_cache
        if cache is None or cache is False:
            self.compilation_cache = False
        elif not isinstance(cache, str) or not cache:
            raise ConfigError(
                f"config key runtime.compilation_cache: expected auto, a folder or false, got {cache!r}"
            )

    def cache_folder(self) -> str | None:
        """The compilation cache's folder: with "auto", `$XDG_CACHE_HOME/gophernet_jax/jax`
        (`~/.cache/gophernet_jax/jax` when XDG_CACHE_HOME is unset); None when off."""
        if self.compilation_cache is False:
            return None
        if self.compilation_cache != "auto":
            return self.compilation_cache
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return str(Path(base) / "gophernet_jax" / "jax")

    def usable_cache_folder(self) -> str | None:
        """`cache_folder()`, made if it is missing. A folder the config names that cannot be
        made or written to is a `ConfigError` (JAX warned on every program and went on);
        the default's (a read-only home) is left out with one note on stderr, and every
        program is compiled."""
        folder = self.cache_folder()
        if folder is None:
            return None
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            problem = None if os.access(folder, os.W_OK | os.X_OK) else "not writable"
        except OSError as e:
            problem = e.strerror or str(e)
        if problem is None:
            return folder
        if self.compilation_cache != "auto":
            raise ConfigError(f"config key runtime.compilation_cache: cannot use {folder}: {problem}")
        if folder not in _UNUSABLE_CACHES:
            _UNUSABLE_CACHES.add(folder)
            print(
                f"note: no compilation cache ({folder}: {problem}); programs are compiled every run, "
                "runtime.compilation_cache=FOLDER names another",
                file=sys.stderr,
            )
        return None


#: Default cache folders found unusable in this process, each noted once.
_UNUSABLE_CACHES: set[str] = set()


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
        model = self.model
        if self.train.rule == "article" and (
            not isinstance(model.hidden, int) or model.activation != "sigmoid" or self.train.loss != "sse"
        ):
            raise ConfigError(
                "config key train.rule: article is the reference program's update, for one sigmoid hidden "
                f"layer and train.loss=sse (got model.hidden={model.hidden}, model.activation="
                f"{model.activation}, train.loss={self.train.loss}); use train.rule=autodiff"
            )
        key = "seeds.splits" if self.seeds.splits else "seeds.grid" if self.seeds.grid else "seeds.vary"
        varied = set(self.seeds.varied())
        if varied & {"split", "noise"} and self.data.path is None:
            raise ConfigError(
                f"config key {key}: varying the split or noise needs a raw table "
                "(data=iris, data=wine, or data.path and data.label)"
            )
        if "order" in varied and self.train.batch_size is None:
            raise ConfigError(
                f"config key {key}: varying the data order needs train.batch_size (full-batch training "
                "visits every row at once, in no order)"
            )


def unused_settings(settings: Config) -> list[str]:
    """The settings given a value (other than their default) that this run does not use, a
    line each: a raw table's split keys beside the article's files, which come split; the
    article's files' keys beside `data.path`; a data order without mini-batches; a warm-up
    without its schedule. Notes, not errors: a sweep may cross such a key with the one that
    uses it (`-m data=article,iris data.test_fraction=0.3`)."""
    data, default, notes = settings.data, DataConfig(), []
    if data.path is None:
        for key in ("test_fraction", "noise", "noise_seed", "label"):
            if getattr(data, key) != getattr(default, key):
                notes.append(
                    f"data.{key} applies to a raw table (data.path); the article's files come split, "
                    "so this run does not use it"
                )
        if data.split_seed != default.split_seed and not data.val_fraction:
            notes.append(
                "data.split_seed draws a raw table's split, or with data.val_fraction the validation "
                "part of the article's train.csv; this run has neither, so it does not use it"
            )
    else:
        for key in ("train", "test", "labels"):
            if getattr(data, key) != getattr(default, key):
                notes.append(f"data.{key} names the article's files; with data.path this run does not use it")
    if data.order_seed != default.order_seed and settings.train.batch_size is None:
        notes.append(
            "data.order_seed draws the order of mini-batches (train.batch_size); full-batch training "
            "has none, so this run does not use it"
        )
    optimizer = settings.optimizer
    if optimizer.warmup != OptimizerConfig().warmup and optimizer.schedule != "warmup_cosine":
        notes.append(
            f"optimizer.warmup applies to optimizer.schedule=warmup_cosine; this run's is "
            f"{optimizer.schedule}, so it does not use it"
        )
    return notes


def whole_population(settings: Config) -> Config:
    """The population a slice (`seeds.slices`) belongs to, as one job would train it."""
    grid = None if settings.seeds.splits else settings.seeds.grid  # seeds.splits makes the grid again
    seeds = dataclasses.replace(settings.seeds, start=0, slices=1, grid=grid)
    return dataclasses.replace(settings, seeds=seeds)


def job_dir_name(override_dirname: str) -> str:
    """A job's folder name from its overrides: the same overrides, the same folder.

    Resuming relies on it: a job is found again by what it changes, not by its position.
    """
    name = re.sub(r"[^A-Za-z0-9._,=+-]", "_", override_dirname) or "defaults"
    return name if len(name) <= 150 else f"{name[:130]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def slice_starts(seeds: DictConfig) -> str:
    """The first seed of every slice of a population (`seeds.slices` of `seeds.count`), as
    a sweep over `seeds.start` ("0,500,1000,1500"): `conf/sweep/slices.yaml` sweeps it."""
    values = OmegaConf.to_container(seeds, resolve=True)
    checked = SeedsConfig(**{k: v for k, v in values.items() if k != "start"})
    return ",".join(str(j * checked.trained()) for j in range(checked.slices))


#: The learning rates of the presets, by optimizer: `+search=lr` and `+search=hidden_lr`
#: search the interval on a log scale (`${lr_search:...}`), `+sweep=lr` trains the grid
#: (`${lr_grid:...}`). SGD's are the article's, on its summed loss; the others' were
#: measured on model=mlp, iris and wine, 50 seeds x 100 epochs (README, Searches): Adam,
#: AdamW, NAdam, RMSprop and Lion train well from 0.001 to 0.1 and badly from 1 on;
#: Adagrad from 0.1 to 1. An unknown name gets SGD's (its jobs then fail on the name).
LEARNING_RATES = {
    "sgd": ((0.003, 30), "0.03,0.1,0.3,1,3"),
    "adagrad": ((0.003, 3), "0.01,0.03,0.1,0.3,1"),
} | dict.fromkeys(("adam", "adamw", "nadam", "rmsprop", "lion"), ((0.0003, 0.3), "0.001,0.003,0.01,0.03,0.1"))


def lr_search(optimizer: str) -> str:
    """The learning rates a search tries with `optimizer`, as a sweeper's search space."""
    (low, high), _ = LEARNING_RATES.get(optimizer, LEARNING_RATES["sgd"])
    return f"tag(log, interval({low:g}, {high:g}))"


def lr_grid(optimizer: str) -> str:
    """The learning rates `+sweep=lr` trains with `optimizer`, as a sweep's values."""
    return LEARNING_RATES.get(optimizer, LEARNING_RATES["sgd"])[1]


def register() -> None:
    """Makes the schema the base of `conf/config.yaml` (its defaults list names it), and
    `${job_dir:...}` available to `hydra.sweep.subdir`, `${slice_starts:...}`,
    `${lr_search:...}` and `${lr_grid:...}` to a sweep."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    OmegaConf.register_new_resolver("job_dir", job_dir_name, replace=True)
    OmegaConf.register_new_resolver("slice_starts", slice_starts, replace=True)
    OmegaConf.register_new_resolver("lr_search", lr_search, replace=True)
    OmegaConf.register_new_resolver("lr_grid", lr_grid, replace=True)


def validate(cfg: DictConfig) -> Config:
    """The validated, typed configuration, or a one-line `ConfigError` naming the key."""
    check_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(e).splitlines()[0]) from None


@functools.cache
def _schema() -> dict[str, type]:
    """Every key of the schema, dotted (`train.epochs`), with its type: a section's
    (`train`) is its dataclass."""

    def keys(schema: type, prefix: str) -> dict[str, type]:
        found = {}
        for name, kind in get_type_hints(schema).items():
            found[prefix + name] = kind
            if dataclasses.is_dataclass(kind):
                found |= keys(kind, f"{prefix}{name}.")
        return found

    return keys(Config, "")


def unknown_key(key: str) -> ConfigError:
    """The one-line error for `key`, which the schema does not have, naming the key it may
    mean: one of that name in another section (`train.learning_rate`), else in its own
    section the one it abbreviates (`optimizer.lr`) or the closest spelling (`train.epoch`)."""
    section, _, name = key.rpartition(".")
    keys = list(_schema())
    meant = [k for k in keys if k.rpartition(".")[2] == name and k != key]
    names = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == section}
    meant += [k for n, k in names.items() if "_" in n and "".join(w[0] for w in n.split("_")) == name]
    meant += [names[n] for n in difflib.get_close_matches(name, names, 1, 0.75)]
    return ConfigError(f"config key {key}: no such key" + (f" (did you mean {meant[0]}?)" if meant else ""))


def section_given_a_value(key: str) -> ConfigError | None:
    """The one-line error for a value given to `key` where the schema has a section of keys
    (`optimizer=sgd`, meant as `optimizer.name=sgd`); None when `key` is not a section."""
    section = _schema().get(key)
    if not dataclasses.is_dataclass(section):
        return None
    keys = ", ".join(f"{key}.{name}" for name in get_type_hints(section))
    return ConfigError(f"config key {key}: a section, not a value; set its keys ({keys})")


def check_keys(cfg: DictConfig, prefix: str = "") -> None:
    """A `ConfigError` for the first key of `cfg` (the section at `prefix`) that the schema
    does not have.

    Hydra's `+key=value` adds a key that the schema lacks (its own message for a mistyped
    key, `train.epoch=5`, suggests `+train.epoch=5`), and `OmegaConf.to_object` drops it:
    the run would go on without the setting it was given. A `hydra` section (the config a
    callback sees) is Hydra's own and not checked.
    """
    schema = _schema()
    for key in cfg.keys():
        dotted = f"{prefix}{key}"
        if dotted not in schema:
            if dotted != "hydra":
                raise unknown_key(dotted)
        elif dataclasses.is_dataclass(schema[dotted]) and isinstance(cfg[key], DictConfig):
            check_keys(cfg[key], f"{dotted}.")
