"""Extraction schemas as YAML: NER entity types, RE relations with their subject and object
types, EE event types with their roles; each type has a short description used in the prompts.

    task: ner                      task: re                          task: ee
    types:                         entity_types: {person: ...}       events:
      person: people's names       relations:                          Life.Die:
      location: ...                  spouse: {description: ...,          description: ...
                                       subject: person,                  roles: [Victim, Place]
                                       object: person}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from ie.errors import InputError

Task = Literal["ner", "re", "ee"]
TASKS = ("ner", "re", "ee")
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@dataclass(frozen=True)
class Relation:
    description: str
    subject: str
    object: str


@dataclass(frozen=True)
class EventType:
    description: str
    roles: tuple[str, ...]


@dataclass
class Schema:
    task: str
    entity_types: dict[str, str] = field(default_factory=dict)  # NER types; RE argument types
    relations: dict[str, Relation] = field(default_factory=dict)
    events: dict[str, EventType] = field(default_factory=dict)
    name: str = ""

    def type_names(self) -> list[str]:
        """What stage I asks about: entity types (NER), relations (RE) or event types (EE)."""
        if self.task == "ner":
            return list(self.entity_types)
        if self.task == "re":
            return list(self.relations)
        return list(self.events)

    def description(self, name: str) -> str:
        if self.task == "ner":
            return self.entity_types[name]
        if self.task == "re":
            return self.relations[name].description
        return self.events[name].description


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def _mapping(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A YAML mapping node's entries by key, keeping the nodes (for line numbers)."""
    return {k.value: (k, v) for k, v in node.value}


def _text(path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise InputError(path, _line(node), f"{what} must be a non-empty string")
    return str(node.value).strip()


def load_schema(path: str | Path) -> Schema:
    """Parse and check a schema file; every mistake raises InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        # a bare name means one of the shipped schemas
        shipped = SCHEMA_DIR / f"{path.name}.yaml" if path.suffix == "" else None
        if shipped is None or not shipped.is_file():
            choices = ", ".join(sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml")))
            raise InputError(path, None, f"schema file not found; give a path or a shipped schema: {choices}")
        path = shipped
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(path, mark.line + 1 if mark else None, f"not valid YAML: {err}") from None
    if not isinstance(root, yaml.MappingNode):
        raise InputError(path, _line(root) or 1, "a schema is a mapping with 'task' and its types")
    top = _mapping(root)
    allowed = {"task", "name", "types", "entity_types", "relations", "events"}
    for key, (knode, _) in top.items():
        if key not in allowed:
            raise InputError(path, _line(knode), f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    if "task" not in top:
        raise InputError(path, 1, f"missing 'task' (one of {', '.join(TASKS)})")
    task = top["task"][1].value
    if task not in TASKS:
        raise InputError(path, _line(top["task"][1]), f"task {task!r} is not one of {', '.join(TASKS)}")
    name = top["name"][1].value if "name" in top else path.stem
    schema = Schema(task=task, name=str(name))

    def types_of(key: str) -> dict[str, str]:
        if key not in top:
            raise InputError(path, 1, f"a {task} schema needs '{key}': a mapping of type name to description")
        knode, vnode = top[key]
        if not isinstance(vnode, yaml.MappingNode) or not vnode.value:
            raise InputError(path, _line(knode), f"'{key}' declares no types: give at least one 'name: description'")
        return {str(k.value): _text(path, v, f"the description of {k.value!r}") for k, v in vnode.value}

    if task == "ner":
        schema.entity_types = types_of("types")
    elif task == "re":
        schema.entity_types = types_of("entity_types")
        if "relations" not in top:
            raise InputError(path, 1, "an re schema needs 'relations'")
        knode, vnode = top["relations"]
        if not isinstance(vnode, yaml.MappingNode) or not vnode.value:
            raise InputError(path, _line(knode), "'relations' declares no relations")
        for k, v in vnode.value:
            if not isinstance(v, yaml.MappingNode):
                raise InputError(path, _line(v), f"relation {k.value!r} needs description, subject and object")
            fields = _mapping(v)
            for need in ("description", "subject", "object"):
                if need not in fields:
                    raise InputError(path, _line(k), f"relation {k.value!r} has no '{need}'")
            args = {}
            for role in ("subject", "object"):
                t = _text(path, fields[role][1], f"{k.value}.{role}")
                if t not in schema.entity_types:
                    raise InputError(path, _line(fields[role][1]),
                                     f"relation {k.value!r}: {role} type {t!r} is not declared in entity_types "
                                     f"({', '.join(schema.entity_types)})")
                args[role] = t
            schema.relations[str(k.value)] = Relation(
                _text(path, fields["description"][1], f"{k.value}.description"), args["subject"], args["object"])
    else:
        if "events" not in top:
            raise InputError(path, 1, "an ee schema needs 'events'")
        knode, vnode = top["events"]
        if not isinstance(vnode, yaml.MappingNode) or not vnode.value:
            raise InputError(path, _line(knode), "'events' declares no event types")
        for k, v in vnode.value:
            fields = _mapping(v) if isinstance(v, yaml.MappingNode) else {}
            if "description" not in fields or "roles" not in fields:
                raise InputError(path, _line(k), f"event {k.value!r} needs 'description' and 'roles'")
            rnode = fields["roles"][1]
            if not isinstance(rnode, yaml.SequenceNode) or not rnode.value:
                raise InputError(path, _line(rnode), f"event {k.value!r}: 'roles' must be a non-empty list")
            roles = tuple(dict.fromkeys(_text(path, r, "a role") for r in rnode.value))
            schema.events[str(k.value)] = EventType(
                _text(path, fields["description"][1], f"{k.value}.description"), roles)
    return schema
