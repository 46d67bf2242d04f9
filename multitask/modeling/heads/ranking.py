"""The `ranking` head: triplet margin loss, batch-hard or batch-all."""
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling.heads import embedding
from multitask.modeling.heads import labels as labels_lib

MINING = ("hard", "all")


@registry.register_head("ranking")
class RankingHead(embedding.EmbeddingHead):
    """Metric learning with the triplet margin loss.

    Outputs embeddings `[b, embedding_size]` (L2-normalised when `normalize`).
    Labels are ids `[b]` (same id = similar, -1 = unlabelled). With Euclidean
    distances d, an anchor a, positives p and negatives n of the batch:

    - mining "hard" (batch-hard): `max(0, max_p d(a, p) - min_n d(a, n) + margin)`;
    - mining "all": the mean over all (p, n) of `max(0, d(a, p) - d(a, n) + margin)`.

    Anchors need a positive and a negative in the batch, the global one under a
    distribution strategy (`embedding.gather_batch`: each replica's anchors
    meet every replica's examples). Metric: "recall_at_1"
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

    def distances(self, anchors, candidates) -> tf.Tensor:
        """`[b, B]` Euclidean distances (the square root's gradient stays finite at 0)."""
        dot = tf.matmul(anchors, candidates, transpose_b=True)
        squared = tf.reduce_sum(tf.square(anchors), axis=1)[:, None] + tf.reduce_sum(tf.square(candidates), axis=1)
        return tf.sqrt(tf.maximum(squared - 2.0 * dot, 1e-12))

    def scores(self, anchors, candidates):
        return -self.distances(anchors, candidates)

    def anchor_mask(self, positives, negatives):
        return labels_lib.float32(tf.logical_and(tf.reduce_any(positives, axis=1), tf.reduce_any(negatives, axis=1)))

    def anchor_losses(self, positives, negatives, anchors, candidates):
        distances = self.distances(anchors, candidates)
        if self.mining == "hard":
            far = tf.fill(tf.shape(distances), 1e9)
            hardest_positive = tf.reduce_max(tf.where(positives, distances, tf.zeros_like(distances)), axis=1)
            hardest_negative = tf.reduce_min(tf.where(negatives, distances, far), axis=1)
            return tf.nn.relu(hardest_positive - hardest_negative + self.margin)
        triplets = labels_lib.float32(tf.logical_and(positives[:, :, None], negatives[:, None, :]))
        margins = tf.nn.relu(distances[:, :, None] - distances[:, None, :] + self.margin)
        return tf.math.divide_no_nan(tf.reduce_sum(triplets * margins, axis=[1, 2]),
                                     tf.reduce_sum(triplets, axis=[1, 2]))
