"""The README's Python example runs as written and prints the documented keys."""
import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_composition_example_runs(capsys):
    with open(README, encoding="utf-8") as stream:
        example = re.findall(r"```python\n(.*?)```", stream.read(), re.S)[0]
    exec(compile(example, "README.md example", "exec"), {})  # pylint: disable=exec-used
    printed = capsys.readouterr().out
    for key in ("'circle'", "'square'", "'task_steps': 500", "'total_loss'", "'learning_rate': 0.01"):
        assert key in printed
