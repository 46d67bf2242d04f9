"""Registered multi-task architectures over an encoder.

An architecture splits the network into a *shared part* (run once per step
for all tasks: `shared(features)`) and one *branch* per task (`branch(task,
shared_output)`, followed by the task's head). The split follows what each
task's output actually depends on, so a task's sub-model holds exactly the
variables it uses:

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
the flattened encoder output (the input of their level for `ple`).

A builder registered with `registry.register_architecture(name)` is called as
`builder(encoder_factory=..., task_names=..., inputs=..., **config)`:
`encoder_factory()` returns a new encoder (cross_stitch builds one per task),
`inputs` is the Keras input structure (for architectures whose layers depend
on the encoder's feature shapes), and the other keys come from the
`architecture:` config block. It returns an `Architecture`.
"""
import abc
import math
from typing import Callable, List, Sequence

import keras
import numpy as np
import tensorflow as tf

from multitask.modeling import encoders as encoders_lib
from multitask.modeling import registry
from multitask.modeling import tracking

EncoderFactory = Callable[[], keras.layers.Layer]
# Arguments the model passes to every architecture builder; not config keys.
RESERVED_ARGUMENTS = ("encoder_factory", "task_names", "inputs")


class Part(tracking.CheckpointableLayer):
    """A keras layer running one part of an architecture; it tracks exactly `layers`."""

    def __init__(self, fn: Callable, layers: Sequence[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self._fn = fn
        self.parts = list(layers)

    def build(self, input_shape):
        # The parts build on the first call, which the model makes on its Keras inputs.
        self.built = True

    def call(self, inputs, training=None):
        return self._fn(inputs, training=training)


class Architecture(abc.ABC):
    """The shared part and the per-task branches of a multi-task network.

    Subclasses create their layers in `__init__` and implement `shared`,
    `branch`, `shared_layers` and `branch_layers`.

    Attributes:
      supports_rep_grad: Whether every variable used by several tasks lies in
        the shared part (so gradients with respect to the shared output reach
        all of them).
    """

    supports_rep_grad = True

    def __init__(self, task_names: Sequence[str]):
        if not task_names:
            raise ValueError("An architecture needs at least one task name.")
        self.task_names = tuple(task_names)
        self._shared_part = None
        self._branch_parts = {}

    @property
    def encoders(self) -> List[keras.layers.Layer]:
        """The encoder objects (one, or one column per task)."""
        return [self.encoder]

    @abc.abstractmethod
    def shared_layers(self) -> List[keras.layers.Layer]:
        """The layers the shared part uses."""

    @abc.abstractmethod
    def branch_layers(self, task: str) -> List[keras.layers.Layer]:
        """The layers task `task`'s branch uses."""

    @abc.abstractmethod
    def shared(self, features, training=None):
        """The shared output: a tensor, or a nest (dict, tuple) of tensors."""

    @abc.abstractmethod
    def branch(self, task: str, shared, training=None):
        """Task `task`'s representation from the shared output."""

    def shared_part(self) -> Part:
        """The shared part as one keras layer (the same object on every call)."""
        if self._shared_part is None:
            self._shared_part = Part(self.shared, self.shared_layers(), name="shared")
        return self._shared_part

    def branch_part(self, task: str) -> Part:
        """Task `task`'s branch as one keras layer (the same object on every call)."""
        if task not in self._branch_parts:
            if task not in self.task_names:
                raise KeyError(f"Unknown task {task!r}; tasks: {', '.join(self.task_names)}.")
            self._branch_parts[task] = Part(
                lambda shared, training=None: self.branch(task, shared, training=training),
                self.branch_layers(task), name=f"{task}_branch")
        return self._branch_parts[task]


def _expert(units: Sequence[int], activation: str, name: str) -> keras.Sequential:
    if not units or any(int(u) <= 0 for u in units):
        raise ValueError(f"expert_units is {units!r}; it needs one or more positive sizes.")
    return keras.Sequential([keras.layers.Flatten()] + [keras.layers.Dense(int(u), activation=activation)
                                                        for u in units], name=name)


def _softmax_gate(num_experts: int, name: str) -> keras.Sequential:
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(num_experts, activation="softmax")],
                            name=name)


