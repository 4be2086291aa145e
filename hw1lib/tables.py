"""The report's headline numbers, generated from the results and never typed.

    python -m hw1lib.tables --write [--profile full]   (make report does this)
    python -m hw1lib.tables --check                    (a test does this)

`--write` reads every experiment of a profile from the cache and writes
`figures/results.json` (headline numbers by experiment, and under `checks` the
per-seed values `python -m hw1lib.verify` compares with), then regenerates from
that file the README's tables (between `<!-- results:NAME -->` and
`<!-- /results:NAME -->` markers) and `RESULTS.md` (every headline number
beside the published one it compares with). `--check` regenerates both from the
committed `figures/results.json` and fails if either differs: a hand edit of a
number, or a results file changed without regenerating, is caught.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .paths import repo_root
from .stats import first_at_least, fmt_ci, last_window_drop, mean_ci, partial_spearman_ci, spearman_ci

RESULTS_JSON = Path("figures") / "results.json"
RESULTS_MD = Path("RESULTS.md")
README = Path("README.md")


def _r(x: float, sig: int = 4) -> float | None:
    """A float rounded to `sig` significant digits (a stable JSON file); NaN -> None."""
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.{sig}g}")


def _ci(x) -> dict:
    """{mean, ci95, n} of the seeds in x [S]."""
    m, h = mean_ci(np.asarray(x, dtype=float))
    return {"mean": _r(m), "ci95": _r(h), "n": int(np.asarray(x).shape[-1])}


# ------------------------------------------------------------ headline numbers per experiment
SPIKE = 2.0   # 1-1a: a run whose final loss is above this many times its best ended inside one of Adam's spikes


def h_function_fit(r, cfg) -> dict:
    from .experiments.deep_vs_shallow import function_fit_models

    models = function_fit_models(cfg)
    final, stopped, conv = (r.arrays[k] for k in ("final_loss", "stopped_at", "converged"))   # [depth, function, seed]
    loss = r.arrays["loss"]                                                                   # [depth, epoch, function, seed]

    def drop(i, j):   # how much the last 10% of epochs still lowered the best loss, median over unconverged runs
        d = [last_window_drop(loss[i, :, j, s], cfg.plateau_window) for s in range(len(cfg.seeds)) if not conv[i, j, s]]
        return _r(np.median(d)) if d else None

    return {"min_epochs": cfg.min_epochs, "max_epochs": cfg.max_epochs, "plateau_window": cfg.plateau_window,
            "plateau_rtol": cfg.plateau_rtol, "seeds": len(cfg.seeds), "functions": list(cfg.functions), "models": [
        {"name": m["name"], "widths": list(m["widths"]), "params": m["params"],
         "final_mse": {f: {"median": _r(np.median(final[i, j])), "min": _r(final[i, j].min()),
                           "max": _r(final[i, j].max())} for j, f in enumerate(cfg.functions)},
         "converged": {f: int(conv[i, j].sum()) for j, f in enumerate(cfg.functions)},
         "median_epochs": {f: int(np.median(stopped[i, j])) for j, f in enumerate(cfg.functions)},
         "unconverged_last_drop": {f: drop(i, j) for j, f in enumerate(cfg.functions)},
         "ended_on_spike": {f: int((final[i, j] > SPIKE * np.nanmin(loss[i, :, j], axis=0)).sum())
                            for j, f in enumerate(cfg.functions)}}
        for i, m in enumerate(models)], "best": best_depths(final, models, cfg.functions)}


def best_depths(final: np.ndarray, models: list[dict], functions) -> dict:
    """Per function, the model with the lowest median final loss, and whether it
    is separated from every other model (its worst seed better than their best
    seed). final: [model, function, seed]."""
    out = {}
    for j, f in enumerate(functions):
        med = np.median(final[:, j], axis=1)
        b = int(np.argmin(med))
        others = [i for i in range(len(models)) if i != b]
        out[f] = {"model": models[b]["name"],
                  "separated": bool(all(final[b, j].max() < final[i, j].min() for i in others))}
    return out


def h_mnist_models(r, cfg) -> dict:
    from .experiments.deep_vs_shallow import mnist_models

    models = mnist_models(cfg)
    out = {"epochs": cfg.epochs, "seeds": len(cfg.seeds), "datasets": {}}
    for t, task in enumerate(cfg.datasets):
        a = {k: v[t] for k, v in r.arrays.items()}
        rows = [{"name": m["name"], "layers": m["layers"], "params": m["params"],
                 **{k: _ci(a[k][i, -1] * (100 if "acc" in k else 1))
                    for k in ("train_loss", "test_loss", "train_acc", "test_acc")}} for i, m in enumerate(models)]
        acc = 100 * a["test_acc"][:, -1]                     # [depth, seed]: paired across seeds
        out["datasets"][task] = {"models": rows, "paired_test_acc_diff": {
            f"{models[i + 1]['name']} - {models[i]['name']}": _ci(acc[i + 1] - acc[i]) for i in range(len(acc) - 1)}}
    return out


def h_trajectory(r, cfg) -> dict:
    from .experiments.optimization import SMALL_LAYER, trajectory_pca

    out = {"runs": cfg.runs, "params": r.summary["params"],
           "final_test_acc": _ci(100 * r.arrays["test_acc"][-1])}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        out[f"explained_{key}"] = [_r(100 * ev[0]), _r(100 * ev[1])]
    return out


def h_grad_norm(r, cfg) -> dict:
    from .experiments.optimization import first_tenth_median, last_tenth_median

    out = {"seeds": len(cfg.seeds)}
    for task in ("function", "mnist"):
        gn, loss = r.arrays[f"{task}_grad_norm"], r.arrays[f"{task}_loss"]          # [iterations, seeds]
        first, last = first_tenth_median(gn), last_tenth_median(gn)
        out[task] = {"iterations": int(len(gn)), "grad_norm_first10": _ci(first), "grad_norm_last10": _ci(last),
                     "loss_first10": _ci(first_tenth_median(loss)), "loss_last10": _ci(last_tenth_median(loss)),
                     "grad_norm_drop": _ci(first / last)}
    full = r.arrays["mnist_full_grad_norm"]                                         # [epochs + 1, seeds]
    out["mnist"]["full_batch_grad_norm_start_end"] = [_ci(full[0]), _ci(full[-1])]
    return out


def h_critical(r, cfg) -> dict:
    from .critical import resolved_spectrum
    from .experiments.optimization import REFINE_CHECKPOINTS

    a = r.arrays
    reached = a["reached"].astype(bool)
    ev = a["eigenvalues"]
    out = {"runs": int(len(reached)), "reached": int(reached.sum()), "grad_tol": cfg.grad_tol,
           "params": r.summary["params"],
           "max_grad_norm_reached": _r(a["grad_norm"][reached].max()) if reached.any() else None,
           "minimal_ratio_raw": _ci(a["minimal_ratio"][reached]),
           "minimal_ratio_range": [_r(a["minimal_ratio"][reached].min()), _r(a["minimal_ratio"][reached].max())],
           "flat_eigenvalues_median": _r(np.median((np.abs(ev[reached]) < 1e-8).sum(1))),
           "negative_eigenvalues_median": _r(np.median((ev[reached] < -1e-8).sum(1))),
           "spearman_ratio_loss_reached": _sp_r(spearman_ci(a["minimal_ratio"][reached], a["loss"][reached]))}
    # Phase 3: trust-region Newton on L from the phase-2 points.
    ok = a["refined_reached"].astype(bool)
    gn, loss = a["refined_grad_norm"], a["refined_loss"]
    res = resolved_spectrum(a["refined_eigenvalues"], gn, cfg.resolve_factor)
    out |= {"refine_tol": cfg.refine_tol, "refine_iters": cfg.refine_iters, "resolve_factor": cfg.resolve_factor,
            "refined_reached": int(ok.sum()),
            "refined_grad_norm_median_not_reached": _r(np.median(gn[~ok])) if (~ok).any() else None,
            # what stopped the others: the iteration of each one's last accepted step (the cap, or a stall)
            "refined_not_reached_last_step": [_last_change(a["refine_trace"][:, i]) for i in np.flatnonzero(~ok)],
            "refined_loss_over_phase2_loss_median": _r(np.median(loss / a["loss"])),
            "refined_loss_median": _r(np.median(loss))}
    # Where phase 3 ended (all runs): the eigenvalues the residual gradient cannot flip.
    out["end_counts_median"] = {k: _r(np.median(res[k])) for k in ("negative", "near_zero", "positive")}
    # The spectrum recorded where each run first passed each tolerance ([T, R, P]; NaN where it never did),
    # counted once: per tolerance over the runs that got there, and run by run for the stability check.
    at = resolved_spectrum(a["spectrum_at"], a["grad_norm_at"], cfg.resolve_factor)
    out["checkpoints"] = {}
    for k, t in enumerate(REFINE_CHECKPOINTS):
        got = ~np.isnan(a["grad_norm_at"][k])
        out["checkpoints"][f"{t:g}"] = {
            "runs": int(got.sum()),
            "resolved_ratio": _r(np.nanmean(at["resolved_ratio"][k][got])) if got.any() else None,
            "negative_median": _r(np.median(at["negative"][k][got])) if got.any() else None}
    if ok.any():
        tr = a["refine_trace"][:, ok]
        its = (tr <= cfg.refine_tol).argmax(0)                     # first iteration at the tolerance
        out["refine_iterations_reached"] = {"median": _r(np.median(its)),
                                            "p10_p90": [_r(v) for v in np.percentile(its, [10, 90])]}
        out |= {"max_grad_norm_refined": _r(gn[ok].max()),
                "minimal_ratio_resolved_mean": _ci(res["resolved_ratio"][ok]),
                "minimal_ratio_refined_raw": _ci(res["raw_ratio"][ok])}
        # Stability: how far a run's resolved ratio moved between the 1e-6 and the 1e-8 checkpoints.
        ratio, last = at["resolved_ratio"], ~np.isnan(a["grad_norm_at"][-1])
        out["resolved_ratio_max_change_1e-6_to_1e-8"] = _r(np.max(np.abs(ratio[-1][last] - ratio[-3][last])))
    varies = ok.sum() >= 4 and np.ptp(res["resolved_ratio"][ok]) > 0
    if ok.sum() >= 4 and not varies:
        # a correlation needs the ratio to vary: say what it is instead
        out["resolved_ratio_all_equal"] = _r(res["resolved_ratio"][ok][0])
    if varies:
        out["spearman_resolved_ratio_loss"] = _sp_r(spearman_ci(res["resolved_ratio"][ok], loss[ok]))
        out["partial_spearman_resolved_ratio_loss_given_grad_norm"] = _sp_r(
            partial_spearman_ci(res["resolved_ratio"][ok], loss[ok], np.log(gn[ok])))
    return out


def _last_change(trace) -> int:
    """The last iteration at which a run's ||grad L|| trace [iters + 1] changed (0: never)."""
    moved = np.flatnonzero(np.diff(trace))
    return int(moved[-1] + 1) if len(moved) else 0


