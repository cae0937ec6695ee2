"""BPA training across two worker processes with MultiWorkerMirroredStrategy."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerastransfer.methods.bpa import BPAModel

TIMEOUT = 240
WORKER = pathlib.Path(__file__).with_name("multiworker_worker.py")


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_end_with_identical_weights(tmp_path, load_module):
    worker = load_module(WORKER)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        cmd = [
            sys.executable,
            str(WORKER),
            "--out",
            str(tmp_path / f"w{index}.npz"),
            "--epochs",
            "2",
            "--samples",
            "48",
            "--batch-size",
            "16",
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            outputs.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        pytest.fail("multi-worker training did not finish in time")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rc, _, err in outputs:
        assert rc == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outputs]
    assert [r["replicas"] for r in reports] == [2, 2]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"])  # losses are global means
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert sorted(w0.files) == sorted(w1.files)
    for name in w0.files:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    gamma = [k for k in w0.files if k.endswith("gamma_conv1")]
    assert gamma and not np.all(w0[gamma[0]] == 1.0)  # Gamma was computed (summed over workers)
    # Gamma of epoch 0 comes from the initial weights on the whole set: each worker saw half of
    # the batches, so it matches a one-process computation only if the counts were summed.
    assert reports[0]["gamma"] == reports[1]["gamma"]
    keras.utils.set_random_seed(0)
    model = BPAModel(worker.synced_cnn(num_classes=4), gamma="agreement")
    x, y = worker.synthetic(48, 4, 0)
    expected = model.compute_gamma(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))["conv1"]
    np.testing.assert_allclose(reports[0]["gamma"][0]["conv1"], expected, rtol=1e-5)
