"""Normalization factory shared by every block.

`norm="batch"` (default) is Keras BatchNormalization with momentum 0.9; `"group"` is
GroupNormalization (Wu & He, 2018; used by Myronenko [8] for batch-size-1 3D
training); `"none"` is the identity. The choice is a model argument so the
three model families can be compared with the same normalization.

Reference: Ioffe & Szegedy, "Batch Normalization", ICML 2015;
Wu & He, "Group Normalization", ECCV 2018.
"""

import keras

NORMS = ("batch", "group", "none")


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def make_norm(norm, groups=8, name=None, dtype=None):
    """Return a normalization layer for channels-last feature maps.

    `dtype`: the owning layer's dtype policy, so that a sublayer follows it
    (also when a mixed-precision model is loaded under another global policy).
    """
    check_norm(norm)
    if norm == "batch":
        # momentum 0.9 (PyTorch's default): with Keras's 0.99 the moving statistics
        # of a short run still carry the initial (0, 1) and inference is off.
        return keras.layers.BatchNormalization(momentum=0.9, name=name, dtype=dtype)
    if norm == "group":
        return keras.layers.GroupNormalization(groups=groups, name=name, dtype=dtype)
    return keras.layers.Identity(name=name, dtype=dtype)


def check_groups(norm, groups, channels, layer_name):
    """GroupNormalization needs `channels % groups == 0`: fail early and clearly."""
    if norm == "group" and channels % groups:
        raise ValueError(
            f"{layer_name}: group normalization with groups={groups} needs a channel "
            f"count divisible by {groups}, got {channels} channels")