def h_surface(r, cfg) -> dict:
    return {"centre_loss": _r(r.summary["centre_loss"]), "random_plane_max": _r(r.arrays["random_loss"].max()),
            "pca_explained": [_r(100 * e) for e in r.arrays["explained"]], "grid": cfg.grid}


def h_random_labels(r, cfg) -> dict:
    a = r.arrays
    out = {"params": r.summary["params"], "train_subset": cfg.train_subset, "epochs": cfg.epochs,
           "seeds": len(cfg.seeds)}
    for kind in ("true", "random"):
        acc = a[f"{kind}_train_acc"]                                    # [epochs + 1, seeds]
        first = [first_at_least(acc[:, s], 0.99) for s in range(acc.shape[1])]
        out[kind] = {"train_acc": _ci(100 * acc[-1]), "test_acc": _ci(100 * a[f"{kind}_test_acc"][-1]),
                     "first_epoch_train_acc_99": first}
    return out


def h_params_sweep(r, cfg) -> dict:
    a = r.arrays
    rows = [{"width": w, "params": int(p), "train_acc": _ci(100 * a["train_acc"][i]),
             "test_acc": _ci(100 * a["test_acc"][i]), "test_err": _ci(100 * (1 - a["test_acc"][i])),
             "train_err": _ci(100 * (1 - a["train_acc"][i]))}
            for i, (w, p) in enumerate(zip(cfg.widths, a["params"]))]
    test_err = [row["test_err"]["mean"] for row in rows]
    train_err = [row["train_err"]["mean"] for row in rows]
    interp = next((row["params"] for row, e in zip(rows, train_err) if e <= 1.0), None)
    return {"label_noise": cfg.label_noise, "seeds": len(cfg.seeds), "epochs": cfg.epochs, "rows": rows,
            "min_test_err_params": rows[int(np.argmin(test_err))]["params"],
            "max_test_err_params": rows[int(np.argmax(test_err))]["params"],
            "interpolation_params": interp}


