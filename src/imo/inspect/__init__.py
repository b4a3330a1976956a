"""Looking inside models: toy models of superposition (tms) and an activation store (activations)."""
