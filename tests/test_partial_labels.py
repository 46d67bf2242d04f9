"""Partial labels: unlabelled entries are left out, losses are normalised by the GLOBAL labelled count."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import head_toy
from multitask import base_trainer
from multitask import evaluator as evaluator_lib
from multitask import multitask as multitask_lib
from multitask.modeling import head_task
from multitask.modeling import partial_labels

RNG = np.random.default_rng(1)


def test_masked_mean_and_an_empty_mask():
    values = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    assert float(partial_labels.masked_mean(values, [1, 0, 1, 0])) == pytest.approx(2.0)
    assert float(partial_labels.masked_mean(values, [0, 0, 0, 0])) == 0.0


def test_masked_mean_uses_the_global_count_on_each_replica(two_cpu_strategy):
    # Replica 0 holds 1 labelled entry, replica 1 holds 3: the global mean is 10 / 4.
    values = [np.array([4.0, 9.0], np.float32), np.array([1.0, 2.0], np.float32)]
    masks = [np.array([1.0, 0.0], np.float32), np.array([1.0, 1.0], np.float32)]
    per_replica = two_cpu_strategy.experimental_distribute_values_from_function(
        lambda context: (values[context.replica_id_in_sync_group], masks[context.replica_id_in_sync_group])
    )
    results = two_cpu_strategy.run(tf.function(lambda v, m: partial_labels.masked_mean(v, m)), args=per_replica)
    local = [float(x) for x in two_cpu_strategy.experimental_local_results(results)]
    # Each replica returns replicas * local_sum / global_count; their mean is the global mean.
    assert local == pytest.approx([2 * 4.0 / 3, 2 * 3.0 / 3])
    assert np.mean(local) == pytest.approx(7.0 / 3)


@pytest.mark.parametrize("type_, kwargs, labels", [
    ("classification", dict(num_classes=3), [2, -1, 0, -1, 1, 1]),
    ("binary", {}, [1, np.nan, 0, -1, 1, 0]),
    ("regression", dict(loss="huber"), [0.3, np.nan, -1.2, 2.0, np.nan, 0.1]),
    ("contrastive", {}, [0, -1, 0, 1, 1, -1]),
    # A margin of 2 (the diameter of the unit sphere) keeps every triplet active.
    ("ranking", dict(margin=2.0), [0, 1, -1, 0, 1, -1]),
])
def test_partial_labels_give_the_loss_and_gradients_of_the_labelled_subset(type_, kwargs, labels):
    keras.utils.set_random_seed(0)
    head = head_task.build_head({"type": type_, **kwargs})
    labels = np.array(labels)
    # Regression targets may be negative: only NaN is missing there.
    negative = np.nan_to_num(labels, nan=-1) < 0 if type_ != "regression" else False
    kept = np.where(~np.isnan(labels) & ~negative)[0]
    representation = tf.constant(RNG.normal(size=(len(labels), 4)), tf.float32)
    head(representation)

    def loss_and_grads(rows):
        with tf.GradientTape() as tape:
            loss = head.loss(labels[rows], head(tf.gather(representation, rows)))
        return float(loss), tape.gradient(loss, head.trainable_variables)

    full_loss, full_grads = loss_and_grads(np.arange(len(labels)))
    subset_loss, subset_grads = loss_and_grads(kept)
    assert full_loss == pytest.approx(subset_loss, rel=1e-6) and full_loss > 0
    for full, subset in zip(full_grads, subset_grads):
        np.testing.assert_allclose(full, subset, rtol=1e-5, atol=1e-7)


def _multi_task():
    return multitask_lib.MultiTask(
        [head_task.HeadTask(head_toy.task_config(name)) for name in ("kind", "size")]
    )


@pytest.mark.parametrize("trainer_type, method, rep_grad", [
    ("joint", None, False), ("joint", "mgda", False), ("joint", "mgda", True), ("interleaving", None, False),
])
def test_one_and_two_replicas_agree(two_cpu_strategy, trainer_type, method, rep_grad):
    """The halves of each batch of 8 hold different numbers of labels (head_toy)."""
    init, one_after, one_logs = head_toy.train(tf.distribute.get_strategy(), trainer_type, method=method,
                                               rep_grad=rep_grad)
    _, two_after, two_logs = head_toy.train(two_cpu_strategy, trainer_type, init=init, method=method,
                                            rep_grad=rep_grad)
    for one, two in zip(one_after, two_after):
        np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)
    for name in ("kind", "size"):
        for key in ("training_loss", "accuracy" if name == "kind" else "mae"):
            assert one_logs[name][key] == pytest.approx(two_logs[name][key], rel=1e-5)
    assert not np.allclose(init[0], one_after[0])


def test_a_replica_without_labels_still_trains_and_logs_finite_losses(two_cpu_strategy):
    # Batches of 4: replica 0 gets examples 0-1 (no "kind" label), replica 1 gets 2-3.
    shared = head_toy.PartialDataConfig(repeat=True, global_batch_size=4)
    with two_cpu_strategy.scope():
        multi_task = _multi_task()
        model = head_toy.model()
        trainer = base_trainer.MultiTaskBaseTrainer(
            multi_task, model, keras.optimizers.SGD(0.1),
            train_datasets=lambda input_context=None: head_toy.partial_inputs(shared, input_context),
        )
    logs = trainer.train(tf.constant(2))
    assert all(np.isfinite(logs[name]["training_loss"]) for name in ("kind", "size"))
    assert all(np.all(np.isfinite(v.numpy())) for v in model.trainable_variables)


@pytest.mark.parametrize("mirrored", [False, True])
def test_evaluator_metrics_ignore_unlabelled_examples(two_cpu_strategy, mirrored):
    strategy = two_cpu_strategy if mirrored else tf.distribute.get_strategy()
    with strategy.scope():
        model = head_toy.model()
        # Partial labels in batches of 8, and the labelled examples alone in one batch.
        partial = [head_task.HeadTask(head_toy.task_config(name)) for name in ("kind", "size")]
        subset = [head_task.HeadTask(head_toy.task_config(name, batch_size=32, labelled_only=name))
                  for name in ("kind", "size")]
        partial_logs = evaluator_lib.MultiTaskEvaluator(partial, model).evaluate(-1)
        subset_logs = evaluator_lib.MultiTaskEvaluator(subset, model).evaluate(-1)
    features, labels = head_toy.arrays()
    kind = labels["kind"] >= 0
    predictions = model.sub_tasks["kind"](features[kind]).numpy().argmax(-1)
    assert partial_logs["kind"]["accuracy"] == pytest.approx(np.mean(predictions == labels["kind"][kind]))
    size = ~np.isnan(labels["size"])
    error = model.sub_tasks["size"](features[size]).numpy()[:, 0] - labels["size"][size]
    assert partial_logs["size"]["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    for name, metric in (("kind", "accuracy"), ("size", "mae"), ("size", "rmse")):
        assert partial_logs[name][metric] == pytest.approx(subset_logs[name][metric], rel=1e-5)
    assert subset_logs["size"]["validation_loss"] == pytest.approx(np.mean(error**2), rel=1e-5)
