"""Tests of the registered experiments: their data, configs and tiny end-to-end runs."""
import gc
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import task_factory

import multitask.experiments  # noqa: F401  (registers the experiments)
from multitask.experiments import multi_digits
from multitask.experiments import shapes
from multitask import base_trainer
from multitask import configs
from multitask import model_factory
from multitask import multitask as multitask_lib
from multitask import train_lib
from multitask.core import runtime

EXPERIMENTS = ("shapes", "shapes_interleaving", "shapes_circle_single", "shapes_warm_start", "multi_digits",
               "text_tags")
TINY_TRAINER = dict(
    train_steps=4, steps_per_loop=2, summary_interval=2, checkpoint_interval=2, validation_interval=4
)


def _geometric_labels(shape, points):
    """The task definitions, written out independently of `shapes.shape_labels`."""
    x, y = points[:, 0], points[:, 1]
    if shape == "circle":
        return (x**2 + y**2 < 1).astype(np.int32)
    if shape == "inv_circle":
        return (x**2 + y**2 >= 1).astype(np.int32)
    return ((np.abs(x) <= 1) & (np.abs(y) <= 1)).astype(np.int32)


def _task_configs(params):
    """The task configs of a multi-task or a single-task experiment config."""
    if isinstance(params, configs.MultiTaskExperimentConfig):
        return [routine.task_config for routine in params.task.task_routines]
    return [params.task]


def _tiny(params):
    """Shrinks an experiment to a few steps on small batches (and few pairs)."""
    params.trainer.override(TINY_TRAINER, is_strict=True)
    for task_config in _task_configs(params):
        for data in (task_config.train_data, task_config.validation_data):
            data.global_batch_size = 8
            if data.dataset == "multi_digits":
                data.num_pairs = 64 if data.split == "train" else 20
    params.validate()
    return params


def _build(params):
    """Builds `(task, model)` for `params`; call inside a strategy scope."""
    if isinstance(params, configs.MultiTaskExperimentConfig):
        return multitask_lib.MultiTask.from_config(params.task), model_factory.build_model(params.task)
    task = task_factory.get_task(params.task)
    return task, task.build_model()


def _train(params, strategy, model_dir, trainer_fn=None):
    """Runs train_and_eval with a post-eval; returns `(task, model, logs)`."""
    with strategy.scope():
        task, model = _build(params)
        trainer = trainer_fn(task, model) if trainer_fn else None
    model, logs = train_lib.run_experiment(
        distribution_strategy=strategy,
        task=task,
        model=model,
        mode="train_and_eval",
        params=params,
        model_dir=str(model_dir),
        run_post_eval=True,
        trainer=trainer,
    )
    return task, model, logs


def _check_run(task, logs, model_dir, expected_step=TINY_TRAINER["train_steps"]):
    names = list(task.tasks) if isinstance(task, multitask_lib.MultiTask) else [task.name]
    assert sorted(logs) == sorted(names)
    for name in names:
        assert "accuracy" in logs[name], logs[name]
        assert 0.0 <= float(logs[name]["accuracy"]) <= 1.0
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert latest is not None and latest.endswith(f"ckpt-{expected_step}")


# ---------------------------------------------------------------- shapes data


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_shapes_splits_are_sized_disjoint_and_complete(shape):
    arrays = {split: shapes.shapes_arrays(shape, split) for split in shapes.SPLITS}
    assert {split: len(points) for split, (points, _) in arrays.items()} == {
        "train": 800,
        "validation": 100,
        "test": 100,
    }
    rows = [set(map(tuple, points.tolist())) for points, _ in arrays.values()]
    assert sum(len(r) for r in rows) == 1000
    assert len(rows[0] | rows[1] | rows[2]) == 1000


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_shapes_labels_follow_the_geometry_and_are_balanced(shape):
    half_side = shapes.BALANCED_HALF_SIDES[shape]
    for split in shapes.SPLITS:
        points, labels = shapes.shapes_arrays(shape, split)
        assert points.dtype == np.float32 and points.shape[1] == 2
        assert np.all(np.abs(points) <= half_side)
        np.testing.assert_array_equal(labels, _geometric_labels(shape, points))
    _, train_labels = shapes.shapes_arrays(shape, "train")
    assert 0.3 < train_labels.mean() < 0.7


