"""The `mtan` architecture (Liu et al., 2019): per-task soft attention over every encoder stage."""
from typing import Sequence

import keras

from multitask.modeling import registry
from multitask.modeling.architectures import base
from multitask.modeling.encoders import stages as stages_lib


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
class MTAN(base.Architecture):
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

    def __init__(self, encoder_factory: base.EncoderFactory, task_names: Sequence[str], inputs=None):
        """Builds the encoder, the attention modules and the block layers.

        Args:
          encoder_factory: Returns the encoder (its stages: `encoders.stages`).
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
        shapes = [tuple(x.shape) for x in stages_lib.stage_outputs(self.encoder, inputs)]
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
        return tuple(stages_lib.stage_outputs(self.encoder, features, training))

    def branch(self, task, shared, training=None):
        x = None
        for stage, feature in enumerate(shared):
            mask_input = feature if x is None else keras.ops.concatenate(
                [feature, keras.ops.cast(self.blocks[stage - 1](x, training=training), feature.dtype)], axis=-1)
            x = self.attention[task][stage](mask_input, training=training) * feature
        return x
