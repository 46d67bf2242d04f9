"""Tests for multitask.task_sampler."""
import numpy as np
import pytest
import tensorflow as tf

from multitask import configs
from multitask import task_sampler


def _annealed_cumulative(weights, alpha):
    """The paper's distribution for `alpha`, computed by hand in numpy."""
    sizes = np.asarray(weights, dtype=np.float64) ** alpha
    return np.cumsum(sizes / sizes.sum())


def test_uniform_three_tasks():
    sampler = task_sampler.UniformTaskSampler({"a": 1.0, "b": 5.0, "c": 0.5})
    cumulative = sampler.task_cumulative_distribution(tf.constant(7, tf.int64))
    assert cumulative.dtype == tf.float32
    assert cumulative.shape == (3,)
    np.testing.assert_allclose(cumulative.numpy(), [1 / 3, 2 / 3, 1.0], rtol=1e-6)
    assert cumulative.numpy()[-1] == 1.0


def test_task_weights_keeps_order_and_is_a_copy():
    sampler = task_sampler.UniformTaskSampler({"z": 1, "a": 2, "m": 3})
    weights = sampler.task_weights
    assert list(weights) == ["z", "a", "m"]
    assert weights == {"z": 1.0, "a": 2.0, "m": 3.0}
    weights["z"] = 100.0
    assert sampler.task_weights["z"] == 1.0


def test_proportional_alpha_two():
    sampler = task_sampler.ProportionalTaskSampler({"a": 1, "b": 2, "c": 3}, alpha=2.0)
    cumulative = sampler.task_cumulative_distribution(0).numpy()
    np.testing.assert_allclose(cumulative, [1 / 14, 5 / 14, 1.0], rtol=1e-6)
    assert cumulative[-1] == 1.0


def test_proportional_default_alpha_is_proportional():
    sampler = task_sampler.ProportionalTaskSampler({"a": 1, "b": 3})
    np.testing.assert_allclose(
        sampler.task_cumulative_distribution(0).numpy(), [0.25, 1.0], rtol=1e-6
    )


def test_proportional_zero_weight_task_gets_no_mass_even_at_alpha_zero():
    sampler = task_sampler.ProportionalTaskSampler({"a": 0, "b": 4, "c": 1}, alpha=0.0)
    np.testing.assert_allclose(
        sampler.task_cumulative_distribution(0).numpy(), [0.0, 0.5, 1.0], atol=1e-7
    )


def test_proportional_large_weights_do_not_overflow():
    sampler = task_sampler.ProportionalTaskSampler({"a": 1e30, "b": 3e30}, alpha=4.0)
    cumulative = sampler.task_cumulative_distribution(0).numpy()
    np.testing.assert_allclose(cumulative, [1 / 82, 1.0], rtol=1e-5)


@pytest.mark.parametrize(
    "step, alpha",
    [
        (0, 1.0),  # first epoch
        (9, 1.0),  # last step of the first epoch
        (10, 0.8),  # second epoch
        (25, 0.6),  # middle epoch
        (45, 0.2),  # last epoch
        (49, 0.2),  # last step
    ],
)
def test_annealing_follows_the_paper(step, alpha):
    weights = {"a": 1.0, "b": 2.0, "c": 4.0}
    sampler = task_sampler.AnnealingTaskSampler(weights, steps_per_epoch=10, total_steps=50)
    np.testing.assert_allclose(sampler.annealed_alpha(step).numpy(), alpha, rtol=1e-6)
    cumulative = sampler.task_cumulative_distribution(tf.constant(step, tf.int64)).numpy()
    np.testing.assert_allclose(
        cumulative, _annealed_cumulative(list(weights.values()), alpha), rtol=1e-5
    )
    assert cumulative[-1] == 1.0


def test_annealing_first_epoch_is_proportional_not_model_garden():
    sampler = task_sampler.AnnealingTaskSampler({"a": 1, "b": 2, "c": 4}, 10, 50)
    cumulative = sampler.task_cumulative_distribution(0).numpy()
    np.testing.assert_allclose(cumulative, [1 / 7, 3 / 7, 1.0], rtol=1e-6)
    # Model Garden's 0-indexed epochs would give alpha = 1.4 here.
    model_garden = _annealed_cumulative([1, 2, 4], 1.4)
    assert not np.allclose(cumulative, model_garden, rtol=1e-3)


