"""The machinery under the trainers, one concept per module.

- `joint_step`: the joint trainer's step (forward passes of the active tasks,
  loss weights, a weighting method, one update).
- `gradients`: splitting variables into shared and per-task ones, per-task
  gradients and their all-reduce, gradient diagnostics.
- `update_guard`: scaling a step's update of a group of variables.
- `nonfinite`: what a step with a NaN or Inf loss or gradient does.
- `task_optimizers`: per-task optimizers beside the shared one.
- `checkpoint_items`: what a trainer's checkpoint holds.
- `input_distribution`: distributing the train data at the position a
  resumed run reached.
- `train_logs`, `diagnostics`: what a training loop reports.
- `train_and_evaluate`: the launcher's train-and-evaluate loop, early
  stopping, and resuming both exactly.

Graph helpers here (and in `task_control`, `weighting.base`,
`sampling.distribution`, `core.base_task`) that have no Python control flow on
tensors are marked `tf.autograph.experimental.do_not_convert`: autograph would
otherwise convert each of them when a loop is first traced (over a second of
CPU per process).
Everything that calls a user's Task or model stays converted, so user code
may still use Python control flow on tensors.
"""
