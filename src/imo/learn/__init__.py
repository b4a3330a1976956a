"""Other ways to learn and to wire (issue 19): zeroth-order training (MeZO), Forward-Forward,
feedback alignment, dynamic sparse connectivity (SET, RigL) and capsules with dynamic routing,
all on the same small digit classifiers as backprop so that they can be compared at equal budget.

    imo learn train mezo --data mnist --epochs 2
    imo learn capsules --routing 3
"""
