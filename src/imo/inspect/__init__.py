"""Looking inside models: toy models of superposition (tms), an activation store (activations) and sparse autoencoders (sae)."""
