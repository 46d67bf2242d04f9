"""Small TensorFlow solvers shared by the gradient-level weighting methods.

Every function here is pure, works on the `[T, T]` Gram matrix of the task
gradients (or on a `[T]` vector) rather than on the `[T, D]` gradients, and
runs eagerly, inside `tf.function` and under XLA (`jit_compile=True`): shapes
are static and loops have a fixed maximum number of iterations.

- `min_norm_two`, `min_norm_weights`: the min-norm point of the convex hull of
  the task gradients (MGDA's problem), exactly for two tasks and by pairwise
  Frank-Wolfe for more.
- `cagrad_weights`: CAGrad's inner problem on the simplex, by pairwise
  Frank-Wolfe with exact line searches and a closed-form step to the
  optimum of the current support.
- `alpha_fair_weights`: the positive solution of `G w = w^(-1/alpha)` (FairGrad;
  with `alpha = 1` it is Nash-MTL's bargaining equation `G w = 1 / w`).
"""
from typing import Tuple, Union

import tensorflow as tf

def _static_size(gram: tf.Tensor, what: str) -> int:
    size = gram.shape[-1]
    if size is None:
        raise ValueError(f"{what} needs a statically known number of tasks, got shape {gram.shape}.")
    return int(size)


def _scaled_gram(gram: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Symmetrises `gram` and divides it by its largest diagonal entry.

    Returns the scaled matrix and the scale (0 when every gradient is zero, in
    which case the scaled matrix is all zeros).
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    gram = 0.5 * (gram + tf.linalg.matrix_transpose(gram))
    scale = tf.maximum(tf.reduce_max(tf.linalg.diag_part(gram)), 0.0)
    return tf.math.divide_no_nan(gram, scale), scale


def min_norm_two(g11: tf.Tensor, g12: tf.Tensor, g22: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The exact min-norm point of the segment between two gradients.

    Minimises `||gamma * g1 + (1 - gamma) * g2||^2` over `gamma` in `[0, 1]`
    from the inner products alone.

    Args:
      g11: `<g1, g1>`.
      g12: `<g1, g2>`.
      g22: `<g2, g2>`.

    Returns:
      `(gamma, cost)`: the weight of `g1` and the squared norm reached. Where
      `g1 == g2` every `gamma` is optimal and 0 is returned.
    """
    g11, g12, g22 = (tf.convert_to_tensor(x, tf.float32) for x in (g11, g12, g22))
    gamma = tf.clip_by_value(tf.math.divide_no_nan(g22 - g12, g11 + g22 - 2.0 * g12), 0.0, 1.0)
    cost = gamma * gamma * g11 + 2.0 * gamma * (1.0 - gamma) * g12 + (1.0 - gamma) ** 2 * g22
    return gamma, cost


def _best_pair(gram: tf.Tensor, size: int) -> tf.Tensor:
    """The min-norm point over all segments `[g_i, g_j]` (vertices included)."""
    diagonal = tf.linalg.diag_part(gram)
    gamma, cost = min_norm_two(diagonal[:, None], gram, diagonal[None, :])
    best = tf.argmin(tf.reshape(cost, [-1]), output_type=tf.int32)
    i, j = best // size, best % size
    gamma = tf.reshape(gamma, [-1])[best]
    return gamma * tf.one_hot(i, size) + (1.0 - gamma) * tf.one_hot(j, size)


def min_norm_weights(gram: tf.Tensor, max_iters: int = 1000, tolerance: float = 1e-6) -> tf.Tensor:
    """Weights of the min-norm point in the convex hull of T gradients (MGDA).

    Solves `min_w w^T G w` subject to `w >= 0, sum(w) = 1`, where `G` is the
    Gram matrix of the gradients. Two tasks get the closed form
    (`min_norm_two`); more start from the best pair (as Sener & Koltun's solver
    does) and take pairwise Frank-Wolfe steps (Lacoste-Julien & Jaggi, 2015)
    with an exact line search: weight moves from the support task with the
    largest `(G w)_v` to the task with the smallest `(G w)_s`. The loop stops
    after `max_iters` steps or once `(G w)_v - (G w)_s <= tolerance` (relative
    to the largest squared gradient norm), i.e. once the KKT conditions
    `(G w)_i >= w^T G w` for all i, with equality where `w_i > 0`, hold within
    the tolerance.

    Args:
      gram: float `[T, T]` Gram matrix `G = grads @ grads^T`, static `T`.
      max_iters: The maximum number of Frank-Wolfe steps.
      tolerance: The stopping gap, relative to `max(diag(G))`.

    Returns:
      float32 `[T]` weights on the simplex. With all gradients zero, every
      point is optimal and a vertex is returned.
    """
    gram, _ = _scaled_gram(gram)
    size = _static_size(gram, "min_norm_weights")
    if size == 1:
        return tf.ones([1])
    weights = _best_pair(gram, size)
    if size == 2:
        return weights
    diagonal = tf.linalg.diag_part(gram)
    tolerance = tf.constant(tolerance, tf.float32)

    def gap_and_indices(weights):
        products = tf.linalg.matvec(gram, weights)
        toward = tf.argmin(products, output_type=tf.int32)
        away = tf.argmax(tf.where(weights > 0.0, products, -float("inf")), output_type=tf.int32)
        return products[away] - products[toward], toward, away

    def condition(step, weights):
        gap, _, _ = gap_and_indices(weights)
        return tf.logical_and(step < max_iters, gap > tolerance)

    def body(step, weights):
        gap, toward, away = gap_and_indices(weights)
        curvature = diagonal[toward] + diagonal[away] - 2.0 * gram[toward, away]
        available = weights[away]
        length = tf.where(curvature > 0.0, tf.math.divide_no_nan(gap, curvature), available)
        length = tf.clip_by_value(length, 0.0, available)
        weights = weights + length * (tf.one_hot(toward, size) - tf.one_hot(away, size))
        return step + 1, tf.maximum(weights, 0.0)

    _, weights = tf.while_loop(condition, body, (tf.constant(0), weights), maximum_iterations=max_iters)
    return weights / tf.reduce_sum(weights)


def cagrad_weights(gram: tf.Tensor, toward_mean: tf.Tensor, radius: tf.Tensor, max_iters: int = 1000,
                   tolerance: float = 1e-6, epsilon: float = 1e-8) -> tf.Tensor:
    """Minimises CAGrad's dual `f(w) = <w, b> + r sqrt(w^T G w + eps)` on the simplex.

    Pairwise Frank-Wolfe (as `min_norm_weights`): weight moves from the
    support task with the largest partial derivative to the task with the
    smallest, by the exact minimiser of `f` along that direction, which has a
    closed form: on the line, `w^T G w + eps = (y^2 + D) / A` with
    `y = A t + B` (`A`, `B`, `D` below), so `f' = 0` is a quadratic
    equation in `y`. Two tasks are solved exactly by the first step. For
    more, pairwise steps alone zig-zag where gradients nearly cancel, so after
    each one the stationary point of `f` on the support's affine hull (closed
    form, from one `[T, T]` solve) replaces the iterate where it is feasible
    and lower; the loop stops once that point satisfies the KKT conditions,
    once the partial derivatives of the support differ by at most
    `tolerance`, or after `max_iters` steps.

    Args:
      gram: float `[T, T]` Gram matrix `G` (CAGrad scales it first), static `T`.
      toward_mean: float `[T]`, `b`.
      radius: float scalar, `r >= 0`.
      max_iters: The maximum number of steps.
      tolerance: The stopping gap between partial derivatives.
      epsilon: `eps`, keeping the square root differentiable at 0.

    Returns:
      float32 `[T]` weights on the simplex.
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    size = _static_size(gram, "cagrad_weights")
    toward_mean = tf.convert_to_tensor(toward_mean, tf.float32)
    radius = tf.convert_to_tensor(radius, tf.float32)
    diagonal = tf.linalg.diag_part(gram)

    def derivatives(weights):
        products = tf.linalg.matvec(gram, weights)
        squared = tf.maximum(tf.reduce_sum(weights * products), 0.0) + epsilon
        partial = toward_mean + radius * products * tf.math.rsqrt(squared)
        toward = tf.argmin(partial, output_type=tf.int32)
        away = tf.argmax(tf.where(weights > 0.0, partial, -float("inf")), output_type=tf.int32)
        return products, partial, partial[away] - partial[toward], toward, away

    def value(weights):
        squared = tf.maximum(tf.reduce_sum(weights * tf.linalg.matvec(gram, weights)), 0.0) + epsilon
        return tf.reduce_sum(weights * toward_mean) + radius * tf.sqrt(squared)

    def face_optimum(weights):
        # The stationary point of f (without eps) on the affine hull of the support S:
        # w = (lambda p - q) / (lambda a - beta) with p = G_S^-1 1, q = G_S^-1 b, a = 1.p,
        # beta = 1.q, gamma = b.q and (lambda a - beta)^2 = a r^2 - (a gamma - beta^2).
        support = tf.cast(weights > 0.0, tf.float32)
        system = gram * support[:, None] * support[None, :] + tf.linalg.diag(1.0 - support)
        solved = tf.linalg.solve(system, tf.stack([support, toward_mean * support], axis=1))
        p, q = solved[:, 0], solved[:, 1]
        a, beta, gamma = tf.reduce_sum(p), tf.reduce_sum(q), tf.reduce_sum(toward_mean * q)
        root = tf.sqrt(tf.maximum(a * radius * radius - (a * gamma - beta * beta), 0.0))
        lam = (beta + root) / a
        return (lam * p - q) / root

    def condition(step, weights, solved):
        return tf.logical_and(tf.logical_and(step < max_iters, tf.logical_not(solved)),
                              derivatives(weights)[2] > tolerance)

    def body(step, weights, solved):
        weights = frank_wolfe_step(weights)
        # Once the support is right, its stationary point is the solution: take it where it is
        # feasible and lower (a wrong support, or a singular G_S, gives neither). It is the
        # solution when no task off the support has a smaller partial derivative (KKT); the
        # gap on the support is then rounding, which float32 may keep above `tolerance`.
        polished = face_optimum(weights)
        better = tf.logical_and(tf.reduce_all(tf.math.is_finite(polished)), tf.reduce_all(polished >= 0.0))
        better = tf.logical_and(better, value(tf.where(better, polished, weights)) <= value(weights))
        weights = tf.where(better, polished, weights)
        partial = derivatives(weights)[1]
        on_support = weights > 0.0
        lowest_on = tf.reduce_min(tf.where(on_support, partial, float("inf")))
        lowest_off = tf.reduce_min(tf.where(on_support, float("inf"), partial))
        return step + 1, weights, tf.logical_and(better, lowest_off >= lowest_on - tolerance)

    def frank_wolfe_step(weights):
        products, _, _, toward, away = derivatives(weights)
        squared = tf.maximum(tf.reduce_sum(weights * products), 0.0) + epsilon
        # Along w + t (e_toward - e_away), 0 <= t <= w_away: w^T G w + eps = A t^2 + 2 B t + C.
        a = tf.maximum(diagonal[toward] + diagonal[away] - 2.0 * gram[toward, away], 0.0)
        b = products[toward] - products[away]
        slope = toward_mean[toward] - toward_mean[away]
        curvature_room = a * radius * radius - slope * slope
        d = tf.maximum(a * squared - b * b, 0.0)
        # f' = slope + r y / sqrt((y^2 + D) / A) = 0 has a root only where A r^2 > slope^2;
        # otherwise f decreases along the whole segment.
        y = -tf.sign(slope) * tf.sqrt(tf.math.divide_no_nan(slope * slope * d, curvature_room))
        available = weights[away]
        length = tf.where(curvature_room > 0.0, tf.math.divide_no_nan(y - b, a), available)
        length = tf.clip_by_value(length, 0.0, available)
        weights = weights + length * (tf.one_hot(toward, size) - tf.one_hot(away, size))
        return tf.maximum(weights, 0.0)

    weights = tf.fill([size], 1.0 / size)
    _, weights, _ = tf.while_loop(condition, body, (tf.constant(0), weights, tf.constant(False)),
                                  maximum_iterations=max_iters)
    return weights / tf.reduce_sum(weights)


def alpha_fair_weights(
    gram: tf.Tensor, alpha: Union[float, tf.Tensor] = 1.0, max_iters: int = 50, tolerance: float = 1e-6
) -> tf.Tensor:
    """The positive weights `w` solving `G w = w^(-1/alpha)` (FairGrad).

    The equation is the stationarity condition of the strictly convex problem
    `min_{w > 0} 0.5 * w^T G w - sum_i u(w_i)` with `u'(w) = w^(-1/alpha)`
    (`u = log` for `alpha = 1`), which is solved by damped Newton steps that
    keep `w` positive, after scaling `G` to a unit mean diagonal (the solution
    scales back as `w = s^(-alpha / (1 + alpha)) w'`). A ridge of `1e-8` (in
    the scaled units) is added to `G` so that a task with a zero gradient gets
    a large finite weight instead of an infinite one.

    Args:
      gram: float `[T, T]` Gram matrix `G = grads @ grads^T`, static `T`.
      alpha: The fairness exponent, > 0 (1: proportional fairness, the
        Nash-MTL equation; larger values approach max-min fairness).
      max_iters: The maximum number of Newton steps.
      tolerance: Stop once every residual `|G w - w^(-1/alpha)|` is below this
        (in the scaled units, relative to `w^(-1/alpha)`).

    Returns:
      float32 `[T]` positive weights (not normalised). With all gradients zero
      the equation has no solution and ones are returned; where a singular `G`
      admits no positive solution (e.g. exactly opposed gradients), the last
      finite Newton iterate is returned (large weights whose update nearly
      cancels).
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    gram = 0.5 * (gram + tf.linalg.matrix_transpose(gram))
    size = _static_size(gram, "alpha_fair_weights")
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    exponent = 1.0 / alpha
    scale = tf.reduce_mean(tf.linalg.diag_part(gram))
    scaled = tf.math.divide_no_nan(gram, scale) + 1e-8 * tf.eye(size)

    def utility(weights):
        # sum_i u(w_i), u(w) = w^(1 - 1/alpha) / (1 - 1/alpha), or log w.
        power = 1.0 - exponent
        safe_power = tf.where(tf.abs(power) < 1e-6, 1.0, power)
        general = tf.pow(weights, safe_power) / safe_power
        return tf.reduce_sum(tf.where(tf.abs(power) < 1e-6, tf.math.log(weights), general))

    def value(weights):
        return 0.5 * tf.reduce_sum(weights * tf.linalg.matvec(scaled, weights)) - utility(weights)

    def residual(weights):
        return tf.linalg.matvec(scaled, weights) - tf.pow(weights, -exponent)

    def condition(step, weights, stalled):
        relative = tf.abs(residual(weights)) * tf.pow(weights, exponent)
        running = tf.logical_and(step < max_iters, tf.logical_not(stalled))
        return tf.logical_and(running, tf.reduce_max(relative) > tolerance)

    def body(step, weights, stalled):
        gradient = residual(weights)
        # A jitter of 1e-6 keeps the Cholesky factorisation defined in float32
        # when G is (nearly) singular; it changes the steps, not the solution.
        curvature = exponent * tf.pow(weights, -exponent - 1.0) + 1e-6
        hessian = scaled + tf.linalg.diag(curvature)
        direction = -tf.linalg.cholesky_solve(tf.linalg.cholesky(hessian), gradient[:, None])[:, 0]
        # Largest step keeping every weight positive (at most 99% of the way
        # to the boundary), then backtracking on the convex objective.
        to_boundary = tf.where(direction < 0.0, -0.99 * weights / tf.minimum(direction, -1e-30), 1.0)
        length = tf.minimum(1.0, tf.reduce_min(to_boundary))
        start = value(weights)
        slope = tf.reduce_sum(gradient * direction)

        def too_long(halvings, length):
            trial = weights + length * direction
            return tf.logical_and(halvings < 30, value(trial) > start + 0.25 * length * slope)

        _, length = tf.while_loop(
            too_long, lambda halvings, length: (halvings + 1, 0.5 * length), (tf.constant(0), length),
            maximum_iterations=30,
        )
        proposal = weights + length * direction
        # Without a positive solution (only near-singular G) stop at the last
        # finite point instead of producing NaNs.
        stalled = tf.logical_not(tf.reduce_all(tf.math.is_finite(proposal) & (proposal > 0.0)))
        return step + 1, tf.where(stalled, weights, proposal), stalled

    # Start on the diagonal where the mean residual vanishes.
    row_mean = tf.maximum(tf.reduce_mean(tf.reduce_sum(scaled, axis=-1)), 1.0 / size)
    initial = tf.fill([size], tf.pow(row_mean, -alpha / (1.0 + alpha)))
    _, weights, _ = tf.while_loop(
        condition, body, (tf.constant(0), initial, tf.constant(False)), maximum_iterations=max_iters
    )
    weights = weights * tf.pow(tf.maximum(scale, 1e-30), -alpha / (1.0 + alpha))
    return tf.where(scale > 0.0, weights, tf.ones_like(weights))
