#!/usr/bin/env python3
"""Reference PPO with a GRU encoder on PyTorch (CPU, eager), shaped like quantdeck's portfolio GRU
trainer, to anchor its training throughput: observations of SEQ steps x STEP_DIM values + TAIL
account values; per step Linear + ReLU + LayerNorm twice, dropout, `torch.nn.GRU` (batch_first),
its last state with the tail into a policy head and a value head (Linear + ReLU + Linear each).
Rollouts of N envs x S steps (dropout off), GAE, E epochs of clipped PPO on minibatches (dropout
on), then C critic-only epochs on the frozen features; two Adams (trunk + policy head, value
head), joint global-norm clipping. The env is a stand-in (random factor rows, a regime choice
scored against random returns): the network dominates the cost on both sides.
Usage: ppo_torch_gru_ref.py [--envs 64 --steps 128 --epochs 4 --critic-epochs 4 --mb 1024
                             --hidden 64 --layers 2 --head 128 --dropout 0.1 --seq 32
                             --step-dim 75 --tail 15 --actions 12 --updates 3 --threads 2]
Prints env-steps/s over the timed updates (the first update is warm-up).
`cargo bench --bench training -- --portfolio --encoder gru --torch PY` runs it beside quantdeck."""
import argparse, time
import torch
from torch import nn

ap = argparse.ArgumentParser()
for name, default in [("envs", 64), ("steps", 128), ("epochs", 4), ("critic-epochs", 4),
                      ("mb", 1024), ("hidden", 64), ("layers", 2), ("head", 128), ("seq", 32),
                      ("step-dim", 75), ("tail", 15), ("actions", 12), ("updates", 3),
                      ("threads", 2), ("bars", 2000)]:
    ap.add_argument(f"--{name}", type=int, default=default)
ap.add_argument("--dropout", type=float, default=0.1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

N, S, L, D, H = a.envs, a.steps, a.seq, a.step_dim, a.hidden
fm = torch.randn(a.bars, D)
rets = torch.randn(a.bars, a.actions) * 0.01


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.LayerNorm(H),
                                 nn.Linear(H, H), nn.ReLU(), nn.LayerNorm(H))
        self.drop = nn.Dropout(a.dropout)
        self.gru = nn.GRU(H, H, a.layers, batch_first=True)
        head = lambda out: nn.Sequential(nn.Linear(H + a.tail, a.head), nn.ReLU(),
                                         nn.Linear(a.head, out))
        self.actor, self.critic = head(a.actions), head(1)

    def features(self, obs):
        x = obs[:, :L * D].reshape(-1, L, D)
        out, _ = self.gru(self.drop(self.enc(x)))
        return torch.cat([out[:, -1], obs[:, L * D:]], 1)


net = Net()
critic_params = list(net.critic.parameters())
actor_params = [p for n, p in net.named_parameters() if not n.startswith("critic.")]
opt_a = torch.optim.Adam(actor_params, lr=5e-4)
opt_c = torch.optim.Adam(critic_params, lr=1.5e-3)
t_idx = torch.randint(L, a.bars - 1, (N,))
ar = torch.arange(L)
tail = torch.zeros(N, a.tail)


def observe():
    win = fm[(t_idx[:, None] - L + 1 + ar[None, :])].reshape(N, L * D)
    return torch.cat([win, tail], 1)


def step(act):
    global t_idx
    r = rets[t_idx, act] * 100
    t_idx = t_idx + 1
    done = t_idx >= a.bars - 1
    t_idx[done] = L
    return r, done


def update():
    obs_b, act_b, logp_b, val_b, rew_b, done_b = [], [], [], [], [], []
    obs = observe()
    net.eval()
    with torch.no_grad():
        for _ in range(S):
            f = net.features(obs)
            logits, v = net.actor(f), net.critic(f).squeeze(1)
            dist = torch.distributions.Categorical(logits=logits)
            act = dist.sample()
            r, dn = step(act)
            obs_b.append(obs); act_b.append(act); logp_b.append(dist.log_prob(act))
            val_b.append(v); rew_b.append(r); done_b.append(dn.float())
            obs = observe()
        nv = net.critic(net.features(obs)).squeeze(1)
        adv, gae = torch.zeros(S, N), torch.zeros(N)
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
    net.train()
    for _ in range(a.epochs):
        perm = torch.randperm(B)
        for i in range(0, B, a.mb):
            ix = perm[i:i + a.mb]
            f = net.features(O[ix])
            logits, v = net.actor(f), net.critic(f).squeeze(1)
            lsm = torch.log_softmax(logits, -1)
            ratio = (lsm.gather(1, A[ix][:, None]).squeeze(1) - LP[ix]).exp()
            ad = AD[ix]
            ad = (ad - ad.mean()) / (ad.std() + 1e-8)
            pg = -torch.min(ratio * ad, ratio.clamp(0.8, 1.2) * ad).mean()
            vl = 0.5 * ((v - R[ix]) ** 2).mean()
            ent = -(lsm.exp() * lsm).sum(-1).mean()
            loss = pg + 0.5 * vl - 0.01 * ent
            opt_a.zero_grad(); opt_c.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(actor_params + critic_params, 0.5)
            opt_a.step(); opt_c.step()
    net.eval()
    with torch.no_grad():
        F = torch.cat([net.features(O[i:i + a.mb]) for i in range(0, B, a.mb)])
    for _ in range(a.critic_epochs):
        perm = torch.randperm(B)
        for i in range(0, B, a.mb):
            ix = perm[i:i + a.mb]
            vl = 0.5 * ((net.critic(F[ix]).squeeze(1) - R[ix]) ** 2).mean()
            opt_c.zero_grad()
            (0.5 * vl).backward()
            nn.utils.clip_grad_norm_(critic_params, 0.5)
            opt_c.step()
    return B


update()
t0 = time.perf_counter()
n = sum(update() for _ in range(a.updates))
dt = time.perf_counter() - t0
print(f"torch {torch.__version__} eager CPU GRU, {a.threads} threads, obs {L}x{D}+{a.tail}, "
      f"hidden {H}x{a.layers}, {N}x{S}, {a.epochs}+{a.critic_epochs} epochs, mb {a.mb}: "
      f"{n / dt:.0f} env-steps/s")
