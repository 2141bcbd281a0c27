"""A Rasa project (2.x/3.x YAML) read whole: NLU examples with their entity annotations, synonyms, lookup
tables and regexes; responses from the domain *and* from data/ files; rules and stories; test stories; the
domain's slots, forms and actions. Every item keeps the file and line it came from, for the migration report.

Bad input fails with the file and line: YAML errors name where the problem starts and where the parser
stopped; a non-UTF-8 file names the line of the first bad byte. Empty NLU examples are kept as problems
(never trained on as the text `""`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from training.transcripts.source import TranscriptError

SKIP_FILES = ("config", "credentials", "endpoints")
# `[text](entity)`, `[text](entity:value)`, `[text]{"entity": "e", "value": "v", "role": ...}`
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\(([^)]*)\)|(\{[^}]*\}))")
TEST_KEYS = ("stories", "e2e_tests", "test_conversations")  # the last two: pre-2.0 keys some projects still have


@dataclass(frozen=True)
class Where:
    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def relative_to(self, root: Path | None) -> str:
        """`file:line` with the file relative to the project folder (as the report shows it)."""
        file = Path(self.file)
        if root is not None and Path(root).is_dir() and file.is_relative_to(root):
            file = file.relative_to(root)
        return f"{file}:{self.line}" if self.line else str(file)


@dataclass(frozen=True)
class Annotation:
    text: str  # as written in the example
    entity: str
    value: str  # the synonym's canonical value, or the text
    role: str = ""
    group: str = ""


@dataclass(frozen=True)
class NluExample:
    text: str  # annotations stripped
    where: Where
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class Step:
    kind: str  # intent | action | active_loop | slot_was_set | checkpoint | or | user | other
    name: str
    where: Where
    text: str = ""  # test stories: what the user wrote (annotations stripped)


@dataclass(frozen=True)
class Flow:
    """A rule, a story or a test story."""

    kind: str  # rule | story | test
    name: str
    where: Where
    steps: tuple[Step, ...]
    condition: tuple[str, ...] = ()  # a rule's `condition:` items, as short text
    conversation_start: bool = False
    wait_for_user_input: bool = True


@dataclass(frozen=True)
class Response:
    name: str
    variants: tuple[dict, ...]
    where: Where


@dataclass
class RasaProject:
    path: Path
    examples: dict[str, list[NluExample]] = field(default_factory=dict)  # intent -> examples
    empty_examples: list[tuple[str, Where]] = field(default_factory=list)  # (intent, where) of `- ` / `- ""`
    synonyms: dict[str, tuple[list[str], Where]] = field(default_factory=dict)  # canonical -> (aliases, where)
    lookups: dict[str, tuple[list[str], Where]] = field(default_factory=dict)
    regexes: dict[str, tuple[list[str], Where]] = field(default_factory=dict)
    responses: dict[str, Response] = field(default_factory=dict)
    response_conflicts: list[tuple[str, Where, Where]] = field(default_factory=list)  # (name, kept, dropped)
    flows: list[Flow] = field(default_factory=list)  # rules and stories (training data)
    tests: list[Flow] = field(default_factory=list)  # test stories (held out)
    test_examples: dict[str, list[NluExample]] = field(default_factory=dict)  # test NLU data
    domain: dict = field(default_factory=dict)
    domain_where: dict[str, Where] = field(default_factory=dict)  # top-level domain key -> where
    nlu_files: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every YAML file read

    @property
    def intents_in_domain(self) -> list[str]:
        out = []
        for item in self.domain.get("intents") or []:
            out.append(str(next(iter(item))) if isinstance(item, dict) else str(item))
        return out


# -- reading ---------------------------------------------------------------------------------------------
def load_project(path: Path) -> RasaProject:
    """Read a project folder (data/, tests/, domain.yml or domain/) or one NLU file."""
    path = Path(path)
    if not path.exists():
        raise TranscriptError(str(path), 0, "no such file or folder")
    project = RasaProject(path=path)
    if path.is_file():
        files, domain_files = [path], []
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.stem not in SKIP_FILES
                       and not p.name.startswith(("domain", ".")) and not _in_domain_dir(path, p)
                       and "results" not in p.relative_to(path).parts)
        domain_files = [p for p in (path / "domain.yml", path / "domain.yaml") if p.is_file()]
        if (path / "domain").is_dir():
            domain_files += sorted((path / "domain").rglob("*.y*ml"))
    for file in domain_files:
        _read_domain(project, file)
    for file in files:
        _read_data(project, file, test=_is_test_file(path, file))
    if not project.nlu_files and not project.domain:
        raise TranscriptError(str(path), 0, "no Rasa NLU data or domain found (YAML files with an 'nlu:' section, "
                                            "or domain.yml)")
    return project


def _in_domain_dir(root: Path, p: Path) -> bool:
    return (root / "domain").is_dir() and (root / "domain") in p.parents


def _is_test_file(root: Path, file: Path) -> bool:
    rel = file.relative_to(root) if root.is_dir() else Path(file.name)
    return "tests" in rel.parts[:-1] or rel.name.startswith("test_")


def _read_domain(project: RasaProject, file: Path) -> None:
    doc = load_yaml(file)
    if not isinstance(doc, dict):
        return
    project.files.append(file)
    for key, value in doc.items():
        if key in ("responses", "templates"):
            _add_responses(project, value, file, doc)
            continue
        if isinstance(value, dict) and isinstance(project.domain.get(key), dict):
            project.domain[key].update(value)  # a domain split over several files
        elif isinstance(value, list) and isinstance(project.domain.get(key), list):
            project.domain[key] += value
        else:
            project.domain[key] = value
        project.domain_where.setdefault(str(key), Where(str(file), _line(doc, key)))


def _read_data(project: RasaProject, file: Path, test: bool) -> None:
    doc = load_yaml(file)
    if not isinstance(doc, dict):
        return
    project.files.append(file)
    if isinstance(doc.get("responses"), dict):
        _add_responses(project, doc["responses"], file, doc)
    if "nlu" in doc:
        project.nlu_files.append(file)
        _read_nlu(project, doc["nlu"] or [], file, project.test_examples if test else project.examples)
    for key in ("rules", *TEST_KEYS):
        for item in doc.get(key) or []:
            if not isinstance(item, dict):
                continue
            flow = _flow(item, file, "rule" if key == "rules" else "story")
            is_test = test or any(s.text for s in flow.steps)  # steps with `user:` text are test stories
            (project.tests if is_test and key != "rules" else project.flows).append(
                Flow(**{**flow.__dict__, "kind": "test"}) if is_test and key != "rules" else flow)


def _add_responses(project: RasaProject, responses: Any, file: Path, doc: Any) -> None:
    if not isinstance(responses, dict):
        raise TranscriptError(str(file), _line(doc, "responses"), "responses: must be a mapping of name to variants")
    for name, variants in responses.items():
        where = Where(str(file), _line(responses, name))
        if isinstance(variants, dict):
            variants = [variants]
        if not isinstance(variants, list):
            raise TranscriptError(str(file), where.line, f"response {name}: expected a list of variants")
        kept = tuple(v if isinstance(v, dict) else {"text": str(v)} for v in variants if v is not None)
        old = project.responses.get(str(name))
        if old is not None:  # the same response in two files (Rasa 3 moved them into data/): keep the first
            if _plain(old.variants) != _plain(kept):
                project.response_conflicts.append((str(name), old.where, where))
            continue
        project.responses[str(name)] = Response(str(name), kept, where)


def _plain(variants) -> list:
    return [{k: v for k, v in dict(x).items()} for x in variants]


def _read_nlu(project: RasaProject, items: Any, file: Path, into: dict[str, list[NluExample]]) -> None:
    if not isinstance(items, list):
        raise TranscriptError(str(file), 0, "nlu: must be a list of intent, synonym, regex or lookup blocks")
    for item in items:
        if not isinstance(item, dict):
            continue
        where = Where(str(file), getattr(item, "line", 0))
        lines = list(_example_lines(item, file))
        if "intent" in item:
            intent = str(item["intent"])
            for text, line in lines:
                if _empty(text):
                    project.empty_examples.append((intent, Where(str(file), line)))
                    continue
                into.setdefault(intent, []).append(parse_example(text, Where(str(file), line)))
        else:
            for kind, table in (("synonym", project.synonyms), ("lookup", project.lookups),
                                ("regex", project.regexes)):
                if kind in item:
                    texts = [t for t, _ in lines if not _empty(t)]
                    old = table.get(str(item[kind]))
                    table[str(item[kind])] = ((old[0] if old else []) + texts, old[1] if old else where)


def _empty(text: str) -> bool:
    return text.strip() in ("", '""', "''")


def parse_example(text: str, where: Where) -> NluExample:
    """Strip the entity markup of one NLU example, keeping the annotations."""
    annotations = []

    def strip(m: re.Match) -> str:
        shown, short, js = m.group(1), m.group(2), m.group(3)
        if js is not None:
            try:
                spec = yaml.safe_load(js)
            except yaml.YAMLError:
                spec = None
            if not isinstance(spec, dict) or "entity" not in spec:
                raise TranscriptError(where.file, where.line, f"entity annotation {m.group(0)!r} is not valid: "
                                                              'expected {"entity": "name", ...}')
            annotations.append(Annotation(shown, str(spec["entity"]), str(spec.get("value", shown)),
                                          str(spec.get("role", "") or ""), str(spec.get("group", "") or "")))
        else:
            entity, _, value = short.partition(":")
            annotations.append(Annotation(shown, entity.strip(), value.strip() or shown))
        return shown

    clean = _ANNOTATION.sub(strip, text).strip()
    return NluExample(" ".join(clean.split()), where, tuple(annotations))


def strip_entities(text: str) -> str:
    """'my [credit card]{"entity": "account_type"} [balance](amount)' -> 'my credit card balance'."""
    return _ANNOTATION.sub(r"\1", text).strip()


def _example_lines(item: dict, file: Path) -> Iterator[tuple[str, int]]:
    """(text, line) of a block's examples: `examples: |` ('- text' lines) or a list of strings / {text: ...}."""
    node = getattr(item, "nodes", {}).get("examples")
    if isinstance(node, yaml.ScalarNode):
        first = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
        for offset, raw in enumerate(str(node.value).splitlines()):
            raw = raw.strip()
            if raw.startswith("- ") or raw == "-":
                yield raw[2:].strip(), first + offset
            elif raw:
                raise TranscriptError(str(file), first + offset, f"NLU example must start with '- ': {raw!r}")
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            if isinstance(child, yaml.MappingNode):
                child = next((v for k, v in child.value if getattr(k, "value", None) == "text"), None)
            if isinstance(child, yaml.ScalarNode):
                yield str(child.value), child.start_mark.line + 1


