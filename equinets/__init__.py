"""equinets: equivariant point networks in PyTorch.

Subpackages: :mod:`equinets.nn` (backbones, neighbour ops), :mod:`equinets.data`
(generated datasets, readers, transforms), :mod:`equinets.train` (config, CLI, loop).
"""

__version__ = "0.1.0"
