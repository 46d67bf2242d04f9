"""The launcher: `python -m multitask.train [--experiment=NAME] [--mode=MODE] ...`.

Flags are Model Garden's (`official.common.flags`): --experiment, --mode,
--model_dir, --config_file (repeatable), --params_override, --gin_file,
--gin_params; plus --import_module (repeatable), a module to import before
the experiment is looked up (see `multitask.plugins`: the shipped
experiments and installed packages' `multitask.experiments` entry points are
loaded too). Without flags it trains the default experiment ("shapes") with
mode train_and_eval into a new directory under ./runs and prints where.

--model_dir and --config_file may be on any filesystem TensorFlow has
(`gs://`, ...): everything is read and written through `tf.io.gfile`.

The config is resolved and checked completely before anything is written: an
unknown experiment, a bad override (an unknown key or task name, a value of
the wrong type, a one-of type with no such choice: `multitask.overrides`), an
invalid setting, a metric name the evaluation does not report, a checkpoint
the run would read that is not there, intervals orbit refuses
(`multitask.config_checks`) or an unusable model_dir prints one line naming
the problem and the valid choices, and the launcher exits with status 2. So
do a task or model that cannot be built and a task whose first batch does not
fit its model or whose train data are too short (`multitask.preflight`: empty
data, wrong structure, shape or dtype, labels outside the head's range, fewer
batches than train_steps), all found before the config, a checkpoint or a
summary is written. Train data that end during training (their length was
unknown) stop the run with one line naming the task, exit status 1.
"""
import os

# TensorFlow's C++ start-up INFO and WARNING lines drown the run's own output;
# errors still show. Set before TensorFlow is imported; an explicit value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime
import sys
import types
from typing import Any, Dict, Optional

from absl import app
from absl import flags
from absl import logging
import gin
import keras
import tensorflow as tf
import yaml

from official.common import flags as tfm_flags
from official.core import exp_factory
from official.core import task_factory
from official.core import train_utils
from official.modeling import hyperparams
from official.modeling.hyperparams import params_dict

from multitask import config_checks
from multitask import configs
from multitask import errors
from multitask import evaluator as evaluator_lib
from multitask import model_factory
from multitask import multitask as multitask_lib
from multitask import overrides
from multitask import paths
from multitask import plugins
from multitask import preflight
from multitask import results
from multitask import scoring
from multitask import train_lib
from multitask.core import runtime
from multitask.training import input_distribution

DEFAULT_EXPERIMENT = "shapes"
DEFAULT_MODE = "train_and_eval"
FLAGS = flags.FLAGS


def launcher_flags(**values) -> types.SimpleNamespace:
    """The launcher's flags as an object, for calling `run` from Python.

    Args:
      **values: Flag values, e.g. `experiment="shapes", model_dir="/tmp/run"`;
        the others are unset.
    """
    names = ("experiment", "mode", "model_dir", "config_file", "params_override",
             "gin_file", "gin_params", "tpu", "import_module")
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise TypeError(f"Unknown launcher flags {unknown}; flags: {', '.join(names)}.")
    return types.SimpleNamespace(**{name: values.get(name) for name in names})


class UsageError(ValueError):
    """A problem with the command line or the config, reported in one line."""


def load_experiment(name: str, modules=()):
    """Returns the registered config of experiment `name`.

    Args:
      name: The experiment.
      modules: Modules to import first (`--import_module`); the shipped
        experiments and the installed entry points are always loaded.

    Raises:
      UsageError: A module does not import, no module registered `name`, or
        its config factory raises.
    """
    try:
        plugins.load_experiments(modules)
    except plugins.PluginError as error:
        raise UsageError(str(error)) from error
    if name not in plugins.registered_experiments():
        raise UsageError(plugins.unknown_experiment_message(name))
    try:
        return exp_factory.get_exp_config(name)
    except Exception as error:  # pylint: disable=broad-except  (user code: any error)
        raise UsageError(
            f"--experiment: the config factory of {name!r} failed: {type(error).__name__}: {errors.one_line(error)}."
        ) from error


