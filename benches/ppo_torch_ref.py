#!/usr/bin/env python3
"""Reference PPO on PyTorch (CPU), shaped like quantdeck's default training step, to anchor its
training throughput: a (T x F) feature matrix, windowed observations of W bars + 3 account values,
a vectorised position/P&L env with the 8 actions, rollouts of N envs x S steps, GAE, E epochs of
clipped PPO on minibatches, Adam, global-norm clipping. CleanRL-style, eager mode.
Usage: ppo_torch_ref.py [--envs 64 --steps 128 --epochs 12 --mb 1024 --hidden 256,128,64
                         --window 32 --features 58 --updates 6 --threads 2]
Prints env-steps/s over the timed updates (the first update is warm-up).

quantdeck's copy of ../shared/tools/ppo_torch_ref.py, changed by `--act` (default tanh, as
quantdeck's network; `--act relu` is the original) and, for a GPU host (`benches/gpu_host.sh`),
`--device cuda`, `--compile` (torch.compile of the network) and `--bf16` (autocast matmuls in
bf16 over f32 weights, as quantdeck's `--precision bf16`); the peak memory PyTorch allocated on
the device follows the figure. `cargo bench --bench training -- --torch PY` runs it beside
quantdeck."""
import argparse, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--envs", type=int, default=64)
ap.add_argument("--steps", type=int, default=128)
ap.add_argument("--epochs", type=int, default=12)
ap.add_argument("--mb", type=int, default=1024)
ap.add_argument("--hidden", default="256,128,64")
ap.add_argument("--window", type=int, default=32)
ap.add_argument("--features", type=int, default=58)
ap.add_argument("--updates", type=int, default=6)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--bars", type=int, default=6516)
ap.add_argument("--act", choices=["tanh", "relu"], default="tanh")
ap.add_argument("--device", default="cpu")
ap.add_argument("--compile", action="store_true")
ap.add_argument("--bf16", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
torch.set_default_device(dev)  # every tensor below, the env's included, lives on the device

T, F, W, N, S = a.bars, a.features, a.window, a.envs, a.steps
fm = torch.randn(T, F)
price = 100 * torch.exp(torch.cumsum(torch.randn(T) * 0.003, 0))
obs_dim = F * W + 3
levels = torch.tensor([0, .25, .5, .75, -.25, -.5, -.75, 0.0])  # deltas; CLOSE handled below

layers, d = [], obs_dim
for h in [int(x) for x in a.hidden.split(",")]:
    layers += [torch.nn.Linear(d, h), torch.nn.Tanh() if a.act == "tanh" else torch.nn.ReLU()]
    d = h
body = torch.nn.Sequential(*layers)
pi, vf = torch.nn.Linear(d, 8), torch.nn.Linear(d, 1)
params = list(body.parameters()) + list(pi.parameters()) + list(vf.parameters())
opt = torch.optim.Adam(params, lr=3e-4)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.pi, self.vf = body, pi, vf

    def forward(self, x):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            h = self.body(x)
            return self.pi(h).float(), self.vf(h).float().squeeze(1)


net = torch.compile(Net()) if a.compile else Net()

t_idx = torch.randint(W, T - 300, (N,))
pos = torch.zeros(N)
eq = torch.ones(N)
steps_in_ep = torch.zeros(N, dtype=torch.long)
ar = torch.arange(W)


def observe():
    win = fm[(t_idx[:, None] - W + 1 + ar[None, :])].reshape(N, F * W)
    acct = torch.stack([pos, torch.tanh(10 * (eq - 1)), torch.zeros(N)], 1)
    return torch.cat([win, acct], 1)


def step(act):
    global pos, eq, t_idx, steps_in_ep
    new = torch.where(act == 7, torch.zeros(N), (pos + levels[act]).clamp(-1, 1))
    cost = (new - pos).abs() * 0.001
    r = new * (price[t_idx + 1] / price[t_idx] - 1) - cost
    pos, eq = new, eq * (1 + r * 0.2)
    t_idx = t_idx + 1
    steps_in_ep += 1
    done = steps_in_ep >= 256
    if done.any():
        t_idx[done] = torch.randint(W, T - 300, (int(done.sum()),))
        pos[done] = 0
        eq[done] = 1
        steps_in_ep[done] = 0
    return r * 1000, done


def update():
    obs_b, act_b, logp_b, val_b, rew_b, done_b = [], [], [], [], [], []
    obs = observe()
    with torch.no_grad():
        for _ in range(S):
            logits, v = net(obs)
            dist = torch.distributions.Categorical(logits=logits)
            act = dist.sample()
            r, dn = step(act)
            obs_b.append(obs); act_b.append(act); logp_b.append(dist.log_prob(act)); val_b.append(v)
            rew_b.append(r); done_b.append(dn.float())
            obs = observe()
        last = net(obs)[1]
        adv = torch.zeros(S, N)
        gae = torch.zeros(N)
        nv = last
        for t in reversed(range(S)):
            live = 1 - done_b[t]
            delta = rew_b[t] + 0.995 * nv * live - val_b[t]
            gae = delta + 0.995 * 0.95 * live * gae
            adv[t] = gae
            nv = val_b[t]
        ret = adv + torch.stack(val_b)
    B = N * S
    O, A, LP = torch.cat(obs_b), torch.cat(act_b), torch.cat(logp_b)
    AD, R = adv.reshape(B), ret.reshape(B)
    for _ in range(a.epochs):
        perm = torch.randperm(B)
        for i in range(0, B, a.mb):
            ix = perm[i:i + a.mb]
            logits, v = net(O[ix])
            lsm = torch.log_softmax(logits, -1)
            lp = lsm.gather(1, A[ix][:, None]).squeeze(1)
            ratio = (lp - LP[ix]).exp()
            ad = AD[ix]
            ad = (ad - ad.mean()) / (ad.std() + 1e-8)
            pg = -torch.min(ratio * ad, ratio.clamp(0.8, 1.2) * ad).mean()
            vl = 0.5 * ((v - R[ix]) ** 2).mean()
            ent = -(lsm.exp() * lsm).sum(-1).mean()
            loss = pg + 0.5 * vl - 0.01 * ent
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
    return B


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


update()
sync()
t0 = time.perf_counter()
n = sum(update() for _ in range(a.updates))
sync()
dt = time.perf_counter() - t0
mode = ("compiled" if a.compile else "eager") + (" bf16" if a.bf16 else "")
peak = ""
if dev.type == "cuda":
    peak = f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated"
print(f"torch {torch.__version__} {mode} {a.device}, {a.act}, {a.threads} threads, obs {obs_dim}, "
      f"hidden {a.hidden}, {N}x{S}, {a.epochs} epochs, mb {a.mb}: {n / dt:.0f} env-steps/s{peak}")
