"""Source of the tiny code bundle the runner tests execute (stands in for `steps/`).

Each task is `python bootstrap.py tasks.<name> ...`, run by the real steps/bootstrap.py, as the
builder's entrypoints are."""

TASKS = {
    "tasks/__init__.py": "",
    "tasks/common.py": '''
import argparse, json, os, pathlib
def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--output", default=None)
    p.add_argument("--tag", default="")
    p.add_argument("--extra", action="append", default=[])
    return p.parse_args()
def files(folder):
    base = pathlib.Path(folder)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
def echo(args):
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    info = {"argv": __import__("sys").argv, "tag": args.tag, "extra": args.extra,
            "inputs": {d: files(d) for d in args.input},
            "env": {k: v for k, v in os.environ.items() if k.startswith(("WAVEPIPE", "AWS_ENDPOINT", "LOKY", "MY_"))},
            "host": os.environ.get("WAVEPIPE_CURRENT_HOST")}
    (out / f"echo-{info['host']}.json").write_text(json.dumps(info))
    for d in args.input:
        for rel in files(d):
            dst = out / "copied" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes((pathlib.Path(d) / rel).read_bytes())
    return out
''',
    "tasks/echo.py": "from tasks.common import parse, echo\necho(parse())\n",
    "tasks/fail.py": '''
import sys
from tasks.common import parse, echo
out = echo(parse())
(out / "partial.txt").write_text("half")
sys.exit(3)
''',
    "tasks/raise.py": '''
from tasks.common import parse, echo
echo(parse())
raise ValueError("record r1: header names 3 signals, the data has 2")
''',
    "tasks/message.py": '''
import os, sys
from tasks.common import parse, echo
echo(parse())
with open(os.environ["WAVEPIPE_FAILURE_MESSAGE"], "w") as fh:
    fh.write("featurize: 2/3 records failed; every error: errors.parquet")
print("ValueError: not this line")
sys.exit(1)
''',
    "tasks/fail_if_marker.py": '''
import os, sys
from tasks.common import parse, echo
echo(parse())
if os.path.exists(os.environ["MY_FAIL_MARKER"]):
    sys.exit(1)
''',
    "tasks/crash_once.py": '''
import os, signal
from tasks.common import parse, echo
marker = os.environ["MY_CRASH_MARKER"]
if not os.path.exists(marker):
    open(marker, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)
echo(parse())
''',
    "tasks/exclusive.py": '''
import os, time
from tasks.common import parse, echo
lock = os.path.join(os.environ["MY_SHARED_DIR"], "running")
fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # fails if another step is running right now
time.sleep(0.3)
os.close(fd); os.unlink(lock)
echo(parse())
''',
    "tasks/sleep.py": '''
import os, time, pathlib
pathlib.Path(os.environ["MY_PID_FILE"]).write_text(str(os.getpid()))
time.sleep(120)
''',
    "tasks/progress.py": '''
import json, pathlib
from tasks.common import parse
args = parse()
pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
(pathlib.Path(args.output) / "progress.json").write_text(json.dumps({"records_done": 3, "records_total": 4}))
''',
    "tasks/items.py": '''
import json, pathlib
from tasks.common import parse
args = parse()
out = pathlib.Path(args.output)
out.mkdir(parents=True, exist_ok=True)
# --extra ITEM (JSON) per item: the report holds them as a JSON list string, as Reconcile's shard_items;
# with --tag raw, the report's "items" is the one --extra value as it is
items = json.loads(args.extra[0]) if args.tag == "raw" else json.dumps([json.loads(i) for i in args.extra])
(out / "report.json").write_text(json.dumps({"items": items}))
''',
    "tasks/timed.py": '''
import json, pathlib, time
from tasks.common import parse, echo
start = time.time()
time.sleep(0.5)
out = echo(parse())
(out / "times.json").write_text(json.dumps([start, time.time()]))
''',
}