def test_shapes_data_is_deterministic_by_seed_and_per_task():
    first, _ = shapes.shapes_arrays("circle", "train", seed=5)
    again, _ = shapes.shapes_arrays("circle", "train", seed=5)
    other, _ = shapes.shapes_arrays("circle", "train", seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    circle, _ = shapes.shapes_arrays("circle", "train")
    inv_circle, _ = shapes.shapes_arrays("inv_circle", "train")
    assert not np.array_equal(circle, inv_circle)  # each task has its own seed


def test_shapes_inputs_train_repeats_eval_splits_are_finite():
    task = shapes.ShapesTask(shapes.shapes_task_config("square", global_batch_size=32))
    config = task.task_config
    train = task.build_inputs(config.train_data)
    batches = list(train.take(30))  # 800 / 32 = 25 batches per epoch: it repeats
    assert all(points.shape == (32, 2) for points, _ in batches)
    validation = list(task.build_inputs(config.validation_data))
    assert [len(labels) for _, labels in validation] == [32, 32, 32, 4]
    test_config = config.validation_data.replace(split="test")
    test_points = np.concatenate([p.numpy() for p, _ in task.build_inputs(test_config)])
    np.testing.assert_array_equal(test_points, shapes.shapes_arrays("square", "test")[0])
    first = np.concatenate([p.numpy() for p, _ in task.build_inputs(config.train_data).take(3)])
    second = np.concatenate([p.numpy() for p, _ in task.build_inputs(config.train_data).take(3)])
    np.testing.assert_array_equal(first, second)  # shuffling is seeded


def test_shapes_inputs_reject_unknown_split_and_shape():
    task = shapes.ShapesTask(shapes.shapes_task_config("circle"))
    with pytest.raises(ValueError, match=r"split is 'dev'; allowed: train, validation, test"):
        task.build_inputs(task.task_config.validation_data.replace(split="dev"))
    with pytest.raises(ValueError, match=r"shape is 'triangle'; allowed: circle, square, inv_circle"):
        shapes.ShapesTask(shapes.ShapesTaskConfig(shape="triangle"))


def test_shapes_inputs_use_the_per_replica_batch_size(two_cpu_strategy):
    task = shapes.ShapesTask(shapes.shapes_task_config("circle", global_batch_size=16))
    dataset = two_cpu_strategy.distribute_datasets_from_function(
        lambda context: task.build_inputs(task.task_config.train_data, context)
    )
    points, _ = next(iter(dataset))
    local = two_cpu_strategy.experimental_local_results(points)
    assert [p.shape[0] for p in local] == [8, 8]


# ---------------------------------------------------------- multi_digits data


@pytest.mark.parametrize("overlap, width", [(0, 16), (4, 12), (7, 9)])
def test_multi_digits_overlap_sets_the_canvas_width(overlap, width):
    arrays = multi_digits.multi_digits_arrays("validation", num_pairs=10, overlap=overlap)
    assert arrays.features.shape == (10, 8, width, 1)
    assert arrays.features.dtype == np.float32


@pytest.mark.parametrize("overlap", [-1, 8, 2.5])
def test_multi_digits_rejects_bad_overlap(overlap):
    with pytest.raises(ValueError, match="overlap is"):
        multi_digits.multi_digits_arrays("train", num_pairs=4, overlap=overlap)


def test_multi_digits_labels_are_the_placed_digits():
    images, labels = multi_digits.source_digits()
    arrays = multi_digits.multi_digits_arrays("train", num_pairs=200, overlap=0)
    canvas = arrays.features[..., 0]
    np.testing.assert_array_equal(canvas[:, :, :8], images[arrays.left_source])
    np.testing.assert_array_equal(canvas[:, :, 8:], images[arrays.right_source])
    np.testing.assert_array_equal(arrays.left, labels[arrays.left_source])
    np.testing.assert_array_equal(arrays.right, labels[arrays.right_source])
    assert len(np.unique(arrays.left)) == 10 and len(np.unique(arrays.right)) == 10

    overlapped = multi_digits.multi_digits_arrays("train", num_pairs=200, overlap=3)
    canvas = overlapped.features[..., 0]
    left, right = images[overlapped.left_source], images[overlapped.right_source]
    np.testing.assert_array_equal(canvas[:, :, :5], left[:, :, :5])
    np.testing.assert_array_equal(canvas[:, :, 5:8], np.maximum(left[:, :, 5:], right[:, :, :3]))
    np.testing.assert_array_equal(canvas[:, :, 8:], right[:, :, 3:])


def test_multi_digits_source_pools_are_disjoint_across_splits():
    pools = multi_digits.source_pools()
    total = len(multi_digits.source_digits()[1])
    assert sum(len(pool) for pool in pools.values()) == total
    assert len(np.unique(np.concatenate(list(pools.values())))) == total
    used = {}
    for split in multi_digits.SPLITS:
        arrays = multi_digits.multi_digits_arrays(split, num_pairs=500)
        used[split] = set(arrays.left_source) | set(arrays.right_source)
        assert used[split] <= set(pools[split].tolist())
    assert not used["test"] & used["train"]
    assert not used["validation"] & used["train"]
    assert not used["test"] & used["validation"]


def test_multi_digits_is_deterministic_by_seed():
    first = multi_digits.multi_digits_arrays("test", num_pairs=50, seed=3)
    again = multi_digits.multi_digits_arrays("test", num_pairs=50, seed=3)
    other = multi_digits.multi_digits_arrays("test", num_pairs=50, seed=4)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.left_source, again.left_source)
    assert not np.array_equal(first.left_source, other.left_source)
    assert not np.array_equal(
        multi_digits.source_pools(3)["test"], multi_digits.source_pools(4)["test"]
    )


