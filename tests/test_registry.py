"""The registry is the one list: an experiment declared in one place runs
through the runner, its headline numbers, its generated text, verify's checks
and tables; `--set` overrides are checked like configs."""
from __future__ import annotations

import dataclasses
import json

import pytest

import hw1lib.experiments as ex
from hw1lib import tables, verify
from hw1lib.config import command_line_values, parse_sets
from hw1lib.errors import ConfigError
from hw1lib.run import main, run_all
from toy import ToyConfig


@pytest.fixture
def with_toy(toy, monkeypatch, tmp_path):
    """The registry with TOY added, and a fresh results directory."""
    monkeypatch.setenv("HW1LIB_RESULTS", str(tmp_path / "results"))
    return toy


def test_a_toy_experiment_declared_in_one_place_runs_through_runner_headline_and_tables(with_toy):
    rec = run_all("quick", "cpu", ["toy"], progress=False, log=lambda s: None)
    assert not rec["failures"] and list(rec["experiments"]) == ["toy"]
    assert len([u for u in rec["units"] if u.startswith("toy_size/")]) == 3        # one unit per size
    e = ex.experiment("toy")
    cfg = e.make_config("quick", "cpu")
    h = e.headlines(cfg)
    assert [row["size"] for row in h["rows"]] == [2, 3, 4]
    assert h["rows"][1]["value"]["mean"] == pytest.approx(3, abs=0.01)
    assert all(u.is_cached() for u in e.units(cfg))                                # the runner filled the cache
    # tables: the block, the README markers and RESULTS.md come from the declaration
    results = {"profile": "quick", "commit": "x", "device": "cpu", "experiments": {"toy": h}}
    readme = "a\n<!-- results:toy -->\nold\n<!-- /results:toy -->\nb\n"
    new_readme, md = tables.render(results, readme)
    assert "| size | value \\| mean |" in new_readme and "old" not in new_readme
    assert "## toy toy experiment (`notebooks/toy.ipynb`)" in md and "Nobody 2026" in md
    # verify: its checks are exported and compared like every other experiment's
    got = verify.checks(["toy"], "quick", "cpu")["toy"]
    assert set(got) == {"value[size=2]", "value[size=3]", "value[size=4]"} and len(got["value[size=3]"]["values"]) == 3


