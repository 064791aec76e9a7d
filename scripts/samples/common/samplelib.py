"""The python half of the sample pipelines' shared helper module (the shell half is
common/lab.sh): running tshark / capinfos on a capture, the plain TSV tables every pipeline
writes and reads, and the Markdown tables of the generated READMEs. Stdlib only.

Imported by module name: common/lab.sh puts scripts/samples/common on PYTHONPATH.
"""
import csv
import subprocess
from pathlib import Path

TAB = "\t"


def run(cmd, f):
    """Run `cmd` with every "{f}" replaced by the capture `f`: (stdout, stderr stripped, exit code)."""
    cmd = [c.replace("{f}", str(f)) for c in cmd]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.stdout, p.stderr.strip(), p.returncode


def run_checked(cmd, f):
    """`run`, but a failing tool ends the pipeline with its command and message."""
    out, err, rc = run(cmd, f)
    if rc != 0:
        cmd = [c.replace("{f}", str(f)) for c in cmd]
        raise SystemExit(f"{' '.join(cmd)}: exit {rc}: {err[:300]}")
    return out


def read_tsv(path, quoting=csv.QUOTE_NONE):
    """A TSV table with a header line, as dicts (no quoting: values never hold tabs)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=TAB, quoting=quoting))


def write_tsv(path, rows, cols=None):
    """Plain TSV, no quoting: header `cols` (default: the keys of the first row; a table with
    neither rows nor columns is the header `file`), then one line per row dict."""
    if not rows and not cols:
        Path(path).write_text("file\n")
        return
    cols = cols or list(rows[0].keys())
    out = [TAB.join(cols)]
    for r in rows:
        vals = [str(r.get(c, "")) for c in cols]
        assert not any(TAB in v or "\n" in v for v in vals), vals
        out.append(TAB.join(vals))
    Path(path).write_text("\n".join(out) + "\n")


def md_rows(head, rows):
    """A Markdown table of list rows under the header cells `head` ('|' escaped in cells)."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def md_table(rows, cols, headers=None):
    """A Markdown table of the columns `cols` of dict rows (header `headers`, default `cols`)."""
    return md_rows(headers or cols, [[r.get(c, "") for c in cols] for r in rows])
