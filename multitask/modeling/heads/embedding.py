"""`EmbeddingHead`, the base of the embedding heads, and the pairs they score.

The pairs span the global batch: each replica's examples are the anchors, and
every example of the batch, on any replica, is a candidate positive or
negative (the embeddings are gathered across replicas), so the loss and its
gradients do not depend on how the batch is split over replicas.
"""
from typing import Tuple

import keras
import tensorflow as tf

from multitask.modeling import partial_labels
from multitask.modeling.heads import base
from multitask.modeling.heads import labels as labels_lib


def _replica_context():
    """The replica context when several replicas are in sync, else None."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def gather_batch(values) -> tf.Tensor:
    """`values` [b, ...] of every replica, in replica order along axis 0: the global batch's.

    Differentiable: the gradient of each replica's slice sums what every
    replica's loss sends back to it (`ReplicaContext.all_gather`). Without
    several replicas, `values` itself.
    """
    context = _replica_context()
    return values if context is None else context.all_gather(values, axis=0)


def pair_masks(labels) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(positive pairs [b, B], negative pairs [b, B])` of this replica's `b` ids against the global batch's `B`.

    Pairs join two different labelled examples; positive ones share an id.
    The columns are in the order of `gather_batch`.
    """
    ids = tf.cast(labels_lib.squeeze_last(labels, 1), tf.int32)
    context = _replica_context()
    if context is None:
        all_ids, first = ids, 0
    else:
        # Each id travels with its replica's number, which locates this replica's rows.
        replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
        owned = gather_batch(tf.stack([ids, tf.fill(tf.shape(ids), replica)], axis=1))
        all_ids = owned[:, 0]
        first = tf.reduce_sum(tf.cast(owned[:, 1] < replica, tf.int32))
    same_example = tf.equal(tf.range(tf.shape(ids)[0])[:, None] + first, tf.range(tf.shape(all_ids)[0])[None, :])
    valid = tf.logical_and((ids >= 0)[:, None], (all_ids >= 0)[None, :])
    others = tf.logical_and(valid, tf.logical_not(same_example))
    same = tf.equal(ids[:, None], all_ids[None, :])
    return tf.logical_and(others, same), tf.logical_and(others, tf.logical_not(same))


def recall_at_1(scores, positives, others):
    """1.0 where an anchor's highest-scoring other labelled example is a positive.

    Args:
      scores: `[b, B]`, higher = closer.
      positives: `[b, B]` positive pairs.
      others: `[b, B]` pairs of two different labelled examples.
    """
    masked = tf.where(others, scores, tf.fill(tf.shape(scores), -1e9))
    nearest = tf.argmax(masked, axis=1, output_type=tf.int32)
    return labels_lib.float32(tf.gather(positives, nearest, axis=1, batch_dims=1))


class EmbeddingHead(base.Head):
    """An embedding of `embedding_size`, scored in pairs over the global batch; metric "recall_at_1".

    Subclasses implement `scores`, `anchor_mask` and `anchor_losses`; the
    loss, its mask and the metric pair this replica's examples (the anchors)
    with the whole global batch (the candidates).
    """

    def __init__(self, embedding_size: int = 32, **kwargs):
        self.embedding_size = int(embedding_size)
        super().__init__(self.embedding_size, **kwargs)

    def get_config(self):
        return dict(super().get_config(), embedding_size=self.embedding_size)

    def scores(self, anchors, candidates) -> tf.Tensor:
        """`[b, B]` closeness of float32 embeddings `[b, e]` and `[B, e]`, higher = closer."""
        raise NotImplementedError

    def anchor_mask(self, positives, negatives) -> tf.Tensor:
        """float32 `[b]`: 1 where an anchor has the pairs its loss needs."""
        raise NotImplementedError

    def anchor_losses(self, positives, negatives, anchors, candidates) -> tf.Tensor:
        """float32 `[b]` losses of the anchors (finite everywhere; masked by the caller)."""
        raise NotImplementedError

    def label_mask(self, labels):
        return self.anchor_mask(*pair_masks(labels))

    def per_example_loss(self, labels, outputs):
        return self._masked_losses(labels, outputs)[0]

    def loss(self, labels, outputs):
        """Mean of the anchors' losses over the global batch's anchors (0 if none)."""
        return partial_labels.masked_mean(*self._masked_losses(labels, outputs))

    def _masked_losses(self, labels, outputs):
        positives, negatives = pair_masks(labels)
        mask = self.anchor_mask(positives, negatives)
        anchors = labels_lib.float32(outputs)
        return self.anchor_losses(positives, negatives, anchors, gather_batch(anchors)) * mask, mask

    def build_metrics(self):
        return [keras.metrics.Mean(name="recall_at_1")]

    def update_metrics(self, metrics, labels, outputs):
        positives, negatives = pair_masks(labels)
        anchors = labels_lib.float32(outputs)
        hits = recall_at_1(self.scores(anchors, gather_batch(anchors)), positives,
                           tf.logical_or(positives, negatives))
        weight = labels_lib.float32(tf.reduce_any(positives, axis=1))
        for metric in metrics:
            metric.update_state(hits, sample_weight=weight)
