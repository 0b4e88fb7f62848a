"""Renders the Helm chart to plain manifests, or checks that committed ones are up to date.

    python scripts/render_chart.py deploy/helm/verdict -f VALUES --out deploy/kubernetes
    python scripts/render_chart.py deploy/helm/verdict -f VALUES --check deploy/kubernetes

One file per template (`deploy/kubernetes/deployment.yaml` from `templates/deployment.yaml`),
as `helm template --output-dir` lays them out. `--check` exits 1 naming every file that differs,
is missing or is stale. Run by `make manifests` (write) and `make check` (check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chart.chart import Release, render
from chart.gotemplate import TemplateError


def files(chart: Path, values: list[Path], release: Release) -> dict[str, str]:
    """Output file name -> content."""
    rendered = render(chart, values, release)
    return {Path(template).name: text for template, text in rendered.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    parser.add_argument("--release", default="verdict")
    parser.add_argument("--namespace", default="verdict")
    parser.add_argument("--kube-version", default="v1.27.0")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write the manifests into this folder")
    target.add_argument("--check", type=Path, help="compare with the manifests in this folder")
    args = parser.parse_args(argv)
    try:
        wanted = files(
            args.chart, args.values, Release(args.release, args.namespace, args.kube_version)
        )
    except TemplateError as error:
        print(f"render failed: {error}", file=sys.stderr)
        return 1
    folder: Path = args.out or args.check
    present = {p.name for p in folder.glob("*.yaml")} if folder.exists() else set()
    if args.out is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in present - set(wanted):
            (folder / stale).unlink()
        for name, text in wanted.items():
            (folder / name).write_text(text)
        print(f"wrote {len(wanted)} manifest file(s) to {folder}")
        return 0
    problems = [f"missing {name}" for name in sorted(set(wanted) - present)]
    problems += [f"stale {name}" for name in sorted(present - set(wanted))]
    problems += [
        f"differs {name}"
        for name in sorted(set(wanted) & present)
        if (folder / name).read_text() != wanted[name]
    ]
    if problems:
        print(
            "manifests out of date with the chart (run make manifests): " + ", ".join(problems),
            file=sys.stderr,
        )
        return 1
    print(f"{len(wanted)} manifest file(s) match the chart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
