"""gophernet_jax: the article's 4-3-3 sigmoid network, trained across many seeds at once.

The public API works without Hydra::

    import jax
    from gophernet_jax import Sizes, accuracy, init_params, load_dataset, train

    data = load_dataset("train.csv")
    params = init_params(jax.random.key(0), Sizes(4, 3, 3))
    params = train(params, data.x, data.y, epochs=5000, learning_rate=0.3)
"""

from gophernet_jax.dataset import ARTICLE_LABELS, DataError, Dataset, load_dataset, load_split
from gophernet_jax.model import Params, Sizes, accuracy, forward, init_params, loss
from gophernet_jax.training import Population, seed_keys, train, train_population

__all__ = [
    "ARTICLE_LABELS",
    "DataError",
    "Dataset",
    "Params",
    "Population",
    "Sizes",
    "accuracy",
    "forward",
    "init_params",
    "load_dataset",
    "load_split",
    "loss",
    "seed_keys",
    "train",
    "train_population",
]
