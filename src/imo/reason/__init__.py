"""Reasoning by search: a policy trained on worked solutions, verifiers (outcome and process reward
models, self-evaluation, majority vote), search under one token budget (greedy, best-of-n, beam,
MCTS, revision, tree of thoughts) and expert iteration. The four parts of a reasoning system in the
source notes, on tasks whose answers are checked exactly (`imo.tasks.arithmetic`, `.countdown`).

    imo reason train --task countdown --difficulty 1
    imo reason solve RUN --method beam --verifier prm:RUN2 --budget 512

This file imports nothing heavy: the task modules import `imo.reason.steps` on registration.
"""
