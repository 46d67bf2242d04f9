"""The `contrastive` head: NT-Xent / InfoNCE over the batch's same-id pairs."""
import tensorflow as tf

from multitask.modeling import registry
from multitask.modeling.heads import embedding
from multitask.modeling.heads import labels as labels_lib


@registry.register_head("contrastive")
class ContrastiveHead(embedding.EmbeddingHead):
    """Contrastive learning with the NT-Xent / InfoNCE loss at a `temperature`.

    Outputs L2-normalised embeddings `[b, embedding_size]` (the projection
    head: `hidden_sizes`, then a linear layer). Labels are ids `[b]`: examples
    with the same id are positives (two augmented views of one instance give
    SimCLR's NT-Xent; class ids give supervised contrastive learning), -1 is
    unlabelled and takes no part. For an anchor i with positives P(i),

        loss_i = -mean_{p in P(i)} log(exp(s_ip / t) / sum_{a != i} exp(s_ia / t)),

    with s the cosine similarity over labelled examples. Anchors without a
    positive in the batch are left out. The batch is the global one: under a
    distribution strategy each replica's anchors meet every example of every
    replica (`embedding.gather_batch`), so the loss does not change with the
    number of replicas. Metric: "recall_at_1" (the most similar other
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

    def scores(self, anchors, candidates):
        return tf.matmul(anchors, candidates, transpose_b=True)

    def anchor_mask(self, positives, negatives):
        del negatives
        return labels_lib.float32(tf.reduce_any(positives, axis=1))

    def anchor_losses(self, positives, negatives, anchors, candidates):
        others = tf.logical_or(positives, negatives)
        logits = self.scores(anchors, candidates) / self.temperature
        # A large finite value, not -inf: rows without any other example stay finite.
        denominator = tf.reduce_logsumexp(tf.where(others, logits, tf.fill(tf.shape(logits), -1e9)), axis=1)
        log_prob = logits - denominator[:, None]
        positives = labels_lib.float32(positives)
        count = tf.reduce_sum(positives, axis=1)
        return -tf.math.divide_no_nan(tf.reduce_sum(positives * log_prob, axis=1), count)
