"""Adam for the training step, without ``torch.optim``.

Constructing a ``torch.optim`` optimiser imports ``torch._dynamo`` — a second and more of every
``bihm train`` start (measured 1.1 s of a 3 s start on a 2-core machine), paid again by every resume,
every torchrun rank and every test that starts a training process. :class:`Adam` is the same
algorithm with torch.optim.Adam's defaults (β = (0.9, 0.999), ε = 10⁻⁸, no weight decay), the same
update — torch's fused kernel ``torch._fused_adam_`` where this torch has one for the device, else
the same arithmetic in foreach ops — and the same state layout (``{"state": {i: {"step",
"exp_avg", "exp_avg_sq"}}, "param_groups": [{"lr", …}]}``), so checkpoints are unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Adam:
    """Adam (Kingma & Ba, 2015) over a list of parameters that carry ``.grad``; see the module docstring."""

    def __init__(self, params: list[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.param_groups = [{"lr": float(lr), "betas": tuple(betas), "eps": float(eps), "weight_decay": 0.0,
                              "amsgrad": False, "params": list(range(len(self.params)))}]  # fmt: skip
        self.state: dict[int, dict[str, Tensor]] = {}
        self._fused: bool | None = None  # unknown until the first step

    def _state_of(self, i: int, p: Tensor) -> dict[str, Tensor]:
        st = self.state.get(i)
        if st is None:
            st = self.state[i] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return st

    @torch.no_grad()
    def step(self, found_inf: Tensor | None = None) -> None:
        """One Adam update of every parameter that has a gradient.

        ``found_inf`` (a 0-d float tensor on the parameters' device, for CUDA-graph replay): when it
        is 1 the update is skipped on the device — parameters, moments and step counts unchanged."""
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        params, grads, m, v, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            st = self._state_of(i, p)
            params.append(p.detach())
            grads.append(p.grad)
            m.append(st["exp_avg"])
            v.append(st["exp_avg_sq"])
            steps.append(st["step"])
        if not params:
            return
        torch._foreach_add_(steps, 1)
        if self._fused is not False and hasattr(torch, "_fused_adam_"):
            try:
                torch._fused_adam_(params, grads, m, v, [], steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                                   weight_decay=0.0, eps=eps, maximize=False, grad_scale=None, found_inf=found_inf)  # fmt: skip
                self._fused = True
                if found_inf is not None:  # a skipped update does not count
                    torch._foreach_sub_(steps, [found_inf] * len(steps))
                _changed_in_place(self.params)
                return
            except (RuntimeError, NotImplementedError, TypeError):
                if self._fused:  # it worked before: a real error
                    raise
                self._fused = False
        if found_inf is not None:
            raise RuntimeError("Adam: a device-side skip (found_inf) needs torch's fused Adam kernel")
        # the same update in foreach ops (torch.optim.Adam's multi-tensor path)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        counts = [float(s) for s in steps]
        step_size = [-lr / (1 - beta1**n) for n in counts]
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, [math.sqrt(1 - beta2**n) for n in counts])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, step_size)

    def state_dict(self) -> dict:
        return {"state": {i: dict(st) for i, st in self.state.items()}, "param_groups": [dict(g) for g in self.param_groups]}

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict`'s output (or torch.optim.Adam's); tensors move to the parameters' device."""
        self.param_groups[0]["lr"] = float(sd.get("param_groups", [{}])[0].get("lr", self.param_groups[0]["lr"]))
        self.state = {}
        for i, st in sd.get("state", {}).items():
            i = int(i)
            p = self.params[i]
            if not all(k in st for k in ("step", "exp_avg", "exp_avg_sq")):
                continue  # incomplete: this parameter starts fresh
            self.state[i] = {
                "step": torch.as_tensor(st["step"], dtype=torch.float32).reshape(()).to(p.device).clone(),
                "exp_avg": torch.as_tensor(st["exp_avg"]).to(device=p.device, dtype=p.dtype).clone(),
                "exp_avg_sq": torch.as_tensor(st["exp_avg_sq"]).to(device=p.device, dtype=p.dtype).clone(),
            }


def _changed_in_place(params: list[Tensor]) -> None:
    """Bump the parameters' version counters: torch's fused Adam kernel writes them without doing so
    (measured), and caches keyed on versions — the packed int8 weights of the estimators — would
    otherwise keep serving the weights of before the update."""
    bump = getattr(torch.autograd.graph, "increment_version", None)
    if bump is not None:
        for p in params:
            bump(p)