def slice_rise(t, loss, at: float = 0.5) -> float:
    """How much the training loss rises a filter-normalised distance `at` from an
    end: the mean of the losses at t = -at and t = +at (nearest grid points)
    minus the loss at t = 0."""
    t, loss = np.asarray(t), np.asarray(loss)
    i = lambda v: int(np.argmin(np.abs(t - v)))
    return float((loss[i(-at)] + loss[i(at)]) / 2 - loss[i(0)])


def h_interpolation(r, cfg) -> dict:
    from .experiments.generalization import END_METRICS, PAIRS

    a = r.arrays
    al = a["alpha"]
    inside = (al >= 0) & (al <= 1)
    ends = {n: {**dict(zip(END_METRICS, (_r(v) for v in row))),
                "slice_rise": _r(slice_rise(a["slice_t"], a[f"slice_{n}"]))}
            for n, row in zip(r.summary["ends"], a["end_metrics"])}
    out = {"target_loss": cfg.target_loss, "max_epochs": cfg.max_epochs, "ends": ends, "pairs": {}}
    for pair, end0, end1 in PAIRS:
        tl = a[f"{pair}_train_loss"]
        top = max(tl[np.argmin(np.abs(al))], tl[np.argmin(np.abs(al - 1))])
        out["pairs"][pair] = {"ends": [end0, end1],
                              "test_acc_end0": _r(100 * a[f"{pair}_test_acc"][np.argmin(np.abs(al))]),
                              "test_acc_end1": _r(100 * a[f"{pair}_test_acc"][np.argmin(np.abs(al - 1))]),
                              "barrier": _r(tl[inside].max() - top),
                              "min_test_acc_between": _r(100 * a[f"{pair}_test_acc"][inside].min()),
                              **dict(zip(("norm_end0", "norm_end1", "distance", "moved_end0", "moved_end1"),
                                         (_r(v) for v in a[f"{pair}_geometry"])))}
    return out


