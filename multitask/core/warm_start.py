"""Warm starts: restoring named objects from another run's checkpoint."""
from typing import Mapping

from absl import logging
import tensorflow as tf


def restore_items(items: Mapping[str, object], ckpt_dir_or_file: str) -> str:
    """Restores `items` (name -> trackable) from a checkpoint.

    The names are the checkpoint's top-level names (e.g. "model", or an
    "encoder" that a trainer saved from the model's `checkpoint_items`); the
    checkpoint may hold more, which is ignored.

    Args:
      items: What to restore, by name.
      ckpt_dir_or_file: A checkpoint prefix, or a directory whose latest
        checkpoint is read.

    Returns:
      The checkpoint path read.

    Raises:
      ValueError: A directory without checkpoints, or a checkpoint that lacks
        the variables of `items`.
    """
    path = ckpt_dir_or_file
    if tf.io.gfile.isdir(path):
        path = tf.train.latest_checkpoint(path)
        if not path:
            raise ValueError(f"init_checkpoint {ckpt_dir_or_file!r} is a directory without any checkpoint.")
    status = tf.train.Checkpoint(**items).read(path)
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"init_checkpoint {path!r} does not hold all of {sorted(items)}: {str(error).splitlines()[0]}"
        ) from error
    logging.info("Restored %s from %s", sorted(items), path)
    return path
