"""What every model family shares around its forward pass: switching the attention backend for a
while, and saving weights with a tied output head stored once (safetensors keeps each tensor once).

    class Llama(SavedWeights, nn.Module): ...
"""

from contextlib import contextmanager

from torch import Tensor, nn

from imo.model.attention import BACKENDS


class SavedWeights(nn.Module):
    """Mixin for a model with `cfg.tie_weights`, `transformer.wte`, `lm_head` and blocks in
    `transformer.h` whose attention has a `backend` name."""

    @contextmanager
    def attention_backend(self, name: str):
        """Temporarily run every block with another backend (they compute the same function)."""
        BACKENDS.get(name)
        old = [b.attn.backend for b in self.transformer.h]
        for b in self.transformer.h:
            b.attn.backend = name
        try:
            yield self
        finally:
            for b, o in zip(self.transformer.h, old, strict=True):
                b.attn.backend = o

    def state_dict_for_save(self) -> dict[str, Tensor]:
        """Weights without the tied lm_head copy."""
        sd = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if self.cfg.tie_weights:
            sd.pop("lm_head.weight", None)
        return sd

    def load_saved_state(self, sd: dict[str, Tensor]) -> None:
        sd = self._restore_aliases(dict(sd))
        if self.cfg.tie_weights:
            sd["lm_head.weight"] = sd["transformer.wte.weight"]
        self.load_state_dict(sd, strict=True)

    def _restore_aliases(self, sd: dict[str, Tensor]) -> dict[str, Tensor]:
        """A family whose module tree registers a tensor under two names puts the second back."""
        return sd