def test_annealing_single_epoch_does_not_anneal():
    sampler = task_sampler.AnnealingTaskSampler({"a": 1, "b": 3}, 10, 10)
    for step in (0, 9, 10, 1000):
        cumulative = sampler.task_cumulative_distribution(step).numpy()
        assert np.all(np.isfinite(cumulative))
        np.testing.assert_allclose(cumulative, [0.25, 1.0], rtol=1e-6)


def test_annealing_stops_at_alpha_point_two():
    sampler = task_sampler.AnnealingTaskSampler({"a": 1, "b": 3}, 10, 50)
    for step in (50, 500, 10**12):
        np.testing.assert_allclose(sampler.annealed_alpha(step).numpy(), 0.2, rtol=1e-6)
    # A fractional last epoch (E = 2.5) is clamped to E as well.
    fractional = task_sampler.AnnealingTaskSampler({"a": 1, "b": 3}, 10, 25)
    np.testing.assert_allclose(fractional.annealed_alpha(15).numpy(), 1 - 0.8 / 1.5, rtol=1e-6)
    np.testing.assert_allclose(fractional.annealed_alpha(20).numpy(), 0.2, rtol=1e-6)


def test_annealing_zero_weight_task_gets_no_mass():
    sampler = task_sampler.AnnealingTaskSampler({"a": 0, "b": 1, "c": 1}, 10, 50)
    for step in (0, 25, 49):
        cumulative = sampler.task_cumulative_distribution(step).numpy()
        np.testing.assert_allclose(cumulative, [0.0, 0.5, 1.0], atol=1e-6)


def test_distribution_in_tf_function_with_variable_step():
    sampler = task_sampler.AnnealingTaskSampler({"a": 1, "b": 2, "c": 4}, 10, 50)
    step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def cumulative_now():
        return sampler.task_cumulative_distribution(step)

    for value, alpha in ((0, 1.0), (25, 0.6), (45, 0.2)):
        step.assign(value)
        np.testing.assert_allclose(
            cumulative_now().numpy(), _annealed_cumulative([1, 2, 4], alpha), rtol=1e-5
        )
    assert cumulative_now.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "sampler",
    [
        task_sampler.UniformTaskSampler({"a": 1, "b": 2}),
        task_sampler.ProportionalTaskSampler({"a": 1, "b": 2}, alpha=0.5),
    ],
)
def test_static_samplers_in_tf_function(sampler):
    step = tf.Variable(3, dtype=tf.int64)
    in_graph = tf.function(lambda: sampler.task_cumulative_distribution(step))()
    np.testing.assert_array_equal(in_graph.numpy(), sampler.task_cumulative_distribution(3))


def test_sample_task_index_is_reproducible():
    cumulative = tf.constant([0.2, 0.5, 1.0])
    step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def sample():
        return task_sampler.sample_task_index(cumulative, step, seed=7)

    first = []
    for value in range(20):
        step.assign(value)
        first.append(int(sample()))
    second = []
    for value in range(20):
        step.assign(value)
        index = sample()
        assert index.dtype == tf.int32 and index.shape == ()
        second.append(int(index))
    eager = [int(task_sampler.sample_task_index(cumulative, value, seed=7)) for value in range(20)]
    assert first == second == eager
    assert len(set(first)) > 1
    other_seed = [int(task_sampler.sample_task_index(cumulative, v, seed=8)) for v in range(20)]
    assert other_seed != first


def test_sample_task_index_frequencies_match_distribution():
    sampler = task_sampler.ProportionalTaskSampler({"a": 1, "b": 3, "c": 6})
    cumulative = sampler.task_cumulative_distribution(0)

    @tf.function
    def sample_all():
        return tf.map_fn(
            lambda step: task_sampler.sample_task_index(cumulative, step, seed=0),
            tf.range(10000, dtype=tf.int64),
            fn_output_signature=tf.int32,
        )

    counts = np.bincount(sample_all().numpy(), minlength=3)
    np.testing.assert_allclose(counts / 10000, [0.1, 0.3, 0.6], atol=0.02)


def test_sample_task_index_never_draws_zero_probability_task():
    cumulative = tf.constant([0.0, 0.5, 0.5, 1.0])
    indices = {int(task_sampler.sample_task_index(cumulative, step)) for step in range(300)}
    assert indices == {1, 3}


def test_sample_task_index_draw_on_a_boundary_goes_to_the_next_task():
    # The draw is stateless_uniform([], seed=[seed, step]); a task of zero mass
    # whose cumulative entry equals the draw exactly must not be chosen.
    draw = tf.random.stateless_uniform([], seed=tf.constant([5, 42], tf.int64))
    cumulative = tf.stack([draw, draw, tf.constant(1.0)])
    assert int(task_sampler.sample_task_index(cumulative, tf.constant(42, tf.int64), seed=5)) == 2


