"""Agents that learn from the feedback of an environment: a DQN on gymnasium tasks.

    imo agent train --env CartPole-v1 --steps 50000
    imo agent train --env CartPole-v1,imo/Chain-v0      # one network, two tasks

gymnasium is an optional dependency (the `agents` extra); `require_gymnasium()` imports it and
turns its absence into one clean line. Modules that need it import it inside functions, so
`imo --help` works without the extra.
"""

from imo.errors import ImoError


def require_gymnasium():
    """Import gymnasium or say which extra installs it."""
    try:
        import gymnasium
    except ImportError:
        raise ImoError("imo agent needs gymnasium, which is not installed",
                       hint="pip install 'imo[agents]'") from None
    return gymnasium
