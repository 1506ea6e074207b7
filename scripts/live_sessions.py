#!/usr/bin/env python3
"""The table and plot of BENCHMARKS.md's "Cost as live sessions grow", from the CSV that
scripts/live-sessions.sh writes (one line per run, contender and level).

Usage: live_sessions.py CSV SVG   (prints the markdown; writes the plot to SVG)

Memory columns are the median of the runs (they are load-independent); CPU per request, p99
and logins per second are the better run's (other jobs on a shared machine only add to them).
"""

import csv
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from plots import setup_matplotlib, table  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "sealed-axum": "sealed-session (axum)",
    "sealed-actix": "sealed-session (actix-web)",
    "tower-memory": "tower-sessions MemoryStore",
    "tower-redis": "tower-sessions + Redis",
    "actix-redis": "actix-session + Redis",
    "tower-cookie": "tower-sessions-cookie-store",
    "axum-private-jar": "PrivateCookieJar",
    "actix-cookie": "actix-session CookieSessionStore",
}
COLORS = {
    "sealed-axum": "#1f77b4",
    "sealed-actix": "#17becf",
    "tower-memory": "#ff7f0e",
    "tower-redis": "#d62728",
    "actix-redis": "#9467bd",
}


def number(row, key):
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def summarize(rows):
    """{contender: {level: cell}} over the runs, contenders in the order they first appear."""
    grouped = {}
    for row in rows:
        grouped.setdefault(row["contender"], {}).setdefault(int(row["sessions"]), []).append(row)
    out = {}
    for name, levels in grouped.items():
        out[name] = {}
        for level, runs in sorted(levels.items()):
            measured = [r for r in runs if r["note"] == "" and r["server_rss_kb"]]
            if level == 0:
                measured = runs
            if not measured:
                out[name][level] = {"note": runs[0]["note"], "runs": len(runs)}
                continue

            def med(key):
                values = [number(r, key) for r in measured if number(r, key) is not None]
                return statistics.median(values) if values else None

            def best(key, pick=min):
                values = [number(r, key) for r in measured if number(r, key) is not None]
                return pick(values) if values else None

            def total(r, a, b):
                x, y = number(r, a), number(r, b)
                return None if x is None else x + (y or 0)

            cell = {
                "note": "" if len(measured) == len(runs) else f"{len(measured)} of {len(runs)} runs",
                "runs": len(measured),
                "server_rss_kb": med("server_rss_kb"),
                "redis_used_memory_b": med("redis_used_memory_b"),
                "redis_rss_kb": med("redis_rss_kb"),
                "fill_logins_per_s": best("fill_logins_per_s", max),
                "fill_server_cpu_us": best("fill_server_cpu_us"),
            }
            for prefix in ["read", "login"]:
                for key in ["server_cpu_us", "redis_cpu_us", "p50_ms", "p99_ms"]:
                    cell[f"{prefix}_{key}"] = best(f"{prefix}_{key}")
                # The better run's server + Redis CPU, from the same run.
                totals = [total(r, f"{prefix}_server_cpu_us", f"{prefix}_redis_cpu_us")
                          for r in measured]
                totals = [t for t in totals if t is not None]
                cell[f"{prefix}_total_cpu_us"] = min(totals) if totals else None
            out[name][level] = cell
    return out


def mb(kb):
    return "—" if kb is None else f"{kb / 1024:,.1f}"


def f(x, digits=2):
    return "—" if x is None else f"{x:,.{digits}f}"


def cpu(cell, prefix):
    server, redis = cell[f"{prefix}_server_cpu_us"], cell[f"{prefix}_redis_cpu_us"]
    return f(server) if redis is None else f"{f(server)} + {f(redis)}"


