"""The same float results on every x86-64 CPU with AVX2: the kernels MKL, oneDNN and ATen run are pinned here, once.

MKL (torch's matrix products), oneDNN and ATen (torch's element-wise ops and reductions) each pick their code by the
CPU they find: its vendor, its widest vector unit and its cache sizes. Different code sums in a different order, and
a network early-stopped on a validation loss carries last-bit differences into different weights. Pinned:
- MKL_CBWR=COMPATIBLE: MKL's conditional numerical reproducibility. Only this branch is the same on Intel and non-Intel
  CPUs (Intel's oneMKL developer guide: AVX2 falls back to AUTO on non-Intel CPUs).
- ATEN_CPU_CAPABILITY=avx2: ATen's AVX2 kernels, also on AVX-512 CPUs.
- ONEDNN_MAX_CPU_ISA=AVX2 and oneDNN off for torch's CPU ops: no JIT kernel shaped by the CPU's caches.
- torch.use_deterministic_algorithms and a fixed thread count (MKL's CNR holds for a fixed number of threads).
- numpy's and scipy's OpenBLAS on its Haswell (AVX2) kernels (OPENBLAS_CORETYPE), and numpy's own loops without their
  AVX-512 versions (NPY_DISABLE_CPU_FEATURES, numpy 2.4's names): ASE's relaxation steps, scikit-learn's BLAS calls.
The environment is read by each library when it loads, so pin_cpu_kernels() runs when xtalml is imported, before
torch and numpy are. XTALML_NUMERICS=native leaves every library to choose (benchmarks/determinism.py's control).
"""

from __future__ import annotations

import os
import platform

PINNED_ENVIRONMENT = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                      "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
INFERENCE_TORCH_THREADS = 2  # torch's threads outside the train stages (which take train.torch_threads)


def pinned() -> bool:
    """Whether this process runs the pinned kernels (x86-64, and XTALML_NUMERICS is not 'native')."""
    return (platform.machine().lower() in ("x86_64", "amd64")
            and os.environ.get("XTALML_NUMERICS", "pinned").lower() != "native")


def pin_cpu_kernels() -> None:
    """Set the pinned environment, overriding what the shell exported (torch reads it when it loads)."""
    if pinned():
        os.environ.update(PINNED_ENVIRONMENT)


_THREADS: dict[str, int] = {}  # the count a caller set: a later configure_torch() without one keeps it


def configure_torch(threads: int | None = None) -> None:
    """Deterministic algorithms, oneDNN off and `threads` threads (torch passes the count on to MKL); without
    `threads`, the count set before, else INFERENCE_TORCH_THREADS."""
    import torch

    if threads is not None:
        _THREADS["torch"] = int(threads)
    torch.set_num_threads(_THREADS.get("torch", INFERENCE_TORCH_THREADS))
    if pinned():
        torch.use_deterministic_algorithms(True)
        torch.backends.mkldnn.enabled = False


def torch_settings() -> dict[str, str]:
    """What torch runs with: kernels, threads, pins (benchmarks/determinism.py prints it per setting)."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": str(torch.get_num_threads()),
            "mkldnn": str(torch.backends.mkldnn.enabled), "deterministic": str(torch.are_deterministic_algorithms_enabled()),
            **{name.lower(): os.environ.get(name, "") for name in PINNED_ENVIRONMENT}}


def numpy_settings() -> dict[str, str]:
    """What numpy and scipy run with: OpenBLAS's kernels (per library) and whether numpy's AVX-512 loops are on."""
    import numpy as np
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    from numpy._core._multiarray_umath import __cpu_features__
    from threadpoolctl import threadpool_info

    kernels = sorted({str(info.get("architecture")) for info in threadpool_info() if info["internal_api"] == "openblas"})
    return {"openblas": ",".join(kernels), "numpy_avx512": str(bool(__cpu_features__.get("X86_V4"))),
            "numpy": np.__version__}
