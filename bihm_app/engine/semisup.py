"""Semi-supervised BiHM (thesis chapter 4; bihm-math.md, "Semi-supervised BiHM").

A label y ∈ {0 … C−1} joins the BiHM in one of two places (``LabelConfig.placement``):

* ``"top"`` (sections 4.2–4.5): ``p(x,h,y) = p(y) p(h_L|y) p(h_{L−1}|h_L) … p(x|h_1)`` and
  ``q(x,h,y) = q(x) q(h|x) q(y|h_L)`` with

      p(y)       = softmax(π)                                   learned prior over C classes
      p(h_L | y) = B(σ(c + T e_y))                              c = ``p_prior`` (shared bias), T = ``y_p_weights``
      q(y | h_L) = softmax(V h_L + e)                           V = ``y_q_weights``, e = ``y_q_biases``

  The label enters the top latent layer as a one-hot input of a sigmoid layer, as in the
  authors' code (afcarl/helmholtz-machines, ``helmholtz/supervised_bihm.py``: ``p_h1.log_prob(h_top,
  samples_y)`` with one-hot y; ``train-semi.py`` puts a ``MultinomialTopLayer`` prior over the
  label above the SBN stack and a ``MultinomialLayer`` softmax q(y | h_top)). Each class thus has
  its own logit vector ``c + T[:, y]`` for h_L; with T = 0 the model is the plain BiHM with one
  extra, independent label.

* ``"bottom"`` (section 4.6, never evaluated in the thesis): the label hangs off the lowest layer,
  ``p(x,y,h) = p(h) p(x|h) q(y|x,h_1)`` and ``q(x,y,h) = q(x) q(h|x) q(y|x,h_1)`` with

      q(y | x, h_1) = softmax(V_x x + V_h h_1 + e)             V_x = ``y_q_weights_x``, V_h = ``y_q_weights``

  or, with ``LabelConfig.inputs = "h1"`` (not in the thesis), q(y | h_1) = softmax(V_h h_1 + e): no
  V_x, so the classifier must use the learned code (docs/semi-supervised.md, "Label at the bottom:
  what beats the overfitting"). Everything below holds with V_x = 0.

  (p(y|x,h_1) := q(y|x,h_1)), so √(p q) = q(y|x,h_1) √(p(x,h) q(h|x)): y sums out of A, the x-part
  is exactly the unsupervised BiHM, and unlabelled points give the label layer no gradient.

For both, with the summand ``s(x,h,y) = √(p(x,h,y) q(h,y|x))``:

    A(x)   = Σ_{h,y} s(x,h,y)        p*(x)   = A²/Z²          (4.1)
    B(x,y) = Σ_h     s(x,h,y)        p*(x,y) = A·B/Z²         (4.2)
                                     p*(y|x) = B/A            (4.3)

and the importance-sampling estimators with h_k ~ q(h|x), k = 1 … K (one set of h samples is
shared by Ã and B̃, as the authors' code does, so their ratio is less noisy):

    B̃(x,y) = mean_k s(x,h_k,y) / q(h_k|x)                                    (4.5)
    Ã(x)   = mean_k s(x,h_k,y_k) / (q(h_k|x) r(y_k|h_k)),  y_k ~ r(y|h_k)      (4.4)

where the label proposal r is ``"q"``: q(y|h_L) (4.4), ``"mixed"``: ½ q(y|h_L) + ½ δ_{y*} for a
labelled point (4.11), or ``"sum"``: y summed exactly over its C values (Rao–Blackwellised,
Ã = Σ_y B̃ on the shared samples, so p̃*(y|x) sums to one; not in the thesis). The label-at-the-
bottom model always sums y out exactly (Ã = Σ_y B̃ = the unsupervised estimate 3.5).

Objectives (4.6–4.8): a labelled point maximises ``log B̃(x,y) − γ log Ã(x)`` (γ ∈ [−1, 1]; γ = 1
is log p*(y|x), γ = −1 is log p*(x,y) + 2 log Z); an unlabelled one ``2 log Ã(x)`` (≤ log p*(x)).
Gradients (4.9, 4.10) are self-normalised weighted sums Σ_k ω̃_k ∇ log s(x, h_k, y_k) with the
samples held fixed; as in Algorithm 1 every layer's gradient is one residual times one input.

Shapes: x (B, D); latent samples (B, K, n_l) with the K samples of a point contiguous; per-class
tables (B, K, C).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bihm_app.engine.estimators import Estimate, estimate_log_z2
from bihm_app.engine.model import BiHM, ModelConfig, _glorot_uniform_, bernoulli_log_prob, bernoulli_sample
from bihm_app.engine.training import Trainer, TrainConfig

PLACEMENTS = ("top", "bottom")
PROPOSALS = ("q", "mixed", "sum")
INPUTS = ("x,h1", "h1")  # what the label-at-the-bottom layer q(y | ·) reads


@dataclass(frozen=True)
class LabelConfig:
    """The label layer: C classes, where y hangs (top | bottom), Ã's label proposal and γ.

    ``n_classes`` and ``placement`` fix the parameters; ``proposal`` and ``gamma`` only change
    the training objective (and the Ã estimate reported while training).
    """

    n_classes: int = 10
    placement: str = "top"  # "top" (4.2) or "bottom" (4.6)
    proposal: str = "q"  # label proposal of Ã: "q" (4.4), "mixed" (4.11) or "sum" (exact over y)
    gamma: float = 0.0  # labelled objective log B̃ − γ log Ã (4.7); the thesis' best net uses 0
    l2: float = 0.0  # (λ/2)‖V‖² on the q(y|·) weights per labelled point (not in the thesis; 0 = off)
    l2_x: float | None = None  # bottom: the penalty of V_x (the pixels' weights) if not l2's
    inputs: str = "x,h1"  # bottom: q(y | x, h_1) (4.6) or "h1": q(y | h_1), no V_x (not in the thesis)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_classes", int(self.n_classes))
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "l2", float(self.l2))
        if self.l2_x is not None:
            object.__setattr__(self, "l2_x", float(self.l2_x))
        if self.n_classes < 2:
            raise ValueError(f"a label needs at least 2 classes, got {self.n_classes}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"label placement must be top or bottom, got {self.placement!r}")
        if self.proposal not in PROPOSALS:
            raise ValueError(f"label proposal must be q, mixed or sum, got {self.proposal!r}")
        if not (math.isfinite(self.gamma) and -1.0 <= self.gamma <= 1.0):
            raise ValueError(f"gamma must be in [-1, 1], got {self.gamma}")
        for name, v in (("l2", self.l2), ("l2 x", self.l2_x)):
            if v is not None and not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"label {name} must be a finite number >= 0, got {v}")
        if self.inputs not in INPUTS:
            raise ValueError(f"label input must be x,h1 or h1, got {self.inputs!r}")
        if self.inputs != "x,h1" and self.placement != "bottom":
            raise ValueError("label input h1 is for the label at the bottom (the label on top reads h_L)")
        if self.l2_x is not None and (self.placement != "bottom" or self.inputs != "x,h1"):
            raise ValueError("label l2 x is for a label layer that reads x (the label at the bottom, input x,h1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def label_parameter_shapes(cfg: ModelConfig, labels: LabelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the label parameters (added to :func:`model.parameter_shapes`)."""
    C, n = labels.n_classes, cfg.sizes
    if labels.placement == "top":
        return {
            "y_prior": (C,),  # π: logits of p(y)
            "y_p_weights": (n[-1], C),  # T: logits of h_L given y are p_prior + T[:, y]
            "y_q_weights": (C, n[-1]),  # V: logits of q(y | h_L)
            "y_q_biases": (C,),  # e
        }
    shapes = {"y_q_weights": (C, n[1])}  # V_h: logits of q(y | x, h_1) from h_1
    if labels.inputs == "x,h1":
        shapes["y_q_weights_x"] = (C, n[0])  # V_x: … from x
    return shapes | {"y_q_biases": (C,)}  # e


