"""The CPU kernels are pinned before torch loads, in one place, and the pin can be switched off for the control."""

import json
import os
import subprocess
import sys

import pytest

from xtalml.numerics import PINNED_ENVIRONMENT

PROBE = """
import json, xtalml, torch
from xtalml.numerics import configure_torch, numpy_settings, torch_settings
configure_torch(3)
print(json.dumps(torch_settings() | numpy_settings()))
"""


def _settings(**env: str) -> dict[str, str]:
    run = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="the pins are for x86-64")
def test_importing_xtalml_pins_the_kernels_whatever_the_shell_exported():
    found = _settings(MKL_CBWR="AUTO", ATEN_CPU_CAPABILITY="avx512", ONEDNN_MAX_CPU_ISA="AVX512_CORE",
                      OPENBLAS_CORETYPE="SkylakeX", NPY_DISABLE_CPU_FEATURES="")
    assert {k: found[k.lower()] for k in PINNED_ENVIRONMENT} == PINNED_ENVIRONMENT
    assert found["openblas"] == "Haswell" and found["numpy_avx512"] == "False"
    assert found["cpu_capability"] == "AVX2" and found["threads"] == "3"
    assert found["deterministic"] == "True" and found["mkldnn"] == "False"


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="the pins are for x86-64")
def test_native_numerics_leave_the_libraries_to_choose():
    found = _settings(XTALML_NUMERICS="native", MKL_CBWR="AUTO", ATEN_CPU_CAPABILITY="default")
    assert found["mkl_cbwr"] == "AUTO" and found["cpu_capability"] == "DEFAULT" and found["deterministic"] == "False"


def test_a_later_import_keeps_the_thread_count_a_stage_set():
    import torch

    from xtalml.numerics import configure_torch

    before = torch.get_num_threads()
    try:
        configure_torch(3)  # what fix_thread_counts does with train.torch_threads
        configure_torch()  # what importing torch_base does afterwards
        assert torch.get_num_threads() == 3
    finally:
        configure_torch(before)
