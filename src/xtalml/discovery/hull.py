"""The convex hull of formation energy of a chemical system (pymatgen's PhaseDiagram): elemental references, relaxed
candidates and known structures as entries; each entry's formation energy and energy above the hull; its picture."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

ENTRY_COLUMNS = ["formula", "energy_per_atom", "label"]


class HullError(ValueError):
    """A hull that cannot be built: the message names the system and what is missing."""


def phase_diagram(entries: pd.DataFrame, references: Mapping[str, Mapping[str, Any]], elements: Sequence[str]):
    """(PhaseDiagram, the PDEntry of each row of `entries`): rows are formula, energy_per_atom (eV) and a label;
    each element's reference energy per atom (the references stage) is its elemental entry."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    lacking = [el for el in elements if el not in references]
    if lacking:
        raise HullError(f"system {'-'.join(elements)}: no elemental reference energy for {', '.join(lacking)} "
                        f"(the references stage relaxed none; add it to references.elements)")
    pd_entries = [PDEntry(Composition(el), float(references[el]["energy_per_atom"]), name=el, attribute="reference")
                  for el in elements]
    own = []
    for row in entries.itertuples(index=False):
        composition = Composition(row.formula)
        own.append(PDEntry(composition, float(row.energy_per_atom) * composition.num_atoms, name=row.formula,
                           attribute=row.label))
    return PhaseDiagram(pd_entries + own), own


def hull_table(entries: pd.DataFrame, references: Mapping[str, Mapping[str, Any]],
               elements: Sequence[str]) -> tuple[pd.DataFrame, Any]:
    """`entries` with formation_energy_per_atom and e_above_hull (eV/atom) added, and the PhaseDiagram."""
    table = entries.reset_index(drop=True).copy()
    diagram, own = phase_diagram(table, references, elements)
    table["formation_energy_per_atom"] = [float(diagram.get_form_energy_per_atom(e)) for e in own]
    table["e_above_hull"] = [max(0.0, float(diagram.get_e_above_hull(e))) for e in own]
    return table, diagram


def hull_picture(diagram, path: Path, *, title: str, marked: Sequence[str] = ()) -> Path:
    """The hull drawn by pymatgen's PDPlotter (matplotlib), stable phases labelled; `marked` formulas (known compounds)
    listed under the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pymatgen.analysis.phase_diagram import PDPlotter

    plotter = PDPlotter(diagram, show_unstable=0.2, backend="matplotlib")
    quiet = logging.getLogger("matplotlib.axes")
    level, quiet.level = quiet.level, logging.ERROR  # "Ignoring fixed x limits": PDPlotter's equal aspect, not the user's
    try:
        ax = plotter.get_plot(label_unstable=False)
    finally:
        quiet.setLevel(level)
    figure = ax.figure if hasattr(ax, "figure") else plt.gcf()
    note = f"\nknown (held out): {', '.join(marked)}" if marked else ""
    figure.suptitle(title + note, fontsize=11, y=1.04)
    figure.set_size_inches(7, 6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path
