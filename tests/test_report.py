"""Tests for the report command: a PNG from a real short run's summaries."""
import struct

import pytest

import test_train
from multitask import report
from multitask import train


def test_report_png_from_a_real_run(tmp_path, capsys):
    train.run(train.launcher_flags(model_dir=str(tmp_path), params_override=test_train.TINY))
    assert report.main([str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path == str(tmp_path / "report.png")
    with open(path, "rb") as stream:
        header = stream.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width >= 1000 and height >= 300
    train_curves = report.read_task_scalars(str(tmp_path / "train"))
    assert set(train_curves) == {"circle", "square", "inv_circle"}
    assert [step for step, _ in train_curves["circle"]["training_loss"]] == [2, 4]
    assert "accuracy" in report.read_task_scalars(str(tmp_path / "validation"))["square"]


def test_report_without_summaries_fails_cleanly(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "no per-task training summaries" in capsys.readouterr().err
    with pytest.raises(ValueError):
        report.write_report(str(tmp_path))
