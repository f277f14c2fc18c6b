"""Training augmentation: random flips, small rotations and scalings, intensity
scale/shift. numpy and OpenCV only.

The random parameters of an epoch are drawn here, in numpy, from
`(seed, epoch)` (`sample_params`), and applied slice by slice by
`augment_slice`. Both input pipelines (`data_pipeline` on tf.data,
`pydataset` on keras.utils.PyDataset) build every batch with
`batches.assemble_batch`, which calls it, so they give identical batches.
Every channel of a slice gets the same geometric transform (flip, rotation,
scaling); the intensity scale and shift are drawn for each channel on its own
(MRI sequences differ in contrast), the first channel's from the same draws as
a one-channel slice's, so a one-channel dataset is augmented the same either way. With
neighbouring slices as context (`channels.context_channels`: every sequence again
for each neighbour), the intensity change is drawn per sequence and applied
to each of its slices alike: one scan, one change.

Rotation and scaling are each applied to a sample with a probability (0.2
by default, as in nnU-Net's defaults); flips with probability 0.5. Flips are
named by anatomy: slices are in the BraTS (LPS) axis order, so in an axial
slice `array[i, j]` the first axis runs right to left and the second anterior
to posterior; `flip_lr` mirrors the first axis (it exchanges the
hemispheres), `flip_ap` the second. The warp
is OpenCV's `warpAffine` (bilinear, zero outside the image): about ten times
faster than TensorFlow's projective-transform op and scipy.ndimage on one CPU
core; its bilinear weights are quantized to 1/32 pixel, which is immaterial
for augmentation. A slice that is only flipped is flipped exactly, without a
warp.
"""

import contextlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

