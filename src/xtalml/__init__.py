"""xtalml: crystal symmetry, cell and volume from CIFs or chemical formulas, and candidate structures.

    import xtalml
    project = xtalml.load("path/to/clone")      # the models `dvc repro` trained there
    project.predict(["NaCl", "Fe2O3"])           # a DataFrame, one row per input
    project.generate("NaCl")[0].structure        # the best candidate, a pymatgen Structure
"""

from importlib import import_module
from typing import Any

from xtalml.numerics import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported: MKL, oneDNN and ATen read their pins when they load

__version__ = "0.1.0"
__all__ = ["Candidate", "Generated", "Project", "load"]


def __getattr__(name: str) -> Any:
    # The public API loads on first use, so `import xtalml.<module>` (every stage does) stays as light as before
    if name in __all__:
        return getattr(import_module("xtalml.api"), name)
    raise AttributeError(f"module 'xtalml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