def _positive(field: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{field} is {value!r}; it must be an integer >= {minimum}.")
    return int(value)


def _stack(experts, x, training):
    return keras.ops.stack([expert(x, training=training) for expert in experts], axis=1)


def _mix(weights, experts):
    """`sum_e weights[b, e] * experts[b, e, :]`."""
    return keras.ops.einsum("be,bed->bd", keras.ops.cast(weights, experts.dtype), experts)


@registry.register_architecture("hard_sharing")
class HardSharing(Architecture):
    """Hard parameter sharing: one encoder, every task's head on its output."""

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None):
        super().__init__(task_names)
        self.encoder = encoder_factory()

    def shared_layers(self):
        return [self.encoder]

    def branch_layers(self, task):
        return []

    def shared(self, features, training=None):
        return self.encoder(features, training=training)

    def branch(self, task, shared, training=None):
        return shared


class CrossStitchUnit(keras.layers.Layer):
    """Mixes the T task columns: `out_t = sum_u alpha[t, u] * in_u` (one T x T matrix).

    Initialised near identity as in Misra et al.: `alpha_same` on the
    diagonal and `(1 - alpha_same) / (T - 1)` elsewhere, so rows sum to 1.
    """

    def __init__(self, num_tasks: int, alpha_same: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        different = (1.0 - alpha_same) / (num_tasks - 1) if num_tasks > 1 else 0.0
        init = np.full((num_tasks, num_tasks), different, np.float32)
        np.fill_diagonal(init, 1.0 if num_tasks == 1 else alpha_same)
        self.alpha = self.add_weight(name="alpha", shape=(num_tasks, num_tasks),
                                     initializer=keras.initializers.Constant(init))

    def call(self, columns):
        stacked = keras.ops.stack(columns, axis=0)  # [T, b, ...]
        mixed = keras.ops.tensordot(keras.ops.cast(self.alpha, stacked.dtype), stacked, axes=1)
        return [mixed[i] for i in range(len(columns))]


@registry.register_architecture("cross_stitch")
class CrossStitch(Architecture):
    """Cross-stitch networks: one encoder column per task, mixed after every stage."""

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None,
                 alpha_same: float = 0.9):
        """Builds one column per task and one cross-stitch unit per encoder stage.

        Args:
          encoder_factory: Returns a new encoder; called once per task.
          task_names: The tasks.
          inputs: Unused.
          alpha_same: Initial weight of a column's own input (in (0, 1]).
        """
        super().__init__(task_names)
        if not 0.0 < alpha_same <= 1.0:
            raise ValueError(f"alpha_same is {alpha_same!r}; it must be in (0, 1].")
        self.columns = {task: encoder_factory() for task in self.task_names}
        stages = {task: encoders_lib.encoder_stages(column) for task, column in self.columns.items()}
        counts = {len(s) for s in stages.values()}
        if len(counts) != 1:
            raise ValueError(f"cross_stitch: the encoder columns have different stage counts {sorted(counts)}.")
        self._stages = stages
        self.units = [CrossStitchUnit(len(self.task_names), alpha_same, name=f"cross_stitch_{i}")
                      for i in range(counts.pop())]

    @property
    def encoders(self):
        return list(self.columns.values())

    def shared_layers(self):
        return list(self.columns.values()) + list(self.units)

    def branch_layers(self, task):
        return []

    def shared(self, features, training=None):
        xs = [features] * len(self.task_names)
        for index, unit in enumerate(self.units):
            xs = [self._stages[task][index](x, training=training) for task, x in zip(self.task_names, xs)]
            xs = unit(xs)
        return keras.ops.stack(xs, axis=1)  # [b, T, ...]

    def branch(self, task, shared, training=None):
        return shared[:, self.task_names.index(task)]


