"""``tdw zoom --auto``'s detectors (``tasks.transitions``) on synthetic series whose transitions
are known, and the plan that densifies them within a budget."""

import numpy as np

from tasks import transitions

N, TEST_EVERY = 10_000, 10


def _series(spike: bool = True, bump: bool = True) -> dict[str, np.ndarray]:
    """Memorised by 500 (test loss peak 10^1.5 at 1,000); generalises 3,200-3,800 (test accuracy
    0.01 -> 1, centre 3,500); cleanup 6,000-6,500 (test loss 10^-2 -> 10^-7); a train-loss
    spike at 8,000-8,050 (x1000); a test-loss bump of a decade at 7,000-7,300."""
    e = np.arange(N, dtype=float)
    sig = lambda x, c, w: 1 / (1 + np.exp(-(x - c) / w))  # noqa: E731
    acc = 0.01 + 0.99 * sig(e, 3500, 60)
    log_test = 1.5 - 1.5 * sig(e, 3500, 80) * 2.0 - 5 * sig(e, 6250, 40)
    log_test = np.where(e < 1000, 1.5 * e / 1000, log_test)
    if bump:
        log_test += np.interp(e, [7000, 7150, 7300], [0, 1, 0])
    log_train = np.where(e < 500, 0.5 - 6.5 * e / 500, -6.0)
    if spike:
        log_train = log_train + np.where((e >= 8000) & (e <= 8050), 3.0, 0.0)
    tested = e % TEST_EVERY == 0
    return {"train_loss": 10 ** log_train, "test_loss": np.where(tested, 10 ** log_test, np.nan),
            "test_acc": np.where(tested, acc, np.nan), "train_acc": np.ones(N)}


def _one(windows, kind):
    (w,) = [w for w in windows if w.kind == kind]
    return w


def test_each_known_transition_is_found_where_it_is():
    found = transitions.find(_series())
    g = _one(found, "generalisation")
    assert 3200 <= g.start <= 3450 and 3550 <= g.end <= 3800
    c = _one(found, "cleanup")
    assert 6000 <= c.start <= 6250 <= c.end <= 6500
    s = _one(found, "loss spike")
    assert s.start <= 8000 and 8050 <= s.end <= 8100 and "1000x" in s.why
    d = _one(found, "second descent")
    assert 7100 <= d.start <= 7200 and 7250 <= d.end <= 7400
    assert [w.start for w in found] == sorted(w.start for w in found)


def test_a_quiet_run_has_no_spike_and_no_second_descent():
    kinds = {w.kind for w in transitions.find(_series(spike=False, bump=False))}
    assert kinds == {"generalisation", "cleanup"}


def test_a_run_that_never_generalises_has_no_window_for_it():
    s = _series(spike=False, bump=False)
    s["test_acc"] = np.where(np.isnan(s["test_acc"]), np.nan, 0.01)
    assert "generalisation" not in {w.kind for w in transitions.find(s)}


def test_the_budget_is_shared_by_length_inside_the_windows_and_skips_existing_checkpoints():
    windows = [transitions.Window("a", 100, 199, ""), transitions.Window("b", 1000, 1299, "")]
    plan = transitions.densify(windows, 8, existing={133})
    assert sum(map(len, plan.values())) <= 8 and len(plan[windows[1]]) == 6
    assert all(100 <= e <= 199 for e in plan[windows[0]]) and 133 not in plan[windows[0]]
    assert len(plan[windows[0]]) == 1  # two asked, one of them an existing checkpoint


def test_auto_reads_the_series_up_to_the_last_epoch_trained_and_says_what_it_adds(monkeypatch, capsys):
    from types import SimpleNamespace

    from cli.zoom import epochs_asked
    from tasks import zoom
    from tasks.config import preset

    # stored series run to the end (a cleanup at 6,000, a spike at 8,000), but training stopped
    # at 5,000: only the generalisation at 3,200-3,800 has happened
    monkeypatch.setattr(zoom, "open_run", lambda root, run_id, mode="r": SimpleNamespace(series=_series))
    monkeypatch.setattr(zoom, "trained_through", lambda root, run_id: 5_000)
    cfg = preset("smoke", num_epochs=N, checkpoint_epochs=(0, 3000, 3400, N - 1))
    args = SimpleNamespace(auto=True, start=None, stop=None, every=None, count=None, root="/runs", budget=12)
    epochs = epochs_asked(args, cfg)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("generalisation at epochs ") and line.endswith(f"1 checkpoint(s) there, +{len(epochs)}")
    assert 6 <= len(epochs) <= 12 and all(3200 <= e <= 3800 for e in epochs) and 3400 not in epochs
