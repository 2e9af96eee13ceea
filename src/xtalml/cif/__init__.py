"""CIF parsing: gemmi for speed, symmetry normalisation, and a pool that no single file can crash or hang."""
