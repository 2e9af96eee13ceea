"""Studies that retrain models through xtalml.training: feature-set ablation, split modes, seed spread."""
