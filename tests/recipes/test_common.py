"""What every recipe shares (`recipes/_common.py`): bad input is one line and exit status 2, a
broken cache is named, and a recipe run as a script prints its own output only."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r != "determinism_cost"])
def test_every_recipe_runs_as_a_command(recipe):
    source = (REPO / "recipes" / f"{recipe}.py").read_text()
    assert source.rstrip().endswith(("run_recipe(main)", "run_recipe(main, sys.argv[1:])"))


def test_bad_input_exits_2_with_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "recipes/bpa_paper.py",
            "--pairs",
            "nope:usps",
            "--saved-models",
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "bpa_paper.py: error: Unknown dataset 'nope': not an embedded name, an .npz path, an "
        "image folder or a tensorflow-datasets name."
    ]


def test_a_broken_cache_is_named(tmp_path, load_recipe):
    common = load_recipe("_common")
    (tmp_path / "recipe").mkdir()
    cache = common.RunCache(str(tmp_path), "recipe")
    cache.get("run", lambda: 1.5)
    cache.path.write_text('{"run": 1.')  # cut short
    with pytest.raises(ValueError, match=r"runs_\w+\.json are unreadable .*Delete the file"):
        common.RunCache(str(tmp_path), "recipe")
    primary = tmp_path / "primary.keras"
    primary.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(ValueError, match=r"primary\.keras is unreadable.*Delete it"):
        common.train_or_load_primary(None, None, str(primary))


@pytest.mark.parametrize("value", ["28x28x1", "28,28", "28,0,1"])
def test_a_list_flag_of_the_wrong_form_names_the_flag(value, load_recipe, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_recipe("bpa_paper").parse_args(["--image-shape", value])
    assert exit_.value.code == 2
    assert "argument --image-shape: expected comma-separated positive integers (3 of them)" in (
        capsys.readouterr().err
    )
