"""Registered experiments: importing this package registers all of them.

Each module registers its Task classes with `official.core.task_factory`, its
multi-task model with `multitask.model_factory` and its experiment configs with
`official.core.exp_factory`:

- `experiments.shapes`: `shapes`, `shapes_interleaving`,
  `shapes_circle_single`, `shapes_warm_start`.
- `experiments.multi_digits`: `multi_digits`.
- `experiments.penguins`: `penguins`.
"""
from experiments import shapes  # noqa: F401
from experiments import multi_digits  # noqa: F401
from experiments import penguins  # noqa: F401
