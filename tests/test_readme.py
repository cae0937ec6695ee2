"""Every example in README.md runs, and its links lead somewhere.

README.md's fenced blocks, by language:

- `python`: run in README order in one namespace (a later example uses what an earlier one made),
  in a temporary working directory, one test per block. The examples are written small enough to
  run in seconds.
- `bash` (or `sh`): every line is a `kerastransfer ...` command, run at its place in that order,
  in the same working directory, through `kerastransfer.cli.main(argv)` (exit status 0), with
  `TINY[sub-command]` appended (argparse keeps a flag's last value) so that `fit` and `tune` take
  seconds; a block with `kerastransfer tune` (a search: half a minute even at one trial) is marked
  `slow`. The set-up block at the top of the page (install and main job; install and suite) is
  the one `bash` block not run here (`.ci/run` runs its second command).
- `console`: long real runs (recipes, benchmarks) and GPU runs: never run here.
- no language: what a program prints.

The working directory holds what the examples name as the user's own files, cut from the
embedded Fashion-MNIST sample: `my_images/` (a few PNGs) and `photos/` (an image folder, one
sub-folder per class). Blocks that use the ImageNet MobileNetV2 (`MobileNetV2`, and
`kerastransfer tune`, whose default source it is) take the weights from the `imagenet_weights`
fixture and skip where they are absent. After a failed block the later ones skip.
"""

import os
import pathlib
import re
import shlex

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LANGUAGES = {"python", "bash", "sh", "console", ""}
SHELL = {"bash", "sh"}
# Appended to a command of the README, by sub-command: a small run of the same command.
TINY = {
    "fit": ["--samples-per-class", "10", "--epochs", "1", "--verbose", "0"],
    "tune": ["--trials", "1", "--samples-per-class", "5", "--epochs", "1", "--verbose", "0"],
    "gap": ["--batches", "1"],
}


def fenced_blocks(path):
    """`(line, language, code)` of each fenced block of a Markdown file."""
    text = path.read_text()
    blocks = []
    for m in re.finditer(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return blocks


def is_setup_block(index, language, code):
    return index == 0 and language in SHELL and "pip install" in code


def commands(code):
    """The command lines of a shell block (comments and blank lines left out)."""
    lines = [line.split(" #")[0].strip() for line in code.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


BLOCKS = fenced_blocks(README)
RUNNABLE = [
    pytest.param(
        line,
        language,
        code,
        id=f"L{line}-{language}",
        marks=[pytest.mark.slow] if "kerastransfer tune" in code else [],
    )
    for i, (line, language, code) in enumerate(BLOCKS)
    if (language == "python" or language in SHELL) and not is_setup_block(i, language, code)
]


def test_every_block_follows_the_convention():
    assert BLOCKS and is_setup_block(0, *BLOCKS[0][1:]), "README.md starts with its set-up block"
    for i, (line, language, code) in enumerate(BLOCKS):
        assert language in LANGUAGES, f"README.md:{line}: unknown block language {language!r}"
        if language in SHELL and not is_setup_block(i, language, code):
            for command in commands(code):
                assert command.startswith("kerastransfer "), (
                    f"README.md:{line}: a `{language}` block holds `kerastransfer` commands only "
                    f"(a long run goes in a `console` block): {command!r}"
                )
    assert sum(language == "python" for _, language, _ in BLOCKS) >= 10


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", "recipes/README.md", "benchmarks/README.md"])
def test_relative_links_lead_to_a_file_and_heading(page):
    path = REPO / page
    assert path.is_file(), f"{page} is missing"
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{page}: link to a missing file: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{page}: no heading for {target}"


def _user_files(root):
    """`my_images/` (3 PNGs) and `photos/` (2 classes of 16 PNGs), from embedded Fashion-MNIST."""
    import importlib.resources

    import keras

    embedded = importlib.resources.files("kerastransfer.data") / "embedded" / "fashion_mnist.npz"
    with importlib.resources.as_file(embedded) as npz, np.load(npz) as arrays:
        x, y = arrays["x_test"], arrays["y_test"]
    x = x.reshape(*x.shape[:3], 1)
    (root / "my_images").mkdir()
    for i in range(3):
        keras.utils.save_img(root / "my_images" / f"{i}.png", x[i])
    for label, name in ((0, "tshirt"), (1, "trouser")):
        (root / "photos" / name).mkdir(parents=True)
        for i in np.flatnonzero(y == label)[:16]:
            keras.utils.save_img(root / "photos" / name / f"{i}.png", x[i])


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The examples' shared state: a working directory and a namespace."""
    root = tmp_path_factory.mktemp("readme")
    _user_files(root)
    before = os.getcwd()
    os.chdir(root)
    try:
        yield {"namespace": {"__name__": "readme"}, "failed": None}
    finally:
        os.chdir(before)


def _needs_weights(code):
    return "MobileNetV2" in code or "kerastransfer tune" in code


@pytest.mark.parametrize("line, language, code", RUNNABLE)
def test_readme_block_runs(line, language, code, session, request, capfd):
    if session["failed"]:
        pytest.skip(f"an earlier block failed (README.md:{session['failed']})")
    if _needs_weights(code):
        request.getfixturevalue("imagenet_weights")
    session["failed"] = line
    if language == "python":
        exec(compile(code, f"README.md:{line}", "exec"), session["namespace"])
    else:
        from kerastransfer.cli import main

        for command in commands(code):
            argv = shlex.split(command)[1:]
            rc = main(argv + TINY.get(argv[0], []))
            assert rc == 0, f"README.md:{line}: `{command}` exited {rc}: {capfd.readouterr().err}"
    session["failed"] = None
