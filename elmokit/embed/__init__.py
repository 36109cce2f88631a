"""Embedding to arrays and HDF5: :class:`Embedder` (the Python API), the file writer (``elmokit embed``), the two
HDF5 layouts and their reader :class:`EmbeddingsFile`, and the full-disk-safe HDF5 file they are written through."""

from elmokit.embed.embedder import Embedder
from elmokit.embed.layouts import EmbeddingsFile

__all__ = ["Embedder", "EmbeddingsFile"]
