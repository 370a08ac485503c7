"""Data-parallel PCD on the digits over torch.distributed (gloo on CPU, NCCL on CUDA).

Every process trains on its own part of the rows; gradients, data statistics and the
held-out NLL are those of all parts, and the parameters stay identical on every rank.

    torchrun --nproc_per_node=2 examples/distributed_digits.py --out digits_ddp.pt
    python examples/distributed_digits.py            # one process: the same job alone
"""

from __future__ import annotations

import argparse
import os

import torch

import pgm_boltz as pb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="save the trained model here (rank 0)")
    args = ap.parse_args()
    launched = "RANK" in os.environ  # started by torchrun
    if launched:
        pb.distributed.init_process_group(args.device)  # gloo, or NCCL for CUDA
        torch.set_num_threads(1)
    device = args.device
    if device == "cuda" and launched:
        device = f"cuda:{torch.cuda.current_device()}"
    train, test = pb.datasets.load_digits(levels=2)
    model = pb.compile(pb.graphs.rbm(64, 16), engine="block-gibbs", device=device, seed=0)
    history = model.fit(pb.distributed.shard(train), method="pcd", epochs=args.epochs,
                        batch_size=10, lr=0.05, momentum=0.5,
                        validation_data=pb.distributed.shard(test), seed=0)
    if pb.distributed.is_main():  # one rank prints and writes
        last = history[-1]
        print(f"{pb.distributed.world_size()} process(es): epoch {last['epoch']}, "
              f"held-out NLL {last['val_nll']:.2f} nats")
        if args.out:
            pb.save(model, args.out)
    if launched:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
