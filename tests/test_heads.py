"""Tests of the heads: each loss and metric against a numpy hand computation."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from multitask.modeling import head_task
from multitask.modeling import heads
from multitask.modeling import registry

RNG = np.random.default_rng(0)


def _head(type_, **kwargs):
    return head_task.build_head(head_task.HeadConfig(type=type_, **kwargs), name=type_)


def _metrics(head, labels, outputs):
    metrics = head.build_metrics()
    head.update_metrics(metrics, labels, outputs)
    return {metric.name: float(metric.result()) for metric in metrics}


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _sigmoid_xent(z, y):
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def test_builtin_heads_are_registered_and_return_keras_layers():
    for name in ("classification", "binary", "multilabel", "regression", "sequence_labeling",
                 "contrastive", "ranking"):
        assert name in registry.HEADS.names
    head = registry.HEADS.build({"type": "classification", "num_classes": 3, "hidden_sizes": (4,)}, name="t")
    assert isinstance(head, keras.layers.Layer) and head.name == "t"
    assert head(np.zeros((2, 5), np.float32)).shape == (2, 3)
    # One hidden Dense and the output Dense: two kernels and two biases.
    assert len(head.trainable_variables) == 4


def test_classification_loss_and_accuracy():
    logits = RNG.normal(size=(5, 3)).astype(np.float32)
    labels = np.array([0, 2, -1, 1, 2])
    head = _head("classification", num_classes=3)
    kept = labels >= 0
    expected = -_log_softmax(logits)[kept, labels[kept]].mean()
    np.testing.assert_allclose(float(head.loss(labels, logits)), expected, rtol=1e-5)
    accuracy = (logits.argmax(-1)[kept] == labels[kept]).mean()
    assert _metrics(head, labels, logits)["accuracy"] == pytest.approx(accuracy)


def test_sequence_labeling_ignores_padding_tokens():
    logits = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    labels = np.array([[0, 2, 1, -1], [1, -1, -1, -1]])
    head = _head("sequence_labeling", num_classes=3)
    kept = labels >= 0
    per_token = -np.take_along_axis(_log_softmax(logits), np.maximum(labels, 0)[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(head.loss(labels, logits)), per_token[kept].mean(), rtol=1e-5)
    accuracy = (logits.argmax(-1) == labels)[kept].mean()
    assert _metrics(head, labels, logits)["accuracy"] == pytest.approx(accuracy)
    assert head(np.zeros((2, 4, 5), np.float32)).shape == (2, 4, 3)


def test_binary_loss_auc_and_accuracy():
    logits = np.array([[2.0], [-1.0], [0.5], [3.0], [-2.0]], np.float32)
    labels = np.array([1, 0, -1, 0, np.nan])
    head = _head("binary")
    kept = np.array([True, True, False, True, False])
    z, y = logits[kept, 0], labels[kept]
    np.testing.assert_allclose(float(head.loss(labels, logits)), _sigmoid_xent(z, y).mean(), rtol=1e-5)
    metrics = _metrics(head, labels, logits)
    # Positive scores 2.0; negatives -1.0 and 3.0: one of the two pairs is ordered.
    assert metrics["auc"] == pytest.approx(0.5, abs=1e-2)
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_multilabel_masks_each_label():
    logits = RNG.normal(size=(3, 2)).astype(np.float32)
    labels = np.array([[1, 0], [-1, 1], [0, np.nan]])
    head = _head("multilabel", num_labels=2)
    kept = ~np.isnan(labels) & (np.nan_to_num(labels, nan=-1) >= 0)
    np.testing.assert_allclose(
        float(head.loss(labels, logits)), _sigmoid_xent(logits, np.nan_to_num(labels))[kept].mean(), rtol=1e-5
    )
    accuracy = ((logits > 0) == (labels == 1))[kept].mean()
    assert _metrics(head, labels, logits)["accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_regression_loss_mae_and_rmse(loss):
    outputs = np.array([[0.5], [2.0], [-1.0], [4.0]], np.float32)
    labels = np.array([1.0, np.nan, 1.5, 0.0])
    head = _head("regression", loss=loss, delta=1.0)
    kept = ~np.isnan(labels)
    error = outputs[kept, 0] - labels[kept]
    if loss == "mse":
        expected = np.square(error).mean()
    else:
        expected = np.where(np.abs(error) <= 1.0, 0.5 * error**2, np.abs(error) - 0.5).mean()
    np.testing.assert_allclose(float(head.loss(labels, outputs)), expected, rtol=1e-5)
    metrics = _metrics(head, labels, outputs)
    assert metrics["mae"] == pytest.approx(np.abs(error).mean())
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.square(error).mean()), rel=1e-5)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_contrastive_nt_xent_with_temperature():
    embeddings = _unit(RNG.normal(size=(5, 3)))
    # Two views of instance 0 and of instance 1; instance 2 has one view (no
    # positive: not an anchor, but a negative); the last example is unlabelled.
    ids = np.array([0, 1, 0, 1, 2])
    labels = np.array([0, 1, 0, 1, 2, -1])
    outputs = np.concatenate([embeddings, _unit(RNG.normal(size=(1, 3)))]).astype(np.float32)
    head = _head("contrastive", temperature=0.5)
    sims = embeddings @ embeddings.T / 0.5
    losses = []
    for i in range(4):
        positive = [j for j in range(5) if j != i and ids[j] == ids[i]][0]
        others = [j for j in range(5) if j != i]
        losses.append(-(sims[i, positive] - np.log(np.exp(sims[i, others]).sum())))
    np.testing.assert_allclose(float(head.loss(labels, outputs)), np.mean(losses), rtol=1e-5)
    hits = [ids[max((j for j in range(5) if j != i), key=lambda j: sims[i, j])] == ids[i] for i in range(4)]
    assert _metrics(head, labels, outputs)["recall_at_1"] == pytest.approx(np.mean(hits))
    np.testing.assert_allclose(np.linalg.norm(head(np.ones((2, 4), np.float32)), axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_ranking_triplet_margin(mining):
    outputs = RNG.normal(size=(6, 2)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 0, -1])
    head = _head("ranking", margin=0.3, mining=mining)
    distance = np.linalg.norm(outputs[:, None] - outputs[None], axis=-1)
    losses = []
    for a in range(5):
        positives = [p for p in range(5) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(5) if labels[n] != labels[a]]
        if mining == "hard":
            losses.append(max(0.0, max(distance[a, positives]) - min(distance[a, negatives]) + 0.3))
        else:
            losses.append(np.mean([max(0.0, distance[a, p] - distance[a, n] + 0.3)
                                   for p in positives for n in negatives]))
    np.testing.assert_allclose(float(head.loss(labels, outputs)), np.mean(losses), rtol=1e-5)
    hits = [labels[min((j for j in range(5) if j != a), key=lambda j: distance[a, j])] == labels[a]
            for a in range(5)]
    assert _metrics(head, labels, outputs)["recall_at_1"] == pytest.approx(np.mean(hits))


@pytest.mark.parametrize("type_, kwargs, labels, shape", [
    ("classification", dict(num_classes=3), [-1, -1], (2, 3)),
    ("binary", {}, [np.nan, -1], (2, 1)),
    ("regression", {}, [np.nan, np.nan], (2, 1)),
    ("contrastive", {}, [0, 1], (2, 8)),
    ("ranking", {}, [0, 0], (2, 8)),
])
def test_no_labelled_entry_gives_zero_loss_and_finite_gradients(type_, kwargs, labels, shape):
    head = _head(type_, **kwargs)
    representation = tf.constant(RNG.normal(size=(shape[0], 4)), tf.float32)
    with tf.GradientTape() as tape:
        loss = head.loss(np.array(labels), head(representation))
    grads = tape.gradient(loss, head.trainable_variables)
    assert float(loss) == 0.0
    assert all(np.all(np.isfinite(g)) for g in grads if g is not None)


def test_head_config_errors_name_the_field_and_the_allowed_values():
    with pytest.raises(ValueError, match="registered: .*classification"):
        head_task.build_head(head_task.HeadConfig(type="nope"))
    with pytest.raises(ValueError, match="does not take temperature; it takes: num_classes"):
        head_task.build_head(head_task.HeadConfig(type="classification", num_classes=2, temperature=0.1))
    with pytest.raises(ValueError, match="num_classes"):
        head_task.build_head(head_task.HeadConfig(type="classification"))
    with pytest.raises(ValueError, match="allowed: mse, huber"):
        heads.RegressionHead(loss="l1")
    with pytest.raises(ValueError, match="allowed: hard, all"):
        heads.RankingHead(mining="semi")


def test_head_round_trips_through_its_config():
    head = heads.RankingHead(embedding_size=4, margin=0.5, mining="all", hidden_sizes=(3,), name="r")
    clone = heads.RankingHead.from_config(head.get_config())
    assert (clone.embedding_size, clone.margin, clone.mining, clone.hidden_sizes) == (4, 0.5, "all", (3,))


def test_hidden_layers_are_saved_and_restored_by_checkpoints(tmp_path):
    head = registry.HEADS.build({"type": "classification", "num_classes": 3, "hidden_sizes": [4]})
    head(tf.zeros([2, 5]))
    path = tf.train.Checkpoint(head=head).write(str(tmp_path / "ckpt"))
    saved = [variable.numpy() for variable in head.variables]
    for variable in head.variables:
        variable.assign(tf.zeros_like(variable))
    tf.train.Checkpoint(head=head).read(path).assert_consumed()
    for variable, value in zip(head.variables, saved):
        np.testing.assert_array_equal(variable.numpy(), value)