def _sp_r(d: dict) -> dict:
    return {"rho": _r(d["rho"]), "ci": [_r(c) for c in d["ci"]], "n": d["n"]}


def h_batch_sweep(r, cfg) -> dict:
    a = r.arrays

    def rows(prefix, sizes):
        gap = a[f"{prefix}test_loss"] - a[f"{prefix}train_loss"]
        return [{"batch": int(b), "test_acc": _ci(100 * a[f"{prefix}test_acc"][i]),
                 "train_acc": _ci(100 * a[f"{prefix}train_acc"][i]), "train_loss": _ci(a[f"{prefix}train_loss"][i]),
                 "gap": _ci(gap[i]), "sensitivity": _ci(a[f"{prefix}sensitivity"][i]),
                 "epochs": _ci(a[f"{prefix}epochs"][i]), "steps_median": int(np.median(a[f"{prefix}steps"][i])),
                 "reached": int(a[f"{prefix}reached"][i].sum())} for i, b in enumerate(sizes)], gap

    true_rows, gap = rows("", a["batch_size"])
    random_rows, rgap = rows("random_", a["random_batch_size"])
    sens_all = np.concatenate([a["sensitivity"].ravel(), a["random_sensitivity"].ravel()])
    gap_all = np.concatenate([gap.ravel(), rgap.ravel()])
    return {"target_loss": cfg.target_loss, "max_epochs": cfg.max_epochs, "seeds": len(cfg.seeds),
            "random_label_subset": cfg.random_label_subset, "rows": true_rows, "random_rows": random_rows,
            "spearman_sensitivity_gap": _sp_r(spearman_ci(a["sensitivity"].ravel(), gap.ravel())),
            "spearman_sensitivity_gap_with_random": _sp_r(spearman_ci(sens_all, gap_all))}


def h_sharpness(r, cfg) -> dict:
    a = r.arrays
    return {"epsilons": [float(e) for e in a["epsilons"]], "target_loss": cfg.sweep.target_loss, "rows": [
        {"batch": int(b), "sharpness": [_ci(a["sharpness"][e, i]) for e in range(len(a["epsilons"]))],
         "sharpness_lbfgsb": _ci(a["sharpness_lbfgsb"][i]),
         "top_eig": _ci(a["top_eig"][i])} for i, b in enumerate(a["batch_size"])],
        "spearman_sharpness_batch": _sp_r(spearman_ci(np.repeat(a["batch_size"], a["sharpness"].shape[2]),
                                                      a["sharpness"][0].ravel()))}


HEADLINES: dict[str, Callable[[Any, Any], dict]] = {
    "1-1a": h_function_fit, "1-1b": h_mnist_models, "1-2a": h_trajectory, "1-2b": h_grad_norm,
    "1-2c": h_critical, "1-2d": h_surface, "1-3a": h_random_labels, "1-3b": h_params_sweep,
    "1-3b-noise": h_params_sweep, "1-3c": h_interpolation, "1-3d": h_batch_sweep, "1-3e": h_sharpness,
}


def headlines(profile: str = "full", device: str = "auto") -> dict:
    """Headline numbers of every experiment of `profile`, from the cache (an
    experiment missing from the cache is computed)."""
    from .experiments import REGISTRY
    from .provenance import git_commit

    from .device import describe, resolve_device

    from .verify import checks

    out = {"profile": profile, "commit": git_commit(), "device": describe(resolve_device(device)),
           "experiments": {}}
    for e in REGISTRY:
        cfg = e.make_config(profile, device)
        result = e.run(cfg, progress=False)
        out["experiments"][e.name] = HEADLINES[e.name](result, cfg)
    # every checked metric's per-seed values: what `python -m hw1lib.verify --profile full` compares with
    out["checks"] = checks([e.name for e in REGISTRY], profile, device)
    return out


def section(name: str, profile: str, device: str = "auto") -> str:
    """The generated block of one experiment (markdown), for `profile`, from the
    cache: what a notebook shows under its figures, so its numbers are always the
    ones of the profile it ran with."""
    from .experiments import experiment

    e = experiment(name)
    cfg = e.make_config(profile, device)
    return blocks({"experiments": {name: HEADLINES[name](e.run(cfg, progress=False), cfg)}})[name]


# ------------------------------------------------------------ generated markdown
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _m(d: dict, digits: int = 2) -> str:
    return fmt_ci(d["mean"], d["ci95"] if d["ci95"] is not None else float("nan"), digits)


