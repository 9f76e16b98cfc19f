"""Reading a BPMN file as untrusted XML: bounded, with no entity, DTD or network access.

A BPMN file comes from anywhere (a modeler, an email, a public repository), so the parser is
hardened before it sees a byte: the size is capped before parsing (lxml's ``huge_tree=False``
does not stop a 50 MB file), any DOCTYPE is refused outright (with ``load_dtd=False`` a remote
DTD still parses silently, and internal entity declarations are how "billion laughs" starts),
entities are never resolved and the network is never touched. Every problem is one
``DefinitionError`` at ``file:line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from engine.domain.errors import DefinitionError, Location

__all__ = ["MAX_BYTES", "BpmnXml", "parse_bpmn_bytes", "read_bpmn"]

MAX_BYTES = 5 * 1024 * 1024
"""The largest BPMN file read: 20 times the largest real model we know (a 231 KB Camunda
blueprint with three diagrams)."""

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class BpmnXml:
    """A parsed file: its root element and the text lines (to place a column on a line)."""

    path: str
    root: etree._Element
    lines: tuple[str, ...]

    def where(self, element: etree._Element) -> Location:
        """The element's start tag: lxml gives its line; the column is found on that line."""
        number = element.sourceline
        line = number if isinstance(number, int) else 0
        column = 1
        if 0 < line <= len(self.lines):
            local = etree.QName(element).localname
            found = re.search(rf"<[\w.-]*:?{re.escape(local)}\b", self.lines[line - 1])
            column = found.start() + 1 if found else 1
        return Location(self.path, line, column)


def read_bpmn(path: Path) -> BpmnXml:
    """Read and parse ``path`` (``DefinitionError`` for a file that is too big or not XML)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(
            f"cannot read the file: {exc.strerror or exc}", location=Location(str(path))
        ) from None
    return parse_bpmn_bytes(data, str(path))


def parse_bpmn_bytes(data: bytes, path: str = "<bpmn>") -> BpmnXml:
    if len(data) > MAX_BYTES:
        raise DefinitionError(
            f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB; a BPMN model this big is "
            "refused unread",
            location=Location(path),
        )
    if data.startswith(_UTF16_BOMS):
        # The DOCTYPE scan below reads bytes; a UTF-16 file would hide one from it.
        raise DefinitionError(
            "the file is UTF-16; save it as UTF-8 (every BPMN modeler can)", location=Location(path)
        )
    doctype = _DOCTYPE.search(data)
    if doctype is not None:
        line = data.count(b"\n", 0, doctype.start()) + 1
        raise DefinitionError(
            "the file declares a DOCTYPE or an entity; BPMN needs neither, and they are how XML "
            "files read local files, reach the network or expand without bound, so it is refused",
            location=Location(path, line, doctype.start() - data.rfind(b"\n", 0, doctype.start())),
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno or 0, 0)
        message = str(exc.msg or exc).split(", line ")[0]
        raise DefinitionError(
            f"not well-formed XML: {message}", location=Location(path, line, column + 1)
        ) from None
    try:
        text = data.decode(root.getroottree().docinfo.encoding or "utf-8", errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    return BpmnXml(path, root, tuple(text.splitlines()))
