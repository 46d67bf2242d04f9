"""Keeps the checkpoint with the best value of one evaluation metric."""
import os
from typing import Any, Mapping, Optional

from official.core import train_utils

METRIC_COMPARISONS = ("higher", "lower")


def _metric_path(metric_name: str):
    """Splits "<task>.<metric>" (or Model Garden's "a|b|c") into its keys."""
    if "|" in metric_name:
        return metric_name.split("|")
    task, _, metric = metric_name.partition(".")
    return [task, metric] if metric else [task]


def _leaf_names(logs: Mapping[str, Any], prefix: str = ""):
    for key, value in logs.items():
        if isinstance(value, Mapping):
            yield from _leaf_names(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


class BestCheckpointExporter(train_utils.BestCheckpointExporter):
    """Model Garden's best-checkpoint exporter, keyed by "<task>.<metric>".

    It exports `model_dir/<subdir>/best_ckpt-*` and `info.json` (the logs of the
    best evaluation) whenever an evaluation beats the best one so far, the
    checkpoint first: `info.json` never describes a checkpoint whose save a
    crash interrupted.
    """

    def __init__(self, export_dir: str, metric_name: str, metric_comp: str, selector=None):
        """Creates the exporter.

        Args:
          export_dir: Where the best checkpoint and its info.json go.
          metric_name: "<task>.<metric>" as in the evaluator's results, e.g.
            "circle.accuracy"; Model Garden's "circle|accuracy" also works.
          metric_comp: "higher" or "lower" (which value is better).
          selector: Optional `model_selection.ModelSelector`; its score is
            added to the logs as "aggregate.<method>" (and `metric_name` may
            name it).

        Raises:
          ValueError: An empty metric name or an unknown comparison.
        """
        self._selector = selector
        if metric_comp not in METRIC_COMPARISONS:
            raise ValueError(
                f"trainer.best_checkpoint_metric_comp is {metric_comp!r}; allowed: "
                f"{', '.join(METRIC_COMPARISONS)}."
            )
        if not metric_name:
            raise ValueError("trainer.best_checkpoint_eval_metric is empty; use '<task>.<metric>'.")
        self._display_name = metric_name
        self._keys = _metric_path(metric_name)
        super().__init__(export_dir, "|".join(self._keys), metric_comp)

    def maybe_export_checkpoint(self, checkpoint, eval_logs, global_step, write_logs=True) -> bool:
        """Saves `checkpoint` if `eval_logs` hold a new best value.

        Raises:
          KeyError: `eval_logs` have no such metric; the message lists those they have.
        """
        if self._selector is not None:
            eval_logs = dict(eval_logs, aggregate={self._selector.name: self._selector.score(eval_logs)})
        leaf = eval_logs
        for key in self._keys:
            if not isinstance(leaf, Mapping) or key not in leaf:
                raise KeyError(
                    f"trainer.best_checkpoint_eval_metric {self._display_name!r} is not among "
                    f"the evaluation results: {', '.join(_leaf_names(eval_logs))}."
                )
            leaf = leaf[key]
        # pylint: disable=protected-access  (Model Garden's exporter state)
        if self._best_ckpt_logs is not None and not self._new_metric_is_better(self._best_ckpt_logs, eval_logs):
            return False
        # The checkpoint before info.json (Model Garden writes them the other
        # way round): a run killed in between keeps the previous info.json,
        # so once resumed it finds the same evaluation better again and
        # exports it, instead of an info.json naming weights never saved.
        self._get_checkpoint_manager(checkpoint).save()
        self._best_ckpt_logs = eval_logs
        if write_logs:
            self.export_best_eval_metric(eval_logs, global_step)
        return True


def maybe_create_best_ckpt_exporter(params, model_dir: str) -> Optional[BestCheckpointExporter]:
    """Returns an exporter when `params.trainer` asks for one, else None."""
    trainer = params.trainer
    # Imported here: model_selection pulls in TensorFlow.
    from multitask import model_selection  # pylint: disable=g-import-not-at-top

    selector = model_selection.build_selector(getattr(trainer, "model_selection", None))
    metric_name, comp = trainer.best_checkpoint_eval_metric, trainer.best_checkpoint_metric_comp
    if selector is not None and not metric_name:
        metric_name = f"aggregate.{selector.name}"
        if selector.name == "delta_m":
            comp = "higher"
    if not (model_dir and trainer.best_checkpoint_export_subdir and metric_name):
        return None
    return BestCheckpointExporter(
        os.path.join(model_dir, trainer.best_checkpoint_export_subdir), metric_name, comp, selector=selector
    )
