"""fit() under torchrun: two CPU processes (gloo) end where one process on the same global batch ends.

The test runs this file as the training script of ``torchrun --nproc_per_node=2`` (the
``__main__`` part below) and compares what each rank trained with the same runs done here, in
one process. Four runs cover the ways a batch reaches the ranks:

* A: a shuffling, augmenting TensorLoader, batch 32 (16 per rank), 2 epochs, with ``state_path``;
* B: batches of 15 and 10 (shards of 8 and 7: each rank's loss weighted by its share);
* C: a DataLoader with a DistributedSampler (already sharded: 16 per rank vs 32 in one process);
* D: DeiT hard distillation, whose loss calls ``model.forward_both`` (routed through DDP);
* E: a second call of run A with the same ``state_path``: every rank resumes from the file.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from vitcore import VisionTransformer, seed_everything
from vitcore.tolerance import assert_close

ROOT = Path(__file__).resolve().parents[1]
CFG: dict[str, Any] = dict(
    img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0
)
TOKENS = (28 // 7) ** 2 + 1
LR = 3e-3


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def run_all(state_dir: Path, distributed: bool) -> dict:
    """The four runs (and the resume); the same code in one process and under torchrun."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from vitcore.data import TensorLoader, normalise
    from vitcore.deit import DistilledVisionTransformer, hard_distillation_loss
    from vitcore.train import distributed_rank_and_size, fit
    from vitcore.vit import ViTConfig

    out: dict[str, Any] = {}
    rank = int(os.environ.get("RANK", "0"))

    def model_a():
        seed_everything(0)
        return VisionTransformer(**CFG)

    # A: global batches of 32 from a shuffling, augmenting loader; every rank slices its 16
    x, y = _data(96, 1)
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, augment=True, drop_last=True, seed=0)
    model = model_a()
    state = state_dir / ("state_ddp.pt" if distributed else "state_one.pt")
    hist = fit(
        model, loader, epochs=2, lr=LR, device="cpu", progress=distributed, desc=f"ddp-rank{rank}", state_path=state
    )
    out["A"] = (model.state_dict(), hist.to_dict())
    out["world"] = distributed_rank_and_size()[1]

    # E: the same call again resumes from the finished state (every rank reads the file)
    again = VisionTransformer(**CFG)
    hist_e = fit(
        again,
        TensorLoader(x, y, batch_size=32, shuffle=True, augment=True, drop_last=True, seed=0),
        epochs=2,
        lr=LR,
        device="cpu",
        progress=False,
        state_path=state,
    )
    out["E"] = (again.state_dict(), hist_e.to_dict())

    # B: 40 images in batches of 15, 15, 10: shards of 8 + 7 and 5 + 5
    x, y = _data(40, 2)
    model = model_a()
    hist = fit(
        model,
        TensorLoader(x, y, batch_size=15, shuffle=True, seed=1),
        epochs=1,
        lr=LR,
        device="cpu",
        progress=False,
        eval_loader=TensorLoader(x, y, batch_size=20),
    )
    out["B"] = (model.state_dict(), hist.to_dict())

    # C: a DataLoader that shards itself: 16 per rank with a DistributedSampler, 32 in one process
    x, y = _data(64, 3)
    ds = TensorDataset(normalise(x), y)
    if distributed:
        dl = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, shuffle=False))
    else:
        dl = DataLoader(ds, batch_size=32, shuffle=False)
    model = model_a()
    hist = fit(model, dl, epochs=1, lr=LR, device="cpu", progress=False)
    out["C"] = (model.state_dict(), hist.to_dict())

    # D: DeiT distillation; the loss calls model.forward_both
    x, y = _data(64, 4)
    seed_everything(1)
    teacher = VisionTransformer(**CFG)
    seed_everything(0)
    student = DistilledVisionTransformer(ViTConfig(**CFG))
    hist = fit(
        student,
        TensorLoader(x, y, batch_size=32, shuffle=True, seed=2),
        epochs=1,
        lr=LR,
        device="cpu",
        progress=False,
        loss_fn=hard_distillation_loss(teacher, label_smoothing=0.1),
    )
    out["D"] = (student.state_dict(), hist.to_dict())
    return out


def _worker(out_dir: Path) -> None:
    """What each torchrun process runs."""
    import vitcore.train as vtrain
    import vitcore.train.loop as vtrain_loop

    saves: list[int] = []
    original = vtrain_loop._save_state

    def counted_save(*a: Any, **k: Any) -> None:
        saves.append(1)
        original(*a, **k)

    vtrain_loop._save_state = counted_save
    torch.set_num_threads(1)
    res = run_all(out_dir, distributed=True)
    rank, world = vtrain.distributed_rank_and_size()
    res["saves"] = len(saves)
    torch.save(res, out_dir / f"rank{rank}.pt")
    vtrain.cleanup_distributed()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"torchrun with 2 processes took {time.perf_counter() - t0:.1f} s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    one = run_all(tmp_path, distributed=False)

    assert ranks[0]["world"] == ranks[1]["world"] == 2 and one["world"] == 1
    # only rank 0 wrote the training state (once per epoch of run A) and drew a progress bar
    assert ranks[0]["saves"] == 2 and ranks[1]["saves"] == 0
    assert "ddp-rank0" in proc.stderr and "ddp-rank1" not in proc.stderr
    for run in "ABCDE":
        (w0, h0), (w1, _), (w, h) = ranks[0][run], ranks[1][run], one[run]
        assert w0.keys() == w.keys()
        steps = len(h["step_loss"])
        for k in w:
            assert torch.equal(w0[k], w1[k]), f"run {run}: the ranks' replicas of {k} differ"
            a, b = w0[k], w[k]
            if k.endswith("attn.qkv.bias"):
                # The key bias adds the same q.b_k to every score of a query, which the softmax
                # cancels: its gradient is zero but for rounding noise, and AdamW's g / (sqrt(v) + eps)
                # turns noise into steps of its own, different in each run. Both stay tiny next to a
                # real update (about lr per step); the query and value biases are compared as usual.
                for kbias in (a.view(3, -1)[1], b.view(3, -1)[1]):
                    assert kbias.abs().max() < 0.01 * LR * steps, f"run {run}: the key bias moved"
                a, b = a.view(3, -1)[0::2], b.view(3, -1)[0::2]
            # the global gradient is the mean of the two half-batch means: the same sum in another order
            assert_close(a, b, reduction=32 * TOKENS, depth=steps, msg=f"run {run}: {k}")
        assert h0["images_seen"] == h["images_seen"]
        assert h0["step_lr"] == h["step_lr"]
        assert_close(torch.tensor(h0["step_loss"]), torch.tensor(h["step_loss"]), reduction=32 * TOKENS, depth=2)
        assert h0["step_acc"] == h["step_acc"] and h0["epoch_acc"] == h["epoch_acc"]
        assert h0["eval_acc"] == h["eval_acc"]
    # and DDP did change something: the weights moved away from the initial ones
    seed_everything(0)
    init = VisionTransformer(**CFG)  # what run A started from
    assert not torch.equal(ranks[0]["A"][0]["head.weight"], init.state_dict()["head.weight"])
    json.dumps(ranks[0]["A"][1])  # the history stays plain data


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