def _flow(item: dict, file: Path, kind: str) -> Flow:
    name = str(item.get("rule") or item.get("story") or "(unnamed)")
    steps = []
    for step in item.get("steps") or []:
        steps += list(_steps(step, file))
    condition = tuple(_short(c) for c in item.get("condition") or [])
    return Flow(kind, name, Where(str(file), getattr(item, "line", 0)), tuple(steps), condition,
                bool(item.get("conversation_start")), item.get("wait_for_user_input", True) is not False)


def _steps(step: Any, file: Path) -> Iterator[Step]:
    where = Where(str(file), getattr(step, "line", 0))
    if not isinstance(step, dict):
        yield Step("other", str(step), where)
        return
    if "user" in step:
        text = parse_example(str(step["user"]).strip(), where).text
        yield Step("intent", str(step.get("intent") or ""), where, text=text or " ")
    elif "intent" in step:
        yield Step("intent", str(step["intent"]), where)
    elif "action" in step:
        yield Step("action", str(step["action"]), where)
    elif "bot" in step:
        yield Step("action", "bot: " + str(step["bot"]), where)
    elif "active_loop" in step:
        yield Step("active_loop", str(step["active_loop"]), where)
    elif "or" in step:
        yield Step("or", _short(step["or"]), where)
    else:
        key = next(iter(step), "")
        yield Step(key if key in ("slot_was_set", "checkpoint") else "other", _short(step), where)


