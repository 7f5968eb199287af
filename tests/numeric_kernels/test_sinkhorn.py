"""numeric_kernels.sinkhorn against POT on the same inputs, and its own invariants."""
import numpy as np
import ot
import pytest
import torch

from numeric_kernels import sinkhorn
from numeric_kernels.sinkhorn import cost_matrix, sinkhorn_divergence, solve


# small problems: one torch thread is as fast, and OpenMP regions stall on oversubscribed cores
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(seed=0, n=40, m=30, d=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.3
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    return a / a.sum(), b / b.sum(), x, y


@pytest.mark.parametrize("reg", [1.0, 0.2])
def test_value_matches_pot_sinkhorn2_and_solve(reg):
    a, b, x, y = _problem()
    cost = ot.dist(x, y)
    res = solve(a, b, cost=cost, reg=reg, tol=1e-12, max_iter=20000)
    assert res.converged
    reference = ot.sinkhorn2(a, b, cost, reg, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    np.testing.assert_allclose(res.value, reference, rtol=1e-5)
    regularized = ot.solve(cost, a, b, reg=reg, tol=1e-12, max_iter=100000).value
    np.testing.assert_allclose(res.value_regularized, regularized, rtol=1e-5)
    plan = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    np.testing.assert_allclose(res.plan, plan, atol=1e-9)


def test_emd_matches_pot_emd2():
    a, b, x, y = _problem(1)
    cost = ot.dist(x, y)
    res = solve(a, b, x=x, y=y, method="emd")
    np.testing.assert_allclose(res.value, ot.emd2(a, b, cost), rtol=1e-12)
    np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-12)
    f, g = res.potentials
    assert np.all(f[:, None] + g[None, :] <= cost + 1e-9)  # dual feasibility
    np.testing.assert_allclose(a @ f + b @ g, res.value, rtol=1e-9)  # strong duality


def test_potentials_are_the_marginal_fixed_point():
    a, b, x, y = _problem(2)
    reg = 0.3
    cost = cost_matrix(x, y)
    f, g = solve(a, b, cost=cost, reg=reg, tol=1e-12, max_iter=20000).potentials
    f_next = -reg * np.log(np.sum(b[None, :] * np.exp((g[None, :] - cost) / reg), axis=1))
    g_next = -reg * np.log(np.sum(a[:, None] * np.exp((f[:, None] - cost) / reg), axis=0))
    np.testing.assert_allclose(f_next, f, atol=1e-9)
    np.testing.assert_allclose(g_next, g, atol=1e-12)


def test_batched_equals_looped():
    problems = [_problem(seed) for seed in range(3)]
    a = np.stack([p[0] for p in problems])
    b = np.stack([p[1] for p in problems])
    x = np.stack([p[2] for p in problems])
    y = np.stack([p[3] for p in problems])
    batched = solve(a, b, x=x, y=y, reg=0.3, tol=1e-11, max_iter=5000)
    assert batched.value.shape == (3,) and batched.potentials[0].shape == (3, 40)
    for k in range(3):
        single = solve(a[k], b[k], x=x[k], y=y[k], reg=0.3, tol=1e-11, max_iter=5000)
        np.testing.assert_allclose(batched.value[k], single.value, rtol=1e-9)
        np.testing.assert_allclose(batched.potentials[0][k], single.potentials[0], atol=1e-8)
    emd = solve(a, b, x=x, y=y, method="emd")
    np.testing.assert_allclose(emd.value, [ot.emd2(a[k], b[k], ot.dist(x[k], y[k])) for k in range(3)], rtol=1e-12)


def test_converged_problems_leave_the_batch_with_their_own_answer():
    """Problems needing 10x more iterations than others: the fast ones retire early and keep their result."""
    a, b, x, y = _problem(9)
    scales = np.array([1.0, 8.0, 1.5, 12.0, 0.5])
    costs = ot.dist(x, y)[None] * scales[:, None, None]
    batched = solve(a, b, cost=costs, reg=0.5, tol=1e-10, max_iter=20000)
    singles = [solve(a, b, cost=costs[k], reg=0.5, tol=1e-10, max_iter=20000) for k in range(len(scales))]
    assert batched.n_iter == max(s.n_iter for s in singles) > 3 * min(s.n_iter for s in singles)
    for k, single in enumerate(singles):
        np.testing.assert_allclose(batched.value[k], single.value, rtol=1e-9)
        np.testing.assert_allclose(batched.potentials[1][k], single.potentials[1], atol=1e-8)
        assert batched.marginal_error[k] < 1e-8


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_online_equals_dense(metric):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) + 0.2
    dense = solve(x=x, y=y, metric=metric, reg=0.1, tol=1e-10, max_iter=5000)
    online = solve(x=x, y=y, metric=metric, reg=0.1, tol=1e-10, max_iter=5000, method="online", block_rows=37)
    assert online.n_iter == dense.n_iter
    np.testing.assert_allclose(online.value, dense.value, rtol=1e-10)
    np.testing.assert_allclose(online.potentials[1], dense.potentials[1], atol=1e-10)
    np.testing.assert_allclose(cost_matrix(x, y, metric), ot.dist(x, y, metric=metric), atol=1e-10)