@registry.register_architecture("mmoe")
class MMoE(Architecture):
    """Multi-gate mixture of experts: shared experts, one softmax gate per task."""

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_experts: int = 4, expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and the gates.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_experts: Shared experts.
          expert_units: Hidden sizes of each expert MLP (the last is its output width).
          expert_activation: Activation of the experts' layers.
        """
        super().__init__(task_names)
        self.num_experts = _positive("num_experts", num_experts)
        self.encoder = encoder_factory()
        self.experts = [_expert(expert_units, expert_activation, f"expert_{i}") for i in range(self.num_experts)]
        self.gates = {task: self._gate(task) for task in self.task_names}

    def _gate(self, task: str) -> keras.layers.Layer:
        return _softmax_gate(self.num_experts, f"{task}_gate")

    def shared_layers(self):
        return [self.encoder] + self.experts

    def branch_layers(self, task):
        return [self.gates[task]]

    def shared(self, features, training=None):
        encoded = self.encoder(features, training=training)
        return {"encoded": encoded, "experts": _stack(self.experts, encoded, training)}

    def branch(self, task, shared, training=None):
        weights = self.gates[task](shared["encoded"], training=training)
        return _mix(weights, shared["experts"])


def smooth_step(x, gamma: float):
    """The cubic smooth-step of Hazimeh et al.: 0 below -gamma/2, 1 above gamma/2."""
    cubic = -2.0 / gamma**3 * x**3 + 3.0 / (2.0 * gamma) * x + 0.5
    return tf.where(x <= -gamma / 2, tf.zeros_like(x), tf.where(x >= gamma / 2, tf.ones_like(x), cubic))


class DSelectKGate(keras.layers.Layer):
    """Per-example DSelect-k gate (Hazimeh et al., 2021) over `num_experts` experts.

    `k` single-expert selectors each read `m = ceil(log2(num_experts))`
    smooth-step bits `S(z)` (z from a Dense layer of the input) and give
    expert e the weight `prod_j (S(z_j) if bit j of e is 1 else 1 - S(z_j))`;
    the selectors are mixed by a softmax of k logits (another Dense layer).
    In training it adds, as layer losses, `entropy_reg` times the selectors'
    entropy (pushes them to one expert each) and, when `num_experts` is not a
    power of 2, the sum over selectors of 1 / (their weight on existing
    experts); both are averaged over the batch rather than summed, so they do
    not grow with the batch size.
    """

    def __init__(self, num_experts: int, k: int, gamma: float = 1.0, entropy_reg: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts, self.k, self.gamma, self.entropy_reg = num_experts, k, gamma, entropy_reg
        self.num_bits = max(1, math.ceil(math.log2(num_experts)))
        codes = [[(e >> (self.num_bits - 1 - j)) & 1 for j in range(self.num_bits)] for e in range(num_experts)]
        self._codes = np.array(codes, bool)  # [n, m]
        small = keras.initializers.RandomUniform(-gamma / 100, gamma / 100)
        self.z_logits = keras.layers.Dense(k * self.num_bits, kernel_initializer=small, bias_initializer=small)
        self.w_logits = keras.layers.Dense(k, kernel_initializer=keras.initializers.RandomUniform(),
                                           bias_initializer=keras.initializers.RandomUniform())

    def call(self, inputs, training=None):
        x = encoders_lib.flatten_features(inputs)
        z = keras.ops.reshape(self.z_logits(x), (-1, self.k, 1, self.num_bits))
        bits = smooth_step(z, self.gamma)  # [b, k, 1, m]
        selectors = tf.reduce_prod(tf.where(self._codes[None, None], bits, 1.0 - bits), axis=-1)  # [b, k, n]
        selector_weights = keras.ops.softmax(self.w_logits(x), axis=-1)[..., None]  # [b, k, 1]
        if training:
            per_example = 0.0
            if self.entropy_reg:
                entropy = -tf.reduce_sum(selectors * tf.math.log(selectors + 1e-6), axis=[1, 2])
                per_example += self.entropy_reg * entropy
            if self.num_experts != 2**self.num_bits:
                per_example += tf.reduce_sum(1.0 / tf.reduce_sum(selectors, axis=-1), axis=1)
            if self.entropy_reg or self.num_experts != 2**self.num_bits:
                self.add_loss(tf.reduce_mean(per_example))
        return tf.reduce_sum(selector_weights * selectors, axis=1)  # [b, n]


@registry.register_architecture("dselect_k")
class DSelectK(MMoE):
    """MMoE with DSelect-k gates: each task mixes at most k of the shared experts."""

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_experts: int = 4, k: int = 2, gamma: float = 1.0, entropy_reg: float = 0.0,
                 expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and one DSelect-k gate per task.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_experts: Shared experts.
          k: Selectors per gate (the most experts a task mixes).
          gamma: Width of the smooth-step's cubic region.
          entropy_reg: Weight of the selectors' entropy penalty (0 for none).
          expert_units: Hidden sizes of each expert MLP.
          expert_activation: Activation of the experts' layers.
        """
        self.k = _positive("k", k)
        if gamma <= 0:
            raise ValueError(f"gamma is {gamma!r}; it must be positive.")
        self.gamma, self.entropy_reg = float(gamma), float(entropy_reg)
        super().__init__(encoder_factory, task_names, inputs, num_experts, expert_units, expert_activation)

    def _gate(self, task):
        return DSelectKGate(self.num_experts, self.k, self.gamma, self.entropy_reg, name=f"{task}_gate")


