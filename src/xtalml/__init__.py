"""xtalml: crystal symmetry and cell volume from CIFs or chemical formulas."""

__version__ = "0.1.0"
