"""Test setup: quiet TensorFlow, and two logical CPUs for MirroredStrategy tests.

The logical devices must be configured before TensorFlow initialises its
devices, so this runs at import time, before any test module touches TF.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import gc  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over two logical CPU devices, shared by all tests.

    Several MirroredStrategy objects in one process hand out the same
    collective keys, so their all-reduces can collide ("Shape mismatch in the
    collective instance"); a real run has one strategy per process.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def collect_finished_runs():
    """Frees each test's datasets and iterators right after it.

    An unfinished tf.data iterator left for a later garbage collection can
    block that collection until tf.data's autotuning thread wakes (seen up to a
    minute with TF 2.20), which made unrelated later tests slow at random.
    What survives is frozen (moved out of the collector's view), so each
    collection scans only the objects of the test that just ran instead of
    everything earlier tests left alive.
    """
    yield
    gc.collect()
    gc.freeze()
