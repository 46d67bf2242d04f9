"""A KerasHub backbone as the shared encoder (the `text_tags` experiment's model).

A tiny `keras_hub.models.BertBackbone`, built from its constructor with random
weights (never a preset), takes a dict of inputs and returns a dict; one task
reads its `pooled_output`, the other its `sequence_output`.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from multitask import base_trainer
from multitask import evaluator as evaluator_lib
from multitask import export
from multitask import interleaving_trainer
from multitask import multitask
from multitask import serving
from multitask import task_sampler
from multitask import weighting
from multitask.experiments import text_tags


def _tasks():
    return multitask.MultiTask([text_tags.TextTagsTask(text_tags.text_tags_task_config(n)) for n in text_tags.TASKS])


def _small_data(split="train", batch=16):
    return text_tags.TextTagsDataConfig(split=split, num_examples=256, global_batch_size=batch,
                                        is_training=split == "train", drop_remainder=split == "train")


def test_labels_follow_the_rules():
    features, labels = text_tags.text_tags_arrays("validation", 50)
    tokens = features["token_ids"]
    assert tokens.shape == (50, text_tags.SEQUENCE_LENGTH) and np.all(tokens[:, 0] == 1)
    classes = (tokens[:, 1:] - 2) // text_tags.WORDS_PER_CLASS
    assert classes.min() >= 0 and classes.max() < text_tags.NUM_CLASSES
    np.testing.assert_array_equal(labels["tags"][:, 1:], classes)
    assert np.all(labels["tags"][:, 0] == -1)
    for row, topic in zip(classes, labels["topic"]):
        counts = np.bincount(row, minlength=text_tags.NUM_CLASSES)
        assert counts[topic] == counts.max() and topic == np.flatnonzero(counts == counts.max())[0]
    assert len(set(labels["topic"].tolist())) == text_tags.NUM_CLASSES


def test_shared_backbone_trains_both_tasks_evaluates_and_exports(tmp_path, two_cpu_strategy):
    """Joint single pass under MirroredStrategy, the evaluator, then both exports in a fresh process."""
    keras.utils.set_random_seed(0)
    shared = text_tags.text_tags_dataset(_small_data())  # (features, {"topic": ..., "tags": ...})
    with two_cpu_strategy.scope():
        task = _tasks()
        model = text_tags.TextTagsModel(text_tags.TextTagsModelConfig())
        embedding = model.encoder.token_embedding.embeddings.numpy().copy()
        trainer = base_trainer.MultiTaskBaseTrainer(task, model, keras.optimizers.Adam(0.01), train_datasets=shared)
        first = trainer.train(tf.constant(3))
        last = trainer.train(tf.constant(40))
        eval_data = {name: text_tags.text_tags_dataset(_small_data("validation"), name) for name in text_tags.TASKS}
        logs = evaluator_lib.MultiTaskEvaluator(task.tasks, model, eval_datasets=eval_data).evaluate(-1)
    assert last["tags"]["training_loss"] < 0.5 * first["tags"]["training_loss"]
    assert last["topic"]["training_loss"] < first["topic"]["training_loss"]
    assert not np.allclose(embedding, model.encoder.token_embedding.embeddings.numpy())
    assert set(logs) == {"topic", "tags"} and all(set(v) == {"validation_loss", "accuracy"} for v in logs.values())
    assert logs["tags"]["accuracy"] > 0.5

    keras_path, served = str(tmp_path / "text.keras"), str(tmp_path / "served")
    export.export_tasks(model, ["topic", "tags"], keras_path)
    serving.export_saved_model(model, ["topic", "tags"], served)
    # Every variable once: the backbone is not copied for the per-task signatures.
    stored = [name for name, _ in tf.train.list_variables(os.path.join(served, "variables", "variables"))
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(stored) == len(model.variables)
    features, _ = text_tags.text_tags_arrays("test", 5)
    np.savez(tmp_path / "features.npz", **features)
    expected = {name: model.sub_tasks[name](features).numpy().tolist() for name in text_tags.TASKS}
    result = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["modules_after_saved_model"] == [] and got["modules_after_keras"] == []
    assert sorted(got["signatures"]) == ["serving_default", "tags", "topic"]
    assert got["inputs"] == ["padding_mask", "segment_ids", "token_ids"]
    assert got["topic_outputs"] == ["topic"]
    for source in ("saved_model", "keras"):
        for name in text_tags.TASKS:
            np.testing.assert_allclose(got[source][name], expected[name], rtol=1e-4, atol=1e-5)


# Loads the SavedModel with TensorFlow alone, then the .keras file with Keras and KerasHub alone.
_FRESH_PROCESS = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
ours = lambda: sorted(m for m in sys.modules if m.split(".")[0] in ("multitask", "toy"))
directory = sys.argv[1]
features = dict(np.load(os.path.join(directory, "features.npz")))
served = tf.saved_model.load(os.path.join(directory, "served"))
default = served.signatures["serving_default"]
outputs = default(**{k: tf.constant(v) for k, v in features.items()})
result = {
    "signatures": list(served.signatures),
    "inputs": sorted(default.structured_input_signature[1]),
    "topic_outputs": sorted(served.signatures["topic"].structured_outputs),
    "saved_model": {k: v.numpy().tolist() for k, v in outputs.items()},
    "modules_after_saved_model": ours(),
}
import keras, keras_hub
reloaded = keras.saving.load_model(os.path.join(directory, "text.keras"))
result["keras"] = {k: np.asarray(v).tolist() for k, v in reloaded(features).items()}
result["modules_after_keras"] = ours()
print(json.dumps(result))
"""


def test_interleaving_trainer_trains_each_sampled_task():
    keras.utils.set_random_seed(1)
    task = _tasks()
    model = text_tags.TextTagsModel(text_tags.TextTagsModelConfig())
    heads = {name: [v.numpy().copy() for v in model.heads[name].variables] for name in text_tags.TASKS}
    trainer = interleaving_trainer.MultiTaskInterleavingTrainer(
        task, model, keras.optimizers.Adam(0.01), task_sampler.UniformTaskSampler(task.sampling_weights),
        train_datasets={name: text_tags.text_tags_dataset(_small_data(), name) for name in text_tags.TASKS})
    logs = trainer.train(tf.constant(6))
    steps = {name: logs[name]["task_steps"] for name in text_tags.TASKS}
    assert sum(steps.values()) == 6
    for name in text_tags.TASKS:
        moved = any(not np.array_equal(a, v.numpy()) for a, v in zip(heads[name], model.heads[name].variables))
        assert moved == (steps[name] > 0)


def test_rep_grad_on_a_dict_representation_is_refused():
    task = _tasks()
    model = text_tags.TextTagsModel(text_tags.TextTagsModelConfig())
    with pytest.raises(ValueError, match="one representation tensor; the encoder 'backbone' returns a dict"):
        base_trainer.MultiTaskBaseTrainer(
            task, model, keras.optimizers.Adam(0.01), train_datasets=text_tags.text_tags_dataset(_small_data()),
            weighting=weighting.get_weighting("mgda", 2), rep_grad=True)
