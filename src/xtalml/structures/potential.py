"""CHGNet (weights from its wheel) as an ASE calculator for relaxations: energy, forces, stress and magnetic moments
as chgnet's own CHGNetCalculator gives them, with forces and stress from one backward pass.

chgnet 0.4.2's model takes two backward passes per call (forces, then stress), each building a graph of the gradient
(create_graph=True, which only training needs): ~60 % of a call. One pass without that graph takes a 56-atom call from
489 to 285 ms and an 8-atom one from 48 to 18 ms (one thread, pinned kernels); energies and magnetic moments are
bit-identical, forces and stress differ in float32 rounding only (tests/test_structures.py compares the two).
"""

from __future__ import annotations

from typing import Any

import torch
from ase.calculators.calculator import Calculator
from chgnet.model import CHGNet
from chgnet.model.dynamics import CHGNetCalculator
from chgnet.model.model import BatchedGraph
from pymatgen.io.ase import AseAtomsAdaptor

EV_PER_A3_IN_GPA = 160.21766208  # chgnet's factor from eV/Å³ to GPa (its stress_weight converts back)


class OneBackwardCHGNetCalculator(CHGNetCalculator):
    """CHGNetCalculator whose forces (-dE/dr) and stress (dE/dε / V) come from one backward pass, no gradient graph."""

    def calculate(self, atoms=None, properties: Any = None, system_changes: Any = None, task: str = "efsm") -> None:
        Calculator.calculate(self, atoms, properties, system_changes or [])
        model = self.model.eval()
        structure = AseAtomsAdaptor.get_structure(self.atoms)
        graph = model.graph_converter(structure).to(self.device)
        batch = BatchedGraph.from_graphs([graph], bond_basis_expansion=model.bond_basis_expansion,
                                         angle_basis_expansion=model.angle_basis_expansion, compute_stress=True)
        prediction = model._compute(batch, compute_magmom=True)  # energy per atom (and moments), no derivatives
        atoms_per_graph = len(structure) if model.is_intensive else 1
        d_position, d_strain = torch.autograd.grad((prediction["e"] * atoms_per_graph).sum(),
                                                   [batch.atom_positions[0], batch.strains[0]])
        offset = 0 if model.composition_model is None else model.composition_model([graph])
        energy = (prediction["e"] + offset).detach().cpu().numpy()[0] * atoms_per_graph  # float32, as chgnet's
        stress_gpa = d_strain * (1 / batch.volumes * EV_PER_A3_IN_GPA)[0]  # in chgnet's order of operations
        self.results = {"energy": energy, "free_energy": energy, "forces": (-d_position).detach().cpu().numpy(),
                        "stress": stress_gpa.detach().cpu().numpy() * self.stress_weight,
                        "magmoms": prediction["m"][0].detach().cpu().numpy()}


def chgnet_calculator() -> OneBackwardCHGNetCalculator:
    """The pretrained CHGNet on the CPU (its banner goes to stdout: callers that print JSON redirect it)."""
    return OneBackwardCHGNetCalculator(model=CHGNet.load(verbose=False), use_device="cpu")
