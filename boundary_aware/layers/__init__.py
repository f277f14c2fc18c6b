"""Registered, serializable Keras layers of the boundary-aware network."""

from boundary_aware.layers.attention import AttentionLayer
from boundary_aware.layers.channel_projection import ChannelProjection
from boundary_aware.layers.dspp import DilatedSpatialPyramidPooling
from boundary_aware.layers.normalization import make_norm
from boundary_aware.layers.residual_block import ResidualBlock
from boundary_aware.layers.resize import ResizeLike

__all__ = ["AttentionLayer", "ChannelProjection", "DilatedSpatialPyramidPooling", "ResidualBlock",
           "ResizeLike", "make_norm"]
