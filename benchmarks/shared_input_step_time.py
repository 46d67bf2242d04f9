"""Joint step time on a shared input: the encoder once per step vs once per task.

    python -m benchmarks.shared_input_step_time [--tasks 2 3 8] [--steps 50] [--repeats 7]
        [--batch 256] [--out shared_input.json]

T tasks read one `multi_digits` dataset (the canvas; task i predicts the left
digit for even i and the right one for odd i) through the `multi_digits` model
(shared CNN encoder, one 10-class head per task), trained by the joint trainer
with Adam. "single pass" is the `EncoderHeadsModel` itself: the trainer encodes
each batch once and runs every head on that representation. "per task" is the
same encoder and heads composed as one `EncoderHead` sub-model per task in a
plain `MultiTaskBaseModel`, so each task runs the encoder on the batch itself
(Model Garden's joint step). All trainers are built and traced first; each
round then times `--steps` steps (one `tf.function` loop) of every trainer in
turn, and the table shows the median milliseconds per step over `--repeats`
rounds and the speedup of the single pass (the median over rounds of the
ratio within a round).
"""
import argparse
import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402
from multitask.experiments import multi_digits  # noqa: E402
from multitask import base_model  # noqa: E402
from multitask import base_trainer  # noqa: E402
from multitask import multitask  # noqa: E402


class PerTaskPasses(base_model.MultiTaskBaseModel):
    """The same encoder and heads, one `EncoderHead` per task: the encoder runs once per task."""

    def __init__(self, single_pass: base_model.EncoderHeadsModel, **kwargs):
        self.encoder = single_pass.encoder
        self.heads = single_pass.heads
        super().__init__(**kwargs)

    def _instantiate_sub_tasks(self):
        return {name: base_model.EncoderHead(self.encoder, head, name=name) for name, head in self.heads.items()}


def task_names(num_tasks: int):
    return tuple(f"t{i}" for i in range(num_tasks))


def build_trainer(num_tasks: int, single_pass: bool, batch_size: int) -> base_trainer.MultiTaskBaseTrainer:
    """A joint trainer of `num_tasks` tasks on the shared multi_digits input."""
    keras.utils.set_random_seed(0)
    names = task_names(num_tasks)
    sides = {name: multi_digits.SIDES[i % 2] for i, name in enumerate(names)}
    tasks = multitask.MultiTask([
        multi_digits.MultiDigitsTask(multi_digits.MultiDigitsTaskConfig(name=name, side=side))
        for name, side in sides.items()
    ])
    model = multi_digits.MultiDigitsModel(multi_digits.MultiDigitsModelConfig(task_names=names))
    if not single_pass:
        model = PerTaskPasses(model)
    data = multi_digits.MultiDigitsDataConfig(split="train", global_batch_size=batch_size, num_pairs=4096)

    def dataset_fn(input_context=None):
        return multi_digits.shared_inputs(data, input_context).map(
            lambda x, labels: (x, {name: labels[side] for name, side in sides.items()}))

    return base_trainer.MultiTaskBaseTrainer(tasks, model, keras.optimizers.Adam(1e-3), train_datasets=dataset_fn)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 3, 8])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default="shared_input_step_time.json")
    args = parser.parse_args()
    trainers = {(n, single): build_trainer(n, single, args.batch) for n in args.tasks for single in (False, True)}
    times = timing.interleaved_round_times(trainers, args.steps, args.repeats)
    print(f"\nbatch {args.batch}, {args.steps} steps x {args.repeats} rounds, device "
          f"{'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'}")
    print(f"{'tasks':>5} {'per task ms/step':>17} {'single pass ms/step':>20} {'speedup':>8}")
    rows = []
    for n in args.tasks:
        per_task, single = statistics.median(times[(n, False)]), statistics.median(times[(n, True)])
        speedup = timing.paired_speedup(times, (n, True), (n, False))
        print(f"{n:>5} {1000 * per_task:>17.2f} {1000 * single:>20.2f} {speedup:>7.2f}x")
        rows.append({"tasks": n, "per_task_seconds_per_step": per_task, "single_pass_seconds_per_step": single,
                     "speedup": speedup})
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump({"batch": args.batch, "steps": args.steps, "repeats": args.repeats, "rows": rows},
                  stream, indent=2)
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