def _parse_override(text: str, source: str) -> Dict[str, Any]:
    """Parses a YAML file, a YAML/JSON string or "a.b=1,c=2" into a dict."""
    if source == "--config_file" or paths.is_file(text):
        try:
            with tf.io.gfile.GFile(text, "r") as stream:
                text = stream.read()
        except tf.errors.NotFoundError as error:
            raise UsageError(f"--config_file: no such file {text!r}.") from error
        except tf.errors.OpError as error:
            raise UsageError(f"--config_file: cannot read {text!r} ({errors.one_line(error)}).") from error
    else:
        try:
            text = params_dict.nested_csv_str_to_json_str(text)
        except ValueError:
            pass
    try:
        override = yaml.load(text, Loader=yaml.FullLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UsageError(f"{source}: malformed YAML{where}: {problem}.") from error
    if override is None:
        return {}
    if not isinstance(override, dict):
        raise UsageError(f"{source}: expected a mapping of config keys, got {type(override).__name__}.")
    return override


def apply_override(params: hyperparams.Config, text: str, source: str):
    """Applies one --config_file or --params_override to `params`, strictly.

    Unknown keys, values of the wrong type, a one-of `type` without such a
    choice and unknown task names under `task.tasks` are refused before
    anything is applied (see `multitask.overrides`).
    """
    override = _parse_override(text, source)
    problem = overrides.find_problem(params, override)
    if problem:
        raise UsageError(f"{source}: {problem}")
    try:
        params.override(override, is_strict=True)
    except (KeyError, ValueError, TypeError) as error:
        message = errors.one_line(error)
        if isinstance(error, KeyError):  # str() of a KeyError is its quoted repr
            message = message.strip("'\"")
        raise UsageError(f"{source}: {message.rstrip('.')}.") from error


def parse_params(flags_obj):
    """Builds the experiment config from the flags and checks it.

    Returns:
      The locked, validated experiment config.

    Raises:
      UsageError: Anything wrong with the flags or the resulting config.
    """
    params = load_experiment(flags_obj.experiment or DEFAULT_EXPERIMENT, flags_obj.import_module or ())
    for path in flags_obj.config_file or []:
        apply_override(params, path, "--config_file")
    if flags_obj.tpu:
        params.override({"runtime": {"tpu": flags_obj.tpu}}, is_strict=True)
    if flags_obj.params_override:
        apply_override(params, flags_obj.params_override, "--params_override")
    try:
        if flags_obj.gin_file or flags_obj.gin_params:
            gin.parse_config_files_and_bindings(
                flags_obj.gin_file, flags_obj.gin_params, finalize_config=False
            )
    except Exception as error:  # gin raises many types, all user errors here.
        source = "--gin_params" if flags_obj.gin_params else "--gin_file"
        raise UsageError(f"{source}: {str(error).splitlines()[0]}") from error
    try:
        params.validate()
        train_lib.check_mode(flags_obj.mode or DEFAULT_MODE)
        runtime.validate_runtime(params.runtime)
        config_checks.check_trainer(params.trainer, flags_obj.mode or DEFAULT_MODE)
        config_checks.check_optimizers(params, flags_obj.mode or DEFAULT_MODE)
    except (KeyError, ValueError) as error:
        raise UsageError(str(error).strip("'\"")) from error
    params.lock()
    return params


def resolve_model_dir(model_dir: Optional[str], experiment: str) -> str:
    """Returns a usable model_dir, a new ./runs/<experiment>-<time> by default.

    Works on any filesystem TensorFlow has (local, `gs://`, ...; see
    `paths.check_writable_directory`); nothing is created.

    Raises:
      UsageError: No filesystem for the path's scheme, the path is a file, or
        it cannot be created or written.
    """
    if not model_dir:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        model_dir = os.path.join("runs", f"{experiment}-{stamp}")
    try:
        paths.check_writable_directory(model_dir, "--model_dir")
    except paths.FilesystemError as error:
        raise UsageError(str(error)) from error
    return model_dir


def final_evaluation(multi_task, model):
    """Evaluates on the test split where every task has one, else on validation data.

    Returns:
      `(split, {task: {metric: value}})`.
    """
    if all(scoring.has_splits(task) for task in multi_task.tasks.values()):
        return "test", scoring.evaluate_split(multi_task, model, "test")
    return "validation", evaluator_lib.MultiTaskEvaluator(multi_task.tasks, model).evaluate(-1)


def build_and_check(params, mode: str, model_dir: str, strategy):
    """Builds the tasks and the model, and runs each task's first batch through them.

    Returns:
      `(train_task, eval_task, model)`: the Task that trains alone (None unless
      `params` is a `MultiEvalExperimentConfig`), the Task or MultiTask that
      the run evaluates (and trains), and the model.

    Raises:
      UsageError: A checkpoint the run reads is missing, a task or model
        cannot be built, a metric name is not among the evaluation's (see
        `multitask.config_checks`), or a task's data do not fit its model
        or end too soon (see `multitask.preflight`).
    """
    train_task = None
    try:
        config_checks.check_checkpoints(params, mode, model_dir)
        if isinstance(params, configs.MultiEvalExperimentConfig):
            train_task = task_factory.get_task(params.task, logging_dir=model_dir)
            eval_task = multitask_lib.MultiTask([
                multitask_lib.build_task(r.task_config, r.resolved_name(), model_dir)
                for r in params.eval_tasks
            ])
            model = train_task.build_model()
        elif isinstance(params, configs.MultiTaskExperimentConfig):
            eval_task = multitask_lib.MultiTask.from_config(params.task, logging_dir=model_dir)
            model = model_factory.build_model(params.task)
            config_checks.check_task_sampler(params, mode, eval_task)
        else:
            eval_task = task_factory.get_task(params.task, logging_dir=model_dir)
            model = eval_task.build_model()
        evaluated = multitask_lib.as_multi_task(eval_task)
        config_checks.check_metric_names(params, evaluated)
        if "train" in mode:
            preflight.check_data(
                multitask_lib.as_multi_task(train_task) if train_task is not None else evaluated, model,
                ("train",), getattr(params.task, "shared_train_data", None), strategy,
                train_steps=params.trainer.train_steps)
        if "eval" in mode:
            preflight.check_data(evaluated, model, ("validation",), strategy=strategy)
    # ImportError: an experiment's optional dependency is missing (its message says what to install).
    except (ValueError, KeyError, ImportError) as error:
        message = errors.one_line(error)
        if isinstance(error, KeyError):  # str() of a KeyError is its quoted repr
            message = message.strip("'\"")
        raise UsageError(message.rstrip(".") + ".") from error
    return train_task, eval_task, model


def run(flags_obj) -> Dict[str, Dict[str, Any]]:
    """Runs the experiment the flags describe, then evaluates the final model.

    The final evaluation is printed as a table and written as
    `{task: {metric: value}}` to `model_dir/metrics.json` by a training mode,
    and to `model_dir/metrics-ckpt-<step>.json` (the checkpoint evaluated,
    the latest one) by `eval` and `continuous_eval`.

    Returns:
      The final evaluation logs.

    Raises:
      UsageError: Bad flags or config, before anything is written.
    """
    experiment = flags_obj.experiment or DEFAULT_EXPERIMENT
    mode = flags_obj.mode or DEFAULT_MODE
    params = parse_params(flags_obj)
    model_dir = resolve_model_dir(flags_obj.model_dir, experiment)
    runtime.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
    if getattr(params.runtime, "seed", None) is not None:
        keras.utils.set_random_seed(params.runtime.seed)
    try:
        strategy = runtime.get_distribution_strategy(params.runtime)
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"{errors.one_line(error)}.") from error
    # In a multi-worker run only the chief writes model_dir's files.
    chief = strategy.extended.should_checkpoint
    with strategy.scope():
        train_task, eval_task, model = build_and_check(params, mode, model_dir, strategy)
        if "train" in mode and chief:
            train_utils.serialize_config(params, model_dir)
        print(f"Running experiment {experiment!r} ({mode}) in {paths.display(model_dir)}")
        if isinstance(params, configs.MultiEvalExperimentConfig):
            model, _ = train_lib.run_experiment_with_multitask_eval(
                distribution_strategy=strategy, train_task=train_task, eval_tasks=eval_task.tasks,
                mode=mode, params=params, model_dir=model_dir,
            )
        else:
            train_lib.run_experiment(
                distribution_strategy=strategy, task=eval_task, model=model, mode=mode,
                params=params, model_dir=model_dir,
            )
        evaluated = tf.train.latest_checkpoint(model_dir)
        if evaluated is None and "train" not in mode:  # continuous_eval timed out before a checkpoint
            print(f"No checkpoint appeared in {paths.display(model_dir)} within "
                  "trainer.continuous_eval_timeout; nothing was evaluated.")
            return {}
        split, logs = final_evaluation(multitask_lib.as_multi_task(eval_task), model)
    print()
    print(results.format_table(logs, title=f"Final {split} metrics"))
    if chief and "train" in mode:
        train_utils.save_gin_config(mode, model_dir)
        print(f"\nWrote checkpoints, summaries and {results.write_metrics_json(logs, model_dir)}")
    elif chief:
        # Beside the training run's metrics.json, never over it.
        name = f"metrics-{os.path.basename(evaluated)}.json"
        print(f"\nWrote summaries and {results.write_metrics_json(logs, model_dir, name)}")
    return logs


def main(argv):
    del argv
    try:
        run(FLAGS)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except input_distribution.TrainDataEndedError as error:  # found during training: not a usage error
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def define_flags():
    """Defines Model Garden's launcher flags and --import_module (once)."""
    if "experiment" not in FLAGS:
        tfm_flags.define_flags()
    if "import_module" not in FLAGS:
        flags.DEFINE_multi_string(
            "import_module", None,
            "A module to import before the experiment is looked up (repeatable), e.g. one that "
            "registers experiments with exp_factory.")


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.WARNING)
    app.run(main)
