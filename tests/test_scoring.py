"""Tests for split evaluation and Snorkel-style scores."""
import pytest

from official.core import exp_factory

import toy
from multitask.experiments import shapes  # noqa: F401  (registers the shapes experiments)
from multitask import model_factory
from multitask import multitask
from multitask import scoring


def _shapes_run():
    params = exp_factory.get_exp_config("shapes")
    task = multitask.MultiTask.from_config(params.task)
    model = model_factory.build_model(params.task)
    model.build()
    return task, model


def test_score_names_every_task_split_and_metric():
    task, model = _shapes_run()
    scores = scoring.score(task, model, splits=("validation", "test"))
    for name in ("circle", "square", "inv_circle"):
        for split in ("validation", "test"):
            assert f"{name}/shapes/{split}/accuracy" in scores
            assert f"{name}/shapes/{split}/loss" in scores
    assert len(scores) == 3 * 2 * 2
    assert all(0.0 <= scores[k] <= 1.0 for k in scores if k.endswith("accuracy"))


def test_evaluate_split_uses_the_requested_split():
    task, model = _shapes_run()
    test = scoring.evaluate_split(task, model, "test")
    validation = scoring.evaluate_split(task, model, "validation")
    assert test["circle"]["loss"] != validation["circle"]["loss"]


def test_split_needs_a_split_field():
    with pytest.raises(ValueError, match="'foo'.*has no `split` field"):
        scoring.split_data_config(toy.ToyTask(toy.FooConfig()), "test")