@registry.register_architecture("ple")
class PLE(Architecture):
    """Progressive layered extraction: stacked CGC levels, shared gates at inner levels.

    Level l has `num_task_experts` experts per task and `num_shared_experts`
    shared ones. Task t's gate mixes its own and the shared experts and feeds
    task t's experts and gate at the next level; at inner levels a shared gate
    mixes all experts and feeds the next level's shared experts and shared
    gate. The first level reads the encoder output. One level is CGC.
    """

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None,
                 num_levels: int = 2, num_shared_experts: int = 2, num_task_experts: int = 1,
                 expert_units: Sequence[int] = (32,), expert_activation: str = "relu"):
        """Builds the encoder, the experts and the gates of every level.

        Args:
          encoder_factory: Returns the encoder.
          task_names: The tasks.
          inputs: Unused.
          num_levels: Extraction levels (1 is CGC).
          num_shared_experts: Shared experts per level.
          num_task_experts: Experts per task per level.
          expert_units: Hidden sizes of each expert MLP.
          expert_activation: Activation of the experts' layers.
        """
        super().__init__(task_names)
        self.num_levels = _positive("num_levels", num_levels)
        self.num_shared = _positive("num_shared_experts", num_shared_experts)
        self.num_task = _positive("num_task_experts", num_task_experts)
        self.encoder = encoder_factory()
        n_tasks = len(self.task_names)
        self.task_experts, self.shared_experts, self.task_gates, self.shared_gates = [], [], [], []
        for level in range(self.num_levels):
            self.task_experts.append({
                task: [_expert(expert_units, expert_activation, f"l{level}_{task}_expert_{i}")
                       for i in range(self.num_task)] for task in self.task_names})
            self.shared_experts.append([_expert(expert_units, expert_activation, f"l{level}_shared_expert_{i}")
                                        for i in range(self.num_shared)])
            self.task_gates.append({task: _softmax_gate(self.num_task + self.num_shared, f"l{level}_{task}_gate")
                                    for task in self.task_names})
            if level < self.num_levels - 1:
                self.shared_gates.append(_softmax_gate(n_tasks * self.num_task + self.num_shared,
                                                       f"l{level}_shared_gate"))

    def _gates_below(self, last: int):
        """Task gates of levels before `last` (they feed other levels' shared gates)."""
        return [gate for level in range(last) for gate in self.task_gates[level].values()]

    def shared_layers(self):
        final = self.num_levels - 1
        layers = [self.encoder]
        for level in range(final):
            layers += [e for experts in self.task_experts[level].values() for e in experts]
            layers += self.shared_experts[level] + [self.shared_gates[level]]
        return layers + self._gates_below(final - 1) + self.shared_experts[final]

    def branch_layers(self, task):
        final = self.num_levels - 1
        layers = [self.task_gates[final - 1][task]] if final > 0 else []
        return layers + self.task_experts[final][task] + [self.task_gates[final][task]]

    def shared(self, features, training=None):
        encoded = self.encoder(features, training=training)
        final = self.num_levels - 1
        task_inputs = {task: encoded for task in self.task_names}
        shared_input = encoded
        result = {}
        for level in range(final):
            own = {task: _stack(self.task_experts[level][task], task_inputs[task], training)
                   for task in self.task_names}
            common = _stack(self.shared_experts[level], shared_input, training)
            if level == final - 1:
                # The task gates of this level feed only their own task: they run in the branches.
                result["gate_inputs"] = (encoded if level == 0 else
                                         keras.ops.stack([task_inputs[t] for t in self.task_names], axis=1))
                result["experts"] = keras.ops.concatenate([own[t] for t in self.task_names] + [common], axis=1)
            else:
                task_inputs = {
                    task: _mix(self.task_gates[level][task](task_inputs[task], training=training),
                               keras.ops.concatenate([own[task], common], axis=1))
                    for task in self.task_names}
            everything = keras.ops.concatenate([own[t] for t in self.task_names] + [common], axis=1)
            shared_input = _mix(self.shared_gates[level](shared_input, training=training), everything)
        if final == 0:
            result["gate_inputs"] = encoded
        result["shared_experts"] = _stack(self.shared_experts[final], shared_input, training)
        return result

    def branch(self, task, shared, training=None):
        final = self.num_levels - 1
        index = self.task_names.index(task)
        x = shared["gate_inputs"]
        if final > 0:
            if final > 1:
                x = x[:, index]
            experts = shared["experts"]
            own = experts[:, index * self.num_task:(index + 1) * self.num_task]
            common = experts[:, len(self.task_names) * self.num_task:]
            x = _mix(self.task_gates[final - 1][task](x, training=training),
                     keras.ops.concatenate([own, common], axis=1))
        own = _stack(self.task_experts[final][task], x, training)
        weights = self.task_gates[final][task](x, training=training)
        return _mix(weights, keras.ops.concatenate([own, shared["shared_experts"]], axis=1))


