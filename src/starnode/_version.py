"""The installed version of starnode, at the bottom of the layers: any module may import it.

``starnode.__version__`` re-exports it; code inside the package imports it from here, never
from the package face (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("starnode")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: The software name and version written into reports and the database's history.
SOFTWARE = f"starnode {__version__}"

__all__ = ["SOFTWARE", "__version__"]
