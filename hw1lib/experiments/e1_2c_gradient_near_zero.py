"""1-2c: 100 small float64 nets driven to near-zero-gradient points; full Hessian."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import cache
from ..critical import (CRITICAL as AT_CRITICAL, GRADIENT_FLAT as AT_GRADIENT_FLAT, classify, endpoint_spectrum,
                        index_at_critical, levels_of, linear_autoencoder, linear_autoencoder_critical_points,
                        flatness, linear_autoencoder_starts, loss_levels, minimize_grad_norm, newton_mr, oracle_summary,
                        refine_critical, resolved_spectrum, status_counts, trivial)
from ..curvature import FlatLoss, loss_and_grad, minimal_ratio
from ..ensemble import Ensemble
from ..functions import target
from ..models import count_params, mlp
from ..headline import Check, correlation, fmt_interval, fmt_sp, md_table, pct, rnd, rounded, vals
from ..stats import proportion_ci, spearman_ci
from .common import Experiment, Unit


@dataclass(frozen=True)
class CriticalConfig:
    function: str = "sinc"
    widths: tuple[int, ...] = (10, 10)   # 1 -> 10 -> 10 -> 1: 141 parameters (the assignment's net)
    small_widths: tuple[int, ...] = (3,) # 1 -> 3 -> 1: 10 parameters, a net that cannot interpolate
    activation: str = "tanh"             # smooth, so the Hessian exists everywhere
    n_points: int = 256                  # the full training set, evenly spaced on [-1, 1]; more
                                         # points than parameters, so minima are not flat by construction
    runs: int = 100                      # seeds first_run .. first_run + runs - 1, for each net
    first_run: int = 0
    runs_per_unit: int = 10              # blocks of runs computed (and cached) independently, in
                                         # parallel (--jobs processes on a CPU; on a GPU run, the cores
                                         # its threads leave free); runs do not depend on it
    phase1_epochs: int = 5_000           # full-batch Adam on the loss
    phase1_lr: float = 1e-2
    grad_tol: float = 1e-4               # phase 2 (the assignment's method): minimise ||grad L||^2 until the
    max_iters: int = 200                 # TRUE ||grad L|| < grad_tol, Levenberg-Marquardt, at most max_iters
    start_epochs: tuple[int, ...] = (30, 100, 300, 1000)   # Newton-MR starts from the initial weights,
                                         # the weights after these phase-1 epochs and after the last one
    find_tol: float = 1e-8               # critical: ||grad L|| <= find_tol (float64)
    find_iters: int = 200                # Newton-MR iterations at most
    krylov: int = 25                     # MINRES-QLP iterations per Newton-MR step (Frye et al.'s maxit)
    flat_ratio: float = 1e-2             # gradient-flat: ||H g|| <= flat_ratio ||H|| ||g|| where ||g|| stalled
    null_draws: int = 32                 # random directions per end point: the flatness ratio's null
    resolve_factor: float = 1e3          # an eigenvalue is resolved when |lambda| > this * ||grad L||
    oracle_per_point: int = 3            # linear-autoencoder oracle: starts 1e-2 from each critical set,
    oracle_random: int = 20              # and at random
    device: str = "cpu"                  # float64 small dense linear algebra: CPU is right


CRITICAL_PROFILES = {
    "smoke": dict(runs=4, runs_per_unit=2, phase1_epochs=50, start_epochs=(30,), max_iters=5, find_iters=5,
                  null_draws=4, oracle_per_point=1, oracle_random=2),
    "quick": dict(runs=10, phase1_epochs=2_000, start_epochs=(30, 300), max_iters=20, find_iters=60),
    "full": dict(),
}


CUT_FACTORS = (1, 10, 100, 1000)         # the cut factors c in |lambda| > c ||grad L|| the index is shown for


def critical_problem(cfg: CriticalConfig):
    """(build, x [n, 1], y [n, 1], FlatLoss) of the 1-2c task, float64, for the net cfg.widths."""
    dev = torch.device(cfg.device)
    build = lambda: mlp(1, cfg.widths, 1, activation=cfg.activation)
    x = torch.linspace(-1, 1, cfg.n_points, dtype=torch.float64, device=dev).unsqueeze(1)
    y = target(cfg.function, x)
    f = FlatLoss(build().double().to(dev), nn.functional.mse_loss, x, y)
    return build, x, y, f


def start_marks(cfg: CriticalConfig) -> list[int]:
    """The phase-1 epochs whose weights Newton-MR starts from (0: the initial weights; the last:
    phase 1's end)."""
    return sorted({e for e in cfg.start_epochs if e < cfg.phase1_epochs} | {0, cfg.phase1_epochs})


def _compute_critical_block(cfg: CriticalConfig, progress: bool) -> cache.Result:
    """Phase 1 (full-batch Adam on L, the weights kept at each start mark), phase 2 (the
    assignment's ||grad L||^2 minimisation from phase 1's end) and Newton-MR from every
    mark, for runs first_run .. first_run + runs - 1 of the net cfg.widths."""
    build, x, y, f = critical_problem(cfg)
    R = cfg.runs
    ens = Ensemble(build, list(range(cfg.first_run, cfg.first_run + R)), x.device, dtype=torch.float64)
    # Adam is elementwise, so one optimizer over the [R, P] rows trains each net on its own.
    theta = nn.Parameter(ens.flat_params().clone())
    opt = torch.optim.Adam([theta], lr=cfg.phase1_lr)
    marks, snaps = start_marks(cfg), []
    phase1 = np.empty((cfg.phase1_epochs + 1, R))
    for e in tqdm(range(cfg.phase1_epochs + 1), desc="1-2c phase 1: L", disable=not progress, leave=False):
        loss, g = loss_and_grad(f, theta.detach())
        phase1[e] = loss.cpu().numpy()
        if e in marks:
            snaps.append(theta.detach().clone())
        if e < cfg.phase1_epochs:
            theta.grad = g
            opt.step()
    # Phase 2: the assignment's method, from the end of phase 1.
    out = minimize_grad_norm(f, snaps[-1], tol=cfg.grad_tol, max_iters=cfg.max_iters, progress=progress)
    loss2, g2 = loss_and_grad(f, out["theta"])
    eig2, flat2, null2 = endpoint_spectrum(f, out["theta"], g2, cfg.null_draws)
    # Newton-MR from every mark: [M * R] rows, mark-major.
    fc = newton_mr(f, torch.cat(snaps), tol=cfg.find_tol, max_iters=cfg.find_iters, krylov=cfg.krylov,
                   checkpoints=(1e-6,), progress=progress, desc="1-2c Newton-MR")
    eig, flat, null = endpoint_spectrum(f, fc["theta"], fc["grad"], cfg.null_draws)
    M = len(marks)
    grid = lambda t: (t.cpu().numpy() if torch.is_tensor(t) else t).reshape(M, R, *t.shape[1:])
    trace = fc["trace"].cpu().numpy()
    arrays = {"phase1_loss": phase1, "loss": loss2.cpu().numpy(),
              "grad_norm": out["grad_norm"].cpu().numpy(), "reached": out["reached"].cpu().numpy(),
              "minimal_ratio": minimal_ratio(eig2.cpu().numpy()), "eigenvalues": eig2.cpu().numpy(),
              "flat_ratio": flat2.cpu().numpy(), "flat_null": null2.cpu().numpy(), "trace": out["trace"].cpu().numpy(),
              # phase 2 stops by design (at its tolerance or its cap): its end points are classified by where
              # they are, as if stalled
              "status": classify(out["grad_norm"], flat2, out["trace"], np.ones(R, bool), tol=cfg.find_tol,
                                 flat_ratio_max=cfg.flat_ratio),
              "start_loss": np.stack([phase1[e] for e in marks]),
              "find_loss": grid(fc["loss"]), "find_grad_norm": grid(fc["grad_norm"]),
              "find_distance": grid(fc["distance"]), "start_norm": grid(torch.cat(snaps).norm(dim=1)),
              "find_flat_ratio": grid(flat), "find_flat_null": grid(null), "find_eigenvalues": grid(eig),
              "find_status": grid(classify(fc["grad_norm"], flat, trace, fc["stalled"], tol=cfg.find_tol,
                                           flat_ratio_max=cfg.flat_ratio)),
              "find_trace": trace.reshape(len(trace), M, R),
              "find_spectrum_1e-6": grid(fc["spectrum_at"][0]), "find_grad_norm_1e-6": grid(fc["grad_norm_at"][0])}
    return cache.Result(arrays, {"params": count_params(f), "runs": R, "marks": marks,
                                 "target_variance": float(y.var(unbiased=False))})


def _compute_critical_oracle(cfg: CriticalConfig, progress: bool) -> cache.Result:
    """The three methods on the linear autoencoder whose critical points are known
    (`critical.linear_autoencoder`): the assignment's ||grad L||^2 minimisation (to
    find_tol, phase 2's iteration cap), the descent refinement (trust-region Newton on
    L) and Newton-MR, from the same starts near every critical set and at random."""
    f, U = linear_autoencoder(ORACLE_EIGENVALUES, (2,))
    points = linear_autoencoder_critical_points(ORACLE_EIGENVALUES, 2)
    S, near = linear_autoencoder_starts(U, points, (2,), per_point=cfg.oracle_per_point, random=cfg.oracle_random)
    runs = {"min_grad_norm_sq": minimize_grad_norm(f, S, tol=cfg.find_tol, max_iters=cfg.max_iters),
            "descent_on_L": refine_critical(f, S, tol=cfg.find_tol, max_iters=cfg.find_iters),
            "newton_mr": newton_mr(f, S, tol=cfg.find_tol, max_iters=cfg.find_iters, krylov=cfg.krylov)}
    arrays = {"oracle_values": np.array([p["value"] for p in points]),
              "oracle_index": np.array([p["index"] for p in points]), "oracle_start_near": near}
    for m, r in runs.items():
        loss, g = loss_and_grad(f, r["theta"])
        ev, flat, _ = endpoint_spectrum(f, r["theta"], g)
        stalled = r.get("stalled", torch.ones(len(S), dtype=torch.bool))
        arrays |= {f"oracle_{m}_loss": loss.numpy(), f"oracle_{m}_grad_norm": g.norm(dim=1).numpy(),
                   f"oracle_{m}_eigenvalues": ev.numpy(),
                   f"oracle_{m}_status": classify(g.norm(dim=1), flat, r["trace"], stalled, tol=cfg.find_tol,
                                                  flat_ratio_max=cfg.flat_ratio)}
    return cache.Result(arrays, {"params": int(S.shape[1]), "starts": int(len(S))})


ORACLE_EIGENVALUES = (8.0, 4.0, 2.0, 1.0)     # the oracle's data covariance (Baldi and Hornik 1989)


def critical_units(cfg: CriticalConfig) -> list[Unit]:
    """The oracle, then blocks of `runs_per_unit` runs of each net (every run is
    independent of the others)."""
    starts = range(cfg.first_run, cfg.first_run + cfg.runs, cfg.runs_per_unit)
    end = cfg.first_run + cfg.runs
    units = [Unit("critical_oracle", cfg, _compute_critical_oracle)]
    for widths in (cfg.widths, cfg.small_widths):
        units += [Unit("critical_block", dataclasses.replace(cfg, widths=widths, first_run=s,
                                                             runs=min(cfg.runs_per_unit, end - s)),
                       _compute_critical_block) for s in starts]
    return units


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row up to `rows` (a block whose runs all stopped early
    keeps their final gradient norms: they no longer move)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - len(a), 0)]) if len(a) < rows else a