def _g(d: dict) -> str:
    """A mean ± interval to 3 significant digits (values that span decades)."""
    half = d["ci95"]
    return f"{d['mean']:.3g}" + ("" if half is None or not np.isfinite(half) else f" ± {half:.2g}")


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _sp(d: dict) -> str:
    return f"{d['rho']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] (n = {d['n']})"


DATASET_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}


def _unconverged_note(ff: dict) -> str:
    """1-1a: how fast the runs stopped by the cap were still improving."""
    parts = [f"{m['name']} {f} {m['unconverged_last_drop'][f]:.0%}" for m in ff["models"] for f in ff["functions"]
             if m["unconverged_last_drop"][f] is not None]
    out = "" if not parts else (
        f" The runs stopped by the cap were still improving: over their last {ff['plateau_window']:.0%} of epochs "
        "the best loss fell by (median) " + ", ".join(parts) + ".")
    spikes = [f"{m['name']} {f} {m['ended_on_spike'][f]}" for m in ff["models"] for f in ff["functions"]
              if m["ended_on_spike"][f]]
    if spikes:
        out += (f" Runs that ended inside one of Adam's loss spikes (final loss above {SPIKE:g} times their best, so "
                "their final MSE overstates what they reached): " + ", ".join(spikes) + ".")
    return out


