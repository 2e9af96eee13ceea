"""Data sources: each writes raw files plus a manifest (id, path, sha256, size)."""
