"""What a CHGNet candidate costs on this CPU (one thread, pinned kernels, as a Dask worker runs it): one
energy-force-stress call per atom count with the pipeline's calculator (one backward pass) and with chgnet's own, the
same calls batched, and a primitive against a conventional cell. Prints JSON.

    python benchmarks/chgnet_cost.py

Chose the generate stage's candidate settings: single-point pre-screening and batched inference were measured
against short relaxations of primitive cells.
"""

import contextlib
import io
import json
import time
import warnings

import xtalml  # noqa: F401  (pins the CPU kernels before torch loads)
import torch
from pymatgen.core import Lattice, Structure


def spinel() -> Structure:
    """MgAl2O4 in its conventional cubic cell (56 atoms); its primitive cell has 14."""
    return Structure.from_spacegroup(227, Lattice.cubic(8.08), ["Mg", "Al", "O"],
                                     [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.2624, 0.2624, 0.2624]])


def per_call(calculator, structure: Structure, repeats: int = 10) -> float:
    """Seconds of one energy, forces and stress call (what one FIRE step costs)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor().get_atoms(structure)
    atoms.calc = calculator
    atoms.get_forces()  # the first call builds what later calls reuse
    start = time.perf_counter()
    for _ in range(repeats):
        atoms.positions += 0.001
        atoms.get_forces()
        atoms.get_stress()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from xtalml.numerics import configure_torch
    from xtalml.structures.potential import OneBackwardCHGNetCalculator

    configure_torch(1)
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(verbose=False)
        calculator = OneBackwardCHGNetCalculator(model=model, use_device="cpu")
        stock = CHGNetCalculator(model=model, use_device="cpu")
    primitive = spinel().get_primitive_structure()
    step_ms = {len(primitive * (n, 1, 1)): round(1000 * per_call(calculator, primitive * (n, 1, 1)), 1) for n in (1, 2, 3)}
    stock_ms = {len(primitive * (n, 1, 1)): round(1000 * per_call(stock, primitive * (n, 1, 1)), 1) for n in (1, 2, 3)}
    conventional_ms = round(1000 * per_call(calculator, spinel()), 1)
    structures = []
    for seed in range(16):
        s = primitive.copy()
        s.perturb(0.05, min_distance=0.01)
        structures.append(s)
    graphs = [model.graph_converter(s) for s in structures]
    batched = {}
    for size in (1, 4, 16):
        start = time.perf_counter()
        for k in range(0, len(graphs), size):
            model.predict_graph(graphs[k:k + size], task="efs", batch_size=size)
        batched[size] = round(1000 * (time.perf_counter() - start) / len(graphs), 1)
    print(json.dumps({"threads": torch.get_num_threads(),
                      "ms_per_step_by_atoms": step_ms, "chgnet_calculator_ms_per_step_by_atoms": stock_ms,
                      "ms_per_atom_step": round(sum(ms / n for n, ms in step_ms.items()) / len(step_ms), 2),
                      "spinel_step_ms": {"primitive_14_atoms": step_ms[len(primitive)], "conventional_56_atoms": conventional_ms},
                      "single_point_ms_per_structure_by_batch": batched}, indent=1))


if __name__ == "__main__":
    main()