def test_sample_task_index_clamps_to_last_task():
    # Round-off can leave the last entry below the draw; the index must stay valid.
    cumulative = tf.zeros([3])
    for step in range(5):
        assert int(task_sampler.sample_task_index(cumulative, step)) == 2


def test_all_replicas_sample_the_same_task(two_cpu_strategy):
    cumulative = tf.constant([0.25, 0.5, 0.75, 1.0])
    with two_cpu_strategy.scope():
        step = tf.Variable(0, dtype=tf.int64)

    @tf.function
    def sample():
        return two_cpu_strategy.run(
            lambda: task_sampler.sample_task_index(cumulative, step, seed=3)
        )

    for value in range(10):
        step.assign(value)
        per_replica = two_cpu_strategy.experimental_local_results(sample())
        assert len({int(index) for index in per_replica}) == 1


@pytest.mark.parametrize(
    "sampler_type, cls, check",
    [
        ("uniform", task_sampler.UniformTaskSampler, lambda s: True),
        ("proportional", task_sampler.ProportionalTaskSampler, lambda s: s.alpha == 0.5),
        (
            "annealing",
            task_sampler.AnnealingTaskSampler,
            lambda s: (s.steps_per_epoch, s.total_steps) == (3, 30),
        ),
    ],
)
def test_get_task_sampler(sampler_type, cls, check):
    config = configs.TaskSamplingConfig(
        {
            "type": sampler_type,
            "proportional": {"alpha": 0.5},
            "annealing": {"steps_per_epoch": 3, "total_steps": 30},
        }
    )
    sampler = task_sampler.get_task_sampler(config, {"a": 1.0, "b": 2.0})
    assert type(sampler) is cls
    assert check(sampler)
    assert sampler.task_weights == {"a": 1.0, "b": 2.0}


def test_get_task_sampler_unknown_type():
    config = configs.TaskSamplingConfig(type="softmax")
    with pytest.raises(ValueError) as error:
        task_sampler.get_task_sampler(config, {"a": 1.0})
    message = str(error.value)
    assert "trainer.task_sampler.type" in message
    assert "softmax" in message
    for allowed in configs.SAMPLER_TYPES:
        assert allowed in message


@pytest.mark.parametrize(
    "weights, match",
    [
        ({}, "empty"),
        ({"a": 1.0, "b": -0.5}, r"task_weights\['b'\]"),
        ({"a": 0.0, "b": 0}, "all zero"),
        ({"a": float("nan")}, r"task_weights\['a'\]"),
        ({"a": None}, r"task_weights\['a'\]"),
    ],
)
def test_bad_task_weights(weights, match):
    for make in (
        task_sampler.UniformTaskSampler,
        task_sampler.ProportionalTaskSampler,
        lambda w: task_sampler.AnnealingTaskSampler(w, 10, 50),
    ):
        with pytest.raises(ValueError, match=match):
            make(weights)


@pytest.mark.parametrize(
    "steps_per_epoch, total_steps, match",
    [
        (0, 10, "steps_per_epoch"),
        (-5, 10, "steps_per_epoch"),
        (2.5, 10, "steps_per_epoch"),
        (10, 9, "total_steps"),
    ],
)
def test_bad_annealing_steps(steps_per_epoch, total_steps, match):
    with pytest.raises(ValueError, match=match):
        task_sampler.AnnealingTaskSampler({"a": 1.0}, steps_per_epoch, total_steps)


def test_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        task_sampler.ProportionalTaskSampler({"a": 1.0}, alpha=float("inf"))


def test_task_sampler_is_abstract():
    with pytest.raises(TypeError):
        task_sampler.TaskSampler({"a": 1.0})


