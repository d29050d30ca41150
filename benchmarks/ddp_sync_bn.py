"""Two ranks sharing one GPU (gloo): DCGAN with --sync-bn ends with the weights of one process trained on
the same global batches; without --sync-bn, BatchNorm's per-rank statistics make them drift apart.

    PYTHONPATH=src python benchmarks/ddp_sync_bn.py      # needs one CUDA GPU; prints JSON

(SyncBatchNorm runs on CUDA only, so the CPU test in tests/test_distributed.py uses a BatchNorm-free model.)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

SETTINGS = dict(data="digits", model="dcgan", resolution=16, width=16, latent_dim=16, batch=64, device="cuda",
                log_every=5, sample_every=10, checkpoint_every=10, quiet=True)


def deterministic():
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def rank_main(rank: int, out: str, steps: int, sync_bn: bool) -> None:
    import torch.distributed as dist

    from ganforge import TrainConfig, Trainer

    deterministic()
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("gloo")  # NCCL refuses two ranks on one GPU; gloo carries CUDA tensors too
    Trainer(TrainConfig(**SETTINGS, sync_bn=sync_bn, steps=steps, out=out)).fit()
    dist.destroy_process_group()


def max_difference(a: Path, b: Path) -> float:
    from ganforge.checkpoint import load_checkpoint

    ta, tb = load_checkpoint(a / "checkpoints")[0], load_checkpoint(b / "checkpoints")[0]
    return max((ta[k].float() - tb[k].float()).abs().max().item() for k in ta if k.startswith(("G.", "D.")))


def main() -> None:
    from ganforge import TrainConfig, Trainer

    deterministic()
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    root = Path(tempfile.mkdtemp())
    Trainer(TrainConfig(**SETTINGS, steps=steps, out=str(root / "one"))).fit()
    result = {"steps": steps, "global_batch": SETTINGS["batch"], "gpu": torch.cuda.get_device_name()}
    for sync_bn in (True, False):
        out = root / f"two-sync{int(sync_bn)}"
        mp.spawn(rank_main, args=(str(out), steps, sync_bn), nprocs=2, join=True)
        result[f"max_weight_difference_vs_one_process_sync_bn_{'on' if sync_bn else 'off'}"] = max_difference(out, root / "one")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