def markdown(summary):
    header = [
        "store", "live sessions", "server RSS (MB)", "Redis used_memory (MB)", "Redis RSS (MB)",
        "memory per added session (KB)", "read: CPU µs/req (server + Redis)", "read p99 (ms)",
        "login: CPU µs/req (server + Redis)", "login p99 (ms)", "fresh logins/s to reach it",
        "fresh login: server CPU µs",
    ]
    rows = []
    for name, levels in summary.items():
        previous_level, previous_kb = 0, None
        for level, cell in levels.items():
            if "server_rss_kb" not in cell:
                if level > 0:
                    rows.append([LABELS.get(name, name), f"{level:,}", cell["note"]] + ["—"] * 9)
                continue
            total_kb = cell["server_rss_kb"] + (cell["redis_rss_kb"] or 0)
            per_session = (
                None if previous_kb is None else (total_kb - previous_kb) / (level - previous_level)
            )
            previous_level, previous_kb = level, total_kb
            if level == 0:
                continue
            used = cell["redis_used_memory_b"]
            rows.append(
                [
                    LABELS.get(name, name), f"{level:,}", mb(cell["server_rss_kb"]),
                    "—" if used is None else f"{used / 1048576:,.1f}", mb(cell["redis_rss_kb"]),
                    f(per_session, 2), cpu(cell, "read"),
                    f(cell["read_p99_ms"], 3), cpu(cell, "login"), f(cell["login_p99_ms"], 3),
                    f(cell["fill_logins_per_s"], 0), f(cell["fill_server_cpu_us"], 1),
                ]
            )
    starts = []
    for name, levels in summary.items():
        start = levels.get(0)
        if start:
            text = f"{LABELS.get(name, name)} {mb(start['server_rss_kb'])} MB"
            if start.get("redis_rss_kb"):
                text += f" (+ Redis {mb(start['redis_rss_kb'])} MB)"
            starts.append(text)
    return (
        table(header, rows, ["---", "---:"] + ["---:"] * 10)
        + "\n\nAt start, before any login (RSS): " + "; ".join(starts) + ". Memory per added"
        " session: the growth of server RSS plus Redis RSS since the level above (since the start"
        " for the first), divided by the sessions added."
    )


def plot(summary, path):
    setup_matplotlib()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    panels = [
        (axes[0][0], "memory (MB, RSS)", True),
        (axes[0][1], "read: CPU µs per request", False),
        (axes[0][2], "login: CPU µs per request", False),
        (axes[1][0], "fresh logins per second (while filling)", False),
        (axes[1][1], "read: p99 latency (ms)", False),
        (axes[1][2], "login: p99 latency (ms)", False),
    ]
    for name, levels in summary.items():
        color = COLORS.get(name)
        label = LABELS.get(name, name)
        pts = [(lv, c) for lv, c in levels.items() if lv > 0 and "server_rss_kb" in c]
        if not pts:
            continue
        xs = [lv for lv, _ in pts]

        def line(ax, ys, style="o-", text=label):
            ax.plot(xs, ys, style, color=color, label=text, markersize=4)

        ax = panels[0][0]
        line(ax, [c["server_rss_kb"] / 1024 for _, c in pts], text=f"{label}: server")
        if pts[0][1]["redis_rss_kb"] is not None:
            line(ax, [c["redis_rss_kb"] / 1024 for _, c in pts], "s--", f"{label}: Redis")
        for ax, prefix in [(panels[1][0], "read"), (panels[2][0], "login")]:
            line(ax, [c[f"{prefix}_total_cpu_us"] for _, c in pts],
                 text=label + (" (server + Redis)" if pts[0][1][f"{prefix}_redis_cpu_us"] is not None else ""))
            if pts[0][1][f"{prefix}_redis_cpu_us"] is not None:
                line(ax, [c[f"{prefix}_server_cpu_us"] for _, c in pts], "o:", f"{label}: server alone")
        line(panels[3][0], [c["fill_logins_per_s"] for _, c in pts])
        line(panels[4][0], [c["read_p99_ms"] for _, c in pts])
        line(panels[5][0], [c["login_p99_ms"] for _, c in pts])
    for ax, title, log_y in panels:
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.set_xlabel("live sessions")
    for ax in [panels[0][0], panels[1][0]]:
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(
        "Cost as live sessions grow (one worker on one CPU; a shared 2-CPU VM: CPU and p99 are "
        "the better of the runs)", fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: live_sessions.py CSV SVG")
    with open(sys.argv[1], newline="") as f_in:
        rows = list(csv.DictReader(f_in))
    summary = summarize(rows)
    plot(summary, sys.argv[2])
    print(markdown(summary))


if __name__ == "__main__":
    main()
