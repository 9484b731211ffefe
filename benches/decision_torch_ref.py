#!/usr/bin/env python3
"""Batch-1 decision latency of quantdeck's MLP actor-critic in PyTorch eager, for
`cargo bench --bench decision -- --torch PY`: a tanh trunk, policy and value heads, softmax and
arg-max of one observation under torch.inference_mode. Prints p50 p99 mean in microseconds as the
last line."""
import argparse, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--obs", type=int, default=1859)
ap.add_argument("--hidden", default="256,128,64")
ap.add_argument("--iters", type=int, default=3000)
ap.add_argument("--warmup", type=int, default=300)
ap.add_argument("--threads", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
layers, d = [], a.obs
for h in [int(x) for x in a.hidden.split(",")]:
    layers += [torch.nn.Linear(d, h), torch.nn.Tanh()]
    d = h
body, pi, vf = torch.nn.Sequential(*layers), torch.nn.Linear(d, 8), torch.nn.Linear(d, 1)
obs = [torch.randn(1, a.obs) for _ in range(16)]


def decide(x):
    h = body(x)
    p = torch.softmax(pi(h), -1)
    v = vf(h)
    return int(p.argmax()), float(v)


samples = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        t = time.perf_counter()
        decide(obs[i % 16])
        if i >= a.warmup:
            samples.append((time.perf_counter() - t) * 1e6)
samples.sort()
p = lambda q: samples[round((len(samples) - 1) * q)]
print(f"{p(0.5):.2f} {p(0.99):.2f} {sum(samples) / len(samples):.2f}")
