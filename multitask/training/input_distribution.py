"""A trainer's train data: per-task or shared sources, distributed where a run resumes.

A source is a `tf.data.Dataset` of global batches, a function
`fn(input_context=...)` returning a per-replica-batched dataset, or an already
distributed dataset (which cannot be repositioned on resume). The sources are
`{task: source}` (one batch per task per step) or one source yielding
`(features, {task: labels})` that feeds every task (the multi-label form).

The trainers read the sources without end. The launcher refuses a source
whose cardinality is known and too small before the run (`multitask.preflight`);
a dataset that may end (its cardinality is not infinite) gets one more element
that fails naming its task (`mark_end`), so that where it ends during training
the trainer raises a `TrainDataEndedError` naming the task (`TrainInputs.ended_error`)
instead of tf.data's "End of sequence" from inside the traced loop.
"""
import re
from typing import Callable, Mapping, Optional, Sequence

from absl import logging
import tensorflow as tf

from multitask import errors
from multitask import model_inputs
from multitask.core import base_task


class TrainDataEndedError(ValueError):
    """A task's train data ended during training (one line naming the task)."""


_ENDED = "multitask_train_data_ended:"
_ENDED_PATTERN = re.compile(re.escape(_ENDED) + r"(\d+|shared)")
_REPEAT = "but the trainers read one batch a step until trainer.train_steps; repeat() the dataset in build_inputs."


def mark_end(dataset: tf.data.Dataset, what: str) -> tf.data.Dataset:
    """`dataset`, failing with a marker naming `what` (a task's number) where it ends.

    A dataset that repeats without end, or whose elements are not all dense
    tensors of known rank, is returned as it is.
    """
    dense = all(type(spec) is tf.TensorSpec and spec.shape.rank is not None  # pylint: disable=unidiomatic-typecheck
                for spec in tf.nest.flatten(dataset.element_spec))
    if not dense or tf.get_static_value(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
        return dataset

    @tf.autograph.experimental.do_not_convert
    def fail(_):
        with tf.control_dependencies([tf.debugging.Assert(False, [_ENDED + what])]):
            return tf.nest.map_structure(lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), dataset.element_spec)

    return dataset.concatenate(tf.data.Dataset.range(1).map(fail))


class UntrackedDict(dict):
    """A dict that `tf.Module` attribute tracking stores as is.

    orbit keeps the train datasets (and their iterators) as attributes and
    passes the iterators into the traced loop. A plain dict attribute becomes
    a tracking proxy, which `tf.function` cannot take as an argument under
    Python 3.11 (TF 2.20: "this __dict__ descriptor does not support
    '_DictWrapper' objects"); a dict subclass is not wrapped.
    """


def distribute(strategy, source, batches_to_skip: int, step: int, what: str):
    """Distributes one train source, skipping the batches already trained on.

    `what` (a task's number, or "shared") marks where a dataset ends (`mark_end`).
    """
    if isinstance(source, tf.data.Dataset):
        # A plain dataset yields global batches: one per step.
        return strategy.experimental_distribute_dataset(mark_end(source.skip(batches_to_skip), what))
    if callable(source):

        def dataset_fn(input_context):
            # Each input pipeline feeds this many replicas per step.
            per_step = input_context.num_replicas_in_sync // input_context.num_input_pipelines
            return mark_end(source(input_context=input_context).skip(batches_to_skip * per_step), what)

        return strategy.distribute_datasets_from_function(dataset_fn)
    if batches_to_skip:
        logging.warning(
            "Resuming at step %d with an already distributed train dataset: it restarts "
            "from its beginning; pass a tf.data.Dataset or a dataset function to resume "
            "at the same position.", step,
        )
    return source


class TrainInputs:
    """The train sources of a trainer's tasks and how a step reads them."""

    def __init__(self, sources, task_names: Sequence[str], label_keys: Optional[Mapping[str, str]] = None):
        """Keeps the sources.

        Args:
          sources: `{task: source}`, or one source shared by every task.
          task_names: The tasks, in order.
          label_keys: `{task: key}` of each task's labels in a shared source's
            dict of labels (`Task.label_key`); by default the task's name.

        Raises:
          KeyError: A task has no source in a `{task: source}` mapping.
        """
        self.shared = not isinstance(sources, Mapping)
        if not self.shared:
            missing = sorted(set(task_names) - set(sources))
            if missing:
                raise KeyError(f"train_datasets has no dataset for tasks {missing}.")
        self._sources = sources
        self._names = list(task_names)
        self._label_keys = {name: (label_keys or {}).get(name, name) for name in self._names}

    def features_spec(self, name: str):
        """The spec of task `name`'s train features (builds its sub-model when Keras has not)."""
        return model_inputs.features_spec(self._sources if self.shared else self._sources[name])

    def distribute(self, strategy, batches_consumed: Callable[[Optional[str]], int], step: int):
        """The distributed sources, each skipping `batches_consumed(task or None for a shared one)` batches."""
        if self.shared:
            return distribute(strategy, self._sources, batches_consumed(None), step, "shared")
        return UntrackedDict(
            (name, distribute(strategy, self._sources[name], batches_consumed(name), step, str(index)))
            for index, name in enumerate(self._names)
        )

    def ended_error(self, error: tf.errors.OpError) -> Optional[TrainDataEndedError]:
        """The `TrainDataEndedError` for an error of the training loop, or None if no data ended."""
        found = _ENDED_PATTERN.search(str(error))
        if found:
            index = found.group(1)
            what = "task.shared_train_data" if index == "shared" else f"task {self._names[int(index)]!r}"
            return TrainDataEndedError(f"{what}: the train data ended during training, {_REPEAT}")
        if isinstance(error, tf.errors.OutOfRangeError):  # A source that could not be marked.
            return TrainDataEndedError(f"The train data of a task ended during training "
                                       f"({errors.one_line(error)}), {_REPEAT}")
        return None

    @tf.autograph.experimental.do_not_convert
    def next(self, iterators, task_names: Sequence[str]):
        """Reads the next batch for `task_names` (outside the replica function).

        Returns the shared batch with one shared source, else `{task: batch}`.
        """
        if self.shared:
            return next(iterators)
        return {name: next(iterators[name]) for name in task_names}

    @tf.autograph.experimental.do_not_convert
    def task_inputs(self, inputs, task_names: Sequence[str]):
        """Turns a replica's `next` batch into `{task: (features, labels)}` for `task_names`."""
        if not self.shared:
            return {name: inputs[name] for name in task_names}
        features, labels = base_task.split_inputs(inputs)
        return {name: (features, labels[self._label_keys[name]]) for name in task_names}

    @tf.autograph.experimental.do_not_convert
    def shared_features(self, inputs):
        """The features every task reads (None without a shared source)."""
        return base_task.split_inputs(inputs)[0] if self.shared else None
