"""A model_dir on a non-local filesystem: TensorFlow's in-process `ram://` stands in for `gs://`.

The run is the user project's `interactions` experiment (examples/my_project):
its tower is a plain subclassed keras.Model, built lazily from the data, so a
resume restores into a model built after the trainer exists.
"""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from multitask import export
from multitask import paths
from multitask import report
from multitask import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A non-default size, so that an export that ignored the run's params.yaml could not restore the checkpoint.
OVERRIDE = ("trainer.steps_per_loop=2,trainer.summary_interval=2,trainer.validation_interval=2,"
            "trainer.checkpoint_interval=2,runtime.seed=3,task.model.hidden_units=12")


@pytest.fixture(name="user_modules")
def fixture_user_modules(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "examples", "my_project"))
    return ["my_project.experiments"]


def _run(user_modules, model_dir, steps, mode="train"):
    return train.run(train.launcher_flags(
        experiment="interactions", import_module=user_modules, model_dir=model_dir, mode=mode,
        params_override=f"{OVERRIDE},trainer.train_steps={steps}"))


def _checkpoint_values(model_dir):
    # Not tf.train.load_checkpoint: ram:// calls any prefix of a file a directory, "ckpt-6" included.
    reader = tf.compat.v1.train.NewCheckpointReader(tf.train.latest_checkpoint(model_dir))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_train_resume_evaluate_report_and_export_on_ram(user_modules, capsys):
    _run(user_modules, "ram://runs/straight", 6)
    _run(user_modules, "ram://runs/resumed", 4)
    _run(user_modules, "ram://runs/resumed", 6)  # Restores ckpt-4 into the lazily built model.
    assert tf.train.latest_checkpoint("ram://runs/resumed").endswith("ckpt-6")
    straight, resumed = _checkpoint_values("ram://runs/straight"), _checkpoint_values("ram://runs/resumed")
    assert sorted(straight) == sorted(resumed)
    assert "encoder/user_embedding/_embeddings/.ATTRIBUTES/VARIABLE_VALUE" in straight  # The lazily built tower.
    assert straight["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    for name, value in straight.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)

    run = "ram://runs/resumed"
    logs = _run(user_modules, run, 6, mode="continuous_eval")  # The latest checkpoint is the last: one evaluation.
    assert set(logs) == {"rating", "click"}
    assert tf.io.gfile.glob(f"{run}/validation/rating/events.out.tfevents.*")
    for name in ("params.yaml", "metrics.json", "operative_config.train.gin"):
        assert tf.io.gfile.exists(f"{run}/{name}"), name

    capsys.readouterr()
    assert report.main([run]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"{run}/report.png"
    with tf.io.gfile.GFile(f"{run}/report.png", "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    with tf.io.gfile.GFile(f"{run}/report.md") as stream:
        table = stream.read().splitlines()
    assert table[0] == "| task | step | training_loss | validation step | accuracy | rmse | validation_loss |"
    assert [row.split(" | ")[:2] for row in table[2:]] == [["| click", "6"], ["| rating", "6"]]
    assert printed[:len(table)] == table

    # The run's params.yaml (hidden_units=12) is applied: without it the checkpoint would not restore.
    written = export.export_run("interactions", run, ["rating", "click"], output="ram://exports/run.keras",
                                saved_model="ram://exports/served", import_module=user_modules)
    assert written == ["ram://exports/run.keras", "ram://exports/served"]
    served = tf.saved_model.load("ram://exports/served")
    features = {"user": tf.constant([1, 2]), "item": tf.constant([3, 4]), "context": tf.ones((2, 4))}
    both = served.signatures["serving_default"](**features)
    rating = served.signatures["rating"](**features)
    assert set(both) == {"rating", "click"} and set(rating) == {"rating"}
    np.testing.assert_allclose(rating["rating"], both["rating"], rtol=1e-6)
    reloaded = keras.saving.load_model("ram://exports/run.keras")
    np.testing.assert_allclose(reloaded(features)["click"], both["click"], rtol=1e-5, atol=1e-6)


def test_an_unknown_scheme_is_one_line_before_anything_runs(capsys):
    message = ("--model_dir: 'nosuchfs://b/run': TensorFlow has no filesystem for the scheme 'nosuchfs'; use a "
               "local path or a scheme TensorFlow supports (e.g. gs://; s3:// comes with tensorflow-io).")
    with pytest.raises(train.UsageError) as error:
        train.run(train.launcher_flags(model_dir="nosuchfs://b/run"))
    assert str(error.value) == message
    with pytest.raises(train.UsageError, match="no filesystem for the scheme 'nosuchfs'"):
        export.export_run("shapes", "nosuchfs://b/run", ["circle"], output="x.keras")
    assert report.main(["nosuchfs://b/run"]) == 2
    assert "MODEL_DIR: 'nosuchfs://b/run': TensorFlow has no filesystem" in capsys.readouterr().err


def test_model_dir_checks_on_ram():
    with tf.io.gfile.GFile("ram://checks/a_file", "w") as stream:
        stream.write("x")
    with pytest.raises(paths.FilesystemError, match="is a file, not a directory"):
        paths.check_writable_directory("ram://checks/a_file", "--model_dir")
    with pytest.raises(paths.FilesystemError, match="inside 'ram://checks/a_file', which is a file"):
        paths.check_writable_directory("ram://checks/a_file/run", "--model_dir")
    paths.check_writable_directory("ram://checks/new/run", "--model_dir")
    assert not tf.io.gfile.glob("ram://checks/new/run/*")  # The probe is removed.
    assert paths.parent("gs://bucket/a/run") == "gs://bucket/a" and paths.parent("gs://bucket") == ""
    assert paths.parent("runs/x") == "runs" and paths.parent("/") == ""
