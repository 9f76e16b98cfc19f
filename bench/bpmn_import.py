"""BPMN import time, beside baselines measured in the same run.

    .venv/bin/python bench/bpmn_import.py [--repeat 20]

* the shipped ``workflows/sp4n-lapor.bpmn`` read into a model (``load_bpmn_model``), against
  the same model loaded from its YAML (``load_model``);
* the largest corpus file (``k02``, a 231 KB Camunda 8 complaint blueprint, refused with its
  problems), against lxml parsing the same bytes and SpiffWorkflow's parser building its specs
  from that tree (structure only: nothing of the file is run).

Machines here are shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from engine.definitions.loader import load_bpmn_model, load_model  # noqa: E402
from engine.domain.errors import LaporError  # noqa: E402

CORPUS = Path(os.environ.get("LAPOR_BPMN_CORPUS", ROOT.parent / "shared" / "bpmn-corpus"))
LARGEST = CORPUS / "k02-c8-bank-complaint-dispute-handling.bpmn"


def best_ms(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, best) of ``repeat`` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), min(times)


def refused(path: Path) -> Callable[[], object]:
    def run() -> object:
        try:
            return load_bpmn_model(path)
        except LaporError as exc:
            return exc

    return run


def spiff(path: Path) -> Callable[[], object]:
    from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser

    def run() -> object:
        parser = BpmnParser()
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
        parser.add_bpmn_xml(tree, str(path))
        return [parser.get_spec(p) for p in parser.get_process_ids()]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat
    rows: list[tuple[str, float, float, str]] = []
    workflows, policies = ROOT / "workflows", ROOT / "policies"
    yaml = best_ms(lambda: load_model(workflows / "sp4n-lapor.yaml", policies), repeat)
    bpmn = best_ms(lambda: load_bpmn_model(ROOT / "workflows/sp4n-lapor.bpmn"), repeat)
    rows.append(("sp4n-lapor.yaml -> model (baseline)", *yaml, "1.00"))
    rows.append(("sp4n-lapor.bpmn -> model", *bpmn, f"{bpmn[0] / yaml[0]:.2f}"))
    size = LARGEST.stat().st_size // 1024
    raw = best_ms(lambda: etree.parse(str(LARGEST)), repeat)
    ours = best_ms(refused(LARGEST), repeat)
    rows.append((f"k02 ({size} KB) lxml parse only (baseline)", *raw, "1.00"))
    rows.append(("k02 lapor import (refused, all problems)", *ours, f"{ours[0] / raw[0]:.2f}"))
    try:
        theirs = best_ms(spiff(LARGEST), repeat)
        rows.append(("k02 SpiffWorkflow parser, specs", *theirs, f"{theirs[0] / raw[0]:.2f}"))
    except Exception as exc:  # a baseline that cannot run is reported, not fatal
        print(f"SpiffWorkflow baseline skipped: {type(exc).__name__}: {exc}")
    print(f"{'what':46} {'median ms':>10} {'best ms':>9} {'ratio':>6}")
    for what, median, best, ratio in rows:
        print(f"{what:46} {median:10.2f} {best:9.2f} {ratio:>6}")


if __name__ == "__main__":
    main()
