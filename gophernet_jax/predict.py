"""`python -m gophernet_jax.predict RUN_DIR INPUT.csv`: classify rows with a trained run.

By default the whole population predicts (the class of the mean output, with the
majority vote beside it); `--seed N` uses one seed, `--best VALIDATION.csv` the seed most
accurate on a labelled file. Labelled rows are scored with the run's tie rule
(`report.ties`), or `--ties`. Writes `predictions.csv` and prints a short table.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import jax
import numpy as np
import pandas as pd

from gophernet_jax.dataset import DataError, check_range, load_features
from gophernet_jax.files import write_csv
from gophernet_jax.inference import (
    Prediction,
    SeedError,
    best_seed_and_rows,
    finite_seeds,
    predict_ensemble,
    predict_seed,
    seed_position,
    vote_correct,
)
from gophernet_jax.model import TIES, correct
from gophernet_jax.store import StoreError, TrainedRun, class_column, inputs_for, load_run, run_ties

SHOWN_ROWS = 10
#: How a tied row's class is written in predictions.csv.
TIE = "tie"
#: What each tie rule does to a tied row, for the printed lines.
TIE_RULES = {
    "strict": "a row whose largest value is shared counts as wrong",
    "article": "a row whose largest value the true class shares counts as correct",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other error here
        self.exit(2, f"error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m gophernet_jax.predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a training run's output folder")
    parser.add_argument("input", metavar="INPUT.csv", type=Path, help="rows to classify (labels optional)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--seed", type=int, metavar="N", help="predict with seed N alone")
    choice.add_argument(
        "--best", type=Path, metavar="VALIDATION.csv", help="predict with the most accurate seed on this file"
    )
    parser.add_argument(
        "--ties",
        choices=TIES,
        help="how a tied row is scored: strict (wrong) or article (correct if the true class is "
        "among the tied); default: the run's report.ties",
    )
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="default: predictions.csv")
    return parser


def _class_names(classes: np.ndarray, names: np.ndarray) -> np.ndarray:
    return np.where(classes < 0, TIE, names[np.maximum(classes, 0)])


def predictions_frame(
    prediction: Prediction, class_names: Sequence[str], y: np.ndarray | None, ties: str = "strict"
) -> pd.DataFrame:
    """One row per input row: the class of the mean output and of the vote (`TIE` on a tied
    row, with `tied` and `vote_tied` saying so), agreement, mean output and share of votes
    per class, and, with labels, the true class and whether `predicted` counts as correct
    under `ties` (`model.correct`: under "strict" a tied row never does)."""
    names = np.asarray(class_names, dtype=object)
    mean_output, vote_share = np.asarray(prediction.mean_output), np.asarray(prediction.vote_share)
    frame = pd.DataFrame(
        {
            "row": np.arange(mean_output.shape[0]),
            "predicted": _class_names(np.asarray(prediction.predicted), names),
            "tied": np.asarray(prediction.tied),
            "vote": _class_names(np.asarray(prediction.vote), names),
            "vote_tied": np.asarray(prediction.vote_tied),
            "agreement": np.asarray(prediction.agreement),
            **{f"mean_{name}": mean_output[:, c] for c, name in enumerate(class_names)},
            **{f"votes_{name}": vote_share[:, c] for c, name in enumerate(class_names)},
        }
    )
    if y is not None:
        frame["label"] = names[np.argmax(y, axis=1)]
        frame["correct"] = np.asarray(correct(mean_output, y.astype(mean_output.dtype), ties))
    return frame


def _table(frame: pd.DataFrame, class_names: Sequence[str], ensemble: bool) -> str:
    columns = ["row", "predicted", *(["agreement"] if ensemble else []), *(f"mean_{n}" for n in class_names)]
    columns += ["label"] if "label" in frame else []
    shown = frame[columns].head(SHOWN_ROWS).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    more = len(frame) - SHOWN_ROWS
    return shown + (f"\n... {more} more rows in the file" if more > 0 else "")


def _figures(
    frame: pd.DataFrame, prediction: Prediction, y: np.ndarray | None, *, ensemble: bool, ties: str
) -> str:
    """Tied rows; accuracy on labelled rows under `ties`; for the ensemble, the vote's
    accuracy and the unanimous rows."""
    rows, lines = len(frame), []
    tied, vote_tied = int(frame["tied"].sum()), int(frame["vote_tied"].sum())
    if tied or vote_tied:
        vote = f", {vote_tied} (vote)" if ensemble else ""
        lines.append(f"tied rows: {tied} of {rows}{vote}, written as {TIE!r}")
    if y is not None:
        line = f"accuracy {frame['correct'].sum() / rows:.4f}"
        if ensemble:
            share = np.asarray(prediction.vote_share)
            voted = np.sum(vote_correct(share, y.astype(share.dtype), ties))
            line += f" (mean output), {voted / rows:.4f} (vote)"
        lines.append(line + f" on {rows} labelled rows; ties {ties}: {TIE_RULES[ties]}")
    if ensemble:
        unanimous = int(np.sum(frame["agreement"] == 1))
        lines.append(
            f"seeds unanimous on {unanimous} of {rows} rows; lowest agreement {frame['agreement'].min():.4f}"
        )
    return "\n".join(lines)


def _choose(run: TrainedRun, args: argparse.Namespace, ties: str) -> tuple[int | None, str]:
    """The seed to predict with (None: the ensemble) and a heading that says which."""
    count = len(run.seeds)
    if args.seed is not None:
        seed_position(run, args.seed)
        return args.seed, f"seed {args.seed} of {count}"
    if args.best is not None:
        label = class_column(run)
        x, y = load_features(args.best, run.feature_names, run.class_names, label)
        if y is None:
            where = f"the class columns ({', '.join(run.class_names)})"
            where = f"a column {label!r} or {where}" if label is not None else where
            raise DataError(f"{args.best}:1: no labels ({where}): --best needs them")
        seed, rows = best_seed_and_rows(run, x, y, ties)
        accuracy = f"{rows / len(x):.4f}, ties {ties}"
        return seed, f"seed {seed} of {count}, the most accurate on {args.best} ({accuracy})"
    members = int(np.sum(np.asarray(finite_seeds(run.params))))
    dropped = f" ({count - members} diverged seeds left out)" if members < count else ""
    return None, f"ensemble of {members} seeds{dropped}: class of the mean output, share of seeds agreeing"


def _far_from_training(run: TrainedRun, x: np.ndarray, path: Path) -> str | None:
    """A warning when most rows given to a raw-table run lie far outside the rows it was
    scaled on: a feature more than half their range beyond [0, 1] after scaling. Rows that
    are scaled already (the article's test.csv beside iris.csv, with the same column names)
    are scaled again and classified as noise; new rows a little beyond the training range
    are not flagged, and nothing stops: the predictions are still written."""
    if run.scaling is None:
        return None
    far = int(np.sum(np.any(np.abs(np.asarray(x, np.float64) - 0.5) > 1.0, axis=1)))
    if 2 * far <= len(x):
        return None
    return (
        f"warning: {far} of {len(x)} rows of {path} have a feature more than half a range "
        "outside the rows the run was scaled on; it scales raw values: are these scaled already?"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, with one line on stderr)."""
    args = _parser().parse_args(argv)
    try:
        run = load_run(args.run_dir)
        if np.dtype(run.params.w_hidden.dtype) == np.float64:
            jax.config.update("jax_enable_x64", True)
        x, y = load_features(args.input, run.feature_names, run.class_names, class_column(run))
        check_range(args.input, x, run.feature_names, run.params.w_hidden.dtype)
        if note := _far_from_training(run, inputs_for(run, x), args.input):
            print(note, file=sys.stderr)
        ties = args.ties or run_ties(run)
        seed, heading = _choose(run, args, ties)
        prediction = predict_ensemble(run, x) if seed is None else predict_seed(run, x, seed)
        frame = predictions_frame(prediction, run.class_names, y, ties)
    except (StoreError, DataError, SeedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        write_csv(frame, args.out)
    except OSError as e:
        blocked = next((folder for folder in args.out.parents if folder.is_file()), None)
        why = f"{blocked} is a file, not a folder" if blocked is not None else e.strerror or e
        print(f"error: cannot write {args.out}: {why}", file=sys.stderr)
        return 2
    print(f"{heading}; {len(frame)} rows of {args.input}")
    print(_table(frame, run.class_names, ensemble=seed is None))
    if figures := _figures(frame, prediction, y, ensemble=seed is None, ties=ties):
        print(figures)
    print(f"predictions in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
