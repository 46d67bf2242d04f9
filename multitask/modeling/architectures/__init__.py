"""Registered multi-task architectures over an encoder, one module each.

An architecture (`base.Architecture`) splits the network into a *shared
part* (run once per step for all tasks: `shared(features)`) and one *branch*
per task (`branch(task, shared_output)`, followed by the task's head). The
split follows what each task's output actually depends on, so a task's
sub-model holds exactly the variables it uses:

| type | shared part | branch of task t |
|---|---|---|
| `hard_sharing` | encoder | nothing (identity) |
| `cross_stitch` (Misra et al., 2016) | one encoder column per task and a T x T cross-stitch unit after every stage (columns feed every task through the units) | its column's output |
| `mmoe` (Ma et al., 2018) | encoder, `num_experts` experts | its softmax gate over the experts |
| `dselect_k` (Hazimeh et al., 2021) | encoder, `num_experts` experts | its DSelect-k gate (k differentiable selectors) |
| `cgc` (Tang et al., 2020) | encoder, shared experts | its own experts and its gate over them and the shared experts |
| `ple` (Tang et al., 2020) | encoder, all experts of the inner levels, the shared gates and the task gates below the last inner level, the last level's shared experts | its gate of the last inner level, its experts and gate of the last level |
| `mtan` (Liu et al., 2019) | encoder (its stage outputs) | its attention module per stage; the block layers f between stages are one set shared by all tasks (as in the paper) |

Gated architectures give each task its own representation. Experts are MLPs
(`expert_units`, ReLU by default) on the flattened encoder output; gates read
the flattened encoder output (the input of their level for `ple`); they are
built in `experts`.

A builder registered with `registry.register_architecture(name)` is called as
`builder(encoder_factory=..., task_names=..., inputs=..., **config)`:
`encoder_factory()` returns a new encoder (cross_stitch builds one per task),
`inputs` is the Keras input structure (for architectures whose layers depend
on the encoder's feature shapes), and the other keys come from the
`architecture:` config block. It returns an `Architecture`.

Importing this package imports every module in it, which registers their
architectures: a new architecture is a new module here (and its test),
nothing else. The names below are re-exported so that
`architectures.MMoE` and the like keep working; a new one needs no line here.
"""
from multitask import registry as _registry
from multitask.modeling.architectures.base import RESERVED_ARGUMENTS
from multitask.modeling.architectures.base import Architecture
from multitask.modeling.architectures.base import EncoderFactory
from multitask.modeling.architectures.base import Part
from multitask.modeling.architectures.cgc import cgc
from multitask.modeling.architectures.cross_stitch import CrossStitch
from multitask.modeling.architectures.cross_stitch import CrossStitchUnit
from multitask.modeling.architectures.dselect_k import DSelectK
from multitask.modeling.architectures.dselect_k import DSelectKGate
from multitask.modeling.architectures.dselect_k import smooth_step
from multitask.modeling.architectures.hard_sharing import HardSharing
from multitask.modeling.architectures.mmoe import MMoE
from multitask.modeling.architectures.mtan import MTAN
from multitask.modeling.architectures.ple import PLE

_registry.import_submodules(__name__, __path__)
