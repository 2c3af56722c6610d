"""Replay a day of request rate through a reactive HPA and the forecast scaler.

Two days at one sample a minute: day 1 is an ordinary day (the history the seasonal term
reads), day 2 the same day with a launch burst (10× within `--burst-ramp` minutes, held,
then fading). Both scalers see the same metric (the 2-minute request rate, one minute
late) and the same per-pod target; the reactive one asks for ceil(rate / target) pods,
the forecast one for the replica rule of deploy/prometheus/forecast.yaml (model.py, the
recipe's forecast settings). Both keep the HPA's 5-minute scale-down stabilisation. A
new pod serves after `--startup` minutes; a pod serves at most `--capacity` req/s, the
rest is shed. Reported for day 2: requests shed, minutes over capacity, pod-hours.

    PYTHONPATH=. .venv/bin/python benchmarks/autoscaling/sim.py --startup 1,3,5
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import model
import numpy as np

from pipeline.recipe import load_recipe

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DAY = 24 * 60
SHAPE = [  # (hour, req/s): night, morning ramp, lunch dip, evening decline
    (0, 300), (6.5, 300), (9.5, 2000), (12, 2000), (13, 1700), (14, 2000), (18, 2000),
    (22, 400), (24, 300),
]  # fmt: skip
STABILISE_MIN = 5


def demand(burst_at: float, burst_ramp: int, burst_hold: int, noise: float, seed: int):
    """req/s per minute for two days; the burst is on day 2 at hour `burst_at`."""
    hours, rates = zip(*SHAPE, strict=True)
    day = np.interp(np.arange(DAY) / 60, hours, rates)
    rate = np.concatenate([day, day])
    start = DAY + int(burst_at * 60)
    ramp = np.linspace(1, 10, burst_ramp + 1)[1:]
    fade = np.linspace(10, 1, 61)[1:]
    factor = np.concatenate([ramp, np.full(burst_hold, 10.0), fade])
    rate[start : start + len(factor)] *= factor
    return rate * (1 + noise * np.random.default_rng(seed).standard_normal(len(rate)))


def observed(rate: np.ndarray) -> np.ndarray:
    """What the scaler reads at minute t: the rate over the two minutes before t."""
    padded = np.concatenate([rate[:2], rate])
    return (padded[:-2] + padded[1:-1]) / 2


def run(rate: np.ndarray, wanted: np.ndarray, startup: int, capacity: float) -> dict:
    starts: list[int] = [-startup] * int(wanted[0])
    shed = pods = over = 0.0
    ready_capacity = np.zeros(len(rate))
    for t in range(len(rate)):
        target = int(wanted[max(t - STABILISE_MIN, 0) : t + 1].max())
        if target > len(starts):
            starts += [t] * (target - len(starts))
        elif target < len(starts):
            starts = sorted(starts)[:target]  # the newest go first
        ready_capacity[t] = sum(s + startup <= t for s in starts) * capacity
        if t >= DAY:
            lost = max(rate[t] - ready_capacity[t], 0.0) * 60
            shed += lost
            over += lost > 0
            pods += len(starts) / 60
    offered = rate[DAY:].sum() * 60
    return {"shed": shed, "shed_share": shed / offered, "minutes_over": over,
            "pod_hours": pods, "capacity": ready_capacity}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "sensitivity-minilm.yaml"))
    ap.add_argument("--startup", default="1,3,5", help="pod start-up minutes, comma-separated")
    ap.add_argument("--capacity", type=float, default=250.0, help="req/s one pod can serve")
    ap.add_argument("--max-replicas", type=int, default=150)
    ap.add_argument("--burst-at", type=float, default=15.0, help="hour of day 2")
    ap.add_argument("--burst-ramp", type=int, default=10, help="minutes to reach 10×")
    ap.add_argument("--burst-hold", type=int, default=45)
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=str(HERE / "day.png"))
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()

    deploy = load_recipe(Path(args.recipe)).deploy
    scaling = deploy.autoscaling.model_copy(
        update={"max_replicas": args.max_replicas, "in_flight_per_pod": None}
    )
    rate = demand(args.burst_at, args.burst_ramp, args.burst_hold, args.noise, args.seed)
    seen = observed(rate)
    reactive = np.array(
        [min(max(math.ceil(x / scaling.requests_per_pod), scaling.min_replicas),
             scaling.max_replicas) for x in seen]
    )  # fmt: skip
    predicted = model.replicas(seen, None, scaling)
    results, curves = [], {}
    for startup in (int(s) for s in args.startup.split(",")):
        row = {"startup_min": startup}
        for name, wanted in (("reactive", reactive), ("forecast", predicted)):
            r = run(rate, wanted, startup, args.capacity)
            curves[(name, startup)] = r.pop("capacity")
            row[name] = r
        row["shed_reduction"] = 1 - row["forecast"]["shed"] / max(row["reactive"]["shed"], 1)
        row["extra_pod_hours"] = row["forecast"]["pod_hours"] / row["reactive"]["pod_hours"] - 1
        results.append(row)
    settings = {k: v for k, v in vars(args).items() if k not in ("plot", "out", "recipe")}
    settings["autoscaling"] = scaling.model_dump(mode="json")
    Path(args.out).write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    print("| start-up | scaler | shed requests | shed % | minutes over capacity | pod-hours |")
    print("|---|---|---|---|---|---|")
    for row in results:
        for name in ("reactive", "forecast"):
            r = row[name]
            print(f"| {row['startup_min']} min | {name} | {r['shed']:,.0f} | "
                  f"{100 * r['shed_share']:.2f}% | {r['minutes_over']:.0f} | "
                  f"{r['pod_hours']:.1f} |")  # fmt: skip
        print(f"| | forecast vs reactive | {-100 * row['shed_reduction']:+.1f}% | | | "
              f"{100 * row['extra_pod_hours']:+.1f}% |")  # fmt: skip
    if args.plot:
        plot(rate, curves, 3 if (("reactive", 3) in curves) else results[0]["startup_min"],
             Path(args.plot))  # fmt: skip


def plot(rate: np.ndarray, curves: dict, startup: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = np.arange(DAY) / 60
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2, 1, 1]})
    for ax, (lo, hi) in zip(axes, [(0, 24), (6, 11), (14.8, 15.6)], strict=True):
        m = (hours >= lo) & (hours <= hi)
        ax.plot(hours[m], rate[DAY:][m], color="black", lw=1, label="demand (req/s)")
        for name, color in (("reactive", "tab:red"), ("forecast", "tab:blue")):
            cap = curves[(name, startup)][DAY:]
            ax.step(hours[m], cap[m], where="post", color=color, lw=1.2,
                    label=f"{name}: ready capacity")  # fmt: skip
        ax.set_xlabel("hour of day")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"launch day, pod start-up {startup} min")
    axes[1].set_title("morning ramp")
    axes[2].set_title("launch burst")
    axes[0].set_ylabel("req/s")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
