"""The fast kernel: the same dynamics as the dense reference, on the active coordinates only.

Why it is exact (spec section 5): every gradient row is a combination of the training
patches, so only the coordinates of U = {coordinate 1} + the training supports ever move. This
kernel stores the weights at those coordinates in a *sample-major* layout,

    theta[r, i, row, a] = w_row[B_i[a]]      (R, n, rows, s)      rows = W_Q, W_K, Delta
    sig[r, row]         = w_row[coordinate 1] (R, rows)

so that <w_row, xi_i> is a contiguous multiply-and-sum and the gradient at B_i[a] is a
broadcast, with no gather or scatter and nothing of size d. A coordinate in several supports
has one copy per sample; its gradient contributions are summed (in sample order) and written
to every copy, so the copies stay bit-equal and overlapping supports stay exact.

The value layer: E19 gives every row w_{V,j,r} the gradient j g (the same g for all r), and
SignGD, Adam and GD all map g -> -g to an opposite update, so
w_{V,j,r}(t) = w_{V,j,r}(0) + j Delta(t) with one trained row Delta (row 2 m_k). The init
products <w_{V,j,r}(0), xi_i> are computed once.

The tokens are handled by role (1 = signal y_i mu, 2 = noise xi_i): the network has no
positional information (E4), so the position of the signal token changes nothing.

Test predictions: <w_row(t), xi> = (init part off U, computed once) + (current part on U,
gathered from theta for the few test coordinates that are in U).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import expit

from .config import Config
from .data import make_data
from .optim import apply_updates, from_config
from .result import Result
from .rng import init_key, init_normals
from .sparse import SparseParams
from .tracker import Tracker, progress_every

__all__ = ["run_fast", "FastParams"]


class FastParams(NamedTuple):
    """Trainable state of the fast kernel (see module docstring)."""

    noise: np.ndarray  # (R, n, rows, s): weights at each sample's support
    sig: np.ndarray  # (R, rows): weights at coordinate 1


class _Overlap(NamedTuple):
    """Copies of coordinates shared by several supports, sorted by (replica, coordinate, i)."""

    r: np.ndarray  # (c,)
    i: np.ndarray  # (c,)
    a: np.ndarray  # (c,)
    starts: np.ndarray  # (groups,) first copy of each shared coordinate
    group: np.ndarray  # (c,) group of each copy


class _Setup(NamedTuple):
    """Constants of a batch of R replicas (fixed for the whole run)."""

    y: np.ndarray  # (R, n)
    vals: np.ndarray  # (R, n, 1, s) noise values xi_i[B_i[a]]
    P0V: np.ndarray  # (R, 2, m_v, n) <w_{V,j,r}(0), xi_i>
    S0V: np.ndarray  # (R, 2, m_v) <w_{V,j,r}(0), mu>
    v0n: np.ndarray  # (R, n) <v(0), xi_i>
    v0s: np.ndarray  # (R,) <v(0), mu>
    overlap: _Overlap | None
    yt: np.ndarray  # (R, n_test)
    off_t: np.ndarray  # (R, n_test, 2 m_k) <w_row(0), xi> over test coordinates outside U
    v0t: np.ndarray  # (R, n_test) <v(0), xi>
    te_matrix: object  # CSR (R n_test, R n s): test noise value of each test coordinate in U,
    #                    at the theta slot (replica, sample, slot) holding that coordinate
    coords: list  # per replica: U sorted (coordinate 0 first)
    rep: list  # per replica: (i, a) of one copy of each coordinate of U but coordinate 0
    W0V_U: list  # per replica: (2, m_v, |U|) initial value weights on U


def _replica(config: Config, train, test, key):
    """Everything one replica needs, in O((n + n_test) s m) time and memory."""
    m_k, m_v, mu = config.m_k, config.m_v, config.mu_norm
    flat = train.noise_index.ravel()  # (n s,) coordinate of each slot
    U = np.unique(np.concatenate([[0], flat]))
    t_idx = test.noise_index
    needed = np.union1d(U, t_idx.ravel())
    W_Q, W_K, W_V = init_normals(key, needed, m_k, m_v, config.sigma_0)  # (E13)
    col = lambda coords: np.searchsorted(needed, coords)  # noqa: E731 (column in `needed`)
    c0 = col(0)
    QK = np.concatenate([W_Q, W_K])  # (2 m_k, c)
    n, s = train.noise_index.shape
    tn = col(train.noise_index)  # (n, s)
    theta = np.zeros((n, 2 * m_k + 1, s))
    theta[:, :2 * m_k] = QK[:, tn].transpose(1, 0, 2)  # Delta row starts at 0
    sig = np.concatenate([QK[:, c0], [0.0]])
    v0 = W_V[0].mean(axis=0) - W_V[1].mean(axis=0)  # (c,)  (E11)
    P0V = (W_V[:, :, tn] * train.noise_value).sum(-1)  # (2, m_v, n)
    # first slot holding each coordinate of U (coordinate 0 excluded)
    order = np.argsort(flat, kind="stable")
    first = order[np.r_[True, flat[order][1:] != flat[order][:-1]]]
    rep = np.stack(np.divmod(first, s), axis=1)  # (|U| - 1, 2): (i, a)
    # test coordinates: inside U -> read theta at a copy; outside -> frozen init
    tt = col(t_idx)  # (n_test, s)
    inU = np.isin(t_idx, U)
    off_t = (QK[:, tt] * np.where(inU, 0.0, test.noise_value)).sum(-1).T  # (n_test, 2 m_k)
    v0t = (v0[tt] * test.noise_value).sum(-1)
    j_e, a_e = np.nonzero(inU)
    slot = first[np.searchsorted(flat[first], t_idx[j_e, a_e])]
    te = (j_e, *np.divmod(slot, s), test.noise_value[j_e, a_e])
    shared = _shared_copies(flat, s)
    return dict(theta=theta, sig=sig, y=train.y, vals=train.noise_value, P0V=P0V,
                S0V=W_V[:, :, c0] * mu, v0n=(v0[tn] * train.noise_value).sum(-1),
                v0s=v0[c0] * mu, yt=test.y, off_t=off_t, v0t=v0t, te=te, shared=shared,
                coords=U, rep=rep, W0V_U=W_V[:, :, col(U)])


def _shared_copies(flat: np.ndarray, s: int):
    """(i, a, coordinate) of every slot whose coordinate is in more than one support."""
    values, counts = np.unique(flat, return_counts=True)
    mask = np.isin(flat, values[counts > 1])
    pos = np.flatnonzero(mask)
    i, a = np.divmod(pos, s)
    return i, a, flat[pos]


def _stack_setup(config: Config, parts: list) -> tuple[_Setup, FastParams]:
    st = lambda k: np.stack([p[k] for p in parts])  # noqa: E731
    # active test entries of all replicas, as one block-diagonal sparse matrix
    te_r = np.concatenate([np.full(len(p["te"][0]), r) for r, p in enumerate(parts)])
    te_j, te_i, te_a, te_val = (np.concatenate([p["te"][k] for p in parts]) for k in range(4))
    n, s, nt = config.n, config.s, config.n_test
    te_matrix = csr_matrix((te_val, (te_r * nt + te_j, (te_r * n + te_i) * s + te_a)),
                           shape=(len(parts) * nt, len(parts) * n * s))
    te_matrix.sort_indices()  # rows summed in slot order, the same in any batch
    # shared coordinates: sort copies by (replica, coordinate, sample) and group them
    sh_r = np.concatenate([np.full(len(p["shared"][0]), r) for r, p in enumerate(parts)])
    sh_i, sh_a, sh_c = (np.concatenate([p["shared"][k] for p in parts]) for k in range(3))
    overlap = None
    if sh_r.size:
        o = np.lexsort((sh_i, sh_c, sh_r))
        sh_r, sh_i, sh_a, sh_c = sh_r[o], sh_i[o], sh_a[o], sh_c[o]
        new = np.r_[True, (sh_c[1:] != sh_c[:-1]) | (sh_r[1:] != sh_r[:-1])]
        overlap = _Overlap(sh_r, sh_i, sh_a, np.flatnonzero(new), np.cumsum(new) - 1)
    setup = _Setup(
        y=st("y"), vals=st("vals")[:, :, None, :], P0V=st("P0V"), S0V=st("S0V"), v0n=st("v0n"),
        v0s=st("v0s"), overlap=overlap, yt=st("yt"), off_t=st("off_t"), v0t=st("v0t"),
        te_matrix=te_matrix,
        coords=[p["coords"] for p in parts], rep=[p["rep"] for p in parts],
        W0V_U=[p["W0V_U"] for p in parts])
    return setup, FastParams(st("theta"), st("sig"))


class _Attention(NamedTuple):
    S11: np.ndarray  # (R, N) signal query on signal key
    S12: np.ndarray
    S21: np.ndarray  # noise query on signal key
    S22: np.ndarray
    V1: np.ndarray  # (R, N) value of the signal token, y_i <v, mu>
    V2: np.ndarray  # (R, N) value of the noise token, <v, xi_i>
    f: np.ndarray  # (R, N)


def _attend(qs, ks, Qn, Kn, vs, vn, y) -> _Attention:
    """E8-E12 for two tokens by role; qs, ks (R, m_k); Qn, Kn (R, N, m_k); vs (R,); vn, y (R, N)."""
    # einsum fuses each product with its sum over s (no (R, N, m_k) temporary)
    z11 = np.einsum("rs,rs->r", qs, ks)[:, None]  # (R, 1): y_i^2 = 1         (E9)
    z12 = y * np.einsum("rns,rs->rn", Kn, qs)  # (R, N)
    z21 = y * np.einsum("rns,rs->rn", Qn, ks)
    z22 = np.einsum("rns,rns->rn", Qn, Kn)
    S11, S12 = expit(z11 - z12), expit(z12 - z11)  # two-way softmax    (E10)
    S21, S22 = expit(z21 - z22), expit(z22 - z21)
    V1 = y * vs[:, None]  # (E12)
    f = (S11 + S21) * V1 + (S12 + S22) * vn
    return _Attention(S11, S12, S21, S22, V1, vn, f)


class _Forward(NamedTuple):
    """The forward pass at the current weights, by role (what gradients and records need)."""

    Qn: np.ndarray  # (R, n, m_k) <w_{Q,s}, xi_i>                          (E8)
    Kn: np.ndarray  # (R, n, m_k) <w_{K,s}, xi_i>
    Dn: np.ndarray  # (R, n)      <Delta, xi_i>
    qs: np.ndarray  # (R, m_k)    <w_{Q,s}, mu>
    ks: np.ndarray  # (R, m_k)    <w_{K,s}, mu>
    Ds: np.ndarray  # (R,)        <Delta, mu>
    vn: np.ndarray  # (R, n)      <v, xi_i>                                 (E11)
    vs: np.ndarray  # (R,)        <v, mu>
    at: _Attention
    margin: np.ndarray  # (R, n)  y_i f_i
    lp: np.ndarray  # (R, n)      l'_i                                      (E14)


def _forward(setup: _Setup, params: FastParams, m_k: int, mu: float) -> _Forward:
    """E8-E15: inner products with every noise patch and with mu, attention, output."""
    P = np.einsum("rnks,rns->rnk", params.noise, setup.vals[:, :, 0])  # (R, n, rows)
    Qn, Kn, Dn = P[..., :m_k], P[..., m_k:2 * m_k], P[..., 2 * m_k]
    sig = params.sig * mu
    qs, ks, Ds = sig[:, :m_k], sig[:, m_k:2 * m_k], sig[:, 2 * m_k]
    vn = setup.v0n + 2.0 * Dn  # v = v(0) + 2 Delta
    vs = setup.v0s + 2.0 * Ds
    at = _attend(qs, ks, Qn, Kn, vs, vn, setup.y)
    margin = setup.y * at.f
    return _Forward(Qn, Kn, Dn, qs, ks, Ds, vn, vs, at, margin, -expit(-margin))


def _gradients(setup: _Setup, fw: _Forward, C: np.ndarray, grad_sig: np.ndarray,
               config: Config) -> FastParams:
    """E16-E19 by role: G_11 = -G_12 = g1, G_21 = -G_22 = g2 (docs/model.md, section 4).

    ``C`` (R, n, rows) and ``grad_sig`` (R, rows) are work buffers, overwritten."""
    m_k, mu, at = config.m_k, config.mu_norm, fw.at
    y = setup.y
    y3 = y[:, :, None]  # (R, n, 1)
    c = fw.lp * y / config.n
    Dv = at.V1 - at.V2
    g1 = c * at.S11 * at.S12 * Dv  # (R, n)                                  (E16)
    g2 = c * at.S21 * at.S22 * Dv
    dk = y3 * fw.ks[:, None] - fw.Kn  # k_{s,1} - k_{s,2}  (R, n, m_k)
    e = g1[..., None] * (y3 * fw.qs[:, None]) + g2[..., None] * fw.Qn  # (R, n, m_k)
    cv = c / config.m_v
    C[..., :m_k] = g2[..., None] * dk  # W_Q, noise token                 (E17)
    C[..., m_k:2 * m_k] = -e  # W_K, noise token                           (E18)
    C[..., 2 * m_k] = cv * (at.S12 + at.S22)  # w_{V,+1,r}, noise token     (E19)
    grad_sig[:, :m_k] = (g1[..., None] * dk * y3).sum(1) * mu  # coordinate 1
    grad_sig[:, m_k:2 * m_k] = (e * y3).sum(1) * mu
    grad_sig[:, 2 * m_k] = (cv * (at.S11 + at.S21) * y).sum(-1) * mu
    grad_noise = C[..., None] * setup.vals  # (R, n, rows, s)
    ov = setup.overlap
    if ov is not None:  # a coordinate in several supports: sum the contributions
        total = np.add.reduceat(grad_noise[ov.r, ov.i, :, ov.a], ov.starts, axis=0)
        grad_noise[ov.r, ov.i, :, ov.a] = total[ov.group]
    return FastParams(grad_noise, grad_sig)


def run_fast(config: Config, seeds=None, vary=None, progress=None) -> Result:
    """``run`` with the fast kernel; ``seeds`` and ``vary`` batch replicas (leading axis R)."""
    single = seeds is None and vary is None
    configs = [config] if single else _replica_configs(config, seeds, vary)
    seeds = [c.seed for c in configs]
    keys = np.array([init_key(s) for s in seeds], dtype=np.uint64)
    data = [make_data(c) for c in configs]  # each replica its own seed and sigma_p
    setup, params = _stack_setup(config, [_replica(c, tr, te, k)
                                          for c, (tr, te), k in zip(configs, data, keys)])
    init = params
    opt = from_config(config)
    lrs = None
    if vary is not None and "lr" in vary:  # update at lr = 1, scaled per replica (exact)
        opt = from_config(config.replace(lr=1.0))
        lrs = np.array([c.lr for c in configs])
        lr_leaves = FastParams(lrs[:, None, None, None], lrs[:, None])
    R, rows = len(seeds), 2 * config.m_k + 1
    state = opt.init(params)
    tracker = Tracker(config, replicas=R)
    record_row = {int(t): k for k, t in enumerate(tracker.steps)}
    test_row = {int(t): k for k, t in enumerate(tracker.test_steps)}
    C = np.empty((R, config.n, rows))  # noise-token gradient coefficient of (sample, row)
    grad_sig = np.empty((R, rows))
    every = progress_every(config.steps)
    for t in range(config.steps + 1):
        if progress is not None and t % every == 0:
            progress(t, config.steps)
        fw = _forward(setup, params, config.m_k, config.mu_norm)  # at W^(t)
        if t in record_row:
            tracker.record(record_row[t], _quantities(setup, fw))
        if t in test_row:
            tracker.record_test(test_row[t], *_test_metrics(setup, params, fw, config.m_k))
        if t == config.steps:
            break
        grads = _gradients(setup, fw, C, grad_sig, config)
        updates, state = opt.update(grads, state)
        if lrs is not None:  # (-1 * x) * lr == (-lr) * x exactly: as if run alone
            updates = FastParams(updates.noise * lr_leaves.noise, updates.sig * lr_leaves.sig)
        params = apply_updates(params, updates)
    history = tracker.history
    if single:
        history = {k: v[0] for k, v in history.items()}
    train = [d[0] for d in data]
    test = [d[1] for d in data]
    return Result(config=config, steps=tracker.steps, test_steps=tracker.test_steps,
                  history=history, params=_sparse_params(config, setup, params, keys, single),
                  init_params=_sparse_params(config, setup, init, keys, single),
                  dataset=train[0] if single else train, test_dataset=test[0] if single else test,
                  seeds=None if single else tuple(seeds),
                  varied={} if not vary else {k: np.array([getattr(c, k) for c in configs])
                                              for k in vary})


_J = np.array([1.0, -1.0])  # value heads j = +1, -1


def _quantities(setup: _Setup, fw: _Forward) -> dict:
    """Spec section 6 at the current step, each with a leading replica axis."""
    y, at = setup.y, fw.at
    y3 = y[:, :, None]
    return {
        "query_signal": fw.qs, "key_signal": fw.ks,
        "query_noise": (y3 * fw.Qn).transpose(0, 2, 1),
        "key_noise": (y3 * fw.Kn).transpose(0, 2, 1),
        "value_signal": setup.S0V + _J[:, None] * fw.Ds[:, None, None],
        "value_noise": y[:, None, None, :] * (setup.P0V + _J[:, None, None] * fw.Dn[:, None, None, :]),
        "mean_value_signal": fw.vs, "mean_value_noise": y * fw.vn,
        "attention": np.stack([np.stack([at.S11, at.S12], -1), np.stack([at.S21, at.S22], -1)], -2),
        "margin": fw.margin, "loss_derivative": fw.lp,
        "train_loss": np.logaddexp(0.0, -fw.margin).mean(-1),
        "train_error": (fw.margin <= 0).mean(-1),
    }


def _test_metrics(setup: _Setup, params: FastParams, fw: _Forward, m_k: int):
    """Test loss and error: frozen part (computed once) plus the active test entries."""
    R, nt = setup.yt.shape
    theta = params.noise.transpose(0, 1, 3, 2).reshape(-1, params.noise.shape[2])  # (R n s, rows)
    active = (setup.te_matrix @ theta).reshape(R, nt, -1)  # (R, n_test, rows)
    QKt = setup.off_t + active[..., :2 * m_k]
    vt = setup.v0t + 2.0 * active[..., 2 * m_k]
    margin = setup.yt * _attend(fw.qs, fw.ks, QKt[..., :m_k], QKt[..., m_k:], fw.vs, vt,
                                setup.yt).f
    return np.logaddexp(0.0, -margin).mean(-1), (margin <= 0).mean(-1)


def _sparse_params(config: Config, setup: _Setup, params: FastParams, keys, single: bool):
    """Weights on U from the sample-major layout (one copy per coordinate)."""
    m_k = config.m_k
    u = max(len(c) for c in setup.coords)
    R = len(setup.coords)
    coords = np.full((R, u), -1, dtype=np.int64)
    WQK = np.zeros((R, 2 * m_k + 1, u))
    WV = np.zeros((R, 2, config.m_v, u))
    for r, (U, rep) in enumerate(zip(setup.coords, setup.rep)):
        k = len(U)
        coords[r, :k] = U
        WQK[r, :, 0] = params.sig[r]
        WQK[r, :, 1:k] = params.noise[r, rep[:, 0], :, rep[:, 1]].T
        WV[r, :, :, :k] = setup.W0V_U[r] + _J[:, None, None] * WQK[r, 2 * m_k, :k]
    out = SparseParams(coords=coords, W_Q_active=WQK[:, :m_k], W_K_active=WQK[:, m_k:2 * m_k],
                       W_V_active=WV, keys=keys, d=config.d, sigma_0=config.sigma_0)
    if single:
        out = SparseParams(coords=coords[0], W_Q_active=out.W_Q_active[0],
                           W_K_active=out.W_K_active[0], W_V_active=WV[0], keys=keys[0],
                           d=config.d, sigma_0=config.sigma_0)
    return out


VARIABLE = ("lr", "sigma_p")  # what replicas of one batch may differ in, besides the seed


def _replica_configs(config: Config, seeds, vary) -> list[Config]:
    """One validated Config per replica of a batch."""
    vary = dict(vary or {})
    unknown = sorted(set(vary) - set(VARIABLE))
    if unknown:
        raise ValueError(f"The 'vary' parameter may set {list(VARIABLE)} per replica. "
                         f"Got {unknown} instead.")
    lengths = {k: len(v) for k, v in vary.items()}
    if seeds is not None:
        seeds = list(seeds)
        lengths["seeds"] = len(seeds)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"The 'seeds' and 'vary' sequences must have one length. Got {lengths}.")
    R = next(iter(lengths.values()), 0)
    if R == 0:
        raise ValueError("The 'seeds' parameter must be a non-empty sequence of ints. Got [].")
    seeds = seeds if seeds is not None else [config.seed] * R
    return [config.replace(seed=seeds[r], **{k: v[r] for k, v in vary.items()})
            for r in range(R)]