@registry.register_architecture("cgc")
def cgc(encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None, num_shared_experts: int = 2,
        num_task_experts: int = 1, expert_units: Sequence[int] = (32,), expert_activation: str = "relu") -> PLE:
    """Customized gate control: shared experts, experts per task, one gate per task (PLE with one level)."""
    return PLE(encoder_factory, task_names, inputs, num_levels=1, num_shared_experts=num_shared_experts,
               num_task_experts=num_task_experts, expert_units=expert_units, expert_activation=expert_activation)


def _rank(shape, stage: int) -> int:
    if len(shape) not in (2, 4):
        raise ValueError(f"mtan: stage {stage} outputs shape {tuple(shape)}; it attends to outputs of rank 2 "
                         "[b, d] or 4 [b, height, width, channels].")
    return len(shape)


def _attention_module(shape, name: str) -> keras.Sequential:
    """g: [1x1 conv, BN, ReLU], [1x1 conv, BN, sigmoid] (Dense layers on vectors): a mask shaped like `shape`."""
    width = int(shape[-1])
    if len(shape) == 4:
        layers = [keras.layers.Conv2D(width, 1), keras.layers.BatchNormalization(), keras.layers.ReLU(),
                  keras.layers.Conv2D(width, 1), keras.layers.BatchNormalization(),
                  keras.layers.Activation("sigmoid")]
    else:
        layers = [keras.layers.Dense(width, activation="relu"), keras.layers.Dense(width, activation="sigmoid")]
    return keras.Sequential(layers, name=name)


