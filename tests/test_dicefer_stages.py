"""DICE-FER between epochs: a constructed stage-1 collapse is reported with what to try (method, engine log,
metrics), stage 1 stops when its MI plateaus, and stage 3's classifier reaches a converged logistic
regression's accuracy on the same frozen E."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

from ferkit.config import build_experiment
from ferkit.data.labels import SYNTHFER
from ferkit.data.torch_dataset import FERDataset
from ferkit.data.transforms import build_transform
from ferkit.engine.method import StepContext
from ferkit.methods.dicefer_stages import Stage1Monitor, converge_classifier
from ferkit.methods.registry import get_method
from ferkit.models.dicefer import ExpressionClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"image_size": 32, "critic_hidden": 16, "disc_hidden": [16, 8], "classifier_hidden": [16, 8],
        "augment": "none", "align": "none"}


def tiny_method(**model):
    cfg = build_experiment("dicefer", data={"dataset": "synthetic"}, model={**TINY, **model})
    return get_method("dicefer")(cfg, SYNTHFER, torch.device("cpu"))


def test_a_constructed_collapse_is_reported_with_what_to_try():
    """Heads zeroed: E is the same constant for every image, so its variance and the MI estimate are 0."""
    method = tiny_method(stage1_epochs=1)
    for enc in method.nets["exp_encoders"].values():
        torch.nn.init.zeros_(enc.head.weight)
    phase = method.phases()[0]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    method.on_phase_start(phase)
    method.train_mode(phase)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        out = method.train_step(phase, {"image": torch.randn(8, 1, 32, 32, generator=gen),
                                        "image_pair": torch.randn(8, 1, 32, 32, generator=gen),
                                        "expression": torch.arange(8) % 7}, ctx)
        assert out["e_collapsed"] == 1.0 and out["e_var_m"] < 1e-4    # (the steps move it off 0 a little)
    method.on_epoch_end(phase, 0)
    warnings = [text for level, text in method.epoch_messages(phase) if level == "warning"]
    assert any("collapsing" in w and "delta_warmup_steps" in w for w in warnings), warnings
    assert any("~0 nats" in w for w in warnings), warnings
    assert method.run_notes()["stage1"]["warnings"] == warnings


def test_healthy_codes_raise_no_collapse_warning():
    monitor = Stage1Monitor(collapse_var=1e-3, collapse_mi=0.05)
    for _ in range(5):
        monitor.add(mi=1.2, e_var=0.07)
    assert monitor.end_epoch(0, budget=10) == []


def test_stage1_stops_when_its_mi_plateaus_and_says_so_otherwise():
    flat = Stage1Monitor(patience=3, tol=0.02)
    for epoch, mi in enumerate([0.1, 0.5, 0.9, 1.0, 1.0, 0.99, 1.01]):
        flat.add(mi, 0.05)
        flat.end_epoch(epoch, budget=20)
        if flat.done:
            break
    assert epoch == 6 and "plateaued" in flat.done                # best 1.0 at epoch 4, no rise in 5-7
    rising = Stage1Monitor(patience=3, tol=0.02)
    for epoch, mi in enumerate([0.1, 0.3, 0.6, 0.9]):
        rising.add(mi, 0.05)
        notes = rising.end_epoch(epoch, budget=4)
    assert rising.done is None and "whole budget" in notes[-1][1] and "still rising" in notes[-1][1]


def _gaussian_codes(n: int, seed: int):
    protos = np.random.default_rng(99).normal(size=(7, 16))          # the same classes in every sample
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    x = 0.02 * (0.6 * protos[y] + rng.normal(size=(n, 16)))          # small scale, like a shrunk E
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y), np.repeat(np.arange(n // 10), 10)[:n]


def _lr_accuracy(x_tr, y_tr, x_te, y_te) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x_tr.numpy(), y_tr.numpy())
    return float(clf.score(x_te.numpy(), y_te.numpy()))


def test_converged_classifier_matches_logistic_regression_where_a_few_steps_do_not():
    x_tr, y_tr, groups = _gaussian_codes(1500, 0)
    x_te, y_te, _ = _gaussian_codes(1500, 1)
    reference = _lr_accuracy(x_tr, y_tr, x_te, y_te)
    torch.manual_seed(0)
    net = ExpressionClassifier(16, 7, (128, 64))
    report = converge_classifier(net, x_tr, y_tr, groups, seed=0)
    with torch.no_grad():
        acc = float((net(x_te).argmax(1) == y_te).float().mean())
    assert acc >= reference - 0.02, (acc, reference, report)
    torch.manual_seed(0)
    short = ExpressionClassifier(16, 7, (128, 64))                    # 60 Adam steps at 1e-4: the old stage 3
    opt = torch.optim.Adam(short.parameters(), lr=1e-4)
    for i in range(60):
        idx = slice(32 * (i % 40), 32 * (i % 40) + 32)
        loss = torch.nn.functional.cross_entropy(short(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        short_acc = float((short(x_te).argmax(1) == y_te).float().mean())
    assert short_acc < reference - 0.1, (short_acc, reference)


def test_stage3_on_frozen_E_reaches_logistic_regression_accuracy_on_unseen_identities():
    from ferkit.data.synthetic import render_synthfer

    synth = render_synthfer(identities=10, images_per_identity=24, size=32, seed=0)
    method = tiny_method(stage3_epochs=1, classifier_hidden=[128, 64])
    pre = method.preprocessing()

    def loader(split):
        return DataLoader(FERDataset(split, build_transform(pre, train=False), progress=False), batch_size=32)

    phase = method.phases()[2]
    ctx = StepContext(phase.optimizers, torch.device("cpu"), None)
    method.on_phase_start(phase)
    method.train_mode(phase)
    for b in loader(synth.splits["train"]):
        method.train_step(phase, b, ctx)
    method.on_epoch_end(phase, 0)
    notes = [text for _, text in method.epoch_messages(phase)]
    assert any("fit to convergence" in t for t in notes), notes

    def codes_and_accuracy(split):
        e, correct = [], 0
        for b in loader(split):
            p = method.predict(b["image"])
            e.append(p.embedding)
            correct += int((p.probs.argmax(1) == b["expression"]).sum())
        return torch.cat(e), torch.as_tensor(split.expressions), correct / len(split)

    e_tr, y_tr, _ = codes_and_accuracy(synth.splits["train"])
    e_te, y_te, acc = codes_and_accuracy(synth.splits["test"])
    reference = _lr_accuracy(e_tr, y_tr, e_te, y_te)
    assert acc >= reference - 0.02, (acc, reference, method.stage3_report)


def test_engine_logs_the_collapse_warning_and_keeps_it_in_metrics(tmp_path):
    """Through ``ferkit.engine.train``: the warning reaches log.txt, metrics.csv and metrics.json."""
    from ferkit.data.synthetic import render_synthfer
    from ferkit.engine.trainer import train

    synth = render_synthfer(identities=6, images_per_identity=8, size=32, seed=0)
    cfg = build_experiment("dicefer", data={"dataset": "synthetic"},
                           train={"epochs": 1, "batch_size": 8, "precision": "fp32", "device": "cpu",
                                  "out": str(tmp_path / "run"), "limit_batches": 2},
                           model={**TINY, "collapse_var": 1e9})              # every code counts as collapsed
    run = train(cfg, splits=synth.splits, progress=False)
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert any("collapsing" in w for w in metrics["warnings"]), metrics["warnings"]
    assert metrics["notes"]["stage1"]["stopped"] == "epoch budget"
    assert "collapsing" in (run.run_dir / "log.txt").read_text()
    assert "collapsing" in (run.run_dir / "metrics.csv").read_text()
