"""Tests of the quality benchmark: its plan of runs, Δm, the tables, and a tiny real run."""
import json

import pytest

from benchmarks import quality
from multitask import weighting


def test_delta_m_matches_a_hand_computation():
    baselines = {"a": 0.80, "b": 0.50}
    scores = {"a": 0.84, "b": 0.45}
    # (0.84 - 0.80) / 0.80 = +5%, (0.45 - 0.50) / 0.50 = -10%: mean -2.5%.
    assert quality.delta_m(scores, baselines) == pytest.approx(-2.5)
    assert quality.delta_m(baselines, baselines) == 0.0


def test_method_overrides_set_rep_grad_only_where_a_method_needs_it():
    assert quality.method_overrides("graddrop", shared_input=True) == {
        "trainer.weighting.type": "graddrop", "trainer.rep_grad": True}
    assert quality.method_overrides("graddrop", shared_input=False) is None
    assert quality.method_overrides("pcgrad", shared_input=True) == {"trainer.weighting.type": "pcgrad"}
    assert quality.method_overrides("mgda", shared_input=False) == {"trainer.weighting.type": "mgda"}
    assert quality.method_overrides("uw", shared_input=True) == {"trainer.weighting.type": "uw"}
    with pytest.raises(ValueError, match="Unknown weighting 'nope'"):
        quality.method_overrides("nope", shared_input=True)
    assert [m for m in weighting.known_weightings() if weighting.needs_rep_grad(m)] == ["graddrop"]


def test_default_methods_are_all_but_static_with_ew_first():
    methods = quality.default_methods()
    assert methods[0] == "ew" and "static" not in methods
    assert sorted(methods + ["static"]) == weighting.known_weightings()


def test_seeds_reach_the_runtime_and_the_methods_that_draw_random_numbers():
    run = quality.Run("pcgrad", "multi_digits", {"trainer.weighting.type": "pcgrad"})
    assert quality.seeded(run, 2) == {
        "trainer.weighting.type": "pcgrad", "runtime.seed": 2, "trainer.weighting.seed": 2}
    assert quality.seeded(run._replace(overrides={"trainer.weighting.type": "mgda"}), 2) == {
        "trainer.weighting.type": "mgda", "runtime.seed": 2}
    assert quality.seeded(quality.Run("single-task", "shapes_circle_alone", {}), 1) == {"runtime.seed": 1}
    assert quality.override_text({"trainer.rep_grad": True, "runtime.seed": 0}) == (
        "trainer.rep_grad=true,runtime.seed=0")


def test_plan_of_an_experiment_with_separate_datasets():
    runs, notes = quality.plan("shapes", ["ew", "graddrop", "cagrad"], ["mmoe"])
    assert [(r.row, r.experiment) for r in runs] == [
        ("single-task", "shapes_circle_alone"), ("single-task", "shapes_square_alone"),
        ("single-task", "shapes_inv_circle_alone"), ("ew", "shapes"), ("cagrad", "shapes"),
        ("interleaving", "shapes_interleaving")]
    assert len(notes) == 2 and notes[0].startswith("graddrop") and "shapes_configured" in notes[1]


def test_plan_of_an_experiment_with_a_shared_dataset_and_architectures():
    runs, notes = quality.plan("multi_digits", ["ew", "graddrop"], ["mmoe", "cross_stitch"])
    assert not notes
    assert [r.row for r in runs] == [
        "single-task", "single-task", "ew", "graddrop (rep_grad)", "mmoe (ew)", "cross_stitch (ew)"]
    assert runs[3].overrides == {"trainer.weighting.type": "graddrop", "trainer.rep_grad": True}
    assert runs[4].experiment == "multi_digits_configured"
    assert runs[4].overrides == {"task.model.architecture.type": "mmoe", "trainer.weighting.type": "ew"}
    with pytest.raises(ValueError, match="experiment is 'nope'"):
        quality.plan("nope", ["ew"], [])
    with pytest.raises(ValueError, match="not a multi-task experiment"):
        quality.plan("shapes_circle_single", ["ew"], [])


def test_summary_and_table_from_run_records():
    records = {
        "single-task": [
            {"seed": 0, "accuracy": {"a": 0.8}, "seconds": 1.0}, {"seed": 0, "accuracy": {"b": 0.5}, "seconds": 2.0},
            {"seed": 1, "accuracy": {"a": 0.8}, "seconds": 1.0}, {"seed": 1, "accuracy": {"b": 0.5}, "seconds": 2.0}],
        "ew": [{"seed": 0, "accuracy": {"a": 0.82, "b": 0.44}, "seconds": 4.0},
               {"seed": 1, "accuracy": {"a": 0.86, "b": 0.46}, "seconds": 6.0}],
        "broken": [{"seed": 0, "error": "NonFiniteLossError: ..."}],
    }
    summary = quality.summarize(records, ["a", "b"])
    assert summary["single-task"]["seconds"] == 3.0 and summary["single-task"]["delta_m"] == 0.0
    ew = summary["ew"]
    assert ew["mean"] == pytest.approx({"a": 0.84, "b": 0.45})
    assert ew["std"]["a"] == pytest.approx(0.0282843, abs=1e-6)
    assert ew["delta_m"] == pytest.approx(-2.5) and ew["seconds"] == 5.0
    assert summary["broken"] == {"mean": {}, "std": {}, "delta_m": None, "seconds": None, "failed": 1}
    lines = quality.markdown_table(summary, ["a", "b"]).splitlines()
    assert lines[0] == "| method | a | b | Δm (%) | s/run |"
    assert lines[3] == "| ew | 0.840 ± 0.028 | 0.450 ± 0.014 | -2.50 | 5.0 |"
    assert lines[4] == "| broken | failed | failed |  | (1 failed) |"


def test_a_tiny_table_on_shapes_runs_through_the_launcher(tmp_path, capsys):
    out = tmp_path / "quality.json"
    quality.main(["--experiments", "shapes", "--methods", "ew", "--architectures", "--seeds", "1",
                  "--train_steps", "10", "--out", str(out)])
    with open(out, encoding="utf-8") as stream:
        result = json.load(stream)["experiments"]["shapes"]
    assert [r["row"] for r in result["runs"]] == ["single-task"] * 3 + ["ew", "interleaving"]
    assert result["runs"][3]["params_override"] == (
        "trainer.weighting.type=ew,runtime.seed=0,trainer.train_steps=10")
    assert all(0.0 <= v <= 1.0 for r in result["runs"] for v in r["accuracy"].values())
    assert set(result["summary"]["ew"]["mean"]) == {"circle", "square", "inv_circle"}
    assert result["summary"]["ew"]["delta_m"] is not None
    printed = capsys.readouterr().out
    assert "| method | circle | square | inv_circle | Δm (%) | s/run |" in printed
    assert "Not run: graddrop" not in printed
