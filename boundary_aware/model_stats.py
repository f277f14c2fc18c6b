"""Parameter counts and forward FLOPs per image, computed from the layers.

FLOPs are 2 x multiply-accumulates of every convolution, transposed
convolution and dense layer, read from the shapes each layer sees in one
forward pass of a single image (so nested layers such as `ResidualBlock` are
counted too). Element-wise work (normalization, activations, resizes, adds)
is not counted; it is a few percent of the total for these networks.

Usage:
    python -m boundary_aware.model_stats [--models=ours,unet,vnet] [--size=240] [--channels=1]

The default input is the paper's: one channel (T1c, `channels.PAPER_SEQUENCES`).
"""

import math

import keras
from keras.src import backend

from boundary_aware.channels import PAPER_SEQUENCES
from boundary_aware.models import MODELS, build_model

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSE_TYPES = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                    keras.layers.Conv3DTranspose)


def _layer_flops(layer, in_shape, out_shape):
    """2 x MACs of one call, from its kernel and its input/output shapes."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = layer.kernel.shape
        return 2 * math.prod(out_shape[1:-1]) * kh * kw * cin * mult
    if isinstance(layer, _CONV_TYPES):
        kernel = layer.kernel.shape  # (*k, cin / groups, cout)
        return 2 * math.prod(out_shape[1:-1]) * math.prod(kernel)
    if isinstance(layer, _TRANSPOSE_TYPES):
        kernel = layer.kernel.shape  # (*k, cout, cin)
        return 2 * math.prod(in_shape[1:-1]) * math.prod(kernel)
    if isinstance(layer, keras.layers.Dense):
        return 2 * math.prod(in_shape[1:-1]) * math.prod(layer.kernel.shape)
    return 0


def forward_flops(model, input_shape=None):
    """Forward FLOPs for one image through `model` (input (H, W, C))."""
    input_shape = tuple(input_shape or model.input_shape[1:])
    counted = (_CONV_TYPES + _TRANSPOSE_TYPES
               + (keras.layers.Dense, keras.layers.DepthwiseConv2D))
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, counted)]
    total = [0]

    def wrap(layer):
        original = layer.call

        def call(inputs, *args, **kwargs):
            outputs = original(inputs, *args, **kwargs)
            first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs  # ChannelProjection
            total[0] += _layer_flops(layer, tuple(first.shape), tuple(outputs.shape))
            return outputs
        return call

    for layer in layers:
        layer.call = wrap(layer)
    try:
        # Trace the forward pass symbolically (shapes only, nothing computed).
        spec = keras.KerasTensor((1,) + input_shape, dtype="float32")
        backend.compute_output_spec(lambda x: model(x, training=False), spec)
    finally:
        for layer in layers:
            del layer.call  # drop the instance attribute: back to the class method
    return int(total[0])


def model_stats(name, size=240, channels=len(PAPER_SEQUENCES), **kwargs):
    """`{"model", "params", "gflops"}` for `build_model(name, (size, size, channels))`."""
    model = build_model(name, input_shape=(size, size, channels), **kwargs)
    return {"model": name, "params": int(model.count_params()),
            "gflops": forward_flops(model) / 1e9}


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--channels", type=int, default=len(PAPER_SEQUENCES))
    args = parser.parse_args(argv)
    print(f"{'model':<6} {'parameters':>12} {'GFLOP/image':>12}   "
          f"(input {args.size}x{args.size}x{args.channels})")
    for name in args.models.split(","):
        stats = model_stats(name, args.size, args.channels)
        print(f"{name:<6} {stats['params']:>12,d} {stats['gflops']:>12.2f}")


if __name__ == "__main__":
    main()
