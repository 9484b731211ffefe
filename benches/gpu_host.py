#!/usr/bin/env python3
"""One command for the first GPU host that comes along (see README, *GPU*).

On the GPU host, beside a copy of this repository's benches/ and the quantdeck binary built here
with `--features cuda` (../shared/reference/cuda-build.md §3), with python3 and torch installed:

    python3 benches/gpu_host.py --quantdeck .gpu/quantdeck --out gpu-host.json

It puts the CUDA 13 libraries of the nvidia-* wheels on LD_LIBRARY_PATH, checks that the binary
links, runs `quantdeck device` (a matmul and an MLP forward pass on the GPU against a host f64
reference, f32 and bf16), then trains the synthetic SYNA at the quick_test and production shapes
on the GPU with f32 and bf16 (`--iterations N`, `gpu_sizing = auto`), and runs the PyTorch
reference PPO (benches/ppo_torch_ref.py) eager and torch.compile at the very sizes quantdeck chose.
It writes env-steps/s, the sizing, and peak GPU memory (sampled with nvidia-smi for quantdeck,
torch.cuda.max_memory_allocated for PyTorch) to the JSON file and a Markdown table beside it.

`--device cpu --shapes quick_test --iterations 2` runs the same steps on a CPU (no GPU memory
figures): the tests use it to keep this script working where no GPU is.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cuda_libs():
    """The cu13 lib folder of the nvidia-* wheels (where PyTorch's CUDA libraries live), or None."""
    try:
        import nvidia  # noqa: F401 (namespace package of the CUDA wheels)
    except ImportError:
        return None
    for p in nvidia.__path__:
        lib = os.path.join(p, "cu13", "lib")
        if os.path.isdir(lib):
            return lib
    return None


def run(cmd, env, timeout):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class GpuMemory:
    """Samples GPU memory in use every 0.2 s while a process runs: its own (by pid) when
    nvidia-smi lists it, else the device total less what was in use before it started."""

    def __init__(self, index):
        self.index, self.peak_pid, self.peak_total, self.pid = index, 0, 0, None
        self.base = self.total() or 0
        self.stop = threading.Event()

    def total(self):
        out = self.smi(["--query-gpu=memory.used", "--format=csv,noheader,nounits", f"-i={self.index}"])
        try:
            return int(out.split()[0])
        except (IndexError, ValueError):
            return None

    @staticmethod
    def smi(args):
        try:
            return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def sample(self):
        while not self.stop.wait(0.2):
            apps = self.smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
            for line in apps.splitlines():
                parts = [x.strip() for x in line.split(",")]
                if len(parts) == 2 and parts[0] == str(self.pid) and parts[1].isdigit():
                    self.peak_pid = max(self.peak_pid, int(parts[1]))
            t = self.total()
            if t is not None:
                self.peak_total = max(self.peak_total, t - self.base)

    def watch(self, proc):
        self.pid = proc.pid
        th = threading.Thread(target=self.sample, daemon=True)
        th.start()
        return th

    def result(self):
        if self.peak_pid:
            return {"peak_mib": self.peak_pid, "how": "nvidia-smi, this process"}
        return {"peak_mib": self.peak_total, "how": "nvidia-smi, device total less the idle level"}


def train(qd, mode, precision, device, iterations, env, timeout, extra=()):
    """Fetches and trains SYNA in a fresh QUANTDECK_HOME; returns the figures, or the failure."""
    home = tempfile.mkdtemp(prefix=f"qd-gpu-{mode}-{precision}-")
    env = dict(env, QUANTDECK_HOME=home)
    try:
        code, out, err = run([qd, "--mode", mode, "fetch", "SYNA"], env, timeout)
        if code != 0:
            return {"ok": False, "error": f"fetch exited {code}: {err.strip()[-400:]}"}
        cmd = [qd, "--mode", mode, "train", "SYNA", "--device", device, "--precision", precision,
               "--iterations", str(iterations), *extra]
        mem = GpuMemory(0) if device.startswith("cuda") else None
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        th = mem.watch(proc) if mem else None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return {"ok": False, "error": f"train ran past {timeout} s"}
        finally:
            if mem:
                mem.stop.set()
                th.join()
        if proc.returncode != 0:
            return {"ok": False, "error": f"train exited {proc.returncode}: {err.strip()[-400:]}"}
        res = read_run(Path(home))
        res["ok"] = True
        if mem:
            res["gpu_memory"] = mem.result()
        return res
    finally:
        shutil.rmtree(home, ignore_errors=True)


SIZES = re.compile(r"sizes from (.*): (\d+) envs × (\d+) steps, minibatch (\d+), hidden \[([\d, ]+)\]")
LAYOUT = re.compile(r"(\d+) features × (\d+) bars")


def read_run(home):
    """Throughput, sizing and layout from the training run's events.jsonl and manifest."""
    run_dir = next((home / "runs").glob("train-*"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    ppo, window = manifest["config"]["ppo"], manifest["config"]["features"]["window"]
    sizing = {"source": "config", "n_envs": ppo["n_envs"], "n_steps": ppo["n_steps"],
              "minibatch": ppo["minibatch"], "hidden": ppo["hidden_dims"]}
    sps, features, first = [], None, None
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        ev = json.loads(line)["event"]
        if ev.get("type") == "update":
            sps.append(ev["sps"])
            if first is None:
                first = {k: ev.get(k) for k in ("mean_reward", "policy_loss", "value_loss", "entropy", "approx_kl")}
        elif ev.get("type") == "log":
            m = SIZES.search(ev["message"])
            if m:
                sizing = {"source": m[1], "n_envs": int(m[2]), "n_steps": int(m[3]),
                          "minibatch": int(m[4]), "hidden": [int(x) for x in m[5].split(",")]}
            m = LAYOUT.search(ev["message"])
            if m:
                features, window = int(m[1]), int(m[2])
    timed = sps[1:] or sps  # the first update carries the warm-up
    return {"env_steps_per_s": statistics.median(timed) if timed else None, "updates_sps": sps,
            "sizing": sizing, "epochs": ppo["epochs"], "features": features, "window": window,
            "first_update": first}


def torch_ref(python, run_res, device, precision, compiled, iterations, timeout):
    s = run_res["sizing"]
    cmd = [python, str(HERE / "ppo_torch_ref.py"), "--device", device,
           "--envs", str(s["n_envs"]), "--steps", str(s["n_steps"]), "--mb", str(s["minibatch"]),
           "--hidden", ",".join(map(str, s["hidden"])), "--epochs", str(run_res["epochs"]),
           "--window", str(run_res["window"]), "--features", str(run_res["features"]),
           "--updates", str(iterations), "--threads", str(os.cpu_count() or 1)]
    if precision == "bf16":
        cmd.append("--bf16")
    if compiled:
        cmd.append("--compile")
    try:
        code, out, err = run(cmd, dict(os.environ), timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"ran past {timeout} s"}
    m = re.search(r": (\d+) env-steps/s(?:, peak (\d+) MiB)?", out)
    if code != 0 or not m:
        return {"ok": False, "error": (err.strip() or out.strip())[-400:]}
    return {"ok": True, "env_steps_per_s": float(m[1]), "peak_mib": int(m[2]) if m[2] else None}


def has_torch(python):
    try:
        return subprocess.run([python, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def table(report):
    rows = ["| shape | precision | sizing | quantdeck env-steps/s | peak MiB | torch eager | peak MiB | "
            "torch.compile | peak MiB | quantdeck / best torch |", "|" + "---|" * 10]
    for r in report["runs"]:
        q, e, c = r["quantdeck"], r.get("torch_eager") or {}, r.get("torch_compile") or {}
        fig = lambda x, k="env_steps_per_s": (f"{x[k]:,.0f}" if x.get("ok") and x.get(k) is not None
                                              else ("—" if not x else x.get("error", "—")[:60]))
        best = max([x["env_steps_per_s"] for x in (e, c) if x.get("ok")], default=None)
        ratio = f"{q['env_steps_per_s'] / best:.2f}×" if q.get("ok") and best else "—"
        sz = q.get("sizing") or {}
        sizing = (f"{sz.get('n_envs')}×{sz.get('n_steps')}, mb {sz.get('minibatch')}, {sz.get('hidden')}"
                  if sz else "—")
        rows.append(f"| {r['shape']} | {r['precision']} | {sizing} | {fig(q)} | "
                    f"{(q.get('gpu_memory') or {}).get('peak_mib', '—')} | {fig(e)} | {e.get('peak_mib') or '—'} | "
                    f"{fig(c)} | {c.get('peak_mib') or '—'} | {ratio} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quantdeck", required=True, help="the quantdeck binary (built with --features cuda)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", default="quick_test,production")
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--iterations", type=int, default=4, help="PPO updates per training (the first is warm-up)")
    ap.add_argument("--python", default=sys.executable, help="the Python with torch, for the reference")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per training or reference run")
    ap.add_argument("--out", default="gpu-host.json")
    a = ap.parse_args()
    qd, env = str(Path(a.quantdeck).resolve()), dict(os.environ)
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": a.device, "runs": []}
    if a.device.startswith("cuda"):
        lib = cuda_libs()
        report["cuda_libs"] = lib
        if lib:
            env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        ldd = subprocess.run(["ldd", qd], env=env, capture_output=True, text=True).stdout
        report["unresolved_libraries"] = [l.split()[0] for l in ldd.splitlines() if "not found" in l]
        report["gpu"] = GpuMemory.smi(["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]).strip()
    code, out, err = run([qd, "device", "--device", a.device, "--json"], env, a.timeout)
    report["device_check"] = json.loads(out) if code in (0, 1) and out.strip() else {"ok": False, "error": err.strip()}
    if not report["device_check"].get("ok"):
        print(f"device check failed: {report['device_check']}", file=sys.stderr)
    if a.device != "cpu":
        # One PPO update at quick_test's own sizes on the device and on the CPU, same seed: the
        # first update's rollout reward and losses side by side (not bit-equal: summation order).
        report["update_parity"] = {
            d: train(qd, "quick_test", "f32", d, 1, env, a.timeout, ("--gpu-sizing", "off")).get("first_update")
            for d in (a.device, "cpu")}
    torch_ok = has_torch(a.python)
    if not torch_ok:
        report["torch"] = f"{a.python} has no torch: the PyTorch columns are empty"
    for shape in a.shapes.split(","):
        for prec in a.precisions.split(","):
            print(f"training {shape} {prec} on {a.device} …", file=sys.stderr, flush=True)
            q = train(qd, shape, prec, a.device, a.iterations, env, a.timeout)
            r = {"shape": shape, "precision": prec, "quantdeck": q}
            if torch_ok and q.get("ok") and q.get("features"):
                for key, compiled in (("torch_eager", False), ("torch_compile", True)):
                    print(f"  PyTorch {key} …", file=sys.stderr, flush=True)
                    r[key] = torch_ref(a.python, q, a.device, prec, compiled, a.iterations, a.timeout)
            report["runs"].append(r)
            Path(a.out).write_text(json.dumps(report, indent=2))  # what is done survives a later failure
    md = table(report)
    Path(a.out).with_suffix(".md").write_text(md + "\n")
    print(md)
    ok = report["device_check"].get("ok") and all(r["quantdeck"].get("ok") for r in report["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
