"""Training augmentation: random flips, small rotations and scalings, intensity
scale/shift. numpy/scipy only.

The random parameters of an epoch are drawn here, in numpy, from
`(seed, epoch)`, and both input pipelines (`data_pipeline` on tf.data,
`pydataset` on keras.utils.PyDataset) apply the same parameters to the same
samples: they differ only in their interpolation kernels.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

PARAM_NAMES = ("flip_lr", "flip_ud", "angle_deg", "scale", "intensity_scale", "intensity_shift")


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (all off with `enabled=False`)."""

    enabled: bool = True
    flip_lr: bool = True           # mirror left-right (p = 0.5)
    flip_ud: bool = False          # mirror front-back (p = 0.5); off by default
    rotate_deg: float = 10.0       # uniform in [-rotate_deg, rotate_deg]
    scale: float = 0.1             # zoom uniform in [1 - scale, 1 + scale]
    intensity_scale: float = 0.1   # multiply by uniform [1 - s, 1 + s]
    intensity_shift: float = 0.1   # add uniform [-s, s] (inside the head; background stays 0)

    @classmethod
    def from_dict(cls, values):
        return cls(**dict(values or {}))

    def to_dict(self):
        return asdict(self)


def sample_params(n, seed, epoch, config):
    """(n, 6) float32 parameters for one epoch's n samples (identity when disabled)."""
    params = np.zeros((n, len(PARAM_NAMES)), np.float32)
    params[:, 3] = params[:, 4] = 1.0
    if not config.enabled:
        return params
    rng = np.random.default_rng([int(seed), int(epoch), 1])
    u = rng.random((n, len(PARAM_NAMES)))
    params[:, 0] = (u[:, 0] < 0.5) * config.flip_lr
    params[:, 1] = (u[:, 1] < 0.5) * config.flip_ud
    params[:, 2] = (2 * u[:, 2] - 1) * config.rotate_deg
    params[:, 3] = 1 + (2 * u[:, 3] - 1) * config.scale
    params[:, 4] = 1 + (2 * u[:, 4] - 1) * config.intensity_scale
    params[:, 5] = (2 * u[:, 5] - 1) * config.intensity_shift
    return params


def is_identity(params):
    return bool(np.all(params[:, :3] == 0) and np.all(params[:, 3:5] == 1)
                and np.all(params[:, 5] == 0))


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
    flips[params[:, 1] > 0.5, 0] = -1
    flips[params[:, 0] > 0.5, 1] = -1
    linear = rotation * flips[:, None, :]  # flip the output axes first, then rotate
    offset = center - np.einsum("nij,j->ni", linear, center)
    return np.concatenate([linear, offset[:, :, None]], axis=-1)


def augment_numpy(images, masks, params):
    """Apply `params` to (B, H, W, 1) images and masks (bilinear; masks re-thresholded)."""
    if is_identity(params):
        return images, masks
    _, h, w, _ = images.shape
    maps = inverse_affine(params, h, w)
    out_img = np.empty_like(images)
    out_mask = np.empty_like(masks)
    for i, m in enumerate(maps):
        out_img[i, ..., 0] = ndimage.affine_transform(images[i, ..., 0], m[:, :2], m[:, 2],
                                                      order=1, mode="constant", cval=0.0)
        warped = ndimage.affine_transform(masks[i, ..., 0].astype(np.float32), m[:, :2], m[:, 2],
                                          order=1, mode="constant", cval=0.0)
        out_mask[i, ..., 0] = warped > 0.5
    head = out_img > 0
    scale = params[:, 4].reshape(-1, 1, 1, 1)
    shift = params[:, 5].reshape(-1, 1, 1, 1)
    out_img = np.where(head, np.clip(out_img * scale + shift, 0.0, 1.0), 0.0).astype(np.float32)
    return out_img, out_mask
