"""From symmetry to structure: lattice parameters, candidate structures relaxed with CHGNet on Dask, the CSP benchmark."""
