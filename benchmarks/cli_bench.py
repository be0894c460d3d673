"""How long the everyday commands take, as a user types them: `--help`, and `validate`,
`definition`, `graph` and `plan` on the example, first with an empty definition cache (a build,
as before the cache) and then again (config and code unchanged: a hit).

    .venv/bin/python benchmarks/cli_bench.py [--repeat N] [--config F]

Each figure is the median wall time of N runs of `python deploy.py <command>` in a fresh process,
so imports count, with the median CPU time (user + system) of the same runs beside it: on a shared
machine the wall time grows with the load, the CPU time much less. The environment is this one, except that Python may write bytecode (a user's
default: this machine sets PYTHONDONTWRITEBYTECODE, which makes every run compile wavepipe's own
modules again); `--no-bytecode` keeps the variable, for comparison. Targets (issue 24): --help under
0.5 s; the others under 1.5 s on a hit. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["validate"], ["definition"], ["graph"], ["plan"])


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `deploy.py <argv>` in a fresh process."""
    began, cpu = time.perf_counter(), _cpu()
    done = subprocess.run([sys.executable, str(ROOT / "deploy.py"), *argv], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - began, _cpu() - cpu
    if done.returncode not in (0,):
        print(f"  ({' '.join(argv)} exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]})")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--config", default=str(ROOT / "config" / "example.yaml"))
    ap.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as this machine has it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "WAVEPIPE_CACHE": cache}
        # plan reads the sample data, which the first `local` writes: write it here instead.
        subprocess.run([sys.executable, str(ROOT / "deploy.py"), "sample-data", "--out",
                        str(Path(workdir) / "s3" / "wavepipe-example" / "sample")], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, check=True)
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            timed(["--help"], env)  # writes wavepipe's bytecode once, as any first run does
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
              f"bytecode {'off' if args.no_bytecode else 'on'}; median of {args.repeat} (seconds)")
        print(f"{'command':<12} {'miss (build)':>12} {'hit':>8} {'hit CPU':>8}")
        for argv in COMMANDS:
            full = [*argv, "--config", args.config] if argv != ["--help"] else argv
            if argv == ["plan"]:
                full += ["--workdir", workdir]
            for path in Path(cache).glob("definitions/*"):
                path.unlink()
            miss, _ = timed(full, env)
            hits = [timed(full, env) for _ in range(args.repeat)]
            wall, cpu = (statistics.median(h[i] for h in hits) for i in (0, 1))
            print(f"{argv[0]:<12} {miss:>12.2f} {wall:>8.2f} {cpu:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
