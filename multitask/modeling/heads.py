"""Task heads: Keras layers that carry their task's default loss and metrics.

A head maps the shared representation to the task's outputs, and knows how to
score them, so a generic Task (`head_task.HeadTask`) needs no code per task.
The contract, which a plugin head registered with `registry.register_head`
follows too:

- `call(representation, training=None)`: the outputs (optional ReLU Dense
  `hidden_sizes` with `dropout`, then an output Dense).
- `label_mask(labels)`: float32, 1 where an entry is labelled, 0 where not;
  the shape of `per_example_loss`.
- `per_example_loss(labels, outputs)`: float32 losses per labelled entry,
  finite (0) where unlabelled.
- `loss(labels, outputs)`: the scalar loss; the mean over the labelled entries
  of the global batch (`partial_labels.masked_mean`). A batch without labels
  gives 0.
- `build_metrics()`: fresh Keras metrics; `update_metrics(metrics, labels,
  outputs)` updates them with unlabelled entries weighted 0.

How a missing label is written (`label_mask`):

| head | labels | missing |
|---|---|---|
| classification | int class ids `[b]` | -1 (any negative id) |
| sequence_labeling | int class ids `[b, T]` | -1 (padding, unlabelled tokens) |
| binary | 0/1 `[b]` or `[b, 1]` | -1 or NaN |
| multilabel | 0/1 `[b, L]` | -1 or NaN, per label |
| regression | float `[b]` or `[b, units]` | NaN, per unit |
| contrastive, ranking | int ids `[b]`: same id = positive pair | -1 |

Losses are computed in float32, also under a mixed-precision policy.
"""
from typing import List, Sequence

import keras
import tensorflow as tf

from multitask.modeling import partial_labels
from multitask.modeling import registry
from multitask.modeling import tracking

REGRESSION_LOSSES = ("mse", "huber")
MINING = ("hard", "all")


class Head(tracking.CheckpointableLayer):
    """Base head: optional hidden layers, an output Dense, and a masked loss.

    Subclasses set the output width and implement `per_example_loss`,
    `label_mask`, `build_metrics` and `update_metrics`.
    """

    def __init__(self, output_units: int, hidden_sizes: Sequence[int] = (), activation: str = "relu",
                 dropout: float = 0.0, **kwargs):
        """Creates the layers.

        Args:
          output_units: Width of the output Dense.
          hidden_sizes: Units of the hidden Dense layers, in order.
          activation: Activation of the hidden layers.
          dropout: Dropout rate after each hidden layer (training only).
          **kwargs: Passed to `keras.layers.Layer` (e.g. `name`).

        Raises:
          ValueError: A non-positive width or a dropout rate outside [0, 1).
        """
        super().__init__(**kwargs)
        hidden_sizes = tuple(int(units) for units in hidden_sizes or ())
        if int(output_units) <= 0 or any(units <= 0 for units in hidden_sizes):
            raise ValueError(
                f"Head {self.name!r}: output and hidden_sizes units must be positive, got "
                f"{output_units} and {hidden_sizes}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Head {self.name!r}: dropout is {dropout}; allowed: 0 <= dropout < 1.")
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = float(dropout)
        self.hidden_layers = [keras.layers.Dense(units, activation=activation) for units in hidden_sizes]
        self.dropout_layers = [keras.layers.Dropout(dropout) for _ in hidden_sizes] if dropout else []
        self.output_layer = keras.layers.Dense(int(output_units))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.hidden_layers):
            x = layer(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        return self.output_layer(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_layer.units,)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_sizes=self.hidden_sizes, activation=self.activation, dropout=self.dropout)
        return config

    def label_mask(self, labels) -> tf.Tensor:
        """1.0 where an entry of `labels` is labelled, 0.0 where it is missing."""
        raise NotImplementedError

    def per_example_loss(self, labels, outputs) -> tf.Tensor:
        """Per-entry float32 losses, shaped like `label_mask(labels)`, 0 where unlabelled."""
        raise NotImplementedError

    def loss(self, labels, outputs) -> tf.Tensor:
        """Mean of `per_example_loss` over the global batch's labelled entries (0 if none)."""
        return partial_labels.masked_mean(self.per_example_loss(labels, outputs), self.label_mask(labels))

    def build_metrics(self) -> List[keras.metrics.Metric]:
        """Fresh metric objects for this head."""
        raise NotImplementedError

    def update_metrics(self, metrics, labels, outputs) -> None:
        """Updates `build_metrics()`' metrics with one batch; unlabelled entries weigh 0."""
        raise NotImplementedError


