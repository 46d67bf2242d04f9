"""Logged losses under partial labels: sum of the labelled losses over their count, for a whole evaluation or loop.

Two batches of 8 with 2 and 6 "kind" labels (3 and 7 "size" labels); split
over two replicas, the halves hold different counts (2 | 0, then 4 | 2 for
"kind"). A mean of the batches' means would weigh the batch with 2 labels as
much as the one with 6. Learning rate 0: every step sees the same model, so the
per-example losses are known.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import head_toy
import toy
from multitask import base_trainer
from multitask import evaluator as evaluator_lib
from multitask import interleaving_trainer
from multitask import multitask as multitask_lib
from multitask import task_sampler
from multitask.modeling import head_task
from multitask.modeling import partial_labels

NAMES = ("kind", "size")


def _arrays():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(16, head_toy.NUM_FEATURES)).astype(np.float32)
    kind = np.full(16, -1, np.int32)
    kind[[0, 1, 8, 9, 10, 11, 12, 13]] = rng.integers(0, 3, size=8)
    size = np.full(16, np.nan, np.float32)
    labelled = [2, 5, 6] + list(range(8, 15))
    size[labelled] = rng.normal(size=len(labelled))
    return features, {"kind": kind, "size": size}


def _expected(model):
    """`{task: sum of the labelled examples' losses / their count}` over both batches."""
    features, labels = _arrays()
    kind = labels["kind"] >= 0
    logits = model.sub_tasks["kind"](features[kind]).numpy().astype(np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    size = ~np.isnan(labels["size"])
    error = model.sub_tasks["size"](features[size]).numpy()[:, 0].astype(np.float64) - labels["size"][size]
    expected = {"kind": -np.mean(log_softmax[np.arange(kind.sum()), labels["kind"][kind]]),
                "size": np.mean(error**2)}
    # The mean of the batches' means differs: the test would catch it.
    first = error[:3] ** 2
    assert abs(np.mean([first.mean(), (error[3:] ** 2).mean()]) - expected["size"]) > 1e-3 * expected["size"]
    return expected


def _strategy(mirrored, two_cpu_strategy):
    return two_cpu_strategy if mirrored else tf.distribute.get_strategy()


def test_loss_count_weighs_each_replica_to_its_labelled_sum(two_cpu_strategy):
    # partial_labels' docstring: losses 4 | 1, 2, 3, then nothing | 5, 7: the mean is 22 / 6.
    values = [[[4.0, 0.0], [1.0, 2.0, 3.0]], [[0.0, 0.0], [5.0, 7.0]]]
    masks = [[[1.0, 0.0], [1.0, 1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]]
    with two_cpu_strategy.scope():
        mean = keras.metrics.Mean()

    @tf.function
    def step(v, m):
        mean.update_state(partial_labels.masked_mean(v, m), sample_weight=partial_labels.loss_count(m))

    for batch in range(2):
        inputs = two_cpu_strategy.experimental_distribute_values_from_function(
            lambda context: (tf.constant(values[batch][context.replica_id_in_sync_group]),
                             tf.constant(masks[batch][context.replica_id_in_sync_group])))
        two_cpu_strategy.run(step, args=inputs)
    assert float(mean.result()) == pytest.approx(22.0 / 6, rel=1e-6)


@pytest.mark.parametrize("mirrored", [False, True])
def test_validation_loss_is_the_mean_over_the_labelled_examples(two_cpu_strategy, mirrored):
    features, labels = _arrays()
    with _strategy(mirrored, two_cpu_strategy).scope():
        model = head_toy.model()
        tasks = [head_task.HeadTask(head_toy.task_config(name)) for name in NAMES]
        datasets = {name: tf.data.Dataset.from_tensor_slices((features, labels[name])).batch(8) for name in NAMES}
        logs = evaluator_lib.MultiTaskEvaluator(tasks, model, eval_datasets=datasets).evaluate(-1)
    expected = _expected(model)
    for name in NAMES:
        np.testing.assert_allclose(logs[name]["validation_loss"], expected[name], rtol=1e-6)


# 21 examples in batches of 8: the last one holds 5 (3 | 2 over two replicas);
# 17: it holds 1, and the second replica's part is empty (its loss is NaN).
@pytest.mark.parametrize("num_examples", [21, 17])
@pytest.mark.parametrize("mirrored", [False, True])
def test_validation_loss_of_a_plain_task_counts_a_smaller_last_batch_for_its_examples(
        two_cpu_strategy, mirrored, num_examples):
    x, y = toy.toy_arrays(2, num_examples)
    with _strategy(mirrored, two_cpu_strategy).scope():
        model = toy.ToyMultiTaskModel()
        model.build()
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        evaluator = evaluator_lib.MultiTaskEvaluator([toy.ToyTask(toy.FooConfig())], model,
                                                     eval_datasets={"foo": dataset})
        logs = evaluator.evaluate(-1)
    squared = (model.sub_tasks["foo"](x).numpy().astype(np.float64) - y) ** 2
    np.testing.assert_allclose(logs["foo"]["validation_loss"], np.mean(squared), rtol=1e-6)


@pytest.mark.parametrize("trainer_type", ["joint", "interleaving"])
@pytest.mark.parametrize("mirrored", [False, True])
def test_training_loss_is_the_mean_over_the_labelled_examples_of_the_loop(two_cpu_strategy, mirrored, trainer_type):
    features, labels = _arrays()
    with _strategy(mirrored, two_cpu_strategy).scope():
        multi_task = multitask_lib.MultiTask([head_task.HeadTask(head_toy.task_config(name)) for name in NAMES])
        model = head_toy.model()
        if trainer_type == "joint":
            # One shared source: each step reads one batch for both tasks.
            trainer = base_trainer.MultiTaskBaseTrainer(
                multi_task, model, keras.optimizers.SGD(0.0),
                train_datasets=tf.data.Dataset.from_tensor_slices((features, labels)).batch(8).repeat())
            steps = 2
        else:
            # Tasks in turn, each reading its own data: each task trains on both batches.
            trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
                multi_task, model, keras.optimizers.SGD(0.0),
                task_sampler.RoundRobinTaskSampler(multi_task.task_weights),
                train_datasets={name: tf.data.Dataset.from_tensor_slices((features, labels[name])).batch(8).repeat()
                                for name in NAMES})
            steps = 4
    logs = trainer.train(tf.constant(steps))
    expected = _expected(model)
    for name in NAMES:
        assert logs[name]["task_steps"] == 2
        np.testing.assert_allclose(logs[name]["training_loss"], expected[name], rtol=1e-6)
