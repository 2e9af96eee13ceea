"""xtalml: crystal symmetry and cell volume from CIFs or chemical formulas."""

from xtalml.numerics import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported: MKL, oneDNN and ATen read their pins when they load

__version__ = "0.1.0"
