"""`python -m imo ...` (used by torchrun: `torchrun --nproc_per_node=2 -m imo train ...`)."""

from imo.cli import main

main()