def blocks(results: dict) -> dict[str, str]:
    """The generated blocks, by experiment name, of the experiments in `results`."""
    x = results["experiments"]
    b = {}
    want = x.__contains__
    if want("1-1a"):
        ff = x["1-1a"]
        fns = ff["functions"]
        b["1-1a"] = _table(["model", "hidden widths", "params", *[f"{f} MSE, median [min, max]" for f in fns]], [
            [m["name"], ", ".join(map(str, m["widths"])), m["params"],
             *[f"{m['final_mse'][f]['median']:.1e} [{m['final_mse'][f]['min']:.1e}, {m['final_mse'][f]['max']:.1e}]"
               for f in fns]] for m in ff["models"]]) + \
            f"\n\nFinal training MSE over {_n(ff['seeds'], 'seed')}. Every run trains {ff['min_epochs']:,} full-batch " \
            f"epochs, then on until its plateau rule holds (the last {ff['plateau_window']:.0%} of its epochs lowered " \
            f"its best loss by less than {ff['plateau_rtol']:.0%}), checked as it trains, or until {ff['max_epochs']:,} " \
            "epochs. Converged runs (median epochs trained), per model and function: " + \
            "; ".join(f"{m['name']} " + ", ".join(f"{f} {m['converged'][f]}/{ff['seeds']} ({m['median_epochs'][f]:,})"
                                                  for f in fns) for m in ff["models"]) + "." + \
            _unconverged_note(ff) + " Lowest median per function: " + \
            "; ".join(f"{f} {ff['best'][f]['model']} (" + ("every seed better than every seed of the other depths"
                      if ff["best"][f]["separated"] else "seed ranges overlap another depth's") + ")" for f in fns) + "."
    if want("1-1b"):
        mm = x["1-1b"]
        parts = []
        for task, d in mm["datasets"].items():
            parts.append(f"**{DATASET_NAMES.get(task, task)}**\n\n" + _table(
                ["model", "layers", "params", "train loss", "test loss", "train acc (%)", "test acc (%)"], [
                    [m["name"], m["layers"].replace(" | ", ", "), f"{m['params']:,}", _m(m["train_loss"], 3),
                     _m(m["test_loss"], 3), _m(m["train_acc"]), _m(m["test_acc"])] for m in d["models"]]) +
                "\n\nPaired test-accuracy differences (points): " +
                "; ".join(f"{k}: {_m(v)}" for k, v in d["paired_test_acc_diff"].items()) + ".")
        b["1-1b"] = "\n\n".join(parts) + f"\n\nAfter {mm['epochs']} epochs; mean ± 95% t-interval over " \
            f"{_n(mm['seeds'], 'seed')}; a paired difference compares two depths seed by seed."
    if want("1-2a"):
        t = x["1-2a"]
        b["1-2a"] = (f"Explained variance of the joint PCA: whole model {t['explained_whole_model'][0]:.1f}% + "
                     f"{t['explained_whole_model'][1]:.1f}%, hidden-to-hidden layer {t['explained_small_layer'][0]:.1f}% + "
                     f"{t['explained_small_layer'][1]:.1f}%; final test accuracy {_m(t['final_test_acc'])}% over "
                     f"{t['runs']} runs.")
    if want("1-2b"):
        g = x["1-2b"]
        b["1-2b"] = _table(["task", "iterations", "grad norm, first 10%", "grad norm, last 10%", "drop (first / last)",
                            "loss, first 10%", "loss, last 10%"], [
            [k + (" (minibatch)" if k == "mnist" else " (full batch)"), v["iterations"],
             *[_g(v[m]) for m in ("grad_norm_first10", "grad_norm_last10", "grad_norm_drop", "loss_first10",
                                  "loss_last10")]]
            for k, v in g.items() if k != "seeds"]) + \
            f"\n\nEach run's median over its first and last 10% of iterations; mean ± 95% t-interval over " \
            f"{_n(g['seeds'], 'seed')} (one run per seed). The MNIST runs' full-batch gradient norm (whole " \
            f"training set) goes from {_g(g['mnist']['full_batch_grad_norm_start_end'][0])} at the start to " \
            f"{_g(g['mnist']['full_batch_grad_norm_start_end'][1])} after the last epoch."
    if want("1-2c"):
        c = x["1-2c"]
        txt = (f"**Phase 2** (minimise ||grad L||^2): {c['reached']} of {c['runs']} runs reached ||grad L|| < "
               f"{c['grad_tol']:g} (largest among them {c['max_grad_norm_reached']:.2e}). Raw minimal ratio there: "
               f"{_m(c['minimal_ratio_raw'])} (range {c['minimal_ratio_range'][0]:.2f} to {c['minimal_ratio_range'][1]:.2f}); "
               f"per run, a median of {c['negative_eigenvalues_median']:.0f} eigenvalues below -1e-8 and "
               f"{c['flat_eigenvalues_median']:.0f} with |lambda| < 1e-8, of {c['params']}; Spearman of raw ratio and "
               f"loss: {_sp(c['spearman_ratio_loss_reached'])}.\n\n"
               f"**Phase 3** (trust-region Newton on L, at most {c['refine_iters']} iterations): "
               f"{c['refined_reached']} of {c['runs']} runs reached ||grad L|| <= {c['refine_tol']:g}")
        if c["refined_grad_norm_median_not_reached"] is not None:
            last = c["refined_not_reached_last_step"]
            # still moving: an accepted step in the last tenth of the iterations
            capped = sum(i >= 0.9 * c["refine_iters"] for i in last)
            stalled = sorted(i for i in last if i < 0.9 * c["refine_iters"])
            txt += ((f"; the other {len(last)} stopped at a median ||grad L|| of " if len(last) > 1 else
                     "; the other one stopped at ||grad L|| = ") + f"{c['refined_grad_norm_median_not_reached']:.1e} ("
                    + ", ".join(([f"{capped} still moving at the cap, with an accepted step in the last tenth of the iterations"] if capped else [])
                                + ([f"{len(stalled)} with no accepted step after iteration "
                                    + (", ".join(str(i) for i in stalled) if len(stalled) <= 4
                                       else f"{stalled[0]} to {stalled[-1]}")] if stalled else [])) + ")")
        drop = c["refined_loss_over_phase2_loss_median"]
        txt += (f". Meanwhile the loss fell to a median {drop:.2g} times its phase-2 value (median "
                f"{c['refined_loss_median']:.2g})" + (": the phase-2 points were not near critical points of L."
                                                      if drop <= 0.1 else "."))
        ec = c["end_counts_median"]
        txt += (f" Where phase 3 ended, counting an eigenvalue only where |lambda| > {c['resolve_factor']:g} ||grad L||, "
                f"a run has a median of {ec['negative']:.0f} negative, {ec['near_zero']:.0f} near-zero and "
                f"{ec['positive']:.0f} positive eigenvalues. Resolved ratio at each tolerance phase 3 passed (runs that "
                "got there): " + ", ".join(f"||grad L|| <= {t}: {v['resolved_ratio']:.3f} ({v['runs']} runs)"
                                           if v["runs"] else f"{t}: no run" for t, v in c["checkpoints"].items()) + ".")
        if c["refined_reached"]:
            ri = c["refine_iterations_reached"]
            txt += (f" The runs that reached it needed a median of {ri['median']:.0f} iterations (10th to 90th "
                    f"percentile {ri['p10_p90'][0]:.0f} to {ri['p10_p90'][1]:.0f}).")
            txt += (f" At the {c['refined_reached']} resolved points (largest ||grad L|| {c['max_grad_norm_refined']:.1e}): "
                    f"minimal ratio over the resolved eigenvalues {_m(c['minimal_ratio_resolved_mean'])} (raw "
                    f"{_m(c['minimal_ratio_refined_raw'])}); largest change of one run's resolved ratio from 1e-6 to "
                    f"1e-8: {c['resolved_ratio_max_change_1e-6_to_1e-8']:.3g}.")
        if "resolved_ratio_all_equal" in c:
            txt += (f" Every resolved point has the same resolved ratio, {c['resolved_ratio_all_equal']:.3f}, so there is "
                    "no variation to correlate with the loss" + (
                        ": no resolved eigenvalue is negative, so as far as the Hessian can tell these are local "
                        "minima. Phase 3 accepts only steps that lower L, so it is drawn to minima, not saddles; "
                        "saddles would need a method attracted to every critical point (Newton on grad L = 0)."
                        if c["resolved_ratio_all_equal"] == 1 else "."))
        if "spearman_resolved_ratio_loss" in c:
            txt += (f" Spearman of resolved ratio and loss (resolved runs, bootstrap 95% interval): "
                    f"{_sp(c['spearman_resolved_ratio_loss'])}; controlling for log ||grad L||: "
                    f"{_sp(c['partial_spearman_resolved_ratio_loss_given_grad_norm'])}.")
        b["1-2c"] = txt
    if want("1-2d"):
        s = x["1-2d"]
        b["1-2d"] = (f"Loss at the trained weights {s['centre_loss']:.4f}; highest loss on the random plane "
                     f"{s['random_plane_max']:.3g}; the PCA plane holds {s['pca_explained'][0]:.1f}% + "
                     f"{s['pca_explained'][1]:.1f}% of the trajectory's variance; {s['grid']} x {s['grid']} points per plane.")
    if want("1-3a"):
        rl = x["1-3a"]
        b["1-3a"] = _table(["labels", "train acc (%)", "test acc (%)", "first epoch with train acc >= 99%, per seed"], [
            [k, _m(rl[k]["train_acc"]), _m(rl[k]["test_acc"]),
             ", ".join("never" if e is None else str(e) for e in rl[k]["first_epoch_train_acc_99"])]
            for k in ("true", "random")]) + f"\n\n{rl['params']:,} parameters, {rl['train_subset']:,} training " \
            f"images, {rl['epochs']} epochs; mean ± 95% interval over {_n(rl['seeds'], 'seed')}."
    for name, what in (("1-3b", "acc"), ("1-3b-noise", "err")):
        if not want(name):
            continue
        p = x[name]
        b[name] = _table(["width", "params", f"train {what} (%)", f"test {what} (%)"], [
            [row["width"], f"{row['params']:,}", _m(row[f"train_{what}"]), _m(row[f"test_{what}"])]
            for row in p["rows"]]) + (
            f"\n\nLabel noise {p['label_noise']:.0%}, {p['epochs']} epochs, mean ± 95% interval over "
            f"{_n(p['seeds'], 'seed')}. Lowest test error at {p['min_test_err_params']:,} parameters, highest at "
            f"{p['max_test_err_params']:,}; " + (
                "training error never reaches 1%." if p["interpolation_params"] is None else
                f"training error first <= 1% at {p['interpolation_params']:,} parameters."))
    if want("1-3c"):
        ip = x["1-3c"]
        b["1-3c"] = _table(["pair", "ends (alpha 0 / 1)", "test acc, alpha 0 / 1 (%)", "lowest test acc between (%)",
                            "barrier (train loss)", "norm, alpha 0 / 1", "distance 0-1",
                            "moved from own init, alpha 0 / 1"], [
            [k, " / ".join(v["ends"]), f"{v['test_acc_end0']:.2f} / {v['test_acc_end1']:.2f}",
             f"{v['min_test_acc_between']:.2f}", f"{v['barrier']:.3g}", f"{v['norm_end0']:.3g} / {v['norm_end1']:.3g}",
             f"{v['distance']:.3g}", f"{v['moved_end0']:.3g} / {v['moved_end1']:.3g}"]
            for k, v in ip["pairs"].items()]) + "\n\n" + _table(
            ["end", "train loss", "epochs", "reached target", "test acc (%)", "slice rise at |t| = 0.5"], [
            [k, f"{v['train_loss']:.3f}", f"{v['epochs']:.0f}", "yes" if v["reached"] else "no",
             f"{100 * v['test_acc']:.2f}", f"{v['slice_rise']:.3g}"] for k, v in ip["ends"].items()]) + \
            f"\n\nEvery end trained until its training loss reached {ip['target_loss']:g} (at most " \
            f"{ip['max_epochs']} epochs). Pairs `batch` and `lr` share one initialisation (the protocol); in the " \
            "`_ctrl` pairs the second end starts from an independent seed (the control). Barrier: highest training " \
            "loss on [0, 1] minus the higher end. Slice rise: training loss a filter-normalised step of 0.5 away " \
            "from the end (mean of both sides) minus the loss at the end (Li et al. 2018), one random direction."
    if want("1-3d"):
        bs = x["1-3d"]
        head = ["labels", "batch", "epochs", "reached", "train loss", "train acc (%)", "test acc (%)",
                "test - train loss", "sensitivity"]
        b["1-3d"] = _table(head, [
            [lab, row["batch"], _m(row["epochs"], 1), f"{row['reached']}/{bs['seeds']}", _m(row["train_loss"], 3),
             _m(row["train_acc"]), _m(row["test_acc"]), _m(row["gap"], 3), _m(row["sensitivity"], 3)]
            for lab, rows in (("true", bs["rows"]), ("random", bs["random_rows"])) for row in rows]) + \
            f"\n\nEvery model trained until its training loss reached {bs['target_loss']:g} (at most " \
            f"{bs['max_epochs']} epochs; 'reached' counts the seeds that did). Mean ± 95% interval over " \
            f"{_n(bs['seeds'], 'seed')}. Random-label models: the first {bs['random_label_subset']:,} training " \
            "images with random labels, test labels true. Spearman of sensitivity and gap (bootstrap 95% " \
            f"interval), true labels: {_sp(bs['spearman_sensitivity_gap'])}; with the random-label models: " \
            f"{_sp(bs['spearman_sensitivity_gap_with_random'])}."
    if want("1-3e"):
        sh = x["1-3e"]
        b["1-3e"] = _table(["batch", *[f"sharpness, eps {e:g}" for e in sh["epsilons"]],
                            f"sharpness, eps {sh['epsilons'][0]:g}, L-BFGS-B", "top Hessian eigenvalue"], [
            [row["batch"], *[_m(v) for v in row["sharpness"]], _m(row["sharpness_lbfgsb"]), _m(row["top_eig"])]
            for row in sh["rows"]]) + \
            f"\n\nThe true-label models of 1-3d (training loss {sh['target_loss']:g}); mean ± 95% interval over " \
            "their seeds. Sharpness maximised by projected sign ascent, and (as Keskar et al.) by 10 iterations of " \
            "L-BFGS-B in the same box. Spearman of sharpness (first epsilon) and batch size: " \
            f"{_sp(sh['spearman_sharpness_batch'])}."
    return b


