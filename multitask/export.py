"""Export a subset of a multi-task model's tasks as one Keras `.keras` file.

`export_tasks(model, ["left"], "left.keras")` saves a functional
`keras.Model` that calls the shared encoder once and maps its representation
through the asked tasks' heads, returning `{task: outputs}`. The file holds one
copy of the encoder, whatever the number of tasks; `keras.saving.load_model`
reloads it with no code from this project (custom layers must be registered
with `keras.saving.register_keras_serializable`, as Keras requires).

A config-built `SharedEncoderModel` (any architecture) is saved as a
`ConfiguredTasks` model instead: its config is the model's block config and
the task names, and reloading rebuilds the trunk and the asked tasks' towers
from it (so reloading needs this project and the config's plugins), then
loads the trained weights.

`multitask.serving.export_saved_model` writes the same tasks as a
TensorFlow SavedModel with one signature per task, for serving without Keras.

From the command line, the latest checkpoint of a training run (`--output`,
`--saved_model` or both; `--import_module` as for the launcher):

    python -m multitask.export --experiment=multi_digits --model_dir=/tmp/run \\
        --tasks=left --output=/tmp/left.keras --saved_model=/tmp/left_served

The run's `params.yaml` (written by the launcher) is applied to the experiment's
config before `--config_file` and `--params_override`. The model_dir and the
outputs may be on any filesystem TensorFlow has (`gs://...`).
"""
import os

# TensorFlow's C++ start-up INFO and WARNING lines drown the command's own
# output; errors still show. Set before TensorFlow is imported; an explicit value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402
from typing import List, Optional, Sequence  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from multitask import base_model  # noqa: E402
from multitask import errors  # noqa: E402
from multitask import model_inputs  # noqa: E402
from multitask import paths  # noqa: E402
from multitask.modeling import shared_encoder_model  # noqa: E402


@keras.saving.register_keras_serializable(package="multitask")
class ConfiguredTasks(keras.Model):
    """Some tasks of a config-built `SharedEncoderModel`: one trunk call, then each task's tower."""

    def __init__(self, model_config: dict, task_names: Sequence[str], model=None, **kwargs):
        """Creates the model.

        Args:
          model_config: `SharedEncoderModelConfig.as_dict()` of the model.
          task_names: The tasks to serve, in output order.
          model: The trained `SharedEncoderModel` whose layers to serve; by
            default (reloading) one is rebuilt from `model_config`.
          **kwargs: Passed to `keras.Model`.
        """
        super().__init__(**kwargs)
        self.model_config = model_config
        self.task_names = list(task_names)
        if model is None:
            config = shared_encoder_model.SharedEncoderModelConfig()
            config.override(model_config, is_strict=True)
            model = shared_encoder_model.SharedEncoderModel(config)
        self.trunk = model.encoder
        self.towers = [model.heads[task] for task in self.task_names]
        self.built = True

    def call(self, inputs, training=None):
        representation = self.trunk(inputs, training=training)
        return {task: tower(representation, training=training) for task, tower in zip(self.task_names, self.towers)}

    def get_config(self):
        return {"model_config": self.model_config, "task_names": self.task_names, "name": self.name}


def _check_splittable(model) -> None:
    if not isinstance(model, base_model.EncoderHeadsModel):
        raise ValueError(
            f"export_tasks exports an EncoderHeadsModel (one encoder, one head per task), "
            f"not a {type(model).__name__}."
        )
    if isinstance(model, shared_encoder_model.SharedEncoderModel):
        if model.config is None:
            raise ValueError(
                "This SharedEncoderModel was given encoder or head layers in Python, so its config "
                "cannot rebuild it; build it from block configs to export it."
            )
        return
    for method in ("encode", "task_outputs"):
        if getattr(type(model), method) is not getattr(base_model.EncoderHeadsModel, method):
            raise ValueError(
                f"{type(model).__name__} overrides {method}(), so its tasks are not "
                "`head(encoder(x))`; export_tasks cannot rebuild them from its layers."
            )


