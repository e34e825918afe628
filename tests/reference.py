"""Independent float64 NumPy reference implementations of optimizer update rules.

Each optimizer is a small class that holds the state for ONE array (real or complex):

    opt = Adam(params, lr=1e-3)
    params = opt.step(params, grad)  # returns a new array, never mutates its inputs

Conventions shared by every class:

* Arithmetic is done in float64 (complex128 for complex arrays).
* The step counter ``t`` is 1 on the first step.
* A learning rate may be a float or a callable ``schedule(count)`` with ``count = t - 1``,
  the number of steps already taken (so step 1 uses ``schedule(0)``).
* For complex gradients the second moment uses ``|g|^2 = (g * conj(g)).real``; every other
  formula is applied to the complex values as written.

This module must not import jax, optax, torch or adamjax: it is the independent side of the test.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LearningRate = float | Callable[[int], float]


def _as_array(x: Any) -> np.ndarray:
    """Return ``x`` as float64, or complex128 if it is complex."""
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def _abs_sq(g: np.ndarray) -> np.ndarray:
    """|g|^2 as a real array: (g * conj(g)).real."""
    return np.real(g * np.conj(g))


class _Optimizer:
    """Base class: keeps the step counter and resolves the learning rate.

    Subclasses implement ``_update(p, g)`` returning the delta d, and ``step`` returns p - d.
    """

    def __init__(self, params: np.ndarray, lr: LearningRate):
        params = _as_array(params)
        self.shape = params.shape
        self.dtype = params.dtype
        self.lr = lr
        self.t = 0

    def _zeros(self, real: bool = False) -> np.ndarray:
        return np.zeros(self.shape, np.float64 if real else self.dtype)

    def _lr(self) -> float:
        """The learning rate for the current step: schedule(t - 1) or the constant."""
        return float(self.lr(self.t - 1)) if callable(self.lr) else float(self.lr)

    def _update(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        p, g = _as_array(params), _as_array(grad)
        self.t += 1
        return np.asarray(p - self._update(p, g))


class Adam(_Optimizer):
    """Adam (Kingma & Ba, arXiv:1412.6980, Algorithm 1) with optax's ``eps_root``.

    m_t = b1 m + (1 - b1) g;   v_t = b2 v + (1 - b2) |g|^2
    mh = m_t / (1 - b1^t);     vh = v_t / (1 - b2^t)
    p <- p - lr * mh / (sqrt(vh + eps_root) + eps)
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
        super().__init__(params, lr)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.m = self._zeros()
        self.v = self._zeros(real=True)

    def _moments(self, g: np.ndarray) -> None:
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * _abs_sq(g)

    def _corrected(self) -> tuple[np.ndarray, np.ndarray]:
        """Bias-corrected moments (mh, vh)."""
        return self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)

    def _direction(self, g: np.ndarray) -> np.ndarray:
        mh, vh = self._corrected()
        return mh / (np.sqrt(vh + self.eps_root) + self.eps)

    def _update(self, p, g):
        self._moments(g)
        return self._lr() * self._direction(g)


class AdamUncorrected(Adam):
    """Adam without bias correction: p <- p - lr * m_t / (sqrt(v_t + eps_root) + eps)."""

    def _corrected(self):
        return self.m, self.v


class AdamW(Adam):
    """AdamW, decoupled weight decay (Loshchilov & Hutter, arXiv:1711.05101), optax convention.

    p <- p - lr * (mh / (sqrt(vh + eps_root) + eps) + weight_decay * p)
    where p on the right is the value before the step.
    """

    def __init__(
        self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4
    ):
        super().__init__(params, lr, b1, b2, eps, eps_root)
        self.weight_decay = weight_decay

    def _update(self, p, g):
        self._moments(g)
        return self._lr() * (self._direction(g) + self.weight_decay * p)


