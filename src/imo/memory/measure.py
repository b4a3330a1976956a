"""Peak live tensor bytes of a computation, counted at the dispatcher (no wall clock, no RSS).

Every tensor an operator returns is counted once per storage until the last Python tensor on that
storage is gone; the peak of that sum is what the computation held at its fullest. Internal
scratch buffers of a kernel are not seen, and tensors that existed before the call (weights, the
input) are not counted. It is what tells a loop that keeps every block's keys (memory linear in
length) from one that keeps a fixed state (constant memory), deterministically.

    with LiveBytes() as meter:
        model.nll(x, y)
    meter.peak   # bytes
"""

import weakref

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}  # storage address -> live tensors on it
        self.sizes: dict[int, int] = {}
        self.now = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.now -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0:  # an empty tensor
                continue
            if key not in self.refs:
                self.refs[key], self.sizes[key] = 0, storage.nbytes()
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key)
        return out
