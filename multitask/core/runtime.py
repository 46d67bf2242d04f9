"""The runtime section of a config: distribution strategy and precision policy."""
import socket
from typing import Optional

import keras
import tensorflow as tf

from official.common import distribute_utils

STRATEGIES = ("default", "off", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISION_POLICIES = {None: "float32", "": "float32", "float32": "float32",
                      "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def validate_runtime(runtime_config) -> None:
    """Checks the strategy name and precision dtype without acting on them.

    Raises:
      ValueError: An unknown `distribution_strategy` or `mixed_precision_dtype`.
    """
    name = runtime_config.distribution_strategy
    if not isinstance(name, str) or name.lower() not in STRATEGIES:
        raise ValueError(
            f"runtime.distribution_strategy is {name!r}; allowed: {', '.join(STRATEGIES)}."
        )
    if runtime_config.mixed_precision_dtype not in PRECISION_POLICIES:
        raise ValueError(
            f"runtime.mixed_precision_dtype is {runtime_config.mixed_precision_dtype!r}; "
            "allowed: float32, float16, bfloat16."
        )


def get_distribution_strategy(runtime_config) -> tf.distribute.Strategy:
    """Builds the strategy `runtime.distribution_strategy` names.

    Goes through `official.common.distribute_utils`; "default" is its "off"
    (the default strategy of `tf.distribute.get_strategy()`). "tpu" fails
    fast where there is no TPU: without `runtime.tpu`, when a `grpc://`
    address does not accept a connection within 10 s, or when the TPU system
    cannot be found or initialised.

    Raises:
      ValueError: An unknown strategy name or precision dtype, or "tpu"
        without `runtime.tpu`.
      RuntimeError: "tpu" and no TPU is reachable.
    """
    validate_runtime(runtime_config)
    name = runtime_config.distribution_strategy.lower()
    if name == "tpu":
        return _tpu_strategy(runtime_config)
    return distribute_utils.get_distribution_strategy(
        distribution_strategy="off" if name == "default" else name,
        num_gpus=runtime_config.num_gpus,
        all_reduce_alg=runtime_config.all_reduce_alg,
        num_packs=runtime_config.num_packs,
        tpu_address=runtime_config.tpu,
    )


def _tpu_strategy(runtime_config) -> tf.distribute.TPUStrategy:
    address = runtime_config.tpu
    if not address:
        raise ValueError(
            "runtime.distribution_strategy is 'tpu' but runtime.tpu is not set: give the TPU's name, "
            "its grpc://host:port address, or 'local' (the flag --tpu sets it)."
        )
    if address.startswith("grpc://"):
        host, _, port = address[len("grpc://"):].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except (OSError, ValueError) as error:
            raise RuntimeError(f"runtime.distribution_strategy is 'tpu' but no TPU answers at runtime.tpu="
                               f"{address!r} ({error}).") from error
    try:
        return distribute_utils.get_distribution_strategy(distribution_strategy="tpu", tpu_address=address)
    except Exception as error:  # pylint: disable=broad-except  (resolver and TF errors of many kinds)
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise RuntimeError(f"runtime.distribution_strategy is 'tpu' but no TPU was found at runtime.tpu="
                           f"{address!r}: {first}") from error


def set_mixed_precision_policy(dtype: Optional[str]) -> str:
    """Sets the global Keras 3 dtype policy for `runtime.mixed_precision_dtype`.

    Args:
      dtype: None / "float32", "float16" (mixed_float16, with loss scaling in
        every trainer) or "bfloat16" (mixed_bfloat16).

    Returns:
      The policy name set.

    Raises:
      ValueError: Any other dtype.
    """
    if dtype not in PRECISION_POLICIES:
        raise ValueError(f"runtime.mixed_precision_dtype is {dtype!r}; allowed: float32, float16, bfloat16.")
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[dtype])
    return PRECISION_POLICIES[dtype]


def step_jit_compile(jit_compile: bool, strategy: tf.distribute.Strategy) -> bool:
    """Whether a trainer compiles its replica steps itself with XLA (`runtime.enable_xla`).

    A TPUStrategy compiles every replica function already, so it is False there.

    Raises:
      ValueError: `jit_compile` with several replicas of a strategy other than
        a TPUStrategy (XLA cannot update other devices' variables).
    """
    tpu = isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
    if jit_compile and strategy.num_replicas_in_sync > 1 and not tpu:
        raise ValueError(
            f"runtime.enable_xla / jit_compile compiles the step of one device; XLA cannot update "
            f"the variables of {strategy.num_replicas_in_sync} replicas of "
            f"{type(strategy).__name__} from one cluster. Use it with one replica (default or "
            "one_device strategy); a TPUStrategy compiles its steps itself."
        )
    return jit_compile and not tpu


def needs_loss_scaling() -> bool:
    """Whether the global policy computes in float16 (optimizers then scale the loss)."""
    return keras.mixed_precision.global_policy().compute_dtype == "float16"
