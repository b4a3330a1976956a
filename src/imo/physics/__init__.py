"""A 2-D physical world for exams: pymunk scenes generated from seeds, with exact ground truth.

    scenes = [scenes.generate(seed) for seed in range(1000)]
    quad = quadruplets.vanish(scenes[0], ball=0, t=90)

pymunk is an optional dependency (the `agents` extra); `require_pymunk()` imports it and turns
its absence into one clean line.
"""

from imo.errors import ImoError


def require_pymunk():
    try:
        import pymunk
    except ImportError:
        raise ImoError("imo exam physics needs pymunk, which is not installed",
                       hint="pip install 'imo[agents]'") from None
    return pymunk