# one row of parameters per sample: the geometric ones, then (intensity scale, intensity
# shift) for each channel in order; `PARAM_NAMES` is the layout of a one-channel sample
GEOMETRY = ("flip_lr", "flip_ap", "angle_deg", "scale")
INTENSITY = ("intensity_scale", "intensity_shift")
PARAM_NAMES = GEOMETRY + INTENSITY
FLIP_AXES = {"flip_lr": 0, "flip_ap": 1}  # the slice axis each flip reverses (LPS order)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (all off with `enabled=False`)."""

    enabled: bool = True
    flip_lr: bool = True           # mirror left-right: reverse axis 0 (p = 0.5)
    flip_ap: bool = False          # mirror anterior-posterior: reverse axis 1 (p = 0.5); off
    rotate_deg: float = 10.0       # uniform in [-rotate_deg, rotate_deg] ...
    rotate_p: float = 0.2          # ... for this fraction of the samples (else 0)
    scale: float = 0.1             # zoom uniform in [1 - scale, 1 + scale] ...
    scale_p: float = 0.2           # ... for this fraction of the samples (else 1)
    intensity_scale: float = 0.1   # multiply by uniform [1 - s, 1 + s]
    intensity_shift: float = 0.1   # add uniform [-s, s] (inside the head; background stays 0)

    # the allowed range of every number: (low, high, whether high itself is allowed)
    RANGES = {"rotate_deg": (0.0, 180.0, True), "rotate_p": (0.0, 1.0, True),
              "scale": (0.0, 1.0, False), "scale_p": (0.0, 1.0, True),
              "intensity_scale": (0.0, 1.0, False), "intensity_shift": (0.0, 1.0, True)}

    def __post_init__(self):
        for name in ("enabled", "flip_lr", "flip_ap"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, (low, high, closed) in self.RANGES.items():
            value = getattr(self, name)
            inside = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                low <= value and (value <= high if closed else value < high)
            if not inside:
                raise ValueError(f"{name} must be in [{low:g}, {high:g}{']' if closed else ')'}, "
                                 f"got {value!r}")

    @classmethod
    def from_dict(cls, values):
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            hint = (" (the second axis's flip is flip_ap, named by anatomy)" if "flip_ud" in unknown
                    else "")
            raise ValueError(f"unknown augmentation settings {unknown}{hint}; the settings are "
                             f"{sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def to_dict(self):
        return asdict(self)


def param_count(channels: int) -> int:
    """Parameters per sample of a `channels`-channel image (`GEOMETRY`, then `INTENSITY`
    per channel)."""
    return len(GEOMETRY) + len(INTENSITY) * int(channels)


def sample_params(n, seed, epoch, config, channels=1):
    """(n, `param_count(channels)`) float32 parameters for one epoch's n samples of
    `channels`-channel images (identity when disabled). The first channel's intensity
    change comes from the same draws whatever the channel count; the others' from a
    stream of their own."""
    params = np.zeros((n, param_count(channels)), np.float32)
    params[:, 3] = 1.0
    params[:, len(GEOMETRY)::2] = 1.0  # every channel's intensity scale
    if not config.enabled:
        return params
    rng = np.random.default_rng([int(seed), int(epoch), 1])
    u = rng.random((n, len(PARAM_NAMES) + 2))
    rotate, zoom = u[:, 6] < config.rotate_p, u[:, 7] < config.scale_p
    params[:, 0] = (u[:, 0] < 0.5) * config.flip_lr
    params[:, 1] = (u[:, 1] < 0.5) * config.flip_ap
    params[:, 2] = np.where(rotate, (2 * u[:, 2] - 1) * config.rotate_deg, 0.0)
    params[:, 3] = np.where(zoom, 1 + (2 * u[:, 3] - 1) * config.scale, 1.0)
    params[:, 4] = 1 + (2 * u[:, 4] - 1) * config.intensity_scale
    params[:, 5] = (2 * u[:, 5] - 1) * config.intensity_shift
    if channels > 1:
        v = np.random.default_rng([int(seed), int(epoch), 2]).random((n, 2 * (channels - 1)))
        params[:, 6::2] = 1 + (2 * v[:, 0::2] - 1) * config.intensity_scale
        params[:, 7::2] = (2 * v[:, 1::2] - 1) * config.intensity_shift
    return params


def inverse_affine(params, height, width):
    """(n, 2, 3) maps from output (row, col) to input (row, col) coordinates.

    The output is the input flipped, rotated by `angle_deg` and zoomed by
    `scale` about the image centre.
    """
    n = len(params)
    center = np.array([(height - 1) / 2, (width - 1) / 2])
    theta = np.deg2rad(params[:, 2].astype(np.float64))
    inv_scale = 1.0 / params[:, 3].astype(np.float64)
    cos, sin = np.cos(theta) * inv_scale, np.sin(theta) * inv_scale
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    flips = np.ones((n, 2))
    for name, axis in FLIP_AXES.items():
        flips[params[:, PARAM_NAMES.index(name)] > 0.5, axis] = -1
    linear = rotation * flips[:, None, :]  # flip the output axes first, then rotate
    offset = center - np.einsum("nij,j->ni", linear, center)
    return np.concatenate([linear, offset[:, :, None]], axis=-1)


def warp_matrices(params, height, width):
    """Per sample: OpenCV's 2 x 3 inverse map in (x, y) = (col, row) order, or
    None when the sample is not rotated or scaled (at most flipped)."""
    maps = inverse_affine(params, height, width)
    warped = (params[:, 2] != 0) | (params[:, 3] != 1)
    return [np.concatenate([m[::-1, 1::-1], m[::-1, 2:]], axis=1) if w else None
            for m, w in zip(maps, warped)]


_WARP = dict(flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
             borderValue=0)


def augment_slice(image, mask, params, matrix, out_image, out_mask):
    """Augment one slice, (H, W, C) image and (H, W) mask (or (H, W, R): one per tumor
    region), into the preallocated `out_image` (float32, (H, W, C)) and `out_mask`
    (uint8, the mask's shape).

    Every channel is warped bilinearly (zero outside), then scaled and
    shifted inside the head by its own intensity parameters (background stays
    0) and clipped to [0, 1]; `params` may hold fewer (scale, shift) pairs than
    the image has channels, S for S sequences with context slices, and channel
    c then takes pair c mod S. The
    {0, 1} mask is warped bilinearly and rounded, i.e. thresholded at 0.5.
    `matrix` is this slice's entry of `warp_matrices`; None: flips only,
    done exactly by reversing axes (what the warp gives too, only faster).
    """
    h, w = image.shape[:2]
    if matrix is None:
        flip = [slice(None)] * 2
        for name, axis in FLIP_AXES.items():
            if params[PARAM_NAMES.index(name)] > 0.5:
                flip[axis] = slice(None, None, -1)
        flip = tuple(flip)
        np.copyto(out_image, image[flip])
        np.copyto(out_mask, mask[flip])
    else:
        for c in range(image.shape[-1]):
            with _contiguous(out_image[..., c]) as out:
                cv2.warpAffine(np.ascontiguousarray(image[..., c]), matrix, (w, h), dst=out,
                               **_WARP)
        if mask.ndim == 2:
            cv2.warpAffine(mask, matrix, (w, h), dst=out_mask, **_WARP)
        else:
            for r in range(mask.shape[-1]):
                with _contiguous(out_mask[..., r]) as out:
                    cv2.warpAffine(np.ascontiguousarray(mask[..., r]), matrix, (w, h), dst=out,
                                   **_WARP)
    pairs = (len(params) - len(GEOMETRY)) // len(INTENSITY)
    for c in range(image.shape[-1]):
        scale, shift = float(params[4 + 2 * (c % pairs)]), float(params[5 + 2 * (c % pairs)])
        if scale != 1.0 or shift != 0.0:
            with _contiguous(out_image[..., c]) as out:
                _scale_and_shift(out, scale, shift)


def _scale_and_shift(out, scale, shift):
    """clip(out * scale + shift, 0, 1) inside the head (out > 0), 0 outside, in place;
    in OpenCV's single passes, which release the GIL."""
    _, shift_in_head = cv2.threshold(out, 0.0, shift, cv2.THRESH_BINARY)
    cv2.addWeighted(out, scale, shift_in_head, 1.0, 0.0, dst=out)
    cv2.threshold(out, 1.0, 1.0, cv2.THRESH_TRUNC, dst=out)
    cv2.threshold(out, 0.0, 0.0, cv2.THRESH_TOZERO, dst=out)


@contextlib.contextmanager
def _contiguous(view):
    """`view` itself if OpenCV can write into it (one channel), else a contiguous copy
    that is written back into `view` at the end."""
    if view.flags.c_contiguous:
        yield view
        return
    scratch = np.ascontiguousarray(view)
    yield scratch
    np.copyto(view, scratch)