_MARKER = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def apply_blocks(text: str, generated: dict[str, str]) -> str:
    """`text` with every marked block replaced by its generated content."""
    return _MARKER.sub(lambda m: m.group(1) + generated[m.group("name")] + "\n" + m.group(4), text)


PUBLISHED = {
    "1-3a": ("Zhang et al. 2017", "random labels reach 100% train accuracy; test accuracy at chance (~10%)"),
    "1-3e": ("Keskar et al. 2017", "MNIST fully connected: sharpness at eps 1e-3 about 1.2 (small batch) vs "
                                   "205 (large batch); test accuracy 98.0% vs 97.8%"),
    "1-3d": ("Novak et al. 2018", "input-Jacobian norm grows with the generalization gap; large batches and "
                                  "random labels raise it"),
    "1-2c": ("Dauphin et al. 2014", "at critical points, training error falls as the fraction of positive "
                                    "eigenvalues (minimal ratio) rises"),
    "1-2d": ("Li et al. 2018", "filter-normalised random planes show the loss basin around a trained net"),
}


def results_md(results: dict) -> str:
    """RESULTS.md: every headline block, with the published result beside it."""
    from .experiments import experiment

    gen = blocks(results)
    parts = ["# Results", "",
             f"Generated by `python -m hw1lib.tables --write` (run by `make report`) from `figures/results.json` "
             f"(profile **{results['profile']}**, {results.get('device', '?')}, commit `{results['commit']}`): do not edit by hand. "
             "Regenerate everything with `make report`; check with `python -m hw1lib.tables --check`.", ""]
    for name, body in gen.items():
        e = experiment(name)
        parts += [f"## {e.name} {e.title} (`notebooks/{e.notebook}`)", "", body, ""]
        if name in PUBLISHED:
            who, what = PUBLISHED[name]
            parts += [f"**Published ({who}):** {what}.", ""]
    return "\n".join(parts).rstrip() + "\n"