def _short(value: Any) -> str:
    return re.sub(r"\s+", " ", str(dict(value) if isinstance(value, dict) else value))[:120]


# -- YAML with lines -------------------------------------------------------------------------------------
class _LMap(dict):
    """A mapping that remembers its own line, each key's line and each value's node."""

    line: int
    lines: dict
    nodes: dict


class _LineLoader(yaml.SafeLoader):
    """safe_load keeping lines; a key given twice keeps the last value, as Rasa (PyYAML) does."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LMap:
    loader.flatten_mapping(node)
    mapping = _LMap()
    mapping.line, mapping.lines, mapping.nodes = node.start_mark.line + 1, {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                    key_node.start_mark) from None
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key], mapping.nodes[key] = key_node.start_mark.line + 1, value_node
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(mapping: Any, key: Any) -> int:
    return getattr(mapping, "lines", {}).get(key, 0)


def load_yaml(file: Path) -> Any:
    """The file's YAML; errors name the file and the line where the problem starts (and where the parser
    stopped, when that is another line)."""
    data = Path(file).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TranscriptError(str(file), line, f"not UTF-8 text: byte 0x{data[e.start]:02x} at column {column} "
                                               f"({e.reason}); save the file as UTF-8") from e
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem_mark", None)
        context = getattr(e, "context_mark", None)
        what = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        if problem is None:
            raise TranscriptError(str(file), 0, f"invalid YAML: {what}") from e
        start = context.line + 1 if context is not None else problem.line + 1
        stopped = problem.line + 1
        also = f" (the parser stopped at line {stopped}, column {problem.column + 1})" if stopped != start else ""
        raise TranscriptError(str(file), start, f"invalid YAML: {what}{also}") from e