def assemble_critical(cfg: CriticalConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays, for the assignment's net (no prefix) and the small one ("small_" prefix),
    one entry per run (R) or per start mark and run (M, R):
    phase1_loss [epochs + 1, R]; phase 2 (minimise ||grad L||^2 from phase 1's end):
    loss, grad_norm, reached (its own tolerance), minimal_ratio (raw), eigenvalues [R, P],
    flat_ratio (||H g|| / (||H|| ||g||)), status (critical.classify), trace [iters + 1, R];
    flat_null [R, null_draws] (the ratio for random directions); Newton-MR from the weights
    after each epoch of `start_epochs` and phase 1's end: start_loss, start_norm, find_loss,
    find_grad_norm, find_distance (from the start), find_flat_ratio, find_status [M, R],
    find_flat_null [M, R, null_draws], find_eigenvalues [M, R, P], find_trace [iters + 1, M, R],
    and the spectrum where a run
    first passed ||grad L|| <= 1e-6: find_spectrum_1e-6 [M, R, P], find_grad_norm_1e-6 [M, R]
    (NaN where none). The oracle's arrays (oracle_*) come from `_compute_critical_oracle`."""
    oracle, blocks = parts[0], parts[1:]
    n = len(blocks) // 2
    arrays = dict(oracle.arrays)
    for prefix, bl in (("", blocks[:n]), ("small_", blocks[n:])):
        for k in bl[0].arrays:
            first = bl[0].arrays[k]
            if k in ("trace", "find_trace"):
                rows = max(len(p.arrays[k]) for p in bl)
                arrays[prefix + k] = np.concatenate([_pad_rows(p.arrays[k], rows) for p in bl], first.ndim - 1)
            else:
                axis = 1 if k == "phase1_loss" or first.ndim >= 2 and k not in ("eigenvalues", "flat_null") else 0
                arrays[prefix + k] = np.concatenate([p.arrays[k] for p in bl], axis)
    summary = {"params": blocks[0].summary["params"], "small_params": blocks[n].summary["params"],
               "runs": cfg.runs, "marks": blocks[0].summary["marks"], "oracle_starts": oracle.summary["starts"],
               "oracle_params": oracle.summary["params"], "target_variance": blocks[0].summary["target_variance"]}
    return cache.Result(arrays, summary)


def h_critical(r, cfg) -> dict:
    a, s = r.arrays, r.summary
    out = {"runs": int(cfg.runs), "start_epochs": s["marks"], "grad_tol": cfg.grad_tol, "find_tol": cfg.find_tol,
           "find_iters": cfg.find_iters, "krylov": cfg.krylov, "flat_ratio": cfg.flat_ratio,
           "resolve_factor": cfg.resolve_factor, "cut_factors": list(CUT_FACTORS), "null_draws": cfg.null_draws,
           "target_variance": rnd(s["target_variance"])}
    reached = a["reached"].astype(bool)
    out["phase2"] = {"reached": int(reached.sum()), "classified": status_counts(a["status"]),
                     "loss_median": rnd(np.median(a["loss"])),
                     "grad_norm_median": rnd(np.median(a["grad_norm"])),
                     "flatness": flatness(a["flat_ratio"], a["flat_null"]),
                     "minimal_ratio_raw": (rounded(proportion_ci(a["minimal_ratio"][reached], s["params"]))
                                           if reached.any() else None),
                     "spearman_ratio_loss_reached": correlation(spearman_ci, a["minimal_ratio"][reached],
                                                                a["loss"][reached])}
    for net, prefix, params in (("wide", "", s["params"]), ("small", "small_", s["small_params"])):
        st, loss_all = a[prefix + "find_status"], a[prefix + "find_loss"]
        triv = (st == AT_CRITICAL) & trivial(loss_all, s["target_variance"])
        crit = (st == AT_CRITICAL) & ~triv                       # the critical points that say something
        ev, gn, loss = a[prefix + "find_eigenvalues"][crit], a[prefix + "find_grad_norm"][crit], loss_all[crit]
        res = {c: resolved_spectrum(ev, gn, c) for c in sorted({*CUT_FACTORS, cfg.resolve_factor})}
        by_cut = {f"{c:g}": index_at_critical(rc, loss, params) for c, rc in res.items()}
        main = by_cut[f"{cfg.resolve_factor:g}"]
        # Does an eigenvalue resolved at ||g|| <= 1e-6 keep its sign down to the end (<= find_tol)? Per
        # non-trivial critical point whose spectrum was recorded between 1e-6 and find_tol.
        at6 = crit & np.isfinite(a[prefix + "find_grad_norm_1e-6"])
        cut6 = cfg.resolve_factor * a[prefix + "find_grad_norm_1e-6"][at6][:, None]
        neg6 = (a[prefix + "find_spectrum_1e-6"][at6] < -cut6).sum(1)
        neg_end = (a[prefix + "find_eigenvalues"][at6] < -cut6).sum(1)
        sig = lambda d: None if d["rho"] is None else (0 if d["ci"][0] <= 0 <= d["ci"][1] else int(np.sign(d["rho"])))
        signs = [sig(v["index_vs_loss"]) for v in by_cut.values()]
        moved = a[prefix + "find_distance"]
        ratio = loss_all / a[prefix + "start_loss"]
        out[net] = {"params": int(params), "find": status_counts(st), "phase2": status_counts(a[prefix + "status"]),
                    "trivial": int(triv.sum()), "nontrivial_critical": int(crit.sum()),
                    # where each start went: its class, how far it moved and what became of its loss
                    "by_start": {str(e): {**status_counts(st[k]), "trivial": int(triv[k].sum()),
                                          "start_loss_median": rnd(np.median(a[prefix + "start_loss"][k])),
                                          "distance_median": rnd(np.median(moved[k])),
                                          "start_norm_median": rnd(np.median(a[prefix + "start_norm"][k])),
                                          "loss_ratio_median": rnd(np.median(ratio[k]))}
                                 for k, e in enumerate(s["marks"])},
                    "index_positive": main["index_positive"], "index_vs_loss": main["index_vs_loss"],
                    "by_cut": by_cut,
                    "critical_loss_levels": int(len(np.unique(loss_levels(loss)))),
                    # each loss level of all critical points (at most 8, the most populated), the trivial one included
                    "levels": levels_of(loss_all[st == AT_CRITICAL], resolved_spectrum(
                        a[prefix + "find_eigenvalues"][st == AT_CRITICAL], a[prefix + "find_grad_norm"][st == AT_CRITICAL],
                        cfg.resolve_factor)["negative"]),
                    "critical_loss_range": [rnd(loss.min()), rnd(loss.max())] if len(loss) else None,
                    "index_same_at_1e-6": [int((neg6 == neg_end).sum()), int(at6.sum())],
                    # the end points that are not critical: is the gradient closer to H's null space than a random
                    # direction is?
                    "flatness": flatness(a[prefix + "find_flat_ratio"][st != AT_CRITICAL],
                                          a[prefix + "find_flat_null"][st != AT_CRITICAL]),
                    "not_critical_grad_norm_median": rnd(np.median(a[prefix + "find_grad_norm"][st != AT_CRITICAL]))
                    if (st != AT_CRITICAL).any() else None,
                    # the conclusions every cut factor agrees on
                    "survives_all_cuts": {"saddles_found": all(v["index_positive"] > 0 for v in by_cut.values()),
                                          "index_loss_sign": signs[0] if len(set(signs)) == 1 else "differs"}}
    out["oracle"] = oracle_summary(a, cfg.resolve_factor)
    return out


def c_critical(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {"phase2_reached": Check("1-2c/reached", "lin", pct(a["reached"].astype(bool))),
           "phase2_loss": Check("1-2c/loss", "log", vals(a["loss"]))}
    for net, prefix in (("wide", ""), ("small", "small_")):
        st = a[prefix + "find_status"]
        nontrivial = (st == AT_CRITICAL) & ~trivial(a[prefix + "find_loss"], r.summary["target_variance"])
        out[f"{net}/critical"] = Check("1-2c/reached", "lin", pct(st == AT_CRITICAL))
        out[f"{net}/nontrivial_critical"] = Check("1-2c/reached", "lin", pct(nontrivial))
        out[f"{net}/gradient_flat"] = Check("1-2c/reached", "lin", pct(st == AT_GRADIENT_FLAT))
        out[f"{net}/critical_loss"] = Check("1-2c/loss", "log", vals(a[prefix + "find_loss"][st == AT_CRITICAL]))
    return out


def _fmt_flat(v: dict) -> str:
    if not v["n"]:
        return "none"
    return (f"median {v['median']:.2g} against {v['null_median']:.2g} for random directions; "
            f"{v['below_null']} of {v['n']} below all their random draws")


def block_critical(c: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    o, p2 = c["oracle"], c["phase2"]
    names = {"min_grad_norm_sq": f"min ||grad L||^2 (Levenberg-Marquardt, to {c['find_tol']:g})",
             "descent_on_L": "descent on L (trust region)", "newton_mr": "Newton-MR"}
    txt = (f"**The method decides what is found.** On the linear autoencoder with known critical points "
           f"({o['critical_values']} critical values, {o['saddle_values']} of them saddles), from the same {o['starts']} "
           "starts (near every critical set and at random), end points at ||grad L|| <= "
           f"{c['find_tol']:g}:\n\n" + md_table(
               ["method", "critical", "gradient-flat", "not converged", "on an analytic value with its analytic index",
                "saddles among them", "values found (saddle values)"],
               [[names[m], v["critical"], v["gradient_flat"], v["not_converged"], v["analytic_index"], v["saddles"],
                 f"{v['values_found']} of {o['critical_values']} ({v['saddle_values_found']} of {o['saddle_values']})"]
                for m, v in ((m, o[m]) for m in names)]))
    txt += ("\n\n**The nets.** Newton-MR (MINRES-QLP steps of at most "
            f"{c['krylov']} Krylov iterations, backtracking on ||grad L||^2, at most {c['find_iters']} iterations) from "
            f"{len(c['start_epochs'])} points along phase 1. End points are classified (critical: ||grad L|| <= "
            f"{c['find_tol']:g}; gradient-flat: ||grad L|| stalled with ||H g|| <= {c['flat_ratio']:g} ||H|| ||g||; "
            "otherwise not converged); a critical point is **trivial** where its loss is the target's variance "
            f"({c['target_variance']:.4g}: the net predicts a constant). Per start: end points (critical, of which "
            "trivial / gradient-flat / not converged), the median distance moved (and the median norm of the start) "
            "and the median ratio of end to start loss:\n\n")
    rows = []
    for net in ("wide", "small"):
        for e, v in sorted(c[net]["by_start"].items(), key=lambda kv: int(kv[0])):
            rows.append([f"{net} ({c[net]['params']} parameters)", e, f"{v['start_loss_median']:.3g}",
                         f"{v['critical']} ({v['trivial']}) / {v['gradient_flat']} / {v['not_converged']}",
                         f"{v['distance_median']:.3g} ({v['start_norm_median']:.3g})", f"{v['loss_ratio_median']:.3g}"])
    txt += md_table(["net", "start (phase-1 epoch)", "start loss", "critical (trivial) / flat / not converged",
                     "distance moved (start norm)", "end / start loss"], rows)
    for net in ("wide", "small"):
        v = c[net]
        lo = v["critical_loss_range"]
        txt += (f"\n\n**{net.capitalize()} net**: {v['nontrivial_critical']} non-trivial critical points of "
                f"{sum(v['find'].values())} end points ({v['trivial']} trivial)")
        if v["nontrivial_critical"]:
            txt += (f", at {v['critical_loss_levels']} loss level(s) ({lo[0]:.3g} to {lo[1]:.3g}); {v['index_positive']} "
                    f"with index > 0; Spearman(index, loss) {fmt_sp(v['index_vs_loss'])}")
        txt += (". Loss levels of all its critical points (loss: points, index min / median / max): "
                + ("; ".join(f"{d['loss']:.4g}: {d['n']}, {d['index'][0]} / {d['index'][1]:g} / {d['index'][2]}"
                             for d in v["levels"]) or "none")
                + f". Flatness ratio ||H g|| / (||H|| ||g||) of the end points that are not critical: {_fmt_flat(v['flatness'])}.")
    txt += (f"\n\nPhase 2 (the assignment's method, {c['runs']} runs of the wide net): {p2['reached']} reached "
            f"||grad L|| < {c['grad_tol']:g}; its end points ({p2['classified']['critical']} critical, "
            f"{p2['classified']['gradient_flat']} gradient-flat, {p2['classified']['not_converged']} not converged) have a median "
            f"||grad L|| of {p2['grad_norm_median']:.1e}; their flatness ratio: {_fmt_flat(p2['flatness'])}")
    if p2["minimal_ratio_raw"]:
        txt += (f"; raw minimal ratio at those that reached it {fmt_interval(p2['minimal_ratio_raw'], 3, n=False)} "
                "(mean and its t-interval), Spearman with the "
                f"loss {fmt_sp(p2['spearman_ratio_loss_reached'])}")
    txt += (".\n\n**Resolution** (non-trivial critical points only). An eigenvalue is counted as negative or "
            "positive only when |lambda| > c ||grad L||. Near a non-degenerate critical point g ~ H d, so the "
            "distance d along a direction of curvature lambda is about ||g|| / |lambda| < 1 / c, and lambda itself "
            "moves by at most (third derivative) x d: the larger c, the safer the sign. The index at each cut factor:\n\n")
    rows = []
    for net in ("wide", "small"):
        for k, v in c[net]["by_cut"].items():
            rows.append([net, k, v["index_positive"], "" if v["index_median"] is None else f"{v['index_median']:g}",
                         "" if v["near_zero_median"] is None else f"{v['near_zero_median']:g}",
                         fmt_interval(v["resolved_ratio"], 3) if v["resolved_ratio"] else "",
                         fmt_sp(v["index_vs_loss"])])
    txt += md_table(["net", "c", "critical with index > 0", "median index", "median near-zero",
                     "minimal ratio over resolved eigenvalues", "Spearman(index, loss)"], rows)
    for net in ("wide", "small"):
        v, sv = c[net], c[net]["survives_all_cuts"]
        same, n = v["index_same_at_1e-6"]
        if not v["nontrivial_critical"]:
            txt += f"\n\n**{net}**: no non-trivial critical point was found, so index against loss is not measured."
            continue
        sign = {1: "positive: higher loss, higher index", -1: "negative", 0: "not distinguishable from 0",
                None: "undefined", "differs": "not the same at every cut"}[sv["index_loss_sign"]]
        txt += (f"\n\n**{net}**: at every cut factor, saddles (index > 0) {'are' if sv['saddles_found'] else 'are not'} "
                f"found among the non-trivial critical points; the index-loss rank correlation is {sign}. Counting the "
                f"eigenvalues beyond the cut at ||grad L|| <= 1e-6 (c = {c['resolve_factor']:g}), the number of negative "
                f"ones is the same there and at the end for {same} of the {n} whose spectrum was recorded on the way.")
    return txt


def summary_critical(h: dict) -> str:
    w, sm = h["wide"], h["small"]
    return (f"Newton-MR from {len(h['start_epochs'])} points along training ends at {w['nontrivial_critical']} "
            f"non-trivial critical points of {sum(w['find'].values())} on the {w['params']}-parameter net "
            f"({w['trivial']} trivial, constant output; {w['find']['gradient_flat']} gradient-flat) and "
            f"{sm['nontrivial_critical']} of {sum(sm['find'].values())} on the {sm['params']}-parameter one "
            f"({sm['trivial']} trivial); Spearman(index, loss) over non-trivial ones {fmt_sp(w['index_vs_loss'])} and "
            f"{fmt_sp(sm['index_vs_loss'])}; the assignment's phase 2 reaches {h['phase2']['reached']}/{h['runs']} below "
            f"{h['grad_tol']:g} and {h['phase2']['classified']['critical']} critical points")


CRITICAL = Experiment(
    "1-2c", "critical points", "1-2c_gradient_near_zero.ipynb", CriticalConfig, CRITICAL_PROFILES,
    key="", compute=None, plan=critical_units, assemble=assemble_critical,
    headline=h_critical, block=block_critical, checks=c_critical, host=True, summary=summary_critical,
    published=("Dauphin et al. 2014; Frye et al. 2021",
               "at critical points, training error falls as the fraction of positive eigenvalues (minimal ratio) "
               "rises (Dauphin); Newton-type critical-point finders on neural-network losses often end in "
               "gradient-flat regions, not at critical points (Frye)"))