def render(results: dict, readme: str) -> tuple[str, str]:
    """(README text, RESULTS.md text) generated from `results`."""
    return apply_blocks(readme, blocks(results)), results_md(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="compute headlines from the cache, write all three files")
    mode.add_argument("--check", action="store_true", help="fail if README.md or RESULTS.md differ from "
                                                           "what figures/results.json generates")
    ap.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    root = repo_root()
    readme = (root / README).read_text()
    if args.write:
        text = json.dumps(headlines(args.profile, args.device), indent=1, sort_keys=True) + "\n"
        (root / RESULTS_JSON).write_text(text)
        results = json.loads(text)  # render from exactly what --check will read
    elif not (root / RESULTS_JSON).is_file():
        print(f"error: {RESULTS_JSON} does not exist; run `make report` (full profile) to write it.",
              file=sys.stderr)
        return 1
    else:
        results = json.loads((root / RESULTS_JSON).read_text())
    want_readme, want_md = render(results, readme)
    if args.write:
        (root / README).write_text(want_readme)
        (root / RESULTS_MD).write_text(want_md)
        print(f"[tables] wrote {RESULTS_JSON}, the README's tables and {RESULTS_MD} (profile {args.profile})")
        return 0
    stale = [str(p) for p, want in ((README, want_readme), (RESULTS_MD, want_md))
             if not (root / p).is_file() or (root / p).read_text() != want]
    if stale:
        print(f"error: {', '.join(stale)} differ from what {RESULTS_JSON} generates; run "
              "`python -m hw1lib.tables --write` (or `make report`) instead of editing numbers by hand.",
              file=sys.stderr)
        return 1
    print(f"[tables] README.md and {RESULTS_MD} agree with {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
