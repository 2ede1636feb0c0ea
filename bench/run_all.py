"""Every benchmark, one after another, printed as Markdown (what `make bench` runs).

    python -m bench.run_all [--quick] [--skip-e2e]

--quick: fewer repeats and requests, for a smoke run. The end-to-end part starts the
service itself (bench.e2e) and is skipped with a note when the service package is missing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import time

from bench import decode, e2e, gpu, model
from bench.common import machine_note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"# make bench, {datetime.date.today().isoformat()}\n\n{machine_note()}\n", flush=True)
    print("## decode\n", flush=True)
    decode.main(["--repeat", "1" if args.quick else "3"])
    print("\n## model\n", flush=True)
    model.main(["--repeat", "3" if args.quick else "7"])
    print("\n## end to end\n", flush=True)
    if args.skip_e2e:
        print("skipped (--skip-e2e)")
    elif importlib.util.find_spec("service.app") is None:
        print("skipped: the service package (service/app.py) is not there")
    else:
        e2e.main(["--requests", "8" if args.quick else "32", "--time-cap", "60"])
        print("\n### /classify of the 60 s 1080p clip, one at a time: defaults vs exact frames on one decoder\n",
              flush=True)
        e2e.main(["--clip", "long", "--requests", "3" if args.quick else "6", "--time-cap", "60",
                  "--concurrency", "1", "--config", "",
                  "--config", "DECODE_MODE=exact,DECODE_LOOP_FILTER=true,DECODE_THREADS=0"])
    print("\n## GPU\n", flush=True)
    gpu.main(["--repeat", "5" if args.quick else "20", "--seconds", "10" if args.quick else "30"])
    print(f"\n(all benchmarks: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