def subset_model(model: base_model.EncoderHeadsModel, task_names: Sequence[str], inputs=None,
                 name: str = "tasks") -> keras.Model:
    """Builds the functional model serving `task_names` over one encoder call.

    Args:
      model: The trained `EncoderHeadsModel`.
      task_names: The tasks to serve, in output order.
      inputs: The input structure: `keras.Input` tensors or `tf.TensorSpec`s
        (their first dimension is the batch); by default the encoder's own
        inputs, when it is a functional or Sequential model.
      name: The model's name.

    Returns:
      A `keras.Model` returning `{task: outputs}`, sharing the model's encoder
      and heads (their current weights, no copy): a functional model, or a
      `ConfiguredTasks` for a config-built `SharedEncoderModel`. Each head is wrapped in a
      one-layer model named after its task, so heads with the same layer name
      can be served together.

    Raises:
      KeyError: A task the model does not serve (the message lists them).
      ValueError: No tasks, repeated tasks, a model that is not a plain
        `EncoderHeadsModel`, or no `inputs` and an encoder without them.
    """
    _check_splittable(model)
    task_names = list(task_names)
    if not task_names:
        raise ValueError("task_names is empty; name at least one of: " + ", ".join(model.heads) + ".")
    if len(set(task_names)) != len(task_names):
        raise ValueError(f"task_names {task_names} repeats a task.")
    unknown = [task for task in task_names if task not in model.heads]
    if unknown:
        raise KeyError(f"Unknown tasks {unknown}; the model serves: {', '.join(model.heads)}.")
    if isinstance(model, shared_encoder_model.SharedEncoderModel):
        return ConfiguredTasks(model.config.as_dict(), task_names, model=model, name=name)
    if inputs is None:
        inputs = model_inputs.input_structure(model.encoder)
        if inputs is None:
            raise ValueError(
                f"The encoder ({type(model.encoder).__name__}) has no Keras inputs: pass "
                "inputs=keras.Input(...) or tf.TensorSpec structures for its features."
            )
    base_model.ensure_built(model, list(model.heads), lambda name: inputs)
    inputs = model_inputs.fresh_inputs(inputs)
    representation = model.encoder(inputs)
    outputs = {}
    for task in task_names:
        head_inputs = model_inputs.fresh_inputs(representation)
        wrapper = keras.Model(head_inputs, model.heads[task](head_inputs), name=task)
        outputs[task] = wrapper(representation)
    return keras.Model(inputs, outputs, name=name)


