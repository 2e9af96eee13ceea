"""Columns of `dvc exp show` for the workspace, and where they come from (params by section, metrics by file, deps).

Run from the repository root: python benchmarks/exp_show_columns.py
"""

import collections
import json
import subprocess


def leaves(value, prefix=""):
    """Dotted keys of the scalar (or list) leaves: one `dvc exp show` column each."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from leaves(inner, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def main() -> None:
    header = subprocess.run(["dvc", "exp", "show", "--csv", "--no-pager"], capture_output=True, text=True,
                            check=True).stdout.splitlines()[0]
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json", "--no-pager"], capture_output=True, text=True,
                                      check=True).stdout)[0]["data"]
    params, metrics = collections.Counter(), collections.Counter()
    for path, content in (shown.get("params") or {}).items():
        for key in leaves(content.get("data", {})):
            params[f"{path}:{key.split('.')[0]}"] += 1
    for path, content in (shown.get("metrics") or {}).items():
        metrics[path] += sum(1 for _ in leaves(content.get("data", {})))
    deps = len(shown.get("deps") or {})
    print(f"dvc exp show: {len(header.split(','))} columns = {sum(params.values())} params + {sum(metrics.values())} "
          f"metrics + {deps} deps + DVC's own")
    print("params by section:", ", ".join(f"{k} {v}" for k, v in params.most_common()))
    print("metrics by file:", ", ".join(f"{k} {v}" for k, v in metrics.most_common()))


if __name__ == "__main__":
    main()
