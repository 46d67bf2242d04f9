"""Step time of every weighting method relative to EW, on multi_digits.

    python -m benchmarks.weighting_step_time [--steps 200] [--repeats 7] [--methods ew dwa ...]
        [--out weighting.json]

Each method trains the `multi_digits` model (shared CNN, two heads, one shared
dataset, global batch 64) with the joint trainer, with parameter gradients
(rep_grad off) and with representation gradients (rep_grad on) where the
method takes them. All trainers are built and traced first; then each round
times `--steps` steps (one `tf.function` loop) of every trainer in turn, and
the table shows the median seconds per step over `--repeats` rounds and the
time relative to EW's: the median over rounds of the ratio within a round.
(EW without rep_grad takes one backward pass; with rep_grad, EW goes through
the gradient path.) Every method that goes through the gradient path and
takes `recompute_every` is timed again with `--recompute_every` (10): new
weights every 10 steps, one backward pass of the weighted loss sum between.
"""
import argparse
import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks import timing  # noqa: E402
from multitask.experiments import multi_digits  # noqa: E402
from multitask import base_trainer  # noqa: E402
from multitask import multitask  # noqa: E402
from multitask import weighting  # noqa: E402
from multitask.weighting import base as weighting_base  # noqa: E402


def modes(method: str):
    """The rep_grad settings `method` declares it can run with."""
    kinds = weighting.weighting_class(method).gradient_kinds
    return [rep_grad for rep_grad, kind in ((False, weighting_base.PARAMETER), (True, weighting_base.REPRESENTATION))
            if kind in kinds]


def reuses_weights(method: str, rep_grad: bool) -> bool:
    """Whether `method` (with `rep_grad`) balances per-task gradients and can reuse its weights."""
    cls = weighting.weighting_class(method)
    return (rep_grad or not cls.loss_level) and cls.linear and "recompute_every" in weighting.hyperparameters(method)


def build_trainer(method: str, rep_grad: bool, recompute_every: int = 1) -> base_trainer.MultiTaskBaseTrainer:
    """A joint trainer of the multi_digits model balanced by `method`."""
    keras.utils.set_random_seed(0)
    data = multi_digits.MultiDigitsDataConfig(split="train", global_batch_size=64)
    tasks = multitask.MultiTask(
        [multi_digits.MultiDigitsTask(multi_digits.multi_digits_task_config(side)) for side in multi_digits.SIDES]
    )
    model = multi_digits.MultiDigitsModel(multi_digits.MultiDigitsModelConfig())
    return base_trainer.MultiTaskBaseTrainer(
        tasks, model, keras.optimizers.Adam(1e-3),
        train_datasets=lambda input_context=None: multi_digits.shared_inputs(data, input_context),
        weighting=weighting.get_weighting(
            method, len(tasks.tasks), **({"recompute_every": recompute_every} if recompute_every > 1 else {})),
        rep_grad=rep_grad,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="the weighting methods to time (default: all); ew is always timed, as the reference")
    parser.add_argument("--recompute_every", type=int, default=10,
                        help="the second timing of each method that can reuse its weights (1: none)")
    parser.add_argument("--out", default="weighting_step_time.json")
    args = parser.parse_args()
    methods = weighting.known_weightings()
    if args.methods:
        unknown = sorted(set(args.methods) - set(methods))
        if unknown:
            parser.error(f"unknown --methods {unknown}; allowed: {', '.join(methods)}")
        methods = ["ew"] + [m for m in args.methods if m != "ew"]
    trainers = {}
    for method in methods:
        for rep_grad in modes(method):
            every = [1] + ([args.recompute_every] if args.recompute_every > 1 and reuses_weights(method, rep_grad)
                           else [])
            for recompute_every in every:
                try:
                    trainers[(method, rep_grad, recompute_every)] = build_trainer(method, rep_grad, recompute_every)
                except ValueError as error:  # a combination the trainer refuses
                    print(f"skip {method} rep_grad={rep_grad}: {str(error).splitlines()[0]}")
    times = timing.interleaved_round_times(trainers, args.steps, args.repeats)
    rows = [{"method": method, "rep_grad": rep_grad, "recompute_every": every,
             "seconds_per_step": statistics.median(rounds),
             "relative_to_ew": 1.0 / timing.paired_speedup(times, (method, rep_grad, every), ("ew", False, 1))}
            for (method, rep_grad, every), rounds in times.items()]
    print(f"\n{'method':<12} {'rep_grad':<9} {'recompute':>9} {'ms/step':>8} {'x ew':>6}")
    for row in rows:
        print(f"{row['method']:<12} {str(row['rep_grad']):<9} {row['recompute_every']:>9} "
              f"{1000 * row['seconds_per_step']:>8.2f} {row['relative_to_ew']:>6.2f}")
    with open(args.out, "w", encoding="utf-8") as stream:
        json.dump(rows, stream, indent=2)
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
