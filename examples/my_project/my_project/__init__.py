"""A user's own multi-task project: its Task, model and experiment, outside multitask.

`my_project.experiments` registers the `interactions` experiment; the package
declares that module under the `multitask.experiments` entry-point group
(pyproject.toml), so `python -m multitask.train --experiment=interactions`
finds it once the package is installed.
"""