class AdamL2(Adam):
    """Adam with coupled L2 regularisation (torch.optim.Adam(weight_decay=...)).

    g <- g + weight_decay * p, then the Adam step with this g.
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.0):
        super().__init__(params, lr, b1, b2, eps, eps_root)
        self.weight_decay = weight_decay

    def _update(self, p, g):
        return super()._update(p, g + self.weight_decay * p)


class AMSGrad(Adam):
    """AMSGrad (Reddi et al., arXiv:1904.09237), optax convention (max over corrected vh).

    vmax <- max(vmax, vh)  (vmax starts at 0)
    p <- p - lr * mh / (sqrt(vmax + eps_root) + eps)
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
        super().__init__(params, lr, b1, b2, eps, eps_root)
        self.vmax = self._zeros(real=True)

    def _direction(self, g):
        mh, vh = self._corrected()
        self.vmax = np.maximum(self.vmax, vh)
        return mh / (np.sqrt(self.vmax + self.eps_root) + self.eps)


class AMSGradTorch(Adam):
    """AMSGrad as torch.optim.Adam(amsgrad=True): the max is over the raw v.

    vmax <- max(vmax, v_t);  vh = vmax / (1 - b2^t)
    p <- p - lr * mh / (sqrt(vh) + eps)
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(params, lr, b1, b2, eps)
        self.vmax = self._zeros(real=True)

    def _direction(self, g):
        self.vmax = np.maximum(self.vmax, self.v)
        mh = self.m / (1 - self.b1**self.t)
        vh = self.vmax / (1 - self.b2**self.t)
        return mh / (np.sqrt(vh) + self.eps)


class NAdam(Adam):
    """Nesterov Adam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), optax convention.

    mh = b1 m_t / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t);   vh = v_t / (1 - b2^t)
    p <- p - lr * mh / (sqrt(vh + eps_root) + eps)
    """

    def _direction(self, g):
        b1, t = self.b1, self.t
        mh = b1 * self.m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        vh = self.v / (1 - self.b2**t)
        return mh / (np.sqrt(vh + self.eps_root) + self.eps)


class TorchNAdam(Adam):
    """torch.optim.NAdam (Dozat 2016 with torch's momentum schedule).

    mu_t = b1 (1 - 0.5 * 0.96^(t * psi));  mu_next = b1 (1 - 0.5 * 0.96^((t+1) * psi))
    prod <- prod * mu_t  (starts at 1);     m_t, v_t as in Adam
    denom = sqrt(v_t / (1 - b2^t)) + eps
    p <- p - lr (1 - mu_t) / (1 - prod) * g / denom
           - lr mu_next / (1 - prod * mu_next) * m_t / denom
    with psi = momentum_decay.
    """

    def __init__(self, params, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3):
        super().__init__(params, lr, b1, b2, eps)
        self.momentum_decay = momentum_decay
        self.mu_product = 1.0

    def _update(self, p, g):
        b1, t, psi, lr = self.b1, self.t, self.momentum_decay, self._lr()
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        self.mu_product *= mu
        self._moments(g)
        denom = np.sqrt(self.v / (1 - self.b2**t)) + self.eps
        step_g = lr * (1 - mu) / (1 - self.mu_product) * g / denom
        step_m = lr * mu_next / (1 - self.mu_product * mu_next) * self.m / denom
        return step_g + step_m


class KerasAdam(Adam):
    """Keras/TF Adam: bias correction folded into the step size, eps outside the correction.

    lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
    if amsgrad: vmax <- max(vmax, v_t) and vmax is used in place of v_t
    p <- p - lr_t * m_t / (sqrt(v_t) + eps)
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
        super().__init__(params, lr, b1, b2, eps)
        self.amsgrad = amsgrad
        self.vmax = self._zeros(real=True)

    def _update(self, p, g):
        self._moments(g)
        t = self.t
        lr_t = self._lr() * np.sqrt(1 - self.b2**t) / (1 - self.b1**t)
        v = self.v
        if self.amsgrad:
            self.vmax = np.maximum(self.vmax, v)
            v = self.vmax
        return lr_t * self.m / (np.sqrt(v) + self.eps)


class Adamax(_Optimizer):
    """Adamax (Kingma & Ba, arXiv:1412.6980, Algorithm 2), as in torch and optax.

    m_t = b1 m + (1 - b1) g;   u_t = max(b2 u, |g| + eps)  (u starts at 0)
    p <- p - lr / (1 - b1^t) * m_t / u_t
    """

    def __init__(self, params, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.b1, self.b2, self.eps = b1, b2, eps
        self.m = self._zeros()
        self.u = self._zeros(real=True)

    def _update(self, p, g):
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.u = np.maximum(self.b2 * self.u, np.abs(g) + self.eps)
        return self._lr() / (1 - self.b1**self.t) * self.m / self.u


class SGD(_Optimizer):
    """SGD with optional heavy-ball or Nesterov momentum (torch.optim.SGD, dampening 0).

    buf <- g + momentum * buf  (buf starts at 0)
    d = g + momentum * buf if nesterov else buf
    p <- p - lr * d
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum, self.nesterov = momentum, nesterov
        self.buf = self._zeros()

    def _update(self, p, g):
        self.buf = g + self.momentum * self.buf
        d = g + self.momentum * self.buf if self.nesterov else self.buf
        return self._lr() * d


class RMSProp(_Optimizer):
    """RMSProp (Tieleman & Hinton 2012), uncentred, no momentum.

    v <- decay v + (1 - decay) |g|^2
    p <- p - lr * g / (sqrt(v + eps_root) + eps)
    """

    def __init__(self, params, lr=1e-2, decay=0.9, eps=1e-8, eps_root=0.0):
        super().__init__(params, lr)
        self.decay, self.eps, self.eps_root = decay, eps, eps_root
        self.v = self._zeros(real=True)

    def _update(self, p, g):
        self.v = self.decay * self.v + (1 - self.decay) * _abs_sq(g)
        return self._lr() * g / (np.sqrt(self.v + self.eps_root) + self.eps)


class Adagrad(_Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011).

    s <- s + |g|^2  (s starts at initial_accumulator_value)
    p <- p - lr * g / (sqrt(s + eps_root) + eps)
    """

    def __init__(self, params, lr=1e-2, initial_accumulator_value=0.0, eps=1e-10, eps_root=0.0):
        super().__init__(params, lr)
        self.eps, self.eps_root = eps, eps_root
        self.s = np.full(self.shape, initial_accumulator_value, np.float64)

    def _update(self, p, g):
        self.s = self.s + _abs_sq(g)
        return self._lr() * g / (np.sqrt(self.s + self.eps_root) + self.eps)


class NormalizedGradient(_Optimizer):
    """Normalized gradient descent, coordinate by coordinate: p <- p - lr * g / (|g| + eps).

    Each coordinate moves by lr in the downhill direction (sign descent): Adam with no averaging,
    m = g and v = |g|^2, and no bias correction.
    """

    def __init__(self, params, lr, eps=1e-8):
        super().__init__(params, lr)
        self.eps = eps

    def _update(self, p, g):
        return self._lr() * g / (np.sqrt(_abs_sq(g)) + self.eps)


def run(
    opt_class: type[_Optimizer], params: Any, grads_seq: Sequence[Any], **hp: Any
) -> list[np.ndarray]:
    """Apply ``opt_class(params, **hp)`` to each gradient in turn; return params after each step."""
    p = _as_array(params)
    opt = opt_class(p, **hp)
    history = []
    for g in grads_seq:
        p = opt.step(p, g)
        history.append(p)
    return history


def run_tree(
    opt_class: type[_Optimizer], params_dict: dict, grads_seq_of_dicts: Sequence[dict], **hp: Any
) -> list[dict]:
    """``run`` applied independently to each leaf of a (possibly nested) dict of arrays.

    Returns a list with one dict per step, of the same structure as ``params_dict``.
    """
    n_steps = len(grads_seq_of_dicts)
    out: list[dict] = [{} for _ in range(n_steps)]
    for key, leaf in params_dict.items():
        grads = [g[key] for g in grads_seq_of_dicts]
        if isinstance(leaf, dict):
            history = run_tree(opt_class, leaf, grads, **hp)
        else:
            history = run(opt_class, leaf, grads, **hp)
        for step_dict, value in zip(out, history, strict=True):
            step_dict[key] = value
    return out
