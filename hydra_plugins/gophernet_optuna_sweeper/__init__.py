"""gophernet_jax's Optuna sweeper for Hydra (`hydra/sweeper=gophernet_optuna`).

Hydra imports every module of the `hydra_plugins` namespace when it starts, so nothing
here imports Optuna: `_search` does, when a search runs.
"""
