"""xtalml: crystal symmetry and cell volume from CIFs or chemical formulas."""

import os
import platform

# The same float kernels on every x86-64 machine with AVX2, whatever wider units it has: MKL (torch's matrix products)
# and ATen pick AVX-512 code where the CPU has it, and a network trained there differs in its last bits from one
# trained on an AVX2-only CPU, enough to move an early-stopped model's test MAE. Measured on this project's AMD EPYC
# (AVX-512): a 5-epoch MLP gives a different loss with MKL_CBWR unset and =AVX2. Set before torch is imported
# (xtalml is imported first by every stage); a value the user exported wins.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("MKL_CBWR", "AVX2")
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

__version__ = "0.1.0"
