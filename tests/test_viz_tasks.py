"""The viewer on a run of another task: its task and basis read from the store, frequency and
operand axes labelled in that basis (a synthetic ``mul`` store at p = 7)."""

import numpy as np
import pytest

from viz import data, neurons
from viz.viewer import App


def _image(view) -> np.ndarray:
    """The values an image view shows (the neuron grid sends only their colours)."""
    return view.image if isinstance(view, neurons.NeuronGrid) else np.asarray(view.source.data["image"][0])


MUL_VALUES = (1, 5, 4, 6, 2, 3)  # 5^i mod 7, i = 0..5: the operands of mul at p = 7 in log order base 5


def synthetic_mul_run(root: str, run_id: str = "p7-mul") -> None:
    """A tiny store as the analyses write one for ``mul`` at p = 7 (Z_6 over discrete logs base
    5, a primitive root other than the registry's 3, so that what is shown is the store's):
    operand axes of n = 6 in log order, components const .. cos 3 (the top frequency with no
    sine), frequencies 1..3, two analysed epochs of made-up values."""
    from store.run_store import create_run

    epochs, n, d_mlp = [0, 9], 6, 8
    config = {"p": 7, "task": "mul", "model": {"d_mlp": d_mlp, "n_heads": 1}, "lr": 1e-3, "weight_decay": 1.0,
              "frac_train": 0.5, "seed": 1, "data_seed": 2, "num_epochs": 10, "checkpoint_epochs": epochs}
    st = create_run(root, run_id, config, epochs, {"p": 7, "d_mlp": d_mlp, "n_heads": 1, "num_epochs": 10})
    g = st.group
    labels = ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3"]
    for name, values in (("a", MUL_VALUES), ("b", MUL_VALUES), ("component", labels), ("freq", [1, 2, 3])):
        del g[name]
        values = np.asarray(values)
        g.create_array(name, shape=values.shape, dtype=str if values.dtype.kind == "U" else values.dtype,
                       dimension_names=(name,), fill_value=None if values.dtype.kind == "U" else 0)[:] = values
    del g["freq_label"]
    g.attrs.update({"dim_sizes": {**g.attrs["dim_sizes"], "a": n, "b": n, "component": n, "freq": 3},
                    "task": "mul", "task_formula": "(a · b) mod p", "basis_kind": "fourier", "generator": 5,
                    "basis": "Fourier basis of Z_6 over discrete logs base 5"})
    rng = np.random.default_rng(0)
    arrays = {"embedding_spectrum": (("component",), (n,)), "neuron_activations": (("neuron", "a", "b"), (d_mlp, n, n)),
              "neuron_freq_fraction": (("neuron", "freq"), (d_mlp, 3))}
    for name, (dims, shape) in arrays.items():
        arr = g.create_array(name, shape=(2, *shape), dtype="float32", dimension_names=("epoch", *dims),
                             fill_value=np.nan, attributes={"analysis": name, "long_name": name})
        arr[:] = rng.random((2, *shape), dtype=np.float32)
        done = g.create_array(f"{name}_done", shape=(2,), dtype="int64", dimension_names=("epoch",), fill_value=0)
        done[:] = 1
    series = {k: np.linspace(0, 1, 10) for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
    st.write_series(series, 0, 10)


def test_a_mul_run_is_shown_in_its_basis(tmp_path, smoke_run):
    """Task and basis come from the store: the side panel names them, the picker labels runs by
    task, the frequency axes run k = 1..3 (n = 6, the top frequency a lone cos), the operand axes
    say they are in log order; nothing assumes p × p or (p - 1)/2."""
    import shutil

    from store import layout

    root = str(tmp_path)
    synthetic_mul_run(root)
    smoke_root, cfg = smoke_run
    shutil.copytree(layout.run_dir(smoke_root, cfg.run_id), layout.run_dir(root, cfg.run_id))
    data.forget()
    app = App(root, run="p7-mul")
    assert app.run_select.options == {"p7-mul · mul": "p7-mul", f"{cfg.run_id} · add": cfg.run_id}
    view = app.view
    assert "**task** mul, (a · b) mod p" in view.info.object
    assert "**basis** Fourier basis of Z_6 over discrete logs base 5" in view.info.object
    spectrum = view.views["embedding_spectrum"]
    assert list(spectrum.source.data["x"]) == ["const", "cos 1", "sin 1", "cos 2", "sin 2", "cos 3"]
    assert list(spectrum.source.data["pos"]) == pytest.approx([0, 0.8, 1.2, 1.8, 2.2, 2.8])
    assert "Z_6 over discrete logs base 5" in spectrum.figure.xaxis[0].axis_label
    heat = view.views["neuron_heatmap"]
    assert _image(heat).shape == (6, 6)
    assert heat.figure.xaxis[0].axis_label == "b = 5^j (j = log₅ b, in log order)"
    assert heat.figure.yaxis[0].axis_label == "a = 5^i (i = log₅ a, in log order)"
    nf = view.views["neuron_frequencies"]
    assert _image(nf).shape == (8, 3) and (nf.figure.x_range.start, nf.figure.x_range.end) == (0.5, 3.5)
    assert "discrete logs base 5" in nf.figure.xaxis[0].axis_label
    assert _image(view.views["neuron_grid"]).shape[1] % (6 + view.views["neuron_grid"].gap) == 6
    app.run_select.value = cfg.run_id  # an add run
    assert "**task** add, (a + b) mod p" in app.view.info.object and "Fourier basis of Z_31" in app.view.info.object
    assert app.view.views["neuron_heatmap"].figure.xaxis[0].axis_label == "b"