def _float32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def _squeeze_last(x, rank: int) -> tf.Tensor:
    """Drops a trailing axis of size 1 when `x` has rank `rank + 1`."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == rank + 1 and x.shape[-1] == 1:
        return tf.squeeze(x, axis=-1)
    return x


def _class_ids(labels, rank: int):
    """`(ids with missing ones set to 0, mask)` of integer class labels; negative = missing."""
    labels = tf.cast(_squeeze_last(labels, rank), tf.int32)
    mask = labels >= 0
    return tf.where(mask, labels, tf.zeros_like(labels)), _float32(mask)


def _binary_targets(labels, shape):
    """`(0/1 float targets with missing ones set to 0, mask)`; negative or NaN = missing."""
    labels = tf.reshape(_float32(labels), shape)
    mask = tf.logical_and(tf.logical_not(tf.math.is_nan(labels)), labels >= 0.0)
    return tf.where(mask, labels, tf.zeros_like(labels)), _float32(mask)


class _SoftmaxHead(Head):
    """Softmax cross-entropy over `num_classes` for labels of rank `label_rank`."""

    label_rank = 1

    def __init__(self, num_classes: int, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes is {num_classes}; a softmax head needs at least 2.")
        self.num_classes = int(num_classes)
        super().__init__(self.num_classes, **kwargs)

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes)

    def label_mask(self, labels):
        return _class_ids(labels, self.label_rank)[1]

    def per_example_loss(self, labels, outputs):
        ids, mask = _class_ids(labels, self.label_rank)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=_float32(outputs))
        return loss * mask

    def build_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def update_metrics(self, metrics, labels, outputs):
        ids, mask = _class_ids(labels, self.label_rank)
        for metric in metrics:
            metric.update_state(ids, _float32(outputs), sample_weight=mask)


@registry.register_head("classification")
class ClassificationHead(_SoftmaxHead):
    """Multi-class classification: logits `[b, num_classes]`, labels `[b]` (-1 = missing).

    Loss: softmax cross-entropy. Metric: "accuracy".
    """


@registry.register_head("sequence_labeling")
class SequenceLabelingHead(_SoftmaxHead):
    """Per-token classification: logits `[b, T, num_classes]` from a `[b, T, d]` representation.

    Labels are `[b, T]` class ids; -1 marks padding and unlabelled tokens,
    which the loss and the token "accuracy" leave out. The loss is the mean
    over the labelled tokens of the global batch.
    """

    label_rank = 2


class _SigmoidHead(Head):
    """Sigmoid cross-entropy per output unit; metrics "auc" (micro) and "accuracy"."""

    def _targets(self, labels, outputs):
        return _binary_targets(labels, tf.shape(outputs))

    def label_mask(self, labels):
        labels = _float32(labels)
        return _float32(tf.logical_and(tf.logical_not(tf.math.is_nan(labels)), labels >= 0.0))

    def per_example_loss(self, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=_float32(outputs))
        return tf.reshape(loss * mask, tf.shape(self.label_mask(labels)))

    def build_metrics(self):
        return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]

    def update_metrics(self, metrics, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        probabilities = tf.sigmoid(_float32(outputs))
        for metric in metrics:
            metric.update_state(targets, probabilities, sample_weight=mask)


@registry.register_head("binary")
class BinaryHead(_SigmoidHead):
    """Binary classification: one logit `[b, 1]`, labels 0/1 `[b]` or `[b, 1]` (-1 or NaN = missing).

    Loss: sigmoid cross-entropy. Metrics: "auc", "accuracy" (threshold 0.5).
    """

    def __init__(self, **kwargs):
        super().__init__(1, **kwargs)


@registry.register_head("multilabel")
class MultiLabelHead(_SigmoidHead):
    """Multi-label classification: `num_labels` logits, labels 0/1 `[b, num_labels]`.

    Each label may be missing on its own (-1 or NaN). Loss: sigmoid
    cross-entropy, the mean over labelled (example, label) entries. Metrics:
    "auc" micro-averaged over labels, "accuracy" (threshold 0.5).
    """

    def __init__(self, num_labels: int, **kwargs):
        self.num_labels = int(num_labels)
        super().__init__(self.num_labels, **kwargs)

    def get_config(self):
        return dict(super().get_config(), num_labels=self.num_labels)


@registry.register_head("regression")
class RegressionHead(Head):
    """Regression of `units` targets; labels `[b]` (units=1) or `[b, units]`, NaN = missing.

    Loss: "mse" (squared error) or "huber" (with `delta`), per labelled target.
    Metrics: "mae" and "rmse".
    """

    def __init__(self, units: int = 1, loss: str = "mse", delta: float = 1.0, **kwargs):
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"regression head: loss is {loss!r}; allowed: {', '.join(REGRESSION_LOSSES)}.")
        self.units = int(units)
        self.loss_type = loss
        self.delta = float(delta)
        super().__init__(self.units, **kwargs)

    def get_config(self):
        return dict(super().get_config(), units=self.units, loss=self.loss_type, delta=self.delta)

    def _targets(self, labels, outputs):
        labels = tf.reshape(_float32(labels), tf.shape(outputs))
        mask = tf.logical_not(tf.math.is_nan(labels))
        return tf.where(mask, labels, tf.zeros_like(labels)), _float32(mask)

    def label_mask(self, labels):
        labels = _float32(labels)
        if self.units == 1:
            labels = tf.reshape(labels, [-1, 1])
        return _float32(tf.logical_not(tf.math.is_nan(labels)))

    def per_example_loss(self, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        error = _float32(outputs) - targets
        if self.loss_type == "mse":
            loss = tf.square(error)
        else:
            absolute = tf.abs(error)
            quadratic = tf.minimum(absolute, self.delta)
            loss = 0.5 * tf.square(quadratic) + self.delta * (absolute - quadratic)
        return loss * mask

    def build_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]

    def update_metrics(self, metrics, labels, outputs):
        targets, mask = self._targets(labels, outputs)
        for metric in metrics:
            metric.update_state(targets, _float32(outputs), sample_weight=mask)


def _pair_masks(labels):
    """`(positive pairs [b, b], negative pairs [b, b])` of id labels.

    Pairs join two different labelled examples; positive ones share an id.
    """
    ids = tf.cast(_squeeze_last(labels, 1), tf.int32)
    valid = ids >= 0
    both = tf.logical_and(valid[:, None], valid[None, :])
    others = tf.logical_and(both, tf.logical_not(tf.eye(tf.shape(ids)[0], dtype=tf.bool)))
    same = tf.equal(ids[:, None], ids[None, :])
    return tf.logical_and(others, same), tf.logical_and(others, tf.logical_not(same))


def _recall_at_1(scores, positives, others):
    """1.0 where an anchor's highest-scoring other labelled example is a positive.

    Args:
      scores: `[b, b]`, higher = closer.
      positives: `[b, b]` positive pairs.
      others: `[b, b]` pairs of two different labelled examples.
    """
    masked = tf.where(others, scores, tf.fill(tf.shape(scores), -1e9))
    nearest = tf.argmax(masked, axis=1, output_type=tf.int32)
    return _float32(tf.gather(positives, nearest, axis=1, batch_dims=1))


class _EmbeddingHead(Head):
    """An embedding of `embedding_size`; metric "recall_at_1" within the batch."""

    def __init__(self, embedding_size: int = 32, **kwargs):
        self.embedding_size = int(embedding_size)
        super().__init__(self.embedding_size, **kwargs)

    def get_config(self):
        return dict(super().get_config(), embedding_size=self.embedding_size)

    def scores(self, outputs) -> tf.Tensor:
        """`[b, b]` closeness of the embeddings, higher = closer."""
        raise NotImplementedError

    def build_metrics(self):
        return [keras.metrics.Mean(name="recall_at_1")]

    def update_metrics(self, metrics, labels, outputs):
        positives, negatives = _pair_masks(labels)
        hits = _recall_at_1(self.scores(outputs), positives, tf.logical_or(positives, negatives))
        weight = _float32(tf.reduce_any(positives, axis=1))
        for metric in metrics:
            metric.update_state(hits, sample_weight=weight)


@registry.register_head("contrastive")
class ContrastiveHead(_EmbeddingHead):
    """Contrastive learning with the NT-Xent / InfoNCE loss at a `temperature`.

    Outputs L2-normalised embeddings `[b, embedding_size]` (the projection
    head: `hidden_sizes`, then a linear layer). Labels are ids `[b]`: examples
    with the same id are positives (two augmented views of one instance give
    SimCLR's NT-Xent; class ids give supervised contrastive learning), -1 is
    unlabelled and takes no part. For an anchor i with positives P(i),

        loss_i = -mean_{p in P(i)} log(exp(s_ip / t) / sum_{a != i} exp(s_ia / t)),

    with s the cosine similarity over labelled examples. Anchors without a
    positive in the batch are left out. Negatives are the other examples of
    the replica's batch. Metric: "recall_at_1" (the most similar other
    example is a positive).
    """

    def __init__(self, embedding_size: int = 32, temperature: float = 0.1, **kwargs):
        if temperature <= 0:
            raise ValueError(f"contrastive head: temperature is {temperature}; it must be positive.")
        self.temperature = float(temperature)
        super().__init__(embedding_size, **kwargs)

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature)

    def call(self, inputs, training=None):
        return tf.math.l2_normalize(super().call(inputs, training=training), axis=-1)

    def scores(self, outputs):
        outputs = _float32(outputs)
        return tf.matmul(outputs, outputs, transpose_b=True)

    def label_mask(self, labels):
        return _float32(tf.reduce_any(_pair_masks(labels)[0], axis=1))

    def per_example_loss(self, labels, outputs):
        positives, negatives = _pair_masks(labels)
        others = tf.logical_or(positives, negatives)
        logits = self.scores(outputs) / self.temperature
        # A large finite value, not -inf: rows without any other example stay finite.
        denominator = tf.reduce_logsumexp(tf.where(others, logits, tf.fill(tf.shape(logits), -1e9)), axis=1)
        log_prob = logits - denominator[:, None]
        positives = _float32(positives)
        count = tf.reduce_sum(positives, axis=1)
        loss = -tf.math.divide_no_nan(tf.reduce_sum(positives * log_prob, axis=1), count)
        return loss * self.label_mask(labels)


@registry.register_head("ranking")
class RankingHead(_EmbeddingHead):
    """Metric learning with the triplet margin loss.

    Outputs embeddings `[b, embedding_size]` (L2-normalised when `normalize`).
    Labels are ids `[b]` (same id = similar, -1 = unlabelled). With Euclidean
    distances d, an anchor a, positives p and negatives n of the batch:

    - mining "hard" (batch-hard): `max(0, max_p d(a, p) - min_n d(a, n) + margin)`;
    - mining "all": the mean over all (p, n) of `max(0, d(a, p) - d(a, n) + margin)`.

    Anchors need a positive and a negative in the batch. Metric: "recall_at_1"
    (the nearest other example is a positive).
    """

    def __init__(self, embedding_size: int = 32, margin: float = 0.2, mining: str = "hard",
                 normalize: bool = True, **kwargs):
        if mining not in MINING:
            raise ValueError(f"ranking head: mining is {mining!r}; allowed: {', '.join(MINING)}.")
        if margin < 0:
            raise ValueError(f"ranking head: margin is {margin}; it must be >= 0.")
        self.margin = float(margin)
        self.mining = mining
        self.normalize = bool(normalize)
        super().__init__(embedding_size, **kwargs)

    def get_config(self):
        return dict(super().get_config(), margin=self.margin, mining=self.mining, normalize=self.normalize)

    def call(self, inputs, training=None):
        outputs = super().call(inputs, training=training)
        return tf.math.l2_normalize(outputs, axis=-1) if self.normalize else outputs

    def distances(self, outputs) -> tf.Tensor:
        """`[b, b]` Euclidean distances (the square root's gradient stays finite at 0)."""
        outputs = _float32(outputs)
        squared = tf.reduce_sum(tf.square(outputs), axis=1)
        dot = tf.matmul(outputs, outputs, transpose_b=True)
        return tf.sqrt(tf.maximum(squared[:, None] - 2.0 * dot + squared[None, :], 1e-12))

    def scores(self, outputs):
        return -self.distances(outputs)

    def label_mask(self, labels):
        positives, negatives = _pair_masks(labels)
        return _float32(tf.logical_and(tf.reduce_any(positives, axis=1), tf.reduce_any(negatives, axis=1)))

    def per_example_loss(self, labels, outputs):
        positives, negatives = _pair_masks(labels)
        distances = self.distances(outputs)
        if self.mining == "hard":
            far = tf.fill(tf.shape(distances), 1e9)
            hardest_positive = tf.reduce_max(tf.where(positives, distances, tf.zeros_like(distances)), axis=1)
            hardest_negative = tf.reduce_min(tf.where(negatives, distances, far), axis=1)
            loss = tf.nn.relu(hardest_positive - hardest_negative + self.margin)
        else:
            triplets = _float32(tf.logical_and(positives[:, :, None], negatives[:, None, :]))
            margins = tf.nn.relu(distances[:, :, None] - distances[:, None, :] + self.margin)
            loss = tf.math.divide_no_nan(
                tf.reduce_sum(triplets * margins, axis=[1, 2]), tf.reduce_sum(triplets, axis=[1, 2])
            )
        return loss * self.label_mask(labels)
