"""equinets: equivariant point networks in PyTorch.

Subpackages: :mod:`equinets.nn` (backbones, neighbour ops), :mod:`equinets.data`
(generated datasets, readers, transforms), :mod:`equinets.frames` (frame averaging),
:mod:`equinets.train` (config, CLI, loop). Every error caused by the user's input derives from
:class:`equinets.UserError` (see :mod:`equinets.errors`).
"""

from .errors import SetupError, UserError

__all__ = ["UserError", "SetupError", "__version__"]
__version__ = "0.1.0"
