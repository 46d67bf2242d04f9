"""HeadTask: a Task built from a head config and a registered dataset.

For the common cases a user writes no Task class: the head (`heads/`)
brings the loss and the metrics, and the data come from the reader registered
for the data config's class with `multitask.input_factory`:

    @input_factory.register_shared_inputs(MyDataConfig)
    def my_inputs(data_config, input_context=None):
        return dataset  # of (features, {task: labels}) or (features, labels) batches

    HeadTaskConfig(
        name="species",
        head=HeadConfig(type="classification", num_classes=3),
        train_data=MyDataConfig(split="train"),
        validation_data=MyDataConfig(split="validation", is_training=False),
    )

A reader that yields a dict of labels serves every task of a shared-input
experiment; each HeadTask takes its own `labels[label_key]` (by default its
name). Missing labels are written as the head says (-1, or NaN for regression)
and are left out of the loss and the metrics (see `partial_labels`).

The task's loss and metrics come from its own head instance, built from
`head`; the multi-task model holds the head that is trained, so the model's
head for this task must be built from the same config (an unbuilt head holds
no weights; only its settings are used here). To train alone, `build_model`
puts the head on the encoder that `encoder` names in `registry.ENCODERS`.
"""
import dataclasses
import inspect
from typing import Optional, Tuple

import keras
import tensorflow as tf

from official.core import config_definitions as cfg
from official.core import task_factory
from official.modeling import hyperparams

from multitask import base_model
from multitask import input_factory
from multitask.core import base_task
from multitask.modeling import heads  # also registers the built-in heads
from multitask.modeling import registry


@dataclasses.dataclass
class HeadConfig(hyperparams.Config):
    """A head of `registry.HEADS`: `type` and the head's arguments, flat.

    Unset (None) arguments take the head's default; an argument the head does
    not take is an error. A plugin head with other arguments subclasses this
    config and adds fields.
    """

    type: str = "classification"
    num_classes: Optional[int] = None
    num_labels: Optional[int] = None
    units: Optional[int] = None
    hidden_sizes: Optional[Tuple[int, ...]] = None
    activation: Optional[str] = None
    dropout: Optional[float] = None
    loss: Optional[str] = None
    delta: Optional[float] = None
    embedding_size: Optional[int] = None
    temperature: Optional[float] = None
    margin: Optional[float] = None
    mining: Optional[str] = None
    normalize: Optional[bool] = None

    def hyperparameters(self) -> dict:
        """The arguments that are set, by name."""
        return {key: value for key, value in self.as_dict().items() if key != "type" and value is not None}

    def validate(self):
        super().validate()
        builder = registry.HEADS.lookup(self.type)
        unknown = sorted(set(self.hyperparameters()) - set(head_arguments(builder)))
        if unknown:
            raise ValueError(
                f"head {self.type!r} does not take {', '.join(unknown)}; it takes: "
                f"{', '.join(head_arguments(builder)) or 'no arguments'}."
            )


def head_arguments(builder) -> Tuple[str, ...]:
    """The keyword arguments a head class (with its base heads) or factory takes, besides Layer's."""
    if inspect.isclass(builder):
        functions = [c.__init__ for c in inspect.getmro(builder) if issubclass(c, heads.Head)]
    else:
        functions = [builder]
    names = []
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            # `output_units` is set by each head class itself.
            if parameter.kind in named and parameter.name not in ("self", "output_units", *names):
                names.append(parameter.name)
    return tuple(names)


def build_head(config, name: Optional[str] = None) -> keras.layers.Layer:
    """Builds the head `config` describes (a `HeadConfig` or a `{type, ...}` mapping).

    Raises:
      ValueError: An unknown type, an argument the head does not take, or a
        required one missing.
    """
    if isinstance(config, HeadConfig):
        config.validate()
        config = {"type": config.type, **config.hyperparameters()}
    try:
        return registry.HEADS.build(config, name=name)
    except TypeError as error:
        raise ValueError(f"head {dict(config).get('type')!r}: {error}.") from error


