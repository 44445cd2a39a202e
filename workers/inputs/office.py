"""Office and text documents to PDF with LibreOffice headless, in the worker.

Each conversion runs ``soffice --headless --convert-to pdf`` in a process group of its
own, with a private user profile in the scratch folder (LibreOffice allows one process
per profile, and a shared profile carries state from one document to the next), under a
time limit after which the whole group is killed; the profile forbids fetching linked
resources and running macros. Markdown is rendered to HTML first
(LibreOffice has no Markdown import); text is re-encoded to UTF-8 and imported with an
explicit filter, so its characters do not depend on the worker's locale.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import markdown

from workers.inputs.errors import InvalidInput
from workers.inputs.sniff import InputType

# LibreOffice import filters, by the extension of the file it is given (LibreOffice help,
# "CSV Filter Options" and "Filter Options for the Text (encoded) filter"): CSV
# comma-separated, quoted with ", in UTF-8 (character set 76), from line 1; text in UTF-8
# with LF line ends; HTML into Writer (its default, Writer/Web, exports blank pages).
IMPORT_FILTERS = {
    ".txt": "Text (encoded):UTF8,LF,,,",
    ".csv": "CSV:44,34,76,1",
    ".html": "HTML (StarWriter)",
}
# Text re-encoded to UTF-8 before import (HTML declares its own character set).
TEXT_TYPES = {"text/plain", "text/csv"}
MARKDOWN_EXTENSIONS = ["tables", "fenced_code", "sane_lists"]
# The private profile's settings: never fetch what a document links to (an <img> in HTML,
# a linked picture in a DOCX), or a document could make the worker request any URL it
# can reach, e.g. internal services or cloud metadata (LibreOffice's expert setting
# BlockUntrustedRefererLinks, added for CVE-2018-10583); and never run macros
# (MacroSecurityLevel 3: "very high", trusted locations only, of which there are none).
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks"
 oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel"
 oor:op="fuse"><value>3</value></prop></item>
</oor:items>
"""
# How often a running conversion asks whether to stop (a cancel, the worker shutting down).
POLL_SECONDS = 1.0
# How much of LibreOffice's own output a failure reason quotes (without its warning that
# Java is missing: the -nogui packages run without it).
STDERR_CHARS = 300


class OfficeConversionFailed(InvalidInput):
    """LibreOffice is missing, timed out, or could not read the file."""


def convert_to_pdf(
    source: Path,
    input_type: InputType,
    scratch: Path,
    *,
    soffice: str,
    timeout_seconds: float,
    interrupt: Callable[[], None] = lambda: None,
) -> Path:
    """Convert ``source`` (of ``input_type``) to ``scratch/out/document.pdf``.

    ``scratch`` is an empty folder the caller removes afterwards. Raises
    OfficeConversionFailed with a reason: LibreOffice missing (naming the program),
    past ``timeout_seconds`` (the process group is killed), or unable to read the file.
    ``interrupt`` is called every POLL_SECONDS while LibreOffice runs; whatever it
    raises (a cancel, a shutdown) kills the process group and propagates.
    """
    program = shutil.which(soffice)
    if program is None:
        raise OfficeConversionFailed(
            f"{input_type.label} files are converted with LibreOffice, and the worker has no {soffice!r} program "
            "(install LibreOffice, e.g. Debian's libreoffice-writer-nogui, or set SOFFICE_BINARY)."
        )
    document = prepare_input(source, input_type, scratch / "in")
    out = scratch / "out"
    profile = scratch / "profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(PROFILE_SETTINGS, encoding="utf-8")
    command = [
        program,
        "--headless",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        f"-env:UserInstallation={profile.as_uri()}",
    ]
    if document.suffix in IMPORT_FILTERS:
        command.append(f"--infilter={IMPORT_FILTERS[document.suffix]}")
    command += ["--convert-to", "pdf", "--outdir", str(out), str(document)]
    output = run_group(
        command, timeout_seconds=timeout_seconds, cwd=scratch, label=input_type.label, interrupt=interrupt
    )
    produced = out / f"{document.stem}.pdf"
    if not produced.is_file() or produced.stat().st_size == 0:
        said = " ".join(" ".join(line.split()) for line in output.splitlines() if "javaldx" not in line)
        said = said.strip()[-STDERR_CHARS:]
        raise OfficeConversionFailed(
            f"LibreOffice could not read the file as a {input_type.label} document" + (f" ({said})." if said else ".")
        )
    return produced


def prepare_input(source: Path, input_type: InputType, folder: Path) -> Path:
    """A copy of ``source`` LibreOffice can open: the extension picks its import filter."""
    folder.mkdir(parents=True)
    if input_type.content_type == "text/markdown":
        target = folder / "document.html"
        body = markdown.markdown(decoded_text(source), extensions=MARKDOWN_EXTENSIONS, output_format="html")
        target.write_text(
            f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>', encoding="utf-8"
        )
    elif input_type.content_type in TEXT_TYPES:
        target = folder / f"document{input_type.suffix}"
        target.write_text(decoded_text(source), encoding="utf-8")
    else:
        target = folder / f"document{input_type.suffix}"
        try:
            os.link(source, target)  # no copy of a large file; same file system as the data folder
        except OSError:
            shutil.copyfile(source, target)
    return target


def decoded_text(path: Path) -> str:
    """Text in UTF-8 (with or without BOM) or UTF-16 with a BOM; otherwise Windows-1252,
    which maps every byte (the usual encoding of text that is not UTF-8)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def run_group(
    command: list[str], *, timeout_seconds: float, cwd: Path, label: str, interrupt: Callable[[], None] = lambda: None
) -> str:
    """Run ``command`` in a new process group; kill the whole group on expiry or when
    ``interrupt`` raises. Its output."""
    deadline = time.monotonic() + timeout_seconds
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while True:
            try:
                output, _ = process.communicate(timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise OfficeConversionFailed(
                        f"LibreOffice did not finish converting the {label} document within {timeout_seconds:g} s "
                        "(OFFICE_TIMEOUT_SECONDS)."
                    ) from None
                interrupt()
    except BaseException:  # past its time, cancelled, or the worker is stopping: leave no LibreOffice behind
        kill_group(process)
        raise
    kill_group(process)  # helpers LibreOffice may have left in its group (oosplash's child)
    return output.decode("utf-8", "replace")


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
