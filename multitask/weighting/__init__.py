"""Loss and gradient balancing methods (LibMTL's) for the joint trainer.

`get_weighting(name, num_tasks, **hyper_parameters)` builds one,
`weighting_class(name)` gives its class and `needs_rep_grad(name)` says
whether it takes only representation gradients;
`register_weighting(name)` adds a method without changing this package. Each
method lives in its own module of this package and follows `base.Weighting`;
importing the package imports them all, which registers them.
"""
import importlib
import pkgutil

from multitask.weighting.base import LossWeighting
from multitask.weighting.base import Weighting
from multitask.weighting.registry import get_weighting
from multitask.weighting.registry import hyperparameters
from multitask.weighting.registry import known_weightings
from multitask.weighting.registry import needs_rep_grad
from multitask.weighting.registry import register_weighting
from multitask.weighting.registry import weighting_class

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
