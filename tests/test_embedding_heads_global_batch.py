"""Contrastive and ranking heads pair each replica's examples with the whole global batch."""
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import head_toy
from multitask import evaluator as evaluator_lib
from multitask.modeling import head_task

RNG = np.random.default_rng(3)
TASKS = ("kind_contrastive", "kind_ranking")
# Replica 0 gets 3 examples, replica 1 gets 4: no replica alone holds the
# positive pairs of the ids 0 and 2, and one of them has no labelled 1.
IDS = np.array([0, 2, -1, 0, 2, 1, 1])
SPLIT = (3, 4)

HEADS = [
    dict(type="contrastive", temperature=0.5),
    dict(type="ranking", margin=0.5, mining="hard"),
    dict(type="ranking", margin=2.0, mining="all", normalize=False),
]


def _local_loss_and_grad(head, embeddings):
    """`(loss, d loss / d embeddings, recall_at_1)` on the replica's slice `embeddings` of IDS."""
    context = tf.distribute.get_replica_context()
    start = 0 if context.num_replicas_in_sync == 1 else SPLIT[0] * context.replica_id_in_sync_group
    rows = tf.range(start, start + tf.shape(embeddings)[0])
    labels = tf.gather(tf.constant(IDS), rows)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = head.loss(labels, embeddings)
        # What the trainers differentiate: each replica's loss over the replica count.
        scaled = loss / context.num_replicas_in_sync
    hits = _Sums()
    head.update_metrics([hits], labels, embeddings)
    return loss, tape.gradient(scaled, embeddings), hits.total, hits.count


class _Sums:
    """Stands in for the Mean metric inside a traced step: keeps its weighted sum and weight."""

    def update_state(self, values, sample_weight):
        self.total = tf.reduce_sum(values * sample_weight)
        self.count = tf.reduce_sum(sample_weight)


@pytest.mark.parametrize("config", HEADS, ids=lambda c: f"{c['type']}-{c.get('mining', '')}")
def test_a_batch_split_unevenly_over_two_replicas_gives_the_one_device_loss_gradient_and_recall(
        two_cpu_strategy, config):
    head = head_task.build_head({**config, "embedding_size": 3})
    embeddings = RNG.normal(size=(len(IDS), 3)).astype(np.float32)
    if getattr(head, "normalize", True):
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    step = tf.function(lambda x: _local_loss_and_grad(head, x))
    loss, grad, total, count = step(tf.constant(embeddings))

    slices = np.split(embeddings, np.cumsum(SPLIT)[:-1])
    values = two_cpu_strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(slices[context.replica_id_in_sync_group]))
    results = [two_cpu_strategy.experimental_local_results(x) for x in two_cpu_strategy.run(step, args=(values,))]
    losses, grads, totals, counts = ([r.numpy() for r in result] for result in results)

    assert float(loss) > 0
    # The trainers log the mean of the replicas' losses and sum their gradients.
    assert np.mean(losses) == pytest.approx(float(loss), rel=1e-5)
    np.testing.assert_allclose(np.concatenate(grads), grad.numpy(), rtol=1e-4, atol=1e-6)
    assert np.sum(totals) / np.sum(counts) == pytest.approx(float(total) / float(count))


@pytest.mark.parametrize("trainer_type, method, rep_grad", [
    ("joint", None, False), ("joint", "mgda", True), ("interleaving", None, False),
])
def test_one_and_two_replicas_train_alike(two_cpu_strategy, trainer_type, method, rep_grad):
    """Batches of 8, split 4 | 4: the first half holds one labelled id (head_toy)."""
    train = functools.partial(head_toy.train, trainer_type=trainer_type, task_names=TASKS, method=method,
                              rep_grad=rep_grad, learning_rate=0.5)
    init, one_after, one_logs = train(tf.distribute.get_strategy())
    _, two_after, two_logs = train(two_cpu_strategy, init=init)
    assert not np.allclose(init[0], one_after[0])
    # Negatives from the replica's half alone differed by up to 1.3 here; float sums in another order, by 1e-5.
    for one, two in zip(one_after, two_after):
        np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-5)
    for name in TASKS:
        for key in ("training_loss", "recall_at_1"):
            assert one_logs[name][key] == pytest.approx(two_logs[name][key], rel=1e-4), (name, key)


def test_one_and_two_replicas_evaluate_alike(two_cpu_strategy):
    """32 examples in batches of 6: the last batch of 2 splits 1 | 1."""
    logs = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = head_toy.model(TASKS)
            tasks = [head_task.HeadTask(head_toy.task_config(name, batch_size=6)) for name in TASKS]
            logs.append(evaluator_lib.MultiTaskEvaluator(tasks, model).evaluate(-1))
    for name in TASKS:
        assert logs[0][name]["validation_loss"] > 0
        for key in ("validation_loss", "recall_at_1"):
            assert logs[0][name][key] == pytest.approx(logs[1][name][key], rel=1e-5), (name, key)
