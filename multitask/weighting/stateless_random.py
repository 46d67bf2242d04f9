"""Counter-based random numbers that are the same eagerly, in graphs and under XLA.

TensorFlow's stateless random ops draw different numbers under
`jit_compile=True` than outside it, so a method that must pick the same random
task order (PCGrad, GradVac) or masks (GradDrop) on every replica, after a
restart and in every execution mode uses these instead: pure functions of
`(seed, counter)` built from a 32-bit integer hash.
"""
from typing import Tuple

import tensorflow as tf

_GOLDEN = 0x9E3779B9


def _mix(bits: tf.Tensor) -> tf.Tensor:
    """A bijective 32-bit integer hash (Wellons' `lowbias32`)."""
    bits = tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, tf.constant(16, tf.uint32)))
    bits = bits * tf.constant(0x7FEB352D, tf.uint32)
    bits = tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, tf.constant(15, tf.uint32)))
    bits = bits * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(bits, tf.bitwise.right_shift(bits, tf.constant(16, tf.uint32)))


def _words(value) -> Tuple[tf.Tensor, tf.Tensor]:
    """The low and high 32-bit words of an integer scalar."""
    value = tf.cast(tf.convert_to_tensor(value), tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(value, 0xFFFFFFFF), tf.uint32)
    high = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, 32), 0xFFFFFFFF), tf.uint32)
    return low, high


def stateless_uniform(shape, seed, counter) -> tf.Tensor:
    """Uniform float32 numbers in `[0, 1)`, a pure function of `(seed, counter)`.

    A counter-based generator: every entry is a 32-bit integer hash of its
    flat position and of a key hashed from `seed` and `counter`, keeping 24
    bits. Unlike `tf.random.stateless_uniform`, whose XLA kernel draws
    different numbers, the result is identical eagerly, in a graph and under
    XLA on any device.

    Args:
      shape: The output shape: a list of ints or a 1-D integer tensor (XLA
        needs it static).
      seed: An integer scalar (Python int or tensor): the user's seed.
      counter: An integer scalar (Python int or tensor), e.g. the call count.

    Returns:
      float32 tensor of `shape`.
    """
    shape = tf.cast(shape if isinstance(shape, tf.Tensor) else tf.constant(shape, tf.int64), tf.int32)
    size = tf.reduce_prod(shape)
    golden = tf.constant(_GOLDEN, tf.uint32)
    key = golden
    for word in _words(seed) + _words(counter):
        key = _mix(tf.bitwise.bitwise_xor(key, word) + golden)
    second_key = _mix(key + golden)
    positions = tf.cast(tf.range(size, dtype=tf.int32), tf.uint32)
    bits = _mix(tf.bitwise.bitwise_xor(_mix(tf.bitwise.bitwise_xor(positions, key)), second_key))
    uniform = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * (1.0 / (1 << 24))
    return tf.reshape(uniform, shape)


def random_permutations(rows: int, size: int, seed, counter) -> tf.Tensor:
    """`rows` independent random permutations of `range(size)`.

    Args:
      rows: The number of permutations.
      size: The length of each.
      seed: An integer scalar: the user's seed.
      counter: An integer scalar, e.g. the call count.

    Returns:
      int32 `[rows, size]`, a pure function of `(seed, counter)` (see
      `stateless_uniform`).
    """
    return tf.argsort(stateless_uniform([rows, size], seed, counter), axis=-1, stable=True)
