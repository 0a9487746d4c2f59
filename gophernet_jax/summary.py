"""summary.json, typed: what a finished job found, as the job writes it and the sweep reads it.

`Summary.to_json()` is the document the job writes (same keys, same order as ever);
`Summary.from_json(path)` reads one back, or raises a `SummaryError` of one line naming the
file. The spreads (`test_accuracy` and the like) are `statistics.summarize`'s dicts: their
keys are that function's, and the few the sweep report reads are named here once.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

from gophernet_jax.cause import Cause

#: A spread of one per-seed value across the seeds, as `statistics.summarize` returns it.
Spread = dict[str, Any]
#: The spread's statistics the sweep report shows for each job, in its columns' order.
STAT_COLUMNS = ("mean", "std", "min", "q05", "median", "q95", "max")


class SummaryError(ValueError):
    """A summary.json that cannot be read; the message names the file."""


class Objective(NamedTuple):
    """What a search optimises (`report.objective`), on validation or test accuracy, and
    the error returned to the sweeper (1 − value)."""

    name: str
    on: str
    value: float | None
    error: float | None


class Pairing(NamedTuple):
    """Fingerprints of what makes seed i of two jobs comparable: the initial weights, the
    rows every seed is tested on, the seed count."""

    init: str
    test_rows: str
    seeds: int


class TiedRows(NamedTuple):
    seeds_with_ties: int
    total: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Summary:
    """A finished job's summary.json. Fields are in the file's order; the optional ones
    (a validation part, the likely cause of a failed population, a grid's variance, the test
    rows' section of an older job, a sweep's job number) are left out when None."""

    test_accuracy: Spread  # with "diverged" and "conditional_on" (the sources held fixed)
    train_accuracy: Spread
    val_accuracy: Spread | None = None
    final_loss: Spread
    diverged: int
    collapsed: int
    cause: Cause | None = None  # when at least half the seeds collapsed or diverged (`cause`)
    tied_rows: TiedRows
    ties: str
    objective: Objective
    train_rows: int
    val_rows: int
    test_rows: int
    seeds: int
    ensemble: dict[str, Any] | None  # None (written as null) when seeds had different test rows
    variance: dict[str, Any] | None = None
    # What the test rows explain (`testrows`): Jordan's split of the variance, churn; or its reason
    test_set: dict[str, Any] | None = None
    pairing: Pairing
    config: dict[str, Any]
    config_hash: str
    job_num: int | None = None
    phases: dict[str, float]
    compilations: int
    cache_hits: int
    compile_seconds: float
    training_seconds: float
    seed_epochs_per_second: float | None
    # The chunks trained and why that width (`training.chunk_choice`); None in an older job's file
    chunk: dict[str, Any] | None = None
    seconds: float

    _OPTIONAL = ("val_accuracy", "cause", "variance", "test_set", "job_num", "chunk")
    _TUPLES = {"tied_rows": TiedRows, "cause": Cause, "objective": Objective, "pairing": Pairing}

    def to_json(self) -> dict[str, Any]:
        """The document summary.json holds."""
        document = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self._OPTIONAL:
                continue
            document[f.name] = value._asdict() if isinstance(value, tuple) else value
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "Summary":
        """A summary from its JSON document; KeyError or TypeError for a document that is not one."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in document.items() if k in names}
        for key, kind in cls._TUPLES.items():
            if key in cls._OPTIONAL and document.get(key) is None:
                continue  # left out: the field's default, None
            values[key] = kind(**document[key])
        return cls(**values)

    @classmethod
    def from_json(cls, path: Path) -> "Summary":
        """Reads a summary.json, or raises `SummaryError` naming the file (unreadable,
        cut short, or not a summary)."""
        try:
            document = json.loads(Path(path).read_text())
            if not isinstance(document, dict):
                raise TypeError(f"a JSON {type(document).__name__}, not an object")
            return cls.from_dict(document)
        except OSError as e:
            raise SummaryError(f"{path} is unreadable ({e.strerror or e})") from None
        except (ValueError, KeyError, TypeError) as e:
            reason = f"no {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise SummaryError(f"{path} is unreadable ({reason})") from None
