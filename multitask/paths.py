"""Paths on any filesystem TensorFlow has: local ones, `gs://` buckets, `ram://` in tests.

Everything the launcher, train_lib, the evaluator, early stopping, model
selection, report and export read or write goes through `tf.io.gfile`, so a
model_dir such as `gs://bucket/run` works as a local one. These helpers are
the checks that `os.path` would do for a local path.
"""
import os
import uuid

import tensorflow as tf

from multitask import errors


class FilesystemError(ValueError):
    """A path TensorFlow cannot reach (one line naming the path)."""


def check_filesystem(path: str, field: str) -> None:
    """Raises a FilesystemError when TensorFlow has no filesystem for `path`'s scheme.

    Args:
      path: A local path or a URL such as `gs://bucket/run`.
      field: How the message names the path (e.g. "--model_dir").
    """
    try:
        tf.io.gfile.exists(path)
    except tf.errors.UnimplementedError as error:
        scheme = path.partition("://")[0]
        raise FilesystemError(
            f"{field}: {path!r}: TensorFlow has no filesystem for the scheme {scheme!r}; use a local "
            "path or a scheme TensorFlow supports (e.g. gs://; s3:// comes with tensorflow-io)."
        ) from error
    except tf.errors.OpError as error:
        raise FilesystemError(f"{field}: {path!r} cannot be accessed ({errors.one_line(error)}).") from error


def is_file(path: str) -> bool:
    """Whether `path` is an existing file (False also where TensorFlow has no filesystem for it)."""
    try:
        return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    except tf.errors.OpError:
        return False


def parent(path: str) -> str:
    """The directory above `path`; "" above a relative path's top, `/`, or a URL's `scheme://bucket`."""
    scheme, sep, rest = path.rstrip("/").rpartition("://")
    head = os.path.dirname(rest)
    return f"{scheme}{sep}{head}" if head else ""


def display(path: str) -> str:
    """`path` as a run prints it: absolute if local, as given if a URL."""
    return path if "://" in path else os.path.abspath(path)


def check_writable_directory(path: str, field: str) -> None:
    """Checks, without creating it, that `path` can be a directory this process writes.

    A probe file is written and removed in the nearest existing directory
    at or above a local `path`, or in `path` itself on an object store such
    as `gs://` (a real write: root passes access checks on read-only mounts,
    and buckets have no permission bits to read).

    Raises:
      FilesystemError: No filesystem for the scheme, `path` or one of its
        parents is a file, or the write fails.
    """
    check_filesystem(path, field)
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise FilesystemError(f"{field}: {path!r} is a file, not a directory.")
    existing = path
    while existing and not tf.io.gfile.exists(existing):
        existing = parent(existing)
    if existing and not tf.io.gfile.isdir(existing):
        raise FilesystemError(f"{field}: {path!r} is inside {existing!r}, which is a file.")
    # Object stores have no directories to create, and a run may write under a
    # prefix but not at the bucket's top: probe there in the path itself.
    object_store = "://" in path and not path.startswith("file://")
    where = path if object_store else (existing or ".")
    probe = os.path.join(where, f".multitask-write-probe-{uuid.uuid4().hex}")
    try:
        with tf.io.gfile.GFile(probe, "w") as stream:
            stream.write("")
        tf.io.gfile.remove(probe)
    except tf.errors.OpError as error:
        raise FilesystemError(f"{field}: {path!r} is not writable ({errors.one_line(error)}).") from error
