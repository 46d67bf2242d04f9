"""Synthetic user-item interactions, generated from a seed (no downloads).

Each example is a user id, an item id and a 4-number context. Its rating is
`user_bias[user] + item_bias[item] + context @ weights + noise`; it is a click
when the rating plus some more noise is positive. The biases and weights are
one fixed world (seed 1234); each split draws its own examples.
"""
import numpy as np

NUM_USERS = 20
NUM_ITEMS = 30
CONTEXT_DIM = 4
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def interactions(split: str, num_examples: int):
    """Returns `(features, targets)`: features a dict of arrays, targets `{"rating", "click"}`."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split is {split!r}; allowed: {', '.join(SPLIT_SEEDS)}.")
    world = np.random.default_rng(1234)
    user_bias = world.normal(size=NUM_USERS)
    item_bias = world.normal(size=NUM_ITEMS)
    weights = world.normal(size=CONTEXT_DIM)
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    user = rng.integers(0, NUM_USERS, num_examples)
    item = rng.integers(0, NUM_ITEMS, num_examples)
    context = rng.normal(size=(num_examples, CONTEXT_DIM))
    rating = user_bias[user] + item_bias[item] + context @ weights + 0.1 * rng.normal(size=num_examples)
    click = (rating + 0.5 * rng.normal(size=num_examples) > 0).astype(np.float32)
    features = {"user": user.astype(np.int32), "item": item.astype(np.int32), "context": context.astype(np.float32)}
    return features, {"rating": rating.astype(np.float32)[:, None], "click": click[:, None]}
