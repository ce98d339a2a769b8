#!/usr/bin/env python3
"""Makes an executed notebook reproducible to commit: drops per-cell timing
metadata, numbers executed cells 1..n in order and writes the JSON with a
stable layout. Usage: notebooks_clean.py NOTEBOOK.ipynb..."""
import json
import sys

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    count = 0
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        if cell.get("cell_type") != "code":
            continue
        count += 1
        cell["execution_count"] = count
        for out in cell.get("outputs", []):
            if "execution_count" in out:
                out["execution_count"] = count
    with open(path, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
