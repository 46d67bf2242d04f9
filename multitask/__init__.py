"""Multi-task learning for Keras 3 on TensorFlow, shaped like Model Garden's.

The library runs on Keras 3 with the TensorFlow backend; importing it selects
that backend (`KERAS_BACKEND=tensorflow`, which overrides ~/.keras/keras.json)
and refuses another one named in the environment.
"""
import os

if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise ImportError(
        "multitask needs Keras 3 on the TensorFlow backend, but KERAS_BACKEND="
        f"{os.environ['KERAS_BACKEND']!r}; unset it or set KERAS_BACKEND=tensorflow."
    )
