"""Print the worst central-finite-difference error of each gradient block (E16-E19 against
E15), on fig1's data at its init, on a tiny problem every entry, and with L = 3 tokens.

    python scripts/gradcheck.py
"""

import numpy as np

import signsim
from signsim.gradcheck import check_gradients
from signsim.model import Params, init_params


def report(title, errors):
    print(title)
    for e in errors:
        print(f"   {e.block:4s} {str(e.shape):14s} worst |fd - closed form| {e.worst_abs:.2e}  "
              f"relative {e.worst_rel:.2e}  ({e.where})")


def main():
    c = signsim.preset("fig1", n_test=1)
    train, _ = signsim.make_data(c)
    # fig1's init scale makes the loss nearly flat; weights of scale 0.05 give nontrivial attention
    params = init_params(0, c.d, c.m_k, c.m_v, 0.05)
    report("fig1 data (d = 10^4), weights of scale 0.05, 8 random directions per block, h = 1e-5",
           check_gradients(params, train.X, train.y, directions=8))
    rng = np.random.default_rng(0)
    for L in (2, 3):
        X = rng.standard_normal((3, 5, L))
        y = np.array([1.0, -1.0, 1.0])
        p = Params(rng.standard_normal((2, 5)), rng.standard_normal((2, 5)),
                   rng.standard_normal((2, 2, 5)))
        report(f"tiny problem, n=3, d=5, L={L}, every entry, h = 1e-5",
               check_gradients(p, X, y, directions=0, coordinatewise=True))
    overlap = signsim.Config(n=6, d=12, s=5, sigma_p=1.0, m_k=3, m_v=2, n_test=1)
    tr, _ = signsim.make_data(overlap)
    report("synthetic data with overlapping supports (d=12, n s = 30), every entry",
           check_gradients(init_params(3, 12, 3, 2, 0.7), tr.X, tr.y, directions=0,
                           coordinatewise=True))


if __name__ == "__main__":
    main()
