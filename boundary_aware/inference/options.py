"""How a volume is segmented: one options object, built once, handed whole.

`InferenceOptions` holds every setting of inference: the test-time flips
(`tta`), the precision and the crop the models run in, the threshold, whether
the recorded clean-up is applied, the batch size, the maps written beside a
mask, and whether a SavedModel of unknown operations is run. `predict` builds
it from its flags (`from_flags`), `evaluate` from a run's config (`from_run`);
each function below them takes the object whole. Every value is checked when
it is made, so a bad flag is refused before any model or volume is read.

Reference: docs/usage.md ("Prediction"); docs/design.md ("Whole volumes").
"""

from __future__ import annotations

from dataclasses import dataclass

from boundary_aware.errors import DataError
from boundary_aware.inference.flips import DEFAULT_TTA, tta_flips

# The precisions a Keras model can be run in (`--precision`): "float32", the model as
# trained (float32, or the mixed precision a model trained in it computes in), or
# bfloat16 computation (`rebuild`), faster where the hardware computes in it
# (AVX-512 BF16 or AMX CPUs, recent GPUs) and not voxel for voxel the same masks.
PRECISIONS = ("float32", "bfloat16")
# What a Keras model is run on (`--crop`): the whole slice as trained, or the head's
# box (`head_box.in_head_box`), fewer pixels and not voxel for voxel the same masks.
CROPS = ("none", "head")
MAX_BATCH = 512  # slices per forward pass: beyond a whole volume, only memory is spent


@dataclass(frozen=True)
class InferenceOptions:
    """Every setting of inference (module docstring).

    tta: the test-time mirror axes (`flips.TTA_CHOICES`); `flips` are the copies averaged.
    precision: what the models compute in (`PRECISIONS`).
    crop: what the models run on (`CROPS`).
    threshold: the probability above which a voxel is tumor.
    postprocess: apply the 3D clean-up recorded with the model (predict) or chosen on the
        validation volumes (evaluate).
    batch_size: slices per forward pass (None: `runtime.inference_batch_size()`).
    streams: forward passes at a time on CPUs (None: `runtime.inference_streams()`).
    save_probabilities, save_uncertainty, edge_output: the maps written beside a mask
        (the tumor probability, its standard deviation over flips and members, the
        boundary probability).
    trust_model: run a SavedModel even if its graph holds operations our exports never use.
    """

    tta: str = DEFAULT_TTA
    precision: str = "float32"
    crop: str = "none"
    threshold: float = 0.5
    postprocess: bool = True
    batch_size: int | None = None
    streams: int | None = None
    save_probabilities: bool = False
    save_uncertainty: bool = False
    edge_output: bool = False
    trust_model: bool = False

    def __post_init__(self):
        tta_flips(self.tta)  # DataError naming --tta
        if self.precision not in PRECISIONS:
            raise DataError(f"--precision must be one of {', '.join(PRECISIONS)}; got "
                            f"{self.precision!r}")
        if self.crop not in CROPS:
            raise DataError(f"--crop must be one of {', '.join(CROPS)}; got {self.crop!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0 < self.threshold < 1:
            raise DataError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.batch_size is not None and not (
                isinstance(self.batch_size, int) and 1 <= self.batch_size <= MAX_BATCH):
            raise DataError(f"--batch_size must be from 1 to {MAX_BATCH} slices per forward "
                            f"pass (a BraTS volume has 155), got {self.batch_size}")
        if self.streams is not None and not (isinstance(self.streams, int) and self.streams >= 1):
            raise DataError(f"streams must be a whole number >= 1, got {self.streams!r}")

    @property
    def flips(self) -> tuple[str, ...]:
        """The mirrored copies averaged, the identity first (`flips.tta_flips`)."""
        return tta_flips(self.tta)

    @classmethod
    def from_flags(cls, flags) -> "InferenceOptions":
        """The options of predict's command line (`predict.define_flags`)."""
        return cls(tta=flags.tta, precision=flags.precision, crop=flags.crop,
                   threshold=flags.threshold, postprocess=flags.postprocess,
                   batch_size=flags.batch_size or None,
                   save_probabilities=flags.save_probabilities,
                   save_uncertainty=flags.save_uncertainty, edge_output=flags.edge_output,
                   trust_model=flags.trust_model)

    @classmethod
    def from_run(cls, config: dict, threshold: float | None = None, tta: str | None = None,
                 postprocess: bool = True) -> "InferenceOptions":
        """The options a run's config (`config.read_run_config`) scores it with: its
        `eval` threshold, flips, clean-up and batch size, unless `threshold` or `tta` say
        otherwise or `postprocess` is False. One forward pass at a time, so that the
        scores do not depend on how the cores are shared."""
        settings = config["eval"]
        return cls(tta=settings["tta"] if tta is None else tta,
                   threshold=settings["threshold"] if threshold is None else threshold,
                   postprocess=bool(postprocess and settings["postprocess"]),
                   batch_size=settings["batch_size"], streams=1)