class SemiBiHM(BiHM):
    """A BiHM with a label layer (see the module docstring). Parameters: the BiHM's, then the label's.

    The p and q stacks, their names and their initialisation (for the same generator) are those
    of :class:`BiHM`; label weights are Glorot-uniform, label biases and p(y)'s logits 0.
    """

    def __init__(self, cfg: ModelConfig, labels: LabelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(cfg, generator)
        self.labels = labels
        for name, shape in label_parameter_shapes(cfg, labels).items():
            p = nn.Parameter(torch.zeros(shape))
            if len(shape) == 2:
                _glorot_uniform_(p, generator)
            setattr(self, name, p)

    @property
    def n_classes(self) -> int:
        return self.labels.n_classes

    @property
    def reads_x(self) -> bool:
        """True when the label-at-the-bottom layer reads x (V_x exists), False for q(y | h_1)."""
        return not self.top and self.labels.inputs == "x,h1"

    @property
    def top(self) -> bool:
        """True when the label sits on top (4.2), False when it hangs off h_1 (4.6)."""
        return self.labels.placement == "top"

    def weights(self) -> list[Tensor]:
        return [*super().weights(), *(p for n, p in self.named_parameters() if n.startswith("y_") and "weights" in n)]

    # The label-on-top model has no label-free p(x, h) prior: guard the BiHM methods that use one.
    def log_p(self, hs: list[Tensor], return_logits: bool = False):
        if self.top:
            raise ValueError("a label-on-top model has no label-free p(x, h): use bihm_app.engine.semisup")
        return super().log_p(hs, return_logits)

    def sample_p(self, n: int, generator: torch.Generator | None, top: Tensor | None = None) -> list[Tensor]:
        if self.top and top is None:
            raise ValueError("a label-on-top model samples h_L given y: use bihm_app.engine.semisup")
        return super().sample_p(n, generator, top)

    def top_logits(self) -> Tensor:
        """Logits of p(h_L | y) for every class, (C, n_L): c + T[:, y] (top placement)."""
        return self.p_prior.unsqueeze(0) + self.y_p_weights.t()

    def label_logits(self, hs: list[Tensor]) -> Tensor:
        """Logits z of q(y | ·) for samples ``hs = [x (B, D), h_1 (B, K, n_1), …]``, (B, K, C).

        Top: V h_L + e. Bottom: V_x x + V_h h_1 + e, with V_x x computed once per data point
        (V_h h_1 + e when the layer reads h_1 only).
        """
        if self.top:
            return F.linear(hs[-1], self.y_q_weights, self.y_q_biases)
        if not self.reads_x:
            return F.linear(hs[1], self.y_q_weights, self.y_q_biases)
        zx = F.linear(hs[0], self.y_q_weights_x).unsqueeze(1)  # (B, 1, C)
        return zx + F.linear(hs[1], self.y_q_weights, self.y_q_biases)


# ---------------------------------------------------------------------------------------------
# the summands log s(x, h, y) of A and B
# ---------------------------------------------------------------------------------------------
def _log_p_below(model: BiHM, hs: list[Tensor]) -> Tensor:
    """Σ_{l=1..L} log p(h_{l−1} | h_l) for ``hs = [x (B, D), h_1 (B, K, n_1), …]`` -> (B, K)."""
    out = None
    for l in range(1, model.n_layers + 1):
        target = hs[0].unsqueeze(1) if l == 1 else hs[l - 1]
        t = bernoulli_log_prob(target, model.p_logits(l, hs[l]))
        out = t if out is None else out + t
    return out


@dataclass
class LabelTerms:
    """Per-sample terms of a semi-supervised BiHM for samples ``hs``; (B, K) or (B, K, C)."""

    log_q: Tensor  # log q(h | x), (B, K)
    log_s: Tensor  # log s(x, h, y) = log √(p(x,h,y) q(h,y|x)) for every class, (B, K, C)
    log_qy: Tensor  # log q(y | ·) for every class, (B, K, C)
    log_pxhy: Tensor  # log p(x, h, y) for every class, (B, K, C)


def label_terms(
    model: SemiBiHM, hs: list[Tensor], log_q: Tensor | None = None, log_p_below: Tensor | None = None
) -> LabelTerms:
    """log s(x, h, y) for every class and the pieces it is made of (differentiable).

    ``hs = [x (B, D), h_1 (B, K, n_1), …, h_L (B, K, n_L)]``; ``log_q`` (log q(h|x)) and
    ``log_p_below`` (Σ_l log p(h_{l−1}|h_l), the prior excluded) are computed unless given. Top:
    ``log s = ½[log p(y) + log p(h_L|y) + Σ_l log p(h_{l−1}|h_l) + log q(h|x) + log q(y|h_L)]``;
    bottom: ``log s = log q(y|x,h_1) + ½[log p(x,h) + log q(h|x)]``.
    """
    if log_q is None:
        log_q = model.log_q(hs)
    log_qy = torch.log_softmax(model.label_logits(hs), -1)  # (B, K, C)
    below = _log_p_below(model, hs) if log_p_below is None else log_p_below  # (B, K)
    if model.top:
        a = model.top_logits()  # (C, n_L)
        hL = hs[-1]
        log_ph_y = hL @ a.t() - F.softplus(a).sum(-1)  # (B, K, C): log p(h_L | y)
        log_pxhy = below.unsqueeze(-1) + log_ph_y + torch.log_softmax(model.y_prior, 0)
        log_s = 0.5 * (log_pxhy + log_q.unsqueeze(-1) + log_qy)
    else:
        log_pxh = below + bernoulli_log_prob(hs[-1], model.p_prior)
        log_pxhy = log_pxh.unsqueeze(-1) + log_qy  # p(y|x,h_1) := q(y|x,h_1)
        log_s = log_qy + 0.5 * (log_pxh + log_q).unsqueeze(-1)
    return LabelTerms(log_q, log_s, log_qy, log_pxhy)


def _sample_categorical(log_probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw per row of Cat(exp(log_probs)) by inverting the CDF, (…, C) -> (…) int64."""
    cdf = torch.cumsum(torch.exp(log_probs), -1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device, dtype=cdf.dtype)
    return torch.clamp((cdf < u * cdf[..., -1:]).sum(-1), max=log_probs.shape[-1] - 1)


def label_proposal(
    model: SemiBiHM,
    terms: LabelTerms,
    proposal: str,
    generator: torch.Generator | None,
    y: Tensor | None = None,
    labelled: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Log-weights of Ã (4.4) for the samples behind ``terms``, and the labels drawn for it.

    Returns ``(log_wA (B, K), y_A (B, K) int64 or None)``: log w = log s(x,h_k,y_k) − log q(h_k|x)
    − log r(y_k|h_k) for a drawn label ("q", "mixed"), or log Σ_y s(x,h_k,y) − log q(h_k|x) with y
    summed ("sum", and always for the label-at-the-bottom model, where it is ½(log p − log q)).
    "mixed" (4.11) needs ``y`` (B,) and ``labelled`` (B,) bool; unlabelled rows fall back to q.
    """
    if proposal not in PROPOSALS:
        raise ValueError(f"label proposal must be q, mixed or sum, got {proposal!r}")
    log_w_b = terms.log_s - terms.log_q.unsqueeze(-1)  # (B, K, C)
    if not model.top:
        # Σ_y q(y|x,h_1) = 1: the exact sum is the unsupervised log-weight
        below = terms.log_pxhy[..., 0] - terms.log_qy[..., 0]
        return 0.5 * (below - terms.log_q), None
    if proposal == "sum":
        return torch.logsumexp(log_w_b, -1), None
    ya = _sample_categorical(terms.log_qy, generator)  # (B, K) from q(y | h_k)
    log_r = terms.log_qy.gather(-1, ya.unsqueeze(-1)).squeeze(-1)
    if proposal == "mixed" and y is not None:
        lab = labelled if labelled is not None else torch.ones_like(y, dtype=torch.bool)
        B, K = ya.shape
        take = torch.rand((B, K), generator=generator, device=ya.device, dtype=terms.log_q.dtype) < 0.5
        take = take & lab.unsqueeze(1)
        yl = y.clamp(0, model.n_classes - 1).unsqueeze(1).expand(B, K)
        ya = torch.where(take, yl, ya)
        log_qy_a = terms.log_qy.gather(-1, ya.unsqueeze(-1)).squeeze(-1)
        delta = (ya == yl).to(log_qy_a.dtype)
        mixed = torch.log(0.5 * torch.exp(log_qy_a) + 0.5 * delta)  # log q'(y_k | h_k) (4.11)
        log_r = torch.where(lab.unsqueeze(1), mixed, log_qy_a)
    log_s_a = terms.log_s.gather(-1, ya.unsqueeze(-1)).squeeze(-1)
    return log_s_a - terms.log_q - log_r, ya


# ---------------------------------------------------------------------------------------------
# estimators with standard errors, streaming over K
# ---------------------------------------------------------------------------------------------
@dataclass
class SemiPointEstimates:
    """Per-data-point estimates (4.3–4.5), each with its delta-method standard error.

    Shapes: (B,) for the x-quantities, (B, C) for one value per class.
    """

    log_a: Tensor  # log Ã(x)        (4.4)
    log_a_se: Tensor
    log_b: Tensor  # log B̃(x, y)     (4.5), every class
    log_b_se: Tensor
    log_py: Tensor  # log p̃*(y | x) = log B̃ − log Ã  (4.6), every class
    log_py_se: Tensor
    K: int

    @property
    def log_ptilde(self) -> Tensor:
        """log p̃*(x) = 2 log Ã(x), a lower bound on log p*(x) (4.8); (B,)."""
        return 2 * self.log_a

    @property
    def log_ptilde_se(self) -> Tensor:
        return 2 * self.log_a_se

    @property
    def predict(self) -> Tensor:
        """The classifier argmax_y B̃(x, y), (B,) int64."""
        return self.log_b.argmax(-1)


@torch.no_grad()
def semisup_point_estimates(
    model: SemiBiHM,
    x: Tensor,
    K: int,
    generator: torch.Generator | None,
    proposal: str = "q",
    y: Tensor | None = None,
    k_chunk: int = 1000,
) -> SemiPointEstimates:
    """log Ã(x), log B̃(x, y) for every class and log p̃*(y|x), streaming over K in chunks.

    x (B, D); ``y`` (B,) is needed only for the "mixed" proposal (else it falls back to "q").
    Each chunk draws fresh h_k ~ q(h|x) shared by Ã and B̃. Standard errors: delta method,
    Var[log mean w] ≈ Var[w]/(K E[w]²); for log B̃ − log Ã also the covariance of the shared samples.
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    s1a = s2a = s1b = s2b = sab = None
    done = 0
    while done < K:
        k = min(k_chunk, K - done)
        hs, _, log_q = model.sample_q(x, k, generator)
        terms = label_terms(model, hs, log_q)
        log_wb = terms.log_s - log_q.unsqueeze(-1)  # (B, k, C)
        log_wa, _ = label_proposal(model, terms, proposal, generator, y)  # (B, k)
        parts = (
            torch.logsumexp(log_wa, 1),
            torch.logsumexp(2 * log_wa, 1),
            torch.logsumexp(log_wb, 1),
            torch.logsumexp(2 * log_wb, 1),
            torch.logsumexp(log_wb + log_wa.unsqueeze(-1), 1),
        )
        if s1a is None:
            s1a, s2a, s1b, s2b, sab = parts
        else:
            s1a, s2a, s1b, s2b, sab = (torch.logaddexp(a, b) for a, b in zip((s1a, s2a, s1b, s2b, sab), parts))
        done += k
    log_n = math.log(K)
    ra = torch.exp(s2a - 2 * s1a + log_n)  # E[w²]/E[w]² of Ã's weights, (B,)
    rb = torch.exp(s2b - 2 * s1b + log_n)  # (B, C)
    rab = torch.exp(sab - s1a.unsqueeze(-1) - s1b + log_n)  # E[w_A w_B]/(E w_A E w_B), (B, C)
    log_a, log_b = s1a - log_n, s1b - log_n
    return SemiPointEstimates(
        log_a=log_a,
        log_a_se=torch.sqrt(torch.clamp(ra - 1, min=0) / K),
        log_b=log_b,
        log_b_se=torch.sqrt(torch.clamp(rb - 1, min=0) / K),
        log_py=log_b - log_a.unsqueeze(-1),
        log_py_se=torch.sqrt(torch.clamp(ra.unsqueeze(-1) + rb - 2 * rab, min=0) / K),
        K=K,
    )


def _mean_se(values: Tensor) -> Estimate:
    v = values.double()
    n = v.numel()
    se = float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(v.mean()), se)


@dataclass
class SemiEvaluation:
    """A labelled data set evaluated with :func:`evaluate_semisup`.

    Data-set means carry the standard error over data points (which includes each point's
    Monte-Carlo noise); the per-point tensors (N,) / (N, C) are kept for reports and pictures.
    """

    error: Estimate  # classification error of argmax_y B̃(x, y)
    log_py: Estimate  # log p̃*(y | x) at the true label (4.6)
    log_ptilde: Estimate  # log p̃*(x) = 2 log Ã (4.8)
    n: int
    K: int
    y: Tensor  # (N,) true labels
    predicted: Tensor  # (N,) argmax_y B̃
    log_py_all: Tensor  # (N, C) log p̃*(y | x) for every class
    n_classes: int = 10
    confusion: Tensor = field(init=False)  # (C, C) counts: row = true class, column = predicted

    def __post_init__(self) -> None:
        C = self.n_classes
        idx = self.y.long() * C + self.predicted.long()
        self.confusion = torch.bincount(idx, minlength=C * C).reshape(C, C)

    def class_errors(self) -> list[Estimate]:
        """Error of each true class with its binomial standard error (NaN for an absent class)."""
        out = []
        for c in range(self.n_classes):
            wrong = (self.predicted[self.y == c] != c).double()
            out.append(_mean_se(wrong) if wrong.numel() else Estimate(math.nan, math.nan))
        return out

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "K": self.K,
            "error": self.error.mean,
            "error_se": self.error.se,
            "log_py": self.log_py.mean,
            "log_py_se": self.log_py.se,
            "log_ptilde": self.log_ptilde.mean,
            "log_ptilde_se": self.log_ptilde.se,
            "class_errors": [e.mean for e in self.class_errors()],
            "class_errors_se": [e.se for e in self.class_errors()],
            "confusion": self.confusion.tolist(),
        }


@torch.no_grad()
def evaluate_semisup(
    model: SemiBiHM,
    batches: Iterable[tuple[Tensor, Tensor]],
    K: int,
    generator: torch.Generator | None,
    proposal: str = "q",
    k_chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SemiEvaluation:
    """Classification error, log p̃*(y|x) and log p̃*(x) over labelled (x (b, D), y (b,)) batches.

    ``proposal`` is Ã's label proposal ("mixed" uses the true labels, as in training).
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    ys, preds, lpy_all, lpt = [], [], [], []
    for xb, yb in batches:
        xb = xb.to(device=model.device, dtype=model.dtype)
        yb = yb.to(device=model.device).long()
        kc = k_chunk or max(1, min(K, 200_000 // max(1, xb.shape[0] * model.n_classes // 4 + 1)))
        est = semisup_point_estimates(model, xb, K, generator, proposal, yb, kc)
        ys.append(yb.cpu())
        preds.append(est.predict.cpu())
        lpy_all.append(est.log_py.cpu())
        lpt.append(est.log_ptilde.cpu())
        if progress is not None:
            progress(xb.shape[0])
    if not ys:
        raise ValueError("no data to evaluate")
    y, pred, lpy = torch.cat(ys), torch.cat(preds), torch.cat(lpy_all)
    true_lpy = lpy.gather(1, y.unsqueeze(1)).squeeze(1)
    return SemiEvaluation(
        error=_mean_se((pred != y).double()),
        log_py=_mean_se(true_lpy),
        log_ptilde=_mean_se(torch.cat(lpt)),
        n=int(y.numel()),
        K=K,
        y=y,
        predicted=pred,
        log_py_all=lpy,
        n_classes=model.n_classes,
    )


# ---------------------------------------------------------------------------------------------
# the partition function of the labelled model (3.11 with y)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_p_labelled(model: SemiBiHM, n: int, generator: torch.Generator | None) -> tuple[Tensor, list[Tensor]]:
    """Ancestral samples (y, x, h) ~ p of the label-on-top model: ``(y (n,), [x, h_1, …, h_L])``."""
    if not model.top:
        raise ValueError("ancestral (y, x, h) samples exist for the label-on-top model only")
    y = _sample_categorical(torch.log_softmax(model.y_prior, 0).expand(n, -1), generator)  # (n,)
    h_top = bernoulli_sample(model.top_logits()[y], generator)  # (n, n_L)
    return y, model.sample_p_below(h_top, model.n_layers, generator)


@torch.no_grad()
def log_z2_terms_labelled(model: SemiBiHM, n: int, n_inner: int, generator: torch.Generator | None) -> Tensor:
    """n terms of the Z² estimator (3.11) of the label-on-top model, in log space, (n,).

    (y, x, h) ~ p ancestrally, h' ~ q(h|x) ``n_inner`` times, y' summed over its C values:
    term = log [ mean_{h'} Σ_{y'} √(p(x,h',y') q(h',y'|x)) / q(h'|x) ] + ½[log q(h,y|x) − log p(x,h,y)];
    E[exp(term)] = Σ_x A(x)² = Z².
    """
    y, hs = sample_p_labelled(model, n, generator)
    one = [hs[0]] + [h.unsqueeze(1) for h in hs[1:]]  # as K = 1 samples: (n, 1, n_l)
    t = label_terms(model, one)
    yi = y.view(n, 1, 1)
    log_p = t.log_pxhy.gather(-1, yi)[:, 0, 0]  # log p(x, h, y)
    log_q = t.log_q[:, 0] + t.log_qy.gather(-1, yi)[:, 0, 0]  # log q(h, y | x)
    hs2, _, log_q2 = model.sample_q(hs[0], n_inner, generator)
    t2 = label_terms(model, hs2, log_q2)
    inner = torch.logsumexp((t2.log_s - log_q2.unsqueeze(-1)).flatten(1), 1) - math.log(n_inner)
    return inner + 0.5 * (log_q - log_p)


@torch.no_grad()
def estimate_log_z2_labelled(
    model: SemiBiHM,
    n_samples: int,
    generator: torch.Generator | None,
    n_inner: int = 1,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> Estimate:
    """2 log Z of the labelled model with its delta-method SE (Σ_x p̃*(x) = Σ_x A(x)² = Z²).

    Label on top: the estimator of :func:`log_z2_terms_labelled`. Label at the bottom: y sums out
    of p*, so Z is the unsupervised BiHM's and (3.11) is used as it is.
    """
    if not model.top:
        return estimate_log_z2(model, n_samples, generator, n_inner=n_inner, chunk=chunk, progress=progress)
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples for 2 log Z, got {n_samples}")
    if n_inner < 1:
        raise ValueError(f"inner samples must be at least 1, got {n_inner}")
    s1 = s2 = None
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        v = log_z2_terms_labelled(model, m, n_inner, generator).double()
        a1, a2 = torch.logsumexp(v, 0), torch.logsumexp(2 * v, 0)
        s1, s2 = (a1, a2) if s1 is None else (torch.logaddexp(s1, a1), torch.logaddexp(s2, a2))
        done += m
        if progress is not None:
            progress(m)
    log_n = math.log(n_samples)
    ratio = float(torch.exp(s2 - 2 * s1 + log_n))
    return Estimate(float(s1 - log_n), math.sqrt(max(ratio - 1.0, 0.0) / n_samples))


# ---------------------------------------------------------------------------------------------
# training: closed-form gradients of (4.7)/(4.8) with the weights of (4.9)/(4.10)
# ---------------------------------------------------------------------------------------------
@dataclass
class SemiGradients:
    """One pass of the semi-supervised update on a batch.

    ``objective`` (B,): log B̃ − γ log Ã for labelled points, 2 log Ã for the others (before the
    step); ``log_a``, ``log_b`` (B,) the estimates behind it (log_b at the given label; NaN where
    unlabelled). ``grads``: name -> ascent direction Σ_b ∇ objective_b (summed over the batch),
    same names and shapes as ``model.named_parameters()``. ``samples``/``labels_a``: the h samples
    and the labels drawn for Ã (None when y was summed), for checks.
    """

    objective: Tensor
    log_a: Tensor
    log_b: Tensor
    grads: dict[str, Tensor]
    samples: list[Tensor]
    labels_a: Tensor | None


def objective_coefficients(
    model: SemiBiHM,
    terms: LabelTerms,
    log_wa: Tensor,
    y_a: Tensor | None,
    y: Tensor,
    labelled: Tensor,
    gamma: float,
    proposal: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Weights of (4.9)/(4.10) combined into one coefficient per (point, sample, class).

    Returns ``(objective (B,), log_a (B,), log_b (B,), G (B, K, C), c (B, K))``: the estimated
    ascent direction of Σ_b objective_b is Σ_{b,k,y} G ∇ log s(x_b, h_bk, y) (label on top, where
    c = Σ_y G), resp. Σ_{b,k} c ½∇[log p(x,h) + log q(h|x)] + Σ_{b,k,y} G ∇ log q(y|x,h_1)
    (label at the bottom, where Ã's q(y|·)-part vanishes exactly: Σ_y q ∇log q = 0).
    """
    B, K, C = terms.log_s.shape
    log_k = math.log(K)
    yl = y.clamp(0, C - 1)
    lab = labelled.to(terms.log_s.dtype)  # (B,)
    log_wb = (terms.log_s - terms.log_q.unsqueeze(-1)).gather(-1, yl.view(B, 1, 1).expand(B, K, 1)).squeeze(-1)
    log_a = torch.logsumexp(log_wa, 1) - log_k
    log_b = torch.logsumexp(log_wb, 1) - log_k
    objective = torch.where(labelled, log_b - gamma * log_a, 2 * log_a)
    w_b = torch.softmax(log_wb, 1) * lab.unsqueeze(1)  # ω̃_B (4.10), zero for unlabelled points
    coef_a = (1 - lab) * 2.0 - lab * gamma  # the weight of log Ã in each point's objective, (B,)
    onehot = F.one_hot(yl, C).to(terms.log_s.dtype)  # (B, C)
    if model.top:
        if y_a is None:  # y summed: ω̃_A over (k, y) pairs
            g_a = torch.softmax((terms.log_s - terms.log_q.unsqueeze(-1)).reshape(B, K * C), 1).view(B, K, C)
        else:  # ω̃_A (4.9) on the drawn labels
            g_a = F.one_hot(y_a, C).to(terms.log_s.dtype) * torch.softmax(log_wa, 1).unsqueeze(-1)
        G = coef_a.view(B, 1, 1) * g_a + w_b.unsqueeze(-1) * onehot.unsqueeze(1)
        c = G.sum(-1)
    else:
        c = coef_a.view(B, 1) * torch.softmax(log_wa, 1) + w_b
        G = w_b.unsqueeze(-1) * onehot.unsqueeze(1)
    return objective, log_a, torch.where(labelled, log_b, torch.full_like(log_b, math.nan)), G, c


@torch.no_grad()
def semisup_gradients(
    model: SemiBiHM,
    x: Tensor,
    y: Tensor,
    labelled: Tensor,
    K: int,
    generator: torch.Generator | None,
    gamma: float = 0.0,
    proposal: str = "q",
    baseline: bool = True,
) -> SemiGradients:
    """The closed-form ascent direction of Σ_b objective_b on a batch (one residual per layer).

    x (B, D) 0/1; y (B,) int64 labels (ignored where not ``labelled``); labelled (B,) bool.
    K samples h ~ q(h|x) per point are shared by Ã and B̃. ``baseline`` subtracts the per-point
    mean coefficient in the q(h|x)-updates (their expectation is zero, so the mean is unchanged).
    Every layer's gradient is (coefficient × residual) × input, as in Algorithm 1: for p(h_{l−1}|h_l)
    Σ_k ½c_k (h_{l−1} − σ(W_l h_l + b)) h_lᵀ; for p(h_L|y) column y gets Σ_k ½G_ky (h_L − σ(c + T_y));
    for q(y|·) the residual is G_k − (Σ_y G_ky) softmax(z_k).
    """
    B, D = x.shape
    L, C = model.n_layers, model.n_classes
    hs, q_logits, log_q = model.sample_q(x, K, generator)  # hs[l]: (B, K, n_l); q_logits[0]: (B, 1, n_1)
    # Σ_l log p(h_{l−1} | h_l), keeping the logits for the residuals
    p_logits: list[Tensor] = [None] * (L + 1)  # p_logits[l]: logits of h_{l−1} given h_l, (B, K, n_{l−1})
    below = torch.zeros_like(log_q)
    for l in range(L, 1, -1):
        p_logits[l] = model.p_logits(l, hs[l])
        below += bernoulli_log_prob(hs[l - 1], p_logits[l])
    a1 = p_logits[1] = model.p_logits(1, hs[1])  # (B, K, D): the expensive layer
    below += torch.bmm(a1, x.unsqueeze(2)).squeeze(2) - F.softplus(a1).sum(2)
    terms = label_terms(model, hs, log_q, below)
    log_wa, y_a = label_proposal(model, terms, proposal, generator, y, labelled)
    objective, log_a, log_b, G, c = objective_coefficients(model, terms, log_wa, y_a, y, labelled, gamma, proposal)
    half_c = 0.5 * c  # coefficient of ∇[log p(x,h) + log q(h|x)] per sample, (B, K)
    v = half_c - half_c.mean(1, keepdim=True) if baseline else half_c  # for the q(h|x) layers
    flat = [x] + [h.reshape(B * K, -1) for h in hs[1:]]  # latent layers as (B·K, n_l)
    g: dict[str, Tensor] = {}

    # p(h_{l−1} | h_l), l = 1 … L: residual × ½c, one matrix product per layer
    for l in range(1, L + 1):
        if l == 1:  # ½c (x − σ(a)) computed in place in the logits' buffer
            r = a1.sigmoid_().sub_(x.unsqueeze(1)).mul_(-half_c.unsqueeze(-1)).view(B * K, D)
        else:
            r = p_logits[l].sigmoid_().neg_().add_(hs[l - 1]).mul_(half_c.unsqueeze(-1)).view(B * K, -1)
        g[f"p_weights.{l - 1}"] = r.t() @ flat[l]
        g[f"p_biases.{l - 1}"] = r.sum(0)

    h_top = flat[L]  # (B·K, n_L)
    if model.top:
        # p(y) p(h_L | y): coefficient ½G per class; the bias c is shared by all classes
        Gh = 0.5 * G.reshape(B * K, C)
        col = Gh.sum(0)  # (C,)
        a_top = model.top_logits()  # (C, n_L)
        g_t = h_top.t() @ Gh - torch.sigmoid(a_top).t() * col  # (n_L, C)
        g["y_p_weights"] = g_t
        g["p_prior"] = g_t.sum(1)
        g["y_prior"] = col - col.sum() * torch.softmax(model.y_prior, 0)
        Gq = Gh
    else:
        g["p_prior"] = half_c.reshape(-1) @ h_top - half_c.sum() * torch.sigmoid(model.p_prior)
        Gq = G.reshape(B * K, C)
    # q(y | ·): residual G − (Σ_y G) softmax(z)
    r_y = Gq - Gq.sum(-1, keepdim=True) * torch.exp(terms.log_qy.reshape(B * K, C))  # (B·K, C)
    g["y_q_biases"] = r_y.sum(0)
    if model.top:
        g["y_q_weights"] = r_y.t() @ h_top
    else:
        g["y_q_weights"] = r_y.t() @ flat[1]
        if model.reads_x:
            g["y_q_weights_x"] = r_y.view(B, K, C).sum(1).t() @ x  # V_x x once per point: sum over k first

    # q(h_1 | x): sum the K weighted residuals first, then one (n_1, B) × (B, D) product
    s1 = torch.sigmoid(q_logits[0])  # (B, 1, n_1)
    rq1 = ((hs[1] - s1) * v.unsqueeze(-1)).sum(1)  # (B, n_1)
    g["q_weights.0"] = rq1.t() @ x
    g["q_biases.0"] = rq1.sum(0)
    for l in range(2, L + 1):
        r = ((hs[l] - torch.sigmoid(q_logits[l - 1])) * v.unsqueeze(-1)).reshape(B * K, -1)
        g[f"q_weights.{l - 1}"] = r.t() @ flat[l - 1]
        g[f"q_biases.{l - 1}"] = r.sum(0)
    return SemiGradients(objective, log_a, log_b, g, hs, y_a)


@dataclass
class SemiStepResult:
    """Outcome of one semi-supervised update (before the step)."""

    objective: Tensor  # (B,) per-point objective
    log_a: Tensor  # (B,) log Ã
    log_b: Tensor  # (B,) log B̃ at the label (NaN where unlabelled)
    finite: bool


def label_l2_penalties(labels: LabelConfig) -> dict[str, float]:
    """λ of the L2 penalty per label weight: ``l2`` on V (V_h), ``l2_x`` (else ``l2``) on V_x."""
    return {"y_q_weights": labels.l2, "y_q_weights_x": labels.l2 if labels.l2_x is None else labels.l2_x}


class SemiTrainer(Trainer):
    """Adam on :func:`semisup_gradients`, with the L1 penalty and the divergence check of
    :class:`~bihm_app.engine.training.Trainer` (state/resume are inherited), and the optional
    L2 penalty of the label layer q(y | ·) (``LabelConfig.l2``)."""

    def __init__(self, model: SemiBiHM, cfg: TrainConfig, generator: torch.Generator) -> None:
        if cfg.method != "bihm":
            raise ValueError("semi-supervised training uses the BiHM objective (method bihm)")
        super().__init__(model, cfg, generator)

    def step(self, x: Tensor, y: Tensor | None = None, labelled: Tensor | None = None) -> SemiStepResult:
        """One update on the batch x (B, D) with labels y (B,) where ``labelled`` (B,) bool:
        maximise mean_b objective_b − λ' Σ|W| − (n_lab/B) Σ (λ₂/2)‖V‖² (λ' = λ/B, or λ with
        l1_per="point"; λ₂ = ``LabelConfig.l2`` on the q(y|·) weights V, ``l2_x`` on V_x if set,
        n_lab labelled points of the B, so λ₂ is the weight decay of the label layer per labelled
        point, whatever the mix)."""
        cfg, model = self.cfg, self.model
        B = x.shape[0]
        if y is None:
            y = torch.zeros(B, dtype=torch.long, device=x.device)
            labelled = torch.zeros(B, dtype=torch.bool, device=x.device)
        elif labelled is None:
            labelled = torch.ones(B, dtype=torch.bool, device=x.device)
        lc = model.labels
        res = semisup_gradients(model, x, y, labelled, cfg.K, self.generator, lc.gamma, lc.proposal, cfg.baseline)
        g = res.grads
        world = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            flat = torch.cat([g[name].reshape(-1) for name in self.params])
            torch.distributed.all_reduce(flat)
            off = 0
            for name, p in self.params.items():
                g[name] = flat[off : off + p.numel()].view_as(p)
                off += p.numel()
        scale = -1.0 / (B * world)
        l1 = cfg.l1 / (B * world) if cfg.l1_per == "batch" else cfg.l1
        frac = labelled.sum().to(x.dtype) / B  # a tensor: no device sync
        decay = {n: lam for n, lam in label_l2_penalties(lc).items() if lam > 0 and n in self.params}
        for name, p in self.params.items():
            grad = g[name].mul_(scale)
            if l1 > 0 and "weights" in name:
                grad.add_(torch.sign(p.detach()), alpha=l1)
            if name in decay:
                grad.add_(p.detach() * (frac * decay[name]))
            p.grad = grad
        check = res.objective.sum() + torch.stack([p.grad.sum() for p in self.params.values()]).sum()
        finite = bool(torch.isfinite(check))
        if finite:
            self.optimizer.step()
        for p in self.params.values():
            p.grad = None
        self.step_count += 1
        return SemiStepResult(res.objective, res.log_a, res.log_b, finite)
