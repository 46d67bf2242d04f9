"""Lower-bounded quadratic programs on a Gram matrix, solved exactly in TensorFlow.

`lower_bounded_qp` solves, for each row `u` of a batch,

    minimize_v  0.5 * v^T Q v    subject to  v >= u   (componentwise),

with `Q` a `[T, T]` symmetric positive definite matrix (in practice a
regularised Gram matrix of the task gradients). This is the per-task problem of
UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
2024, Proposition 1), which TorchJD and LibMTL hand to `quadprog`.

It runs eagerly, inside `tf.function` and under XLA (`jit_compile=True`): the
shapes are static and the loop is a `tf.while_loop` with a fixed maximum number
of iterations.
"""
import tensorflow as tf


def lower_bounded_qp(gram: tf.Tensor, lower: tf.Tensor, max_iters: int = 100, tolerance: float = 1e-6) -> tf.Tensor:
    """Solves `min_v 0.5 v^T Q v` subject to `v >= u` for every row `u` of `lower`.

    A primal active-set method (Nocedal & Wright, "Numerical Optimization",
    Algorithm 16.3) run on all rows at once. Every row starts at `v = u` with
    every bound active. Each iteration solves the equality-constrained problem
    of the current active set (a masked, symmetric positive definite `[T, T]`
    system solved by Cholesky): if its solution is feasible the row moves
    there and, unless every active bound's multiplier `(Q v)_j` is
    non-negative (the KKT conditions, then the row is optimal and frozen), the
    bound with the most negative multiplier is released; otherwise the row
    steps as far as feasibility allows and the blocking bound becomes active.
    The iterates stay feasible and the objective never increases, and the
    method ends in finitely many steps (in practice at most a few times `T`);
    the loop stops once every row is optimal or after `max_iters` iterations.

    Unlike projected gradient or coordinate descent, whose convergence slows
    with the condition number of `Q`, the result satisfies the KKT conditions
    to rounding error, so `Q v >= 0` holds where the bounds are active.

    Args:
      gram: float32 `[T, T]` symmetric positive definite `Q`, static `T`.
      lower: float32 `[B, T]` lower bounds `u`, one problem per row.
      max_iters: The maximum number of active-set iterations.
      tolerance: Multipliers above `-tolerance * max(diag(Q)) * max(|u|)` count
        as non-negative.

    Returns:
      float32 `[B, T]` minimisers `v`, each `>= u`.

    Raises:
      ValueError: `max_iters` is not a positive integer, or `T` is not static.
    """
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}.")
    gram = tf.convert_to_tensor(gram, tf.float32)
    lower = tf.convert_to_tensor(lower, tf.float32)
    size = gram.shape[-1]
    if size is None:
        raise ValueError(f"lower_bounded_qp needs a statically known T, got shape {gram.shape}.")
    gram = 0.5 * (gram + tf.transpose(gram))
    row_scale = tf.reduce_max(tf.linalg.diag_part(gram)) * tf.reduce_max(tf.abs(lower), axis=1)
    threshold = -tolerance * row_scale  # [B]

    def equality_solution(active):
        """The minimiser with the active coordinates fixed at their bounds."""
        free = 1.0 - tf.cast(active, tf.float32)  # [B, T]
        # [Q_FF 0; 0 I] v = [-Q_FA u_A; u_A]: symmetric positive definite.
        system = gram * free[:, :, None] * free[:, None, :] + tf.linalg.diag(1.0 - free)
        fixed = (1.0 - free) * lower
        rhs = fixed - free * tf.linalg.matvec(gram, fixed)
        return tf.linalg.cholesky_solve(tf.linalg.cholesky(system), rhs[:, :, None])[:, :, 0]

    def condition(iteration, values, active, done):
        return tf.logical_and(iteration < max_iters, tf.logical_not(tf.reduce_all(done)))

    def body(iteration, values, active, done):
        target = equality_solution(active)
        direction = target - values
        # Largest feasible step toward the target, and the bound that blocks it.
        shrinking = tf.logical_and(tf.logical_not(active), direction < 0.0)
        ratios = tf.where(shrinking, (values - lower) / tf.where(shrinking, -direction, 1.0), float("inf"))
        blocking = tf.argmin(ratios, axis=1, output_type=tf.int32)
        step = tf.reduce_min(ratios, axis=1)
        reaches = step >= 1.0
        # Rows that reach the target: optimal, or release the worst bound.
        multipliers = tf.where(active, tf.linalg.matvec(gram, target), float("inf"))
        releasing = tf.argmin(multipliers, axis=1, output_type=tf.int32)
        optimal = tf.logical_and(reaches, tf.reduce_min(multipliers, axis=1) >= threshold)
        release = tf.cast(tf.one_hot(releasing, size), tf.bool)
        block = tf.cast(tf.one_hot(blocking, size), tf.bool)
        stepped = values + tf.minimum(step, 1.0)[:, None] * direction
        stepped = tf.where(block, lower, stepped)
        new_values = tf.where(reaches[:, None], target, stepped)
        new_active = tf.where(
            reaches[:, None],
            tf.logical_and(active, tf.logical_not(tf.logical_and(release, tf.logical_not(optimal)[:, None]))),
            tf.logical_or(active, block),
        )
        keep = done[:, None]
        return (
            iteration + 1,
            tf.where(keep, values, new_values),
            tf.where(keep, active, new_active),
            tf.logical_or(done, optimal),
        )

    rows = tf.shape(lower)[0]
    state = (tf.constant(0), lower, tf.ones_like(lower, tf.bool), tf.zeros([rows], tf.bool))
    _, values, _, _ = tf.while_loop(condition, body, state, maximum_iterations=max_iters)
    return tf.maximum(values, lower)
