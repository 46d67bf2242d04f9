"""The README's Python example runs as written and prints the documented keys."""
import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_composition_example_runs(capsys, two_cpu_strategy):
    with open(README, encoding="utf-8") as stream:
        example = re.findall(r"```python\n(.*?)```", stream.read(), re.S)[0]
    # The suite shares one MirroredStrategy (see conftest.two_cpu_strategy).
    assert "tf.distribute.MirroredStrategy()" in example
    example = example.replace("tf.distribute.MirroredStrategy()", "suite_strategy")
    exec(compile(example, "README.md example", "exec"), {"suite_strategy": two_cpu_strategy})  # pylint: disable=exec-used
    printed = capsys.readouterr().out
    for key in ("'circle'", "'square'", "'task_steps': 500", "'total_loss'", "'learning_rate': 0.01"):
        assert key in printed
