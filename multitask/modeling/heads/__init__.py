"""Task heads: Keras layers that carry their task's default loss and metrics.

A head maps the shared representation to the task's outputs, and knows how to
score them, so a generic Task (`head_task.HeadTask`) needs no code per task.
The contract (`base.Head`), which a plugin head registered with
`registry.register_head` follows too:

- `call(representation, training=None)`: the outputs (optional ReLU Dense
  `hidden_sizes` with `dropout`, then an output Dense).
- `label_mask(labels)`: float32, 1 where an entry is labelled, 0 where not;
  the shape of `per_example_loss`.
- `per_example_loss(labels, outputs)`: float32 losses per labelled entry,
  finite (0) where unlabelled.
- `loss(labels, outputs)`: the scalar loss; the mean over the labelled entries
  of the global batch (`partial_labels.masked_mean`). A batch without labels
  gives 0.
- `loss_count(labels)`: the weight of this replica's `loss` in the logged loss
  means, `global labelled count / num_replicas` (`partial_labels.loss_count`),
  so that they are means over every labelled entry of an evaluation or loop.
  Inherited; a head whose `loss` is not `masked_mean` overrides it.
- `build_metrics()`: fresh Keras metrics; `update_metrics(metrics, labels,
  outputs)` updates them with unlabelled entries weighted 0.

How a missing label is written (`label_mask`):

| head (module) | labels | missing |
|---|---|---|
| classification | int class ids `[b]` | -1 (any negative id) |
| sequence_labeling | int class ids `[b, T]` | -1 (padding, unlabelled tokens) |
| binary | 0/1 `[b]` or `[b, 1]` | -1 or NaN |
| multilabel | 0/1 `[b, L]` | -1 or NaN, per label |
| regression | float `[b]` or `[b, units]` | NaN, per unit |
| contrastive, ranking | int ids `[b]`: same id = positive pair | -1 |

Losses are computed in float32, also under a mixed-precision policy. Shared
parts: `base` (`Head`), `labels` (reading labels and their masks),
`embedding` (the base of contrastive and ranking, which pair each
replica's examples with the whole global batch).

Importing this package imports every module in it, which registers their
heads: a new head is a new module here (and its test), nothing else. The
names below are re-exported so that `heads.ClassificationHead` and the like
keep working; a new head needs no line here.
"""
from multitask import registry as _registry
from multitask.modeling.heads.base import Head
from multitask.modeling.heads.binary import BinaryHead
from multitask.modeling.heads.classification import ClassificationHead
from multitask.modeling.heads.contrastive import ContrastiveHead
from multitask.modeling.heads.multilabel import MultiLabelHead
from multitask.modeling.heads.ranking import MINING
from multitask.modeling.heads.ranking import RankingHead
from multitask.modeling.heads.regression import REGRESSION_LOSSES
from multitask.modeling.heads.regression import RegressionHead
from multitask.modeling.heads.sequence_labeling import SequenceLabelingHead

_registry.import_submodules(__name__, __path__)