@pytest.mark.parametrize("dtype, reg", [(np.float32, 3e-3), (np.float64, 3e-4)])
def test_scalings_are_absorbed_when_reg_is_small(monkeypatch, dtype, reg):
    """Small reg drives the scalings past their bound: the kernel is rebuilt and the answer stays POT's."""
    builds = []
    build = sinkhorn._kernel
    monkeypatch.setattr(sinkhorn, "_kernel", lambda *args: builds.append(1) or build(*args))
    a, b, x, y = _problem(3, d=5)
    cost = ot.dist(x, y)
    cost /= cost.max()
    res = solve(a, b, cost=cost.astype(dtype), reg=reg, tol=1e-6, max_iter=50000)
    assert res.converged and len(builds) >= 2
    reference = ot.sinkhorn2(a, b, cost, reg, method="sinkhorn_log", stopThr=1e-9, numItermax=200000)
    np.testing.assert_allclose(float(res.value), reference, rtol=1e-4)
    f, g = (p.astype(np.float64) for p in res.potentials)
    c_transform = -reg * np.log(np.sum(a[:, None] * np.exp((f[:, None] - cost) / reg), axis=0))
    np.testing.assert_allclose(g, c_transform, atol=1e-5 if dtype == np.float32 else 1e-9)


def test_a_step_that_underflows_in_the_kernel_is_redone_on_the_potentials(monkeypatch):
    """A kernel row lost to underflow gives an infinite scaling; that step falls back to the log domain."""
    build = sinkhorn._kernel
    broken = []

    def underflowing_once(*args):
        kernel = build(*args)
        if not broken:
            kernel[:, 5] = 0.0
            broken.append(1)
        return kernel

    monkeypatch.setattr(sinkhorn, "_kernel", underflowing_once)
    a, b, x, y = _problem(8)
    cost = ot.dist(x, y)
    res = solve(a, b, cost=cost, reg=0.3, tol=1e-12, max_iter=20000)
    assert res.converged and broken
    reference = ot.sinkhorn2(a, b, cost, 0.3, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    np.testing.assert_allclose(res.value, reference, rtol=1e-9)


def test_kinds_dtypes_and_warm_start():
    a, b, x, y = _problem(4)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    res32 = solve(x=xt, y=yt, reg=0.5)
    assert isinstance(res32.value, torch.Tensor) and res32.value.dtype == torch.float32
    assert res32.potentials[0].dtype == torch.float32 and res32.plan.shape == (40, 30)
    res64 = solve(x=x, y=y, reg=0.5, tol=1e-12)
    assert isinstance(res64.value, np.ndarray) and res64.value.dtype == np.float64
    np.testing.assert_allclose(float(res32.value), res64.value, rtol=1e-5)
    warm = solve(x=x, y=y, reg=0.5, tol=1e-12, init=res64.potentials)
    assert warm.n_iter < res64.n_iter / 2
    np.testing.assert_allclose(warm.value, res64.value, rtol=1e-10)


def test_zero_weights_keep_c_transform_potentials():
    a, b, x, y = _problem(5)
    a[:10] = 0.0
    a /= a.sum()
    res = solve(a, b, x=x, y=y, reg=0.3, tol=1e-12, max_iter=20000)
    cost = ot.dist(x, y)
    np.testing.assert_allclose(res.plan[:10], 0.0)
    f, g = res.potentials
    expected = -0.3 * np.log(np.sum(b * np.exp((g[None, :] - cost[:10]) / 0.3), axis=1))
    np.testing.assert_allclose(f[:10], expected, atol=1e-9)
    reference = ot.sinkhorn2(a, b, cost, 0.3, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    np.testing.assert_allclose(res.value, reference, rtol=1e-5)


def test_sinkhorn_divergence_is_debiased():
    a, b, x, y = _problem(6)
    # the cross term of S(a, a) is solved by alternating updates, which converge slowly on
    # a self-transport problem (POT's too); the self terms use the fast symmetric update
    same = sinkhorn_divergence(a, a, x=x, y=x, reg=0.5, tol=1e-10, max_iter=20000, warn=False)
    assert abs(float(same.value)) < 1e-7
    div = sinkhorn_divergence(a, b, x=x, y=y, reg=0.5, tol=1e-12, max_iter=20000)
    manual = (solve(a, b, x=x, y=y, reg=0.5, tol=1e-12, max_iter=20000).value_regularized
              - 0.5 * solve(a, a, x=x, y=x, reg=0.5, tol=1e-12, max_iter=20000).value_regularized
              - 0.5 * solve(b, b, x=y, y=y, reg=0.5, tol=1e-12, max_iter=20000).value_regularized)
    np.testing.assert_allclose(div.value, manual, rtol=1e-8)
    assert div.value > 0
    assert div.xx.n_iter < 100  # the symmetric update converges fast


def test_invalid_arguments_are_named():
    a, b, x, y = _problem()
    with pytest.raises(ValueError, match="method must be one of"):
        solve(x=x, y=y, method="greenkhorn")
    with pytest.raises(ValueError, match="same total mass"):
        solve(a, 2 * b, x=x, y=y)
    with pytest.raises(ValueError, match="reg must be"):
        solve(x=x, y=y, reg=0)
    with pytest.raises(ValueError, match="online"):
        solve(cost=ot.dist(x, y), method="online")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a, b, x, y = _problem(7)
    cpu = solve(a, b, x=x, y=y, reg=0.3, tol=1e-11)
    for method in ("sinkhorn", "online"):
        res = solve(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda(), x=torch.from_numpy(x).cuda(),
                    y=torch.from_numpy(y).cuda(), reg=0.3, tol=1e-11, method=method)
        assert res.value.device.type == "cuda" and res.potentials[0].device.type == "cuda"
        np.testing.assert_allclose(res.value.item(), cpu.value, rtol=1e-9)
