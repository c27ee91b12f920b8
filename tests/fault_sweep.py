"""Print the fault sweep's counts: every case of tests/fault_cases.py, and a number of
random malformed calls from tests/test_fault_property.py, each classified as good / poor /
crash / data loss / silent wrong / unsafe.

    python tests/fault_sweep.py [--property N] [--verbose]
"""
import argparse
import os
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # as tests/conftest.py does

import fault_cases  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--property", type=int, default=300, metavar="N",
                    help="random malformed calls from the property test (default 300)")
    ap.add_argument("--verbose", action="store_true", help="print every case that is not good")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this")
    args = ap.parse_args(argv)
    counts, per_item, bad = Counter(), {}, []
    for name in sorted(fault_cases.CASES, key=lambda n: (fault_cases.CASES[n][0], n)):
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            verdict, detail = fault_cases.run_case(name, tmp)
        item = fault_cases.CASES[name][0]
        counts[verdict] += 1
        per_item.setdefault(item, Counter())[verdict] += 1
        if verdict != "good":
            bad.append(f"  item {item} {name}: {verdict}: {detail[:200]}")
        print(f"{verdict:>12}  item {item}  {name}", flush=True)
    if args.property:
        import test_fault_property as prop
        pc, pbad = prop.sweep(args.property)
        for verdict, n in pc.items():
            counts[verdict] += n
        per_item["property"] = pc
        bad += [f"  property seed {seed}: {verdict}: {detail[:200]}" for seed, verdict, detail in pbad]
    total = sum(counts.values())
    print("\nverdict per issue item (catalog) and for the random calls (property):")
    for item, c in per_item.items():
        print(f"  {str(item):>8}: " + ", ".join(f"{v} {c[v]}" for v in fault_cases.VERDICTS if c[v]))
    print(f"\ncases tried {total} / good {counts['good']} / poor {counts['poor']} / "
          f"crash {counts['crash']} / data loss {counts['data loss']} / "
          f"silent wrong {counts['silent wrong']} / unsafe {counts['unsafe']}")
    if bad:
        print("\nnot good:\n" + "\n".join(bad))
    return 0 if counts["good"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
