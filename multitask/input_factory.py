"""Registry of shared-input readers, keyed by their data config class.

When several tasks read the same features, one dataset of
`(features, {task_name: labels})` can feed them all: the joint trainer then
reads each batch once, an `EncoderHeadsModel` encodes it once for every task,
and gradient balancing can work on the shared representation (`rep_grad`). An
experiment registers how to build that dataset from a data config, and sets
`MultiTaskConfig.shared_train_data` to one. The same readers feed
`multitask.modeling.head_task.HeadTask`, which takes its own labels:

    @input_factory.register_shared_inputs(MultiDigitsDataConfig)
    def shared_inputs(data_config, input_context=None): ...
"""
from official.core import registry

_REGISTERED_READERS = {}


def register_shared_inputs(data_config_cls):
    """Registers `fn(data_config, input_context=None) -> dataset` for a data config class."""
    return registry.register(_REGISTERED_READERS, data_config_cls)


def build_shared_inputs(data_config, input_context=None, field: str = "task.shared_train_data"):
    """Builds the shared `(features, {task: labels})` dataset `data_config` describes.

    Args:
      data_config: A data config whose class has a registered reader.
      input_context: The distribution input context, passed to the reader.
      field: How error messages name the config.

    Raises:
      ValueError: No reader is registered for the config's class.
    """
    try:
        reader = registry.lookup(_REGISTERED_READERS, type(data_config))
    except LookupError as error:
        known = ", ".join(sorted(cls.__name__ for cls in _REGISTERED_READERS)) or "none"
        raise ValueError(
            f"{field} is a {type(data_config).__name__}, which has no registered "
            f"shared-input reader; registered: {known}."
        ) from error
    return reader(data_config, input_context=input_context)
