"""gophernet_jax: the article's 4-3-3 sigmoid network, trained across many seeds at once.

The public API works without Hydra::

    import jax
    from gophernet_jax import Sizes, accuracy, init_params, load_dataset, train

    data = load_dataset("train.csv")
    params = init_params(jax.random.key(0), Sizes(4, 3, 3))
    params = train(params, data.x, data.y, epochs=5000, learning_rate=0.3)

A network of the family (`model=mlp` on the command line) names its activation and loss
in a `Net`::

    from gophernet_jax import Net

    net = Net("tanh", "cross_entropy")  # softmax outputs, mean cross-entropy
    params = init_params(jax.random.key(0), Sizes(4, (32, 32), 3), init="glorot_uniform")
    params = train(params, data.x, data.y, epochs=200, learning_rate=0.01, optimizer="adam", net=net)
    accuracy(params, data.x, data.y, net=net)

and uses what a run of the CLI trained::

    from gophernet_jax import load_run, predict_ensemble, predict_seed

    run = load_run("outputs/2024-01-01/12-00-00")  # the run's folder, holding params.npz
    ensemble = predict_ensemble(run, data.x)  # .predicted, .vote, .agreement, .mean_output
    one = predict_seed(run, data.x, seed=3)

Importing the package turns off XLA's experimental CPU library fusion (YNNPACK) when JAX
has not started yet and XLA_FLAGS does not mention it: measured faster here, and the API
then computes the same numbers as the CLI (see `gophernet_jax.runtime`).
"""

from gophernet_jax.dataset import ARTICLE_LABELS, DataError, Dataset, load_dataset, load_features, load_split
from gophernet_jax.inference import Prediction, best_seed, ensemble_report, predict_ensemble, predict_seed
from gophernet_jax.model import TIES, Net, Params, Sizes, accuracy, forward, init_params, loss
from gophernet_jax.runtime import configure_on_import
from gophernet_jax.store import StoreError, TrainedRun, load_run
from gophernet_jax.training import (
    SOURCES,
    Population,
    RawSplits,
    draw_key,
    epoch_order,
    seed_keys,
    source_keys,
    train,
    train_population,
)

configure_on_import()

__all__ = [
    "ARTICLE_LABELS",
    "SOURCES",
    "TIES",
    "RawSplits",
    "draw_key",
    "epoch_order",
    "source_keys",
    "DataError",
    "Dataset",
    "Net",
    "Params",
    "Population",
    "Prediction",
    "Sizes",
    "StoreError",
    "TrainedRun",
    "accuracy",
    "best_seed",
    "ensemble_report",
    "forward",
    "init_params",
    "load_dataset",
    "load_features",
    "load_run",
    "load_split",
    "loss",
    "predict_ensemble",
    "predict_seed",
    "seed_keys",
    "train",
    "train_population",
]
