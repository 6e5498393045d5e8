"""`insight init-evaluation`: a new evaluation file of the user's own, built from a shipped demo file and checked.

Split from cli.py, which keeps the command's options and writes the file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

#: init-evaluation: the notebooks it can start an evaluation for, with the shipped demo file each copies parameters from.
INIT_TEMPLATES = {
    "rereferral": "demo.yml",
    "intervention_effect": "fgc.yml",
    "practice_insight": "practice.yml",
    "risk_model_audit": "risk_audit.yml",
}
#: Notebooks that need more than a data folder and councils: what to do instead of init-evaluation.
INIT_BY_HAND = {
    "programme_evaluation": "For a programme evaluation copy evaluations/programme.yml and give its adoption dates "
    "(docs/programme.md).",
    "skills_gap": "The skills gap explorer reads published data by area, not a council's extract: copy "
    "evaluations/skills.yml and list your areas (docs/skills.md).",
}


def _block_dumper():
    import yaml

    class BlockDumper(yaml.SafeDumper):
        """Safe YAML, with text of several lines (a causal graph) written as a readable block."""

    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    BlockDumper.add_representer(str, text)
    return BlockDumper


def check_choice(notebook: str, intervention: str | None) -> None:
    """A notebook init-evaluation can start, and options that fit it (InputError saying what to do instead)."""
    if notebook in INIT_BY_HAND:
        raise InputError(INIT_BY_HAND[notebook])
    if notebook not in INIT_TEMPLATES:
        raise InputError(
            f"--notebook must be one of {', '.join(INIT_TEMPLATES)}; got {notebook!r}. "
            + INIT_BY_HAND["programme_evaluation"]
        )
    if intervention is not None and notebook != "intervention_effect":
        raise InputError("--intervention is for --notebook intervention_effect.")


def evaluation_text(
    name: str,
    *,
    data: str,
    councils: str,
    notebook: str,
    title: str | None,
    description: str | None,
    intervention: str | None,
    target: Path,
) -> str:
    """The YAML of the new evaluation (``check_choice`` first), checked as `insight run` would check it (InputError)."""
    import yaml

    from .evaluation import load_evaluation, parse_evaluation
    from .plan import default_notebooks_dir

    template = load_evaluation(default_notebooks_dir().parent / "evaluations" / INIT_TEMPLATES[notebook])
    words = [c.strip() for c in councils.replace(",", " ").split()]
    raw = {
        "name": name,
        "title": title or template.title,
        "description": description
        or f"{template.title} For council{'s' if len(words) != 1 else ''} {', '.join(words)}, from {data}.",
        "notebook": notebook,
        "data": data,
        "councils": "all" if words == ["all"] else words,
        "disclosure_threshold": template.disclosure_threshold,
        "parameters": {**template.parameters, **({"intervention": intervention} if intervention else {})},
    }
    evaluation = parse_evaluation(raw, source=str(target), notebooks_dir=default_notebooks_dir())
    raw["councils"] = evaluation.councils if isinstance(evaluation.councils, str) else list(evaluation.councils)
    return (
        "# Written by 'insight init-evaluation'; edit it as you need (the keys: README.md; "
        "the parameters: the notebook's first cell).\n"
        + yaml.dump(raw, Dumper=_block_dumper(), sort_keys=False, allow_unicode=True, width=100)
    )
