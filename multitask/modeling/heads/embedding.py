"""`EmbeddingHead`, the base of the embedding heads, and the in-batch pairs they score."""
import keras
import tensorflow as tf

from multitask.modeling.heads import base
from multitask.modeling.heads import labels as labels_lib


def pair_masks(labels):
    """`(positive pairs [b, b], negative pairs [b, b])` of id labels.

    Pairs join two different labelled examples; positive ones share an id.
    """
    ids = tf.cast(labels_lib.squeeze_last(labels, 1), tf.int32)
    valid = ids >= 0
    both = tf.logical_and(valid[:, None], valid[None, :])
    others = tf.logical_and(both, tf.logical_not(tf.eye(tf.shape(ids)[0], dtype=tf.bool)))
    same = tf.equal(ids[:, None], ids[None, :])
    return tf.logical_and(others, same), tf.logical_and(others, tf.logical_not(same))


def recall_at_1(scores, positives, others):
    """1.0 where an anchor's highest-scoring other labelled example is a positive.

    Args:
      scores: `[b, b]`, higher = closer.
      positives: `[b, b]` positive pairs.
      others: `[b, b]` pairs of two different labelled examples.
    """
    masked = tf.where(others, scores, tf.fill(tf.shape(scores), -1e9))
    nearest = tf.argmax(masked, axis=1, output_type=tf.int32)
    return labels_lib.float32(tf.gather(positives, nearest, axis=1, batch_dims=1))


class EmbeddingHead(base.Head):
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
        positives, negatives = pair_masks(labels)
        hits = recall_at_1(self.scores(outputs), positives, tf.logical_or(positives, negatives))
        weight = labels_lib.float32(tf.reduce_any(positives, axis=1))
        for metric in metrics:
            metric.update_state(hits, sample_weight=weight)
