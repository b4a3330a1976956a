"""Looking inside models: toy models of superposition (tms), and more to come."""