def test_set_overrides_reach_the_config_and_bad_ones_are_one_line_exit_2(with_toy, capsys):
    sets = parse_sets(["toy.seeds=0,1", "toy.sizes=5"], ["toy"])
    assert sets == {"toy": {"seeds": (0, 1), "sizes": 5}}
    cfg = ex.experiment("toy").make_config("quick", "cpu", **command_line_values(ToyConfig, sets["toy"]))
    assert cfg.seeds == (0, 1) and cfg.sizes == (5,)                                # one value of a tuple field
    assert ex.experiment("toy").make_config("quick", "cpu", seeds=[4, 5]).seeds == (4, 5)   # JSON lists too
    with pytest.raises(ConfigError, match="must be a non-empty tuple"):             # in Python, a tuple is a tuple
        ex.experiment("toy").make_config("quick", "cpu", sizes=5)
    rec = run_all("quick", "cpu", ["toy"], progress=False, log=lambda s: None,
                  overrides={"toy": command_line_values(ToyConfig, sets["toy"])})
    assert [u for u in rec["units"] if u.startswith("toy_size/")] and not rec["failures"]
    for bad, words in (("nope.seeds=1", "unknown experiment 'nope'"), ("toy.sedes=1", "Unknown ToyConfig key"),
                       ("toy.seeds=-1", "ToyConfig.seeds = -1: must be an integer >= 0"),
                       ("toy.sizes=1.5", "must be an integer >= 1"), ("toy=1", "expected NAME.FIELD=VALUE")):
        assert main(["--profile", "quick", "--device", "cpu", "--only", "toy", "--set", bad, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err


def test_an_experiment_that_reads_another_takes_its_config_and_its_sets():
    """1-3e's sweep is 1-3d's config, not a copy: a --set of 1-3d reaches 1-3e
    (the issue-35 bug: 1-3e trained 1-3d models for the default batch sizes);
    a nested --set works where the field is 1-3e's own and is refused, naming
    where to set it, where it is 1-3d's. 1-3d's grid rules train at grid_batch_sizes, so a sweep of other
    batch sizes names them too (a sweep that left the grid out would be refused, naming its field)."""
    sets = ex.overrides(["1-3d.batch_sizes=16,64", "1-3d.grid_batch_sizes=16,64", "1-3e.keskar.f1_seeds=3"],
                        "smoke", "cpu")
    d, e = ex.experiment("1-3d"), ex.experiment("1-3e")
    cfg = e.make_config("smoke", "cpu", sets)
    assert cfg.sweep == d.make_config("smoke", "cpu", sets) and cfg.sweep.batch_sizes == (16, 64)
    assert cfg.keskar.f1_seeds == (3,) and cfg.keskar.f1_width == e.make_config("smoke", "cpu").keskar.f1_width
    assert [u.config.sweep.batch_sizes for u in e.units(cfg) if u.key == "sharpness_batch"] == [(16,), (64,)]
    assert "1-3d" in e.after and "1-2a" in ex.experiment("1-2d").after
    with pytest.raises(ConfigError, match=r"grid_batch_sizes: 256 not among batch_sizes \(16, 64\)"):
        ex.overrides(["1-3d.batch_sizes=16,64"], "smoke", "cpu")
    with pytest.raises(ConfigError, match=r"1-3e's sweep is 1-3d's config .* --set 1-3d.seeds=VALUE"):
        ex.overrides(["1-3e.sweep.seeds=0,1"], "smoke", "cpu")
    with pytest.raises(ConfigError, match="Unknown KeskarConfig key"):
        ex.overrides(["1-3e.keskar.nope=1"], "smoke", "cpu")
    with pytest.raises(ConfigError, match="epsilons is not a nested config"):
        ex.overrides(["1-3e.epsilons.x=1"], "smoke", "cpu")
    # a notebook's overrides with a misspelled experiment: an error naming the valid ones, not ignored
    with pytest.raises(ConfigError, match=r"unknown experiment\(s\) '1-2B'; choose from: 1-1a"):
        ex.experiment("1-2b").make_config("smoke", "cpu", {"1-2B": {"seeds": [0]}})


def test_figures_and_readings_are_named_once_in_the_notebooks():
    """RESULTS.md's figures and readings come from the notebooks (tables.notebook_parts):
    every figure a notebook saves belongs to an experiment of that notebook, every
    experiment has at least one, and a reading names an experiment of its notebook."""
    import re

    for nb in ex.notebooks():
        parts = tables.notebook_parts(nb)
        mine = {e.name for e in ex.REGISTRY if e.notebook == nb}
        assert set(parts) <= mine and all(parts.get(n, {}).get("figures") for n in mine), (nb, parts)
        text = (tables.repo_root() / "notebooks" / nb).read_text()
        saved = re.findall(r'save_figure\(fig, \\"([\w-]+)\\"', text)
        assert sorted(saved) == sorted(f for p in parts.values() for f in p["figures"]), nb


def test_an_empty_only_is_refused_not_read_as_everything(capsys):
    assert main(["--profile", "smoke", "--only", "", "--no-progress"]) == 2
    assert "names nothing" in capsys.readouterr().err


def test_every_registered_experiment_declares_everything():
    for e in ex.REGISTRY:
        assert e.compute or e.plan, e.name
        assert callable(e.headline) and callable(e.block) and callable(e.checks), e.name
        assert set(e.profiles) == {"smoke", "quick", "full"}, e.name
        assert all(a in {x.name for x in ex.REGISTRY} for a in e.after), e.name
    committed = json.loads((tables.repo_root() / tables.RESULTS_JSON).read_text())
    assert set(committed["experiments"]) == {e.name for e in ex.REGISTRY}


def test_a_repeated_seed_or_sweep_point_is_refused_and_layer_widths_may_repeat():
    """--set 1-3d.seeds=0,0 gave n = 2 and zero-width intervals: one run counted twice."""
    for items in (["1-3d.seeds=0,0"], ["1-3b.widths=8,8"], ["1-3e.keskar.f1_seeds=1,1"], ["1-1a.lrs=0.01,0.01"]):
        with pytest.raises(ConfigError, match="is given twice"):
            ex.overrides(items, "smoke", "cpu")
    assert ex.experiment("1-3d").make_config("smoke", "cpu", hidden=(8, 8)).hidden == (8, 8)
    assert ex.experiment("1-2c").make_config("smoke", "cpu").widths == (10, 10)


def test_a_config_check_runs_when_the_config_is_built():
    with pytest.raises(ConfigError, match="seeds and sweep_seeds must be disjoint"):
        ex.experiment("1-1a").make_config("smoke", seeds=(0, 100), sweep_seeds=(100,))
    with pytest.raises(ConfigError, match="datasets: unknown"):
        ex.experiment("1-1b").make_config("smoke", datasets=("cifar",))
    cfg = ex.experiment("1-1a").make_config("smoke")
    with pytest.raises(ConfigError, match="disjoint"):                              # and again before units
        ex.experiment("1-1a").units(dataclasses.replace(cfg, seeds=(100,)))
