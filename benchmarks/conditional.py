"""Class-conditional Fashion-MNIST: does G make the class it is asked for?

Trains a conditional GAN (DCGAN by default: class embedding into G, projection head in D) for a few
CPU minutes, samples a balanced set (the classes in turn), and reports the share of samples that the
Fashion-MNIST domain classifier puts in the class they were asked for. Target: >= 0.85 overall.

Class accuracy alone cannot see a G that makes one image per class (it scores 100%), so the report
also gives each class's spread: the mean per-pixel standard deviation of its samples over that of as
many real images of the class (1 = as varied as the data, near 0 = one image), and the classifier FD
of the whole balanced set.

Needs the classifier once: `ganforge train-classifier --data fashion-mnist`. Prints one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/conditional.py [--steps 3000] [--width 32] [--model dcgan] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dcgan", help="mlp, dcgan or resnet")
    p.add_argument("--steps", type=int, default=3000, help="G updates")
    p.add_argument("--width", type=int, default=32, help="model width (half DCGAN's 64: twice the steps per CPU second)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--loss", default=None, help="default: ganforge's for a conditional run (hinge)")
    p.add_argument("--mode-seeking", type=float, default=None, help="G's mode-seeking weight (default: ganforge's, 0)")
    p.add_argument("--n", type=int, default=5000, help="samples scored (balanced over the classes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    args = p.parse_args()

    import torch

    from ganforge import TrainConfig, Trainer
    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate
    from ganforge.metrics.classifier import load_classifier
    from ganforge.metrics.image import class_accuracy, class_coverage

    torch.set_num_threads(args.threads)
    classifier = load_classifier("fashion-mnist")  # fail before training, not after
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(data="fashion-mnist", data_dir=args.data_dir, model=args.model, conditional=True,
                          steps=args.steps, width=args.width, batch=args.batch, loss=args.loss, seed=args.seed,
                          mode_seeking=args.mode_seeking,
                          out=args.out or f"{tmp}/run", quiet=True, sample_every=max(1, args.steps // 4))
        start, cpu_start = time.perf_counter(), time.process_time()
        run = Trainer(cfg).fit()
        train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        labels = run.labels_for(args.n)
        fake = run.sample(args.n, seed=args.seed + 1, labels=labels)
        fd = evaluate(lambda k: run.sample(k, seed=args.seed + 2, labels=run.labels_for(k)), "fashion-mnist",
                      data_dir=args.data_dir, n=args.n)["fd"]
    acc = class_accuracy(fake, labels, classifier)
    coverage = class_coverage(fake, classifier)
    spread = class_spread(fake, labels, load_dataset("fashion-mnist", data_dir=args.data_dir), run.classes)
    print(json.dumps({
        "benchmark": "conditional-fashion-mnist",
        "model": args.model, "loss": run.config.loss, "mode_seeking": run.config.mode_seeking, "steps": args.steps, "batch": args.batch,
        "width": args.width, "seed": args.seed, "threads": args.threads,
        "train_seconds": round(train_s, 1), "train_cpu_seconds": round(train_cpu_s, 1),
        "class_accuracy": round(acc["overall"], 4),
        "per_class": {k: round(v, 3) for k, v in acc["per_class"].items()},
        "classes_covered": coverage["classes_covered"],
        "fd": round(fd, 3), "spread": round(sum(spread.values()) / len(spread), 3),
        "spread_per_class": {k: round(v, 3) for k, v in spread.items()},
        "classifier_test_accuracy": acc["protocol"]["classifier_test_accuracy"],
        "n_samples": args.n, "target": 0.85, "passed": acc["overall"] >= 0.85,
    }, indent=1))


def class_spread(fake, labels, real, classes) -> dict[str, float]:
    """Per class: mean per-pixel std of the samples asked for it over that of as many real images of it."""
    spread = {}
    for c, name in enumerate(classes):
        made = fake[labels == c].float()
        data = real.data[real.labels == c][:len(made)].float()
        spread[name] = float(made.std(0).mean() / data.std(0).mean()) if len(made) > 1 else float("nan")
    return spread


if __name__ == "__main__":
    main()