def export_tasks(model: base_model.EncoderHeadsModel, task_names: Sequence[str], path: str,
                 inputs=None) -> keras.Model:
    """Saves the model serving `task_names` to a `.keras` file and checks it reloads.

    Args:
      model: The trained `EncoderHeadsModel`.
      task_names: The tasks to serve.
      path: The output file; it must end in ".keras".
      inputs: As for `subset_model`.

    Returns:
      The saved (in-memory) subset model.

    Raises:
      KeyError: A task the model does not serve.
      ValueError: As for `subset_model`; a path without ".keras"; or a file
        that Keras cannot reload (an unregistered custom layer, or one
        without `get_config`).
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"path {path!r} must end in '.keras' (the Keras saving format).")
    subset = subset_model(model, task_names, inputs)
    try:
        subset.save(path)
        keras.saving.load_model(path)
    except (NotImplementedError, TypeError, ValueError) as error:
        raise ValueError(
            f"Could not save and reload the exported model: {str(error).strip().splitlines()[0]} "
            "Custom layers need a get_config() and @keras.saving.register_keras_serializable()."
        ) from error
    return subset


def _define_flags():
    from multitask import train  # pylint: disable=g-import-not-at-top

    train.define_flags()
    if "tasks" not in flags.FLAGS:
        flags.DEFINE_string("tasks", None, "Comma-separated tasks to export.")
        flags.DEFINE_string("output", None, "The .keras file to write.")
        flags.DEFINE_string("saved_model", None, "The TensorFlow SavedModel directory to write.")


def export_run(experiment: str, model_dir: str, tasks: Sequence[str], output: Optional[str] = None,
               config_file: Sequence[str] = (), params_override: str = "", saved_model: Optional[str] = None,
               import_module: Sequence[str] = ()) -> List[str]:
    """Restores the latest checkpoint of a training run and exports `tasks`.

    Args:
      experiment: The registered experiment the run trained.
      model_dir: The run's directory (checkpoints and, if written by the
        launcher, `params.yaml`), on any filesystem TensorFlow has.
      tasks: The tasks to export.
      output: The `.keras` file to write, if any.
      config_file: More YAML overrides, after the run's `params.yaml`.
      params_override: A last override, as for the launcher.
      saved_model: The SavedModel directory to write (`serving.export_saved_model`), if any.
      import_module: Modules that register the experiment, as the launcher's `--import_module`.

    Returns:
      The paths written.

    Raises:
      train.UsageError: Neither output, a bad config, no checkpoint in
        `model_dir`, a model that cannot be exported, or bad tasks.
    """
    # Imported here: the launcher's config handling is not needed to export a model in Python.
    from multitask import model_factory  # pylint: disable=g-import-not-at-top
    from multitask import multitask as multitask_lib  # pylint: disable=g-import-not-at-top
    from multitask import serving  # pylint: disable=g-import-not-at-top
    from multitask import train  # pylint: disable=g-import-not-at-top

    if not output and not saved_model:
        raise train.UsageError("--output (a .keras file) or --saved_model (a directory) is required.")
    if output and not str(output).endswith(".keras"):
        raise train.UsageError(f"--output: {output!r} must end in '.keras' (the Keras saving format).")
    try:
        paths.check_filesystem(model_dir, "--model_dir")
    except paths.FilesystemError as error:
        raise train.UsageError(str(error)) from error
    saved = os.path.join(model_dir, "params.yaml")
    files = ([saved] if paths.is_file(saved) else []) + list(config_file)
    params = train.parse_params(train.launcher_flags(
        experiment=experiment, config_file=files, params_override=params_override,
        import_module=list(import_module)))
    checkpoint = tf.train.latest_checkpoint(model_dir)
    if checkpoint is None:
        raise train.UsageError(f"--model_dir: no checkpoint in {model_dir!r}.")
    try:
        model = model_factory.build_model(params.task)
        _check_splittable(model)
        inputs = None
        if model_inputs.input_structure(model.encoder) is None:
            # The features' spec, from a task's own validation data.
            multi_task = multitask_lib.MultiTask.from_config(params.task)
            known = [task for task in tasks if task in multi_task.tasks] or list(multi_task.tasks)
            task = multi_task.tasks[known[0]]
            inputs = model_inputs.features_spec(task.build_inputs(task.task_config.validation_data))
        base_model.ensure_built(model, list(model.heads), lambda name: inputs)
    except ValueError as error:
        raise train.UsageError(f"--experiment {experiment!r}: {errors.one_line(error)}.") from error
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial().assert_existing_objects_matched()
    written = []
    try:
        if output:
            export_tasks(model, tasks, output, inputs)
            written.append(output)
        if saved_model:
            written.append(serving.export_saved_model(model, tasks, saved_model, inputs))
    except (KeyError, ValueError) as error:
        raise train.UsageError(f"--tasks/--output/--saved_model: {error.args[0]}") from error
    return written


def main(argv):
    del argv
    from multitask import train  # pylint: disable=g-import-not-at-top

    flags_obj = flags.FLAGS
    try:
        for flag in ("experiment", "model_dir", "tasks"):
            if not getattr(flags_obj, flag):
                raise train.UsageError(f"--{flag} is required.")
        tasks = [task.strip() for task in flags_obj.tasks.split(",") if task.strip()]
        written = export_run(flags_obj.experiment, flags_obj.model_dir, tasks, flags_obj.output,
                             flags_obj.config_file or [], flags_obj.params_override or "",
                             flags_obj.saved_model, flags_obj.import_module or [])
    except train.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {' and '.join(written)} serving {', '.join(tasks)}.")


if __name__ == "__main__":
    _define_flags()
    logging.set_verbosity(logging.WARNING)
    app.run(main)
