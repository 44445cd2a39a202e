"""Time LibreOffice takes per Office document, as the worker runs it (workers/inputs/office.py).

    .venv/bin/python -m bench.office_convert [--runs 5]

For a DOCX, an XLSX and a PPTX of one page each: the first conversion of this process
("cold": LibreOffice's program files may not be in the page cache yet; the first run of
all also pays it for the others) and then ``--runs`` more ("warm"), each with a new
private profile as the worker does. Beside them, as the reference, the same document
through one profile reused from run to run (what a shared profile would save, at the
cost of state carried between documents and one conversion at a time). No Django, no
database. Prints seconds per document (median and range) and the ratio to the reference.
"""

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pymupdf

from tests.input_files import docx_bytes, pptx_bytes, xlsx_bytes
from workers.inputs import sniff
from workers.inputs.office import convert_to_pdf


def documents(folder: Path) -> dict[str, Path]:
    contents = {
        "docx": docx_bytes(
            heading="Quarterly Report",
            paragraph="Sales grew in every region.",
            cells=[["Region", "Sales"], ["North", "4711"]],
        ),
        "xlsx": xlsx_bytes([["Region", "Sales"], ["North", 4711], ["South", 815]]),
        "pptx": pptx_bytes(folder),
    }
    paths = {}
    for kind, content in contents.items():
        paths[kind] = folder / f"sample.{kind}"
        paths[kind].write_bytes(content)
    return paths


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def convert_once(source: Path, *, profile: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one conversion; a new private profile unless ``profile`` is given."""
    input_type = sniff(source, name=source.name)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        if profile is not None:
            (scratch_path / "profile").symlink_to(profile, target_is_directory=True)
        started, cpu = time.perf_counter(), children_cpu()
        produced = convert_to_pdf(source, input_type, scratch_path, soffice="soffice", timeout_seconds=300)
        elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu
        assert pymupdf.open(produced).page_count >= 1
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="warm conversions per document type")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        paths = documents(Path(folder))  # making the PPTX starts LibreOffice once: not cold for the OS
        shared = Path(folder) / "shared-profile"
        shared.mkdir()
        print("seconds per document: wall (CPU of LibreOffice's processes)")
        print(f"{'type':5} {'cold':>12} {'warm, median':>14} {'warm range':>12} {'reused profile':>16} {'ratio':>6}")
        for kind, path in paths.items():
            cold = convert_once(path)
            warm = [convert_once(path) for _ in range(runs)]
            convert_once(path, profile=shared)  # fills the shared profile
            reused = [convert_once(path, profile=shared) for _ in range(runs)]
            median = statistics.median(wall for wall, _ in warm)
            median_cpu = statistics.median(cpu for _, cpu in warm)
            reference = statistics.median(wall for wall, _ in reused)
            reference_cpu = statistics.median(cpu for _, cpu in reused)
            low, high = min(wall for wall, _ in warm), max(wall for wall, _ in warm)
            print(
                f"{kind:5} {cold[0]:5.2f} ({cold[1]:4.2f}) {median:6.2f} ({median_cpu:4.2f}) {low:5.2f}-{high:5.2f} "
                f"{reference:8.2f} ({reference_cpu:4.2f}) {median / reference:5.2f}x"
            )


if __name__ == "__main__":
    main()