def _block_layer(source, target, name: str) -> keras.Sequential:
    """f: maps an attended stage-s feature to the shape of stage s + 1's output."""
    width = int(target[-1])
    if len(source) == 4 and len(target) == 4:
        layers = [keras.layers.Conv2D(width, 3, padding="same"), keras.layers.BatchNormalization(),
                  keras.layers.ReLU()]
        pool = (max(1, round(source[1] / target[1])), max(1, round(source[2] / target[2])))
        if pool != (1, 1):
            layers.append(keras.layers.MaxPooling2D(pool, padding="same"))
    elif len(target) == 2:
        layers = ([keras.layers.Flatten()] if len(source) == 4 else []) + [
            keras.layers.Dense(width, activation="relu")]
    else:
        raise ValueError(f"mtan: cannot map a stage output of rank {len(source)} to one of rank {len(target)}.")
    return keras.Sequential(layers, name=name)


@registry.register_architecture("mtan")
class MTAN(Architecture):
    """Multi-task attention network: per-task soft attention over every encoder stage.

    For stage s with output p_s, task t's attention module gives a mask
    `a = g_t,s([p_s, f_{s-1}(x_{s-1})])` (just `g_t,0(p_0)` at the first
    stage) and its attended feature `x_s = a * p_s`; the task's
    representation is the last x. The g are task-specific; the block layers f
    (3x3 conv + BN + ReLU and pooling, or Dense, to the next stage's shape)
    are shared by all tasks, as in Liu et al.'s code. The paper reads the mask
    from a block's intermediate feature; here each stage exposes one output,
    which serves both roles.

    Because the shared f run in every task's branch, gradients with respect to
    the shared output do not reach them: `supports_rep_grad` is False.
    """

    supports_rep_grad = False

    def __init__(self, encoder_factory: EncoderFactory, task_names: Sequence[str], inputs=None):
        """Builds the encoder, the attention modules and the block layers.

        Args:
          encoder_factory: Returns the encoder (see `encoders_lib.encoder_stages`).
          task_names: The tasks.
          inputs: The Keras input structure; the modules are sized by the
            encoder's stage outputs on it.

        Raises:
          ValueError: No `inputs`, or stage outputs of unsupported ranks.
        """
        super().__init__(task_names)
        if inputs is None:
            raise ValueError("mtan needs the model inputs to size its attention modules; set the model's input_shape.")
        self.encoder = encoder_factory()
        shapes = [tuple(x.shape) for x in encoders_lib.stage_outputs(self.encoder, inputs)]
        for stage, shape in enumerate(shapes):
            _rank(shape, stage)
        self.attention = {task: [_attention_module(shape, f"{task}_attention_{s}") for s, shape in enumerate(shapes)]
                          for task in self.task_names}
        self.blocks = [_block_layer(shapes[s], shapes[s + 1], f"block_{s}") for s in range(len(shapes) - 1)]
        for stage, layer in enumerate(self.blocks):
            mapped = tuple(layer.compute_output_shape(shapes[stage]))
            if mapped[1:] != shapes[stage + 1][1:]:
                raise ValueError(f"mtan: stage {stage}'s output {shapes[stage]} maps to {mapped}, not to stage "
                                 f"{stage + 1}'s {shapes[stage + 1]}; use stages whose sizes shrink by whole factors.")

    def shared_layers(self):
        return [self.encoder]

    def branch_layers(self, task):
        return self.attention[task] + self.blocks

    def shared(self, features, training=None):
        return tuple(encoders_lib.stage_outputs(self.encoder, features, training))

    def branch(self, task, shared, training=None):
        x = None
        for stage, feature in enumerate(shared):
            mask_input = feature if x is None else keras.ops.concatenate(
                [feature, keras.ops.cast(self.blocks[stage - 1](x, training=training), feature.dtype)], axis=-1)
            x = self.attention[task][stage](mask_input, training=training) * feature
        return x
