"""Number types of the options, checked by the command line before anything runs (`--model.learning_rate -1`,
`nan` or `inf` fail at once, in one line)."""

from jsonargparse.typing import restricted_number_type

PositiveFiniteFloat = restricted_number_type("PositiveFiniteFloat", float, [(">", 0), ("<", float("inf"))])
NonNegativeFiniteFloat = restricted_number_type("NonNegativeFiniteFloat", float, [(">=", 0), ("<", float("inf"))])
Probability = restricted_number_type("Probability", float, [(">=", 0), ("<", 1)])
# Ports below 1024 need root on most systems; LitServe refuses them.
Port = restricted_number_type("Port", int, [(">=", 1024), ("<=", 65535)])