def test_multi_digits_shared_and_per_task_inputs_agree():
    data = multi_digits.MultiDigitsDataConfig(
        split="validation", num_pairs=20, global_batch_size=8, is_training=False, drop_remainder=False
    )
    shared = list(multi_digits.shared_inputs(data))
    assert [len(features) for features, _ in shared] == [8, 8, 4]
    features, labels = shared[0]
    assert features.shape == (8, 8, 12, 1) and sorted(labels) == ["left", "right"]
    arrays = multi_digits.multi_digits_arrays("validation", num_pairs=20)
    for side in multi_digits.SIDES:
        task = multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config(side))
        own = np.concatenate([y.numpy() for _, y in task.build_inputs(data)])
        np.testing.assert_array_equal(own, getattr(arrays, side))
    test_data = data.replace(split="test")
    test_sources = multi_digits.multi_digits_arrays("test", num_pairs=20)
    test_features = np.concatenate([x.numpy() for x, _ in multi_digits.shared_inputs(test_data)])
    np.testing.assert_array_equal(test_features, test_sources.features)
    with pytest.raises(ValueError, match=r"split is 'eval'; allowed: train, validation, test"):
        multi_digits.shared_inputs(data.replace(split="eval"))


# ---------------------------------------------------------------- experiments


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_is_registered_and_valid(name):
    params = exp_factory.get_exp_config(name)
    params.validate()
    assert params.runtime.distribution_strategy == "mirrored" and params.runtime.num_gpus == 0
    for task_config in _task_configs(params):
        assert task_config.validation_data.split == "validation"
        assert task_config.train_data.split == "train"
    if isinstance(params, configs.MultiTaskExperimentConfig):
        names = [routine.resolved_name() for routine in params.task.task_routines]
        assert list(params.task.model.task_names) == names


def test_shipped_trainer_types():
    assert exp_factory.get_exp_config("shapes").trainer.trainer_type == "joint"
    interleaving = exp_factory.get_exp_config("shapes_interleaving").trainer
    assert interleaving.trainer_type == "interleaving"
    assert interleaving.task_sampler.type in ("proportional", "uniform")
    assert exp_factory.get_exp_config("multi_digits").trainer.trainer_type == "joint"
    single = exp_factory.get_exp_config("shapes_circle_single")
    assert type(single) is cfg.ExperimentConfig and single.task.shape == "circle"
    warm = exp_factory.get_exp_config("shapes_warm_start").task
    assert warm.init_checkpoint == ""
    assert [r.task_config.shape for r in warm.task_routines] == ["circle", "square"]


@pytest.mark.parametrize("name", ["shapes", "shapes_interleaving"])
def test_shapes_experiments_train_end_to_end(name, tmp_path, two_cpu_strategy):
    params = _tiny(exp_factory.get_exp_config(name))
    task, _, logs = _train(params, two_cpu_strategy, tmp_path)
    assert list(task.tasks) == list(shapes.SHAPES)
    _check_run(task, logs, tmp_path)


