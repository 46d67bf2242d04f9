"""Cost of runtime task control in the joint and interleaving trainers.

    python -m benchmarks.task_control [--steps 200] [--repeats 3]

Trains the `multi_digits` model (shared CNN, heads `left` and `right`, one
shared dataset, global batch 64, Adam) and reports, per trainer, the median
seconds per step over `--repeats` rounds with both tasks active and with
`right` disabled, and the number of times training loops were traced while
`right` was toggled off and on before every round: one loop per
`task_control.LoopPlan` (all tasks on; `right` off), so 2 however many
toggles.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from multitask.experiments import multi_digits  # noqa: E402
from multitask import base_trainer  # noqa: E402
from multitask import interleaving_trainer  # noqa: E402
from multitask import multitask  # noqa: E402
from multitask import task_sampler  # noqa: E402


def build(kind: str):
    data = multi_digits.MultiDigitsDataConfig(split="train", global_batch_size=64)
    tasks = multitask.MultiTask(
        [multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config(side)) for side in multi_digits.SIDES]
    )
    model = multi_digits.MultiDigitsModel(multi_digits.MultiDigitsModelConfig())
    kwargs = dict(train_datasets=lambda input_context=None: multi_digits.shared_inputs(data, input_context))
    if kind == "interleaving":
        return interleaving_trainer.MultiTaskInterleavingTrainer(
            tasks, model, keras.optimizers.Adam(1e-3), task_sampler.UniformTaskSampler(tasks.sampling_weights), **kwargs
        )
    return base_trainer.MultiTaskBaseTrainer(tasks, model, keras.optimizers.Adam(1e-3), **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for kind in ("joint", "interleaving"):
        trainer = build(kind)
        trainer.train(tf.constant(5))  # trace once
        times = {"both active": [], "right disabled": []}
        for _ in range(args.repeats):
            for label in times:
                if label == "right disabled":
                    trainer.multi_task.disable_task("right")
                else:
                    trainer.multi_task.enable_task("right")
                start = time.perf_counter()
                trainer.train(tf.constant(args.steps))
                times[label].append((time.perf_counter() - start) / args.steps)
        loops = trainer._train_loop_fns.values()  # pylint: disable=protected-access
        traces = sum(loop.experimental_get_tracing_count() for loop in loops)
        for label, values in times.items():
            print(f"{kind:12s} {label:15s} {1000 * statistics.median(values):7.2f} ms/step")
        print(f"{kind:12s} traced {traces} time(s) over {2 * args.repeats} toggles")


if __name__ == "__main__":
    main()
