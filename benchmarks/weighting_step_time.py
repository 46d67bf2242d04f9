"""Step time of every weighting method relative to EW, on multi_digits.

    python -m benchmarks.weighting_step_time [--steps 200] [--repeats 3] [--out weighting.json]

Each method trains the `multi_digits` model (shared CNN, two heads, one shared
dataset, global batch 64) with the joint trainer, with parameter gradients
(rep_grad off) and with representation gradients (rep_grad on) where the
method takes them. After a warm-up loop (tracing), `--steps` steps run in one
`tf.function` loop; the table shows the median seconds per step over
`--repeats` loops and the ratio to EW's time (EW without rep_grad takes one
backward pass; with rep_grad, EW goes through the gradient path).
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from experiments import multi_digits  # noqa: E402
from multitask import base_trainer  # noqa: E402
from multitask import multitask  # noqa: E402
from multitask import weighting  # noqa: E402
from multitask.weighting import base as weighting_base  # noqa: E402


def modes(method: str):
    """The rep_grad settings `method` declares it can run with."""
    kinds = weighting.registry._REGISTRY[method].gradient_kinds  # pylint: disable=protected-access
    return [rep_grad for rep_grad, kind in ((False, weighting_base.PARAMETER), (True, weighting_base.REPRESENTATION))
            if kind in kinds]


def seconds_per_step(method: str, rep_grad: bool, steps: int, repeats: int) -> float:
    """Median seconds per training step of `method`."""
    keras.utils.set_random_seed(0)
    data = multi_digits.MultiDigitsDataConfig(split="train", global_batch_size=64)
    tasks = multitask.MultiTask(
        [multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config(side)) for side in multi_digits.SIDES]
    )
    model = multi_digits.MultiDigitsModel(multi_digits.MultiDigitsModelConfig())
    trainer = base_trainer.MultiTaskBaseTrainer(
        tasks, model, keras.optimizers.Adam(1e-3),
        train_datasets=lambda input_context=None: multi_digits.shared_inputs(data, input_context),
        weighting=weighting.get_weighting(method, len(tasks.tasks)), rep_grad=rep_grad,
    )
    trainer.train(tf.constant(steps))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trainer.train(tf.constant(steps))
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="weighting_step_time.json")
    args = parser.parse_args()
    results = {}
    for method in weighting.known_weightings():
        for rep_grad in modes(method):
            try:
                results[(method, rep_grad)] = seconds_per_step(method, rep_grad, args.steps, args.repeats)
            except ValueError as error:  # a combination the trainer refuses
                print(f"skip {method} rep_grad={rep_grad}: {error}")
    reference = results[("ew", False)]
    print(f"\n{'method':<12} {'rep_grad':<9} {'ms/step':>8} {'x ew':>6}")
    for (method, rep_grad), seconds in results.items():
        print(f"{method:<12} {str(rep_grad):<9} {1000 * seconds:>8.2f} {seconds / reference:>6.2f}")
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump([{"method": m, "rep_grad": r, "seconds_per_step": s} for (m, r), s in results.items()],
                  stream, indent=2)
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
