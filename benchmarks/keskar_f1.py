"""Keskar et al.'s network F1 trained to their stopping rule, with the seeds and the epoch cap a CPU
cannot afford in the full profile (issue 37: 5 seeds per regime, at most 200 epochs), on a GPU:

    python benchmarks/keskar_f1.py --device cuda --json OUT.json [--seeds 5] [--max-epochs 200] [--profile full]

Computes only 1-3e's F1 units (into the results cache, HW1LIB_RESULTS) with those settings, then writes
what the report would quote: per regime and condition the per-seed sharpness, epochs and whether the
stopping rule fired; the large/small ratio of geometric means with Welch's log-scale interval; the
sharpness with the layers feeding each batch normalisation rescaled, and the weight norms. The smoke
profile runs it on a CPU in seconds (how it is tested)."""
from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--profile", default="full")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)

    from hw1lib.experiments import experiment
    from hw1lib.experiments.e1_3e_keskar import _gmean_ratio, _h_keskar, keskar_parts
    from hw1lib.experiments.e1_3e_sharpness import _compute_keskar, sharpness_units

    E = experiment("1-3e")
    cfg = E.make_config(args.profile, args.device, {"1-3e": {"keskar.networks": ["f1"],
                                                             "keskar.f1_seeds": list(range(args.seeds)),
                                                             "keskar.max_epochs": args.max_epochs}})
    t0 = time.perf_counter()
    units = [u for u in sharpness_units(cfg) if u.compute is _compute_keskar]
    parts = [u(progress=False) for u in units]
    seconds = time.perf_counter() - t0
    kf = _h_keskar(*keskar_parts(parts), cfg.keskar)
    out = {"device": args.device, "profile": args.profile, "seeds": args.seeds, "max_epochs": args.max_epochs,
           "seconds": round(seconds, 1), "keskar_f1": kf, "ratio_at_stop": _gmean_ratio(kf, "f1")}
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
    print(f"[keskar_f1] {args.seeds} seeds per regime, at most {args.max_epochs} epochs, {seconds:.0f} s: "
          f"large/small {out['ratio_at_stop']}; rule met "
          + ", ".join(f"{k}: {sum(v['rule_met'])}/{len(v['rule_met'])}" for k, v in kf["runs"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
