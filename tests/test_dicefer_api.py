"""The seed README's DICEFER API: the usage snippet runs on ferkit loaders; plain loaders; save/load."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ferkit.data.pairs import PairDataset
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.records import DatasetSplit
from ferkit.data.synthetic import render_synthfer
from ferkit.data.torch_dataset import FERDataset
from ferkit.data.transforms import build_transform

# Verbatim from the DICE-FER seed README (seeds/000_*.txt, "Usage"): the training and evaluation blocks.
SEED_SNIPPET = '''
from dice_fer import DICEFER

# Initialize model
model = DICEFER(
    num_classes=7,
    feature_dim=64,
    lambda_exp=1.0,
    lambda_id=1.0,
    lambda_adv=0.1
)

# Train the model
model.train(
    train_loader=train_loader,
    val_loader=val_loader,
    epochs=100,
    learning_rate=1e-4
)

# Evaluate on test set
accuracy = model.evaluate(test_loader)
print(f"Test Accuracy: {accuracy:.4f}")

# Get disentanglement metrics
mig_score = model.compute_mig_score(test_loader)
print(f"MIG Score: {mig_score:.4f}")
'''


#: one torch thread (conftest.one_thread): two OpenMP threads on a shared 2-core CPU spin on these small steps
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synth():
    return render_synthfer(identities=6, images_per_identity=8, size=48, seed=0)


def ferkit_loader(split: DatasetSplit, n: int, pre: Preprocessing) -> DataLoader:
    """A ferkit pair loader over the first ``n`` samples of a split (one batch)."""
    small = DatasetSplit(split.name, split.split, split.label_space, split.samples[:n], info=split.info)
    return DataLoader(PairDataset(FERDataset(small, build_transform(pre, train=False), progress=False), seed=0),
                      batch_size=n)


def run_snippet(synth, epochs_text: str) -> dict:
    pre = Preprocessing(size=112, channels=1, mean=(0.5,), std=(0.5,), whitening="per_image", align="none")
    ns = {"train_loader": ferkit_loader(synth.splits["train"], 8, pre),
          "val_loader": ferkit_loader(synth.splits["val"], 8, pre),
          "test_loader": ferkit_loader(synth.splits["test"], 8, pre)}
    exec(SEED_SNIPPET.replace("epochs=100", epochs_text), ns)   # noqa: S102 - the README's own code
    return ns


def accuracy_by_predict(model, loader) -> float:
    """The fraction of ``loader``'s labels that ``model.predict``'s argmax gets right (a path beside evaluate)."""
    right = total = 0
    for batch in loader:
        images, labels = (batch["image"], batch["expression"]) if isinstance(batch, dict) else batch
        right += int((model.predict(images).probs.argmax(1).cpu() == labels).sum())
        total += len(labels)
    return right / total


def test_seed_snippet_runs_with_one_epoch_per_stage(synth, capsys):
    ns = run_snippet(synth, "epochs=1")
    assert isinstance(ns["accuracy"], float)
    assert ns["accuracy"] == accuracy_by_predict(ns["model"], ns["test_loader"])     # k / 8 of the 8 images
    assert isinstance(ns["mig_score"], float) and np.isfinite(ns["mig_score"])
    out = capsys.readouterr().out
    assert "Test Accuracy:" in out and "MIG Score:" in out
    assert [r["phase"] for r in ns["model"].history] == ["stage1", "stage2", "stage3"]
    assert ns["model"].cfg.model.zeta_adv == 0.1          # the seed's lambda_adv is the value in force


@pytest.mark.slow
def test_seed_snippet_runs_verbatim(synth):
    ns = run_snippet(synth, "epochs=100")
    assert len(ns["model"].history) == 300
    assert ns["accuracy"] == accuracy_by_predict(ns["model"], ns["test_loader"])


def test_plain_tuple_loaders_and_save_load(tmp_path):
    from dice_fer import DICEFER as SeedName
    from ferkit import DICEFER

    assert SeedName is DICEFER
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 40, 40, generator=gen)                 # RGB at another size: converted and resized
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6])        # 5 and 6 occur once: left out of pair steps
    plain = DataLoader(TensorDataset(x, y), batch_size=12)
    model = DICEFER(image_size=32, critic_hidden=16, disc_hidden=(16, 8), classifier_hidden=(16, 8),
                    device="cpu", seed=3)
    history = model.train(train_loader=plain, epochs=1, learning_rate=1e-3, progress=False)
    assert [h["steps"] for h in history] == [1, 1, 1]
    acc = model.evaluate(plain)
    assert acc == accuracy_by_predict(model, plain) and round(acc * 12) == acc * 12     # k / 12
    path = model.save(tmp_path / "dicefer.safetensors")
    again = DICEFER.load(path, device="cpu")
    p1, p2 = model.predict(x), again.predict(x)
    torch.testing.assert_close(p1.probs, p2.probs)
    torch.testing.assert_close(p1.extra["identity"], p2.extra["identity"])
    assert again.evaluate(plain) == acc
