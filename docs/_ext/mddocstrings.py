"""Reads the package's docstrings as the Markdown-flavoured text they are.

The docstrings follow Keras's style: Google sections, `single backticks` for
code, fenced code blocks, pipe tables and `-` lists that start right after a
line of text. Sphinx reads reStructuredText, where each of these means
something else or is an error. This hook, run before napoleon, rewrites them:
fences become `code-block` directives, pipe tables become `list-table`s, single
backticks become inline literals, and lists get the blank lines around them
that reStructuredText needs. The source docstrings stay as they are.
"""

import re

_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
_BULLET = re.compile(r"^(\s*)[-*] \S")
# Roles and double-backtick literals are left alone; single backticks are code.
_LITERAL = re.compile(r":[\w:+-]+:`[^`]*`|``[^`]*``|`([^`]+?)`")


def _indent(line):
    return len(line) - len(line.lstrip())


def _fences(lines):
    out, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        pad, language = match.group(1), match.group(2) or "text"
        body, i = [], i + 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if out and out[-1].strip():
            out.append("")
        out += [f"{pad}.. code-block:: {language}", ""]
        out += [f"{pad}   {line[len(pad) :]}" if line.strip() else "" for line in body]
        out.append("")
    return out


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(lines):
    out, i = [], 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("|"):
            out.append(lines[i])
            i += 1
            continue
        pad = lines[i][: _indent(lines[i])]
        rows = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            rows.append(lines[i])
            i += 1
        cells = [_cells(row) for row in rows if not re.fullmatch(r"[\s|:-]+", row)]
        if out and out[-1].strip():
            out.append("")
        if len({len(row) for row in cells}) == 1:
            out += [f"{pad}.. list-table::", f"{pad}   :header-rows: 1", ""]
            for row in cells:
                out.append(f"{pad}   * - {row[0] or '..'}")
                out += [f"{pad}     - {cell or '..'}" for cell in row[1:]]
        else:
            out += [f"{pad}.. code-block:: text", ""] + [f"{pad}   {row.strip()}" for row in rows]
        out.append("")
    return out


def _lists(lines):
    out, item_indent = [], None
    for line in lines:
        bullet = _BULLET.match(line)
        previous = out[-1] if out else ""
        if bullet:
            if previous.strip() and item_indent is None:
                out.append("")
            item_indent = _indent(line)
        elif line.strip() and item_indent is not None and _indent(line) <= item_indent:
            if previous.strip():
                out.append("")
            item_indent = None
        elif not line.strip():
            item_indent = None
        out.append(line)
    return out


def _literals(lines):
    out, in_code, prose = [], None, []

    def flush():
        # Prose lines are joined first: a code span may wrap onto the next line.
        if prose:
            text = "\n".join(prose)
            out.extend(_LITERAL.sub(lambda match: _literal(match, text), text).split("\n"))
            prose.clear()

    for line in lines:
        stripped = line.strip()
        if in_code is not None and stripped and _indent(line) <= in_code:
            in_code = None
        if stripped.startswith(".. code-block::") or stripped.endswith("::"):
            flush()
            in_code = _indent(line)
            out.append(line)
        elif in_code is not None or stripped.startswith((">>>", "...")) or not stripped:
            flush()
            out.append(line)
        else:
            prose.append(line)
    flush()
    return out


def _literal(match, line):
    # Inline markup must stand apart from the words around it: `Input`s is
    # written ``Input``\ s, where the escaped space renders as nothing.
    if match.group(1) is None:
        return match.group(0)
    before = line[match.start() - 1] if match.start() else " "
    after = line[match.end()] if match.end() < len(line) else " "
    text = f"``{match.group(1)}``"
    if before.isalnum() or before == "_":
        text = "\\ " + text
    if after.isalnum() or after == "_":
        text += "\\ "
    return text


def convert(lines):
    """The reStructuredText form of a docstring's lines."""
    return _literals(_lists(_tables(_fences(list(lines)))))


def process_docstring(app, what, name, obj, options, lines):
    lines[:] = convert(lines)


def setup(app):
    # Before napoleon (priority 500), which reads the Google sections.
    app.connect("autodoc-process-docstring", process_docstring, priority=400)
    return {"parallel_read_safe": True}
