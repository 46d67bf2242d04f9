"""Multi-task learning for Keras 3 on TensorFlow, shaped like Model Garden's.

The library runs on Keras 3 with the TensorFlow backend; importing it selects
that backend unless `KERAS_BACKEND` names another one, which is refused.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "multitask needs Keras 3 on the TensorFlow backend, but KERAS_BACKEND="
        f"{keras.backend.backend()!r}; unset it or set KERAS_BACKEND=tensorflow."
    )
