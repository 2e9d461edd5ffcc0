"""A Dockerfile linter for the rules this project holds its image to (in the spirit of
hadolint, which is not installable here): pinned bases, a non-root user, a health check,
exec-form commands, lean package installs, and COPY over ADD."""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Instructions (continuations joined, comments dropped) and the stages they form."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, args = whole.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return instructions, stages


def _exec_form(args: str) -> bool:
    try:
        return isinstance(json.loads(args), list)
    except json.JSONDecodeError:
        return False


def lint(text: str) -> list[str]:
    """Every rule broken, as 'line N: RULE: why'; empty when the Dockerfile is clean."""
    instructions, stages = parse(text)
    problems: list[str] = []

    def problem(line: int, rule: str, why: str) -> None:
        problems.append(f"line {line}: {rule}: {why}")

    if not stages:
        return ["line 1: DF000: no FROM"]
    names = {s.name for s in stages if s.name}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            image = [w for w in instruction.args.split() if not w.startswith("--")][0]
            is_stage = image in names or re.fullmatch(r"[\w.-]*\$\{?\w+\}?[\w.-]*", image) is not None
            if not is_stage and ("@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1]
                                                              or image.endswith(":latest"))):
                problem(instruction.line, "DF001", f"base image {image} is not pinned to a tag or digest")
        elif instruction.keyword == "ADD":
            problem(instruction.line, "DF002", "use COPY: ADD also fetches URLs and unpacks archives")
        elif instruction.keyword in ("CMD", "ENTRYPOINT") and not _exec_form(instruction.args):
            problem(instruction.line, "DF003", f"{instruction.keyword} in shell form: signals miss the process")
        elif instruction.keyword == "RUN":
            command = instruction.args
            if "apt-get install" in command:
                if not re.search(r"\s(-y|--yes|-qq)\b", command):
                    problem(instruction.line, "DF004", "apt-get install without -y")
                if "--no-install-recommends" not in command:
                    problem(instruction.line, "DF005", "apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in command:
                    problem(instruction.line, "DF006", "apt lists left in the layer: rm -rf /var/lib/apt/lists/*")
            if re.search(r"\bpip3? install\b", command) and "--no-cache-dir" not in command:
                for part in re.split(r"&&|;", command):
                    if re.search(r"\bpip3? install\b", part) and "--no-cache-dir" not in part:
                        problem(instruction.line, "DF007", "pip install without --no-cache-dir")
                        break
            if re.search(r"\bsudo\b", command):
                problem(instruction.line, "DF008", "sudo in a build step")
        elif instruction.keyword == "WORKDIR" and not instruction.args.startswith(("/", "$")):
            problem(instruction.line, "DF009", f"WORKDIR {instruction.args} is relative")
        elif instruction.keyword == "COPY":
            source = re.search(r"--from=(\S+)", instruction.args)
            if source and source.group(1) not in names and not source.group(1).isdigit():
                problem(instruction.line, "DF010", f"COPY --from={source.group(1)}: no such stage")

    final = stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    first_line = final.instructions[0].line if final.instructions else 1
    if not users:
        problem(first_line, "DF011", "the final stage runs as root: add USER")
    elif shlex.split(users[-1].args)[0].split(":")[0] in ("root", "0"):
        problem(users[-1].line, "DF011", "the final stage's USER is root")
    checks = [i for i in final.instructions if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].args.upper() == "NONE":
        problem(first_line, "DF012", "the final stage has no HEALTHCHECK")
    elif not _exec_form(checks[-1].args.split("CMD", 1)[-1].strip()):
        problem(checks[-1].line, "DF003", "HEALTHCHECK CMD in shell form")
    return problems