@dataclasses.dataclass
class HeadTaskConfig(cfg.TaskConfig):
    """A task made of a head and a dataset.

    Attributes:
      head: The head; it decides the loss, the metrics and how missing labels
        are written.
      encoder: `{type, ...}` of an encoder in `registry.ENCODERS`, used by
        `build_model` when the task trains alone; a multi-task model brings
        its own.
      label_key: Which entry of a dict of labels is this task's; "" uses the
        task's name.
      train_data, validation_data: Data configs with a reader registered in
        `multitask.input_factory`.
    """

    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    encoder: Optional[hyperparams.Config] = None
    label_key: str = ""


@task_factory.register_task_cls(HeadTaskConfig)
class HeadTask(base_task.Task):
    """A Task whose loss and metrics are its head's, and whose data a registered reader builds."""

    def __init__(self, params: HeadTaskConfig, logging_dir: Optional[str] = None, name: Optional[str] = None):
        """Initializes the task.

        Raises:
          ValueError: An unknown head type or a head argument it does not take.
        """
        super().__init__(params, logging_dir=logging_dir, name=name)
        self._head = build_head(params.head, name=f"{self.name}_loss_head")

    @property
    def head(self) -> heads.Head:
        """The head instance whose `loss` and metrics this task uses (not the trained one)."""
        return self._head

    @property
    def label_key(self) -> str:
        """`task.label_key`, or the task's name when it is empty."""
        return self.task_config.label_key or self.name

    def build_model(self) -> base_model.EncoderHead:
        """Returns `registry.ENCODERS.build(encoder)` followed by a new head.

        Raises:
          ValueError: `encoder` is not set or names an unknown type.
        """
        if not self.task_config.encoder:
            raise ValueError(
                f"Task {self.name!r}: task.encoder is not set; a HeadTask needs an encoder config "
                f"({{type: ..., ...}}, registered: {', '.join(registry.ENCODERS.names) or 'none'}) "
                "to build a model of its own."
            )
        encoder = registry.ENCODERS.build(self.task_config.encoder)
        return base_model.EncoderHead(encoder, build_head(self.task_config.head, name="head"), name=self.name)

    def build_inputs(self, params, input_context: Optional[tf.distribute.InputContext] = None):
        """Returns `(features, this task's labels)` batches from the registered reader of `params`.

        Raises:
          ValueError: No reader is registered for the data config's class.
          KeyError: The reader yields a dict of labels without `label_key`.
        """
        dataset = input_factory.build_shared_inputs(params, input_context, field=f"task {self.name!r} data")
        labels_spec = dataset.element_spec[1] if isinstance(dataset.element_spec, tuple) else None
        if not isinstance(labels_spec, dict):
            return dataset
        key = self.label_key
        if key not in labels_spec:
            raise KeyError(
                f"Task {self.name!r}: the {type(params).__name__} reader yields labels "
                f"{sorted(labels_spec)}, not {key!r}; set task.label_key to one of them."
            )
        return dataset.map(lambda features, labels: (features, labels[key]))

    def build_losses(self, labels, model_outputs, aux_losses=None) -> tf.Tensor:
        """The head's loss: the mean over the global batch's labelled entries."""
        loss = self._head.loss(labels, model_outputs)
        return loss + super().build_losses(labels, model_outputs, aux_losses) if aux_losses else loss

    def loss_count(self, labels) -> tf.Tensor:
        """The head's `loss_count`: the labelled entries of the global batch over `num_replicas`.

        So the logged losses are the mean over every labelled entry of an
        evaluation or a loop (see `partial_labels`).
        """
        return self._head.loss_count(labels)

    def build_metrics(self, training: bool = True):
        """The head's metrics."""
        del training
        return self._head.build_metrics()

    def process_metrics(self, metrics, labels, model_outputs, **kwargs):
        """Updates the head's metrics; unlabelled entries weigh 0."""
        del kwargs
        self._head.update_metrics(metrics, labels, model_outputs)
