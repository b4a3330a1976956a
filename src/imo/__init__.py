"""imo: a laboratory for small transformer language models.

Train small GPTs on a CPU in minutes, compress them, serve them, search with them and measure
the opinions in the source notes as experiments. See README.md for a tour.
"""

__version__ = "0.1.0"
