"""The launcher, for the fault-tolerance tests: `python tests/preemptible_run.py FLAGS...`.

Two hooks, set in the environment, make the process SIGKILL itself at a
chosen point (each at most once per process, so a restart without them runs
to the end):

- `KILL_DURING_SAVE=N`: in the middle of saving checkpoint N (`ckpt-N`; a
  non-numeric value is a checkpoint's file name, e.g. `best_ckpt-2` of the
  best-checkpoint exporter): after its data files are written, before the
  checkpoint state file names it (the moment a preemption is most likely to
  tear a save).
- `KILL_DURING_EVAL=N`: at the start of the N-th evaluation of this process
  (`MultiTaskEvaluator.evaluate`), after the checkpoint taken at that step and
  before anything of the evaluation is done; `KILL_DURING_EVAL=N:end` at its
  end instead: the results are computed and the best checkpoint is exported,
  but the run has not acted on them (early stopping, its own checkpoint).
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

from multitask import evaluator  # noqa: E402
from multitask import train  # noqa: E402


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


_KILL_AT = os.environ.get("KILL_DURING_SAVE")
if _KILL_AT:
    _KILL_NAME = f"ckpt-{_KILL_AT}" if _KILL_AT.isdigit() else _KILL_AT
    _record_state = tf.train.CheckpointManager._record_state  # pylint: disable=protected-access

    def _record_state_or_die(self):
        if self.latest_checkpoint and os.path.basename(self.latest_checkpoint) == _KILL_NAME:
            _die()
        _record_state(self)

    tf.train.CheckpointManager._record_state = _record_state_or_die  # pylint: disable=protected-access

_KILL_EVAL = os.environ.get("KILL_DURING_EVAL")
if _KILL_EVAL:
    _EVAL_NUMBER, _, _EVAL_POINT = _KILL_EVAL.partition(":")
    _evaluate = evaluator.MultiTaskEvaluator.evaluate
    _evaluations = [0]

    def _evaluate_or_die(self, num_steps):
        _evaluations[0] += 1
        due = _evaluations[0] == int(_EVAL_NUMBER)
        if due and _EVAL_POINT != "end":
            _die()
        logs = _evaluate(self, num_steps)
        if due:
            _die()
        return logs

    evaluator.MultiTaskEvaluator.evaluate = _evaluate_or_die

if __name__ == "__main__":
    train.define_flags()
    app.run(train.main)