def test_multi_digits_trains_with_one_dataset_per_task(tmp_path):
    params = _tiny(exp_factory.get_exp_config("multi_digits"))
    strategy = runtime.get_distribution_strategy(params.runtime)
    task, _, logs = _train(params, strategy, tmp_path)
    _check_run(task, logs, tmp_path)


def test_multi_digits_trains_jointly_on_the_shared_dataset(tmp_path, two_cpu_strategy):
    params = _tiny(exp_factory.get_exp_config("multi_digits"))
    train_data = params.task.task_routines[0].task_config.train_data

    def trainer_fn(task, model):
        return base_trainer.MultiTaskBaseTrainer(
            multi_task=task,
            multi_task_model=model,
            optimizer=task.create_optimizer(params.trainer.optimizer_config, params.runtime),
            train_datasets=multi_digits.shared_inputs(train_data),
        )

    task, _, logs = _train(params, two_cpu_strategy, tmp_path, trainer_fn)
    _check_run(task, logs, tmp_path)


@pytest.fixture(scope="module")
def circle_single_run(tmp_path_factory):
    """A few steps of `shapes_circle_single`: `(model_dir, trained model)`."""
    model_dir = tmp_path_factory.mktemp("circle_single")
    params = _tiny(exp_factory.get_exp_config("shapes_circle_single"))
    strategy = runtime.get_distribution_strategy(params.runtime)
    task, model, logs = _train(params, strategy, model_dir)
    _check_run(task, logs, model_dir)
    del task, logs
    gc.collect()  # See conftest.collect_finished_runs.
    return str(model_dir), model


def test_single_task_experiment_trains_end_to_end(circle_single_run):
    model_dir, model = circle_single_run
    assert os.path.isdir(os.path.join(model_dir, "train"))
    assert set(model.checkpoint_items) == {"encoder"}


def test_warm_start_restores_the_single_task_encoder(circle_single_run, tmp_path):
    single_dir, single_model = circle_single_run
    expected = [w.numpy() for w in single_model.encoder.weights]
    params = exp_factory.get_exp_config("shapes_warm_start")
    params.task.init_checkpoint = single_dir
    model = model_factory.build_model(params.task)
    assert not all(np.array_equal(a, w.numpy()) for a, w in zip(expected, model.encoder.weights))
    model.initialize()
    assert len(model.encoder.weights) == len(expected) == 4
    for value, weight in zip(expected, model.encoder.weights):
        np.testing.assert_array_equal(weight.numpy(), value)
    # The heads are not part of the warm start.
    assert model.sub_tasks["circle"].encoder is model.sub_tasks["square"].encoder is model.encoder

    # Through the launcher's path: the checkpoint manager's init_fn warm-starts.
    params = _tiny(params)
    strategy = runtime.get_distribution_strategy(params.runtime)
    task, _, logs = _train(params, strategy, tmp_path)
    _check_run(task, logs, tmp_path)


def test_multi_digits_model_handles_an_empty_batch():
    model = multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config("left")).build_model()
    empty = tf.zeros((0, 8, 12, 1))
    assert model(empty).shape == (0, 10)
    assert tf.function(model)(empty).shape == (0, 10)
    assert model(tf.zeros((3, 8, 12, 1))).shape == (3, 10)


@pytest.mark.parametrize(
    "name, config_file, trainer_type",
    [
        ("shapes", "shapes.yaml", "joint"),
        ("shapes_interleaving", "shapes_interleaving.yaml", "interleaving"),
        ("shapes", "shapes_interleaving.yaml", "interleaving"),
        ("multi_digits", "multi_digits.yaml", "joint"),
    ],
)
def test_shipped_yaml_overrides_apply(name, config_file, trainer_type):
    path = os.path.join(os.path.dirname(__file__), os.pardir, "configs", config_file)
    with open(path, encoding="utf-8") as stream:
        override = yaml.safe_load(stream)
    assert set(override) <= {"trainer", "runtime"}  # task_routines would lose their classes
    params = exp_factory.get_exp_config(name)
    task_classes = [type(c) for c in _task_configs(params)]
    registered = params.as_dict()
    params.override(override, is_strict=True)
    params.validate()
    if config_file == f"{name}.yaml":  # Each experiment's own file spells out its defaults.
        assert params.as_dict() == registered
    assert params.trainer.trainer_type == trainer_type
    assert params.trainer.optimizer_config.optimizer.type == "adam"
    assert [type(c) for c in _task_configs(params)] == task_classes
