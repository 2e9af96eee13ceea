"""Ball-and-stick pictures of crystal structures (matplotlib, no display): the unit cell, atoms coloured by element
(Jmol colours) and named in a legend, bonds between atoms closer than their covalent radii allow."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

BOND_TOLERANCE = 1.2  # a bond: two atoms closer than 1.2 x the sum of their covalent radii


def conventional_cell(structure):
    """The structure's conventional standard cell (spglib, symprec 0.1), as drawn; the structure itself where spglib
    fails (a collapsed cell)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure, symprec=0.1).get_conventional_standard_structure()
    except Exception:  # noqa: BLE001 - spglib raises several types on a degenerate cell
        return structure


def _atoms_in_cell(structure) -> tuple[list[str], np.ndarray]:
    """Species and Cartesian positions of the sites and of their images on the cell's faces, edges and corners."""
    species, points = [], []
    for site in structure:
        frac = np.mod(site.frac_coords, 1.0)
        shifts = [np.array([i, j, k]) for i in (0, 1) for j in (0, 1) for k in (0, 1)
                  if all(s == 0 or abs(f) < 1e-3 for s, f in zip((i, j, k), frac))]
        for shift in shifts:
            species.append(site.specie.symbol)
            points.append(structure.lattice.get_cartesian_coords(frac + shift))
    return species, np.array(points)


def draw_structure(ax, structure, title: str) -> list[str]:
    """Draw one structure on a 3-D axis; returns its elements (for a legend)."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.data.colors import jmol_colors

    species, points = _atoms_in_cell(structure)
    radii = np.array([covalent_radii[atomic_numbers[s]] for s in species])
    for i in range(len(points)):
        distance = np.linalg.norm(points[i + 1:] - points[i], axis=1)
        for j in np.flatnonzero(distance < BOND_TOLERANCE * (radii[i] + radii[i + 1:])) + i + 1:
            ax.plot(*zip(points[i], points[j]), color="0.45", lw=1.2, zorder=1)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    cart = structure.lattice.get_cartesian_coords(corners)
    for a in range(8):
        for b in range(a + 1, 8):
            if np.abs(corners[a] - corners[b]).sum() == 1:
                ax.plot(*zip(cart[a], cart[b]), color="0.7", lw=0.8, ls="--", zorder=0)
    colors = [jmol_colors[atomic_numbers[s]] for s in species]
    ax.scatter(*points.T, s=240 * radii ** 2, c=colors, edgecolors="0.2", linewidths=0.6, depthshade=False, zorder=2)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    ax.set_box_aspect(np.ptp(np.vstack([cart, points]), axis=0) + 1e-6)
    return sorted(set(species), key=species.index)


def structure_figure(panels: Sequence[tuple[Any, str]], caption: str, path: Path, dpi: int = 110) -> Path:
    """One PNG with a panel per (structure, title), a legend naming each element's colour, and a caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors
    from matplotlib.lines import Line2D

    fig = plt.figure(figsize=(3.6 * len(panels), 3.9))
    elements: list[str] = []
    for k, (structure, title) in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), k, projection="3d")
        elements += [e for e in draw_structure(ax, structure, title) if e not in elements]
    handles = [Line2D([], [], marker="o", ls="", markersize=9, markerfacecolor=jmol_colors[atomic_numbers[e]],
                      markeredgecolor="0.2", label=e) for e in elements]
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    fig.text(0.5, 0.02, caption, ha="center", fontsize=8, wrap=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)
