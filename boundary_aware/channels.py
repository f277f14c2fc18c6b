"""A model's input channels: MRI sequences, and their neighbouring slices as context.

A case holds one volume per MRI sequence. A model's input channels are the
sequences it reads, in order, and, where it takes neighbouring slices as
context (2.5D, `data.context_slices` = k), each sequence on the k axial slices
below and above as well. The channel names alone say what a model takes: a
context channel is named after its sequence and offset, "t1c[z-1]", and the
slice itself keeps the sequence's plain name, so that k = 0 is exactly the
paper's input.

Reference: Hatamizadeh et al. 2019, Sec. 3.1 (T1c slices); docs/design.md
("Channels: where the count comes from", "Whole volumes").
"""

from __future__ import annotations

import numpy as np

from boundary_aware.choices import distinct_names
from boundary_aware.errors import DataError

SEQUENCES = ("t1", "t1c", "t2", "flair")  # the MRI sequences a case may hold
# The paper's input: axial T1c slices (Sec. 3.1). The prepared data's manifest records its
# channels, and everything downstream takes the channel count from there.
PAPER_SEQUENCES = ("t1c",)
MAX_CONTEXT_SLICES = 8


def parse_sequences(value) -> tuple[str, ...]:
    """`data.sequences` ("t1c", "t1,t1c,t2,flair") as a tuple of `SEQUENCES` names, in
    channel order; ValueError otherwise."""
    return distinct_names(value, SEQUENCES, "MRI sequences", "t1c or t1,t1c,t2,flair")


def context_channels(sequences, context_slices: int = 0) -> tuple[str, ...]:
    """The input channel names of `sequences` with `context_slices` = k neighbours on each
    side, offset-major: every sequence at z-k, then at z-k+1, ..., then at z+k."""
    k = int(context_slices)
    return tuple(s if o == 0 else f"{s}[z{o:+d}]" for o in range(-k, k + 1) for s in sequences)


def channel_layout(channels, source="the model") -> tuple[tuple[str, ...], int]:
    """(sequences, k) of input channel names made by `context_channels`; DataError naming
    `source` when the names are not such a layout."""
    channels = tuple(channels)
    sequences = tuple(c for c in channels if "[" not in c)
    if not sequences or len(channels) % len(sequences) or \
            (len(channels) // len(sequences)) % 2 != 1:
        raise DataError(f"{source}: input channels {list(channels)} are not sequences with "
                        f"the same neighbouring slices on each side")
    k = len(channels) // len(sequences) // 2
    if context_channels(sequences, k) != channels:
        raise DataError(f"{source}: input channels {list(channels)} are not in the order "
                        f"{list(context_channels(sequences, k))}")
    return sequences, k


def stack_context(slices: np.ndarray, rows, context_slices: int) -> np.ndarray:
    """The input of axial slices `rows` of `slices` ((Z, H, W, S): a volume's slices, every
    sequence as a channel) with `context_slices` = k neighbours on each side as channels
    (`context_channels` order); (len(rows), H, W, S(2k+1)). Neighbours beyond the volume's
    first or last slice are 0, as the background outside the head is."""
    rows = np.asarray(rows, np.int64)
    k = int(context_slices)
    if k == 0:
        return slices[rows]
    z = len(slices)
    out = np.zeros((len(rows),) + slices.shape[1:3] + (slices.shape[3] * (2 * k + 1),),
                   slices.dtype)
    s = slices.shape[3]
    for i, offset in enumerate(range(-k, k + 1)):
        source = rows + offset
        inside = (source >= 0) & (source < z)
        out[inside, ..., i * s:(i + 1) * s] = slices[source[inside]]
    return out


def input_channels(input_shape, recorded=None, source="the model") -> tuple[str, ...]:
    """The channel names of a model with `input_shape` (H, W, C): those `recorded` with it
    (a run's state, an export's card), else the paper's T1c for a one-channel model.
    DataError naming `source` where neither says."""
    count = int(input_shape[-1])
    if recorded:
        recorded = tuple(recorded)
        if len(recorded) != count:
            raise DataError(f"{source}: records channels {list(recorded)} but the model takes "
                            f"{count}")
        return recorded
    if count == len(PAPER_SEQUENCES):
        return PAPER_SEQUENCES
    raise DataError(f"{source}: takes {count} input channels, but nothing recorded with it "
                    f"names them; use its training workdir or its export")
