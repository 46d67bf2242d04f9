"""One worker of the multi-worker test: `python tests/multi_worker_run.py OUT_DIR MODEL_DIR`.

Reads its role from TF_CONFIG, trains the `shapes` experiment with the joint
and then the interleaving trainer under MultiWorkerMirroredStrategy (model
dirs MODEL_DIR/joint and MODEL_DIR/interleaving), and saves each model's
variables to OUT_DIR/<trainer>-worker<index>.npz.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from multitask import model_factory  # noqa: E402
from multitask import multitask  # noqa: E402
from multitask import train  # noqa: E402
from multitask import train_lib  # noqa: E402
from multitask.core import runtime  # noqa: E402

STEPS = ("trainer.train_steps=4,trainer.steps_per_loop=2,trainer.checkpoint_interval=2,"
         "trainer.summary_interval=2,trainer.validation_interval=2")


def main(out_dir, model_dir):
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    strategy = None
    for kind in ("joint", "interleaving"):
        params = train.parse_params(train.launcher_flags(
            experiment="shapes",
            params_override=f"runtime.distribution_strategy=multi_worker_mirrored,trainer.trainer_type={kind},{STEPS}",
        ))
        strategy = strategy or runtime.get_distribution_strategy(params.runtime)
        keras.utils.set_random_seed(index)  # different on each worker: the chief's initial values win
        with strategy.scope():
            task = multitask.MultiTask.from_config(params.task)
            model = model_factory.build_model(params.task)
        train_lib.run_experiment(distribution_strategy=strategy, task=task, model=model, mode="train",
                                 params=params, model_dir=os.path.join(model_dir, kind))
        np.savez(os.path.join(out_dir, f"{kind}-worker{index}.npz"),
                 **{f"{i}": v.numpy() for i, v in enumerate(model.variables)})


if __name__ == "__main__":
    main(*sys.argv[1:])
