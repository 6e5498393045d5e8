"""A stand-in ``quarto`` for machines without it, so the Quarto route's own steps run in every CI.

It speaks just enough of the protocol insight uses (batch/quarto.py, batch/quarto_shell.py): ``render``
builds a home page and the reports' shell page with its placeholders, ``pandoc`` prints a page body with
the markers of templates/insight_page.html (or writes its ``--output``), ``typst compile`` writes its last
argument. It never writes to an input (a template or a filter)."""

from __future__ import annotations

import stat
from pathlib import Path

from insightlib.batch import quarto_shell as qs

SHELL = (
    f'<html><head><title>{qs._TITLE}</title></head><body><h1 class="title">{qs._TITLE}</h1>'
    f'<a href="{qs._PDF}.pdf">PDF</a><nav><ul> <li><a href="#{qs._HEADING.lower()}">x</a></li> </ul></nav>'
    f'<section id="{qs._HEADING.lower()}"><p>{qs._START}</p>'
    f"<div class=warning><p>{qs._CALLOUT}</p></div><p>{qs._END}</p>"
    f"<div class=important><p>{qs._CALLOUT}</p></div><p>{qs._END}</p> </section></body></html>"
)
FRAGMENT = "<ul>\\n</ul>\\n<!--insight-body-->\\n<p>page</p>\\n<!--insight-title-->\\nA page\\n<!--insight-pagetitle-->\\nA page\\n"


def write_fake_quarto(bindir: Path) -> Path:
    """Write the stand-in as ``bindir/quarto`` (executable) and return its path."""
    bindir.mkdir(parents=True, exist_ok=True)
    shell_dir = f"../_site/{Path(qs.SHELL_PAGE).parent.as_posix()}"
    script = bindir / "quarto"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = render ]; then\n'
        f"  mkdir -p ../_site/site_libs {shell_dir} && echo '<html>ok</html>' > ../_site/index.html\n"
        f"  printf '%s' '{SHELL}' > {shell_dir}/report.html\n"
        'elif [ "$1" = typst ]; then for out; do :; done; echo made > "$out"\n'
        "else\n"
        '  prev=; out=; for a; do [ "$prev" = --output ] && out=$a; prev=$a; done\n'
        f'  if [ -n "$out" ]; then echo made > "$out"; else printf \'{FRAGMENT}\'; fi\n'
        "fi\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script
