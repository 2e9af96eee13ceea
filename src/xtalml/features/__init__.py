"""Features: cell geometry and composition descriptors, plus the schema that separates them from targets."""
