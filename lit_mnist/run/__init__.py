"""The machinery of a run's life: its folder, checkpoints, signals, the checks of its options, and one-line errors."""
