"""Optional dependencies: a base install imports none of them, and each feature that needs one
fails with one line naming the extra to install."""

import configparser
import json
import pathlib
import subprocess
import sys

import pytest

from kerastransfer._extras import EXTRAS, require

REPO = pathlib.Path(__file__).resolve().parents[1]

# Runs with every optional package made unimportable, as on `pip install kerastransfer`.
_WITHOUT_EXTRAS = """
import contextlib, io, json, os, sys
for name in {blocked!r}:
    sys.modules[name] = None
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

from kerastransfer import *  # noqa
import kerastransfer
from kerastransfer.callbacks import LRFinder
from kerastransfer.cli import main
from kerastransfer.export import export_serving, load_predictor
from kerastransfer.models import small_cnn

out = {{"loaded": sorted(n for n in {blocked!r} if sys.modules.get(n) is not None)}}
tmp = sys.argv[1]


def error(call):
    try:
        call()
    except ImportError as e:
        return str(e)
    return None


model = small_cnn((8, 8, 1), 2, filters=(2, 2), dense=4)
export = os.path.join(tmp, "export")
out["export"] = error(lambda: export_serving(model, export, formats=("saved_model", "onnx")))
out["export_written"] = os.path.exists(export)
open(os.path.join(tmp, "model.onnx"), "wb").close()
out["predict"] = error(lambda: load_predictor(os.path.join(tmp, "model.onnx")))
out["search"] = error(lambda: kerastransfer.tuning.search("embedded:mnist"))
out["hypermodel"] = error(lambda: kerastransfer.TransferHyperModel)
out["plot"] = error(lambda: LRFinder().plot(os.path.join(tmp, "lr.png")))
os.makedirs(os.path.join(tmp, "preset"))
with open(os.path.join(tmp, "preset", "config.json"), "w") as f:
    f.write("{{}}")  # a KerasHub preset folder, as far as kerastransfer can tell without keras-hub
out["hub"] = error(lambda: kerastransfer.load_source(os.path.join(tmp, "preset")))
for command, argv in {{
    "tune": ["tune", "embedded:mnist", "--directory", os.path.join(tmp, "tune")],
    "fit": ["fit", "MobileNetV2", "embedded:mnist", "--export", export, "--formats", "onnx"],
}}.items():
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(argv)
    out[command] = [code, stderr.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory):
    script = _WITHOUT_EXTRAS.format(blocked=tuple(EXTRAS))
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path_factory.mktemp("extras"))],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_kerastransfer_imports_without_any_optional_package(without_extras):
    assert without_extras["loaded"] == []


@pytest.mark.parametrize(
    "feature,package,extra",
    [
        ("export", "tf2onnx", "export"),
        ("predict", "onnxruntime", "export"),
        ("search", "keras-tuner", "tune"),
        ("hypermodel", "keras-tuner", "tune"),
        ("plot", "matplotlib", "plot"),
        ("hub", "keras-hub", "hub"),
    ],
)
def test_a_feature_without_its_extra_names_the_extra_in_one_line(
    without_extras, feature, package, extra
):
    message = without_extras[feature]
    assert message is not None, f"{feature} ran without its optional package"
    assert "\n" not in message
    assert f"needs the optional package '{package}'" in message
    assert message.endswith(f"pip install 'kerastransfer[{extra}]'")


def test_export_without_its_extra_writes_nothing(without_extras):
    assert without_extras["export_written"] is False


@pytest.mark.parametrize("command,extra", [("tune", "tune"), ("fit", "export")])
def test_the_command_prints_the_missing_extra_as_one_line_and_exits_2(
    without_extras, command, extra
):
    code, stderr = without_extras[command]
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"kerastransfer {command}: error: ")
    assert stderr.rstrip().endswith(f"pip install 'kerastransfer[{extra}]'")


def test_require_returns_an_installed_module():
    assert require("onnx.defs", "Checking an ONNX graph").has("Relu")


def test_require_refuses_a_module_of_no_extra():
    with pytest.raises(ValueError, match="`module` must belong to one of"):
        require("numpy", "Anything")


def test_setup_cfg_extras_match_the_table_and_test_installs_them_all():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    extras = {
        name: set(config["options.extras_require"][name].split())
        for name in config["options.extras_require"]
    }
    base = config["options"]["install_requires"]
    for extra, distribution in EXTRAS.values():
        pins = {p for p in extras[extra] if p.split("==")[0] == distribution}
        assert pins, f"{distribution} is not in the {extra!r} extra"
        assert distribution not in base, f"{distribution} is a hard requirement"
        assert pins <= extras["test"], f"`test` does not install {pins}"
