"""Loss and gradient balancing methods (LibMTL's) for the joint trainer.

`get_weighting(name, num_tasks, **hyper_parameters)` builds one,
`weighting_class(name)` gives its class and `needs_rep_grad(name)` says
whether it takes only representation gradients;
`register_weighting(name)` adds a method without changing this package.
`WEIGHTINGS` is their `multitask.registry.Registry`, the mechanism the
modeling blocks use too. Each method lives in its own module of this package
and follows `base.Weighting`; importing the package imports them all, which
registers them.
"""
from multitask import registry as _registry
from multitask.weighting.base import LossWeighting
from multitask.weighting.base import Weighting
from multitask.weighting.registry import WEIGHTINGS
from multitask.weighting.registry import get_weighting
from multitask.weighting.registry import hyperparameters
from multitask.weighting.registry import known_weightings
from multitask.weighting.registry import needs_rep_grad
from multitask.weighting.registry import register_weighting
from multitask.weighting.registry import weighting_class

_registry.import_submodules(__name__, __path__)
