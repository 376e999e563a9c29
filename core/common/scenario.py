"""Loads and validates scenario folders: scenario.toml, docs/, train.jsonl and eval.jsonl."""

import json
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

EVAL_KINDS = ("answerable", "fresh", "unanswerable", "style")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
SCENARIO_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ScenarioError(ValueError):
    """A scenario folder is unusable; the message lists every problem with file and line."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    system_prompt: str
    style_regex: str | None
    path: Path

    @property
    def docs_dir(self) -> Path:
        return self.path / "docs"

    @property
    def train_path(self) -> Path:
        return self.path / "train.jsonl"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.jsonl"

    def matches_style(self, text: str) -> bool:
        return bool(self.style_regex and re.search(self.style_regex, text))


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def load_scenario(path: str | Path) -> Scenario:
    """Reads scenario.toml; raises ScenarioError naming what is wrong."""
    path = Path(path)
    manifest = path / "scenario.toml"
    if not manifest.is_file():
        raise ScenarioError(f"{path}: no scenario.toml (is this a scenario folder?)")
    try:
        meta = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{manifest}: not valid TOML ({error})") from error
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise ScenarioError(f"{manifest}: not valid TOML (nested too deeply)") from None
    report = Report()
    name = meta.get("name", path.name)
    if not isinstance(name, str) or not SCENARIO_NAME.match(name):
        report.add(str(manifest), f"name {name!r} must be lower-case letters, digits, '_' or '-'")
    for key in ("title", "description", "system_prompt", "style_regex"):
        if key in meta and not isinstance(meta[key], str):
            report.add(str(manifest), f"{key} must be a string")
    style_regex = meta.get("style_regex") or None
    if isinstance(style_regex, str) and (problem := regex_problem(style_regex)):
        report.add(str(manifest), f"style_regex does not compile ({problem})")
    if report.problems:
        raise ScenarioError("\n".join(report.problems))
    return Scenario(
        name=name,
        title=meta.get("title") or name,
        description=meta.get("description", ""),
        system_prompt=meta.get("system_prompt") or DEFAULT_SYSTEM_PROMPT,
        style_regex=style_regex,
        path=path.resolve(),
    )


def regex_problem(pattern, flags: int = 0) -> str | None:
    """Why `pattern` is not a usable regex, or None. `re` raises more than re.error: OverflowError for
    a huge repeat count, RecursionError for deep nesting, TypeError for a non-string."""
    try:
        re.compile(pattern, flags)
    except (re.error, OverflowError, TypeError) as error:
        return str(error)
    except RecursionError:
        return "nested too deeply"
    return None


def list_scenarios(*roots: str | Path) -> list[Scenario]:
    """Every valid scenario folder directly under the roots, by name; the first root wins a name clash."""
    found: dict[str, Scenario] = {}
    for root in map(Path, roots):
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if (folder / "scenario.toml").is_file():
                try:
                    scenario = load_scenario(folder)
                except ScenarioError:
                    continue
                found.setdefault(scenario.name, scenario)
    return sorted(found.values(), key=lambda s: s.name)


def scenario_name_for(title: str) -> str:
    """'Acme HR policies!' -> 'acme_hr_policies'."""
    slug = re.sub(r"[^a-z0-9]+", "_", unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower())
    return slug.strip("_")[:40] or "scenario"


def create_scenario(root: Path, title: str, description: str, taken: set[str], system_prompt: str = "") -> Scenario:
    """A new, empty scenario folder under root (docs/ to be filled by upload); the name is made unique."""
    title, description = title.strip(), description.strip()
    if not title:
        raise ScenarioError("A new scenario needs a title.")
    if len(title) > 80 or len(description) > 2000:
        raise ScenarioError("Keep the title under 80 characters and the description under 2,000.")
    base = scenario_name_for(title)
    name, number = base, 2
    while name in taken or (Path(root) / name).exists():
        name, number = f"{base}_{number}", number + 1
    folder = Path(root) / name
    (folder / "docs").mkdir(parents=True)
    lines = [
        f"name = {_toml_string(name)}",
        f"title = {_toml_string(title)}",
        f"description = {_toml_string(description)}",
    ]
    if system_prompt.strip():
        lines.append(f"system_prompt = {_toml_string(system_prompt.strip())}")
    (folder / "scenario.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_scenario(folder)


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def read_jsonl(path: Path, report: Report) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; bad lines are reported, not raised."""
    rows = []
    try:
        # Split on newlines only: str.splitlines() also splits at U+2028, U+0085 and others, which a
        # JSON string may hold unescaped.
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        report.add(str(path), f"not UTF-8 text ({error})")
        return rows
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            report.add(f"{path}:{number}", f"bad JSON ({error.msg})")
            continue
        except (ValueError, RecursionError) as error:  # a number over 4,300 digits; arrays nested too deeply
            reason = "nested too deeply" if isinstance(error, RecursionError) else "a number too long"
            report.add(f"{path}:{number}", f"bad JSON ({reason})")
            continue
        if not isinstance(value, dict):
            report.add(f"{path}:{number}", "each line must be a JSON object")
            continue
        rows.append((number, value))
    return rows


def load_eval_questions(scenario: Scenario) -> list[dict]:
    report = Report()
    questions = check_eval(scenario.eval_path, report) if scenario.eval_path.exists() else []
    if report.problems:
        raise ScenarioError("\n".join(report.problems))
    return questions


def check_eval(path: Path, report: Report) -> list[dict]:
    questions, seen = [], set()
    for number, row in read_jsonl(path, report):
        where = f"{path}:{number}"
        missing = [key for key in ("id", "question", "kind") if not row.get(key)]
        if missing:
            report.add(where, f"missing {', '.join(missing)}")
            continue
        if not isinstance(row["id"], str | int) or not isinstance(row["question"], str):
            report.add(where, "id must be a string or a number, and question a string")
            continue
        if row["kind"] not in EVAL_KINDS:
            report.add(where, f"kind must be one of {', '.join(EVAL_KINDS)}")
        if row["id"] in seen:
            report.add(where, f"duplicate id {row['id']!r}")
        seen.add(row["id"])
        patterns = row.get("must_include", [])
        if not isinstance(patterns, list):
            report.add(where, "must_include must be a list of regexes")
            continue
        for pattern in patterns:
            if problem := regex_problem(pattern, re.IGNORECASE):
                report.add(where, f"must_include {pattern!r} does not compile ({problem})")
        questions.append(row)
    return questions


# What each kind of eval question shows a stakeholder, in plain words.
KIND_LABELS = {
    "answerable": "in the docs",
    "fresh": "changed since training",
    "unanswerable": "not in the docs",
    "style": "house style",
}


def questions_to_try(questions: list[dict], per_kind: int = 2) -> list[tuple[str, str]]:
    """(question, what it shows) for the first few eval questions of each kind: starting points for a demo."""
    return [
        (q["question"], label)
        for kind, label in KIND_LABELS.items()
        for q in [q for q in questions if q["kind"] == kind][:per_kind]
    ]
