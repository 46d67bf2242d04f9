"""The launcher, for the fault-tolerance tests: `python tests/preemptible_run.py FLAGS...`.

With `KILL_DURING_SAVE=N` in the environment the process SIGKILLs itself in
the middle of saving checkpoint N: after its data files are written, before
the checkpoint state file names it (the moment a preemption is most likely to
tear a save).
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

from multitask import train  # noqa: E402

_KILL_AT = os.environ.get("KILL_DURING_SAVE")
if _KILL_AT:
    _record_state = tf.train.CheckpointManager._record_state  # pylint: disable=protected-access

    def _record_state_or_die(self):
        if self.latest_checkpoint and self.latest_checkpoint.endswith(f"-{_KILL_AT}"):
            os.kill(os.getpid(), signal.SIGKILL)
        _record_state(self)

    tf.train.CheckpointManager._record_state = _record_state_or_die  # pylint: disable=protected-access

if __name__ == "__main__":
    train.define_flags()
    app.run(train.main)