def test_temperature_sampler_by_hand():
    sampler = task_sampler.TemperatureTaskSampler({"a": 100, "b": 400}, temperature=2.0)
    # p ∝ n ** (1/2): 10 and 20.
    np.testing.assert_allclose(sampler.task_cumulative_distribution(0).numpy(), [1 / 3, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        task_sampler.TemperatureTaskSampler({"a": 1}, temperature=0.0)


def test_round_robin_visits_tasks_in_order():
    sampler = task_sampler.RoundRobinTaskSampler({"a": 1, "b": 1, "c": 1})
    every = tf.constant([True, True, True])
    assert [int(sampler.task_index(step, 0, every)[0]) for step in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    no_b = tf.constant([True, False, True])
    assert [int(sampler.task_index(step, 0, no_b)[0]) for step in range(4)] == [0, 2, 0, 2]
    assert not bool(sampler.task_index(0, 0, tf.constant([False] * 3))[1])


def test_epoch_shuffled_sees_every_batch_once_per_epoch():
    sampler = task_sampler.EpochShuffledTaskSampler({"a": 3, "b": 1, "c": 2})
    active = tf.constant([True, True, True])
    epochs = [[int(sampler.task_index(e * 6 + i, 5, active)[0]) for i in range(6)] for e in range(3)]
    for order in epochs:
        assert sorted(order) == [0, 0, 0, 1, 2, 2]
    assert len({tuple(order) for order in epochs}) > 1  # shuffled differently per epoch
    # Same (seed, step) -> same task: a resumed run replays the order.
    assert epochs[1] == [int(sampler.task_index(6 + i, 5, active)[0]) for i in range(6)]
    with pytest.raises(ValueError, match="batches_per_epoch"):
        task_sampler.EpochShuffledTaskSampler({"a": 0})


def test_get_task_sampler_builds_the_new_types():
    from multitask import configs

    names = {"a": 1.0, "b": 1.0}
    config = configs.TaskSamplingConfig(type="temperature", temperature={"temperature": 2.0, "dataset_sizes": (1, 4)})
    sampler = task_sampler.get_task_sampler(config, names)
    assert isinstance(sampler, task_sampler.TemperatureTaskSampler) and sampler.temperature == 2.0
    rr = task_sampler.get_task_sampler(configs.TaskSamplingConfig(type="round_robin"), names)
    assert isinstance(rr, task_sampler.RoundRobinTaskSampler)
    with pytest.raises(ValueError, match="epoch_shuffled.batches_per_epoch has 1 entries"):
        task_sampler.get_task_sampler(
            configs.TaskSamplingConfig(type="epoch_shuffled", epoch_shuffled={"batches_per_epoch": (3,)}), names
        )


def test_weights_tensor_replaces_the_python_weights():
    proportional = task_sampler.ProportionalTaskSampler({"a": 1, "b": 3}, alpha=2.0)
    np.testing.assert_allclose(
        proportional.task_cumulative_distribution(0, tf.constant([1.0, 3.0])),
        proportional.task_cumulative_distribution(0), rtol=1e-6)
    np.testing.assert_allclose(proportional.task_cumulative_distribution(0, tf.constant([3.0, 1.0])),
                               [0.9, 1.0], rtol=1e-6)  # 9 / (9 + 1)
    assert list(proportional.task_cumulative_distribution(0, tf.constant([0.0, 0.0])).numpy()) == [0.0, 0.0]
    annealing = task_sampler.AnnealingTaskSampler({"a": 1, "b": 2, "c": 4}, 10, 50)
    for step in (0, 25, 60):
        np.testing.assert_allclose(
            annealing.task_cumulative_distribution(step, tf.constant([1.0, 2.0, 4.0])),
            annealing.task_cumulative_distribution(step), rtol=1e-6)
    assert proportional.uses_weights and annealing.uses_weights
    assert not any(cls.uses_weights for cls in (task_sampler.UniformTaskSampler, task_sampler.RoundRobinTaskSampler,
                                                task_sampler.TemperatureTaskSampler,
                                                task_sampler.EpochShuffledTaskSampler))


def test_task_index_reads_a_weights_variable_without_retracing():
    sampler = task_sampler.ProportionalTaskSampler({"a": 1, "b": 1})
    uniform = task_sampler.UniformTaskSampler({"a": 1, "b": 1})
    weights = tf.Variable([0.0, 1.0])
    active = tf.constant([True, True])
    draw = tf.function(lambda s, step: s.task_index(step, 0, active, weights=weights))
    assert {int(draw(sampler, tf.constant(step, tf.int64))[0]) for step in range(20)} == {1}
    weights.assign([1.0, 0.0])
    assert {int(draw(sampler, tf.constant(step, tf.int64))[0]) for step in range(20)} == {0}
    weights.assign([0.0, 0.0])
    assert not bool(draw(sampler, tf.constant(0, tf.int64))[1])
    assert {int(draw(uniform, tf.constant(step, tf.int64))[0]) for step in range(20)} == {0, 1}
    assert draw.experimental_get_tracing_count() == 2  # once per sampler
