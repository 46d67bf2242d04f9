"""Registry of multi-task model builders, keyed by their model config class.

Mirrors `official.core.task_factory`: an experiment registers how to build its
`MultiTaskBaseModel` from `MultiTaskConfig.model`, and the launcher builds it
without knowing the class.

    @model_factory.register_model_cls(ShapesModelConfig)
    class ShapesModel(MultiTaskBaseModel):
        def __init__(self, config, init_checkpoint=""): ...
"""
from official.core import registry

from multitask import base_model
from multitask import configs

_REGISTERED_MODEL_CLS = {}


def register_model_cls(model_config_cls):
    """Registers a builder `(model_config, init_checkpoint=...)` for a config class."""
    return registry.register(_REGISTERED_MODEL_CLS, model_config_cls)


def build_model(config: configs.MultiTaskConfig) -> base_model.MultiTaskBaseModel:
    """Builds the multi-task model `config.model` describes.

    Args:
      config: The experiment's `MultiTaskConfig`; its `init_checkpoint` goes to
        the model, which restores it in `initialize()`, and its `frozen_parts`
        are frozen.

    Raises:
      ValueError: `config.model` is not set or its class has no registered
        builder, or `frozen_parts` names a part the model does not have.
    """
    if config.model is None:
        raise ValueError("task.model is not set; the experiment must configure its multi-task model.")
    try:
        builder = registry.lookup(_REGISTERED_MODEL_CLS, type(config.model))
    except LookupError as error:
        known = ", ".join(sorted(cls.__name__ for cls in _REGISTERED_MODEL_CLS)) or "none"
        raise ValueError(
            f"task.model is a {type(config.model).__name__}, which has no registered model "
            f"builder; registered: {known}."
        ) from error
    model = builder(config.model, init_checkpoint=config.init_checkpoint)
    for part in config.frozen_parts:
        try:
            model.freeze(part)
        except KeyError as error:
            raise ValueError(f"task.frozen_parts: {error.args[0]}") from error
    return model
